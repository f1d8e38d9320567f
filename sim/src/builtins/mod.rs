//! The built-in pipelines, registered as plugins like any user's: the running aggregate,
//! windows, joins and top-n over synthetic input, and Nexmark q0–q8 over the `nexmark`
//! crate's events.
//!
//! Each is a [`Builtin`]: its parameters ([`spec::BuiltinSpec`]), the engine's typed operators
//! (`faultline_engine::operators::builtin`) for its stages, and its own independent model
//! (`reference`) for an oracle — the built-ins test the engine, so they are not judged against
//! their own operators. This is the one place that knows the list of built-ins.

pub mod reference;
pub mod spec;

use std::collections::BTreeSet;
use std::sync::Arc;

use faultline_engine::operators::builtin::{join, nexmark as nx, running, topn, window, Synthetic};
use faultline_engine::pipeline::nexmark::Query;
use faultline_engine::pipeline::WindowSpec;
use faultline_engine::plugin::{Dataflow, ParamError};
use faultline_engine::record::{Cause, OutputId, StreamRecord};
use faultline_engine::sdk::codec::{decode, encode};
use faultline_engine::sdk::operator::{ErasedOperator, Typed};
use faultline_engine::workload::{Emitted, WorkloadSpec};
use serde::Deserialize;

use crate::checker::expected::{Expected, Input};
use crate::plugin::{self, Accounting, Pipeline, Plugin, Problem, Registry};
use crate::scenario::{InputName, Scenario, SemanticsName};
use spec::{BuiltinKind, BuiltinSpec};

/// The built-in pipelines' names, in registration order.
pub const NAMES: [&str; 13] = [
    "running-aggregate",
    "window",
    "window-join",
    "interval-join",
    "top-n",
    "nexmark-q0",
    "nexmark-q1",
    "nexmark-q2",
    "nexmark-q3",
    "nexmark-q4",
    "nexmark-q5",
    "nexmark-q7",
    "nexmark-q8",
];

/// A registry holding the built-ins: add a user's pipelines to it.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    for name in NAMES {
        registry.register(BuiltinPlugin { name });
    }
    registry
}

/// One built-in, by name.
struct BuiltinPlugin {
    name: &'static str,
}

impl Plugin for BuiltinPlugin {
    fn name(&self) -> &str {
        self.name
    }

    fn build(&self, table: &toml::Table) -> Result<Arc<dyn Pipeline>, ParamError> {
        let params: Params = plugin::params(table)?;
        let spec = params.spec(self.name)?;
        Ok(Arc::new(Builtin { spec }))
    }
}

/// The window a built-in's table names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum WindowName {
    Tumbling,
    Sliding,
    Session,
    CountTumbling,
    CountSliding,
}

/// The keys of a built-in's `[pipeline]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "one")]
    map_scale: i64,
    #[serde(default)]
    map_offset: i64,
    #[serde(default)]
    filter_drop_multiples_of: i64,
    /// The window of `window` and `top-n` (Nexmark's windowed queries have theirs).
    window: Option<WindowName>,
    /// Time windows' length (Nexmark q5, q7, q8: default 10000).
    size_ms: Option<u64>,
    /// Sliding time windows' slide (Nexmark q5: default 2000).
    slide_ms: Option<u64>,
    /// Session windows' gap.
    gap_ms: Option<u64>,
    /// Count windows' length and slide, in records.
    size: Option<u64>,
    slide: Option<u64>,
    #[serde(default)]
    allowed_lateness_ms: u64,
    /// The interval join's bound: pairs whose event times are at most this far apart.
    bound_ms: Option<u64>,
    /// Top-n: how many of the largest values each window keeps (1 to 3, default 3).
    n: Option<i64>,
}

fn one() -> i64 {
    1
}

fn bad(field: &str, message: impl Into<String>) -> ParamError {
    ParamError::new(field, message)
}

impl Params {
    /// The spec of built-in `name`, every given field checked to apply to it.
    fn spec(&self, name: &str) -> Result<BuiltinSpec, ParamError> {
        let kind = match name {
            "running-aggregate" => BuiltinKind::RunningAggregate,
            "window" => BuiltinKind::Window,
            "window-join" => BuiltinKind::WindowJoin,
            "interval-join" => BuiltinKind::IntervalJoin {
                bound_ms: self
                    .bound_ms
                    .ok_or_else(|| bad("bound_ms", "the interval join needs its bound"))?,
            },
            "top-n" => BuiltinKind::TopN { n: self.top_n()? },
            _ => BuiltinKind::Nexmark(query(name).unwrap_or_else(|| panic!("{name} is not a built-in"))),
        };
        let window = self.window(&kind)?;
        self.applicable(&kind, window, name)?;
        check_window(window)?;
        Ok(BuiltinSpec {
            kind,
            map_scale: self.map_scale,
            map_offset: self.map_offset,
            filter_drop_multiples_of: self.filter_drop_multiples_of,
            window: window.unwrap_or(WindowSpec::Tumbling { size_ms: 10_000 }),
            allowed_lateness_ms: self.allowed_lateness_ms,
        })
    }

    fn top_n(&self) -> Result<usize, ParamError> {
        match self.n.unwrap_or(3) {
            n @ 1..=3 => Ok(n as usize),
            n => Err(bad("n", format!("top-n keeps 1 to 3 values, not {n}"))),
        }
    }

    /// The window the table names, with Nexmark's defaults for its windowed queries.
    fn window(&self, kind: &BuiltinKind) -> Result<Option<WindowSpec>, ParamError> {
        let fixed = match kind {
            BuiltinKind::Nexmark(Query::Q5) => Some(WindowName::Sliding),
            BuiltinKind::Nexmark(Query::Q7 | Query::Q8) => Some(WindowName::Tumbling),
            BuiltinKind::Nexmark(q) if self.window.is_some() => {
                return Err(bad("window", format!("{} has no window", q.name())))
            }
            _ => None,
        };
        let needs = matches!(kind, BuiltinKind::Window | BuiltinKind::TopN { .. } | BuiltinKind::WindowJoin);
        if needs && self.window.is_none() {
            return Err(bad("window", format!("pipeline `{}` needs a window", label(kind))));
        }
        if let (Some(fixed), Some(given)) = (fixed, self.window) {
            if fixed != given {
                return Err(bad("window", format!("{} uses a {fixed:?} window", label(kind))));
            }
        }
        let wanted = matches!(kind, BuiltinKind::WindowJoin | BuiltinKind::TopN { .. });
        if wanted && self.window != Some(WindowName::Tumbling) {
            return Err(bad("window", format!("{} runs over tumbling windows", label(kind))));
        }
        let Some(name) = self.window.or(fixed) else { return Ok(None) };
        let size_ms = self.size_ms.unwrap_or(10_000);
        Ok(Some(match name {
            WindowName::Tumbling => WindowSpec::Tumbling { size_ms },
            WindowName::Sliding => WindowSpec::Sliding { size_ms, slide_ms: self.slide_ms.unwrap_or(2_000) },
            WindowName::Session => WindowSpec::Session { gap_ms: self.gap_ms.unwrap_or(0) },
            WindowName::CountTumbling => WindowSpec::CountTumbling { size: self.size.unwrap_or(0) },
            WindowName::CountSliding => {
                WindowSpec::CountSliding { size: self.size.unwrap_or(0), slide: self.slide.unwrap_or(0) }
            }
        }))
    }

    /// Fields given that the pipeline would ignore are mistakes: say so rather than run without.
    fn applicable(&self, kind: &BuiltinKind, w: Option<WindowSpec>, name: &str) -> Result<(), ParamError> {
        let w = w.filter(|_| *kind != BuiltinKind::RunningAggregate);
        let timed = matches!(w, Some(WindowSpec::Tumbling { .. } | WindowSpec::Sliding { .. }));
        let counted = matches!(w, Some(WindowSpec::CountTumbling { .. } | WindowSpec::CountSliding { .. }));
        let given = [
            ("size_ms", self.size_ms.is_some(), timed),
            ("slide_ms", self.slide_ms.is_some(), matches!(w, Some(WindowSpec::Sliding { .. }))),
            ("gap_ms", self.gap_ms.is_some(), matches!(w, Some(WindowSpec::Session { .. }))),
            ("size", self.size.is_some(), counted),
            ("slide", self.slide.is_some(), matches!(w, Some(WindowSpec::CountSliding { .. }))),
            ("bound_ms", self.bound_ms.is_some(), matches!(kind, BuiltinKind::IntervalJoin { .. })),
            ("n", self.n.is_some(), matches!(kind, BuiltinKind::TopN { .. })),
            ("window", self.window.is_some() && *kind == BuiltinKind::RunningAggregate, false),
        ];
        match given.into_iter().find(|&(_, set, applies)| set && !applies) {
            Some((field, _, _)) => {
                let with = match self.window {
                    Some(window) => format!(" with a {} window", window_name(window)),
                    None => String::new(),
                };
                Err(bad(field, format!("does not apply to pipeline `{name}`{with}")))
            }
            None => Ok(()),
        }
    }
}

fn window_name(w: WindowName) -> &'static str {
    match w {
        WindowName::Tumbling => "tumbling",
        WindowName::Sliding => "sliding",
        WindowName::Session => "session",
        WindowName::CountTumbling => "count-tumbling",
        WindowName::CountSliding => "count-sliding",
    }
}

fn check_window(w: Option<WindowSpec>) -> Result<(), ParamError> {
    match w {
        Some(WindowSpec::Tumbling { size_ms: 0 } | WindowSpec::Sliding { size_ms: 0, .. }) => {
            Err(bad("size_ms", "must be positive"))
        }
        Some(WindowSpec::Sliding { size_ms, slide_ms }) if slide_ms == 0 || size_ms % slide_ms != 0 => {
            Err(bad("slide_ms", format!("must be positive and divide size_ms ({size_ms})")))
        }
        Some(WindowSpec::Session { gap_ms: 0 }) => {
            Err(bad("gap_ms", "a session window needs a positive gap"))
        }
        Some(WindowSpec::CountTumbling { size: 0 } | WindowSpec::CountSliding { size: 0, .. }) => {
            Err(bad("size", "a count window needs a positive size"))
        }
        Some(WindowSpec::CountSliding { size, slide }) if slide == 0 || size % slide != 0 => {
            Err(bad("slide", format!("must be positive and divide size ({size})")))
        }
        _ => Ok(()),
    }
}

/// The Nexmark query a built-in name names.
fn query(name: &str) -> Option<Query> {
    Query::ALL.into_iter().find(|q| q.name() == name)
}

fn label(kind: &BuiltinKind) -> String {
    BuiltinSpec::plain(kind.clone(), WindowSpec::Tumbling { size_ms: 1 }).label()
}

/// A built-in pipeline, built.
pub struct Builtin {
    pub spec: BuiltinSpec,
}

impl Dataflow for Builtin {
    fn label(&self) -> String {
        self.spec.label()
    }

    fn stages(&self) -> u32 {
        match self.spec.kind {
            BuiltinKind::Nexmark(q) => q.stages(),
            _ => 1,
        }
    }

    fn stage(&self, stage: u32) -> Box<dyn ErasedOperator> {
        let w = self.spec.window;
        match self.spec.kind {
            BuiltinKind::RunningAggregate => Box::new(Typed(running::RunningAggregate)),
            BuiltinKind::Window => Box::new(Typed(window::WindowAggregate { window: w })),
            BuiltinKind::WindowJoin => Box::new(Typed(join::WindowJoin { size_ms: w.size_ms() })),
            BuiltinKind::IntervalJoin { bound_ms } => Box::new(Typed(join::IntervalJoin { bound_ms })),
            BuiltinKind::TopN { n } => Box::new(Typed(topn::TopN { n, size_ms: w.size_ms() })),
            BuiltinKind::Nexmark(q) => nx::stage(q, stage, w),
        }
    }

    fn allowed_lateness_ms(&self) -> u64 {
        self.spec.allowed_lateness_ms
    }

    /// Nexmark: the query's kinds kept and re-keyed. Synthetic: the map and the filter, on one
    /// decoding of the record.
    fn source_step(&self, record: &mut StreamRecord) -> bool {
        if let BuiltinKind::Nexmark(q) = self.spec.kind {
            let Some((key, value)) = nx::prepare_encoded(q, self.spec.window, &record.value) else {
                return false;
            };
            (record.key, record.value) = (key, value);
            return true;
        }
        if self.spec.map_scale == 1 && self.spec.map_offset == 0 && self.spec.filter_drop_multiples_of == 0 {
            return true;
        }
        let mut event: Synthetic = decode(&record.value);
        let Some(value) = self.spec.map_filter(event.value) else { return false };
        event.value = value;
        record.value = encode(&event);
        true
    }

    fn event_time(&self) -> bool {
        self.spec.event_time()
    }

    fn fires_on_watermark(&self) -> bool {
        self.spec.fires_on_watermark()
    }

    fn generate(&self, workload: &WorkloadSpec, producer: u32) -> Box<dyn Iterator<Item = Emitted> + Send> {
        Box::new(workload.events_for(producer))
    }
}

impl Pipeline for Builtin {
    fn validate(&self, s: &Scenario) -> Result<(), Problem> {
        let fail = |field: &str, m: String| Err((field.to_string(), m));
        let nexmark = matches!(self.spec.kind, BuiltinKind::Nexmark(_));
        let name = self.spec.label();
        if nexmark != (s.workload.input == InputName::Nexmark) {
            let m =
                if nexmark { "Nexmark queries read `input = \"nexmark\"`" } else { "reads synthetic input" };
            return fail("workload.input", format!("pipeline `{name}` {m}"));
        }
        let joins = matches!(self.spec.kind, BuiltinKind::WindowJoin | BuiltinKind::IntervalJoin { .. });
        if joins && s.workload.streams != 2 {
            return fail("workload.streams", format!("a join reads two streams, not {}", s.workload.streams));
        }
        if self.spec.kind != BuiltinKind::RunningAggregate && s.engine.semantics != SemanticsName::ExactlyOnce
        {
            let m = format!(
                "pipeline `{name}` runs exactly-once only: which records are late depends on \
                 arrival, so a replayed attempt's results may differ from the first's"
            );
            return fail("engine.semantics", m);
        }
        Ok(())
    }

    fn oracle(&self, inputs: &[Input], late: &BTreeSet<(Cause, u32)>) -> Expected {
        reference::evaluate(inputs, &self.spec, late)
    }

    fn show(&self, _id: &OutputId, value: &[u8]) -> Option<String> {
        use plugin::show_as;
        match self.spec.kind {
            BuiltinKind::RunningAggregate => show_as::<running::Running>(value),
            BuiltinKind::Window => show_as::<window::WindowResult>(value),
            BuiltinKind::WindowJoin | BuiltinKind::IntervalJoin { .. } => show_as::<join::Pair>(value),
            BuiltinKind::TopN { .. } => show_as::<topn::Top>(value),
            BuiltinKind::Nexmark(q) => match q {
                Query::Q0 | Query::Q1 | Query::Q7 => show_as::<::nexmark::event::Bid>(value),
                Query::Q2 => show_as::<nx::AuctionPrice>(value),
                Query::Q3 => show_as::<nx::SellerAuction>(value),
                Query::Q4 => show_as::<nx::CategoryAverage>(value),
                Query::Q5 => show_as::<nx::HotItem>(value),
                Query::Q8 => show_as::<nx::NewUser>(value),
            },
        }
    }

    /// The independent model of what the pipeline reads: the query's kinds, the filter.
    fn keeps(&self, i: &Input) -> bool {
        use ::nexmark::event::Event;
        match self.spec.kind {
            BuiltinKind::Nexmark(q) => match (q, decode::<Event>(&i.event.value)) {
                (Query::Q2, Event::Bid(b)) => nx::q2_keeps(b.auction),
                (Query::Q0 | Query::Q1 | Query::Q5 | Query::Q7, Event::Bid(_)) => true,
                (Query::Q4, Event::Auction(_) | Event::Bid(_)) => true,
                (Query::Q3 | Query::Q8, Event::Person(_) | Event::Auction(_)) => true,
                _ => false,
            },
            _ => self.spec.map_filter(decode::<Synthetic>(&i.event.value).value).is_some(),
        }
    }

    /// Windows and top-n count their records: each kept input once per window holding it.
    fn accounting(&self) -> Option<Accounting> {
        let count: fn(&[u8]) -> u64 = match self.spec.kind {
            BuiltinKind::Window => |v| decode::<window::WindowResult>(v).aggregate.count,
            BuiltinKind::TopN { .. } => |v| decode::<topn::Top>(v).count,
            _ => return None,
        };
        let per_record = match self.spec.window {
            WindowSpec::Sliding { size_ms, slide_ms } => size_ms / slide_ms,
            WindowSpec::CountSliding { .. } => return None,
            _ => 1,
        };
        Some(Accounting { per_record, count })
    }

    fn consistency_model(&self) -> Option<Box<dyn Fn(i64) -> Option<i64> + '_>> {
        (self.spec.kind == BuiltinKind::RunningAggregate).then(|| {
            let model: Box<dyn Fn(i64) -> Option<i64> + '_> = Box::new(|v| self.spec.map_filter(v));
            model
        })
    }
}
