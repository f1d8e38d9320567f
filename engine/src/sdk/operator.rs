//! The typed operator: what a user writes, the context it works through, the provenance the
//! engine stamps on what it emits, and the type-erased form the engine runs.
//!
//! # What the engine calls
//! - [`Operator::on_record`] for each input record, with its decoded key and value. For an
//!   event-time operator, a record behind the watermark by more than the allowed lateness never
//!   gets here: the engine sends it to the `late` side output.
//! - [`Operator::on_timer`] for each timer the watermark passed, in `(time, key, tag)` order.
//!
//! # Provenance
//! Every emitted record carries an [`Origin`] the engine sets, never the operator: the input
//! whose handling emitted it, or the timer that fired, and its index `n` among that call's
//! emits. With its key and side that is its identity, stable across replays, so the checkers
//! can tell a lost output from a duplicate. An operator that emits where arrival order decides
//! (a symmetric join, on the second side's arrival) declares [`Identity::Content`]: its outputs
//! are identified by their encoded content instead.

use std::marker::PhantomData;

use crate::sdk::Blob;

use super::codec::{decode, encode, stable_hash, Data, KeyBytes};
use super::state::{
    self, ListHandle, ListState, MapHandle, MapState, Store, TimerKey, ValueHandle, ValueState,
};
use crate::record::Cause;

/// A keyed, stateful operator over user types. Its fields are configuration only: all state
/// lives in the context's keyed state, which the engine snapshots, restores and replicates.
pub trait Operator: 'static {
    /// What records are keyed by; state and timers are scoped to it.
    type Key: Data;
    type In: Data;
    /// The key of what it emits: the next stage's key, or how the sink groups outputs.
    type OutKey: Data;
    type Out: Data;

    /// Handles one input record of `key`.
    fn on_record(&self, key: &Self::Key, input: Self::In, ctx: &mut Ctx<'_, Self>);

    /// Handles one input record of `key` before it is decoded. The default decodes it and
    /// calls [`on_record`](Self::on_record); a pass-through overrides it to [`Ctx::forward`]
    /// the input as it is.
    fn on_encoded(&self, key: &Self::Key, input: Encoded<'_, Self::In>, ctx: &mut Ctx<'_, Self>) {
        self.on_record(key, input.decode(), ctx);
    }

    /// A timer of `key` this operator set fired.
    fn on_timer(&self, key: &Self::Key, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let _ = (key, timer, ctx);
    }

    /// Whether it works in event time: then late records go to the `late` side output.
    fn event_time(&self) -> bool;

    /// How its outputs are identified (see the module doc).
    fn identity(&self) -> Identity {
        Identity::Origin
    }
}

/// An input record's value still in its encoding: [`decode`](Encoded::decode) it to read it,
/// or hand it to [`Ctx::forward`] to emit it unchanged. Only the engine makes one, from a
/// record that holds a `T`, so forwarding it emits a well-formed `T`.
pub struct Encoded<'a, T> {
    bytes: &'a Blob,
    _t: PhantomData<fn() -> T>,
}

impl<'a, T: Data> Encoded<'a, T> {
    fn new(bytes: &'a Blob) -> Self {
        debug_assert!(
            super::codec::try_decode::<T>(bytes).is_some(),
            "an input that holds no {}",
            type_name::<T>()
        );
        Encoded { bytes, _t: PhantomData }
    }

    pub fn decode(&self) -> T {
        decode(self.bytes)
    }

    /// The encoding (postcard's).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A type whose encoding is an encoding of `T`: a view of `T` that borrows its strings (as
/// [`Text`](super::codec::Text)), to read an input and emit what was computed from it without
/// allocating them. Postcard writes a struct as its fields in order, so a view with `T`'s
/// fields in `T`'s order, each encoding as `T`'s does, is one. Claiming it for a type that is
/// not is a bug that the output's checkers see as wrong values, and that debug builds assert.
pub trait EncodesAs<T>: serde::Serialize {}

fn type_name<T>() -> &'static str {
    std::any::type_name::<T>()
}

/// A fired timer, as the operator set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub at_ms: u64,
    pub tag: u64,
}

/// How an operator's outputs are identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// By the input or timer whose handling emitted them.
    Origin,
    /// By their encoded content (and the input or timer is kept as provenance only).
    Content,
}

/// What emitted a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    /// Handling this input record.
    Input(Cause),
    /// This timer firing.
    Timer { at_ms: u64, tag: u64 },
    /// Content identity: the stable hash of the encoded output.
    Content(u64),
}

/// Which output a record goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Side {
    /// The operator's results (or the next stage's input).
    Main,
    /// A named side output, by the namespace of its name.
    Named(u32),
}

/// A named side output carrying `T`.
pub struct SideOutput<T> {
    pub name: &'static str,
    id: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> SideOutput<T> {
    pub const fn new(name: &'static str) -> Self {
        SideOutput { name, id: state::namespace(name), _t: PhantomData }
    }

    pub fn side(&self) -> Side {
        Side::Named(self.id)
    }
}

/// One emitted record, encoded, with its provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    pub side: Side,
    pub key: KeyBytes,
    pub value: Blob,
    pub origin: Origin,
    /// Its index among the same call's emits (of one origin).
    pub n: u32,
    /// The input it descends from: the record handled, or the one that set the timer.
    pub cause: Cause,
    /// Its event time at the next stage: the record's, or the timer's time, unless the
    /// operator gave one (`emit_at`).
    pub event_time_ms: u64,
}

/// What a call works on: the store, the time, and where emits go.
pub struct Call<'a> {
    pub store: &'a mut dyn Store,
    pub watermark: u64,
    pub lateness_ms: u64,
    pub out: &'a mut Vec<Emitted>,
}

/// An operator's window on the engine while it handles one record or timer of one key.
pub struct Ctx<'a, O: ?Sized> {
    call: Call<'a>,
    key: KeyBytes,
    origin: Origin,
    cause: Cause,
    /// The event time of the record handled (none in a timer).
    timestamp: Option<u64>,
    identity: Identity,
    emitted: u32,
    _o: PhantomData<fn(&O)>,
}

impl<O: Operator + ?Sized> Ctx<'_, O> {
    /// The key in scope's value of `d`.
    pub fn value<T: Data>(&mut self, d: &ValueState<T>) -> ValueHandle<'_, T> {
        state::value(self.call.store, &self.key, d)
    }

    /// The key in scope's map of `d`.
    pub fn map<K: Data, V: Data>(&mut self, d: &MapState<K, V>) -> MapHandle<'_, K, V> {
        state::map(self.call.store, &self.key, d)
    }

    /// The key in scope's list of `d`.
    pub fn list<T: Data>(&mut self, d: &ListState<T>) -> ListHandle<'_, T> {
        state::list(self.call.store, &self.key, d)
    }

    /// Sets a timer for the key in scope, firing once the watermark reaches `at_ms`.
    pub fn set_timer(&mut self, at_ms: u64, tag: u64) {
        let timer = TimerKey { at_ms, key: self.key.clone(), tag };
        self.call.store.set_timer(timer, self.cause);
    }

    pub fn delete_timer(&mut self, at_ms: u64, tag: u64) {
        self.call.store.delete_timer(&TimerKey { at_ms, key: self.key.clone(), tag });
    }

    /// Emits `out` under `key`: to the next stage, or to the sink.
    pub fn emit(&mut self, key: &O::OutKey, out: &O::Out) {
        let t = self.time();
        let key = self.key_of(key);
        self.push(Side::Main, key, encode(out), t);
    }

    /// Emits `out` under `key` with event time `event_time_ms` at the next stage.
    pub fn emit_at(&mut self, key: &O::OutKey, out: &O::Out, event_time_ms: u64) {
        let key = self.key_of(key);
        self.push(Side::Main, key, encode(out), event_time_ms);
    }

    /// [`Ctx::emit`] from a view of the output (see [`EncodesAs`]).
    pub fn emit_as<V: EncodesAs<O::Out>>(&mut self, key: &O::OutKey, out: &V) {
        let t = self.time();
        let key = self.key_of(key);
        let bytes = encode(out);
        debug_assert!(
            super::codec::try_decode::<O::Out>(&bytes).is_some(),
            "{} does not encode as {}",
            type_name::<V>(),
            type_name::<O::Out>()
        );
        self.push(Side::Main, key, bytes, t);
    }

    /// Emits `bytes`, an encoding of an output the operator wrote itself, under `key`: most
    /// often an input's encoding with one field rewritten in place, which costs a copy where
    /// a decode and an encode cost a pass over every field. The bytes must decode as an
    /// `O::Out`; debug builds check that they do.
    pub fn emit_encoded(&mut self, key: &O::OutKey, bytes: Blob) {
        let t = self.time();
        let key = self.key_of(key);
        debug_assert!(
            super::codec::try_decode::<O::Out>(&bytes).is_some(),
            "{} bytes that hold no {}",
            bytes.len(),
            type_name::<O::Out>()
        );
        self.push(Side::Main, key, bytes, t);
    }

    /// Emits an input as it came, under `key`: no decode and no encode. The output type is
    /// the input type, or this does not compile.
    pub fn forward(&mut self, key: &O::OutKey, input: Encoded<'_, O::Out>) {
        let t = self.time();
        let key = self.key_of(key);
        self.push(Side::Main, key, input.bytes.clone(), t);
    }

    /// `key` in the engine's form. Most operators emit under the key in scope: its hash is
    /// already known.
    fn key_of(&self, key: &O::OutKey) -> KeyBytes {
        let bytes = encode(key);
        if bytes == self.key.bytes {
            return self.key.clone();
        }
        KeyBytes::from_encoded(bytes)
    }

    /// Emits `value` to the side output `to`, under the key in scope.
    pub fn side<T: Data>(&mut self, to: &SideOutput<T>, value: &T) {
        let t = self.time();
        self.push(to.side(), self.key.clone(), encode(value), t);
    }

    /// The event time of what this call emits by default: the record's, or the timer's.
    fn time(&self) -> u64 {
        match (self.timestamp, self.origin) {
            (Some(t), _) => t,
            (None, Origin::Timer { at_ms, .. }) => at_ms,
            (None, _) => unreachable!("a call without a record is a timer's"),
        }
    }

    /// The event time of the record being handled; `None` in `on_timer`.
    pub fn timestamp(&self) -> Option<u64> {
        self.timestamp
    }

    /// The input watermark: no record with an earlier event time is expected.
    pub fn watermark(&self) -> u64 {
        self.call.watermark
    }

    /// The allowed lateness: a time window `[start, end)` should fire at `end + lateness`.
    pub fn allowed_lateness_ms(&self) -> u64 {
        self.call.lateness_ms
    }

    fn push(&mut self, side: Side, key: KeyBytes, value: Blob, event_time_ms: u64) {
        let origin = match self.identity {
            Identity::Origin => self.origin,
            Identity::Content => Origin::Content(stable_hash(&value)),
        };
        // Content ids count equal contents as a multiset: their index means nothing.
        let n = if self.identity == Identity::Content { 0 } else { self.emitted };
        self.emitted += 1;
        self.call.out.push(Emitted { side, key, value, origin, n, cause: self.cause, event_time_ms });
    }
}

/// An operator as the engine runs it: encoded keys and values in, encoded emits out.
pub trait ErasedOperator {
    fn on_record(&self, key: &KeyBytes, value: &Blob, event_time_ms: u64, cause: Cause, call: Call<'_>);
    /// Timer `timer` fired; `cause` is the input that set it.
    fn on_timer(&self, timer: &TimerKey, cause: Cause, call: Call<'_>);
    fn event_time(&self) -> bool;
}

/// The erased form of a typed operator: it decodes each key and input once.
pub struct Typed<O>(pub O);

impl<O: Operator> Typed<O> {
    fn ctx<'a>(
        &self,
        call: Call<'a>,
        key: &KeyBytes,
        origin: Origin,
        cause: Cause,
        timestamp: Option<u64>,
    ) -> Ctx<'a, O> {
        let key = key.clone();
        Ctx { call, key, origin, cause, timestamp, identity: self.0.identity(), emitted: 0, _o: PhantomData }
    }
}

impl<O: Operator> ErasedOperator for Typed<O> {
    fn on_record(&self, key: &KeyBytes, value: &Blob, event_time_ms: u64, cause: Cause, call: Call<'_>) {
        let k: O::Key = decode(&key.bytes);
        let mut ctx = self.ctx(call, key, Origin::Input(cause), cause, Some(event_time_ms));
        self.0.on_encoded(&k, Encoded::new(value), &mut ctx);
    }

    fn on_timer(&self, timer: &TimerKey, cause: Cause, call: Call<'_>) {
        let k: O::Key = decode(&timer.key.bytes);
        let origin = Origin::Timer { at_ms: timer.at_ms, tag: timer.tag };
        let fired = Timer { at_ms: timer.at_ms, tag: timer.tag };
        self.0.on_timer(&k, fired, &mut self.ctx(call, &timer.key, origin, cause, None));
    }

    fn event_time(&self) -> bool {
        self.0.event_time()
    }
}
