//! From a scenario's `[pipeline]`, `[workload]` and `[time]` to what the engine runs: the
//! pipeline spec, the event-time settings, and the registry of user operators; and the checks
//! that a combination can run at all.

use faultline_engine::api::Registry;
use faultline_engine::job::TimeSettings;
use faultline_engine::pipeline::nexmark::Query;
use faultline_engine::pipeline::{PipelineKind as Kind, PipelineSpec, WindowSpec};

use crate::scenario::{
    CheckpointModeName, InputName, PipelineKind, RecoveryName, Scenario, SemanticsName, SinkName, WindowName,
};

/// The user operators scenarios may name: the example top-N operator.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    faultline_topn::register(&mut registry);
    registry
}

/// The Nexmark query a pipeline kind names.
pub fn query(kind: PipelineKind) -> Option<Query> {
    Some(match kind {
        PipelineKind::NexmarkQ0 => Query::Q0,
        PipelineKind::NexmarkQ1 => Query::Q1,
        PipelineKind::NexmarkQ2 => Query::Q2,
        PipelineKind::NexmarkQ3 => Query::Q3,
        PipelineKind::NexmarkQ4 => Query::Q4,
        PipelineKind::NexmarkQ5 => Query::Q5,
        PipelineKind::NexmarkQ7 => Query::Q7,
        PipelineKind::NexmarkQ8 => Query::Q8,
        _ => return None,
    })
}

/// The pipeline spec of a validated scenario.
pub fn spec(s: &Scenario) -> PipelineSpec {
    let p = &s.pipeline;
    let kind = match p.kind {
        PipelineKind::RunningAggregate => Kind::RunningAggregate,
        PipelineKind::Window => Kind::Window,
        PipelineKind::WindowJoin => Kind::WindowJoin,
        PipelineKind::IntervalJoin => Kind::IntervalJoin { bound_ms: p.bound_ms.unwrap_or(0) },
        PipelineKind::User => Kind::User {
            name: p.operator.clone().unwrap_or_default(),
            params: p.params.iter().map(|(k, &v)| (k.clone(), v)).collect(),
        },
        other => Kind::Nexmark(query(other).expect("every other kind is a Nexmark query")),
    };
    PipelineSpec {
        kind,
        map_scale: p.map_scale,
        map_offset: p.map_offset,
        filter_drop_multiples_of: p.filter_drop_multiples_of,
        window: window(s).unwrap_or(WindowSpec::Tumbling { size_ms: 10_000 }),
        allowed_lateness_ms: p.allowed_lateness_ms,
    }
}

pub fn time(s: &Scenario) -> TimeSettings {
    TimeSettings {
        max_out_of_orderness_ms: s.time.max_out_of_orderness_ms,
        idle_timeout_ms: s.time.idle_timeout_ms,
    }
}

/// The window a scenario names, with Nexmark's defaults for its windowed queries.
fn window(s: &Scenario) -> Option<WindowSpec> {
    let p = &s.pipeline;
    let name = match (p.window, p.kind) {
        (Some(name), _) => name,
        (None, PipelineKind::NexmarkQ5) => WindowName::Sliding,
        (None, PipelineKind::NexmarkQ7 | PipelineKind::NexmarkQ8) => WindowName::Tumbling,
        (None, _) => return None,
    };
    let size_ms = p.size_ms.unwrap_or(10_000);
    Some(match name {
        WindowName::Tumbling => WindowSpec::Tumbling { size_ms },
        WindowName::Sliding => WindowSpec::Sliding { size_ms, slide_ms: p.slide_ms.unwrap_or(2_000) },
        WindowName::Session => WindowSpec::Session { gap_ms: p.gap_ms.unwrap_or(0) },
        WindowName::CountTumbling => WindowSpec::CountTumbling { size: p.size.unwrap_or(0) },
        WindowName::CountSliding => {
            WindowSpec::CountSliding { size: p.size.unwrap_or(0), slide: p.slide.unwrap_or(0) }
        }
    })
}

type Problem = (String, String);

fn fail(field: &str, message: impl Into<String>) -> Result<(), Problem> {
    Err((field.to_string(), message.into()))
}

/// Checks that the pipeline, its input, its window and the engine's settings go together.
pub fn validate(s: &Scenario, registry: &Registry) -> Result<(), Problem> {
    let p = &s.pipeline;
    let nexmark = query(p.kind).is_some();
    if nexmark != (s.workload.input == InputName::Nexmark) {
        let m = if nexmark { "Nexmark queries read `input = \"nexmark\"`" } else { "reads synthetic input" };
        return fail("workload.input", format!("pipeline `{}` {m}", kind_name(p.kind)));
    }
    validate_window(s)?;
    if p.kind == PipelineKind::User {
        validate_user(s, registry)?;
    }
    if p.kind != PipelineKind::RunningAggregate && s.engine.semantics != SemanticsName::ExactlyOnce {
        let m = format!(
            "pipeline `{}` runs exactly-once only: which records are late depends on arrival, so \
             a replayed attempt's results may differ from the first's",
            kind_name(p.kind)
        );
        return fail("engine.semantics", m);
    }
    if s.engine.sink == SinkName::Idempotent && spec(s).event_time() {
        let m = format!(
            "pipeline `{}` needs the transactional sink for exactly-once: an idempotent sink keeps \
             what a failed attempt upserted, and which records are late depends on arrival, so \
             the replay may upsert other values and leave the first attempt's late records",
            kind_name(p.kind)
        );
        return fail("engine.sink", m);
    }
    validate_recovery(s)
}

/// Fields given that the pipeline would ignore are mistakes: say so rather than run without them.
fn validate_applicable(s: &Scenario) -> Result<(), Problem> {
    let p = &s.pipeline;
    let window = window(s).filter(|_| p.kind != PipelineKind::RunningAggregate);
    let timed = matches!(window, Some(WindowSpec::Tumbling { .. } | WindowSpec::Sliding { .. }));
    let counted = matches!(window, Some(WindowSpec::CountTumbling { .. } | WindowSpec::CountSliding { .. }));
    let given = [
        ("size_ms", p.size_ms.is_some(), timed),
        ("slide_ms", p.slide_ms.is_some(), matches!(window, Some(WindowSpec::Sliding { .. }))),
        ("gap_ms", p.gap_ms.is_some(), matches!(window, Some(WindowSpec::Session { .. }))),
        ("size", p.size.is_some(), counted),
        ("slide", p.slide.is_some(), matches!(window, Some(WindowSpec::CountSliding { .. }))),
        ("bound_ms", p.bound_ms.is_some(), p.kind == PipelineKind::IntervalJoin),
        ("operator", p.operator.is_some(), p.kind == PipelineKind::User),
        ("params", !p.params.is_empty(), p.kind == PipelineKind::User),
    ];
    match given.into_iter().find(|&(_, set, applies)| set && !applies) {
        Some((field, _, _)) => {
            let m = format!(
                "does not apply to pipeline `{}`{}",
                kind_name(p.kind),
                match p.window {
                    Some(w) => format!(
                        " with a {} window",
                        toml::Value::try_from(w)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default()
                    ),
                    None => String::new(),
                }
            );
            fail(&format!("pipeline.{field}"), m)
        }
        None => Ok(()),
    }
}

fn validate_window(s: &Scenario) -> Result<(), Problem> {
    validate_applicable(s)?;
    let p = &s.pipeline;
    let needs = matches!(p.kind, PipelineKind::Window | PipelineKind::User | PipelineKind::WindowJoin);
    if needs && p.window.is_none() {
        return fail("pipeline.window", format!("pipeline `{}` needs a window", kind_name(p.kind)));
    }
    let joins = matches!(p.kind, PipelineKind::WindowJoin | PipelineKind::IntervalJoin);
    if joins && s.workload.streams != 2 {
        return fail("workload.streams", format!("a join reads two streams, not {}", s.workload.streams));
    }
    if p.kind == PipelineKind::WindowJoin && p.window != Some(WindowName::Tumbling) {
        return fail("pipeline.window", "the window join runs over tumbling windows");
    }
    if p.kind == PipelineKind::IntervalJoin && p.bound_ms.is_none() {
        return fail("pipeline.bound_ms", "the interval join needs its bound");
    }
    let Some(w) = window(s) else { return Ok(()) };
    let fixed = match p.kind {
        PipelineKind::NexmarkQ5 => Some(WindowName::Sliding),
        PipelineKind::NexmarkQ7 | PipelineKind::NexmarkQ8 => Some(WindowName::Tumbling),
        _ if query(p.kind).is_some() => return fail("pipeline.window", "this Nexmark query has no window"),
        _ => None,
    };
    if let (Some(fixed), Some(given)) = (fixed, p.window) {
        if fixed != given {
            return fail("pipeline.window", format!("{} uses a {fixed:?} window", kind_name(p.kind)));
        }
    }
    match w {
        WindowSpec::Tumbling { size_ms } | WindowSpec::Sliding { size_ms, .. } if size_ms == 0 => {
            fail("pipeline.size_ms", "must be positive")
        }
        WindowSpec::Sliding { size_ms, slide_ms } if slide_ms == 0 || size_ms % slide_ms != 0 => {
            fail("pipeline.slide_ms", format!("must be positive and divide size_ms ({size_ms})"))
        }
        WindowSpec::Session { gap_ms: 0 } => fail("pipeline.gap_ms", "a session window needs a positive gap"),
        WindowSpec::CountTumbling { size: 0 } | WindowSpec::CountSliding { size: 0, .. } => {
            fail("pipeline.size", "a count window needs a positive size")
        }
        WindowSpec::CountSliding { size, slide } if slide == 0 || size % slide != 0 => {
            fail("pipeline.slide", format!("must be positive and divide size ({size})"))
        }
        _ => Ok(()),
    }
}

fn validate_user(s: &Scenario, registry: &Registry) -> Result<(), Problem> {
    let Some(name) = &s.pipeline.operator else {
        let names: Vec<&str> = registry.names().collect();
        return fail(
            "pipeline.operator",
            format!("a user pipeline names its operator: {}", names.join(", ")),
        );
    };
    let Some(factory) = registry.get(name) else {
        let names: Vec<&str> = registry.names().collect();
        return fail("pipeline.operator", format!("no operator `{name}`; registered: {}", names.join(", ")));
    };
    factory(&spec(s)).map(|_| ()).map_err(|e| ("pipeline".to_string(), e))
}

/// Replication runs one keyed stage, and active replication needs the copies to compute the
/// same thing: operators that depend on watermarks (arrival order) cannot promise that.
fn validate_recovery(s: &Scenario) -> Result<(), Problem> {
    let e = &s.engine;
    if e.recovery == RecoveryName::Rollback {
        return Ok(());
    }
    let pipeline = spec(s);
    if faultline_engine::job::stages(&pipeline) > 1 {
        return fail(
            "engine.recovery",
            format!("{} has two keyed stages; replication runs one", pipeline.label()),
        );
    }
    if e.recovery == RecoveryName::ActiveReplication && pipeline.event_time() {
        let m = format!(
            "{} depends on watermarks, so active copies fed the same input may still disagree on \
             which records are late; use passive-replication or rollback",
            pipeline.label()
        );
        return fail("engine.recovery", m);
    }
    if e.checkpoint_mode != CheckpointModeName::Aligned {
        return fail("engine.checkpoint_mode", "replication needs aligned checkpoints");
    }
    Ok(())
}

fn kind_name(kind: PipelineKind) -> String {
    toml::Value::try_from(kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}
