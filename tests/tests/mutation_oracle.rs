//! The oracle cargo-mutants judges the engine's protocol modules by (`scripts/mutation-test`,
//! `.cargo/mutants.toml`): a swarm over the scenarios that drive the broker, the manager, the
//! checkpoint coordinator, the sink and the stages through every failure class, a few of them
//! again under at-most-once, and every seed `regressions.rs` replays. A mutant is caught when
//! some seed fails: a checker invariant, a panic, or a stall past the liveness bound. The
//! sweeps run with `--fail-fast` and each phase stops the test at its first failure, so a
//! caught mutant costs its first failing seed, not the whole swarm.
//!
//! A passing mutant's swarm takes a minute, which CI's test run does not pay: the test runs only when
//! `FAULTLINE_MUTATION_ORACLE` is set, to the seeds per scenario (`1` means the default).

use faultline_reports::SweepRecord;
use faultline_tests::{faultline, run_json, scenario};

/// The scenarios the oracle sweeps: the drawn configurations of `swarm` (semantics, sinks,
/// recovery approaches), each failure class on its own, and the protocols that only some
/// scenarios reach (leases under a lagging store, zombies, standbys, overlapping failovers,
/// event time).
pub const SCENARIOS: [&str; 23] = [
    "swarm",
    "all-faults",
    "fault-stream",
    "broker-lost",
    "isr-churn",
    "broker-partitioned",
    "fault-network",
    "fault-processor",
    "fault-sink",
    "fault-sink-link",
    "checkpoint-timeout",
    "fault-manager",
    "fault-driver",
    "driver-restart-job",
    "manager-pause",
    "manager-stall",
    "manager-store-lag",
    "zombie-worker",
    "recovery-overlap",
    "replication-active",
    "replication-passive",
    "replication-overlap",
    "late-data",
];

/// Scenarios the oracle runs again under at-most-once (with the plain sink it needs): a swarm
/// draws at-most-once for one seed in six, and only a restart reads back the offsets its
/// sources claim, so `swarm` alone leaves the claims untested.
pub const AT_MOST_ONCE: [&str; 3] = ["processor-crash", "zombie-worker", "fault-processor"];

/// The overrides of the at-most-once run.
const AT_MOST_ONCE_SETS: [&str; 4] = ["--set", "engine.semantics=at-most-once", "--set", "engine.sink=plain"];

/// Seeds per scenario when the variable says `1`: a mutant's oracle then takes about half a
/// minute, so the 744 mutants take about eight hours. Windows rarer than this are left to a
/// second pass over the missed mutants with more seeds.
const DEFAULT_SEEDS: u64 = 20;

/// The seeds per scenario the environment asks for, or `None`: the oracle is off.
fn seeds() -> Option<u64> {
    let value = std::env::var("FAULTLINE_MUTATION_ORACLE").ok()?;
    let seeds: u64 = value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("FAULTLINE_MUTATION_ORACLE={value}: give a number of seeds"));
    assert!(seeds > 0, "FAULTLINE_MUTATION_ORACLE=0: give at least one seed");
    Some(if seeds == 1 { DEFAULT_SEEDS } else { seeds })
}

/// Sweeps `scenarios` with `sets`; the failing scenarios, each with its failed seeds and
/// invariants.
fn failures(scenarios: &[&str], sets: &[&str], seeds: u64) -> Vec<String> {
    let paths: Vec<String> = scenarios.iter().map(|s| scenario(s)).collect();
    let seeds = seeds.to_string();
    let mut args: Vec<&str> = vec!["swarm"];
    args.extend(paths.iter().map(String::as_str));
    args.extend(sets);
    // A mutant is caught at its first failing seed: nothing after it is run.
    args.extend(["--seeds", &seeds, "--jobs", "2", "--json", "--fail-fast"]);
    let outcome = faultline(&args);
    let record: SweepRecord = serde_json::from_str(outcome.stdout.trim())
        .unwrap_or_else(|e| panic!("--json printed no sweep record ({e}): {outcome:?}"));
    let passed = record.scenarios.iter().all(|r| r.failed.is_empty());
    assert!(record.scenarios.len() <= scenarios.len(), "{record:?}");
    assert!(!passed || record.scenarios.len() == scenarios.len(), "every scenario ran: {record:?}");
    let failing: Vec<String> = record
        .scenarios
        .iter()
        .filter(|r| !r.failed.is_empty())
        .map(|r| {
            format!(
                "{}: {} of {} seeds failed {:?}",
                r.scenario,
                r.failed.len(),
                r.seeds,
                r.failing_invariants
            )
        })
        .collect();
    assert!(!failing.is_empty() || outcome.code == 0, "{}", outcome.stderr);
    failing
}

/// The seeds `regressions.rs` replays, each `(scenario, seed)`: every one once found a real
/// bug, so a mutant that brings one back is caught whatever the swarm's seeds draw. Read from
/// the file itself, so that a new regression joins the oracle as it is written.
fn regression_seeds() -> Vec<(String, u64)> {
    const CALL: &str = "check(&scenario(\"";
    let seeds: Vec<(String, u64)> = include_str!("regressions.rs")
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find(CALL)? + CALL.len()..];
            let (name, rest) = rest.split_once("\"), ")?;
            let seed = rest.split_once(',')?.0.trim().parse().ok()?;
            Some((name.to_string(), seed))
        })
        .collect();
    let calls = include_str!("regressions.rs").matches(CALL).count();
    assert_eq!(seeds.len(), calls, "a regression call the oracle cannot read");
    assert!(!seeds.is_empty(), "no regression seeds found");
    seeds
}

/// The regression seeds that fail, with their invariants.
fn regression_failures() -> Vec<String> {
    let mut failing = Vec::new();
    for (name, seed) in regression_seeds() {
        let (code, record) = run_json(&scenario(&name), seed, &[]);
        if code != 0 {
            let invariants: Vec<&str> = record.violations.iter().map(|v| v.invariant.as_str()).collect();
            failing.push(format!("regression {name} seed {seed} failed {invariants:?}"));
        }
    }
    failing
}

#[test]
fn the_regression_seeds_are_all_read() {
    let seeds = regression_seeds();
    assert!(seeds.contains(&("driver-restart-job".to_string(), 1)), "{seeds:?}");
    assert!(seeds.contains(&("windows".to_string(), 5490)), "{seeds:?}");
}

#[test]
fn every_protocol_scenario_passes_its_seeds() {
    let Some(seeds) = seeds() else { return };
    let failing = failures(&SCENARIOS, &[], seeds);
    assert!(failing.is_empty(), "the engine failed the oracle:\n{}", failing.join("\n"));
    let failing = failures(&AT_MOST_ONCE, &AT_MOST_ONCE_SETS, seeds);
    assert!(failing.is_empty(), "the engine failed the oracle at most once:\n{}", failing.join("\n"));
    let failing = regression_failures();
    assert!(failing.is_empty(), "the engine failed a regression seed:\n{}", failing.join("\n"));
}
