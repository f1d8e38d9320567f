//! The pipelines a job can run, and exactly what each computes.
//!
//! This module is the contract between the engine's operators and the checkers' reference
//! model: every output's identity (`OutputId`), its four values, and its cause are defined
//! here, and both sides implement the definitions independently.
//!
//! # Time, watermarks and lateness (every event-time pipeline)
//! - A watermark `W` says: no more records with event time `< W` are expected. A source
//!   partition's watermark is `max event time read − max_out_of_orderness_ms`; an ended
//!   partition's is `u64::MAX`. An operator's input watermark is the minimum over its inputs.
//! - A record reaching an event-time operator is **late** iff `event_time + allowed_lateness <
//!   W` at its arrival. A late record goes, whole, to the late output — id
//!   `OutputId::late(key, event id)`, values `[event_time, W, kind, value]`, its own cause —
//!   and contributes to no result. (Flink decides per window; deciding per record keeps the
//!   accounting exact: every input is in its results or in the late output, never in part.)
//! - Timers fire when `W ≥ at`. A time window `[start, end)` fires at `W ≥ end + lateness`;
//!   no non-late record can reach it after that.
//! - Which records are late depends on arrival order; results are defined over the input
//!   *minus* the committed late records, and must then match exactly.
//!
//! # Windows (`window` pipelines; ids are the window's end, always positive)
//! - `tumbling(size)`: `[t − t mod size, … + size)`.
//! - `sliding(size, slide)`, `size` a multiple of `slide`: every `[end − size, end)` with `end`
//!   a multiple of `slide` and `end − size ≤ t < end` (`size / slide` windows per record).
//! - `session(gap)`: per key, non-late records whose `[t, t + gap)` intervals overlap, chained;
//!   the session's end is its last event time `+ gap`.
//! - `count-tumbling(size)` and `count-sliding(size, slide)`: per key, in log order, window
//!   `n ≥ 0` holds the key's records `n·slide … n·slide + size − 1` (tumbling: `slide = size`);
//!   it fires when full, and at the end of the input every unfired window holding a record
//!   fires. Ids are `n + 1`. Count windows do not use event time: nothing is late.
//!
//! A window's values are `[count, sum, min, max]` of the (mapped) values in it; its cause is
//! that of the record with the greatest event id in it.
//!
//! # Joins (`window-join`, `interval-join`; two synthetic streams, kinds 0 = left, 1 = right)
//! Every pair of a non-late left and a non-late right record with the same key, and either in
//! the same tumbling window (window join) or with event times at most `bound_ms` apart
//! (interval join): id `(left event id, right event id)`, values `[key, left value, right
//! value, right time − left time]`, the cause of the one with the greater event id.

pub mod nexmark;

use serde::{Deserialize, Serialize};

/// What a job computes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineSpec {
    pub kind: PipelineKind,
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

/// The pipeline catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PipelineKind {
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
    /// Synthetic input; map, filter, key by key, then the operator registered under `name`
    /// (outside the engine), given `params`.
    User { name: String, params: Vec<(String, i64)> },
    /// Nexmark input and one of its queries (see [`nexmark`]).
    Nexmark(nexmark::Query),
}

/// A keyed window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowSpec {
    Tumbling { size_ms: u64 },
    Sliding { size_ms: u64, slide_ms: u64 },
    Session { gap_ms: u64 },
    CountTumbling { size: u64 },
    CountSliding { size: u64, slide: u64 },
}

impl WindowSpec {
    /// Whether the window is defined over event time (and so may see late records).
    pub fn event_time(self) -> bool {
        matches!(self, WindowSpec::Tumbling { .. } | WindowSpec::Sliding { .. } | WindowSpec::Session { .. })
    }

    /// The ends of the time windows holding a record at `t` (tumbling and sliding only).
    pub fn ends_for(self, t: u64) -> impl Iterator<Item = u64> {
        let (size, slide) = match self {
            WindowSpec::Tumbling { size_ms } => (size_ms, size_ms),
            WindowSpec::Sliding { size_ms, slide_ms } => (size_ms, slide_ms),
            other => panic!("{other:?} has no fixed windows"),
        };
        assert!(slide > 0 && size % slide == 0, "size {size} must be a positive multiple of slide {slide}");
        let first = t - t % slide + slide;
        (0..size / slide).map(move |i| first + i * slide)
    }

    /// Tumbling and sliding: the window length.
    pub fn size_ms(self) -> u64 {
        match self {
            WindowSpec::Tumbling { size_ms } | WindowSpec::Sliding { size_ms, .. } => size_ms,
            other => panic!("{other:?} has no fixed size"),
        }
    }
}

impl PipelineSpec {
    /// A pipeline with the identity map, no filter and no lateness.
    pub fn plain(kind: PipelineKind, window: WindowSpec) -> Self {
        PipelineSpec {
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
            PipelineKind::RunningAggregate => false,
            PipelineKind::Window | PipelineKind::User { .. } => self.window.event_time(),
            PipelineKind::WindowJoin | PipelineKind::IntervalJoin { .. } => true,
            PipelineKind::Nexmark(q) => q.event_time(),
        }
    }

    /// Whether some outputs fire on the watermark rather than on their last input: every
    /// event-time result, and a count window's partial last window, which the end of time fires
    /// (a user's operator may set timers too).
    pub fn fires_on_watermark(&self) -> bool {
        match &self.kind {
            PipelineKind::Window | PipelineKind::User { .. } => true,
            _ => self.event_time(),
        }
    }

    /// Applies the synthetic map and filter to a value: `None` if the filter drops it.
    pub fn map_filter(&self, value: i64) -> Option<i64> {
        let mapped = value.wrapping_mul(self.map_scale).wrapping_add(self.map_offset);
        let m = self.filter_drop_multiples_of;
        (m == 0 || mapped.rem_euclid(m) != 0).then_some(mapped)
    }

    /// The parameter `name` of a user pipeline.
    pub fn param(&self, name: &str) -> Option<i64> {
        match &self.kind {
            PipelineKind::User { params, .. } => params.iter().find(|(n, _)| n == name).map(|&(_, v)| v),
            _ => None,
        }
    }

    /// A name for logs and reports: `running-aggregate`, `window`, `user:top-n`, `nexmark-q5`.
    pub fn label(&self) -> String {
        match &self.kind {
            PipelineKind::RunningAggregate => "running-aggregate".into(),
            PipelineKind::Window => "window".into(),
            PipelineKind::WindowJoin => "window-join".into(),
            PipelineKind::IntervalJoin { .. } => "interval-join".into(),
            PipelineKind::User { name, .. } => format!("user:{name}"),
            PipelineKind::Nexmark(q) => q.name().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_windows_fire_their_last_window_on_the_watermark() {
        let spec = PipelineSpec::plain;
        let counted = spec(PipelineKind::Window, WindowSpec::CountTumbling { size: 20 });
        assert!(!counted.event_time() && counted.fires_on_watermark());
        let timed = spec(PipelineKind::Window, WindowSpec::Tumbling { size_ms: 100 });
        assert!(timed.event_time() && timed.fires_on_watermark());
        let running = spec(PipelineKind::RunningAggregate, WindowSpec::CountTumbling { size: 20 });
        assert!(!running.event_time() && !running.fires_on_watermark());
    }

    #[test]
    fn sliding_windows_hold_each_time_size_over_slide_times() {
        let w = WindowSpec::Sliding { size_ms: 10, slide_ms: 2 };
        assert_eq!(w.ends_for(0).collect::<Vec<_>>(), vec![2, 4, 6, 8, 10]);
        assert_eq!(w.ends_for(7).collect::<Vec<_>>(), vec![8, 10, 12, 14, 16]);
        for end in w.ends_for(7) {
            assert!(end <= 7 + 10 && 7 < end);
        }
        let t = WindowSpec::Tumbling { size_ms: 5 };
        assert_eq!(t.ends_for(4).collect::<Vec<_>>(), vec![5]);
        assert_eq!(t.ends_for(5).collect::<Vec<_>>(), vec![10]);
    }
}
