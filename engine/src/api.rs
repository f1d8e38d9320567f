//! The public operator API: how to write a keyed, stateful operator the engine runs.
//!
//! An operator is a value implementing [`Operator`]. Its fields are configuration only; all
//! state lives in the [`Context`]'s keyed state, which the engine snapshots at checkpoints,
//! restores on recovery and ships to standbys under passive replication — so an operator is
//! fault-tolerant without doing anything about faults. The built-in windows, joins and Nexmark
//! queries are written against this same API (`operators::keyed`).
//!
//! # What the engine calls
//! - [`Operator::on_record`] for each input record, with the record's key in scope. For an
//!   event-time operator ([`Operator::event_time`]), a record behind the watermark by more than
//!   the allowed lateness never gets here: the engine sends it to the late output.
//! - [`Operator::on_timer`] for each event-time timer the watermark passed, in `(time, key,
//!   tag)` order, with the timer's key in scope.
//! - [`Operator::on_watermark`] after the timers, when the input watermark advanced.
//! - [`Operator::on_checkpoint`] at a checkpoint's barrier, before the state is snapshotted.
//!
//! # Determinism
//! The context offers no clock and no randomness: an operator sees event time (records,
//! timers, watermarks) and nothing else. Given the same input it makes the same state and the
//! same output, which is what lets the checkers compare a faulty run with the reference.
//!
//! # Testing
//! [`run_to_end`] drives an operator without a cluster — records, then the end of time with
//! every timer — and [`test_record`] makes its input; the built-in windows, the joins and the
//! example `topn` operator test themselves that way. Under faults, give the operator a scenario
//! (`kind = "user"`) and let `faultline swarm` do the rest.
//!
//! # Registering
//! A pipeline of kind `user` names its operator; a [`Registry`] maps names to factories. The
//! simulator registers the built-in names and any others it is given before the run, and every
//! worker builds the operator from the job's [`PipelineSpec`].

use std::collections::BTreeMap;

use crate::pipeline::PipelineSpec;
use crate::record::{Cause, OutputId, OutputRecord, StreamRecord};
use crate::state::{KeyedState, StateKey, Timer};

/// A keyed, stateful operator. See the module documentation for when each method is called.
pub trait Operator {
    /// Processes one record; `ctx.key()` is `record.key`.
    fn on_record(&self, record: &StreamRecord, ctx: &mut Context<'_>);

    /// A timer this operator set fired; `ctx.key()` is `timer.key`.
    fn on_timer(&self, timer: Timer, ctx: &mut Context<'_>) {
        let _ = (timer, ctx);
    }

    /// The input watermark advanced to `watermark` (no key in scope).
    fn on_watermark(&self, watermark: u64, ctx: &mut Context<'_>) {
        let _ = (watermark, ctx);
    }

    /// Checkpoint `checkpoint` is about to snapshot the state (no key in scope).
    fn on_checkpoint(&self, checkpoint: u64, ctx: &mut Context<'_>) {
        let _ = (checkpoint, ctx);
    }

    /// Whether the operator works in event time: then records behind the watermark by more
    /// than the allowed lateness go to the late output instead of `on_record`.
    fn event_time(&self) -> bool;
}

/// What an operator emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// A result, to the sink.
    Output(OutputRecord),
    /// A record for the next keyed stage, routed by its `key`.
    Forward(StreamRecord),
}

/// An operator's window on the engine while it handles one call.
pub struct Context<'a> {
    state: &'a mut KeyedState,
    key: Option<u64>,
    lateness_ms: u64,
    out: &'a mut Vec<Emit>,
}

impl<'a> Context<'a> {
    /// A context over `state`, collecting into `out`, with `key` in scope.
    pub fn new(
        state: &'a mut KeyedState,
        key: Option<u64>,
        lateness_ms: u64,
        out: &'a mut Vec<Emit>,
    ) -> Self {
        Context { state, key, lateness_ms, out }
    }

    /// The key in scope.
    ///
    /// # Panics
    /// In `on_watermark` and `on_checkpoint`, which have none.
    pub fn key(&self) -> u64 {
        self.key.expect("keyed state used outside on_record and on_timer: no key is in scope")
    }

    /// The input watermark: no record with an earlier event time is expected.
    pub fn watermark(&self) -> u64 {
        self.state.watermark()
    }

    /// The allowed lateness: a time window `[start, end)` should fire at `end + lateness`.
    pub fn allowed_lateness_ms(&self) -> u64 {
        self.lateness_ms
    }

    fn at(&self, ns: u32, sub: u64) -> StateKey {
        StateKey { key: self.key(), ns, sub }
    }

    /// The value under `(ns, sub)` for the key in scope.
    pub fn get(&self, ns: u32, sub: u64) -> Option<&[i64]> {
        self.state.get(&self.at(ns, sub))
    }

    pub fn put(&mut self, ns: u32, sub: u64, value: Vec<i64>) {
        let k = self.at(ns, sub);
        self.state.put(k, value);
    }

    pub fn remove(&mut self, ns: u32, sub: u64) {
        let k = self.at(ns, sub);
        self.state.remove(&k);
    }

    /// The values in namespace `ns` for the key in scope, by sub-key.
    pub fn entries(&self, ns: u32) -> Vec<(u64, Vec<i64>)> {
        self.state.range(self.key(), ns).map(|(sub, v)| (sub, v.to_vec())).collect()
    }

    /// Removes every value in namespace `ns` for the key in scope.
    pub fn clear(&mut self, ns: u32) {
        let key = self.key();
        let subs: Vec<u64> = self.state.range(key, ns).map(|(sub, _)| sub).collect();
        for sub in subs {
            self.state.remove(&StateKey { key, ns, sub });
        }
    }

    /// Sets a timer for the key in scope, firing once the watermark reaches `at_ms`.
    pub fn set_timer(&mut self, at_ms: u64, tag: u64) {
        let key = self.key();
        self.state.set_timer(Timer { at_ms, key, tag });
    }

    pub fn delete_timer(&mut self, at_ms: u64, tag: u64) {
        let key = self.key();
        self.state.delete_timer(Timer { at_ms, key, tag });
    }

    /// Emits a result with id `(key, seq)` on the main side.
    pub fn output(&mut self, key: u64, seq: u64, values: [i64; 4], cause: Cause) {
        self.out.push(Emit::Output(OutputRecord { id: OutputId::main(key, seq), values, cause }));
    }

    /// Sends a record to the next keyed stage.
    pub fn forward(&mut self, record: StreamRecord) {
        self.out.push(Emit::Forward(record));
    }
}

/// Builds an operator from the pipeline it runs in; an error says what the spec lacks.
pub type Factory = fn(&PipelineSpec) -> Result<Box<dyn Operator>, String>;

/// Operator factories by name, for pipelines of kind `user`.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.factories.keys()).finish()
    }
}

impl Registry {
    pub fn register(&mut self, name: &str, factory: Factory) {
        let previous = self.factories.insert(name.to_string(), factory);
        assert!(previous.is_none(), "operator {name} registered twice");
    }

    pub fn get(&self, name: &str) -> Option<Factory> {
        self.factories.get(name).copied()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }
}

/// What [`run_to_end`] saw an operator do.
pub struct Run {
    pub outputs: Vec<OutputRecord>,
    pub forwarded: Vec<StreamRecord>,
    /// The state left once every timer fired.
    pub state: KeyedState,
}

/// Runs `op` as a keyed stage would, without a cluster, for an operator's unit tests: each of
/// `records` in order with its key in scope, then the end of time — the watermark at
/// `u64::MAX`, every timer firing in order, `on_watermark` last. Lateness is the stage's to
/// decide, so every record reaches `on_record`.
pub fn run_to_end(op: &dyn Operator, records: &[StreamRecord], lateness_ms: u64) -> Run {
    let mut state = KeyedState::default();
    let mut emitted = Vec::new();
    for r in records {
        op.on_record(r, &mut Context::new(&mut state, Some(r.key), lateness_ms, &mut emitted));
    }
    state.advance_watermark(u64::MAX);
    while let Some(timer) = state.pop_due(u64::MAX) {
        op.on_timer(timer, &mut Context::new(&mut state, Some(timer.key), lateness_ms, &mut emitted));
    }
    op.on_watermark(u64::MAX, &mut Context::new(&mut state, None, lateness_ms, &mut emitted));
    let (mut outputs, mut forwarded) = (Vec::new(), Vec::new());
    for e in emitted {
        match e {
            Emit::Output(o) => outputs.push(o),
            Emit::Forward(r) => forwarded.push(r),
        }
    }
    Run { outputs, forwarded, state }
}

/// A record for an operator's unit tests: its id, cause sequence number and offset are `id`,
/// its stream time its event time `t`.
pub fn test_record(id: u64, kind: u8, key: u64, t: u64, value: i64) -> StreamRecord {
    let event = crate::record::Event { id, kind, key, value, aux: [0; 3], event_time_ms: t };
    StreamRecord::of(&event, t, Cause { producer: 0, seq: id }, 0, id)
}
