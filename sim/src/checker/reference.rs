//! The reference model: what the job's output must be, computed the plain way.
//!
//! It is deliberately not the engine's code: no operators, no batching, no network — one loop
//! over each producer's events in emission order, applying the pipeline's definition directly.
//! Each output remembers its cause: the producer and per-partition sequence number of its input,
//! numbered as the producer numbers them.
//! Keys are owned by one producer each, so that loop sees every key's events in log order,
//! which is the only order the engine's output may depend on.

use std::collections::BTreeMap;

use faultline_engine::job::PipelineSpec;
use faultline_engine::record::{Cause, OutputId};
use faultline_engine::workload::WorkloadSpec;

/// What one expected output must hold: the running sum, and the input that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    pub count: u64,
    pub sum: i64,
    pub cause: Cause,
    /// The input's event time: when its producer generated it.
    pub event_time_ms: u64,
}

/// The expected output: for each key, one entry per kept input in log order. The output
/// `(key, seq)` must equal `outputs[key][seq - 1]`. Within a key, causes increase too (a key's
/// inputs come from one producer, in its sequence order).
#[derive(Debug, Default)]
pub struct Expected {
    outputs: BTreeMap<u64, Vec<(i64, Cause, u64)>>,
    len: usize,
}

impl Expected {
    /// The number of expected output records.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every expected output, in id order — which is also (key, cause) order.
    pub fn iter(&self) -> impl Iterator<Item = (OutputId, Want)> + '_ {
        self.outputs.iter().flat_map(|(&key, outputs)| {
            outputs.iter().enumerate().map(move |(i, &(sum, cause, event_time_ms))| {
                let seq = i as u64 + 1;
                (OutputId { key, seq }, Want { count: seq, sum, cause, event_time_ms })
            })
        })
    }

    /// What the reference expects for output `id`, if anything.
    pub fn get(&self, id: OutputId) -> Option<Want> {
        let &(sum, cause, event_time_ms) = self.outputs.get(&id.key)?.get(id.seq.checked_sub(1)? as usize)?;
        Some(Want { count: id.seq, sum, cause, event_time_ms })
    }

    /// Appends the next output of `key`.
    pub fn push(&mut self, key: u64, sum: i64, cause: Cause, event_time_ms: u64) {
        let outputs = self.outputs.entry(key).or_default();
        assert!(outputs.last().is_none_or(|&(_, c, _)| c < cause), "a key's causes come in order");
        outputs.push((sum, cause, event_time_ms));
        self.len += 1;
    }
}

/// Applies the pipeline's map and filter to one value: `None` if the filter drops it.
pub fn map_filter(value: i64, pipeline: &PipelineSpec) -> Option<i64> {
    let mapped = value.wrapping_mul(pipeline.map_scale).wrapping_add(pipeline.map_offset);
    let m = pipeline.filter_drop_multiples_of;
    (m == 0 || mapped.rem_euclid(m) != 0).then_some(mapped)
}

/// Evaluates the running-aggregate pipeline over the full input.
pub fn running_aggregate(workload: &WorkloadSpec, pipeline: &PipelineSpec) -> Expected {
    let mut expected = Expected::default();
    for producer in 0..workload.producers {
        let mut next_seq = vec![0u64; workload.partitions as usize];
        for (partition, event) in workload.events_for(producer) {
            let seq = next_seq[partition as usize];
            next_seq[partition as usize] += 1;
            let Some(mapped) = map_filter(event.value, pipeline) else { continue };
            let sum = expected.outputs.get(&event.key).and_then(|o| o.last()).map_or(0, |&(s, _, _)| s);
            expected.push(event.key, sum.wrapping_add(mapped), Cause { producer, seq }, event.event_time_ms);
        }
    }
    expected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_kept_event_once() {
        let workload = WorkloadSpec {
            seed: 3,
            events: 500,
            keys: 7,
            partitions: 2,
            producers: 2,
            rate_per_s: 100,
            value_max: 50,
        };
        let keep_all = PipelineSpec { map_scale: 1, map_offset: 0, filter_drop_multiples_of: 0 };
        assert_eq!(running_aggregate(&workload, &keep_all).len(), 500);
        let drop_even = PipelineSpec { map_scale: 2, map_offset: 0, filter_drop_multiples_of: 2 };
        assert!(running_aggregate(&workload, &drop_even).is_empty());
    }
}
