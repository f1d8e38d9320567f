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
//! - `late-accounting` (window and user pipelines): every kept input is in its windows' counts
//!   or in the late output, never both, never neither — for tumbling windows, sessions and
//!   top-N the counts sum to the inputs not late; for sliding windows to `size / slide` times
//!   that;
//! - `late-unexpected`, when the scenario promises no record is late (`checks.no_late`).

use std::collections::{BTreeMap, BTreeSet};

use faultline_engine::job::TimeSettings;
use faultline_engine::pipeline::nexmark::Query;
use faultline_engine::pipeline::{PipelineKind, PipelineSpec, WindowSpec};
use faultline_engine::record::{OutputRecord, Side};
use faultline_reports::Violation;

use super::push_examples;
use super::reference::Input;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 4] = ["late-unknown", "late-duplicate", "late-implausible", "late-accounting"];

/// Splits committed output into results and late records.
pub fn split(committed: Vec<OutputRecord>) -> (Vec<OutputRecord>, Vec<OutputRecord>) {
    committed.into_iter().partition(|r| r.id.side == Side::Main)
}

/// The event ids of the late records.
pub fn late_ids(late: &[OutputRecord]) -> BTreeSet<u64> {
    late.iter().map(|r| r.id.seq).collect()
}

/// Judges the late records against the input, the pipeline and the results.
pub fn check(
    late: &[OutputRecord],
    results: &[OutputRecord],
    inputs: &[Input],
    pipeline: &PipelineSpec,
    time: TimeSettings,
    finished: bool,
) -> Vec<Violation> {
    let by_id: BTreeMap<u64, &Input> = inputs.iter().map(|i| (i.event.id, i)).collect();
    let mut v = Vec::new();
    let mut unknown = Vec::new();
    let mut seen = BTreeSet::new();
    let mut twice = Vec::new();
    for r in late {
        let [t, _, kind, _] = r.values;
        match by_id.get(&r.id.seq) {
            Some(i)
                if i.event.event_time_ms as i64 == t
                    && i64::from(i.event.kind) == kind
                    && kept(i, pipeline) => {}
            _ => unknown.push(format!("event {} (time {t}, kind {kind})", r.id.seq)),
        }
        if !seen.insert(r.id.seq) {
            twice.push(format!("event {}", r.id.seq));
        }
    }
    push_examples(&mut v, "late-unknown", &unknown);
    push_examples(&mut v, "late-duplicate", &twice);
    push_examples(&mut v, "late-implausible", &implausible(late, inputs, pipeline, time));
    if let Some(problem) = accounting(results, late.len() as u64, inputs, pipeline, finished) {
        v.push(Violation { invariant: "late-accounting".into(), detail: problem });
    }
    v
}

/// `late-unexpected`, for scenarios that promise no record is late (`checks.no_late`).
pub fn unexpected(late: &[OutputRecord]) -> Option<Violation> {
    let first = late.first()?;
    let [t, w, _, _] = first.values;
    let detail = format!(
        "{} records late although disorder stays within the watermark's bound and no partition \
         goes idle; first: event {} at {t} under watermark {w}",
        late.len(),
        first.id.seq
    );
    Some(Violation { invariant: "late-unexpected".into(), detail })
}

/// Whether the pipeline reads the input at all (its kind, its filters).
fn kept(i: &Input, pipeline: &PipelineSpec) -> bool {
    match pipeline.kind {
        PipelineKind::Nexmark(q) => {
            q.reads(i.event.kind)
                && (q != Query::Q2 || faultline_engine::pipeline::nexmark::q2_keeps(i.event.key))
        }
        _ => pipeline.map_filter(i.event.value).is_some(),
    }
}

fn implausible(
    late: &[OutputRecord],
    inputs: &[Input],
    pipeline: &PipelineSpec,
    time: TimeSettings,
) -> Vec<String> {
    let newest = inputs.iter().map(|i| i.event.event_time_ms).max().unwrap_or(0);
    let ceiling = newest.saturating_sub(time.max_out_of_orderness_ms);
    let lateness = pipeline.allowed_lateness_ms;
    late.iter()
        .filter_map(|r| {
            let [t, w, _, _] = r.values;
            let (t, w) = (t as u64, w as u64);
            let why = if !pipeline.event_time() {
                "the pipeline does not work in event time"
            } else if t + lateness >= w {
                "it was not behind the watermark by more than the allowed lateness"
            } else if w > ceiling {
                "the watermark ran ahead of the input's greatest event time minus the bound"
            } else {
                return None;
            };
            Some(format!("event {} at {t} under watermark {w}: {why}", r.id.seq))
        })
        .collect()
}

/// The accounting identity for pipelines whose results count their records. In a run that did
/// not finish, windows not yet committed are pending: only counting too much is judged.
fn accounting(
    results: &[OutputRecord],
    late: u64,
    inputs: &[Input],
    pipeline: &PipelineSpec,
    finished: bool,
) -> Option<String> {
    let per_record = match (&pipeline.kind, pipeline.window) {
        (PipelineKind::Window | PipelineKind::User { .. }, WindowSpec::Sliding { size_ms, slide_ms }) => {
            size_ms / slide_ms
        }
        (PipelineKind::Window | PipelineKind::User { .. }, WindowSpec::CountSliding { .. }) => return None,
        (PipelineKind::Window | PipelineKind::User { .. }, _) => 1,
        _ => return None,
    };
    let kept = inputs.iter().filter(|i| kept(i, pipeline)).count() as u64;
    let counted: i64 = results.iter().map(|r| r.values[0]).sum();
    let want = (kept - late.min(kept)) * per_record;
    let short = counted < want as i64 && !finished;
    ((counted != want as i64 && !short) || late > kept).then(|| {
        format!(
            "{kept} inputs kept, {late} late: windows should count {want} (each record {per_record} times), \
             they count {counted}"
        )
    })
}
