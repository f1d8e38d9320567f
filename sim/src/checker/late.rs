//! The late-data checker: what the sink's late output says was late must have been late,
//! must be there once, and — with the window results — must account for every input.
//!
//! Which records are late depends on arrival order, so the reference model cannot predict the
//! set; it takes the committed late set as given and leaves it out (see `reference`). This
//! checker makes sure that set is honest:
//! - `late-unknown`: each late record is a real input of a kind the pipeline reads, kept by its
//!   filters, with the event time the input has;
//! - `late-duplicate`: no input is late twice;
//! - `late-implausible`: each was behind the watermark it names by more than the allowed
//!   lateness, that watermark never ran ahead of what the input allows (the greatest event time
//!   minus the out-of-orderness bound), and the pipeline works in event time at all;
//! - `late-watermark-ahead`: the watermark it names is no higher than any stage could hold when
//!   it arrived, recomputed from what the sources had read by then (see `watermark`): a
//!   partition declared idle too soon, or left out of the minimum, makes records late that the
//!   other invariants would accept;
//! - `late-accounting` (pipelines whose outputs count their inputs, `Pipeline::accounting`):
//!   every kept input is in its windows' counts or in the late output, never both, never
//!   neither — for tumbling windows, sessions and top-N the counts sum to the inputs not late;
//!   for sliding windows to `size / slide` times that;
//! - `late-unexpected`, when the scenario promises no record is late (`checks.no_late`).

use std::collections::{BTreeMap, BTreeSet};

use faultline_engine::job::TimeSettings;
use faultline_engine::record::{late_side, Cause, Late, OutputRecord, Side};
use faultline_engine::sdk::codec::decode;
use faultline_reports::Violation;

use super::expected::Input;
use super::push_examples;
use super::watermark::Bound;
use crate::plugin::{Accounting, Pipeline};

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 5] =
    ["late-unknown", "late-duplicate", "late-implausible", "late-watermark-ahead", "late-accounting"];

/// Splits committed output into results (the main output and the operator's named side
/// outputs, all judged against the oracle) and the late records the engine routed.
pub fn split(mut committed: Vec<OutputRecord>) -> (Vec<OutputRecord>, Vec<OutputRecord>) {
    // In place: the results are most of the output, and late records few.
    let late = committed.extract_if(.., |r| r.id.side == late_side()).collect();
    (committed, late)
}

/// A late record's content.
fn late_of(r: &OutputRecord) -> Late {
    decode(&r.value)
}

/// The inputs the late records name, by cause and partition.
pub fn late_inputs(late: &[OutputRecord]) -> BTreeSet<(Cause, u32)> {
    late.iter().map(|r| (r.cause, late_of(r).partition)).collect()
}

/// Judges the late records against the input, the pipeline, the results and the watermark
/// bound (`bound` makes it; it is made only when some record is late).
pub fn check(
    late: &[OutputRecord],
    results: &[OutputRecord],
    inputs: &[Input],
    pipeline: &dyn Pipeline,
    time: TimeSettings,
    finished: bool,
    bound: &dyn Fn() -> Bound,
) -> Vec<Violation> {
    let mut v = Vec::new();
    let (unknown, twice) = unnamed(late, inputs, pipeline);
    push_examples(&mut v, "late-unknown", &unknown);
    push_examples(&mut v, "late-duplicate", &twice);
    push_examples(&mut v, "late-implausible", &implausible(late, inputs, pipeline, time));
    if !late.is_empty() {
        push_examples(&mut v, "late-watermark-ahead", &ahead(late, &bound()));
    }
    if let Some(problem) = accounting(results, late.len() as u64, inputs, pipeline, finished) {
        v.push(Violation { invariant: "late-accounting".into(), detail: problem });
    }
    v
}

/// The late records that name no kept input with their event time, and those naming an input
/// another late record already named.
fn unnamed(late: &[OutputRecord], inputs: &[Input], pipeline: &dyn Pipeline) -> (Vec<String>, Vec<String>) {
    let (mut unknown, mut twice) = (Vec::new(), Vec::new());
    if late.is_empty() {
        return (unknown, twice);
    }
    let by_name: BTreeMap<(Cause, u32), &Input> = inputs.iter().map(|i| (i.name(), i)).collect();
    let mut seen = BTreeSet::new();
    for r in late {
        let l = late_of(r);
        let name = (r.cause, l.partition);
        let t = l.event_time_ms;
        match by_name.get(&name) {
            Some(i) if i.event.event_time_ms == t && pipeline.keeps(i) => {}
            _ => unknown.push(format!(
                "input {}/{} of partition {} (time {t})",
                r.cause.producer, r.cause.seq, l.partition
            )),
        }
        if !seen.insert(name) {
            twice.push(format!("input {}/{} of partition {}", r.cause.producer, r.cause.seq, l.partition));
        }
    }
    (unknown, twice)
}

/// `late-unexpected`, for scenarios that promise no record is late (`checks.no_late`).
pub fn unexpected(late: &[OutputRecord]) -> Option<Violation> {
    let first = late.first()?;
    let l = late_of(first);
    let detail = format!(
        "{} records late although disorder stays within the watermark's bound and no partition \
         goes idle; first: input {}/{} at {} under watermark {}",
        late.len(),
        first.cause.producer,
        first.cause.seq,
        l.event_time_ms,
        l.watermark
    );
    Some(Violation { invariant: "late-unexpected".into(), detail })
}

fn implausible(
    late: &[OutputRecord],
    inputs: &[Input],
    pipeline: &dyn Pipeline,
    time: TimeSettings,
) -> Vec<String> {
    let newest = inputs.iter().map(|i| i.event.event_time_ms).max().unwrap_or(0);
    let ceiling = newest.saturating_sub(time.max_out_of_orderness_ms);
    let lateness = pipeline.allowed_lateness_ms();
    late.iter()
        .filter_map(|r| {
            let l = late_of(r);
            let (t, w) = (l.event_time_ms, l.watermark);
            let why = if !pipeline.event_time() {
                "the pipeline does not work in event time"
            } else if t + lateness >= w {
                "it was not behind the watermark by more than the allowed lateness"
            } else if w > ceiling {
                "the watermark ran ahead of the input's greatest event time minus the bound"
            } else {
                return None;
            };
            Some(format!("input {}/{} at {t} under watermark {w}: {why}", r.cause.producer, r.cause.seq))
        })
        .collect()
}

/// The late records whose watermark is above what any stage could hold when they arrived.
fn ahead(late: &[OutputRecord], bound: &Bound) -> Vec<String> {
    late.iter()
        .filter_map(|r| {
            let l = late_of(r);
            let most = bound.at(l.arrived_ms);
            (l.watermark > most).then(|| {
                format!(
                    "input {}/{} at {} arrived at {} ms under watermark {}; what the sources had read by then allows {most} at most",
                    r.cause.producer, r.cause.seq, l.event_time_ms, l.arrived_ms, l.watermark
                )
            })
        })
        .collect()
}

/// The accounting identity for pipelines whose results count their records. In a run that did
/// not finish, windows not yet committed are pending: only counting too much is judged.
fn accounting(
    results: &[OutputRecord],
    late: u64,
    inputs: &[Input],
    pipeline: &dyn Pipeline,
    finished: bool,
) -> Option<String> {
    let Accounting { per_record, count } = pipeline.accounting()?;
    let kept = inputs.iter().filter(|i| pipeline.keeps(i)).count() as u64;
    let counted: u64 = results.iter().filter(|r| r.id.side == Side::Main).map(|r| count(&r.value)).sum();
    let want = (kept - late.min(kept)) * per_record;
    let short = counted < want && !finished;
    ((counted != want && !short) || late > kept).then(|| {
        format!(
            "{kept} inputs kept, {late} late: windows should count {want} (each record {per_record} times), \
             they count {counted}"
        )
    })
}
