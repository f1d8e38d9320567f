//! The manager node: accepts the driver's job, deploys its subtasks onto workers, tracks them
//! to completion, and watches worker heartbeats.
//!
//! # Protocol
//! 1. Workers connect at boot, send `Register`, then `Heartbeat` every `heartbeat_interval_ms`.
//! 2. The driver sends `Submit(job)`; the manager plans the job (`job::plan`) and sends each
//!    worker a `Deploy` with its subtasks, waiting for `Deployed`.
//! 3. Workers report `TaskFinished` (or `TaskFailed`); when every subtask finished, the manager
//!    sends `JobFinished` to the driver.
//!
//! Recovery from failures is not part of this version: a failed subtask fails the job.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::clock;
use crate::cluster::{NodeId, Role, MANAGER_PORT, WORKER_CONTROL_PORT};
use crate::job::{self, JobSpec, TaskId, TaskSpec};
use crate::net::{Client, Listener, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};

/// Messages to the manager, from the driver and from workers.
#[derive(Debug)]
pub enum ManagerRequest {
    Submit(JobSpec),
    Register { worker: u32 },
    Heartbeat { worker: u32 },
    TaskFinished { task: TaskId },
    TaskFailed { task: TaskId, reason: String },
}

/// The manager's answers to the driver.
#[derive(Debug)]
pub enum ManagerResponse {
    Submitted,
    JobFinished,
    JobFailed { reason: String },
}

/// Manager to worker.
#[derive(Debug)]
pub enum WorkerCommand {
    Deploy(Vec<TaskSpec>),
}

/// Worker to manager, on the manager's connection.
#[derive(Debug)]
pub enum WorkerReply {
    Deployed,
}

struct Job {
    running: BTreeMap<TaskId, u32>,
    driver: Rc<Tx<ManagerResponse>>,
}

struct Manager {
    ctx: NodeContext,
    client: Rc<Client>,
    job: Option<Job>,
    /// Simulated ms of each worker's last heartbeat.
    last_heartbeat_ms: BTreeMap<u32, u64>,
}

type Shared = Rc<RefCell<Manager>>;

const DEPLOY_RETRY: Duration = Duration::from_millis(50);
const DEPLOY_ATTEMPTS: u32 = 200;

/// The manager node's boot function.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let client = Rc::new(Client::bind().await);
    let manager =
        Rc::new(RefCell::new(Manager { ctx, client, job: None, last_heartbeat_ms: BTreeMap::new() }));
    let listener = Listener::<ManagerRequest, ManagerResponse>::bind(MANAGER_PORT).await;
    loop {
        let Ok((tx, rx, _from)) = listener.accept().await else { continue };
        madsim::task::spawn_local(serve(manager.clone(), Rc::new(tx), rx));
    }
}

async fn serve(manager: Shared, reply: Rc<Tx<ManagerResponse>>, mut rx: Rx<ManagerRequest>) {
    while let Ok(request) = rx.recv().await {
        match request {
            ManagerRequest::Submit(job) => {
                _ = reply.send(ManagerResponse::Submitted).await;
                madsim::task::spawn_local(deploy(manager.clone(), job, reply.clone()));
            }
            ManagerRequest::Register { worker } | ManagerRequest::Heartbeat { worker } => {
                manager.borrow_mut().last_heartbeat_ms.insert(worker, clock::elapsed_ms());
            }
            ManagerRequest::TaskFinished { task } => finish_task(&manager, task).await,
            ManagerRequest::TaskFailed { task, reason } => fail_job(&manager, task, reason).await,
        }
    }
}

/// Plans the job and deploys every worker's share of it.
async fn deploy(manager: Shared, spec: JobSpec, driver: Rc<Tx<ManagerResponse>>) {
    let (cluster, tasks) = {
        let m = manager.borrow();
        let tasks = job::plan(&m.ctx.cluster, &spec, 1);
        (m.ctx.cluster.clone(), tasks)
    };
    let running = tasks.iter().map(|t| (t.id, t.worker)).collect();
    manager.borrow_mut().job = Some(Job { running, driver });
    for worker in 0..cluster.workers {
        let share: Vec<TaskSpec> = tasks.iter().filter(|t| t.worker == worker).cloned().collect();
        if share.is_empty() {
            continue;
        }
        if let Err(e) = deploy_to(&manager, worker, share).await {
            let reason = format!("deploying to worker-{}: {e}", worker + 1);
            fail_job(&manager, TaskId { chain: 0, subtask: 0 }, reason).await;
            return;
        }
    }
}

async fn deploy_to(manager: &Shared, worker: u32, tasks: Vec<TaskSpec>) -> std::io::Result<()> {
    let addr = NodeId::new(Role::Worker, worker).addr(WORKER_CONTROL_PORT);
    let client = manager.borrow().client.clone();
    let (tx, mut rx) =
        client.connect_retrying::<WorkerCommand, WorkerReply>(addr, DEPLOY_RETRY, DEPLOY_ATTEMPTS).await?;
    tx.send(WorkerCommand::Deploy(tasks)).await?;
    let WorkerReply::Deployed = rx.recv().await?;
    Ok(())
}

async fn finish_task(manager: &Shared, task: TaskId) {
    let driver = {
        let mut m = manager.borrow_mut();
        let Some(job) = m.job.as_mut() else { return };
        job.running.remove(&task);
        if !job.running.is_empty() {
            return;
        }
        m.job.take().unwrap().driver
    };
    _ = driver.send(ManagerResponse::JobFinished).await;
}

async fn fail_job(manager: &Shared, task: TaskId, reason: String) {
    let Some(job) = manager.borrow_mut().job.take() else { return };
    let reason = format!("subtask {}.{} failed: {reason}", task.chain, task.subtask);
    _ = job.driver.send(ManagerResponse::JobFailed { reason }).await;
}
