//! Sweettest harness for the Elohim Orchestrator.
//!
//! Every suite loads the DNA that `cargo xtask pack` wrote to `workdir/`, not
//! one rebuilt in memory, so what is tested is what is shipped.

use holochain::prelude::*;
use holochain::sweettest::*;
use node_registry_integrity::*;
use std::path::PathBuf;
use std::time::Duration;

/// The installed app id the harness uses.
pub const APP_ID: &str = "elohim";
/// The role of the node registry DNA in the hApp.
pub const ROLE: &str = "node_registry";
/// The coordinator zome's name.
pub const COORDINATOR: &str = "node_registry_coordinator";

/// The workspace's `workdir/`.
pub fn workdir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// One agent's cell on one conductor of a [`Network`].
#[derive(Clone)]
pub struct Peer {
    /// Which conductor of the batch runs it.
    pub conductor: usize,
    /// Its cell.
    pub cell: SweetCell,
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

/// Several conductors on one local rendezvous, each running the hApp for
/// one agent, with peer info exchanged.
pub struct Network {
    /// The conductors.
    pub conductors: SweetConductorBatch,
    /// One peer per conductor, in order.
    pub peers: Vec<Peer>,
}

impl Network {
    /// Starts `n` conductors with the packed DNA installed under the role
    /// `node_registry`.
    pub async fn start(n: usize) -> Network {
        let dna = packed_dna().await;
        let mut conductors = SweetConductorBatch::standard(n).await;
        let apps = conductors
            .setup_app(APP_ID, &[(ROLE.to_string(), dna)])
            .await
            .expect("the hApp installs on every conductor");
        conductors.exchange_peer_info().await;
        let peers = apps
            .into_inner()
            .into_iter()
            .enumerate()
            .map(|(conductor, app)| Peer {
                conductor,
                cell: app.into_cells().remove(0),
            })
            .collect();
        Network { conductors, peers }
    }

    /// Calls a coordinator function as `peer`, panicking on error.
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

    /// Calls a coordinator function as `peer`, returning the error as text.
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
        let code =
            std::fs::read(packed("mallory_coordinator.wasm")).expect("mallory wasm readable");
        let wasm = DnaWasmHashed::from_content(DnaWasm::from(code)).await;
        let def = CoordinatorZomeDef::from(ZomeDef::Wasm(WasmZomeDef::new(
            wasm.as_hash().clone(),
            Some(vec!["node_registry_integrity".into()]),
        )));
        let p = self.peers[peer].clone();
        self.conductors[p.conductor]
            .update_coordinators(
                p.cell.cell_id().clone(),
                vec![(COORDINATOR.into(), def)],
                vec![wasm],
            )
            .await
            .expect("mallory installs");
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

    /// Polls `f` as `peer` until `accept` holds, for up to `secs` seconds.
    /// For values that arrive by gossip, where no local event says "done".
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
        registered_at: now,
        updated_at: now,
    }
}

/// A heartbeat of `node_id`, now.
pub fn heartbeat(node_id: &str, status: &str) -> NodeHeartbeat {
    NodeHeartbeat {
        node_id: node_id.to_string(),
        timestamp: Timestamp::now(),
        status: status.to_string(),
        current_load: 0.25,
        active_connections: 3,
        custody_used_bytes: 0,
    }
}
