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
use faultline_engine::record::{Cause, Origin, OutputId, OutputRecord, Side};
use faultline_reports::{OffendingRecord, OutputCounts, Violation};

use super::expected::{id_order, Expected, Want};
use super::frontier::Frontier;

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

/// How a pipeline's output values read (see `plugin::shower`).
pub type Show<'a> = &'a dyn Fn(&OutputId, &[u8]) -> String;

/// Classifies the committed output as `semantics` calls for; of the missing outputs, those
/// the run did not commit past (`frontier`) are pending, not lost.
pub fn check(
    expected: &Expected,
    committed: &[OutputRecord],
    semantics: Semantics,
    frontier: &Frontier,
    show: Show<'_>,
) -> Delivery {
    let mut d = match semantics {
        Semantics::ExactlyOnce => check_by_id(expected, committed),
        Semantics::AtLeastOnce | Semantics::AtMostOnce => check_by_cause(expected, committed),
    };
    let missing = std::mem::take(&mut d.lost);
    let (lost, pending): (Vec<OutputId>, Vec<OutputId>) = missing.into_iter().partition(|id| {
        let want = expected.get(id).expect("a missing output is an expected one");
        frontier.passed(&id.key, cause_of(id, want))
    });
    (d.lost, d.pending) = (lost, pending);
    d.counts.lost = d.lost.len() as u64;
    d.counts.pending = d.pending.len() as u64;
    d.counts.offending = d.offending(expected, show);
    d
}

/// The input an expected output descends from, as far as the model or its origin says.
pub fn cause_of(id: &OutputId, want: &Want) -> Option<Cause> {
    want.cause.or(match id.origin {
        Origin::Input(c) => Some(c),
        _ => None,
    })
}

/// Classifies every committed record by output id: its value must match the reference, and its
/// cause too where the model defines one. A content id counts as many times as it is expected.
pub fn check_by_id(expected: &Expected, committed: &[OutputRecord]) -> Delivery {
    // Equal ids keep their commit order, which is their order in the slice.
    let sorted: Vec<&OutputRecord> =
        id_order(committed, |r| &r.id).into_iter().map(|at| &committed[at as usize]).collect();
    merge(
        expected.iter().map(|(id, want)| (id, id, want)),
        &sorted,
        |r| &r.id,
        |r, want| r.value == want.value && want.cause.is_none_or(|c| c == r.cause),
    )
    .finish(expected, committed)
}

/// Classifies every committed record by key and origin: each input's (or timer's) output counts
/// once, whatever its value.
pub fn check_by_cause(expected: &Expected, committed: &[OutputRecord]) -> Delivery {
    fn by(id: &OutputId) -> (&faultline_engine::record::KeyBytes, Origin, u32) {
        (&id.key, id.origin, id.n)
    }
    let mut sorted: Vec<&OutputRecord> = committed.iter().collect();
    sorted.sort_by(|a, b| by(&a.id).cmp(&by(&b.id)));
    let mut wanted: Vec<_> = expected.iter().map(|(id, want)| (by(id), id, want)).collect();
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    merge(wanted.into_iter(), &sorted, |r| by(&r.id), |_, _| true).finish(expected, committed)
}

/// Walks the expected outputs and the sorted committed records together by `key_of`.
fn merge<'a, K: Ord>(
    wanted: impl Iterator<Item = (K, &'a OutputId, &'a Want)>,
    sorted: &[&'a OutputRecord],
    key_of: impl Fn(&'a OutputRecord) -> K,
    matches: impl Fn(&OutputRecord, &Want) -> bool,
) -> Delivery {
    let mut d = Delivery::default();
    let mut wanted = wanted.peekable();
    let (mut wants, mut fulfilled) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < sorted.len() {
        let key = key_of(sorted[i]);
        let run_end = i + sorted[i..].iter().take_while(|r| key_of(r) == key).count();
        while let Some((_, missing, _)) = wanted.next_if(|(k, _, _)| *k < key) {
            d.lost.push(missing.clone());
        }
        wants.clear();
        while let Some((_, id, w)) = wanted.next_if(|(k, _, _)| *k == key) {
            wants.push((id, w));
        }
        classify(&sorted[i..run_end], &mut wants, &mut fulfilled, &matches, &mut d);
        i = run_end;
    }
    d.lost.extend(wanted.map(|(_, id, _)| id.clone()));
    d
}

/// Classifies the committed records sharing one id (or key and origin); `wants` are what the
/// reference expects under it (a content id may be expected several times). A record matching
/// an expectation fulfils it; one matching only a fulfilled one is a duplicate; any other is
/// wrong. Expectations left over are lost, beyond the wrong records that took their place.
fn classify<'a>(
    records: &[&OutputRecord],
    wants: &mut Vec<(&'a OutputId, &'a Want)>,
    fulfilled: &mut Vec<&'a Want>,
    matches: &impl Fn(&OutputRecord, &Want) -> bool,
    d: &mut Delivery,
) {
    fulfilled.clear();
    let mut wrong = 0;
    for &r in records {
        if let Some(at) = wants.iter().position(|(_, w)| matches(r, w)) {
            fulfilled.push(wants.swap_remove(at).1);
        } else if fulfilled.iter().any(|w| matches(r, w)) {
            d.duplicates.push(r.clone());
        } else {
            d.wrong.push(r.clone());
            wrong += 1;
        }
    }
    let lost = wants.len().saturating_sub(wrong);
    d.lost.extend(wants.iter().take(lost).map(|(id, _)| (*id).clone()));
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
        self
    }

    /// The first few lost, duplicate and wrong records, each beside what the reference expects.
    fn offending(&self, expected: &Expected, show: Show<'_>) -> Vec<OffendingRecord> {
        let lost = self.lost.iter().take(OFFENDING).map(|id| ("lost", id.clone(), None));
        let committed = |kind, rs: &[OutputRecord]| {
            rs.iter().take(OFFENDING).map(move |r| (kind, r.id.clone(), Some(r.clone()))).collect::<Vec<_>>()
        };
        let dup = committed("duplicate", &self.duplicates);
        let wrong = committed("wrong", &self.wrong);
        lost.chain(dup)
            .chain(wrong)
            .map(|(kind, id, got)| {
                let want = expected.get(&id);
                let cause = got.as_ref().map(|r| r.cause).or(want.and_then(|w| cause_of(&id, w)));
                OffendingRecord {
                    kind: kind.to_string(),
                    output: show_id(&id),
                    cause: cause.map_or_else(String::new, |c| format!("{}/{}", c.producer, c.seq)),
                    expected: want.map(|w| show(&id, &w.value)),
                    committed: got.map(|r| show(&id, &r.value)),
                }
            })
            .collect()
    }

    /// The violations of `semantics` these findings amount to.
    pub fn violations(&self, semantics: Semantics, show: Show<'_>) -> Vec<Violation> {
        let show = |r: &OutputRecord| {
            let Cause { producer, seq } = r.cause;
            format!("{} = {} from producer {producer} · seq {seq}", show_id(&r.id), show(&r.id, &r.value))
        };
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

/// An output's id as people read it: `key 0 · input 0/43`, `key 0 · timer 60000/5 #1`,
/// `key 0 · content 9f…`, with `late ` or the side's id before it off the main output.
pub fn show_id(id: &OutputId) -> String {
    let side = match id.side {
        Side::Main => String::new(),
        s if s == faultline_engine::record::late_side() => "late ".into(),
        Side::Named(n) => format!("side {n:08x} "),
    };
    let key = show_key(&id.key.bytes);
    let origin = match id.origin {
        Origin::Input(c) => format!("input {}/{}", c.producer, c.seq),
        Origin::Timer { at_ms, tag } => format!("timer {at_ms}/{tag}"),
        Origin::Content(h) => format!("content {:016x}", h),
    };
    let n = if id.n > 0 { format!(" #{}", id.n) } else { String::new() };
    format!("{side}key {key} · {origin}{n}")
}

/// A key as people read it: the number a `u64` key encodes, a string's text, or the bytes.
pub fn show_key(bytes: &[u8]) -> String {
    if let Ok((n, rest)) = postcard_u64(bytes) {
        if rest.is_empty() {
            return n.to_string();
        }
    }
    match std::str::from_utf8(bytes.get(1..).unwrap_or_default()) {
        Ok(text) if bytes.first().is_some_and(|&len| usize::from(len) == text.len()) => format!("{text:?}"),
        _ => format!("{bytes:02x?}"),
    }
}

fn postcard_u64(bytes: &[u8]) -> Result<(u64, &[u8]), ()> {
    faultline_engine::sdk::codec::try_decode_prefix::<u64>(bytes).ok_or(())
}

/// An encoded value as people read it (its bytes, until the pipeline shows it).
pub fn show_bytes(bytes: &[u8]) -> String {
    format!("{bytes:02x?}")
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
    use faultline_engine::record::KeyBytes;
    use faultline_engine::sdk::codec::encode;

    use super::*;
    use crate::checker::expected::expect;

    fn cause(seq: u64) -> Cause {
        Cause { producer: 0, seq }
    }

    fn bytes(_: &OutputId, b: &[u8]) -> String {
        show_bytes(b)
    }

    fn id(key: u64, from: u64) -> OutputId {
        OutputId::main(KeyBytes::of(&key), Origin::Input(cause(from)), 0)
    }

    /// Key 1: inputs 0 and 2 (sums 5, 9); key 2: input 1 (sum 4).
    fn expected() -> Expected {
        let want = |key: u64, sum: i64, from| {
            expect(&key, Origin::Input(cause(from)), &sum, Some(cause(from)), from)
        };
        Expected::from_unsorted(vec![want(1, 5, 0), want(1, 9, 2), want(2, 4, 1)])
    }

    fn out(key: u64, sum: i64, from: u64) -> OutputRecord {
        OutputRecord { id: id(key, from), value: encode(&sum), cause: cause(from) }
    }

    #[test]
    fn exact_output_passes_every_semantics() {
        let good = [out(2, 4, 1), out(1, 5, 0), out(1, 9, 2)];
        for s in [Semantics::ExactlyOnce, Semantics::AtLeastOnce, Semantics::AtMostOnce] {
            let d = check(&expected(), &good, s, &Frontier::finished(), &bytes);
            assert_eq!(d.counts.committed, 3);
            assert!(d.violations(s, &bytes).is_empty(), "{s:?}");
        }
    }

    #[test]
    fn by_id_classifies_lost_duplicate_and_wrong() {
        let committed = [out(1, 5, 0), out(1, 5, 0), out(2, 99, 1)];
        let d = check(&expected(), &committed, Semantics::ExactlyOnce, &Frontier::finished(), &bytes);
        assert_eq!((d.counts.lost, d.counts.duplicates, d.counts.wrong), (1, 1, 1));
        let names: Vec<_> =
            d.violations(Semantics::ExactlyOnce, &bytes).into_iter().map(|v| v.invariant).collect();
        assert_eq!(names, ["delivery-lost", "delivery-duplicate", "delivery-wrong"]);
        let listed: Vec<_> =
            d.counts.offending.iter().map(|o| (o.kind.as_str(), o.output.as_str())).collect();
        assert_eq!(
            listed,
            [
                ("lost", "key 1 · input 0/2"),
                ("duplicate", "key 1 · input 0/0"),
                ("wrong", "key 2 · input 0/1")
            ]
        );
        assert_eq!(d.counts.offending[2].expected, Some(show_bytes(&encode(&4i64))));
        assert_eq!(d.counts.offending[2].committed, Some(show_bytes(&encode(&99i64))));
    }

    #[test]
    fn by_id_a_right_value_from_the_wrong_input_is_wrong() {
        let stray = OutputRecord { cause: cause(7), ..out(1, 5, 0) };
        let d = check_by_id(&expected(), &[stray, out(1, 9, 2), out(2, 4, 1)]);
        assert_eq!((d.counts.lost, d.counts.wrong), (0, 1));
    }

    #[test]
    fn content_ids_count_as_a_multiset() {
        let pair = expect(&1u64, Origin::Content(0), &7i64, None, 0);
        let e = Expected::from_unsorted(vec![pair.clone(), pair.clone()]);
        let got = |n: usize| {
            vec![OutputRecord { id: pair.0.clone(), value: pair.1.value.clone(), cause: cause(0) }; n]
        };
        let d = check_by_id(&e, &got(1));
        assert_eq!((d.counts.lost, d.counts.duplicates), (1, 0), "one of two equal outputs is missing");
        let d = check_by_id(&e, &got(3));
        assert_eq!((d.counts.lost, d.counts.duplicates), (0, 1), "a third is one too many");
        assert!(check_by_id(&e, &got(2)).violations(Semantics::ExactlyOnce, &bytes).is_empty());
    }

    #[test]
    fn by_cause_values_do_not_matter_but_presence_does() {
        let shifted = [out(1, 6, 0), out(1, 10, 2), out(1, 10, 2)];
        let d = check_by_cause(&expected(), &shifted);
        assert_eq!((d.counts.lost, d.counts.duplicates, d.counts.wrong), (1, 1, 0));
        assert!(d.violations(Semantics::AtLeastOnce, &bytes).iter().any(|v| v.invariant == "delivery-lost"));
        assert!(d
            .violations(Semantics::AtMostOnce, &bytes)
            .iter()
            .any(|v| v.invariant == "delivery-duplicate"));
    }

    #[test]
    fn ids_read_as_people_write_them() {
        assert_eq!(show_id(&id(0, 43)), "key 0 · input 0/43");
        let timer = OutputId::main(KeyBytes::of("card-7"), Origin::Timer { at_ms: 60_000, tag: 5 }, 1);
        assert_eq!(show_id(&timer), "key \"card-7\" · timer 60000/5 #1");
        let late = OutputId::late(KeyBytes::of(&3u64), cause(4));
        assert_eq!(show_id(&late), "late key 3 · input 0/4");
    }
}
