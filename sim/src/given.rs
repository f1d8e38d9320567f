//! Input given event by event: a scenario's `[[workload.given]]` list, which replaces the
//! pipeline's generator.
//!
//! A property test with a user's own `Strategy` (`prop::Subject::input`) draws typed events; a
//! case holds them here, encoded, so that the scenario file it writes replays them through
//! `faultline run` with no type in sight. Each event is its key's and value's encodings
//! (postcard, as the engine carries them) in hex, and its event time.
//!
//! The run reads the first `workload.events` of the list; the shrinker cuts the input by
//! lowering that number. Event `i` is emitted at the workload's pace (`i * 1000 / rate_per_s`
//! ms) by the producer that owns its key (the key's hash, modulo the producers), into one of
//! that producer's partitions, so that each key's events keep their order in the log, as
//! generated input does. A given event's id is its place in the list.

use std::fmt;

use faultline_engine::record::{Event, KeyBytes};
use faultline_engine::sdk::codec::{encode, Data};
use faultline_engine::sdk::Blob;
use faultline_engine::workload::{mix64, partition_of, Emitted, WorkloadSpec};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One given input event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Given {
    /// The key's encoding, in hex.
    pub key: Hex,
    /// The value's encoding, in hex.
    pub value: Hex,
    pub event_time_ms: u64,
}

impl Given {
    /// The event of `key` and `value` at `event_time_ms`, encoded as the engine carries it.
    pub fn of<K: Data, V: Data>(key: &K, value: &V, event_time_ms: u64) -> Given {
        let key = Hex(KeyBytes::of(key).bytes.to_vec());
        Given { key, value: Hex(encode(value).to_vec()), event_time_ms }
    }
}

/// Bytes written as lowercase hex: how a given event's encodings read in a scenario file. A
/// string that is not hex is refused when the file loads, with its line.
#[derive(Clone, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hex, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text).map(Hex).map_err(|e| {
            serde::de::Error::custom(format!("`{text}` is not an encoding in hex (two digits a byte): {e}"))
        })
    }
}

/// The producer that emits events of the key with `hash`: one per key, so a key's events keep
/// their order in the log.
pub fn producer_of(hash: u64, producers: u32) -> u32 {
    assert!(producers > 0, "a workload has producers");
    (mix64(hash ^ 0x6769_7665_6e00) % u64::from(producers)) as u32
}

/// The first `workload.events` of `given`, as each producer emits them: one list per producer,
/// in emission order.
pub fn emitted(given: &[Given], workload: &WorkloadSpec) -> Vec<Vec<Emitted>> {
    let n = usize::try_from(workload.events).expect("an event count fits in memory");
    assert!(n <= given.len(), "{n} events run, {} given (validation holds it)", given.len());
    let mut by_producer = vec![Vec::new(); workload.producers as usize];
    for (i, g) in given[..n].iter().enumerate() {
        let key = KeyBytes::from_encoded(Blob::copy_from_slice(&g.key.0));
        let producer = producer_of(key.hash, workload.producers);
        let partition = partition_of(key.hash, producer, workload.producers, workload.partitions);
        let id = i as u64;
        let emit_at_ms = id * 1000 / workload.rate_per_s.max(1);
        let value = Blob::copy_from_slice(&g.value.0);
        let event = Event { id, key, value, event_time_ms: g.event_time_ms };
        by_producer[producer as usize].push(Emitted { partition, emit_at_ms, event });
    }
    assert_eq!(by_producer.iter().map(Vec::len).sum::<usize>(), n, "every event has a producer");
    by_producer
}

/// `given`'s first `events` as `[[workload.given]]` entries of a scenario file, each under a
/// comment `show` gives it (`None`: no comment).
pub fn to_toml(given: &[Given], events: u64, show: &dyn Fn(&Given) -> Option<String>) -> String {
    let n = usize::try_from(events).unwrap_or(usize::MAX).min(given.len());
    let mut out = String::new();
    for g in &given[..n] {
        out.push_str("\n[[workload.given]]\n");
        if let Some(shown) = show(g) {
            for line in shown.lines() {
                out.push_str(&format!("# {line}\n"));
            }
        }
        out.push_str(&format!("key = \"{:?}\"\nvalue = \"{:?}\"\n", g.key, g.value));
        out.push_str(&format!("event_time_ms = {}\n", g.event_time_ms));
    }
    out
}

#[cfg(test)]
mod tests {
    use faultline_engine::sdk::codec::decode;

    use super::*;

    fn workload(events: u64, producers: u32, partitions: u32) -> WorkloadSpec {
        WorkloadSpec {
            input: faultline_engine::workload::Input::Synthetic,
            seed: 1,
            events,
            keys: 1,
            partitions,
            producers,
            rate_per_s: 100,
            value_max: 0,
            streams: 1,
            disorder_ms: 0,
            late_per_mille: 0,
            late_by_ms: 0,
        }
    }

    fn given(n: u64) -> Vec<Given> {
        (0..n).map(|i| Given::of(&format!("card-{}", i % 5), &(i, "PT".to_string()), 1000 + i)).collect()
    }

    #[test]
    fn a_given_event_reads_back_as_what_was_given() {
        let g = Given::of(&"card-1".to_string(), &(7u64, "PT".to_string()), 42);
        let table = toml::Table::try_from(&g).expect("a given event serialises");
        let back: Given = table.try_into().expect("and reads back");
        assert_eq!(back, g);
        assert_eq!(decode::<String>(&back.key.0), "card-1");
        assert_eq!(decode::<(u64, String)>(&back.value.0), (7, "PT".to_string()));
    }

    #[test]
    fn text_that_is_not_hex_is_refused_naming_it() {
        let e = toml::from_str::<Given>("key = \"0g\"\nvalue = \"00\"\nevent_time_ms = 1")
            .expect_err("0g is not hex");
        assert!(e.message().contains("`0g` is not an encoding in hex"), "{e}");
    }

    #[test]
    fn each_key_has_one_producer_and_keeps_its_order() {
        let spec = workload(200, 3, 7);
        let by_producer = emitted(&given(300), &spec);
        assert_eq!(by_producer.iter().map(Vec::len).sum::<usize>(), 200, "the first 200 run");
        let mut owner = std::collections::BTreeMap::new();
        for (p, events) in by_producer.iter().enumerate() {
            assert!(events
                .windows(2)
                .all(|w| w[0].emit_at_ms <= w[1].emit_at_ms && w[0].event.id < w[1].event.id));
            for e in events {
                assert_eq!(*owner.entry(e.event.key.clone()).or_insert(p), p, "one producer a key");
                assert_eq!(e.partition % 3, p as u32, "a producer writes its own partitions");
                assert_eq!(e.emit_at_ms, e.event.id * 10, "paced at 100 a second");
                assert_eq!(e.event.event_time_ms, 1000 + e.event.id);
            }
        }
        assert!(by_producer.iter().filter(|events| !events.is_empty()).count() >= 2, "keys spread");
    }

    #[test]
    fn the_written_list_is_the_first_events_under_their_comments() {
        let text = to_toml(&given(4), 3, &|g| Some(format!("at {}", g.event_time_ms)));
        assert_eq!(text.matches("[[workload.given]]").count(), 3);
        assert!(text.contains("# at 1002\nkey = "), "{text}");
        #[derive(Deserialize)]
        struct Doc {
            workload: W,
        }
        #[derive(Deserialize)]
        struct W {
            given: Vec<Given>,
        }
        let doc: Doc = toml::from_str(&text).expect("the list parses");
        assert_eq!(doc.workload.given, given(3));
    }
}
