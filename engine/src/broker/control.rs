//! Partition leadership on one broker: taking it, keeping the in-sync set honest, losing it.
//!
//! One control task per partition replica ticks every `heartbeat_interval_ms`:
//! - a replica that knows no leader yet reads the store: with no record, the preferred replica
//!   creates epoch 1 with every replica in sync; a replica the record names leader (it
//!   restarted) takes a new epoch; otherwise it follows the recorded leader;
//! - a follower that has not heard from its leader for `heartbeat_timeout_ms` reads the store
//!   and, if the record still names that leader and this replica is in sync, bumps the epoch
//!   and leads (compare-and-set: of several candidates, one wins);
//! - a leader drops from the in-sync set a follower that has not caught up for
//!   `heartbeat_timeout_ms`, and adds back one that caught up — always in the store first,
//!   under its epoch, so a deposed leader's change fails and tells it so.

use std::time::Duration;

use super::metadata::{self, PartitionState, Swap};
use super::{replication, FollowerView, Leadership, Shared};
use crate::clock;
use crate::observe::TraceEvent;

pub(super) fn start(broker: &Shared) {
    let partitions: Vec<u32> = broker.borrow().replicas.keys().copied().collect();
    for partition in partitions {
        madsim::task::spawn_local(control(broker.clone(), partition));
    }
}

async fn control(broker: Shared, partition: u32) {
    let tick = Duration::from_millis(broker.borrow().ctx.cluster.settings.heartbeat_interval_ms);
    loop {
        let leading = broker.borrow().replicas[&partition].leading.is_some();
        if leading {
            manage_isr(&broker, partition).await;
        } else {
            watch_leader(&broker, partition).await;
        }
        madsim::time::sleep(tick).await;
    }
}

/// A follower's duty: find its leader, and take over from a silent one.
async fn watch_leader(broker: &Shared, partition: u32) {
    let (known_epoch, silent, me, store) = {
        let b = broker.borrow();
        let r = &b.replicas[&partition];
        let timeout = b.ctx.cluster.settings.heartbeat_timeout_ms;
        (r.epoch, clock::elapsed_ms() > r.heard_ms + timeout, b.ctx.id.index, b.store.clone())
    };
    if known_epoch > 0 && !silent {
        return;
    }
    let Ok(state) = metadata::read(&store, partition).await else { return };
    let bump = |s: &PartitionState| PartitionState { epoch: s.epoch + 1, leader: me, isr: s.isr.clone() };
    let next = match &state {
        None if broker.borrow().ctx.cluster.leader_of(partition) == me => {
            let isr = broker.borrow().ctx.cluster.replicas_of(partition);
            PartitionState { epoch: 1, leader: me, isr: sorted(isr) }
        }
        None => return,
        // This broker led before it restarted: it leads again, in a new epoch.
        Some(s) if s.leader == me => bump(s),
        // A newer leader than the one that went silent: give it time to speak.
        Some(s) if s.epoch > known_epoch => return adopt(broker, partition, s),
        Some(s) if s.isr.contains(&me) => bump(s),
        Some(s) => return adopt(broker, partition, s),
    };
    match metadata::swap(&store, partition, state.as_ref(), &next).await {
        Swap::Done => lead(broker, partition, next),
        Swap::Lost(Some(current)) => adopt(broker, partition, &current),
        Swap::Lost(None) | Swap::Unreachable => {}
    }
}

/// Follows the leader a store record names, unless this replica already knows a newer epoch.
fn adopt(broker: &Shared, partition: u32, state: &PartitionState) {
    let mut b = broker.borrow_mut();
    let known = b.replicas[&partition].epoch;
    if state.epoch > known || (state.epoch == known && b.replicas[&partition].leader.is_none()) {
        b.follow(partition, state.epoch, Some(state.leader));
    } else {
        b.replicas.get_mut(&partition).unwrap().heard_ms = clock::elapsed_ms();
    }
}

/// Takes leadership in `state.epoch`, which this broker just wrote to the store.
fn lead(broker: &Shared, partition: u32, state: PartitionState) {
    let generation = {
        let mut b = broker.borrow_mut();
        let me = b.ctx.id.index;
        let now = clock::elapsed_ms();
        let followers = b.ctx.cluster.replicas_of(partition).into_iter().filter(|&f| f != me);
        let r = b.replicas.get_mut(&partition).unwrap();
        assert!(state.epoch > r.epoch || r.epoch == 0, "leading partition {partition} in a stale epoch");
        let next = r.log.log_end();
        let followers =
            followers.map(|f| (f, FollowerView { next, matched: None, caught_up_ms: now })).collect();
        r.epoch = state.epoch;
        r.leader = Some(me);
        r.generation += 1;
        r.leading = Some(Leadership { isr: state.isr, proposed: None, followers, pending: Vec::new() });
        tracing::info!(partition, epoch = state.epoch, log_end = next, "leading");
        b.ctx.trace(TraceEvent::LeaderElected { partition, epoch: state.epoch });
        b.replicas[&partition].generation
    };
    replication::start(broker, partition, generation);
}

/// A leader's duty: shrink the in-sync set by followers that fell behind, grow it by ones that
/// caught up. One change per tick.
async fn manage_isr(broker: &Shared, partition: u32) {
    let Some((current, next, generation)) = isr_change(broker, partition) else { return };
    let store = {
        let mut b = broker.borrow_mut();
        let lead = b.replicas.get_mut(&partition).unwrap().leading.as_mut().expect("isr_change: leading");
        lead.proposed = Some(next.isr.clone()); // counted for the high watermark from now on
        b.store.clone()
    };
    let outcome = metadata::swap(&store, partition, Some(&current), &next).await;
    let mut b = broker.borrow_mut();
    if b.replicas[&partition].generation != generation {
        return;
    }
    match outcome {
        Swap::Done => settle_isr(&mut b, partition, next),
        // The store holds a newer epoch: another replica leads.
        Swap::Lost(Some(newer)) if newer.epoch > current.epoch => {
            b.follow(partition, newer.epoch, Some(newer.leader));
        }
        // Our own epoch with another set: an earlier change of ours the store applied though
        // its answer was lost. That is the set now.
        Swap::Lost(Some(held)) => {
            assert_eq!((held.epoch, held.leader), (current.epoch, current.leader), "one leader per epoch");
            settle_isr(&mut b, partition, held);
        }
        // No answer: the store may or may not hold `next`; keep counting it until one comes.
        Swap::Lost(None) | Swap::Unreachable => {}
    }
}

/// The store holds `held` as this leader's in-sync set: adopt it, and move the high watermark.
fn settle_isr(b: &mut super::Broker, partition: u32, held: PartitionState) {
    let lead =
        b.replicas.get_mut(&partition).unwrap().leading.as_mut().expect("same generation: still leading");
    lead.proposed = None;
    if lead.isr != held.isr {
        lead.isr = held.isr.clone();
        let size = held.isr.len() as u32;
        b.ctx.trace(TraceEvent::IsrChanged { partition, epoch: held.epoch, size });
    }
    b.update_high_watermark(partition);
}

/// The store record as this leader wrote it, and the one it should hold now, if they differ.
fn isr_change(broker: &Shared, partition: u32) -> Option<(PartitionState, PartitionState, u64)> {
    let b = broker.borrow();
    let me = b.ctx.id.index;
    let timeout = b.ctx.cluster.settings.heartbeat_timeout_ms;
    let r = &b.replicas[&partition];
    let lead = r.leading.as_ref()?;
    let current = PartitionState { epoch: r.epoch, leader: me, isr: lead.isr.clone() };
    if let Some(proposed) = &lead.proposed {
        // An earlier change has no answer yet: ask for it again, and nothing else, until the
        // store says which set it holds (a second change would drop the first from the count).
        return Some((current.clone(), PartitionState { isr: proposed.clone(), ..current }, r.generation));
    }
    let now = clock::elapsed_ms();
    let (log_end, hw) = (r.log.log_end(), r.log.high_watermark);
    let lagging =
        lead.isr.iter().copied().find(|f| *f != me && now > lead.followers[f].caught_up_ms + timeout);
    let caught_up = lead.followers.iter().find(|(f, v)| {
        !lead.isr.contains(f)
            && v.matched.is_some_and(|m| m >= hw && m == log_end)
            && now <= v.caught_up_ms + timeout
    });
    let isr: Vec<u32> = match (lagging, caught_up) {
        (Some(f), _) => lead.isr.iter().copied().filter(|&b| b != f).collect(),
        (None, Some((&f, _))) => sorted(lead.isr.iter().copied().chain([f]).collect()),
        (None, None) => return None,
    };
    let next = PartitionState { isr, ..current.clone() };
    Some((current, next, r.generation))
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}
