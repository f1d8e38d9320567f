//! Bad input gets a clear error and exit code 2, naming the file, line, column and field.
//! Each file in `fixtures/bad/` holds one mistake; the messages are snapshots, reviewed like code.

use faultline_tests::{faultline, scenario};

#[test]
fn bad_scenario_files_exit_2_with_located_messages() {
    insta::glob!("../fixtures/bad", "*.toml", |path| {
        let relative = format!("fixtures/bad/{}", path.file_name().unwrap().to_string_lossy());
        let outcome = faultline(&["run", &relative, "--seed", "1"]);
        assert_eq!(outcome.code, 2, "{relative}: {outcome:?}");
        assert!(outcome.stdout.is_empty(), "{relative}: nothing on stdout");
        insta::assert_snapshot!(outcome.stderr);
    });
}

#[test]
fn unknown_field_names_field_and_line() {
    let outcome = faultline(&["run", "fixtures/bad/unknown-field.toml"]);
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.contains("fixtures/bad/unknown-field.toml:7:1"), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("`evnts`"), "{}", outcome.stderr);
}

#[test]
fn missing_file_exits_2() {
    let outcome = faultline(&["run", "fixtures/no-such-scenario.toml"]);
    assert_eq!(outcome.code, 2);
    insta::assert_snapshot!(outcome.stderr);
}

#[test]
fn bad_overrides_exit_2_naming_the_set() {
    let cases = [
        ("engine.paralelism=2", "unknown field"),
        ("engine.parallelism=9", "engine.parallelism"),
        ("workload.events=ten", "invalid type"),
        ("engine.semantics=sometimes", "unknown variant"),
        ("noequals", "expected key=value"),
    ];
    for (set, needle) in cases {
        let outcome = faultline(&["run", &scenario("quickstart"), "--set", set]);
        assert_eq!(outcome.code, 2, "{set}: {outcome:?}");
        assert!(outcome.stderr.contains(&format!("--set {set}")), "{set}: {}", outcome.stderr);
        assert!(outcome.stderr.contains(needle), "{set}: {}", outcome.stderr);
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(faultline(&["run"]).code, 2);
    assert_eq!(faultline(&["frobnicate"]).code, 2);
    assert_eq!(faultline(&["swarm", &scenario("quickstart")]).code, 2, "--seeds is required");
    assert_eq!(faultline(&["run", &scenario("quickstart"), "--seed", "-1"]).code, 2);
}
