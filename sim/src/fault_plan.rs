//! The fault plan: a scenario's scheduled faults plus faults drawn at random from the seed.
//!
//! In a scenario file the plan is either a list — `[[faults]]` entries, each scheduled — or a
//! table with `[faults.random]` (and optionally `[[faults.scheduled]]`). Random faults are drawn
//! with a ChaCha generator seeded from the run's seed, so each seed of a swarm explores its own
//! schedule and any seed replays its schedule exactly.

use std::fmt;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use faultline_engine::cluster::{ClusterSpec, NodeId, Role};
use faultline_engine::workload::mix64;

use crate::scenario::{Fault, FaultAction, FaultClass};

/// Scheduled faults, and a recipe for random ones.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    #[serde(default)]
    pub scheduled: Vec<Fault>,
    #[serde(default)]
    pub random: Option<RandomFaults>,
}

/// `[faults.random]`: how many faults of which classes, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    pub classes: Vec<FaultClass>,
    pub count: u32,
    /// Each fault strikes at a time drawn from `window_ms[0]..=window_ms[1]`.
    pub window_ms: [u64; 2],
    /// Actions to draw from (default: every action the classes support).
    #[serde(default)]
    pub actions: Vec<FaultAction>,
    /// A crashed node restarts after a delay drawn from this range.
    #[serde(default = "default_restart_after_ms")]
    pub restart_after_ms: [u64; 2],
    /// A pause or a link fault lasts a time drawn from this range.
    #[serde(default = "default_duration_ms")]
    pub duration_ms: [u64; 2],
    /// A `loss` fault's rate is drawn from this range.
    #[serde(default = "default_loss_rate")]
    pub loss_rate: [f64; 2],
    /// A `latency` fault's extra delay is drawn from this range.
    #[serde(default = "default_latency_ms")]
    pub latency_ms: [u64; 2],
    /// The probability that a drawn fault waits for a checkpoint in flight (`mid_checkpoint`).
    #[serde(default)]
    pub mid_checkpoint: f64,
    /// Each draw strikes this many distinct targets of its class at once, drawn from the range
    /// (at most every target the class has): `[1, 2]` crashes one or two workers together.
    #[serde(default = "default_simultaneous")]
    pub simultaneous: [u32; 2],
}

fn default_simultaneous() -> [u32; 2] {
    [1, 1]
}

pub(crate) fn default_loss_rate() -> [f64; 2] {
    [0.2, 0.6]
}

pub(crate) fn default_latency_ms() -> [u64; 2] {
    [20, 200]
}

pub(crate) fn default_restart_after_ms() -> [u64; 2] {
    [100, 1000]
}

pub(crate) fn default_duration_ms() -> [u64; 2] {
    [100, 1000]
}

/// Accepts either a list of scheduled faults or the table form.
pub fn deserialize_plan<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FaultPlan, D::Error> {
    struct PlanVisitor;
    impl<'de> Visitor<'de> for PlanVisitor {
        type Value = FaultPlan;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of [[faults]] or a table with `random` and `scheduled`")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<FaultPlan, A::Error> {
            let scheduled = Vec::<Fault>::deserialize(SeqAccessDeserializer::new(seq))?;
            Ok(FaultPlan { scheduled, random: None })
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FaultPlan, A::Error> {
            FaultPlan::deserialize(MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_any(PlanVisitor)
}

/// The seven failure classes.
pub const ALL_CLASSES: [FaultClass; 7] = [
    FaultClass::Stream,
    FaultClass::Network,
    FaultClass::Processor,
    FaultClass::SinkLink,
    FaultClass::Sink,
    FaultClass::Manager,
    FaultClass::Driver,
];

/// The actions a class of fault can take.
pub fn actions_of(class: FaultClass) -> &'static [FaultAction] {
    match class {
        FaultClass::Processor | FaultClass::Stream => &[FaultAction::Crash, FaultAction::Pause],
        FaultClass::Network => {
            &[FaultAction::Clog, FaultAction::Partition, FaultAction::Loss, FaultAction::Latency]
        }
        FaultClass::SinkLink => &[FaultAction::Clog, FaultAction::Loss, FaultAction::Latency],
        FaultClass::Manager => &[FaultAction::Crash, FaultAction::Pause],
        FaultClass::Sink | FaultClass::Driver => &[FaultAction::Crash],
    }
}

/// What a scheduled fault of `class` may do: as a drawn one, and for a `manager` or `stream`
/// fault on a manager's link to the store, or a broker's link to the store or to another
/// broker (`linked`), what a link fault does.
pub fn scheduled_actions_of(class: FaultClass, linked: bool) -> &'static [FaultAction] {
    match class {
        FaultClass::Manager | FaultClass::Stream if linked => {
            &[FaultAction::Clog, FaultAction::Partition, FaultAction::Loss, FaultAction::Latency]
        }
        _ => actions_of(class),
    }
}

/// Whether a fault of `class` may hit `target` (and the link to `peer`): `stream` hits
/// producers and brokers (and, scheduled, a broker's link to the store or to another broker),
/// `processor` workers, `sink` the sink, `manager` the managers (and, scheduled, a manager's
/// link to the store), `driver` the driver; `network` the links among workers and from workers
/// to brokers, `sink-link` the links between workers and the sink. An error says what the
/// class hits.
pub fn fits(class: FaultClass, target: Role, peer: Option<Role>) -> Result<(), String> {
    use Role::*;
    let fits = match (class, peer) {
        (FaultClass::Processor, None) => target == Worker,
        (FaultClass::Stream, None) => matches!(target, Producer | Broker),
        (FaultClass::Sink, None) => target == Sink,
        (FaultClass::Manager, None) => target == Manager,
        (FaultClass::Driver, None) => target == Driver,
        (FaultClass::Network, None) => target == Worker,
        (FaultClass::Network, Some(peer)) => {
            matches!((target, peer), (Worker, Worker | Broker) | (Broker, Worker))
        }
        (FaultClass::SinkLink, None) => target == Sink,
        (FaultClass::SinkLink, Some(peer)) => matches!((target, peer), (Worker, Sink) | (Sink, Worker)),
        // Scheduled only: a manager's link to the store (random draws hit the managers alone).
        (FaultClass::Manager, Some(peer)) => matches!((target, peer), (Manager, Store) | (Store, Manager)),
        // Scheduled only: a broker's link to the store, where its partitions' leadership is
        // recorded (a broker cut off from ZooKeeper, in Kafka's terms), or to another broker,
        // which replication crosses.
        (FaultClass::Stream, Some(peer)) => {
            matches!((target, peer), (Broker, Store) | (Store, Broker) | (Broker, Broker))
        }
        // A peer on a node fault is refused on its own field.
        (_, Some(_)) => true,
    };
    if fits {
        return Ok(());
    }
    let hits = match class {
        FaultClass::Processor => "workers",
        FaultClass::Stream => {
            "producers and brokers, or a scheduled fault on a broker's link to the store or to another broker"
        }
        FaultClass::Sink => "the sink",
        FaultClass::Manager => {
            "the managers (manager, manager-standby), or a scheduled fault on a manager's link to the store"
        }
        FaultClass::Driver => "the driver",
        FaultClass::Network => {
            "links among workers and between workers and brokers (a worker, or a worker and its peer)"
        }
        FaultClass::SinkLink => "links between workers and the sink (a worker and peer `sink`, or the sink)",
    };
    Err(format!("a `{}` fault hits {hits}", class.as_str()))
}

/// The nodes (and, for links, peers) a class of fault can hit.
pub(crate) fn targets_of(class: FaultClass, cluster: &ClusterSpec) -> Vec<(NodeId, Option<NodeId>)> {
    let nodes = cluster.nodes();
    let of = |role: Role| nodes.iter().copied().filter(move |n| n.role == role);
    match class {
        FaultClass::Processor => of(Role::Worker).map(|w| (w, None)).collect(),
        FaultClass::Stream => of(Role::Producer).chain(of(Role::Broker)).map(|n| (n, None)).collect(),
        FaultClass::Network => {
            let to_brokers = of(Role::Worker).flat_map(|w| of(Role::Broker).map(move |b| (w, Some(b))));
            let between_workers = of(Role::Worker)
                .flat_map(|a| of(Role::Worker).filter(move |b| a < *b).map(move |b| (a, Some(b))));
            to_brokers.chain(between_workers).collect()
        }
        FaultClass::SinkLink => of(Role::Worker).map(|w| (w, Some(NodeId::new(Role::Sink, 0)))).collect(),
        FaultClass::Sink => vec![(NodeId::new(Role::Sink, 0), None)],
        FaultClass::Manager => of(Role::Manager).map(|m| (m, None)).collect(),
        FaultClass::Driver => vec![(NodeId::new(Role::Driver, 0), None)],
    }
}

impl FaultPlan {
    /// Every fault of a run with `seed`: the scheduled ones and the random draws, by time.
    pub fn faults(&self, seed: u64, cluster: &ClusterSpec) -> Vec<Fault> {
        let mut faults = self.scheduled.clone();
        if let Some(random) = &self.random {
            let mut rng = ChaCha8Rng::seed_from_u64(mix64(seed ^ 0x6661_756c_7473));
            for _ in 0..random.count {
                faults.extend(random.draw(&mut rng, cluster));
            }
        }
        faults.sort_by_key(|f| f.at_ms);
        faults
    }

    pub fn is_empty(&self) -> bool {
        self.scheduled.is_empty() && self.random.as_ref().is_none_or(|r| r.count == 0)
    }
}

impl RandomFaults {
    /// One draw: a fault, struck at `simultaneous` distinct targets at once.
    fn draw(&self, rng: &mut ChaCha8Rng, cluster: &ClusterSpec) -> Vec<Fault> {
        let fault = self.draw_one(rng, cluster);
        let [lo, hi] = self.simultaneous;
        let n = if lo == hi { lo } else { rng.gen_range(lo..=hi) } as usize;
        if n <= 1 {
            return vec![fault];
        }
        let targets = targets_of(fault.class, cluster);
        let struck = targets.choose_multiple(rng, n.min(targets.len()));
        struck
            .map(|&(target, peer)| Fault {
                target: target.name(),
                peer: peer.map(NodeId::name),
                ..fault.clone()
            })
            .collect()
    }

    fn draw_one(&self, rng: &mut ChaCha8Rng, cluster: &ClusterSpec) -> Fault {
        let class = *self.classes.choose(rng).expect("validated: at least one class");
        let allowed: Vec<FaultAction> = actions_of(class)
            .iter()
            .copied()
            .filter(|a| self.actions.is_empty() || self.actions.contains(a))
            .collect();
        let action = *allowed.choose(rng).expect("validated: every class has an allowed action");
        let (target, peer) = *targets_of(class, cluster).choose(rng).expect("every class has targets");
        let at_ms = rng.gen_range(self.window_ms[0]..=self.window_ms[1]);
        let mut fault = Fault {
            at_ms,
            class,
            target: target.name(),
            action,
            duration_ms: None,
            restart_after_ms: None,
            peer: peer.map(NodeId::name),
            one_way: false,
            loss_rate: None,
            latency_ms: None,
            mid_checkpoint: false,
        };
        match action {
            FaultAction::Crash => {
                fault.restart_after_ms =
                    Some(rng.gen_range(self.restart_after_ms[0]..=self.restart_after_ms[1]))
            }
            FaultAction::Restart => {}
            _ => fault.duration_ms = Some(rng.gen_range(self.duration_ms[0]..=self.duration_ms[1])),
        }
        match action {
            FaultAction::Partition => fault.one_way = rng.gen_bool(0.5),
            FaultAction::Loss => fault.loss_rate = Some(rng.gen_range(self.loss_rate[0]..=self.loss_rate[1])),
            FaultAction::Latency => {
                fault.latency_ms = Some(rng.gen_range(self.latency_ms[0]..=self.latency_ms[1]))
            }
            _ => {}
        }
        fault.mid_checkpoint = self.mid_checkpoint > 0.0 && rng.gen_bool(self.mid_checkpoint);
        fault
    }
}

/// When a fault stops acting: its time plus its restart delay or duration.
pub fn heals_at_ms(fault: &Fault) -> u64 {
    fault.at_ms + fault.restart_after_ms.or(fault.duration_ms).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSES: [FaultClass; 7] = ALL_CLASSES;

    #[test]
    fn each_class_fits_its_own_targets_only() {
        use Role::*;
        assert!(fits(FaultClass::Processor, Worker, None).is_ok());
        assert!(fits(FaultClass::Sink, Worker, None).is_err());
        assert!(fits(FaultClass::Stream, Broker, None).is_ok());
        assert!(fits(FaultClass::Stream, Worker, None).is_err());
        assert!(fits(FaultClass::Manager, Manager, None).is_ok());
        assert!(fits(FaultClass::Driver, Manager, None).is_err());
        assert!(fits(FaultClass::Network, Worker, Some(Broker)).is_ok());
        assert!(fits(FaultClass::Network, Worker, Some(Sink)).is_err());
        assert!(fits(FaultClass::SinkLink, Worker, Some(Sink)).is_ok());
        assert!(fits(FaultClass::SinkLink, Worker, Some(Broker)).is_err());
        assert!(fits(FaultClass::SinkLink, Sink, None).is_ok());
        // A manager's link to the store, either way round; no other link of a manager.
        assert!(fits(FaultClass::Manager, Manager, Some(Store)).is_ok());
        assert!(fits(FaultClass::Manager, Store, Some(Manager)).is_ok());
        assert!(fits(FaultClass::Manager, Manager, Some(Worker)).is_err());
        assert!(fits(FaultClass::Manager, Store, None).is_err());
        // A broker's link to the store (either way round) or to another broker; no other link.
        assert!(fits(FaultClass::Stream, Broker, Some(Store)).is_ok());
        assert!(fits(FaultClass::Stream, Store, Some(Broker)).is_ok());
        assert!(fits(FaultClass::Stream, Broker, Some(Broker)).is_ok());
        assert!(fits(FaultClass::Stream, Broker, Some(Worker)).is_err());
        assert!(fits(FaultClass::Stream, Producer, Some(Store)).is_err());
    }

    /// Only a scheduled manager fault on a link takes a link fault's actions: random draws of
    /// the class stay crashes and pauses of the managers.
    #[test]
    fn a_manager_fault_on_its_link_to_the_store_acts_as_a_link_fault() {
        assert_eq!(scheduled_actions_of(FaultClass::Manager, false), actions_of(FaultClass::Manager));
        assert!(scheduled_actions_of(FaultClass::Manager, true).contains(&FaultAction::Latency));
        assert!(!actions_of(FaultClass::Manager).contains(&FaultAction::Latency));
        assert_eq!(scheduled_actions_of(FaultClass::Network, true), actions_of(FaultClass::Network));
        assert!(scheduled_actions_of(FaultClass::Stream, true).contains(&FaultAction::Partition));
        assert!(!actions_of(FaultClass::Stream).contains(&FaultAction::Partition));
    }

    #[test]
    fn random_draws_fit_their_class() {
        let scenario = crate::scenario::load(std::path::Path::new("../scenarios/all-faults.toml"), &[])
            .expect("all-faults loads")
            .scenario;
        let cluster = crate::world::shape(&scenario);
        for class in CLASSES {
            for (target, peer) in targets_of(class, &cluster) {
                let fitted = fits(class, target.role, peer.map(|p| p.role));
                assert!(fitted.is_ok(), "{class:?} drew {target:?} {peer:?}: {fitted:?}");
            }
        }
    }
}
