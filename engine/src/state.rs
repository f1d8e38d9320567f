//! Keyed state: the one state backend every stateful operator (built-in or user-written) keeps
//! its state in, so that snapshots, restores and replication are the same for all of them.
//!
//! State is a persistent ordered map `(key, namespace, sub) → [i64]` plus a set of event-time
//! timers, the subtask's input watermark and, per partition, the next log offset not yet applied.
//! A snapshot is an O(1) copy-on-write clone (`imbl`), encoded and written to the store while
//! processing goes on. Under passive replication every mutation is also logged, and the log is
//! shipped to standbys as [`Changes`] after each batch.

use imbl::{OrdMap, OrdSet};

use crate::checkpoint::StateSnapshot;
use crate::record::StreamRecord;

/// Where one value lives: the record key it is scoped to, an operator-chosen namespace (a kind
/// of state: a window's accumulator, a join side's buffer) and an operator-chosen sub-key
/// within it (a window's end, a buffered record's id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateKey {
    pub key: u64,
    pub ns: u32,
    pub sub: u64,
}

/// An event-time timer: fires for `key` once the input watermark reaches `at_ms`. Timers fire in
/// `(at_ms, key, tag)` order; setting one that is already set does nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub at_ms: u64,
    pub key: u64,
    pub tag: u64,
}

/// One mutation, as logged for standbys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(StateKey, Vec<i64>),
    Remove(StateKey),
    SetTimer(Timer),
    DeleteTimer(Timer),
}

/// A changelog entry: the mutations a batch of input made, in order, and where it left the
/// offsets and the watermark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub changes: Vec<Change>,
    pub offsets: Vec<(u32, u64)>,
    pub watermark: u64,
}

/// Everything a stateful subtask holds, as a cheap copy-on-write value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub entries: OrdMap<StateKey, Vec<i64>>,
    pub timers: OrdSet<Timer>,
    /// Per partition, the next offset not yet applied.
    pub offsets: OrdMap<u32, u64>,
    /// The input watermark: no record with an earlier event time is expected.
    pub watermark: u64,
}

impl View {
    /// Applies a changelog entry, in order.
    pub fn apply(&mut self, changes: &Changes) {
        for change in &changes.changes {
            match change {
                Change::Put(k, v) => _ = self.entries.insert(*k, v.clone()),
                Change::Remove(k) => _ = self.entries.remove(k),
                Change::SetTimer(t) => _ = self.timers.insert(*t),
                Change::DeleteTimer(t) => _ = self.timers.remove(t),
            }
        }
        for &(partition, offset) in &changes.offsets {
            self.offsets.insert(partition, offset);
        }
        self.watermark = self.watermark.max(changes.watermark);
    }

    /// Encodes the view (and the records it must replay) for the store.
    pub fn encode(&self, in_flight: Vec<StreamRecord>) -> StateSnapshot {
        StateSnapshot {
            entries: self.entries.iter().map(|(k, v)| (*k, v.clone())).collect(),
            timers: self.timers.iter().copied().collect(),
            offsets: self.offsets.iter().map(|(&p, &o)| (p, o)).collect(),
            watermark: self.watermark,
            in_flight,
        }
    }

    /// A view from a stored snapshot (its in-flight records are not part of it).
    pub fn decode(snapshot: &StateSnapshot) -> Self {
        View {
            entries: snapshot.entries.iter().cloned().collect(),
            timers: snapshot.timers.iter().copied().collect(),
            offsets: snapshot.offsets.iter().copied().collect(),
            watermark: snapshot.watermark,
        }
    }
}

/// The live state of a subtask: its view, and the mutation log when replicating.
#[derive(Default)]
pub struct KeyedState {
    view: View,
    log: Option<Vec<Change>>,
}

impl KeyedState {
    /// State starting from `view`; `logged` keeps a changelog for standbys.
    pub fn new(view: View, logged: bool) -> Self {
        KeyedState { view, log: logged.then(Vec::new) }
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// A copy-on-write snapshot of everything held now.
    pub fn snapshot(&self) -> View {
        self.view.clone()
    }

    pub fn get(&self, k: &StateKey) -> Option<&[i64]> {
        self.view.entries.get(k).map(Vec::as_slice)
    }

    pub fn put(&mut self, k: StateKey, value: Vec<i64>) {
        if let Some(log) = &mut self.log {
            log.push(Change::Put(k, value.clone()));
        }
        self.view.entries.insert(k, value);
    }

    pub fn remove(&mut self, k: &StateKey) {
        if self.view.entries.remove(k).is_some() {
            if let Some(log) = &mut self.log {
                log.push(Change::Remove(*k));
            }
        }
    }

    /// The entries of `key` in namespace `ns`, by sub-key.
    pub fn range(&self, key: u64, ns: u32) -> impl Iterator<Item = (u64, &[i64])> {
        let lo = StateKey { key, ns, sub: 0 };
        let hi = StateKey { key, ns, sub: u64::MAX };
        self.view.entries.range(lo..=hi).map(|(k, v)| (k.sub, v.as_slice()))
    }

    pub fn set_timer(&mut self, timer: Timer) {
        if self.view.timers.insert(timer).is_none() {
            if let Some(log) = &mut self.log {
                log.push(Change::SetTimer(timer));
            }
        }
    }

    pub fn delete_timer(&mut self, timer: Timer) {
        if self.view.timers.remove(&timer).is_some() {
            if let Some(log) = &mut self.log {
                log.push(Change::DeleteTimer(timer));
            }
        }
    }

    /// Removes and returns the earliest timer due at `watermark`.
    pub fn pop_due(&mut self, watermark: u64) -> Option<Timer> {
        let first = *self.view.timers.get_min()?;
        if first.at_ms > watermark {
            return None;
        }
        self.delete_timer(first);
        Some(first)
    }

    pub fn watermark(&self) -> u64 {
        self.view.watermark
    }

    /// Raises the watermark (it never goes back).
    pub fn advance_watermark(&mut self, watermark: u64) {
        self.view.watermark = self.view.watermark.max(watermark);
    }

    /// The next offset not yet applied in `partition`.
    pub fn next_offset(&self, partition: u32) -> u64 {
        self.view.offsets.get(&partition).copied().unwrap_or(0)
    }

    pub fn applied(&mut self, partition: u32, offset: u64) {
        let next = self.next_offset(partition).max(offset + 1);
        self.view.offsets.insert(partition, next);
    }

    /// The changelog since the last call, ending at the current offsets of `partitions`.
    pub fn take_changes(&mut self, partitions: impl Iterator<Item = u32>) -> Option<Changes> {
        let changes = std::mem::take(self.log.as_mut()?);
        let mut offsets: Vec<(u32, u64)> =
            partitions.filter_map(|p| self.view.offsets.get(&p).map(|&o| (p, o))).collect();
        offsets.sort_unstable();
        offsets.dedup();
        Some(Changes { changes, offsets, watermark: self.view.watermark })
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.view.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.view.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(key: u64, ns: u32, sub: u64) -> StateKey {
        StateKey { key, ns, sub }
    }

    #[test]
    fn a_logged_state_replays_onto_a_view() {
        let mut primary = KeyedState::new(View::default(), true);
        primary.put(k(1, 0, 0), vec![1, 2]);
        primary.put(k(1, 1, 5), vec![3]);
        primary.set_timer(Timer { at_ms: 10, key: 1, tag: 0 });
        primary.remove(&k(1, 0, 0));
        primary.applied(2, 7);
        primary.advance_watermark(4);
        let mut standby = View::default();
        standby.apply(&primary.take_changes([2].into_iter()).unwrap());
        assert_eq!(&standby, primary.view());
        assert!(primary.take_changes([2].into_iter()).unwrap().changes.is_empty());
    }

    #[test]
    fn snapshots_do_not_see_later_writes_and_round_trip() {
        let mut s = KeyedState::default();
        s.put(k(3, 0, 9), vec![-1]);
        let view = s.snapshot();
        s.put(k(3, 0, 9), vec![5]);
        let snapshot = view.encode(Vec::new());
        assert_eq!(View::decode(&StateSnapshot::decode(&snapshot.encode()).unwrap()), view);
    }

    #[test]
    fn timers_pop_in_order_up_to_the_watermark() {
        let mut s = KeyedState::default();
        for (at, key) in [(5, 2), (3, 9), (5, 1), (8, 0)] {
            s.set_timer(Timer { at_ms: at, key, tag: 0 });
        }
        let due: Vec<(u64, u64)> = std::iter::from_fn(|| s.pop_due(5)).map(|t| (t.at_ms, t.key)).collect();
        assert_eq!(due, [(3, 9), (5, 1), (5, 2)]);
        let range: Vec<u64> = {
            s.put(k(1, 2, 4), vec![]);
            s.put(k(1, 2, 1), vec![]);
            s.put(k(1, 3, 0), vec![]);
            s.range(1, 2).map(|(sub, _)| sub).collect()
        };
        assert_eq!(range, [1, 4]);
    }
}
