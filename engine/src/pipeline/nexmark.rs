//! Nexmark: the input (persons, auctions, bids from the `nexmark` crate's generator) and the
//! queries q0, q1, q2, q3, q4, q5, q7 and q8, defined exactly as the engine and the reference
//! model compute them.
//!
//! # Input
//! The generator's events become [`Event`]s (event id = the generator's event id; event time =
//! its `date_time`, milliseconds since the Unix epoch):
//! - person (kind 0): key = person id, value = state (index in the generator's state list:
//!   az, ca, id, or, wa, wy), aux = `[city index, name index (first · 100 + last), 0]`;
//! - auction (kind 1): key = auction id, value = seller, aux = `[category, expires, reserve]`;
//! - bid (kind 2): key = auction, value = price, aux = `[bidder, 0, 0]`.
//!
//! Determinism: the generator's default configuration reads the wall clock for its base time;
//! [`config`] overwrites it with a base time drawn from the seed before any event is made, and
//! the generator itself draws every field from the event id alone.
//!
//! # Queries (`S` = window size, `D` = slide, `L` = allowed lateness; "late" as in the parent
//! module; the values of each output are listed in order)
//! - **q0** pass-through: every bid; id `(auction, event id)`; `[auction, bidder, price, t]`;
//!   cause the bid.
//! - **q1** projection: as q0 with the price in euros, `price · 908 / 1000`.
//! - **q2** filter: bids with `auction mod 123 = 0`; id `(auction, event id)`;
//!   `[auction, price, 0, 0]`.
//! - **q3** incremental join: persons in OR, ID or CA (state indexes 3, 2, 1) joined with
//!   auctions of category 10 on `seller = person id`; id `(person id, auction id)`;
//!   `[name, city, state, auction id]`; cause the auction. No event time: nothing is late.
//! - **q4** average closing price per category: a bid counts for its auction when
//!   `auction.t ≤ bid.t ≤ expires`; an auction with at least one counting bid closes at its
//!   `expires` with the highest counting price. Per category, closed auctions in
//!   `(expires, auction id)` order; the n-th gives id `(category, n)` and
//!   `[n, sum of the n closing prices, sum / n, auction id]`; cause the auction. Auctions and
//!   bids can be late.
//! - **q5** hot items: per sliding window `(S, D)`, the number of bids per auction; the
//!   auctions with the highest number. Id `(window end, auction)`; `[auction, count, 0, 0]`;
//!   cause the auction's bid in the window with the greatest event id. Bids can be late.
//! - **q7** highest bid: per tumbling window `S`, the bids with the highest price. Id
//!   `(window end, event id)`; `[auction, bidder, price, t]`; cause the bid.
//! - **q8** new users: per tumbling window `S`, the persons who also opened at least one
//!   auction (as seller) in that window. Id `(person id, window end)`;
//!   `[name, auctions in the window, 0, 0]`; cause the person.

use serde::{Deserialize, Serialize};

use crate::record::Event;
use crate::workload::mix64;

pub const PERSON: u8 = 0;
pub const AUCTION: u8 = 1;
pub const BID: u8 = 2;

/// The Nexmark queries faultline runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Query {
    Q0,
    Q1,
    Q2,
    Q3,
    Q4,
    Q5,
    Q7,
    Q8,
}

impl Query {
    pub const ALL: [Query; 8] =
        [Query::Q0, Query::Q1, Query::Q2, Query::Q3, Query::Q4, Query::Q5, Query::Q7, Query::Q8];

    pub fn name(self) -> &'static str {
        match self {
            Query::Q0 => "nexmark-q0",
            Query::Q1 => "nexmark-q1",
            Query::Q2 => "nexmark-q2",
            Query::Q3 => "nexmark-q3",
            Query::Q4 => "nexmark-q4",
            Query::Q5 => "nexmark-q5",
            Query::Q7 => "nexmark-q7",
            Query::Q8 => "nexmark-q8",
        }
    }

    pub fn from_name(name: &str) -> Option<Query> {
        Query::ALL.into_iter().find(|q| q.name() == name)
    }

    /// The input kinds the query reads (others are dropped at the source).
    pub fn reads(self, kind: u8) -> bool {
        match self {
            Query::Q0 | Query::Q1 | Query::Q2 | Query::Q5 | Query::Q7 => kind == BID,
            Query::Q3 | Query::Q8 => kind == PERSON || kind == AUCTION,
            Query::Q4 => kind == AUCTION || kind == BID,
        }
    }

    /// Whether results depend on watermarks.
    pub fn event_time(self) -> bool {
        matches!(self, Query::Q4 | Query::Q5 | Query::Q7 | Query::Q8)
    }

    /// The number of keyed stages (q4 and q5 aggregate twice).
    pub fn stages(self) -> u32 {
        match self {
            Query::Q4 | Query::Q5 => 2,
            _ => 1,
        }
    }
}

/// q2's filter.
pub fn q2_keeps(auction: u64) -> bool {
    auction.is_multiple_of(123)
}

/// q1's currency conversion.
pub fn q1_euros(price: i64) -> i64 {
    price * 908 / 1000
}

/// q3's person filter: OR, ID, CA.
pub fn q3_state(state: i64) -> bool {
    matches!(state, 1..=3)
}

/// q3's auction filter.
pub const Q3_CATEGORY: i64 = 10;

/// The generator configuration for a seed: the crate's defaults, the event rate, a base time
/// drawn from the seed (within 2020) in place of the wall clock, and a first event id drawn
/// from the seed, so that each seed sees other persons, auctions and bids (the generator makes
/// every field from the event id; a multiple of the 50-event proportion cycle keeps each
/// event's type where the event number puts it).
pub fn config(seed: u64, rate_per_s: u64) -> nexmark::config::NexmarkConfig {
    let base_time = 1_577_836_800_000 + mix64(seed ^ 0x6e65_786d_6172_6b21) % 31_536_000_000;
    let first_event_id = 50 * (mix64(seed ^ 0x6669_7273_745f_6964) % 1_000_000) as usize;
    let rate = rate_per_s.max(1) as usize;
    nexmark::config::NexmarkConfig {
        base_time,
        first_event_id,
        first_rate: rate,
        next_rate: rate,
        // No padding strings: they would only cost generation time.
        avg_person_byte_size: 0,
        avg_auction_byte_size: 0,
        avg_bid_byte_size: 0,
        ..Default::default()
    }
}

/// Converts a generated event (see the module docs for the field layout).
pub fn convert(id: u64, event: &nexmark::event::Event, cfg: &nexmark::config::NexmarkConfig) -> Event {
    use nexmark::event::Event as N;
    let index = |list: &[String], s: &str| list.iter().position(|x| x == s).unwrap_or(list.len()) as i64;
    match event {
        N::Person(p) => {
            let (first, last) = p.name.split_once(' ').unwrap_or((&p.name, ""));
            let name = index(&cfg.first_names, first) * 100 + index(&cfg.last_names, last);
            let aux = [index(&cfg.us_cities, &p.city), name, 0];
            let value = index(&cfg.us_states, &p.state);
            Event { id, kind: PERSON, key: p.id as u64, value, aux, event_time_ms: p.date_time }
        }
        N::Auction(a) => {
            let aux = [a.category as i64, a.expires as i64, a.reserve as i64];
            let (key, value) = (a.id as u64, a.seller as i64);
            Event { id, kind: AUCTION, key, value, aux, event_time_ms: a.date_time }
        }
        N::Bid(b) => {
            let aux = [b.bidder as i64, 0, 0];
            let (key, value) = (b.auction as u64, b.price as i64);
            Event { id, kind: BID, key, value, aux, event_time_ms: b.date_time }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_time_and_the_data_come_from_the_seed() {
        assert_eq!(config(1, 1000).base_time, config(1, 1000).base_time);
        assert_ne!(config(1, 1000).base_time, config(2, 1000).base_time);
        let events = |seed| {
            let cfg = config(seed, 1000);
            nexmark::EventGenerator::new(cfg.clone())
                .take(100)
                .map(|e| convert(0, &e, &cfg))
                .collect::<Vec<_>>()
        };
        assert_eq!(events(1), events(1));
        assert_ne!(events(1), events(2));
        let kinds: Vec<u8> = events(3).iter().take(50).map(|e| e.kind).collect();
        assert_eq!((kinds[0], kinds[1], kinds[4]), (PERSON, AUCTION, BID), "the proportion cycle holds");
    }

    #[test]
    fn queries_round_trip_their_names() {
        for q in Query::ALL {
            assert_eq!(Query::from_name(q.name()), Some(q));
        }
        assert_eq!(Query::from_name("nexmark-q6"), None);
    }
}
