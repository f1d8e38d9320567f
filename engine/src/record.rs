//! The data the engine moves: input events, log records, stream records and output records.
//!
//! Every type here is plain data (no handles, no shared pointers), so moving one between nodes
//! over the simulated network is a copy in all but name.
//!
//! # Time
//! - *Event time* (`event_time_ms`) is when the event happened, as its producer says; it may run
//!   behind the order in which events reach the log.
//! - *Stream time* (`stream_time_ms`) is when the log's leader appended the record; the broker
//!   stamps it and the log stores it, so a replay reads the same value. `stream − event` is the
//!   record's time skew.

/// One input event as a producer generates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Unique over the whole run's input: the event's global number in the workload.
    pub id: u64,
    /// Which input stream the event belongs to (the synthetic workload has one, 0; Nexmark has
    /// person 0, auction 1, bid 2).
    pub kind: u8,
    pub key: u64,
    pub value: i64,
    /// Further payload; what each field means depends on `kind`.
    pub aux: [i64; 3],
    pub event_time_ms: u64,
}

/// What a log record carries: a data event, or a producer's end-of-stream marker for its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    Data(Event),
    EndOfStream,
}

/// One record in a partition of the replicated log.
///
/// `(producer, seq)` identifies it within its partition: `seq` counts the producer's records for
/// that partition from 0, so a retried batch carries the same numbers and is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub producer: u32,
    pub seq: u64,
    /// When the partition's leader appended it (0 until then); followers keep the leader's stamp.
    pub stream_time_ms: u64,
    pub payload: Payload,
}

/// The input record an output descends from: its producer and that producer's sequence number
/// in the key's partition. With the key, it identifies one input event of the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cause {
    pub producer: u32,
    pub seq: u64,
}

/// A keyed record flowing between operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRecord {
    /// The input event it is (sources) or the identity an operator gave it (derived records).
    pub id: u64,
    pub kind: u8,
    /// What the key-by exchange routes on and keyed state is scoped to.
    pub key: u64,
    pub value: i64,
    pub aux: [i64; 3],
    pub event_time_ms: u64,
    pub stream_time_ms: u64,
    pub cause: Cause,
    /// Where the record is in the log: a stateful subtask that replays input (a promoted copy,
    /// or one fed by a restarted source) skips offsets it already applied.
    pub partition: u32,
    pub offset: u64,
}

impl StreamRecord {
    /// The stream record of a log record's event.
    pub fn of(e: &Event, stream_time_ms: u64, cause: Cause, partition: u32, offset: u64) -> Self {
        StreamRecord {
            id: e.id,
            kind: e.kind,
            key: e.key,
            value: e.value,
            aux: e.aux,
            event_time_ms: e.event_time_ms,
            stream_time_ms,
            cause,
            partition,
            offset,
        }
    }
}

impl StreamRecord {
    /// A record an operator derives for the next keyed stage: no stream time and no log
    /// position of its own (dedup by offset applies to first stages only).
    pub fn derived(
        id: u64,
        kind: u8,
        key: u64,
        value: i64,
        aux: [i64; 3],
        event_time_ms: u64,
        cause: Cause,
    ) -> Self {
        let event = Event { id, kind, key, value, aux, event_time_ms };
        StreamRecord::of(&event, 0, cause, 0, 0)
    }
}

/// Which output stream a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// The job's results.
    Main,
    /// Input that arrived behind the watermark by more than the allowed lateness.
    Late,
}

/// The stable identity of an output record. On the main side it is what the operator defines
/// (a key and its output sequence number; a key and a window's end; ...); on the late side it
/// is the late input's key and event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutputId {
    pub side: Side,
    pub key: u64,
    pub seq: u64,
}

impl OutputId {
    pub fn main(key: u64, seq: u64) -> Self {
        OutputId { side: Side::Main, key, seq }
    }

    pub fn late(key: u64, event_id: u64) -> Self {
        OutputId { side: Side::Late, key, seq: event_id }
    }
}

/// One record the job writes to the sink: its identity, its values (what each means is the
/// pipeline's to say), and the input record that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    pub id: OutputId,
    pub values: [i64; 4],
    pub cause: Cause,
}
