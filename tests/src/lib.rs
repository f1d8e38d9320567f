//! Helpers for faultline's integration tests: drive the CLI as a user would and read what it
//! printed. Tests go through these rather than poking at internals.
//!
//! Paths are relative to this crate's directory, which is where cargo runs its tests.

use faultline_reports::RunRecord;

/// The path of a scenario in the repository's `scenarios/` directory.
pub fn scenario(name: &str) -> String {
    format!("../scenarios/{name}.toml")
}

/// What one CLI invocation produced.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `faultline ARGS...` in-process.
pub fn faultline(args: &[&str]) -> Outcome {
    let mut argv = vec!["faultline".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = faultline_sim::cli::main_with(&argv, &mut out, &mut err);
    Outcome {
        code,
        stdout: String::from_utf8(out).expect("utf-8 stdout"),
        stderr: String::from_utf8(err).expect("utf-8 stderr"),
    }
}

/// Runs one seed with `--json` and parses the record.
pub fn run_json(scenario: &str, seed: u64, sets: &[&str]) -> (i32, RunRecord) {
    let seed = seed.to_string();
    let mut args = vec!["run", scenario, "--seed", &seed, "--json"];
    for set in sets {
        args.extend(["--set", set]);
    }
    let outcome = faultline(&args);
    let record = serde_json::from_str(outcome.stdout.trim())
        .unwrap_or_else(|e| panic!("--json printed no run record ({e}): {outcome:?}"));
    (outcome.code, record)
}

/// What a check expects of a run.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Exit 0, verdict pass, committed == expected > 0, nothing lost, duplicated or wrong.
    ExactPass,
    /// Exit 0, verdict pass: what the semantics allows (losses under at-most-once, duplicates
    /// under at-least-once), nothing else; some output committed.
    Pass,
}

/// Runs `scenario` with `seed` and asserts `expect`; returns the record for further checks.
pub fn check(scenario: &str, seed: u64, expect: Expect) -> RunRecord {
    let (code, record) = run_json(scenario, seed, &[]);
    match expect {
        Expect::ExactPass => {
            assert_eq!(code, 0, "seed {seed}: {:?}", record.violations);
            assert!(record.passed());
            let o = &record.output;
            assert!(o.expected > 0, "seed {seed}: nothing expected, the run checks nothing");
            assert_eq!(o.committed, o.expected, "seed {seed}");
            assert_eq!((o.lost, o.duplicates, o.wrong), (0, 0, 0), "seed {seed}");
        }
        Expect::Pass => {
            assert_eq!(code, 0, "seed {seed}: {:?}", record.violations);
            assert!(record.passed() && record.output.committed > 0, "seed {seed}: {:?}", record.output);
        }
    }
    record
}
