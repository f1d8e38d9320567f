//! Keyed state declared by name and type, over the byte store the engine keeps.
//!
//! An operator declares each kind of state it keeps as a constant descriptor —
//! `const SEEN: MapState<String, u64> = MapState::new("seen");` — and reaches it through its
//! context for the key in scope: `ctx.map(&SEEN).insert(country, time)`. The engine stores
//! every value encoded, under a [`Slot`]: the key, the namespace (the stable hash of the
//! state's name) and a sub-key (the encoded map key; empty for values and lists). It snapshots,
//! restores and replicates those bytes without knowing the types, which is what makes any
//! operator fault-tolerant without code of its own.
//!
//! Timers live in the same store: `(time, key, tag)`, each with the cause of the input that set
//! it first (the provenance of what it emits).

use std::marker::PhantomData;

use crate::sdk::Blob;

use super::codec::{decode, encode, stable_hash, Data, KeyBytes};
use crate::record::Cause;

/// Where one value lives: the key it is scoped to, the namespace of its state, and a sub-key
/// within it. Ordered by key hash first, so a key's state is one range.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub key: KeyBytes,
    pub ns: u32,
    pub sub: Blob,
}

/// An event-time timer: fires for `key` once the watermark reaches `at_ms`, in `(at_ms, key,
/// tag)` order. Setting one already set does nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    pub at_ms: u64,
    pub key: KeyBytes,
    pub tag: u64,
}

/// The byte store a context works on: the engine's keyed state, or a test's.
pub trait Store {
    fn get(&self, slot: &Slot) -> Option<Blob>;
    fn put(&mut self, slot: Slot, value: Blob);
    /// Puts what `f` makes of the value at `slot` (`None`: there is none): a `get` and a `put`
    /// in one lookup.
    fn update(&mut self, slot: &Slot, f: &mut dyn FnMut(Option<&Blob>) -> Blob);
    fn remove(&mut self, slot: &Slot);
    /// Every `(sub, value)` of namespace `ns` for `key`, in sub-key order.
    fn range(&self, key: &KeyBytes, ns: u32) -> Vec<(Blob, Blob)>;
    /// Sets a timer, remembering `cause` if it was not set.
    fn set_timer(&mut self, timer: TimerKey, cause: Cause);
    fn delete_timer(&mut self, timer: &TimerKey);
}

/// The namespace of a state named `name`: the high half of its stable hash.
pub const fn namespace(name: &str) -> u32 {
    (stable_hash(name.as_bytes()) >> 32) as u32
}

/// A single value per key.
pub struct ValueState<T> {
    pub name: &'static str,
    ns: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> ValueState<T> {
    pub const fn new(name: &'static str) -> Self {
        ValueState { name, ns: namespace(name), _t: PhantomData }
    }
}

/// A map per key.
pub struct MapState<K, V> {
    pub name: &'static str,
    ns: u32,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> MapState<K, V> {
    pub const fn new(name: &'static str) -> Self {
        MapState { name, ns: namespace(name), _t: PhantomData }
    }
}

/// A list per key.
pub struct ListState<T> {
    pub name: &'static str,
    ns: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> ListState<T> {
    pub const fn new(name: &'static str) -> Self {
        ListState { name, ns: namespace(name), _t: PhantomData }
    }
}

/// One key's value of a [`ValueState`].
pub struct ValueHandle<'a, T> {
    store: &'a mut dyn Store,
    slot: Slot,
    _t: PhantomData<fn() -> T>,
}

impl<T: Data> ValueHandle<'_, T> {
    pub fn get(&self) -> Option<T> {
        self.store.get(&self.slot).map(|b| decode(&b))
    }

    pub fn set(&mut self, value: &T) {
        self.store.put(self.slot.clone(), encode(value));
    }

    /// Sets the value to what `f` makes of the current one (`None` if there is none), and
    /// returns it: a `get` then a `set`, with one lookup of the key's state.
    pub fn update(&mut self, f: impl FnOnce(Option<T>) -> T) -> T {
        update(self.store, &self.slot, f)
    }

    pub fn clear(&mut self) {
        self.store.remove(&self.slot);
    }
}

/// Puts what `f` makes of the value at `slot`, decoded, and returns it.
fn update<T: Data>(store: &mut dyn Store, slot: &Slot, f: impl FnOnce(Option<T>) -> T) -> T {
    let (mut f, mut new) = (Some(f), None);
    store.update(slot, &mut |old| {
        let f = f.take().expect("the store calls back once");
        let value = f(old.map(|b| decode(b)));
        let encoded = encode(&value);
        new = Some(value);
        encoded
    });
    new.expect("the store called back")
}

/// One key's map of a [`MapState`], in the order of its keys' encodings.
pub struct MapHandle<'a, K, V> {
    store: &'a mut dyn Store,
    key: &'a KeyBytes,
    ns: u32,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K: Data, V: Data> MapHandle<'_, K, V> {
    fn slot(&self, k: &K) -> Slot {
        Slot { key: self.key.clone(), ns: self.ns, sub: encode(k) }
    }

    pub fn get(&self, k: &K) -> Option<V> {
        self.store.get(&self.slot(k)).map(|b| decode(&b))
    }

    pub fn contains(&self, k: &K) -> bool {
        self.store.get(&self.slot(k)).is_some()
    }

    pub fn insert(&mut self, k: &K, v: &V) {
        let slot = self.slot(k);
        self.store.put(slot, encode(v));
    }

    /// Sets `k`'s value to what `f` makes of the current one (`None` if there is none), and
    /// returns it: a `get` then an `insert`, with one lookup.
    pub fn update(&mut self, k: &K, f: impl FnOnce(Option<V>) -> V) -> V {
        let slot = self.slot(k);
        update(self.store, &slot, f)
    }

    pub fn remove(&mut self, k: &K) {
        let slot = self.slot(k);
        self.store.remove(&slot);
    }

    pub fn entries(&self) -> Vec<(K, V)> {
        self.store.range(self.key, self.ns).iter().map(|(k, v)| (decode(k), decode(v))).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.store.range(self.key, self.ns).is_empty()
    }

    pub fn clear(&mut self) {
        for (sub, _) in self.store.range(self.key, self.ns) {
            self.store.remove(&Slot { key: self.key.clone(), ns: self.ns, sub });
        }
    }
}

/// One key's list of a [`ListState`].
pub struct ListHandle<'a, T> {
    value: ValueHandle<'a, Vec<T>>,
}

impl<T: Data> ListHandle<'_, T> {
    pub fn get(&self) -> Vec<T> {
        self.value.get().unwrap_or_default()
    }

    pub fn add(&mut self, item: T) {
        let mut items = self.get();
        items.push(item);
        self.value.set(&items);
    }

    pub fn update(&mut self, items: &Vec<T>) {
        if items.is_empty() {
            self.value.clear();
        } else {
            self.value.set(items);
        }
    }

    pub fn clear(&mut self) {
        self.value.clear();
    }
}

pub(crate) fn value<'a, T>(
    store: &'a mut dyn Store,
    key: &KeyBytes,
    d: &ValueState<T>,
) -> ValueHandle<'a, T> {
    ValueHandle { store, slot: Slot { key: key.clone(), ns: d.ns, sub: Blob::new() }, _t: PhantomData }
}

pub(crate) fn map<'a, K, V>(
    store: &'a mut dyn Store,
    key: &'a KeyBytes,
    d: &MapState<K, V>,
) -> MapHandle<'a, K, V> {
    MapHandle { store, key, ns: d.ns, _t: PhantomData }
}

pub(crate) fn list<'a, T>(store: &'a mut dyn Store, key: &KeyBytes, d: &ListState<T>) -> ListHandle<'a, T> {
    let slot = Slot { key: key.clone(), ns: d.ns, sub: Blob::new() };
    ListHandle { value: ValueHandle { store, slot, _t: PhantomData } }
}
