//! Two-stream joins on the key (synthetic input: kind 0 is the left stream, kind 1 the right),
//! written against the public operator API. Each joined pair is one output: id `(left event
//! id, right event id)`, values `[key, left value, right value, right time − left time]`, the
//! cause of the pair's record with the greater event id.
//!
//! - **Window join** (`window-join`): pairs in the same tumbling window, emitted when the window
//!   fires. State per key: namespace 0 (left) or 1 (right), sub = event id → `[value, time,
//!   window end, producer, seq]`; a timer at `end + lateness` (tag = end).
//! - **Interval join** (`interval-join`): pairs whose times lie within `bound` of each other,
//!   emitted as soon as the second of the two arrives. State as above (without the window);
//!   each buffered record leaves at `time + bound + lateness + 1`, once no non-late partner can
//!   arrive any more.

use crate::api::{Context, Operator};
use crate::record::{Cause, StreamRecord};
use crate::state::Timer;

use super::{cause_of, cause_values};

/// A buffered record: `[value, time, window end, producer, seq]`.
fn buffered(r: &StreamRecord, end: u64) -> Vec<i64> {
    let [producer, seq] = cause_values(r.cause);
    vec![r.value, r.event_time_ms as i64, end as i64, producer, seq]
}

/// Emits the pair of `left` and `right` (each `(event id, buffered values)`).
fn pair(ctx: &mut Context<'_>, left: (u64, &[i64]), right: (u64, &[i64])) {
    let cause: Cause = if left.0 > right.0 { cause_of(&left.1[3..]) } else { cause_of(&right.1[3..]) };
    let values = [ctx.key() as i64, left.1[0], right.1[0], right.1[1] - left.1[1]];
    ctx.output(left.0, right.0, values, cause);
}

fn side(r: &StreamRecord) -> u32 {
    assert!(r.kind <= 1, "a join reads two streams, kinds 0 and 1, not {}", r.kind);
    u32::from(r.kind)
}

pub struct WindowJoin {
    pub size_ms: u64,
}

impl Operator for WindowJoin {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let t = r.event_time_ms;
        let end = t - t % self.size_ms + self.size_ms;
        ctx.put(side(r), r.id, buffered(r, end));
        ctx.set_timer(end + ctx.allowed_lateness_ms(), end);
    }

    fn on_timer(&self, timer: Timer, ctx: &mut Context<'_>) {
        let in_window = |ctx: &Context<'_>, ns| -> Vec<(u64, Vec<i64>)> {
            ctx.entries(ns).into_iter().filter(|(_, v)| v[2] as u64 == timer.tag).collect()
        };
        let (lefts, rights) = (in_window(ctx, 0), in_window(ctx, 1));
        for (l, lv) in &lefts {
            for (r, rv) in &rights {
                pair(ctx, (*l, lv), (*r, rv));
            }
        }
        for (ns, records) in [(0, &lefts), (1, &rights)] {
            for (id, _) in records {
                ctx.remove(ns, *id);
            }
        }
    }

    fn event_time(&self) -> bool {
        true
    }
}

pub struct IntervalJoin {
    pub bound_ms: u64,
}

impl Operator for IntervalJoin {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let (mine, other) = (side(r), 1 - side(r));
        let me = buffered(r, 0);
        let t = r.event_time_ms;
        for (id, v) in ctx.entries(other) {
            if (v[1] as u64).abs_diff(t) <= self.bound_ms {
                match mine {
                    0 => pair(ctx, (r.id, &me), (id, &v)),
                    _ => pair(ctx, (id, &v), (r.id, &me)),
                }
            }
        }
        ctx.put(mine, r.id, me);
        ctx.set_timer(t + self.bound_ms + ctx.allowed_lateness_ms() + 1, r.id);
    }

    fn on_timer(&self, timer: Timer, ctx: &mut Context<'_>) {
        ctx.remove(0, timer.tag);
        ctx.remove(1, timer.tag);
    }

    fn event_time(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{run_to_end, test_record};

    fn run(op: &dyn Operator, records: &[StreamRecord]) -> Vec<(u64, u64, [i64; 4])> {
        let run = run_to_end(op, records, 0);
        assert!(run.state.is_empty(), "every buffered record left");
        let mut pairs: Vec<_> = run.outputs.iter().map(|o| (o.id.key, o.id.seq, o.values)).collect();
        pairs.sort_unstable();
        pairs
    }

    fn record(id: u64, kind: u8, t: u64, value: i64) -> StreamRecord {
        test_record(id, kind, 7, t, value)
    }

    #[test]
    fn window_join_pairs_within_a_window() {
        let rs = [record(1, 0, 3, 10), record(2, 1, 8, 20), record(3, 1, 12, 30), record(4, 0, 14, 40)];
        let got = run(&WindowJoin { size_ms: 10 }, &rs);
        assert_eq!(got, [(1, 2, [7, 10, 20, 5]), (4, 3, [7, 40, 30, -2])]);
    }

    #[test]
    fn interval_join_pairs_within_the_bound() {
        let rs = [record(1, 0, 3, 10), record(2, 1, 8, 20), record(3, 1, 12, 30), record(4, 0, 14, 40)];
        let got = run(&IntervalJoin { bound_ms: 5 }, &rs);
        assert_eq!(got, [(1, 2, [7, 10, 20, 5]), (4, 3, [7, 40, 30, -2])]);
    }
}
