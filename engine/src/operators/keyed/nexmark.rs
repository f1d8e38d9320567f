//! The Nexmark queries' keyed stages (definitions in `crate::pipeline::nexmark`), and the
//! stateless step each query runs at its sources: which input kinds it keeps, and how it
//! re-keys them for the exchange.

use crate::api::{Context, Operator};
use crate::pipeline::nexmark::{self as q, Query, AUCTION, BID, PERSON};
use crate::pipeline::WindowSpec;
use crate::record::StreamRecord;
use crate::state::Timer;

use super::{cause_of, cause_values};

/// The source-side step: `None` drops the record; otherwise it is re-keyed for the exchange.
pub fn prepare(query: Query, window: WindowSpec, mut r: StreamRecord) -> Option<StreamRecord> {
    if !query.reads(r.kind) {
        return None;
    }
    match query {
        Query::Q2 if !q::q2_keeps(r.key) => return None,
        Query::Q3 if r.kind == PERSON && !q::q3_state(r.value) => return None,
        Query::Q3 if r.kind == AUCTION && r.aux[0] != q::Q3_CATEGORY => return None,
        // Keyed by window: the auction moves to aux[1].
        Query::Q7 => (r.aux[1], r.key) = (r.key as i64, tumbling_end(window, r.event_time_ms)),
        _ => {}
    }
    if matches!(query, Query::Q3 | Query::Q8) && r.kind == AUCTION {
        // Joined on the seller: key by it, and keep the auction id in the value.
        (r.key, r.value) = (r.value as u64, r.key as i64);
    }
    Some(r)
}

fn tumbling_end(window: WindowSpec, t: u64) -> u64 {
    let size = window.size_ms();
    t - t % size + size
}

/// The operator of keyed stage `stage` of `query`.
pub fn stage(query: Query, stage: u32, window: WindowSpec) -> Box<dyn Operator> {
    match (query, stage) {
        (Query::Q0 | Query::Q1 | Query::Q2, 0) => Box::new(PassThrough { query }),
        (Query::Q3, 0) => Box::new(Q3Join),
        (Query::Q4, 0) => Box::new(Q4Close),
        (Query::Q4, 1) => Box::new(Q4Average),
        (Query::Q5, 0) => Box::new(Q5Count { window }),
        (Query::Q5, 1) => Box::new(Q5Hottest),
        (Query::Q7, 0) => Box::new(Q7Highest),
        (Query::Q8, 0) => Box::new(Q8NewUsers { window }),
        _ => panic!("{} has no keyed stage {stage}", query.name()),
    }
}

/// q0, q1, q2: one output per bid.
struct PassThrough {
    query: Query,
}

impl Operator for PassThrough {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let (auction, bidder, price, t) = (r.key as i64, r.aux[0], r.value, r.event_time_ms as i64);
        let values = match self.query {
            Query::Q0 => [auction, bidder, price, t],
            Query::Q1 => [auction, bidder, q::q1_euros(price), t],
            _ => [auction, price, 0, 0],
        };
        ctx.output(r.key, r.id, values, r.cause);
    }

    fn event_time(&self) -> bool {
        false
    }
}

/// q3, keyed by person id. Namespace 0: the person `[name, city, state]`; namespace 1: auctions
/// waiting for their seller, by auction id → `[producer, seq]`.
struct Q3Join;

impl Operator for Q3Join {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        if r.kind == PERSON {
            let person = [r.aux[1], r.aux[0], r.value];
            ctx.put(0, 0, person.to_vec());
            for (auction, cause) in ctx.entries(1) {
                ctx.output(
                    r.key,
                    auction,
                    [person[0], person[1], person[2], auction as i64],
                    cause_of(&cause),
                );
            }
            ctx.clear(1);
        } else if let Some(p) = ctx.get(0, 0).map(<[i64]>::to_vec) {
            ctx.output(r.key, r.value as u64, [p[0], p[1], p[2], r.value], r.cause);
        } else {
            ctx.put(1, r.value as u64, cause_values(r.cause).to_vec());
        }
    }

    fn event_time(&self) -> bool {
        false
    }
}

/// q4's first stage, keyed by auction id. Namespace 0: the auction `[t, expires, category,
/// producer, seq, highest counting price or -1, closed]`; namespace 1: bids that came before
/// their auction, by event id → `[t, price]`. It closes at `expires + lateness + 1`.
struct Q4Close;

const CLOSED: usize = 6;

impl Operator for Q4Close {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let t = r.event_time_ms as i64;
        if r.kind == AUCTION {
            let (expires, category) = (r.aux[1], r.aux[0]);
            let [producer, seq] = cause_values(r.cause);
            let mut best = -1;
            for (_, bid) in ctx.entries(1) {
                if (t..=expires).contains(&bid[0]) {
                    best = best.max(bid[1]);
                }
            }
            ctx.clear(1);
            ctx.put(0, 0, vec![t, expires, category, producer, seq, best, 0]);
            ctx.set_timer(expires as u64 + ctx.allowed_lateness_ms() + 1, 0);
        } else if let Some(mut a) = ctx.get(0, 0).map(<[i64]>::to_vec) {
            if a[CLOSED] == 0 && (a[0]..=a[1]).contains(&t) && r.value > a[5] {
                a[5] = r.value;
                ctx.put(0, 0, a);
            }
        } else {
            ctx.put(1, r.id, vec![t, r.value]);
        }
    }

    fn on_timer(&self, _timer: Timer, ctx: &mut Context<'_>) {
        let Some(mut a) = ctx.get(0, 0).map(<[i64]>::to_vec) else { return };
        if a[5] >= 0 {
            let auction = ctx.key();
            ctx.forward(StreamRecord::derived(
                auction,
                AUCTION,
                a[2] as u64,
                a[5],
                [auction as i64, a[1], 0],
                a[1] as u64,
                cause_of(&a[3..5]),
            ));
        }
        // Kept, closed, so that bids arriving after the close are not buffered as orphans.
        a[CLOSED] = 1;
        ctx.put(0, 0, a);
    }

    fn event_time(&self) -> bool {
        true
    }
}

/// q4's second stage, keyed by category. Namespace 0: closed auctions waiting for their turn,
/// by auction id → `[price, producer, seq]`, each with a timer at `expires + lateness + 1`
/// (so they are taken in `(expires, auction id)` order); namespace 1: `[n, sum]`.
struct Q4Average;

impl Operator for Q4Average {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let [producer, seq] = cause_values(r.cause);
        ctx.put(0, r.id, vec![r.value, producer, seq]);
        ctx.set_timer(r.event_time_ms + ctx.allowed_lateness_ms() + 1, r.id);
    }

    fn on_timer(&self, timer: Timer, ctx: &mut Context<'_>) {
        let Some(closed) = ctx.get(0, timer.tag).map(<[i64]>::to_vec) else { return };
        ctx.remove(0, timer.tag);
        let (n, sum) = ctx.get(1, 0).map_or((0, 0), |v| (v[0], v[1]));
        let (n, sum) = (n + 1, sum + closed[0]);
        ctx.put(1, 0, vec![n, sum]);
        ctx.output(ctx.key(), n as u64, [n, sum, sum / n, timer.tag as i64], cause_of(&closed[1..]));
    }

    fn event_time(&self) -> bool {
        true
    }
}

/// q5's first stage, keyed by auction: per sliding window (namespace 0, sub = end) `[count,
/// last id, producer, seq]`; at `end + lateness` the count goes on, keyed by the window's end.
struct Q5Count {
    window: WindowSpec,
}

impl Operator for Q5Count {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        for end in self.window.ends_for(r.event_time_ms) {
            let [producer, seq] = cause_values(r.cause);
            let v = match ctx.get(0, end) {
                Some(v) if v[1] > r.id as i64 => vec![v[0] + 1, v[1], v[2], v[3]],
                Some(v) => vec![v[0] + 1, r.id as i64, producer, seq],
                None => {
                    ctx.set_timer(end + ctx.allowed_lateness_ms(), end);
                    vec![1, r.id as i64, producer, seq]
                }
            };
            ctx.put(0, end, v);
        }
    }

    fn on_timer(&self, timer: Timer, ctx: &mut Context<'_>) {
        let end = timer.tag;
        let Some(v) = ctx.get(0, end).map(<[i64]>::to_vec) else { return };
        ctx.remove(0, end);
        let auction = ctx.key();
        ctx.forward(StreamRecord::derived(
            auction,
            BID,
            end,
            v[0],
            [auction as i64, 0, 0],
            end - 1,
            cause_of(&v[2..4]),
        ));
    }

    fn event_time(&self) -> bool {
        true
    }
}

/// q5's second stage, keyed by window end: namespace 0, by auction → `[count, producer,
/// seq]`; at `end + lateness` the auctions with the highest count are the results.
struct Q5Hottest;

impl Operator for Q5Hottest {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let [producer, seq] = cause_values(r.cause);
        ctx.put(0, r.id, vec![r.value, producer, seq]);
        ctx.set_timer(r.key + ctx.allowed_lateness_ms(), 0);
    }

    fn on_timer(&self, _timer: Timer, ctx: &mut Context<'_>) {
        let counts = ctx.entries(0);
        let max = counts.iter().map(|(_, v)| v[0]).max().unwrap_or(0);
        for (auction, v) in counts.iter().filter(|(_, v)| v[0] == max) {
            ctx.output(ctx.key(), *auction, [*auction as i64, v[0], 0, 0], cause_of(&v[1..]));
        }
        ctx.clear(0);
    }

    fn event_time(&self) -> bool {
        true
    }
}

/// q7, keyed by window end: namespace 0 `[highest price]`; namespace 1, by event id, the bids
/// at that price `[auction, bidder, price, t, producer, seq]`.
struct Q7Highest;

impl Operator for Q7Highest {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let best = ctx.get(0, 0).map(|v| v[0]);
        if best.is_some_and(|b| r.value < b) {
            return;
        }
        if best.is_none_or(|b| r.value > b) {
            ctx.clear(1);
            ctx.put(0, 0, vec![r.value]);
        }
        if best.is_none() {
            ctx.set_timer(r.key + ctx.allowed_lateness_ms(), 0);
        }
        let [producer, seq] = cause_values(r.cause);
        ctx.put(1, r.id, vec![r.aux[1], r.aux[0], r.value, r.event_time_ms as i64, producer, seq]);
    }

    fn on_timer(&self, _timer: Timer, ctx: &mut Context<'_>) {
        for (id, b) in ctx.entries(1) {
            ctx.output(ctx.key(), id, [b[0], b[1], b[2], b[3]], cause_of(&b[4..]));
        }
        ctx.clear(1);
        ctx.remove(0, 0);
    }

    fn event_time(&self) -> bool {
        true
    }
}

/// q8, keyed by person id, per tumbling window (sub = end): namespace 0 the person `[name,
/// producer, seq]`, namespace 1 `[auctions]`; decided at `end + lateness`.
struct Q8NewUsers {
    window: WindowSpec,
}

impl Operator for Q8NewUsers {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let end = tumbling_end(self.window, r.event_time_ms);
        if r.kind == PERSON {
            let [producer, seq] = cause_values(r.cause);
            ctx.put(0, end, vec![r.aux[1], producer, seq]);
        } else {
            let n = ctx.get(1, end).map_or(0, |v| v[0]);
            ctx.put(1, end, vec![n + 1]);
        }
        ctx.set_timer(end + ctx.allowed_lateness_ms(), end);
    }

    fn on_timer(&self, timer: Timer, ctx: &mut Context<'_>) {
        let end = timer.tag;
        let person = ctx.get(0, end).map(<[i64]>::to_vec);
        let auctions = ctx.get(1, end).map_or(0, |v| v[0]);
        if let Some(p) = person.filter(|_| auctions > 0) {
            ctx.output(ctx.key(), end, [p[0], auctions, 0, 0], cause_of(&p[1..]));
        }
        ctx.remove(0, end);
        ctx.remove(1, end);
    }

    fn event_time(&self) -> bool {
        true
    }
}
