//! Every validation rule of the integrity zome, each shown rejecting an entry
//! or link. Honest calls go through the coordinator; what honest code never
//! writes goes through the test-only "mallory" zome, as an attacker would.

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{
    AssignCustodian, AttestHealth, ConsentToRelationship, CreateRelationship, DelegateWorkingKey,
    GetFamilyCustodians, GetMyNode, Heartbeat, RegisterNode, Whoami,
};
use node_registry_integrity::*;
use registry_core::committed::{recent_bucket, total_cutoff};
use registry_core::presence::{presence_bucket, presence_shard};

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
        rejected(what, net.try_call_fn::<RegisterNode>(0, r).await, reason);
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
        net.try_call_fn::<RegisterNode>(1, hijack).await,
        "not owned by this agent",
    );

    // Honest registrations for the rest.
    let alice_hash: ActionHash = net.call_fn::<RegisterNode>(0, alice.clone()).await;
    let mut bob_reg = registration(&b, "bob", "us-east");
    bob_reg.custodian_opt_in = false;
    let bob_hash: ActionHash = net.call_fn::<RegisterNode>(1, bob_reg.clone()).await;
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

    // --- heartbeat --------------------------------------------------------
    // Checked on every call, whether or not a lease is due (most heartbeats
    // write nothing); the lease link itself is checked again by validation
    // (the raw links below).
    rejected(
        "bob beats for alice",
        net.try_call_fn::<Heartbeat>(1, heartbeat(&alice.node_id, "online"))
            .await,
        "a heartbeat must come from the node's own agent",
    );
    rejected(
        "unknown status",
        net.try_call_fn::<Heartbeat>(0, heartbeat(&alice.node_id, "sleeping"))
            .await,
        "unknown node status: sleeping",
    );
    let mut old = heartbeat(&alice.node_id, "online");
    old.timestamp = Timestamp::from_micros(old.timestamp.as_micros() - 120_000_000);
    rejected(
        "heartbeat two minutes old",
        net.try_call_fn::<Heartbeat>(0, old).await,
        "timestamp is 12",
    );
    let mut future = heartbeat(&alice.node_id, "online");
    future.timestamp = Timestamp::from_micros(future.timestamp.as_micros() + 600_000_000);
    rejected(
        "heartbeat from the future",
        net.try_call_fn::<Heartbeat>(0, future).await,
        "away from its action's timestamp",
    );
    let mut overloaded = heartbeat(&alice.node_id, "online");
    overloaded.current_load = -1.0;
    rejected(
        "negative load",
        net.try_call_fn::<Heartbeat>(0, overloaded).await,
        "current_load out of range",
    );
    // The lease it writes (a link, not an entry).
    let hb: ActionHash = net
        .call_fn::<Heartbeat>(0, heartbeat(&alice.node_id, "online"))
        .await;

    // --- attestation ----------------------------------------------------
    let att = |attester: &str, subject: &str, ms: u32| HealthAttestation {
        attester_node_id: attester.to_string(),
        subject_node_id: subject.to_string(),
        success: true,
        response_time_ms: ms,
        timestamp: Timestamp::now(),
        last_seen: None,
        delegation: None,
    };
    rejected(
        "self-attestation",
        net.try_call_fn::<AttestHealth>(0, att(&alice.node_id, &alice.node_id, 20))
            .await,
        "cannot attest its own health",
    );
    rejected(
        "attesting as another node",
        net.try_call_fn::<AttestHealth>(1, att(&alice.node_id, &bob_reg.node_id, 20))
            .await,
        "the attester must be the author's own node",
    );
    rejected(
        "absurd response time",
        net.try_call_fn::<AttestHealth>(0, att(&alice.node_id, &bob_reg.node_id, 600_000))
            .await,
        "response_time_ms 600000",
    );
    let mut seen_later = att(&alice.node_id, &bob_reg.node_id, 20);
    seen_later.last_seen = Some(Timestamp::from_micros(
        seen_later.timestamp.as_micros() + 5_000_000,
    ));
    rejected(
        "last seen after the attestation",
        net.try_call_fn::<AttestHealth>(0, seen_later).await,
        "last_seen cannot be after",
    );
    let attested: ActionHash = net
        .call_fn::<AttestHealth>(0, att(&alice.node_id, &bob_reg.node_id, 20))
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
    let expected_id = format!("assignment_id must be {}#0@0", ok.content_id);
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
            &expected_id,
        ),
        (
            "unknown strategy",
            bad_asg(&|x| x.strategy = "raid5".into()),
            "unknown custody strategy: raid5",
        ),
        (
            "owner as its own custodian",
            bad_asg(&|x| owned_by(x, a.agent())),
            "a content's owner cannot be its custodian",
        ),
        (
            "publisher placing others' content",
            bad_asg(&|x| owned_by(x, AgentPubKey::from_raw_32(vec![1; 32]))),
            "only the content's owner places it",
        ),
        (
            "repair without a replaced assignment",
            bad_asg(&|x| x.decided_by = "disaster_recovery".into()),
            "must name the assignment it replaces",
        ),
    ];
    for (what, x, reason) in cases {
        rejected(what, net.try_call_fn::<AssignCustodian>(1, x).await, reason);
    }
    let ok_created: ActionHash = net.call_fn::<AssignCustodian>(1, ok.clone()).await;

    // --- retirement links -------------------------------------------------
    // A second decision of the same round for the same shard: one of the
    // two outranks the other, and only it may retire the other.
    let mut other = ok.clone();
    other.content_size_bytes = 2000;
    let other_created: ActionHash = net.call_fn::<AssignCustodian>(1, other.clone()).await;
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
    let (winning, created) = if assignment_hash(&ok) == winner {
        (ok.clone(), [ok_created, other_created])
    } else {
        (other.clone(), [other_created, ok_created])
    };
    assert_eq!(ok.shard_size_bytes, other.shard_size_bytes);
    Box::pin(retirement_and_recent_custody_rules(
        &net,
        [&alice, &bob_reg],
        [&alice_custody, &bob_custody],
        &winning,
        &loser,
        &created,
    ))
    .await;

    // --- links ------------------------------------------------------------
    net.sync().await;
    let region_base: EntryHash = net.mallory(1, "region_base_hash", "eu-west").await.unwrap();
    // The coordinator stamped the times: summarise what was stored.
    let stored: Option<RegisteredNode> = net.call_fn::<GetMyNode>(0, ()).await;
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
                link_type: "RegionIndex".into(),
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
                link_type: "RegionIndex".into(),
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
                target: alice_hash.clone().into(),
                link_type: "RegionIndex".into(),
                tag,
            },
        )
        .await
        .expect("alice may index herself");

    // Presence leases: one link on the node's shard of its heartbeat's
    // bucket, written for the node, or rejected.
    let now = Timestamp::now();
    let props = RegistryProperties::default();
    let lease_secs = props.lease_secs();
    let presence = |beat_at: Timestamp| PresenceSummary {
        node: summary.clone(),
        heartbeat: HeartbeatSummary {
            node_id: summary.node_id.clone(),
            timestamp: beat_at,
            status: "online".into(),
            current_load: 0.1,
            custody_used_bytes: 0,
            active_connections: 0,
            watcher: true,
        },
        committed: None,
        delegation: None,
    };
    let shards = props.shards();
    let my_shard = presence_shard(&summary.node_id, shards);
    let bucket_now = presence_bucket(now.as_micros(), lease_secs);
    let lease_link = |peer: usize, bucket: i64, shard: u32, p: PresenceSummary| {
        raw_link_on(
            &net,
            peer,
            ("presence_base_hash", (bucket, shard)),
            stored.action_hash.clone().into(),
            "PresenceIndex",
            holochain_serialized_bytes::encode(&p).unwrap(),
        )
    };
    rejected(
        "bob writes alice's lease",
        lease_link(1, bucket_now, my_shard, presence(now)).await,
        "a heartbeat must come from the node's own agent",
    );
    rejected(
        "a lease in a later bucket than its heartbeat",
        lease_link(0, bucket_now + 5, my_shard, presence(now)).await,
        "not on its node's shard of its heartbeat's bucket",
    );
    rejected(
        "a lease in another node's shard",
        lease_link(0, bucket_now, (my_shard + 1) % shards, presence(now)).await,
        "not on its node's shard of its heartbeat's bucket",
    );
    let stale = Timestamp::from_micros(now.as_micros() - 3600 * 1_000_000);
    rejected(
        "a lease reporting an hour-old heartbeat",
        lease_link(
            0,
            presence_bucket(stale.as_micros(), lease_secs),
            my_shard,
            presence(stale),
        )
        .await,
        "timestamp is 36",
    );
    let mut sleeping = presence(now);
    sleeping.heartbeat.status = "sleeping".into();
    rejected(
        "a lease with an unknown status",
        lease_link(0, bucket_now, my_shard, sleeping).await,
        "unknown node status: sleeping",
    );
    let mut offline_lie = presence(now);
    offline_lie.heartbeat.node_id = "someone-else".into();
    rejected(
        "a lease with another node's heartbeat",
        lease_link(0, bucket_now, my_shard, offline_lie).await,
        "heartbeat is of another node",
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
        "a lease whose custody total counts links too young to have reached it",
        lease_link(0, bucket_now, my_shard, with_total(now.as_micros())).await,
        "custody total cannot count links younger than its lag",
    );
    lease_link(
        0,
        bucket_now,
        my_shard,
        with_total(total_cutoff(
            now.as_micros(),
            props.custody_total_lag_secs as i64,
        )),
    )
    .await
    .expect("alice may publish the total of her custody");
    lease_link(0, bucket_now, my_shard, presence(now))
        .await
        .expect("alice may renew her own lease");

    Box::pin(delegation_rules(&mut net, &alice, &alice_hash, &bob_reg)).await;

    net.sync().await;
    rejected(
        "bob deletes alice's link",
        net.mallory::<_, ActionHash>(1, "delete_link_raw", my_link)
            .await,
        "only the author",
    );
}

/// `x` as if `owner` owned its content: the owner and the ids it derives.
fn owned_by(x: &mut CustodianAssignment, owner: AgentPubKey) {
    x.content_id = registry_core::assignment::content_id(owner.get_raw_32(), &x.content_hash);
    x.assignment_id = registry_core::assignment::assignment_id(&x.content_id, x.shard_index, 0);
    x.owner_agent = owner;
}

/// Mirror of mallory's `RawLink` input.
#[derive(serde::Serialize, Debug)]
struct RawLinkInput {
    base: AnyLinkableHash,
    target: AnyLinkableHash,
    link_type: String,
    tag: Vec<u8>,
}

/// Commits, as `peer` through mallory, a raw link from the base that
/// mallory's `base.0` function computes from `base.1`.
async fn raw_link_on<B: serde::Serialize + std::fmt::Debug>(
    net: &Network,
    peer: usize,
    base: (&str, B),
    target: AnyLinkableHash,
    link_type: &str,
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
    link_type: &str,
    tag: Vec<u8>,
) -> Result<ActionHash, String> {
    net.mallory(
        peer,
        "create_link_raw",
        RawLinkInput {
            base,
            target,
            link_type: link_type.to_string(),
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
/// assignment at `loser`, both of the same shard, both decided by bob
/// (`created`: his actions creating the winner, then the loser).
async fn retirement_and_recent_custody_rules(
    net: &Network,
    [alice, bob_reg]: [&NodeRegistration; 2],
    [alice_custody, bob_custody]: [&EntryHash; 2],
    winning: &CustodianAssignment,
    loser: &EntryHash,
    [winner_created, loser_created]: &[ActionHash; 2],
) {
    let shard_bytes = winning.shard_size_bytes;
    let winner = assignment_hash(winning);
    let retire_citing = |base: &EntryHash,
                         retired: &EntryHash,
                         by: &EntryHash,
                         bytes: u64,
                         decided_in: Option<ActionHash>| {
        let tag = RetirementSummary {
            superseded_by: by.clone(),
            retired_bytes: bytes,
            decided_in,
            delegation: None,
        };
        raw_link(
            net,
            1,
            base.clone().into(),
            retired.clone().into(),
            "NodeToRetiredAssignment",
            holochain_serialized_bytes::encode(&tag).unwrap(),
        )
    };
    let retire_saying = |base: &EntryHash, retired: &EntryHash, by: &EntryHash, bytes: u64| {
        retire_citing(base, retired, by, bytes, Some(winner_created.clone()))
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
    // Issue 21, item 11: only the two parties with a stake mark it.
    rejected(
        "a retirement by neither the custodian nor the decider",
        retire_citing(alice_custody, loser, &winner, shard_bytes, None).await,
        "a retirement is marked by the retired custodian or by the outranking decision's author",
    );
    rejected(
        "a retirement citing another decision than the winner's",
        retire_citing(
            alice_custody,
            loser,
            &winner,
            shard_bytes,
            Some(loser_created.clone()),
        )
        .await,
        "decided_in must be the link author's own creation of the outranking assignment",
    );
    retire(alice_custody, loser, &winner)
        .await
        .expect("the outranking decision's author marks the outranked assignment retired");

    // --- recent-custody links ---------------------------------------------
    // In the custodian's bucket of the link's own time, or rejected.
    let recent_link = |node: &NodeRegistration, bucket: i64| {
        raw_link_on(
            net,
            1,
            ("recent_custody_base_hash", (node.node_id.clone(), bucket)),
            winner.clone().into(),
            "NodeToRecentAssignment",
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
        "a recent-custody link hours early",
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

/// Working keys: only a node's identity delegates, for a bounded window, to
/// at most two keys at once; a working key writes for its node only, inside
/// its window; a delegation link is the identity's, from the key it names.
async fn delegation_rules(
    net: &mut Network,
    alice: &NodeRegistration,
    alice_hash: &ActionHash,
    bob: &NodeRegistration,
) {
    let work = net.add_agents(0, 3, "work").await;
    let (w1, w2, w3) = (work[0], work[1], work[2]);
    for &w in &work {
        net.arm_mallory(w).await;
    }
    let max = RegistryProperties::default().max_delegation_secs as i64;
    let att = |attester: &NodeRegistration, subject: &NodeRegistration, d: Option<&ActionHash>| {
        HealthAttestation {
            attester_node_id: attester.node_id.clone(),
            subject_node_id: subject.node_id.clone(),
            success: true,
            response_time_ms: 5,
            timestamp: Timestamp::now(),
            last_seen: None,
            delegation: d.cloned(),
        }
    };
    let window = |secs: i64| {
        let now = Timestamp::now();
        (
            now,
            Timestamp::from_micros(now.as_micros() + secs * 1_000_000),
        )
    };
    let delegation = |to: usize, (from, until): (Timestamp, Timestamp)| WorkingKeyDelegation {
        node_id: alice.node_id.clone(),
        delegate: net.peers[to].agent(),
        valid_from: from,
        valid_until: until,
    };
    rejected(
        "bob delegates for alice's node",
        net.mallory::<_, ActionHash>(1, "create_delegation", delegation(w1, window(60)))
            .await,
        "only a node's identity delegates for it",
    );
    rejected(
        "a delegation longer than the DNA allows",
        net.mallory::<_, ActionHash>(0, "create_delegation", delegation(w1, window(max + 60)))
            .await,
        "a delegation lasts at most",
    );
    let (from, until) = window(60);
    rejected(
        "a backdated delegation",
        net.mallory::<_, ActionHash>(
            0,
            "create_delegation",
            delegation(
                w1,
                (
                    Timestamp::from_micros(from.as_micros() - 3_600_000_000),
                    until,
                ),
            ),
        )
        .await,
        "valid_from",
    );
    let d1: ActionHash = net
        .call_fn::<DelegateWorkingKey>(
            0,
            DelegateInput {
                delegate: net.peers[w1].agent(),
                valid_from: from,
                valid_until: until,
            },
        )
        .await;
    net.sync().await;
    let me: Option<ActingAs> = net.call_fn::<Whoami>(w1, ()).await;
    let me = me.expect("the working key knows whom it writes for");
    assert_eq!(
        (me.node_id.as_str(), me.delegation.as_ref()),
        (alice.node_id.as_str(), Some(&d1))
    );
    // The working key renews alice's lease and attests as alice.
    let mut hb = heartbeat(&alice.node_id, "degraded");
    hb.watcher = true;
    let _: ActionHash = net.call_fn::<Heartbeat>(w1, hb).await;
    let _: ActionHash = net.call_fn::<AttestHealth>(w1, att(alice, bob, None)).await;
    // ... but not as bob, even citing alice's delegation.
    rejected(
        "a working key attests for another node",
        net.mallory::<_, ActionHash>(w1, "create_attestation", att(bob, alice, Some(&d1)))
            .await,
        "the cited delegation is for another node",
    );
    rejected(
        "a key citing a delegation that names another key",
        net.mallory::<_, ActionHash>(w2, "create_attestation", att(alice, bob, Some(&d1)))
            .await,
        "names another working key",
    );
    rejected(
        "citing the registration as a delegation",
        net.mallory::<_, ActionHash>(w1, "create_attestation", att(alice, bob, Some(alice_hash)))
            .await,
        "is not a working-key delegation",
    );
    // A short delegation for w2: once it ends, w2's writes are refused.
    let short = window(3);
    let d2: ActionHash = net
        .call_fn::<DelegateWorkingKey>(
            0,
            DelegateInput {
                delegate: net.peers[w2].agent(),
                valid_from: short.0,
                valid_until: short.1,
            },
        )
        .await;
    // Two keys are valid now (w1, w2): a third is refused.
    rejected(
        "a third working key at once",
        net.mallory::<_, ActionHash>(0, "create_delegation", delegation(w3, window(60)))
            .await,
        "at most 2 working keys",
    );
    while Timestamp::now() <= short.1 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    net.sync().await;
    rejected(
        "writing after the delegation ended",
        net.mallory::<_, ActionHash>(w2, "create_attestation", att(alice, bob, Some(&d2)))
            .await,
        "outside the cited delegation's validity window",
    );
    // Delegation links: the identity's, from the key the delegation names.
    let d1_summary = DelegationSummary {
        node_id: alice.node_id.clone(),
        valid_from: from,
        valid_until: until,
    };
    rejected(
        "a delegation linked from another key",
        raw_link(
            net,
            0,
            net.peers[w3].agent().into(),
            d1.clone().into(),
            "AgentToDelegation",
            d1_summary.to_tag().unwrap().0,
        )
        .await,
        "linked from the working key it names",
    );
    rejected(
        "a delegation linked by someone else",
        raw_link(
            net,
            w3,
            net.peers[w1].agent().into(),
            d1.into(),
            "AgentToDelegation",
            d1_summary.to_tag().unwrap().0,
        )
        .await,
        "only the delegating identity links its delegation",
    );
}

/// The attacks of issue 21 on the DNA's own rules, by one agent running its
/// own coordinator ("mallory"): each commit below was accepted before the
/// rule that now refuses it.
#[test]
fn one_fresh_agent_cannot_forge_types_contents_or_family() {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(forgeries())
        })
        .expect("a thread for the attacks")
        .join()
        .expect("every forgery is refused");
}

async fn forgeries() {
    let mut net = Network::start(2).await;
    let carol_peer = net.add_agents(0, 1, "carol").await[0];
    for p in [0, 1, carol_peer] {
        net.arm_mallory(p).await;
    }
    let (a, b, c) = (
        net.peers[0].clone(),
        net.peers[1].clone(),
        net.peers[carol_peer].clone(),
    );
    let alice = registration(&a, "alice", "eu-west");
    let bob = registration(&b, "bob", "eu-west");
    let carol = registration(&c, "carol", "eu-west");
    let _: ActionHash = net.call_fn::<RegisterNode>(0, alice.clone()).await;
    let bob_hash: ActionHash = net.call_fn::<RegisterNode>(1, bob.clone()).await;
    let _: ActionHash = net.call_fn::<RegisterNode>(carol_peer, carol.clone()).await;
    net.sync().await;

    // Item 1: an entry committed as one type that also carries another
    // type's fields (serde used to ignore them, so it read back as both).
    let relationship: ActionHash = net
        .call_fn::<CreateRelationship>(
            0,
            CreateRelationshipInput {
                other: b.agent(),
                kind: "family".into(),
                auto_custody_enabled: true,
            },
        )
        .await;
    net.sync().await;
    #[derive(serde::Serialize, Debug)]
    struct RelationshipWithPenalty {
        party_a: AgentPubKey,
        party_b: AgentPubKey,
        kind: String,
        auto_custody_enabled: bool,
        created_at: Timestamp,
        offender_node_id: String,
        reason: String,
        offence: ActionHash,
        evidence: Vec<Witness>,
        detected_by_node_id: String,
        delegation: Option<ActionHash>,
    }
    let both = RelationshipWithPenalty {
        party_a: b.agent(),
        party_b: a.agent(),
        kind: "family".into(),
        auto_custody_enabled: true,
        created_at: Timestamp::now(),
        offender_node_id: alice.node_id.clone(),
        reason: "false_accusation".into(),
        offence: relationship.clone(),
        evidence: vec![],
        detected_by_node_id: bob.node_id.clone(),
        delegation: None,
    };
    rejected(
        "a relationship that also carries a penalty's fields",
        net.mallory::<_, ActionHash>(
            1,
            "create_raw_entry",
            RawEntryInput {
                entry_index: 6,
                bytes: holochain_serialized_bytes::encode(&both).unwrap(),
            },
        )
        .await,
        "unknown field",
    );
    rejected(
        "a penalty link to a relationship",
        raw_link_on(
            &net,
            1,
            ("region_base_hash", "eu-west"),
            relationship.clone().into(),
            "NodeToPenalty",
            vec![],
        )
        .await,
        "penalty links point to a penalty",
    );

    // Item 2: bob places alice's content (its id is public) as his own.
    let content_hash = "ab".repeat(32);
    let alices_content =
        registry_core::assignment::content_id(a.agent().get_raw_32(), &content_hash);
    let mut stolen = assignment(
        b.agent(),
        "photo",
        &carol,
        carol_hash(&net, carol_peer).await,
    );
    stolen.content_id = alices_content.clone();
    stolen.content_hash = content_hash.clone();
    stolen.assignment_id = registry_core::assignment::assignment_id(&alices_content, 0, 0);
    rejected(
        "bob claims alice's content id",
        net.mallory::<_, ActionHash>(1, "create_assignment", stolen)
            .await,
        "content_id must be blake3(owner key, content_hash)",
    );
    let mut odd = assignment(
        b.agent(),
        "photo",
        &carol,
        carol_hash(&net, carol_peer).await,
    );
    odd.content_id = "../../etc/passwd".into();
    odd.assignment_id = registry_core::assignment::assignment_id(&odd.content_id, 0, 0);
    rejected(
        "a content id that is a path",
        net.mallory::<_, ActionHash>(1, "create_assignment", odd)
            .await,
        "content_id must be blake3(owner key, content_hash)",
    );

    // Items 6 and 10: alice and bob are family; bob withdraws, then
    // approves carol's recovery of alice with his old consents anyway.
    let consent_b: ActionHash = net
        .call_fn::<ConsentToRelationship>(
            1,
            ConsentInput {
                relationship: relationship.clone(),
                consent: true,
            },
        )
        .await;
    net.sync().await;
    let family: Vec<FamilyCustodian> = net
        .call_fn::<GetFamilyCustodians>(carol_peer, a.agent())
        .await;
    assert_eq!(family.len(), 1, "bob keeps alice's content: {family:?}");
    let proof = family[0].proof.clone();
    assert!(proof.consents.contains(&consent_b));
    // A proof may not pad its consents (each is fetched and checked).
    let mut padded = proof.clone();
    padded.consents.push(proof.consents[0].clone());
    let mut with_family = assignment(a.agent(), "album", &bob, bob_hash.clone());
    with_family.decided_by = "relationship_policy".into();
    with_family.relationship = Some(padded);
    rejected(
        "a family proof padded with a repeated consent",
        net.mallory::<_, ActionHash>(0, "create_assignment", with_family)
            .await,
        "a family proof holds each party's consent once",
    );
    let _: ActionHash = net
        .call_fn::<ConsentToRelationship>(
            1,
            ConsentInput {
                relationship: relationship.clone(),
                consent: false,
            },
        )
        .await;
    let stranger = AgentPubKey::from_raw_32(vec![7; 32]);
    let request = |family: Vec<(AgentPubKey, FamilyProof)>| RecoveryRequest {
        lost_agent: a.agent(),
        new_agent: c.agent(),
        new_node_id: carol.node_id.clone(),
        required_approvals: registry_core::quorum::required_approvals(family.len()).unwrap() as u32,
        family: family.iter().map(|(m, _)| m.clone()).collect(),
        family_proofs: family.into_iter().map(|(_, p)| p).collect(),
        created_at: Timestamp::now(),
    };
    rejected(
        "carol names a stranger as alice's family",
        net.mallory::<_, ActionHash>(
            carol_peer,
            "create_recovery_request",
            request(vec![(stranger, proof.clone())]),
        )
        .await,
        "is not proven family of the lost agent",
    );
    let filed: ActionHash = net
        .mallory(
            carol_peer,
            "create_recovery_request",
            request(vec![(b.agent(), proof.clone())]),
        )
        .await
        .expect("bob was alice's consenting family when the proof was made");
    net.sync().await;
    rejected(
        "bob approves with the consent he withdrew",
        net.mallory::<_, ActionHash>(
            1,
            "create_recovery_approval",
            RecoveryApproval {
                request: filed,
                approver: b.agent(),
                approve: true,
                proof,
            },
        )
        .await,
        "has withdrawn its consent",
    );
}

/// Mirror of mallory's `RawEntry` input.
#[derive(serde::Serialize, Debug)]
struct RawEntryInput {
    entry_index: u8,
    bytes: Vec<u8>,
}

/// The registration hash of a peer's node, as its directory gives it.
async fn carol_hash(net: &Network, peer: usize) -> ActionHash {
    let mine: Option<RegisteredNode> = net.call_fn::<GetMyNode>(peer, ()).await;
    mine.expect("registered").action_hash
}
