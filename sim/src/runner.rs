//! The runner: one scenario, one seed, one fresh runtime — from building the world to the
//! verdict.
//!
//! # A run
//! 1. Build the madsim runtime from the seed and the scenario's network, and the world on it.
//! 2. Safety phase: the job runs while the injector applies the scenario's faults.
//! 3. Liveness: the job must finish within `checks.max_sim_time_ms` of simulated time.
//! 4. Quiet: once it finishes, no fault strikes any more, every timed one ends at once, and the
//!    cluster is left alone until the replicas converge (at most `convergence::QUIET_MS`).
//! 5. Judge: read the sink's durable output, evaluate the reference, run the checkers.
//!
//! Each run gets a fresh OS thread ([`run_isolated`]): madsim seeds std's `HashMap` hashers
//! only for the first runtime on a thread, so a reused thread could change the schedule.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_engine::record::{OutputId, OutputRecord};
use std::collections::{BTreeMap, BTreeSet};

use faultline_engine::broker::metadata;
use faultline_engine::checkpoint;
use faultline_engine::cluster::{ClusterSpec, NodeId, Role};
use faultline_engine::codec;
use faultline_engine::job::{JobSpec, Recovery, Semantics};
use faultline_engine::observe::TraceEvent;
use faultline_engine::record::{LogRecord, Payload};
use faultline_engine::sink::{
    events_of_frames, read_committed_timed, read_events_timed, SinkEvent, SINK_LOG,
};
use faultline_reports::{
    CheckpointCounts, FaultRecord, NodeLane, PanicRecord, RecoveryRecord, RunRecord, Skew, TimeRecord,
    Timeline, Violation,
};
use madsim::runtime::Runtime;
use madsim::time::TimeHandle;

use faultline_engine::disk::Disk;

use crate::checker::expected::{Expected, Input};
use crate::checker::frontier::{self, Frontier};
use crate::checker::watermark::Bound;
use crate::checker::{
    appends, cadence, choice, consistency, convergence, delivery, deploy, driver, expected, failover, late,
    leadership, lease, log, manager, transactions,
};
use crate::disk::FileBytes;
use crate::draw;
use crate::fault_plan::heals_at_ms;
use crate::faults::Injector;
use crate::panic;
use crate::plugin::Pipeline;
use crate::resumed::Resumption;
use crate::scenario::Fault;
use crate::scenario::Loaded;
use crate::tape::{Tape, Taped};
use crate::wall::WallClock;
use crate::world::{self, World};

/// How often the supervisor looks at the job's progress, in simulated time.
const SUPERVISE_TICK: Duration = Duration::from_millis(10);

/// How often the quiet period compares the replicas' copies, in simulated ms: each look reads
/// every copy record by record.
const QUIET_POLL_MS: u64 = 50;

/// The invariant every run judges: nothing panicked — no node's task, no checker.
pub const PANIC: &str = "panic";

/// A scenario's `[swarm]` table drew a configuration validation accepts.
const SWARM_DRAW: &str = "swarm-draw";

/// Invariants whose violation is a liveness failure (exit code 3) rather than a safety one.
const LIVENESS: [&str; 2] = ["liveness", "job-failed"];

enum Ending {
    /// The job finished; the cluster was then left quiet this long (see [`quiet`]).
    Finished {
        quiet_ms: u64,
    },
    Failed {
        at_ms: u64,
    },
    TimedOut {
        at_ms: u64,
    },
}

/// Where a run's wall time went: simulating the cluster, then judging its output.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    pub simulate_ms: f64,
    pub judge_ms: f64,
}

/// What a run records beyond its verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// The record `--json` prints.
    #[default]
    Verdict,
    /// With the timeline a report draws: time series, checkpoint spans, node lanes, and the
    /// trace events around each fault.
    Timeline,
    /// The timeline, and every trace event of the run in `RunRecord::trace`.
    Trace,
    /// The timeline, with the stories of the first `limit` offending outputs of each kind (or
    /// only output `only`'s) in `Timeline::stories`: what `faultline explain` prints.
    Explain { only: Option<OutputId>, limit: usize },
}

/// How many offending outputs of each kind a report tells the story of: as many as its
/// delivery table lists.
const STORIES: usize = 10;

/// Runs one seed on a fresh thread and returns its record.
pub fn run_isolated(loaded: &Loaded, seed: u64) -> RunRecord {
    run_isolated_with(loaded, seed, Detail::Verdict).0
}

/// Like [`run_isolated`], with the split of wall time between simulation and checking.
pub fn run_isolated_timed(loaded: &Loaded, seed: u64) -> (RunRecord, Timings) {
    run_isolated_with(loaded, seed, Detail::Verdict)
}

/// Runs one seed on a fresh thread, recording `detail`.
pub fn run_isolated_with(loaded: &Loaded, seed: u64, detail: Detail) -> (RunRecord, Timings) {
    let loaded = loaded.clone();
    // A fresh OS thread per run is the determinism rule, not a source of parallelism in the
    // simulation: the run itself stays on that one thread.
    #[allow(clippy::disallowed_methods)]
    let handle = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || execute(&loaded, seed, detail, |_| {}))
        .expect("spawning a run thread");
    match handle.join() {
        // The record is copied onto this thread's heap and the run thread's copy freed: blocks
        // still live in an exited thread's heap pin its pages, about half a megabyte a run,
        // which a sweep of tens of thousands of seeds cannot afford.
        Ok((record, timings)) => (record.clone(), timings),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs one seed on the current thread.
pub fn run_seed(loaded: &Loaded, seed: u64) -> RunRecord {
    execute(loaded, seed, Detail::Verdict, |_| {}).0
}

/// Runs one seed, letting `tamper` corrupt the committed output before the checkers read it.
/// This is how tests prove the checkers catch a bad history: plant one, expect a failure.
pub fn run_seed_tampered(
    loaded: &Loaded,
    seed: u64,
    tamper: impl FnOnce(&mut Vec<OutputRecord>),
) -> RunRecord {
    execute(loaded, seed, Detail::Verdict, tamper).0
}

fn execute(
    loaded: &Loaded,
    seed: u64,
    detail: Detail,
    tamper: impl FnOnce(&mut Vec<OutputRecord>),
) -> (RunRecord, Timings) {
    let wall = WallClock::start();
    let drawn = match draw::for_seed(loaded, seed) {
        Ok(drawn) => drawn,
        Err(why) => {
            return (undrawable(loaded, seed, why, &wall), Timings { simulate_ms: 0.0, judge_ms: 0.0 })
        }
    };
    let loaded = &drawn.loaded;
    let scenario = &loaded.scenario;
    let rt = Runtime::with_seed_and_config(seed, world::madsim_config(scenario));
    let cluster = loaded.cluster_spec(seed);
    let tape = Tape::of_run(cluster.workload.clone(), &scenario.workload.given);
    let world = World::build(&rt, cluster, Arc::new(loaded.registry.catalog_taped(tape.clone())));
    if detail != Detail::Verdict {
        world.recorder.keep_events();
    }
    if let Some((node, file)) = scenario.engine.test_skip_sync.as_deref().and_then(|s| s.split_once(':')) {
        world.disk_named(node).skip_sync(file);
    }
    let injector = Injector::new(&world);
    let faults = scenario.faults.faults(seed, &world.cluster);
    let deadline_ms = deadline_ms(scenario, &faults);
    let simulated = panic::catch(|| rt.block_on(supervise(&world, faults, deadline_ms, injector.clone())));
    let applied = injector.applied.borrow().clone();
    // After a panic the runtime may refuse to run again; then the run's memory is left to the
    // runtime's drop (a leak of one run, for a run that is a failing seed already).
    let released = panic::catch(|| rt.block_on(release(&world, &injector))).is_ok();
    drop(rt);
    if simulated.is_ok() && released {
        assert_eq!(Rc::strong_count(&injector), 1, "a task of the injector outlived the run");
    }
    let simulate_ms = wall.elapsed_ms();
    let traced = detail == Detail::Trace;
    let judged = match simulated {
        Ok((ending, sim_time_ms)) => panic::catch(|| {
            let run = Simulated {
                world: &world,
                tape: &tape,
                injector: &injector,
                applied: &applied,
                ending,
                sim_time_ms,
            };
            verdict(loaded, seed, run, detail, tamper)
        })
        .map_err(|p| (p, sim_time_ms)),
        Err(p) => {
            let at_ms = p.at_ms.unwrap_or(0);
            Err((p, at_ms))
        }
    };
    let mut record = judged.unwrap_or_else(|(p, sim_time_ms)| {
        let mut record = panicked(loaded, seed, &world, applied, sim_time_ms, p);
        if traced {
            // The trace up to the panic: what a reader of a panicking seed needs most.
            record.trace = world.recorder.trace_lines();
        }
        record
    });
    record.drawn = drawn.values;
    record.wall_ms = wall.elapsed_ms();
    let timings = Timings { simulate_ms, judge_ms: record.wall_ms - simulate_ms };
    (record, timings)
}

/// The record of a seed whose `[swarm]` draw found no configuration validation accepts.
fn undrawable(loaded: &Loaded, seed: u64, why: String, wall: &WallClock) -> RunRecord {
    let rt = Runtime::with_seed_and_config(seed, world::madsim_config(&loaded.scenario));
    let world = World::build(&rt, loaded.cluster_spec(seed), Arc::new(loaded.registry.catalog()));
    let mut record = empty_record(loaded, seed, &world);
    record.verdict = "fail".into();
    record.violations = vec![Violation { invariant: SWARM_DRAW.into(), detail: why }];
    record.invariants.push(SWARM_DRAW.into());
    record.wall_ms = wall.elapsed_ms();
    record
}

/// What the simulation left for the checkers.
struct Simulated<'a> {
    world: &'a World,
    /// The input the producers emitted.
    tape: &'a Arc<Tape>,
    injector: &'a Injector,
    applied: &'a [FaultRecord],
    ending: Ending,
    sim_time_ms: u64,
}

/// Reads the sink's output and judges the run.
fn verdict(
    loaded: &Loaded,
    seed: u64,
    run: Simulated<'_>,
    detail: Detail,
    tamper: impl FnOnce(&mut Vec<OutputRecord>),
) -> RunRecord {
    let (world, scenario) = (run.world, &loaded.scenario);
    let timed = sink_events(world);
    let resumed = crate::resumed::resumptions(&timed);
    let sink_fences = fences(&timed);
    let sink_events: Vec<SinkEvent> = timed.into_iter().map(|(_, e)| e).collect();
    let mut committed = faultline_engine::sink::committed_of(&sink_events);
    let committed_records = committed.len();
    tamper(&mut committed);
    let (results, late) = late::split(committed);
    let pipeline = loaded.pipeline();
    let taped = Taped {
        inner: pipeline.clone() as Arc<dyn faultline_engine::plugin::Dataflow>,
        tape: run.tape.clone(),
    };
    let inputs = expected::inputs(&world.cluster.workload, &taped);
    let expected = pipeline.oracle(&inputs, &late::late_inputs(&late));
    let output = Output {
        inputs: &inputs,
        expected: &expected,
        results: &results,
        late: &late,
        sink_events,
        sink_fences,
    };
    let lanes = run.injector.node_lanes(run.sim_time_ms);
    let (mut record, judged) = judge(loaded, seed, &run, output, &lanes);
    record.sim_time_ms = run.sim_time_ms;
    record.recoveries = recoveries(world, run.applied, &resumed);
    let checkpoints = world.recorder.checkpoints_completed();
    record.violations.extend(vacuity(scenario, run.applied, &record.recoveries, &checkpoints));
    record.invariants.extend(vacuity_invariants(scenario));
    if detail != Detail::Verdict {
        let lines = world.recorder.trace_lines();
        let events = crate::trace::around_faults(&lines, run.applied);
        let mut timeline = timeline(world, &expected, run.sim_time_ms, (lanes, events), committed_records);
        let (only, limit) = match &detail {
            Detail::Explain { only, limit } => (only.clone(), *limit),
            _ => (None, STORIES),
        };
        timeline.stories = stories(loaded, world, &judged, &expected, run.applied, only, limit);
        record.timeline = Some(timeline);
        if detail == Detail::Trace {
            record.trace = lines;
        }
    }
    record.faults = run.applied.to_vec();
    if !record.violations.is_empty() {
        record.verdict = "fail".into();
    }
    record
}

/// The record of a run a panic ended: the panic is its violation, and nothing else is judged
/// (a run cut short would only add the outputs it never made).
fn panicked(
    loaded: &Loaded,
    seed: u64,
    world: &World,
    applied: Vec<FaultRecord>,
    sim_time_ms: u64,
    p: panic::Panicked,
) -> RunRecord {
    let node = match &p.node {
        None => "checker".to_string(),
        Some(id) => world
            .nodes
            .iter()
            .find(|(_, handle)| handle.id().to_string() == *id)
            .map_or("supervisor".to_string(), |(node, _)| node.name()),
    };
    let at = p.at_ms.map_or(String::new(), |ms| format!(" at {ms} ms"));
    let detail = format!("{} (on {node}{at}, {})", p.message, p.location);
    let mut record = empty_record(loaded, seed, world);
    record.verdict = "fail".into();
    record.sim_time_ms = sim_time_ms;
    record.violations = vec![Violation { invariant: PANIC.into(), detail }];
    if p.node.is_some() {
        record.violations.extend(safety_so_far(world));
    }
    record.faults = applied;
    record.panic = Some(PanicRecord { message: p.message, location: p.location, node, at_ms: p.at_ms });
    record
}

/// The safety checkers that judge a history as far as it went — the log's, the sink's
/// transactions', the managers', the deployments', the failovers' — over a run an engine
/// assertion ended: a bug an assertion caught is then named by a checker invariant too, when
/// one sees it. If they panic themselves on the history cut short, the engine's panic stands
/// alone.
fn safety_so_far(world: &World) -> Vec<Violation> {
    let judged = panic::catch(|| {
        let files = replica_files(world);
        let copies = copies(&files);
        let logs = partition_logs(&copies, &[]);
        let mut v = log::check(&world.recorder.log_events(), &logs, &copies);
        v.extend(appends::check(&world.recorder.append_events(), &logs, world.cluster.base_time_ms));
        let timed = sink_events(world);
        let (boots, lost) = world.recorder.sink_losses();
        let fences = fences(&timed);
        v.extend(transactions::check_losses(&transactions::Losses {
            fences: &fences,
            boots: &boots,
            lost: &lost,
        }));
        let sink: Vec<SinkEvent> = timed.into_iter().map(|(_, e)| e).collect();
        v.extend(transactions::check(&sink, &completed_checkpoints(world)));
        let manager_events = world.recorder.manager_events();
        v.extend(manager::check(&manager_events, world.cluster.settings.manager_lease_ms));
        v.extend(manager::check_durable(&manager_events, &world.recorder.job_epochs()));
        v.extend(deploy::check(&world.recorder.deploy_events()));
        let retained = world.cluster.job.checkpoints.retained;
        v.extend(choice::check(&world.recorder.checkpoint_choices(retained, false)));
        v.extend(failover_check(world));
        v.extend(leadership::check(&world.recorder.leadership_histories(&world.cluster)));
        v
    });
    judged.unwrap_or_default()
}

/// The run's end: `liveness_timeout_ms` after the last fault heals or the input's last event
/// is due, whichever is later, within `max_sim_time_ms`. A job cannot finish before its input
/// does: a minute of input faulted in its first seconds still has the minute to run.
fn deadline_ms(scenario: &crate::scenario::Scenario, faults: &[Fault]) -> u64 {
    let checks = &scenario.checks;
    let healed = faults.iter().map(heals_at_ms).max().unwrap_or(0);
    let input = crate::world::workload_spec(scenario, 0).input_ms();
    checks.max_sim_time_ms.min(healed.max(input) + checks.liveness_timeout_ms)
}

async fn supervise(
    world: &World,
    faults: Vec<Fault>,
    deadline_ms: u64,
    injector: Rc<Injector>,
) -> (Ending, u64) {
    injector.spawn(injector.clone().run(faults));
    let mut ending = loop {
        if world.recorder.job_finished_at_ms().is_some() {
            break Ending::Finished { quiet_ms: 0 };
        }
        if let Some(at_ms) = world.recorder.job_failed_at_ms() {
            break Ending::Failed { at_ms };
        }
        if TimeHandle::current().elapsed().as_millis() as u64 >= deadline_ms {
            break Ending::TimedOut { at_ms: deadline_ms };
        }
        madsim::time::sleep(SUPERVISE_TICK).await;
    };
    match &mut ending {
        Ending::Finished { quiet_ms } => {
            injector.heal_all();
            *quiet_ms = quiet(world, &injector).await;
        }
        _ => injector.settle_all(),
    }
    (ending, TimeHandle::current().elapsed().as_millis() as u64)
}

/// The quiet period after a finished job, as Jepsen heals the network and waits before its
/// final reads: every fault has just ended (bar the crashes without a restart), and the cluster
/// is left alone until every live replica holds its leader's log and the store has collected
/// the checkpoints past the retained ones, or for at most [`convergence::QUIET_MS`]. Returns
/// how long it lasted; the convergence and checkpoint-choice checkers then judge what is left.
async fn quiet(world: &World, injector: &Injector) -> u64 {
    let healed_ms = now_ms();
    loop {
        let quiet_ms = now_ms() - healed_ms;
        let settled = || replicas_converged(world, &injector.down()) && checkpoints_collected(world);
        if quiet_ms >= convergence::QUIET_MS || settled() {
            return quiet_ms;
        }
        madsim::time::sleep(Duration::from_millis(QUIET_POLL_MS)).await;
    }
}

fn now_ms() -> u64 {
    TimeHandle::current().elapsed().as_millis() as u64
}

/// Whether the store holds no completed checkpoint past the retained ones now.
fn checkpoints_collected(world: &World) -> bool {
    let recorder = &world.recorder;
    let retained = world.cluster.job.checkpoints.retained;
    choice::uncollected(&recorder.checkpoints_durable(), retained, &recorder.checkpoints_stored()).is_empty()
}

/// Whether every live replica holds its live leader's log now.
fn replicas_converged(world: &World, down: &BTreeSet<NodeId>) -> bool {
    let files = replica_files(world);
    convergence::converged(&copies(&files), down)
}

/// Stops the injector's tasks, kills every node, and lets the executor drop their tasks. A
/// task waiting on a channel that its own state keeps alive (a node's `Rc` reaching the
/// sender), or asleep on a timer of the runtime, is a cycle that dropping the runtime does not
/// free: without this, a run would leak its cluster's memory (its disks and its trace), and a
/// long swarm would run out of it.
async fn release(world: &World, injector: &Injector) {
    injector.stop();
    let handle = madsim::runtime::Handle::current();
    for node in world.nodes.values() {
        handle.kill(node.id());
    }
    madsim::time::sleep(Duration::from_millis(1)).await;
}

/// What the sink committed, split, and what the reference expects of it.
struct Output<'a> {
    inputs: &'a [Input],
    expected: &'a Expected,
    results: &'a [OutputRecord],
    late: &'a [OutputRecord],
    /// The sink's log, as the checkers read it (once).
    sink_events: Vec<SinkEvent>,
    /// Each writer epoch's fence rise at the sink: (ms, writer, epoch).
    sink_fences: Vec<(u64, u32, u64)>,
}

/// Each writer epoch's first request at the sink, which raised its fence: (ms, writer, epoch).
fn fences(sink: &[(u64, SinkEvent)]) -> Vec<(u64, u32, u64)> {
    let fence = |(at, e): &(u64, SinkEvent)| match *e {
        SinkEvent::Fence { writer, epoch } => Some((*at, writer, epoch)),
        _ => None,
    };
    sink.iter().filter_map(fence).collect()
}

/// The replicated log's checkers: what it kept, its appends' times, and, after a finished
/// job's quiet period, the replicas' convergence.
fn log_checks(
    run: &Simulated<'_>,
    logs: &BTreeMap<u32, Vec<LogRecord>>,
    copies: &BTreeMap<u32, log::Copies<'_>>,
) -> Vec<Violation> {
    let recorder = &run.world.recorder;
    let mut v = log::check(&recorder.log_events(), logs, copies);
    if let Ending::Finished { quiet_ms } = run.ending {
        v.extend(convergence::check(copies, &run.injector.down(), quiet_ms));
    }
    v.extend(appends::check(&recorder.append_events(), logs, run.world.cluster.base_time_ms));
    v
}

/// Every lease lost against the faults that touched its manager or the store.
fn lease_check(run: &Simulated<'_>) -> Vec<Violation> {
    let lost: Vec<(u64, String)> = run
        .world
        .recorder
        .driver_events()
        .iter()
        .filter(|(_, _, e)| matches!(e, TraceEvent::LeaseLost { .. }))
        .map(|(ms, node, _)| (*ms, node.name()))
        .collect();
    let touch = |f: &FaultRecord| lease::Touch {
        from_ms: f.at_ms,
        to_ms: f.healed_at_ms.unwrap_or(run.sim_time_ms),
        nodes: std::iter::once(f.target.clone()).chain(f.peer.clone()).collect(),
    };
    let faults: Vec<lease::Touch> = run.applied.iter().map(touch).collect();
    let store = NodeId::new(Role::Store, 0).name();
    let settings = &run.world.cluster.settings;
    let (lease_ms, request_timeout_ms) = (settings.manager_lease_ms, settings.request_timeout_ms);
    lease::check(&lease::Observed {
        lost: &lost,
        faults: &faults,
        store: &store,
        lease_ms,
        request_timeout_ms,
    })
}

/// The recoveries' choice of checkpoint, and what garbage collection deleted and left behind
/// (judged once the job finished and the cluster was quiet).
fn choice_check(run: &Simulated<'_>) -> Vec<Violation> {
    let quiet = matches!(run.ending, Ending::Finished { .. });
    let world = run.world;
    let retained = world.cluster.job.checkpoints.retained;
    choice::check(&world.recorder.checkpoint_choices(retained, quiet))
}

/// The checkpoint triggers' ids, and their cadence when the job takes periodic checkpoints.
fn cadence_check(run: &Simulated<'_>) -> Vec<Violation> {
    let cluster = &run.world.cluster;
    let interval_ms = cluster.job.checkpoints.interval_ms;
    let recorder = &run.world.recorder;
    let spans = recorder.checkpoint_spans();
    let first_read_ms = recorder.fetched().iter().find(|&&(_, records)| records > 0).map(|&(ms, _)| ms);
    let (events, restarts) = cadence_disturbances(run);
    let faults = run.applied.iter().map(|f| (f.at_ms, f.healed_at_ms.unwrap_or(run.sim_time_ms), f));
    let control: BTreeSet<String> = cluster
        .nodes()
        .into_iter()
        .filter(|n| matches!(n.role, Role::Manager | Role::Store))
        .map(NodeId::name)
        .collect();
    let touches_manager =
        |f: &FaultRecord| std::iter::once(&f.target).chain(f.peer.as_ref()).any(|n| control.contains(n));
    let on_managers = faults.clone().filter(|(_, _, f)| touches_manager(f)).map(|(a, b, _)| (a, b));
    let manager_disturbances: Vec<(u64, u64)> = on_managers.chain(events.iter().copied()).collect();
    let disturbances: Vec<(u64, u64)> =
        faults.map(|(a, b, _)| (a, b)).chain(events.iter().copied()).collect();
    let acks: Vec<(u64, u64)> = recorder
        .manager_events()
        .into_iter()
        .filter_map(|(ms, _, e)| match e {
            TraceEvent::CheckpointAckCounted { checkpoint, .. } => Some((ms, checkpoint)),
            _ => None,
        })
        .collect();
    let observed = cadence::Observed {
        spans: &spans,
        first_read_ms,
        disturbances: &disturbances,
        restarts: &restarts,
        acks: &acks,
        manager_disturbances: &manager_disturbances,
    };
    let margin_ms = cluster.settings.heartbeat_timeout_ms + cluster.settings.request_timeout_ms;
    let timeout_ms = cluster.job.checkpoints.timeout_ms;
    cadence::check(&observed, cadence::Settings { interval_ms, timeout_ms, margin_ms })
}

/// Each worker loss's answer under the job's recovery approach, and each replacement's
/// generation.
fn failover_check(world: &World) -> Vec<Violation> {
    let recorder = &world.recorder;
    let approach = match world.cluster.job.recovery {
        Recovery::Rollback => failover::Approach::Rollback,
        Recovery::PassiveReplication => failover::Approach::Passive,
        Recovery::ActiveReplication => failover::Approach::Active,
    };
    let reads: Vec<(u64, u32, u64)> = recorder
        .source_events()
        .into_iter()
        .filter_map(|(ms, _, e)| match e {
            TraceEvent::SourceRead { partition, offset, records, .. } => {
                Some((ms, partition, offset + records))
            }
            _ => None,
        })
        .collect();
    let events = recorder.failover_events();
    failover::check(&failover::Observed { approach, events: &events, reads: &reads })
}

/// What suspends the checkpoint cadence besides the faults: a suspended job until it recovers,
/// and the recoveries, failovers, lease changes and worker losses (the checker adds the
/// redeployment's margin); and, of these, the events that restart the coordinator's count
/// towards the final checkpoint.
fn cadence_disturbances(run: &Simulated<'_>) -> (Vec<(u64, u64)>, Vec<u64>) {
    let end = run.sim_time_ms;
    let mut disturbances: Vec<(u64, u64)> = Vec::new();
    let mut restarts = Vec::new();
    let recorder = &run.world.recorder;
    let recoveries = recorder.recovery_events().into_iter();
    let driver = recorder.driver_events().into_iter().map(|(ms, _, e)| (ms, e));
    let mut events: Vec<(u64, TraceEvent)> = recoveries.chain(driver).collect();
    events.sort_by_key(|(ms, _)| *ms);
    let mut suspended: Option<u64> = None;
    for (ms, event) in &events {
        let restart = matches!(
            event,
            TraceEvent::RecoveryStarted { .. }
                | TraceEvent::Failover { .. }
                | TraceEvent::LeaseAcquired { .. }
                | TraceEvent::JobAttached
        );
        let point = restart
            || matches!(
                event,
                TraceEvent::WorkerDead { .. }
                    | TraceEvent::Promoted { .. }
                    | TraceEvent::LeaseLost { .. }
                    | TraceEvent::DriverLost
            );
        if let TraceEvent::JobSuspended { .. } = event {
            suspended = suspended.or(Some(*ms));
        }
        if restart {
            restarts.push(*ms);
            if let Some(from) = suspended.take() {
                disturbances.push((from, *ms));
            }
        }
        if point {
            disturbances.push((*ms, *ms));
        }
    }
    disturbances.extend(suspended.map(|from| (from, end)));
    (disturbances, restarts)
}

/// What the checkers found that a story needs besides the record.
struct Judged {
    delivery: delivery::Delivery,
    logs: BTreeMap<u32, Vec<LogRecord>>,
}

fn judge(
    loaded: &Loaded,
    seed: u64,
    run: &Simulated<'_>,
    output: Output<'_>,
    lanes: &[NodeLane],
) -> (RunRecord, Judged) {
    let (world, ending) = (run.world, &run.ending);
    let cluster = &world.cluster;
    let (job, semantics) = (&cluster.job, cluster.job.semantics);
    let pipeline = loaded.pipeline();
    let finished = matches!(ending, Ending::Finished { .. });
    let files = replica_files(world);
    let copies = copies(&files);
    let logs = partition_logs(&copies, output.inputs);
    let (sink_events, checkpoints) = (&output.sink_events, world.recorder.captured_checkpoints());
    let frontier = Frontier::of(&frontier::Run {
        finished,
        fires_on_watermark: pipeline.fires_on_watermark(),
        sink: job.sink,
        checkpoints: &checkpoints,
        sink_events,
        logs: &logs,
    });
    let show = crate::plugin::shower(&*pipeline);
    let delivery = delivery::check(output.expected, output.results, semantics, &frontier, &show);
    let mut violations = delivery.violations(semantics, &show);
    violations.extend(late::check(
        output.late,
        output.results,
        output.inputs,
        &*pipeline,
        job.time,
        finished,
        &|| Bound::new(&world.recorder.source_events(), &logs, job.time, cluster.producers),
    ));
    if loaded.scenario.checks.no_late {
        violations.extend(late::unexpected(output.late));
    }
    violations.extend(transactions::check(sink_events, &completed_checkpoints(world)));
    let (boots, lost) = world.recorder.sink_losses();
    let losses = transactions::Losses { fences: &output.sink_fences, boots: &boots, lost: &lost };
    violations.extend(transactions::check_losses(&losses));
    violations.extend(log_checks(run, &logs, &copies));
    let manager_events = world.recorder.manager_events();
    violations.extend(manager::check(&manager_events, world.cluster.settings.manager_lease_ms));
    violations.extend(manager::check_durable(&manager_events, &world.recorder.job_epochs()));
    violations.extend(lease_check(run));
    violations.extend(deploy::check(&world.recorder.deploy_events()));
    violations.extend(choice_check(run));
    violations.extend(cadence_check(run));
    violations.extend(failover_check(world));
    let histories = world.recorder.leadership_histories(cluster);
    // A finished job read every partition, from a leader the store had recorded: a history
    // missing here is the watch on the store's disk gone blind, not a clean run.
    assert!(
        !finished || histories.values().all(|h| !h.versions.is_empty()),
        "a finished run's leadership records"
    );
    violations.extend(leadership::check(&histories));
    let driver_events = world.recorder.driver_events();
    let observed = driver::Observed { events: &driver_events, lanes, faults: run.applied };
    violations.extend(driver::check(&observed, driver_settings(cluster)));
    if let Some(model) = consistency_model(job, &*pipeline) {
        violations.extend(consistency::check(&checkpoints, &logs, &*model));
    }
    violations.extend(liveness(ending));
    let time = TimeRecord {
        skew_ms: skew(&logs),
        late_records: output.late.len() as u64,
        max_out_of_orderness_ms: job.time.max_out_of_orderness_ms,
        allowed_lateness_ms: pipeline.allowed_lateness_ms(),
    };
    let mut record = empty_record(loaded, seed, world);
    record.verdict = if violations.is_empty() { "pass" } else { "fail" }.to_string();
    record.output = delivery.counts.clone();
    record.violations = violations;
    record.time = time;
    (record, Judged { delivery, logs })
}

/// The stories of the offending outputs chosen by `only` and `limit` (see `explain`).
fn stories(
    loaded: &Loaded,
    world: &World,
    judged: &Judged,
    expected: &Expected,
    faults: &[FaultRecord],
    only: Option<OutputId>,
    limit: usize,
) -> Vec<faultline_reports::Story> {
    let job = &world.cluster.job;
    let chosen = crate::explain::offenses(&judged.delivery, limit, only);
    if chosen.is_empty() {
        return Vec::new();
    }
    let events = world.recorder.kept_events();
    let sink = world.sink_disk().read(SINK_LOG).map(|b| read_events_timed(&b)).unwrap_or_default();
    let chains = faultline_engine::job::JobGraph::build(&job.pipeline).chains().len() as u32;
    let pipeline = loaded.pipeline();
    let show = crate::plugin::shower(&*pipeline);
    let facts = crate::explain::Facts {
        events: &events,
        logs: &judged.logs,
        sink: &sink,
        faults,
        expected,
        semantics: job.semantics,
        sink_mode: job.sink,
        keyed_chain: chains - 1,
        parallelism: job.parallelism,
        show: &show,
    };
    chosen.into_iter().map(|o| crate::explain::tell(&facts, o)).collect()
}

/// A run's record before anything is judged: what it ran, and the trace so far.
fn empty_record(loaded: &Loaded, seed: u64, world: &World) -> RunRecord {
    let cluster = &world.cluster;
    RunRecord {
        scenario: loaded.scenario.name.clone(),
        seed,
        verdict: "pass".to_string(),
        semantics: cluster.job.semantics.as_str().to_string(),
        recovery: loaded.scenario.engine.recovery.as_str().to_string(),
        trace_hash: world.recorder.hash(),
        sim_time_ms: 0,
        wall_ms: 0.0,
        events_in: cluster.workload.events,
        output: Default::default(),
        violations: Vec::new(),
        faults: Vec::new(),
        checkpoints: CheckpointCounts {
            completed: world.recorder.checkpoints_completed().len() as u64,
            aborted: world.recorder.checkpoints_aborted(),
        },
        recoveries: Vec::new(),
        fencing: world.recorder.fencing(),
        repro: repro(loaded, seed),
        faultline_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario_hash: crate::scenario::hash(&loaded.scenario),
        invariants: judged_invariants(&cluster.job, &*loaded.pipeline()),
        time: TimeRecord::default(),
        drawn: BTreeMap::new(),
        panic: None,
        timeline: None,
        trace: Vec::new(),
    }
}

/// The checkpoint-consistency checker's model, where it applies: exactly-once runs of a
/// pipeline that gives one (the running aggregate).
fn consistency_model<'a>(
    job: &JobSpec,
    pipeline: &'a dyn Pipeline,
) -> Option<Box<dyn Fn(i64) -> Option<i64> + 'a>> {
    (job.semantics == Semantics::ExactlyOnce).then(|| pipeline.consistency_model()).flatten()
}

/// What the driver checker holds the run to.
fn driver_settings(cluster: &ClusterSpec) -> driver::Settings {
    driver::Settings {
        policy: cluster.job.driver_loss,
        heartbeat_interval_ms: cluster.settings.heartbeat_interval_ms,
        heartbeat_timeout_ms: cluster.settings.heartbeat_timeout_ms,
        manager_lease_ms: cluster.settings.manager_lease_ms,
    }
}

/// The invariants the checkers judge for `job`, in the order they run.
fn judged_invariants(job: &JobSpec, pipeline: &dyn Pipeline) -> Vec<String> {
    let mut names = delivery::invariants(job.semantics);
    names.extend(late::INVARIANTS);
    names.extend(transactions::INVARIANTS);
    names.extend(log::INVARIANTS);
    names.push(convergence::INVARIANT);
    names.extend(appends::INVARIANTS);
    names.extend(manager::INVARIANTS);
    names.extend(lease::INVARIANTS);
    names.extend(driver::INVARIANTS);
    names.extend(deploy::INVARIANTS);
    names.extend(choice::INVARIANTS);
    if job.checkpoints.interval_ms > 0 {
        names.extend(cadence::INVARIANTS);
    } else {
        names.extend(&cadence::INVARIANTS[2..]);
    }
    names.extend(failover::INVARIANTS);
    names.extend(leadership::INVARIANTS);
    if consistency_model(job, pipeline).is_some() {
        names.extend(consistency::INVARIANTS);
    }
    names.extend(LIVENESS);
    names.push(PANIC);
    names.into_iter().map(String::from).collect()
}

/// Stream time minus event time over every input record in the log.
fn skew(logs: &BTreeMap<u32, Vec<LogRecord>>) -> Skew {
    let mut skews: Vec<i64> = logs
        .values()
        .flatten()
        .filter_map(|r| match &r.payload {
            Payload::Data(e) => Some(r.stream_time_ms as i64 - e.event_time_ms as i64),
            Payload::EndOfStream => None,
        })
        .collect();
    if skews.is_empty() {
        return Skew::default();
    }
    skews.sort_unstable();
    let rank = |p: f64| skews[((p * skews.len() as f64).ceil() as usize).clamp(1, skews.len()) - 1];
    Skew { min: skews[0], p50: rank(0.5), p99: rank(0.99), max: skews[skews.len() - 1] }
}

/// The vacuity checks the scenario asks for.
fn vacuity_invariants(scenario: &crate::scenario::Scenario) -> Vec<String> {
    let checks = &scenario.checks;
    [
        (checks.require_effective_fault && !scenario.faults.is_empty(), "no-effective-fault"),
        (checks.require_recovery, "no-recovery"),
        (checks.require_checkpoint_after_recovery, "no-checkpoint-after-recovery"),
        (checks.no_late, "late-unexpected"),
    ]
    .into_iter()
    .filter(|&(on, _)| on)
    .map(|(_, name)| name.to_string())
    .collect()
}

/// The run over simulated time, from the recorder's trace, the sink's log and the reference.
/// `committed_records`: the records the checkers found committed, which the report's commits
/// must all be (an upsert's every write is one of the report's, its last the checkers').
fn timeline(
    world: &World,
    expected: &Expected,
    sim_time_ms: u64,
    (nodes, events): (Vec<NodeLane>, Vec<faultline_reports::TraceLine>),
    committed_records: usize,
) -> Timeline {
    let cluster = &world.cluster;
    let committed = world.sink_disk().read(SINK_LOG).map(|b| read_committed_timed(&b)).unwrap_or_default();
    let upserts = cluster.job.sink == faultline_engine::job::SinkMode::Idempotent;
    assert!(
        committed.len() == committed_records || upserts && committed.len() > committed_records,
        "the report reads {} commits off the sink's log, the checkers {committed_records}",
        committed.len()
    );
    crate::timeline::build(crate::timeline::RunTrace {
        sim_time_ms,
        checkpoint_interval_ms: cluster.job.checkpoints.interval_ms,
        fetched: &world.recorder.fetched(),
        committed: &committed,
        expected,
        base_time_ms: cluster.base_time_ms,
        checkpoints: world.recorder.checkpoint_spans(),
        nodes,
        events,
    })
}

/// Every event in the sink's durable log, with the simulated ms it was logged at.
fn sink_events(world: &World) -> Vec<(u64, SinkEvent)> {
    let log = world.sink_disk().contents(SINK_LOG);
    log.map(|log| events_of_frames(log.frames_within().0)).unwrap_or_default()
}

/// The run's recoveries, from the recorder's milestones, the sources' reads and the output's
/// resumptions (read off the sink's log).
fn recoveries(world: &World, faults: &[FaultRecord], resumed: &[Resumption]) -> Vec<RecoveryRecord> {
    let job = &world.cluster.job;
    let chains = faultline_engine::job::JobGraph::build(&job.pipeline).chains().len();
    let reads: Vec<(u64, u32, u64, u64)> = world
        .recorder
        .source_events()
        .into_iter()
        .filter_map(|(ms, _, e)| match e {
            TraceEvent::SourceRead { partition, offset, records, .. } => {
                Some((ms, partition, offset, records))
            }
            _ => None,
        })
        .collect();
    let seen =
        crate::recoveries::Observed { subtasks: chains * job.parallelism as usize, resumed, reads: &reads };
    crate::recoveries::recoveries(&world.recorder.recovery_events(), faults, &seen)
}

/// The checkpoints the store's history says completed.
fn completed_checkpoints(world: &World) -> BTreeSet<u64> {
    let store = &world.disks[&NodeId::new(Role::Store, 0)];
    store.list(checkpoint::HISTORY_PREFIX).iter().filter_map(|k| checkpoint::history_id(k)).collect()
}

/// Partition `p`'s leader at the end of the run, per the store's leadership record.
fn final_leader(world: &World, p: u32) -> NodeId {
    let store = &world.disks[&NodeId::new(Role::Store, 0)];
    let state = store.read(&metadata::key(p)).and_then(|b| metadata::PartitionState::decode(&b));
    NodeId::new(Role::Broker, state.map_or(world.cluster.leader_of(p), |s| s.leader))
}

fn log_file(p: u32) -> String {
    format!("partition-{p}.log")
}

/// Each partition's replicas' files at the end of the run, the final leader's first.
fn replica_files(world: &World) -> BTreeMap<u32, Vec<(NodeId, Option<FileBytes>)>> {
    let cluster = &world.cluster;
    (0..cluster.partitions())
        .map(|p| {
            let leader = final_leader(world, p);
            let others = cluster.replicas_of(p).into_iter().map(|b| NodeId::new(Role::Broker, b));
            let brokers = std::iter::once(leader).chain(others.filter(|&b| b != leader));
            let files = brokers.map(|b| (b, world.disks[&b].contents(&log_file(p))));
            (p, files.collect())
        })
        .collect()
}

/// The replicas' copies in `files`, record by record, not decoded.
fn copies(files: &BTreeMap<u32, Vec<(NodeId, Option<FileBytes>)>>) -> BTreeMap<u32, log::Copies<'_>> {
    files.iter().map(|(&p, files)| (p, copies_of(files))).collect()
}

/// One partition's copies; the final leader's file comes first.
fn copies_of(files: &[(NodeId, Option<FileBytes>)]) -> log::Copies<'_> {
    let mut all = files.iter().map(|(b, file)| copy(*b, file.as_ref()));
    let leader = all.next().expect("a partition has a leader");
    log::Copies { leader, others: all.collect() }
}

/// One replica's file, record by record (none if it has no file).
///
/// The frames are split first and the records gathered into one vector of their exact size: a
/// copy holds a record for each input, and a vector grown by doubling would fault in fresh
/// pages at every step.
fn copy(broker: NodeId, file: Option<&FileBytes>) -> log::Copy<'_> {
    let frames = file.map(|f| f.frames().0).unwrap_or_default();
    let split: Vec<(u64, Vec<&[u8]>)> = frames.into_iter().map(codec::log_record_bytes_of).collect();
    let mut records = Vec::with_capacity(split.iter().map(|(_, each)| each.len()).sum());
    for (epoch, each) in split {
        records.extend(each.into_iter().map(|r| (epoch, r)));
    }
    log::Copy { broker, records }
}

/// Each partition's log, as its leader (per the store's leadership record) holds it at the end
/// of the run: decoded from the leader's copy in `copies`, which found each record already.
///
/// A logged event equal to the input the run generated for it shares that input's key and
/// value (`inputs`, by event id) rather than copying them: the logs hold every input, so this
/// halves what judging holds in memory. An event that differs is decoded as it lies.
fn partition_logs(
    copies: &BTreeMap<u32, log::Copies<'_>>,
    inputs: &[Input],
) -> BTreeMap<u32, Vec<LogRecord>> {
    let mut by_id = vec![usize::MAX; inputs.iter().map(|i| i.event.id as usize + 1).max().unwrap_or(0)];
    for (at, input) in inputs.iter().enumerate() {
        by_id[input.event.id as usize] = at;
    }
    let known = |id: u64| by_id.get(id as usize).and_then(|&at| inputs.get(at)).map(|i| &i.event);
    copies
        .iter()
        .map(|(&p, copies)| {
            let leader = &copies.leader.records;
            (p, leader.iter().map(|(_, record)| codec::decode_log_record_sharing(record, &known)).collect())
        })
        .collect()
}

/// Checks that the run tested what it claims: a fault took effect, and a checkpoint completed
/// after every recovery when the scenario asks for it.
fn vacuity(
    scenario: &crate::scenario::Scenario,
    faults: &[FaultRecord],
    recoveries: &[RecoveryRecord],
    checkpoints: &[(u64, u64)],
) -> Vec<Violation> {
    let mut v = Vec::new();
    let checks = &scenario.checks;
    if checks.require_effective_fault && !scenario.faults.is_empty() && !faults.iter().any(|f| f.effective) {
        let detail = format!("{} faults applied, none took effect: the run tested nothing", faults.len());
        v.push(Violation { invariant: "no-effective-fault".into(), detail });
    }
    if checks.require_recovery && recoveries.is_empty() {
        let detail = format!(
            "{} faults took effect but the job never recovered",
            faults.iter().filter(|f| f.effective).count()
        );
        v.push(Violation { invariant: "no-recovery".into(), detail });
    }
    if checks.require_checkpoint_after_recovery {
        for r in recoveries {
            if !checkpoints.iter().any(|&(at, _)| at > r.recovered_at_ms) {
                let detail =
                    format!("no checkpoint completed after the recovery at {} ms", r.recovered_at_ms);
                v.push(Violation { invariant: "no-checkpoint-after-recovery".into(), detail });
            }
        }
    }
    v
}

fn liveness(ending: &Ending) -> Option<Violation> {
    match ending {
        Ending::Finished { .. } => None,
        Ending::Failed { at_ms } => Some(Violation {
            invariant: "job-failed".into(),
            detail: format!("the manager failed the job at {at_ms} ms"),
        }),
        Ending::TimedOut { at_ms } => Some(Violation {
            invariant: "liveness".into(),
            detail: format!("the job had not finished at {at_ms} ms (the liveness bound)"),
        }),
    }
}

/// The exit code a record calls for: 0 pass, 1 safety violation, 3 liveness violation only.
pub fn exit_code(record: &RunRecord) -> i32 {
    violations_exit_code(&record.violations)
}

/// The exit code of a run with `violations`: 0 without, 3 if all are liveness ones, else 1.
pub fn violations_exit_code(violations: &[Violation]) -> i32 {
    if violations.is_empty() {
        0
    } else if violations.iter().all(|v| LIVENESS.contains(&v.invariant.as_str())) {
        3
    } else {
        1
    }
}

/// The command that replays a run exactly.
pub fn repro(loaded: &Loaded, seed: u64) -> String {
    let command = loaded.registry.command();
    let mut cmd = format!("{command} run {} --seed {seed}", shell_word(&loaded.path));
    for set in &loaded.sets {
        cmd.push_str(" --set ");
        cmd.push_str(&shell_word(set));
    }
    cmd
}

fn shell_word(word: &str) -> String {
    let plain = word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
