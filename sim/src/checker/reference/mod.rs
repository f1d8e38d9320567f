//! The reference model: what the job's output must be, computed the plain way.
//!
//! It is deliberately not the engine's code: no operators, no watermarks, no streaming — the
//! whole input is in memory, and each pipeline is a batch evaluation of its definition in
//! `faultline_engine::pipeline` (sort, group, aggregate). Which records were late depends on the
//! run, so [`evaluate`] takes the late records the sink committed and leaves them out; every
//! result is then defined exactly.
//!
//! This file owns the input ([`inputs`]), the expected output ([`Expected`], [`Want`]) and the
//! dispatch by pipeline; `running` evaluates the running aggregate, `windows` the keyed windows
//! and the `top-n` user pipeline, `nexmark` the Nexmark queries.

mod joins;
mod nexmark;
mod running;
mod windows;

use std::collections::BTreeSet;

use faultline_engine::pipeline::{PipelineKind, PipelineSpec};
use faultline_engine::record::{Cause, Event, OutputId};
use faultline_engine::workload::WorkloadSpec;

pub use running::running_state;

/// One input event and its cause: the producer and its per-partition sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Input {
    pub event: Event,
    pub cause: Cause,
    pub partition: u32,
}

/// Every input event of the run: producer 0's events in emission order, then producer 1's, ...
///
/// `cause.seq` counts each producer's events per partition from 0, as the producer numbers its
/// log records. A key's events all come from one producer and one partition, so this order is
/// also each key's log order.
pub fn inputs(workload: &WorkloadSpec) -> Vec<Input> {
    let mut all = Vec::with_capacity(usize::try_from(workload.events).unwrap_or(0));
    for producer in 0..workload.producers {
        let mut next_seq = vec![0u64; workload.partitions as usize];
        for emitted in workload.events_for(producer) {
            let seq = &mut next_seq[emitted.partition as usize];
            let cause = Cause { producer, seq: *seq };
            *seq += 1;
            all.push(Input { event: emitted.event, cause, partition: emitted.partition });
        }
    }
    all
}

/// What one expected output must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    pub values: [i64; 4],
    pub cause: Cause,
    /// The event time at which the result became determinable (see the pipeline's evaluator).
    pub ready_ms: u64,
}

/// The expected output, sorted by id (all on the main side), no id twice.
#[derive(Debug, Default)]
pub struct Expected {
    outputs: Vec<(OutputId, Want)>,
}

impl Expected {
    /// The number of expected output records.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Every expected output, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (OutputId, Want)> + '_ {
        self.outputs.iter().copied()
    }

    /// What the reference expects for output `id`, if anything.
    pub fn get(&self, id: OutputId) -> Option<Want> {
        let at = self.outputs.binary_search_by_key(&id, |&(i, _)| i).ok()?;
        Some(self.outputs[at].1)
    }

    /// Sorts `v` by id; panics if an id occurs twice (an evaluator bug).
    pub fn from_unsorted(mut v: Vec<(OutputId, Want)>) -> Self {
        v.sort_by_key(|&(id, _)| id);
        if let Some(pair) = v.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            panic!(
                "the reference produced output {:?} twice: {:?} and {:?}",
                pair[0].0, pair[0].1, pair[1].1
            );
        }
        Expected { outputs: v }
    }
}

/// Evaluates `pipeline` over `inputs` minus the events whose id is in `late` (the late records
/// the sink committed). Of the user pipelines, only `top-n` is known; any other panics.
pub fn evaluate(inputs: &[Input], pipeline: &PipelineSpec, late: &BTreeSet<u64>) -> Expected {
    let kept = inputs.iter().filter(|i| !late.contains(&i.event.id)).copied();
    match &pipeline.kind {
        PipelineKind::RunningAggregate => running::running_aggregate(&mapped(kept, pipeline)),
        PipelineKind::Window => windows::window(&mapped(kept, pipeline), pipeline.window),
        PipelineKind::WindowJoin => {
            let pairing = joins::Pairing::Window { size_ms: pipeline.window.size_ms() };
            Expected::from_unsorted(joins::join(&mapped(kept, pipeline), pairing))
        }
        PipelineKind::IntervalJoin { bound_ms } => {
            let pairing = joins::Pairing::Interval { bound_ms: *bound_ms };
            Expected::from_unsorted(joins::join(&mapped(kept, pipeline), pairing))
        }
        PipelineKind::User { name, .. } if name == "top-n" => {
            windows::top_n(&mapped(kept, pipeline), pipeline)
        }
        PipelineKind::User { name, .. } => {
            panic!("the reference model knows no user pipeline {name:?} (it evaluates only \"top-n\")")
        }
        PipelineKind::Nexmark(query) => nexmark::evaluate(*query, &kept.collect::<Vec<_>>(), pipeline.window),
    }
}

/// The synthetic pipelines' first steps: each input's value mapped, the filtered ones dropped.
fn mapped(inputs: impl Iterator<Item = Input>, pipeline: &PipelineSpec) -> Vec<Input> {
    inputs
        .filter_map(|mut i| {
            i.event.value = pipeline.map_filter(i.event.value)?;
            Some(i)
        })
        .collect()
}

/// The cause of the record with the greatest event id among `records` (not empty).
fn latest_cause(records: &[&Input]) -> Cause {
    records.iter().max_by_key(|r| r.event.id).expect("a result holds at least one record").cause
}

/// Hand-built inputs for the unit tests.
#[cfg(test)]
pub(super) mod build {
    use faultline_engine::pipeline::{PipelineKind, PipelineSpec, WindowSpec};
    use faultline_engine::record::{Cause, Event};

    use super::Input;

    /// A synthetic event: producer 0, partition 0, seq = id.
    pub fn ev(id: u64, key: u64, value: i64, t: u64) -> Input {
        nx(id, 0, key, value, [0; 3], t)
    }

    /// An event of any kind: producer 0, partition 0, seq = id.
    pub fn nx(id: u64, kind: u8, key: u64, value: i64, aux: [i64; 3], t: u64) -> Input {
        let event = Event { id, kind, key, value, aux, event_time_ms: t };
        Input { event, cause: Cause { producer: 0, seq: id }, partition: 0 }
    }

    /// The cause `ev`/`nx` give event `id`.
    pub fn cause(id: u64) -> Cause {
        Cause { producer: 0, seq: id }
    }

    /// A pipeline with the identity map, no filter and no lateness.
    pub fn pipeline(kind: PipelineKind, window: WindowSpec) -> PipelineSpec {
        PipelineSpec::plain(kind, window)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use faultline_engine::pipeline::{PipelineKind, WindowSpec};
    use faultline_engine::record::{Cause, OutputId};
    use faultline_engine::workload::{Input as Source, WorkloadSpec};

    use super::build::{cause, ev, pipeline};
    use super::*;

    fn want(values: [i64; 4], cause: Cause, ready_ms: u64) -> Want {
        Want { values, cause, ready_ms }
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
        let all = inputs(&synthetic());
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
        let ids: BTreeSet<u64> = all.iter().map(|i| i.event.id).collect();
        assert_eq!(ids.len(), 700);
    }

    #[test]
    fn expected_sorts_and_finds_by_id() {
        let (a, b) = (want([1, 0, 0, 0], cause(1), 1), want([2, 0, 0, 0], cause(2), 2));
        let e = Expected::from_unsorted(vec![(OutputId::main(3, 1), b), (OutputId::main(1, 9), a)]);
        assert_eq!(e.len(), 2);
        assert!(!e.is_empty());
        assert_eq!(
            e.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            [OutputId::main(1, 9), OutputId::main(3, 1)]
        );
        assert_eq!(e.get(OutputId::main(3, 1)), Some(b));
        assert_eq!(e.get(OutputId::main(3, 2)), None);
        assert_eq!(e.get(OutputId::late(3, 1)), None);
        assert!(Expected::default().is_empty());
    }

    #[test]
    fn expected_rejects_a_duplicate_id() {
        let panicked = crate::panic::catch(|| {
            let w = want([0; 4], cause(0), 0);
            Expected::from_unsorted(vec![(OutputId::main(1, 1), w), (OutputId::main(1, 1), w)]);
        })
        .expect_err("the reference refuses it");
        assert!(panicked.message.contains("twice"), "{panicked:?}");
    }

    #[test]
    fn an_unknown_user_pipeline_panics() {
        let panicked = crate::panic::catch(|| {
            let kind = PipelineKind::User { name: "median".into(), params: vec![] };
            evaluate(
                &[ev(0, 1, 1, 0)],
                &pipeline(kind, WindowSpec::Tumbling { size_ms: 10 }),
                &BTreeSet::new(),
            );
        })
        .expect_err("the reference refuses it");
        assert!(panicked.message.contains("no user pipeline \"median\""), "{panicked:?}");
    }

    #[test]
    fn map_and_filter_come_first() {
        let mut p = pipeline(PipelineKind::RunningAggregate, WindowSpec::Tumbling { size_ms: 10 });
        (p.map_scale, p.map_offset, p.filter_drop_multiples_of) = (3, 1, 2);
        // 1 -> 4 dropped, 2 -> 7 kept, 0 -> 1 kept.
        let input = [ev(0, 1, 1, 0), ev(1, 1, 2, 1), ev(2, 1, 0, 2)];
        let e = evaluate(&input, &p, &BTreeSet::new());
        let got: Vec<_> = e.iter().collect();
        assert_eq!(
            got,
            [
                (OutputId::main(1, 1), want([1, 7, 0, 0], cause(1), 1)),
                (OutputId::main(1, 2), want([2, 8, 0, 0], cause(2), 2)),
            ]
        );
    }
}
