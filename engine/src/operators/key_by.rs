//! The key-by exchange: routes each record to the downstream subtask owning its key, batching
//! per destination.
//!
//! Batches leave when full (`batch_records`) or on `flush`. Each destination is one ordered
//! channel per copy taking its input (its primary, or under active replication every replica),
//! so records of one key keep their order across the exchange, on every copy.
//!
//! Under replication the exchange survives its destinations' failures:
//! - a copy whose channel breaks is dropped, and the rest of the destination's copies go on;
//! - the manager names a destination's new copies (a promoted standby, the surviving replicas)
//!   in a rewire, which also interrupts a send blocked on a dead copy's credits;
//! - under passive replication every batch is kept in a backlog until a checkpoint after it
//!   completes (upstream backup), and replayed to a newly opened copy: the standby promoted in
//!   the primary's place holds the state as of the latest completed checkpoint, and skips what
//!   it already applied.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::rc::Rc;

use tokio::sync::Notify;

use crate::channel::{ChannelSender, Upstream};
use crate::cluster::{NodeId, Role, WORKER_DATA_PORT};
use crate::job::TaskId;
use crate::net::Client;
use crate::record::StreamRecord;
use crate::workload::mix64;

const KEY_GROUP_SALT: u64 = 0x6b65_792d_6279_5f31;

/// The downstream subtask owning `key`.
pub fn subtask_for_key(key: u64, parallelism: u32) -> u32 {
    assert!(parallelism > 0);
    (mix64(key ^ KEY_GROUP_SALT) % u64::from(parallelism)) as u32
}

/// New copies for destinations, posted by the worker and taken by the exchange.
#[derive(Clone, Default)]
pub struct Rewires {
    pending: Rc<RefCell<BTreeMap<u32, Vec<u32>>>>,
    notify: Rc<Notify>,
}

impl Rewires {
    /// Names the workers whose copies of destination `subtask` take its input from now on.
    pub fn post(&self, subtask: u32, workers: Vec<u32>) {
        self.pending.borrow_mut().insert(subtask, workers);
        self.notify.notify_waiters();
    }

    /// Resolves when a rewire is posted (only while awaited: check `is_empty` first).
    pub async fn posted(&self) {
        self.notify.notified().await
    }

    pub fn is_empty(&self) -> bool {
        self.pending.borrow().is_empty()
    }

    fn drops(&self, subtask: u32, worker: u32) -> bool {
        self.pending.borrow().get(&subtask).is_some_and(|workers| !workers.contains(&worker))
    }

    fn take(&self) -> BTreeMap<u32, Vec<u32>> {
        std::mem::take(&mut self.pending.borrow_mut())
    }
}

/// Resolves once a rewire of destination `subtask` is posted that drops the copy on `worker`
/// (a copy that stays must get everything, in order).
async fn rewired_away(rewires: &Rewires, subtask: u32, worker: u32) {
    while !rewires.drops(subtask, worker) {
        rewires.posted().await;
    }
}

/// How the exchange opens channels.
pub struct Wiring {
    pub client: Rc<Client>,
    pub epoch: u64,
    pub from: Upstream,
    pub downstream_chain: u32,
    /// Replicated recovery: broken copies are dropped instead of failing the subtask.
    pub tolerate_breaks: bool,
    /// Passive replication: keep a backlog for replay to promoted copies.
    pub backlog: bool,
    pub rewires: Rewires,
}

struct Copy {
    worker: u32,
    sender: Option<ChannelSender>,
}

#[derive(Clone)]
enum Sent {
    Batch(Vec<StreamRecord>),
    Barrier(u64),
    Watermark { at: u64, idle: bool },
    End,
}

struct Destination {
    buffer: Vec<StreamRecord>,
    copies: Vec<Copy>,
    /// Batches and barriers sent since the latest checkpoint known complete.
    backlog: VecDeque<Sent>,
}

pub struct KeyByExchange {
    wiring: Wiring,
    dests: Vec<Destination>,
    batch_records: usize,
    /// The watermark last sent on every channel: a copy opened later gets it after the
    /// backlog, or it would wait for the next one — and after the end of time there is none.
    watermark: Option<(u64, bool)>,
}

impl KeyByExchange {
    /// Opens a channel to every copy named in `targets` (one list per destination subtask).
    pub async fn open(wiring: Wiring, targets: &[Vec<u32>], batch_records: usize) -> io::Result<Self> {
        assert!(!targets.is_empty() && batch_records > 0);
        let dests = targets
            .iter()
            .map(|_| Destination { buffer: Vec::new(), copies: Vec::new(), backlog: VecDeque::new() })
            .collect();
        let mut exchange = KeyByExchange { wiring, dests, batch_records, watermark: None };
        for (d, workers) in targets.iter().enumerate() {
            exchange.rewire(d as u32, workers.clone()).await?;
        }
        Ok(exchange)
    }

    pub fn rewires(&self) -> &Rewires {
        &self.wiring.rewires
    }

    /// Buffers `record` for its key's subtask; `Some(target)` when that buffer is full and
    /// must go out ([`KeyByExchange::send_full`]) before the next record. Not async: a record
    /// moved into a future is one more copy of it, and most records are only buffered.
    pub fn buffer(&mut self, record: StreamRecord) -> Option<usize> {
        let target = subtask_for_key(record.key.hash, self.dests.len() as u32) as usize;
        self.dests[target].buffer.push(record);
        (self.dests[target].buffer.len() >= self.batch_records).then_some(target)
    }

    /// Sends the full buffer of `target` ([`KeyByExchange::buffer`]).
    pub async fn send_full(&mut self, target: usize) -> io::Result<()> {
        assert!(
            self.dests[target].buffer.len() >= self.batch_records,
            "subtask {target}'s buffer is not full"
        );
        self.send(target).await
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        for target in 0..self.dests.len() {
            if !self.dests[target].buffer.is_empty() {
                self.send(target).await?;
            }
        }
        Ok(())
    }

    async fn send(&mut self, target: usize) -> io::Result<()> {
        self.apply_rewires().await?;
        let batch = std::mem::replace(&mut self.dests[target].buffer, Vec::with_capacity(self.batch_records));
        if self.wiring.backlog {
            self.dests[target].backlog.push_back(Sent::Batch(batch.clone()));
        }
        self.send_to_copies(target, Sent::Batch(batch)).await
    }

    async fn send_to_copies(&mut self, target: usize, message: Sent) -> io::Result<()> {
        // The last copy takes the message itself: a batch is cloned only for the other copies.
        let Some(last) = self.dests[target].copies.len().checked_sub(1) else { return Ok(()) };
        for c in 0..last {
            self.send_to_copy(target, c, message.clone()).await?;
        }
        self.send_to_copy(target, last, message).await
    }

    /// Sends to one copy. A rewire of the destination posted meanwhile interrupts the send (a
    /// copy on a dead worker may never take it, or credit it): the copy is being replaced, and
    /// the rewire applies before the next send.
    async fn send_to_copy(&mut self, target: usize, c: usize, message: Sent) -> io::Result<()> {
        let rewires = self.wiring.rewires.clone();
        let copy = &mut self.dests[target].copies[c];
        let worker = copy.worker;
        let Some(sender) = copy.sender.as_mut() else { return Ok(()) };
        let send = async {
            match message {
                Sent::Batch(batch) => sender.send(batch).await,
                Sent::Barrier(checkpoint) => sender.barrier(checkpoint).await,
                Sent::Watermark { at, idle } => sender.watermark(at, idle).await,
                Sent::End => sender.end().await,
            }
        };
        let sent = tokio::select! {
            biased;
            _ = rewired_away(&rewires, target as u32, worker) => Ok(()),
            sent = send => sent,
        };
        self.settle(target, c, sent)
    }

    /// A failed send drops the copy under replication, and fails the subtask otherwise.
    fn settle(&mut self, target: usize, c: usize, sent: io::Result<()>) -> io::Result<()> {
        match sent {
            Err(e) if !self.wiring.tolerate_breaks => Err(e),
            Err(_) => {
                let copy = &mut self.dests[target].copies[c];
                tracing::debug!(target, worker = copy.worker, "exchange: a copy's channel broke");
                copy.sender = None;
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Flushes, then sends barrier `checkpoint` on every channel.
    pub async fn barrier(&mut self, checkpoint: u64) -> io::Result<()> {
        self.flush().await?;
        self.apply_rewires().await?;
        for target in 0..self.dests.len() {
            if self.wiring.backlog {
                self.dests[target].backlog.push_back(Sent::Barrier(checkpoint));
            }
            self.send_to_copies(target, Sent::Barrier(checkpoint)).await?;
        }
        Ok(())
    }

    /// Flushes, then sends a watermark on every channel (it is not kept in the backlog: a new
    /// copy gets the latest one after the backlog).
    pub async fn watermark(&mut self, at: u64, idle: bool) -> io::Result<()> {
        self.flush().await?;
        self.apply_rewires().await?;
        assert!(self.watermark.is_none_or(|(w, _)| w <= at), "a watermark went back");
        self.watermark = Some((at, idle));
        for target in 0..self.dests.len() {
            self.send_to_copies(target, Sent::Watermark { at, idle }).await?;
        }
        Ok(())
    }

    /// Checkpoint `checkpoint` completed: what was sent before its barrier is in the state of
    /// every copy that could be promoted, so the backlog lets go of it.
    pub fn complete(&mut self, checkpoint: u64) {
        for dest in &mut self.dests {
            let cut = dest.backlog.iter().rposition(|s| matches!(s, Sent::Barrier(n) if *n <= checkpoint));
            if let Some(cut) = cut {
                dest.backlog.drain(..=cut);
            }
        }
    }

    /// Flushes and closes every channel.
    pub async fn end(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.apply_rewires().await?;
        for target in 0..self.dests.len() {
            self.send_to_copies(target, Sent::End).await?;
        }
        Ok(())
    }

    /// Applies every posted rewire.
    pub async fn apply_rewires(&mut self) -> io::Result<()> {
        for (subtask, workers) in self.wiring.rewires.take() {
            self.rewire(subtask, workers).await?;
        }
        Ok(())
    }

    /// Destination `subtask`'s copies are now on `workers`: channels to copies still there are
    /// kept, others dropped, and new ones opened — and sent the backlog.
    async fn rewire(&mut self, subtask: u32, workers: Vec<u32>) -> io::Result<()> {
        let dest = &mut self.dests[subtask as usize];
        let mut kept: BTreeMap<u32, Copy> =
            dest.copies.drain(..).filter(|c| c.sender.is_some()).map(|c| (c.worker, c)).collect();
        for worker in workers {
            let copy = match kept.remove(&worker) {
                Some(copy) => copy,
                None => self.open_copy(subtask, worker).await?,
            };
            self.dests[subtask as usize].copies.push(copy);
        }
        Ok(())
    }

    async fn open_copy(&mut self, subtask: u32, worker: u32) -> io::Result<Copy> {
        let w = &self.wiring;
        let to = TaskId { chain: w.downstream_chain, subtask };
        let addr = NodeId::new(Role::Worker, worker).addr(WORKER_DATA_PORT);
        // A copy on a dead worker refuses connections for a long while: a rewire of the
        // destination interrupts the attempt.
        let opened = tokio::select! {
            biased; // tokio's unbiased choice draws from an unseeded generator
            opened = ChannelSender::open(&w.client, addr, w.epoch, w.from, to) => Some(opened),
            _ = rewired_away(&w.rewires, subtask, worker) => None,
        };
        let mut sender = match opened {
            Some(Ok(sender)) => sender,
            Some(Err(e)) if !w.tolerate_breaks => return Err(e),
            Some(Err(_)) | None => return Ok(Copy { worker, sender: None }),
        };
        // The backlog goes out in full batches: fewer round trips for credits.
        let records: Vec<StreamRecord> = self.dests[subtask as usize]
            .backlog
            .iter()
            .flat_map(|s| match s {
                Sent::Batch(b) => b.as_slice(),
                Sent::Barrier(_) | Sent::Watermark { .. } | Sent::End => &[],
            })
            .cloned()
            .collect();
        let batches: Vec<Vec<StreamRecord>> = records.chunks(self.batch_records).map(<[_]>::to_vec).collect();
        tracing::debug!(subtask, worker, batches = batches.len(), "exchange: opened a copy");
        for batch in batches {
            if sender.send(batch).await.is_err() {
                return Ok(Copy { worker, sender: None });
            }
        }
        // The watermark covers what the backlog replayed: it was sent after those records
        // (replication-passive seed 5032: a standby promoted after its source reached the end
        // of time was never told, and fired its windows after the final checkpoint).
        if let Some((at, idle)) = self.watermark {
            if sender.watermark(at, idle).await.is_err() {
                return Ok(Copy { worker, sender: None });
            }
        }
        Ok(Copy { worker, sender: Some(sender) })
    }
}
