//! What a run must commit: the input it was given ([`Input`], [`inputs`]) and the output its
//! oracle expects ([`Expected`], [`Want`]). A pipeline's oracle fills it: the built-ins' own
//! models (`builtins::reference`) or the differential oracle (`oracle`).

use faultline_engine::fixed_hash::{probed_map, ProbedMap};
use faultline_engine::plugin::Dataflow;
use faultline_engine::record::{Cause, Event, KeyBytes, Origin, OutputId, Side};
use faultline_engine::sdk::codec::{encode, stable_hash};
use faultline_engine::sdk::Blob;
use faultline_engine::workload::WorkloadSpec;

/// One input event, its cause (the producer and its per-partition sequence number) and its
/// partition: `(cause, partition)` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub event: Event,
    pub cause: Cause,
    pub partition: u32,
}

impl Input {
    /// The input's name: its cause and partition.
    pub fn name(&self) -> (Cause, u32) {
        (self.cause, self.partition)
    }
}

/// What one expected output must hold: its encoded value, the input it descends from where the
/// model defines it (`None`: the engine's provenance is not judged, as for what a timer emits),
/// and when it became determinable in event time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub value: Blob,
    pub cause: Option<Cause>,
    /// The event time at which the result became determinable (see the pipeline's evaluator).
    pub ready_ms: u64,
}

/// An expected output: its id and what it must hold.
pub type Expect = (OutputId, Want);

/// The output a model expects for `value` under `key` and `origin`.
pub fn expect<K: serde::Serialize, T: serde::Serialize>(
    key: &K,
    origin: Origin,
    value: &T,
    cause: Option<Cause>,
    ready_ms: u64,
) -> Expect {
    expect_encoded(key, origin, encode(value), cause, ready_ms)
}

/// [`expect`] for a value already encoded (an input passed through as it came).
pub fn expect_encoded<K: serde::Serialize>(
    key: &K,
    origin: Origin,
    value: Blob,
    cause: Option<Cause>,
    ready_ms: u64,
) -> Expect {
    let origin = match origin {
        Origin::Content(_) => Origin::Content(stable_hash(&value)),
        other => other,
    };
    (OutputId::main(KeyBytes::of(key), origin, 0), Want { value, cause, ready_ms })
}

/// The expected output, sorted by id (the main output and named side outputs; late records are
/// judged apart). An id occurs once, except a
/// content id, which occurs as many times as equal outputs are expected.
#[derive(Debug, Default)]
pub struct Expected {
    outputs: Vec<Expect>,
}

impl Expected {
    /// The number of expected output records.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Every expected output, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Expect> + '_ {
        self.outputs.iter()
    }

    /// What the reference expects for output `id`, if anything.
    pub fn get(&self, id: &OutputId) -> Option<&Want> {
        let at = self.outputs.partition_point(|(i, _)| i < id);
        self.outputs.get(at).filter(|(i, _)| i == id).map(|(_, w)| w)
    }

    /// Sorts `v` by id; panics if an id other than a content id occurs twice (an evaluator bug).
    pub fn from_unsorted(v: Vec<Expect>) -> Self {
        let order = id_order(&v, |e| &e.0);
        let mut slots: Vec<Option<Expect>> = v.into_iter().map(Some).collect();
        let v: Vec<Expect> = order
            .iter()
            .map(|&i| slots[i as usize].take().expect("an order names each place once"))
            .collect();
        if let Some(pair) =
            v.windows(2).find(|p| p[0].0 == p[1].0 && !matches!(p[0].0.origin, Origin::Content(_)))
        {
            panic!(
                "the reference produced output {:?} twice: {:?} and {:?}",
                pair[0].0, pair[0].1, pair[1].1
            );
        }
        Expected { outputs: v }
    }
}

/// The places of `items` in the order of their ids, equal ids in place order.
///
/// Sorting compact keys, each an id but for its key's bytes with the item's place, keeps the
/// sort's comparisons cheap and in cache: comparing whole ids reaches through two records for
/// each; where every id allows, the keys are [`compact`], half as wide. The keys order as the ids
/// do unless two different keys share a hash, which a pass in the items' own order finds, and
/// then the ids are sorted in full.
pub fn id_order<T>(items: &[T], id: impl Fn(&T) -> &OutputId) -> Vec<u32> {
    assert!(u32::try_from(items.len()).is_ok(), "{} outputs to order", items.len());
    // Collected into a vector of the right size: an `Option` of a vector grows by doubling.
    let mut keys = Vec::with_capacity(items.len());
    let all_compact = items
        .iter()
        .enumerate()
        .all(|(at, item)| compact(id(item)).map(|key| keys.push((key, at as u32))).is_some());
    let mut order: Vec<u32> = match all_compact.then_some(keys) {
        Some(mut keys) => {
            keys.sort_unstable();
            keys.into_iter().map(|(_, at)| at).collect()
        }
        None => {
            let mut keys: Vec<[u64; 6]> =
                items.iter().enumerate().map(|(at, item)| packed(id(item), at as u32)).collect();
            keys.sort_unstable();
            keys.into_iter().map(|key| key[5] as u32).collect()
        }
    };
    if !one_key_per_hash(items, &id) {
        order.sort_by(|a, b| id(&items[*a as usize]).cmp(id(&items[*b as usize])).then(a.cmp(b)));
    }
    debug_assert!(order.windows(2).all(|w| id(&items[w[0] as usize]) <= id(&items[w[1] as usize])));
    order
}

/// An id but for its key's bytes, and a place, as words that order as the id's fields do
/// (side, key hash, origin, n; then the place): comparing words is cheaper than comparing the
/// enums they stand for.
fn packed(id: &OutputId, at: u32) -> [u64; 6] {
    let side = match id.side {
        Side::Main => 0,
        Side::Named(ns) => 1 + u64::from(ns),
    };
    let (tag, a, b) = match id.origin {
        Origin::Input(Cause { producer, seq }) => (0, u64::from(producer), seq),
        Origin::Timer { at_ms, tag } => (1, at_ms, tag),
        Origin::Content(hash) => (2, hash, 0),
    };
    [side, id.key.hash, tag, a, b, u64::from(id.n) << 32 | u64::from(at)]
}

/// The bits [`compact`] gives an input's producer, its sequence number and the output's `n`.
const PRODUCER_BITS: u32 = 12;
const SEQ_BITS: u32 = 40;
const N_BITS: u32 = 12;

/// [`packed`] in one word pair, but for the place, for the ids most pipelines emit: of the main
/// output, descending from an input, with small enough fields. The key's hash, then the
/// producer, the sequence number and `n`, order as the packed words do; half as wide, they sort
/// in about half the time.
fn compact(id: &OutputId) -> Option<u128> {
    const _: () = assert!(PRODUCER_BITS + SEQ_BITS + N_BITS == 64);
    let Origin::Input(Cause { producer, seq }) = id.origin else { return None };
    let fits = producer < 1 << PRODUCER_BITS && seq < 1 << SEQ_BITS && id.n < 1 << N_BITS;
    if id.side != Side::Main || !fits {
        return None;
    }
    let low = u64::from(producer) << (SEQ_BITS + N_BITS) | seq << N_BITS | u64::from(id.n);
    Some(u128::from(id.key.hash) << 64 | u128::from(low))
}

/// Whether no two different keys among `items` share a hash. Then a key's hash stands for its
/// bytes, and ids compared by hash alone order as ids compared in full (hash, then bytes).
fn one_key_per_hash<'a, T>(items: &'a [T], id: &impl Fn(&'a T) -> &'a OutputId) -> bool {
    let mut first: ProbedMap<u64, &[u8]> = probed_map();
    items.iter().all(|item| {
        let key = &id(item).key;
        *first.entry(key.hash).or_insert(key.bytes.as_slice()) == key.bytes.as_slice()
    })
}

/// Every input event of the run: producer 0's events in emission order, then producer 1's, ...
///
/// `cause.seq` counts each producer's events per partition from 0, as the producer numbers its
/// log records. A key's events all come from one producer and one partition, so this order is
/// also each key's log order.
pub fn inputs(workload: &WorkloadSpec, pipeline: &dyn Dataflow) -> Vec<Input> {
    let mut all = Vec::with_capacity(usize::try_from(workload.events).unwrap_or(0));
    for producer in 0..workload.producers {
        let mut next_seq = vec![0u64; workload.partitions as usize];
        for emitted in pipeline.generate(workload, producer) {
            let seq = &mut next_seq[emitted.partition as usize];
            let cause = Cause { producer, seq: *seq };
            *seq += 1;
            all.push(Input { event: emitted.event, cause, partition: emitted.partition });
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(bytes: &[u8], hash: u64, seq: u64) -> OutputId {
        let key = KeyBytes { hash, bytes: Blob::copy_from_slice(bytes) };
        OutputId::main(key, Origin::Input(Cause { producer: 0, seq }), 0)
    }

    fn full_sort(ids: &[OutputId]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.sort_by(|a, b| ids[*a as usize].cmp(&ids[*b as usize]).then(a.cmp(b)));
        order
    }

    #[test]
    fn ids_order_as_in_full_with_equal_ids_in_place_order() {
        let mut ids: Vec<OutputId> =
            (0..200u64).map(|i| id(&(i % 7).to_le_bytes(), stable_hash(&[(i % 7) as u8]), i % 5)).collect();
        ids[3].side = Side::Named(2);
        assert_eq!(id_order(&ids, |i| i), full_sort(&ids));
        assert!(id_order(&ids, |i| i).windows(2).any(|w| ids[w[0] as usize] == ids[w[1] as usize]));
    }

    /// Every side and every origin, with equal hashes, n and places mixed: the packed words
    /// order as the ids do.
    #[test]
    fn packed_keys_order_as_ids_of_every_side_and_origin() {
        let origins = [
            Origin::Input(Cause { producer: 1, seq: 5 }),
            Origin::Input(Cause { producer: 0, seq: u64::MAX }),
            Origin::Timer { at_ms: 3, tag: 9 },
            Origin::Timer { at_ms: 3, tag: 2 },
            Origin::Content(u64::MAX),
            Origin::Content(0),
        ];
        let sides = [Side::Named(u32::MAX), Side::Main, Side::Named(0)];
        let mut ids = Vec::new();
        for (i, origin) in origins.iter().enumerate() {
            for (j, side) in sides.iter().enumerate() {
                let key =
                    KeyBytes { hash: (i * j % 4) as u64, bytes: Blob::copy_from_slice(&[(i * j % 4) as u8]) };
                ids.push(OutputId { side: *side, key, origin: *origin, n: (i + j) as u32 % 3 });
            }
        }
        ids.extend(ids.clone());
        assert_eq!(id_order(&ids, |i| i), full_sort(&ids));
    }

    /// Ids that all take the compact keys, at the limits of their fields and just inside them,
    /// order as in full; one id beyond a limit sends them all to the packed words, in the same
    /// order.
    #[test]
    fn compact_keys_order_as_ids_at_their_fields_limits() {
        let (producers, seqs, ns) =
            ([0, 1, (1 << PRODUCER_BITS) - 1], [0, 7, (1u64 << SEQ_BITS) - 1], [0, 3, (1u32 << N_BITS) - 1]);
        let mut ids = Vec::new();
        for (i, &producer) in producers.iter().enumerate() {
            for (j, &seq) in seqs.iter().enumerate() {
                for &n in &ns {
                    let hash = [u64::MAX, 0, 5][(i + j) % 3];
                    let key = KeyBytes { hash, bytes: Blob::copy_from_slice(&hash.to_le_bytes()) };
                    ids.push(OutputId::main(key, Origin::Input(Cause { producer, seq }), n));
                }
            }
        }
        ids.extend(ids.clone());
        ids.reverse();
        assert!(ids.iter().all(|i| compact(i).is_some()));
        assert_eq!(id_order(&ids, |i| i), full_sort(&ids));
        for beyond in [(1 << PRODUCER_BITS, 0, 0), (0, 1 << SEQ_BITS, 0), (0, 0, 1 << N_BITS)] {
            let mut more = ids.clone();
            let key = ids[0].key.clone();
            more.push(OutputId::main(
                key,
                Origin::Input(Cause { producer: beyond.0, seq: beyond.1 }),
                beyond.2,
            ));
            assert!(compact(more.last().unwrap()).is_none());
            assert_eq!(id_order(&more, |i| i), full_sort(&more));
        }
    }

    #[test]
    fn keys_sharing_a_hash_but_not_their_bytes_are_ordered_by_their_bytes() {
        // The compact keys put (b, 0) before (a, 1); the ids put a first.
        let ids = vec![id(b"b", 9, 0), id(b"a", 9, 1), id(b"a", 9, 1)];
        assert_eq!(id_order(&ids, |i| i), vec![1, 2, 0]);
        assert_eq!(id_order(&ids, |i| i), full_sort(&ids));
    }
}
