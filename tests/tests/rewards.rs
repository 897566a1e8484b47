//! Shefa rewards on the DHT: a custodian's service event counts only once
//! the receiver acknowledges it, and validation refuses every way of minting
//! points alone (inflated points, a tier above the registration's, serving
//! oneself, acknowledging one's own event).

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{
    AcknowledgeService, GetNodeEarnings, RecordServiceEvent, RegisterNode,
};
use node_registry_integrity::*;
use registry_core::reward::reward_millipoints;
use registry_core::StewardTier;

const MB: u64 = 1_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn only_acknowledged_service_earns_points() {
    let mut net = Network::start(2).await;
    net.arm_mallory(0).await;
    let (a, b) = (net.peers[0].clone(), net.peers[1].clone());
    let alice = registration(&a, "alice", "eu-west");
    let bob = registration(&b, "bob", "eu-west");
    let alice_reg: ActionHash = net.call_fn::<RegisterNode>(0, alice.clone()).await;
    let _: ActionHash = net.call_fn::<RegisterNode>(1, bob.clone()).await;
    let shard = "ab".repeat(32);

    // Alice (guardian) serves 3 MB to Bob: 3 x 1.5 = 4.5 points, pending.
    let event: ActionHash = net
        .call_fn::<RecordServiceEvent>(
            0,
            RecordServiceInput {
                receiver: b.agent(),
                shard_hashes: vec![shard.clone()],
                bytes: 3 * MB,
            },
        )
        .await;
    let earned: NodeEarnings = net
        .call_fn::<GetNodeEarnings>(0, alice.node_id.clone())
        .await;
    assert_eq!(earned.pending_millipoints, 4_500);
    assert_eq!(earned.pending_events, 1);
    assert_eq!(
        earned.acknowledged_millipoints, 0,
        "unacknowledged points never count"
    );

    // Alice cannot acknowledge her own event, with any code.
    rejected(
        "provider acknowledges its own event",
        net.mallory::<_, ActionHash>(
            0,
            "create_service_ack",
            ServiceAcknowledgement {
                event: event.clone(),
                receiver: a.agent(),
                shard_hashes: vec![shard.clone()],
                bytes: 3 * MB,
                delegation: None,
            },
        )
        .await,
        "only the event's receiver may acknowledge it",
    );
    rejected(
        "ack signed for someone else",
        net.mallory::<_, ActionHash>(
            0,
            "create_service_ack",
            ServiceAcknowledgement {
                event: event.clone(),
                receiver: b.agent(),
                shard_hashes: vec![shard.clone()],
                bytes: 3 * MB,
                delegation: None,
            },
        )
        .await,
        "signed by the receiver itself",
    );

    // Bob acknowledges what he received; claiming other bytes is refused.
    net.sync().await;
    let wrong = net
        .try_call_fn::<AcknowledgeService>(
            1,
            AcknowledgeServiceInput {
                event: event.clone(),
                shard_hashes: vec![shard.clone()],
                bytes: 2 * MB,
            },
        )
        .await;
    rejected("ack of other bytes", wrong, "were received");
    let ack = AcknowledgeServiceInput {
        event: event.clone(),
        shard_hashes: vec![shard.clone()],
        bytes: 3 * MB,
    };
    let first: ActionHash = net.call_fn::<AcknowledgeService>(1, ack.clone()).await;
    let again: ActionHash = net.call_fn::<AcknowledgeService>(1, ack).await;
    assert_eq!(first, again, "acknowledging twice writes nothing new");

    // Seen from Bob's node once gossip arrives: 4.5 points, counted once.
    let earned: NodeEarnings = net
        .eventually_fn::<GetNodeEarnings>(1, alice.node_id.clone(), 60, |e: &NodeEarnings| {
            e.acknowledged_events == 1
        })
        .await;
    assert_eq!(earned.acknowledged_millipoints, 4_500);
    assert_eq!(earned.acknowledged_bytes, 3 * MB);
    assert_eq!(earned.pending_millipoints, 0);
    assert!(earned.recent[0].acknowledged);

    // --- forged events via mallory ---------------------------------------
    let honest = ServiceEvent {
        provider_node_id: alice.node_id.clone(),
        provider_registration: alice_reg.clone(),
        receiver: b.agent(),
        shard_hashes: vec![shard.clone()],
        bytes: 10 * MB,
        steward_tier: "guardian".into(),
        points_milli: reward_millipoints(10 * MB, StewardTier::Guardian),
        timestamp: Timestamp::now(),
        delegation: None,
    };
    let forge = |f: &dyn Fn(&mut ServiceEvent)| {
        let mut e = honest.clone();
        f(&mut e);
        e
    };
    let cases: Vec<(&str, ServiceEvent, &str)> = vec![
        (
            "inflated points",
            forge(&|e| e.points_milli = 1_000_000),
            "points_milli must be 15000",
        ),
        (
            "tier above the registration's",
            forge(&|e| {
                e.steward_tier = "pioneer".into();
                e.points_milli = reward_millipoints(10 * MB, StewardTier::Pioneer);
            }),
            "is not the registration's tier guardian",
        ),
        (
            "serving oneself",
            forge(&|e| e.receiver = a.agent()),
            "a node cannot serve itself",
        ),
        (
            "another node's event",
            forge(&|e| e.provider_node_id = bob.node_id.clone()),
            "recorded by its provider",
        ),
        ("no bytes", forge(&|e| e.bytes = 0), "bytes must be"),
        (
            "shards listed out of order",
            forge(&|e| e.shard_hashes = vec!["ff".repeat(32), "00".repeat(32)]),
            "sorted and distinct",
        ),
        (
            "stale timestamp",
            forge(&|e| {
                e.timestamp = Timestamp::from_micros(e.timestamp.as_micros() - 600 * 1_000_000)
            }),
            "timestamp",
        ),
    ];
    for (what, e, reason) in cases {
        rejected(
            what,
            net.mallory::<_, ActionHash>(0, "create_service_event", e)
                .await,
            reason,
        );
    }
    // The honest shape passes through mallory too: the rules, not the
    // coordinator, are what refuse the forgeries above.
    let _: ActionHash = net
        .mallory(0, "create_service_event", honest)
        .await
        .expect("a well-formed event is valid");
}

/// Through the sidecars: a custodian serving a shard writes nothing then;
/// its summary for the period records the event, the receiving node
/// acknowledges it after checking it against what it verified, and the
/// custodian's earnings (seen from a third node) count it.
#[tokio::test(flavor = "multi_thread")]
async fn serving_a_shard_earns_acknowledged_points() {
    use elohim_sidecar::custody::PublishRequest;
    use elohim_tests::sidecars::SidecarNet;
    let net = SidecarNet::start(3, &[0, 1, 2], |_, _| {}).await;
    net.await_custodians(0, 3).await;
    let bytes: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    let path = net.dirs[0].path().join("song.bin");
    std::fs::write(&path, &bytes).unwrap();
    let report = net
        .node(0)
        .custody
        .publish(
            PublishRequest {
                path,
                strategy: Some("full_replica".into()),
                k: Some(1),
                n: Some(2),
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .expect("publishes to nodes 1 and 2");
    let out = net.dirs[0].path().join("song.out");
    net.node(0)
        .custody
        .retrieve(&report.content_id, &out, &|_| {})
        .await
        .expect("retrieves from a custodian");
    assert_eq!(std::fs::read(&out).unwrap(), bytes);

    // Node 2 watches both custodians' earnings until the served shard counts.
    let custodians = [net.node_id(1), net.node_id(2)];
    let observer = net.node(2).agent.clone();
    let retriever = net.node(0).agent.agent().clone();
    let (earned, tier) = net
        .until(120, "the served shard is acknowledged", || {
            let observer = observer.clone();
            let custodians = custodians.clone();
            let retriever = retriever.clone();
            async move {
                for c in custodians {
                    let e: NodeEarnings = observer.call_fn::<GetNodeEarnings>(c).await.ok()?;
                    let tier = e
                        .recent
                        .iter()
                        .find(|v| v.acknowledged && v.event.receiver == retriever)
                        .map(|v| v.event.steward_tier.clone());
                    if let Some(tier) = tier {
                        return Some((e, tier));
                    }
                }
                None
            }
        })
        .await;
    // The retrieval is one acknowledged event; a custodian that fetched the
    // shard from the other (reconciliation under DHT lag) may have earned
    // another, and every acknowledged event counts.
    let served = earned
        .recent
        .iter()
        .find(|v| v.acknowledged && v.event.receiver == retriever)
        .expect("the retrieval by node 0 is acknowledged");
    assert!(
        served.event.bytes >= bytes.len() as u64,
        "the whole shard was served"
    );
    let counted: u64 = earned
        .recent
        .iter()
        .filter(|v| v.acknowledged)
        .map(|v| reward_millipoints(v.event.bytes, v.event.steward_tier.parse().unwrap()))
        .sum();
    assert_eq!(earned.acknowledged_millipoints, counted);
    assert_eq!(
        tier, "guardian",
        "the organ-donation defaults reach guardian"
    );
    assert!(earned.acknowledged_millipoints >= 3_750, "2.5 MB x 1.5");
}
