//! Shefa rewards and the benefits calculator.
//!
//! A custodian earns 1 point per MB it delivers, times its tier's multiplier
//! (pioneer 4.0, steward 2.5, guardian 1.5, caretaker 1.0). Points are kept
//! in integer **millipoints** so that validation (which recomputes them) is
//! exact and deterministic, and so that a shard smaller than a megabyte
//! still earns its share instead of rounding to nothing.

use crate::tier::{Contribution, StewardTier, TierBenefits};
use serde::{Deserialize, Serialize};

/// Bytes in the "MB" of the reward rule (decimal megabyte).
pub const BYTES_PER_MB: u64 = 1_000_000;
/// Millipoints in one Shefa point.
pub const MILLIPOINTS_PER_POINT: u64 = 1_000;

/// The tier multiplier in tenths (exact integers: 10, 15, 25, 40), the form
/// the reward rule computes with.
pub fn multiplier_tenths(tier: StewardTier) -> u64 {
    match tier {
        StewardTier::Caretaker => 10,
        StewardTier::Guardian => 15,
        StewardTier::Steward => 25,
        StewardTier::Pioneer => 40,
    }
}

/// Millipoints earned for delivering `bytes` at `tier`: 1 point per MB times
/// the multiplier, rounded down to the millipoint. Saturates instead of
/// overflowing, so no input can make validation panic.
pub fn reward_millipoints(bytes: u64, tier: StewardTier) -> u64 {
    // points = bytes / 1e6 * tenths / 10  =>  millipoints = bytes * tenths / 1e4
    let m = bytes as u128 * multiplier_tenths(tier) as u128 / 10_000;
    u64::try_from(m).unwrap_or(u64::MAX)
}

/// Millipoints as points with three decimals, for people.
pub fn format_points(millipoints: u64) -> String {
    format!(
        "{}.{:03}",
        millipoints / MILLIPOINTS_PER_POINT,
        millipoints % MILLIPOINTS_PER_POINT
    )
}

/// What a person offers, in the units of the settings page, with the totals
/// of their machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OfferInput {
    /// Whether the node takes part at all.
    pub participate: bool,
    /// Share of storage offered, percent.
    pub storage_percent: f64,
    /// Share of bandwidth offered, percent.
    pub bandwidth_percent: f64,
    /// Share of CPU offered, percent.
    pub cpu_percent: f64,
    /// Storage of the machine, GB.
    pub storage_total_gb: f64,
    /// Bandwidth of the machine, Mbps.
    pub bandwidth_total_mbps: u32,
}

/// What the calculator shows for an offer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenefitsEstimate {
    /// The tier the offer reaches (`None` when not participating).
    pub tier: Option<StewardTier>,
    /// The tier's benefits (none when not participating).
    pub benefits: Option<TierBenefits>,
    /// Storage offered, GB.
    pub storage_gb: f64,
    /// Bandwidth offered, Mbps (rounded up, as registered).
    pub bandwidth_mbps: u32,
    /// CPU offered, percent.
    pub cpu_percent: f64,
    /// The next tier up and what each resource needs to reach it, in
    /// percent (only the resources that fall short).
    pub next_tier: Option<(StewardTier, Vec<(&'static str, f64)>)>,
}

/// The benefits calculator: the tier an offer reaches, its delivery speed-up
/// and monthly points from the plan's table, and what the next tier needs.
/// Uses the same tier rule as registration and validation, so what the page
/// promises is what the DHT accepts.
pub fn estimate_benefits(offer: OfferInput) -> BenefitsEstimate {
    let clamp = |p: f64| {
        if p.is_finite() {
            p.clamp(0.0, 100.0)
        } else {
            0.0
        }
    };
    let (s, b, c) = if offer.participate {
        (
            clamp(offer.storage_percent),
            clamp(offer.bandwidth_percent),
            clamp(offer.cpu_percent),
        )
    } else {
        (0.0, 0.0, 0.0)
    };
    let storage_gb = offer.storage_total_gb.max(0.0) * s / 100.0;
    let bandwidth_mbps = ((offer.bandwidth_total_mbps as f64 * b / 100.0).ceil() as u32)
        .min(offer.bandwidth_total_mbps);
    if !offer.participate {
        return BenefitsEstimate {
            tier: None,
            benefits: None,
            storage_gb,
            bandwidth_mbps,
            cpu_percent: c,
            next_tier: None,
        };
    }
    let tier = StewardTier::for_contribution(Contribution {
        storage_percent: s,
        bandwidth_percent: b,
        cpu_percent: c,
    });
    let next_tier = StewardTier::ALL
        .into_iter()
        .find(|t| *t > tier)
        .map(|next| {
            let m = next.minimums();
            let short: Vec<(&'static str, f64)> = [
                ("storage", s, m.storage_percent),
                ("bandwidth", b, m.bandwidth_percent),
                ("CPU", c, m.cpu_percent),
            ]
            .into_iter()
            .filter(|(_, have, need)| have < need)
            .map(|(name, _, need)| (name, need))
            .collect();
            (next, short)
        });
    BenefitsEstimate {
        tier: Some(tier),
        benefits: Some(tier.benefits()),
        storage_gb,
        bandwidth_mbps,
        cpu_percent: c,
        next_tier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_point_per_mb_times_the_multiplier() {
        let mb = BYTES_PER_MB;
        assert_eq!(reward_millipoints(mb, StewardTier::Caretaker), 1_000);
        assert_eq!(reward_millipoints(mb, StewardTier::Guardian), 1_500);
        assert_eq!(reward_millipoints(mb, StewardTier::Steward), 2_500);
        assert_eq!(reward_millipoints(mb, StewardTier::Pioneer), 4_000);
        assert_eq!(reward_millipoints(100 * mb, StewardTier::Steward), 250_000);
    }

    #[test]
    fn multipliers_agree_with_the_tier_table() {
        for t in StewardTier::ALL {
            assert_eq!(
                multiplier_tenths(t) as f64 / 10.0,
                t.benefits().reward_multiplier
            );
        }
    }

    #[test]
    fn small_deliveries_earn_their_share_and_nothing_panics() {
        assert_eq!(reward_millipoints(0, StewardTier::Pioneer), 0);
        // 1 KB at caretaker is one millipoint; less rounds down to nothing.
        assert_eq!(reward_millipoints(1_000, StewardTier::Caretaker), 1);
        assert_eq!(reward_millipoints(999, StewardTier::Caretaker), 0);
        assert_eq!(reward_millipoints(10_000, StewardTier::Guardian), 15);
        assert_eq!(
            reward_millipoints(u64::MAX, StewardTier::Pioneer),
            (u64::MAX as u128 * 40 / 10_000) as u64
        );
        assert_eq!(format_points(1_500), "1.500");
        assert_eq!(format_points(7), "0.007");
    }

    fn offer(s: f64, b: f64, c: f64) -> OfferInput {
        OfferInput {
            participate: true,
            storage_percent: s,
            bandwidth_percent: b,
            cpu_percent: c,
            storage_total_gb: 500.0,
            bandwidth_total_mbps: 100,
        }
    }

    #[test]
    fn the_plans_settings_example() {
        // 50 GB of 500, 20 Mbps of 100, 15% CPU: "2.5x faster content
        // delivery, 150 Shefa points/month, Guardian".
        let e = estimate_benefits(offer(10.0, 20.0, 15.0));
        assert_eq!(e.tier, Some(StewardTier::Guardian));
        let b = e.benefits.unwrap();
        assert_eq!(b.delivery_speedup, 2.5);
        assert_eq!(b.points_per_month, 150);
        assert_eq!(e.storage_gb, 50.0);
        assert_eq!(e.bandwidth_mbps, 20);
        let (next, short) = e.next_tier.unwrap();
        assert_eq!(next, StewardTier::Steward);
        // 15% CPU already meets steward's minimum; storage and bandwidth do not.
        assert_eq!(short, vec![("storage", 20.0), ("bandwidth", 40.0)]);
    }

    #[test]
    fn every_row_of_the_table() {
        let rows = [
            ((5.0, 10.0, 5.0), StewardTier::Caretaker, 1.5, 50),
            ((15.0, 30.0, 12.0), StewardTier::Guardian, 2.5, 150),
            ((30.0, 50.0, 20.0), StewardTier::Steward, 4.0, 500),
            ((45.0, 65.0, 30.0), StewardTier::Pioneer, 10.0, 2000),
        ];
        for ((s, b, c), tier, speed, points) in rows {
            let e = estimate_benefits(offer(s, b, c));
            assert_eq!(e.tier, Some(tier));
            assert_eq!(e.benefits.unwrap().delivery_speedup, speed);
            assert_eq!(e.benefits.unwrap().points_per_month, points);
        }
        assert_eq!(estimate_benefits(offer(45.0, 65.0, 30.0)).next_tier, None);
    }

    #[test]
    fn opting_out_offers_and_earns_nothing() {
        let mut o = offer(40.0, 60.0, 25.0);
        o.participate = false;
        let e = estimate_benefits(o);
        assert_eq!(e.tier, None);
        assert_eq!(e.benefits, None);
        assert_eq!(
            (e.storage_gb, e.bandwidth_mbps, e.cpu_percent),
            (0.0, 0, 0.0)
        );
    }

    #[test]
    fn nonsense_percentages_are_clamped() {
        let e = estimate_benefits(offer(f64::NAN, 250.0, -4.0));
        assert_eq!(e.tier, Some(StewardTier::Caretaker));
        assert_eq!(e.storage_gb, 0.0);
        assert_eq!(e.bandwidth_mbps, 100);
        assert_eq!(e.cpu_percent, 0.0);
    }

    #[test]
    fn calculator_agrees_with_registration_tier() {
        // What the page promises must be what validation accepts.
        for (s, b, c) in [(10.0, 20.0, 15.0), (20.0, 40.0, 15.0), (40.0, 60.0, 25.0)] {
            let e = estimate_benefits(offer(s, b, c));
            let earned = crate::tier::earned_tier(e.storage_gb, 0.5, e.bandwidth_mbps, 100, c);
            assert_eq!(e.tier, Some(earned));
        }
    }
}
