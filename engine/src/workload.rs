//! The seeded input workload: which events each producer emits, in which order, when, and
//! with which event time.
//!
//! It is a pure function of the [`WorkloadSpec`]: producers replay it after a restart to resume
//! where their durable progress says, and the checkers evaluate the same input independently.
//!
//! Two inputs:
//! - **synthetic**: keyed integers. Keys are owned by producers (`key % producers`), so each
//!   key's events are totally ordered in the log: the per-key order a running aggregate or a
//!   count window depends on is fixed by the workload, not by interleavings the engine may
//!   choose.
//! - **nexmark**: the `nexmark` crate's persons, auctions and bids (see
//!   [`crate::pipeline::nexmark`]); producer `p` of `P` generates event numbers `p, p + P, …`.
//!
//! Every partition has one writer: producer `p` writes partitions `p, p + P, …`, choosing among
//! them by the event's key. A producer emits an event at its *nominal* time (milliseconds since
//! the run began); the event time is the nominal one moved back by a seeded draw of up to
//! `disorder_ms` and, for `late_per_mille` of the events, by `late_by_ms` more. With
//! `disorder_ms` within the watermark's bound, and one writer per partition, no record is ever
//! behind its partition's watermark.

use std::collections::VecDeque;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::operators::builtin::Synthetic;
use crate::pipeline::nexmark;
use crate::record::{Event, KeyBytes};
use crate::sdk::codec::{encode, encode_append};
use crate::sdk::Blob;

/// Where the input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    Synthetic,
    Nexmark,
}

/// Everything that determines the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    pub input: Input,
    pub seed: u64,
    pub events: u64,
    pub keys: u64,
    pub partitions: u32,
    pub producers: u32,
    pub rate_per_s: u64,
    pub value_max: i64,
    /// Synthetic input: how many streams (kinds `0..streams`) the events are spread over.
    pub streams: u32,
    pub disorder_ms: u64,
    pub late_per_mille: u32,
    pub late_by_ms: u64,
}

/// A 64-bit finaliser (splitmix64): a fixed, seedless hash for partitioning.
pub const fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The partition producer `producer` writes an event with `key` to: one of its own.
pub fn partition_of(key: u64, producer: u32, producers: u32, partitions: u32) -> u32 {
    assert!(
        producer < producers && producers <= partitions,
        "{producers} producers, {partitions} partitions"
    );
    let owned = (partitions - producer).div_ceil(producers);
    producer + producers * (mix64(key) % u64::from(owned)) as u32
}

/// One event as a producer emits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    pub partition: u32,
    /// When the producer emits it: simulated milliseconds since the run began.
    pub emit_at_ms: u64,
    pub event: Event,
}

impl WorkloadSpec {
    /// When, in simulated time, the producers are due to emit the last event (the input paces
    /// `rate_per_s` events a second from time 0).
    pub fn input_ms(&self) -> u64 {
        self.events.saturating_sub(1).saturating_mul(1000) / self.rate_per_s.max(1)
    }

    /// The number of events producer `producer` emits.
    pub fn events_of(&self, producer: u32) -> u64 {
        let p = u64::from(producer);
        let n = u64::from(self.producers);
        self.events / n + u64::from(p < self.events % n)
    }

    /// The keys producer `producer` owns: `producer, producer + producers, ...` below `keys`.
    pub fn keys_of(&self, producer: u32) -> u64 {
        let p = u64::from(producer);
        let n = u64::from(self.producers);
        self.keys / n + u64::from(p < self.keys % n)
    }

    /// The events of one producer, in emission order.
    pub fn events_for(&self, producer: u32) -> ProducerEvents {
        assert!(producer < self.producers, "producer {producer} out of range");
        let stream_seed = mix64(self.seed ^ mix64(u64::from(producer) + 1));
        let source = match self.input {
            Input::Synthetic => {
                assert!(self.keys >= u64::from(self.producers), "every producer must own a key");
                Source::Synthetic
            }
            Input::Nexmark => {
                let cfg = nexmark::config(self.seed, self.rate_per_s);
                let generator = ::nexmark::EventGenerator::new(cfg.clone())
                    .with_offset(u64::from(producer))
                    .with_step(u64::from(self.producers));
                Source::Nexmark(Box::new((generator, cfg)))
            }
        };
        ProducerEvents {
            spec: self.clone(),
            producer,
            emitted: 0,
            rng: ChaCha8Rng::seed_from_u64(stream_seed),
            source,
            ahead: VecDeque::new(),
        }
    }

    /// The events of one producer, each drawn by `draw`, paced and disordered as synthetic
    /// input is: a pipeline's own generator.
    pub fn events_with(&self, producer: u32, draw: Box<dyn Draw>) -> ProducerEvents {
        assert!(producer < self.producers, "producer {producer} out of range");
        assert!(self.keys >= u64::from(self.producers), "every producer must own a key");
        let stream_seed = mix64(self.seed ^ mix64(u64::from(producer) + 1));
        ProducerEvents {
            spec: self.clone(),
            producer,
            emitted: 0,
            rng: ChaCha8Rng::seed_from_u64(stream_seed),
            source: Source::Drawn(draw),
            ahead: VecDeque::new(),
        }
    }

    /// The event time of the run's start: 0 for synthetic input, the generator's base time for
    /// Nexmark.
    pub fn base_time_ms(&self) -> u64 {
        match self.input {
            Input::Synthetic => 0,
            Input::Nexmark => nexmark::config(self.seed, self.rate_per_s).base_time,
        }
    }
}

enum Source {
    Synthetic,
    Nexmark(Box<(::nexmark::EventGenerator, ::nexmark::config::NexmarkConfig)>),
    Drawn(Box<dyn Draw>),
}

/// A pipeline's own input: draws each event's key and value, paced and disordered like the
/// synthetic input (see [`WorkloadSpec::events_with`]).
pub trait Draw: Send {
    /// The key and value of the event `d.global`. Draw the key with [`Drawing::owned_key`], so
    /// that each key has one producer and its events stay in order in the log.
    fn draw(&mut self, d: &mut Drawing<'_>) -> (KeyBytes, Blob);
}

/// What a [`Draw`] draws from: the event's place in the workload and the producer's seeded
/// generator.
pub struct Drawing<'a> {
    /// The event's number in the whole workload.
    pub global: u64,
    /// Its event time, drawn already (paced at `rate_per_s`, then disordered).
    pub event_time_ms: u64,
    pub producer: u32,
    pub spec: &'a WorkloadSpec,
    /// Seeded per producer: the only randomness a draw may use.
    pub rng: &'a mut ChaCha8Rng,
}

impl Drawing<'_> {
    /// One of the keys `0..spec.keys` this producer owns, uniformly.
    pub fn owned_key(&mut self) -> u64 {
        let slot = self.rng.gen_range(0..self.spec.keys_of(self.producer));
        slot * u64::from(self.spec.producers) + u64::from(self.producer)
    }

    /// A value in `-value_max..=value_max`, uniformly.
    pub fn value(&mut self) -> i64 {
        self.rng.gen_range(-self.spec.value_max..=self.spec.value_max)
    }
}

/// Iterator over one producer's events.
pub struct ProducerEvents {
    spec: WorkloadSpec,
    producer: u32,
    emitted: u64,
    rng: ChaCha8Rng,
    source: Source,
    /// Nexmark events generated ahead, a block at a time (see [`ProducerEvents::nexmark_block`]).
    ahead: VecDeque<Emitted>,
}

/// Nexmark events per block: their encodings share one buffer.
const NEXMARK_BLOCK: u64 = 256;

/// A little over the mean encoding of a Nexmark event (bids 91 bytes, auctions 149, persons 72,
/// in the generator's proportions: 94).
const NEXMARK_EVENT_BYTES: usize = 112;

impl Iterator for ProducerEvents {
    type Item = Emitted;

    fn next(&mut self) -> Option<Emitted> {
        if let Some(ahead) = self.ahead.pop_front() {
            return Some(ahead);
        }
        if self.emitted == self.spec.events_of(self.producer) {
            return None;
        }
        let global = self.global();
        let (route, event, emit_at_ms) = match &mut self.source {
            Source::Synthetic => self.synthetic(global),
            Source::Drawn(_) => self.drawn(global),
            Source::Nexmark(_) => {
                self.nexmark_block();
                return self.ahead.pop_front();
            }
        };
        self.emitted += 1;
        Some(self.emitted_at(route, emit_at_ms, event))
    }
}

impl ProducerEvents {
    /// The global number of the producer's next event: its i-th is i * producers + producer.
    fn global(&self) -> u64 {
        self.emitted * u64::from(self.spec.producers) + u64::from(self.producer)
    }

    fn emitted_at(&self, route: u64, emit_at_ms: u64, event: Event) -> Emitted {
        let spec = &self.spec;
        let partition = partition_of(route, self.producer, spec.producers, spec.partitions);
        Emitted { partition, emit_at_ms, event }
    }

    /// Generates the next block of Nexmark events into `ahead`, their encodings in one buffer
    /// they share: an allocation per block instead of one per event, and a block's events lie
    /// in the order they are read.
    fn nexmark_block(&mut self) {
        assert!(self.ahead.is_empty(), "a block generated before the last was read");
        let n = (self.spec.events_of(self.producer) - self.emitted).min(NEXMARK_BLOCK);
        // Room for a block of typical events at once: a buffer grown by doubling copies
        // itself over at every step.
        let mut buf = Vec::with_capacity(n as usize * NEXMARK_EVENT_BYTES);
        let mut made = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let global = self.global();
            let Source::Nexmark(g) = &mut self.source else { unreachable!("called on Nexmark input") };
            let (generator, cfg) = &mut **g;
            let mut generated = generator.next().expect("the Nexmark generator never ends");
            let emit_at_ms = generated.timestamp() - cfg.base_time;
            let lag = self.lag(generated.timestamp());
            let key = nexmark::lag_and_key(&mut generated, lag);
            let encoded = encode_append(&generated, &mut buf);
            made.push((global, key, generated.timestamp(), emit_at_ms, encoded));
            self.emitted += 1;
        }
        let buf = Arc::new(buf);
        for (id, key, event_time_ms, emit_at_ms, encoded) in made {
            let value = Blob::within(&buf, encoded);
            let event = Event { id, key: KeyBytes::of(&key), value, event_time_ms };
            self.ahead.push_back(self.emitted_at(key, emit_at_ms, event));
        }
        assert!(!self.ahead.is_empty(), "a block of no events");
    }

    /// Global events are spread evenly over time at `rate_per_s`; returns the key, the event
    /// and when it is emitted.
    fn synthetic(&mut self, global: u64) -> (u64, Event, u64) {
        let spec = &self.spec;
        let nominal = global * 1000 / spec.rate_per_s.max(1);
        let key_slot = self.rng.gen_range(0..spec.keys_of(self.producer));
        let key = key_slot * u64::from(spec.producers) + u64::from(self.producer);
        let value = self.rng.gen_range(-spec.value_max..=spec.value_max);
        // No draw for one stream, so single-stream workloads stay as they were.
        let kind = if spec.streams > 1 { self.rng.gen_range(0..spec.streams) as u8 } else { 0 };
        let value = encode(&Synthetic { id: global, kind, value });
        let event_time_ms = nominal - self.lag(nominal);
        (key, Event { id: global, key: KeyBytes::of(&key), value, event_time_ms }, nominal)
    }

    /// A drawn event, paced like the synthetic input; it is routed by its key's hash.
    fn drawn(&mut self, global: u64) -> (u64, Event, u64) {
        let Source::Drawn(draw) = &mut self.source else { unreachable!("called on drawn input") };
        let spec = &self.spec;
        let nominal = global * 1000 / spec.rate_per_s.max(1);
        let event_time_ms = nominal - lag(spec, &mut self.rng, nominal);
        let mut d = Drawing { global, event_time_ms, producer: self.producer, spec, rng: &mut self.rng };
        let (key, value) = draw.draw(&mut d);
        (key.hash, Event { id: global, key, value, event_time_ms }, nominal)
    }

    /// How far the event time runs behind the nominal time (never below 0). No draw is made
    /// when neither disorder nor late events are asked for, so such workloads stay as they were.
    fn lag(&mut self, nominal: u64) -> u64 {
        lag(&self.spec, &mut self.rng, nominal)
    }
}

/// See [`ProducerEvents::lag`].
fn lag(spec: &WorkloadSpec, rng: &mut ChaCha8Rng, nominal: u64) -> u64 {
    let mut lag = 0;
    if spec.disorder_ms > 0 {
        lag += rng.gen_range(0..=spec.disorder_ms);
    }
    if spec.late_per_mille > 0 && rng.gen_range(0..1000) < spec.late_per_mille {
        lag += spec.late_by_ms;
    }
    lag.min(nominal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorkloadSpec {
        WorkloadSpec {
            input: Input::Synthetic,
            seed: 7,
            events: 1001,
            keys: 10,
            partitions: 4,
            producers: 3,
            rate_per_s: 1000,
            value_max: 100,
            streams: 1,
            disorder_ms: 0,
            late_per_mille: 0,
            late_by_ms: 0,
        }
    }

    #[test]
    fn producers_split_events_and_own_their_keys_and_partitions() {
        let s = spec();
        let mut total = 0;
        for p in 0..s.producers {
            for e in s.events_for(p) {
                let key: u64 = crate::sdk::codec::decode(&e.event.key.bytes);
                assert_eq!(key % 3, u64::from(p));
                assert!(key < s.keys);
                assert_eq!(e.partition % 3, p);
                assert!(e.partition < 4);
                total += 1;
            }
        }
        assert_eq!(total, 1001);
    }

    /// Nexmark events come in blocks whose encodings share a buffer: across block boundaries
    /// and at a short last block, a producer still gets its share of the events, numbered in
    /// order, each its own encoding of a Nexmark event.
    #[test]
    fn nexmark_events_in_blocks_are_each_producers_share_in_order() {
        let s = WorkloadSpec { input: Input::Nexmark, events: 3 * NEXMARK_BLOCK + 7, ..spec() };
        for p in 0..s.producers {
            let events: Vec<Emitted> = s.events_for(p).collect();
            assert_eq!(events.len() as u64, s.events_of(p));
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.event.id, i as u64 * u64::from(s.producers) + u64::from(p));
                let decoded: ::nexmark::event::Event = crate::sdk::codec::decode(&e.event.value);
                assert_eq!(crate::sdk::codec::encode(&decoded), e.event.value);
            }
            assert_eq!(events, s.events_for(p).collect::<Vec<_>>(), "the same seed, the same events");
        }
    }

    #[test]
    fn same_seed_same_events() {
        let a: Vec<_> = spec().events_for(1).collect();
        let b: Vec<_> = spec().events_for(1).collect();
        assert_eq!(a, b);
        let other = WorkloadSpec { seed: 8, ..spec() };
        assert_ne!(a, other.events_for(1).collect::<Vec<_>>());
    }

    #[test]
    fn disorder_stays_within_its_bound_and_late_events_lag_further() {
        let s = WorkloadSpec { disorder_ms: 30, late_per_mille: 100, late_by_ms: 500, ..spec() };
        let mut late = 0;
        for e in s.events_for(0) {
            let lag = e.emit_at_ms - e.event.event_time_ms;
            assert!(lag <= 530);
            late += u64::from(lag > 30);
        }
        assert!(late > 0);
    }

    #[test]
    fn nexmark_events_are_numbered_globally_and_paced_from_the_base_time() {
        let s = WorkloadSpec { input: Input::Nexmark, producers: 2, events: 200, ..spec() };
        let base = s.base_time_ms();
        let ids: Vec<u64> = s.events_for(1).map(|e| e.event.id).collect();
        assert_eq!(ids[..3], [1, 3, 5]);
        let kind = |e: &Emitted| {
            let event: ::nexmark::event::Event = crate::sdk::codec::decode(&e.event.value);
            event.event_type() as u8
        };
        let kinds: std::collections::BTreeSet<u8> =
            (0..2).flat_map(|p| s.events_for(p)).map(|e| kind(&e)).collect();
        assert_eq!(kinds.len(), 3, "persons, auctions and bids");
        for e in s.events_for(0) {
            assert_eq!(e.event.event_time_ms, base + e.emit_at_ms);
        }
    }
}
