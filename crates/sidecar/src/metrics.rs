//! Prometheus metrics of the sidecar, served at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Labels of a zome-call latency sample.
pub type CallLabels = Vec<(String, String)>;

/// The sidecar's counters and histograms.
pub struct Metrics {
    registry: Registry,
    /// Heartbeat rounds that did what they had to (a lease written when
    /// one was due, nothing otherwise); one per interval when healthy.
    pub heartbeats_sent: Counter,
    /// Heartbeat rounds that failed (a lease that could not be written).
    pub heartbeat_failures: Counter,
    /// Registrations written (first and re-registrations).
    pub registrations: Counter,
    /// Seconds since the Unix epoch of the last accepted heartbeat.
    pub last_heartbeat_unix: Gauge<f64, AtomicU64>,
    /// Zome call latency by function and outcome.
    pub zome_call_seconds: Family<CallLabels, Histogram>,
    /// Shefa service events this node acknowledged as a receiver.
    pub service_acks: Counter,
    /// Records on this node's chains, by kind (see
    /// `registry_core::budget::RecordKind`).
    pub chain_records: Family<Vec<(String, String)>, Gauge>,
    /// Signals not acted on because the DHT does not back them (a
    /// `ReplicateContent` naming no live assignment of this node).
    pub signals_refused: Counter,
    /// Signals lost because this node fell behind reading them.
    pub signals_dropped: Counter,
    /// Times the identity's app websocket was found dead and reopened.
    pub app_reconnects: Counter,
    /// Registration attempts that failed.
    pub registration_failures: Counter,
    /// Nodes this node's detector declared failed and set out to repair.
    pub failures_detected: Counter,
    /// Repair work by stage: `queued` (a failed node's shard re-homed by
    /// this node's detector), `started` and `done` (shards this node
    /// rebuilt as their new custodian), `failed` (a shard no node could
    /// take, or a rebuild that did not complete).
    pub repairs: Family<Vec<(String, String)>, Counter>,
    /// Shard bytes moved, by direction (`in`: received or fetched; `out`:
    /// served or pushed).
    pub transfer_bytes: Family<Vec<(String, String)>, Counter>,
    /// Shard bytes a transfer did not move again because a cut transfer
    /// of the same shard had left them (on either side's disk).
    pub transfer_resumed_bytes: Counter,
    /// Shards taken ahead of their assignments (held for now until the
    /// assignment is seen).
    pub shards_taken_early: Counter,
    /// Shards this node keeps.
    pub shards_held: Gauge,
    /// Bytes of the shards this node keeps.
    pub shard_bytes_held: Gauge,
    /// Store operations that failed (a write, a read, a corrupt shard).
    pub store_errors: Counter,
    /// How long heartbeat rounds take, by part: `lease` (the round of the
    /// lease worker: registration, working key, the lease when due) and
    /// `beat` (the direct signal to this node's monitors). The dashboard
    /// plots their means; a slow conductor shows here first.
    pub heartbeat_round_seconds: Family<CallLabels, Histogram>,
    /// The same rounds' seconds summed and counted, by part, for the
    /// dashboard (the histogram does not give them back).
    round_totals: std::sync::Mutex<std::collections::BTreeMap<String, (f64, u64)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("elohim");
        let heartbeats_sent = Counter::default();
        let heartbeat_failures = Counter::default();
        let registrations = Counter::default();
        let service_acks = Counter::default();
        let last_heartbeat_unix = Gauge::<f64, AtomicU64>::default();
        let chain_records = Family::<Vec<(String, String)>, Gauge>::default();
        let signals_refused = Counter::default();
        let signals_dropped = Counter::default();
        let app_reconnects = Counter::default();
        let registration_failures = Counter::default();
        let failures_detected = Counter::default();
        let repairs = Family::<Vec<(String, String)>, Counter>::default();
        let transfer_bytes = Family::<Vec<(String, String)>, Counter>::default();
        let transfer_resumed_bytes = Counter::default();
        let shards_taken_early = Counter::default();
        let shards_held = Gauge::default();
        let shard_bytes_held = Gauge::default();
        let store_errors = Counter::default();
        registry.register(
            "transfer_resumed_bytes",
            "Shard bytes not moved again because a cut transfer had left them",
            transfer_resumed_bytes.clone(),
        );
        registry.register(
            "shards_taken_early",
            "Shards taken ahead of their assignments, held until the assignment is seen",
            shards_taken_early.clone(),
        );
        registry.register(
            "registration_failures",
            "Registration attempts that failed",
            registration_failures.clone(),
        );
        registry.register(
            "failures_detected",
            "Nodes this node declared failed and set out to repair",
            failures_detected.clone(),
        );
        registry.register(
            "repairs",
            "Repair work by stage (queued, started, done, failed)",
            repairs.clone(),
        );
        registry.register(
            "transfer_bytes",
            "Shard bytes moved, by direction (in, out)",
            transfer_bytes.clone(),
        );
        registry.register("shards_held", "Shards this node keeps", shards_held.clone());
        registry.register(
            "shard_bytes_held",
            "Bytes of the shards this node keeps",
            shard_bytes_held.clone(),
        );
        registry.register(
            "store_errors",
            "Store operations that failed (write, read, corrupt shard)",
            store_errors.clone(),
        );
        registry.register(
            "signals_dropped",
            "Signals lost because this node fell behind reading them",
            signals_dropped.clone(),
        );
        registry.register(
            "app_reconnects",
            "Times the identity's app websocket was found dead and reopened",
            app_reconnects.clone(),
        );
        registry.register(
            "signals_refused",
            "Signals not acted on: the DHT does not back them",
            signals_refused.clone(),
        );
        registry.register(
            "chain_records",
            "Records on this node's chains, by kind (the write budget's)",
            chain_records.clone(),
        );
        let zome_call_seconds = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let heartbeat_round_seconds = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 20))
        });
        registry.register(
            "heartbeat_round_seconds",
            "Heartbeat round time, by part (lease, beat)",
            heartbeat_round_seconds.clone(),
        );
        registry.register(
            "heartbeats_sent",
            "Heartbeats accepted",
            heartbeats_sent.clone(),
        );
        registry.register(
            "heartbeat_failures",
            "Heartbeat attempts that failed",
            heartbeat_failures.clone(),
        );
        registry.register(
            "registrations",
            "Registrations written",
            registrations.clone(),
        );
        registry.register(
            "last_heartbeat_unix_seconds",
            "Time of the last accepted heartbeat",
            last_heartbeat_unix.clone(),
        );
        registry.register(
            "zome_call_duration_seconds",
            "Zome call latency",
            zome_call_seconds.clone(),
        );
        registry.register(
            "service_acks",
            "Shefa service events acknowledged as receiver",
            service_acks.clone(),
        );
        // Every label value is written once at zero, so a dashboard and an
        // alert see each series from the start, not only once it moves.
        for stage in REPAIR_STAGES {
            let _ = repairs.get_or_create(&vec![("stage".to_string(), stage.to_string())]);
        }
        for direction in ["in", "out"] {
            let _ = transfer_bytes
                .get_or_create(&vec![("direction".to_string(), direction.to_string())]);
        }
        for part in ["lease", "beat"] {
            let _ = heartbeat_round_seconds
                .get_or_create(&vec![("part".to_string(), part.to_string())]);
        }
        Metrics {
            registry,
            registration_failures,
            failures_detected,
            repairs,
            transfer_bytes,
            transfer_resumed_bytes,
            shards_taken_early,
            shards_held,
            shard_bytes_held,
            store_errors,
            chain_records,
            signals_refused,
            signals_dropped,
            app_reconnects,
            service_acks,
            heartbeats_sent,
            heartbeat_failures,
            registrations,
            last_heartbeat_unix,
            zome_call_seconds,
            heartbeat_round_seconds,
            round_totals: Default::default(),
        }
    }
}

/// The stages of [`Metrics::repairs`].
pub const REPAIR_STAGES: [&str; 4] = ["queued", "started", "done", "failed"];

impl Metrics {
    /// Counts `n` shards reaching a repair `stage` (one of
    /// [`REPAIR_STAGES`]).
    pub fn repair(&self, stage: &str, n: u64) {
        self.repairs
            .get_or_create(&vec![("stage".to_string(), stage.to_string())])
            .inc_by(n);
    }

    /// Counts shard bytes moved `in` or `out`.
    pub fn moved(&self, direction: &str, bytes: u64) {
        self.transfer_bytes
            .get_or_create(&vec![("direction".to_string(), direction.to_string())])
            .inc_by(bytes);
    }

    /// Records what the store holds.
    pub fn set_held(&self, shards: u64, bytes: u64) {
        self.shards_held.set(shards as i64);
        self.shard_bytes_held.set(bytes as i64);
    }

    /// Records one heartbeat round of `part` (`lease` or `beat`) that did
    /// what it had to.
    pub fn heartbeat_round(&self, part: &str, took: Duration) {
        self.heartbeat_round_seconds
            .get_or_create(&vec![("part".to_string(), part.to_string())])
            .observe(took.as_secs_f64());
        let mut totals = self.round_totals.lock().unwrap();
        let t = totals.entry(part.to_string()).or_default();
        t.0 += took.as_secs_f64();
        t.1 += 1;
    }

    /// Seconds summed and rounds counted of heartbeat rounds of `part`.
    pub fn heartbeat_round_totals(&self, part: &str) -> (f64, u64) {
        self.round_totals
            .lock()
            .unwrap()
            .get(part)
            .copied()
            .unwrap_or_default()
    }

    /// Records one zome call.
    pub fn observe_call(&self, function: &str, ok: bool, took: Duration) {
        self.zome_call_seconds
            .get_or_create(&vec![
                ("function".to_string(), function.to_string()),
                (
                    "outcome".to_string(),
                    if ok { "ok" } else { "error" }.to_string(),
                ),
            ])
            .observe(took.as_secs_f64());
    }

    /// Sets the count of records of one kind on this node's chains.
    pub fn set_chain_records(&self, kind: &str, n: u64) {
        self.chain_records
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .set(n as i64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_recorded() {
        let m = Metrics::default();
        m.heartbeats_sent.inc();
        m.heartbeats_sent.inc();
        m.heartbeat_failures.inc();
        m.observe_call("heartbeat", true, Duration::from_millis(12));
        let text = m.render();
        assert!(text.contains("elohim_heartbeats_sent_total 2"), "{text}");
        assert!(text.contains("elohim_heartbeat_failures_total 1"), "{text}");
        assert!(
            text.contains(
                "elohim_zome_call_duration_seconds_count{function=\"heartbeat\",outcome=\"ok\"} 1"
            ),
            "{text}"
        );
        m.repair("queued", 3);
        m.moved("in", 1000);
        m.set_held(2, 4096);
        m.heartbeat_round("beat", Duration::from_millis(3));
        m.heartbeat_round("beat", Duration::from_millis(5));
        let (sum, n) = m.heartbeat_round_totals("beat");
        assert!((sum - 0.008).abs() < 1e-9 && n == 2);
        assert_eq!(m.heartbeat_round_totals("lease"), (0.0, 0));
        let text = m.render();
        for line in [
            "elohim_repairs_total{stage=\"queued\"} 3",
            "elohim_repairs_total{stage=\"failed\"} 0",
            "elohim_transfer_bytes_total{direction=\"in\"} 1000",
            "elohim_transfer_bytes_total{direction=\"out\"} 0",
            "elohim_shards_held 2",
            "elohim_shard_bytes_held 4096",
            "elohim_heartbeat_round_seconds_count{part=\"beat\"} 2",
            "elohim_heartbeat_round_seconds_count{part=\"lease\"} 0",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }

    fn grafana_dir() -> std::path::PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
            .join("../../docs/grafana")
    }

    /// The `elohim_*` series a file names.
    fn series_named(text: &str) -> Vec<String> {
        let mut out: Vec<String> = text
            .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .filter(|w| w.starts_with("elohim_"))
            .map(String::from)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn every_series_the_dashboard_and_the_alerts_read_is_exported() {
        // A running node has made zome calls and counted its records.
        let m = Metrics::default();
        m.observe_call("get_available_custodians", true, Duration::from_millis(9));
        m.set_chain_records("presence_lease", 1);
        let exported = m.render();
        // A series is exported if a metric of that name is, under the name
        // the exposition gives its samples (`_total` for counters; `_bucket`,
        // `_sum`, `_count` for histograms).
        let is_exported = |series: &str| {
            let mut names = vec![series];
            for suffix in ["_total", "_bucket", "_sum", "_count"] {
                names.extend(series.strip_suffix(suffix));
            }
            names
                .iter()
                .any(|n| exported.contains(&format!("# TYPE {n} ")))
        };
        for file in ["alerts.yml", "elohim-dashboard.json"] {
            let text = std::fs::read_to_string(grafana_dir().join(file)).unwrap();
            let series = series_named(&text);
            assert!(series.len() >= 8, "{file} reads only {series:?}");
            let missing: Vec<&String> = series.iter().filter(|s| !is_exported(s)).collect();
            assert!(
                missing.is_empty(),
                "{file} reads series the sidecar does not export: {missing:?}"
            );
        }
    }

    #[test]
    fn the_alert_rules_pass_promtool() {
        let out = std::process::Command::new("promtool")
            .args(["check", "rules"])
            .arg(grafana_dir().join("alerts.yml"))
            .output()
            .expect("promtool runs (Debian's prometheus package; `cargo xtask test` installs it)");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
