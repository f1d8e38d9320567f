//! A fraud rule, as a user writes an operator for faultline: a card that spends in three
//! different countries within ten minutes of event time raises an alert.
//!
//! It is written against the typed operator SDK only — card transactions in, alerts out,
//! state in named descriptors — and knows nothing of faults: the engine snapshots, restores
//! and replicates its state, and the checkers compare its output under faults with the same
//! operator run fault-free.
//!
//! The crate is laid out as a user's would be:
//! - the operator, [`ThreeCountries`], tested with the step-by-step harness;
//! - its input generator, [`Cards`]: card transactions, mostly in each card's home country;
//! - its plugin, [`FraudRulePlugin`]: the pipeline `fraud-rule`, built from its scenario's
//!   `[pipeline]` table, judged by the differential oracle;
//! - `src/main.rs`: the `faultline` command line with the plugin registered, and
//!   `scenario.toml`, its scenario under faults of all seven classes.
//!
//! Transactions of 1,500.00 or more also go to the named side output `large`, which the
//! checkers judge like the alerts.
//!
//! # State, per card
//! - `last-seen`: country → the latest event time the card spent there;
//! - `alerts`: how many alerts the card raised so far (each alert carries its number);
//! - a timer at `t + window + allowed lateness` for each transaction at `t`: by then no record
//!   that could still count it can arrive, and it expires the countries seen that long ago.

use std::sync::Arc;

use faultline::plugin::{self, show_as, Pipeline, Plugin, Registry};
use faultline::sdk::codec::encode;
use faultline::{
    Blob, Ctx, Dataflow, Draw, Drawing, Emitted, KeyBytes, MapState, Operator, OutputId, ParamError,
    SideOutput, Timer, Typed, ValueState, WorkloadSpec,
};
use serde::{Deserialize, Serialize};

/// A card transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub card: String,
    pub merchant_country: String,
    pub amount_cents: u64,
    pub at_ms: u64,
}

/// An alert: the card, the countries it spent in within the window (sorted), when, and which
/// of the card's alerts this is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub card: String,
    pub countries: Vec<String>,
    pub at_ms: u64,
    pub number: u64,
}

/// Ten minutes, in milliseconds.
pub const TEN_MINUTES_MS: u64 = 10 * 60 * 1000;

const LAST_SEEN: MapState<String, u64> = MapState::new("last-seen");
const ALERTS: ValueState<u64> = ValueState::new("alerts");

/// Transactions of [`LARGE_CENTS`] or more, for review: a named side output.
pub const LARGE: SideOutput<Txn> = SideOutput::new("large");

/// What counts as a large transaction: 1,500.00.
pub const LARGE_CENTS: u64 = 150_000;

/// The rule: `countries` distinct countries within `window_ms`.
pub struct ThreeCountries {
    pub countries: usize,
    pub window_ms: u64,
}

impl Default for ThreeCountries {
    fn default() -> Self {
        ThreeCountries { countries: 3, window_ms: TEN_MINUTES_MS }
    }
}

impl Operator for ThreeCountries {
    type Key = String;
    type In = Txn;
    type OutKey = String;
    type Out = Alert;

    fn on_record(&self, card: &String, txn: Txn, ctx: &mut Ctx<'_, Self>) {
        if txn.amount_cents >= LARGE_CENTS {
            ctx.side(&LARGE, &txn);
        }
        let t = txn.at_ms;
        let seen = ctx.map(&LAST_SEEN).get(&txn.merchant_country);
        if seen.is_none_or(|s| s < t) {
            ctx.map(&LAST_SEEN).insert(&txn.merchant_country, &t);
        }
        let at = t + self.window_ms + ctx.allowed_lateness_ms();
        ctx.set_timer(at, 0);
        let mut recent: Vec<String> = ctx
            .map(&LAST_SEEN)
            .entries()
            .into_iter()
            .filter(|&(_, s)| s <= t && s + self.window_ms > t)
            .map(|(country, _)| country)
            .collect();
        if recent.len() >= self.countries {
            recent.sort();
            let number = ctx.value(&ALERTS).update(|alerts| alerts.unwrap_or(0) + 1);
            ctx.emit(card, &Alert { card: card.clone(), countries: recent, at_ms: t, number });
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

/// The pipeline's name in scenarios: `[pipeline] kind = "fraud-rule"`.
pub const NAME: &str = "fraud-rule";

/// The built-in pipelines and this one.
pub fn registry() -> Registry {
    let mut registry = faultline::builtins();
    registry.register(FraudRulePlugin);
    registry
}

/// The pipeline as a property test takes it: this crate's scenario, with the registry that
/// holds the plugin.
pub fn pipeline() -> faultline::prop::Subject {
    faultline::prop::Subject::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/scenario.toml"), registry())
}

/// The plugin: builds the pipeline from its `[pipeline]` table.
pub struct FraudRulePlugin;

/// The keys of the `[pipeline]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How many distinct countries raise an alert (default 3).
    #[serde(default = "defaults::countries")]
    pub countries: usize,
    /// Within how much event time (default ten minutes).
    #[serde(default = "defaults::window_ms")]
    pub window_ms: u64,
    #[serde(default)]
    pub allowed_lateness_ms: u64,
    /// How many transactions in a thousand are abroad (default 40).
    #[serde(default = "defaults::abroad_per_mille")]
    pub abroad_per_mille: u32,
}

mod defaults {
    pub fn countries() -> usize {
        3
    }
    pub fn window_ms() -> u64 {
        super::TEN_MINUTES_MS
    }
    pub fn abroad_per_mille() -> u32 {
        40
    }
}

impl Plugin for FraudRulePlugin {
    fn name(&self) -> &str {
        NAME
    }

    fn build(&self, table: &faultline::toml::Table) -> Result<Arc<dyn Pipeline>, ParamError> {
        let params: Params = plugin::params(table)?;
        if params.countries < 2 || params.countries > COUNTRIES.len() {
            let m = format!("must be 2 to {}, not {}", COUNTRIES.len(), params.countries);
            return Err(ParamError::new("countries", m));
        }
        if params.window_ms == 0 {
            return Err(ParamError::new("window_ms", "must be positive"));
        }
        if params.abroad_per_mille > 1000 {
            return Err(ParamError::new("abroad_per_mille", "must be at most 1000"));
        }
        Ok(Arc::new(FraudRule { params }))
    }
}

/// The pipeline: card transactions keyed by card, one keyed stage running [`ThreeCountries`].
pub struct FraudRule {
    pub params: Params,
}

impl Dataflow for FraudRule {
    fn label(&self) -> String {
        NAME.into()
    }

    fn stage(&self, stage: u32) -> Box<dyn faultline::sdk::operator::ErasedOperator> {
        assert_eq!(stage, 0, "the fraud rule has one keyed stage");
        let p = &self.params;
        Box::new(Typed(ThreeCountries { countries: p.countries, window_ms: p.window_ms }))
    }

    fn allowed_lateness_ms(&self) -> u64 {
        self.params.allowed_lateness_ms
    }

    fn generate(&self, workload: &WorkloadSpec, producer: u32) -> Box<dyn Iterator<Item = Emitted> + Send> {
        let cards = Cards { abroad_per_mille: self.params.abroad_per_mille };
        Box::new(workload.events_with(producer, Box::new(cards)))
    }
}

impl Pipeline for FraudRule {
    fn show(&self, id: &OutputId, value: &[u8]) -> Option<String> {
        match id.side == LARGE.side() {
            true => show_as::<Txn>(value),
            false => show_as::<Alert>(value),
        }
    }
}

/// The countries merchants are in.
pub const COUNTRIES: [&str; 12] = ["PT", "ES", "FR", "DE", "IT", "NL", "BE", "IE", "GB", "US", "BR", "JP"];

/// The input generator: card `card-N` for each of the workload's keys, each with a home
/// country; a transaction is at home but for `abroad_per_mille` in a thousand, in a country
/// drawn uniformly. Amounts run from 1.00 to 200.00, but for 15 in a thousand, from 1,500.00
/// to 5,000.00.
pub struct Cards {
    pub abroad_per_mille: u32,
}

impl Draw for Cards {
    fn draw(&mut self, d: &mut Drawing<'_>) -> (KeyBytes, Blob) {
        use rand::Rng;
        let n = d.owned_key();
        let card = format!("card-{n}");
        let home = COUNTRIES[(n % COUNTRIES.len() as u64) as usize];
        let abroad = d.rng.gen_range(0..1000) < self.abroad_per_mille;
        let country = if abroad { COUNTRIES[d.rng.gen_range(0..COUNTRIES.len())] } else { home };
        let amount_cents = match d.rng.gen_range(0..1000) < 15 {
            true => d.rng.gen_range(LARGE_CENTS..=500_000),
            false => d.rng.gen_range(100..=20_000),
        };
        let txn = Txn {
            card: card.clone(),
            merchant_country: country.into(),
            amount_cents,
            at_ms: d.event_time_ms,
        };
        (KeyBytes::of(&card), encode(&txn))
    }
}

#[cfg(test)]
mod tests {
    use faultline::Harness;

    use super::*;

    fn txn(card: &str, country: &str, minute: u64) -> (String, Txn, u64) {
        let at_ms = minute * 60_000;
        let t = Txn { card: card.into(), merchant_country: country.into(), amount_cents: 1_999, at_ms };
        (card.to_string(), t, at_ms)
    }

    fn run(h: &mut Harness<ThreeCountries>, txns: &[(String, Txn, u64)]) {
        for (card, t, at) in txns {
            h.push(card, t, *at);
        }
    }

    #[test]
    fn three_countries_within_ten_minutes_raise_an_alert() {
        let mut h = Harness::new(ThreeCountries::default());
        run(&mut h, &[txn("c1", "PT", 0), txn("c1", "ES", 4), txn("c2", "FR", 5), txn("c1", "FR", 9)]);
        let alerts = h.outputs();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].1.countries, ["ES", "FR", "PT"]);
        assert_eq!((alerts[0].1.at_ms, alerts[0].1.number), (9 * 60_000, 1));
    }

    #[test]
    fn large_transactions_go_to_their_side_output() {
        let mut h = Harness::new(ThreeCountries::default());
        let (card, mut big, at) = txn("c1", "PT", 1);
        big.amount_cents = LARGE_CENTS;
        run(&mut h, &[txn("c1", "PT", 0), (card, big.clone(), at)]);
        assert_eq!(h.side(&LARGE), [("c1".to_string(), big)]);
        assert!(h.outputs().is_empty());
    }

    #[test]
    fn countries_spread_over_more_than_ten_minutes_do_not() {
        let mut h = Harness::new(ThreeCountries::default());
        run(&mut h, &[txn("c1", "PT", 0), txn("c1", "ES", 6), txn("c1", "FR", 10)]);
        assert!(h.outputs().is_empty(), "PT at 0 is ten minutes before FR at 10: out of the window");
        run(&mut h, &[txn("c1", "DE", 12)]);
        assert_eq!(h.outputs().len(), 1, "ES, FR, DE within six minutes");
    }

    #[test]
    fn timers_expire_old_countries_and_the_alert_count_survives_a_restore() {
        let mut h = Harness::new(ThreeCountries::default());
        run(&mut h, &[txn("c1", "PT", 0), txn("c1", "ES", 1), txn("c1", "FR", 2)]);
        h.advance_watermark(11 * 60_000);
        assert_eq!(h.state().entries.len(), 2, "PT and ES expired; FR stays, with the alert count");
        let mut h = Harness::restore(ThreeCountries::default(), &h.snapshot());
        run(&mut h, &[txn("c1", "PT", 11), txn("c1", "DE", 11), txn("c1", "IT", 12)]);
        let numbers: Vec<u64> = h.outputs().iter().map(|(_, a)| a.number).collect();
        assert_eq!(numbers, [2, 3], "numbered on from the restored count");
        h.finish();
        assert_eq!(h.state().entries.len(), 1, "only the alert count is left");
    }
}
