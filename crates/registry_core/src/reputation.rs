//! Reputation: 100 at start, lowered only by penalties backed by evidence,
//! and vetting: who may vote and attest with weight.

use crate::MICROS_PER_SEC;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every node starts here.
pub const INITIAL_REPUTATION: f64 = 100.0;
/// Below this a node neither votes nor attests with weight.
pub const REPUTATION_FLOOR: f64 = 50.0;

/// Why a node was penalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyReason {
    /// Attested against a confident consensus (a liar, or a broken prober).
    ContradictedConsensus,
    /// Reported a failure of a node the consensus found healthy.
    FalseAccusation,
    /// Was itself found unhealthy by a confident consensus.
    RepeatedFailure,
}

impl PenaltyReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PenaltyReason::ContradictedConsensus => "contradicted_consensus",
            PenaltyReason::FalseAccusation => "false_accusation",
            PenaltyReason::RepeatedFailure => "repeated_failure",
        }
    }

    /// Points one such penalty costs.
    pub fn points(self) -> f64 {
        match self {
            PenaltyReason::ContradictedConsensus => 10.0,
            PenaltyReason::FalseAccusation => 20.0,
            PenaltyReason::RepeatedFailure => 5.0,
        }
    }
}

impl std::str::FromStr for PenaltyReason {
    type Err = crate::RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            PenaltyReason::ContradictedConsensus,
            PenaltyReason::FalseAccusation,
            PenaltyReason::RepeatedFailure,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| {
            crate::RegistryError::InvalidAssignment(format!("unknown penalty reason: {s}"))
        })
    }
}

/// A node's reputation from its penalties, each counted once per offence
/// key (e.g. the offending attestation's hash), however many nodes recorded
/// it. Never below 0.
pub fn reputation<'a>(penalties: impl IntoIterator<Item = (&'a str, PenaltyReason)>) -> f64 {
    let mut once: BTreeMap<&str, PenaltyReason> = BTreeMap::new();
    for (offence, reason) in penalties {
        let e = once.entry(offence).or_insert(reason);
        if reason.points() > e.points() {
            *e = reason;
        }
    }
    (INITIAL_REPUTATION - once.values().map(|r| r.points()).sum::<f64>()).max(0.0)
}

/// When a node counts as vetted (Storj vets new nodes before trusting them):
/// registered for at least `min_age_secs` before `at`, with a reputation at
/// or above the floor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VettingPolicy {
    /// Minimum time since registration.
    pub min_age_secs: i64,
    /// Minimum reputation.
    pub reputation_floor: f64,
}

impl Default for VettingPolicy {
    fn default() -> Self {
        VettingPolicy {
            min_age_secs: 24 * 3600,
            reputation_floor: REPUTATION_FLOOR,
        }
    }
}

impl VettingPolicy {
    /// Whether a node registered at `registered_at` is old enough at `at`.
    pub fn old_enough(&self, registered_at_micros: i64, at_micros: i64) -> bool {
        at_micros.saturating_sub(registered_at_micros) >= self.min_age_secs * MICROS_PER_SEC
    }

    /// Whether the node is vetted.
    pub fn vetted(&self, registered_at_micros: i64, at_micros: i64, reputation: f64) -> bool {
        self.old_enough(registered_at_micros, at_micros) && reputation >= self.reputation_floor
    }

    /// The weight of the node's attestations: 0 unless vetted, else its
    /// reputation over 100.
    pub fn attestation_weight(
        &self,
        registered_at_micros: i64,
        at_micros: i64,
        reputation: f64,
    ) -> f64 {
        if self.vetted(registered_at_micros, at_micros, reputation) {
            reputation / INITIAL_REPUTATION
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalties_lower_reputation_once_per_offence() {
        assert_eq!(reputation([]), 100.0);
        assert_eq!(reputation([("att1", PenaltyReason::FalseAccusation)]), 80.0);
        // The same offence recorded by three detectors costs once.
        let same = [
            ("att1", PenaltyReason::FalseAccusation),
            ("att1", PenaltyReason::FalseAccusation),
            ("att1", PenaltyReason::ContradictedConsensus),
        ];
        assert_eq!(reputation(same), 80.0);
        let many: Vec<(String, PenaltyReason)> = (0..20)
            .map(|i| (format!("a{i}"), PenaltyReason::ContradictedConsensus))
            .collect();
        assert_eq!(
            reputation(many.iter().map(|(a, r)| (a.as_str(), *r))),
            0.0,
            "floored at zero"
        );
    }

    #[test]
    fn vetting_needs_age_and_reputation() {
        let p = VettingPolicy {
            min_age_secs: 60,
            reputation_floor: 50.0,
        };
        let t = 1_000 * MICROS_PER_SEC;
        assert!(!p.vetted(t, t + 59 * MICROS_PER_SEC, 100.0), "too young");
        assert!(p.vetted(t, t + 60 * MICROS_PER_SEC, 100.0));
        assert!(
            !p.vetted(t, t + 3600 * MICROS_PER_SEC, 49.0),
            "below the floor"
        );
        assert_eq!(p.attestation_weight(t, t + 10 * MICROS_PER_SEC, 100.0), 0.0);
        assert_eq!(p.attestation_weight(t, t + 100 * MICROS_PER_SEC, 80.0), 0.8);
    }
}
