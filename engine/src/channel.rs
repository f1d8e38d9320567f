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
//! 5. `Watermark { at, idle }` follows the records it covers: the sender will send no record
//!    with an event time below `at`; `idle` says the sender has nothing to send for now and
//!    must not hold the receiver's watermark back until its next record. It costs no credit
//!    (a sender only sends one when its watermark moved).
//! 6. `End` closes the channel: the upstream subtask has no more records.
//!
//! Order is the stream's FIFO order. It does not retransmit: a reset channel fails the subtask
//! under rollback recovery; under replication the subtask waits for the manager to replace
//! whatever broke it.
//!
//! The same channels carry a passive primary's changelog to its standbys: `Base` (its state at
//! a barrier), then `Changes` after every batch it applies, `Barrier(n)` where checkpoint n cuts
//! the changelog, and `End`. They cost no credit.
//!
//! Each end names the sender's generation: a restarted source or a promoted primary opens new
//! channels, and the receiver drops what an older generation still sends.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::checkpoint::StateSnapshot;
use crate::job::TaskId;
use crate::net::{Client, Rx, Tx};
use crate::record::StreamRecord;
use crate::state::Changes;

/// The sending subtask of a channel, and which of its generations sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Upstream {
    pub task: TaskId,
    pub generation: u32,
}

/// Upstream to downstream.
#[derive(Debug)]
pub enum ChannelMsg {
    Hello { epoch: u64, from: Upstream, to: TaskId },
    Batch(Vec<StreamRecord>),
    Barrier(u64),
    Watermark { at: u64, idle: bool },
    End,
    Base { checkpoint: u64, state: StateSnapshot },
    Changes(Changes),
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
        from: Upstream,
        to: TaskId,
    ) -> io::Result<Self> {
        Self::open_within(client, addr, (epoch, from, to), HELLO_ATTEMPTS).await
    }

    /// Opens a channel, giving up after `attempts` refused connections or rejected hellos.
    pub async fn open_within(
        client: &Client,
        addr: SocketAddr,
        (epoch, from, to): (u64, Upstream, TaskId),
        attempts: u32,
    ) -> io::Result<Self> {
        for _ in 0..attempts {
            let (tx, mut rx) =
                client.connect_retrying::<ChannelMsg, ChannelReply>(addr, HELLO_RETRY, attempts).await?;
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
        // The credit is spent once the batch is out: a send cancelled while waiting keeps it.
        self.tx.send(ChannelMsg::Batch(batch)).await?;
        self.credits -= 1;
        Ok(())
    }

    /// Sends the sender's watermark (see the protocol).
    pub async fn watermark(&mut self, at: u64, idle: bool) -> io::Result<()> {
        self.tx.send(ChannelMsg::Watermark { at, idle }).await
    }

    /// Sends barrier `checkpoint` after every batch sent so far.
    pub async fn barrier(&mut self, checkpoint: u64) -> io::Result<()> {
        self.tx.send(ChannelMsg::Barrier(checkpoint)).await
    }

    pub async fn end(&mut self) -> io::Result<()> {
        self.tx.send(ChannelMsg::End).await
    }

    /// Sends a replication message (`Base` or `Changes`); these cost no credit.
    pub async fn replicate(&mut self, message: ChannelMsg) -> io::Result<()> {
        assert!(matches!(message, ChannelMsg::Base { .. } | ChannelMsg::Changes(_)));
        self.tx.send(message).await
    }
}

/// What a channel delivers to its downstream subtask.
pub enum Delivery {
    /// A channel was accepted: credits for it are returned through `credit`.
    Opened {
        from: Upstream,
        credit: Tx<ChannelReply>,
    },
    Batch {
        from: Upstream,
        records: Vec<StreamRecord>,
    },
    Barrier {
        from: Upstream,
        checkpoint: u64,
    },
    Watermark {
        from: Upstream,
        at: u64,
        idle: bool,
    },
    End {
        from: Upstream,
    },
    /// The channel was reset before it ended: the upstream subtask or its worker failed.
    Broken {
        from: Upstream,
    },
    /// A primary's state at barrier `checkpoint` (to a standby).
    Base {
        from: Upstream,
        checkpoint: u64,
        state: StateSnapshot,
    },
    /// A primary's changelog entry (to a standby).
    Changes {
        from: Upstream,
        changes: Changes,
    },
}

impl Delivery {
    /// The channel's sender.
    pub fn from(&self) -> Upstream {
        match self {
            Delivery::Opened { from, .. }
            | Delivery::Batch { from, .. }
            | Delivery::Barrier { from, .. }
            | Delivery::Watermark { from, .. }
            | Delivery::End { from }
            | Delivery::Broken { from }
            | Delivery::Base { from, .. }
            | Delivery::Changes { from, .. } => *from,
        }
    }
}

/// Forwards one accepted channel's messages into the downstream subtask's inbox.
pub async fn forward<T>(
    from: Upstream,
    mut rx: Rx<ChannelMsg>,
    inbox: tokio::sync::mpsc::UnboundedSender<T>,
    wrap: fn(Delivery) -> T,
) {
    loop {
        let delivery = match rx.recv().await {
            Ok(ChannelMsg::Batch(records)) => Delivery::Batch { from, records },
            Ok(ChannelMsg::Barrier(checkpoint)) => Delivery::Barrier { from, checkpoint },
            Ok(ChannelMsg::Watermark { at, idle }) => Delivery::Watermark { from, at, idle },
            Ok(ChannelMsg::End) => Delivery::End { from },
            Ok(ChannelMsg::Base { checkpoint, state }) => Delivery::Base { from, checkpoint, state },
            Ok(ChannelMsg::Changes(changes)) => Delivery::Changes { from, changes },
            Ok(ChannelMsg::Hello { .. }) => panic!("second hello on channel from {from:?}"),
            Err(_) => Delivery::Broken { from },
        };
        let last = matches!(delivery, Delivery::End { .. } | Delivery::Broken { .. });
        if inbox.send(wrap(delivery)).is_err() || last {
            return;
        }
    }
}
