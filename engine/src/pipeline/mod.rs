//! The pipelines a job can run, and exactly what each computes.
//!
//! This module is the contract between the engine's operators and the checkers' reference
//! model: what every output holds and how it is identified are defined here, and both sides
//! implement the definitions independently. The output types are the built-in operators'
//! (`operators::builtin`); an output's identity is its origin (`sdk::operator`).
//!
//! # Time, watermarks and lateness (every event-time pipeline)
//! - A watermark `W` says: no more records with event time `< W` are expected. A source
//!   partition's watermark is `max event time read − max_out_of_orderness_ms`; an ended
//!   partition's is `u64::MAX`. An operator's input watermark is the minimum over its inputs.
//! - A record reaching an event-time operator is **late** iff `event_time + allowed_lateness <
//!   W` at its arrival. A late record goes, whole, to the late output — id `OutputId::late(key,
//!   its input)`, value a `record::Late` (its event time, `W`, its partition and the input) —
//!   and contributes to no result. (Flink decides per window; deciding per record keeps the
//!   accounting exact: every input is in its results or in the late output, never in part.)
//! - Timers fire when `W ≥ at`. A time window `[start, end)` fires at `W ≥ end + lateness`;
//!   no non-late record can reach it after that.
//! - Which records are late depends on arrival order; results are defined over the input
//!   *minus* the committed late records, and must then match exactly.
//!
//! # Windows (`window` pipelines)
//! - `tumbling(size)`: `[t − t mod size, … + size)`.
//! - `sliding(size, slide)`, `size` a multiple of `slide`: every `[end − size, end)` with `end`
//!   a multiple of `slide` and `end − size ≤ t < end` (`size / slide` windows per record).
//! - `session(gap)`: per key, non-late records whose `[t, t + gap)` intervals overlap, chained;
//!   the session's end is its last event time `+ gap`.
//! - `count-tumbling(size)` and `count-sliding(size, slide)`: per key, in log order, window
//!   `n ≥ 0` holds the key's records `n·slide … n·slide + size − 1` (tumbling: `slide = size`);
//!   it fires when full, and at the end of the input every unfired window holding a record
//!   fires. Count windows do not use event time: nothing is late.
//!
//! A window's result is its end (count windows: `n + 1`) and the `count`, `sum`, `min` and
//! `max` of the (mapped) values in it. A time window is identified by its timer at `end +
//! lateness` (tag: its end), a session by its timer at `end + lateness` (tag: its start), a
//! full count window by the record that filled it, a partial one by its timer at the end of
//! time (tag: `n`).
//!
//! # Joins (`window-join`, `interval-join`; two synthetic streams, kinds 0 = left, 1 = right)
//! Every pair of a non-late left and a non-late right record with the same key, and either in
//! the same tumbling window (window join) or with event times at most `bound_ms` apart
//! (interval join): `(key, left value, right value, right time − left time)`, identified by
//! its content.

pub mod nexmark;

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
