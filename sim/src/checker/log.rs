//! The log checker: the replicated log kept what it acknowledged, once, in order.
//!
//! Invariants, per partition:
//! - every record a producer saw acknowledged is in the final log exactly once;
//! - no `(producer, seq)` appears twice, and each producer's records appear in sequence order
//!   with no gap (the idempotent producer's numbering is dense: offsets hold no holes);
//! - the high watermark never goes back: a leader of epoch `e` never reports one below what
//!   leaders of epochs `≤ e` reached (a deposed leader that has not yet heard of its successor
//!   may report a stale, lower one of its own epoch: that is behind, not wrong);
//! - no replica cuts a committed record: records of leader epoch `e` are never truncated below
//!   a high watermark reached in an epoch `≤ e` (a later epoch's watermark covers other
//!   records at those offsets, so a stale replica rightly cuts its own);
//! - every copy agrees with the leader on what was committed: a record of leader epoch `e` at
//!   an offset below a high watermark reached in an epoch `≤ e` is committed, so each later
//!   leader holds it, and any replica holding a record of epoch `e` there holds that one. A
//!   replica that missed an epoch may still hold its own uncommitted records: behind, not wrong;
//! - copies that hold a record of the same leader epoch at an offset hold the same records up
//!   to it (Raft's log matching property): a copy takes a record of epoch `e` only from the
//!   leader of `e`, after checking that the record before it has the epoch the leader's has;
//! - the sources read as a consumer must (Jepsen's Kafka checker's rules): each copy of a
//!   source subtask reads each partition from where it resumed, every offset once and in order,
//!   no offset skipped or read twice; and it reads only committed records, below a high
//!   watermark some leader had reached.
//!
//! The final log is the leader's copy at the end of the run, per the store's leadership record;
//! the replicas' copies are compared with it byte for byte (a follower writes what its leader
//! sent as it came).

use std::collections::BTreeMap;

use faultline_engine::cluster::{NodeId, Role};
use faultline_engine::observe::TraceEvent;
use faultline_engine::record::LogRecord;
use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 7] = [
    "log-acked-record-lost",
    "log-sequence",
    "log-high-watermark-regressed",
    "log-replica-diverged",
    "log-prefix-mismatch",
    "log-read-out-of-order",
    "log-read-uncommitted",
];

/// One broker's copy of a partition at the end of the run: each record's leader epoch and
/// encoding, by offset.
pub struct Copy<'a> {
    pub broker: NodeId,
    pub records: Vec<(u64, &'a [u8])>,
}

/// A partition's copies: the final leader's, then the other replicas'.
pub struct Copies<'a> {
    pub leader: Copy<'a>,
    pub others: Vec<Copy<'a>>,
}

/// Checks the trace's log events against each partition's final log and its replicas' copies.
pub fn check(
    events: &[(NodeId, TraceEvent)],
    logs: &BTreeMap<u32, Vec<LogRecord>>,
    copies: &BTreeMap<u32, Copies<'_>>,
) -> Vec<Violation> {
    let mut v = Vec::new();
    push(&mut v, "log-acked-record-lost", &lost_acknowledged(events, logs));
    push(&mut v, "log-sequence", &sequence_breaks(logs));
    push(&mut v, "log-high-watermark-regressed", &watermark_regressions(events));
    let agreed = agreed(copies);
    push(&mut v, "log-replica-diverged", &diverged(events, copies, &agreed));
    push(&mut v, "log-prefix-mismatch", &unmatched_prefixes(copies, &agreed));
    let (out_of_order, uncommitted) = reads(events);
    push(&mut v, "log-read-out-of-order", &out_of_order);
    push(&mut v, "log-read-uncommitted", &uncommitted);
    v
}

/// The sources' reads that skip or repeat an offset, and those past every high watermark
/// reached so far. A copy of a source subtask is its node; its position in a partition starts
/// where it resumed (each time it resumes) and moves by what it reads.
fn reads(events: &[(NodeId, TraceEvent)]) -> (Vec<String>, Vec<String>) {
    let (mut out_of_order, mut uncommitted) = (Vec::new(), Vec::new());
    let mut position: BTreeMap<(NodeId, u64, u32, u32), u64> = BTreeMap::new();
    let mut committed: BTreeMap<u32, u64> = BTreeMap::new();
    for (node, event) in events {
        match *event {
            TraceEvent::HighWatermark { partition, offset, .. } => {
                let hw = committed.entry(partition).or_default();
                *hw = (*hw).max(offset);
            }
            TraceEvent::SourceResumed { subtask, epoch, partition, offset } => {
                position.insert((*node, epoch, subtask, partition), offset);
            }
            TraceEvent::SourceRead { subtask, epoch, partition, offset, records } => {
                let who = format!("{} (source {subtask}, epoch {epoch})", node.name());
                match position.get_mut(&(*node, epoch, subtask, partition)) {
                    Some(at) if *at == offset => *at += records,
                    Some(at) => {
                        out_of_order
                            .push(format!("{who} read partition {partition} from {offset}, at {}", *at));
                        *at = offset + records;
                    }
                    None => {
                        out_of_order.push(format!("{who} read partition {partition} without resuming it"))
                    }
                }
                let hw = committed.get(&partition).copied().unwrap_or(0);
                if offset + records > hw {
                    let end = offset + records;
                    uncommitted
                        .push(format!("{who} read partition {partition} to {end}, past watermark {hw}"));
                }
            }
            _ => {}
        }
    }
    (out_of_order, uncommitted)
}

/// Acknowledged records missing from the final log.
fn lost_acknowledged(events: &[(NodeId, TraceEvent)], logs: &BTreeMap<u32, Vec<LogRecord>>) -> Vec<String> {
    let mut acked: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for (node, event) in events {
        if let (Role::Producer, TraceEvent::ProduceAcked { partition, end_seq }) = (node.role, event) {
            let end = acked.entry((*partition, node.index)).or_default();
            *end = (*end).max(*end_seq);
        }
    }
    let mut out = Vec::new();
    for (&(partition, producer), &end_seq) in &acked {
        let held: std::collections::BTreeSet<u64> = logs
            .get(&partition)
            .map(|log| {
                log.iter().filter(|r| r.producer == producer && r.seq < end_seq).map(|r| r.seq).collect()
            })
            .unwrap_or_default();
        let held = held.len();
        if (held as u64) < end_seq {
            out.push(format!(
                "partition {partition}: producer {producer} acked {end_seq} records, log holds {held}"
            ));
        }
    }
    out
}

/// Records out of their producer's sequence: repeated, reordered or after a gap.
fn sequence_breaks(logs: &BTreeMap<u32, Vec<LogRecord>>) -> Vec<String> {
    let mut out = Vec::new();
    for (partition, log) in logs {
        let mut next: BTreeMap<u32, u64> = BTreeMap::new();
        for (offset, r) in log.iter().enumerate() {
            let expected = next.entry(r.producer).or_default();
            if r.seq != *expected {
                out.push(format!(
                    "partition {partition} offset {offset}: producer {} seq {} where {} was next",
                    r.producer, r.seq, expected
                ));
            }
            *expected = r.seq + 1;
        }
    }
    out
}

/// High watermarks that went back, and truncations of committed records.
fn watermark_regressions(events: &[(NodeId, TraceEvent)]) -> Vec<String> {
    // Per partition: the highest watermark reached in each leader epoch.
    let mut reached: BTreeMap<u32, BTreeMap<u64, u64>> = BTreeMap::new();
    let mut out = Vec::new();
    for (node, event) in events {
        match *event {
            TraceEvent::HighWatermark { partition, epoch, offset } => {
                let epochs = reached.entry(partition).or_default();
                let top = epochs.range(..=epoch).map(|(_, &hw)| hw).max().unwrap_or(0);
                if offset < top {
                    out.push(format!(
                        "partition {partition}: {} moved it back to {offset} from {top}",
                        node.name()
                    ));
                }
                let mark = epochs.entry(epoch).or_default();
                *mark = (*mark).max(offset);
            }
            TraceEvent::Truncated { partition, epoch, offset } => {
                let epochs = reached.get(&partition);
                let committed = epochs.and_then(|e| e.range(..=epoch).map(|(_, &hw)| hw).max()).unwrap_or(0);
                if offset < committed {
                    let who = node.name();
                    out.push(format!("partition {partition}: {who} cut epoch-{epoch} records from {offset}, below {committed}"));
                }
            }
            _ => {}
        }
    }
    out
}

/// Per partition: the highest watermark reached in each leader epoch.
fn reached(events: &[(NodeId, TraceEvent)]) -> BTreeMap<u32, BTreeMap<u64, u64>> {
    let mut reached: BTreeMap<u32, BTreeMap<u64, u64>> = BTreeMap::new();
    for (_, event) in events {
        if let TraceEvent::HighWatermark { partition, epoch, offset } = *event {
            let mark = reached.entry(partition).or_default().entry(epoch).or_default();
            *mark = (*mark).max(offset);
        }
    }
    reached
}

/// Per partition, for each of its other copies in order: how many of its first records the
/// leader's copy holds too. Both replica checks start where a copy stops agreeing, so the
/// records of a run, tens of megabytes, are compared once rather than once per check.
fn agreed(copies: &BTreeMap<u32, Copies<'_>>) -> BTreeMap<u32, Vec<usize>> {
    let agreeing = |leader: &Copy<'_>, copy: &Copy<'_>| {
        let differ = |&(o, record): &(usize, &(u64, &[u8]))| leader.records.get(o) != Some(record);
        copy.records.iter().enumerate().find(differ).map_or(copy.records.len(), |(o, _)| o)
    };
    copies
        .iter()
        .map(|(&partition, c)| (partition, c.others.iter().map(|copy| agreeing(&c.leader, copy)).collect()))
        .collect()
}

/// Replicas' records that differ from the leader's at a committed offset.
fn diverged(
    events: &[(NodeId, TraceEvent)],
    copies: &BTreeMap<u32, Copies<'_>>,
    agreed: &BTreeMap<u32, Vec<usize>>,
) -> Vec<String> {
    let reached = reached(events);
    let mut out = Vec::new();
    for (partition, copies) in copies {
        let Some(epochs) = reached.get(partition) else { continue };
        // The watermark reached in epochs up to each epoch (a running maximum over them): what
        // a record of that epoch may not miss.
        let upto: Vec<(u64, u64)> = epochs
            .iter()
            .scan(0, |top, (&epoch, &hw)| {
                *top = hw.max(*top);
                Some((epoch, *top))
            })
            .collect();
        let committed = |epoch: u64| match upto.partition_point(|&(e, _)| e <= epoch) {
            0 => 0,
            n => upto[n - 1].1,
        };
        let leader = &copies.leader;
        for (copy, &agreed) in copies.others.iter().zip(&agreed[partition]) {
            assert_ne!(
                copy.broker, leader.broker,
                "partition {partition}: the leader is not its own replica"
            );
            let first = copy.records.iter().enumerate().skip(agreed).find(|&(offset, &(epoch, bytes))| {
                (offset as u64) < committed(epoch) && leader.records.get(offset) != Some(&(epoch, bytes))
            });
            if let Some((offset, &(epoch, _))) = first {
                let held = match leader.records.get(offset) {
                    Some((e, _)) => format!("another, of epoch {e}"),
                    None => "none".to_string(),
                };
                out.push(format!(
                    "partition {partition} offset {offset}: {} holds a record of epoch {epoch}, committed \
                     (watermark {} reached by epoch {epoch}), where the leader {} holds {held}",
                    copy.broker.name(),
                    committed(epoch),
                    leader.broker.name(),
                ));
            }
        }
    }
    out
}

/// Copies that hold a record of the same epoch at some offset as the leader's copy, and differ
/// from it at or below that offset. Unlike `diverged` this needs no high watermark: whatever was
/// committed, a copy that matched the leader of an epoch at an offset matched its whole prefix.
fn unmatched_prefixes(copies: &BTreeMap<u32, Copies<'_>>, agreed: &BTreeMap<u32, Vec<usize>>) -> Vec<String> {
    let mut out = Vec::new();
    for (partition, copies) in copies {
        let leader = &copies.leader.records;
        for (copy, &o) in copies.others.iter().zip(&agreed[partition]) {
            let shared = leader.len().min(copy.records.len());
            let same_epoch = |o: &usize| leader[*o].0 == copy.records[*o].0;
            let Some(top) = (0..shared).rev().find(same_epoch) else { continue };
            // The first offset at or below `top` where the copy differs: where it stops agreeing.
            if o <= top {
                assert!(
                    leader[o] != copy.records[o],
                    "partition {partition}: agreement ends at a difference"
                );
                out.push(format!(
                    "partition {partition}: {} holds the record of epoch {} at offset {top} the \
                     leader {} holds, but not the leader's record at offset {o} (epoch {} there, \
                     the leader's {})",
                    copy.broker.name(),
                    leader[top].0,
                    copies.leader.broker.name(),
                    copy.records[o].0,
                    leader[o].0,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::record::Payload;

    fn producer(i: u32) -> NodeId {
        NodeId::new(Role::Producer, i)
    }

    fn broker(i: u32) -> NodeId {
        NodeId::new(Role::Broker, i)
    }

    fn log(seqs: &[(u32, u64)]) -> BTreeMap<u32, Vec<LogRecord>> {
        let records = seqs.iter().map(|&(producer, seq)| LogRecord {
            producer,
            seq,
            stream_time_ms: 0,
            payload: Payload::EndOfStream,
        });
        BTreeMap::from([(0, records.collect())])
    }

    fn good_events() -> Vec<(NodeId, TraceEvent)> {
        vec![
            (broker(0), TraceEvent::HighWatermark { partition: 0, epoch: 1, offset: 2 }),
            (producer(0), TraceEvent::ProduceAcked { partition: 0, end_seq: 2 }),
            (broker(1), TraceEvent::HighWatermark { partition: 0, epoch: 2, offset: 3 }),
            // Broker 0 led epoch 1 past offset 2; epoch 2 committed other records there.
            (broker(0), TraceEvent::Truncated { partition: 0, epoch: 1, offset: 2 }),
            (producer(1), TraceEvent::ProduceAcked { partition: 0, end_seq: 1 }),
        ]
    }

    fn names(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.invariant.as_str()).collect()
    }

    #[test]
    fn a_good_history_passes() {
        assert!(check(&good_events(), &log(&[(0, 0), (0, 1), (1, 0)]), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_lost_acknowledged_record_is_caught() {
        assert_eq!(
            names(&check(&good_events(), &log(&[(0, 0), (1, 0)]), &BTreeMap::new())),
            ["log-acked-record-lost"]
        );
    }

    #[test]
    fn a_duplicate_or_a_gap_is_caught() {
        let v = check(&good_events(), &log(&[(0, 0), (0, 1), (0, 1), (1, 0)]), &BTreeMap::new());
        assert_eq!(names(&v), ["log-sequence"]);
        let v = check(&good_events(), &log(&[(0, 0), (0, 1), (1, 1)]), &BTreeMap::new());
        assert_eq!(names(&v), ["log-acked-record-lost", "log-sequence"]);
    }

    #[test]
    fn a_watermark_going_back_or_a_committed_truncation_is_caught() {
        let mut events = good_events();
        // A deposed leader of epoch 1 reporting a stale mark is behind, not wrong.
        events.push((broker(0), TraceEvent::HighWatermark { partition: 0, epoch: 1, offset: 2 }));
        assert!(check(&events, &log(&[(0, 0), (0, 1), (1, 0)]), &BTreeMap::new()).is_empty());
        events.push((broker(2), TraceEvent::HighWatermark { partition: 0, epoch: 3, offset: 1 }));
        events.push((broker(0), TraceEvent::Truncated { partition: 0, epoch: 2, offset: 2 }));
        let v = check(&events, &log(&[(0, 0), (0, 1), (1, 0)]), &BTreeMap::new());
        assert_eq!(names(&v), ["log-high-watermark-regressed"]);
        assert!(v[0].detail.starts_with("2 times"), "{}", v[0].detail);
    }

    /// Copies of partition 0 as (epoch, record) per offset; the first is the leader's.
    fn copies<'a>(
        leader: &'a [(u64, &'a [u8])],
        others: &[&'a [(u64, &'a [u8])]],
    ) -> BTreeMap<u32, Copies<'a>> {
        let copy =
            |i: u32, records: &'a [(u64, &'a [u8])]| Copy { broker: broker(i), records: records.to_vec() };
        let others = others.iter().enumerate().map(|(i, r)| copy(i as u32 + 1, r)).collect();
        BTreeMap::from([(0, Copies { leader: copy(0, leader), others })])
    }

    fn marks(hw: &[(u64, u64)]) -> Vec<(NodeId, TraceEvent)> {
        hw.iter()
            .map(|&(epoch, offset)| (broker(0), TraceEvent::HighWatermark { partition: 0, epoch, offset }))
            .collect()
    }

    fn source(i: u32) -> NodeId {
        NodeId::new(Role::Worker, i)
    }

    fn resumed(node: u32, offset: u64) -> (NodeId, TraceEvent) {
        (source(node), TraceEvent::SourceResumed { subtask: 0, epoch: 1, partition: 0, offset })
    }

    fn read(node: u32, offset: u64, records: u64) -> (NodeId, TraceEvent) {
        (source(node), TraceEvent::SourceRead { subtask: 0, epoch: 1, partition: 0, offset, records })
    }

    #[test]
    fn reads_in_order_below_the_watermark_pass_and_others_are_caught() {
        let mut events = marks(&[(1, 4)]);
        // Two copies of the subtask (an active pair), one resuming twice.
        events.extend([resumed(0, 0), read(0, 0, 2), resumed(1, 1), read(1, 1, 3), read(0, 2, 2)]);
        events.extend([resumed(0, 1), read(0, 1, 1)]);
        assert!(check(&events, &log(&[]), &BTreeMap::new()).is_empty());
        let skip = [marks(&[(1, 4)]), vec![resumed(0, 0), read(0, 0, 1), read(0, 2, 2)]].concat();
        let v = check(&skip, &log(&[]), &BTreeMap::new());
        assert_eq!(names(&v), ["log-read-out-of-order"]);
        assert!(v[0].detail.contains("read partition 0 from 2, at 1"), "{}", v[0].detail);
        let twice = [marks(&[(1, 4)]), vec![resumed(0, 0), read(0, 0, 2), read(0, 1, 1)]].concat();
        assert_eq!(names(&check(&twice, &log(&[]), &BTreeMap::new())), ["log-read-out-of-order"]);
        let unresumed = [marks(&[(1, 4)]), vec![read(0, 0, 1)]].concat();
        assert_eq!(names(&check(&unresumed, &log(&[]), &BTreeMap::new())), ["log-read-out-of-order"]);
        let early = vec![resumed(0, 0), read(0, 0, 2), marks(&[(1, 4)])[0].clone()];
        let v = check(&early, &log(&[]), &BTreeMap::new());
        assert_eq!(names(&v), ["log-read-uncommitted"]);
        assert!(v[0].detail.contains("to 2, past watermark 0"), "{}", v[0].detail);
    }

    #[test]
    fn replicas_behind_the_leader_or_holding_uncommitted_records_pass() {
        let leader: &[(u64, &[u8])] = &[(1, b"a"), (1, b"b"), (2, b"x"), (2, b"y")];
        // Epoch 1 committed two records; epoch 2 two more over what epoch 1 left uncommitted.
        let events = marks(&[(1, 2), (2, 4)]);
        let behind: &[(u64, &[u8])] = &[(1, b"a")];
        let stale: &[(u64, &[u8])] = &[(1, b"a"), (1, b"b"), (1, b"c"), (1, b"d")];
        let v = check(&events, &log(&[]), &copies(leader, &[behind, stale, leader]));
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn a_replica_differing_from_the_leader_on_a_committed_record_is_caught() {
        let leader: &[(u64, &[u8])] = &[(1, b"a"), (1, b"b"), (2, b"x"), (2, b"y")];
        let events = marks(&[(1, 2), (2, 4)]);
        // Same epoch, other bytes: the replica kept a record its leader never committed there.
        let other: &[(u64, &[u8])] = &[(1, b"a"), (1, b"b"), (2, b"x"), (2, b"z")];
        let v = check(&events, &log(&[]), &copies(leader, &[other]));
        assert_eq!(names(&v), ["log-replica-diverged", "log-prefix-mismatch"]);
        assert!(v[0].detail.contains("offset 3: broker-2 holds a record of epoch 2"), "{}", v[0].detail);
        // A leader missing a committed record the replica holds: the leader lost it.
        let short: &[(u64, &[u8])] = &leader[..1];
        let v = check(&events, &log(&[]), &copies(short, &[leader]));
        assert_eq!(names(&v), ["log-replica-diverged"]);
        assert!(v[0].detail.contains("holds none"), "{}", v[0].detail);
    }

    /// A copy that took epoch 3's record at offset 2 without matching the leader's epoch-2
    /// record before it (a follower that skipped the check of the previous record's epoch):
    /// nothing was committed, so only the log matching property sees it.
    #[test]
    fn a_replica_matching_a_later_record_but_not_its_prefix_is_caught() {
        let leader: &[(u64, &[u8])] = &[(1, b"a"), (2, b"b"), (3, b"c")];
        let unmatched: &[(u64, &[u8])] = &[(1, b"a"), (1, b"z"), (3, b"c")];
        let v = check(&[], &log(&[]), &copies(leader, &[unmatched]));
        assert_eq!(names(&v), ["log-prefix-mismatch"]);
        assert!(v[0].detail.contains("epoch 3 at offset 2"), "{}", v[0].detail);
        assert!(v[0].detail.contains("offset 1 (epoch 1 there, the leader's 2)"), "{}", v[0].detail);
        // Behind, or ahead with records of an epoch the leader never had: no shared epoch past
        // the matching prefix, nothing to say.
        let ahead: &[(u64, &[u8])] = &[(1, b"a"), (2, b"b"), (3, b"c"), (3, b"d")];
        assert!(check(&[], &log(&[]), &copies(leader, &[&leader[..2], ahead])).is_empty());
    }
}
