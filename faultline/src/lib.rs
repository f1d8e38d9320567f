//! faultline: test a stream operator of your own under faults.
//!
//! This is the crate a user depends on. It gathers what writing, registering, running and
//! testing an operator takes; the engine (`faultline-engine`) and the simulator
//! (`faultline-sim`) stay behind it.
//!
//! # Write an operator
//! An [`Operator`] is generic over its key, input and output types (anything serde can encode)
//! and keeps its state in named, typed descriptors — [`ValueState`], [`MapState`],
//! [`ListState`] — which the engine snapshots, restores and replicates. Event-time timers, typed
//! output and named side outputs go through its [`Ctx`]. Test it step by step with the
//! [`Harness`]: feed records, advance the watermark, snapshot, restore.
//!
//! # Make it a pipeline
//! A [`Plugin`] is a name and a builder from the scenario's `[pipeline]` table (parse it with
//! [`plugin::params`]) to a [`Pipeline`]: its stages ([`Dataflow::stage`]), its input generator
//! ([`Dataflow::generate`], usually [`WorkloadSpec::events_with`] and a [`Draw`]), and what the
//! checkers need. By default a user pipeline is judged by the **differential oracle**: its own
//! stages run fault-free and sequentially over the same input.
//!
//! # Run it under faults
//! Register the plugin beside the built-ins and either hand the registry to the command line
//! from your own `main`, or run a scenario from a test:
//!
//! ```no_run
//! # fn registry() -> faultline::Registry { faultline::builtins() }
//! fn main() {
//!     std::process::exit(faultline::cli::main(registry()));
//! }
//!
//! #[test]
//! fn passes_under_faults() {
//!     let record = faultline::run("scenario.toml", &registry(), 7).expect("the scenario loads");
//!     assert_eq!(record.verdict, "pass", "{:?}", record.violations);
//! }
//! ```
//!
//! # Property-test it
//! [`prop::check`] draws inputs, fault schedules of the seven classes and engine settings,
//! runs each case in the simulated cluster, and on a failure panics with the minimal case:
//!
//! ```no_run
//! # fn registry() -> faultline::Registry { faultline::builtins() }
//! #[test]
//! fn my_operator_is_exactly_once() {
//!     let subject = faultline::prop::Subject::from_file("scenario.toml", registry());
//!     faultline::prop::check(subject, faultline::prop::Config::default().cases(256));
//! }
//! ```
//!
//! Its input comes from the pipeline's generator, or from a proptest strategy of your own over
//! your input type ([`prop::Subject::input`], written against [`prop::proptest`]).
//!
//! `docs/operators.md` in the repository is the how-to, with a worked example
//! (the repository's `examples/`).

use std::path::Path;
use std::sync::Arc;

pub use faultline_engine::plugin::{Dataflow, ParamError};
pub use faultline_engine::record::{Cause, Event, KeyBytes, OutputId, Side, StreamRecord};
pub use faultline_engine::sdk::operator::{SideOutput, Typed};
pub use faultline_engine::sdk::{
    self, stable_hash, Blob, Ctx, Data, Encoded, Harness, Identity, ListState, MapState, Operator, Origin,
    Timer, ValueState,
};
pub use faultline_engine::workload::{Draw, Drawing, Emitted, WorkloadSpec};
pub use faultline_reports::{RunRecord, SwarmRecord};
pub use faultline_sim::checker::expected::{Expected, Input};
pub use faultline_sim::plugin::{self, Pipeline, Plugin, Problem, Registry};
/// Property tests of a pipeline under faults: drawn inputs, fault schedules and settings, every
/// failure shrunk to a minimal scenario file.
pub use faultline_sim::prop;
pub use faultline_sim::scenario::{Loaded, Scenario, ScenarioError};
pub use toml;

/// A registry holding the built-in pipelines: register yours beside them.
pub fn builtins() -> Registry {
    faultline_sim::builtins::registry()
}

/// Loads and validates the scenario at `path`, with the pipelines of `registry`.
pub fn load(path: impl AsRef<Path>, registry: &Registry) -> Result<Loaded, ScenarioError> {
    faultline_sim::scenario::load_with(path.as_ref(), &[], Arc::new(registry.clone()))
}

/// Runs the scenario at `path` once, with seed `seed`, and returns its record: the verdict,
/// the violations and everything the run measured. A run that panics is a failing record.
pub fn run(path: impl AsRef<Path>, registry: &Registry, seed: u64) -> Result<RunRecord, ScenarioError> {
    let loaded = load(path, registry)?;
    Ok(faultline_sim::runner::run_isolated(&loaded, seed))
}

/// Runs seeds `from..from + seeds` of the scenario at `path`, on `jobs` threads, and returns the
/// sweep's record (`failed` lists the failing seeds, each with its replay command).
pub fn swarm(
    path: impl AsRef<Path>,
    registry: &Registry,
    from: u64,
    seeds: u64,
    jobs: usize,
) -> Result<SwarmRecord, ScenarioError> {
    let loaded = load(path, registry)?;
    Ok(faultline_sim::swarm::swarm(&loaded, from, seeds, jobs, false).0)
}

/// The `faultline` command line, with your pipelines.
pub mod cli {
    use super::Registry;

    /// Runs the command line on this process's arguments with the pipelines of `registry`;
    /// returns the exit code (0 pass, 1 safety violation, 2 bad input, 3 liveness).
    pub fn main(registry: Registry) -> i32 {
        let args: Vec<String> = std::env::args().collect();
        main_with(&args, registry)
    }

    /// Runs the command line on `args` (program name first) with the pipelines of `registry`.
    pub fn main_with(args: &[String], registry: Registry) -> i32 {
        faultline_sim::logging::init();
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        faultline_sim::cli::main_with_registry(args, &mut out, &mut err, registry)
    }
}
