//! The delivery checker: compares the sink's committed output with the reference, record by
//! record, and judges the differences against the job's semantics.
//!
//! Classification (exact, because every output has a stable id):
//! - `lost`: an expected id never committed;
//! - `duplicate`: a correct record committed again;
//! - `wrong`: a committed record whose id is unexpected or whose value differs from the reference.
//!
//! Verdicts: exactly-once allows none of the three; at-least-once allows duplicates;
//! at-most-once allows losses. No semantics allows a wrong record.

use faultline_engine::job::Semantics;
use faultline_engine::record::{OutputId, OutputRecord};
use faultline_reports::{OutputCounts, Violation};

use super::reference::Expected;

/// How many offending records a violation quotes.
const EXAMPLES: usize = 3;

/// The checker's findings.
#[derive(Debug, Default)]
pub struct Delivery {
    pub counts: OutputCounts,
    pub lost: Vec<OutputId>,
    pub duplicates: Vec<OutputRecord>,
    pub wrong: Vec<OutputRecord>,
}

/// Classifies every committed record against the expected output.
///
/// Sorts the committed records by id and walks them alongside the (sorted) expected output:
/// O(n log n) with no per-record map lookups, since runs commit millions of records.
pub fn check(expected: &Expected, committed: &[OutputRecord]) -> Delivery {
    let mut sorted = committed.to_vec();
    sorted.sort_by_key(|r| r.id);
    let mut d = Delivery::default();
    let mut expected_iter = expected.iter().peekable();
    let mut i = 0;
    while i < sorted.len() {
        let id = sorted[i].id;
        let run_end = i + sorted[i..].iter().take_while(|r| r.id == id).count();
        while let Some((missing, _)) = expected_iter.next_if(|(e, _)| *e < id) {
            d.lost.push(missing);
        }
        let want = expected_iter.next_if(|(e, _)| *e == id).map(|(_, v)| v);
        classify(&sorted[i..run_end], want, &mut d);
        i = run_end;
    }
    d.lost.extend(expected_iter.map(|(id, _)| id));
    d.counts = OutputCounts {
        expected: expected.len() as u64,
        committed: committed.len() as u64,
        duplicates: d.duplicates.len() as u64,
        lost: d.lost.len() as u64,
        wrong: d.wrong.len() as u64,
    };
    d
}

/// Classifies the committed records sharing one id; `want` is the expected value, if any.
fn classify(records: &[OutputRecord], want: Option<(u64, i64)>, d: &mut Delivery) {
    let mut correct = 0;
    for r in records {
        if want == Some((r.count, r.sum)) {
            correct += 1;
            if correct > 1 {
                d.duplicates.push(*r);
            }
        } else {
            d.wrong.push(*r);
        }
    }
}

impl Delivery {
    /// The violations of `semantics` these findings amount to.
    pub fn violations(&self, semantics: Semantics) -> Vec<Violation> {
        let mut v = Vec::new();
        let allow_lost = semantics == Semantics::AtMostOnce;
        let allow_duplicates = semantics == Semantics::AtLeastOnce;
        if !self.lost.is_empty() && !allow_lost {
            v.push(violation("delivery-lost", self.lost.len(), &self.lost, semantics));
        }
        if !self.duplicates.is_empty() && !allow_duplicates {
            let ids: Vec<String> = self.duplicates.iter().map(show).collect();
            v.push(violation("delivery-duplicate", ids.len(), &ids, semantics));
        }
        if !self.wrong.is_empty() {
            let ids: Vec<String> = self.wrong.iter().map(show).collect();
            v.push(violation("delivery-wrong", ids.len(), &ids, semantics));
        }
        v
    }
}

fn show(r: &OutputRecord) -> String {
    format!("key {} seq {} = (count {}, sum {})", r.id.key, r.id.seq, r.count, r.sum)
}

fn violation<T: std::fmt::Debug>(invariant: &str, n: usize, items: &[T], semantics: Semantics) -> Violation {
    let examples: Vec<String> = items.iter().take(EXAMPLES).map(|i| format!("{i:?}")).collect();
    Violation {
        invariant: invariant.to_string(),
        detail: format!("{n} records under {}; first: {}", semantics.as_str(), examples.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(key: u64, seq: u64, sum: i64) -> OutputRecord {
        OutputRecord { id: OutputId { key, seq }, count: seq, sum }
    }

    fn expected() -> Expected {
        Expected::from_outputs(
            [((1, 1), 5), ((1, 2), 9), ((2, 1), 4)]
                .into_iter()
                .map(|((key, seq), sum)| (OutputId { key, seq }, (seq, sum))),
        )
    }

    #[test]
    fn exact_output_passes_every_semantics() {
        let d = check(&expected(), &[out(2, 1, 4), out(1, 1, 5), out(1, 2, 9)]);
        assert_eq!(d.counts.committed, 3);
        for s in [Semantics::ExactlyOnce, Semantics::AtLeastOnce, Semantics::AtMostOnce] {
            assert!(d.violations(s).is_empty());
        }
    }

    #[test]
    fn classifies_lost_duplicate_and_wrong() {
        let d = check(&expected(), &[out(1, 1, 5), out(1, 1, 5), out(2, 1, 99)]);
        assert_eq!((d.counts.lost, d.counts.duplicates, d.counts.wrong), (1, 1, 1));
        let names: Vec<_> = d.violations(Semantics::ExactlyOnce).into_iter().map(|v| v.invariant).collect();
        assert_eq!(names, ["delivery-lost", "delivery-duplicate", "delivery-wrong"]);
        assert_eq!(d.violations(Semantics::AtLeastOnce).len(), 2);
        assert_eq!(d.violations(Semantics::AtMostOnce).len(), 2);
    }
}
