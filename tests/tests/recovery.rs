//! Rollback recovery under processor faults, and what each delivery semantics promises.
//! Seed sweeps here are short; `faultline swarm` runs the long ones.

use faultline_reports::RunRecord;
use faultline_tests::{run_json, scenario};

fn runs(name: &str, seeds: std::ops::RangeInclusive<u64>, sets: &[&str]) -> Vec<(i32, RunRecord)> {
    seeds.map(|seed| run_json(&scenario(name), seed, sets)).collect()
}

#[test]
fn processor_crashes_recover_exactly_once() {
    for (code, r) in runs("processor-crash", 1..=8, &[]) {
        assert_eq!(code, 0, "seed {}: {:?}", r.seed, r.violations);
        assert!(r.faults.iter().any(|f| f.effective), "seed {}: no fault took effect", r.seed);
        assert!(!r.recoveries.is_empty(), "seed {}: no recovery", r.seed);
        let o = &r.output;
        assert_eq!((o.committed, o.lost, o.duplicates, o.wrong), (o.expected, 0, 0, 0), "seed {}", r.seed);
        for rec in &r.recoveries {
            assert!(rec.fault_at_ms <= rec.detected_at_ms && rec.detected_at_ms <= rec.recovered_at_ms);
        }
    }
}

#[test]
fn idempotent_sink_and_unaligned_checkpoints_recover_exactly_once() {
    for set in ["engine.sink=idempotent", "engine.checkpoint_mode=unaligned"] {
        for (code, r) in runs("processor-crash", 1..=4, &[set]) {
            assert_eq!(code, 0, "{set} seed {}: {:?}", r.seed, r.violations);
        }
    }
}

#[test]
fn at_least_once_loses_nothing_and_duplicates() {
    let runs = runs("processor-crash", 1..=6, &["engine.semantics=at-least-once", "engine.sink=plain"]);
    for (code, r) in &runs {
        assert_eq!(*code, 0, "seed {}: {:?}", r.seed, r.violations);
        assert_eq!(r.output.lost, 0, "seed {}", r.seed);
    }
    assert!(runs.iter().any(|(_, r)| r.output.duplicates > 0), "replays duplicate");
}

#[test]
fn at_most_once_duplicates_nothing_and_loses() {
    let runs = runs("processor-crash", 1..=6, &["engine.semantics=at-most-once", "engine.sink=plain"]);
    for (code, r) in &runs {
        assert_eq!(*code, 0, "seed {}: {:?}", r.seed, r.violations);
        assert_eq!(r.output.duplicates, 0, "seed {}", r.seed);
    }
    assert!(runs.iter().any(|(_, r)| r.output.lost > 0), "crashes lose in-flight input");
}

#[test]
fn exactly_once_with_a_plain_sink_is_caught() {
    let runs = runs("processor-crash", 1..=6, &["engine.sink=plain"]);
    let caught = runs
        .iter()
        .filter(|(code, r)| *code == 1 && r.violations.iter().any(|v| v.invariant == "delivery-duplicate"));
    assert!(caught.count() > 0, "a plain sink replays duplicates; the checker must see them");
}

#[test]
fn zombie_worker_is_fenced() {
    let runs = runs("zombie-worker", 1..=10, &[]);
    for (code, r) in &runs {
        assert_eq!(*code, 0, "seed {}: {:?}", r.seed, r.violations);
        assert_eq!(r.faults[0].action, "pause");
    }
    assert!(
        runs.iter().any(|(_, r)| r.fencing.sink_requests > 0),
        "some zombie reached the sink and was fenced"
    );
    assert!(runs.iter().all(|(_, r)| r.recoveries.len() == 1), "the pause is detected once");
}

#[test]
fn random_faults_are_drawn_from_the_seed() {
    let (_, a) = run_json(&scenario("processor-crash"), 21, &[]);
    let (_, b) = run_json(&scenario("processor-crash"), 21, &[]);
    let (_, c) = run_json(&scenario("processor-crash"), 22, &[]);
    assert_eq!(a.faults, b.faults);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_ne!(a.faults, c.faults);
}

#[test]
fn a_run_whose_faults_all_missed_fails() {
    // Crash a worker long after the job finished: the fault never runs, so nothing was tested.
    let sets = ["faults.random.window_ms=[50000, 50000]", "checks.liveness_timeout_ms=1000"];
    let (code, r) = run_json(&scenario("processor-crash"), 1, &sets);
    assert_eq!(code, 1);
    assert!(r.violations.iter().any(|v| v.invariant == "no-effective-fault"), "{:?}", r.violations);
}

#[test]
fn checkpoints_complete_and_are_counted() {
    let (code, r) = run_json(&scenario("quickstart"), 3, &["engine.checkpoint_interval_ms=50"]);
    assert_eq!(code, 0, "{:?}", r.violations);
    assert!(r.checkpoints.completed >= 10, "{:?}", r.checkpoints);
    let (_, off) = run_json(&scenario("quickstart"), 3, &["engine.checkpoint_interval_ms=0"]);
    assert_eq!(off.checkpoints.completed, 1, "only the final checkpoint");
}

#[test]
fn a_long_input_has_until_its_last_event_before_the_liveness_bound() {
    // 8 s of input, crashes in its first second, 2 s to finish: the bound is 2 s after the
    // input's last event is due, not 2 s after the last crash healed.
    let sets = ["workload.rate_per_s=2500", "checks.liveness_timeout_ms=2000"];
    let (code, r) = run_json(&scenario("processor-crash"), 5, &sets);
    assert_eq!(code, 0, "{:?}", r.violations);
    assert!(r.sim_time_ms > 8000, "finished at {} ms", r.sim_time_ms);
}
