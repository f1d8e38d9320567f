//! faultline-sim: the simulated world around the engine, the fault injector, the checkers,
//! the scenario loader, the runner and the `faultline` CLI.
//!
//! **Architecture Invariant:** only this crate holds madsim's god-mode handles (kill, restart,
//! pause, clog); the engine never sees a fault coming.

#[cfg(not(madsim))]
compile_error!(
    "faultline-sim only runs simulated: build with `--cfg madsim` (set in .cargo/config.toml; \
     a RUSTFLAGS environment variable replaces it)"
);

pub mod bench;
pub mod builtins;
pub mod checker;
pub mod cli;
pub mod compare;
pub mod disk;
pub mod draw;
pub mod explain;
pub mod fault_plan;
pub mod faults;
pub mod given;
pub mod logging;
pub mod merge;
pub mod oracle;
pub mod panic;
pub mod plugin;
pub mod prop;
pub mod recoveries;
pub mod resumed;
pub mod runner;
pub mod scenario;
pub mod shrink;
pub mod signature;
pub mod swarm;
pub mod tape;
pub mod timeline;
pub mod trace;
pub mod wall;
pub mod world;
