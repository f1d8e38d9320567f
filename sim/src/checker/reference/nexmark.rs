//! The Nexmark queries q0, q1, q2, q3, q4, q5, q7 and q8 as batch evaluations over the whole
//! (non-late) input, each straight from its definition in `faultline_engine::pipeline::nexmark`.

use std::collections::BTreeMap;

use faultline_engine::pipeline::nexmark::{
    q1_euros, q2_keeps, q3_state, Query, AUCTION, BID, PERSON, Q3_CATEGORY,
};
use faultline_engine::pipeline::WindowSpec;
use faultline_engine::record::{Cause, Event, OutputId};

use super::{Expected, Input, Want};

/// Evaluates `query` over `records` (late ones already removed); `window` gives q5's sliding
/// windows and q7's and q8's tumbling ones (through `WindowSpec::ends_for`).
pub(super) fn evaluate(query: Query, records: &[Input], window: WindowSpec) -> Expected {
    match query {
        Query::Q0 => bids(records, |b| Some([b.key as i64, b.aux[0], b.value, b.event_time_ms as i64])),
        Query::Q1 => {
            bids(records, |b| Some([b.key as i64, b.aux[0], q1_euros(b.value), b.event_time_ms as i64]))
        }
        Query::Q2 => bids(records, |b| q2_keeps(b.key).then_some([b.key as i64, b.value, 0, 0])),
        Query::Q3 => q3(records),
        Query::Q4 => q4(records),
        Query::Q5 => q5(records, window),
        Query::Q7 => q7(records, window),
        Query::Q8 => q8(records, window),
    }
}

fn of_kind(records: &[Input], kind: u8) -> impl Iterator<Item = &Input> {
    records.iter().filter(move |r| r.event.kind == kind)
}

/// The first record of `kind` for each key (the generator never repeats an id).
fn first_by_key(records: &[Input], kind: u8) -> BTreeMap<u64, &Input> {
    let mut by_key = BTreeMap::new();
    for r in of_kind(records, kind) {
        by_key.entry(r.event.key).or_insert(r);
    }
    by_key
}

fn want(values: [i64; 4], cause: Cause, ready_ms: u64) -> Want {
    Want { values, cause, ready_ms }
}

/// q0, q1, q2: per bid `project` kept, id `(auction, event id)`, caused by the bid, ready at its
/// event time.
fn bids(records: &[Input], project: impl Fn(&Event) -> Option<[i64; 4]>) -> Expected {
    let outputs = of_kind(records, BID)
        .filter_map(|b| {
            let values = project(&b.event)?;
            Some((OutputId::main(b.event.key, b.event.id), want(values, b.cause, b.event.event_time_ms)))
        })
        .collect();
    Expected::from_unsorted(outputs)
}

/// q3: every category-10 auction whose seller is a person in OR, ID or CA anywhere in the input;
/// id `(person, auction)`, `[name, city, state, auction]`, caused by the auction, ready at the
/// later of the two event times.
fn q3(records: &[Input]) -> Expected {
    let persons = first_by_key(records, PERSON);
    let outputs = of_kind(records, AUCTION)
        .filter(|a| a.event.aux[0] == Q3_CATEGORY)
        .filter_map(|a| {
            let p = persons.get(&(a.event.value as u64)).filter(|p| q3_state(p.event.value))?;
            let values = [p.event.aux[1], p.event.aux[0], p.event.value, a.event.key as i64];
            let ready_ms = p.event.event_time_ms.max(a.event.event_time_ms);
            Some((OutputId::main(p.event.key, a.event.key), want(values, a.cause, ready_ms)))
        })
        .collect();
    Expected::from_unsorted(outputs)
}

/// An auction's expiry time (aux[1]).
fn expires(auction: &Input) -> u64 {
    u64::try_from(auction.event.aux[1]).expect("an auction expires at a time after the epoch")
}

/// q4: each auction with a counting bid (`auction.t ≤ bid.t ≤ expires`) closes at its highest
/// counting price; per category, the n-th closed auction in `(expires, auction id)` order gives
/// id `(category, n)`, `[n, sum, sum / n, auction id]`, caused by the auction, ready at expires.
fn q4(records: &[Input]) -> Expected {
    let auctions = first_by_key(records, AUCTION);
    let mut closing: BTreeMap<u64, i64> = BTreeMap::new();
    for b in of_kind(records, BID) {
        let Some(a) = auctions.get(&b.event.key) else { continue };
        if (a.event.event_time_ms..=expires(a)).contains(&b.event.event_time_ms) {
            let price = closing.entry(a.event.key).or_insert(b.event.value);
            *price = (*price).max(b.event.value);
        }
    }
    let mut closed: BTreeMap<i64, Vec<(u64, u64, i64, Cause)>> = BTreeMap::new();
    for (id, price) in closing {
        let a = auctions[&id];
        closed.entry(a.event.aux[0]).or_default().push((expires(a), id, price, a.cause));
    }
    let mut outputs = Vec::new();
    for (category, mut closed) in closed {
        closed.sort_unstable();
        let mut sum = 0i64;
        for (n, (expires, id, price, cause)) in (1i64..).zip(closed) {
            sum = sum.wrapping_add(price);
            let values = [n, sum, sum / n, id as i64];
            outputs.push((OutputId::main(category as u64, n as u64), want(values, cause, expires)));
        }
    }
    Expected::from_unsorted(outputs)
}

/// q5: per window (`ends_for`) the bids per auction; the auctions with the window's highest
/// count give id `(end, auction)`, `[auction, count, 0, 0]`, caused by the auction's bid with
/// the greatest event id in the window, ready at the window's end.
fn q5(records: &[Input], window: WindowSpec) -> Expected {
    // (end, auction) -> (count, greatest event id, its cause)
    let mut counts: BTreeMap<(u64, u64), (i64, u64, Cause)> = BTreeMap::new();
    for b in of_kind(records, BID) {
        for end in window.ends_for(b.event.event_time_ms) {
            let entry = counts.entry((end, b.event.key)).or_insert((0, b.event.id, b.cause));
            entry.0 += 1;
            if b.event.id >= entry.1 {
                (entry.1, entry.2) = (b.event.id, b.cause);
            }
        }
    }
    let mut most: BTreeMap<u64, i64> = BTreeMap::new();
    for (&(end, _), &(count, _, _)) in &counts {
        let m = most.entry(end).or_insert(count);
        *m = (*m).max(count);
    }
    let outputs = counts
        .into_iter()
        .filter(|((end, _), (count, _, _))| most[end] == *count)
        .map(|((end, auction), (count, _, cause))| {
            (OutputId::main(end, auction), want([auction as i64, count, 0, 0], cause, end))
        })
        .collect();
    Expected::from_unsorted(outputs)
}

/// q7: per window (`ends_for`, tumbling) the bids with the highest price; id `(end, event id)`,
/// `[auction, bidder, price, t]`, caused by the bid, ready at the window's end.
fn q7(records: &[Input], window: WindowSpec) -> Expected {
    let mut by_end: BTreeMap<u64, Vec<&Input>> = BTreeMap::new();
    for b in of_kind(records, BID) {
        for end in window.ends_for(b.event.event_time_ms) {
            by_end.entry(end).or_default().push(b);
        }
    }
    let mut outputs = Vec::new();
    for (end, bids) in by_end {
        let highest = bids.iter().map(|b| b.event.value).max().expect("a window holds a bid");
        for b in bids.into_iter().filter(|b| b.event.value == highest) {
            let e = &b.event;
            let values = [e.key as i64, e.aux[0], e.value, e.event_time_ms as i64];
            outputs.push((OutputId::main(end, e.id), want(values, b.cause, end)));
        }
    }
    Expected::from_unsorted(outputs)
}

/// q8: per window (`ends_for`, tumbling) the persons with a person record in it who are the
/// seller of at least one auction in it; id `(person, end)`, `[name, auctions, 0, 0]`, caused by
/// the person, ready at the window's end.
fn q8(records: &[Input], window: WindowSpec) -> Expected {
    let mut persons: BTreeMap<(u64, u64), &Input> = BTreeMap::new();
    for p in of_kind(records, PERSON) {
        for end in window.ends_for(p.event.event_time_ms) {
            persons.entry((p.event.key, end)).or_insert(p);
        }
    }
    let mut auctions: BTreeMap<(u64, u64), i64> = BTreeMap::new();
    for a in of_kind(records, AUCTION) {
        for end in window.ends_for(a.event.event_time_ms) {
            *auctions.entry((a.event.value as u64, end)).or_default() += 1;
        }
    }
    let outputs = persons
        .into_iter()
        .filter_map(|((person, end), p)| {
            let opened = *auctions.get(&(person, end))?;
            Some((OutputId::main(person, end), want([p.event.aux[1], opened, 0, 0], p.cause, end)))
        })
        .collect();
    Expected::from_unsorted(outputs)
}

#[cfg(test)]
mod tests {
    use faultline_engine::pipeline::nexmark::{Query, AUCTION, BID, PERSON};
    use faultline_engine::pipeline::{PipelineKind, WindowSpec};
    use faultline_engine::record::OutputId;

    use super::super::build::{cause, nx, pipeline};
    use super::super::{evaluate, Input, Want};

    fn run(q: Query, input: &[Input], window: WindowSpec, late: &[u64]) -> Vec<(OutputId, Want)> {
        let p = pipeline(PipelineKind::Nexmark(q), window);
        evaluate(input, &p, &late.iter().copied().collect()).iter().collect()
    }

    fn out(key: u64, seq: u64, values: [i64; 4], cause_id: u64, ready_ms: u64) -> (OutputId, Want) {
        (OutputId::main(key, seq), Want { values, cause: cause(cause_id), ready_ms })
    }

    const ANY: WindowSpec = WindowSpec::Tumbling { size_ms: 10 };

    fn bid(id: u64, auction: u64, price: i64, bidder: i64, t: u64) -> Input {
        nx(id, BID, auction, price, [bidder, 0, 0], t)
    }

    fn auction(id: u64, key: u64, seller: i64, category: i64, expires: i64, t: u64) -> Input {
        nx(id, AUCTION, key, seller, [category, expires, 0], t)
    }

    fn person(id: u64, key: u64, state: i64, city: i64, name: i64, t: u64) -> Input {
        nx(id, PERSON, key, state, [city, name, 0], t)
    }

    fn q012_input() -> Vec<Input> {
        let p = person(0, 1000, 1, 2, 3, 40);
        vec![p, bid(1, 246, 1000, 7, 50), auction(2, 5, 1000, 10, 99, 55), bid(3, 5, 333, 8, 60)]
    }

    #[test]
    fn q0_passes_every_bid_through() {
        let got = run(Query::Q0, &q012_input(), ANY, &[]);
        assert_eq!(got, [out(5, 3, [5, 8, 333, 60], 3, 60), out(246, 1, [246, 7, 1000, 50], 1, 50)]);
        assert_eq!(run(Query::Q0, &q012_input(), ANY, &[3]), [out(246, 1, [246, 7, 1000, 50], 1, 50)]);
    }

    #[test]
    fn q1_converts_prices_to_euros() {
        // 333 · 908 / 1000 = 302.364.
        let got = run(Query::Q1, &q012_input(), ANY, &[]);
        assert_eq!(got, [out(5, 3, [5, 8, 302, 60], 3, 60), out(246, 1, [246, 7, 908, 50], 1, 50)]);
    }

    #[test]
    fn q2_keeps_auctions_divisible_by_123() {
        assert_eq!(run(Query::Q2, &q012_input(), ANY, &[]), [out(246, 1, [246, 1000, 0, 0], 1, 50)]);
        assert!(run(Query::Q2, &q012_input(), ANY, &[1]).is_empty());
    }

    #[test]
    fn q3_joins_category_10_auctions_with_sellers_in_or_id_ca() {
        let input = [
            auction(0, 2004, 1000, 10, 99, 5),
            person(1, 1000, 3, 4, 512, 10),
            person(2, 1001, 0, 1, 1, 11),
            auction(3, 2000, 1000, 10, 99, 20),
            auction(4, 2001, 1000, 11, 99, 21),
            auction(5, 2002, 1001, 10, 99, 22),
            auction(6, 2003, 1002, 10, 99, 23),
        ];
        let got = run(Query::Q3, &input, ANY, &[]);
        assert_eq!(
            got,
            [out(1000, 2000, [512, 4, 3, 2000], 3, 20), out(1000, 2004, [512, 4, 3, 2004], 0, 10)]
        );
        assert!(run(Query::Q3, &input, ANY, &[1]).is_empty(), "no seller without the person");
    }

    fn q4_input() -> Vec<Input> {
        vec![
            auction(0, 1, 900, 10, 100, 0),
            auction(1, 2, 900, 10, 50, 10),
            auction(2, 3, 900, 11, 80, 0),
            auction(3, 4, 900, 10, 100, 0),
            auction(4, 5, 900, 10, 100, 0),
            bid(5, 1, 10, 0, 5),
            bid(6, 1, 30, 0, 100),
            bid(7, 1, 99, 0, 101),
            bid(8, 2, 500, 0, 5),
            bid(9, 2, 20, 0, 50),
            bid(10, 3, 7, 0, 0),
            bid(11, 4, 1000, 0, 101),
            bid(12, 5, 1, 0, 3),
            bid(13, 6, 1000, 0, 3),
        ]
    }

    #[test]
    fn q4_averages_closing_prices_per_category_in_expiry_order() {
        // Category 10 closes B=2 (50, 20), then A=1 (100, 30) and E=5 (100, 1) in id order;
        // D=4's only bid comes after it expires, the bid on 6 has no auction.
        let got = run(Query::Q4, &q4_input(), ANY, &[]);
        assert_eq!(
            got,
            [
                out(10, 1, [1, 20, 20, 2], 1, 50),
                out(10, 2, [2, 50, 25, 1], 0, 100),
                out(10, 3, [3, 51, 17, 5], 4, 100),
                out(11, 1, [1, 7, 7, 3], 2, 80),
            ]
        );
    }

    #[test]
    fn q4_leaves_late_bids_and_auctions_out() {
        let got = run(Query::Q4, &q4_input(), ANY, &[6, 2]);
        assert_eq!(
            got,
            [
                out(10, 1, [1, 20, 20, 2], 1, 50),
                out(10, 2, [2, 30, 15, 1], 0, 100),
                out(10, 3, [3, 31, 10, 5], 4, 100)
            ]
        );
    }

    fn q5_input() -> Vec<Input> {
        vec![
            bid(0, 1, 9, 0, 1),
            bid(1, 1, 9, 0, 6),
            bid(2, 2, 9, 0, 7),
            bid(3, 2, 9, 0, 8),
            bid(4, 3, 9, 0, 12),
        ]
    }

    #[test]
    fn q5_finds_the_hottest_auctions_per_sliding_window() {
        let window = WindowSpec::Sliding { size_ms: 10, slide_ms: 5 };
        let got = run(Query::Q5, &q5_input(), window, &[]);
        assert_eq!(
            got,
            [
                out(5, 1, [1, 1, 0, 0], 0, 5),
                out(10, 1, [1, 2, 0, 0], 1, 10),
                out(10, 2, [2, 2, 0, 0], 3, 10),
                out(15, 2, [2, 2, 0, 0], 3, 15),
                out(20, 3, [3, 1, 0, 0], 4, 20),
            ]
        );
        let late = run(Query::Q5, &q5_input(), window, &[3]);
        let tens: Vec<_> = late.iter().filter(|(id, _)| id.key == 10).copied().collect();
        assert_eq!(tens, [out(10, 1, [1, 2, 0, 0], 1, 10)]);
        let fifteens: Vec<_> =
            late.iter().filter(|(id, _)| id.key == 15).map(|(id, w)| (id.seq, w.cause)).collect();
        assert_eq!(fifteens, [(1, cause(1)), (2, cause(2)), (3, cause(4))]);
    }

    #[test]
    fn q7_keeps_every_bid_at_the_window_high() {
        let input = [bid(0, 1, 5, 9, 1), bid(1, 2, 8, 7, 3), bid(2, 3, 8, 6, 9), bid(3, 1, 2, 5, 12)];
        let got = run(Query::Q7, &input, ANY, &[]);
        assert_eq!(
            got,
            [
                out(10, 1, [2, 7, 8, 3], 1, 10),
                out(10, 2, [3, 6, 8, 9], 2, 10),
                out(20, 3, [1, 5, 2, 12], 3, 20)
            ]
        );
        let late = run(Query::Q7, &input, ANY, &[1, 2]);
        assert_eq!(late[0], out(10, 0, [1, 9, 5, 1], 0, 10));
    }

    #[test]
    fn q8_finds_new_persons_selling_in_the_same_window() {
        let input = [
            person(0, 1000, 0, 0, 307, 1),
            person(1, 1001, 0, 0, 5, 2),
            auction(2, 1, 1003, 10, 99, 3),
            auction(3, 2, 1000, 10, 99, 4),
            auction(4, 3, 1000, 11, 99, 8),
            auction(5, 4, 1001, 10, 99, 12),
            person(6, 1002, 0, 0, 42, 15),
            auction(7, 5, 1002, 10, 99, 18),
        ];
        let got = run(Query::Q8, &input, ANY, &[]);
        assert_eq!(got, [out(1000, 10, [307, 2, 0, 0], 0, 10), out(1002, 20, [42, 1, 0, 0], 6, 20)]);
        let late = run(Query::Q8, &input, ANY, &[4, 6]);
        assert_eq!(late, [out(1000, 10, [307, 1, 0, 0], 0, 10)]);
    }

    /// Properties over a generated Nexmark input.
    mod generated {
        use std::collections::{BTreeMap, BTreeSet};

        use faultline_engine::pipeline::nexmark::{Query, AUCTION, BID, PERSON};
        use faultline_engine::pipeline::{PipelineKind, WindowSpec};
        use faultline_engine::record::OutputId;
        use faultline_engine::workload::{Input as Source, WorkloadSpec};

        use super::super::super::build::pipeline;
        use super::super::super::{evaluate, inputs, Input, Want};

        const TUMBLING: WindowSpec = WindowSpec::Tumbling { size_ms: 200 };
        const SLIDING: WindowSpec = WindowSpec::Sliding { size_ms: 400, slide_ms: 100 };

        fn input() -> Vec<Input> {
            let workload = WorkloadSpec {
                input: Source::Nexmark,
                seed: 7, // one whose 2000 events hold q3 and q8 matches (seeds shift the ids)
                events: 2000,
                keys: 2,
                partitions: 3,
                producers: 2,
                rate_per_s: 1000,
                value_max: 0,
                streams: 1,
                disorder_ms: 50,
                late_per_mille: 0,
                late_by_ms: 0,
            };
            inputs(&workload)
        }

        fn run(q: Query, input: &[Input], window: WindowSpec) -> Vec<(OutputId, Want)> {
            evaluate(input, &pipeline(PipelineKind::Nexmark(q), window), &BTreeSet::new()).iter().collect()
        }

        fn of_kind(input: &[Input], kind: u8) -> Vec<Input> {
            input.iter().filter(|i| i.event.kind == kind).copied().collect()
        }

        fn by_id(input: &[Input]) -> BTreeMap<u64, Input> {
            input.iter().map(|i| (i.event.id, *i)).collect()
        }

        #[test]
        fn q0_and_q1_output_every_bid() {
            let input = input();
            let bids = by_id(&of_kind(&input, BID));
            assert!(bids.len() > 1000);
            for q in [Query::Q0, Query::Q1] {
                let got = run(q, &input, TUMBLING);
                assert_eq!(got.len(), bids.len());
                for (id, want) in got {
                    let b = bids[&id.seq];
                    assert_eq!(
                        (id.key, want.cause, want.ready_ms),
                        (b.event.key, b.cause, b.event.event_time_ms)
                    );
                    let price = if q == Query::Q0 { b.event.value } else { b.event.value * 908 / 1000 };
                    assert_eq!(want.values[2], price);
                }
            }
        }

        #[test]
        fn q2_outputs_only_auctions_divisible_by_123() {
            let input = input();
            let got = run(Query::Q2, &input, TUMBLING);
            assert!(got.iter().all(|(id, w)| id.key % 123 == 0 && w.values[0] == id.key as i64));
            let kept = of_kind(&input, BID).iter().filter(|b| b.event.key % 123 == 0).count();
            assert_eq!(got.len(), kept);
            assert!(kept > 0);
        }

        #[test]
        fn q3_joins_each_qualifying_auction_with_its_seller() {
            let input = input();
            let persons: BTreeMap<u64, Input> =
                of_kind(&input, PERSON).iter().map(|p| (p.event.key, *p)).collect();
            let auctions: BTreeMap<u64, Input> =
                of_kind(&input, AUCTION).iter().map(|a| (a.event.key, *a)).collect();
            let got = run(Query::Q3, &input, TUMBLING);
            for (id, want) in &got {
                let (p, a) = (persons[&id.key], auctions[&id.seq]);
                assert!((1..=3).contains(&p.event.value) && want.values[2] == p.event.value);
                assert_eq!((a.event.aux[0], a.event.value as u64, want.cause), (10, id.key, a.cause));
            }
            let matching = auctions
                .values()
                .filter(|a| a.event.aux[0] == 10)
                .filter(|a| {
                    persons.get(&(a.event.value as u64)).is_some_and(|p| (1..=3).contains(&p.event.value))
                })
                .count();
            assert_eq!(got.len(), matching);
            assert!(matching > 0);
        }

        #[test]
        fn q4_numbers_each_categorys_closed_auctions() {
            let got = run(Query::Q4, &input(), TUMBLING);
            assert!(!got.is_empty());
            let mut last: BTreeMap<u64, (u64, u64, i64)> = BTreeMap::new();
            for (id, w) in &got {
                let (n, ready, sum) = last.get(&id.key).copied().unwrap_or((0, 0, 0));
                assert_eq!(id.seq, n + 1);
                assert!(w.ready_ms >= ready, "closed in expiry order");
                assert!(w.values[1] > sum && w.values[2] == w.values[1] / w.values[0]);
                assert_eq!(w.values[0], id.seq as i64);
                last.insert(id.key, (id.seq, w.ready_ms, w.values[1]));
            }
        }

        #[test]
        fn q5_outputs_per_window_the_auctions_with_the_most_bids() {
            let input = input();
            let got = run(Query::Q5, &input, SLIDING);
            let mut counts: BTreeMap<(u64, u64), i64> = BTreeMap::new();
            for b in of_kind(&input, BID) {
                for end in SLIDING.ends_for(b.event.event_time_ms) {
                    *counts.entry((end, b.event.key)).or_default() += 1;
                }
            }
            let ends: BTreeSet<u64> = counts.keys().map(|&(end, _)| end).collect();
            let got_ends: BTreeSet<u64> = got.iter().map(|(id, _)| id.key).collect();
            assert_eq!(ends, got_ends);
            for (id, w) in &got {
                let most = counts.range((id.key, 0)..=(id.key, u64::MAX)).map(|(_, &c)| c).max().unwrap();
                assert_eq!((w.values[1], w.values[0] as u64, w.ready_ms), (most, id.seq, id.key));
            }
        }

        #[test]
        fn q7_outputs_one_price_per_window_the_highest() {
            let input = input();
            let got = run(Query::Q7, &input, TUMBLING);
            let mut prices: BTreeMap<u64, BTreeSet<i64>> = BTreeMap::new();
            for (id, w) in &got {
                prices.entry(id.key).or_default().insert(w.values[2]);
            }
            assert!(prices.len() >= 5);
            for b in of_kind(&input, BID) {
                let end = b.event.event_time_ms / 200 * 200 + 200;
                let window = &prices[&end];
                assert_eq!(window.len(), 1, "one price per window");
                assert!(b.event.value <= *window.first().unwrap());
            }
        }

        #[test]
        fn q8_outputs_persons_who_sold_in_their_first_window() {
            let input = input();
            let got = run(Query::Q8, &input, TUMBLING);
            assert!(!got.is_empty());
            let window = |t: u64| t / 200 * 200 + 200;
            let persons: BTreeMap<u64, Input> =
                of_kind(&input, PERSON).iter().map(|p| (p.event.key, *p)).collect();
            for (id, w) in &got {
                let p = persons[&id.key];
                assert_eq!(
                    (window(p.event.event_time_ms), w.values[0], w.cause),
                    (id.seq, p.event.aux[1], p.cause)
                );
                let sold = of_kind(&input, AUCTION)
                    .iter()
                    .filter(|a| a.event.value as u64 == id.key && window(a.event.event_time_ms) == id.seq)
                    .count();
                assert_eq!(w.values[1], sold as i64);
            }
        }
    }
}
