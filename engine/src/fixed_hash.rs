//! A fixed hasher, for hash maps that are looked up on a hot path and never iterated.
//!
//! std's `RandomState` is seeded per thread, so a map's iteration order would differ between
//! processes; the engine uses `BTreeMap` for anything it iterates. A map that is only ever
//! probed (`get`, `entry`, `insert`) has no order to leak, and one keyed by a key's stable hash
//! (see `sdk::codec::stable_hash`) is probed fastest with a hasher that folds words together
//! instead of running SipHash over them. The same inputs give the same hash in every process.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map that is never iterated: see the module doc.
pub type ProbedMap<K, V> = HashMap<K, V, BuildHasherDefault<FixedHasher>>;

/// A new, empty [`ProbedMap`].
pub fn probed_map<K, V>() -> ProbedMap<K, V> {
    HashMap::with_hasher(BuildHasherDefault::default())
}

/// Folds each word in with a multiply and a rotate (the scheme of rustc's `FxHasher`); bytes go
/// in a word at a time.
#[derive(Clone, Copy, Default)]
pub struct FixedHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FixedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(SEED);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, Hash};

    use super::*;

    fn hash_of<T: Hash>(value: &T) -> u64 {
        BuildHasherDefault::<FixedHasher>::default().hash_one(value)
    }

    /// Fixed values: the hash is the same in every process and on every thread.
    #[test]
    fn the_hash_is_pinned() {
        assert_eq!(hash_of(&0u64), 0);
        assert_eq!(hash_of(&1u64), SEED);
        assert_eq!(hash_of(&(1u64, 2u32)), (SEED.rotate_left(5) ^ 2).wrapping_mul(SEED));
        assert_ne!(hash_of(&"ab"), hash_of(&"ba"));
    }

    #[test]
    fn a_probed_map_finds_what_it_holds() {
        let mut map = probed_map();
        for i in 0..1000u64 {
            map.insert((i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i % 3), i);
        }
        for i in 0..1000u64 {
            assert_eq!(map.get(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i % 3)), Some(&i));
        }
        assert_eq!(map.len(), 1000);
    }
}
