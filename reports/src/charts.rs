//! Charts: the data tables a report's charts are drawn from, and their SVG drawings.
//!
//! Every chart is made in two steps. The record is first turned into plain data (node lanes,
//! fault spans, time series, checkpoint bars), which [`run_chart_tables`] and
//! [`compare_chart_tables`] expose as [`ChartTable`]s; the SVG is then drawn from that same data
//! with plotters' SVG backend into a `String` ([`run_charts`], [`compare_charts`]). Drawing is
//! deterministic: the same record gives byte-identical SVG. Odd data (empty series, zero-length
//! runs, values past the run's end) is clamped or noted on the chart, never a panic.
//!
//! It also owns the fault-class palette ([`FAULT_CLASS_PALETTE`]) that every chart, legend and
//! page uses.

use std::collections::BTreeSet;
use std::fmt;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{CompareRecord, RunRecord, Sample};

/// The seven fault classes, in legend order, each with its fixed colour (RGB).
pub const FAULT_CLASS_PALETTE: [(&str, (u8, u8, u8)); 7] = [
    ("stream", (0x1F, 0x77, 0xB4)),
    ("network", (0xCC, 0x79, 0xA7)),
    ("processor", (0x2C, 0xA0, 0x2C)),
    ("sink-link", (0x17, 0xBE, 0xCF)),
    ("sink", (0x8C, 0x56, 0x4B)),
    ("manager", (0x94, 0x67, 0xBD)),
    ("driver", (0xBC, 0xBD, 0x22)),
];
/// The colour of a fault class outside the palette.
pub const UNKNOWN_CLASS_COLOUR: (u8, u8, u8) = (0x7F, 0x7F, 0x7F);
/// A node lane while the node is up.
pub const UP_COLOUR: (u8, u8, u8) = (0xB4, 0xB4, 0xB4);
/// A node lane while the node is down.
pub const DOWN_COLOUR: (u8, u8, u8) = (0xD6, 0x27, 0x28);
/// A node lane while the node is paused.
pub const PAUSED_COLOUR: (u8, u8, u8) = (0xFF, 0x9F, 0x1C);

/// The colour of a fault class ([`UNKNOWN_CLASS_COLOUR`] for one outside the palette).
pub fn class_colour(class: &str) -> (u8, u8, u8) {
    FAULT_CLASS_PALETTE.iter().find(|(name, _)| *name == class).map_or(UNKNOWN_CLASS_COLOUR, |(_, c)| *c)
}

/// A colour as CSS hex, e.g. `#1f77b4`.
pub fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The data one chart is drawn from, as a table (what the tests snapshot instead of SVG bytes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChartTable {
    /// The chart it feeds, e.g. `throughput` (or `faults`: the spans every time chart shades).
    pub name: String,
    /// Column names; times are in simulated ms.
    pub columns: Vec<String>,
    /// One row per drawn item, in drawing order; `null` where a value is absent.
    pub rows: Vec<Vec<Value>>,
}

impl ChartTable {
    fn new(name: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> Self {
        ChartTable { name: name.to_string(), columns: columns.iter().map(|c| c.to_string()).collect(), rows }
    }
}

/// One chart drawn as a standalone SVG document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chart {
    /// Its file name in a report directory, e.g. `nodes.svg`.
    pub file: String,
    /// Its caption, also the inlined SVG's accessible label.
    pub title: String,
    /// The whole SVG document (with its `xmlns`).
    pub svg: String,
}

/// Drawing a chart failed (plotters reported an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartError(
    /// What plotters reported.
    pub String,
);

impl fmt::Display for ChartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "drawing a chart failed: {}", self.0)
    }
}

impl std::error::Error for ChartError {}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ChartError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        ChartError(e.to_string())
    }
}

type Drawn<T = ()> = Result<T, ChartError>;
type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;
type Xy<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

// ---------------------------------------------------------------------------------------------
// Data

/// One stretch of a node lane in one state (`up`, `down`, `paused`).
#[derive(Clone, Debug)]
struct Segment {
    lane: usize,
    state: String,
    from_ms: u64,
    to_ms: u64,
}

/// A fault as drawn: the span of simulated time it covers, and the lanes it marks.
#[derive(Clone, Debug)]
struct FaultSpan {
    class: String,
    action: String,
    target: String,
    peer: Option<String>,
    from_ms: u64,
    to_ms: u64,
    /// No duration (e.g. a restart): drawn as a thin line.
    instant: bool,
    effective: bool,
    target_lane: Option<usize>,
    peer_lane: Option<usize>,
}

/// One sample, sanitised: non-finite or negative rates read as 0.
#[derive(Clone, Debug)]
struct Point {
    at_ms: u64,
    input: f64,
    output: f64,
    p50: Option<u64>,
    p99: Option<u64>,
    in_flight: u64,
    state_bytes: u64,
}

#[derive(Clone, Debug)]
struct CheckpointBar {
    id: u64,
    outcome: String,
    started_ms: u64,
    ended_ms: Option<u64>,
    /// Ended − started; an unfinished one counts to the run's end.
    duration_ms: u64,
    state_bytes: Option<u64>,
}

/// Everything a run's charts draw.
#[derive(Clone, Debug)]
struct RunData {
    end_ms: u64,
    /// Node name and role, in lane order.
    lanes: Vec<(String, String)>,
    segments: Vec<Segment>,
    faults: Vec<FaultSpan>,
    points: Vec<Point>,
    checkpoints: Vec<CheckpointBar>,
}

impl RunData {
    /// `None` when the record has no timeline.
    fn of(record: &RunRecord) -> Option<RunData> {
        let timeline = record.timeline.as_ref()?;
        let end_ms = run_end_ms(record);
        let lanes: Vec<(String, String)> =
            timeline.nodes.iter().map(|l| (l.node.clone(), l.role.clone())).collect();
        let segments = timeline
            .nodes
            .iter()
            .enumerate()
            .flat_map(|(i, lane)| lane_segments(i, &lane.intervals, end_ms))
            .collect();
        let faults = fault_spans(record, &lanes, end_ms);
        let mut points: Vec<Point> = timeline.samples.iter().map(point).collect();
        points.sort_by_key(|p| p.at_ms);
        let checkpoints = timeline.checkpoints.iter().map(|c| checkpoint_bar(c, end_ms)).collect();
        Some(RunData { end_ms, lanes, segments, faults, points, checkpoints })
    }

    fn end_s(&self) -> f64 {
        secs(self.end_ms)
    }
}

/// The end of the time axis: the run's simulated time, stretched to the latest start of anything
/// drawn (ends past it are clamped), and never zero.
fn run_end_ms(record: &RunRecord) -> u64 {
    let mut end = record.sim_time_ms;
    end = end.max(record.faults.iter().map(|f| f.at_ms).max().unwrap_or(0));
    if let Some(t) = &record.timeline {
        end = end.max(t.samples.iter().map(|s| s.at_ms).max().unwrap_or(0));
        end = end.max(t.checkpoints.iter().map(|c| c.started_at_ms).max().unwrap_or(0));
    }
    end.max(1)
}

fn lane_segments(lane: usize, intervals: &[crate::NodeInterval], end_ms: u64) -> Vec<Segment> {
    let mut sorted: Vec<&crate::NodeInterval> = intervals.iter().collect();
    sorted.sort_by(|a, b| (a.from_ms, a.to_ms, &a.state).cmp(&(b.from_ms, b.to_ms, &b.state)));
    let mut out = Vec::new();
    let mut cursor = 0;
    for iv in sorted {
        let from_ms = iv.from_ms.min(end_ms);
        let to_ms = iv.to_ms.clamp(from_ms, end_ms);
        if from_ms > cursor {
            out.push(Segment { lane, state: "up".into(), from_ms: cursor, to_ms: from_ms });
        }
        out.push(Segment { lane, state: iv.state.clone(), from_ms, to_ms });
        cursor = cursor.max(to_ms);
    }
    if cursor < end_ms {
        out.push(Segment { lane, state: "up".into(), from_ms: cursor, to_ms: end_ms });
    }
    out
}

/// Actions that last until healed; without a healing time they last to the run's end.
fn lasts_until_healed(action: &str) -> bool {
    matches!(action, "crash" | "pause" | "clog" | "partition" | "loss" | "latency")
}

fn fault_spans(record: &RunRecord, lanes: &[(String, String)], end_ms: u64) -> Vec<FaultSpan> {
    let lane_of = |name: &str| lanes.iter().position(|(node, _)| node == name);
    record
        .faults
        .iter()
        .map(|f| {
            let from_ms = f.at_ms.min(end_ms);
            let (to_ms, instant) = match f.healed_at_ms {
                Some(healed) => (healed.clamp(from_ms, end_ms), false),
                None if lasts_until_healed(&f.action) => (end_ms, false),
                None => (from_ms, true),
            };
            FaultSpan {
                class: f.class.clone(),
                action: f.action.clone(),
                target: f.target.clone(),
                peer: f.peer.clone(),
                from_ms,
                to_ms,
                instant,
                effective: f.effective,
                target_lane: lane_of(&f.target),
                peer_lane: f.peer.as_deref().and_then(lane_of),
            }
        })
        .collect()
}

fn rate(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

fn point(s: &Sample) -> Point {
    Point {
        at_ms: s.at_ms,
        input: rate(s.input_per_s),
        output: rate(s.output_per_s),
        p50: s.latency_p50_ms,
        p99: s.latency_p99_ms,
        in_flight: s.in_flight,
        state_bytes: s.state_bytes,
    }
}

fn checkpoint_bar(c: &crate::CheckpointSpan, end_ms: u64) -> CheckpointBar {
    CheckpointBar {
        id: c.id,
        outcome: c.outcome.clone(),
        started_ms: c.started_at_ms,
        ended_ms: c.ended_at_ms,
        duration_ms: c.ended_at_ms.unwrap_or(end_ms.max(c.started_at_ms)).saturating_sub(c.started_at_ms),
        state_bytes: c.state_bytes,
    }
}

/// One variant's line in the comparison charts.
#[derive(Clone, Debug)]
struct VariantData {
    value: String,
    runs: u64,
    recoveries: u64,
    median_recovery_ms: Option<f64>,
    p99_recovery_ms: Option<f64>,
    /// (at_ms, output committed so far), sorted by time.
    output: Vec<(u64, f64)>,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

fn variant_data(record: &CompareRecord) -> Vec<VariantData> {
    record
        .variants
        .iter()
        .map(|v| {
            let mut samples: Vec<&Sample> = v.representative.iter().collect();
            samples.sort_by_key(|s| s.at_ms);
            // Each total is at its bucket's end: the next sample's start.
            let step = samples.windows(2).map(|w| w[1].at_ms - w[0].at_ms).min().unwrap_or(0);
            let output: Vec<(u64, f64)> =
                samples.iter().map(|s| (s.at_ms + step, s.output_total as f64)).collect();
            VariantData {
                value: v.value.clone(),
                runs: v.runs,
                recoveries: v.recoveries,
                median_recovery_ms: finite(v.median_recovery_ms),
                p99_recovery_ms: finite(v.p99_recovery_ms),
                output,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tables

/// The tables a run's charts are drawn from: `nodes` (lane segments), `faults` (the spans every
/// time chart shades), `throughput`, `latency`, `checkpoints` and `in-flight`. Empty when the
/// record has no timeline.
pub fn run_chart_tables(record: &RunRecord) -> Vec<ChartTable> {
    match RunData::of(record) {
        Some(data) => run_tables(&data),
        None => Vec::new(),
    }
}

fn run_tables(data: &RunData) -> Vec<ChartTable> {
    vec![
        nodes_table(data),
        faults_table(data),
        ChartTable::new(
            "throughput",
            &["at_ms", "input_per_s", "output_per_s"],
            data.points.iter().map(|p| vec![json!(p.at_ms), json!(p.input), json!(p.output)]).collect(),
        ),
        ChartTable::new(
            "latency",
            &["at_ms", "p50_ms", "p99_ms"],
            data.points.iter().map(|p| vec![json!(p.at_ms), json!(p.p50), json!(p.p99)]).collect(),
        ),
        checkpoints_table(data),
        ChartTable::new(
            "in-flight",
            &["at_ms", "in_flight", "state_bytes"],
            data.points
                .iter()
                .map(|p| vec![json!(p.at_ms), json!(p.in_flight), json!(p.state_bytes)])
                .collect(),
        ),
    ]
}

fn nodes_table(data: &RunData) -> ChartTable {
    let rows = data
        .segments
        .iter()
        .map(|s| {
            let (node, role) = &data.lanes[s.lane];
            vec![json!(s.lane), json!(node), json!(role), json!(s.state), json!(s.from_ms), json!(s.to_ms)]
        })
        .collect();
    ChartTable::new("nodes", &["lane", "node", "role", "state", "from_ms", "to_ms"], rows)
}

fn faults_table(data: &RunData) -> ChartTable {
    let rows = data
        .faults
        .iter()
        .map(|f| {
            vec![
                json!(f.class),
                json!(hex(class_colour(&f.class))),
                json!(f.action),
                json!(f.target),
                json!(f.peer),
                json!(f.from_ms),
                json!(f.to_ms),
                json!(f.instant),
                json!(f.effective),
                json!(f.target_lane),
                json!(f.peer_lane),
            ]
        })
        .collect();
    let columns = [
        "class",
        "colour",
        "action",
        "target",
        "peer",
        "from_ms",
        "to_ms",
        "instant",
        "effective",
        "target_lane",
        "peer_lane",
    ];
    ChartTable::new("faults", &columns, rows)
}

fn checkpoints_table(data: &RunData) -> ChartTable {
    let rows = data
        .checkpoints
        .iter()
        .map(|c| {
            vec![
                json!(c.id),
                json!(c.outcome),
                json!(c.started_ms),
                json!(c.ended_ms),
                json!(c.duration_ms),
                json!(c.state_bytes),
            ]
        })
        .collect();
    let columns = ["id", "outcome", "started_at_ms", "ended_at_ms", "duration_ms", "state_bytes"];
    ChartTable::new("checkpoints", &columns, rows)
}

/// The tables a comparison's charts are drawn from: `compare-throughput` (each variant's
/// representative output over time) and `compare-recovery` (median and p99 recovery per variant).
pub fn compare_chart_tables(record: &CompareRecord) -> Vec<ChartTable> {
    compare_tables(&variant_data(record))
}

fn compare_tables(variants: &[VariantData]) -> Vec<ChartTable> {
    let throughput = variants
        .iter()
        .flat_map(|v| v.output.iter().map(|(at, out)| vec![json!(v.value), json!(at), json!(out)]))
        .collect();
    let recovery = variants
        .iter()
        .map(|v| {
            vec![
                json!(v.value),
                json!(v.runs),
                json!(v.recoveries),
                json!(v.median_recovery_ms),
                json!(v.p99_recovery_ms),
            ]
        })
        .collect();
    vec![
        ChartTable::new("compare-throughput", &["variant", "at_ms", "output_total"], throughput),
        ChartTable::new(
            "compare-recovery",
            &["variant", "runs", "recoveries", "median_recovery_ms", "p99_recovery_ms"],
            recovery,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Charts

const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";
const INPUT_COLOUR: RGBColor = RGBColor(0x8A, 0x8A, 0x8A);
const OUTPUT_COLOUR: RGBColor = RGBColor(0x1A, 0x1A, 0x1A);
const P50_COLOUR: RGBColor = RGBColor(0x1A, 0x1A, 0x1A);
const P99_COLOUR: RGBColor = RGBColor(0xD6, 0x27, 0x28);
const COMPLETED_COLOUR: RGBColor = RGBColor(0x4C, 0x72, 0xB0);
const ABORTED_COLOUR: RGBColor = RGBColor(0xD6, 0x27, 0x28);
const UNFINISHED_COLOUR: RGBColor = RGBColor(0xC0, 0xC0, 0xC0);
const STATE_COLOUR: RGBColor = RGBColor(0x81, 0x72, 0xB3);
/// The state-size line, drawn over fault shading: a colour no fault class has.
const STATE_LINE_COLOUR: RGBColor = RGBColor(0x5A, 0x5A, 0x5A);
const MEDIAN_COLOUR: RGBColor = RGBColor(0x4C, 0x72, 0xB0);
const P99_BAR_COLOUR: RGBColor = RGBColor(0xDD, 0x84, 0x52);
/// One colour per compared variant, cycled.
const VARIANT_COLOURS: [RGBColor; 8] = [
    RGBColor(0x1F, 0x77, 0xB4),
    RGBColor(0xD6, 0x27, 0x28),
    RGBColor(0x2C, 0xA0, 0x2C),
    RGBColor(0x94, 0x67, 0xBD),
    RGBColor(0xFF, 0x7F, 0x0E),
    RGBColor(0x8C, 0x56, 0x4B),
    RGBColor(0xE3, 0x77, 0xC2),
    RGBColor(0x17, 0xBE, 0xCF),
];

fn rgb((r, g, b): (u8, u8, u8)) -> RGBColor {
    RGBColor(r, g, b)
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The charts of a run: `nodes.svg`, `throughput.svg`, `latency.svg`, `checkpoints.svg` and
/// `in-flight.svg`. Empty when the record has no timeline.
pub fn run_charts(record: &RunRecord) -> Result<Vec<Chart>, ChartError> {
    let Some(data) = RunData::of(record) else {
        return Ok(Vec::new());
    };
    let chart = |file: &str, title: &str, svg: String| Chart { file: file.into(), title: title.into(), svg };
    Ok(vec![
        chart("nodes.svg", "Nodes over simulated time", nodes_svg(&data)?),
        chart("throughput.svg", "Throughput", throughput_svg(&data)?),
        chart("latency.svg", "End-to-end latency", latency_svg(&data)?),
        chart("checkpoints.svg", "Checkpoints", checkpoints_svg(&data)?),
        chart("in-flight.svg", "In flight and state size", in_flight_svg(&data)?),
    ])
}

/// The charts of a comparison: `compare-throughput.svg` and `compare-recovery.svg`.
pub fn compare_charts(record: &CompareRecord) -> Result<Vec<Chart>, ChartError> {
    let variants = variant_data(record);
    let seed =
        record.representative_seed.map_or("no representative seed".to_string(), |s| format!("seed {s}"));
    let throughput_title = format!("Output committed over time ({seed})");
    Ok(vec![
        Chart {
            file: "compare-throughput.svg".into(),
            svg: compare_throughput_svg(&variants, &throughput_title)?,
            title: throughput_title,
        },
        Chart {
            file: "compare-recovery.svg".into(),
            title: "Recovery time per variant".into(),
            svg: compare_recovery_svg(&variants)?,
        },
    ])
}

// --- drawing helpers --------------------------------------------------------------------------

/// Draws into a fresh SVG document of `size` on a white background.
fn render(size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> Drawn) -> Drawn<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(buf)
}

/// A titled chart of `body_height` pixels with a legend strip below it.
fn render_with_legend(
    title: &str,
    body_height: u32,
    legend: &[LegendItem],
    draw: impl FnOnce(&Area<'_>) -> Drawn,
) -> Drawn<String> {
    const TITLE_HEIGHT: u32 = 34;
    let (positions, legend_height) = legend_layout(legend, WIDTH);
    render((WIDTH, TITLE_HEIGHT + body_height + legend_height), |root| {
        let (top, rest) = root.split_vertically(TITLE_HEIGHT);
        top.draw_text(title, &text_style(17, HPos::Center, VPos::Center), (WIDTH as i32 / 2, 17))?;
        let (body, legend_area) = rest.split_vertically(body_height);
        draw(&body)?;
        draw_legend(&legend_area, legend, &positions)
    })
}

fn text_style(size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK).pos(Pos::new(h, v))
}

/// A legend entry: a swatch (or a line) in a colour, and its label.
#[derive(Clone, Debug)]
struct LegendItem {
    label: String,
    colour: RGBColor,
    alpha: f64,
    line: bool,
}

fn swatch(label: &str, colour: RGBColor, alpha: f64) -> LegendItem {
    LegendItem { label: label.to_string(), colour, alpha, line: false }
}

fn line_item(label: &str, colour: RGBColor) -> LegendItem {
    LegendItem { label: label.to_string(), colour, alpha: 1.0, line: true }
}

const LEGEND_ROW: i32 = 22;
const LEGEND_LEFT: i32 = 70;

/// Where each legend item goes (left to right, wrapping), and the strip's height.
fn legend_layout(items: &[LegendItem], width: u32) -> (Vec<(i32, i32)>, u32) {
    if items.is_empty() {
        return (Vec::new(), 0);
    }
    let (mut x, mut y) = (LEGEND_LEFT, 6);
    let mut positions = Vec::with_capacity(items.len());
    for item in items {
        let item_width = 30 + 7 * item.label.chars().count() as i32 + 18;
        if x + item_width > width as i32 && x > LEGEND_LEFT {
            x = LEGEND_LEFT;
            y += LEGEND_ROW;
        }
        positions.push((x, y));
        x += item_width;
    }
    (positions, (y + LEGEND_ROW + 4) as u32)
}

fn draw_legend(area: &Area<'_>, items: &[LegendItem], positions: &[(i32, i32)]) -> Drawn {
    let label = text_style(13, HPos::Left, VPos::Center);
    for (item, &(x, y)) in items.iter().zip(positions) {
        let mid = y + LEGEND_ROW / 2;
        if item.line {
            area.draw(&PathElement::new(vec![(x, mid), (x + 22, mid)], item.colour.stroke_width(3)))?;
        } else {
            let fill = item.colour.mix(item.alpha).filled();
            area.draw(&Rectangle::new([(x, mid - 7), (x + 22, mid + 7)], fill))?;
        }
        area.draw(&Text::new(item.label.clone(), (x + 30, mid), label.clone()))?;
    }
    Ok(())
}

/// Legend entries for the fault classes present (palette order, then unknown classes), and a
/// faint entry when some fault had no effect.
fn fault_legend(faults: &[FaultSpan]) -> Vec<LegendItem> {
    let present: BTreeSet<&str> = faults.iter().map(|f| f.class.as_str()).collect();
    let mut items: Vec<LegendItem> = FAULT_CLASS_PALETTE
        .iter()
        .filter(|(class, _)| present.contains(class))
        .map(|(class, colour)| swatch(&format!("{class} fault"), rgb(*colour), 0.85))
        .collect();
    for class in present.iter().filter(|c| !FAULT_CLASS_PALETTE.iter().any(|(p, _)| p == *c)) {
        items.push(swatch(&format!("{class} fault"), rgb(UNKNOWN_CLASS_COLOUR), 0.85));
    }
    if faults.iter().any(|f| !f.effective) {
        items.push(swatch("no effect (faint)", rgb(UNKNOWN_CLASS_COLOUR), 0.25));
    }
    items
}

/// A positive, finite axis maximum: the largest value with some headroom, or 1.
fn axis_max(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0_f64, f64::max) * 1.1;
    if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    }
}

/// An axis number without trailing zeros.
fn axis_number(v: &f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// A count with an SI suffix (`12k`, `1.5M`).
fn si_number(v: &f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", axis_number(&(v / 1e9)))
    } else if a >= 1e6 {
        format!("{}M", axis_number(&(v / 1e6)))
    } else if a >= 1e3 {
        format!("{}k", axis_number(&(v / 1e3)))
    } else {
        axis_number(v)
    }
}

/// A byte count in binary units (`512 B`, `1.5 KiB`).
pub(crate) fn bytes_label(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = v;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let shown = if unit == 0 { format!("{value:.0}") } else { format!("{value:.1}") };
    format!("{shown} {}", UNITS[unit])
}

fn bytes_axis(v: &f64) -> String {
    bytes_label(*v)
}

/// Axes over simulated time (seconds) and `0..y_max`, with the mesh drawn.
fn time_axes<'a, 'b>(
    area: &Area<'b>,
    end_s: f64,
    y_max: f64,
    y_desc: &str,
    y_format: &dyn Fn(&f64) -> String,
) -> Drawn<Xy<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..end_s, 0.0..y_max)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
        .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
        .max_light_lines(2)
        .label_style((FONT, 12))
        .x_desc("simulated time (s)")
        .y_desc(y_desc)
        .x_label_formatter(&axis_number)
        .y_label_formatter(y_format)
        .draw()?;
    Ok(chart)
}

/// The width a span of `[from, to]` is drawn with: at least a visible sliver of the axis.
fn visible_span(from: f64, to: f64, axis_end: f64) -> (f64, f64) {
    let min = axis_end / 400.0;
    if to - from >= min {
        (from, to)
    } else {
        let to = (from + min).min(axis_end);
        ((to - min).max(0.0), to)
    }
}

/// Shades every fault's span as a translucent vertical band in its class colour.
fn shade_faults(chart: &mut Xy<'_, '_>, faults: &[FaultSpan], end_s: f64, y_max: f64) -> Drawn {
    for fault in faults {
        let (from, to) = visible_span(secs(fault.from_ms), secs(fault.to_ms), end_s);
        let alpha = match (fault.effective, fault.instant) {
            (true, true) => 0.7,
            (true, false) => 0.16,
            (false, true) => 0.25,
            (false, false) => 0.06,
        };
        let fill = rgb(class_colour(&fault.class)).mix(alpha).filled();
        chart.draw_series(std::iter::once(Rectangle::new([(from, 0.0), (to, y_max)], fill)))?;
    }
    Ok(())
}

/// A line through the points that have a value, broken where one is missing; lone points are
/// drawn as dots.
fn draw_broken_line(chart: &mut Xy<'_, '_>, points: &[(f64, Option<f64>)], colour: RGBColor) -> Drawn {
    let runs = points.split(|(_, y)| y.is_none()).filter(|run| !run.is_empty());
    for run in runs {
        let run: Vec<(f64, f64)> = run.iter().filter_map(|&(x, y)| y.map(|y| (x, y))).collect();
        if run.len() == 1 {
            chart.draw_series(run.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        } else {
            chart.draw_series(LineSeries::new(run, colour.stroke_width(2)))?;
        }
    }
    Ok(())
}

/// A note in the middle of a chart's plotting area.
fn draw_note(chart: &Xy<'_, '_>, note: &str) -> Drawn {
    let (x, y) = (chart.x_range(), chart.y_range());
    let centre = ((x.start + x.end) / 2.0, (y.start + y.end) / 2.0);
    let style = text_style(14, HPos::Center, VPos::Center).color(&RGBColor(0x66, 0x66, 0x66));
    chart.plotting_area().draw(&Text::new(note.to_string(), centre, style))?;
    Ok(())
}

// --- run charts -------------------------------------------------------------------------------

const LANE_HEIGHT: u32 = 30;

fn nodes_svg(data: &RunData) -> Drawn<String> {
    let lanes = data.lanes.len().max(1);
    let mut legend = vec![
        swatch("up", rgb(UP_COLOUR), 1.0),
        swatch("down", rgb(DOWN_COLOUR), 0.9),
        swatch("paused", rgb(PAUSED_COLOUR), 0.9),
    ];
    legend.extend(fault_legend(&data.faults));
    let body = 70 + LANE_HEIGHT * lanes as u32;
    render_with_legend("Nodes over simulated time", body, &legend, |area| {
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(130)
            .build_cartesian_2d(0.0..data.end_s(), -0.5..(lanes as f64 - 0.5))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .max_light_lines(2)
            .label_style((FONT, 12))
            .x_desc("simulated time (s)")
            .x_label_formatter(&axis_number)
            .draw()?;
        draw_lane_labels(area, &chart, data)?;
        draw_lane_segments(&mut chart, data)?;
        draw_lane_faults(&mut chart, data)?;
        if data.lanes.is_empty() {
            draw_note(&chart, "no node lanes recorded")?;
        }
        Ok(())
    })
}

/// The y centre of lane `i`: the first lane on top.
fn lane_y(data: &RunData, lane: usize) -> f64 {
    (data.lanes.len().max(1) - 1 - lane) as f64
}

fn draw_lane_labels(area: &Area<'_>, chart: &Xy<'_, '_>, data: &RunData) -> Drawn {
    let style = text_style(13, HPos::Right, VPos::Center);
    let (area_x, area_y) = area.get_base_pixel();
    for (i, (node, _)) in data.lanes.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, lane_y(data, i)));
        area.draw(&Text::new(node.clone(), (x - area_x - 8, y - area_y), style.clone()))?;
    }
    Ok(())
}

fn draw_lane_segments(chart: &mut Xy<'_, '_>, data: &RunData) -> Drawn {
    let end_s = data.end_s();
    for seg in &data.segments {
        let y = lane_y(data, seg.lane);
        let (from, to) = (secs(seg.from_ms), secs(seg.to_ms));
        let (half, colour, alpha) = match seg.state.as_str() {
            "up" => (0.06, rgb(UP_COLOUR), 1.0),
            "down" => (0.24, rgb(DOWN_COLOUR), 0.9),
            "paused" => (0.24, rgb(PAUSED_COLOUR), 0.9),
            _ => (0.24, rgb(UNKNOWN_CLASS_COLOUR), 0.9),
        };
        let (from, to) = if seg.state == "up" { (from, to) } else { visible_span(from, to, end_s) };
        let rect = Rectangle::new([(from, y - half), (to, y + half)], colour.mix(alpha).filled());
        chart.draw_series(std::iter::once(rect))?;
    }
    Ok(())
}

/// Each fault on its target's lane (and its peer's): a strip above the lane over its span, or a
/// tick across the lane for an instant.
fn draw_lane_faults(chart: &mut Xy<'_, '_>, data: &RunData) -> Drawn {
    let end_s = data.end_s();
    for fault in &data.faults {
        let colour = rgb(class_colour(&fault.class));
        let alpha = if fault.effective { 0.9 } else { 0.3 };
        for lane in [fault.target_lane, fault.peer_lane].into_iter().flatten() {
            let y = lane_y(data, lane);
            let (from, to) = visible_span(secs(fault.from_ms), secs(fault.to_ms), end_s);
            let (low, high) = if fault.instant { (y - 0.45, y + 0.45) } else { (y + 0.29, y + 0.45) };
            let rect = Rectangle::new([(from, low), (to, high)], colour.mix(alpha).filled());
            chart.draw_series(std::iter::once(rect))?;
        }
    }
    Ok(())
}

fn throughput_svg(data: &RunData) -> Drawn<String> {
    let mut legend =
        vec![line_item("input (sources read)", INPUT_COLOUR), line_item("committed output", OUTPUT_COLOUR)];
    legend.extend(fault_legend(&data.faults));
    render_with_legend("Throughput", 340, &legend, |area| {
        let y_max = axis_max(data.points.iter().flat_map(|p| [p.input, p.output]));
        let mut chart = time_axes(area, data.end_s(), y_max, "records / simulated s", &si_number)?;
        shade_faults(&mut chart, &data.faults, data.end_s(), y_max)?;
        let input: Vec<_> = data.points.iter().map(|p| (secs(p.at_ms), Some(p.input))).collect();
        let output: Vec<_> = data.points.iter().map(|p| (secs(p.at_ms), Some(p.output))).collect();
        draw_broken_line(&mut chart, &input, INPUT_COLOUR)?;
        draw_broken_line(&mut chart, &output, OUTPUT_COLOUR)?;
        if data.points.is_empty() {
            draw_note(&chart, "no samples")?;
        }
        Ok(())
    })
}

fn latency_svg(data: &RunData) -> Drawn<String> {
    let mut legend = vec![line_item("p50", P50_COLOUR), line_item("p99", P99_COLOUR)];
    legend.extend(fault_legend(&data.faults));
    render_with_legend("End-to-end latency", 340, &legend, |area| {
        let values = data.points.iter().flat_map(|p| [p.p50, p.p99]).flatten().map(|v| v as f64);
        let y_max = axis_max(values);
        let mut chart = time_axes(area, data.end_s(), y_max, "latency (ms)", &si_number)?;
        shade_faults(&mut chart, &data.faults, data.end_s(), y_max)?;
        let p50: Vec<_> = data.points.iter().map(|p| (secs(p.at_ms), p.p50.map(|v| v as f64))).collect();
        let p99: Vec<_> = data.points.iter().map(|p| (secs(p.at_ms), p.p99.map(|v| v as f64))).collect();
        draw_broken_line(&mut chart, &p50, P50_COLOUR)?;
        draw_broken_line(&mut chart, &p99, P99_COLOUR)?;
        if data.points.iter().all(|p| p.p50.is_none() && p.p99.is_none()) {
            draw_note(&chart, "no output committed: no latency")?;
        }
        Ok(())
    })
}

fn in_flight_svg(data: &RunData) -> Drawn<String> {
    let mut legend = vec![
        line_item("in flight (generated, not yet committed)", OUTPUT_COLOUR),
        line_item("state size of the latest completed checkpoint", STATE_LINE_COLOUR),
    ];
    legend.extend(fault_legend(&data.faults));
    render_with_legend("In flight and state size", 440, &legend, |area| {
        let (top, bottom) = area.split_vertically(220);
        let in_flight: Vec<_> = data.points.iter().map(|p| (secs(p.at_ms), p.in_flight as f64)).collect();
        let state: Vec<_> = data.points.iter().map(|p| (secs(p.at_ms), p.state_bytes as f64)).collect();
        for (panel, series, colour, desc, format) in [
            (&top, in_flight, OUTPUT_COLOUR, "records in flight", &si_number as &dyn Fn(&f64) -> String),
            (&bottom, state, STATE_LINE_COLOUR, "state size", &bytes_axis),
        ] {
            let y_max = axis_max(series.iter().map(|(_, y)| *y));
            let mut chart = time_axes(panel, data.end_s(), y_max, desc, format)?;
            shade_faults(&mut chart, &data.faults, data.end_s(), y_max)?;
            let series: Vec<_> = series.into_iter().map(|(x, y)| (x, Some(y))).collect();
            draw_broken_line(&mut chart, &series, colour)?;
            if series.is_empty() {
                draw_note(&chart, "no samples")?;
            }
        }
        Ok(())
    })
}

fn checkpoint_colour(outcome: &str) -> RGBColor {
    match outcome {
        "completed" => COMPLETED_COLOUR,
        "aborted" => ABORTED_COLOUR,
        _ => UNFINISHED_COLOUR,
    }
}

fn checkpoints_svg(data: &RunData) -> Drawn<String> {
    let legend = vec![
        swatch("completed (duration)", COMPLETED_COLOUR, 1.0),
        swatch("aborted (duration, marked ×)", ABORTED_COLOUR, 1.0),
        swatch("unfinished (to the run's end)", UNFINISHED_COLOUR, 1.0),
        swatch("state size", STATE_COLOUR, 1.0),
    ];
    let ids = data.checkpoints.iter().map(|c| c.id);
    let (low, high) = (ids.clone().min().unwrap_or(0) as f64, ids.max().unwrap_or(0) as f64);
    let x_range = (low - 0.5)..(high + 0.5);
    render_with_legend("Checkpoints", 440, &legend, |area| {
        let (top, bottom) = area.split_vertically(220);
        let durations = data.checkpoints.iter().map(|c| (c.id, c.duration_ms as f64, &c.outcome));
        let y_max = axis_max(durations.clone().map(|(_, d, _)| d));
        let mut chart = checkpoint_axes(&top, x_range.clone(), y_max, "duration (ms)", &si_number)?;
        for (id, duration, outcome) in durations {
            draw_bar(&mut chart, id as f64, duration, checkpoint_colour(outcome))?;
            if outcome == "aborted" {
                let mark =
                    Cross::new((id as f64, duration + y_max * 0.04), 5, ABORTED_COLOUR.stroke_width(2));
                chart.draw_series(std::iter::once(mark))?;
            }
        }
        let sizes = data.checkpoints.iter().filter_map(|c| c.state_bytes.map(|b| (c.id, b as f64)));
        let y_max = axis_max(sizes.clone().map(|(_, b)| b));
        let mut chart2 = checkpoint_axes(&bottom, x_range, y_max, "state size", &bytes_axis)?;
        for (id, bytes) in sizes {
            draw_bar(&mut chart2, id as f64, bytes, STATE_COLOUR)?;
        }
        if data.checkpoints.is_empty() {
            draw_note(&chart, "no checkpoints")?;
        }
        Ok(())
    })
}

/// Whole numbers only: for axes over ids.
fn integer_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

fn checkpoint_axes<'a, 'b>(
    area: &Area<'b>,
    x_range: std::ops::Range<f64>,
    y_max: f64,
    y_desc: &str,
    y_format: &dyn Fn(&f64) -> String,
) -> Drawn<Xy<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, 0.0..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
        .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
        .max_light_lines(2)
        .label_style((FONT, 12))
        .x_desc("checkpoint id")
        .y_desc(y_desc)
        .x_label_formatter(&integer_label)
        .y_label_formatter(y_format)
        .draw()?;
    Ok(chart)
}

fn draw_bar(chart: &mut Xy<'_, '_>, x: f64, height: f64, colour: RGBColor) -> Drawn {
    let rect = Rectangle::new([(x - 0.35, 0.0), (x + 0.35, height)], colour.filled());
    chart.draw_series(std::iter::once(rect))?;
    Ok(())
}

// --- comparison charts ------------------------------------------------------------------------

fn variant_colour(i: usize) -> RGBColor {
    VARIANT_COLOURS[i % VARIANT_COLOURS.len()]
}

fn compare_throughput_svg(variants: &[VariantData], title: &str) -> Drawn<String> {
    let legend: Vec<LegendItem> =
        variants.iter().enumerate().map(|(i, v)| line_item(&v.value, variant_colour(i))).collect();
    let end_ms = variants.iter().flat_map(|v| v.output.iter().map(|(at, _)| *at)).max().unwrap_or(0).max(1);
    render_with_legend(title, 340, &legend, |area| {
        let y_max = axis_max(variants.iter().flat_map(|v| v.output.iter().map(|(_, y)| *y)));
        let mut chart = time_axes(area, secs(end_ms), y_max, "output committed so far", &si_number)?;
        for (i, v) in variants.iter().enumerate() {
            let points: Vec<_> = v.output.iter().map(|&(at, y)| (secs(at), Some(y))).collect();
            draw_broken_line(&mut chart, &points, variant_colour(i))?;
        }
        if variants.iter().all(|v| v.output.is_empty()) {
            draw_note(&chart, "no representative samples")?;
        }
        Ok(())
    })
}

fn compare_recovery_svg(variants: &[VariantData]) -> Drawn<String> {
    let legend = vec![swatch("median", MEDIAN_COLOUR, 1.0), swatch("p99", P99_BAR_COLOUR, 1.0)];
    let n = variants.len().max(1);
    render_with_legend("Recovery time per variant (fault → output resumed)", 340, &legend, |area| {
        let values = variants.iter().flat_map(|v| [v.median_recovery_ms, v.p99_recovery_ms]).flatten();
        let y_max = axis_max(values) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(72)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .max_light_lines(2)
            .label_style((FONT, 12))
            .y_desc("recovery time (ms)")
            .y_label_formatter(&si_number)
            .draw()?;
        for (i, v) in variants.iter().enumerate() {
            draw_variant_bars(area, &mut chart, i as f64, v, y_max)?;
        }
        if variants.is_empty() {
            draw_note(&chart, "no variants")?;
        }
        Ok(())
    })
}

/// A variant's median and p99 bars with their values on top, its name under the axis, and a note
/// where it has no value.
fn draw_variant_bars(area: &Area<'_>, chart: &mut Xy<'_, '_>, x: f64, v: &VariantData, y_max: f64) -> Drawn {
    let value_style = text_style(12, HPos::Center, VPos::Bottom);
    for (offset, value, colour) in
        [(-0.2, v.median_recovery_ms, MEDIAN_COLOUR), (0.2, v.p99_recovery_ms, P99_BAR_COLOUR)]
    {
        let Some(value) = value else { continue };
        let value = value.max(0.0);
        let rect = Rectangle::new([(x + offset - 0.17, 0.0), (x + offset + 0.17, value)], colour.filled());
        chart.draw_series(std::iter::once(rect))?;
        let label = Text::new(
            format!("{} ms", axis_number(&value.round())),
            (x + offset, value),
            value_style.clone(),
        );
        chart.draw_series(std::iter::once(label))?;
    }
    if v.median_recovery_ms.is_none() && v.p99_recovery_ms.is_none() {
        let note = text_style(12, HPos::Center, VPos::Center).color(&RGBColor(0x66, 0x66, 0x66));
        let text = Text::new("no recovery resumed output".to_string(), (x, y_max / 8.0), note);
        chart.draw_series(std::iter::once(text))?;
    }
    let (base_x, base_y) = area.get_base_pixel();
    let (px, py) = chart.backend_coord(&(x, 0.0));
    let name =
        Text::new(v.value.clone(), (px - base_x, py - base_y + 8), text_style(13, HPos::Center, VPos::Top));
    area.draw(&name)?;
    Ok(())
}
