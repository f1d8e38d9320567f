//! The sweeps: `swarm` (many seeds of many scenarios), `merge` (a sharded sweep's parts joined)
//! and `compare` (the same seeds under each value of a field), with their summaries.

use std::sync::Arc;

use crate::plugin::Registry;
use std::io::Write;
use std::path::{Path, PathBuf};

use faultline_reports::{
    to_json, CompareRecord, JunitSuite, RunRecord, SeedOutcome, SwarmRecord, SwarmReport, SweepRecord,
};

use super::args::Sweep;
use super::paint::Paint;
use super::{load, severity, CliResult, EXIT_PASS, EXIT_SAFETY};
use crate::compare::{self, CompareOptions, Vary};
use crate::runner::{self, exit_code, Detail};
use crate::scenario::{self, Loaded};
use crate::swarm;

/// How `swarm` runs and what it writes, beyond the seeds.
pub(super) struct SwarmOptions {
    pub minutes: Option<f64>,
    pub report: Option<PathBuf>,
    pub shard: Option<faultline_reports::Shard>,
    pub junit: Option<PathBuf>,
    pub fail_fast: bool,
    pub paint: Paint,
}

pub(super) fn run_swarm(
    registry: &Arc<Registry>,
    paths: &[PathBuf],
    sweep: &Sweep,
    options: &SwarmOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CliResult {
    let SwarmOptions { minutes, shard, paint, fail_fast, .. } = *options;
    let (jobs, progress) = sweep.checked()?;
    if sweep.seeds.is_none() && minutes.is_none() {
        return Err("give --seeds N, --minutes M, or both".into());
    }
    if minutes.is_some_and(|m| m.is_nan() || m <= 0.0) {
        return Err("--minutes must be positive".into());
    }
    let files = swarm::scenario_files(paths)?;
    let single = files.len() == 1 && !paths[0].is_dir();
    let (loaded, skipped) = if single {
        (vec![load(registry, &files[0], &sweep.sets)?], Vec::new())
    } else {
        swarm::load_all(&files, &sweep.sets, registry.clone())?
    };
    for s in &skipped {
        _ = writeln!(err, "skipped {}: {}", s.path, s.reason);
    }
    if loaded.is_empty() {
        return Err("the overrides apply to none of the scenarios".into());
    }
    let per_scenario =
        sweep.seeds.map(|n| shard.map_or(n, |s| n / s.count + u64::from(s.index <= n % s.count)));
    let total = per_scenario.filter(|_| minutes.is_none()).map(|n| n * loaded.len() as u64);
    let bar = progress.then(|| swarm::progress_bar(total));
    let plan = swarm::Plan { from: sweep.from, seeds: sweep.seeds, minutes, jobs, shard, fail_fast };
    let swept = swarm::sweep_all(&loaded, &plan, bar.as_ref());
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for ((record, runs), l) in swept.iter().zip(&loaded) {
        if let Some(dir) = &options.report {
            let dir = if single { dir.to_path_buf() } else { dir.join(&record.scenario) };
            write_swarm_report(l, record, runs, &dir, err)?;
        }
    }
    if let Some(file) = &options.junit {
        let suites: Vec<JunitSuite<'_>> = swept
            .iter()
            .map(|(r, runs)| JunitSuite { scenario: &r.scenario, scenario_hash: &r.scenario_hash, runs })
            .collect();
        super::run::write_junit(file, &suites)?;
    }
    if single {
        let record = &swept[0].0;
        if sweep.json {
            _ = writeln!(out, "{}", to_json(record));
        } else {
            print_swarm(record, paint, out);
        }
    } else {
        let records: Vec<SwarmRecord> = swept.iter().map(|(r, _)| r.clone()).collect();
        let summary = sweep_record(records, skipped);
        if sweep.json {
            _ = writeln!(out, "{}", to_json(&summary));
        } else {
            print_sweep(&summary, paint, out);
        }
    }
    _ = err.flush();
    let codes = swept.iter().flat_map(|(_, runs)| runs.iter().map(exit_code));
    Ok(codes.max_by_key(|&c| severity(c)).unwrap_or(EXIT_PASS))
}

/// `merge`: the joined summary, printed as the unsharded sweep's; its exit code is the worst
/// failure's, as a sweep's is.
pub(super) fn run_merge(files: &[PathBuf], json: bool, paint: Paint, out: &mut dyn Write) -> CliResult {
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let records = match crate::merge::merge_files(&paths)? {
        crate::merge::Merged::One(record) => {
            match json {
                true => _ = writeln!(out, "{}", to_json(&record)),
                false => print_swarm(&record, paint, out),
            }
            vec![record]
        }
        crate::merge::Merged::Sweep(summary) => {
            match json {
                true => _ = writeln!(out, "{}", to_json(&summary)),
                false => print_sweep(&summary, paint, out),
            }
            summary.scenarios
        }
    };
    if !json {
        for r in records.iter().filter(|r| !r.missing_shards.is_empty()) {
            let missing: Vec<String> = r.missing_shards.iter().map(u64::to_string).collect();
            _ = writeln!(out, "{}: shards {} of the sweep are missing", r.scenario, missing.join(", "));
        }
    }
    let codes = records.iter().flat_map(|r| &r.failed).map(|f| runner::violations_exit_code(&f.violations));
    Ok(codes.max_by_key(|&c| severity(c)).unwrap_or(EXIT_PASS))
}

fn sweep_record(
    scenarios: Vec<SwarmRecord>,
    skipped: Vec<faultline_reports::SkippedScenario>,
) -> SweepRecord {
    let seeds = scenarios.iter().map(|r| r.seeds).sum();
    let passed = scenarios.iter().map(|r| r.passed).sum();
    let wall_ms = scenarios.iter().map(|r| r.wall_ms).sum();
    SweepRecord { scenarios, skipped, seeds, passed, failed: seeds - passed, wall_ms }
}

/// A row per scenario, a total, then every failing seed's replay command.
fn print_sweep(summary: &SweepRecord, paint: Paint, out: &mut dyn Write) {
    let width = summary.scenarios.iter().map(|r| r.scenario.len()).max().unwrap_or(8).max(8);
    _ = writeln!(
        out,
        "{:<width$} {:>7} {:>7} {:>7} {:>8}  failing invariants",
        "scenario", "seeds", "passed", "failed", "seeds/s"
    );
    for r in &summary.scenarios {
        let (failing, failed) = match r.failed.len() {
            0 => ("-".to_string(), format!("{:>7}", 0)),
            n => (paint.violation(&r.failing_invariants.join(", ")), paint.fail(&format!("{n:>7}"))),
        };
        _ = writeln!(
            out,
            "{:<width$} {:>7} {:>7} {failed} {:>8.1}  {failing}",
            r.scenario, r.seeds, r.passed, r.seeds_per_s
        );
    }
    let rate = if summary.wall_ms > 0.0 { summary.seeds as f64 * 1000.0 / summary.wall_ms } else { 0.0 };
    _ = writeln!(
        out,
        "{:<width$} {:>7} {:>7} {:>7} {:>8.1}  in {:.1} s",
        "total",
        summary.seeds,
        summary.passed,
        summary.failed,
        rate,
        summary.wall_ms / 1000.0
    );
    for r in summary.scenarios.iter().filter(|r| !r.failure_groups.is_empty()) {
        _ = writeln!(out, "{}:", r.scenario);
        print_groups(&r.failure_groups, &r.failed, out);
    }
    print_failed(summary.scenarios.iter().flat_map(|r| &r.failed), paint, out);
}

/// A line per failing seed: its broken invariants and its replay command.
fn print_failed<'a>(
    failed: impl Iterator<Item = &'a faultline_reports::SwarmFailure>,
    paint: Paint,
    out: &mut dyn Write,
) {
    for f in failed {
        let names: Vec<&str> = f.violations.iter().map(|v| v.invariant.as_str()).collect();
        let names = paint.violation(&names.join(", "));
        _ = writeln!(out, "seed {} {} ({names}): {}", f.seed, paint.fail("failed"), f.repro);
    }
}

/// Lines per failure group: its invariants and stage, its size, its smallest and first seeds,
/// the fault classes in its seeds, and how to shrink the smallest.
fn print_groups(
    groups: &[faultline_reports::FailureGroup],
    failed: &[faultline_reports::SwarmFailure],
    out: &mut dyn Write,
) {
    for g in groups {
        let first: Vec<String> = g.seeds.iter().take(5).map(u64::to_string).collect();
        let more = if g.seeds.len() > 5 { ", …" } else { "" };
        let (n, smallest) = (g.seeds.len(), g.seeds.first().copied().unwrap_or_default());
        let stage = if g.stage.is_empty() { String::new() } else { format!(" · {}", g.stage) };
        _ = writeln!(
            out,
            "failure group {}{stage}: {n} seeds, smallest {smallest} ({}{more})",
            g.invariants.join(" + "),
            first.join(", ")
        );
        _ = writeln!(out, "  {}", group_classes(g));
        let smallest = failed.iter().find(|f| Some(&f.seed) == g.seeds.first());
        // The replay line is `COMMAND run …`: the same command shrinks it.
        if let Some((command, rest)) = smallest.and_then(|f| f.repro.split_once(" run ")) {
            _ = writeln!(out, "  shrink it: {command} shrink {rest}");
        }
    }
}

/// The fault classes of a group's seeds: those in every seed, and how many seeds had each.
fn group_classes(g: &faultline_reports::FailureGroup) -> String {
    if g.class_seeds.is_empty() {
        return "no fault took effect in any of its seeds".into();
    }
    let every = if g.classes.is_empty() { "none".to_string() } else { g.classes.join(" + ") };
    let per: Vec<String> = g.class_seeds.iter().map(|(c, k)| format!("{c} {k}")).collect();
    format!("fault classes in every seed: {every} · seeds per class: {}", per.join(", "))
}

fn print_swarm(record: &SwarmRecord, paint: Paint, out: &mut dyn Write) {
    let passed = format!("{}/{}", record.passed, record.seeds);
    let passed = if record.failed.is_empty() { paint.pass(&passed) } else { paint.fail(&passed) };
    _ = writeln!(out, "{}: {passed} seeds passed in {:.1} s", record.scenario, record.wall_ms / 1000.0);
    let by_class: Vec<String> = record.effective_faults.iter().map(|(c, n)| format!("{c} {n}")).collect();
    _ = writeln!(
        out,
        "effective faults: {} · seeds with a recovery: {} · with several nodes down at once: {}",
        if by_class.is_empty() { "none".to_string() } else { by_class.join(", ") },
        record.seeds_with_recovery,
        record.seeds_with_simultaneous_crashes
    );
    print_groups(&record.failure_groups, &record.failed, out);
    for (entry, choices) in &record.drawn {
        let counts: Vec<String> = choices.iter().map(|(choice, n)| format!("{choice} ×{n}")).collect();
        _ = writeln!(out, "drawn {entry}: {}", counts.join(", "));
    }
    print_failed(record.failed.iter(), paint, out);
}

/// Writes the swarm's page, and each failing seed's report (run again, with its timeline: a
/// seed replays exactly) into `seed-N/`.
fn write_swarm_report(
    loaded: &Loaded,
    record: &SwarmRecord,
    runs: &[RunRecord],
    dir: &Path,
    err: &mut dyn Write,
) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write the swarm report into {}: {e}", dir.display());
    let mut seeds = Vec::with_capacity(runs.len());
    for run in runs {
        let report = if run.passed() {
            None
        } else {
            let again = runner::run_isolated_with(loaded, run.seed, Detail::Timeline).0;
            let sub = format!("seed-{}", run.seed);
            faultline_reports::write_run_report(&again, &dir.join(&sub)).map_err(fail)?;
            Some(format!("{sub}/report.html"))
        };
        seeds.push(SeedOutcome {
            seed: run.seed,
            verdict: run.verdict.clone(),
            violations: run.violations.iter().map(|v| v.invariant.clone()).collect(),
            effective_faults: run.faults.iter().filter(|f| f.effective).count() as u64,
            recoveries: run.recoveries.len() as u64,
            sim_time_ms: run.sim_time_ms,
            trace_hash: run.trace_hash.clone(),
            repro: run.repro.clone(),
            report,
        });
    }
    let page = SwarmReport {
        swarm: record.clone(),
        faultline_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario_hash: scenario::hash(&loaded.scenario),
        seeds,
    };
    faultline_reports::write_swarm_report(&page, dir).map_err(fail)?;
    _ = writeln!(err, "report: {}", dir.join("swarm.html").display());
    Ok(())
}

pub(super) fn run_compare(
    registry: &Arc<Registry>,
    path: &Path,
    vary: &Vary,
    sweep: &Sweep,
    dir: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CliResult {
    let (jobs, progress) = sweep.checked()?;
    let seeds = sweep.seeds.ok_or("compare needs --seeds N")?;
    let options =
        CompareOptions { registry, path, sets: &sweep.sets, vary, from: sweep.from, seeds, jobs, progress };
    let record = compare::compare(&options)?;
    faultline_reports::write_compare_report(&record, dir)
        .map_err(|e| format!("cannot write the comparison into {}: {e}", dir.display()))?;
    if sweep.json {
        _ = writeln!(out, "{}", to_json(&record));
    } else {
        print_compare(&record, out);
        _ = writeln!(err, "report: {}", dir.join("compare.html").display());
    }
    let all_passed = record.variants.iter().all(|v| v.passed == v.runs);
    Ok(if all_passed { EXIT_PASS } else { EXIT_SAFETY })
}

fn print_compare(record: &CompareRecord, out: &mut dyn Write) {
    let ms = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.1} ms"));
    _ = writeln!(
        out,
        "{} · {} over {} seeds from {}",
        record.scenario, record.field, record.seeds, record.from
    );
    for v in &record.variants {
        _ = writeln!(
            out,
            "{:<22} passed {}/{} · recoveries {} ({} failovers) · recovery median {} p99 {} · {:.0} events/s",
            v.value,
            v.passed,
            v.runs,
            v.recoveries,
            v.failovers,
            ms(v.median_recovery_ms),
            ms(v.p99_recovery_ms),
            v.median_throughput_per_s
        );
    }
}
