//! Working keys: how a node's calls stay as fast in its tenth year as on
//! its first day.
//!
//! Holochain 0.7.1 reads the calling agent's whole source chain before every
//! zome call (about 7 µs a record), so any agent that writes a little every
//! day slows every later call forever. A node therefore has two kinds of
//! agent:
//!
//! * its **identity** agent, whose key names the node (`node_id` is derived
//!   from it), holds its registration, family and recovery records and
//!   writes only when they change, plus one delegation per epoch;
//! * a **working** agent per epoch, named by a delegation the identity
//!   signs (an entry authored by the identity: node, working key, validity
//!   window), that carries everything written routinely: presence leases,
//!   monitor verdicts, votes, penalties, service summaries, the assignments
//!   it places. Every such record cites its delegation, and validation
//!   checks that the author is the delegate and that the record's time lies
//!   in the delegation's window.
//!
//! When an epoch ends (or its chain reaches [`DEFAULT_MAX_WORKING_RECORDS`]
//! first) the sidecar installs a fresh working agent, the identity delegates
//! to it, and the old one is retired: no agent's chain grows past an
//! epoch's worth of records, and the identity's grows by one delegation an
//! epoch. A node has at most [`MAX_ACTIVE_DELEGATIONS`] working keys at any
//! moment (the old one's window overlaps the new one's by up to a day, so
//! writes in flight at a rotation stay valid), which keeps per-author rate
//! limits meaningful.

use crate::heartbeat::check_claimed_time;
use crate::{RegistryError, MICROS_PER_SEC};
use serde::{Deserialize, Serialize};

/// Length of an epoch by default: a week. At the defaults a working agent
/// writes a few dozen records a day, so its chain stays under a few hundred.
pub const DEFAULT_EPOCH_SECS: i64 = 7 * 86_400;
/// Longest validity window a delegation may claim by default (DNA property
/// `max_delegation_secs`): an epoch plus a day of overlap.
pub const DEFAULT_MAX_DELEGATION_SECS: i64 = DEFAULT_EPOCH_SECS + 86_400;
/// Records on a working chain after which it is replaced even before its
/// epoch ends (a node that publishes a lot): about 14 ms on every call of
/// that agent at 7 µs a record.
pub const DEFAULT_MAX_WORKING_RECORDS: u64 = 2_000;
/// Working keys one identity may have valid at the same instant.
pub const MAX_ACTIVE_DELEGATIONS: usize = 2;

fn invalid(reason: impl Into<String>) -> RegistryError {
    RegistryError::InvalidDelegation(reason.into())
}

/// A delegation's validity window, micros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// First instant the working key may write for the node.
    pub from_micros: i64,
    /// Instant after which it may not.
    pub until_micros: i64,
}

impl Window {
    /// Whether a record written at `ts_micros` falls in the window.
    pub fn covers(&self, ts_micros: i64) -> bool {
        (self.from_micros..=self.until_micros).contains(&ts_micros)
    }
}

/// Checks a delegation's own window as written at `action_micros`: it starts
/// now (within the usual clock skew: no backdating, no far future), ends
/// after it starts, and lasts at most `max_secs`.
pub fn check_window(w: Window, action_micros: i64, max_secs: i64) -> Result<(), RegistryError> {
    check_claimed_time("valid_from", w.from_micros, action_micros)?;
    if w.until_micros <= w.from_micros {
        return Err(invalid("valid_until must be after valid_from"));
    }
    if w.until_micros - w.from_micros > max_secs.saturating_mul(MICROS_PER_SEC) {
        return Err(invalid(format!("a delegation lasts at most {max_secs} s")));
    }
    Ok(())
}

/// Checks that a new delegation starting at `new_from` leaves the identity
/// with at most [`MAX_ACTIVE_DELEGATIONS`] valid working keys, given the
/// windows of its earlier delegations.
pub fn check_overlap(earlier: &[Window], new_from: i64) -> Result<(), RegistryError> {
    let active = earlier.iter().filter(|w| w.until_micros > new_from).count();
    if active + 1 > MAX_ACTIVE_DELEGATIONS {
        return Err(invalid(format!(
            "at most {MAX_ACTIVE_DELEGATIONS} working keys may be valid at once"
        )));
    }
    Ok(())
}

/// When a sidecar replaces its working agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPolicy {
    /// Seconds a working agent serves.
    pub epoch_secs: i64,
    /// Records on its chain after which it is replaced anyway.
    pub max_records: u64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy {
            epoch_secs: DEFAULT_EPOCH_SECS,
            max_records: DEFAULT_MAX_WORKING_RECORDS,
        }
    }
}

impl RotationPolicy {
    /// Whether a working agent delegated at `since_micros` with `records`
    /// on its chain should be replaced at `now_micros`. A delegation that
    /// ends within a tenth of an epoch is replaced too, whatever the
    /// policy, so the node never runs out of a valid key.
    pub fn due(&self, window: Window, records: u64, now_micros: i64) -> bool {
        let epoch = self.epoch_secs.max(1) * MICROS_PER_SEC;
        now_micros - window.from_micros >= epoch
            || records >= self.max_records
            || window.until_micros - now_micros <= epoch / 10
    }

    /// The window to give a delegation made at `now_micros` under a DNA
    /// whose longest allowed delegation is `max_secs`: an epoch plus up to
    /// a day of overlap, within the limit.
    pub fn window_from(&self, now_micros: i64, max_secs: i64) -> Window {
        let wanted = self.epoch_secs.max(1) + 86_400;
        Window {
            from_micros: now_micros,
            until_micros: now_micros + wanted.min(max_secs.max(1)) * MICROS_PER_SEC,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = MICROS_PER_SEC;
    const T0: i64 = 1_800_000_000 * S;

    #[test]
    fn a_window_starts_now_and_is_bounded() {
        let max = DEFAULT_MAX_DELEGATION_SECS;
        let ok = Window {
            from_micros: T0,
            until_micros: T0 + max * S,
        };
        assert_eq!(check_window(ok, T0 + 10 * S, max), Ok(()));
        let backdated = Window {
            from_micros: T0 - 3600 * S,
            ..ok
        };
        assert!(check_window(backdated, T0, max)
            .unwrap_err()
            .to_string()
            .contains("valid_from"));
        let long = Window {
            until_micros: T0 + (max + 1) * S,
            ..ok
        };
        assert!(check_window(long, T0, max)
            .unwrap_err()
            .to_string()
            .contains("at most"));
        let empty = Window {
            until_micros: T0,
            ..ok
        };
        assert!(check_window(empty, T0, max).is_err());
        assert!(ok.covers(T0) && ok.covers(T0 + max * S) && !ok.covers(T0 - 1));
    }

    #[test]
    fn at_most_two_working_keys_at_once() {
        let w = |from: i64, days: i64| Window {
            from_micros: from,
            until_micros: from + days * 86_400 * S,
        };
        let first = w(T0, 8);
        // The next one a week later overlaps the first by a day: fine.
        assert_eq!(check_overlap(&[first], T0 + 7 * 86_400 * S), Ok(()));
        // A third while both are valid: refused.
        let second = w(T0 + 7 * 86_400 * S, 8);
        assert!(check_overlap(&[first, second], T0 + 7 * 86_400 * S + S).is_err());
        // Once the first expired, a third is fine.
        assert_eq!(
            check_overlap(&[first, second], T0 + 8 * 86_400 * S + S),
            Ok(())
        );
    }

    #[test]
    fn rotation_by_age_by_size_and_before_expiry() {
        let p = RotationPolicy::default();
        let win = p.window_from(T0, DEFAULT_MAX_DELEGATION_SECS);
        assert_eq!(win.until_micros - win.from_micros, 8 * 86_400 * S);
        assert!(!p.due(win, 100, T0 + 86_400 * S));
        assert!(p.due(win, 100, T0 + 7 * 86_400 * S), "an epoch old");
        assert!(p.due(win, 2_000, T0 + S), "a full chain");
        // A DNA that allows only 2 days: the window is capped, and the key
        // is replaced shortly before it expires.
        let short = p.window_from(T0, 2 * 86_400);
        assert_eq!(short.until_micros - short.from_micros, 2 * 86_400 * S);
        assert!(p.due(short, 0, short.until_micros - 3600 * S));
    }
}
