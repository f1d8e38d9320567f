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
//!   records at those offsets, so a stale replica rightly cuts its own).
//!
//! The final log is the leader's copy at the end of the run, per the store's leadership record.

use std::collections::BTreeMap;

use faultline_engine::cluster::{NodeId, Role};
use faultline_engine::observe::TraceEvent;
use faultline_engine::record::LogRecord;
use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 3] = ["log-acked-record-lost", "log-sequence", "log-high-watermark-regressed"];

/// Checks the trace's log events against each partition's final log.
pub fn check(events: &[(NodeId, TraceEvent)], logs: &BTreeMap<u32, Vec<LogRecord>>) -> Vec<Violation> {
    let mut v = Vec::new();
    push(&mut v, "log-acked-record-lost", &lost_acknowledged(events, logs));
    push(&mut v, "log-sequence", &sequence_breaks(logs));
    push(&mut v, "log-high-watermark-regressed", &watermark_regressions(events));
    v
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
        assert!(check(&good_events(), &log(&[(0, 0), (0, 1), (1, 0)])).is_empty());
    }

    #[test]
    fn a_lost_acknowledged_record_is_caught() {
        assert_eq!(names(&check(&good_events(), &log(&[(0, 0), (1, 0)]))), ["log-acked-record-lost"]);
    }

    #[test]
    fn a_duplicate_or_a_gap_is_caught() {
        let v = check(&good_events(), &log(&[(0, 0), (0, 1), (0, 1), (1, 0)]));
        assert_eq!(names(&v), ["log-sequence"]);
        let v = check(&good_events(), &log(&[(0, 0), (0, 1), (1, 1)]));
        assert_eq!(names(&v), ["log-acked-record-lost", "log-sequence"]);
    }

    #[test]
    fn a_watermark_going_back_or_a_committed_truncation_is_caught() {
        let mut events = good_events();
        // A deposed leader of epoch 1 reporting a stale mark is behind, not wrong.
        events.push((broker(0), TraceEvent::HighWatermark { partition: 0, epoch: 1, offset: 2 }));
        assert!(check(&events, &log(&[(0, 0), (0, 1), (1, 0)])).is_empty());
        events.push((broker(2), TraceEvent::HighWatermark { partition: 0, epoch: 3, offset: 1 }));
        events.push((broker(0), TraceEvent::Truncated { partition: 0, epoch: 2, offset: 2 }));
        let v = check(&events, &log(&[(0, 0), (0, 1), (1, 0)]));
        assert_eq!(names(&v), ["log-high-watermark-regressed"]);
        assert!(v[0].detail.starts_with("2 times"), "{}", v[0].detail);
    }
}
