//! `faultline swarm` over several scenarios: files and directories, a row per scenario, a
//! wall-clock budget, overrides applied where they fit.

use faultline_reports::SweepRecord;
use faultline_tests::{faultline, scenario};

fn sweep(args: &[&str]) -> (i32, SweepRecord) {
    let outcome = faultline(&[&["swarm"], args, &["--json", "--jobs", "2"]].concat());
    let record = serde_json::from_str(outcome.stdout.trim())
        .unwrap_or_else(|e| panic!("--json printed no sweep record ({e}): {outcome:?}"));
    (outcome.code, record)
}

#[test]
fn several_scenarios_give_a_row_each() {
    let (code, record) = sweep(&[&scenario("quickstart"), &scenario("zombie-worker"), "--seeds", "3"]);
    assert_eq!(code, 0);
    let names: Vec<&str> = record.scenarios.iter().map(|r| r.scenario.as_str()).collect();
    assert_eq!(names, ["quickstart", "zombie-worker"]);
    assert_eq!((record.seeds, record.passed, record.failed), (6, 6, 0));
    assert!(record.scenarios.iter().all(|r| r.seeds == 3 && r.seeds_per_s > 0.0));
}

#[test]
fn overrides_skip_the_scenarios_they_do_not_fit() {
    let set = "engine.semantics=at-least-once";
    let (code, record) =
        sweep(&[&scenario("quickstart"), &scenario("nexmark-q0"), "--seeds", "1", "--set", set]);
    assert_eq!(code, 0);
    assert_eq!(record.scenarios.len(), 1);
    assert_eq!(record.skipped.len(), 1);
    assert!(record.skipped[0].path.ends_with("nexmark-q0.toml"), "{:?}", record.skipped);
    assert!(record.skipped[0].reason.contains("engine.semantics"), "{:?}", record.skipped);
}

#[test]
fn a_wall_clock_budget_bounds_the_sweep() {
    let (code, record) = sweep(&[&scenario("quickstart"), &scenario("windows"), "--minutes", "0.02"]);
    assert_eq!(code, 0);
    assert!(record.scenarios.iter().all(|r| r.seeds >= 1), "each scenario got a share: {record:?}");
    let capped = sweep(&[&scenario("quickstart"), &scenario("windows"), "--minutes", "5", "--seeds", "2"]).1;
    assert_eq!(capped.seeds, 4, "--seeds caps a budget with time to spare");
}

#[test]
fn a_sweep_needs_seeds_or_minutes() {
    let outcome = faultline(&["swarm", &scenario("quickstart"), &scenario("windows")]);
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.contains("--seeds N, --minutes M"), "{}", outcome.stderr);
}

/// `scenarios/swarm.toml` draws every entry's every choice (over the first 400 seeds), each
/// seed's draw is one validation accepts, and a run's record lists what it drew.
#[test]
fn the_swarm_scenario_draws_every_choice_of_every_entry() {
    let loaded = faultline_sim::scenario::load(scenario("swarm").as_ref(), &[]).unwrap();
    let mut seen: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for seed in 1..=400 {
        let drawn = faultline_sim::draw::for_seed(&loaded, seed).expect("a valid draw");
        for (entry, value) in drawn.values {
            seen.entry(entry).or_default().insert(value);
        }
    }
    for (entry, choices) in &loaded.scenario.swarm {
        let taken = seen.get(entry).map_or(0, |s| s.len());
        assert_eq!(taken, choices.len(), "{entry}: {:?}", seen.get(entry));
    }
    let (code, record) = faultline_tests::run_json(&scenario("swarm"), 2, &[]);
    assert_eq!(code, 0, "{:?}", record.violations);
    assert_eq!(record.drawn.len(), loaded.scenario.swarm.len(), "{:?}", record.drawn);
}

/// A sweep's summary tallies, per `[swarm]` entry, the seeds that drew each choice.
#[test]
fn a_sweep_tallies_the_choices_its_seeds_drew() {
    let loaded = faultline_sim::scenario::load(scenario("swarm").as_ref(), &[]).unwrap();
    let swarm = scenario("swarm");
    let outcome = faultline(&["swarm", &swarm, "--seeds", "4", "--from", "11", "--json", "--jobs", "2"]);
    let record: faultline_reports::SwarmRecord = serde_json::from_str(outcome.stdout.trim())
        .unwrap_or_else(|e| panic!("--json printed no swarm record ({e}): {outcome:?}"));
    assert_eq!(record.drawn.len(), loaded.scenario.swarm.len(), "{:?}", record.drawn);
    for (entry, choices) in &record.drawn {
        assert_eq!(choices.values().sum::<u64>(), 4, "{entry}: {choices:?}");
    }
}
