//! What every subtask shares: its context, the events it receives, how it reports to the
//! manager, and the dispatch to the source or channel-input loop.

use std::cell::RefCell;
use std::rc::Rc;

use tokio::sync::mpsc;

use crate::channel::{ChannelSender, Delivery};
use crate::checkpoint::TaskSnapshot;
use crate::cluster::{NodeId, Role, WORKER_DATA_PORT};
use crate::job::{TaskId, TaskSpec};
use crate::manager::ManagerRequest;
use crate::net::{Client, Tx};
use crate::observe::{NodeContext, TraceEvent};
use crate::operators::Stateless;
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
    pub spec: TaskSpec,
}

pub type TaskResult = Result<(), String>;

/// Runs a subtask to completion.
pub async fn run(tc: TaskContext, inbox: mpsc::UnboundedReceiver<TaskEvent>) -> TaskResult {
    if tc.spec.is_source() {
        source_task::run(tc, inbox).await
    } else {
        channel_task::run(tc, inbox).await
    }
}

/// Reports a subtask's end to the manager.
pub async fn finish(tc: &TaskContext, outcome: TaskResult) {
    let (id, epoch) = (tc.spec.id, tc.spec.epoch);
    let message = match outcome {
        Ok(()) => {
            tc.ctx.trace(TraceEvent::TaskFinished { operator: id.chain, subtask: id.subtask });
            ManagerRequest::TaskFinished { epoch, task: id }
        }
        Err(reason) => {
            tracing::warn!(task = ?id, epoch, %reason, "subtask failed");
            ManagerRequest::TaskFailed { epoch, task: id, reason }
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
    let epoch = tc.spec.epoch;
    report(&tc.manager, ManagerRequest::CheckpointAck { epoch, checkpoint, snapshot }).await;
}

impl TaskContext {
    pub fn stateless(&self) -> Vec<Stateless> {
        self.spec.operators.iter().filter_map(|&k| Stateless::from_kind(k)).collect()
    }
}

/// Opens one channel to every downstream subtask, in subtask order.
pub async fn open_channels(
    tc: &TaskContext,
    downstream_chain: u32,
    workers: &[u32],
) -> Result<Vec<ChannelSender>, String> {
    let mut senders = Vec::with_capacity(workers.len());
    for (subtask, &worker) in workers.iter().enumerate() {
        let to = TaskId { chain: downstream_chain, subtask: subtask as u32 };
        let addr = NodeId::new(Role::Worker, worker).addr(WORKER_DATA_PORT);
        let sender = ChannelSender::open(&tc.client, addr, tc.spec.epoch, tc.spec.id, to)
            .await
            .map_err(|e| format!("opening channel to {}.{}: {e}", to.chain, to.subtask))?;
        senders.push(sender);
    }
    Ok(senders)
}
