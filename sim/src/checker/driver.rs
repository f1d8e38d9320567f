//! The driver checker: a silent driver is declared lost, and the job then does what its
//! `driver_loss` policy says.
//!
//! When the driver was down is the simulator's own record (the node lanes of its crashes and
//! pauses), never the engine's: a manager that stops watching its driver is caught by the
//! silence it failed to see. Invariants:
//! - `driver-loss-undeclared`: a driver silent for the heartbeat timeout plus a margin, while
//!   one manager held its lease throughout and was up, with no link fault on the driver's
//!   links meanwhile, and with a job that manager still checkpointed after the margin, is
//!   declared lost by that manager (`DriverLost`) after the driver last attached and before
//!   the margin runs out;
//! - `driver-loss-policy`: under `reattach` the job is never suspended; under `restart-job` a
//!   manager that declared the driver lost while the job was not suspended triggers no
//!   checkpoint before the job is suspended (`JobSuspended`), recovered, or the driver
//!   attaches again, or the manager's lease changes: a suspended job does not checkpoint.

use faultline_engine::cluster::{NodeId, Role};
use faultline_engine::job::DriverLoss;
use faultline_engine::observe::TraceEvent;
use faultline_reports::{FaultRecord, NodeLane, Violation};

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 2] = ["driver-loss-undeclared", "driver-loss-policy"];

/// Beyond the heartbeat timeout, how long a manager may take to see its driver silent: the
/// driver's last beat may be in flight (latency), and the manager looks once a tick.
const MARGIN_MS: u64 = 50;

/// What the engine promised about its driver.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub policy: DriverLoss,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub manager_lease_ms: u64,
}

impl Settings {
    /// How long after the driver fell silent a steady leader has declared it lost.
    fn deadline_ms(&self) -> u64 {
        self.heartbeat_timeout_ms + 2 * self.heartbeat_interval_ms + MARGIN_MS
    }
}

/// What the run showed: the driver and manager events in trace order (`Recorder::driver_events`),
/// every node's down and paused intervals, and the faults injected.
pub struct Observed<'a> {
    pub events: &'a [(u64, NodeId, TraceEvent)],
    pub lanes: &'a [NodeLane],
    pub faults: &'a [FaultRecord],
}

/// Judges the driver-loss protocol.
pub fn check(run: &Observed<'_>, settings: Settings) -> Vec<Violation> {
    assert!(settings.heartbeat_timeout_ms > settings.heartbeat_interval_ms, "a timeout within one beat");
    assert!(settings.manager_lease_ms > 0, "a lease of no time");
    let mut v = Vec::new();
    push(&mut v, "driver-loss-undeclared", &undeclared(run, settings));
    push(&mut v, "driver-loss-policy", &policy_broken(run.events, settings.policy));
    v
}

/// Silences of the driver that a steady leader should have declared and did not.
fn undeclared(run: &Observed<'_>, settings: Settings) -> Vec<String> {
    let driver = NodeId::new(Role::Driver, 0).name();
    let mut out = Vec::new();
    for (from, to) in silences(run.lanes, &driver) {
        let due = from + settings.deadline_ms();
        if to <= due || link_faulted(run.faults, &driver, from, due) {
            continue;
        }
        let Some(leader) = steady_leader(run, settings.manager_lease_ms, from, due) else { continue };
        if !job_running(run.events, leader, from, due) {
            continue;
        }
        let attached = last_attach(run.events, from).expect("a running job was submitted");
        let declared = run.events.iter().any(|&(ms, node, ref e)| {
            node == leader && matches!(e, TraceEvent::DriverLost) && (attached..=due).contains(&ms)
        });
        if !declared {
            out.push(format!(
                "the driver was silent from {from} ms to {to} ms; {} led throughout and had not \
                 declared it lost by {due} ms",
                leader.name()
            ));
        }
    }
    out
}

/// The driver's intervals down or paused, adjacent ones merged.
fn silences(lanes: &[NodeLane], driver: &str) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for lane in lanes.iter().filter(|l| l.node == driver) {
        for i in &lane.intervals {
            assert!(i.from_ms <= i.to_ms, "an interval that ends before it starts");
            match out.last_mut() {
                Some(last) if last.1 >= i.from_ms => last.1 = last.1.max(i.to_ms),
                _ => out.push((i.from_ms, i.to_ms)),
            }
        }
    }
    out
}

/// Whether a job was submitted by `from` and `leader` still ran it after `until`: it triggered
/// a checkpoint then. (The driver traces the job's end only when it hears of it, so a job that
/// ended while the driver was down shows no end until the driver returns.)
fn job_running(events: &[(u64, NodeId, TraceEvent)], leader: NodeId, from: u64, until: u64) -> bool {
    let submitted = events.iter().any(|(ms, _, e)| *ms <= from && matches!(e, TraceEvent::JobSubmitted));
    let checkpointing = events.iter().any(|&(ms, node, ref e)| {
        node == leader && ms > until && matches!(e, TraceEvent::CheckpointTriggered { .. })
    });
    submitted && checkpointing
}

/// When the driver last submitted or attached, at or before `at`.
fn last_attach(events: &[(u64, NodeId, TraceEvent)], at: u64) -> Option<u64> {
    let attaches = events
        .iter()
        .filter(|(ms, _, e)| *ms <= at && matches!(e, TraceEvent::JobSubmitted | TraceEvent::JobAttached));
    attaches.map(|(ms, _, _)| *ms).max()
}

/// Whether a link fault on one of the driver's links overlapped `[from, until]`: a beat then
/// may have been delayed or lost, so the silence the manager saw is not the crash's alone.
fn link_faulted(faults: &[FaultRecord], driver: &str, from: u64, until: u64) -> bool {
    const LINK: [&str; 4] = ["clog", "partition", "loss", "latency"];
    faults.iter().any(|f| {
        let on_driver = f.target == driver || f.peer.as_deref().is_none_or(|p| p == driver);
        let healed = f.healed_at_ms.unwrap_or(u64::MAX);
        LINK.contains(&f.action.as_str()) && on_driver && f.at_ms <= until && healed >= from
    })
}

/// The manager that held one lease without a break over `[from - margin, until]` and was up
/// all along, if one did.
fn steady_leader(run: &Observed<'_>, lease_ms: u64, from: u64, until: u64) -> Option<NodeId> {
    let since = from.saturating_sub(MARGIN_MS);
    let mut managers: Vec<NodeId> =
        run.events.iter().map(|e| e.1).filter(|n| n.role == Role::Manager).collect();
    managers.sort_by_key(|n| n.index);
    managers.dedup();
    managers.into_iter().find(|&m| {
        up_throughout(run.lanes, &m.name(), since, until)
            && leased_throughout(run.events, m, lease_ms, since, until)
    })
}

fn up_throughout(lanes: &[NodeLane], node: &str, from: u64, until: u64) -> bool {
    let lane = lanes.iter().find(|l| l.node == node);
    lane.is_none_or(|l| l.intervals.iter().all(|i| i.to_ms < from || i.from_ms > until))
}

/// Whether `m`'s accepted lease writes of one lease epoch kept its term unbroken over
/// `[from, until]`: a grant before `from`, each renewal landing before the term it extends
/// ran out, and no `LeaseLost` between.
fn leased_throughout(
    events: &[(u64, NodeId, TraceEvent)],
    m: NodeId,
    lease_ms: u64,
    from: u64,
    until: u64,
) -> bool {
    let mine = events.iter().filter(|(ms, node, _)| *node == m && *ms <= until);
    // (lease, term end) of the tenure running at each point.
    let mut term: Option<(u64, u64)> = None;
    let mut covered_from = None;
    for &(ms, _, ref event) in mine {
        match *event {
            TraceEvent::LeaseGranted { lease, sent_ms } => {
                term = match term {
                    Some((l, end)) if l == lease && ms < end => Some((l, end.max(sent_ms + lease_ms))),
                    _ => {
                        covered_from = Some(ms);
                        Some((lease, sent_ms + lease_ms))
                    }
                };
            }
            TraceEvent::LeaseLost { .. } => (term, covered_from) = (None, None),
            _ => {}
        }
        if term.is_some_and(|(_, end)| end <= ms) {
            (term, covered_from) = (None, None);
        }
    }
    let held_since = covered_from.is_some_and(|since| since <= from);
    held_since && term.is_some_and(|(_, end)| end > until)
}

/// Suspensions the policy forbids, and losses under `restart-job` after which the manager
/// went on checkpointing the job as if it ran.
fn policy_broken(events: &[(u64, NodeId, TraceEvent)], policy: DriverLoss) -> Vec<String> {
    let mut out = Vec::new();
    let mut suspended = false;
    // A loss under restart-job not yet answered: (ms, manager).
    let mut unanswered: Option<(u64, NodeId)> = None;
    for &(ms, node, ref event) in events {
        match (event, policy) {
            (TraceEvent::JobSuspended { epoch }, DriverLoss::Reattach) => out.push(format!(
                "{} suspended the job (epoch {epoch}) at {ms} ms under driver_loss = reattach",
                node.name()
            )),
            (TraceEvent::JobSuspended { .. }, DriverLoss::RestartJob) => {
                (suspended, unanswered) = (true, None)
            }
            (TraceEvent::JobAttached | TraceEvent::JobSubmitted, _) => {
                (suspended, unanswered) = (false, None)
            }
            (TraceEvent::DriverLost, DriverLoss::RestartJob) if !suspended => {
                unanswered = unanswered.or(Some((ms, node)));
            }
            (
                TraceEvent::RecoveryStarted { .. }
                | TraceEvent::LeaseAcquired { .. }
                | TraceEvent::LeaseLost { .. },
                _,
            ) if unanswered.is_some_and(|(_, m)| m == node) => unanswered = None,
            (TraceEvent::CheckpointTriggered { checkpoint }, _) => {
                if let Some((lost, _)) = unanswered.filter(|&(_, m)| m == node) {
                    out.push(format!(
                        "{} declared the driver lost at {lost} ms under driver_loss = restart-job, \
                         and triggered checkpoint {checkpoint} at {ms} ms without suspending the job",
                        node.name()
                    ));
                    unanswered = None;
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_reports::NodeInterval;

    const A: NodeId = NodeId { role: Role::Manager, index: 0 };
    const B: NodeId = NodeId { role: Role::Manager, index: 1 };
    const DRIVER: NodeId = NodeId { role: Role::Driver, index: 0 };

    fn settings(policy: DriverLoss) -> Settings {
        Settings { policy, heartbeat_interval_ms: 50, heartbeat_timeout_ms: 300, manager_lease_ms: 500 }
    }

    /// Manager `m` renews lease 1 every 100 ms from 0 to `until`.
    fn renewals(m: NodeId, until: u64) -> Vec<(u64, NodeId, TraceEvent)> {
        (0..=until / 100)
            .map(|i| (i * 100 + 2, m, TraceEvent::LeaseGranted { lease: 1, sent_ms: i * 100 }))
            .collect()
    }

    /// Manager `m` triggers a checkpoint every 100 ms from `from` to `until`.
    fn checkpoints(m: NodeId, from: u64, until: u64) -> Vec<(u64, NodeId, TraceEvent)> {
        (from / 100..=until / 100)
            .map(|i| (i * 100 + 7, m, TraceEvent::CheckpointTriggered { checkpoint: i }))
            .collect()
    }

    /// A run led by A throughout, the job submitted at 5 ms and checkpointed to 3 s, and
    /// `more` events besides.
    fn history(more: &[(u64, NodeId, TraceEvent)]) -> Vec<(u64, NodeId, TraceEvent)> {
        let mut events = renewals(A, 3000);
        events.extend(checkpoints(A, 0, 3000));
        events.push((5, DRIVER, TraceEvent::JobSubmitted));
        events.extend_from_slice(more);
        events.sort_by_key(|e| e.0);
        events
    }

    fn driver_down(from_ms: u64, to_ms: u64) -> Vec<NodeLane> {
        let interval = NodeInterval { from_ms, to_ms, state: "down".into() };
        vec![NodeLane { node: DRIVER.name(), role: "driver".into(), intervals: vec![interval] }]
    }

    fn judge(events: &[(u64, NodeId, TraceEvent)], lanes: &[NodeLane], policy: DriverLoss) -> Vec<String> {
        let run = Observed { events, lanes, faults: &[] };
        check(&run, settings(policy)).into_iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_declared_loss_passes_and_a_silence_nobody_declared_fails() {
        let lanes = driver_down(400, 1400);
        let declared = history(&[(710, A, TraceEvent::DriverLost), (1450, DRIVER, TraceEvent::JobAttached)]);
        assert!(judge(&declared, &lanes, DriverLoss::Reattach).is_empty());
        let silent = history(&[(1450, DRIVER, TraceEvent::JobAttached)]);
        assert_eq!(judge(&silent, &lanes, DriverLoss::Reattach), ["driver-loss-undeclared"]);
        // Declared, but only after the deadline (400 + 300 + 100 + 50 ms).
        let late = history(&[(851, A, TraceEvent::DriverLost)]);
        assert_eq!(judge(&late, &lanes, DriverLoss::Reattach), ["driver-loss-undeclared"]);
    }

    #[test]
    fn a_silence_is_not_judged_without_a_steady_leader_or_when_short_or_on_a_faulted_link() {
        let silent = history(&[]);
        // Too short to be due.
        assert!(judge(&silent, &driver_down(400, 800), DriverLoss::Reattach).is_empty());
        // A's lease lapsed within the window: renewals stop at 300 ms, so the term ends at 800.
        let mut lapsed = renewals(A, 300);
        lapsed.extend(checkpoints(A, 0, 300));
        lapsed.extend(checkpoints(B, 1000, 3000));
        lapsed.push((5, DRIVER, TraceEvent::JobSubmitted));
        lapsed.sort_by_key(|e| e.0);
        assert!(judge(&lapsed, &driver_down(400, 1400), DriverLoss::Reattach).is_empty());
        // A paused meanwhile.
        let mut lanes = driver_down(400, 1400);
        let pause = NodeInterval { from_ms: 500, to_ms: 600, state: "paused".into() };
        lanes.push(NodeLane { node: A.name(), role: "manager".into(), intervals: vec![pause] });
        assert!(judge(&silent, &lanes, DriverLoss::Reattach).is_empty());
        // A link fault on the driver's links.
        let clog = FaultRecord {
            at_ms: 350,
            class: "network".into(),
            target: DRIVER.name(),
            peer: Some(A.name()),
            action: "clog".into(),
            restart_after_ms: None,
            effective: true,
            healed_at_ms: Some(450),
            mid_checkpoint: false,
        };
        let run = Observed { events: &silent, lanes: &driver_down(400, 1400), faults: &[clog] };
        assert!(check(&run, settings(DriverLoss::Reattach)).is_empty());
        // The job ended before the loss was due: no checkpoint after it.
        let mut ended = renewals(A, 3000);
        ended.extend(checkpoints(A, 0, 800));
        ended.push((5, DRIVER, TraceEvent::JobSubmitted));
        ended.sort_by_key(|e| e.0);
        assert!(judge(&ended, &driver_down(400, 1400), DriverLoss::Reattach).is_empty());
    }

    #[test]
    fn a_loss_declared_before_the_driver_last_attached_does_not_count() {
        // A loss at 200 ms, the driver back at 250 ms: the silence from 400 ms is a new one.
        let stale = history(&[(200, A, TraceEvent::DriverLost), (250, DRIVER, TraceEvent::JobAttached)]);
        assert_eq!(judge(&stale, &driver_down(400, 1400), DriverLoss::Reattach), ["driver-loss-undeclared"]);
    }

    #[test]
    fn a_takeover_within_the_window_is_not_a_steady_leader() {
        // A's last renewal is sent at 200 ms, so its term ends at 700; B's starts at 702.
        let mut events = renewals(A, 200);
        events.extend(
            renewals(B, 3000)
                .into_iter()
                .filter(|e| e.0 > 700)
                .map(|(ms, n, _)| (ms, n, TraceEvent::LeaseGranted { lease: 2, sent_ms: ms - 2 })),
        );
        events.extend(checkpoints(A, 0, 600));
        events.extend(checkpoints(B, 800, 3000));
        events.push((5, DRIVER, TraceEvent::JobSubmitted));
        events.sort_by_key(|e| e.0);
        assert!(judge(&events, &driver_down(400, 1400), DriverLoss::Reattach).is_empty());
    }

    #[test]
    fn reattach_never_suspends() {
        let lanes = driver_down(400, 1400);
        let suspended =
            history(&[(710, A, TraceEvent::DriverLost), (712, A, TraceEvent::JobSuspended { epoch: 2 })]);
        assert_eq!(judge(&suspended, &lanes, DriverLoss::Reattach), ["driver-loss-policy"]);
        assert!(judge(&suspended, &lanes, DriverLoss::RestartJob).is_empty());
    }

    #[test]
    fn a_job_suspended_for_its_driver_does_not_checkpoint() {
        let lanes = driver_down(400, 1400);
        // A declares the loss at 710 ms and goes on checkpointing: not suspended.
        let ran_on = history(&[(710, A, TraceEvent::DriverLost)]);
        assert_eq!(judge(&ran_on, &lanes, DriverLoss::RestartJob), ["driver-loss-policy"]);
        assert!(judge(&ran_on, &lanes, DriverLoss::Reattach).is_empty());
        // Suspended, then resumed by the driver's return: checkpoints resume with it.
        let mut suspended = renewals(A, 3000);
        suspended.extend(checkpoints(A, 0, 700));
        suspended.extend(checkpoints(A, 1500, 3000));
        suspended.extend([
            (5, DRIVER, TraceEvent::JobSubmitted),
            (710, A, TraceEvent::DriverLost),
            (715, A, TraceEvent::JobSuspended { epoch: 2 }),
            (1450, DRIVER, TraceEvent::JobAttached),
        ]);
        suspended.sort_by_key(|e| e.0);
        assert!(judge(&suspended, &lanes, DriverLoss::RestartJob).is_empty());
        // A loss once the job ended: nothing follows it.
        let mut ended = renewals(A, 3000);
        ended.extend(checkpoints(A, 0, 600));
        ended.extend([(5, DRIVER, TraceEvent::JobSubmitted), (710, A, TraceEvent::DriverLost)]);
        ended.sort_by_key(|e| e.0);
        assert!(judge(&ended, &lanes, DriverLoss::RestartJob).is_empty());
    }
}
