//! A channel-input subtask: merges its input channels, runs the keyed running aggregate, writes
//! to the sink, and takes part in checkpoints. It runs as a primary, or as an active
//! replication secondary (same input, output held back), until promoted.
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
//!
//! # Replication
//! - A passive primary streams its changelog to its standbys (see `standby_task`): its view as
//!   `Base` at the first barrier a standby sees, then `Changes` after every batch, and each
//!   barrier where it pre-commits.
//! - An active secondary aligns and cuts its output at barriers exactly as its primary does, so
//!   each held segment is the content of one of the primary's transactions. A completed
//!   checkpoint drops the segments up to it; promotion settles the sink up to the latest
//!   completed checkpoint and writes every segment after it.
//! - Inputs are keyed by upstream subtask; a channel from a newer generation (a restarted
//!   source) replaces the old one, whose late deliveries are dropped. Offsets already applied
//!   are skipped, so replayed input changes nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tokio::sync::mpsc;

use crate::channel::{ChannelMsg, ChannelReply, ChannelSender, Delivery, Upstream};
use crate::checkpoint::{self, StateHandle, StateSnapshot, TaskSnapshot};
use crate::cluster::{NodeId, Role, WORKER_DATA_PORT};
use crate::job::{Alignment, ReplicaRole, SinkMode, TaskInput, TaskSpec};
use crate::net::Tx;
use crate::observe::TraceEvent;
use crate::operators::aggregate::{Changes, RunningAggregate, View};
use crate::operators::sink_writer::SinkWriter;
use crate::operators::{self, Stateless};
use crate::record::{OutputRecord, StreamRecord};

use super::task::{self, Promotion, TaskContext, TaskEvent, TaskResult};

#[derive(Default)]
struct Input {
    generation: u32,
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
    view: Option<View>,
    in_flight: Vec<StreamRecord>,
}

/// Output held by an active secondary: the records before barrier `closed_by` (open: `None`).
struct Segment {
    closed_by: Option<u64>,
    records: Vec<OutputRecord>,
}

enum Output {
    Sink(SinkWriter),
    Held(Vec<Segment>),
}

/// A passive primary's changelog stream to one standby.
struct StandbyLink {
    worker: u32,
    sender: Option<ChannelSender>,
    /// The standby was sent a `Base`: changes and barriers follow.
    based: bool,
}

pub(super) struct ChannelTask {
    tc: TaskContext,
    stateless: Vec<Stateless>,
    aggregate: RunningAggregate,
    output: Output,
    buffer: Vec<OutputRecord>,
    inputs: BTreeMap<crate::job::TaskId, Input>,
    upstream: usize,
    pending: Option<Pending>,
    /// Checkpoints whose transaction is prepared but not yet known complete.
    uncommitted: BTreeSet<u64>,
    standbys: Vec<StandbyLink>,
    /// Channels to standbys, opened in the background (a standby's worker may be down).
    opening: mpsc::UnboundedReceiver<StandbyLink>,
}

pub async fn run(tc: TaskContext, inbox: mpsc::UnboundedReceiver<TaskEvent>) -> (TaskResult, TaskSpec) {
    if tc.spec.role == ReplicaRole::Standby {
        return super::standby_task::run(tc, inbox).await;
    }
    let spec = tc.spec.clone();
    match ChannelTask::start(tc).await {
        Ok(t) => t.run(inbox, Vec::new()).await,
        Err(e) => (Err(e), spec),
    }
}

impl ChannelTask {
    async fn start(tc: TaskContext) -> Result<Self, String> {
        let restored = match &tc.spec.restore.state {
            Some(handle) => load(&tc, handle).await?,
            None => StateSnapshot::default(),
        };
        tracing::debug!(
            task = ?tc.spec.id,
            epoch = tc.spec.epoch,
            role = ?tc.spec.role,
            checkpoint = tc.spec.restore.checkpoint,
            keys = restored.entries.len(),
            in_flight = restored.in_flight.len(),
            "stateful subtask restored"
        );
        let aggregate = RunningAggregate::restore(&restored, tc.spec.recovery.replicated());
        let mut t = ChannelTask::new(tc, aggregate);
        let checkpoint = t.tc.spec.restore.checkpoint;
        t.settle_sink(checkpoint).await?;
        t.process(restored.in_flight).await?;
        Ok(t)
    }

    /// A task holding `aggregate`, with its output and standby streams set up for its role.
    pub(super) fn new(tc: TaskContext, aggregate: RunningAggregate) -> Self {
        let TaskInput::Channels { upstream_parallelism, .. } = tc.spec.input else {
            panic!("not a channel task")
        };
        let output = match tc.spec.role {
            ReplicaRole::Secondary => Output::Held(vec![Segment { closed_by: None, records: Vec::new() }]),
            _ => Output::Sink(SinkWriter::new(&tc.ctx, tc.client.clone(), &tc.spec)),
        };
        let opening = open_standbys(&tc);
        ChannelTask {
            opening,
            stateless: tc.stateless(),
            aggregate,
            output,
            buffer: Vec::new(),
            inputs: BTreeMap::new(),
            upstream: upstream_parallelism as usize,
            pending: None,
            uncommitted: BTreeSet::new(),
            standbys: Vec::new(),
            tc,
        }
    }

    /// A transactional primary settles what earlier writers left, up to `checkpoint`.
    pub(super) async fn settle_sink(&mut self, checkpoint: u64) -> TaskResult {
        match &mut self.output {
            Output::Sink(sink) if self.tc.spec.sink == SinkMode::Transactional => {
                sink.recover(checkpoint).await
            }
            _ => Ok(()),
        }
    }

    /// Handles `early` events (a promoted standby's deferred ones), then the inbox, to the end.
    pub(super) async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<TaskEvent>,
        early: Vec<TaskEvent>,
    ) -> (TaskResult, TaskSpec) {
        let outcome = self.run_inner(&mut inbox, early).await;
        (outcome, self.tc.spec.clone())
    }

    async fn run_inner(
        &mut self,
        inbox: &mut mpsc::UnboundedReceiver<TaskEvent>,
        early: Vec<TaskEvent>,
    ) -> TaskResult {
        for event in early {
            self.on_event(event).await?;
        }
        while !self.done() {
            match inbox.recv().await {
                Some(event) => self.on_event(event).await?,
                None => return Err("the worker dropped the inbox".into()),
            }
        }
        self.flush().await?;
        self.end_standbys().await;
        Ok(())
    }

    fn done(&self) -> bool {
        let ended = self.inputs.values().filter(|i| i.ended).count() == self.upstream;
        ended && self.pending.is_none() && self.uncommitted.is_empty()
    }

    async fn on_event(&mut self, event: TaskEvent) -> TaskResult {
        match event {
            TaskEvent::Channel(delivery) => self.on_delivery(delivery).await?,
            TaskEvent::Complete(checkpoint) => self.on_complete(checkpoint).await?,
            TaskEvent::Promote(promotion) => self.promote(promotion).await?,
            TaskEvent::Trigger(_) | TaskEvent::Finish => {}
        }
        Ok(())
    }

    async fn on_delivery(&mut self, delivery: Delivery) -> TaskResult {
        match delivery {
            Delivery::Opened { from, credit } => self.on_opened(from, credit).await?,
            Delivery::Batch { from, records } if self.current(from) => self.on_batch(from, records).await?,
            Delivery::Barrier { from, checkpoint } if self.current(from) => {
                self.on_barrier(from, checkpoint).await?
            }
            Delivery::End { from } if self.current(from) => {
                self.inputs.entry(from.task).or_default().ended = true;
                self.flush().await?;
            }
            Delivery::Broken { from } if self.current(from) && !self.tc.spec.recovery.replicated() => {
                return Err(format!("channel from {}.{} broke", from.task.chain, from.task.subtask));
            }
            // Replicated: the manager restarts the source, whose new channel replaces this one.
            Delivery::Broken { .. } => {}
            Delivery::Batch { .. } | Delivery::Barrier { .. } | Delivery::End { .. } => {
                self.tc.ctx.trace(TraceEvent::StaleEpoch { epoch: self.tc.spec.epoch });
            }
            Delivery::Base { .. } | Delivery::Changes { .. } => panic!("a changelog sent to a primary"),
        }
        Ok(())
    }

    /// Whether a delivery comes from the input's current generation.
    fn current(&self, from: Upstream) -> bool {
        self.inputs.get(&from.task).is_some_and(|i| i.generation == from.generation && i.credit.is_some())
    }

    /// A channel opened: a newer generation of its upstream replaces the old channel, and a
    /// checkpoint aligning on the old one is given up (its barrier will not come).
    async fn on_opened(&mut self, from: Upstream, credit: Tx<ChannelReply>) -> TaskResult {
        let input = self.inputs.entry(from.task).or_default();
        if from.generation < input.generation {
            return Ok(());
        }
        let replaced = input.credit.is_some();
        *input = Input { generation: from.generation, credit: Some(credit), ..Input::default() };
        if replaced && self.pending.is_some() {
            self.abandon_pending().await?;
        }
        Ok(())
    }

    async fn on_batch(&mut self, from: Upstream, records: Vec<StreamRecord>) -> TaskResult {
        let alignment = self.tc.spec.alignment;
        let input = self.inputs.entry(from.task).or_default();
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
        self.credit(from.task).await;
        Ok(())
    }

    async fn on_barrier(&mut self, from: Upstream, checkpoint: u64) -> TaskResult {
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
        self.inputs.entry(from.task).or_default().at_barrier = true;
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
        if matches!(self.output, Output::Sink(_)) {
            self.replicate_barrier(checkpoint, &view).await;
            madsim::task::spawn_local(write_snapshot(self.tc.clone(), checkpoint, view, in_flight));
        }
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
        let from: Vec<_> = self.inputs.keys().copied().collect();
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

    /// Flushes the output so far into the open transaction and prepares it for `checkpoint`
    /// (a secondary closes its held segment there instead).
    async fn pre_commit(&mut self, checkpoint: u64) -> TaskResult {
        self.flush().await?;
        match &mut self.output {
            Output::Sink(sink) => {
                sink.pre_commit(checkpoint).await?;
                if self.tc.spec.sink == SinkMode::Transactional {
                    self.uncommitted.insert(checkpoint);
                }
            }
            Output::Held(segments) => {
                segments.last_mut().expect("an open segment").closed_by = Some(checkpoint);
                segments.push(Segment { closed_by: None, records: Vec::new() });
            }
        }
        Ok(())
    }

    async fn on_complete(&mut self, checkpoint: u64) -> TaskResult {
        match &mut self.output {
            Output::Sink(sink) => {
                if self.uncommitted.first().is_some_and(|&c| c <= checkpoint) {
                    sink.commit(checkpoint).await?;
                    self.uncommitted.retain(|&c| c > checkpoint);
                }
            }
            Output::Held(segments) => segments.retain(|s| s.closed_by.is_none_or(|c| c > checkpoint)),
        }
        Ok(())
    }

    async fn process(&mut self, records: Vec<StreamRecord>) -> TaskResult {
        let batch_records = self.tc.ctx.cluster.settings.batch_records;
        let replicate = !self.standbys.is_empty();
        let mut changed = Vec::new();
        let mut partitions = BTreeSet::new();
        for record in records {
            let Some(record) = operators::apply_all(&self.stateless, record) else { continue };
            let Some(output) = self.aggregate.process(&record) else { continue };
            if replicate {
                changed.push(output);
                partitions.insert(record.partition);
            }
            self.buffer.push(output);
            if self.buffer.len() >= batch_records {
                self.flush().await?;
            }
        }
        self.flush().await?;
        if replicate && !changed.is_empty() {
            let changes = self.aggregate.changes(&changed, partitions.into_iter());
            self.replicate_changes(changes).await;
        }
        Ok(())
    }

    async fn flush(&mut self) -> TaskResult {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.buffer);
        match &mut self.output {
            Output::Sink(sink) => sink.write(records).await,
            Output::Held(segments) => {
                segments.last_mut().expect("an open segment").records.extend(records);
                Ok(())
            }
        }
    }

    async fn credit(&mut self, from: crate::job::TaskId) {
        if let Some(credit) = self.inputs.get(&from).and_then(|i| i.credit.as_ref()) {
            _ = credit.send(ChannelReply::Credit(1)).await;
        }
    }

    /// This secondary takes over as primary: settles the sink up to the latest completed
    /// checkpoint (fencing the primary it replaces) and writes every held segment after it.
    async fn promote(&mut self, p: Promotion) -> TaskResult {
        let Output::Held(segments) = &mut self.output else {
            tracing::warn!(task = ?self.tc.spec.id, "promotion of a primary ignored");
            return Ok(());
        };
        let held: Vec<OutputRecord> = std::mem::take(segments)
            .into_iter()
            .filter(|s| s.closed_by.is_none_or(|c| c > p.upto))
            .flat_map(|s| s.records)
            .collect();
        self.tc.spec.role = ReplicaRole::Primary;
        self.tc.spec.generation = p.generation;
        self.output = Output::Sink(SinkWriter::new(&self.tc.ctx, self.tc.client.clone(), &self.tc.spec));
        self.settle_sink(p.upto).await?;
        let id = self.tc.spec.id;
        self.tc.ctx.trace(TraceEvent::Promoted {
            operator: id.chain,
            subtask: id.subtask,
            generation: p.generation,
            caught_up: true,
        });
        tracing::info!(task = ?id, generation = p.generation, resent = held.len(), "secondary promoted");
        self.buffer = held;
        self.flush().await
    }

    async fn replicate_changes(&mut self, changes: Changes) {
        for link in self.standbys.iter_mut().filter(|l| l.based) {
            send_or_drop(link, ChannelMsg::Changes(changes.clone())).await;
        }
    }

    /// At barrier n: a standby already based gets the barrier; the others get the view as their
    /// base.
    async fn replicate_barrier(&mut self, checkpoint: u64, view: &View) {
        while let Ok(link) = self.opening.try_recv() {
            self.standbys.push(link);
        }
        let mut base: Option<StateSnapshot> = None;
        for link in &mut self.standbys {
            let Some(sender) = link.sender.as_mut() else { continue };
            if link.based {
                if sender.barrier(checkpoint).await.is_err() {
                    link.sender = None;
                }
                continue;
            }
            let state = base.get_or_insert_with(|| view.encode(Vec::new())).clone();
            let bytes = state.encode().len() as u64;
            self.tc.ctx.trace(TraceEvent::StateShipped { bytes });
            link.based = true;
            send_or_drop(link, ChannelMsg::Base { checkpoint, state }).await;
            tracing::debug!(task = ?self.tc.spec.id, worker = link.worker, checkpoint, "standby based");
        }
    }

    async fn end_standbys(&mut self) {
        for link in &mut self.standbys {
            if let Some(sender) = link.sender.as_mut() {
                _ = sender.end().await;
            }
        }
    }
}

/// Opens the channels to a passive primary's standbys in the background; each opened one
/// arrives on the receiver, to be sent a base at the next barrier. A standby not reachable
/// within the heartbeat timeout is given up: its worker is down, and the manager knows.
fn open_standbys(tc: &TaskContext) -> mpsc::UnboundedReceiver<StandbyLink> {
    let (tx, rx) = mpsc::unbounded_channel();
    let spec = &tc.spec;
    let from = Upstream { task: spec.id, generation: spec.generation };
    let attempts = (tc.ctx.cluster.settings.heartbeat_timeout_ms / 10).max(1) as u32;
    for &worker in &spec.standbys {
        let (client, tx, ends) = (tc.client.clone(), tx.clone(), (spec.epoch, from, spec.id));
        let addr = NodeId::new(Role::Worker, worker).addr(WORKER_DATA_PORT);
        madsim::task::spawn_local(async move {
            if let Ok(sender) = ChannelSender::open_within(&client, addr, ends, attempts).await {
                _ = tx.send(StandbyLink { worker, sender: Some(sender), based: false });
            }
        });
    }
    rx
}

async fn send_or_drop(link: &mut StandbyLink, message: ChannelMsg) {
    if let Some(sender) = link.sender.as_mut() {
        if sender.replicate(message).await.is_err() {
            link.sender = None;
        }
    }
}

pub(super) async fn load(tc: &TaskContext, handle: &StateHandle) -> Result<StateSnapshot, String> {
    let bytes = tc.store.get(&handle.key).await.map_err(|e| e.to_string())?;
    let bytes = bytes.ok_or_else(|| format!("checkpoint state {} is missing from the store", handle.key))?;
    tc.ctx.trace(TraceEvent::StateLoaded { bytes: bytes.len() as u64 });
    StateSnapshot::decode(&bytes).ok_or_else(|| format!("checkpoint state {} is corrupt", handle.key))
}

/// Encodes a state view, writes it to the store, then acknowledges the checkpoint.
async fn write_snapshot(tc: TaskContext, checkpoint: u64, view: View, in_flight: Vec<StreamRecord>) {
    let bytes = view.encode(in_flight).encode();
    let key = checkpoint::state_key(checkpoint, tc.spec.id);
    let handle = StateHandle { key: key.clone(), bytes: bytes.len() as u64 };
    if tc.store.put(&key, bytes).await.is_ok() {
        let snapshot = TaskSnapshot { task: tc.spec.id, positions: Vec::new(), state: Some(handle) };
        task::ack(&tc, checkpoint, snapshot).await;
    }
}
