//! The seeded input workload: which events each producer emits, in which order, at which time.
//!
//! It is a pure function of the [`WorkloadSpec`]: producers replay it after a restart to resume
//! where their durable progress says, and the checkers evaluate the same input independently.
//!
//! Keys are owned by producers (`key % producers`) and a key always maps to one log partition,
//! so each key's events are totally ordered in the log: the per-key order the reference model
//! assumes is fixed by the workload, not by interleavings the engine may choose.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::record::Event;

/// Everything that determines the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub seed: u64,
    pub events: u64,
    pub keys: u64,
    pub partitions: u32,
    pub producers: u32,
    pub rate_per_s: u64,
    pub value_max: i64,
}

/// A 64-bit finaliser (splitmix64): a fixed, seedless hash for partitioning.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The log partition a key is written to.
pub fn partition_of(key: u64, partitions: u32) -> u32 {
    assert!(partitions > 0);
    (mix64(key) % u64::from(partitions)) as u32
}

impl WorkloadSpec {
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
        assert!(self.keys >= u64::from(self.producers), "every producer must own a key");
        let stream_seed = mix64(self.seed ^ mix64(u64::from(producer) + 1));
        ProducerEvents {
            spec: self.clone(),
            producer,
            emitted: 0,
            rng: ChaCha8Rng::seed_from_u64(stream_seed),
        }
    }
}

/// Iterator over one producer's events: `(partition, event)`.
pub struct ProducerEvents {
    spec: WorkloadSpec,
    producer: u32,
    emitted: u64,
    rng: ChaCha8Rng,
}

impl Iterator for ProducerEvents {
    type Item = (u32, Event);

    fn next(&mut self) -> Option<(u32, Event)> {
        let spec = &self.spec;
        if self.emitted == spec.events_of(self.producer) {
            return None;
        }
        // The producer's i-th event is global event i * producers + producer; global events are
        // spread evenly over time at `rate_per_s`.
        let global = self.emitted * u64::from(spec.producers) + u64::from(self.producer);
        let event_time_ms = global * 1000 / spec.rate_per_s.max(1);
        let key_slot = self.rng.gen_range(0..spec.keys_of(self.producer));
        let key = key_slot * u64::from(spec.producers) + u64::from(self.producer);
        let value = self.rng.gen_range(-spec.value_max..=spec.value_max);
        self.emitted += 1;
        let event = Event { key, value, event_time_ms };
        Some((partition_of(key, spec.partitions), event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorkloadSpec {
        WorkloadSpec {
            seed: 7,
            events: 1001,
            keys: 10,
            partitions: 4,
            producers: 3,
            rate_per_s: 1000,
            value_max: 100,
        }
    }

    #[test]
    fn producers_split_events_and_own_their_keys() {
        let s = spec();
        let mut total = 0;
        for p in 0..s.producers {
            for (partition, e) in s.events_for(p) {
                assert_eq!(e.key % 3, u64::from(p));
                assert!(e.key < s.keys);
                assert_eq!(partition, partition_of(e.key, 4));
                total += 1;
            }
        }
        assert_eq!(total, 1001);
    }

    #[test]
    fn same_seed_same_events() {
        let a: Vec<_> = spec().events_for(1).collect();
        let b: Vec<_> = spec().events_for(1).collect();
        assert_eq!(a, b);
        let other = WorkloadSpec { seed: 8, ..spec() };
        assert_ne!(a, other.events_for(1).collect::<Vec<_>>());
    }
}
