//! What this machine has, and how loaded it is right now.

use crate::config::CapacitySection;
use std::path::Path;

/// The machine's resources, as declared in the node's registration.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineCapacity {
    /// Logical CPU cores.
    pub cpu_cores: u32,
    /// Total memory, GB.
    pub memory_gb: f64,
    /// Free space on the data directory's disk (or configured), GB.
    pub storage_gb: f64,
    /// Link bandwidth, Mbps.
    pub bandwidth_mbps: u32,
    /// Where the bandwidth figure came from.
    pub bandwidth_source: &'static str,
}

/// The machine's momentary pressure, from which heartbeat status follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineLoad {
    /// One-minute load average divided by cores.
    pub load_per_core: f64,
    /// Used fraction of the data directory's disk.
    pub disk_used_fraction: f64,
}

const GB: f64 = 1e9;
/// Used when nothing better is known: a typical home broadband link.
pub const FALLBACK_BANDWIDTH_MBPS: u32 = 100;

/// (free, total) bytes of the disk holding `dir`: the mounted disk with the
/// longest mount point that is a prefix of the directory.
pub fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let disks = sysinfo::Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| (d.available_space(), d.total_space()))
}

/// The fastest link speed reported by an up, non-loopback interface (Linux
/// `/sys/class/net/*/speed`, in Mbps).
pub fn link_speed_mbps() -> Option<u32> {
    let entries = std::fs::read_dir("/sys/class/net").ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "lo")
        .filter(|e| {
            std::fs::read_to_string(e.path().join("operstate"))
                .map(|s| s.trim() == "up")
                .unwrap_or(false)
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("speed")).ok())
        .filter_map(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .max()
        .map(|s| s.min(registry_core::capacity::MAX_BANDWIDTH_MBPS as i64) as u32)
}

/// Detects the machine's capacity, letting the config override storage and
/// bandwidth.
pub fn detect(data_dir: &Path, overrides: &CapacitySection) -> MachineCapacity {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    let cpu_cores = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .clamp(1, registry_core::capacity::MAX_CPU_CORES);
    let memory_gb = (sys.total_memory() as f64 / GB).min(registry_core::capacity::MAX_MEMORY_GB);
    let storage_gb = overrides.storage_gb.unwrap_or_else(|| {
        disk_space(data_dir)
            .map(|(free, _)| free as f64 / GB)
            .unwrap_or(0.0)
    });
    let (bandwidth_mbps, bandwidth_source) = match overrides.bandwidth_mbps {
        Some(b) => (b, "configured"),
        None => match link_speed_mbps() {
            Some(b) => (b, "link speed"),
            None => (FALLBACK_BANDWIDTH_MBPS, "fallback"),
        },
    };
    MachineCapacity {
        cpu_cores,
        memory_gb,
        storage_gb,
        bandwidth_mbps,
        bandwidth_source,
    }
}

/// Samples the machine's load now.
pub fn sample_load(data_dir: &Path, cpu_cores: u32) -> MachineLoad {
    let load = sysinfo::System::load_average().one;
    let disk_used_fraction = disk_space(data_dir)
        .filter(|(_, total)| *total > 0)
        .map(|(free, total)| 1.0 - free as f64 / total as f64)
        .unwrap_or(0.0);
    MachineLoad {
        load_per_core: load / cpu_cores.max(1) as f64,
        disk_used_fraction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_this_machine() {
        let dir = std::env::temp_dir();
        let c = detect(&dir, &CapacitySection::default());
        assert!(c.cpu_cores >= 1);
        assert!(c.memory_gb > 0.1, "{c:?}");
        assert!(
            c.storage_gb > 0.0,
            "the temp dir's disk has free space: {c:?}"
        );
        assert!(c.bandwidth_mbps > 0);
        let l = sample_load(&dir, c.cpu_cores);
        assert!(
            l.load_per_core >= 0.0 && (0.0..=1.0).contains(&l.disk_used_fraction),
            "{l:?}"
        );
    }

    #[test]
    fn config_overrides_detection() {
        let c = detect(
            &std::env::temp_dir(),
            &CapacitySection {
                bandwidth_mbps: Some(250),
                storage_gb: Some(1234.0),
            },
        );
        assert_eq!(
            (c.bandwidth_mbps, c.bandwidth_source, c.storage_gb),
            (250, "configured", 1234.0)
        );
    }
}
