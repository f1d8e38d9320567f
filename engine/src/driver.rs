//! The driver node: the application's client. It submits the job to the leading manager and
//! watches it until the manager reports it finished or failed.
//!
//! The job's definition comes from the driver's boot configuration (`ClusterSpec::job`), as a
//! real driver's comes from the application code; the manager makes it durable in the store on
//! submission. The job's id is kept on the driver's own disk, synced before the first
//! submission: a restarted driver submits the same id again, which attaches it to the job
//! already running (`reattach`) or resumes the job that stopped with its predecessor
//! (`restart-job`), and never starts a second job.
//!
//! The driver finds the leading manager by trying the two in turn. It heartbeats the one it is
//! attached to every `heartbeat_interval_ms`; hearing `NotLeader`, or nothing for
//! `heartbeat_timeout_ms`, it submits to the other.

use std::time::Duration;

use crate::clock;
use crate::cluster::manager_addr;
use crate::manager::{next_answer, ManagerRequest, ManagerResponse};
use crate::net::{Client, Rx, Tx};
use crate::observe::{NodeContext, TraceEvent};

const CONNECT_RETRY: Duration = Duration::from_millis(50);
const CONNECT_ATTEMPTS: u32 = 3;
/// The driver's file holding the id of the job it submitted.
const JOB_FILE: &str = "job-id";

/// The driver node's boot function. Returns once the job ended.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let job = job_id(&ctx);
    let client = Client::bind().await;
    let mut attempt = 0;
    loop {
        let addr = manager_addr(attempt);
        attempt += 1;
        let Ok((tx, mut rx)) = client
            .connect_retrying::<ManagerRequest, ManagerResponse>(addr, CONNECT_RETRY, CONNECT_ATTEMPTS)
            .await
        else {
            continue;
        };
        let submit = ManagerRequest::Submit { job, spec: ctx.cluster.job.clone() };
        if tx.send(submit).await.is_ok() && watch(&ctx, job, &tx, &mut rx).await {
            return;
        }
        madsim::time::sleep(CONNECT_RETRY).await;
    }
}

/// The id of this driver's job: the one a previous incarnation submitted, or a new one.
fn job_id(ctx: &NodeContext) -> u64 {
    if let Some(id) = ctx.disk.read(JOB_FILE).and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()) {
        return u64::from_le_bytes(id);
    }
    let id = 1;
    ctx.disk.replace(JOB_FILE, &u64::to_le_bytes(id));
    ctx.disk.sync(JOB_FILE);
    id
}

/// Follows the job on one manager connection. Returns whether the job ended; `false` means
/// this manager does not lead (or went silent) and the other should be tried.
async fn watch(ctx: &NodeContext, job: u64, tx: &Tx<ManagerRequest>, rx: &mut Rx<ManagerResponse>) -> bool {
    let beat = || ManagerRequest::DriverHeartbeat { job };
    let mut heard_ms = clock::elapsed_ms();
    loop {
        let Some(response) = next_answer(tx, rx, beat, &ctx.cluster.settings, &mut heard_ms).await else {
            return false;
        };
        match response {
            ManagerResponse::Leader => {}
            ManagerResponse::NotLeader => return false,
            ManagerResponse::Submitted => ctx.trace(TraceEvent::JobSubmitted),
            ManagerResponse::Attached => ctx.trace(TraceEvent::JobAttached),
            ManagerResponse::JobFinished => {
                ctx.trace(TraceEvent::JobFinished);
                return true;
            }
            ManagerResponse::JobFailed { reason } => {
                tracing::warn!(%reason, "job failed");
                ctx.trace(TraceEvent::JobFailed);
                return true;
            }
        }
    }
}
