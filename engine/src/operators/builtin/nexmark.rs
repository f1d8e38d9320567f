//! The Nexmark queries q0–q5, q7 and q8 on the typed SDK, over the `nexmark` crate's own
//! events — persons, auctions and bids with their names, cities and states as strings.
//!
//! Each query is a source-side step ([`prepare`]: which events it reads, and the key and input
//! of its first keyed stage) and one or two keyed stages. The definitions are those of
//! `crate::pipeline::nexmark`, with the crate's fields in place of encoded numbers:
//! - q0 every bid; q1 every bid with its price in euros (`price · 908 / 1000`); q2 the bids of
//!   auctions whose id is a multiple of 123, as `(auction, price)`;
//! - q3 persons in OR, ID or CA joined with auctions of category 10 on the seller (content
//!   identity: which side arrives second decides where the pair is emitted);
//! - q4 per category, the running average of closing prices, one output per closed auction in
//!   `(expires, auction id)` order;
//! - q5 per sliding window, the auctions with the most bids (content identity: ties);
//! - q7 per tumbling window, the bids with the highest price (content identity: ties);
//! - q8 per tumbling window, the persons who opened at least one auction in it.

use crate::sdk::Blob;
use nexmark::event::{Bid, Event, Person};
use serde::{Deserialize, Serialize};

use crate::pipeline::nexmark::Query;
use crate::pipeline::WindowSpec;
use crate::sdk::codec::{decode_borrowed, encode, encode_append, written_blob, KeyBytes};
use crate::sdk::operator::{Ctx, Encoded, ErasedOperator, Identity, Operator, Timer, Typed};
use crate::sdk::{ListState, MapState, ValueState};

/// q2's filter: auctions whose id is a multiple of 123.
pub fn q2_keeps(auction: usize) -> bool {
    auction.is_multiple_of(123)
}

/// q1's currency conversion.
pub fn q1_euros(price: usize) -> usize {
    price * 908 / 1000
}

/// q3's person filter: Oregon, Idaho, California.
pub fn q3_state(state: &str) -> bool {
    matches!(state, "or" | "id" | "ca")
}

/// q3's auction filter.
pub const Q3_CATEGORY: usize = 10;

fn tumbling_end(window: WindowSpec, t: u64) -> u64 {
    let size = window.size_ms();
    t - t % size + size
}

/// The leading fields of an encoded event, borrowed: what [`prepare_encoded`] needs to key
/// and filter without decoding (and allocating) the event's strings. Postcard writes a struct
/// as its fields in order, so a prefix of the fields reads the front of the encoding. A string
/// is its length and its bytes, as a byte slice is: the strings skipped are read as bytes, which
/// spares checking that they are UTF-8.
#[derive(Deserialize)]
struct BidHead<'a> {
    _auction: usize,
    _bidder: usize,
    _price: usize,
    _channel: &'a [u8],
    _url: &'a [u8],
    date_time: u64,
}

#[derive(Deserialize)]
struct PersonHead<'a> {
    id: usize,
    _name: &'a [u8],
    _email_address: &'a [u8],
    _credit_card: &'a [u8],
    _city: &'a [u8],
    state: &'a str,
}

#[derive(Deserialize)]
struct AuctionHead<'a> {
    id: usize,
    _item_name: &'a [u8],
    _description: &'a [u8],
    _initial_bid: usize,
    _reserve: usize,
    _date_time: u64,
    _expires: u64,
    seller: usize,
    category: usize,
}

/// The variants of [`Event`], as postcard numbers them.
const PERSON_EVENT: u32 = 0;
const AUCTION_EVENT: u32 = 1;
const BID_EVENT: u32 = 2;

/// [`prepare`] on an encoded event, decoding only the fields it keys and filters by. A bid's
/// input is the bid's own encoding, which is the event's after its variant number (a suffix
/// of the event's blob, not a copy); the queries that take whole events take the bytes as
/// they are.
///
/// # Panics
/// If `event` does not hold an [`Event`] (the source only reads what the producers encoded).
pub fn prepare_encoded(query: Query, window: WindowSpec, event: &Blob) -> Option<(KeyBytes, Blob)> {
    let (variant, body) = take::<u32>(event);
    let keyed = |key: u64, input: Blob| Some((KeyBytes::of(&key), input));
    match variant {
        BID_EVENT => {
            // The auction is the bid's first field: most queries read no further.
            let auction: usize = take(body).0;
            let own = || event.suffix(event.len() - body.len());
            match query {
                Query::Q0 | Query::Q1 | Query::Q5 => keyed(auction as u64, own()),
                Query::Q2 if q2_keeps(auction) => keyed(auction as u64, own()),
                Query::Q7 => keyed(tumbling_end(window, take::<BidHead<'_>>(body).0.date_time), own()),
                Query::Q4 => keyed(auction as u64, event.clone()),
                _ => None,
            }
        }
        PERSON_EVENT => {
            let person: PersonHead<'_> = take(body).0;
            match query {
                Query::Q3 if q3_state(person.state) => keyed(person.id as u64, event.clone()),
                Query::Q8 => keyed(person.id as u64, event.clone()),
                _ => None,
            }
        }
        AUCTION_EVENT => {
            let auction: AuctionHead<'_> = take(body).0;
            match query {
                Query::Q3 if auction.category == Q3_CATEGORY => keyed(auction.seller as u64, event.clone()),
                Query::Q4 => keyed(auction.id as u64, event.clone()),
                Query::Q8 => keyed(auction.seller as u64, event.clone()),
                _ => None,
            }
        }
        other => panic!("a Nexmark event of unknown variant {other}"),
    }
}

/// A `T` from the front of `bytes`, and what follows it.
fn take<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> (T, &'a [u8]) {
    match postcard::take_from_bytes(bytes) {
        Ok(taken) => taken,
        Err(e) => panic!("decoding a {} from {} bytes: {e}", std::any::type_name::<T>(), bytes.len()),
    }
}

/// The source-side step of `query`: `None` drops the event; otherwise the key and input of the
/// first keyed stage, encoded. [`prepare_encoded`] does the same on the event's encoding.
pub fn prepare(query: Query, window: WindowSpec, event: &Event) -> Option<(KeyBytes, Blob)> {
    let keyed = |key: u64, input: Blob| Some((KeyBytes::of(&key), input));
    match (query, event) {
        (Query::Q0 | Query::Q1 | Query::Q5, Event::Bid(b)) => keyed(b.auction as u64, encode(b)),
        (Query::Q2, Event::Bid(b)) if q2_keeps(b.auction) => keyed(b.auction as u64, encode(b)),
        (Query::Q7, Event::Bid(b)) => keyed(tumbling_end(window, b.date_time), encode(b)),
        (Query::Q3, Event::Person(p)) if q3_state(&p.state) => keyed(p.id as u64, encode(event)),
        (Query::Q3, Event::Auction(a)) if a.category == Q3_CATEGORY => keyed(a.seller as u64, encode(event)),
        (Query::Q4, Event::Auction(a)) => keyed(a.id as u64, encode(event)),
        (Query::Q4, Event::Bid(b)) => keyed(b.auction as u64, encode(event)),
        (Query::Q8, Event::Person(p)) => keyed(p.id as u64, encode(event)),
        (Query::Q8, Event::Auction(a)) => keyed(a.seller as u64, encode(event)),
        _ => None,
    }
}

/// The operator of keyed stage `stage` of `query`, erased.
pub fn stage(query: Query, stage: u32, window: WindowSpec) -> Box<dyn ErasedOperator> {
    match (query, stage) {
        (Query::Q0 | Query::Q1, 0) => Box::new(Typed(Bids { euros: query == Query::Q1 })),
        (Query::Q2, 0) => Box::new(Typed(Q2)),
        (Query::Q3, 0) => Box::new(Typed(Q3)),
        (Query::Q4, 0) => Box::new(Typed(Q4Close)),
        (Query::Q4, 1) => Box::new(Typed(Q4Average)),
        (Query::Q5, 0) => Box::new(Typed(Q5Count { window })),
        (Query::Q5, 1) => Box::new(Typed(Q5Hottest)),
        (Query::Q7, 0) => Box::new(Typed(Q7)),
        (Query::Q8, 0) => Box::new(Typed(Q8 { window })),
        _ => panic!("{} has no keyed stage {stage}", query.name()),
    }
}

/// q0 and q1: every bid (q1's price in euros).
pub struct Bids {
    pub euros: bool,
}

impl Operator for Bids {
    type Key = u64;
    type In = Bid;
    type OutKey = u64;
    type Out = Bid;

    fn on_record(&self, auction: &u64, mut bid: Bid, ctx: &mut Ctx<'_, Self>) {
        if self.euros {
            bid.price = q1_euros(bid.price);
        }
        ctx.emit(auction, &bid);
    }

    /// q0 passes each bid on as it came; q1 rewrites its price in place (see [`in_euros`]).
    fn on_encoded(&self, auction: &u64, bid: Encoded<'_, Bid>, ctx: &mut Ctx<'_, Self>) {
        if !self.euros {
            return ctx.forward(auction, bid);
        }
        ctx.emit_encoded(auction, in_euros(bid.bytes()));
    }

    fn event_time(&self) -> bool {
        false
    }
}

/// An encoded [`Bid`] with its price converted to euros. Postcard writes a struct as its
/// fields in order, so the bid's auction and bidder come first, then its price: the encoding
/// is the bid's bytes with the price's varint replaced. The strings after it are copied as
/// they are, never decoded.
fn in_euros(bid: &[u8]) -> Blob {
    let (auction, rest) = take::<usize>(bid);
    let (bidder, rest) = take::<usize>(rest);
    let price_at = bid.len() - rest.len();
    let (price, after) = take::<usize>(rest);
    let out = written_blob(|out| {
        out.extend_from_slice(&bid[..price_at]);
        encode_append(&q1_euros(price), out);
        out.extend_from_slice(after);
    });
    debug_assert!(
        {
            let converted: Bid = decode_borrowed(&out);
            (converted.auction, converted.bidder) == (auction, bidder)
        },
        "a bid's price is its third field"
    );
    out
}

/// q2's output: an auction and a bid's price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionPrice {
    pub auction: usize,
    pub price: usize,
}

pub struct Q2;

impl Operator for Q2 {
    type Key = u64;
    type In = Bid;
    type OutKey = u64;
    type Out = AuctionPrice;

    fn on_record(&self, auction: &u64, bid: Bid, ctx: &mut Ctx<'_, Self>) {
        ctx.emit(auction, &AuctionPrice { auction: bid.auction, price: bid.price });
    }

    fn event_time(&self) -> bool {
        false
    }
}

/// q3's output: a seller's name, city and state, and one of their auctions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SellerAuction {
    pub name: String,
    pub city: String,
    pub state: String,
    pub auction: usize,
}

const PERSON: ValueState<Person> = ValueState::new("person");
const WAITING: MapState<usize, ()> = MapState::new("waiting");

/// q3, keyed by person id: the person once seen, and the auctions waiting for their seller.
pub struct Q3;

impl Operator for Q3 {
    type Key = u64;
    type In = Event;
    type OutKey = u64;
    type Out = SellerAuction;

    fn on_record(&self, key: &u64, event: Event, ctx: &mut Ctx<'_, Self>) {
        let joined = |p: &Person, auction| SellerAuction {
            name: p.name.clone(),
            city: p.city.clone(),
            state: p.state.clone(),
            auction,
        };
        match event {
            Event::Person(p) => {
                for (auction, ()) in ctx.map(&WAITING).entries() {
                    ctx.emit(key, &joined(&p, auction));
                }
                ctx.map(&WAITING).clear();
                ctx.value(&PERSON).set(&p);
            }
            Event::Auction(a) => match ctx.value(&PERSON).get() {
                Some(p) => ctx.emit(key, &joined(&p, a.id)),
                None => ctx.map(&WAITING).insert(&a.id, &()),
            },
            Event::Bid(_) => unreachable!("q3 reads no bids"),
        }
    }

    fn event_time(&self) -> bool {
        false
    }

    fn identity(&self) -> Identity {
        Identity::Content
    }
}

/// An auction as q4's first stage keeps it: its time, expiry, category, the highest counting
/// bid so far (if any), and whether it closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Open {
    at_ms: u64,
    expires: u64,
    category: usize,
    best: Option<usize>,
    closed: bool,
}

/// A closed auction, on its way to its category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub auction: usize,
    pub price: usize,
    pub expires: u64,
}

const AUCTION: ValueState<Open> = ValueState::new("auction");
const EARLY_BIDS: ListState<(u64, usize)> = ListState::new("early-bids");

/// q4's first stage, keyed by auction id: the auction, and bids that came before it; the
/// auction closes at `expires + lateness + 1` with its highest counting bid.
pub struct Q4Close;

impl Operator for Q4Close {
    type Key = u64;
    type In = Event;
    type OutKey = u64;
    type Out = Closed;

    fn on_record(&self, _key: &u64, event: Event, ctx: &mut Ctx<'_, Self>) {
        match event {
            Event::Auction(a) => {
                let counts = |t: u64| (a.date_time..=a.expires).contains(&t);
                let early = ctx.list(&EARLY_BIDS).get();
                let best = early.iter().filter(|(t, _)| counts(*t)).map(|&(_, price)| price).max();
                ctx.list(&EARLY_BIDS).clear();
                let open = Open {
                    at_ms: a.date_time,
                    expires: a.expires,
                    category: a.category,
                    best,
                    closed: false,
                };
                ctx.value(&AUCTION).set(&open);
                let at = a.expires + ctx.allowed_lateness_ms() + 1;
                ctx.set_timer(at, 0);
            }
            Event::Bid(b) => match ctx.value(&AUCTION).get() {
                Some(mut open) => {
                    let counts = (open.at_ms..=open.expires).contains(&b.date_time);
                    if !open.closed && counts && open.best.is_none_or(|best| b.price > best) {
                        open.best = Some(b.price);
                        ctx.value(&AUCTION).set(&open);
                    }
                }
                None => ctx.list(&EARLY_BIDS).add((b.date_time, b.price)),
            },
            Event::Person(_) => unreachable!("q4 reads no persons"),
        }
    }

    fn on_timer(&self, auction: &u64, _timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let Some(mut open) = ctx.value(&AUCTION).get() else { return };
        if let Some(price) = open.best {
            let closed = Closed { auction: *auction as usize, price, expires: open.expires };
            ctx.emit_at(&(open.category as u64), &closed, open.expires);
        }
        // Kept, closed, so that bids arriving after the close are not buffered as early.
        open.closed = true;
        ctx.value(&AUCTION).set(&open);
    }

    fn event_time(&self) -> bool {
        true
    }
}

/// q4's output: a category's n-th closed auction, and the running sum and average of the n
/// closing prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryAverage {
    pub category: u64,
    pub closed: u64,
    pub sum: u64,
    pub average: u64,
    pub auction: usize,
}

const CLOSING: MapState<usize, usize> = MapState::new("closing");
const TOTALS: ValueState<(u64, u64)> = ValueState::new("totals");

/// q4's second stage, keyed by category: closed auctions wait for a timer at `expires +
/// lateness + 1` (tag = auction id), so they are taken in `(expires, auction id)` order.
pub struct Q4Average;

impl Operator for Q4Average {
    type Key = u64;
    type In = Closed;
    type OutKey = u64;
    type Out = CategoryAverage;

    fn on_record(&self, _key: &u64, c: Closed, ctx: &mut Ctx<'_, Self>) {
        ctx.map(&CLOSING).insert(&c.auction, &c.price);
        let at = c.expires + ctx.allowed_lateness_ms() + 1;
        ctx.set_timer(at, c.auction as u64);
    }

    fn on_timer(&self, category: &u64, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let auction = timer.tag as usize;
        let Some(price) = ctx.map(&CLOSING).get(&auction) else { return };
        ctx.map(&CLOSING).remove(&auction);
        let (n, sum) = ctx.value(&TOTALS).update(|totals| {
            let (n, sum) = totals.unwrap_or((0, 0));
            (n + 1, sum + price as u64)
        });
        ctx.emit(
            category,
            &CategoryAverage { category: *category, closed: n, sum, average: sum / n, auction },
        );
    }

    fn event_time(&self) -> bool {
        true
    }
}

/// An auction's bid count in one window, on its way to the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionCount {
    pub auction: u64,
    pub count: u64,
}

/// q5's output: in the window ending at `end`, an auction with the most bids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HotItem {
    pub end: u64,
    pub auction: u64,
    pub count: u64,
}

const COUNTS: MapState<u64, u64> = MapState::new("counts");

/// q5's first stage, keyed by auction: its bids per sliding window; at `end + lateness` the
/// count goes on, keyed by the window's end (event time `end − 1`).
pub struct Q5Count {
    pub window: WindowSpec,
}

impl Operator for Q5Count {
    type Key = u64;
    type In = Bid;
    type OutKey = u64;
    type Out = AuctionCount;

    fn on_record(&self, _auction: &u64, bid: Bid, ctx: &mut Ctx<'_, Self>) {
        for end in self.window.ends_for(bid.date_time) {
            let count = ctx.map(&COUNTS).update(&end, |n| n.unwrap_or(0) + 1);
            if count == 1 {
                // The window's first bid for this auction: it reports at its end.
                let at = end + ctx.allowed_lateness_ms();
                ctx.set_timer(at, end);
            }
        }
    }

    fn on_timer(&self, auction: &u64, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let end = timer.tag;
        let Some(count) = ctx.map(&COUNTS).get(&end) else { return };
        ctx.map(&COUNTS).remove(&end);
        ctx.emit_at(&end, &AuctionCount { auction: *auction, count }, end - 1);
    }

    fn event_time(&self) -> bool {
        true
    }
}

const AUCTIONS: MapState<u64, u64> = MapState::new("auctions");

/// q5's second stage, keyed by window end: each auction's count; at `end + lateness` the
/// auctions with the highest count are the results.
pub struct Q5Hottest;

impl Operator for Q5Hottest {
    type Key = u64;
    type In = AuctionCount;
    type OutKey = u64;
    type Out = HotItem;

    fn on_record(&self, end: &u64, c: AuctionCount, ctx: &mut Ctx<'_, Self>) {
        ctx.map(&AUCTIONS).insert(&c.auction, &c.count);
        let at = end + ctx.allowed_lateness_ms();
        ctx.set_timer(at, 0);
    }

    fn on_timer(&self, end: &u64, _timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let counts = ctx.map(&AUCTIONS).entries();
        let max = counts.iter().map(|&(_, n)| n).max().unwrap_or(0);
        for &(auction, count) in counts.iter().filter(|&&(_, n)| n == max) {
            ctx.emit(end, &HotItem { end: *end, auction, count });
        }
        ctx.map(&AUCTIONS).clear();
    }

    fn event_time(&self) -> bool {
        true
    }

    fn identity(&self) -> Identity {
        Identity::Content
    }
}

const HIGHEST: ValueState<usize> = ValueState::new("highest");
const AT_HIGHEST: ListState<Bid> = ListState::new("at-highest");

/// q7, keyed by window end: the highest price so far, and the bids at it.
pub struct Q7;

impl Operator for Q7 {
    type Key = u64;
    type In = Bid;
    type OutKey = u64;
    type Out = Bid;

    fn on_record(&self, end: &u64, bid: Bid, ctx: &mut Ctx<'_, Self>) {
        let best = ctx.value(&HIGHEST).get();
        if best.is_some_and(|b| bid.price < b) {
            return;
        }
        if best.is_none() {
            let at = end + ctx.allowed_lateness_ms();
            ctx.set_timer(at, 0);
        }
        if best.is_none_or(|b| bid.price > b) {
            ctx.list(&AT_HIGHEST).clear();
            ctx.value(&HIGHEST).set(&bid.price);
        }
        ctx.list(&AT_HIGHEST).add(bid);
    }

    /// Most bids are below their window's highest so far: the price alone is read (the
    /// bid's first three numbers), and a bid is decoded whole, strings and all, only when it
    /// may be kept.
    fn on_encoded(&self, end: &u64, bid: Encoded<'_, Bid>, ctx: &mut Ctx<'_, Self>) {
        let ((_auction, _bidder, price), _): ((usize, usize, usize), _) = take(bid.bytes());
        if ctx.value(&HIGHEST).get().is_some_and(|best| price < best) {
            return;
        }
        let bid = bid.decode();
        debug_assert_eq!(bid.price, price, "a bid's price is its third field");
        self.on_record(end, bid, ctx);
    }

    fn on_timer(&self, end: &u64, _timer: Timer, ctx: &mut Ctx<'_, Self>) {
        for bid in ctx.list(&AT_HIGHEST).get() {
            ctx.emit(end, &bid);
        }
        ctx.list(&AT_HIGHEST).clear();
        ctx.value(&HIGHEST).clear();
    }

    fn event_time(&self) -> bool {
        true
    }

    fn identity(&self) -> Identity {
        Identity::Content
    }
}

/// q8's output: a person who opened `auctions` auctions in the window ending at `end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub person: u64,
    pub name: String,
    pub end: u64,
    pub auctions: u64,
}

const JOINED: MapState<u64, String> = MapState::new("joined");
const OPENED: MapState<u64, u64> = MapState::new("opened");

/// q8, keyed by person id, per tumbling window: the person's name if they joined in it, and
/// the auctions they opened in it; decided at `end + lateness` (tag = end).
pub struct Q8 {
    pub window: WindowSpec,
}

impl Operator for Q8 {
    type Key = u64;
    type In = Event;
    type OutKey = u64;
    type Out = NewUser;

    fn on_record(&self, _person: &u64, event: Event, ctx: &mut Ctx<'_, Self>) {
        let end = tumbling_end(self.window, event.timestamp());
        match event {
            Event::Person(p) => ctx.map(&JOINED).insert(&end, &p.name),
            Event::Auction(_) => {
                ctx.map(&OPENED).update(&end, |n| n.unwrap_or(0) + 1);
            }
            Event::Bid(_) => unreachable!("q8 reads no bids"),
        }
        let at = end + ctx.allowed_lateness_ms();
        ctx.set_timer(at, end);
    }

    fn on_timer(&self, person: &u64, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let end = timer.tag;
        let name = ctx.map(&JOINED).get(&end);
        let auctions = ctx.map(&OPENED).get(&end).unwrap_or(0);
        if let Some(name) = name.filter(|_| auctions > 0) {
            ctx.emit(person, &NewUser { person: *person, name, end, auctions });
        }
        ctx.map(&JOINED).remove(&end);
        ctx.map(&OPENED).remove(&end);
    }

    fn event_time(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source reads events through `prepare_encoded`; the oracle's model of the queries is
    /// `prepare`, on decoded events. They must agree on every event of every query.
    #[test]
    fn preparing_an_encoded_event_is_preparing_the_event() {
        let config = crate::pipeline::nexmark::config(7, 1000);
        let events: Vec<Event> = nexmark::EventGenerator::new(config).take(3000).collect();
        let window = WindowSpec::Tumbling { size_ms: 10_000 };
        let mut kept = 0;
        for query in Query::ALL {
            for event in &events {
                let typed = prepare(query, window, event);
                assert_eq!(prepare_encoded(query, window, &encode(event)), typed, "{query:?} on {event:?}");
                kept += usize::from(typed.is_some());
            }
        }
        assert!(kept > 3000, "the queries keep events of every kind ({kept})");
    }

    /// q0 forwards each bid's bytes as they came (no decode, no encode); q1 rewrites the
    /// price in the bid's bytes, which decode as the whole bid with only its price changed.
    /// Both through the engine's erased adapter, as a stage runs them.
    #[test]
    fn q0_forwards_the_bid_as_it_came_and_q1_converts_its_price() {
        let config = crate::pipeline::nexmark::config(3, 1000);
        let bids = nexmark::EventGenerator::new(config).filter_map(|e| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        });
        let bids: Vec<Bid> = bids.take(50).collect();
        let mut q0 = crate::sdk::Harness::new(Bids { euros: false });
        let mut q1 = crate::sdk::Harness::new(Bids { euros: true });
        for (t, bid) in bids.iter().enumerate() {
            q0.push(&(bid.auction as u64), bid, t as u64);
            q1.push(&(bid.auction as u64), bid, t as u64);
        }
        let forwarded: Vec<&[u8]> = q0.emitted().iter().map(|e| &*e.value).collect();
        let encoded: Vec<Blob> = bids.iter().map(encode).collect();
        assert_eq!(forwarded, encoded.iter().map(|b| &**b).collect::<Vec<_>>());
        let converted: Vec<Bid> = q1.outputs().into_iter().map(|(_, b)| b).collect();
        let want = bids.iter().map(|b| Bid { price: q1_euros(b.price), ..b.clone() });
        assert_eq!(converted, want.collect::<Vec<_>>());
        assert!(bids.iter().any(|b| q1_euros(b.price) != b.price), "q1 changes some price");
    }

    /// The rewritten price may take fewer bytes than the original (140 → 127 crosses the
    /// one-byte varint boundary, 18,045 → 16,384 stays at three, 18,044 → 16,383 drops to two):
    /// whatever its length, the bytes after it are the bid's own.
    #[test]
    fn in_euros_rewrites_prices_across_varint_lengths() {
        for price in [0, 1, 127, 128, 140, 141, 16_383, 16_384, 18_044, 18_045, usize::MAX / 1000] {
            let bid = Bid {
                auction: 300,
                bidder: 2,
                price,
                channel: "channel-1".into(),
                url: "https://www.nexmark.com/abc/def/item.htm?query=1".into(),
                date_time: 1_700_000_000_000,
                extra: "x".repeat(40),
            };
            let converted: Bid = decode_borrowed(&in_euros(&encode(&bid)));
            assert_eq!(converted, Bid { price: q1_euros(price), ..bid }, "price {price}");
        }
    }

    /// q5's first stage counts each auction's bids per sliding window with one state lookup
    /// per window, sets one timer per window the auction is in, and reports each count once.
    #[test]
    fn q5_counts_each_window_once_and_reports_it_at_its_end() {
        let window = WindowSpec::Sliding { size_ms: 20, slide_ms: 10 };
        let mut h = crate::sdk::Harness::new(Q5Count { window });
        let bid = |date_time| Bid {
            auction: 7,
            bidder: 1,
            price: 100,
            channel: "c".into(),
            url: "u".into(),
            date_time,
            extra: String::new(),
        };
        for t in [1, 5, 12, 25] {
            h.push(&7, &bid(t), t);
        }
        h.advance_watermark(100);
        let mut got: Vec<(u64, u64)> = h.outputs().into_iter().map(|(end, c)| (end, c.count)).collect();
        got.sort_unstable();
        // Windows [0, 20) and [-10, 10): 1, 5, 12 and 1, 5; [10, 30): 12, 25; [20, 40): 25.
        assert_eq!(got, [(10, 2), (20, 3), (30, 2), (40, 1)]);
        assert!(h.outputs().iter().all(|(_, c)| c.auction == 7));
    }
}
