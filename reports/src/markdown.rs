//! A run's report as Markdown: the text to paste into an issue or a review — verdict, replay
//! command, broken invariants, faults, recoveries and delivery, with the charts linked as the
//! standalone SVG files written beside it.

use std::fmt::Write as _;

use crate::{FaultRecord, RunRecord};

/// The charts a run report links, in page order: (file, caption).
const CHARTS: [(&str, &str); 5] = [
    ("nodes.svg", "Nodes and faults"),
    ("throughput.svg", "Throughput"),
    ("latency.svg", "End-to-end latency"),
    ("checkpoints.svg", "Checkpoints"),
    ("in-flight.svg", "In flight and state size"),
];

/// Renders `record` as Markdown; chart links are relative to the report's directory.
pub fn run_markdown(record: &RunRecord) -> String {
    let mut out = String::new();
    let r = record;
    let _ = writeln!(out, "# faultline report — {} seed {}\n", cell(&r.scenario), r.seed);
    let _ = writeln!(
        out,
        "**{}** · {} · recovery {} · faultline {} · scenario hash `{}` · trace `{}` · simulated {} ms\n",
        r.verdict.to_uppercase(),
        r.semantics,
        r.recovery,
        r.faultline_version,
        r.scenario_hash,
        r.trace_hash,
        r.sim_time_ms
    );
    let _ = writeln!(out, "Replay:\n\n```sh\n{}\n```\n", r.repro);
    invariants(&mut out, r);
    if r.timeline.is_some() {
        let _ = writeln!(out, "## Charts\n");
        for (file, caption) in CHARTS {
            let _ = writeln!(out, "- [{caption}]({file})");
        }
        out.push('\n');
    }
    faults(&mut out, &r.faults);
    recoveries(&mut out, r);
    delivery(&mut out, r);
    out
}

/// Escapes what would break a table cell or start markup.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace('\n', " ")
}

fn invariants(out: &mut String, r: &RunRecord) {
    let held = r.invariants.iter().filter(|i| !r.violations.iter().any(|v| &v.invariant == *i)).count();
    let _ = writeln!(out, "## Invariants\n\n{held} of {} judged invariants held.\n", r.invariants.len());
    if r.violations.is_empty() {
        return;
    }
    let _ = writeln!(out, "| broken | detail |\n|---|---|");
    for v in &r.violations {
        let _ = writeln!(out, "| `{}` | {} |", cell(&v.invariant), cell(&v.detail));
    }
    out.push('\n');
}

fn faults(out: &mut String, faults: &[FaultRecord]) {
    let _ = writeln!(out, "## Faults\n");
    if faults.is_empty() {
        let _ = writeln!(out, "None injected.\n");
        return;
    }
    let _ = writeln!(
        out,
        "| at ms | class | action | target | until ms | effective |\n|---:|---|---|---|---:|---|"
    );
    for f in faults {
        let target = match &f.peer {
            Some(peer) => format!("{} ↔ {}", f.target, peer),
            None => f.target.clone(),
        };
        let until = f.healed_at_ms.map_or_else(|| "—".to_string(), |ms| ms.to_string());
        let effective = if f.effective { "yes" } else { "no effect" };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {until} | {effective} |",
            f.at_ms,
            cell(&f.class),
            cell(&f.action),
            cell(&target)
        );
    }
    out.push('\n');
}

fn recoveries(out: &mut String, r: &RunRecord) {
    let _ = writeln!(out, "## Recoveries\n");
    if r.recoveries.is_empty() {
        let _ = writeln!(out, "None.\n");
        return;
    }
    let _ = writeln!(
        out,
        "| fault at ms | detected at ms | detection ms | kind | time to resume ms | records replayed | state bytes moved |\n\
         |---:|---:|---:|---|---:|---:|---:|"
    );
    for c in &r.recoveries {
        let resume = c.time_to_resume_ms.map_or_else(|| "—".to_string(), |ms| ms.to_string());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {resume} | {} | {} |",
            c.fault_at_ms,
            c.detected_at_ms,
            c.detection_ms,
            cell(&if c.superseded { format!("{} (superseded)", c.kind) } else { c.kind.clone() }),
            c.records_replayed,
            c.state_bytes_transferred
        );
    }
    out.push('\n');
}

fn delivery(out: &mut String, r: &RunRecord) {
    let o = &r.output;
    let _ = writeln!(
        out,
        "## Delivery\n\n| expected | committed | lost | pending | duplicates | wrong |\n|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {} | {} | {} |\n",
        o.expected, o.committed, o.lost, o.pending, o.duplicates, o.wrong
    );
    if o.offending.is_empty() {
        return;
    }
    let _ = writeln!(out, "| kind | output | cause | expected | committed |\n|---|---|---|---|---|");
    for x in &o.offending {
        let show = |v: &Option<String>| v.as_deref().map_or_else(|| "—".to_string(), cell);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&x.kind),
            cell(&x.output),
            cell(&x.cause),
            show(&x.expected),
            show(&x.committed)
        );
    }
    out.push('\n');
    for s in r.timeline.iter().flat_map(|t| &t.stories) {
        let _ = writeln!(out, "### {} — {}\n", s.output, s.kind);
        for step in &s.steps {
            let _ = writeln!(out, "1. {:.3} ms: {}", step.at_ms, step.text);
        }
        let _ = writeln!(out, "\nWhy: {}\n", s.why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_cannot_break_its_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
