//! `explain`: one seed run with its events kept, and the story of each offending output told.

use std::sync::Arc;

use crate::plugin::Registry;
use std::io::Write;
use std::path::Path;

use faultline_engine::record::OutputId;
use faultline_reports::{to_json, ExplainRecord, RunRecord, Story};

use super::paint::Paint;
use super::{load, CliResult};
use crate::checker::delivery::show_id;
use crate::runner::{self, exit_code, Detail};

pub(super) struct ExplainOptions {
    pub only: Option<OutputId>,
    pub limit: usize,
    pub json: bool,
    pub paint: Paint,
}

pub(super) fn explain(
    registry: &Arc<Registry>,
    path: &Path,
    seed: u64,
    sets: &[String],
    options: &ExplainOptions,
    out: &mut dyn Write,
) -> CliResult {
    let loaded = load(registry, path, sets)?;
    let detail = Detail::Explain { only: options.only.clone(), limit: options.limit };
    let mut record = runner::run_isolated_with(&loaded, seed, detail).0;
    let stories = record.timeline.take().map(|t| t.stories).unwrap_or_default();
    if let (Some(id), true) = (&options.only, stories.is_empty()) {
        let o = &record.output;
        return Err(format!(
            "{} is not lost, duplicated or wrong in seed {seed} ({} lost, {} duplicates, {} wrong)",
            show_id(id),
            o.lost,
            o.duplicates,
            o.wrong
        ));
    }
    if options.json {
        let explained = ExplainRecord {
            scenario: record.scenario.clone(),
            seed,
            verdict: record.verdict.clone(),
            output: record.output.clone(),
            repro: record.repro.clone(),
            stories,
        };
        _ = writeln!(out, "{}", to_json(&explained));
    } else {
        print(&record, &stories, options, out);
    }
    Ok(exit_code(&record))
}

fn print(record: &RunRecord, stories: &[Story], options: &ExplainOptions, out: &mut dyn Write) {
    let o = &record.output;
    _ = writeln!(
        out,
        "SEED={} scenario={} semantics={}: lost {} duplicates {} wrong {} pending {}",
        record.seed, record.scenario, record.semantics, o.lost, o.duplicates, o.wrong, o.pending
    );
    if stories.is_empty() {
        _ = writeln!(out, "No output was lost, duplicated or wrong: there is nothing to explain.");
    }
    for s in stories {
        _ = writeln!(out, "\n{} — {}", options.paint.violation(&s.output), s.kind);
        for step in &s.steps {
            _ = writeln!(out, "  {:>10.3} ms  {}", step.at_ms, step.text);
        }
        _ = writeln!(out, "  why: {}", s.why);
    }
    if options.only.is_none() && o.lost + o.duplicates + o.wrong > stories.len() as u64 {
        _ = writeln!(out, "\n(the first {} of each kind; --limit tells more, --output one)", options.limit);
    }
    _ = writeln!(out, "replay: {}", record.repro);
}
