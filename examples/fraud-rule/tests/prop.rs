//! The property test a user writes: the rule holds under drawn inputs, faults and settings.
//! `PROPTEST_CASES` runs more cases, `FAULTLINE_SEED` other ones.

#[test]
fn fraud_rule_is_exactly_once() {
    let config = faultline::prop::Config::default().cases(64).replay_with("cargo run -p fraud-rule --");
    faultline::prop::check(fraud_rule::pipeline(), config);
}
