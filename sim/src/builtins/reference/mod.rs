//! The reference model: what the job's output must be, computed the plain way.
//!
//! It is deliberately not the engine's code: no operators, no watermarks, no streaming — the
//! whole input is in memory, and each pipeline is a batch evaluation of its definition in
//! `faultline_engine::pipeline` (sort, group, aggregate). Which records were late depends on the
//! run, so [`evaluate`] takes the late records the sink committed and leaves them out; every
//! result is then defined exactly.
//!
//! This file owns the dispatch by built-in; `running` evaluates the running aggregate,
//! `windows` the keyed windows and top-n, `joins` the joins, `nexmark` the Nexmark queries. The
//! input and the expected output are the checkers' (`checker::expected`).

mod joins;
mod nexmark;
mod running;
mod windows;

use std::borrow::Cow;
use std::collections::BTreeSet;

use faultline_engine::operators::builtin::Synthetic;
use faultline_engine::record::Cause;
use faultline_engine::sdk::codec::decode;

use crate::builtins::spec::{BuiltinKind, BuiltinSpec};
pub(crate) use crate::checker::expected::{expect, expect_encoded, Expect, Expected, Input};

pub use running::running_state;

/// A synthetic input, decoded: what the synthetic pipelines' models work on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syn {
    pub id: u64,
    pub kind: u8,
    pub key: u64,
    pub value: i64,
    pub event_time_ms: u64,
    pub cause: Cause,
}

impl Syn {
    pub fn of(i: &Input) -> Self {
        let s: Synthetic = decode(&i.event.value);
        let key: u64 = decode(&i.event.key.bytes);
        Syn {
            id: s.id,
            kind: s.kind,
            key,
            value: s.value,
            event_time_ms: i.event.event_time_ms,
            cause: i.cause,
        }
    }
}

/// Evaluates `pipeline` over `inputs` minus the late ones (`late`: the inputs, by cause and
/// partition, the sink committed as late). Of the user pipelines, only `top-n` is known; any
/// other panics.
pub fn evaluate(inputs: &[Input], pipeline: &BuiltinSpec, late: &BTreeSet<(Cause, u32)>) -> Expected {
    let kept = inputs.iter().filter(|i| !late.contains(&i.name()));
    let lateness = pipeline.allowed_lateness_ms;
    match &pipeline.kind {
        BuiltinKind::RunningAggregate => running::running_aggregate(&mapped(kept, pipeline)),
        BuiltinKind::Window => windows::window(&mapped(kept, pipeline), pipeline.window, lateness),
        BuiltinKind::WindowJoin => {
            let pairing = joins::Pairing::Window { size_ms: pipeline.window.size_ms() };
            Expected::from_unsorted(joins::join(&mapped(kept, pipeline), pairing))
        }
        BuiltinKind::IntervalJoin { bound_ms } => {
            let pairing = joins::Pairing::Interval { bound_ms: *bound_ms };
            Expected::from_unsorted(joins::join(&mapped(kept, pipeline), pairing))
        }
        BuiltinKind::TopN { n } => windows::top_n(&mapped(kept, pipeline), *n, pipeline),
        BuiltinKind::Nexmark(query) => {
            let kept: Cow<'_, [Input]> = match late.is_empty() {
                true => Cow::Borrowed(inputs),
                false => Cow::Owned(kept.cloned().collect()),
            };
            nexmark::evaluate(*query, &kept, pipeline.window, lateness)
        }
    }
}

/// The synthetic pipelines' first steps: each input decoded, its value mapped, the filtered
/// ones dropped.
fn mapped<'a>(inputs: impl Iterator<Item = &'a Input>, pipeline: &BuiltinSpec) -> Vec<Syn> {
    let mut out = Vec::with_capacity(inputs.size_hint().1.unwrap_or(0));
    out.extend(inputs.filter_map(|i| {
        let mut s = Syn::of(i);
        s.value = pipeline.map_filter(s.value)?;
        Some(s)
    }));
    out
}

/// Hand-built inputs for the unit tests.
#[cfg(test)]
pub(super) mod build {
    use crate::builtins::spec::{BuiltinKind, BuiltinSpec};
    use faultline_engine::operators::builtin::Synthetic;
    use faultline_engine::pipeline::WindowSpec;
    use faultline_engine::record::{Cause, Event, KeyBytes};
    use faultline_engine::sdk::codec::encode;

    use super::Input;

    /// A synthetic event of stream 0: producer 0, partition 0, seq = id.
    pub fn ev(id: u64, key: u64, value: i64, t: u64) -> Input {
        ev_kind(id, 0, key, value, t)
    }

    /// A synthetic event of stream `kind`: producer 0, partition 0, seq = id.
    pub fn ev_kind(id: u64, kind: u8, key: u64, value: i64, t: u64) -> Input {
        let value = encode(&Synthetic { id, kind, value });
        let event = Event { id, key: KeyBytes::of(&key), value, event_time_ms: t };
        Input { event, cause: cause(id), partition: 0 }
    }

    /// The cause `ev` gives event `id`.
    pub fn cause(id: u64) -> Cause {
        Cause { producer: 0, seq: id }
    }

    /// A pipeline with the identity map, no filter and no lateness.
    pub fn pipeline(kind: BuiltinKind, window: WindowSpec) -> BuiltinSpec {
        BuiltinSpec::plain(kind, window)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::builtins::spec::BuiltinKind;
    use faultline_engine::pipeline::WindowSpec;
    use faultline_engine::workload::{Input as Source, WorkloadSpec};

    use super::build::{cause, ev, pipeline};
    use super::*;
    use crate::builtins::Builtin;
    use crate::checker::expected::{inputs, Want};
    use faultline_engine::record::{KeyBytes, Origin, OutputId};
    use faultline_engine::sdk::codec::encode;

    fn want(value: i64, cause: Cause, ready_ms: u64) -> Want {
        Want { value: encode(&value), cause: Some(cause), ready_ms }
    }

    fn id(key: u64, origin: Origin) -> OutputId {
        OutputId::main(KeyBytes::of(&key), origin, 0)
    }

    fn synthetic() -> WorkloadSpec {
        WorkloadSpec {
            input: Source::Synthetic,
            seed: 5,
            events: 700,
            keys: 9,
            partitions: 5,
            producers: 2,
            rate_per_s: 100,
            value_max: 50,
            streams: 1,
            disorder_ms: 20,
            late_per_mille: 0,
            late_by_ms: 0,
        }
    }

    #[test]
    fn inputs_number_each_producers_events_per_partition() {
        let running =
            Builtin { spec: pipeline(BuiltinKind::RunningAggregate, WindowSpec::Tumbling { size_ms: 1 }) };
        let all = inputs(&synthetic(), &running);
        assert_eq!(all.len(), 700);
        let mut next: BTreeMap<(u32, u32), u64> = BTreeMap::new();
        let mut last_producer = 0;
        for i in &all {
            assert!(i.cause.producer >= last_producer, "producer 0's events first");
            last_producer = i.cause.producer;
            assert_eq!(i.partition % 2, i.cause.producer);
            let seq = next.entry((i.cause.producer, i.partition)).or_default();
            assert_eq!(i.cause.seq, *seq);
            *seq += 1;
        }
        let names: BTreeSet<(Cause, u32)> = all.iter().map(Input::name).collect();
        assert_eq!(names.len(), 700, "cause and partition name an input");
    }

    #[test]
    fn expected_sorts_and_finds_by_id() {
        let (a, b) = (want(1, cause(1), 1), want(2, cause(2), 2));
        let (ia, ib) = (id(1, Origin::Input(cause(9))), id(3, Origin::Input(cause(1))));
        let e = Expected::from_unsorted(vec![(ib.clone(), b.clone()), (ia.clone(), a.clone())]);
        assert_eq!(e.len(), 2);
        assert!(!e.is_empty());
        let mut ids = vec![ia.clone(), ib.clone()];
        ids.sort();
        assert_eq!(e.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), ids);
        assert_eq!(e.get(&ib), Some(&b));
        assert_eq!(e.get(&id(3, Origin::Input(cause(2)))), None);
        assert!(Expected::default().is_empty());
    }

    #[test]
    fn expected_rejects_a_duplicate_id_but_counts_equal_contents() {
        let panicked = crate::panic::catch(|| {
            let (i, w) = (id(1, Origin::Input(cause(1))), want(0, cause(0), 0));
            Expected::from_unsorted(vec![(i.clone(), w.clone()), (i, w)]);
        })
        .expect_err("the reference refuses it");
        assert!(panicked.message.contains("twice"), "{panicked:?}");
        let pair = expect(&1u64, Origin::Content(0), &5i64, None, 0);
        assert_eq!(Expected::from_unsorted(vec![pair.clone(), pair]).len(), 2);
    }

    #[test]
    fn map_and_filter_come_first() {
        let mut p = pipeline(BuiltinKind::RunningAggregate, WindowSpec::Tumbling { size_ms: 10 });
        (p.map_scale, p.map_offset, p.filter_drop_multiples_of) = (3, 1, 2);
        // 1 -> 4 dropped, 2 -> 7 kept, 0 -> 1 kept.
        let input = [ev(0, 1, 1, 0), ev(1, 1, 2, 1), ev(2, 1, 0, 2)];
        let e = evaluate(&input, &p, &BTreeSet::new());
        let running = |i| {
            let want = e.get(&id(1, Origin::Input(cause(i)))).expect("an output");
            decode::<faultline_engine::operators::builtin::running::Running>(&want.value)
        };
        assert_eq!(e.len(), 2);
        assert_eq!((running(1).count, running(1).sum), (1, 7));
        assert_eq!((running(2).count, running(2).sum), (2, 8));
    }
}
