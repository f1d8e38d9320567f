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

/// A copy-on-write view of everything the operator holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub state: KeyedState,
    /// Per partition, the next offset not yet applied.
    pub offsets: OrdMap<u32, u64>,
}

/// A changelog entry: the keys and offsets a batch of input changed, at their new values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub entries: Vec<(u64, u64, i64)>,
    pub offsets: Vec<(u32, u64)>,
}

#[derive(Default)]
pub struct RunningAggregate {
    view: View,
    /// Skip input at offsets already applied (replicated recovery replays input from the last
    /// commit, or from a restarted source, into copies that kept their state).
    dedup: bool,
}

impl RunningAggregate {
    /// State restored from a checkpoint (its in-flight records are the caller's to replay).
    pub fn restore(snapshot: &StateSnapshot, dedup: bool) -> Self {
        let state = snapshot.entries.iter().map(|&(key, count, sum)| (key, (count, sum))).collect();
        let offsets = snapshot.offsets.iter().copied().collect();
        RunningAggregate { view: View { state, offsets }, dedup }
    }

    pub fn from_view(view: View, dedup: bool) -> Self {
        RunningAggregate { view, dedup }
    }

    /// Applies one record; `None` if it was applied before (with dedup on).
    pub fn process(&mut self, record: &StreamRecord) -> Option<OutputRecord> {
        let next = self.view.offsets.get(&record.partition).copied().unwrap_or(0);
        if self.dedup && record.offset < next {
            return None;
        }
        self.view.offsets.insert(record.partition, next.max(record.offset + 1));
        let (count, sum) = self.view.state.get(&record.key).copied().unwrap_or((0, 0));
        let (count, sum) = (count + 1, sum.wrapping_add(record.value));
        self.view.state.insert(record.key, (count, sum));
        let id = OutputId { key: record.key, seq: count };
        Some(OutputRecord { id, count, sum, cause: record.cause })
    }

    /// A copy-on-write view of the state as it is now.
    pub fn snapshot(&self) -> View {
        self.view.clone()
    }

    /// The changelog entry for `outputs`, produced by records that ended at `offsets`.
    pub fn changes(&self, outputs: &[OutputRecord], partitions: impl Iterator<Item = u32>) -> Changes {
        let entries = outputs.iter().map(|o| (o.id.key, o.count, o.sum)).collect();
        let mut offsets: Vec<(u32, u64)> =
            partitions.filter_map(|p| self.view.offsets.get(&p).map(|&o| (p, o))).collect();
        offsets.sort_unstable();
        offsets.dedup();
        Changes { entries, offsets }
    }

    pub fn keys(&self) -> usize {
        self.view.state.len()
    }
}

impl View {
    /// Applies a changelog entry, in order.
    pub fn apply(&mut self, changes: &Changes) {
        for &(key, count, sum) in &changes.entries {
            self.state.insert(key, (count, sum));
        }
        for &(partition, offset) in &changes.offsets {
            self.offsets.insert(partition, offset);
        }
    }

    /// Encodes the view (and the records it must replay) for the store.
    pub fn encode(&self, in_flight: Vec<StreamRecord>) -> StateSnapshot {
        let entries = self.state.iter().map(|(&key, &(count, sum))| (key, count, sum)).collect();
        let offsets = self.offsets.iter().map(|(&p, &o)| (p, o)).collect();
        StateSnapshot { entries, offsets, in_flight }
    }

    /// A view from a stored snapshot (its in-flight records are not part of it).
    pub fn decode(snapshot: &StateSnapshot) -> Self {
        RunningAggregate::restore(snapshot, false).view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Cause;

    fn at(key: u64, value: i64, offset: u64) -> StreamRecord {
        StreamRecord {
            key,
            value,
            event_time_ms: 0,
            cause: Cause { producer: 0, seq: 0 },
            partition: 0,
            offset,
        }
    }

    fn r(key: u64, value: i64) -> StreamRecord {
        at(key, value, 0)
    }

    #[test]
    fn counts_and_sums_per_key() {
        let mut agg = RunningAggregate::default();
        agg.process(&r(1, 5));
        agg.process(&r(2, 7));
        let out = agg.process(&r(1, -2)).unwrap();
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
        let snapshot = view.encode(Vec::new());
        assert_eq!(snapshot.entries, vec![(1, 1, 5)]);
        let mut restored = RunningAggregate::restore(&snapshot, false);
        assert_eq!(restored.process(&r(1, 1)).unwrap().sum, 6);
    }

    #[test]
    fn dedup_skips_applied_offsets_and_changes_replay_onto_a_view() {
        let mut primary = RunningAggregate::from_view(View::default(), true);
        let mut standby = View::default();
        let outputs: Vec<_> =
            [at(1, 5, 0), at(2, 1, 1), at(1, 2, 2)].iter().filter_map(|x| primary.process(x)).collect();
        standby.apply(&primary.changes(&outputs, [0].into_iter()));
        assert_eq!(standby, primary.snapshot());
        assert_eq!(primary.process(&at(1, 9, 1)), None, "offset 1 was applied");
        assert_eq!(primary.process(&at(1, 9, 3)).unwrap().sum, 16);
    }
}
