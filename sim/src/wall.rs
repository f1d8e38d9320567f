//! Wall-clock time, for reporting how long runs took — never for anything a run decides.
//!
//! This is the one place the OS clock is read. It must be called outside `Runtime::block_on`:
//! inside a simulation, madsim answers `Instant::now` with simulated time.

use std::time::Instant;

pub struct WallClock {
    start: Instant,
}

impl WallClock {
    #[allow(clippy::disallowed_methods)]
    pub fn start() -> Self {
        WallClock { start: Instant::now() }
    }

    pub fn elapsed_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
}
