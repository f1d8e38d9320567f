//! A passive replication standby: keeps a copy of its primary's state from the primary's
//! changelog, committed checkpoint by checkpoint, and takes over when promoted.
//!
//! # Protocol
//! 1. The primary sends `Base` (its state at barrier n) at the first barrier after connecting,
//!    then `Changes` after each batch it applies and, wherever it pre-commits, `Changes` for
//!    what changed since its last batch (timers its watermark fired) and `Barrier(m)`. The
//!    standby keeps them as segments: the changes before barrier m form segment m.
//! 2. Segment m holds state whose output sits in the primary's transaction for m: it is
//!    applied only when checkpoint m (or a later one) completes. The standby reports each
//!    closed segment (`StandbyProgress`), so the manager can promote the most caught-up one.
//! 3. `Promote { upto }` (the latest completed checkpoint): segments up to `upto` are applied,
//!    every later one is dropped — their output was never committed, and the sink aborts it —
//!    and a standby still short of `upto` loads that checkpoint's state from the store. The
//!    standby then runs as the primary: the sources' rewired channels (deferred until now)
//!    replay their backlog, and offsets it already applied are skipped.
//!
//! Keeping a segment the sink never committed would promote a standby whose state counts
//! input whose output was lost (KAFKA-9891's class of bug); `keep_uncommitted` plants exactly
//! that, for the checkers to catch.

use tokio::sync::mpsc;

use crate::channel::Delivery;
use crate::job::{ReplicaRole, TaskSpec};
use crate::manager::ManagerRequest;
use crate::observe::TraceEvent;
use crate::state::{Changes, View};

use super::channel_task::{self, ChannelTask};
use super::task::{self, Promotion, TaskContext, TaskEvent, TaskResult};

/// Changes before barrier `closed_by` (open: `None`), or a base state.
struct Segment {
    closed_by: Option<u64>,
    base: Option<View>,
    changes: Vec<Changes>,
}

struct Standby {
    tc: TaskContext,
    /// The state as of checkpoint `committed_at`.
    committed: View,
    committed_at: u64,
    /// The primary generation whose stream is followed, once it sent a base.
    following: Option<u32>,
    segments: Vec<Segment>,
    /// Channel events from sources that arrived before the promotion.
    deferred: Vec<TaskEvent>,
}

pub async fn run(tc: TaskContext, mut inbox: mpsc::UnboundedReceiver<TaskEvent>) -> (TaskResult, TaskSpec) {
    let mut standby = Standby {
        tc,
        committed: View::default(),
        committed_at: 0,
        following: None,
        segments: Vec::new(),
        deferred: Vec::new(),
    };
    loop {
        let spec = standby.tc.spec.clone();
        let Some(event) = inbox.recv().await else {
            return (Err("the worker dropped the inbox".into()), spec);
        };
        match event {
            TaskEvent::Channel(delivery) => {
                if standby.on_delivery(delivery).await {
                    return (Ok(()), spec);
                }
            }
            TaskEvent::Complete(checkpoint) => standby.apply_upto(checkpoint),
            TaskEvent::Promote(p) => return standby.promote(p, inbox).await,
            TaskEvent::Trigger(_) | TaskEvent::Finish => {}
        }
    }
}

impl Standby {
    /// Returns whether the stream ended: the primary finished, and so does the standby.
    async fn on_delivery(&mut self, delivery: Delivery) -> bool {
        let from = delivery.from();
        if from.task != self.tc.spec.id {
            // A source's channel, rewired here for the promotion.
            self.deferred.push(TaskEvent::Channel(delivery));
            return false;
        }
        match delivery {
            Delivery::Base { checkpoint, state, .. }
                if self.following.is_none_or(|g| from.generation >= g) =>
            {
                self.following = Some(from.generation);
                let base = View::decode(&state);
                self.segments =
                    vec![Segment { closed_by: Some(checkpoint), base: Some(base), changes: Vec::new() }];
                self.segments.push(Segment { closed_by: None, base: None, changes: Vec::new() });
                self.progress(checkpoint).await;
            }
            _ if self.following != Some(from.generation) => {}
            Delivery::Changes { changes, .. } => {
                self.segments.last_mut().expect("an open segment").changes.push(changes);
            }
            Delivery::Barrier { checkpoint, .. } => {
                self.segments.last_mut().expect("an open segment").closed_by = Some(checkpoint);
                self.segments.push(Segment { closed_by: None, base: None, changes: Vec::new() });
                self.progress(checkpoint).await;
            }
            Delivery::End { .. } => return true,
            _ => {}
        }
        false
    }

    /// Tells the manager this standby holds the changelog up to barrier `through`.
    async fn progress(&self, through: u64) {
        let spec = &self.tc.spec;
        let (epoch, task, replica) = (spec.epoch, spec.id, spec.replica);
        task::report(&self.tc.manager, ManagerRequest::StandbyProgress { epoch, task, replica, through })
            .await;
    }

    /// Checkpoint `checkpoint` completed: every segment up to it is committed.
    fn apply_upto(&mut self, checkpoint: u64) {
        while let Some(closed) = self.segments.first().and_then(|s| s.closed_by).filter(|&c| c <= checkpoint)
        {
            let segment = self.segments.remove(0);
            apply(&mut self.committed, segment);
            self.committed_at = closed;
        }
    }

    /// Takes over as the primary, from the state as of checkpoint `p.upto`.
    async fn promote(
        mut self,
        p: Promotion,
        inbox: mpsc::UnboundedReceiver<TaskEvent>,
    ) -> (TaskResult, TaskSpec) {
        self.apply_upto(p.upto);
        if self.tc.ctx.cluster.settings.test_keep_uncommitted {
            for segment in self.segments.drain(..) {
                apply(&mut self.committed, segment);
            }
        }
        let caught_up = self.committed_at == p.upto;
        let mut spec = self.tc.spec.clone();
        spec.role = ReplicaRole::Primary;
        spec.generation = p.generation;
        spec.standbys = p.standbys.clone();
        if !caught_up {
            match self.load(&p).await {
                Ok(view) => self.committed = view,
                Err(e) => return (Err(e), spec),
            }
        }
        let id = spec.id;
        self.tc.ctx.trace(TraceEvent::Promoted {
            operator: id.chain,
            subtask: id.subtask,
            generation: p.generation,
            caught_up,
        });
        tracing::info!(task = ?id, upto = p.upto, caught_up, deferred = self.deferred.len(), "standby promoted");
        let tc = TaskContext { spec: spec.clone(), ..self.tc };
        let mut primary = match ChannelTask::new(tc, self.committed).await {
            Ok(primary) => primary,
            Err(e) => return (Err(e), spec),
        };
        if let Err(e) = primary.settle_sink(p.upto).await {
            return (Err(e), spec);
        }
        primary.run(inbox, self.deferred).await
    }

    /// The state of checkpoint `p.upto` from the store (the empty state before any checkpoint).
    async fn load(&self, p: &Promotion) -> Result<View, String> {
        let Some(handle) = &p.state else { return Ok(View::default()) };
        let snapshot = channel_task::load(&self.tc, handle).await?;
        Ok(View::decode(&snapshot))
    }
}

fn apply(view: &mut View, segment: Segment) {
    if let Some(base) = segment.base {
        *view = base;
    }
    for changes in &segment.changes {
        view.apply(changes);
    }
}
