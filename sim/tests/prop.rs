//! `prop::check` on the built-in pipelines: each holds under drawn inputs, faults and settings,
//! and a planted mistake fails, shrinks to a small case, and replays from the file it wrote.

use std::path::Path;

use faultline_sim::builtins::registry;
use faultline_sim::prop::{self, Config, Subject};

fn subject(file: &str) -> Subject {
    Subject::from_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(file), registry())
}

#[test]
fn running_aggregate_holds() {
    prop::check(subject("quickstart.toml"), Config::default().cases(16));
}

/// A plain sink under exactly-once duplicates what a recovery replays: the property fails,
/// and the minimal case keeps few faults and replays to the same invariant.
#[test]
fn a_plain_sink_is_caught_and_shrunk() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.toml");
    let sets = ["engine.sink=plain".to_string()];
    let loaded = faultline_sim::scenario::load(&path, &sets).unwrap();
    let subject = Subject::from_loaded(loaded);
    let dir = std::env::temp_dir().join(format!("faultline-prop-{}", std::process::id()));
    let failure =
        prop::run(&subject, &Config::default().cases(64).out_dir(&dir)).expect_err("a plain sink duplicates");
    eprintln!("{failure}");
    assert_eq!(failure.invariant, "delivery-duplicate");
    assert!(failure.case.scenario.faults.scheduled.len() <= 2, "{failure}");
    assert!(failure.case.scenario.workload.events <= 200, "{failure}");
    _ = std::fs::remove_dir_all(&dir);
}
