//! faultline-reports: the records a run leaves behind, and their renderings.
//!
//! It owns the serde shape of a run ([`RunRecord`]), a swarm ([`SwarmRecord`]) and a benchmark
//! ([`BenchRecord`]). It depends on no other faultline crate, so a record saved as JSON can be
//! rendered again without the simulator: the field names here are the CLI's `--json` contract.

use serde::{Deserialize, Serialize};

/// One run of one scenario with one seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    pub faults: Vec<FaultRecord>,
    pub checkpoints: CheckpointCounts,
    pub recoveries: Vec<RecoveryRecord>,
    /// What was refused from older epochs (zombies and late messages).
    pub fencing: FencingCounts,
    /// The command that replays this run exactly.
    pub repro: String,
}

/// The delivery checker's classification of the sink's committed output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputCounts {
    pub expected: u64,
    pub committed: u64,
    pub duplicates: u64,
    pub lost: u64,
    pub wrong: u64,
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: String,
    pub detail: String,
}

/// One injected fault and whether it took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The fault waited for a checkpoint to be in flight, and struck during it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mid_checkpoint: bool,
}

/// Requests refused because they came from an epoch older than the current one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencingCounts {
    /// Sink writes, prepares and commits refused from fenced writers.
    pub sink_requests: u64,
    /// Channels, commands, acknowledgements and reports dropped for naming an old epoch.
    pub stale_messages: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCounts {
    pub completed: u64,
    pub aborted: u64,
}

/// One recovery: from the fault that caused it to the job processing again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When the recovered sink writers' output first moved past what the sink had already
    /// received (absent: it never did, or no writer was replaced).
    pub output_resumed_at_ms: Option<u64>,
    /// From the fault until output resumed.
    pub time_to_resume_ms: Option<u64>,
    /// Output records the recovered writers produced again (the sink had received them before)
    /// until their output resumed: the input this recovery replayed through the state.
    pub records_replayed: u64,
    /// State read from the store or shipped to standbys, until the next recovery.
    pub state_bytes_transferred: u64,
    /// Failover: copies promoted to primary, and sources restarted.
    pub promoted: u32,
    pub sources_restarted: u32,
}

impl RunRecord {
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }
}

/// Many seeds of one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwarmRecord {
    pub scenario: String,
    pub seeds: u64,
    pub passed: u64,
    pub failed: Vec<SwarmFailure>,
    pub wall_ms: f64,
    /// Faults that took effect across the sweep, per failure class.
    #[serde(default)]
    pub effective_faults: std::collections::BTreeMap<String, u64>,
    /// Seeds whose run had at least one recovery.
    #[serde(default)]
    pub seeds_with_recovery: u64,
    /// Seeds with two or more nodes down at once.
    #[serde(default)]
    pub seeds_with_simultaneous_crashes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwarmFailure {
    pub seed: u64,
    pub violations: Vec<Violation>,
    pub repro: String,
}

/// The engine against a bare-madsim baseline moving the same records through the same hops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// One JSON line for a record, as `--json` prints it.
pub fn to_json<T: Serialize>(record: &T) -> String {
    serde_json::to_string(record).expect("records serialise")
}
