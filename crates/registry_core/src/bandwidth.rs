//! What a node's declared bandwidth and off-peak hours allow: a token
//! bucket that paces serving and repair traffic to the declared rate, and
//! the off-peak window in which repairs that can wait are done. Pure (time
//! is passed in), so the rules are unit-tested here, apart from any clock.

/// Whether `hour` (0..=23) falls in the window `start..end`, which may wrap
/// past midnight (22..6 is 22:00-06:00). `start == end` is the whole day.
pub fn in_window(start: u8, end: u8, hour: u8) -> bool {
    if start == end {
        return true;
    }
    if start < end {
        (start..end).contains(&hour)
    } else {
        hour >= start || hour < end
    }
}

/// Whether a custodian rebuilds a shard now: in its off-peak hours always;
/// outside them only when the content is down to its last `needed` shards
/// (`holders` other holders left, no spare), since one more loss would
/// lose it.
pub fn rebuild_now(holders: usize, needed: usize, off_peak: bool) -> bool {
    off_peak || holders <= needed
}

/// Bytes a second of a rate in megabits a second.
pub fn bytes_per_sec(mbps: u32) -> f64 {
    mbps as f64 * 1e6 / 8.0
}

/// A token bucket: bytes may be sent at `rate` a second on average, with
/// bursts of up to `burst`. Takers that exceed it are told how long to
/// wait; the debt they leave makes later takers wait behind them, so
/// concurrent transfers share the rate instead of each getting it whole.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: f64,
}

impl TokenBucket {
    /// A full bucket at time `now` (seconds). A rate of zero or less means
    /// no limit.
    pub fn new(rate: f64, burst: f64, now: f64) -> TokenBucket {
        TokenBucket {
            rate,
            burst: burst.max(0.0),
            tokens: burst.max(0.0),
            last: now,
        }
    }

    /// The rate, bytes a second (zero or less: unlimited).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Changes the rate (the owner changed what it offers), keeping what
    /// was earned.
    pub fn set_rate(&mut self, rate: f64, burst: f64) {
        self.rate = rate;
        self.burst = burst.max(0.0);
        self.tokens = self.tokens.min(self.burst);
    }

    /// Takes `n` bytes at time `now` (seconds) and answers how many seconds
    /// the caller must wait before sending them (0 when the bucket had them).
    pub fn take(&mut self, n: u64, now: f64) -> f64 {
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return 0.0;
        }
        let elapsed = (now - self.last).max(0.0);
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            0.0
        } else {
            -self.tokens / self.rate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_wrap_past_midnight_and_equal_ends_mean_all_day() {
        let night: Vec<u8> = (0..24).filter(|h| in_window(22, 6, *h)).collect();
        assert_eq!(night, vec![0, 1, 2, 3, 4, 5, 22, 23]);
        let day: Vec<u8> = (0..24).filter(|h| in_window(9, 12, *h)).collect();
        assert_eq!(day, vec![9, 10, 11]);
        assert!((0..24).all(|h| in_window(3, 3, h)));
    }

    #[test]
    fn only_a_content_without_a_spare_is_rebuilt_outside_off_peak() {
        assert!(rebuild_now(2, 1, true));
        assert!(!rebuild_now(2, 1, false), "a replica to spare can wait");
        assert!(rebuild_now(1, 1, false), "the last copy cannot");
        assert!(!rebuild_now(4, 3, false));
        assert!(rebuild_now(3, 3, false));
        assert!(
            rebuild_now(0, 3, false),
            "too few to rebuild is tried at once"
        );
    }

    #[test]
    fn a_bucket_paces_to_its_rate_after_the_burst() {
        let mut b = TokenBucket::new(1000.0, 500.0, 0.0);
        assert_eq!(b.take(500, 0.0), 0.0, "the burst is free");
        assert_eq!(b.take(1000, 0.0), 1.0, "then a second per 1000 bytes");
        // A second taker at once waits behind the first one's debt.
        assert_eq!(b.take(1000, 0.0), 2.0);
        // After the debt is earned back, a small take is free again.
        assert_eq!(b.take(100, 2.5), 0.0);
    }

    #[test]
    fn a_long_transfer_averages_the_rate() {
        let mut b = TokenBucket::new(1e6, 256e3, 0.0);
        let mut now = 0.0;
        for _ in 0..100 {
            now += b.take(256 * 1024, now);
        }
        let rate = 100.0 * 256.0 * 1024.0 / now;
        assert!((rate - 1e6).abs() / 1e6 < 0.05, "{rate}");
    }

    #[test]
    fn no_rate_means_no_limit() {
        let mut b = TokenBucket::new(0.0, 0.0, 0.0);
        assert_eq!(b.take(u64::MAX, 0.0), 0.0);
        assert_eq!(bytes_per_sec(8), 1e6);
    }
}
