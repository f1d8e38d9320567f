//! A planted operator bug is caught: the rule's alert count kept in a field of the operator
//! instead of in managed state. Fault-free it computes the same alerts; under faults the engine
//! restores state from checkpoints but a field is not state, so a restarted or redeployed
//! operator numbers its alerts afresh, and the differential oracle sees wrong outputs.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use faultline::plugin::{self, Pipeline, Plugin, Registry};
use faultline::{Ctx, Dataflow, Emitted, MapState, Operator, ParamError, Timer, Typed, WorkloadSpec};
use fraud_rule::{Alert, Cards, FraudRule, Params, Txn};

const LAST_SEEN: MapState<String, u64> = MapState::new("last-seen");

/// `ThreeCountries` with the bug: the per-card alert count lives in `alerts`.
struct FieldCount {
    countries: usize,
    window_ms: u64,
    alerts: RefCell<BTreeMap<String, u64>>,
}

impl Operator for FieldCount {
    type Key = String;
    type In = Txn;
    type OutKey = String;
    type Out = Alert;

    fn on_record(&self, card: &String, txn: Txn, ctx: &mut Ctx<'_, Self>) {
        let t = txn.at_ms;
        if ctx.map(&LAST_SEEN).get(&txn.merchant_country).is_none_or(|s| s < t) {
            ctx.map(&LAST_SEEN).insert(&txn.merchant_country, &t);
        }
        ctx.set_timer(t + self.window_ms + ctx.allowed_lateness_ms(), 0);
        let mut recent: Vec<String> = ctx
            .map(&LAST_SEEN)
            .entries()
            .into_iter()
            .filter(|&(_, s)| s <= t && s + self.window_ms > t)
            .map(|(country, _)| country)
            .collect();
        if recent.len() >= self.countries {
            recent.sort();
            let mut alerts = self.alerts.borrow_mut();
            let number = alerts.entry(card.clone()).or_insert(0);
            *number += 1; // the bug: not in managed state, so not in any checkpoint
            ctx.emit(card, &Alert { card: card.clone(), countries: recent, at_ms: t, number: *number });
        }
    }

    fn on_timer(&self, _card: &String, timer: Timer, ctx: &mut Ctx<'_, Self>) {
        let horizon = timer.at_ms.saturating_sub(ctx.allowed_lateness_ms());
        for (country, seen) in ctx.map(&LAST_SEEN).entries() {
            if seen + self.window_ms <= horizon {
                ctx.map(&LAST_SEEN).remove(&country);
            }
        }
    }

    fn event_time(&self) -> bool {
        true
    }
}

/// The fraud-rule pipeline running the planted copy.
struct Planted(FraudRule);

impl Dataflow for Planted {
    fn label(&self) -> String {
        self.0.label()
    }
    fn stage(&self, _stage: u32) -> Box<dyn faultline::sdk::operator::ErasedOperator> {
        let p = &self.0.params;
        let op = FieldCount { countries: p.countries, window_ms: p.window_ms, alerts: RefCell::default() };
        Box::new(Typed(op))
    }
    fn allowed_lateness_ms(&self) -> u64 {
        self.0.allowed_lateness_ms()
    }
    fn generate(&self, workload: &WorkloadSpec, producer: u32) -> Box<dyn Iterator<Item = Emitted> + Send> {
        let cards = Cards { abroad_per_mille: self.0.params.abroad_per_mille };
        Box::new(workload.events_with(producer, Box::new(cards)))
    }
}

impl Pipeline for Planted {}

struct PlantedPlugin;

impl Plugin for PlantedPlugin {
    fn name(&self) -> &str {
        fraud_rule::NAME
    }
    fn build(&self, table: &faultline::toml::Table) -> Result<Arc<dyn Pipeline>, ParamError> {
        let params: Params = plugin::params(table)?;
        Ok(Arc::new(Planted(FraudRule { params })))
    }
}

fn scenario() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenario.toml")
}

#[test]
fn a_count_kept_in_a_field_is_caught_as_wrong_output_within_200_seeds() {
    let mut registry = Registry::new();
    registry.register(PlantedPlugin);
    let first = (1..=200).find_map(|seed| {
        let record = faultline::run(scenario(), &registry, seed).expect("the scenario loads");
        (record.verdict == "fail").then_some((seed, record))
    });
    let (seed, record) = first.expect("a seed among the first 200 catches the planted bug");
    let names: Vec<&str> = record.violations.iter().map(|v| v.invariant.as_str()).collect();
    assert!(
        names.iter().any(|n| *n == "delivery-wrong" || *n == "delivery-lost"),
        "seed {seed} fails as wrong or lost output: {names:?}"
    );
    eprintln!("caught at seed {seed}: {names:?}");
}

#[test]
fn the_correct_rule_passes_the_same_seeds() {
    let registry = fraud_rule::registry();
    for seed in 1..=3 {
        let record = faultline::run(scenario(), &registry, seed).expect("the scenario loads");
        assert_eq!(record.verdict, "pass", "seed {seed}: {:?}", record.violations);
    }
}
