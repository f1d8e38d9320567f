//! faultline's self-test: `prop` catches each planted mistake within 256 cases, shrinks it to
//! at most 2 faults and 200 input events, and the scenario file it writes replays the same
//! failure through the command line (`planted-bugs run FILE --seed N`).

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::prop::{self, Config, Failure};
use planted_bugs::Bug;

fn out_dir(bug: Bug) -> PathBuf {
    std::env::temp_dir().join(format!("faultline-planted-{}-{}", bug.name(), std::process::id()))
}

/// Runs the property on `bug`'s pipeline; it must fail, small.
fn caught(bug: Bug) -> Failure {
    let dir = out_dir(bug);
    let config = Config::default().cases(256).out_dir(&dir).replay_with("cargo run -p planted-bugs --");
    let failure = *prop::run(&bug.subject(), &config).expect_err("the planted mistake is caught");
    eprintln!("{failure}");
    let (faults, events) =
        (failure.case.scenario.faults.scheduled.len(), failure.case.scenario.workload.events);
    assert!(faults <= 2, "{}: {faults} faults left", bug.name());
    assert!(events <= 200, "{}: {events} events left", bug.name());
    assert!(failure.caught_at <= 256, "caught within the 256 cases");
    failure
}

/// `planted-bugs run FILE --seed N --json` fails with the same invariant.
fn replays(failure: &Failure) {
    let out = Command::new(env!("CARGO_BIN_EXE_planted-bugs"))
        .args([
            "run",
            &failure.file.display().to_string(),
            "--seed",
            &failure.case.seed.to_string(),
            "--json",
        ])
        .output()
        .expect("the command line runs");
    assert_eq!(out.status.code(), Some(1), "the replay fails: {}", String::from_utf8_lossy(&out.stderr));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).expect("run --json prints a record");
    let invariants: Vec<&str> =
        record["violations"].as_array().unwrap().iter().map(|v| v["invariant"].as_str().unwrap()).collect();
    assert!(invariants.contains(&failure.invariant.as_str()), "{invariants:?} holds {}", failure.invariant);
}

fn check(bug: Bug, invariants: &[&str]) {
    let failure = caught(bug);
    assert!(invariants.contains(&failure.invariant.as_str()), "{}: {}", bug.name(), failure.invariant);
    replays(&failure);
    _ = std::fs::remove_dir_all(Path::new(&out_dir(bug)));
}

#[test]
fn state_outside_managed_state_is_caught() {
    check(Bug::FieldState, &["delivery-wrong"]);
}

#[test]
fn output_depending_on_arrival_order_is_caught() {
    check(Bug::ArrivalOrder, &["delivery-wrong"]);
}

#[test]
fn a_timer_not_set_again_after_a_restore_is_caught() {
    check(Bug::TimerRestore, &["delivery-lost"]);
}

#[test]
fn iteration_over_a_hashmap_is_caught() {
    check(Bug::HashMapOrder, &["delivery-wrong"]);
}

#[test]
fn a_nondeterministic_output_id_is_caught() {
    check(Bug::RandomId, &["delivery-lost", "delivery-duplicate", "delivery-wrong"]);
}
