//! Event time, windows, joins, the user operator and Nexmark, end to end: each scenario passes
//! exactly-once under faults, `--json` reports time skew and late records, the late-data
//! accounting holds, the late checker catches planted bad histories, and bad combinations are
//! refused with exit 2. (The 100-seed sweeps are run by hand and stated when resolving.)

use faultline_engine::record::{late_side, Cause, Late, Origin, OutputId, OutputRecord};
use faultline_engine::sdk::codec::{decode, encode};
use faultline_reports::RunRecord;
use faultline_sim::runner::run_seed_tampered;
use faultline_sim::scenario::load;
use faultline_tests::{faultline, run_json, scenario};

fn passes(name: &str, seed: u64, sets: &[&str]) -> RunRecord {
    let (code, record) = run_json(&scenario(name), seed, sets);
    assert_eq!(code, 0, "{name} seed {seed}: {:?}", record.violations);
    assert!(record.output.expected > 0, "{name} seed {seed} expected nothing");
    assert_eq!(record.output.committed, record.output.expected);
    assert!(record.faults.iter().any(|f| f.effective), "{name} seed {seed}: no fault took effect");
    record
}

#[test]
fn nexmark_windowed_queries_pass_exactly_once_under_faults() {
    for name in ["nexmark-q5", "nexmark-q7", "nexmark-q8"] {
        for seed in 1..=2 {
            passes(name, seed, &[]);
        }
    }
}

#[test]
fn every_nexmark_query_passes_a_faulty_seed() {
    for q in [0, 1, 2, 3, 4] {
        passes(&format!("nexmark-q{q}"), 3, &[]);
    }
}

#[test]
fn windowed_json_shows_time_skew_and_late_records() {
    let record = passes("late-data", 1, &[]);
    let time = &record.time;
    assert!(
        time.skew_ms.min >= 0 && time.skew_ms.p50 <= time.skew_ms.p99 && time.skew_ms.p99 <= time.skew_ms.max
    );
    assert!(time.skew_ms.max > 0);
    assert!(time.late_records > 0, "2% of events run 500 ms behind: some must be late");
    assert_eq!((time.max_out_of_orderness_ms, time.allowed_lateness_ms), (100, 50));
    assert!(record.invariants.iter().any(|i| i == "late-accounting"));
    let exact = passes("windows", 1, &[]);
    assert_eq!(exact.time.late_records, 0, "disorder within the bound and no idleness: nothing late");
}

#[test]
fn late_data_accounting_holds_across_seeds_and_windows() {
    for seed in 2..=4 {
        passes("late-data", seed, &[]);
    }
    let session =
        ["pipeline.window=session", "pipeline.gap_ms=30", "pipeline.size_ms=", "pipeline.slide_ms="];
    passes("late-data", 5, &session);
    passes(
        "late-data",
        6,
        &["pipeline.window=tumbling", "pipeline.slide_ms=", "engine.checkpoint_mode=unaligned"],
    );
}

#[test]
fn count_windows_joins_and_the_user_operator_pass() {
    passes("windows", 2, &["pipeline.window=count-tumbling", "pipeline.size=7", "pipeline.size_ms="]);
    let sliding =
        ["pipeline.window=count-sliding", "pipeline.size=8", "pipeline.slide=4", "pipeline.size_ms="];
    passes("windows", 3, &sliding);
    passes("window-join", 1, &[]);
    passes("interval-join", 1, &[]);
    for seed in 1..=2 {
        passes("top-n", seed, &[]);
    }
}

#[test]
fn window_state_survives_passive_replication_and_unaligned_checkpoints() {
    passes("windows", 4, &["engine.recovery=passive-replication"]);
    passes("nexmark-q5", 4, &["engine.checkpoint_mode=unaligned"]);
}

#[test]
fn nexmark_runs_are_deterministic() {
    let (_, a) = run_json(&scenario("nexmark-q5"), 7, &[]);
    let (_, b) = run_json(&scenario("nexmark-q5"), 7, &[]);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.time, b.time);
}

fn tampered(name: &str, tamper: impl FnOnce(&mut Vec<OutputRecord>)) -> RunRecord {
    let loaded = load(scenario(name).as_ref(), &[]).unwrap();
    run_seed_tampered(&loaded, 1, tamper)
}

fn invariants(record: &RunRecord) -> Vec<&str> {
    record.violations.iter().map(|v| v.invariant.as_str()).collect()
}

fn first_late(out: &[OutputRecord]) -> usize {
    out.iter().position(|r| r.id.side == late_side()).expect("late-data has late records")
}

/// Rewrites the late record at `i`.
fn edit_late(out: &mut [OutputRecord], i: usize, edit: impl FnOnce(&mut Late)) {
    let mut late: Late = decode(&out[i].value);
    edit(&mut late);
    out[i].value = encode(&late);
}

#[test]
fn a_late_record_dropped_from_the_late_output_is_caught() {
    // Its input is then expected in its windows, which do not count it.
    let record = tampered("late-data", |out| _ = out.remove(first_late(out)));
    let found = invariants(&record);
    assert!(found.contains(&"late-accounting") && found.contains(&"delivery-wrong"), "{found:?}");
}

#[test]
fn a_late_record_reported_twice_is_caught() {
    let record = tampered("late-data", |out| out.push(out[first_late(out)].clone()));
    assert!(invariants(&record).contains(&"late-duplicate"), "{:?}", invariants(&record));
}

#[test]
fn a_record_late_under_a_watermark_it_was_not_behind_is_caught() {
    let record = tampered("late-data", |out| {
        let i = first_late(out);
        edit_late(out, i, |l| l.watermark = l.event_time_ms); // the watermark equals its time: not late
    });
    assert_eq!(invariants(&record), ["late-implausible"]);
}

/// A watermark that ran ahead of what the sources had read: the late record arrived at 1 ms,
/// before any source read a record, under a watermark only the whole input could justify. Its
/// lateness and its watermark's ceiling are as the run left them, so only the bound recomputed
/// from the sources' reads sees it.
#[test]
fn a_watermark_ahead_of_what_the_sources_had_read_is_caught() {
    let record = tampered("late-data", |out| {
        let i = first_late(out);
        edit_late(out, i, |l| l.arrived_ms = 1);
    });
    assert_eq!(invariants(&record), ["late-watermark-ahead"]);
}

#[test]
fn an_invented_late_record_is_caught() {
    let record = tampered("late-data", |out| {
        let mut fake = out[first_late(out)].clone();
        fake.cause = Cause { producer: 0, seq: 999_999_999 };
        fake.id.origin = Origin::Input(fake.cause);
        out.push(fake);
    });
    assert!(invariants(&record).contains(&"late-unknown"), "{:?}", invariants(&record));
}

#[test]
fn a_late_record_where_none_may_be_is_caught() {
    let record = tampered("windows", |out| {
        let r = out[0].clone();
        let late =
            Late { event_time_ms: 0, watermark: 1_000_000, partition: 0, input: Vec::new(), arrived_ms: 0 };
        out.push(OutputRecord {
            id: OutputId::late(r.id.key, r.cause),
            value: encode(&late),
            cause: r.cause,
        });
    });
    assert!(invariants(&record).contains(&"late-unexpected"), "{:?}", invariants(&record));
}

#[test]
fn bad_event_time_combinations_exit_2_naming_the_field() {
    for (name, set, field) in [
        ("nexmark-q5", "engine.semantics=at-least-once", "engine.semantics"),
        ("nexmark-q5", "engine.recovery=passive-replication", "engine.recovery"),
        ("windows", "engine.recovery=active-replication", "engine.recovery"),
        ("windows", "pipeline.slide_ms=30", "pipeline.slide_ms"),
        ("late-data", "pipeline.slide_ms=30", "pipeline.slide_ms"),
        ("windows", "workload.input=nexmark", "workload.input"),
        ("top-n", "pipeline.operator=top-k", "pipeline.operator"),
        ("top-n", "pipeline.params.n=4", "pipeline"),
        ("windows", "workload.late_per_mille=3", "checks.no_late"),
        ("window-join", "workload.streams=1", "workload.streams"),
    ] {
        let outcome = faultline(&["run", &scenario(name), "--seed", "1", "--set", set]);
        assert_eq!(outcome.code, 2, "{name} {set}: {outcome:?}");
        assert!(outcome.stderr.contains(field), "{name} {set}: {}", outcome.stderr);
    }
}

#[test]
fn bench_measures_a_pipeline_beside_flink() {
    let outcome = faultline(&[
        "bench",
        "--pipeline",
        "nexmark-q7",
        "--scenarios",
        "../scenarios",
        "--events",
        "3000",
        "--repeats",
        "1",
        "--json",
    ]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let record: faultline_reports::PipelineBenchRecord = serde_json::from_str(outcome.stdout.trim()).unwrap();
    assert_eq!((record.pipeline.as_str(), record.events), ("nexmark-q7", 3000));
    assert_eq!(record.flink_per_core_events_per_s, Some(12_000.0));
    assert!(record.events_per_s > 0.0 && record.ratio_to_flink.is_some());
}
