//! The benchmark: the engine's throughput against a bare-madsim baseline, in one process.
//!
//! The engine side runs the quickstart pipeline with more events. The baseline moves the same
//! number of records, in batches of the same size, through the same number of network hops,
//! with nothing else: no log, no operators, no acknowledgements. Their ratio says what the
//! engine's machinery costs on top of the simulator itself.
//!
//! Hops on the engine's data path: producer → leader, leader → each follower (rf − 1),
//! leader → source subtask, source → aggregate subtask (key-by exchange), aggregate → sink.

use std::net::SocketAddr;

use faultline_engine::record::{Event, LogRecord, Payload};
use faultline_reports::{BenchRecord, PipelineBenchRecord};
use madsim::net::Endpoint;
use madsim::runtime::Runtime;
use madsim::time::TimeHandle;

use crate::runner;
use crate::scenario::{self, Loaded, ScenarioError};
use crate::wall::WallClock;

/// What to measure.
pub struct BenchOptions {
    pub scenario: std::path::PathBuf,
    pub events: u64,
    pub batch_records: usize,
    /// Measured rounds of each side; the medians are reported.
    pub repeats: usize,
}

/// One measured round of one side, as a child process reports it.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Round {
    pub wall_ms: f64,
    pub sim_ms: u64,
    /// For the engine: the checkers' time after the simulation (not part of its rate).
    pub judge_ms: f64,
}

/// Which side a child process measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    /// The engine, checkpointing every `CHECKPOINT_INTERVAL_MS`.
    Engine,
    /// The engine with periodic checkpoints off (only the final one).
    EngineNoCheckpoints,
    /// The engine under passive replication, k = workers − 1 (at most 2), no faults.
    EnginePassive,
    /// The engine under active replication, likewise.
    EngineActive,
    Baseline,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Engine => "engine",
            Side::EngineNoCheckpoints => "engine-no-checkpoints",
            Side::EnginePassive => "engine-passive",
            Side::EngineActive => "engine-active",
            Side::Baseline => "baseline",
        }
    }
}

/// The checkpoint interval the engine side runs with.
pub const CHECKPOINT_INTERVAL_MS: u64 = 100;

/// Runs both sides `repeats` times, alternating, each round in a fresh process started with
/// `child` (this executable), and compares the medians. Fresh processes give both sides the
/// same starting state: no round inherits memory another round freed.
pub fn bench(
    options: &BenchOptions,
    child: &dyn Fn(Side) -> Result<Round, String>,
) -> Result<BenchRecord, BenchError> {
    assert!(options.repeats > 0);
    let loaded = engine_scenario(options, CHECKPOINT_INTERVAL_MS)?;
    let hops = hops(&loaded);
    let mut engine = Vec::new();
    let mut unchecked = Vec::new();
    let mut baseline = Vec::new();
    let (mut passive, mut active) = (Vec::new(), Vec::new());
    for _ in 0..options.repeats {
        engine.push(child(Side::Engine).map_err(BenchError::Child)?);
        unchecked.push(child(Side::EngineNoCheckpoints).map_err(BenchError::Child)?);
        passive.push(child(Side::EnginePassive).map_err(BenchError::Child)?);
        active.push(child(Side::EngineActive).map_err(BenchError::Child)?);
        baseline.push(child(Side::Baseline).map_err(BenchError::Child)?);
    }
    let e = median_by(&mut engine, |r| r.wall_ms);
    let u = median_by(&mut unchecked, |r| r.wall_ms);
    let b = median_by(&mut baseline, |r| r.wall_ms);
    let rate = |r: &Round| options.events as f64 / (r.wall_ms / 1000.0);
    let (engine_rate, unchecked_rate, base_rate) = (rate(&e), rate(&u), rate(&b));
    let passive_rate = rate(&median_by(&mut passive, |r| r.wall_ms));
    let active_rate = rate(&median_by(&mut active, |r| r.wall_ms));
    Ok(BenchRecord {
        events: options.events,
        batch_records: options.batch_records as u64,
        hops,
        repeats: options.repeats as u64,
        engine_records_per_s: engine_rate,
        engine_wall_ms: e.wall_ms,
        engine_sim_per_wall: e.sim_ms as f64 / e.wall_ms,
        judge_wall_ms: e.judge_ms,
        baseline_records_per_s: base_rate,
        baseline_wall_ms: b.wall_ms,
        baseline_sim_per_wall: b.sim_ms as f64 / b.wall_ms,
        ratio: engine_rate / base_rate,
        checkpoint_interval_ms: CHECKPOINT_INTERVAL_MS,
        no_checkpoints_records_per_s: unchecked_rate,
        checkpoint_ratio: engine_rate / unchecked_rate,
        replicas: replicas(&loaded),
        passive_records_per_s: passive_rate,
        active_records_per_s: active_rate,
        passive_overhead: 1.0 - passive_rate / engine_rate,
        active_overhead: 1.0 - active_rate / engine_rate,
    })
}

/// The replicas the replication sides run with: as many as the workers allow, at most 2.
fn replicas(loaded: &Loaded) -> u32 {
    (loaded.scenario.engine.workers - 1).min(2)
}

fn hops(loaded: &Loaded) -> u64 {
    u64::from(loaded.scenario.engine.replication_factor) + 3
}

/// Measures one round of one side in this process (the child's half of [`bench()`]), after an
/// unmeasured warm-up round: a process's first run pays for faulting in fresh memory, a cost
/// that varies widely between processes and is not the engine's.
pub fn measure(options: &BenchOptions, side: Side) -> Result<Round, BenchError> {
    measure_once(options, side)?;
    measure_once(options, side)
}

fn measure_once(options: &BenchOptions, side: Side) -> Result<Round, BenchError> {
    let interval = if side == Side::EngineNoCheckpoints { 0 } else { CHECKPOINT_INTERVAL_MS };
    let mut loaded = engine_scenario(options, interval)?;
    let k = replicas(&loaded);
    let recovery = match side {
        Side::EnginePassive => Some("passive-replication"),
        Side::EngineActive => Some("active-replication"),
        _ => None,
    };
    if let Some(recovery) = recovery.filter(|_| k > 0) {
        let sets = [format!("engine.recovery={recovery}"), format!("engine.replicas={k}")];
        loaded = scenario::load(&options.scenario, &[loaded.sets.clone(), sets.to_vec()].concat())?;
    }
    match side {
        Side::Engine | Side::EngineNoCheckpoints | Side::EnginePassive | Side::EngineActive => {
            // The engine's rate counts the simulation only: the checkers' judging afterwards
            // is reported apart, since the baseline has nothing to judge.
            let (record, timings) = runner::run_isolated_timed(&loaded, 1);
            if !record.passed() {
                return Err(BenchError::EngineFailed(
                    record.repro.clone(),
                    format!("{:?}", record.violations),
                ));
            }
            Ok(Round { wall_ms: timings.simulate_ms, sim_ms: record.sim_time_ms, judge_ms: timings.judge_ms })
        }
        Side::Baseline => {
            let (wall_ms, sim_ms) = baseline_isolated(options.events, options.batch_records, hops(&loaded));
            Ok(Round { wall_ms, sim_ms, judge_ms: 0.0 })
        }
    }
}

/// The median element by `key` (the upper one of an even count).
fn median_by<T: Copy>(items: &mut [T], key: impl Fn(&T) -> f64) -> T {
    items.sort_by(|a, b| key(a).total_cmp(&key(b)));
    items[items.len() / 2]
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("the engine's benchmark run failed its checks ({1}); replay: {0}")]
    EngineFailed(String, String),
    #[error("a benchmark round failed: {0}")]
    Child(String),
}

fn engine_scenario(options: &BenchOptions, checkpoint_interval_ms: u64) -> Result<Loaded, ScenarioError> {
    // A rate high enough that producers always fill their batches: the benchmark measures
    // the machinery per record, not the workload's pacing.
    let sets = vec![
        format!("workload.events={}", options.events),
        format!("workload.rate_per_s={}", options.events.max(1000) * 10),
        format!("engine.batch_records={}", options.batch_records),
        "checks.max_sim_time_ms=36000000".to_string(),
        format!("engine.checkpoint_interval_ms={checkpoint_interval_ms}"),
    ];
    scenario::load(&options.scenario, &sets)
}

/// Runs the baseline on a fresh thread; returns (wall ms, simulated ms).
fn baseline_isolated(records: u64, batch: usize, hops: u64) -> (f64, u64) {
    #[allow(clippy::disallowed_methods)]
    let handle = std::thread::Builder::new()
        .name("baseline".into())
        .spawn(move || baseline(records, batch, hops))
        .expect("spawning the baseline thread");
    handle.join().expect("the baseline does not panic")
}

/// A chain of `hops + 1` nodes; the first sends every batch, the middle ones forward, the last
/// counts.
fn baseline(records: u64, batch: usize, hops: u64) -> (f64, u64) {
    let wall = WallClock::start();
    let rt = Runtime::with_seed_and_config(1, madsim::Config::default());
    let addr = |i: u64| -> SocketAddr { format!("10.9.0.{}:9000", i + 1).parse().unwrap() };
    for i in 1..=hops {
        let node = rt.create_node().name(format!("hop-{i}")).ip(addr(i).ip()).build();
        let next = (i < hops).then(|| addr(i + 1));
        node.spawn(async move { relay(addr(i), next, records).await });
    }
    let source = rt.create_node().name("hop-0").ip(addr(0).ip()).build();
    let sim_ms = rt.block_on(async move {
        let sender = source.spawn(async move { emit(addr(1), records, batch).await });
        sender.await.expect("the emitter runs");
        TimeHandle::current().elapsed().as_millis() as u64
    });
    (wall.elapsed_ms(), sim_ms)
}

async fn emit(to: SocketAddr, records: u64, batch: usize) {
    let ep = Endpoint::bind("0.0.0.0:0").await.unwrap();
    let (tx, mut rx) = ep.connect1(to).await.unwrap();
    let mut sent = 0u64;
    while sent < records {
        let n = (records - sent).min(batch as u64);
        let batch: Vec<LogRecord> = (sent..sent + n).map(record).collect();
        tx.send(Box::new(batch)).await.unwrap();
        sent += n;
    }
    rx.recv().await.expect("the last hop answers when it has every record");
}

fn record(i: u64) -> LogRecord {
    let value = faultline_engine::sdk::codec::encode(&faultline_engine::operators::builtin::Synthetic {
        id: i,
        kind: 0,
        value: i as i64,
    });
    let key = faultline_engine::record::KeyBytes::of(&(i % 1000));
    let event = Event { id: i, key, value, event_time_ms: i };
    LogRecord { producer: 0, seq: i, stream_time_ms: i, payload: Payload::Data(event) }
}

/// Forwards every batch to `next`; the last hop counts and answers back down the chain.
async fn relay(at: SocketAddr, next: Option<SocketAddr>, records: u64) {
    let ep = Endpoint::bind(at).await.unwrap();
    let (back, mut rx, _) = ep.accept1().await.unwrap();
    let mut forward = match next {
        Some(next) => Some(ep.connect1(next).await.unwrap()),
        None => None,
    };
    let mut seen = 0u64;
    while seen < records {
        let payload = rx.recv().await.unwrap();
        let batch = payload.downcast::<Vec<LogRecord>>().expect("baseline batches");
        seen += batch.len() as u64;
        if let Some((tx, _)) = &forward {
            tx.send(batch).await.unwrap();
        }
    }
    if let Some((_, done)) = forward.as_mut() {
        done.recv().await.unwrap();
    }
    back.send(Box::new(())).await.unwrap();
}

/// Nexmark's published per-core throughput for Flink, in input events per second (the
/// Nexmark project's guide), for comparison.
pub const FLINK_PER_CORE: [(&str, f64); 8] = [
    ("nexmark-q0", 155_000.0),
    ("nexmark-q1", 158_000.0),
    ("nexmark-q2", 175_000.0),
    ("nexmark-q3", 152_000.0),
    ("nexmark-q4", 34_000.0),
    ("nexmark-q5", 22_000.0),
    ("nexmark-q7", 12_000.0),
    ("nexmark-q8", 146_000.0),
];

/// The pipelines `--pipeline nexmark` stands for.
pub const NEXMARK_BENCH: [&str; 6] =
    ["nexmark-q0", "nexmark-q1", "nexmark-q2", "nexmark-q5", "nexmark-q7", "nexmark-q8"];

/// A pipeline's throughput: its scenario (`scenarios/NAME.toml`) without faults, with
/// checkpoints every `CHECKPOINT_INTERVAL_MS`, `events` input events at a rate that keeps the
/// producers' batches full, judged by every checker. Each round runs on a fresh thread after an
/// unmeasured warm-up; the median round is reported.
pub fn bench_pipeline(
    scenario: &std::path::Path,
    name: &str,
    events: u64,
    repeats: usize,
) -> Result<PipelineBenchRecord, BenchError> {
    assert!(repeats > 0);
    let sets = vec![
        format!("workload.events={events}"),
        format!("workload.rate_per_s={}", events.clamp(1000, 1_000_000)),
        "engine.batch_records=1024".to_string(),
        format!("engine.checkpoint_interval_ms={CHECKPOINT_INTERVAL_MS}"),
        "faults.random.count=0".to_string(),
        "checks.max_sim_time_ms=36000000".to_string(),
    ];
    let loaded = scenario::load(scenario, &sets)?;
    let round = || -> Result<Round, BenchError> {
        let (record, timings) = runner::run_isolated_timed(&loaded, 1);
        if !record.passed() {
            return Err(BenchError::EngineFailed(record.repro.clone(), format!("{:?}", record.violations)));
        }
        Ok(Round {
            wall_ms: timings.simulate_ms + timings.judge_ms,
            sim_ms: record.sim_time_ms,
            judge_ms: timings.judge_ms,
        })
    };
    round()?;
    let mut rounds = (0..repeats).map(|_| round()).collect::<Result<Vec<_>, _>>()?;
    let r = median_by(&mut rounds, |r| r.wall_ms);
    let per_s = |ms: f64| events as f64 / (ms / 1000.0);
    let flink = FLINK_PER_CORE.iter().find(|(n, _)| *n == name).map(|&(_, f)| f);
    let events_per_s = per_s(r.wall_ms);
    Ok(PipelineBenchRecord {
        pipeline: name.to_string(),
        events,
        repeats: repeats as u64,
        checkpoint_interval_ms: CHECKPOINT_INTERVAL_MS,
        events_per_s,
        simulate_events_per_s: per_s(r.wall_ms - r.judge_ms),
        wall_ms: r.wall_ms,
        judge_wall_ms: r.judge_ms,
        sim_time_ms: r.sim_ms,
        flink_per_core_events_per_s: flink,
        ratio_to_flink: flink.map(|f| events_per_s / f),
    })
}
