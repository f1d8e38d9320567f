//! A keyed stage's decisions, without the network: what becomes of each record and of each
//! timer the watermark passes. The channel task (`channel_task`) moves messages; this decides.
//!
//! - A record carrying an earlier stage's side output (a late record, for one) passes through
//!   to the sink untouched.
//! - A record reaching an event-time operator with `event_time + allowed_lateness < watermark`
//!   is late: it goes, whole, to the `late` side output — id `(key, its input)`, value a
//!   [`Late`] — and not to the operator.
//! - Every other record goes to the operator, and each due timer fires in `(time, key, tag)`
//!   order. What the operator emits goes to the sink (the last stage) or to the next stage's
//!   exchange; side outputs of an intermediate stage are carried through to the sink.

use crate::record::{late_side, Late, Origin, OutputId, OutputRecord, Side, StreamRecord};
use crate::sdk::codec::encode;
use crate::sdk::operator::{Call, Emitted, ErasedOperator};
use crate::state::KeyedState;

/// What a stage sends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Emit {
    /// To the sink.
    Output(OutputRecord),
    /// To the next stage's exchange.
    Forward(StreamRecord),
}

/// A keyed stage: its operator, lateness, and place in the pipeline.
pub struct Stage {
    operator: Box<dyn ErasedOperator>,
    lateness_ms: u64,
    /// Writes to the next stage's exchange rather than to the sink.
    intermediate: bool,
    emitted: Vec<Emitted>,
}

impl Stage {
    pub fn new(operator: Box<dyn ErasedOperator>, lateness_ms: u64, intermediate: bool) -> Self {
        Stage { operator, lateness_ms, intermediate, emitted: Vec::new() }
    }

    /// One record, arrived at simulated `now_ms`: a carried output passes through, a late one
    /// goes to the late output, the others to the operator.
    pub fn handle(
        &mut self,
        state: &mut KeyedState,
        record: &StreamRecord,
        now_ms: u64,
        out: &mut Vec<Emit>,
    ) {
        if let Some(&(side, origin, n)) = record.carried.as_deref() {
            assert!(side != Side::Main, "a carried record is a side output's");
            out.push(self.carry(record.clone(), side, origin, n));
            return;
        }
        let w = state.watermark();
        if self.operator.event_time() && record.event_time_ms.saturating_add(self.lateness_ms) < w {
            let late = Late {
                event_time_ms: record.event_time_ms,
                watermark: w,
                partition: record.partition,
                input: record.value.to_vec(),
                arrived_ms: now_ms,
            };
            let record = StreamRecord { value: encode(&late), ..record.clone() };
            let cause = record.cause;
            out.push(self.carry(record, late_side(), Origin::Input(cause), 0));
            return;
        }
        let call = Call { store: state, watermark: w, lateness_ms: self.lateness_ms, out: &mut self.emitted };
        self.operator.on_record(&record.key, &record.value, record.event_time_ms, record.cause, call);
        self.route(out);
    }

    /// Fires every timer due at watermark `w`, in order.
    pub fn fire(&mut self, state: &mut KeyedState, w: u64, out: &mut Vec<Emit>) {
        assert!(state.watermark() >= w, "timers fire once the state's watermark reached {w}");
        while let Some((timer, cause)) = state.pop_due(w) {
            let call =
                Call { store: state, watermark: w, lateness_ms: self.lateness_ms, out: &mut self.emitted };
            self.operator.on_timer(&timer, cause, call);
        }
        self.route(out);
    }

    /// A side output's record: to the sink, or carried through the next stages.
    fn carry(&self, record: StreamRecord, side: Side, origin: Origin, n: u32) -> Emit {
        if self.intermediate {
            return Emit::Forward(StreamRecord { carried: Some(Box::new((side, origin, n))), ..record });
        }
        let id = OutputId { side, key: record.key, origin, n };
        Emit::Output(OutputRecord { id, value: record.value, cause: record.cause })
    }

    /// Turns what the operator emitted into what the stage sends on.
    fn route(&mut self, out: &mut Vec<Emit>) {
        for e in self.emitted.drain(..) {
            let emit = match (e.side, self.intermediate) {
                (Side::Main, true) => {
                    Emit::Forward(StreamRecord::derived(e.key, e.value, e.event_time_ms, e.cause))
                }
                (side, _) => {
                    let id = OutputId { side, key: e.key, origin: e.origin, n: e.n };
                    let record = OutputRecord { id, value: e.value, cause: e.cause };
                    match self.intermediate {
                        false => Emit::Output(record),
                        true => Emit::Forward(StreamRecord {
                            carried: Some(Box::new((side, e.origin, e.n))),
                            ..StreamRecord::derived(record.id.key, record.value, e.event_time_ms, e.cause)
                        }),
                    }
                }
            };
            out.push(emit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::builtin::{window::WindowAggregate, Synthetic};
    use crate::pipeline::WindowSpec;
    use crate::record::{Cause, KeyBytes};
    use crate::sdk::codec::decode;
    use crate::sdk::operator::Typed;

    fn record(seq: u64, t: u64) -> StreamRecord {
        let value = encode(&Synthetic { id: seq, kind: 0, value: 1 });
        StreamRecord::derived(KeyBytes::of(&3u64), value, t, Cause { producer: 0, seq })
    }

    fn stage(intermediate: bool) -> Stage {
        let op = Typed(WindowAggregate { window: WindowSpec::Tumbling { size_ms: 10 } });
        Stage::new(Box::new(op), 5, intermediate)
    }

    #[test]
    fn late_records_go_to_the_late_output_and_windows_fire_on_the_watermark() {
        let (mut s, mut state, mut out) = (stage(false), KeyedState::default(), Vec::new());
        s.handle(&mut state, &record(0, 4), 0, &mut out);
        state.advance_watermark(11);
        s.handle(&mut state, &record(1, 6), 0, &mut out);
        s.handle(&mut state, &record(2, 3), 0, &mut out);
        assert_eq!(out.len(), 1, "only the record at 3 is late: 3 + 5 < 11, 6 + 5 is not");
        let Emit::Output(late) = &out[0] else { panic!("a late record goes to the sink") };
        assert_eq!(late.id, OutputId::late(KeyBytes::of(&3u64), Cause { producer: 0, seq: 2 }));
        let l: Late = decode(&late.value);
        assert_eq!((l.event_time_ms, l.watermark), (3, 11));
        state.advance_watermark(15);
        s.fire(&mut state, 15, &mut out);
        let Emit::Output(window) = &out[1] else { panic!("the window fired") };
        assert_eq!(window.id.origin, Origin::Timer { at_ms: 15, tag: 10 });
        assert_eq!(window.cause.seq, 0, "caused by the record that opened the window");
    }

    #[test]
    fn an_intermediate_stage_forwards_and_carries_late_records_that_the_next_passes_on() {
        let (mut first, mut state, mut out) = (stage(true), KeyedState::default(), Vec::new());
        state.advance_watermark(20);
        first.handle(&mut state, &record(7, 1), 0, &mut out);
        let Emit::Forward(carried) = out.pop().unwrap() else { panic!("carried on") };
        assert!(carried.carried.is_some());
        let (mut last, mut state, mut out) = (stage(false), KeyedState::default(), Vec::new());
        last.handle(&mut state, &carried, 0, &mut out);
        let Emit::Output(late) = &out[0] else { panic!("to the sink") };
        assert_eq!(late.id.side, late_side());
        assert!(state.is_empty(), "the operator never saw it");
    }
}
