//! The job: its specification, its logical graph (petgraph) and the physical plan of subtasks.
//!
//! It owns the translation from "what to compute" to "what runs where":
//! 1. [`JobGraph::build`] turns a [`JobSpec`] into a DAG of operators joined by `Forward` or
//!    `HashByKey` edges;
//! 2. [`JobGraph::chains`] fuses operators joined by forward edges into chains (Flink's operator
//!    chaining): one chain is one task, run as `parallelism` subtasks;
//! 3. [`plan`] places subtasks on workers, so that consecutive chains' subtask `i` land on
//!    different workers and the key-by exchange crosses the network.
//!
//! It does not run anything: workers do (see `worker`).

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{SourcePosition, StateHandle};
use crate::cluster::ClusterSpec;
pub use crate::plugin::PipelineSpec;

/// Delivery semantics the job promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Semantics {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Semantics {
    pub fn as_str(self) -> &'static str {
        match self {
            Semantics::AtMostOnce => "at-most-once",
            Semantics::AtLeastOnce => "at-least-once",
            Semantics::ExactlyOnce => "exactly-once",
        }
    }
}

/// How the sink node takes the job's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SinkMode {
    /// Append, with retries: a retried write may duplicate.
    Plain,
    /// Upsert by output id: replays overwrite with the same value.
    Idempotent,
    /// Two-phase commit tied to checkpoints.
    Transactional,
}

/// How operators with several inputs handle barriers under exactly-once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointMode {
    /// An input that delivered barrier n is held until every input delivered it.
    Aligned,
    /// The first barrier n snapshots at once; records still in flight on the other inputs
    /// before their barrier n are stored with the snapshot.
    Unaligned,
}

/// The checkpoint coordinator's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSettings {
    /// 0 disables periodic checkpoints (the final one, at end of input, still runs).
    pub interval_ms: u64,
    pub mode: CheckpointMode,
    pub timeout_ms: u64,
    /// Completed checkpoints kept in the store; older ones are garbage-collected.
    pub retained: u32,
}

/// Event time: how watermarks are made at the sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSettings {
    /// Bounded out-of-orderness: a partition's watermark is its greatest event time read,
    /// minus this.
    pub max_out_of_orderness_ms: u64,
    /// A partition that yields no record for this long (simulated time) is idle: it no longer
    /// holds the watermark back until it yields again. 0: never idle.
    pub idle_timeout_ms: u64,
}

/// What the driver submits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub pipeline: PipelineSpec,
    pub time: TimeSettings,
    pub parallelism: u32,
    pub semantics: Semantics,
    pub sink: SinkMode,
    pub checkpoints: CheckpointSettings,
    pub driver_loss: DriverLoss,
    pub recovery: Recovery,
    /// Copies of each stateful subtask besides its primary: standbys under passive replication,
    /// secondaries under active replication (0 under rollback).
    pub replicas: u32,
}

/// How the job survives the loss of a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recovery {
    /// Every subtask restarts from the latest completed checkpoint, and the input since is
    /// replayed.
    Rollback,
    /// Each stateful subtask streams its state changelog to standbys; a lost primary is replaced
    /// by its most caught-up standby, which replays only the input since the last commit.
    PassiveReplication,
    /// Every stateful subtask runs as `replicas + 1` copies fed the same input; a lost primary
    /// is replaced by a secondary at once, with no replay.
    ActiveReplication,
}

impl Recovery {
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::Rollback => "rollback",
            Recovery::PassiveReplication => "passive-replication",
            Recovery::ActiveReplication => "active-replication",
        }
    }

    pub fn replicated(self) -> bool {
        self != Recovery::Rollback
    }
}

/// What the manager does when the driver is lost (silent past the heartbeat timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriverLoss {
    /// The job keeps running; a new driver reattaches by the job's id.
    Reattach,
    /// Spark-style: the job stops with its driver and resumes from the latest checkpoint when a
    /// driver attaches again.
    RestartJob,
}

impl DriverLoss {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverLoss::Reattach => "reattach",
            DriverLoss::RestartJob => "restart-job",
        }
    }
}

/// How a stateful subtask treats barriers, from the job's semantics and checkpoint mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alignment {
    Aligned,
    Unaligned,
    /// At-least-once and at-most-once: snapshot once every input delivered the barrier, without
    /// holding any input back.
    None,
}

impl JobSpec {
    pub fn alignment(&self) -> Alignment {
        match (self.semantics, self.checkpoints.mode) {
            (Semantics::ExactlyOnce, CheckpointMode::Aligned) => Alignment::Aligned,
            (Semantics::ExactlyOnce, CheckpointMode::Unaligned) => Alignment::Unaligned,
            _ => Alignment::None,
        }
    }
}

/// A logical operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorKind {
    Source,
    /// The pipeline's stateless source-side step (`Dataflow::source_step`): map, filter,
    /// re-key.
    Step,
    /// The pipeline's keyed operator of stage `stage` (0-based).
    Keyed {
        stage: u32,
    },
    Sink,
}

/// How records cross an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// Subtask i feeds subtask i of the next operator, in the same task.
    Forward,
    /// Each record goes to the subtask owning its key.
    HashByKey,
}

/// The logical dataflow graph.
pub struct JobGraph {
    pub graph: DiGraph<OperatorKind, Exchange>,
}

impl JobGraph {
    /// `source → stateless steps ⇒ keyed stage 0 (⇒ keyed stage 1) → sink`, where `⇒` is a
    /// key-by exchange.
    pub fn build(spec: &PipelineSpec) -> Self {
        let mut graph = DiGraph::new();
        let mut last = graph.add_node(OperatorKind::Source);
        let step = graph.add_node(OperatorKind::Step);
        graph.add_edge(last, step, Exchange::Forward);
        last = step;
        assert!((1..=2).contains(&spec.stages), "a pipeline has 1 or 2 keyed stages, not {}", spec.stages);
        for stage in 0..spec.stages {
            let keyed = graph.add_node(OperatorKind::Keyed { stage });
            graph.add_edge(last, keyed, Exchange::HashByKey);
            last = keyed;
        }
        let sink = graph.add_node(OperatorKind::Sink);
        graph.add_edge(last, sink, Exchange::Forward);
        JobGraph { graph }
    }

    /// Operators fused along forward edges, in topological order.
    pub fn chains(&self) -> Vec<Vec<OperatorKind>> {
        let order =
            petgraph::algo::toposort(&self.graph, None).expect("a job graph is a DAG by construction");
        let mut chains: Vec<Vec<OperatorKind>> = Vec::new();
        for node in order {
            if self.starts_chain(node) {
                chains.push(Vec::new());
            }
            chains
                .last_mut()
                .expect("the first node in topological order starts a chain")
                .push(self.graph[node]);
        }
        chains
    }

    fn starts_chain(&self, node: NodeIndex) -> bool {
        let inputs: Vec<_> = self.graph.edges_directed(node, Direction::Incoming).collect();
        !(inputs.len() == 1 && *inputs[0].weight() == Exchange::Forward)
    }
}

/// Identifies one subtask: chain index and subtask index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    pub chain: u32,
    pub subtask: u32,
}

/// Where a subtask's input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskInput {
    /// Log partitions, read from their leaders.
    Partitions(Vec<u32>),
    /// One channel from every subtask of the upstream chain.
    Channels { upstream_chain: u32, upstream_parallelism: u32 },
}

/// Where a subtask's output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskOutput {
    /// Key-by exchange to the next chain's subtasks; `targets[i]` are the workers whose copies
    /// of subtask i take its input: the primary, or under active replication every replica.
    Exchange { downstream_chain: u32, targets: Vec<Vec<u32>> },
    /// The external sink node.
    Sink,
}

/// What a subtask restores from the latest completed checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restore {
    /// The checkpoint restored from (0: none, start from the beginning).
    pub checkpoint: u64,
    /// A source's positions in its partitions.
    pub positions: Vec<SourcePosition>,
    /// A stateful subtask's state in the store.
    pub state: Option<StateHandle>,
}

/// What a copy of a stateful subtask does (sources are always `Primary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaRole {
    /// Takes the input, writes the output to the sink, checkpoints.
    Primary,
    /// Passive replication: applies its primary's changelog, committed checkpoint by checkpoint.
    Standby,
    /// Active replication: processes the same input as the primary and holds its output back.
    Secondary,
}

/// One deployable subtask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    pub id: TaskId,
    pub worker: u32,
    pub epoch: u64,
    /// Counts the subtask's restarts and promotions within the epoch: channels, reports and sink
    /// writes of an older generation are refused.
    pub generation: u32,
    pub role: ReplicaRole,
    /// Which copy this is (0: the primary at deployment).
    pub replica: u32,
    /// A passive primary's standbys: the workers it streams its changelog to.
    pub standbys: Vec<u32>,
    pub recovery: Recovery,
    pub semantics: Semantics,
    pub alignment: Alignment,
    pub sink: SinkMode,
    pub restore: Restore,
    pub input: TaskInput,
    /// The chain's operators between its input and its output (no Source, no Sink).
    pub operators: Vec<OperatorKind>,
    pub output: TaskOutput,
    /// What the keyed operators are built from.
    pub pipeline: PipelineSpec,
    pub time: TimeSettings,
}

impl TaskSpec {
    pub fn is_source(&self) -> bool {
        matches!(self.input, TaskInput::Partitions(_))
    }

    /// The keyed stage this subtask runs, if any.
    pub fn keyed_stage(&self) -> Option<u32> {
        self.operators.iter().find_map(|op| match op {
            OperatorKind::Keyed { stage } => Some(*stage),
            _ => None,
        })
    }

    /// The epoch this subtask writes to the sink under: the job epoch, then the generation, so
    /// that a promoted copy fences the primary it replaced.
    pub fn writer_epoch(&self) -> u64 {
        writer_epoch(self.epoch, self.generation)
    }
}

pub fn writer_epoch(epoch: u64, generation: u32) -> u64 {
    assert!(generation < 1 << 16, "generation {generation} overflows the writer epoch");
    epoch << 16 | u64::from(generation)
}

/// The workers hosting the copies of stateful subtask `subtask`: replica r on the r-th live
/// worker after the primary's slot, so copies never share a worker.
pub fn replica_workers(subtask: u32, copies: u32, workers: &[u32]) -> Vec<u32> {
    let n = workers.len() as u32;
    assert!(copies <= n, "{copies} copies need as many workers, {n} are live");
    let first = placement(1, subtask, n);
    (0..copies).map(|r| workers[((first + r) % n) as usize]).collect()
}

/// The slot (0-based, among the live workers) hosting subtask `subtask` of chain `chain`.
pub fn placement(chain: u32, subtask: u32, workers: u32) -> u32 {
    assert!(workers > 0);
    (subtask + chain) % workers
}

/// The physical plan of a job: every subtask, placed on the live `workers`.
pub fn plan(cluster: &ClusterSpec, job: &JobSpec, epoch: u64, workers: &[u32]) -> Vec<TaskSpec> {
    assert!(!workers.is_empty(), "a plan needs at least one live worker");
    let chains = JobGraph::build(&job.pipeline).chains();
    assert!(job.parallelism > 0, "parallelism must be positive");
    let replicas = job.replicas.min(workers.len() as u32 - 1);
    let mut tasks = Vec::new();
    for (c, ops) in chains.iter().enumerate() {
        for subtask in 0..job.parallelism {
            let at = Placement { chain: c as u32, subtask, epoch, workers, replicas };
            let primary = task_spec(cluster, job, chains.len() as u32, ops, at);
            tasks.extend(copies(&primary, at));
            tasks.push(primary);
        }
    }
    tasks
}

/// A stateful primary's standbys or secondaries, and the primary's list of its standbys.
fn copies(primary: &TaskSpec, at: Placement<'_>) -> Vec<TaskSpec> {
    if primary.is_source() || !primary.recovery.replicated() {
        return Vec::new();
    }
    let role = match primary.recovery {
        Recovery::PassiveReplication => ReplicaRole::Standby,
        _ => ReplicaRole::Secondary,
    };
    let hosts = replica_workers(at.subtask, at.replicas + 1, at.workers);
    assert_eq!(hosts[0], primary.worker, "the primary is the first copy");
    hosts[1..]
        .iter()
        .enumerate()
        .map(|(r, &worker)| TaskSpec { worker, role, replica: r as u32 + 1, ..primary.clone() })
        .collect()
}

/// Where one subtask goes.
#[derive(Clone, Copy)]
struct Placement<'a> {
    chain: u32,
    subtask: u32,
    epoch: u64,
    workers: &'a [u32],
    /// Copies of each stateful subtask besides the primary.
    replicas: u32,
}

impl Placement<'_> {
    fn worker_of(&self, chain: u32, subtask: u32) -> u32 {
        self.workers[placement(chain, subtask, self.workers.len() as u32) as usize]
    }

    /// The workers taking the input of subtask `subtask` of chain `chain`.
    fn targets_of(&self, job: &JobSpec, chain: u32, subtask: u32) -> Vec<u32> {
        match job.recovery {
            Recovery::ActiveReplication => {
                assert_eq!(chain, 1, "replication runs pipelines with one keyed stage");
                replica_workers(subtask, self.replicas + 1, self.workers)
            }
            _ => vec![self.worker_of(chain, subtask)],
        }
    }
}

fn task_spec(
    cluster: &ClusterSpec,
    job: &JobSpec,
    chains: u32,
    ops: &[OperatorKind],
    at: Placement<'_>,
) -> TaskSpec {
    let Placement { chain, subtask, epoch, .. } = at;
    let parallelism = job.parallelism;
    let input = if ops[0] == OperatorKind::Source {
        let partitions = (0..cluster.partitions()).filter(|q| q % parallelism == subtask);
        TaskInput::Partitions(partitions.collect())
    } else {
        TaskInput::Channels { upstream_chain: chain - 1, upstream_parallelism: parallelism }
    };
    let output = if ops.last() == Some(&OperatorKind::Sink) {
        TaskOutput::Sink
    } else {
        assert!(chain + 1 < chains, "a chain without a sink must feed another");
        let targets = (0..parallelism).map(|i| at.targets_of(job, chain + 1, i)).collect();
        TaskOutput::Exchange { downstream_chain: chain + 1, targets }
    };
    let operators =
        ops.iter().copied().filter(|op| !matches!(op, OperatorKind::Source | OperatorKind::Sink)).collect();
    let standbys = match job.recovery {
        Recovery::PassiveReplication if input_is_channels(ops) => {
            replica_workers(subtask, at.replicas + 1, at.workers)[1..].to_vec()
        }
        _ => Vec::new(),
    };
    TaskSpec {
        id: TaskId { chain, subtask },
        worker: at.worker_of(chain, subtask),
        epoch,
        generation: 0,
        role: ReplicaRole::Primary,
        replica: 0,
        standbys,
        recovery: job.recovery,
        semantics: job.semantics,
        alignment: job.alignment(),
        sink: job.sink,
        restore: Restore::default(),
        input,
        operators,
        output,
        pipeline: job.pipeline.clone(),
        time: job.time,
    }
}

fn input_is_channels(ops: &[OperatorKind]) -> bool {
    ops[0] != OperatorKind::Source
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(stages: u32) -> PipelineSpec {
        PipelineSpec { kind: "test".into(), params: String::new(), stages }
    }

    #[test]
    fn pipeline_fuses_into_two_chains() {
        let chains = JobGraph::build(&pipeline(1)).chains();
        assert_eq!(chains.len(), 2);
        assert_eq!(chains[0][0], OperatorKind::Source);
        assert_eq!(chains[0], vec![OperatorKind::Source, OperatorKind::Step]);
        assert_eq!(chains[1], vec![OperatorKind::Keyed { stage: 0 }, OperatorKind::Sink]);
    }

    #[test]
    fn two_stage_queries_make_three_chains() {
        let chains = JobGraph::build(&pipeline(2)).chains();
        assert_eq!(chains.len(), 3);
        assert_eq!(chains[1], vec![OperatorKind::Keyed { stage: 0 }]);
        assert_eq!(chains[2], vec![OperatorKind::Keyed { stage: 1 }, OperatorKind::Sink]);
    }

    #[test]
    fn copies_land_on_distinct_workers_starting_with_the_primary() {
        for subtask in 0..4 {
            let hosts = replica_workers(subtask, 3, &[0, 1, 2, 3]);
            assert_eq!(hosts[0], placement(1, subtask, 4));
            let distinct: std::collections::BTreeSet<_> = hosts.iter().collect();
            assert_eq!(distinct.len(), 3);
        }
    }

    #[test]
    fn writer_epochs_order_by_epoch_then_generation() {
        assert!(writer_epoch(1, 5) < writer_epoch(2, 0));
        assert!(writer_epoch(2, 0) < writer_epoch(2, 1));
    }

    #[test]
    fn exchange_crosses_workers() {
        for subtask in 0..4 {
            assert_ne!(placement(0, subtask, 2), placement(1, subtask, 2));
        }
    }
}
