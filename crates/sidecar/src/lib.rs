//! The Elohim sidecar: the node agent that runs beside a Holochain conductor
//! on a home rack.
//!
//! Whether the conductor is embedded in this process (the default) or an
//! existing one reached over the network, the sidecar talks to it only
//! through its admin and app websockets, so both modes behave the same.

pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod custody;
pub mod daemon;
pub mod datadir;
pub mod encoding;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod node;
pub mod recovery;
pub mod registry;
pub mod transfer;

/// The installed app id the sidecar uses for the hApp.
pub const APP_ID: &str = "elohim_orchestrator";
/// The installed app id of the sidecar's reader agent: the same hApp under
/// a second agent that never writes, for selections (see
/// `agent::NodeAgent::read_fn`).
pub const READER_APP_ID: &str = "elohim_orchestrator_reader";
/// The role of the node registry DNA.
pub const ROLE: &str = "node_registry";
/// The coordinator zome.
pub const COORDINATOR: &str = "node_registry_coordinator";
