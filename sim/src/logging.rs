//! Logs: `tracing` events stamped with simulated time, enabled by `FAULTLINE_LOG`.
//!
//! `FAULTLINE_LOG=debug faultline run ...` prints the engine's debug events on stderr, each
//! with the simulated instant it happened at and the node it happened on (madsim's span), so a
//! log read next to a trace lines up. Off by default: stdout stays clean for `--json`.

use std::fmt;

use madsim::time::TimeHandle;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

/// The variable that turns logging on, with an `EnvFilter` directive (`debug`, `faultline_engine=trace`).
pub const LOG_VARIABLE: &str = "FAULTLINE_LOG";

struct SimulatedTime;

impl FormatTime for SimulatedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match TimeHandle::try_current() {
            Some(time) => write!(w, "{:>12.3}ms", time.elapsed().as_secs_f64() * 1000.0),
            None => write!(w, "{:>14}", "-"),
        }
    }
}

/// Installs the subscriber if `FAULTLINE_LOG` is set; does nothing otherwise.
pub fn init() {
    let Ok(directives) = std::env::var(LOG_VARIABLE) else { return };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("warning: {LOG_VARIABLE}={directives:?} is not a valid filter ({e}); logging warnings");
        EnvFilter::new("warn")
    });
    _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(SimulatedTime)
        .with_writer(std::io::stderr)
        .try_init();
}
