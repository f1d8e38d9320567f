//! The driver node: the application's client. It submits the job to the manager and watches it
//! until the manager reports it finished or failed.
//!
//! It holds no job state of its own in this version: the job definition comes from its boot
//! configuration (`ClusterSpec::job`), as a real driver's comes from the application code.

use std::time::Duration;

use crate::cluster::{NodeId, Role, MANAGER_PORT};
use crate::manager::{ManagerRequest, ManagerResponse};
use crate::net::Client;
use crate::observe::{NodeContext, TraceEvent};

const CONNECT_RETRY: Duration = Duration::from_millis(50);
const CONNECT_ATTEMPTS: u32 = 200;

/// The driver node's boot function. Returns once the job ended.
pub async fn run(ctx: NodeContext) {
    ctx.trace(TraceEvent::Boot);
    let client = Client::bind().await;
    let addr = NodeId::new(Role::Manager, 0).addr(MANAGER_PORT);
    let Ok((tx, mut rx)) = client
        .connect_retrying::<ManagerRequest, ManagerResponse>(addr, CONNECT_RETRY, CONNECT_ATTEMPTS)
        .await
    else {
        tracing::warn!("driver: manager unreachable");
        return;
    };
    if tx.send(ManagerRequest::Submit(ctx.cluster.job.clone())).await.is_err() {
        return;
    }
    while let Ok(response) = rx.recv().await {
        match response {
            ManagerResponse::Submitted => ctx.trace(TraceEvent::JobSubmitted),
            ManagerResponse::JobFinished => {
                ctx.trace(TraceEvent::JobFinished);
                return;
            }
            ManagerResponse::JobFailed { reason } => {
                tracing::warn!(%reason, "job failed");
                ctx.trace(TraceEvent::JobFailed);
                return;
            }
        }
    }
}
