//! Nodes made of a sweettest conductor plus an in-process sidecar daemon
//! (external-conductor mode, as a user with their own conductor runs it),
//! on one local rendezvous: the setting of the custody suites.

use elohim_sidecar::config::{ConductorMode, Config};
use elohim_sidecar::daemon::Daemon;
use elohim_sidecar::node::agent::NodeAgent;
use holochain::prelude::*;
use holochain::sweettest::*;
use node_registry_integrity::zome_fns::{DetectFailedNodes, GetAvailableCustodians, GetNode};
use node_registry_integrity::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::{packed, ROLE};

/// Fast timings for tests: beats every 5 s, suspicion after 10 s of
/// silence, failure 5 s later; detection every 2 s, reconciliation
/// every 3 s.
pub fn fast_config(data_dir: &std::path::Path, label: &str, admin: SocketAddr) -> Config {
    let mut c = Config::default();
    c.node.label = label.into();
    c.node.region = "eu-west".into();
    c.conductor.mode = ConductorMode::External;
    c.conductor.admin_addr = Some(admin);
    c.conductor.data_dir = data_dir.to_path_buf();
    c.conductor.happ = packed("elohim_orchestrator.happ");
    c.capacity.storage_gb = Some(500.0);
    // 200 Mbps offered (25 MB/s of serving and rebuilding), and rebuilds
    // at any hour: the suites run at every time of day.
    c.capacity.bandwidth_mbps = Some(1000);
    c.participation.off_peak_start_hour = 0;
    c.participation.off_peak_end_hour = 0;
    c.heartbeat.interval_secs = 5;
    c.heartbeat.max_backoff_secs = 5;
    c.custody.detect_interval_secs = 2;
    c.custody.reconcile_interval_secs = 3;
    c.custody.failure_window_secs = 10;
    c.custody.grace_secs = 5;
    // Monitors are picked and suspicions read quickly; scans and votes
    // are off unless a test turns them on: they would only add load to
    // the custody scenarios.
    c.peers.membership_refresh_secs = 2;
    c.peers.suspicion_scan_secs = 5;
    c.peers.byzantine_scan_interval_secs = 86_400;
    c.peers.vote_interval_secs = 3600;
    c.heartbeat.status_dwell_secs = 0;
    c.rewards.summary_interval_secs = 3;
    c
}

/// Whether `detect_failed_nodes` answered `node` as failed.
fn declared_failed(down: &[NodeLiveness], node: &str) -> bool {
    down.iter().any(|n| {
        n.node_id == node
            && matches!(
                n.liveness,
                registry_core::heartbeat::Liveness::Failed { .. }
            )
    })
}

/// A network of conductor + sidecar nodes.
pub struct SidecarNet {
    /// The hApp every node installs (the test network's, see
    /// [`crate::happ_with`]) and the directory it lives in.
    pub happ_dir: tempfile::TempDir,
    /// The conductors, one per node.
    pub conductors: SweetConductorBatch,
    /// Their data directories (declared after them: removed once they stop).
    _conductor_dirs: Vec<tempfile::TempDir>,
    /// Each node's daemon (None once killed, or before it joins).
    pub daemons: Vec<Option<Daemon>>,
    /// Each node's data directory.
    pub dirs: Vec<tempfile::TempDir>,
    configs: Vec<Config>,
    members: Vec<bool>,
    // Declared last, so it is released only once the conductors are gone.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// Monitors whose verdicts declare a node failed (two vetted ones).
const WATCHERS_TO_DECLARE: usize = 2;

/// How many sidecar networks one test binary runs at once. Each is
/// several conductors; two of them side by side on a 2-core machine
/// starve each other's gossip until DHT-dependent waits time out, and
/// running them in turn costs little wall time since the cores are the
/// bottleneck either way. `ELOHIM_TEST_NETS` raises it on bigger machines.
fn net_slots() -> std::sync::Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    SLOTS
        .get_or_init(|| {
            let n = std::env::var("ELOHIM_TEST_NETS")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(1);
            std::sync::Arc::new(tokio::sync::Semaphore::new(n))
        })
        .clone()
}

impl SidecarNet {
    /// Sends the sidecars' logs to the test's captured output, which the
    /// test runner prints only when the test fails: a red CI run then
    /// shows what each node did. `RUST_LOG` overrides the default
    /// (`elohim_sidecar=info`), e.g. `RUST_LOG=elohim_sidecar=debug`.
    fn init_logging() {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("elohim_sidecar=info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_test_writer()
            .try_init();
    }

    /// Starts `n` conductors; nodes in `joined` get their sidecar (and
    /// the hApp) now, the others only when [`SidecarNet::join`] is called.
    /// The network runs with [`crate::test_properties`].
    pub async fn start(
        n: usize,
        joined: &[usize],
        tune: impl Fn(usize, &mut Config),
    ) -> SidecarNet {
        Self::start_with(n, joined, crate::test_properties(), tune).await
    }

    /// As [`SidecarNet::start`], on a network with these parameters.
    pub async fn start_with(
        n: usize,
        joined: &[usize],
        properties: RegistryProperties,
        tune: impl Fn(usize, &mut Config),
    ) -> SidecarNet {
        Self::init_logging();
        let happ_dir = tempfile::tempdir().unwrap();
        let happ = crate::happ_with(&properties, happ_dir.path()).await;
        let slot = net_slots()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (conductors, conductor_dirs) =
            crate::conductor_batch(vec![SweetConductorConfig::rendezvous(true); n]).await;
        let mut net = SidecarNet {
            happ_dir,
            _slot: slot,
            daemons: (0..n).map(|_| None).collect(),
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            configs: Vec::new(),
            members: vec![false; n],
            conductors,
            _conductor_dirs: conductor_dirs,
        };
        for i in 0..n {
            let admin: SocketAddr = (
                Ipv4Addr::LOCALHOST,
                net.conductors[i]
                    .get_arbitrary_admin_websocket_port()
                    .unwrap(),
            )
                .into();
            let mut c = fast_config(net.dirs[i].path(), &format!("node{i}"), admin);
            c.conductor.happ = happ.clone();
            tune(i, &mut c);
            c.check().expect("valid test config");
            net.configs.push(c);
        }
        for &i in joined {
            net.join(i).await;
        }
        net
    }

    /// Starts node `i`'s sidecar (installing the hApp on its conductor
    /// the first time) and introduces the conductors to each other.
    pub async fn join(&mut self, i: usize) {
        let cfg = self.configs[i].clone();
        let admin = cfg.conductor.admin_addr.unwrap();
        let agent = NodeAgent::connect(cfg, admin)
            .await
            .expect("sidecar connects");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let daemon = Daemon::start(agent, listener).await.expect("daemon starts");
        self.daemons[i] = Some(daemon);
        self.members[i] = true;
        self.introduce().await;
        self.await_registrations().await;
    }

    /// Waits until every running node reads every other's registration. A
    /// network started seconds ago otherwise has nodes that do not know
    /// each other yet (a custodian refuses an early upload from a publisher
    /// it cannot see; a verdict does not reach a node that has not heard
    /// from its monitor); tests are about what follows, not that lag.
    async fn await_registrations(&self) {
        let running: Vec<&Daemon> = self.daemons.iter().flatten().collect();
        self.until(180, "every node reads every other's registration", || {
            let running = running.clone();
            async move {
                for reader in &running {
                    for other in &running {
                        if reader.agent.node_id == other.agent.node_id {
                            continue;
                        }
                        let seen: Option<RegisteredNode> = reader
                            .agent
                            .call_fn::<GetNode>(other.agent.node_id.clone())
                            .await
                            .ok()?;
                        seen?;
                    }
                }
                Some(())
            }
        })
        .await
    }

    /// Shares peer info among the conductors whose node has joined and
    /// is not dead (the local bootstrap would get there too, slower).
    async fn introduce(&self) {
        let members: Vec<&SweetConductor> = self
            .conductors
            .iter()
            .enumerate()
            .filter(|(i, _)| self.members[*i])
            .map(|(_, c)| c)
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !SweetConductor::exchange_peer_info(members.clone()).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "peer info exchange timed out"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Node `i`'s running daemon.
    pub fn node(&self, i: usize) -> &Daemon {
        self.daemons[i].as_ref().expect("node is running")
    }

    /// Node `i`'s node id.
    pub fn node_id(&self, i: usize) -> String {
        self.node(i).agent.node_id.clone()
    }

    /// Stops node `i`'s sidecar only (its conductor keeps running).
    pub async fn stop_sidecar(&mut self, i: usize) {
        if let Some(d) = self.daemons[i].take() {
            d.stop().await;
        }
    }

    /// Kills node `i`: sidecar and conductor both gone. First waits until
    /// its failure can be seen: two monitors' verdicts declare a node
    /// failed, and a node picks its monitors among those present when it
    /// looks, so on a network started seconds ago it may have beaten to
    /// only one yet (fewer when fewer others run). A node whose sidecar
    /// already stopped is killed at once.
    pub async fn kill(&mut self, i: usize) {
        if self.daemons[i].is_some() {
            let others = self.daemons.iter().flatten().count().saturating_sub(1);
            self.await_watched(i, WATCHERS_TO_DECLARE.min(others)).await;
        }
        self.stop_sidecar(i).await;
        self.conductors[i].shutdown().await;
        self.members[i] = false;
    }

    /// Waits until at least `min` other running nodes watch node `i` (have
    /// its beats).
    pub async fn await_watched(&self, i: usize, min: usize) {
        let id = self.node_id(i);
        self.until(120, &format!("node {i} watched by {min} others"), || {
            let n = self
                .daemons
                .iter()
                .flatten()
                .filter(|d| d.agent.node_id != id)
                .filter(|d| d.liveness.watched().iter().any(|(s, _)| *s == id))
                .count();
            async move { (n >= min).then_some(()) }
        })
        .await
    }

    /// Whether node `observer`'s `detect_failed_nodes`, under `policy`,
    /// now finds `node` failed (false if the call fails).
    pub async fn finds_failed(&self, observer: usize, node: &str, policy: DetectionInput) -> bool {
        let down: Vec<NodeLiveness> = match self
            .node(observer)
            .agent
            .call_fn::<DetectFailedNodes>(Some(policy))
            .await
        {
            Ok(d) => d,
            Err(_) => return false,
        };
        declared_failed(&down, node)
    }

    /// Waits up to `secs` until node `observer`'s `detect_failed_nodes`,
    /// under `policy`, finds `node` failed. On a timeout the panic says
    /// what detection last answered and what every running node's
    /// liveness holds (whom it beats to, whom it watches and its verdict),
    /// so a failure under load can be told from a design hole.
    pub async fn await_declared(
        &self,
        observer: usize,
        node: &str,
        policy: DetectionInput,
        secs: u64,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let last = match self
                .node(observer)
                .agent
                .call_fn::<DetectFailedNodes>(Some(policy))
                .await
            {
                Ok(down) if declared_failed(&down, node) => return,
                Ok(down) => format!("{down:?}"),
                Err(e) => format!("error: {e}"),
            };
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{node} not declared failed by node {observer} within {secs} s; \
                     detection last answered {last}; liveness: {}",
                    self.liveness_views()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every running node's liveness: whom it beats to and whom it
    /// watches, with its verdicts (for failure messages).
    pub fn liveness_views(&self) -> String {
        self.daemons
            .iter()
            .flatten()
            .map(|d| {
                format!(
                    "{} beats to {:?}, watches {:?}",
                    d.agent.node_id,
                    d.liveness.monitors(),
                    d.liveness.watched()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Polls `check` every 500 ms until it returns `Some`, or panics
    /// after `secs` naming `what`.
    pub async fn until<T, F, Fut>(&self, secs: u64, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{what}: not reached within {secs} s");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The cell of node `i`'s own agent (its conductor also runs the
    /// sidecar's reader agent and its working agent).
    pub async fn cell_id(&self, i: usize) -> CellId {
        self.app_cell_id(i, elohim_sidecar::APP_ID).await
    }

    /// Every cell on node `i`'s conductor: its identity, reader and
    /// working agents (all the chains the node writes to).
    pub async fn all_cell_ids(&self, i: usize) -> Vec<CellId> {
        let apps = self.conductors[i]
            .raw_handle()
            .list_apps(None)
            .await
            .expect("apps list");
        let mut out = Vec::new();
        for app in apps {
            out.push(self.app_cell_id(i, &app.installed_app_id).await);
        }
        out
    }

    /// The cell of app `app_id` on node `i`'s conductor.
    pub async fn app_cell_id(&self, i: usize, app_id: &str) -> CellId {
        let info = self.conductors[i]
            .raw_handle()
            .get_app_info(&app_id.to_string())
            .await
            .expect("app info reads")
            .unwrap_or_else(|| panic!("node {i} has {app_id} installed"));
        info.cell_info
            .get(ROLE)
            .and_then(|cells| {
                cells.iter().find_map(|c| match c {
                    holochain::conductor::api::CellInfo::Provisioned(p) => Some(p.cell_id.clone()),
                    _ => None,
                })
            })
            .unwrap_or_else(|| panic!("node {i} has a {ROLE} cell"))
    }

    /// Waits until node `observer` sees `count` available custodians, itself
    /// included (a publish from it excludes itself: placing on n others
    /// needs n + 1 here).
    pub async fn await_custodians(&self, observer: usize, count: usize) {
        let agent = self.node(observer).agent.clone();
        self.until(
            180,
            &format!("{count} custodians visible from node {observer}"),
            || {
                let agent = agent.clone();
                async move {
                    let c: Vec<RankedCustodian> = agent
                        .call_fn::<GetAvailableCustodians>(CustodianFilters::default())
                        .await
                        .ok()?;
                    (c.len() >= count).then_some(())
                }
            },
        )
        .await
    }
}
