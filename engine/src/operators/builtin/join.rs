//! Two-stream joins on the key over the synthetic input (kind 0 is the left stream, kind 1 the
//! right). Each joined pair is one output, identified by its content (the emission point of an
//! interval join depends on which side arrives second).
//!
//! - **Window join**: pairs in the same tumbling window, emitted when the window fires. State
//!   per key: `left` and `right`, event id → (value, time, window end); a timer at
//!   `end + lateness` (tag = end).
//! - **Interval join**: pairs whose times lie within `bound` of each other, emitted as soon as
//!   the second of the two arrives. Each buffered record leaves at `time + bound + lateness +
//!   1` (tag = its event id), once no non-late partner can arrive any more.

use serde::{Deserialize, Serialize};

use super::Synthetic;
use crate::sdk::operator::{Ctx, Identity, Operator, Timer};
use crate::sdk::MapState;

/// A joined pair: the key, the left and right values, and right time − left time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pair {
    pub key: u64,
    pub left: i64,
    pub right: i64,
    pub dt: i64,
}

/// A buffered record: value, event time, window end (0 for the interval join).
type Buffered = (i64, u64, u64);

const LEFT: MapState<u64, Buffered> = MapState::new("left");
const RIGHT: MapState<u64, Buffered> = MapState::new("right");

fn pair(key: u64, left: Buffered, right: Buffered) -> Pair {
    Pair { key, left: left.0, right: right.0, dt: right.1 as i64 - left.1 as i64 }
}

fn side(r: &Synthetic) -> &'static MapState<u64, Buffered> {
    match r.kind {
        0 => &LEFT,
        1 => &RIGHT,
        k => panic!("a join reads two streams, kinds 0 and 1, not {k}"),
    }
}

pub struct WindowJoin {
    pub size_ms: u64,
}

impl Operator for WindowJoin {
    type Key = u64;
    type In = Synthetic;
    type OutKey = u64;
    type Out = Pair;

    fn on_record(&self, _key: &u64, r: Synthetic, ctx: &mut Ctx<'_, Self>) {
        let t = ctx.timestamp().expect("a record has an event time");
        let end = t - t % self.size_ms + self.size_ms;
        ctx.map(side(&r)).insert(&r.id, &(r.value, t, end));
        let at = end + ctx.allowed_lateness_ms();
        ctx.set_timer(at, end);
    }

    fn on_timer(&self, key: &u64, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let mut in_window = |d: &MapState<u64, Buffered>| -> Vec<(u64, Buffered)> {
            ctx.map(d).entries().into_iter().filter(|(_, b)| b.2 == timer.tag).collect()
        };
        let (lefts, rights) = (in_window(&LEFT), in_window(&RIGHT));
        for (_, l) in &lefts {
            for (_, r) in &rights {
                ctx.emit(key, &pair(*key, *l, *r));
            }
        }
        for (d, records) in [(&LEFT, &lefts), (&RIGHT, &rights)] {
            for (id, _) in records {
                ctx.map(d).remove(id);
            }
        }
    }

    fn event_time(&self) -> bool {
        true
    }

    fn identity(&self) -> Identity {
        Identity::Content
    }
}

pub struct IntervalJoin {
    pub bound_ms: u64,
}

impl Operator for IntervalJoin {
    type Key = u64;
    type In = Synthetic;
    type OutKey = u64;
    type Out = Pair;

    fn on_record(&self, key: &u64, r: Synthetic, ctx: &mut Ctx<'_, Self>) {
        let t = ctx.timestamp().expect("a record has an event time");
        let me: Buffered = (r.value, t, 0);
        let other = if r.kind == 0 { &RIGHT } else { &LEFT };
        for (_, b) in ctx.map(other).entries() {
            if b.1.abs_diff(t) <= self.bound_ms {
                let p = if r.kind == 0 { pair(*key, me, b) } else { pair(*key, b, me) };
                ctx.emit(key, &p);
            }
        }
        ctx.map(side(&r)).insert(&r.id, &me);
        let at = t + self.bound_ms + ctx.allowed_lateness_ms() + 1;
        ctx.set_timer(at, r.id);
    }

    fn on_timer(&self, _key: &u64, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        ctx.map(&LEFT).remove(&timer.tag);
        ctx.map(&RIGHT).remove(&timer.tag);
    }

    fn event_time(&self) -> bool {
        true
    }

    fn identity(&self) -> Identity {
        Identity::Content
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::{Harness, Origin};

    fn run<O: Operator<Key = u64, In = Synthetic, Out = Pair>>(op: O) -> Vec<Pair> {
        let mut h = Harness::new(op);
        for (id, kind, t, value) in [(1, 0, 3, 10), (2, 1, 8, 20), (3, 1, 12, 30), (4, 0, 14, 40)] {
            h.push(&7, &Synthetic { id, kind, value }, t);
        }
        h.finish();
        assert!(h.state().entries.is_empty(), "every buffered record left");
        assert!(h.emitted().iter().all(|e| matches!(e.origin, Origin::Content(_)) && e.n == 0));
        let mut pairs: Vec<Pair> = h.outputs().into_iter().map(|(_, p)| p).collect();
        pairs.sort_unstable();
        pairs
    }

    #[test]
    fn window_join_pairs_within_a_window() {
        let want =
            [Pair { key: 7, left: 10, right: 20, dt: 5 }, Pair { key: 7, left: 40, right: 30, dt: -2 }];
        assert_eq!(run(WindowJoin { size_ms: 10 }), want);
    }

    #[test]
    fn interval_join_pairs_within_the_bound() {
        let want =
            [Pair { key: 7, left: 10, right: 20, dt: 5 }, Pair { key: 7, left: 40, right: 30, dt: -2 }];
        assert_eq!(run(IntervalJoin { bound_ms: 5 }), want);
    }
}
