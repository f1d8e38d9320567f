//! Pipelines as plugins: what a node needs to run a pipeline it knows only by name.
//!
//! The driver submits a [`PipelineSpec`]: the pipeline's registered name and its scenario
//! table, as TOML text. Every node builds the pipeline itself from the [`Catalog`] it boots
//! with, the way each process of a real cluster loads the same job jar; nothing built is
//! shared between nodes. A built pipeline is a [`Dataflow`]: its input generator, its
//! stateless source-side step and its keyed stages, each a typed operator behind
//! [`ErasedOperator`].
//!
//! The engine matches on no list of pipelines: the built-ins register here like a user's.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::record::StreamRecord;
use crate::sdk::operator::ErasedOperator;
use crate::workload::{Emitted, WorkloadSpec};

/// What the driver submits about the pipeline: which one, and its parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineSpec {
    /// The registered name (`[pipeline] kind`).
    pub kind: String,
    /// The rest of the scenario's `[pipeline]` table, as TOML text.
    pub params: String,
    /// How many keyed stages it has (1 or 2): the job graph's shape, which the manager plans.
    pub stages: u32,
}

impl PipelineSpec {
    /// The spec of pipeline `kind` with `params`, as built by `dataflow`.
    pub fn of(kind: &str, params: &toml::Table, dataflow: &dyn Dataflow) -> Self {
        PipelineSpec { kind: kind.into(), params: params.to_string(), stages: dataflow.stages() }
    }
}

/// One pipeline, built from its parameters: everything a node runs of it.
pub trait Dataflow: Send + Sync + 'static {
    /// A name for logs and reports: `window`, `nexmark-q5`, a user pipeline's own.
    fn label(&self) -> String;

    /// How many keyed stages it has, joined by key-by exchanges (1 or 2).
    fn stages(&self) -> u32 {
        1
    }

    /// The operator of keyed stage `stage` (0-based).
    fn stage(&self, stage: u32) -> Box<dyn ErasedOperator>;

    /// How far behind the watermark a record may arrive and still count.
    fn allowed_lateness_ms(&self) -> u64 {
        0
    }

    /// The stateless step every input record takes at its source, before the first key-by:
    /// map, filter, or re-key it in place. `false` drops it. The default passes it on as
    /// produced.
    fn source_step(&self, record: &mut StreamRecord) -> bool {
        let _ = record;
        true
    }

    /// Whether any stage keeps event time (and so may see late records).
    fn event_time(&self) -> bool {
        (0..self.stages()).any(|s| self.stage(s).event_time())
    }

    /// Whether some outputs fire on a timer rather than on their last input.
    fn fires_on_watermark(&self) -> bool {
        self.event_time()
    }

    /// The events producer `producer` emits, in emission order: a pure function of the
    /// workload, so a restarted producer and the checkers regenerate the same input.
    fn generate(&self, workload: &WorkloadSpec, producer: u32) -> Box<dyn Iterator<Item = Emitted> + Send>;
}

/// Builds a pipeline from the TOML of its parameters; an error names the field at fault.
pub type Builder = Arc<dyn Fn(&toml::Table) -> Result<Arc<dyn Dataflow>, ParamError> + Send + Sync>;

/// A parameter that is missing, unknown or out of range: its field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field `pipeline.{field}`: {message}")]
pub struct ParamError {
    /// The field under `[pipeline]`; empty when the table as a whole is at fault.
    pub field: String,
    pub message: String,
}

impl ParamError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ParamError { field: field.into(), message: message.into() }
    }
}

/// The pipelines a node can build, by name.
#[derive(Clone, Default)]
pub struct Catalog {
    builders: BTreeMap<String, Builder>,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.builders.keys()).finish()
    }
}

impl Catalog {
    /// Registers `name`; a name registers once.
    pub fn register(&mut self, name: &str, builder: Builder) {
        let previous = self.builders.insert(name.to_string(), builder);
        assert!(previous.is_none(), "pipeline {name} registered twice");
    }

    /// Builds the pipeline `spec` names. The spec was validated before the run, so a failure
    /// here means nodes disagree on the catalog.
    pub fn build(&self, spec: &PipelineSpec) -> Arc<dyn Dataflow> {
        let builder = self
            .builders
            .get(&spec.kind)
            .unwrap_or_else(|| panic!("pipeline {} is not in this node's catalog {self:?}", spec.kind));
        let params: toml::Table = toml::from_str(&spec.params).expect("the driver wrote the params as TOML");
        let dataflow = builder(&params).unwrap_or_else(|e| panic!("pipeline {}: {e}", spec.kind));
        assert_eq!(dataflow.stages(), spec.stages, "pipeline {} changed shape between builds", spec.kind);
        dataflow
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.builders.keys().map(String::as_str)
    }
}
