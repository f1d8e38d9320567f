//! The differential oracle: a pipeline's own stages, run fault-free and sequentially over the
//! same input, give the output a faulted run must commit.
//!
//! Each stage runs on the engine's pure keyed-stage core (`worker::stage::Stage`) over one
//! in-memory state, with no network, no parallelism and no checkpoints: every kept input in
//! log order (the inputs the run found late left out, as its late output says), then the end
//! of time — the watermark at its maximum, every timer fired. What a stage emits feeds the next
//! stage in the order emitted. Output ids come from the same operator adapter the engine runs,
//! so they match the faulted run's exactly; a faulted run that lost, repeated or changed an
//! output differs.
//!
//! This is a correct oracle for operators whose results do not depend on when watermarks
//! arrive (given which records are late): Flink's contract for event-time operators. An
//! operator that reads the watermark to decide what to emit is judged against the earliest
//! watermarks the fault-free run sees, and may fail where the engine did nothing wrong.

use std::collections::BTreeSet;

use faultline_engine::plugin::Dataflow;
use faultline_engine::record::{Cause, Origin, OutputId, OutputRecord, StreamRecord};
use faultline_engine::state::KeyedState;
use faultline_engine::worker::stage::{Emit, Stage};

use crate::checker::expected::{Expected, Want};

/// The output of `pipeline` over `inputs` minus `late`, computed sequentially.
pub fn differential<D: Dataflow + ?Sized>(
    pipeline: &D,
    inputs: &[crate::checker::expected::Input],
    late: &BTreeSet<(Cause, u32)>,
) -> Expected {
    let stages = pipeline.stages();
    assert!(stages >= 1, "a pipeline has a keyed stage");
    let mut records: Vec<StreamRecord> = inputs
        .iter()
        .filter(|i| !late.contains(&i.name()))
        .map(|i| StreamRecord::of(&i.event, 0, i.cause, i.partition, 0))
        .filter_map(|mut r| pipeline.source_step(&mut r).then_some(r))
        .collect();
    let mut outputs = Vec::new();
    for s in 0..stages {
        let last = s + 1 == stages;
        let emits = run_stage(pipeline, s, !last, records);
        records = Vec::with_capacity(emits.len());
        for emit in emits {
            match emit {
                Emit::Output(r) => outputs.push(r),
                Emit::Forward(r) => records.push(r),
            }
        }
        assert!(!last || records.is_empty(), "the last stage forwards nothing");
    }
    Expected::from_unsorted(outputs.into_iter().map(want).collect())
}

/// One stage over `records`, then the end of time.
fn run_stage<D: Dataflow + ?Sized>(
    pipeline: &D,
    stage: u32,
    intermediate: bool,
    records: Vec<StreamRecord>,
) -> Vec<Emit> {
    let mut state = KeyedState::default();
    let mut core = Stage::new(pipeline.stage(stage), pipeline.allowed_lateness_ms(), intermediate);
    let mut out = Vec::new();
    for record in &records {
        // Sequential: no record arrives behind the watermark, so none has an arrival time.
        core.handle(&mut state, record, 0, &mut out);
    }
    state.advance_watermark(u64::MAX);
    core.fire(&mut state, u64::MAX, &mut out);
    out
}

/// An output as the oracle expects it: its value, and its cause where its origin is an input
/// (what a timer emits carries the cause of the input that set the timer, which the oracle does
/// not judge).
fn want(r: OutputRecord) -> (OutputId, Want) {
    let cause = match r.id.origin {
        Origin::Input(cause) => Some(cause),
        _ => None,
    };
    (r.id, Want { value: r.value, cause, ready_ms: 0 })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use faultline_engine::workload::{Input as Source, WorkloadSpec};

    use crate::checker::expected::{inputs, Expected};

    fn workload(input: Source, streams: u32) -> WorkloadSpec {
        WorkloadSpec {
            input,
            seed: 11,
            events: if input == Source::Nexmark { 20_000 } else { 3_000 },
            keys: 12,
            partitions: 4,
            producers: 2,
            rate_per_s: 2_000,
            value_max: 100,
            streams,
            disorder_ms: 30,
            late_per_mille: 0,
            late_by_ms: 0,
        }
    }

    fn outputs(e: &Expected) -> Vec<(String, Vec<u8>)> {
        e.iter().map(|(id, want)| (format!("{id:?}"), want.value.to_vec())).collect()
    }

    /// The built-ins' independent models and their own operators run sequentially agree: the
    /// differential oracle computes what the models define, ids included.
    #[test]
    fn the_differential_oracle_agrees_with_every_builtin_model() {
        let table = |text: &str| -> toml::Table { toml::from_str(text).expect("test params parse") };
        let cases = [
            ("running-aggregate", "map_scale = 3\nfilter_drop_multiples_of = 7", Source::Synthetic, 1),
            ("window", "window = \"tumbling\"\nsize_ms = 100", Source::Synthetic, 1),
            ("window", "window = \"sliding\"\nsize_ms = 200\nslide_ms = 50", Source::Synthetic, 1),
            ("window", "window = \"session\"\ngap_ms = 30", Source::Synthetic, 1),
            ("window", "window = \"count-sliding\"\nsize = 6\nslide = 3", Source::Synthetic, 1),
            ("top-n", "window = \"tumbling\"\nsize_ms = 100\nn = 2", Source::Synthetic, 1),
            ("window-join", "window = \"tumbling\"\nsize_ms = 100", Source::Synthetic, 2),
            ("interval-join", "bound_ms = 40", Source::Synthetic, 2),
            ("nexmark-q2", "", Source::Nexmark, 1),
            ("nexmark-q4", "", Source::Nexmark, 1),
            ("nexmark-q5", "size_ms = 1000\nslide_ms = 200", Source::Nexmark, 1),
            ("nexmark-q8", "size_ms = 100", Source::Nexmark, 1),
            ("nexmark-q3", "", Source::Nexmark, 1),
        ];
        let registry = crate::builtins::registry();
        for (name, params, input, streams) in cases {
            let pipeline = registry.build(name, &table(params)).expect("the case builds");
            let all = inputs(&workload(input, streams), &*pipeline);
            let none = BTreeSet::new();
            let model = pipeline.oracle(&all, &none);
            let differential = super::differential(&*pipeline, &all, &none);
            assert!(!model.is_empty(), "{name} {params}: the model expects output");
            assert_eq!(outputs(&differential), outputs(&model), "{name} {params}");
        }
    }
}
