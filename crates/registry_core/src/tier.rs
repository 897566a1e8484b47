//! Steward tiers: what a node's contribution earns it, from the plan's table.

use crate::RegistryError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How much a node gives to the network. Ordered: a higher tier satisfies any
/// "minimum tier" filter of a lower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StewardTier {
    /// Tier 1: 5-10% storage, 10-20% bandwidth, 5-10% CPU.
    Caretaker,
    /// Tier 2: 10-20% storage, 20-40% bandwidth, 10-15% CPU.
    Guardian,
    /// Tier 3: 20-40% storage, 40-60% bandwidth, 15-25% CPU.
    Steward,
    /// Tier 4: 40%+ storage, 60%+ bandwidth, 25%+ CPU.
    Pioneer,
}

/// A contribution expressed as percentages of the machine's totals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Share of storage offered for custody, 0..=100.
    pub storage_percent: f64,
    /// Share of bandwidth offered, 0..=100.
    pub bandwidth_percent: f64,
    /// Share of CPU offered, 0..=100.
    pub cpu_percent: f64,
}

/// What a tier is promised in return, as shown on the settings page.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TierBenefits {
    /// Content delivery speed-up from the community cache.
    pub delivery_speedup: f64,
    /// Shefa points a month for participation.
    pub points_per_month: u32,
    /// Multiplier applied to points earned per MB delivered.
    pub reward_multiplier: f64,
    /// Governance right that comes with the tier.
    pub governance: &'static str,
}

impl StewardTier {
    /// All tiers, lowest first.
    pub const ALL: [StewardTier; 4] = [
        StewardTier::Caretaker,
        StewardTier::Guardian,
        StewardTier::Steward,
        StewardTier::Pioneer,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StewardTier::Caretaker => "caretaker",
            StewardTier::Guardian => "guardian",
            StewardTier::Steward => "steward",
            StewardTier::Pioneer => "pioneer",
        }
    }

    /// The minimum (storage, bandwidth, CPU) percentages that reach this tier.
    pub fn minimums(self) -> Contribution {
        let (s, b, c) = match self {
            StewardTier::Caretaker => (0.0, 0.0, 0.0),
            StewardTier::Guardian => (10.0, 20.0, 10.0),
            StewardTier::Steward => (20.0, 40.0, 15.0),
            StewardTier::Pioneer => (40.0, 60.0, 25.0),
        };
        Contribution {
            storage_percent: s,
            bandwidth_percent: b,
            cpu_percent: c,
        }
    }

    /// The highest tier all of whose minimums the contribution meets. A node
    /// that gives much storage but little bandwidth is held back by the
    /// bandwidth: every resource counts.
    pub fn for_contribution(c: Contribution) -> StewardTier {
        StewardTier::ALL
            .into_iter()
            .rev()
            .find(|t| {
                let m = t.minimums();
                c.storage_percent >= m.storage_percent
                    && c.bandwidth_percent >= m.bandwidth_percent
                    && c.cpu_percent >= m.cpu_percent
            })
            .unwrap_or(StewardTier::Caretaker)
    }

    /// The benefits of the tier, from the plan's benefits matrix.
    pub fn benefits(self) -> TierBenefits {
        match self {
            StewardTier::Caretaker => TierBenefits {
                delivery_speedup: 1.5,
                points_per_month: 50,
                reward_multiplier: 1.0,
                governance: "none",
            },
            StewardTier::Guardian => TierBenefits {
                delivery_speedup: 2.5,
                points_per_month: 150,
                reward_multiplier: 1.5,
                governance: "regional voting",
            },
            StewardTier::Steward => TierBenefits {
                delivery_speedup: 4.0,
                points_per_month: 500,
                reward_multiplier: 2.5,
                governance: "qahal proposals",
            },
            StewardTier::Pioneer => TierBenefits {
                delivery_speedup: 10.0,
                points_per_month: 2000,
                reward_multiplier: 4.0,
                governance: "constitutional amendments",
            },
        }
    }
}

/// Slack, in percentage points, when judging a contribution from declared
/// caps: `x / 1000 * 1000` need not give back `x` in floating point, and a
/// node must not drop a tier over a rounding error.
pub const PERCENT_SLACK: f64 = 1e-6;

/// The tier a registration's declared caps reach: custody against storage,
/// bandwidth cap against bandwidth, and the CPU cap. Used by validation and
/// by the sidecar when it picks a tier, so both always agree.
pub fn earned_tier(
    max_custody_gb: f64,
    storage_tb: f64,
    max_bandwidth_mbps: u32,
    bandwidth_mbps: u32,
    max_cpu_percent: f64,
) -> StewardTier {
    let pct = |part: f64, whole: f64| {
        if whole > 0.0 {
            part / whole * 100.0 + PERCENT_SLACK
        } else {
            0.0
        }
    };
    StewardTier::for_contribution(Contribution {
        storage_percent: pct(max_custody_gb, storage_tb * 1000.0),
        bandwidth_percent: pct(max_bandwidth_mbps as f64, bandwidth_mbps as f64),
        cpu_percent: max_cpu_percent + PERCENT_SLACK,
    })
}

impl fmt::Display for StewardTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StewardTier {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StewardTier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| RegistryError::UnknownTier(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: f64, b: f64, cpu: f64) -> Contribution {
        Contribution {
            storage_percent: s,
            bandwidth_percent: b,
            cpu_percent: cpu,
        }
    }

    #[test]
    fn organ_donation_defaults_reach_guardian() {
        // 10% storage, 20% bandwidth, 15% CPU: the plan's settings example
        // shows these as "Guardian steward tier (Tier 2)".
        assert_eq!(
            StewardTier::for_contribution(c(10.0, 20.0, 15.0)),
            StewardTier::Guardian
        );
    }

    #[test]
    fn each_table_row_maps_to_its_tier() {
        assert_eq!(
            StewardTier::for_contribution(c(5.0, 10.0, 5.0)),
            StewardTier::Caretaker
        );
        assert_eq!(
            StewardTier::for_contribution(c(25.0, 45.0, 20.0)),
            StewardTier::Steward
        );
        assert_eq!(
            StewardTier::for_contribution(c(50.0, 70.0, 30.0)),
            StewardTier::Pioneer
        );
    }

    #[test]
    fn weakest_resource_limits_the_tier() {
        assert_eq!(
            StewardTier::for_contribution(c(80.0, 15.0, 50.0)),
            StewardTier::Caretaker
        );
        assert_eq!(
            StewardTier::for_contribution(c(80.0, 80.0, 12.0)),
            StewardTier::Guardian
        );
        assert_eq!(
            StewardTier::for_contribution(c(f64::NAN, 80.0, 80.0)),
            StewardTier::Caretaker
        );
    }

    #[test]
    fn tiers_are_ordered_and_parse() {
        assert!(StewardTier::Caretaker < StewardTier::Guardian);
        assert!(StewardTier::Steward < StewardTier::Pioneer);
        for t in StewardTier::ALL {
            assert_eq!(t.as_str().parse::<StewardTier>(), Ok(t));
        }
        assert_eq!(
            "overlord".parse::<StewardTier>().unwrap_err().to_string(),
            "unknown steward tier: overlord"
        );
    }

    #[test]
    fn earned_tier_survives_rounding() {
        // 10% of an awkward storage figure, converted GB -> TB -> GB.
        let storage_gb = 123.456_789_f64;
        let tb = storage_gb / 1000.0;
        assert_eq!(
            earned_tier(storage_gb * 0.10, tb, 20, 100, 15.0),
            StewardTier::Guardian
        );
        assert_eq!(earned_tier(0.0, 0.0, 0, 0, 0.0), StewardTier::Caretaker);
        assert_eq!(earned_tier(50.0, 0.1, 70, 100, 30.0), StewardTier::Pioneer);
        assert_eq!(earned_tier(9.9, 0.1, 70, 100, 30.0), StewardTier::Caretaker);
    }

    #[test]
    fn multipliers_follow_the_plan() {
        let m: Vec<f64> = StewardTier::ALL
            .iter()
            .map(|t| t.benefits().reward_multiplier)
            .collect();
        assert_eq!(m, vec![1.0, 1.5, 2.5, 4.0]);
    }
}
