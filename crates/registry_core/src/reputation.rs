//! Reputation: 100 at start, lowered only by penalties backed by evidence
//! and restored as those penalties age, and vetting: who may vote and
//! attest with weight.

use crate::MICROS_PER_SEC;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every node starts here.
pub const INITIAL_REPUTATION: f64 = 100.0;
/// Below this a node neither votes nor attests with weight.
pub const REPUTATION_FLOOR: f64 = 50.0;
/// How fast penalties are forgiven: a penalty's cost halves every week.
/// Never forgiving made honest nodes weightless: a home node is wrongly
/// penalised now and then (an outage, a flaky probe) and the simulator
/// found 75% of honest nodes below the floor after a year. A liar keeps
/// lying, so its fresh penalties keep it down.
pub const DEFAULT_PENALTY_HALF_LIFE_SECS: i64 = 7 * 24 * 3600;

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

/// What a penalty of `points` recorded at `recorded_at` still costs at `at`:
/// halved every `half_life_secs` (`0` or less: never forgiven). A penalty
/// from the future (clock skew) costs in full.
pub fn decayed_points(
    points: f64,
    recorded_at_micros: i64,
    at_micros: i64,
    half_life_secs: i64,
) -> f64 {
    if half_life_secs <= 0 {
        return points;
    }
    let age = at_micros.saturating_sub(recorded_at_micros).max(0) as f64;
    points * 0.5f64.powf(age / (half_life_secs as f64 * MICROS_PER_SEC as f64))
}

/// A node's reputation at `at` from its penalties (offence key, reason, when
/// recorded), each offence counted once however many nodes recorded it: at
/// its costliest reason, from its first recording. Never below 0.
pub fn reputation<'a>(
    penalties: impl IntoIterator<Item = (&'a str, PenaltyReason, i64)>,
    at_micros: i64,
    half_life_secs: i64,
) -> f64 {
    let mut once: BTreeMap<&str, (PenaltyReason, i64)> = BTreeMap::new();
    for (offence, reason, recorded_at) in penalties {
        let e = once.entry(offence).or_insert((reason, recorded_at));
        if reason.points() > e.0.points() {
            e.0 = reason;
        }
        e.1 = e.1.min(recorded_at);
    }
    let debt: f64 = once
        .values()
        .map(|(r, t)| decayed_points(r.points(), *t, at_micros, half_life_secs))
        .sum();
    (INITIAL_REPUTATION - debt).max(0.0)
}

/// The running form of [`reputation`] for a node whose penalties are all
/// distinct offences: exponential decay needs only the total and when it
/// was last brought up to date, so a simulation of a year of probes does
/// not keep every penalty.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PenaltyDebt {
    points: f64,
    at_micros: i64,
}

impl PenaltyDebt {
    /// Records a penalty.
    pub fn add(&mut self, reason: PenaltyReason, at_micros: i64, half_life_secs: i64) {
        if at_micros >= self.at_micros {
            self.points = self.points_at(at_micros, half_life_secs) + reason.points();
            self.at_micros = at_micros;
        } else {
            // Recorded late: age it to where the total stands.
            self.points +=
                decayed_points(reason.points(), at_micros, self.at_micros, half_life_secs);
        }
    }

    /// What the penalties still cost at `at`.
    pub fn points_at(&self, at_micros: i64, half_life_secs: i64) -> f64 {
        decayed_points(self.points, self.at_micros, at_micros, half_life_secs)
    }

    /// The reputation at `at`.
    pub fn reputation_at(&self, at_micros: i64, half_life_secs: i64) -> f64 {
        (INITIAL_REPUTATION - self.points_at(at_micros, half_life_secs)).max(0.0)
    }
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

    const WEEK: i64 = DEFAULT_PENALTY_HALF_LIFE_SECS;
    const T0: i64 = 1_000_000 * MICROS_PER_SEC;

    fn at_days(days: f64) -> i64 {
        T0 + (days * 86_400.0 * MICROS_PER_SEC as f64) as i64
    }

    #[test]
    fn penalties_lower_reputation_once_per_offence() {
        assert_eq!(reputation([], T0, WEEK), 100.0);
        assert_eq!(
            reputation([("att1", PenaltyReason::FalseAccusation, T0)], T0, WEEK),
            80.0
        );
        // The same offence recorded by three detectors costs once, at its
        // costliest reason.
        let same = [
            ("att1", PenaltyReason::ContradictedConsensus, T0),
            ("att1", PenaltyReason::FalseAccusation, T0),
            ("att1", PenaltyReason::ContradictedConsensus, T0),
        ];
        assert_eq!(reputation(same, T0, WEEK), 80.0);
        let many: Vec<(String, PenaltyReason)> = (0..20)
            .map(|i| (format!("a{i}"), PenaltyReason::ContradictedConsensus))
            .collect();
        assert_eq!(
            reputation(many.iter().map(|(a, r)| (a.as_str(), *r, T0)), T0, WEEK),
            0.0,
            "floored at zero"
        );
    }

    #[test]
    fn penalties_are_forgiven_as_they_age() {
        let one = |at| reputation([("a", PenaltyReason::FalseAccusation, T0)], at, WEEK);
        assert_eq!(one(at_days(7.0)), 90.0, "half the cost after a half-life");
        assert_eq!(one(at_days(14.0)), 95.0);
        assert!(one(at_days(365.0)) > 99.99, "a year later it is forgotten");
        assert_eq!(one(at_days(-1.0)), 80.0, "a future penalty costs in full");
        assert_eq!(
            reputation(
                [("a", PenaltyReason::FalseAccusation, T0)],
                at_days(365.0),
                0
            ),
            80.0,
            "a half-life of 0 never forgives"
        );
        // A later copy of an offence does not make it young again.
        let copies = [
            ("a", PenaltyReason::FalseAccusation, at_days(7.0)),
            ("a", PenaltyReason::FalseAccusation, T0),
        ];
        assert_eq!(reputation(copies, at_days(7.0), WEEK), 90.0);
    }

    #[test]
    fn a_steady_liar_stays_down_while_an_unlucky_node_recovers() {
        // Ten contradictions a day for a month, then judged on the last day.
        let liar: Vec<(String, i64)> = (0..300)
            .map(|i| (format!("l{i}"), at_days(i as f64 / 10.0)))
            .collect();
        let rep = reputation(
            liar.iter()
                .map(|(k, t)| (k.as_str(), PenaltyReason::ContradictedConsensus, *t)),
            at_days(30.0),
            WEEK,
        );
        assert_eq!(rep, 0.0, "a steady liar stays at zero");
        // Two false penalties a month for a year: above the floor at the end.
        let unlucky: Vec<(String, i64)> = (0..24)
            .map(|i| (format!("u{i}"), at_days(i as f64 * 15.0)))
            .collect();
        let rep = reputation(
            unlucky
                .iter()
                .map(|(k, t)| (k.as_str(), PenaltyReason::ContradictedConsensus, *t)),
            at_days(360.0),
            WEEK,
        );
        assert!(rep >= REPUTATION_FLOOR, "{rep}");
        let never = reputation(
            unlucky
                .iter()
                .map(|(k, t)| (k.as_str(), PenaltyReason::ContradictedConsensus, *t)),
            at_days(360.0),
            0,
        );
        assert!(never < REPUTATION_FLOOR, "without forgiveness: {never}");
    }

    #[test]
    fn the_running_debt_matches_the_full_sum() {
        let reasons = [
            PenaltyReason::ContradictedConsensus,
            PenaltyReason::FalseAccusation,
            PenaltyReason::RepeatedFailure,
        ];
        // Mostly in order, one recorded late.
        let times = [0.0, 0.5, 3.0, 2.0, 9.0, 9.0, 20.0];
        let mut debt = PenaltyDebt::default();
        let mut all = Vec::new();
        for (i, d) in times.iter().enumerate() {
            let r = reasons[i % 3];
            debt.add(r, at_days(*d), WEEK);
            all.push((format!("o{i}"), r, at_days(*d)));
        }
        for at in [20.0, 25.0, 60.0] {
            let full = reputation(
                all.iter().map(|(k, r, t)| (k.as_str(), *r, *t)),
                at_days(at),
                WEEK,
            );
            let running = debt.reputation_at(at_days(at), WEEK);
            assert!(
                (full - running).abs() < 1e-9,
                "{full} vs {running} at day {at}"
            );
        }
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
