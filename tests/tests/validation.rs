//! Every validation rule of the integrity zome, each shown rejecting an entry
//! or link. Honest calls go through the coordinator; what honest code never
//! writes goes through the test-only "mallory" zome, as an attacker would.

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::*;
use registry_core::committed::{recent_bucket, total_cutoff};
use registry_core::presence::{presence_bucket, presence_shard};

fn rejected<T: std::fmt::Debug>(what: &str, result: Result<T, String>, reason: &str) {
    match result {
        Ok(v) => panic!("{what}: expected rejection containing {reason:?}, got Ok({v:?})"),
        Err(e) => assert!(e.contains(reason), "{what}: expected {reason:?} in:\n{e}"),
    }
}

#[test]
fn every_validation_rule_rejects() {
    // A zome call nests deep in a debug build, and this walk-through nests
    // its calls in helpers: it needs more than a test thread's 2 MiB stack.
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(every_rule())
        })
        .expect("a thread for the walk-through")
        .join()
        .expect("every rule rejects what it must");
}

async fn every_rule() {
    let mut net = Network::start(2).await;
    net.arm_mallory(0).await;
    net.arm_mallory(1).await;
    let (a, b) = (net.peers[0].clone(), net.peers[1].clone());
    let alice = registration(&a, "alice", "eu-west");

    // --- registration ---------------------------------------------------
    let bad = |f: &dyn Fn(&mut NodeRegistration)| {
        let mut r = alice.clone();
        f(&mut r);
        r
    };
    let cases: Vec<(&str, NodeRegistration, &str)> = vec![
        (
            "unknown region",
            bad(&|r| r.region = "mars-north".into()),
            "unknown region: mars-north",
        ),
        (
            "unknown tier",
            bad(&|r| r.steward_tier = "overlord".into()),
            "unknown steward tier: overlord",
        ),
        (
            "too many cores",
            bad(&|r| r.cpu_cores = 1025),
            "cpu_cores out of range",
        ),
        (
            "NaN memory",
            bad(&|r| r.memory_gb = f64::NAN),
            "memory_gb out of range",
        ),
        (
            "too much memory",
            bad(&|r| r.memory_gb = 10_001.0),
            "memory_gb out of range",
        ),
        (
            "negative storage",
            bad(&|r| r.storage_tb = -1.0),
            "storage_tb out of range",
        ),
        (
            "too much storage",
            bad(&|r| r.storage_tb = 10_001.0),
            "storage_tb out of range",
        ),
        (
            "custody above storage",
            bad(&|r| r.max_custody_gb = 2_500.0),
            "max_custody_gb out of range",
        ),
        (
            "tier above contribution",
            bad(&|r| r.steward_tier = "pioneer".into()),
            "above what the contribution reaches",
        ),
        (
            "someone else's key",
            bad(&|r| r.agent_pub_key = b.agent()),
            "agent_pub_key must be the author",
        ),
        (
            "someone else's node id",
            bad(&|r| r.node_id = b.node_id("bob")),
            "not owned by this agent",
        ),
        (
            "empty display name",
            bad(&|r| r.display_name = String::new()),
            "display_name must be 1 to 64",
        ),
    ];
    for (what, r, reason) in cases {
        rejected(
            what,
            net.try_call::<_, ActionHash>(0, "register_node", r).await,
            reason,
        );
    }
    let mut stale = alice.clone();
    stale.registered_at = Timestamp::from_micros(stale.registered_at.as_micros() - 3_600_000_000);
    rejected(
        "registered_at an hour off",
        net.mallory::<_, ActionHash>(0, "create_registration", stale)
            .await,
        "registered_at is 36",
    );

    // A node id cannot be taken by another agent.
    let hijack = NodeRegistration {
        agent_pub_key: b.agent(),
        ..alice.clone()
    };
    rejected(
        "bob takes alice's node id",
        net.try_call::<_, ActionHash>(1, "register_node", hijack)
            .await,
        "not owned by this agent",
    );

    // Honest registrations for the rest.
    let alice_hash: ActionHash = net.call(0, "register_node", alice.clone()).await;
    let mut bob_reg = registration(&b, "bob", "us-east");
    bob_reg.custodian_opt_in = false;
    let bob_hash: ActionHash = net.call(1, "register_node", bob_reg.clone()).await;
    net.sync().await;

    // Update and delete only by the author; identity fields never change.
    let mut renamed = alice.clone();
    renamed.display_name = "Mallory's now".into();
    rejected(
        "bob updates alice's registration",
        net.mallory::<_, ActionHash>(
            1,
            "update_registration",
            update_input(&alice_hash, &renamed),
        )
        .await,
        "only the author of a registration may update it",
    );
    rejected(
        "bob deletes alice's registration",
        net.mallory::<_, ActionHash>(1, "delete_any", alice_hash.clone())
            .await,
        "only the author may delete",
    );
    let mut moved = alice.clone();
    moved.node_id = a.node_id("alice2");
    moved.updated_at = Timestamp::now();
    rejected(
        "alice changes her node id",
        net.mallory::<_, ActionHash>(0, "update_registration", update_input(&alice_hash, &moved))
            .await,
        "node_id cannot change on update",
    );

    // --- heartbeat ------------------------------------------------------
    rejected(
        "bob beats for alice",
        net.try_call::<_, ActionHash>(1, "heartbeat", heartbeat(&alice.node_id, "online"))
            .await,
        "a heartbeat must come from the node's own agent",
    );
    rejected(
        "unknown status",
        net.try_call::<_, ActionHash>(0, "heartbeat", heartbeat(&alice.node_id, "sleeping"))
            .await,
        "unknown node status: sleeping",
    );
    let mut old = heartbeat(&alice.node_id, "online");
    old.timestamp = Timestamp::from_micros(old.timestamp.as_micros() - 120_000_000);
    rejected(
        "heartbeat two minutes old",
        net.try_call::<_, ActionHash>(0, "heartbeat", old).await,
        "timestamp is 12",
    );
    let mut future = heartbeat(&alice.node_id, "online");
    future.timestamp = Timestamp::from_micros(future.timestamp.as_micros() + 600_000_000);
    rejected(
        "heartbeat from the future",
        net.try_call::<_, ActionHash>(0, "heartbeat", future).await,
        "away from its action's timestamp",
    );
    let mut overloaded = heartbeat(&alice.node_id, "online");
    overloaded.current_load = -1.0;
    rejected(
        "negative load",
        net.try_call::<_, ActionHash>(0, "heartbeat", overloaded)
            .await,
        "current_load out of range",
    );
    let hb: ActionHash = net
        .call(0, "heartbeat", heartbeat(&alice.node_id, "online"))
        .await;
    // A beat is one link, its tag the heartbeat, pointing at its author.
    let beat = heartbeat(&alice.node_id, "online");
    let beat_bucket = (
        "heartbeat_base_hash",
        (
            alice.node_id.clone(),
            registry_core::heartbeat::bucket_of(beat.timestamp.as_micros()),
        ),
    );
    let beat_tag = HeartbeatSummary::of(&beat).to_tag().unwrap().0;
    rejected(
        "a heartbeat link pointing at another agent",
        raw_link_on(
            &net,
            0,
            beat_bucket.clone(),
            b.agent().into(),
            5,
            beat_tag.clone(),
        )
        .await,
        "a heartbeat link points to the beating node's agent",
    );
    rejected(
        "a heartbeat link whose tag is no heartbeat",
        raw_link_on(
            &net,
            0,
            beat_bucket.clone(),
            a.agent().into(),
            5,
            vec![1, 2, 3],
        )
        .await,
        "heartbeat link tag must be a heartbeat",
    );
    rejected(
        "a heartbeat link in another bucket",
        raw_link_on(
            &net,
            0,
            ("heartbeat_base_hash", (alice.node_id.clone(), 7_i64)),
            a.agent().into(),
            5,
            beat_tag.clone(),
        )
        .await,
        "heartbeat link is not on its node's bucket",
    );
    raw_link_on(&net, 0, beat_bucket, a.agent().into(), 5, beat_tag)
        .await
        .expect("a heartbeat committed as a raw link is a heartbeat");

    // --- attestation ----------------------------------------------------
    let att = |attester: &str, subject: &str, ms: u32| HealthAttestation {
        attester_node_id: attester.to_string(),
        subject_node_id: subject.to_string(),
        success: true,
        response_time_ms: ms,
        timestamp: Timestamp::now(),
    };
    rejected(
        "self-attestation",
        net.try_call::<_, ActionHash>(0, "attest_health", att(&alice.node_id, &alice.node_id, 20))
            .await,
        "cannot attest its own health",
    );
    rejected(
        "attesting as another node",
        net.try_call::<_, ActionHash>(
            1,
            "attest_health",
            att(&alice.node_id, &bob_reg.node_id, 20),
        )
        .await,
        "the attester must be the author's own node",
    );
    rejected(
        "absurd response time",
        net.try_call::<_, ActionHash>(
            0,
            "attest_health",
            att(&alice.node_id, &bob_reg.node_id, 600_000),
        )
        .await,
        "response_time_ms 600000",
    );
    let attested: ActionHash = net
        .call(
            0,
            "attest_health",
            att(&alice.node_id, &bob_reg.node_id, 20),
        )
        .await;
    rejected(
        "attestations are immutable",
        net.mallory::<_, ActionHash>(
            0,
            "update_as_attestation",
            (attested, att(&alice.node_id, &bob_reg.node_id, 10)),
        )
        .await,
        "only node registrations can be updated",
    );

    // --- assignment -----------------------------------------------------
    net.sync().await;
    let ok = assignment(b.agent(), "photo-1", &alice, alice_hash.clone());
    let bad_asg = |f: &dyn Fn(&mut CustodianAssignment)| {
        let mut x = ok.clone();
        f(&mut x);
        x
    };
    let cases: Vec<(&str, CustodianAssignment, &str)> = vec![
        (
            "custodian registration is a heartbeat",
            bad_asg(&|x| x.custodian_registration = hb.clone()),
            "is not a node registration",
        ),
        (
            "opted-out custodian",
            bad_asg(&|x| {
                x.custodian_node_id = bob_reg.node_id.clone();
                x.custodian_registration = bob_hash.clone();
                x.round_custodians = vec![bob_reg.node_id.clone()];
            }),
            "has opted out of custody",
        ),
        (
            "same node twice in a round",
            bad_asg(&|x| {
                x.strategy = "erasure_coded".into();
                x.threshold = 2;
                x.shard_count = 3;
                x.round_custodians = vec![
                    alice.node_id.clone(),
                    bob_reg.node_id.clone(),
                    alice.node_id.clone(),
                ];
            }),
            "content assigned twice to node",
        ),
        (
            "wrong slot",
            bad_asg(&|x| x.round_custodians = vec![bob_reg.node_id.clone()]),
            "is not in slot 0",
        ),
        (
            "bad content hash",
            bad_asg(&|x| x.content_hash = "nope".into()),
            "content_hash must be 64 hex",
        ),
        (
            "non-deterministic id",
            bad_asg(&|x| x.assignment_id = "random-42".into()),
            "assignment_id must be photo-1#0@0",
        ),
        (
            "unknown strategy",
            bad_asg(&|x| x.strategy = "raid5".into()),
            "unknown custody strategy: raid5",
        ),
        (
            "owner as its own custodian",
            bad_asg(&|x| x.owner_agent = a.agent()),
            "a content's owner cannot be its custodian",
        ),
        (
            "publisher placing others' content",
            bad_asg(&|x| x.owner_agent = AgentPubKey::from_raw_32(vec![1; 32])),
            "only the content's owner places it",
        ),
        (
            "repair without a replaced assignment",
            bad_asg(&|x| x.decided_by = "disaster_recovery".into()),
            "must name the assignment it replaces",
        ),
    ];
    for (what, x, reason) in cases {
        rejected(
            what,
            net.try_call::<_, ActionHash>(1, "assign_custodian", x)
                .await,
            reason,
        );
    }
    let _: ActionHash = net.call(1, "assign_custodian", ok.clone()).await;

    // --- retirement links -------------------------------------------------
    // A second decision of the same round for the same shard: one of the
    // two outranks the other, and only it may retire the other.
    let mut other = ok.clone();
    other.content_size_bytes = 2000;
    let _: ActionHash = net.call(1, "assign_custodian", other.clone()).await;
    let (h_ok, h_other) = (assignment_hash(&ok), assignment_hash(&other));
    let (winner, loser) = if h_ok.get_raw_39() < h_other.get_raw_39() {
        (h_ok, h_other)
    } else {
        (h_other, h_ok)
    };
    let custody_of = |node: &NodeRegistration| {
        let net = &net;
        let id = node.node_id.clone();
        async move {
            net.mallory::<_, EntryHash>(1, "custody_base_hash", id)
                .await
                .unwrap()
        }
    };
    let (alice_custody, bob_custody) = (custody_of(&alice).await, custody_of(&bob_reg).await);
    let winning = if assignment_hash(&ok) == winner {
        ok.clone()
    } else {
        other.clone()
    };
    assert_eq!(ok.shard_size_bytes, other.shard_size_bytes);
    Box::pin(retirement_and_recent_custody_rules(
        &net,
        [&alice, &bob_reg],
        [&alice_custody, &bob_custody],
        &winning,
        &loser,
    ))
    .await;

    // --- links ------------------------------------------------------------
    net.sync().await;
    let region_base: EntryHash = net.mallory(1, "region_base_hash", "eu-west").await.unwrap();
    // The coordinator stamped the times: summarise what was stored.
    let stored: Option<RegisteredNode> = net.call(0, "get_my_node", ()).await;
    let stored = stored.expect("alice is registered");
    assert_eq!(stored.action_hash, alice_hash);
    let summary = NodeSummary::of(&stored.registration);
    let tag = holochain_serialized_bytes::encode(&summary).unwrap();
    rejected(
        "bob indexes alice's node",
        net.mallory::<_, ActionHash>(
            1,
            "create_link_raw",
            RawLinkInput {
                base: region_base.clone().into(),
                target: alice_hash.clone().into(),
                link_type: 0,
                tag: tag.clone(),
            },
        )
        .await,
        "only a node's own agent indexes it",
    );
    let mut lying = summary.clone();
    lying.max_custody_bytes = u64::MAX;
    rejected(
        "alice's directory tag lies about her cap",
        net.mallory::<_, ActionHash>(
            0,
            "create_link_raw",
            RawLinkInput {
                base: region_base.clone().into(),
                target: alice_hash.clone().into(),
                link_type: 0,
                tag: holochain_serialized_bytes::encode(&lying).unwrap(),
            },
        )
        .await,
        "directory link tag does not match its registration",
    );
    let my_link: ActionHash = net
        .mallory(
            0,
            "create_link_raw",
            RawLinkInput {
                base: region_base.into(),
                target: alice_hash.into(),
                link_type: 0,
                tag,
            },
        )
        .await
        .expect("alice may index herself");

    // Presence links: in the bucket of a recent heartbeat, or rejected.
    let now = Timestamp::now();
    let window = RegistryProperties::default().failure_window_secs as i64;
    let presence = |beat_at: Timestamp| PresenceSummary {
        node: summary.clone(),
        heartbeat: HeartbeatSummary {
            node_id: summary.node_id.clone(),
            timestamp: beat_at,
            status: "online".into(),
            current_load: 0.1,
            custody_used_bytes: 0,
            active_connections: 0,
        },
        committed: None,
    };
    let presence_link_at =
        |region: &'static str, bucket: i64, shard: Option<u32>, p: PresenceSummary| {
            raw_link_on(
                &net,
                0,
                ("presence_base_hash", (region.to_string(), bucket, shard)),
                stored.action_hash.clone().into(),
                20,
                holochain_serialized_bytes::encode(&p).unwrap(),
            )
        };
    let presence_link_in = |region: &'static str, bucket: i64, p: PresenceSummary| {
        presence_link_at(region, bucket, None, p)
    };
    let presence_link = |bucket: i64, p: PresenceSummary| presence_link_in("eu-west", bucket, p);
    let shards = RegistryProperties::default().shards();
    let my_shard = presence_shard(&summary.node_id, shards);
    let bucket_now = presence_bucket(now.as_micros(), window);
    rejected(
        "a presence link in another region's index",
        presence_link_in("us-east", bucket_now, presence(now)).await,
        "not on its region's bucket",
    );
    rejected(
        "a presence link in a later bucket than its heartbeat",
        presence_link(bucket_now + 5, presence(now)).await,
        "not on its region's bucket",
    );
    let stale = Timestamp::from_micros(now.as_micros() - 3600 * 1_000_000);
    rejected(
        "a presence link reporting an hour-old heartbeat",
        presence_link(presence_bucket(stale.as_micros(), window), presence(stale)).await,
        "heartbeat of the last two failure windows",
    );
    let mut offline_lie = presence(now);
    offline_lie.heartbeat.node_id = "someone-else".into();
    rejected(
        "a presence link with another node's heartbeat",
        presence_link(bucket_now, offline_lie).await,
        "heartbeat is of another node",
    );
    rejected(
        "a presence link in another node's shard",
        presence_link_at(
            "eu-west",
            bucket_now,
            Some((my_shard + 1) % shards),
            presence(now),
        )
        .await,
        "not on its region's bucket (or its node's shard of it)",
    );
    let with_total = |cutoff_micros: i64| {
        let mut p = presence(now);
        p.committed = Some(CommittedCustody {
            bytes: 0,
            cutoff: Timestamp::from_micros(cutoff_micros),
        });
        p
    };
    rejected(
        "a presence link whose custody total counts links too young to have reached it",
        presence_link(bucket_now, with_total(now.as_micros())).await,
        "custody total cannot count links younger than its lag",
    );
    presence_link(
        bucket_now,
        with_total(total_cutoff(
            now.as_micros(),
            RegistryProperties::default().custody_total_lag_secs as i64,
        )),
    )
    .await
    .expect("alice may publish the total of her custody");
    presence_link(bucket_now, presence(now))
        .await
        .expect("alice may announce her own presence");
    presence_link_at("eu-west", bucket_now, Some(my_shard), presence(now))
        .await
        .expect("alice may announce her presence in her shard");

    net.sync().await;
    rejected(
        "bob deletes alice's link",
        net.mallory::<_, ActionHash>(1, "delete_link_raw", my_link)
            .await,
        "only the author",
    );
}

/// Mirror of mallory's `RawLink` input.
#[derive(serde::Serialize, Debug)]
struct RawLinkInput {
    base: AnyLinkableHash,
    target: AnyLinkableHash,
    link_type: u8,
    tag: Vec<u8>,
}

/// Commits, as `peer` through mallory, a raw link from the base that
/// mallory's `base.0` function computes from `base.1`.
async fn raw_link_on<B: serde::Serialize + std::fmt::Debug>(
    net: &Network,
    peer: usize,
    base: (&str, B),
    target: AnyLinkableHash,
    link_type: u8,
    tag: Vec<u8>,
) -> Result<ActionHash, String> {
    let base_hash: EntryHash = net.mallory(peer, base.0, base.1).await.unwrap();
    raw_link(net, peer, base_hash.into(), target, link_type, tag).await
}

/// Commits, as `peer` through mallory, any link.
async fn raw_link(
    net: &Network,
    peer: usize,
    base: AnyLinkableHash,
    target: AnyLinkableHash,
    link_type: u8,
    tag: Vec<u8>,
) -> Result<ActionHash, String> {
    net.mallory(
        peer,
        "create_link_raw",
        RawLinkInput {
            base,
            target,
            link_type,
            tag,
        },
    )
    .await
}

/// Mallory's `UpdateRegistration` input.
#[derive(serde::Serialize, Debug)]
struct UpdateInput {
    original: ActionHash,
    registration: NodeRegistration,
}

fn update_input(original: &ActionHash, r: &NodeRegistration) -> UpdateInput {
    UpdateInput {
        original: original.clone(),
        registration: r.clone(),
    }
}

/// Retirement marks, on a custodian's index and on its recent-custody
/// buckets, and recent-custody links: `winning` (on alice) outranks the
/// assignment at `loser`, both of the same shard.
async fn retirement_and_recent_custody_rules(
    net: &Network,
    [alice, bob_reg]: [&NodeRegistration; 2],
    [alice_custody, bob_custody]: [&EntryHash; 2],
    winning: &CustodianAssignment,
    loser: &EntryHash,
) {
    let shard_bytes = winning.shard_size_bytes;
    let winner = assignment_hash(winning);
    let retire_saying = |base: &EntryHash, retired: &EntryHash, by: &EntryHash, bytes: u64| {
        let tag = RetirementSummary {
            superseded_by: by.clone(),
            retired_bytes: bytes,
        };
        raw_link(
            net,
            1,
            base.clone().into(),
            retired.clone().into(),
            22,
            holochain_serialized_bytes::encode(&tag).unwrap(),
        )
    };
    let retire = |base: &EntryHash, retired: &EntryHash, by: &EntryHash| {
        retire_saying(base, retired, by, shard_bytes)
    };
    rejected(
        "the live assignment marked retired by the one it outranks",
        retire(alice_custody, &winner, loser).await,
        "outranks it",
    );
    rejected(
        "an assignment retiring itself",
        retire(alice_custody, loser, loser).await,
        "outranks it",
    );
    rejected(
        "a retirement on another node's index",
        retire(bob_custody, loser, &winner).await,
        "retired custodian's index",
    );
    rejected(
        "a retirement misstating the retired shard's size",
        retire_saying(alice_custody, loser, &winner, shard_bytes + 1).await,
        "must give the retired shard's size",
    );
    retire(alice_custody, loser, &winner)
        .await
        .expect("anyone may mark an outranked assignment retired");

    // --- recent-custody links ---------------------------------------------
    // In the custodian's bucket of the link's own time, or rejected.
    let recent_link = |node: &NodeRegistration, bucket: i64| {
        raw_link_on(
            net,
            1,
            ("recent_custody_base_hash", (node.node_id.clone(), bucket)),
            winner.clone().into(),
            23,
            AssignmentSummary::of(winning).to_tag().unwrap().0,
        )
    };
    let bucket_now = recent_bucket(Timestamp::now().as_micros());
    rejected(
        "a recent-custody link in a later bucket",
        recent_link(alice, bucket_now + 1).await,
        "assignment link is on the wrong base",
    );
    rejected(
        "a recent-custody link an hour early",
        recent_link(alice, bucket_now - 6).await,
        "assignment link is on the wrong base",
    );
    rejected(
        "a recent-custody link on another node's bucket",
        recent_link(bob_reg, bucket_now).await,
        "assignment link is on the wrong base",
    );
    // Written within a minute of `bucket_now`, so it fits even if a new
    // bucket began meanwhile.
    recent_link(alice, bucket_now)
        .await
        .expect("a recent-custody link in its custodian's current bucket");
    let recent_base = |bucket: i64| {
        let id = alice.node_id.clone();
        async move {
            net.mallory::<_, EntryHash>(1, "recent_custody_base_hash", (id, bucket))
                .await
                .unwrap()
        }
    };
    rejected(
        "a retirement in a later recent-custody bucket",
        retire(&recent_base(bucket_now + 1).await, loser, &winner).await,
        "retired custodian's index",
    );
    retire(&recent_base(bucket_now).await, loser, &winner)
        .await
        .expect("a retirement in its custodian's current recent-custody bucket");
}
