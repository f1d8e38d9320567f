//! The `faultline` command line: `run`, `explain`, `shrink`, `swarm`, `merge`, `compare`,
//! `report`, `list`, `bench`, `completions`.
//!
//! Exit codes: 0 all checks hold, 1 safety violation, 2 bad input or usage, 3 liveness violation.
//! With `--json`, stdout carries exactly one JSON object and nothing else; everything meant for
//! people goes to stderr. Every failing run names the command that replays it.
//!
//! The grammar is `args`; each family of subcommands has its module (`run`, `sweep`, `bench`),
//! `shrink` its own, and `paint` colours verdicts for people.

mod args;
mod bench;
mod explain;
mod paint;
mod run;
mod shrink;
mod sweep;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;

use crate::bench::BenchOptions;
use crate::compare::Vary;
use crate::plugin::Registry;
use crate::scenario::{self, Loaded};
pub use args::{command, ColorWhen};
use args::{Cli, Command};
use paint::Paint;

pub const EXIT_PASS: i32 = 0;
pub const EXIT_SAFETY: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Runs the CLI on `args` (program name first) with the built-in pipelines; returns the exit
/// code.
pub fn main_with(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    main_with_registry(args, out, err, crate::builtins::registry())
}

/// `registry`, named after the program that runs it (`args[0]`'s file name) unless it is
/// named already: replay lines then name the binary the user ran.
fn named(registry: Registry, args: &[String]) -> Registry {
    let program = args.first().map(std::path::Path::new).and_then(|p| p.file_stem()).and_then(|s| s.to_str());
    match program {
        Some(program) if registry.command() == "faultline" && !program.is_empty() => {
            registry.with_command(program)
        }
        _ => registry,
    }
}

/// Runs the CLI on `args` with the pipelines of `registry`: a user crate's `main` registers its
/// own beside the built-ins and hands them here.
pub fn main_with_registry(
    args: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
    registry: Registry,
) -> i32 {
    let registry = Arc::new(named(registry, args));
    let r = &registry;
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_PASS };
            let sink: &mut dyn Write = if e.use_stderr() { err } else { out };
            _ = write!(sink, "{}", e.render());
            return code;
        }
    };
    let paint = Paint::new(cli.color, paint::stdout_is_terminal(), std::env::var_os("NO_COLOR"));
    let result = match cli.command {
        Command::Run { scenario, seed, sets, json, check_determinism, report, junit, trace } => {
            let options = run::RunOptions { json, check_determinism, report, junit, trace, paint };
            run::run(r, &scenario, seed, &sets, &options, out, err)
        }
        Command::Explain { scenario, seed, sets, output, limit, json } => {
            let options = explain::ExplainOptions { only: output, limit, json, paint };
            explain::explain(r, &scenario, seed, &sets, &options, out)
        }
        Command::Shrink { scenario, seed, sets, invariant, out: file, max_runs, json } => {
            let options = shrink::ShrinkOptions { invariant, out: file, max_runs, json, paint };
            shrink::shrink(r, &scenario, seed, &sets, &options, out)
        }
        Command::Swarm { scenarios, sweep, minutes, report, shard, junit, fail_fast } => {
            let options = sweep::SwarmOptions { minutes, report, shard, junit, fail_fast, paint };
            sweep::run_swarm(r, &scenarios, &sweep, &options, out, err)
        }
        Command::Merge { files, json } => sweep::run_merge(&files, json, paint, out),
        Command::Report { record, out: dir } => run::render_saved(&record, &dir, err),
        Command::Compare { scenario, sweep, vary, out: dir } => Vary::parse(&vary)
            .and_then(|vary| sweep::run_compare(r, &scenario, &vary, &sweep, &dir, out, err)),
        Command::List { dir } => list(r, &dir, out, err),
        Command::BenchRound { side, scenario, events, batch_records } => {
            let options = BenchOptions { scenario, events, batch_records, repeats: 1 };
            bench::bench_round(&options, side, out)
        }
        Command::Bench { pipelines, scenarios, events, repeats, json, .. } if !pipelines.is_empty() => {
            let options = bench::PipelineBench { names: pipelines, scenarios, events, repeats };
            bench::run_pipeline_bench(&options, json, out)
        }
        Command::Bench { scenario, events, batch_records, repeats, json, .. } => {
            bench::run_bench(BenchOptions { scenario, events, batch_records, repeats }, json, out)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "faultline", out);
            Ok(EXIT_PASS)
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

pub(super) type CliResult = Result<i32, String>;

pub(super) fn load(registry: &Arc<Registry>, path: &Path, sets: &[String]) -> Result<Loaded, String> {
    scenario::load_with(path, sets, registry.clone()).map_err(|e| e.to_string())
}

/// Safety failures outrank liveness failures.
pub(super) fn severity(code: i32) -> i32 {
    match code {
        EXIT_SAFETY => 2,
        0 => 0,
        _ => 1,
    }
}

pub(super) fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn list(registry: &Arc<Registry>, dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> CliResult {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut code = EXIT_PASS;
    for path in paths {
        match scenario::load_with(&path, &[], registry.clone()) {
            Ok(loaded) => _ = writeln!(out, "{:<28} {}", path.display(), loaded.scenario.description),
            Err(e) => {
                _ = writeln!(err, "error: {e}");
                code = EXIT_USAGE;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay_of(program: &str) -> String {
        let args: Vec<String> = [
            program,
            "run",
            "../scenarios/quickstart.toml",
            "--seed",
            "1",
            "--json",
            "--set",
            "workload.events=50",
        ]
        .map(String::from)
        .to_vec();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = main_with(&args, &mut out, &mut err);
        assert_eq!(code, EXIT_PASS, "{}", String::from_utf8_lossy(&err));
        let record: serde_json::Value = serde_json::from_slice(&out).expect("run --json prints a record");
        record["repro"].as_str().expect("a record has its replay").to_string()
    }

    #[test]
    fn replay_lines_name_the_program_that_ran() {
        let quickstart = "run ../scenarios/quickstart.toml --seed 1 --set workload.events=50";
        assert_eq!(replay_of("faultline"), format!("faultline {quickstart}"));
        assert_eq!(replay_of("target/release/my-operators"), format!("my-operators {quickstart}"));
        let given = Registry::new().with_command("cargo run -p my-operators --");
        assert_eq!(named(given, &["x".into()]).command(), "cargo run -p my-operators --", "named already");
    }
}
