//! What the manager keeps in the store so that a successor can take the job over (Flink's job
//! graph store, checkpoint id counter and completed-checkpoint store).
//!
//! Objects, all written with the lease's fencing token:
//! - `job`: the job's id, status, current epoch and its definition (JSON). The epoch is written
//!   before any command of that epoch is sent, so a successor's next epoch is above every
//!   epoch a predecessor used: the job epoch is the fencing token workers and the sink check;
//! - `checkpoint-counter`: the next checkpoint id, written before a checkpoint is triggered, so
//!   a successor never reuses the id of a checkpoint its predecessor began;
//! - the completed checkpoints themselves (`checkpoint` module): `history/` names every one
//!   completed, the latest last.

use std::io;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointMeta};
use crate::job::JobSpec;
use crate::store::StoreClient;

/// The store key of the job's record.
pub const JOB_KEY: &str = "job";
pub(super) const CHECKPOINT_COUNTER_KEY: &str = "checkpoint-counter";

/// Where the job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Status {
    Running,
    /// Stopped with its driver (`restart-job`): resumes when a driver attaches.
    Suspended,
    Finished,
}

/// The job's durable record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StoredJob {
    pub id: u64,
    pub status: Status,
    pub epoch: u64,
    pub spec: JobSpec,
}

impl StoredJob {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a job record serializes")
    }

    fn decode(bytes: &[u8]) -> StoredJob {
        serde_json::from_slice(bytes).expect("the manager wrote this job record")
    }
}

/// The job epoch a job record in the store holds, for an observer of the store: `None` if the
/// bytes are not a job record.
pub fn stored_epoch(bytes: &[u8]) -> Option<u64> {
    serde_json::from_slice::<StoredJob>(bytes).ok().map(|job| job.epoch)
}

pub(super) fn encode_counter(next_id: u64) -> Vec<u8> {
    next_id.to_le_bytes().to_vec()
}

fn decode_counter(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("the manager wrote this counter"))
}

/// What a new leader finds in the store.
pub(super) struct Found {
    pub job: Option<StoredJob>,
    pub latest: Option<CheckpointMeta>,
    /// Every completed checkpoint's id, oldest first (the latest is the last).
    pub completed: Vec<u64>,
    /// The checkpoint counter: ids below it may have been used.
    pub next_checkpoint: u64,
}

/// Reads the job, the latest completed checkpoint and the checkpoint counter. The reads are not
/// one snapshot: a manager stalled between them may find the store moved on, and fails.
pub(super) async fn load(store: &StoreClient) -> io::Result<Found> {
    let job = store.get(JOB_KEY).await?.map(|b| StoredJob::decode(&b));
    let history = store.list(checkpoint::HISTORY_PREFIX).await?;
    let mut completed: Vec<u64> = history.iter().filter_map(|k| checkpoint::history_id(k)).collect();
    completed.sort_unstable();
    let latest_id = completed.last().copied();
    let latest = match latest_id {
        Some(id) => {
            // Gone only if a leader garbage-collected it after completing newer ones: this
            // manager was stalled mid-load, and its lease is surely lost.
            let Some(bytes) = store.get(&checkpoint::meta_key(id)).await? else {
                let gone = format!("checkpoint {id} was collected while loading: a newer leader moved on");
                return Err(io::Error::other(gone));
            };
            Some(CheckpointMeta::decode(&bytes).expect("checkpoint metadata decodes"))
        }
        None => None,
    };
    let counter = store.get(CHECKPOINT_COUNTER_KEY).await?.map_or(1, |b| decode_counter(&b));
    let next_checkpoint = counter.max(latest.as_ref().map_or(1, |c| c.id + 1));
    Ok(Found { job, latest, completed, next_checkpoint })
}
