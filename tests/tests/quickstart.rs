//! The quickstart scenario end to end: every seed commits exactly the reference output.

use faultline_tests::{check, scenario, Expect};

#[test]
fn quickstart_passes_on_several_seeds() {
    for seed in 1..=6 {
        let record = check(&scenario("quickstart"), seed, Expect::ExactPass);
        assert_eq!(record.events_in, 20_000);
        assert_eq!(record.semantics, "exactly-once");
        assert!(record.faults.is_empty());
    }
}

#[test]
fn every_semantics_passes_without_faults() {
    for semantics in ["at-most-once", "at-least-once", "exactly-once"] {
        let set = format!("engine.semantics={semantics}");
        let (code, record) = faultline_tests::run_json(&scenario("quickstart"), 2, &[&set]);
        assert_eq!(code, 0, "{semantics}: {:?}", record.violations);
        assert_eq!(record.semantics, semantics);
    }
}

#[test]
fn wider_clusters_pass() {
    let sets = [
        "engine.workers=4",
        "engine.parallelism=3",
        "engine.brokers=5",
        "engine.replication_factor=2",
        "workload.partitions=7",
        "workload.producers=3",
        "engine.batch_records=64",
    ];
    let (code, record) = faultline_tests::run_json(&scenario("quickstart"), 9, &sets);
    assert_eq!(code, 0, "{:?}", record.violations);
    assert_eq!(record.output.committed, record.output.expected);
}

#[test]
fn human_output_names_seed_first_and_verdict_last() {
    let outcome = faultline_tests::faultline(&["run", &scenario("quickstart"), "--seed", "4"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(outcome.stdout.starts_with("SEED=4 "), "{}", outcome.stdout);
    assert_eq!(outcome.stdout.lines().last(), Some("PASS"));
}

#[test]
fn list_names_every_scenario() {
    let outcome = faultline_tests::faultline(&["list", "--dir", "../scenarios"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(outcome.stdout.contains("quickstart.toml"));
}
