//! Checkers: independent judges of a run, one per file, outside the engine.
//!
//! - `reference`: a batch, fault-free evaluation of the pipeline over the whole input, minus
//!   the records the run found late;
//! - `delivery`: classifies every difference between the sink's committed output and the
//!   reference as lost, duplicate or wrong, and judges it against the promised semantics;
//! - `late`: the late records the sink committed were late, once each, and with the window
//!   results account for every input;
//! - `consistency`: each completed checkpoint's state equals the reference state after exactly
//!   the input its source positions cover;
//! - `cadence`: checkpoints are triggered at the job's interval, neither later nor sooner;
//! - `transactions`: the sink's transactions — committed once, never from a fenced epoch, only
//!   for completed checkpoints;
//! - `log`: the replicated log kept every acknowledged record once, in sequence, and its high
//!   watermark never went back;
//! - `convergence`: once the cluster is quiet, every live replica holds its leader's log;
//! - `manager`: at most one manager acts at a time, each under its own lease, and job epochs
//!   only move forward across leaderships;
//! - `lease`: a manager keeps its lease unless a fault touches it or the store;
//! - `driver`: a silent driver is declared lost, and the job then keeps to its `driver_loss`
//!   policy;
//! - `deploy`: a worker starts each copy of a subtask once per job epoch and generation;
//! - `choice`: a rollback restores the latest completed checkpoint, and garbage collection never
//!   deletes it.

pub mod appends;
pub mod cadence;
pub mod choice;
pub mod consistency;
pub mod convergence;
pub mod delivery;
pub mod deploy;
pub mod driver;
pub mod expected;
pub mod failover;
pub mod frontier;
pub mod late;
pub mod leadership;
pub mod lease;
pub mod log;
pub mod manager;
pub mod transactions;
pub mod watermark;

use faultline_reports::Violation;

/// How many offending items a violation quotes.
const EXAMPLES: usize = 3;

/// Adds a violation of `invariant` if `items` is not empty: how many, and the first few.
fn push_examples(v: &mut Vec<Violation>, invariant: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let examples: Vec<&str> = items.iter().take(EXAMPLES).map(String::as_str).collect();
    v.push(Violation {
        invariant: invariant.into(),
        detail: format!("{} times; first: {}", items.len(), examples.join("; ")),
    });
}
