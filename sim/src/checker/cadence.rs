//! The cadence checker: the coordinator triggers checkpoints at the interval the job asks for.
//!
//! Exactly-once output survives checkpoints that come back to back, or not at all until the
//! input is drained (one transaction at the end): what changes is how much a recovery replays
//! and how long a sink's transactions stay open. So the cadence is an invariant of its own,
//! read off the trace's checkpoint spans, as Flink's coordinator promises it: a checkpoint is
//! triggered once the interval has passed since the last trigger and the previous checkpoint
//! has ended, and not before — except the final one, taken as soon as the sources drain.
//!
//! - `checkpoint-cadence-lapsed`: the next trigger comes no later than `interval` after the
//!   previous trigger, or the previous checkpoint's end if that is later, plus two of the
//!   coordinator's ticks. A stretch with a disturbance — a fault, a recovery, a failover, a
//!   lease changing hands, a suspended job — is judged from its end (plus a margin for the
//!   redeployment), since a recovery restarts the interval and a job not deployed takes none.
//!   The first trigger is judged from the sources' first read.
//! - `checkpoint-id-reused`: no checkpoint id that was issued is triggered again, across
//!   managers too. A new leader resumes the count from the counter its predecessors wrote before
//!   sending each checkpoint's barriers, so an id whose checkpoint was aborted is never taken
//!   again (FLINK-8086: transactional ids reused after a double restore, and a sink that takes
//!   the second for the first). An id counts as issued once a subtask's acknowledgement of it
//!   was counted, or it completed; a trigger whose counter write never landed (its manager
//!   lost the lease first) sent no barrier, and its id is rightly free.
//! - `checkpoint-cadence-early`: a trigger sooner than `interval` after a completed checkpoint's
//!   trigger is the final one; it comes once per stretch between recoveries, failovers and
//!   lease changes (a final checkpoint that aborts is retried at once, after its abort).
//! - `checkpoint-timeout-overrun`: a checkpoint ends by its timeout, plus two ticks: by then
//!   every subtask acknowledged it (what is left, the metadata's write, is the store's), or
//!   the coordinator aborted it, as Flink's does (`execution.checkpointing.timeout`). A stuck
//!   checkpoint that no one ends holds the next one back for good, and with it every
//!   transaction the sink has open. Not judged while the manager could not act on it: a fault
//!   touching a manager or the store, a recovery, a failover, a lease changing hands, a worker
//!   lost, a suspended job.

use faultline_reports::{CheckpointSpan, Violation};

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 4] = [
    "checkpoint-cadence-lapsed",
    "checkpoint-cadence-early",
    "checkpoint-id-reused",
    "checkpoint-timeout-overrun",
];

/// The coordinator's tick (`manager::TICK`): a trigger falls on the first tick past its time.
const TICK_MS: u64 = 10;

/// What the cadence is held to.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub interval_ms: u64,
    /// The checkpoint timeout.
    pub timeout_ms: u64,
    /// How long after a disturbance ends the job may still be redeploying.
    pub margin_ms: u64,
}

/// What the checker reads of a run.
pub struct Observed<'a> {
    /// Every checkpoint triggered, in trigger order.
    pub spans: &'a [CheckpointSpan],
    /// When the sources first read a record, if they did.
    pub first_read_ms: Option<u64>,
    /// Stretches in which the cadence is not judged, as (from, to) in simulated ms: faults until
    /// they heal, suspensions until the job resumes, and point events (a recovery, a failover,
    /// a lease acquired or lost, a worker declared dead).
    pub disturbances: &'a [(u64, u64)],
    /// Recoveries, failovers and lease changes: each begins a new stretch for the early rule.
    pub restarts: &'a [u64],
    /// Each acknowledgement the coordinators counted: (simulated ms, checkpoint id).
    pub acks: &'a [(u64, u64)],
    /// Stretches in which a manager could not act on a checkpoint in flight, as (from, to):
    /// faults touching a manager or the store until they heal, and the point events of
    /// `disturbances` (not the other faults: a slow subtask or sink is what the timeout is for).
    pub manager_disturbances: &'a [(u64, u64)],
}

/// Checks the run's checkpoint triggers: their ids, and their cadence when the job takes
/// periodic checkpoints (`interval_ms` > 0).
pub fn check(observed: &Observed<'_>, settings: Settings) -> Vec<Violation> {
    let mut v = Vec::new();
    if settings.interval_ms > 0 {
        push(&mut v, INVARIANTS[0], &lapses(observed, settings));
        push(&mut v, INVARIANTS[1], &early(observed, settings));
    }
    push(&mut v, INVARIANTS[2], &reused(observed.spans, observed.acks));
    push(&mut v, INVARIANTS[3], &overruns(observed, settings));
    v
}

/// Checkpoints still waiting for acknowledgements past their timeout (plus two ticks), with
/// nothing in the way of the coordinator that should have aborted them.
fn overruns(o: &Observed<'_>, s: Settings) -> Vec<String> {
    let mut out = Vec::new();
    for span in o.spans {
        let Some(ended) = span.ended_at_ms else { continue };
        let acked =
            o.acks.iter().filter(|&&(at, id)| id == span.id && at >= span.started_at_ms && at <= ended);
        // A completed checkpoint left the coordinator's hands with its last acknowledgement.
        let settled = match span.outcome.as_str() {
            "completed" => acked.map(|&(at, _)| at).max().unwrap_or(ended),
            _ => ended,
        };
        let deadline = span.started_at_ms + s.timeout_ms + 2 * TICK_MS;
        if settled <= deadline
            || disturbed_until(o.manager_disturbances, span.started_at_ms, deadline).is_some()
        {
            continue;
        }
        out.push(format!(
            "checkpoint {} triggered at {} ms was still waiting for acknowledgements at {deadline} ms (timeout {} \
             ms); it {} at {ended} ms",
            span.id, span.started_at_ms, s.timeout_ms, span.outcome
        ));
    }
    out
}

/// Checkpoint ids triggered again after they were issued.
fn reused(spans: &[CheckpointSpan], acks: &[(u64, u64)]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, again) in spans.iter().enumerate() {
        let earlier = spans[..i].iter().filter(|s| s.id == again.id);
        let mut issued = earlier.filter(|s| {
            let acked =
                acks.iter().any(|&(at, id)| id == s.id && at >= s.started_at_ms && at <= again.started_at_ms);
            acked || s.outcome == "completed"
        });
        if let Some(first) = issued.next_back() {
            out.push(format!(
                "checkpoint {} triggered at {} ms ({}) and again at {} ms",
                again.id, first.started_at_ms, first.outcome, again.started_at_ms
            ));
        }
    }
    out
}

/// The end of the last disturbance that overlaps `[from, to]`, if any.
fn disturbed_until(disturbances: &[(u64, u64)], from: u64, to: u64) -> Option<u64> {
    disturbances.iter().filter(|&&(a, b)| a <= to && b >= from).map(|&(_, b)| b).max()
}

/// Triggers that came later than the interval allows after their predecessor (or after the
/// sources' first read, for the first).
fn lapses(o: &Observed<'_>, s: Settings) -> Vec<String> {
    let mut out = Vec::new();
    // The first trigger: due an interval after the sources began, once the job is deployed.
    let previous = o.first_read_ms.map(|r| (r, "the sources' first read".to_string()));
    let pairs = o.spans.windows(2).filter_map(|w| {
        let p = &w[0];
        let end = p.ended_at_ms?;
        Some(((p.started_at_ms, end, format!("checkpoint {}", p.id)), &w[1]))
    });
    let first = previous.zip(o.spans.first()).map(|((r, what), n)| ((r, r, what), n));
    for ((started, ended, what), next) in first.into_iter().chain(pairs) {
        let mut due = ended.max(started + s.interval_ms);
        if let Some(until) = disturbed_until(o.disturbances, started, next.started_at_ms) {
            if until >= next.started_at_ms {
                continue; // disturbed right up to the trigger
            }
            due = due.max(until + s.margin_ms + s.interval_ms);
        }
        let deadline = due + 2 * TICK_MS;
        if next.started_at_ms > deadline {
            out.push(format!(
                "checkpoint {} triggered at {} ms, due by {deadline} ms (after {what}, triggered at {started} ms and \
                 ended at {ended} ms; interval {} ms)",
                next.id, next.started_at_ms, s.interval_ms
            ));
        }
    }
    out
}

/// Triggers sooner than the interval after a completed checkpoint's trigger, past the first
/// of its stretch.
fn early(o: &Observed<'_>, s: Settings) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen_in_stretch: Option<usize> = None;
    for (i, w) in o.spans.windows(2).enumerate() {
        let (p, n) = (&w[0], &w[1]);
        if o.restarts.iter().any(|&r| r > p.started_at_ms && r <= n.started_at_ms) {
            seen_in_stretch = None;
        }
        let soon = n.started_at_ms + 1 < p.started_at_ms + s.interval_ms;
        if !soon || p.outcome != "completed" {
            continue;
        }
        if let Some(first) = seen_in_stretch {
            out.push(format!(
                "checkpoint {} triggered at {} ms, {} ms after checkpoint {} completed's trigger (interval {} ms); \
                 the final one was already checkpoint {}",
                n.id,
                n.started_at_ms,
                n.started_at_ms - p.started_at_ms,
                p.id,
                s.interval_ms,
                o.spans[first + 1].id
            ));
        } else {
            seen_in_stretch = Some(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: Settings = Settings { interval_ms: 200, timeout_ms: 500, margin_ms: 300 };

    fn span(id: u64, started: u64, ended: u64, outcome: &str) -> CheckpointSpan {
        CheckpointSpan {
            id,
            started_at_ms: started,
            ended_at_ms: Some(ended),
            outcome: outcome.into(),
            state_bytes: None,
        }
    }

    /// Triggers every 200 ms, each checkpoint taking 80, then the final one right after the
    /// last completes.
    fn steady() -> Vec<CheckpointSpan> {
        let mut spans: Vec<CheckpointSpan> =
            (0..5).map(|i| span(i + 1, 110 + 200 * i, 190 + 200 * i, "completed")).collect();
        spans.push(span(6, 1000, 1090, "completed"));
        spans
    }

    fn observed<'a>(
        spans: &'a [CheckpointSpan],
        disturbances: &'a [(u64, u64)],
        restarts: &'a [u64],
    ) -> Observed<'a> {
        Observed {
            spans,
            first_read_ms: Some(100),
            disturbances,
            restarts,
            acks: &[(320, 2)],
            manager_disturbances: &[],
        }
    }

    fn names(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.invariant.as_str()).collect()
    }

    #[test]
    fn a_steady_cadence_with_its_final_checkpoint_passes() {
        assert!(check(&observed(&steady(), &[], &[]), SETTINGS).is_empty());
    }

    #[test]
    fn a_slow_checkpoint_delays_the_next_without_a_lapse() {
        let spans = vec![span(1, 110, 700, "completed"), span(2, 710, 790, "completed")];
        let patient = Settings { timeout_ms: 2000, ..SETTINGS };
        assert!(check(&observed(&spans, &[], &[]), patient).is_empty());
    }

    #[test]
    fn checkpoints_only_at_the_drain_are_caught() {
        let spans = vec![span(1, 2000, 2090, "completed")];
        let v = check(&observed(&spans, &[], &[]), SETTINGS);
        assert_eq!(names(&v), ["checkpoint-cadence-lapsed"], "{v:?}");
        assert!(v[0].detail.contains("due by 320 ms"), "{}", v[0].detail);
    }

    #[test]
    fn a_lapse_within_a_disturbance_is_judged_from_its_end() {
        let spans = vec![span(1, 110, 190, "aborted"), span(2, 1410, 1480, "completed")];
        // A recovery from 300 to 900: the next trigger is due by 900 + 300 + 200 (+ ticks).
        assert!(check(&observed(&spans, &[(300, 900)], &[300]), SETTINGS).is_empty());
        let late = vec![span(1, 110, 190, "aborted"), span(2, 1500, 1580, "completed")];
        let v = check(&observed(&late, &[(300, 500)], &[300]), SETTINGS);
        assert_eq!(names(&v), ["checkpoint-cadence-lapsed"], "{v:?}");
    }

    #[test]
    fn an_id_triggered_twice_is_caught() {
        let spans = vec![
            span(1, 110, 190, "completed"),
            span(2, 310, 330, "aborted"),
            span(2, 400, 480, "completed"),
        ];
        let v = check(&observed(&spans, &[(300, 340)], &[340]), SETTINGS);
        assert_eq!(names(&v), ["checkpoint-id-reused"], "{v:?}");
        assert!(
            v[0].detail.contains("checkpoint 2 triggered at 310 ms (aborted) and again at 400 ms"),
            "{}",
            v[0].detail
        );
        // Triggered, never acknowledged (its counter write did not land), then taken again.
        let spans = vec![
            span(1, 110, 190, "completed"),
            span(3, 310, 330, "unfinished"),
            span(3, 400, 480, "completed"),
        ];
        assert!(check(&observed(&spans, &[(300, 340)], &[340]), SETTINGS).is_empty());
    }

    #[test]
    fn a_checkpoint_past_its_timeout_is_aborted() {
        // Aborted at the first tick past its 500 ms, then the next one.
        let spans = vec![span(1, 110, 620, "aborted"), span(2, 630, 700, "completed")];
        assert!(check(&observed(&spans, &[(100, 700)], &[]), SETTINGS).is_empty());
        // Never aborted: it completed once the slow subtask answered, 900 ms on.
        let stuck = vec![span(1, 110, 1010, "completed"), span(2, 1020, 1100, "completed")];
        let acks = [(1000, 1)];
        let o = Observed { acks: &acks, ..observed(&stuck, &[(100, 1000)], &[]) };
        let v = check(&o, SETTINGS);
        assert_eq!(names(&v), ["checkpoint-timeout-overrun"], "{v:?}");
        assert!(v[0].detail.contains("checkpoint 1 triggered at 110 ms was still waiting"), "{v:?}");
        // Acknowledged in time, its metadata slow to write: the store's business.
        let acks = [(400, 1)];
        assert!(
            check(&Observed { acks: &acks, ..observed(&stuck, &[(100, 1000)], &[]) }, SETTINGS).is_empty()
        );
        // The manager paused meanwhile: it could not abort.
        let paused = [(300, 900)];
        let o = Observed { manager_disturbances: &paused, ..observed(&stuck, &[(100, 1000)], &[]) };
        assert!(check(&o, SETTINGS).is_empty());
    }

    #[test]
    fn back_to_back_checkpoints_are_caught() {
        let spans: Vec<CheckpointSpan> =
            (0..5).map(|i| span(i + 1, 110 + 90 * i, 190 + 90 * i, "completed")).collect();
        let v = check(&observed(&spans, &[], &[]), SETTINGS);
        assert_eq!(names(&v), ["checkpoint-cadence-early"], "{v:?}");
        assert!(v[0].detail.starts_with("3 times"), "{}", v[0].detail);
    }

    #[test]
    fn a_final_checkpoint_retried_after_an_abort_or_a_recovery_passes() {
        let mut spans = steady();
        spans[5].outcome = "aborted".into();
        spans.push(span(7, 1100, 1150, "completed"));
        assert!(check(&observed(&spans, &[], &[]), SETTINGS).is_empty());
        // A recovery after the final checkpoint: the sources drain again, and a second final.
        let mut spans = steady();
        spans.push(span(7, 1300, 1340, "completed"));
        spans.push(span(8, 1350, 1400, "completed"));
        assert!(check(&observed(&spans, &[(1200, 1250)], &[1200]), SETTINGS).is_empty());
    }
}
