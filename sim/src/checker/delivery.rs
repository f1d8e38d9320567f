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
use faultline_engine::sdk::Blob;
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
///
/// The walk in id order compares causes only, and notes the values it would compare; they are
/// compared after it, in commit order. Both sides' bytes then lie in the order they are read,
/// where in id order each comparison reaches two cold places. If every noted comparison holds,
/// the walk's findings are those of comparing values in place; if one does not, the walk is
/// made again comparing them in place (only a failing run pays twice).
pub fn check_by_id(expected: &Expected, committed: &[OutputRecord]) -> Delivery {
    // Equal ids keep their commit order, which is their order in the slice.
    let sorted = id_order(committed, |r| &r.id);
    let wanted = || expected.iter().map(|(id, want)| (id, id, want));
    let mut noted = Noted::new(committed.len());
    let d = merge(
        wanted(),
        committed,
        &sorted,
        |r| &r.id,
        |at, r, want| {
            noted.note(at, &want.value);
            cause_holds(r, want)
        },
    );
    if noted.hold(committed) {
        return d.finish(expected, committed);
    }
    by_id_in_place(expected, committed, &sorted)
}

/// [`check_by_id`], comparing values as the walk comes to them; `sorted` gives the committed
/// records' places in id order.
fn by_id_in_place(expected: &Expected, committed: &[OutputRecord], sorted: &[u32]) -> Delivery {
    let wanted = expected.iter().map(|(id, want)| (id, id, want));
    let matches = |_, r: &OutputRecord, want: &Want| r.value == want.value && cause_holds(r, want);
    merge(wanted, committed, sorted, |r| &r.id, matches).finish(expected, committed)
}

/// Whether `r` descends from the input `want` names, where the model names one.
fn cause_holds(r: &OutputRecord, want: &Want) -> bool {
    want.cause.is_none_or(|c| c == r.cause)
}

/// The value comparisons a walk in id order put off: the expected bytes each committed record
/// (by its place) is to be compared with.
struct Noted<'a> {
    /// The first comparison of each record, by place.
    first: Vec<Option<&'a [u8]>>,
    /// Any further ones: a record compared with several expectations under its id.
    more: Vec<(u32, &'a [u8])>,
}

impl<'a> Noted<'a> {
    fn new(records: usize) -> Self {
        Noted { first: vec![None; records], more: Vec::new() }
    }

    fn note(&mut self, at: u32, want: &'a Blob) {
        match &mut self.first[at as usize] {
            slot @ None => *slot = Some(want.as_slice()),
            Some(_) => self.more.push((at, want.as_slice())),
        }
    }

    /// Whether every noted comparison holds, made in the records' order.
    fn hold(&self, committed: &[OutputRecord]) -> bool {
        assert_eq!(self.first.len(), committed.len(), "comparisons noted for other records");
        let firsts =
            committed.iter().zip(&self.first).all(|(r, want)| want.is_none_or(|w| r.value.as_slice() == w));
        firsts && self.more.iter().all(|&(at, want)| committed[at as usize].value.as_slice() == want)
    }
}

/// Classifies every committed record by key and origin: each input's (or timer's) output counts
/// once, whatever its value.
pub fn check_by_cause(expected: &Expected, committed: &[OutputRecord]) -> Delivery {
    fn by(id: &OutputId) -> (&faultline_engine::record::KeyBytes, Origin, u32) {
        (&id.key, id.origin, id.n)
    }
    let mut sorted: Vec<u32> = (0..committed.len() as u32).collect();
    sorted.sort_by(|&a, &b| by(&committed[a as usize].id).cmp(&by(&committed[b as usize].id)));
    let mut wanted: Vec<_> = expected.iter().map(|(id, want)| (by(id), id, want)).collect();
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    merge(wanted.into_iter(), committed, &sorted, |r| by(&r.id), |_, _, _| true).finish(expected, committed)
}

/// Walks the expected outputs and the committed records together by `key_of`; `sorted` gives
/// the records' places in the order of their keys. `matches` is told the place of the record
/// it judges.
fn merge<'a, K: Ord>(
    wanted: impl Iterator<Item = (K, &'a OutputId, &'a Want)>,
    committed: &'a [OutputRecord],
    sorted: &[u32],
    key_of: impl Fn(&'a OutputRecord) -> K,
    mut matches: impl FnMut(u32, &OutputRecord, &'a Want) -> bool,
) -> Delivery {
    let mut d = Delivery::default();
    let mut wanted = wanted.peekable();
    let (mut wants, mut fulfilled) = (Vec::new(), Vec::new());
    let key_at = |at: u32| key_of(&committed[at as usize]);
    let mut i = 0;
    while i < sorted.len() {
        let key = key_at(sorted[i]);
        let run_end = i + sorted[i..].iter().take_while(|&&at| key_at(at) == key).count();
        while let Some((_, missing, _)) = wanted.next_if(|(k, _, _)| *k < key) {
            d.lost.push(missing.clone());
        }
        wants.clear();
        while let Some((_, id, w)) = wanted.next_if(|(k, _, _)| *k == key) {
            wants.push((id, w));
        }
        let run = Run { committed, places: &sorted[i..run_end] };
        classify(run, &mut wants, &mut fulfilled, &mut matches, &mut d);
        i = run_end;
    }
    d.lost.extend(wanted.map(|(_, id, _)| id.clone()));
    d
}

/// The committed records sharing one id (or key and origin), by their places.
struct Run<'r> {
    committed: &'r [OutputRecord],
    places: &'r [u32],
}

/// Classifies the committed records sharing one id (or key and origin); `wants` are what the
/// reference expects under it (a content id may be expected several times). A record matching
/// an expectation fulfils it; one matching only a fulfilled one is a duplicate; any other is
/// wrong. Expectations left over are lost, beyond the wrong records that took their place.
fn classify<'a>(
    run: Run<'_>,
    wants: &mut Vec<(&'a OutputId, &'a Want)>,
    fulfilled: &mut Vec<&'a Want>,
    matches: &mut impl FnMut(u32, &OutputRecord, &'a Want) -> bool,
    d: &mut Delivery,
) {
    fulfilled.clear();
    let mut wrong = 0;
    for &at in run.places {
        let r = &run.committed[at as usize];
        if let Some(found) = wants.iter().position(|(_, w)| matches(at, r, w)) {
            fulfilled.push(wants.swap_remove(found).1);
        } else if fulfilled.iter().any(|w| matches(at, r, w)) {
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
    use crate::checker::expected::{expect, Expect};

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

    proptest::proptest! {
        /// The walk that puts value comparisons off finds what comparing in place finds, on
        /// histories with every kind of offence: records dropped, repeated and out of order,
        /// wrong values and wrong causes, and content ids expected several times.
        #[test]
        fn putting_comparisons_off_finds_what_comparing_in_place_does(
            wants in proptest::collection::vec((0u64..3, 0u64..4, 0i64..3, proptest::bool::ANY), 1..12),
            picks in proptest::collection::vec((proptest::sample::select((0usize..12).collect::<Vec<_>>()), 0u8..6), 0..16),
        ) {
            let mut v: Vec<Expect> = Vec::new();
            for (key, from, sum, content) in wants {
                let origin = if content { Origin::Content(0) } else { Origin::Input(cause(from)) };
                let e = expect(&key, origin, &sum, (!content).then(|| cause(from)), from);
                if content || v.iter().all(|(id, _)| *id != e.0) {
                    v.push(e);
                }
            }
            let committed: Vec<OutputRecord> = picks
                .into_iter()
                .map(|(at, how)| {
                    let (id, want) = &v[at % v.len()];
                    let r = OutputRecord { id: id.clone(), value: want.value.clone(), cause: want.cause.unwrap_or(cause(9)) };
                    match how {
                        3 => OutputRecord { value: encode(&77i64), ..r },
                        4 => OutputRecord { cause: cause(8), ..r },
                        _ => r,
                    }
                })
                .collect();
            let e = Expected::from_unsorted(v);
            let put_off = check_by_id(&e, &committed);
            let in_place = by_id_in_place(&e, &committed, &id_order(&committed, |r| &r.id));
            proptest::prop_assert_eq!(&put_off.lost, &in_place.lost);
            proptest::prop_assert_eq!(&put_off.duplicates, &in_place.duplicates);
            proptest::prop_assert_eq!(&put_off.wrong, &in_place.wrong);
        }
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
