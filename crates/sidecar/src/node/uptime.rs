//! A small ledger of how long this node has been up since it first started,
//! kept on disk so the figure survives restarts.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Seconds up since first start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UptimeLedger {
    /// Unix seconds of the first start.
    pub first_start: i64,
    /// Seconds counted as up since then.
    pub up_secs: u64,
}

impl UptimeLedger {
    /// A ledger starting now.
    pub fn new(now: i64) -> Self {
        UptimeLedger {
            first_start: now,
            up_secs: 0,
        }
    }

    /// Uptime in percent at `now`; 100 for a node that just started.
    pub fn percent(&self, now: i64) -> f64 {
        let span = (now - self.first_start).max(0) as f64;
        if span < 1.0 {
            return 100.0;
        }
        (self.up_secs as f64 / span * 100.0).clamp(0.0, 100.0)
    }
}

/// The ledger's file in a data directory.
pub fn ledger_path(data_dir: &Path) -> PathBuf {
    data_dir.join("uptime.json")
}

/// Loads the ledger, or starts one now when there is none (or it is
/// unreadable: uptime is advisory, never a reason to refuse to start).
pub fn load(data_dir: &Path, now: i64) -> UptimeLedger {
    std::fs::read(ledger_path(data_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| UptimeLedger::new(now))
}

/// Saves the ledger atomically and durably
/// ([`crate::datadir::write_private`]).
pub fn save(data_dir: &Path, ledger: &UptimeLedger) -> std::io::Result<()> {
    crate::datadir::write_private(&ledger_path(data_dir), &serde_json::to_vec(ledger)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_follows_time_up() {
        let mut l = UptimeLedger::new(1000);
        assert_eq!(l.percent(1000), 100.0);
        l.up_secs = 50;
        assert_eq!(l.percent(1100), 50.0);
        l.up_secs = 500;
        assert_eq!(l.percent(1100), 100.0, "clamped");
    }

    #[test]
    fn survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = load(dir.path(), 10);
        l.up_secs = 7;
        save(dir.path(), &l).unwrap();
        assert_eq!(load(dir.path(), 99), l);
    }
}
