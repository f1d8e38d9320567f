//! The broker node: serves produce, fetch and replicate requests for the partitions it holds.
//!
//! # Protocol
//! 1. A producer sends `Produce` to the partition leader. The leader drops records it already
//!    holds (idempotent producer: `(producer, seq)`), appends the rest in its epoch and syncs.
//!    A batch that starts past the producer's next `seq` in the leader's copy means another
//!    replica led and acknowledged the records between: this broker was deposed without
//!    learning it yet (paused, cut off). It refuses the batch (`NotLeader`, no leader known)
//!    and appends nothing; its control task learns of the new epoch on its next tick.
//! 2. For each follower, a replication task pushes `Replicate` batches (or, when idle, empty
//!    ones as heartbeats) in offset order. A follower refuses an older epoch (`Fenced`), checks
//!    that its log matches the leader's just before the batch (`Diverged` if not, with its
//!    epoch runs, from which the leader finds the divergence point and resends from there),
//!    truncates uncommitted records of a lost epoch, appends, syncs and answers `Replicated`.
//! 3. The leader's high watermark is the smallest matched offset among the in-sync replicas
//!    (itself included). The `Produced` acknowledgement is sent only once the watermark covers
//!    the batch, so an acknowledged record is on every in-sync replica's disk.
//! 4. `Fetch` returns committed records only (below the high watermark); a fetch with nothing to
//!    return waits up to `fetch_wait_ms` for more. Anything but the leader answers `NotLeader`
//!    with the leader it knows of.
//!
//! Leadership and the in-sync set live in the store and change by compare-and-set (see
//! `metadata` and `control`): a follower that hears nothing from its leader for
//! `heartbeat_timeout_ms` takes over if it is in sync, bumping the epoch; a leader drops a
//! follower that stopped catching up from the in-sync set before committing without it.

mod control;
pub mod metadata;
pub mod partition;
mod replication;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::clock;
use crate::cluster::BROKER_PORT;
use crate::codec::RawLogRecords;
use crate::net::{Client, Listener, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};
use crate::record::LogRecord;
use crate::store::StoreClient;
use partition::{Appended, Partition};

/// Requests a broker serves.
#[derive(Debug)]
pub enum BrokerRequest {
    /// The records are shared with the producer, which keeps them until acknowledged.
    Produce {
        partition: u32,
        producer: u32,
        records: std::sync::Arc<Vec<LogRecord>>,
    },
    Replicate(Replicate),
    Fetch {
        partition: u32,
        offset: u64,
        max_records: usize,
    },
}

/// A broker's answers.
#[derive(Debug)]
pub enum BrokerResponse {
    Produced {
        partition: u32,
        end_seq: u64,
    },
    /// The follower's log matches the leader's up to `matched`.
    Replicated {
        partition: u32,
        epoch: u64,
        matched: u64,
    },
    /// The follower's log does not match just before the batch: its epoch runs and end.
    Diverged {
        partition: u32,
        epoch: u64,
        runs: Vec<(u64, u64)>,
        log_end: u64,
    },
    /// The follower knows a newer leader epoch: the sender was deposed.
    Fenced {
        partition: u32,
        epoch: u64,
    },
    Fetched {
        partition: u32,
        offset: u64,
        records: Vec<LogRecord>,
    },
    /// Not the leader; `leader` is the one this broker knows of, if any.
    NotLeader {
        partition: u32,
        leader: Option<u32>,
    },
}

/// Leader to follower: records from `base_offset`, all of `batch_epoch`; `prev_epoch` is the
/// epoch of the leader's record at `base_offset - 1` (0 when `base_offset` is 0).
#[derive(Debug)]
pub struct Replicate {
    pub partition: u32,
    pub epoch: u64,
    pub leader: u32,
    pub base_offset: u64,
    pub prev_epoch: u64,
    pub batch_epoch: u64,
    /// The records from `base_offset`, as the leader's disk holds them.
    pub records: RawLogRecords,
    pub high_watermark: u64,
}

type Reply = Rc<Tx<BrokerResponse>>;

/// A produce acknowledgement held until the high watermark reaches `end_offset`.
struct PendingAck {
    end_offset: u64,
    end_seq: u64,
    reply: Reply,
}

/// The leader's view of one follower.
#[derive(Clone, Copy, Debug)]
struct FollowerView {
    /// Where the next batch starts.
    next: u64,
    /// Offset up to which the follower's log matches ours (`None` until it answered this epoch).
    matched: Option<u64>,
    /// When it last answered with everything we had.
    caught_up_ms: u64,
}

/// Leader bookkeeping for one partition.
struct Leadership {
    /// The in-sync set as the store holds it, to this leader's knowledge.
    isr: Vec<u32>,
    /// An in-sync set this leader asked the store for and has no answer about: the store may
    /// hold it already, and a replica it adds may already be elected by it. Until the answer,
    /// the high watermark counts the members of both (Kafka's maximal ISR, KIP-497).
    proposed: Option<Vec<u32>>,
    followers: BTreeMap<u32, FollowerView>,
    pending: Vec<PendingAck>,
}

impl Leadership {
    /// Every replica the store's in-sync set may hold now.
    fn maximal_isr(&self) -> impl Iterator<Item = u32> + '_ {
        let proposed = self.proposed.iter().flatten().filter(|b| !self.isr.contains(b));
        self.isr.iter().chain(proposed).copied()
    }
}

/// This broker's replica of one partition.
struct Replica {
    log: Partition,
    /// The newest leader epoch this replica knows of, and its leader.
    epoch: u64,
    leader: Option<u32>,
    /// `Some` while this broker leads the partition.
    leading: Option<Leadership>,
    /// Changes whenever leadership is gained or lost: replication tasks of an older one stop.
    generation: u64,
    /// When the leader was last heard from (a follower's failure detector).
    heard_ms: u64,
}

pub(crate) struct Broker {
    ctx: NodeContext,
    client: Rc<Client>,
    store: Rc<StoreClient>,
    replicas: BTreeMap<u32, Replica>,
}

type Shared = Rc<RefCell<Broker>>;

/// The broker node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let client = Rc::new(Client::bind().await);
    let store = Rc::new(StoreClient::new(&ctx, client.clone()));
    let broker = Rc::new(RefCell::new(Broker::open(ctx, client, store)));
    let listener = Listener::<BrokerRequest, BrokerResponse>::bind(BROKER_PORT).await;
    control::start(&broker);
    loop {
        let Ok((tx, rx, _from)) = listener.accept().await else { continue };
        madsim::task::spawn_local(serve(broker.clone(), Rc::new(tx), rx));
    }
}

impl Broker {
    fn open(ctx: NodeContext, client: Rc<Client>, store: Rc<StoreClient>) -> Self {
        let me = ctx.id.index;
        let now = clock::elapsed_ms();
        let replicas = (0..ctx.cluster.partitions())
            .filter(|&p| ctx.cluster.replicas_of(p).contains(&me))
            .map(|p| {
                let log = Partition::open(p, ctx.disk.clone());
                let replica =
                    Replica { log, epoch: 0, leader: None, leading: None, generation: 0, heard_ms: now };
                (p, replica)
            })
            .collect();
        Broker { ctx, client, store, replicas }
    }

    /// Stream time: the run's base event time plus the simulated time elapsed.
    fn stream_time_ms(&self) -> u64 {
        self.ctx.cluster.base_time_ms + clock::elapsed_ms()
    }

    /// Appends a producer's batch as the partition's leader; the acknowledgement waits for the
    /// high watermark. A refusal is returned for the caller to send: a batch past what this copy
    /// holds of the producer means another replica led meanwhile (this one was paused or cut
    /// off, and has not yet learned it was deposed), so the producer is pointed elsewhere.
    fn produce(
        &mut self,
        partition: u32,
        producer: u32,
        records: &[LogRecord],
        reply: Reply,
    ) -> Option<BrokerResponse> {
        let end_seq = records.last().expect("empty produce batch").seq + 1;
        let now_ms = self.stream_time_ms();
        let replica = self.replicas.get_mut(&partition).expect("checked by caller");
        let end_offset = match replica.log.append_produced(replica.epoch, producer, records, now_ms) {
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
            Appended::Gap { next_seq } => {
                let (base_seq, epoch) = (records[0].seq, replica.epoch);
                tracing::info!(
                    partition,
                    producer,
                    base_seq,
                    next_seq,
                    epoch,
                    "batch past this copy: deposed?"
                );
                self.ctx.trace(TraceEvent::ProduceGap { partition, producer, base_seq, next_seq });
                return Some(BrokerResponse::NotLeader { partition, leader: None });
            }
        };
        let leadership = replica.leading.as_mut().expect("checked by caller");
        leadership.pending.push(PendingAck { end_offset, end_seq, reply });
        self.update_high_watermark(partition);
        None
    }

    /// Recomputes a led partition's high watermark and releases the acknowledgements it covers.
    /// Until every in-sync follower has answered in this epoch, the watermark stays put.
    fn update_high_watermark(&mut self, partition: u32) {
        let me = self.ctx.id.index;
        let replica = self.replicas.get_mut(&partition).unwrap();
        let Some(leadership) = replica.leading.as_mut() else { return };
        let mut hw = replica.log.log_end();
        for b in leadership.maximal_isr().filter(|&b| b != me) {
            match leadership.followers[&b].matched {
                Some(matched) => hw = hw.min(matched),
                None => return,
            }
        }
        if replica.log.advance_high_watermark(hw) {
            tracing::debug!(partition, high_watermark = hw, "high watermark advanced");
            self.ctx.trace(TraceEvent::HighWatermark { partition, epoch: replica.epoch, offset: hw });
        }
        let hw = replica.log.high_watermark;
        let (done, waiting) = leadership.pending.drain(..).partition(|a| a.end_offset <= hw);
        leadership.pending = waiting;
        for ack in done {
            let reply = ack.reply.clone();
            let msg = BrokerResponse::Produced { partition, end_seq: ack.end_seq };
            // A reset connection loses the acknowledgement; the producer retries.
            madsim::task::spawn_local(async move { _ = reply.send(msg).await });
        }
    }

    /// A follower's side of `Replicate`.
    fn replicate(&mut self, request: Replicate) -> BrokerResponse {
        let Replicate {
            partition,
            epoch,
            leader,
            base_offset,
            prev_epoch,
            batch_epoch,
            records,
            high_watermark,
        } = request;
        let replica =
            self.replicas.get_mut(&partition).expect("a leader replicates to the partition's replicas");
        if epoch < replica.epoch {
            return BrokerResponse::Fenced { partition, epoch: replica.epoch };
        }
        if epoch > replica.epoch || replica.leader != Some(leader) {
            assert!(epoch > replica.epoch || replica.leading.is_none(), "two leaders in epoch {epoch}");
            self.follow(partition, epoch, Some(leader));
        }
        let replica = self.replicas.get_mut(&partition).unwrap();
        replica.heard_ms = clock::elapsed_ms();
        let log = &mut replica.log;
        let prev_matches = base_offset == 0 || log.epoch_at(base_offset - 1) == Some(prev_epoch);
        if base_offset > log.log_end() || !prev_matches {
            return BrokerResponse::Diverged { partition, epoch, runs: log.epochs(), log_end: log.log_end() };
        }
        let appended = log.append_replicated(batch_epoch, base_offset, records);
        log.advance_high_watermark(high_watermark.min(appended.matched));
        if let Some((offset, epoch)) = appended.truncated {
            self.ctx.trace(TraceEvent::Truncated { partition, epoch, offset });
        }
        if let Some((base_offset, records)) = appended.new_records {
            self.ctx.trace(TraceEvent::Appended { partition, base_offset, records });
        }
        let matched = appended.matched;
        BrokerResponse::Replicated { partition, epoch, matched }
    }

    /// Becomes a follower in `epoch` (of `leader`, if known), giving up any leadership. Pending
    /// acknowledgements are dropped: their producers time out and retry with the new leader.
    fn follow(&mut self, partition: u32, epoch: u64, leader: Option<u32>) {
        let replica = self.replicas.get_mut(&partition).unwrap();
        assert!(epoch >= replica.epoch, "partition {partition}: following an older epoch");
        if replica.leading.take().is_some() {
            tracing::info!(partition, epoch, ?leader, "deposed");
            self.ctx.trace(TraceEvent::LeaderResigned { partition, epoch: replica.epoch });
        }
        replica.generation += 1;
        replica.epoch = epoch;
        replica.leader = leader;
        replica.heard_ms = clock::elapsed_ms();
    }

    /// The leader this broker knows of for a partition it is asked about but does not lead.
    fn not_leader(&self, partition: u32) -> Option<BrokerResponse> {
        match self.replicas.get(&partition) {
            Some(r) if r.leading.is_some() => None,
            Some(r) => Some(BrokerResponse::NotLeader { partition, leader: r.leader }),
            None => Some(BrokerResponse::NotLeader { partition, leader: None }),
        }
    }
}

/// Serves one connection's requests in order; fetches that must wait run on their own.
async fn serve(broker: Shared, reply: Reply, mut rx: Rx<BrokerRequest>) {
    while let Ok(request) = rx.recv().await {
        match request {
            BrokerRequest::Produce { partition, producer, records } => {
                let refused = broker.borrow().not_leader(partition);
                let refused = refused
                    .or_else(|| broker.borrow_mut().produce(partition, producer, &records, reply.clone()));
                if let Some(refusal) = refused {
                    _ = reply.send(refusal).await;
                }
            }
            BrokerRequest::Replicate(request) => {
                let response = broker.borrow_mut().replicate(request);
                _ = reply.send(response).await;
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
    broker.borrow().replicas[&partition].log.read_committed(offset, max)
}

async fn fetch(broker: Shared, reply: Reply, partition: u32, offset: u64, max_records: usize) {
    let refused = broker.borrow().not_leader(partition);
    if let Some(refusal) = refused {
        _ = reply.send(refusal).await;
        return;
    }
    let wait = Duration::from_millis(broker.borrow().ctx.cluster.settings.fetch_wait_ms);
    let changed = broker.borrow().replicas[&partition].log.changed.clone();
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
    _ = reply.send(BrokerResponse::Fetched { partition, offset, records }).await;
}
