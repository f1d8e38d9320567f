//! Keyed windows: tumbling and sliding (event time or count), and session windows, each
//! aggregating `[count, sum, min, max]` (see `crate::pipeline` for the exact definitions).
//!
//! State per key:
//! - time windows: namespace 0, sub = window end → the accumulator; a timer at
//!   `end + lateness` (tag = end) fires the window;
//! - sessions: namespace 1, sub = session start → `[end, accumulator…]`; a timer at
//!   `end + lateness` (tag = start); merging sessions deletes their timers;
//! - count windows: namespace 2, sub 0 → `[records seen]`; namespace 0, sub = window index →
//!   the accumulator; a window fires when full, and a timer at the end of time (tag = index)
//!   fires it at the end of the input if it never filled.

use crate::api::{Context, Operator};
use crate::pipeline::WindowSpec;
use crate::record::StreamRecord;
use crate::state::Timer;

use super::Acc;

const WINDOWS: u32 = 0;
const SESSIONS: u32 = 1;
const SEEN: u32 = 2;

pub struct WindowAggregate {
    pub window: WindowSpec,
}

impl Operator for WindowAggregate {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        match self.window {
            WindowSpec::Tumbling { .. } | WindowSpec::Sliding { .. } => self.add_timed(r, ctx),
            WindowSpec::Session { gap_ms } => add_session(r, gap_ms, ctx),
            WindowSpec::CountTumbling { size } => add_counted(r, size, size, ctx),
            WindowSpec::CountSliding { size, slide } => add_counted(r, size, slide, ctx),
        }
    }

    fn on_timer(&self, timer: Timer, ctx: &mut Context<'_>) {
        let (ns, id) = match self.window {
            WindowSpec::Session { .. } => (SESSIONS, None),
            WindowSpec::CountTumbling { .. } | WindowSpec::CountSliding { .. } => {
                (WINDOWS, Some(timer.tag + 1))
            }
            _ => (WINDOWS, Some(timer.tag)),
        };
        let Some(v) = ctx.get(ns, timer.tag).map(<[i64]>::to_vec) else { return };
        ctx.remove(ns, timer.tag);
        let (id, acc) = match id {
            Some(id) => (id, Acc::decode(&v)),
            None => (v[0] as u64, Acc::decode(&v[1..])),
        };
        ctx.output(ctx.key(), id, acc.values(), acc.cause);
    }

    fn event_time(&self) -> bool {
        self.window.event_time()
    }
}

impl WindowAggregate {
    fn add_timed(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let lateness = ctx.allowed_lateness_ms();
        for end in self.window.ends_for(r.event_time_ms) {
            let acc = ctx.get(WINDOWS, end).map(Acc::decode);
            if acc.is_none() {
                ctx.set_timer(end + lateness, end);
            }
            ctx.put(WINDOWS, end, Acc::fold(acc, r.value, r.id, r.cause).encode());
        }
    }
}

/// Adds a record's `[t, t + gap)` to the key's sessions, merging every session it overlaps.
fn add_session(r: &StreamRecord, gap_ms: u64, ctx: &mut Context<'_>) {
    let lateness = ctx.allowed_lateness_ms();
    let t = r.event_time_ms;
    let (mut start, mut end) = (t, t + gap_ms);
    let mut acc = Acc::first(r.value, r.id, r.cause);
    for (s, v) in ctx.entries(SESSIONS) {
        let e = v[0] as u64;
        if s < t + gap_ms && t < e {
            let other = Acc::decode(&v[1..]);
            acc = merge(acc, other);
            (start, end) = (start.min(s), end.max(e));
            ctx.remove(SESSIONS, s);
            ctx.delete_timer(e + lateness, s);
        }
    }
    let mut value = vec![end as i64];
    value.extend(acc.encode());
    ctx.put(SESSIONS, start, value);
    ctx.set_timer(end + lateness, start);
}

fn merge(a: Acc, b: Acc) -> Acc {
    let newer = if a.last_id >= b.last_id { a } else { b };
    Acc {
        count: a.count + b.count,
        sum: a.sum.wrapping_add(b.sum),
        min: a.min.min(b.min),
        max: a.max.max(b.max),
        last_id: newer.last_id,
        cause: newer.cause,
    }
}

/// Adds the key's next record to every count window holding it; a window that is full fires.
fn add_counted(r: &StreamRecord, size: u64, slide: u64, ctx: &mut Context<'_>) {
    let i = ctx.get(SEEN, 0).map_or(0, |v| v[0] as u64);
    ctx.put(SEEN, 0, vec![i as i64 + 1]);
    let first = (i + 1).saturating_sub(size).div_ceil(slide);
    for n in first..=i / slide {
        let acc = ctx.get(WINDOWS, n).map(Acc::decode);
        if acc.is_none() {
            ctx.set_timer(u64::MAX, n);
        }
        let acc = Acc::fold(acc, r.value, r.id, r.cause);
        if i + 1 == n * slide + size {
            ctx.remove(WINDOWS, n);
            ctx.delete_timer(u64::MAX, n);
            ctx.output(ctx.key(), n + 1, acc.values(), acc.cause);
        } else {
            ctx.put(WINDOWS, n, acc.encode());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{run_to_end, test_record};

    /// Runs records `(time, value)` of key 1 then the end of time through a window; returns
    /// `(id, values)` per output.
    fn run(window: WindowSpec, records: &[(u64, i64)]) -> Vec<(u64, [i64; 4])> {
        let records: Vec<StreamRecord> =
            records.iter().enumerate().map(|(i, &(t, v))| test_record(i as u64, 0, 1, t, v)).collect();
        let run = run_to_end(&WindowAggregate { window }, &records, 0);
        assert!(run.state.view().timers.is_empty(), "every window fired");
        assert!(run.state.view().entries.keys().all(|k| k.ns == SEEN), "and was cleared");
        run.outputs.iter().map(|o| (o.id.seq, o.values)).collect()
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
