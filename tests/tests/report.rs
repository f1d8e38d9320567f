//! Reports: what `run --report`, `report`, `compare` and `swarm --report` write, pinned by
//! snapshots of the record and of every chart's data table, and checked to be self-contained,
//! well-formed HTML.

use std::path::{Path, PathBuf};

use faultline_reports::{CompareRecord, RunRecord, SwarmReport};
use faultline_tests::{faultline, scenario};

/// A fresh directory for one test's output.
fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reports").join(name);
    _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs processor-crash seed 3 with a report into `dir`; returns the saved record.
fn report_processor_crash(dir: &Path) -> RunRecord {
    let d = dir.to_str().unwrap();
    let outcome = faultline(&["run", &scenario("processor-crash"), "--seed", "3", "--report", d]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(outcome.stderr.contains("report.html"), "says where the report is: {outcome:?}");
    serde_json::from_str(&read(&dir.join("report.json"))).expect("report.json is a run record")
}

/// The record with its one wall-clock figure zeroed: everything else is simulated.
fn stable(mut record: RunRecord) -> RunRecord {
    record.wall_ms = 0.0;
    record
}

/// Asserts `html` is one self-contained, well-formed document.
fn assert_self_contained(html: &str) {
    assert!(!html.contains("http"), "the page refers to the network");
    assert!(!html.contains("<script src") && !html.contains("<link"), "the page loads an asset");
    if let Err(e) = roxmltree::Document::parse_with_options(
        html,
        roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() },
    ) {
        panic!("the page is not well-formed: {e}");
    }
}

#[test]
fn a_run_report_has_its_record_charts_and_seven_sections() {
    let dir = out_dir("processor-crash-3");
    let record = report_processor_crash(&dir);
    for file in
        ["report.json", "report.html", "nodes.svg", "throughput.svg", "latency.svg", "checkpoints.svg"]
    {
        assert!(dir.join(file).is_file(), "{file} written");
    }
    let html = read(&dir.join("report.html"));
    assert_self_contained(&html);
    let sections = ["verdict", "nodes", "throughput", "latency", "checkpoints", "recoveries", "delivery"];
    let at: Vec<usize> = sections
        .iter()
        .map(|id| html.find(&format!("<section id=\"{id}\"")).unwrap_or_else(|| panic!("section {id}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "sections in order: {at:?}");
    assert!(html.contains(&record.repro), "the replay command is on the page");
    for svg in ["nodes.svg", "throughput.svg"] {
        roxmltree::Document::parse(&read(&dir.join(svg))).unwrap_or_else(|e| panic!("{svg}: {e}"));
    }

    let timeline = record.timeline.as_ref().expect("a report's record has its timeline");
    assert!(!timeline.samples.is_empty() && !timeline.checkpoints.is_empty());
    assert!(timeline.nodes.iter().any(|n| !n.intervals.is_empty()), "a crashed worker's lane shows it down");
    assert_eq!(record.faultline_version, env!("CARGO_PKG_VERSION"));
    assert!(!record.scenario_hash.is_empty());
    let in_flight_at_end = timeline.samples.last().unwrap().in_flight;
    assert_eq!(in_flight_at_end, record.output.lost, "what is still in flight at the end was lost");
}

#[test]
fn report_json_and_chart_tables_are_pinned_for_a_fixed_seed() {
    let dir = out_dir("snapshot");
    let record = stable(report_processor_crash(&dir));
    // The trace around the faults is pinned by its length and its first events.
    let mut pinned = record.clone();
    let events = &mut pinned.timeline.as_mut().expect("a report's record has its timeline").events;
    insta::assert_snapshot!("processor-crash-3-trace-events", format!("{} events", events.len()));
    events.truncate(12);
    insta::assert_json_snapshot!("processor-crash-3-report", pinned);
    for table in faultline_reports::run_chart_tables(&record) {
        insta::assert_json_snapshot!(format!("processor-crash-3-chart-{}", table.name), table);
    }
}

#[test]
fn a_saved_record_renders_again_to_the_same_page() {
    let first = out_dir("rerender-first");
    report_processor_crash(&first);
    let second = out_dir("rerender-second");
    let (saved, to) = (first.join("report.json"), second.to_str().unwrap().to_string());
    let outcome = faultline(&["report", saved.to_str().unwrap(), "--out", &to]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(read(&first.join("report.html")), read(&second.join("report.html")));
    assert_eq!(read(&first.join("throughput.svg")), read(&second.join("throughput.svg")));
}

#[test]
fn a_json_line_without_a_timeline_renders_too() {
    let dir = out_dir("from-json-line");
    std::fs::create_dir_all(&dir).unwrap();
    let outcome = faultline(&["run", &scenario("quickstart"), "--seed", "2", "--json"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(!outcome.stdout.contains("\"timeline\""), "--json carries no timeline");
    let saved = dir.join("run.json");
    std::fs::write(&saved, &outcome.stdout).unwrap();
    let to = dir.join("out");
    let rendered = faultline(&["report", saved.to_str().unwrap(), "--out", to.to_str().unwrap()]);
    assert_eq!(rendered.code, 0, "{rendered:?}");
    assert_self_contained(&read(&to.join("report.html")));
}

#[test]
fn a_bad_record_is_refused_with_its_location() {
    let dir = out_dir("bad-record");
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("broken.json");
    std::fs::write(&saved, "{\n  \"scenario\": \"x\",\n  \"seed\": \"three\"\n}\n").unwrap();
    let to = dir.join("out");
    let outcome = faultline(&["report", saved.to_str().unwrap(), "--out", to.to_str().unwrap()]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(outcome.stderr.contains("broken.json:3:"), "names the file and line: {}", outcome.stderr);
    assert!(!to.exists(), "nothing written");
    let missing = faultline(&["report", "no-such-record.json", "--out", to.to_str().unwrap()]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("no-such-record.json"), "{missing:?}");
}

#[test]
fn compare_puts_the_recovery_approaches_side_by_side() {
    let dir = out_dir("compare");
    let outcome = faultline(&[
        "compare",
        &scenario("recovery-compare"),
        "--seeds",
        "2",
        "--vary",
        "engine.recovery=rollback,passive-replication,active-replication",
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let record: CompareRecord = serde_json::from_str(read(&dir.join("compare.json")).trim()).unwrap();
    let values: Vec<&str> = record.variants.iter().map(|v| v.value.as_str()).collect();
    assert_eq!(values, ["rollback", "passive-replication", "active-replication"]);
    for v in &record.variants {
        assert_eq!((v.runs, v.passed), (2, 2), "{}", v.value);
        assert!(v.median_recovery_ms.is_some(), "{}: a recovery time", v.value);
        assert!(!v.representative.is_empty(), "{}: the representative seed's samples", v.value);
    }
    assert!(record.variants.iter().skip(1).all(|v| v.failovers > 0), "replication fails over");
    assert!(record.representative_seed.is_some());
    let html = read(&dir.join("compare.html"));
    assert_self_contained(&html);
    assert!(values.iter().all(|v| html.contains(v)));
    assert!(dir.join("compare-throughput.svg").is_file() && dir.join("compare-recovery.svg").is_file());
    insta::assert_json_snapshot!("compare-tables", faultline_reports::compare_chart_tables(&record));
}

#[test]
fn a_bad_vary_is_refused_before_anything_runs() {
    let dir = out_dir("compare-bad");
    let d = dir.to_str().unwrap();
    let s = scenario("recovery-compare");
    let no_values = faultline(&["compare", &s, "--seeds", "1", "--vary", "engine.recovery", "--out", d]);
    assert_eq!(no_values.code, 2, "{no_values:?}");
    let bad_value = faultline(&[
        "compare",
        &s,
        "--seeds",
        "1",
        "--vary",
        "engine.recovery=rollback,sideways",
        "--out",
        d,
    ]);
    assert_eq!(bad_value.code, 2, "{bad_value:?}");
    assert!(bad_value.stderr.contains("engine.recovery=sideways"), "{}", bad_value.stderr);
    assert!(!dir.exists(), "nothing written");
}

#[test]
fn a_swarm_page_links_each_failing_seed_to_its_report() {
    let dir = out_dir("swarm");
    let outcome = faultline(&[
        "swarm",
        &scenario("fault-sink"),
        "--seeds",
        "4",
        "--set",
        "engine.test_skip_sync=sink:sink.log",
        "--report",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(outcome.code, 1, "the planted missing sync loses data: {outcome:?}");
    let page: SwarmReport = serde_json::from_str(&read(&dir.join("swarm.json"))).unwrap();
    assert_eq!(page.seeds.len(), 4);
    let failing: Vec<_> = page.seeds.iter().filter(|s| s.verdict == "fail").collect();
    assert!(!failing.is_empty());
    let html = read(&dir.join("swarm.html"));
    assert_self_contained(&html);
    for seed in &page.seeds {
        let link = seed.report.as_deref();
        assert_eq!(link.is_some(), seed.verdict == "fail", "seed {}: a report for failing seeds", seed.seed);
        if let Some(link) = link {
            assert!(html.contains(&format!("href=\"{link}\"")), "the page links {link}");
            let linked = read(&dir.join(link));
            assert_self_contained(&linked);
            assert!(linked.contains(&seed.repro), "the seed's report replays it");
        }
    }
}
