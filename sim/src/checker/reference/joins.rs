//! The two-stream joins, as batch code: per key, every left (kind 0) and right (kind 1) record
//! that qualify — the same tumbling window (window join) or event times at most `bound` apart
//! (interval join) — make one pair. See `faultline_engine::pipeline` for ids and values.

use std::collections::BTreeMap;

use faultline_engine::record::OutputId;

use super::{Input, Want};

/// Which pairs qualify.
#[derive(Clone, Copy, Debug)]
pub enum Pairing {
    Window { size_ms: u64 },
    Interval { bound_ms: u64 },
}

/// Every qualifying pair of mapped, non-late inputs.
pub fn join(inputs: &[Input], pairing: Pairing) -> Vec<(OutputId, Want)> {
    let mut by_key: BTreeMap<u64, (Vec<&Input>, Vec<&Input>)> = BTreeMap::new();
    for i in inputs {
        let sides = by_key.entry(i.event.key).or_default();
        match i.event.kind {
            0 => sides.0.push(i),
            1 => sides.1.push(i),
            other => panic!("a join reads kinds 0 and 1, not {other}"),
        }
    }
    let mut out = Vec::new();
    for (key, (lefts, rights)) in by_key {
        for l in &lefts {
            for r in rights.iter().filter(|r| pairs(l, r, pairing)) {
                out.push(pair(key, l, r, pairing));
            }
        }
    }
    out
}

fn pairs(l: &Input, r: &Input, pairing: Pairing) -> bool {
    let (a, b) = (l.event.event_time_ms, r.event.event_time_ms);
    match pairing {
        Pairing::Window { size_ms } => a / size_ms == b / size_ms,
        Pairing::Interval { bound_ms } => a.abs_diff(b) <= bound_ms,
    }
}

fn pair(key: u64, l: &Input, r: &Input, pairing: Pairing) -> (OutputId, Want) {
    let (a, b) = (l.event.event_time_ms, r.event.event_time_ms);
    let values = [key as i64, l.event.value, r.event.value, b as i64 - a as i64];
    let cause = if l.event.id > r.event.id { l.cause } else { r.cause };
    let ready_ms = match pairing {
        Pairing::Window { size_ms } => a - a % size_ms + size_ms,
        Pairing::Interval { .. } => a.max(b),
    };
    (OutputId::main(l.event.id, r.event.id), Want { values, cause, ready_ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::reference::build::ev;

    fn side(mut i: Input, kind: u8) -> Input {
        i.event.kind = kind;
        i
    }

    #[test]
    fn pairs_by_window_and_by_interval() {
        let inputs = [
            side(ev(1, 7, 10, 3), 0),
            side(ev(2, 7, 20, 8), 1),
            side(ev(3, 7, 30, 12), 1),
            side(ev(4, 7, 40, 14), 0),
        ];
        let ids = |pairing| {
            join(&inputs, pairing).into_iter().map(|(id, w)| (id.key, id.seq, w.values)).collect::<Vec<_>>()
        };
        assert_eq!(ids(Pairing::Window { size_ms: 10 }), [(1, 2, [7, 10, 20, 5]), (4, 3, [7, 40, 30, -2])]);
        assert_eq!(ids(Pairing::Interval { bound_ms: 5 }), [(1, 2, [7, 10, 20, 5]), (4, 3, [7, 40, 30, -2])]);
        assert_eq!(ids(Pairing::Interval { bound_ms: 9 }).len(), 4);
    }
}
