//! The worker node: runs the subtasks the manager deploys on it and terminates their channels.
//!
//! It owns three listeners' worth of plumbing:
//! - the control port, where the manager sends `Deploy`;
//! - the data port, where upstream subtasks open channels (see `channel`), routed to the local
//!   subtask's inbox;
//! - a connection to the manager carrying `Register`, heartbeats and task reports.
//!
//! What a subtask does with its records is `task`'s concern.

mod task;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::channel::{self, ChannelMsg, ChannelReply, Delivery};
use crate::cluster::{NodeId, Role, MANAGER_PORT, WORKER_CONTROL_PORT, WORKER_DATA_PORT};
use crate::job::{TaskId, TaskInput, TaskSpec};
use crate::manager::{ManagerRequest, WorkerCommand, WorkerReply};
use crate::net::{Client, Listener, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};

struct Worker {
    ctx: NodeContext,
    client: Rc<Client>,
    /// Inboxes of local subtasks that read channels.
    inboxes: BTreeMap<TaskId, mpsc::UnboundedSender<Delivery>>,
    manager: Rc<Tx<ManagerRequest>>,
}

type Shared = Rc<RefCell<Worker>>;

const MANAGER_RETRY: Duration = Duration::from_millis(50);
const MANAGER_ATTEMPTS: u32 = 200;

/// The worker node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let client = Rc::new(Client::bind().await);
    let me = ctx.id.index;
    let addr = NodeId::new(Role::Manager, 0).addr(MANAGER_PORT);
    let Ok((manager, _replies)) = client
        .connect_retrying::<ManagerRequest, crate::manager::ManagerResponse>(
            addr,
            MANAGER_RETRY,
            MANAGER_ATTEMPTS,
        )
        .await
    else {
        tracing::warn!(worker = me, "manager unreachable");
        return;
    };
    let manager = Rc::new(manager);
    _ = manager.send(ManagerRequest::Register { worker: me }).await;
    let interval = Duration::from_millis(ctx.cluster.settings.heartbeat_interval_ms);
    let worker = Rc::new(RefCell::new(Worker { ctx, client, inboxes: BTreeMap::new(), manager }));
    madsim::task::spawn_local(heartbeat(worker.clone(), interval));
    madsim::task::spawn_local(serve_data(worker.clone()));
    serve_control(worker).await;
}

async fn heartbeat(worker: Shared, interval: Duration) {
    loop {
        madsim::time::sleep(interval).await;
        let (manager, me) = {
            let w = worker.borrow();
            (w.manager.clone(), w.ctx.id.index)
        };
        if manager.send(ManagerRequest::Heartbeat { worker: me }).await.is_err() {
            return;
        }
    }
}

async fn serve_control(worker: Shared) {
    let listener = Listener::<WorkerCommand, WorkerReply>::bind(WORKER_CONTROL_PORT).await;
    loop {
        let Ok((tx, mut rx, _from)) = listener.accept().await else { continue };
        let worker = worker.clone();
        madsim::task::spawn_local(async move {
            while let Ok(WorkerCommand::Deploy(tasks)) = rx.recv().await {
                for spec in tasks {
                    deploy(&worker, spec);
                }
                if tx.send(WorkerReply::Deployed).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Starts one subtask; its inbox is registered before this returns, so channels can open.
fn deploy(worker: &Shared, spec: TaskSpec) {
    let (ctx, client, manager) = {
        let w = worker.borrow();
        (w.ctx.clone(), w.client.clone(), w.manager.clone())
    };
    assert_eq!(spec.worker, ctx.id.index, "subtask deployed on the wrong worker");
    let inbox = match spec.input {
        TaskInput::Channels { .. } => {
            let (tx, rx) = mpsc::unbounded_channel();
            let previous = worker.borrow_mut().inboxes.insert(spec.id, tx);
            assert!(previous.is_none(), "subtask {:?} deployed twice", spec.id);
            Some(rx)
        }
        TaskInput::Partitions(_) => None,
    };
    let id = spec.id;
    ctx.trace(TraceEvent::TaskDeployed { operator: id.chain, subtask: id.subtask });
    madsim::task::spawn_local(async move {
        let report = match task::run(ctx.clone(), client, spec, inbox).await {
            Ok(()) => {
                ctx.trace(TraceEvent::TaskFinished { operator: id.chain, subtask: id.subtask });
                ManagerRequest::TaskFinished { task: id }
            }
            Err(reason) => {
                tracing::warn!(task = ?id, %reason, "subtask failed");
                ManagerRequest::TaskFailed { task: id, reason }
            }
        };
        _ = manager.send(report).await;
    });
}

async fn serve_data(worker: Shared) {
    let listener = Listener::<ChannelMsg, ChannelReply>::bind(WORKER_DATA_PORT).await;
    loop {
        let Ok((tx, rx, _from)) = listener.accept().await else { continue };
        madsim::task::spawn_local(accept_channel(worker.clone(), tx, rx));
    }
}

/// Reads a channel's hello and hands the channel to the local subtask it names.
async fn accept_channel(worker: Shared, tx: Tx<ChannelReply>, mut rx: Rx<ChannelMsg>) {
    let Ok(ChannelMsg::Hello { epoch, from, to }) = rx.recv().await else { return };
    let (inbox, credits) = {
        let w = worker.borrow();
        (w.inboxes.get(&to).cloned(), w.ctx.cluster.settings.channel_credits)
    };
    let Some(inbox) = inbox else {
        _ = tx.send(ChannelReply::Rejected).await;
        return;
    };
    assert_eq!(epoch, 1, "epochs other than the first do not exist in this version");
    if tx.send(ChannelReply::Accepted { credits }).await.is_err() {
        return;
    }
    if inbox.send(Delivery::Opened { from, credit: tx }).is_ok() {
        channel::forward(from, rx, inbox).await;
    }
}
