//! The running aggregate: per key, the count and sum of every record seen so far.
//!
//! Each input record yields one output identified by `(key, count)`: the key's output sequence
//! number is its count, so the identity of an output does not depend on how keys interleave.

use crate::api::{Context, Operator};
use crate::record::StreamRecord;

/// State: namespace 0, sub 0 → `[count, sum]`.
pub struct RunningAggregate;

impl Operator for RunningAggregate {
    fn on_record(&self, record: &StreamRecord, ctx: &mut Context<'_>) {
        let (count, sum) = match ctx.get(0, 0) {
            Some(v) => (v[0], v[1]),
            None => (0, 0),
        };
        let (count, sum) = (count + 1, sum.wrapping_add(record.value));
        ctx.put(0, 0, vec![count, sum]);
        ctx.output(record.key, count as u64, [count, sum, 0, 0], record.cause);
    }

    fn event_time(&self) -> bool {
        false
    }
}
