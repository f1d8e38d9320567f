//! Checkers: independent judges of a run, one per file, outside the engine.
//!
//! - `reference`: a sequential, fault-free evaluation of the pipeline over the whole input;
//! - `delivery`: classifies every difference between the sink's committed output and the
//!   reference as lost, duplicate or wrong, and judges it against the promised semantics.

pub mod delivery;
pub mod reference;
