//! This node in the network: its agent (registration, leases, leave,
//! status and the calls it makes), its working key (`epoch`), what its
//! monitors hear (`liveness`), its uptime, the capacity it offers, the
//! peers it watches and its participation rewards.

pub mod agent;
pub mod capacity;
pub mod epoch;
pub mod liveness;
pub mod peers;
pub mod rewards;
pub mod uptime;
