//! The built-in keyed operators, written against the typed operator SDK (`crate::sdk`) like
//! any user operator: the running aggregate, windows, joins and top-n over the synthetic input,
//! and the Nexmark queries over the `nexmark` crate's events.
//!
//! Which pipeline runs which of them, with which parameters, is the pipeline plugins' business
//! (the simulator registers the built-ins like any user pipeline).

pub mod join;
pub mod nexmark;
pub mod running;
pub mod topn;
pub mod window;

use serde::{Deserialize, Serialize};

/// One synthetic input event, after the source's map and filter: its event id, its stream
/// (`kind`, 0 or 1 for the joins) and its value. The key is the record's key, a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synthetic {
    pub id: u64,
    pub kind: u8,
    pub value: i64,
}

/// `count`, `sum`, `min` and `max` of the values folded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    pub count: u64,
    pub sum: i64,
    pub min: i64,
    pub max: i64,
}

impl Aggregate {
    pub fn of(value: i64) -> Self {
        Aggregate { count: 1, sum: value, min: value, max: value }
    }

    pub fn with(self, value: i64) -> Self {
        self.merge(Aggregate::of(value))
    }

    pub fn merge(self, other: Aggregate) -> Self {
        Aggregate {
            count: self.count + other.count,
            sum: self.sum.wrapping_add(other.sum),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// Folds `value` into an aggregate that may not exist yet.
    pub fn fold(acc: Option<Aggregate>, value: i64) -> Self {
        acc.map_or(Aggregate::of(value), |a| a.with(value))
    }
}
