//! The running aggregate: per key, the count and the (wrapping) sum of its kept records so far,
//! one output after each; and the same state after a prefix of the input, for the checkpoint
//! checker.

use std::collections::BTreeMap;

use faultline_engine::pipeline::PipelineSpec;
use faultline_engine::record::{Event, OutputId};

use super::{Expected, Input, Want};

/// Output `(key, n)` after the key's n-th kept record, in input order (a key's inputs come from
/// one producer and one partition, so that is its log order): `[n, running sum, 0, 0]`, caused
/// by that record and ready at its event time. `records` are already mapped and filtered.
pub(super) fn running_aggregate(records: &[Input]) -> Expected {
    let mut state: BTreeMap<u64, (u64, i64)> = BTreeMap::new();
    let outputs = records
        .iter()
        .map(|r| {
            let (count, sum) = state.entry(r.event.key).or_default();
            *count += 1;
            *sum = sum.wrapping_add(r.event.value);
            let want =
                Want { values: [*count as i64, *sum, 0, 0], cause: r.cause, ready_ms: r.event.event_time_ms };
            (OutputId::main(r.event.key, *count), want)
        })
        .collect();
    Expected::from_unsorted(outputs)
}

/// The running-aggregate state after exactly `inputs`: key -> (count, sum) of the values the
/// pipeline's map and filter keep.
pub fn running_state<'a>(
    inputs: impl Iterator<Item = &'a Event>,
    pipeline: &PipelineSpec,
) -> BTreeMap<u64, (u64, i64)> {
    let mut state: BTreeMap<u64, (u64, i64)> = BTreeMap::new();
    for event in inputs {
        if let Some(value) = pipeline.map_filter(event.value) {
            let (count, sum) = state.entry(event.key).or_default();
            *count += 1;
            *sum = sum.wrapping_add(value);
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use faultline_engine::pipeline::{PipelineKind, WindowSpec};
    use faultline_engine::record::OutputId;

    use super::super::build::{cause, ev, pipeline};
    use super::super::{evaluate, Want};
    use super::running_state;

    fn running() -> faultline_engine::pipeline::PipelineSpec {
        pipeline(PipelineKind::RunningAggregate, WindowSpec::Tumbling { size_ms: 1 })
    }

    #[test]
    fn counts_and_sums_per_key_in_input_order() {
        let input = [ev(0, 1, 5, 10), ev(1, 2, -3, 11), ev(2, 1, 7, 9), ev(3, 1, i64::MAX, 12)];
        let e = evaluate(&input, &running(), &BTreeSet::new());
        let got: Vec<_> = e.iter().collect();
        let w = |values, id, t| Want { values, cause: cause(id), ready_ms: t };
        assert_eq!(
            got,
            [
                (OutputId::main(1, 1), w([1, 5, 0, 0], 0, 10)),
                (OutputId::main(1, 2), w([2, 12, 0, 0], 2, 9)),
                (OutputId::main(1, 3), w([3, 12i64.wrapping_add(i64::MAX), 0, 0], 3, 12)),
                (OutputId::main(2, 1), w([1, -3, 0, 0], 1, 11)),
            ]
        );
    }

    #[test]
    fn late_ids_are_left_out() {
        let input = [ev(0, 1, 5, 10), ev(1, 1, 6, 11), ev(2, 1, 7, 12)];
        let e = evaluate(&input, &running(), &BTreeSet::from([1]));
        assert_eq!(e.len(), 2);
        let second = e.get(OutputId::main(1, 2)).unwrap();
        assert_eq!((second.values, second.cause), ([2, 12, 0, 0], cause(2)));
    }

    #[test]
    fn running_state_matches_the_last_outputs() {
        let mut p = running();
        p.filter_drop_multiples_of = 3;
        let input = [ev(0, 1, 5, 0), ev(1, 2, 3, 1), ev(2, 1, 4, 2), ev(3, 2, 2, 3), ev(4, 1, 9, 4)];
        let state = running_state(input.iter().map(|i| &i.event), &p);
        assert_eq!(state.into_iter().collect::<Vec<_>>(), [(1, (2, 9)), (2, (1, 2))]);
        let e = evaluate(&input, &p, &BTreeSet::new());
        assert_eq!(e.get(OutputId::main(1, 2)).unwrap().values, [2, 9, 0, 0]);
        assert_eq!(e.get(OutputId::main(2, 1)).unwrap().values, [1, 2, 0, 0]);
        let prefix = running_state(input[..2].iter().map(|i| &i.event), &p);
        assert_eq!(prefix.into_iter().collect::<Vec<_>>(), [(1, (1, 5))]);
    }
}
