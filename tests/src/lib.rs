//! Sweettest harness for the Elohim Orchestrator.
//!
//! Every suite loads the DNA that `cargo xtask pack` wrote to `workdir/`, not
//! one rebuilt in memory, so what is tested is what is shipped.
//!
//! Split by role: `network` (conductors, peers, typed calls), `fixtures`
//! (the packed bundles and valid entries), `expect` (shared checks),
//! `mallory` (the attacker coordinator), `compiled` (conductors that start
//! with the zomes compiled), [`sidecars`] (nodes with their sidecar daemon)
//! and [`webdriver`]. What the suites use of the first four
//! is re-exported here, at the paths it always had.

mod compiled;
mod expect;
mod fixtures;
mod mallory;
mod network;
pub mod sidecars;
pub mod webdriver;

pub use compiled::conductor_batch;
pub use expect::{custodian_ids, record_kind, rejected};
pub use fixtures::{
    assignment, assignment_hash, happ_with, heartbeat, manifest_dir, packed, packed_dna,
    packed_dna_with, registration, test_properties, workdir, APP_ID, COORDINATOR, ROLE,
};
pub use mallory::install_mallory;
pub use network::{
    conductor_call_fn, conductor_try_call_fn, polling_bootstrap, source_chain, FixedRendezvous,
    Network, Peer,
};
