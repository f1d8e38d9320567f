//! `shrink`: a failing seed cut down to a minimal scenario file that fails the same way.
//!
//! The seed runs as given, then once more written out with explicit faults, which must replay it
//! exactly (the same trace hash). The search (`crate::shrink`) then runs candidates until it
//! settles or the budget is spent; the result is written as a scenario file, loaded back, and
//! its replay command printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use faultline_reports::{to_json, RunRecord, ShrinkRecord, ShrinkStep};

use super::paint::Paint;
use super::{load, CliResult, EXIT_PASS};
use crate::draw;
use crate::plugin::Registry;
use crate::runner;
use crate::scenario::{self, Loaded, Scenario};
use crate::shrink::{self, Oracle, Step};
use crate::wall::WallClock;

/// The runs a shrink spends before its search: the seed as given, and as written out.
const OWN_RUNS: u32 = 2;

pub(super) struct ShrinkOptions {
    pub invariant: Option<String>,
    pub out: Option<PathBuf>,
    pub max_runs: u32,
    pub json: bool,
    pub paint: Paint,
}

pub(super) fn shrink(
    registry: &Arc<Registry>,
    path: &Path,
    seed: u64,
    sets: &[String],
    options: &ShrinkOptions,
    out: &mut dyn Write,
) -> CliResult {
    let wall = WallClock::start();
    if options.max_runs <= OWN_RUNS {
        return Err(format!(
            "--max-runs {}: the seed itself takes {OWN_RUNS} runs; give more",
            options.max_runs
        ));
    }
    let loaded = load(registry, path, sets)?;
    let (invariant, start) = begin(&loaded, seed, options.invariant.as_deref())?;
    let file =
        options.out.clone().unwrap_or_else(|| format!("{}.seed-{seed}.shrunk.toml", start.name).into());
    let as_file = |s: &Scenario| Loaded {
        path: file.display().to_string(),
        scenario: s.clone(),
        sets: Vec::new(),
        registry: registry.clone(),
    };
    let mut said = |step: &Step| {
        let line = format!(
            "run {:>3}: {} · {} faults, {} events",
            step.run + OWN_RUNS,
            step.what,
            step.faults,
            step.events
        );
        if !options.json {
            _ = writeln!(out, "{line}");
        }
    };
    let oracle = Oracle {
        valid: &|s| scenario::validate(s, registry).is_ok(),
        fails: &mut |s| {
            runner::run_isolated(&as_file(s), seed).violations.iter().any(|v| v.invariant == invariant)
        },
        on_step: &mut said,
    };
    let shrunk = shrink::shrink(start.clone(), options.max_runs - OWN_RUNS, oracle);
    let record = ShrinkRecord {
        scenario: start.name.clone(),
        seed,
        invariant: invariant.clone(),
        faults_before: start.faults.scheduled.len() as u64,
        faults_after: shrunk.scenario.faults.scheduled.len() as u64,
        events_before: start.workload.events,
        events_after: shrunk.scenario.workload.events,
        runs: shrunk.runs + OWN_RUNS,
        exhausted: shrunk.exhausted,
        file: file.display().to_string(),
        replay: String::new(),
        steps: shrunk.steps.iter().map(step_record).collect(),
        wall_ms: 0.0,
    };
    let replay = write(&record, &runner::repro(&loaded, seed), &shrunk.scenario, registry)?;
    let record = ShrinkRecord { replay, wall_ms: wall.elapsed_ms(), ..record };
    if options.json {
        _ = writeln!(out, "{}", to_json(&record));
    } else {
        summary(&record, options.paint, out);
    }
    Ok(EXIT_PASS)
}

/// The seed's two runs: as given, for the invariant to keep failing, and written out with
/// explicit faults, which must replay it exactly. Returns the invariant and the written-out
/// scenario.
fn begin(loaded: &Loaded, seed: u64, asked: Option<&str>) -> Result<(String, Scenario), String> {
    let first = runner::run_isolated(loaded, seed);
    let invariant = target(&first, asked, &runner::repro(loaded, seed))?;
    let drawn = draw::for_seed(loaded, seed)?;
    let start = shrink::materialise(&drawn.loaded.scenario, seed, &drawn.loaded.cluster_spec(seed));
    let explicit = Loaded { scenario: start.clone(), sets: Vec::new(), ..loaded.clone() };
    let again = runner::run_isolated(&explicit, seed);
    if again.trace_hash != first.trace_hash {
        return Err(format!(
            "seed {seed} with its faults written out ran differently (trace hash {} against {}): \
             a faultline bug, please report it with this command",
            again.trace_hash, first.trace_hash
        ));
    }
    Ok((invariant, start))
}

/// The invariant to keep failing: the one asked for, or the seed's first violation.
fn target(first: &RunRecord, asked: Option<&str>, repro: &str) -> Result<String, String> {
    let broken: Vec<&str> = first.violations.iter().map(|v| v.invariant.as_str()).collect();
    match (asked, broken.first()) {
        (_, None) => Err(format!("seed {} passes: there is nothing to shrink ({repro})", first.seed)),
        (Some(name), _) if !broken.contains(&name) => {
            Err(format!("seed {} does not break `{name}`; it breaks {}", first.seed, broken.join(", ")))
        }
        (Some(name), _) => Ok(name.to_string()),
        (None, Some(name)) => Ok(name.to_string()),
    }
}

fn step_record(step: &Step) -> ShrinkStep {
    ShrinkStep {
        run: step.run + OWN_RUNS,
        what: step.what.clone(),
        faults: step.faults as u64,
        events: step.events,
    }
}

/// Writes the minimal scenario, loads it back (it must be what the search ended with), and
/// returns the command that replays it.
fn write(
    record: &ShrinkRecord,
    from: &str,
    shrunk: &Scenario,
    registry: &Arc<Registry>,
) -> Result<String, String> {
    let header = format!(
        "# Shrunk by `{} shrink` in {} runs: seed {} still fails `{}` with {} of {} faults and {} of {} events.\n\
         # From: {from}",
        registry.command(),
        record.runs,
        record.seed,
        record.invariant,
        record.faults_after,
        record.faults_before,
        record.events_after,
        record.events_before
    );
    let text = shrink::to_toml(shrunk, &header);
    std::fs::write(&record.file, text).map_err(|e| format!("cannot write {}: {e}", record.file))?;
    let back = load(registry, Path::new(&record.file), &[])?;
    assert_eq!(&back.scenario, shrunk, "the written scenario loads back as itself");
    Ok(runner::repro(&back, record.seed))
}

fn summary(record: &ShrinkRecord, paint: Paint, out: &mut dyn Write) {
    let more =
        if record.exhausted { " (the run budget ran out: --max-runs may shrink it further)" } else { "" };
    _ = writeln!(
        out,
        "seed {} of {} still fails {} with {} of {} faults and {} of {} events, after {} runs in {:.1} s{more}",
        record.seed,
        record.scenario,
        paint.violation(&record.invariant),
        record.faults_after,
        record.faults_before,
        record.events_after,
        record.events_before,
        record.runs,
        record.wall_ms / 1000.0
    );
    _ = writeln!(out, "wrote {}", record.file);
    _ = writeln!(out, "replay: {}", record.replay);
}
