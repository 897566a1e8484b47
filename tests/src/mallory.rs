//! Mallory, the test-only attacker: a coordinator that is the honest one
//! plus attack functions, swapped in on one node of a [`Network`] or a
//! [`SidecarNet`] so that node can commit anything, as one running modified
//! code could. Same DNA, same network; validation has to refuse it.

use holochain::prelude::*;
use holochain::sweettest::*;

use node_registry_integrity::zome_fns::GetRegistryProperties;

use crate::network::conductor_call_fn;
use crate::sidecars::SidecarNet;
use crate::{packed, Network, COORDINATOR};

/// Swaps mallory in for the coordinator of `cell` (see [`Network::arm_mallory`]).
pub async fn install_mallory(conductor: &mut SweetConductor, cell: CellId) {
    let code = std::fs::read(packed("mallory_coordinator.wasm")).expect("mallory wasm readable");
    let wasm = DnaWasmHashed::from_content(DnaWasm::from(code)).await;
    let def = CoordinatorZomeDef::from(ZomeDef::Wasm(WasmZomeDef::new(
        wasm.as_hash().clone(),
        Some(vec!["node_registry_integrity".into()]),
    )));
    conductor
        .update_coordinators(cell.clone(), vec![(COORDINATOR.into(), def)], vec![wasm])
        .await
        .expect("mallory installs");
    // The first call compiles the new wasm, which on a loaded machine has
    // taken over a minute: done here, so a payload a test stamps with the
    // time just before its first mallory call is not already stale.
    let zome = SweetZome::new(cell, COORDINATOR.into());
    conductor_call_fn::<GetRegistryProperties>(conductor, &zome, ()).await;
}

impl Network {
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
}

/// How long a mallory write is tried again while what it refers to has not
/// reached its node yet (holochain refuses the commit with
/// `DepMissingFromDht` before validation sees it): an attack test wants
/// validation's verdict, not the network's lag.
const DEPENDENCY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl SidecarNet {
    /// Swaps mallory in on node `i` (see [`Network::arm_mallory`]).
    pub async fn arm_mallory(&mut self, i: usize) {
        let cell = self.cell_id(i).await;
        install_mallory(&mut self.conductors[i], cell).await;
    }

    /// Calls a mallory function as node `i`'s agent, again while what it
    /// refers to has not reached node `i` (see [`DEPENDENCY_WAIT`]).
    pub async fn mallory<I, O>(&self, i: usize, func: &str, payload: I) -> Result<O, String>
    where
        I: serde::Serialize + std::fmt::Debug,
        O: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let zome = SweetZome::new(self.cell_id(i).await, COORDINATOR.into());
        let deadline = tokio::time::Instant::now() + DEPENDENCY_WAIT;
        loop {
            match self.conductors[i]
                .call_fallible(&zome, func, &payload)
                .await
            {
                Ok(out) => return Ok(out),
                Err(e) => {
                    let e = format!("{e:?}");
                    if !e.contains("DepMissingFromDht") || tokio::time::Instant::now() > deadline {
                        return Err(e);
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}
