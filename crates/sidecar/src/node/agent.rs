//! The node agent: registers this node with its "organ donation" defaults,
//! keeps its presence lease, routes each zome call to the right agent, and
//! leaves cleanly.
//!
//! A node runs three agents of the hApp on its conductor (see
//! `registry_core::delegation`): its **identity** (`elohim_orchestrator`),
//! which owns the node id and writes only when the registration, family or
//! published content change, plus one delegation an epoch; a **working**
//! agent per epoch (`elohim_orchestrator_work_<n>`, see `epoch.rs`) that
//! carries every routine write ([`NodeAgent::write_fn`]); and a **reader**
//! (`elohim_orchestrator_reader`) that never writes, for selections and
//! probes ([`NodeAgent::read_fn`]). No agent's chain grows without bound, so
//! no call slows with the node's age.

use crate::config::{Config, ConfigError, ParticipationSection};
use crate::metrics::Metrics;
use crate::node::capacity::{detect, sample_load, MachineCapacity};
use crate::node::uptime::{self, UptimeLedger};
use crate::registry::conductor::{ConductorError, Connection};
use crate::registry::retry::{backoff, retry_head_moved, retry_transient, TRANSIENT_RETRY_FOR};
use crate::{APP_ID, COORDINATOR, READER_APP_ID, ROLE};
use holochain_types::prelude::{ActionHash, AgentPubKey, Timestamp};
use holochain_types::signal::Signal;
use node_registry_integrity::zome_fns::{
    DeregisterNode, GetAvailableCustodians, GetMyNode, GetNodeHealth, GetNodesByRegion,
    GetPublicationStatus, GetRegistryProperties, Heartbeat, RegisterNode, TriggerDisasterRecovery,
    ZomeFn,
};
use node_registry_integrity::*;
use registry_core::node_id::derive_node_id;
use registry_core::status::StatusDebouncer;
use registry_core::tier::earned_tier;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch, RwLock};

/// The registration this machine and config call for.
pub fn build_registration(
    cfg: &Config,
    cap: &MachineCapacity,
    agent: AgentPubKey,
    node_id: String,
    uptime_percent: f64,
    endpoint: Option<String>,
    now: Timestamp,
) -> NodeRegistration {
    let p = &cfg.participation;
    let storage_tb = (cap.storage_gb / 1000.0).min(registry_core::capacity::MAX_STORAGE_TB);
    let (max_custody_gb, max_bandwidth_mbps, max_cpu_percent) = if p.custodian_opt_in {
        (
            (cap.storage_gb * p.storage_percent / 100.0).min(storage_tb * 1000.0),
            ((cap.bandwidth_mbps as f64 * p.bandwidth_percent / 100.0).ceil() as u32)
                .min(cap.bandwidth_mbps),
            p.cpu_percent,
        )
    } else {
        // Opted out: nothing offered, so nothing can be assigned.
        (0.0, 0, 0.0)
    };
    let tier = earned_tier(
        max_custody_gb,
        storage_tb,
        max_bandwidth_mbps,
        cap.bandwidth_mbps,
        max_cpu_percent,
    );
    let display_name = if cfg.node.display_name.is_empty() {
        let host = sysinfo::System::host_name().unwrap_or_else(|| "Elohim".into());
        let name = format!("{host}'s Rack");
        name.chars()
            .take(registry_core::capacity::MAX_DISPLAY_NAME)
            .collect()
    } else {
        cfg.node.display_name.clone()
    };
    NodeRegistration {
        node_id,
        agent_pub_key: agent,
        display_name,
        cpu_cores: cap.cpu_cores,
        memory_gb: cap.memory_gb,
        storage_tb,
        bandwidth_mbps: cap.bandwidth_mbps,
        region: cfg.node.region.clone(),
        latitude: cfg.node.latitude,
        longitude: cfg.node.longitude,
        zomes_hosted: vec![ROLE.to_string()],
        steward_tier: tier.as_str().to_string(),
        custodian_opt_in: p.custodian_opt_in,
        max_custody_gb,
        max_bandwidth_mbps,
        max_cpu_percent,
        off_peak_hours: OffPeakHours {
            start_hour: p.off_peak_start_hour,
            end_hour: p.off_peak_end_hour,
        },
        uptime_percent,
        endpoint,
        registered_at: now,
        updated_at: now,
    }
}

/// What `elohim-sidecar status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// This node.
    pub node_id: String,
    /// Its agent.
    pub agent: String,
    /// Its registration as the DHT has it.
    pub registration: Option<NodeRegistration>,
    /// Its health as the DHT shows it now.
    pub health: NodeHealthSummary,
    /// Node ids registered in its region.
    pub region_nodes: Vec<String>,
    /// Other nodes that could take custody now, best first (at most
    /// [`STATUS_CUSTODIANS_SHOWN`]): a peer is listed in its region as soon
    /// as its registration arrives, but is offered for custody only once its
    /// presence has (see `get_available_custodians`).
    #[serde(default)]
    pub custodians_now: Vec<String>,
    /// The working agent routine writes go through, if one is delegated.
    #[serde(default)]
    pub working_agent: Option<String>,
}

/// The records on one of the node's chains.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentChain {
    /// The installed app (identity, reader or a working key).
    pub app_id: String,
    /// Its agent.
    pub agent: String,
    /// Records on its chain.
    pub records: u64,
    /// Those records by kind (see `registry_core::budget::RecordKind`).
    pub by_kind: std::collections::BTreeMap<String, u64>,
}

/// What `elohim-sidecar records` shows: every record this node wrote, by
/// agent and by kind, against the write budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainRecords {
    /// Each chain of the node.
    pub agents: Vec<AgentChain>,
    /// All of them, by kind.
    pub by_kind: std::collections::BTreeMap<String, u64>,
    /// All of them.
    pub total: u64,
}

/// How many possible custodians `status` lists.
pub const STATUS_CUSTODIANS_SHOWN: u32 = 20;

/// One installed app's connection, reopened before the next call after a
/// call lost its websocket. The identity's connection also forwards every
/// signal it receives (re-registered on each reconnect); the daemon checks
/// it every [`crate::daemon::LINK_CHECK_INTERVAL`] and reopens it as soon
/// as it died, so signals do not wait for some call to fail first.
pub(crate) struct AppLink {
    app_id: String,
    conn: RwLock<Arc<Connection>>,
    stale: std::sync::atomic::AtomicBool,
    signals: Option<broadcast::Sender<Signal>>,
}

impl AppLink {
    pub(crate) async fn open(
        admin_addr: SocketAddr,
        happ: &Path,
        app_id: &str,
        signals: Option<broadcast::Sender<Signal>>,
    ) -> Result<Self, ConductorError> {
        let conn = Connection::open(admin_addr, happ, app_id, ROLE).await?;
        Self::forward(&conn, &signals).await;
        Ok(AppLink {
            app_id: app_id.to_string(),
            conn: RwLock::new(Arc::new(conn)),
            stale: Default::default(),
            signals,
        })
    }

    async fn forward(conn: &Connection, signals: &Option<broadcast::Sender<Signal>>) {
        if let Some(tx) = signals {
            let tx = tx.clone();
            conn.app
                .on_signal(move |signal| {
                    let _ = tx.send(signal);
                })
                .await;
        }
    }

    pub(crate) async fn connection(
        &self,
        admin_addr: SocketAddr,
        happ: &Path,
    ) -> Result<Arc<Connection>, ConductorError> {
        if self.stale.swap(false, std::sync::atomic::Ordering::SeqCst) {
            tracing::info!(
                app = %self.app_id,
                "reconnecting to the conductor at {admin_addr}"
            );
            match Connection::open(admin_addr, happ, &self.app_id, ROLE).await {
                Ok(c) => {
                    Self::forward(&c, &self.signals).await;
                    *self.conn.write().await = Arc::new(c);
                }
                Err(e) => {
                    self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
        Ok(self.conn.read().await.clone())
    }

    /// Checks the websocket with a cheap request; one found dead (or
    /// already marked for reopening) is reopened now, with its signal
    /// handler. Returns whether it was reopened.
    pub(crate) async fn keep_alive(
        &self,
        admin_addr: SocketAddr,
        happ: &Path,
    ) -> Result<bool, ConductorError> {
        let conn = self.conn.read().await.clone();
        let alive = match tokio::time::timeout(LINK_PROBE_TIMEOUT, conn.app.app_info()).await {
            // The conductor answered, even if with an error: the socket works.
            Ok(Ok(_)) | Ok(Err(holochain_client::ConductorApiError::ExternalApiWireError(_))) => {
                true
            }
            Ok(Err(_)) | Err(_) => false,
        };
        drop(conn);
        if alive && !self.stale.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(false);
        }
        if !alive {
            tracing::warn!(app = %self.app_id, "the app websocket is dead; reopening it");
            self.mark_stale();
        }
        self.connection(admin_addr, happ).await.map(|_| true)
    }

    pub(crate) fn mark_if_lost(&self, e: &ConductorError) {
        if e.is_connection_lost() {
            self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Marks the connection for reopening before the next call (e.g. a
    /// test dropping the websocket, or a send that failed).
    pub(crate) fn mark_stale(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The agent of the app's cell.
    pub(crate) async fn agent(&self) -> AgentPubKey {
        self.conn.read().await.agent().clone()
    }
}

/// The working agent in force: its app, its key and its delegation's window
/// (see `epoch.rs`).
pub(crate) struct Working {
    pub(crate) link: AppLink,
    pub(crate) agent: AgentPubKey,
    pub(crate) window: registry_core::delegation::Window,
    pub(crate) epoch: u64,
}

/// What this node last wrote as its presence lease.
#[derive(Debug, Clone, PartialEq)]
struct LeaseState {
    bucket: i64,
    status: registry_core::NodeStatus,
}

/// A node agent bound to a conductor.
pub struct NodeAgent {
    config: Config,
    pub(crate) admin_addr: SocketAddr,
    pub(crate) happ: PathBuf,
    node_app: AppLink,
    /// A second agent of the same DNA on the same conductor that never
    /// writes, for reads that do not depend on who asks (see
    /// [`NodeAgent::read_fn`]); `None` if it could not be installed.
    reader: Option<AppLink>,
    /// The working agent of this epoch, once delegated.
    pub(crate) working: RwLock<Option<Arc<Working>>>,
    agent: AgentPubKey,
    /// This node's id.
    pub node_id: String,
    /// Metrics served at /metrics.
    pub metrics: Arc<Metrics>,
    /// The network's parameters (the DNA's properties).
    pub properties: RegistryProperties,
    signals: broadcast::Sender<Signal>,
    capacity: MachineCapacity,
    uptime: Mutex<UptimeLedger>,
    endpoint: Mutex<Option<String>>,
    participation: Mutex<ParticipationSection>,
    config_file: Mutex<Option<PathBuf>>,
    status: Mutex<StatusDebouncer>,
    lease: Mutex<Option<LeaseState>>,
}

/// Why new participation settings could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value is out of range (nothing was changed).
    #[error(transparent)]
    Invalid(ConfigError),
    /// The config file could not be written (nothing was changed).
    #[error("could not save the settings: {0}")]
    Save(ConfigError),
    /// Saved, but the DHT registration could not be updated yet.
    #[error("settings saved, but the registration could not be updated: {0}")]
    Conductor(#[from] ConductorError),
}

/// How long the conductor has to answer a check of an app websocket.
const LINK_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which of the node's agents a call goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Identity,
    Working,
    Reader,
}

impl NodeAgent {
    /// Connects to the conductor at `admin_addr` (installing the hApp when
    /// missing) and prepares the agent. The working agent is set up by
    /// [`NodeAgent::run`] once the node is registered.
    pub async fn connect(config: Config, admin_addr: SocketAddr) -> Result<Self, ConductorError> {
        let happ = config.conductor.happ.clone();
        let (signals, _) = broadcast::channel(1024);
        let node_app = AppLink::open(admin_addr, &happ, APP_ID, Some(signals.clone())).await?;
        let agent = node_app.agent().await;
        let reader = match AppLink::open(admin_addr, &happ, READER_APP_ID, None).await {
            Ok(link) => Some(link),
            Err(e) => {
                tracing::warn!("no reader agent ({e}); selections go through the node's own agent");
                None
            }
        };
        let node_id = derive_node_id(&config.node.label, agent.get_raw_32());
        let data_dir = &config.conductor.data_dir;
        crate::datadir::private_dir(data_dir).map_err(|source| ConductorError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let capacity = detect(data_dir, &config.capacity);
        let ledger = uptime::load(data_dir, crate::clock::unix_secs());
        let properties: RegistryProperties = node_app
            .connection(admin_addr, &happ)
            .await?
            .call_fn::<GetRegistryProperties>(())
            .await?;
        Ok(NodeAgent {
            admin_addr,
            happ,
            node_app,
            reader,
            working: RwLock::new(None),
            agent,
            node_id,
            metrics: Arc::new(Metrics::default()),
            properties,
            signals,
            capacity,
            uptime: Mutex::new(ledger),
            endpoint: Mutex::new(config.http.advertise.clone()),
            participation: Mutex::new(config.participation.clone()),
            config_file: Mutex::new(None),
            status: Mutex::new(StatusDebouncer::new(
                config.heartbeat.status_dwell_secs as i64,
            )),
            lease: Mutex::new(None),
            config,
        })
    }

    /// The agent key of this node (its identity).
    pub fn agent(&self) -> &AgentPubKey {
        &self.agent
    }

    /// The detected capacity.
    pub fn capacity(&self) -> &MachineCapacity {
        &self.capacity
    }

    /// The configuration the node started with. Participation may have
    /// changed since (settings page): read it with [`NodeAgent::participation`].
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every signal the identity's app websocket receives (the DNA's
    /// signals, and liveness beats by direct signal).
    pub fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    /// Where an app connection of this node forwards its signals.
    pub(crate) fn signal_sink(&self) -> broadcast::Sender<Signal> {
        self.signals.clone()
    }

    /// The participation settings in force now.
    pub fn participation(&self) -> ParticipationSection {
        self.participation.lock().unwrap().clone()
    }

    /// Names the config file that settings changes are saved to (the
    /// binary's `--config`); without one they last until restart only.
    pub fn set_config_file(&self, path: PathBuf) {
        *self.config_file.lock().unwrap() = Some(path);
    }

    /// The config file settings are saved to, if any.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.config_file.lock().unwrap().clone()
    }

    /// Applies new participation settings: checks them, saves them to the
    /// config file, then re-registers so the DHT has the new caps, opt-in
    /// and tier. A bad value changes nothing.
    pub async fn apply_participation(
        &self,
        p: ParticipationSection,
    ) -> Result<ActionHash, SettingsError> {
        let mut candidate = self.config.clone();
        candidate.participation = p.clone();
        candidate.check().map_err(SettingsError::Invalid)?;
        if let Some(path) = self.config_file() {
            Config::save_participation(&path, &p).map_err(SettingsError::Save)?;
        }
        *self.participation.lock().unwrap() = p;
        Ok(self.retrying(|| self.register()).await?)
    }

    /// Runs a write until it succeeds, fails for good, or has failed for
    /// [`TRANSIENT_RETRY_FOR`]: another write of the same agent committing
    /// at the same moment moves the source chain's head and fails this one,
    /// and a record the write depends on (a custodian's registration) may
    /// not have reached this node's store yet, which on a busy network takes
    /// seconds; both just have to be tried again. Errors that trying again
    /// cannot mend (a validation refusal) are returned at once.
    pub(crate) async fn retrying<T, F, Fut>(&self, write: F) -> Result<T, ConductorError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ConductorError>>,
    {
        retry_transient(TRANSIENT_RETRY_FOR, write).await
    }

    /// Hands over what this node holds after opting out: every live
    /// assignment of this node is re-homed on another eligible custodian
    /// (the repair path, run by the node itself while it is still up), and
    /// the new custodians fetch the shards from the content's holders.
    pub async fn hand_over(&self) -> Result<RepairReport, ConductorError> {
        self.recover(&self.node_id).await
    }

    /// Re-homes every live assignment of `node_id` (declared failed, or
    /// this node opting out), waiting out a replacement custodian's
    /// registration that has not reached this conductor yet. Safe to run
    /// from several nodes at once: they reach the same decision.
    pub async fn recover(&self, node_id: &str) -> Result<RepairReport, ConductorError> {
        self.retrying(|| self.write_fn::<TriggerDisasterRecovery>(node_id.to_string()))
            .await
    }

    /// The identity's current connection, reopened first if a call failed
    /// on it.
    pub async fn connection(&self) -> Result<Arc<Connection>, ConductorError> {
        self.node_app.connection(self.admin_addr, &self.happ).await
    }

    /// Marks the identity's app connection for reopening (so its signal
    /// handler is registered again on a fresh websocket).
    pub fn reconnect_identity(&self) {
        self.node_app.mark_stale();
    }

    /// Checks the identity's app websocket, which carries this node's
    /// signals, and reopens it at once if it died (a restarted conductor):
    /// signals are not lost until some later call happens to fail.
    pub async fn keep_identity_link(&self) {
        match self.node_app.keep_alive(self.admin_addr, &self.happ).await {
            Ok(false) => {}
            Ok(true) => {
                self.metrics.app_reconnects.inc();
                tracing::info!("the identity's app websocket was reopened");
            }
            Err(e) => tracing::debug!("the identity's app websocket is still down: {e}"),
        }
    }

    /// The reader agent's key, if it has one.
    pub async fn reader_agent(&self) -> Option<AgentPubKey> {
        match &self.reader {
            Some(r) => Some(r.agent().await),
            None => None,
        }
    }

    /// The working agent's key, once one is delegated.
    pub async fn working_agent(&self) -> Option<AgentPubKey> {
        self.working.read().await.as_ref().map(|w| w.agent.clone())
    }

    /// Calls a coordinator function that only reads and whose answer does
    /// not depend on who asks (custodian selection, probes), through the
    /// reader agent, whose chain stays at its genesis. Without a reader, or
    /// if its connection cannot be opened, the identity answers.
    ///
    /// Typed: `F` names the function and fixes what goes in and comes out
    /// (see [`zome_fns`](node_registry_integrity::zome_fns)), so a renamed
    /// function or a changed shape fails the build, not a call.
    pub async fn read_fn<F: ZomeFn>(&self, input: F::Input) -> Result<F::Output, ConductorError> {
        self.call_via(Via::Reader, F::NAME, input).await
    }

    /// Calls a coordinator function as the node's identity agent: what only
    /// the identity may write (registration, delegations, family, the
    /// content it publishes, transfer signatures) and reads about itself.
    ///
    /// Typed, as [`read_fn`](Self::read_fn) is.
    pub async fn call_fn<F: ZomeFn>(&self, input: F::Input) -> Result<F::Output, ConductorError> {
        self.call_via(Via::Identity, F::NAME, input).await
    }

    /// Calls a coordinator function that writes routinely (leases,
    /// verdicts, votes, penalties, repairs, service summaries) through the
    /// working agent of this epoch; through the identity until one is
    /// delegated.
    ///
    /// Typed, as [`read_fn`](Self::read_fn) is.
    pub async fn write_fn<F: ZomeFn>(&self, input: F::Input) -> Result<F::Output, ConductorError> {
        self.call_via(Via::Working, F::NAME, input).await
    }

    /// [`read_fn`](Self::read_fn) by the function's name, with whatever
    /// input and output the caller picks. Prefer `read_fn`: this is
    /// unchecked, and stays public only for the tests not yet converted.
    pub async fn read<I, O>(&self, function: &str, payload: I) -> Result<O, ConductorError>
    where
        I: Serialize + std::fmt::Debug,
        O: DeserializeOwned + std::fmt::Debug,
    {
        self.call_via(Via::Reader, function, payload).await
    }

    /// [`call_fn`](Self::call_fn) by the function's name, with whatever
    /// input and output the caller picks. Prefer `call_fn`: this is
    /// unchecked, and stays public only for the tests not yet converted.
    pub async fn call<I, O>(&self, function: &str, payload: I) -> Result<O, ConductorError>
    where
        I: Serialize + std::fmt::Debug,
        O: DeserializeOwned + std::fmt::Debug,
    {
        self.call_via(Via::Identity, function, payload).await
    }

    /// [`write_fn`](Self::write_fn) by the function's name, with whatever
    /// input and output the caller picks. Prefer `write_fn`: this is
    /// unchecked, and stays public only for the tests not yet converted.
    pub async fn write<I, O>(&self, function: &str, payload: I) -> Result<O, ConductorError>
    where
        I: Serialize + std::fmt::Debug,
        O: DeserializeOwned + std::fmt::Debug,
    {
        self.call_via(Via::Working, function, payload).await
    }

    async fn call_via<I, O>(
        &self,
        via: Via,
        function: &str,
        payload: I,
    ) -> Result<O, ConductorError>
    where
        I: Serialize + std::fmt::Debug,
        O: DeserializeOwned + std::fmt::Debug,
    {
        let working = match via {
            Via::Working => self.working.read().await.clone(),
            _ => None,
        };
        let link: &AppLink = match (via, &working, &self.reader) {
            (Via::Working, Some(w), _) => &w.link,
            (Via::Reader, _, Some(r)) => r,
            _ => &self.node_app,
        };
        let conn = match link.connection(self.admin_addr, &self.happ).await {
            Ok(c) => c,
            Err(e) if via == Via::Reader => {
                tracing::warn!("reader agent unavailable ({e}); asking as the node");
                self.connection().await?
            }
            Err(e) => return Err(e),
        };
        let (conn, payload) = (&conn, &payload);
        // Two calls of this agent committed at once and this one lost the
        // race: nothing of it was written, so it is simply run again.
        retry_head_moved(|| async move {
            let started = Instant::now();
            let out = conn.call(COORDINATOR, function, payload).await;
            self.metrics
                .observe_call(function, out.is_ok(), started.elapsed());
            if let Err(e) = &out {
                if e.is_connection_lost() {
                    link.mark_if_lost(e);
                }
            }
            out
        })
        .await
    }

    /// Sets the URL peers reach this sidecar at (once its server is bound),
    /// unless the config names one.
    pub fn set_endpoint(&self, url: String) {
        let mut e = self.endpoint.lock().unwrap();
        if self.config.http.advertise.is_none() {
            *e = Some(url);
        }
    }

    /// The URL peers reach this sidecar at, if known.
    pub fn endpoint(&self) -> Option<String> {
        self.endpoint.lock().unwrap().clone()
    }

    /// The registration this node declares now.
    pub fn registration(&self) -> NodeRegistration {
        let uptime = self
            .uptime
            .lock()
            .unwrap()
            .percent(crate::clock::unix_secs());
        let mut config = self.config.clone();
        config.participation = self.participation();
        build_registration(
            &config,
            &self.capacity,
            self.agent.clone(),
            self.node_id.clone(),
            uptime,
            self.endpoint(),
            Timestamp::now(),
        )
    }

    /// Registers this node, or updates its registration after a restart.
    pub async fn register(&self) -> Result<ActionHash, ConductorError> {
        match self.call_fn::<RegisterNode>(self.registration()).await {
            Ok(hash) => {
                self.metrics.registrations.inc();
                Ok(hash)
            }
            Err(e) => {
                self.metrics.registration_failures.inc();
                Err(e)
            }
        }
    }

    /// Samples the machine and says what status to publish now (with
    /// hysteresis and a dwell time, so a busy machine rarely flips).
    fn sample_status(&self) -> registry_core::NodeStatus {
        let load = sample_load(&self.config.conductor.data_dir, self.capacity.cpu_cores);
        self.status.lock().unwrap().observe(
            load.load_per_core,
            load.disk_used_fraction,
            Timestamp::now().as_micros(),
        )
    }

    /// Whether a lease is due now: none written yet, a new lease bucket, or
    /// a new status.
    fn lease_due(&self, status: registry_core::NodeStatus) -> bool {
        let bucket = self
            .properties
            .lease_bucket_of(Timestamp::now().as_micros());
        match &*self.lease.lock().unwrap() {
            None => true,
            Some(l) => l.bucket != bucket || l.status != status,
        }
    }

    /// Renews this node's presence lease (the plan's heartbeat) with its
    /// current status, through the working agent. The zome writes one
    /// record only when a lease is due.
    pub async fn heartbeat_once(&self) -> Result<ActionHash, ConductorError> {
        let status = self.sample_status();
        let load = sample_load(&self.config.conductor.data_dir, self.capacity.cpu_cores);
        let active_connections = self.active_connections().await;
        let hb = NodeHeartbeat {
            node_id: self.node_id.clone(),
            timestamp: Timestamp::now(),
            status: status.as_str().to_string(),
            current_load: load.load_per_core.clamp(0.0, 1024.0),
            active_connections,
            // What the store held at the last reconcile (the metric's
            // gauge); the lease is not rewritten for it, only carries it.
            custody_used_bytes: self.metrics.shard_bytes_held.get().max(0) as u64,
            watcher: true,
        };
        let hash = self.write_fn::<Heartbeat>(hb.clone()).await?;
        *self.lease.lock().unwrap() = Some(LeaseState {
            bucket: self.properties.lease_bucket_of(hb.timestamp.as_micros()),
            status,
        });
        Ok(hash)
    }

    /// Forgets the last lease written, so the next round renews it (after
    /// the registration changed, or a new working key took over).
    pub(crate) fn lease_changed(&self) {
        *self.lease.lock().unwrap() = None;
    }

    /// Peers the conductor is connected to, for the heartbeat.
    async fn active_connections(&self) -> u32 {
        match self.connection().await {
            Ok(c) => c
                .admin
                .dump_network_stats()
                .await
                .map(|s| s.transport_stats.connections.len() as u32)
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Registers, sets up the working key, then keeps the presence lease
    /// (checking every interval whether one is due, which writes nothing
    /// when not) and the working key (replaced when its epoch ends) until
    /// `shutdown` turns true. Failures back off (1 s doubling up to the
    /// configured maximum) and never end the loop.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let interval = Duration::from_secs(self.config.heartbeat.interval_secs);
        let max_backoff = Duration::from_secs(self.config.heartbeat.max_backoff_secs);
        let mut registered = false;
        let mut failures = 0u32;
        let mut keys_checked: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let round_started = Instant::now();
            let result = async {
                if !registered {
                    self.register().await?;
                    registered = true;
                    tracing::info!(node_id = %self.node_id, "registered");
                }
                let keys_due = keys_checked
                    .is_none_or(|t| t.elapsed() >= crate::node::epoch::KEY_CHECK_INTERVAL);
                if keys_due {
                    match self.maintain_working_key().await {
                        Ok(true) => self.lease_changed(),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(
                            "working key: {e}; routine writes go through the identity meanwhile"
                        ),
                    }
                    keys_checked = Some(Instant::now());
                }
                let status = self.sample_status();
                if self.lease_due(status) {
                    self.heartbeat_once().await?;
                }
                Ok::<(), ConductorError>(())
            }
            .await;
            let wait = match result {
                Ok(()) => {
                    // A round of the heartbeat (a lease written when due,
                    // nothing otherwise) that did what it had to.
                    self.metrics.heartbeats_sent.inc();
                    self.metrics
                        .heartbeat_round("lease", round_started.elapsed());
                    self.metrics
                        .last_heartbeat_unix
                        .set(Timestamp::now().as_micros() as f64 / 1e6);
                    failures = 0;
                    let mut ledger = self.uptime.lock().unwrap();
                    ledger.up_secs += interval.as_secs();
                    if let Err(e) = uptime::save(&self.config.conductor.data_dir, &ledger) {
                        tracing::warn!("could not save the uptime ledger: {e}");
                    }
                    interval
                }
                Err(e) => {
                    self.metrics.heartbeat_failures.inc();
                    let wait = backoff(failures, max_backoff);
                    failures = failures.saturating_add(1);
                    tracing::warn!("lease renewal failed ({e}); retrying in {wait:?}");
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Deregisters this node (it leaves discovery and custody), then waits
    /// up to `linger` for a peer to acknowledge the departure, so going
    /// offline right after does not strand it on this disk. Returns whether
    /// a peer confirmed every action.
    pub async fn leave(&self, reason: &str, linger: Duration) -> Result<bool, ConductorError> {
        let written: Vec<ActionHash> = self
            .call_fn::<DeregisterNode>(DeregisterInput {
                node_id: self.node_id.clone(),
                reason: reason.to_string(),
            })
            .await?;
        let deadline = Instant::now() + linger;
        let mut shown = None;
        loop {
            let st: PublicationStatus = self
                .call_fn::<GetPublicationStatus>(written.clone())
                .await?;
            if shown != Some(st.confirmed) {
                tracing::info!(
                    "departure acknowledged by peers: {}/{} actions",
                    st.confirmed,
                    st.total
                );
                shown = Some(st.confirmed);
            }
            if st.complete() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    "no peer acknowledged {} of {} departure actions within {linger:?}; \
                     peers will see this node as failed instead",
                    st.total - st.confirmed,
                    st.total
                );
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every record on every chain of this node's agents (its identity, its
    /// reader and its working keys, as installed on the conductor), by kind,
    /// read from the conductor's own dumps. Also sets the
    /// `elohim_chain_records` gauges.
    pub async fn chain_records(&self) -> Result<ChainRecords, ConductorError> {
        let conn = self.connection().await?;
        let api = crate::registry::conductor::api;
        let apps = conn.admin.list_apps(None).await.map_err(api("list apps"))?;
        let mut agents = Vec::new();
        let mut by_kind: std::collections::BTreeMap<String, u64> = Default::default();
        for app in apps {
            let ours = app.installed_app_id == APP_ID
                || app.installed_app_id == READER_APP_ID
                || crate::node::epoch::epoch_of(&app.installed_app_id).is_some();
            if !ours {
                continue;
            }
            let cells = app.cell_info.get(ROLE).into_iter().flatten();
            for cell in cells {
                let holochain_conductor_api::CellInfo::Provisioned(p) = cell else {
                    continue;
                };
                let dump = conn
                    .admin
                    .dump_full_state(p.cell_id.clone(), None, Some(1))
                    .await
                    .map_err(api("dump state"))?;
                let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
                for r in &dump.source_chain_dump.records {
                    let kind = node_registry_integrity::record_kind_of_action(&r.action);
                    *kinds.entry(kind.as_str().to_string()).or_default() += 1;
                }
                for (k, n) in &kinds {
                    *by_kind.entry(k.clone()).or_default() += n;
                }
                agents.push(AgentChain {
                    app_id: app.installed_app_id.clone(),
                    agent: p.cell_id.agent_pubkey().to_string(),
                    records: dump.source_chain_dump.records.len() as u64,
                    by_kind: kinds,
                });
            }
        }
        for (k, n) in &by_kind {
            self.metrics.set_chain_records(k, *n);
        }
        let total = by_kind.values().sum();
        Ok(ChainRecords {
            agents,
            by_kind,
            total,
        })
    }

    /// This node as the DHT sees it.
    pub async fn status(&self) -> Result<StatusReport, ConductorError> {
        let mine: Option<RegisteredNode> = self.call_fn::<GetMyNode>(()).await?;
        let health: NodeHealthSummary = self.read_fn::<GetNodeHealth>(self.node_id.clone()).await?;
        let region_nodes: Vec<NodeRegistration> = self
            .read_fn::<GetNodesByRegion>(self.config.node.region.clone())
            .await?;
        let custodians: Vec<RankedCustodian> = self
            .read_fn::<GetAvailableCustodians>(CustodianFilters {
                exclude_nodes: vec![self.node_id.clone()],
                limit: Some(STATUS_CUSTODIANS_SHOWN),
                ..Default::default()
            })
            .await?;
        Ok(StatusReport {
            node_id: self.node_id.clone(),
            agent: self.agent.to_string(),
            registration: mine.map(|m| m.registration),
            health,
            region_nodes: region_nodes.into_iter().map(|r| r.node_id).collect(),
            custodians_now: custodians
                .into_iter()
                .map(|c| c.registration.node_id)
                .collect(),
            working_agent: self.working_agent().await.map(|a| a.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_core::StewardTier;

    fn cap() -> MachineCapacity {
        MachineCapacity {
            cpu_cores: 8,
            memory_gb: 32.0,
            storage_gb: 1234.567,
            bandwidth_mbps: 33,
            bandwidth_source: "configured",
        }
    }

    fn agent() -> AgentPubKey {
        AgentPubKey::from_raw_32(vec![7u8; 32])
    }

    #[test]
    fn defaults_offer_the_organ_donation_shares() {
        let cfg = Config::default();
        let r = build_registration(
            &cfg,
            &cap(),
            agent(),
            "rack-0707070707070707".into(),
            100.0,
            None,
            Timestamp::now(),
        );
        assert!(r.custodian_opt_in);
        assert!(
            (r.max_custody_gb - 123.4567).abs() < 1e-9,
            "{}",
            r.max_custody_gb
        );
        assert_eq!(r.max_bandwidth_mbps, 7, "20% of 33 Mbps, rounded up");
        assert_eq!(r.max_cpu_percent, 15.0);
        assert_eq!(
            (r.off_peak_hours.start_hour, r.off_peak_hours.end_hour),
            (22, 6)
        );
        assert_eq!(r.steward_tier, StewardTier::Guardian.as_str());
        assert_eq!(
            registry_core::capacity::check_capacity(&r.declared()),
            Ok(()),
            "validation will accept it"
        );
    }

    #[test]
    fn tier_follows_the_contribution() {
        let mut cfg = Config::default();
        cfg.participation.storage_percent = 45.0;
        cfg.participation.bandwidth_percent = 65.0;
        cfg.participation.cpu_percent = 30.0;
        let r = build_registration(
            &cfg,
            &cap(),
            agent(),
            "x-0707070707070707".into(),
            100.0,
            None,
            Timestamp::now(),
        );
        assert_eq!(r.steward_tier, "pioneer");
        cfg.participation.bandwidth_percent = 5.0;
        let r = build_registration(
            &cfg,
            &cap(),
            agent(),
            "x-0707070707070707".into(),
            100.0,
            None,
            Timestamp::now(),
        );
        assert_eq!(r.steward_tier, "caretaker");
    }

    #[test]
    fn opting_out_offers_nothing() {
        let mut cfg = Config::default();
        cfg.participation.custodian_opt_in = false;
        let r = build_registration(
            &cfg,
            &cap(),
            agent(),
            "x-0707070707070707".into(),
            100.0,
            None,
            Timestamp::now(),
        );
        assert!(!r.custodian_opt_in);
        assert_eq!(
            (r.max_custody_gb, r.max_bandwidth_mbps, r.max_cpu_percent),
            (0.0, 0, 0.0)
        );
        assert_eq!(r.steward_tier, "caretaker");
    }
}
