//! Failover under replication: replacing what lost workers ran, within the epoch, with no
//! rollback of the subtasks that survived.
//!
//! # Protocol
//! 1. Workers are lost (silent past the heartbeat timeout, or rebooted). Under rollback
//!    recovery — or when a stateful subtask lost its primary and every copy, or the job is not
//!    in a steady state (deploying, finishing) — the job rolls back instead (`recover`).
//! 2. For each stateful subtask whose primary was lost, a surviving copy is chosen: the most
//!    caught-up standby (passive), or the first secondary (active). Its generation is bumped.
//!    Each lost source is placed on a live worker, one generation up. Copies on lost workers
//!    are forgotten (the replication degree drops until the next rollback redeploys).
//! 3. The checkpoint in progress is aborted (one being made durable is waited for), so the
//!    latest completed checkpoint `c` is settled. Then, in order:
//!    - `Promote { upto: c }` to each chosen copy;
//!    - `Deploy` of each lost source, restoring its positions from `c` (the stateful subtasks
//!      skip the offsets they already applied);
//!    - `Rewire` to every source: the destination's input now goes to its new primary (and
//!      surviving secondaries); a passive source replays its backlog since `c` to a new one.
//!
//!    A subtask that a later failover replaced again meanwhile is left to that failover: only
//!    the latest generation of each subtask is started.

use std::collections::{BTreeMap, BTreeSet};

use super::{command, coordinator, recover, restore_for, CopyState, Job, Shared, Status, WorkerCommand};
use crate::job::{self, Recovery, TaskId, TaskSpec};
use crate::observe::{RollbackCause, TraceEvent};
use crate::worker::Promotion;

/// What a failover changes.
#[derive(Default)]
struct Plan {
    /// Stateful subtasks and the copy taking over.
    promoted: Vec<(TaskId, CopyState)>,
    /// Sources and the worker they restart on.
    restarted: Vec<(TaskId, u32)>,
    /// Stateful subtasks whose input now goes elsewhere: their sources are rewired.
    rewired: BTreeSet<u32>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.promoted.is_empty() && self.restarted.is_empty() && self.rewired.is_empty()
    }

    /// The plan less the subtasks a later failover replaced again while this one waited for the
    /// checkpoint in progress: their generation moved on, and the later plan starts them (a
    /// source restarted by both would run twice: recovery-overlap under passive replication,
    /// seed 11). Under passive replication only the promoted subtasks' input is rewired.
    fn still_current(self, job: &Job, generations: &BTreeMap<TaskId, u32>) -> Plan {
        let current = |id: &TaskId| {
            let planned = generations.get(id).expect("every replaced subtask's generation");
            job.tasks.get(id).is_some_and(|t| t.generation == *planned)
        };
        let promoted: Vec<(TaskId, CopyState)> =
            self.promoted.into_iter().filter(|(id, _)| current(id)).collect();
        let restarted: Vec<(TaskId, u32)> =
            self.restarted.into_iter().filter(|(id, _)| current(id)).collect();
        let rewired = match job.spec.recovery {
            Recovery::ActiveReplication => self.rewired,
            _ => promoted.iter().map(|(id, _)| id.subtask).collect(),
        };
        Plan { promoted, restarted, rewired }
    }
}

/// Workers were lost: fail over under replication, roll back otherwise.
pub(super) fn lost(manager: &Shared, dead: &[u32]) {
    let plan = {
        let m = manager.borrow();
        let live: Vec<u32> = m.workers.iter().filter(|(_, w)| w.alive).map(|(&i, _)| i).collect();
        match m.job.as_ref() {
            None => return,
            Some(job) => plan(job, m.coordinator.finishing, dead, &live),
        }
    };
    match plan {
        None => recover(manager.clone(), RollbackCause::WorkerLost),
        Some(plan) if plan.is_empty() => {
            forget_copies(manager, dead);
        }
        Some(plan) => {
            forget_copies(manager, dead);
            fail_over(manager, plan);
        }
    }
}

/// The failover for losing `dead`, or `None` if the job must roll back.
fn plan(job: &Job, finishing: bool, dead: &[u32], live: &[u32]) -> Option<Plan> {
    let steady = job.deployed_epoch == job.epoch
        && job.deploying.is_empty()
        && !job.waiting_for_workers
        && job.status == Status::Running
        && !finishing
        && !job.tasks.values().any(|t| t.finished);
    if !job.spec.recovery.replicated() || !steady || live.is_empty() {
        return None;
    }
    let mut plan = Plan::default();
    for (&id, task) in job.tasks.iter().filter(|(_, t)| dead.contains(&t.worker)) {
        if job.sources.contains(&id) {
            let slot = job::placement(id.chain, id.subtask, live.len() as u32);
            tracing::debug!(task = ?id, from = task.worker, to = live[slot as usize], "failover: source lost");
            plan.restarted.push((id, live[slot as usize]));
            continue;
        }
        let survivors = job.copies.get(&id).into_iter().flatten().filter(|c| !dead.contains(&c.worker));
        let chosen = match job.spec.recovery {
            Recovery::PassiveReplication => {
                survivors.max_by_key(|c| (c.through, std::cmp::Reverse(c.replica)))
            }
            _ => survivors.min_by_key(|c| c.replica),
        };
        tracing::debug!(task = ?id, worker = task.worker, ?chosen, "failover: primary lost");
        plan.promoted.push((id, *chosen?));
        plan.rewired.insert(id.subtask);
    }
    if job.spec.recovery == Recovery::ActiveReplication {
        // A lost secondary's channels may not break (a paused worker): drop them.
        for (id, copies) in &job.copies {
            if copies.iter().any(|c| dead.contains(&c.worker)) {
                plan.rewired.insert(id.subtask);
            }
        }
    }
    Some(plan)
}

/// Copies on lost workers are gone.
fn forget_copies(manager: &Shared, dead: &[u32]) {
    let mut m = manager.borrow_mut();
    let Some(job) = m.job.as_mut() else { return };
    for copies in job.copies.values_mut() {
        copies.retain(|c| !dead.contains(&c.worker));
    }
}

/// Applies the plan to the job's state, then, once the checkpoint in progress is settled,
/// sends the promotions, the restarted sources and the rewires.
fn fail_over(manager: &Shared, plan: Plan) {
    let (epoch, tenure, generations) = {
        let mut m = manager.borrow_mut();
        let tenure = m.lease.epoch();
        let job = m.job.as_mut().expect("planned for a job");
        let mut replaced = Vec::new();
        for &(id, copy) in &plan.promoted {
            job.copies.get_mut(&id).expect("a copy was chosen").retain(|c| c.replica != copy.replica);
            let task = job.tasks.get_mut(&id).expect("a planned subtask");
            task.worker = copy.worker;
            task.generation += 1;
            replaced.push((id, task.generation));
        }
        for &(id, worker) in &plan.restarted {
            let task = job.tasks.get_mut(&id).expect("a planned source");
            task.worker = worker;
            task.generation += 1;
            task.drained = false;
            replaced.push((id, task.generation));
        }
        let epoch = job.epoch;
        for &(id, generation) in &replaced {
            let (chain, subtask) = (id.chain, id.subtask);
            m.ctx.trace(TraceEvent::TaskReplaced { epoch, chain, subtask, generation });
        }
        let generations: BTreeMap<TaskId, u32> = replaced.into_iter().collect();
        (epoch, tenure, generations)
    };
    let manager = manager.clone();
    madsim::task::spawn_local(async move {
        coordinator::abort_for_recovery(&manager).await;
        let plan = {
            let m = manager.borrow();
            let job = m.job.as_ref().filter(|j| m.lease.is_held(tenure) && j.epoch == epoch);
            job.map(|j| plan.still_current(j, &generations))
        };
        if let Some(plan) = plan.filter(|p| !p.is_empty()) {
            send(&manager, &plan, epoch);
        }
    });
}

fn send(manager: &Shared, plan: &Plan, epoch: u64) {
    let (promotions, restarts, rewires, sources) = {
        let m = manager.borrow();
        let job = m.job.as_ref().expect("checked by the caller");
        let latest = m.coordinator.latest.clone();
        let upto = latest.as_ref().map_or(0, |c| c.id);
        let promotions: Vec<(u32, WorkerCommand)> = plan
            .promoted
            .iter()
            .map(|&(task, copy)| {
                let promotion = Promotion {
                    generation: job.tasks[&task].generation,
                    upto,
                    state: restore_for(latest.as_ref(), task).state,
                    standbys: standbys(job, task),
                };
                (copy.worker, WorkerCommand::Promote { epoch, task, promotion })
            })
            .collect();
        let restarts = restarted_sources(m.ctx.cluster.as_ref(), job, plan, latest.as_ref());
        let rewires: Vec<(u32, Vec<u32>)> = plan.rewired.iter().map(|&d| (d, targets(job, d))).collect();
        let sources: BTreeSet<u32> = job.sources.iter().map(|s| job.tasks[s].worker).collect();
        m.ctx.trace(TraceEvent::Failover {
            epoch,
            checkpoint: upto,
            promoted: plan.promoted.len() as u32,
            restarted: plan.restarted.len() as u32,
        });
        (promotions, restarts, rewires, sources)
    };
    for (worker, promote) in promotions {
        command(manager, worker, promote);
    }
    for spec in restarts {
        command(manager, spec.worker, WorkerCommand::Deploy { epoch, tasks: vec![spec] });
    }
    for worker in sources {
        for (subtask, workers) in &rewires {
            let rewire = WorkerCommand::Rewire { epoch, subtask: *subtask, workers: workers.clone() };
            command(manager, worker, rewire);
        }
    }
}

/// The standbys a passive primary streams to.
fn standbys(job: &Job, task: TaskId) -> Vec<u32> {
    match job.spec.recovery {
        Recovery::PassiveReplication => {
            job.copies.get(&task).into_iter().flatten().map(|c| c.worker).collect()
        }
        _ => Vec::new(),
    }
}

/// The workers taking stateful subtask `subtask`'s input: its primary, then under active
/// replication its secondaries.
fn targets(job: &Job, subtask: u32) -> Vec<u32> {
    let id = TaskId { chain: 1, subtask };
    let mut workers = vec![job.tasks[&id].worker];
    if job.spec.recovery == Recovery::ActiveReplication {
        workers.extend(job.copies.get(&id).into_iter().flatten().map(|c| c.worker));
    }
    workers
}

/// The specs of the restarted sources: planned as at deployment, then placed, numbered and
/// pointed at the current copies, restoring from the latest completed checkpoint.
fn restarted_sources(
    cluster: &crate::cluster::ClusterSpec,
    job: &Job,
    plan: &Plan,
    latest: Option<&crate::checkpoint::CheckpointMeta>,
) -> Vec<TaskSpec> {
    let workers: Vec<u32> = job.workers().into_iter().collect();
    let planned = job::plan(cluster, &job.spec, job.epoch, &workers);
    let targets: Vec<Vec<u32>> = (0..job.spec.parallelism).map(|d| targets(job, d)).collect();
    plan.restarted
        .iter()
        .map(|&(id, worker)| {
            let mut spec = planned.iter().find(|t| t.id == id).expect("every source is planned").clone();
            spec.worker = worker;
            spec.generation = job.tasks[&id].generation;
            spec.restore = restore_for(latest, id);
            let job::TaskOutput::Exchange { targets: t, .. } = &mut spec.output else {
                panic!("a source feeds an exchange")
            };
            *t = targets.clone();
            spec
        })
        .collect()
}
