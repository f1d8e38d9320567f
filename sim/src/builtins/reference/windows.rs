//! Keyed windows (`window` pipelines) and the `top-n` user pipeline: the records are grouped
//! into every window that holds them — time windows by `WindowSpec::ends_for`, sessions by
//! chaining sorted event times, count windows by position in the key's log order — and each
//! group is aggregated at once.
//!
//! Each result is identified as the engine's windows emit it: a time window by the timer at
//! `end + lateness` (tag: its end), a session by the timer at `end + lateness` (tag: its
//! start), a full count window by the record that filled it, a partial one by the timer at the
//! end of time (tag: its index). What a timer emits has no cause the model judges.

use std::collections::BTreeMap;

use faultline_engine::operators::builtin::topn::Top;
use faultline_engine::operators::builtin::window::WindowResult;
use faultline_engine::operators::builtin::Aggregate;
use faultline_engine::pipeline::WindowSpec;

use crate::builtins::spec::BuiltinSpec;
use faultline_engine::record::Origin;

use super::{expect, Expected, Syn};

/// The records of each window, by `(key, window id)`: the id is the window's end (time windows
/// and sessions) or its number + 1 (count windows).
type Groups<'a> = BTreeMap<(u64, u64), Vec<&'a Syn>>;

/// A `window` pipeline: per key and window, the aggregate of the mapped values. Ready at the
/// window's end, or for count windows at the greatest event time among its records.
pub(super) fn window(records: &[Syn], spec: WindowSpec, lateness: u64) -> Expected {
    let outputs = groups(records, spec)
        .into_iter()
        .map(|((key, id), group)| {
            let (origin, cause, ready_ms) = match spec {
                WindowSpec::CountTumbling { size } | WindowSpec::CountSliding { size, .. } => {
                    let ready = group.iter().map(|r| r.event_time_ms).max().expect("a window holds a record");
                    let last = group.last().expect("a window holds a record").cause;
                    match group.len() as u64 == size {
                        true => (Origin::Input(last), Some(last), ready),
                        false => (Origin::Timer { at_ms: u64::MAX, tag: id - 1 }, None, ready),
                    }
                }
                WindowSpec::Session { .. } => {
                    let start =
                        group.iter().map(|r| r.event_time_ms).min().expect("a session holds a record");
                    (Origin::Timer { at_ms: id + lateness, tag: start }, None, id)
                }
                _ => (Origin::Timer { at_ms: id + lateness, tag: id }, None, id),
            };
            let result = WindowResult { window: id, aggregate: aggregate(&group) };
            expect(&key, origin, &result, cause, ready_ms)
        })
        .collect();
    Expected::from_unsorted(outputs)
}

/// The `top-n` user pipeline: per key and tumbling window (`pipeline.window`), the window's
/// record count and its `n` (parameter, 1..=3, default 3) largest mapped values in descending
/// order, duplicates kept. Ready at the window's end.
pub(super) fn top_n(records: &[Syn], n: usize, pipeline: &BuiltinSpec) -> Expected {
    let WindowSpec::Tumbling { .. } = pipeline.window else {
        panic!("top-n needs a tumbling window, not {:?}", pipeline.window);
    };
    assert!((1..=3).contains(&n), "top-n's parameter n must be 1, 2 or 3, not {n}");
    let lateness = pipeline.allowed_lateness_ms;
    let outputs = time_groups(records, pipeline.window)
        .into_iter()
        .map(|((key, end), group)| {
            let mut largest: Vec<i64> = group.iter().map(|r| r.value).collect();
            largest.sort_unstable_by(|a, b| b.cmp(a));
            largest.truncate(n);
            let top = Top { end, count: group.len() as u64, largest };
            expect(&key, Origin::Timer { at_ms: end + lateness, tag: end }, &top, None, end)
        })
        .collect();
    Expected::from_unsorted(outputs)
}

/// The aggregate of the values in `group` (not empty).
fn aggregate(group: &[&Syn]) -> Aggregate {
    let mut values = group.iter().map(|r| r.value);
    let first = Aggregate::of(values.next().expect("a window holds a record"));
    values.fold(first, Aggregate::with)
}

fn groups(records: &[Syn], spec: WindowSpec) -> Groups<'_> {
    match spec {
        WindowSpec::Tumbling { .. } | WindowSpec::Sliding { .. } => time_groups(records, spec),
        WindowSpec::Session { gap_ms } => session_groups(records, gap_ms),
        WindowSpec::CountTumbling { size } => count_groups(records, size, size),
        WindowSpec::CountSliding { size, slide } => count_groups(records, size, slide),
    }
}

/// Tumbling and sliding windows: each record in every window `ends_for` its event time names.
fn time_groups(records: &[Syn], spec: WindowSpec) -> Groups<'_> {
    let mut groups = Groups::new();
    for r in records {
        for end in spec.ends_for(r.event_time_ms) {
            groups.entry((r.key, end)).or_default().push(r);
        }
    }
    groups
}

/// Sessions: per key, records sorted by `(event time, id)`; the next record joins the current
/// session iff its time is before the session's end (the greatest `t + gap` so far), and the
/// session's id is that end.
fn session_groups(records: &[Syn], gap_ms: u64) -> Groups<'_> {
    assert!(gap_ms > 0, "a session gap of 0 makes every record its own empty interval");
    let mut by_key: BTreeMap<u64, Vec<&Syn>> = BTreeMap::new();
    for r in records {
        by_key.entry(r.key).or_default().push(r);
    }
    let mut groups = Groups::new();
    for (key, mut sorted) in by_key {
        sorted.sort_by_key(|r| (r.event_time_ms, r.id));
        let (mut session, mut end) = (Vec::new(), 0);
        for r in sorted {
            let t = r.event_time_ms;
            if !session.is_empty() && t >= end {
                groups.insert((key, end), std::mem::take(&mut session));
            }
            end = if session.is_empty() { t + gap_ms } else { end.max(t + gap_ms) };
            session.push(r);
        }
        groups.insert((key, end), session);
    }
    groups
}

/// Count windows: per key, in input (= log) order, record `i` is in every window `n` with
/// `n·slide ≤ i < n·slide + size`; window `n` has id `n + 1`. Partial windows count too.
fn count_groups(records: &[Syn], size: u64, slide: u64) -> Groups<'_> {
    assert!(size > 0 && slide > 0, "count window size {size} and slide {slide} must be positive");
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut groups = Groups::new();
    for r in records {
        let i = seen.entry(r.key).or_default();
        let first = (*i + 1).saturating_sub(size).div_ceil(slide);
        for n in first..=*i / slide {
            groups.entry((r.key, n + 1)).or_default().push(r);
        }
        *i += 1;
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::builtins::spec::{BuiltinKind, BuiltinSpec};
    use faultline_engine::operators::builtin::topn::Top;
    use faultline_engine::operators::builtin::window::WindowResult;
    use faultline_engine::pipeline::WindowSpec;
    use faultline_engine::sdk::codec::decode;

    use super::super::build::{cause, ev, pipeline};
    use super::super::{evaluate, Expected, Input};

    /// `(key, window, [count, sum, min, max], ready)`, in key-hash then window order: the model
    /// orders its outputs by id, and an id starts with the key's hash.
    type Out = (u64, u64, [i64; 4], u64);

    fn outs(e: &Expected) -> Vec<Out> {
        let mut v: Vec<Out> = e
            .iter()
            .map(|(id, want)| {
                let w: WindowResult = decode(&want.value);
                let a = w.aggregate;
                (decode(&id.key.bytes), w.window, [a.count as i64, a.sum, a.min, a.max], want.ready_ms)
            })
            .collect();
        v.sort_unstable();
        v
    }

    fn run(input: &[Input], window: WindowSpec) -> Vec<Out> {
        outs(&evaluate(input, &pipeline(BuiltinKind::Window, window), &BTreeSet::new()))
    }

    fn out(key: u64, id: u64, values: [i64; 4], _cause_id: u64, ready_ms: u64) -> Out {
        (key, id, values, ready_ms)
    }

    #[test]
    fn tumbling_windows() {
        // Window ends: t 3, 9 -> 10; t 10 -> 20; key 2's t 5 -> 10.
        let input = [ev(0, 1, 4, 3), ev(1, 1, -2, 10), ev(2, 1, 6, 9), ev(3, 2, 8, 5)];
        assert_eq!(
            run(&input, WindowSpec::Tumbling { size_ms: 10 }),
            [
                out(1, 10, [2, 10, 4, 6], 2, 10),
                out(1, 20, [1, -2, -2, -2], 1, 20),
                out(2, 10, [1, 8, 8, 8], 3, 10),
            ]
        );
    }

    #[test]
    fn sliding_windows() {
        // size 10, slide 5: t 3 -> ends 5, 10; t 7 -> 10, 15; t 12 -> 15, 20.
        let input = [ev(0, 1, 1, 3), ev(1, 1, 2, 7), ev(2, 1, 4, 12)];
        assert_eq!(
            run(&input, WindowSpec::Sliding { size_ms: 10, slide_ms: 5 }),
            [
                out(1, 5, [1, 1, 1, 1], 0, 5),
                out(1, 10, [2, 3, 1, 2], 1, 10),
                out(1, 15, [2, 6, 2, 4], 2, 15),
                out(1, 20, [1, 4, 4, 4], 2, 20),
            ]
        );
    }

    #[test]
    fn sessions_chain_overlapping_gaps() {
        // gap 5, key 1 times 0, 4, 8 chain (8 < 4 + 5), end 13; 13 starts anew (13 >= 13), end 18.
        // Key 2: 100 alone, end 105. Ids 3 and 1 arrive out of time order.
        let input = [ev(0, 1, 1, 0), ev(3, 1, 8, 8), ev(1, 1, 2, 4), ev(2, 2, 7, 100), ev(4, 1, -1, 13)];
        assert_eq!(
            run(&input, WindowSpec::Session { gap_ms: 5 }),
            [
                out(1, 13, [3, 11, 1, 8], 3, 13),
                out(1, 18, [1, -1, -1, -1], 4, 18),
                out(2, 105, [1, 7, 7, 7], 2, 105)
            ]
        );
    }

    #[test]
    fn a_late_record_can_split_a_session() {
        let input = [ev(0, 1, 1, 0), ev(1, 1, 2, 4), ev(2, 1, 3, 8)];
        let p = pipeline(BuiltinKind::Window, WindowSpec::Session { gap_ms: 5 });
        let got = outs(&evaluate(&input, &p, &BTreeSet::from([(cause(1), 0)])));
        assert_eq!(got, [out(1, 5, [1, 1, 1, 1], 0, 5), out(1, 13, [1, 3, 3, 3], 2, 13)]);
    }

    #[test]
    fn count_tumbling_windows_fire_partial_ones_too() {
        // Key 1: values 1, 2, 3 in input order -> windows [1, 2] and [3]; event times not sorted.
        let input = [ev(0, 1, 1, 50), ev(1, 2, 9, 1), ev(2, 1, 2, 40), ev(3, 1, 3, 45)];
        assert_eq!(
            run(&input, WindowSpec::CountTumbling { size: 2 }),
            [out(1, 1, [2, 3, 1, 2], 2, 50), out(1, 2, [1, 3, 3, 3], 3, 45), out(2, 1, [1, 9, 9, 9], 1, 1)]
        );
    }

    #[test]
    fn count_sliding_windows_overlap() {
        // size 3, slide 2, records r0..r4 = 10, 20, 30, 40, 50: windows {r0 r1 r2} {r2 r3 r4} {r4}.
        let input: Vec<Input> = (0..5).map(|i| ev(i, 7, (i as i64 + 1) * 10, 100 - i)).collect();
        assert_eq!(
            run(&input, WindowSpec::CountSliding { size: 3, slide: 2 }),
            [
                out(7, 1, [3, 60, 10, 30], 2, 100),
                out(7, 2, [3, 120, 30, 50], 4, 98),
                out(7, 3, [1, 50, 50, 50], 4, 96),
            ]
        );
        // slide > size: size 1, slide 2 gives {r0} {r2} {r4}; r1 and r3 are in no window.
        let sparse = run(&input, WindowSpec::CountSliding { size: 1, slide: 2 });
        assert_eq!(
            sparse,
            [
                out(7, 1, [1, 10, 10, 10], 0, 100),
                out(7, 2, [1, 30, 30, 30], 2, 98),
                out(7, 3, [1, 50, 50, 50], 4, 96)
            ]
        );
    }

    #[test]
    fn late_ids_leave_time_windows() {
        let input = [ev(0, 1, 4, 3), ev(1, 1, 6, 5), ev(2, 1, 1, 25)];
        let p = pipeline(BuiltinKind::Window, WindowSpec::Tumbling { size_ms: 10 });
        let late = BTreeSet::from([(cause(1), 0), (cause(2), 0)]);
        assert_eq!(outs(&evaluate(&input, &p, &late)), [out(1, 10, [1, 4, 4, 4], 0, 10)]);
    }

    fn top_n(n: Option<i64>, window: WindowSpec) -> BuiltinSpec {
        pipeline(BuiltinKind::TopN { n: n.unwrap_or(3) as usize }, window)
    }

    fn run_top_n(input: &[Input], n: Option<i64>, late: &[u64]) -> Vec<(u64, Top)> {
        let p = top_n(n, WindowSpec::Tumbling { size_ms: 10 });
        let e = evaluate(input, &p, &late.iter().map(|&i| (cause(i), 0)).collect());
        let mut v: Vec<(u64, Top)> =
            e.iter().map(|(id, w)| (decode(&id.key.bytes), decode(&w.value))).collect();
        v.sort_by_key(|(k, t)| (*k, t.end));
        v
    }

    fn top(key: u64, end: u64, count: u64, largest: &[i64]) -> (u64, Top) {
        (key, Top { end, count, largest: largest.to_vec() })
    }

    #[test]
    fn top_n_keeps_the_largest_values_with_duplicates() {
        let input = [
            ev(0, 1, 5, 1),
            ev(1, 1, 9, 2),
            ev(2, 1, 5, 3),
            ev(3, 1, 2, 4),
            ev(4, 1, 7, 15),
            ev(5, 2, -4, 0),
        ];
        let all = run_top_n(&input, None, &[]);
        assert_eq!(all, [top(1, 10, 4, &[9, 5, 5]), top(1, 20, 1, &[7]), top(2, 10, 1, &[-4])]);
        assert_eq!(run_top_n(&input, Some(2), &[])[0], top(1, 10, 4, &[9, 5]));
        assert_eq!(run_top_n(&input, Some(1), &[1, 3])[0], top(1, 10, 2, &[5]));
    }

    #[test]
    fn top_n_uses_mapped_values() {
        let mut p = top_n(Some(3), WindowSpec::Tumbling { size_ms: 10 });
        (p.map_scale, p.filter_drop_multiples_of) = (-1, 3);
        // 1 -> -1, 3 -> -3 dropped, 2 -> -2.
        let e = evaluate(&[ev(0, 1, 1, 0), ev(1, 1, 3, 1), ev(2, 1, 2, 2)], &p, &BTreeSet::new());
        let (_, want) = e.iter().next().expect("one window");
        assert_eq!(decode::<Top>(&want.value), Top { end: 10, count: 2, largest: vec![-1, -2] });
    }
    #[test]
    fn top_n_needs_a_tumbling_window() {
        let panicked = crate::panic::catch(|| {
            let p = top_n(None, WindowSpec::Session { gap_ms: 3 });
            evaluate(&[ev(0, 1, 1, 0)], &p, &BTreeSet::new());
        })
        .expect_err("the reference refuses it");
        assert!(panicked.message.contains("tumbling"), "{panicked:?}");
    }

    #[test]
    fn top_n_rejects_n_beyond_3() {
        let panicked = crate::panic::catch(|| {
            run_top_n(&[ev(0, 1, 1, 0)], Some(4), &[]);
        })
        .expect_err("the reference refuses it");
        assert!(panicked.message.contains("1, 2 or 3"), "{panicked:?}");
    }
}
