//! The deployment checker: on a worker, the copies of a subtask start in order of job epoch
//! and generation, each at most once, within one incarnation.
//!
//! Read from the workers' `TaskDeployed { operator, subtask, epoch, generation }` and their
//! `Boot`s, in trace order. Within one incarnation of a worker (from one boot to the next),
//! each start of a subtask's copy is of a later `(epoch, generation)` than the start before
//! it: a new epoch (a rollback) or a new generation (a promotion, a restarted source) replaces
//! the copy. A start of the same or an older one is a deployment sent twice, or one a stale
//! command queue delivered late: two copies that would read, write and acknowledge as one, or
//! an old one brought back over its successor. A reboot starts the worker afresh.
//!
//! A source has no copies: each `(epoch, generation)` of a source subtask (chain 0, the chain
//! that reads the partitions) starts on one worker only. Two would both read the partitions
//! from the same positions and both acknowledge checkpoints as the one generation the manager
//! counts (`source-started-twice`): two failovers that each restarted the source, the earlier
//! one sending the later one's generation.

use std::collections::BTreeMap;

use faultline_engine::cluster::{NodeId, Role};
use faultline_engine::observe::TraceEvent;
use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 2] = ["task-deployed-again", "source-started-twice"];

/// The chain that reads the partitions: its subtasks are the job's sources.
const SOURCE_CHAIN: u32 = 0;

/// A worker incarnation's latest start of each subtask: (chain, subtask) → (epoch, generation).
type Started = BTreeMap<(u32, u32), (u64, u32)>;

/// Checks the workers' boots and deployments, `(ms, node, event)` in trace order.
pub fn check(events: &[(u64, NodeId, TraceEvent)]) -> Vec<Violation> {
    // Per worker, per (chain, subtask): the (epoch, generation) started last in this incarnation.
    let mut started: BTreeMap<NodeId, Started> = BTreeMap::new();
    let mut behind = Vec::new();
    // Each source generation's first worker: (epoch, subtask, generation) → worker.
    let mut sources: BTreeMap<(u64, u32, u32), NodeId> = BTreeMap::new();
    let mut twice = Vec::new();
    for &(ms, node, ref event) in events {
        assert_eq!(node.role, Role::Worker, "{event:?} from {node:?}");
        match *event {
            TraceEvent::Boot => _ = started.insert(node, BTreeMap::new()),
            TraceEvent::TaskDeployed { operator, subtask, epoch, generation } => {
                let last = started.entry(node).or_default().insert((operator, subtask), (epoch, generation));
                if let Some((e, g)) = last.filter(|&last| last >= (epoch, generation)) {
                    behind.push(format!(
                        "{} started chain {operator} subtask {subtask} of epoch {epoch}, generation \
                         {generation} at {ms} ms, after epoch {e}, generation {g}",
                        node.name()
                    ));
                }
                if operator == SOURCE_CHAIN {
                    let first = *sources.entry((epoch, subtask, generation)).or_insert(node);
                    if first != node {
                        twice.push(format!(
                            "{} started source subtask {subtask} of epoch {epoch}, generation \
                             {generation} at {ms} ms, which {} had started",
                            node.name(),
                            first.name()
                        ));
                    }
                }
            }
            _ => unreachable!("the deployment checker reads boots and deployments: {event:?}"),
        }
    }
    let mut v = Vec::new();
    push(&mut v, INVARIANTS[0], &behind);
    push(&mut v, INVARIANTS[1], &twice);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const W0: NodeId = NodeId { role: Role::Worker, index: 0 };
    const W1: NodeId = NodeId { role: Role::Worker, index: 1 };

    fn deployed(
        ms: u64,
        node: NodeId,
        subtask: u32,
        epoch: u64,
        generation: u32,
    ) -> (u64, NodeId, TraceEvent) {
        (ms, node, TraceEvent::TaskDeployed { operator: 1, subtask, epoch, generation })
    }

    #[test]
    fn copies_start_in_order_of_epoch_and_generation_once_per_incarnation() {
        let fine = [
            (0, W0, TraceEvent::Boot),
            (0, W1, TraceEvent::Boot),
            deployed(5, W0, 0, 1, 0),
            deployed(5, W1, 0, 1, 0), // another copy of the subtask, on another worker
            deployed(90, W0, 0, 1, 1), // promoted: a new generation
            deployed(150, W0, 0, 2, 0), // rolled back: a new epoch
            (300, W0, TraceEvent::Boot),
            deployed(320, W0, 0, 2, 0), // a reboot starts afresh
        ];
        assert!(check(&fine).is_empty());
        let twice = [(0, W0, TraceEvent::Boot), deployed(5, W0, 0, 1, 0), deployed(60, W0, 0, 1, 0)];
        let v = check(&twice);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, "task-deployed-again");
        // An older generation brought back over its successor.
        let back = [(0, W0, TraceEvent::Boot), deployed(5, W0, 0, 1, 2), deployed(60, W0, 0, 1, 1)];
        assert_eq!(check(&back).len(), 1);
    }

    #[test]
    fn a_source_generation_starts_on_one_worker() {
        let source = |ms, node, generation| {
            (ms, node, TraceEvent::TaskDeployed { operator: SOURCE_CHAIN, subtask: 1, epoch: 1, generation })
        };
        let boots = [(0, W0, TraceEvent::Boot), (0, W1, TraceEvent::Boot)];
        // Restarted elsewhere as a new generation: fine.
        let moved = [boots[0].clone(), boots[1].clone(), source(5, W0, 0), source(90, W1, 1)];
        assert!(check(&moved).is_empty());
        let twice =
            [boots[0].clone(), boots[1].clone(), source(5, W0, 0), source(90, W1, 1), source(95, W0, 1)];
        let v = check(&twice);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, "source-started-twice");
    }
}
