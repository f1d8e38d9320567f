//! The run's input, generated once: [`Tape`] records each producer's events, a chunk at a
//! time, as they are first asked for, and [`Taped`] serves a pipeline's `generate` from it.
//! Input given event by event (`crate::given`) is on the tape from the start, in place of the
//! generator's.
//!
//! A pipeline's input is a pure function of the workload (see `Dataflow::generate`): a
//! restarted producer regenerates its events and skips what was acknowledged, and the checkers
//! regenerate the whole input to judge the output. Generating is a large share of a run's work
//! (the Nexmark generator builds every name, city and url), so a run generates each producer's
//! events once and replays them to every later reader. It generates no further ahead than its
//! furthest reader, as the producer alone would, and never copies what it holds, since
//! touching fresh memory is a large part of a run's wall time. The tape holds input only, the same
//! events a regeneration would give; it carries nothing from one node to another.

use std::sync::{Arc, Mutex};

use faultline_engine::plugin::Dataflow;
use faultline_engine::record::StreamRecord;
use faultline_engine::sdk::operator::ErasedOperator;
use faultline_engine::workload::{Emitted, WorkloadSpec};

use crate::given::Given;

/// Events per chunk of a reel. A chunk is allocated once at its final size: the tape grows
/// without ever copying what it holds, and a reader takes its lock once per chunk.
const CHUNK: usize = 4096;

/// Each producer's events under one workload, generated as they are first asked for.
pub struct Tape {
    workload: WorkloadSpec,
    reels: Vec<Mutex<Reel>>,
}

/// One producer's events so far, and the generator that continues them.
#[derive(Default)]
struct Reel {
    chunks: Vec<Arc<Vec<Emitted>>>,
    /// The generator, past the last chunk's events; `None` before the first read.
    rest: Option<Box<dyn Iterator<Item = Emitted> + Send>>,
    /// The generator ran dry: `chunks` holds every event.
    ended: bool,
}

impl Reel {
    /// Chunk `i`, generating up to it; `None` past the last event.
    fn chunk(
        &mut self,
        i: usize,
        generate: impl FnOnce() -> Box<dyn Iterator<Item = Emitted> + Send>,
    ) -> Option<Arc<Vec<Emitted>>> {
        if self.rest.is_none() && !self.ended {
            assert!(self.chunks.is_empty(), "chunks without the generator that made them");
            self.rest = Some(generate());
        }
        while self.chunks.len() <= i && !self.ended {
            let rest = self.rest.as_mut().expect("a reel not ended keeps its generator");
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.extend(rest.by_ref().take(CHUNK));
            assert!(chunk.len() <= CHUNK);
            if chunk.len() < CHUNK {
                self.ended = true;
                self.rest = None;
            }
            if !chunk.is_empty() {
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.chunks.get(i).cloned()
    }
}

impl Tape {
    pub fn new(workload: WorkloadSpec) -> Arc<Tape> {
        let reels = (0..workload.producers).map(|_| Mutex::new(Reel::default())).collect();
        Arc::new(Tape { workload, reels })
    }

    /// The tape of a run whose input is `given` (a scenario's `[[workload.given]]`), or, when
    /// nothing is given, of its pipeline's generator.
    pub fn of_run(workload: WorkloadSpec, given: &[Given]) -> Arc<Tape> {
        if given.is_empty() {
            return Tape::new(workload);
        }
        let reels = crate::given::emitted(given, &workload).into_iter().map(|events| {
            let chunks = events.chunks(CHUNK).map(|c| Arc::new(c.to_vec())).collect();
            Mutex::new(Reel { chunks, rest: None, ended: true })
        });
        Arc::new(Tape { reels: reels.collect(), workload })
    }

    /// Chunk `i` of producer `producer`'s events as `pipeline` generates them, generated on
    /// the first call that reaches it; `None` past the last event.
    pub fn chunk(&self, pipeline: &dyn Dataflow, producer: u32, i: usize) -> Option<Arc<Vec<Emitted>>> {
        let mut reel = self.reels[producer as usize].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        reel.chunk(i, || pipeline.generate(&self.workload, producer))
    }

    pub fn workload(&self) -> &WorkloadSpec {
        &self.workload
    }
}

/// A producer's events read back from a tape, a chunk at a time.
struct Replay {
    tape: Arc<Tape>,
    pipeline: Arc<dyn Dataflow>,
    producer: u32,
    /// The chunk being read, its index, and the next event's place in it.
    chunk: Option<Arc<Vec<Emitted>>>,
    index: usize,
    at: usize,
}

impl Iterator for Replay {
    type Item = Emitted;

    fn next(&mut self) -> Option<Emitted> {
        loop {
            let chunk = self.chunk.as_ref()?;
            if let Some(emitted) = chunk.get(self.at) {
                self.at += 1;
                return Some(emitted.clone());
            }
            assert_eq!(self.at, chunk.len(), "a replay ran past its chunk");
            self.index += 1;
            self.at = 0;
            self.chunk = self.tape.chunk(&*self.pipeline, self.producer, self.index);
        }
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
        let chunk = self.tape.chunk(&*self.inner, producer, 0);
        Box::new(Replay {
            tape: self.tape.clone(),
            pipeline: self.inner.clone(),
            producer,
            chunk,
            index: 0,
            at: 0,
        })
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
        let first = tape.chunk(&*inner, 1, 0).expect("producer 1 has events");
        assert!(Arc::ptr_eq(&first, &tape.chunk(&*inner, 1, 0).expect("a chunk")), "generated once");
    }
}
