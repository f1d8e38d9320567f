//! The delivery checker catches planted bad histories: a run's committed output is corrupted
//! before judging, and the verdict must fail with the right classification.

use faultline_engine::record::OutputRecord;
use faultline_reports::RunRecord;
use faultline_sim::runner::{exit_code, run_seed_tampered};
use faultline_sim::scenario::load;
use faultline_tests::scenario;

fn tampered(sets: &[&str], tamper: impl FnOnce(&mut Vec<OutputRecord>)) -> RunRecord {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let loaded = load(scenario("quickstart").as_ref(), &sets).unwrap();
    run_seed_tampered(&loaded, 1, tamper)
}

fn invariants(record: &RunRecord) -> Vec<&str> {
    record.violations.iter().map(|v| v.invariant.as_str()).collect()
}

#[test]
fn a_lost_record_is_caught() {
    let record = tampered(&[], |out| _ = out.remove(100));
    assert_eq!(record.output.lost, 1);
    assert_eq!((record.output.duplicates, record.output.wrong), (0, 0));
    assert_eq!(invariants(&record), ["delivery-lost"]);
    assert_eq!(exit_code(&record), 1);
}

#[test]
fn a_duplicate_record_is_caught() {
    let record = tampered(&[], |out| out.push(out[7].clone()));
    assert_eq!(record.output.duplicates, 1);
    assert_eq!(invariants(&record), ["delivery-duplicate"]);
    assert_eq!(exit_code(&record), 1);
}

#[test]
fn a_wrong_record_is_caught() {
    let record = tampered(&[], |out| {
        let mut value = out[3].value.to_vec();
        *value.last_mut().expect("a value has bytes") ^= 1;
        out[3].value = value.into();
    });
    assert_eq!(record.output.wrong, 1);
    assert_eq!(record.output.lost, 0, "a wrong value is classified wrong, not lost as well");
    assert!(invariants(&record).contains(&"delivery-wrong"));
    assert_eq!(record.verdict, "fail");
}

#[test]
fn an_invented_record_is_wrong() {
    let record = tampered(&[], |out| {
        let mut fake = out[0].clone();
        fake.id.origin = faultline_engine::record::Origin::Input(faultline_engine::record::Cause {
            producer: 9,
            seq: 1_000_000,
        });
        out.push(fake);
    });
    assert_eq!(record.output.wrong, 1);
    assert_eq!(record.output.lost, 0);
}

#[test]
fn semantics_decide_what_is_allowed() {
    let dup = |out: &mut Vec<OutputRecord>| out.push(out[0].clone());
    assert!(tampered(&["engine.semantics=at-least-once"], dup).passed());
    assert!(!tampered(&["engine.semantics=at-most-once"], dup).passed());
    let lose = |out: &mut Vec<OutputRecord>| _ = out.pop();
    assert!(tampered(&["engine.semantics=at-most-once"], lose).passed());
    assert!(!tampered(&["engine.semantics=at-least-once"], lose).passed());
}

/// A run whose sink crashed for good at 500 ms: it never finishes.
fn sink_down(tamper: impl FnOnce(&mut Vec<OutputRecord>)) -> RunRecord {
    let loaded = load("fixtures/sink-down-for-good.toml".as_ref(), &[]).unwrap();
    run_seed_tampered(&loaded, 1, tamper)
}

#[test]
fn a_sink_down_for_good_is_a_liveness_failure_with_outputs_pending_not_lost() {
    let record = sink_down(|_| {});
    assert_eq!(record.output.lost, 0, "nothing was lost: the outputs were never produced");
    assert!(record.output.pending > 0 && record.output.committed > 0, "{:?}", record.output);
    assert_eq!(record.output.committed + record.output.pending, record.output.expected);
    assert_eq!(invariants(&record), ["liveness"]);
    assert_eq!(exit_code(&record), 3);
    assert!(faultline_tests::faultline(&["run", "fixtures/sink-down-for-good.toml"]).code == 3);
}

#[test]
fn a_hole_behind_the_committed_frontier_is_lost_and_the_tail_beyond_it_pending() {
    let clean = sink_down(|_| {});
    // The first committed record lies behind every committed checkpoint's positions.
    let record = sink_down(|out| _ = out.remove(0));
    assert_eq!(record.output.lost, 1, "a hole behind the frontier");
    assert_eq!(record.output.pending, clean.output.pending, "the tail beyond it is still pending");
    assert_eq!(invariants(&record), ["delivery-lost", "liveness"]);
    assert_eq!(exit_code(&record), 1, "a loss is a safety failure, liveness or not");
}

#[test]
fn a_finished_run_has_nothing_pending_every_missing_output_is_lost() {
    let record = tampered(&[], |out| out.truncate(out.len() - 5));
    assert_eq!((record.output.lost, record.output.pending), (5, 0));
}
