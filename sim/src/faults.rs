//! The fault injector: applies a scenario's `[[faults]]` at their simulated times.
//!
//! Each fault says what it destroys and what survives:
//! - `crash`: kills the node — its tasks, memory and unsynced disk writes are gone, synced data
//!   survives; with `restart_after_ms`, the node boots again from its disk that much later;
//! - `restart`: boots a crashed node again (a running node is crashed first: a reboot);
//! - `pause`: freezes every task of the node for `duration_ms`, then resumes it with its memory;
//! - `clog`: holds messages between `target` and `peer` (or all of `target`'s) for
//!   `duration_ms`; streams deliver them after the clog lifts.
//!
//! Every applied fault is recorded with whether it took effect (crashing a node that is already
//! down does nothing). Only this module holds madsim's kill/clog handles.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use faultline_engine::cluster::NodeId;
use faultline_reports::FaultRecord;
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::time::TimeHandle;

use crate::scenario::{Fault, FaultAction};
use crate::world::World;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Up,
    Down,
    Paused,
}

/// The injector's view of the world during a run.
pub struct Injector {
    world_nodes: BTreeMap<NodeId, madsim::runtime::NodeHandle>,
    by_name: BTreeMap<String, NodeId>,
    disks: BTreeMap<NodeId, std::sync::Arc<crate::disk::SimDisk>>,
    health: RefCell<BTreeMap<NodeId, Health>>,
    pub applied: RefCell<Vec<FaultRecord>>,
}

impl Injector {
    pub fn new(world: &World) -> Rc<Self> {
        let health = world.nodes.keys().map(|&id| (id, Health::Up)).collect();
        Rc::new(Injector {
            world_nodes: world.nodes.clone(),
            by_name: world.nodes.keys().map(|&id| (id.name(), id)).collect(),
            disks: world.disks.clone(),
            health: RefCell::new(health),
            applied: RefCell::new(Vec::new()),
        })
    }

    /// Applies `faults` in time order; returns once the last one (and its healing) is done.
    pub async fn run(self: Rc<Self>, faults: Vec<Fault>) {
        let mut faults = faults;
        faults.sort_by_key(|f| f.at_ms);
        for fault in faults {
            sleep_until_ms(fault.at_ms).await;
            let target = self.by_name[&fault.target];
            let peer = fault.peer.as_ref().map(|p| self.by_name[p]);
            let effective = self.apply(&fault, target, peer);
            self.applied.borrow_mut().push(FaultRecord {
                at_ms: fault.at_ms,
                class: fault.class.as_str().to_string(),
                target: fault.target.clone(),
                action: fault.action.as_str().to_string(),
                effective,
            });
            self.clone().schedule_healing(&fault, target, peer);
        }
    }

    fn apply(&self, fault: &Fault, target: NodeId, peer: Option<NodeId>) -> bool {
        let health = self.health.borrow()[&target];
        match fault.action {
            FaultAction::Crash => health != Health::Down && self.crash(target),
            FaultAction::Restart => self.restart(target),
            FaultAction::Pause => {
                let up = health == Health::Up;
                if up {
                    Handle::current().pause(self.world_nodes[&target].id());
                    self.health.borrow_mut().insert(target, Health::Paused);
                }
                up
            }
            FaultAction::Clog => {
                self.clog(target, peer, true);
                health == Health::Up
            }
        }
    }

    fn crash(&self, node: NodeId) -> bool {
        Handle::current().kill(self.world_nodes[&node].id());
        self.disks[&node].crash();
        self.health.borrow_mut().insert(node, Health::Down);
        true
    }

    fn restart(&self, node: NodeId) -> bool {
        if self.health.borrow()[&node] != Health::Down {
            self.crash(node);
        }
        Handle::current().restart(self.world_nodes[&node].id());
        self.health.borrow_mut().insert(node, Health::Up);
        true
    }

    fn clog(&self, target: NodeId, peer: Option<NodeId>, on: bool) {
        let net = NetSim::current();
        let a = self.world_nodes[&target].id();
        match peer.map(|p| self.world_nodes[&p].id()) {
            Some(b) if on => {
                net.clog_link(a, b);
                net.clog_link(b, a);
            }
            Some(b) => {
                net.unclog_link(a, b);
                net.unclog_link(b, a);
            }
            None if on => net.clog_node(a),
            None => net.unclog_node(a),
        }
    }

    /// Schedules the end of a timed fault: a restart, a resume or an unclog.
    fn schedule_healing(self: Rc<Self>, fault: &Fault, target: NodeId, peer: Option<NodeId>) {
        let after = match fault.action {
            FaultAction::Crash => fault.restart_after_ms,
            FaultAction::Pause | FaultAction::Clog => fault.duration_ms,
            FaultAction::Restart => None,
        };
        let Some(after) = after else { return };
        let action = fault.action;
        madsim::task::spawn_local(async move {
            madsim::time::sleep(Duration::from_millis(after)).await;
            match action {
                FaultAction::Crash => _ = self.restart(target),
                FaultAction::Pause => {
                    if self.health.borrow()[&target] == Health::Paused {
                        Handle::current().resume(self.world_nodes[&target].id());
                        self.health.borrow_mut().insert(target, Health::Up);
                    }
                }
                FaultAction::Clog => self.clog(target, peer, false),
                FaultAction::Restart => unreachable!("restart has no healing"),
            }
        });
    }
}

async fn sleep_until_ms(at_ms: u64) {
    let now = TimeHandle::current().elapsed();
    let at = Duration::from_millis(at_ms);
    if at > now {
        madsim::time::sleep(at - now).await;
    }
}
