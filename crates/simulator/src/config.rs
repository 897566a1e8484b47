//! What one simulation run models: network size, time span, content and
//! its custody strategy, the registry's timings, and the hazards (failures,
//! outages, message loss, liars). Validated once, up front, so a bad value
//! is reported before minutes of simulation rather than as a panic.

use crate::SimError;
use registry_core::assignment::{CustodyStrategy, MAX_SHARDS};
use registry_core::heartbeat::{DEFAULT_FAILURE_WINDOW_SECS, DEFAULT_HEARTBEAT_INTERVAL_SECS};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Seconds in the "month" failure and outage rates are quoted per (30 days).
pub const SECS_PER_MONTH: f64 = 30.0 * 86_400.0;
/// Largest content modelled (1 TB): keeps byte counters far from overflow.
pub const MAX_CONTENT_BYTES: u64 = 1_000_000_000_000;
/// Most shards (items x n) one run tracks, so a typo cannot exhaust memory.
pub const MAX_SHARDS_TRACKED: u64 = 50_000_000;

/// How detectors decide that a silent node has failed. The zomes today use
/// heartbeats alone; the other two modes answer the question of
/// what health consensus adds, and what Byzantine attesters can then do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectionMode {
    /// `judge_liveness` says Failed: declared (what `detect_failed_nodes`
    /// and the sidecar do now). Attestations only move reputations.
    Heartbeat,
    /// Failed by heartbeat AND the health consensus of fresh probes is not
    /// Healthy: live nodes whose heartbeats were lost are spared.
    HeartbeatAndConsensus,
    /// Failed by heartbeat OR a confident Unhealthy consensus in a routine
    /// audit: faster, but liars can take honest nodes down.
    HeartbeatOrConsensus,
}

impl DetectionMode {
    /// All modes, for help texts and sweeps.
    pub const ALL: [DetectionMode; 3] = [
        DetectionMode::Heartbeat,
        DetectionMode::HeartbeatAndConsensus,
        DetectionMode::HeartbeatOrConsensus,
    ];

    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionMode::Heartbeat => "heartbeat",
            DetectionMode::HeartbeatAndConsensus => "heartbeat-and-consensus",
            DetectionMode::HeartbeatOrConsensus => "heartbeat-or-consensus",
        }
    }
}

impl fmt::Display for DetectionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DetectionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DetectionMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown detection mode {s:?} (expected heartbeat, heartbeat-and-consensus or heartbeat-or-consensus)")
            })
    }
}

/// Everything one run models. Times are in seconds; rates per node per
/// 30-day month unless named otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Nodes registered at the start.
    pub nodes: u32,
    /// Simulated days.
    pub days: f64,
    /// Contents placed at the start.
    pub items: u32,
    /// Size of each content, bytes.
    pub content_bytes: u64,
    /// Custody strategy of every content.
    pub strategy: CustodyStrategy,
    /// Shards needed to restore (1 for full replica).
    pub k: u32,
    /// Shards (custodians) per content.
    pub n: u32,
    /// Heartbeat interval.
    pub heartbeat_secs: i64,
    /// Silence after which a node is suspected (`LivenessPolicy`).
    pub window_secs: i64,
    /// Further silence before it is declared failed (`LivenessPolicy`).
    pub grace_secs: i64,
    /// Period of one detector's `detect_failed_nodes` run.
    pub detect_secs: i64,
    /// Independent detectors (random phases): the first to see a failure
    /// declares it. Every sidecar runs detection, so the real count is large;
    /// 1 is the conservative default.
    pub detectors: u32,
    /// Sidecar reconciliation period: a repair whose signal was lost, or
    /// which could not fetch, is retried after this long.
    pub reconcile_secs: i64,
    /// Probability that a node dies for good within a month.
    pub monthly_failure_rate: f64,
    /// New nodes per month as a share of the initial node count (churn in);
    /// `None` replaces failures one for one.
    pub join_rate: Option<f64>,
    /// Transient outages (reboots, ISP blips) per node per month.
    pub transient_rate: f64,
    /// Median outage length (lognormal).
    pub transient_median_secs: f64,
    /// Lognormal sigma of outage lengths.
    pub transient_sigma: f64,
    /// Probability that one heartbeat never reaches the detectors' view.
    pub message_loss: f64,
    /// Attempts per health probe before the prober reports a failure (a
    /// probe fails only if every attempt is lost).
    pub probe_retries: u32,
    /// Share of nodes that attest "failed" about every peer they probe.
    pub byzantine_share: f64,
    /// How failure is declared.
    pub detection: DetectionMode,
    /// Attesters sampled per health-consensus evaluation.
    pub attesters: u32,
    /// Routine health audits (consensus evaluations) per node per day.
    pub audits_per_node_day: f64,
    /// Confidence at which a consensus penalises contradicting attesters
    /// (and, in or-mode, declares an Unhealthy node failed); 0.9 is the
    /// coordinator's `PENALTY_MIN_CONFIDENCE`.
    pub min_confidence: f64,
    /// Each penalty's cost halves every this many seconds (0: never
    /// forgiven); the DNA's `penalty_half_life_secs`.
    pub penalty_half_life_secs: i64,
    /// Upload bandwidth of a shard source, Mbit/s.
    pub uplink_mbps: f64,
    /// Download bandwidth of a repairing node, Mbit/s.
    pub downlink_mbps: f64,
    /// Fixed cost of a repair (assignment propagation, signal, handshakes).
    pub repair_setup_secs: f64,
    /// Candidates sampled (uniformly among registered nodes) and then
    /// ranked by `rank` for each placement.
    pub candidate_sample: u32,
    /// Random seed: equal seeds give equal runs.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 1_000,
            days: 365.0,
            items: 1_000,
            content_bytes: 100_000_000,
            strategy: CustodyStrategy::ErasureCoded,
            k: 3,
            n: 6,
            heartbeat_secs: DEFAULT_HEARTBEAT_INTERVAL_SECS,
            window_secs: DEFAULT_FAILURE_WINDOW_SECS,
            grace_secs: 120,
            detect_secs: 15,
            detectors: 1,
            reconcile_secs: 30,
            monthly_failure_rate: 0.01,
            join_rate: None,
            transient_rate: 2.0,
            transient_median_secs: 60.0,
            transient_sigma: 1.5,
            message_loss: 0.01,
            probe_retries: 3,
            byzantine_share: 0.0,
            detection: DetectionMode::Heartbeat,
            attesters: 5,
            audits_per_node_day: 1.0,
            min_confidence: 0.9,
            penalty_half_life_secs: registry_core::reputation::DEFAULT_PENALTY_HALF_LIFE_SECS,
            uplink_mbps: 20.0,
            downlink_mbps: 100.0,
            repair_setup_secs: 5.0,
            candidate_sample: 64,
            seed: 1,
        }
    }
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<(), SimError> {
    if ok {
        Ok(())
    } else {
        Err(SimError::Config(msg()))
    }
}

fn finite_in(name: &str, v: f64, lo: f64, hi: f64) -> Result<(), SimError> {
    check(v.is_finite() && v >= lo && v <= hi, || {
        format!("{name} must be within {lo}..={hi} (got {v})")
    })
}

impl SimConfig {
    /// Rejects values the model cannot run with, naming the flag.
    pub fn validate(&self) -> Result<(), SimError> {
        check(self.n >= 1 && self.n <= MAX_SHARDS, || {
            format!("--n must be 1..={MAX_SHARDS} (got {})", self.n)
        })?;
        check(self.k >= 1 && self.k <= self.n, || {
            format!("--k must be 1..=n (got k={}, n={})", self.k, self.n)
        })?;
        check(
            self.strategy != CustodyStrategy::FullReplica || self.k == 1,
            || {
                format!(
                    "full_replica restores from any one copy: --k must be 1 (got {})",
                    self.k
                )
            },
        )?;
        check(self.nodes >= self.n + 2, || {
            format!(
                "--nodes must be at least n + 2 = {} (the owner never holds its content and a repair needs a fresh node); got {}",
                self.n + 2,
                self.nodes
            )
        })?;
        check(self.nodes <= 2_000_000, || {
            format!("--nodes at most 2000000 (got {})", self.nodes)
        })?;
        finite_in("--days", self.days, 0.0, 3_650.0)?;
        check(self.days > 0.0, || "--days must be positive".into())?;
        check(self.items >= 1 && self.items <= 10_000_000, || {
            format!("--items must be 1..=10000000 (got {})", self.items)
        })?;
        check(
            (1..=MAX_CONTENT_BYTES).contains(&self.content_bytes),
            || {
                format!(
                    "--content-bytes must be 1..={MAX_CONTENT_BYTES} (got {})",
                    self.content_bytes
                )
            },
        )?;
        check(
            self.items as u64 * self.n as u64 <= MAX_SHARDS_TRACKED,
            || {
                format!(
                "--items x --n must be at most {MAX_SHARDS_TRACKED} shards to track (got {} x {})",
                self.items, self.n
            )
            },
        )?;
        check((1..=3_600).contains(&self.heartbeat_secs), || {
            format!(
                "--heartbeat-secs must be 1..=3600 (got {})",
                self.heartbeat_secs
            )
        })?;
        check((1..=86_400).contains(&self.window_secs), || {
            format!("--window-secs must be 1..=86400 (got {})", self.window_secs)
        })?;
        // With a window shorter than the interval every node would look
        // suspected between two of its own heartbeats.
        check(self.window_secs >= self.heartbeat_secs, || {
            format!(
                "--window-secs ({}) must be at least --heartbeat-secs ({}), or every node is suspected between two heartbeats",
                self.window_secs, self.heartbeat_secs
            )
        })?;
        check((0..=604_800).contains(&self.grace_secs), || {
            format!("--grace-secs must be 0..=604800 (got {})", self.grace_secs)
        })?;
        check((1..=3_600).contains(&self.detect_secs), || {
            format!("--detect-secs must be 1..=3600 (got {})", self.detect_secs)
        })?;
        check((1..=10_000).contains(&self.detectors), || {
            format!("--detectors must be 1..=10000 (got {})", self.detectors)
        })?;
        check((1..=86_400).contains(&self.reconcile_secs), || {
            format!(
                "--reconcile-secs must be 1..=86400 (got {})",
                self.reconcile_secs
            )
        })?;
        finite_in(
            "--monthly-failure-rate",
            self.monthly_failure_rate,
            0.0,
            0.999,
        )?;
        if let Some(j) = self.join_rate {
            finite_in("--join-rate", j, 0.0, 10.0)?;
        }
        finite_in("--transient-rate", self.transient_rate, 0.0, 1_000.0)?;
        finite_in(
            "--transient-median-secs",
            self.transient_median_secs,
            1.0,
            1e7,
        )?;
        finite_in("--transient-sigma", self.transient_sigma, 0.0, 5.0)?;
        finite_in("--message-loss", self.message_loss, 0.0, 0.99)?;
        check((1..=20).contains(&self.probe_retries), || {
            format!(
                "--probe-retries must be 1..=20 (got {})",
                self.probe_retries
            )
        })?;
        finite_in("--byzantine-share", self.byzantine_share, 0.0, 1.0)?;
        check((1..=64).contains(&self.attesters), || {
            format!("--attesters must be 1..=64 (got {})", self.attesters)
        })?;
        finite_in(
            "--audits-per-node-day",
            self.audits_per_node_day,
            0.0,
            // The sidecar's default (4 peers a minute) is about 1,152
            // five-attester evaluations per node-day.
            10_000.0,
        )?;
        finite_in("--min-confidence", self.min_confidence, 0.0, 1.0)?;
        check(
            (0..=10 * 365 * 86_400).contains(&self.penalty_half_life_secs),
            || {
                format!(
                    "--penalty-half-life-secs must be within 0..=315360000 (got {})",
                    self.penalty_half_life_secs
                )
            },
        )?;
        finite_in("--uplink-mbps", self.uplink_mbps, 0.001, 1e6)?;
        finite_in("--downlink-mbps", self.downlink_mbps, 0.001, 1e6)?;
        finite_in("--repair-setup-secs", self.repair_setup_secs, 0.0, 86_400.0)?;
        check(self.candidate_sample >= 1, || {
            "--candidate-sample must be at least 1".into()
        })?;
        self.codec_params()?;
        Ok(())
    }

    /// The codec parameters of every content, validated by the codec itself.
    pub fn codec_params(&self) -> Result<shard_codec::CodecParams, SimError> {
        let strategy: shard_codec::Strategy = self.strategy.as_str().parse()?;
        Ok(shard_codec::CodecParams::new(
            strategy,
            self.k as usize,
            self.n as usize,
        )?)
    }

    /// Bytes of one shard as the real encoder writes it (headers included).
    pub fn shard_bytes(&self) -> Result<u64, SimError> {
        Ok(self.codec_params()?.shard_len(self.content_bytes))
    }

    /// Shards a repair must fetch: one copy for a replica, k otherwise.
    pub fn sources_needed(&self) -> u32 {
        match self.strategy {
            CustodyStrategy::FullReplica => 1,
            _ => self.k,
        }
    }

    /// The detection target of the issue: 2 heartbeat intervals plus grace.
    pub fn detection_target_secs(&self) -> f64 {
        (2 * self.heartbeat_secs + self.grace_secs) as f64
    }

    /// Join rate actually used (per month, share of initial nodes).
    pub fn effective_join_rate(&self) -> f64 {
        self.join_rate
            .unwrap_or_else(|| -(1.0 - self.monthly_failure_rate).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        SimConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |f: fn(&mut SimConfig)| {
            let mut c = SimConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(|c| c.k = 7).contains("--k"));
        assert!(bad(|c| c.nodes = 7).contains("--nodes"));
        assert!(bad(|c| c.message_loss = 1.0).contains("--message-loss"));
        assert!(bad(|c| c.window_secs = 20).contains("--window-secs"));
        assert!(bad(|c| c.content_bytes = u64::MAX).contains("--content-bytes"));
        assert!(bad(|c| c.items = 10_000_000).contains("--items"));
        assert!(bad(|c| c.monthly_failure_rate = f64::NAN).contains("--monthly-failure-rate"));
        assert!(bad(|c| {
            c.strategy = CustodyStrategy::FullReplica;
            c.k = 2;
        })
        .contains("full_replica"));
    }

    #[test]
    fn shard_size_comes_from_the_codec() {
        let c = SimConfig::default();
        let s = c.shard_bytes().unwrap();
        // 100 MB in 3 pieces plus per-stripe headers and tags.
        assert!(s > 100_000_000 / 3 && s < 100_000_000 / 3 + 100_000, "{s}");
        assert_eq!(c.sources_needed(), 3);
    }
}
