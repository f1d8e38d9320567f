//! The built-in pipelines' parameters, as their operators and models take them.

use faultline_engine::pipeline::nexmark;
use faultline_engine::pipeline::WindowSpec;
use serde::{Deserialize, Serialize};

/// A built-in pipeline with its parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltinSpec {
    pub kind: BuiltinKind,
    /// Synthetic input: the map step computes `value * map_scale + map_offset` (wrapping)...
    pub map_scale: i64,
    pub map_offset: i64,
    /// ...and the filter step drops records whose mapped value is a multiple of this (0: none).
    pub filter_drop_multiples_of: i64,
    /// The window of `window` and `user` pipelines, and the size (and slide) of Nexmark's
    /// windowed queries (q5 sliding; q7 and q8 tumbling).
    pub window: WindowSpec,
    pub allowed_lateness_ms: u64,
}

/// The built-in pipelines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuiltinKind {
    /// Synthetic input; map, filter, key by key, per key the running count and sum. Output
    /// `(key, n)` after the key's n-th kept record, values `[n, sum, 0, 0]`, caused by it.
    RunningAggregate,
    /// Synthetic input; map, filter, key by key, per key the `window`'s `[count, sum, min, max]`.
    Window,
    /// Synthetic input of two streams (kinds 0 and 1); map, filter, key by key, and the pairs of
    /// a left and a right record in the same tumbling `window` (see `operators::keyed::join`).
    WindowJoin,
    /// As `WindowJoin`, pairing records whose event times are at most `bound_ms` apart.
    IntervalJoin { bound_ms: u64 },
    /// Synthetic input; map, filter, key by key, per key and tumbling `window` the count and
    /// the `n` largest values (`operators::builtin::topn`).
    TopN { n: usize },
    /// Nexmark input and one of its queries (see [`nexmark`]).
    Nexmark(nexmark::Query),
}

impl BuiltinSpec {
    /// A pipeline with the identity map, no filter and no lateness.
    pub fn plain(kind: BuiltinKind, window: WindowSpec) -> Self {
        BuiltinSpec {
            kind,
            map_scale: 1,
            map_offset: 0,
            filter_drop_multiples_of: 0,
            window,
            allowed_lateness_ms: 0,
        }
    }

    /// Whether results depend on watermarks (and late records can exist).
    pub fn event_time(&self) -> bool {
        match &self.kind {
            BuiltinKind::RunningAggregate => false,
            BuiltinKind::Window | BuiltinKind::TopN { .. } => self.window.event_time(),
            BuiltinKind::WindowJoin | BuiltinKind::IntervalJoin { .. } => true,
            BuiltinKind::Nexmark(q) => q.event_time(),
        }
    }

    /// Whether some outputs fire on the watermark rather than on their last input: every
    /// event-time result, and a count window's partial last window, which the end of time fires
    /// (a user's operator may set timers too).
    pub fn fires_on_watermark(&self) -> bool {
        match &self.kind {
            BuiltinKind::Window | BuiltinKind::TopN { .. } => true,
            _ => self.event_time(),
        }
    }

    /// Applies the synthetic map and filter to a value: `None` if the filter drops it.
    pub fn map_filter(&self, value: i64) -> Option<i64> {
        let mapped = value.wrapping_mul(self.map_scale).wrapping_add(self.map_offset);
        let m = self.filter_drop_multiples_of;
        (m == 0 || mapped.rem_euclid(m) != 0).then_some(mapped)
    }

    /// Its registered name: `running-aggregate`, `window`, `top-n`, `nexmark-q5`.
    pub fn label(&self) -> String {
        match &self.kind {
            BuiltinKind::RunningAggregate => "running-aggregate".into(),
            BuiltinKind::Window => "window".into(),
            BuiltinKind::WindowJoin => "window-join".into(),
            BuiltinKind::IntervalJoin { .. } => "interval-join".into(),
            BuiltinKind::TopN { .. } => "top-n".into(),
            BuiltinKind::Nexmark(q) => q.name().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_windows_fire_their_last_window_on_the_watermark() {
        let spec = BuiltinSpec::plain;
        let counted = spec(BuiltinKind::Window, WindowSpec::CountTumbling { size: 20 });
        assert!(!counted.event_time() && counted.fires_on_watermark());
        let timed = spec(BuiltinKind::Window, WindowSpec::Tumbling { size_ms: 100 });
        assert!(timed.event_time() && timed.fires_on_watermark());
        let running = spec(BuiltinKind::RunningAggregate, WindowSpec::CountTumbling { size: 20 });
        assert!(!running.event_time() && !running.fires_on_watermark());
    }
}
