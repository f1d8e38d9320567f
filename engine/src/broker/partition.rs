//! One broker's copy of one log partition: its durable file, an index over it, the high
//! watermark, and the producers' dedup state.
//!
//! Records live only in the partition's file, as Kafka's live in its segment files: the broker
//! keeps an index of the file's frames (one per appended batch) and reads ranges back when a
//! consumer or follower asks. Every frame records the leader epoch that appended its records,
//! so two replicas can find where their logs diverge (Kafka's leader-epoch cache, Raft's log
//! matching: records at the same offset with the same epoch are the same, and so is everything
//! before them). It owns the log's invariants:
//! - offsets are dense: the n-th record appended has offset n;
//! - an append is synced to disk before it counts toward the high watermark;
//! - the high watermark never goes back, and nothing below it is ever truncated;
//! - a producer's records enter in sequence order, each (producer, seq) at most once.
//!
//! It does not talk to the network: the broker node feeds it requests and sends what it returns.

use std::collections::BTreeMap;
use std::rc::Rc;

use tokio::sync::Notify;

use crate::codec::{self, RawLogRecords};
use crate::disk::DiskRef;
use crate::record::LogRecord;

/// What the leader knows of one producer on this partition.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProducerState {
    /// The sequence number the next new record must carry.
    pub next_seq: u64,
    /// The log offset just past this producer's last appended record.
    pub end_offset: u64,
}

/// Where one appended batch sits in the partition's file.
#[derive(Clone, Copy, Debug)]
struct FrameIndex {
    first_offset: u64,
    records: u64,
    /// The leader epoch that appended the frame's records.
    epoch: u64,
    /// Byte position of the frame (header included) and its total length.
    position: u64,
    bytes: usize,
}

/// What a replicated append did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicatedAppend {
    /// The log matches the leader's up to here.
    pub matched: u64,
    /// Records from this offset on, the first of this epoch, were of a lost epoch: cut off.
    pub truncated: Option<(u64, u64)>,
    /// New records appended: base offset and count.
    pub new_records: Option<(u64, u64)>,
}

pub struct Partition {
    pub id: u32,
    pub high_watermark: u64,
    pub producers: BTreeMap<u32, ProducerState>,
    /// Woken whenever records are appended or the high watermark moves.
    pub changed: Rc<Notify>,
    frames: Vec<FrameIndex>,
    /// Where each epoch's records start: `(epoch, first offset)`, in log order.
    runs: Vec<(u64, u64)>,
    log_end: u64,
    file_len: u64,
    disk: DiskRef,
    file: String,
}

/// What an append did with a produce request.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    /// New records were appended; the request is done once the high watermark reaches `end_offset`.
    New { base_offset: u64, end_offset: u64 },
    /// Every record was already in the log: a retry. Done once the watermark reaches `end_offset`.
    Duplicate { end_offset: u64 },
    /// The batch starts past `next_seq`: the producer had records acknowledged that this copy
    /// does not hold, so this broker is a deposed leader that has not learned it yet (it was
    /// paused or cut off while another replica led). Nothing was appended.
    Gap { next_seq: u64 },
}

impl Partition {
    /// Opens the partition from disk, keeping the valid prefix of its file.
    pub fn open(id: u32, disk: DiskRef) -> Self {
        let file = format!("partition-{id}.log");
        let mut partition = Partition {
            id,
            high_watermark: 0,
            producers: BTreeMap::new(),
            changed: Rc::new(Notify::new()),
            frames: Vec::new(),
            runs: Vec::new(),
            log_end: 0,
            file_len: 0,
            disk,
            file,
        };
        partition.recover();
        partition
    }

    /// Rebuilds the index and producer state from the file, cutting off a torn tail.
    fn recover(&mut self) {
        self.frames.clear();
        self.runs.clear();
        self.producers.clear();
        (self.log_end, self.file_len) = (0, 0);
        let Some(bytes) = self.disk.read(&self.file) else { return };
        let (bodies, valid) = codec::frames(&bytes);
        let mut records = Vec::new();
        for body in bodies {
            records.clear();
            let epoch = codec::decode_log_records(body, &mut records);
            let frame = FrameIndex {
                first_offset: self.log_end,
                records: records.len() as u64,
                epoch,
                position: self.file_len,
                bytes: codec::HEADER_BYTES + body.len(),
            };
            self.index(records.iter().map(|r| (r.producer, r.seq)), frame);
        }
        assert_eq!(self.file_len, valid as u64);
        if valid < bytes.len() {
            self.disk.replace(&self.file, &bytes[..valid]);
            self.disk.sync(&self.file);
        }
    }

    /// Indexes a frame whose records have these producers and sequence numbers.
    fn index(&mut self, heads: impl ExactSizeIterator<Item = (u32, u64)>, frame: FrameIndex) {
        assert_eq!(heads.len() as u64, frame.records, "partition {}: a head per record", self.id);
        if self.runs.last().is_none_or(|&(epoch, _)| epoch != frame.epoch) {
            self.runs.push((frame.epoch, frame.first_offset));
        }
        for (i, (producer, seq)) in heads.enumerate() {
            let state = self.producers.entry(producer).or_default();
            assert!(seq >= state.next_seq, "log holds producer {producer} out of sequence");
            state.next_seq = seq + 1;
            state.end_offset = frame.first_offset + i as u64 + 1;
        }
        self.log_end += frame.records;
        self.file_len += frame.bytes as u64;
        self.frames.push(frame);
    }

    pub fn log_end(&self) -> u64 {
        self.log_end
    }

    /// The epoch of the record at `offset`, if the log holds it.
    pub fn epoch_at(&self, offset: u64) -> Option<u64> {
        if offset >= self.log_end {
            return None;
        }
        let i = self.frames.partition_point(|f| f.first_offset + f.records <= offset);
        Some(self.frames[i].epoch)
    }

    /// Where each epoch's records start: `(epoch, start offset)`, in log order.
    pub fn epochs(&self) -> Vec<(u64, u64)> {
        self.runs.clone()
    }

    /// The end of the run of same-epoch records that contains `offset`.
    pub fn epoch_run_end(&self, offset: u64) -> u64 {
        let next = self.runs.partition_point(|&(_, start)| start <= offset);
        self.runs.get(next).map_or(self.log_end, |&(_, start)| start)
    }

    /// Appends a producer's batch as the leader of `epoch`, dropping records it already holds,
    /// and stamps the fresh ones with stream time `now_ms`. A batch past the producer's next
    /// sequence number is refused (`Gap`): a producer never sends past an unacknowledged batch,
    /// so the records between were acknowledged by a leader this copy did not follow.
    pub fn append_produced(
        &mut self,
        epoch: u64,
        producer: u32,
        batch: &[LogRecord],
        now_ms: u64,
    ) -> Appended {
        let state = self.producers.get(&producer).copied().unwrap_or_default();
        let first = batch.first().expect("empty produce batch");
        assert!(
            batch.windows(2).all(|w| w[1].seq == w[0].seq + 1),
            "partition {}: a batch's sequence numbers are consecutive",
            self.id
        );
        if first.seq > state.next_seq {
            return Appended::Gap { next_seq: state.next_seq };
        }
        // Sequence numbers within a batch are consecutive, so the fresh records are a suffix.
        let skip = batch.iter().take_while(|r| r.seq < state.next_seq).count();
        if skip == batch.len() {
            return Appended::Duplicate { end_offset: state.end_offset };
        }
        let base_offset = self.log_end;
        self.append_durably(epoch, &batch[skip..], Some(now_ms));
        Appended::New { base_offset, end_offset: self.log_end }
    }

    /// Appends records the leader sent from `base_offset`, all of leader epoch `epoch`, as the
    /// leader's disk holds them. The caller checked that the log matches the leader's just
    /// before `base_offset`. Records already held with the same epoch are skipped; the first
    /// held record of another epoch and everything after it are truncated (they were never
    /// committed).
    pub fn append_replicated(
        &mut self,
        epoch: u64,
        base_offset: u64,
        batch: RawLogRecords,
    ) -> ReplicatedAppend {
        assert!(base_offset <= self.log_end, "partition {}: replicated batch leaves a gap", self.id);
        let mut skip = 0;
        while skip < batch.count && self.epoch_at(base_offset + skip as u64) == Some(epoch) {
            skip += 1;
        }
        if skip > 0 {
            let held = self.read_raw(base_offset, base_offset + skip as u64);
            assert!(
                held.bytes() == batch.prefix(skip),
                "partition {}: same epoch, different records",
                self.id
            );
        }
        let mut outcome =
            ReplicatedAppend { matched: base_offset + batch.count as u64, ..Default::default() };
        if skip < batch.count {
            let from = base_offset + skip as u64;
            if let Some(cut_epoch) = self.epoch_at(from) {
                self.truncate(from);
                outcome.truncated = Some((from, cut_epoch));
            }
            let heads = batch.heads().split_off(skip);
            outcome.new_records = Some((from, (batch.count - skip) as u64));
            self.append_frame(epoch, frame_from(epoch, batch, skip), heads.into_iter());
        }
        outcome
    }

    /// Cuts the log back to `offset`: the records from there were appended by a leader whose
    /// epoch lost, and were never committed. Durable before it returns.
    pub fn truncate(&mut self, offset: u64) {
        if offset >= self.log_end {
            return;
        }
        assert!(
            offset >= self.high_watermark,
            "partition {}: truncating to {offset}, below the high watermark {}",
            self.id,
            self.high_watermark
        );
        let i = self.frames.partition_point(|f| f.first_offset + f.records <= offset);
        let frame = self.frames[i];
        let kept = self.read(frame.first_offset, offset);
        self.disk.truncate(&self.file, frame.position);
        if !kept.is_empty() {
            let mut bytes = Vec::new();
            codec::encode_log_records(frame.epoch, &kept, &mut bytes);
            self.disk.append(&self.file, bytes);
        }
        self.disk.sync(&self.file);
        self.recover();
        assert_eq!(self.log_end, offset, "partition {}: truncation missed its mark", self.id);
        self.changed.notify_waiters();
    }

    /// Appends `records` as one frame of `epoch` and syncs; `stamp`, when given, is their stream
    /// time (a leader's append), else they keep theirs (a follower's).
    fn append_durably(&mut self, epoch: u64, records: &[LogRecord], stamp: Option<u64>) {
        let mut bytes = Vec::new();
        codec::encode_log_records_stamped(epoch, records, stamp, &mut bytes);
        self.append_frame(epoch, bytes, records.iter().map(|r| (r.producer, r.seq)));
    }

    /// Appends one encoded frame of `epoch` whose records have these heads, and syncs.
    fn append_frame(&mut self, epoch: u64, bytes: Vec<u8>, heads: impl ExactSizeIterator<Item = (u32, u64)>) {
        let frame = FrameIndex {
            first_offset: self.log_end,
            records: heads.len() as u64,
            epoch,
            position: self.file_len,
            bytes: bytes.len(),
        };
        self.disk.append(&self.file, bytes);
        self.disk.sync(&self.file);
        self.index(heads, frame);
        self.changed.notify_waiters();
    }

    /// Moves the high watermark forward to `offset`. Returns whether it moved.
    pub fn advance_high_watermark(&mut self, offset: u64) -> bool {
        assert!(offset <= self.log_end, "high watermark past the log end");
        if offset <= self.high_watermark {
            return false;
        }
        self.high_watermark = offset;
        self.changed.notify_waiters();
        true
    }

    /// Committed records from `offset`, at most `max`.
    pub fn read_committed(&self, offset: u64, max: usize) -> Vec<LogRecord> {
        let end = self.high_watermark.min(offset.saturating_add(max as u64));
        self.read(offset, end)
    }

    /// Records `from..to`, read back from the file: copied out in one piece, and decoded
    /// sharing it (see [`RawLogRecords::into_records`]).
    pub fn read(&self, from: u64, to: u64) -> Vec<LogRecord> {
        self.read_raw(from, to).into_records()
    }

    /// Records `from..to` as the file holds them, not decoded: what a leader replicates.
    pub fn read_raw(&self, from: u64, to: u64) -> RawLogRecords {
        let mut out = RawLogRecords::with_capacity(self.span_bytes(from, to));
        self.visit_frames(from, to, &mut |body, skip, take| {
            codec::copy_log_records_range(body, skip, take, &mut out);
        });
        assert_eq!(out.count as u64, to.saturating_sub(from), "partition {}: read {from}..{to}", self.id);
        out
    }

    /// The bytes of the frames holding records `from..to`: at least what those records take.
    fn span_bytes(&self, from: u64, to: u64) -> usize {
        let first = self.frames.partition_point(|f| f.first_offset + f.records <= from);
        self.frames[first..].iter().take_while(|f| f.first_offset < to).map(|f| f.bytes).sum()
    }

    /// Visits the body of each frame holding records `from..to`, with how many of its records to
    /// skip and then take.
    fn visit_frames(&self, from: u64, to: u64, visit: &mut dyn FnMut(&[u8], usize, usize)) {
        assert!(to <= self.log_end, "read past the log end");
        let mut i = self.frames.partition_point(|f| f.first_offset + f.records <= from);
        while i < self.frames.len() && self.frames[i].first_offset < to {
            let frame = self.frames[i];
            let skip = from.saturating_sub(frame.first_offset) as usize;
            let take = (to.min(frame.first_offset + frame.records) - frame.first_offset) as usize - skip;
            // A frame appended in one piece is read where it lies; one recovered from a
            // rewritten file may span pieces and is gathered first.
            let mut gathered = Vec::new();
            let found = self.disk.visit_range(&self.file, frame.position, frame.bytes, &mut |piece| {
                if piece.len() == frame.bytes {
                    visit(frame_body(piece), skip, take);
                } else {
                    gathered.extend_from_slice(piece);
                }
            });
            assert!(found, "partition {}: indexed frame missing from the file", self.id);
            if !gathered.is_empty() {
                visit(frame_body(&gathered), skip, take);
            }
            i += 1;
        }
    }
}

/// The frame of `batch`'s records from the `skip`-th on, in epoch `epoch`.
fn frame_from(epoch: u64, batch: RawLogRecords, skip: usize) -> Vec<u8> {
    if skip == 0 {
        // The whole batch is new (the usual case): framed where it lies, not copied.
        return batch.into_frame(epoch);
    }
    let mut bytes = Vec::new();
    codec::encode_raw_log_records(epoch, &batch.bytes()[batch.prefix(skip).len()..], &mut bytes);
    bytes
}

/// The body of one whole frame the index points at. Its checksum was verified when the frame
/// entered the index (appended by this broker, or found whole when the log was reopened), and
/// the file changes only by appends, truncations and crashes, the index being rebuilt from the
/// file after each truncation and each crash: so a read checks the frame's length, and its
/// checksum only in debug builds, not on every read.
fn frame_body(frame: &[u8]) -> &[u8] {
    let body = codec::frame_body_unchecked(frame);
    debug_assert!(
        {
            let (bodies, valid) = codec::frames(frame);
            bodies.len() == 1 && valid == frame.len()
        },
        "the index points at one whole, intact frame"
    );
    body
}

/// The first offset at which two replicas' logs differ, from each one's epoch runs
/// ([`Partition::epochs`]) and log end. Epochs are constant between run starts in both logs,
/// and equal epochs at an offset mean equal prefixes, so comparing at every run start suffices.
pub fn divergence(a: &[(u64, u64)], a_end: u64, b: &[(u64, u64)], b_end: u64) -> u64 {
    let end = a_end.min(b_end);
    let epoch_at = |runs: &[(u64, u64)], offset: u64| {
        runs.iter().rev().find(|&&(_, start)| start <= offset).map(|&(epoch, _)| epoch)
    };
    let mut starts: Vec<u64> = a.iter().chain(b).map(|&(_, start)| start).filter(|&s| s < end).collect();
    starts.sort_unstable();
    starts.dedup();
    starts.into_iter().find(|&s| epoch_at(a, s) != epoch_at(b, s)).unwrap_or(end)
}

#[cfg(test)]
mod tests {
    use super::{divergence, Appended, Partition};
    use crate::disk::MemDisk;
    use crate::record::{LogRecord, Payload};

    fn batch(producer: u32, seqs: std::ops::Range<u64>) -> Vec<LogRecord> {
        seqs.map(|seq| LogRecord { producer, seq, stream_time_ms: 0, payload: Payload::EndOfStream })
            .collect()
    }

    /// A retry is dropped as a duplicate; a batch past the producer's next sequence number is
    /// refused whole (the records between were acknowledged by a leader this copy did not
    /// follow); the batch that continues the sequence is appended.
    #[test]
    fn a_batch_past_the_next_sequence_number_is_refused_not_appended() {
        let mut log = Partition::open(0, std::sync::Arc::new(MemDisk::default()));
        assert_eq!(
            log.append_produced(1, 7, &batch(7, 0..3), 10),
            Appended::New { base_offset: 0, end_offset: 3 }
        );
        assert_eq!(log.append_produced(1, 7, &batch(7, 0..3), 11), Appended::Duplicate { end_offset: 3 });
        assert_eq!(log.append_produced(1, 7, &batch(7, 5..8), 12), Appended::Gap { next_seq: 3 });
        assert_eq!(log.log_end(), 3, "a refused batch leaves the log as it was");
        assert_eq!(log.append_produced(1, 8, &batch(8, 2..4), 13), Appended::Gap { next_seq: 0 });
        assert_eq!(
            log.append_produced(1, 7, &batch(7, 2..5), 14),
            Appended::New { base_offset: 3, end_offset: 5 }
        );
    }

    #[test]
    fn divergence_is_the_first_offset_whose_epochs_differ() {
        // Same history, one log longer: they agree up to the shorter end.
        assert_eq!(divergence(&[(1, 0)], 100, &[(1, 0)], 90), 90);
        // Epoch 2 took over at 90 on one; the other kept epoch-1 records past 90.
        assert_eq!(divergence(&[(1, 0), (2, 90)], 95, &[(1, 0)], 100), 90);
        // Both saw epochs 1 and 3, but started epoch 3 at different offsets.
        assert_eq!(divergence(&[(1, 0), (3, 100)], 120, &[(1, 0), (2, 90), (3, 95)], 130), 90);
        // Nothing in common.
        assert_eq!(divergence(&[(2, 0)], 10, &[(1, 0)], 10), 0);
        assert_eq!(divergence(&[], 0, &[(1, 0)], 10), 0);
    }
}
