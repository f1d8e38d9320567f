//! The two-stream joins, as batch code: per key, every left (kind 0) and right (kind 1) record
//! that qualify — the same tumbling window (window join) or event times at most `bound` apart
//! (interval join) — make one pair, identified by its content (the engine's joins declare
//! content identity: where a pair is emitted depends on which side arrives second).

use std::collections::BTreeMap;

use faultline_engine::operators::builtin::join::Pair;
use faultline_engine::record::Origin;

use super::{expect, Expect, Syn};

/// Which pairs qualify.
#[derive(Clone, Copy, Debug)]
pub enum Pairing {
    Window { size_ms: u64 },
    Interval { bound_ms: u64 },
}

/// Every qualifying pair of mapped, non-late inputs.
pub fn join(inputs: &[Syn], pairing: Pairing) -> Vec<Expect> {
    let mut by_key: BTreeMap<u64, (Vec<&Syn>, Vec<&Syn>)> = BTreeMap::new();
    for i in inputs {
        let sides = by_key.entry(i.key).or_default();
        match i.kind {
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

fn pairs(l: &Syn, r: &Syn, pairing: Pairing) -> bool {
    let (a, b) = (l.event_time_ms, r.event_time_ms);
    match pairing {
        Pairing::Window { size_ms } => a / size_ms == b / size_ms,
        Pairing::Interval { bound_ms } => a.abs_diff(b) <= bound_ms,
    }
}

fn pair(key: u64, l: &Syn, r: &Syn, pairing: Pairing) -> Expect {
    let (a, b) = (l.event_time_ms, r.event_time_ms);
    let value = Pair { key, left: l.value, right: r.value, dt: b as i64 - a as i64 };
    let ready_ms = match pairing {
        Pairing::Window { size_ms } => a - a % size_ms + size_ms,
        Pairing::Interval { .. } => a.max(b),
    };
    expect(&key, Origin::Content(0), &value, None, ready_ms)
}

#[cfg(test)]
mod tests {
    use faultline_engine::sdk::codec::decode;

    use super::super::build::ev_kind;
    use super::*;

    #[test]
    fn pairs_by_window_and_by_interval() {
        let inputs: Vec<Syn> = [
            ev_kind(1, 0, 7, 10, 3),
            ev_kind(2, 1, 7, 20, 8),
            ev_kind(3, 1, 7, 30, 12),
            ev_kind(4, 0, 7, 40, 14),
        ]
        .iter()
        .map(Syn::of)
        .collect();
        let pairs = |pairing| {
            let mut v: Vec<[i64; 4]> = join(&inputs, pairing)
                .into_iter()
                .map(|(_, w)| decode::<Pair>(&w.value))
                .map(|p| [p.key as i64, p.left, p.right, p.dt])
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(pairs(Pairing::Window { size_ms: 10 }), [[7, 10, 20, 5], [7, 40, 30, -2]]);
        assert_eq!(pairs(Pairing::Interval { bound_ms: 5 }), [[7, 10, 20, 5], [7, 40, 30, -2]]);
        assert_eq!(pairs(Pairing::Interval { bound_ms: 9 }).len(), 4);
    }
}
