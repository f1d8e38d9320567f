//! The fault injector: applies a scenario's `[[faults]]` at their simulated times.
//!
//! Each fault says what it destroys and what survives:
//! - `crash`: kills the node — its tasks, memory and unsynced disk writes are gone, synced data
//!   survives; with `restart_after_ms`, the node boots again from its disk that much later;
//! - `restart`: boots a crashed node again (a running node is crashed first: a reboot);
//! - `pause`: freezes every task of the node for `duration_ms`, then resumes it with its memory;
//! - `clog` and `partition`: hold every message on the link (a partition may be one-way) for
//!   `duration_ms`; streams deliver what they held, in order, once it heals;
//! - `loss` and `latency`: impair the link for `duration_ms` (see `engine::net::LinkFaults`).
//!
//! Every applied fault is recorded with whether it took effect: a crash or pause of a node that
//! was up, a link fault during which the link carried traffic. A link fault's record is settled
//! when it heals. Only this module holds madsim's kill/clog handles. Overlapping faults on one
//! link are not stacked: the first to heal lifts the link's fault.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use faultline_engine::cluster::NodeId;
use faultline_engine::net::{Impairment, LinkFaults};
use faultline_reports::{FaultRecord, NodeInterval, NodeLane};
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
    /// Every change of a node's health: (simulated ms, node, new health).
    changes: RefCell<Vec<(u64, NodeId, Health)>>,
    pub applied: RefCell<Vec<FaultRecord>>,
    /// Link faults not yet settled: their record's index, links and traffic before them.
    unsettled: RefCell<BTreeMap<usize, (Vec<Link>, u64)>>,
    /// The run's trace, read to time `mid_checkpoint` faults.
    recorder: std::sync::Arc<crate::trace::Recorder>,
    /// The timed faults still in effect, by their record's index: how each ends.
    healings: RefCell<BTreeMap<usize, Healing>>,
    /// The injector's own tasks (the schedule, mid-checkpoint waits, healings), aborted when
    /// the run ends: a task asleep past the end holds a timer of the runtime that holds the
    /// task, a cycle dropping the runtime does not free.
    tasks: RefCell<Vec<madsim::task::AbortHandle>>,
}

/// One direction of a link: messages from the first node to the second.
type Link = (NodeId, NodeId);

/// How a timed fault ends.
struct Healing {
    action: FaultAction,
    target: NodeId,
    links: Vec<Link>,
}

impl Injector {
    pub fn new(world: &World) -> Rc<Self> {
        let health = world.nodes.keys().map(|&id| (id, Health::Up)).collect();
        Rc::new(Injector {
            world_nodes: world.nodes.clone(),
            by_name: world.nodes.keys().map(|&id| (id.name(), id)).collect(),
            disks: world.disks.clone(),
            health: RefCell::new(health),
            changes: RefCell::new(Vec::new()),
            applied: RefCell::new(Vec::new()),
            unsettled: RefCell::new(BTreeMap::new()),
            healings: RefCell::new(BTreeMap::new()),
            recorder: world.recorder.clone(),
            tasks: RefCell::new(Vec::new()),
        })
    }

    /// Spawns one of the injector's tasks on the current node, to be aborted by `stop`.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + 'static) {
        let handle = madsim::task::spawn_local(task);
        let mut tasks = self.tasks.borrow_mut();
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle.abort_handle());
    }

    /// Aborts every task the injector still has: the run is over. Call inside the runtime,
    /// then let it run once so that the tasks are dropped.
    pub fn stop(&self) {
        for task in self.tasks.borrow_mut().drain(..) {
            task.abort();
        }
    }

    /// Applies `faults` in time order; returns once the last one is applied (healing goes on).
    /// A `mid_checkpoint` fault waits on its own for a checkpoint in flight.
    pub async fn run(self: Rc<Self>, faults: Vec<Fault>) {
        let mut faults = faults;
        faults.sort_by_key(|f| f.at_ms);
        for fault in faults {
            sleep_until_ms(fault.at_ms).await;
            if fault.mid_checkpoint {
                self.spawn(self.clone().strike_mid_checkpoint(fault));
            } else {
                self.strike(&fault, fault.at_ms);
            }
        }
    }

    /// Applies a fault once a checkpoint is in flight — or when the wait runs out, if the job
    /// takes no more checkpoints.
    async fn strike_mid_checkpoint(self: Rc<Self>, mut fault: Fault) {
        const WAIT_MS: u64 = 10_000;
        let give_up_ms = fault.at_ms + WAIT_MS;
        let mut now_ms = fault.at_ms;
        while !self.recorder.checkpoint_in_flight() && now_ms < give_up_ms {
            madsim::time::sleep(Duration::from_millis(1)).await;
            now_ms = TimeHandle::current().elapsed().as_millis() as u64;
        }
        fault.mid_checkpoint = self.recorder.checkpoint_in_flight();
        self.strike(&fault, now_ms);
    }

    /// Applies one fault now (`at_ms`), records it and schedules its healing.
    fn strike(self: &Rc<Self>, fault: &Fault, at_ms: u64) {
        let target = self.by_name[&fault.target];
        let links = self.links(fault, target);
        let carried_before = self.carried(&links);
        let effective = self.apply(fault, target, &links);
        let index = self.applied.borrow().len();
        self.applied.borrow_mut().push(FaultRecord {
            at_ms,
            class: fault.class.as_str().to_string(),
            target: fault.target.clone(),
            peer: fault.peer.clone(),
            action: fault.action.as_str().to_string(),
            restart_after_ms: fault.restart_after_ms.filter(|_| fault.action == FaultAction::Crash),
            healed_at_ms: None,
            effective,
            mid_checkpoint: fault.mid_checkpoint,
        });
        if fault.action.is_link() {
            self.unsettled.borrow_mut().insert(index, (links.clone(), carried_before));
        }
        // A crash of a node already down changes nothing, and its restart must not reboot the
        // node that its earlier crash's restart brings back.
        if effective || fault.action != FaultAction::Crash {
            self.clone().schedule_healing(fault, target, links, index);
        }
    }

    /// The directed links a link fault hits: target to peer (or to every other node) and back,
    /// unless it is one-way. Empty for node faults.
    fn links(&self, fault: &Fault, target: NodeId) -> Vec<Link> {
        if !fault.action.is_link() {
            return Vec::new();
        }
        let peers: Vec<NodeId> = match &fault.peer {
            Some(p) => vec![self.by_name[p]],
            None => self.world_nodes.keys().copied().filter(|&n| n != target).collect(),
        };
        let mut links: Vec<Link> = peers.iter().map(|&p| (target, p)).collect();
        if !fault.one_way {
            links.extend(peers.iter().map(|&p| (p, target)));
        }
        links
    }

    /// Messages the links carried so far.
    fn carried(&self, links: &[Link]) -> u64 {
        let meter = LinkFaults::current();
        links.iter().map(|&(a, b)| meter.carried(self.world_nodes[&a].id(), b.ip())).sum()
    }

    fn apply(&self, fault: &Fault, target: NodeId, links: &[Link]) -> bool {
        let health = self.health.borrow()[&target];
        match fault.action {
            FaultAction::Crash => health != Health::Down && self.crash(target),
            FaultAction::Restart => self.restart(target),
            FaultAction::Pause => {
                let up = health == Health::Up;
                if up {
                    Handle::current().pause(self.world_nodes[&target].id());
                    self.set_health(target, Health::Paused);
                }
                up
            }
            FaultAction::Clog | FaultAction::Partition => {
                self.clog(links, true);
                false // settled at healing, by the traffic the links carried
            }
            FaultAction::Loss | FaultAction::Latency => {
                let impairment = Impairment {
                    loss_rate: fault.loss_rate.unwrap_or(0.0),
                    extra_latency_ms: fault.latency_ms.unwrap_or(0),
                };
                self.impair(links, Some(impairment));
                false
            }
        }
    }

    fn set_health(&self, node: NodeId, health: Health) {
        self.health.borrow_mut().insert(node, health);
        self.changes.borrow_mut().push((now_ms(), node, health));
    }

    /// The nodes not up now: crashed and not restarted, or paused.
    pub fn down(&self) -> BTreeSet<NodeId> {
        let health = self.health.borrow();
        health.iter().filter(|(_, &h)| h != Health::Up).map(|(&node, _)| node).collect()
    }

    /// Each node's lane up to `end_ms`: the intervals it was down or paused, in cluster order.
    pub fn node_lanes(&self, end_ms: u64) -> Vec<NodeLane> {
        let changes = self.changes.borrow();
        self.world_nodes
            .keys()
            .map(|&node| {
                let mine = changes.iter().filter(|c| c.1 == node).map(|&(at, _, h)| (at, h));
                NodeLane {
                    node: node.name(),
                    role: node.role.as_str().to_string(),
                    intervals: intervals(mine, end_ms),
                }
            })
            .collect()
    }

    fn crash(&self, node: NodeId) -> bool {
        Handle::current().kill(self.world_nodes[&node].id());
        self.disks[&node].crash();
        self.set_health(node, Health::Down);
        true
    }

    fn restart(&self, node: NodeId) -> bool {
        if self.health.borrow()[&node] != Health::Down {
            self.crash(node);
        }
        Handle::current().restart(self.world_nodes[&node].id());
        self.set_health(node, Health::Up);
        true
    }

    fn clog(&self, links: &[Link], on: bool) {
        let net = NetSim::current();
        for &(a, b) in links {
            let (a, b) = (self.world_nodes[&a].id(), self.world_nodes[&b].id());
            if on {
                net.clog_link(a, b);
            } else {
                net.unclog_link(a, b);
            }
        }
    }

    fn impair(&self, links: &[Link], impairment: Option<Impairment>) {
        let meter = LinkFaults::current();
        for &(a, b) in links {
            meter.impair(self.world_nodes[&a].id(), b.ip(), impairment);
        }
    }

    /// Schedules the end of a timed fault — a restart, a resume, a healed link — and settles
    /// a link fault's record by whether its links carried traffic meanwhile.
    fn schedule_healing(self: Rc<Self>, fault: &Fault, target: NodeId, links: Vec<Link>, index: usize) {
        let after = match fault.action {
            FaultAction::Crash => fault.restart_after_ms,
            FaultAction::Restart => None,
            _ => fault.duration_ms,
        };
        let Some(after) = after else { return };
        let healing = Healing { action: fault.action, target, links };
        assert!(self.healings.borrow_mut().insert(index, healing).is_none(), "fault {index} healed twice");
        let injector = self.clone();
        injector.spawn(async move {
            madsim::time::sleep(Duration::from_millis(after)).await;
            self.heal(index);
        });
    }

    /// Ends fault `index` now, if it has not ended yet.
    fn heal(&self, index: usize) {
        let Some(Healing { action, target, links }) = self.healings.borrow_mut().remove(&index) else {
            return;
        };
        match action {
            FaultAction::Crash => _ = self.restart(target),
            FaultAction::Pause => {
                if self.health.borrow()[&target] == Health::Paused {
                    Handle::current().resume(self.world_nodes[&target].id());
                    self.set_health(target, Health::Up);
                }
            }
            FaultAction::Clog | FaultAction::Partition => self.clog(&links, false),
            FaultAction::Loss | FaultAction::Latency => self.impair(&links, None),
            FaultAction::Restart => unreachable!("restart has no healing"),
        }
        self.applied.borrow_mut()[index].healed_at_ms = Some(now_ms());
        self.settle(index);
    }

    /// The job finished: no fault strikes any more, and every timed fault still in effect ends
    /// now (a crashed node with a restart due boots, a paused one resumes, links heal). Only the
    /// crashes without a restart remain. Call inside the runtime.
    pub fn heal_all(&self) {
        self.stop();
        let pending: Vec<usize> = self.healings.borrow().keys().copied().collect();
        for index in pending {
            self.heal(index);
        }
        self.settle_all();
    }

    /// Settles a link fault's record: effective if its links carried traffic since it began.
    fn settle(&self, index: usize) {
        if let Some((links, carried_before)) = self.unsettled.borrow_mut().remove(&index) {
            self.applied.borrow_mut()[index].effective = self.carried(&links) > carried_before;
        }
    }

    /// Settles every link fault still active: the run is ending. Call inside the runtime.
    pub fn settle_all(&self) {
        let pending: Vec<usize> = self.unsettled.borrow().keys().copied().collect();
        for index in pending {
            self.settle(index);
        }
    }
}

/// Folds a node's health changes into the intervals it was not up.
fn intervals(changes: impl Iterator<Item = (u64, Health)>, end_ms: u64) -> Vec<NodeInterval> {
    let mut out = Vec::new();
    let mut current: Option<(u64, Health)> = None;
    for (at, health) in changes.chain(std::iter::once((end_ms, Health::Up))) {
        if let Some((from_ms, state)) = current.take() {
            if state != health && at > from_ms {
                let state = if state == Health::Down { "down" } else { "paused" };
                out.push(NodeInterval { from_ms, to_ms: at.min(end_ms), state: state.to_string() });
            } else if state == health {
                current = Some((from_ms, state));
                continue;
            }
        }
        if health != Health::Up && at < end_ms {
            current = Some((at, health));
        }
    }
    out
}

fn now_ms() -> u64 {
    TimeHandle::current().elapsed().as_millis() as u64
}

async fn sleep_until_ms(at_ms: u64) {
    let now = TimeHandle::current().elapsed();
    let at = Duration::from_millis(at_ms);
    if at > now {
        madsim::time::sleep(at - now).await;
    }
}
