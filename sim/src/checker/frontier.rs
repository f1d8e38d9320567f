//! The committed frontier: how far into the input the sink's committed output reaches, which
//! tells a lost output from a pending one.
//!
//! # The rule
//! An expected output the sink does not hold is *lost* only if the run committed past it:
//! - the job finished — everything it will ever commit is committed; or
//! - its input (the output's cause) lies before the source positions of a completed checkpoint
//!   whose output the sink committed: under a transactional sink, every writer committed that
//!   checkpoint's transaction; under an idempotent or plain sink, the checkpoint completed (a
//!   writer's output reaches the sink before its subtask acknowledges the barrier).
//!
//! Otherwise it is *pending*: the job had not come that far. A job that never finished with
//! outputs pending and nothing lost is a liveness failure, not a safety one.
//!
//! Outputs that fire on the watermark (event-time windows, joins, Nexmark's windowed queries,
//! and a count window's partial last window, which the end of time fires) also wait for later
//! input to move the watermark past them, which the cause alone does not show. In a run that did not finish, their missing outputs are all pending: the frontier is
//! not judged for them, and the liveness failure stands for the run.
//!
//! It does not decide the verdict; the delivery checker does, with this split.

use std::collections::BTreeMap;

use faultline_engine::job::SinkMode;
use faultline_engine::record::{Cause, KeyBytes, LogRecord, Payload};
use faultline_engine::sink::SinkEvent;

use super::consistency::CapturedCheckpoint;

/// How far committed output reaches, and where each input lies in the log.
#[derive(Debug, Default)]
pub struct Frontier {
    /// Everything is committed that ever will be: every missing output is lost.
    finished: bool,
    /// Per partition, the next offset of the latest checkpoint whose output the sink committed
    /// (absent: none committed, or the frontier is not judged).
    offsets: BTreeMap<u32, u64>,
    /// Each input's partition and offset, by its cause and key (a cause is a producer's
    /// sequence number in one of its partitions: with the key, it names one input).
    placed: BTreeMap<(Cause, KeyBytes), (u32, u64)>,
}

/// What the frontier is computed from.
pub struct Run<'a> {
    pub finished: bool,
    /// Whether outputs wait for the watermark (see the module doc).
    pub fires_on_watermark: bool,
    pub sink: SinkMode,
    pub checkpoints: &'a [CapturedCheckpoint],
    pub sink_events: &'a [SinkEvent],
    pub logs: &'a BTreeMap<u32, Vec<LogRecord>>,
}

impl Frontier {
    /// The frontier of a run that finished: every missing output is lost.
    pub fn finished() -> Frontier {
        Frontier { finished: true, ..Frontier::default() }
    }

    pub fn of(run: &Run<'_>) -> Frontier {
        if run.finished {
            return Frontier::finished();
        }
        if run.fires_on_watermark {
            return Frontier::default();
        }
        let committed = latest_committed(run.checkpoints, run.sink_events, run.sink);
        let offsets = committed
            .map(|c| {
                c.meta.tasks.iter().flat_map(|t| &t.positions).map(|p| (p.partition, p.offset)).collect()
            })
            .unwrap_or_default();
        Frontier { finished: false, offsets, placed: placed(run.logs) }
    }

    /// Whether the run committed past the output of key `key` descending from `cause`. An
    /// output keyed otherwise than its input (a join's, a Nexmark query's) is not placed, and
    /// so pending unless the job finished.
    pub fn passed(&self, key: &KeyBytes, cause: Option<Cause>) -> bool {
        if self.finished {
            return true;
        }
        let Some(cause) = cause else { return false };
        let Some(&(partition, offset)) = self.placed.get(&(cause, key.clone())) else { return false };
        self.offsets.get(&partition).is_some_and(|&next| offset < next)
    }
}

/// The latest completed checkpoint whose output the sink committed.
fn latest_committed<'a>(
    checkpoints: &'a [CapturedCheckpoint],
    events: &[SinkEvent],
    sink: SinkMode,
) -> Option<&'a CapturedCheckpoint> {
    if sink != SinkMode::Transactional {
        return checkpoints.iter().max_by_key(|c| c.meta.id);
    }
    let writers: std::collections::BTreeSet<u32> = events
        .iter()
        .filter_map(|e| match e {
            SinkEvent::Prepare { txn, .. } => Some(txn.writer),
            _ => None,
        })
        .collect();
    let mut committed: BTreeMap<u64, std::collections::BTreeSet<u32>> = BTreeMap::new();
    for e in events {
        if let SinkEvent::Commit { txn, checkpoint, .. } = e {
            committed.entry(*checkpoint).or_default().insert(txn.writer);
        }
    }
    checkpoints
        .iter()
        .filter(|c| !writers.is_empty() && committed.get(&c.meta.id).is_some_and(|w| *w == writers))
        .max_by_key(|c| c.meta.id)
}

/// Every input's place in its partition's log.
fn placed(logs: &BTreeMap<u32, Vec<LogRecord>>) -> BTreeMap<(Cause, KeyBytes), (u32, u64)> {
    let mut placed = BTreeMap::new();
    for (&partition, records) in logs {
        for (offset, r) in (0u64..).zip(records) {
            if let Payload::Data(e) = &r.payload {
                let cause = Cause { producer: r.producer, seq: r.seq };
                let previous = placed.insert((cause, e.key.clone()), (partition, offset));
                assert!(
                    previous.is_none(),
                    "input {}/{} of key {:?} twice in the logs",
                    r.producer,
                    r.seq,
                    e.key
                );
            }
        }
    }
    placed
}
