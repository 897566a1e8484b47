//! The packed bundles run: the DNA from workdir/ in sweettest, and the .happ
//! installed through the conductor's admin API as `hc app install` does.

use elohim_tests::*;
use holochain::prelude::*;
use holochain::sweettest::SweetConductor;
use holochain_client::{
    AdminWebsocket, AppWebsocket, AuthorizeSigningCredentialsPayload, ClientAgentSigner,
    InstallAppPayload,
};
use holochain_conductor_api::CellInfo;
use holochain_types::websocket::AllowedOrigins;
use node_registry_integrity::zome_fns::{DeriveNodeId, GetMyNode, ZomeFn};
use node_registry_integrity::RegisteredNode;
use std::net::Ipv4Addr;

#[tokio::test(flavor = "multi_thread")]
async fn packed_dna_answers_zome_calls() {
    let net = Network::start(1).await;
    let id: String = net.call_fn::<DeriveNodeId>(0, "Alice's Rack".into()).await;
    assert_eq!(id, net.peers[0].node_id("alice-s-rack"));
    let none: Option<RegisteredNode> = net.call_fn::<GetMyNode>(0, ()).await;
    assert!(none.is_none(), "a fresh agent has no node");
}

#[tokio::test(flavor = "multi_thread")]
async fn happ_installs_through_admin_api_and_answers() {
    let conductor = SweetConductor::standard().await;
    let admin_port = conductor
        .get_arbitrary_admin_websocket_port()
        .expect("sweettest conductors have an admin interface");
    let admin = AdminWebsocket::connect((Ipv4Addr::LOCALHOST, admin_port), None)
        .await
        .expect("admin websocket connects");

    let app_id = "elohim_orchestrator".to_string();
    let info = admin
        .install_app(InstallAppPayload {
            agent_key: None,
            installed_app_id: Some(app_id.clone()),
            network_seed: None,
            roles_settings: None,
            source: AppBundleSource::Path(packed("elohim_orchestrator.happ")),
            ignore_genesis_failure: false,
            restore_from_dht: false,
        })
        .await
        .expect("the packed hApp installs");
    assert!(
        info.cell_info.contains_key(ROLE),
        "the hApp has a {ROLE} role: {:?}",
        info.cell_info.keys()
    );
    admin.enable_app(app_id.clone()).await.expect("app enables");

    let app_port = admin
        .attach_app_interface(0, None, AllowedOrigins::Any, None)
        .await
        .expect("app interface attaches");
    let token = admin
        .issue_app_auth_token(app_id.clone().into())
        .await
        .expect("token issued");
    let signer = ClientAgentSigner::default();
    let app = AppWebsocket::connect(
        (Ipv4Addr::LOCALHOST, app_port),
        token.token,
        signer.clone().into(),
        None,
    )
    .await
    .expect("app websocket connects");

    let cell_id = match &info.cell_info[ROLE][0] {
        CellInfo::Provisioned(c) => c.cell_id.clone(),
        other => panic!("expected a provisioned cell, got {other:?}"),
    };
    let credentials = admin
        .authorize_signing_credentials(AuthorizeSigningCredentialsPayload {
            cell_id: cell_id.clone(),
            functions: None,
        })
        .await
        .expect("signing credentials");
    signer.add_credentials(cell_id.clone(), credentials);

    let input: <DeriveNodeId as ZomeFn>::Input = "admin api".into();
    let out = app
        .call_zome(
            cell_id.clone().into(),
            COORDINATOR.into(),
            DeriveNodeId::NAME.into(),
            ExternIO::encode(input).unwrap(),
        )
        .await
        .expect("zome call through the app websocket");
    let node_id: <DeriveNodeId as ZomeFn>::Output = out.decode().unwrap();
    let expected =
        registry_core::node_id::derive_node_id("admin api", cell_id.agent_pubkey().get_raw_32());
    assert_eq!(node_id, expected);
}

/// Every zome function the clients know (`node_registry_integrity::zome_fns`)
/// is an export of the packed coordinator, and every export of it is one
/// of them or a Holochain callback: a rename on either side fails here, not
/// in a suite twenty minutes later.
#[test]
fn every_zome_fn_is_an_export_of_the_packed_coordinator() {
    let wasm = std::fs::read(packed("node_registry_coordinator.wasm")).unwrap();
    let exports = wasm_function_exports(&wasm);
    assert!(
        exports.len() > 10,
        "a coordinator exports functions: {exports:?}"
    );
    let known = node_registry_integrity::zome_fns::ALL;
    let missing: Vec<&&str> = known
        .iter()
        .filter(|n| !exports.iter().any(|e| e == *n))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported by the packed coordinator: {missing:?}"
    );
    const CALLBACKS: [&str; 7] = [
        "init",
        "recv_remote_signal",
        "entry_defs",
        "validate",
        "__num_entry_types",
        "__num_link_types",
        "__getrandom_v03_custom",
    ];
    let unknown: Vec<&String> = exports
        .iter()
        .filter(|e| !known.contains(&e.as_str()) && !CALLBACKS.contains(&e.as_str()))
        .filter(|e| !e.starts_with("__hc__"))
        .collect();
    assert!(
        unknown.is_empty(),
        "exported but not in zome_fns: {unknown:?}"
    );
}

/// The names of the functions a wasm module exports (its export section).
fn wasm_function_exports(wasm: &[u8]) -> Vec<String> {
    fn leb(d: &[u8], i: &mut usize) -> usize {
        let (mut r, mut shift) = (0usize, 0);
        loop {
            let b = d[*i];
            *i += 1;
            r |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b < 0x80 {
                return r;
            }
        }
    }
    assert_eq!(&wasm[..4], b"\0asm", "a wasm module");
    let mut out = Vec::new();
    let mut i = 8;
    while i < wasm.len() {
        let section = wasm[i];
        i += 1;
        let size = leb(wasm, &mut i);
        if section == 7 {
            let mut j = i;
            for _ in 0..leb(wasm, &mut j) {
                let len = leb(wasm, &mut j);
                let name = String::from_utf8_lossy(&wasm[j..j + len]).to_string();
                j += len;
                let kind = wasm[j];
                j += 1;
                leb(wasm, &mut j);
                if kind == 0 {
                    out.push(name);
                }
            }
        }
        i += size;
    }
    out
}
