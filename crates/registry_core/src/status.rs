//! The status a node reports in its heartbeats.

use crate::RegistryError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a node says about itself. Only `Online` and `Degraded` nodes take new
/// custody; `Maintenance` is a planned absence that must not trigger repair
/// by itself; `Offline` is a clean goodbye.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Serving normally.
    Online,
    /// Serving, under pressure (load or disk).
    Degraded,
    /// Temporarily away on purpose.
    Maintenance,
    /// Leaving or left.
    Offline,
}

impl NodeStatus {
    /// All statuses, in wire order.
    pub const ALL: [NodeStatus; 4] = [
        NodeStatus::Online,
        NodeStatus::Degraded,
        NodeStatus::Maintenance,
        NodeStatus::Offline,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Online => "online",
            NodeStatus::Degraded => "degraded",
            NodeStatus::Maintenance => "maintenance",
            NodeStatus::Offline => "offline",
        }
    }

    /// Whether a node in this status may be given new custody.
    pub fn accepts_custody(self) -> bool {
        matches!(self, NodeStatus::Online | NodeStatus::Degraded)
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NodeStatus {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| RegistryError::UnknownStatus(s.to_string()))
    }
}

/// The status a node should report given its machine's state. Load is the
/// one-minute load average divided by cores; disk use is a 0..1 fraction.
pub fn status_from_machine(load_per_core: f64, disk_used_fraction: f64) -> NodeStatus {
    if load_per_core.is_nan() || disk_used_fraction.is_nan() {
        return NodeStatus::Degraded;
    }
    if load_per_core > 1.5 || disk_used_fraction > 0.95 {
        NodeStatus::Degraded
    } else {
        NodeStatus::Online
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown() {
        for s in NodeStatus::ALL {
            assert_eq!(s.as_str().parse::<NodeStatus>(), Ok(s));
        }
        assert_eq!(
            "sleeping".parse::<NodeStatus>().unwrap_err().to_string(),
            "unknown node status: sleeping"
        );
    }

    #[test]
    fn machine_pressure_degrades() {
        assert_eq!(status_from_machine(0.3, 0.5), NodeStatus::Online);
        assert_eq!(status_from_machine(2.0, 0.5), NodeStatus::Degraded);
        assert_eq!(status_from_machine(0.3, 0.99), NodeStatus::Degraded);
        assert_eq!(status_from_machine(f64::NAN, 0.1), NodeStatus::Degraded);
    }

    #[test]
    fn only_serving_statuses_take_custody() {
        assert!(NodeStatus::Online.accepts_custody());
        assert!(NodeStatus::Degraded.accepts_custody());
        assert!(!NodeStatus::Maintenance.accepts_custody());
        assert!(!NodeStatus::Offline.accepts_custody());
    }
}
