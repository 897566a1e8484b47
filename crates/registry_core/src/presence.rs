//! The presence index: who is present, readable in one step.
//!
//! Custodian selection must not read every candidate's records (that grew by
//! ~10 ms per registered node). Instead each node holds a **lease**: a link
//! from `presence/<bucket>/<shard>`, renewed at most once per lease period
//! (and at once when its status or registration changes), where a bucket is
//! one lease period long and the shard is a hash of the node id. A selector
//! reads the current and the previous bucket and has every present node,
//! with its registration summary and status, in a few link reads. A lease is
//! one record per node per period: the only thing a node writes about
//! itself in steady state (liveness itself travels by signals, see
//! [`crate::monitor`]).
//!
//! The contract, proven by the tests below: a node that renews at least
//! once per period always has a link in those two buckets; a node that has
//! been silent for more than two periods has none. A node that dies is out
//! of selection much sooner, through its monitors' verdicts, which
//! selection reads with presence ([`crate::verdict`]).
//!
//! Reading every present node costs time in proportion to the network (about
//! 0.2 ms a node), so a bucket is split into *shards* by node, as Ceph splits
//! a pool into placement groups. Placing a content reads only the shards its
//! key ranks first, enough of them to hold a few dozen eligible nodes
//! ([`DEFAULT_PLACEMENT_SET_MIN`]): its *placement set*. Ranking then happens
//! inside that set. Every reader with the same view derives the same set,
//! whether it read a few shards or all of them, which a small network does
//! because its shards are nearly empty.

use crate::hash::{stable_hash, unit_interval};
use crate::MICROS_PER_SEC;

/// Eligible nodes a placement set holds at least (when the network has
/// them): four times the usual six custodians, so weights still decide
/// within it and a full or excluded node rarely empties it.
pub const DEFAULT_PLACEMENT_SET_MIN: usize = 24;
/// Shards per presence bucket when the DNA does not say: about 30 nodes a
/// shard at 1,000 nodes, so a placement reads one or two.
pub const DEFAULT_PRESENCE_SHARDS: u32 = 32;
/// Most shards a DNA may declare.
pub const MAX_PRESENCE_SHARDS: u32 = 1024;
/// Shards the first read of a placement takes.
pub const FIRST_READ_SHARDS: usize = 2;
/// Presence lease period by default: an hour. A lease is one record, so a
/// node's presence costs 24 records a day (an eighth of the write budget),
/// against 2,880 for the 30 s heartbeat links it replaces. What it trades:
/// a node that dies with nobody watching it (alone in the network) stays
/// offered for up to two hours; a watched node leaves selection as soon as
/// two monitors suspect it, within the failure window. The custody total a
/// lease carries is at most a period old; readers add what came since.
pub const DEFAULT_PRESENCE_LEASE_SECS: i64 = 3_600;
/// Verdict period by default: a day. A monitor re-states a standing `alive`
/// verdict once per period and readers look at the current and previous
/// period, so consensus always finds each monitor's word at the cost of one
/// verdict a day per watched node.
pub const DEFAULT_VERDICT_PERIOD_SECS: i64 = 86_400;

/// The presence bucket a time falls in, for a lease period of
/// `window_secs` (at least one second).
pub fn presence_bucket(ts_micros: i64, window_secs: i64) -> i64 {
    ts_micros.div_euclid(window_secs.max(1).saturating_mul(MICROS_PER_SEC))
}

/// The buckets a selector reads at `now`, newest first.
pub fn presence_buckets_to_read(now_micros: i64, window_secs: i64) -> [i64; 2] {
    let current = presence_bucket(now_micros, window_secs);
    [current, current - 1]
}

/// Whether a heartbeat at `beat_micros` with `status` must renew the node's
/// lease, given its newest lease (time and status): when it has none, on its
/// first heartbeat in a new bucket, and whenever its status changes (so a
/// node going offline leaves the index at once). Otherwise a heartbeat
/// writes nothing.
pub fn needs_presence_refresh(
    previous: Option<(i64, &str)>,
    beat_micros: i64,
    status: &str,
    window_secs: i64,
) -> bool {
    match previous {
        None => true,
        Some((prev_micros, prev_status)) => {
            prev_status != status
                || presence_bucket(prev_micros, window_secs)
                    != presence_bucket(beat_micros, window_secs)
        }
    }
}

/// The shard of a node's presence links, out of `shards` (at least one).
pub fn presence_shard(node_id: &str, shards: u32) -> u32 {
    (stable_hash(&[b"presence-shard", node_id.as_bytes()]) % shards.max(1) as u64) as u32
}

/// The shards in the order a content reads them: rendezvous on (content,
/// shard), so each content has its own order and contents spread evenly.
pub fn shard_order(placement_key: &str, shards: u32) -> Vec<u32> {
    let mut order: Vec<(f64, u32)> = (0..shards.max(1))
        .map(|s| {
            let h = stable_hash(&[placement_key.as_bytes(), &s.to_le_bytes()]);
            (unit_interval(h), s)
        })
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    order.into_iter().map(|(_, s)| s).collect()
}

/// How far along its shard order a placement set reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementPrefix {
    /// The set is the nodes of the first this-many shards of the order.
    Shards(usize),
    /// The shards read so far hold too few eligible nodes; more must be read.
    Incomplete {
        /// Eligible nodes in the shards read.
        eligible: usize,
    },
}

/// The placement set's extent: the fewest leading shards of `order` whose
/// eligible nodes (`eligible_in(shard)`) number at least `min`, given that
/// the first `read` shards of the order have been read. When every shard has
/// been read and they hold fewer, the set is all of them.
pub fn placement_prefix(
    order: &[u32],
    eligible_in: impl Fn(u32) -> usize,
    read: usize,
    min: usize,
) -> PlacementPrefix {
    let read = read.min(order.len());
    let mut eligible = 0usize;
    for (i, &shard) in order[..read].iter().enumerate() {
        eligible += eligible_in(shard);
        if eligible >= min {
            return PlacementPrefix::Shards(i + 1);
        }
    }
    if read == order.len() {
        PlacementPrefix::Shards(read)
    } else {
        PlacementPrefix::Incomplete { eligible }
    }
}

/// What to read next for an incomplete placement set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextRead {
    /// The next this-many shards of the order.
    Shards(usize),
    /// The whole bucket at once: the network is small enough (or its shards
    /// so sparse) that one read of everything is cheaper than many shards.
    Everything,
}

/// Cost of reading one more base in a batched link read, in units of one
/// link read: measured by `elohim-bench` at about 2.5 ms a base against
/// 0.2 ms a link.
pub const BASE_COST_IN_LINKS: f64 = 12.5;
/// Buckets a selector reads per shard (the current and the previous).
const BUCKETS_READ: f64 = 2.0;

/// Plans the next read from what the first `read` of `shards` shards held:
/// the density of eligible nodes so far estimates how many more shards are
/// needed (with half again as margin), and what reading them would cost
/// against reading everything at once (a base costs
/// [`BASE_COST_IN_LINKS`] links). Everything wins in a small network, where
/// shards are nearly empty, and when most shards would be read anyway.
pub fn next_read(eligible: usize, read: usize, shards: u32, min: usize) -> NextRead {
    let total = shards as usize;
    let left = total.saturating_sub(read);
    if eligible == 0 || read == 0 || left == 0 {
        return NextRead::Everything;
    }
    let per_shard = eligible as f64 / read as f64;
    let missing = min.saturating_sub(eligible) as f64;
    let more = ((missing / per_shard) * 1.5).ceil().max(1.0) as usize;
    let shards_cost = more as f64 * (BUCKETS_READ * BASE_COST_IN_LINKS + per_shard);
    let everything_cost = BUCKETS_READ * BASE_COST_IN_LINKS + per_shard * total as f64;
    if more >= left || everything_cost <= shards_cost {
        NextRead::Everything
    } else {
        NextRead::Shards(more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const S: i64 = MICROS_PER_SEC;

    /// The buckets holding presence links written by a node beating at
    /// `beats` (refreshing as the index demands).
    fn linked_buckets(beats: &[i64], window: i64) -> Vec<i64> {
        let mut prev: Option<i64> = None;
        let mut out = Vec::new();
        for &b in beats {
            if needs_presence_refresh(prev.map(|p| (p, "online")), b, "online", window) {
                out.push(presence_bucket(b, window));
            }
            prev = Some(b);
        }
        out
    }

    #[test]
    fn a_node_beating_within_the_window_is_always_found() {
        for window in [10, 60, 3600] {
            for interval in [1, window / 3, window - 1] {
                let start = 1_700_000_000 * S + 7 * S;
                let beats: Vec<i64> = (0..200).map(|i| start + i * interval * S).collect();
                let linked = linked_buckets(&beats, window);
                // Any moment after the first beat, up to one interval after
                // the last, while the node is still within its window.
                for t in (beats[0]..beats[199] + interval * S).step_by((interval * S / 3) as usize)
                {
                    let read = presence_buckets_to_read(t, window);
                    assert!(
                        linked.iter().any(|b| read.contains(b)),
                        "window {window}, interval {interval}: not found at {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_node_silent_for_two_windows_is_not_found() {
        let window = 60;
        let start = 1_700_000_000 * S;
        let beats: Vec<i64> = (0..10).map(|i| start + i * 30 * S).collect();
        let linked = linked_buckets(&beats, window);
        let last = *beats.last().unwrap();
        let read = presence_buckets_to_read(last + 2 * window * S + 1, window);
        assert!(!linked.iter().any(|b| read.contains(b)));
    }

    #[test]
    fn refreshes_once_per_bucket_and_on_status_change() {
        let window = 60;
        let t = 1_700_000_000 * S / (60 * S) * (60 * S); // a bucket start
        assert!(needs_presence_refresh(None, t, "online", window));
        assert!(!needs_presence_refresh(
            Some((t, "online")),
            t + 30 * S,
            "online",
            window
        ));
        assert!(needs_presence_refresh(
            Some((t, "online")),
            t + 30 * S,
            "offline",
            window
        ));
        assert!(needs_presence_refresh(
            Some((t + 30 * S, "online")),
            t + 60 * S,
            "online",
            window
        ));
        // 30 s beats against a 60 s window: one link per two beats.
        let beats: Vec<i64> = (0..20).map(|i| t + i * 30 * S).collect();
        assert_eq!(linked_buckets(&beats, window).len(), 10);
    }

    #[test]
    fn a_zero_window_does_not_divide_by_zero() {
        assert_eq!(presence_bucket(5 * S, 0), 5);
        assert_eq!(presence_bucket(-1, 60), -1, "negative times floor");
    }

    #[test]
    fn shards_are_stable_and_even() {
        let shards = 32;
        let mut counts = vec![0usize; shards as usize];
        for i in 0..32_000 {
            let id = format!("node-{i:016x}");
            let s = presence_shard(&id, shards);
            assert_eq!(s, presence_shard(&id, shards));
            counts[s as usize] += 1;
        }
        // 1,000 expected a shard; allow five standard deviations (~160).
        for (s, c) in counts.iter().enumerate() {
            assert!((840..=1160).contains(c), "shard {s} holds {c}");
        }
        assert_eq!(presence_shard("x", 0), 0, "zero shards means one");
    }

    #[test]
    fn each_content_has_its_own_shard_order() {
        let a = shard_order("content-a", 32);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..32).collect::<Vec<_>>(), "a permutation");
        assert_eq!(a, shard_order("content-a", 32));
        assert_ne!(a, shard_order("content-b", 32));
        // First shards spread over contents.
        let mut firsts = BTreeMap::new();
        for i in 0..3200 {
            *firsts
                .entry(shard_order(&format!("c{i}"), 32)[0])
                .or_insert(0) += 1;
        }
        assert_eq!(firsts.len(), 32);
        assert!(
            firsts.values().all(|&n| (40..=180).contains(&n)),
            "{firsts:?}"
        );
    }

    /// The set as read shard by shard equals the set computed from the
    /// whole bucket, at every network size and whatever the reads' sizes.
    #[test]
    fn reading_shards_or_everything_gives_the_same_set() {
        let shards = 32;
        for nodes in [0usize, 3, 20, 24, 25, 100, 1000] {
            let mut by_shard = vec![0usize; shards as usize];
            for i in 0..nodes {
                by_shard[presence_shard(&format!("n{i}"), shards) as usize] += 1;
            }
            for key in ["k1", "k2", "k3"] {
                let order = shard_order(key, shards);
                let whole = placement_prefix(
                    &order,
                    |s| by_shard[s as usize],
                    32,
                    DEFAULT_PLACEMENT_SET_MIN,
                );
                let PlacementPrefix::Shards(k) = whole else {
                    panic!("everything read is complete")
                };
                let in_set: usize = order[..k].iter().map(|&s| by_shard[s as usize]).sum();
                assert!(
                    in_set >= DEFAULT_PLACEMENT_SET_MIN.min(nodes),
                    "{nodes}: {in_set}"
                );
                // Reading as a selector does: a first read, then as planned.
                let mut read = FIRST_READ_SHARDS;
                let got = loop {
                    match placement_prefix(
                        &order,
                        |s| by_shard[s as usize],
                        read,
                        DEFAULT_PLACEMENT_SET_MIN,
                    ) {
                        PlacementPrefix::Shards(k) => break k,
                        PlacementPrefix::Incomplete { eligible } => {
                            match next_read(eligible, read, shards, DEFAULT_PLACEMENT_SET_MIN) {
                                NextRead::Shards(n) => read += n,
                                NextRead::Everything => read = order.len(),
                            }
                        }
                    }
                };
                assert_eq!(got, k, "{nodes} nodes, key {key}");
            }
        }
    }

    #[test]
    fn small_networks_read_everything_large_ones_a_few_shards() {
        // 5 or 80 nodes: the first two shards hold a few; one read of
        // everything is cheaper than a dozen more shards.
        assert_eq!(next_read(0, 2, 32, 24), NextRead::Everything);
        assert_eq!(next_read(1, 2, 32, 24), NextRead::Everything);
        assert_eq!(next_read(5, 2, 32, 24), NextRead::Everything);
        // 160 nodes, 10 in the first two: 14 missing at 5 a shard is 5
        // shards with margin (10 bases and 25 links), not 160 links.
        assert_eq!(next_read(10, 2, 32, 24), NextRead::Shards(5));
        // 320 nodes, 20 in the first two: one more shard.
        assert_eq!(next_read(20, 2, 32, 24), NextRead::Shards(1));
        // 640 nodes over 320 shards, 4 in the first two: 20 missing at 2 a
        // shard is 15 shards with margin, still cheaper than 640 links.
        assert_eq!(next_read(4, 2, 320, 24), NextRead::Shards(15));
        // Nearly everything left to read: read it at once.
        assert_eq!(next_read(30, 30, 32, 100), NextRead::Everything);
    }
}
