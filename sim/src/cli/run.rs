//! `run` (one seed of one scenario, checked) and `report` (a saved run record rendered again).

use std::sync::Arc;

use crate::plugin::Registry;
use std::io::Write;
use std::path::{Path, PathBuf};

use faultline_reports::{to_json, JunitSuite, RunRecord, Violation};

use super::paint::Paint;
use super::{load, CliResult, EXIT_PASS};
use crate::runner::{self, exit_code, Detail};
use crate::scenario::{self, Loaded};

pub(super) struct RunOptions {
    pub json: bool,
    pub check_determinism: bool,
    pub report: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub paint: Paint,
}

pub(super) fn run(
    registry: &Arc<Registry>,
    path: &Path,
    seed: u64,
    sets: &[String],
    options: &RunOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CliResult {
    let loaded = load(registry, path, sets)?;
    let json = options.json;
    if !json {
        // What this seed runs: a `[swarm]` table draws part of it from the seed.
        let drawn = crate::draw::for_seed(&loaded, seed).map(|d| d.loaded.scenario);
        let s = drawn.as_ref().unwrap_or(&loaded.scenario);
        _ = writeln!(
            out,
            "SEED={seed} scenario={} semantics={} recovery={} scenario_hash={}",
            s.name,
            s.engine.semantics.as_str(),
            s.engine.recovery.as_str(),
            scenario::hash(s)
        );
    }
    let detail = match (&options.trace, &options.report) {
        (Some(_), _) => Detail::Trace,
        (None, Some(_)) => Detail::Timeline,
        (None, None) => Detail::Verdict,
    };
    let mut record = runner::run_isolated_with(&loaded, seed, detail).0;
    if let Some(file) = &options.trace {
        write_trace(file, &std::mem::take(&mut record.trace), err)?;
    }
    if options.check_determinism {
        check_determinism(&loaded, &mut record, json, err);
    }
    if let Some(dir) = &options.report {
        write_report(&record, dir, err)?;
    }
    if let Some(file) = &options.junit {
        let runs = std::slice::from_ref(&record);
        write_junit(
            file,
            &[JunitSuite { scenario: &record.scenario, scenario_hash: &record.scenario_hash, runs }],
        )?;
    }
    if json {
        record.timeline = None;
        _ = writeln!(out, "{}", to_json(&record));
    } else {
        print_run(&record, options.paint, out);
    }
    Ok(exit_code(&record))
}

/// Runs the seed again on a fresh thread; a different trace hash is a violation.
fn check_determinism(loaded: &Loaded, record: &mut RunRecord, json: bool, err: &mut dyn Write) {
    record.invariants.push("determinism".into());
    let again = runner::run_isolated(loaded, record.seed);
    if again.trace_hash != record.trace_hash {
        record.violations.push(Violation {
            invariant: "determinism".into(),
            detail: format!("trace hash {} then {}", record.trace_hash, again.trace_hash),
        });
        record.verdict = "fail".into();
    } else if !json {
        _ = writeln!(err, "determinism: the second run gave the same trace hash");
    }
}

/// Writes a run's report into `dir` and says where it is.
fn write_report(record: &RunRecord, dir: &Path, err: &mut dyn Write) -> Result<(), String> {
    faultline_reports::write_run_report(record, dir)
        .map_err(|e| format!("cannot write the report into {}: {e}", dir.display()))?;
    _ = writeln!(err, "report: {}", dir.join("report.html").display());
    Ok(())
}

/// Writes the run's trace into `file`, a JSON line per event, and says where it is.
fn write_trace(
    file: &Path,
    lines: &[faultline_reports::TraceLine],
    err: &mut dyn Write,
) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write the trace into {}: {e}", file.display());
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).map_err(fail)?);
    for line in lines {
        writeln!(out, "{}", serde_json::to_string(line).expect("trace lines serialise")).map_err(fail)?;
    }
    out.flush().map_err(fail)?;
    _ = writeln!(err, "trace: {} ({} events)", file.display(), lines.len());
    Ok(())
}

/// Writes `suites` as JUnit XML into `file`.
pub(super) fn write_junit(file: &Path, suites: &[JunitSuite<'_>]) -> Result<(), String> {
    std::fs::write(file, faultline_reports::junit_xml(suites))
        .map_err(|e| format!("cannot write JUnit XML into {}: {e}", file.display()))
}

/// Renders a saved run record again.
pub(super) fn render_saved(path: &Path, dir: &Path, err: &mut dyn Write) -> CliResult {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let record: RunRecord = serde_json::from_str(text.trim())
        .map_err(|e| format!("{}:{}:{}: not a run record: {e}", path.display(), e.line(), e.column()))?;
    write_report(&record, dir, err)?;
    Ok(EXIT_PASS)
}

fn print_run(r: &RunRecord, paint: Paint, out: &mut dyn Write) {
    let o = &r.output;
    _ = writeln!(
        out,
        "events in {} · output expected {} committed {} · lost {} pending {} duplicates {} wrong {}",
        r.events_in, o.expected, o.committed, o.lost, o.pending, o.duplicates, o.wrong
    );
    _ = writeln!(out, "sim {} ms · wall {:.1} ms · trace {}", r.sim_time_ms, r.wall_ms, r.trace_hash);
    if r.fencing != Default::default() {
        let f = &r.fencing;
        _ = writeln!(
            out,
            "fenced: {} sink requests, {} stale messages from older epochs",
            f.sink_requests, f.stale_messages
        );
    }
    if r.faults.is_empty() {
        _ = writeln!(out, "faults: none");
    }
    for f in &r.faults {
        let effect = if f.effective { "" } else { " (no effect)" };
        let during = if f.mid_checkpoint { " mid-checkpoint" } else { "" };
        _ = writeln!(out, "fault at {} ms{during}: {} {} {}{effect}", f.at_ms, f.class, f.action, f.target);
    }
    if !r.faults.is_empty() && r.faults.iter().all(|f| !f.effective) {
        let warning = paint.warn("warning:");
        _ = writeln!(out, "{warning} no fault took effect: this run tested nothing it claims to");
    }
    if !r.drawn.is_empty() {
        let drawn: Vec<String> = r.drawn.iter().map(|(k, v)| format!("{k}={v}")).collect();
        _ = writeln!(out, "drawn: {}", drawn.join(" "));
    }
    for v in &r.violations {
        _ = writeln!(out, "{} {}: {}", paint.fail("VIOLATION"), paint.violation(&v.invariant), v.detail);
    }
    if r.passed() {
        _ = writeln!(out, "{}", paint.pass("PASS"));
    } else {
        _ = writeln!(out, "{}\nreplay: {}", paint.fail("FAIL"), r.repro);
    }
}
