//! The manager's leadership lease, held in the store (Flink's leader election on ZooKeeper).
//!
//! The lease is one object, `manager/lease`: `{epoch, holder, counter}`.
//! - The holder renews it every quarter of `manager_lease_ms` by compare-and-set, bumping the
//!   counter. A renewal sent at `t` that lands makes the holder's lease valid until
//!   `t + manager_lease_ms`; past that the holder stops acting until a renewal lands again.
//! - A contender reads the lease; once it has seen the same bytes for `manager_lease_ms` (the
//!   holder stopped renewing), it takes the lease by compare-and-set with the next epoch. Any
//!   renewal in between changes the bytes and makes the takeover fail.
//! - A renewal that finds someone else's lease steps the manager down: it forgets the job. So
//!   does a lease that lapsed (no renewal landed in time, e.g. the manager was paused): its
//!   holder contends again, and takes the job over afresh if it wins.
//!
//! Both sides read one simulated clock, and a contender starts its wait only after the holder's
//! last renewal landed, so a deposed holder has stopped acting before its successor starts.
//! The lease's `{epoch, holder}` prefix is also the fencing token of every job and checkpoint
//! metadata write (`store::FencedPut`): a deposed manager's late writes are refused.
//!
//! At boot the first manager claims a lease nobody holds at once; the standby waits a lease
//! period first, so the first manager leads unless it is down.

use std::time::Duration;

use super::{step_down, take_over, Shared};
use crate::clock;
use crate::observe::TraceEvent;
use crate::store::{Fence, StoreClient};

pub(super) const LEASE_KEY: &str = "manager/lease";

/// The lease object's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub epoch: u64,
    pub holder: u32,
    pub counter: u64,
}

/// Blob of the fencing token: epoch and holder, the part renewals keep.
const TOKEN_BYTES: usize = 12;

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TOKEN_BYTES + 8);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.holder.to_le_bytes());
        out.extend_from_slice(&self.counter.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Record> {
        let epoch = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
        let holder = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
        let counter = u64::from_le_bytes(bytes.get(12..20)?.try_into().ok()?);
        Some(Record { epoch, holder, counter })
    }
}

/// This manager's hold on the lease.
#[derive(Default)]
pub(super) struct Lease {
    held: Option<Record>,
    valid_until_ms: u64,
    /// The new holder loaded the job from the store: it may act.
    loaded: bool,
}

impl Lease {
    pub fn held(holder: Record, valid_until_ms: u64) -> Lease {
        Lease { held: Some(holder), valid_until_ms, loaded: false }
    }

    /// The lease epoch held, 0 if none.
    pub fn epoch(&self) -> u64 {
        self.held.map_or(0, |r| r.epoch)
    }

    pub fn is_held(&self, epoch: u64) -> bool {
        self.held.is_some_and(|r| r.epoch == epoch)
    }

    pub fn set_loaded(&mut self) {
        assert!(self.held.is_some(), "loaded without the lease");
        self.loaded = true;
    }

    /// Whether this manager may act now: it holds a lease still valid and has loaded the job.
    pub fn acting(&self) -> bool {
        self.loaded && self.held.is_some() && clock::elapsed_ms() < self.valid_until_ms
    }

    /// Whether the lease held ran out without a renewal. A lapsed leader gives up its job
    /// rather than resume it: commands it dropped meanwhile would leave its view of the job
    /// wrong. It contends again like anyone, and a takeover reloads the job from the store.
    pub fn lapsed(&self) -> bool {
        self.loaded && self.held.is_some() && clock::elapsed_ms() >= self.valid_until_ms
    }

    /// The fencing token of the lease held.
    pub fn fence(&self) -> Fence {
        let record = self.held.expect("a fence needs a held lease");
        Fence { key: LEASE_KEY.to_string(), prefix: record.encode()[..TOKEN_BYTES].to_vec() }
    }
}

/// The lease object last read, and since when it has not changed.
type Seen = Option<(Option<Vec<u8>>, u64)>;

/// Keeps the lease, or contends for it, for the life of the node.
pub(super) async fn run(manager: Shared) {
    // Its own connection to the store, as a ZooKeeper session of its own: renewals never wait
    // behind the job's writes.
    let (store, ttl) = {
        let m = manager.borrow();
        (StoreClient::new(&m.ctx, m.client.clone()), m.ctx.cluster.settings.manager_lease_ms)
    };
    let period = Duration::from_millis((ttl / 4).max(1));
    let mut seen: Seen = None;
    loop {
        let held = manager.borrow().lease.held;
        match held {
            Some(record) => renew(&manager, &store, record, ttl).await,
            None => contend(&manager, &store, ttl, &mut seen).await,
        }
        madsim::time::sleep(period).await;
    }
}

async fn renew(manager: &Shared, store: &StoreClient, record: Record, ttl: u64) {
    if manager.borrow().lease.lapsed() {
        step_down(manager);
        return;
    }
    let next = Record { counter: record.counter + 1, ..record };
    let sent_ms = clock::elapsed_ms();
    let renewed = store.cas(LEASE_KEY, Some(record.encode()), next.encode()).await;
    tracing::trace!(lease = record.epoch, counter = next.counter, sent_ms, ?renewed, "lease renewal");
    match renewed {
        Ok(Ok(())) => {
            let mut m = manager.borrow_mut();
            // Unless the manager stepped down meanwhile: then the lease must run out unrenewed.
            if m.lease.held == Some(record) {
                m.lease.held = Some(next);
                m.lease.valid_until_ms = sent_ms + ttl;
                m.ctx.trace(TraceEvent::LeaseGranted { lease: record.epoch, sent_ms });
            }
        }
        Ok(Err(_)) => step_down(manager),
        Err(_) => {} // the store is unreachable: the lease runs out unless a later renewal lands
    }
}

async fn contend(manager: &Shared, store: &StoreClient, ttl: u64, seen: &mut Seen) {
    let Ok(current) = store.get(LEASE_KEY).await else { return };
    let now = clock::elapsed_ms();
    tracing::trace!(current = ?current.as_deref().and_then(Record::decode), "lease observed");
    if seen.as_ref().map(|(bytes, _)| bytes) != Some(&current) {
        *seen = Some((current.clone(), now));
    }
    let since = seen.as_ref().expect("set above").1;
    let me = manager.borrow().ctx.id.index;
    let first_claim = current.is_none() && me == 0;
    if !first_claim && now < since + ttl {
        return;
    }
    let previous = current.as_deref().map(|b| Record::decode(b).expect("a lease record decodes"));
    let record = Record { epoch: previous.map_or(0, |r| r.epoch) + 1, holder: me, counter: 0 };
    let sent_ms = clock::elapsed_ms();
    if let Ok(Ok(())) = store.cas(LEASE_KEY, current, record.encode()).await {
        *seen = None;
        manager.borrow().ctx.trace(TraceEvent::LeaseGranted { lease: record.epoch, sent_ms });
        take_over(manager, record, sent_ms + ttl).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_its_token_ignores_the_counter() {
        let a = Record { epoch: 7, holder: 1, counter: 3 };
        assert_eq!(Record::decode(&a.encode()), Some(a));
        let b = Record { counter: 4, ..a };
        assert_eq!(a.encode()[..TOKEN_BYTES], b.encode()[..TOKEN_BYTES]);
        assert!(Record::decode(&[1, 2, 3]).is_none());
    }
}
