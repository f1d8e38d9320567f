//! The sink-transactions checker: replays the sink's durable log and verifies its transactions.
//!
//! Invariants:
//! - no transaction is committed twice;
//! - nothing is accepted from a fenced epoch: no write, prepare or commit request from an epoch
//!   older than the writer's fence at that point of the log;
//! - every commit was authorised by a completed checkpoint (per the store's history of
//!   completed checkpoints) at or after the one its transaction is bound to. A transaction
//!   prepared for a checkpoint that was later aborted commits with the next one that completes;
//! - an open transaction is lost only in a sink crash: every transaction the sink answered as
//!   lost (`SinkTxnLost`) belongs to a writer epoch that began at the sink (its fence rose, in
//!   the log) before a restart of the sink that came before the answer. A sink that drops a
//!   live writer's open transaction costs that writer a recovery for nothing, and says its
//!   own contract was broken.

use std::collections::{BTreeMap, BTreeSet};

use faultline_engine::sink::{SinkEvent, TxnId};
use faultline_reports::Violation;

use super::push_examples as push;

/// The invariants this checker judges, by the names its violations carry.
pub const INVARIANTS: [&str; 4] = [
    "sink-commit-twice",
    "sink-fenced-epoch",
    "sink-commit-without-checkpoint",
    "sink-txn-lost-without-crash",
];

/// What the sink said it lost, beside when it booted and when each writer epoch began there.
pub struct Losses<'a> {
    /// Each writer epoch's fence rise, its first request at the sink: (ms, writer, epoch).
    pub fences: &'a [(u64, u32, u64)],
    /// When the sink booted: its start and every restart.
    pub boots: &'a [u64],
    /// Each open transaction the sink answered as lost: (ms, writer, epoch, txn).
    pub lost: &'a [(u64, u32, u64, u64)],
}

/// Every loss the sink answered must follow a restart of the sink since the transaction's
/// writer epoch began there.
pub fn check_losses(l: &Losses<'_>) -> Vec<Violation> {
    assert!(l.boots.windows(2).all(|w| w[0] <= w[1]), "boots in time order");
    let unexplained: Vec<String> = l
        .lost
        .iter()
        .filter(|&&(at, writer, epoch, _)| {
            let began = l.fences.iter().find(|f| (f.1, f.2) == (writer, epoch)).map(|f| f.0);
            !began.is_some_and(|b| l.boots.iter().any(|&t| (b..=at).contains(&t)))
        })
        .map(|(at, writer, epoch, txn)| {
            format!("writer {writer} epoch {epoch} txn {txn} answered lost at {at} ms with no sink restart since the epoch began")
        })
        .collect();
    let mut v = Vec::new();
    push(&mut v, "sink-txn-lost-without-crash", &unexplained);
    v
}

/// Checks a sink log against the set of completed checkpoints.
pub fn check(events: &[SinkEvent], completed: &BTreeSet<u64>) -> Vec<Violation> {
    let mut fence: BTreeMap<u32, u64> = BTreeMap::new();
    let mut committed: BTreeMap<TxnId, u32> = BTreeMap::new();
    let mut fenced_accepts = Vec::new();
    let mut orphans = Vec::new();
    for event in events {
        let (writer, epoch) = actor(event);
        if epoch < fence.get(&writer).copied().unwrap_or(0) {
            fenced_accepts.push(format!("{event:?}").chars().take(160).collect::<String>());
        }
        match event {
            SinkEvent::Fence { writer, epoch } => _ = fence.insert(*writer, *epoch),
            SinkEvent::Commit { txn, checkpoint, upto, .. } => {
                *committed.entry(*txn).or_insert(0) += 1;
                if !completed.contains(upto) || checkpoint > upto {
                    orphans.push(format!("{txn:?} bound to checkpoint {checkpoint}, committed upto {upto}"));
                }
            }
            _ => {}
        }
    }
    let twice: Vec<String> =
        committed.iter().filter(|(_, &n)| n > 1).map(|(t, n)| format!("{t:?} committed {n} times")).collect();
    let mut v = Vec::new();
    push(&mut v, "sink-commit-twice", &twice);
    push(&mut v, "sink-fenced-epoch", &fenced_accepts);
    push(&mut v, "sink-commit-without-checkpoint", &orphans);
    v
}

/// The writer and epoch on whose behalf an event was accepted.
fn actor(event: &SinkEvent) -> (u32, u64) {
    match event {
        SinkEvent::Append { writer, epoch, .. } | SinkEvent::Upsert { writer, epoch, .. } => {
            (*writer, *epoch)
        }
        SinkEvent::Prepare { txn, .. } => (txn.writer, txn.epoch),
        SinkEvent::Commit { txn, by_epoch, .. } | SinkEvent::Abort { txn, by_epoch, .. } => {
            (txn.writer, *by_epoch)
        }
        SinkEvent::Fence { writer, epoch } => (*writer, *epoch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(epoch: u64, n: u64) -> TxnId {
        TxnId { writer: 0, epoch, txn: n }
    }

    fn commit(t: TxnId, checkpoint: u64, by_epoch: u64) -> SinkEvent {
        SinkEvent::Commit { txn: t, checkpoint, by_epoch, upto: checkpoint }
    }

    fn prepare(t: TxnId, checkpoint: u64) -> SinkEvent {
        SinkEvent::Prepare { txn: t, checkpoint, records: vec![], received: vec![] }
    }

    fn names(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.invariant.as_str()).collect()
    }

    /// Epoch 1 commits checkpoint 1, prepares 2, crashes; epoch 2 recovers: commits 2 (which
    /// completed) on behalf of epoch 1's transaction, then carries on.
    fn good() -> Vec<SinkEvent> {
        vec![
            SinkEvent::Fence { writer: 0, epoch: 1 },
            prepare(txn(1, 0), 1),
            commit(txn(1, 0), 1, 1),
            prepare(txn(1, 1), 2),
            SinkEvent::Fence { writer: 0, epoch: 2 },
            commit(txn(1, 1), 2, 2),
            prepare(txn(2, 0), 3),
            commit(txn(2, 0), 3, 2),
        ]
    }

    #[test]
    fn a_good_history_passes() {
        assert!(check(&good(), &BTreeSet::from([1, 2, 3])).is_empty());
    }

    #[test]
    fn a_double_commit_is_caught() {
        let mut h = good();
        h.push(commit(txn(2, 0), 3, 2));
        assert_eq!(names(&check(&h, &BTreeSet::from([1, 2, 3]))), ["sink-commit-twice"]);
    }

    #[test]
    fn a_commit_by_a_fenced_zombie_is_caught() {
        let mut h = good();
        h.push(prepare(txn(1, 2), 3));
        h.push(commit(txn(1, 2), 3, 1));
        let v = check(&h, &BTreeSet::from([1, 2, 3]));
        assert_eq!(names(&v), ["sink-fenced-epoch"]);
        assert!(v[0].detail.starts_with("2 times"), "{}", v[0].detail);
    }

    #[test]
    fn a_commit_of_an_incomplete_checkpoint_is_caught() {
        assert_eq!(names(&check(&good(), &BTreeSet::from([1, 3]))), ["sink-commit-without-checkpoint"]);
    }

    #[test]
    fn a_transaction_of_an_aborted_checkpoint_commits_with_a_later_one() {
        let mut h = good();
        h.push(prepare(txn(2, 1), 4));
        h.push(prepare(txn(2, 2), 5));
        h.push(SinkEvent::Commit { txn: txn(2, 1), checkpoint: 4, by_epoch: 2, upto: 5 });
        assert!(check(&h, &BTreeSet::from([1, 2, 3, 5])).is_empty());
        h.push(SinkEvent::Commit { txn: txn(2, 2), checkpoint: 5, by_epoch: 2, upto: 4 });
        let v = check(&h, &BTreeSet::from([1, 2, 3, 4, 5]));
        assert_eq!(names(&v), ["sink-commit-without-checkpoint"]);
    }

    #[test]
    fn a_transaction_is_lost_only_across_a_sink_restart() {
        let fences = [(10, 0, 1), (10, 1, 1), (200, 0, 2)];
        let boots = [0, 150];
        // Writer 0's epoch 1 began at 10 and the sink restarted at 150: a loss at 160 is one.
        let lost = [(160, 0, 1, 3)];
        assert!(check_losses(&Losses { fences: &fences, boots: &boots, lost: &lost }).is_empty());
        // Writer 0's epoch 2 began at 200, after the restart: nothing could lose its txn at 250;
        // nor a writer epoch the sink never saw begin.
        let lost = [(160, 0, 1, 3), (250, 0, 2, 0), (260, 2, 1, 0)];
        let v = check_losses(&Losses { fences: &fences, boots: &boots, lost: &lost });
        assert_eq!(names(&v), ["sink-txn-lost-without-crash"]);
        assert!(v[0].detail.starts_with("2 times"), "{v:?}");
    }
}
