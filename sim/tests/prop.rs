//! `prop::check` on every built-in operator: each holds under drawn inputs, faults and
//! settings, and a planted mistake fails, shrinks to a small case, and names its signature.
//!
//! CI runs 64 cases of each on its scenario (a case draws up to the scenario's events, keys,
//! partitions and faults); `FAULTLINE_PROP_LONG=1` runs 1024. `PROPTEST_CASES` and
//! `FAULTLINE_SEED` choose the count and the draws over both.

use std::path::Path;
use std::sync::Arc;

use faultline_sim::builtins::registry;
use faultline_sim::prop::{self, Config, Subject};

fn long() -> bool {
    std::env::var_os("FAULTLINE_PROP_LONG").is_some_and(|v| v != "0")
}

/// The scenario `file` with `sets`.
fn subject(file: &str, sets: &[&str]) -> Subject {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(file);
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    match faultline_sim::scenario::load_with(&path, &sets, Arc::new(registry())) {
        Ok(loaded) => Subject::from_loaded(loaded),
        Err(e) => panic!("{e}"),
    }
}

fn holds(subject: Subject) {
    let cases = if long() { 1024 } else { 64 };
    let dir = std::env::temp_dir().join(format!("faultline-prop-{}-{}", subject.name(), std::process::id()));
    prop::check(subject, Config::default().cases(cases).out_dir(dir));
}

#[test]
fn running_aggregate_holds() {
    holds(subject("all-faults.toml", &[]));
}

#[test]
fn tumbling_windows_hold() {
    holds(subject("windows.toml", &[]));
}

#[test]
fn sliding_windows_hold() {
    holds(subject("windows.toml", &["pipeline.window=sliding", "pipeline.slide_ms=50"]));
}

#[test]
fn session_windows_hold() {
    holds(subject("windows.toml", &["pipeline.window=session", "pipeline.gap_ms=30", "pipeline.size_ms="]));
}

#[test]
fn count_windows_hold() {
    let tumbling = ["pipeline.window=count-tumbling", "pipeline.size=7", "pipeline.size_ms="];
    holds(subject("windows.toml", &tumbling));
    let sliding =
        ["pipeline.window=count-sliding", "pipeline.size=6", "pipeline.slide=3", "pipeline.size_ms="];
    holds(subject("windows.toml", &sliding));
}

#[test]
fn late_data_windows_hold() {
    holds(subject("late-data.toml", &[]));
}

#[test]
fn top_n_holds() {
    holds(subject("top-n.toml", &[]));
}

#[test]
fn window_join_holds() {
    holds(subject("window-join.toml", &[]));
}

#[test]
fn interval_join_holds() {
    holds(subject("interval-join.toml", &[]));
}

#[test]
fn nexmark_queries_hold() {
    for q in [0, 1, 2, 3, 4, 5, 7, 8] {
        holds(subject(&format!("nexmark-q{q}.toml"), &[]));
    }
}

/// A plain sink under exactly-once duplicates what a recovery replays: the property fails,
/// and the minimal case keeps few faults and replays to the same invariant.
#[test]
fn a_plain_sink_is_caught_and_shrunk() {
    let subject = subject("quickstart.toml", &["engine.sink=plain"]);
    let dir = std::env::temp_dir().join(format!("faultline-prop-plain-{}", std::process::id()));
    let failure =
        prop::run(&subject, &Config::default().cases(64).out_dir(&dir)).expect_err("a plain sink duplicates");
    eprintln!("{failure}");
    assert_eq!(failure.invariant, "delivery-duplicate");
    assert_eq!(failure.signature.stage, "output");
    assert!(!failure.signature.classes.is_empty(), "a fault made the duplicate: {failure}");
    assert!(failure.case.scenario.faults.scheduled.len() <= 2, "{failure}");
    assert!(failure.case.scenario.workload.events <= 200, "{failure}");
    _ = std::fs::remove_dir_all(&dir);
}
