//! Recovery metrics: each recovery of a run, read off the trace.
//!
//! A recovery starts at a rollback (`RecoveryStarted`) or a failover (`Failover`) and lasts
//! until the next one starts. Within it:
//! - detection: from the latest effective fault to the worker's declared death (or the start);
//! - recovered: a rollback's epoch fully deployed, or a failover's last promotion;
//! - output resumed: the writers it replaced (every writer of the new epoch for a rollback, the
//!   promoted subtasks' for a failover) each delivered output the sink had not seen before;
//!   the records they re-sent first are the records replayed;
//! - state transferred: bytes read from the store or shipped to standbys.

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
        if let Some(r) = recovery(&events[..end], start, previous_start, faults) {
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
) -> Option<RecoveryRecord> {
    let started_ms = events[start].0;
    let window = &events[start + 1..];
    let detected_at_ms = events[..start]
        .iter()
        .rev()
        .take_while(|(t, _)| *t >= after_ms)
        .find_map(|(t, e)| matches!(e, TraceEvent::WorkerDead { .. }).then_some(*t))
        .unwrap_or(started_ms);
    let fault_at_ms = faults
        .iter()
        .filter(|f| f.effective && f.at_ms <= detected_at_ms)
        .map(|f| f.at_ms)
        .max()
        .unwrap_or(detected_at_ms);
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
    };
    let writers = replaced_writers(&events[start].1, window, &mut r)?;
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

/// Fills in what the recovery's first event says; returns the `(writer, writer epoch)` pairs
/// it replaced, or `None` for a rollback that never finished deploying.
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
