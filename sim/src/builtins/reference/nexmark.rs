//! The Nexmark queries q0, q1, q2, q3, q4, q5, q7 and q8 as batch evaluations over the whole
//! (non-late) input of the `nexmark` crate's events, each straight from its definition in
//! `faultline_engine::pipeline::nexmark` and the typed queries' outputs
//! (`faultline_engine::operators::builtin::nexmark`).
//!
//! Ids follow the engine's provenance: a bid passed through is the bid's output; q4's and q8's
//! results are their timers' (q4: `expires + lateness + 1`, tag the auction; q8: the window's
//! end `+ lateness`, tag the end); q3, q5 and q7 identify their outputs by content.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use faultline_engine::operators::builtin::nexmark::{
    q1_euros, q2_keeps, q3_state, AuctionPrice, CategoryAverage, HotItem, NewUser, SellerAuction, Q3_CATEGORY,
};
use faultline_engine::pipeline::nexmark::Query;
use faultline_engine::pipeline::WindowSpec;
use faultline_engine::record::{Cause, Origin};
use faultline_engine::sdk::codec::{decode_borrowed, encode_append, try_decode_prefix, Text};
use faultline_engine::sdk::Blob;
use serde::{Deserialize, Serialize};

use super::{expect, expect_encoded, Expect, Expected, Input};

/// The `nexmark` crate's events decoded in place: the same variants and fields in the same
/// order, with borrowed strings, so that decoding allocates nothing and encoding one gives the
/// owned event's bytes (`borrowed_events_encode_as_the_crates`).
#[derive(Deserialize)]
enum EventRef<'a> {
    Person(#[serde(borrow)] PersonRef<'a>),
    Auction(#[serde(borrow)] AuctionRef<'a>),
    Bid(#[serde(borrow)] BidRef<'a>),
}

/// [`nexmark::event::Person`], borrowed.
#[derive(Deserialize, Serialize)]
struct PersonRef<'a> {
    id: usize,
    name: &'a str,
    email_address: &'a str,
    credit_card: &'a str,
    city: &'a str,
    state: &'a str,
    date_time: u64,
    extra: &'a str,
}

/// [`nexmark::event::Auction`], borrowed.
#[derive(Deserialize, Serialize)]
struct AuctionRef<'a> {
    id: usize,
    item_name: &'a str,
    description: &'a str,
    initial_bid: usize,
    reserve: usize,
    date_time: u64,
    expires: u64,
    seller: usize,
    category: usize,
    extra: &'a str,
}

/// [`nexmark::event::Bid`], borrowed. Its strings are carried, never read: as [`Text`], they
/// are not checked for UTF-8 on every bid of the input.
#[derive(Clone, Copy, Deserialize, Serialize)]
struct BidRef<'a> {
    auction: usize,
    bidder: usize,
    price: usize,
    #[serde(borrow)]
    channel: Text<'a>,
    #[serde(borrow)]
    url: Text<'a>,
    date_time: u64,
    #[serde(borrow)]
    extra: Text<'a>,
}

/// The inputs decoded one at a time, in place, with their causes. The queries read them in one
/// pass and keep only what they need: a run's input is large, and holding all of it decoded
/// would cost more than the rest of the judging.
fn decoded(records: &[Input]) -> impl Iterator<Item = (EventRef<'_>, Cause)> + '_ {
    records.iter().map(|i| (decode_borrowed(&i.event.value), i.cause))
}

fn bids_of(records: &[Input]) -> impl Iterator<Item = (BidRef<'_>, Cause)> + '_ {
    decoded(records).filter_map(|(e, cause)| match e {
        EventRef::Bid(b) => Some((b, cause)),
        _ => None,
    })
}

/// Evaluates `query` over `records` (late ones already removed); `window` gives q5's sliding
/// windows and q7's and q8's tumbling ones (through `WindowSpec::ends_for`).
pub(super) fn evaluate(query: Query, records: &[Input], window: WindowSpec, lateness: u64) -> Expected {
    let outputs = match query {
        Query::Q0 => passed_through(records),
        Query::Q1 => bids(records, |b| Some(BidRef { price: q1_euros(b.price), ..b })),
        Query::Q2 => {
            let by_auction = |b: BidRef<'_>| {
                q2_keeps(b.auction).then_some(AuctionPrice { auction: b.auction, price: b.price })
            };
            bids(records, by_auction)
        }
        Query::Q3 => q3(records),
        Query::Q4 => q4(records, lateness),
        Query::Q5 => q5(records, window),
        Query::Q7 => q7(records, window),
        Query::Q8 => q8(records, window, lateness),
    };
    Expected::from_unsorted(outputs)
}

/// q0: every bid as it came — its encoding, which is the event's after the variant number —
/// under its auction, from the bid, ready at its time.
fn passed_through(records: &[Input]) -> Vec<Expect> {
    let bid = |i: &Input| {
        let (variant, body) = try_decode_prefix::<u32>(&i.event.value).expect("an event's variant");
        let EventRef::Bid(b) = decode_borrowed(&i.event.value) else { return None };
        assert_eq!(variant, 2, "a bid is the events' third variant");
        let value = i.event.value.suffix(i.event.value.len() - body.len());
        Some(expect_encoded(&(b.auction as u64), Origin::Input(i.cause), value, Some(i.cause), b.date_time))
    };
    let mut out = Vec::with_capacity(records.len());
    out.extend(records.iter().filter_map(bid));
    out
}

/// q1, q2: per bid, `project` kept, under its auction, from the bid, ready at its time.
fn bids<'a, T: Serialize>(records: &'a [Input], project: impl Fn(BidRef<'a>) -> Option<T>) -> Vec<Expect> {
    let mut out = Vec::with_capacity(records.len());
    let mut block = Block::default();
    for (b, cause) in bids_of(records) {
        if let Some(projected) = project(b) {
            let at = encode_append(&projected, &mut block.buf);
            block.made.push((b.auction as u64, cause, at, b.date_time));
            if block.buf.len() >= BLOCK_BYTES {
                block.close(&mut out);
            }
        }
    }
    block.close(&mut out);
    out
}

/// How many bytes of encodings a [`Block`] gathers before it is closed.
const BLOCK_BYTES: usize = 64 << 10;

/// Expected outputs of bids, their values encoded into one buffer they share, as the workload
/// encodes its events: an allocation per block of them rather than one per bid, in the order
/// they are read. Blocks stay small: one buffer for a whole run's outputs is a fresh mapping
/// of tens of megabytes, faulted in page by page each time it is judged.
#[derive(Default)]
struct Block {
    buf: Vec<u8>,
    /// Per output: its auction, its bid, where its value lies in `buf`, and when it was ready.
    made: Vec<(u64, Cause, Range<usize>, u64)>,
}

impl Block {
    /// Makes the block's outputs, sharing its buffer, and starts the next block.
    fn close(&mut self, out: &mut Vec<Expect>) {
        let buf = Arc::new(std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK_BYTES + 256)));
        for (auction, cause, at, ready) in self.made.drain(..) {
            assert!(at.end <= buf.len(), "an encoding past its block's end");
            out.push(expect_encoded(
                &auction,
                Origin::Input(cause),
                Blob::within(&buf, at),
                Some(cause),
                ready,
            ));
        }
    }
}

/// q3: every category-10 auction whose seller is a person in OR, ID or CA anywhere in the
/// input, under the person, ready at the later of the two times.
fn q3(records: &[Input]) -> Vec<Expect> {
    let mut persons: BTreeMap<usize, PersonRef<'_>> = BTreeMap::new();
    let mut auctions = Vec::new();
    for (e, _) in decoded(records) {
        match e {
            EventRef::Person(p) => _ = persons.entry(p.id).or_insert(p),
            EventRef::Auction(a) if a.category == Q3_CATEGORY => auctions.push(a),
            _ => {}
        }
    }
    auctions
        .into_iter()
        .filter_map(|a| {
            let p = persons.get(&a.seller).filter(|p| q3_state(p.state))?;
            let out = SellerAuction {
                name: p.name.into(),
                city: p.city.into(),
                state: p.state.into(),
                auction: a.id,
            };
            let ready_ms = p.date_time.max(a.date_time);
            Some(expect(&(p.id as u64), Origin::Content(0), &out, None, ready_ms))
        })
        .collect()
}

/// q4: each auction with a counting bid (`auction.t ≤ bid.t ≤ expires`) closes at its highest
/// counting price; per category, the n-th closed auction in `(expires, auction id)` order gives
/// the running sum and average of n prices, from the timer at `expires + lateness + 1` (tag:
/// the auction), ready at expires.
fn q4(records: &[Input], lateness: u64) -> Vec<Expect> {
    let mut auctions: BTreeMap<usize, AuctionRef<'_>> = BTreeMap::new();
    // A bid may come before its auction in the input: its (auction, time, price) waits.
    let mut bids = Vec::new();
    for (e, _) in decoded(records) {
        match e {
            EventRef::Auction(a) => _ = auctions.entry(a.id).or_insert(a),
            EventRef::Bid(b) => bids.push((b.auction, b.date_time, b.price)),
            EventRef::Person(_) => {}
        }
    }
    let mut closing: BTreeMap<usize, usize> = BTreeMap::new();
    for (auction, t, bid_price) in bids {
        let Some(a) = auctions.get(&auction) else { continue };
        if (a.date_time..=a.expires).contains(&t) {
            let price = closing.entry(a.id).or_insert(bid_price);
            *price = (*price).max(bid_price);
        }
    }
    let mut closed: BTreeMap<usize, Vec<(u64, usize, usize)>> = BTreeMap::new();
    for (id, price) in closing {
        let a = &auctions[&id];
        closed.entry(a.category).or_default().push((a.expires, id, price));
    }
    let mut outputs = Vec::new();
    for (category, mut closed) in closed {
        closed.sort_unstable();
        let mut sum = 0u64;
        for (n, (expires, auction, price)) in (1u64..).zip(closed) {
            sum += price as u64;
            let category = category as u64;
            let out = CategoryAverage { category, closed: n, sum, average: sum / n, auction };
            let origin = Origin::Timer { at_ms: expires + lateness + 1, tag: auction as u64 };
            outputs.push(expect(&category, origin, &out, None, expires));
        }
    }
    outputs
}

/// q5: per window (`ends_for`) the bids per auction; the auctions with the window's highest
/// count, under the window's end, ready at it.
fn q5(records: &[Input], window: WindowSpec) -> Vec<Expect> {
    let mut counts: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for (b, _) in bids_of(records) {
        for end in window.ends_for(b.date_time) {
            *counts.entry((end, b.auction as u64)).or_default() += 1;
        }
    }
    let mut most: BTreeMap<u64, u64> = BTreeMap::new();
    for (&(end, _), &count) in &counts {
        let m = most.entry(end).or_insert(count);
        *m = (*m).max(count);
    }
    counts
        .into_iter()
        .filter(|((end, _), count)| most[end] == *count)
        .map(|((end, auction), count)| {
            expect(&end, Origin::Content(0), &HotItem { end, auction, count }, None, end)
        })
        .collect()
}

/// q7: per window (`ends_for`, tumbling) the bids with the highest price, under the window's
/// end, ready at it.
fn q7(records: &[Input], window: WindowSpec) -> Vec<Expect> {
    // Per window end: the highest price so far and the bids at it.
    let mut by_end: BTreeMap<u64, (usize, Vec<BidRef<'_>>)> = BTreeMap::new();
    for (b, _) in bids_of(records) {
        for end in window.ends_for(b.date_time) {
            let (highest, at) = by_end.entry(end).or_insert((b.price, Vec::new()));
            if b.price > *highest {
                (*highest, *at) = (b.price, Vec::new());
            }
            if b.price == *highest {
                at.push(b);
            }
        }
    }
    let mut outputs = Vec::new();
    for (end, (_, bids)) in by_end {
        assert!(!bids.is_empty(), "window {end} keeps the bids at its highest price");
        for b in &bids {
            outputs.push(expect(&end, Origin::Content(0), b, None, end));
        }
    }
    outputs
}

/// q8: per window (`ends_for`, tumbling) the persons with a person record in it who are the
/// seller of at least one auction in it, under the person, from the timer at the window's end
/// plus the lateness, ready at the end.
fn q8(records: &[Input], window: WindowSpec, lateness: u64) -> Vec<Expect> {
    let mut persons: BTreeMap<(u64, u64), &str> = BTreeMap::new();
    let mut auctions: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for (e, _) in decoded(records) {
        match e {
            EventRef::Person(p) => {
                for end in window.ends_for(p.date_time) {
                    persons.insert((p.id as u64, end), p.name);
                }
            }
            EventRef::Auction(a) => {
                for end in window.ends_for(a.date_time) {
                    *auctions.entry((a.seller as u64, end)).or_default() += 1;
                }
            }
            EventRef::Bid(_) => {}
        }
    }
    persons
        .into_iter()
        .filter_map(|((person, end), name)| {
            let opened = *auctions.get(&(person, end))?;
            let out = NewUser { person, name: name.into(), end, auctions: opened };
            Some(expect(&person, Origin::Timer { at_ms: end + lateness, tag: end }, &out, None, end))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::builtins::spec::BuiltinKind;
    use faultline_engine::operators::builtin::nexmark::{CategoryAverage, HotItem, NewUser, SellerAuction};
    use faultline_engine::pipeline::nexmark::Query;
    use faultline_engine::pipeline::WindowSpec;
    use faultline_engine::record::{Cause, Event as Logged, KeyBytes};
    use faultline_engine::sdk::codec::{decode, encode};
    use nexmark::event::{Auction, Bid, Event, Person};

    use super::super::build::{cause, pipeline};
    use super::super::{evaluate, Input};

    const ANY: WindowSpec = WindowSpec::Tumbling { size_ms: 10 };

    fn input(id: u64, key: u64, event: Event) -> Input {
        let logged =
            Logged { id, key: KeyBytes::of(&key), value: encode(&event), event_time_ms: event.timestamp() };
        Input { event: logged, cause: cause(id), partition: 0 }
    }

    fn bid(id: u64, auction: usize, price: usize, bidder: usize, t: u64) -> Input {
        let b = Bid {
            auction,
            bidder,
            price,
            channel: String::new(),
            url: String::new(),
            date_time: t,
            extra: String::new(),
        };
        input(id, auction as u64, Event::Bid(b))
    }

    fn auction(id: u64, aid: usize, seller: usize, category: usize, expires: u64, t: u64) -> Input {
        let a = Auction {
            id: aid,
            item_name: String::new(),
            description: String::new(),
            initial_bid: 0,
            reserve: 0,
            date_time: t,
            expires,
            seller,
            category,
            extra: String::new(),
        };
        input(id, aid as u64, Event::Auction(a))
    }

    fn person(id: u64, pid: usize, state: &str, name: &str, t: u64) -> Input {
        let p = Person {
            id: pid,
            name: name.into(),
            email_address: String::new(),
            credit_card: String::new(),
            city: "boise".into(),
            state: state.into(),
            date_time: t,
            extra: String::new(),
        };
        input(id, pid as u64, Event::Person(p))
    }

    fn run<T: serde::de::DeserializeOwned>(
        q: Query,
        input: &[Input],
        window: WindowSpec,
        late: &[u64],
    ) -> Vec<T> {
        let late: BTreeSet<(Cause, u32)> = late.iter().map(|&i| (cause(i), 0)).collect();
        let e = evaluate(input, &pipeline(BuiltinKind::Nexmark(q), window), &late);
        e.iter().map(|(_, w)| decode(&w.value)).collect()
    }

    #[test]
    fn borrowed_events_encode_as_the_crates() {
        let config = faultline_engine::pipeline::nexmark::config(3, 1000);
        let events = nexmark::EventGenerator::new(config).take(500);
        let mut kinds = [0; 3];
        for event in events {
            let bytes = encode(&event);
            let again = match (super::decode_borrowed::<super::EventRef<'_>>(&bytes), &event) {
                (super::EventRef::Person(p), Event::Person(owned)) => (encode(&p), encode(owned), 0),
                (super::EventRef::Auction(a), Event::Auction(owned)) => (encode(&a), encode(owned), 1),
                (super::EventRef::Bid(b), Event::Bid(owned)) => (encode(&b), encode(owned), 2),
                _ => panic!("{event:?} decoded as another kind"),
            };
            assert_eq!(again.0, again.1, "{event:?}");
            kinds[again.2] += 1;
        }
        assert!(kinds.iter().all(|&n| n > 0), "every kind seen: {kinds:?}");
    }

    #[test]
    fn q0_to_q2_pass_bids_through() {
        let input = [person(0, 1000, "or", "a b", 40), bid(1, 246, 1000, 7, 50), bid(3, 5, 333, 8, 60)];
        let prices = |q, late: &[u64]| -> Vec<usize> {
            let e = evaluate(
                &input,
                &pipeline(BuiltinKind::Nexmark(q), ANY),
                &late.iter().map(|&i| (cause(i), 0)).collect(),
            );
            let mut v: Vec<usize> = e.iter().map(|(_, w)| decode::<Bid>(&w.value).price).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(prices(Query::Q0, &[]), [333, 1000]);
        assert_eq!(prices(Query::Q0, &[3]), [1000]);
        assert_eq!(prices(Query::Q1, &[]), [302, 908]);
        let q2: Vec<faultline_engine::operators::builtin::nexmark::AuctionPrice> =
            run(Query::Q2, &input, ANY, &[]);
        assert_eq!(q2.len(), 1, "only auction 246 is a multiple of 123");
    }

    #[test]
    fn q3_joins_category_10_auctions_with_sellers_in_or_id_ca() {
        let input = [
            auction(0, 2004, 1000, 10, 99, 5),
            person(1, 1000, "or", "luke kate", 10),
            person(2, 1001, "az", "paul john", 11),
            auction(3, 2000, 1000, 10, 99, 20),
            auction(4, 2001, 1000, 11, 99, 21),
            auction(5, 2002, 1001, 10, 99, 22),
        ];
        let mut got: Vec<SellerAuction> = run(Query::Q3, &input, ANY, &[]);
        got.sort();
        assert_eq!(got.iter().map(|s| s.auction).collect::<Vec<_>>(), [2000, 2004]);
        assert!(got.iter().all(|s| s.name == "luke kate" && s.state == "or"));
        assert!(
            run::<SellerAuction>(Query::Q3, &input, ANY, &[1]).is_empty(),
            "no seller without the person"
        );
    }

    #[test]
    fn q4_averages_closing_prices_per_category_in_expiry_order() {
        let input = [
            auction(0, 1, 900, 10, 100, 0),
            auction(1, 2, 900, 10, 50, 10),
            auction(2, 3, 900, 11, 80, 0),
            bid(5, 1, 10, 0, 5),
            bid(6, 1, 30, 0, 100),
            bid(7, 1, 99, 0, 101),
            bid(8, 2, 500, 0, 5),
            bid(9, 2, 20, 0, 50),
            bid(10, 3, 7, 0, 0),
            bid(13, 6, 1000, 0, 3),
        ];
        let got: Vec<(u64, u64, u64, usize)> = run::<CategoryAverage>(Query::Q4, &input, ANY, &[])
            .into_iter()
            .map(|c| (c.category, c.closed, c.sum, c.auction))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(got, [(10, 1, 20, 2), (10, 2, 50, 1), (11, 1, 7, 3)]);
    }

    #[test]
    fn q5_finds_the_hottest_auctions_per_sliding_window() {
        let input = [
            bid(0, 1, 9, 0, 1),
            bid(1, 1, 9, 0, 6),
            bid(2, 2, 9, 0, 7),
            bid(3, 2, 9, 0, 8),
            bid(4, 3, 9, 0, 12),
        ];
        let window = WindowSpec::Sliding { size_ms: 10, slide_ms: 5 };
        let mut got: Vec<HotItem> = run(Query::Q5, &input, window, &[]);
        got.sort();
        let hot = |end, auction, count| HotItem { end, auction, count };
        assert_eq!(got, [hot(5, 1, 1), hot(10, 1, 2), hot(10, 2, 2), hot(15, 2, 2), hot(20, 3, 1)]);
    }

    #[test]
    fn q7_keeps_every_bid_at_the_window_high_and_q8_the_new_sellers() {
        let input = [bid(0, 1, 5, 9, 1), bid(1, 2, 8, 7, 3), bid(2, 3, 8, 6, 9), bid(3, 1, 2, 5, 12)];
        let got: Vec<usize> = run::<Bid>(Query::Q7, &input, ANY, &[]).iter().map(|b| b.auction).collect();
        assert_eq!(got.len(), 3, "two bids at 8 in the first window, one in the second: {got:?}");
        let input = [
            person(0, 1000, "or", "a", 1),
            person(1, 1001, "or", "b", 2),
            auction(3, 2, 1000, 10, 99, 4),
            auction(4, 3, 1000, 11, 99, 8),
            auction(5, 4, 1001, 10, 99, 12),
        ];
        let got: Vec<NewUser> = run(Query::Q8, &input, ANY, &[]);
        assert_eq!(got, [NewUser { person: 1000, name: "a".into(), end: 10, auctions: 2 }]);
    }
}
