//! Scenario files: their schema, loading, `--set` overrides and validation.
//!
//! It owns the user-facing contract of a scenario. Every table denies unknown fields; every
//! error names the file, line, column and dotted field (or the `--set` that introduced it),
//! because a bad scenario is the user's mistake and they must be able to fix it at once.
//!
//! It does not build anything: `world` turns a validated [`Scenario`] into a cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use faultline_engine::cluster::ClusterSpec;

use crate::plugin::{self, Registry};
use faultline_engine::cluster::NodeId;

use serde::{Deserialize, Serialize};

use crate::fault_plan::{actions_of, FaultPlan};

/// A fault story: workload, pipeline, engine settings, network, checks and faults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub workload: Workload,
    pub pipeline: Pipeline,
    #[serde(default)]
    pub time: Time,
    pub engine: Engine,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub checks: Checks,
    #[serde(default, deserialize_with = "crate::fault_plan::deserialize_plan")]
    pub faults: FaultPlan,
    /// Swarm testing: fields drawn per seed from lists of choices (see `draw`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub swarm: crate::draw::Swarm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputName {
    /// Keyed integers.
    Synthetic,
    /// The Nexmark generator's persons, auctions and bids.
    Nexmark,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default = "defaults::input")]
    pub input: InputName,
    /// Input events, all producers together.
    pub events: u64,
    /// Distinct keys (synthetic input); each producer owns `keys / producers` of them.
    #[serde(default = "defaults::keys")]
    pub keys: u64,
    /// Log partitions.
    pub partitions: u32,
    /// Input events per simulated second, all producers together.
    pub rate_per_s: u64,
    #[serde(default = "defaults::producers")]
    pub producers: u32,
    /// Values are drawn uniformly from `-value_max..=value_max`.
    #[serde(default = "defaults::value_max")]
    pub value_max: i64,
    /// Synthetic input: the events are spread over this many streams (kinds `0..streams`); the
    /// joins read two.
    #[serde(default = "defaults::streams")]
    pub streams: u32,
    /// Each event's time runs behind its emission by a draw of up to this (bounded disorder).
    #[serde(default)]
    pub disorder_ms: u64,
    /// This many of every 1000 events run `late_by_ms` further behind.
    #[serde(default)]
    pub late_per_mille: u32,
    #[serde(default)]
    pub late_by_ms: u64,
    /// The input given event by event (`[[workload.given]]`), in place of the pipeline's
    /// generator: the run reads the first `events` of it (see `crate::given`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<crate::given::Given>,
}

/// The pipeline: a registered plugin by name, and its own parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// The registered name: a built-in (`running-aggregate`, `window`, `window-join`,
    /// `interval-join`, `top-n`, `nexmark-q0` … `nexmark-q8`) or a user's.
    pub kind: String,
    /// Every other key of `[pipeline]`, parsed by the plugin into its typed params.
    #[serde(flatten)]
    pub params: toml::Table,
}

/// Event time: how the sources make watermarks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Time {
    /// A partition's watermark is its greatest event time read, minus this.
    #[serde(default = "defaults::max_out_of_orderness_ms")]
    pub max_out_of_orderness_ms: u64,
    /// A partition silent this long stops holding the watermark back; 0: never.
    #[serde(default)]
    pub idle_timeout_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SemanticsName {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryName {
    Rollback,
    PassiveReplication,
    ActiveReplication,
}

/// What the manager does when the driver is lost: see `engine::job::DriverLoss`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriverLossName {
    Reattach,
    RestartJob,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkName {
    Plain,
    Idempotent,
    Transactional,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointModeName {
    Aligned,
    Unaligned,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    pub brokers: u32,
    pub replication_factor: u32,
    pub workers: u32,
    pub parallelism: u32,
    pub semantics: SemanticsName,
    #[serde(default = "defaults::recovery")]
    pub recovery: RecoveryName,
    /// Copies of each stateful subtask besides its primary: k, for k-fault tolerance (default 1,
    /// so that `--set engine.recovery=…` alone turns replication on). Ignored under rollback.
    #[serde(default = "defaults::replicas")]
    pub replicas: u32,
    #[serde(default = "defaults::sink")]
    pub sink: SinkName,
    /// 0 turns periodic checkpoints off (the final one at end of input still runs).
    #[serde(default = "defaults::checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    #[serde(default = "defaults::checkpoint_mode")]
    pub checkpoint_mode: CheckpointModeName,
    #[serde(default = "defaults::checkpoint_timeout_ms")]
    pub checkpoint_timeout_ms: u64,
    #[serde(default = "defaults::retained_checkpoints")]
    pub retained_checkpoints: u32,
    /// Records per message on every wire: 64 to 1024.
    #[serde(default = "defaults::batch_records")]
    pub batch_records: usize,
    #[serde(default = "defaults::channel_credits")]
    pub channel_credits: u32,
    #[serde(default = "defaults::linger_ms")]
    pub linger_ms: u64,
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "defaults::fetch_wait_ms")]
    pub fetch_wait_ms: u64,
    #[serde(default = "defaults::heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    #[serde(default = "defaults::heartbeat_timeout_ms")]
    pub heartbeat_timeout_ms: u64,
    /// How long the leading manager's lease lasts without a renewal: the standby takes over
    /// this long after the leader fell silent.
    #[serde(default = "defaults::manager_lease_ms")]
    pub manager_lease_ms: u64,
    /// `reattach`: the job outlives its driver; `restart-job`: it stops with it and resumes
    /// from the latest checkpoint when the driver returns.
    #[serde(default = "defaults::driver_loss")]
    pub driver_loss: DriverLossName,
    /// Test-only: `"NODE:FILE"` makes every `sync` of that node's file (or files starting so)
    /// do nothing, so a crash loses all its writes. It breaks the engine on purpose, to prove
    /// that a missing sync is caught.
    #[serde(default)]
    pub test_skip_sync: Option<String>,
    /// Test-only: a promoted passive standby keeps the changelog its primary never committed
    /// (KAFKA-9891's class of bug), to prove the checkers catch it.
    #[serde(default)]
    pub test_keep_uncommitted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Every message takes a latency drawn from `latency_ms_min..=latency_ms_max`.
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// Probability that a message is lost (streams retransmit it after a back-off).
    #[serde(default)]
    pub packet_loss_rate: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    /// Hard bound: the run stops at this much simulated time.
    pub max_sim_time_ms: u64,
    /// Liveness: once the last fault healed, the job must finish within this long.
    #[serde(default = "defaults::liveness_timeout_ms")]
    pub liveness_timeout_ms: u64,
    /// A run with faults of which none took effect fails: it tested nothing.
    #[serde(default = "defaults::yes")]
    pub require_effective_fault: bool,
    /// The run must recover at least once (its faults must hit something that matters).
    #[serde(default)]
    pub require_recovery: bool,
    /// Every recovery must be followed by a completed checkpoint.
    #[serde(default)]
    pub require_checkpoint_after_recovery: bool,
    /// No record may be late: the scenario keeps disorder within the watermark's bound and no
    /// partition goes idle, so a late record means a watermark ran ahead of the input.
    #[serde(default)]
    pub no_late: bool,
}

/// The seven failure classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultClass {
    Stream,
    Network,
    Processor,
    SinkLink,
    Sink,
    Manager,
    Driver,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// Kill the node: memory and unsynced writes are lost, synced data survives.
    Crash,
    /// Boot a crashed node again from its disk.
    Restart,
    /// Freeze the node for `duration_ms`; it resumes with its old state.
    Pause,
    /// Hold every message between `target` and `peer` (or all of `target`'s) for `duration_ms`.
    Clog,
    /// Cut the link from `target` to `peer` (and back, unless `one_way`) for `duration_ms`:
    /// nothing crosses until it heals; streams then deliver what they held, in order.
    Partition,
    /// Lose each transmission between `target` and `peer` with probability `loss_rate` for
    /// `duration_ms`; streams retransmit after a timeout that doubles per loss.
    Loss,
    /// Delay each message between `target` and `peer` by up to `latency_ms` more for `duration_ms`.
    Latency,
}

/// One scheduled fault, in simulated time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub at_ms: u64,
    pub class: FaultClass,
    /// The node the fault hits, by name: `worker-1`, `broker-2`, `sink`, ...
    pub target: String,
    pub action: FaultAction,
    /// For `pause` and `clog`: how long it lasts.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// For `crash`: restart the node this long after the crash.
    #[serde(default)]
    pub restart_after_ms: Option<u64>,
    /// For link faults: the other end of the link (default: every link of `target`).
    #[serde(default)]
    pub peer: Option<String>,
    /// For a link fault: hit only the direction from `target` to `peer`.
    #[serde(default)]
    pub one_way: bool,
    /// For `loss`: the probability that a transmission is lost, in (0, 1).
    #[serde(default)]
    pub loss_rate: Option<f64>,
    /// For `latency`: the most extra delay a message gets.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Strike at `at_ms` or later, once a checkpoint is in flight (triggered, neither completed
    /// nor aborted): a crash in the middle of a checkpoint.
    #[serde(default)]
    pub mid_checkpoint: bool,
}

mod defaults {
    use super::*;
    pub fn producers() -> u32 {
        2
    }
    pub fn input() -> InputName {
        InputName::Synthetic
    }
    pub fn keys() -> u64 {
        100
    }
    pub fn streams() -> u32 {
        1
    }
    pub fn max_out_of_orderness_ms() -> u64 {
        100
    }
    pub fn value_max() -> i64 {
        1000
    }
    pub fn replicas() -> u32 {
        1
    }
    pub fn recovery() -> RecoveryName {
        RecoveryName::Rollback
    }
    pub fn batch_records() -> usize {
        256
    }
    pub fn channel_credits() -> u32 {
        4
    }
    pub fn linger_ms() -> u64 {
        5
    }
    pub fn request_timeout_ms() -> u64 {
        500
    }
    pub fn fetch_wait_ms() -> u64 {
        50
    }
    pub fn heartbeat_interval_ms() -> u64 {
        50
    }
    pub fn heartbeat_timeout_ms() -> u64 {
        300
    }
    pub fn manager_lease_ms() -> u64 {
        500
    }
    pub fn driver_loss() -> DriverLossName {
        DriverLossName::Reattach
    }
    pub fn sink() -> SinkName {
        SinkName::Transactional
    }
    pub fn checkpoint_interval_ms() -> u64 {
        200
    }
    pub fn checkpoint_mode() -> CheckpointModeName {
        CheckpointModeName::Aligned
    }
    pub fn checkpoint_timeout_ms() -> u64 {
        2000
    }
    pub fn retained_checkpoints() -> u32 {
        3
    }
    pub fn liveness_timeout_ms() -> u64 {
        30_000
    }
    pub fn yes() -> bool {
        true
    }
}

impl Default for Time {
    fn default() -> Self {
        Time { max_out_of_orderness_ms: defaults::max_out_of_orderness_ms(), idle_timeout_ms: 0 }
    }
}

impl Default for Network {
    fn default() -> Self {
        Network { latency_ms_min: 1, latency_ms_max: 5, packet_loss_rate: 0.0 }
    }
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            max_sim_time_ms: 600_000,
            liveness_timeout_ms: defaults::liveness_timeout_ms(),
            require_effective_fault: true,
            require_recovery: false,
            require_checkpoint_after_recovery: false,
            no_late: false,
        }
    }
}

impl SemanticsName {
    pub fn as_str(self) -> &'static str {
        match self {
            SemanticsName::AtMostOnce => "at-most-once",
            SemanticsName::AtLeastOnce => "at-least-once",
            SemanticsName::ExactlyOnce => "exactly-once",
        }
    }
}

impl SinkName {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkName::Plain => "plain",
            SinkName::Idempotent => "idempotent",
            SinkName::Transactional => "transactional",
        }
    }
}

impl RecoveryName {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryName::Rollback => "rollback",
            RecoveryName::PassiveReplication => "passive-replication",
            RecoveryName::ActiveReplication => "active-replication",
        }
    }
}

impl FaultClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultClass::Stream => "stream",
            FaultClass::Network => "network",
            FaultClass::Processor => "processor",
            FaultClass::SinkLink => "sink-link",
            FaultClass::Sink => "sink",
            FaultClass::Manager => "manager",
            FaultClass::Driver => "driver",
        }
    }
}

impl FaultAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::Crash => "crash",
            FaultAction::Restart => "restart",
            FaultAction::Pause => "pause",
            FaultAction::Clog => "clog",
            FaultAction::Partition => "partition",
            FaultAction::Loss => "loss",
            FaultAction::Latency => "latency",
        }
    }

    /// Whether the action lasts `duration_ms` and then heals by itself.
    pub fn is_timed(self) -> bool {
        matches!(
            self,
            FaultAction::Pause
                | FaultAction::Clog
                | FaultAction::Partition
                | FaultAction::Loss
                | FaultAction::Latency
        )
    }

    /// Whether the action hits links rather than a node.
    pub fn is_link(self) -> bool {
        matches!(self, FaultAction::Clog | FaultAction::Partition | FaultAction::Loss | FaultAction::Latency)
    }
}

/// A scenario that could not be loaded. The message is the whole story for the user.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Unlocated { path: String, message: String },
    #[error("--set {assignment}: {message}")]
    Set { assignment: String, message: String },
}

/// A scenario file as loaded: the parsed scenario plus its source, for hashing and messages.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub path: String,
    pub scenario: Scenario,
    /// The overrides applied, in order, as given on the command line.
    pub sets: Vec<String>,
    /// The pipelines the scenario may name.
    pub registry: Arc<Registry>,
}

impl Loaded {
    /// The scenario's pipeline, built by its plugin (validated when loaded).
    pub fn pipeline(&self) -> Arc<dyn plugin::Pipeline> {
        let p = &self.scenario.pipeline;
        self.registry.build(&p.kind, &p.params).unwrap_or_else(|e| panic!("a loaded pipeline builds: {e}"))
    }

    /// The cluster the scenario describes, with the workload seeded from `seed`.
    pub fn cluster_spec(&self, seed: u64) -> ClusterSpec {
        let spec = crate::world::pipeline_spec(&self.scenario, &*self.pipeline());
        crate::world::cluster_spec(&self.scenario, spec, seed)
    }
}

/// Loads, overrides and validates a scenario file, with the built-in pipelines.
pub fn load(path: &Path, sets: &[String]) -> Result<Loaded, ScenarioError> {
    load_with(path, sets, Arc::new(crate::builtins::registry()))
}

/// Like [`load`], with the pipelines of `registry`.
pub fn load_with(path: &Path, sets: &[String], registry: Arc<Registry>) -> Result<Loaded, ScenarioError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScenarioError::Read { path: shown.clone(), reason: e.to_string() })?;
    load_str(&shown, &text, sets, registry)
}

/// Like [`load_with`], from text already read.
pub fn load_str(
    path: &str,
    text: &str,
    sets: &[String],
    registry: Arc<Registry>,
) -> Result<Loaded, ScenarioError> {
    let mut scenario: Scenario =
        toml::from_str(text).map_err(|e| located(path, text, e.span(), e.message()))?;
    if !sets.is_empty() {
        scenario = apply_sets(text, sets)?;
    }
    if let Err((field, problem)) = validate(&scenario, &registry) {
        let message = format!("field `{field}`: {problem}");
        let set = sets.iter().rev().find(|s| s.split('=').next() == Some(field.as_str()));
        // A missing field is reported where its table starts.
        let parent = field.rsplit_once('.').map(|(parent, _)| parent);
        let place = spans::locate(text, &field).or_else(|| parent.and_then(|p| spans::locate(text, p)));
        return Err(match (set, place) {
            (Some(assignment), _) => ScenarioError::Set { assignment: assignment.clone(), message },
            (None, Some(offset)) => {
                let (line, column) = spans::line_column(text, offset);
                ScenarioError::Invalid { path: path.into(), line, column, message }
            }
            (None, None) => ScenarioError::Unlocated { path: path.into(), message },
        });
    }
    Ok(Loaded { path: path.into(), scenario, sets: sets.to_vec(), registry })
}

fn located(path: &str, text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> ScenarioError {
    let Some(span) = span else {
        return ScenarioError::Unlocated { path: path.into(), message: message.into() };
    };
    let (line, column) = spans::line_column(text, span.start);
    let message = match spans::field_at(text, span.start) {
        Some(field) => format!("field `{field}`: {message}"),
        _ => message.to_string(),
    };
    ScenarioError::Invalid { path: path.into(), line, column, message }
}

/// Applies `a.b.c=value` overrides one at a time, so an error names the one that caused it.
fn apply_sets(text: &str, sets: &[String]) -> Result<Scenario, ScenarioError> {
    let mut table: toml::Table = toml::from_str(text).expect("the file parsed as a scenario");
    let mut scenario = None;
    for assignment in sets {
        let fail = |message: String| ScenarioError::Set { assignment: assignment.clone(), message };
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| fail("expected key=value, e.g. engine.parallelism=2".into()))?;
        // `key=` removes the field: its default applies (or the scenario says what is missing).
        let value = (!raw.is_empty()).then(|| parse_value(raw));
        set_path(&mut table, key, value).map_err(fail)?;
        let parsed = Scenario::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| fail(e.message().to_string()))?;
        scenario = Some(parsed);
    }
    Ok(scenario.expect("sets is not empty"))
}

/// A TOML value; a bare word that is not one (`at-least-once`) is taken as a string.
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t.remove("v").expect("the key was written above"),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

pub(crate) fn set_path(table: &mut toml::Table, key: &str, value: Option<toml::Value>) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{key}` is not a dotted field path"));
    }
    let mut current = table;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let next = current.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match next {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                let index: usize = parts[i + 1]
                    .parse()
                    .map_err(|_| format!("`{part}` is a list: index it, e.g. {part}.0.at_ms"))?;
                return set_in_array(items, index, &parts[i + 2..], value, key);
            }
            _ => return Err(format!("`{part}` is not a table")),
        };
    }
    let last = parts[parts.len() - 1].to_string();
    match value {
        Some(value) => _ = current.insert(last, value),
        None => _ = current.remove(&last),
    }
    Ok(())
}

fn set_in_array(
    items: &mut [toml::Value],
    index: usize,
    rest: &[&str],
    value: Option<toml::Value>,
    key: &str,
) -> Result<(), String> {
    let len = items.len();
    let item = items.get_mut(index).ok_or_else(|| format!("`{key}`: the list has {len} entries"))?;
    match (item, rest) {
        (toml::Value::Table(t), [_, ..]) => set_path(t, &rest.join("."), value),
        _ => Err(format!("`{key}` does not name a field")),
    }
}

/// Replicated recovery needs k ≥ 1 copies on distinct workers, exactly-once and aligned
/// checkpoints (a changelog segment, like a secondary's held output, is cut where the sink
/// transaction is).
fn validate_replication(e: &Engine) -> Result<(), (String, String)> {
    let fail = |field: &str, message: String| Err((field.to_string(), message));
    let recovery = e.recovery.as_str();
    if e.recovery == RecoveryName::Rollback {
        return Ok(()); // replicas are ignored: one scenario can compare every approach
    }
    if e.replicas == 0 {
        return fail("engine.replicas", format!("{recovery} needs at least 1 replica"));
    }
    if e.replicas + 1 > e.workers {
        let m = format!(
            "{} replicas and the primary need {} distinct workers; engine.workers is {}",
            e.replicas,
            e.replicas + 1,
            e.workers
        );
        return fail("engine.replicas", m);
    }
    if e.semantics != SemanticsName::ExactlyOnce {
        return fail(
            "engine.semantics",
            format!("{recovery} runs exactly-once, not {}", e.semantics.as_str()),
        );
    }
    if e.checkpoint_mode != CheckpointModeName::Aligned {
        return fail("engine.checkpoint_mode", format!("{recovery} needs aligned checkpoints"));
    }
    Ok(())
}

/// Builds the pipeline from its params, then lets it check the rest of the scenario.
fn validate_pipeline(s: &Scenario, registry: &Registry) -> Result<(), (String, String)> {
    let p = &s.pipeline;
    let built = registry.build(&p.kind, &p.params).map_err(|e| {
        let field = if e.field.is_empty() { "pipeline".to_string() } else { format!("pipeline.{}", e.field) };
        (field, e.message)
    })?;
    built.validate(s)?;
    plugin::validate_engine(&*built, s)
}

/// Checks values that parse but cannot run. Returns the dotted field and what is wrong.
pub fn validate(s: &Scenario, registry: &Registry) -> Result<(), (String, String)> {
    let fail = |field: &str, message: String| Err((field.to_string(), message));
    let (w, e, n) = (&s.workload, &s.engine, &s.network);
    if w.events == 0 || w.events > 100_000_000 {
        return fail("workload.events", format!("must be 1 to 100000000, not {}", w.events));
    }
    if w.producers == 0 || w.producers > 250 {
        return fail("workload.producers", format!("must be 1 to 250, not {}", w.producers));
    }
    if w.given.is_empty() && w.keys < u64::from(w.producers) {
        let m = format!("{} keys cannot be split among {} producers", w.keys, w.producers);
        return fail("workload.keys", m);
    }
    if w.partitions == 0 || w.partitions > 1024 {
        return fail("workload.partitions", format!("must be 1 to 1024, not {}", w.partitions));
    }
    if w.rate_per_s == 0 {
        return fail("workload.rate_per_s", "must be positive".into());
    }
    if w.value_max < 0 || w.value_max > 1 << 40 {
        return fail("workload.value_max", format!("must be 0 to 2^40, not {}", w.value_max));
    }
    if w.partitions < w.producers {
        let m = format!(
            "every producer writes partitions of its own: {} producers need at least as many",
            w.producers
        );
        return fail("workload.partitions", m);
    }
    if s.checks.no_late
        && (w.late_per_mille > 0
            || w.disorder_ms > s.time.max_out_of_orderness_ms
            || s.time.idle_timeout_ms > 0)
    {
        let m =
            "needs late_per_mille = 0, disorder_ms within time.max_out_of_orderness_ms and no idle timeout: \
                 otherwise records may legitimately be late";
        return fail("checks.no_late", m.into());
    }
    validate_given(w)?;
    if w.late_per_mille > 1000 {
        return fail("workload.late_per_mille", format!("must be at most 1000, not {}", w.late_per_mille));
    }
    validate_engine(e)?;
    validate_pipeline(s, registry)?;
    crate::draw::check(s)?;
    if let Some((node, _)) = e.test_skip_sync.as_deref().and_then(|s| s.split_once(':')) {
        let nodes = crate::world::node_names(s);
        if !nodes.iter().any(|n| n == node) {
            let m = format!("no node named `{node}`; nodes are {}", nodes.join(", "));
            return fail("engine.test_skip_sync", m);
        }
    }
    if n.latency_ms_min == 0 || n.latency_ms_min > n.latency_ms_max {
        let m = format!("must be at least 1 and at most latency_ms_max ({})", n.latency_ms_max);
        return fail("network.latency_ms_min", m);
    }
    if !(0.0..1.0).contains(&n.packet_loss_rate) {
        return fail("network.packet_loss_rate", "must be in [0, 1)".into());
    }
    if s.checks.max_sim_time_ms == 0 {
        return fail("checks.max_sim_time_ms", "must be positive".into());
    }
    for (i, fault) in s.faults.scheduled.iter().enumerate() {
        validate_fault(s, i, fault)?;
    }
    if let Some(random) = &s.faults.random {
        validate_random(s, random)?;
    }
    Ok(())
}

/// Given input runs its first `events`, with its own keys and event times: nothing is drawn.
fn validate_given(w: &Workload) -> Result<(), (String, String)> {
    if w.given.is_empty() {
        return Ok(());
    }
    let fail = |field: &str, message: String| Err((field.to_string(), message));
    if w.events > w.given.len() as u64 {
        let m = format!("{} events, but [[workload.given]] lists {}", w.events, w.given.len());
        return fail("workload.events", m);
    }
    let drawn = [
        ("disorder_ms", w.disorder_ms),
        ("late_per_mille", w.late_per_mille.into()),
        ("late_by_ms", w.late_by_ms),
    ];
    if let Some((field, _)) = drawn.iter().find(|(_, v)| *v > 0) {
        let m = "the input is given ([[workload.given]]): its event times are its own, none are drawn";
        return fail(&format!("workload.{field}"), m.into());
    }
    if let Some(i) = w.given.iter().position(|g| g.key.0.is_empty()) {
        return fail(&format!("workload.given.{i}.key"), "an encoded key has at least one byte".into());
    }
    Ok(())
}

fn validate_engine(e: &Engine) -> Result<(), (String, String)> {
    let fail = |field: &str, message: String| Err((field.to_string(), message));
    if e.brokers == 0 || e.brokers > 250 {
        return fail("engine.brokers", format!("must be 1 to 250, not {}", e.brokers));
    }
    if e.replication_factor == 0 || e.replication_factor > e.brokers {
        let m = format!("must be 1 to engine.brokers ({}), not {}", e.brokers, e.replication_factor);
        return fail("engine.replication_factor", m);
    }
    if e.workers == 0 || e.workers > 250 {
        return fail("engine.workers", format!("must be 1 to 250, not {}", e.workers));
    }
    if e.parallelism == 0 || e.parallelism > e.workers {
        let m = format!("must be 1 to engine.workers ({}), not {}", e.workers, e.parallelism);
        return fail("engine.parallelism", m);
    }
    if !(64..=1024).contains(&e.batch_records) {
        return fail("engine.batch_records", format!("must be 64 to 1024, not {}", e.batch_records));
    }
    if e.channel_credits == 0 {
        return fail("engine.channel_credits", "must be positive".into());
    }
    if e.heartbeat_timeout_ms <= e.heartbeat_interval_ms {
        let m = format!("must exceed engine.heartbeat_interval_ms ({})", e.heartbeat_interval_ms);
        return fail("engine.heartbeat_timeout_ms", m);
    }
    if let Some(spec) = &e.test_skip_sync {
        if spec.split_once(':').is_none_or(|(node, file)| node.is_empty() || file.is_empty()) {
            return fail("engine.test_skip_sync", format!("`{spec}` is not NODE:FILE, e.g. sink:sink.log"));
        }
    }
    if e.manager_lease_ms < 20 {
        return fail("engine.manager_lease_ms", format!("must be at least 20, not {}", e.manager_lease_ms));
    }
    if e.retained_checkpoints == 0 {
        return fail("engine.retained_checkpoints", "must be at least 1".into());
    }
    validate_replication(e)?;
    for (field, v) in [
        ("engine.request_timeout_ms", e.request_timeout_ms),
        ("engine.fetch_wait_ms", e.fetch_wait_ms),
        ("engine.heartbeat_interval_ms", e.heartbeat_interval_ms),
        ("engine.checkpoint_timeout_ms", e.checkpoint_timeout_ms),
    ] {
        if v == 0 {
            return fail(field, "must be positive".into());
        }
    }
    Ok(())
}

fn validate_random(s: &Scenario, r: &crate::fault_plan::RandomFaults) -> Result<(), (String, String)> {
    let fail = |field: &str, message: String| Err((format!("faults.random.{field}"), message));
    if r.classes.is_empty() {
        return fail("classes", "name at least one fault class".into());
    }
    if r.count > 1000 {
        return fail("count", format!("must be at most 1000, not {}", r.count));
    }
    for class in &r.classes {
        if !r.actions.is_empty() && !actions_of(*class).iter().any(|a| r.actions.contains(a)) {
            let m = format!("class `{}` can take none of the listed actions", class.as_str());
            return fail("actions", m);
        }
    }
    for (field, [lo, hi]) in
        [("window_ms", r.window_ms), ("restart_after_ms", r.restart_after_ms), ("duration_ms", r.duration_ms)]
    {
        if lo > hi {
            return fail(field, format!("[{lo}, {hi}] is not a range: the first must not exceed the second"));
        }
    }
    let [lo, hi] = r.loss_rate;
    if !(lo > 0.0 && lo <= hi && hi < 1.0) {
        return fail("loss_rate", format!("[{lo}, {hi}] must be a range within (0, 1)"));
    }
    if r.latency_ms[0] == 0 || r.latency_ms[0] > r.latency_ms[1] {
        let [lo, hi] = r.latency_ms;
        return fail("latency_ms", format!("[{lo}, {hi}] must be a range of positive delays"));
    }
    if r.window_ms[1] >= s.checks.max_sim_time_ms {
        return fail("window_ms", "must end before checks.max_sim_time_ms".into());
    }
    if !(0.0..=1.0).contains(&r.mid_checkpoint) {
        return fail("mid_checkpoint", format!("{} is not a probability in [0, 1]", r.mid_checkpoint));
    }
    let [lo, hi] = r.simultaneous;
    if lo == 0 || lo > hi {
        return fail("simultaneous", format!("[{lo}, {hi}] must be a range of at least 1 target"));
    }
    Ok(())
}

fn validate_fault(s: &Scenario, i: usize, f: &Fault) -> Result<(), (String, String)> {
    let field = |name: &str| format!("faults.{i}.{name}");
    let cluster = crate::world::shape(s);
    let nodes: Vec<String> = cluster.nodes().into_iter().map(NodeId::name).collect();
    if !nodes.contains(&f.target) {
        let m = format!("no node named `{}`; nodes are {}", f.target, nodes.join(", "));
        return Err((field("target"), m));
    }
    if let Some(peer) = &f.peer {
        if !nodes.contains(peer) || *peer == f.target {
            return Err((field("peer"), format!("`{peer}` is not another node")));
        }
        if !f.action.is_link() {
            let m = format!("a `{}` fault hits a node and has no peer", f.action.as_str());
            return Err((field("peer"), m));
        }
    }
    let role_of = |name: &str| cluster.nodes().into_iter().find(|n| n.name() == name).map(|n| n.role);
    let (target, peer) = (role_of(&f.target).expect("checked above"), f.peer.as_deref().and_then(role_of));
    if let Err(m) = crate::fault_plan::fits(f.class, target, peer) {
        let m = format!(
            "{m}, not `{}`{}",
            f.target,
            f.peer.as_ref().map_or(String::new(), |p| format!(" and `{p}`"))
        );
        return Err((field("class"), m));
    }
    let actions = crate::fault_plan::scheduled_actions_of(f.class, f.peer.is_some());
    if f.action != FaultAction::Restart && !actions.contains(&f.action) {
        let m = format!("a `{}` fault cannot `{}`", f.class.as_str(), f.action.as_str());
        return Err((field("action"), m));
    }
    if f.action.is_timed() && f.duration_ms.unwrap_or(0) == 0 {
        let m = format!("`{}` needs a positive duration_ms", f.action.as_str());
        return Err((field("duration_ms"), m));
    }
    match (f.action, f.loss_rate, f.latency_ms) {
        (FaultAction::Loss, Some(rate), _) if rate > 0.0 && rate < 1.0 => {}
        (FaultAction::Loss, _, _) => {
            return Err((field("loss_rate"), "`loss` needs a loss_rate in (0, 1)".into()));
        }
        (FaultAction::Latency, _, Some(ms)) if ms > 0 => {}
        (FaultAction::Latency, _, _) => {
            return Err((field("latency_ms"), "`latency` needs a positive latency_ms".into()));
        }
        (_, Some(_), _) => return Err((field("loss_rate"), "only a `loss` fault has a loss_rate".into())),
        (_, _, Some(_)) => return Err((field("latency_ms"), "only a `latency` fault has latency_ms".into())),
        _ => {}
    }
    if f.one_way && !f.action.is_link() {
        return Err((
            field("one_way"),
            "only a link fault (clog, partition, loss, latency) can be one-way".into(),
        ));
    }
    if f.at_ms >= s.checks.max_sim_time_ms {
        return Err((field("at_ms"), "must fall before checks.max_sim_time_ms".into()));
    }
    Ok(())
}

/// Finding where a dotted field sits in the file.
mod spans {
    use toml::de::{DeTable, DeValue};

    pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// The byte offset of the key `a.b.c` (or `faults.0.at_ms`).
    pub fn locate(text: &str, field: &str) -> Option<usize> {
        let root = DeTable::parse(text).ok()?;
        let mut table = root.get_ref();
        let parts: Vec<&str> = field.split('.').collect();
        let mut i = 0;
        loop {
            let (key, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == parts[i])?;
            i += 1;
            if i == parts.len() {
                return Some(key.span().start);
            }
            table = match value.get_ref() {
                DeValue::Table(t) => t,
                DeValue::Array(items) => {
                    let index: usize = parts[i].parse().ok()?;
                    i += 1;
                    match items.get(index)?.get_ref() {
                        DeValue::Table(t) if i < parts.len() => t,
                        _ => return Some(items.get(index)?.span().start),
                    }
                }
                _ => return None,
            };
        }
    }

    /// The deepest dotted field whose key or value covers `offset`.
    pub fn field_at(text: &str, offset: usize) -> Option<String> {
        let root = DeTable::parse(text).ok()?;
        let mut entries = Vec::new();
        collect(root.get_ref(), "", &mut entries);
        entries
            .into_iter()
            .filter(|(_, key, value)| contains(key, offset) || contains(value, offset))
            .max_by_key(|(path, _, _)| path.matches('.').count())
            .map(|(path, _, _)| path)
    }

    type Entry = (String, std::ops::Range<usize>, std::ops::Range<usize>);

    /// Every key in the document with its dotted path, key span and value span.
    fn collect(table: &DeTable<'_>, prefix: &str, out: &mut Vec<Entry>) {
        for (key, value) in table.iter() {
            let path = format!("{prefix}{}", key.get_ref());
            out.push((path.clone(), key.span(), value.span()));
            match value.get_ref() {
                DeValue::Table(t) => collect(t, &format!("{path}."), out),
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let DeValue::Table(t) = item.get_ref() {
                            collect(t, &format!("{path}.{i}."), out);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn contains(span: &std::ops::Range<usize>, offset: usize) -> bool {
        span.start <= offset && (offset < span.end || span.is_empty() && offset == span.start)
    }
}

/// A stable digest of a scenario (after overrides), to tie a report to its exact input.
pub fn hash(scenario: &Scenario) -> String {
    let text = toml::to_string(scenario).expect("a scenario serialises");
    blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
}
