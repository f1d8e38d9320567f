//! `faultline merge`: joins the `--json` outputs of a sharded sweep (`swarm --shard K/N`) into
//! the summary one unsharded sweep would have printed.
//!
//! Each input is one shard's record: a `SwarmRecord` (one scenario) or a `SweepRecord` (a row
//! per scenario). Records of different scenarios become rows of one sweep: a sweep run as one
//! process per scenario (each process's memory bounded by its own seeds) reads as one. Rows of the same scenario are joined when they are shards of one sweep — the
//! same scenario hash (overrides included), the same first seed and the same shard count, each
//! shard at most once. Counts add up; failures, their groups and invariants are derived again
//! from the joined failures, so they equal the unsharded sweep's. Wall time is the longest
//! shard's (shards run side by side), and seeds per second the joined seeds over it. Shards no
//! input covered are listed in `missing_shards`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use faultline_reports::{Shard, SkippedScenario, SwarmRecord, SweepRecord};

use crate::swarm;

/// What the inputs held: one scenario's record, or a sweep of several.
#[derive(Debug)]
pub enum Merged {
    One(SwarmRecord),
    Sweep(SweepRecord),
}

/// Reads and joins the shard records in `paths`.
pub fn merge_files(paths: &[&Path]) -> Result<Merged, String> {
    if paths.is_empty() {
        return Err("name the shards' --json files to merge".into());
    }
    let mut inputs = Vec::with_capacity(paths.len());
    for path in paths {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        inputs.push((path.display().to_string(), parse(&text, path)?));
    }
    merge(inputs)
}

/// One input: a swarm record (`Ok(One)`) or a sweep record.
fn parse(text: &str, path: &Path) -> Result<Merged, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("{}: not a --json output of faultline swarm: {e}", path.display()))?;
    let shown = path.display();
    // Records from before versioning carry none; a later shape is refused, not misread.
    let version = value.get("schema_version").and_then(serde_json::Value::as_u64);
    if version.is_some_and(|v| v != u64::from(faultline_reports::SCHEMA_VERSION)) {
        return Err(format!(
            "{shown}: schema_version {} — this faultline reads {}",
            version.unwrap_or_default(),
            faultline_reports::SCHEMA_VERSION
        ));
    }
    if value.get("scenarios").is_some() {
        let sweep = serde_json::from_value(value).map_err(|e| format!("{shown}: not a sweep record: {e}"))?;
        return Ok(Merged::Sweep(sweep));
    }
    let record = serde_json::from_value(value).map_err(|e| format!("{shown}: not a swarm record: {e}"))?;
    Ok(Merged::One(record))
}

/// Joins parsed inputs (each named by its file): all of one kind, rows by scenario.
fn merge(inputs: Vec<(String, Merged)>) -> Result<Merged, String> {
    let single = inputs.iter().all(|(_, m)| matches!(m, Merged::One(_)));
    if !single && inputs.iter().any(|(_, m)| matches!(m, Merged::One(_))) {
        return Err("the inputs mix one scenario's records with sweeps of several".into());
    }
    let mut rows: Vec<(String, Vec<(String, SwarmRecord)>)> = Vec::new();
    let mut skipped: Vec<SkippedScenario> = Vec::new();
    for (file, merged) in inputs {
        let records = match merged {
            Merged::One(r) => vec![r],
            Merged::Sweep(s) => {
                for k in s.skipped {
                    if !skipped.iter().any(|s| s.path == k.path) {
                        skipped.push(k);
                    }
                }
                s.scenarios
            }
        };
        for record in records {
            match rows.iter_mut().find(|(name, _)| *name == record.scenario) {
                Some((_, shards)) => shards.push((file.clone(), record)),
                None => rows.push((record.scenario.clone(), vec![(file.clone(), record)])),
            }
        }
    }
    let joined: Vec<SwarmRecord> =
        rows.into_iter().map(|(_, shards)| join(shards)).collect::<Result<_, _>>()?;
    if single && joined.len() == 1 {
        return Ok(Merged::One(joined.into_iter().next().expect("one record")));
    }
    let (seeds, passed) = (joined.iter().map(|r| r.seeds).sum(), joined.iter().map(|r| r.passed).sum());
    let wall_ms = joined.iter().map(|r| r.wall_ms).sum();
    Ok(Merged::Sweep(SweepRecord {
        scenarios: joined,
        skipped,
        seeds,
        passed,
        failed: seeds - passed,
        wall_ms,
    }))
}

/// One scenario's shard records, joined; each named by its file for the errors.
fn join(shards: Vec<(String, SwarmRecord)>) -> Result<SwarmRecord, String> {
    let (first_file, first) = &shards[0];
    let count = first.shard.map_or(1, |s| s.count);
    let mut seen = BTreeSet::new();
    for (file, r) in &shards {
        let index = compatible(first_file, first, file, r)?;
        if !seen.insert(index) {
            return Err(format!("{file}: shard {index}/{count} of {} is given twice", r.scenario));
        }
    }
    let mut joined = shards.into_iter().map(|(_, r)| r).reduce(add).expect("at least one shard");
    joined.shard = None;
    joined.missing_shards = (1..=count).filter(|k| !seen.contains(k)).collect();
    joined.seeds_per_s =
        if joined.wall_ms > 0.0 { joined.seeds as f64 * 1000.0 / joined.wall_ms } else { 0.0 };
    swarm::regroup(&mut joined);
    Ok(joined)
}

/// Whether `r` (from `file`) is a shard of the same sweep as `first`; its shard index.
fn compatible(first_file: &str, first: &SwarmRecord, file: &str, r: &SwarmRecord) -> Result<u64, String> {
    let Shard { index, count } = r.shard.unwrap_or(Shard { index: 1, count: 1 });
    let first_count = first.shard.map_or(1, |s| s.count);
    let differs = |what: &str| {
        Err(format!("{file}: {what} differs from {first_file}'s for {}: not shards of one sweep", r.scenario))
    };
    if r.scenario_hash != first.scenario_hash {
        return differs("the scenario (its hash, overrides included)");
    }
    if r.from != first.from {
        return differs("the first seed (--from)");
    }
    if count != first_count {
        return differs("the shard count");
    }
    Ok(index)
}

/// Two shards' records added up (failures concatenated; `regroup` derives the rest).
fn add(mut a: SwarmRecord, b: SwarmRecord) -> SwarmRecord {
    a.seeds += b.seeds;
    a.passed += b.passed;
    a.failed.extend(b.failed);
    a.wall_ms = a.wall_ms.max(b.wall_ms);
    add_counts(&mut a.effective_faults, b.effective_faults);
    a.seeds_with_recovery += b.seeds_with_recovery;
    a.seeds_with_simultaneous_crashes += b.seeds_with_simultaneous_crashes;
    for (entry, choices) in b.drawn {
        add_counts(a.drawn.entry(entry).or_default(), choices);
    }
    a
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (key, n) in from {
        *into.entry(key).or_insert(0) += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_reports::{SwarmFailure, Violation};

    fn shard(index: u64, count: u64, failed: &[(u64, &str)]) -> SwarmRecord {
        let failed: Vec<SwarmFailure> = failed
            .iter()
            .map(|&(seed, invariant)| SwarmFailure {
                seed,
                violations: vec![Violation { invariant: invariant.into(), detail: String::new() }],
                repro: format!("faultline run s.toml --seed {seed}"),
                fault_classes: vec!["processor".into()],
            })
            .collect();
        SwarmRecord {
            scenario: "s".into(),
            seeds: 10,
            passed: 10 - failed.len() as u64,
            failed,
            wall_ms: 100.0 * index as f64,
            seeds_per_s: 0.0,
            failing_invariants: Vec::new(),
            effective_faults: [("processor".to_string(), index)].into_iter().collect(),
            seeds_with_recovery: 1,
            seeds_with_simultaneous_crashes: 0,
            drawn: BTreeMap::new(),
            failure_groups: Vec::new(),
            from: 1,
            scenario_hash: "h".into(),
            shard: Some(Shard { index, count }),
            missing_shards: Vec::new(),
        }
    }

    fn one(inputs: Vec<SwarmRecord>) -> Result<SwarmRecord, String> {
        let inputs = inputs.into_iter().enumerate().map(|(i, r)| (format!("f{i}"), Merged::One(r))).collect();
        match merge(inputs)? {
            Merged::One(r) => Ok(r),
            Merged::Sweep(_) => panic!("one scenario's records merge into one"),
        }
    }

    #[test]
    fn shards_add_up_and_failures_regroup() {
        let r =
            one(vec![shard(2, 3, &[(5, "liveness"), (2, "delivery-lost")]), shard(1, 3, &[(7, "liveness")])])
                .unwrap();
        assert_eq!((r.seeds, r.passed), (20, 17));
        assert_eq!(r.failed.iter().map(|f| f.seed).collect::<Vec<_>>(), vec![2, 5, 7]);
        assert_eq!(r.failure_groups[0].seeds, vec![5, 7], "the largest group first");
        assert_eq!(r.failing_invariants, vec!["delivery-lost", "liveness"]);
        assert_eq!(r.missing_shards, vec![3]);
        assert_eq!((r.wall_ms, r.effective_faults["processor"]), (200.0, 3));
        assert_eq!(r.shard, None);
    }

    #[test]
    fn records_of_different_scenarios_are_rows_of_one_sweep() {
        let mut other = shard(1, 1, &[(3, "liveness")]);
        other.scenario = "t".into();
        let inputs =
            vec![("a".to_string(), Merged::One(shard(1, 1, &[]))), ("b".to_string(), Merged::One(other))];
        let Merged::Sweep(sweep) = merge(inputs).unwrap() else { panic!("two scenarios make a sweep") };
        assert_eq!((sweep.scenarios.len(), sweep.seeds, sweep.failed), (2, 20, 1));
    }

    #[test]
    fn records_of_different_sweeps_are_refused() {
        let mut other = shard(2, 2, &[]);
        other.from = 1000;
        assert!(one(vec![shard(1, 2, &[]), other]).unwrap_err().contains("first seed"));
        let mut other = shard(2, 2, &[]);
        other.scenario_hash = "g".into();
        assert!(one(vec![shard(1, 2, &[]), other]).unwrap_err().contains("hash"));
        assert!(one(vec![shard(1, 2, &[]), shard(1, 2, &[])]).unwrap_err().contains("twice"));
        assert!(one(vec![shard(1, 2, &[]), shard(2, 3, &[])]).unwrap_err().contains("shard count"));
    }

    #[test]
    fn a_record_of_another_schema_version_is_refused_and_an_unversioned_one_read() {
        let record = faultline_reports::to_json(&shard(1, 1, &[]));
        assert!(matches!(parse(&record, Path::new("now.json")), Ok(Merged::One(_))));
        let now = faultline_reports::SCHEMA_VERSION;
        let unversioned = record.replace(&format!("\"schema_version\":{now},"), "");
        assert!(!unversioned.contains("schema_version"));
        assert!(matches!(parse(&unversioned, Path::new("old.json")), Ok(Merged::One(_))));
        let later =
            record.replace(&format!("\"schema_version\":{now}"), &format!("\"schema_version\":{}", now + 1));
        let Err(err) = parse(&later, Path::new("later.json")) else { panic!("a later shape is refused") };
        assert!(err.contains(&format!("later.json: schema_version {}", now + 1)), "{err}");
    }
}
