//! The reference model: what the job's output must be, computed the plain way.
//!
//! It is deliberately not the engine's code: no operators, no batching, no network — one loop
//! over each producer's events in emission order, applying the pipeline's definition directly.
//! Keys are owned by one producer each, so that loop sees every key's events in log order,
//! which is the only order the engine's output may depend on.

use std::collections::BTreeMap;

use faultline_engine::job::PipelineSpec;
use faultline_engine::record::OutputId;
use faultline_engine::workload::WorkloadSpec;

/// The expected output: for each key, the running sum after each of its records. The output
/// `(key, seq)` must be `(count = seq, sum = sums[key][seq - 1])`.
#[derive(Debug, Default)]
pub struct Expected {
    sums: BTreeMap<u64, Vec<i64>>,
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

    /// The expected `(count, sum)` of an output id, if the id is expected at all.
    pub fn get(&self, id: OutputId) -> Option<(u64, i64)> {
        let index = usize::try_from(id.seq.checked_sub(1)?).ok()?;
        self.sums.get(&id.key)?.get(index).map(|&sum| (id.seq, sum))
    }

    /// Every expected output, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (OutputId, (u64, i64))> + '_ {
        self.sums.iter().flat_map(|(&key, sums)| {
            sums.iter().enumerate().map(move |(i, &sum)| {
                let seq = i as u64 + 1;
                (OutputId { key, seq }, (seq, sum))
            })
        })
    }

    /// Builds an expectation from explicit outputs (for tests).
    pub fn from_outputs(outputs: impl IntoIterator<Item = (OutputId, (u64, i64))>) -> Self {
        let mut expected = Expected::default();
        for (id, (count, sum)) in outputs {
            let sums = expected.sums.entry(id.key).or_default();
            assert_eq!(id.seq, sums.len() as u64 + 1, "outputs of a key come in sequence");
            assert_eq!(count, id.seq, "a running count equals the output's sequence number");
            sums.push(sum);
            expected.len += 1;
        }
        expected
    }
}

/// Evaluates the running-aggregate pipeline over the full input.
pub fn running_aggregate(workload: &WorkloadSpec, pipeline: &PipelineSpec) -> Expected {
    let mut expected = Expected::default();
    for producer in 0..workload.producers {
        for (_partition, event) in workload.events_for(producer) {
            let mapped = event.value.wrapping_mul(pipeline.map_scale).wrapping_add(pipeline.map_offset);
            let m = pipeline.filter_drop_multiples_of;
            if m != 0 && mapped.rem_euclid(m) == 0 {
                continue;
            }
            let sums = expected.sums.entry(event.key).or_default();
            let sum = sums.last().copied().unwrap_or(0).wrapping_add(mapped);
            sums.push(sum);
            expected.len += 1;
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
