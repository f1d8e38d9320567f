//! The swarm: many seeds of one scenario, in parallel, each on a fresh thread.
//!
//! `jobs` OS threads take seeds from a shared counter; each seed runs in its own fresh thread
//! (see `runner::run_isolated`), so a seed's run is the same whether it ran alone or in a swarm.
//! A sweep stops at its seed count or at its wall-clock deadline, whichever comes first; a seed
//! started before the deadline runs to its end, and the first seed always runs. Results are
//! reported in seed order whatever order they finished in.
//!
//! A sweep may be one shard of several (`--shard K/N`, as nextest's `--partition`): the seed
//! `from + i` of the range belongs to shard `i % N + 1`, so N processes, on one machine or many,
//! cover every seed exactly once; `merge` joins their records.
//!
//! Under `--fail-fast` a sweep halts at its first failing seed: seeds already running finish,
//! and no further seed, nor any later scenario, starts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use std::path::{Path, PathBuf};

use faultline_reports::{RunRecord, Shard, SkippedScenario, SwarmFailure, SwarmRecord};

use crate::signature::{self, Signature};
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
    /// The slice of the range to run (`None`: all of it).
    pub shard: Option<Shard>,
    /// Set at a failing seed under `--fail-fast`: no seed starts once it is.
    pub halt: Option<&'a AtomicBool>,
}

impl Budget<'_> {
    /// Whether this sweep's `i`-th seed is to run. The first always runs: a scenario swept
    /// after others used up the time still gets its row and a seed's verdict.
    fn open(&self, i: u64) -> bool {
        self.halt.is_none_or(|h| !h.load(Ordering::Relaxed))
            && self.seeds.is_none_or(|n| self.offset(i) < n)
            && (i == 0 || self.until.is_none_or(|(clock, ms)| clock.elapsed_ms() < ms))
    }

    /// This sweep's `i`-th seed.
    fn seed(&self, i: u64) -> u64 {
        self.from + self.offset(i)
    }

    /// Where this sweep's `i`-th seed lies in the range.
    fn offset(&self, i: u64) -> u64 {
        match self.shard {
            None => i,
            Some(Shard { index, count }) => {
                assert!((1..=count).contains(&index), "shard {index}/{count}");
                i * count + (index - 1)
            }
        }
    }
}

/// Parses `K/N`: the K-th of N shards, 1 ≤ K ≤ N.
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("--shard {text}: give K/N with 1 ≤ K ≤ N, e.g. 2/4");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (index, count) =
        (k.trim().parse::<u64>().map_err(|_| bad())?, n.trim().parse::<u64>().map_err(|_| bad())?);
    if index == 0 || index > count {
        return Err(bad());
    }
    Ok(Shard { index, count })
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
    let budget = Budget { from, seeds: Some(seeds), until: None, jobs, shard: None, halt: None };
    let outcome = sweep(loaded, &budget, bar.as_ref());
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
    // The next seed's index, taken only while the budget is open: every reason to close it
    // (the count, the deadline, a halt) stays once it holds, so the seeds taken are a prefix.
    let next = Mutex::new(0u64);
    let take = || {
        let mut next = next.lock().unwrap();
        let i = *next;
        if !budget.open(i) {
            return None;
        }
        *next += 1;
        Some(i)
    };
    let results: Mutex<Vec<RunRecord>> = Mutex::new(Vec::new());
    let threads = budget.jobs.min(budget.seeds.unwrap_or(u64::MAX).max(1) as usize);
    // Threads here only schedule seeds; each seed's simulation runs alone on its own thread.
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(i) = take() {
                    let record = runner::run_isolated(loaded, budget.seed(i));
                    if let Some(bar) = bar {
                        bar.inc(1);
                    }
                    if let Some(halt) = budget.halt.filter(|_| !record.passed()) {
                        halt.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap().push(record);
                }
            });
        }
    });
    let mut runs = results.into_inner().unwrap();
    runs.sort_by_key(|r| r.seed);
    // Under a deadline the seeds that ran are a prefix of the range (of the shard's slice):
    // every seed below the greatest one taken was taken too, and ran to its end.
    assert!(runs.iter().enumerate().all(|(i, r)| r.seed == budget.seed(i as u64)), "seeds are a prefix");
    (record(loaded, budget, &runs, wall.elapsed_ms()), runs)
}

/// The sweep's summary.
fn record(loaded: &Loaded, budget: &Budget<'_>, runs: &[RunRecord], wall_ms: f64) -> SwarmRecord {
    let failed: Vec<SwarmFailure> = runs
        .iter()
        .filter(|r| !r.passed())
        .map(|r| SwarmFailure {
            seed: r.seed,
            violations: r.violations.clone(),
            repro: r.repro.clone(),
            fault_classes: signature::classes(&r.faults),
        })
        .collect();
    let mut effective_faults = BTreeMap::new();
    for fault in runs.iter().flat_map(|r| &r.faults).filter(|f| f.effective) {
        *effective_faults.entry(fault.class.clone()).or_insert(0) += 1;
    }
    let seeds = runs.len() as u64;
    let mut record = SwarmRecord {
        scenario: loaded.scenario.name.clone(),
        seeds,
        passed: seeds - failed.len() as u64,
        failed,
        wall_ms,
        seeds_per_s: if wall_ms > 0.0 { seeds as f64 * 1000.0 / wall_ms } else { 0.0 },
        failing_invariants: Vec::new(),
        effective_faults,
        seeds_with_recovery: runs.iter().filter(|r| !r.recoveries.is_empty()).count() as u64,
        seeds_with_simultaneous_crashes: runs.iter().filter(|r| simultaneous_crashes(r)).count() as u64,
        drawn: tally_draws(runs),
        failure_groups: Vec::new(),
        from: budget.from,
        scenario_hash: scenario::hash(&loaded.scenario),
        shard: budget.shard,
        missing_shards: Vec::new(),
    };
    regroup(&mut record);
    record
}

/// Derives what a record's failures imply: failures in seed order, their distinct invariants,
/// and the failure groups (see [`signature::group`]).
pub fn regroup(record: &mut SwarmRecord) {
    record.failed.sort_by_key(|f| f.seed);
    let signatures: Vec<(u64, Signature)> = record
        .failed
        .iter()
        .map(|f| {
            let invariants = signature::invariants(&f.violations);
            let stage = signature::stage(&f.violations);
            (f.seed, Signature { invariants, classes: f.fault_classes.clone(), stage })
        })
        .collect();
    record.failure_groups = signature::group(&signatures);
    let failing: BTreeSet<&String> =
        record.failed.iter().flat_map(|f| &f.violations).map(|v| &v.invariant).collect();
    record.failing_invariants = failing.into_iter().cloned().collect();
    assert_eq!(record.passed + record.failed.len() as u64, record.seeds, "every seed passed or failed");
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
    registry: std::sync::Arc<crate::plugin::Registry>,
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

/// How a sweep of several scenarios runs: the seeds of each, and its bounds.
pub struct Plan {
    pub from: u64,
    pub seeds: Option<u64>,
    pub minutes: Option<f64>,
    pub jobs: usize,
    pub shard: Option<Shard>,
    /// Halt at the first failing seed (`--fail-fast`).
    pub fail_fast: bool,
}

/// Sweeps each scenario in turn within one budget: `seeds` each, and under a deadline an
/// equal share of the time left to each scenario still to run. Under `fail_fast` the sweep
/// ends with the scenario whose seed failed first: the scenarios after it are not swept.
pub fn sweep_all(
    scenarios: &[Loaded],
    plan: &Plan,
    bar: Option<&ProgressBar>,
) -> Vec<(SwarmRecord, Vec<RunRecord>)> {
    let Plan { from, seeds, minutes, jobs, shard, fail_fast } = *plan;
    let clock = WallClock::start();
    let total_ms = minutes.map(|m| m * 60_000.0);
    let halted = AtomicBool::new(false);
    let halt = fail_fast.then_some(&halted);
    let mut done = Vec::with_capacity(scenarios.len());
    for (i, loaded) in scenarios.iter().enumerate() {
        if halted.load(Ordering::Relaxed) {
            break;
        }
        if let Some(bar) = bar {
            bar.set_message(loaded.scenario.name.clone());
        }
        let until = total_ms.map(|total| {
            let now = clock.elapsed_ms();
            (&clock, now + (total - now).max(0.0) / (scenarios.len() - i) as f64)
        });
        done.push(sweep(loaded, &Budget { from, seeds, until, jobs, shard, halt }, bar));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// N shards of a range take every seed of it exactly once, whatever N and the range.
    #[test]
    fn shards_cover_the_range_exactly_once() {
        for seeds in [1, 7, 13, 400] {
            for count in 1..=5 {
                let mut taken: Vec<u64> = Vec::new();
                for index in 1..=count {
                    let budget = Budget {
                        from: 7,
                        seeds: Some(seeds),
                        until: None,
                        jobs: 1,
                        shard: Some(Shard { index, count }),
                        halt: None,
                    };
                    taken.extend((0..).take_while(|&i| budget.open(i)).map(|i| budget.seed(i)));
                }
                taken.sort_unstable();
                assert_eq!(taken, (7..7 + seeds).collect::<Vec<_>>(), "{seeds} seeds in {count} shards");
            }
        }
    }

    #[test]
    fn a_shard_is_k_of_n() {
        assert_eq!(parse_shard("2/4"), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "2", "a/b", "1/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
