//! Explain: the story of an offending output, told from what the checkers observe on their own
//! — the trace, the partition logs and the sink's log — and never from a second run.
//!
//! For an output found lost, duplicated or wrong it tells, in simulated-time order:
//! - the input it descends from: sent by its producer, appended at its offset, acknowledged;
//! - each source subtask that read it, in which job epoch, and the worker that ran the keyed
//!   subtask owning its key in that epoch;
//! - each sink request that carried it: appended (plain and idempotent sinks), or prepared in a
//!   transaction for a checkpoint, then committed or aborted;
//! - the faults, the recoveries they caused, and where each later epoch resumed the input's
//!   partition.
//!
//! It ends with why: for a lost output, that no later epoch read the input again and from
//! where it resumed instead; for a duplicate, the commits and the epoch that read the input a
//! second time; for a wrong one, the value beside the reference's.
//!
//! Everything here is a pure function of [`Facts`]: the runner gathers them from a run with
//! its events kept, and the unit tests plant them.

use std::collections::BTreeMap;

use faultline_engine::cluster::NodeId;
use faultline_engine::job::{Semantics, SinkMode};
use faultline_engine::observe::TraceEvent;
use faultline_engine::operators::key_by::subtask_for_key;
use faultline_engine::record::{Cause, KeyBytes, LogRecord, Origin, OutputId, OutputRecord, Payload};
use faultline_engine::sink::{SinkEvent, TxnId};
use faultline_reports::{FaultRecord, Story, StoryStep};

use crate::checker::delivery::{cause_of, show_id, Delivery, Show};
use crate::checker::expected::Expected;

/// What a story is told from.
pub struct Facts<'a> {
    /// Every trace event of the run: simulated ns, node, event.
    pub events: &'a [(u64, NodeId, TraceEvent)],
    /// Each partition's log at the end of the run.
    pub logs: &'a BTreeMap<u32, Vec<LogRecord>>,
    /// The sink's log, each entry with the simulated ms it was logged at.
    pub sink: &'a [(u64, SinkEvent)],
    pub faults: &'a [FaultRecord],
    pub expected: &'a Expected,
    pub semantics: Semantics,
    pub sink_mode: SinkMode,
    /// The chain of the last keyed stage, whose subtasks write the output.
    pub keyed_chain: u32,
    /// How the pipeline's output values read.
    pub show: Show<'a>,
    pub parallelism: u32,
}

/// An offending output, as the delivery checker found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offense {
    Lost(OutputId),
    Duplicate(OutputRecord),
    Wrong(OutputRecord),
}

impl Offense {
    pub fn kind(&self) -> &'static str {
        match self {
            Offense::Lost(_) => "lost",
            Offense::Duplicate(_) => "duplicate",
            Offense::Wrong(_) => "wrong",
        }
    }

    pub fn id(&self) -> OutputId {
        match self {
            Offense::Lost(id) => id.clone(),
            Offense::Duplicate(r) | Offense::Wrong(r) => r.id.clone(),
        }
    }
}

/// The offending outputs of `delivery` to tell: the first `limit` of each kind (each id once),
/// or only those of output `only`.
pub fn offenses(delivery: &Delivery, limit: usize, only: Option<OutputId>) -> Vec<Offense> {
    let lost = delivery.lost.iter().map(|id| Offense::Lost(id.clone()));
    let mut duplicates: Vec<Offense> = Vec::new();
    for r in &delivery.duplicates {
        if !duplicates.iter().any(|d| d.id() == r.id) {
            duplicates.push(Offense::Duplicate(r.clone()));
        }
    }
    let wrong = delivery.wrong.iter().map(|r| Offense::Wrong(r.clone()));
    let wanted = |o: &Offense| only.as_ref().is_none_or(|id| o.id() == *id);
    let mut chosen: Vec<Offense> = lost.filter(|o| wanted(o)).take(limit).collect();
    chosen.extend(duplicates.into_iter().filter(|o| wanted(o)).take(limit));
    chosen.extend(wrong.filter(|o| wanted(o)).take(limit));
    chosen
}

/// Parses an output id as `explain --output` takes it, in the form everything prints:
/// `key 0 · input 0/43`, `key "card-7" · timer 60000/5 #1`, `key 3 · content 00ff…`. Only
/// main-side outputs are judged for delivery. A number key is a `u64`, a quoted one a string.
pub fn parse_output_id(text: &str) -> Result<OutputId, String> {
    let bad = || format!("`{text}` is not an output id: write it as printed, e.g. `key 0 · input 0/43`");
    let rest = text.trim().strip_prefix("key ").ok_or_else(bad)?;
    let (key, origin) = rest.split_once(" · ").ok_or_else(bad)?;
    let key = match key.strip_prefix('"') {
        Some(_) => KeyBytes::of(&serde_json::from_str::<String>(key).map_err(|_| bad())?),
        None => KeyBytes::of(&key.parse::<u64>().map_err(|_| bad())?),
    };
    let (origin, n) = match origin.split_once(" #") {
        Some((o, n)) => (o, n.parse::<u32>().map_err(|_| bad())?),
        None => (origin, 0),
    };
    let pair = |s: &str| -> Result<(u64, u64), String> {
        let (a, b) = s.split_once('/').ok_or_else(bad)?;
        Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
    };
    let origin = match origin.split_once(' ').ok_or_else(bad)? {
        ("input", p) => {
            let (producer, seq) = pair(p)?;
            Origin::Input(Cause { producer: u32::try_from(producer).map_err(|_| bad())?, seq })
        }
        ("timer", t) => {
            let (at_ms, tag) = pair(t)?;
            Origin::Timer { at_ms, tag }
        }
        ("content", h) => Origin::Content(u64::from_str_radix(h, 16).map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok(OutputId::main(key, origin, n))
}

/// A read of the input by a source subtask.
struct Read {
    ns: u64,
    node: NodeId,
    subtask: u32,
    epoch: u64,
}

/// A sink entry that carried the output, and how it ended.
struct Write {
    ms: u64,
    writer: u32,
    /// The writer epoch: the job epoch, then the generation.
    writer_epoch: u64,
    /// The transaction and its checkpoint (transactional sinks).
    txn: Option<(TxnId, u64)>,
    /// When the write became visible: at once for appends and upserts, at its commit for a
    /// transaction (`None`: never).
    committed_ms: Option<u64>,
    aborted_ms: Option<u64>,
}

/// Where a source resumed a partition in a new epoch.
struct Resume {
    ns: u64,
    epoch: u64,
    offset: u64,
}

/// Tells the story of `offense`.
pub fn tell(f: &Facts<'_>, offense: Offense) -> Story {
    let id = offense.id();
    let cause = match &offense {
        Offense::Lost(id) => cause_of(id, f.expected.get(id).expect("a lost output is an expected one")),
        Offense::Duplicate(r) | Offense::Wrong(r) => Some(r.cause),
    };
    let mut steps = Vec::new();
    let place = cause.and_then(|c| f.place(c, &id.key));
    let writes = f.writes(&offense);
    let subtask = writes.first().map_or_else(|| subtask_for_key(id.key.hash, f.parallelism), |w| w.writer);
    let mut reads = Vec::new();
    if let (Some(cause), Some((partition, offset))) = (cause, place) {
        f.input_steps(cause, partition, offset, &mut steps);
        reads = f.reads(partition, offset);
        for r in &reads {
            steps.push(f.read_step(r, partition, offset, subtask));
        }
    }
    for w in &writes {
        write_steps(w, &mut steps);
    }
    let from_ns = reads.first().map_or(0, |r| r.ns);
    let until_ns = f.story_end_ns(&offense, place, &reads, &writes);
    f.recovery_steps(from_ns, until_ns, place.map(|(p, _)| p), &mut steps);
    steps.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let why = f.why(&offense, cause, place, &reads, &writes);
    Story { kind: offense.kind().into(), output: show_id(&id), steps, why }
}

impl Facts<'_> {
    /// The input's partition and offset in the final logs: the record of `cause` with the
    /// output's key, or else the only record of `cause` (an output keyed otherwise than its
    /// input: a join's, a Nexmark query's).
    fn place(&self, cause: Cause, key: &KeyBytes) -> Option<(u32, u64)> {
        let mut of_cause = Vec::new();
        for (&partition, records) in self.logs {
            for (offset, r) in (0u64..).zip(records) {
                let Payload::Data(e) = &r.payload else { continue };
                if (r.producer, r.seq) != (cause.producer, cause.seq) {
                    continue;
                }
                if e.key == *key {
                    return Some((partition, offset));
                }
                of_cause.push((partition, offset));
            }
        }
        match of_cause.as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// The input's send, append and acknowledgement.
    fn input_steps(&self, cause: Cause, partition: u32, offset: u64, steps: &mut Vec<StoryStep>) {
        let input = format!("producer {} · seq {}", cause.producer, cause.seq);
        let producer = |node: &NodeId| {
            node.role == faultline_engine::cluster::Role::Producer && node.index == cause.producer
        };
        let sent = self.events.iter().find(|(_, node, e)| {
            producer(node)
                && matches!(*e, TraceEvent::ProduceSent { partition: p, base_seq, records }
                    if p == partition && (base_seq..base_seq + records).contains(&cause.seq))
        });
        let sent_ns = sent.map_or(0, |s| s.0);
        if let Some((ns, node, _)) = sent {
            steps.push(step(*ns, format!("{} sent input {input} to partition {partition}", node.name())));
        }
        let appended = self.events.iter().find(|(ns, _, e)| {
            *ns >= sent_ns
                && matches!(*e, TraceEvent::Appended { partition: p, base_offset, records }
                    if p == partition && (base_offset..base_offset + records).contains(&offset))
        });
        if let Some((ns, node, _)) = appended {
            steps.push(step(
                *ns,
                format!("{} appended it at offset {offset} of partition {partition}", node.name()),
            ));
        }
        let acked = self.events.iter().find(|(ns, node, e)| {
            *ns >= sent_ns
                && producer(node)
                && matches!(*e, TraceEvent::ProduceAcked { partition: p, end_seq } if p == partition && end_seq > cause.seq)
        });
        if let Some((ns, _, _)) = acked {
            steps.push(step(*ns, format!("the log acknowledged {input}")));
        }
    }

    /// Every read of `offset` of `partition` by a source subtask, in trace order.
    fn reads(&self, partition: u32, offset: u64) -> Vec<Read> {
        let covers = |e: &TraceEvent| match *e {
            TraceEvent::SourceRead { subtask, epoch, partition: p, offset: from, records } => {
                (p == partition && (from..from + records).contains(&offset)).then_some((subtask, epoch))
            }
            _ => None,
        };
        self.events
            .iter()
            .filter_map(|(ns, node, e)| {
                covers(e).map(|(subtask, epoch)| Read { ns: *ns, node: *node, subtask, epoch })
            })
            .collect()
    }

    /// One read, with the workers that ran the keyed subtask `subtask` in the read's epoch.
    fn read_step(&self, r: &Read, partition: u32, offset: u64, subtask: u32) -> StoryStep {
        let mut workers: Vec<String> = Vec::new();
        for (ns, node, e) in self.events {
            let deployed = matches!(*e, TraceEvent::TaskDeployed { operator, subtask: s, epoch, .. }
                if operator == self.keyed_chain && s == subtask && epoch == r.epoch);
            if deployed && *ns <= r.ns && !workers.contains(&node.name()) {
                workers.push(node.name());
            }
        }
        let stage = match workers.as_slice() {
            [] => format!("keyed subtask {subtask} had not been deployed yet"),
            w => format!("keyed subtask {subtask}, which owns its key, ran on {}", w.join(" and ")),
        };
        let text = format!(
            "source subtask {} on {} read offset {offset} of partition {partition} in epoch {}; {stage}",
            r.subtask,
            r.node.name(),
            r.epoch
        );
        StoryStep { at_ms: ms(r.ns), text }
    }

    /// The sink entries that carried the output (by id under exactly-once, by key and cause
    /// otherwise), each with how it ended.
    fn writes(&self, offense: &Offense) -> Vec<Write> {
        let id = offense.id();
        let carries = |r: &OutputRecord| match self.semantics {
            Semantics::ExactlyOnce => r.id == id,
            Semantics::AtLeastOnce | Semantics::AtMostOnce => {
                (&r.id.key, r.id.origin, r.id.n) == (&id.key, id.origin, id.n)
            }
        };
        let mut writes = Vec::new();
        for (ms, e) in self.sink {
            let (writer, writer_epoch, records, txn) = match e {
                SinkEvent::Append { writer, epoch, records }
                | SinkEvent::Upsert { writer, epoch, records } => (*writer, *epoch, records, None),
                SinkEvent::Prepare { txn, checkpoint, records, .. } => {
                    (txn.writer, txn.epoch, records, Some((*txn, *checkpoint)))
                }
                _ => continue,
            };
            if !records.iter().any(carries) {
                continue;
            }
            let committed_ms = match txn {
                None => Some(*ms),
                Some((t, _)) => self.settled(t, true),
            };
            let aborted_ms = txn.and_then(|(t, _)| self.settled(t, false));
            writes.push(Write { ms: *ms, writer, writer_epoch, txn, committed_ms, aborted_ms });
        }
        writes
    }

    /// When transaction `txn` was committed (`commit`) or aborted.
    fn settled(&self, txn: TxnId, commit: bool) -> Option<u64> {
        self.sink.iter().find_map(|(ms, e)| match e {
            SinkEvent::Commit { txn: t, .. } if commit && *t == txn => Some(*ms),
            SinkEvent::Abort { txn: t, .. } if !commit && *t == txn => Some(*ms),
            _ => None,
        })
    }

    /// Where each source resumed `partition`, in trace order.
    fn resumes(&self, partition: u32) -> Vec<Resume> {
        self.events
            .iter()
            .filter_map(|(ns, _, e)| match *e {
                TraceEvent::SourceResumed { epoch, partition: p, offset, .. } if p == partition => {
                    Some(Resume { ns: *ns, epoch, offset })
                }
                _ => None,
            })
            .collect()
    }

    /// Where the story stops: the first resumption past a lost input after its last read, or
    /// the last write of a duplicate or wrong output; the run's end otherwise.
    fn story_end_ns(
        &self,
        offense: &Offense,
        place: Option<(u32, u64)>,
        reads: &[Read],
        writes: &[Write],
    ) -> u64 {
        if let Offense::Lost(_) = offense {
            let (Some((partition, offset)), Some(last)) = (place, reads.last()) else { return u64::MAX };
            return self
                .resumes(partition)
                .iter()
                .find(|r| r.ns > last.ns && r.epoch > last.epoch && r.offset > offset)
                .map_or(u64::MAX, |r| r.ns);
        }
        writes.iter().map(|w| w.committed_ms.unwrap_or(w.ms) * 1_000_000).max().unwrap_or(u64::MAX)
    }

    /// The recoveries between `from_ns` and `until_ns`, each after the fault that caused it, and
    /// where each new epoch resumed `partition`.
    fn recovery_steps(
        &self,
        from_ns: u64,
        until_ns: u64,
        partition: Option<u32>,
        steps: &mut Vec<StoryStep>,
    ) {
        let mut named = vec![false; self.faults.len()];
        for (ns, _, e) in self.events.iter().filter(|(ns, _, _)| (from_ns..=until_ns).contains(ns)) {
            let what = match *e {
                TraceEvent::RecoveryStarted { epoch, checkpoint } => format!(
                    "the manager began recovery: epoch {epoch} restores {}",
                    restored_name(checkpoint)
                ),
                TraceEvent::Failover { epoch, checkpoint, promoted, restarted } => format!(
                    "workers were lost: within epoch {epoch}, {promoted} copies took over and {restarted} sources \
                     restarted, agreeing on {}",
                    restored_name(checkpoint)
                ),
                TraceEvent::SourceResumed { subtask, epoch, partition: p, offset } if Some(p) == partition => {
                    steps.push(step(
                        *ns,
                        format!("source subtask {subtask} of epoch {epoch} resumed partition {p} at offset {offset}"),
                    ));
                    continue;
                }
                _ => continue,
            };
            if let Some(i) = self.cause_of_recovery(*ns, &named) {
                named[i] = true;
                let f = &self.faults[i];
                steps.push(StoryStep { at_ms: f.at_ms as f64, text: format!("fault: {}", show_fault(f)) });
            }
            steps.push(step(*ns, what));
        }
    }

    /// The latest effective fault at or before `ns` not named yet.
    fn cause_of_recovery(&self, ns: u64, named: &[bool]) -> Option<usize> {
        (0..self.faults.len())
            .rev()
            .find(|&i| !named[i] && self.faults[i].effective && self.faults[i].at_ms * 1_000_000 <= ns)
    }

    /// Why the output ended as it did.
    fn why(
        &self,
        offense: &Offense,
        cause: Option<Cause>,
        place: Option<(u32, u64)>,
        reads: &[Read],
        writes: &[Write],
    ) -> String {
        let unplaced = match cause {
            Some(c) => format!(
                "Its input, producer {} · seq {}, cannot be placed: no log holds it under the output's key, and \
                 not exactly one holds it under another.",
                c.producer, c.seq
            ),
            None => "What a timer emits descends from no one input the model names: it cannot be placed.".into(),
        };
        match (offense, place) {
            (Offense::Lost(_), Some((partition, offset))) => self.why_lost(partition, offset, reads, writes),
            (Offense::Lost(_), None) => unplaced,
            (Offense::Duplicate(_), _) => self.why_duplicate(place, writes),
            (Offense::Wrong(r), _) => self.why_wrong(r),
        }
    }

    fn why_lost(&self, partition: u32, offset: u64, reads: &[Read], writes: &[Write]) -> String {
        let Some(last) = reads.last() else {
            return format!("No source subtask ever read offset {offset} of partition {partition}.");
        };
        let fate = match writes.iter().find(|w| w.txn.is_some()) {
            Some(w) if w.aborted_ms.is_some() => {
                "its output was prepared in a transaction that was aborted".to_string()
            }
            Some(_) => "its output was prepared in a transaction that never committed".to_string(),
            None => "its output never reached the sink".to_string(),
        };
        let resumes = self.resumes(partition);
        let Some(next) = resumes.iter().find(|r| r.ns > last.ns && r.epoch > last.epoch) else {
            return format!(
                "Epoch {} read the input last, {fate}, and no later epoch read partition {partition} again.",
                last.epoch
            );
        };
        let reason = match self.semantics {
            Semantics::AtMostOnce => {
                "at-most-once commits a source's offsets as it reads them, before the records are processed, so \
                 a new epoch resumes past whatever the failed one had read"
            }
            Semantics::ExactlyOnce | Semantics::AtLeastOnce => {
                "that is where the restored checkpoint says the input was processed, so the output should have \
                 been committed with that checkpoint"
            }
        };
        format!(
            "Epoch {} read the input, and {fate} before the epoch ended. Epoch {} resumed partition {partition} at \
             offset {}, past offset {offset}, and never read it again: {reason}.",
            last.epoch, next.epoch, next.offset
        )
    }

    fn why_duplicate(&self, place: Option<(u32, u64)>, writes: &[Write]) -> String {
        let committed: Vec<&Write> = writes.iter().filter(|w| w.committed_ms.is_some()).collect();
        let list: Vec<String> = committed.iter().map(|w| show_commit(w)).collect();
        let (Some(first), Some(second)) = (committed.first(), committed.get(1)) else {
            return format!("Committed {} times: {}.", committed.len(), list.join("; "));
        };
        let reread = self.why_again(place, first, second);
        let sink = match self.sink_mode {
            SinkMode::Plain => {
                "A plain sink makes each write visible at once and keeps it: nothing took back the first."
            }
            SinkMode::Idempotent => {
                "An idempotent sink keeps one record per id, so the second write came under another."
            }
            SinkMode::Transactional => "Both transactions committed.",
        };
        format!("Committed {} times: {}.{reread} {sink}", committed.len(), list.join("; "))
    }

    /// How the epoch of the `second` commit came to produce the output again.
    fn why_again(&self, place: Option<(u32, u64)>, first: &Write, second: &Write) -> String {
        let epoch = second.writer_epoch >> 16;
        if let Some((partition, offset)) = place {
            // It resumed the partition before the input, after the first commit.
            let again = self
                .resumes(partition)
                .into_iter()
                .rev()
                .find(|r| r.epoch == epoch && r.ns >= first.ms * 1_000_000 && r.offset <= offset);
            if let Some(r) = again {
                return format!(
                    " Epoch {epoch} resumed partition {partition} at offset {}, before offset {offset}, so it read \
                     the input again and wrote its output a second time.",
                    r.offset
                );
            }
        }
        let restored = self.events.iter().find_map(|(_, _, e)| match *e {
            TraceEvent::RecoveryStarted { epoch: e, checkpoint } if e == epoch => Some(checkpoint),
            _ => None,
        });
        match restored {
            Some(checkpoint) => format!(
                " Epoch {epoch} restored {}, whose state still held the output unwritten, and produced it again.",
                restored_name(checkpoint)
            ),
            None => String::new(),
        }
    }

    fn why_wrong(&self, r: &OutputRecord) -> String {
        let committed = format!(
            "{} from producer {} · seq {}",
            (self.show)(&r.id, &r.value),
            r.cause.producer,
            r.cause.seq
        );
        match self.expected.get(&r.id) {
            Some(want) => {
                let from = want
                    .cause
                    .map_or(String::new(), |c| format!(" from producer {} · seq {}", c.producer, c.seq));
                format!(
                    "The sink holds {committed}; the reference expects {}{from}.",
                    (self.show)(&r.id, &want.value)
                )
            }
            None => format!("The sink holds {committed}; the reference expects no output with this id."),
        }
    }
}

/// A write's steps: when it was written, and when its transaction settled.
fn write_steps(w: &Write, steps: &mut Vec<StoryStep>) {
    let who = format!("writer {} of {}", w.writer, show_writer_epoch(w.writer_epoch));
    let Some((txn, checkpoint)) = w.txn else {
        steps.push(StoryStep {
            at_ms: w.ms as f64,
            text: format!("{who} wrote it to the sink, visible at once"),
        });
        return;
    };
    let name = format!("transaction {} of {who}", txn.txn);
    steps.push(StoryStep {
        at_ms: w.ms as f64,
        text: format!("{name} prepared it for checkpoint {checkpoint}"),
    });
    if let Some(ms) = w.committed_ms {
        steps.push(StoryStep { at_ms: ms as f64, text: format!("the sink committed {name}") });
    }
    if let Some(ms) = w.aborted_ms {
        steps.push(StoryStep { at_ms: ms as f64, text: format!("the sink aborted {name}") });
    }
}

fn show_commit(w: &Write) -> String {
    let at = w.committed_ms.expect("a commit");
    match w.txn {
        None => format!("by writer {} of {} at {at} ms", w.writer, show_writer_epoch(w.writer_epoch)),
        Some((txn, checkpoint)) => format!(
            "in transaction {} of writer {} of {} for checkpoint {checkpoint}, at {at} ms",
            txn.txn,
            w.writer,
            show_writer_epoch(w.writer_epoch)
        ),
    }
}

/// A writer epoch as its job epoch, and its generation when a copy took over.
fn show_writer_epoch(writer_epoch: u64) -> String {
    match (writer_epoch >> 16, writer_epoch & 0xffff) {
        (epoch, 0) => format!("epoch {epoch}"),
        (epoch, generation) => format!("epoch {epoch} (generation {generation})"),
    }
}

fn restored_name(checkpoint: u64) -> String {
    match checkpoint {
        0 => "no checkpoint, from the start".to_string(),
        c => format!("checkpoint {c}"),
    }
}

fn show_fault(f: &FaultRecord) -> String {
    let peer = f.peer.as_ref().map_or(String::new(), |p| format!("–{p}"));
    format!("{} {} of {}{peer}", f.class, f.action, f.target)
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn step(ns: u64, text: String) -> StoryStep {
    StoryStep { at_ms: ms(ns), text }
}

#[cfg(test)]
mod tests {
    use faultline_engine::cluster::Role;
    use faultline_engine::operators::builtin::Synthetic;
    use faultline_engine::record::Event;
    use faultline_engine::sdk::codec::encode;

    use super::*;
    use crate::checker::expected::Want;

    const KEY: u64 = 7;
    /// The input: producer 0's seq 2 of partition 1, at offset 2.
    const CAUSE: Cause = Cause { producer: 0, seq: 2 };

    fn logs() -> BTreeMap<u32, Vec<LogRecord>> {
        let record = |seq: u64, key: u64| LogRecord {
            producer: 0,
            seq,
            stream_time_ms: 5,
            payload: Payload::Data(Event {
                id: seq,
                key: KeyBytes::of(&key),
                value: encode(&Synthetic { id: seq, kind: 0, value: 1 }),
                event_time_ms: 5,
            }),
        };
        BTreeMap::from([(1, (0..4).map(|seq| record(seq, if seq == 2 { KEY } else { 1 })).collect())])
    }

    fn id() -> OutputId {
        OutputId::main(KeyBytes::of(&KEY), Origin::Input(CAUSE), 0)
    }

    fn expected() -> Expected {
        Expected::from_unsorted(vec![(id(), Want { value: encode(&1i64), cause: Some(CAUSE), ready_ms: 0 })])
    }

    fn node(role: Role, index: u32) -> NodeId {
        NodeId::new(role, index)
    }

    fn ms(ms: u64) -> u64 {
        ms * 1_000_000
    }

    /// The input sent, appended and acknowledged; source subtask 0 of epoch 1 on worker-1 reads
    /// offsets 0–3, keyed subtask `owner` runs on worker-2; worker-2 crashes at 30 ms, and
    /// epoch 2 (restoring checkpoint 1) resumes partition 1 at `resume`.
    fn history(resume: u64, reads_again: bool) -> Vec<(u64, NodeId, TraceEvent)> {
        let owner = subtask_for_key(KeyBytes::of(&KEY).hash, 2);
        let (worker1, worker2) = (node(Role::Worker, 0), node(Role::Worker, 1));
        let mut events = vec![
            (
                ms(1),
                node(Role::Producer, 0),
                TraceEvent::ProduceSent { partition: 1, base_seq: 0, records: 4 },
            ),
            (ms(2), node(Role::Broker, 2), TraceEvent::Appended { partition: 1, base_offset: 0, records: 4 }),
            (ms(3), node(Role::Producer, 0), TraceEvent::ProduceAcked { partition: 1, end_seq: 4 }),
            (
                ms(4),
                worker2,
                TraceEvent::TaskDeployed { operator: 1, subtask: owner, epoch: 1, generation: 0 },
            ),
            (ms(5), worker1, TraceEvent::SourceResumed { subtask: 0, epoch: 1, partition: 1, offset: 0 }),
            (
                ms(10),
                worker1,
                TraceEvent::SourceRead { subtask: 0, epoch: 1, partition: 1, offset: 0, records: 4 },
            ),
            (ms(40), node(Role::Manager, 0), TraceEvent::RecoveryStarted { epoch: 2, checkpoint: 1 }),
            (
                ms(41),
                worker1,
                TraceEvent::TaskDeployed { operator: 1, subtask: owner, epoch: 2, generation: 0 },
            ),
            (
                ms(42),
                worker1,
                TraceEvent::SourceResumed { subtask: 0, epoch: 2, partition: 1, offset: resume },
            ),
        ];
        if reads_again {
            let read = TraceEvent::SourceRead {
                subtask: 0,
                epoch: 2,
                partition: 1,
                offset: resume,
                records: 4 - resume,
            };
            events.push((ms(45), worker1, read));
        }
        events
    }

    fn crash() -> Vec<FaultRecord> {
        vec![FaultRecord {
            at_ms: 30,
            class: "processor".into(),
            target: "worker-2".into(),
            peer: None,
            action: "crash".into(),
            restart_after_ms: None,
            effective: true,
            healed_at_ms: None,
            mid_checkpoint: false,
        }]
    }

    fn output() -> OutputRecord {
        OutputRecord { id: id(), value: encode(&1i64), cause: CAUSE }
    }

    fn facts<'a>(
        events: &'a [(u64, NodeId, TraceEvent)],
        logs: &'a BTreeMap<u32, Vec<LogRecord>>,
        sink: &'a [(u64, SinkEvent)],
        faults: &'a [FaultRecord],
        expected: &'a Expected,
        semantics: Semantics,
        sink_mode: SinkMode,
    ) -> Facts<'a> {
        Facts {
            events,
            logs,
            sink,
            faults,
            expected,
            semantics,
            sink_mode,
            keyed_chain: 1,
            parallelism: 2,
            show: &show,
        }
    }

    fn show(_: &OutputId, bytes: &[u8]) -> String {
        format!("{}", faultline_engine::sdk::codec::decode::<i64>(bytes))
    }

    fn texts(story: &Story) -> Vec<&str> {
        story.steps.iter().map(|s| s.text.as_str()).collect()
    }

    #[test]
    fn a_lost_output_names_its_input_the_epoch_that_read_it_the_fault_and_where_the_next_epoch_resumed() {
        let (events, logs, expected, faults) = (history(4, false), logs(), expected(), crash());
        let f =
            facts(&events, &logs, &[], &faults, &expected, Semantics::AtMostOnce, SinkMode::Transactional);
        let story = tell(&f, Offense::Lost(id()));
        assert_eq!((story.kind.as_str(), story.output.as_str()), ("lost", "key 7 · input 0/2"));
        let steps = texts(&story);
        let owner = subtask_for_key(KeyBytes::of(&KEY).hash, 2);
        assert_eq!(
            steps,
            [
                "producer-1 sent input producer 0 · seq 2 to partition 1",
                "broker-3 appended it at offset 2 of partition 1",
                "the log acknowledged producer 0 · seq 2",
                &format!(
                    "source subtask 0 on worker-1 read offset 2 of partition 1 in epoch 1; keyed subtask {owner}, \
                     which owns its key, ran on worker-2"
                ),
                "fault: processor crash of worker-2",
                "the manager began recovery: epoch 2 restores checkpoint 1",
                "source subtask 0 of epoch 2 resumed partition 1 at offset 4",
            ]
        );
        let times: Vec<f64> = story.steps.iter().map(|s| s.at_ms).collect();
        assert_eq!(times, [1.0, 2.0, 3.0, 10.0, 30.0, 40.0, 42.0]);
        assert!(
            story.why.contains("Epoch 2 resumed partition 1 at offset 4, past offset 2"),
            "{}",
            story.why
        );
        assert!(
            story.why.contains("at-most-once commits a source's offsets as it reads them"),
            "{}",
            story.why
        );
        assert!(story.why.contains("never reached the sink"), "{}", story.why);
    }

    #[test]
    fn a_lost_output_whose_transaction_aborted_says_so() {
        let (events, logs, expected, faults) = (history(4, false), logs(), expected(), crash());
        let txn = TxnId { writer: 0, epoch: 1 << 16, txn: 3 };
        let sink = [
            (20, SinkEvent::Prepare { txn, checkpoint: 2, records: vec![output()], received: vec![(15, 1)] }),
            (41, SinkEvent::Abort { txn, checkpoint: 2, by_epoch: 2 << 16 }),
        ];
        let f =
            facts(&events, &logs, &sink, &faults, &expected, Semantics::ExactlyOnce, SinkMode::Transactional);
        let story = tell(&f, Offense::Lost(id()));
        let steps = texts(&story);
        assert!(
            steps.contains(&"transaction 3 of writer 0 of epoch 1 prepared it for checkpoint 2"),
            "{steps:?}"
        );
        assert!(steps.contains(&"the sink aborted transaction 3 of writer 0 of epoch 1"), "{steps:?}");
        assert!(story.why.contains("prepared in a transaction that was aborted"), "{}", story.why);
        assert!(
            story.why.contains("where the restored checkpoint says the input was processed"),
            "{}",
            story.why
        );
    }

    #[test]
    fn a_duplicate_names_both_commits_their_epochs_and_the_epoch_that_read_the_input_again() {
        let (events, logs, expected, faults) = (history(0, true), logs(), expected(), crash());
        let sink = [
            (12, SinkEvent::Append { writer: 1, epoch: 1 << 16, records: vec![output()] }),
            (47, SinkEvent::Append { writer: 1, epoch: 2 << 16, records: vec![output()] }),
        ];
        let f = facts(&events, &logs, &sink, &faults, &expected, Semantics::ExactlyOnce, SinkMode::Plain);
        let story = tell(&f, Offense::Duplicate(output()));
        let steps = texts(&story);
        assert!(steps.contains(&"writer 1 of epoch 1 wrote it to the sink, visible at once"), "{steps:?}");
        assert!(steps.contains(&"writer 1 of epoch 2 wrote it to the sink, visible at once"), "{steps:?}");
        assert!(steps.iter().any(|s| s.contains("read offset 2 of partition 1 in epoch 2")), "{steps:?}");
        assert!(
            story.why.starts_with(
                "Committed 2 times: by writer 1 of epoch 1 at 12 ms; by writer 1 of epoch 2 at 47 ms."
            ),
            "{}",
            story.why
        );
        assert!(
            story.why.contains("Epoch 2 resumed partition 1 at offset 0, before offset 2"),
            "{}",
            story.why
        );
        assert!(story.why.contains("A plain sink"), "{}", story.why);
    }

    #[test]
    fn a_wrong_output_shows_its_value_beside_the_reference() {
        let (events, logs, expected) = (history(4, false), logs(), expected());
        let wrong = OutputRecord { value: encode(&9i64), ..output() };
        let sink = [(12, SinkEvent::Upsert { writer: 1, epoch: 1 << 16, records: vec![wrong.clone()] })];
        let f = facts(&events, &logs, &sink, &[], &expected, Semantics::ExactlyOnce, SinkMode::Idempotent);
        let story = tell(&f, Offense::Wrong(wrong));
        assert_eq!(
            story.why,
            "The sink holds 9 from producer 0 · seq 2; the reference expects 1 from producer 0 · seq 2."
        );
    }

    #[test]
    fn output_ids_parse_as_printed() {
        for id in [
            id(),
            OutputId::main(KeyBytes::of("card-7"), Origin::Timer { at_ms: 60_000, tag: 5 }, 1),
            OutputId::main(KeyBytes::of(&3u64), Origin::Content(0x00ff_1234), 0),
        ] {
            assert_eq!(parse_output_id(&show_id(&id)), Ok(id.clone()), "{}", show_id(&id));
        }
        assert!(parse_output_id("12").is_err());
        assert!(parse_output_id("key 3 · window 4").is_err());
        assert!(parse_output_id("key x · input 0/1").is_err());
    }
}
