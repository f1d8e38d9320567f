//! The operators a subtask runs, one per file.
//!
//! Stateless operators (`map`, `filter`, a Nexmark query's source-side step) transform one
//! [`StreamRecord`] at a time; `key_by` routes records to downstream subtasks; `keyed` holds the
//! keyed, stateful operators, written against the public API (`crate::api`); `source` reads
//! the log and `sink_writer` writes to the sink node. Chaining them into a running subtask is
//! the worker's job (`worker::source_task`, `worker::channel_task`).

pub mod filter;
pub mod key_by;
pub mod keyed;
pub mod map;
pub mod sink_writer;
pub mod source;

use crate::job::OperatorKind;
use crate::pipeline::nexmark::Query;
use crate::pipeline::WindowSpec;
use crate::record::StreamRecord;

/// A record-at-a-time operator that keeps no state.
#[derive(Clone, Copy, Debug)]
pub enum Stateless {
    Map(map::Map),
    Filter(filter::Filter),
    NexmarkPrepare(Query, WindowSpec),
}

impl Stateless {
    /// The operator for a logical kind, if that kind is stateless.
    pub fn from_kind(kind: OperatorKind) -> Option<Self> {
        match kind {
            OperatorKind::Map { scale, offset } => Some(Stateless::Map(map::Map { scale, offset })),
            OperatorKind::Filter { drop_multiples_of } => {
                Some(Stateless::Filter(filter::Filter { drop_multiples_of }))
            }
            OperatorKind::NexmarkPrepare { query, window } => Some(Stateless::NexmarkPrepare(query, window)),
            _ => None,
        }
    }

    pub fn apply(&self, record: StreamRecord) -> Option<StreamRecord> {
        match self {
            Stateless::Map(m) => Some(m.apply(record)),
            Stateless::Filter(f) => f.keep(&record).then_some(record),
            Stateless::NexmarkPrepare(query, window) => keyed::nexmark::prepare(*query, *window, record),
        }
    }
}

/// Runs a record through a sequence of stateless operators.
pub fn apply_all(ops: &[Stateless], record: StreamRecord) -> Option<StreamRecord> {
    ops.iter().try_fold(record, |r, op| op.apply(r))
}
