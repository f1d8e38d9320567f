//! Byte encodings for what nodes write to disk, with framing that detects torn writes.
//!
//! A frame is `len: u32 | crc32(body): u32 | body`. Reading stops at the first frame that is
//! short or fails its checksum: that is where a crash tore the file, and nothing after it was
//! acknowledged (a write is acknowledged only after `sync`).
//!
//! It does not encode wire messages: those move as typed values through the simulated network.

use std::sync::Arc;

use crate::sdk::Blob;

use crate::record::{
    Cause, Event, KeyBytes, LogRecord, Origin, OutputId, OutputRecord, Payload, Side, StreamRecord,
};

/// Blob of one encoded output record.
const OUTPUT_RECORD_BYTES: usize = 61;

/// Blob of a frame's header: length and checksum.
pub const HEADER_BYTES: usize = 8;

/// Appends one frame holding `body` to `out`.
pub fn put_frame(out: &mut Vec<u8>, body: &[u8]) {
    let start = begin_frame(out);
    out.extend_from_slice(body);
    end_frame(out, start);
}

/// One frame holding `body`: how a small object (a checkpoint's metadata, a state snapshot)
/// is stored whole.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    put_frame(&mut out, body);
    out
}

/// The body of an object stored with [`framed`]; `None` if it is torn or empty.
pub fn first_frame(bytes: &[u8]) -> Option<&[u8]> {
    frames(bytes).0.first().copied()
}

/// Reserves a frame header in `out`; write the body after it, then call [`end_frame`].
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.len()
}

/// Fills in the header of the frame whose body starts at `start` and runs to the end of `out`.
pub fn end_frame(out: &mut [u8], start: usize) {
    let len = u32::try_from(out.len() - start).expect("frame body larger than 4 GiB");
    let crc = crc32fast::hash(&out[start..]);
    out[start - 8..start - 4].copy_from_slice(&len.to_le_bytes());
    out[start - 4..start].copy_from_slice(&crc.to_le_bytes());
}

/// Splits `bytes` into frame bodies, stopping at the first torn or corrupt frame.
/// Returns the bodies and the number of bytes they span (the valid prefix).
pub fn frames(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut bodies = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER_BYTES {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let start = at + HEADER_BYTES;
        if bytes.len() - start < len || crc32fast::hash(&bytes[start..start + len]) != crc {
            break;
        }
        bodies.push(&bytes[start..start + len]);
        at = start + len;
    }
    (bodies, at)
}

/// The body of `frame`, which must be exactly one frame, its checksum not verified: for bytes
/// already verified once (see [`frames`]). Panics if the header's length is not the body's.
pub fn frame_body_unchecked(frame: &[u8]) -> &[u8] {
    assert!(frame.len() >= HEADER_BYTES, "a frame of {} bytes has no header", frame.len());
    let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - HEADER_BYTES, "a frame's header gives a length other than its body's");
    &frame[HEADER_BYTES..]
}

/// A little-endian reader over a frame body; panics on a short body, which framing rules out.
pub struct Reader<'a> {
    bytes: &'a [u8],
    /// The buffer `bytes` lie in, when byte strings are to share it rather than be copied.
    owner: Option<&'a Arc<Vec<u8>>>,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, owner: None }
    }

    /// A reader over `bytes`, which lie in `owner`, whose long byte strings share `owner`
    /// (see [`Blob::within`]) instead of being copied out of it one by one.
    ///
    /// # Panics
    /// If `bytes` do not lie in `owner`.
    pub fn within(owner: &'a Arc<Vec<u8>>, bytes: &'a [u8]) -> Self {
        offset_in(owner, bytes);
        Reader { bytes, owner: Some(owner) }
    }

    pub fn u64(&mut self) -> u64 {
        let (head, rest) = self.bytes.split_at(8);
        self.bytes = rest;
        u64::from_le_bytes(head.try_into().unwrap())
    }

    pub fn u32(&mut self) -> u32 {
        let (head, rest) = self.bytes.split_at(4);
        self.bytes = rest;
        u32::from_le_bytes(head.try_into().unwrap())
    }

    pub fn i64(&mut self) -> i64 {
        self.u64() as i64
    }

    pub fn u8(&mut self) -> u8 {
        let (head, rest) = self.bytes.split_at(1);
        self.bytes = rest;
        head[0]
    }

    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        head
    }

    /// A length-prefixed byte string (see [`put_bytes`]): sharing the reader's owner if it has
    /// one (see [`Reader::within`]), a copy otherwise.
    pub fn byte_string(&mut self) -> Blob {
        let bytes = self.byte_slice();
        self.blob(bytes)
    }

    /// `bytes`, read from this reader: sharing its owner if it has one (see
    /// [`Reader::within`]) and they are long, a copy otherwise.
    fn blob(&self, bytes: &[u8]) -> Blob {
        match self.owner {
            Some(owner) if bytes.len() > crate::sdk::blob::INLINE => {
                let at = offset_in(owner, bytes);
                Blob::within(owner, at..at + bytes.len())
            }
            _ => Blob::copy_from_slice(bytes),
        }
    }

    /// A length-prefixed byte string, borrowed.
    pub fn byte_slice(&mut self) -> &'a [u8] {
        let len = self.u32() as usize;
        self.bytes(len)
    }

    /// Every byte not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Where `part` starts in `whole`.
///
/// # Panics
/// If `part` does not lie in `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    let at = part.as_ptr().addr().checked_sub(whole.as_ptr().addr());
    let at = at.filter(|at| at + part.len() <= whole.len());
    at.unwrap_or_else(|| panic!("{} bytes read as part of a buffer they are not in", part.len()))
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("a byte string under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

pub fn put_cause(out: &mut Vec<u8>, c: Cause) {
    out.extend_from_slice(&c.producer.to_le_bytes());
    out.extend_from_slice(&c.seq.to_le_bytes());
}

pub fn get_cause(r: &mut Reader<'_>) -> Cause {
    Cause { producer: r.u32(), seq: r.u64() }
}

/// Appends an origin: a tag, then its fields.
pub fn put_origin(out: &mut Vec<u8>, o: Origin) {
    match o {
        Origin::Input(c) => {
            out.push(0);
            put_cause(out, c);
        }
        Origin::Timer { at_ms, tag } => {
            out.push(1);
            out.extend_from_slice(&at_ms.to_le_bytes());
            out.extend_from_slice(&tag.to_le_bytes());
        }
        Origin::Content(hash) => {
            out.push(2);
            out.extend_from_slice(&hash.to_le_bytes());
        }
    }
}

pub fn get_origin(r: &mut Reader<'_>) -> Origin {
    match r.u8() {
        0 => Origin::Input(get_cause(r)),
        1 => Origin::Timer { at_ms: r.u64(), tag: r.u64() },
        2 => Origin::Content(r.u64()),
        tag => panic!("origin with unknown tag {tag}: the checksum passed, so this is a bug"),
    }
}

/// Appends a side: 0 for the main output, else 1 and the side's id.
pub fn put_side(out: &mut Vec<u8>, side: Side) {
    match side {
        Side::Main => out.push(0),
        Side::Named(id) => {
            out.push(1);
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
}

pub fn get_side(r: &mut Reader<'_>) -> Side {
    match r.u8() {
        0 => Side::Main,
        1 => Side::Named(r.u32()),
        tag => panic!("side with unknown tag {tag}: the checksum passed, so this is a bug"),
    }
}

const TAG_DATA: u8 = 1;
const TAG_END: u8 = 2;

/// Blob before a log batch's records: the leader epoch that appended them.
const LOG_BATCH_HEADER: usize = 8;

/// Encodes a batch of log records, all appended in leader epoch `epoch`, as one frame.
pub fn encode_log_records(epoch: u64, records: &[LogRecord], out: &mut Vec<u8>) {
    encode_log_records_stamped(epoch, records, None, out);
}

/// As [`encode_log_records`], every record's stream time written as `stamp` when given (a
/// leader stamps what it appends without copying the records to do it).
pub fn encode_log_records_stamped(epoch: u64, records: &[LogRecord], stamp: Option<u64>, out: &mut Vec<u8>) {
    out.reserve(HEADER_BYTES + LOG_BATCH_HEADER + records.iter().map(log_record_bytes).sum::<usize>());
    let start = begin_frame(out);
    let body = out;
    body.extend_from_slice(&epoch.to_le_bytes());
    for r in records {
        body.extend_from_slice(&r.producer.to_le_bytes());
        body.extend_from_slice(&r.seq.to_le_bytes());
        body.extend_from_slice(&stamp.unwrap_or(r.stream_time_ms).to_le_bytes());
        match &r.payload {
            Payload::Data(e) => {
                body.push(TAG_DATA);
                put_event(body, e);
            }
            Payload::EndOfStream => body.push(TAG_END),
        }
    }
    end_frame(body, start);
}

/// Appends an event's fields.
pub fn put_event(out: &mut Vec<u8>, e: &Event) {
    out.extend_from_slice(&e.id.to_le_bytes());
    put_bytes(out, &e.key.bytes);
    put_bytes(out, &e.value);
    out.extend_from_slice(&e.event_time_ms.to_le_bytes());
}

pub fn get_event(r: &mut Reader<'_>) -> Event {
    get_event_with(r, |_| None)
}

/// An event, sharing `known(id)`'s key and value if it holds the same bytes.
fn get_event_with<'k>(r: &mut Reader<'_>, known: impl Fn(u64) -> Option<&'k Event>) -> Event {
    let (id, key, value, event_time_ms) = (r.u64(), r.byte_slice(), r.byte_slice(), r.u64());
    match known(id) {
        Some(e) if *e.key.bytes == *key && *e.value == *value => {
            Event { id, key: e.key.clone(), value: e.value.clone(), event_time_ms }
        }
        _ => Event { id, key: KeyBytes::from_encoded(r.blob(key)), value: r.blob(value), event_time_ms },
    }
}

/// Appends a stream record's fields.
pub fn put_stream_record(out: &mut Vec<u8>, r: &StreamRecord) {
    out.extend_from_slice(&r.id.to_le_bytes());
    put_bytes(out, &r.key.bytes);
    put_bytes(out, &r.value);
    out.extend_from_slice(&r.event_time_ms.to_le_bytes());
    out.extend_from_slice(&r.stream_time_ms.to_le_bytes());
    put_cause(out, r.cause);
    out.extend_from_slice(&r.partition.to_le_bytes());
    out.extend_from_slice(&r.offset.to_le_bytes());
    match r.carried.as_deref() {
        None => out.push(0),
        Some(&(side, origin, n)) => {
            out.push(1);
            put_side(out, side);
            put_origin(out, origin);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

pub fn get_stream_record(r: &mut Reader<'_>) -> StreamRecord {
    let id = r.u64();
    let key = KeyBytes::from_encoded(r.byte_string());
    let value = r.byte_string();
    let (event_time_ms, stream_time_ms) = (r.u64(), r.u64());
    let cause = get_cause(r);
    let (partition, offset) = (r.u32(), r.u64());
    let carried = match r.u8() {
        0 => None,
        _ => Some(Box::new((get_side(r), get_origin(r), r.u32()))),
    };
    StreamRecord { id, key, value, event_time_ms, stream_time_ms, cause, partition, offset, carried }
}

/// Decodes a frame body written by [`encode_log_records`]; returns the batch's leader epoch.
pub fn decode_log_records(body: &[u8], out: &mut Vec<LogRecord>) -> u64 {
    decode_log_records_range(body, 0, usize::MAX, out);
    Reader::new(body).u64()
}

/// Decodes records `skip..skip + take` of a frame body written by [`encode_log_records`].
pub fn decode_log_records_range(body: &[u8], skip: usize, take: usize, out: &mut Vec<LogRecord>) {
    let mut r = Reader::new(&body[LOG_BATCH_HEADER..]);
    let mut index = 0;
    while !r.is_empty() && index < skip {
        skip_log_record(&mut r);
        index += 1;
    }
    while !r.is_empty() && index < skip.saturating_add(take) {
        out.push(decode_log_record(&mut r));
        index += 1;
    }
}

/// Decodes one record's encoding (as [`log_record_bytes_of`] finds it) as [`decode_log_records`]
/// does, except that a data event holding the same key and value bytes as `known(id)` shares
/// that event's key and value instead of copying them: a checker reading back the input it
/// already holds. An event that differs from what is known (or with nothing known) is decoded
/// as it lies.
pub fn decode_log_record_sharing<'k>(record: &[u8], known: &dyn Fn(u64) -> Option<&'k Event>) -> LogRecord {
    let mut r = Reader::new(record);
    let decoded = decode_log_record_with(&mut r, known);
    assert!(r.is_empty(), "{} bytes after a log record", r.bytes.len());
    decoded
}

/// A frame body written by [`encode_log_records`] as its leader epoch and each record's
/// encoding, in order, not decoded: for comparing replicas' copies byte for byte (a follower
/// writes what its leader sent as it came).
pub fn log_record_bytes_of(body: &[u8]) -> (u64, Vec<&[u8]>) {
    let epoch = Reader::new(body).u64();
    let mut r = Reader::new(&body[LOG_BATCH_HEADER..]);
    let mut records = Vec::new();
    while !r.is_empty() {
        let start = r.bytes;
        skip_log_record(&mut r);
        records.push(&start[..start.len() - r.bytes.len()]);
    }
    (epoch, records)
}

/// Moves past one log record without building it (its byte strings are not copied).
fn skip_log_record(r: &mut Reader<'_>) {
    r.bytes(4 + 8 + 8);
    match r.u8() {
        TAG_DATA => {
            r.u64();
            for _ in 0..2 {
                let len = r.u32() as usize;
                r.bytes(len);
            }
            r.u64();
        }
        TAG_END => {}
        tag => panic!("log record with unknown tag {tag}: the checksum passed, so this is a bug"),
    }
}

/// Log records as a frame body holds them: their encodings back to back, and how many there
/// are. A leader replicates these bytes as they lie on its disk, and a follower writes them as
/// they come: neither builds the records. They are kept behind room for a frame's header and
/// batch header, so a follower makes them a frame in place ([`RawLogRecords::into_frame`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawLogRecords {
    /// [`RAW_HEADROOM`] bytes of room, then the records.
    frame: Vec<u8>,
    pub count: usize,
}

/// The room before raw records: a frame header and the batch header (the leader epoch).
const RAW_HEADROOM: usize = HEADER_BYTES + LOG_BATCH_HEADER;

impl Default for RawLogRecords {
    fn default() -> Self {
        RawLogRecords::with_capacity(0)
    }
}

impl RawLogRecords {
    /// No records yet, with room for `bytes` of them.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut frame = Vec::with_capacity(RAW_HEADROOM + bytes);
        frame.resize(RAW_HEADROOM, 0);
        RawLogRecords { frame, count: 0 }
    }

    /// The records' bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.frame[RAW_HEADROOM..]
    }

    /// The frame [`encode_raw_log_records`] makes of these records in epoch `epoch`, built
    /// where they lie.
    pub fn into_frame(mut self, epoch: u64) -> Vec<u8> {
        assert_eq!(LOG_BATCH_HEADER, 8, "the batch header is the epoch");
        self.frame[HEADER_BYTES..RAW_HEADROOM].copy_from_slice(&epoch.to_le_bytes());
        end_frame(&mut self.frame, HEADER_BYTES);
        self.frame
    }

    /// The producer and sequence number of each record, in order.
    pub fn heads(&self) -> Vec<(u32, u64)> {
        let mut r = Reader::new(self.bytes());
        let mut heads = Vec::with_capacity(self.count);
        while !r.is_empty() {
            let mut head = Reader::new(r.bytes);
            heads.push((head.u32(), head.u64()));
            skip_log_record(&mut r);
        }
        assert_eq!(heads.len(), self.count, "raw records hold as many records as they say");
        heads
    }

    /// The bytes of the first `n` records.
    pub fn prefix(&self, n: usize) -> &[u8] {
        assert!(n <= self.count, "{n} of {} raw records", self.count);
        let mut r = Reader::new(self.bytes());
        for _ in 0..n {
            skip_log_record(&mut r);
        }
        let bytes = self.bytes();
        &bytes[..bytes.len() - r.bytes.len()]
    }

    /// Decodes them, their events' long keys and values sharing one buffer: an allocation for
    /// the lot, rather than one per record, holding them in the order they are read. What a
    /// fetch hands a source.
    pub fn into_records(self) -> Vec<LogRecord> {
        let owner = Arc::new(self.frame);
        let mut r = Reader::within(&owner, &owner[RAW_HEADROOM..]);
        let mut out = Vec::with_capacity(self.count);
        while !r.is_empty() {
            out.push(decode_log_record(&mut r));
        }
        assert_eq!(out.len(), self.count, "raw records hold as many records as they say");
        out
    }

    /// Decodes them (for tests and checks; the broker never needs to).
    pub fn decode(&self) -> Vec<LogRecord> {
        let mut r = Reader::new(self.bytes());
        let mut out = Vec::with_capacity(self.count);
        while !r.is_empty() {
            out.push(decode_log_record(&mut r));
        }
        out
    }
}

/// Appends the bytes of records `skip..skip + take` of a frame body written by
/// [`encode_log_records`] to `out`, counting them.
pub fn copy_log_records_range(body: &[u8], skip: usize, take: usize, out: &mut RawLogRecords) {
    let mut r = Reader::new(&body[LOG_BATCH_HEADER..]);
    let mut index = 0;
    while !r.is_empty() && index < skip {
        skip_log_record(&mut r);
        index += 1;
    }
    let start = r.bytes;
    while !r.is_empty() && index < skip.saturating_add(take) {
        skip_log_record(&mut r);
        index += 1;
        out.count += 1;
    }
    out.frame.extend_from_slice(&start[..start.len() - r.bytes.len()]);
}

/// Encodes raw log records, all appended in leader epoch `epoch`, as one frame: the frame
/// [`encode_log_records`] makes of the records they encode.
pub fn encode_raw_log_records(epoch: u64, records: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_BYTES + LOG_BATCH_HEADER + records.len());
    let start = begin_frame(out);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(records);
    end_frame(out, start);
}

fn decode_log_record(r: &mut Reader<'_>) -> LogRecord {
    decode_log_record_with(r, |_| None)
}

/// A log record, its event's key and value shared with `known(id)`'s when they are equal.
fn decode_log_record_with<'k>(r: &mut Reader<'_>, known: impl Fn(u64) -> Option<&'k Event>) -> LogRecord {
    let (producer, seq, stream_time_ms) = (r.u32(), r.u64(), r.u64());
    let payload = match r.u8() {
        TAG_DATA => Payload::Data(get_event_with(r, known)),
        TAG_END => Payload::EndOfStream,
        tag => panic!("log record with unknown tag {tag}: the checksum passed, so this is a bug"),
    };
    LogRecord { producer, seq, stream_time_ms, payload }
}

/// Encodes a batch of output records as one frame body.
pub fn encode_output_records(records: &[OutputRecord], out: &mut Vec<u8>) {
    encode_output_record_parts(std::slice::from_ref(&records), out);
}

/// As [`encode_output_records`] of `parts` joined, without joining them.
pub fn encode_output_record_parts<R: AsRef<[OutputRecord]>>(parts: &[R], out: &mut Vec<u8>) {
    out.reserve(HEADER_BYTES + parts.iter().map(|p| output_records_bytes(p.as_ref())).sum::<usize>());
    let start = begin_frame(out);
    for r in parts.iter().flat_map(|p| p.as_ref()) {
        put_output_record(out, r);
    }
    end_frame(out, start);
}

/// An upper bound on the bytes `records` encode to: one reservation, no regrowth, whatever
/// their payloads weigh.
pub fn output_records_bytes(records: &[OutputRecord]) -> usize {
    records.iter().map(|r| OUTPUT_RECORD_BYTES + r.id.key.bytes.len() + r.value.len()).sum()
}

/// An upper bound on the bytes a log record encodes to.
fn log_record_bytes(r: &LogRecord) -> usize {
    match &r.payload {
        Payload::Data(e) => 64 + e.key.bytes.len() + e.value.len(),
        Payload::EndOfStream => 24,
    }
}

pub fn put_output_record(out: &mut Vec<u8>, r: &OutputRecord) {
    put_side(out, r.id.side);
    put_bytes(out, &r.id.key.bytes);
    put_origin(out, r.id.origin);
    out.extend_from_slice(&r.id.n.to_le_bytes());
    put_bytes(out, &r.value);
    put_cause(out, r.cause);
}

pub fn get_output_record(r: &mut Reader<'_>) -> OutputRecord {
    let side = get_side(r);
    let key = KeyBytes::from_encoded(r.byte_string());
    let origin = get_origin(r);
    let id = OutputId { side, key, origin, n: r.u32() };
    let value = r.byte_string();
    OutputRecord { id, value, cause: get_cause(r) }
}

/// Decodes a frame body written by [`encode_output_records`].
pub fn decode_output_records(body: &[u8], out: &mut Vec<OutputRecord>) {
    decode_output_records_from(Reader::new(body), out);
}

/// Decodes a frame body written by [`encode_output_records`], which lies in `owner`: the
/// records' long keys and values share `owner` (see [`Reader::within`]).
pub fn decode_output_records_within(owner: &Arc<Vec<u8>>, body: &[u8], out: &mut Vec<OutputRecord>) {
    decode_output_records_from(Reader::within(owner, body), out);
}

fn decode_output_records_from(mut r: Reader<'_>, out: &mut Vec<OutputRecord>) {
    while !r.is_empty() {
        out.push(get_output_record(&mut r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<LogRecord> {
        vec![
            LogRecord {
                producer: 3,
                seq: 9,
                stream_time_ms: 40,
                payload: Payload::Data(Event {
                    id: 12,
                    key: KeyBytes::of(&7u64),
                    value: crate::sdk::codec::encode(&(-5i64, "five")),
                    event_time_ms: 11,
                }),
            },
            LogRecord { producer: 1, seq: 2, stream_time_ms: 41, payload: Payload::EndOfStream },
        ]
    }

    #[test]
    fn a_frame_s_body_is_read_without_its_checksum_but_not_without_its_length() {
        let frame = framed(b"body");
        assert_eq!(frame_body_unchecked(&frame), b"body");
        let torn = &frame[..frame.len() - 1];
        assert!(std::panic::catch_unwind(|| frame_body_unchecked(torn)).is_err(), "a torn frame");
        assert!(std::panic::catch_unwind(|| frame_body_unchecked(&frame[..3])).is_err(), "no header");
    }

    #[test]
    fn log_records_round_trip() {
        let mut bytes = Vec::new();
        encode_log_records(1, &sample(), &mut bytes);
        encode_log_records(2, &sample(), &mut bytes);
        let (bodies, valid) = frames(&bytes);
        assert_eq!(valid, bytes.len());
        let mut out = Vec::new();
        let epochs: Vec<u64> = bodies.iter().map(|b| decode_log_records(b, &mut out)).collect();
        assert_eq!(epochs, [1, 2]);
        assert_eq!(out.len(), 4);
        assert_eq!(&out[..2], &sample()[..]);
        let mut tail = Vec::new();
        decode_log_records_range(bodies[0], 1, 5, &mut tail);
        assert_eq!(tail, sample()[1..], "skipping a record leaves the reader at the next");
    }

    #[test]
    fn a_frame_splits_into_its_epoch_and_each_record_s_bytes() {
        let mut frame = Vec::new();
        encode_log_records(6, &sample(), &mut frame);
        let (epoch, records) = log_record_bytes_of(frames(&frame).0[0]);
        assert_eq!((epoch, records.len()), (6, 2));
        for (bytes, want) in records.iter().zip(sample()) {
            let mut r = Reader::new(bytes);
            assert_eq!(decode_log_record(&mut r), want);
            assert!(r.is_empty(), "one record's bytes, no more");
        }
    }

    /// Output records read within their buffer decode as copies do, their long values
    /// pointing into the buffer; a reader refuses bytes from another buffer.
    #[test]
    fn output_records_read_within_their_buffer_share_it() {
        let long = crate::sdk::codec::encode(&"an output longer than any inline blob".to_string());
        let id = OutputId::main(KeyBytes::of(&7u64), Origin::Content(1), 0);
        let records = vec![
            OutputRecord { id: id.clone(), value: long, cause: Cause { producer: 0, seq: 1 } },
            OutputRecord { id, value: Blob::from_static(b"short"), cause: Cause { producer: 0, seq: 2 } },
        ];
        let mut bytes = vec![0u8; 5];
        encode_output_records(&records, &mut bytes);
        let buf = Arc::new(bytes);
        let body = frames(&buf[5..]).0[0];
        let (mut copied, mut shared) = (Vec::new(), Vec::new());
        decode_output_records(body, &mut copied);
        decode_output_records_within(&buf, body, &mut shared);
        assert_eq!((&copied, &shared), (&records, &records));
        let in_buf = |b: &Blob| buf.as_ptr_range().contains(&b.as_ptr());
        assert!(in_buf(&shared[0].value) && !in_buf(&copied[0].value), "the long value is shared");
        assert!(!in_buf(&shared[1].value), "a short one lives inline");
        let elsewhere = vec![0u8; 8];
        let refused = std::panic::catch_unwind(|| Reader::within(&buf, &elsewhere).is_empty());
        assert!(refused.is_err(), "bytes from another buffer");
    }

    /// Sharing a known event's bytes decodes what plain decoding does; equal bytes are shared
    /// (the same allocation), different ones are read as they lie.
    #[test]
    fn decoding_shares_a_known_event_only_when_its_bytes_are_equal() {
        let long = crate::sdk::codec::encode(&"a value longer than any inline blob".to_string());
        let mut records = sample();
        let Payload::Data(logged) = &mut records[0].payload else { panic!("sample 0 is data") };
        logged.value = long.clone();
        let mut frame = Vec::new();
        encode_log_records(4, &records, &mut frame);
        let body = frames(&frame).0[0];
        let Payload::Data(same) = records[0].payload.clone() else { unreachable!() };
        let same = Event { value: Blob::copy_from_slice(&long), ..same };
        let each = log_record_bytes_of(body).1;
        fn decode<'k>(each: &[&[u8]], known: &dyn Fn(u64) -> Option<&'k Event>) -> Vec<LogRecord> {
            each.iter().map(|record| decode_log_record_sharing(record, known)).collect()
        }
        let shared = decode(&each, &|id| (id == same.id).then_some(&same));
        assert_eq!(shared, records);
        let Payload::Data(got) = &shared[0].payload else { unreachable!() };
        assert_eq!(got.value.as_ptr(), same.value.as_ptr(), "equal bytes are shared");
        let other = Event { value: Blob::from_static(b"something else"), ..same.clone() };
        let read = decode(&each, &|id| (id == other.id).then_some(&other));
        assert_eq!(read, records, "different bytes are read as they lie");
    }

    #[test]
    fn raw_records_are_the_frame_bytes_and_reframe_to_the_same_frame() {
        let mut frame = Vec::new();
        encode_log_records(4, &sample(), &mut frame);
        let body = frames(&frame).0[0];
        let mut raw = RawLogRecords::default();
        copy_log_records_range(body, 0, 2, &mut raw);
        assert_eq!(raw.count, 2);
        assert_eq!(raw.decode(), sample());
        assert_eq!(raw.heads(), [(3, 9), (1, 2)]);
        let mut again = Vec::new();
        encode_raw_log_records(4, raw.bytes(), &mut again);
        assert_eq!(again, frame, "a follower writes the leader's frame byte for byte");
        assert_eq!(raw.clone().into_frame(4), frame, "framed in place, the same frame");
        let mut tail = RawLogRecords::default();
        copy_log_records_range(body, 1, 5, &mut tail);
        assert_eq!((tail.count, tail.decode()), (1, sample()[1..].to_vec()));
        assert_eq!(raw.prefix(1).len() + tail.bytes().len(), raw.bytes().len());
        assert_eq!(raw.prefix(0), &[] as &[u8]);
    }

    /// Raw records decoded into records share their buffer: the records are those plain
    /// decoding gives, long values lie in one allocation in the records' order, and a short
    /// key lives inline.
    #[test]
    fn raw_records_decode_into_records_sharing_one_buffer() {
        let data = |seq: u64, text: &str| LogRecord {
            producer: 3,
            seq,
            stream_time_ms: 40 + seq,
            payload: Payload::Data(Event {
                id: seq,
                key: KeyBytes::of(&seq),
                value: crate::sdk::codec::encode(&text.to_string()),
                event_time_ms: seq,
            }),
        };
        let mut records =
            vec![data(0, "a first value longer than inline"), data(1, "a second, as long as that")];
        records.push(LogRecord { producer: 3, seq: 2, stream_time_ms: 42, payload: Payload::EndOfStream });
        let mut frame = Vec::new();
        encode_log_records(4, &records, &mut frame);
        let mut raw = RawLogRecords::default();
        copy_log_records_range(frames(&frame).0[0], 0, 3, &mut raw);
        assert_eq!(raw.decode(), records);
        // The raw records' own buffer, which decoding them into records keeps (no copy).
        let held = raw.bytes().as_ptr_range();
        let decoded = raw.into_records();
        assert_eq!(decoded, records);
        for r in &decoded[..2] {
            let Payload::Data(e) = &r.payload else { unreachable!("the first two are data") };
            assert!(held.contains(&e.value.as_ptr()), "a long value lies in the raw records' buffer");
            assert!(!held.contains(&e.key.bytes.as_ptr()), "a short key lives inline");
        }
    }

    #[test]
    fn stream_and_output_records_round_trip() {
        let key = KeyBytes::of("card-1");
        let cause = Cause { producer: 1, seq: 4 };
        let carried = Some(Box::new((Side::Named(9), Origin::Timer { at_ms: 5, tag: 6 }, 2)));
        let stream =
            StreamRecord { carried, ..StreamRecord::derived(key.clone(), Blob::from_static(b"v"), 3, cause) };
        let mut out = Vec::new();
        put_stream_record(&mut out, &stream);
        assert_eq!(get_stream_record(&mut Reader::new(&out)), stream);
        let outputs = vec![
            OutputRecord {
                id: OutputId::main(key.clone(), Origin::Content(77), 0),
                value: Blob::new(),
                cause,
            },
            OutputRecord { id: OutputId::late(key, cause), value: Blob::from_static(b"late"), cause },
        ];
        let mut bytes = Vec::new();
        encode_output_records(&outputs, &mut bytes);
        let mut decoded = Vec::new();
        decode_output_records(frames(&bytes).0[0], &mut decoded);
        assert_eq!(decoded, outputs);
    }

    #[test]
    fn torn_frame_is_cut_off() {
        let mut bytes = Vec::new();
        encode_log_records(1, &sample(), &mut bytes);
        let first = bytes.len();
        encode_log_records(1, &sample(), &mut bytes);
        bytes.truncate(bytes.len() - 3);
        assert_eq!(frames(&bytes).1, first);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert_eq!(frames(&bytes).0.len(), 1);
    }
}
