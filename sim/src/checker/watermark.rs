//! The watermark bound: the highest watermark a stage could legitimately hold at each moment of
//! a run, recomputed from what the sources had read by then. The late checker judges every late
//! record's watermark against it at the record's arrival, so a watermark that ran ahead of the
//! input (a partition declared idle too soon, a partition left out of the minimum) is caught
//! even when the records it makes late are real inputs behind it.
//!
//! The rule follows the sources' watermark (see the engine's `source_task`), loosened wherever
//! the checker cannot see what the engine saw, never tightened:
//! - a copy of a source subtask, from its `SourceResumed`, holds per partition the greatest
//!   event time of the log's records below the offset it read to (below the resume offset for
//!   what it restored). A partition is *open* until every producer's end-of-stream is read, and
//!   *active* until it went the idle timeout without a read (counted one millisecond early);
//! - the copy's watermark is the least of `greatest - max_out_of_orderness` over its open,
//!   active partitions; it never falls, and it counts for nothing while the copy is idle (no
//!   partition active) or ended (none open);
//! - of the copies of one subtask (an active pair, a restarted source) the highest counts;
//! - a stage of a job epoch is held to the least of its epoch's subtasks that must count,
//!   never falling. A subtask idle or ended at some moment of the epoch may count as idle to
//!   the stage at any later one: the stage hears of a revival only behind the records sent on
//!   reviving, however long they queue. When the stage may leave out every subtask, it may
//!   hold any one's watermark;
//! - a stage at all is held to the highest of the epochs' bounds, since a restored stage starts
//!   at a watermark an earlier epoch reached.

use std::collections::{BTreeMap, BTreeSet};

use faultline_engine::cluster::NodeId;
use faultline_engine::job::TimeSettings;
use faultline_engine::observe::TraceEvent;
use faultline_engine::record::{LogRecord, Payload};

/// One partition's log as the bound needs it: prefix maxima of event times and prefix counts
/// of end-of-stream markers.
struct Prefix {
    greatest: Vec<u64>,
    ended: Vec<u32>,
}

impl Prefix {
    fn of(records: &[LogRecord]) -> Prefix {
        let (mut greatest, mut ended) = (vec![0], vec![0]);
        for r in records {
            let (g, e) = (*greatest.last().expect("seeded"), *ended.last().expect("seeded"));
            match &r.payload {
                Payload::Data(event) => {
                    greatest.push(g.max(event.event_time_ms));
                    ended.push(e);
                }
                Payload::EndOfStream => {
                    greatest.push(g);
                    ended.push(e + 1);
                }
            }
        }
        Prefix { greatest, ended }
    }

    /// Below `offset` (a read past the log's end counts what the log holds).
    fn at(&self, offset: u64) -> (u64, u32) {
        let k = usize::try_from(offset).unwrap_or(usize::MAX).min(self.greatest.len() - 1);
        (self.greatest[k], self.ended[k])
    }
}

/// A copy of a source subtask: per partition, how far it read and when last.
#[derive(Default)]
struct Copy {
    parts: BTreeMap<u32, (u64, u64)>,
    /// The watermark it sent last (never falling).
    sent: u64,
}

/// The highest watermark a stage could hold, as a step function of simulated time.
pub struct Bound {
    /// `(ms, bound)` from `ms` on, in time order, bounds never falling.
    steps: Vec<(u64, u64)>,
}

impl Bound {
    /// From the sources' `SourceResumed` and `SourceRead` events `(ms, node, event)` in trace
    /// order, the final logs, the job's time settings, and how many producers end each partition.
    pub fn new(
        reads: &[(u64, NodeId, TraceEvent)],
        logs: &BTreeMap<u32, Vec<LogRecord>>,
        time: TimeSettings,
        producers: u32,
    ) -> Bound {
        assert!(producers > 0, "a run with no producers");
        let prefixes: BTreeMap<u32, Prefix> =
            logs.iter().map(|(&p, records)| (p, Prefix::of(records))).collect();
        let mut sweep = Sweep {
            prefixes,
            time,
            producers,
            copies: BTreeMap::new(),
            excusable: BTreeSet::new(),
            epochs: BTreeMap::new(),
        };
        let mut steps: Vec<(u64, u64)> = Vec::new();
        let instants = instants(reads, time);
        for (k, &(at, instant)) in instants.iter().enumerate() {
            if let Instant::Event(i) = instant {
                let (ms, node, ref event) = reads[i];
                sweep.apply(node, event, ms);
            }
            // A copy resumes its partitions one event at a time before it reads or sends
            // anything: one millisecond's resumptions count at once, so that a partition
            // resumed alone leaves no passing high bound behind. Reads count one by one, even
            // within a millisecond: a source sends its watermark after each read's batch.
            let resuming = |instant| resumption(reads, instant);
            if resuming(instant) && instants.get(k + 1).is_some_and(|&(next, i)| next == at && resuming(i)) {
                continue;
            }
            let bound = sweep.bound(at);
            assert!(steps.last().is_none_or(|&(_, b)| b <= bound), "the bound fell");
            match steps.last_mut() {
                Some(last) if last.0 == at => last.1 = bound,
                Some(last) if last.1 == bound => {}
                _ => steps.push((at, bound)),
            }
        }
        Bound { steps }
    }

    /// The highest watermark a stage could hold at `ms`.
    pub fn at(&self, ms: u64) -> u64 {
        let i = self.steps.partition_point(|&(from, _)| from <= ms);
        if i == 0 {
            0
        } else {
            self.steps[i - 1].1
        }
    }
}

/// A moment the bound may change: a source event, or a partition going idle.
#[derive(Clone, Copy)]
enum Instant {
    Event(usize),
    Tick,
}

/// Whether `instant` is a copy resuming a partition.
fn resumption(reads: &[(u64, NodeId, TraceEvent)], instant: Instant) -> bool {
    match instant {
        Instant::Event(i) => matches!(reads[i].2, TraceEvent::SourceResumed { .. }),
        Instant::Tick => false,
    }
}

/// Every source event, and the moment each read's partition would go idle if nothing followed,
/// with their ms, in time order (events in trace order, before ticks of the same ms).
fn instants(reads: &[(u64, NodeId, TraceEvent)], time: TimeSettings) -> Vec<(u64, Instant)> {
    let mut all: Vec<(u64, u8, usize, Instant)> =
        reads.iter().enumerate().map(|(i, &(ms, _, _))| (ms, 0, i, Instant::Event(i))).collect();
    if time.idle_timeout_ms > 0 {
        let idle_after = time.idle_timeout_ms.saturating_sub(1);
        all.extend(reads.iter().enumerate().map(|(i, &(ms, _, _))| (ms + idle_after, 1, i, Instant::Tick)));
    }
    all.sort_by_key(|&(ms, kind, i, _)| (ms, kind, i));
    all.into_iter().map(|(ms, _, _, instant)| (ms, instant)).collect()
}

/// The sweep's state: each copy's reads, and each epoch's stage bound so far.
struct Sweep {
    prefixes: BTreeMap<u32, Prefix>,
    time: TimeSettings,
    producers: u32,
    /// By (epoch, subtask), then node.
    copies: BTreeMap<(u64, u32), BTreeMap<NodeId, Copy>>,
    /// The subtasks a stage may have left out of its minimum: idle or ended at some moment of
    /// the epoch so far. A stage hears of a subtask's revival only behind the records it sends
    /// on reviving, however long those queue, so once idle a subtask may count as idle to the
    /// stage at any later moment.
    excusable: BTreeSet<(u64, u32)>,
    epochs: BTreeMap<u64, u64>,
}

impl Sweep {
    fn apply(&mut self, node: NodeId, event: &TraceEvent, ms: u64) {
        match *event {
            TraceEvent::SourceResumed { subtask, epoch, partition, offset } => {
                let copy = self.copies.entry((epoch, subtask)).or_default().entry(node).or_default();
                copy.parts.insert(partition, (offset, ms));
            }
            TraceEvent::SourceRead { subtask, epoch, partition, offset, records } => {
                let copy = self.copies.entry((epoch, subtask)).or_default().entry(node).or_default();
                let read = copy.parts.entry(partition).or_insert((offset, ms));
                *read = (read.0.max(offset + records), ms);
            }
            _ => {}
        }
    }

    /// The bound at `ms`, after every event up to it: each copy's watermark brought up to
    /// date, each epoch's stage bound with it, and the highest of those.
    fn bound(&mut self, ms: u64) -> u64 {
        let mut epochs: BTreeMap<u64, Epoch> = BTreeMap::new();
        for (&(epoch, subtask), copies) in self.copies.iter_mut() {
            let (mut highest, mut ended, mut idle) = (0, false, false);
            for copy in copies.values_mut() {
                match watermark(&self.prefixes, self.time, self.producers, copy, ms) {
                    Counts::Yes(w) => copy.sent = copy.sent.max(w),
                    Counts::Ended => ended = true,
                    Counts::Idle => idle = true,
                }
                highest = highest.max(copy.sent);
            }
            if ended || idle {
                self.excusable.insert((epoch, subtask));
            }
            let e = epochs.entry(epoch).or_insert(Epoch { must: None, may: 0, ended: true });
            if self.excusable.contains(&(epoch, subtask)) {
                e.may = e.may.max(highest);
            } else {
                e.must = Some(e.must.map_or(highest, |m| m.min(highest)));
            }
            e.ended &= ended;
        }
        for (epoch, e) in epochs {
            // The stage's least over the subtasks it must count; when it may leave out every
            // one, it can hold any one's; once every input ended, the end of time.
            let w = match (e.ended, e.must) {
                (true, _) => u64::MAX,
                (false, Some(must)) => must,
                (false, None) => e.may,
            };
            let stage = self.epochs.entry(epoch).or_insert(0);
            *stage = (*stage).max(w);
        }
        self.epochs.values().copied().max().unwrap_or(0)
    }
}

/// One epoch's subtasks at a moment: the least watermark of those a stage must count, the
/// highest of those it may leave out, and whether all of them ended.
struct Epoch {
    must: Option<u64>,
    may: u64,
    ended: bool,
}

/// Whether a copy's watermark counts for its stage, and what it is.
enum Counts {
    Yes(u64),
    /// No open partition is active.
    Idle,
    /// Every partition it reads was read to its end.
    Ended,
}

/// A copy's watermark at `ms`: the least of `greatest - bound` over its open, active
/// partitions.
fn watermark(
    prefixes: &BTreeMap<u32, Prefix>,
    time: TimeSettings,
    producers: u32,
    copy: &Copy,
    ms: u64,
) -> Counts {
    let (mut least, mut open) = (None::<u64>, false);
    for (p, &(end, last_read)) in &copy.parts {
        let Some(prefix) = prefixes.get(p) else { continue };
        let (greatest, ended) = prefix.at(end);
        if ended >= producers {
            continue;
        }
        open = true;
        let idle = time.idle_timeout_ms > 0 && ms.saturating_sub(last_read) + 1 >= time.idle_timeout_ms;
        if !idle {
            let w = greatest.saturating_sub(time.max_out_of_orderness_ms);
            least = Some(least.map_or(w, |l| l.min(w)));
        }
    }
    match (least, open) {
        (Some(w), _) => Counts::Yes(w),
        (None, true) => Counts::Idle,
        (None, false) => Counts::Ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::cluster::Role;
    use faultline_engine::record::Event;
    use faultline_engine::sdk::codec::KeyBytes;
    use faultline_engine::sdk::Blob;

    const W: NodeId = NodeId { role: Role::Worker, index: 0 };
    const TIME: TimeSettings = TimeSettings { max_out_of_orderness_ms: 10, idle_timeout_ms: 100 };

    /// A partition whose record at offset `i` has event time `times[i]`, then one end marker.
    fn log(times: &[u64]) -> Vec<LogRecord> {
        let data = times.iter().enumerate().map(|(i, &t)| {
            let event =
                Event { id: i as u64, key: KeyBytes::of(&0u64), value: Blob::new(), event_time_ms: t };
            LogRecord { producer: 0, seq: i as u64, stream_time_ms: 0, payload: Payload::Data(event) }
        });
        let end = LogRecord {
            producer: 0,
            seq: times.len() as u64,
            stream_time_ms: 0,
            payload: Payload::EndOfStream,
        };
        data.chain([end]).collect()
    }

    fn resumed(ms: u64, subtask: u32, partition: u32) -> (u64, NodeId, TraceEvent) {
        (ms, W, TraceEvent::SourceResumed { subtask, epoch: 1, partition, offset: 0 })
    }

    fn read(ms: u64, subtask: u32, partition: u32, offset: u64, records: u64) -> (u64, NodeId, TraceEvent) {
        (ms, W, TraceEvent::SourceRead { subtask, epoch: 1, partition, offset, records })
    }

    #[test]
    fn the_bound_is_the_least_partition_read_until_one_goes_idle() {
        let logs = BTreeMap::from([(0, log(&[100, 200, 300])), (1, log(&[50, 60]))]);
        let events = [
            resumed(0, 0, 0),
            resumed(0, 1, 1),
            read(10, 0, 0, 0, 2), // partition 0 up to 200
            read(12, 1, 1, 0, 1), // partition 1 up to 50
            read(40, 0, 0, 2, 1), // partition 0 up to 300
        ];
        let bound = Bound::new(&events, &logs, TIME, 1);
        assert_eq!(bound.at(5), 0, "nothing read yet");
        assert_eq!(bound.at(20), 40, "the slower subtask holds it: 50 - 10");
        assert_eq!(bound.at(60), 40);
        // Partition 1 unread since 12 ms: idle from 111 ms (a millisecond early), and then the
        // other subtask alone holds the stage: 300 - 10.
        assert_eq!(bound.at(110), 40);
        assert_eq!(bound.at(111), 290);
        assert_eq!(bound.at(500), 290, "both idle: either may hold it, and it never falls");
        // Reading the end markers ends the input: the end of time.
        let ended = [events.to_vec(), vec![read(600, 0, 0, 3, 1), read(601, 1, 1, 2, 1)]].concat();
        assert_eq!(Bound::new(&ended, &logs, TIME, 1).at(601), u64::MAX);
    }

    #[test]
    fn a_copy_resuming_its_partitions_in_one_millisecond_leaves_no_passing_high() {
        let logs = BTreeMap::from([(0, log(&[100, 200, 300])), (1, log(&[50, 60]))]);
        let at =
            |partition, offset| (5, W, TraceEvent::SourceResumed { subtask: 0, epoch: 1, partition, offset });
        let bound = Bound::new(&[at(0, 3), at(1, 1)], &logs, TIME, 1);
        assert_eq!(bound.at(5), 40, "the least of 300 and 50, less the bound, never 290");
    }

    #[test]
    fn a_watermark_between_two_reads_of_one_millisecond_counts() {
        // Seed 4791 of interval-join: a subtask reads one partition's end, then its other's, in
        // one millisecond, and sends the other's watermark between the two reads.
        let logs = BTreeMap::from([(0, log(&[100, 250])), (1, log(&[50, 300])), (2, log(&[50, 60]))]);
        let events = [
            resumed(0, 0, 0),
            resumed(0, 0, 1),
            resumed(0, 1, 2),
            read(10, 1, 2, 0, 1),  // subtask 1 at 50, then idle from 109 ms
            read(100, 0, 0, 0, 2), // partition 0 up to 250
            read(100, 0, 1, 0, 2), // partition 1 up to 300
            read(150, 0, 0, 2, 1), // partition 0's end: partition 1 alone, 300 - 10
            read(150, 0, 1, 2, 1), // partition 1's end: subtask 0 ended
        ];
        let bound = Bound::new(&events, &logs, TIME, 1);
        assert_eq!(bound.at(100), 40, "subtask 1 holds the stage");
        assert_eq!(bound.at(109), 240, "subtask 1 idle: subtask 0's least partition");
        assert_eq!(bound.at(150), 290, "partition 1's watermark, sent between the two ends");
    }

    #[test]
    fn a_revived_subtask_does_not_pull_the_bound_back() {
        let logs = BTreeMap::from([(0, log(&[100, 200, 300, 400])), (1, log(&[50, 60, 70]))]);
        let events = [
            resumed(0, 0, 0),
            resumed(0, 1, 1),
            read(10, 0, 0, 0, 1),  // 100
            read(10, 1, 1, 0, 1),  // 50
            read(150, 0, 0, 1, 1), // 200: partition 1 idle since 109 ms
            read(160, 1, 1, 1, 1), // revived at 60
        ];
        let bound = Bound::new(&events, &logs, TIME, 1);
        assert_eq!(bound.at(50), 40);
        assert_eq!(bound.at(150), 190, "the idle subtask left out");
        assert_eq!(bound.at(170), 190, "never falls; and the revived one may still look idle");
    }
}
