//! `elohim-sim`: run, sweep and validate the network simulation.

use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use registry_core::assignment::CustodyStrategy;
use registry_core::heartbeat::LivenessPolicy;
use simulator::compare::{self, CompareOptions};
use simulator::heartbeat_model as hbm;
use simulator::sweep::{self, SweepParam};
use simulator::{report, DetectionMode, SimConfig, SimError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "elohim-sim",
    version,
    about = "Discrete-event simulation of an Elohim network, driving registry_core's policy code",
    long_about = "Discrete-event simulation of an Elohim network of 10^3 to 10^5 nodes over simulated months: \
churn, permanent failures, heartbeat loss, Byzantine attesters, detection and repair, all decided by \
registry_core (judge_liveness, rank, health_consensus, reputation) and sized by shard_codec. \
See docs/SIMULATION.md."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Simulate one network and print a table of results.
    Run(RunArgs),
    /// Run one parameter at several values; write CSV, JSON and SVG charts.
    Sweep(SweepArgs),
    /// Run the model with a real benchmark's parameters and compare times.
    Compare(CompareArgs),
    /// Check the statistical heartbeat model against every single heartbeat.
    HeartbeatCheck(HeartbeatCheckArgs),
}

fn parse_strategy(s: &str) -> Result<CustodyStrategy, String> {
    s.parse::<CustodyStrategy>().map_err(|_| {
        format!("unknown strategy {s:?} (expected full_replica, erasure_coded or threshold_split)")
    })
}

/// Flags shared by `run` and `sweep`.
#[derive(Args, Clone)]
struct SimArgs {
    /// Nodes registered at the start.
    #[arg(long, default_value_t = 1_000)]
    nodes: u32,
    /// Simulated days.
    #[arg(long, default_value_t = 365.0)]
    days: f64,
    /// Contents to keep (default: one per node).
    #[arg(long)]
    items: Option<u32>,
    /// Bytes per content.
    #[arg(long, default_value_t = 100_000_000)]
    content_bytes: u64,
    /// Custody strategy: full_replica, erasure_coded or threshold_split.
    #[arg(long, default_value = "erasure_coded", value_parser = parse_strategy)]
    strategy: CustodyStrategy,
    /// Shards needed to restore (default 3, or 1 for full_replica).
    #[arg(long)]
    k: Option<u32>,
    /// Shards per content (default 6, or 3 for full_replica).
    #[arg(long)]
    n: Option<u32>,
    #[command(flatten)]
    timing: Timing,
    /// Independent detectors (random phases).
    #[arg(long, default_value_t = 1)]
    detectors: u32,
    /// Sidecar reconciliation period (repair retries), seconds.
    #[arg(long, default_value_t = 30)]
    reconcile_secs: i64,
    /// Probability a node dies for good within a 30-day month.
    #[arg(long, default_value_t = 0.01)]
    monthly_failure_rate: f64,
    /// New nodes per month as a share of the initial count (default: replace failures).
    #[arg(long)]
    join_rate: Option<f64>,
    /// Transient outages per node per month.
    #[arg(long, default_value_t = 2.0)]
    transient_rate: f64,
    /// Median outage length, seconds (lognormal).
    #[arg(long, default_value_t = 60.0)]
    transient_median_secs: f64,
    /// Lognormal sigma of outage lengths.
    #[arg(long, default_value_t = 1.5)]
    transient_sigma: f64,
    /// Probability a heartbeat is lost.
    #[arg(long, default_value_t = 0.01)]
    message_loss: f64,
    /// Attempts per health probe.
    #[arg(long, default_value_t = 3)]
    probe_retries: u32,
    /// Share of nodes attesting "failed" about every peer.
    #[arg(long, default_value_t = 0.0)]
    byzantine_share: f64,
    /// heartbeat, heartbeat-and-consensus or heartbeat-or-consensus.
    #[arg(long, default_value = "heartbeat")]
    detection: DetectionMode,
    /// Attesters per consensus evaluation.
    #[arg(long, default_value_t = 5)]
    attesters: u32,
    /// Routine health audits per node per day.
    #[arg(long, default_value_t = 1.0)]
    audits_per_node_day: f64,
    /// Consensus confidence needed to penalise (and, in or-mode, declare).
    #[arg(long, default_value_t = 0.9)]
    min_confidence: f64,
    /// Seconds for a penalty's cost to halve (0: never forgiven).
    #[arg(long, default_value_t = registry_core::reputation::DEFAULT_PENALTY_HALF_LIFE_SECS)]
    penalty_half_life_secs: i64,
    /// Shard source upload, Mbit/s.
    #[arg(long, default_value_t = 20.0)]
    uplink_mbps: f64,
    /// Repairing node download, Mbit/s.
    #[arg(long, default_value_t = 100.0)]
    downlink_mbps: f64,
    /// Fixed cost per repair, seconds.
    #[arg(long, default_value_t = 5.0)]
    repair_setup_secs: f64,
    /// Candidates sampled per placement, then ranked by registry_core::selection::rank.
    #[arg(long, default_value_t = 64)]
    candidate_sample: u32,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl SimArgs {
    fn config(&self) -> Result<SimConfig, SimError> {
        let replica = self.strategy == CustodyStrategy::FullReplica;
        let cfg = SimConfig {
            nodes: self.nodes,
            days: self.days,
            items: self.items.unwrap_or(self.nodes),
            content_bytes: self.content_bytes,
            strategy: self.strategy,
            k: self.k.unwrap_or(if replica { 1 } else { 3 }),
            n: self.n.unwrap_or(if replica { 3 } else { 6 }),
            heartbeat_secs: self.timing.heartbeat_secs,
            window_secs: self.timing.window_secs,
            grace_secs: self.timing.grace_secs,
            detect_secs: self.timing.detect_secs,
            detectors: self.detectors,
            reconcile_secs: self.reconcile_secs,
            monthly_failure_rate: self.monthly_failure_rate,
            join_rate: self.join_rate,
            transient_rate: self.transient_rate,
            transient_median_secs: self.transient_median_secs,
            transient_sigma: self.transient_sigma,
            message_loss: self.message_loss,
            probe_retries: self.probe_retries,
            byzantine_share: self.byzantine_share,
            detection: self.detection,
            attesters: self.attesters,
            audits_per_node_day: self.audits_per_node_day,
            min_confidence: self.min_confidence,
            penalty_half_life_secs: self.penalty_half_life_secs,
            uplink_mbps: self.uplink_mbps,
            downlink_mbps: self.downlink_mbps,
            repair_setup_secs: self.repair_setup_secs,
            candidate_sample: self.candidate_sample,
            seed: self.seed,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    sim: SimArgs,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct SweepArgs {
    /// byzantine-share, grace-secs, heartbeat-secs, k-n, monthly-failure-rate,
    /// message-loss or transient-rate.
    #[arg(long)]
    param: SweepParam,
    /// Comma-separated values (default: a built-in range). k-n takes
    /// `k-n` or `strategy:k-n`.
    #[arg(long, value_delimiter = ',')]
    values: Vec<String>,
    /// Where to write CSV, JSON and SVG files.
    #[arg(long, default_value = "docs/img")]
    out_dir: PathBuf,
    /// File stem (default: the parameter name).
    #[arg(long)]
    name: Option<String>,
    /// Points run in parallel.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// Benchmark report written by `cargo xtask bench`.
    #[arg(long)]
    bench: PathBuf,
    /// Independent kill trials.
    #[arg(long, default_value_t = 400)]
    trials: u32,
    /// Detectors (default: every surviving node, as every sidecar detects).
    #[arg(long)]
    detectors: Option<u32>,
    /// Shard source upload in the benchmark, Mbit/s.
    #[arg(long, default_value_t = 1_000.0)]
    uplink_mbps: f64,
    /// Repairing node download in the benchmark, Mbit/s.
    #[arg(long, default_value_t = 1_000.0)]
    downlink_mbps: f64,
    /// Fixed cost per repair, seconds.
    #[arg(long, default_value_t = 5.0)]
    repair_setup_secs: f64,
    /// Heartbeat loss in the benchmark.
    #[arg(long, default_value_t = 0.0)]
    message_loss: f64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the comparison as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The detection timings, the same flags for every subcommand that takes them.
#[derive(Args, Clone, Copy)]
struct Timing {
    /// Heartbeat interval, seconds.
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: i64,
    /// Failure window (silence before suspicion), seconds.
    #[arg(long, default_value_t = 60)]
    window_secs: i64,
    /// Grace period after the window before a node is declared failed, seconds.
    #[arg(long, default_value_t = 120)]
    grace_secs: i64,
    /// Period of each detector's run, seconds.
    #[arg(long, default_value_t = 15)]
    detect_secs: i64,
}

#[derive(Args)]
struct HeartbeatCheckArgs {
    /// Heartbeat loss probability (high, so that false declarations are countable).
    #[arg(long, default_value_t = 0.3)]
    loss: f64,
    #[command(flatten)]
    timing: Timing,
    /// Nodes.
    #[arg(long, default_value_t = 1_000)]
    nodes: u32,
    /// Simulated seconds per node.
    #[arg(long, default_value_t = 1_000_000.0)]
    horizon_secs: f64,
    /// Deaths simulated for the detection-time check.
    #[arg(long, default_value_t = 20_000)]
    trials: u32,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn write_json(path: &PathBuf, value: &impl serde::Serialize) -> Result<(), SimError> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).map_err(|e| SimError::io(path, e))
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{bar:40}] {percent:>3}% of simulated time, {elapsed} elapsed, eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Fails now, not after minutes of simulation, if `path` cannot be written.
fn check_writable(path: &PathBuf) -> Result<(), SimError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|_| ())
        .map_err(|e| SimError::io(path, e))
}

fn run(a: RunArgs) -> Result<(), SimError> {
    let cfg = a.sim.config()?;
    if let Some(p) = &a.json {
        check_writable(p)?;
    }
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(
            Some((cfg.days * 86_400.0) as u64),
            ProgressDrawTarget::stderr(),
        )
    };
    bar.set_style(bar_style());
    bar.set_message(format!("{} nodes x {} days", cfg.nodes, cfg.days));
    let started = Instant::now();
    let mut s = simulator::Simulation::new(&cfg)?;
    let setup = started.elapsed().as_secs_f64();
    let mut r = s.run(Some(&bar));
    bar.finish_and_clear();
    r.wall_secs += setup;
    print!("{}", report::table(&r));
    println!(
        "elapsed: {:.1} s wall ({:.1} s setup + {:.1} s simulation)",
        started.elapsed().as_secs_f64(),
        setup,
        r.wall_secs - setup
    );
    if let Some(p) = &a.json {
        write_json(p, &r)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn sweep_cmd(a: SweepArgs) -> Result<(), SimError> {
    let base = a.sim.config()?;
    std::fs::create_dir_all(&a.out_dir).map_err(|e| SimError::io(&a.out_dir, e))?;
    let values = if a.values.is_empty() {
        a.param.default_values()
    } else {
        a.values.clone()
    };
    let multi = if a.quiet {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    };
    let points = sweep::run_sweep(a.param, &values, &base, a.jobs, &multi)?;
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| a.param.as_str().to_string());
    let files = sweep::write_outputs(a.param, &name, &points, &a.out_dir)?;
    print!("{}", sweep::summary(a.param, &points));
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn compare_cmd(a: CompareArgs) -> Result<(), SimError> {
    let bench = compare::load_bench(&a.bench)?;
    if let Some(p) = &a.json {
        check_writable(p)?;
    }
    let o = CompareOptions {
        trials: a.trials,
        detectors: a.detectors,
        uplink_mbps: a.uplink_mbps,
        downlink_mbps: a.downlink_mbps,
        repair_setup_secs: a.repair_setup_secs,
        message_loss: a.message_loss,
        seed: a.seed,
    };
    let bar = ProgressBar::with_draw_target(Some(a.trials as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("trials [{bar:40}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let c = compare::compare(&bench, &o, Some(&bar))?;
    bar.finish_and_clear();
    print!("{}", compare::table(&c));
    if let Some(p) = &a.json {
        write_json(p, &c)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn heartbeat_check(a: HeartbeatCheckArgs) -> Result<(), SimError> {
    let bad = |m: &str| Err(SimError::Config(m.to_string()));
    if !(a.loss >= 0.0 && a.loss < 1.0) {
        return bad("--loss must be within 0..1");
    }
    if a.timing.heartbeat_secs < 1
        || a.timing.detect_secs < 1
        || a.timing.window_secs < 1
        || a.timing.grace_secs < 0
    {
        return bad("timings must be positive (grace may be 0)");
    }
    if a.timing.heartbeat_secs > 3_600
        || a.timing.detect_secs > 3_600
        || a.timing.window_secs > 86_400
    {
        return bad("--heartbeat-secs and --detect-secs at most 3600, --window-secs at most 86400");
    }
    if a.timing.window_secs < a.timing.heartbeat_secs {
        return bad("--window-secs must be at least --heartbeat-secs");
    }
    if a.trials == 0 || a.trials > 10_000_000 {
        return bad("--trials must be 1..=10000000");
    }
    if a.timing.grace_secs > 604_800 {
        return bad("--grace-secs at most 604800");
    }
    if !(a.horizon_secs > 0.0 && a.horizon_secs <= 1e9) || a.nodes == 0 || a.nodes > 100_000 {
        return bad("--horizon-secs must be in (0, 1e9] and --nodes in 1..=100000");
    }
    // The brute force visits every heartbeat and detector tick.
    let steps = a.nodes as f64
        * a.horizon_secs
        * (1.0 / a.timing.heartbeat_secs as f64 + 1.0 / a.timing.detect_secs as f64);
    if steps > 1e11 {
        return bad("--nodes x --horizon-secs too large for the brute force (over 1e11 heartbeats and ticks)");
    }
    let h = hbm::HeartbeatParams {
        interval_secs: a.timing.heartbeat_secs,
        policy: LivenessPolicy {
            failure_window_secs: a.timing.window_secs,
            grace_secs: a.timing.grace_secs,
        },
        loss: a.loss,
        detect_secs: a.timing.detect_secs,
    };
    let t = Instant::now();
    let brute = hbm::brute_force_false_declarations(
        h,
        a.nodes,
        a.horizon_secs,
        &mut ChaCha8Rng::seed_from_u64(a.seed),
    );
    let tb = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let stat = hbm::statistical_false_declarations(
        h,
        a.nodes,
        a.horizon_secs,
        &mut ChaCha8Rng::seed_from_u64(a.seed.wrapping_add(1)),
    );
    let ts = t.elapsed().as_secs_f64();
    let expected = hbm::expected_false_declarations_per_sec(h) * a.nodes as f64 * a.horizon_secs;
    let beats = a.nodes as f64 * a.horizon_secs / a.timing.heartbeat_secs as f64;
    println!(
        "loss {}, heartbeat {} s, window {} s, grace {} s, detect {} s; {} nodes x {} s ({} heartbeats)",
        a.loss,
        a.timing.heartbeat_secs,
        a.timing.window_secs,
        a.timing.grace_secs,
        a.timing.detect_secs,
        a.nodes,
        a.horizon_secs,
        report::count(beats)
    );
    println!(
        "minimum loss run that can be declared: {} heartbeats",
        hbm::min_run_for_failure(a.timing.heartbeat_secs, h.policy)
    );
    println!("{:<40} {:>12} {:>10}", "", "declared", "time");
    println!(
        "{:<40} {:>12} {:>9.2}s",
        "brute force (every heartbeat)", brute, tb
    );
    println!(
        "{:<40} {:>12} {:>9.2}s",
        "statistical model (as simulated)", stat, ts
    );
    println!("{:<40} {:>12.1}", "closed form", expected);
    let sd = expected.sqrt().max(1.0);
    println!(
        "model vs brute force: {:+.2}% ({:+.1} sd); brute force vs formula: {:+.1} sd",
        (stat as f64 / (brute as f64).max(1.0) - 1.0) * 100.0,
        (stat as f64 - brute as f64) / (sd * std::f64::consts::SQRT_2),
        (brute as f64 - expected) / sd
    );

    // Detection of dead nodes: trailing lost beats before the death.
    let t = Instant::now();
    let brute = hbm::brute_force_detection_secs(
        h,
        a.trials,
        &mut ChaCha8Rng::seed_from_u64(a.seed.wrapping_add(2)),
    );
    let tb = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let stat = hbm::statistical_detection_secs(
        h,
        a.trials,
        &mut ChaCha8Rng::seed_from_u64(a.seed.wrapping_add(3)),
    );
    let ts = t.elapsed().as_secs_f64();
    println!();
    println!(
        "death -> declared failed, {} deaths each (seconds):",
        report::count(a.trials as f64)
    );
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "", "mean", "p50", "p99", "max", "time"
    );
    for (name, v, secs) in [
        ("brute force (every heartbeat)", &brute, tb),
        ("statistical model (as simulated)", &stat, ts),
    ] {
        let mut f: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        let s = simulator::stats::Summary::of(&mut f);
        println!(
            "{:<40} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.2}s",
            name, s.mean, s.p50, s.p99, s.max, secs
        );
    }
    let n = a.trials as f64;
    println!(
        "Kolmogorov-Smirnov distance {:.4} (1% critical value {:.4})",
        hbm::ks_distance(&brute, &stat),
        1.628 * (2.0 / n).sqrt()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run(a) => run(a),
        Cmd::Sweep(a) => sweep_cmd(a),
        Cmd::Compare(a) => compare_cmd(a),
        Cmd::HeartbeatCheck(a) => heartbeat_check(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
