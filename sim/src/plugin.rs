//! Pipelines as plugins: the one bundle a pipeline registers, built-in or a user's.
//!
//! A [`Plugin`] is a registered name and a builder: from the scenario's `[pipeline]` table
//! (its typed params) to a [`Pipeline`]. A built pipeline is what the engine runs — its
//! generator, source-side step and keyed stages ([`Dataflow`]) — plus what the checkers need:
//! its validation against the rest of the scenario, its oracle, how an output reads, and the
//! accounting and model checks it supports. The built-ins (`crate::builtins`) register the
//! same way a user's pipeline does; outside them, nothing matches on a list of pipelines.
//!
//! A user pipeline gets the **differential oracle** by default: its own stages run fault-free
//! and sequentially over the same input (`crate::oracle`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use faultline_engine::plugin::{Catalog, Dataflow, ParamError};
use faultline_engine::record::{late_side, Cause, Late, OutputId, StreamRecord};
use faultline_engine::sdk::codec::try_decode;
use serde::de::DeserializeOwned;

use crate::checker::expected::{Expected, Input};
use crate::scenario::{CheckpointModeName, InputName, RecoveryName, Scenario, SemanticsName, SinkName};

/// A problem with a scenario: the dotted field and what is wrong.
pub type Problem = (String, String);

/// A registered pipeline: its name and how it is built from its params.
pub trait Plugin: Send + Sync + 'static {
    /// The name scenarios give as `[pipeline] kind`.
    fn name(&self) -> &str;

    /// Builds the pipeline from the `[pipeline]` table without `kind`. A missing, unknown or
    /// bad field is an error naming it.
    fn build(&self, params: &toml::Table) -> Result<Arc<dyn Pipeline>, ParamError>;
}

/// How an output's value counts inputs, for the late-data checker's accounting: every kept
/// input is in the results' counts `per_record` times, or in the late output.
#[derive(Clone, Copy)]
pub struct Accounting {
    pub per_record: u64,
    /// How many inputs one main output's value counts.
    pub count: fn(&[u8]) -> u64,
}

/// A built pipeline, as the checkers see it.
pub trait Pipeline: Dataflow {
    /// Checks that the pipeline goes with the rest of the scenario (input, semantics, sink,
    /// recovery). The default: synthetic input; the weaker semantics only without event time.
    fn validate(&self, s: &Scenario) -> Result<(), Problem> {
        default_validate(self, s)
    }

    /// The output the run must commit, given the inputs the sink committed as late.
    fn oracle(&self, inputs: &[Input], late: &BTreeSet<(Cause, u32)>) -> Expected {
        crate::oracle::differential(self, inputs, late)
    }

    /// How an output's value reads in violations and reports (`None`: as bytes).
    fn show(&self, id: &OutputId, value: &[u8]) -> Option<String> {
        let _ = (id, value);
        None
    }

    /// Whether the pipeline reads this input at all (its source-side step keeps it).
    fn keeps(&self, input: &Input) -> bool {
        self.source_step(&mut StreamRecord::of(&input.event, 0, input.cause, input.partition, 0))
    }

    /// The late accounting its outputs support, if they count their inputs.
    fn accounting(&self) -> Option<Accounting> {
        None
    }

    /// The running aggregate's state model, for the checkpoint-consistency checker: the
    /// synthetic map and filter (`None`: the checker does not run).
    fn consistency_model(&self) -> Option<Box<dyn Fn(i64) -> Option<i64> + '_>> {
        None
    }
}

/// The default validation: see [`Pipeline::validate`].
pub fn default_validate<P: Pipeline + ?Sized>(p: &P, s: &Scenario) -> Result<(), Problem> {
    if s.workload.input != InputName::Synthetic {
        return Err(("workload.input".into(), format!("pipeline `{}` reads synthetic input", p.label())));
    }
    if p.event_time() && s.engine.semantics != SemanticsName::ExactlyOnce {
        let m = format!(
            "pipeline `{}` works in event time and runs exactly-once only: which records are \
             late depends on arrival, so a replayed attempt's results may differ from the first's",
            p.label()
        );
        return Err(("engine.semantics".into(), m));
    }
    Ok(())
}

/// Parses a plugin's `[pipeline]` table into its typed params. An error names the field at
/// fault where serde says which (`pipeline.FIELD`), else the table.
pub fn params<T: DeserializeOwned>(table: &toml::Table) -> Result<T, ParamError> {
    // Parsed from text, an error carries the span of the value at fault: its line names the key.
    let text = table.to_string();
    toml::from_str::<T>(&text).map_err(|e| {
        let message = e.message().to_string();
        let at_span = e.span().and_then(|span| {
            let line = text[..span.start.min(text.len())].rsplit('\n').next().unwrap_or_default();
            let key = line.split('=').next().unwrap_or_default().trim().trim_matches('"');
            (!key.is_empty() && table.contains_key(key)).then(|| key.to_string())
        });
        let unknown = message.split_once("unknown field `").and_then(|(_, rest)| rest.split('`').next());
        let field = unknown.map(String::from).or(at_span).unwrap_or_default();
        ParamError::new(field, message)
    })
}

/// How outputs of `pipeline` read in reports and violations: a late record as its event time
/// and watermark, any other as the pipeline shows it, or as its bytes.
pub fn shower(pipeline: &dyn Pipeline) -> impl Fn(&OutputId, &[u8]) -> String + '_ {
    move |id, bytes| {
        let shown = if id.side == late_side() {
            try_decode::<Late>(bytes)
                .map(|l| format!("late: time {} under watermark {}", l.event_time_ms, l.watermark))
        } else {
            pipeline.show(id, bytes)
        };
        shown.unwrap_or_else(|| crate::checker::delivery::show_bytes(bytes))
    }
}

/// What the engine asks of every pipeline, whatever the pipeline says of itself: the
/// transactional sink where watermarks decide lateness, and replication only for one keyed
/// stage, with active replication only where no watermark decides anything.
pub fn validate_engine(pipeline: &dyn Pipeline, s: &Scenario) -> Result<(), Problem> {
    let fail = |field: &str, m: String| Err((field.to_string(), m));
    let (name, e) = (pipeline.label(), &s.engine);
    if e.sink == SinkName::Idempotent && pipeline.event_time() {
        let m = format!(
            "pipeline `{name}` needs the transactional sink for exactly-once: an idempotent sink \
             keeps what a failed attempt upserted, and which records are late depends on arrival, \
             so the replay may upsert other values and leave the first attempt's late records"
        );
        return fail("engine.sink", m);
    }
    if e.recovery == RecoveryName::Rollback {
        return Ok(());
    }
    if pipeline.stages() > 1 {
        return fail("engine.recovery", format!("{name} has two keyed stages; replication runs one"));
    }
    if e.recovery == RecoveryName::ActiveReplication && pipeline.event_time() {
        let m = format!(
            "{name} depends on watermarks, so active copies fed the same input may still disagree \
             on which records are late; use passive-replication or rollback"
        );
        return fail("engine.recovery", m);
    }
    if e.checkpoint_mode != CheckpointModeName::Aligned {
        return fail("engine.checkpoint_mode", "replication needs aligned checkpoints".into());
    }
    Ok(())
}

/// Shows a value as its type's debug form, if it decodes as `T`.
pub fn show_as<T: DeserializeOwned + fmt::Debug>(value: &[u8]) -> Option<String> {
    try_decode::<T>(value).map(|v| format!("{v:?}"))
}

/// The pipelines a scenario may name.
#[derive(Clone, Default)]
pub struct Registry {
    plugins: BTreeMap<String, Arc<dyn Plugin>>,
    /// The command that runs scenarios of these pipelines, for replay lines (empty: `faultline`).
    command: String,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.plugins.keys()).finish()
    }
}

impl Registry {
    /// An empty registry: [`crate::builtins::registry`] has the built-ins.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `plugin` under its name; a name registers once.
    pub fn register(&mut self, plugin: impl Plugin) -> &mut Self {
        let name = plugin.name().to_string();
        assert!(!name.is_empty(), "a pipeline needs a name");
        let previous = self.plugins.insert(name.clone(), Arc::new(plugin));
        assert!(previous.is_none(), "pipeline {name} registered twice");
        self
    }

    /// The command that runs scenarios of these pipelines, as replay and shrink lines name
    /// it: `faultline`, or a user crate's own binary.
    pub fn command(&self) -> &str {
        if self.command.is_empty() {
            "faultline"
        } else {
            &self.command
        }
    }

    /// Names the command that runs these pipelines (see [`Registry::command`]).
    pub fn with_command(self, command: &str) -> Registry {
        assert!(!command.trim().is_empty(), "a command has a name");
        Registry { command: command.to_string(), ..self }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Plugin>> {
        self.plugins.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plugins.keys().map(String::as_str)
    }

    /// Builds the pipeline a scenario's `[pipeline]` names.
    pub fn build(&self, kind: &str, params: &toml::Table) -> Result<Arc<dyn Pipeline>, ParamError> {
        let plugin = self.get(kind).ok_or_else(|| {
            let names: Vec<&str> = self.names().collect();
            ParamError::new("kind", format!("no pipeline `{kind}`; registered: {}", names.join(", ")))
        })?;
        plugin.build(params)
    }

    /// What the engine's nodes build pipelines from: the same plugins, seen as dataflows.
    pub fn catalog(&self) -> Catalog {
        let mut catalog = Catalog::default();
        for (name, plugin) in &self.plugins {
            let plugin = plugin.clone();
            let builder = move |params: &toml::Table| plugin.build(params).map(|p| p as Arc<dyn Dataflow>);
            catalog.register(name, Arc::new(builder));
        }
        catalog
    }

    /// [`Registry::catalog`], with every pipeline's input served from `tape`: one run's nodes.
    pub fn catalog_taped(&self, tape: Arc<crate::tape::Tape>) -> Catalog {
        let mut catalog = Catalog::default();
        for (name, plugin) in &self.plugins {
            let (plugin, tape) = (plugin.clone(), tape.clone());
            let builder = move |params: &toml::Table| {
                let inner = plugin.build(params)? as Arc<dyn Dataflow>;
                Ok(Arc::new(crate::tape::Taped { inner, tape: tape.clone() }) as Arc<dyn Dataflow>)
            };
            catalog.register(name, Arc::new(builder));
        }
        catalog
    }
}

#[cfg(test)]
mod tests {
    use faultline_engine::plugin::PipelineSpec;

    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("test params parse")
    }

    #[test]
    fn an_unknown_pipeline_is_refused_with_the_registered_names() {
        let registry = crate::builtins::registry();
        let e = registry.build("median", &toml::Table::new()).err().expect("median is not registered");
        assert_eq!(e.field, "kind");
        assert!(e.message.contains("no pipeline `median`") && e.message.contains("top-n"), "{e}");
    }

    #[test]
    fn params_errors_name_their_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct P {
            size_ms: u64,
        }
        let unknown = params::<P>(&table("size_ms = 1\nsize_msec = 2")).expect_err("unknown field");
        assert_eq!(unknown.field, "size_msec");
        let wrong = params::<P>(&table("size_ms = \"ten\"")).expect_err("wrong type");
        assert_eq!(wrong.field, "size_ms", "{wrong}");
        let missing = params::<P>(&toml::Table::new()).expect_err("missing field");
        assert!(missing.message.contains("size_ms"), "{missing}");
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_registers_once() {
        let mut registry = crate::builtins::registry();
        registry.register(crate::builtins::registry().get("window").cloned().map(Again).expect("window"));
    }

    /// A plugin registered again under its own name.
    struct Again(Arc<dyn Plugin>);

    impl Plugin for Again {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn build(&self, params: &toml::Table) -> Result<Arc<dyn Pipeline>, ParamError> {
            self.0.build(params)
        }
    }

    #[test]
    fn nodes_build_from_the_catalog_what_the_checkers_built() {
        let registry = crate::builtins::registry();
        let params = table("window = \"sliding\"\nsize_ms = 200\nslide_ms = 50\nallowed_lateness_ms = 7");
        let built = registry.build("window", &params).expect("the window builds");
        let spec = PipelineSpec::of("window", &params, &*built);
        let on_a_node = registry.catalog().build(&spec);
        assert_eq!((on_a_node.label(), on_a_node.stages()), (built.label(), built.stages()));
        assert_eq!(on_a_node.allowed_lateness_ms(), 7);
        assert!(on_a_node.event_time() && on_a_node.fires_on_watermark());
    }
}
