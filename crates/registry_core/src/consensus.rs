//! Health consensus: what the attestations of the last few minutes say
//! about a node, robust to liars.
//!
//! Three defences, all from practice: each attester counts once (its newest
//! attestation), attesters weigh by reputation and count only once vetted
//! (Sybil keys weigh nothing), and a failure verdict needs failure reports
//! from at least two distinct attesters (Ceph's `mon_osd_min_down_reporters`),
//! so one liar cannot take a healthy node down.

use crate::MICROS_PER_SEC;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Age of the attestations that count (the plan's 5 minutes).
pub const CONSENSUS_WINDOW_SECS: i64 = 300;
/// Healthy at or above this weighted success ratio.
pub const HEALTHY_RATIO: f64 = 0.90;
/// Degraded at or above this ratio, unhealthy below.
pub const DEGRADED_RATIO: f64 = 0.60;
/// Distinct failure reporters needed before failures count.
pub const MIN_FAILURE_REPORTERS: usize = 2;
/// Distinct weighted attesters at which confidence is full.
pub const FULL_CONFIDENCE_ATTESTERS: f64 = 3.0;

/// The verdict about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthVerdict {
    /// Answers nearly every probe.
    Healthy,
    /// Answers most probes.
    Degraded,
    /// Answers few probes.
    Unhealthy,
    /// Nobody with weight has looked recently.
    Unknown,
}

impl HealthVerdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthVerdict::Healthy => "healthy",
            HealthVerdict::Degraded => "degraded",
            HealthVerdict::Unhealthy => "unhealthy",
            HealthVerdict::Unknown => "unknown",
        }
    }
}

/// One attestation as consensus sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestationView {
    /// Who observed.
    pub attester: String,
    /// Whether the subject answered.
    pub success: bool,
    /// Round trip, ms.
    pub response_time_ms: u32,
    /// When observed, micros.
    pub timestamp_micros: i64,
    /// The attester's weight: 0 for unvetted nodes, else reputation / 100.
    pub weight: f64,
}

/// The consensus about one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthConsensus {
    /// The verdict.
    pub status: HealthVerdict,
    /// Weighted share of successes among counted attestations, 0..=1.
    pub success_ratio: f64,
    /// How much to trust the verdict, 0..=1: coverage (distinct weighted
    /// attesters, full at three) times agreement with the verdict.
    pub confidence: f64,
    /// Mean response time of the counted successes.
    pub avg_response_time_ms: Option<u32>,
    /// Attesters counted (with weight, one attestation each).
    pub attesters: u32,
    /// Distinct attesters that reported a failure.
    pub failure_reporters: u32,
    /// Whether failures were ignored for lack of a second reporter.
    pub lone_accusation_ignored: bool,
}

/// The consensus over `atts` at `now`, counting attestations of the last
/// [`CONSENSUS_WINDOW_SECS`]: how evidence for a penalty is judged.
pub fn health_consensus(atts: &[AttestationView], now_micros: i64) -> HealthConsensus {
    health_consensus_within(atts, now_micros, CONSENSUS_WINDOW_SECS)
}

/// The consensus over `atts` at `now`, counting each attester's newest
/// attestation of the last `window_secs`. Monitors record verdicts when
/// they change and re-state them once per verdict period, so a node's
/// standing consensus is read over two verdict periods.
pub fn health_consensus_within(
    atts: &[AttestationView],
    now_micros: i64,
    window_secs: i64,
) -> HealthConsensus {
    let since = now_micros - window_secs.max(0) * MICROS_PER_SEC;
    // Newest attestation per attesting agent (one agent's several node ids
    // are one voice), within the window, with weight.
    let mut latest: BTreeMap<&str, &AttestationView> = BTreeMap::new();
    for a in atts {
        if a.timestamp_micros < since || a.timestamp_micros > now_micros + 60 * MICROS_PER_SEC {
            continue;
        }
        if !(a.weight.is_finite() && a.weight > 0.0) {
            continue;
        }
        let agent = crate::node_id::owner_tag(&a.attester);
        match latest.get(agent) {
            Some(b) if b.timestamp_micros >= a.timestamp_micros => {}
            _ => {
                latest.insert(agent, a);
            }
        }
    }
    let failure_reporters = latest.values().filter(|a| !a.success).count();
    let lone = failure_reporters > 0 && failure_reporters < MIN_FAILURE_REPORTERS;
    let counted: Vec<&&AttestationView> = latest.values().filter(|a| a.success || !lone).collect();
    let total: f64 = counted.iter().map(|a| a.weight).sum();
    if counted.is_empty() || total <= 0.0 {
        return HealthConsensus {
            status: HealthVerdict::Unknown,
            success_ratio: 0.0,
            confidence: 0.0,
            avg_response_time_ms: None,
            attesters: 0,
            failure_reporters: failure_reporters as u32,
            lone_accusation_ignored: lone,
        };
    }
    let ok: f64 = counted.iter().filter(|a| a.success).map(|a| a.weight).sum();
    let ratio = ok / total;
    let status = if ratio >= HEALTHY_RATIO {
        HealthVerdict::Healthy
    } else if ratio >= DEGRADED_RATIO {
        HealthVerdict::Degraded
    } else {
        HealthVerdict::Unhealthy
    };
    let agreement = match status {
        HealthVerdict::Healthy => ratio,
        HealthVerdict::Unhealthy => 1.0 - ratio,
        _ => 1.0 - (ratio - (HEALTHY_RATIO + DEGRADED_RATIO) / 2.0).abs() * 2.0,
    };
    let coverage = (counted.len() as f64 / FULL_CONFIDENCE_ATTESTERS).min(1.0);
    let successes: Vec<u64> = counted
        .iter()
        .filter(|a| a.success)
        .map(|a| a.response_time_ms as u64)
        .collect();
    HealthConsensus {
        status,
        success_ratio: ratio,
        confidence: (coverage * agreement).clamp(0.0, 1.0),
        avg_response_time_ms: (!successes.is_empty())
            .then(|| (successes.iter().sum::<u64>() / successes.len() as u64) as u32),
        attesters: counted.len() as u32,
        failure_reporters: failure_reporters as u32,
        lone_accusation_ignored: lone,
    }
}

/// Whether an attestation contradicts a confident consensus: it reported a
/// failure of a node the others find healthy, or success of one they find
/// unhealthy. Degraded and unknown verdicts accuse nobody.
pub fn contradicts(success: bool, consensus: &HealthConsensus, min_confidence: f64) -> bool {
    if consensus.confidence < min_confidence {
        return false;
    }
    match consensus.status {
        HealthVerdict::Healthy => !success,
        HealthVerdict::Unhealthy => success,
        _ => false,
    }
}

/// The offence a penalty names, as consensus sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offence {
    /// Who made the offending attestation.
    pub attester: String,
    /// Whom it was about.
    pub subject: String,
    /// What it said.
    pub success: bool,
    /// When.
    pub timestamp_micros: i64,
}

/// Why evidence does or does not justify a penalty: the one rule the
/// integrity zome validates with and a detector checks before it writes.
/// `evidence` are the witnesses' attestations (weight 1 each: validation
/// has already checked them vetted, distinct and within the window of the
/// offence); the consensus is taken at the newest of them.
pub fn penalty_justified(
    reason: crate::reputation::PenaltyReason,
    offender: &str,
    offence: &Offence,
    evidence: &[AttestationView],
) -> Result<HealthConsensus, HealthConsensus> {
    use crate::reputation::PenaltyReason;
    let at = evidence
        .iter()
        .map(|v| v.timestamp_micros)
        .max()
        .unwrap_or_default();
    let consensus = health_consensus(evidence, at);
    let justified = match reason {
        PenaltyReason::FalseAccusation => {
            offence.attester == offender
                && !offence.success
                && consensus.status == HealthVerdict::Healthy
        }
        PenaltyReason::ContradictedConsensus => {
            offence.attester == offender && contradicts(offence.success, &consensus, 0.9)
        }
        PenaltyReason::RepeatedFailure => {
            offence.subject == offender
                && !offence.success
                && consensus.status == HealthVerdict::Unhealthy
        }
    };
    if justified {
        Ok(consensus)
    } else {
        Err(consensus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000 * MICROS_PER_SEC;

    fn att(who: &str, ok: bool, ago_secs: i64) -> AttestationView {
        AttestationView {
            attester: who.into(),
            success: ok,
            response_time_ms: 20,
            timestamp_micros: NOW - ago_secs * MICROS_PER_SEC,
            weight: 1.0,
        }
    }

    #[test]
    fn thresholds_follow_the_plan() {
        let healthy: Vec<_> = (0..10).map(|i| att(&format!("n{i}"), true, 10)).collect();
        assert_eq!(
            health_consensus(&healthy, NOW).status,
            HealthVerdict::Healthy
        );
        let mut degraded: Vec<_> = (0..7).map(|i| att(&format!("n{i}"), true, 10)).collect();
        degraded.extend((7..10).map(|i| att(&format!("n{i}"), false, 10)));
        let c = health_consensus(&degraded, NOW);
        assert_eq!(c.status, HealthVerdict::Degraded);
        assert!((c.success_ratio - 0.7).abs() < 1e-9);
        let mut bad: Vec<_> = (0..2).map(|i| att(&format!("n{i}"), true, 10)).collect();
        bad.extend((2..10).map(|i| att(&format!("n{i}"), false, 10)));
        assert_eq!(health_consensus(&bad, NOW).status, HealthVerdict::Unhealthy);
        assert_eq!(health_consensus(&[], NOW).status, HealthVerdict::Unknown);
    }

    #[test]
    fn one_liar_cannot_fail_a_node() {
        // The plan's scenario: one attacker says failed, ten honest say fine.
        let mut atts: Vec<_> = (0..10)
            .map(|i| att(&format!("honest{i}"), true, 30))
            .collect();
        atts.push(att("attacker", false, 5));
        let c = health_consensus(&atts, NOW);
        assert_eq!(c.status, HealthVerdict::Healthy);
        assert!(c.lone_accusation_ignored);
        // Even alone, a single accuser yields nothing worse than unknown.
        let c = health_consensus(&[att("attacker", false, 5)], NOW);
        assert_eq!(c.status, HealthVerdict::Unknown);
        // Two distinct reporters do count.
        let c = health_consensus(&[att("a", false, 5), att("b", false, 5)], NOW);
        assert_eq!(c.status, HealthVerdict::Unhealthy);
    }

    #[test]
    fn each_attester_counts_once_and_stale_or_weightless_not_at_all() {
        // One node spamming failures is still one reporter.
        let mut atts: Vec<_> = (0..50).map(|i| att("spammer", false, i)).collect();
        atts.extend((0..3).map(|i| att(&format!("h{i}"), true, 10)));
        let c = health_consensus(&atts, NOW);
        assert_eq!(c.status, HealthVerdict::Healthy);
        assert_eq!(c.attesters, 3);
        // So is one agent naming three node ids: a lone accusation.
        let mut sybil: Vec<_> = [
            "x-00000000000000aa",
            "y-00000000000000aa",
            "z-00000000000000aa",
        ]
        .iter()
        .map(|n| att(n, false, 5))
        .collect();
        sybil.extend((0..3).map(|i| att(&format!("h{i}"), true, 10)));
        let c = health_consensus(&sybil, NOW);
        assert_eq!((c.status, c.attesters), (HealthVerdict::Healthy, 3));
        // Its newest attestation is what counts.
        let flip = vec![att("a", false, 100), att("a", true, 1)];
        assert_eq!(health_consensus(&flip, NOW).status, HealthVerdict::Healthy);
        // Older than five minutes: ignored.
        assert_eq!(
            health_consensus(&[att("a", true, 301)], NOW).status,
            HealthVerdict::Unknown
        );
        // Sybils (weight 0) are ignored entirely.
        let mut sybils: Vec<_> = (0..100)
            .map(|i| AttestationView {
                weight: 0.0,
                ..att(&format!("s{i}"), false, 5)
            })
            .collect();
        sybils.push(att("honest", true, 5));
        let c = health_consensus(&sybils, NOW);
        assert_eq!(c.status, HealthVerdict::Healthy);
        assert_eq!(c.failure_reporters, 0);
    }

    #[test]
    fn reputation_weighs() {
        // Two low-reputation accusers against one trusted witness.
        let atts = vec![
            AttestationView {
                weight: 0.1,
                ..att("shady1", false, 5)
            },
            AttestationView {
                weight: 0.1,
                ..att("shady2", false, 5)
            },
            att("trusted", true, 5),
        ];
        let c = health_consensus(&atts, NOW);
        assert!((c.success_ratio - 1.0 / 1.2).abs() < 1e-9);
        assert_eq!(c.status, HealthVerdict::Degraded);
    }

    #[test]
    fn confidence_grows_with_coverage_and_agreement() {
        let one = health_consensus(&[att("a", true, 5)], NOW);
        let three = health_consensus(
            &[att("a", true, 5), att("b", true, 5), att("c", true, 5)],
            NOW,
        );
        assert!(one.confidence < three.confidence);
        assert!((three.confidence - 1.0).abs() < 1e-9);
        assert!(contradicts(false, &three, 0.5));
        assert!(!contradicts(true, &three, 0.5));
        assert!(
            !contradicts(false, &one, 0.5),
            "not confident enough to accuse"
        );
    }
}
