//! faultline-reports: the records a run leaves behind, and their renderings.
//!
//! It owns the serde shape of a run ([`RunRecord`]), a swarm ([`SwarmRecord`], [`SwarmReport`]),
//! a comparison ([`CompareRecord`]) and a benchmark ([`BenchRecord`]). It depends on no other
//! faultline crate, so a record saved as JSON can be rendered again without the simulator: the
//! field names here are the CLI's `--json` contract.
//!
//! The renderings: [`charts`] turns a record into data tables and SVG charts (plotters, SVG
//! backend), [`html`] into self-contained HTML pages (run report, comparison, swarm summary),
//! [`markdown`] into a run's summary to paste into an issue, [`junit`] into JUnit XML for CI,
//! and the `write_*` functions ([`write_run_report`], [`write_compare_report`],
//! [`write_swarm_report`]) put a report's JSON, HTML and SVG files into a directory.

pub mod charts;
pub mod html;
pub mod junit;
pub mod markdown;
mod write;

pub use charts::{
    compare_chart_tables, compare_charts, run_chart_tables, run_charts, Chart, ChartError, ChartTable,
};
pub use html::{compare_html, run_html, swarm_html};
pub use junit::{junit_xml, JunitSuite};
pub use markdown::run_markdown;
pub use write::{write_compare_report, write_run_report, write_swarm_report};

use serde::{Deserialize, Serialize};

/// One run of one scenario with one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunRecord {
    pub scenario: String,
    pub seed: u64,
    /// `"pass"` or `"fail"`.
    pub verdict: String,
    pub semantics: String,
    pub recovery: String,
    /// Hex digest over every trace event of the run.
    pub trace_hash: String,
    pub sim_time_ms: u64,
    pub wall_ms: f64,
    pub events_in: u64,
    pub output: OutputCounts,
    pub violations: Vec<Violation>,
    /// Every invariant the checkers judged in this run; each held unless a violation names it.
    #[serde(default)]
    pub invariants: Vec<String>,
    pub faults: Vec<FaultRecord>,
    pub checkpoints: CheckpointCounts,
    pub recoveries: Vec<RecoveryRecord>,
    /// What was refused from older epochs (zombies and late messages).
    pub fencing: FencingCounts,
    /// The command that replays this run exactly.
    pub repro: String,
    /// The faultline version that ran it.
    #[serde(default)]
    pub faultline_version: String,
    /// Digest of the scenario as loaded, overrides applied: ties the record to its input.
    #[serde(default)]
    pub scenario_hash: String,
    /// Event time: the input's time skew and the records found late.
    #[serde(default)]
    pub time: TimeRecord,
    /// The values a scenario's `[swarm]` table drew for this seed, by entry.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub drawn: std::collections::BTreeMap<String, String>,
    /// The panic that ended the run, if one did: where it struck and what it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic: Option<PanicRecord>,
    /// What a report adds (`--report`): time series, checkpoint spans and node lanes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// Every trace event of the run, when asked for (`run --trace`); never serialised with the
    /// record: `--trace` writes it as JSON lines of its own.
    #[serde(skip)]
    pub trace: Vec<TraceLine>,
}

/// One trace event: what a node did at a simulated instant. `--trace` writes one per line; a
/// report keeps those around each fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TraceLine {
    /// Simulated time, in milliseconds (to the nanosecond).
    pub at_ms: f64,
    pub node: String,
    /// The event's name, e.g. `produce-sent`, `checkpoint-completed`, `leader-elected`.
    pub event: String,
    /// The event's fields (partition, epoch, checkpoint, …), by name.
    #[serde(flatten)]
    pub fields: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A panic caught during a run: in a node's task, in the supervisor, or in a checker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PanicRecord {
    pub message: String,
    /// `file:line:column` of the panic or the failed assertion.
    pub location: String,
    /// The node whose task panicked (`worker-2`, `sink`, …), `supervisor` for the runner's
    /// own task, or `checker` after the simulation.
    pub node: String,
    /// Simulated time of the panic; `None` in a checker.
    pub at_ms: Option<u64>,
}

/// Event time in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimeRecord {
    /// Stream time (the log's append stamp) minus event time, over every input record in the
    /// log: how far behind its own time each record entered the stream.
    pub skew_ms: Skew,
    /// Input records the job's late output holds (behind the watermark by more than the
    /// allowed lateness).
    pub late_records: u64,
    /// The bounded out-of-orderness watermarks allowed, and the allowed lateness.
    pub max_out_of_orderness_ms: u64,
    pub allowed_lateness_ms: u64,
}

/// A distribution of skews, in milliseconds (nearest-rank percentiles; all 0 with no input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Skew {
    pub min: i64,
    pub p50: i64,
    pub p99: i64,
    pub max: i64,
}

/// A run over simulated time, sampled in fixed buckets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Timeline {
    /// The simulated time each sample covers.
    pub bucket_ms: u64,
    /// The trailing window rates are averaged over (at least a bucket; the checkpoint interval
    /// when longer, since a transactional sink commits once per checkpoint).
    #[serde(default)]
    pub rate_window_ms: u64,
    pub samples: Vec<Sample>,
    /// Every checkpoint triggered, in trigger order.
    pub checkpoints: Vec<CheckpointSpan>,
    /// One lane per node, in cluster order (producers, brokers, managers, driver, workers,
    /// store, sink), with the intervals it was not up.
    pub nodes: Vec<NodeLane>,
    /// The trace events around each fault (from a little before it strikes until a little
    /// after it heals), in trace order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<TraceLine>,
    /// The story of each offending output the delivery table lists, as `faultline explain`
    /// tells it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stories: Vec<Story>,
}

/// How one offending output came to be lost, duplicated or wrong, told from the trace, the
/// logs and the sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Story {
    /// `"lost"`, `"duplicate"` or `"wrong"`.
    pub kind: String,
    /// The output as people read it: `key 0 · input 0/43`.
    pub output: String,
    /// What happened, in simulated-time order.
    pub steps: Vec<StoryStep>,
    /// Why it ended as it did.
    pub why: String,
}

impl Story {
    /// The anchor a report links the output's delivery-table row to.
    pub fn anchor(kind: &str, output: &str) -> String {
        let slug: String = output.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        format!("story-{kind}-{slug}")
    }
}

/// What `faultline explain --json` prints: one seed's verdict and the stories it told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExplainRecord {
    pub scenario: String,
    pub seed: u64,
    pub verdict: String,
    pub output: OutputCounts,
    /// The command that replays the seed.
    pub repro: String,
    pub stories: Vec<Story>,
}

/// What `faultline shrink --json` prints: a failing seed cut down to a minimal scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShrinkRecord {
    /// The scenario's name.
    pub scenario: String,
    pub seed: u64,
    /// The invariant that failed at the start and still fails at the end.
    pub invariant: String,
    pub faults_before: u64,
    pub faults_after: u64,
    pub events_before: u64,
    pub events_after: u64,
    /// Simulation runs in all, the seed's own two included (as given, and written out).
    pub runs: u32,
    /// The budget ran out before a round of the search changed nothing.
    pub exhausted: bool,
    /// The minimal scenario file written.
    pub file: String,
    /// The command that replays the minimal scenario.
    pub replay: String,
    /// Each step kept, in order.
    pub steps: Vec<ShrinkStep>,
    pub wall_ms: f64,
}

/// One kept step of a shrink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShrinkStep {
    /// The run that showed the smaller scenario still fails.
    pub run: u32,
    /// What changed, e.g. `workload.events 20000 → 2500`.
    pub what: String,
    pub faults: u64,
    pub events: u64,
}

/// One sentence of a story, at a simulated instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoryStep {
    /// Simulated time, in milliseconds (to the nanosecond).
    pub at_ms: f64,
    pub text: String,
}

/// One bucket `[at_ms, at_ms + bucket_ms)` of simulated time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sample {
    pub at_ms: u64,
    /// Records the sources read, per simulated second over the rate window ending with this
    /// bucket (replays count again).
    pub input_per_s: f64,
    /// Output records the sink committed, per simulated second over the rate window.
    pub output_per_s: f64,
    /// Output records the sink committed from the start to this bucket's end.
    #[serde(default)]
    pub output_total: u64,
    /// End-to-end latency of the outputs first committed in this bucket: from the input's event
    /// time (when the producer generated it) to the sink's commit. Absent when none committed.
    pub latency_p50_ms: Option<u64>,
    pub latency_p99_ms: Option<u64>,
    /// At the bucket's end: inputs generated whose expected output was not committed yet.
    pub in_flight: u64,
    /// At the bucket's end: the state size of the latest completed checkpoint.
    pub state_bytes: u64,
}

/// One checkpoint, from its trigger to its completion or abort.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckpointSpan {
    pub id: u64,
    pub started_at_ms: u64,
    /// Absent when the run ended with it in flight.
    pub ended_at_ms: Option<u64>,
    /// `"completed"`, `"aborted"` or `"unfinished"`.
    pub outcome: String,
    /// The state snapshots it holds (completed checkpoints only).
    pub state_bytes: Option<u64>,
}

/// A node's lane in the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeLane {
    pub node: String,
    pub role: String,
    /// When it was down or paused; up otherwise.
    pub intervals: Vec<NodeInterval>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeInterval {
    pub from_ms: u64,
    /// The run's end if it never came back.
    pub to_ms: u64,
    /// `"down"` or `"paused"`.
    pub state: String,
}

/// The delivery checker's classification of the sink's committed output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutputCounts {
    pub expected: u64,
    pub committed: u64,
    pub duplicates: u64,
    pub lost: u64,
    /// Expected outputs not committed that the run had not come to: the job did not finish,
    /// and their input lies beyond the committed checkpoints. A liveness matter, not safety.
    #[serde(default)]
    pub pending: u64,
    pub wrong: u64,
    /// The first few offending records of each kind, for reading.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offending: Vec<OffendingRecord>,
}

/// A committed record the delivery checker objects to, or an expected one never committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OffendingRecord {
    /// `"lost"`, `"duplicate"` or `"wrong"`.
    pub kind: String,
    /// The output's id as people read it: `key 3 · input 0/41`.
    pub output: String,
    /// The input it descends from, as `producer/seq`.
    pub cause: String,
    /// What the reference expects for this id (absent: it expects nothing).
    pub expected: Option<String>,
    /// What the sink committed (absent: nothing, the record was lost).
    pub committed: Option<String>,
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Violation {
    pub invariant: String,
    pub detail: String,
}

/// One injected fault and whether it took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FaultRecord {
    pub at_ms: u64,
    pub class: String,
    pub target: String,
    /// The other end of a link fault; absent for node faults and for all of a node's links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    pub action: String,
    /// For a crash: how long until the node restarts (absent: it stays down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after_ms: Option<u64>,
    /// Whether the fault hit something: a live node, or a link that carried traffic meanwhile.
    pub effective: bool,
    /// When a timed fault ended: the crashed node restarted, the paused one resumed, the link
    /// healed (absent: it lasted to the end of the run, or had no duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healed_at_ms: Option<u64>,
    /// The fault waited for a checkpoint to be in flight, and struck during it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mid_checkpoint: bool,
}

/// Requests refused because they came from an epoch older than the current one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FencingCounts {
    /// Sink writes, prepares and commits refused from fenced writers.
    pub sink_requests: u64,
    /// Channels, commands, acknowledgements and reports dropped for naming an old epoch.
    pub stale_messages: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckpointCounts {
    pub completed: u64,
    pub aborted: u64,
}

/// One recovery: from the fault that caused it to the job processing again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecoveryRecord {
    /// The latest effective fault at or before detection (the detection time if none).
    pub fault_at_ms: u64,
    /// When the manager began the recovery (a worker declared dead, or a subtask failed).
    pub detected_at_ms: u64,
    /// When every subtask of the new epoch was deployed.
    pub recovered_at_ms: u64,
    pub epoch: u64,
    /// The checkpoint restored (0: restarted from the beginning); for a failover, the latest
    /// completed checkpoint, which nothing rolled back to.
    pub checkpoint: u64,
    /// `"rollback"`: every subtask restarted from `checkpoint`; `"failover"`: replicated copies
    /// took over the lost primaries, and lost sources restarted, with no rollback.
    pub kind: String,
    /// From the fault to its detection.
    pub detection_ms: u64,
    /// When the job got past the point the fault stopped it at: the recovered sink writers'
    /// output moved past what the sink's log held, and the sources read past where they had
    /// been on every partition they went back on (absent: it never did before the next
    /// recovery, or no writer was replaced).
    pub output_resumed_at_ms: Option<u64>,
    /// From the fault until output resumed.
    pub time_to_resume_ms: Option<u64>,
    /// Input records the sources read again in this recovery: below what they had read of
    /// each partition before it began.
    pub records_replayed: u64,
    /// State read from the store or shipped to standbys, until the next recovery.
    pub state_bytes_transferred: u64,
    /// Failover: copies promoted to primary, and sources restarted.
    pub promoted: u32,
    pub sources_restarted: u32,
    /// A later recovery began before this one finished deploying (another subtask failed, or
    /// another worker died): `recovered_at_ms` is when it was superseded, and nothing resumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
}

impl RunRecord {
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }
}

/// Many seeds of one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SwarmRecord {
    pub scenario: String,
    pub seeds: u64,
    pub passed: u64,
    pub failed: Vec<SwarmFailure>,
    pub wall_ms: f64,
    /// Seeds run per wall second.
    #[serde(default)]
    pub seeds_per_s: f64,
    /// The distinct invariants the failing seeds violated.
    #[serde(default)]
    pub failing_invariants: Vec<String>,
    /// Faults that took effect across the sweep, per failure class.
    #[serde(default)]
    pub effective_faults: std::collections::BTreeMap<String, u64>,
    /// Seeds whose run had at least one recovery.
    #[serde(default)]
    pub seeds_with_recovery: u64,
    /// Seeds with two or more nodes down at once.
    #[serde(default)]
    pub seeds_with_simultaneous_crashes: u64,
    /// Under a `[swarm]` table: per entry, how many seeds drew each choice.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub drawn: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    /// The failing seeds grouped by the invariants they broke, the largest group first.
    #[serde(default)]
    pub failure_groups: Vec<FailureGroup>,
    /// The first seed of the sweep's range (a shard runs a slice of it).
    #[serde(default)]
    pub from: u64,
    /// The scenario as run, overrides included: shards of one sweep share it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scenario_hash: String,
    /// The slice of the seeds this record covers, when the sweep was sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// After `merge`: the shards of the sweep that no input covered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<u64>,
}

/// One of `count` disjoint slices of a sweep's seeds: the seed `from + i` belongs to slice
/// `i % count + 1` (1-based `index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// Failing seeds as one bug: the invariants they broke and the stage that went wrong, with
/// the fault classes every one of them had. `seeds` is in order, so its first is the
/// smallest, the one to shrink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FailureGroup {
    pub invariants: Vec<String>,
    /// The classes of effective faults that every seed of the group had.
    #[serde(default)]
    pub classes: Vec<String>,
    /// For each class of effective fault, how many of the group's seeds had one.
    #[serde(default)]
    pub class_seeds: std::collections::BTreeMap<String, u64>,
    /// The part of the system the first violation is about (`output`, `log`, `sink`,
    /// `manager`, `checkpoint`, `event time`, `liveness`), or for a panic its node's role and
    /// source line.
    #[serde(default)]
    pub stage: String,
    pub seeds: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SwarmFailure {
    pub seed: u64,
    pub violations: Vec<Violation>,
    pub repro: String,
    /// The classes of the faults that took effect in the run.
    #[serde(default)]
    pub fault_classes: Vec<String>,
}

/// A sweep of several scenarios (`faultline swarm scenarios/`): a row per scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SweepRecord {
    pub scenarios: Vec<SwarmRecord>,
    /// Scenarios the sweep's overrides do not apply to, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedScenario>,
    pub seeds: u64,
    pub passed: u64,
    pub failed: u64,
    pub wall_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SkippedScenario {
    pub path: String,
    pub reason: String,
}

/// The engine against a bare-madsim baseline moving the same records through the same hops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BenchRecord {
    pub events: u64,
    pub batch_records: u64,
    pub hops: u64,
    /// Measured rounds of each side; every figure is the median round.
    pub repeats: u64,
    pub engine_records_per_s: f64,
    pub engine_wall_ms: f64,
    pub engine_sim_per_wall: f64,
    /// Wall time the checkers took to judge the engine's run (not part of its rate).
    pub judge_wall_ms: f64,
    pub baseline_records_per_s: f64,
    pub baseline_wall_ms: f64,
    pub baseline_sim_per_wall: f64,
    /// engine / baseline, in records per wall second.
    pub ratio: f64,
    /// The engine side's checkpoint interval; the comparison side runs with checkpoints off.
    pub checkpoint_interval_ms: u64,
    pub no_checkpoints_records_per_s: f64,
    /// Engine with checkpoints / engine without, in records per wall second.
    pub checkpoint_ratio: f64,
    /// The replicas (k) the replicated sides ran with, on the same scenario with no faults.
    pub replicas: u32,
    pub passive_records_per_s: f64,
    pub active_records_per_s: f64,
    /// Steady-state cost against rollback: 1 − replicated rate / rollback rate.
    pub passive_overhead: f64,
    pub active_overhead: f64,
}

/// One pipeline's throughput (`faultline bench --pipeline NAME`): input events per wall second
/// through the whole simulated cluster with checkpoints on and every checker judging the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PipelineBenchRecord {
    pub pipeline: String,
    pub events: u64,
    pub repeats: u64,
    pub checkpoint_interval_ms: u64,
    /// Input events per wall second, simulation and judging together.
    pub events_per_s: f64,
    /// Input events per wall second of the simulation alone.
    pub simulate_events_per_s: f64,
    pub wall_ms: f64,
    pub judge_wall_ms: f64,
    pub sim_time_ms: u64,
    /// The Nexmark guide's per-core figure for Flink, where it has one.
    pub flink_per_core_events_per_s: Option<f64>,
    /// `events_per_s` over the Flink figure.
    pub ratio_to_flink: Option<f64>,
}

/// One comparison: the same seeds of one scenario under each value of one field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CompareRecord {
    pub scenario: String,
    pub faultline_version: String,
    /// The dotted scenario field varied, e.g. `engine.recovery`.
    pub field: String,
    pub seeds: u64,
    pub from: u64,
    pub variants: Vec<VariantSummary>,
    /// The seed whose throughput over time is overlaid: the first seed at which every variant
    /// met the same effective faults (absent if none did).
    pub representative_seed: Option<u64>,
    pub wall_ms: f64,
}

/// One value of the varied field, over every seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantSummary {
    pub value: String,
    pub scenario_hash: String,
    pub runs: u64,
    pub passed: u64,
    pub pass_rate: f64,
    /// Recoveries over all seeds, and how many of them were failovers.
    pub recoveries: u64,
    pub failovers: u64,
    /// Over every recovery whose output resumed: from the fault until output resumed.
    pub median_recovery_ms: Option<f64>,
    pub p99_recovery_ms: Option<f64>,
    pub median_detection_ms: Option<f64>,
    /// Median over seeds of input events per simulated second, submission to finish.
    pub median_throughput_per_s: f64,
    pub median_records_replayed: Option<f64>,
    pub median_state_bytes_transferred: Option<f64>,
    pub failed_seeds: Vec<u64>,
    /// The representative seed's samples under this variant.
    pub representative: Vec<Sample>,
}

/// A swarm's report: the sweep's record and one line per seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SwarmReport {
    pub swarm: SwarmRecord,
    pub faultline_version: String,
    pub scenario_hash: String,
    pub seeds: Vec<SeedOutcome>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SeedOutcome {
    pub seed: u64,
    pub verdict: String,
    /// The invariants it broke.
    pub violations: Vec<String>,
    pub effective_faults: u64,
    pub recoveries: u64,
    pub sim_time_ms: u64,
    pub trace_hash: String,
    pub repro: String,
    /// The seed's own report, relative to the swarm page (failing seeds have one).
    pub report: Option<String>,
}

/// The version of the JSON outputs' shape, in every one of them as `schema_version`. It goes
/// up when a field is removed or changes meaning; added fields keep it.
pub const SCHEMA_VERSION: u32 = 2;

/// A JSON output as printed or saved: the record, with the version of its shape beside its
/// own fields.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Versioned<'a, T> {
    pub schema_version: u32,
    #[serde(flatten)]
    pub record: &'a T,
}

impl<'a, T> Versioned<'a, T> {
    pub fn new(record: &'a T) -> Self {
        Versioned { schema_version: SCHEMA_VERSION, record }
    }
}

/// One JSON line for a record, as `--json` prints it.
pub fn to_json<T: Serialize>(record: &T) -> String {
    serde_json::to_string(&Versioned::new(record)).expect("records serialise")
}

/// The JSON Schema of each JSON output, by the name of its file in `schema/`.
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    fn titled<T: schemars::JsonSchema + 'static>(title: &str) -> schemars::Schema {
        let mut schema = schemars::schema_for!(Versioned<'static, T>);
        schema.insert("title".into(), title.into());
        schema
    }
    vec![
        ("run", titled::<RunRecord>("faultline run record (`run --json`, report.json)")),
        ("swarm", titled::<SwarmRecord>("faultline sweep of one scenario (`swarm --json`, `merge --json`)")),
        ("sweep", titled::<SweepRecord>("faultline sweep of several scenarios (`swarm DIR --json`)")),
        ("swarm-report", titled::<SwarmReport>("faultline swarm page data (swarm.json)")),
        ("compare", titled::<CompareRecord>("faultline comparison (`compare --json`, compare.json)")),
        ("explain", titled::<ExplainRecord>("faultline stories of offending outputs (`explain --json`)")),
        ("shrink", titled::<ShrinkRecord>("faultline minimal failing scenario (`shrink --json`)")),
        ("bench", titled::<BenchRecord>("faultline engine benchmark (`bench --json`)")),
        (
            "pipeline-bench",
            titled::<PipelineBenchRecord>("faultline pipeline benchmark (`bench --pipeline --json`)"),
        ),
    ]
}
