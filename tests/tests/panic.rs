//! A panic is a verdict, not a crash: a planted operator panics on a chosen record, and the run
//! fails with a `panic` violation that names the node, the place and the simulated time, exits
//! 1, prints its JSON record and its replay command; a swarm with panicking seeds completes
//! and lists them beside the seeds that passed.

use std::sync::Arc;

use std::collections::BTreeSet;

use faultline_engine::operators::builtin::Synthetic;
use faultline_engine::plugin::{Dataflow, ParamError};
use faultline_engine::record::{Cause, KeyBytes, OutputId, StreamRecord};
use faultline_engine::sdk::codec::decode;
use faultline_engine::sdk::operator::{Call, ErasedOperator};
use faultline_engine::sdk::Blob;
use faultline_engine::state::TimerKey;
use faultline_engine::workload::{Emitted, WorkloadSpec};
use faultline_sim::checker::expected::{Expected, Input};
use faultline_sim::plugin::{Pipeline, Plugin, Problem, Registry};
use faultline_sim::{runner, scenario, swarm};
use faultline_tests::scenario as path_of;

/// Panics on the record of event id [`PANIC_ID`] when its key is a multiple of four: the keys
/// are drawn from the seed, so some seeds panic and others run to the end.
const PANIC_ID: u64 = 4320;

/// `top-n`, with a planted panic.
struct PanicOn(Box<dyn ErasedOperator>);

impl ErasedOperator for PanicOn {
    fn on_record(&self, key: &KeyBytes, value: &Blob, event_time_ms: u64, cause: Cause, call: Call<'_>) {
        let (k, input): (u64, Synthetic) = (decode(&key.bytes), decode(value));
        if input.id == PANIC_ID && k.is_multiple_of(4) {
            panic!("planted: record {} of key {k}", input.id);
        }
        self.0.on_record(key, value, event_time_ms, cause, call);
    }

    fn on_timer(&self, timer: &TimerKey, cause: Cause, call: Call<'_>) {
        self.0.on_timer(timer, cause, call);
    }

    fn event_time(&self) -> bool {
        self.0.event_time()
    }
}

/// The `top-n` plugin, its operator planted with the panic: every other part is the built-in's.
struct PanickingTopN;

impl Plugin for PanickingTopN {
    fn name(&self) -> &str {
        "top-n"
    }

    fn build(&self, params: &toml::Table) -> Result<Arc<dyn Pipeline>, ParamError> {
        Ok(Arc::new(Planted(faultline_sim::builtins::registry().build("top-n", params)?)))
    }
}

struct Planted(Arc<dyn Pipeline>);

impl Dataflow for Planted {
    fn label(&self) -> String {
        self.0.label()
    }
    fn stage(&self, stage: u32) -> Box<dyn ErasedOperator> {
        Box::new(PanicOn(self.0.stage(stage)))
    }
    fn allowed_lateness_ms(&self) -> u64 {
        self.0.allowed_lateness_ms()
    }
    fn source_step(&self, record: &mut StreamRecord) -> bool {
        self.0.source_step(record)
    }
    fn event_time(&self) -> bool {
        self.0.event_time()
    }
    fn fires_on_watermark(&self) -> bool {
        self.0.fires_on_watermark()
    }
    fn generate(&self, workload: &WorkloadSpec, producer: u32) -> Box<dyn Iterator<Item = Emitted> + Send> {
        self.0.generate(workload, producer)
    }
}

impl Pipeline for Planted {
    fn validate(&self, s: &scenario::Scenario) -> Result<(), Problem> {
        self.0.validate(s)
    }
    fn oracle(&self, inputs: &[Input], late: &BTreeSet<(Cause, u32)>) -> Expected {
        self.0.oracle(inputs, late)
    }
    fn show(&self, id: &OutputId, value: &[u8]) -> Option<String> {
        self.0.show(id, value)
    }
}

fn loaded() -> scenario::Loaded {
    let mut registry = Registry::new();
    registry.register(PanickingTopN);
    let sets = ["faults.random.count=1".to_string()];
    scenario::load_with(path_of("top-n").as_ref(), &sets, Arc::new(registry)).expect("top-n loads")
}

/// The seeds among the first `n` whose record `PANIC_ID` has a key that is a multiple of 4.
fn panicking_seeds(n: u64) -> Vec<u64> {
    let loaded = loaded();
    (1..=n)
        .filter(|&seed| {
            let spec = loaded.cluster_spec(seed);
            let inputs = faultline_sim::checker::expected::inputs(&spec.workload, &*loaded.pipeline());
            inputs
                .iter()
                .any(|i| i.event.id == PANIC_ID && decode::<u64>(&i.event.key.bytes).is_multiple_of(4))
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
