//! The swarm: many seeds of one scenario, in parallel, each on a fresh thread.
//!
//! `jobs` OS threads take seeds from a shared counter; each seed runs in its own fresh thread
//! (see `runner::run_isolated`), so a seed's run is the same whether it ran alone or in a swarm.
//! Results are reported in seed order whatever order they finished in.

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
    let record = SwarmRecord {
        scenario: loaded.scenario.name.clone(),
        seeds,
        passed: seeds - failed.len() as u64,
        failed,
        wall_ms: wall.elapsed_ms(),
    };
    (record, runs)
}

fn progress_bar(seeds: u64) -> ProgressBar {
    let bar = ProgressBar::new(seeds);
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {elapsed_precise} (eta {eta})")
        .expect("a valid template");
    bar.set_style(style);
    bar
}
