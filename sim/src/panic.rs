//! Panics as verdicts: a panic anywhere in a run — a node's task, the supervisor, a checker —
//! is caught and becomes the run's `panic` violation, never a crashed process.
//!
//! It owns the process's panic hook and the per-thread record of the last panic. The hook
//! notes where a panic struck (message, source location, and the simulated node and time
//! when it struck inside the simulation) for the thread that panicked; [`catch`] runs a phase
//! of a run and turns its panic into a [`Panicked`]. Engine assertions stay on: this only
//! makes their firing a failing seed with a replay command, like any other.
//!
//! It does not decide what a panicking run's record holds; the runner does.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use madsim::runtime::Handle;
use madsim::time::TimeHandle;

/// What a caught panic said, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panicked {
    pub message: String,
    /// `file:line:column` of the `panic!` or failed assertion.
    pub location: String,
    /// madsim's id of the node whose task panicked; `None` outside the simulation (checkers).
    pub node: Option<String>,
    /// Simulated time of the panic, inside the simulation.
    pub at_ms: Option<u64>,
}

thread_local! {
    /// Whether this thread runs seeds: its panics are verdicts, and the hook stays quiet.
    static RUN_THREAD: Cell<bool> = const { Cell::new(false) };
    /// What the hook saw of this thread's last panic.
    static LAST: RefCell<Option<Panicked>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Runs `phase`, turning a panic in it into [`Panicked`]. The calling thread becomes a run
/// thread: its panics are recorded, not printed (the record carries them).
pub fn catch<T>(phase: impl FnOnce() -> T) -> Result<T, Panicked> {
    install();
    RUN_THREAD.with(|r| r.set(true));
    LAST.with(|l| l.borrow_mut().take());
    let outcome = panic::catch_unwind(AssertUnwindSafe(phase));
    outcome.map_err(|payload| {
        let seen = LAST.with(|l| l.borrow_mut().take());
        seen.unwrap_or_else(|| Panicked {
            message: message_of(payload.as_ref()),
            location: "unknown".into(),
            node: None,
            at_ms: None,
        })
    })
}

/// Installs the hook once per process. Panics on other threads (a test's failed assertion,
/// a bug in the CLI) go to the hook that was there before, unchanged.
fn install() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !RUN_THREAD.with(Cell::get) {
                return previous(info);
            }
            let location = info.location().map_or("unknown".into(), |l| l.to_string());
            let (node, at_ms) = where_in_simulation();
            let message = message_of(info.payload());
            LAST.with(|l| *l.borrow_mut() = Some(Panicked { message, location, node, at_ms }));
        }));
    });
}

/// The node and simulated time of a panic inside the simulation. Inside `block_on` every
/// piece of code runs as some node's task (the supervisor is the main node's), so the task
/// context madsim keeps is set whenever its runtime context is.
fn where_in_simulation() -> (Option<String>, Option<u64>) {
    if Handle::try_current().is_err() {
        return (None, None);
    }
    let node = madsim::plugin::node().to_string();
    let at_ms = TimeHandle::current().elapsed().as_millis() as u64;
    (Some(node), Some(at_ms))
}

fn message_of(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".into()
    }
}

// Each test runs its phase on a thread of its own, as the runner does: `catch` makes the
// calling thread a run thread, whose panics the hook records instead of printing.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// Runs `f` on a fresh thread, as the runner runs each seed.
    fn on_a_fresh_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new().spawn(f).expect("a thread").join().expect("the thread returned")
    }

    #[test]
    fn a_panic_is_caught_with_its_message_and_location() {
        let caught = on_a_fresh_thread(|| catch(|| panic!("planted {}", 7)));
        let panicked = caught.expect_err("the phase panicked");
        assert_eq!(panicked.message, "planted 7");
        assert!(panicked.location.starts_with("sim/src/panic.rs:"), "{}", panicked.location);
        assert_eq!((panicked.node, panicked.at_ms), (None, None));
    }

    #[test]
    fn a_phase_that_returns_is_passed_through() {
        assert_eq!(on_a_fresh_thread(|| catch(|| 41 + 1)), Ok(42));
    }

    #[test]
    fn a_panic_inside_the_simulation_names_its_node_and_time() {
        let caught = on_a_fresh_thread(|| {
            catch(|| {
                let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
                rt.block_on(async {
                    madsim::time::sleep(std::time::Duration::from_millis(5)).await;
                    panic!("in the simulation");
                })
            })
        });
        let panicked = caught.expect_err("the simulation panicked");
        assert_eq!(panicked.message, "in the simulation");
        assert!(panicked.node.is_some());
        assert_eq!(panicked.at_ms, Some(5));
    }
}
