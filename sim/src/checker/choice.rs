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

use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 2] = ["recovery-not-from-latest", "checkpoint-latest-deleted"];

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
}

/// Where the store keeps checkpoints' files (`checkpoint::checkpoint_prefix`): the prefix whose
/// deletions the store's disk keeps for this checker.
pub const CHECKPOINT_FILES: &str = "checkpoints/";

/// The checkpoint a file of the store belongs to, if it is a checkpoint's.
pub fn checkpoint_of(file: &str) -> Option<u64> {
    let (id, _) = file.strip_prefix(CHECKPOINT_FILES)?.split_once('/')?;
    id.parse().ok()
}

/// Checks the recoveries' choice of checkpoint and the deletions against the completions.
pub fn check(h: &History) -> Vec<Violation> {
    assert!(h.completed.is_sorted_by_key(|c| c.0), "completions in time order");
    assert!(h.deletions.is_sorted_by_key(|d| d.0), "deletions in time order");
    let mut v = Vec::new();
    push(&mut v, "recovery-not-from-latest", &outdated_restores(h));
    push(&mut v, "checkpoint-latest-deleted", &latest_deleted(h));
    v
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
        }
    }

    #[test]
    fn a_checkpoints_files_are_named_by_its_id() {
        use faultline_engine::checkpoint;
        assert_eq!(checkpoint_of(&checkpoint::meta_key(7)), Some(7));
        assert!(checkpoint::checkpoint_prefix(12).starts_with(CHECKPOINT_FILES));
        assert_eq!(checkpoint_of(&checkpoint::history_key(7)), None);
        assert_eq!(checkpoint_of("checkpoints/x/meta"), None);
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
        assert_eq!(names(&v), ["checkpoint-latest-deleted"]);
        assert!(v[0].detail.starts_with("1 times"), "{v:?}");
        // A checkpoint deleted before it completed is not judged here.
        let early = History { completed: vec![(100, 1)], deletions: vec![(50, 1)], ..History::default() };
        assert!(check(&early).is_empty());
    }
}
