//! Recovery metrics: each recovery of a run, read off the trace.
//!
//! A recovery starts at a rollback (`RecoveryStarted`) or a failover (`Failover`) and lasts
//! until the next one starts. Within it:
//! - detection: from the fault to the worker's declared death (or the start); the fault is the
//!   latest effective one on the dead worker, else the latest effective one of any kind;
//! - recovered: a rollback's epoch fully deployed, or a failover's last promotion;
//! - output resumed: the writers it replaced (every writer of the new epoch for a rollback, the
//!   promoted subtasks' for a failover) each delivered output the sink had not seen before;
//!   the records they re-sent first are the records replayed;
//! - state transferred: bytes read from the store or shipped to standbys.
//!
//! A rollback superseded by the next recovery before it finished deploying is kept, marked
//! `superseded`: the report shows every attempt, not only the one that got the job going.

use faultline_engine::cluster::{NodeId, Role};
use faultline_engine::job::writer_epoch;
use faultline_engine::observe::TraceEvent;
use faultline_reports::{FaultRecord, RecoveryRecord};

/// One recovery per rollback or failover in `events` (the recorder's recovery events).
pub fn recoveries(events: &[(u64, TraceEvent)], faults: &[FaultRecord]) -> Vec<RecoveryRecord> {
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
        if let Some(r) = recovery(&events[..end], start, previous_start, faults, superseded_at) {
            out.push(r);
        }
    }
    out
}

fn recovery(
    events: &[(u64, TraceEvent)],
    start: usize,
    after_ms: u64,
    faults: &[FaultRecord],
    superseded_at: Option<u64>,
) -> Option<RecoveryRecord> {
    let started_ms = events[start].0;
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
    let Some(writers) = replaced_writers(&events[start].1, window, &mut r) else {
        // A rollback that never finished deploying: the next recovery took over.
        r.superseded = true;
        r.recovered_at_ms = superseded_at?;
        return Some(r);
    };
    for (t, writer, w, rewritten) in resumed(window) {
        if writers.contains(&(writer, w)) {
            r.records_replayed += rewritten;
            r.output_resumed_at_ms = Some(r.output_resumed_at_ms.unwrap_or(0).max(t));
        }
    }
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
fn replaced_writers(
    first: &TraceEvent,
    window: &[(u64, TraceEvent)],
    r: &mut RecoveryRecord,
) -> Option<Vec<(u32, u64)>> {
    match *first {
        TraceEvent::RecoveryStarted { epoch, checkpoint } => {
            r.kind = "rollback".into();
            (r.epoch, r.checkpoint) = (epoch, checkpoint);
            r.recovered_at_ms = window.iter().find_map(|(t, e)| match e {
                TraceEvent::JobRestored { epoch: done } if *done == epoch => Some(*t),
                _ => None,
            })?;
            let fresh = writer_epoch(epoch, 0);
            Some(
                resumed(window)
                    .filter(|&(_, _, w, _)| w == fresh)
                    .map(|(_, writer, w, _)| (writer, w))
                    .collect(),
            )
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

/// `(at, writer, writer epoch, rewritten)` of each output resumption.
fn resumed(window: &[(u64, TraceEvent)]) -> impl Iterator<Item = (u64, u32, u64, u64)> + '_ {
    window.iter().filter_map(|(t, e)| match *e {
        TraceEvent::OutputResumed { writer, epoch, rewritten } => Some((*t, writer, epoch, rewritten)),
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
        let events = [
            (10, TraceEvent::RecoveryStarted { epoch: 2, checkpoint: 1 }),
            (30, TraceEvent::WorkerDead { worker: 0 }),
            (31, TraceEvent::RecoveryStarted { epoch: 3, checkpoint: 1 }),
            (40, TraceEvent::JobRestored { epoch: 3 }),
        ];
        let faults = [crash(5, "worker-1", true)];
        let found = recoveries(&events, &faults);
        let summary: Vec<_> = found.iter().map(|r| (r.epoch, r.superseded, r.recovered_at_ms)).collect();
        assert_eq!(summary, [(2, true, 31), (3, false, 40)]);
        assert_eq!((found[1].fault_at_ms, found[1].detected_at_ms), (5, 30));
    }
}
