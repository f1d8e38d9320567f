//! faultline-engine: the stream processing system under test.
//!
//! It owns every node role's behaviour — producers, brokers (the replicated log), the manager,
//! the driver, workers running operator subtasks, and the external sink — and the wire protocol
//! between them. It knows nothing of faults, checkers or scenarios: those live in `sim`, which
//! builds a simulated world out of the boot functions exported here.
//!
//! **Architecture Invariant:** nodes talk only through madsim's simulated network (`net`), keep
//! their state inside the node, and reach durable storage only through [`disk::Disk`].

#[cfg(not(madsim))]
compile_error!(
    "faultline-engine only runs simulated: build with `--cfg madsim` (set in .cargo/config.toml; \
     a RUSTFLAGS environment variable replaces it)"
);

pub mod broker;
pub mod channel;
pub mod checkpoint;
pub mod clock;
pub mod cluster;
pub mod codec;
pub mod cost;
pub mod disk;
pub mod driver;
pub mod fixed_hash;
pub mod job;
pub mod manager;
pub mod net;
pub mod observe;
pub mod operators;
pub mod pipeline;
pub mod plugin;
pub mod producer;
pub mod record;
pub mod sdk;
pub mod sink;
pub mod state;
pub mod store;
pub mod worker;
pub mod workload;
