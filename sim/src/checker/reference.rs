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

/// Expected output value for each output id: `(count, sum)`.
pub type Expected = BTreeMap<OutputId, (u64, i64)>;

/// Evaluates the running-aggregate pipeline over the full input.
pub fn running_aggregate(workload: &WorkloadSpec, pipeline: &PipelineSpec) -> Expected {
    let mut totals: BTreeMap<u64, (u64, i64)> = BTreeMap::new();
    let mut expected = Expected::new();
    for producer in 0..workload.producers {
        for (_partition, event) in workload.events_for(producer) {
            let mapped = event.value.wrapping_mul(pipeline.map_scale).wrapping_add(pipeline.map_offset);
            let m = pipeline.filter_drop_multiples_of;
            if m != 0 && mapped.rem_euclid(m) == 0 {
                continue;
            }
            let (count, sum) = totals.entry(event.key).or_insert((0, 0));
            *count += 1;
            *sum = sum.wrapping_add(mapped);
            expected.insert(OutputId { key: event.key, seq: *count }, (*count, *sum));
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
