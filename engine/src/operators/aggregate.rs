//! The running aggregate: per key, the count and sum of every record seen so far.
//!
//! Each input record yields one output identified by `(key, count)`: the key's output sequence
//! number is its count, so the identity of an output does not depend on how keys interleave.
//!
//! Keyed state is a persistent map (`imbl::OrdMap`): [`RunningAggregate::snapshot`] is an O(1)
//! copy-on-write clone, so a checkpoint captures the state at its barrier while processing
//! goes on, and the copy is encoded and written to the store asynchronously.

use imbl::OrdMap;

use crate::checkpoint::StateSnapshot;
use crate::record::{OutputId, OutputRecord, StreamRecord};

/// Keyed state: key → (count, sum).
pub type KeyedState = OrdMap<u64, (u64, i64)>;

#[derive(Default)]
pub struct RunningAggregate {
    state: KeyedState,
}

impl RunningAggregate {
    /// State restored from a checkpoint (its in-flight records are the caller's to replay).
    pub fn restore(snapshot: &StateSnapshot) -> Self {
        let state = snapshot.entries.iter().map(|&(key, count, sum)| (key, (count, sum))).collect();
        RunningAggregate { state }
    }

    pub fn process(&mut self, record: &StreamRecord) -> OutputRecord {
        let (count, sum) = self.state.get(&record.key).copied().unwrap_or((0, 0));
        let (count, sum) = (count + 1, sum.wrapping_add(record.value));
        self.state.insert(record.key, (count, sum));
        let id = OutputId { key: record.key, seq: count };
        OutputRecord { id, count, sum, cause: record.cause }
    }

    /// A copy-on-write view of the state as it is now.
    pub fn snapshot(&self) -> KeyedState {
        self.state.clone()
    }

    pub fn keys(&self) -> usize {
        self.state.len()
    }
}

/// Encodes a state view (and the records it must replay) for the store.
pub fn encode(view: &KeyedState, in_flight: Vec<StreamRecord>) -> StateSnapshot {
    let entries = view.iter().map(|(&key, &(count, sum))| (key, count, sum)).collect();
    StateSnapshot { entries, in_flight }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Cause;

    fn r(key: u64, value: i64) -> StreamRecord {
        StreamRecord { key, value, event_time_ms: 0, cause: Cause { producer: 0, seq: 0 } }
    }

    #[test]
    fn counts_and_sums_per_key() {
        let mut agg = RunningAggregate::default();
        agg.process(&r(1, 5));
        agg.process(&r(2, 7));
        let out = agg.process(&r(1, -2));
        assert_eq!(out.id, OutputId { key: 1, seq: 2 });
        assert_eq!((out.count, out.sum), (2, 3));
        assert_eq!(agg.keys(), 2);
    }

    #[test]
    fn snapshot_is_unaffected_by_later_updates_and_restores() {
        let mut agg = RunningAggregate::default();
        agg.process(&r(1, 5));
        let view = agg.snapshot();
        agg.process(&r(1, 5));
        agg.process(&r(3, 1));
        let snapshot = encode(&view, Vec::new());
        assert_eq!(snapshot.entries, vec![(1, 1, 5)]);
        let mut restored = RunningAggregate::restore(&snapshot);
        assert_eq!(restored.process(&r(1, 1)).sum, 6);
    }
}
