//! A panic is a verdict, not a crash: a planted operator panics on a chosen record, and the run
//! fails with a `panic` violation that names the node, the place and the simulated time, exits
//! 1, prints its JSON record and its replay command; a swarm with panicking seeds completes
//! and lists them beside the seeds that passed.

use std::sync::Arc;

use faultline_engine::api::{Context, Operator, Registry};
use faultline_engine::pipeline::PipelineSpec;
use faultline_engine::record::StreamRecord;
use faultline_engine::state::Timer;
use faultline_sim::{runner, scenario, swarm};
use faultline_tests::scenario as path_of;

/// Panics on the record of event id [`PANIC_ID`] when its key is a multiple of four: the keys
/// are drawn from the seed, so some seeds panic and others run to the end.
const PANIC_ID: u64 = 4320;

/// `top-n`, with a planted panic.
struct PanicOn(Box<dyn Operator>);

impl Operator for PanicOn {
    fn on_record(&self, record: &StreamRecord, ctx: &mut Context<'_>) {
        if record.id == PANIC_ID && record.key.is_multiple_of(4) {
            panic!("planted: record {} of key {}", record.id, record.key);
        }
        self.0.on_record(record, ctx);
    }

    fn on_timer(&self, timer: Timer, ctx: &mut Context<'_>) {
        self.0.on_timer(timer, ctx);
    }

    fn on_watermark(&self, watermark: u64, ctx: &mut Context<'_>) {
        self.0.on_watermark(watermark, ctx);
    }

    fn event_time(&self) -> bool {
        self.0.event_time()
    }
}

fn panicking_top_n(pipeline: &PipelineSpec) -> Result<Box<dyn Operator>, String> {
    let top_n = faultline_sim::pipelines::registry().get("top-n").expect("top-n is built in");
    Ok(Box::new(PanicOn(top_n(pipeline)?)))
}

fn loaded() -> scenario::Loaded {
    let mut registry = Registry::default();
    registry.register("top-n", panicking_top_n);
    let sets = ["faults.random.count=1".to_string()];
    scenario::load_with(path_of("top-n").as_ref(), &sets, Arc::new(registry)).expect("top-n loads")
}

/// The seeds among the first `n` whose record `PANIC_ID` has a key that is a multiple of 4.
fn panicking_seeds(n: u64) -> Vec<u64> {
    let loaded = loaded();
    (1..=n)
        .filter(|&seed| {
            let spec = faultline_sim::world::cluster_spec(&loaded.scenario, seed);
            let inputs = faultline_sim::checker::reference::inputs(&spec.workload);
            inputs.iter().any(|i| i.event.id == PANIC_ID && i.event.key.is_multiple_of(4))
        })
        .collect()
}

#[test]
fn a_panicking_operator_fails_the_run_with_a_panic_violation_and_a_replay_line() {
    let seed = *panicking_seeds(20).first().expect("some seed among 20 panics");
    let record = runner::run_isolated(&loaded(), seed);
    assert_eq!(runner::exit_code(&record), 1, "{:?}", record.violations);
    assert_eq!(record.verdict, "fail");
    let names: Vec<&str> = record.violations.iter().map(|v| v.invariant.as_str()).collect();
    assert_eq!(names, ["panic"]);
    let panic = record.panic.as_ref().expect("the record names the panic");
    assert!(panic.message.starts_with("planted: record 4320"), "{panic:?}");
    assert!(panic.location.starts_with("tests/tests/panic.rs:"), "{panic:?}");
    assert!(panic.node.starts_with("worker-"), "{panic:?}");
    assert!(panic.at_ms.is_some_and(|ms| ms > 0), "{panic:?}");
    assert!(record.violations[0].detail.contains(&panic.node));
    assert_eq!(
        record.repro,
        format!("faultline run ../scenarios/top-n.toml --seed {seed} --set faults.random.count=1")
    );
    let json = faultline_reports::to_json(&record);
    assert!(json.contains("\"invariant\":\"panic\""), "{json}");
    let again = runner::run_isolated(&loaded(), seed);
    assert_eq!(again.trace_hash, record.trace_hash, "a panicking seed replays exactly");
}

#[test]
fn a_swarm_with_panicking_seeds_completes_and_lists_them() {
    let panicking = panicking_seeds(12);
    assert!(!panicking.is_empty() && panicking.len() < 12, "a mix of seeds: {panicking:?}");
    let (record, runs) = swarm::swarm(&loaded(), 1, 12, 2, false);
    assert_eq!(runs.len(), 12);
    let failed: Vec<u64> = record.failed.iter().map(|f| f.seed).collect();
    assert_eq!(failed, panicking, "exactly the panicking seeds fail");
    assert_eq!(record.passed, 12 - panicking.len() as u64);
    for f in &record.failed {
        assert_eq!(f.violations[0].invariant, "panic");
        assert!(f.repro.contains(&format!("--seed {}", f.seed)));
    }
}
