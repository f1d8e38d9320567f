//! faultline's self-test: `prop` catches each planted mistake within 256 cases, shrinks it to
//! at most 2 faults and 200 input events, and the scenario file it writes replays the same
//! failure through the command line (`planted-bugs run FILE --seed N`).

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::prop::proptest::collection::vec;
use faultline::prop::proptest::prelude::*;
use faultline::prop::{self, Config, Failure, Subject};
use planted_bugs::{Bug, Reading};

fn out_dir(bug: Bug) -> PathBuf {
    std::env::temp_dir().join(format!("faultline-planted-{}-{}", bug.name(), std::process::id()))
}

/// Runs the property on `bug`'s pipeline; it must fail, small.
fn caught(bug: Bug) -> Failure {
    caught_in(bug, bug.subject())
}

/// Runs the property on `subject`, `bug`'s pipeline; it must fail, small.
fn caught_in(bug: Bug, subject: Subject) -> Failure {
    let dir = out_dir(bug);
    let config = Config::default().cases(256).out_dir(&dir).replay_with("cargo run -p planted-bugs --");
    let failure = *prop::run(&subject, &config).expect_err("the planted mistake is caught");
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

/// A user's own input: a few sensors at one site, readings 10 ms of event time apart.
fn readings() -> impl Strategy<Value = Vec<Reading>> {
    vec((0..3u8, 0..100i64), 1..400).prop_map(|draws| {
        let reading = |(i, (sensor, value)): (usize, (u8, i64))| Reading {
            sensor: format!("sensor-{sensor}"),
            site: "site-0".into(),
            value,
            at_ms: i as u64 * 10,
        };
        draws.into_iter().enumerate().map(reading).collect()
    })
}

#[test]
fn state_outside_managed_state_is_caught_from_a_users_own_input() {
    let bug = Bug::FieldState;
    let subject = bug.subject().input(readings(), |r: &Reading| (r.sensor.clone(), r.at_ms));
    let failure = caught_in(bug, subject);
    assert_eq!(failure.invariant, "delivery-wrong");
    let given = &failure.case.scenario.workload.given;
    assert!(!given.is_empty(), "the case ran the user's input");
    // The file lists the events the run read, each under its value as the user's type.
    let text = std::fs::read_to_string(&failure.file).expect("the scenario was written");
    let listed = text.matches("[[workload.given]]").count() as u64;
    assert_eq!(listed, failure.case.scenario.workload.events, "{text}");
    assert!(text.contains("# \"sensor-") && text.contains("Reading { sensor:"), "{text}");
    replays(&failure);
    _ = std::fs::remove_dir_all(Path::new(&out_dir(bug)));
}
