//! The command line's grammar: every subcommand and option, with its help text and examples.
//!
//! Every option has a one-line description and every subcommand's `--help` ends with real
//! examples; a test walks this grammar and holds both. Nothing here runs anything.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::bench;

#[derive(Parser, Debug)]
#[command(
    name = "faultline",
    version,
    about = "Deterministic simulation and fault injection for stream processing",
    long_about = "Deterministic simulation and fault injection for stream processing.\n\n\
        Runs a whole streaming engine inside one seeded simulation, injects faults of seven \
        classes, and checks the delivery semantics the job promises. The same seed replays the \
        same run, bit for bit.\n\n\
        Exit codes: 0 every check holds, 1 a safety violation (or a panic), 2 bad input or \
        usage, 3 a liveness violation.",
    after_help = EXAMPLES_TOP
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to colour verdicts: auto (a terminal, and NO_COLOR unset), always or never.
    #[arg(long, value_name = "WHEN", default_value = "auto", global = true)]
    pub color: ColorWhen,
}

const EXAMPLES_TOP: &str = "\
Examples:
  faultline run scenarios/quickstart.toml --seed 1
  faultline swarm scenarios/ --seeds 200
  faultline list";

/// When verdicts are coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Even in a pipe or a file, and under NO_COLOR.
    Always,
    /// Never.
    Never,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
    /// Run one scenario with one seed and check it.
    #[command(after_help = "\
Examples:
  faultline run scenarios/quickstart.toml --seed 1
  faultline run scenarios/processor-crash.toml --seed 7 --set engine.semantics=at-least-once
  faultline run scenarios/all-faults.toml --seed 3 --report out/ --junit seed-3.xml
  faultline run scenarios/processor-crash.toml --seed 3 --trace trace.jsonl")]
    Run {
        /// The scenario file (TOML); see `faultline list`.
        scenario: PathBuf,
        /// The seed: it draws every fault, delay and choice of the run.
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
        /// Write the verdict as JUnit XML (one test case) into this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write every trace event as a JSON line (simulated ms, node, event and its fields).
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
    },
    /// Tell how each offending output of one seed came to be lost, duplicated or wrong.
    #[command(after_help = "\
Examples:
  faultline explain scenarios/processor-crash.toml --seed 3 --set engine.semantics=at-most-once
  faultline explain scenarios/processor-crash.toml --seed 3 --set engine.sink=plain --limit 1
  faultline explain scenarios/processor-crash.toml --seed 3 --set engine.sink=plain --output \"key 32 · input 0/373\"")]
    Explain {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The seed to run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Override a scenario field by its dotted TOML path, e.g. engine.sink=plain.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Tell only this output's story, its id as printed: `key 0 · input 0/43`.
        #[arg(long, value_name = "ID", value_parser = crate::explain::parse_output_id)]
        output: Option<faultline_engine::record::OutputId>,
        /// Tell at most this many stories of each kind (lost, duplicate, wrong).
        #[arg(long, default_value_t = 5)]
        limit: usize,
        /// Print the stories as one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Cut a failing seed down to the few faults, events and nodes that still fail the same way.
    #[command(after_help = "\
Examples:
  faultline shrink scenarios/all-faults.toml --seed 1 --set engine.sink=plain
  faultline shrink scenarios/processor-crash.toml --seed 3 --set engine.semantics=at-most-once --out lost.toml
  faultline shrink scenarios/all-faults.toml --seed 1 --set engine.sink=plain --json --max-runs 100")]
    Shrink {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Override a scenario field by its dotted TOML path, e.g. engine.sink=plain.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Keep this invariant failing (default: the seed's first violation).
        #[arg(long, value_name = "NAME")]
        invariant: Option<String>,
        /// Write the minimal scenario here (default: NAME.seed-N.shrunk.toml in this directory).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Run the simulation at most this many times, the seed's own runs included.
        #[arg(long, value_name = "N", default_value_t = 300)]
        max_runs: u32,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Run many seeds of one or more scenarios (files or directories of them) in parallel.
    #[command(after_help = "\
Examples:
  faultline swarm scenarios/quickstart.toml --seeds 50 --jobs 2
  faultline swarm scenarios/ --seeds 10000 --junit sweep.xml
  faultline swarm scenarios/ --minutes 30
  faultline swarm scenarios/ --seeds 10000 --shard 2/4 --json > s2.json")]
    Swarm {
        /// Scenario files, or directories whose *.toml files are all swept.
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
        #[arg(long, value_name = "K/N", value_parser = crate::swarm::parse_shard)]
        shard: Option<faultline_reports::Shard>,
        /// Write JUnit XML into this file: a test suite per scenario, a test case per seed.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Stop at the first failing seed: seeds already running finish, and no further seed,
        /// nor any later scenario, starts.
        #[arg(long)]
        fail_fast: bool,
    },
    /// Join the --json outputs of a sharded sweep's shards into one summary.
    #[command(after_help = "\
Examples:
  faultline merge s1.json s2.json s3.json s4.json
  faultline merge shards/*.json --json > sweep.json")]
    Merge {
        /// The shards' `swarm --json` outputs.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print one JSON object on stdout and nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Render a saved run record (report.json, or a `run --json` line) as a report again.
    #[command(after_help = "\
Examples:
  faultline run scenarios/windows.toml --seed 4 --json > run.json
  faultline report run.json --out report/")]
    Report {
        /// The saved run record.
        record: PathBuf,
        /// The directory to write report.html and its charts into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run the same seeds under each value of one scenario field and compare them.
    #[command(after_help = "\
Examples:
  faultline compare scenarios/recovery-compare.toml --seeds 20 \\
      --vary engine.recovery=rollback,passive-replication,active-replication --out cmp/
  faultline compare scenarios/quickstart.toml --seeds 10 --vary engine.checkpoint_interval_ms=50,200 --out cmp/")]
    Compare {
        /// The scenario file (TOML).
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
    #[command(after_help = "\
Examples:
  faultline list
  faultline list --dir my-scenarios/")]
    List {
        /// The directory whose *.toml scenarios are listed.
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
    /// Measure the engine against a bare-madsim baseline, or pipelines against Nexmark's figures.
    #[command(after_help = "\
Examples:
  faultline bench
  faultline bench --events 500000 --repeats 3 --json
  faultline bench --pipeline nexmark --events 200000")]
    Bench {
        /// The scenario whose cluster and pipeline are measured.
        #[arg(long, default_value = "scenarios/quickstart.toml")]
        scenario: PathBuf,
        /// Input events per round.
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
        /// Records per batch.
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
        /// Print JSON on stdout and nothing else (a line per pipeline with --pipeline).
        #[arg(long)]
        json: bool,
    },
    /// Print a shell's completion script for faultline.
    #[command(after_help = "\
Examples:
  faultline completions bash > ~/.local/share/bash-completion/completions/faultline
  faultline completions zsh > ~/.zfunc/_faultline
  faultline completions fish > ~/.config/fish/completions/faultline.fish")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// The seeds a sweep runs, and how.
#[derive(clap::Args, Debug)]
pub(super) struct Sweep {
    /// Seeds per scenario.
    #[arg(long)]
    pub seeds: Option<u64>,
    /// The first seed; a sweep runs seeds FROM, FROM+1, …
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Threads to run seeds on (default: the machine's cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Override a field of every scenario that has it, by its dotted TOML path (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    pub json: bool,
}

impl Sweep {
    /// The seeds and threads, checked; whether to draw a progress bar.
    pub fn checked(&self) -> Result<(usize, bool), String> {
        if self.seeds == Some(0) {
            return Err("--seeds must be at least 1".into());
        }
        let jobs = self.jobs.unwrap_or_else(super::default_jobs);
        if jobs == 0 {
            return Err("--jobs must be at least 1".into());
        }
        Ok((jobs, !self.json && std::io::IsTerminal::is_terminal(&std::io::stderr())))
    }
}

/// The grammar, for completions and for the test that holds its help text.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible option of every visible subcommand says what it does, and every visible
    /// subcommand's help ends with examples.
    #[test]
    fn every_option_has_help_and_every_subcommand_examples() {
        let cli = command();
        cli.clone().debug_assert();
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_name();
            let after = sub.get_after_help().map(ToString::to_string).unwrap_or_default();
            assert!(after.starts_with("Examples:\n  faultline "), "{name}: no examples");
            assert!(after.lines().count() >= 3, "{name}: fewer than two examples");
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id().as_str();
                if id == "help" {
                    continue;
                }
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(!help.trim().is_empty(), "{name} {id}: no help text");
            }
        }
    }
}
