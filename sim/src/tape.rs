//! The run's input, generated once: [`Tape`] records each producer's events the first time
//! they are asked for, and [`Taped`] serves a pipeline's `generate` from it.
//!
//! A pipeline's input is a pure function of the workload (see `Dataflow::generate`): a
//! restarted producer regenerates its events and skips what was acknowledged, and the checkers
//! regenerate the whole input to judge the output. Generating is a large share of a run's work
//! (the Nexmark generator builds every name, city and url), so a run generates each producer's
//! events once and replays them to every later reader. The tape holds input only, the same
//! events a regeneration would give; it carries nothing from one node to another.

use std::sync::{Arc, OnceLock};

use faultline_engine::plugin::Dataflow;
use faultline_engine::record::StreamRecord;
use faultline_engine::sdk::operator::ErasedOperator;
use faultline_engine::workload::{Emitted, WorkloadSpec};

/// Each producer's events under one workload, generated on first use.
pub struct Tape {
    workload: WorkloadSpec,
    producers: Vec<OnceLock<Arc<[Emitted]>>>,
}

impl Tape {
    pub fn new(workload: WorkloadSpec) -> Arc<Tape> {
        let producers = (0..workload.producers).map(|_| OnceLock::new()).collect();
        Arc::new(Tape { workload, producers })
    }

    /// Producer `producer`'s events as `pipeline` generates them, generated on the first call.
    pub fn events(&self, pipeline: &dyn Dataflow, producer: u32) -> Arc<[Emitted]> {
        let slot = &self.producers[producer as usize];
        slot.get_or_init(|| pipeline.generate(&self.workload, producer).collect()).clone()
    }

    pub fn workload(&self) -> &WorkloadSpec {
        &self.workload
    }
}

/// A pipeline whose input comes from a tape; everything else is the pipeline's own. Every
/// method of `Dataflow` is forwarded, those with defaults too: a default here would quietly
/// replace the pipeline's own answer.
pub struct Taped {
    pub inner: Arc<dyn Dataflow>,
    pub tape: Arc<Tape>,
}

impl Dataflow for Taped {
    fn label(&self) -> String {
        self.inner.label()
    }

    fn stages(&self) -> u32 {
        self.inner.stages()
    }

    fn stage(&self, stage: u32) -> Box<dyn ErasedOperator> {
        self.inner.stage(stage)
    }

    fn allowed_lateness_ms(&self) -> u64 {
        self.inner.allowed_lateness_ms()
    }

    fn source_step(&self, record: &mut StreamRecord) -> bool {
        self.inner.source_step(record)
    }

    fn event_time(&self) -> bool {
        self.inner.event_time()
    }

    fn fires_on_watermark(&self) -> bool {
        self.inner.fires_on_watermark()
    }

    fn generate(&self, workload: &WorkloadSpec, producer: u32) -> Box<dyn Iterator<Item = Emitted> + Send> {
        assert_eq!(workload, self.tape.workload(), "a node asked for another workload than the run's");
        let events = self.tape.events(&*self.inner, producer);
        Box::new((0..events.len()).map(move |i| events[i].clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taped_pipeline_generates_what_the_pipeline_does() {
        let sets = ["workload.events=300".to_string(), "workload.producers=2".to_string()];
        let loaded = crate::scenario::load(std::path::Path::new("../scenarios/nexmark-q5.toml"), &sets)
            .expect("the scenario loads");
        let inner = loaded.pipeline() as Arc<dyn Dataflow>;
        let workload = crate::world::workload_spec(&loaded.scenario, 7);
        let tape = Tape::new(workload.clone());
        let taped = Taped { inner: inner.clone(), tape: tape.clone() };
        // Everything but the input is the pipeline's own.
        assert_eq!(taped.label(), inner.label());
        assert_eq!(taped.stages(), inner.stages());
        assert_eq!(taped.allowed_lateness_ms(), inner.allowed_lateness_ms());
        assert_eq!(taped.event_time(), inner.event_time());
        assert_eq!(taped.fires_on_watermark(), inner.fires_on_watermark());
        for producer in 0..2 {
            let want: Vec<Emitted> = inner.generate(&workload, producer).collect();
            assert!(!want.is_empty());
            assert_eq!(taped.generate(&workload, producer).collect::<Vec<_>>(), want);
            assert_eq!(taped.generate(&workload, producer).collect::<Vec<_>>(), want, "a replay");
        }
        assert!(Arc::ptr_eq(&tape.events(&*inner, 1), &tape.events(&*inner, 1)), "generated once");
    }
}
