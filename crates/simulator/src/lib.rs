//! Discrete-event simulator of an Elohim network.
//!
//! The issue asks whether the registry's policies (heartbeat liveness, grace,
//! weighted-rendezvous custodian choice, reputation-weighted health
//! consensus) keep data durable at 10^3 to 10^5 home racks over months of
//! churn, message loss and lying attesters. Running real conductors at that
//! scale is impossible, so this crate models the network as events (failures,
//! outages, suspicions, attestation rounds, repairs) and calls the very same
//! policy functions the zomes call, from `registry_core`, and the codec's own
//! parameter validation and shard sizes, from `shard_codec`. Heartbeats are
//! not simulated one by one but statistically ([`heartbeat_model`]), which
//! is checked against a brute-force simulation of individual heartbeats.

#![warn(missing_docs)]

pub mod compare;
pub mod config;
pub mod error;
pub mod heartbeat_model;
pub mod plot;
pub mod queue;
pub mod report;
pub mod sim;
pub mod stats;
pub mod sweep;

pub use config::{DetectionMode, SimConfig};
pub use error::SimError;
pub use sim::Simulation;
pub use stats::RunResults;
