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
use std::time::Duration;

use super::{command, current, persisted, step_down, Shared, WorkerCommand};
use crate::checkpoint::{self, CheckpointMeta, TaskSnapshot};
use crate::clock;
use crate::job::{CheckpointSettings, TaskId};
use crate::observe::TraceEvent;
use crate::store::Fence;

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
        madsim::task::spawn_local(delete_checkpoint(store.clone(), old));
    }
}

impl Coordinator {
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

async fn delete_checkpoint(store: std::rc::Rc<crate::store::StoreClient>, id: u64) {
    let Ok(keys) = store.list(&checkpoint::checkpoint_prefix(id)).await else { return };
    for key in keys {
        _ = store.delete(&key).await;
    }
}

/// A manager taking over: the latest completed checkpoint and the next id from the store.
/// Returns the checkpoint its predecessor left in progress, if any: it is aborted.
pub(super) fn restore(c: &mut Coordinator, latest: Option<CheckpointMeta>, next_id: u64) -> Option<u64> {
    assert!(c.pending.is_none() && c.latest.is_none(), "restoring a fresh coordinator");
    let latest_id = latest.as_ref().map_or(0, |l| l.id);
    assert!(next_id > latest_id, "the checkpoint counter is past every completed checkpoint");
    c.retained.extend(latest.as_ref().map(|l| l.id));
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
