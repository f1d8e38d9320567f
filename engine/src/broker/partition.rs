//! One broker's copy of one log partition: records, high watermark, producer dedup state, and
//! its durable file.
//!
//! It owns the log's invariants:
//! - offsets are dense: record i sits at offset i;
//! - an append is synced to disk before it counts toward the high watermark;
//! - the high watermark never goes back;
//! - a producer's records enter in sequence order, each (producer, seq) at most once.
//!
//! It does not talk to the network: the broker node feeds it requests and sends what it returns.

use std::collections::BTreeMap;
use std::rc::Rc;

use tokio::sync::Notify;

use crate::codec;
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

/// Records per in-memory log segment: the log grows by whole segments, never by copying.
const SEGMENT_RECORDS: usize = 1 << 14;

/// An append-only sequence of records stored in fixed-size segments.
#[derive(Default)]
pub struct Segments {
    segments: Vec<Vec<LogRecord>>,
    len: usize,
}

impl Segments {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> LogRecord {
        assert!(i < self.len, "offset {i} past the log end {}", self.len);
        self.segments[i / SEGMENT_RECORDS][i % SEGMENT_RECORDS]
    }

    pub fn extend_from_slice(&mut self, mut records: &[LogRecord]) {
        while !records.is_empty() {
            if self.len % SEGMENT_RECORDS == 0 {
                self.segments.push(Vec::with_capacity(SEGMENT_RECORDS));
            }
            let last = self.segments.last_mut().unwrap();
            let n = records.len().min(SEGMENT_RECORDS - last.len());
            last.extend_from_slice(&records[..n]);
            self.len += n;
            records = &records[n..];
        }
    }

    /// Copies out `from..to`.
    pub fn copy_range(&self, from: usize, to: usize) -> Vec<LogRecord> {
        assert!(from <= to && to <= self.len);
        let mut out = Vec::with_capacity(to - from);
        let mut at = from;
        while at < to {
            let segment = &self.segments[at / SEGMENT_RECORDS];
            let start = at % SEGMENT_RECORDS;
            let n = (to - at).min(SEGMENT_RECORDS - start);
            out.extend_from_slice(&segment[start..start + n]);
            at += n;
        }
        out
    }
}

pub struct Partition {
    pub id: u32,
    pub records: Segments,
    pub high_watermark: u64,
    pub producers: BTreeMap<u32, ProducerState>,
    /// Woken whenever records are appended or the high watermark moves.
    pub changed: Rc<Notify>,
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
}

impl Partition {
    /// Opens the partition from disk, keeping the valid prefix of its file.
    pub fn open(id: u32, disk: DiskRef) -> Self {
        let file = format!("partition-{id}.log");
        let mut records = Vec::new();
        if let Some(bytes) = disk.read(&file) {
            let (bodies, valid) = codec::frames(&bytes);
            for body in bodies {
                codec::decode_log_records(body, &mut records);
            }
            if valid < bytes.len() {
                disk.replace(&file, &bytes[..valid]);
                disk.sync(&file);
            }
        }
        let mut partition = Partition {
            id,
            records: Segments::default(),
            high_watermark: 0,
            producers: BTreeMap::new(),
            changed: Rc::new(Notify::new()),
            disk,
            file,
        };
        partition.index(records);
        partition
    }

    fn index(&mut self, records: Vec<LogRecord>) {
        for (offset, r) in records.iter().enumerate() {
            let state = self.producers.entry(r.producer).or_default();
            assert_eq!(r.seq, state.next_seq, "log holds producer {} out of sequence", r.producer);
            state.next_seq = r.seq + 1;
            state.end_offset = offset as u64 + 1;
        }
        self.records.extend_from_slice(&records);
    }

    pub fn log_end(&self) -> u64 {
        self.records.len() as u64
    }

    /// Appends a producer's batch as the leader, dropping records it already holds.
    /// Panics on a sequence gap: a producer never sends past an unacknowledged batch.
    pub fn append_produced(&mut self, producer: u32, batch: &[LogRecord]) -> Appended {
        let state = self.producers.get(&producer).copied().unwrap_or_default();
        let first = batch.first().expect("empty produce batch");
        assert!(
            first.seq <= state.next_seq,
            "partition {}: producer {producer} sent seq {} but {} is next",
            self.id,
            first.seq,
            state.next_seq
        );
        // Sequence numbers within a batch are consecutive, so the fresh records are a suffix.
        let skip = batch.iter().take_while(|r| r.seq < state.next_seq).count();
        let fresh = &batch[skip..];
        if fresh.is_empty() {
            return Appended::Duplicate { end_offset: state.end_offset };
        }
        let base_offset = self.log_end();
        self.append_durably(fresh);
        let end_offset = self.log_end();
        let last = fresh.last().unwrap().seq;
        self.producers.insert(producer, ProducerState { next_seq: last + 1, end_offset });
        Appended::New { base_offset, end_offset }
    }

    /// Appends records replicated from the leader at `base_offset`, skipping any overlap.
    /// Returns the log end after the append; a gap appends nothing and returns the current end.
    pub fn append_replicated(&mut self, base_offset: u64, batch: &[LogRecord]) -> u64 {
        let end = self.log_end();
        if base_offset > end {
            return end;
        }
        let skip = (end - base_offset) as usize;
        for (i, r) in batch.iter().take(skip).enumerate() {
            assert_eq!(
                *r,
                self.records.get(base_offset as usize + i),
                "partition {}: replica diverges from its leader",
                self.id
            );
        }
        if skip < batch.len() {
            let start = self.log_end();
            self.append_durably(&batch[skip..]);
            self.index_tail(start);
        }
        self.log_end()
    }

    fn index_tail(&mut self, start: u64) {
        for offset in start..self.log_end() {
            let r = self.records.get(offset as usize);
            let state = self.producers.entry(r.producer).or_default();
            state.next_seq = r.seq + 1;
            state.end_offset = offset + 1;
        }
    }

    fn append_durably(&mut self, records: &[LogRecord]) {
        let mut bytes = Vec::new();
        codec::encode_log_records(records, &mut bytes);
        self.disk.append(&self.file, &bytes);
        self.disk.sync(&self.file);
        self.records.extend_from_slice(records);
        self.changed.notify_waiters();
    }

    /// Moves the high watermark forward to `offset`. Returns whether it moved.
    pub fn advance_high_watermark(&mut self, offset: u64) -> bool {
        assert!(offset <= self.log_end(), "high watermark past the log end");
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
        if offset >= end {
            return Vec::new();
        }
        self.records.copy_range(offset as usize, end as usize)
    }
}
