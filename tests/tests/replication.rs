//! Replicated state: passive standbys and active secondaries take over lost primaries with no
//! rollback for up to k = 2 simultaneous worker crashes, fall back to the latest checkpoint
//! beyond that, and a standby promoted with uncommitted state is caught. Sweeps here are short;
//! `faultline swarm scenarios/replication-*.toml --seeds 200` runs the long ones.

use faultline_reports::RunRecord;
use faultline_tests::{faultline, run_json, scenario};

/// Runs `seeds`, asserting each passes exactly once.
fn passing(name: &str, seeds: std::ops::RangeInclusive<u64>, sets: &[&str]) -> Vec<RunRecord> {
    let mut records = Vec::new();
    for seed in seeds {
        let (code, r) = run_json(&scenario(name), seed, sets);
        assert_eq!(code, 0, "{name} seed {seed}: {:?}", r.violations);
        let o = &r.output;
        assert_eq!((o.committed, o.lost, o.duplicates, o.wrong), (o.expected, 0, 0, 0), "{name} seed {seed}");
        records.push(r);
    }
    records
}

fn kinds(r: &RunRecord) -> Vec<&str> {
    r.recoveries.iter().map(|x| x.kind.as_str()).collect()
}

/// Up to k crashes at once: every recovery is a failover, some copy was promoted, and output
/// resumed with a measured time.
fn fails_over_without_rollback(name: &str) {
    let records = passing(name, 1..=6, &[]);
    for r in &records {
        assert!(!r.recoveries.is_empty(), "seed {}: no recovery", r.seed);
        assert!(kinds(r).iter().all(|&k| k == "failover"), "seed {}: {:?}", r.seed, kinds(r));
    }
    let promoted: Vec<_> = records.iter().flat_map(|r| &r.recoveries).filter(|x| x.promoted > 0).collect();
    assert!(!promoted.is_empty(), "six seeds and no promotion");
    assert!(promoted.iter().any(|x| x.time_to_resume_ms.is_some()), "no promotion's output resumed");
}

#[test]
fn passive_standbys_take_over_without_rollback() {
    fails_over_without_rollback("replication-passive");
}

#[test]
fn active_secondaries_take_over_without_rollback() {
    fails_over_without_rollback("replication-active");
}

#[test]
fn k_plus_one_crashes_fall_back_to_the_latest_checkpoint() {
    for name in ["replication-passive", "replication-active"] {
        for r in passing(name, 1..=3, &["faults.random.simultaneous=[3, 3]"]) {
            assert!(kinds(&r).contains(&"rollback"), "{name} seed {}: {:?}", r.seed, kinds(&r));
        }
    }
}

#[test]
fn a_promoted_standby_keeping_uncommitted_state_is_caught() {
    let planted = ["engine.test_keep_uncommitted=true"];
    let mut caught = 0;
    for seed in 1..=6 {
        let (code, r) = run_json(&scenario("replication-passive"), seed, &planted);
        if code != 0 {
            let names: Vec<&str> = r.violations.iter().map(|v| v.invariant.as_str()).collect();
            assert!(names.contains(&"delivery-lost"), "seed {seed}: {names:?}");
            caught += 1;
        }
    }
    assert!(caught >= 4, "the planted stale standby was caught in {caught} of 6 seeds");
    passing("replication-passive", 1..=6, &[]);
}

#[test]
fn every_approach_recovers_the_compared_crash() {
    for recovery in ["rollback", "passive-replication", "active-replication"] {
        let set = format!("engine.recovery={recovery}");
        let want = if recovery == "rollback" { "rollback" } else { "failover" };
        for r in passing("recovery-compare", 1..=2, &[&set]) {
            // A rollback may be superseded before it deployed (a subtask failed first, then the
            // worker was declared dead): the one that got the job going is the last.
            let done: Vec<_> = r.recoveries.iter().filter(|c| !c.superseded).collect();
            let kinds: Vec<&str> = done.iter().map(|c| c.kind.as_str()).collect();
            assert_eq!(kinds, [want], "{recovery} seed {}", r.seed);
            assert!(done[0].time_to_resume_ms.is_some(), "{recovery} seed {}", r.seed);
            assert!(
                r.recoveries.iter().all(|c| c.superseded || c.kind == want),
                "{recovery} seed {}",
                r.seed
            );
        }
    }
}

#[test]
fn replicas_need_distinct_workers() {
    let outcome = faultline(&["run", "fixtures/bad/replicas-above-workers.toml", "--seed", "1"]);
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.contains("engine.replicas"), "{}", outcome.stderr);
}
