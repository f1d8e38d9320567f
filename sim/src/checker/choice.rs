//! The checkpoint-choice checker: a rollback restores the latest completed checkpoint, and
//! garbage collection never deletes it.
//!
//! Read from three sources the engine does not vouch for: the trace's `CheckpointCompleted`
//! (its metadata and history entry are durable in the store) and `RecoveryStarted { epoch,
//! checkpoint }`, the store's disk (each synced version of the job record, so when each job
//! epoch became durable), and every file the store deleted under `checkpoints/`.
//!
//! - `recovery-not-from-latest`: a recovery into job epoch `e` restores a checkpoint at least
//!   as new as every checkpoint completed before `e` was durable. A manager makes its new epoch
//!   durable under its lease before it restores anything, and a checkpoint completes only under
//!   the lease it was taken in: one completed earlier landed in the store before this leader's
//!   lease began, so its load found it, or it was this leader's own. (A completion after the
//!   epoch is durable may or may not be restored: a commit in flight is waited for.) Restoring
//!   an older one replays what the sink already committed, or loses the state between them
//!   (the class of Flink's standby JobManagers recovering an outdated checkpoint).
//! - `checkpoint-latest-deleted`: a completed checkpoint's files are deleted only once a newer
//!   checkpoint has completed; the latest is what a recovery restores.
//! - `checkpoint-retained-deleted`: they are deleted only once `retained` newer checkpoints
//!   have completed (Flink's `state.checkpoints.num-retained`): a user who keeps three
//!   checkpoints to fall back on has three.
//! - `checkpoint-not-collected`: once the job finished and the cluster was quiet, the store
//!   holds no file of a completed checkpoint older than the `retained` newest, whichever
//!   manager completed it: garbage collection survives a change of leader (the class of
//!   FLINK-11662, checkpoints left behind by a failed-over job manager). Read off the store's
//!   own disk.

use std::collections::BTreeSet;

use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 4] = [
    "recovery-not-from-latest",
    "checkpoint-latest-deleted",
    "checkpoint-retained-deleted",
    "checkpoint-not-collected",
];

/// What the checker reads. Every list is in time order.
#[derive(Debug, Default)]
pub struct History {
    /// `(ms, checkpoint)`: each `CheckpointCompleted`.
    pub completed: Vec<(u64, u64)>,
    /// `(ms, epoch, checkpoint)`: each `RecoveryStarted` (checkpoint 0: from the start).
    pub recoveries: Vec<(u64, u64, u64)>,
    /// `(ms, epoch)`: each version of the job record the store synced.
    pub durable_epochs: Vec<(u64, u64)>,
    /// `(ms, checkpoint)`: each file of a checkpoint the store deleted.
    pub deletions: Vec<(u64, u64)>,
    /// `(ms, checkpoint)`: each completion the store made durable (its history entry's first
    /// sync), in time order. The retention rules read these: a manager cut off after the sync
    /// never traces its completion, though its successor counts it.
    pub durable: Vec<(u64, u64)>,
    /// How many completed checkpoints the job keeps.
    pub retained: u32,
    /// The checkpoints with files in the store once the finished job's cluster was quiet;
    /// `None` when the run did not finish.
    pub remaining: Option<BTreeSet<u64>>,
}

/// Checks the recoveries' choice of checkpoint and the deletions against the completions.
pub fn check(h: &History) -> Vec<Violation> {
    assert!(h.completed.is_sorted_by_key(|c| c.0), "completions in time order");
    assert!(h.deletions.is_sorted_by_key(|d| d.0), "deletions in time order");
    assert!(h.durable.is_sorted_by_key(|d| d.0), "durable completions in time order");
    let mut v = Vec::new();
    push(&mut v, "recovery-not-from-latest", &outdated_restores(h));
    push(&mut v, "checkpoint-latest-deleted", &latest_deleted(h));
    push(&mut v, "checkpoint-retained-deleted", &retained_deleted(h));
    if let Some(remaining) = &h.remaining {
        let kept = uncollected(&h.durable, h.retained, remaining);
        let found: Vec<String> = kept.iter().map(|id| format!("checkpoint {id}")).collect();
        if !found.is_empty() {
            let detail = format!(
                "the store still holds the files of {} once the cluster was quiet, though at least {} \
                 newer checkpoints had completed and {} are kept",
                found.join(", "),
                h.retained,
                h.retained
            );
            push(&mut v, "checkpoint-not-collected", &[detail]);
        }
    }
    v
}

/// The completed checkpoints (`durable`), of those with files in the store (`remaining`),
/// that have `retained` newer completed ones: what garbage collection owes.
pub fn uncollected(durable: &[(u64, u64)], retained: u32, remaining: &BTreeSet<u64>) -> Vec<u64> {
    let ids: BTreeSet<u64> = durable.iter().map(|&(_, id)| id).collect();
    let expired = ids.len().saturating_sub(retained as usize);
    ids.into_iter().take(expired).filter(|id| remaining.contains(id)).collect()
}

/// The newest checkpoint completed strictly before `ms`, if any.
fn latest_before(completed: &[(u64, u64)], ms: u64) -> Option<(u64, u64)> {
    completed.iter().copied().filter(|&(at, _)| at < ms).max_by_key(|&(_, id)| id)
}

/// Recoveries that restored an older checkpoint than one completed before their epoch was
/// durable.
fn outdated_restores(h: &History) -> Vec<String> {
    let mut found = Vec::new();
    for &(ms, epoch, restored) in &h.recoveries {
        // The first sync of this epoch (which the manager awaits before it traces the
        // recovery); a recovery whose epoch the store never synced acts on nothing (the manager
        // checker's `manager-epoch-not-durable` judges that), so it is held to what had
        // completed by the recovery itself.
        let synced = h.durable_epochs.iter().find(|&&(_, e)| e == epoch).map(|&(at, _)| at);
        let durable = synced.unwrap_or(ms).min(ms);
        if let Some((at, latest)) = latest_before(&h.completed, durable).filter(|&(_, id)| id > restored) {
            found.push(format!(
                "the recovery into epoch {epoch} at {ms} ms restored checkpoint {restored}, though \
                 checkpoint {latest} had completed at {at} ms, before the epoch was durable at {durable} ms"
            ));
        }
    }
    found
}

/// Deletions of a completed checkpoint's files while no newer checkpoint had completed.
fn latest_deleted(h: &History) -> Vec<String> {
    let mut found = Vec::new();
    for &(ms, id) in &h.deletions {
        let done = h.completed.iter().take_while(|&&(at, _)| at <= ms);
        let (mut completed, mut newer) = (None, false);
        for &(at, c) in done {
            if c == id {
                completed = Some(at);
            }
            newer |= c > id;
        }
        if let (Some(at), false) = (completed, newer) {
            found.push(format!(
                "a file of checkpoint {id} (completed at {at} ms) was deleted at {ms} ms, while no \
                 newer checkpoint had completed"
            ));
        }
    }
    found.dedup();
    found
}

/// Deletions of a completed checkpoint's files while fewer than `retained` newer checkpoints
/// had completed.
fn retained_deleted(h: &History) -> Vec<String> {
    let mut found = Vec::new();
    for &(ms, id) in &h.deletions {
        let done: Vec<(u64, u64)> = h.durable.iter().copied().take_while(|&(at, _)| at <= ms).collect();
        let Some(&(at, _)) = done.iter().find(|&&(_, c)| c == id) else { continue };
        let newer: BTreeSet<u64> = done.iter().map(|&(_, c)| c).filter(|&c| c > id).collect();
        if newer.len() < h.retained as usize {
            found.push(format!(
                "a file of checkpoint {id} (completed at {at} ms) was deleted at {ms} ms, when {} newer \
                 checkpoints had completed; {} are kept",
                newer.len(),
                h.retained
            ));
        }
    }
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.invariant.as_str()).collect()
    }

    /// Checkpoints 1 to 3 complete at 100, 200 and 300 ms; the manager then fails over.
    fn history(epoch_durable_ms: u64, restored: u64) -> History {
        History {
            completed: vec![(100, 1), (200, 2), (300, 3)],
            recoveries: vec![(epoch_durable_ms + 5, 2, restored)],
            durable_epochs: vec![(10, 1), (epoch_durable_ms, 2)],
            deletions: vec![(200, 1), (300, 2)],
            durable: vec![(95, 1), (195, 2), (295, 3)],
            retained: 1,
            remaining: Some(BTreeSet::from([3])),
        }
    }

    /// Checkpoints 1 to 5 complete every 100 ms, three kept: 1 and 2 are collected.
    fn collected(deletions: Vec<(u64, u64)>, remaining: &[u64]) -> History {
        History {
            completed: (1..=5).map(|id| (100 * id, id)).collect(),
            durable: (1..=5).map(|id| (100 * id - 5, id)).collect(),
            deletions,
            retained: 3,
            remaining: Some(remaining.iter().copied().collect()),
            ..History::default()
        }
    }

    #[test]
    fn a_checkpoint_is_collected_once_the_retained_newer_ones_completed() {
        assert!(check(&collected(vec![(400, 1), (500, 2)], &[3, 4, 5])).is_empty());
        // Two kept where three are asked for: 3 deleted once 4 and 5 completed.
        let early = check(&collected(vec![(400, 1), (500, 2), (500, 3)], &[4, 5]));
        assert_eq!(names(&early), ["checkpoint-retained-deleted"]);
        let detail = "checkpoint 3 (completed at 295 ms) was deleted at 500 ms, when 2 newer";
        assert!(early[0].detail.contains(detail), "{early:?}");
    }

    #[test]
    fn a_quiet_store_holds_no_checkpoint_older_than_the_retained_ones() {
        // Nothing deleted (a new leader that never learnt its predecessor's checkpoints).
        let kept = check(&collected(vec![(500, 2)], &[1, 3, 4, 5]));
        assert_eq!(names(&kept), ["checkpoint-not-collected"]);
        assert!(kept[0].detail.contains("files of checkpoint 1 once"), "{kept:?}");
        // An aborted checkpoint's files, and a run that did not finish, are not judged.
        assert!(check(&collected(vec![(400, 1), (500, 2)], &[3, 4, 5, 6])).is_empty());
        assert!(check(&History { remaining: None, ..collected(vec![], &[]) }).is_empty());
    }

    #[test]
    fn a_recovery_restores_the_latest_checkpoint_completed_before_its_epoch_was_durable() {
        assert!(check(&history(350, 3)).is_empty());
        // Checkpoint 3 completed after the epoch was durable (its commit was in flight): the
        // recovery may restore 2 or 3.
        assert!(check(&history(250, 2)).is_empty());
        assert!(check(&history(250, 3)).is_empty());
        // The oldest restored (mutants/09): flagged.
        let v = check(&history(350, 1));
        assert_eq!(names(&v), ["recovery-not-from-latest"]);
        assert!(v[0].detail.contains("restored checkpoint 1, though checkpoint 3"), "{v:?}");
        // From the start, though checkpoints had completed.
        assert_eq!(names(&check(&history(350, 0))), ["recovery-not-from-latest"]);
    }

    #[test]
    fn a_completion_in_the_same_millisecond_as_the_durable_epoch_is_not_held_against_it() {
        assert!(check(&history(300, 2)).is_empty());
    }

    #[test]
    fn only_a_completed_checkpoint_with_no_newer_one_may_not_be_deleted() {
        let mut h = history(350, 3);
        // An aborted checkpoint's files (4 never completed) may go at any time.
        h.deletions.push((320, 4));
        assert!(check(&h).is_empty());
        // The newest deleted right after it completed (mutants/08): flagged, once.
        h.deletions.extend([(301, 3), (301, 3)]);
        h.deletions.sort_unstable();
        let v = check(&h);
        // With one checkpoint kept, the latest is the whole retained set.
        assert_eq!(names(&v), ["checkpoint-latest-deleted", "checkpoint-retained-deleted"]);
        assert!(v[0].detail.starts_with("1 times"), "{v:?}");
        // A checkpoint deleted before it completed is not judged here.
        let early = History { completed: vec![(100, 1)], deletions: vec![(50, 1)], ..History::default() };
        assert!(check(&early).is_empty());
    }
}
