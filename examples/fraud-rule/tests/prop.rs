//! The property tests a user writes: the rule holds under drawn inputs, faults and settings.
//! `PROPTEST_CASES` runs more cases, `FAULTLINE_SEED` other ones.

use faultline::prop::proptest::prelude::*;
use fraud_rule::{Txn, COUNTRIES, TEN_MINUTES_MS};

#[test]
fn fraud_rule_is_exactly_once() {
    let config = faultline::prop::Config::default().cases(64).replay_with("cargo run -p fraud-rule --");
    faultline::prop::check(fraud_rule::pipeline(), config);
}

/// A handful of cards spending in a handful of countries, a minute or less apart, with a
/// transaction now and then that arrives up to a window late: the rule's edge cases (three
/// countries just inside or just outside ten minutes, expiry, late records), drawn by the
/// user's own strategy rather than the crate's generator.
fn spending() -> impl Strategy<Value = Vec<Txn>> {
    let txn = (0..4u8, 0..4usize, 1..=200_000u64, 0..=60_000u64, prop::bool::weighted(0.05));
    prop::collection::vec(txn, 1..300).prop_map(|draws| {
        let mut now = 0;
        let txns = draws.into_iter().map(|(card, country, amount_cents, gap_ms, late)| {
            now += gap_ms;
            let at_ms = if late { now.saturating_sub(TEN_MINUTES_MS) } else { now };
            let (card, merchant_country) = (format!("card-{card}"), COUNTRIES[country].to_string());
            Txn { card, merchant_country, amount_cents, at_ms }
        });
        txns.collect()
    })
}

#[test]
fn fraud_rule_is_exactly_once_on_its_edge_cases() {
    let subject = fraud_rule::pipeline().input(spending(), |t: &Txn| (t.card.clone(), t.at_ms));
    let config = faultline::prop::Config::default().cases(64).replay_with("cargo run -p fraud-rule --");
    faultline::prop::check(subject, config);
}
