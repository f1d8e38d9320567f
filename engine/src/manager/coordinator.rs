//! The checkpoint coordinator: asynchronous barrier snapshotting, driven from the manager.
//!
//! # Protocol (checkpoint n)
//! 1. Every `interval_ms` — when no checkpoint is in progress and the job is fully deployed —
//!    the coordinator writes the checkpoint counter past n to the store (so no successor reuses
//!    n), then sends `Trigger(n)` to every source subtask of the current epoch.
//! 2. Sources record their positions, forward barrier n and acknowledge; stateful subtasks
//!    align (or not), pre-commit their sink transaction, write their state to the store and
//!    acknowledge with its handle.
//! 3. When every subtask of the epoch acknowledged, the metadata is written to the store
//!    (`checkpoints/{n}/meta`, then `history/{n}`), fenced by the manager's lease: a deposed
//!    manager cannot complete a checkpoint. Only once that write is durable is n
//!    complete: `Complete(n)` goes to every subtask (sinks commit), and checkpoints older than
//!    the `retained` newest are deleted from the store.
//! 4. A checkpoint not complete within `timeout_ms`, or cut short by a recovery, is aborted.
//! 5. When every source has drained its partitions, the coordinator takes a final checkpoint;
//!    once it completes, `Finish` tells the sources to end their output channels.
//!
//! At most one checkpoint is in flight at a time. A manager taking over restores the latest
//! completed checkpoint and the counter from the store; a checkpoint begun above the latest
//! completed one was cut short by the failover, and is aborted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use super::{command, current, persisted, step_down, Shared, WorkerCommand};
use crate::checkpoint::{self, CheckpointMeta, TaskSnapshot};
use crate::clock;
use crate::job::{CheckpointSettings, TaskId};
use crate::observe::TraceEvent;
use crate::store::{Fence, StoreClient};

struct Pending {
    id: u64,
    epoch: u64,
    started_ms: u64,
    acks: BTreeMap<TaskId, TaskSnapshot>,
    is_final: bool,
}

pub(super) struct Coordinator {
    settings: CheckpointSettings,
    next_id: u64,
    pending: Option<Pending>,
    /// The latest completed checkpoint: what a recovery restores.
    pub latest: Option<CheckpointMeta>,
    retained: VecDeque<u64>,
    last_trigger_ms: u64,
    /// A completed checkpoint's metadata is being written: recoveries wait for it.
    committing: bool,
    /// The final checkpoint of the current epoch completed: the sources were told to finish.
    pub finishing: bool,
}

impl Coordinator {
    pub fn new(settings: CheckpointSettings) -> Self {
        assert!(settings.retained >= 1, "the latest checkpoint is always retained");
        Coordinator {
            settings,
            next_id: 1,
            pending: None,
            latest: None,
            retained: VecDeque::new(),
            last_trigger_ms: 0,
            committing: false,
            finishing: false,
        }
    }
}

/// Times out a stuck checkpoint, and triggers the next one when it is due.
pub(super) fn tick(manager: &Shared, now: u64) {
    let mut m = manager.borrow_mut();
    if !m.lease.acting() {
        return; // stepped down during this tick's earlier duties
    }
    let Some(job) = m.job.as_ref() else { return };
    let deployed = job.deployed_epoch == job.epoch && job.deploying.is_empty() && !job.waiting_for_workers;
    if !deployed || job.status != super::Status::Running {
        return;
    }
    let drained = job.sources.iter().all(|s| job.tasks.get(s).is_some_and(|t| t.drained));
    let c = &mut m.coordinator;
    if let Some(p) = &c.pending {
        if now > p.started_ms + c.settings.timeout_ms {
            let id = p.id;
            c.pending = None;
            m.ctx.trace(TraceEvent::CheckpointAborted { checkpoint: id });
        }
        return;
    }
    if c.committing || c.finishing {
        return;
    }
    let due = c.settings.interval_ms > 0 && now >= c.last_trigger_ms + c.settings.interval_ms;
    if drained || due {
        drop(m);
        trigger(manager, now, drained);
    }
}

fn trigger(manager: &Shared, now: u64, is_final: bool) {
    let mut m = manager.borrow_mut();
    let job = m.job.as_ref().expect("checked by tick");
    let epoch = job.epoch;
    let workers: BTreeSet<u32> = job.sources.iter().map(|s| job.tasks[s].worker).collect();
    let c = &mut m.coordinator;
    let id = c.next_id;
    c.next_id += 1;
    c.last_trigger_ms = now;
    c.pending = Some(Pending { id, epoch, started_ms: now, acks: BTreeMap::new(), is_final });
    m.ctx.trace(TraceEvent::CheckpointTriggered { checkpoint: id });
    drop(m);
    let manager = manager.clone();
    // The fence is taken now, while the lease is held: the task runs later, and the lease may
    // be lost by then (nexmark-q5 100124: a standby that had just stepped down panicked).
    let (tenure, fence) = {
        let m = manager.borrow();
        (m.lease.epoch(), m.lease.fence())
    };
    madsim::task::spawn_local(async move {
        if !count(&manager, fence).await {
            abort(&manager, id);
            return;
        }
        let m = manager.borrow();
        let current = m.lease.is_held(tenure) && m.coordinator.pending.as_ref().is_some_and(|p| p.id == id);
        drop(m);
        if current {
            for worker in workers {
                command(&manager, worker, WorkerCommand::Trigger { epoch, checkpoint: id });
            }
        }
    });
}

/// Writes the checkpoint counter (the next id) to the store under `fence`, the lease's when
/// the checkpoint was triggered.
async fn count(manager: &Shared, fence: Fence) -> bool {
    let (store, writes) = {
        let m = manager.borrow();
        (m.store.clone(), m.writes.clone())
    };
    let _turn = writes.lock().await;
    let next_id = manager.borrow().coordinator.next_id;
    let bytes = persisted::encode_counter(next_id);
    match store.put_fenced(&fence, persisted::CHECKPOINT_COUNTER_KEY, bytes).await {
        Ok(Ok(())) => true,
        Ok(Err(_fenced)) => {
            step_down(manager);
            false
        }
        Err(_) => false,
    }
}

/// Aborts checkpoint `id` if it is still the one in progress.
fn abort(manager: &Shared, id: u64) {
    let mut m = manager.borrow_mut();
    if m.coordinator.pending.as_ref().is_some_and(|p| p.id == id) {
        m.coordinator.pending = None;
        m.ctx.trace(TraceEvent::CheckpointAborted { checkpoint: id });
    }
}

/// Records a subtask's acknowledgement; completes the checkpoint once every subtask acked.
pub(super) fn ack(manager: &Shared, epoch: u64, generation: u32, checkpoint: u64, snapshot: TaskSnapshot) {
    let Some(mut job) = current(manager, epoch) else { return };
    if job.running(snapshot.task, generation).is_none() {
        return; // a replaced generation's acknowledgement
    }
    let subtasks = job.tasks.len();
    drop(job);
    let mut m = manager.borrow_mut();
    let Some(pending) = m.coordinator.pending.as_mut().filter(|p| p.id == checkpoint && p.epoch == epoch)
    else {
        return; // an aborted checkpoint's late acknowledgement
    };
    let (chain, subtask) = (snapshot.task.chain, snapshot.task.subtask);
    pending.acks.insert(snapshot.task, snapshot);
    let counted = TraceEvent::CheckpointAckCounted { epoch, checkpoint, chain, subtask, generation };
    m.ctx.trace(counted);
    let pending = m.coordinator.pending.as_ref().expect("matched above");
    if pending.acks.len() == subtasks {
        let pending = m.coordinator.pending.take().expect("matched above");
        m.coordinator.committing = true;
        let (fence, tenure) = (m.lease.fence(), m.lease.epoch());
        drop(m);
        madsim::task::spawn_local(complete(manager.clone(), pending, fence, tenure));
    }
}

/// Makes the checkpoint durable in the store, then announces it — unless the manager lost the
/// lease of `tenure` meanwhile: a durable checkpoint is complete all the same (a successor
/// restores it), but announcing it is the successor's business.
async fn complete(manager: Shared, pending: Pending, fence: Fence, tenure: u64) {
    let Pending { id, epoch, acks, is_final, .. } = pending;
    let meta = CheckpointMeta { id, epoch, tasks: acks.into_values().collect() };
    let store = manager.borrow().store.clone();
    let meta_written = store.put_fenced(&fence, &checkpoint::meta_key(id), meta.encode()).await;
    let written = match meta_written {
        Ok(Ok(())) => store.put_fenced(&fence, &checkpoint::history_key(id), Vec::new()).await,
        other => other,
    };
    if matches!(written, Ok(Err(_))) {
        step_down(&manager);
    }
    let durable = matches!(written, Ok(Ok(())));
    let mut m = manager.borrow_mut();
    let leads = m.lease.is_held(tenure);
    if leads {
        m.coordinator.committing = false;
    }
    if !durable {
        m.ctx.trace(TraceEvent::CheckpointAborted { checkpoint: id });
        return;
    }
    tracing::debug!(checkpoint = id, epoch, "checkpoint complete");
    m.ctx.trace(TraceEvent::CheckpointCompleted { checkpoint: id });
    if !leads {
        return;
    }
    m.coordinator.latest = Some(meta);
    let job = m.job.as_ref().filter(|j| j.epoch == epoch);
    let workers: BTreeSet<u32> = job.map(|j| j.workers()).unwrap_or_default();
    let sources: BTreeSet<u32> =
        job.map(|j| j.sources.iter().map(|s| j.tasks[s].worker).collect()).unwrap_or_default();
    m.coordinator.finishing = is_final && job.is_some();
    let expired = m.coordinator.retain(id);
    let retry = Duration::from_millis(m.ctx.cluster.settings.request_timeout_ms);
    drop(m);
    for worker in workers {
        command(&manager, worker, WorkerCommand::Complete { epoch, checkpoint: id });
    }
    if is_final {
        for worker in sources {
            command(&manager, worker, WorkerCommand::Finish { epoch });
        }
    }
    for old in expired {
        madsim::task::spawn_local(delete_checkpoint(store.clone(), old, retry));
    }
}

impl Coordinator {
    /// The oldest completed checkpoint this leader keeps, if it keeps any.
    pub fn oldest_retained(&self) -> Option<u64> {
        self.retained.front().copied()
    }

    /// Adds a completed checkpoint to the retained ones; returns those that fell out.
    fn retain(&mut self, id: u64) -> Vec<u64> {
        self.retained.push_back(id);
        let mut expired = Vec::new();
        while self.retained.len() > self.settings.retained as usize {
            expired.extend(self.retained.pop_front());
        }
        expired
    }
}

/// Deletes checkpoint `id`'s files from the store, asking again after `retry` until the store
/// has answered every request: a checkpoint that fell out of the retained ones is never kept.
async fn delete_checkpoint(store: Rc<StoreClient>, id: u64, retry: Duration) {
    loop {
        if let Ok(keys) = store.list(&checkpoint::checkpoint_prefix(id)).await {
            assert!(
                keys.iter().all(|k| checkpoint::checkpoint_of(k) == Some(id)),
                "a prefix lists its own files"
            );
            let mut deleted = true;
            for key in keys {
                deleted &= store.delete(&key).await.is_ok();
            }
            if deleted {
                return;
            }
        }
        madsim::time::sleep(retry).await;
    }
}

/// Deletes the files of every checkpoint below `oldest_kept` from the store: a new leader's
/// collection of what its predecessors kept (their retained checkpoints past this leader's
/// window, and the state of checkpoints they aborted), which only they knew to delete.
pub(super) async fn collect_below(store: Rc<StoreClient>, oldest_kept: u64, retry: Duration) {
    let files = loop {
        match store.list(checkpoint::CHECKPOINTS_PREFIX).await {
            Ok(files) => break files,
            Err(_) => madsim::time::sleep(retry).await,
        }
    };
    let ids: BTreeSet<u64> = files.iter().filter_map(|f| checkpoint::checkpoint_of(f)).collect();
    for id in ids.range(..oldest_kept) {
        delete_checkpoint(store.clone(), *id, retry).await;
    }
}

/// A manager taking over: the latest completed checkpoint, the ids of all completed (oldest
/// first) and the next id from the store. The newest `retained` completed are this leader's
/// to keep. Returns the checkpoint its predecessor left in progress, if any: it is aborted.
pub(super) fn restore(
    c: &mut Coordinator,
    latest: Option<CheckpointMeta>,
    completed: &[u64],
    next_id: u64,
) -> Option<u64> {
    assert!(c.pending.is_none() && c.latest.is_none(), "restoring a fresh coordinator");
    let latest_id = latest.as_ref().map_or(0, |l| l.id);
    assert!(next_id > latest_id, "the checkpoint counter is past every completed checkpoint");
    assert_eq!(
        completed.last().copied(),
        latest.as_ref().map(|l| l.id),
        "the latest is the newest completed"
    );
    assert!(completed.is_sorted(), "completed checkpoints come oldest first");
    let kept = completed.len().saturating_sub(c.settings.retained as usize);
    c.retained.extend(&completed[kept..]);
    c.latest = latest;
    c.next_id = next_id;
    c.last_trigger_ms = clock::elapsed_ms();
    (next_id - 1 > latest_id).then_some(next_id - 1)
}

/// Before a recovery plans its restore: waits for a metadata write in flight (once durable the
/// checkpoint is complete and must be restored from), then aborts the checkpoint in progress.
pub(super) async fn abort_for_recovery(manager: &Shared) {
    while manager.borrow().coordinator.committing {
        madsim::time::sleep(Duration::from_millis(1)).await;
    }
    let mut m = manager.borrow_mut();
    m.coordinator.finishing = false;
    m.coordinator.last_trigger_ms = clock::elapsed_ms();
    if let Some(p) = m.coordinator.pending.take() {
        m.ctx.trace(TraceEvent::CheckpointAborted { checkpoint: p.id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::CheckpointMode;

    fn coordinator(retained: u32) -> Coordinator {
        let settings = CheckpointSettings {
            interval_ms: 100,
            mode: CheckpointMode::Aligned,
            timeout_ms: 2000,
            retained,
        };
        Coordinator::new(settings)
    }

    fn meta(id: u64) -> CheckpointMeta {
        CheckpointMeta { id, epoch: 1, tasks: vec![] }
    }

    #[test]
    fn the_newest_retained_checkpoints_stay_and_older_ones_expire() {
        let mut c = coordinator(3);
        assert!([1, 2, 3].iter().all(|&id| c.retain(id).is_empty()));
        assert_eq!(c.retain(4), vec![1]);
        assert_eq!(c.retain(5), vec![2]);
        assert_eq!(c.oldest_retained(), Some(3));
    }

    /// `restore` reads the simulated clock.
    #[madsim::test]
    async fn a_new_leader_keeps_its_predecessors_newest_retained_checkpoints() {
        let mut c = coordinator(3);
        assert_eq!(restore(&mut c, Some(meta(7)), &[1, 2, 4, 5, 7], 9), Some(8));
        assert_eq!(c.oldest_retained(), Some(4));
        assert_eq!(c.retain(9), vec![4], "the predecessor's checkpoints expire in turn");

        let mut fresh = coordinator(3);
        assert_eq!(restore(&mut fresh, Some(meta(2)), &[1, 2], 3), None);
        assert_eq!(fresh.oldest_retained(), Some(1));
        let mut empty = coordinator(3);
        assert_eq!(restore(&mut empty, None, &[], 1), None);
        assert_eq!(empty.oldest_retained(), None);
    }
}
