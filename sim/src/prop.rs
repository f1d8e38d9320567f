//! Property tests of a pipeline under faults (`faultline::prop`), on proptest.
//!
//! A [`Subject`] is a pipeline with the scenario it runs in. [`check`] draws cases from it — the
//! input, the fault schedule, the engine settings and the simulation seed — runs each in the
//! full simulated cluster, and judges it by every checker against the pipeline's oracle. On a
//! failure proptest shrinks the case; the fault-aware search of [`crate::shrink`] then shrinks
//! it further while the same invariant fails. The minimal case is written as a scenario file,
//! and the test panics naming it, what is left of it, and the command that replays it.
//!
//! # What a case draws
//! - **Input**: events, keys, partitions, producers, disorder and late events, each within the
//!   subject's scenario (what its pipeline is known to take) and shrinking toward less; or,
//!   given a user's own strategy ([`Subject::input`]), its list of typed events, with
//!   partitions and producers.
//! - **Faults**: up to [`Config::faults`] of the configured classes, each with its target, its
//!   time (a share of the input's span), its length or restart, and `mid_checkpoint`. The
//!   lengths come from the scenario's `[faults.random]` ranges (or their defaults).
//! - **Engine**: workers, parallelism, checkpoint interval and mode, batch size, semantics,
//!   recovery approach and replicas. A setting validation refuses falls back to the subject's,
//!   so every case is one the scenario loader would accept.
//!
//! A case does not require its faults to take effect or the job to recover: those checks ask
//! whether a scenario tests anything, not whether the pipeline holds.
//!
//! # Reproducing
//! `FAULTLINE_SEED` seeds the draws (default 1: the same cases on every run) and
//! `PROPTEST_CASES` sets how many there are, over [`Config::cases`]. The written scenario
//! replays the minimal case alone.

use std::cell::Cell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as Runner, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use faultline_engine::sdk::codec::{try_decode, Data};

use crate::fault_plan::{self, actions_of, targets_of};
use crate::given::Given;
use crate::plugin::Registry;
use crate::runner;
use crate::scenario::{self, CheckpointModeName, Fault, FaultAction, FaultClass, Loaded, RecoveryName};
use crate::scenario::{Scenario, SemanticsName};
use crate::shrink::{self, Oracle};
use crate::signature::Signature;

/// The proptest this module is built on, for writing a strategy of your own input
/// ([`Subject::input`]) against the same version.
pub use proptest;

/// Every failure class, the default of [`Config::classes`].
pub use crate::fault_plan::ALL_CLASSES;

/// A pipeline under test, with the scenario it runs in: its cluster, rates, checks and fault
/// lengths are where each case starts. Its input comes from its generator, or from a user's
/// own strategy ([`Subject::input`]).
#[derive(Clone, Debug)]
pub struct Subject {
    loaded: Loaded,
    input: Option<UserInput>,
}

/// A user's own input strategy, its values encoded as given events (`crate::given`), and how a
/// given event reads in the written scenario.
#[derive(Clone)]
struct UserInput {
    strategy: BoxedStrategy<Vec<Given>>,
    show: Arc<Shower>,
}

/// How a given event reads: its key and value as the user's types.
type Shower = dyn Fn(&Given) -> Option<String>;

impl fmt::Debug for UserInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserInput")
    }
}

impl Subject {
    /// The scenario file at `path`, its pipeline among `registry`'s. Panics with the file's
    /// error (file, line, field) when it does not load: the test cannot start without it.
    pub fn from_file(path: impl AsRef<Path>, registry: Registry) -> Subject {
        match scenario::load_with(path.as_ref(), &[], Arc::new(registry)) {
            Ok(loaded) => Subject::from_loaded(loaded),
            Err(e) => panic!("faultline::prop: {e}"),
        }
    }

    /// A scenario given as text, named `name` in messages.
    pub fn from_toml(name: &str, text: &str, registry: Registry) -> Subject {
        match scenario::load_str(name, text, &[], Arc::new(registry)) {
            Ok(loaded) => Subject::from_loaded(loaded),
            Err(e) => panic!("faultline::prop: {e}"),
        }
    }

    /// A scenario already loaded.
    pub fn from_loaded(loaded: Loaded) -> Subject {
        Subject { loaded, input: None }
    }

    /// Cases draw their input from `strategy`, the user's own, in place of the pipeline's
    /// generator: a list of the pipeline's input values, each keyed and timed by
    /// `key_and_time`. Events run in the list's order, each key's on one producer, paced at
    /// the scenario's rate (see `crate::given`).
    ///
    /// proptest shrinks the list as it shrinks any `Vec`; the fault-aware search then cuts it
    /// to a prefix. The minimal case's events are written into its scenario as
    /// `[[workload.given]]`, so that `faultline run` replays them. An empty list is drawn
    /// again: a run has at least one event.
    pub fn input<K, V, S, F>(self, strategy: S, key_and_time: F) -> Subject
    where
        K: Data,
        V: Data,
        S: Strategy<Value = Vec<V>> + 'static,
        F: Fn(&V) -> (K, u64) + 'static,
    {
        let key_and_time = Arc::new(key_and_time);
        let strategy = strategy
            .prop_filter("a run has at least one event", |values| !values.is_empty())
            .prop_map(move |values| {
                let given = values.iter().map(|v| {
                    let (key, event_time_ms) = key_and_time(v);
                    Given::of(&key, v, event_time_ms)
                });
                given.collect::<Vec<Given>>()
            })
            .boxed();
        let show = Arc::new(|g: &Given| {
            let (key, value) = (try_decode::<K>(&g.key.0)?, try_decode::<V>(&g.value.0)?);
            Some(format!("{key:?}: {value:?}"))
        });
        Subject { input: Some(UserInput { strategy, show }), ..self }
    }

    /// The pipeline's registered name.
    pub fn name(&self) -> &str {
        &self.loaded.scenario.pipeline.kind
    }

    /// The scenario every case starts from: the subject's, with no faults and no checks that
    /// ask about the scenario rather than the pipeline.
    fn base(&self) -> Scenario {
        let mut base = self.loaded.scenario.clone();
        base.faults = fault_plan::FaultPlan::default();
        base.swarm.clear();
        base.checks.require_effective_fault = false;
        base.checks.require_recovery = false;
        base.checks.require_checkpoint_after_recovery = false;
        if self.input.is_some() {
            // Given events carry their own times: nothing is drawn behind them.
            base.workload.disorder_ms = 0;
            base.workload.late_per_mille = 0;
            base.workload.late_by_ms = 0;
        }
        base
    }

    /// How a given event reads in the written scenario: as the user's types, when the input
    /// is theirs.
    fn show(&self, given: &Given) -> Option<String> {
        self.input.as_ref().and_then(|input| (input.show)(given))
    }

    fn loaded(&self, scenario: &Scenario) -> Loaded {
        Loaded { scenario: scenario.clone(), sets: Vec::new(), ..self.loaded.clone() }
    }
}

/// How a property test runs: how many cases, from which seed, with which faults.
#[derive(Clone, Debug)]
pub struct Config {
    cases: u32,
    seed: u64,
    faults: usize,
    classes: Vec<FaultClass>,
    shrink_runs: u32,
    out_dir: PathBuf,
    replay: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            cases: 256,
            seed: env_number("FAULTLINE_SEED").unwrap_or(1),
            faults: 4,
            classes: ALL_CLASSES.to_vec(),
            shrink_runs: 300,
            out_dir: PathBuf::from("faultline-failures"),
            replay: "faultline".into(),
        }
    }
}

impl Config {
    /// Cases to run (`PROPTEST_CASES`, when set, wins: CI runs few, a nightly many).
    pub fn cases(self, cases: u32) -> Config {
        Config { cases, ..self }
    }

    /// The seed of the draws (`FAULTLINE_SEED`, when set, is the default).
    pub fn seed(self, seed: u64) -> Config {
        Config { seed, ..self }
    }

    /// At most this many faults a case.
    pub fn faults(self, faults: usize) -> Config {
        Config { faults, ..self }
    }

    /// The failure classes faults are drawn from.
    pub fn classes(self, classes: &[FaultClass]) -> Config {
        assert!(!classes.is_empty(), "faultline::prop: name at least one fault class");
        Config { classes: classes.to_vec(), ..self }
    }

    /// Runs the fault-aware search may spend after proptest's shrinking.
    pub fn shrink_runs(self, shrink_runs: u32) -> Config {
        Config { shrink_runs, ..self }
    }

    /// Where the minimal case's scenario file is written (default `faultline-failures/`).
    pub fn out_dir(self, dir: impl Into<PathBuf>) -> Config {
        Config { out_dir: dir.into(), ..self }
    }

    /// The command that runs scenarios of this pipeline, for the replay line: `faultline`, or a
    /// user crate's, e.g. `cargo run -p my-operators --`.
    pub fn replay_with(self, command: &str) -> Config {
        Config { replay: command.into(), ..self }
    }

    fn case_count(&self) -> u32 {
        env_number("PROPTEST_CASES").map_or(self.cases, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("faultline::prop: {name}={value} is not a number")))
}

/// One drawn case: a scenario of explicit faults, and the seed it runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub scenario: Scenario,
    pub seed: u64,
}

/// A property that held.
#[derive(Clone, Debug)]
pub struct Passed {
    pub cases: u32,
}

/// A property that failed, shrunk: the minimal case, where it was written, how to replay it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub pipeline: String,
    pub invariant: String,
    /// What the checker said of the minimal case.
    pub detail: String,
    pub case: Case,
    pub file: PathBuf,
    pub replay: String,
    /// The minimal case's signature: what makes it this bug (see [`crate::signature`]).
    pub signature: Signature,
    /// Which case failed first (1-based): how soon the property caught it.
    pub caught_at: u32,
    /// Runs the fault-aware search spent.
    pub shrink_runs: u32,
    pub draw_seed: u64,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "faultline::prop: {} fails `{}` (FAULTLINE_SEED={})",
            self.pipeline, self.invariant, self.draw_seed
        )?;
        writeln!(f, "  {}", self.detail)?;
        writeln!(f, "signature: {}", self.signature)?;
        writeln!(
            f,
            "caught by case {}; minimal case, after {} runs of fault-aware shrinking:",
            self.caught_at, self.shrink_runs
        )?;
        write!(f, "{}", describe(&self.case))?;
        writeln!(f, "scenario: {}", self.file.display())?;
        write!(f, "replay:   {}", self.replay)
    }
}

/// Runs the property and panics with the minimal failing case, if there is one.
pub fn check(subject: Subject, config: Config) {
    if let Err(failure) = run(&subject, &config) {
        panic!("{failure}");
    }
}

/// Runs the property: `Err` holds the minimal failing case, written to its file.
pub fn run(subject: &Subject, config: &Config) -> Result<Passed, Box<Failure>> {
    let cases = config.case_count();
    let settings = Runner { cases, failure_persistence: None, ..Runner::default() };
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&config.seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(settings, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    // Cases run until the first failure; proptest's shrinking runs more after it.
    let (ran, caught_at) = (Cell::new(0u32), Cell::new(None));
    let judged = |case: Case| {
        let verdict = judge(subject, &case);
        if caught_at.get().is_none() {
            ran.set(ran.get() + 1);
            if verdict.is_err() {
                caught_at.set(Some(ran.get()));
            }
        }
        verdict
    };
    let failed = match runner.run(&strategy(subject, config), judged) {
        Ok(()) => return Ok(Passed { cases }),
        Err(TestError::Abort(why)) => panic!("faultline::prop: {} gave up: {why}", subject.name()),
        Err(TestError::Fail(_, case)) => case,
    };
    let caught_at = caught_at.get().expect("a failing property had a first failing case");
    assert!(caught_at <= cases, "case {caught_at} of {cases}");
    Err(Box::new(minimise(subject, config, failed, caught_at)))
}

/// One case's verdict, as proptest takes it.
fn judge(subject: &Subject, case: &Case) -> Result<(), TestCaseError> {
    let record = runner::run_isolated(&subject.loaded(&case.scenario), case.seed);
    match record.violations.first() {
        None => Ok(()),
        Some(v) => Err(TestCaseError::fail(format!("{}: {}", v.invariant, v.detail))),
    }
}

/// The fault-aware search over proptest's minimal case, keeping its first violation failing;
/// writes the result.
fn minimise(subject: &Subject, config: &Config, failed: Case, caught_at: u32) -> Failure {
    let first = runner::run_isolated(&subject.loaded(&failed.scenario), failed.seed);
    let invariant = first.violations.first().expect("proptest's minimal case fails").invariant.clone();
    let seed = failed.seed;
    let registry = subject.loaded.registry.clone();
    let oracle = Oracle {
        valid: &|s| scenario::validate(s, &registry).is_ok(),
        fails: &mut |s| {
            let record = runner::run_isolated(&subject.loaded(s), seed);
            record.violations.iter().any(|v| v.invariant == invariant)
        },
        on_step: &mut |_| {},
    };
    let shrunk = shrink::shrink(failed.scenario, config.shrink_runs, oracle);
    let case = Case { scenario: shrunk.scenario, seed };
    let last = runner::run_isolated(&subject.loaded(&case.scenario), seed);
    let kept =
        last.violations.iter().find(|v| v.invariant == invariant).expect("the minimal case still fails");
    let file = config.out_dir.join(format!("{}-seed-{seed}.toml", subject.name()));
    let header = format!("# faultline::prop: the minimal case of {} failing `{invariant}`", subject.name());
    let text = shrink::to_toml_showing(&case.scenario, &header, &|g| subject.show(g));
    let written = std::fs::create_dir_all(&config.out_dir).and_then(|()| std::fs::write(&file, text));
    written.unwrap_or_else(|e| panic!("faultline::prop: cannot write {}: {e}", file.display()));
    Failure {
        pipeline: subject.name().to_string(),
        invariant,
        detail: kept.detail.clone(),
        replay: format!("{} run {} --seed {seed}", config.replay, file.display()),
        file,
        case,
        signature: Signature::of(&last.violations, &last.faults),
        caught_at,
        shrink_runs: shrunk.runs,
        draw_seed: config.seed,
    }
}

/// What a case is, for people: its input, settings and faults.
pub fn describe(case: &Case) -> String {
    let (w, e) = (&case.scenario.workload, &case.scenario.engine);
    let mut text = match w.given.is_empty() {
        true => format!(
            "  input: {} events over {} keys, {} partitions, {} producers; disorder {} ms, {} late per mille\n",
            w.events, w.keys, w.partitions, w.producers, w.disorder_ms, w.late_per_mille
        ),
        false => format!(
            "  input: {} given events, {} partitions, {} producers\n",
            w.events, w.partitions, w.producers
        ),
    };
    text += &format!(
        "  engine: {} workers, parallelism {}, {}, {} (replicas {}), {} checkpoints every {} ms, batches of {}\n",
        e.workers,
        e.parallelism,
        e.semantics.as_str(),
        e.recovery.as_str(),
        e.replicas,
        if e.checkpoint_mode == CheckpointModeName::Aligned { "aligned" } else { "unaligned" },
        e.checkpoint_interval_ms,
        e.batch_records
    );
    text += &format!("  seed {}, {} faults\n", case.seed, case.scenario.faults.scheduled.len());
    for f in &case.scenario.faults.scheduled {
        text += &format!("    {}\n", describe_fault(f));
    }
    text
}

fn describe_fault(f: &Fault) -> String {
    let peer = f.peer.as_ref().map_or(String::new(), |p| format!(" ↔ {p}"));
    let mut text = format!("{} ms: {} {} {}{peer}", f.at_ms, f.class.as_str(), f.action.as_str(), f.target);
    if let Some(ms) = f.duration_ms {
        text += &format!(" for {ms} ms");
    }
    if let Some(ms) = f.restart_after_ms {
        text += &format!(", restarted {ms} ms later");
    }
    if f.mid_checkpoint {
        text += ", once a checkpoint is in flight";
    }
    text
}

/// The input a case draws: its events from the user's strategy (`given`), or its shape for
/// the pipeline's generator.
#[derive(Clone, Debug)]
struct InputDraw {
    given: Vec<Given>,
    events: u64,
    keys: u64,
    partitions: u32,
    producers: u32,
    disorder_ms: u64,
    late_per_mille: u32,
}

/// The engine settings a case draws; each index picks from a list whose first entry is the
/// subject's own, so shrinking leads back to it.
#[derive(Clone, Debug)]
struct EngineDraw {
    workers: u32,
    parallelism: u32,
    checkpoint: usize,
    unaligned: bool,
    batch_records: usize,
    semantics: usize,
    recovery: usize,
    replicas: u32,
}

/// One fault a case draws, in shares: its class, action and target by index, its time and
/// length in thousandths of their ranges.
#[derive(Clone, Debug)]
struct FaultDraw {
    class: usize,
    action: usize,
    target: usize,
    at: u64,
    length: u64,
    one_way: bool,
    mid_checkpoint: bool,
}

/// The strategy of a subject's cases.
fn strategy(subject: &Subject, config: &Config) -> impl Strategy<Value = Case> {
    let base = subject.base();
    let w = &base.workload;
    let least = (w.events / 20).clamp(1, 200).min(w.events);
    let given = match &subject.input {
        Some(input) => input.strategy.clone(),
        None => Just(Vec::new()).boxed(),
    };
    let input = (
        given,
        least..=w.events,
        1..=w.keys.max(1),
        1..=w.partitions,
        1..=w.producers,
        0..=w.disorder_ms,
        0..=w.late_per_mille,
    )
        .prop_map(|(given, events, keys, partitions, producers, disorder_ms, late_per_mille)| {
            InputDraw { given, events, keys, partitions, producers, disorder_ms, late_per_mille }
        });
    let engine =
        (1..=4u32, 1..=4u32, 0..4usize, any::<bool>(), 64..=1024usize, 0..4usize, 0..3usize, 1..=2u32)
            .prop_map(|t| EngineDraw {
                workers: t.0,
                parallelism: t.1,
                checkpoint: t.2,
                unaligned: t.3,
                batch_records: t.4,
                semantics: t.5,
                recovery: t.6,
                replicas: t.7,
            });
    let fault = (
        0..64usize,
        0..64usize,
        0..64usize,
        0..=1000u64,
        0..=1000u64,
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(class, action, target, at, length, one_way, mid_checkpoint)| FaultDraw {
            class,
            action,
            target,
            at,
            length,
            one_way,
            mid_checkpoint,
        });
    let faults = vec(fault, 0..=config.faults);
    let (subject, classes) = (subject.clone(), config.classes.clone());
    (input, engine, faults, any::<u64>()).prop_map(move |(input, engine, faults, seed)| {
        let scenario = settle(&subject, &base, &input, &engine);
        let scenario = with_faults(scenario, &subject.loaded.scenario, &classes, &faults);
        Case { scenario, seed }
    })
}

/// The base with each drawn setting that validation accepts, in order.
fn settle(subject: &Subject, base: &Scenario, input: &InputDraw, e: &EngineDraw) -> Scenario {
    let semantics = [
        base.engine.semantics,
        SemanticsName::ExactlyOnce,
        SemanticsName::AtLeastOnce,
        SemanticsName::AtMostOnce,
    ][e.semantics % 4];
    let recovery =
        [RecoveryName::Rollback, RecoveryName::PassiveReplication, RecoveryName::ActiveReplication]
            [e.recovery % 3];
    let interval = base.engine.checkpoint_interval_ms;
    let checkpoint = [interval, interval / 2, interval * 2, interval / 5][e.checkpoint % 4].max(1);
    let edits: [&dyn Fn(&mut Scenario); 8] = [
        &|s| match input.given.is_empty() {
            true => {
                s.workload.events = input.events;
                s.workload.keys = input.keys;
            }
            false => {
                s.workload.events = input.given.len() as u64;
                s.workload.given = input.given.clone();
            }
        },
        &|s| s.workload.partitions = input.partitions,
        &|s| s.workload.producers = input.producers,
        &|s| {
            s.workload.disorder_ms = input.disorder_ms;
            s.workload.late_per_mille = input.late_per_mille;
        },
        &|s| {
            s.engine.workers = e.workers;
            s.engine.parallelism = e.parallelism.min(e.workers);
        },
        &|s| {
            s.engine.checkpoint_interval_ms = checkpoint;
            s.engine.batch_records = e.batch_records;
            if e.unaligned {
                s.engine.checkpoint_mode = CheckpointModeName::Unaligned;
            }
        },
        &|s| s.engine.semantics = semantics,
        &|s| {
            s.engine.recovery = recovery;
            s.engine.replicas = e.replicas.min(s.engine.workers.saturating_sub(1)).max(1);
        },
    ];
    let registry = &subject.loaded.registry;
    let mut scenario = base.clone();
    for edit in edits {
        let mut candidate = scenario.clone();
        edit(&mut candidate);
        if scenario::validate(&candidate, registry).is_ok() {
            scenario = candidate;
        }
    }
    assert!(scenario::validate(&scenario, registry).is_ok(), "a settled case is valid");
    assert_eq!(scenario.workload.given, input.given, "a case runs the input its strategy drew");
    scenario
}

/// `scenario` with the drawn faults, placed on its cluster and in its input's span, their
/// lengths from `subject`'s `[faults.random]` ranges (or the defaults).
fn with_faults(
    mut scenario: Scenario,
    subject: &Scenario,
    classes: &[FaultClass],
    draws: &[FaultDraw],
) -> Scenario {
    let cluster = crate::world::shape(&scenario);
    let span_ms = scenario.workload.events * 1000 / scenario.workload.rate_per_s.max(1);
    let random = subject.faults.random.as_ref();
    let restart = random.map_or_else(fault_plan::default_restart_after_ms, |r| r.restart_after_ms);
    let duration = random.map_or_else(fault_plan::default_duration_ms, |r| r.duration_ms);
    let loss = random.map_or_else(fault_plan::default_loss_rate, |r| r.loss_rate);
    let latency = random.map_or_else(fault_plan::default_latency_ms, |r| r.latency_ms);
    let share = |[lo, hi]: [u64; 2], k: u64| lo + (hi - lo) * k / 1000;
    for d in draws {
        let class = classes[d.class % classes.len()];
        let actions = actions_of(class);
        let action = actions[d.action % actions.len()];
        let targets = targets_of(class, &cluster);
        let (target, peer) = targets[d.target % targets.len()];
        let mut fault = Fault {
            at_ms: span_ms * d.at / 1000,
            class,
            target: target.name(),
            action,
            duration_ms: action.is_timed().then(|| share(duration, d.length).max(1)),
            restart_after_ms: (action == FaultAction::Crash).then(|| share(restart, d.length).max(1)),
            peer: peer.map(|p| p.name()),
            one_way: action == FaultAction::Partition && d.one_way,
            loss_rate: (action == FaultAction::Loss)
                .then(|| loss[0] + (loss[1] - loss[0]) * d.length as f64 / 1000.0),
            latency_ms: (action == FaultAction::Latency).then(|| share(latency, d.length).max(1)),
            mid_checkpoint: d.mid_checkpoint,
        };
        if fault.loss_rate.is_some_and(|r| r <= 0.0 || r >= 1.0) {
            fault.loss_rate = Some(0.5);
        }
        scenario.faults.scheduled.push(fault);
    }
    scenario.faults.scheduled.sort_by_key(|f| f.at_ms);
    scenario
}

#[cfg(test)]
mod tests {
    use faultline_engine::operators::builtin::Synthetic;
    use proptest::strategy::ValueTree;

    use crate::tape::{Tape, Taped};

    use super::*;

    fn all_faults() -> Subject {
        Subject::from_file("../scenarios/all-faults.toml", crate::builtins::registry())
    }

    fn draws(seed: u64, n: usize) -> Vec<Case> {
        draws_of(&all_faults(), seed, n)
    }

    fn draws_of(subject: &Subject, seed: u64, n: usize) -> Vec<Case> {
        let strategy = strategy(subject, &Config::default().seed(seed));
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let mut runner =
            TestRunner::new_with_rng(Runner::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
        (0..n).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
    }

    #[test]
    fn every_drawn_case_is_valid_and_its_faults_fall_in_its_input_span() {
        let registry = crate::builtins::registry();
        let cases = draws(1, 200);
        for case in &cases {
            let s = &case.scenario;
            assert_eq!(scenario::validate(s, &registry), Ok(()), "{}", describe(case));
            let span_ms = s.workload.events * 1000 / s.workload.rate_per_s;
            assert!(s.faults.scheduled.iter().all(|f| f.at_ms <= span_ms), "{}", describe(case));
            assert!(s.faults.scheduled.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            assert!(s.faults.scheduled.len() <= 4 && s.faults.random.is_none());
            assert!(!s.checks.require_effective_fault && !s.checks.require_recovery);
        }
        let varied =
            |f: fn(&Case) -> String| cases.iter().map(f).collect::<std::collections::BTreeSet<_>>().len();
        assert!(varied(|c| c.scenario.engine.semantics.as_str().into()) >= 3, "semantics vary");
        assert!(varied(|c| c.scenario.engine.recovery.as_str().into()) >= 2, "recovery varies");
        assert!(varied(|c| c.scenario.engine.workers.to_string()) >= 3, "workers vary");
        let classes: std::collections::BTreeSet<&str> =
            cases.iter().flat_map(|c| &c.scenario.faults.scheduled).map(|f| f.class.as_str()).collect();
        assert_eq!(classes.len(), 7, "every class is drawn: {classes:?}");
    }

    #[test]
    fn the_same_seed_draws_the_same_cases_and_another_seed_others() {
        assert_eq!(draws(7, 20), draws(7, 20));
        assert_ne!(draws(7, 20), draws(8, 20));
    }

    /// A user's own input: synthetic events of a few keys, in the order drawn.
    fn users_input() -> Subject {
        let values = vec((0..5u64, -50..50i64), 1..40).prop_map(|draws| {
            let event =
                |(id, (key, value)): (usize, (u64, i64))| (key, Synthetic { id: id as u64, kind: 0, value });
            draws.into_iter().enumerate().map(event).collect::<Vec<_>>()
        });
        all_faults().input(values, |(key, s): &(u64, Synthetic)| (*key, s.id * 10))
    }

    #[test]
    fn a_users_input_is_what_each_case_runs_and_writes() {
        let registry = crate::builtins::registry();
        let cases = draws_of(&users_input(), 3, 40);
        for case in &cases {
            let w = &case.scenario.workload;
            assert!(!w.given.is_empty() && w.events == w.given.len() as u64, "{}", describe(case));
            assert_eq!((w.disorder_ms, w.late_per_mille), (0, 0), "given events keep their own times");
            assert_eq!(scenario::validate(&case.scenario, &registry), Ok(()), "{}", describe(case));
            assert!(describe(case).contains(" given events"), "{}", describe(case));
        }
        assert!(
            cases.iter().map(|c| c.scenario.workload.events).collect::<std::collections::BTreeSet<_>>().len()
                > 5
        );
        // The written file replays the same input.
        let case = &cases[0];
        let text = shrink::to_toml_showing(&case.scenario, "# a case", &|g| users_input().show(g));
        assert!(text.contains("# 0: (0, Synthetic {") || text.contains("Synthetic { id: 0"), "{text}");
        let loaded =
            scenario::load_str("case.toml", &text, &[], Arc::new(registry)).expect("the written case loads");
        assert_eq!(loaded.scenario, case.scenario);
    }

    #[test]
    fn a_users_input_reaches_the_sink() {
        let subject = users_input();
        let case = draws_of(&subject, 5, 1).remove(0);
        let fault_free = Scenario { faults: fault_plan::FaultPlan::default(), ..case.scenario.clone() };
        let record = runner::run_isolated(&subject.loaded(&fault_free), case.seed);
        assert_eq!(record.verdict, "pass", "{:?}", record.violations);
        let given = fault_free.workload.given.len() as u64;
        let inputs = crate::checker::expected::inputs(
            &crate::world::workload_spec(&fault_free, case.seed),
            &Taped {
                inner: subject.loaded.pipeline() as Arc<dyn faultline_engine::plugin::Dataflow>,
                tape: Tape::of_run(
                    crate::world::workload_spec(&fault_free, case.seed),
                    &fault_free.workload.given,
                ),
            },
        );
        assert_eq!(inputs.len() as u64, given, "the run's input is the given events");
        let kept = inputs.iter().filter(|i| subject.loaded.pipeline().keeps(i)).count() as u64;
        assert_eq!(
            (record.output.expected, record.output.committed),
            (kept, kept),
            "an aggregate per kept event"
        );
        assert!(kept > 0);
    }
}
