//! Pure policy of the Elohim node registry.
//!
//! Everything here is plain Rust with no hdk, so the integrity zome (validation),
//! the coordinator zome (queries), the sidecar daemon and the simulator all run
//! exactly the same rules, and those rules are unit-tested and benchmarked
//! natively. Time is passed in as microseconds since the Unix epoch (the unit
//! of Holochain's `Timestamp`), never read from a clock.

pub mod assignment;
pub mod bandwidth;
pub mod budget;
pub mod capacity;
pub mod committed;
pub mod consensus;
pub mod delegation;
pub mod error;
pub mod hash;
pub mod heartbeat;
pub mod monitor;
pub mod node_id;
pub mod presence;
pub mod quorum;
pub mod region;
pub mod reputation;
pub mod reward;
pub mod selection;
pub mod status;
pub mod tier;
pub mod time;
pub mod verdict;

pub use error::RegistryError;
pub use region::KNOWN_REGIONS;
pub use status::NodeStatus;
pub use tier::StewardTier;

/// Microseconds in one second, the unit conversion used throughout.
pub const MICROS_PER_SEC: i64 = 1_000_000;
