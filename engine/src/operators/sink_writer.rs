//! The sink writer: the last operator of a chain, writing output batches to the sink node.
//!
//! In this version every write is a plain append acknowledged after the sink synced it. A
//! write whose acknowledgement does not arrive within `request_timeout_ms` is resent on a new
//! connection, at most `MAX_ATTEMPTS` times: a resend after a lost acknowledgement appends the
//! batch twice, which the delivery checker reports as duplicates.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::cluster::{NodeId, Role, SINK_PORT};
use crate::net::{Client, Rx, Tx};
use crate::observe::NodeContext;
use crate::record::OutputRecord;
use crate::sink::{SinkRequest, SinkResponse};

const MAX_ATTEMPTS: u32 = 100;

pub struct SinkWriter {
    client: Rc<Client>,
    conn: Option<(Tx<SinkRequest>, Rx<SinkResponse>)>,
    writer: u32,
    next_batch: u64,
    timeout: Duration,
}

impl SinkWriter {
    pub fn new(ctx: &NodeContext, client: Rc<Client>, writer: u32) -> Self {
        let timeout = Duration::from_millis(ctx.cluster.settings.request_timeout_ms);
        SinkWriter { client, conn: None, writer, next_batch: 0, timeout }
    }

    /// Appends a batch, retrying until the sink acknowledges it.
    pub async fn write(&mut self, records: Vec<OutputRecord>) -> io::Result<()> {
        assert!(!records.is_empty());
        let batch_seq = self.next_batch;
        self.next_batch += 1;
        for _ in 0..MAX_ATTEMPTS {
            if self.try_write(batch_seq, &records).await {
                return Ok(());
            }
            self.conn = None;
            madsim::time::sleep(self.timeout).await;
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "sink did not acknowledge a write"))
    }

    async fn try_write(&mut self, batch_seq: u64, records: &[OutputRecord]) -> bool {
        if self.conn.is_none() {
            let addr = NodeId::new(Role::Sink, 0).addr(SINK_PORT);
            match self.client.connect(addr).await {
                Ok(conn) => self.conn = Some(conn),
                Err(_) => return false,
            }
        }
        let (tx, rx) = self.conn.as_mut().unwrap();
        let request = SinkRequest::Append { writer: self.writer, batch_seq, records: records.to_vec() };
        if tx.send(request).await.is_err() {
            return false;
        }
        loop {
            match madsim::time::timeout(self.timeout, rx.recv()).await {
                Ok(Ok(SinkResponse::Appended { batch_seq: acked })) if acked == batch_seq => return true,
                Ok(Ok(SinkResponse::Appended { .. })) => continue, // a late answer to a resend
                _ => return false,
            }
        }
    }
}
