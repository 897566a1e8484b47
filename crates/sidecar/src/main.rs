//! `elohim-sidecar`: the node agent of an Elohim home rack.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use elohim_sidecar::agent::{NodeAgent, StatusReport};
use elohim_sidecar::conductor::{EmbeddedConductor, EmbeddedSettings};
use elohim_sidecar::config::{ConductorMode, Config};
use elohim_sidecar::http::{router, AppState};
use elohim_sidecar::rendezvous::{is_listening, Rendezvous};
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
                "info,holochain=warn,kitsune2=warn,kitsune2_core=warn,iroh=warn,wasmer=warn".into()
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
            Ok(c) => run(c).await,
            Err(e) => Err(e),
        },
        Command::Status(o) => match o.resolve() {
            Ok(c) => status(c).await,
            Err(e) => Err(e),
        },
        Command::Leave { overrides, reason } => match overrides.resolve() {
            Ok(c) => leave(c, &reason).await,
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
    _rendezvous: Option<Rendezvous>,
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
                    let r = Rendezvous::start(rv_addr).await?;
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

async fn run(config: Config) -> Result<()> {
    let http_addr = config.http.listen;
    let data_dir = config.conductor.data_dir.clone();
    let node = Node::start(config, false).await?;
    let agent = node.agent.clone();
    let cap = agent.capacity();
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
    if let Some(c) = &node.embedded {
        println!(
            "  embedded conductor: admin ws://127.0.0.1:{}, data in {}",
            c.admin_port(),
            data_dir.display()
        );
    }

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| {
            format!("binding the HTTP server to {http_addr} (set http.listen or --http)")
        })?;
    let http_addr = listener.local_addr()?;
    let app = router(AppState {
        agent: agent.clone(),
        shutdown: shutdown_tx.clone(),
    });
    let mut http_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_shutdown.wait_for(|s| *s).await;
            })
            .await
    });
    println!("  http: http://{http_addr}/metrics, /api/status");
    std::fs::write(
        runtime_path(&data_dir),
        serde_json::to_vec(&RuntimeInfo {
            pid: std::process::id(),
            http: http_addr,
            node_id: agent.node_id.clone(),
        })?,
    )?;
    println!("running; Ctrl-C stops, `elohim-sidecar leave` deregisters");

    let heartbeats = {
        let agent = agent.clone();
        let rx = shutdown_rx.clone();
        tokio::spawn(async move { agent.run(rx).await })
    };
    let mut rx = shutdown_rx.clone();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => { println!("stopping"); }
        _ = rx.wait_for(|s| *s) => { println!("left the network; stopping"); }
    }
    let _ = shutdown_tx.send(true);
    let _ = heartbeats.await;
    let _ = server.await;
    let _ = std::fs::remove_file(runtime_path(&data_dir));
    drop(agent);
    node.stop().await;
    Ok(())
}

/// The running daemon's HTTP address, if one answers.
async fn running_daemon(data_dir: &Path) -> Option<SocketAddr> {
    let info: RuntimeInfo =
        serde_json::from_slice(&std::fs::read(runtime_path(data_dir)).ok()?).ok()?;
    is_listening(info.http).await.then_some(info.http)
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
            "  last heartbeat: {} ({}, load {:.2})",
            h.timestamp, h.status, h.current_load
        ),
        None => println!("  last heartbeat: none seen"),
    }
    println!("  health: {:?}", r.health.liveness);
    println!(
        "  attestations (5 min): {} from {} nodes, {} ok",
        r.health.attestations.total,
        r.health.attestations.distinct_attesters,
        r.health.attestations.successes
    );
    println!("  nodes in region: {}", r.region_nodes.join(", "));
}

async fn status(config: Config) -> Result<()> {
    if let Some(http) = running_daemon(&config.conductor.data_dir).await {
        let report: StatusReport = reqwest::get(format!("http://{http}/api/status"))
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

async fn leave(config: Config, reason: &str) -> Result<()> {
    if let Some(http) = running_daemon(&config.conductor.data_dir).await {
        println!("asking the running node to leave (waiting for peers to acknowledge)...");
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("http://{http}/api/leave"))
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
