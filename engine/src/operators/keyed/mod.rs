//! The built-in keyed operators, written against the public operator API (`crate::api`) like
//! any user operator: the running aggregate, windows, and the Nexmark queries' stages.
//!
//! [`build`] picks the operator a pipeline runs at a keyed stage; a `user` pipeline's comes
//! from the registry.

pub mod join;
pub mod nexmark;
pub mod running;
pub mod window;

use crate::api::{Operator, Registry};
use crate::pipeline::{PipelineKind, PipelineSpec};
use crate::record::Cause;

/// The operator of keyed stage `stage` (0-based) of `pipeline`.
pub fn build(pipeline: &PipelineSpec, stage: u32, registry: &Registry) -> Result<Box<dyn Operator>, String> {
    match &pipeline.kind {
        PipelineKind::RunningAggregate => Ok(Box::new(running::RunningAggregate)),
        PipelineKind::Window => Ok(Box::new(window::WindowAggregate { window: pipeline.window })),
        PipelineKind::WindowJoin => Ok(Box::new(join::WindowJoin { size_ms: pipeline.window.size_ms() })),
        PipelineKind::IntervalJoin { bound_ms } => Ok(Box::new(join::IntervalJoin { bound_ms: *bound_ms })),
        PipelineKind::User { name, .. } => {
            let factory = registry.get(name).ok_or_else(|| format!("no operator is registered as {name}"))?;
            factory(pipeline)
        }
        PipelineKind::Nexmark(q) => Ok(nexmark::stage(*q, stage, pipeline.window)),
    }
}

/// A running aggregate over values: `[count, sum, min, max]`, and the cause of the record with
/// the greatest event id (`[id, producer, seq]`), stored as seven integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acc {
    pub count: i64,
    pub sum: i64,
    pub min: i64,
    pub max: i64,
    pub last_id: i64,
    pub cause: Cause,
}

impl Acc {
    pub fn first(value: i64, id: u64, cause: Cause) -> Self {
        Acc { count: 1, sum: value, min: value, max: value, last_id: id as i64, cause }
    }

    pub fn add(mut self, value: i64, id: u64, cause: Cause) -> Self {
        self.count += 1;
        self.sum = self.sum.wrapping_add(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if id as i64 > self.last_id {
            (self.last_id, self.cause) = (id as i64, cause);
        }
        self
    }

    /// Folds a value into an optional accumulator.
    pub fn fold(acc: Option<Acc>, value: i64, id: u64, cause: Cause) -> Acc {
        match acc {
            Some(a) => a.add(value, id, cause),
            None => Acc::first(value, id, cause),
        }
    }

    pub fn values(&self) -> [i64; 4] {
        [self.count, self.sum, self.min, self.max]
    }

    pub fn encode(&self) -> Vec<i64> {
        let c = self.cause;
        vec![self.count, self.sum, self.min, self.max, self.last_id, i64::from(c.producer), c.seq as i64]
    }

    pub fn decode(v: &[i64]) -> Self {
        assert_eq!(v.len(), 7, "an accumulator is seven integers");
        let cause = Cause { producer: v[5] as u32, seq: v[6] as u64 };
        Acc { count: v[0], sum: v[1], min: v[2], max: v[3], last_id: v[4], cause }
    }
}

/// A cause as two integers, for state.
pub fn cause_values(c: Cause) -> [i64; 2] {
    [i64::from(c.producer), c.seq as i64]
}

pub fn cause_of(v: &[i64]) -> Cause {
    Cause { producer: v[0] as u32, seq: v[1] as u64 }
}
