//! The checkpoint-consistency checker: a completed checkpoint must be a consistent cut.
//!
//! For each completed checkpoint, the union of its stateful subtasks' states — plus the
//! in-flight records an unaligned checkpoint stored, applied on top — must equal the reference
//! state after consuming exactly the input its source positions cover: for every partition, the
//! log's records below the recorded offset. A snapshot that took records from after its barrier,
//! or missed some from before, differs.
//!
//! Under replicated recovery a stateful subtask skips input offsets it already applied, so its
//! state may run ahead of a restarted source's position: that subtask's cut in a partition is
//! then the offset it applied up to (a restore replays from the source position, and skips up
//! to there). The check takes, per subtask and partition, the further of the two.
//!
//! Only exactly-once checkpoints promise this; at-least-once ones are not consistent cuts. The
//! reference state here is the running aggregate's (key → count and sum, in namespace 0), so
//! the check runs for pipelines that give its model (`Pipeline::consistency_model`).

use std::collections::BTreeMap;

use faultline_engine::checkpoint::{CheckpointMeta, StateSnapshot};
use faultline_engine::operators::builtin::running::Running;
use faultline_engine::operators::builtin::Synthetic;
use faultline_engine::operators::key_by::subtask_for_key;
use faultline_engine::record::{KeyBytes, LogRecord, Payload, StreamRecord};
use faultline_engine::sdk::codec::decode;
use faultline_engine::sdk::state::namespace;
use faultline_reports::Violation;

/// A completed checkpoint as the store held it when it completed.
#[derive(Clone, Debug)]
pub struct CapturedCheckpoint {
    pub meta: CheckpointMeta,
    /// Each stateful subtask's state, by subtask index.
    pub states: Vec<(u32, StateSnapshot)>,
}

type State = BTreeMap<u64, (u64, i64)>;

/// A key whose `(count, sum)` differs: the reference's and the snapshot's (absent: `None`).
type Difference = (u64, Option<(u64, i64)>, Option<(u64, i64)>);

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 1] = ["checkpoint-inconsistent"];

/// Checks every captured checkpoint against the partitions' logs.
pub fn check(
    checkpoints: &[CapturedCheckpoint],
    logs: &BTreeMap<u32, Vec<LogRecord>>,
    model: &dyn Fn(i64) -> Option<i64>,
) -> Vec<Violation> {
    let mut reference = Reference::new(logs, model);
    let mut bad = Vec::new();
    for c in checkpoints {
        if let Err(why) = check_one(c, &mut reference) {
            bad.push(format!("checkpoint {}: {why}", c.meta.id));
        }
    }
    match bad.first() {
        None => Vec::new(),
        Some(first) => vec![Violation {
            invariant: "checkpoint-inconsistent".into(),
            detail: format!("{} of {} checkpoints; first: {first}", bad.len(), checkpoints.len()),
        }],
    }
}

fn check_one(c: &CapturedCheckpoint, reference: &mut Reference<'_>) -> Result<(), String> {
    let positions: BTreeMap<u32, u64> =
        c.meta.tasks.iter().flat_map(|t| &t.positions).map(|p| (p.partition, p.offset)).collect();
    if positions.len() != reference.logs.len() {
        return Err(format!("positions cover {} of {} partitions", positions.len(), reference.logs.len()));
    }
    let ahead = c
        .states
        .iter()
        .flat_map(|(_, s)| &s.offsets)
        .any(|(p, o)| positions.get(p).is_some_and(|pos| o > pos));
    let expected = match ahead {
        false => reference.state_at(&positions)?,
        true => reference.state_per_subtask(&positions, &c.states),
    };
    let actual = snapshot_state(&c.states);
    if let Some((key, want, got)) = first_difference(&expected, &actual) {
        return Err(format!("key {key}: reference (count, sum) {want:?}, snapshot {got:?}"));
    }
    Ok(())
}

/// The reference state per partition, advanced incrementally from checkpoint to checkpoint.
/// A key lives in one partition, so the whole state is the union of the partitions' states;
/// a position behind a partition's cursor (a later checkpoint after a rollback) recomputes
/// that partition from its start.
struct Reference<'a> {
    logs: &'a BTreeMap<u32, Vec<LogRecord>>,
    model: &'a dyn Fn(i64) -> Option<i64>,
    cursors: BTreeMap<u32, (usize, State)>,
}

impl<'a> Reference<'a> {
    fn new(logs: &'a BTreeMap<u32, Vec<LogRecord>>, model: &'a dyn Fn(i64) -> Option<i64>) -> Self {
        Reference { logs, model, cursors: BTreeMap::new() }
    }

    /// The running aggregate's state after each partition's records below its position.
    fn state_at(&mut self, positions: &BTreeMap<u32, u64>) -> Result<State, String> {
        let mut state = State::new();
        for (&partition, &offset) in positions {
            let log = &self.logs[&partition];
            let offset = offset as usize;
            if offset > log.len() {
                return Err(format!("partition {partition}: position {offset} past the log's {}", log.len()));
            }
            let (cursor, partial) = self.cursors.entry(partition).or_default();
            if offset < *cursor {
                (*cursor, *partial) = (0, State::new());
            }
            apply(&log[*cursor..offset], self.model, partial);
            *cursor = offset;
            state.extend(partial.iter().map(|(&k, &v)| (k, v)));
        }
        Ok(state)
    }
}

impl Reference<'_> {
    /// The state when each subtask's cut in a partition is the further of the source position
    /// and the offset the subtask applied up to; each subtask's keys are taken from its cuts.
    fn state_per_subtask(&self, positions: &BTreeMap<u32, u64>, states: &[(u32, StateSnapshot)]) -> State {
        let parallelism = states.len() as u32;
        let mut state = State::new();
        for (subtask, snapshot) in states {
            let applied: BTreeMap<u32, u64> = snapshot.offsets.iter().copied().collect();
            for (&partition, &position) in positions {
                let log = &self.logs[&partition];
                let cut =
                    (position.max(applied.get(&partition).copied().unwrap_or(0)) as usize).min(log.len());
                let mut partial = State::new();
                apply(&log[..cut], self.model, &mut partial);
                let owned = partial
                    .into_iter()
                    .filter(|&(k, _)| subtask_for_key(KeyBytes::of(&k).hash, parallelism) == *subtask);
                state.extend(owned);
            }
        }
        state
    }
}

/// Folds `records` into the running aggregate's state; `model` is the synthetic map and filter.
fn apply(records: &[LogRecord], model: &dyn Fn(i64) -> Option<i64>, state: &mut State) {
    for r in records {
        let Payload::Data(e) = &r.payload else { continue };
        let input: Synthetic = decode(&e.value);
        if let Some(value) = model(input.value) {
            let (count, sum) = state.entry(decode(&e.key.bytes)).or_insert((0, 0));
            *count += 1;
            *sum = sum.wrapping_add(value);
        }
    }
}

/// An in-flight record (mapped and filtered at its source already): its key and value.
fn in_flight(r: &StreamRecord) -> (u64, i64) {
    (decode(&r.key.bytes), decode::<Synthetic>(&r.value).value)
}

/// The union of the subtasks' states, with their in-flight records applied.
fn snapshot_state(states: &[(u32, StateSnapshot)]) -> State {
    let mut state = State::new();
    for (_, s) in states {
        let total = namespace("total");
        for (slot, v) in s.entries.iter().filter(|(slot, _)| slot.ns == total && slot.sub.is_empty()) {
            let key: u64 = decode(&slot.key.bytes);
            let Running { count, sum } = decode(v);
            let previous = state.insert(key, (count, sum));
            assert!(previous.is_none(), "key {key} in two subtasks' state: the key-by exchange is broken");
        }
    }
    for (key, value) in states.iter().flat_map(|(_, s)| &s.in_flight).map(in_flight) {
        let (count, sum) = state.entry(key).or_insert((0, 0));
        *count += 1;
        *sum = sum.wrapping_add(value);
    }
    state
}

fn first_difference(a: &State, b: &State) -> Option<Difference> {
    let keys: std::collections::BTreeSet<u64> = a.keys().chain(b.keys()).copied().collect();
    keys.into_iter().map(|k| (k, a.get(&k).copied(), b.get(&k).copied())).find(|(_, x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::checkpoint::{SourcePosition, TaskSnapshot};
    use faultline_engine::job::TaskId;
    use faultline_engine::record::{Cause, Event};
    use faultline_engine::sdk::codec::encode;
    use faultline_engine::state::Slot;

    fn synthetic(id: u64, value: i64) -> faultline_engine::sdk::Blob {
        encode(&Synthetic { id, kind: 0, value })
    }

    fn log() -> BTreeMap<u32, Vec<LogRecord>> {
        let r = |seq: u64, key: u64, value| LogRecord {
            producer: 0,
            seq,
            stream_time_ms: 0,
            payload: Payload::Data(Event {
                id: seq,
                key: KeyBytes::of(&key),
                value: synthetic(seq, value),
                event_time_ms: 0,
            }),
        };
        BTreeMap::from([(0, vec![r(0, 1, 5), r(1, 2, 7), r(2, 1, 1)])])
    }

    /// The identity map and no filter.
    fn pipeline() -> &'static dyn Fn(i64) -> Option<i64> {
        &Some
    }

    fn captured(
        offset: u64,
        entries: Vec<(u64, u64, i64)>,
        in_flight: Vec<StreamRecord>,
    ) -> CapturedCheckpoint {
        let source = TaskSnapshot {
            task: TaskId { chain: 0, subtask: 0 },
            positions: vec![SourcePosition { partition: 0, offset, ended: 0, max_event_ms: 0 }],
            state: None,
        };
        let entries = entries
            .into_iter()
            .map(|(key, count, sum)| {
                let slot = Slot {
                    key: KeyBytes::of(&key),
                    ns: namespace("total"),
                    sub: faultline_engine::sdk::Blob::new(),
                };
                (slot, encode(&Running { count, sum }))
            })
            .collect();
        let state = StateSnapshot { entries, in_flight, ..StateSnapshot::default() };
        CapturedCheckpoint {
            meta: CheckpointMeta { id: 4, epoch: 1, tasks: vec![source] },
            states: vec![(0, state)],
        }
    }

    #[test]
    fn a_consistent_cut_passes() {
        let c = captured(2, vec![(1, 1, 5), (2, 1, 7)], vec![]);
        assert!(check(&[c], &log(), pipeline()).is_empty());
    }

    #[test]
    fn an_unaligned_cut_passes_with_its_in_flight_records() {
        let late =
            StreamRecord::derived(KeyBytes::of(&2u64), synthetic(1, 7), 0, Cause { producer: 0, seq: 1 });
        let c = captured(2, vec![(1, 1, 5)], vec![late]);
        assert!(check(&[c], &log(), pipeline()).is_empty());
    }

    #[test]
    fn a_state_that_applied_past_a_restarted_source_is_cut_at_its_offsets() {
        let mut c = captured(1, vec![(1, 2, 6), (2, 1, 7)], vec![]);
        c.states[0].1.offsets = vec![(0, 3)];
        assert!(check(&[c.clone()], &log(), pipeline()).is_empty());
        c.states[0].1.offsets = vec![(0, 2)];
        assert_eq!(check(&[c], &log(), pipeline()).len(), 1, "key 1's second record is past offset 2");
    }

    #[test]
    fn a_snapshot_ahead_of_its_positions_is_caught() {
        // The state already counts the record at offset 2, but the source position says 2.
        let c = captured(2, vec![(1, 2, 6), (2, 1, 7)], vec![]);
        let v = check(&[c], &log(), pipeline());
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("key 1"), "{}", v[0].detail);
    }

    #[test]
    fn a_snapshot_missing_input_is_caught() {
        let c = captured(3, vec![(1, 1, 5), (2, 1, 7)], vec![]);
        assert_eq!(check(&[c], &log(), pipeline()).len(), 1);
    }
}
