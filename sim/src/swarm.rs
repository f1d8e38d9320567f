//! The swarm: many seeds of one scenario, in parallel, each on a fresh thread.
//!
//! `jobs` OS threads take seeds from a shared counter; each seed runs in its own fresh thread
//! (see `runner::run_isolated`), so a seed's run is the same whether it ran alone or in a swarm.
//! Results are reported in seed order whatever order they finished in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use faultline_reports::{RunRecord, SwarmFailure, SwarmRecord};
use indicatif::{ProgressBar, ProgressStyle};

use crate::runner;
use crate::scenario::Loaded;
use crate::wall::WallClock;

/// Runs seeds `from..from + seeds` on `jobs` threads.
pub fn swarm(
    loaded: &Loaded,
    from: u64,
    seeds: u64,
    jobs: usize,
    progress: bool,
) -> (SwarmRecord, Vec<RunRecord>) {
    assert!(jobs > 0);
    let wall = WallClock::start();
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<RunRecord>> = Mutex::new(Vec::with_capacity(seeds as usize));
    let bar = progress.then(|| progress_bar(seeds));
    // Threads here only schedule seeds; each seed's simulation runs alone on its own thread.
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(seeds.max(1) as usize) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= seeds {
                    return;
                }
                let record = runner::run_isolated(loaded, from + i);
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                results.lock().unwrap().push(record);
            });
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut runs = results.into_inner().unwrap();
    runs.sort_by_key(|r| r.seed);
    let failed: Vec<SwarmFailure> = runs
        .iter()
        .filter(|r| !r.passed())
        .map(|r| SwarmFailure { seed: r.seed, violations: r.violations.clone(), repro: r.repro.clone() })
        .collect();
    let mut effective_faults = BTreeMap::new();
    for fault in runs.iter().flat_map(|r| &r.faults).filter(|f| f.effective) {
        *effective_faults.entry(fault.class.clone()).or_insert(0) += 1;
    }
    let record = SwarmRecord {
        scenario: loaded.scenario.name.clone(),
        seeds,
        passed: seeds - failed.len() as u64,
        failed,
        wall_ms: wall.elapsed_ms(),
        effective_faults,
        seeds_with_recovery: runs.iter().filter(|r| !r.recoveries.is_empty()).count() as u64,
        seeds_with_simultaneous_crashes: runs.iter().filter(|r| simultaneous_crashes(r)).count() as u64,
    };
    (record, runs)
}

/// Whether two or more nodes were down at once in a run: a crash struck while an earlier
/// crash's node had not restarted yet. A crash without a restart keeps its node down.
fn simultaneous_crashes(run: &RunRecord) -> bool {
    let crashes: Vec<(u64, u64, &str)> = run
        .faults
        .iter()
        .filter(|f| f.effective && f.action == "crash")
        .map(|f| (f.at_ms, f.at_ms + f.restart_after_ms.unwrap_or(u64::MAX / 2), f.target.as_str()))
        .collect();
    crashes
        .iter()
        .enumerate()
        .any(|(i, a)| crashes[i + 1..].iter().any(|b| a.2 != b.2 && a.0 < b.1 && b.0 < a.1))
}

fn progress_bar(seeds: u64) -> ProgressBar {
    let bar = ProgressBar::new(seeds);
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {elapsed_precise} (eta {eta})")
        .expect("a valid template");
    bar.set_style(style);
    bar
}
