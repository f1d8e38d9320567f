//! The broker node: serves produce, fetch and replicate requests for the partitions it holds.
//!
//! # Protocol
//! 1. A producer sends `Produce` to the partition leader. The leader drops records it already
//!    holds (idempotent producer: `(producer, seq)`), appends the rest and syncs them.
//! 2. For each follower, a replication task pushes `Replicate` batches in offset order; the
//!    follower appends, syncs and answers with its log end.
//! 3. The leader's high watermark is the smallest log end among the in-sync replicas (itself
//!    included). The `Produced` acknowledgement is sent only once the watermark covers the batch.
//! 4. `Fetch` returns committed records only (below the high watermark); a fetch with nothing to
//!    return waits up to `fetch_wait_ms` for more.
//!
//! Leadership is static in this version: the preferred replica (see `ClusterSpec::replicas_of`).

pub mod partition;
mod replication;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::clock;
use crate::cluster::BROKER_PORT;
use crate::net::{Listener, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};
use crate::record::LogRecord;
use partition::{Appended, Partition};

/// Requests a broker serves.
#[derive(Debug)]
pub enum BrokerRequest {
    Produce { partition: u32, producer: u32, records: Vec<LogRecord> },
    Replicate { partition: u32, base_offset: u64, records: Vec<LogRecord> },
    Fetch { partition: u32, offset: u64, max_records: usize },
}

/// A broker's answers.
#[derive(Debug)]
pub enum BrokerResponse {
    Produced { partition: u32, end_seq: u64 },
    Replicated { partition: u32, log_end: u64 },
    Fetched { partition: u32, offset: u64, records: Vec<LogRecord> },
    NotLeader { partition: u32 },
}

type Reply = Rc<Tx<BrokerResponse>>;

/// A produce acknowledgement held until the high watermark reaches `end_offset`.
struct PendingAck {
    end_offset: u64,
    end_seq: u64,
    reply: Reply,
}

/// Per-partition leader bookkeeping.
struct Leadership {
    /// Log end of each follower, as last acknowledged.
    follower_log_end: BTreeMap<u32, u64>,
    pending: Vec<PendingAck>,
}

pub(crate) struct Broker {
    ctx: NodeContext,
    partitions: BTreeMap<u32, Partition>,
    leading: BTreeMap<u32, Leadership>,
}

type Shared = Rc<RefCell<Broker>>;

/// The broker node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let broker = Rc::new(RefCell::new(Broker::open(ctx.clone())));
    let listener = Listener::<BrokerRequest, BrokerResponse>::bind(BROKER_PORT).await;
    replication::start(&broker);
    loop {
        let Ok((tx, rx, _from)) = listener.accept().await else { continue };
        madsim::task::spawn_local(serve(broker.clone(), Rc::new(tx), rx));
    }
}

impl Broker {
    fn open(ctx: NodeContext) -> Self {
        let me = ctx.id.index;
        let cluster = ctx.cluster.clone();
        let mut partitions = BTreeMap::new();
        let mut leading = BTreeMap::new();
        for p in 0..cluster.partitions() {
            let replicas = cluster.replicas_of(p);
            if !replicas.contains(&me) {
                continue;
            }
            partitions.insert(p, Partition::open(p, ctx.disk.clone()));
            if replicas[0] == me {
                let follower_log_end = replicas[1..].iter().map(|&b| (b, 0)).collect();
                leading.insert(p, Leadership { follower_log_end, pending: Vec::new() });
            }
        }
        Broker { ctx, partitions, leading }
    }

    fn produce(&mut self, partition: u32, producer: u32, records: &[LogRecord], reply: Reply) {
        let end_seq = records.last().expect("empty produce batch").seq + 1;
        let log = self.partitions.get_mut(&partition).expect("leader holds the partition");
        let end_offset = match log.append_produced(producer, records) {
            Appended::New { base_offset, end_offset } => {
                let records = end_offset - base_offset;
                self.ctx.trace(TraceEvent::Appended { partition, base_offset, records });
                end_offset
            }
            Appended::Duplicate { end_offset } => {
                let base_seq = records[0].seq;
                self.ctx.trace(TraceEvent::DuplicateBatch { partition, producer, base_seq });
                end_offset
            }
        };
        let leadership = self.leading.get_mut(&partition).expect("checked by caller");
        leadership.pending.push(PendingAck { end_offset, end_seq, reply });
        self.update_high_watermark(partition);
    }

    /// Recomputes a led partition's high watermark and releases the acknowledgements it covers.
    fn update_high_watermark(&mut self, partition: u32) {
        let log = self.partitions.get_mut(&partition).unwrap();
        let leadership = self.leading.get_mut(&partition).unwrap();
        let followers_min = leadership.follower_log_end.values().copied().min();
        let hw = followers_min.map_or(log.log_end(), |f| f.min(log.log_end()));
        if log.advance_high_watermark(hw) {
            tracing::debug!(partition, high_watermark = hw, "high watermark advanced");
            self.ctx.trace(TraceEvent::HighWatermark { partition, offset: hw });
        }
        let hw = log.high_watermark;
        let (done, waiting) = leadership.pending.drain(..).partition(|a| a.end_offset <= hw);
        leadership.pending = waiting;
        for ack in done {
            let reply = ack.reply.clone();
            let msg = BrokerResponse::Produced { partition, end_seq: ack.end_seq };
            // A reset connection loses the acknowledgement; the producer retries.
            madsim::task::spawn_local(async move { _ = reply.send(msg).await });
        }
    }

    fn replicate(&mut self, partition: u32, base_offset: u64, records: &[LogRecord]) -> u64 {
        let log = self.partitions.get_mut(&partition).expect("follower holds the partition");
        let before = log.log_end();
        let log_end = log.append_replicated(base_offset, records);
        if log_end > before {
            let records = log_end - before;
            self.ctx.trace(TraceEvent::Appended { partition, base_offset: before, records });
        }
        log_end
    }
}

/// Serves one connection's requests in order; fetches that must wait run on their own.
async fn serve(broker: Shared, reply: Reply, mut rx: Rx<BrokerRequest>) {
    while let Ok(request) = rx.recv().await {
        match request {
            BrokerRequest::Produce { partition, producer, records } => {
                if !broker.borrow().leading.contains_key(&partition) {
                    _ = reply.send(BrokerResponse::NotLeader { partition }).await;
                    continue;
                }
                broker.borrow_mut().produce(partition, producer, &records, reply.clone());
            }
            BrokerRequest::Replicate { partition, base_offset, records } => {
                let log_end = broker.borrow_mut().replicate(partition, base_offset, &records);
                _ = reply.send(BrokerResponse::Replicated { partition, log_end }).await;
            }
            BrokerRequest::Fetch { partition, offset, max_records } => {
                let task = fetch(broker.clone(), reply.clone(), partition, offset, max_records);
                madsim::task::spawn_local(task);
            }
        }
    }
}

/// Copies committed records out, releasing the borrow before the caller awaits anything.
fn read_committed(broker: &Shared, partition: u32, offset: u64, max: usize) -> Vec<LogRecord> {
    broker.borrow().partitions[&partition].read_committed(offset, max)
}

async fn fetch(broker: Shared, reply: Reply, partition: u32, offset: u64, max_records: usize) {
    if !broker.borrow().leading.contains_key(&partition) {
        _ = reply.send(BrokerResponse::NotLeader { partition }).await;
        return;
    }
    let wait = Duration::from_millis(broker.borrow().ctx.cluster.settings.fetch_wait_ms);
    let changed = broker.borrow().partitions[&partition].changed.clone();
    let deadline = clock::now() + wait;
    let records = loop {
        let notified = changed.notified();
        let records = read_committed(&broker, partition, offset, max_records);
        if !records.is_empty() {
            break records;
        }
        if clock::until(deadline, notified).await.is_none() {
            break Vec::new();
        }
    };
    if !records.is_empty() {
        let n = records.len() as u64;
        broker.borrow().ctx.trace(TraceEvent::Fetched { partition, offset, records: n });
    }
    _ = reply.send(BrokerResponse::Fetched { partition, offset, records }).await;
}
