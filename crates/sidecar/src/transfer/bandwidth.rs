//! This node's declared bandwidth, enforced: every shard it serves and
//! every shard it fetches to rebuild goes through one token bucket at the
//! rate the node offers (`participation.bandwidth_percent` of its link), and
//! rebuilds that can wait are done in its off-peak hours (the pure rules
//! are `registry_core::bandwidth`).

use registry_core::bandwidth::{bytes_per_sec, in_window, TokenBucket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shared pace of serving and repair traffic.
pub struct Bandwidth {
    bucket: Mutex<TokenBucket>,
    started: Instant,
}

/// A burst of at most this many seconds of the rate, and at least one
/// upload chunk.
const BURST_SECS: f64 = 1.0;
const MIN_BURST: f64 = 256.0 * 1024.0;

fn burst(rate: f64) -> f64 {
    (rate * BURST_SECS).max(MIN_BURST)
}

impl Bandwidth {
    /// A pace of `mbps` megabits a second (0: no limit).
    pub fn new(mbps: u32) -> Bandwidth {
        let rate = bytes_per_sec(mbps);
        Bandwidth {
            bucket: Mutex::new(TokenBucket::new(rate, burst(rate), 0.0)),
            started: Instant::now(),
        }
    }

    /// Follows a change of what the node offers.
    pub fn set_mbps(&self, mbps: u32) {
        let rate = bytes_per_sec(mbps);
        let mut b = self.bucket.lock().unwrap();
        if b.rate() != rate {
            b.set_rate(rate, burst(rate));
        }
    }

    fn wait_for(&self, n: u64) -> Duration {
        let now = self.started.elapsed().as_secs_f64();
        Duration::from_secs_f64(self.bucket.lock().unwrap().take(n, now))
    }

    /// Waits until `n` more bytes may be sent or received.
    pub async fn spend(&self, n: u64) {
        let wait = self.wait_for(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// [`Bandwidth::spend`] for a blocking thread.
    pub fn spend_blocking(&self, n: u64) {
        let wait = self.wait_for(n);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// Whether now, by this machine's local clock, is within the off-peak hours
/// `start..end` (equal ends: the whole day).
pub fn off_peak_now(start: u8, end: u8) -> bool {
    in_window(start, end, local_hour())
}

/// The hour of the day, 0..=23, in this machine's time zone (UTC if the
/// zone cannot be read).
pub fn local_hour() -> u8 {
    let now = crate::clock::unix_secs();
    let t: libc::time_t = now as libc::time_t;
    // SAFETY: localtime_r writes only into the `tm` it is given and reads
    // only `t`; both live for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok && (0..24).contains(&tm.tm_hour) {
        tm.tm_hour as u8
    } else {
        (now.rem_euclid(86_400) / 3_600) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_hour_is_an_hour() {
        assert!(local_hour() < 24);
        assert!(off_peak_now(5, 5), "equal ends are the whole day");
    }

    #[tokio::test]
    async fn spending_past_the_burst_waits() {
        // 8 Mbps = 1 MB/s, burst 1 MB: 1.5 MB more takes about 1.5 s.
        let b = Bandwidth::new(8);
        let started = Instant::now();
        b.spend(1_000_000).await;
        assert!(started.elapsed() < Duration::from_millis(200));
        b.spend(500_000).await;
        assert!(started.elapsed() >= Duration::from_millis(450));
        let unlimited = Bandwidth::new(0);
        let t = Instant::now();
        unlimited.spend(u64::MAX / 2).await;
        assert!(t.elapsed() < Duration::from_millis(200));
    }
}
