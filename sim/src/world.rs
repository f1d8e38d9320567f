//! The simulated world: one madsim runtime per run, one madsim node per engine role.
//!
//! It owns the mapping from a scenario to a running cluster: the [`ClusterSpec`] every node
//! boots with, one node per role with its own IP and an `init` boot function (re-run on
//! restart), one [`SimDisk`] per node kept outside the node so it survives crashes, and the
//! trace recorder. It does not decide what happens during the run: `runner` and `faults` do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use faultline_engine::cluster::{ClusterSpec, NodeId, Role, Settings};
use faultline_engine::disk::DiskRef;
use faultline_engine::job::{
    CheckpointMode, CheckpointSettings, DriverLoss, JobSpec, Recovery, Semantics, SinkMode, TimeSettings,
};
use faultline_engine::net::LinkFaults;
use faultline_engine::observe::{NodeContext, ObserverRef};
use faultline_engine::plugin::{Catalog, Dataflow, PipelineSpec};
use faultline_engine::workload::{Input, WorkloadSpec};
use faultline_engine::{broker, driver, manager, producer, sink, store, worker};
use madsim::runtime::{NodeHandle, Runtime};

use crate::disk::SimDisk;
use crate::scenario::{
    CheckpointModeName, DriverLossName, InputName, RecoveryName, Scenario, SemanticsName, SinkName,
};
use crate::trace::Recorder;

/// A built world: the nodes of one run and what outlives them.
pub struct World {
    pub cluster: Arc<ClusterSpec>,
    pub disks: BTreeMap<NodeId, Arc<SimDisk>>,
    pub nodes: BTreeMap<NodeId, NodeHandle>,
    pub recorder: Arc<Recorder>,
}

/// The madsim configuration a scenario asks for.
pub fn madsim_config(s: &Scenario) -> madsim::Config {
    let mut config = madsim::Config::default();
    let n = &s.network;
    config.net.packet_loss_rate = n.packet_loss_rate;
    // madsim draws latency from a half-open range; the scenario's bounds are inclusive.
    config.net.send_latency =
        Duration::from_millis(n.latency_ms_min)..Duration::from_millis(n.latency_ms_max + 1);
    config
}

/// The pipeline spec the driver submits for scenario `s`, whose pipeline is built as `built`.
pub fn pipeline_spec(s: &Scenario, built: &dyn Dataflow) -> PipelineSpec {
    PipelineSpec::of(&s.pipeline.kind, &s.pipeline.params, built)
}

/// The cluster a scenario describes, running `pipeline`, with the workload seeded from the
/// run's seed.
pub fn cluster_spec(s: &Scenario, pipeline: PipelineSpec, seed: u64) -> ClusterSpec {
    let (w, e) = (&s.workload, &s.engine);
    let semantics = match e.semantics {
        SemanticsName::AtMostOnce => Semantics::AtMostOnce,
        SemanticsName::AtLeastOnce => Semantics::AtLeastOnce,
        SemanticsName::ExactlyOnce => Semantics::ExactlyOnce,
    };
    let workload = workload_spec(s, seed);
    ClusterSpec {
        producers: w.producers,
        brokers: e.brokers,
        workers: e.workers,
        replication_factor: e.replication_factor,
        base_time_ms: workload.base_time_ms(),
        workload,
        job: JobSpec {
            pipeline,
            time: TimeSettings {
                max_out_of_orderness_ms: s.time.max_out_of_orderness_ms,
                idle_timeout_ms: s.time.idle_timeout_ms,
            },
            parallelism: e.parallelism,
            semantics,
            sink: match e.sink {
                SinkName::Plain => SinkMode::Plain,
                SinkName::Idempotent => SinkMode::Idempotent,
                SinkName::Transactional => SinkMode::Transactional,
            },
            checkpoints: CheckpointSettings {
                interval_ms: e.checkpoint_interval_ms,
                mode: match e.checkpoint_mode {
                    CheckpointModeName::Aligned => CheckpointMode::Aligned,
                    CheckpointModeName::Unaligned => CheckpointMode::Unaligned,
                },
                timeout_ms: e.checkpoint_timeout_ms,
                retained: e.retained_checkpoints,
            },
            driver_loss: match e.driver_loss {
                DriverLossName::Reattach => DriverLoss::Reattach,
                DriverLossName::RestartJob => DriverLoss::RestartJob,
            },
            recovery: match e.recovery {
                RecoveryName::Rollback => Recovery::Rollback,
                RecoveryName::PassiveReplication => Recovery::PassiveReplication,
                RecoveryName::ActiveReplication => Recovery::ActiveReplication,
            },
            replicas: if e.recovery == RecoveryName::Rollback { 0 } else { e.replicas },
        },
        settings: Settings {
            batch_records: e.batch_records,
            channel_credits: e.channel_credits,
            linger_ms: e.linger_ms,
            request_timeout_ms: e.request_timeout_ms,
            fetch_wait_ms: e.fetch_wait_ms,
            heartbeat_interval_ms: e.heartbeat_interval_ms,
            heartbeat_timeout_ms: e.heartbeat_timeout_ms,
            manager_lease_ms: e.manager_lease_ms,
            test_keep_uncommitted: e.test_keep_uncommitted,
        },
    }
}

/// The workload a scenario describes, seeded from the run's seed.
pub(crate) fn workload_spec(s: &Scenario, seed: u64) -> WorkloadSpec {
    let w = &s.workload;
    WorkloadSpec {
        input: match w.input {
            InputName::Synthetic => Input::Synthetic,
            InputName::Nexmark => Input::Nexmark,
        },
        seed,
        events: w.events,
        keys: w.keys,
        partitions: w.partitions,
        producers: w.producers,
        rate_per_s: w.rate_per_s,
        value_max: w.value_max,
        streams: w.streams,
        disorder_ms: w.disorder_ms,
        late_per_mille: w.late_per_mille,
        late_by_ms: w.late_by_ms,
    }
}

/// The names of a scenario's nodes, for validating fault targets.
pub fn node_names(s: &Scenario) -> Vec<String> {
    shape(s).nodes().into_iter().map(NodeId::name).collect()
}

/// The cluster's shape alone — nodes and settings — for checks made before the pipeline is
/// built: its pipeline spec names the pipeline but holds none of it.
pub fn shape(s: &Scenario) -> ClusterSpec {
    let pipeline = PipelineSpec { kind: s.pipeline.kind.clone(), params: String::new(), stages: 1 };
    cluster_spec(s, pipeline, 0)
}

impl World {
    /// Creates every node on `rt`. Their boot functions start when the runtime runs.
    pub fn build(rt: &Runtime, cluster: ClusterSpec, catalog: Arc<Catalog>) -> World {
        rt.add_simulator::<LinkFaults>();
        let cluster = Arc::new(cluster);
        let recorder = Arc::new(Recorder::default());
        let mut world =
            World { cluster: cluster.clone(), disks: BTreeMap::new(), nodes: BTreeMap::new(), recorder };
        for id in cluster.nodes() {
            let disk = Arc::new(SimDisk::default());
            let ctx = NodeContext {
                id,
                cluster: cluster.clone(),
                catalog: catalog.clone(),
                disk: disk.clone() as DiskRef,
                observer: world.recorder.clone() as ObserverRef,
            };
            let node = rt.create_node().name(id.name()).ip(id.ip()).init(move || boot(ctx.clone())).build();
            if id.role == Role::Store {
                disk.watch(manager::JOB_KEY);
                (0..cluster.partitions()).for_each(|p| disk.watch(&broker::metadata::key(p)));
                disk.watch_removals(faultline_engine::checkpoint::CHECKPOINTS_PREFIX);
                disk.watch_first_syncs(faultline_engine::checkpoint::HISTORY_PREFIX);
                world.recorder.watch_store(disk.clone());
            }
            world.disks.insert(id, disk);
            world.nodes.insert(id, node);
        }
        world
    }

    /// The disk of the node called `name`; the name was validated with the scenario.
    pub fn disk_named(&self, name: &str) -> &SimDisk {
        let (_, disk) = self.disks.iter().find(|(id, _)| id.name() == name).expect("a validated node name");
        disk
    }

    pub fn sink_disk(&self) -> &SimDisk {
        &self.disks[&NodeId::new(Role::Sink, 0)]
    }
}

/// A node's boot function: its role's `run`.
async fn boot(ctx: NodeContext) {
    match ctx.id.role {
        Role::Producer => producer::run(ctx).await,
        Role::Broker => broker::run(ctx).await,
        Role::Manager => manager::run(ctx).await,
        Role::Driver => driver::run(ctx).await,
        Role::Worker => worker::run(ctx).await,
        Role::Store => store::run(ctx).await,
        Role::Sink => sink::run(ctx).await,
    }
}
