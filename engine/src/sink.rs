//! The sink node: the external system the job's output lands in (a database, or Kafka with
//! transactions, in real life).
//!
//! It offers three ways to write, one per `SinkMode`:
//! - plain `Append`: durable once acknowledged; a retried append is appended again;
//! - idempotent `Upsert`: keyed by output id, so a replayed record changes nothing;
//! - transactional, a two-phase commit:
//!   1. `Write` adds records to an open transaction (volatile: a sink crash aborts it);
//!      `(writer, epoch, txn, batch_seq)` makes a retried write harmless;
//!   2. `Prepare` binds the transaction to a checkpoint and makes it durable. It names how many
//!      writes the transaction holds: if the sink lost some (it crashed since), the transaction
//!      is answered `Aborted` and nothing is prepared — the writer's subtask fails, and the
//!      job recovers from its latest checkpoint;
//!   3. `Commit { upto }` commits every prepared transaction of the writer bound to a
//!      checkpoint `≤ upto`, once that checkpoint completed; committing is idempotent;
//!   4. `Recover { upto }` — sent by a writer restored from checkpoint `upto` — commits the
//!      writer's prepared transactions `≤ upto` and aborts the rest.
//!
//! Fencing: the sink remembers each writer's highest epoch; a request from an older epoch (a
//! zombie from before a recovery) is refused with `Fenced` and changes nothing.
//!
//! Everything durable is one append-only log, `sink.log`, synced before any acknowledgement.
//! Committed output is what its `Append` and `Upsert` frames hold, plus the records of every
//! `Prepare` frame whose transaction a later `Commit` frame commits (a commit is a small marker:
//! appending it is the atomic commit point).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use crate::clock;
use crate::cluster::SINK_PORT;
use crate::codec::{self, Reader};
use crate::net::{Listener, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};
use crate::record::{OutputId, OutputRecord};

/// The sink's durable log.
pub const SINK_LOG: &str = "sink.log";

/// A transaction: the output a writer produced in one epoch between two barriers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxnId {
    pub writer: u32,
    pub epoch: u64,
    /// The writer's transaction counter within the epoch.
    pub txn: u64,
}

#[derive(Debug)]
pub enum SinkRequest {
    Append { writer: u32, epoch: u64, records: Vec<OutputRecord> },
    Upsert { writer: u32, epoch: u64, records: Vec<OutputRecord> },
    Write { txn: TxnId, batch_seq: u64, records: Vec<OutputRecord> },
    Prepare { txn: TxnId, checkpoint: u64, writes: u64 },
    Commit { writer: u32, epoch: u64, upto: u64 },
    Recover { writer: u32, epoch: u64, upto: u64 },
}

#[derive(Debug, PartialEq, Eq)]
pub enum SinkResponse {
    Done,
    /// The request's epoch is older than the writer's newest: it came from a zombie.
    Fenced {
        current: u64,
    },
    /// The open transaction is gone: the sink crashed and lost it. Nothing of it is kept.
    Aborted {
        txn: TxnId,
    },
}

/// One entry of the sink's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkEvent {
    Append {
        writer: u32,
        epoch: u64,
        records: Vec<OutputRecord>,
    },
    Upsert {
        writer: u32,
        epoch: u64,
        records: Vec<OutputRecord>,
    },
    /// The records are the transaction's writes joined; `received` gives each write's arrival
    /// (simulated ms) and record count, in order.
    Prepare {
        txn: TxnId,
        checkpoint: u64,
        records: Vec<OutputRecord>,
        received: Vec<(u64, u32)>,
    },
    /// `by_epoch`: the epoch of the request that committed it; `upto`: the completed checkpoint
    /// that let it commit (`checkpoint ≤ upto`). The records are the prepare's.
    Commit {
        txn: TxnId,
        checkpoint: u64,
        by_epoch: u64,
        upto: u64,
    },
    Abort {
        txn: TxnId,
        checkpoint: u64,
        by_epoch: u64,
    },
    Fence {
        writer: u32,
        epoch: u64,
    },
}

/// A prepared transaction as the sink holds it: its records are in the log, and only their
/// count is kept (for the commit's trace event).
struct Prepared {
    checkpoint: u64,
    records: u64,
}

#[derive(Default)]
struct Open {
    /// The writes, batch by batch: a transaction grows for a whole checkpoint interval, and
    /// one vector would copy itself over at every doubling.
    writes: Vec<Vec<OutputRecord>>,
    /// When each write arrived (simulated ms): logged with the prepare, as a log stamps each
    /// transactional record with its append time before the transaction commits.
    received_ms: Vec<u64>,
    next_batch: u64,
}

struct Sink {
    ctx: NodeContext,
    fence: BTreeMap<u32, u64>,
    open: BTreeMap<TxnId, Open>,
    prepared: BTreeMap<TxnId, Prepared>,
    committed: BTreeSet<TxnId>,
    upserted: BTreeMap<OutputId, OutputRecord>,
}

/// The sink node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let sink = Rc::new(RefCell::new(Sink::open(ctx)));
    let listener = Listener::<SinkRequest, SinkResponse>::bind(SINK_PORT).await;
    loop {
        let Ok((tx, rx, _from)) = listener.accept().await else { continue };
        madsim::task::spawn_local(serve(sink.clone(), tx, rx));
    }
}

async fn serve(sink: Rc<RefCell<Sink>>, tx: Tx<SinkResponse>, mut rx: Rx<SinkRequest>) {
    while let Ok(request) = rx.recv().await {
        let response = sink.borrow_mut().handle(request);
        if tx.send(response).await.is_err() {
            return;
        }
    }
}

impl Sink {
    /// Rebuilds the sink's state from its log: prepared transactions survive a crash, open ones
    /// do not.
    fn open(ctx: NodeContext) -> Self {
        let events = ctx.disk.read(SINK_LOG).map(|b| read_events(&b)).unwrap_or_default();
        let mut sink = Sink {
            ctx,
            fence: BTreeMap::new(),
            open: BTreeMap::new(),
            prepared: BTreeMap::new(),
            committed: BTreeSet::new(),
            upserted: BTreeMap::new(),
        };
        for event in events {
            sink.apply(event);
        }
        sink
    }

    /// Applies a logged event to the in-memory state.
    fn apply(&mut self, event: SinkEvent) {
        match event {
            SinkEvent::Append { .. } => {}
            SinkEvent::Upsert { records, .. } => {
                self.upserted.extend(records.into_iter().map(|r| (r.id.clone(), r)));
            }
            SinkEvent::Prepare { txn, checkpoint, records, .. } => {
                self.prepared.insert(txn, Prepared { checkpoint, records: records.len() as u64 });
            }
            SinkEvent::Commit { txn, .. } => {
                self.prepared.remove(&txn);
                self.committed.insert(txn);
            }
            SinkEvent::Abort { txn, .. } => _ = self.prepared.remove(&txn),
            SinkEvent::Fence { writer, epoch } => _ = self.fence.insert(writer, epoch),
        }
    }

    /// Logs an event durably, then applies it.
    fn log(&mut self, event: SinkEvent) {
        let mut bytes = Vec::new();
        encode_event(&event, clock::elapsed_ms(), &mut bytes);
        self.append_durably(bytes);
        self.apply(event);
    }

    fn append_durably(&mut self, frame: Vec<u8>) {
        self.ctx.disk.append(SINK_LOG, frame);
        self.ctx.disk.sync(SINK_LOG);
    }

    fn handle(&mut self, request: SinkRequest) -> SinkResponse {
        let (writer, epoch) = match &request {
            SinkRequest::Append { writer, epoch, .. }
            | SinkRequest::Upsert { writer, epoch, .. }
            | SinkRequest::Commit { writer, epoch, .. }
            | SinkRequest::Recover { writer, epoch, .. } => (*writer, *epoch),
            SinkRequest::Write { txn, .. } | SinkRequest::Prepare { txn, .. } => (txn.writer, txn.epoch),
        };
        if let Some(current) = self.check_fence(writer, epoch) {
            return SinkResponse::Fenced { current };
        }
        match request {
            SinkRequest::Append { writer, epoch, records } => self.append(writer, epoch, records),
            SinkRequest::Upsert { writer, epoch, records } => self.upsert(writer, epoch, records),
            SinkRequest::Write { txn, batch_seq, records } => return self.write(txn, batch_seq, records),
            SinkRequest::Prepare { txn, checkpoint, writes } => return self.prepare(txn, checkpoint, writes),
            SinkRequest::Commit { writer, epoch, upto } => self.commit_upto(writer, epoch, upto),
            SinkRequest::Recover { writer, epoch, upto } => self.recover(writer, epoch, upto),
        }
        SinkResponse::Done
    }

    /// Refuses an older epoch; raises the fence for a newer one. Returns the fence if refused.
    fn check_fence(&mut self, writer: u32, epoch: u64) -> Option<u64> {
        let current = self.fence.get(&writer).copied().unwrap_or(0);
        if epoch < current {
            self.ctx.trace(TraceEvent::SinkFenced { writer, epoch });
            tracing::debug!(writer, epoch, current, "fenced a zombie writer");
            return Some(current);
        }
        if epoch > current {
            self.log(SinkEvent::Fence { writer, epoch });
            self.open.retain(|t, _| t.writer != writer || t.epoch >= epoch);
        }
        None
    }

    fn append(&mut self, writer: u32, epoch: u64, records: Vec<OutputRecord>) {
        let n = records.len() as u64;
        self.log(SinkEvent::Append { writer, epoch, records });
        self.ctx.trace(TraceEvent::SinkCommitted { writer, records: n });
    }

    fn upsert(&mut self, writer: u32, epoch: u64, records: Vec<OutputRecord>) {
        let changed: Vec<OutputRecord> =
            records.into_iter().filter(|r| self.upserted.get(&r.id) != Some(r)).collect();
        if !changed.is_empty() {
            let n = changed.len() as u64;
            self.log(SinkEvent::Upsert { writer, epoch, records: changed });
            self.ctx.trace(TraceEvent::SinkCommitted { writer, records: n });
        }
    }

    fn write(&mut self, txn: TxnId, batch_seq: u64, records: Vec<OutputRecord>) -> SinkResponse {
        if self.prepared.contains_key(&txn) || self.committed.contains(&txn) {
            return SinkResponse::Done; // a late retry of a write the transaction already holds
        }
        let open = self.open.entry(txn).or_default();
        if batch_seq > open.next_batch {
            // The writes before this one were lost with the sink's memory.
            self.open.remove(&txn);
            return self.lost(txn);
        }
        if batch_seq == open.next_batch {
            open.writes.push(records);
            open.received_ms.push(clock::elapsed_ms());
            open.next_batch += 1;
        }
        SinkResponse::Done
    }

    fn prepare(&mut self, txn: TxnId, checkpoint: u64, writes: u64) -> SinkResponse {
        if self.prepared.contains_key(&txn) || self.committed.contains(&txn) {
            return SinkResponse::Done;
        }
        let open = self.open.remove(&txn).unwrap_or_default();
        if open.next_batch != writes {
            tracing::debug!(?txn, held = open.next_batch, writes, "transaction lost in a sink crash");
            return self.lost(txn);
        }
        // Logged as `SinkEvent::Prepare` of the writes joined, from the writes as they are: a
        // transaction holds a whole checkpoint interval's records, and joining them copies
        // every one.
        assert_eq!(open.received_ms.len(), open.writes.len(), "one arrival time per write");
        let received: Vec<(u64, u32)> =
            open.received_ms.iter().zip(&open.writes).map(|(&at, w)| (at, w.len() as u32)).collect();
        let mut bytes = Vec::new();
        let header = (PREPARE, txn.writer, txn.epoch, txn.txn, checkpoint, txn.epoch);
        let body = Body::Records { received: &received, parts: &open.writes };
        encode_frame(header, clock::elapsed_ms(), body, &mut bytes);
        self.append_durably(bytes);
        let records = open.writes.iter().map(|w| w.len() as u64).sum();
        self.prepared.insert(txn, Prepared { checkpoint, records });
        SinkResponse::Done
    }

    /// Answers that the open transaction `txn` is gone (the sink crashed since it opened).
    fn lost(&self, txn: TxnId) -> SinkResponse {
        assert!(!self.open.contains_key(&txn), "{txn:?} answered lost while held");
        self.ctx.trace(TraceEvent::SinkTxnLost { writer: txn.writer, epoch: txn.epoch, txn: txn.txn });
        SinkResponse::Aborted { txn }
    }

    fn commit_upto(&mut self, writer: u32, by_epoch: u64, upto: u64) {
        let due: Vec<TxnId> = self
            .prepared
            .iter()
            .filter(|(t, p)| t.writer == writer && p.checkpoint <= upto)
            .map(|(t, _)| *t)
            .collect();
        for txn in due {
            let Prepared { checkpoint, records } = self.prepared.remove(&txn).expect("listed above");
            assert!(!self.committed.contains(&txn), "{txn:?} committed twice");
            self.log(SinkEvent::Commit { txn, checkpoint, by_epoch, upto });
            self.ctx.trace(TraceEvent::SinkCommitted { writer, records });
        }
    }

    fn recover(&mut self, writer: u32, by_epoch: u64, upto: u64) {
        self.commit_upto(writer, by_epoch, upto);
        let stale: Vec<(TxnId, u64)> = self
            .prepared
            .iter()
            .filter(|(t, _)| t.writer == writer)
            .map(|(t, p)| (*t, p.checkpoint))
            .collect();
        for (txn, checkpoint) in stale {
            self.log(SinkEvent::Abort { txn, checkpoint, by_epoch });
        }
        self.open.retain(|t, _| t.writer != writer || t.epoch > by_epoch);
    }
}

const APPEND: u8 = 1;
const UPSERT: u8 = 2;
const PREPARE: u8 = 3;
const COMMIT: u8 = 4;
const ABORT: u8 = 5;
const FENCE: u8 = 6;

/// Header fields common to every event: kind, writer, epoch, txn, checkpoint, by_epoch.
type Header = (u8, u32, u64, u64, u64, u64);

fn header(event: &SinkEvent) -> (Header, &[OutputRecord]) {
    match event {
        SinkEvent::Append { writer, epoch, records } => ((APPEND, *writer, *epoch, 0, 0, *epoch), records),
        SinkEvent::Upsert { writer, epoch, records } => ((UPSERT, *writer, *epoch, 0, 0, *epoch), records),
        SinkEvent::Prepare { txn, checkpoint, records, .. } => {
            ((PREPARE, txn.writer, txn.epoch, txn.txn, *checkpoint, txn.epoch), records)
        }
        SinkEvent::Commit { txn, checkpoint, by_epoch, .. } => {
            ((COMMIT, txn.writer, txn.epoch, txn.txn, *checkpoint, *by_epoch), &[])
        }
        SinkEvent::Abort { txn, checkpoint, by_epoch } => {
            ((ABORT, txn.writer, txn.epoch, txn.txn, *checkpoint, *by_epoch), &[])
        }
        SinkEvent::Fence { writer, epoch } => ((FENCE, *writer, *epoch, 0, 0, *epoch), &[]),
    }
}

/// Encodes one event, stamped with the sink's append time (as a log's append time is: the
/// simulated ms at which the sink logged it).
fn encode_event(event: &SinkEvent, at_ms: u64, out: &mut Vec<u8>) {
    let (header, records) = header(event);
    let parts = std::slice::from_ref(&records);
    let body = match event {
        SinkEvent::Commit { upto, .. } => Body::Upto(*upto),
        SinkEvent::Prepare { received, .. } => Body::Records { received, parts },
        _ => Body::Records { received: &[], parts },
    };
    encode_frame(header, at_ms, body, out);
}

/// What follows an event's header in its frame.
enum Body<'a, R> {
    /// A commit carries no records: its body ends with the checkpoint that authorised it.
    Upto(u64),
    /// The records, in parts that encode as one frame of them all; a prepare's writes' arrival
    /// times and counts come first (none for the other events).
    Records { received: &'a [(u64, u32)], parts: &'a [R] },
}

/// Encodes one event's frame from its header and body.
fn encode_frame<R: AsRef<[OutputRecord]>>(header: Header, at_ms: u64, body: Body<'_, R>, out: &mut Vec<u8>) {
    let (kind, writer, epoch, txn, checkpoint, by_epoch) = header;
    let (received, records): (&[(u64, u32)], &[R]) = match &body {
        Body::Records { received, parts } => (received, parts),
        Body::Upto(_) => (&[], &[]),
    };
    // Straight into `out`: a prepare holds a whole checkpoint interval's records.
    let bytes: usize = records.iter().map(|part| codec::output_records_bytes(part.as_ref())).sum();
    out.reserve(2 * codec::HEADER_BYTES + 53 + 12 * received.len() + bytes);
    let start = codec::begin_frame(out);
    let frame = &mut *out;
    frame.extend_from_slice(&at_ms.to_le_bytes());
    frame.push(kind);
    frame.extend_from_slice(&writer.to_le_bytes());
    for word in [epoch, txn, checkpoint, by_epoch] {
        frame.extend_from_slice(&word.to_le_bytes());
    }
    if kind == PREPARE {
        frame.extend_from_slice(&(received.len() as u32).to_le_bytes());
        for &(at, n) in received {
            frame.extend_from_slice(&at.to_le_bytes());
            frame.extend_from_slice(&n.to_le_bytes());
        }
    }
    match body {
        Body::Upto(upto) => frame.extend_from_slice(&upto.to_le_bytes()),
        Body::Records { parts, .. } => codec::encode_output_record_parts(parts, frame),
    }
    codec::end_frame(out, start);
}

/// One event from its frame body; with the buffer `body` lies in, its records' long keys and
/// values share that buffer instead of being copied out of it.
fn decode_event(owner: Option<&Arc<Vec<u8>>>, body: &[u8]) -> (u64, SinkEvent) {
    let mut r = Reader::new(body);
    let at_ms = r.u64();
    (at_ms, decode_body(&mut r, owner))
}

fn decode_body<'a>(r: &mut Reader<'a>, owner: Option<&Arc<Vec<u8>>>) -> SinkEvent {
    let kind = r.u8();
    let writer = r.u32();
    let (epoch, txn, checkpoint, by_epoch) = (r.u64(), r.u64(), r.u64(), r.u64());
    let txn = TxnId { writer, epoch, txn };
    if kind == COMMIT {
        return SinkEvent::Commit { txn, checkpoint, by_epoch, upto: r.u64() };
    }
    let received: Vec<(u64, u32)> =
        if kind == PREPARE { (0..r.u32()).map(|_| (r.u64(), r.u32())).collect() } else { Vec::new() };
    let mut records = Vec::new();
    for frame in codec::frames(r.rest()).0 {
        match owner {
            Some(owner) => codec::decode_output_records_within(owner, frame, &mut records),
            None => codec::decode_output_records(frame, &mut records),
        }
    }
    match kind {
        APPEND => SinkEvent::Append { writer, epoch, records },
        UPSERT => SinkEvent::Upsert { writer, epoch, records },
        PREPARE => {
            let written: u64 = received.iter().map(|&(_, n)| u64::from(n)).sum();
            assert_eq!(written, records.len() as u64, "a prepare's writes hold its records");
            SinkEvent::Prepare { txn, checkpoint, records, received }
        }
        ABORT => SinkEvent::Abort { txn, checkpoint, by_epoch },
        FENCE => SinkEvent::Fence { writer, epoch },
        other => panic!("sink log event of unknown kind {other}: the checksum passed, so this is a bug"),
    }
}

/// Every event in a sink log, in order (a torn tail is cut off).
pub fn read_events(bytes: &[u8]) -> Vec<SinkEvent> {
    read_events_timed(bytes).into_iter().map(|(_, e)| e).collect()
}

/// Every event in a sink log with the simulated ms at which the sink logged it.
pub fn read_events_timed(bytes: &[u8]) -> Vec<(u64, SinkEvent)> {
    codec::frames(bytes).0.into_iter().map(|body| decode_event(None, body)).collect()
}

/// The events in a sink log's frame bodies (as `codec::frames` splits the log), in order, each
/// with the buffer it lies in: their records' long keys and values share those buffers.
pub fn events_of_frames(bodies: Vec<(&Arc<Vec<u8>>, &[u8])>) -> Vec<(u64, SinkEvent)> {
    bodies.into_iter().map(|(owner, body)| decode_event(Some(owner), body)).collect()
}

/// Each committed output record with the simulated ms at which it became visible to readers:
/// its append, its transaction's commit, or its upsert (every write of an id, not only the last).
pub fn read_committed_timed(bytes: &[u8]) -> Vec<(u64, OutputRecord)> {
    let mut out = Vec::new();
    let mut prepared: BTreeMap<TxnId, Vec<OutputRecord>> = BTreeMap::new();
    for (at_ms, event) in read_events_timed(bytes) {
        match event {
            SinkEvent::Append { records, .. } | SinkEvent::Upsert { records, .. } => {
                out.extend(records.into_iter().map(|r| (at_ms, r)))
            }
            SinkEvent::Prepare { txn, records, .. } => _ = prepared.insert(txn, records),
            SinkEvent::Commit { txn, .. } => {
                out.extend(prepared.remove(&txn).unwrap_or_default().into_iter().map(|r| (at_ms, r)))
            }
            SinkEvent::Abort { .. } | SinkEvent::Fence { .. } => {}
        }
    }
    out
}

/// The output `events` (the sink's log) committed: appended, upserted (the last record of each
/// id), and what committed transactions prepared.
pub fn committed_of(events: &[SinkEvent]) -> Vec<OutputRecord> {
    // At most every record written: room for them at once, rather than regrowing a vector of
    // the whole run's output.
    let written = events.iter().map(|e| match e {
        SinkEvent::Append { records, .. } | SinkEvent::Prepare { records, .. } => records.len(),
        _ => 0,
    });
    let mut out = Vec::with_capacity(written.sum());
    let mut prepared: BTreeMap<TxnId, &[OutputRecord]> = BTreeMap::new();
    let mut upserted = BTreeMap::new();
    for event in events {
        match event {
            SinkEvent::Append { records, .. } => out.extend_from_slice(records),
            SinkEvent::Prepare { txn, records, .. } => _ = prepared.insert(*txn, records),
            SinkEvent::Commit { txn, .. } => out.extend_from_slice(prepared.remove(txn).unwrap_or_default()),
            SinkEvent::Upsert { records, .. } => upserted.extend(records.iter().map(|r| (&r.id, r))),
            SinkEvent::Abort { .. } | SinkEvent::Fence { .. } => {}
        }
    }
    out.extend(upserted.into_values().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Cause;

    #[test]
    fn events_round_trip() {
        let cause = Cause { producer: 1, seq: 4 };
        let record = OutputRecord {
            id: OutputId::late(crate::record::KeyBytes::of(&3u64), cause),
            value: crate::sdk::Blob::from_static(&[1, 2, 3]),
            cause,
        };
        let txn = TxnId { writer: 1, epoch: 2, txn: 3 };
        let events = vec![
            SinkEvent::Append { writer: 0, epoch: 1, records: vec![record.clone()] },
            SinkEvent::Prepare {
                txn,
                checkpoint: 4,
                records: vec![record.clone(), record],
                received: vec![(3, 0), (5, 2)],
            },
            SinkEvent::Commit { txn, checkpoint: 4, by_epoch: 3, upto: 5 },
            SinkEvent::Abort { txn, checkpoint: 5, by_epoch: 3 },
            SinkEvent::Fence { writer: 1, epoch: 3 },
            SinkEvent::Upsert { writer: 0, epoch: 1, records: vec![] },
        ];
        let mut bytes = Vec::new();
        for (at_ms, e) in events.iter().enumerate() {
            encode_event(e, at_ms as u64 * 10, &mut bytes);
        }
        assert_eq!(read_events(&bytes), events);
        assert_eq!(committed_of(&read_events(&bytes)).len(), 3, "the append and the committed prepare's two");
        let times: Vec<u64> = read_committed_timed(&bytes).iter().map(|&(at, _)| at).collect();
        assert_eq!(times, [0, 20, 20], "the append's time, then the commit's for the prepared two");
    }

    /// A prepare is logged from its writes as they came, batch by batch: the frame is the one
    /// `SinkEvent::Prepare` of the writes joined encodes to.
    #[test]
    fn a_prepare_from_its_batches_is_the_prepare_of_them_joined() {
        let record = |seq: u64| OutputRecord {
            id: OutputId::late(crate::record::KeyBytes::of(&seq), Cause { producer: 0, seq }),
            value: crate::sdk::codec::encode(&format!("value of input {seq}, long enough to be shared")),
            cause: Cause { producer: 0, seq },
        };
        let writes: Vec<Vec<OutputRecord>> =
            vec![(0..3).map(record).collect(), vec![], (3..5).map(record).collect()];
        let txn = TxnId { writer: 2, epoch: 7, txn: 9 };
        let received = vec![(10, 3), (12, 0), (25, 2)];
        let joined =
            SinkEvent::Prepare { txn, checkpoint: 4, records: writes.concat(), received: received.clone() };
        let mut want = Vec::new();
        encode_event(&joined, 30, &mut want);
        let mut got = Vec::new();
        let header = (PREPARE, txn.writer, txn.epoch, txn.txn, 4, txn.epoch);
        encode_frame(header, 30, Body::Records { received: &received, parts: &writes }, &mut got);
        assert_eq!(got, want);
        assert_eq!(read_events(&got), vec![joined]);
    }
}
