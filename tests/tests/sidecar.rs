//! The sidecar's node agent against real conductors: registration and
//! heartbeats seen from another conductor, opt-out, a restart of its
//! embedded conductor keeping the node's identity, and signals reaching a
//! running daemon again after its conductor restarted under it.

use elohim_sidecar::bootstrap::BootstrapServer;
use elohim_sidecar::config::{ConductorMode, Config};
use elohim_sidecar::daemon::Daemon;
use elohim_sidecar::node::agent::NodeAgent;
use elohim_sidecar::registry::conductor::{Connection, EmbeddedConductor, EmbeddedSettings};
use elohim_tests::*;
use holochain::prelude::{ActionHash, AgentPubKey, CellId, EntryHash};
use holochain::sweettest::*;
use holochain_types::signal::Signal;
use node_registry_integrity::zome_fns::{
    GetAvailableCustodians, GetMyNode, GetNodeHealth, GetNodesByRegion,
};
use node_registry_integrity::*;
use std::net::{Ipv4Addr, SocketAddr};

fn config(data_dir: &std::path::Path, label: &str, admin: Option<SocketAddr>) -> Config {
    let mut c = Config::default();
    c.node.label = label.into();
    c.node.region = "eu-west".into();
    c.conductor.data_dir = data_dir.to_path_buf();
    c.conductor.happ = packed("elohim_orchestrator.happ");
    c.capacity.storage_gb = Some(500.0);
    c.capacity.bandwidth_mbps = Some(100);
    if let Some(a) = admin {
        c.conductor.mode = ConductorMode::External;
        c.conductor.admin_addr = Some(a);
    }
    c.check().expect("test config is valid");
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn sidecar_registers_and_beats_visibly_and_honours_opt_out() {
    let dna = packed_dna().await;
    let mut conductors = SweetConductorBatch::standard(2).await;
    let observer = conductors[1]
        .setup_app(APP_ID, &[(ROLE.to_string(), dna)])
        .await
        .unwrap()
        .into_cells()
        .remove(0);
    let admin: SocketAddr = (
        Ipv4Addr::LOCALHOST,
        conductors[0].get_arbitrary_admin_websocket_port().unwrap(),
    )
        .into();
    let data = tempfile::tempdir().unwrap();
    let agent = NodeAgent::connect(config(data.path(), "alice", Some(admin)), admin)
        .await
        .expect("the sidecar installs the hApp and connects");
    let sidecar_cell = conductors[0]
        .get_sweet_cell(agent.connection().await.unwrap().cell_id.clone())
        .unwrap();
    conductors.exchange_peer_info().await;

    agent.register().await.expect("registers");
    agent.heartbeat_once().await.expect("beats");
    await_consistency_s(120, [&sidecar_cell, &observer])
        .await
        .unwrap();

    let zome = observer.zome(COORDINATOR);
    let health: NodeHealthSummary =
        conductor_call_fn::<GetNodeHealth>(&conductors[1], &zome, agent.node_id.clone()).await;
    assert!(health.registered);
    assert!(health.liveness.is_alive(), "{:?}", health.liveness);
    let seen: Vec<NodeRegistration> =
        conductor_call_fn::<GetNodesByRegion>(&conductors[1], &zome, "eu-west".into()).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].node_id, agent.node_id);
    assert_eq!(
        seen[0].steward_tier, "guardian",
        "organ-donation defaults reach guardian"
    );
    assert!(
        (seen[0].max_custody_gb - 50.0).abs() < 1e-9,
        "10% of 500 GB"
    );
    let custodians: Vec<RankedCustodian> = conductor_call_fn::<GetAvailableCustodians>(
        &conductors[1],
        &zome,
        CustodianFilters::default(),
    )
    .await;
    assert_eq!(
        custodians.len(),
        1,
        "an opted-in, beating node is a custodian"
    );

    // Selections go through a reader agent of the same DNA on the same
    // conductor, which answers alike and never writes.
    let reader = agent
        .reader_agent()
        .await
        .expect("the sidecar installs a reader agent");
    assert_ne!(&reader, agent.agent(), "the reader is another agent");
    let reader_cell = CellId::new(sidecar_cell.cell_id().dna_hash().clone(), reader);
    let chain_of = |cell: &CellId| {
        let conductor = &conductors[0];
        let cell = cell.clone();
        async move { source_chain(conductor, &cell).await.len() }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let read: Vec<RankedCustodian> = agent
            .read_fn::<GetAvailableCustodians>(CustodianFilters::default())
            .await
            .expect("the reader selects");
        if custodian_ids(&read) == custodian_ids(&custodians) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reader never saw what the observer sees: {read:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let asked_as: Option<RegisteredNode> = agent.read_fn::<GetMyNode>(()).await.unwrap();
    assert!(
        asked_as.is_none(),
        "reads are answered by the reader, which has no node of its own"
    );
    let reader_records = chain_of(&reader_cell).await;
    let node_records = chain_of(sidecar_cell.cell_id()).await;
    agent.status().await.expect("status reads");
    agent.heartbeat_once().await.expect("beats");
    assert_eq!(
        chain_of(&reader_cell).await,
        reader_records,
        "reading writes nothing to the reader's chain"
    );
    assert!(
        reader_records <= 8,
        "the reader's chain is its genesis, init and signing grant only: {reader_records} records"
    );
    assert_eq!(
        chain_of(sidecar_cell.cell_id()).await,
        node_records,
        "a heartbeat within the lease writes nothing to the node's chain either"
    );

    // Restarting the sidecar with opt-out: same node, updated, no longer a custodian.
    let first_id = agent.node_id.clone();
    drop(agent);
    let mut opted_out = config(data.path(), "alice", Some(admin));
    opted_out.participation.custodian_opt_in = false;
    let agent = NodeAgent::connect(opted_out, admin).await.unwrap();
    assert_eq!(agent.node_id, first_id, "restart keeps the node id");
    agent.register().await.unwrap();
    agent.heartbeat_once().await.unwrap();
    await_consistency_s(120, [&sidecar_cell, &observer])
        .await
        .unwrap();
    let custodians: Vec<RankedCustodian> = conductor_call_fn::<GetAvailableCustodians>(
        &conductors[1],
        &zome,
        CustodianFilters::default(),
    )
    .await;
    assert!(custodians.is_empty(), "opted out: {custodians:?}");
    let seen: Vec<NodeRegistration> =
        conductor_call_fn::<GetNodesByRegion>(&conductors[1], &zome, "eu-west".into()).await;
    assert_eq!(
        seen.len(),
        1,
        "re-registration updates rather than duplicates"
    );
    assert!(!seen[0].custodian_opt_in);
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_conductor_restart_keeps_node_identity() {
    let rendezvous = BootstrapServer::start((Ipv4Addr::LOCALHOST, 0).into())
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let settings = EmbeddedSettings {
        data_dir: data.path().to_path_buf(),
        admin_port: 0,
        network_url: rendezvous.url(),
    };

    let conductor = EmbeddedConductor::start(&settings)
        .await
        .expect("embedded conductor starts");
    let admin: SocketAddr = (Ipv4Addr::LOCALHOST, conductor.admin_port()).into();
    let agent = NodeAgent::connect(config(data.path(), "rack", None), admin)
        .await
        .unwrap();
    agent.register().await.unwrap();
    let first: Option<RegisteredNode> = agent.call_fn::<GetMyNode>(()).await.unwrap();
    let first = first.expect("registered");
    let first_id = agent.node_id.clone();
    drop(agent);
    conductor.shutdown().await;

    // From here on the admin port stays the same, so a daemon outlives a
    // restart of its conductor.
    let settings = EmbeddedSettings {
        admin_port: free_port(),
        ..settings
    };
    let conductor = EmbeddedConductor::start(&settings)
        .await
        .expect("restarts on the same data");
    let admin: SocketAddr = (Ipv4Addr::LOCALHOST, conductor.admin_port()).into();
    // This agent later runs as a daemon whose own periodic calls are rare,
    // so nothing but the daemon's watch on its websocket reopens it.
    let mut quiet = config(data.path(), "rack", None);
    quiet.custody.reconcile_interval_secs = 86_400;
    quiet.custody.detect_interval_secs = 3600;
    let agent = NodeAgent::connect(quiet, admin).await.unwrap();
    assert_eq!(
        agent.node_id, first_id,
        "same keystore, same agent, same node id"
    );
    agent.register().await.unwrap();
    let again: Option<RegisteredNode> = agent.call_fn::<GetMyNode>(()).await.unwrap();
    let again = again.expect("still registered");
    assert_eq!(
        again.registration.registered_at,
        first.registration.registered_at
    );
    assert!(again.registration.updated_at > first.registration.updated_at);
    assert_ne!(
        again.action_hash, first.action_hash,
        "a new version, not a new node"
    );

    // The conductor restarts under a running daemon (issue 21): the app
    // websocket that carries its signals dies. Signals must reach the
    // daemon again within seconds, without waiting for some call of its own
    // to fail first (its periodic work runs rarely here).
    let node_id = agent.node_id.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let daemon = Daemon::start(agent, listener).await.unwrap();
    let mut signals = daemon.agent.signals();
    // Let it settle (registered, first lease written): from then on nothing
    // it does routinely here calls through the identity's websocket.
    let settle_by = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while daemon.agent.metrics.heartbeats_sent.get() == 0 {
        assert!(
            std::time::Instant::now() < settle_by,
            "the daemon wrote no lease"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    conductor.shutdown().await;
    let conductor = EmbeddedConductor::start(&settings)
        .await
        .expect("restarts on the same port");
    // A signal of the node's cell, raised through another client.
    let client = Connection::open(
        admin,
        &packed("elohim_orchestrator.happ"),
        elohim_sidecar::APP_ID,
        ROLE,
    )
    .await
    .expect("a client connects to the restarted conductor");
    let hint = marker_hint(&node_id, daemon.agent.agent().clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    'heard: loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no signal reached the daemon within 30 s of its conductor's restart"
        );
        let _: () = client
            .call(COORDINATOR, "recv_remote_signal", hint.clone())
            .await
            .expect("the zome passes the hint on");
        let wait = tokio::time::sleep(std::time::Duration::from_secs(1));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                s = signals.recv() => match s {
                    Ok(Signal::App { signal, .. }) => {
                        if signal.into_inner().decode::<RegistrySignal>().ok().as_ref()
                            == Some(&hint)
                        {
                            break 'heard;
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("the daemon's signal channel closed: {e}"),
                }
            }
        }
    }
    assert!(
        daemon.agent.metrics.app_reconnects.get() >= 1,
        "the daemon noticed the dead websocket itself"
    );
    daemon.stop().await;
    conductor.shutdown().await;
}

/// A port free on 127.0.0.1 now.
fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `ReplicateContent` for nobody, to see signals arrive (no node acts on
/// it: its custodian is not this node).
fn marker_hint(node_id: &str, owner: AgentPubKey) -> RegistrySignal {
    let assignment = CustodianAssignment {
        assignment_id: "marker".into(),
        content_id: "0".repeat(64),
        content_hash: "1".repeat(64),
        content_size_bytes: 1,
        shard_size_bytes: 1,
        shard_hash: "2".repeat(64),
        owner_agent: owner,
        reach: "private".into(),
        custodian_node_id: format!("nobody-{node_id}"),
        custodian_registration: ActionHash::from_raw_36(vec![0; 36]),
        strategy: "full_replica".into(),
        threshold: 1,
        shard_count: 1,
        shard_index: 0,
        round_custodians: vec![],
        decided_by: "publisher".into(),
        decision_round: 0,
        replaces: None,
        preferred_region: None,
        required_tier: None,
        quorum_proposal: None,
        quorum_votes: vec![],
        relationship: None,
    };
    RegistrySignal::ReplicateContent {
        content_id: assignment.content_id.clone(),
        assignment: AssignmentRecord {
            entry_hash: EntryHash::from_raw_36(vec![0; 36]),
            assignment,
            assigned_at: None,
        },
        from_shard_holders: vec![],
        to_custodian: format!("nobody-{node_id}"),
        strategy: "full_replica".into(),
    }
}

/// Every node beats to four monitors of its region, and each monitor
/// records a first verdict about what it watches: every node ends up with
/// more than three attesters, as the plan's probing rounds gave it, without
/// a record per probe.
#[tokio::test(flavor = "multi_thread")]
async fn sidecars_watch_their_region_so_every_node_has_several_attesters() {
    use elohim_tests::sidecars::SidecarNet;
    let net = SidecarNet::start(5, &[0, 1, 2, 3, 4], |_, _| {}).await;
    net.await_custodians(0, 5).await;
    let ids: Vec<String> = (0..5).map(|i| net.node_id(i)).collect();
    let observer = net.node(0).agent.clone();
    net.until(240, "every node attested by more than 3 peers", || {
        let observer = observer.clone();
        let ids = ids.clone();
        async move {
            for id in &ids {
                let h: NodeHealthSummary =
                    observer.call_fn::<GetNodeHealth>(id.clone()).await.ok()?;
                if h.attestations.distinct_attesters <= 3 || h.attestations.successes <= 3 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
}
