//! Sweettest harness for the Elohim Orchestrator.
//!
//! Every suite loads the DNA that `cargo xtask pack` wrote to `workdir/`, not
//! one rebuilt in memory, so what is tested is what is shipped.

use holochain::prelude::*;
use holochain::sweettest::*;
use node_registry_integrity::zome_fns::{
    DetectFailedNodes, GetAvailableCustodians, Heartbeat, RegisterNode, ZomeFn,
};
use node_registry_integrity::*;
use std::path::PathBuf;
use std::time::Duration;

pub mod webdriver;

/// The installed app id the harness uses.
pub const APP_ID: &str = "elohim";
/// The role of the node registry DNA in the hApp.
pub const ROLE: &str = "node_registry";
/// The coordinator zome's name.
pub const COORDINATOR: &str = "node_registry_coordinator";

/// This crate's directory: the one cargo names when it runs the tests, else
/// the one compiled in (a test binary reused from a shared target directory
/// may have been built in another clone).
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The workspace's `workdir/`.
pub fn workdir() -> PathBuf {
    manifest_dir()
        .parent()
        .expect("tests/ is inside the workspace")
        .join("workdir")
}

/// A file in `workdir/`, or a panic saying how to make it.
pub fn packed(name: &str) -> PathBuf {
    let path = workdir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask pack` (or `cargo xtask test`) first",
        path.display()
    );
    path
}

/// The packed node registry DNA, as shipped.
pub async fn packed_dna() -> DnaFile {
    SweetDnaFile::from_bundle(&packed("node_registry.dna"))
        .await
        .expect("workdir/node_registry.dna is a valid DNA bundle")
}

/// The packed DNA with other network parameters: the same code, a network
/// whose clocks run faster (e.g. minutes of vetting age in seconds).
pub async fn packed_dna_with(properties: RegistryProperties) -> DnaFile {
    SweetDnaFile::from_bundle_with_overrides(
        &packed("node_registry.dna"),
        DnaModifiersOpt::none().with_properties(properties),
    )
    .await
    .expect("workdir/node_registry.dna is a valid DNA bundle")
}

/// A rendezvous started by another process, known by its addresses: a
/// conductor in this process joins that network with it. The holochain
/// process keeps most of an agent's memory even after its conductor shuts
/// down, so a benchmark that puts more nodes on the DHT than a machine can
/// run at once hosts them in short-lived processes that join this way.
pub struct FixedRendezvous {
    /// The bootstrap server's URL.
    pub bootstrap: String,
    /// The relay's URL.
    pub relay: String,
}

impl SweetRendezvous for FixedRendezvous {
    fn bootstrap_addr(&self) -> &str {
        &self.bootstrap
    }

    fn relay_addr(&self) -> &str {
        &self.relay
    }
}

/// A rendezvous conductor config whose bootstrap client polls every
/// `poll_ms` at most (kitsune2 backs off to five minutes by default): for
/// conductors in several processes, which cannot exchange peer info
/// directly and learn of each other only from the bootstrap server.
pub fn polling_bootstrap(poll_ms: u32) -> SweetConductorConfig {
    SweetConductorConfig::rendezvous(true).tune_network_config(|network| {
        let mut advanced = network
            .advanced
            .take()
            .unwrap_or_else(|| serde_json::json!({}));
        advanced["coreBootstrap"]["backoffMinMs"] = serde_json::json!(poll_ms.min(1000));
        advanced["coreBootstrap"]["backoffMaxMs"] = serde_json::json!(poll_ms);
        network.advanced = Some(advanced);
    })
}

/// One agent's cell on one conductor of a [`Network`].
#[derive(Clone)]
pub struct Peer {
    /// Which conductor of the batch runs it.
    pub conductor: usize,
    /// Its cell.
    pub cell: SweetCell,
    /// The installed app the cell belongs to.
    pub app_id: InstalledAppId,
}

impl Peer {
    /// The agent's key.
    pub fn agent(&self) -> AgentPubKey {
        self.cell.agent_pubkey().clone()
    }

    /// The node id this agent's node has for `label`.
    pub fn node_id(&self, label: &str) -> String {
        registry_core::node_id::derive_node_id(label, self.agent().get_raw_32())
    }
}

/// The records of a cell's own source chain, oldest first.
pub async fn source_chain(
    conductor: &SweetConductor,
    cell: &CellId,
) -> Vec<holochain_state_types::SourceChainDumpRecord> {
    conductor
        .dump_full_cell_state(cell, None, Some(1))
        .await
        .expect("cell state dumps")
        .source_chain_dump
        .records
}

/// Several conductors on one local rendezvous, each running the hApp for
/// one agent, with peer info exchanged.
pub struct Network {
    /// The conductors.
    pub conductors: SweetConductorBatch,
    /// One peer per conductor, in order (then any added agents).
    pub peers: Vec<Peer>,
    dna: DnaFile,
}

impl Network {
    /// The actions on `peer`'s own source chain, oldest first, so a test
    /// can see exactly what a call wrote.
    pub async fn chain(&self, peer: usize) -> Vec<Action> {
        let p = &self.peers[peer];
        source_chain(&self.conductors[p.conductor], p.cell.cell_id())
            .await
            .into_iter()
            .map(|r| r.action)
            .collect()
    }

    /// Starts `n` conductors with the packed DNA installed under the role
    /// `node_registry`.
    pub async fn start(n: usize) -> Network {
        Self::start_with_dna(n, packed_dna().await).await
    }

    /// Starts `n` conductors with the packed DNA under other properties.
    pub async fn start_with(n: usize, properties: RegistryProperties) -> Network {
        Self::start_with_dna(n, packed_dna_with(properties).await).await
    }

    /// As [`Network::start_with`], each conductor configured by `config`.
    pub async fn start_with_config(
        n: usize,
        properties: RegistryProperties,
        config: SweetConductorConfig,
    ) -> Network {
        Self::start_with_dna_config(n, packed_dna_with(properties).await, config).await
    }

    /// Adds `count` more agents with the hApp on conductor `conductor`,
    /// returning their peer indices.
    pub async fn add_agents(&mut self, conductor: usize, count: usize, prefix: &str) -> Vec<usize> {
        let dna = self.dna.clone();
        let apps = self.conductors[conductor]
            .setup_apps(prefix, count, &[(ROLE.to_string(), dna)])
            .await
            .expect("agents install");
        let first = self.peers.len();
        for app in apps.into_inner() {
            self.peers.push(Peer {
                conductor,
                app_id: app.installed_app_id().clone(),
                cell: app.into_cells().remove(0),
            });
        }
        self.conductors.exchange_peer_info().await;
        (first..self.peers.len()).collect()
    }

    async fn start_with_dna(n: usize, dna: DnaFile) -> Network {
        Self::start_with_dna_config(n, dna, SweetConductorConfig::rendezvous(true)).await
    }

    async fn start_with_dna_config(
        n: usize,
        dna: DnaFile,
        config: SweetConductorConfig,
    ) -> Network {
        let mut conductors = SweetConductorBatch::from_config_rendezvous(n, config).await;
        let apps = conductors
            .setup_app(APP_ID, &[(ROLE.to_string(), dna.clone())])
            .await
            .expect("the hApp installs on every conductor");
        conductors.exchange_peer_info().await;
        let peers = apps
            .into_inner()
            .into_iter()
            .enumerate()
            .map(|(conductor, app)| Peer {
                conductor,
                app_id: app.installed_app_id().clone(),
                cell: app.into_cells().remove(0),
            })
            .collect();
        Network {
            conductors,
            peers,
            dna,
        }
    }

    /// Disables `peer`'s app: its cell stops, while what it published stays
    /// on the DHT (a node that went dark). Calls as that peer fail
    /// afterwards. (The process keeps most of the cell's memory, as it does
    /// after a conductor shuts down: to return it, run agents in another
    /// process, see [`FixedRendezvous`].)
    pub async fn retire(&self, peer: usize) {
        let p = &self.peers[peer];
        self.conductors[p.conductor]
            .disable_app(p.app_id.clone(), DisabledAppReason::User)
            .await
            .expect("the app disables");
    }

    /// The bootstrap and relay addresses of the network's rendezvous, for a
    /// conductor in another process to join (see [`FixedRendezvous`]).
    pub fn rendezvous_addrs(&self) -> (String, String) {
        let r = self.conductors[0]
            .get_rendezvous_config()
            .expect("the network's conductors share a rendezvous");
        (r.bootstrap_addr().to_string(), r.relay_addr().to_string())
    }

    /// Calls the coordinator function `F` as `peer`, panicking on error.
    ///
    /// Typed: `F` names the function and fixes what goes in and comes out
    /// (see [`zome_fns`](node_registry_integrity::zome_fns)), so a renamed
    /// function or a changed shape fails the build, not a test run.
    pub async fn call_fn<F: ZomeFn>(&self, peer: usize, input: F::Input) -> F::Output {
        self.call(peer, F::NAME, input).await
    }

    /// Calls the coordinator function `F` as `peer`, returning the error as
    /// text. Typed, as [`call_fn`](Self::call_fn) is.
    pub async fn try_call_fn<F: ZomeFn>(
        &self,
        peer: usize,
        input: F::Input,
    ) -> Result<F::Output, String> {
        self.try_call(peer, F::NAME, input).await
    }

    /// Polls the coordinator function `F` as `peer` until `accept` holds,
    /// for up to `secs` seconds (see [`eventually`](Self::eventually)).
    /// Typed, as [`call_fn`](Self::call_fn) is.
    pub async fn eventually_fn<F: ZomeFn>(
        &self,
        peer: usize,
        input: F::Input,
        secs: u64,
        accept: impl Fn(&F::Output) -> bool,
    ) -> F::Output
    where
        F::Input: Clone,
    {
        self.eventually(peer, F::NAME, input, secs, accept).await
    }

    /// [`call_fn`](Self::call_fn) by the function's name, with whatever
    /// payload and output the caller picks. Prefer `call_fn`: this is
    /// unchecked, kept for payloads no marker describes (a wider or wrong
    /// shape sent on purpose).
    pub async fn call<I, O>(&self, peer: usize, func: &str, payload: I) -> O
    where
        I: serde::Serialize + std::fmt::Debug,
        O: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let p = &self.peers[peer];
        self.conductors[p.conductor]
            .call(&p.cell.zome(COORDINATOR), func, payload)
            .await
    }

    /// Registers `peer` as the node `r` describes and beats once as online,
    /// so the others can select it. Returns the registration's hash.
    pub async fn register_online(&self, peer: usize, r: &NodeRegistration) -> ActionHash {
        let hash = self.call_fn::<RegisterNode>(peer, r.clone()).await;
        self.call_fn::<Heartbeat>(peer, heartbeat(&r.node_id, "online"))
            .await;
        hash
    }

    /// [`try_call_fn`](Self::try_call_fn) by the function's name, with
    /// whatever payload and output the caller picks. Prefer `try_call_fn`:
    /// this is unchecked, kept for payloads no marker describes (a wider or
    /// wrong shape sent on purpose).
    pub async fn try_call<I, O>(&self, peer: usize, func: &str, payload: I) -> Result<O, String>
    where
        I: serde::Serialize + std::fmt::Debug,
        O: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let p = &self.peers[peer];
        self.conductors[p.conductor]
            .call_fallible(&p.cell.zome(COORDINATOR), func, payload)
            .await
            .map_err(|e| format!("{e:?}"))
    }

    /// Swaps the test-only "mallory" coordinator (the honest one plus attack
    /// functions) in for the coordinator on `peer`'s cell: that peer can then
    /// commit anything, as an attacker running modified code could. Same DNA,
    /// same network. (It replaces rather than joins the coordinator because
    /// holochain 0.7.1 does not register dependencies of a zome added by
    /// `update_coordinators` under a new name.)
    pub async fn arm_mallory(&mut self, peer: usize) {
        let p = self.peers[peer].clone();
        install_mallory(&mut self.conductors[p.conductor], p.cell.cell_id().clone()).await;
    }

    /// Calls a mallory function as `peer` (see [`Network::arm_mallory`]).
    pub async fn mallory<I, O>(&self, peer: usize, func: &str, payload: I) -> Result<O, String>
    where
        I: serde::Serialize + std::fmt::Debug,
        O: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let p = &self.peers[peer];
        self.conductors[p.conductor]
            .call_fallible(&p.cell.zome(COORDINATOR), func, payload)
            .await
            .map_err(|e| format!("{e:?}"))
    }

    /// Waits until every peer has integrated the same DHT ops.
    pub async fn sync(&self) {
        let cells: Vec<&SweetCell> = self.peers.iter().map(|p| &p.cell).collect();
        await_consistency_s(120, cells)
            .await
            .expect("peers reach consistency");
    }

    /// Polls `func` as `peer` until `accept` holds, for up to `secs`
    /// seconds. For values that arrive by gossip, where no local event says
    /// "done". Prefer the typed [`eventually_fn`](Self::eventually_fn): this
    /// is unchecked, kept for payloads no marker describes (a wider shape
    /// sent on purpose).
    pub async fn eventually<I, O>(
        &self,
        peer: usize,
        func: &str,
        payload: I,
        secs: u64,
        accept: impl Fn(&O) -> bool,
    ) -> O
    where
        I: serde::Serialize + std::fmt::Debug + Clone,
        O: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let out: O = self.call(peer, func, payload.clone()).await;
            if accept(&out) {
                return out;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{func} did not reach the expected value within {secs} s; last: {out:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Calls the coordinator function `F` on `zome` of `conductor`, panicking
/// on error: [`SweetConductor::call`], typed as [`Network::call_fn`] is.
pub async fn conductor_call_fn<F: ZomeFn>(
    conductor: &SweetConductor,
    zome: &SweetZome,
    input: F::Input,
) -> F::Output {
    conductor.call(zome, F::NAME, input).await
}

/// Calls the coordinator function `F` on `zome` of `conductor`:
/// [`SweetConductor::call_fallible`], typed as [`Network::call_fn`] is.
pub async fn conductor_try_call_fn<F: ZomeFn>(
    conductor: &SweetConductor,
    zome: &SweetZome,
    input: F::Input,
) -> holochain::conductor::api::error::ConductorApiResult<F::Output> {
    conductor.call_fallible(zome, F::NAME, input).await
}

/// Panics unless `result` is an error whose text contains `reason`.
pub fn rejected<T: std::fmt::Debug>(what: &str, result: Result<T, String>, reason: &str) {
    match result {
        Ok(v) => panic!("{what}: expected rejection containing {reason:?}, got Ok({v:?})"),
        Err(e) => assert!(e.contains(reason), "{what}: expected {reason:?} in:\n{e}"),
    }
}

/// The node ids of ranked custodians, in rank order.
pub fn custodian_ids(v: &[RankedCustodian]) -> Vec<String> {
    v.iter().map(|c| c.registration.node_id.clone()).collect()
}

/// Swaps mallory in for the coordinator of `cell` (see [`Network::arm_mallory`]).
pub async fn install_mallory(conductor: &mut SweetConductor, cell: CellId) {
    let code = std::fs::read(packed("mallory_coordinator.wasm")).expect("mallory wasm readable");
    let wasm = DnaWasmHashed::from_content(DnaWasm::from(code)).await;
    let def = CoordinatorZomeDef::from(ZomeDef::Wasm(WasmZomeDef::new(
        wasm.as_hash().clone(),
        Some(vec!["node_registry_integrity".into()]),
    )));
    conductor
        .update_coordinators(cell, vec![(COORDINATOR.into(), def)], vec![wasm])
        .await
        .expect("mallory installs");
}

/// A valid registration for `peer` with the organ-donation defaults of a
/// modest home rack (8 cores, 32 GB, 2 TB, 100 Mbps): 10% storage, 20%
/// bandwidth, 15% CPU, guardian tier.
pub fn registration(peer: &Peer, label: &str, region: &str) -> NodeRegistration {
    let now = Timestamp::now();
    NodeRegistration {
        node_id: peer.node_id(label),
        agent_pub_key: peer.agent(),
        display_name: format!("{label}'s rack"),
        cpu_cores: 8,
        memory_gb: 32.0,
        storage_tb: 2.0,
        bandwidth_mbps: 100,
        region: region.to_string(),
        latitude: None,
        longitude: None,
        zomes_hosted: vec!["node_registry".into()],
        steward_tier: "guardian".into(),
        custodian_opt_in: true,
        max_custody_gb: 200.0,
        max_bandwidth_mbps: 20,
        max_cpu_percent: 15.0,
        off_peak_hours: OffPeakHours::default(),
        uptime_percent: 99.0,
        endpoint: None,
        registered_at: now,
        updated_at: now,
    }
}

/// A valid round-0 assignment, placed by its owner, of the one shard of a
/// 1000-byte content (full replica) to `custodian`. `label` stands for the
/// content's bytes: its blake3 is the content hash, and the content id is
/// the owner's id of that hash, as validation recomputes it.
pub fn assignment(
    owner: AgentPubKey,
    label: &str,
    custodian: &NodeRegistration,
    custodian_hash: ActionHash,
) -> CustodianAssignment {
    let content_hash = blake3::hash(label.as_bytes()).to_hex().to_string();
    let content_id = registry_core::assignment::content_id(owner.get_raw_32(), &content_hash);
    CustodianAssignment {
        assignment_id: registry_core::assignment::assignment_id(&content_id, 0, 0),
        content_id,
        content_hash,
        content_size_bytes: 1000,
        shard_size_bytes: 1000,
        shard_hash: "cd".repeat(32),
        owner_agent: owner,
        reach: "private".into(),
        custodian_node_id: custodian.node_id.clone(),
        custodian_registration: custodian_hash,
        strategy: "full_replica".into(),
        threshold: 1,
        shard_count: 1,
        shard_index: 0,
        round_custodians: vec![custodian.node_id.clone()],
        decided_by: "publisher".into(),
        decision_round: 0,
        replaces: None,
        preferred_region: None,
        required_tier: None,
        quorum_proposal: None,
        quorum_votes: vec![],
        relationship: None,
    }
}

/// The entry hash of an assignment, as the DHT stores it.
pub fn assignment_hash(a: &CustodianAssignment) -> EntryHash {
    EntryHash::with_data_sync(&Entry::try_from(a.clone()).expect("an assignment serializes"))
}

/// A heartbeat of `node_id`, now, as a node that watches others sends it
/// (it beats its monitors itself, so the zome sends no beats).
pub fn heartbeat(node_id: &str, status: &str) -> NodeHeartbeat {
    NodeHeartbeat {
        node_id: node_id.to_string(),
        timestamp: Timestamp::now(),
        status: status.to_string(),
        current_load: 0.25,
        active_connections: 3,
        custody_used_bytes: 0,
        watcher: true,
    }
}

/// The network parameters the sidecar suites run with: the shipped ones,
/// but a node is vetted two seconds after it registers, so monitors'
/// verdicts count (two vetted reporters) within a test's time.
pub fn test_properties() -> RegistryProperties {
    RegistryProperties {
        min_voter_age_secs: 2,
        ..Default::default()
    }
}

/// The packed hApp with the DNA's properties replaced (a network of its
/// own), packed into `dir` with the bundle library `hc` uses. Sidecars
/// install it as they would the shipped one.
pub async fn happ_with(properties: &RegistryProperties, dir: &std::path::Path) -> PathBuf {
    use holochain_types::prelude::AppManifest;
    std::fs::copy(packed("node_registry.dna"), dir.join("node_registry.dna"))
        .expect("the packed DNA copies");
    // JSON is YAML: the properties go in as a flow mapping.
    let props = serde_json::to_string(properties).expect("properties serialize");
    let manifest = format!(
        "manifest_version: \"0\"\nname: elohim_orchestrator\ndescription: test network\nroles:\n  \
         - name: {ROLE}\n    provisioning:\n      strategy: create\n      deferred: false\n    \
         dna:\n      path: ./node_registry.dna\n      modifiers:\n        network_seed: null\n        \
         properties: {props}\n      clone_limit: 0\n"
    );
    std::fs::write(dir.join("happ.yaml"), manifest).expect("the manifest writes");
    let out = dir.join("elohim_orchestrator.happ");
    mr_bundle::FileSystemBundler::bundle_to::<AppManifest>(dir.join("happ.yaml"), &out)
        .await
        .expect("the test hApp packs");
    out
}

/// The budget kind of one action of a node's chain.
pub fn record_kind(action: &Action) -> registry_core::budget::RecordKind {
    record_kind_of_action(action)
}

/// Nodes made of a sweettest conductor plus an in-process sidecar daemon
/// (external-conductor mode, as a user with their own conductor runs it),
/// on one local rendezvous: the setting of the custody suites.
pub mod sidecars {
    use super::*;
    use elohim_sidecar::agent::NodeAgent;
    use elohim_sidecar::config::{ConductorMode, Config};
    use elohim_sidecar::daemon::Daemon;
    use std::net::{Ipv4Addr, SocketAddr};

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
        c.capacity.bandwidth_mbps = Some(100);
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
        /// Each node's daemon (None once killed, or before it joins).
        pub daemons: Vec<Option<Daemon>>,
        /// Each node's data directory.
        pub dirs: Vec<tempfile::TempDir>,
        configs: Vec<Config>,
        members: Vec<bool>,
        // Declared last, so it is released only once the conductors are gone.
        _slot: tokio::sync::OwnedSemaphorePermit,
    }

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
            let conductors = SweetConductorBatch::standard(n).await;
            let mut net = SidecarNet {
                happ_dir,
                _slot: slot,
                daemons: (0..n).map(|_| None).collect(),
                dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
                configs: Vec::new(),
                members: vec![false; n],
                conductors,
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

        /// Kills node `i`: sidecar and conductor both gone.
        pub async fn kill(&mut self, i: usize) {
            self.stop_sidecar(i).await;
            self.conductors[i].shutdown().await;
            self.members[i] = false;
        }

        /// Whether node `observer`'s `detect_failed_nodes`, under `policy`,
        /// now finds `node` failed (false if the call fails).
        pub async fn finds_failed(
            &self,
            observer: usize,
            node: &str,
            policy: DetectionInput,
        ) -> bool {
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
                        holochain::conductor::api::CellInfo::Provisioned(p) => {
                            Some(p.cell_id.clone())
                        }
                        _ => None,
                    })
                })
                .unwrap_or_else(|| panic!("node {i} has a {ROLE} cell"))
        }

        /// Swaps mallory in on node `i` (see [`Network::arm_mallory`]).
        pub async fn arm_mallory(&mut self, i: usize) {
            let cell = self.cell_id(i).await;
            install_mallory(&mut self.conductors[i], cell).await;
        }

        /// Calls a mallory function as node `i`'s agent.
        pub async fn mallory<I, O>(&self, i: usize, func: &str, payload: I) -> Result<O, String>
        where
            I: serde::Serialize + std::fmt::Debug,
            O: serde::de::DeserializeOwned + std::fmt::Debug,
        {
            let zome = SweetZome::new(self.cell_id(i).await, COORDINATOR.into());
            self.conductors[i]
                .call_fallible(&zome, func, payload)
                .await
                .map_err(|e| format!("{e:?}"))
        }

        /// Waits until node `observer` sees `count` available custodians.
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
}
