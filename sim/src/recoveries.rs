//! Recovery metrics: each recovery of a run, read off the trace, the sources' reads and the
//! sink's log.
//!
//! A recovery starts at a rollback (`RecoveryStarted`) or a failover (`Failover`) and lasts
//! until the next one starts. Within it:
//! - detection: from the fault to the worker's declared death (or the start); the fault is the
//!   latest effective one on the dead worker, else the latest effective one of any kind;
//! - recovered: a rollback's epoch deployed on the workers (every subtask of the job traced
//!   `TaskDeployed` in it), or a failover's last promotion;
//! - records replayed: input the sources read again, below what they had read of each
//!   partition before the recovery began;
//! - output resumed: the writers it replaced (every writer of the new epoch for a rollback, the
//!   promoted subtasks' for a failover) each delivered output the sink had not kept before
//!   (`crate::resumed`, from the sink's log), and the sources read past where they had been on
//!   every partition they went back on: the job is past the point the fault stopped it at.
//!   (Output the sink received but lost, in a transaction aborted before its prepare, is not in
//!   its log; the input side is what counts its replay.)
//! - state transferred: bytes read from the store or shipped to standbys.
//!
//! A rollback superseded by the next recovery before it finished deploying is kept, marked
//! `superseded`: the report shows every attempt, not only the one that got the job going.

use std::collections::{BTreeMap, BTreeSet};

use faultline_engine::cluster::{NodeId, Role};
use faultline_engine::job::writer_epoch;
use faultline_engine::observe::TraceEvent;
use faultline_reports::{FaultRecord, RecoveryRecord};

use crate::resumed::Resumption;

/// What a run shows beside its recovery milestones.
pub struct Observed<'a> {
    /// The job's subtasks (chains × parallelism): a rollback is deployed once each has been.
    pub subtasks: usize,
    /// Each writer epoch's output resumption, from the sink's log.
    pub resumed: &'a [Resumption],
    /// The sources' reads: (simulated ms, partition, first offset, records).
    pub reads: &'a [(u64, u32, u64, u64)],
}

/// One recovery per rollback or failover in `events` (the recorder's recovery events).
pub fn recoveries(
    events: &[(u64, TraceEvent)],
    faults: &[FaultRecord],
    seen: &Observed<'_>,
) -> Vec<RecoveryRecord> {
    assert!(seen.subtasks > 0, "a job has subtasks");
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, (_, e))| matches!(e, TraceEvent::RecoveryStarted { .. } | TraceEvent::Failover { .. }))
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(events.len());
        let previous_start = n.checked_sub(1).map_or(0, |p| events[starts[p]].0);
        let superseded_at = starts.get(n + 1).map(|&next| events[next].0);
        let span = Span { events: &events[..end], start, after_ms: previous_start, superseded_at };
        if let Some(r) = recovery(span, faults, seen) {
            out.push(r);
        }
    }
    out
}

/// One recovery's stretch of the milestones: those up to the next recovery's start.
struct Span<'a> {
    events: &'a [(u64, TraceEvent)],
    /// The index of its first event.
    start: usize,
    /// The previous recovery's start (0 for the first).
    after_ms: u64,
    /// When the next recovery began, if one did.
    superseded_at: Option<u64>,
}

fn recovery(span: Span<'_>, faults: &[FaultRecord], seen: &Observed<'_>) -> Option<RecoveryRecord> {
    let Span { events, start, after_ms, superseded_at } = span;
    let started_ms = events[start].0;
    let until_ms = superseded_at.unwrap_or(u64::MAX);
    let window = &events[start + 1..];
    let death =
        events[..start].iter().rev().take_while(|(t, _)| *t >= after_ms).find_map(|(t, e)| match *e {
            TraceEvent::WorkerDead { worker } => Some((*t, worker)),
            _ => None,
        });
    let detected_at_ms = death.map_or(started_ms, |(t, _)| t);
    let fault_at_ms = cause(faults, detected_at_ms, death.map(|(_, w)| w)).unwrap_or(detected_at_ms);
    let mut r = RecoveryRecord {
        fault_at_ms,
        detected_at_ms,
        recovered_at_ms: started_ms,
        epoch: 0,
        checkpoint: 0,
        kind: String::new(),
        detection_ms: detected_at_ms - fault_at_ms,
        output_resumed_at_ms: None,
        time_to_resume_ms: None,
        records_replayed: 0,
        state_bytes_transferred: 0,
        promoted: 0,
        sources_restarted: 0,
        superseded: false,
    };
    let resumed = || seen.resumed.iter().filter(|x| (started_ms..until_ms).contains(&x.at_ms));
    let Some(writers) = replaced_writers(&events[start].1, window, seen.subtasks, resumed, &mut r) else {
        // A rollback that never finished deploying: the next recovery took over.
        r.superseded = true;
        r.recovered_at_ms = superseded_at?;
        return Some(r);
    };
    let replay = replay(seen.reads, started_ms, until_ms);
    r.records_replayed = replay.records;
    for x in resumed().filter(|x| writers.contains(&(x.writer, x.epoch))) {
        r.output_resumed_at_ms = Some(r.output_resumed_at_ms.unwrap_or(0).max(x.at_ms));
    }
    // Resumed: new output, and the input read back to where it was.
    r.output_resumed_at_ms =
        r.output_resumed_at_ms.filter(|_| replay.complete).map(|t| t.max(replay.caught_up_ms));
    r.time_to_resume_ms = r.output_resumed_at_ms.map(|t| t - fault_at_ms);
    r.state_bytes_transferred = window
        .iter()
        .map(|(_, e)| match *e {
            TraceEvent::StateLoaded { bytes } | TraceEvent::StateShipped { bytes } => bytes,
            _ => 0,
        })
        .sum();
    Some(r)
}

/// What a recovery made the sources read again.
struct Replay {
    /// Records read in the recovery at offsets below what their partition had been read to
    /// before it began.
    records: u64,
    /// When the last partition the sources went back on was read past that point again (0:
    /// they went back on none).
    caught_up_ms: u64,
    /// Whether every partition they went back on was read past it again.
    complete: bool,
}

/// The reads of `[from_ms, until_ms)` measured against what each partition had been read to
/// before `from_ms`.
fn replay(reads: &[(u64, u32, u64, u64)], from_ms: u64, until_ms: u64) -> Replay {
    let mut before: BTreeMap<u32, u64> = BTreeMap::new();
    for &(_, partition, offset, records) in reads.iter().filter(|r| r.0 < from_ms) {
        let end = before.entry(partition).or_default();
        *end = (*end).max(offset + records);
    }
    let mut records = 0;
    let mut rewound: BTreeMap<u32, Option<u64>> = BTreeMap::new();
    for &(at_ms, partition, offset, n) in reads.iter().filter(|r| (from_ms..until_ms).contains(&r.0)) {
        let end = before.get(&partition).copied().unwrap_or(0);
        if offset < end {
            records += (offset + n).min(end) - offset;
            rewound.entry(partition).or_insert(None);
        }
        if offset + n >= end {
            if let Some(caught_up @ None) = rewound.get_mut(&partition) {
                *caught_up = Some(at_ms);
            }
        }
    }
    let complete = rewound.values().all(Option::is_some);
    let caught_up_ms = rewound.values().flatten().copied().max().unwrap_or(0);
    Replay { records, caught_up_ms, complete }
}

/// When the fault behind a recovery detected at `detected_at_ms` struck: the latest effective
/// fault on the worker declared dead, if a death was detected and a fault hit that worker;
/// otherwise the latest effective fault of any kind.
fn cause(faults: &[FaultRecord], detected_at_ms: u64, dead: Option<u32>) -> Option<u64> {
    let before = || faults.iter().filter(|f| f.effective && f.at_ms <= detected_at_ms);
    let on_dead = dead.map(|w| NodeId::new(Role::Worker, w).name());
    on_dead
        .and_then(|name| before().filter(|f| f.target == name).map(|f| f.at_ms).max())
        .or_else(|| before().map(|f| f.at_ms).max())
}

/// Fills in what the recovery's first event says; returns the `(writer, writer epoch)` pairs
/// it replaced, or `None` for a rollback that never finished deploying (superseded, or the run
/// ended first).
fn replaced_writers<'a, I: Iterator<Item = &'a Resumption>>(
    first: &TraceEvent,
    window: &[(u64, TraceEvent)],
    subtasks: usize,
    resumed: impl Fn() -> I,
    r: &mut RecoveryRecord,
) -> Option<Vec<(u32, u64)>> {
    match *first {
        TraceEvent::RecoveryStarted { epoch, checkpoint } => {
            r.kind = "rollback".into();
            (r.epoch, r.checkpoint) = (epoch, checkpoint);
            r.recovered_at_ms = deployed_at(window, epoch, subtasks)?;
            let fresh = writer_epoch(epoch, 0);
            Some(resumed().filter(|x| x.epoch == fresh).map(|x| (x.writer, x.epoch)).collect())
        }
        TraceEvent::Failover { epoch, checkpoint, promoted, restarted } => {
            r.kind = "failover".into();
            (r.epoch, r.checkpoint, r.promoted, r.sources_restarted) =
                (epoch, checkpoint, promoted, restarted);
            let mut writers = Vec::new();
            for (t, e) in window {
                if let TraceEvent::Promoted { subtask, generation, .. } = *e {
                    r.recovered_at_ms = *t;
                    writers.push((subtask, writer_epoch(epoch, generation)));
                }
            }
            Some(writers)
        }
        _ => unreachable!("a recovery starts with a rollback or a failover"),
    }
}

/// When the last of the job's `subtasks` subtasks was deployed in `epoch`, if all were.
fn deployed_at(window: &[(u64, TraceEvent)], epoch: u64, subtasks: usize) -> Option<u64> {
    let mut deployed = BTreeSet::new();
    window.iter().find_map(|(t, e)| match *e {
        TraceEvent::TaskDeployed { operator, subtask, epoch: e, .. } if e == epoch => {
            deployed.insert((operator, subtask));
            assert!(deployed.len() <= subtasks, "more subtasks deployed than the job has");
            (deployed.len() == subtasks).then_some(*t)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(at_ms: u64, target: &str, effective: bool) -> FaultRecord {
        FaultRecord {
            at_ms,
            class: "processor".into(),
            target: target.into(),
            peer: None,
            action: "crash".into(),
            restart_after_ms: None,
            healed_at_ms: None,
            effective,
            mid_checkpoint: false,
        }
    }

    #[test]
    fn a_death_is_blamed_on_the_fault_that_hit_that_worker() {
        let faults =
            [crash(100, "worker-3", true), crash(200, "worker-1", true), crash(250, "worker-3", false)];
        assert_eq!(cause(&faults, 400, Some(2)), Some(100), "worker index 2 is worker-3");
        assert_eq!(cause(&faults, 400, Some(0)), Some(200));
        assert_eq!(cause(&faults, 400, Some(1)), Some(200), "no fault hit worker-2: the latest one");
        assert_eq!(cause(&faults, 400, None), Some(200));
        assert_eq!(cause(&faults, 50, None), None);
    }

    #[test]
    fn a_rollback_that_never_deployed_is_kept_as_superseded() {
        let deployed =
            |operator, epoch| TraceEvent::TaskDeployed { operator, subtask: 0, epoch, generation: 0 };
        let events = [
            (10, TraceEvent::RecoveryStarted { epoch: 2, checkpoint: 1 }),
            (12, deployed(0, 2)),
            (30, TraceEvent::WorkerDead { worker: 0 }),
            (31, TraceEvent::RecoveryStarted { epoch: 3, checkpoint: 1 }),
            (35, deployed(1, 3)),
            (36, deployed(1, 3)),
            (40, deployed(0, 3)),
        ];
        let faults = [crash(5, "worker-1", true)];
        let seen = Observed { subtasks: 2, resumed: &[], reads: &[] };
        let found = recoveries(&events, &faults, &seen);
        let summary: Vec<_> = found.iter().map(|r| (r.epoch, r.superseded, r.recovered_at_ms)).collect();
        assert_eq!(summary, [(2, true, 31), (3, false, 40)], "epoch 3 has both subtasks at 40");
        assert_eq!((found[1].fault_at_ms, found[1].detected_at_ms), (5, 30));
    }

    #[test]
    fn output_resumes_when_every_replaced_writer_moved_past_and_replays_are_reads_again() {
        let events = [
            (100, TraceEvent::RecoveryStarted { epoch: 2, checkpoint: 1 }),
            (110, TraceEvent::TaskDeployed { operator: 0, subtask: 0, epoch: 2, generation: 0 }),
        ];
        let fresh = writer_epoch(2, 0);
        let resumed = [
            Resumption { at_ms: 20, writer: 0, epoch: writer_epoch(1, 0) },
            Resumption { at_ms: 130, writer: 0, epoch: fresh },
            Resumption { at_ms: 150, writer: 1, epoch: fresh },
        ];
        // Partition 0 was read to offset 50 and partition 1 to 10 before the rollback; the
        // sources then read partition 0 again from 30 (20 of those again), and partition 1 on.
        let reads = [(10, 0, 0, 40), (60, 0, 40, 10), (70, 1, 0, 10), (120, 0, 30, 25), (125, 1, 10, 5)];
        let seen = Observed { subtasks: 1, resumed: &resumed, reads: &reads };
        let found = recoveries(&events, &[], &seen);
        assert_eq!(found.len(), 1);
        let r = &found[0];
        assert_eq!(
            (r.recovered_at_ms, r.output_resumed_at_ms, r.time_to_resume_ms),
            (110, Some(150), Some(50))
        );
        assert_eq!(r.records_replayed, 20);
    }

    #[test]
    fn a_replay_ends_when_every_partition_gone_back_on_is_read_past_where_it_was() {
        // Before 100: partition 0 read to 50, partition 1 to 20, partition 2 to 5.
        let before = [(10, 0, 0, 50), (20, 1, 0, 20), (30, 2, 0, 5)];
        let again = [(110, 0, 30, 10), (120, 2, 5, 5), (130, 0, 40, 20), (140, 1, 15, 3)];
        let reads: Vec<_> = before.into_iter().chain(again).collect();
        let r = replay(&reads, 100, u64::MAX);
        assert_eq!((r.records, r.complete), (10 + 10 + 3, false), "partition 1 is still behind 20");
        let r = replay(&reads[..6], 100, u64::MAX);
        assert_eq!((r.records, r.caught_up_ms, r.complete), (20, 130, true), "partition 2 never went back");
        let r = replay(&before, 100, u64::MAX);
        assert_eq!((r.records, r.caught_up_ms, r.complete), (0, 0, true));
    }
}
