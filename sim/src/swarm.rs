//! The swarm: many seeds of one scenario, in parallel, each on a fresh thread.
//!
//! `jobs` OS threads take seeds from a shared counter; each seed runs in its own fresh thread
//! (see `runner::run_isolated`), so a seed's run is the same whether it ran alone or in a swarm.
//! A sweep stops at its seed count or at its wall-clock deadline, whichever comes first; a seed
//! started before the deadline runs to its end. Results are reported in seed order whatever
//! order they finished in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use std::path::{Path, PathBuf};

use faultline_reports::{RunRecord, SkippedScenario, SwarmFailure, SwarmRecord};
use indicatif::{ProgressBar, ProgressStyle};

use crate::runner;
use crate::scenario::{self, Loaded};
use crate::wall::WallClock;

/// Which seeds a sweep runs: from `from`, at most `seeds` of them, and none started after
/// `until_ms` of `clock`'s time.
pub struct Budget<'a> {
    pub from: u64,
    pub seeds: Option<u64>,
    pub until: Option<(&'a WallClock, f64)>,
    pub jobs: usize,
}

impl Budget<'_> {
    fn open(&self, i: u64) -> bool {
        self.seeds.is_none_or(|n| i < n) && self.until.is_none_or(|(clock, ms)| clock.elapsed_ms() < ms)
    }
}

/// Runs seeds `from..from + seeds` on `jobs` threads.
pub fn swarm(
    loaded: &Loaded,
    from: u64,
    seeds: u64,
    jobs: usize,
    progress: bool,
) -> (SwarmRecord, Vec<RunRecord>) {
    let bar = progress.then(|| progress_bar(Some(seeds)));
    let outcome = sweep(loaded, &Budget { from, seeds: Some(seeds), until: None, jobs }, bar.as_ref());
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    outcome
}

/// Runs the seeds `budget` allows, ticking `bar` once per seed.
pub fn sweep(
    loaded: &Loaded,
    budget: &Budget<'_>,
    bar: Option<&ProgressBar>,
) -> (SwarmRecord, Vec<RunRecord>) {
    assert!(budget.jobs > 0);
    assert!(budget.seeds.is_some() || budget.until.is_some(), "a sweep needs a bound");
    let wall = WallClock::start();
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<RunRecord>> = Mutex::new(Vec::new());
    let threads = budget.jobs.min(budget.seeds.unwrap_or(u64::MAX).max(1) as usize);
    // Threads here only schedule seeds; each seed's simulation runs alone on its own thread.
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if !budget.open(i) {
                    return;
                }
                let record = runner::run_isolated(loaded, budget.from + i);
                if let Some(bar) = bar {
                    bar.inc(1);
                }
                results.lock().unwrap().push(record);
            });
        }
    });
    let mut runs = results.into_inner().unwrap();
    runs.sort_by_key(|r| r.seed);
    // Under a deadline the seeds that ran are a prefix of the range: every seed below the
    // greatest one taken was taken too, and ran to its end.
    assert!(runs.iter().enumerate().all(|(i, r)| r.seed == budget.from + i as u64), "seeds are a prefix");
    (record(loaded, &runs, wall.elapsed_ms()), runs)
}

/// The sweep's summary.
fn record(loaded: &Loaded, runs: &[RunRecord], wall_ms: f64) -> SwarmRecord {
    let failed: Vec<SwarmFailure> = runs
        .iter()
        .filter(|r| !r.passed())
        .map(|r| SwarmFailure { seed: r.seed, violations: r.violations.clone(), repro: r.repro.clone() })
        .collect();
    let mut effective_faults = BTreeMap::new();
    for fault in runs.iter().flat_map(|r| &r.faults).filter(|f| f.effective) {
        *effective_faults.entry(fault.class.clone()).or_insert(0) += 1;
    }
    let failing: BTreeSet<String> =
        failed.iter().flat_map(|f| &f.violations).map(|v| v.invariant.clone()).collect();
    let seeds = runs.len() as u64;
    SwarmRecord {
        scenario: loaded.scenario.name.clone(),
        seeds,
        passed: seeds - failed.len() as u64,
        failed,
        wall_ms,
        seeds_per_s: if wall_ms > 0.0 { seeds as f64 * 1000.0 / wall_ms } else { 0.0 },
        failing_invariants: failing.into_iter().collect(),
        effective_faults,
        seeds_with_recovery: runs.iter().filter(|r| !r.recoveries.is_empty()).count() as u64,
        seeds_with_simultaneous_crashes: runs.iter().filter(|r| simultaneous_crashes(r)).count() as u64,
        drawn: tally_draws(runs),
    }
}

/// Per `[swarm]` entry, how many seeds drew each choice: whether the sweep reached them all.
fn tally_draws(runs: &[RunRecord]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut tally: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (entry, choice) in runs.iter().flat_map(|r| &r.drawn) {
        *tally.entry(entry.clone()).or_default().entry(choice.clone()).or_insert(0) += 1;
    }
    tally
}

/// The scenario files `paths` name: files as given, directories by their `*.toml` files in
/// name order.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        if found.is_empty() {
            return Err(format!("{} holds no scenario (*.toml)", path.display()));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// Loads every scenario of a sweep with its overrides. A scenario that loads alone but not
/// with the overrides (a field it lacks, a combination it refuses) is skipped, with the reason;
/// one that does not load at all is the user's mistake.
pub fn load_all(
    files: &[PathBuf],
    sets: &[String],
    registry: std::sync::Arc<faultline_engine::api::Registry>,
) -> Result<(Vec<Loaded>, Vec<SkippedScenario>), String> {
    let (mut loaded, mut skipped) = (Vec::new(), Vec::new());
    for file in files {
        match scenario::load_with(file, sets, registry.clone()) {
            Ok(l) => loaded.push(l),
            Err(e) if !sets.is_empty() && scenario::load_with(file, &[], registry.clone()).is_ok() => {
                skipped.push(SkippedScenario { path: shown(file), reason: e.to_string() });
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((loaded, skipped))
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Sweeps each scenario in turn within one budget: `seeds` each, and under a deadline an
/// equal share of the time left to each scenario still to run.
pub fn sweep_all(
    scenarios: &[Loaded],
    from: u64,
    seeds: Option<u64>,
    minutes: Option<f64>,
    jobs: usize,
    bar: Option<&ProgressBar>,
) -> Vec<(SwarmRecord, Vec<RunRecord>)> {
    let clock = WallClock::start();
    let total_ms = minutes.map(|m| m * 60_000.0);
    let mut done = Vec::with_capacity(scenarios.len());
    for (i, loaded) in scenarios.iter().enumerate() {
        if let Some(bar) = bar {
            bar.set_message(loaded.scenario.name.clone());
        }
        let until = total_ms.map(|total| {
            let now = clock.elapsed_ms();
            (&clock, now + (total - now).max(0.0) / (scenarios.len() - i) as f64)
        });
        done.push(sweep(loaded, &Budget { from, seeds, until, jobs }, bar));
    }
    done
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

/// A bar over `seeds` seeds, or a running count when a deadline bounds the sweep.
pub fn progress_bar(seeds: Option<u64>) -> ProgressBar {
    let (bar, template) = match seeds {
        Some(n) => (ProgressBar::new(n), "{bar:40} {pos}/{len} seeds  {elapsed_precise} (eta {eta})  {msg}"),
        None => (ProgressBar::no_length(), "{spinner} {pos} seeds  {elapsed_precise}  {msg}"),
    };
    bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
    bar
}
