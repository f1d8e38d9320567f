//! `bench`: the engine against a bare-madsim baseline, each side in fresh child processes, or
//! pipelines against Nexmark's published per-core figures.

use std::io::Write;
use std::path::PathBuf;

use faultline_reports::to_json;

use super::{CliResult, EXIT_PASS, EXIT_SAFETY};
use crate::bench::{self, BenchError, BenchOptions};

pub(super) fn bench_round(options: &BenchOptions, side: bench::Side, out: &mut dyn Write) -> CliResult {
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
pub(super) struct PipelineBench {
    pub names: Vec<String>,
    pub scenarios: PathBuf,
    pub events: u64,
    pub repeats: usize,
}

/// `bench --pipeline`: each named pipeline's throughput, beside Flink's per-core figure.
pub(super) fn run_pipeline_bench(options: &PipelineBench, json: bool, out: &mut dyn Write) -> CliResult {
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

pub(super) fn run_bench(options: BenchOptions, json: bool, out: &mut dyn Write) -> CliResult {
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
