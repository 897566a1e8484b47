//! What the suites test and test with: the names and bundles `cargo xtask
//! pack` ships to `workdir/` (loaded as shipped, never rebuilt in memory),
//! a test network's variant of them, and valid entries to feed the zome
//! (registrations, assignments, heartbeats).

use holochain::prelude::*;
use holochain::sweettest::*;
use node_registry_integrity::*;
use std::path::PathBuf;

use crate::Peer;

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
