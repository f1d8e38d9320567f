//! An example of a user-written operator: the `n` largest values per key and tumbling
//! window (`n` ≤ 3), written only against faultline's public operator API
//! (`faultline_engine::api`) — none of the engine's internals.
//!
//! It shows what an operator needs to be fault-tolerant under faultline: nothing. Its state
//! lives in the context's keyed state (snapshotted, restored and replicated by the engine), its
//! windows close on event-time timers, and it never sees wall time or randomness. The
//! reference model in the checkers evaluates the same definition as plain batch code.
//!
//! # Definition
//! Per key and tumbling window `[end − size, end)`: id `(key, end)`, values `[count, top1,
//! top2, top3]` — the `n` largest values in descending order (equal values all count), and
//! `i64::MIN` where there is none — and the cause of the record with the greatest event id.
//!
//! # State
//! Namespace 0, sub = window end → `[count, last id, producer, seq, top…]`; a timer at
//! `end + allowed lateness` (tag = end) fires the window.

use faultline_engine::api::{Context, Operator, Registry};
use faultline_engine::pipeline::{PipelineKind, PipelineSpec, WindowSpec};
use faultline_engine::record::{Cause, StreamRecord};
use faultline_engine::state::Timer;

/// The name pipelines use: `kind = "user"`, `operator = "top-n"`.
pub const NAME: &str = "top-n";

/// The operator: configuration only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopN {
    pub n: usize,
    pub size_ms: u64,
}

/// Registers the operator under [`NAME`].
pub fn register(registry: &mut Registry) {
    registry.register(NAME, build);
}

/// Builds the operator from a pipeline: `params.n` (1 to 3, default 3) and a tumbling window.
pub fn build(pipeline: &PipelineSpec) -> Result<Box<dyn Operator>, String> {
    let n = pipeline.param("n").unwrap_or(3);
    if !(1..=3).contains(&n) {
        return Err(format!("top-n keeps 1 to 3 values, not {n}"));
    }
    match (&pipeline.kind, pipeline.window) {
        (PipelineKind::User { .. }, WindowSpec::Tumbling { size_ms }) if size_ms > 0 => {
            Ok(Box::new(TopN { n: n as usize, size_ms }))
        }
        _ => Err("top-n runs over a tumbling window with a positive size".into()),
    }
}

impl Operator for TopN {
    fn on_record(&self, r: &StreamRecord, ctx: &mut Context<'_>) {
        let t = r.event_time_ms;
        let end = t - t % self.size_ms + self.size_ms;
        let mut window = match ctx.get(0, end) {
            Some(v) => v.to_vec(),
            None => {
                ctx.set_timer(end + ctx.allowed_lateness_ms(), end);
                vec![0, -1, 0, 0]
            }
        };
        window[0] += 1;
        if r.id as i64 > window[1] {
            window[1..4].copy_from_slice(&[r.id as i64, i64::from(r.cause.producer), r.cause.seq as i64]);
        }
        let mut top = window.split_off(4);
        top.push(r.value);
        top.sort_unstable_by(|a, b| b.cmp(a));
        top.truncate(self.n);
        window.extend(top);
        ctx.put(0, end, window);
    }

    fn on_timer(&self, timer: Timer, ctx: &mut Context<'_>) {
        let end = timer.tag;
        let Some(window) = ctx.get(0, end).map(<[i64]>::to_vec) else { return };
        ctx.remove(0, end);
        let mut values = [window[0], i64::MIN, i64::MIN, i64::MIN];
        for (slot, v) in values[1..].iter_mut().zip(&window[4..]) {
            *slot = *v;
        }
        let cause = Cause { producer: window[2] as u32, seq: window[3] as u64 };
        ctx.output(ctx.key(), end, values, cause);
    }

    fn event_time(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::api::{run_to_end, test_record};

    #[test]
    fn keeps_the_largest_values_per_window() {
        let records: Vec<StreamRecord> = [(0, 1, 5), (1, 3, 9), (2, 4, 7), (3, 12, -1), (4, 2, 9)]
            .iter()
            .map(|&(id, t, v)| test_record(id, 0, 4, t, v))
            .collect();
        let run = run_to_end(&TopN { n: 2, size_ms: 10 }, &records, 0);
        let got: Vec<(u64, [i64; 4], u64)> =
            run.outputs.iter().map(|o| (o.id.seq, o.values, o.cause.seq)).collect();
        assert_eq!(got, [(10, [4, 9, 9, i64::MIN], 4), (20, [1, -1, i64::MIN, i64::MIN], 3)]);
        assert!(run.state.is_empty());
    }
}
