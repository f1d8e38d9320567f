//! The key-by exchange: routes each record to the downstream subtask owning its key, batching
//! per destination.
//!
//! Batches leave when full (`batch_records`) or on `flush`. Each destination is one ordered
//! channel, so records of one key keep their order across the exchange.

use std::io;

use crate::channel::ChannelSender;
use crate::record::StreamRecord;
use crate::workload::mix64;

const KEY_GROUP_SALT: u64 = 0x6b65_792d_6279_5f31;

/// The downstream subtask owning `key`.
pub fn subtask_for_key(key: u64, parallelism: u32) -> u32 {
    assert!(parallelism > 0);
    (mix64(key ^ KEY_GROUP_SALT) % u64::from(parallelism)) as u32
}

pub struct KeyByExchange {
    senders: Vec<ChannelSender>,
    buffers: Vec<Vec<StreamRecord>>,
    batch_records: usize,
}

impl KeyByExchange {
    pub fn new(senders: Vec<ChannelSender>, batch_records: usize) -> Self {
        assert!(!senders.is_empty() && batch_records > 0);
        let buffers = senders.iter().map(|_| Vec::with_capacity(batch_records)).collect();
        KeyByExchange { senders, buffers, batch_records }
    }

    pub async fn push(&mut self, record: StreamRecord) -> io::Result<()> {
        let target = subtask_for_key(record.key, self.senders.len() as u32) as usize;
        self.buffers[target].push(record);
        if self.buffers[target].len() >= self.batch_records {
            self.send(target).await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        for target in 0..self.buffers.len() {
            if !self.buffers[target].is_empty() {
                self.send(target).await?;
            }
        }
        Ok(())
    }

    async fn send(&mut self, target: usize) -> io::Result<()> {
        let batch = std::mem::replace(&mut self.buffers[target], Vec::with_capacity(self.batch_records));
        self.senders[target].send(batch).await
    }

    /// Flushes, then sends barrier `checkpoint` on every channel.
    pub async fn barrier(&mut self, checkpoint: u64) -> io::Result<()> {
        self.flush().await?;
        for sender in &mut self.senders {
            sender.barrier(checkpoint).await?;
        }
        Ok(())
    }

    /// Flushes and closes every channel.
    pub async fn end(&mut self) -> io::Result<()> {
        self.flush().await?;
        for sender in &mut self.senders {
            sender.end().await?;
        }
        Ok(())
    }
}
