//! Rendering tests: the pages are well-formed XML with no `http` in them, the run page holds its
//! seven sections in order, every chart parses, output is deterministic, empty and odd records
//! render, the chart tables match their snapshots, and the report files are written.

mod fixture;

use std::path::{Path, PathBuf};

use faultline_reports::{
    compare_chart_tables, compare_charts, compare_html, run_chart_tables, run_charts, run_html, swarm_html,
    write_compare_report, write_run_report, write_swarm_report, FaultRecord, NodeInterval, NodeLane,
    RunRecord, Sample, Timeline,
};

const RUN_SECTIONS: [&str; 8] =
    ["verdict", "nodes", "throughput", "latency", "checkpoints", "recoveries", "delivery", "trace"];

/// Parses a page or a chart as XML (a page's `<!DOCTYPE html>` is a DTD to roxmltree).
fn parse(text: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..roxmltree::ParsingOptions::default() };
    match roxmltree::Document::parse_with_options(text, options) {
        Ok(doc) => doc,
        Err(e) => panic!("not well-formed XML: {e}\n{}", context(text, e.pos())),
    }
}

/// The lines around a parse error, for reading.
fn context(text: &str, pos: roxmltree::TextPos) -> String {
    let row = pos.row as usize;
    text.lines().skip(row.saturating_sub(3)).take(5).collect::<Vec<_>>().join("\n")
}

fn section_ids(doc: &roxmltree::Document<'_>) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("section"))
        .filter_map(|n| n.attribute("id").map(str::to_string))
        .collect()
}

fn section<'a>(doc: &'a roxmltree::Document<'a>, id: &str) -> roxmltree::Node<'a, 'a> {
    doc.descendants()
        .find(|n| n.has_tag_name("section") && n.attribute("id") == Some(id))
        .unwrap_or_else(|| panic!("no section {id}"))
}

fn text_of(node: roxmltree::Node<'_, '_>) -> String {
    node.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect()
}

fn assert_page(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"), "page opening: {}", &html[..40]);
    assert!(!html.contains("http"), "a page must not contain `http`");
    assert!(!html.contains("<script"), "no scripts");
    parse(html);
}

#[test]
fn run_page_is_well_formed_with_its_sections_in_order() {
    let record = fixture::run_record();
    let html = run_html(&record);
    assert_page(&html);
    let doc = parse(&html);
    assert_eq!(section_ids(&doc), RUN_SECTIONS);
    let title = doc.descendants().find(|n| n.has_tag_name("title")).map(text_of);
    assert_eq!(title.as_deref(), Some("faultline report — all-faults seed 7"));
    // Every chart is inlined, without its namespace attribute.
    let svgs = doc.descendants().filter(|n| n.has_tag_name("svg")).count();
    assert_eq!(svgs, 5);
    assert!(!html.contains("xmlns"));
}

#[test]
fn run_page_tells_verdict_invariants_recoveries_and_delivery() {
    let record = fixture::run_record();
    let html = run_html(&record);
    let doc = parse(&html);
    let verdict = text_of(section(&doc, "verdict"));
    assert!(verdict.contains("FAIL"));
    assert!(verdict.contains(&record.repro));
    // Listed invariants, held or broken, and the violated one the list lacks.
    for (invariant, status) in [
        ("exactly-once", "broken"),
        ("progress", "held"),
        ("checkpoint-after-recovery", "held"),
        ("no-zombie-writes", "broken"),
    ] {
        let row = section(&doc, "verdict")
            .descendants()
            .filter(|n| n.has_tag_name("tr"))
            .map(text_of)
            .find(|t| t.starts_with(invariant))
            .unwrap_or_else(|| panic!("no row for {invariant}"));
        assert!(row.contains(status), "{invariant} should be {status}: {row}");
    }
    assert!(
        verdict.contains("key 3 seq 41 < expected & see http://example.invalid"),
        "details unescaped: {verdict}"
    );

    let rows: Vec<String> =
        section(&doc, "recoveries").descendants().filter(|n| n.has_tag_name("tr")).map(text_of).collect();
    // Header, four recoveries, header, six faults.
    assert_eq!(rows.len(), 1 + 4 + 1 + 6, "{rows:#?}");
    assert!(rows[1].starts_with("processorworker-1") && rows[1].contains("superseded"), "{}", rows[1]);
    assert!(rows[2].starts_with("processorworker-1"), "{}", rows[2]);
    assert!(rows[3].starts_with("networkworker-0"), "{}", rows[3]);
    // The ineffective sink-link fault at 12 s does not cause the recovery at 17 s: the crash does.
    assert!(rows[4].starts_with("processorworker-0"), "{}", rows[4]);
    assert!(rows[4].contains('—'), "no resume time: {}", rows[4]);
    assert!(rows.iter().any(|r| r.contains("no effect")));

    let delivery = text_of(section(&doc, "delivery"));
    assert!(delivery.contains("sum<=9 & \"tagged\""));
    assert!(delivery.contains("producer-0/41"));
}

#[test]
fn every_chart_parses_as_standalone_svg() {
    let charts = run_charts(&fixture::run_record()).expect("charts draw");
    let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(files, ["nodes.svg", "throughput.svg", "latency.svg", "checkpoints.svg", "in-flight.svg"]);
    let compare = compare_charts(&fixture::compare_record()).expect("charts draw");
    let files: Vec<&str> = compare.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(files, ["compare-throughput.svg", "compare-recovery.svg"]);
    for chart in charts.iter().chain(&compare) {
        let doc = parse(&chart.svg);
        assert!(doc.root_element().has_tag_name(("http://www.w3.org/2000/svg", "svg")), "{}", chart.file);
        assert!(doc.descendants().any(|n| n.has_tag_name("text")), "{} has text", chart.file);
    }
}

#[test]
fn rendering_is_deterministic() {
    let run = fixture::run_record();
    assert_eq!(run_html(&run), run_html(&run));
    assert_eq!(run_charts(&run), run_charts(&run));
    let compare = fixture::compare_record();
    assert_eq!(compare_html(&compare), compare_html(&compare));
    let swarm = fixture::swarm_report();
    assert_eq!(swarm_html(&swarm), swarm_html(&swarm));
    // A record read back from its JSON renders the same.
    let json = serde_json::to_string(&run).expect("serialises");
    let back: RunRecord = serde_json::from_str(&json).expect("parses");
    assert_eq!(run_html(&back), run_html(&run));
}

#[test]
fn a_record_without_timeline_or_anything_renders() {
    for record in [fixture::empty_run_record(), fixture::run_record_without_timeline()] {
        let html = run_html(&record);
        assert_page(&html);
        let doc = parse(&html);
        assert_eq!(section_ids(&doc), RUN_SECTIONS);
        for id in ["nodes", "throughput", "latency", "checkpoints"] {
            assert!(text_of(section(&doc, id)).contains("No timeline"), "{id}");
        }
        assert!(run_chart_tables(&record).is_empty());
        assert_eq!(run_charts(&record), Ok(Vec::new()));
    }
    let html = run_html(&fixture::empty_run_record());
    let doc = parse(&html);
    assert!(text_of(section(&doc, "verdict")).contains("PASS"));
    assert!(text_of(section(&doc, "recoveries")).contains("No recoveries."));
    assert!(text_of(section(&doc, "delivery")).contains("none"));
}

/// Timelines with nothing in them, zero-length runs and data past the run's end.
fn odd_records() -> Vec<RunRecord> {
    let empty = Timeline {
        bucket_ms: 0,
        rate_window_ms: 0,
        samples: Vec::new(),
        checkpoints: Vec::new(),
        nodes: Vec::new(),
        events: Vec::new(),
        stories: Vec::new(),
    };
    let zero = RunRecord { sim_time_ms: 0, timeline: Some(empty.clone()), ..fixture::empty_run_record() };
    let mut odd = fixture::run_record();
    odd.sim_time_ms = 0;
    odd.faults.push(FaultRecord { healed_at_ms: Some(1), ..odd.faults[0].clone() });
    odd.faults.push(FaultRecord {
        class: "cosmic-ray".into(),
        target: "nowhere".into(),
        ..odd.faults[4].clone()
    });
    let timeline = odd.timeline.as_mut().expect("fixture has a timeline");
    timeline.samples.push(Sample {
        input_per_s: f64::NAN,
        output_per_s: f64::INFINITY,
        ..timeline.samples[0].clone()
    });
    timeline.samples.reverse();
    timeline.nodes.push(NodeLane {
        node: "ghost".into(),
        role: "worker".into(),
        intervals: vec![NodeInterval { from_ms: 30_000, to_ms: 10, state: "limbo".into() }],
    });
    let single = RunRecord {
        timeline: Some(Timeline {
            samples: odd.timeline.as_ref().map_or(Vec::new(), |t| t.samples[..1].to_vec()),
            ..empty
        }),
        ..fixture::empty_run_record()
    };
    vec![zero, odd, single]
}

#[test]
fn odd_records_render_without_panicking() {
    for record in odd_records() {
        assert_page(&run_html(&record));
        for chart in run_charts(&record).expect("charts draw") {
            parse(&chart.svg);
        }
        let _ = run_chart_tables(&record);
    }
    let mut compare = fixture::compare_record();
    compare.variants.clear();
    compare.representative_seed = None;
    assert_page(&compare_html(&compare));
    for chart in compare_charts(&compare).expect("charts draw") {
        parse(&chart.svg);
    }
}

#[test]
fn run_chart_tables_snapshot() {
    insta::assert_json_snapshot!("run_chart_tables", run_chart_tables(&fixture::run_record()));
}

#[test]
fn compare_chart_tables_snapshot() {
    insta::assert_json_snapshot!("compare_chart_tables", compare_chart_tables(&fixture::compare_record()));
}

#[test]
fn compare_page_is_well_formed() {
    let record = fixture::compare_record();
    let html = compare_html(&record);
    assert_page(&html);
    let doc = parse(&html);
    assert_eq!(section_ids(&doc), ["variants", "recovery", "throughput"]);
    let variants = text_of(section(&doc, "variants"));
    for v in &record.variants {
        assert!(variants.contains(&v.value));
    }
    assert!(variants.contains("2900.0") && variants.contains("1100.0"));
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("svg")).count(), 2);
}

#[test]
fn swarm_page_lists_failures_first_with_links() {
    let report = fixture::swarm_report();
    let html = swarm_html(&report);
    assert_page(&html);
    let doc = parse(&html);
    assert_eq!(section_ids(&doc), ["summary", "failures", "seeds"]);
    let failures = section(&doc, "failures");
    let links: Vec<&str> =
        failures.descendants().filter(|n| n.has_tag_name("a")).filter_map(|n| n.attribute("href")).collect();
    assert_eq!(links, ["seed-4/report.html", "seed-9/report.html"]);
    let text = text_of(failures);
    assert!(text.contains("seed 4: 2 lost") && text.contains("--seed 9"));
    let seed_rows = section(&doc, "seeds").descendants().filter(|n| n.has_tag_name("tr")).count();
    assert_eq!(seed_rows, 1 + 10);
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faultline-reports").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect()
}

#[test]
fn report_files_are_written() {
    let dir = scratch("run");
    let record = fixture::run_record();
    let written = write_run_report(&record, &dir).expect("written");
    assert_eq!(
        names(&written),
        [
            "report.json",
            "report.html",
            "report.md",
            "nodes.svg",
            "throughput.svg",
            "latency.svg",
            "checkpoints.svg",
            "in-flight.svg"
        ]
    );
    let json = std::fs::read_to_string(dir.join("report.json")).expect("read");
    let back: RunRecord = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, record);
    let svg = std::fs::read_to_string(dir.join("nodes.svg")).expect("read");
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""), "standalone SVG keeps its namespace");
    assert_eq!(std::fs::read_to_string(dir.join("report.html")).expect("read"), run_html(&record));
    let md = std::fs::read_to_string(dir.join("report.md")).expect("read");
    assert!(md.contains(&record.repro) && md.contains("[Throughput](throughput.svg)"), "{md}");
    for v in &record.violations {
        assert!(md.contains(&format!("`{}`", v.invariant)), "the broken invariant is listed: {md}");
    }

    let bare = scratch("bare");
    let written = write_run_report(&fixture::run_record_without_timeline(), &bare).expect("written");
    assert_eq!(names(&written), ["report.json", "report.html", "report.md"]);

    let written = write_compare_report(&fixture::compare_record(), &scratch("compare")).expect("written");
    assert_eq!(
        names(&written),
        ["compare.json", "compare.html", "compare-throughput.svg", "compare-recovery.svg"]
    );
    let written = write_swarm_report(&fixture::swarm_report(), &scratch("swarm")).expect("written");
    assert_eq!(names(&written), ["swarm.json", "swarm.html"]);
}

#[test]
fn write_errors_name_the_path() {
    let dir = scratch("blocked");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("a-file");
    std::fs::write(&file, "not a directory").expect("scratch file");
    let err = write_run_report(&fixture::run_record(), &file.join("report"))
        .expect_err("cannot write under a file");
    assert!(err.to_string().contains("a-file"), "{err}");
}

/// The trace section lists the kept events and the faults among them, in time order, with a
/// node filter and an event filter that work without a script.
#[test]
fn run_page_shows_the_trace_around_each_fault_with_filters() {
    let record = fixture::run_record();
    let html = run_html(&record);
    let doc = parse(&html);
    let trace = section(&doc, "trace");
    let rows: Vec<_> = trace
        .descendants()
        .filter(|n| n.has_tag_name("tr") && n.parent().is_some_and(|p| p.has_tag_name("tbody")))
        .collect();
    let events = record.timeline.as_ref().unwrap().events.len();
    assert_eq!(rows.len(), events + record.faults.len(), "every kept event and every fault");
    let times: Vec<f64> =
        rows.iter().map(|r| text_of(r.first_element_child().unwrap()).parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order: {times:?}");
    let dead =
        rows.iter().find(|r| r.attribute("data-event") == Some("worker-dead")).expect("a worker-dead row");
    assert_eq!(dead.attribute("data-node"), Some("manager"));
    assert!(text_of(*dead).contains("worker=1"));
    let radios = trace
        .descendants()
        .filter(|n| n.has_tag_name("input") && n.attribute("type") == Some("radio"))
        .count();
    assert_eq!(radios, 1 + 2 + 1 + 4, "every node, two nodes, every event, four events");
    assert!(html.contains("#tn-1:checked ~ table tbody tr:not([data-node=\"broker-2\"]):not(.fault)"));
    let empty = run_html(&fixture::run_record_without_timeline());
    assert!(text_of(section(&parse(&empty), "trace")).contains("No trace kept"));
}

/// Each offending record the report has a story for links to it, and the story tells its
/// steps in order and its reason, escaped.
#[test]
fn delivery_rows_link_to_the_story_of_their_output() {
    let record = fixture::run_record();
    let html = run_html(&record);
    let doc = parse(&html);
    let delivery = section(&doc, "delivery");
    let links: Vec<&str> =
        delivery.descendants().filter(|n| n.has_tag_name("a")).filter_map(|a| a.attribute("href")).collect();
    assert_eq!(links, ["#story-lost-key-3---input-0-41"], "only the told output links");
    let story = delivery
        .descendants()
        .find(|n| n.attribute("id") == Some("story-lost-key-3---input-0-41"))
        .expect("the story the row links to");
    let steps: Vec<String> = story.descendants().filter(|n| n.has_tag_name("li")).map(text_of).collect();
    assert_eq!(steps.len(), 3);
    assert!(steps[0].starts_with("100.000 ms") && steps[0].ends_with("partition <2>"), "{steps:?}");
    assert!(text_of(story).contains("past offset 41 & never read it again"));
    let markdown = faultline_reports::run_markdown(&record);
    assert!(markdown.contains("### key 3 · input 0/41 — lost") && markdown.contains("Why: Epoch 2 resumed"));
}
