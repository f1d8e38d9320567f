//! Swarm testing: a scenario's configuration drawn per seed (Groce et al., "Swarm Testing",
//! ISSTA 2012; FoundationDB's and TigerBeetle's simulators do the same).
//!
//! A scenario's optional `[swarm]` table maps a dotted field path to a list of choices:
//! `"engine.checkpoint_interval_ms" = [20, 100, 500]`. A choice may also be an inline table of
//! paths set together, under a name of the user's: `length = [{ "workload.rate_per_s" =
//! 20000, "faults.random.window_ms" = [100, 1000] }, …]`.
//!
//! # The draw
//! 1. Each seed seeds its own generator (apart from the workload's and the faults').
//! 2. It draws one choice per entry, in the table's order, and sets it on the scenario as
//!    loaded; entries a `--set` overrode are not drawn (the override wins).
//! 3. A combination validation refuses is drawn again, up to [`ATTEMPTS`] times.
//!
//! `run --seed N` draws exactly as `swarm` did, so the replay command needs nothing more. The
//! record lists the values drawn.
//!
//! It does not run anything; the runner calls [`for_seed`] first.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use faultline_engine::workload::mix64;

use crate::scenario::{self, Loaded, Scenario};

/// Draws per seed before giving up on finding a combination validation accepts. About one
/// draw in nine of `scenarios/swarm.toml` is accepted, so 64 left 7 seeds in 10,000 without a
/// configuration; a seed's first accepted draw is the same whatever the bound.
pub const ATTEMPTS: u32 = 1024;

const SALT: u64 = 0x7377_6172_6d5f_6472;

/// The `[swarm]` table: entries in name order, each with its choices.
pub type Swarm = BTreeMap<String, Vec<toml::Value>>;

/// One drawn configuration: the scenario to run, and the values drawn, by entry.
pub struct Drawn {
    pub loaded: Loaded,
    pub values: BTreeMap<String, String>,
}

/// The configuration seed `seed` runs: the scenario as loaded when it has no `[swarm]`
/// table, else one draw from it that validation accepts. `Err` says why none was found.
pub fn for_seed(loaded: &Loaded, seed: u64) -> Result<Drawn, String> {
    let swarm = &loaded.scenario.swarm;
    if swarm.is_empty() {
        return Ok(Drawn { loaded: loaded.clone(), values: BTreeMap::new() });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(mix64(seed ^ SALT));
    let mut refused = String::new();
    for _ in 0..ATTEMPTS {
        let picks: Vec<(&String, &toml::Value)> = swarm
            .iter()
            .filter(|(name, choices)| !overridden(loaded, name, choices))
            .map(|(name, choices)| (name, &choices[rng.gen_range(0..choices.len())]))
            .collect();
        let scenario = apply(&loaded.scenario, &picks)?;
        match scenario::validate(&scenario, &loaded.registry) {
            Ok(()) => {
                let values = picks.iter().map(|(name, v)| (name.to_string(), shown(v))).collect();
                return Ok(Drawn { loaded: Loaded { scenario, ..loaded.clone() }, values });
            }
            Err((field, problem)) => refused = format!("field `{field}`: {problem}"),
        }
    }
    Err(format!("no draw of [swarm] in {ATTEMPTS} attempts was valid; the last: {refused}"))
}

/// Checks a `[swarm]` table against the scenario: every entry has choices, and each choice
/// sets fields the scenario has, with values of their types. Combinations are checked per
/// seed, when drawn.
pub fn check(s: &Scenario) -> Result<(), (String, String)> {
    for (name, choices) in &s.swarm {
        let field = format!("swarm.{name}");
        if choices.is_empty() {
            return Err((field, "list at least one choice".into()));
        }
        for choice in choices {
            apply(s, &[(name, choice)]).map_err(|e| (field.clone(), e))?;
        }
    }
    Ok(())
}

/// Whether a `--set` names a path this entry would draw.
fn overridden(loaded: &Loaded, name: &str, choices: &[toml::Value]) -> bool {
    let set_keys: Vec<&str> = loaded.sets.iter().filter_map(|s| s.split_once('=').map(|(k, _)| k)).collect();
    paths(name, &choices[0]).iter().any(|p| set_keys.contains(&p.as_str()))
}

/// The paths a choice sets: the entry's name, or a group's keys.
fn paths(name: &str, choice: &toml::Value) -> Vec<String> {
    match choice {
        toml::Value::Table(group) => group.keys().cloned().collect(),
        _ => vec![name.to_string()],
    }
}

/// The scenario with each pick set.
fn apply(base: &Scenario, picks: &[(&String, &toml::Value)]) -> Result<Scenario, String> {
    let mut table =
        toml::Table::try_from(base).map_err(|e| format!("the scenario does not serialise: {e}"))?;
    for &(name, choice) in picks {
        let assignments: Vec<(String, toml::Value)> = match choice {
            toml::Value::Table(group) => group.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            value => vec![(name.clone(), value.clone())],
        };
        for (path, value) in assignments {
            if path.starts_with("swarm.") || path == "swarm" {
                return Err(format!("`{path}`: a draw cannot set the [swarm] table"));
            }
            scenario::set_path(&mut table, &path, Some(value)).map_err(|e| format!("`{path}`: {e}"))?;
        }
    }
    Scenario::deserialize(toml::Value::Table(table)).map_err(|e| e.message().to_string())
}

fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(extra: &str) -> Loaded {
        let text = std::fs::read_to_string("../scenarios/quickstart.toml").unwrap() + extra;
        scenario::load_str("quickstart+swarm", &text, &[], std::sync::Arc::new(crate::builtins::registry()))
            .unwrap()
    }

    #[test]
    fn a_scenario_without_a_swarm_table_runs_as_loaded() {
        let l = loaded("");
        let drawn = for_seed(&l, 7).unwrap();
        assert!(drawn.values.is_empty());
        assert_eq!(drawn.loaded.scenario, l.scenario);
    }

    #[test]
    fn each_seed_draws_the_same_choices_every_time_and_seeds_differ() {
        let l = loaded("\n[swarm]\n\"engine.checkpoint_interval_ms\" = [20, 100, 500]\n");
        let draws: Vec<String> = (0..40)
            .map(|s| for_seed(&l, s).unwrap().values["engine.checkpoint_interval_ms"].clone())
            .collect();
        let again: Vec<String> = (0..40)
            .map(|s| for_seed(&l, s).unwrap().values["engine.checkpoint_interval_ms"].clone())
            .collect();
        assert_eq!(draws, again);
        for choice in ["20", "100", "500"] {
            assert!(draws.iter().any(|d| d == choice), "{choice} never drawn in 40 seeds");
        }
        let drawn = for_seed(&l, 3).unwrap();
        let interval = drawn.loaded.scenario.engine.checkpoint_interval_ms.to_string();
        assert_eq!(drawn.values["engine.checkpoint_interval_ms"], interval);
    }

    #[test]
    fn a_group_sets_its_fields_together() {
        let l = loaded("\n[swarm]\nsize = [{ \"workload.events\" = 3000, \"workload.keys\" = 30 }]\n");
        let drawn = for_seed(&l, 1).unwrap();
        assert_eq!((drawn.loaded.scenario.workload.events, drawn.loaded.scenario.workload.keys), (3000, 30));
    }

    #[test]
    fn refused_combinations_are_drawn_again() {
        // Parallelism above the workers is refused: only the draw that fits may come out.
        let l = loaded("\n[swarm]\n\"engine.parallelism\" = [1, 64]\n");
        for seed in 0..20 {
            assert_eq!(for_seed(&l, seed).unwrap().loaded.scenario.engine.parallelism, 1);
        }
    }

    #[test]
    fn a_set_wins_over_a_draw() {
        let text = std::fs::read_to_string("../scenarios/quickstart.toml").unwrap()
            + "\n[swarm]\n\"engine.checkpoint_interval_ms\" = [20, 500]\n";
        let sets = ["engine.checkpoint_interval_ms=77".to_string()];
        let registry = std::sync::Arc::new(crate::builtins::registry());
        let l = scenario::load_str("q", &text, &sets, registry).unwrap();
        let drawn = for_seed(&l, 5).unwrap();
        assert!(drawn.values.is_empty());
        assert_eq!(drawn.loaded.scenario.engine.checkpoint_interval_ms, 77);
    }
}
