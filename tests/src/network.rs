//! The network a suite runs on: conductors on one local rendezvous, each
//! with the hApp for one agent ([`Network`], [`Peer`]), and the calls a test
//! makes through it (typed by the `zome_fns` markers), plus what a
//! conductor in another process needs to join that rendezvous
//! ([`FixedRendezvous`], [`polling_bootstrap`]).

use holochain::prelude::*;
use holochain::sweettest::*;
use node_registry_integrity::zome_fns::{Heartbeat, RegisterNode, ZomeFn};
use node_registry_integrity::*;
use std::time::Duration;

use crate::{heartbeat, packed_dna, packed_dna_with, APP_ID, COORDINATOR, ROLE};

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

/// What holochain answers when a network read (`get`, `get_links`) got no
/// answer in time.
const NETWORK_TIMEOUT: &str = "likely response timeout";
/// Calls made in all when each fails on [`NETWORK_TIMEOUT`].
const NETWORK_TIMEOUT_ATTEMPTS: u32 = 3;

/// Several conductors on one local rendezvous, each running the hApp for
/// one agent, with peer info exchanged.
pub struct Network {
    /// The conductors.
    pub conductors: SweetConductorBatch,
    /// One peer per conductor, in order (then any added agents).
    pub peers: Vec<Peer>,
    dna: DnaFile,
    /// The conductors' data directories (declared after them: removed
    /// once they stop).
    _conductor_dirs: Vec<tempfile::TempDir>,
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
        let (mut conductors, conductor_dirs) = crate::conductor_batch(vec![config; n]).await;
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
            _conductor_dirs: conductor_dirs,
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
    pub async fn call_fn<F: ZomeFn>(&self, peer: usize, input: F::Input) -> F::Output
    where
        F::Input: Clone,
    {
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
    /// A network read that timed out (the conductor asked authorities that
    /// did not answer in time, a young network under load) fails the whole
    /// call and commits nothing; it is asked again, at most
    /// [`NETWORK_TIMEOUT_ATTEMPTS`] times, as the sidecar does.
    pub async fn call<I, O>(&self, peer: usize, func: &str, payload: I) -> O
    where
        I: serde::Serialize + std::fmt::Debug + Clone,
        O: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let mut attempt = 1;
        loop {
            match self.try_call(peer, func, payload.clone()).await {
                Ok(out) => return out,
                Err(e) if attempt < NETWORK_TIMEOUT_ATTEMPTS && e.contains(NETWORK_TIMEOUT) => {
                    eprintln!("{func} as peer {peer}: a network read timed out; asking again");
                    attempt += 1;
                }
                Err(e) => panic!("{func} as peer {peer}: {e}"),
            }
        }
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
