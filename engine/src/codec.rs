//! Byte encodings for what nodes write to disk, with framing that detects torn writes.
//!
//! A frame is `len: u32 | crc32(body): u32 | body`. Reading stops at the first frame that is
//! short or fails its checksum: that is where a crash tore the file, and nothing after it was
//! acknowledged (a write is acknowledged only after `sync`).
//!
//! It does not encode wire messages: those move as typed values through the simulated network.

use crate::record::{Cause, Event, LogRecord, OutputId, OutputRecord, Payload, Side, StreamRecord};

/// Bytes of one encoded output record.
const OUTPUT_RECORD_BYTES: usize = 61;

/// Bytes of a frame's header: length and checksum.
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
fn begin_frame(out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.len()
}

/// Fills in the header of the frame whose body starts at `start` and runs to the end of `out`.
fn end_frame(out: &mut [u8], start: usize) {
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

/// A little-endian reader over a frame body; panics on a short body, which framing rules out.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
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

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

const TAG_DATA: u8 = 1;
const TAG_END: u8 = 2;

/// Bytes before a log batch's records: the leader epoch that appended them.
const LOG_BATCH_HEADER: usize = 8;

/// Encodes a batch of log records, all appended in leader epoch `epoch`, as one frame.
pub fn encode_log_records(epoch: u64, records: &[LogRecord], out: &mut Vec<u8>) {
    out.reserve(HEADER_BYTES + LOG_BATCH_HEADER + records.len() * 86);
    let start = begin_frame(out);
    let body = out;
    body.extend_from_slice(&epoch.to_le_bytes());
    for r in records {
        body.extend_from_slice(&r.producer.to_le_bytes());
        body.extend_from_slice(&r.seq.to_le_bytes());
        body.extend_from_slice(&r.stream_time_ms.to_le_bytes());
        match r.payload {
            Payload::Data(e) => {
                body.push(TAG_DATA);
                put_event(body, &e);
            }
            Payload::EndOfStream => body.push(TAG_END),
        }
    }
    end_frame(body, start);
}

/// Appends an event's fields.
pub fn put_event(out: &mut Vec<u8>, e: &Event) {
    out.extend_from_slice(&e.id.to_le_bytes());
    out.push(e.kind);
    out.extend_from_slice(&e.key.to_le_bytes());
    out.extend_from_slice(&e.value.to_le_bytes());
    for a in e.aux {
        out.extend_from_slice(&a.to_le_bytes());
    }
    out.extend_from_slice(&e.event_time_ms.to_le_bytes());
}

pub fn get_event(r: &mut Reader<'_>) -> Event {
    let (id, kind, key, value) = (r.u64(), r.u8(), r.u64(), r.i64());
    let aux = [r.i64(), r.i64(), r.i64()];
    Event { id, kind, key, value, aux, event_time_ms: r.u64() }
}

/// Appends a stream record's fields.
pub fn put_stream_record(out: &mut Vec<u8>, r: &StreamRecord) {
    let event = Event {
        id: r.id,
        kind: r.kind,
        key: r.key,
        value: r.value,
        aux: r.aux,
        event_time_ms: r.event_time_ms,
    };
    put_event(out, &event);
    out.extend_from_slice(&r.stream_time_ms.to_le_bytes());
    out.extend_from_slice(&r.cause.producer.to_le_bytes());
    out.extend_from_slice(&r.cause.seq.to_le_bytes());
    out.extend_from_slice(&r.partition.to_le_bytes());
    out.extend_from_slice(&r.offset.to_le_bytes());
}

pub fn get_stream_record(r: &mut Reader<'_>) -> StreamRecord {
    let e = get_event(r);
    let stream_time_ms = r.u64();
    let cause = Cause { producer: r.u32(), seq: r.u64() };
    let (partition, offset) = (r.u32(), r.u64());
    StreamRecord::of(&e, stream_time_ms, cause, partition, offset)
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
    while !r.is_empty() && index < skip.saturating_add(take) {
        let record = decode_log_record(&mut r);
        if index >= skip {
            out.push(record);
        }
        index += 1;
    }
}

fn decode_log_record(r: &mut Reader<'_>) -> LogRecord {
    let (producer, seq, stream_time_ms) = (r.u32(), r.u64(), r.u64());
    let payload = match r.u8() {
        TAG_DATA => Payload::Data(get_event(r)),
        TAG_END => Payload::EndOfStream,
        tag => panic!("log record with unknown tag {tag}: the checksum passed, so this is a bug"),
    };
    LogRecord { producer, seq, stream_time_ms, payload }
}

/// Encodes a batch of output records as one frame body.
pub fn encode_output_records(records: &[OutputRecord], out: &mut Vec<u8>) {
    out.reserve(HEADER_BYTES + records.len() * OUTPUT_RECORD_BYTES);
    let start = begin_frame(out);
    for r in records {
        out.push(r.id.side as u8);
        out.extend_from_slice(&r.id.key.to_le_bytes());
        out.extend_from_slice(&r.id.seq.to_le_bytes());
        for v in r.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&r.cause.producer.to_le_bytes());
        out.extend_from_slice(&r.cause.seq.to_le_bytes());
    }
    end_frame(out, start);
}

/// Decodes a frame body written by [`encode_output_records`].
pub fn decode_output_records(body: &[u8], out: &mut Vec<OutputRecord>) {
    let mut r = Reader::new(body);
    while !r.is_empty() {
        let side = match r.u8() {
            0 => Side::Main,
            1 => Side::Late,
            other => panic!("output record on unknown side {other}: the checksum passed, so this is a bug"),
        };
        let id = OutputId { side, key: r.u64(), seq: r.u64() };
        let values = [r.i64(), r.i64(), r.i64(), r.i64()];
        let cause = Cause { producer: r.u32(), seq: r.u64() };
        out.push(OutputRecord { id, values, cause });
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
                    kind: 2,
                    key: 7,
                    value: -5,
                    aux: [1, -2, 3],
                    event_time_ms: 11,
                }),
            },
            LogRecord { producer: 1, seq: 2, stream_time_ms: 41, payload: Payload::EndOfStream },
        ]
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
