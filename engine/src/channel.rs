//! Ordered, bounded channels between subtasks, with credit-based flow control.
//!
//! # Protocol
//! 1. The upstream subtask connects to the downstream worker's data port and sends `Hello`
//!    naming both ends and the job epoch.
//! 2. The worker answers `Accepted { credits }` once the downstream subtask is deployed, or
//!    `Rejected` before that; the sender retries a rejected hello after a short pause.
//! 3. Each `Batch` costs the sender one credit; with none left it waits. The receiver returns a
//!    credit after it has processed a batch, so at most `credits` batches are ever buffered.
//! 4. `Barrier(n)` marks the point in the stream where checkpoint n cuts it; it costs no credit
//!    (at most one checkpoint is in flight, so barriers are bounded too).
//! 5. `End` closes the channel: the upstream subtask has no more records.
//!
//! Order is the stream's FIFO order. It does not retransmit: a reset channel fails the subtask.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::job::TaskId;
use crate::net::{Client, Rx, Tx};
use crate::record::StreamRecord;

/// Upstream to downstream.
#[derive(Debug)]
pub enum ChannelMsg {
    Hello { epoch: u64, from: TaskId, to: TaskId },
    Batch(Vec<StreamRecord>),
    Barrier(u64),
    End,
}

/// Downstream to upstream.
#[derive(Debug)]
pub enum ChannelReply {
    Accepted { credits: u32 },
    Rejected,
    Credit(u32),
}

/// The sending end of a channel.
pub struct ChannelSender {
    tx: Tx<ChannelMsg>,
    rx: Rx<ChannelReply>,
    credits: u32,
}

const HELLO_RETRY: Duration = Duration::from_millis(10);
const HELLO_ATTEMPTS: u32 = 1000;

impl ChannelSender {
    /// Opens a channel, retrying until the downstream subtask accepts it.
    pub async fn open(
        client: &Client,
        addr: SocketAddr,
        epoch: u64,
        from: TaskId,
        to: TaskId,
    ) -> io::Result<Self> {
        for _ in 0..HELLO_ATTEMPTS {
            let (tx, mut rx) = client
                .connect_retrying::<ChannelMsg, ChannelReply>(addr, HELLO_RETRY, HELLO_ATTEMPTS)
                .await?;
            tx.send(ChannelMsg::Hello { epoch, from, to }).await?;
            match rx.recv().await? {
                ChannelReply::Accepted { credits } => {
                    assert!(credits > 0, "a channel needs at least one credit");
                    return Ok(ChannelSender { tx, rx, credits });
                }
                ChannelReply::Rejected => madsim::time::sleep(HELLO_RETRY).await,
                ChannelReply::Credit(_) => panic!("credit before the channel was accepted"),
            }
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "downstream subtask never accepted the channel"))
    }

    /// Sends a batch, first waiting for a credit if none is left.
    pub async fn send(&mut self, batch: Vec<StreamRecord>) -> io::Result<()> {
        assert!(!batch.is_empty(), "empty batches waste credits");
        while self.credits == 0 {
            match self.rx.recv().await? {
                ChannelReply::Credit(n) => self.credits += n,
                other => panic!("unexpected {other:?} on an open channel"),
            }
        }
        self.credits -= 1;
        self.tx.send(ChannelMsg::Batch(batch)).await
    }

    /// Sends barrier `checkpoint` after every batch sent so far.
    pub async fn barrier(&mut self, checkpoint: u64) -> io::Result<()> {
        self.tx.send(ChannelMsg::Barrier(checkpoint)).await
    }

    pub async fn end(&mut self) -> io::Result<()> {
        self.tx.send(ChannelMsg::End).await
    }
}

/// What a channel delivers to its downstream subtask.
pub enum Delivery {
    /// A channel was accepted: credits for it are returned through `credit`.
    Opened {
        from: TaskId,
        credit: Tx<ChannelReply>,
    },
    Batch {
        from: TaskId,
        records: Vec<StreamRecord>,
    },
    Barrier {
        from: TaskId,
        checkpoint: u64,
    },
    End {
        from: TaskId,
    },
    /// The channel was reset before it ended: the upstream subtask or its worker failed.
    Broken {
        from: TaskId,
    },
}

/// Forwards one accepted channel's messages into the downstream subtask's inbox.
pub async fn forward<T>(
    from: TaskId,
    mut rx: Rx<ChannelMsg>,
    inbox: tokio::sync::mpsc::UnboundedSender<T>,
    wrap: fn(Delivery) -> T,
) {
    loop {
        let delivery = match rx.recv().await {
            Ok(ChannelMsg::Batch(records)) => Delivery::Batch { from, records },
            Ok(ChannelMsg::Barrier(checkpoint)) => Delivery::Barrier { from, checkpoint },
            Ok(ChannelMsg::End) => Delivery::End { from },
            Ok(ChannelMsg::Hello { .. }) => panic!("second hello on channel from {from:?}"),
            Err(_) => Delivery::Broken { from },
        };
        let last = matches!(delivery, Delivery::End { .. } | Delivery::Broken { .. });
        if inbox.send(wrap(delivery)).is_err() || last {
            return;
        }
    }
}
