//! What work costs in simulated time: the cost model of a scenario's `[cost]` table.
//!
//! madsim charges a message a millisecond or so whatever it carries, and nothing else costs
//! time at all: restoring 100 MB from the store takes as long as restoring 1 KB, and replaying
//! a million records as long as replaying one. The cost model makes bytes and records take
//! time, so that recovery approaches can be compared by what they move:
//! - a link carries `link_mb_per_s`, one message after another;
//! - the checkpoint store answers after `store_latency_ms`, then moves `store_mb_per_s`;
//! - a disk writes `disk_write_mb_per_s` and a sync waits `disk_sync_ms`;
//! - a record costs `cpu_ns_per_record` of CPU in each operator that handles it, on one of the
//!   worker's `cores_per_worker` cores.
//!
//! This module is the pure core: what each piece of work costs ([`Cost`]), and when it is done
//! on a resource that serves one piece at a time ([`Lane`]) or several ([`Lanes`]). The shells
//! that move messages, bytes and records ask it how long to wait. A rate of 0 costs nothing:
//! [`Cost::FREE`] is the model of a run without `[cost]` charges.
//!
//! Units: 1 MB/s is one byte per microsecond, so a transfer of `b` bytes at `r` MB/s takes
//! `b / r` microseconds (rounded up: work never takes no time once it costs some).

use serde::{Deserialize, Serialize};

/// Simulated microseconds, on whatever clock the caller reads (the run's elapsed time).
pub type Micros = u64;

/// The cost of work in simulated time. Every rate is per resource: one link direction, one
/// store connection, one disk, one core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// Bandwidth of one direction of a link (0: unlimited).
    pub link_mb_per_s: u64,
    /// Bandwidth of one transfer to or from the checkpoint store (0: unlimited).
    pub store_mb_per_s: u64,
    /// Time to first byte of a store request.
    pub store_latency_ms: u64,
    /// Write bandwidth of a node's disk (0: unlimited).
    pub disk_write_mb_per_s: u64,
    /// How long a sync waits for the device.
    pub disk_sync_ms: u64,
    /// CPU time one operator spends on one record.
    pub cpu_ns_per_record: u64,
    /// Cores a worker processes records on, at once.
    pub cores_per_worker: u32,
}

impl Cost {
    /// Nothing costs time: the engine as it ran before the cost model.
    pub const FREE: Cost = Cost {
        link_mb_per_s: 0,
        store_mb_per_s: 0,
        store_latency_ms: 0,
        disk_write_mb_per_s: 0,
        disk_sync_ms: 0,
        cpu_ns_per_record: 0,
        cores_per_worker: 1,
    };

    /// Whether any work costs time.
    pub fn charges(&self) -> bool {
        let rates = [self.link_mb_per_s, self.store_mb_per_s, self.disk_write_mb_per_s];
        rates.iter().any(|&r| r > 0)
            || self.store_latency_ms > 0
            || self.disk_sync_ms > 0
            || self.cpu_ns_per_record > 0
    }

    /// How long a message of `bytes` occupies its link.
    pub fn link_us(&self, bytes: u64) -> Micros {
        at_rate(bytes, self.link_mb_per_s)
    }

    /// How long a store request moving `bytes` takes, its latency included.
    pub fn store_us(&self, bytes: u64) -> Micros {
        self.store_latency_ms * 1000 + at_rate(bytes, self.store_mb_per_s)
    }

    /// How long writing `bytes` to a disk takes (not counting a sync).
    pub fn disk_write_us(&self, bytes: u64) -> Micros {
        at_rate(bytes, self.disk_write_mb_per_s)
    }

    /// How long a sync takes.
    pub fn disk_sync_us(&self) -> Micros {
        self.disk_sync_ms * 1000
    }

    /// CPU time of `records` records through `operators` operators, on one core.
    pub fn cpu_us(&self, records: u64, operators: u64) -> Micros {
        let ns = records.saturating_mul(operators).saturating_mul(self.cpu_ns_per_record);
        ns.div_ceil(1000)
    }
}

/// `bytes` at `mb_per_s` (one byte per microsecond per MB/s), rounded up; free at rate 0.
fn at_rate(bytes: u64, mb_per_s: u64) -> Micros {
    match mb_per_s {
        0 => 0,
        rate => bytes.div_ceil(rate),
    }
}

/// A resource that serves one piece of work at a time, in the order it arrives: a link's
/// wire, a disk, a store connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lane {
    /// When the work taken so far is done.
    free_at: Micros,
}

impl Lane {
    /// Takes work costing `cost` that arrives at `now`; returns when it is done: after the work
    /// ahead of it, then its own.
    pub fn take(&mut self, now: Micros, cost: Micros) -> Micros {
        let done = self.free_at.max(now) + cost;
        assert!(done >= now && done >= self.free_at, "a lane's work ends after it starts");
        self.free_at = done;
        done
    }

    /// When the work taken so far is done.
    pub fn free_at(&self) -> Micros {
        self.free_at
    }
}

/// Identical lanes working at once (a worker's cores): each piece of work goes to the lane
/// that is free soonest, the lowest-numbered among equals, so the choice is deterministic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lanes {
    lanes: Vec<Lane>,
}

impl Lanes {
    pub fn new(n: u32) -> Lanes {
        assert!(n > 0, "a worker has at least one core");
        Lanes { lanes: vec![Lane::default(); n as usize] }
    }

    /// Takes work costing `cost` that arrives at `now` on the lane free soonest; returns when
    /// it is done.
    pub fn take(&mut self, now: Micros, cost: Micros) -> Micros {
        let soonest = (0..self.lanes.len())
            .min_by_key(|&i| (self.lanes[i].free_at.max(now), i))
            .expect("lanes are never empty");
        self.lanes[soonest].take(now, cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resembles a small cluster: gigabit links, an S3-like store, a cloud block volume.
    fn small_cluster() -> Cost {
        Cost {
            link_mb_per_s: 125,
            store_mb_per_s: 100,
            store_latency_ms: 30,
            disk_write_mb_per_s: 125,
            disk_sync_ms: 1,
            cpu_ns_per_record: 2000,
            cores_per_worker: 2,
        }
    }

    #[test]
    fn free_work_costs_nothing() {
        let free = Cost::FREE;
        assert!(!free.charges());
        assert_eq!(free.link_us(1 << 30), 0);
        assert_eq!(free.store_us(1 << 30), 0);
        assert_eq!(free.disk_write_us(1 << 30) + free.disk_sync_us(), 0);
        assert_eq!(free.cpu_us(1 << 20, 3), 0);
    }

    #[test]
    fn bytes_and_records_cost_in_proportion() {
        let c = small_cluster();
        assert!(c.charges());
        // 100 MB through the store: 30 ms to the first byte, then a second.
        assert_eq!(c.store_us(100_000_000), 30_000 + 1_000_000);
        assert_eq!(c.store_us(0), 30_000, "a request costs its latency whatever it moves");
        // A 64 KiB batch on a gigabit link: about half a millisecond.
        assert_eq!(c.link_us(65_536), 525);
        assert_eq!(c.link_us(1), 1, "rounded up: work that costs something takes time");
        assert_eq!(c.disk_write_us(125), 1);
        assert_eq!(c.disk_sync_us(), 1000);
        // 1,000 records through 3 operators at 2 µs each.
        assert_eq!(c.cpu_us(1000, 3), 6000);
        assert_eq!(c.cpu_us(1, 1), 2);
        assert_eq!(c.cpu_us(u64::MAX, 2), u64::MAX / 1000 + 1, "saturates, never wraps");
    }

    #[test]
    fn a_lane_serves_work_in_arrival_order() {
        let mut lane = Lane::default();
        assert_eq!(lane.take(100, 50), 150, "idle: starts at once");
        assert_eq!(lane.take(120, 50), 200, "busy: waits for the work ahead");
        assert_eq!(lane.take(500, 0), 500, "free work is done when it arrives");
        assert_eq!(lane.take(400, 10), 510, "a late arrival still queues behind");
        assert_eq!(lane.free_at(), 510);
    }

    #[test]
    fn lanes_share_work_over_their_cores() {
        let mut cores = Lanes::new(2);
        assert_eq!(cores.take(0, 100), 100);
        assert_eq!(cores.take(0, 100), 100, "the second core is free");
        assert_eq!(cores.take(0, 100), 200, "both busy: the soonest free");
        assert_eq!(cores.take(150, 10), 160, "core 1, free since 100, takes it on arrival");
        assert_eq!(cores.take(150, 10), 170, "core 1 again: free at 160, before core 0's 200");
    }
}
