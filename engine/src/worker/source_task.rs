//! A source subtask: reads its partitions, runs the stateless operators, feeds the key-by
//! exchange, and takes part in checkpoints.
//!
//! # Protocol
//! 1. On `Trigger(n)` — between two fetched batches, so the cut is clean — it flushes the
//!    exchange, sends barrier n on every output channel, and acknowledges with its positions
//!    (the next offset and end-of-stream count per partition).
//! 2. Under at-most-once it commits its positions to the store *before* processing each batch,
//!    and a restarted source resumes from those: an input is never processed twice, and inputs
//!    in flight at a crash are never processed at all. The commits are fenced by epoch (see
//!    `checkpoint::claim`): a starting source claims each partition's position for its writer
//!    epoch, and every commit is a compare-and-set from the bytes it last wrote, so a source of
//!    an older epoch still running fails at its next batch instead of processing it again.
//! 3. Once every partition reached end-of-stream it sends the end-of-time watermark
//!    (`u64::MAX`), even when restored already drained, then reports `SourceDrained` and waits: the
//!    coordinator then takes a final checkpoint, and `Finish` ends the output channels.
//! 4. Under replication, `Complete(n)` lets the exchange's backlog go up to barrier n, and a
//!    rewire posted by the worker moves a destination's channels to its new copies.
//! 5. Watermarks: each partition's is its greatest event time read minus the bounded
//!    out-of-orderness (`u64::MAX` once ended); the subtask's is the minimum over its partitions
//!    that are not idle, sent on every output channel after the records it covers whenever it
//!    rises. A partition that yields no record for the idle timeout stops counting until it
//!    yields again; when all of them are idle the subtask says so, and its downstream stops
//!    waiting for it. The greatest event time per partition is part of the checkpointed
//!    position, so a restored source resumes its watermark where the checkpoint cut it.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::channel::Upstream;
use crate::checkpoint::{self, SourcePosition, TaskSnapshot};
use crate::clock;
use crate::job::Recovery;
use crate::job::{Semantics, TaskInput, TaskOutput};
use crate::manager::ManagerRequest;
use crate::observe::TraceEvent;
use crate::operators::key_by::{KeyByExchange, Wiring};
use crate::operators::source;
use crate::plugin::Dataflow;
use crate::record::{Cause, Payload, StreamRecord};

use super::task::{self, TaskContext, TaskEvent, TaskResult};

struct Source {
    tc: TaskContext,
    /// The pipeline's source-side step, when this chain runs it.
    step: Option<Arc<dyn Dataflow>>,
    exchange: KeyByExchange,
    positions: BTreeMap<u32, SourcePosition>,
    /// Per partition, when it last yielded a record (simulated ms).
    last_read_ms: BTreeMap<u32, u64>,
    /// The watermark last sent, and whether it was sent as idle.
    sent: (u64, bool),
    /// At-most-once: per partition, the bytes this source last committed (its claim).
    claims: BTreeMap<u32, Vec<u8>>,
}

pub async fn run(tc: TaskContext, mut inbox: mpsc::UnboundedReceiver<TaskEvent>) -> TaskResult {
    let mut source = Source::start(tc).await?;
    let mut fetched =
        source::start(&source.tc.ctx, source.tc.client.clone(), source.positions.values().copied());
    let mut drained = false;
    let rewires = source.exchange.rewires().clone();
    let idle_timeout = source.tc.spec.time.idle_timeout_ms;
    let tick = std::time::Duration::from_millis((idle_timeout / 4).max(10));
    loop {
        if !drained && source.drained() {
            drained = true;
            // End of time goes out before the drain is reported, so it precedes the final
            // barrier on every channel. A source restored from a checkpoint taken after it
            // drained reads nothing more, and this is its only chance to say so (windows seed
            // 5490: without it the stage fired every window after the final checkpoint).
            source.emit_watermark().await?;
            assert_eq!(source.sent, (u64::MAX, false), "a drained source is at the end of time");
            let (epoch, task, generation) =
                (source.tc.spec.epoch, source.tc.spec.id, source.tc.spec.generation);
            task::report(&source.tc.manager, ManagerRequest::SourceDrained { epoch, task, generation }).await;
        }
        if !rewires.is_empty() {
            source.exchange.apply_rewires().await.map_err(|e| e.to_string())?;
        }
        tokio::select! {
            biased;
            event = inbox.recv() => match event {
                Some(TaskEvent::Trigger(n)) => source.checkpoint(n).await?,
                Some(TaskEvent::Finish) => return source.exchange.end().await.map_err(|e| e.to_string()),
                Some(TaskEvent::Complete(n)) => source.exchange.complete(n),
                Some(TaskEvent::Channel(_) | TaskEvent::Promote(_)) => panic!("not for a source"),
                None => return Err("the worker dropped the inbox".into()),
            },
            _ = rewires.posted() => {}
            batch = fetched.recv(), if !drained => match batch {
                Some(batch) => source.process(batch).await?,
                None => return Err("partition fetchers stopped".into()),
            },
            _ = madsim::time::sleep(tick), if idle_timeout > 0 && !drained => source.emit_watermark().await?,
        }
    }
}

/// At-most-once: claims a partition's committed position for this source's writer epoch (from
/// `start`, its restored position, if nothing was committed); returns the position to resume
/// from and the claim's bytes. A conflict means another source committed meanwhile: read again.
async fn claim_offsets(tc: &TaskContext, start: SourcePosition) -> Result<(SourcePosition, Vec<u8>), String> {
    let key = checkpoint::offsets_key(start.partition);
    let epoch = tc.spec.writer_epoch();
    loop {
        let current = tc.store.get(&key).await.map_err(|e| e.to_string())?;
        let (position, bytes) = checkpoint::claim(current.as_deref(), epoch, start).map_err(|owner| {
            format!("partition {} is owned by writer epoch {owner} > {epoch}", start.partition)
        })?;
        if tc.store.cas(&key, current, bytes.clone()).await.map_err(|e| e.to_string())?.is_ok() {
            return Ok((position, bytes));
        }
    }
}

impl Source {
    async fn start(tc: TaskContext) -> Result<Self, String> {
        let TaskInput::Partitions(partitions) = &tc.spec.input else { panic!("not a source") };
        let TaskOutput::Exchange { downstream_chain, targets } = &tc.spec.output else {
            panic!("a source feeds an exchange")
        };
        let mut positions: BTreeMap<u32, SourcePosition> = partitions
            .iter()
            .map(|&p| (p, SourcePosition { partition: p, offset: 0, ended: 0, max_event_ms: 0 }))
            .collect();
        for p in &tc.spec.restore.positions {
            positions.insert(p.partition, *p);
        }
        let mut claims = BTreeMap::new();
        if tc.spec.semantics == Semantics::AtMostOnce {
            for (&p, position) in positions.iter_mut() {
                let (claimed, bytes) = claim_offsets(&tc, *position).await?;
                *position = claimed;
                claims.insert(p, bytes);
            }
        }
        let (subtask, epoch) = (tc.spec.id.subtask, tc.spec.epoch);
        for p in positions.values() {
            tc.ctx.trace(TraceEvent::SourceResumed {
                subtask,
                epoch,
                partition: p.partition,
                offset: p.offset,
            });
        }
        let wiring = Wiring {
            client: tc.client.clone(),
            epoch: tc.spec.epoch,
            from: Upstream { task: tc.spec.id, generation: tc.spec.generation },
            downstream_chain: *downstream_chain,
            tolerate_breaks: tc.spec.recovery.replicated(),
            backlog: tc.spec.recovery == Recovery::PassiveReplication,
            rewires: tc.rewires.clone(),
        };
        let batch_records = tc.ctx.cluster.settings.batch_records;
        let exchange = KeyByExchange::open(wiring, targets, batch_records)
            .await
            .map_err(|e| format!("opening the exchange: {e}"))?;
        let now = clock::elapsed_ms();
        let last_read_ms = positions.keys().map(|&p| (p, now)).collect();
        Ok(Source { step: tc.step(), tc, exchange, positions, last_read_ms, sent: (0, false), claims })
    }

    fn drained(&self) -> bool {
        let producers = self.tc.ctx.cluster.producers;
        self.positions.values().all(|p| p.ended == producers)
    }

    async fn checkpoint(&mut self, checkpoint: u64) -> TaskResult {
        self.exchange.barrier(checkpoint).await.map_err(|e| e.to_string())?;
        let positions = self.positions.values().copied().collect();
        let snapshot = TaskSnapshot { task: self.tc.spec.id, positions, state: None };
        task::ack(&self.tc, checkpoint, snapshot).await;
        Ok(())
    }

    async fn process(&mut self, batch: source::Fetched) -> TaskResult {
        let position = self.positions.get_mut(&batch.partition).expect("fetching an assigned partition");
        assert_eq!(batch.offset, position.offset, "partition {} fetched out of order", batch.partition);
        self.tc.ctx.trace(TraceEvent::SourceRead {
            subtask: self.tc.spec.id.subtask,
            epoch: self.tc.spec.epoch,
            partition: batch.partition,
            offset: batch.offset,
            records: batch.records.len() as u64,
        });
        position.offset += batch.records.len() as u64;
        position.ended += batch.records.iter().filter(|r| r.payload == Payload::EndOfStream).count() as u32;
        for r in &batch.records {
            if let Payload::Data(e) = &r.payload {
                position.max_event_ms = position.max_event_ms.max(e.event_time_ms);
            }
        }
        self.last_read_ms.insert(batch.partition, clock::elapsed_ms());
        if self.tc.spec.semantics == Semantics::AtMostOnce {
            let position = *position;
            self.commit_offsets(position).await?;
        }
        let partition = batch.partition;
        for (offset, r) in (batch.offset..).zip(batch.records) {
            let Payload::Data(e) = r.payload else { continue };
            let cause = Cause { producer: r.producer, seq: r.seq };
            let mut record = StreamRecord::from_event(e, r.stream_time_ms, cause, partition, offset);
            if !step(&self.step, &mut record) {
                continue;
            }
            if let Some(full) = self.exchange.buffer(record) {
                self.exchange.send_full(full).await.map_err(|e| e.to_string())?;
            }
        }
        self.exchange.flush().await.map_err(|e| e.to_string())?;
        self.emit_watermark().await
    }

    /// At-most-once: commits `position` before its batch is processed, by compare-and-set from
    /// this source's last commit. A conflict means a newer epoch claimed the partition.
    async fn commit_offsets(&mut self, position: SourcePosition) -> TaskResult {
        let key = checkpoint::offsets_key(position.partition);
        let bytes = checkpoint::encode_claim(self.tc.spec.writer_epoch(), &position);
        let last = self.claims.get(&position.partition).cloned();
        assert!(last.is_some(), "partition {} committed unclaimed", position.partition);
        match self.tc.store.cas(&key, last, bytes.clone()).await.map_err(|e| e.to_string())? {
            Ok(()) => _ = self.claims.insert(position.partition, bytes),
            Err(current) => {
                let owner = current.as_deref().and_then(checkpoint::decode_claim).map(|(e, _)| e);
                return Err(format!(
                    "partition {} was claimed by writer epoch {owner:?}",
                    position.partition
                ));
            }
        }
        Ok(())
    }

    /// The subtask's watermark, and whether every partition still open is idle.
    fn watermark(&self) -> (u64, bool) {
        let producers = self.tc.ctx.cluster.producers;
        let time = self.tc.spec.time;
        let now = clock::elapsed_ms();
        let mut open = self.positions.values().filter(|p| p.ended < producers).peekable();
        if open.peek().is_none() {
            return (u64::MAX, false);
        }
        let active = open
            .filter(|p| {
                time.idle_timeout_ms == 0 || now - self.last_read_ms[&p.partition] < time.idle_timeout_ms
            })
            .map(|p| p.max_event_ms.saturating_sub(time.max_out_of_orderness_ms))
            .min();
        match active {
            Some(w) => (w, false),
            None => (self.sent.0, true),
        }
    }

    /// Sends the watermark if it rose, or if the subtask became idle or stopped being idle.
    async fn emit_watermark(&mut self) -> TaskResult {
        let (at, idle) = self.watermark();
        let at = at.max(self.sent.0);
        if (at, idle) != self.sent {
            self.sent = (at, idle);
            self.exchange.watermark(at, idle).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Runs `record` through the pipeline's source-side step, if this chain has it.
pub(super) fn step(step: &Option<Arc<dyn Dataflow>>, record: &mut StreamRecord) -> bool {
    match step {
        Some(dataflow) => dataflow.source_step(record),
        None => true,
    }
}
