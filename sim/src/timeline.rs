//! A run over simulated time, for its report: rates, latency, in-flight records and state size
//! sampled in fixed buckets, checkpoint spans and each node's lane.
//!
//! Everything here is read after the run, from what the run left: the recorder's trace (what
//! the sources read, checkpoint spans), the sink's durable log (each event carries the simulated
//! ms at which the sink logged it), the reference (each expected output's input event time) and
//! the injector's health changes. Nothing in the engine is measured twice.
//!
//! End-to-end latency is the standard one: from the event time at which an expected output
//! became determinable (its input's, for a record-at-a-time pipeline; its window's end, for a
//! window) to its first commit at the sink. A record in flight is an output determinable but
//! not committed yet; at the run's end the in-flight count is what was lost. Event times are
//! taken relative to the workload's base time, so they compare with simulated time.

use std::collections::BTreeMap;

use faultline_engine::record::{OutputId, Side};
use faultline_reports::{CheckpointSpan, NodeLane, Sample, Timeline};

use crate::checker::expected::Expected;

/// The most samples a timeline has; the bucket is the smallest round width that keeps to it.
const MAX_SAMPLES: u64 = 200;
const ROUND_BUCKETS_MS: [u64; 12] = [10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 60_000];

/// What a run left behind, as the timeline reads it.
pub struct RunTrace<'a> {
    pub sim_time_ms: u64,
    /// The job's checkpoint interval (0: off): rates are averaged over at least that long.
    pub checkpoint_interval_ms: u64,
    /// Records the sources read: (simulated ms, records).
    pub fetched: &'a [(u64, u64)],
    /// Every committed output record with the simulated ms of its commit.
    pub committed: &'a [(u64, faultline_engine::record::OutputRecord)],
    pub expected: &'a Expected,
    /// The event time of the run's start.
    pub base_time_ms: u64,
    pub checkpoints: Vec<CheckpointSpan>,
    pub nodes: Vec<NodeLane>,
    /// The trace events around each fault.
    pub events: Vec<faultline_reports::TraceLine>,
}

/// Samples the run in buckets of simulated time.
pub fn build(run: RunTrace<'_>) -> Timeline {
    let b = Buckets::over(run.sim_time_ms);
    let bucket_ms = b.width_ms;
    let window = run.checkpoint_interval_ms.div_ceil(bucket_ms).max(1) as usize;
    let input = b.sum(run.fetched.iter().copied());
    let output = b.sum(run.committed.iter().map(|&(at, _)| (at, 1)));
    let flows = Flows::of(&run, &b);
    let state = state_bytes(&run.checkpoints, &b);
    let (input_rate, output_rate) = (rates(&input, window, bucket_ms), rates(&output, window, bucket_ms));
    let mut output_total = 0;
    let samples = (0..b.count)
        .map(|i| {
            let (p50, p99) = percentiles(&flows.latencies[i]);
            output_total += output[i];
            Sample {
                at_ms: i as u64 * bucket_ms,
                input_per_s: input_rate[i],
                output_per_s: output_rate[i],
                output_total,
                latency_p50_ms: p50,
                latency_p99_ms: p99,
                in_flight: flows.in_flight[i],
                state_bytes: state[i],
            }
        })
        .collect();
    Timeline {
        bucket_ms,
        rate_window_ms: window as u64 * bucket_ms,
        samples,
        checkpoints: run.checkpoints,
        nodes: run.nodes,
        events: run.events,
        stories: Vec::new(),
    }
}

/// Per bucket, the count per simulated second over the trailing `window` buckets (fewer at the
/// start).
fn rates(counts: &[u64], window: usize, bucket_ms: u64) -> Vec<f64> {
    let mut sum = 0;
    (0..counts.len())
        .map(|i| {
            sum += counts[i];
            if i >= window {
                sum -= counts[i - window];
            }
            let span = (i + 1).min(window) as u64 * bucket_ms;
            sum as f64 * 1000.0 / span as f64
        })
        .collect()
}

/// The run's span cut into `count` buckets of `width_ms`; a time past the end falls in the last.
struct Buckets {
    width_ms: u64,
    count: usize,
}

impl Buckets {
    fn over(sim_time_ms: u64) -> Self {
        let width_ms = bucket_ms(sim_time_ms);
        Buckets { width_ms, count: sim_time_ms.div_ceil(width_ms).max(1) as usize }
    }

    fn index(&self, ms: u64) -> usize {
        ((ms / self.width_ms) as usize).min(self.count - 1)
    }

    /// Per bucket, the sum of the amounts at the times in it.
    fn sum(&self, items: impl Iterator<Item = (u64, u64)>) -> Vec<u64> {
        let mut sums = vec![0; self.count];
        for (at, n) in items {
            sums[self.index(at)] += n;
        }
        sums
    }
}

/// The smallest round bucket width giving at most [`MAX_SAMPLES`] samples.
fn bucket_ms(sim_time_ms: u64) -> u64 {
    ROUND_BUCKETS_MS
        .into_iter()
        .find(|&b| sim_time_ms.div_ceil(b) <= MAX_SAMPLES)
        .unwrap_or_else(|| sim_time_ms.div_ceil(MAX_SAMPLES))
}

/// Per bucket: the latencies of the outputs first committed in it, and the records in flight
/// at its end.
struct Flows {
    latencies: Vec<Vec<u64>>,
    in_flight: Vec<u64>,
}

impl Flows {
    fn of(run: &RunTrace<'_>, b: &Buckets) -> Self {
        let (index, buckets) = (|ms| b.index(ms), b.count);
        // Outputs are matched by id: an input's output keeps its id (its origin) whatever
        // value a replay under weaker semantics gives it.
        let mut first: BTreeMap<&OutputId, u64> = BTreeMap::new();
        for (at, r) in run.committed.iter().filter(|(_, r)| r.id.side == Side::Main) {
            first.entry(&r.id).and_modify(|t| *t = (*t).min(*at)).or_insert(*at);
        }
        let mut latencies = vec![Vec::new(); buckets];
        // Net change of the in-flight count within each bucket: +1 as an input is generated,
        // -1 as its output is first committed.
        let mut delta = vec![0i64; buckets];
        for (id, want) in run.expected.iter() {
            let ready = want.ready_ms.saturating_sub(run.base_time_ms);
            delta[index(ready)] += 1;
            if let Some(&at) = first.get(id) {
                latencies[index(at)].push(at.saturating_sub(ready));
                delta[index(at)] -= 1;
            }
        }
        let mut level = 0i64;
        let in_flight = delta
            .iter()
            .map(|d| {
                level += d;
                assert!(level >= 0, "more outputs committed than inputs generated");
                level as u64
            })
            .collect();
        Flows { latencies, in_flight }
    }
}

/// Nearest-rank p50 and p99.
fn percentiles(values: &[u64]) -> (Option<u64>, Option<u64>) {
    if values.is_empty() {
        return (None, None);
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    (Some(rank(0.50)), Some(rank(0.99)))
}

/// Per bucket, the state size of the latest checkpoint completed by its end.
fn state_bytes(spans: &[CheckpointSpan], b: &Buckets) -> Vec<u64> {
    let mut completed: Vec<(u64, u64)> =
        spans.iter().filter_map(|s| Some((s.ended_at_ms?, s.state_bytes?))).collect();
    completed.sort_by_key(|&(at, _)| at);
    let mut next = completed.iter().peekable();
    let mut current = 0;
    (0..b.count as u64)
        .map(|i| {
            let end = (i + 1) * b.width_ms;
            while let Some(&(_, bytes)) = next.next_if(|&&(at, _)| at < end) {
                current = bytes;
            }
            current
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_round_and_few() {
        assert_eq!(bucket_ms(0), 10);
        assert_eq!(bucket_ms(2_000), 10);
        assert_eq!(bucket_ms(2_001), 20);
        assert_eq!(bucket_ms(60_000), 500);
        assert_eq!(bucket_ms(100_000_000), 500_000);
    }

    #[test]
    fn rates_average_over_a_trailing_window() {
        assert_eq!(rates(&[10, 0, 0, 20], 1, 10), [1000.0, 0.0, 0.0, 2000.0]);
        assert_eq!(rates(&[10, 0, 0, 20], 2, 10), [1000.0, 500.0, 0.0, 1000.0]);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentiles(&[]), (None, None));
        assert_eq!(percentiles(&[7]), (Some(7), Some(7)));
        let hundred: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentiles(&hundred), (Some(50), Some(99)));
    }

    #[test]
    fn state_size_steps_at_each_completed_checkpoint() {
        let span = |id, end, outcome: &str, bytes| CheckpointSpan {
            id,
            started_at_ms: 0,
            ended_at_ms: end,
            outcome: outcome.into(),
            state_bytes: bytes,
        };
        let spans = [
            span(1, Some(15), "completed", Some(100)),
            span(2, Some(25), "aborted", None),
            span(3, Some(35), "completed", Some(300)),
            span(4, None, "unfinished", None),
        ];
        assert_eq!(state_bytes(&spans, &Buckets { width_ms: 10, count: 5 }), [0, 100, 100, 300, 300]);
    }
}
