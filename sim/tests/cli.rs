//! The `faultline` executable as CI and shells run it: shards as separate processes joined by
//! `merge`, JUnit XML, the JSON Schema of every JSON output, and shell completions.
//!
//! These run the real binary (cargo builds it for this crate's tests), from the repository's
//! root so that scenario paths read as a user types them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use faultline_reports::SwarmRecord;

fn faultline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faultline"));
    command.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).env("NO_COLOR", "1");
    command
}

fn run(args: &[&str]) -> Output {
    faultline().args(args).output().expect("faultline runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-cli-{name}-{}", std::process::id()));
    _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The seeds of the shard test: a plain sink under exactly-once with crashes fails many
/// seeds, in several groups, so a merge that dropped or doubled a failure would show.
const SHARDED: [&str; 11] = [
    "scenarios/processor-crash.toml",
    "--seeds",
    "400",
    "--from",
    "7",
    "--jobs",
    "1",
    "--set",
    "workload.events=2000",
    "--set",
    "engine.sink=plain",
];

/// Four shard processes, run at once, cover every seed exactly once, and `merge` gives the
/// unsharded sweep's counts, failures and failure groups.
#[test]
fn four_shard_processes_merge_into_the_unsharded_sweep() {
    let dir = scratch("shards");
    let children: Vec<_> = (1..=4)
        .map(|k| {
            let shard = format!("{k}/4");
            let args = [&["swarm", "--shard", &shard, "--json"], &SHARDED[..]].concat();
            faultline().args(args).stdout(Stdio::piped()).spawn().expect("a shard process")
        })
        .collect();
    let mut files = Vec::new();
    for (k, child) in (1..=4).zip(children) {
        let output = child.wait_with_output().expect("the shard process ends");
        let file = dir.join(format!("shard-{k}.json"));
        std::fs::write(&file, &output.stdout).unwrap();
        files.push(file);
    }
    let shards: Vec<SwarmRecord> =
        files.iter().map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()).collect();
    assert_eq!(shards.iter().map(|s| s.seeds).collect::<Vec<_>>(), vec![100; 4]);
    for (k, s) in (1..=4).zip(&shards) {
        assert!(s.failed.iter().all(|f| (f.seed - 7) % 4 == k - 1), "shard {k}: {:?}", s.failed);
    }
    let file_args: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let merged = run(&[&["merge", "--json"], &file_args[..]].concat());
    assert_eq!(merged.status.code(), Some(1), "the merged sweep fails as the whole one does");
    let merged: SwarmRecord = serde_json::from_str(stdout(&merged).trim()).unwrap();
    let whole: SwarmRecord =
        serde_json::from_str(stdout(&run(&[&["swarm", "--json"], &SHARDED[..]].concat())).trim()).unwrap();
    assert_eq!((merged.seeds, merged.passed), (whole.seeds, whole.passed));
    assert_eq!(merged.failed, whole.failed);
    assert_eq!(merged.failure_groups, whole.failure_groups);
    assert_eq!(merged.effective_faults, whole.effective_faults);
    assert!(merged.missing_shards.is_empty() && merged.shard.is_none());
    assert!(whole.failure_groups.len() >= 2, "{:?}", whole.failure_groups);
    _ = std::fs::remove_dir_all(&dir);
}

/// `--fail-fast` halts a sweep at its first failing seed: the seeds already running finish,
/// the rest of the range and the later scenarios are not run.
#[test]
fn fail_fast_stops_at_the_first_failing_seed() {
    let output = run(&[
        "swarm",
        "--fail-fast",
        "--json",
        "scenarios/processor-crash.toml",
        "scenarios/quickstart.toml",
        "--seeds",
        "400",
        "--from",
        "7",
        "--jobs",
        "2",
        "--set",
        "workload.events=2000",
        "--set",
        "engine.sink=plain",
    ]);
    assert_eq!(output.status.code(), Some(1), "a plain sink under exactly-once fails some seeds");
    let sweep: faultline_reports::SweepRecord = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(sweep.scenarios.len(), 1, "the later scenario is not swept: {sweep:?}");
    let swept = &sweep.scenarios[0];
    assert!(!swept.failed.is_empty() && swept.seeds < 400, "{swept:?}");
    let first = swept.failed[0].seed;
    assert!(
        swept.seeds <= first - 7 + 2,
        "at most the other job's seed ran past the first failure: {swept:?}"
    );
}

/// `--junit` on `run` and `swarm` writes JUnit XML: a suite per scenario, a case per seed, a
/// failure with the broken invariants and the replay command.
#[test]
fn junit_has_a_test_case_per_seed_and_a_failure_per_failing_seed() {
    let dir = scratch("junit");
    let sweep = dir.join("sweep.xml");
    let args = ["swarm", "--seeds", "6", "--from", "7", "--jobs", "2", "--junit", sweep.to_str().unwrap()];
    let output = run(&[&args[..], &SHARDED[..1], &SHARDED[7..]].concat());
    let text = std::fs::read_to_string(&sweep).expect("the JUnit file");
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let suites: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testsuite")).collect();
    assert_eq!(suites.len(), 1);
    assert_eq!(suites[0].attribute("name"), Some("processor-crash"));
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 6, "{text}");
    let names: Vec<&str> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    assert_eq!(names, ["seed 7", "seed 8", "seed 9", "seed 10", "seed 11", "seed 12"]);
    let failures: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("failure")).collect();
    assert_eq!(output.status.code(), Some(1), "a plain sink under exactly-once fails some seeds");
    assert!(!failures.is_empty(), "{text}");
    for f in &failures {
        assert!(f.text().unwrap_or_default().contains("replay: faultline run"), "{text}");
        assert!(!f.attribute("type").unwrap_or_default().is_empty(), "{text}");
    }
    let one = dir.join("run.xml");
    let output = run(&["run", "scenarios/quickstart.toml", "--seed", "2", "--junit", one.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let text = std::fs::read_to_string(&one).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("testcase")).count(), 1);
    assert_eq!(doc.root_element().attribute("failures"), Some("0"));
    _ = std::fs::remove_dir_all(&dir);
}

/// The published schema of `name` (`schema/NAME.schema.json`), compiled.
fn validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../schema/{name}.schema.json"));
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `json` holds `schema`, and says which version of it.
fn holds(schema: &str, json: &str) {
    let value: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{schema}: not JSON ({e}): {json}"));
    let errors: Vec<String> = validator(schema).iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{schema}: {errors:?}");
    assert_eq!(value["schema_version"], faultline_reports::SCHEMA_VERSION, "{schema}");
}

/// Every JSON output the CLI prints or saves holds its published schema.
#[test]
fn every_json_output_holds_its_published_schema() {
    let dir = scratch("schema");
    let d = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let report = d("report");
    let out = run(&["run", "scenarios/processor-crash.toml", "--seed", "3", "--json", "--report", &report]);
    holds("run", &stdout(&out));
    holds("run", &std::fs::read_to_string(dir.join("report/report.json")).unwrap());
    let swarm = d("swarm");
    let args = ["--seeds", "3", "--jobs", "2", "--json", "--set", "engine.sink=plain"];
    let out = run(&[&["swarm", "scenarios/processor-crash.toml", "--report", &swarm], &args[..]].concat());
    holds("swarm", &stdout(&out));
    holds("swarm-report", &std::fs::read_to_string(dir.join("swarm/swarm.json")).unwrap());
    let file = dir.join("shard.json");
    std::fs::write(&file, &out.stdout).unwrap();
    holds("swarm", &stdout(&run(&["merge", "--json", file.to_str().unwrap()])));
    let out =
        run(&["swarm", "scenarios/quickstart.toml", "scenarios/windows.toml", "--seeds", "1", "--json"]);
    holds("sweep", &stdout(&out));
    let compare = d("compare");
    let vary = "--vary=engine.semantics=at-least-once,exactly-once";
    let out =
        run(&["compare", "scenarios/quickstart.toml", "--seeds", "2", "--json", vary, "--out", &compare]);
    holds("compare", &stdout(&out));
    holds("compare", &std::fs::read_to_string(dir.join("compare/compare.json")).unwrap());
    let out = run(&["bench", "--events", "2000", "--batch", "64", "--repeats", "1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    holds("bench", &stdout(&out));
    let out = run(&["bench", "--pipeline", "nexmark-q1", "--events", "2000", "--repeats", "1", "--json"]);
    holds("pipeline-bench", &stdout(&out));
    let plain = ["--set", "engine.sink=plain", "--limit", "1", "--json"];
    let out = run(&[&["explain", "scenarios/processor-crash.toml", "--seed", "3"], &plain[..]].concat());
    holds("explain", &stdout(&out));
    _ = std::fs::remove_dir_all(&dir);
}

/// A planted wrong field is caught: the schema test can fail.
#[test]
fn a_record_with_a_wrong_field_breaks_its_schema() {
    let out = run(&["run", "scenarios/quickstart.toml", "--seed", "1", "--json"]);
    let mut value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    value["seed"] = serde_json::json!("one");
    assert!(!validator("run").is_valid(&value), "a string seed must break the run schema");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        assert!(script.contains("swarm") && script.contains("shard"), "{shell}: {script}");
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}

/// `--trace` writes every trace event as a JSON line, in simulated-time order, and keeping the
/// trace changes nothing of the run: the same trace hash, the same verdict.
#[test]
fn trace_writes_every_event_as_a_json_line_and_changes_nothing() {
    let dir = scratch("trace");
    let file = dir.join("trace.jsonl");
    let args = ["run", "scenarios/processor-crash.toml", "--seed", "3", "--json"];
    let plain: faultline_reports::RunRecord = serde_json::from_str(stdout(&run(&args)).trim()).unwrap();
    let out = run(&[&args[..], &["--trace", file.to_str().unwrap()]].concat());
    let traced: faultline_reports::RunRecord = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!((&traced.trace_hash, &traced.verdict), (&plain.trace_hash, &plain.verdict));
    let lines: Vec<faultline_reports::TraceLine> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() > 100, "{} events", lines.len());
    assert!(lines.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "in simulated-time order");
    assert_eq!(lines[0].event, "boot");
    let dead = lines.iter().find(|l| l.event == "worker-dead").expect("the crash is in the trace");
    assert_eq!(dead.node, "manager");
    assert!(dead.fields.contains_key("worker"), "{dead:?}");
    _ = std::fs::remove_dir_all(&dir);
}

/// `explain` tells each of the first five lost outputs of an at-most-once run from its input:
/// the input's place in the log, the epoch that read it, the fault that ended that epoch, and
/// why no later epoch read it again.
#[test]
fn explain_tells_why_each_lost_output_was_not_replayed() {
    let at_most_once = ["--set", "engine.semantics=at-most-once"];
    let out =
        run(&[&["explain", "scenarios/processor-crash.toml", "--seed", "3"], &at_most_once[..]].concat());
    assert_eq!(out.status.code(), Some(0), "at-most-once allows losses");
    let text = stdout(&out);
    let stories: Vec<&str> = text.split("\nkey ").skip(1).collect();
    assert_eq!(stories.len(), 5, "the first five lost outputs: {text}");
    for story in stories {
        assert!(story.contains(" — lost\n"), "{story}");
        assert!(
            story.contains("sent input producer ") && story.contains("appended it at offset "),
            "{story}"
        );
        assert!(story.contains("the log acknowledged producer "), "{story}");
        assert!(story.contains("read offset ") && story.contains(" in epoch 1; keyed subtask "), "{story}");
        assert!(story.contains("fault: processor crash of worker-"), "{story}");
        assert!(story.contains("the manager began recovery: epoch 2 restores checkpoint "), "{story}");
        assert!(story.contains("why: Epoch 1 read the input") && story.contains("past offset"), "{story}");
        assert!(story.contains("at-most-once commits a source's offsets as it reads them"), "{story}");
    }
}

/// Under a plain sink, `explain` names both commits of a duplicate and their epochs, and the
/// epoch that read its input again; `--output` tells one output, and an output that is not
/// offending is a usage error.
#[test]
fn explain_names_both_commits_of_a_duplicate() {
    let base = ["explain", "scenarios/processor-crash.toml", "--seed", "3", "--set", "engine.sink=plain"];
    let out = run(&[&base[..], &["--output", "key 32 · input 0/373"]].concat());
    assert_eq!(out.status.code(), Some(1), "duplicates break exactly-once");
    let text = stdout(&out);
    assert_eq!(text.matches(" — duplicate").count(), 1, "{text}");
    assert!(text.contains("key 32 · input 0/373 — duplicate"), "{text}");
    assert!(text.contains("writer 0 of epoch 1 wrote it to the sink, visible at once"), "{text}");
    assert!(
        text.contains(
            "why: Committed 2 times: by writer 0 of epoch 1 at 193 ms; by writer 0 of epoch 5 at 763 ms."
        ),
        "{text}"
    );
    assert!(text.contains("Epoch 5 resumed partition 2 at offset 256, before offset 373"), "{text}");
    let out = run(&[&base[..], &["--output", "key 0 · input 0/999999"]].concat());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key 0 · input 0/999999 is not lost, duplicated or wrong"), "{err}");
    let out = run(&[&base[..], &["--output", "window 4"]].concat());
    assert_eq!(out.status.code(), Some(2), "a malformed id is a usage error");
}

/// `shrink` cuts seed 1 of all-faults under a plain sink — eight faults over 20,000 events, and
/// a duplicate — to at most 3 faults within 300 runs. The file it writes replays to the same
/// invariant, and its JSON holds the schema. A seed that passes has nothing to shrink.
#[test]
fn shrink_writes_a_minimal_scenario_that_fails_the_same_way() {
    let dir = scratch("shrink");
    let file = dir.join("min.toml");
    let file = file.to_str().unwrap();
    let args = ["shrink", "scenarios/all-faults.toml", "--seed", "1", "--set", "engine.sink=plain"];
    let out = run(&[&args[..], &["--out", file, "--json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    holds("shrink", &stdout(&out));
    let shrunk: faultline_reports::ShrinkRecord = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!((shrunk.invariant.as_str(), shrunk.faults_before), ("delivery-duplicate", 8));
    assert!(shrunk.faults_after <= 3 && shrunk.runs <= 300, "{shrunk:?}");
    assert!(shrunk.events_after < shrunk.events_before, "{shrunk:?}");
    assert_eq!(shrunk.replay, format!("faultline run {file} --seed 1"));
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("[[faults]]") || shrunk.faults_after == 0, "{text}");
    assert!(!text.contains("[faults.random]"), "{text}");
    let replay = run(&["run", file, "--seed", "1", "--json"]);
    assert_eq!(replay.status.code(), Some(1));
    let record: faultline_reports::RunRecord = serde_json::from_str(stdout(&replay).trim()).unwrap();
    assert!(record.violations.iter().any(|v| v.invariant == "delivery-duplicate"), "{:?}", record.violations);
    let passing = run(&["shrink", "scenarios/quickstart.toml", "--seed", "1", "--out", file]);
    assert_eq!(passing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&passing.stderr).contains("passes: there is nothing to shrink"));
    _ = std::fs::remove_dir_all(&dir);
}
