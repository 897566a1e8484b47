//! Bounds on what a node may declare, so a registration cannot overflow or
//! poison the arithmetic of selection.

use crate::RegistryError;

/// Most CPU cores a node may declare.
pub const MAX_CPU_CORES: u32 = 1024;
/// Most memory, in GB, a node may declare.
pub const MAX_MEMORY_GB: f64 = 10_000.0;
/// Most storage, in TB, a node may declare.
pub const MAX_STORAGE_TB: f64 = 10_000.0;
/// Most bandwidth, in Mbps, a node may declare (400 Gbps).
pub const MAX_BANDWIDTH_MBPS: u32 = 400_000;
/// Longest display name.
pub const MAX_DISPLAY_NAME: usize = 64;

/// The declared capacity and caps of a node, as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclaredCapacity {
    /// CPU cores.
    pub cpu_cores: u32,
    /// Memory in GB.
    pub memory_gb: f64,
    /// Storage in TB.
    pub storage_tb: f64,
    /// Bandwidth in Mbps.
    pub bandwidth_mbps: u32,
    /// Storage offered for custody, GB.
    pub max_custody_gb: f64,
    /// Bandwidth offered, Mbps.
    pub max_bandwidth_mbps: u32,
    /// CPU offered, percent.
    pub max_cpu_percent: f64,
    /// Self-reported uptime, percent.
    pub uptime_percent: f64,
}

fn in_range(field: &'static str, v: f64, lo: f64, hi: f64) -> Result<(), RegistryError> {
    // `!(a <= b)` is deliberate: it is also true for NaN.
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(RegistryError::OutOfRange {
            field,
            value: format!("{v}"),
            allowed: format!("{lo}..={hi}"),
        })
    }
}

/// Checks every bound of a declared capacity: no NaN, no negatives, the
/// plan's ceilings, and caps that do not exceed what the node has.
pub fn check_capacity(c: &DeclaredCapacity) -> Result<(), RegistryError> {
    in_range("cpu_cores", c.cpu_cores as f64, 1.0, MAX_CPU_CORES as f64)?;
    in_range("memory_gb", c.memory_gb, 0.0, MAX_MEMORY_GB)?;
    in_range("storage_tb", c.storage_tb, 0.0, MAX_STORAGE_TB)?;
    in_range(
        "bandwidth_mbps",
        c.bandwidth_mbps as f64,
        0.0,
        MAX_BANDWIDTH_MBPS as f64,
    )?;
    in_range(
        "max_custody_gb",
        c.max_custody_gb,
        0.0,
        c.storage_tb * 1000.0,
    )?;
    in_range(
        "max_bandwidth_mbps",
        c.max_bandwidth_mbps as f64,
        0.0,
        c.bandwidth_mbps as f64,
    )?;
    in_range("max_cpu_percent", c.max_cpu_percent, 0.0, 100.0)?;
    in_range("uptime_percent", c.uptime_percent, 0.0, 100.0)?;
    Ok(())
}

/// Checks an optional coordinate pair.
pub fn check_location(latitude: Option<f64>, longitude: Option<f64>) -> Result<(), RegistryError> {
    if let Some(lat) = latitude {
        in_range("latitude", lat, -90.0, 90.0)?;
    }
    if let Some(lon) = longitude {
        in_range("longitude", lon, -180.0, 180.0)?;
    }
    Ok(())
}

/// Checks a human-facing text field's length in characters.
pub fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), RegistryError> {
    let len = text.chars().count();
    if len == 0 || len > max {
        return Err(RegistryError::BadLength { field, max, len });
    }
    Ok(())
}

/// Longest endpoint URL.
pub const MAX_ENDPOINT_LEN: usize = 200;

/// Checks a sidecar endpoint: an `http://` or `https://` URL with a host,
/// no whitespace, at most [`MAX_ENDPOINT_LEN`] characters.
pub fn check_endpoint(url: &str) -> Result<(), RegistryError> {
    let bad = |why: &str| RegistryError::OutOfRange {
        field: "endpoint",
        value: url.chars().take(MAX_ENDPOINT_LEN).collect(),
        allowed: why.to_string(),
    };
    if url.len() > MAX_ENDPOINT_LEN {
        return Err(bad("at most 200 characters"));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("http:// or https:// URL"))?;
    if rest.is_empty()
        || rest.starts_with('/')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("a URL with a host and no spaces"));
    }
    Ok(())
}

/// Bytes in one (decimal) gigabyte, the unit of custody caps.
pub const BYTES_PER_GB: f64 = 1e9;

/// Converts a custody cap in GB to whole bytes, saturating.
pub fn gb_to_bytes(gb: f64) -> u64 {
    if gb.is_finite() && gb > 0.0 {
        (gb * BYTES_PER_GB) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> DeclaredCapacity {
        DeclaredCapacity {
            cpu_cores: 8,
            memory_gb: 32.0,
            storage_tb: 2.0,
            bandwidth_mbps: 100,
            max_custody_gb: 200.0,
            max_bandwidth_mbps: 20,
            max_cpu_percent: 15.0,
            uptime_percent: 99.0,
        }
    }

    #[test]
    fn sane_capacity_passes() {
        assert_eq!(check_capacity(&ok()), Ok(()));
    }

    #[test]
    fn every_bound_is_enforced() {
        type Breakage = Box<dyn Fn(&mut DeclaredCapacity)>;
        let cases: Vec<(&str, Breakage)> = vec![
            ("cpu_cores", Box::new(|c| c.cpu_cores = 1025)),
            ("cpu_cores", Box::new(|c| c.cpu_cores = 0)),
            ("memory_gb", Box::new(|c| c.memory_gb = 10_001.0)),
            ("memory_gb", Box::new(|c| c.memory_gb = -1.0)),
            ("memory_gb", Box::new(|c| c.memory_gb = f64::NAN)),
            ("storage_tb", Box::new(|c| c.storage_tb = 10_000.5)),
            ("storage_tb", Box::new(|c| c.storage_tb = f64::INFINITY)),
            ("max_custody_gb", Box::new(|c| c.max_custody_gb = 2_001.0)),
            ("max_custody_gb", Box::new(|c| c.max_custody_gb = -0.5)),
            (
                "max_bandwidth_mbps",
                Box::new(|c| c.max_bandwidth_mbps = 101),
            ),
            ("max_cpu_percent", Box::new(|c| c.max_cpu_percent = 100.1)),
            ("uptime_percent", Box::new(|c| c.uptime_percent = f64::NAN)),
        ];
        for (field, mutate) in cases {
            let mut c = ok();
            mutate(&mut c);
            match check_capacity(&c) {
                Err(RegistryError::OutOfRange { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected OutOfRange, got {other:?}"),
            }
        }
    }

    #[test]
    fn caps_equal_to_totals_are_allowed() {
        let mut c = ok();
        c.max_custody_gb = 2000.0;
        c.max_bandwidth_mbps = 100;
        assert_eq!(check_capacity(&c), Ok(()));
    }

    #[test]
    fn location_and_text() {
        assert!(check_location(Some(45.0), Some(-120.0)).is_ok());
        assert!(check_location(Some(91.0), None).is_err());
        assert!(check_location(None, Some(f64::NAN)).is_err());
        assert!(check_text("display_name", "Alice's rack", 64).is_ok());
        assert!(check_text("display_name", "", 64).is_err());
        assert!(check_text("display_name", &"x".repeat(65), 64).is_err());
    }

    #[test]
    fn endpoints_are_http_urls() {
        assert!(check_endpoint("http://192.168.1.20:8787").is_ok());
        assert!(check_endpoint("https://rack.example").is_ok());
        assert!(check_endpoint("ftp://x").is_err());
        assert!(check_endpoint("http://").is_err());
        assert!(check_endpoint("http://a b").is_err());
        assert!(check_endpoint(&format!("http://{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn gb_conversion_saturates() {
        assert_eq!(gb_to_bytes(1.5), 1_500_000_000);
        assert_eq!(gb_to_bytes(-3.0), 0);
        assert_eq!(gb_to_bytes(f64::NAN), 0);
    }
}
