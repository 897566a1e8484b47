//! The regions a node can declare, from the plan's appendix.

use crate::RegistryError;

/// The 20 regions of the plan. Kept as a fixed list so validation is
/// deterministic and every node agrees on it.
pub const KNOWN_REGIONS: [&str; 20] = [
    "us-west",
    "us-central",
    "us-east",
    "ca-west",
    "ca-central",
    "ca-east",
    "mx-central",
    "eu-west",
    "eu-central",
    "eu-north",
    "eu-south",
    "ap-south",
    "ap-southeast",
    "ap-northeast",
    "ap-east",
    "sa-east",
    "af-south",
    "me-central",
    "oc-southeast",
    "global",
];

/// Checks that `region` is one of [`KNOWN_REGIONS`], returning the canonical
/// static name so callers can index by it without re-validating.
pub fn parse_region(region: &str) -> Result<&'static str, RegistryError> {
    KNOWN_REGIONS
        .iter()
        .find(|r| **r == region)
        .copied()
        .ok_or_else(|| RegistryError::UnknownRegion(region.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_known_region_and_rejects_others() {
        for r in KNOWN_REGIONS {
            assert_eq!(parse_region(r), Ok(r));
        }
        assert_eq!(
            parse_region("mars-north").unwrap_err().to_string(),
            "unknown region: mars-north"
        );
        assert!(parse_region("EU-WEST").is_err());
        assert!(parse_region("").is_err());
    }
}
