//! A node's committed custody, known without reading its whole history.
//!
//! Choosing custodians needs each candidate's committed custody (what it
//! was assigned, less what repairs took back). Reading it from the node's
//! custody index costs the conductor about 20 µs per assignment the node
//! ever held, so selection slowed as the network filled (run L in
//! `docs/bench/RUNS.md`). Instead the split is:
//!
//! - the **custodian** totals its own index now and then (when it renews
//!   its presence lease, once per lease period), counting only assignments
//!   linked before a *cutoff* some lag ([`DEFAULT_TOTAL_LAG_SECS`]) before
//!   its read, and puts
//!   the total and the cutoff in its presence link, which selection reads
//!   anyway;
//! - every assignment, and every mark that a repair retired one, is also
//!   linked from a **recent-custody** base of its custodian, one per
//!   [`RECENT_BUCKET_SECS`] of link time, so a reader adds what was linked
//!   at or after the cutoff, and takes off what was retired since, by
//!   reading one or two small bases, whatever the node holds.
//!
//! Both sides split at the cutoff by link time, so each assignment and each
//! retirement counts once. The lag leaves time for a link to reach the
//! custodian before its total claims to have counted it. What is left errs
//! toward a node looking fuller; the one way it looks emptier is an
//! assignment marked retired twice, once on each side of the cutoff, and
//! only until the custodian's next total.

use crate::MICROS_PER_SEC;
use std::collections::{BTreeMap, BTreeSet};

/// How long before its read a custodian's total stops counting, when the
/// DNA does not say: an assignment linked later is left to the reader's
/// recent-custody read. Longer than an assignment's usual way to its
/// custodian's authorities.
pub const DEFAULT_TOTAL_LAG_SECS: i64 = 300;

/// Length of one recent-custody base, by link time: the default lease
/// period, so a reader adds what came since a total in two or three reads.
pub const RECENT_BUCKET_SECS: i64 = crate::presence::DEFAULT_PRESENCE_LEASE_SECS;

/// How far a recent-custody link's action may run past the bucket its
/// writer chose (the writer picks the bucket just before it commits).
pub const RECENT_LINK_LATENESS_SECS: i64 = 60;

/// Oldest cutoff a reader trusts: a total older than this would make it
/// read many recent-custody bases, so it reads the custody index instead.
/// Two default lease periods (a lease is read until its bucket's successor
/// ends) and the lag.
pub const MAX_TOTAL_AGE_SECS: i64 =
    2 * crate::presence::DEFAULT_PRESENCE_LEASE_SECS + DEFAULT_TOTAL_LAG_SECS;

/// The recent-custody bucket of a link time.
pub fn recent_bucket(ts_micros: i64) -> i64 {
    ts_micros.div_euclid(RECENT_BUCKET_SECS * MICROS_PER_SEC)
}

/// Whether a recent-custody link written at `link_micros` may sit in
/// `bucket`: its own, or the one before when written just after a bucket
/// began.
pub fn recent_bucket_fits(bucket: i64, link_micros: i64) -> bool {
    bucket == recent_bucket(link_micros)
        || bucket == recent_bucket(link_micros - RECENT_LINK_LATENESS_SECS * MICROS_PER_SEC)
}

/// The cutoff of a total read at `read_micros` with a lag of `lag_secs`.
pub fn total_cutoff(read_micros: i64, lag_secs: i64) -> i64 {
    read_micros.saturating_sub(lag_secs.max(0).saturating_mul(MICROS_PER_SEC))
}

/// Whether a presence link written at `written_micros` may report a total
/// with this cutoff: never one that claims to have counted links the
/// custodian could not have seen yet.
pub fn cutoff_fits(cutoff_micros: i64, written_micros: i64, lag_secs: i64) -> bool {
    cutoff_micros <= total_cutoff(written_micros, lag_secs)
}

/// The recent-custody buckets a reader at `now_micros` reads for links at
/// or after `cutoff_micros`, oldest first; `None` when the cutoff is older
/// than [`MAX_TOTAL_AGE_SECS`] (or in the future), and the reader should
/// total the custody index itself.
pub fn recent_buckets_to_read(cutoff_micros: i64, now_micros: i64) -> Option<Vec<i64>> {
    let age = now_micros.checked_sub(cutoff_micros)?;
    if !(0..=MAX_TOTAL_AGE_SECS * MICROS_PER_SEC).contains(&age) {
        return None;
    }
    let oldest = recent_bucket(cutoff_micros - RECENT_LINK_LATENESS_SECS * MICROS_PER_SEC);
    Some((oldest..=recent_bucket(now_micros)).collect())
}

/// One assignment as a custody index shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldShard<K> {
    /// Identifies the assignment (its entry hash in the DNA); a key seen
    /// twice counts once.
    pub key: K,
    /// Bytes of the shard.
    pub bytes: u64,
    /// When the link was written, microseconds.
    pub linked_micros: i64,
}

/// The total a custodian publishes: the bytes of its assignments linked
/// before `cutoff_micros`, less those marked retired before it.
/// `retirements` are the marks: the retired assignment's key, its bytes and
/// when the mark was linked.
pub fn total_before<K: Ord>(
    held: &[HeldShard<K>],
    retirements: &[HeldShard<K>],
    cutoff_micros: i64,
) -> u64 {
    let retired: BTreeSet<&K> = retirements
        .iter()
        .filter(|r| r.linked_micros < cutoff_micros)
        .map(|r| &r.key)
        .collect();
    let mut seen = BTreeSet::new();
    held.iter()
        .filter(|h| h.linked_micros < cutoff_micros && !retired.contains(&h.key))
        .filter(|h| seen.insert(&h.key))
        .map(|h| h.bytes)
        .fold(0u64, u64::saturating_add)
}

/// A reader's committed custody of a node: its published `total`, plus
/// the assignments linked at or after the total's cutoff, less those in
/// the total marked retired since; `recent` and `recent_retirements` are
/// what the recent-custody bases it read hold.
pub fn committed_with_recent<K: Ord>(
    total: u64,
    cutoff_micros: i64,
    recent: &[HeldShard<K>],
    recent_retirements: &[HeldShard<K>],
) -> u64 {
    fn since<K: Ord>(list: &[HeldShard<K>], cutoff_micros: i64) -> BTreeMap<&K, u64> {
        list.iter()
            .filter(|h| h.linked_micros >= cutoff_micros)
            .map(|h| (&h.key, h.bytes))
            .collect()
    }
    let (new_held, new_retired) = (
        since(recent, cutoff_micros),
        since(recent_retirements, cutoff_micros),
    );
    let sum_unless_in = |these: &BTreeMap<&K, u64>, other: &BTreeMap<&K, u64>| {
        these
            .iter()
            .filter(|(k, _)| !other.contains_key(*k))
            .map(|(_, &b)| b)
            .fold(0u64, u64::saturating_add)
    };
    total
        .saturating_add(sum_unless_in(&new_held, &new_retired))
        .saturating_sub(sum_unless_in(&new_retired, &new_held))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = MICROS_PER_SEC;

    fn shard(key: u32, bytes: u64, at_secs: i64) -> HeldShard<u32> {
        HeldShard {
            key,
            bytes,
            linked_micros: at_secs * S,
        }
    }

    #[test]
    fn total_and_recent_count_each_assignment_once() {
        let read = 10_000;
        let cutoff = total_cutoff(read * S, DEFAULT_TOTAL_LAG_SECS);
        let held = vec![
            shard(1, 100, 1_000),
            shard(2, 200, read - DEFAULT_TOTAL_LAG_SECS - 1),
            shard(3, 400, read - DEFAULT_TOTAL_LAG_SECS),
            shard(4, 800, read - 10),
        ];
        let total = total_before(&held, &[], cutoff);
        assert_eq!(total, 300, "only what was linked before the cutoff");
        // The reader's recent bases hold the newer two (and the older ones
        // too, when they share a bucket): each is counted exactly once.
        assert_eq!(committed_with_recent(total, cutoff, &held, &[]), 1_500);
        assert_eq!(committed_with_recent(total, cutoff, &held[2..], &[]), 1_500);
    }

    /// The exact committed custody: every distinct assignment never marked.
    fn exact(held: &[HeldShard<u32>], retirements: &[HeldShard<u32>]) -> u64 {
        let retired: BTreeSet<u32> = retirements.iter().map(|r| r.key).collect();
        let distinct: BTreeMap<u32, u64> = held.iter().map(|h| (h.key, h.bytes)).collect();
        distinct
            .iter()
            .filter(|(k, _)| !retired.contains(k))
            .map(|(_, b)| b)
            .sum()
    }

    #[test]
    fn whatever_the_cutoff_total_and_recent_give_the_exact_custody() {
        // Assignments at 10..80 s, some marked retired later (once each).
        let held: Vec<_> = (1..=8).map(|k| shard(k, 1 << k, 10 * k as i64)).collect();
        let retirements = vec![shard(2, 4, 35), shard(5, 32, 95), shard(7, 128, 71)];
        let want = exact(&held, &retirements);
        for cutoff_secs in 0..=100 {
            let cutoff = cutoff_secs * S;
            let total = total_before(&held, &retirements, cutoff);
            // What the reader's bases hold: everything, or only what was
            // linked since a little before the cutoff.
            let since = |list: &[HeldShard<u32>]| -> Vec<HeldShard<u32>> {
                list.iter()
                    .filter(|h| h.linked_micros >= cutoff - 5 * S)
                    .cloned()
                    .collect()
            };
            assert_eq!(
                committed_with_recent(total, cutoff, &held, &retirements),
                want,
                "cutoff {cutoff_secs} s, reading every link"
            );
            assert_eq!(
                committed_with_recent(total, cutoff, &since(&held), &since(&retirements)),
                want,
                "cutoff {cutoff_secs} s, reading recent links"
            );
        }
    }

    #[test]
    fn repeated_links_count_once() {
        let held = vec![shard(1, 100, 10), shard(1, 100, 20), shard(2, 50, 30)];
        let retirements = vec![shard(2, 50, 40), shard(2, 50, 45)];
        assert_eq!(total_before(&held, &retirements, 1_000 * S), 100);
        assert_eq!(committed_with_recent(7, 0, &held, &retirements), 107);
        // Marked twice after the cutoff, of an assignment in the total.
        assert_eq!(committed_with_recent(150, 35 * S, &[], &retirements), 100);
    }

    #[test]
    fn a_mark_on_each_side_of_the_cutoff_looks_emptier_until_the_next_total() {
        let held = vec![shard(1, 100, 10), shard(2, 50, 10)];
        let retirements = vec![shard(2, 50, 20), shard(2, 50, 40)];
        let total = total_before(&held, &retirements, 30 * S);
        assert_eq!(total, 100);
        assert_eq!(committed_with_recent(total, 30 * S, &[], &retirements), 50);
        let later = total_before(&held, &retirements, 50 * S);
        assert_eq!(committed_with_recent(later, 50 * S, &[], &retirements), 100);
    }

    #[test]
    fn sums_saturate() {
        let held = vec![shard(1, u64::MAX, 10), shard(2, 5, 10)];
        assert_eq!(total_before(&held, &[], 100 * S), u64::MAX);
        assert_eq!(committed_with_recent(u64::MAX, 0, &held, &[]), u64::MAX);
        assert_eq!(committed_with_recent(10, 0, &[], &[shard(3, 50, 5)]), 0);
    }

    #[test]
    fn a_reader_reads_every_bucket_a_recent_link_can_sit_in() {
        let b = RECENT_BUCKET_SECS;
        let now = 100 * b * S + 30 * S;
        let cutoff = total_cutoff(now - 90 * S, DEFAULT_TOTAL_LAG_SECS);
        let buckets = recent_buckets_to_read(cutoff, now).unwrap();
        // Any link at or after the cutoff, in any bucket its writer could
        // have chosen, is on a base the reader reads.
        for at in (cutoff..=now).step_by((7 * S) as usize) {
            for bucket in [recent_bucket(at) - 1, recent_bucket(at)] {
                if recent_bucket_fits(bucket, at) {
                    assert!(buckets.contains(&bucket), "link at {at} in {bucket}");
                }
            }
        }
        assert!(buckets.len() <= 3, "{buckets:?}");
    }

    #[test]
    fn a_link_may_sit_one_bucket_early_only_just_after_it_turned() {
        let start = 50 * RECENT_BUCKET_SECS * S;
        assert!(recent_bucket_fits(49, start + 5 * S));
        assert!(!recent_bucket_fits(
            49,
            start + (RECENT_LINK_LATENESS_SECS + 1) * S
        ));
        assert!(
            !recent_bucket_fits(51, start + 5 * S),
            "never a later bucket"
        );
        assert!(recent_bucket_fits(50, start + 5 * S));
    }

    #[test]
    fn stale_or_future_totals_send_the_reader_to_the_index() {
        let now = 1_000_000 * S;
        assert!(recent_buckets_to_read(now - (MAX_TOTAL_AGE_SECS + 1) * S, now).is_none());
        assert!(recent_buckets_to_read(now + S, now).is_none());
        assert!(recent_buckets_to_read(now - MAX_TOTAL_AGE_SECS * S, now).is_some());
    }

    #[test]
    fn a_total_cannot_claim_links_younger_than_its_lag() {
        let written = 5_000 * S;
        for lag in [0, 1, DEFAULT_TOTAL_LAG_SECS] {
            let cutoff = total_cutoff(written, lag);
            assert_eq!(cutoff, written - lag * S);
            assert!(cutoff_fits(cutoff, written, lag));
            assert!(cutoff_fits(cutoff - S, written, lag));
            assert!(!cutoff_fits(cutoff + 1, written, lag));
        }
    }
}
