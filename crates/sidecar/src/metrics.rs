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
    /// Heartbeats accepted by the DHT.
    pub heartbeats_sent: Counter,
    /// Heartbeat attempts that failed.
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
        Metrics {
            registry,
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
        }
    }
}

impl Metrics {
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
    }
}
