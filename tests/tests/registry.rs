//! The node registry DNA across conductors: discovery, heartbeats and health,
//! capacity updates, re-registration, custodian selection, deregistration.

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{
    AssignCustodian, AssignCustodians, DeregisterNode, GetAvailableCustodians, GetCommittedCustody,
    GetMyNode, GetNode, GetNodeHealth, GetNodesByRegion, GetNodesByTier, Heartbeat, RegisterNode,
    RetireOutranked, UpdateNodeCapacity, ZomeFn,
};
use node_registry_integrity::*;
use registry_core::heartbeat::Liveness;

fn ids(v: &[NodeRegistration]) -> Vec<String> {
    v.iter().map(|r| r.node_id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_lifecycle_across_two_conductors() {
    let net = Network::start(2).await;
    let alice = registration(&net.peers[0], "alice", "eu-west");
    let mut bob = registration(&net.peers[1], "bob", "us-east");
    bob.steward_tier = "caretaker".into();
    let _: ActionHash = net.call_fn::<RegisterNode>(0, alice.clone()).await;
    let _: ActionHash = net.call_fn::<RegisterNode>(1, bob.clone()).await;
    net.sync().await;

    // A node registered on one conductor is found by region and tier from the other.
    let eu: Vec<NodeRegistration> = net.call_fn::<GetNodesByRegion>(1, "eu-west".into()).await;
    assert_eq!(ids(&eu), vec![alice.node_id.clone()]);
    let us: Vec<NodeRegistration> = net.call_fn::<GetNodesByRegion>(0, "us-east".into()).await;
    assert_eq!(ids(&us), vec![bob.node_id.clone()]);
    let guardians: Vec<NodeRegistration> =
        net.call_fn::<GetNodesByTier>(1, "guardian".into()).await;
    assert_eq!(ids(&guardians), vec![alice.node_id.clone()]);
    let caretakers: Vec<NodeRegistration> =
        net.call_fn::<GetNodesByTier>(0, "caretaker".into()).await;
    assert_eq!(ids(&caretakers), vec![bob.node_id.clone()]);
    let err = net
        .try_call_fn::<GetNodesByRegion>(0, "mars-north".into())
        .await
        .unwrap_err();
    assert!(err.contains("unknown region: mars-north"), "{err}");

    // Before any heartbeat the node is not alive and not offered as custodian.
    let health: NodeHealthSummary = net.call_fn::<GetNodeHealth>(1, alice.node_id.clone()).await;
    assert!(health.registered);
    assert!(health.latest_heartbeat.is_none());
    assert_eq!(health.liveness, Liveness::Failed { silent_secs: None });
    let none: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(1, CustodianFilters::default())
        .await;
    assert!(none.is_empty(), "silent nodes are not custodians: {none:?}");

    // A heartbeat updates its health, as seen from the other conductor.
    let _: ActionHash = net
        .call_fn::<Heartbeat>(0, heartbeat(&alice.node_id, "online"))
        .await;
    let _: ActionHash = net
        .call_fn::<Heartbeat>(1, heartbeat(&bob.node_id, "online"))
        .await;
    net.sync().await;
    let health: NodeHealthSummary = net.call_fn::<GetNodeHealth>(1, alice.node_id.clone()).await;
    assert_eq!(
        health.latest_heartbeat.as_ref().map(|h| h.status.as_str()),
        Some("online")
    );
    assert!(health.liveness.is_alive(), "{:?}", health.liveness);
    // A new status renews the lease at once: one record, the lease link.
    let link_type = |a: &Action| match &a.data {
        ActionData::CreateLink(l) => Some(l.link_type.0),
        _ => None,
    };
    let before = net.chain(0).await.len();
    let _: ActionHash = net
        .call_fn::<Heartbeat>(0, heartbeat(&alice.node_id, "degraded"))
        .await;
    let written = net.chain(0).await.split_off(before);
    assert_eq!(
        written.len(),
        1,
        "a status change is one record: {written:?}"
    );
    assert_eq!(
        link_type(&written[0]),
        Some(LinkTypes::PresenceIndex as u8),
        "{written:?}"
    );
    net.sync().await;
    let health: NodeHealthSummary = net.call_fn::<GetNodeHealth>(1, alice.node_id.clone()).await;
    let latest = health.latest_heartbeat.expect("a latest heartbeat");
    assert_eq!(latest.status, "degraded");
    assert_eq!(
        latest.active_connections, 3,
        "the link carries the whole heartbeat"
    );

    // The plan's 30 s heartbeat loop (a Doorway's): a heartbeat with
    // nothing new writes nothing while the lease lasts.
    let before = net.chain(0).await.len();
    for _ in 0..5 {
        let _: ActionHash = net
            .call_fn::<Heartbeat>(0, heartbeat(&alice.node_id, "degraded"))
            .await;
    }
    let written = net.chain(0).await.split_off(before);
    assert!(
        written.is_empty(),
        "beats within a lease write nothing: {written:?}"
    );

    // Custodian selection: both alive; region, tier and exclusion filters apply.
    let all: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(1, CustodianFilters::default())
        .await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].registration.node_id, bob.node_id,
        "the degraded node ranks last"
    );
    let eu_only: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(
            1,
            CustodianFilters {
                region: Some("eu-west".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(custodian_ids(&eu_only), vec![alice.node_id.clone()]);
    let guardians_up: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(
            1,
            CustodianFilters {
                min_tier: Some("guardian".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(custodian_ids(&guardians_up), vec![alice.node_id.clone()]);
    let online_only: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(
            1,
            CustodianFilters {
                status: Some("online".into()),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(custodian_ids(&online_only), vec![bob.node_id.clone()]);
    let excluded: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(
            0,
            CustodianFilters {
                exclude_nodes: vec![bob.node_id.clone()],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(custodian_ids(&excluded), vec![alice.node_id.clone()]);
    let too_big: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(
            0,
            CustodianFilters {
                min_storage_gb: Some(201.0),
                ..Default::default()
            },
        )
        .await;
    assert!(too_big.is_empty(), "200 GB caps cannot take 201 GB");

    // A capacity update is seen by the other conductor, with no duplicate.
    let _: ActionHash = net
        .call_fn::<UpdateNodeCapacity>(
            0,
            UpdateCapacityInput {
                node_id: alice.node_id.clone(),
                updates: CapacityUpdates {
                    max_custody_gb: Some(50.0),
                    ..Default::default()
                },
            },
        )
        .await;
    net.sync().await;
    let eu: Vec<NodeRegistration> = net.call_fn::<GetNodesByRegion>(1, "eu-west".into()).await;
    assert_eq!(eu.len(), 1);
    assert_eq!(eu[0].max_custody_gb, 50.0);
    assert_eq!(
        eu[0].steward_tier, "caretaker",
        "2.5% of storage no longer reaches guardian"
    );
    let roomy: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(
            1,
            CustodianFilters {
                min_storage_gb: Some(60.0),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        custodian_ids(&roomy),
        vec![bob.node_id.clone()],
        "the lowered cap is honoured"
    );

    // Re-registering (a restart) updates rather than duplicates, and keeps registered_at.
    let mut again = alice.clone();
    again.display_name = "Alice's new rack".into();
    let _: ActionHash = net.call_fn::<RegisterNode>(0, again).await;
    let mine: Option<RegisteredNode> = net.call_fn::<GetMyNode>(0, ()).await;
    let mine = mine.expect("still registered");
    net.sync().await;
    let eu: Vec<NodeRegistration> = net.call_fn::<GetNodesByRegion>(1, "eu-west".into()).await;
    assert_eq!(eu.len(), 1);
    assert_eq!(eu[0].display_name, "Alice's new rack");
    assert!(eu[0].updated_at > eu[0].registered_at);
    assert_eq!(eu[0].registered_at, mine.registration.registered_at);
    let other_id = net
        .try_call_fn::<RegisterNode>(0, registration(&net.peers[0], "other", "eu-west"))
        .await
        .unwrap_err();
    assert!(other_id.contains("already runs node"), "{other_id}");

    // Opting out removes the node from custody without removing it from discovery.
    let _: ActionHash = net
        .call_fn::<UpdateNodeCapacity>(
            1,
            UpdateCapacityInput {
                node_id: bob.node_id.clone(),
                updates: CapacityUpdates {
                    custodian_opt_in: Some(false),
                    ..Default::default()
                },
            },
        )
        .await;
    net.sync().await;
    let all: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(0, CustodianFilters::default())
        .await;
    assert_eq!(custodian_ids(&all), vec![alice.node_id.clone()]);
    let us: Vec<NodeRegistration> = net.call_fn::<GetNodesByRegion>(0, "us-east".into()).await;
    assert_eq!(ids(&us), vec![bob.node_id.clone()]);

    // A deregistered node leaves discovery and says it left.
    let _: Vec<ActionHash> = net
        .call_fn::<DeregisterNode>(
            0,
            DeregisterInput {
                node_id: alice.node_id.clone(),
                reason: "moving house".into(),
            },
        )
        .await;
    net.sync().await;
    let eu: Vec<NodeRegistration> = net.call_fn::<GetNodesByRegion>(1, "eu-west".into()).await;
    assert!(eu.is_empty(), "{eu:?}");
    let guardians: Vec<NodeRegistration> =
        net.call_fn::<GetNodesByTier>(1, "guardian".into()).await;
    assert!(guardians.is_empty());
    let gone: Option<RegisteredNode> = net.call_fn::<GetNode>(1, alice.node_id.clone()).await;
    assert!(gone.is_none());
    let health: NodeHealthSummary = net.call_fn::<GetNodeHealth>(1, alice.node_id.clone()).await;
    assert!(!health.registered);
    assert_eq!(
        health.latest_heartbeat.map(|h| h.status),
        Some("offline".to_string())
    );
    let all: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(1, CustodianFilters::default())
        .await;
    assert!(all.is_empty(), "{all:?}");
}

/// Selection reads liveness from the presence index, refreshed once per
/// failure window: a node that keeps beating stays offered, one that falls
/// silent is gone two windows after its last beat, and it is back as soon as
/// it beats again.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_node_leaves_custodian_selection_within_two_windows() {
    let window_secs = 8;
    let net = Network::start_with(
        2,
        RegistryProperties {
            presence_lease_secs: window_secs,
            ..Default::default()
        },
    )
    .await;
    let alice = registration(&net.peers[0], "alice", "eu-west");
    let bob = registration(&net.peers[1], "bob", "eu-west");
    let _: ActionHash = net.call_fn::<RegisterNode>(0, alice.clone()).await;
    let _: ActionHash = net.call_fn::<RegisterNode>(1, bob.clone()).await;
    let offered = |peer: usize| {
        let net = &net;
        async move {
            let found: Vec<RankedCustodian> = net
                .call_fn::<GetAvailableCustodians>(
                    peer,
                    CustodianFilters {
                        region: Some("eu-west".into()),
                        limit: Some(6),
                        ..Default::default()
                    },
                )
                .await;
            let mut ids = custodian_ids(&found);
            ids.sort();
            ids
        }
    };
    let mut both = vec![alice.node_id.clone(), bob.node_id.clone()];
    both.sort();

    // Both beat, then alice's view is checked once both beats reached it.
    // Under load that sync can outlast the window itself (then nobody is
    // offered, rightly): what is checked is a view read within the window
    // of the beats, so they beat again until it is.
    let beat_both = || async {
        loop {
            let started = Timestamp::now().as_micros();
            let _: ActionHash = net
                .call_fn::<Heartbeat>(0, heartbeat(&alice.node_id, "online"))
                .await;
            let bob_last = heartbeat(&bob.node_id, "online");
            let _: ActionHash = net.call_fn::<Heartbeat>(1, bob_last.clone()).await;
            net.sync().await;
            let seen = offered(0).await;
            if Timestamp::now().as_micros() - started < window_secs as i64 * 1_000_000 {
                return (seen, bob_last);
            }
            eprintln!("the beats took longer than a window to reach alice's view; beating again");
        }
    };
    let (seen, bob_last) = beat_both().await;
    assert_eq!(seen, both, "both beat: both offered");

    // Alice beats every half window; Bob is silent. Alice must stay offered
    // throughout (her presence is refreshed as buckets turn), Bob only until
    // two windows after his last beat.
    let gone_at = bob_last.timestamp.as_micros() + (2 * window_secs as i64 + 1) * 1_000_000;
    while Timestamp::now().as_micros() < gone_at {
        let _: ActionHash = net
            .call_fn::<Heartbeat>(0, heartbeat(&alice.node_id, "online"))
            .await;
        assert!(
            offered(0).await.contains(&alice.node_id),
            "a beating node stays offered"
        );
        tokio::time::sleep(std::time::Duration::from_secs(window_secs as u64 / 2)).await;
    }
    let _: ActionHash = net
        .call_fn::<Heartbeat>(0, heartbeat(&alice.node_id, "online"))
        .await;
    assert_eq!(
        offered(0).await,
        vec![alice.node_id.clone()],
        "two windows after his last beat, the silent node is not offered"
    );

    // Bob comes back: one beat puts him back in the index.
    let (seen, _) = beat_both().await;
    assert_eq!(seen, both, "a returning node is offered again");
}

/// Placing a content ranks only its placement set: the nodes of the first
/// shards in the content's shard order that hold enough eligible nodes.
/// Whatever path a selection took (a few shards, or every node), its answer
/// is the ranking over all nodes cut down to that set, which differs from
/// the unrestricted ranking for some contents.
#[tokio::test(flavor = "multi_thread")]
async fn placing_a_content_ranks_within_its_placement_set() {
    use registry_core::presence::{placement_prefix, presence_shard, shard_order, PlacementPrefix};
    let (shards, set_min) = (4u32, 3usize);
    let mut net = Network::start_with(
        1,
        RegistryProperties {
            presence_shards: shards,
            placement_set_min: set_min as u32,
            // One beat keeps a node present for the whole test, however
            // slow the machine.
            presence_lease_secs: 3600,
            ..Default::default()
        },
    )
    .await;
    let mut peers = vec![0];
    peers.extend(net.add_agents(0, 11, "node").await);
    let mut nodes = Vec::new();
    for (i, &p) in peers.iter().enumerate() {
        let mut r = registration(&net.peers[p], &format!("n{i}"), "eu-west");
        // Different weights, so rendezvous is weighted for real.
        r.uptime_percent = 50.0 + 4.0 * i as f64;
        net.register_online(p, &r).await;
        nodes.push(r.node_id);
    }
    let everyone = |f: &Vec<RankedCustodian>| f.len() == nodes.len();
    net.eventually_fn::<GetAvailableCustodians>(0, CustodianFilters::default(), 60, everyone)
        .await;

    let mut restricted = 0;
    for c in 0..16 {
        let key = format!("content-{c}");
        let filters = |limit| CustodianFilters {
            region: Some("eu-west".into()),
            content_id: Some(key.clone()),
            limit,
            ..Default::default()
        };
        // Without a limit every present node is ranked.
        let all: Vec<RankedCustodian> = net
            .call_fn::<GetAvailableCustodians>(0, filters(None))
            .await;
        assert_eq!(all.len(), nodes.len());
        let order = shard_order(&key, shards);
        let in_shard = |s: u32| {
            nodes
                .iter()
                .filter(|n| presence_shard(n, shards) == s)
                .count()
        };
        let PlacementPrefix::Shards(k) = placement_prefix(&order, in_shard, order.len(), set_min)
        else {
            panic!("everything read is complete");
        };
        let expected: Vec<String> = custodian_ids(&all)
            .into_iter()
            .filter(|n| order[..k].contains(&presence_shard(n, shards)))
            .take(2)
            .collect();
        let got: Vec<RankedCustodian> = net
            .call_fn::<GetAvailableCustodians>(0, filters(Some(2)))
            .await;
        assert_eq!(custodian_ids(&got), expected, "{key}");
        if expected != custodian_ids(&all)[..2] {
            restricted += 1;
        }
    }
    assert!(
        restricted > 0,
        "the set must change some placement, or this test shows nothing"
    );
}

/// Peer 0 (the owner) and two more agents on conductor 0, all registered
/// and beating in eu-west: their peer indexes, and their registrations
/// with hashes.
async fn owner_and_two_custodians(
    net: &mut Network,
) -> (Vec<usize>, Vec<(NodeRegistration, ActionHash)>) {
    let mut peers = vec![0];
    peers.extend(net.add_agents(0, 2, "node").await);
    let mut nodes = Vec::new();
    for (i, &p) in peers.iter().enumerate() {
        let r = registration(&net.peers[p], &format!("n{i}"), "eu-west");
        let hash = net.register_online(p, &r).await;
        nodes.push((r, hash));
    }
    (peers, nodes)
}

/// A node's committed custody (what selection takes from its cap) drops
/// when a repair takes its shard, and, once its sidecar marks it, when
/// another node's decision of the same round outranks its assignment.
#[tokio::test(flavor = "multi_thread")]
async fn custody_taken_by_a_later_decision_stops_counting() {
    let mut net = Network::start_with(
        1,
        RegistryProperties {
            presence_lease_secs: 3600,
            ..Default::default()
        },
    )
    .await;
    let (_, nodes) = owner_and_two_custodians(&mut net).await;
    let owner = net.peers[0].agent();
    let (alice, bob) = (&nodes[1], &nodes[2]);
    // Free custody of alice and bob, once the selection sees `expected`.
    let free_is = |expected: [u64; 2]| {
        let (a, b) = (alice.0.node_id.clone(), bob.0.node_id.clone());
        move |all: &Vec<RankedCustodian>| {
            let free = |id: &str| {
                all.iter()
                    .find(|c| c.registration.node_id == id)
                    .map(|c| c.free_custody_bytes)
            };
            [free(&a), free(&b)] == expected.map(Some)
        }
    };
    let all: Vec<RankedCustodian> = net
        .eventually_fn::<GetAvailableCustodians>(
            0,
            CustodianFilters::default(),
            60,
            |v: &Vec<RankedCustodian>| v.len() == 3,
        )
        .await;
    let cap = all[0].free_custody_bytes;
    assert!(all.iter().all(|c| c.free_custody_bytes == cap));
    let selection_sees = |expected: [u64; 2]| {
        net.eventually_fn::<GetAvailableCustodians>(
            0,
            CustodianFilters::default(),
            60,
            free_is(expected),
        )
    };

    // Placed on alice, then repaired onto bob: the repair retires alice's.
    let placed = assignment(owner.clone(), "photo", &alice.0, alice.1.clone());
    let _: ActionHash = net.call_fn::<AssignCustodian>(0, placed.clone()).await;
    selection_sees([cap - 1000, cap]).await;
    let mut repair = assignment(owner.clone(), "photo", &bob.0, bob.1.clone());
    repair.decided_by = "disaster_recovery".into();
    repair.decision_round = 1;
    repair.assignment_id = registry_core::assignment::assignment_id(&placed.content_id, 0, 1);
    repair.replaces = Some(assignment_hash(&placed));
    let _: ActionHash = net.call_fn::<AssignCustodian>(0, repair).await;
    selection_sees([cap, cap - 1000]).await;

    // Two decisions of one round for one shard: both count until the
    // loser's sidecar marks its assignment; only the loser has one to mark.
    let on_alice = assignment(owner.clone(), "video", &alice.0, alice.1.clone());
    let on_bob = assignment(owner.clone(), "video", &bob.0, bob.1.clone());
    let _: ActionHash = net.call_fn::<AssignCustodian>(0, on_alice.clone()).await;
    let _: ActionHash = net.call_fn::<AssignCustodian>(0, on_bob.clone()).await;
    selection_sees([cap - 1000, cap - 2000]).await;
    let alice_loses =
        assignment_hash(&on_alice).get_raw_39() > assignment_hash(&on_bob).get_raw_39();
    let marked = |node: &NodeRegistration| net.call_fn::<RetireOutranked>(0, node.node_id.clone());
    let (by_alice, by_bob) = (marked(&alice.0).await, marked(&bob.0).await);
    assert_eq!(
        (by_alice, by_bob),
        if alice_loses { (1, 0) } else { (0, 1) }
    );
    if alice_loses {
        selection_sees([cap, cap - 2000]).await;
    } else {
        selection_sees([cap - 1000, cap - 1000]).await;
    }
    let loser = if alice_loses { &alice.0 } else { &bob.0 };
    assert_eq!(marked(loser).await, 0, "marked once");

    // A placement recorded in one call (what a publish does); one refused
    // assignment refuses the call, naming why (a failed call commits
    // nothing).
    let before = if alice_loses {
        [cap, cap - 2000]
    } else {
        [cap - 1000, cap - 1000]
    };
    let on_alice = assignment(owner.clone(), "letter", &alice.0, alice.1.clone());
    let mut bad = assignment(owner.clone(), "poem", &bob.0, bob.1.clone());
    bad.strategy = "raid5".into();
    let refused = net
        .try_call_fn::<AssignCustodians>(0, vec![on_alice.clone(), bad])
        .await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("raid5")),
        "{refused:?}"
    );
    let on_bob = assignment(owner, "poem", &bob.0, bob.1.clone());
    let written: Vec<ActionHash> = net
        .call_fn::<AssignCustodians>(0, vec![on_alice, on_bob])
        .await;
    assert_eq!(written.len(), 2);
    selection_sees([before[0] - 1000, before[1] - 1000]).await;
}

/// Selection counts a node's committed custody from the total the node
/// publishes with its presence plus its recent-custody links since the
/// total's cutoff, never reading its whole index, and the count agrees with
/// the index: while an assignment is recent, once the node's total has it,
/// and after a repair takes it away.
#[tokio::test(flavor = "multi_thread")]
async fn selection_counts_custody_from_the_published_total_and_what_came_since() {
    use registry_core::presence::presence_bucket;
    let window_secs = 4;
    let lag_secs = 1;
    let mut net = Network::start_with(
        1,
        RegistryProperties {
            presence_lease_secs: window_secs,
            custody_total_lag_secs: lag_secs,
            ..Default::default()
        },
    )
    .await;
    let (peers, nodes) = owner_and_two_custodians(&mut net).await;
    let owner = net.peers[0].agent();
    let (alice, bob) = (&nodes[1], &nodes[2]);
    // The view of a node once it shows `published` (the total's bytes, or
    // none) and counts `counted`; the index must always agree with the count.
    let view_shows = |node: &NodeRegistration, published: Option<u64>, counted: u64| {
        net.eventually_fn::<GetCommittedCustody>(
            0,
            node.node_id.clone(),
            60,
            move |v: &CommittedCustodyView| {
                v.published.as_ref().map(|p| p.bytes) == published && v.counted_bytes == counted
            },
        )
    };
    // A beat of both custodians in a new presence bucket, after `since` has
    // passed the lag: it refreshes their presence, and so their published
    // totals (and keeps both offered: presence lasts two short windows).
    let publish_totals = |since: Timestamp| {
        let net = &net;
        let beats = [
            (peers[1], alice.0.node_id.clone()),
            (peers[2], bob.0.node_id.clone()),
        ];
        async move {
            let window = window_secs as i64 * 1_000_000;
            let after_lag = since.as_micros() + (lag_secs as i64 + 1) * 1_000_000;
            let next_bucket = (presence_bucket(after_lag, window_secs as i64) + 1) * window;
            let wait = next_bucket - Timestamp::now().as_micros();
            if wait > 0 {
                tokio::time::sleep(std::time::Duration::from_micros(wait as u64)).await;
            }
            for (peer, node_id) in beats {
                let _: ActionHash = net
                    .call_fn::<Heartbeat>(peer, heartbeat(&node_id, "online"))
                    .await;
            }
        }
    };

    publish_totals(Timestamp::now()).await;
    let v = view_shows(&alice.0, Some(0), 0).await;
    assert_eq!(v.indexed_bytes, 0);

    // Placed on alice: counted from her recent-custody links.
    let placed = assignment(owner.clone(), "photo", &alice.0, alice.1.clone());
    let _: ActionHash = net.call_fn::<AssignCustodian>(0, placed.clone()).await;
    let placed_at = Timestamp::now();
    let v = view_shows(&alice.0, Some(0), 1000).await;
    assert_eq!(v.indexed_bytes, 1000);

    // Her next total has it, and the recent link is not counted twice.
    publish_totals(placed_at).await;
    let v = view_shows(&alice.0, Some(1000), 1000).await;
    assert_eq!(v.indexed_bytes, 1000);
    let offered: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(0, CustodianFilters::default())
        .await;
    let free = |id: &str| {
        offered
            .iter()
            .find(|c| c.registration.node_id == id)
            .map(|c| c.free_custody_bytes)
    };
    assert_eq!(
        free(&alice.0.node_id).map(|f| f + 1000),
        free(&bob.0.node_id),
        "selection takes the published total off alice's cap"
    );

    // Repaired onto bob: the retirement mark on alice's recent bucket takes
    // it off her total at once, before she totals again.
    let mut repair = assignment(owner, "photo", &bob.0, bob.1.clone());
    repair.decided_by = "disaster_recovery".into();
    repair.decision_round = 1;
    repair.assignment_id = registry_core::assignment::assignment_id(&placed.content_id, 0, 1);
    repair.replaces = Some(assignment_hash(&placed));
    let _: ActionHash = net.call_fn::<AssignCustodian>(0, repair).await;
    let repaired_at = Timestamp::now();
    let v = view_shows(&alice.0, Some(1000), 0).await;
    assert_eq!(v.indexed_bytes, 0);
    let v = view_shows(&bob.0, Some(0), 1000).await;
    assert_eq!(v.indexed_bytes, 1000);

    // And her next total no longer has it.
    publish_totals(repaired_at).await;
    let v = view_shows(&alice.0, Some(0), 0).await;
    assert_eq!(v.indexed_bytes, 0);

    let unknown = net
        .try_call_fn::<GetCommittedCustody>(0, "nobody".to_string())
        .await;
    assert!(
        unknown.is_err_and(|e| e.contains("not registered")),
        "an unknown node is an error"
    );
}

/// The plan's Doorway payloads, as its TypeScript writes them: ISO-8601
/// times, `signature` and `last_heartbeat` fields, no `off_peak_hours` or
/// `endpoint`; a `tier` filter meaning "at least"; a list of regions. And a
/// payload that does not fit is refused with the field named, never with
/// its bytes.
#[tokio::test(flavor = "multi_thread")]
async fn the_plans_payloads_work_and_bad_ones_name_their_field() {
    #[derive(serde::Serialize, Debug, Clone)]
    struct PlanRegistration {
        node_id: String,
        agent_pub_key: AgentPubKey,
        display_name: String,
        cpu_cores: u32,
        memory_gb: serde_json::Value,
        storage_tb: f64,
        bandwidth_mbps: u32,
        region: String,
        latitude: Option<f64>,
        longitude: Option<f64>,
        zomes_hosted: Vec<String>,
        steward_tier: String,
        custodian_opt_in: bool,
        max_custody_gb: f64,
        max_bandwidth_mbps: u32,
        max_cpu_percent: f64,
        uptime_percent: f64,
        last_heartbeat: String,
        registered_at: String,
        updated_at: String,
        signature: String,
    }
    #[derive(serde::Serialize, Debug, Clone)]
    struct PlanHeartbeat {
        node_id: String,
        timestamp: String,
        status: String,
        current_load: f64,
        active_connections: u32,
        signature: String,
    }
    let mut net = Network::start(1).await;
    net.add_agents(0, 1, "doorway").await;
    let iso_now = || Timestamp::now().to_string();
    let plan = |peer: usize, label: &str, tier: &str| {
        let ours = registration(&net.peers[peer], label, "eu-west");
        PlanRegistration {
            node_id: ours.node_id,
            agent_pub_key: ours.agent_pub_key,
            display_name: ours.display_name,
            cpu_cores: ours.cpu_cores,
            memory_gb: ours.memory_gb.into(),
            storage_tb: ours.storage_tb,
            bandwidth_mbps: ours.bandwidth_mbps,
            region: ours.region,
            latitude: None,
            longitude: None,
            zomes_hosted: ours.zomes_hosted,
            steward_tier: tier.into(),
            custodian_opt_in: true,
            max_custody_gb: ours.max_custody_gb,
            max_bandwidth_mbps: ours.max_bandwidth_mbps,
            max_cpu_percent: ours.max_cpu_percent,
            uptime_percent: ours.uptime_percent,
            last_heartbeat: iso_now(),
            registered_at: iso_now(),
            updated_at: iso_now(),
            signature: "c2lnbmVk".into(),
        }
    };
    let (guardian, caretaker) = (
        plan(0, "door-g", "guardian"),
        plan(1, "door-c", "caretaker"),
    );
    // By the marker's name with a payload of another type: these are the
    // plan's wider shapes (and below, wrong ones), which no marker's input
    // describes.
    for (peer, r) in [(0, &guardian), (1, &caretaker)] {
        let _: ActionHash = net.call(peer, RegisterNode::NAME, r.clone()).await;
        let beat = PlanHeartbeat {
            node_id: r.node_id.clone(),
            timestamp: iso_now(),
            status: "online".into(),
            current_load: 0.3,
            active_connections: 4,
            signature: "c2lnbmVk".into(),
        };
        let _: ActionHash = net.call(peer, Heartbeat::NAME, beat).await;
    }
    let stored: Option<RegisteredNode> = net.call_fn::<GetMyNode>(0, ()).await;
    let stored = stored
        .expect("registered through the plan's payload")
        .registration;
    assert_eq!(stored.off_peak_hours, OffPeakHours::default());
    assert!(stored.endpoint.is_none());

    // The plan's filters: `tier` is the lowest acceptable, `region` a list.
    let query = serde_json::json!({
        "status": "online",
        "min_storage_gb": 1,
        "region": ["eu-west", "us-east"],
        "tier": "guardian",
    });
    let found: Vec<RankedCustodian> = net
        .eventually(
            1,
            GetAvailableCustodians::NAME,
            query,
            60,
            |v: &Vec<RankedCustodian>| !v.is_empty(),
        )
        .await;
    assert_eq!(custodian_ids(&found), vec![guardian.node_id.clone()]);
    let any_tier: Vec<RankedCustodian> = net
        .eventually(
            1,
            GetAvailableCustodians::NAME,
            serde_json::json!({ "region": "eu-west" }),
            60,
            |v: &Vec<RankedCustodian>| v.len() == 2,
        )
        .await;
    assert_eq!(any_tier.len(), 2);

    // Payloads that do not fit name the field and what was expected.
    let mut wrong = plan(0, "door-g", "guardian");
    wrong.memory_gb = "lots".into();
    let wrong = net
        .try_call::<_, ActionHash>(0, RegisterNode::NAME, wrong)
        .await
        .unwrap_err();
    assert!(
        wrong.contains("register_node: invalid input at `memory_gb`"),
        "{wrong}"
    );
    assert!(
        !wrong.contains("Deserialize(["),
        "bytes instead of a field: {wrong}"
    );
    let refusals = [
        (
            GetAvailableCustodians::NAME,
            serde_json::json!({ "colour": "red" }),
            "unknown field `colour`",
        ),
        (
            Heartbeat::NAME,
            serde_json::json!({
                "node_id": guardian.node_id, "timestamp": "yesterday", "status": "online",
                "current_load": 0.1,
            }),
            "at `timestamp`: ",
        ),
    ];
    for (func, payload, named) in refusals {
        let err = net
            .try_call::<_, serde_json::Value>(0, func, payload)
            .await
            .unwrap_err();
        assert!(err.contains(named), "{func}: expected {named:?} in {err}");
        if func == Heartbeat::NAME {
            assert!(err.contains("is not an ISO-8601 time like"), "{err}");
        }
        assert!(
            !err.contains("Deserialize(["),
            "{func}: bytes instead of a field: {err}"
        );
    }
}
