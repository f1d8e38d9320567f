//! Nexmark: the input (persons, auctions, bids from the `nexmark` crate's generator) and the
//! queries q0, q1, q2, q3, q4, q5, q7 and q8, defined exactly as the engine and the reference
//! model compute them.
//!
//! # Input
//! The generator's own events — `Person`, `Auction` and `Bid`, with their names, cities,
//! states, channels and urls — encoded as they are (event id = the generator's event id; event
//! time = its `date_time`, milliseconds since the Unix epoch, moved back by the workload's
//! disorder). A record is keyed by a person's id, an auction's id, or a bid's auction
//! ([`lag_and_key`]).
//!
//! Determinism: the generator's default configuration reads the wall clock for its base time;
//! [`config`] overwrites it with a base time drawn from the seed before any event is made, and
//! the generator itself draws every field from the event id alone.
//!
//! # Queries (`S` = window size, `D` = slide, `L` = allowed lateness; "late" as in the parent
//! module). The operators and output types are in `operators::builtin::nexmark`; each output's
//! identity is its origin (see `sdk::operator`), as listed.
//! - **q0** pass-through: every bid, as it is, under its auction; from the bid.
//! - **q1** projection: as q0 with the price in euros, `price · 908 / 1000`.
//! - **q2** filter: bids with `auction mod 123 = 0`, as `(auction, price)`; from the bid.
//! - **q3** incremental join: persons in OR, ID or CA joined with auctions of category 10 on
//!   `seller = person id`, as `(name, city, state, auction)` under the person; by content
//!   (where the pair is emitted depends on which side arrives second). No event time.
//! - **q4** average closing price per category: a bid counts for its auction when
//!   `auction.t ≤ bid.t ≤ expires`; an auction with at least one counting bid closes at its
//!   `expires` with the highest counting price. Per category, closed auctions in
//!   `(expires, auction id)` order; the n-th gives `(category, n, sum of the n closing prices,
//!   sum / n, auction)`, from the timer at `expires + L + 1` (tag: the auction). Auctions and
//!   bids can be late.
//! - **q5** hot items: per sliding window `(S, D)`, the number of bids per auction; the
//!   auctions with the highest number, as `(end, auction, count)` under the window's end; by
//!   content (ties). Bids can be late.
//! - **q7** highest bid: per tumbling window `S`, the bids with the highest price, as they are,
//!   under the window's end; by content (ties).
//! - **q8** new users: per tumbling window `S`, the persons who also opened at least one
//!   auction (as seller) in that window, as `(person, name, end, auctions)` under the person,
//!   from the timer at `end + L` (tag: the end).

use serde::{Deserialize, Serialize};

use crate::workload::mix64;

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

/// Moves a generated event's time back by `lag` (disorder and late events, see `workload`)
/// and returns the key it is partitioned by: a person's id, an auction's id, a bid's auction.
pub fn lag_and_key(event: &mut nexmark::event::Event, lag: u64) -> u64 {
    use nexmark::event::Event as N;
    match event {
        N::Person(p) => {
            p.date_time -= lag;
            p.id as u64
        }
        N::Auction(a) => {
            a.date_time -= lag;
            a.id as u64
        }
        N::Bid(b) => {
            b.date_time -= lag;
            b.auction as u64
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
        let events = |seed| nexmark::EventGenerator::new(config(seed, 1000)).take(100).collect::<Vec<_>>();
        assert_eq!(events(1), events(1));
        assert_ne!(events(1), events(2));
        use nexmark::event::EventType::{Auction, Bid, Person};
        let kinds: Vec<_> = events(3).iter().take(50).map(|e| e.event_type()).collect();
        assert_eq!((kinds[0], kinds[1], kinds[4]), (Person, Auction, Bid), "the proportion cycle holds");
    }

    #[test]
    fn queries_round_trip_their_names() {
        for q in Query::ALL {
            assert_eq!(Query::from_name(q.name()), Some(q));
        }
        assert_eq!(Query::from_name("nexmark-q6"), None);
    }
}
