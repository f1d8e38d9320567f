//! Operators with the mistakes operator authors make, planted on purpose: faultline's own
//! self-test that `faultline::prop` catches each one and shrinks it to a small case.
//!
//! Every operator here passes its step-by-step harness test and, for most of them, a fault-free
//! run: the mistake shows only where a restore, a replay, a different interleaving or a second
//! instance differs from the first run. Each is a pipeline of its own, registered by name:
//!
//! | pipeline | the mistake | how it shows |
//! |---|---|---|
//! | `planted-field-state` | a count kept in a field of the operator, not in managed state | a restored operator counts from zero: wrong values |
//! | `planted-arrival-order` | a rank by arrival, for a key fed by several partitions | another interleaving ranks differently: wrong values |
//! | `planted-timer-restore` | a window's timer set when a count kept in memory reaches its threshold | a restored operator never sets it: the window is lost |
//! | `planted-hashmap-order` | a list built by iterating a `HashMap` | another instance lists in another order: wrong values |
//! | `planted-random-id` | an alert keyed by a random id, as a UUID would be | the replay or the oracle mints other ids: lost and unexpected outputs |
//!
//! The input is sensor readings ([`Readings`]): each sensor at one site, the sites shared by
//! sensors of every producer. `scenarios/` holds a scenario for each pipeline; `src/main.rs`
//! is the command line with them registered, so a minimal case replays with
//! `cargo run -p planted-bugs -- run FILE --seed N`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use faultline::plugin::{self, show_as, Pipeline, Plugin, Registry};
use faultline::sdk::codec::encode;
use faultline::sdk::operator::ErasedOperator;
use faultline::{
    Blob, Ctx, Dataflow, Draw, Drawing, Emitted, KeyBytes, MapState, Operator, OutputId, ParamError, Timer,
    Typed, ValueState, WorkloadSpec,
};
use serde::{Deserialize, Serialize};

/// One reading of a sensor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    pub sensor: String,
    pub site: String,
    /// 0 to 99.
    pub value: i64,
    pub at_ms: u64,
}

/// The planted mistakes, one pipeline each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    FieldState,
    ArrivalOrder,
    TimerRestore,
    HashMapOrder,
    RandomId,
}

impl Bug {
    pub const ALL: [Bug; 5] =
        [Bug::FieldState, Bug::ArrivalOrder, Bug::TimerRestore, Bug::HashMapOrder, Bug::RandomId];

    /// Its pipeline's name, which is also its scenario's file name under `scenarios/`.
    pub fn name(self) -> &'static str {
        match self {
            Bug::FieldState => "planted-field-state",
            Bug::ArrivalOrder => "planted-arrival-order",
            Bug::TimerRestore => "planted-timer-restore",
            Bug::HashMapOrder => "planted-hashmap-order",
            Bug::RandomId => "planted-random-id",
        }
    }

    /// Its scenario file.
    pub fn scenario(self) -> std::path::PathBuf {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        dir.join(format!("{}.toml", self.name()))
    }

    /// Its pipeline as a property test takes it.
    pub fn subject(self) -> faultline::prop::Subject {
        faultline::prop::Subject::from_file(self.scenario(), registry())
    }

    /// Whether its records are keyed by site (fed by every producer's partitions) rather than
    /// by sensor (one producer's, in log order).
    fn keyed_by_site(self) -> bool {
        self == Bug::ArrivalOrder
    }
}

/// The built-in pipelines and the planted ones.
pub fn registry() -> Registry {
    let mut registry = faultline::builtins();
    for bug in Bug::ALL {
        registry.register(PlantedPlugin(bug));
    }
    registry
}

// ---- 1. State kept outside managed state ----

/// A sensor's reading count so far, and its running total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub sensor: String,
    pub n: u64,
    pub total: i64,
}

const TOTAL: ValueState<i64> = ValueState::new("total");

/// Counts a sensor's readings in a field: no checkpoint holds it, so a restored instance
/// counts from zero while its total (managed) comes back.
#[derive(Default)]
pub struct FieldState {
    counts: RefCell<BTreeMap<String, u64>>,
}

impl Operator for FieldState {
    type Key = String;
    type In = Reading;
    type OutKey = String;
    type Out = Count;

    fn on_record(&self, sensor: &String, r: Reading, ctx: &mut Ctx<'_, Self>) {
        let total = ctx.value(&TOTAL).update(|t| t.unwrap_or(0) + r.value);
        let mut counts = self.counts.borrow_mut();
        let n = counts.entry(sensor.clone()).or_insert(0);
        *n += 1; // the mistake: not in managed state
        ctx.emit(sensor, &Count { sensor: sensor.clone(), n: *n, total });
    }

    fn event_time(&self) -> bool {
        false
    }
}

// ---- 2. Output that depends on arrival order across partitions ----

/// A reading with its rank among its site's readings, by arrival.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranked {
    pub site: String,
    pub sensor: String,
    pub at_ms: u64,
    pub rank: u64,
}

const SEEN: ValueState<u64> = ValueState::new("seen");

/// Ranks each site's readings in the order they arrive. The state is managed; the mistake is
/// that a site's readings come from several partitions, whose interleaving no one fixes.
pub struct ArrivalOrder;

impl Operator for ArrivalOrder {
    type Key = String;
    type In = Reading;
    type OutKey = String;
    type Out = Ranked;

    fn on_record(&self, site: &String, r: Reading, ctx: &mut Ctx<'_, Self>) {
        let rank = ctx.value(&SEEN).update(|n| n.unwrap_or(0) + 1);
        ctx.emit(site, &Ranked { site: site.clone(), sensor: r.sensor, at_ms: r.at_ms, rank });
    }

    fn event_time(&self) -> bool {
        false
    }
}

// ---- 3. A timer not set again after a restore ----

/// A sensor's total over one tumbling window of event time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSum {
    pub sensor: String,
    pub start_ms: u64,
    pub readings: u32,
    pub sum: i64,
}

const SUMS: MapState<u64, (u32, i64)> = MapState::new("sums");

/// Tumbling windows that report only once they hold `min_records` readings: the timer that
/// closes a window is set when the count reaches it. The sums are managed; the count the
/// decision reads is a field, so an instance restored between a window's readings counts
/// afresh, and the window whose threshold was crossed across the restore never gets its timer.
pub struct TimerRestore {
    pub window_ms: u64,
    pub min_records: u32,
    seen: RefCell<BTreeMap<(String, u64), u32>>,
}

impl TimerRestore {
    pub fn new(window_ms: u64, min_records: u32) -> TimerRestore {
        assert!(window_ms > 0 && min_records > 0, "a window and a threshold");
        TimerRestore { window_ms, min_records, seen: RefCell::default() }
    }
}

impl Operator for TimerRestore {
    type Key = String;
    type In = Reading;
    type OutKey = String;
    type Out = WindowSum;

    fn on_record(&self, sensor: &String, r: Reading, ctx: &mut Ctx<'_, Self>) {
        let start = r.at_ms - r.at_ms % self.window_ms;
        let (n, sum) = ctx.map(&SUMS).get(&start).unwrap_or((0, 0));
        ctx.map(&SUMS).insert(&start, &(n + 1, sum + r.value));
        let mut seen = self.seen.borrow_mut();
        let count = seen.entry((sensor.clone(), start)).or_insert(0);
        *count += 1; // the mistake: the decision below reads memory a restore does not bring back
        if *count == self.min_records {
            ctx.set_timer(start + self.window_ms + ctx.allowed_lateness_ms(), 0);
        }
    }

    fn on_timer(&self, sensor: &String, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let start = timer.at_ms - ctx.allowed_lateness_ms() - self.window_ms;
        let (readings, sum) = ctx.map(&SUMS).get(&start).expect("a timer is set for a window with readings");
        ctx.map(&SUMS).remove(&start);
        self.seen.borrow_mut().remove(&(sensor.clone(), start));
        ctx.emit(sensor, &WindowSum { sensor: sensor.clone(), start_ms: start, readings, sum });
    }

    fn event_time(&self) -> bool {
        true
    }
}

// ---- 4. Iteration over a HashMap ----

/// The value bands a sensor has read, in the order the operator listed them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub sensor: String,
    pub bands: Vec<(String, u64)>,
}

const BANDS: MapState<String, u64> = MapState::new("bands");

/// Counts a sensor's readings per band and reports the bands after each reading — listed by
/// iterating a `HashMap`, whose order is its hasher's random keys', not the data's.
pub struct HashMapOrder;

impl Operator for HashMapOrder {
    type Key = String;
    type In = Reading;
    type OutKey = String;
    type Out = Profile;

    #[allow(clippy::disallowed_types, clippy::disallowed_methods)] // the planted mistake
    fn on_record(&self, sensor: &String, r: Reading, ctx: &mut Ctx<'_, Self>) {
        let band = ["low", "mid", "high", "peak"][(r.value.clamp(0, 99) / 25) as usize].to_string();
        let n = ctx.map(&BANDS).get(&band).unwrap_or(0);
        ctx.map(&BANDS).insert(&band, &(n + 1));
        let counts: std::collections::HashMap<String, u64> = ctx.map(&BANDS).entries().into_iter().collect();
        let bands = counts.into_iter().collect();
        ctx.emit(sensor, &Profile { sensor: sensor.clone(), bands });
    }

    fn event_time(&self) -> bool {
        false
    }
}

// ---- 5. An output id that is not deterministic ----

/// A high reading, under an id minted for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub sensor: String,
    pub at_ms: u64,
    pub value: i64,
}

/// What counts as high.
pub const HIGH: i64 = 90;

/// Raises an alert for each high reading, keyed by a fresh random id (as `Uuid::new_v4()`
/// would give): a replay, and the oracle, mint other ids for the same alerts.
pub struct RandomId;

impl Operator for RandomId {
    type Key = String;
    type In = Reading;
    type OutKey = String;
    type Out = Alert;

    #[allow(clippy::disallowed_types)] // the planted mistake
    fn on_record(&self, sensor: &String, r: Reading, ctx: &mut Ctx<'_, Self>) {
        use std::hash::BuildHasher;
        if r.value < HIGH {
            return;
        }
        let random = std::collections::hash_map::RandomState::new().hash_one((sensor, r.at_ms));
        let id = format!("{random:016x}");
        ctx.emit(&id, &Alert { id: id.clone(), sensor: sensor.clone(), at_ms: r.at_ms, value: r.value });
    }

    fn event_time(&self) -> bool {
        false
    }
}

// ---- The pipelines ----

/// The keys of a planted pipeline's `[pipeline]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How many sites the sensors are spread over (default 4).
    #[serde(default = "defaults::sites")]
    pub sites: u64,
    /// `planted-timer-restore`: the window (default 1000 ms) and its threshold (default 3).
    #[serde(default = "defaults::window_ms")]
    pub window_ms: u64,
    #[serde(default = "defaults::min_records")]
    pub min_records: u32,
    #[serde(default)]
    pub allowed_lateness_ms: u64,
}

mod defaults {
    pub fn sites() -> u64 {
        4
    }
    pub fn window_ms() -> u64 {
        1000
    }
    pub fn min_records() -> u32 {
        3
    }
}

/// The plugin of one planted bug.
pub struct PlantedPlugin(pub Bug);

impl Plugin for PlantedPlugin {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn build(&self, table: &faultline::toml::Table) -> Result<Arc<dyn Pipeline>, ParamError> {
        let params: Params = plugin::params(table)?;
        if params.sites == 0 {
            return Err(ParamError::new("sites", "must be positive"));
        }
        if params.window_ms == 0 || params.min_records == 0 {
            let field = if params.window_ms == 0 { "window_ms" } else { "min_records" };
            return Err(ParamError::new(field, "must be positive"));
        }
        Ok(Arc::new(Planted { bug: self.0, params }))
    }
}

/// A planted pipeline: readings keyed by sensor (or site), one keyed stage.
pub struct Planted {
    pub bug: Bug,
    pub params: Params,
}

impl Dataflow for Planted {
    fn label(&self) -> String {
        self.bug.name().into()
    }

    fn stage(&self, stage: u32) -> Box<dyn ErasedOperator> {
        assert_eq!(stage, 0, "a planted pipeline has one keyed stage");
        let p = &self.params;
        match self.bug {
            Bug::FieldState => Box::new(Typed(FieldState::default())),
            Bug::ArrivalOrder => Box::new(Typed(ArrivalOrder)),
            Bug::TimerRestore => Box::new(Typed(TimerRestore::new(p.window_ms, p.min_records))),
            Bug::HashMapOrder => Box::new(Typed(HashMapOrder)),
            Bug::RandomId => Box::new(Typed(RandomId)),
        }
    }

    fn allowed_lateness_ms(&self) -> u64 {
        self.params.allowed_lateness_ms
    }

    fn generate(&self, workload: &WorkloadSpec, producer: u32) -> Box<dyn Iterator<Item = Emitted> + Send> {
        let readings = Readings { sites: self.params.sites, by_site: self.bug.keyed_by_site() };
        Box::new(workload.events_with(producer, Box::new(readings)))
    }
}

impl Pipeline for Planted {
    fn show(&self, _id: &OutputId, value: &[u8]) -> Option<String> {
        match self.bug {
            Bug::FieldState => show_as::<Count>(value),
            Bug::ArrivalOrder => show_as::<Ranked>(value),
            Bug::TimerRestore => show_as::<WindowSum>(value),
            Bug::HashMapOrder => show_as::<Profile>(value),
            Bug::RandomId => show_as::<Alert>(value),
        }
    }
}

/// The input: sensor `sensor-N` for each of the workload's keys, at site `site-M`, where the
/// sensors of every producer share the sites. A reading's value is uniform in 0..100.
pub struct Readings {
    pub sites: u64,
    /// Key each reading by its site rather than its sensor.
    pub by_site: bool,
}

impl Draw for Readings {
    fn draw(&mut self, d: &mut Drawing<'_>) -> (KeyBytes, Blob) {
        use rand::Rng;
        let n = d.owned_key();
        let sensor = format!("sensor-{n}");
        // `n / producers` numbers a producer's own sensors 0, 1, …: every producer has sensors
        // at every site.
        let site = format!("site-{}", (n / u64::from(d.spec.producers)) % self.sites);
        let value = d.rng.gen_range(0..100);
        let reading = Reading { sensor: sensor.clone(), site: site.clone(), value, at_ms: d.event_time_ms };
        let key = if self.by_site { KeyBytes::of(&site) } else { KeyBytes::of(&sensor) };
        (key, encode(&reading))
    }
}

#[cfg(test)]
mod tests {
    use faultline::Harness;

    use super::*;

    fn reading(sensor: &str, value: i64, at_ms: u64) -> Reading {
        Reading { sensor: sensor.into(), site: "site-0".into(), value, at_ms }
    }

    /// Each mistake is invisible to a single instance fed in order: the harness passes.
    #[test]
    fn a_field_count_is_right_within_one_instance_and_wrong_after_a_restore() {
        let mut h = Harness::new(FieldState::default());
        h.push(&"s".to_string(), &reading("s", 5, 0), 0);
        h.push(&"s".to_string(), &reading("s", 7, 1), 1);
        assert_eq!(h.outputs().last().unwrap().1, Count { sensor: "s".into(), n: 2, total: 12 });
        let mut h = Harness::restore(FieldState::default(), &h.snapshot());
        h.push(&"s".to_string(), &reading("s", 1, 2), 2);
        assert_eq!(h.outputs()[0].1, Count { sensor: "s".into(), n: 1, total: 13 }, "the count restarted");
    }

    #[test]
    fn a_threshold_crossed_across_a_restore_never_sets_the_timer() {
        let sensor = "s".to_string();
        let mut h = Harness::new(TimerRestore::new(1000, 2));
        h.push(&sensor, &reading("s", 5, 100), 100);
        h.push(&sensor, &reading("s", 6, 200), 200);
        h.advance_watermark(1000);
        assert_eq!(h.outputs().len(), 1, "two readings: the window reports");
        h.push(&sensor, &reading("s", 1, 1100), 1100);
        let mut h = Harness::restore(TimerRestore::new(1000, 2), &h.snapshot());
        h.push(&sensor, &reading("s", 2, 1200), 1200);
        h.advance_watermark(5000);
        assert!(h.outputs().is_empty(), "the second window held two readings but never reported");
    }

    #[test]
    fn random_ids_differ_between_two_runs_of_the_same_input() {
        let run = || {
            let mut h = Harness::new(RandomId);
            h.push(&"s".to_string(), &reading("s", 95, 0), 0);
            h.outputs()[0].0.clone()
        };
        assert_ne!(run(), run());
    }

    #[test]
    fn every_bug_has_a_scenario_that_loads() {
        let registry = registry();
        for bug in Bug::ALL {
            let loaded = faultline::load(bug.scenario(), &registry).expect("the scenario loads");
            assert_eq!(loaded.scenario.pipeline.kind, bug.name());
        }
    }
}
