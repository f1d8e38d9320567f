//! Comparisons: the same seeds of one scenario under each value of one field, side by side.
//!
//! Each variant is the scenario with one more `--set field=value`; every variant runs the same
//! seeds, so they meet the same drawn faults. The summary per variant is read off the runs'
//! records: pass rate, recovery times (fault until output resumed), detection, throughput, what
//! recoveries replayed and transferred. One representative seed — the first at which every
//! variant met the same effective faults — is run again with its timeline, to overlay the
//! variants' throughput over time.

use faultline_reports::{CompareRecord, FaultRecord, RunRecord, VariantSummary};

use crate::runner::{self, Detail};
use crate::scenario::{self, Loaded};
use crate::swarm;
use crate::wall::WallClock;

/// What to compare: `field=value,value,…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vary {
    pub field: String,
    pub values: Vec<String>,
}

impl Vary {
    /// Parses `--vary field=v1,v2,…`: a dotted field and at least two distinct values.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (field, values) = raw
            .split_once('=')
            .ok_or_else(|| format!("--vary {raw:?}: expected FIELD=VALUE,VALUE,… e.g. engine.recovery=rollback,passive-replication"))?;
        let field = field.trim().to_string();
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if field.is_empty() || values.iter().any(String::is_empty) {
            return Err(format!("--vary {raw:?}: the field and every value must be non-empty"));
        }
        if values.len() < 2 {
            return Err(format!("--vary {raw:?}: give at least two values to compare"));
        }
        let mut seen = values.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != values.len() {
            return Err(format!("--vary {raw:?}: a value is listed twice"));
        }
        Ok(Vary { field, values })
    }
}

/// How to run the comparison.
pub struct CompareOptions<'a> {
    /// The pipelines the scenario may name.
    pub registry: &'a std::sync::Arc<crate::plugin::Registry>,
    pub path: &'a std::path::Path,
    pub sets: &'a [String],
    pub vary: &'a Vary,
    pub from: u64,
    pub seeds: u64,
    pub jobs: usize,
    pub progress: bool,
}

/// Loads every variant first (so a bad value is refused before anything runs), then runs them.
pub fn compare(options: &CompareOptions<'_>) -> Result<CompareRecord, String> {
    let wall = WallClock::start();
    let variants = load_variants(options)?;
    let mut runs = Vec::new();
    for (value, loaded) in &variants {
        if options.progress {
            eprintln!("{} = {value}", options.vary.field);
        }
        let (_, records) = swarm::swarm(loaded, options.from, options.seeds, options.jobs, options.progress);
        runs.push(records);
    }
    let representative = representative_seed(&runs);
    let summaries = variants
        .iter()
        .zip(&runs)
        .map(|((value, loaded), records)| {
            let samples = representative
                .map(|seed| runner::run_isolated_with(loaded, seed, Detail::Timeline).0)
                .and_then(|r| r.timeline)
                .map(|t| t.samples)
                .unwrap_or_default();
            summarise(value, loaded, records, samples)
        })
        .collect();
    Ok(CompareRecord {
        scenario: variants[0].1.scenario.name.clone(),
        faultline_version: env!("CARGO_PKG_VERSION").to_string(),
        field: options.vary.field.clone(),
        seeds: options.seeds,
        from: options.from,
        variants: summaries,
        representative_seed: representative,
        wall_ms: wall.elapsed_ms(),
    })
}

fn load_variants(options: &CompareOptions<'_>) -> Result<Vec<(String, Loaded)>, String> {
    options
        .vary
        .values
        .iter()
        .map(|value| {
            let mut sets = options.sets.to_vec();
            sets.push(format!("{}={value}", options.vary.field));
            scenario::load_with(options.path, &sets, options.registry.clone())
                .map(|l| (value.clone(), l))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The first seed at which every variant met the same effective faults, at the same times.
fn representative_seed(runs: &[Vec<RunRecord>]) -> Option<u64> {
    let first = runs.first()?;
    (0..first.len()).find_map(|i| {
        let faults = effective(&first[i]);
        let same = runs.iter().all(|variant| effective(&variant[i]) == faults);
        (same && !faults.is_empty()).then_some(first[i].seed)
    })
}

fn effective(run: &RunRecord) -> Vec<(u64, &str, &str, &str)> {
    fn key(f: &FaultRecord) -> (u64, &str, &str, &str) {
        (f.at_ms, f.class.as_str(), f.target.as_str(), f.action.as_str())
    }
    run.faults.iter().filter(|f| f.effective).map(key).collect()
}

fn summarise(
    value: &str,
    loaded: &Loaded,
    runs: &[RunRecord],
    representative: Vec<faultline_reports::Sample>,
) -> VariantSummary {
    // Superseded rollbacks never resumed anything: a variant's recoveries are those that did.
    let recoveries: Vec<_> = runs.iter().flat_map(|r| &r.recoveries).filter(|r| !r.superseded).collect();
    let resumed: Vec<f64> =
        recoveries.iter().filter_map(|r| r.time_to_resume_ms).map(|ms| ms as f64).collect();
    let detection: Vec<f64> = recoveries.iter().map(|r| r.detection_ms as f64).collect();
    let replayed: Vec<f64> = recoveries.iter().map(|r| r.records_replayed as f64).collect();
    let moved: Vec<f64> = recoveries.iter().map(|r| r.state_bytes_transferred as f64).collect();
    let throughput: Vec<f64> = runs
        .iter()
        .filter(|r| r.sim_time_ms > 0)
        .map(|r| r.events_in as f64 * 1000.0 / r.sim_time_ms as f64)
        .collect();
    let passed = runs.iter().filter(|r| r.passed()).count() as u64;
    VariantSummary {
        value: value.to_string(),
        scenario_hash: scenario::hash(&loaded.scenario),
        runs: runs.len() as u64,
        passed,
        pass_rate: if runs.is_empty() { 0.0 } else { passed as f64 / runs.len() as f64 },
        recoveries: recoveries.len() as u64,
        failovers: recoveries.iter().filter(|r| r.kind == "failover").count() as u64,
        median_recovery_ms: quantile(&resumed, 0.5),
        p99_recovery_ms: quantile(&resumed, 0.99),
        median_detection_ms: quantile(&detection, 0.5),
        median_throughput_per_s: quantile(&throughput, 0.5).unwrap_or(0.0),
        median_records_replayed: quantile(&replayed, 0.5),
        median_state_bytes_transferred: quantile(&moved, 0.5),
        failed_seeds: runs.iter().filter(|r| !r.passed()).map(|r| r.seed).collect(),
        representative,
    }
}

/// The `q` quantile, interpolated between closest ranks (the median of an even count is the mean
/// of the middle two).
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_parses_a_field_and_its_values() {
        let v = Vary::parse("engine.recovery=rollback,passive-replication").unwrap();
        assert_eq!(v.field, "engine.recovery");
        assert_eq!(v.values, ["rollback", "passive-replication"]);
        for bad in ["engine.recovery", "engine.recovery=rollback", "=a,b", "x=a,", "x=a,a"] {
            assert!(Vary::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[4.0, 1.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((quantile(&hundred, 0.99).unwrap() - 99.01).abs() < 1e-9);
    }
}
