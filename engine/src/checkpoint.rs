//! Checkpoints: what a subtask's snapshot holds, what a completed checkpoint's metadata holds,
//! where both live in the store, and their byte encodings.
//!
//! Store layout (keys are files on the store node's disk):
//! - `checkpoints/{id}/state-{chain}-{subtask}`: one stateful subtask's keyed state, plus the
//!   in-flight records an unaligned barrier overtook;
//! - `checkpoints/{id}/meta`: the completed checkpoint — epoch, every source position, every
//!   state handle, written only once every subtask acknowledged;
//! - `history/{id}`: one empty object per completed checkpoint, never garbage-collected, so the
//!   checkers can tell which checkpoints ever completed.
//!
//! Ids are zero-padded so that listing a prefix returns checkpoints in order.

use crate::codec::{self, Reader};
use crate::job::TaskId;
use crate::record::KeyBytes;
use crate::record::StreamRecord;
use crate::state::{Slot, TimerKey};

/// How far a source subtask has consumed one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcePosition {
    pub partition: u32,
    /// The next offset to read: every record below it was processed.
    pub offset: u64,
    /// End-of-stream records seen below `offset`.
    pub ended: u32,
    /// The greatest event time read below `offset` (0: none): the partition's watermark state.
    pub max_event_ms: u64,
}

/// Where a subtask's state snapshot is in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateHandle {
    pub key: String,
    pub bytes: u64,
}

/// One subtask's part of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSnapshot {
    pub task: TaskId,
    pub positions: Vec<SourcePosition>,
    pub state: Option<StateHandle>,
}

/// A completed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointMeta {
    pub id: u64,
    pub epoch: u64,
    pub tasks: Vec<TaskSnapshot>,
}

/// A keyed state snapshot (see `state::View`): the values, the timers, per partition the next
/// offset not yet applied, the input watermark, and the in-flight records it must replay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateSnapshot {
    pub entries: Vec<(Slot, crate::sdk::Blob)>,
    /// Each timer with the cause of the input that set it.
    pub timers: Vec<(TimerKey, crate::record::Cause)>,
    pub offsets: Vec<(u32, u64)>,
    pub watermark: u64,
    pub in_flight: Vec<StreamRecord>,
}

/// Where the store keeps every checkpoint's files, each checkpoint under its own prefix.
pub const CHECKPOINTS_PREFIX: &str = "checkpoints/";

pub fn checkpoint_prefix(id: u64) -> String {
    format!("{CHECKPOINTS_PREFIX}{id:020}/")
}

/// The checkpoint a file of the store belongs to, if it is a checkpoint's.
pub fn checkpoint_of(file: &str) -> Option<u64> {
    let (id, _) = file.strip_prefix(CHECKPOINTS_PREFIX)?.split_once('/')?;
    id.parse().ok()
}

pub fn meta_key(id: u64) -> String {
    format!("{}meta", checkpoint_prefix(id))
}

pub fn state_key(id: u64, task: TaskId) -> String {
    format!("{}state-{}-{}", checkpoint_prefix(id), task.chain, task.subtask)
}

pub const HISTORY_PREFIX: &str = "history/";

/// Where an at-most-once source commits its position in `partition` before processing.
pub fn offsets_key(partition: u32) -> String {
    format!("offsets/{partition:010}")
}

/// An at-most-once source's committed position, with the writer epoch of the source that
/// owns it. A source starting claims the key for its epoch (by compare-and-set) before it
/// reads anything, and commits every later position by compare-and-set from the bytes it last
/// wrote: a source of an older epoch still running (not yet cancelled, or cut off) can then
/// neither commit nor process another batch, so no input is processed by both.
pub fn encode_claim(epoch: u64, p: &SourcePosition) -> Vec<u8> {
    let mut body = Vec::with_capacity(32);
    body.extend_from_slice(&epoch.to_le_bytes());
    put_position(&mut body, p);
    codec::framed(&body)
}

pub fn decode_claim(bytes: &[u8]) -> Option<(u64, SourcePosition)> {
    let mut r = Reader::new(codec::first_frame(bytes)?);
    let epoch = r.u64();
    Some((epoch, get_position(&mut r)))
}

/// What a source of writer epoch `epoch` starting at `start` makes of the key's `current`
/// bytes: the position to resume from and the bytes that claim it, or `Err` with the newer
/// epoch that owns it (this source is a zombie).
pub fn claim(
    current: Option<&[u8]>,
    epoch: u64,
    start: SourcePosition,
) -> Result<(SourcePosition, Vec<u8>), u64> {
    let committed = current.and_then(decode_claim);
    assert!(
        current.is_none() || committed.is_some(),
        "undecodable offsets for partition {}",
        start.partition
    );
    let position = match committed {
        Some((owner, _)) if owner > epoch => return Err(owner),
        Some((_, committed)) => committed,
        None => start,
    };
    assert_eq!(position.partition, start.partition, "offsets of another partition");
    Ok((position, encode_claim(epoch, &position)))
}

fn put_position(out: &mut Vec<u8>, p: &SourcePosition) {
    out.extend_from_slice(&p.partition.to_le_bytes());
    out.extend_from_slice(&p.offset.to_le_bytes());
    out.extend_from_slice(&p.ended.to_le_bytes());
    out.extend_from_slice(&p.max_event_ms.to_le_bytes());
}

fn get_position(r: &mut Reader<'_>) -> SourcePosition {
    SourcePosition { partition: r.u32(), offset: r.u64(), ended: r.u32(), max_event_ms: r.u64() }
}

pub fn history_key(id: u64) -> String {
    format!("{HISTORY_PREFIX}{id:020}")
}

/// The checkpoint id in a history key.
pub fn history_id(key: &str) -> Option<u64> {
    key.strip_prefix(HISTORY_PREFIX)?.parse().ok()
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn get_str(r: &mut Reader<'_>) -> String {
    let len = r.u32() as usize;
    String::from_utf8(r.bytes(len).to_vec()).expect("keys are written as utf-8")
}

impl CheckpointMeta {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&self.id.to_le_bytes());
        body.extend_from_slice(&self.epoch.to_le_bytes());
        body.extend_from_slice(&(self.tasks.len() as u32).to_le_bytes());
        for t in &self.tasks {
            t.encode_into(&mut body);
        }
        codec::framed(&body)
    }

    /// Decodes a meta object; `None` if it is torn or not a meta object.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(codec::first_frame(bytes)?);
        let (id, epoch) = (r.u64(), r.u64());
        let n = r.u32();
        let tasks = (0..n).map(|_| TaskSnapshot::decode_from(&mut r)).collect();
        Some(CheckpointMeta { id, epoch, tasks })
    }
}

impl TaskSnapshot {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.task.chain.to_le_bytes());
        out.extend_from_slice(&self.task.subtask.to_le_bytes());
        out.extend_from_slice(&(self.positions.len() as u32).to_le_bytes());
        for p in &self.positions {
            put_position(out, p);
        }
        match &self.state {
            Some(h) => {
                out.push(1);
                put_str(out, &h.key);
                out.extend_from_slice(&h.bytes.to_le_bytes());
            }
            None => out.push(0),
        }
    }

    fn decode_from(r: &mut Reader<'_>) -> Self {
        let task = TaskId { chain: r.u32(), subtask: r.u32() };
        let n = r.u32();
        let positions = (0..n).map(|_| get_position(r)).collect();
        let state = (r.u8() == 1).then(|| StateHandle { key: get_str(r), bytes: r.u64() });
        TaskSnapshot { task, positions, state }
    }
}

impl StateSnapshot {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(32 + self.entries.len() * 48 + self.in_flight.len() * 97);
        body.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for (slot, value) in &self.entries {
            codec::put_bytes(&mut body, &slot.key.bytes);
            body.extend_from_slice(&slot.ns.to_le_bytes());
            codec::put_bytes(&mut body, &slot.sub);
            codec::put_bytes(&mut body, value);
        }
        body.extend_from_slice(&(self.timers.len() as u64).to_le_bytes());
        for (t, cause) in &self.timers {
            body.extend_from_slice(&t.at_ms.to_le_bytes());
            codec::put_bytes(&mut body, &t.key.bytes);
            body.extend_from_slice(&t.tag.to_le_bytes());
            codec::put_cause(&mut body, *cause);
        }
        body.extend_from_slice(&(self.offsets.len() as u64).to_le_bytes());
        for &(partition, offset) in &self.offsets {
            body.extend_from_slice(&partition.to_le_bytes());
            body.extend_from_slice(&offset.to_le_bytes());
        }
        body.extend_from_slice(&self.watermark.to_le_bytes());
        body.extend_from_slice(&(self.in_flight.len() as u64).to_le_bytes());
        for r in &self.in_flight {
            codec::put_stream_record(&mut body, r);
        }
        codec::framed(&body)
    }

    /// Decodes a state object; `None` if it is torn.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(codec::first_frame(bytes)?);
        let n = r.u64();
        let entries = (0..n)
            .map(|_| {
                let key = KeyBytes::from_encoded(r.byte_string());
                let slot = Slot { key, ns: r.u32(), sub: r.byte_string() };
                (slot, r.byte_string())
            })
            .collect();
        let t = r.u64();
        let timers = (0..t)
            .map(|_| {
                let at_ms = r.u64();
                let key = KeyBytes::from_encoded(r.byte_string());
                (TimerKey { at_ms, key, tag: r.u64() }, codec::get_cause(&mut r))
            })
            .collect();
        let o = r.u64();
        let offsets = (0..o).map(|_| (r.u32(), r.u64())).collect();
        let watermark = r.u64();
        let m = r.u64();
        let in_flight = (0..m).map(|_| codec::get_stream_record(&mut r)).collect();
        Some(StateSnapshot { entries, timers, offsets, watermark, in_flight })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> SourcePosition {
        SourcePosition { partition: 3, offset, ended: 0, max_event_ms: 0 }
    }

    #[test]
    fn a_checkpoints_files_are_named_by_its_id() {
        assert_eq!(checkpoint_of(&meta_key(7)), Some(7));
        assert_eq!(checkpoint_of(&state_key(12, TaskId { chain: 1, subtask: 0 })), Some(12));
        assert_eq!(checkpoint_of(&history_key(7)), None);
        assert_eq!(checkpoint_of("checkpoints/x/meta"), None);
    }

    #[test]
    fn a_source_claims_the_committed_position_unless_a_newer_epoch_owns_it() {
        let (p, fresh) = claim(None, 5, at(10)).unwrap();
        assert_eq!((p, decode_claim(&fresh)), (at(10), Some((5, at(10)))));
        let older = encode_claim(4, &at(30));
        let (p, claimed) = claim(Some(&older), 5, at(10)).unwrap();
        assert_eq!(
            (p, decode_claim(&claimed)),
            (at(30), Some((5, at(30)))),
            "resumes where the old epoch committed"
        );
        let newer = encode_claim(6, &at(40));
        assert_eq!(claim(Some(&newer), 5, at(10)), Err(6), "a zombie claims nothing");
        assert_eq!(
            claim(Some(&claimed), 5, at(10)).unwrap().0,
            at(30),
            "a restart in the same epoch resumes"
        );
    }

    #[test]
    fn meta_round_trips() {
        let meta = CheckpointMeta {
            id: 7,
            epoch: 2,
            tasks: vec![
                TaskSnapshot {
                    task: TaskId { chain: 0, subtask: 1 },
                    positions: vec![SourcePosition { partition: 3, offset: 99, ended: 1, max_event_ms: 5 }],
                    state: None,
                },
                TaskSnapshot {
                    task: TaskId { chain: 1, subtask: 0 },
                    positions: vec![],
                    state: Some(StateHandle {
                        key: state_key(7, TaskId { chain: 1, subtask: 0 }),
                        bytes: 40,
                    }),
                },
            ],
        };
        assert_eq!(CheckpointMeta::decode(&meta.encode()), Some(meta));
        assert_eq!(history_id(&history_key(42)), Some(42));
    }

    #[test]
    fn state_round_trips() {
        let cause = crate::record::Cause { producer: 1, seq: 5 };
        let key = KeyBytes::of(&1u64);
        let record = StreamRecord {
            partition: 2,
            offset: 77,
            stream_time_ms: 12,
            ..StreamRecord::derived(key.clone(), crate::sdk::Blob::from_static(b"-4"), 9, cause)
        };
        let slot =
            |ns, sub: &'static [u8]| Slot { key: key.clone(), ns, sub: crate::sdk::Blob::from_static(sub) };
        let state = StateSnapshot {
            entries: vec![
                (slot(2, b"3"), crate::sdk::Blob::from_static(b"2,-3")),
                (slot(0, b""), crate::sdk::Blob::new()),
            ],
            timers: vec![(TimerKey { at_ms: 4, key: key.clone(), tag: 9 }, cause)],
            offsets: vec![(2, 78)],
            watermark: 41,
            in_flight: vec![record],
        };
        assert_eq!(StateSnapshot::decode(&state.encode()), Some(state));
    }
}
