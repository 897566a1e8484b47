//! The running node: HTTP server and every background worker, started in
//! one place ([`Daemon::start`]), as one unit the binary and tests start.

use crate::custody::{Custody, CustodyError};
use crate::http::network_view::NetworkView;
use crate::http::{router, AppState};
use crate::node::agent::NodeAgent;
use crate::node::liveness::Liveness;
use crate::recovery::Recovery;
use node_registry_integrity::zome_fns::DetectByzantineAttackers;
use node_registry_integrity::{DetectionInput, RegistrySignal};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How often the identity's app websocket is checked.
pub const LINK_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// A running node.
pub struct Daemon {
    /// The node agent.
    pub agent: Arc<NodeAgent>,
    /// The custody engine.
    pub custody: Arc<Custody>,
    /// The recovery engine.
    pub recovery: Arc<Recovery>,
    /// Beats and the monitor.
    pub liveness: Arc<Liveness>,
    /// What the dashboard shows of the network (history, queued repairs).
    pub network: Arc<NetworkView>,
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
        Ok(t) if !t.trim().is_empty() => {
            // One an older version wrote is narrowed to the owner.
            crate::datadir::make_private(&path)?;
            return Ok(t.trim().to_string());
        }
        _ => {}
    }
    let token = crate::encoding::random_hex(24)?;
    crate::datadir::write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// Runs `f` every `period` (the first time after one period) until
/// shutdown, as a named worker: its log lines carry the node's span and the
/// worker's name.
fn every(
    name: &'static str,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    span: &tracing::Span,
    mut f: impl FnMut() -> futures_util::future::BoxFuture<'static, ()> + Send + 'static,
) -> JoinHandle<()> {
    let span = tracing::info_span!(parent: span, "worker", name);
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
        .instrument(span),
    )
}

impl Daemon {
    /// Starts serving on `listener` and runs every worker of the node:
    ///
    /// | worker | every | writes |
    /// | --- | --- | --- |
    /// | `lease` (registration, working key, presence lease) | `heartbeat.interval_secs` | a lease per lease period or status change |
    /// | `beat` (to this node's monitors) | `heartbeat.interval_secs` | nothing |
    /// | `membership` (who this node's monitors are) | `peers.membership_refresh_secs` | nothing |
    /// | `monitor` (probe silent nodes, record verdicts) | 1 s | a verdict when one changes |
    /// | `suspicions` (answer suspicions of nodes heard fine) | `peers.suspicion_scan_secs` | a verdict now and then |
    /// | `detect` (declare failed nodes, repair) | `custody.detect_interval_secs` | repairs |
    /// | `reconcile` (hold every assigned shard) | `custody.reconcile_interval_secs` | retirement marks |
    /// | `provisional` (keep or let go of shards that came before their assignments) | 5 s, while there are any | nothing |
    /// | `byzantine` (penalise liars) | `peers.byzantine_scan_interval_secs` | penalties |
    /// | `votes` (regional proposals) | `peers.vote_interval_secs` | votes |
    /// | `rewards` (service summaries, acknowledgements) | `rewards.summary_interval_secs` | one event per receiver |
    /// | `history` (the dashboard's plot) | `http.history_sample_secs` | nothing |
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
        let liveness = Arc::new(Liveness::new(agent.clone()));
        let network = Arc::new(NetworkView::default());
        // The history's baseline: its first sample covers the first period.
        network.sample(&agent.metrics);
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let app = router(AppState {
            agent: agent.clone(),
            custody: custody.clone(),
            recovery: recovery.clone(),
            shutdown: shutdown.clone(),
            api_token: api_token.clone(),
            network: network.clone(),
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
            tasks.push(tokio::spawn(async move { agent.run(rx).await }.instrument(
                tracing::info_span!(parent: &span, "worker", name = "lease"),
            )));
        }

        // Signals from the identity's websocket: beats for the monitor, the
        // DNA's signals (ReplicateContent, DisasterRecoveryFailed) for
        // custody, which runs any work they start on its own tasks: this
        // loop never waits on a peer.
        {
            let metrics = agent.metrics.clone();
            let mut signals = agent.signals();
            let custody = custody.clone();
            let liveness = liveness.clone();
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(
                async move {
                    loop {
                        let signal = tokio::select! {
                            s = signals.recv() => s,
                            _ = rx.wait_for(|s| *s) => return,
                        };
                        let signal = match signal {
                            Ok(s) => s,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                metrics.signals_dropped.inc_by(n);
                                tracing::warn!("{n} signals dropped: this node fell behind");
                                continue;
                            }
                            Err(_) => return,
                        };
                        liveness.on_signal(&signal);
                        if let holochain_types::signal::Signal::App { signal, .. } = signal {
                            if let Ok(s) = signal.into_inner().decode::<RegistrySignal>() {
                                if !matches!(s, RegistrySignal::Beat { .. }) {
                                    custody.on_signal(s);
                                }
                            }
                        }
                    }
                }
                .instrument(tracing::info_span!(parent: &span, "worker", name = "signals")),
            ));
        }

        // The identity's app websocket carries the signals: one that died
        // (a restarted conductor) is noticed and reopened within a check,
        // with its signal handler, not only after a call failed on it.
        {
            let agent = agent.clone();
            tasks.push(every(
                "link",
                LINK_CHECK_INTERVAL,
                rx.clone(),
                &span,
                move || {
                    let agent = agent.clone();
                    Box::pin(async move { agent.keep_identity_link().await })
                },
            ));
        }

        let beat_every = Duration::from_secs(agent.config().heartbeat.interval_secs);
        {
            let liveness = liveness.clone();
            let metrics = agent.metrics.clone();
            tasks.push(every("beat", beat_every, rx.clone(), &span, move || {
                let liveness = liveness.clone();
                let metrics = metrics.clone();
                Box::pin(async move {
                    // Timed only when it goes somewhere: a beat to nobody
                    // would plot as a round that took no time.
                    let to_someone = !liveness.monitors().is_empty();
                    let started = std::time::Instant::now();
                    match liveness.beat().await {
                        Ok(()) if to_someone => metrics.heartbeat_round("beat", started.elapsed()),
                        Ok(()) => {}
                        Err(e) => tracing::debug!("beat: {e}"),
                    }
                })
            }));
        }
        {
            let liveness = liveness.clone();
            let period = Duration::from_secs(agent.config().peers.membership_refresh_secs);
            tasks.push(every("membership", period, rx.clone(), &span, move || {
                let liveness = liveness.clone();
                Box::pin(async move {
                    if let Err(e) = liveness.refresh_monitors().await {
                        tracing::debug!("membership: {e}");
                    }
                })
            }));
        }
        {
            let liveness = liveness.clone();
            tasks.push(every(
                "monitor",
                Duration::from_secs(1),
                rx.clone(),
                &span,
                move || {
                    liveness.tick();
                    Box::pin(async {})
                },
            ));
        }
        {
            let liveness = liveness.clone();
            let period = Duration::from_secs(agent.config().peers.suspicion_scan_secs);
            tasks.push(every("suspicions", period, rx.clone(), &span, move || {
                let liveness = liveness.clone();
                Box::pin(async move {
                    if let Err(e) = liveness.scan_suspicions().await {
                        tracing::debug!("suspicion scan: {e}");
                    }
                })
            }));
        }

        let cfg = agent.config().custody.clone();
        let policy = DetectionInput {
            failure_window_secs: Some(cfg.failure_window_secs),
            grace_secs: Some(cfg.grace_secs),
        };
        {
            let custody = custody.clone();
            let network = network.clone();
            tasks.push(every(
                "detect",
                Duration::from_secs(cfg.detect_interval_secs),
                rx.clone(),
                &span,
                move || {
                    let custody = custody.clone();
                    let network = network.clone();
                    Box::pin(async move {
                        match custody.detect_and_repair(policy).await {
                            Ok(reports) => reports.iter().for_each(|r| network.note_repairs(r)),
                            Err(e) => tracing::warn!("failure detection: {e}"),
                        }
                    })
                },
            ));
        }
        {
            let network = network.clone();
            let metrics = agent.metrics.clone();
            let period = Duration::from_secs(agent.config().http.history_sample_secs);
            tasks.push(every("history", period, rx.clone(), &span, move || {
                network.sample(&metrics);
                Box::pin(async {})
            }));
        }
        {
            let custody = custody.clone();
            tasks.push(every(
                "reconcile",
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
        {
            let custody = custody.clone();
            tasks.push(every(
                "provisional",
                crate::custody::provisional::CONFIRM_EVERY,
                rx.clone(),
                &span,
                move || {
                    let custody = custody.clone();
                    Box::pin(async move {
                        match custody.confirm_provisional().await {
                            Ok(r) if r.confirmed + r.dropped > 0 => tracing::info!(
                                "shards held for now: {} confirmed, {} let go, {} waiting",
                                r.confirmed,
                                r.dropped,
                                r.waiting
                            ),
                            Ok(_) => {}
                            Err(e) => tracing::warn!("confirming shards held for now: {e}"),
                        }
                    })
                },
            ));
        }
        let peers_cfg = agent.config().peers.clone();
        {
            let agent = agent.clone();
            tasks.push(every(
                "byzantine",
                Duration::from_secs(peers_cfg.byzantine_scan_interval_secs),
                rx.clone(),
                &span,
                move || {
                    let agent = agent.clone();
                    Box::pin(async move {
                        match agent.write_fn::<DetectByzantineAttackers>(()).await {
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
                "votes",
                Duration::from_secs(peers_cfg.vote_interval_secs),
                rx.clone(),
                &span,
                move || {
                    let agent = agent.clone();
                    Box::pin(async move {
                        if let Err(e) = crate::node::peers::vote_round(&agent).await {
                            tracing::debug!("voting: {e}");
                        }
                    })
                },
            ));
        }
        {
            let custody = custody.clone();
            let period = Duration::from_secs(agent.config().rewards.summary_interval_secs);
            tasks.push(every("rewards", period, rx.clone(), &span, move || {
                let custody = custody.clone();
                Box::pin(async move {
                    custody.rewards.flush(&custody.agent).await;
                    custody.rewards.acknowledge(&custody.agent).await;
                })
            }));
        }
        Ok(Daemon {
            agent,
            custody,
            recovery,
            liveness,
            network,
            http_addr,
            api_token,
            shutdown,
            tasks,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whoever could open a file at the place the token is written before
    /// (a leftover temp file, or the moment between creating a file and
    /// narrowing its mode) must not read the token through that handle.
    #[cfg(unix)]
    #[test]
    fn the_token_file_is_owner_only_from_its_creation() {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for leftover in ["api-token.tmp", "api-token"] {
            let p = dir.path().join(leftover);
            std::fs::write(&p, b"").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut spies: Vec<std::fs::File> = ["api-token.tmp", "api-token"]
            .iter()
            .map(|n| std::fs::File::open(dir.path().join(n)).unwrap())
            .collect();
        let token = api_token(dir.path()).unwrap();
        for spy in &mut spies {
            let mut seen = String::new();
            spy.read_to_string(&mut seen).unwrap();
            assert!(
                !seen.contains(&token),
                "a handle opened before the token was written reads it"
            );
        }
        let path = dir.path().join("api-token");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            api_token(dir.path()).unwrap(),
            token,
            "kept across restarts"
        );
    }
}
