//! The data the engine moves: input events, log records, stream records and output records.
//!
//! Every type here is plain data (no handles, no shared pointers), so moving one between nodes
//! over the simulated network is a copy in all but name.

/// One input event as a producer generates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub key: u64,
    pub value: i64,
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
    pub key: u64,
    pub value: i64,
    pub event_time_ms: u64,
    pub cause: Cause,
    /// Where the record is in the log: a stateful subtask that replays input (a promoted copy,
    /// or one fed by a restarted source) skips offsets it already applied.
    pub partition: u32,
    pub offset: u64,
}

/// The stable identity of an output record: the key and the key's output sequence number (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutputId {
    pub key: u64,
    pub seq: u64,
}

/// One record the job writes to the sink: the running aggregate of a key after its `seq`-th record,
/// and the input record that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    pub id: OutputId,
    pub count: u64,
    pub sum: i64,
    pub cause: Cause,
}
