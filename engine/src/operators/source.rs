//! The log source: one fetcher per assigned partition, reading committed records in offset order.
//!
//! A fetcher starts at its partition's position (the next offset, and the end-of-stream records
//! already seen), asks the partition's leader for records from there, forwards non-empty
//! results into a small bounded queue (backpressure: it stops fetching while the subtask is
//! busy), and stops once it has seen an end-of-stream record from every producer. A failed or
//! silent fetch is retried on a new connection from the same offset, at the partition's next
//! replica (the leader may have died); `NotLeader` redirects it to the leader the broker names.

use std::rc::Rc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::broker::{BrokerRequest, BrokerResponse};
use crate::checkpoint::SourcePosition;
use crate::cluster::{NodeId, Role, BROKER_PORT};
use crate::net::Client;
use crate::observe::NodeContext;
use crate::producer::next_replica;
use crate::record::{LogRecord, Payload};

/// Records read from one partition, starting at `offset`.
pub struct Fetched {
    pub partition: u32,
    pub offset: u64,
    pub records: Vec<LogRecord>,
}

/// Starts a fetcher for every partition not yet at its end; the receiver yields their results.
pub fn start(
    ctx: &NodeContext,
    client: Rc<Client>,
    positions: impl Iterator<Item = SourcePosition>,
) -> mpsc::Receiver<Fetched> {
    let positions: Vec<SourcePosition> = positions.filter(|p| p.ended < ctx.cluster.producers).collect();
    let (tx, rx) = mpsc::channel(2 * positions.len().max(1));
    for position in positions {
        madsim::task::spawn_local(fetch_partition(ctx.clone(), client.clone(), position, tx.clone()));
    }
    rx
}

async fn fetch_partition(
    ctx: NodeContext,
    client: Rc<Client>,
    from: SourcePosition,
    out: mpsc::Sender<Fetched>,
) {
    let settings = ctx.cluster.settings.clone();
    let partition = from.partition;
    let replicas = ctx.cluster.replicas_of(partition);
    let mut leader = ctx.cluster.leader_of(partition);
    let patience = Duration::from_millis(settings.fetch_wait_ms + settings.request_timeout_ms);
    let retry = Duration::from_millis(settings.request_timeout_ms);
    let redirect = Duration::from_millis(REDIRECT_MS);
    let (mut offset, mut ended) = (from.offset, from.ended);
    loop {
        let addr = NodeId::new(Role::Broker, leader).addr(BROKER_PORT);
        let Ok((tx, mut rx)) = client.connect::<BrokerRequest, BrokerResponse>(addr).await else {
            madsim::time::sleep(retry).await;
            leader = next_replica(&replicas, leader);
            continue;
        };
        let mut wait = retry;
        loop {
            let request = BrokerRequest::Fetch { partition, offset, max_records: settings.batch_records };
            if tx.send(request).await.is_err() {
                break;
            }
            let (records, at) = match madsim::time::timeout(patience, rx.recv()).await {
                Ok(Ok(BrokerResponse::Fetched { records, offset: at, .. })) => (records, at),
                Ok(Ok(BrokerResponse::NotLeader { leader: named, .. })) => {
                    (leader, wait) = (named.unwrap_or_else(|| next_replica(&replicas, leader)), redirect);
                    break;
                }
                _ => {
                    leader = next_replica(&replicas, leader);
                    break;
                }
            };
            assert_eq!(at, offset, "fetch answered for another offset");
            if records.is_empty() {
                continue;
            }
            let base = offset;
            offset += records.len() as u64;
            ended += records.iter().filter(|r| r.payload == Payload::EndOfStream).count() as u32;
            assert!(ended <= ctx.cluster.producers, "more end-of-stream records than producers");
            let done = ended == ctx.cluster.producers;
            if out.send(Fetched { partition, offset: base, records }).await.is_err() || done {
                return;
            }
        }
        madsim::time::sleep(wait).await;
    }
}

/// How soon a fetch refused with `NotLeader` goes to the leader named.
const REDIRECT_MS: u64 = 20;
