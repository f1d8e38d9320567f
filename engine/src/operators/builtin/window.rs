//! Keyed windows over the synthetic input: tumbling and sliding (event time or count), and
//! session windows, each aggregating `count`, `sum`, `min` and `max` (see `crate::pipeline`
//! for the definitions).
//!
//! State per key:
//! - time windows: `windows`, window end → aggregate; a timer at `end + lateness` (tag = end);
//! - sessions: `sessions`, start → (end, aggregate); a timer at `end + lateness` (tag =
//!   start); merging sessions deletes their timers;
//! - count windows: `seen` → records so far; `windows`, window index → aggregate; a window
//!   fires when full, and a timer at the end of time (tag = index) fires it at the end of the
//!   input if it never filled.

use serde::{Deserialize, Serialize};

use super::{Aggregate, Synthetic};
use crate::pipeline::WindowSpec;
use crate::sdk::operator::{Ctx, Operator, Timer};
use crate::sdk::{MapState, ValueState};

/// One fired window: its end (time windows and sessions) or its number from 1 (count windows),
/// and its aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowResult {
    pub window: u64,
    pub aggregate: Aggregate,
}

const WINDOWS: MapState<u64, Aggregate> = MapState::new("windows");
const SESSIONS: MapState<u64, (u64, Aggregate)> = MapState::new("sessions");
const SEEN: ValueState<u64> = ValueState::new("seen");

pub struct WindowAggregate {
    pub window: WindowSpec,
}

type WCtx<'a> = Ctx<'a, WindowAggregate>;

impl Operator for WindowAggregate {
    type Key = u64;
    type In = Synthetic;
    type OutKey = u64;
    type Out = WindowResult;

    fn on_record(&self, key: &u64, r: Synthetic, ctx: &mut WCtx<'_>) {
        let t = ctx.timestamp().expect("a record has an event time");
        match self.window {
            WindowSpec::Tumbling { .. } | WindowSpec::Sliding { .. } => self.add_timed(t, r.value, ctx),
            WindowSpec::Session { gap_ms } => add_session(t, r.value, gap_ms, ctx),
            WindowSpec::CountTumbling { size } => add_counted(key, r.value, size, size, ctx),
            WindowSpec::CountSliding { size, slide } => add_counted(key, r.value, size, slide, ctx),
        }
    }

    fn on_timer(&self, key: &u64, timer: Timer, ctx: &mut WCtx<'_>) {
        let fired = match self.window {
            WindowSpec::Session { .. } => {
                let Some((end, aggregate)) = ctx.map(&SESSIONS).get(&timer.tag) else { return };
                ctx.map(&SESSIONS).remove(&timer.tag);
                WindowResult { window: end, aggregate }
            }
            _ => {
                let Some(aggregate) = ctx.map(&WINDOWS).get(&timer.tag) else { return };
                ctx.map(&WINDOWS).remove(&timer.tag);
                let counted = !self.window.event_time();
                WindowResult { window: if counted { timer.tag + 1 } else { timer.tag }, aggregate }
            }
        };
        ctx.emit(key, &fired);
    }

    fn event_time(&self) -> bool {
        self.window.event_time()
    }
}

impl WindowAggregate {
    fn add_timed(&self, t: u64, value: i64, ctx: &mut WCtx<'_>) {
        let lateness = ctx.allowed_lateness_ms();
        for end in self.window.ends_for(t) {
            let mut opened = false;
            ctx.map(&WINDOWS).update(&end, |acc| {
                opened = acc.is_none();
                Aggregate::fold(acc, value)
            });
            if opened {
                ctx.set_timer(end + lateness, end);
            }
        }
    }
}

/// Adds a record's `[t, t + gap)` to the key's sessions, merging every session it overlaps.
fn add_session(t: u64, value: i64, gap_ms: u64, ctx: &mut WCtx<'_>) {
    let lateness = ctx.allowed_lateness_ms();
    let (mut start, mut end) = (t, t + gap_ms);
    let mut acc = Aggregate::of(value);
    for (s, (e, other)) in ctx.map(&SESSIONS).entries() {
        if s < t + gap_ms && t < e {
            acc = acc.merge(other);
            (start, end) = (start.min(s), end.max(e));
            ctx.map(&SESSIONS).remove(&s);
            ctx.delete_timer(e + lateness, s);
        }
    }
    ctx.map(&SESSIONS).insert(&start, &(end, acc));
    ctx.set_timer(end + lateness, start);
}

/// Adds the key's next record to every count window holding it; a window that is full fires.
fn add_counted(key: &u64, value: i64, size: u64, slide: u64, ctx: &mut WCtx<'_>) {
    let i = ctx.value(&SEEN).update(|seen| seen.unwrap_or(0) + 1) - 1;
    let first = (i + 1).saturating_sub(size).div_ceil(slide);
    for n in first..=i / slide {
        let acc = ctx.map(&WINDOWS).get(&n);
        if acc.is_none() {
            ctx.set_timer(u64::MAX, n);
        }
        let acc = Aggregate::fold(acc, value);
        if i + 1 == n * slide + size {
            ctx.map(&WINDOWS).remove(&n);
            ctx.delete_timer(u64::MAX, n);
            ctx.emit(key, &WindowResult { window: n + 1, aggregate: acc });
        } else {
            ctx.map(&WINDOWS).insert(&n, &acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::Harness;

    /// Runs records `(time, value)` of key 1, then the end of time; returns `(window, [count,
    /// sum, min, max])` per output.
    fn run(window: WindowSpec, records: &[(u64, i64)]) -> Vec<(u64, [i64; 4])> {
        let mut h = Harness::new(WindowAggregate { window });
        for (i, &(t, value)) in records.iter().enumerate() {
            h.push(&1, &Synthetic { id: i as u64, kind: 0, value }, t);
        }
        h.finish();
        assert!(h.state().timers.is_empty(), "every window fired");
        let seen = crate::sdk::state::namespace("seen");
        assert!(h.state().entries.keys().all(|s| s.ns == seen), "and was cleared");
        h.outputs()
            .iter()
            .map(|(_, w)| {
                let a = w.aggregate;
                (w.window, [a.count as i64, a.sum, a.min, a.max])
            })
            .collect()
    }

    #[test]
    fn tumbling_and_sliding_windows_by_end() {
        let rs = [(1, 5), (4, 1), (6, 2)];
        assert_eq!(run(WindowSpec::Tumbling { size_ms: 5 }, &rs), [(5, [2, 6, 1, 5]), (10, [1, 2, 2, 2])]);
        let sliding = run(WindowSpec::Sliding { size_ms: 4, slide_ms: 2 }, &rs);
        let want =
            [(2, [1, 5, 5, 5]), (4, [1, 5, 5, 5]), (6, [1, 1, 1, 1]), (8, [2, 3, 1, 2]), (10, [1, 2, 2, 2])];
        assert_eq!(sliding, want);
    }

    #[test]
    fn sessions_merge_overlapping_gaps() {
        let rs = [(10, 1), (30, 2), (14, 4), (50, 8)];
        let out = run(WindowSpec::Session { gap_ms: 5 }, &rs);
        assert_eq!(out, [(19, [2, 5, 1, 4]), (35, [1, 2, 2, 2]), (55, [1, 8, 8, 8])]);
        let bridged = run(WindowSpec::Session { gap_ms: 5 }, &[(10, 1), (18, 1), (14, 1)]);
        assert_eq!(bridged, [(23, [3, 3, 1, 1])]);
    }

    #[test]
    fn count_windows_fire_when_full_and_the_rest_at_the_end() {
        let rs: Vec<(u64, i64)> = (1..=5).map(|v| (0, v)).collect();
        assert_eq!(
            run(WindowSpec::CountTumbling { size: 2 }, &rs),
            [(1, [2, 3, 1, 2]), (2, [2, 7, 3, 4]), (3, [1, 5, 5, 5])]
        );
        let sliding = run(WindowSpec::CountSliding { size: 4, slide: 2 }, &rs);
        assert_eq!(sliding, [(1, [4, 10, 1, 4]), (2, [3, 12, 3, 5]), (3, [1, 5, 5, 5])]);
    }
}
