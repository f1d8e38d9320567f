//! The `faultline` command line: `run`, `swarm`, `compare`, `report`, `list`, `bench`.
//!
//! Exit codes: 0 all checks hold, 1 safety violation, 2 bad input or usage, 3 liveness violation.
//! With `--json`, stdout carries exactly one JSON object and nothing else; everything meant for
//! people goes to stderr. Every failing run names the command that replays it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use faultline_reports::{
    to_json, CompareRecord, RunRecord, SeedOutcome, SwarmRecord, SwarmReport, SweepRecord, Violation,
};

use crate::bench::{self, BenchError, BenchOptions};
use crate::compare::{self, CompareOptions, Vary};
use crate::runner::{self, exit_code, Detail};
use crate::scenario::{self, Loaded};
use crate::swarm;

pub const EXIT_PASS: i32 = 0;
pub const EXIT_SAFETY: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "faultline",
    version,
    about = "Deterministic simulation and fault injection for stream processing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one scenario with one seed and check it.
    Run {
        scenario: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Override a scenario field by its dotted TOML path, e.g. engine.parallelism=2.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
        /// Run the seed twice and fail if the trace hashes differ.
        #[arg(long)]
        check_determinism: bool,
        /// Write report.json, report.html and the charts as SVG files into this directory.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Run many seeds of one or more scenarios (files or directories of them) in parallel.
    Swarm {
        #[arg(required = true, value_name = "SCENARIO")]
        scenarios: Vec<PathBuf>,
        #[command(flatten)]
        sweep: Sweep,
        /// A wall-clock budget: seeds are drawn until it runs out (shared evenly among the
        /// scenarios), and with --seeds, at most that many each.
        #[arg(long, value_name = "M")]
        minutes: Option<f64>,
        /// Write a summary page (swarm.html, swarm.json) into this directory, with a report of
        /// every failing seed in seed-N/.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// Run only the K-th of N disjoint slices of the seeds (1 ≤ K ≤ N); `merge` joins the
        /// slices' --json outputs.
        #[arg(long, value_name = "K/N", value_parser = swarm::parse_shard)]
        shard: Option<faultline_reports::Shard>,
    },
    /// Join the --json outputs of a sharded sweep's shards into one summary.
    Merge {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Render a saved run record (report.json, or a `run --json` line) as a report again.
    Report {
        record: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run the same seeds under each value of one scenario field and compare them.
    Compare {
        scenario: PathBuf,
        #[command(flatten)]
        sweep: Sweep,
        /// The field and its values, e.g. engine.recovery=rollback,passive-replication,active-replication.
        #[arg(long, value_name = "FIELD=VALUE,VALUE,…")]
        vary: String,
        /// Write compare.html, compare.json and the charts into this directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// List the scenarios with their descriptions.
    List {
        #[arg(long, default_value = "scenarios")]
        dir: PathBuf,
    },
    /// One round of one side of `bench`, in a fresh process; prints a JSON line.
    #[command(hide = true)]
    BenchRound {
        #[arg(long)]
        side: bench::Side,
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        events: u64,
        #[arg(long = "batch")]
        batch_records: usize,
    },
    /// Measure the engine against a bare-madsim baseline.
    Bench {
        #[arg(long, default_value = "scenarios/quickstart.toml")]
        scenario: PathBuf,
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
        #[arg(long = "batch", default_value_t = 1024)]
        batch_records: usize,
        /// Measured rounds of each side (medians are reported).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Measure pipelines instead: `scenarios/NAME.toml` without faults, every checker on,
        /// beside Nexmark's per-core figures for Flink. `nexmark` stands for q0, q1, q2, q5,
        /// q7 and q8. Repeatable.
        #[arg(long = "pipeline", value_name = "NAME")]
        pipelines: Vec<String>,
        /// Where `--pipeline` finds its scenarios.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// The seeds a sweep runs, and how.
#[derive(clap::Args, Debug)]
struct Sweep {
    /// Seeds per scenario.
    #[arg(long)]
    seeds: Option<u64>,
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Threads to run seeds on (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    #[arg(long)]
    json: bool,
}

impl Sweep {
    /// The seeds and threads, checked; whether to draw a progress bar.
    fn checked(&self) -> Result<(usize, bool), String> {
        if self.seeds == Some(0) {
            return Err("--seeds must be at least 1".into());
        }
        let jobs = self.jobs.unwrap_or_else(default_jobs);
        if jobs == 0 {
            return Err("--jobs must be at least 1".into());
        }
        Ok((jobs, !self.json && std::io::IsTerminal::is_terminal(&std::io::stderr())))
    }
}

/// Runs the CLI on `args` (program name first); returns the exit code.
pub fn main_with(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_PASS };
            let sink: &mut dyn Write = if e.use_stderr() { err } else { out };
            _ = write!(sink, "{}", e.render());
            return code;
        }
    };
    let result = match cli.command {
        Command::Run { scenario, seed, sets, json, check_determinism, report } => {
            let options = RunOptions { json, check_determinism, report };
            run(&scenario, seed, &sets, &options, out, err)
        }
        Command::Swarm { scenarios, sweep, minutes, report, shard } => {
            run_swarm(&scenarios, &sweep, minutes, report.as_deref(), shard, out, err)
        }
        Command::Merge { files, json } => run_merge(&files, json, out),
        Command::Report { record, out: dir } => render_saved(&record, &dir, err),
        Command::Compare { scenario, sweep, vary, out: dir } => {
            Vary::parse(&vary).and_then(|vary| run_compare(&scenario, &vary, &sweep, &dir, out, err))
        }
        Command::List { dir } => list(&dir, out, err),
        Command::BenchRound { side, scenario, events, batch_records } => {
            let options = BenchOptions { scenario, events, batch_records, repeats: 1 };
            bench_round(&options, side, out)
        }
        Command::Bench { pipelines, scenarios, events, repeats, json, .. } if !pipelines.is_empty() => {
            run_pipeline_bench(&PipelineBench { names: pipelines, scenarios, events, repeats }, json, out)
        }
        Command::Bench { scenario, events, batch_records, repeats, json, .. } => {
            run_bench(BenchOptions { scenario, events, batch_records, repeats }, json, out)
        }
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            _ = writeln!(err, "error: {message}");
            EXIT_USAGE
        }
    }
}

type CliResult = Result<i32, String>;

fn load(path: &Path, sets: &[String]) -> Result<Loaded, String> {
    scenario::load(path, sets).map_err(|e| e.to_string())
}

struct RunOptions {
    json: bool,
    check_determinism: bool,
    report: Option<PathBuf>,
}

fn run(
    path: &Path,
    seed: u64,
    sets: &[String],
    options: &RunOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CliResult {
    let loaded = load(path, sets)?;
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
    let detail = if options.report.is_some() { Detail::Timeline } else { Detail::Verdict };
    let mut record = runner::run_isolated_with(&loaded, seed, detail).0;
    if options.check_determinism {
        check_determinism(&loaded, &mut record, json, err);
    }
    if let Some(dir) = &options.report {
        write_report(&record, dir, err)?;
    }
    if json {
        record.timeline = None;
        _ = writeln!(out, "{}", to_json(&record));
    } else {
        print_run(&record, out);
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

/// Renders a saved run record again.
fn render_saved(path: &Path, dir: &Path, err: &mut dyn Write) -> CliResult {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let record: RunRecord = serde_json::from_str(text.trim())
        .map_err(|e| format!("{}:{}:{}: not a run record: {e}", path.display(), e.line(), e.column()))?;
    write_report(&record, dir, err)?;
    Ok(EXIT_PASS)
}

fn print_run(r: &RunRecord, out: &mut dyn Write) {
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
        _ = writeln!(out, "warning: no fault took effect: this run tested nothing it claims to");
    }
    if !r.drawn.is_empty() {
        let drawn: Vec<String> = r.drawn.iter().map(|(k, v)| format!("{k}={v}")).collect();
        _ = writeln!(out, "drawn: {}", drawn.join(" "));
    }
    for v in &r.violations {
        _ = writeln!(out, "VIOLATION {}: {}", v.invariant, v.detail);
    }
    if r.passed() {
        _ = writeln!(out, "PASS");
    } else {
        _ = writeln!(out, "FAIL\nreplay: {}", r.repro);
    }
}

fn run_swarm(
    paths: &[PathBuf],
    sweep: &Sweep,
    minutes: Option<f64>,
    report: Option<&Path>,
    shard: Option<faultline_reports::Shard>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CliResult {
    let (jobs, progress) = sweep.checked()?;
    if sweep.seeds.is_none() && minutes.is_none() {
        return Err("give --seeds N, --minutes M, or both".into());
    }
    if minutes.is_some_and(|m| m.is_nan() || m <= 0.0) {
        return Err("--minutes must be positive".into());
    }
    let files = swarm::scenario_files(paths)?;
    let single = files.len() == 1 && !paths[0].is_dir();
    let registry = std::sync::Arc::new(crate::pipelines::registry());
    let (loaded, skipped) = if single {
        (vec![load(&files[0], &sweep.sets)?], Vec::new())
    } else {
        swarm::load_all(&files, &sweep.sets, registry)?
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
    let swept = swarm::sweep_all(&loaded, sweep.from, sweep.seeds, minutes, jobs, shard, bar.as_ref());
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for ((record, runs), l) in swept.iter().zip(&loaded) {
        if let Some(dir) = report {
            let dir = if single { dir.to_path_buf() } else { dir.join(&record.scenario) };
            write_swarm_report(l, record, runs, &dir, err)?;
        }
    }
    if single {
        let record = &swept[0].0;
        if sweep.json {
            _ = writeln!(out, "{}", to_json(record));
        } else {
            print_swarm(record, out);
        }
    } else {
        let records: Vec<SwarmRecord> = swept.iter().map(|(r, _)| r.clone()).collect();
        let summary = sweep_record(records, skipped);
        if sweep.json {
            _ = writeln!(out, "{}", to_json(&summary));
        } else {
            print_sweep(&summary, out);
        }
    }
    _ = err.flush();
    let codes = swept.iter().flat_map(|(_, runs)| runs.iter().map(exit_code));
    Ok(codes.max_by_key(|&c| severity(c)).unwrap_or(EXIT_PASS))
}

/// `merge`: the joined summary, printed as the unsharded sweep's; its exit code is the worst
/// failure's, as a sweep's is.
fn run_merge(files: &[PathBuf], json: bool, out: &mut dyn Write) -> CliResult {
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let records = match crate::merge::merge_files(&paths)? {
        crate::merge::Merged::One(record) => {
            match json {
                true => _ = writeln!(out, "{}", to_json(&record)),
                false => print_swarm(&record, out),
            }
            vec![record]
        }
        crate::merge::Merged::Sweep(summary) => {
            match json {
                true => _ = writeln!(out, "{}", to_json(&summary)),
                false => print_sweep(&summary, out),
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
fn print_sweep(summary: &SweepRecord, out: &mut dyn Write) {
    let width = summary.scenarios.iter().map(|r| r.scenario.len()).max().unwrap_or(8).max(8);
    _ = writeln!(
        out,
        "{:<width$} {:>7} {:>7} {:>7} {:>8}  failing invariants",
        "scenario", "seeds", "passed", "failed", "seeds/s"
    );
    for r in &summary.scenarios {
        let failing =
            if r.failing_invariants.is_empty() { "-".to_string() } else { r.failing_invariants.join(", ") };
        let failed = r.failed.len();
        _ = writeln!(
            out,
            "{:<width$} {:>7} {:>7} {:>7} {:>8.1}  {failing}",
            r.scenario, r.seeds, r.passed, failed, r.seeds_per_s
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
        print_groups(&r.failure_groups, out);
    }
    for f in summary.scenarios.iter().flat_map(|r| &r.failed) {
        let names: Vec<&str> = f.violations.iter().map(|v| v.invariant.as_str()).collect();
        _ = writeln!(out, "seed {} failed ({}): {}", f.seed, names.join(", "), f.repro);
    }
}

/// A line per failure group: its invariants, its size and its first seeds.
fn print_groups(groups: &[faultline_reports::FailureGroup], out: &mut dyn Write) {
    for g in groups {
        let first: Vec<String> = g.seeds.iter().take(5).map(u64::to_string).collect();
        let more = if g.seeds.len() > 5 { ", …" } else { "" };
        let n = g.seeds.len();
        _ = writeln!(
            out,
            "failure group {}: {n} seeds ({}{more})",
            g.invariants.join(" + "),
            first.join(", ")
        );
    }
}

fn print_swarm(record: &SwarmRecord, out: &mut dyn Write) {
    _ = writeln!(
        out,
        "{}: {}/{} seeds passed in {:.1} s",
        record.scenario,
        record.passed,
        record.seeds,
        record.wall_ms / 1000.0
    );
    let by_class: Vec<String> = record.effective_faults.iter().map(|(c, n)| format!("{c} {n}")).collect();
    _ = writeln!(
        out,
        "effective faults: {} · seeds with a recovery: {} · with several nodes down at once: {}",
        if by_class.is_empty() { "none".to_string() } else { by_class.join(", ") },
        record.seeds_with_recovery,
        record.seeds_with_simultaneous_crashes
    );
    print_groups(&record.failure_groups, out);
    for (entry, choices) in &record.drawn {
        let counts: Vec<String> = choices.iter().map(|(choice, n)| format!("{choice} ×{n}")).collect();
        _ = writeln!(out, "drawn {entry}: {}", counts.join(", "));
    }
    for f in &record.failed {
        let names: Vec<&str> = f.violations.iter().map(|v| v.invariant.as_str()).collect();
        _ = writeln!(out, "seed {} failed ({}): {}", f.seed, names.join(", "), f.repro);
    }
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

fn run_compare(
    path: &Path,
    vary: &Vary,
    sweep: &Sweep,
    dir: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CliResult {
    let (jobs, progress) = sweep.checked()?;
    let seeds = sweep.seeds.ok_or("compare needs --seeds N")?;
    let options = CompareOptions { path, sets: &sweep.sets, vary, from: sweep.from, seeds, jobs, progress };
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

/// Safety failures outrank liveness failures.
fn severity(code: i32) -> i32 {
    match code {
        EXIT_SAFETY => 2,
        0 => 0,
        _ => 1,
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn list(dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> CliResult {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut code = EXIT_PASS;
    for path in paths {
        match scenario::load(&path, &[]) {
            Ok(loaded) => _ = writeln!(out, "{:<28} {}", path.display(), loaded.scenario.description),
            Err(e) => {
                _ = writeln!(err, "error: {e}");
                code = EXIT_USAGE;
            }
        }
    }
    Ok(code)
}

fn bench_round(options: &BenchOptions, side: bench::Side, out: &mut dyn Write) -> CliResult {
    match bench::measure(options, side) {
        Ok(round) => {
            _ = writeln!(out, "{}", to_json(&round));
            Ok(EXIT_PASS)
        }
        Err(e @ BenchError::EngineFailed(..)) => {
            _ = writeln!(out, "{e}");
            Ok(EXIT_SAFETY)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Runs one bench round in a child process of this executable and reads its JSON line.
fn spawn_round(options: &BenchOptions, side: bench::Side) -> Result<bench::Round, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let side_name = side.name();
    let output = std::process::Command::new(exe)
        .args(["bench-round", "--side", side_name, "--scenario"])
        .arg(&options.scenario)
        .args(["--events", &options.events.to_string(), "--batch", &options.batch_records.to_string()])
        .output()
        .map_err(|e| format!("cannot start a bench round: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{side_name} round failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_str(stdout.trim()).map_err(|e| format!("{side_name} round printed {stdout:?}: {e}"))
}

/// What `bench --pipeline` measures.
struct PipelineBench {
    names: Vec<String>,
    scenarios: PathBuf,
    events: u64,
    repeats: usize,
}

/// `bench --pipeline`: each named pipeline's throughput, beside Flink's per-core figure.
fn run_pipeline_bench(options: &PipelineBench, json: bool, out: &mut dyn Write) -> CliResult {
    let PipelineBench { names, events, repeats, .. } = options;
    let (events, repeats) = (*events, *repeats);
    if events == 0 || repeats == 0 {
        return Err("--events and --repeats must be at least 1".into());
    }
    let names: Vec<String> = names
        .iter()
        .flat_map(|n| match n.as_str() {
            "nexmark" => bench::NEXMARK_BENCH.iter().map(|s| s.to_string()).collect(),
            _ => vec![n.clone()],
        })
        .collect();
    if !json {
        _ = writeln!(out, "{events} input events per run, checkpoints every {} ms, every checker on; medians of {repeats} rounds", bench::CHECKPOINT_INTERVAL_MS);
        _ = writeln!(
            out,
            "{:<20} {:>14} {:>16} {:>16} {:>8}",
            "pipeline", "events/s", "simulation only", "Flink per core", "ratio"
        );
    }
    for name in names {
        let path = options.scenarios.join(format!("{name}.toml"));
        let record = match bench::bench_pipeline(&path, &name, events, repeats) {
            Ok(record) => record,
            Err(e @ BenchError::EngineFailed(..)) => {
                _ = writeln!(out, "{e}");
                return Ok(EXIT_SAFETY);
            }
            Err(e) => return Err(format!("pipeline {name}: {e}")),
        };
        if json {
            _ = writeln!(out, "{}", to_json(&record));
            continue;
        }
        let flink = record.flink_per_core_events_per_s.map_or("-".into(), |f| format!("{f:.0}"));
        let ratio = record.ratio_to_flink.map_or("-".into(), |r| format!("{r:.2}x"));
        _ = writeln!(
            out,
            "{:<20} {:>14.0} {:>16.0} {:>16} {:>8}",
            record.pipeline, record.events_per_s, record.simulate_events_per_s, flink, ratio
        );
    }
    Ok(EXIT_PASS)
}

fn run_bench(options: BenchOptions, json: bool, out: &mut dyn Write) -> CliResult {
    if options.events == 0 || options.repeats == 0 {
        return Err("--events and --repeats must be at least 1".into());
    }
    let record = match bench::bench(&options, &|side| spawn_round(&options, side)) {
        Ok(record) => record,
        Err(e @ (BenchError::Scenario(_) | BenchError::Child(_))) => return Err(e.to_string()),
        Err(e @ BenchError::EngineFailed(..)) => {
            _ = writeln!(out, "{e}");
            return Ok(EXIT_SAFETY);
        }
    };
    if json {
        _ = writeln!(out, "{}", to_json(&record));
        return Ok(EXIT_PASS);
    }
    let r = &record;
    _ = writeln!(
        out,
        "{} records, batches of {}, {} network hops; medians of {} rounds",
        r.events, r.batch_records, r.hops, r.repeats
    );
    _ = writeln!(
        out,
        "engine    {:>12.0} records/s  ({:.0} ms wall, sim/wall {:.1})",
        r.engine_records_per_s, r.engine_wall_ms, r.engine_sim_per_wall
    );
    _ = writeln!(
        out,
        "baseline  {:>12.0} records/s  ({:.0} ms wall, sim/wall {:.1})",
        r.baseline_records_per_s, r.baseline_wall_ms, r.baseline_sim_per_wall
    );
    _ = writeln!(out, "ratio     {:.3} (engine / baseline)", r.ratio);
    _ = writeln!(
        out,
        "checkpoints every {} ms: {:.0} records/s vs {:.0} with checkpoints off, ratio {:.3}",
        r.checkpoint_interval_ms, r.engine_records_per_s, r.no_checkpoints_records_per_s, r.checkpoint_ratio
    );
    _ = writeln!(
        out,
        "replication, k = {}: passive {:.0} records/s (overhead {:.1}%), active {:.0} records/s (overhead {:.1}%), vs rollback",
        r.replicas,
        r.passive_records_per_s,
        100.0 * r.passive_overhead,
        r.active_records_per_s,
        100.0 * r.active_overhead
    );
    _ = writeln!(out, "judging the engine's run took {:.0} ms more", r.judge_wall_ms);
    Ok(EXIT_PASS)
}
