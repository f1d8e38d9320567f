//! The leadership checker: each partition's leadership record, version by version, as the
//! store synced it to its disk (never a broker's word about whom it follows or leads).
//!
//! The record (`broker::metadata::PartitionState`) names the leader, its epoch and the in-sync
//! replicas, and changes only by compare-and-set. Invariants, per partition:
//! - `leadership-record-invalid`: every version decodes, names a replica of the partition as
//!   leader, and holds a set of its replicas, without repeats, that includes the leader. The
//!   first version is epoch 1, led by the preferred replica with every replica in sync. An
//!   election keeps the in-sync set, and a change of the set within an epoch adds or removes
//!   exactly one replica (one change at a time: the high watermark counts a proposed set
//!   beside the held one, never two);
//! - `leader-not-from-isr`: a new epoch's leader was in the set the version before held. Only
//!   a replica holding every committed record may lead: anything else is Kafka's unclean
//!   election, which loses acknowledged writes;
//! - `leader-epoch-out-of-order`: each version's epoch is the one before it, or that plus
//!   one; and within an epoch the leader stays the same (one leader per epoch).

use std::collections::BTreeMap;

use faultline_engine::broker::metadata::PartitionState;
use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 3] =
    ["leadership-record-invalid", "leader-not-from-isr", "leader-epoch-out-of-order"];

/// One partition's record history: its replicas, preferred first, and every version the store
/// synced, as (simulated ms, bytes), in order.
pub struct History {
    pub replicas: Vec<u32>,
    pub versions: Vec<(u64, Vec<u8>)>,
}

/// What the checker found, per invariant.
#[derive(Default)]
struct Found {
    invalid: Vec<String>,
    unclean: Vec<String>,
    order: Vec<String>,
}

/// Checks every partition's record history.
pub fn check(histories: &BTreeMap<u32, History>) -> Vec<Violation> {
    let mut found = Found::default();
    for (&partition, history) in histories {
        check_partition(partition, history, &mut found);
    }
    let mut v = Vec::new();
    push(&mut v, "leadership-record-invalid", &found.invalid);
    push(&mut v, "leader-not-from-isr", &found.unclean);
    push(&mut v, "leader-epoch-out-of-order", &found.order);
    v
}

fn check_partition(partition: u32, history: &History, found: &mut Found) {
    assert!(!history.replicas.is_empty(), "partition {partition} has replicas");
    assert!(history.versions.windows(2).all(|w| w[0].0 <= w[1].0), "versions in sync order");
    let mut before: Option<PartitionState> = None;
    for (ms, bytes) in &history.versions {
        let at = format!("partition {partition} at {ms} ms");
        let Some(state) = PartitionState::decode(bytes) else {
            found.invalid.push(format!("{at}: the record does not decode ({} bytes)", bytes.len()));
            continue;
        };
        if let Some(problem) = malformed(&state, &history.replicas) {
            found.invalid.push(format!("{at}: {problem} in {state:?}"));
        }
        match &before {
            None => first(&at, &state, &history.replicas, found),
            Some(prev) => step(&at, prev, &state, found),
        }
        before = Some(state);
    }
}

/// What is wrong with one version taken alone, if anything.
fn malformed(state: &PartitionState, replicas: &[u32]) -> Option<String> {
    let mut isr = sorted(&state.isr);
    isr.dedup();
    if isr.len() != state.isr.len() {
        return Some("the in-sync set repeats a replica".into());
    }
    if let Some(stranger) = state.isr.iter().chain([&state.leader]).find(|b| !replicas.contains(b)) {
        return Some(format!("broker-{stranger} is no replica of the partition (replicas {replicas:?})"));
    }
    (!state.isr.contains(&state.leader)).then(|| "the leader is not in the in-sync set".into())
}

/// The record's creation: epoch 1, the preferred replica leading, every replica in sync.
fn first(at: &str, state: &PartitionState, replicas: &[u32], found: &mut Found) {
    let all = sorted(replicas);
    if state.epoch != 1 || state.leader != replicas[0] || sorted(&state.isr) != all {
        found.invalid.push(format!(
            "{at}: the record was created as {state:?}, not epoch 1 led by broker-{} with {all:?} in sync",
            replicas[0]
        ));
    }
}

/// One change of the record: an election (the next epoch) or a change of the in-sync set.
fn step(at: &str, prev: &PartitionState, next: &PartitionState, found: &mut Found) {
    if next.epoch == prev.epoch + 1 {
        if !prev.isr.contains(&next.leader) {
            found.unclean.push(format!(
                "{at}: broker-{} took epoch {} though the in-sync set was {:?}",
                next.leader, next.epoch, prev.isr
            ));
        }
        if sorted(&next.isr) != sorted(&prev.isr) {
            found.invalid.push(format!("{at}: the election of epoch {} changed the in-sync set", next.epoch));
        }
    } else if next.epoch != prev.epoch {
        found.order.push(format!("{at}: the epoch went from {} to {}", prev.epoch, next.epoch));
    } else if next.leader != prev.leader {
        found.order.push(format!(
            "{at}: epoch {} led by broker-{} and then broker-{}",
            next.epoch, prev.leader, next.leader
        ));
    } else if symmetric_difference(&prev.isr, &next.isr) != 1 {
        found.invalid.push(format!(
            "{at}: the in-sync set went from {:?} to {:?} in epoch {}, not by one replica",
            prev.isr, next.isr, next.epoch
        ));
    }
}

fn sorted(v: &[u32]) -> Vec<u32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// How many replicas are in one set and not the other.
fn symmetric_difference(a: &[u32], b: &[u32]) -> usize {
    a.iter().filter(|x| !b.contains(x)).count() + b.iter().filter(|x| !a.contains(x)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(ms: u64, epoch: u64, leader: u32, isr: &[u32]) -> (u64, Vec<u8>) {
        (ms, PartitionState { epoch, leader, isr: isr.to_vec() }.encode())
    }

    fn judged(versions: Vec<(u64, Vec<u8>)>) -> Vec<String> {
        let histories = BTreeMap::from([(0, History { replicas: vec![0, 1, 2], versions })]);
        check(&histories).into_iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let versions = vec![
            version(10, 1, 0, &[0, 1, 2]),
            version(400, 1, 0, &[0, 2]),
            version(900, 1, 0, &[0, 1, 2]),
            version(1500, 2, 1, &[0, 1, 2]),
            version(1900, 2, 1, &[1, 2]),
            version(2400, 3, 2, &[1, 2]),
        ];
        assert_eq!(judged(versions), Vec::<String>::new());
    }

    #[test]
    fn an_unclean_election_is_caught() {
        // The set is kept through an election, so a leader from outside it is outside its own.
        let versions =
            vec![version(10, 1, 0, &[0, 1, 2]), version(400, 1, 0, &[0, 2]), version(900, 2, 1, &[0, 2])];
        assert_eq!(judged(versions), ["leadership-record-invalid", "leader-not-from-isr"]);
    }

    #[test]
    fn a_repeated_replica_is_caught() {
        let versions = vec![version(10, 1, 0, &[0, 1, 2]), version(400, 1, 0, &[0, 1, 1, 2])];
        assert_eq!(judged(versions), ["leadership-record-invalid"]);
    }

    #[test]
    fn a_record_created_by_another_replica_is_caught() {
        assert_eq!(judged(vec![version(10, 1, 1, &[0, 1, 2])]), ["leadership-record-invalid"]);
    }

    #[test]
    fn a_change_of_nothing_or_of_two_replicas_is_caught() {
        let same = vec![version(10, 1, 0, &[0, 1, 2]), version(400, 1, 0, &[0, 1, 2])];
        assert_eq!(judged(same), ["leadership-record-invalid"]);
        let two = vec![version(10, 1, 0, &[0, 1, 2]), version(400, 1, 0, &[0])];
        assert_eq!(judged(two), ["leadership-record-invalid"]);
    }

    #[test]
    fn two_leaders_in_one_epoch_or_a_skipped_epoch_are_caught() {
        let two = vec![version(10, 1, 0, &[0, 1, 2]), version(400, 1, 1, &[0, 1, 2])];
        assert_eq!(judged(two), ["leader-epoch-out-of-order"]);
        let skipped = vec![version(10, 1, 0, &[0, 1, 2]), version(400, 3, 1, &[0, 1, 2])];
        assert_eq!(judged(skipped), ["leader-epoch-out-of-order"]);
    }

    #[test]
    fn a_leader_outside_its_set_and_garbage_are_caught() {
        let outside = vec![version(10, 1, 0, &[0, 1, 2]), version(400, 1, 0, &[1, 2])];
        assert_eq!(judged(outside), ["leadership-record-invalid"]);
        assert_eq!(judged(vec![(10, vec![1, 2, 3])]), ["leadership-record-invalid"]);
    }
}
