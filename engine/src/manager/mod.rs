//! The manager node: accepts the driver's job, deploys it onto workers, coordinates its
//! checkpoints (see `coordinator`), detects dead workers and drives rollback recovery. Two run:
//! `manager` and `manager-standby`; the one holding the lease (see `lease`) leads, the other
//! answers `NotLeader` to everyone.
//!
//! # Protocol
//! 1. Workers connect to a manager, send `Register`, then `Heartbeat` every
//!    `heartbeat_interval_ms`; the leader answers each with `Leader`. A worker that hears
//!    `NotLeader`, or nothing for `heartbeat_timeout_ms`, tries the other manager.
//! 2. The driver sends `Submit { job, spec }`, then `DriverHeartbeat`s. A new job is written to
//!    the store before it is acknowledged (`Submitted`); a job already known is `Attached` to,
//!    or answered `JobFinished`. The manager plans the job over the live workers (`job::plan`)
//!    and sends each its `Deploy` for epoch 1.
//! 3. Workers report `SourceDrained`, `TaskFinished`, `TaskFailed` and checkpoint acks, each
//!    tagged with its epoch; a report from an older epoch is dropped.
//! 4. When every subtask finished, the job is recorded finished in the store and the driver is
//!    sent `JobFinished`.
//!
//! # Rollback recovery
//! A worker silent for `heartbeat_timeout_ms`, or a failed subtask, starts a recovery:
//! 1. the job's epoch is bumped and written to the store, and any checkpoint in progress is
//!    aborted (one whose metadata is being written is waited for: once durable, it is complete);
//! 2. every live worker gets `Cancel { epoch }`, which aborts all older subtasks;
//! 3. the whole job is planned again over the live workers and deployed with the latest
//!    completed checkpoint to restore: sources seek to its positions, stateful subtasks load
//!    its state, transactional sinks settle their transactions up to it.
//!
//! A dead worker that speaks again (restarted, or a paused zombie) is sent `Cancel` for the
//! current epoch and becomes available for the next plan.
//!
//! # Manager failover
//! A manager that takes the lease loads the job, the latest completed checkpoint and the
//! checkpoint counter from the store (`persisted`), aborts the checkpoint its predecessor had in
//! progress, and restarts the job from the latest checkpoint in a new epoch, above every epoch
//! the predecessor used (a suspended job too: its new epoch deploys nothing). Every command carries the job epoch, so a deposed manager's commands
//! are refused by workers; its store writes are refused by the fence. A manager acts only while
//! its lease is valid, and traces `Acting` for every command it sends.
//!
//! # Driver loss
//! The driver heartbeats too. Past `heartbeat_timeout_ms` of silence it is lost: with
//! `DriverLoss::Reattach` the job runs on and a new driver attaches by the job's id; with
//! `DriverLoss::RestartJob` the job is suspended (a new epoch with nothing deployed) and
//! resumes from the latest checkpoint when a driver attaches.

mod coordinator;
mod failover;
mod lease;
mod persisted;
pub use persisted::{stored_epoch, JOB_KEY};

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use crate::checkpoint::TaskSnapshot;
use crate::clock;
use crate::cluster::{NodeId, Role, MANAGER_PORT, WORKER_CONTROL_PORT};
use crate::job::{self, DriverLoss, JobSpec, Restore, TaskId, TaskSpec};
use tokio::sync::{mpsc, Mutex};

use crate::net::{Client, Listener, Rx, Tx};
use crate::observe::{NodeContext, RollbackCause, TraceEvent};
use crate::store::StoreClient;
use coordinator::Coordinator;
use lease::Lease;
use persisted::{Status, StoredJob};

/// Messages to the manager, from the driver and from workers.
#[derive(Clone, Debug)]
pub enum ManagerRequest {
    /// Submits job `job`, or attaches to it if it was submitted before.
    Submit {
        job: u64,
        spec: JobSpec,
    },
    DriverHeartbeat {
        job: u64,
    },
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
        generation: u32,
    },
    TaskFinished {
        epoch: u64,
        task: TaskId,
        generation: u32,
    },
    TaskFailed {
        epoch: u64,
        task: TaskId,
        generation: u32,
        reason: String,
    },
    CheckpointAck {
        epoch: u64,
        generation: u32,
        checkpoint: u64,
        snapshot: TaskSnapshot,
    },
    /// A passive standby holds its primary's changelog up to barrier `through`.
    StandbyProgress {
        epoch: u64,
        task: TaskId,
        replica: u32,
        through: u64,
    },
}

impl ManagerRequest {
    /// The epoch of a worker's report on its subtasks' state (deployed, drained, finished,
    /// failed); `None` for other messages.
    pub fn state_epoch(&self) -> Option<u64> {
        match *self {
            ManagerRequest::Deployed { epoch, .. }
            | ManagerRequest::SourceDrained { epoch, .. }
            | ManagerRequest::TaskFinished { epoch, .. }
            | ManagerRequest::TaskFailed { epoch, .. } => Some(epoch),
            _ => None,
        }
    }
}

/// The manager's answers to the driver and to workers.
#[derive(Debug)]
pub enum ManagerResponse {
    /// This manager leads: the answer to a registration or heartbeat.
    Leader,
    /// This manager does not lead: try the other one.
    NotLeader,
    Submitted,
    Attached,
    JobFinished,
    JobFailed {
        reason: String,
    },
}

/// The client side of a connection to a manager, for workers and the driver: waits for the
/// manager's next answer, sending `beat()` whenever `heartbeat_interval_ms` passes in silence.
/// `None`: the connection broke, or the manager has been silent past `heartbeat_timeout_ms`
/// since `heard_ms` (which an answer moves on).
pub async fn next_answer(
    tx: &Tx<ManagerRequest>,
    rx: &mut Rx<ManagerResponse>,
    beat: impl Fn() -> ManagerRequest,
    settings: &crate::cluster::Settings,
    heard_ms: &mut u64,
) -> Option<ManagerResponse> {
    let interval = Duration::from_millis(settings.heartbeat_interval_ms);
    loop {
        match madsim::time::timeout(interval, rx.recv()).await {
            Ok(answer) => {
                *heard_ms = clock::elapsed_ms();
                return answer.ok();
            }
            Err(_) => {
                let silent = clock::elapsed_ms() > *heard_ms + settings.heartbeat_timeout_ms;
                if silent || tx.send(beat()).await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// Manager to worker, in order on one connection. Every command names the job epoch it belongs
/// to; a worker drops commands older than the newest epoch it has seen.
#[derive(Debug)]
pub enum WorkerCommand {
    Deploy {
        epoch: u64,
        tasks: Vec<TaskSpec>,
    },
    Trigger {
        epoch: u64,
        checkpoint: u64,
    },
    Complete {
        epoch: u64,
        checkpoint: u64,
    },
    Finish {
        epoch: u64,
    },
    Cancel {
        epoch: u64,
    },
    /// Abort every subtask of `epoch` and older: the worker was replaced within the epoch.
    Reset {
        epoch: u64,
    },
    Promote {
        epoch: u64,
        task: TaskId,
        promotion: crate::worker::Promotion,
    },
    /// The local sources send destination `subtask`'s input to the copies on `workers`.
    Rewire {
        epoch: u64,
        subtask: u32,
        workers: Vec<u32>,
    },
}

/// Which of the manager's queues sent a command: the lease it acted under, then the queue's
/// number among all this manager made. A worker's queue is replaced when it is declared dead
/// or seen rebooted, and the old queue's connection may still deliver afterwards — on another
/// connection, so in no order with the new queue's. A worker drops commands stamped below the
/// newest stamp it has seen (replication-active seeds 5347 and 5722: a stale rewire pointed a
/// restarted source at a copy that no longer existed, and the job stalled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueStamp {
    pub lease: u64,
    pub queue: u64,
}

/// A command as it travels: stamped with the queue that sent it.
#[derive(Debug)]
pub struct Stamped {
    pub stamp: QueueStamp,
    pub command: WorkerCommand,
}

impl WorkerCommand {
    pub fn epoch(&self) -> u64 {
        match *self {
            WorkerCommand::Deploy { epoch, .. }
            | WorkerCommand::Trigger { epoch, .. }
            | WorkerCommand::Complete { epoch, .. }
            | WorkerCommand::Finish { epoch }
            | WorkerCommand::Cancel { epoch }
            | WorkerCommand::Reset { epoch }
            | WorkerCommand::Promote { epoch, .. }
            | WorkerCommand::Rewire { epoch, .. } => epoch,
        }
    }
}

/// A primary subtask (or a source) of the current epoch.
#[derive(Default)]
struct TaskState {
    worker: u32,
    /// The generation running: reports from older ones are dropped.
    generation: u32,
    drained: bool,
    finished: bool,
}

/// A standby or secondary of a stateful subtask.
#[derive(Clone, Copy, Debug)]
struct CopyState {
    worker: u32,
    replica: u32,
    /// A standby's reported changelog progress: the newest barrier it holds.
    through: u64,
}

struct Job {
    id: u64,
    spec: JobSpec,
    status: Status,
    /// The attached driver's connection, if one is attached.
    driver: Option<Rc<Tx<ManagerResponse>>>,
    /// When the driver last spoke; `None` once it is declared lost.
    driver_seen_ms: Option<u64>,
    epoch: u64,
    /// The newest epoch written to the store: no command names a newer one, so a successor,
    /// which starts above the stored epoch, never reuses an epoch this manager commanded.
    durable_epoch: u64,
    tasks: BTreeMap<TaskId, TaskState>,
    /// Each stateful subtask's standbys or secondaries.
    copies: BTreeMap<TaskId, Vec<CopyState>>,
    sources: BTreeSet<TaskId>,
    /// Workers that have not yet confirmed this epoch's deployment.
    deploying: BTreeSet<u32>,
    /// A deployment is waiting for live workers.
    waiting_for_workers: bool,
    /// Until then a deployment waits for every worker, not just any live one: after a
    /// submission or a takeover, workers are still registering.
    wait_for_all_until_ms: u64,
    /// The newest epoch deployed: each epoch deploys once.
    deployed_epoch: u64,
}

impl Job {
    /// A job whose record, at `epoch`, is durable in the store.
    /// A job in `epoch`, of which the store holds `durable_epoch` (0: nothing yet).
    fn new(
        id: u64,
        spec: JobSpec,
        status: Status,
        (epoch, durable_epoch): (u64, u64),
        timeout_ms: u64,
    ) -> Job {
        assert!(durable_epoch <= epoch, "epoch {durable_epoch} stored before it began ({epoch})");
        let now = clock::elapsed_ms();
        Job {
            id,
            spec,
            status,
            driver: None,
            driver_seen_ms: Some(now),
            epoch,
            durable_epoch,
            tasks: BTreeMap::new(),
            copies: BTreeMap::new(),
            sources: BTreeSet::new(),
            deploying: BTreeSet::new(),
            waiting_for_workers: false,
            wait_for_all_until_ms: now + timeout_ms,
            deployed_epoch: 0,
        }
    }

    fn stored(&self) -> StoredJob {
        StoredJob { id: self.id, status: self.status, epoch: self.epoch, spec: self.spec.clone() }
    }

    /// Every worker hosting a subtask or a copy of one.
    fn workers(&self) -> BTreeSet<u32> {
        let copies = self.copies.values().flatten().map(|c| c.worker);
        self.tasks.values().map(|t| t.worker).chain(copies).collect()
    }

    /// The task state of `task`, if `generation` is the one running.
    fn running(&mut self, task: TaskId, generation: u32) -> Option<&mut TaskState> {
        self.tasks.get_mut(&task).filter(|t| t.generation == generation)
    }
}

struct WorkerState {
    last_heartbeat_ms: u64,
    alive: bool,
    incarnation: u64,
    /// Commands waiting for the worker's sender task; dropped when the worker is declared dead.
    queue: Option<mpsc::UnboundedSender<Stamped>>,
    /// Which queue this is (of all the manager made): a sender task serves only its own.
    queue_generation: u64,
}

pub(crate) struct Manager {
    ctx: NodeContext,
    client: Rc<Client>,
    store: Rc<StoreClient>,
    lease: Lease,
    workers: BTreeMap<u32, WorkerState>,
    job: Option<Job>,
    /// Jobs that finished: a driver attaching to one is told so.
    finished: BTreeSet<u64>,
    coordinator: Coordinator,
    /// Command queues made so far: numbers each worker's queue.
    queues_made: u64,
    /// Serialises the fenced writes of the job record and the checkpoint counter, so that each
    /// writes the state current when its turn comes and the newest state lands last.
    writes: Rc<Mutex<()>>,
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
        lease: Lease::default(),
        workers: BTreeMap::new(),
        job: None,
        finished: BTreeSet::new(),
        coordinator,
        queues_made: 0,
        writes: Rc::new(Mutex::new(())),
    }));
    madsim::task::spawn_local(lease::run(manager.clone()));
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
    if !manager.borrow().lease.acting() {
        // Every message is answered, so that a worker whose report went unheard registers
        // again — with whichever manager leads by then — and sends its journal again.
        _ = reply.send(ManagerResponse::NotLeader).await;
        return;
    }
    match request {
        ManagerRequest::Submit { job, spec } => submit(manager, job, spec, reply.clone()).await,
        ManagerRequest::DriverHeartbeat { job } => {
            let answer = driver_alive(manager, job, reply);
            _ = reply.send(answer).await;
        }
        ManagerRequest::Register { worker, incarnation }
        | ManagerRequest::Heartbeat { worker, incarnation } => {
            alive(manager, worker, incarnation);
            _ = reply.send(ManagerResponse::Leader).await;
        }
        ManagerRequest::Deployed { epoch, worker } => deployed(manager, epoch, worker),
        ManagerRequest::SourceDrained { epoch, task, generation } => {
            if let Some(t) = current(manager, epoch).as_mut().and_then(|j| j.running(task, generation)) {
                t.drained = true;
            }
        }
        ManagerRequest::TaskFinished { epoch, task, generation } => {
            finished(manager, epoch, task, generation).await
        }
        ManagerRequest::TaskFailed { epoch, task, generation, reason } => {
            if current(manager, epoch).as_mut().and_then(|j| j.running(task, generation)).is_some() {
                tracing::info!(?task, %reason, "subtask failed: recovering");
                recover(manager.clone(), RollbackCause::TaskFailed);
            }
        }
        ManagerRequest::CheckpointAck { epoch, generation, checkpoint, snapshot } => {
            coordinator::ack(manager, epoch, generation, checkpoint, snapshot);
        }
        ManagerRequest::StandbyProgress { epoch, task, replica, through } => {
            let mut job = current(manager, epoch);
            let copies = job.as_mut().and_then(|j| j.copies.get_mut(&task)).into_iter().flatten();
            for copy in copies.filter(|c| c.replica == replica) {
                copy.through = copy.through.max(through);
            }
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

/// A driver submits job `id`: a new job is made durable, then deployed; a known one is
/// attached to (and resumed, if it was suspended for want of a driver).
async fn submit(manager: &Shared, id: u64, spec: JobSpec, driver: Rc<Tx<ManagerResponse>>) {
    enum Found {
        Finished,
        Running,
        Another,
        New,
    }
    let found = {
        let mut m = manager.borrow_mut();
        let timeout_ms = m.ctx.cluster.settings.heartbeat_timeout_ms;
        match m.job.as_ref() {
            _ if m.finished.contains(&id) => Found::Finished,
            Some(job) if job.id == id => Found::Running,
            Some(_) => Found::Another,
            None => {
                // Epoch 1 is acted in only once its first persist lands.
                m.job = Some(Job::new(id, spec, Status::Running, (1, 0), timeout_ms));
                Found::New
            }
        }
    };
    let answer = match found {
        Found::Finished => ManagerResponse::JobFinished,
        Found::Running => attach(manager, driver.clone()),
        Found::Another => {
            ManagerResponse::JobFailed { reason: format!("job {id} refused: another job runs") }
        }
        Found::New => {
            let tenure = manager.borrow().lease.epoch();
            if !persist(manager).await || !manager.borrow().lease.is_held(tenure) {
                return;
            }
            attach(manager, driver.clone());
            if let Some(job) = manager.borrow_mut().job.as_mut() {
                job.waiting_for_workers = true;
            }
            deploy_when_ready(manager);
            ManagerResponse::Submitted
        }
    };
    _ = driver.send(answer).await;
}

/// Attaches a driver to the job; resumes a job suspended for want of one.
fn attach(manager: &Shared, driver: Rc<Tx<ManagerResponse>>) -> ManagerResponse {
    let resume = {
        let mut m = manager.borrow_mut();
        let job = m.job.as_mut().expect("attaching to a job");
        job.driver = Some(driver);
        job.driver_seen_ms = Some(clock::elapsed_ms());
        let resume = job.status == Status::Suspended;
        if resume {
            job.status = Status::Running;
        }
        resume
    };
    if resume {
        recover(manager.clone(), RollbackCause::DriverAttached);
    }
    ManagerResponse::Attached
}

/// A driver heartbeat. The connection it came on is the driver's current one; a driver that was
/// declared lost (it fell silent, or this manager just took over) is attached again by it.
fn driver_alive(manager: &Shared, id: u64, reply: &Rc<Tx<ManagerResponse>>) -> ManagerResponse {
    let attached = {
        let mut m = manager.borrow_mut();
        if m.finished.contains(&id) {
            return ManagerResponse::JobFinished;
        }
        let Some(job) = m.job.as_mut().filter(|j| j.id == id) else { return ManagerResponse::Leader };
        // Attached: this manager holds the driver's connection. It has none after a takeover
        // (whose `driver_seen_ms` gives the driver a timeout to show up) or a loss.
        let attached = job.driver.is_some();
        assert!(!attached || job.driver_seen_ms.is_some(), "a driver attached and never seen");
        if attached {
            job.driver = Some(reply.clone());
            job.driver_seen_ms = Some(clock::elapsed_ms());
        }
        attached
    };
    if attached {
        ManagerResponse::Leader
    } else {
        attach(manager, reply.clone())
    }
}

/// Declares a silent driver lost; under `restart-job` the job stops with it.
fn check_driver(manager: &Shared, now: u64) {
    let suspend = {
        let mut m = manager.borrow_mut();
        let timeout_ms = m.ctx.cluster.settings.heartbeat_timeout_ms;
        let Some(job) = m.job.as_mut() else { return };
        let Some(seen) = job.driver_seen_ms else { return };
        if now <= seen + timeout_ms {
            return;
        }
        job.driver_seen_ms = None;
        job.driver = None;
        let suspend = job.spec.driver_loss == DriverLoss::RestartJob && job.status == Status::Running;
        if suspend {
            job.status = Status::Suspended;
        }
        m.ctx.trace(TraceEvent::DriverLost);
        suspend
    };
    if suspend {
        recover(manager.clone(), RollbackCause::DriverLost);
    }
}

/// Writes the job's current record to the store under the lease's fence. Returns whether it
/// landed; a fenced write steps the manager down.
async fn persist(manager: &Shared) -> bool {
    let (store, writes, lease_epoch) = {
        let m = manager.borrow();
        (m.store.clone(), m.writes.clone(), m.lease.epoch())
    };
    let _turn = writes.lock().await;
    loop {
        let (fence, record) = {
            let m = manager.borrow();
            let Some(job) = m.job.as_ref().filter(|_| m.lease.is_held(lease_epoch)) else { return false };
            (m.lease.fence(), job.stored())
        };
        match store.put_fenced(&fence, persisted::JOB_KEY, record.encode()).await {
            Ok(Ok(())) => {
                if let Some(job) = manager.borrow_mut().job.as_mut().filter(|j| j.id == record.id) {
                    job.durable_epoch = job.durable_epoch.max(record.epoch);
                }
                return true;
            }
            Ok(Err(_fenced)) => {
                step_down(manager);
                return false;
            }
            Err(_) => {
                let retry_ms = manager.borrow().ctx.cluster.settings.request_timeout_ms;
                madsim::time::sleep(Duration::from_millis(retry_ms)).await;
            }
        }
    }
}

/// This manager won the lease: load the job and what it needs to restore it, then restart it
/// from the latest completed checkpoint in a new epoch.
async fn take_over(manager: &Shared, record: lease::Record, valid_until_ms: u64) {
    let store = {
        let mut m = manager.borrow_mut();
        m.lease = Lease::held(record, valid_until_ms);
        m.ctx.trace(TraceEvent::LeaseAcquired { lease: record.epoch });
        m.store.clone()
    };
    let found = persisted::load(&store).await;
    let Ok(found) = found.inspect_err(|e| tracing::warn!(%e, "manager: taking over failed")) else {
        step_down(manager);
        return;
    };
    let new_epoch = {
        let mut m = manager.borrow_mut();
        if !m.lease.is_held(record.epoch) {
            return;
        }
        let timeout_ms = m.ctx.cluster.settings.heartbeat_timeout_ms;
        let c = &mut m.coordinator;
        let partial = coordinator::restore(c, found.latest, &found.completed, found.next_checkpoint);
        if let Some(checkpoint) = partial {
            m.ctx.trace(TraceEvent::CheckpointAborted { checkpoint });
        }
        if let Some(oldest_kept) = m.coordinator.oldest_retained() {
            let retry = Duration::from_millis(m.ctx.cluster.settings.request_timeout_ms);
            madsim::task::spawn_local(coordinator::collect_below(store.clone(), oldest_kept, retry));
        }
        m.lease.set_loaded();
        match found.job {
            Some(job) if job.status == Status::Finished => {
                m.finished.insert(job.id);
                false
            }
            // A suspended job is taken over in a new epoch too (deploying nothing): this
            // leader's commands, even a returning worker's `Cancel`, must not be of an epoch
            // its predecessor commanded.
            Some(job) => {
                m.job = Some(Job::new(job.id, job.spec, job.status, (job.epoch, job.epoch), timeout_ms));
                true
            }
            None => false,
        }
    };
    if new_epoch {
        recover(manager.clone(), RollbackCause::Takeover);
    }
}

/// The lease is lost or lapsed: forget the job and the workers; a successor (perhaps this
/// manager again) takes the job over from the store.
fn step_down(manager: &Shared) {
    let mut m = manager.borrow_mut();
    if m.lease.epoch() == 0 {
        return;
    }
    m.ctx.trace(TraceEvent::LeaseLost { lease: m.lease.epoch() });
    tracing::info!(lease = m.lease.epoch(), "manager: lost the lease");
    m.lease = Lease::default();
    m.job = None;
    m.workers.clear();
    m.finished.clear();
    m.coordinator = Coordinator::new(m.ctx.cluster.job.checkpoints);
}

/// Deploys a waiting job once enough workers are live: all of them while the job is new or
/// just taken over (unless some are late past the heartbeat timeout), any of them otherwise.
fn deploy_when_ready(manager: &Shared) {
    let ready = {
        let m = manager.borrow();
        let Some(job) = m.job.as_ref().filter(|j| j.waiting_for_workers && j.status == Status::Running)
        else {
            return;
        };
        let live = m.workers.values().filter(|w| w.alive).count();
        let all = live == m.ctx.cluster.workers as usize;
        live > 0 && (all || clock::elapsed_ms() >= job.wait_for_all_until_ms)
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
    let (primaries, copies): (Vec<&TaskSpec>, Vec<&TaskSpec>) =
        tasks.iter().partition(|t| t.role == job::ReplicaRole::Primary);
    job.tasks =
        primaries.iter().map(|t| (t.id, TaskState { worker: t.worker, ..TaskState::default() })).collect();
    job.copies = BTreeMap::new();
    for c in copies {
        let copy = CopyState { worker: c.worker, replica: c.replica, through: 0 };
        job.copies.entry(c.id).or_default().push(copy);
    }
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

/// A worker deployed its share of `epoch`: once every worker has, the job is deployed and may
/// checkpoint again.
fn deployed(manager: &Shared, epoch: u64, worker: u32) {
    let Some(mut job) = current(manager, epoch) else { return };
    job.deploying.remove(&worker);
}

/// A subtask finished; once all have, the job is recorded finished and the driver told.
async fn finished(manager: &Shared, epoch: u64, task: TaskId, generation: u32) {
    {
        let Some(mut job) = current(manager, epoch) else { return };
        let Some(t) = job.running(task, generation) else { return };
        t.finished = true;
        if job.status != Status::Running || !job.tasks.values().all(|t| t.finished) {
            return;
        }
        job.status = Status::Finished;
    }
    let tenure = manager.borrow().lease.epoch();
    if !persist(manager).await || !manager.borrow().lease.is_held(tenure) {
        return;
    }
    let driver = {
        let mut m = manager.borrow_mut();
        let Some(job) = m.job.take() else { return };
        m.finished.insert(job.id);
        job.driver
    };
    if let Some(driver) = driver {
        _ = driver.send(ManagerResponse::JobFinished).await;
    }
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
    if rebooted {
        // The old queue's connection went with the old incarnation: commands start afresh.
        state.queue = None;
    }
    state.alive = true;
    state.incarnation = incarnation;
    // While a recovery's epoch is not yet durable, the recovery cancels every live worker
    // itself once it is; and the epoch in the store may be a predecessor's.
    let epoch = m.job.as_ref().filter(|j| j.durable_epoch == j.epoch).map_or(0, |j| j.epoch);
    let hosted = m.job.as_ref().is_some_and(|j| j.workers().contains(&worker));
    let replicated = m.job.as_ref().is_some_and(|j| j.spec.recovery.replicated());
    drop(m);
    if returned && epoch > 0 {
        // Under replication the epoch goes on without the worker: what it runs is stale.
        let reset = if replicated { WorkerCommand::Reset { epoch } } else { WorkerCommand::Cancel { epoch } };
        command(manager, worker, reset);
    }
    if rebooted && !returned && hosted {
        manager.borrow().ctx.trace(TraceEvent::WorkerDead { worker });
        failover::lost(manager, &[worker]);
    }
    deploy_when_ready(manager);
}

/// Periodic duties, while this manager acts: failure detection of workers and the driver, and
/// the checkpoint coordinator's timers.
async fn tick(manager: Shared) {
    let timeout_ms = manager.borrow().ctx.cluster.settings.heartbeat_timeout_ms;
    loop {
        madsim::time::sleep(TICK).await;
        if manager.borrow().lease.lapsed() {
            step_down(&manager);
        }
        if !manager.borrow().lease.acting() {
            continue;
        }
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
            failover::lost(&manager, &dead);
        }
        check_driver(&manager, now);
        deploy_when_ready(&manager);
        coordinator::tick(&manager, now);
    }
}

/// Starts a rollback recovery: new epoch, made durable before anything of it is sent; cancel
/// everything older; redeploy from the latest completed checkpoint — unless the job is
/// suspended, which leaves the new epoch empty.
fn recover(manager: Shared, cause: RollbackCause) {
    let epoch = {
        let mut m = manager.borrow_mut();
        let Some(job) = m.job.as_mut().filter(|j| j.status != Status::Finished) else { return };
        job.epoch += 1;
        // Nothing deploys until this recovery has settled the checkpoint in progress.
        job.waiting_for_workers = false;
        let epoch = job.epoch;
        m.ctx.trace(TraceEvent::RollbackDecided { epoch, cause });
        epoch
    };
    let tenure = manager.borrow().lease.epoch();
    madsim::task::spawn_local(async move {
        if !persist(&manager).await {
            return;
        }
        coordinator::abort_for_recovery(&manager).await;
        let (live, checkpoint, status) = {
            let m = manager.borrow();
            let job = m.job.as_ref().filter(|j| j.epoch == epoch && m.lease.is_held(tenure));
            let Some(job) = job else {
                return; // a newer recovery took over
            };
            let live: Vec<u32> = m.workers.iter().filter(|(_, w)| w.alive).map(|(&i, _)| i).collect();
            (live, m.coordinator.latest.as_ref().map_or(0, |c| c.id), job.status)
        };
        let ctx = manager.borrow().ctx.clone();
        match status {
            Status::Suspended => ctx.trace(TraceEvent::JobSuspended { epoch }),
            _ => ctx.trace(TraceEvent::RecoveryStarted { epoch, checkpoint }),
        }
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
    let mut guard = manager.borrow_mut();
    let m = &mut *guard;
    if !m.lease.acting() {
        // A deposed or lapsed manager sends nothing. Its view of the job would now be wrong (it
        // believes the command sent), so it gives the job up; a takeover reloads it.
        drop(guard);
        step_down(manager);
        return;
    }
    // Traced before the assertion below, so that a run it ends still shows the checkers the act.
    m.ctx.trace(TraceEvent::Acting { lease: m.lease.epoch(), epoch: command.epoch() });
    let durable = m.job.as_ref().map_or(0, |j| j.durable_epoch);
    assert!(command.epoch() <= durable, "{command:?} names an epoch not yet in the store ({durable})");
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
        m.queues_made += 1;
        state.queue_generation = m.queues_made;
        madsim::task::spawn_local(pump(manager.clone(), worker, m.queues_made, rx));
        state.queue = Some(tx);
    }
    let stamp = QueueStamp { lease: m.lease.epoch(), queue: state.queue_generation };
    _ = state.queue.as_ref().expect("made above").send(Stamped { stamp, command });
}

/// Sends a worker's queued commands; a command that cannot be delivered is dropped — the
/// worker is unreachable, and failure detection takes it from there. The pump ends when the
/// worker is declared dead (its queue is replaced); what it had already sent may still arrive
/// after the new queue's first commands, and the worker drops it by its stamp.
async fn pump(manager: Shared, worker: u32, generation: u64, mut queue: mpsc::UnboundedReceiver<Stamped>) {
    let client = manager.borrow().client.clone();
    let addr = NodeId::new(Role::Worker, worker).addr(WORKER_CONTROL_PORT);
    let current = |manager: &Shared| {
        let m = manager.borrow();
        m.workers.get(&worker).is_some_and(|w| w.queue.is_some() && w.queue_generation == generation)
    };
    let mut conn: Option<Tx<Stamped>> = None;
    while let Some(command) = queue.recv().await {
        if conn.is_none() && current(&manager) {
            let connected =
                client.connect_retrying::<Stamped, ()>(addr, CONTROL_RETRY, CONTROL_ATTEMPTS).await;
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
