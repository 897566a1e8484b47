//! Judging a node from what is on the DHT: its own presence lease and its
//! monitors' verdicts (see [`crate::monitor`]), against the reader's clock.
//!
//! * Two or more distinct, vetted monitors whose newest verdict is
//!   `suspected`, recorded after the node last renewed its lease: the node is
//!   suspected from the newest time any of them last heard it, and failed
//!   once that silence passes the failure window and the grace period
//!   ([`crate::heartbeat::judge_liveness`]). Two reporters, as Ceph's
//!   `mon_osd_min_down_reporters`, so one liar cannot take a node down.
//! * One such monitor: suspected, never failed.
//! * No suspicion and a lease in the buckets read: alive.
//! * No lease at all: failed (silent for longer than a lease period, or
//!   never present), the slow path that needs no reporter.
//!
//! Selection offers no node that two vetted monitors suspect, from the
//! moment their suspicions arrive ([`Judgement::excluded_from_selection`]).

use crate::heartbeat::{judge_liveness, Liveness, LivenessPolicy};
use crate::monitor::Verdict;
use crate::MICROS_PER_SEC;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Distinct vetted reporters whose suspicions make a node failed (after
/// the grace period) and keep it out of selection.
pub const MIN_REPORTERS: usize = crate::consensus::MIN_FAILURE_REPORTERS;

/// One monitor's verdict about a node, as read from the DHT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictView {
    /// The monitor.
    pub attester: String,
    /// What it said.
    pub verdict: Verdict,
    /// When it last heard the node.
    pub last_seen_micros: i64,
    /// When the verdict was recorded (its action's time).
    pub recorded_micros: i64,
    /// Whether the monitor is vetted (old enough, reputation above the
    /// floor): unvetted verdicts are ignored.
    pub vetted: bool,
}

/// What the DHT says about one node now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Alive, suspected or failed.
    pub liveness: Liveness,
    /// Distinct vetted monitors suspecting it now.
    pub reporters: u32,
    /// The newest time a suspecting monitor heard it, if any suspects it.
    pub last_seen_micros: Option<i64>,
}

impl Judgement {
    /// Whether selection must leave the node out: two vetted monitors
    /// suspect it (whether or not the grace period has passed), or it is
    /// failed.
    pub fn excluded_from_selection(&self) -> bool {
        self.reporters as usize >= MIN_REPORTERS || matches!(self.liveness, Liveness::Failed { .. })
    }
}

/// Judges one node from `verdicts` about it (any order, several per
/// monitor) and the time of its newest presence lease (`None` when it has
/// none in the buckets read).
pub fn judge(
    verdicts: &[VerdictView],
    lease_micros: Option<i64>,
    now_micros: i64,
    policy: LivenessPolicy,
) -> Judgement {
    // The newest verdict per monitoring agent: one agent's several node ids
    // are one reporter.
    let mut newest: BTreeMap<&str, &VerdictView> = BTreeMap::new();
    for v in verdicts.iter().filter(|v| v.vetted) {
        let agent = crate::node_id::owner_tag(&v.attester);
        match newest.get(agent) {
            Some(n) if n.recorded_micros >= v.recorded_micros => {}
            _ => {
                newest.insert(agent, v);
            }
        }
    }
    let suspecting: Vec<&&VerdictView> = newest
        .values()
        .filter(|v| v.verdict == Verdict::Suspected)
        // A lease renewed after a suspicion was recorded clears it: the
        // node is back, and its monitors will say so soon.
        .filter(|v| lease_micros.is_none_or(|l| l < v.recorded_micros))
        .collect();
    let last_seen = suspecting.iter().map(|v| v.last_seen_micros).max();
    let reporters = suspecting.len() as u32;
    let liveness = match last_seen {
        Some(seen) if suspecting.len() >= MIN_REPORTERS => {
            match judge_liveness(Some(seen), now_micros, policy) {
                Liveness::Alive { silent_secs } => Liveness::Suspected { silent_secs },
                other => other,
            }
        }
        Some(seen) => Liveness::Suspected {
            silent_secs: (now_micros.saturating_sub(seen) / MICROS_PER_SEC).max(0),
        },
        None if lease_micros.is_some() => Liveness::Alive { silent_secs: 0 },
        None => Liveness::Failed { silent_secs: None },
    };
    Judgement {
        liveness,
        reporters,
        last_seen_micros: last_seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = MICROS_PER_SEC;
    const T0: i64 = 1_800_000_000 * S;
    const POLICY: LivenessPolicy = LivenessPolicy {
        failure_window_secs: 10,
        grace_secs: 5,
    };

    fn v(attester: &str, verdict: Verdict, seen: i64, at: i64) -> VerdictView {
        VerdictView {
            attester: attester.into(),
            verdict,
            last_seen_micros: seen,
            recorded_micros: at,
            vetted: true,
        }
    }

    #[test]
    fn two_suspicions_suspect_then_fail_after_grace() {
        let views = [
            v("m1", Verdict::Suspected, T0, T0 + 11 * S),
            v("m2", Verdict::Suspected, T0 - S, T0 + 12 * S),
        ];
        let lease = Some(T0 - 100 * S);
        let j = judge(&views, lease, T0 + 13 * S, POLICY);
        assert_eq!(j.reporters, 2);
        assert_eq!(j.liveness, Liveness::Suspected { silent_secs: 13 });
        assert!(j.excluded_from_selection(), "out of selection at once");
        let j = judge(&views, lease, T0 + 16 * S, POLICY);
        assert_eq!(
            j.liveness,
            Liveness::Failed {
                silent_secs: Some(16)
            }
        );
    }

    #[test]
    fn one_liar_cannot_fail_a_node() {
        let views = [
            v("liar", Verdict::Suspected, T0, T0 + S),
            v("m2", Verdict::Alive, T0, T0),
        ];
        let j = judge(&views, Some(T0 - 5 * S), T0 + 3600 * S, POLICY);
        assert_eq!(j.reporters, 1);
        assert!(matches!(j.liveness, Liveness::Suspected { .. }));
        assert!(!j.excluded_from_selection());
    }

    #[test]
    fn a_retraction_or_a_newer_lease_clears_a_suspicion() {
        let views = [
            v("m1", Verdict::Suspected, T0, T0 + 11 * S),
            v("m2", Verdict::Suspected, T0, T0 + 11 * S),
            v("m2", Verdict::Alive, T0 + 20 * S, T0 + 20 * S),
        ];
        let j = judge(&views, Some(T0 - 60 * S), T0 + 60 * S, POLICY);
        assert_eq!(j.reporters, 1, "m2 took its suspicion back");
        let j = judge(&views[..2], Some(T0 + 30 * S), T0 + 60 * S, POLICY);
        assert_eq!(j.reporters, 0, "the node renewed its lease since");
        assert_eq!(j.liveness, Liveness::Alive { silent_secs: 0 });
    }

    #[test]
    fn unvetted_reporters_do_not_count() {
        let mut a = v("sybil-1", Verdict::Suspected, T0, T0 + S);
        let mut b = v("sybil-2", Verdict::Suspected, T0, T0 + S);
        a.vetted = false;
        b.vetted = false;
        let j = judge(&[a, b], Some(T0 - S), T0 + 3600 * S, POLICY);
        assert_eq!(j.reporters, 0);
        assert!(j.liveness.is_alive());
    }

    #[test]
    fn one_agents_two_nodes_are_one_reporter() {
        let views = [
            v(
                "rack-a-0123456789abcdef",
                Verdict::Suspected,
                T0,
                T0 + 11 * S,
            ),
            v(
                "rack-b-0123456789abcdef",
                Verdict::Suspected,
                T0,
                T0 + 12 * S,
            ),
        ];
        let j = judge(&views, Some(T0 - 100 * S), T0 + 3600 * S, POLICY);
        assert_eq!(j.reporters, 1);
        assert!(!j.excluded_from_selection(), "{j:?}");
    }

    #[test]
    fn no_lease_and_no_suspicion_is_failed() {
        let j = judge(&[], None, T0, POLICY);
        assert_eq!(j.liveness, Liveness::Failed { silent_secs: None });
        assert!(j.excluded_from_selection());
        assert!(judge(&[], Some(T0), T0, POLICY).liveness.is_alive());
    }
}
