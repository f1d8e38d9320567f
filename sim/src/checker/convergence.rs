//! The convergence checker: once the cluster is quiet, every live replica holds its leader's log.
//!
//! The log checker judges what the copies hold against what was committed; it rightly lets a
//! replica be behind, since a copy cut off by a fault is behind, not wrong. This checker judges
//! the other half, Kafka's and Raft's liveness of replication: after the job finished, the
//! runner heals every fault and leaves the cluster alone (its quiet period, as Jepsen heals
//! the network and waits before its final reads). Then, per partition whose leader is up, every
//! replica that is up holds exactly the leader's records, epoch for epoch.
//!
//! A replica that never catches up — a follower refused batch after batch because it and its
//! leader agree on a wrong point to resume from, a deposed leader that keeps its divergent
//! tail — breaks no safety rule while the other replicas carry the partition, and makes a later
//! failover lose or stall. Only the permanently crashed brokers are exempt.

use std::collections::{BTreeMap, BTreeSet};

use faultline_engine::cluster::NodeId;
use faultline_reports::Violation;

use super::log::{Copies, Copy};
use super::push_examples as push;

/// The invariant this checker judges.
pub const INVARIANT: &str = "log-replica-not-converged";

/// How long the runner's quiet period may last once every fault has healed, in simulated ms:
/// long enough for a restarted broker to boot, be found by its leaders and take their logs
/// (a few heartbeat timeouts and retries), far shorter than any seed's run.
pub const QUIET_MS: u64 = 5_000;

/// Checks that every live replica's copy equals its live leader's, after `quiet_ms` of quiet.
pub fn check(copies: &BTreeMap<u32, Copies<'_>>, down: &BTreeSet<NodeId>, quiet_ms: u64) -> Vec<Violation> {
    let mut v = Vec::new();
    push(&mut v, INVARIANT, &unconverged(copies, down, quiet_ms));
    v
}

/// True when every live replica already holds its live leader's records: the quiet period may end.
pub fn converged(copies: &BTreeMap<u32, Copies<'_>>, down: &BTreeSet<NodeId>) -> bool {
    unconverged(copies, down, 0).is_empty()
}

/// One line per live replica that differs from its live leader.
fn unconverged(copies: &BTreeMap<u32, Copies<'_>>, down: &BTreeSet<NodeId>, quiet_ms: u64) -> Vec<String> {
    let mut out = Vec::new();
    for (&p, copies) in copies {
        let leader = &copies.leader;
        if down.contains(&leader.broker) {
            continue; // no leader to converge on: unavailability, which liveness judges
        }
        for other in copies.others.iter().filter(|c| !down.contains(&c.broker)) {
            if other.records != leader.records {
                out.push(difference(p, leader, other, quiet_ms));
            }
        }
    }
    out
}

/// How `other` differs from `leader`: where they part, and how much each holds.
fn difference(p: u32, leader: &Copy<'_>, other: &Copy<'_>, quiet_ms: u64) -> String {
    let common = leader.records.iter().zip(&other.records).take_while(|(a, b)| a == b).count();
    let epoch_at =
        |c: &Copy<'_>| c.records.get(common).map_or("its end".to_string(), |r| format!("epoch {}", r.0));
    format!(
        "partition {p}: {} holds {} records, leader {} holds {}; they part at offset {common} ({} against \
         {}) after {quiet_ms} ms of quiet",
        other.broker.name(),
        other.records.len(),
        leader.broker.name(),
        leader.records.len(),
        epoch_at(other),
        epoch_at(leader),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::cluster::Role;

    fn broker(i: u32) -> NodeId {
        NodeId::new(Role::Broker, i)
    }

    const A: &[u8] = b"a";
    const B: &[u8] = b"b";
    const C: &[u8] = b"c";

    fn copies<'a>(
        leader: Vec<(u64, &'a [u8])>,
        others: Vec<Vec<(u64, &'a [u8])>>,
    ) -> BTreeMap<u32, Copies<'a>> {
        let others = others.into_iter().enumerate();
        let others = others.map(|(i, records)| Copy { broker: broker(i as u32 + 1), records }).collect();
        BTreeMap::from([(0, Copies { leader: Copy { broker: broker(0), records: leader }, others })])
    }

    #[test]
    fn replicas_holding_the_leaders_log_pass() {
        let c = copies(vec![(1, A), (2, B)], vec![vec![(1, A), (2, B)], vec![(1, A), (2, B)]]);
        assert!(check(&c, &BTreeSet::new(), 100).is_empty());
        assert!(converged(&c, &BTreeSet::new()));
    }

    #[test]
    fn a_replica_left_behind_is_caught() {
        let c = copies(vec![(1, A), (2, B)], vec![vec![(1, A), (2, B)], vec![(1, A)]]);
        let v = check(&c, &BTreeSet::new(), 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, INVARIANT);
        assert!(v[0].detail.contains("broker-3 holds 1 records"), "{}", v[0].detail);
        assert!(!converged(&c, &BTreeSet::new()));
    }

    #[test]
    fn a_divergent_tail_of_the_same_length_is_caught() {
        // A deposed leader's own uncommitted record, where the new leader committed another.
        let c = copies(vec![(1, A), (2, B)], vec![vec![(1, A), (1, C)]]);
        let v = check(&c, &BTreeSet::new(), 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("part at offset 1 (epoch 1 against epoch 2)"), "{}", v[0].detail);
    }

    #[test]
    fn a_crashed_replica_or_leader_is_exempt() {
        let behind = copies(vec![(1, A), (2, B)], vec![vec![(1, A)]]);
        assert!(check(&behind, &BTreeSet::from([broker(1)]), 100).is_empty());
        assert!(check(&behind, &BTreeSet::from([broker(0)]), 100).is_empty());
    }
}
