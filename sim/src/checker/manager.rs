//! The manager checker: at most one manager acts at a time, and each under its own lease.
//!
//! Read from the managers' `LeaseAcquired { lease }` and `Acting { lease, epoch }` events (one
//! `Acting` per command sent to a worker), with their simulated times. Invariants:
//! - each lease epoch is acquired once, by one manager;
//! - a manager acts only under a lease it acquired, and only after acquiring it;
//! - a manager acts only within its lease's term: before the send time of its latest write of
//!   that lease the store accepted (`LeaseGranted`), plus the lease period. The term is
//!   recomputed from the writes, never taken from the manager's own reckoning: a manager that
//!   counts its term from the store's answer, or that outlives it in a pause, is caught even
//!   when no successor acts beside it;
//! - leaderships do not overlap: nothing is done under lease `l` at or after the first act
//!   under a later lease `l' > l` (a deposed manager that still sends commands is acting);
//! - job epochs only move forward across leaderships: every job epoch commanded under `l'` is
//!   above every epoch commanded under an earlier `l` (a successor that reused an epoch could
//!   not be told apart from its predecessor by the workers and the sink);
//! - the checkpoint coordinator counts no acknowledgement from a generation it replaced: once
//!   a manager replaced a subtask by generation `g` in a job epoch (`TaskReplaced`), every
//!   acknowledgement it counts from that subtask in that epoch (`CheckpointAckCounted`) is of
//!   `g` or later. A replaced copy's snapshot is consistent in itself, but the outputs of its
//!   input are in the transactions of the copy that replaced it: a checkpoint completed with it
//!   can pair state with output that a second failure then aborts. The rule holds within one
//!   tenure of a lease; a manager that acquires a lease starts afresh;
//! - a job epoch is durable before it is acted in: every command of job epoch `e` is sent
//!   after the store synced a job record of epoch `e` or later (read off the store's disk,
//!   not the manager's word). A successor reads the epoch to go past from the store: one acted
//!   in and not yet stored could be reused.

use std::collections::BTreeMap;

use faultline_engine::cluster::NodeId;
use faultline_engine::observe::TraceEvent;
use faultline_reports::Violation;

use super::push_examples as push;

/// One lease's tenure as the trace shows it.
#[derive(Default)]
struct Tenure {
    holders: Vec<(u64, NodeId)>,
    /// Acts: (ms, node, job epoch).
    acts: Vec<(u64, NodeId, u64)>,
}

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 7] = [
    "manager-lease-shared",
    "manager-acting-without-lease",
    "manager-acting-past-lease",
    "manager-acting-concurrently",
    "manager-epoch-reused",
    "checkpoint-ack-of-replaced-generation",
    "manager-epoch-not-durable",
];

/// Every act in a job epoch must come after the store synced a job record of that epoch or a
/// later one. `durable`: (ms, epoch) of each job record the store synced, in time order.
pub fn check_durable(events: &[(u64, NodeId, TraceEvent)], durable: &[(u64, u64)]) -> Vec<Violation> {
    assert!(durable.windows(2).all(|w| w[0].0 <= w[1].0), "the store's syncs in time order");
    let mut early = Vec::new();
    for (ms, node, event) in events {
        let TraceEvent::Acting { lease, epoch } = *event else { continue };
        let stored = durable.iter().take_while(|(t, _)| t <= ms).map(|&(_, e)| e).max();
        if stored.is_none_or(|s| s < epoch) {
            early.push(format!(
                "{} acted in job epoch {epoch} under lease {lease} at {ms} ms; the store held epoch {} then",
                node.name(),
                stored.map_or("none".to_string(), |s| s.to_string())
            ));
        }
    }
    let mut v = Vec::new();
    push(&mut v, "manager-epoch-not-durable", &early);
    v
}

/// Checks the managers' lease and acting events, `(ms, node, event)` in trace order, under a
/// lease period of `lease_ms`.
pub fn check(events: &[(u64, NodeId, TraceEvent)], lease_ms: u64) -> Vec<Violation> {
    assert!(lease_ms > 0, "a lease of no time");
    let tenures = tenures(events);
    let mut v = Vec::new();
    push(&mut v, "manager-lease-shared", &shared_leases(&tenures));
    push(&mut v, "manager-acting-without-lease", &unleased_acts(&tenures));
    push(&mut v, "manager-acting-past-lease", &acts_past_term(events, lease_ms));
    push(&mut v, "manager-acting-concurrently", &overlaps(&tenures));
    push(&mut v, "manager-epoch-reused", &epoch_reuse(&tenures));
    push(&mut v, "checkpoint-ack-of-replaced-generation", &acks_of_replaced(events));
    v
}

/// Acknowledgements a manager counted from a generation older than one it had replaced the
/// subtask by, in the same job epoch and tenure.
fn acks_of_replaced(events: &[(u64, NodeId, TraceEvent)]) -> Vec<String> {
    // (manager, job epoch, chain, subtask) → the latest generation it replaced the subtask by.
    let mut replaced: BTreeMap<(NodeId, u64, u32, u32), u32> = BTreeMap::new();
    let mut out = Vec::new();
    for &(ms, node, ref event) in events {
        match *event {
            TraceEvent::LeaseAcquired { .. } => replaced.retain(|key, _| key.0 != node),
            TraceEvent::TaskReplaced { epoch, chain, subtask, generation } => {
                let latest = replaced.entry((node, epoch, chain, subtask)).or_insert(generation);
                *latest = (*latest).max(generation);
            }
            TraceEvent::CheckpointAckCounted { epoch, checkpoint, chain, subtask, generation } => {
                let Some(&latest) = replaced.get(&(node, epoch, chain, subtask)) else { continue };
                if generation < latest {
                    out.push(format!(
                        "{} counted generation {generation}'s acknowledgement of checkpoint {checkpoint} \
                         from subtask {chain}/{subtask} (job epoch {epoch}) at {ms} ms, after replacing \
                         it by generation {latest}",
                        node.name()
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

fn tenures(events: &[(u64, NodeId, TraceEvent)]) -> BTreeMap<u64, Tenure> {
    let mut tenures: BTreeMap<u64, Tenure> = BTreeMap::new();
    for (ms, node, event) in events {
        match *event {
            TraceEvent::LeaseAcquired { lease } => {
                tenures.entry(lease).or_default().holders.push((*ms, *node))
            }
            TraceEvent::Acting { lease, epoch } => {
                tenures.entry(lease).or_default().acts.push((*ms, *node, epoch))
            }
            _ => {}
        }
    }
    tenures
}

fn shared_leases(tenures: &BTreeMap<u64, Tenure>) -> Vec<String> {
    let shared = tenures.iter().filter(|(_, t)| t.holders.len() > 1);
    shared
        .map(|(lease, t)| {
            let names: Vec<String> =
                t.holders.iter().map(|(ms, n)| format!("{} at {ms} ms", n.name())).collect();
            format!("lease {lease} acquired by {}", names.join(" and "))
        })
        .collect()
}

fn unleased_acts(tenures: &BTreeMap<u64, Tenure>) -> Vec<String> {
    let mut out = Vec::new();
    for (lease, t) in tenures {
        for &(ms, node, epoch) in &t.acts {
            let leased = t.holders.iter().any(|&(since, holder)| holder == node && since <= ms);
            if !leased {
                out.push(format!(
                    "{} acted under lease {lease} (epoch {epoch}) at {ms} ms without it",
                    node.name()
                ));
            }
        }
    }
    out
}

/// Acts at or after the end of the actor's term: the send time of its latest accepted write of
/// the lease, plus `lease_ms`. An act with no accepted write before it has no term at all.
fn acts_past_term(events: &[(u64, NodeId, TraceEvent)], lease_ms: u64) -> Vec<String> {
    let mut sent: BTreeMap<(NodeId, u64), u64> = BTreeMap::new();
    let mut out = Vec::new();
    for &(ms, node, ref event) in events {
        match *event {
            TraceEvent::LeaseGranted { lease, sent_ms } => {
                assert!(sent_ms <= ms, "a lease write sent at {sent_ms} ms was answered at {ms} ms");
                let latest = sent.entry((node, lease)).or_insert(sent_ms);
                *latest = (*latest).max(sent_ms);
            }
            TraceEvent::Acting { lease, epoch } => {
                let end = sent.get(&(node, lease)).map(|&s| s + lease_ms);
                if end.is_none_or(|end| ms >= end) {
                    let term = end.map_or("no accepted write of it".into(), |end| {
                        format!("its term ended at {end} ms")
                    });
                    out.push(format!(
                        "{} acted under lease {lease} (epoch {epoch}) at {ms} ms; {term}",
                        node.name()
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

fn overlaps(tenures: &BTreeMap<u64, Tenure>) -> Vec<String> {
    let mut out = Vec::new();
    let leases: Vec<(&u64, &Tenure)> = tenures.iter().collect();
    for (i, (lease, t)) in leases.iter().enumerate() {
        let later_start = leases[i + 1..]
            .iter()
            .filter_map(|(l, later)| later.acts.iter().map(|a| a.0).min().map(|ms| (ms, **l)))
            .min();
        let Some((start, successor)) = later_start else { continue };
        for &(ms, node, epoch) in t.acts.iter().filter(|a| a.0 >= start) {
            out.push(format!(
                "{} acted under lease {lease} (epoch {epoch}) at {ms} ms; lease {successor} acted from {start} ms",
                node.name()
            ));
        }
    }
    out
}

fn epoch_reuse(tenures: &BTreeMap<u64, Tenure>) -> Vec<String> {
    let mut out = Vec::new();
    let mut highest: Option<(u64, u64)> = None; // (job epoch, lease)
    for (lease, t) in tenures {
        if let (Some((epoch, earlier)), Some(lowest)) = (highest, t.acts.iter().map(|a| a.2).min()) {
            if lowest <= epoch {
                out.push(format!(
                    "lease {lease} commanded epoch {lowest}; lease {earlier} had commanded {epoch}"
                ));
            }
        }
        if let Some(top) = t.acts.iter().map(|a| a.2).max() {
            if highest.is_none_or(|(e, _)| top > e) {
                highest = Some((top, *lease));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::cluster::Role;

    const A: NodeId = NodeId { role: Role::Manager, index: 0 };
    const B: NodeId = NodeId { role: Role::Manager, index: 1 };

    const LEASE_MS: u64 = 500;

    fn acquired(ms: u64, node: NodeId, lease: u64) -> (u64, NodeId, TraceEvent) {
        (ms, node, TraceEvent::LeaseAcquired { lease })
    }

    /// A write of `lease` sent at `sent_ms`, accepted at `ms`.
    fn granted(ms: u64, node: NodeId, lease: u64, sent_ms: u64) -> (u64, NodeId, TraceEvent) {
        (ms, node, TraceEvent::LeaseGranted { lease, sent_ms })
    }

    /// Acquired at `ms` by a write sent 2 ms before.
    fn took(ms: u64, node: NodeId, lease: u64) -> [(u64, NodeId, TraceEvent); 2] {
        [granted(ms, node, lease, ms - 2), acquired(ms, node, lease)]
    }

    fn acted(ms: u64, node: NodeId, lease: u64, epoch: u64) -> (u64, NodeId, TraceEvent) {
        (ms, node, TraceEvent::Acting { lease, epoch })
    }

    fn replaced(ms: u64, node: NodeId, subtask: u32, generation: u32) -> (u64, NodeId, TraceEvent) {
        (ms, node, TraceEvent::TaskReplaced { epoch: 1, chain: 1, subtask, generation })
    }

    fn counted(
        ms: u64,
        node: NodeId,
        checkpoint: u64,
        subtask: u32,
        generation: u32,
    ) -> (u64, NodeId, TraceEvent) {
        let event = TraceEvent::CheckpointAckCounted { epoch: 1, checkpoint, chain: 1, subtask, generation };
        (ms, node, event)
    }

    #[test]
    fn an_acknowledgement_of_a_replaced_generation_is_caught() {
        let failover = [
            took(10, A, 1).to_vec(),
            vec![counted(20, A, 1, 0, 0), counted(21, A, 1, 1, 0), replaced(30, A, 1, 1)],
            // Checkpoint 2, triggered after the failover: the promoted copy's ack counts, the
            // replaced copy's (a zombie's) must not.
            vec![counted(40, A, 2, 0, 0), counted(41, A, 2, 1, 1)],
        ]
        .concat();
        assert!(check(&failover, LEASE_MS).is_empty(), "{:?}", check(&failover, LEASE_MS));
        let zombie = [failover.clone(), vec![counted(42, A, 3, 1, 0)]].concat();
        let v = check(&zombie, LEASE_MS);
        assert_eq!(invariants(&zombie), ["checkpoint-ack-of-replaced-generation"]);
        assert!(v[0].detail.contains("generation 0's acknowledgement of checkpoint 3"), "{v:?}");
        // A successor's tenure starts afresh: its own generations are its own business.
        let successor = [failover, took(600, A, 2).to_vec(), vec![counted(610, A, 4, 1, 0)]].concat();
        assert!(check(&successor, LEASE_MS).is_empty(), "{:?}", check(&successor, LEASE_MS));
        // Another manager's replacements bind only that manager.
        let other = [took(10, A, 1).to_vec(), vec![replaced(30, A, 1, 1), counted(40, B, 2, 1, 0)]].concat();
        assert!(invariants(&other).iter().all(|i| i != "checkpoint-ack-of-replaced-generation"));
    }

    fn invariants(events: &[(u64, NodeId, TraceEvent)]) -> Vec<String> {
        check(events, LEASE_MS).into_iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_clean_failover_passes() {
        let events = [
            took(10, A, 1).to_vec(),
            vec![acted(20, A, 1, 1), acted(30, A, 1, 2)],
            took(600, B, 2).to_vec(),
            vec![acted(610, B, 2, 3)],
        ]
        .concat();
        assert!(check(&events, LEASE_MS).is_empty());
    }

    #[test]
    fn acts_are_judged_against_the_term_the_accepted_writes_give() {
        // Renewed by a write sent at 300 and answered late, at 420: the term ends at 800,
        // whatever the manager made of the answer.
        let renewed = [took(10, A, 1).to_vec(), vec![granted(420, A, 1, 300), acted(799, A, 1, 1)]].concat();
        assert!(check(&renewed, LEASE_MS).is_empty());
        let late = [renewed.clone(), vec![acted(800, A, 1, 1)]].concat();
        assert_eq!(invariants(&late), ["manager-acting-past-lease"]);
        // Acting on past its term after a pause, with no successor in sight.
        let paused = [took(10, A, 1).to_vec(), vec![acted(20, A, 1, 1), acted(2_000, A, 1, 1)]].concat();
        assert_eq!(invariants(&paused), ["manager-acting-past-lease"]);
        // A renewal answered after the act does not cover it.
        let early = [took(10, A, 1).to_vec(), vec![acted(700, A, 1, 1), granted(701, A, 1, 600)]].concat();
        assert_eq!(invariants(&early), ["manager-acting-past-lease"]);
    }

    #[test]
    fn a_deposed_manager_that_keeps_commanding_is_caught() {
        let events = [
            took(10, A, 1).to_vec(),
            vec![acted(20, A, 1, 1), granted(300, A, 1, 290)],
            took(600, B, 2).to_vec(),
            vec![acted(610, B, 2, 2), acted(620, A, 1, 1)],
        ]
        .concat();
        assert_eq!(invariants(&events), ["manager-acting-concurrently"]);
    }

    #[test]
    fn a_reused_epoch_a_shared_lease_and_an_unleased_act_are_caught() {
        let reuse = [
            took(10, A, 1).to_vec(),
            vec![acted(20, A, 1, 4)],
            took(600, B, 2).to_vec(),
            vec![acted(610, B, 2, 4)],
        ]
        .concat();
        assert_eq!(invariants(&reuse), ["manager-epoch-reused"]);
        let shared = [took(10, A, 1), took(11, B, 1)].concat();
        assert_eq!(invariants(&shared), ["manager-lease-shared"]);
        let unleased = [took(10, A, 1).to_vec(), vec![acted(20, B, 1, 1)]].concat();
        assert_eq!(invariants(&unleased), ["manager-acting-without-lease", "manager-acting-past-lease"]);
    }

    #[test]
    fn an_epoch_is_acted_in_only_once_the_store_holds_it() {
        // The store synced epoch 1 at 5 ms, 2 at 40 ms and 3 at 90 ms.
        let durable = [(5, 1), (40, 2), (90, 3)];
        let fine = [acted(10, A, 1, 1), acted(40, A, 1, 2), acted(60, A, 1, 1), acted(95, B, 2, 3)];
        assert!(check_durable(&fine, &durable).is_empty());
        // Epoch 2 acted in at 30 ms, before its record was stored; epoch 4 never was.
        let early = [acted(10, A, 1, 1), acted(30, A, 1, 2), acted(100, B, 2, 4)];
        let v = check_durable(&early, &durable);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, "manager-epoch-not-durable");
        assert!(v[0].detail.starts_with("2 times"), "{v:?}");
        assert!(check_durable(&[acted(3, A, 1, 1)], &durable).len() == 1, "before anything was stored");
    }
}
