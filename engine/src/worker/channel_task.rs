//! A channel-input subtask: merges its input channels, runs the keyed running aggregate, writes
//! to the sink, and takes part in checkpoints.
//!
//! # Protocol (barrier n)
//! - `Aligned` (exactly-once): an input that delivered barrier n is held — its batches queue
//!   unprocessed and uncredited — until every input delivered it. Then the subtask flushes its
//!   output, pre-commits the sink transaction, takes a copy-on-write view of its state, and
//!   releases the held inputs. The view is written to the store asynchronously; the
//!   acknowledgement follows the write.
//! - `Unaligned` (exactly-once): at the *first* barrier n the subtask flushes, pre-commits and
//!   takes its view at once; records that still arrive on other inputs before their barrier n are
//!   processed and also logged as in-flight, and stored with the view once every barrier n has
//!   arrived. Restoring replays them.
//! - `None` (at-least-once, at-most-once): nothing is held; the view is taken when the last
//!   barrier n arrives, so it may include records from after the barrier on other inputs.
//!
//! A restored subtask loads its view from the store, settles the sink (`Recover`), and replays
//! the view's in-flight records before anything else. It finishes when every input ended and
//! every prepared transaction was committed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tokio::sync::mpsc;

use crate::channel::{ChannelReply, Delivery};
use crate::checkpoint::{self, StateHandle, StateSnapshot, TaskSnapshot};
use crate::job::{Alignment, SinkMode, TaskId, TaskInput};
use crate::net::Tx;
use crate::operators::aggregate::{self, KeyedState, RunningAggregate};
use crate::operators::sink_writer::SinkWriter;
use crate::operators::{self, Stateless};
use crate::record::{OutputRecord, StreamRecord};

use super::task::{self, TaskContext, TaskEvent, TaskResult};

#[derive(Default)]
struct Input {
    credit: Option<Tx<ChannelReply>>,
    ended: bool,
    /// Delivered the pending checkpoint's barrier.
    at_barrier: bool,
    /// Batches held back by alignment.
    held: VecDeque<Vec<StreamRecord>>,
}

/// A checkpoint whose barriers are arriving.
struct Pending {
    checkpoint: u64,
    /// Unaligned: the state view taken at the first barrier.
    view: Option<KeyedState>,
    in_flight: Vec<StreamRecord>,
}

struct ChannelTask {
    tc: TaskContext,
    stateless: Vec<Stateless>,
    aggregate: RunningAggregate,
    sink: SinkWriter,
    buffer: Vec<OutputRecord>,
    inputs: BTreeMap<TaskId, Input>,
    upstream: usize,
    pending: Option<Pending>,
    /// Checkpoints whose transaction is prepared but not yet known complete.
    uncommitted: BTreeSet<u64>,
}

pub async fn run(tc: TaskContext, mut inbox: mpsc::UnboundedReceiver<TaskEvent>) -> TaskResult {
    let mut t = ChannelTask::start(tc).await?;
    while !t.done() {
        match inbox.recv().await {
            Some(event) => t.on_event(event).await?,
            None => return Err("the worker dropped the inbox".into()),
        }
    }
    t.flush().await
}

impl ChannelTask {
    async fn start(tc: TaskContext) -> Result<Self, String> {
        let TaskInput::Channels { upstream_parallelism, .. } = tc.spec.input else {
            panic!("not a channel task")
        };
        let restored = match &tc.spec.restore.state {
            Some(handle) => load(&tc, handle).await?,
            None => StateSnapshot::default(),
        };
        tracing::debug!(
            task = ?tc.spec.id,
            epoch = tc.spec.epoch,
            checkpoint = tc.spec.restore.checkpoint,
            keys = restored.entries.len(),
            in_flight = restored.in_flight.len(),
            "stateful subtask restored"
        );
        let mut sink = SinkWriter::new(&tc.ctx, tc.client.clone(), &tc.spec);
        if tc.spec.sink == SinkMode::Transactional {
            sink.recover(tc.spec.restore.checkpoint).await?;
        }
        let mut t = ChannelTask {
            stateless: tc.stateless(),
            aggregate: RunningAggregate::restore(&restored),
            sink,
            buffer: Vec::new(),
            inputs: BTreeMap::new(),
            upstream: upstream_parallelism as usize,
            pending: None,
            uncommitted: BTreeSet::new(),
            tc,
        };
        t.process(restored.in_flight).await?;
        Ok(t)
    }

    fn done(&self) -> bool {
        let ended = self.inputs.values().filter(|i| i.ended).count() == self.upstream;
        ended && self.pending.is_none() && self.uncommitted.is_empty()
    }

    async fn on_event(&mut self, event: TaskEvent) -> TaskResult {
        match event {
            TaskEvent::Channel(Delivery::Opened { from, credit }) => {
                self.inputs.entry(from).or_default().credit = Some(credit);
            }
            TaskEvent::Channel(Delivery::Batch { from, records }) => self.on_batch(from, records).await?,
            TaskEvent::Channel(Delivery::Barrier { from, checkpoint }) => {
                self.on_barrier(from, checkpoint).await?
            }
            TaskEvent::Channel(Delivery::End { from }) => {
                self.inputs.entry(from).or_default().ended = true;
                self.flush().await?;
            }
            TaskEvent::Channel(Delivery::Broken { from }) => {
                return Err(format!("channel from {}.{} broke", from.chain, from.subtask));
            }
            TaskEvent::Complete(checkpoint) => {
                if self.uncommitted.first().is_some_and(|&c| c <= checkpoint) {
                    self.sink.commit(checkpoint).await?;
                    self.uncommitted.retain(|&c| c > checkpoint);
                }
            }
            TaskEvent::Trigger(_) | TaskEvent::Finish => {}
        }
        Ok(())
    }

    async fn on_batch(&mut self, from: TaskId, records: Vec<StreamRecord>) -> TaskResult {
        let alignment = self.tc.spec.alignment;
        let input = self.inputs.entry(from).or_default();
        if alignment == Alignment::Aligned && input.at_barrier {
            input.held.push_back(records);
            return Ok(());
        }
        if let Some(pending) = self.pending.as_mut().filter(|_| alignment == Alignment::Unaligned) {
            if !input.at_barrier {
                pending.in_flight.extend_from_slice(&records);
            }
        }
        self.process(records).await?;
        self.credit(from).await;
        Ok(())
    }

    async fn on_barrier(&mut self, from: TaskId, checkpoint: u64) -> TaskResult {
        match self.pending.as_ref().map(|p| p.checkpoint) {
            // A late barrier of a checkpoint this subtask already gave up.
            Some(pending) if checkpoint < pending => return Ok(()),
            // A newer checkpoint subsumes the one aligning: that one was aborted upstream.
            Some(pending) if checkpoint > pending => self.abandon_pending().await?,
            _ => {}
        }
        if self.pending.is_none() {
            let view = if self.tc.spec.alignment == Alignment::Unaligned {
                self.pre_commit(checkpoint).await?;
                Some(self.aggregate.snapshot())
            } else {
                None
            };
            self.pending = Some(Pending { checkpoint, view, in_flight: Vec::new() });
        }
        let pending = self.pending.as_ref().expect("set above");
        assert_eq!(
            pending.checkpoint, checkpoint,
            "barrier {checkpoint} while {} is aligning",
            pending.checkpoint
        );
        self.inputs.entry(from).or_default().at_barrier = true;
        if self.inputs.values().filter(|i| i.at_barrier).count() == self.upstream {
            self.complete_barrier().await?;
        }
        Ok(())
    }

    /// Every input delivered the pending barrier: snapshot, then release held inputs.
    async fn complete_barrier(&mut self) -> TaskResult {
        let Pending { checkpoint, view, in_flight } = self.pending.take().expect("a barrier is pending");
        let view = match view {
            Some(view) => view,
            None => {
                self.pre_commit(checkpoint).await?;
                self.aggregate.snapshot()
            }
        };
        madsim::task::spawn_local(write_snapshot(self.tc.clone(), checkpoint, view, in_flight));
        self.release_held().await
    }

    /// Gives up the pending checkpoint: its snapshot is never taken (or never written). A
    /// transaction it prepared stays prepared, and a later completed checkpoint commits it.
    async fn abandon_pending(&mut self) -> TaskResult {
        let pending = self.pending.take().expect("a barrier is pending");
        tracing::debug!(task = ?self.tc.spec.id, checkpoint = pending.checkpoint, "checkpoint subsumed");
        self.release_held().await
    }

    /// Processes what alignment held back and lowers every input's barrier flag.
    async fn release_held(&mut self) -> TaskResult {
        let from: Vec<TaskId> = self.inputs.keys().copied().collect();
        for id in from {
            let input = self.inputs.get_mut(&id).expect("listed above");
            input.at_barrier = false;
            let held: Vec<_> = input.held.drain(..).collect();
            for records in held {
                self.process(records).await?;
                self.credit(id).await;
            }
        }
        Ok(())
    }

    /// Flushes the output so far into the open transaction and prepares it for `checkpoint`.
    async fn pre_commit(&mut self, checkpoint: u64) -> TaskResult {
        self.flush().await?;
        self.sink.pre_commit(checkpoint).await?;
        if self.tc.spec.sink == SinkMode::Transactional {
            self.uncommitted.insert(checkpoint);
        }
        Ok(())
    }

    async fn process(&mut self, records: Vec<StreamRecord>) -> TaskResult {
        let batch_records = self.tc.ctx.cluster.settings.batch_records;
        for record in records {
            let Some(record) = operators::apply_all(&self.stateless, record) else { continue };
            self.buffer.push(self.aggregate.process(&record));
            if self.buffer.len() >= batch_records {
                self.flush().await?;
            }
        }
        self.flush().await
    }

    async fn flush(&mut self) -> TaskResult {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.sink.write(std::mem::take(&mut self.buffer)).await
    }

    async fn credit(&mut self, from: TaskId) {
        if let Some(credit) = self.inputs.get(&from).and_then(|i| i.credit.as_ref()) {
            _ = credit.send(ChannelReply::Credit(1)).await;
        }
    }
}

async fn load(tc: &TaskContext, handle: &StateHandle) -> Result<StateSnapshot, String> {
    let bytes = tc.store.get(&handle.key).await.map_err(|e| e.to_string())?;
    let bytes = bytes.ok_or_else(|| format!("checkpoint state {} is missing from the store", handle.key))?;
    StateSnapshot::decode(&bytes).ok_or_else(|| format!("checkpoint state {} is corrupt", handle.key))
}

/// Encodes a state view, writes it to the store, then acknowledges the checkpoint.
async fn write_snapshot(tc: TaskContext, checkpoint: u64, view: KeyedState, in_flight: Vec<StreamRecord>) {
    let bytes = aggregate::encode(&view, in_flight).encode();
    let key = checkpoint::state_key(checkpoint, tc.spec.id);
    let handle = StateHandle { key: key.clone(), bytes: bytes.len() as u64 };
    if tc.store.put(&key, bytes).await.is_ok() {
        let snapshot = TaskSnapshot { task: tc.spec.id, positions: Vec::new(), state: Some(handle) };
        task::ack(&tc, checkpoint, snapshot).await;
    }
}
