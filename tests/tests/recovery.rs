//! The plan's "node hit by lightning" scenario, through the sidecars' HTTP
//! recovery API: Alice's family keeps her private content; her rack is
//! destroyed (conductor and data directory); a fresh node gets every item
//! back, byte for byte, once her family approved. On the way: recovery is
//! refused while her node is online and before approval, a revoked
//! relationship yields no custodian (and the ex-custodian drops what it
//! kept), approvals from outside the family or signed by the wrong agent do
//! not count, and bad input gets a 400.

use elohim_sidecar::http::H_TOKEN;
use elohim_sidecar::recovery::secret::RecoverySecret;
use elohim_tests::sidecars::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{
    ApproveRecovery, ConsentToRelationship, CreateRelationship, GetFamilyCustodians, GetMyNode,
    GetNodeOfAgent, GetRecoveryStatus, GetRelationships, GetShardHolders, RequestRecovery,
};
use node_registry_integrity::*;
use serde_json::{json, Value};

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;
const DOORWAY: usize = 3;

/// Calls a node's local API; returns the status and the JSON body.
async fn api(
    net: &SidecarNet,
    node: usize,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let d = net.node(node);
    let url = format!("http://{}{path}", d.http_addr);
    let client = reqwest::Client::new();
    let mut req = match method {
        "GET" => client.get(&url),
        _ => client.post(&url),
    }
    .header(H_TOKEN, &d.api_token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the sidecar answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn item(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

async fn relate(net: &SidecarNet, from: usize, to: usize) -> ActionHash {
    let other = net.node(to).agent.agent().clone();
    let rel: ActionHash = net
        .node(from)
        .agent
        .call_fn::<CreateRelationship>(CreateRelationshipInput {
            other,
            kind: "family".into(),
            auto_custody_enabled: true,
        })
        .await
        .expect("relationship proposed");
    net.until(60, "relationship visible to the other party", || async {
        net.node(to)
            .agent
            .call_fn::<ConsentToRelationship>(ConsentInput {
                relationship: rel.clone(),
                consent: true,
            })
            .await
            .ok()
    })
    .await;
    rel
}

async fn family_of(net: &SidecarNet, observer: usize, owner: &AgentPubKey) -> Vec<String> {
    let f: Vec<FamilyCustodian> = net
        .node(observer)
        .agent
        .call_fn::<GetFamilyCustodians>(owner.clone())
        .await
        .expect("family readable");
    f.into_iter().map(|f| f.node_id).collect()
}

fn held_of(net: &SidecarNet, node: usize, contents: &[String]) -> usize {
    net.node(node)
        .custody
        .store
        .list()
        .unwrap()
        .iter()
        .filter(|r| contents.contains(&r.content_id))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn node_hit_by_lightning_recovers_private_content_from_family() {
    let mut net = SidecarNet::start(4, &[ALICE, BOB, CAROL], |_, _| {}).await;
    net.await_custodians(ALICE, 3).await;
    let alice = net.node(ALICE).agent.agent().clone();
    let bob_node = net.node_id(BOB);
    let carol_node = net.node_id(CAROL);

    // Alice and Bob, and Alice and Carol, consent to keep each other's data.
    relate(&net, ALICE, BOB).await;
    let alice_carol = relate(&net, ALICE, CAROL).await;
    net.until(60, "both relationships active", || async {
        let mut f = family_of(&net, ALICE, &alice).await;
        f.sort();
        let mut want = vec![bob_node.clone(), carol_node.clone()];
        want.sort();
        (f == want).then_some(())
    })
    .await;

    // Alice publishes five private items: each goes to her family.
    let sizes = [1usize, 4 << 10, 100 << 10, 1 << 20, 3 << 20];
    let mut originals = Vec::new();
    for (i, len) in sizes.iter().enumerate() {
        let bytes = item(*len, i as u8 + 1);
        let path = net.dirs[ALICE].path().join(format!("private-{i}"));
        std::fs::write(&path, &bytes).unwrap();
        let report = net
            .node(ALICE)
            .custody
            .publish(
                elohim_sidecar::custody::PublishRequest {
                    path,
                    reach: Some("private".into()),
                    ..Default::default()
                },
                &|_| {},
            )
            .await
            .unwrap_or_else(|e| panic!("publishing item {i}: {e}"));
        let mut custodians = report.custodians.clone();
        custodians.sort();
        let mut family = vec![bob_node.clone(), carol_node.clone()];
        family.sort();
        assert_eq!(custodians, family, "private item {i} goes to the family");
        originals.push((report.content_id, bytes));
    }
    let ids: Vec<String> = originals.iter().map(|(id, _)| id.clone()).collect();
    net.until(120, "Bob and Carol hold all five", || async {
        (held_of(&net, BOB, &ids) == 5 && held_of(&net, CAROL, &ids) == 5).then_some(())
    })
    .await;

    // Carol withdraws: she is no longer Alice's custodian and lets go.
    let _: ActionHash = net
        .node(CAROL)
        .agent
        .call_fn::<ConsentToRelationship>(ConsentInput {
            relationship: alice_carol.clone(),
            consent: false,
        })
        .await
        .unwrap();
    net.until(
        60,
        "the revoked relationship yields no custodian",
        || async { (family_of(&net, ALICE, &alice).await == vec![bob_node.clone()]).then_some(()) },
    )
    .await;
    net.until(60, "Carol drops what she kept for Alice", || async {
        (held_of(&net, CAROL, &ids) == 0).then_some(())
    })
    .await;
    assert_eq!(held_of(&net, BOB, &ids), 5, "Bob keeps his copies");

    // A new node: Alice's doorway back. It files a request only once its
    // own registration is written (its first one can take minutes on
    // this loaded 2-core machine).
    net.join(DOORWAY).await;
    net.until(300, "the doorway is registered", || async {
        net.node(DOORWAY)
            .agent
            .call_fn::<GetMyNode>(())
            .await
            .ok()
            .flatten()
    })
    .await;
    let alice_id = alice.to_string();

    // Bad input is a 400 with a message.
    let (s, body) = api(
        &net,
        DOORWAY,
        "POST",
        "/api/recovery/initiate",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("agent_id"),
        "{body}"
    );
    let (s, body) = api(
        &net,
        DOORWAY,
        "POST",
        "/api/recovery/initiate",
        Some(json!({"agent_id": "alice"})),
    )
    .await;
    assert_eq!(s, 400, "{body}");

    // Nobody to recover from: an agent with no family.
    let stranger = AgentPubKey::from_raw_32(vec![7; 32]).to_string();
    let (s, body) = api(
        &net,
        DOORWAY,
        "POST",
        "/api/recovery/initiate",
        Some(json!({"agent_id": stranger})),
    )
    .await;
    assert_eq!(s, 404, "{body}");
    assert_eq!(body["error"], "No family custodians found");
    assert!(body["suggestion"].is_string(), "{body}");

    // Refused while Alice's node is online.
    net.until(180, "the doorway sees Alice's node", || async {
        net.node(DOORWAY)
            .agent
            .call_fn::<GetNodeOfAgent>(alice.clone())
            .await
            .ok()
            .flatten()
    })
    .await;
    net.until(60, "Alice's heartbeats visible to the doorway", || async {
        let (s, body) = api(
            &net,
            DOORWAY,
            "POST",
            "/api/recovery/initiate",
            Some(json!({"agent_id": alice_id})),
        )
        .await;
        (s == 409).then_some(body)
    })
    .await;

    // The doorway joined last: it answers from its own store once it is an
    // authority, so wait until that store holds Alice's family (a node that
    // joined moments ago may not have it yet, and says so).
    net.until(120, "the doorway sees Alice's family", || async {
        (family_of(&net, DOORWAY, &alice).await == vec![bob_node.clone()]).then_some(())
    })
    .await;

    // A request filed while Alice's node is alive (issue 21, item 6): the
    // DNA cannot tell (the doorway's sidecar would have refused it, its
    // zome does not). Bob's sidecar will not approve it, and approved
    // anyway (Bob's zome, past his sidecar), his sidecar serves it nothing.
    let early: ActionHash = net
        .node(DOORWAY)
        .agent
        .call_fn::<RequestRecovery>(alice.clone())
        .await
        .expect("the DNA files a request it cannot judge");
    let early_id = early.to_string();
    net.until(60, "the early request reaches Bob", || async {
        let (s, _) = api(&net, BOB, "GET", &format!("/api/recovery/{early_id}"), None).await;
        (s == 200).then_some(())
    })
    .await;
    let (s, body) = api(
        &net,
        BOB,
        "POST",
        "/api/recovery/approve",
        Some(json!({"session_id": early_id})),
    )
    .await;
    assert_eq!(s, 409, "Bob approved the recovery of a live node: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not judged failed"),
        "{body}"
    );
    // (Its commit waits for the request to reach Bob's own store.)
    net.until(60, "Bob's zome approves the early request", || async {
        net.node(BOB)
            .agent
            .call_fn::<ApproveRecovery>(ApproveRecoveryInput {
                request: early.clone(),
                approve: true,
            })
            .await
            .ok()
    })
    .await;
    net.until(60, "Bob sees the early request verified", || async {
        let st: RecoveryStatus = net
            .node(BOB)
            .agent
            .call_fn::<GetRecoveryStatus>(early.clone())
            .await
            .ok()?;
        st.verified.then_some(())
    })
    .await;
    // The doorway joined last: Bob's holding reaches its store by publish
    // or gossip, some seconds after Bob confirmed it.
    let at_bob: ShardHolder = net
        .until(120, "the doorway sees Bob hold the first item", || async {
            let holders: Vec<ShardHolder> = net
                .node(DOORWAY)
                .agent
                .call_fn::<GetShardHolders>(ids[0].clone())
                .await
                .ok()?;
            holders.into_iter().find(|h| h.node_id == bob_node)
        })
        .await;
    let auth = net
        .node(DOORWAY)
        .custody
        .sign(
            "GET",
            &at_bob.shard_hash,
            &at_bob.assignment.to_string(),
            &bob_node,
        )
        .await
        .unwrap();
    let mut req = reqwest::Client::new()
        .get(format!(
            "http://{}/shards/{}",
            net.node(BOB).http_addr,
            at_bob.shard_hash
        ))
        .header(elohim_sidecar::transfer::H_RECOVERY, &early_id);
    for (k, v) in auth.headers() {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(
        status,
        409,
        "Bob served a live person's shard to a recovery: {}",
        text.chars().take(200).collect::<String>()
    );
    assert!(text.contains("not judged failed"), "{text}");

    // Lightning: Alice's conductor and data directory are gone. Her recovery
    // code was written down elsewhere.
    let code = elohim_sidecar::recovery::secret::load_or_create(net.dirs[ALICE].path())
        .unwrap()
        .code();
    net.kill(ALICE).await;
    std::fs::remove_dir_all(net.dirs[ALICE].path()).unwrap();

    // Once she is declared lost, recovery starts: Bob is her custodian.
    let started = net
        .until(120, "recovery initiated", || async {
            let (s, body) = api(
                &net,
                DOORWAY,
                "POST",
                "/api/recovery/initiate",
                Some(json!({"agent_id": alice_id})),
            )
            .await;
            match s {
                201 => Some(body),
                409 => None,
                // A conductor call that timed out (a read sent to Alice's
                // dead conductor before the network marks it gone) is
                // worth asking again, as a user would.
                502 if body.to_string().contains("Timeout") => None,
                other => panic!("initiate answered {other}: {body}"),
            }
        })
        .await;
    let session = started["session_id"].as_str().unwrap().to_string();
    let found: Vec<&str> = started["custodians_found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(found, vec![bob_node.as_str()]);
    assert_eq!(started["items"], 5);
    assert_eq!(started["required_approvals"], 1);
    assert_eq!(
        started["estimated_data_size"],
        sizes.iter().sum::<usize>() as u64
    );
    assert!(!started["next_steps"].as_array().unwrap().is_empty());
    // Asking again returns the same session rather than a second request.
    let (s, again) = api(
        &net,
        DOORWAY,
        "POST",
        "/api/recovery/initiate",
        Some(json!({"agent_id": alice_id})),
    )
    .await;
    assert_eq!(
        (s, again["session_id"].as_str()),
        (200, Some(session.as_str()))
    );

    // Not before the family approves.
    let sync = json!({"session_id": session, "recovery_code": code});
    let (s, body) = api(
        &net,
        DOORWAY,
        "POST",
        "/api/recovery/sync",
        Some(sync.clone()),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(
        (body["approved"].as_u64(), body["required"].as_u64()),
        (Some(0), Some(1))
    );
    let (s, body) = api(
        &net,
        DOORWAY,
        "POST",
        "/api/recovery/sync",
        Some(json!({"session_id": session, "recovery_code": "1234-5678"})),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("recovery_code"),
        "{body}"
    );

    // Carol, no longer family, cannot approve: her sidecar refuses, and a
    // hand-made approval (with her old, revoked proof) fails validation, as
    // does one she signs in Bob's name.
    net.until(60, "the request reaches Carol", || async {
        let (s, _) = api(
            &net,
            CAROL,
            "GET",
            &format!("/api/recovery/{session}"),
            None,
        )
        .await;
        (s == 200).then_some(())
    })
    .await;
    let (s, body) = api(
        &net,
        CAROL,
        "POST",
        "/api/recovery/approve",
        Some(json!({"session_id": session})),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not in the recovery's family"),
        "{body}"
    );
    let rels: Vec<RelationshipState> = net
        .node(CAROL)
        .agent
        .call_fn::<GetRelationships>(net.node(CAROL).agent.agent().clone())
        .await
        .unwrap();
    let old = rels
        .iter()
        .find(|r| r.relationship_hash == alice_carol)
        .unwrap();
    let old_proof = FamilyProof {
        relationship: alice_carol.clone(),
        consents: vec![
            old.consent_a.clone().unwrap().1,
            old.consent_b.clone().unwrap().1,
        ],
    };
    let request = ActionHash::try_from(session.clone()).unwrap();
    net.arm_mallory(CAROL).await;
    let carol = net.node(CAROL).agent.agent().clone();
    let forged = net
        .mallory::<_, ActionHash>(
            CAROL,
            "create_recovery_approval",
            RecoveryApproval {
                request: request.clone(),
                approver: carol,
                approve: true,
                proof: old_proof.clone(),
            },
        )
        .await;
    let err = forged.expect_err("an approval from outside the family is invalid");
    assert!(err.contains("not in the recovery's family"), "{err}");
    let forged = net
        .mallory::<_, ActionHash>(
            CAROL,
            "create_recovery_approval",
            RecoveryApproval {
                request: request.clone(),
                approver: net.node(BOB).agent.agent().clone(),
                approve: true,
                proof: old_proof,
            },
        )
        .await;
    let err = forged.expect_err("an approval signed by the wrong agent is invalid");
    assert!(err.contains("own agent"), "{err}");
    let (_, report) = api(
        &net,
        DOORWAY,
        "GET",
        &format!("/api/recovery/{session}"),
        None,
    )
    .await;
    assert_eq!(report["verified"], false, "{report}");
    assert!(
        report["approved_by"].as_array().unwrap().is_empty(),
        "{report}"
    );

    // Bob approves from his own node.
    let (s, body) = api(
        &net,
        BOB,
        "POST",
        "/api/recovery/approve",
        Some(json!({"session_id": session})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    net.until(60, "the doorway sees the recovery verified", || async {
        let (_, r) = api(
            &net,
            DOORWAY,
            "GET",
            &format!("/api/recovery/{session}"),
            None,
        )
        .await;
        (r["verified"] == true).then_some(())
    })
    .await;

    // The wrong (well-formed) code decrypts nothing; nothing is lost and a
    // second sync with the right code resumes.
    let elsewhere = tempfile::tempdir().unwrap();
    let wrong = elohim_sidecar::recovery::secret::load_or_create(elsewhere.path())
        .unwrap()
        .code();
    assert!(RecoverySecret::from_code(&wrong).is_ok());
    let (s, body) = api(
        &net,
        DOORWAY,
        "POST",
        "/api/recovery/sync",
        Some(json!({"session_id": session, "recovery_code": wrong})),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    let failed = net
        .until(120, "the wrong-code sync ends", || async {
            let (_, r) = api(
                &net,
                DOORWAY,
                "GET",
                &format!("/api/recovery/{session}"),
                None,
            )
            .await;
            (r["session"]["state"] == "incomplete").then_some(r)
        })
        .await;
    let errors: Vec<&str> = failed["session"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["error"].as_str())
        .collect();
    assert_eq!(errors.len(), 5, "{failed}");
    assert!(
        errors.iter().all(|e| e.contains("recovery code")),
        "{errors:?}"
    );

    let (s, body) = api(&net, DOORWAY, "POST", "/api/recovery/sync", Some(sync)).await;
    assert_eq!(s, 202, "{body}");
    let done = net
        .until(240, "all five items recovered", || async {
            let (_, r) = api(
                &net,
                DOORWAY,
                "GET",
                &format!("/api/recovery/{session}"),
                None,
            )
            .await;
            (r["session"]["state"] == "complete").then_some(r)
        })
        .await;
    assert_eq!(
        done["session"]["bytes_recovered"],
        sizes.iter().sum::<usize>() as u64
    );
    for (id, bytes) in &originals {
        let path = net.dirs[DOORWAY].path().join("recovered").join(id);
        let back = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(back == *bytes, "item {id} comes back byte-identical");
    }
}
