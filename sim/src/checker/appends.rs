//! The append checker: what the brokers report appending is what their logs hold.
//!
//! Invariants:
//! - each broker's reported appends to a partition tile its copy: an append starts where the
//!   copy ended, after the previous append or the last truncation it reported
//!   (`log-append-misplaced`). The log checker trusts these reports to say which records a
//!   copy took in, and the timeline draws them;
//! - each record's stream time, the moment its leader appended it, falls between the first
//!   send of its producer's batch and the acknowledgement that covered it, or the last append
//!   any broker reported if none did (`log-stream-time`). A record's skew (stream time minus event time), which
//!   the run's record reports, rests on it.

use std::collections::BTreeMap;

use faultline_engine::cluster::{NodeId, Role};
use faultline_engine::observe::TraceEvent;
use faultline_engine::record::LogRecord;
use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 2] = ["log-append-misplaced", "log-stream-time"];

/// Checks the brokers' and producers' timed log events (simulated ms, node, event) against
/// each partition's final log. Stream times count from `base_time_ms`.
pub fn check(
    events: &[(u64, NodeId, TraceEvent)],
    logs: &BTreeMap<u32, Vec<LogRecord>>,
    base_time_ms: u64,
) -> Vec<Violation> {
    let mut v = Vec::new();
    push(&mut v, "log-append-misplaced", &misplaced(events));
    push(&mut v, "log-stream-time", &stream_times(events, logs, base_time_ms));
    v
}

/// Appends that do not start at the end of the copy they were made to.
fn misplaced(events: &[(u64, NodeId, TraceEvent)]) -> Vec<String> {
    let mut end: BTreeMap<(NodeId, u32), u64> = BTreeMap::new();
    let mut out = Vec::new();
    for &(at_ms, node, ref event) in events {
        match *event {
            TraceEvent::Truncated { partition, offset, .. } => {
                let copy_end = end.entry((node, partition)).or_default();
                if offset > *copy_end {
                    out.push(format!(
                        "{} at {at_ms} ms cut partition {partition} back to offset {offset}, past its \
                         copy's end at {copy_end}",
                        node.name()
                    ));
                }
                *copy_end = offset;
            }
            TraceEvent::Appended { partition, base_offset, records } => {
                let copy_end = end.entry((node, partition)).or_default();
                if base_offset != *copy_end {
                    out.push(format!(
                        "{} at {at_ms} ms appended {records} records to partition {partition} at offset \
                         {base_offset}, where its copy ended at {copy_end}",
                        node.name()
                    ));
                }
                *copy_end = base_offset + records;
            }
            _ => {}
        }
    }
    out
}

/// When each of a producer's records was first sent and first acknowledged, by sequence
/// number, from its sends `(base_seq, records, ms)` and acknowledgements `(end_seq, ms)` in
/// trace order.
#[derive(Default)]
struct Produced {
    sends: Vec<(u64, u64, u64)>,
    acks: Vec<(u64, u64)>,
}

/// Per sequence number below `limit`, the first of the events that covers it: `spans` are
/// `(from, to, ms)` in time order, each covering `from..to`. The limit is what the log holds:
/// a span reported past it (an engine's misreport) costs nothing.
fn first_cover(spans: impl Iterator<Item = (u64, u64, u64)>, limit: u64) -> Vec<Option<u64>> {
    let mut first: Vec<Option<u64>> = vec![None; limit as usize];
    for (from, to, ms) in spans {
        let (from, to) = (from.min(limit) as usize, to.min(limit) as usize);
        for slot in &mut first[from..to.max(from)] {
            slot.get_or_insert(ms);
        }
    }
    first
}

impl Produced {
    /// The first send of each sequence number below `limit`, and its first acknowledgement.
    fn firsts(&self, limit: u64) -> (Vec<Option<u64>>, Vec<Option<u64>>) {
        let sent =
            first_cover(self.sends.iter().map(|&(base, n, ms)| (base, base.saturating_add(n), ms)), limit);
        // An acknowledgement covers every sequence number below its end: the first to reach
        // past the ends before it is the first for the numbers between.
        let mut reached = 0;
        let acked = first_cover(
            self.acks.iter().map(|&(end, ms)| {
                let from = reached.min(end);
                reached = reached.max(end);
                (from, end, ms)
            }),
            limit,
        );
        (sent, acked)
    }
}

/// Records whose stream time lies outside the span in which their leader can have appended them.
fn stream_times(
    events: &[(u64, NodeId, TraceEvent)],
    logs: &BTreeMap<u32, Vec<LogRecord>>,
    base_time_ms: u64,
) -> Vec<String> {
    // A leader stamps a record as it reports appending it: no stamp is later than the last report.
    let last_append_ms = events
        .iter()
        .filter(|(_, _, e)| matches!(e, TraceEvent::Appended { .. }))
        .map(|&(ms, _, _)| ms)
        .max()
        .unwrap_or(0);
    let mut produced: BTreeMap<(u32, u32), Produced> = BTreeMap::new();
    for &(at_ms, node, ref event) in events {
        match (node.role, event) {
            (Role::Producer, &TraceEvent::ProduceSent { partition, base_seq, records }) => {
                produced.entry((partition, node.index)).or_default().sends.push((base_seq, records, at_ms));
            }
            (Role::Producer, &TraceEvent::ProduceAcked { partition, end_seq }) => {
                produced.entry((partition, node.index)).or_default().acks.push((end_seq, at_ms));
            }
            _ => {}
        }
    }
    // Per partition and producer, one past the greatest sequence number the log holds.
    let mut limits: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for (&partition, log) in logs {
        for r in log {
            let limit = limits.entry((partition, r.producer)).or_default();
            *limit = (*limit).max(r.seq + 1);
        }
    }
    let firsts: BTreeMap<(u32, u32), _> =
        produced.iter().filter_map(|(k, p)| limits.get(k).map(|&limit| (*k, p.firsts(limit)))).collect();
    let mut out = Vec::new();
    for (&partition, log) in logs {
        for (offset, r) in log.iter().enumerate() {
            let Some((sent, acked)) = firsts.get(&(partition, r.producer)) else { continue };
            let Some(&Some(sent_ms)) = sent.get(r.seq as usize) else { continue };
            let latest_ms = acked.get(r.seq as usize).copied().flatten().unwrap_or(last_append_ms);
            let appended_ms = r.stream_time_ms.checked_sub(base_time_ms);
            if appended_ms.is_none_or(|ms| ms < sent_ms || ms > latest_ms) {
                out.push(format!(
                    "partition {partition} offset {offset} (producer {} seq {}): stream time {} is \
                     not within the {sent_ms}..={latest_ms} ms its batch was sent and acknowledged in \
                     (run time = stream time - {base_time_ms})",
                    r.producer, r.seq, r.stream_time_ms
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use faultline_engine::record::Payload;

    use super::*;

    const BASE: u64 = 1_000_000;

    fn broker(i: u32) -> NodeId {
        NodeId { role: Role::Broker, index: i }
    }

    fn producer(i: u32) -> NodeId {
        NodeId { role: Role::Producer, index: i }
    }

    fn appended(partition: u32, base_offset: u64, records: u64) -> TraceEvent {
        TraceEvent::Appended { partition, base_offset, records }
    }

    fn names(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.invariant.as_str()).collect()
    }

    /// Producer 0 sends seqs 0..2 at 10 ms (acked at 20 ms) and 2..3 at 30 ms (never acked).
    fn produced() -> Vec<(u64, NodeId, TraceEvent)> {
        vec![
            (10, producer(0), TraceEvent::ProduceSent { partition: 0, base_seq: 0, records: 2 }),
            (12, broker(0), appended(0, 0, 2)),
            (20, producer(0), TraceEvent::ProduceAcked { partition: 0, end_seq: 2 }),
            (30, producer(0), TraceEvent::ProduceSent { partition: 0, base_seq: 2, records: 1 }),
            (31, broker(0), appended(0, 2, 1)),
        ]
    }

    fn log(stamps: &[u64]) -> BTreeMap<u32, Vec<LogRecord>> {
        let records = stamps
            .iter()
            .enumerate()
            .map(|(seq, &ms)| LogRecord {
                producer: 0,
                seq: seq as u64,
                stream_time_ms: BASE + ms,
                payload: Payload::EndOfStream,
            })
            .collect();
        BTreeMap::from([(0, records)])
    }

    #[test]
    fn appends_that_tile_each_copy_and_plausible_stamps_pass() {
        let mut events = produced();
        // A follower takes both batches, is cut back to 1 by a new leader, and goes on from there.
        events.extend([
            (13, broker(1), appended(0, 0, 2)),
            (40, broker(1), TraceEvent::Truncated { partition: 0, epoch: 1, offset: 1 }),
            (41, broker(1), appended(0, 1, 2)),
        ]);
        assert!(check(&events, &log(&[12, 12, 31]), BASE).is_empty());
    }

    /// An append reported past the copy's end (or over what it holds) is misplaced.
    #[test]
    fn an_append_away_from_the_copy_end_is_misplaced() {
        let mut gap = produced();
        gap.push((50, broker(0), appended(0, 4, 1)));
        assert_eq!(names(&check(&gap, &log(&[12, 12, 31]), BASE)), ["log-append-misplaced"]);
        let mut overlap = produced();
        overlap.push((50, broker(1), appended(0, 0, 3)));
        overlap.push((51, broker(1), appended(0, 2, 1)));
        assert_eq!(names(&check(&overlap, &log(&[12, 12, 31]), BASE)), ["log-append-misplaced"]);
    }

    /// A stamp before the batch was sent, after its acknowledgement, after the last append, or
    /// before the run's base time is wrong.
    #[test]
    fn a_stamp_outside_send_to_acknowledgement_is_caught() {
        for stamps in [[9, 12, 31], [12, 21, 31], [12, 12, 32]] {
            let v = check(&produced(), &log(&stamps), BASE);
            assert_eq!(names(&v), ["log-stream-time"], "{stamps:?}");
        }
        let mut before_base = log(&[12, 12, 31]);
        before_base.get_mut(&0).unwrap()[0].stream_time_ms = 0;
        assert_eq!(names(&check(&produced(), &before_base, BASE)), ["log-stream-time"]);
    }
}
