//! The presence index: who is alive, readable in one step.
//!
//! Custodian selection must not read every candidate's heartbeats (that grew
//! by ~10 ms per registered node). Instead each node links itself, at most
//! once per failure window, from `presence/<region>/<bucket>`, where a bucket
//! is one failure window long. A selector reads the current and the previous
//! bucket of the regions it wants and has every live node, with its
//! registration summary and status, in a couple of link reads.
//!
//! The contract, proven by the tests below: a node that beats more often
//! than once per window always has a link in those two buckets; a node that
//! has been silent for more than two windows has none.

use crate::MICROS_PER_SEC;

/// The presence bucket a time falls in, for a failure window of
/// `window_secs` (at least one second).
pub fn presence_bucket(ts_micros: i64, window_secs: i64) -> i64 {
    ts_micros.div_euclid(window_secs.max(1).saturating_mul(MICROS_PER_SEC))
}

/// The buckets a selector reads at `now`, newest first.
pub fn presence_buckets_to_read(now_micros: i64, window_secs: i64) -> [i64; 2] {
    let current = presence_bucket(now_micros, window_secs);
    [current, current - 1]
}

/// Whether a heartbeat at `beat_micros` with `status` must refresh the
/// node's presence link, given its previous beat (time and status): on its
/// first beat, on its first beat in a new bucket, and whenever its status
/// changes (so a node going offline leaves the index at once).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
