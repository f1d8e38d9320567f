//! Determinism: a seed is a run. The same seed gives the same trace hash, alone or in a swarm.

use faultline_tests::{faultline, run_json, scenario};

#[test]
fn same_seed_same_trace_hash() {
    let (_, a) = run_json(&scenario("quickstart"), 11, &[]);
    let (_, b) = run_json(&scenario("quickstart"), 11, &[]);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.sim_time_ms, b.sim_time_ms);
    let (_, c) = run_json(&scenario("quickstart"), 12, &[]);
    assert_ne!(a.trace_hash, c.trace_hash, "different seeds should schedule differently");
}

#[test]
fn check_determinism_flag_passes() {
    let outcome =
        faultline(&["run", &scenario("quickstart"), "--seed", "5", "--check-determinism", "--json"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
}

#[test]
fn swarm_runs_match_single_runs() {
    let loaded = faultline_sim::scenario::load(scenario("quickstart").as_ref(), &[]).unwrap();
    let (summary, runs) = faultline_sim::swarm::swarm(&loaded, 3, 4, 2, false);
    assert_eq!(summary.passed, 4);
    for run in runs {
        let (_, single) = run_json(&scenario("quickstart"), run.seed, &[]);
        assert_eq!(run.trace_hash, single.trace_hash, "seed {}", run.seed);
    }
}

#[test]
fn swarm_json_reports_every_seed() {
    let outcome = faultline(&["swarm", &scenario("quickstart"), "--seeds", "4", "--jobs", "2", "--json"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let summary: serde_json::Value = serde_json::from_str(outcome.stdout.trim()).unwrap();
    assert_eq!(summary["seeds"], 4);
    assert_eq!(summary["passed"], 4);
    assert_eq!(summary["failed"], serde_json::json!([]));
}

#[test]
fn replicated_failovers_are_deterministic() {
    for name in ["replication-passive", "replication-active"] {
        let outcome = faultline(&["run", &scenario(name), "--seed", "3", "--check-determinism", "--json"]);
        assert_eq!(outcome.code, 0, "{name}: {outcome:?}");
    }
}
