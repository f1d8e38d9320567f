//! Partition leadership as recorded in the store: who leads each partition, in which leader
//! epoch, and which replicas are in sync.
//!
//! The store's copy is the truth, changed only by compare-and-set (as Kafka's controller
//! changes ZooKeeper's): a replica becomes leader by bumping the epoch, and a leader changes
//! its in-sync set only under the epoch it leads. A write based on a stale copy fails, and
//! the writer learns it was deposed.

use crate::codec::{self, Reader};
use crate::store::StoreClient;

/// The store record of one partition's leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub epoch: u64,
    pub leader: u32,
    /// Replicas holding every committed record: only they may become leader.
    pub isr: Vec<u32>,
}

/// The store key of a partition's leadership record.
pub fn key(partition: u32) -> String {
    format!("partitions/{partition}")
}

impl PartitionState {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(16 + 4 * self.isr.len());
        body.extend_from_slice(&self.epoch.to_le_bytes());
        body.extend_from_slice(&self.leader.to_le_bytes());
        for b in &self.isr {
            body.extend_from_slice(&b.to_le_bytes());
        }
        codec::framed(&body)
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let body = codec::first_frame(bytes)?;
        let mut r = Reader::new(body);
        let (epoch, leader) = (r.u64(), r.u32());
        let mut isr = Vec::new();
        while !r.is_empty() {
            isr.push(r.u32());
        }
        Some(PartitionState { epoch, leader, isr })
    }
}

/// What a compare-and-set of a leadership record came to.
pub enum Swap {
    Done,
    /// Someone else changed the record: here is what it holds now.
    Lost(Option<PartitionState>),
    /// The store did not answer.
    Unreachable,
}

/// Reads a partition's leadership record; `Err` if the store is unreachable.
pub async fn read(store: &StoreClient, partition: u32) -> Result<Option<PartitionState>, ()> {
    let bytes = store.get(&key(partition)).await.map_err(drop)?;
    Ok(bytes.and_then(|b| PartitionState::decode(&b)))
}

/// Replaces `expected` (`None`: no record yet) by `next`.
pub async fn swap(
    store: &StoreClient,
    partition: u32,
    expected: Option<&PartitionState>,
    next: &PartitionState,
) -> Swap {
    match store.cas(&key(partition), expected.map(PartitionState::encode), next.encode()).await {
        Ok(Ok(())) => Swap::Done,
        Ok(Err(current)) => Swap::Lost(current.and_then(|b| PartitionState::decode(&b))),
        Err(_) => Swap::Unreachable,
    }
}
