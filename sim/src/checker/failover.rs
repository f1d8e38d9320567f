//! The failover checker: the recovery approach a job asks for is the one it gets.
//!
//! Under passive or active replication a lost worker is replaced within the epoch: each
//! stateful subtask it ran is taken over by a surviving copy, each source it ran restarts on a
//! live worker, and nothing else rolls back (Kafka Streams' standby promotion, Flink's region
//! failover). A rollback there is a correct but far costlier answer, so exactly-once output
//! never tells the two apart; this checker does, from the trace alone.
//!
//! - `failover-expected`: under replication, workers lost while the job ran steadily, where
//!   every stateful subtask they hosted has a copy on a worker still alive, are answered by a
//!   failover, not a rollback. Steadily means: the manager had triggered a checkpoint since the
//!   last rollback, suspension or lease change (it triggers only a deployed, running job), and
//!   the sources read new records after the loss (so they had not drained, and the job was not
//!   finishing). Which workers host which subtask is read off the workers' deployments of the
//!   manager's epoch, less the workers declared dead since.
//! - `failover-unwarranted`: a failover happens only where one may: never under rollback
//!   recovery; never while the manager's own rollback is still deploying (between its decision
//!   and the last of the epoch's first deployments); and under passive replication never with
//!   nothing to replace (a lost standby is simply forgotten).
//! - `task-generation-not-advanced`: a replaced subtask gets a generation above every one it
//!   had in the epoch, or acknowledgements of the lost generation would still count (the fence
//!   within an epoch, as a transactional id's epoch bump is across producers).
//!
//! A loss's answer is read from the event that follows the manager's declaration of the dead
//! workers at the same instant: the manager decides synchronously, tracing `RollbackDecided`
//! (cause: workers lost) for a rollback and `TaskReplaced` for each subtask a failover replaces.

use std::collections::{BTreeMap, BTreeSet};

use faultline_engine::cluster::{NodeId, Role};
use faultline_engine::observe::{RollbackCause, TraceEvent};
use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 3] =
    ["failover-expected", "failover-unwarranted", "task-generation-not-advanced"];

/// The chain of a job's sources: they have no copies, and restart anywhere.
const SOURCE_CHAIN: u32 = 0;

/// The recovery approach the job asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approach {
    Rollback,
    Passive,
    Active,
}

/// What the checker reads of a run.
pub struct Observed<'a> {
    pub approach: Approach,
    /// The recorder's failover events (`Recorder::failover_events`), in trace order.
    pub events: &'a [(u64, NodeId, TraceEvent)],
    /// The sources' reads: (simulated ms, partition, offset after the read), in trace order.
    pub reads: &'a [(u64, u32, u64)],
}

/// Checks every worker loss's answer, and every replacement's generation.
pub fn check(observed: &Observed<'_>) -> Vec<Violation> {
    let mut model = Model::new(observed);
    for i in 0..observed.events.len() {
        model.step(i);
    }
    let mut v = Vec::new();
    push(&mut v, INVARIANTS[0], &model.expected);
    push(&mut v, INVARIANTS[1], &model.unwarranted);
    push(&mut v, INVARIANTS[2], &model.stale);
    v
}

/// How a manager answered a batch of losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Rollback,
    Failover,
    /// Nothing traced at once: a failover that replaced no subtask, or no job to answer for.
    Quiet,
}

/// The job as the checker reconstructs it, event by event.
struct Model<'a> {
    o: &'a Observed<'a>,
    /// Each manager's job epoch, from its rollback decisions (a job starts in epoch 1).
    epoch: BTreeMap<NodeId, u64>,
    /// Each manager's last checkpoint trigger since the last rollback, suspension or lease change.
    triggered: BTreeMap<NodeId, u64>,
    /// Managers whose rollback into the epoch given has not started yet.
    rolling_back: BTreeMap<NodeId, u64>,
    /// Per epoch: each subtask's hosts, (chain, subtask) -> workers still alive.
    hosts: BTreeMap<u64, BTreeMap<(u32, u32), BTreeSet<u32>>>,
    /// Per epoch: the workers declared dead since its rollback was decided.
    dead_since: BTreeMap<u64, BTreeSet<u32>>,
    /// Per epoch: the index of the last of its first deployments (generation 0).
    last_deploy: BTreeMap<u64, usize>,
    /// The highest generation seen of each subtask, by (epoch, chain, subtask).
    generations: BTreeMap<(u64, u32, u32), u32>,
    /// Each partition's reads in order, with the running maximum of the offset reached.
    reads: BTreeMap<u32, Vec<(u64, u64)>>,
    expected: Vec<String>,
    unwarranted: Vec<String>,
    stale: Vec<String>,
}

impl<'a> Model<'a> {
    fn new(o: &'a Observed<'a>) -> Self {
        let mut reads: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
        for &(ms, partition, end) in o.reads {
            let list = reads.entry(partition).or_default();
            let reached = list.last().map_or(end, |&(_, r)| r.max(end));
            assert!(list.last().is_none_or(|&(at, _)| at <= ms), "reads in trace order");
            list.push((ms, reached));
        }
        Model {
            o,
            epoch: BTreeMap::new(),
            triggered: BTreeMap::new(),
            rolling_back: BTreeMap::new(),
            hosts: BTreeMap::new(),
            // A job starts in epoch 1, with no rollback decided.
            dead_since: BTreeMap::from([(1, BTreeSet::new())]),
            last_deploy: last_deploys(o.events),
            generations: BTreeMap::new(),
            reads,
            expected: Vec::new(),
            unwarranted: Vec::new(),
            stale: Vec::new(),
        }
    }

    fn step(&mut self, i: usize) {
        let (ms, node, ref event) = self.o.events[i];
        match *event {
            TraceEvent::WorkerDead { worker } => {
                if self.starts_batch(i) {
                    self.judge_batch(i);
                }
                for hosts in self.hosts.values_mut().flat_map(|h| h.values_mut()) {
                    hosts.remove(&worker);
                }
                for dead in self.dead_since.values_mut() {
                    dead.insert(worker);
                }
            }
            TraceEvent::RollbackDecided { epoch, .. } => {
                self.reset();
                self.epoch.insert(node, epoch);
                self.rolling_back.insert(node, epoch);
                self.dead_since.entry(epoch).or_default().clear();
            }
            TraceEvent::RecoveryStarted { epoch, .. } => {
                self.reset();
                if self.rolling_back.get(&node) == Some(&epoch) {
                    self.rolling_back.remove(&node);
                }
            }
            TraceEvent::CheckpointTriggered { .. } => {
                self.triggered.insert(node, ms);
            }
            TraceEvent::TaskDeployed { operator, subtask, epoch, generation } => {
                self.deployed(node, (operator, subtask), epoch, generation);
            }
            TraceEvent::TaskReplaced { epoch, chain, subtask, generation } => {
                self.replaced(ms, (chain, subtask), epoch, generation);
            }
            TraceEvent::Failover { epoch, promoted: 0, restarted: 0, .. }
                if self.o.approach == Approach::Passive =>
            {
                self.unwarranted.push(format!(
                    "a failover in epoch {epoch} at {ms} ms replaced nothing, under passive replication"
                ));
            }
            TraceEvent::JobSuspended { .. }
            | TraceEvent::LeaseAcquired { .. }
            | TraceEvent::LeaseLost { .. }
            | TraceEvent::DriverLost
            | TraceEvent::JobAttached => self.reset(),
            _ => {}
        }
    }

    /// A rollback, suspension or lease change: no manager has shown a steady job since.
    fn reset(&mut self) {
        self.triggered.clear();
    }

    fn deployed(&mut self, node: NodeId, task: (u32, u32), epoch: u64, generation: u32) {
        assert_eq!(node.role, Role::Worker, "only workers deploy subtasks");
        let worker = node.index;
        self.raise_generation((epoch, task.0, task.1), generation);
        // A deployment that reaches a worker already declared dead is one the manager no longer
        // counts on.
        if self.dead_since.get(&epoch).is_some_and(|d| d.contains(&worker)) {
            return;
        }
        self.hosts.entry(epoch).or_default().entry(task).or_default().insert(worker);
    }

    fn replaced(&mut self, ms: u64, task: (u32, u32), epoch: u64, generation: u32) {
        let key = (epoch, task.0, task.1);
        if let Some(&known) = self.generations.get(&key) {
            if generation <= known {
                self.stale.push(format!(
                    "subtask {} of chain {} replaced in epoch {epoch} at {ms} ms by generation \
                     {generation}, not above generation {known}",
                    task.1, task.0
                ));
            }
        }
        self.raise_generation(key, generation);
    }

    /// Records that subtask `key` reached `generation`.
    fn raise_generation(&mut self, key: (u64, u32, u32), generation: u32) {
        let known = self.generations.entry(key).or_insert(generation);
        *known = (*known).max(generation);
    }

    /// Whether the loss at `i` is the first of the manager's batch at that instant.
    fn starts_batch(&self, i: usize) -> bool {
        let (ms, node, _) = self.o.events[i];
        i == 0
            || !matches!(self.o.events[i - 1], (m, n, TraceEvent::WorkerDead { .. }) if m == ms && n == node)
    }

    /// The batch of losses starting at `i`: the dead workers, and the manager's answer.
    fn batch(&self, i: usize) -> (BTreeSet<u32>, Answer) {
        let (ms, node, _) = self.o.events[i];
        let mut dead = BTreeSet::new();
        let mut next = i;
        while let Some(&(m, n, TraceEvent::WorkerDead { worker })) = self.o.events.get(next) {
            if m != ms || n != node {
                break;
            }
            dead.insert(worker);
            next += 1;
        }
        let answer = match self.o.events.get(next) {
            Some(&(m, n, ref e)) if m == ms && n == node => match *e {
                TraceEvent::RollbackDecided { cause: RollbackCause::WorkerLost, .. } => Answer::Rollback,
                TraceEvent::TaskReplaced { .. } => Answer::Failover,
                _ => Answer::Quiet,
            },
            _ => Answer::Quiet,
        };
        (dead, answer)
    }

    fn judge_batch(&mut self, i: usize) {
        let (ms, manager, _) = self.o.events[i];
        let (dead, answer) = self.batch(i);
        let epoch = self.epoch.get(&manager).copied().unwrap_or(1);
        let workers = dead.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        match answer {
            Answer::Failover => {
                if let Some(why) = self.unsteady(i, manager, epoch) {
                    self.unwarranted.push(format!("worker {workers} lost at {ms} ms: failed over {why}"));
                }
            }
            Answer::Rollback => {
                if let Some(why) = self.steady(ms, manager, epoch, &dead) {
                    self.expected.push(format!("worker {workers} lost at {ms} ms: rolled back {why}"));
                }
            }
            Answer::Quiet => {}
        }
    }

    /// Why a failover by `manager` at event `i` was not one it could make, if it was not.
    fn unsteady(&self, i: usize, manager: NodeId, epoch: u64) -> Option<String> {
        if self.o.approach == Approach::Rollback {
            return Some("under rollback recovery".into());
        }
        if let Some(&rolling) = self.rolling_back.get(&manager) {
            return Some(format!("while its rollback into epoch {rolling} had not started"));
        }
        let deploying = self.last_deploy.get(&epoch).is_some_and(|&last| last > i);
        deploying.then(|| format!("while epoch {epoch} was still deploying"))
    }

    /// Why losing `dead` at `ms` called for a failover, if it did: a replicated job, steady,
    /// with a surviving copy of every stateful subtask the dead hosted.
    fn steady(&self, ms: u64, manager: NodeId, epoch: u64, dead: &BTreeSet<u32>) -> Option<String> {
        if self.o.approach == Approach::Rollback {
            return None;
        }
        let triggered = *self.triggered.get(&manager)?;
        let partition = self.read_on_after(ms)?;
        let hosts = self.hosts.get(&epoch)?;
        let orphaned = hosts
            .iter()
            .filter(|&(&(chain, _), h)| chain != SOURCE_CHAIN && !h.is_empty() && h.is_subset(dead));
        if orphaned.count() > 0 || !hosts.values().flatten().any(|w| !dead.contains(w)) {
            return None;
        }
        let approach = if self.o.approach == Approach::Passive { "passive" } else { "active" };
        Some(format!(
            "under {approach} replication in epoch {epoch}: a checkpoint was triggered at {triggered} ms, \
             partition {partition} was still being read, and every stateful subtask they hosted \
             had a live copy"
        ))
    }

    /// A partition whose sources read past, after `ms`, every offset read by `ms`: the job had
    /// not drained its input at `ms`.
    fn read_on_after(&self, ms: u64) -> Option<u32> {
        self.reads.iter().find_map(|(&partition, list)| {
            let by = list.partition_point(|&(at, _)| at <= ms);
            let reached = by.checked_sub(1).map_or(0, |k| list[k].1);
            let later = list.last().map_or(0, |&(_, r)| r);
            (by < list.len() && later > reached).then_some(partition)
        })
    }
}

/// For each epoch, the index of its last first deployment (generation 0) on a worker not
/// declared dead between the epoch's rollback decision and that deployment.
fn last_deploys(events: &[(u64, NodeId, TraceEvent)]) -> BTreeMap<u64, usize> {
    let mut decided: BTreeMap<u64, usize> = BTreeMap::new();
    let mut deaths: Vec<(usize, u32)> = Vec::new();
    let mut last = BTreeMap::new();
    for (i, &(_, node, ref event)) in events.iter().enumerate() {
        match *event {
            TraceEvent::RollbackDecided { epoch, .. } => {
                decided.insert(epoch, i);
            }
            TraceEvent::WorkerDead { worker } => deaths.push((i, worker)),
            TraceEvent::TaskDeployed { epoch, generation: 0, .. } => {
                let from = decided.get(&epoch).copied().unwrap_or(0);
                let died = deaths.iter().any(|&(at, w)| at >= from && w == node.index);
                if !died {
                    last.insert(epoch, i);
                }
            }
            _ => {}
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager() -> NodeId {
        NodeId { role: Role::Manager, index: 0 }
    }

    fn worker(index: u32) -> NodeId {
        NodeId { role: Role::Worker, index }
    }

    fn deploy(ms: u64, on: u32, chain: u32, subtask: u32) -> (u64, NodeId, TraceEvent) {
        (ms, worker(on), TraceEvent::TaskDeployed { operator: chain, subtask, epoch: 1, generation: 0 })
    }

    /// A replicated job on three workers: sources on 0, subtask 0 on 1 with a copy on 2.
    fn steady_job() -> Vec<(u64, NodeId, TraceEvent)> {
        vec![
            deploy(10, 0, 0, 0),
            deploy(10, 1, 1, 0),
            deploy(10, 2, 1, 0),
            (100, manager(), TraceEvent::CheckpointTriggered { checkpoint: 1 }),
        ]
    }

    /// The steady job, then `more`.
    fn steady_then<const N: usize>(more: [(u64, NodeId, TraceEvent); N]) -> Vec<(u64, NodeId, TraceEvent)> {
        let mut events = steady_job();
        events.extend(more);
        events
    }

    fn dead(ms: u64, w: u32) -> (u64, NodeId, TraceEvent) {
        (ms, manager(), TraceEvent::WorkerDead { worker: w })
    }

    fn rollback(ms: u64, epoch: u64) -> (u64, NodeId, TraceEvent) {
        (ms, manager(), TraceEvent::RollbackDecided { epoch, cause: RollbackCause::WorkerLost })
    }

    fn replaced(ms: u64, generation: u32) -> (u64, NodeId, TraceEvent) {
        (ms, manager(), TraceEvent::TaskReplaced { epoch: 1, chain: 1, subtask: 0, generation })
    }

    const READS: [(u64, u32, u64); 2] = [(150, 0, 10), (400, 0, 20)];

    fn invariants(
        approach: Approach,
        events: &[(u64, NodeId, TraceEvent)],
        reads: &[(u64, u32, u64)],
    ) -> Vec<String> {
        let observed = Observed { approach, events, reads };
        check(&observed).into_iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_steady_loss_with_a_live_copy_fails_over() {
        let events = steady_then([dead(200, 1), replaced(200, 1)]);
        assert!(invariants(Approach::Passive, &events, &READS).is_empty());
    }

    #[test]
    fn a_steady_loss_with_a_live_copy_rolled_back_is_caught() {
        let events = steady_then([dead(200, 1), rollback(200, 2)]);
        assert_eq!(invariants(Approach::Active, &events, &READS), ["failover-expected"]);
        // The same loss of a standby's host alone.
        let events = steady_then([dead(200, 2), rollback(200, 2)]);
        assert_eq!(invariants(Approach::Passive, &events, &READS), ["failover-expected"]);
    }

    #[test]
    fn a_rollback_is_right_when_no_copy_survives_or_the_job_is_not_steady() {
        // Both hosts of subtask 0 lost at once.
        let events = steady_then([dead(200, 1), dead(200, 2), rollback(200, 2)]);
        assert!(invariants(Approach::Passive, &events, &READS).is_empty());
        // The sources had read everything by the loss: the job may be finishing.
        let events = steady_then([dead(500, 1), rollback(500, 2)]);
        assert!(invariants(Approach::Passive, &events, &READS).is_empty());
        // No checkpoint triggered since the lease changed hands: not shown steady.
        let events = steady_then([
            (150, manager(), TraceEvent::LeaseLost { lease: 1 }),
            dead(200, 1),
            rollback(200, 2),
        ]);
        assert!(invariants(Approach::Passive, &events, &READS).is_empty());
        // Rollback recovery rolls back.
        let events = steady_then([dead(200, 1), rollback(200, 2)]);
        assert!(invariants(Approach::Rollback, &events, &READS).is_empty());
    }

    #[test]
    fn a_failover_under_rollback_recovery_or_mid_rollback_is_caught() {
        let events = steady_then([dead(200, 0), replaced(200, 1)]);
        assert_eq!(invariants(Approach::Rollback, &events, &READS), ["failover-unwarranted"]);
        // Lost while the manager's rollback into epoch 2 had not started.
        let events =
            steady_then([dead(200, 1), dead(200, 2), rollback(200, 2), dead(250, 0), replaced(250, 1)]);
        assert_eq!(invariants(Approach::Active, &events, &READS), ["failover-unwarranted"]);
        // Lost while epoch 1 still deploys: worker 2's deployment comes later.
        let events =
            vec![deploy(10, 0, 0, 0), deploy(10, 1, 1, 0), dead(20, 1), replaced(20, 1), deploy(30, 2, 1, 0)];
        assert_eq!(invariants(Approach::Active, &events, &READS), ["failover-unwarranted"]);
    }

    #[test]
    fn a_passive_failover_that_replaces_nothing_is_caught() {
        let mut events = steady_job();
        let failover = TraceEvent::Failover { epoch: 1, checkpoint: 0, promoted: 0, restarted: 0 };
        events.extend([dead(200, 2), (210, manager(), failover.clone())]);
        assert_eq!(invariants(Approach::Passive, &events, &READS), ["failover-unwarranted"]);
        // Under active replication a lost secondary's channels are rewired: a failover too.
        assert!(invariants(Approach::Active, &events, &READS).is_empty());
    }

    #[test]
    fn a_replacement_that_keeps_its_generation_is_caught() {
        let events = steady_then([dead(200, 1), replaced(200, 0)]);
        assert_eq!(invariants(Approach::Passive, &events, &READS), ["task-generation-not-advanced"]);
        let events = steady_then([dead(200, 1), replaced(200, 1), dead(300, 2), replaced(300, 1)]);
        assert_eq!(invariants(Approach::Passive, &events, &READS), ["task-generation-not-advanced"]);
    }

    #[test]
    fn a_deployment_reaching_a_dead_worker_hosts_nothing() {
        // Worker 2's deployment lands after it was declared dead: subtask 0 has no live copy.
        let events = vec![
            deploy(10, 0, 0, 0),
            deploy(10, 1, 1, 0),
            dead(50, 2),
            (60, worker(2), TraceEvent::TaskDeployed { operator: 1, subtask: 0, epoch: 1, generation: 0 }),
            (100, manager(), TraceEvent::CheckpointTriggered { checkpoint: 1 }),
            dead(200, 1),
            rollback(200, 2),
        ];
        assert!(invariants(Approach::Passive, &events, &READS).is_empty());
    }
}
