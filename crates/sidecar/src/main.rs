//! `elohim-sidecar`: the node agent of an Elohim home rack.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use elohim_sidecar::conductor::{Connection, EmbeddedConductor, EmbeddedSettings};
use elohim_sidecar::rendezvous::{is_listening, Rendezvous};
use elohim_sidecar::{APP_ID, COORDINATOR, ROLE};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "elohim-sidecar", version, about = "Node agent of an Elohim home rack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the node: an embedded conductor with the hApp installed.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Where the node keeps its conductor data and keystore.
    #[arg(long, env = "ELOHIM_DATA_DIR", default_value = "elohim-data")]
    data_dir: PathBuf,
    /// The packed hApp to install on first start.
    #[arg(long, env = "ELOHIM_HAPP", default_value = "workdir/elohim_orchestrator.happ")]
    happ: PathBuf,
    /// Admin websocket port on 127.0.0.1 (0 picks a free port).
    #[arg(long, env = "ELOHIM_ADMIN_PORT", default_value_t = 0)]
    admin_port: u16,
    /// Bootstrap/relay address. The first node on a machine serves it there;
    /// later nodes find it already listening and join it.
    #[arg(long, env = "ELOHIM_RENDEZVOUS", default_value = "127.0.0.1:45555")]
    rendezvous: SocketAddr,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,holochain=warn,kitsune2=warn,iroh=warn,wasmer=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).await,
    };
    if let Err(e) = result {
        eprintln!("elohim-sidecar: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: RunArgs) -> Result<()> {
    anyhow::ensure!(
        args.happ.exists(),
        "hApp bundle {} not found: run `cargo xtask pack` or pass --happ",
        args.happ.display()
    );
    let rendezvous = if is_listening(args.rendezvous).await {
        println!("joining the bootstrap/relay already at http://{}", args.rendezvous);
        None
    } else {
        let r = Rendezvous::start(args.rendezvous).await?;
        println!("serving bootstrap/relay at {}", r.url());
        Some(r)
    };
    let network_url = format!("http://{}", args.rendezvous);

    let conductor = EmbeddedConductor::start(&EmbeddedSettings {
        data_dir: args.data_dir.clone(),
        admin_port: args.admin_port,
        network_url,
    })
    .await?;
    let admin_addr: SocketAddr = ([127, 0, 0, 1], conductor.admin_port()).into();
    let conn = Connection::open(admin_addr, &args.happ, APP_ID, ROLE)
        .await
        .context("connecting to the embedded conductor")?;
    let node_id: String = conn
        .call(COORDINATOR, "derive_node_id", "node")
        .await
        .context("asking the DNA for this node's id")?;

    println!("embedded conductor running, data in {}", args.data_dir.display());
    println!("  admin websocket: ws://{admin_addr}");
    println!("  app websocket:   ws://127.0.0.1:{}", conn.app_port);
    println!("  agent:           {}", conn.agent());
    println!("  node id:         {node_id}");
    println!("press Ctrl-C to stop");

    tokio::signal::ctrl_c().await?;
    println!("stopping");
    drop(conn);
    conductor.shutdown().await;
    drop(rendezvous);
    Ok(())
}
