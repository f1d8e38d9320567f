//! The operators a subtask runs, one per file.
//!
//! A pipeline's stateless source-side step is its own (`plugin::Dataflow::source_step`);
//! `key_by` routes records to downstream subtasks;
//! `builtin` holds the keyed, stateful operators, written against the typed SDK
//! (`crate::sdk`) like any user operator; `source` reads the log and `sink_writer` writes to
//! the sink node. Chaining them into a running subtask is the worker's job
//! (`worker::source_task`, `worker::channel_task`).

pub mod builtin;
pub mod key_by;
pub mod sink_writer;
pub mod source;
