//! The operator SDK: typed, stateful, event-time operators over user types, and the pieces the
//! engine runs them with.
//!
//! - [`Data`]: what a key, an input, an output or a state value must be — serde, so the engine
//!   can move it between nodes, store it and compare it, and `Clone + Debug`.
//! - [`codec`]: the one encoding of data (postcard) and the stable hash keys route by.
//! - [`state`]: keyed state declared by name and type (`ValueState<T>`, `MapState<K, V>`,
//!   `ListState<T>`) over the byte store the engine snapshots, restores and replicates.
//! - [`operator`]: the [`Operator`] trait, its context, the provenance the
//!   engine stamps on each output, and the type-erased form the engine runs.
//! - [`harness`]: a step-by-step driver for an operator's unit tests — records, watermarks,
//!   snapshots and restores — like Flink's operator test harnesses.
//!
//! # Determinism
//! Nothing here reads a clock or draws randomness, and nothing iterates a hash map: state is
//! ordered by `(key hash, key, namespace, sub-key)`, timers by `(time, key hash, key, tag)`.
//! Given the same input an operator makes the same state and the same output, which is what
//! lets the checkers compare a faulty run with a fault-free one.

pub mod blob;
pub mod codec;
pub mod harness;
pub mod operator;
pub mod state;
pub mod writer;

pub use blob::Blob;
pub use codec::{stable_hash, Data};
pub use harness::Harness;
pub use operator::{Ctx, Encoded, EncodesAs, Identity, Operator, Origin, Timer};
pub use state::{ListState, MapState, ValueState};
