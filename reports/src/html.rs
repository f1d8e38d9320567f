//! HTML pages: a run's report, a comparison and a swarm's summary.
//!
//! Each page is one self-contained, XHTML-style file: inline `<style>`, the charts inlined as
//! `<svg>` elements (without their `xmlns`, which HTML5 does not need), no scripts, no external
//! assets, no web fonts. Every text and attribute value is escaped, and the string `http` never
//! occurs in a page (data that holds it is written with a character reference). Pages are
//! deterministic: the same record gives byte-identical HTML.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::charts::{
    self, class_colour, hex, Chart, ChartError, DOWN_COLOUR, FAULT_CLASS_PALETTE, PAUSED_COLOUR, UP_COLOUR,
};
use crate::{
    CompareRecord, FaultRecord, RecoveryRecord, RunRecord, SeedOutcome, Story, SwarmReport, VariantSummary,
};

/// Escapes `&`, `<`, `>`, `"` and `'` for text and attribute values, and writes any `http` with
/// a character reference so that no page carries the string.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out.replace("http", "&#104;ttp")
}

const STYLE: &str = "
:root { color-scheme: light; }
body { margin: 0; background: #f6f6f4; color: #1b1b1b;
  font: 15px/1.5 system-ui, -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\", Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 20px 64px; }
h1 { font-size: 1.55em; margin: 0 0 0.3em; }
h2 { font-size: 1.2em; margin: 0 0 0.6em; padding-bottom: 0.2em; border-bottom: 1px solid #e4e4e4; }
h3 { font-size: 1.02em; margin: 1.1em 0 0.4em; }
section { background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; padding: 14px 20px; margin: 18px 0; }
ul.meta { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 2px 20px;
  color: #555; font-size: 0.92em; }
ul.meta b { color: #1b1b1b; font-weight: 600; }
table { border-collapse: collapse; margin: 0.4em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #dedede; padding: 4px 10px; text-align: left; vertical-align: top; }
td { white-space: nowrap; }
td.wrap { white-space: normal; }
th { background: #f3f3f1; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: 700; }
tr.faint td { color: #9a9a9a; }
tr.fault td { background: #fdecea; font-weight: 600; }
div.trace label { margin: 0 12px 0 3px; font-size: 0.88em; white-space: nowrap; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em; }
pre { background: #f3f3f1; border: 1px solid #e2e2e2; border-radius: 4px; padding: 8px 10px;
  white-space: pre-wrap; word-break: break-all; margin: 0.3em 0 0.8em; }
.verdict { font-size: 2.4em; font-weight: 800; letter-spacing: 0.06em; margin: 0 0 0.2em; }
.pass { color: #1b7f3b; }
.fail { color: #c62828; }
.held { color: #1b7f3b; font-weight: 600; }
.broken { color: #c62828; font-weight: 600; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 0.4em 0; }
ul.legend { list-style: none; padding: 0; margin: 0.3em 0 0.6em; display: flex; flex-wrap: wrap;
  gap: 4px 16px; font-size: 0.88em; color: #333; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px;
  vertical-align: -1px; }
.empty { color: #777; font-style: italic; }
.failure { border-left: 4px solid #c62828; padding: 2px 0 2px 14px; margin: 12px 0; }
.grid { display: flex; flex-wrap: wrap; gap: 3px; margin: 0.4em 0 1em; }
.cell { display: inline-block; min-width: 2.6em; padding: 1px 4px; border-radius: 3px; text-align: center;
  font-size: 0.8em; font-variant-numeric: tabular-nums; color: #fff; text-decoration: none; }
.cell.pass { background: #2e8b57; }
.cell.fail { background: #c62828; }
div.story { border-left: 4px solid #c62828; padding: 2px 0 2px 14px; margin: 12px 0; }
div.story h4 { margin: 0.2em 0; font-size: 0.98em; }
div.story ol { margin: 0.2em 0; padding-left: 1.4em; font-size: 0.9em; }
div.story span.num { font-variant-numeric: tabular-nums; color: #555; margin-right: 6px; }
div.story:target { background: #fff7e0; }
p.why { margin: 0.3em 0 0.4em; font-size: 0.92em; }
";

// ---------------------------------------------------------------------------------------------
// Building blocks

/// The page's head and the opening of its `<main>`, with `title` as its `<h1>`.
fn page_start(title: &str) -> String {
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n"
    )
}

fn page_end(out: &mut String) {
    out.push_str("</main>\n</body>\n</html>\n");
}

/// A `<section id>` with its `<h2>`, and the body `fill` writes.
fn section(out: &mut String, id: &str, heading: &str, fill: impl FnOnce(&mut String)) {
    let _ = writeln!(out, "<section id=\"{}\">\n<h2>{}</h2>", escape(id), escape(heading));
    fill(out);
    out.push_str("</section>\n");
}

/// A `<ul class="meta">` of label/value pairs.
fn meta_list(out: &mut String, items: &[(&str, String)]) {
    out.push_str("<ul class=\"meta\">\n");
    for (label, value) in items {
        let _ = writeln!(out, "<li>{} <b>{}</b></li>", escape(label), escape(value));
    }
    out.push_str("</ul>\n");
}

fn paragraph(out: &mut String, class: &str, text: &str) {
    let _ = writeln!(out, "<p class=\"{}\">{}</p>", escape(class), escape(text));
}

/// A table cell: HTML already escaped, and whether it holds a number (right-aligned).
struct Cell {
    html: String,
    class: &'static str,
}

/// A text cell.
fn text(s: impl AsRef<str>) -> Cell {
    Cell { html: escape(s.as_ref()), class: "" }
}

/// A number cell.
fn num(s: impl AsRef<str>) -> Cell {
    Cell { html: escape(s.as_ref()), class: "num" }
}

/// A text cell that may wrap (long free text).
fn wrap(s: impl AsRef<str>) -> Cell {
    Cell { html: escape(s.as_ref()), class: "wrap" }
}

/// A cell of markup built from escaped parts.
fn markup(html: String) -> Cell {
    Cell { html, class: "" }
}

/// A table with a header row; `row_classes` (if given) sets each row's class.
fn table(out: &mut String, headers: &[&str], rows: Vec<Vec<Cell>>, row_classes: &[&str]) {
    out.push_str("<table>\n<thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, row) in rows.into_iter().enumerate() {
        match row_classes.get(i).filter(|c| !c.is_empty()) {
            Some(class) => {
                let _ = write!(out, "<tr class=\"{}\">", escape(class));
            }
            None => out.push_str("<tr>"),
        }
        for cell in row {
            if cell.class.is_empty() {
                let _ = write!(out, "<td>{}</td>", cell.html);
            } else {
                let _ = write!(out, "<td class=\"{}\">{}</td>", cell.class, cell.html);
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// A colour swatch followed by a label.
fn swatch_html(colour: (u8, u8, u8), label: &str) -> String {
    format!("<span class=\"swatch\" style=\"background: {}\"></span>{}", hex(colour), escape(label))
}

/// The fault-class legend (every class of the palette), with the node states if asked.
fn class_legend(out: &mut String, with_states: bool) {
    out.push_str("<ul class=\"legend\">\n");
    if with_states {
        for (colour, label) in [(UP_COLOUR, "up"), (DOWN_COLOUR, "down"), (PAUSED_COLOUR, "paused")] {
            let _ = writeln!(out, "<li>{}</li>", swatch_html(colour, label));
        }
    }
    for (class, colour) in FAULT_CLASS_PALETTE {
        let _ = writeln!(out, "<li>{}</li>", swatch_html(colour, &format!("{class} fault")));
    }
    out.push_str("</ul>\n");
}

/// A chart's SVG made ready to inline: no `xmlns`, a class for the page's CSS, a label.
fn inline_svg(chart: &Chart) -> String {
    let svg = chart.svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "");
    let label = format!("<svg class=\"chart\" role=\"img\" aria-label=\"{}\" ", escape(&chart.title));
    svg.replacen("<svg ", &label, 1).replace("http", "&#104;ttp")
}

/// The chart drawn into `file`, inlined; or why there is none (nothing if `missing` is empty).
fn chart_or_note(out: &mut String, charts: &Result<Vec<Chart>, ChartError>, file: &str, missing: &str) {
    match charts {
        Ok(charts) => match charts.iter().find(|c| c.file == file) {
            Some(chart) => out.push_str(&inline_svg(chart)),
            None if missing.is_empty() => {}
            None => paragraph(out, "empty", missing),
        },
        Err(e) => paragraph(out, "empty", &format!("The chart could not be drawn: {e}")),
    }
}

/// A count with thousands separators.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A float with `decimals`, or `—` when it is not finite.
fn float(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "—".to_string()
    }
}

fn opt_float(v: Option<f64>, decimals: usize) -> String {
    v.map_or("—".to_string(), |v| float(v, decimals))
}

fn seconds(ms: u64) -> String {
    format!("{} s", float(ms as f64 / 1000.0, 3))
}

fn wall(ms: f64) -> String {
    format!("{} s", float(ms / 1000.0, 1))
}

// ---------------------------------------------------------------------------------------------
// Run report

const NO_TIMELINE: &str =
    "No timeline in this record: the charts need a run saved with its timeline (a report).";

/// A run's report page.
pub fn run_html(record: &RunRecord) -> String {
    run_html_with(record, &charts::run_charts(record))
}

/// A run's report page with its charts already drawn.
pub(crate) fn run_html_with(record: &RunRecord, charts: &Result<Vec<Chart>, ChartError>) -> String {
    let mut out = page_start(&format!("faultline report — {} seed {}", record.scenario, record.seed));
    meta_list(
        &mut out,
        &[
            ("faultline", record.faultline_version.clone()),
            ("scenario hash", record.scenario_hash.clone()),
            ("seed", record.seed.to_string()),
            ("semantics", record.semantics.clone()),
            ("recovery", record.recovery.clone()),
            ("trace hash", record.trace_hash.clone()),
            ("simulated time", seconds(record.sim_time_ms)),
            ("events in", group(record.events_in)),
        ],
    );
    section(&mut out, "verdict", "Verdict", |out| verdict_body(out, record));
    section(&mut out, "nodes", "Nodes and faults", |out| {
        chart_or_note(out, charts, "nodes.svg", NO_TIMELINE);
        class_legend(out, true);
    });
    section(&mut out, "throughput", "Throughput", |out| {
        if let Some(t) = &record.timeline {
            let caption = format!(
                "Sampled every {} ms of simulated time; rates averaged over the trailing {} ms. \
                 Latency: from an input's event time to its output's first commit at the sink.",
                t.bucket_ms, t.rate_window_ms
            );
            paragraph(out, "caption", &caption);
        }
        chart_or_note(out, charts, "throughput.svg", NO_TIMELINE);
        chart_or_note(out, charts, "in-flight.svg", "");
    });
    section(&mut out, "latency", "Latency", |out| chart_or_note(out, charts, "latency.svg", NO_TIMELINE));
    section(&mut out, "checkpoints", "Checkpoints", |out| checkpoints_body(out, record, charts));
    section(&mut out, "recoveries", "Recoveries and faults", |out| {
        recoveries_body(out, record);
        out.push_str("<h3>Faults injected</h3>\n");
        faults_body(out, record);
    });
    section(&mut out, "delivery", "Delivery", |out| delivery_body(out, record));
    section(&mut out, "trace", "Trace around each fault", |out| trace_body(out, record));
    page_end(&mut out);
    out
}

/// The trace events a report keeps around each fault, with the faults among them, filterable
/// by node and by event. The filters are radio buttons and style rules, no script: a report
/// opens anywhere, offline, with nothing to run.
fn trace_body(out: &mut String, record: &RunRecord) {
    let events = record.timeline.as_ref().map_or(&[][..], |t| &t.events[..]);
    if events.is_empty() {
        paragraph(
            out,
            "empty",
            "No trace kept: the run had no faults, or was recorded without its timeline.",
        );
        return;
    }
    paragraph(
        out,
        "caption",
        "Every event from a little before each fault strikes until a little after it heals, in \
         simulated milliseconds; faults are the highlighted rows, shown whatever the filters. \
         `faultline run … --trace FILE` writes the whole trace as JSON lines.",
    );
    let nodes: BTreeSet<&str> = events.iter().map(|e| e.node.as_str()).collect();
    let kinds: BTreeSet<&str> = events.iter().map(|e| e.event.as_str()).collect();
    out.push_str("<div class=\"trace\">\n<style>\n");
    filter_rules(out, "tn", "node", &nodes);
    filter_rules(out, "te", "event", &kinds);
    out.push_str("</style>\n");
    filter_buttons(out, "tn", "every node", &nodes);
    out.push_str("<br />\n");
    filter_buttons(out, "te", "every event", &kinds);
    trace_table(out, events, &record.faults);
    out.push_str("</div>\n");
}

/// One rule per choice: while it is checked, the rows of other values hide (faults stay).
fn filter_rules(out: &mut String, prefix: &str, attribute: &str, values: &BTreeSet<&str>) {
    for (i, value) in values.iter().enumerate() {
        let _ = writeln!(
            out,
            "#{prefix}-{}:checked ~ table tbody tr:not([data-{attribute}=\"{}\"]):not(.fault) {{ display: none; }}",
            i + 1,
            css_string(value)
        );
    }
}

/// A radio button per choice, the first (`all`) checked.
fn filter_buttons(out: &mut String, prefix: &str, all: &str, values: &BTreeSet<&str>) {
    let button = |out: &mut String, i: usize, label: &str, checked: bool| {
        let checked = if checked { " checked=\"checked\"" } else { "" };
        let _ = writeln!(
            out,
            "<input type=\"radio\" name=\"{prefix}\" id=\"{prefix}-{i}\"{checked} /><label for=\"{prefix}-{i}\">{}</label>",
            escape(label)
        );
    };
    button(out, 0, all, true);
    for (i, value) in values.iter().enumerate() {
        button(out, i + 1, value, false);
    }
}

fn trace_table(out: &mut String, events: &[crate::TraceLine], faults: &[FaultRecord]) {
    let mut faults = faults.iter().peekable();
    out.push_str("<table class=\"trace\">\n<thead><tr><th>ms</th><th>node</th><th>event</th><th>fields</th></tr></thead>\n<tbody>\n");
    for e in events {
        while let Some(f) = faults.next_if(|f| (f.at_ms as f64) <= e.at_ms) {
            trace_fault_row(out, f);
        }
        let fields: Vec<String> = e.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "<tr data-node=\"{node}\" data-event=\"{event}\"><td class=\"num\">{:.3}</td><td>{node}</td><td>{event}</td><td class=\"wrap\">{}</td></tr>",
            e.at_ms,
            escape(&fields.join(" ")),
            node = escape(&e.node),
            event = escape(&e.event),
        );
    }
    faults.for_each(|f| trace_fault_row(out, f));
    out.push_str("</tbody>\n</table>\n");
}

fn trace_fault_row(out: &mut String, f: &FaultRecord) {
    let what = format!("{} {} {}", f.class, f.action, f.target);
    let _ = writeln!(
        out,
        "<tr class=\"fault\"><td class=\"num\">{}</td><td>{}</td><td>fault</td><td class=\"wrap\">{}</td></tr>",
        f.at_ms,
        escape(&f.target),
        escape(&what),
    );
}

/// A value inside a CSS string in double quotes, in a `<style>` element (where the page's
/// entities mean nothing): quotes and backslashes escaped, `<` and `&` as CSS code points.
fn css_string(value: &str) -> String {
    let mut css = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                css.push('\\');
                css.push(c);
            }
            '<' => css.push_str("\\3c "),
            '&' => css.push_str("\\26 "),
            c => css.push(c),
        }
    }
    css
}

/// Every invariant judged, with the violations naming it; then violations of invariants the list
/// does not hold.
fn invariant_rows(record: &RunRecord) -> Vec<(&str, Vec<&str>)> {
    let mut names: Vec<&str> = record.invariants.iter().map(String::as_str).collect();
    let mut seen: BTreeSet<&str> = names.iter().copied().collect();
    for v in &record.violations {
        if seen.insert(&v.invariant) {
            names.push(&v.invariant);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let details =
                record.violations.iter().filter(|v| v.invariant == name).map(|v| v.detail.as_str()).collect();
            (name, details)
        })
        .collect()
}

fn verdict_body(out: &mut String, record: &RunRecord) {
    let (class, word) = if record.passed() { ("pass", "PASS") } else { ("fail", "FAIL") };
    let _ = writeln!(out, "<p class=\"verdict {class}\">{word}</p>");
    if !record.passed() && !record.verdict.eq_ignore_ascii_case("fail") {
        paragraph(out, "empty", &format!("(recorded verdict: {})", record.verdict));
    }
    out.push_str("<p>Replay this run exactly:</p>\n");
    let _ = writeln!(out, "<pre><code>{}</code></pre>", escape(&record.repro));
    let rows = invariant_rows(record);
    if rows.is_empty() {
        paragraph(out, "empty", "No invariants recorded.");
        return;
    }
    let rows = rows
        .into_iter()
        .map(|(name, details)| {
            let status = if details.is_empty() {
                markup("<span class=\"held\">held</span>".into())
            } else {
                markup("<span class=\"broken\">broken</span>".into())
            };
            let details: Vec<String> = details.iter().map(|d| escape(d)).collect();
            let details = Cell { html: details.join("<br />"), class: "wrap" };
            vec![markup(format!("<code>{}</code>", escape(name))), status, details]
        })
        .collect();
    table(out, &["invariant", "status", "violation"], rows, &[]);
}

fn checkpoints_body(out: &mut String, record: &RunRecord, charts: &Result<Vec<Chart>, ChartError>) {
    chart_or_note(out, charts, "checkpoints.svg", NO_TIMELINE);
    let mut items = vec![
        ("completed", group(record.checkpoints.completed)),
        ("aborted", group(record.checkpoints.aborted)),
    ];
    if let Some(t) = &record.timeline {
        let unfinished = t.checkpoints.iter().filter(|c| c.outcome == "unfinished").count() as u64;
        items.push(("unfinished at the run's end", group(unfinished)));
    }
    meta_list(out, &items);
}

/// The fault that caused a recovery: the latest effective fault at or before `fault_at_ms`.
fn causing_fault(faults: &[FaultRecord], fault_at_ms: u64) -> Option<&FaultRecord> {
    faults.iter().filter(|f| f.effective && f.at_ms <= fault_at_ms).max_by_key(|f| f.at_ms)
}

fn recovery_row(faults: &[FaultRecord], r: &RecoveryRecord) -> Vec<Cell> {
    let cause = causing_fault(faults, r.fault_at_ms);
    let class = cause.map_or(text("—"), |f| markup(swatch_html(class_colour(&f.class), &f.class)));
    let mut kind = r.kind.clone();
    if r.kind == "failover" {
        kind = format!("failover ({} promoted, {} sources restarted)", r.promoted, r.sources_restarted);
    }
    if r.superseded {
        kind.push_str(", superseded before it finished");
    }
    vec![
        class,
        text(cause.map_or("—", |f| f.target.as_str())),
        num(group(r.fault_at_ms)),
        num(group(r.detected_at_ms)),
        num(group(r.detection_ms)),
        wrap(kind),
        num(r.time_to_resume_ms.map_or("—".to_string(), group)),
        num(group(r.records_replayed)),
        num(charts::bytes_label(r.state_bytes_transferred as f64)),
    ]
}

fn recoveries_body(out: &mut String, record: &RunRecord) {
    if record.recoveries.is_empty() {
        paragraph(out, "empty", "No recoveries.");
        return;
    }
    let headers = [
        "fault class",
        "target",
        "fault at (ms)",
        "detected at (ms)",
        "detection (ms)",
        "kind",
        "time to resume output (ms)",
        "records replayed",
        "state transferred",
    ];
    let rows = record.recoveries.iter().map(|r| recovery_row(&record.faults, r)).collect();
    table(out, &headers, rows, &[]);
}

/// When a fault ended, as the fault list shows it.
fn fault_until(f: &FaultRecord) -> String {
    match f.healed_at_ms {
        Some(healed) => group(healed),
        None if matches!(
            f.action.as_str(),
            "crash" | "pause" | "clog" | "partition" | "loss" | "latency"
        ) =>
        {
            "end of run".to_string()
        }
        None => "— (instant)".to_string(),
    }
}

fn faults_body(out: &mut String, record: &RunRecord) {
    if record.faults.is_empty() {
        paragraph(out, "empty", "No faults injected.");
        return;
    }
    let rows = record
        .faults
        .iter()
        .map(|f| {
            let action =
                if f.mid_checkpoint { format!("{} (mid-checkpoint)", f.action) } else { f.action.clone() };
            vec![
                num(group(f.at_ms)),
                markup(swatch_html(class_colour(&f.class), &f.class)),
                text(action),
                text(&f.target),
                text(f.peer.as_deref().unwrap_or("—")),
                num(fault_until(f)),
                text(if f.effective { "yes" } else { "no effect" }),
            ]
        })
        .collect();
    let classes: Vec<&str> = record.faults.iter().map(|f| if f.effective { "" } else { "faint" }).collect();
    table(out, &["at (ms)", "class", "action", "target", "peer", "until (ms)", "effective"], rows, &classes);
}

fn delivery_body(out: &mut String, record: &RunRecord) {
    let o = &record.output;
    let counts = vec![vec![
        num(group(o.expected)),
        num(group(o.committed)),
        num(group(o.lost)),
        num(group(o.pending)),
        num(group(o.duplicates)),
        num(group(o.wrong)),
    ]];
    table(out, &["expected", "committed", "lost", "pending", "duplicates", "wrong"], counts, &[]);
    meta_list(
        out,
        &[
            ("fenced sink requests", group(record.fencing.sink_requests)),
            ("stale messages dropped", group(record.fencing.stale_messages)),
        ],
    );
    out.push_str("<h3>Offending records</h3>\n");
    if o.offending.is_empty() {
        paragraph(out, "empty", "none");
        return;
    }
    let stories = record.timeline.as_ref().map_or(&[][..], |t| &t.stories[..]);
    let told = |r: &crate::OffendingRecord| {
        stories.iter().any(|s| (s.kind.as_str(), s.output.as_str()) == (r.kind.as_str(), r.output.as_str()))
    };
    let rows = o
        .offending
        .iter()
        .map(|r| {
            let kind = if told(r) {
                let anchor = Story::anchor(&r.kind, &r.output);
                markup(format!("<a href=\"#{}\">{}</a>", escape(&anchor), escape(&r.kind)))
            } else {
                text(&r.kind)
            };
            vec![
                kind,
                text(&r.output),
                text(&r.cause),
                wrap(r.expected.as_deref().unwrap_or("—")),
                wrap(r.committed.as_deref().unwrap_or("—")),
            ]
        })
        .collect();
    table(out, &["kind", "output", "cause", "expected", "committed"], rows, &[]);
    stories_body(out, stories);
}

/// The story of each offending output the table lists, as `faultline explain` tells it.
fn stories_body(out: &mut String, stories: &[Story]) {
    if stories.is_empty() {
        return;
    }
    out.push_str("<h3>How they came about</h3>\n");
    paragraph(
        out,
        "caption",
        "Told from the trace, the logs and the sink, in simulated milliseconds; \
         `faultline explain` tells the same for any seed.",
    );
    for s in stories {
        let anchor = Story::anchor(&s.kind, &s.output);
        let _ = writeln!(
            out,
            "<div class=\"story\" id=\"{}\">\n<h4>{} — {}</h4>\n<ol>",
            escape(&anchor),
            escape(&s.output),
            escape(&s.kind)
        );
        for step in &s.steps {
            let _ = writeln!(
                out,
                "<li><span class=\"num\">{:.3} ms</span> {}</li>",
                step.at_ms,
                escape(&step.text)
            );
        }
        let _ = writeln!(out, "</ol>\n<p class=\"why\">{}</p>\n</div>", escape(&s.why));
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// A comparison's page.
pub fn compare_html(record: &CompareRecord) -> String {
    compare_html_with(record, &charts::compare_charts(record))
}

/// A comparison's page with its charts already drawn.
pub(crate) fn compare_html_with(record: &CompareRecord, charts: &Result<Vec<Chart>, ChartError>) -> String {
    let mut out = page_start(&format!("faultline comparison — {}: {}", record.scenario, record.field));
    let last_seed = (record.from + record.seeds).saturating_sub(1);
    let seeds = if record.seeds == 0 {
        "none".to_string()
    } else {
        format!("{} ({} to {})", record.seeds, record.from, last_seed)
    };
    meta_list(
        &mut out,
        &[
            ("faultline", record.faultline_version.clone()),
            ("field varied", record.field.clone()),
            ("seeds", seeds),
            ("representative seed", record.representative_seed.map_or("none".to_string(), |s| s.to_string())),
            ("wall time", wall(record.wall_ms)),
        ],
    );
    section(&mut out, "variants", "Variants side by side", |out| variants_table(out, &record.variants));
    section(&mut out, "recovery", "Recovery time", |out| {
        chart_or_note(out, charts, "compare-recovery.svg", "No recovery chart.");
    });
    section(&mut out, "throughput", "Throughput of the representative seed", |out| {
        if record.representative_seed.is_none() {
            paragraph(out, "empty", "No seed met the same effective faults under every variant.");
        }
        chart_or_note(out, charts, "compare-throughput.svg", "No throughput chart.");
    });
    page_end(&mut out);
    out
}

/// The index of the variant with the lowest value of `metric` (ties: the first), if any has one.
fn best(variants: &[VariantSummary], metric: impl Fn(&VariantSummary) -> Option<f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in variants.iter().enumerate() {
        if let Some(x) = metric(v).filter(|x| x.is_finite()) {
            if best.is_none_or(|(_, b)| x < b) {
                best = Some((i, x));
            }
        }
    }
    best.map(|(i, _)| i)
}

type Metric = (&'static str, fn(&VariantSummary) -> String);

const VARIANT_METRICS: [Metric; 13] = [
    ("runs", |v| group(v.runs)),
    ("passed", |v| group(v.passed)),
    ("pass rate", |v| format!("{} %", float(v.pass_rate * 100.0, 1))),
    ("recoveries (failovers)", |v| format!("{} ({})", group(v.recoveries), group(v.failovers))),
    ("median recovery (ms)", |v| opt_float(v.median_recovery_ms, 1)),
    ("p99 recovery (ms)", |v| opt_float(v.p99_recovery_ms, 1)),
    ("median detection (ms)", |v| opt_float(v.median_detection_ms, 1)),
    ("median throughput (events / s)", |v| float(v.median_throughput_per_s, 1)),
    ("median records replayed", |v| opt_float(v.median_records_replayed, 1)),
    ("median state transferred", |v| {
        v.median_state_bytes_transferred.map_or("—".into(), charts::bytes_label)
    }),
    ("failed seeds", |v| {
        if v.failed_seeds.is_empty() {
            "none".to_string()
        } else {
            v.failed_seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        }
    }),
    ("scenario hash", |v| v.scenario_hash.clone()),
    ("representative samples", |v| group(v.representative.len() as u64)),
];

/// One column per variant, one row per metric; the lowest recovery times in bold.
fn variants_table(out: &mut String, variants: &[VariantSummary]) {
    if variants.is_empty() {
        paragraph(out, "empty", "No variants.");
        return;
    }
    let best_median = best(variants, |v| v.median_recovery_ms);
    let best_p99 = best(variants, |v| v.p99_recovery_ms);
    let mut headers = vec!["value".to_string()];
    headers.extend(variants.iter().map(|v| v.value.clone()));
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows = VARIANT_METRICS
        .iter()
        .map(|(label, metric)| {
            let bold = match *label {
                "median recovery (ms)" => best_median,
                "p99 recovery (ms)" => best_p99,
                _ => None,
            };
            let mut row = vec![markup(format!("<b>{}</b>", escape(label)))];
            for (i, v) in variants.iter().enumerate() {
                let mut cell = num(metric(v));
                if bold == Some(i) && variants.len() > 1 {
                    cell.class = "num best";
                }
                row.push(cell);
            }
            row
        })
        .collect();
    table(out, &headers, rows, &[]);
}

// ---------------------------------------------------------------------------------------------
// Swarm

/// A swarm's summary page.
pub fn swarm_html(report: &SwarmReport) -> String {
    let swarm = &report.swarm;
    let mut out = page_start(&format!("faultline swarm — {}", swarm.scenario));
    meta_list(
        &mut out,
        &[
            ("faultline", report.faultline_version.clone()),
            ("scenario hash", report.scenario_hash.clone()),
            ("seeds passed", format!("{} / {}", group(swarm.passed), group(swarm.seeds))),
            ("wall time", wall(swarm.wall_ms)),
        ],
    );
    section(&mut out, "summary", "Summary", |out| swarm_summary(out, report));
    section(&mut out, "failures", "Failing seeds", |out| swarm_failures(out, report));
    section(&mut out, "seeds", "Every seed", |out| swarm_seeds(out, &report.seeds));
    page_end(&mut out);
    out
}

fn swarm_summary(out: &mut String, report: &SwarmReport) {
    let swarm = &report.swarm;
    let failed = swarm.seeds.saturating_sub(swarm.passed);
    if failed == 0 {
        out.push_str("<p class=\"verdict pass\">ALL PASSED</p>\n");
    } else {
        let _ = writeln!(out, "<p class=\"verdict fail\">{} FAILED</p>", group(failed));
    }
    meta_list(
        out,
        &[
            ("seeds", group(swarm.seeds)),
            ("passed", group(swarm.passed)),
            ("failed", group(failed)),
            ("seeds with a recovery", group(swarm.seeds_with_recovery)),
            ("seeds with simultaneous crashes", group(swarm.seeds_with_simultaneous_crashes)),
        ],
    );
    out.push_str("<h3>Effective faults by class</h3>\n");
    if swarm.effective_faults.is_empty() {
        paragraph(out, "empty", "No fault took effect.");
        return;
    }
    // Palette order first, then any other class in name order.
    let mut classes: Vec<&str> = FAULT_CLASS_PALETTE
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| swarm.effective_faults.contains_key(*c))
        .collect();
    classes.extend(
        swarm
            .effective_faults
            .keys()
            .map(String::as_str)
            .filter(|c| !FAULT_CLASS_PALETTE.iter().any(|(p, _)| p == c)),
    );
    let rows = classes
        .into_iter()
        .map(|c| vec![markup(swatch_html(class_colour(c), c)), num(group(swarm.effective_faults[c]))])
        .collect();
    table(out, &["class", "effective faults"], rows, &[]);
}

fn report_link(report: Option<&str>) -> String {
    report.map_or(String::new(), |r| format!(" <a href=\"{}\">report</a>", escape(r)))
}

/// Failing seeds, first those of the per-seed list, then failures only the swarm record names.
fn swarm_failures(out: &mut String, report: &SwarmReport) {
    let failing: Vec<&SeedOutcome> = report.seeds.iter().filter(|s| s.verdict != "pass").collect();
    let listed: BTreeSet<u64> = failing.iter().map(|s| s.seed).collect();
    let extra: Vec<_> = report.swarm.failed.iter().filter(|f| !listed.contains(&f.seed)).collect();
    if failing.is_empty() && extra.is_empty() {
        paragraph(out, "empty", "Every seed passed.");
        return;
    }
    for seed in failing {
        let details = report.swarm.failed.iter().find(|f| f.seed == seed.seed);
        let lines: Vec<String> = match details {
            Some(f) if !f.violations.is_empty() => f
                .violations
                .iter()
                .map(|v| format!("<code>{}</code>: {}", escape(&v.invariant), escape(&v.detail)))
                .collect(),
            _ => seed.violations.iter().map(|v| format!("<code>{}</code>", escape(v))).collect(),
        };
        failure_block(out, seed.seed, &lines, &seed.repro, seed.report.as_deref());
    }
    for f in extra {
        let lines: Vec<String> = f
            .violations
            .iter()
            .map(|v| format!("<code>{}</code>: {}", escape(&v.invariant), escape(&v.detail)))
            .collect();
        failure_block(out, f.seed, &lines, &f.repro, None);
    }
}

fn failure_block(out: &mut String, seed: u64, violations: &[String], repro: &str, report: Option<&str>) {
    let _ = writeln!(out, "<div class=\"failure\">\n<h3>seed {seed}{}</h3>", report_link(report));
    if violations.is_empty() {
        paragraph(out, "empty", "No violation recorded.");
    } else {
        out.push_str("<ul>\n");
        for v in violations {
            let _ = writeln!(out, "<li>{v}</li>");
        }
        out.push_str("</ul>\n");
    }
    let _ = writeln!(out, "<pre><code>{}</code></pre>\n</div>", escape(repro));
}

fn swarm_seeds(out: &mut String, seeds: &[SeedOutcome]) {
    if seeds.is_empty() {
        paragraph(out, "empty", "No per-seed outcomes recorded.");
        return;
    }
    out.push_str("<div class=\"grid\">\n");
    for s in seeds {
        let class = if s.verdict == "pass" { "pass" } else { "fail" };
        let title = escape(&format!("seed {}: {}", s.seed, s.verdict));
        match &s.report {
            Some(r) => {
                let _ = write!(
                    out,
                    "<a class=\"cell {class}\" title=\"{title}\" href=\"{}\">{}</a>",
                    escape(r),
                    s.seed
                );
            }
            None => {
                let _ = write!(out, "<span class=\"cell {class}\" title=\"{title}\">{}</span>", s.seed);
            }
        }
    }
    out.push_str("\n</div>\n");
    let rows = seeds
        .iter()
        .map(|s| {
            let class = if s.verdict == "pass" { "pass" } else { "fail" };
            let verdict = format!(
                "<span class=\"{class}\">{}</span>{}",
                escape(&s.verdict),
                report_link(s.report.as_deref())
            );
            vec![
                num(s.seed.to_string()),
                markup(verdict),
                num(group(s.effective_faults)),
                num(group(s.recoveries)),
                num(seconds(s.sim_time_ms)),
                markup(format!("<code>{}</code>", escape(&s.trace_hash))),
            ]
        })
        .collect();
    table(
        out,
        &["seed", "verdict", "effective faults", "recoveries", "simulated time", "trace hash"],
        rows,
        &[],
    );
}
