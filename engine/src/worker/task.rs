//! What every subtask shares: its context, the events it receives, how it reports to the
//! manager, and the dispatch to the source or channel-input loop.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::channel::Delivery;
use crate::checkpoint::{StateHandle, TaskSnapshot};
use crate::job::{OperatorKind, ReplicaRole, TaskSpec};
use crate::manager::ManagerRequest;
use crate::net::{Client, Tx};
use crate::observe::{NodeContext, TraceEvent};
use crate::operators::key_by::Rewires;
use crate::plugin::Dataflow;
use crate::store::StoreClient;

use super::{channel_task, source_task};

/// What a subtask's inbox carries.
pub enum TaskEvent {
    /// A channel's delivery (channel-input subtasks).
    Channel(Delivery),
    /// Inject barrier n (sources).
    Trigger(u64),
    /// Checkpoint n completed (transactional sinks commit).
    Complete(u64),
    /// The final checkpoint completed: end the output channels (sources).
    Finish,
    /// This standby or secondary takes over as its subtask's primary.
    Promote(Promotion),
}

/// What a copy promoted to primary is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The generation it writes and reports under from now on.
    pub generation: u32,
    /// The latest completed checkpoint: what the sink committed, and the state a new primary
    /// starts from (changes after it were never committed).
    pub upto: u64,
    /// This subtask's state in that checkpoint, for a standby that has not caught up to it.
    pub state: Option<StateHandle>,
    /// Passive replication: the standbys the new primary streams its changelog to.
    pub standbys: Vec<u32>,
}

/// The worker's current connection to the leading manager, replaced when it reconnects, and
/// the journal of its subtasks' reports of the newest epoch.
#[derive(Default)]
pub struct ManagerConn {
    pub tx: Option<Rc<Tx<ManagerRequest>>>,
    /// `Deployed`, `SourceDrained`, `TaskFinished` and `TaskFailed` of the newest epoch: a
    /// report can be lost with a connection, or sent to a manager that just lost the lease, so
    /// the whole journal is sent again to every manager the worker registers with. The
    /// manager takes each of them idempotently.
    journal: Vec<ManagerRequest>,
}

pub type ManagerLink = Rc<RefCell<ManagerConn>>;

/// Everything a running subtask needs.
#[derive(Clone)]
pub struct TaskContext {
    pub ctx: NodeContext,
    pub client: Rc<Client>,
    pub store: Rc<StoreClient>,
    pub manager: ManagerLink,
    /// New copies for a source's destinations, posted by the worker.
    pub rewires: Rewires,
    pub spec: TaskSpec,
}

pub type TaskResult = Result<(), String>;

/// Runs a subtask to completion; returns its outcome and the spec it ended under (a promoted
/// copy ends as a primary of a newer generation).
pub async fn run(tc: TaskContext, inbox: mpsc::UnboundedReceiver<TaskEvent>) -> (TaskResult, TaskSpec) {
    if tc.spec.is_source() {
        let spec = tc.spec.clone();
        (source_task::run(tc, inbox).await, spec)
    } else {
        channel_task::run(tc, inbox).await
    }
}

/// Reports a primary's end to the manager; a standby or secondary ends silently.
pub async fn finish(tc: &TaskContext, spec: &TaskSpec, outcome: TaskResult) {
    let (task, epoch, generation) = (spec.id, spec.epoch, spec.generation);
    if spec.role != ReplicaRole::Primary {
        if let Err(reason) = outcome {
            tracing::info!(?task, epoch, replica = spec.replica, %reason, "a copy ended");
        }
        return;
    }
    let message = match outcome {
        Ok(()) => {
            tc.ctx.trace(TraceEvent::TaskFinished { operator: task.chain, subtask: task.subtask });
            ManagerRequest::TaskFinished { epoch, task, generation }
        }
        Err(reason) => {
            tracing::warn!(?task, epoch, %reason, "subtask failed");
            ManagerRequest::TaskFailed { epoch, task, generation, reason }
        }
    };
    report(&tc.manager, message).await;
}

/// Sends a message to the manager if the worker is connected, and journals a subtask's state
/// report (see [`ManagerConn`]). A lost checkpoint acknowledgement is not sent again: its
/// checkpoint times out and the next one is taken.
pub async fn report(manager: &ManagerLink, message: ManagerRequest) {
    let tx = {
        let mut m = manager.borrow_mut();
        if let Some(epoch) = message.state_epoch() {
            let newest = m.journal.iter().filter_map(ManagerRequest::state_epoch).max().unwrap_or(0);
            if epoch >= newest {
                m.journal.retain(|r| r.state_epoch() == Some(epoch));
                m.journal.push(message.clone());
            }
        }
        m.tx.clone()
    };
    tracing::trace!(?message, connected = tx.is_some(), "report");
    if let Some(tx) = tx {
        _ = tx.send(message).await;
    }
}

/// Sends the journal of state reports to the manager just registered with.
pub async fn resend_journal(manager: &ManagerLink) {
    let (tx, journal) = {
        let m = manager.borrow();
        (m.tx.clone(), m.journal.clone())
    };
    let Some(tx) = tx else { return };
    for message in journal {
        if tx.send(message).await.is_err() {
            return;
        }
    }
}

/// Acknowledges checkpoint `checkpoint` with this subtask's snapshot.
pub async fn ack(tc: &TaskContext, checkpoint: u64, snapshot: TaskSnapshot) {
    let (epoch, generation) = (tc.spec.epoch, tc.spec.generation);
    report(&tc.manager, ManagerRequest::CheckpointAck { epoch, generation, checkpoint, snapshot }).await;
}

impl TaskContext {
    /// The pipeline, built from the task's spec by this node's catalog.
    pub fn dataflow(&self) -> Arc<dyn Dataflow> {
        self.ctx.catalog.build(&self.spec.pipeline)
    }

    /// The pipeline if this subtask's chain runs its source-side step.
    pub fn step(&self) -> Option<Arc<dyn Dataflow>> {
        self.spec.operators.contains(&OperatorKind::Step).then(|| self.dataflow())
    }
}
