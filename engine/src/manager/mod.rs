//! The manager node: accepts the driver's job, deploys it onto workers, coordinates its
//! checkpoints (see `coordinator`), detects dead workers and drives rollback recovery.
//!
//! # Protocol
//! 1. Workers connect at boot, send `Register`, then `Heartbeat` every `heartbeat_interval_ms`.
//! 2. The driver sends `Submit(job)`; the manager plans the job over the live workers
//!    (`job::plan`) and sends each its `Deploy` for epoch 1.
//! 3. Workers report `SourceDrained`, `TaskFinished`, `TaskFailed` and checkpoint acks, each
//!    tagged with its epoch; a report from an older epoch is dropped.
//! 4. When every subtask finished, the manager sends `JobFinished` to the driver.
//!
//! # Rollback recovery
//! A worker silent for `heartbeat_timeout_ms`, or a failed subtask, starts a recovery:
//! 1. the job's epoch is bumped and any checkpoint in progress is aborted (one whose metadata
//!    is being written is waited for: once durable, it is complete);
//! 2. every live worker gets `Cancel { epoch }`, which aborts all older subtasks;
//! 3. the whole job is planned again over the live workers and deployed with the latest
//!    completed checkpoint to restore: sources seek to its positions, stateful subtasks load
//!    its state, transactional sinks settle their transactions up to it.
//!
//! A dead worker that speaks again (restarted, or a paused zombie) is sent `Cancel` for the
//! current epoch and becomes available for the next plan.

mod coordinator;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use crate::checkpoint::TaskSnapshot;
use crate::clock;
use crate::cluster::{NodeId, Role, MANAGER_PORT, WORKER_CONTROL_PORT};
use crate::job::{self, JobSpec, Restore, TaskId, TaskSpec};
use tokio::sync::mpsc;

use crate::net::{Client, Listener, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};
use crate::store::StoreClient;
use coordinator::Coordinator;

/// Messages to the manager, from the driver and from workers.
#[derive(Debug)]
pub enum ManagerRequest {
    Submit(JobSpec),
    /// `incarnation` counts the worker's boots: a new one means it lost its subtasks.
    Register {
        worker: u32,
        incarnation: u64,
    },
    Heartbeat {
        worker: u32,
        incarnation: u64,
    },
    Deployed {
        epoch: u64,
        worker: u32,
    },
    SourceDrained {
        epoch: u64,
        task: TaskId,
    },
    TaskFinished {
        epoch: u64,
        task: TaskId,
    },
    TaskFailed {
        epoch: u64,
        task: TaskId,
        reason: String,
    },
    CheckpointAck {
        epoch: u64,
        checkpoint: u64,
        snapshot: TaskSnapshot,
    },
}

/// The manager's answers to the driver.
#[derive(Debug)]
pub enum ManagerResponse {
    Submitted,
    JobFinished,
    JobFailed { reason: String },
}

/// Manager to worker, in order on one connection. Every command names the job epoch it belongs
/// to; a worker drops commands older than the newest epoch it has seen.
#[derive(Debug)]
pub enum WorkerCommand {
    Deploy { epoch: u64, tasks: Vec<TaskSpec> },
    Trigger { epoch: u64, checkpoint: u64 },
    Complete { epoch: u64, checkpoint: u64 },
    Finish { epoch: u64 },
    Cancel { epoch: u64 },
}

impl WorkerCommand {
    pub fn epoch(&self) -> u64 {
        match *self {
            WorkerCommand::Deploy { epoch, .. }
            | WorkerCommand::Trigger { epoch, .. }
            | WorkerCommand::Complete { epoch, .. }
            | WorkerCommand::Finish { epoch }
            | WorkerCommand::Cancel { epoch } => epoch,
        }
    }
}

#[derive(Default)]
struct TaskState {
    worker: u32,
    drained: bool,
    finished: bool,
}

struct Job {
    spec: JobSpec,
    driver: Rc<Tx<ManagerResponse>>,
    epoch: u64,
    tasks: BTreeMap<TaskId, TaskState>,
    sources: BTreeSet<TaskId>,
    /// Workers that have not yet confirmed this epoch's deployment.
    deploying: BTreeSet<u32>,
    /// A deployment is waiting for workers: every worker at submission (for at most
    /// `heartbeat_timeout_ms`), or any live worker in a recovery.
    waiting_for_workers: bool,
    submitted_ms: u64,
    /// The newest epoch deployed: each epoch deploys once.
    deployed_epoch: u64,
}

struct WorkerState {
    last_heartbeat_ms: u64,
    alive: bool,
    incarnation: u64,
    /// Commands waiting for the worker's sender task; dropped when the worker is declared dead.
    queue: Option<mpsc::UnboundedSender<WorkerCommand>>,
    /// Counts the queues made for this worker: a sender task serves only its own.
    queue_generation: u64,
}

pub(crate) struct Manager {
    ctx: NodeContext,
    client: Rc<Client>,
    store: Rc<StoreClient>,
    workers: BTreeMap<u32, WorkerState>,
    job: Option<Job>,
    coordinator: Coordinator,
}

type Shared = Rc<RefCell<Manager>>;

/// How often the manager checks heartbeats and checkpoint timers, in simulated time.
const TICK: Duration = Duration::from_millis(10);
const CONTROL_RETRY: Duration = Duration::from_millis(20);
const CONTROL_ATTEMPTS: u32 = 10;

/// The manager node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let client = Rc::new(Client::bind().await);
    let store = Rc::new(StoreClient::new(&ctx, client.clone()));
    let coordinator = Coordinator::new(ctx.cluster.job.checkpoints);
    let manager = Rc::new(RefCell::new(Manager {
        ctx,
        client,
        store,
        workers: BTreeMap::new(),
        job: None,
        coordinator,
    }));
    madsim::task::spawn_local(tick(manager.clone()));
    let listener = Listener::<ManagerRequest, ManagerResponse>::bind(MANAGER_PORT).await;
    loop {
        let Ok((tx, rx, _from)) = listener.accept().await else { continue };
        madsim::task::spawn_local(serve(manager.clone(), Rc::new(tx), rx));
    }
}

async fn serve(manager: Shared, reply: Rc<Tx<ManagerResponse>>, mut rx: Rx<ManagerRequest>) {
    while let Ok(request) = rx.recv().await {
        handle(&manager, request, &reply).await;
    }
}

async fn handle(manager: &Shared, request: ManagerRequest, reply: &Rc<Tx<ManagerResponse>>) {
    match request {
        ManagerRequest::Submit(spec) => {
            _ = reply.send(ManagerResponse::Submitted).await;
            submit(manager, spec, reply.clone());
        }
        ManagerRequest::Register { worker, incarnation }
        | ManagerRequest::Heartbeat { worker, incarnation } => alive(manager, worker, incarnation),
        ManagerRequest::Deployed { epoch, worker } => deployed(manager, epoch, worker),
        ManagerRequest::SourceDrained { epoch, task } => {
            if let Some(mut job) = current(manager, epoch) {
                job.tasks.entry(task).or_default().drained = true;
            }
        }
        ManagerRequest::TaskFinished { epoch, task } => finished(manager, epoch, task).await,
        ManagerRequest::TaskFailed { epoch, task, reason } => {
            if current(manager, epoch).is_some() {
                tracing::info!(?task, %reason, "subtask failed: recovering");
                recover(manager.clone());
            }
        }
        ManagerRequest::CheckpointAck { epoch, checkpoint, snapshot } => {
            coordinator::ack(manager, epoch, checkpoint, snapshot);
        }
    }
}

/// The job, if `epoch` is its current epoch; traces a stale report otherwise.
fn current(manager: &Shared, epoch: u64) -> Option<std::cell::RefMut<'_, Job>> {
    let m = manager.borrow_mut();
    let current = m.job.as_ref().map(|j| j.epoch);
    if current.is_some_and(|c| epoch < c) {
        m.ctx.trace(TraceEvent::StaleEpoch { epoch });
    }
    if current != Some(epoch) {
        return None;
    }
    Some(std::cell::RefMut::map(m, |m| m.job.as_mut().expect("checked above")))
}

fn submit(manager: &Shared, spec: JobSpec, driver: Rc<Tx<ManagerResponse>>) {
    let job = Job {
        spec,
        driver,
        epoch: 1,
        tasks: BTreeMap::new(),
        sources: BTreeSet::new(),
        deploying: BTreeSet::new(),
        waiting_for_workers: true,
        submitted_ms: clock::elapsed_ms(),
        deployed_epoch: 0,
    };
    manager.borrow_mut().job = Some(job);
    deploy_when_ready(manager);
}

/// Deploys a waiting job once enough workers are live: all of them for the first epoch
/// (unless some are late past the heartbeat timeout), any of them for a recovery.
fn deploy_when_ready(manager: &Shared) {
    let ready = {
        let m = manager.borrow();
        let Some(job) = m.job.as_ref().filter(|j| j.waiting_for_workers) else { return };
        let live = m.workers.values().filter(|w| w.alive).count();
        let all = live == m.ctx.cluster.workers as usize;
        let late = clock::elapsed_ms() >= job.submitted_ms + m.ctx.cluster.settings.heartbeat_timeout_ms;
        live > 0 && (job.epoch > 1 || all || late)
    };
    if ready {
        deploy(manager);
    }
}

/// Plans the current epoch over the live workers and sends every worker its share.
fn deploy(manager: &Shared) {
    let mut m = manager.borrow_mut();
    let live: Vec<u32> = m.workers.iter().filter(|(_, w)| w.alive).map(|(&i, _)| i).collect();
    let latest = m.coordinator.latest.clone();
    let cluster = m.ctx.cluster.clone();
    let job = m.job.as_mut().expect("deploying a job");
    if live.is_empty() {
        job.waiting_for_workers = true;
        return;
    }
    job.waiting_for_workers = false;
    assert!(job.deployed_epoch < job.epoch, "epoch {} deployed twice", job.epoch);
    job.deployed_epoch = job.epoch;
    let mut tasks = job::plan(&cluster, &job.spec, job.epoch, &live);
    for task in &mut tasks {
        task.restore = restore_for(latest.as_ref(), task.id);
    }
    job.tasks =
        tasks.iter().map(|t| (t.id, TaskState { worker: t.worker, ..TaskState::default() })).collect();
    job.sources = tasks.iter().filter(|t| t.is_source()).map(|t| t.id).collect();
    job.deploying = tasks.iter().map(|t| t.worker).collect();
    let epoch = job.epoch;
    tracing::debug!(epoch, checkpoint = latest.as_ref().map_or(0, |c| c.id), ?live, "deploying");
    drop(m);
    for worker in live {
        let share: Vec<TaskSpec> = tasks.iter().filter(|t| t.worker == worker).cloned().collect();
        if !share.is_empty() {
            command(manager, worker, WorkerCommand::Deploy { epoch, tasks: share });
        }
    }
}

fn restore_for(latest: Option<&crate::checkpoint::CheckpointMeta>, task: TaskId) -> Restore {
    let Some(meta) = latest else { return Restore::default() };
    let snapshot = meta.tasks.iter().find(|t| t.task == task).expect("a checkpoint covers every subtask");
    Restore { checkpoint: meta.id, positions: snapshot.positions.clone(), state: snapshot.state.clone() }
}

fn deployed(manager: &Shared, epoch: u64, worker: u32) {
    let Some(mut job) = current(manager, epoch) else { return };
    let was_deploying = !job.deploying.is_empty();
    job.deploying.remove(&worker);
    let restored = was_deploying && job.deploying.is_empty() && epoch > 1;
    drop(job);
    if restored {
        manager.borrow().ctx.trace(TraceEvent::JobRestored { epoch });
    }
}

async fn finished(manager: &Shared, epoch: u64, task: TaskId) {
    let driver = {
        let Some(mut job) = current(manager, epoch) else { return };
        job.tasks.entry(task).or_default().finished = true;
        if !job.tasks.values().all(|t| t.finished) {
            return;
        }
        job.driver.clone()
    };
    manager.borrow_mut().job = None;
    _ = driver.send(ManagerResponse::JobFinished).await;
}

/// A worker spoke: it is alive. One that was declared dead is told to cancel old subtasks; one
/// that restarted unnoticed (a new incarnation) lost its subtasks, so the job recovers.
fn alive(manager: &Shared, worker: u32, incarnation: u64) {
    let now = clock::elapsed_ms();
    let mut m = manager.borrow_mut();
    let fresh =
        WorkerState { last_heartbeat_ms: now, alive: false, incarnation, queue: None, queue_generation: 0 };
    let state = m.workers.entry(worker).or_insert(fresh);
    state.last_heartbeat_ms = now;
    let returned = !state.alive;
    let rebooted = state.incarnation != incarnation;
    state.alive = true;
    state.incarnation = incarnation;
    let epoch = m.job.as_ref().map_or(0, |j| j.epoch);
    let hosted = m.job.as_ref().is_some_and(|j| j.tasks.values().any(|t| t.worker == worker));
    drop(m);
    if returned && epoch > 0 {
        command(manager, worker, WorkerCommand::Cancel { epoch });
    }
    if rebooted && !returned && hosted {
        manager.borrow().ctx.trace(TraceEvent::WorkerDead { worker });
        recover(manager.clone());
    }
    deploy_when_ready(manager);
}

/// Periodic duties: failure detection and the checkpoint coordinator's timers.
async fn tick(manager: Shared) {
    let timeout_ms = manager.borrow().ctx.cluster.settings.heartbeat_timeout_ms;
    loop {
        madsim::time::sleep(TICK).await;
        let now = clock::elapsed_ms();
        let dead: Vec<u32> = manager
            .borrow()
            .workers
            .iter()
            .filter(|(_, w)| w.alive && now > w.last_heartbeat_ms + timeout_ms)
            .map(|(&i, _)| i)
            .collect();
        for worker in &dead {
            let mut m = manager.borrow_mut();
            let state = m.workers.get_mut(worker).expect("listed above");
            state.alive = false;
            state.queue = None;
            m.ctx.trace(TraceEvent::WorkerDead { worker: *worker });
        }
        if !dead.is_empty() && manager.borrow().job.is_some() {
            recover(manager.clone());
        }
        deploy_when_ready(&manager);
        coordinator::tick(&manager, now);
    }
}

/// Starts a rollback recovery: new epoch, cancel everything older, redeploy from the latest
/// completed checkpoint.
fn recover(manager: Shared) {
    let epoch = {
        let mut m = manager.borrow_mut();
        let Some(job) = m.job.as_mut() else { return };
        job.epoch += 1;
        // Nothing deploys until this recovery has settled the checkpoint in progress.
        job.waiting_for_workers = false;
        job.epoch
    };
    madsim::task::spawn_local(async move {
        coordinator::abort_for_recovery(&manager).await;
        let (live, checkpoint) = {
            let m = manager.borrow();
            if m.job.as_ref().map(|j| j.epoch) != Some(epoch) {
                return; // a newer recovery took over
            }
            let live: Vec<u32> = m.workers.iter().filter(|(_, w)| w.alive).map(|(&i, _)| i).collect();
            (live, m.coordinator.latest.as_ref().map_or(0, |c| c.id))
        };
        manager.borrow().ctx.trace(TraceEvent::RecoveryStarted { epoch, checkpoint });
        for worker in live {
            command(&manager, worker, WorkerCommand::Cancel { epoch });
        }
        if let Some(job) = manager.borrow_mut().job.as_mut() {
            job.waiting_for_workers = true;
        }
        deploy_when_ready(&manager);
    });
}

/// Queues a command for a worker. One sender task per worker drains its queue over one
/// connection, so commands to a worker arrive in the order they were issued.
fn command(manager: &Shared, worker: u32, command: WorkerCommand) {
    let mut m = manager.borrow_mut();
    let now = clock::elapsed_ms();
    let fresh = WorkerState {
        last_heartbeat_ms: now,
        alive: false,
        incarnation: 0,
        queue: None,
        queue_generation: 0,
    };
    let state = m.workers.entry(worker).or_insert(fresh);
    if state.queue.is_none() {
        let (tx, rx) = mpsc::unbounded_channel();
        state.queue_generation += 1;
        madsim::task::spawn_local(pump(manager.clone(), worker, state.queue_generation, rx));
        state.queue = Some(tx);
    }
    _ = state.queue.as_ref().expect("made above").send(command);
}

/// Sends a worker's queued commands; a command that cannot be delivered is dropped — the
/// worker is unreachable, and failure detection takes it from there. The pump ends when the
/// worker is declared dead (its queue is replaced), so it never delivers a stale command later.
async fn pump(
    manager: Shared,
    worker: u32,
    generation: u64,
    mut queue: mpsc::UnboundedReceiver<WorkerCommand>,
) {
    let client = manager.borrow().client.clone();
    let addr = NodeId::new(Role::Worker, worker).addr(WORKER_CONTROL_PORT);
    let current = |manager: &Shared| {
        let m = manager.borrow();
        m.workers.get(&worker).is_some_and(|w| w.queue.is_some() && w.queue_generation == generation)
    };
    let mut conn: Option<Tx<WorkerCommand>> = None;
    while let Some(command) = queue.recv().await {
        if conn.is_none() && current(&manager) {
            let connected =
                client.connect_retrying::<WorkerCommand, ()>(addr, CONTROL_RETRY, CONTROL_ATTEMPTS).await;
            conn = connected.ok().map(|(tx, _)| tx);
        }
        if !current(&manager) {
            return;
        }
        if let Some(tx) = &conn {
            if tx.send(command).await.is_err() {
                conn = None;
            }
        }
    }
}
