//! What nodes report to the outside: trace events, stamped and hashed by `sim`.
//!
//! It owns the [`TraceEvent`] vocabulary and the [`NodeContext`] a node boots with. An observer
//! is write-only from the engine's side: nodes never read back what they reported, so the
//! recorder cannot become a shared-memory channel between nodes.

use std::sync::Arc;

use crate::cluster::{ClusterSpec, NodeId};
use crate::disk::DiskRef;
use crate::plugin::Catalog;

/// One observable event. Numbers only, so that hashing a trace is cheap and stable.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
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
    /// A broker that believed it led a partition refused a batch starting past the producer's
    /// `next_seq` in its copy: another replica led and acknowledged the records between.
    ProduceGap { partition: u32, producer: u32, base_seq: u64, next_seq: u64 },
    /// A partition leader of `epoch` advanced its high watermark.
    HighWatermark { partition: u32, epoch: u64, offset: u64 },
    /// A broker cut records from `offset` on (the first of them of leader epoch `epoch`) from
    /// its copy of a partition: they were of a lost epoch, never committed.
    Truncated { partition: u32, epoch: u64, offset: u64 },
    /// A broker became the leader of a partition in a new leader epoch.
    LeaderElected { partition: u32, epoch: u64 },
    /// A broker learned it no longer leads a partition (it led in `epoch`).
    LeaderResigned { partition: u32, epoch: u64 },
    /// A partition leader changed the in-sync replica set to `size` replicas.
    IsrChanged { partition: u32, epoch: u64, size: u32 },
    /// The driver submitted the job.
    JobSubmitted,
    /// A worker started a copy of subtask `subtask` of chain `operator`, of job epoch `epoch` and
    /// generation `generation`.
    TaskDeployed { operator: u32, subtask: u32, epoch: u64, generation: u32 },
    /// Source subtask `subtask` of job epoch `epoch` starts reading `partition` at `offset`: its
    /// restored position, or under at-most-once the offset committed last.
    SourceResumed { subtask: u32, epoch: u64, partition: u32, offset: u64 },
    /// Source subtask `subtask` of job epoch `epoch` read `records` records of `partition` from
    /// `offset` on.
    SourceRead { subtask: u32, epoch: u64, partition: u32, offset: u64, records: u64 },
    /// A subtask consumed all of its input and finished.
    TaskFinished { operator: u32, subtask: u32 },
    /// The sink committed a batch of output records from a writer.
    SinkCommitted { writer: u32, records: u64 },
    /// The job finished: every subtask finished.
    JobFinished,
    /// The coordinator injected barrier `checkpoint` at the sources.
    CheckpointTriggered { checkpoint: u64 },
    /// Checkpoint metadata is durable in the store: the checkpoint is complete.
    CheckpointCompleted { checkpoint: u64 },
    /// The coordinator gave up on a checkpoint (timeout, or a recovery began).
    CheckpointAborted { checkpoint: u64 },
    /// The manager declared a worker dead (missed heartbeats).
    WorkerDead { worker: u32 },
    /// The manager began a recovery: new epoch, restore from `checkpoint` (0: from the start).
    RecoveryStarted { epoch: u64, checkpoint: u64 },
    /// The manager decided to roll the job back into job epoch `epoch`, for `cause`. Traced as
    /// it decides; `RecoveryStarted` (or `JobSuspended`) follows once the epoch is durable and
    /// the checkpoint in progress is settled, unless a newer decision overtakes it.
    RollbackDecided { epoch: u64, cause: RollbackCause },
    /// The sink refused a writer's request from an older, fenced epoch.
    SinkFenced { writer: u32, epoch: u64 },
    /// A channel, acknowledgement or report from an older epoch was dropped.
    StaleEpoch { epoch: u64 },
    /// The manager gave up on the job.
    JobFailed,
    /// A manager took the leadership lease in lease epoch `lease`.
    LeaseAcquired { lease: u64 },
    /// The store accepted a manager's write of lease epoch `lease` (its acquisition or a
    /// renewal) sent at `sent_ms`: by the lease protocol the manager may act until
    /// `sent_ms + manager_lease_ms`, and no longer unless a later write lands.
    LeaseGranted { lease: u64, sent_ms: u64 },
    /// A manager learned it lost the lease of `lease` to a successor.
    LeaseLost { lease: u64 },
    /// The leading manager of lease epoch `lease` sent a command of job epoch `epoch`.
    Acting { lease: u64, epoch: u64 },
    /// A driver attached to a job already submitted (after a driver or manager loss).
    JobAttached,
    /// The manager found the driver silent past the heartbeat timeout.
    DriverLost,
    /// The job stopped with its driver (`restart-job`): epoch `epoch` runs nothing.
    JobSuspended { epoch: u64 },
    /// Workers were lost under replication: `promoted` copies took over as primaries and
    /// `restarted` sources were started again, within `epoch` and with no rollback; `checkpoint`
    /// is the latest completed one, what the promoted copies' state and the sink agree on.
    Failover { epoch: u64, checkpoint: u64, promoted: u32, restarted: u32 },
    /// The manager replaced subtask `subtask` of chain `chain` in job epoch `epoch` by a new
    /// generation `generation` (a promoted copy or a restarted source): acknowledgements of the
    /// older generations no longer count.
    TaskReplaced { epoch: u64, chain: u32, subtask: u32, generation: u32 },
    /// The checkpoint coordinator counted generation `generation`'s acknowledgement of
    /// `checkpoint` from subtask `subtask` of chain `chain`, in job epoch `epoch`.
    CheckpointAckCounted { epoch: u64, checkpoint: u64, chain: u32, subtask: u32, generation: u32 },
    /// A standby or secondary took over as primary; `caught_up`: it held the state of the
    /// latest completed checkpoint without reading the store.
    Promoted { operator: u32, subtask: u32, generation: u32, caught_up: bool },
    /// A subtask read this much state from the store.
    StateLoaded { bytes: u64 },
    /// A passive primary sent a standby its state as a base.
    StateShipped { bytes: u64 },
    /// The sink answered that it no longer holds open transaction `txn` of writer `writer`'s
    /// epoch `epoch` (`SinkResponse::Aborted`): by its contract only a crash loses one.
    SinkTxnLost { writer: u32, epoch: u64, txn: u64 },
}

impl TraceEvent {
    /// A stable numeric form: a tag and up to four fields. Tags 6, 18 and 35 are retired
    /// (the simulator now reads what the sources read, when a job was restored, and when output
    /// resumed from the sources' reads, the workers' deployments and the sink's log).
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
            HighWatermark { partition, epoch, offset } => (5, [partition.into(), offset, epoch]),
            JobSubmitted => (7, [0; 3]),
            TaskDeployed { operator, subtask, epoch, generation } => {
                (8, [operator.into(), u64::from(subtask) << 32 | u64::from(generation), epoch])
            }
            TaskFinished { operator, subtask } => (9, [operator.into(), subtask.into(), 0]),
            SinkCommitted { writer, records } => (10, [writer.into(), records, 0]),
            JobFinished => (11, [0; 3]),
            JobFailed => (12, [0; 3]),
            CheckpointTriggered { checkpoint } => (13, [checkpoint, 0, 0]),
            CheckpointCompleted { checkpoint } => (14, [checkpoint, 0, 0]),
            CheckpointAborted { checkpoint } => (15, [checkpoint, 0, 0]),
            WorkerDead { worker } => (16, [worker.into(), 0, 0]),
            RecoveryStarted { epoch, checkpoint } => (17, [epoch, checkpoint, 0]),
            SinkFenced { writer, epoch } => (19, [writer.into(), epoch, 0]),
            StaleEpoch { epoch } => (20, [epoch, 0, 0]),
            Truncated { partition, epoch, offset } => (21, [partition.into(), offset, epoch]),
            LeaderElected { partition, epoch } => (22, [partition.into(), epoch, 0]),
            LeaderResigned { partition, epoch } => (23, [partition.into(), epoch, 0]),
            IsrChanged { partition, epoch, size } => (24, [partition.into(), epoch, size.into()]),
            LeaseAcquired { lease } => (25, [lease, 0, 0]),
            LeaseLost { lease } => (26, [lease, 0, 0]),
            Acting { lease, epoch } => (27, [lease, epoch, 0]),
            JobAttached => (28, [0; 3]),
            DriverLost => (29, [0; 3]),
            JobSuspended { epoch } => (30, [epoch, 0, 0]),
            Failover { epoch, checkpoint, promoted, restarted } => {
                (31, [epoch, checkpoint, u64::from(promoted) << 32 | u64::from(restarted)])
            }
            Promoted { operator, subtask, generation, caught_up } => {
                (32, [operator.into(), subtask.into(), u64::from(generation) << 1 | u64::from(caught_up)])
            }
            StateLoaded { bytes } => (33, [bytes, 0, 0]),
            StateShipped { bytes } => (34, [bytes, 0, 0]),
            ProduceGap { partition, producer, base_seq, next_seq } => {
                (36, [u64::from(partition) << 32 | u64::from(producer), base_seq, next_seq])
            }
            SourceResumed { subtask, epoch, partition, offset } => {
                (37, [u64::from(subtask) << 32 | u64::from(partition), epoch, offset])
            }
            SourceRead { subtask, epoch, partition, offset, records } => {
                (38, [u64::from(subtask) << 32 | u64::from(partition), epoch << 32 | records, offset])
            }
            LeaseGranted { lease, sent_ms } => (39, [lease, sent_ms, 0]),
            TaskReplaced { epoch, chain, subtask, generation } => {
                (40, [epoch, u64::from(chain) << 32 | u64::from(subtask), generation.into()])
            }
            SinkTxnLost { writer, epoch, txn } => (42, [writer.into(), epoch, txn]),
            RollbackDecided { epoch, cause } => (43, [epoch, cause as u64, 0]),
            CheckpointAckCounted { epoch, checkpoint, chain, subtask, generation } => (
                41,
                [
                    checkpoint,
                    u64::from(chain) << 32 | u64::from(subtask),
                    epoch << 32 | u64::from(generation),
                ],
            ),
        }
    }
}

/// Why a manager rolled its job back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackCause {
    /// Workers were lost and the job could not fail over (or does not replicate).
    WorkerLost,
    /// A subtask reported a failure.
    TaskFailed,
    /// The driver went silent and the job stops with it (`restart-job`).
    DriverLost,
    /// A driver attached to a suspended job: it resumes.
    DriverAttached,
    /// A new leader took the job over from the store.
    Takeover,
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
    /// The pipelines this node can build, by name.
    pub catalog: Arc<Catalog>,
    pub disk: DiskRef,
    pub observer: ObserverRef,
}

impl NodeContext {
    pub fn trace(&self, event: TraceEvent) {
        self.observer.record(self.id, event);
    }
}
