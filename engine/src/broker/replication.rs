//! Leader-to-follower replication: one task per (led partition, follower).
//!
//! # Protocol
//! 1. The task waits until the leader's log extends past what the follower acknowledged.
//! 2. It sends one `Replicate` batch starting at the follower's acknowledged log end.
//! 3. The follower answers with its new log end (or its current one, on a gap); the leader
//!    records it and recomputes the high watermark.
//! 4. A lost or slow answer (request timeout) drops the connection; the task reconnects and
//!    resumes from the last acknowledged log end, so a batch may be resent but never skipped.

use std::rc::Rc;
use std::time::Duration;

use super::{BrokerRequest, BrokerResponse, Shared};
use crate::cluster::{NodeId, Role, BROKER_PORT};
use crate::net::{Client, Rx, Tx};

pub(super) fn start(broker: &Shared) {
    let pairs: Vec<(u32, u32)> = broker
        .borrow()
        .leading
        .iter()
        .flat_map(|(&p, lead)| lead.follower_log_end.keys().map(move |&f| (p, f)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    let broker = broker.clone();
    madsim::task::spawn_local(async move {
        let client = Rc::new(Client::bind().await);
        for (partition, follower) in pairs {
            madsim::task::spawn_local(replicate_to(broker.clone(), client.clone(), partition, follower));
        }
    });
}

async fn replicate_to(broker: Shared, client: Rc<Client>, partition: u32, follower: u32) {
    let addr = NodeId::new(Role::Broker, follower).addr(BROKER_PORT);
    let retry = Duration::from_millis(broker.borrow().ctx.cluster.settings.request_timeout_ms);
    loop {
        match client.connect::<BrokerRequest, BrokerResponse>(addr).await {
            Ok((tx, rx)) => stream_to(&broker, tx, rx, partition, follower).await,
            Err(_) => madsim::time::sleep(retry).await,
        }
    }
}

/// Streams batches over one connection until it fails or times out.
async fn stream_to(
    broker: &Shared,
    tx: Tx<BrokerRequest>,
    mut rx: Rx<BrokerResponse>,
    partition: u32,
    follower: u32,
) {
    let settings = broker.borrow().ctx.cluster.settings.clone();
    let timeout = Duration::from_millis(settings.request_timeout_ms);
    loop {
        let (notified_on, base_offset, records) = {
            let b = broker.borrow();
            let sent = b.leading[&partition].follower_log_end[&follower];
            let log = &b.partitions[&partition];
            let end = log.log_end().min(sent + settings.batch_records as u64);
            let records = log.read(sent, end);
            (log.changed.clone(), sent, records)
        };
        if records.is_empty() {
            let notified = notified_on.notified();
            if broker.borrow().partitions[&partition].log_end() == base_offset {
                notified.await;
            }
            continue;
        }
        let request = BrokerRequest::Replicate { partition, base_offset, records };
        if tx.send(request).await.is_err() {
            return;
        }
        let Ok(Ok(BrokerResponse::Replicated { log_end, .. })) =
            madsim::time::timeout(timeout, rx.recv()).await
        else {
            return;
        };
        let mut b = broker.borrow_mut();
        b.leading.get_mut(&partition).unwrap().follower_log_end.insert(follower, log_end);
        b.update_high_watermark(partition);
    }
}
