//! Simulated time, read explicitly from madsim's clock.
//!
//! The engine reads time only through here, so that no code path can reach the OS clock by
//! accident: `std::time::Instant::now` is banned by clippy.toml.

use std::time::{Duration, Instant};

use madsim::time::TimeHandle;

/// The current simulated instant.
pub fn now() -> Instant {
    TimeHandle::current().now_instant()
}

/// Simulated milliseconds since the run started: the cluster's shared notion of "now".
pub fn elapsed_ms() -> u64 {
    TimeHandle::current().elapsed().as_millis() as u64
}

/// Waits for `future` until `deadline`; `None` if the deadline passed first.
pub async fn until<F: std::future::Future>(deadline: Instant, future: F) -> Option<F::Output> {
    let left = deadline.saturating_duration_since(now());
    if left == Duration::ZERO {
        return None;
    }
    madsim::time::timeout(left, future).await.ok()
}
