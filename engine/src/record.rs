//! The data the engine moves: input events, log records, stream records and output records.
//!
//! Every type here is plain data: keys and values are encoded bytes (`crate::sdk::Blob`, shared
//! and immutable, so a clone is a counter increment), and nothing holds a handle, so moving one
//! between nodes over the simulated network is a copy in all but name.
//!
//! # Time
//! - *Event time* (`event_time_ms`) is when the event happened, as its producer says; it may run
//!   behind the order in which events reach the log.
//! - *Stream time* (`stream_time_ms`) is when the log's leader appended the record; the broker
//!   stamps it and the log stores it, so a replay reads the same value. `stream − event` is the
//!   record's time skew.

use crate::sdk::Blob;

pub use crate::sdk::codec::KeyBytes;
pub use crate::sdk::operator::{Origin, Side};

/// One input event as a producer generates it: its key and value encoded (see `crate::sdk`),
/// and its event time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Unique over the whole run's input: the event's global number in the workload.
    pub id: u64,
    pub key: KeyBytes,
    pub value: Blob,
    pub event_time_ms: u64,
}

/// What a log record carries: a data event, or a producer's end-of-stream marker for its partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Data(Event),
    EndOfStream,
}

/// One record in a partition of the replicated log.
///
/// `(producer, seq)` identifies it within its partition: `seq` counts the producer's records for
/// that partition from 0, so a retried batch carries the same numbers and is recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub producer: u32,
    pub seq: u64,
    /// When the partition's leader appended it (0 until then); followers keep the leader's stamp.
    pub stream_time_ms: u64,
    pub payload: Payload,
}

/// The input record an output descends from: its producer and that producer's sequence number
/// in the key's partition. With the key, it identifies one input event of the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Cause {
    pub producer: u32,
    pub seq: u64,
}

/// A keyed record flowing between operators: an input event (from a source), or what a keyed
/// stage emitted for the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRecord {
    /// The input event it is (sources); 0 for derived records.
    pub id: u64,
    /// What the key-by exchange routes on and keyed state is scoped to.
    pub key: KeyBytes,
    pub value: Blob,
    pub event_time_ms: u64,
    pub stream_time_ms: u64,
    pub cause: Cause,
    /// Where the record is in the log: a stateful subtask that replays input (a promoted copy,
    /// or one fed by a restarted source) skips offsets it already applied.
    pub partition: u32,
    pub offset: u64,
    /// An output of an earlier stage's side output (a late record, for one), carried through
    /// the later stages to the sink: its side, origin and index. Its key, value and cause are
    /// the output's.
    /// Boxed: it is rare, and every record pays for its size at every hop.
    pub carried: Option<Box<(Side, Origin, u32)>>,
}

impl StreamRecord {
    /// The stream record of a log record's event.
    pub fn of(e: &Event, stream_time_ms: u64, cause: Cause, partition: u32, offset: u64) -> Self {
        StreamRecord::from_event(e.clone(), stream_time_ms, cause, partition, offset)
    }

    /// [`StreamRecord::of`], taking the event.
    pub fn from_event(e: Event, stream_time_ms: u64, cause: Cause, partition: u32, offset: u64) -> Self {
        StreamRecord {
            id: e.id,
            key: e.key,
            value: e.value,
            event_time_ms: e.event_time_ms,
            stream_time_ms,
            cause,
            partition,
            offset,
            carried: None,
        }
    }

    /// A record a keyed stage emitted for the next: no stream time and no log position of its
    /// own (dedup by offset applies to first stages only).
    pub fn derived(key: KeyBytes, value: Blob, event_time_ms: u64, cause: Cause) -> Self {
        StreamRecord {
            id: 0,
            key,
            value,
            event_time_ms,
            stream_time_ms: 0,
            cause,
            partition: 0,
            offset: 0,
            carried: None,
        }
    }
}

/// What the late side output holds for a record an event-time stage found late: its event
/// time, the watermark that found it late, its partition (with its cause, it names the input:
/// 0 for a record an earlier stage derived), the input as the stage received it, and the
/// simulated time it arrived: what lets a checker ask whether the sources had read enough by
/// then to justify that watermark.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Late {
    pub event_time_ms: u64,
    pub watermark: u64,
    pub partition: u32,
    pub input: Vec<u8>,
    pub arrived_ms: u64,
}

/// The name of the side output late records go to.
pub const LATE: &str = "late";

/// The late side output.
pub fn late_side() -> Side {
    Side::Named(crate::sdk::state::namespace(LATE))
}

/// The stable identity of an output record: its side, its key, and its origin — the input or
/// timer whose handling emitted it, or its content (see `crate::sdk::operator`) — with its
/// index among that origin's outputs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutputId {
    pub side: Side,
    pub key: KeyBytes,
    pub origin: Origin,
    pub n: u32,
}

impl OutputId {
    pub fn main(key: KeyBytes, origin: Origin, n: u32) -> Self {
        OutputId { side: Side::Main, key, origin, n }
    }

    /// The late output's id for the input `cause` of `key`.
    pub fn late(key: KeyBytes, cause: Cause) -> Self {
        OutputId { side: late_side(), key, origin: Origin::Input(cause), n: 0 }
    }
}

/// One record the job writes to the sink: its identity, its encoded value (what it means is
/// the pipeline's to say), and the input record it descends from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    pub id: OutputId,
    pub value: Blob,
    pub cause: Cause,
}
