//! The producer node: emits its share of the seeded workload into the log, idempotently.
//!
//! # Protocol
//! 1. Events become due at their emission time (simulated ms since the run began) and queue per
//!    partition, numbered by a per-partition sequence: the n-th record this producer writes to a
//!    partition carries seq n, whatever the batching.
//! 2. A partition has at most one batch in flight; a batch leaves when full (`batch_records`),
//!    when its oldest record waited `linger_ms`, or when the workload is exhausted.
//! 3. An unanswered batch is resent unchanged after `request_timeout_ms`, to the next replica of
//!    the partition (its leader may have died); a broker that does not lead the partition
//!    answers `NotLeader` with the leader it knows, and the batch goes there shortly. The
//!    leader drops the records it already holds, so a retry never duplicates.
//! 4. On acknowledgement the producer records its per-partition progress durably (synced), so
//!    a restarted producer regenerates the workload and skips what was acknowledged.
//! 5. After its last event, it writes an end-of-stream record to every partition.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::broker::{BrokerRequest, BrokerResponse};
use crate::clock;
use crate::cluster::{NodeId, Role, BROKER_PORT};
use crate::codec::{self, Reader};
use crate::net::{Client, Tx};
use crate::observe::{NodeContext, TraceEvent};
use crate::record::{LogRecord, Payload};
use crate::workload::Emitted;

const PROGRESS_FILE: &str = "progress";

/// One partition's outgoing state.
#[derive(Default)]
struct Lane {
    /// Records not yet sent, oldest first, and when the oldest became due.
    queued: VecDeque<LogRecord>,
    queued_since_ms: u64,
    in_flight: Option<InFlight>,
    /// Records acknowledged so far (= the next seq the broker has not confirmed).
    acked: u64,
    /// Sequence number for the next record generated for this partition.
    next_seq: u64,
    end_queued: bool,
    /// The broker believed to lead the partition.
    leader: u32,
}

struct InFlight {
    records: Arc<Vec<LogRecord>>,
    /// When the batch goes out again unless acknowledged first.
    retry_at_ms: u64,
    /// A broker pointed elsewhere: the next resend goes to `Lane::leader` as it stands.
    redirected: bool,
}

/// How soon a batch refused with `NotLeader` is resent to the leader named.
const NOT_LEADER_RETRY_MS: u64 = 20;

struct Producer {
    ctx: NodeContext,
    me: u32,
    /// The pipeline's input generator: this producer's share, in emission order.
    events: Box<dyn Iterator<Item = Emitted> + Send>,
    /// The next event the workload will emit; `None` once it is exhausted.
    upcoming: Option<Emitted>,
    lanes: Vec<Lane>,
    client: Client,
    /// Connections to brokers, opened on first use and dropped on error.
    conns: BTreeMap<u32, Tx<BrokerRequest>>,
    acks_tx: mpsc::UnboundedSender<BrokerResponse>,
}

/// The producer node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    let mut producer = Producer::boot(ctx, acks_tx).await;
    while !producer.finished() {
        producer.pump().await;
        let wake = producer.next_wake_ms();
        let wait = Duration::from_millis(wake.saturating_sub(clock::elapsed_ms()).max(1));
        if let Ok(Some(ack)) = madsim::time::timeout(wait, acks.recv()).await {
            producer.on_response(ack);
            while let Ok(ack) = acks.try_recv() {
                producer.on_response(ack);
            }
        }
    }
}

impl Producer {
    async fn boot(ctx: NodeContext, acks_tx: mpsc::UnboundedSender<BrokerResponse>) -> Self {
        let me = ctx.id.index;
        let partitions = ctx.cluster.partitions() as usize;
        let mut lanes: Vec<Lane> = (0..partitions)
            .map(|p| Lane { leader: ctx.cluster.leader_of(p as u32), ..Lane::default() })
            .collect();
        let acked = load_progress(&ctx, partitions);
        for (lane, acked) in lanes.iter_mut().zip(acked) {
            lane.acked = acked;
        }
        let mut events = ctx.catalog.build(&ctx.cluster.job.pipeline).generate(&ctx.cluster.workload, me);
        let upcoming = events.next();
        let client = Client::bind().await;
        Producer { ctx, me, events, upcoming, lanes, client, conns: BTreeMap::new(), acks_tx }
    }

    fn finished(&self) -> bool {
        self.upcoming.is_none()
            && self.lanes.iter().all(|l| l.end_queued && l.queued.is_empty() && l.in_flight.is_none())
    }

    /// Moves due events into lanes, then sends every batch that is ready.
    async fn pump(&mut self) {
        let now = clock::elapsed_ms();
        self.generate(now);
        for p in 0..self.lanes.len() {
            if self.ready(p, now) {
                self.send(p as u32, now).await;
            } else if self.timed_out(p, now) {
                self.resend(p as u32, now).await;
            }
        }
    }

    fn generate(&mut self, now: u64) {
        let limit = 4 * self.ctx.cluster.settings.batch_records;
        while let Some(Emitted { partition, emit_at_ms, .. }) = self.upcoming {
            let lane = &mut self.lanes[partition as usize];
            if emit_at_ms > now || lane.queued.len() >= limit {
                break;
            }
            let Emitted { event, .. } =
                std::mem::replace(&mut self.upcoming, self.events.next()).expect("matched above");
            let lane = &mut self.lanes[partition as usize];
            let seq = lane.next_seq;
            lane.next_seq += 1;
            if seq < lane.acked {
                continue; // acknowledged before a restart
            }
            let record =
                LogRecord { producer: self.me, seq, stream_time_ms: 0, payload: Payload::Data(event) };
            push(lane, record, now);
        }
        if self.upcoming.is_none() {
            for lane in &mut self.lanes {
                if !lane.end_queued {
                    lane.end_queued = true;
                    let seq = lane.next_seq;
                    lane.next_seq += 1;
                    if seq >= lane.acked {
                        let end = LogRecord {
                            producer: self.me,
                            seq,
                            stream_time_ms: 0,
                            payload: Payload::EndOfStream,
                        };
                        push(lane, end, now);
                    }
                }
            }
        }
    }

    fn ready(&self, p: usize, now: u64) -> bool {
        let lane = &self.lanes[p];
        let settings = &self.ctx.cluster.settings;
        lane.in_flight.is_none()
            && !lane.queued.is_empty()
            && (lane.queued.len() >= settings.batch_records
                || now >= lane.queued_since_ms + settings.linger_ms
                || self.upcoming.is_none())
    }

    fn timed_out(&self, p: usize, now: u64) -> bool {
        self.lanes[p].in_flight.as_ref().is_some_and(|f| now >= f.retry_at_ms)
    }

    async fn send(&mut self, partition: u32, now: u64) {
        let batch = self.ctx.cluster.settings.batch_records;
        let lane = &mut self.lanes[partition as usize];
        let n = lane.queued.len().min(batch);
        let records = Arc::new(lane.queued.drain(..n).collect::<Vec<LogRecord>>());
        lane.queued_since_ms = now;
        let base_seq = records[0].seq;
        let retry_at_ms = now + self.ctx.cluster.settings.request_timeout_ms;
        lane.in_flight = Some(InFlight { records, retry_at_ms, redirected: false });
        self.ctx.trace(TraceEvent::ProduceSent { partition, base_seq, records: n as u64 });
        self.transmit(partition).await;
    }

    async fn resend(&mut self, partition: u32, now: u64) {
        let timeout = self.ctx.cluster.settings.request_timeout_ms;
        let replicas = self.ctx.cluster.replicas_of(partition);
        let lane = &mut self.lanes[partition as usize];
        let in_flight = lane.in_flight.as_mut().expect("resend without a batch in flight");
        if !std::mem::take(&mut in_flight.redirected) {
            // Unanswered for a whole timeout: the leader may be gone; try the next replica.
            lane.leader = next_replica(&replicas, lane.leader);
        }
        in_flight.retry_at_ms = now + timeout;
        self.transmit(partition).await;
    }

    /// Sends the partition's in-flight batch to its leader; a failure waits for the retry timer.
    async fn transmit(&mut self, partition: u32) {
        let leader = self.lanes[partition as usize].leader;
        let records = self.lanes[partition as usize].in_flight.as_ref().unwrap().records.clone();
        let request = BrokerRequest::Produce { partition, producer: self.me, records };
        if !self.conns.contains_key(&leader) && !self.open(leader).await {
            return;
        }
        if self.conns[&leader].send(request).await.is_err() {
            self.conns.remove(&leader);
        }
    }

    /// Connects to a broker and forwards its responses to the main loop.
    async fn open(&mut self, broker: u32) -> bool {
        let addr = NodeId::new(Role::Broker, broker).addr(BROKER_PORT);
        let Ok((tx, mut rx)) = self.client.connect::<BrokerRequest, BrokerResponse>(addr).await else {
            return false;
        };
        let acks = self.acks_tx.clone();
        madsim::task::spawn_local(async move {
            while let Ok(response) = rx.recv().await {
                if acks.send(response).is_err() {
                    break;
                }
            }
        });
        self.conns.insert(broker, tx);
        true
    }

    fn on_response(&mut self, response: BrokerResponse) {
        let (partition, end_seq) = match response {
            BrokerResponse::Produced { partition, end_seq } => (partition, end_seq),
            BrokerResponse::NotLeader { partition, leader } => return self.redirect(partition, leader),
            _ => return,
        };
        let lane = &mut self.lanes[partition as usize];
        let Some(in_flight) = &lane.in_flight else { return };
        if end_seq != in_flight.records.last().unwrap().seq + 1 {
            return; // a late answer to an earlier batch
        }
        assert!(end_seq > lane.acked, "acknowledgements move forward");
        lane.in_flight = None;
        lane.acked = end_seq;
        self.ctx.trace(TraceEvent::ProduceAcked { partition, end_seq });
        self.save_progress();
    }

    /// A broker refused the partition's batch: resend it soon, to the leader it named (or,
    /// if it knew none, to the next replica).
    fn redirect(&mut self, partition: u32, leader: Option<u32>) {
        let replicas = self.ctx.cluster.replicas_of(partition);
        let lane = &mut self.lanes[partition as usize];
        lane.leader = leader.unwrap_or_else(|| next_replica(&replicas, lane.leader));
        if let Some(f) = lane.in_flight.as_mut() {
            f.retry_at_ms = f.retry_at_ms.min(clock::elapsed_ms() + NOT_LEADER_RETRY_MS);
            f.redirected = true;
        }
    }

    fn save_progress(&self) {
        let mut body = Vec::with_capacity(self.lanes.len() * 8);
        for lane in &self.lanes {
            body.extend_from_slice(&lane.acked.to_le_bytes());
        }
        self.ctx.disk.replace(PROGRESS_FILE, &codec::framed(&body));
        self.ctx.disk.sync(PROGRESS_FILE);
    }

    /// The next simulated ms at which something may be due: an event, a linger, a retry.
    fn next_wake_ms(&self) -> u64 {
        let settings = self.ctx.cluster.settings.clone();
        let mut wake = clock::elapsed_ms() + settings.request_timeout_ms;
        if let Some(next) = &self.upcoming {
            if self.lanes[next.partition as usize].queued.len() < 4 * settings.batch_records {
                wake = wake.min(next.emit_at_ms);
            }
        }
        for lane in &self.lanes {
            match &lane.in_flight {
                Some(f) => wake = wake.min(f.retry_at_ms),
                None if !lane.queued.is_empty() => wake = wake.min(lane.queued_since_ms + settings.linger_ms),
                None => {}
            }
        }
        wake
    }
}

/// The replica after `current` in the partition's replica list, wrapping around.
pub fn next_replica(replicas: &[u32], current: u32) -> u32 {
    let at = replicas.iter().position(|&b| b == current).unwrap_or(replicas.len() - 1);
    replicas[(at + 1) % replicas.len()]
}

fn push(lane: &mut Lane, record: LogRecord, now: u64) {
    if lane.queued.is_empty() {
        lane.queued_since_ms = now;
    }
    lane.queued.push_back(record);
}

fn load_progress(ctx: &NodeContext, partitions: usize) -> Vec<u64> {
    let mut acked = vec![0; partitions];
    if let Some(bytes) = ctx.disk.read(PROGRESS_FILE) {
        if let Some(body) = codec::first_frame(&bytes) {
            let mut r = Reader::new(body);
            for a in acked.iter_mut() {
                *a = r.u64();
            }
        }
    }
    acked
}
