//! The `faultline` command line: `run`, `swarm`, `list`, `bench`.
//!
//! Exit codes: 0 all checks hold, 1 safety violation, 2 bad input or usage, 3 liveness violation.
//! With `--json`, stdout carries exactly one JSON object and nothing else; everything meant for
//! people goes to stderr. Every failing run names the command that replays it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use faultline_reports::{to_json, RunRecord, Violation};

use crate::bench::{self, BenchError, BenchOptions};
use crate::runner::{self, exit_code};
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
    },
    /// Run many seeds of one scenario in parallel.
    Swarm {
        scenario: PathBuf,
        #[arg(long)]
        seeds: u64,
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Threads to run seeds on (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[arg(long)]
        json: bool,
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
        #[arg(long)]
        json: bool,
    },
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
        Command::Run { scenario, seed, sets, json, check_determinism } => {
            run(&scenario, seed, &sets, json, check_determinism, out, err)
        }
        Command::Swarm { scenario, seeds, from, jobs, sets, json } => {
            run_swarm(&scenario, seeds, from, jobs, &sets, json, out, err)
        }
        Command::List { dir } => list(&dir, out, err),
        Command::BenchRound { side, scenario, events, batch_records } => {
            let options = BenchOptions { scenario, events, batch_records, repeats: 1 };
            bench_round(&options, side, out)
        }
        Command::Bench { scenario, events, batch_records, repeats, json } => {
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

fn run(
    path: &Path,
    seed: u64,
    sets: &[String],
    json: bool,
    check_determinism: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CliResult {
    let loaded = load(path, sets)?;
    if !json {
        let s = &loaded.scenario;
        _ = writeln!(
            out,
            "SEED={seed} scenario={} semantics={} recovery={} scenario_hash={}",
            s.name,
            s.engine.semantics.as_str(),
            s.engine.recovery.as_str(),
            scenario::hash(s)
        );
    }
    let mut record = runner::run_isolated(&loaded, seed);
    if check_determinism {
        let again = runner::run_isolated(&loaded, seed);
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
    if json {
        _ = writeln!(out, "{}", to_json(&record));
    } else {
        print_run(&record, out);
    }
    Ok(exit_code(&record))
}

fn print_run(r: &RunRecord, out: &mut dyn Write) {
    let o = &r.output;
    _ = writeln!(
        out,
        "events in {} · output expected {} committed {} · lost {} duplicates {} wrong {}",
        r.events_in, o.expected, o.committed, o.lost, o.duplicates, o.wrong
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
    for v in &r.violations {
        _ = writeln!(out, "VIOLATION {}: {}", v.invariant, v.detail);
    }
    if r.passed() {
        _ = writeln!(out, "PASS");
    } else {
        _ = writeln!(out, "FAIL\nreplay: {}", r.repro);
    }
}

#[allow(clippy::too_many_arguments)]
fn run_swarm(
    path: &Path,
    seeds: u64,
    from: u64,
    jobs: Option<usize>,
    sets: &[String],
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> CliResult {
    if seeds == 0 {
        return Err("--seeds must be at least 1".into());
    }
    let loaded = load(path, sets)?;
    let jobs = jobs.unwrap_or_else(default_jobs);
    if jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (record, runs) = swarm::swarm(&loaded, from, seeds, jobs, progress);
    if json {
        _ = writeln!(out, "{}", to_json(&record));
    } else {
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
        for f in &record.failed {
            let names: Vec<&str> = f.violations.iter().map(|v| v.invariant.as_str()).collect();
            _ = writeln!(out, "seed {} failed ({}): {}", f.seed, names.join(", "), f.repro);
        }
    }
    _ = err.flush();
    Ok(runs.iter().map(exit_code).max_by_key(|&c| severity(c)).unwrap_or(EXIT_PASS))
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
