//! Top-n: per key and tumbling window `[end − size, end)`, the window's record count and its
//! `n` largest values in descending order (equal values all count), fired at the window's end
//! plus the allowed lateness.
//!
//! State per key: `windows`, window end → the count and the largest values so far; a timer at
//! `end + lateness` (tag = end) fires the window.

use serde::{Deserialize, Serialize};

use super::Synthetic;
use crate::sdk::operator::{Ctx, Operator, Timer};
use crate::sdk::MapState;

/// One fired window: its end, how many records it held, and the largest values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Top {
    pub end: u64,
    pub count: u64,
    pub largest: Vec<i64>,
}

const WINDOWS: MapState<u64, (u64, Vec<i64>)> = MapState::new("windows");

pub struct TopN {
    pub n: usize,
    pub size_ms: u64,
}

impl Operator for TopN {
    type Key = u64;
    type In = Synthetic;
    type OutKey = u64;
    type Out = Top;

    fn on_record(&self, _key: &u64, r: Synthetic, ctx: &mut Ctx<'_, Self>) {
        let t = ctx.timestamp().expect("a record has an event time");
        let end = t - t % self.size_ms + self.size_ms;
        let (count, _) = ctx.map(&WINDOWS).update(&end, |window| {
            let (count, mut largest) = window.unwrap_or_default();
            largest.push(r.value);
            largest.sort_unstable_by(|a, b| b.cmp(a));
            largest.truncate(self.n);
            (count + 1, largest)
        });
        if count == 1 {
            // The window's first record: it reports at its end.
            let at = end + ctx.allowed_lateness_ms();
            ctx.set_timer(at, end);
        }
    }

    fn on_timer(&self, key: &u64, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let end = timer.tag;
        let Some((count, largest)) = ctx.map(&WINDOWS).get(&end) else { return };
        ctx.map(&WINDOWS).remove(&end);
        ctx.emit(key, &Top { end, count, largest });
    }

    fn event_time(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::Harness;

    #[test]
    fn keeps_the_largest_values_per_window() {
        let mut h = Harness::new(TopN { n: 2, size_ms: 10 });
        for (id, t, value) in [(0, 1, 5), (1, 3, 9), (2, 4, 7), (3, 12, -1), (4, 2, 9)] {
            h.push(&4, &Synthetic { id, kind: 0, value }, t);
        }
        h.finish();
        let want = [
            (4, Top { end: 10, count: 4, largest: vec![9, 9] }),
            (4, Top { end: 20, count: 1, largest: vec![-1] }),
        ];
        assert_eq!(h.outputs(), want);
        assert!(h.state().entries.is_empty() && h.state().timers.is_empty());
    }
}
