//! The delivery checker: compares the sink's committed output with the reference and judges
//! the differences against the job's semantics.
//!
//! Two classifications, both exact because every output carries stable identities:
//! - by output id `(key, seq)`, for exactly-once: the committed output must be the reference
//!   output, record for record, each with the right value and the right cause;
//! - by cause (the input record an output descends from), for at-least-once and at-most-once:
//!   under those semantics a replayed or skipped input legitimately shifts a key's later running
//!   aggregates, so values are not compared — only whether each input reached the output.
//!
//! In both, `lost` is an expected output (id or cause) never committed though the run committed
//! past it, `pending` one never committed that the run had not come to yet (see `frontier`: the
//! job did not finish, and the output's input lies beyond the committed checkpoints),
//! `duplicate` a committed record beyond the first for its id or cause, and `wrong` a committed
//! record whose id or cause the reference does not know (or, by id, whose value or cause
//! differs). Pending outputs are no safety violation: a run that left some is a liveness
//! failure.
//!
//! Verdicts: exactly-once allows none of the three; at-least-once allows duplicates;
//! at-most-once allows losses. No semantics allows a wrong record.

use faultline_engine::job::Semantics;
use faultline_engine::record::{Cause, OutputId, OutputRecord, Side};
use faultline_reports::{OffendingRecord, OutputCounts, Violation};

use super::frontier::Frontier;
use super::reference::{Expected, Want};

/// How many offending records a violation quotes.
const EXAMPLES: usize = 3;

/// How many offending records of each kind a report lists.
const OFFENDING: usize = 10;

/// The checker's findings.
#[derive(Debug, Default)]
pub struct Delivery {
    pub counts: OutputCounts,
    /// Expected outputs never committed, by id (exactly-once) or by the id they would have had,
    /// though the run committed past them.
    pub lost: Vec<OutputId>,
    /// Expected outputs never committed that the run had not come to.
    pub pending: Vec<OutputId>,
    pub duplicates: Vec<OutputRecord>,
    pub wrong: Vec<OutputRecord>,
}

/// The invariants `semantics` holds the output to, by the names its violations carry.
pub fn invariants(semantics: Semantics) -> Vec<&'static str> {
    match semantics {
        Semantics::ExactlyOnce => vec!["delivery-lost", "delivery-duplicate", "delivery-wrong"],
        Semantics::AtLeastOnce => vec!["delivery-lost", "delivery-wrong"],
        Semantics::AtMostOnce => vec!["delivery-duplicate", "delivery-wrong"],
    }
}

/// Classifies the committed output as `semantics` calls for; of the missing outputs, those
/// the run did not commit past (`frontier`) are pending, not lost.
pub fn check(
    expected: &Expected,
    committed: &[OutputRecord],
    semantics: Semantics,
    frontier: &Frontier,
) -> Delivery {
    let mut d = match semantics {
        Semantics::ExactlyOnce => check_by_id(expected, committed),
        Semantics::AtLeastOnce | Semantics::AtMostOnce => check_by_cause(expected, committed),
    };
    let missing = std::mem::take(&mut d.lost);
    let (lost, pending): (Vec<OutputId>, Vec<OutputId>) = missing.into_iter().partition(|&id| {
        let want = expected.get(id).expect("a missing output is an expected one");
        frontier.passed(id.key, want.cause)
    });
    (d.lost, d.pending) = (lost, pending);
    d.counts.lost = d.lost.len() as u64;
    d.counts.pending = d.pending.len() as u64;
    d.counts.offending = d.offending(expected);
    d
}

/// Classifies every committed record by output id: value and cause must match the reference.
pub fn check_by_id(expected: &Expected, committed: &[OutputRecord]) -> Delivery {
    let mut sorted = committed.to_vec();
    sorted.sort_by_key(|r| r.id);
    merge(
        expected.iter().map(|(id, want)| (id, id, want)),
        &sorted,
        |r| r.id,
        |r, want| (r.values, r.cause) == (want.values, want.cause),
    )
    .finish(expected, committed)
}

/// Classifies every committed record by cause: each input's output counts once, whatever its value.
pub fn check_by_cause(expected: &Expected, committed: &[OutputRecord]) -> Delivery {
    let mut sorted = committed.to_vec();
    sorted.sort_by_key(|r| (r.id.key, r.cause));
    let wanted = expected.iter().map(|(id, want)| ((id.key, want.cause), id, want));
    merge(wanted, &sorted, |r| (r.id.key, r.cause), |_, _| true).finish(expected, committed)
}

/// Walks the expected outputs and the sorted committed records together by `key_of`.
fn merge<K: Ord + Copy>(
    wanted: impl Iterator<Item = (K, OutputId, Want)>,
    sorted: &[OutputRecord],
    key_of: impl Fn(&OutputRecord) -> K,
    matches: impl Fn(&OutputRecord, &Want) -> bool,
) -> Delivery {
    let mut d = Delivery::default();
    let mut wanted = wanted.peekable();
    let mut i = 0;
    while i < sorted.len() {
        let key = key_of(&sorted[i]);
        let run_end = i + sorted[i..].iter().take_while(|r| key_of(r) == key).count();
        while let Some((_, missing, _)) = wanted.next_if(|(k, _, _)| *k < key) {
            d.lost.push(missing);
        }
        let want = wanted.next_if(|(k, _, _)| *k == key).map(|(_, _, w)| w);
        classify(&sorted[i..run_end], want, &matches, &mut d);
        i = run_end;
    }
    d.lost.extend(wanted.map(|(_, id, _)| id));
    d
}

/// Classifies the committed records sharing one id or cause; `want` is what the reference expects.
fn classify(
    records: &[OutputRecord],
    want: Option<Want>,
    matches: &impl Fn(&OutputRecord, &Want) -> bool,
    d: &mut Delivery,
) {
    let mut correct = 0;
    for r in records {
        match &want {
            Some(w) if matches(r, w) => {
                correct += 1;
                if correct > 1 {
                    d.duplicates.push(*r);
                }
            }
            _ => d.wrong.push(*r),
        }
    }
}

impl Delivery {
    fn finish(mut self, expected: &Expected, committed: &[OutputRecord]) -> Self {
        self.counts = OutputCounts {
            expected: expected.len() as u64,
            committed: committed.len() as u64,
            duplicates: self.duplicates.len() as u64,
            lost: self.lost.len() as u64,
            pending: self.pending.len() as u64,
            wrong: self.wrong.len() as u64,
            offending: Vec::new(),
        };
        self.counts.offending = self.offending(expected);
        self
    }

    /// The first few lost, duplicate and wrong records, each beside what the reference expects.
    fn offending(&self, expected: &Expected) -> Vec<OffendingRecord> {
        let lost = self.lost.iter().take(OFFENDING).map(|&id| ("lost", id, None));
        let committed = |kind, rs: &[OutputRecord]| {
            rs.iter().take(OFFENDING).map(move |r| (kind, r.id, Some(*r))).collect::<Vec<_>>()
        };
        let dup = committed("duplicate", &self.duplicates);
        let wrong = committed("wrong", &self.wrong);
        lost.chain(dup)
            .chain(wrong)
            .map(|(kind, id, got)| {
                let want = expected.get(id);
                let cause = got.map(|r| r.cause).or(want.map(|w| w.cause));
                OffendingRecord {
                    kind: kind.to_string(),
                    key: id.key,
                    seq: id.seq,
                    cause: cause.map_or_else(String::new, |c| format!("{}/{}", c.producer, c.seq)),
                    expected: want.map(|w| format!("{:?}", w.values)),
                    committed: got.map(|r| format!("{:?}", r.values)),
                }
            })
            .collect()
    }

    /// The violations of `semantics` these findings amount to.
    pub fn violations(&self, semantics: Semantics) -> Vec<Violation> {
        let mut v = Vec::new();
        let allow_lost = semantics == Semantics::AtMostOnce;
        let allow_duplicates = semantics == Semantics::AtLeastOnce;
        if !self.lost.is_empty() && !allow_lost {
            let ids: Vec<String> = self.lost.iter().take(EXAMPLES).map(show_id).collect();
            v.push(violation("delivery-lost", self.lost.len(), &ids, semantics));
        }
        if !self.duplicates.is_empty() && !allow_duplicates {
            let ids: Vec<String> = self.duplicates.iter().take(EXAMPLES).map(show).collect();
            v.push(violation("delivery-duplicate", self.duplicates.len(), &ids, semantics));
        }
        if !self.wrong.is_empty() {
            let ids: Vec<String> = self.wrong.iter().take(EXAMPLES).map(show).collect();
            v.push(violation("delivery-wrong", self.wrong.len(), &ids, semantics));
        }
        v
    }
}

/// An output's id as people read it: `key 0 · seq 43`, or `late key 0 · seq 43` on the side
/// output.
pub fn show_id(id: &OutputId) -> String {
    let side = match id.side {
        Side::Main => "",
        Side::Late => "late ",
    };
    format!("{side}key {} · seq {}", id.key, id.seq)
}

/// A committed output: its id, values and the input it descends from.
fn show(r: &OutputRecord) -> String {
    let Cause { producer, seq } = r.cause;
    format!("{} = {:?} from producer {producer} · seq {seq}", show_id(&r.id), r.values)
}

/// `n` offending records, quoting the first few (`examples`).
fn violation(invariant: &str, n: usize, examples: &[String], semantics: Semantics) -> Violation {
    Violation {
        invariant: invariant.to_string(),
        detail: format!("{n} records under {}; first: {}", semantics.as_str(), examples.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(seq: u64) -> Cause {
        Cause { producer: 0, seq }
    }

    /// Key 1: inputs 0 and 2 (sums 5, 9); key 2: input 1 (sum 4).
    fn expected() -> Expected {
        let want = |n: i64, sum, from| Want { values: [n, sum, 0, 0], cause: cause(from), ready_ms: from };
        Expected::from_unsorted(vec![
            (OutputId::main(1, 1), want(1, 5, 0)),
            (OutputId::main(1, 2), want(2, 9, 2)),
            (OutputId::main(2, 1), want(1, 4, 1)),
        ])
    }

    fn out(key: u64, seq: u64, sum: i64, from: u64) -> OutputRecord {
        OutputRecord { id: OutputId::main(key, seq), values: [seq as i64, sum, 0, 0], cause: cause(from) }
    }

    #[test]
    fn exact_output_passes_every_semantics() {
        let good = [out(2, 1, 4, 1), out(1, 1, 5, 0), out(1, 2, 9, 2)];
        for s in [Semantics::ExactlyOnce, Semantics::AtLeastOnce, Semantics::AtMostOnce] {
            let d = check(&expected(), &good, s, &Frontier::finished());
            assert_eq!(d.counts.committed, 3);
            assert!(d.violations(s).is_empty(), "{s:?}");
        }
    }

    #[test]
    fn by_id_classifies_lost_duplicate_and_wrong() {
        let d = check_by_id(&expected(), &[out(1, 1, 5, 0), out(1, 1, 5, 0), out(2, 1, 99, 1)]);
        assert_eq!((d.counts.lost, d.counts.duplicates, d.counts.wrong), (1, 1, 1));
        let names: Vec<_> = d.violations(Semantics::ExactlyOnce).into_iter().map(|v| v.invariant).collect();
        assert_eq!(names, ["delivery-lost", "delivery-duplicate", "delivery-wrong"]);
        let listed: Vec<_> = d.counts.offending.iter().map(|o| (o.kind.as_str(), o.key, o.seq)).collect();
        assert_eq!(listed, [("lost", 1, 2), ("duplicate", 1, 1), ("wrong", 2, 1)]);
        assert_eq!(d.counts.offending[2].expected.as_deref(), Some("[1, 4, 0, 0]"));
        assert_eq!(d.counts.offending[2].committed.as_deref(), Some("[1, 99, 0, 0]"));
    }

    #[test]
    fn by_id_a_right_value_from_the_wrong_input_is_wrong() {
        let d = check_by_id(&expected(), &[out(2, 1, 4, 7), out(1, 1, 5, 0), out(1, 2, 9, 2)]);
        assert_eq!(d.counts.wrong, 1);
    }

    #[test]
    fn by_cause_a_replay_shifted_aggregate_is_a_duplicate_not_wrong() {
        // Input 0 replayed after a rollback that kept its effect: counted twice, so the key's
        // later aggregates are inflated. At-least-once allows it; at-most-once does not.
        let history = [out(1, 1, 5, 0), out(1, 2, 10, 0), out(1, 3, 14, 2), out(2, 1, 4, 1)];
        let d = check(&expected(), &history, Semantics::AtLeastOnce, &Frontier::finished());
        assert_eq!((d.counts.lost, d.counts.duplicates, d.counts.wrong), (0, 1, 0));
        assert!(d.violations(Semantics::AtLeastOnce).is_empty());
        assert_eq!(d.violations(Semantics::AtMostOnce).len(), 1);
    }

    #[test]
    fn by_cause_a_skipped_input_is_lost() {
        // Input 0 never reached the sink: key 1's later aggregate no longer includes it.
        let history = [out(1, 1, 4, 2), out(2, 1, 4, 1)];
        let d = check(&expected(), &history, Semantics::AtMostOnce, &Frontier::finished());
        assert_eq!((d.counts.lost, d.counts.duplicates, d.counts.wrong), (1, 0, 0));
        assert!(d.violations(Semantics::AtMostOnce).is_empty());
        assert_eq!(d.violations(Semantics::AtLeastOnce).len(), 1);
    }

    #[test]
    fn by_cause_an_unknown_input_is_wrong() {
        let d = check(
            &expected(),
            &[out(1, 1, 5, 0), out(1, 2, 9, 2), out(2, 1, 4, 1), out(2, 2, 8, 9)],
            Semantics::AtLeastOnce,
            &Frontier::finished(),
        );
        assert_eq!(d.counts.wrong, 1);
        assert_eq!(d.violations(Semantics::AtLeastOnce).len(), 1);
    }
}
