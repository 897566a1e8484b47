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

/// Load per core above which a node reports itself degraded, and below
/// which a degraded node is online again: apart, so a load hovering near one
/// threshold does not flip the status (each flip is a record).
pub const DEGRADE_ABOVE_LOAD: f64 = 1.5;
/// See [`DEGRADE_ABOVE_LOAD`].
pub const RECOVER_BELOW_LOAD: f64 = 1.0;
/// Disk use (fraction) above which a node is degraded.
pub const DEGRADE_ABOVE_DISK: f64 = 0.95;
/// Disk use below which a degraded node is online again.
pub const RECOVER_BELOW_DISK: f64 = 0.92;
/// How long a machine must stay in a new state before the node reports it
/// by default: a burst of load (a backup, a compile) moves no record.
pub const DEFAULT_STATUS_DWELL_SECS: i64 = 900;

/// Turns the machine's samples into the status a node publishes: with
/// hysteresis between the degrade and recover thresholds, and a dwell time
/// a new state must last before it is published. So a node on a busy
/// machine changes status a few times a day at most, where the raw samples
/// would flip it every few minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusDebouncer {
    dwell_micros: i64,
    published: Option<NodeStatus>,
    pending: Option<(NodeStatus, i64)>,
}

impl StatusDebouncer {
    /// A debouncer publishing a state once it has lasted `dwell_secs`.
    pub fn new(dwell_secs: i64) -> Self {
        StatusDebouncer {
            dwell_micros: dwell_secs.max(0) * crate::MICROS_PER_SEC,
            published: None,
            pending: None,
        }
    }

    /// The status published now, if any sample was seen.
    pub fn published(&self) -> Option<NodeStatus> {
        self.published
    }

    /// What the machine's state says, given the status published now: a
    /// degraded node recovers only below the lower thresholds.
    pub fn raw(&self, load_per_core: f64, disk_used_fraction: f64) -> NodeStatus {
        if load_per_core.is_nan() || disk_used_fraction.is_nan() {
            return NodeStatus::Degraded;
        }
        let degraded = self.published == Some(NodeStatus::Degraded);
        let (load_limit, disk_limit) = if degraded {
            (RECOVER_BELOW_LOAD, RECOVER_BELOW_DISK)
        } else {
            (DEGRADE_ABOVE_LOAD, DEGRADE_ABOVE_DISK)
        };
        let over = if degraded {
            load_per_core >= load_limit || disk_used_fraction >= disk_limit
        } else {
            load_per_core > load_limit || disk_used_fraction > disk_limit
        };
        if over {
            NodeStatus::Degraded
        } else {
            NodeStatus::Online
        }
    }

    /// Feeds one sample taken at `now_micros`; returns the status to
    /// publish. The first sample is published at once.
    pub fn observe(
        &mut self,
        load_per_core: f64,
        disk_used_fraction: f64,
        now_micros: i64,
    ) -> NodeStatus {
        let raw = self.raw(load_per_core, disk_used_fraction);
        let Some(published) = self.published else {
            self.published = Some(raw);
            return raw;
        };
        if raw == published {
            self.pending = None;
            return published;
        }
        match self.pending {
            Some((s, since)) if s == raw => {
                if now_micros - since >= self.dwell_micros {
                    self.published = Some(raw);
                    self.pending = None;
                    return raw;
                }
            }
            _ => self.pending = Some((raw, now_micros)),
        }
        published
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flapping_machine_changes_status_rarely() {
        const S: i64 = crate::MICROS_PER_SEC;
        let mut d = StatusDebouncer::new(900);
        let mut changes = 0;
        let mut last = d.observe(0.5, 0.5, 0);
        // A day of samples every 30 s, the load crossing 1.5 every minute.
        for i in 1..2880i64 {
            let load = if i % 4 < 2 { 1.6 } else { 1.3 };
            let s = d.observe(load, 0.5, i * 30 * S);
            if s != last {
                changes += 1;
                last = s;
            }
        }
        assert_eq!(changes, 0, "never 15 minutes above the line");
        // Load that stays high degrades after the dwell, and recovers only
        // below the lower threshold, after the dwell again.
        let t = 2880 * 30 * S;
        assert_eq!(d.observe(2.0, 0.5, t), NodeStatus::Online);
        assert_eq!(d.observe(2.0, 0.5, t + 899 * S), NodeStatus::Online);
        assert_eq!(d.observe(2.0, 0.5, t + 900 * S), NodeStatus::Degraded);
        assert_eq!(
            d.observe(1.2, 0.5, t + 3000 * S),
            NodeStatus::Degraded,
            "hysteresis"
        );
        assert_eq!(d.observe(0.4, 0.5, t + 4000 * S), NodeStatus::Degraded);
        assert_eq!(d.observe(0.4, 0.5, t + 4900 * S), NodeStatus::Online);
        assert_eq!(
            StatusDebouncer::new(0).observe(f64::NAN, 0.1, 0),
            NodeStatus::Degraded
        );
    }

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
