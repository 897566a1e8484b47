//! Custody assignment rules: strategies, deterministic ids, shard layout,
//! and which assignment of a shard is the live one.
//!
//! Assignments are never edited. A repair creates a new assignment for the
//! same shard with the next round; the highest round of a shard is live and
//! earlier ones are retired. Two repairers that race may both write a round:
//! every reader then picks the same winner (lowest tie-break key), so the
//! network converges without coordination.

use crate::RegistryError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Most shards one content may be cut into (Reed-Solomon GF(2^8) limit of
/// the codecs is far higher; this bounds entry sizes and validation work).
pub const MAX_SHARDS: u32 = 255;

/// How a content is kept by its custodians.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustodyStrategy {
    /// Every custodian holds a whole copy; any one restores.
    FullReplica,
    /// Reed-Solomon k-of-n shards.
    ErasureCoded,
    /// Encrypted, k-of-n coded ciphertext, key Shamir-split k-of-n.
    ThresholdSplit,
}

impl CustodyStrategy {
    /// All strategies.
    pub const ALL: [CustodyStrategy; 3] = [
        CustodyStrategy::FullReplica,
        CustodyStrategy::ErasureCoded,
        CustodyStrategy::ThresholdSplit,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CustodyStrategy::FullReplica => "full_replica",
            CustodyStrategy::ErasureCoded => "erasure_coded",
            CustodyStrategy::ThresholdSplit => "threshold_split",
        }
    }
}

impl fmt::Display for CustodyStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CustodyStrategy {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CustodyStrategy::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| RegistryError::UnknownStrategy(s.to_string()))
    }
}

/// Who decided an assignment, which decides what evidence validation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionSource {
    /// The content's publisher placed it.
    Publisher,
    /// A repair after a custodian failed.
    DisasterRecovery,
    /// A 2/3 quorum of eligible voters approved it.
    Quorum,
    /// A family relationship with auto-custody placed it.
    RelationshipPolicy,
}

impl DecisionSource {
    /// All sources.
    pub const ALL: [DecisionSource; 4] = [
        DecisionSource::Publisher,
        DecisionSource::DisasterRecovery,
        DecisionSource::Quorum,
        DecisionSource::RelationshipPolicy,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionSource::Publisher => "publisher",
            DecisionSource::DisasterRecovery => "disaster_recovery",
            DecisionSource::Quorum => "quorum",
            DecisionSource::RelationshipPolicy => "relationship_policy",
        }
    }
}

impl FromStr for DecisionSource {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DecisionSource::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| RegistryError::InvalidAssignment(format!("unknown decided_by: {s}")))
    }
}

/// The id of the content whose bytes hash to `content_hash` (64 hex digits)
/// when `owner_key` (the owner's 32-byte agent key) publishes it:
/// `blake3(owner_key || content_hash)`, 64 hex digits. Unique per owner,
/// stable across republishing, and checkable by anyone: validation
/// recomputes it, so nobody can place (or claim to own) another person's
/// content under its id.
pub fn content_id(owner_key: &[u8], content_hash: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(owner_key);
    h.update(content_hash.as_bytes());
    h.finalize().to_hex().to_string()
}

/// Whether `id` has the canonical form of a content id (64 lowercase hex
/// digits), the only form that is safe to use as a file name.
pub fn is_canonical_content_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The deterministic id of the assignment of one shard in one round. Two
/// repairers computing it for the same repair get the same id.
pub fn assignment_id(content_id: &str, shard_index: u32, round: u32) -> String {
    format!("{content_id}#{shard_index}@{round}")
}

/// The layout an assignment declares for its round.
#[derive(Debug, Clone, Copy)]
pub struct ShardLayout<'a> {
    /// Strategy of the content.
    pub strategy: CustodyStrategy,
    /// Shards needed to restore.
    pub threshold: u32,
    /// Shards in total.
    pub shard_count: u32,
    /// Which shard this assignment is for.
    pub shard_index: u32,
    /// The custodian of this assignment.
    pub custodian_node_id: &'a str,
    /// The custodian of every shard in this round, by shard index.
    pub round_custodians: &'a [String],
}

/// Checks an assignment's layout: parameters in range, the custodian in its
/// own slot, and no node holding two shards of the content in one round.
pub fn check_layout(l: &ShardLayout<'_>) -> Result<(), RegistryError> {
    let bad = |m: String| Err(RegistryError::InvalidAssignment(m));
    if l.shard_count == 0 || l.shard_count > MAX_SHARDS {
        return bad(format!(
            "shard_count {} must be 1..={MAX_SHARDS}",
            l.shard_count
        ));
    }
    if l.threshold == 0 || l.threshold > l.shard_count {
        return bad(format!(
            "threshold {} must be 1..=shard_count ({})",
            l.threshold, l.shard_count
        ));
    }
    if l.strategy == CustodyStrategy::FullReplica && l.threshold != 1 {
        return bad("full_replica needs threshold 1 (any copy restores)".into());
    }
    if l.shard_index >= l.shard_count {
        return bad(format!(
            "shard_index {} out of 0..{}",
            l.shard_index, l.shard_count
        ));
    }
    if l.round_custodians.len() != l.shard_count as usize {
        return bad(format!(
            "round_custodians lists {} nodes for {} shards",
            l.round_custodians.len(),
            l.shard_count
        ));
    }
    if l.round_custodians[l.shard_index as usize] != l.custodian_node_id {
        return bad(format!(
            "custodian {} is not in slot {} of round_custodians",
            l.custodian_node_id, l.shard_index
        ));
    }
    let mut seen = BTreeSet::new();
    for node in l.round_custodians {
        if !seen.insert(node.as_str()) {
            return bad(format!(
                "content assigned twice to node {node} in one round"
            ));
        }
    }
    Ok(())
}

/// The facts about one assignment needed to decide which is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotClaim<K: Ord> {
    /// Shard index.
    pub shard_index: u32,
    /// Round of the decision.
    pub round: u32,
    /// Tie-break between claims of one round (e.g. the entry hash): the
    /// lowest wins, so every reader picks the same one.
    pub tiebreak: K,
}

impl<K: Ord> SlotClaim<K> {
    /// Whether this claim takes its shard from `other`: the same shard, and
    /// a later round or the same round with a lower tie-break. Once both
    /// are indexed no reader sees `other` live again, so `other` can be
    /// marked retired for good.
    pub fn outranks(&self, other: &Self) -> bool {
        self.shard_index == other.shard_index
            && (self.round > other.round
                || (self.round == other.round && self.tiebreak < other.tiebreak))
    }
}

/// For each shard index, the position in `claims` of its live assignment:
/// the highest round, then the lowest tie-break key.
pub fn live_claims<K: Ord + Clone>(claims: &[SlotClaim<K>]) -> BTreeMap<u32, usize> {
    let mut best: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, c) in claims.iter().enumerate() {
        match best.get(&c.shard_index) {
            Some(&j) => {
                if c.outranks(&claims[j]) {
                    best.insert(c.shard_index, i);
                }
            }
            None => {
                best.insert(c.shard_index, i);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(shard_index: u32, round: u32, tiebreak: u8) -> SlotClaim<u8> {
        SlotClaim {
            shard_index,
            round,
            tiebreak,
        }
    }

    #[test]
    fn a_content_id_binds_its_owner_and_is_a_safe_file_name() {
        let hash = "ab".repeat(32);
        let mine = content_id(&[1; 32], &hash);
        assert_eq!(mine, content_id(&[1; 32], &hash), "stable");
        assert_ne!(mine, content_id(&[2; 32], &hash), "another owner");
        assert_ne!(mine, content_id(&[1; 32], &"cd".repeat(32)), "other bytes");
        assert!(is_canonical_content_id(&mine));
        for bad in ["../x", "/etc/passwd", "", &mine.to_uppercase(), &mine[1..]] {
            assert!(!is_canonical_content_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_later_round_or_a_lower_tiebreak_outranks_on_the_same_shard_only() {
        assert!(claim(0, 1, 9).outranks(&claim(0, 0, 1)));
        assert!(claim(0, 1, 1).outranks(&claim(0, 1, 2)));
        assert!(!claim(0, 1, 2).outranks(&claim(0, 1, 2)), "not itself");
        assert!(!claim(0, 0, 1).outranks(&claim(0, 1, 9)));
        assert!(!claim(1, 5, 0).outranks(&claim(0, 0, 9)), "another shard");
    }

    fn nodes(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn layout<'a>(idx: u32, custodian: &'a str, round: &'a [String]) -> ShardLayout<'a> {
        ShardLayout {
            strategy: CustodyStrategy::ErasureCoded,
            threshold: 2,
            shard_count: 3,
            shard_index: idx,
            custodian_node_id: custodian,
            round_custodians: round,
        }
    }

    #[test]
    fn valid_layout_passes() {
        let r = nodes(&["a", "b", "c"]);
        assert_eq!(check_layout(&layout(1, "b", &r)), Ok(()));
    }

    #[test]
    fn duplicate_node_in_round_is_rejected() {
        let r = nodes(&["a", "b", "a"]);
        let err = check_layout(&layout(0, "a", &r)).unwrap_err();
        assert!(
            err.to_string().contains("assigned twice to node a"),
            "{err}"
        );
    }

    #[test]
    fn inconsistent_layouts_are_rejected() {
        let r = nodes(&["a", "b", "c"]);
        assert!(check_layout(&layout(1, "c", &r)).is_err(), "wrong slot");
        assert!(
            check_layout(&layout(3, "c", &r)).is_err(),
            "index out of range"
        );
        let short = nodes(&["a", "b"]);
        assert!(check_layout(&layout(0, "a", &short)).is_err(), "length");
        let mut l = layout(0, "a", &r);
        l.threshold = 4;
        assert!(check_layout(&l).is_err(), "k > n");
        l.threshold = 0;
        assert!(check_layout(&l).is_err(), "k = 0");
        let mut l = layout(0, "a", &r);
        l.strategy = CustodyStrategy::FullReplica;
        assert!(check_layout(&l).is_err(), "replica with k=2");
        l.threshold = 1;
        assert!(check_layout(&l).is_ok());
    }

    #[test]
    fn highest_round_then_lowest_tiebreak_is_live() {
        let claims = vec![
            SlotClaim {
                shard_index: 0,
                round: 0,
                tiebreak: "x",
            },
            SlotClaim {
                shard_index: 1,
                round: 0,
                tiebreak: "y",
            },
            SlotClaim {
                shard_index: 0,
                round: 1,
                tiebreak: "z",
            },
            SlotClaim {
                shard_index: 0,
                round: 1,
                tiebreak: "m",
            },
        ];
        let live = live_claims(&claims);
        assert_eq!(live.get(&0), Some(&3));
        assert_eq!(live.get(&1), Some(&1));
        // Order of arrival does not matter.
        let mut rev = claims.clone();
        rev.reverse();
        let live = live_claims(&rev);
        assert_eq!(rev[live[&0]].tiebreak, "m");
    }

    #[test]
    fn ids_and_names_round_trip() {
        assert_eq!(assignment_id("c1", 2, 3), "c1#2@3");
        for s in CustodyStrategy::ALL {
            assert_eq!(s.as_str().parse::<CustodyStrategy>(), Ok(s));
        }
        assert!("raid5".parse::<CustodyStrategy>().is_err());
        for d in DecisionSource::ALL {
            assert_eq!(d.as_str().parse::<DecisionSource>(), Ok(d));
        }
    }
}
