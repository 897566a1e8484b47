//! `elohim-sidecar`: the node agent of an Elohim home rack.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use elohim_sidecar::bootstrap::{is_listening, BootstrapServer};
use elohim_sidecar::config::{ConductorMode, Config};
use elohim_sidecar::custody::{PublishReport, PublishRequest, RetrieveReport};
use elohim_sidecar::daemon::Daemon;
use elohim_sidecar::http::{FetchRequest, StreamLine, H_TOKEN};
use elohim_sidecar::node::agent::{NodeAgent, StatusReport};
use elohim_sidecar::registry::conductor::{EmbeddedConductor, EmbeddedSettings};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "elohim-sidecar",
    version,
    about = "Node agent of an Elohim home rack"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented default config file.
    Init {
        /// Where to write it.
        #[arg(long, default_value = "elohim.toml")]
        config: PathBuf,
    },
    /// Run the node: conductor, registration, heartbeats, local HTTP server.
    Run(Overrides),
    /// Show this node's registration, last heartbeat and health from the DHT.
    Status(Overrides),
    /// Count every record this node wrote to its chains, by kind, against
    /// the write budget (200 a day in steady state).
    Records(Overrides),
    /// Publish a file: encode it into shards and hand them to custodians.
    Store {
        #[command(flatten)]
        overrides: Overrides,
        /// The file to publish.
        file: PathBuf,
        /// full_replica, erasure_coded or threshold_split.
        #[arg(long, default_value = "full_replica")]
        strategy: String,
        /// Shards needed to restore (erasure_coded, threshold_split).
        #[arg(long)]
        k: Option<u32>,
        /// Shards (and custodians) in total.
        #[arg(long)]
        n: Option<u32>,
        /// Preferred custodian region.
        #[arg(long = "to-region")]
        to_region: Option<String>,
        /// Lowest custodian tier.
        #[arg(long)]
        min_tier: Option<String>,
        /// intimate, private or public.
        #[arg(long, default_value = "private")]
        reach: String,
    },
    /// Get content back from its custodians into a file.
    Fetch {
        #[command(flatten)]
        overrides: Overrides,
        /// The content id `store` printed.
        content_id: String,
        /// Where to write it.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Show the recovery code that unlocks this person's content on a new
    /// node if this one is lost. Write it down and keep it off this machine.
    RecoveryCode(Overrides),
    /// Deregister this node: it leaves discovery and custody.
    Leave {
        #[command(flatten)]
        overrides: Overrides,
        /// Why you leave (kept in the logs).
        #[arg(long, default_value = "left by its owner")]
        reason: String,
    },
}

/// Settings given on the command line or in ELOHIM_* variables; they win
/// over the config file.
#[derive(clap::Args, Clone)]
struct Overrides {
    /// Config file (read if it exists).
    #[arg(long, env = "ELOHIM_CONFIG", default_value = "elohim.toml")]
    config: PathBuf,
    /// Data directory.
    #[arg(long, env = "ELOHIM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Node label (the node id is "<label>-<key suffix>").
    #[arg(long, env = "ELOHIM_LABEL")]
    label: Option<String>,
    /// Region.
    #[arg(long, env = "ELOHIM_REGION")]
    region: Option<String>,
    /// Display name.
    #[arg(long, env = "ELOHIM_DISPLAY_NAME")]
    display_name: Option<String>,
    /// The packed hApp.
    #[arg(long, env = "ELOHIM_HAPP")]
    happ: Option<PathBuf>,
    /// Embedded conductor's admin port (0 picks one).
    #[arg(long, env = "ELOHIM_ADMIN_PORT")]
    admin_port: Option<u16>,
    /// Use an existing conductor at this admin websocket address.
    #[arg(long, env = "ELOHIM_EXTERNAL_ADMIN")]
    external_admin: Option<SocketAddr>,
    /// Bootstrap/relay address.
    #[arg(long, env = "ELOHIM_RENDEZVOUS")]
    rendezvous: Option<SocketAddr>,
    /// Local HTTP server address.
    #[arg(long, env = "ELOHIM_HTTP")]
    http: Option<SocketAddr>,
    /// Seconds between heartbeats.
    #[arg(long, env = "ELOHIM_HEARTBEAT_SECS")]
    heartbeat_secs: Option<u64>,
    /// Opt out of custody.
    #[arg(long)]
    opt_out: bool,
}

impl Overrides {
    fn resolve(&self) -> Result<Config> {
        let mut c = if self.config.exists() {
            Config::load(&self.config)?
        } else {
            Config::default()
        };
        if let Some(v) = &self.data_dir {
            c.conductor.data_dir = v.clone();
        }
        if let Some(v) = &self.label {
            c.node.label = v.clone();
        }
        if let Some(v) = &self.region {
            c.node.region = v.clone();
        }
        if let Some(v) = &self.display_name {
            c.node.display_name = v.clone();
        }
        if let Some(v) = &self.happ {
            c.conductor.happ = v.clone();
        }
        if let Some(v) = self.admin_port {
            c.conductor.admin_port = v;
        }
        if let Some(v) = self.external_admin {
            c.conductor.mode = ConductorMode::External;
            c.conductor.admin_addr = Some(v);
        }
        if let Some(v) = self.rendezvous {
            c.network.rendezvous = v;
        }
        if let Some(v) = self.http {
            c.http.listen = v;
        }
        if let Some(v) = self.heartbeat_secs {
            c.heartbeat.interval_secs = v;
        }
        if self.opt_out {
            c.participation.custodian_opt_in = false;
        }
        c.check()?;
        Ok(c)
    }
}

/// Written to the data directory while the daemon runs, so `status` and
/// `leave` can reach it.
#[derive(Serialize, Deserialize)]
struct RuntimeInfo {
    pid: u32,
    http: SocketAddr,
    node_id: String,
}

fn runtime_path(data_dir: &Path) -> PathBuf {
    data_dir.join("sidecar-runtime.json")
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // A node with no peers yet (the first of a network, or one
                // offline) fails to publish every op and the conductor
                // warns about each, a hundred times a minute; it keeps them
                // and publishes once peers come, so that warning says
                // nothing a user can act on.
                "info,holochain=warn,kitsune2=warn,kitsune2_core=warn,iroh=warn,wasmer=warn,\
                 holochain::core::workflow::publish_dht_ops_workflow=error"
                    .into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init { config } => Config::write_default(&config)
            .map(|()| println!("wrote {}", config.display()))
            .map_err(Into::into),
        Command::Run(o) => match o.resolve() {
            Ok(c) => run(c, o.config.clone()).await,
            Err(e) => Err(e),
        },
        Command::Status(o) => match o.resolve() {
            Ok(c) => status(c).await,
            Err(e) => Err(e),
        },
        Command::Records(o) => match o.resolve() {
            Ok(c) => records(c).await,
            Err(e) => Err(e),
        },
        Command::RecoveryCode(o) => match o.resolve() {
            Ok(c) => recovery_code(&c),
            Err(e) => Err(e),
        },
        Command::Leave { overrides, reason } => match overrides.resolve() {
            Ok(c) => leave(c, &reason).await,
            Err(e) => Err(e),
        },
        Command::Store {
            overrides,
            file,
            strategy,
            k,
            n,
            to_region,
            min_tier,
            reach,
        } => match overrides.resolve() {
            Ok(c) => {
                store(
                    c,
                    PublishRequest {
                        path: std::fs::canonicalize(&file).unwrap_or(file),
                        strategy: Some(strategy),
                        k,
                        n,
                        region: to_region,
                        min_tier,
                        reach: Some(reach),
                    },
                )
                .await
            }
            Err(e) => Err(e),
        },
        Command::Fetch {
            overrides,
            content_id,
            output,
        } => match overrides.resolve() {
            Ok(c) => fetch(c, &content_id, output).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        eprintln!("elohim-sidecar: error: {e:#}");
        std::process::exit(1);
    }
}

/// A conductor for this process: embedded (with its rendezvous) or external.
struct Node {
    agent: Arc<NodeAgent>,
    embedded: Option<EmbeddedConductor>,
    _rendezvous: Option<BootstrapServer>,
}

impl Node {
    async fn start(config: Config, quiet: bool) -> Result<Node> {
        anyhow::ensure!(
            config.conductor.happ.exists(),
            "hApp bundle {} not found: run `cargo xtask pack` or set conductor.happ",
            config.conductor.happ.display()
        );
        let (admin_addr, embedded, rendezvous) = match config.conductor.mode {
            ConductorMode::External => {
                let addr = config
                    .conductor
                    .admin_addr
                    .context("conductor.admin_addr")?;
                (addr, None, None)
            }
            ConductorMode::Embedded => {
                let rv_addr = config.network.rendezvous;
                let rendezvous = if is_listening(rv_addr).await {
                    if !quiet {
                        println!("joining the bootstrap/relay at http://{rv_addr}");
                    }
                    None
                } else if config.network.serve_rendezvous {
                    let r = BootstrapServer::start(rv_addr).await?;
                    if !quiet {
                        println!("serving bootstrap/relay at {}", r.url());
                    }
                    Some(r)
                } else {
                    bail!("nothing listens at network.rendezvous {rv_addr} and serve_rendezvous is false");
                };
                let conductor = EmbeddedConductor::start(&EmbeddedSettings {
                    data_dir: config.conductor.data_dir.clone(),
                    admin_port: config.conductor.admin_port,
                    network_url: format!("http://{rv_addr}"),
                })
                .await?;
                let addr: SocketAddr = ([127, 0, 0, 1], conductor.admin_port()).into();
                (addr, Some(conductor), rendezvous)
            }
        };
        let agent = NodeAgent::connect(config, admin_addr)
            .await
            .context("connecting to the conductor")?;
        Ok(Node {
            agent: Arc::new(agent),
            embedded,
            _rendezvous: rendezvous,
        })
    }

    async fn stop(self) {
        drop(self.agent);
        if let Some(c) = self.embedded {
            c.shutdown().await;
        }
    }
}

async fn run(config: Config, config_file: PathBuf) -> Result<()> {
    let http_addr = config.http.listen;
    let data_dir = config.conductor.data_dir.clone();
    let node = Node::start(config, false).await?;
    let Node {
        agent,
        embedded,
        _rendezvous,
    } = node;
    let agent = Arc::try_unwrap(agent).map_err(|_| anyhow::anyhow!("agent still shared"))?;
    // The settings page saves participation changes back to this file.
    agent.set_config_file(config_file);
    let cap = agent.capacity().clone();
    println!("node {} (agent {})", agent.node_id, agent.agent());
    println!(
        "  capacity: {} cores, {:.1} GB memory, {:.1} GB free storage, {} Mbps ({})",
        cap.cpu_cores, cap.memory_gb, cap.storage_gb, cap.bandwidth_mbps, cap.bandwidth_source
    );
    let reg = agent.registration();
    println!(
        "  offering: custody {} ({:.1} GB), {} Mbps off-peak {:02}:00-{:02}:00, {}% CPU; tier {}",
        if reg.custodian_opt_in {
            "on"
        } else {
            "OFF (opted out)"
        },
        reg.max_custody_gb,
        reg.max_bandwidth_mbps,
        reg.off_peak_hours.start_hour,
        reg.off_peak_hours.end_hour,
        reg.max_cpu_percent,
        reg.steward_tier
    );
    if let Some(c) = &embedded {
        println!(
            "  embedded conductor: admin ws://127.0.0.1:{}, data in {}",
            c.admin_port(),
            data_dir.display()
        );
    }
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| {
            format!("binding the HTTP server to {http_addr} (set http.listen or --http)")
        })?;
    let daemon = Daemon::start(agent, listener).await?;
    println!(
        "  http: http://{}/metrics; shard transfers at /shards",
        daemon.http_addr
    );
    if daemon.http_addr.ip().is_loopback() || daemon.http_addr.ip().is_unspecified() {
        println!(
            "  participation settings and dashboard: http://localhost:{}/",
            daemon.http_addr.port()
        );
    }
    std::fs::write(
        runtime_path(&data_dir),
        serde_json::to_vec(&RuntimeInfo {
            pid: std::process::id(),
            http: daemon.http_addr,
            node_id: daemon.agent.node_id.clone(),
        })?,
    )?;
    println!("running; Ctrl-C stops, `elohim-sidecar leave` deregisters");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => { println!("stopping"); }
        _ = daemon.stopped() => { println!("left the network; stopping"); }
    }
    let _ = std::fs::remove_file(runtime_path(&data_dir));
    daemon.stop().await;
    if let Some(c) = embedded {
        c.shutdown().await;
    }
    drop(_rendezvous);
    Ok(())
}

/// The running daemon's HTTP address, if one answers.
async fn running_daemon(data_dir: &Path) -> Option<(SocketAddr, String)> {
    let info: RuntimeInfo =
        serde_json::from_slice(&std::fs::read(runtime_path(data_dir)).ok()?).ok()?;
    let token = std::fs::read_to_string(data_dir.join("api-token")).ok()?;
    is_listening(info.http)
        .await
        .then_some((info.http, token.trim().to_string()))
}

/// The running daemon, or an error saying how to start one.
async fn require_daemon(config: &Config) -> Result<(SocketAddr, String)> {
    running_daemon(&config.conductor.data_dir).await.with_context(|| {
        format!(
            "no running node uses data directory {}: start one with `elohim-sidecar run` (same --data-dir)",
            config.conductor.data_dir.display()
        )
    })
}

/// Reads an NDJSON answer, drawing a progress bar per phase, and returns
/// the final result.
async fn follow<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T> {
    use futures_util::StreamExt;
    use indicatif::{ProgressBar, ProgressStyle};
    let status = resp.status();
    if !status.is_success() {
        bail!("{status}: {}", resp.text().await.unwrap_or_default());
    }
    let style = ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} {elapsed}")
        .expect("valid template")
        .progress_chars("=> ");
    let mut bar: Option<(String, ProgressBar)> = None;
    let mut buf = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let parsed: StreamLine<T> =
                serde_json::from_slice(&line).context("reading the node's answer")?;
            match parsed {
                StreamLine::Progress(p) => {
                    if bar.as_ref().map(|(ph, _)| ph != &p.phase).unwrap_or(true) {
                        if let Some((_, b)) = bar.take() {
                            b.finish();
                        }
                        let b = ProgressBar::new(p.total)
                            .with_style(style.clone())
                            .with_message(p.phase.clone());
                        bar = Some((p.phase.clone(), b));
                    }
                    if let Some((_, b)) = &bar {
                        b.set_length(p.total);
                        b.set_position(p.done);
                    }
                }
                StreamLine::Result(v) => {
                    if let Some((_, b)) = bar.take() {
                        b.finish();
                    }
                    return Ok(v);
                }
                StreamLine::Error(e) => {
                    if let Some((_, b)) = bar.take() {
                        b.abandon();
                    }
                    bail!("{e}");
                }
            }
        }
    }
    bail!("the node closed the connection before answering")
}

async fn store(config: Config, req: PublishRequest) -> Result<()> {
    anyhow::ensure!(req.path.is_file(), "{} is not a file", req.path.display());
    let (http, token) = require_daemon(&config).await?;
    let resp = reqwest::Client::new()
        .post(format!("http://{http}/api/content"))
        .header(H_TOKEN, token)
        .json(&req)
        .send()
        .await?;
    let report: PublishReport = follow(resp).await?;
    if report.already_published {
        println!(
            "{} is already published as content {} ({} {}-of-{} on: {})",
            req.path.display(),
            report.content_id,
            report.strategy,
            report.k,
            report.n,
            report.custodians.join(", ")
        );
        if report.pushed == 0 && report.push_failures.is_empty() {
            println!("  every custodian holds its shard; nothing to do");
        } else {
            println!("  sent again {} shard(s) a custodian lacked", report.pushed);
        }
        for failure in &report.push_failures {
            println!("  not sent: {failure}");
        }
        return Ok(());
    }
    println!(
        "stored {} ({} bytes) as content {}",
        req.path.display(),
        report.size,
        report.content_id
    );
    println!(
        "  {} {}-of-{} on: {}",
        report.strategy,
        report.k,
        report.n,
        report.custodians.join(", ")
    );
    println!("  delivered {}/{} shards", report.pushed, report.n);
    for f in &report.push_failures {
        println!("  not yet delivered (the custodian will rebuild it): {f}");
    }
    println!(
        "fetch it back with: elohim-sidecar fetch {} -o FILE",
        report.content_id
    );
    Ok(())
}

async fn fetch(config: Config, content_id: &str, output: PathBuf) -> Result<()> {
    let (http, token) = require_daemon(&config).await?;
    let out = if output.is_absolute() {
        output
    } else {
        std::env::current_dir()?.join(output)
    };
    let resp = reqwest::Client::new()
        .post(format!("http://{http}/api/content/{content_id}/fetch"))
        .header(H_TOKEN, token)
        .json(&FetchRequest { out: out.clone() })
        .send()
        .await?;
    let report: RetrieveReport = follow(resp).await?;
    println!(
        "wrote {} ({} bytes, blake3 {} verified) from {}",
        out.display(),
        report.size,
        report.content_hash,
        report.from.join(", ")
    );
    Ok(())
}

fn print_status(r: &StatusReport) {
    println!("node {}", r.node_id);
    println!("  agent: {}", r.agent);
    match &r.registration {
        Some(reg) => println!(
            "  registered: {} in {}, tier {}, custody {} ({:.1} GB cap), updated {}",
            reg.display_name,
            reg.region,
            reg.steward_tier,
            if reg.custodian_opt_in { "on" } else { "off" },
            reg.max_custody_gb,
            reg.updated_at
        ),
        None => println!("  registered: no"),
    }
    match &r.health.latest_heartbeat {
        Some(h) => println!(
            "  presence lease: renewed {} ({}, load {:.2})",
            h.timestamp, h.status, h.current_load
        ),
        None => println!("  presence lease: none seen"),
    }
    println!(
        "  health: {:?}, suspected by {} monitors",
        r.health.liveness, r.health.suspected_by
    );
    println!(
        "  monitors' verdicts: {} from {} nodes, {} alive",
        r.health.attestations.total,
        r.health.attestations.distinct_attesters,
        r.health.attestations.successes
    );
    if let Some(w) = &r.working_agent {
        println!("  working key: {w}");
    }
    println!("  nodes in region: {}", r.region_nodes.join(", "));
    println!(
        "  could take custody now: {}",
        if r.custodians_now.is_empty() {
            "none yet".to_string()
        } else {
            r.custodians_now.join(", ")
        }
    );
}

async fn status(config: Config) -> Result<()> {
    if let Some((http, token)) = running_daemon(&config.conductor.data_dir).await {
        let report: StatusReport = reqwest::Client::new()
            .get(format!("http://{http}/api/status"))
            .header(H_TOKEN, token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        print_status(&report);
        return Ok(());
    }
    let node = Node::start(config, true).await?;
    let report = node.agent.status().await;
    node.stop().await;
    print_status(&report?);
    Ok(())
}

async fn records(config: Config) -> Result<()> {
    let report: elohim_sidecar::node::agent::ChainRecords =
        if let Some((http, token)) = running_daemon(&config.conductor.data_dir).await {
            reqwest::Client::new()
                .get(format!("http://{http}/api/records"))
                .header(H_TOKEN, token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?
        } else {
            let node = Node::start(config, true).await?;
            let report = node.agent.chain_records().await;
            node.stop().await;
            report?
        };
    for a in &report.agents {
        println!("{:<36} {:>7} records  {:?}", a.app_id, a.records, a.by_kind);
    }
    println!("all chains: {} records: {:?}", report.total, report.by_kind);
    Ok(())
}

async fn leave(config: Config, reason: &str) -> Result<()> {
    if let Some((http, token)) = running_daemon(&config.conductor.data_dir).await {
        println!("asking the running node to leave (waiting for peers to acknowledge)...");
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("http://{http}/api/leave"))
            .header(H_TOKEN, token)
            .json(&serde_json::json!({ "reason": reason }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        report_leave(
            answer["left"].as_str().unwrap_or("?"),
            answer["acknowledged"].as_bool() == Some(true),
        );
        return Ok(());
    }
    let node = Node::start(config, true).await?;
    println!("deregistering (waiting for peers to acknowledge)...");
    let result = node
        .agent
        .leave(reason, elohim_sidecar::http::LEAVE_LINGER)
        .await;
    let id = node.agent.node_id.clone();
    node.stop().await;
    report_leave(&id, result?);
    Ok(())
}

fn report_leave(node_id: &str, acknowledged: bool) {
    if acknowledged {
        println!("node {node_id} deregistered; peers acknowledged it");
    } else {
        println!(
            "node {node_id} deregistered locally, but no peer acknowledged it yet: \
             start the node again later to finish leaving, or peers will treat it as failed"
        );
    }
}

fn recovery_code(config: &Config) -> Result<()> {
    let dir = &config.conductor.data_dir;
    elohim_sidecar::datadir::private_dir(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let secret = elohim_sidecar::recovery::secret::load_or_create(dir)
        .with_context(|| format!("reading the recovery secret in {}", dir.display()))?;
    println!("{}", secret.code());
    eprintln!(
        "Keep this code somewhere safe, away from this machine. If this node is destroyed, \
         a new node with this code and your family's approval gets your private content back \
         (POST /api/recovery/sync)."
    );
    Ok(())
}
