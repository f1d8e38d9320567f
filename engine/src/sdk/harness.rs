//! A step-by-step driver for an operator's unit tests, like Flink's
//! `KeyedOneInputStreamOperatorTestHarness`: push records, move the watermark, take a snapshot,
//! restore it into a fresh operator instance, and read the outputs so far.
//!
//! It runs the operator through the same erased adapter and the same byte store the engine
//! uses, and decides lateness as a keyed stage does: a record behind the watermark by more than
//! the allowed lateness goes to the `late` side output. A snapshot is the bytes a checkpoint
//! would hold, so a restore here is a restore there.

use super::codec::{decode, encode, Data, KeyBytes};
use super::operator::{Call, Emitted, ErasedOperator, Operator, Side, SideOutput, Typed};
use crate::checkpoint::StateSnapshot;
use crate::record::Cause;
use crate::state::{KeyedState, View};

/// The side output late records go to: the record's key, and its input.
pub const LATE: &str = "late";

/// A snapshot of a harness: its state and watermark, encoded as a checkpoint holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The bytes a checkpoint would store for this state.
    pub bytes: Vec<u8>,
    next_seq: u64,
}

/// Drives one operator, step by step.
pub struct Harness<O: Operator> {
    op: Typed<O>,
    store: KeyedState,
    watermark: u64,
    lateness_ms: u64,
    next_seq: u64,
    emitted: Vec<Emitted>,
}

impl<O: Operator> Harness<O> {
    pub fn new(op: O) -> Self {
        Harness {
            op: Typed(op),
            store: KeyedState::default(),
            watermark: 0,
            lateness_ms: 0,
            next_seq: 0,
            emitted: Vec::new(),
        }
    }

    /// The allowed lateness the stage applies (0 by default).
    pub fn with_lateness(mut self, lateness_ms: u64) -> Self {
        self.lateness_ms = lateness_ms;
        self
    }

    /// Handles one record of `key` with event time `event_time_ms`; late ones go to `late`.
    pub fn push(&mut self, key: &O::Key, input: &O::In, event_time_ms: u64) {
        let cause = Cause { producer: 0, seq: self.next_seq };
        self.next_seq += 1;
        let key = KeyBytes::of(key);
        let late = self.op.event_time() && event_time_ms.saturating_add(self.lateness_ms) < self.watermark;
        if late {
            let origin = super::operator::Origin::Input(cause);
            let side = SideOutput::<O::In>::new(LATE).side();
            self.emitted.push(Emitted {
                side,
                key,
                value: encode(input),
                origin,
                n: 0,
                cause,
                event_time_ms,
            });
            return;
        }
        let call = Call {
            store: &mut self.store,
            watermark: self.watermark,
            lateness_ms: self.lateness_ms,
            out: &mut self.emitted,
        };
        self.op.on_record(&key, &encode(input), event_time_ms, cause, call);
    }

    /// Moves the watermark to `watermark` (never back) and fires every timer it passed.
    pub fn advance_watermark(&mut self, watermark: u64) {
        assert!(
            watermark >= self.watermark,
            "the watermark went back from {} to {watermark}",
            self.watermark
        );
        self.watermark = watermark;
        self.store.advance_watermark(watermark);
        while let Some((timer, cause)) = self.store.pop_due(watermark) {
            let call = Call {
                store: &mut self.store,
                watermark,
                lateness_ms: self.lateness_ms,
                out: &mut self.emitted,
            };
            self.op.on_timer(&timer, cause, call);
        }
    }

    /// The end of input: the watermark at the end of time, every timer fired.
    pub fn finish(&mut self) {
        self.advance_watermark(u64::MAX);
    }

    /// The state and watermark now, encoded as a checkpoint stores them.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { bytes: self.store.snapshot().encode(Vec::new()).encode(), next_seq: self.next_seq }
    }

    /// A harness over a fresh `op` holding the state of `snapshot`, with no outputs yet.
    pub fn restore(op: O, snapshot: &Snapshot) -> Self {
        let stored = StateSnapshot::decode(&snapshot.bytes).expect("a snapshot the harness took decodes");
        let mut h = Harness::new(op);
        h.store = KeyedState::new(View::decode(&stored), false);
        (h.watermark, h.next_seq) = (stored.watermark, snapshot.next_seq);
        h
    }

    /// The main-side outputs so far, decoded, in emission order.
    pub fn outputs(&self) -> Vec<(O::OutKey, O::Out)> {
        self.emitted
            .iter()
            .filter(|e| e.side == Side::Main)
            .map(|e| (decode(&e.key.bytes), decode(&e.value)))
            .collect()
    }

    /// What went to side output `of` so far, with the key in scope when it was emitted.
    pub fn side<T: Data>(&self, of: &SideOutput<T>) -> Vec<(O::Key, T)> {
        let side = of.side();
        self.emitted
            .iter()
            .filter(|e| e.side == side)
            .map(|e| (decode(&e.key.bytes), decode(&e.value)))
            .collect()
    }

    /// The records found late so far.
    pub fn late(&self) -> Vec<(O::Key, O::In)> {
        self.side(&SideOutput::<O::In>::new(LATE))
    }

    /// Everything emitted so far, encoded, with provenance.
    pub fn emitted(&self) -> &[Emitted] {
        &self.emitted
    }

    /// Forgets the outputs so far (the state stays).
    pub fn clear_outputs(&mut self) {
        self.emitted.clear();
    }

    /// The state as the engine holds it.
    pub fn state(&self) -> &View {
        self.store.view()
    }
}
