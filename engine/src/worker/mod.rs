//! The worker node: runs the subtasks the manager deploys on it and terminates their channels.
//!
//! It owns the plumbing around subtasks:
//! - the control port, where the manager sends `Deploy`, checkpoint triggers and completions,
//!   `Finish` and `Cancel`; each is routed to the local subtasks of the named epoch;
//! - the data port, where upstream subtasks open channels (see `channel`), accepted only for a
//!   local subtask of the same epoch and routed to its inbox;
//! - a connection to the leading manager carrying `Register`, heartbeats and the subtasks'
//!   reports; the worker follows leadership from `manager` to `manager-standby` and back.
//!
//! `Cancel { epoch }` aborts every local subtask of an older epoch: its tasks are dropped, its
//! connections reset. `Reset { epoch }` also aborts those of the epoch itself: under
//! replication a worker declared dead is replaced within the epoch, so whatever it still runs
//! when it returns is stale. `Promote` hands a local standby or secondary its promotion;
//! `Rewire` points the local sources' exchange at a destination's new copies. A worker that was paused past its heartbeat timeout comes back running
//! old-epoch subtasks — a zombie — until the manager's `Cancel` reaches it; meanwhile the sink
//! and the channels refuse it by epoch.

mod channel_task;
mod source_task;
pub mod stage;
mod standby_task;
mod task;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use madsim::task::JoinHandle;
use tokio::sync::mpsc;

use crate::channel::{self, ChannelMsg, ChannelReply};
use crate::clock;
use crate::cluster::{self, WORKER_CONTROL_PORT, WORKER_DATA_PORT};
use crate::job::{TaskId, TaskSpec};
use crate::manager::{self, ManagerRequest, ManagerResponse, QueueStamp, Stamped, WorkerCommand};
use crate::net::{Client, Listener, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};
use crate::operators::key_by::Rewires;
use crate::store::StoreClient;
use task::{ManagerLink, TaskContext};
pub use task::{Promotion, TaskEvent};

/// A subtask running on this worker.
struct LocalTask {
    epoch: u64,
    generation: u32,
    /// Numbers the worker's deployments: a task ending removes only its own entry.
    serial: u64,
    source: bool,
    inbox: mpsc::UnboundedSender<TaskEvent>,
    rewires: Rewires,
    handle: JoinHandle<()>,
}

struct Worker {
    ctx: NodeContext,
    client: Rc<Client>,
    store: Rc<StoreClient>,
    tasks: BTreeMap<TaskId, LocalTask>,
    manager: ManagerLink,
    /// This boot's number, counted durably on the worker's disk.
    incarnation: u64,
    /// The newest epoch any command named: commands from older epochs are stale.
    newest_epoch: u64,
    /// The newest queue any command came from: commands from older queues are stale.
    newest_queue: QueueStamp,
    deployments: u64,
}

type Shared = Rc<RefCell<Worker>>;

const MANAGER_RETRY: Duration = Duration::from_millis(50);
/// Connection attempts to one manager before trying the other.
const MANAGER_ATTEMPTS: u32 = 3;

/// The worker node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let client = Rc::new(Client::bind().await);
    let store = Rc::new(StoreClient::new(&ctx, client.clone()));
    let manager: ManagerLink = Rc::new(RefCell::new(task::ManagerConn::default()));
    let incarnation = next_incarnation(&ctx);
    let worker = Rc::new(RefCell::new(Worker {
        ctx,
        client,
        store,
        tasks: BTreeMap::new(),
        manager,
        incarnation,
        newest_epoch: 0,
        newest_queue: QueueStamp::default(),
        deployments: 0,
    }));
    madsim::task::spawn_local(heartbeat(worker.clone()));
    madsim::task::spawn_local(serve_data(worker.clone()));
    serve_control(worker).await;
}

/// Counts this boot durably: the manager tells a restarted worker from a slow one by it.
fn next_incarnation(ctx: &NodeContext) -> u64 {
    const FILE: &str = "incarnation";
    let previous = ctx.disk.read(FILE).and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok());
    let incarnation = previous.map_or(0, u64::from_le_bytes) + 1;
    ctx.disk.replace(FILE, &incarnation.to_le_bytes());
    ctx.disk.sync(FILE);
    incarnation
}

/// Keeps a connection to the leading manager and heartbeats on it. It tries the managers in
/// turn until one answers `Leader`, and moves on when the one it follows answers `NotLeader`
/// or stays silent for `heartbeat_timeout_ms`.
async fn heartbeat(worker: Shared) {
    let (client, me, incarnation, timeout_ms) = {
        let w = worker.borrow();
        (w.client.clone(), w.ctx.id.index, w.incarnation, w.ctx.cluster.settings.heartbeat_timeout_ms)
    };
    let mut attempt = 0;
    loop {
        let addr = cluster::manager_addr(attempt);
        attempt += 1;
        let Ok((tx, mut replies)) = client
            .connect_retrying::<ManagerRequest, ManagerResponse>(addr, MANAGER_RETRY, MANAGER_ATTEMPTS)
            .await
        else {
            continue;
        };
        let tx = Rc::new(tx);
        // Reports may go out before the answer comes back: the leader may deploy at once.
        worker.borrow().manager.borrow_mut().tx = Some(tx.clone());
        let registered = tx.send(ManagerRequest::Register { worker: me, incarnation }).await.is_ok()
            && matches!(
                madsim::time::timeout(Duration::from_millis(timeout_ms), replies.recv()).await,
                Ok(Ok(ManagerResponse::Leader))
            );
        tracing::trace!(%addr, registered, "worker registration");
        if !registered {
            madsim::time::sleep(MANAGER_RETRY).await;
            continue;
        }
        let manager = worker.borrow().manager.clone();
        task::resend_journal(&manager).await;
        let ctx = worker.borrow().ctx.clone();
        follow(&tx, &mut replies, (me, incarnation), &ctx).await;
    }
}

/// Heartbeats the leader until it stops answering `Leader`.
async fn follow(
    tx: &Tx<ManagerRequest>,
    replies: &mut Rx<ManagerResponse>,
    me: (u32, u64),
    ctx: &NodeContext,
) {
    let (worker, incarnation) = me;
    let beat = || ManagerRequest::Heartbeat { worker, incarnation };
    let mut heard_ms = clock::elapsed_ms();
    while let Some(ManagerResponse::Leader) =
        manager::next_answer(tx, replies, beat, &ctx.cluster.settings, &mut heard_ms).await
    {}
}

async fn serve_control(worker: Shared) {
    let listener = Listener::<Stamped, ()>::bind(WORKER_CONTROL_PORT).await;
    loop {
        let Ok((_tx, mut rx, _from)) = listener.accept().await else { continue };
        let worker = worker.clone();
        madsim::task::spawn_local(async move {
            while let Ok(command) = rx.recv().await {
                handle_command(&worker, command).await;
            }
        });
    }
}

async fn handle_command(worker: &Shared, stamped: Stamped) {
    let Stamped { stamp, command } = stamped;
    let epoch = command.epoch();
    {
        let mut w = worker.borrow_mut();
        if epoch < w.newest_epoch || stamp < w.newest_queue {
            w.ctx.trace(TraceEvent::StaleEpoch { epoch });
            return;
        }
        w.newest_epoch = epoch;
        w.newest_queue = stamp;
    }
    match command {
        WorkerCommand::Deploy { tasks, .. } => {
            cancel_older(worker, epoch);
            for spec in tasks {
                deploy(worker, spec);
            }
            let me = worker.borrow().ctx.id.index;
            let manager = worker.borrow().manager.clone();
            task::report(&manager, ManagerRequest::Deployed { epoch, worker: me }).await;
        }
        WorkerCommand::Trigger { checkpoint, .. } => {
            route(worker, epoch, true, || TaskEvent::Trigger(checkpoint))
        }
        WorkerCommand::Complete { checkpoint, .. } => {
            route(worker, epoch, false, || TaskEvent::Complete(checkpoint))
        }
        WorkerCommand::Finish { .. } => route(worker, epoch, true, || TaskEvent::Finish),
        WorkerCommand::Cancel { .. } => cancel_older(worker, epoch),
        WorkerCommand::Reset { .. } => cancel_older(worker, epoch + 1),
        WorkerCommand::Promote { task, promotion, .. } => promote(worker, epoch, task, promotion),
        WorkerCommand::Rewire { subtask, workers, .. } => {
            let w = worker.borrow();
            for t in w.tasks.values().filter(|t| t.epoch == epoch && t.source) {
                t.rewires.post(subtask, workers.clone());
            }
        }
    }
}

/// Hands the local copy of `task` its promotion.
fn promote(worker: &Shared, epoch: u64, task: TaskId, promotion: Promotion) {
    let mut w = worker.borrow_mut();
    match w.tasks.get_mut(&task).filter(|t| t.epoch == epoch) {
        Some(local) => {
            local.generation = promotion.generation;
            _ = local.inbox.send(TaskEvent::Promote(promotion));
        }
        None => tracing::warn!(?task, epoch, "promotion for a copy this worker does not run"),
    }
}

/// Sends an event to every local subtask of `epoch` (only sources, if `sources_only`).
fn route(worker: &Shared, epoch: u64, sources_only: bool, event: impl Fn() -> TaskEvent) {
    let w = worker.borrow();
    let mut stale = true;
    for task in w.tasks.values().filter(|t| t.epoch == epoch) {
        stale = false;
        if task.source || !sources_only {
            _ = task.inbox.send(event());
        }
    }
    if stale && w.tasks.values().any(|t| t.epoch > epoch) {
        w.ctx.trace(TraceEvent::StaleEpoch { epoch });
    }
}

/// Aborts every local subtask older than `epoch`.
fn cancel_older(worker: &Shared, epoch: u64) {
    let mut w = worker.borrow_mut();
    let old: Vec<TaskId> = w.tasks.iter().filter(|(_, t)| t.epoch < epoch).map(|(id, _)| *id).collect();
    for id in old {
        let task = w.tasks.remove(&id).expect("listed above");
        task.handle.abort();
        tracing::debug!(task = ?id, epoch = task.epoch, "cancelled");
    }
}

/// Starts one subtask; its inbox is registered before this returns, so channels can open.
fn deploy(worker: &Shared, spec: TaskSpec) {
    let tc = {
        let w = worker.borrow();
        assert_eq!(spec.worker, w.ctx.id.index, "subtask deployed on the wrong worker");
        TaskContext {
            ctx: w.ctx.clone(),
            client: w.client.clone(),
            store: w.store.clone(),
            manager: w.manager.clone(),
            rewires: Rewires::default(),
            spec: spec.clone(),
        }
    };
    let (inbox, events) = mpsc::unbounded_channel();
    let (id, epoch, generation) = (spec.id, spec.epoch, spec.generation);
    let serial = {
        let mut w = worker.borrow_mut();
        w.deployments += 1;
        w.deployments
    };
    tc.ctx.trace(TraceEvent::TaskDeployed { operator: id.chain, subtask: id.subtask, epoch, generation });
    let done = worker.clone();
    let rewires = tc.rewires.clone();
    let handle = madsim::task::spawn_local(async move {
        let (outcome, spec) = task::run(tc.clone(), events).await;
        {
            let mut w = done.borrow_mut();
            if w.tasks.get(&id).is_some_and(|t| t.serial == serial) {
                w.tasks.remove(&id);
            }
        }
        task::finish(&tc, &spec, outcome).await;
    });
    let local = LocalTask { epoch, generation, serial, source: spec.is_source(), inbox, rewires, handle };
    if let Some(previous) = worker.borrow_mut().tasks.insert(id, local) {
        assert!(
            (previous.epoch, previous.generation) < (epoch, generation),
            "subtask {id:?} deployed twice in epoch {epoch}, generation {generation}"
        );
        previous.handle.abort();
    }
}

async fn serve_data(worker: Shared) {
    let listener = Listener::<ChannelMsg, ChannelReply>::bind(WORKER_DATA_PORT).await;
    loop {
        let Ok((tx, rx, _from)) = listener.accept().await else { continue };
        madsim::task::spawn_local(accept_channel(worker.clone(), tx, rx));
    }
}

/// Reads a channel's hello and hands the channel to the local subtask it names, if that
/// subtask runs in the hello's epoch.
async fn accept_channel(worker: Shared, tx: Tx<ChannelReply>, mut rx: Rx<ChannelMsg>) {
    let Ok(ChannelMsg::Hello { epoch, from, to }) = rx.recv().await else { return };
    let (inbox, credits) = {
        let w = worker.borrow();
        let inbox = w.tasks.get(&to).filter(|t| t.epoch == epoch).map(|t| t.inbox.clone());
        if inbox.is_none() && w.tasks.get(&to).is_some_and(|t| t.epoch > epoch) {
            w.ctx.trace(TraceEvent::StaleEpoch { epoch });
        }
        (inbox, w.ctx.cluster.settings.channel_credits)
    };
    let Some(inbox) = inbox else {
        _ = tx.send(ChannelReply::Rejected).await;
        return;
    };
    if tx.send(ChannelReply::Accepted { credits }).await.is_err() {
        return;
    }
    if inbox.send(TaskEvent::Channel(channel::Delivery::Opened { from, credit: tx })).is_ok() {
        channel::forward(from, rx, inbox, TaskEvent::Channel).await;
    }
}
