//! Keyed state: the one state backend every stateful operator (built-in or user-written) keeps
//! its state in, so that snapshots, restores and replication are the same for all of them.
//!
//! State is a persistent ordered map [`Slot`] → encoded value (the SDK's typed descriptors
//! read and write it through [`Store`]) plus the event-time timers, each with the cause of the
//! input that set it, the subtask's input watermark and, per partition, the next log offset
//! not yet applied. A snapshot is an O(1) copy-on-write clone (`imbl`), encoded and written to
//! the store while processing goes on. Under passive replication every mutation is also
//! logged, and the log is shipped to standbys as [`Changes`] after each batch.

use crate::sdk::Blob;
use std::collections::BTreeMap;

use imbl::OrdMap;

use crate::checkpoint::StateSnapshot;
use crate::record::{Cause, KeyBytes, StreamRecord};
pub use crate::sdk::state::{Slot, Store, TimerKey};

/// One mutation, as logged for standbys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(Slot, Blob),
    Remove(Slot),
    SetTimer(TimerKey, Cause),
    DeleteTimer(TimerKey),
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
    pub entries: OrdMap<Slot, Blob>,
    /// Each timer with the cause of the input that set it first.
    pub timers: OrdMap<TimerKey, Cause>,
    /// Per partition, the next offset not yet applied: a few entries, written for every
    /// record, so a plain map (cloned whole with a snapshot) rather than a shared one.
    pub offsets: BTreeMap<u32, u64>,
    /// The input watermark: no record with an earlier event time is expected.
    pub watermark: u64,
}

impl View {
    /// Applies a changelog entry, in order.
    pub fn apply(&mut self, changes: &Changes) {
        for change in &changes.changes {
            match change {
                Change::Put(k, v) => _ = self.entries.insert(k.clone(), v.clone()),
                Change::Remove(k) => _ = self.entries.remove(k),
                Change::SetTimer(t, c) => _ = self.timers.insert(t.clone(), *c),
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
            entries: self.entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            timers: self.timers.iter().map(|(t, c)| (t.clone(), *c)).collect(),
            offsets: self.offsets.iter().map(|(&p, &o)| (p, o)).collect(),
            watermark: self.watermark,
            in_flight,
        }
    }

    /// A view from a stored snapshot (its in-flight records are not part of it).
    pub fn decode(snapshot: &StateSnapshot) -> Self {
        View {
            entries: snapshot.entries.iter().cloned().collect(),
            timers: snapshot.timers.iter().cloned().collect(),
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

impl Store for KeyedState {
    fn get(&self, slot: &Slot) -> Option<Blob> {
        self.view.entries.get(slot).cloned()
    }

    fn put(&mut self, slot: Slot, value: Blob) {
        if let Some(log) = &mut self.log {
            log.push(Change::Put(slot.clone(), value.clone()));
        }
        self.view.entries.insert(slot, value);
    }

    fn update(&mut self, slot: &Slot, f: &mut dyn FnMut(Option<&Blob>) -> Blob) {
        let Some(value) = self.view.entries.get_mut(slot) else {
            let value = f(None);
            return self.put(slot.clone(), value);
        };
        *value = f(Some(value));
        if let Some(log) = &mut self.log {
            log.push(Change::Put(slot.clone(), value.clone()));
        }
    }

    fn remove(&mut self, slot: &Slot) {
        if self.view.entries.remove(slot).is_some() {
            if let Some(log) = &mut self.log {
                log.push(Change::Remove(slot.clone()));
            }
        }
    }

    fn range(&self, key: &KeyBytes, ns: u32) -> Vec<(Blob, Blob)> {
        let from = Slot { key: key.clone(), ns, sub: Blob::new() };
        self.view
            .entries
            .range(from..)
            .take_while(|(s, _)| s.key == *key && s.ns == ns)
            .map(|(s, v)| (s.sub.clone(), v.clone()))
            .collect()
    }

    fn set_timer(&mut self, timer: TimerKey, cause: Cause) {
        if self.view.timers.contains_key(&timer) {
            return;
        }
        if let Some(log) = &mut self.log {
            log.push(Change::SetTimer(timer.clone(), cause));
        }
        self.view.timers.insert(timer, cause);
    }

    fn delete_timer(&mut self, timer: &TimerKey) {
        if self.view.timers.remove(timer).is_some() {
            if let Some(log) = &mut self.log {
                log.push(Change::DeleteTimer(timer.clone()));
            }
        }
    }
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

    /// Removes and returns the earliest timer due at `watermark`, with the cause that set it.
    pub fn pop_due(&mut self, watermark: u64) -> Option<(TimerKey, Cause)> {
        let (first, cause) = self.view.timers.get_min()?;
        let cause = *cause;
        if first.at_ms > watermark {
            return None;
        }
        let first = first.clone();
        self.delete_timer(&first);
        Some((first, cause))
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
        let next = self.view.offsets.entry(partition).or_insert(0);
        *next = (*next).max(offset + 1);
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

    fn k(key: u64, ns: u32, sub: u64) -> Slot {
        let sub = if sub == 0 { Blob::new() } else { crate::sdk::codec::encode(&sub) };
        Slot { key: KeyBytes::of(&key), ns, sub }
    }

    fn v(x: i64) -> Blob {
        crate::sdk::codec::encode(&x)
    }

    fn timer(at_ms: u64, key: u64) -> TimerKey {
        TimerKey { at_ms, key: KeyBytes::of(&key), tag: 0 }
    }

    const CAUSE: Cause = Cause { producer: 1, seq: 2 };

    #[test]
    fn a_logged_state_replays_onto_a_view() {
        let mut primary = KeyedState::new(View::default(), true);
        primary.put(k(1, 0, 0), v(1));
        primary.put(k(1, 1, 5), v(3));
        primary.set_timer(timer(10, 1), CAUSE);
        primary.remove(&k(1, 0, 0));
        primary.applied(2, 7);
        primary.advance_watermark(4);
        let mut standby = View::default();
        standby.apply(&primary.take_changes([2].into_iter()).unwrap());
        assert_eq!(&standby, primary.view());
        assert!(primary.take_changes([2].into_iter()).unwrap().changes.is_empty());
    }

    #[test]
    fn an_update_is_a_get_then_a_put_logged_and_unseen_by_snapshots() {
        let mut s = KeyedState::new(View::default(), true);
        let add = |by: i64| {
            move |old: Option<&Blob>| v(old.map_or(0, |b| crate::sdk::codec::decode::<i64>(b)) + by)
        };
        s.update(&k(4, 0, 0), &mut add(2));
        let before = s.snapshot();
        s.update(&k(4, 0, 0), &mut add(3));
        assert_eq!(s.get(&k(4, 0, 0)), Some(v(5)));
        assert_eq!(before.entries.get(&k(4, 0, 0)), Some(&v(2)), "the snapshot keeps its value");
        let mut standby = View::default();
        standby.apply(&s.take_changes(std::iter::empty()).unwrap());
        assert_eq!(standby.entries, s.view().entries, "both updates are in the changelog");
    }

    #[test]
    fn snapshots_do_not_see_later_writes_and_round_trip() {
        let mut s = KeyedState::default();
        s.put(k(3, 0, 9), v(-1));
        s.set_timer(timer(8, 3), CAUSE);
        let view = s.snapshot();
        s.put(k(3, 0, 9), v(5));
        let snapshot = view.encode(Vec::new());
        assert_eq!(View::decode(&StateSnapshot::decode(&snapshot.encode()).unwrap()), view);
    }

    #[test]
    fn timers_pop_in_order_up_to_the_watermark_with_the_cause_that_set_them() {
        let mut s = KeyedState::default();
        for (at, key) in [(5, 2), (3, 9), (5, 1), (8, 0)] {
            s.set_timer(timer(at, key), Cause { producer: 0, seq: key });
        }
        s.set_timer(timer(3, 9), CAUSE);
        let due: Vec<(u64, u64)> =
            std::iter::from_fn(|| s.pop_due(5)).map(|(t, c)| (t.at_ms, c.seq)).collect();
        assert_eq!(due.len(), 3);
        assert_eq!(due[0], (3, 9), "the first setter's cause stays");
        assert!(due[1..].iter().all(|&(at, _)| at == 5), "then the two at 5, in key-hash order");
        let range = {
            s.put(k(1, 2, 4), v(0));
            s.put(k(1, 2, 1), v(0));
            s.put(k(1, 3, 0), v(0));
            s.range(&KeyBytes::of(&1u64), 2).len()
        };
        assert_eq!(range, 2);
    }
}
