//! Shrinking a failure: a failing run cut down to the few faults, events and nodes that still
//! make it fail the same way.
//!
//! The search is a pure function of its oracle. [`shrink`] proposes candidate scenarios and a
//! test the caller supplies says whether each still fails: the CLI's and `prop`'s run the
//! simulation and look for the same invariant; the unit tests below use a formula. A candidate
//! that validation refuses, or that was tried before, costs no run.
//!
//! # Passes
//! They repeat, in this order, until a round changes nothing or the run budget is spent.
//! 1. **Faults**: delta debugging (Zeller and Hildebrandt, "Simplifying and Isolating
//!    Failure-Inducing Input", TSE 2002) over the fault list, after trying none at all. A crash
//!    without a restart of its own moves together with the next `restart` of its node.
//! 2. **Input and cluster**: events, keys, partitions, producers, disorder and late events;
//!    workers, parallelism and brokers. Each goes to the least value that still fails, by
//!    bisection to within a sixteenth. Input given event by event (`crate::given`) is cut to
//!    a prefix of its events; its keys and event times are its own.
//! 3. **Each fault**: no longer waiting for a checkpoint, then earlier, shorter, and restarted
//!    sooner.
//!
//! [`materialise`] first turns a seed's run into a scenario of explicit faults, and
//! [`to_toml`] writes the result as a scenario file.

use faultline_engine::cluster::ClusterSpec;

use crate::fault_plan::FaultPlan;
use crate::given::Given;
use crate::scenario::{Fault, FaultAction, Scenario};

/// Rounds of the three passes at most; a round that changes nothing ends the search sooner.
const ROUNDS: u32 = 4;

/// Bisection stops once the interval is within this fraction of the failing value.
const PRECISION: u64 = 16;

/// One kept step of a search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The run (counted from 1 within the search) that showed the candidate still fails.
    pub run: u32,
    /// What changed, e.g. `workload.events 20000 → 2500`.
    pub what: String,
    /// Faults and input events after the step.
    pub faults: usize,
    pub events: u64,
}

/// Where a search ended.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The least failing scenario found.
    pub scenario: Scenario,
    pub steps: Vec<Step>,
    /// Runs the search spent (not counting the ones that made its start).
    pub runs: u32,
    /// The budget ran out before a round changed nothing: a further search may shrink more.
    pub exhausted: bool,
}

/// What a search may ask of its caller.
pub struct Oracle<'a> {
    /// Whether validation accepts a candidate (a refused one is not run).
    pub valid: &'a dyn Fn(&Scenario) -> bool,
    /// Runs a candidate: whether it still fails the same way.
    pub fails: &'a mut dyn FnMut(&Scenario) -> bool,
    /// Hears of each kept step as it is taken.
    pub on_step: &'a mut dyn FnMut(&Step),
}

/// Shrinks `start`, a scenario with explicit faults that fails, within `max_runs` runs.
pub fn shrink(start: Scenario, max_runs: u32, oracle: Oracle<'_>) -> Shrunk {
    assert!(start.faults.random.is_none(), "shrinking needs explicit faults: materialise first");
    assert!(start.swarm.is_empty(), "shrinking needs the seed's draw applied: materialise first");
    let mut search = Search { best: start, runs: 0, max_runs, steps: Vec::new(), tried: Vec::new(), oracle };
    let mut settled = false;
    for _ in 0..ROUNDS {
        let before = search.best.clone();
        search.drop_faults();
        search.lower_input();
        search.simplify_faults();
        if search.spent() {
            break;
        }
        if search.best == before {
            settled = true;
            break;
        }
    }
    assert!(search.runs <= max_runs, "the search kept to its budget");
    let exhausted = !settled && search.spent();
    Shrunk { scenario: search.best, steps: search.steps, runs: search.runs, exhausted }
}

struct Search<'a> {
    best: Scenario,
    runs: u32,
    max_runs: u32,
    steps: Vec<Step>,
    /// Every candidate run so far: none is run twice.
    tried: Vec<Scenario>,
    oracle: Oracle<'a>,
}

/// Reads one number of a scenario (`None`: the scenario has no such number).
type Get = dyn Fn(&Scenario) -> Option<u64>;
/// Sets that number, with whatever must follow it.
type Set = dyn Fn(&mut Scenario, u64);

impl Search<'_> {
    fn spent(&self) -> bool {
        self.runs >= self.max_runs
    }

    /// Runs `candidate` unless it is refused, known or over budget; keeps it if it still fails.
    fn attempt(&mut self, candidate: Scenario, what: impl FnOnce() -> String) -> bool {
        if self.spent() || candidate == self.best || self.tried.contains(&candidate) {
            return false;
        }
        if !(self.oracle.valid)(&candidate) {
            return false;
        }
        self.runs += 1;
        self.tried.push(candidate.clone());
        if !(self.oracle.fails)(&candidate) {
            return false;
        }
        let step = Step {
            run: self.runs,
            what: what(),
            faults: candidate.faults.scheduled.len(),
            events: candidate.workload.events,
        };
        (self.oracle.on_step)(&step);
        self.steps.push(step);
        self.best = candidate;
        true
    }

    /// Pass 1: the fewest faults that still fail, by delta debugging over units.
    fn drop_faults(&mut self) {
        let faults = self.best.faults.scheduled.clone();
        let mut units = units(&faults);
        if units.is_empty() || self.attempt(with_faults(&self.best, &faults, &[]), || "no faults".into()) {
            return;
        }
        let mut n = 2;
        while units.len() >= 2 && !self.spent() {
            let chunks = split(&units, n);
            if let Some(kept) = self.first_failing(&faults, &chunks, units.len()) {
                (units, n) = (kept, 2);
                continue;
            }
            // With two chunks, each one's complement is the other: tried already.
            if chunks.len() > 2 {
                let complements: Vec<Vec<Vec<usize>>> =
                    (0..chunks.len()).map(|i| without(&chunks, i)).collect();
                if let Some(kept) = self.first_failing(&faults, &complements, units.len()) {
                    (units, n) = (kept, (n - 1).max(2));
                    continue;
                }
            }
            if n >= units.len() {
                break;
            }
            n = (2 * n).min(units.len());
        }
    }

    /// The first of `sets` of units whose faults alone still fail.
    fn first_failing(
        &mut self,
        faults: &[Fault],
        sets: &[Vec<Vec<usize>>],
        from: usize,
    ) -> Option<Vec<Vec<usize>>> {
        sets.iter().find_map(|set| {
            let candidate = with_faults(&self.best, faults, set);
            let kept = candidate.faults.scheduled.len();
            let before = self.best.faults.scheduled.len();
            let what = || format!("kept {kept} of {before} faults ({} of {from} groups)", set.len());
            self.attempt(candidate, what).then(|| set.clone())
        })
    }

    /// Pass 2: the input and the cluster, one number at a time.
    fn lower_input(&mut self) {
        self.lower("workload.events", 1, &|s| Some(s.workload.events), &|s, v| s.workload.events = v);
        // Given input has its own keys and event times: only its length is cut.
        self.lower("workload.keys", 1, &|s| drawn(s).then_some(s.workload.keys), &|s, v| s.workload.keys = v);
        self.lower("workload.partitions", 1, &|s| Some(s.workload.partitions.into()), &|s, v| {
            s.workload.partitions = narrow(v)
        });
        self.lower("workload.producers", 1, &|s| Some(s.workload.producers.into()), &|s, v| {
            s.workload.producers = narrow(v)
        });
        self.lower("workload.disorder_ms", 0, &|s| drawn(s).then_some(s.workload.disorder_ms), &|s, v| {
            s.workload.disorder_ms = v
        });
        let late = |s: &Scenario| drawn(s).then_some(s.workload.late_per_mille.into());
        self.lower("workload.late_per_mille", 0, &late, &|s, v| s.workload.late_per_mille = narrow(v));
        self.lower("engine.workers", 1, &|s| Some(s.engine.workers.into()), &|s, v| {
            s.engine.workers = narrow(v);
            s.engine.parallelism = s.engine.parallelism.min(s.engine.workers);
        });
        self.lower("engine.parallelism", 1, &|s| Some(s.engine.parallelism.into()), &|s, v| {
            s.engine.parallelism = narrow(v)
        });
        self.lower("engine.brokers", 1, &|s| Some(s.engine.brokers.into()), &|s, v| {
            s.engine.brokers = narrow(v);
            s.engine.replication_factor = s.engine.replication_factor.min(s.engine.brokers);
        });
    }

    /// Pass 3: each fault made as plain as it will go while the run still fails.
    fn simplify_faults(&mut self) {
        for i in 0..self.best.faults.scheduled.len() {
            if self.best.faults.scheduled[i].mid_checkpoint {
                let mut candidate = self.best.clone();
                candidate.faults.scheduled[i].mid_checkpoint = false;
                self.attempt(candidate, || format!("faults.{i} strikes without waiting for a checkpoint"));
            }
            let at = move |s: &Scenario| s.faults.scheduled.get(i).map(|f| f.at_ms);
            self.lower(&format!("faults.{i}.at_ms"), 0, &at, &move |s, v| s.faults.scheduled[i].at_ms = v);
            let duration = move |s: &Scenario| s.faults.scheduled.get(i).and_then(|f| f.duration_ms);
            self.lower(&format!("faults.{i}.duration_ms"), 1, &duration, &move |s, v| {
                s.faults.scheduled[i].duration_ms = Some(v)
            });
            let restart = move |s: &Scenario| s.faults.scheduled.get(i).and_then(|f| f.restart_after_ms);
            self.lower(&format!("faults.{i}.restart_after_ms"), 1, &restart, &move |s, v| {
                s.faults.scheduled[i].restart_after_ms = Some(v)
            });
        }
    }

    /// Bisects the number `get` reads down to the least value (at least `min`) that still fails.
    fn lower(&mut self, name: &str, min: u64, get: &Get, set: &Set) {
        let Some(mut hi) = get(&self.best) else { return };
        if hi <= min {
            return;
        }
        let start = hi;
        let with = |s: &Scenario, v: u64| {
            let mut candidate = s.clone();
            set(&mut candidate, v);
            candidate
        };
        if self.attempt(with(&self.best, min), || format!("{name} {start} → {min}")) {
            return;
        }
        let mut lo = min;
        while hi - lo > (hi / PRECISION).max(1) && !self.spent() {
            let mid = lo + (hi - lo) / 2;
            if self.attempt(with(&self.best, mid), || format!("{name} {hi} → {mid}")) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        assert!(get(&self.best).is_some_and(|v| v <= start), "{name} only ever went down");
    }
}

fn narrow(v: u64) -> u32 {
    u32::try_from(v).expect("a lowered value fits where it came from")
}

/// The fault list in units that go together: each fault alone, except a crash with no restart
/// of its own, which goes with the next `restart` of the same node.
fn units(faults: &[Fault]) -> Vec<Vec<usize>> {
    let mut taken = vec![false; faults.len()];
    let mut units = Vec::new();
    for (i, fault) in faults.iter().enumerate() {
        if taken[i] {
            continue;
        }
        taken[i] = true;
        let mut unit = vec![i];
        if fault.action == FaultAction::Crash && fault.restart_after_ms.is_none() {
            let restart = (i + 1..faults.len()).find(|&j| {
                !taken[j] && faults[j].action == FaultAction::Restart && faults[j].target == fault.target
            });
            if let Some(j) = restart {
                taken[j] = true;
                unit.push(j);
            }
        }
        units.push(unit);
    }
    assert!(taken.iter().all(|&t| t), "every fault is in a unit");
    units
}

/// `units` in `n` chunks of nearly equal size (at most as many chunks as units).
fn split(units: &[Vec<usize>], n: usize) -> Vec<Vec<Vec<usize>>> {
    let n = n.min(units.len()).max(1);
    let (size, extra) = (units.len() / n, units.len() % n);
    let mut chunks = Vec::with_capacity(n);
    let mut start = 0;
    for k in 0..n {
        let len = size + usize::from(k < extra);
        chunks.push(units[start..start + len].to_vec());
        start += len;
    }
    assert_eq!(start, units.len(), "the chunks cover every unit");
    chunks
}

/// Every chunk's units but chunk `i`'s.
fn without(chunks: &[Vec<Vec<usize>>], i: usize) -> Vec<Vec<usize>> {
    chunks.iter().enumerate().filter(|&(j, _)| j != i).flat_map(|(_, c)| c.iter().cloned()).collect()
}

/// `base` with only the faults of `units` (indices into `faults`), in their original order.
fn with_faults(base: &Scenario, faults: &[Fault], units: &[Vec<usize>]) -> Scenario {
    let mut kept: Vec<usize> = units.iter().flatten().copied().collect();
    kept.sort_unstable();
    let mut candidate = base.clone();
    candidate.faults.scheduled = kept.into_iter().map(|i| faults[i].clone()).collect();
    candidate
}

/// The scenario seed `seed` ran, written out: `drawn` (the seed's `[swarm]` draw applied) with
/// every fault — the scheduled ones and the seed's random draws — listed explicitly. Run with
/// the same seed, it replays the same run.
pub fn materialise(drawn: &Scenario, seed: u64, cluster: &ClusterSpec) -> Scenario {
    let faults = drawn.faults.faults(seed, cluster);
    let mut explicit = drawn.clone();
    explicit.faults = FaultPlan { scheduled: faults, random: None };
    explicit.swarm.clear();
    explicit
}

/// Whether the scenario's input is drawn (not given event by event): its keys, disorder and
/// late events are then its own to cut.
fn drawn(s: &Scenario) -> bool {
    s.workload.given.is_empty()
}

/// Fields of a fault in the order a scenario file lists them.
const FAULT_FIELDS: [&str; 11] = [
    "at_ms",
    "class",
    "target",
    "peer",
    "one_way",
    "action",
    "duration_ms",
    "restart_after_ms",
    "loss_rate",
    "latency_ms",
    "mid_checkpoint",
];

/// `scenario` as a scenario file, its faults as `[[faults]]` entries, under `header` (comment
/// lines, each starting with `#`). Given input is written as far as the run reads it.
pub fn to_toml(scenario: &Scenario, header: &str) -> String {
    to_toml_showing(scenario, header, &|_| None)
}

/// [`to_toml`], each given input event under the comment `show` gives it.
pub fn to_toml_showing(scenario: &Scenario, header: &str, show: &dyn Fn(&Given) -> Option<String>) -> String {
    assert!(scenario.faults.random.is_none(), "only explicit faults are written");
    assert!(header.lines().all(|l| l.starts_with('#')), "the header is comments");
    let mut rest = scenario.clone();
    rest.faults = FaultPlan::default();
    rest.swarm.clear();
    rest.workload.given.clear();
    let text = toml::to_string(&rest).expect("a scenario serialises");
    // An empty plan is written last, as its own table: cut it and write the list instead.
    let empty = "\n[faults]\nscheduled = []\n";
    let body = text.strip_suffix(empty).unwrap_or_else(|| panic!("the fault plan ends the file:\n{text}"));
    let mut out = format!("{header}\n{body}");
    for fault in &scenario.faults.scheduled {
        out.push_str("\n[[faults]]\n");
        out.push_str(&fault_lines(fault));
    }
    out + &crate::given::to_toml(&scenario.workload.given, scenario.workload.events, show)
}

/// One fault's `key = value` lines, leaving out what is absent or false.
fn fault_lines(fault: &Fault) -> String {
    let table = toml::Table::try_from(fault).expect("a fault serialises");
    assert!(
        table.keys().all(|k| FAULT_FIELDS.contains(&k.as_str())),
        "every fault field is written: {table:?}"
    );
    let mut lines = String::new();
    for field in FAULT_FIELDS {
        match table.get(field) {
            None | Some(toml::Value::Boolean(false)) => {}
            Some(value) => lines.push_str(&format!("{field} = {value}\n")),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;

    use super::*;
    use crate::scenario::{self, FaultClass};

    fn drawn() -> Scenario {
        let text = std::fs::read_to_string("../scenarios/all-faults.toml").unwrap();
        let loaded =
            scenario::load_str("all-faults", &text, &[], Arc::new(crate::builtins::registry())).unwrap();
        let cluster = loaded.cluster_spec(3);
        materialise(&loaded.scenario, 3, &cluster)
    }

    fn fault(at_ms: u64, target: &str, action: FaultAction) -> Fault {
        Fault {
            at_ms,
            class: FaultClass::Processor,
            target: target.into(),
            action,
            duration_ms: (action == FaultAction::Pause).then_some(300),
            restart_after_ms: None,
            peer: None,
            one_way: false,
            loss_rate: None,
            latency_ms: None,
            mid_checkpoint: false,
        }
    }

    /// Runs a search against `fails`, counting the runs the oracle saw.
    fn search(start: Scenario, max_runs: u32, fails: impl Fn(&Scenario) -> bool) -> (Shrunk, u32) {
        let seen = Cell::new(0);
        let mut fails = |s: &Scenario| {
            seen.set(seen.get() + 1);
            fails(s)
        };
        let oracle = Oracle {
            valid: &|s| scenario::validate(s, &crate::builtins::registry()).is_ok(),
            fails: &mut fails,
            on_step: &mut |_| {},
        };
        let shrunk = shrink(start, max_runs, oracle);
        (shrunk, seen.get())
    }

    fn targets(s: &Scenario) -> Vec<(u64, String)> {
        s.faults.scheduled.iter().map(|f| (f.at_ms, f.target.clone())).collect()
    }

    #[test]
    fn a_seeds_random_faults_are_written_out_in_time_order() {
        let s = drawn();
        assert!(s.faults.random.is_none() && s.swarm.is_empty());
        assert!(s.faults.scheduled.len() >= 2, "all-faults draws several faults");
        assert!(s.faults.scheduled.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }

    #[test]
    fn delta_debugging_finds_the_two_faults_that_matter() {
        let mut s = drawn();
        s.faults.scheduled = (0..8).map(|i| fault(1000 + 100 * i, "worker-1", FaultAction::Pause)).collect();
        s.faults.scheduled[2].target = "worker-2".into();
        s.faults.scheduled[6].target = "worker-2".into();
        // Fails only with both faults on worker-2 (at 1200 and 1600 ms or earlier).
        let fails = |s: &Scenario| s.faults.scheduled.iter().filter(|f| f.target == "worker-2").count() == 2;
        let (shrunk, runs) = search(s, 300, fails);
        let kept: Vec<String> = shrunk.scenario.faults.scheduled.iter().map(|f| f.target.clone()).collect();
        assert_eq!(kept, ["worker-2", "worker-2"]);
        assert_eq!(runs, shrunk.runs);
        assert!(runs < 120, "{runs} runs");
        assert!(!shrunk.exhausted);
    }

    #[test]
    fn a_crash_keeps_its_restart() {
        let mut s = drawn();
        s.faults.scheduled = vec![
            fault(1000, "worker-1", FaultAction::Crash),
            fault(1100, "worker-2", FaultAction::Pause),
            fault(1500, "worker-1", FaultAction::Restart),
        ];
        let fails = |s: &Scenario| s.faults.scheduled.iter().any(|f| f.action == FaultAction::Crash);
        let (shrunk, _) = search(s, 300, fails);
        let actions: Vec<FaultAction> = shrunk.scenario.faults.scheduled.iter().map(|f| f.action).collect();
        assert_eq!(actions, [FaultAction::Crash, FaultAction::Restart]);
    }

    #[test]
    fn numbers_go_to_the_least_that_still_fails() {
        let mut s = drawn();
        s.faults.scheduled = vec![fault(4000, "worker-1", FaultAction::Pause)];
        s.workload.events = 20_000;
        let fails = |s: &Scenario| {
            s.workload.events >= 3000 && s.faults.scheduled.len() == 1 && s.faults.scheduled[0].at_ms >= 500
        };
        let (shrunk, _) = search(s, 300, fails);
        let (events, at) = (shrunk.scenario.workload.events, shrunk.scenario.faults.scheduled[0].at_ms);
        assert!((3000..3000 + 3000 / PRECISION + 1).contains(&events), "{events} events");
        assert!((500..500 + 500 / PRECISION + 1).contains(&at), "at {at} ms");
        assert_eq!(shrunk.scenario.faults.scheduled[0].duration_ms, Some(1), "the pause shrank too");
        assert_eq!(shrunk.scenario.engine.workers, 1, "and the cluster");
    }

    #[test]
    fn a_failure_that_needs_no_fault_loses_them_all_in_one_run() {
        let s = drawn();
        let (shrunk, _) = search(s, 300, |_| true);
        assert!(shrunk.scenario.faults.scheduled.is_empty());
        assert_eq!(shrunk.steps[0].what, "no faults");
        assert_eq!(shrunk.steps[0].run, 1);
    }

    #[test]
    fn the_budget_holds_and_says_it_ran_out() {
        let s = drawn();
        let (shrunk, runs) = search(s, 7, |s| s.faults.scheduled.len() >= 2);
        assert_eq!(runs, 7);
        assert!(shrunk.exhausted);
    }

    #[test]
    fn no_candidate_runs_twice_and_refused_ones_never_run() {
        let mut s = drawn();
        s.faults.scheduled = vec![fault(1000, "worker-1", FaultAction::Pause)];
        let seen = std::cell::RefCell::new(Vec::<Scenario>::new());
        let registry = crate::builtins::registry();
        let (_, runs) = search(s, 300, |c| {
            assert!(scenario::validate(c, &registry).is_ok(), "a refused candidate ran");
            assert!(!seen.borrow().contains(c), "a candidate ran twice");
            seen.borrow_mut().push(c.clone());
            c.workload.events > 100
        });
        assert!(runs > 5);
    }

    #[test]
    fn the_written_file_loads_back_as_the_same_scenario() {
        let mut s = drawn();
        s.faults.scheduled[0].mid_checkpoint = true;
        let text = to_toml(&s, "# shrunk\n# twice");
        let loaded = scenario::load_str("shrunk", &text, &[], Arc::new(crate::builtins::registry())).unwrap();
        assert_eq!(loaded.scenario, s);
        assert!(
            text.contains("[[faults]]")
                && !text.contains("[faults.random]")
                && !text.contains("one_way = false")
        );
        assert_eq!(targets(&loaded.scenario), targets(&s));
    }
}
