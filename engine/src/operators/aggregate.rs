//! The running aggregate: per key, the count and sum of every record seen so far.
//!
//! Each input record yields one output identified by `(key, count)`: the key's output sequence
//! number is its count, so the identity of an output does not depend on how keys interleave.

use std::collections::BTreeMap;

#[cfg(test)]
use crate::record::Cause;
use crate::record::{OutputId, OutputRecord, StreamRecord};

#[derive(Default)]
pub struct RunningAggregate {
    /// Keyed state: key → (count, sum).
    state: BTreeMap<u64, (u64, i64)>,
}

impl RunningAggregate {
    pub fn process(&mut self, record: &StreamRecord) -> OutputRecord {
        let (count, sum) = self.state.entry(record.key).or_insert((0, 0));
        *count += 1;
        *sum = sum.wrapping_add(record.value);
        let id = OutputId { key: record.key, seq: *count };
        OutputRecord { id, count: *count, sum: *sum, cause: record.cause }
    }

    pub fn keys(&self) -> usize {
        self.state.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sums_per_key() {
        let mut agg = RunningAggregate::default();
        let r =
            |key, value| StreamRecord { key, value, event_time_ms: 0, cause: Cause { producer: 0, seq: 0 } };
        agg.process(&r(1, 5));
        agg.process(&r(2, 7));
        let out = agg.process(&r(1, -2));
        assert_eq!(out.id, OutputId { key: 1, seq: 2 });
        assert_eq!((out.count, out.sum), (2, 3));
        assert_eq!(agg.keys(), 2);
    }
}
