//! A channel-input subtask: a keyed stage. It merges its input channels, runs the pipeline's
//! keyed operator for its stage (through the public operator API, over the keyed state
//! backend), writes to the sink or — an intermediate stage — to the next key-by exchange, and
//! takes part in checkpoints. It runs as a primary, or as an active replication secondary
//! (same input, output held back), until promoted.
//!
//! # Event time
//! Each input carries its sender's watermark; the stage's is the minimum over inputs that are
//! neither ended nor idle (it never goes back, and starts at the restored state's). When it
//! rises, due timers fire in `(time, key, tag)` order, the operator sees `on_watermark`, and an
//! intermediate stage passes the watermark on after the output it caused. A record reaching an
//! event-time operator with `event_time + allowed_lateness < watermark` is late: it goes to the
//! late output (through later stages, marked, to the sink) and not to the operator.
//!
//! # Protocol (barrier n)
//! - `Aligned` (exactly-once): an input that delivered barrier n is held — its batches queue
//!   unprocessed and uncredited — until every input delivered it. Then the subtask flushes its
//!   output, pre-commits the sink transaction, takes a copy-on-write view of its state, and
//!   releases the held inputs. The view is written to the store asynchronously; the
//!   acknowledgement follows the write.
//! - `Unaligned` (exactly-once): at the *first* barrier n the subtask flushes, pre-commits and
//!   takes its view at once (a barrier from an input already at the end of time, as before the
//!   final checkpoint, aligns instead: nothing after the final cut would ever be committed); records that still arrive on other inputs before their barrier n are
//!   processed and also logged as in-flight, and stored with the view once every barrier n has
//!   arrived. Restoring replays them.
//! - `None` (at-least-once, at-most-once): nothing is held; the view is taken when the last
//!   barrier n arrives, so it may include records from after the barrier on other inputs.
//!
//! An intermediate stage forwards barrier n downstream once its snapshot is taken, and `End`
//! once every input ended.
//!
//! A restored subtask loads its view from the store, settles the sink (`Recover`), and replays
//! the view's in-flight records before anything else. It finishes when every input ended and
//! every prepared transaction was committed.
//!
//! # Replication
//! - A passive primary streams its changelog to its standbys (see `standby_task`): its view as
//!   `Base` at the first barrier a standby sees, then `Changes` after every batch, and at each
//!   barrier where it pre-commits the changes since the last batch (what the watermark fired)
//!   followed by the barrier.
//! - An active secondary aligns and cuts its output at barriers exactly as its primary does, so
//!   each held segment is the content of one of the primary's transactions. A completed
//!   checkpoint drops the segments up to it; promotion settles the sink up to the latest
//!   completed checkpoint and writes every segment after it.
//! - Inputs are keyed by upstream subtask; a channel from a newer generation (a restarted
//!   source) replaces the old one, whose late deliveries are dropped. Offsets already applied
//!   are skipped, so replayed input changes nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::channel::{ChannelMsg, ChannelReply, ChannelSender, Delivery, Upstream};
use crate::checkpoint::{self, StateHandle, StateSnapshot, TaskSnapshot};
use crate::cluster::{NodeId, Role, WORKER_DATA_PORT};
use crate::job::{Alignment, ReplicaRole, SinkMode, TaskInput, TaskOutput, TaskSpec};
use crate::net::Tx;
use crate::observe::TraceEvent;
use crate::operators::key_by::{KeyByExchange, Wiring};
use crate::operators::sink_writer::SinkWriter;
use crate::plugin::Dataflow;
use crate::record::{OutputRecord, StreamRecord};
use crate::state::{Changes, KeyedState, View};

use super::stage::{Emit, Stage};
use super::task::{self, Promotion, TaskContext, TaskEvent, TaskResult};

#[derive(Default)]
struct Input {
    generation: u32,
    credit: Option<Tx<ChannelReply>>,
    ended: bool,
    /// Delivered the pending checkpoint's barrier.
    at_barrier: bool,
    /// What alignment held back, in channel order.
    held: VecDeque<Held>,
    /// The sender's watermark, and whether it said it is idle.
    watermark: u64,
    idle: bool,
}

/// A delivery held back by alignment.
enum Held {
    Batch(Vec<StreamRecord>),
    Watermark { at: u64, idle: bool },
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
    /// An intermediate stage's key-by exchange to the next stage.
    Exchange(KeyByExchange),
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
    /// The pipeline's source-side step, when this chain runs it.
    step: Option<Arc<dyn Dataflow>>,
    stage: Stage,
    state: KeyedState,
    /// Skip input offsets already applied (replicated recovery replays input from the last
    /// commit, or from a restarted source, into copies that kept their state).
    dedup: bool,
    /// The watermark last passed downstream (intermediate stages), and whether as idle.
    passed: (u64, bool),
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
    /// What the operator emitted and is not yet routed.
    emitted: Vec<Emit>,
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
            values = restored.entries.len(),
            in_flight = restored.in_flight.len(),
            "stateful subtask restored"
        );
        let mut t = ChannelTask::new(tc, View::decode(&restored)).await?;
        let checkpoint = t.tc.spec.restore.checkpoint;
        t.settle_sink(checkpoint).await?;
        t.process(restored.in_flight).await?;
        Ok(t)
    }

    /// A task holding `view`, with its operator built and its output and standby streams set
    /// up for its role.
    pub(super) async fn new(tc: TaskContext, view: View) -> Result<Self, String> {
        let TaskInput::Channels { upstream_parallelism, .. } = tc.spec.input else {
            panic!("not a channel task")
        };
        let stage = tc.spec.keyed_stage().expect("a channel task runs a keyed stage");
        let dataflow = tc.dataflow();
        let operator = dataflow.stage(stage);
        let lateness = dataflow.allowed_lateness_ms();
        let output = open_output(&tc).await?;
        let intermediate = matches!(output, Output::Exchange(_));
        let opening = open_standbys(&tc);
        let watermark = view.watermark;
        Ok(ChannelTask {
            opening,
            step: tc.step(),
            stage: Stage::new(operator, lateness, intermediate),
            state: KeyedState::new(view, !tc.spec.standbys.is_empty()),
            dedup: tc.spec.recovery.replicated(),
            passed: (watermark, false),
            output,
            buffer: Vec::new(),
            inputs: BTreeMap::new(),
            upstream: upstream_parallelism as usize,
            pending: None,
            uncommitted: BTreeSet::new(),
            standbys: Vec::new(),
            emitted: Vec::new(),
            tc,
        })
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
        if let Output::Exchange(exchange) = &mut self.output {
            exchange.end().await.map_err(|e| e.to_string())?;
        }
        self.end_standbys().await;
        Ok(())
    }

    fn done(&self) -> bool {
        assert!(
            self.inputs.len() <= self.upstream,
            "{} inputs, {} upstream",
            self.inputs.len(),
            self.upstream
        );
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
            Delivery::Watermark { from, at, idle } if self.current(from) => {
                self.on_watermark(from, at, idle).await?
            }
            Delivery::End { from } if self.current(from) => {
                let input = self.inputs.entry(from.task).or_default();
                // End follows the final checkpoint: whatever it still made fire would never be
                // committed. Every input passes the end of time before its final barrier.
                assert_eq!(input.watermark, u64::MAX, "input {from:?} ended before the end of time");
                input.ended = true;
                self.advance().await?;
                self.flush().await?;
            }
            Delivery::Broken { from } if self.current(from) && !self.tc.spec.recovery.replicated() => {
                return Err(format!("channel from {}.{} broke", from.task.chain, from.task.subtask));
            }
            // Replicated: the manager restarts the source, whose new channel replaces this one.
            Delivery::Broken { .. } => {}
            Delivery::Batch { .. }
            | Delivery::Barrier { .. }
            | Delivery::Watermark { .. }
            | Delivery::End { .. } => {
                self.tc.ctx.trace(TraceEvent::StaleEpoch { epoch: self.tc.spec.epoch });
            }
            // The primary this promoted copy replaced, still alive (paused or cut off), streams
            // its changelog to the standby it had: stale, like its other messages.
            Delivery::Base { from, .. } | Delivery::Changes { from, .. } => {
                assert!(from.generation < self.tc.spec.generation, "a changelog sent to a primary");
                self.tc.ctx.trace(TraceEvent::StaleEpoch { epoch: self.tc.spec.epoch });
            }
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
        if from.task == self.tc.spec.id {
            // The changelog of the primary this promoted copy replaced, still alive (paused or
            // cut off, then promoted by a stale command): no input, and it must not hold back
            // the watermark or count towards the end of input.
            assert!(from.generation < self.tc.spec.generation, "a changelog opened to a primary");
            self.tc.ctx.trace(TraceEvent::StaleEpoch { epoch: self.tc.spec.epoch });
            return Ok(());
        }
        let input = self.inputs.entry(from.task).or_default();
        if from.generation < input.generation {
            return Ok(());
        }
        let replaced = input.credit.is_some();
        let watermark = self.state.watermark();
        *input = Input { generation: from.generation, credit: Some(credit), watermark, ..Input::default() };
        if replaced && self.pending.is_some() {
            self.abandon_pending().await?;
        }
        Ok(())
    }

    /// Whether inputs that delivered the pending barrier are held back: under alignment, and
    /// under unaligned checkpoints when the barrier is aligned after all (see `on_barrier`).
    fn holds(&self) -> bool {
        self.tc.spec.alignment != Alignment::None && self.pending.as_ref().is_some_and(|p| p.view.is_none())
    }

    async fn on_batch(&mut self, from: Upstream, records: Vec<StreamRecord>) -> TaskResult {
        let holds = self.holds();
        let input = self.inputs.entry(from.task).or_default();
        if holds && input.at_barrier {
            input.held.push_back(Held::Batch(records));
            return Ok(());
        }
        // An unaligned cut was taken: what still arrives before its barrier is in flight.
        if let Some(pending) = self.pending.as_mut().filter(|p| p.view.is_some()) {
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
            // Unaligned: cut at the first barrier — unless it comes from an input at the end of
            // time. That input's sources drained, as before every final checkpoint; what the
            // other inputs still deliver before their barriers (the rest of the input, and the
            // end-of-time watermark that fires every window) must be inside the checkpoint, or
            // its output would wait for a checkpoint that never comes. Such a barrier aligns.
            let drained = self.inputs.get(&from.task).is_some_and(|i| i.watermark == u64::MAX);
            let view = if self.tc.spec.alignment == Alignment::Unaligned && !drained {
                Some(self.cut(checkpoint).await?)
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
            None => self.cut(checkpoint).await?,
        };
        if !matches!(self.output, Output::Held(_)) {
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

    /// Checkpoint `checkpoint` cuts the stream here: the output so far goes into the
    /// transaction prepared for the checkpoint (or, from an intermediate stage, ahead of the
    /// barrier passed on), and the state is snapshotted.
    async fn cut(&mut self, checkpoint: u64) -> Result<View, String> {
        self.route().await?;
        self.pre_commit(checkpoint).await?;
        Ok(self.state.snapshot())
    }

    /// Processes what alignment held back and lowers every input's barrier flag.
    async fn release_held(&mut self) -> TaskResult {
        let from: Vec<_> = self.inputs.keys().copied().collect();
        for id in from {
            let input = self.inputs.get_mut(&id).expect("listed above");
            input.at_barrier = false;
            let held: Vec<_> = input.held.drain(..).collect();
            for delivery in held {
                match delivery {
                    Held::Batch(records) => {
                        self.process(records).await?;
                        self.credit(id).await;
                    }
                    Held::Watermark { at, idle } => self.input_watermark(id, at, idle).await?,
                }
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
            Output::Exchange(exchange) => exchange.barrier(checkpoint).await.map_err(|e| e.to_string())?,
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
            Output::Exchange(exchange) => exchange.complete(checkpoint),
        }
        Ok(())
    }

    async fn process(&mut self, mut records: Vec<StreamRecord>) -> TaskResult {
        let batch_records = self.tc.ctx.cluster.settings.batch_records;
        let first_stage = self.tc.spec.keyed_stage() == Some(0);
        let mut partitions = BTreeSet::new();
        // In place: a record is large, and moving each out of the batch costs a copy.
        for record in records.iter_mut() {
            if !super::source_task::step(&self.step, record) {
                continue;
            }
            if first_stage {
                if self.dedup && record.offset < self.state.next_offset(record.partition) {
                    continue;
                }
                self.state.applied(record.partition, record.offset);
                partitions.insert(record.partition);
            }
            self.handle(record);
            if self.emitted.len() >= batch_records {
                self.route().await?;
            }
        }
        self.route().await?;
        self.flush().await?;
        if let Some(changes) = self.state.take_changes(partitions.into_iter()) {
            if !changes.changes.is_empty() {
                self.replicate_changes(changes).await;
            }
        }
        Ok(())
    }

    /// One record, decided by the stage (see `stage`).
    fn handle(&mut self, record: &StreamRecord) {
        self.stage.handle(&mut self.state, record, crate::clock::elapsed_ms(), &mut self.emitted);
    }

    /// Sends what the operator emitted on: results to the sink's buffer, records to the exchange.
    async fn route(&mut self) -> TaskResult {
        let batch_records = self.tc.ctx.cluster.settings.batch_records;
        // Drained, not taken: the vector keeps its capacity for the next batch.
        let mut emitted = std::mem::take(&mut self.emitted);
        for emit in emitted.drain(..) {
            match (emit, &mut self.output) {
                (Emit::Forward(r), Output::Exchange(exchange)) => {
                    if let Some(full) = exchange.buffer(r) {
                        exchange.send_full(full).await.map_err(|e| e.to_string())?;
                    }
                }
                (Emit::Output(o), Output::Sink(_) | Output::Held(_)) => {
                    self.buffer.push(o);
                    if self.buffer.len() >= batch_records {
                        self.flush().await?;
                    }
                }
                (emit, _) => panic!("{emit:?} does not fit stage {:?}", self.tc.spec.keyed_stage()),
            }
        }
        self.emitted = emitted;
        Ok(())
    }

    async fn on_watermark(&mut self, from: Upstream, at: u64, idle: bool) -> TaskResult {
        let holds = self.holds();
        let input = self.inputs.entry(from.task).or_default();
        if holds && input.at_barrier {
            input.held.push_back(Held::Watermark { at, idle });
            return Ok(());
        }
        self.input_watermark(from.task, at, idle).await
    }

    async fn input_watermark(&mut self, from: crate::job::TaskId, at: u64, idle: bool) -> TaskResult {
        let input = self.inputs.entry(from).or_default();
        input.watermark = input.watermark.max(at);
        input.idle = idle;
        self.advance().await
    }

    /// The minimum watermark over inputs neither ended nor idle (`None`: all open ones are
    /// idle), and whether the stage itself is idle. An input not yet connected holds it; one
    /// at the end of time counts as ended — its `u64::MAX` must not carry the stage past an
    /// idle input, whose records would all be late when it resumes.
    fn combined(&self) -> (Option<u64>, bool) {
        assert!(
            self.inputs.len() <= self.upstream,
            "{} inputs, {} upstream",
            self.inputs.len(),
            self.upstream
        );
        if self.inputs.len() < self.upstream {
            return (None, false);
        }
        let mut open = self.inputs.values().filter(|i| !i.ended && i.watermark < u64::MAX).peekable();
        if open.peek().is_none() {
            return (Some(u64::MAX), false);
        }
        match open.filter(|i| !i.idle).map(|i| i.watermark).min() {
            Some(w) => (Some(w), false),
            None => (None, true),
        }
    }

    /// Raises the stage's watermark to what its inputs allow: fires due timers, tells the
    /// operator, and passes the watermark downstream — never as idle: every subtask of this
    /// stage hears every source, so its watermark moves whenever any source's does, and a
    /// downstream stage that ran ahead of one briefly behind would find the records that
    /// subtask emits next late.
    async fn advance(&mut self) -> TaskResult {
        let (w, _idle) = self.combined();
        if let Some(w) = w.filter(|&w| w > self.state.watermark()) {
            self.state.advance_watermark(w);
            self.fire(w);
            self.route().await?;
            self.flush().await?;
        }
        let pass = (self.state.watermark(), false);
        if let Output::Exchange(exchange) = &mut self.output {
            if pass != self.passed {
                self.passed = pass;
                exchange.watermark(pass.0, pass.1).await.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn fire(&mut self, w: u64) {
        self.stage.fire(&mut self.state, w, &mut self.emitted);
    }

    async fn flush(&mut self) -> TaskResult {
        if let Output::Exchange(exchange) = &mut self.output {
            return exchange.flush().await.map_err(|e| e.to_string());
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        let capacity = self.tc.ctx.cluster.settings.batch_records;
        let records = std::mem::replace(&mut self.buffer, Vec::with_capacity(capacity));
        match &mut self.output {
            Output::Sink(sink) => sink.write(records).await,
            Output::Held(segments) => {
                segments.last_mut().expect("an open segment").records.extend(records);
                Ok(())
            }
            Output::Exchange(_) => unreachable!("handled above"),
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

    /// At barrier n: a standby already based gets what changed since the last batch (timers
    /// fired and windows closed by the watermark, the operator's `on_checkpoint`, the watermark
    /// itself), then the barrier; the others get the view as their base. Without the first, a
    /// standby promoted at n would fire again what the primary's transaction n already holds.
    async fn replicate_barrier(&mut self, checkpoint: u64, view: &View) {
        if let Some(changes) = self.state.take_changes(std::iter::empty()) {
            self.replicate_changes(changes).await;
        }
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

/// The output for the subtask's role and place: the sink (a primary of the last stage), held
/// segments (an active secondary), or the exchange to the next stage.
async fn open_output(tc: &TaskContext) -> Result<Output, String> {
    match (&tc.spec.output, tc.spec.role) {
        (TaskOutput::Exchange { downstream_chain, targets }, _) => {
            let wiring = Wiring {
                client: tc.client.clone(),
                epoch: tc.spec.epoch,
                from: Upstream { task: tc.spec.id, generation: tc.spec.generation },
                downstream_chain: *downstream_chain,
                tolerate_breaks: false,
                backlog: false,
                rewires: tc.rewires.clone(),
            };
            let batch_records = tc.ctx.cluster.settings.batch_records;
            let exchange = KeyByExchange::open(wiring, targets, batch_records)
                .await
                .map_err(|e| format!("opening the exchange: {e}"))?;
            Ok(Output::Exchange(exchange))
        }
        (TaskOutput::Sink, ReplicaRole::Secondary) => {
            Ok(Output::Held(vec![Segment { closed_by: None, records: Vec::new() }]))
        }
        (TaskOutput::Sink, _) => Ok(Output::Sink(SinkWriter::new(&tc.ctx, tc.client.clone(), &tc.spec))),
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
