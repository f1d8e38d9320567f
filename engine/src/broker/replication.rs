//! Leader-to-follower replication: one task per (led partition, follower), for one leadership.
//!
//! # Protocol
//! 1. The task sends `Replicate` from the follower's next offset: up to `batch_records` records
//!    of one epoch, the epoch of the record before them, and the high watermark. With nothing
//!    new, it sends an empty one every `heartbeat_interval_ms` (the follower's proof of life).
//! 2. `Replicated { matched }`: the follower's log equals the leader's up to `matched`; that
//!    counts toward the high watermark, and if the batch held everything, the follower has
//!    caught up.
//! 3. `Diverged`: the leader compares epoch runs, finds where the logs part, and resends from
//!    there; the follower truncates what differs.
//! 4. `Fenced`: a newer leader exists; this broker steps down, and the task ends.
//! 5. A lost or slow answer drops the connection; the task reconnects and resends. It ends
//!    when the leadership it serves ends.

use std::rc::Rc;
use std::time::Duration;

use super::partition::divergence;
use super::{BrokerRequest, BrokerResponse, Replicate, Shared};
use crate::clock;
use crate::cluster::{NodeId, Role, BROKER_PORT};
use crate::net::{Rx, Tx};

pub(super) fn start(broker: &Shared, partition: u32, generation: u64) {
    let followers: Vec<u32> = broker.borrow().replicas[&partition]
        .leading
        .as_ref()
        .map_or(Vec::new(), |l| l.followers.keys().copied().collect());
    for follower in followers {
        madsim::task::spawn_local(replicate_to(broker.clone(), partition, follower, generation));
    }
}

fn current(broker: &Shared, partition: u32, generation: u64) -> bool {
    let b = broker.borrow();
    let r = &b.replicas[&partition];
    r.generation == generation && r.leading.is_some()
}

async fn replicate_to(broker: Shared, partition: u32, follower: u32, generation: u64) {
    let addr = NodeId::new(Role::Broker, follower).addr(BROKER_PORT);
    let client = broker.borrow().client.clone();
    let retry = Duration::from_millis(broker.borrow().ctx.cluster.settings.heartbeat_interval_ms);
    while current(&broker, partition, generation) {
        match client.connect::<BrokerRequest, BrokerResponse>(addr).await {
            Ok((tx, rx)) => stream_to(&broker, Rc::new(tx), rx, partition, follower, generation).await,
            Err(_) => madsim::time::sleep(retry).await,
        }
    }
}

/// One batch for a follower: the request, where it ends, and whether it holds all we have.
struct Batch {
    request: BrokerRequest,
    end: u64,
    complete: bool,
    empty: bool,
}

fn next_batch(broker: &Shared, partition: u32, follower: u32) -> Batch {
    let b = broker.borrow();
    let r = &b.replicas[&partition];
    let view = r.leading.as_ref().expect("checked: leading").followers[&follower];
    let log = &r.log;
    let next = view.next;
    let end =
        log.log_end().min(next + b.ctx.cluster.settings.batch_records as u64).min(log.epoch_run_end(next));
    let records = log.read_raw(next, end);
    let prev_epoch = if next == 0 { 0 } else { log.epoch_at(next - 1).expect("next is within the log") };
    let empty = records.count == 0;
    let request = BrokerRequest::Replicate(Replicate {
        partition,
        epoch: r.epoch,
        leader: b.ctx.id.index,
        base_offset: next,
        prev_epoch,
        batch_epoch: log.epoch_at(next).unwrap_or(r.epoch),
        records,
        high_watermark: log.high_watermark,
    });
    Batch { request, end, complete: end == log.log_end(), empty: empty && view.matched == Some(next) }
}

/// Streams batches over one connection until it fails, times out or the leadership ends.
async fn stream_to(
    broker: &Shared,
    tx: Rc<Tx<BrokerRequest>>,
    mut rx: Rx<BrokerResponse>,
    partition: u32,
    follower: u32,
    generation: u64,
) {
    let settings = broker.borrow().ctx.cluster.settings.clone();
    let timeout = Duration::from_millis(settings.request_timeout_ms);
    let heartbeat = Duration::from_millis(settings.heartbeat_interval_ms);
    while current(broker, partition, generation) {
        let mut batch = next_batch(broker, partition, follower);
        if batch.empty {
            let changed = broker.borrow().replicas[&partition].log.changed.clone();
            _ = madsim::time::timeout(heartbeat, changed.notified()).await;
            if !current(broker, partition, generation) {
                return;
            }
            batch = next_batch(broker, partition, follower);
        }
        if tx.send(batch.request).await.is_err() {
            return;
        }
        let Ok(Ok(response)) = madsim::time::timeout(timeout, rx.recv()).await else { return };
        if !current(broker, partition, generation) {
            return;
        }
        on_response(broker, partition, follower, response, batch.end, batch.complete);
    }
}

fn on_response(
    broker: &Shared,
    partition: u32,
    follower: u32,
    response: BrokerResponse,
    end: u64,
    complete: bool,
) {
    let mut b = broker.borrow_mut();
    let r = b.replicas.get_mut(&partition).unwrap();
    let (my_runs, my_end) = (r.log.epochs(), r.log.log_end());
    let lead = r.leading.as_mut().expect("checked: leading");
    let view = lead.followers.get_mut(&follower).unwrap();
    match response {
        BrokerResponse::Replicated { matched, .. } => {
            view.matched = Some(matched);
            view.next = matched;
            if complete && matched == end {
                view.caught_up_ms = clock::elapsed_ms();
            }
            b.update_high_watermark(partition);
        }
        BrokerResponse::Diverged { runs, log_end, .. } => {
            view.next = divergence(&my_runs, my_end, &runs, log_end);
            tracing::debug!(partition, follower, next = view.next, "follower diverged");
        }
        BrokerResponse::Fenced { epoch, .. } => b.follow(partition, epoch, None),
        other => panic!("a follower answered Replicate with {other:?}"),
    }
}
