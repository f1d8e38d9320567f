//! The sink writer: the last operator of a chain, writing output to the sink node in the job's
//! sink mode.
//!
//! - plain: every batch is an `Append`; a batch whose acknowledgement is lost is appended again
//!   on retry (at-least-once), or given up (at-most-once: never resent);
//! - idempotent: every batch is an `Upsert`; retries are harmless;
//! - transactional: batches are `Write`s into the open transaction; at a barrier the writer
//!   `Prepare`s it, bound to that checkpoint, and opens the next; when the coordinator reports a
//!   checkpoint complete it `Commit`s up to it. A writer restored from checkpoint n first sends
//!   `Recover { upto: n }`.
//!
//! Every request carries the subtask's writer epoch (its job epoch, then its generation: a
//! promoted copy outranks the primary it replaced); `Fenced` means this writer is a zombie, and
//! the subtask fails. Requests are resent, unchanged (same transaction id and write number), on a
//! fresh connection after `request_timeout_ms`, at most `MAX_ATTEMPTS` times; then the subtask
//! fails and the job recovers from its latest checkpoint. `Aborted` (the sink crashed and lost
//! the open transaction) fails the subtask at once.

use std::rc::Rc;
use std::time::Duration;

use crate::cluster::{NodeId, Role, SINK_PORT};
use crate::job::{Semantics, SinkMode, TaskSpec};
use crate::net::{Client, Rx, Tx};
use crate::observe::NodeContext;
use crate::record::OutputRecord;
use crate::sink::{SinkRequest, SinkResponse, TxnId};

/// Attempts per request before the subtask gives up and fails, so that the job recovers.
const MAX_ATTEMPTS: u32 = 8;

pub struct SinkWriter {
    client: Rc<Client>,
    conn: Option<(Tx<SinkRequest>, Rx<SinkResponse>)>,
    writer: u32,
    epoch: u64,
    mode: SinkMode,
    /// At-most-once never resends an append.
    resend_appends: bool,
    /// The open transaction and the next write's number within it.
    txn: u64,
    batch_seq: u64,
    timeout: Duration,
}

pub type SinkResult = Result<(), String>;

impl SinkWriter {
    pub fn new(ctx: &NodeContext, client: Rc<Client>, spec: &TaskSpec) -> Self {
        SinkWriter {
            client,
            conn: None,
            writer: spec.id.subtask,
            epoch: spec.writer_epoch(),
            mode: spec.sink,
            resend_appends: spec.semantics != Semantics::AtMostOnce,
            txn: 0,
            batch_seq: 0,
            timeout: Duration::from_millis(ctx.cluster.settings.request_timeout_ms),
        }
    }

    /// Settles what an earlier incarnation of this writer left: transactions bound to
    /// checkpoints up to `upto` are committed, the rest aborted. Also fences older epochs.
    pub async fn recover(&mut self, upto: u64) -> SinkResult {
        let (writer, epoch) = (self.writer, self.epoch);
        self.request(|| SinkRequest::Recover { writer, epoch, upto }, true).await
    }

    pub async fn write(&mut self, records: Vec<OutputRecord>) -> SinkResult {
        assert!(!records.is_empty());
        let (writer, epoch) = (self.writer, self.epoch);
        match self.mode {
            SinkMode::Plain => {
                let resend = self.resend_appends;
                self.request(|| SinkRequest::Append { writer, epoch, records: records.clone() }, resend).await
            }
            SinkMode::Idempotent => {
                self.request(|| SinkRequest::Upsert { writer, epoch, records: records.clone() }, true).await
            }
            SinkMode::Transactional => {
                let (txn, batch_seq) = (self.txn_id(), self.batch_seq);
                self.batch_seq += 1;
                self.request(|| SinkRequest::Write { txn, batch_seq, records: records.clone() }, true).await
            }
        }
    }

    /// At barrier `checkpoint`: makes the open transaction durable and opens the next one.
    pub async fn pre_commit(&mut self, checkpoint: u64) -> SinkResult {
        if self.mode != SinkMode::Transactional {
            return Ok(());
        }
        let (txn, writes) = (self.txn_id(), self.batch_seq);
        self.request(|| SinkRequest::Prepare { txn, checkpoint, writes }, true).await?;
        self.txn += 1;
        self.batch_seq = 0;
        Ok(())
    }

    /// Checkpoint `upto` completed: commits every transaction prepared for it or before.
    pub async fn commit(&mut self, upto: u64) -> SinkResult {
        if self.mode != SinkMode::Transactional {
            return Ok(());
        }
        let (writer, epoch) = (self.writer, self.epoch);
        self.request(|| SinkRequest::Commit { writer, epoch, upto }, true).await
    }

    fn txn_id(&self) -> TxnId {
        TxnId { writer: self.writer, epoch: self.epoch, txn: self.txn }
    }

    /// Sends a request until it is answered; without `resend`, a request sent once and not
    /// answered in time is given up (reported as success: the caller promised no more).
    async fn request(&mut self, make: impl Fn() -> SinkRequest, resend: bool) -> SinkResult {
        for _ in 0..MAX_ATTEMPTS {
            match self.try_request(make()).await {
                Some(SinkResponse::Done) => return Ok(()),
                Some(SinkResponse::Fenced { current }) => {
                    return Err(format!("fenced by the sink: epoch {} < {current}", self.epoch))
                }
                Some(SinkResponse::Aborted { txn }) => {
                    return Err(format!("the sink lost open transaction {txn:?} in a crash"))
                }
                None if !resend => {
                    self.conn = None;
                    return Ok(());
                }
                None => {}
            }
            self.conn = None;
            madsim::time::sleep(self.timeout).await;
        }
        Err("the sink did not answer".into())
    }

    async fn try_request(&mut self, request: SinkRequest) -> Option<SinkResponse> {
        if self.conn.is_none() {
            let addr = NodeId::new(Role::Sink, 0).addr(SINK_PORT);
            self.conn = Some(self.client.connect(addr).await.ok()?);
        }
        let (tx, rx) = self.conn.as_mut().unwrap();
        tx.send(request).await.ok()?;
        madsim::time::timeout(self.timeout, rx.recv()).await.ok()?.ok()
    }
}
