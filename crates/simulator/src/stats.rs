//! What a run reports: durability, repair traffic, false declarations,
//! detection and repair times, Byzantine effects and heartbeat volume, in
//! one serialisable record so runs can be tabulated, swept and plotted.

use crate::SimConfig;
use serde::{Deserialize, Serialize};

/// Distribution of a latency, seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// Summarises samples (sorted in place). Empty input gives zeros.
    pub fn of(samples: &mut [f32]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable_by(|a, b| a.total_cmp(b));
        let n = samples.len();
        let at = |q: f64| -> f64 {
            // Nearest rank.
            let r = ((q * n as f64).ceil() as usize).clamp(1, n);
            samples[r - 1] as f64
        };
        Summary {
            count: n,
            mean: samples.iter().map(|v| *v as f64).sum::<f64>() / n as f64,
            min: samples[0] as f64,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: samples[n - 1] as f64,
        }
    }

    /// Share of samples at or below `limit` (1 when there are none).
    pub fn share_within(samples: &[f32], limit: f64) -> f64 {
        if samples.is_empty() {
            return 1.0;
        }
        samples.iter().filter(|v| (**v as f64) <= limit).count() as f64 / samples.len() as f64
    }
}

/// Counters the simulation increments as it goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Events handled.
    pub events: u64,
    /// Nodes that joined after the start.
    pub nodes_joined: u64,
    /// Permanent failures.
    pub deaths: u64,
    /// Permanent failures of nodes already declared failed (during an
    /// outage): nothing left to detect.
    pub deaths_already_declared: u64,
    /// Transient outages.
    pub outages: u64,
    /// Runs of lost heartbeats long enough to matter.
    pub false_silences: u64,
    /// Silences that monitors record as suspicions: deaths, and outages
    /// longer than the failure window (each later taken back). Lost beats
    /// alone are not: a monitor probes before it suspects.
    pub suspicions: u64,
    /// Of those, the ones taken back (the node came back).
    pub retractions: u64,
    /// Dead nodes declared failed.
    pub true_detections: u64,
    /// Live nodes declared failed because their heartbeats were lost.
    pub false_by_message_loss: u64,
    /// Live nodes declared failed during an outage longer than window + grace.
    pub false_by_outage: u64,
    /// Live nodes declared failed by a confident Unhealthy consensus
    /// (or-mode only).
    pub false_by_attestation: u64,
    /// Up, honest nodes declared failed because of attestations: by the
    /// consensus path (or-mode), or not cleared although honest attesters
    /// alone would have found them healthy (and-mode).
    pub honest_up_declared_by_attestation: u64,
    /// Silent nodes a Healthy consensus kept from being declared (and-mode).
    pub cleared_by_consensus: u64,
    /// Falsely declared nodes that came back.
    pub returns_after_declaration: u64,
    /// Health-consensus evaluations (audits and detection checks).
    pub consensus_evaluations: u64,
    /// Evaluations that found an up, honest node Unhealthy.
    pub false_unhealthy_verdicts: u64,
    /// Penalties recorded.
    pub penalties: u64,
    /// Shards rebuilt.
    pub repairs: u64,
    /// Shards rebuilt only because a live node was declared failed.
    pub repairs_needless: u64,
    /// Bytes repairs moved over the network (the source shards fetched).
    pub repair_bytes: u64,
    /// Of which for needless repairs.
    pub repair_bytes_needless: u64,
    /// Placements that found no eligible custodian (retried).
    pub unplaced: u64,
    /// Fetches postponed: too few reachable source shards.
    pub fetch_waits: u64,
    /// Transfers interrupted because the new custodian went down.
    pub interrupted: u64,
    /// Repair signals lost (repair waited for reconciliation).
    pub signals_lost: u64,
    /// Contents lost: fewer than k shards left anywhere.
    pub items_lost: u64,
    /// Times a content became unreachable (fewer than k shards on up nodes).
    pub unavailability_episodes: u64,
    /// Content-seconds of unavailability.
    pub unavailable_item_secs: f64,
    /// Node-seconds up (heartbeats produced = this / interval).
    pub node_up_secs: f64,
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// What was simulated.
    pub config: SimConfig,
    /// Bytes of one shard (from the codec).
    pub shard_bytes: u64,
    /// Bytes stored per byte of content (n * shard / content).
    pub storage_overhead: f64,
    /// Wall-clock seconds the run took.
    pub wall_secs: f64,
    /// Raw counters.
    pub counters: Counters,
    /// Nodes registered at the end (joined, not yet declared failed).
    pub nodes_registered_end: u64,
    /// Permanent failures not yet declared when the run ended.
    pub deaths_undetected_at_end: u64,
    /// Share of contents lost.
    pub items_lost_fraction: f64,
    /// Contents not lost but with fewer than k live assignments whose
    /// holders survive: repair fetches only from live assignments, so the
    /// system can no longer rebuild them, although superseded copies on
    /// falsely declared nodes still exist. Counted apart from losses so
    /// neither hides the other.
    pub items_stranded_end: u64,
    /// Dead node to failure declaration, seconds.
    pub detection_secs: Summary,
    /// Dead node to first "not alive" tick (suspicion), seconds.
    pub suspicion_secs: Summary,
    /// The target: 2 heartbeat intervals plus grace.
    pub detection_target_secs: f64,
    /// Share of detections within the target.
    pub detection_within_target: f64,
    /// Failure declaration to rebuilt shard, seconds (repairs after deaths).
    pub repair_secs: Summary,
    /// Death to rebuilt shard, seconds.
    pub time_to_repair_secs: Summary,
    /// All false declarations.
    pub false_declarations: u64,
    /// False declarations per node-year.
    pub false_declarations_per_node_year: f64,
    /// Repair traffic per node per 30-day month, bytes.
    pub repair_bytes_per_node_month: f64,
    /// Share of repair traffic that was needless.
    pub repair_needless_share: f64,
    /// Byzantine nodes ever registered.
    pub byzantine_nodes: u64,
    /// Share of Byzantine nodes whose attestations weigh nothing at the end.
    pub byzantine_weightless_end: f64,
    /// Share of honest nodes whose attestations weigh nothing at the end.
    pub honest_weightless_end: f64,
    /// Mean reputation of honest nodes at the end.
    pub honest_mean_reputation_end: f64,
    /// Expected heartbeat-loss runs long enough to declare a live node, per
    /// node-year (closed form).
    pub false_silence_per_node_year: f64,
    /// Heartbeats the nodes sent (modelled, not simulated one by one):
    /// signals to their monitors, no records.
    pub heartbeats: f64,
    /// Records the nodes wrote over the run, by kind (the write budget's
    /// model for the steady part, the simulated events for the rest).
    pub records_by_kind: Vec<(String, f64)>,
    /// Records per node per day, all kinds.
    pub records_per_node_day: f64,
    /// Bytes of those records per node per day.
    pub bytes_per_node_day: f64,
    /// What the whole network adds to the DHT in a year at this size,
    /// bytes (before each op is stored by its neighbourhood).
    pub dht_bytes_per_year: f64,
}
