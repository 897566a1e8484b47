//! Custodian selection: who may take a shard, and in which order to ask.
//!
//! Eligibility is a hard filter (opt-in, liveness, status, region, tier,
//! exclusions, free custody). Among the eligible, each node gets a quality
//! weight; when a content key is given the order is *weighted rendezvous
//! hashing* on (content, node), so that placement is deterministic (two
//! repairers with the same view choose the same node), spreads load across
//! the network instead of piling onto the single best node, and still
//! favours better nodes in proportion to their weight.

use crate::hash::{stable_hash, unit_interval};
use crate::{NodeStatus, StewardTier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What selection needs to know about one registered node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The node.
    pub node_id: String,
    /// Declared region.
    pub region: String,
    /// Declared tier.
    pub tier: StewardTier,
    /// Whether it takes custody at all.
    pub opted_in: bool,
    /// Status of its latest heartbeat, if any was seen.
    pub status: Option<NodeStatus>,
    /// Whether its latest heartbeat is within the failure window.
    pub alive: bool,
    /// Its declared custody cap, in bytes.
    pub max_custody_bytes: u64,
    /// Bytes already assigned to it.
    pub assigned_bytes: u64,
    /// Latest reported load per core (0 idle, 1 saturated).
    pub current_load: f64,
    /// Declared uptime, percent.
    pub uptime_percent: f64,
    /// Reputation, 100 at start.
    pub reputation: f64,
}

impl Candidate {
    /// Custody bytes still free.
    pub fn free_bytes(&self) -> u64 {
        self.max_custody_bytes.saturating_sub(self.assigned_bytes)
    }
}

/// The parsed form of a custodian query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Criteria {
    /// Allowed latest statuses; empty means "any status that takes custody".
    pub statuses: Vec<NodeStatus>,
    /// Allowed regions; empty means any.
    pub regions: Vec<String>,
    /// Lowest acceptable tier.
    pub min_tier: Option<StewardTier>,
    /// Nodes never to choose (e.g. those already holding the content).
    pub exclude: BTreeSet<String>,
    /// Free custody a node needs, in bytes.
    pub needed_bytes: u64,
    /// Content being placed: turns ranking into weighted rendezvous.
    pub placement_key: Option<String>,
}

/// Why a node was not eligible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    /// It opted out of custody.
    OptedOut,
    /// No heartbeat within the failure window.
    NotAlive,
    /// Its status is not among those allowed.
    Status,
    /// Outside the requested regions.
    Region,
    /// Below the minimum tier.
    Tier,
    /// Explicitly excluded.
    Excluded,
    /// Not enough free custody.
    NoRoom {
        /// Bytes free.
        free: u64,
        /// Bytes needed.
        needed: u64,
    },
}

/// Checks the hard filters for one node.
pub fn check_eligible(c: &Candidate, q: &Criteria) -> Result<(), Ineligible> {
    if !c.opted_in {
        return Err(Ineligible::OptedOut);
    }
    if q.exclude.contains(&c.node_id) {
        return Err(Ineligible::Excluded);
    }
    if !c.alive {
        return Err(Ineligible::NotAlive);
    }
    let status_ok = match c.status {
        None => false,
        Some(s) if q.statuses.is_empty() => s.accepts_custody(),
        Some(s) => q.statuses.contains(&s),
    };
    if !status_ok {
        return Err(Ineligible::Status);
    }
    if !q.regions.is_empty() && !q.regions.contains(&c.region) {
        return Err(Ineligible::Region);
    }
    if q.min_tier.is_some_and(|t| c.tier < t) {
        return Err(Ineligible::Tier);
    }
    if c.free_bytes() < q.needed_bytes {
        return Err(Ineligible::NoRoom {
            free: c.free_bytes(),
            needed: q.needed_bytes,
        });
    }
    Ok(())
}

fn clamp01(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

/// A node's quality weight in (0, 1]: free room, uptime, idle CPU,
/// reputation and tier, with a degraded node counted at half.
pub fn weight(c: &Candidate) -> f64 {
    let free = if c.max_custody_bytes == 0 {
        0.0
    } else {
        c.free_bytes() as f64 / c.max_custody_bytes as f64
    };
    let tier_rank = StewardTier::ALL
        .iter()
        .position(|t| *t == c.tier)
        .unwrap_or(0) as f64
        / 3.0;
    let w = 0.05
        + 0.30 * clamp01(free)
        + 0.20 * clamp01(c.uptime_percent / 100.0)
        + 0.20 * (1.0 - clamp01(c.current_load))
        + 0.15 * clamp01(c.reputation / 100.0)
        + 0.10 * tier_rank;
    if c.status == Some(NodeStatus::Degraded) {
        w * 0.5
    } else {
        w
    }
}

/// A ranked eligible node.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// Position in the input slice.
    pub index: usize,
    /// Quality weight.
    pub weight: f64,
    /// The sort key actually used (higher is better).
    pub rank_key: f64,
}

/// The eligible candidates, best first. Deterministic: equal keys fall back
/// to node id order.
pub fn rank(candidates: &[Candidate], q: &Criteria) -> Vec<Ranked> {
    let mut out: Vec<Ranked> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| check_eligible(c, q).is_ok())
        .map(|(index, c)| {
            let w = weight(c);
            let rank_key = match &q.placement_key {
                // Weighted rendezvous: w / -ln(u) is the classic score whose
                // winner is drawn with probability proportional to w.
                Some(key) => {
                    let u = unit_interval(stable_hash(&[key.as_bytes(), c.node_id.as_bytes()]));
                    w / -u.ln()
                }
                None => w,
            };
            Ranked {
                index,
                weight: w,
                rank_key,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.rank_key.total_cmp(&a.rank_key).then_with(|| {
            candidates[a.index]
                .node_id
                .cmp(&candidates[b.index].node_id)
        })
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str) -> Candidate {
        Candidate {
            node_id: id.to_string(),
            region: "eu-west".into(),
            tier: StewardTier::Guardian,
            opted_in: true,
            status: Some(NodeStatus::Online),
            alive: true,
            max_custody_bytes: 100_000,
            assigned_bytes: 0,
            current_load: 0.2,
            uptime_percent: 99.0,
            reputation: 100.0,
        }
    }

    #[test]
    fn hard_filters_each_exclude() {
        let q = Criteria {
            regions: vec!["eu-west".into()],
            min_tier: Some(StewardTier::Guardian),
            needed_bytes: 50_000,
            exclude: ["gone".to_string()].into(),
            ..Default::default()
        };
        assert_eq!(check_eligible(&cand("a"), &q), Ok(()));
        let mut c = cand("a");
        c.opted_in = false;
        assert_eq!(check_eligible(&c, &q), Err(Ineligible::OptedOut));
        let mut c = cand("a");
        c.alive = false;
        assert_eq!(check_eligible(&c, &q), Err(Ineligible::NotAlive));
        let mut c = cand("a");
        c.status = Some(NodeStatus::Maintenance);
        assert_eq!(check_eligible(&c, &q), Err(Ineligible::Status));
        let mut c = cand("a");
        c.status = None;
        assert_eq!(check_eligible(&c, &q), Err(Ineligible::Status));
        let mut c = cand("a");
        c.region = "us-east".into();
        assert_eq!(check_eligible(&c, &q), Err(Ineligible::Region));
        let mut c = cand("a");
        c.tier = StewardTier::Caretaker;
        assert_eq!(check_eligible(&c, &q), Err(Ineligible::Tier));
        assert_eq!(check_eligible(&cand("gone"), &q), Err(Ineligible::Excluded));
        let mut c = cand("a");
        c.assigned_bytes = 60_000;
        assert_eq!(
            check_eligible(&c, &q),
            Err(Ineligible::NoRoom {
                free: 40_000,
                needed: 50_000
            })
        );
    }

    #[test]
    fn explicit_status_filter_is_exact() {
        let q = Criteria {
            statuses: vec![NodeStatus::Online],
            ..Default::default()
        };
        let mut c = cand("a");
        c.status = Some(NodeStatus::Degraded);
        assert_eq!(check_eligible(&c, &q), Err(Ineligible::Status));
        assert!(check_eligible(&c, &Criteria::default()).is_ok());
    }

    #[test]
    fn better_nodes_rank_first_without_a_key() {
        let mut busy = cand("busy");
        busy.current_load = 1.0;
        busy.assigned_bytes = 90_000;
        let idle = cand("idle");
        let mut degraded = cand("degraded");
        degraded.status = Some(NodeStatus::Degraded);
        let list = vec![busy, degraded, idle];
        let order: Vec<&str> = rank(&list, &Criteria::default())
            .iter()
            .map(|r| list[r.index].node_id.as_str())
            .collect();
        assert_eq!(order, vec!["idle", "busy", "degraded"]);
    }

    #[test]
    fn rendezvous_is_deterministic_and_spreads() {
        let list: Vec<Candidate> = (0..10).map(|i| cand(&format!("n{i}"))).collect();
        let mut firsts = BTreeSet::new();
        for content in 0..200 {
            let q = Criteria {
                placement_key: Some(format!("content-{content}")),
                ..Default::default()
            };
            let a = rank(&list, &q);
            let mut shuffled = list.clone();
            shuffled.reverse();
            let b = rank(&shuffled, &q);
            assert_eq!(
                list[a[0].index].node_id, shuffled[b[0].index].node_id,
                "input order must not change the choice"
            );
            firsts.insert(list[a[0].index].node_id.clone());
        }
        assert!(
            firsts.len() >= 8,
            "equal nodes should all get some content: {firsts:?}"
        );
    }

    #[test]
    fn rendezvous_favours_weight() {
        let mut strong = cand("strong");
        strong.current_load = 0.0;
        let mut weak = cand("weak");
        weak.assigned_bytes = 99_000;
        weak.current_load = 1.0;
        weak.reputation = 10.0;
        let list = vec![strong, weak];
        let strong_wins = (0..2000)
            .filter(|i| {
                let q = Criteria {
                    placement_key: Some(format!("c{i}")),
                    ..Default::default()
                };
                list[rank(&list, &q)[0].index].node_id == "strong"
            })
            .count();
        assert!(strong_wins > 1300, "strong won {strong_wins} of 2000");
        assert!(strong_wins < 2000, "weak must still win sometimes");
    }
}
