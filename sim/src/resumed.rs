//! When each writer epoch's output resumed, read off the sink's log.
//!
//! A writer's output *resumes* in an epoch at the first write of that epoch holding a record
//! past every output of its key and side the sink had received before: a key's inputs reach
//! its operator in log order and its timers fire in time order, so a record the sink has not
//! seen the like of is new output, and one it has is output produced again after a rollback.
//! The recovery report measures a recovery's time to resume by it.
//!
//! Each write is taken when it reached the sink: an append or an upsert when it was logged
//! (the sink logs those on arrival), a transaction's writes when each arrived (its prepare
//! stamps them). A transaction never prepared is not in the log and does not count: its
//! output never became the sink's. Nothing here is the engine's word but the log itself.

use std::collections::{BTreeMap, BTreeSet};

use faultline_engine::record::{KeyBytes, Origin, OutputRecord, Side};
use faultline_engine::sink::SinkEvent;

/// Writer `writer`'s output of writer epoch `epoch` first moved past what the sink had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumption {
    pub at_ms: u64,
    pub writer: u32,
    pub epoch: u64,
}

/// One write as it reached the sink.
struct Receipt<'a> {
    at_ms: u64,
    writer: u32,
    epoch: u64,
    records: &'a [OutputRecord],
}

/// Every writer epoch's resumption, in the order they happened, from the sink's timed log.
pub fn resumptions(sink: &[(u64, SinkEvent)]) -> Vec<Resumption> {
    let mut receipts = receipts(sink);
    // Stable: writes of the same millisecond keep their order in the log.
    receipts.sort_by_key(|r| r.at_ms);
    let mut seen: BTreeMap<(&Side, &KeyBytes), (&Origin, u32)> = BTreeMap::new();
    let mut resumed = BTreeSet::new();
    let mut out = Vec::new();
    for r in &receipts {
        let mut new = false;
        for record in r.records {
            new |= moved_past(&mut seen, record);
        }
        if new && resumed.insert((r.writer, r.epoch)) {
            out.push(Resumption { at_ms: r.at_ms, writer: r.writer, epoch: r.epoch });
        }
    }
    assert!(out.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "resumptions in time order");
    out
}

/// Whether `r` is past every output of its key and side seen so far; records it as seen.
fn moved_past<'a>(
    seen: &mut BTreeMap<(&'a Side, &'a KeyBytes), (&'a Origin, u32)>,
    r: &'a OutputRecord,
) -> bool {
    let at = (&r.id.origin, r.id.n);
    match seen.get_mut(&(&r.id.side, &r.id.key)) {
        Some(held) if at <= *held => false,
        Some(held) => {
            *held = at;
            true
        }
        None => {
            seen.insert((&r.id.side, &r.id.key), at);
            true
        }
    }
}

/// The writes the log holds, each with the time it reached the sink.
fn receipts(sink: &[(u64, SinkEvent)]) -> Vec<Receipt<'_>> {
    let mut out = Vec::new();
    for (at_ms, event) in sink {
        match event {
            SinkEvent::Append { writer, epoch, records } | SinkEvent::Upsert { writer, epoch, records } => {
                out.push(Receipt { at_ms: *at_ms, writer: *writer, epoch: *epoch, records })
            }
            SinkEvent::Prepare { txn, records, received, .. } => {
                let mut rest = records.as_slice();
                for &(arrived, n) in received {
                    assert!(arrived <= *at_ms, "a write of {txn:?} arrived after its prepare");
                    let (write, after) = rest.split_at(n as usize);
                    out.push(Receipt {
                        at_ms: arrived,
                        writer: txn.writer,
                        epoch: txn.epoch,
                        records: write,
                    });
                    rest = after;
                }
                assert!(rest.is_empty(), "{txn:?}'s writes hold all its records");
            }
            SinkEvent::Commit { .. } | SinkEvent::Abort { .. } | SinkEvent::Fence { .. } => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::record::{Cause, OutputId};
    use faultline_engine::sdk::Blob;
    use faultline_engine::sink::TxnId;

    fn out(key: u64, seq: u64) -> OutputRecord {
        let cause = Cause { producer: 0, seq };
        OutputRecord {
            id: OutputId::main(KeyBytes::of(&key), Origin::Input(cause), 0),
            value: Blob::from_static(&[]),
            cause,
        }
    }

    #[test]
    fn a_rolled_back_writer_resumes_at_its_first_new_record() {
        let sink = [
            (10, SinkEvent::Append { writer: 0, epoch: 1, records: vec![out(1, 1), out(1, 2)] }),
            // The rollback: epoch 2 writes key 1's outputs again, then a new one.
            (50, SinkEvent::Append { writer: 0, epoch: 2, records: vec![out(1, 1)] }),
            (60, SinkEvent::Append { writer: 0, epoch: 2, records: vec![out(1, 2), out(1, 3)] }),
            (70, SinkEvent::Append { writer: 0, epoch: 2, records: vec![out(1, 4)] }),
        ];
        let got = resumptions(&sink);
        assert_eq!(
            got,
            [Resumption { at_ms: 10, writer: 0, epoch: 1 }, Resumption { at_ms: 60, writer: 0, epoch: 2 }]
        );
    }

    #[test]
    fn a_transaction_counts_each_write_when_it_arrived_and_only_once_prepared() {
        let txn = |epoch, txn| TxnId { writer: 3, epoch, txn };
        let sink = [
            (
                40,
                SinkEvent::Prepare {
                    txn: txn(1, 0),
                    checkpoint: 1,
                    records: vec![out(5, 1), out(5, 2)],
                    received: vec![(12, 1), (30, 1)],
                },
            ),
            (41, SinkEvent::Commit { txn: txn(1, 0), checkpoint: 1, by_epoch: 1, upto: 1 }),
            // Epoch 2's first write re-sends key 5's first output; its second write is new.
            (
                90,
                SinkEvent::Prepare {
                    txn: txn(2, 0),
                    checkpoint: 2,
                    records: vec![out(5, 1), out(5, 3)],
                    received: vec![(55, 1), (57, 0), (63, 1)],
                },
            ),
        ];
        let got = resumptions(&sink);
        assert_eq!(
            got,
            [Resumption { at_ms: 12, writer: 3, epoch: 1 }, Resumption { at_ms: 63, writer: 3, epoch: 2 }]
        );
    }

    #[test]
    fn writes_are_taken_in_the_order_they_arrived_not_logged() {
        // Writer 1's transaction is logged at its prepare (80), after writer 2's append (20),
        // but its write arrived first (15): writer 2's same output is then not new.
        let txn = TxnId { writer: 1, epoch: 1, txn: 0 };
        let sink = [
            (20, SinkEvent::Append { writer: 2, epoch: 1, records: vec![out(7, 1)] }),
            (
                80,
                SinkEvent::Prepare { txn, checkpoint: 1, records: vec![out(7, 1)], received: vec![(15, 1)] },
            ),
        ];
        assert_eq!(resumptions(&sink), [Resumption { at_ms: 15, writer: 1, epoch: 1 }]);
    }
}
