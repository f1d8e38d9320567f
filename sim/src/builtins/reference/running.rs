//! The running aggregate: per key, the count and the (wrapping) sum of its kept records so far,
//! one output after each; and the same state after a prefix of the input, for the checkpoint
//! checker.

use std::collections::BTreeMap;

use crate::builtins::spec::BuiltinSpec;
use faultline_engine::operators::builtin::running::Running;
use faultline_engine::record::Origin;

use super::{expect, Expected, Input, Syn};

/// After the key's n-th kept record, in input order (a key's inputs come from one producer and
/// one partition, so that is its log order): `Running { count: n, sum }` under the key, from
/// that record, caused by it and ready at its event time. `records` are already mapped and
/// filtered.
pub(super) fn running_aggregate(records: &[Syn]) -> Expected {
    let mut state: BTreeMap<u64, Running> = BTreeMap::new();
    let outputs = records
        .iter()
        .map(|r| {
            let total = state.entry(r.key).or_insert(Running { count: 0, sum: 0 });
            *total = Running { count: total.count + 1, sum: total.sum.wrapping_add(r.value) };
            expect(&r.key, Origin::Input(r.cause), &*total, Some(r.cause), r.event_time_ms)
        })
        .collect();
    Expected::from_unsorted(outputs)
}

/// The running-aggregate state after exactly `inputs`: key → its running count and sum of the
/// values the pipeline's map and filter keep.
pub fn running_state<'a>(
    inputs: impl Iterator<Item = &'a Input>,
    pipeline: &BuiltinSpec,
) -> BTreeMap<u64, Running> {
    let mut state: BTreeMap<u64, Running> = BTreeMap::new();
    for input in inputs {
        let s = Syn::of(input);
        if let Some(value) = pipeline.map_filter(s.value) {
            let total = state.entry(s.key).or_insert(Running { count: 0, sum: 0 });
            *total = Running { count: total.count + 1, sum: total.sum.wrapping_add(value) };
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::builtins::spec::BuiltinKind;
    use faultline_engine::operators::builtin::running::Running;
    use faultline_engine::pipeline::WindowSpec;
    use faultline_engine::record::{KeyBytes, Origin, OutputId};
    use faultline_engine::sdk::codec::decode;

    use super::super::build::{cause, ev, pipeline};
    use super::super::evaluate;
    use super::running_state;

    fn running() -> crate::builtins::spec::BuiltinSpec {
        pipeline(BuiltinKind::RunningAggregate, WindowSpec::Tumbling { size_ms: 1 })
    }

    fn id(key: u64, input: u64) -> OutputId {
        OutputId::main(KeyBytes::of(&key), Origin::Input(cause(input)), 0)
    }

    fn total(count: u64, sum: i64) -> Running {
        Running { count, sum }
    }

    #[test]
    fn counts_and_sums_per_key_in_input_order() {
        let input = [ev(0, 1, 5, 10), ev(1, 2, -3, 11), ev(2, 1, 7, 9), ev(3, 1, i64::MAX, 12)];
        let e = evaluate(&input, &running(), &BTreeSet::new());
        assert_eq!(e.len(), 4);
        let got = |key, input| decode::<Running>(&e.get(&id(key, input)).expect("expected").value);
        assert_eq!(got(1, 0), total(1, 5));
        assert_eq!(got(1, 2), total(2, 12));
        assert_eq!(got(1, 3), total(3, 12i64.wrapping_add(i64::MAX)));
        assert_eq!(got(2, 1), total(1, -3));
        let w = e.get(&id(1, 2)).unwrap();
        assert_eq!((w.cause, w.ready_ms), (Some(cause(2)), 9));
    }

    #[test]
    fn late_inputs_are_left_out() {
        let input = [ev(0, 1, 5, 10), ev(1, 1, 6, 11), ev(2, 1, 7, 12)];
        let e = evaluate(&input, &running(), &BTreeSet::from([(cause(1), 0)]));
        assert_eq!(e.len(), 2);
        assert_eq!(decode::<Running>(&e.get(&id(1, 2)).unwrap().value), total(2, 12));
    }

    #[test]
    fn running_state_matches_the_last_outputs() {
        let mut p = running();
        p.filter_drop_multiples_of = 3;
        let input = [ev(0, 1, 5, 0), ev(1, 2, 3, 1), ev(2, 1, 4, 2), ev(3, 2, 2, 3), ev(4, 1, 9, 4)];
        let state = running_state(input.iter(), &p);
        assert_eq!(state.into_iter().collect::<Vec<_>>(), [(1, total(2, 9)), (2, total(1, 2))]);
        let e = evaluate(&input, &p, &BTreeSet::new());
        assert_eq!(decode::<Running>(&e.get(&id(1, 2)).unwrap().value), total(2, 9));
        let prefix = running_state(input[..2].iter(), &p);
        assert_eq!(prefix.into_iter().collect::<Vec<_>>(), [(1, total(1, 5))]);
    }
}
