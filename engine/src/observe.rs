//! What nodes report to the outside: trace events, stamped and hashed by `sim`.
//!
//! It owns the [`TraceEvent`] vocabulary and the [`NodeContext`] a node boots with. An observer
//! is write-only from the engine's side: nodes never read back what they reported, so the
//! recorder cannot become a shared-memory channel between nodes.

use std::sync::Arc;

use crate::cluster::{ClusterSpec, NodeId};
use crate::disk::DiskRef;

/// One observable event. Numbers only, so that hashing a trace is cheap and stable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A node's boot function started (first boot or restart).
    Boot,
    /// A producer sent a batch for a partition.
    ProduceSent { partition: u32, base_seq: u64, records: u64 },
    /// A producer's batch was acknowledged.
    ProduceAcked { partition: u32, end_seq: u64 },
    /// A broker appended records to its copy of a partition.
    Appended { partition: u32, base_offset: u64, records: u64 },
    /// A partition leader dropped a retried batch it already had.
    DuplicateBatch { partition: u32, producer: u32, base_seq: u64 },
    /// A partition leader advanced its high watermark.
    HighWatermark { partition: u32, offset: u64 },
    /// A source subtask read records from a partition.
    Fetched { partition: u32, offset: u64, records: u64 },
    /// The driver submitted the job.
    JobSubmitted,
    /// A worker started a subtask.
    TaskDeployed { operator: u32, subtask: u32 },
    /// A subtask consumed all of its input and finished.
    TaskFinished { operator: u32, subtask: u32 },
    /// The sink committed a batch of output records from a writer.
    SinkCommitted { writer: u32, records: u64 },
    /// The job finished: every subtask finished.
    JobFinished,
    /// The manager gave up on the job.
    JobFailed,
}

impl TraceEvent {
    /// A stable numeric form: a tag and up to four fields.
    pub fn words(&self) -> (u8, [u64; 3]) {
        use TraceEvent::*;
        match *self {
            Boot => (0, [0; 3]),
            ProduceSent { partition, base_seq, records } => (1, [partition.into(), base_seq, records]),
            ProduceAcked { partition, end_seq } => (2, [partition.into(), end_seq, 0]),
            Appended { partition, base_offset, records } => (3, [partition.into(), base_offset, records]),
            DuplicateBatch { partition, producer, base_seq } => {
                (4, [partition.into(), producer.into(), base_seq])
            }
            HighWatermark { partition, offset } => (5, [partition.into(), offset, 0]),
            Fetched { partition, offset, records } => (6, [partition.into(), offset, records]),
            JobSubmitted => (7, [0; 3]),
            TaskDeployed { operator, subtask } => (8, [operator.into(), subtask.into(), 0]),
            TaskFinished { operator, subtask } => (9, [operator.into(), subtask.into(), 0]),
            SinkCommitted { writer, records } => (10, [writer.into(), records, 0]),
            JobFinished => (11, [0; 3]),
            JobFailed => (12, [0; 3]),
        }
    }
}

/// Receives every trace event of a run.
pub trait Observer: Send + Sync {
    fn record(&self, node: NodeId, event: TraceEvent);
}

pub type ObserverRef = Arc<dyn Observer>;

/// What a node's boot function receives.
#[derive(Clone)]
pub struct NodeContext {
    pub id: NodeId,
    pub cluster: Arc<ClusterSpec>,
    pub disk: DiskRef,
    pub observer: ObserverRef,
}

impl NodeContext {
    pub fn trace(&self, event: TraceEvent) {
        self.observer.record(self.id, event);
    }
}
