//! The cluster a job runs on: node names, addresses, ports, partition placement and settings.
//!
//! Every node boots with the same [`ClusterSpec`] (its configuration file, in real life), so
//! static facts — who replicates partition 3, where worker 2 listens — are computed alike
//! everywhere without a message. Dynamic facts (leadership after failover, deployments) travel
//! over the network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::job::JobSpec;
use crate::workload::WorkloadSpec;

pub const BROKER_PORT: u16 = 9092;
pub const WORKER_CONTROL_PORT: u16 = 7001;
pub const WORKER_DATA_PORT: u16 = 7002;
pub const MANAGER_PORT: u16 = 6123;
pub const SINK_PORT: u16 = 5432;
pub const STORE_PORT: u16 = 2181;

/// The node roles; each instance is one madsim node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Producer,
    Broker,
    Manager,
    Driver,
    Worker,
    Store,
    Sink,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Broker => "broker",
            Role::Manager => "manager",
            Role::Driver => "driver",
            Role::Worker => "worker",
            Role::Store => "store",
            Role::Sink => "sink",
        }
    }

    fn subnet(self) -> u8 {
        match self {
            Role::Producer => 1,
            Role::Broker => 2,
            Role::Manager => 3,
            Role::Driver => 4,
            Role::Worker => 5,
            Role::Store => 6,
            Role::Sink => 7,
        }
    }

    /// Whether the role has several numbered instances (`broker-1`, ...) or one (`manager`).
    pub fn numbered(self) -> bool {
        matches!(self, Role::Producer | Role::Broker | Role::Worker)
    }
}

/// One node: its role and 0-based index within the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub role: Role,
    pub index: u32,
}

impl NodeId {
    pub fn new(role: Role, index: u32) -> Self {
        NodeId { role, index }
    }

    /// The node's name, 1-based for numbered roles: `broker-1`, `worker-2`, `manager`; the
    /// second manager is `manager-standby`.
    pub fn name(self) -> String {
        if self.role == Role::Manager && self.index == 1 {
            "manager-standby".to_string()
        } else if self.role.numbered() {
            format!("{}-{}", self.role.as_str(), self.index + 1)
        } else {
            self.role.as_str().to_string()
        }
    }

    pub fn ip(self) -> IpAddr {
        assert!(self.index < 250, "at most 250 nodes per role");
        IpAddr::V4(Ipv4Addr::new(10, 0, self.role.subnet(), self.index as u8 + 1))
    }

    pub fn addr(self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(), port)
    }
}

/// Engine settings that every node reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Records per message on every wire (producer batches, fetches, channels, sink writes).
    pub batch_records: usize,
    /// Batches a channel receiver can buffer: the credits a sender starts with.
    pub channel_credits: u32,
    /// How long a producer waits to fill a batch before sending it partly full.
    pub linger_ms: u64,
    /// How long a request waits for its response before it is retried.
    pub request_timeout_ms: u64,
    /// How long a broker holds a fetch that has nothing to return.
    pub fetch_wait_ms: u64,
    /// How often workers heartbeat the manager.
    pub heartbeat_interval_ms: u64,
    /// A worker silent this long is declared dead.
    pub heartbeat_timeout_ms: u64,
    /// How long a manager's leadership lasts without a renewal.
    pub manager_lease_ms: u64,
    /// A planted bug, for the checkers' tests: a promoted standby keeps the changelog segments
    /// its primary never committed.
    pub test_keep_uncommitted: bool,
}

/// The managers: the one that leads at boot, and the standby.
pub const MANAGERS: u32 = 2;

/// The manager to try on the `attempt`-th connection: they alternate until one leads.
pub fn manager_addr(attempt: u32) -> SocketAddr {
    NodeId::new(Role::Manager, attempt % MANAGERS).addr(MANAGER_PORT)
}

/// Everything a node needs to know at boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    pub producers: u32,
    pub brokers: u32,
    pub workers: u32,
    pub replication_factor: u32,
    pub workload: WorkloadSpec,
    pub job: JobSpec,
    pub settings: Settings,
    /// The event time at the run's start (the workload's base time): the broker stamps stream
    /// time as this plus the simulated time elapsed, so event and stream times compare.
    pub base_time_ms: u64,
}

impl ClusterSpec {
    pub fn partitions(&self) -> u32 {
        self.workload.partitions
    }

    /// Brokers holding a partition, preferred leader first.
    pub fn replicas_of(&self, partition: u32) -> Vec<u32> {
        assert!(self.replication_factor >= 1 && self.replication_factor <= self.brokers);
        (0..self.replication_factor).map(|j| (partition + j) % self.brokers).collect()
    }

    pub fn leader_of(&self, partition: u32) -> u32 {
        self.replicas_of(partition)[0]
    }

    /// Every node of the cluster, in a fixed order.
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut nodes = Vec::new();
        nodes.extend((0..self.producers).map(|i| NodeId::new(Role::Producer, i)));
        nodes.extend((0..self.brokers).map(|i| NodeId::new(Role::Broker, i)));
        nodes.extend((0..MANAGERS).map(|i| NodeId::new(Role::Manager, i)));
        nodes.push(NodeId::new(Role::Driver, 0));
        nodes.extend((0..self.workers).map(|i| NodeId::new(Role::Worker, i)));
        nodes.push(NodeId::new(Role::Store, 0));
        nodes.push(NodeId::new(Role::Sink, 0));
        nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_distinct() {
        let a = NodeId::new(Role::Broker, 0);
        let b = NodeId::new(Role::Worker, 0);
        assert_eq!(a.name(), "broker-1");
        assert_eq!(NodeId::new(Role::Manager, 0).name(), "manager");
        assert_eq!(NodeId::new(Role::Manager, 1).name(), "manager-standby");
        assert_ne!(a.ip(), b.ip());
    }
}
