//! The trace recorder: stamps every engine event with simulated time and folds it into the
//! run's trace hash.
//!
//! It owns the definition of "the same run": two runs are the same when they produced the same
//! events, from the same nodes, at the same simulated instants, in the same order. It is an
//! observer only — nodes write to it and never read it back. Keeping the events (`keep_events`,
//! for `--trace` and reports) changes nothing of the run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use faultline_engine::checkpoint::{self, CheckpointMeta, StateSnapshot};
use faultline_engine::disk::Disk;

use faultline_reports::{CheckpointSpan, FaultRecord, TraceLine};

use crate::checker::consistency::CapturedCheckpoint;
use crate::checker::{choice, leadership};
use crate::disk::SimDisk;

use faultline_engine::broker::metadata;
use faultline_engine::cluster::{ClusterSpec, NodeId, Role};
use faultline_engine::observe::{Observer, TraceEvent};
use madsim::time::TimeHandle;

/// An open transaction the sink answered as lost: (ms, writer, epoch, txn).
pub type SinkLoss = (u64, u32, u64, u64);

#[derive(Default)]
struct State {
    hasher: blake3::Hasher,
    events: u64,
    job_finished_at_ms: Option<u64>,
    job_failed_at_ms: Option<u64>,
    sink_committed: u64,
    checkpoints_completed: Vec<(u64, u64)>,
    checkpoints_aborted: u64,
    /// The checkpoint triggered and not yet completed or aborted, if any.
    in_flight: Option<u64>,
    /// Recovery milestones: (simulated ms, event).
    recovery_events: Vec<(u64, TraceEvent)>,
    sink_fenced: u64,
    stale_epoch: u64,
    captured: Vec<CapturedCheckpoint>,
    /// Records the sources read (their `SourceRead`s): (simulated ms, records).
    fetched: Vec<(u64, u64)>,
    /// Every checkpoint triggered, as a report draws it.
    spans: Vec<CheckpointSpan>,
    /// What the log checker reads: acknowledgements, watermarks, truncations, elections.
    log_events: Vec<(NodeId, TraceEvent)>,
    /// What the append checker reads: the producers' sends and acknowledgements, the brokers'
    /// appends and truncations, with their simulated ms.
    append_events: Vec<(u64, NodeId, TraceEvent)>,
    /// What the manager checker reads: lease acquisitions and acts, with their simulated ms.
    manager_events: Vec<(u64, NodeId, TraceEvent)>,
    /// What the driver checker reads: the driver's submissions and attaches, its losses, the
    /// job's suspensions, recoveries, checkpoint triggers and end, and the managers' leases,
    /// with their simulated ms.
    driver_events: Vec<(u64, NodeId, TraceEvent)>,
    /// The sources' resumes and reads again, with their simulated ms.
    source_events: Vec<(u64, NodeId, TraceEvent)>,
    /// When the sink booted (its start and every restart), and each open transaction it
    /// answered as lost: (ms, writer, epoch, txn).
    sink_boots: Vec<u64>,
    /// What the deployment checker reads: the workers' boots and deployments.
    deploy_events: Vec<(u64, NodeId, TraceEvent)>,
    sink_lost: Vec<SinkLoss>,
    /// What the failover checker reads: the managers' losses, decisions, triggers and lease
    /// changes, and the workers' deployments, with their simulated ms, in trace
    /// order.
    failover_events: Vec<(u64, NodeId, TraceEvent)>,
    /// Every event with its simulated ns, once `keep_events` asked for them (reports, `--trace`).
    kept: Option<Vec<(u64, NodeId, TraceEvent)>>,
}

/// Records a run's trace.
#[derive(Default)]
pub struct Recorder {
    state: Mutex<State>,
    /// The store's disk, read when a checkpoint completes to keep a copy for the checkers.
    store: OnceLock<Arc<SimDisk>>,
}

impl Observer for Recorder {
    fn record(&self, node: NodeId, event: TraceEvent) {
        let now = TimeHandle::current().elapsed();
        let (tag, words) = event.words();
        let mut s = self.state.lock().unwrap();
        s.hasher.update(&(now.as_nanos() as u64).to_le_bytes());
        s.hasher.update(&[node.role as u8, tag]);
        s.hasher.update(&node.index.to_le_bytes());
        for w in words {
            s.hasher.update(&w.to_le_bytes());
        }
        s.events += 1;
        if let Some(kept) = s.kept.as_mut() {
            kept.push((now.as_nanos() as u64, node, event.clone()));
        }
        let now_ms = now.as_millis() as u64;
        if is_driver_event(&event) {
            s.driver_events.push((now_ms, node, event.clone()));
        }
        if is_failover_event(&event) {
            s.failover_events.push((now_ms, node, event.clone()));
        }
        match event {
            TraceEvent::JobFinished => s.job_finished_at_ms = Some(now_ms),
            TraceEvent::JobFailed => s.job_failed_at_ms = Some(now_ms),
            TraceEvent::SinkCommitted { records, .. } => s.sink_committed += records,
            TraceEvent::CheckpointTriggered { checkpoint } => {
                s.in_flight = Some(checkpoint);
                s.spans.push(CheckpointSpan {
                    id: checkpoint,
                    started_at_ms: now_ms,
                    ended_at_ms: None,
                    outcome: "unfinished".into(),
                    state_bytes: None,
                });
            }
            TraceEvent::CheckpointCompleted { checkpoint } => {
                s.in_flight = None;
                s.checkpoints_completed.push((now_ms, checkpoint));
                let captured = self.store.get().and_then(|disk| capture(disk, checkpoint));
                let bytes = captured.as_ref().map(|(_, bytes)| *bytes);
                s.end_span(checkpoint, now_ms, "completed", bytes);
                s.captured.extend(captured.map(|(c, _)| c));
            }
            TraceEvent::CheckpointAborted { checkpoint } => {
                s.checkpoints_aborted += 1;
                if s.in_flight == Some(checkpoint) {
                    s.in_flight = None;
                }
                s.end_span(checkpoint, now_ms, "aborted", None);
            }
            TraceEvent::SinkFenced { .. } => s.sink_fenced += 1,
            TraceEvent::Boot if node.role == Role::Sink => s.sink_boots.push(now_ms),
            TraceEvent::Boot if node.role == Role::Worker => {
                s.deploy_events.push((now_ms, node, event.clone()))
            }
            TraceEvent::SinkTxnLost { writer, epoch, txn } => s.sink_lost.push((now_ms, writer, epoch, txn)),
            TraceEvent::StaleEpoch { .. } => s.stale_epoch += 1,
            TraceEvent::TaskDeployed { .. } => {
                s.deploy_events.push((now_ms, node, event.clone()));
                s.recovery_events.push((now_ms, event.clone()));
            }
            TraceEvent::WorkerDead { .. }
            | TraceEvent::RecoveryStarted { .. }
            | TraceEvent::Failover { .. }
            | TraceEvent::Promoted { .. }
            | TraceEvent::StateLoaded { .. }
            | TraceEvent::StateShipped { .. } => s.recovery_events.push((now_ms, event.clone())),
            _ => s.route(now_ms, node, &event),
        }
        tracing::trace!(node = %node.name(), ?event, at_ms = now_ms);
    }
}

/// Whether the driver checker reads `event`.
fn is_driver_event(event: &TraceEvent) -> bool {
    matches!(
        event,
        TraceEvent::JobSubmitted
            | TraceEvent::JobAttached
            | TraceEvent::DriverLost
            | TraceEvent::JobSuspended { .. }
            | TraceEvent::JobFinished
            | TraceEvent::JobFailed
            | TraceEvent::RecoveryStarted { .. }
            | TraceEvent::CheckpointTriggered { .. }
            | TraceEvent::LeaseAcquired { .. }
            | TraceEvent::LeaseGranted { .. }
            | TraceEvent::LeaseLost { .. }
    )
}

/// Whether the failover checker reads `event`.
fn is_failover_event(event: &TraceEvent) -> bool {
    matches!(
        event,
        TraceEvent::WorkerDead { .. }
            | TraceEvent::RollbackDecided { .. }
            | TraceEvent::RecoveryStarted { .. }
            | TraceEvent::JobSuspended { .. }
            | TraceEvent::Failover { .. }
            | TraceEvent::TaskReplaced { .. }
            | TraceEvent::TaskDeployed { .. }
            | TraceEvent::CheckpointTriggered { .. }
            | TraceEvent::LeaseAcquired { .. }
            | TraceEvent::LeaseLost { .. }
            | TraceEvent::DriverLost
            | TraceEvent::JobAttached
    )
}

impl State {
    /// Files an event for the checkers that read it: the log's, the appends', the sources',
    /// the managers'.
    fn route(&mut self, now_ms: u64, node: NodeId, event: &TraceEvent) {
        match event {
            TraceEvent::ProduceSent { .. } | TraceEvent::Appended { .. } => {
                self.append_events.push((now_ms, node, event.clone()))
            }
            TraceEvent::ProduceAcked { .. } | TraceEvent::Truncated { .. } => {
                self.append_events.push((now_ms, node, event.clone()));
                self.log_events.push((node, event.clone()))
            }
            TraceEvent::HighWatermark { .. } | TraceEvent::LeaderElected { .. } => {
                self.log_events.push((node, event.clone()))
            }
            TraceEvent::SourceResumed { .. } | TraceEvent::SourceRead { .. } => {
                if let TraceEvent::SourceRead { records, .. } = *event {
                    self.fetched.push((now_ms, records));
                }
                self.source_events.push((now_ms, node, event.clone()));
                self.log_events.push((node, event.clone()))
            }
            TraceEvent::LeaseAcquired { .. }
            | TraceEvent::LeaseGranted { .. }
            | TraceEvent::Acting { .. }
            | TraceEvent::TaskReplaced { .. }
            | TraceEvent::CheckpointAckCounted { .. } => {
                self.manager_events.push((now_ms, node, event.clone()))
            }
            _ => {}
        }
    }

    /// Ends the span of `checkpoint` still open, if it was seen triggered.
    fn end_span(&mut self, checkpoint: u64, at_ms: u64, outcome: &str, state_bytes: Option<u64>) {
        let open = self.spans.iter_mut().rev().find(|s| s.id == checkpoint && s.ended_at_ms.is_none());
        if let Some(span) = open {
            span.ended_at_ms = Some(at_ms);
            span.outcome = outcome.to_string();
            span.state_bytes = state_bytes;
        }
    }
}

/// Reads a just-completed checkpoint's metadata and states from the store's disk, and the bytes
/// its states take there.
fn capture(disk: &SimDisk, id: u64) -> Option<(CapturedCheckpoint, u64)> {
    let meta = CheckpointMeta::decode(&disk.read(&checkpoint::meta_key(id))?)?;
    let handles = meta.tasks.iter().filter_map(|t| Some((t.task.subtask, t.state.as_ref()?)));
    let mut bytes = 0;
    let states = handles
        .map(|(subtask, h)| {
            let raw = disk.read(&h.key)?;
            bytes += raw.len() as u64;
            Some((subtask, StateSnapshot::decode(&raw)?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((CapturedCheckpoint { meta, states }, bytes))
}

impl Recorder {
    /// Lets the recorder copy checkpoints out of the store as they complete.
    pub fn watch_store(&self, disk: Arc<SimDisk>) {
        assert!(self.store.set(disk).is_ok(), "the store is watched once");
    }

    /// Each job epoch the store made durable, with the simulated ms of its sync: every version
    /// of the job's record the store synced.
    pub fn job_epochs(&self) -> Vec<(u64, u64)> {
        let Some(store) = self.store.get() else { return Vec::new() };
        let versions = store.synced_versions(faultline_engine::manager::JOB_KEY);
        let epochs = versions.iter().map(|(ms, bytes)| {
            let epoch = faultline_engine::manager::stored_epoch(bytes);
            (*ms, epoch.expect("the store's job key holds a job record"))
        });
        epochs.collect()
    }

    /// Every partition's leadership record, each version the store synced, with the partition's
    /// replicas (preferred first).
    pub fn leadership_histories(&self, cluster: &ClusterSpec) -> BTreeMap<u32, leadership::History> {
        let Some(store) = self.store.get() else { return BTreeMap::new() };
        let history = |p: u32| leadership::History {
            replicas: cluster.replicas_of(p),
            versions: store.synced_versions(&metadata::key(p)),
        };
        (0..cluster.partitions()).map(|p| (p, history(p))).collect()
    }

    /// Each checkpoint whose completion the store made durable (its `history/` entry), with
    /// the simulated ms of that sync, in time order: the engine's completions as the store saw
    /// them, including one whose manager was cut off before it could trace it.
    pub fn checkpoints_durable(&self) -> Vec<(u64, u64)> {
        let Some(disk) = self.store.get() else { return Vec::new() };
        let synced = disk.first_syncs().into_iter();
        let mut durable: Vec<(u64, u64)> =
            synced.filter_map(|(ms, file)| Some((ms, checkpoint::history_id(&file)?))).collect();
        durable.sort_unstable();
        durable
    }

    /// The checkpoints with files on the store's disk now.
    pub fn checkpoints_stored(&self) -> BTreeSet<u64> {
        let Some(disk) = self.store.get() else { return BTreeSet::new() };
        let files = disk.list(checkpoint::CHECKPOINTS_PREFIX);
        files.iter().filter_map(|f| checkpoint::checkpoint_of(f)).collect()
    }

    /// What the checkpoint-choice checker reads: the completions, the recoveries, when each
    /// job epoch was durable, and every deletion of a checkpoint's file off the store's disk;
    /// with `quiet` (the job finished and the cluster was left quiet), what the store holds.
    pub fn checkpoint_choices(&self, retained: u32, quiet: bool) -> choice::History {
        let recoveries = self.recovery_events().into_iter().filter_map(|(ms, e)| match e {
            TraceEvent::RecoveryStarted { epoch, checkpoint } => Some((ms, epoch, checkpoint)),
            _ => None,
        });
        let removals = self.store.get().map(|disk| disk.removals()).unwrap_or_default();
        let deletions =
            removals.into_iter().filter_map(|(ms, file)| Some((ms, checkpoint::checkpoint_of(&file)?)));
        choice::History {
            completed: self.checkpoints_completed(),
            recoveries: recoveries.collect(),
            durable_epochs: self.job_epochs(),
            deletions: deletions.collect(),
            durable: self.checkpoints_durable(),
            retained,
            remaining: quiet.then(|| self.checkpoints_stored()),
        }
    }

    /// Every completed checkpoint, as it was when it completed.
    pub fn captured_checkpoints(&self) -> Vec<CapturedCheckpoint> {
        self.state.lock().unwrap().captured.clone()
    }

    /// Hex digest of every event so far.
    pub fn hash(&self) -> String {
        self.state.lock().unwrap().hasher.finalize().to_hex().to_string()
    }

    pub fn job_finished_at_ms(&self) -> Option<u64> {
        self.state.lock().unwrap().job_finished_at_ms
    }

    pub fn job_failed_at_ms(&self) -> Option<u64> {
        self.state.lock().unwrap().job_failed_at_ms
    }

    /// Completed checkpoints: (simulated ms, id), in completion order.
    pub fn checkpoints_completed(&self) -> Vec<(u64, u64)> {
        self.state.lock().unwrap().checkpoints_completed.clone()
    }

    /// Whether a checkpoint is in flight: triggered, neither completed nor aborted.
    pub fn checkpoint_in_flight(&self) -> bool {
        self.state.lock().unwrap().in_flight.is_some()
    }

    pub fn checkpoints_aborted(&self) -> u64 {
        self.state.lock().unwrap().checkpoints_aborted
    }

    /// Worker deaths, recovery starts and restorations, failovers and promotions, state
    /// transfers and output resumptions, with their simulated ms.
    pub fn recovery_events(&self) -> Vec<(u64, TraceEvent)> {
        self.state.lock().unwrap().recovery_events.clone()
    }

    /// Produce acknowledgements, high watermarks, truncations, elections and the sources'
    /// resumptions and reads, in trace order.
    pub fn log_events(&self) -> Vec<(NodeId, TraceEvent)> {
        self.state.lock().unwrap().log_events.clone()
    }

    /// The producers' sends and acknowledgements and the brokers' appends and truncations, with
    /// their simulated ms, in trace order.
    pub fn append_events(&self) -> Vec<(u64, NodeId, TraceEvent)> {
        self.state.lock().unwrap().append_events.clone()
    }

    /// The sources' resumes and reads, with their simulated ms, in trace order.
    /// The workers' boots and deployments, for the deployment checker.
    pub fn deploy_events(&self) -> Vec<(u64, NodeId, TraceEvent)> {
        self.state.lock().unwrap().deploy_events.clone()
    }

    /// When the sink booted, and the open transactions it answered as lost.
    pub fn sink_losses(&self) -> (Vec<u64>, Vec<SinkLoss>) {
        let s = self.state.lock().unwrap();
        (s.sink_boots.clone(), s.sink_lost.clone())
    }

    pub fn source_events(&self) -> Vec<(u64, NodeId, TraceEvent)> {
        self.state.lock().unwrap().source_events.clone()
    }

    /// Lease acquisitions, manager acts, task replacements and counted checkpoint
    /// acknowledgements, with their simulated ms, in trace order.
    pub fn manager_events(&self) -> Vec<(u64, NodeId, TraceEvent)> {
        self.state.lock().unwrap().manager_events.clone()
    }

    /// The driver's submissions, attaches and losses, the job's suspensions, recoveries,
    /// checkpoint triggers and end, and the managers' leases, with their simulated ms, in trace
    /// order.
    pub fn driver_events(&self) -> Vec<(u64, NodeId, TraceEvent)> {
        self.state.lock().unwrap().driver_events.clone()
    }

    /// What the failover checker reads (see `is_failover_event`), with simulated ms, in trace
    /// order.
    pub fn failover_events(&self) -> Vec<(u64, NodeId, TraceEvent)> {
        self.state.lock().unwrap().failover_events.clone()
    }

    /// Records the sources read: (simulated ms, records), in trace order.
    pub fn fetched(&self) -> Vec<(u64, u64)> {
        self.state.lock().unwrap().fetched.clone()
    }

    /// Every checkpoint triggered, in trigger order, with how it ended.
    pub fn checkpoint_spans(&self) -> Vec<CheckpointSpan> {
        self.state.lock().unwrap().spans.clone()
    }

    /// Keeps every event from now on, for a report's event timeline or a `--trace` file.
    pub fn keep_events(&self) {
        let mut s = self.state.lock().unwrap();
        assert_eq!(s.events, 0, "events are kept from the run's start");
        s.kept = Some(Vec::new());
    }

    /// Every event kept, as trace lines in trace order (empty unless `keep_events` was called).
    pub fn trace_lines(&self) -> Vec<TraceLine> {
        let s = self.state.lock().unwrap();
        s.kept.iter().flatten().map(|(ns, node, event)| trace_line(*ns, *node, event)).collect()
    }

    /// Every event kept, with its simulated ns and node, in trace order (empty unless
    /// `keep_events` was called).
    pub fn kept_events(&self) -> Vec<(u64, NodeId, TraceEvent)> {
        self.state.lock().unwrap().kept.clone().unwrap_or_default()
    }

    /// What was refused from older epochs.
    pub fn fencing(&self) -> faultline_reports::FencingCounts {
        let s = self.state.lock().unwrap();
        faultline_reports::FencingCounts { sink_requests: s.sink_fenced, stale_messages: s.stale_epoch }
    }
}

/// One event as a trace line: its name and fields from the engine's serde form.
fn trace_line(ns: u64, node: NodeId, event: &TraceEvent) -> TraceLine {
    let serde_json::Value::Object(mut fields) = serde_json::to_value(event).expect("events serialise") else {
        unreachable!("a trace event serialises as an object");
    };
    let name = fields.remove("event").and_then(|v| v.as_str().map(str::to_string)).expect("tagged");
    TraceLine { at_ms: ns as f64 / 1e6, node: node.name(), event: name, fields: fields.into_iter().collect() }
}

/// How long before a fault strikes, and after it heals (or strikes, if it never heals), a
/// report shows the trace; and at most how many events per fault.
const BEFORE_MS: f64 = 50.0;
const AFTER_MS: f64 = 250.0;
const PER_FAULT: usize = 400;

/// The lines around each fault: from `BEFORE_MS` before it strikes to `AFTER_MS` after it
/// heals, at most `PER_FAULT` from each window's start, in trace order, each line once.
pub fn around_faults(lines: &[TraceLine], faults: &[FaultRecord]) -> Vec<TraceLine> {
    let mut keep = vec![false; lines.len()];
    for f in faults {
        let from = f.at_ms as f64 - BEFORE_MS;
        let to = f.healed_at_ms.unwrap_or(f.at_ms) as f64 + AFTER_MS;
        let start = lines.partition_point(|l| l.at_ms < from);
        let window = lines[start..].iter().take_while(|l| l.at_ms <= to).take(PER_FAULT).count();
        keep[start..start + window].iter_mut().for_each(|k| *k = true);
    }
    lines.iter().zip(keep).filter(|(_, k)| *k).map(|(l, _)| l.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at_ms: f64) -> TraceLine {
        TraceLine { at_ms, node: "n".into(), event: "e".into(), fields: Default::default() }
    }

    fn fault(at_ms: u64, healed_at_ms: Option<u64>) -> FaultRecord {
        FaultRecord {
            at_ms,
            healed_at_ms,
            class: "processor".into(),
            target: "worker-1".into(),
            action: "crash".into(),
            peer: None,
            effective: true,
            mid_checkpoint: false,
            restart_after_ms: None,
        }
    }

    #[test]
    fn the_lines_around_each_fault_are_kept_once_in_order() {
        let lines: Vec<TraceLine> =
            [0.0, 940.0, 960.0, 1_100.0, 1_300.0, 1_301.0, 5_000.0].map(line).to_vec();
        let faults = [fault(1_000, Some(1_050)), fault(1_050, None)];
        let kept: Vec<f64> = around_faults(&lines, &faults).iter().map(|l| l.at_ms).collect();
        assert_eq!(kept, [960.0, 1_100.0, 1_300.0]);
        assert!(around_faults(&lines, &[]).is_empty());
    }

    #[test]
    fn an_event_becomes_a_named_line_with_its_fields() {
        let node = NodeId::new(faultline_engine::cluster::Role::Broker, 1);
        let l = trace_line(1_500_000, node, &TraceEvent::LeaderElected { partition: 3, epoch: 2 });
        assert_eq!((l.at_ms, l.node.as_str(), l.event.as_str()), (1.5, "broker-2", "leader-elected"));
        assert_eq!(l.fields["partition"], 3);
        assert_eq!(l.fields["epoch"], 2);
    }
}
