//! The allocator faultline's binaries run on: mimalloc, with transparent huge pages, keeping
//! the memory it frees instead of handing it back to the OS.
//!
//! A run allocates and frees batches, logs and judging buffers at a high rate, and its working
//! set is hundreds of MiB. Measured on Nexmark q1 (`bench --pipeline nexmark-q1 --events
//! 200000`):
//! - with 4 KiB pages (mimalloc's `no_thp`) the run spends its time on TLB misses and page
//!   faults: 160,000 faults, 2.7 s of user time;
//! - with huge pages, mimalloc's purge (after 1 s by default) returns pages that then fault back
//!   in as whole 2 MiB pages to clear: 1.3 s of system time;
//! - with huge pages and no purge: 540 faults, 1.9 s of user time and 0.1 s of system time.
//!
//! Memory is still reused: freed blocks go back to mimalloc's free lists, so the resident size
//! stays at the run's peak (466 MiB on that run, against 443 MiB with purging).
//!
//! A binary declares the allocator and calls [`retain_freed_pages`] first thing in `main`:
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: faultline_alloc::MiMalloc = faultline_alloc::MiMalloc;
//!
//! fn main() {
//!     faultline_alloc::retain_freed_pages();
//! }
//! ```

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay`'s index in mimalloc v3's `mi_option_t`. libmimalloc-sys names no
/// constant for it; the test below checks the index against mimalloc's own option table.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to purge freed memory back to the OS.
///
/// # Panics
/// If mimalloc does not read the option back as set (a version whose option table moved).
pub fn retain_freed_pages() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` stores a value in mimalloc's option table, which it reads each
    // time it decides to purge; it takes any option index and may be called at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
    assert_eq!(purge_delay(), -1, "mimalloc did not take purge_delay = -1");
}

fn purge_delay() -> std::os::raw::c_long {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_get` reads mimalloc's option table; any index in range is valid.
    unsafe {
        libmimalloc_sys::mi_option_get(PURGE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_is_the_option_at_its_index() {
        // mimalloc v3's default purge delay is 1000 ms; no other option at a nearby index has it.
        assert_eq!(purge_delay(), 1000);
        retain_freed_pages();
        assert_eq!(purge_delay(), -1);
    }
}
