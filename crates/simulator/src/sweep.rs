//! Parameter sweeps: the same network run at several values of one
//! parameter, written out as CSV, JSON and SVG charts of durability, repair
//! traffic, false declarations and detection time against the parameter.

use crate::plot::{line_chart, Series};
use crate::stats::RunResults;
use crate::{sim, SimConfig, SimError};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use registry_core::assignment::CustodyStrategy;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A parameter a sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SweepParam {
    /// Share of lying attesters.
    ByzantineShare,
    /// Grace period after the failure window.
    GraceSecs,
    /// Heartbeat interval (the failure window follows at 2 intervals).
    HeartbeatSecs,
    /// Strategy and k-of-n, e.g. `erasure_coded:3-6` or `full_replica:1-3`.
    KN,
    /// Permanent failures per node-month.
    MonthlyFailureRate,
    /// Heartbeat loss probability.
    MessageLoss,
    /// Transient outages per node-month.
    TransientRate,
}

impl SweepParam {
    /// All parameters.
    pub const ALL: [SweepParam; 7] = [
        SweepParam::ByzantineShare,
        SweepParam::GraceSecs,
        SweepParam::HeartbeatSecs,
        SweepParam::KN,
        SweepParam::MonthlyFailureRate,
        SweepParam::MessageLoss,
        SweepParam::TransientRate,
    ];

    /// The command-line name (also the output file stem).
    pub fn as_str(self) -> &'static str {
        match self {
            SweepParam::ByzantineShare => "byzantine-share",
            SweepParam::GraceSecs => "grace-secs",
            SweepParam::HeartbeatSecs => "heartbeat-secs",
            SweepParam::KN => "k-n",
            SweepParam::MonthlyFailureRate => "monthly-failure-rate",
            SweepParam::MessageLoss => "message-loss",
            SweepParam::TransientRate => "transient-rate",
        }
    }

    /// Values swept when none are given.
    pub fn default_values(self) -> Vec<String> {
        let v: &[&str] = match self {
            SweepParam::ByzantineShare => &[
                "0", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.3", "0.4",
                "0.5",
            ],
            SweepParam::GraceSecs => &["0", "30", "60", "120", "300", "600", "1800", "3600"],
            SweepParam::HeartbeatSecs => &["10", "15", "30", "60", "120", "300"],
            SweepParam::KN => &[
                "full_replica:1-1",
                "full_replica:1-2",
                "full_replica:1-3",
                "erasure_coded:2-3",
                "erasure_coded:2-4",
                "erasure_coded:3-5",
                "erasure_coded:3-6",
                "erasure_coded:4-8",
                "erasure_coded:6-9",
                "erasure_coded:10-14",
            ],
            SweepParam::MonthlyFailureRate => {
                &["0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.3", "0.5"]
            }
            // Beyond 0.2 nearly every node is declared daily and a run
            // spends its time on needless repairs.
            SweepParam::MessageLoss => &["0", "0.01", "0.02", "0.05", "0.1", "0.15", "0.2"],
            SweepParam::TransientRate => &["0", "1", "2", "4", "8", "16"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The x-axis label.
    pub fn axis(self) -> &'static str {
        match self {
            SweepParam::ByzantineShare => "share of Byzantine attesters",
            SweepParam::GraceSecs => "grace period (s)",
            SweepParam::HeartbeatSecs => "heartbeat interval (s), window = 2 intervals",
            SweepParam::KN => "strategy k-of-n",
            SweepParam::MonthlyFailureRate => "permanent failures per node-month",
            SweepParam::MessageLoss => "heartbeat loss probability",
            SweepParam::TransientRate => "transient outages per node-month",
        }
    }

    /// `base` with this parameter set to `value`; returns the config, the
    /// numeric x (the index for k-n) and a short label.
    pub fn apply(
        self,
        value: &str,
        index: usize,
        base: &SimConfig,
    ) -> Result<(SimConfig, f64, String), SimError> {
        let num = || -> Result<f64, SimError> {
            value.trim().parse::<f64>().map_err(|_| {
                SimError::Config(format!(
                    "--values: {value:?} is not a number for {}",
                    self.as_str()
                ))
            })
        };
        let int = || -> Result<i64, SimError> {
            let v = num()?;
            if v.fract() != 0.0 {
                return Err(SimError::Config(format!(
                    "--values: {value:?} must be a whole number of seconds"
                )));
            }
            Ok(v as i64)
        };
        let mut c = base.clone();
        let x = match self {
            SweepParam::ByzantineShare => {
                c.byzantine_share = num()?;
                c.byzantine_share
            }
            SweepParam::GraceSecs => {
                c.grace_secs = int()?;
                c.grace_secs as f64
            }
            SweepParam::HeartbeatSecs => {
                c.heartbeat_secs = int()?;
                c.window_secs = 2 * c.heartbeat_secs;
                c.heartbeat_secs as f64
            }
            SweepParam::KN => {
                let (strategy, k, n) = parse_kn(value, base.strategy)?;
                c.strategy = strategy;
                c.k = k;
                c.n = n;
                index as f64
            }
            SweepParam::MonthlyFailureRate => {
                c.monthly_failure_rate = num()?;
                c.monthly_failure_rate
            }
            SweepParam::MessageLoss => {
                c.message_loss = num()?;
                c.message_loss
            }
            SweepParam::TransientRate => {
                c.transient_rate = num()?;
                c.transient_rate
            }
        };
        c.validate()?;
        let label = match self {
            SweepParam::KN if c.strategy == CustodyStrategy::FullReplica => {
                format!("{}x copy", c.n)
            }
            SweepParam::KN => format!("{}-of-{}", c.k, c.n),
            _ => value.trim().to_string(),
        };
        Ok((c, x, label))
    }
}

impl FromStr for SweepParam {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SweepParam::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = SweepParam::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown sweep parameter {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Parses `k-n` or `strategy:k-n`.
pub fn parse_kn(
    v: &str,
    default: CustodyStrategy,
) -> Result<(CustodyStrategy, u32, u32), SimError> {
    let bad = || {
        SimError::Config(format!(
            "--values: {v:?} is not k-n or strategy:k-n (e.g. 3-6, erasure_coded:3-6, full_replica:1-3)"
        ))
    };
    let (strategy, kn) = match v.split_once(':') {
        Some((s, kn)) => (
            s.trim()
                .parse::<CustodyStrategy>()
                .map_err(|e| SimError::Config(format!("--values: {e}")))?,
            kn,
        ),
        None => (default, v),
    };
    let (k, n) = kn.split_once('-').ok_or_else(bad)?;
    let k = k.trim().parse().map_err(|_| bad())?;
    let n = n.trim().parse().map_err(|_| bad())?;
    Ok((strategy, k, n))
}

/// One point of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    /// The value as given.
    pub value: String,
    /// Its label on the chart.
    pub label: String,
    /// Its position on the x axis.
    pub x: f64,
    /// The run's results.
    pub results: RunResults,
}

/// The largest swept value below which (inclusive) `bad` is zero at every
/// point: the "safe" limit of a monotone risk.
pub fn largest_safe(points: &[SweepPoint], bad: impl Fn(&RunResults) -> u64) -> Option<f64> {
    let mut sorted: Vec<&SweepPoint> = points.iter().collect();
    sorted.sort_by(|a, b| a.x.total_cmp(&b.x));
    let mut safe = None;
    for p in sorted {
        if bad(&p.results) > 0 {
            break;
        }
        safe = Some(p.x);
    }
    safe
}

fn run_bar(multi: &MultiProgress, cfg: &SimConfig, label: &str) -> ProgressBar {
    let bar = multi.add(ProgressBar::new((cfg.days * 86_400.0) as u64));
    bar.set_style(
        ProgressStyle::with_template("  {msg:>18} [{bar:30}] {percent:>3}% of sim time, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}

/// Runs every point (on `jobs` threads), in value order.
pub fn run_sweep(
    param: SweepParam,
    values: &[String],
    base: &SimConfig,
    jobs: usize,
    multi: &MultiProgress,
) -> Result<Vec<SweepPoint>, SimError> {
    let mut plan = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let (cfg, x, label) = param.apply(v, i, base)?;
        plan.push((v.clone(), label, x, cfg));
    }
    let overall = multi.add(ProgressBar::new(plan.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} points, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    overall.set_message(format!("sweep {}", param.as_str()));
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<Result<SweepPoint, SimError>>>> =
        Mutex::new((0..plan.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(plan.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((value, label, x, cfg)) = plan.get(i) else {
                    break;
                };
                let bar = run_bar(multi, cfg, label);
                let res = sim::run(cfg, Some(&bar)).map(|results| SweepPoint {
                    value: value.clone(),
                    label: label.clone(),
                    x: *x,
                    results,
                });
                bar.finish_and_clear();
                overall.inc(1);
                if let Ok(mut o) = out.lock() {
                    o[i] = Some(res);
                }
            });
        }
    });
    overall.finish();
    let out = out
        .into_inner()
        .map_err(|_| SimError::Config("a sweep worker panicked".into()))?;
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(SimError::Config("a sweep point did not run".into()))))
        .collect()
}

/// CSV columns, one row per point.
pub const CSV_HEADER: &str = "value,label,items_lost,items_stranded_end,unavailability_episodes,unavailable_item_hours,repairs,repairs_needless,repair_tb,repair_needless_tb,repair_gb_per_node_month,false_declarations,false_by_message_loss,false_by_outage,false_by_attestation,honest_up_declared_by_attestation,false_unhealthy_verdicts,cleared_by_consensus,detection_mean_s,detection_p99_s,detection_max_s,detection_within_target,repair_p50_s,time_to_repair_p99_s,byzantine_weightless_end,honest_weightless_end,records_per_node_day,wall_secs";

/// The points as CSV.
pub fn to_csv(points: &[SweepPoint]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for p in points {
        let r = &p.results;
        let c = &r.counters;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.3},{},{},{:.4},{:.4},{:.4},{},{},{},{},{},{},{},{:.2},{:.2},{:.2},{:.4},{:.2},{:.2},{:.4},{:.4},{:.0},{:.2}",
            p.value.replace(',', ";"),
            p.label.replace(',', ";"),
            c.items_lost,
            r.items_stranded_end,
            c.unavailability_episodes,
            c.unavailable_item_secs / 3600.0,
            c.repairs,
            c.repairs_needless,
            c.repair_bytes as f64 / 1e12,
            c.repair_bytes_needless as f64 / 1e12,
            r.repair_bytes_per_node_month / 1e9,
            r.false_declarations,
            c.false_by_message_loss,
            c.false_by_outage,
            c.false_by_attestation,
            c.honest_up_declared_by_attestation,
            c.false_unhealthy_verdicts,
            c.cleared_by_consensus,
            r.detection_secs.mean,
            r.detection_secs.p99,
            r.detection_secs.max,
            r.detection_within_target,
            r.repair_secs.p50,
            r.time_to_repair_secs.p99,
            r.byzantine_weightless_end,
            r.honest_weightless_end,
            r.records_per_node_day,
            r.wall_secs,
        );
    }
    s
}

fn write(path: &Path, text: &str) -> Result<(), SimError> {
    std::fs::write(path, text).map_err(|e| SimError::io(path, e))
}

/// Writes `<name>.csv`, `<name>.json` and the charts into `dir`; returns
/// the files written.
pub fn write_outputs(
    param: SweepParam,
    name: &str,
    points: &[SweepPoint],
    dir: &Path,
) -> Result<Vec<PathBuf>, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    let mut files = Vec::new();
    let csv = dir.join(format!("{name}.csv"));
    write(&csv, &to_csv(points))?;
    files.push(csv);
    let json = dir.join(format!("{name}.json"));
    write(&json, &serde_json::to_string_pretty(points)?)?;
    files.push(json);

    // Swept values are spread unevenly (0.001 to 0.5, 10 s to 300 s), so
    // points are drawn evenly spaced and labelled with their values.
    let xs: Vec<f64> = (0..points.len()).map(|i| i as f64).collect();
    let labels: Vec<String> = points.iter().map(|p| p.label.clone()).collect();
    let cat = Some(labels.as_slice());
    let col = |f: &dyn Fn(&RunResults) -> f64| -> Vec<f64> {
        points.iter().map(|p| f(&p.results)).collect()
    };
    let base = &points[0].results.config;
    let ctx = format!(
        "{} nodes, {} days",
        crate::report::count(base.nodes as f64),
        base.days
    );
    let chart = |suffix: &str, title: String, y: &str, series: Vec<Series>| {
        let path = dir.join(format!("{name}-{suffix}.svg"));
        line_chart(&path, &title, param.axis(), y, &xs, cat, &series).map(|_| path)
    };
    files.push(chart(
        "durability",
        format!("Durability vs {} ({ctx})", param.as_str()),
        "items",
        vec![
            Series {
                name: "items lost".into(),
                ys: col(&|r| r.counters.items_lost as f64),
            },
            Series {
                name: "stranded at end (< k live assignments)".into(),
                ys: col(&|r| r.items_stranded_end as f64),
            },
        ],
    )?);
    files.push(chart(
        "repair-traffic",
        format!("Repair traffic vs {} ({ctx})", param.as_str()),
        "TB fetched over the network",
        vec![
            Series {
                name: "all repairs".into(),
                ys: col(&|r| r.counters.repair_bytes as f64 / 1e12),
            },
            Series {
                name: "needless (live node declared failed)".into(),
                ys: col(&|r| r.counters.repair_bytes_needless as f64 / 1e12),
            },
        ],
    )?);
    files.push(chart(
        "false-declarations",
        format!("False failure declarations vs {} ({ctx})", param.as_str()),
        "declarations of live nodes",
        vec![
            Series {
                name: "all".into(),
                ys: col(&|r| r.false_declarations as f64),
            },
            Series {
                name: "outage > window + grace".into(),
                ys: col(&|r| r.counters.false_by_outage as f64),
            },
            Series {
                name: "heartbeat loss".into(),
                ys: col(&|r| r.counters.false_by_message_loss as f64),
            },
            Series {
                name: "honest, up, by attestation".into(),
                ys: col(&|r| r.counters.honest_up_declared_by_attestation as f64),
            },
        ],
    )?);
    files.push(chart(
        "detection",
        format!(
            "Time from death to failure declaration vs {} ({ctx})",
            param.as_str()
        ),
        "seconds",
        vec![
            Series {
                name: "mean".into(),
                ys: col(&|r| r.detection_secs.mean),
            },
            Series {
                name: "p99".into(),
                ys: col(&|r| r.detection_secs.p99),
            },
            Series {
                name: "target: 2 x heartbeat + grace".into(),
                ys: col(&|r| r.detection_target_secs),
            },
        ],
    )?);
    if param == SweepParam::ByzantineShare {
        files.push(chart(
            "verdicts",
            format!(
                "Consensus about honest live nodes vs {} ({ctx})",
                param.as_str()
            ),
            "count",
            vec![
                Series {
                    name: "false Unhealthy verdicts".into(),
                    ys: col(&|r| r.counters.false_unhealthy_verdicts as f64),
                },
                Series {
                    name: "honest nodes declared by attestation".into(),
                    ys: col(&|r| r.counters.honest_up_declared_by_attestation as f64),
                },
            ],
        )?);
    }
    if param == SweepParam::HeartbeatSecs {
        files.push(chart(
            "dht",
            format!("Heartbeat DHT records vs heartbeat interval ({ctx})"),
            "records per node per day",
            vec![Series {
                name: "one link per heartbeat, four presence links per window".into(),
                ys: col(&|r| r.records_per_node_day),
            }],
        )?);
    }
    Ok(files)
}

/// A plain-text summary of a sweep (one line per point).
pub fn summary(param: SweepParam, points: &[SweepPoint]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>20} {:>8} {:>12} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8}",
        param.as_str(),
        "lost",
        "repair",
        "needless",
        "false",
        "byz-decl",
        "unhealthy",
        "detect",
        "p99"
    );
    for p in points {
        let r = &p.results;
        let _ = writeln!(
            s,
            "{:>20} {:>8} {:>12} {:>9.1}% {:>10} {:>10} {:>10} {:>8.1}s {:>7.1}s",
            p.label,
            r.counters.items_lost,
            crate::report::bytes(r.counters.repair_bytes as f64),
            r.repair_needless_share * 100.0,
            r.false_declarations,
            r.counters.honest_up_declared_by_attestation,
            r.counters.false_unhealthy_verdicts,
            r.detection_secs.mean,
            r.detection_secs.p99,
        );
    }
    if param == SweepParam::ByzantineShare {
        let fmt = |v: Option<f64>| {
            v.map_or("none (unsafe at every value)".to_string(), |v| {
                v.to_string()
            })
        };
        let _ = writeln!(
            s,
            "largest Byzantine share with no honest node declared failed by attestation: {}",
            fmt(largest_safe(points, |r| r
                .counters
                .honest_up_declared_by_attestation))
        );
        let _ = writeln!(
            s,
            "largest Byzantine share with no false Unhealthy verdict about an honest node: {}",
            fmt(largest_safe(points, |r| r
                .counters
                .false_unhealthy_verdicts))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_apply() {
        assert_eq!(
            parse_kn("3-6", CustodyStrategy::ErasureCoded).unwrap(),
            (CustodyStrategy::ErasureCoded, 3, 6)
        );
        assert_eq!(
            parse_kn("full_replica:1-3", CustodyStrategy::ErasureCoded).unwrap(),
            (CustodyStrategy::FullReplica, 1, 3)
        );
        assert!(parse_kn("3x6", CustodyStrategy::ErasureCoded).is_err());
        assert!(parse_kn("raid:3-6", CustodyStrategy::ErasureCoded).is_err());
        let base = SimConfig::default();
        let (c, x, _) = SweepParam::HeartbeatSecs.apply("60", 0, &base).unwrap();
        assert_eq!((c.heartbeat_secs, c.window_secs, x), (60, 120, 60.0));
        assert!(SweepParam::GraceSecs.apply("1.5", 0, &base).is_err());
        assert!(SweepParam::ByzantineShare.apply("lots", 0, &base).is_err());
        assert!(SweepParam::ByzantineShare.apply("1.5", 0, &base).is_err());
        for p in SweepParam::ALL {
            assert_eq!(p.as_str().parse::<SweepParam>(), Ok(p));
            for (i, v) in p.default_values().iter().enumerate() {
                p.apply(v, i, &base).unwrap();
            }
        }
    }

    #[test]
    fn a_small_sweep_writes_csv_json_and_charts() {
        let base = SimConfig {
            nodes: 100,
            items: 50,
            days: 10.0,
            ..SimConfig::default()
        };
        let values: Vec<String> = vec!["0.01".into(), "0.2".into()];
        let multi = MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
        let points = run_sweep(SweepParam::MonthlyFailureRate, &values, &base, 2, &multi).unwrap();
        assert_eq!(points.len(), 2);
        assert!(points[1].results.counters.deaths >= points[0].results.counters.deaths);
        let dir = std::env::temp_dir().join(format!("elohim-sim-sweep-{}", std::process::id()));
        let files = write_outputs(SweepParam::MonthlyFailureRate, "t", &points, &dir).unwrap();
        assert_eq!(files.len(), 6);
        let csv = std::fs::read_to_string(dir.join("t.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3);
        assert!(csv.starts_with(CSV_HEADER));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(summary(SweepParam::MonthlyFailureRate, &points).contains("0.2"));
    }
}
