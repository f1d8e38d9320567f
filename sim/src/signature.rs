//! A failure's signature: what makes two failing runs one bug. Forty seeds that fail on one
//! bug should read as one bug, and two bugs that break the same invariant as two.
//!
//! A signature is three things, all read off the run's record:
//! - the **invariants** it broke;
//! - the **classes** of the faults that took effect in it (a fault that met nothing did not
//!   make the failure);
//! - the **stage** that went wrong: the part of the system its first violation is about — the
//!   log, the sink, the manager, the checkpoints, event time, the output, liveness — or, for a
//!   panic, the role of the node it struck on and the source line, so that two different
//!   assertions are two groups.
//!
//! `prop` names its minimal case's signature: shrinking has left only the faults that matter,
//! so its classes are the ones involved.
//!
//! `swarm` groups its failing seeds ([`group`]). A seed of a random schedule holds faults of
//! four to six classes, most of them beside the point, so seeds are grouped by invariants and
//! stage, and a group's classes are those *every* seed in it had: the classes the failure
//! may need. A plain sink duplicating after any recovery is one group with no class in every
//! seed; a sink bug is one group whose every seed had a sink fault. Each group also counts its
//! seeds per class.

use std::collections::{BTreeMap, BTreeSet};

use faultline_reports::{FailureGroup, FaultRecord, Violation};

use crate::runner::PANIC;

/// What makes two failures the same bug.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signature {
    pub invariants: Vec<String>,
    pub classes: Vec<String>,
    pub stage: String,
}

impl Signature {
    /// The signature of a run that broke `violations` under `faults`.
    pub fn of(violations: &[Violation], faults: &[FaultRecord]) -> Signature {
        Signature { invariants: invariants(violations), classes: classes(faults), stage: stage(violations) }
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let classes = if self.classes.is_empty() { "no fault".to_string() } else { self.classes.join(" + ") };
        write!(f, "{} · {classes} · {}", self.invariants.join(" + "), self.stage)
    }
}

/// A failing seed and the classes of the faults that took effect in it.
type SeedClasses<'a> = (u64, &'a [String]);

/// Failing seeds with their signatures as groups, one per invariants and stage: the largest
/// group first, each group's seeds in order.
pub fn group(failures: &[(u64, Signature)]) -> Vec<FailureGroup> {
    let mut by_bug: BTreeMap<(&[String], &str), Vec<SeedClasses<'_>>> = BTreeMap::new();
    for (seed, s) in failures {
        assert!(!s.invariants.is_empty(), "seed {seed} failed without a violation");
        by_bug.entry((&s.invariants, &s.stage)).or_default().push((*seed, &s.classes));
    }
    let mut groups: Vec<FailureGroup> = by_bug
        .into_iter()
        .map(|((invariants, stage), mut seeds)| {
            seeds.sort_by_key(|&(seed, _)| seed);
            let mut class_seeds: BTreeMap<String, u64> = BTreeMap::new();
            for class in seeds.iter().flat_map(|(_, classes)| classes.iter()) {
                *class_seeds.entry(class.clone()).or_default() += 1;
            }
            let n = seeds.len() as u64;
            let classes = class_seeds.iter().filter(|&(_, &k)| k == n).map(|(c, _)| c.clone()).collect();
            let seeds: Vec<u64> = seeds.into_iter().map(|(seed, _)| seed).collect();
            assert!(seeds.windows(2).all(|w| w[0] < w[1]), "a seed fails once: {seeds:?}");
            FailureGroup {
                invariants: invariants.to_vec(),
                classes,
                class_seeds,
                stage: stage.to_string(),
                seeds,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        let key = |g: &FailureGroup| (g.invariants.clone(), g.stage.clone());
        b.seeds.len().cmp(&a.seeds.len()).then_with(|| key(a).cmp(&key(b)))
    });
    groups
}

/// The distinct invariants broken, in name order.
pub fn invariants(violations: &[Violation]) -> Vec<String> {
    let names: BTreeSet<&String> = violations.iter().map(|v| &v.invariant).collect();
    names.into_iter().cloned().collect()
}

/// The distinct classes of the faults that took effect, in name order.
pub fn classes(faults: &[FaultRecord]) -> Vec<String> {
    let classes: BTreeSet<&String> = faults.iter().filter(|f| f.effective).map(|f| &f.class).collect();
    classes.into_iter().cloned().collect()
}

/// The stage the first violation is about (empty for a run that broke nothing).
pub fn stage(violations: &[Violation]) -> String {
    let Some(first) = violations.first() else { return String::new() };
    if first.invariant == PANIC {
        return panic_site(&first.detail);
    }
    let families = [
        ("delivery-", "output"),
        ("late-", "event time"),
        ("log-", "log"),
        ("sink-", "sink"),
        ("manager-", "manager"),
        ("checkpoint-", "checkpoint"),
        ("liveness", "liveness"),
        ("job-failed", "liveness"),
    ];
    let family = families.iter().find(|(prefix, _)| first.invariant.starts_with(prefix));
    family.map_or_else(|| first.invariant.clone(), |(_, stage)| stage.to_string())
}

/// `panic on ROLE at FILE:LINE` from a panic violation's detail, `MESSAGE (on NODE at T ms,
/// FILE:LINE:COL)`: the node's number and the column left out, so the same assertion on two
/// workers is one site.
fn panic_site(detail: &str) -> String {
    let Some((_, place)) = detail.rsplit_once(" (on ") else { return "panic".into() };
    let place = place.trim_end_matches(')');
    let (node, location) = place.split_once(", ").unwrap_or((place, ""));
    let node = node.split(" at ").next().unwrap_or(node);
    let role = node.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
    let line = match location.rsplitn(3, ':').collect::<Vec<_>>()[..] {
        [_column, line, file] => format!("{file}:{line}"),
        _ => location.to_string(),
    };
    format!("panic on {role} at {line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(invariant: &str, detail: &str) -> Violation {
        Violation { invariant: invariant.into(), detail: detail.into() }
    }

    fn fault(class: &str, effective: bool) -> FaultRecord {
        FaultRecord {
            at_ms: 0,
            class: class.into(),
            target: "worker-1".into(),
            peer: None,
            action: "crash".into(),
            restart_after_ms: None,
            effective,
            healed_at_ms: None,
            mid_checkpoint: false,
        }
    }

    #[test]
    fn a_signature_names_the_invariants_the_effective_classes_and_the_stage() {
        let v = [violation("delivery-lost", "3 records"), violation("delivery-duplicate", "1 record")];
        let f = [fault("processor", true), fault("network", false), fault("processor", true)];
        let s = Signature::of(&v, &f);
        assert_eq!(s.invariants, ["delivery-duplicate", "delivery-lost"]);
        assert_eq!(s.classes, ["processor"], "a fault that met nothing is left out");
        assert_eq!(s.stage, "output");
        assert_eq!(s.to_string(), "delivery-duplicate + delivery-lost · processor · output");
    }

    #[test]
    fn a_panic_stage_is_its_role_and_line_whichever_node_and_column() {
        let on = |node: &str, col: u32| {
            let detail = format!("assertion failed: x (on {node} at 120 ms, engine/src/state.rs:88:{col})");
            stage(&[violation(PANIC, &detail)])
        };
        assert_eq!(on("worker-1", 5), "panic on worker at engine/src/state.rs:88");
        assert_eq!(on("worker-3", 9), on("worker-1", 5));
        assert_ne!(on("broker-1", 5), on("worker-1", 5));
        let checker =
            stage(&[violation(PANIC, "index out of bounds (on checker, sim/src/checker/log.rs:10:2)")]);
        assert_eq!(checker, "panic on checker at sim/src/checker/log.rs:10");
    }

    fn failing(seed: u64, invariant: &str, detail: &str, classes: &[&str]) -> (u64, Signature) {
        let v = [violation(invariant, detail)];
        let f: Vec<FaultRecord> = classes.iter().map(|c| fault(c, true)).collect();
        (seed, Signature::of(&v, &f))
    }

    /// Forty seeds failing on one bug under different faults are one group, whose classes are
    /// those every seed had; a panic at another line is another bug.
    #[test]
    fn seeds_group_by_invariants_and_stage_with_the_classes_every_seed_had() {
        let panic_at =
            |line: u32| format!("assertion failed (on worker-2 at 9 ms, engine/src/state.rs:{line}:5)");
        let mut failures: Vec<(u64, Signature)> =
            (0..40).map(|i| failing(100 - i, "delivery-lost", "1 record", &["processor", "sink"])).collect();
        failures.push(failing(7, "delivery-lost", "2 records", &["network", "sink"]));
        failures.push(failing(3, PANIC, &panic_at(10), &[]));
        failures.push(failing(5, PANIC, &panic_at(20), &["sink"]));
        let groups = group(&failures);
        assert_eq!(groups.len(), 3, "{groups:?}");
        let bug = &groups[0];
        assert_eq!((bug.seeds.len(), bug.seeds[0], bug.stage.as_str()), (41, 7, "output"));
        assert_eq!(bug.classes, ["sink"], "processor and network are not in every seed");
        let counts: Vec<(&str, u64)> = bug.class_seeds.iter().map(|(c, &k)| (c.as_str(), k)).collect();
        assert_eq!(counts, [("network", 1), ("processor", 40), ("sink", 41)]);
        let stages: BTreeSet<&str> = groups.iter().map(|g| g.stage.as_str()).collect();
        assert!(stages.contains("panic on worker at engine/src/state.rs:10"));
        assert!(stages.contains("panic on worker at engine/src/state.rs:20"));
        assert!(groups[1..].iter().all(|g| g.seeds.len() == 1));
    }

    #[test]
    fn each_family_has_its_stage() {
        let cases = [
            ("log-sequence", "log"),
            ("sink-commit-twice", "sink"),
            ("manager-lease-shared", "manager"),
            ("checkpoint-inconsistent", "checkpoint"),
            ("late-duplicate", "event time"),
            ("job-failed", "liveness"),
            ("swarm-draw", "swarm-draw"),
        ];
        for (invariant, want) in cases {
            assert_eq!(stage(&[violation(invariant, "")]), want, "{invariant}");
        }
        assert_eq!(stage(&[]), "");
    }
}
