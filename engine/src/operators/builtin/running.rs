//! The running aggregate: per key, the count and sum of every record seen so far, one output
//! per input record.

use serde::{Deserialize, Serialize};

use super::Synthetic;
use crate::sdk::operator::{Ctx, Operator};
use crate::sdk::ValueState;

/// A key's running count and sum after one of its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub count: u64,
    pub sum: i64,
}

const TOTAL: ValueState<Running> = ValueState::new("total");

pub struct RunningAggregate;

impl Operator for RunningAggregate {
    type Key = u64;
    type In = Synthetic;
    type OutKey = u64;
    type Out = Running;

    fn on_record(&self, key: &u64, input: Synthetic, ctx: &mut Ctx<'_, Self>) {
        let after = ctx.value(&TOTAL).update(|before| {
            let before = before.unwrap_or(Running { count: 0, sum: 0 });
            Running { count: before.count + 1, sum: before.sum.wrapping_add(input.value) }
        });
        ctx.emit(key, &after);
    }

    fn event_time(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::{Harness, Origin};

    #[test]
    fn each_record_yields_its_keys_running_count_and_sum() {
        let mut h = Harness::new(RunningAggregate);
        for (key, value) in [(1, 5), (2, 7), (1, -2)] {
            h.push(&key, &Synthetic { id: 0, kind: 0, value }, 0);
        }
        let want = [
            (1, Running { count: 1, sum: 5 }),
            (2, Running { count: 1, sum: 7 }),
            (1, Running { count: 2, sum: 3 }),
        ];
        assert_eq!(h.outputs(), want);
        let origins: Vec<Origin> = h.emitted().iter().map(|e| e.origin).collect();
        assert!(
            matches!(origins[2], Origin::Input(c) if c.seq == 2),
            "the third output is the third input's"
        );
    }
}
