//! Human-readable output: a results table for one run, and byte/duration
//! formatting shared with sweeps and comparisons.

use crate::stats::{RunResults, Summary};
use std::fmt::Write;

/// Bytes in decimal units (what disks and links are sold in).
pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b;
    let mut u = 0;
    while v.abs() >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// A count with thousands separators.
pub fn count(n: f64) -> String {
    if !n.is_finite() {
        return format!("{n}");
    }
    if n.abs() >= 1e12 {
        return format!("{n:.3e}");
    }
    let s = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

fn latency(s: &Summary) -> String {
    if s.count == 0 {
        return "n/a (none)".into();
    }
    format!(
        "mean {:.1} s, p50 {:.1} s, p99 {:.1} s, max {:.1} s (n={})",
        s.mean,
        s.p50,
        s.p99,
        s.max,
        count(s.count as f64)
    )
}

/// The results of one run as an aligned two-column table.
pub fn table(r: &RunResults) -> String {
    let c = &r.counters;
    let cfg = &r.config;
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut section = |name: &str, items: Vec<(&str, String)>| {
        rows.push((format!("[{name}]"), String::new()));
        for (k, v) in items {
            rows.push((format!("  {k}"), v));
        }
    };
    section(
        "run",
        vec![
            (
                "network",
                format!(
                    "{} nodes (+{} joined), {} days, seed {}",
                    count(cfg.nodes as f64),
                    count(c.nodes_joined as f64),
                    cfg.days,
                    cfg.seed
                ),
            ),
            (
                "content",
                format!(
                    "{} items of {}, {} {}-of-{}, shard {} (x{:.2} stored)",
                    count(cfg.items as f64),
                    bytes(cfg.content_bytes as f64),
                    cfg.strategy,
                    cfg.k,
                    cfg.n,
                    bytes(r.shard_bytes as f64),
                    r.storage_overhead
                ),
            ),
            (
                "timings",
                format!(
                    "heartbeat {} s, window {} s, grace {} s, detect every {} s x{} detector(s)",
                    cfg.heartbeat_secs, cfg.window_secs, cfg.grace_secs, cfg.detect_secs, cfg.detectors
                ),
            ),
            (
                "hazards",
                format!(
                    "{}%/month permanent, {} outages/node-month (median {} s), {}% heartbeat loss, {}% Byzantine",
                    cfg.monthly_failure_rate * 100.0,
                    cfg.transient_rate,
                    cfg.transient_median_secs,
                    cfg.message_loss * 100.0,
                    cfg.byzantine_share * 100.0
                ),
            ),
            ("detection mode", cfg.detection.to_string()),
            (
                "elapsed",
                format!("{:.1} s wall, {} events", r.wall_secs, count(c.events as f64)),
            ),
        ],
    );
    section(
        "durability",
        vec![
            (
                "items lost",
                format!(
                    "{} of {} ({:.4}%)",
                    count(c.items_lost as f64),
                    count(cfg.items as f64),
                    r.items_lost_fraction * 100.0
                ),
            ),
            (
                "stranded at end",
                format!(
                    "{} (copies exist, but fewer than k live assignments)",
                    count(r.items_stranded_end as f64)
                ),
            ),
            (
                "unavailability",
                format!(
                    "{} episodes, {:.2} item-hours",
                    count(c.unavailability_episodes as f64),
                    c.unavailable_item_secs / 3600.0
                ),
            ),
        ],
    );
    section(
        "failures",
        vec![
            (
                "permanent",
                format!(
                    "{} ({} declared, {} undetected at end, {} died while already declared)",
                    count(c.deaths as f64),
                    count(c.true_detections as f64),
                    count(r.deaths_undetected_at_end as f64),
                    count(c.deaths_already_declared as f64)
                ),
            ),
            ("transient outages", count(c.outages as f64)),
            ("heartbeat-loss runs", count(c.false_silences as f64)),
        ],
    );
    section(
        "detection (death -> declared failed)",
        vec![
            ("time to detect", latency(&r.detection_secs)),
            ("time to suspect", latency(&r.suspicion_secs)),
            (
                "target",
                format!(
                    "<= {:.0} s (2 x heartbeat + grace): {:.1}% of detections",
                    r.detection_target_secs,
                    r.detection_within_target * 100.0
                ),
            ),
        ],
    );
    section(
        "false failure declarations",
        vec![
            (
                "total",
                format!(
                    "{} ({:.4} per node-year)",
                    count(r.false_declarations as f64),
                    r.false_declarations_per_node_year
                ),
            ),
            ("by heartbeat loss", count(c.false_by_message_loss as f64)),
            ("by outage > window+grace", count(c.false_by_outage as f64)),
            (
                "by attestation (or-mode)",
                count(c.false_by_attestation as f64),
            ),
            (
                "expected from loss (formula)",
                format!("{:.3e} per node-year", r.false_silence_per_node_year),
            ),
            ("cleared by consensus", count(c.cleared_by_consensus as f64)),
        ],
    );
    section(
        "repairs",
        vec![
            (
                "shards rebuilt",
                format!(
                    "{} ({} needless)",
                    count(c.repairs as f64),
                    count(c.repairs_needless as f64)
                ),
            ),
            (
                "repair traffic",
                format!(
                    "{} ({:.1}% needless), {} per node-month",
                    bytes(c.repair_bytes as f64),
                    r.repair_needless_share * 100.0,
                    bytes(r.repair_bytes_per_node_month)
                ),
            ),
            ("declared -> rebuilt", latency(&r.repair_secs)),
            ("death -> rebuilt", latency(&r.time_to_repair_secs)),
            (
                "delays",
                format!(
                    "{} unplaced, {} waits for sources, {} interrupted, {} lost signals",
                    count(c.unplaced as f64),
                    count(c.fetch_waits as f64),
                    count(c.interrupted as f64),
                    count(c.signals_lost as f64)
                ),
            ),
        ],
    );
    section(
        "byzantine attesters",
        vec![
            (
                "liars",
                format!(
                    "{} ({:.1}% weightless at end)",
                    count(r.byzantine_nodes as f64),
                    r.byzantine_weightless_end * 100.0
                ),
            ),
            (
                "consensus evaluations",
                count(c.consensus_evaluations as f64),
            ),
            (
                "false Unhealthy verdicts",
                format!(
                    "{} (up, honest subjects)",
                    count(c.false_unhealthy_verdicts as f64)
                ),
            ),
            (
                "honest declared by attestation",
                count(c.honest_up_declared_by_attestation as f64),
            ),
            (
                "honest reputation at end",
                format!(
                    "mean {:.1}, {:.2}% weightless",
                    r.honest_mean_reputation_end,
                    r.honest_weightless_end * 100.0
                ),
            ),
        ],
    );
    let mut written: Vec<(&str, String)> = vec![
        ("beats sent (signals, no record)", count(r.heartbeats)),
        (
            "records a node a day",
            format!(
                "{:.1} ({} bytes; budget 200)",
                r.records_per_node_day,
                count(r.bytes_per_node_day)
            ),
        ),
        (
            "DHT growth a year",
            format!(
                "{} GiB at this size (before replication)",
                format_args!("{:.2}", r.dht_bytes_per_year / (1u64 << 30) as f64)
            ),
        ),
    ];
    for (kind, n) in &r.records_by_kind {
        written.push((kind.as_str(), count(*n)));
    }
    section(
        "records written (write-budget model + simulated events)",
        written,
    );
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        if v.is_empty() {
            let _ = writeln!(out, "{k}");
        } else {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(999.0), "999 B");
        assert_eq!(bytes(1_500_000.0), "1.50 MB");
        assert_eq!(bytes(2.5e15), "2.50 PB");
        assert_eq!(count(1_234_567.0), "1,234,567");
        assert_eq!(count(12.0), "12");
        assert_eq!(count(-1000.0), "-1,000");
    }
}
