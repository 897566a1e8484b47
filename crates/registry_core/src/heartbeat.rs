//! Heartbeat time rules: claimed-time skew, time buckets and liveness.
//!
//! Validation cannot read a clock, so a heartbeat's claimed time is checked
//! against its own action's timestamp. Whether a node is alive is a question
//! about *now*, answered at read time by [`judge_liveness`].

use crate::{RegistryError, MICROS_PER_SEC};
use serde::{Deserialize, Serialize};

/// Default time between two heartbeats of a node.
pub const DEFAULT_HEARTBEAT_INTERVAL_SECS: i64 = 30;
/// Default silence after which a node is suspected dead.
pub const DEFAULT_FAILURE_WINDOW_SECS: i64 = 60;
/// Most a claimed time (heartbeat, attestation) may differ from its action's
/// timestamp.
pub const MAX_CLAIMED_TIME_SKEW_SECS: i64 = 60;
/// Length of one heartbeat time bucket. A node's heartbeats are linked from
/// one base per bucket, so the latest is found by reading at most a couple of
/// small bases, never the node's whole history.
pub const HEARTBEAT_BUCKET_SECS: i64 = 600;

/// Checks that a claimed time lies within [`MAX_CLAIMED_TIME_SKEW_SECS`] of
/// the timestamp of the action that carries it.
pub fn check_claimed_time(
    field: &'static str,
    claimed_micros: i64,
    action_micros: i64,
) -> Result<(), RegistryError> {
    let skew = claimed_micros
        .saturating_sub(action_micros)
        .saturating_abs();
    if skew > MAX_CLAIMED_TIME_SKEW_SECS * MICROS_PER_SEC {
        return Err(RegistryError::TimestampSkew {
            field,
            skew_secs: skew / MICROS_PER_SEC,
            max_secs: MAX_CLAIMED_TIME_SKEW_SECS,
        });
    }
    Ok(())
}

/// The bucket a time falls in.
pub fn bucket_of(ts_micros: i64) -> i64 {
    ts_micros.div_euclid(HEARTBEAT_BUCKET_SECS * MICROS_PER_SEC)
}

/// The buckets to read, newest first, to see every heartbeat of the last
/// `horizon_secs` before `now`.
pub fn buckets_covering(now_micros: i64, horizon_secs: i64) -> Vec<i64> {
    let newest = bucket_of(now_micros);
    let oldest = bucket_of(now_micros.saturating_sub(horizon_secs.max(0) * MICROS_PER_SEC));
    (oldest..=newest).rev().collect()
}

/// How long silence is tolerated before suspicion and before failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivenessPolicy {
    /// Silence after which a node is suspected (the plan's 60 s).
    pub failure_window_secs: i64,
    /// Further silence after suspicion before the node is declared failed
    /// and its data repaired elsewhere, so a short blip moves no data.
    pub grace_secs: i64,
}

impl Default for LivenessPolicy {
    fn default() -> Self {
        LivenessPolicy {
            failure_window_secs: DEFAULT_FAILURE_WINDOW_SECS,
            grace_secs: 120,
        }
    }
}

/// What the heartbeat record says about a node now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Liveness {
    /// A heartbeat within the failure window.
    Alive {
        /// Seconds since the last heartbeat.
        silent_secs: i64,
    },
    /// Silent past the failure window but still within the grace period.
    Suspected {
        /// Seconds since the last heartbeat.
        silent_secs: i64,
    },
    /// Silent past the failure window and the grace period.
    Failed {
        /// Seconds since the last heartbeat, if one was seen.
        silent_secs: Option<i64>,
    },
}

impl Liveness {
    /// Whether the node counts as up.
    pub fn is_alive(&self) -> bool {
        matches!(self, Liveness::Alive { .. })
    }
}

/// Judges a node from the time of its latest heartbeat (if any was seen
/// within the horizon that was read). A heartbeat from the future (clock
/// skew) counts as fresh.
pub fn judge_liveness(
    last_micros: Option<i64>,
    now_micros: i64,
    policy: LivenessPolicy,
) -> Liveness {
    let Some(last) = last_micros else {
        return Liveness::Failed { silent_secs: None };
    };
    let silent_secs = (now_micros.saturating_sub(last) / MICROS_PER_SEC).max(0);
    if silent_secs <= policy.failure_window_secs {
        Liveness::Alive { silent_secs }
    } else if silent_secs <= policy.failure_window_secs + policy.grace_secs {
        Liveness::Suspected { silent_secs }
    } else {
        Liveness::Failed {
            silent_secs: Some(silent_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = MICROS_PER_SEC;

    #[test]
    fn claimed_time_skew_is_bounded_both_ways() {
        let t = 1_700_000_000 * S;
        assert!(check_claimed_time("timestamp", t, t).is_ok());
        assert!(check_claimed_time("timestamp", t - 60 * S, t).is_ok());
        assert!(check_claimed_time("timestamp", t + 60 * S, t).is_ok());
        let err = check_claimed_time("timestamp", t - 61 * S, t).unwrap_err();
        assert_eq!(
            err.to_string(),
            "timestamp is 61 s away from its action's timestamp (at most 60 s allowed)"
        );
        assert!(check_claimed_time("timestamp", t + 3600 * S, t).is_err());
        assert!(check_claimed_time("timestamp", i64::MIN, t).is_err());
    }

    #[test]
    fn buckets_cover_the_horizon() {
        let now = 1_700_000_123 * S;
        let b = buckets_covering(now, 60);
        assert!(!b.is_empty() && b[0] == bucket_of(now));
        assert!(b.contains(&bucket_of(now - 60 * S)));
        let b = buckets_covering(now, 3 * HEARTBEAT_BUCKET_SECS);
        assert_eq!(b.len(), 4);
        assert!(b.windows(2).all(|w| w[0] == w[1] + 1));
        assert_eq!(bucket_of(-1), -1, "negative times floor, not truncate");
    }

    #[test]
    fn liveness_moves_from_alive_to_suspected_to_failed() {
        let p = LivenessPolicy {
            failure_window_secs: 60,
            grace_secs: 30,
        };
        let now = 10_000 * S;
        assert_eq!(
            judge_liveness(Some(now - 10 * S), now, p),
            Liveness::Alive { silent_secs: 10 }
        );
        assert_eq!(
            judge_liveness(Some(now - 60 * S), now, p),
            Liveness::Alive { silent_secs: 60 }
        );
        assert_eq!(
            judge_liveness(Some(now - 61 * S), now, p),
            Liveness::Suspected { silent_secs: 61 }
        );
        assert_eq!(
            judge_liveness(Some(now - 91 * S), now, p),
            Liveness::Failed {
                silent_secs: Some(91)
            }
        );
        assert_eq!(
            judge_liveness(None, now, p),
            Liveness::Failed { silent_secs: None }
        );
        assert!(judge_liveness(Some(now + 5 * S), now, p).is_alive());
    }
}
