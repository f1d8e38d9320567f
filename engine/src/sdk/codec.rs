//! The encoding of user data, and the stable hash keys route by.
//!
//! Everything an operator hands the engine — keys, inputs, outputs, state values — is encoded
//! with postcard: compact, deterministic for a given value, and independent of the platform. A
//! key's *hash* is FNV-1a over its encoding, finished with `mix64`: a fixed function of the
//! bytes, never `RandomState`, so the same key lands on the same partition, subtask and state
//! range in every run and every process.

use crate::sdk::blob::Blob;
use crate::sdk::writer::{self, Fixed};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::workload::mix64;

/// What keys, inputs, outputs and state values are: anything serde can encode, that clones and
/// prints.
pub trait Data: Serialize + DeserializeOwned + Clone + std::fmt::Debug + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + std::fmt::Debug + 'static> Data for T {}

/// Encodes `value`.
///
/// # Panics
/// If its `Serialize` implementation fails: a type postcard cannot encode (a map with non-data
/// keys, a sequence of unknown length) is an operator bug, named here with its type.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Blob {
    // A value of a few words (an integer key, a small tuple) holds nothing on the heap that
    // could make its encoding long: straight into an inline blob, with no allocation and no
    // copy. Anything larger (a string, a struct with strings, a Nexmark event) is encoded into
    // the thread's scratch buffer, then copied once into a shared allocation of its exact size.
    if std::mem::size_of_val(value) <= SMALL {
        let inline = Blob::write_inline(|data| {
            let mut fixed = Fixed { buffer: data, len: 0 };
            writer::write(value, &mut fixed).ok().map(|()| fixed.len)
        });
        if let Some(blob) = inline {
            return blob;
        }
    }
    written_blob(|buffer| written::<T>(writer::write(value, buffer)))
}

/// The largest value, in memory, worth trying inline first: two words.
const SMALL: usize = 16;

thread_local! {
    /// Where long values are encoded: reused, so an encoding costs no allocation of its own.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A string (or byte string) field read and written as its bytes, borrowed: for a view of a
/// type that reads its strings without allocating them or checking them for UTF-8 (see
/// [`EncodesAs`](super::operator::EncodesAs)). Postcard writes a string as its length and
/// bytes, exactly as it writes bytes, so this reads and writes the same encoding as the
/// `String` it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text<'a>(pub &'a [u8]);

impl Serialize for Text<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a [u8]>::deserialize(d).map(Text)
    }
}

/// Appends `value`'s encoding to `out` and returns where it lies: for values that will share
/// one buffer (see [`Blob::within`]).
pub fn encode_append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> std::ops::Range<usize> {
    let start = out.len();
    written::<T>(writer::write(value, out));
    start..out.len()
}

/// The bytes `write` appends to an empty buffer, as a blob: written in the thread's scratch
/// buffer and copied once into an allocation of their exact size, as [`encode`] writes a long
/// value. For an operator that assembles an encoding itself (see
/// [`Ctx::emit_encoded`](super::operator::Ctx::emit_encoded)): it allocates once per blob,
/// where building a vector of its own and keeping it allocates twice.
pub fn written_blob(write: impl FnOnce(&mut Vec<u8>)) -> Blob {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            write(&mut buffer);
            Blob::copy_from_slice(&buffer)
        }
        // `write` encodes a value inside (through `encode`, or a `Serialize` that encodes
        // another value inside): a buffer of its own.
        Err(_) => {
            let mut own = Vec::new();
            write(&mut own);
            Blob::copy_from_slice(&own)
        }
    })
}

/// Panics, naming the type, if encoding a `T` into a growable buffer failed: only a
/// `Serialize` postcard cannot encode fails there.
fn written<T: ?Sized>(result: Result<(), writer::Error>) {
    if let Err(e) = result {
        panic!("encoding a {}: {e}", std::any::type_name::<T>());
    }
}

/// Decodes a `T` the engine encoded.
///
/// # Panics
/// If `bytes` do not hold a `T`: the engine only decodes what it encoded from the same type, so
/// a failure is a bug (a state descriptor's name reused with another type, for one).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
    match postcard::from_bytes(bytes) {
        Ok(value) => value,
        Err(e) => panic!("decoding a {} from {} bytes: {e}", std::any::type_name::<T>(), bytes.len()),
    }
}

/// Decodes a `T` that borrows from `bytes` (its `&str` and `&[u8]` fields point into them):
/// reading a large input without allocating. Panics as [`decode`] does.
pub fn decode_borrowed<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> T {
    match postcard::from_bytes(bytes) {
        Ok(value) => value,
        Err(e) => panic!("decoding a {} from {} bytes: {e}", std::any::type_name::<T>(), bytes.len()),
    }
}

/// Decodes a `T` from exactly `bytes`, if they hold one.
pub fn try_decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

/// Decodes a `T` from the front of `bytes`, if they start with one; with what is left.
pub fn try_decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Option<(T, &[u8])> {
    postcard::take_from_bytes(bytes).ok()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The stable hash of an encoded key (or a state name): FNV-1a, finished with `mix64`.
pub const fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        h = (h ^ bytes[i] as u64).wrapping_mul(FNV_PRIME);
        i += 1;
    }
    mix64(h)
}

/// A key in the engine's form: its encoding, and the hash of it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyBytes {
    pub hash: u64,
    pub bytes: Blob,
}

impl KeyBytes {
    pub fn of<K: Serialize + ?Sized>(key: &K) -> Self {
        let bytes = encode(key);
        KeyBytes { hash: stable_hash(&bytes), bytes }
    }

    /// A key from bytes already encoded.
    pub fn from_encoded(bytes: Blob) -> Self {
        KeyBytes { hash: stable_hash(&bytes), bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    struct Txn {
        card: String,
        country: String,
        cents: u64,
    }

    /// A written blob holds what was written, a long one as a short one, and a value encoded
    /// while writing (which finds the scratch buffer taken) is its own.
    #[test]
    fn a_written_blob_holds_what_was_written() {
        let long = "a string longer than any inline blob".to_string();
        let nested = written_blob(|out| {
            out.push(7);
            out.extend_from_slice(&encode(&long));
        });
        let mut expected = vec![7];
        expected.extend_from_slice(&encode(&long));
        assert_eq!(nested.as_slice(), expected.as_slice());
        assert_eq!(written_blob(|out| out.extend_from_slice(b"short")).as_slice(), b"short");
        assert_eq!(written_blob(|_| {}).as_slice(), b"");
    }

    #[test]
    fn data_round_trips() {
        let t = Txn { card: "card-7".into(), country: "PT".into(), cents: 1_999 };
        assert_eq!(decode::<Txn>(&encode(&t)), t);
        assert_eq!(decode::<Vec<i64>>(&encode(&vec![-1i64, 2])), vec![-1, 2]);
    }

    /// Long values grow the scratch buffer; a `Serialize` that encodes inside gets its own;
    /// both give the bytes postcard gives.
    #[test]
    fn long_and_nested_encodings_are_postcards() {
        let long: Vec<u64> = (0..5_000).map(|i| i * 1_000_003).collect();
        assert_eq!(&*encode(&long), &postcard::to_allocvec(&long).unwrap()[..]);
        assert_eq!(decode::<Vec<u64>>(&encode(&long)), long);

        struct Nested(Txn);
        impl serde::Serialize for Nested {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&encode(&self.0))
            }
        }
        let t = Txn { card: "card-7".repeat(10), country: "PT".into(), cents: 1_999 };
        let nested = encode(&Nested(t.clone()));
        assert_eq!(decode::<Txn>(&decode::<Vec<u8>>(&nested)), t);
        assert_eq!(&*encode(&t), &postcard::to_allocvec(&t).unwrap()[..], "after, as before");
    }

    /// The hash is a fixed function of the bytes: these values hold on every platform, in
    /// every process, forever (changing them reroutes every key of every saved scenario).
    #[test]
    fn the_stable_hash_is_pinned() {
        assert_eq!(stable_hash(b""), mix64(FNV_OFFSET));
        let a = KeyBytes::of("card-7");
        assert_eq!(a, KeyBytes::of(&"card-7".to_string()), "a &str and a String encode alike");
        assert_ne!(a.hash, KeyBytes::of("card-8").hash);
        assert_eq!(stable_hash(b"a"), 0x5f29_c2aa_dd9b_8527_u64, "{:#x}", stable_hash(b"a"));
    }

    #[test]
    #[should_panic(expected = "decoding a alloc::string::String")]
    fn decoding_the_wrong_type_names_it() {
        let _: String = decode(&[0xff, 0xff, 0xff]);
    }
}
