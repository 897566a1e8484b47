//! The running node: HTTP server, heartbeats, DNA signals, failure
//! detection and reconciliation, as one unit the binary and tests start.

use crate::agent::NodeAgent;
use crate::custody::{Custody, CustodyError};
use crate::http::{router, AppState};
use crate::recovery::Recovery;
use node_registry_integrity::{DetectionInput, RegistrySignal, SuspiciousNode};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// A running node.
pub struct Daemon {
    /// The node agent.
    pub agent: Arc<NodeAgent>,
    /// The custody engine.
    pub custody: Arc<Custody>,
    /// The recovery engine.
    pub recovery: Arc<Recovery>,
    /// Where the HTTP server listens.
    pub http_addr: SocketAddr,
    /// The local API token.
    pub api_token: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Reads the local API token kept in the data directory, creating a random
/// one (owner-readable only) on first start. Local tools present it; peers
/// never need it.
pub fn api_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("api-token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        _ => {}
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &token)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(tmp, path)?;
    Ok(token)
}

fn every(
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    span: &tracing::Span,
    mut f: impl FnMut() -> futures_util::future::BoxFuture<'static, ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                f().await;
            }
        }
        .instrument(span.clone()),
    )
}

impl Daemon {
    /// Starts serving on `listener` and runs every loop of the node.
    pub async fn start(
        agent: NodeAgent,
        listener: tokio::net::TcpListener,
    ) -> Result<Daemon, CustodyError> {
        let http_addr = listener.local_addr()?;
        agent.set_endpoint(format!("http://{http_addr}"));
        let agent = Arc::new(agent);
        // Every log line of this node's loops names the node, so the logs of
        // several nodes in one process (tests, benchmarks) can be told apart.
        let span = tracing::info_span!(
            "node",
            id = %agent.node_id.chars().take(12).collect::<String>()
        );
        let data_dir = agent.config().conductor.data_dir.clone();
        let api_token = api_token(&data_dir)?;
        let custody = Arc::new(Custody::open(agent.clone())?);
        let recovery = Arc::new(
            Recovery::open(custody.clone())
                .map_err(|e| CustodyError::Io(std::io::Error::other(e.to_string())))?,
        );
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let app = router(AppState {
            agent: agent.clone(),
            custody: custody.clone(),
            recovery: recovery.clone(),
            shutdown: shutdown.clone(),
            api_token: api_token.clone(),
        });
        let mut server_rx = rx.clone();
        tasks.push(tokio::spawn(
            async move {
                // Connection info lets the local pages refuse non-loopback peers.
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = server_rx.wait_for(|s| *s).await;
                    })
                    .await;
            }
            .instrument(span.clone()),
        ));

        {
            let agent = agent.clone();
            let rx = rx.clone();
            tasks.push(tokio::spawn(
                async move { agent.run(rx).await }.instrument(span.clone()),
            ));
        }

        // DNA signals (ReplicateContent, DisasterRecoveryFailed).
        let (sig_tx, mut sig_rx) = tokio::sync::mpsc::unbounded_channel::<RegistrySignal>();
        if let Ok(conn) = agent.connection().await {
            conn.app
                .on_signal(move |signal| {
                    if let holochain_types::signal::Signal::App { signal, .. } = signal {
                        if let Ok(s) = signal.into_inner().decode::<RegistrySignal>() {
                            let _ = sig_tx.send(s);
                        }
                    }
                })
                .await;
        }
        {
            let custody = custody.clone();
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(
                async move {
                    loop {
                        tokio::select! {
                            s = sig_rx.recv() => match s {
                                Some(s) => custody.on_signal(s).await,
                                None => return,
                            },
                            _ = async { rx.wait_for(|s| *s).await.map(|_| ()) } => return,
                        }
                    }
                }
                .instrument(span.clone()),
            ));
        }

        let cfg = agent.config().custody.clone();
        let policy = DetectionInput {
            failure_window_secs: Some(cfg.failure_window_secs),
            grace_secs: Some(cfg.grace_secs),
        };
        {
            let custody = custody.clone();
            tasks.push(every(
                Duration::from_secs(cfg.detect_interval_secs),
                rx.clone(),
                &span,
                move || {
                    let custody = custody.clone();
                    Box::pin(async move {
                        if let Err(e) = custody.detect_and_repair(policy).await {
                            tracing::warn!("failure detection: {e}");
                        }
                    })
                },
            ));
        }
        {
            let custody = custody.clone();
            tasks.push(every(
                Duration::from_secs(cfg.reconcile_interval_secs),
                rx.clone(),
                &span,
                move || {
                    let custody = custody.clone();
                    Box::pin(async move {
                        match custody.reconcile().await {
                            Ok(r) if !r.failed.is_empty() => {
                                tracing::warn!("reconcile: {:?}", r.failed)
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!("reconcile: {e}"),
                        }
                    })
                },
            ));
        }
        let peers_cfg = agent.config().peers.clone();
        {
            let agent = agent.clone();
            let round = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            tasks.push(every(
                Duration::from_secs(peers_cfg.attest_interval_secs),
                rx.clone(),
                &span,
                move || {
                    let agent = agent.clone();
                    let r = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let count = peers_cfg.attest_peers as usize;
                    Box::pin(async move {
                        if let Err(e) = crate::peers::attest_round(&agent, r, count).await {
                            tracing::debug!("attestation round: {e}");
                        }
                    })
                },
            ));
        }
        {
            let agent = agent.clone();
            tasks.push(every(
                Duration::from_secs(peers_cfg.byzantine_scan_interval_secs),
                rx.clone(),
                &span,
                move || {
                    let agent = agent.clone();
                    Box::pin(async move {
                        match agent
                            .call::<_, Vec<SuspiciousNode>>("detect_byzantine_attackers", ())
                            .await
                        {
                            Ok(found) if !found.is_empty() => {
                                tracing::warn!("penalised: {found:?}")
                            }
                            Ok(_) => {}
                            Err(e) => tracing::debug!("byzantine scan: {e}"),
                        }
                    })
                },
            ));
        }
        {
            let agent = agent.clone();
            tasks.push(every(
                Duration::from_secs(peers_cfg.vote_interval_secs),
                rx.clone(),
                &span,
                move || {
                    let agent = agent.clone();
                    Box::pin(async move {
                        if let Err(e) = crate::peers::vote_round(&agent).await {
                            tracing::debug!("voting: {e}");
                        }
                    })
                },
            ));
        }
        Ok(Daemon {
            agent,
            custody,
            recovery,
            http_addr,
            api_token,
            shutdown,
            tasks,
        })
    }

    /// A handle that stops the daemon when set to true.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Waits until something (e.g. `/api/leave`) asks the daemon to stop.
    pub async fn stopped(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Stops every loop and the server.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for mut t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(10), &mut t)
                .await
                .is_err()
            {
                // A stuck task (e.g. an upload that never ends) is cut off;
                // whatever it was writing is discarded by the store.
                t.abort();
                let _ = t.await;
            }
        }
    }
}
