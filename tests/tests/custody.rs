//! Custody in motion, with real bytes: publishing to custodians, a
//! custodian dying and its shards rebuilt elsewhere, no custodian available,
//! concurrent repairs, refused transfers, and a sidecar killed mid-upload.

use elohim_sidecar::custody::{PublishReport, PublishRequest};
use elohim_tests::sidecars::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{
    AssignCustodian, GetAssignment, GetAssignmentHistory, GetAssignmentRecordsForContent,
    GetAssignmentRecordsForNode, GetAvailableCustodians, GetMyNode, UpdateNodeCapacity,
};
use node_registry_integrity::*;
use std::time::Instant;

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

async fn publish(
    net: &SidecarNet,
    node: usize,
    name: &str,
    bytes: &[u8],
    strategy: &str,
    k: u32,
    n: u32,
) -> PublishReport {
    let path = net.dirs[node].path().join(name);
    std::fs::write(&path, bytes).unwrap();
    net.node(node)
        .custody
        .publish(
            PublishRequest {
                path,
                strategy: Some(strategy.into()),
                k: Some(k),
                n: Some(n),
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("publishing {name}: {e}"))
}

async fn live(net: &SidecarNet, observer: usize, content_id: &str) -> Vec<AssignmentRecord> {
    net.node(observer)
        .agent
        .call_fn::<GetAssignmentRecordsForContent>(content_id.to_string())
        .await
        .unwrap()
}

fn custodians(records: &[AssignmentRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.assignment.custodian_node_id.clone())
        .collect()
}

/// Waits until `content_id` has `n` live assignments, none on `dead`, each
/// held (verified) by its custodian's store; returns them.
async fn await_restored(
    net: &SidecarNet,
    observer: usize,
    content_id: &str,
    n: usize,
    dead: &str,
) -> Vec<AssignmentRecord> {
    net.until(240, &format!("{content_id} restored"), || async {
        let recs = live(net, observer, content_id).await;
        if recs.len() != n || recs.iter().any(|r| r.assignment.custodian_node_id == dead) {
            return None;
        }
        for r in &recs {
            let holder = net
                .daemons
                .iter()
                .flatten()
                .find(|d| d.agent.node_id == r.assignment.custodian_node_id)?;
            let bytes = holder
                .custody
                .store
                .read_verified(&r.assignment.shard_hash)
                .ok()?;
            if blake3::hash(&bytes).to_hex().as_str() != r.assignment.shard_hash {
                return None;
            }
        }
        Some(recs)
    })
    .await
}

async fn retrieve(net: &SidecarNet, node: usize, content_id: &str) -> Vec<u8> {
    let out = net.dirs[node].path().join(format!("{content_id}.out"));
    net.node(node)
        .custody
        .retrieve(content_id, &out, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("retrieving {content_id}: {e}"));
    std::fs::read(out).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_custodian_is_replaced_for_every_strategy() {
    // Node 0 publishes; nodes 1-3 take the shards (node 4 starts opted out,
    // so the first placement is forced); then node 4 opts in and node 1 dies.
    let mut net = SidecarNet::start(5, &[0, 1, 2, 3, 4], |i, c| {
        if i == 4 {
            c.participation.custodian_opt_in = false;
        }
    })
    .await;
    net.await_custodians(0, 4).await;
    let items = [
        ("replica.bin", "full_replica", 1, 3, content(300_000, 1)),
        ("coded.bin", "erasure_coded", 2, 3, content(400_000, 2)),
        ("secret.bin", "threshold_split", 2, 3, content(350_000, 3)),
    ];
    let mut published = Vec::new();
    for (name, strategy, k, n, bytes) in &items {
        let r = publish(&net, 0, name, bytes, strategy, *k, *n).await;
        assert_eq!(r.pushed, 3, "{name}: {:?}", r.push_failures);
        let mut held_by = r.custodians.clone();
        held_by.sort();
        let mut expected = vec![net.node_id(1), net.node_id(2), net.node_id(3)];
        expected.sort();
        assert_eq!(held_by, expected, "{name}");
        published.push(r);
    }

    let _: ActionHash = net
        .node(4)
        .agent
        .call_fn::<UpdateNodeCapacity>(UpdateCapacityInput {
            node_id: net.node_id(4),
            updates: CapacityUpdates {
                custodian_opt_in: Some(true),
                max_custody_gb: Some(50.0),
                max_bandwidth_mbps: Some(20),
                max_cpu_percent: Some(15.0),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    net.await_custodians(0, 5).await;

    let dead = net.node_id(1);
    let newcomer = net.node_id(4);
    let killed_at = Instant::now();
    net.kill(1).await;
    for (r, (name, _, _, n, bytes)) in published.iter().zip(&items) {
        let recs = await_restored(&net, 0, &r.content_id, *n as usize, &dead).await;
        assert!(
            custodians(&recs).contains(&newcomer),
            "{name}: node 4 took the lost shard"
        );
        let mut distinct = custodians(&recs);
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), *n as usize, "{name}: one shard per node");
        let repaired = recs
            .iter()
            .find(|x| x.assignment.custodian_node_id == newcomer)
            .unwrap();
        assert_eq!(repaired.assignment.decision_round, 1);
        assert_eq!(repaired.assignment.decided_by, "disaster_recovery");
        assert_eq!(
            &retrieve(&net, 0, &r.content_id).await,
            bytes,
            "{name} comes back byte-identical"
        );
    }
    println!(
        "custody: all three strategies restored {:.1} s after the custodian was killed \
         (failure window 10 s + grace 5 s, heartbeats every 5 s)",
        killed_at.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_custodian_fits_until_a_node_joins() {
    let mut net = SidecarNet::start(5, &[0, 1, 2, 3], |_, _| {}).await;
    net.await_custodians(0, 4).await;
    let bytes = content(200_000, 7);
    let r = publish(&net, 0, "photo.jpg", &bytes, "full_replica", 1, 3).await;
    let dead = net.node_id(1);
    net.kill(1).await;

    // Every survivor that detects the failure finds nowhere to put the shard.
    net.until(240, "DisasterRecoveryFailed signalled", || async {
        net.daemons
            .iter()
            .flatten()
            .any(|d| {
                d.custody.repair_failures.lock().unwrap().iter().any(|s| {
                    matches!(s, RegistrySignal::DisasterRecoveryFailed { content_id, failed_node_id, .. }
                        if *content_id == r.content_id && *failed_node_id == dead)
                })
            })
            .then_some(())
    })
    .await;
    // Nothing is lost: the two surviving replicas still restore the content.
    assert_eq!(
        live(&net, 0, &r.content_id).await.len(),
        3,
        "the dead node's assignment stays until replaced"
    );
    assert_eq!(retrieve(&net, 0, &r.content_id).await, bytes);

    // A node joins: the next detection run re-homes the shard onto it.
    net.join(4).await;
    let recs = await_restored(&net, 0, &r.content_id, 3, &dead).await;
    assert!(custodians(&recs).contains(&net.node_id(4)));
    // Custodians hold ciphertext: without the owner's key nothing decodes.
    let err = net
        .node(2)
        .custody
        .retrieve(&r.content_id, &net.dirs[2].path().join("peek"), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, elohim_sidecar::custody::CustodyError::MissingKey(_)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_recovery_creates_no_duplicates() {
    // No automatic detection here: two nodes trigger the same repair at once.
    let mut net = SidecarNet::start(5, &[0, 1, 2, 3, 4], |_, c| {
        c.custody.detect_interval_secs = 3600
    })
    .await;
    net.await_custodians(0, 5).await;
    let bytes = content(250_000, 9);
    let r = publish(&net, 0, "doc.pdf", &bytes, "erasure_coded", 2, 3).await;
    let victim_id = r.custodians[0].clone();
    let victim = (1..5).find(|i| net.node_id(*i) == victim_id).unwrap();
    let (a, b) = {
        let mut others = (0..5).filter(|i| *i != victim);
        (others.next().unwrap(), others.next().unwrap())
    };
    // A publish returns once the custodians hold the bytes; the placement
    // reaches the repairing nodes' views through the DHT after that (a
    // repair run before it finds nothing of the victim's to re-home).
    for node in [a, b] {
        net.until(180, "the repairing nodes see the placement", || async {
            let of_victim: Vec<AssignmentRecord> = net
                .node(node)
                .agent
                .call_fn::<GetAssignmentRecordsForNode>(victim_id.clone())
                .await
                .ok()?;
            let placed = live(&net, node, &r.content_id).await.len() == 3;
            (placed
                && of_victim
                    .iter()
                    .any(|x| x.assignment.content_id == r.content_id))
            .then_some(())
        })
        .await;
    }
    net.kill(victim).await;
    let policy = DetectionInput {
        failure_window_secs: Some(10),
        grace_secs: Some(5),
    };
    net.await_declared(a, &victim_id, policy, 120).await;
    // Declared failed: from that moment nobody placing content is offered it.
    let offered: Vec<RankedCustodian> = net
        .node(a)
        .agent
        .read_fn::<GetAvailableCustodians>(CustodianFilters::default())
        .await
        .unwrap();
    assert!(
        offered.iter().all(|c| c.registration.node_id != victim_id),
        "a declared failure is not offered: {offered:?}"
    );

    let (ra, rb): (RepairReport, RepairReport) = tokio::join!(
        async { net.node(a).agent.recover(&victim_id).await.unwrap() },
        async { net.node(b).agent.recover(&victim_id).await.unwrap() },
    );
    assert_eq!(ra.replacements.len(), 1);
    assert_eq!(rb.replacements.len(), 1);
    assert_eq!(
        ra.replacements[0].entry_hash, rb.replacements[0].entry_hash,
        "same decision, same entry"
    );

    let recs = await_restored(&net, a, &r.content_id, 3, &victim_id).await;
    let history: Vec<AssignmentRecord> = net
        .node(b)
        .agent
        .call_fn::<GetAssignmentHistory>(r.content_id.clone())
        .await
        .unwrap();
    let lost_index = recs
        .iter()
        .find(|x| x.assignment.decision_round == 1)
        .unwrap()
        .assignment
        .shard_index;
    let round1: Vec<_> = history
        .iter()
        .filter(|h| h.assignment.shard_index == lost_index && h.assignment.decision_round == 1)
        .collect();
    assert_eq!(
        round1.len(),
        1,
        "one replacement, however many ran the repair: {history:?}"
    );
    assert_eq!(history.len(), 4, "3 originals + 1 replacement");

    // A repeat run finds nothing left to do.
    let again = net.node(a).agent.recover(&victim_id).await.unwrap();
    assert!(
        again.replacements.is_empty() && again.unplaced.is_empty(),
        "{again:?}"
    );
    assert_eq!(retrieve(&net, 0, &r.content_id).await, bytes);
}

/// A publish right after a custodian died (still present, not yet
/// suspected by its monitors) does not wait on it: the candidate that does
/// not answer gives way to the next, and every shard is delivered.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_skips_a_custodian_that_just_died() {
    // No node refetches a shard it lacks on its own here: below, only the
    // publisher's second publish may send back a shard a custodian lost.
    let mut net = SidecarNet::start(5, &[0, 1, 2, 3, 4], |_, c| {
        c.custody.reconcile_interval_secs = 86_400
    })
    .await;
    net.await_custodians(0, 5).await;
    let dead = net.node_id(1);
    net.kill(1).await;
    let started = Instant::now();
    let r = publish(
        &net,
        0,
        "fresh.bin",
        &content(100_000, 5),
        "full_replica",
        1,
        3,
    )
    .await;
    let took = started.elapsed();
    assert!(
        !r.custodians.contains(&dead),
        "the dead node was chosen: {:?}",
        r.custodians
    );
    assert_eq!(r.pushed, 3, "{:?}", r.push_failures);
    println!(
        "custody: a publish right after a custodian died took {:.1} s",
        took.as_secs_f64()
    );

    // The same bytes published again: the content id depends only on the
    // owner and the bytes, so this is the same content. With the same
    // placement asked for, nothing new is written; with another strategy the
    // publish is refused, naming the placement the content has (before, the
    // new round-0 assignments lost to the old ones, nothing rebuilt them, and
    // a person asking for a threshold split kept full replicas out).
    let history = |net: &SidecarNet| {
        let id = r.content_id.clone();
        let agent = net.node(0).agent.clone();
        async move {
            agent
                .call_fn::<GetAssignmentHistory>(id)
                .await
                .unwrap()
                .len()
        }
    };
    let written = history(&net).await;
    // A custodian that lacks its shard (as after a publisher killed
    // mid-push) gets it from a second publish: the shards are encoded
    // again, the same bytes as the first time (the encoding is derived from
    // the owner's secret and the content), and sent only where missing.
    let lacking = (2..5)
        .find(|i| net.node_id(*i) == r.custodians[0])
        .expect("a live custodian");
    let its_shard = live(&net, 0, &r.content_id)
        .await
        .into_iter()
        .find(|a| a.assignment.custodian_node_id == r.custodians[0])
        .unwrap()
        .assignment
        .shard_hash;
    net.node(lacking).custody.store.remove(&its_shard).unwrap();
    let again = publish(
        &net,
        0,
        "fresh-again.bin",
        &content(100_000, 5),
        "full_replica",
        1,
        3,
    )
    .await;
    assert_eq!(again.content_id, r.content_id);
    assert!(again.already_published, "{again:?}");
    assert_eq!(again.custodians, r.custodians);
    assert_eq!(
        (again.pushed, again.push_failures.len()),
        (1, 0),
        "only the lacking shard is sent again: {again:?}"
    );
    net.node(lacking)
        .custody
        .store
        .read_verified(&its_shard)
        .expect("the custodian holds its shard again");
    let once_more = publish(
        &net,
        0,
        "fresh-again.bin",
        &content(100_000, 5),
        "full_replica",
        1,
        3,
    )
    .await;
    assert_eq!(
        (once_more.already_published, once_more.pushed),
        (true, 0),
        "every custodian holds its shard: nothing to send"
    );
    assert_eq!(history(&net).await, written, "an idempotent publish wrote");
    let path = net.dirs[0].path().join("fresh-split.bin");
    std::fs::write(&path, content(100_000, 5)).unwrap();
    let refused = net
        .node(0)
        .custody
        .publish(
            PublishRequest {
                path,
                strategy: Some("threshold_split".into()),
                k: Some(2),
                n: Some(3),
                ..Default::default()
            },
            &|_| {},
        )
        .await;
    let e = match refused {
        Err(e) => e.to_string(),
        Ok(report) => panic!("re-publishing as a threshold split was accepted: {report:?}"),
    };
    assert!(
        e.contains("already published") && e.contains("full_replica 1-of-3"),
        "{e}"
    );
    assert_eq!(history(&net).await, written, "a refused publish wrote");
    let held = live(&net, 0, &r.content_id).await;
    assert!(
        held.iter().all(|a| a.assignment.strategy == "full_replica"),
        "{held:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_node_that_still_answers_is_not_repaired_away() {
    // Heartbeats missing from a detector's view are not proof of death (its
    // view may lag): a node that answers a probe keeps its shards.
    let mut net = SidecarNet::start(4, &[0, 1, 2, 3], |_, c| {
        c.custody.detect_interval_secs = 3600
    })
    .await;
    net.await_custodians(0, 4).await;
    let bytes = content(120_000, 11);
    let r = publish(&net, 0, "notes.txt", &bytes, "full_replica", 1, 2).await;
    let silent_id = r.custodians[0].clone();
    let silent = (1..4).find(|i| net.node_id(*i) == silent_id).unwrap();
    let observer = (1..4).find(|i| *i != silent).unwrap();
    // A publish returns once the custodians hold the bytes; the placement
    // reaches other nodes' views through the DHT after that.
    net.until(180, "the observer sees the placement", || async {
        (live(&net, observer, &r.content_id).await.len() == 2).then_some(())
    })
    .await;
    let policy = DetectionInput {
        failure_window_secs: Some(10),
        grace_secs: Some(5),
    };
    // The sidecar stops beating; the conductor still answers.
    net.stop_sidecar(silent).await;
    // One run of four under a loaded machine saw 120 s pass before the
    // observer declared it (cause not found); the await ends as soon as it does.
    net.await_declared(observer, &silent_id, policy, 240).await;
    let reports = net
        .node(observer)
        .custody
        .detect_and_repair(policy)
        .await
        .unwrap();
    assert!(
        reports.iter().all(|r| r.failed_node_id != silent_id),
        "a node that answers is not repaired: {reports:?}"
    );
    let live_now = live(&net, observer, &r.content_id).await;
    assert!(
        live_now
            .iter()
            .any(|x| x.assignment.custodian_node_id == silent_id),
        "its assignment stays live"
    );

    // Once it no longer answers either, it is repaired (after the window
    // in which its answer is trusted).
    net.kill(silent).await;
    let report = net
        .until(120, "the dead node repaired", || async {
            let reports = net
                .node(observer)
                .custody
                .detect_and_repair(policy)
                .await
                .ok()?;
            reports.into_iter().find(|r| r.failed_node_id == silent_id)
        })
        .await;
    assert_eq!(report.replacements.len(), 1, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_are_checked_and_an_interrupted_upload_resumes() {
    use elohim_sidecar::transfer::TransferAuth;
    // Node 1 reconciles only when told to: its own repair loop must not
    // refetch the shard it forgets below while refused uploads are checked.
    let mut net = SidecarNet::start(4, &[0, 1, 2, 3], |i, c| {
        if i == 1 {
            c.custody.reconcile_interval_secs = 86_400;
            // Small allowances for shards sent ahead of their assignments,
            // to see them run out below (one 3 MB shard per sender).
            c.custody.provisional_per_sender_mb = 4;
            c.custody.provisional_total_mb = 7;
            c.custody.provisional_keep_secs = 20;
        }
        if i >= 2 {
            // What nodes 2 and 3 serve stays in their ledgers until the
            // test looks (replays are counted there).
            c.rewards.summary_interval_secs = 86_400;
        }
    })
    .await;
    net.await_custodians(0, 4).await;
    let bytes = content(3_000_000, 5);
    let r = publish(&net, 0, "video.mp4", &bytes, "full_replica", 1, 3).await;
    let recs = live(&net, 0, &r.content_id).await;
    let mine = recs
        .iter()
        .find(|x| x.assignment.custodian_node_id == net.node_id(1))
        .unwrap()
        .clone();
    // The publisher sent every shard with its assignment, without waiting
    // for the custodians to see it; each held its shard for now, and holds
    // it for good once the assignment reached it.
    let taken_early: u64 = (0..4)
        .map(|i| net.node(i).custody.agent.metrics.shards_taken_early.get())
        .sum();
    assert!(taken_early >= 1, "no custodian took its shard early");
    net.until(60, "node 1 sees its shard's assignment", || async {
        let held = net.node(1).custody.store.has(&mine.assignment.shard_hash);
        let waiting = net.node(1).custody.store.provisional().unwrap();
        (held && waiting.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        net.node(1)
            .custody
            .store
            .record(&mine.assignment.shard_hash)
            .unwrap()
            .unwrap()
            .assignment,
        mine.entry_hash.to_string()
    );
    // A retrieve decodes the shards as they arrive, starting from what an
    // earlier download left of a shard. Here what node 0 kept of the first
    // shard is not its start: the holder sends it from byte 0, the bytes
    // already decoded are not the shard's, and the retrieve fetches the
    // shard again before decoding it; the content still comes back whole.
    let first_shard = recs
        .iter()
        .min_by_key(|x| x.assignment.shard_index)
        .unwrap()
        .assignment
        .shard_hash
        .clone();
    let partial = net.dirs[0].path().join("shards/partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join(&first_shard), content(500_000, 99)).unwrap();
    let out = net.dirs[0].path().join("after-a-stale-start.out");
    net.node(0)
        .custody
        .retrieve(&r.content_id, &out, &|_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);

    let other = recs
        .iter()
        .find(|x| x.assignment.custodian_node_id != net.node_id(1))
        .unwrap()
        .clone();
    let shard = net
        .daemons
        .iter()
        .flatten()
        .find(|d| d.agent.node_id == other.assignment.custodian_node_id)
        .unwrap()
        .custody
        .store
        .read_verified(&other.assignment.shard_hash)
        .unwrap();
    let my_shard = net
        .node(1)
        .custody
        .store
        .read_verified(&mine.assignment.shard_hash)
        .unwrap();
    // Node 1 forgets its shard, to see what it accepts back.
    net.node(1)
        .custody
        .store
        .remove(&mine.assignment.shard_hash)
        .unwrap();

    // Node 3 runs an attacker's coordinator from here on (every honest
    // function stays, so its sidecar works as before): see the forged
    // signals below.
    net.arm_mallory(3).await;
    let url = |hash: &str| format!("http://{}/shards/{hash}", net.node(1).http_addr);
    let put = |auth: TransferAuth, hash: String, body: Vec<u8>| {
        let url = url(&hash);
        async move {
            let mut req = reqwest::Client::new().put(url).body(body);
            for (k, v) in auth.headers() {
                req = req.header(k, v);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    let sender = &net.node(0).custody;
    let a1 = mine.entry_hash.to_string();
    let h1 = mine.assignment.shard_hash.clone();

    let node_1 = net.node_id(1);
    let mut forged = sender.sign("PUT", &h1, &a1, &node_1).await.unwrap();
    forged.signature[10] ^= 0x40;
    assert_eq!(
        put(forged, h1.clone(), my_shard.clone()).await,
        401,
        "bad signature"
    );
    let unassigned = sender
        .sign(
            "PUT",
            &other.assignment.shard_hash,
            &other.entry_hash.to_string(),
            &node_1,
        )
        .await
        .unwrap();
    assert_eq!(
        put(
            unassigned,
            other.assignment.shard_hash.clone(),
            shard.clone()
        )
        .await,
        403,
        "not assigned to node 1"
    );
    // An assignment this node has never seen may still be on its way: the
    // sender is asked to try again (503), not refused.
    let mut unseen = mine.assignment.clone();
    unseen.assignment_id.push_str("-never-written");
    let unseen_hash = elohim_sidecar::custody::assignment_entry_hash(&unseen)
        .unwrap()
        .to_string();
    let early = sender
        .sign("PUT", &h1, &unseen_hash, &node_1)
        .await
        .unwrap();
    assert_eq!(
        put(early, h1.clone(), my_shard.clone()).await,
        503,
        "an assignment not seen yet"
    );
    let wrong = sender.sign("PUT", &h1, &a1, &node_1).await.unwrap();
    let mut tampered = my_shard.clone();
    tampered[1000] ^= 1;
    assert_eq!(
        put(wrong, h1.clone(), tampered).await,
        422,
        "bytes do not match the hash"
    );
    assert!(
        !net.node(1).custody.store.has(&h1),
        "nothing refused was kept"
    );
    let node_1_shards = net.dirs[1].path().join("shards");
    let files_in = |dir: &str| {
        std::fs::read_dir(node_1_shards.join(dir))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(
        (files_in("tmp"), files_in("partial")),
        (0, 0),
        "bytes that hash wrong are not kept to resume from"
    );

    // Shards sent ahead of their assignments (issue 24): anyone can sign
    // an assignment nobody will see. A registered node (mallory's, node 3)
    // gets one such 3 MB shard held for now, not a second (4 MB each); a
    // second sender (node 2) one more, and then nobody (7 MB in all), and
    // both go once their assignments fail to arrive within 20 s.
    let put_early = |auth: TransferAuth, a: &CustodianAssignment, body: Vec<u8>| {
        let url = url(&a.shard_hash);
        let entry = elohim_sidecar::transfer::encode_assignment_entry(a).unwrap();
        async move {
            let mut req = reqwest::Client::new()
                .put(url)
                .header(elohim_sidecar::transfer::H_ASSIGNMENT_ENTRY, entry)
                .body(body);
            for (k, v) in auth.headers() {
                req = req.header(k, v);
            }
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let invented = |by: usize, seed: u8| {
        let body = content(3_000_000, seed);
        let mut a = mine.assignment.clone();
        a.assignment_id = format!("invented-{seed}");
        a.content_id = format!("invented-content-{seed}");
        a.shard_hash = blake3::hash(&body).to_hex().to_string();
        a.shard_size_bytes = body.len() as u64;
        a.owner_agent = net.node(by).agent.agent().clone();
        let hash = elohim_sidecar::custody::assignment_entry_hash(&a)
            .unwrap()
            .to_string();
        (a, hash, body)
    };
    let signed_by = |by: usize, a: &CustodianAssignment, hash: &str| {
        let custody = net.node(by).custody.clone();
        let (shard, hash, to) = (a.shard_hash.clone(), hash.to_string(), node_1.clone());
        async move { custody.sign("PUT", &shard, &hash, &to).await.unwrap() }
    };
    let (m1, m1_hash, m1_body) = invented(3, 31);
    let (m2, m2_hash, m2_body) = invented(3, 32);
    let (e2, e2_hash, e2_body) = invented(2, 33);
    let (e0, e0_hash, e0_body) = invented(0, 34);
    // The assignment sent must be the one the signed request names, and
    // its owner's.
    let (status, why) = put_early(signed_by(3, &m1, &m2_hash).await, &m1, m1_body.clone()).await;
    assert_eq!(
        status, 400,
        "an assignment that is not the one named: {why}"
    );
    let (status, why) = put_early(signed_by(0, &m1, &m1_hash).await, &m1, m1_body.clone()).await;
    assert_eq!(status, 403, "someone else's assignment: {why}");
    let (status, why) = put_early(signed_by(3, &m1, &m1_hash).await, &m1, m1_body.clone()).await;
    assert_eq!(status, 202, "held for now: {why}");
    let (status, why) = put_early(signed_by(3, &m2, &m2_hash).await, &m2, m2_body).await;
    assert_eq!(status, 503, "past the sender's allowance: {why}");
    assert!(why.contains("this sender has 3000000 bytes"), "{why}");
    let (status, why) = put_early(signed_by(2, &e2, &e2_hash).await, &e2, e2_body.clone()).await;
    assert_eq!(status, 202, "another sender's own allowance: {why}");
    let (status, why) = put_early(signed_by(0, &e0, &e0_hash).await, &e0, e0_body.clone()).await;
    assert_eq!(status, 503, "past the allowance of all senders: {why}");
    let store_1 = net.node(1).custody.store.clone();
    assert!(store_1.has(&m1.shard_hash) && store_1.has(&e2.shard_hash));
    assert!(!store_1.has(&m2.shard_hash) && !store_1.has(&e0.shard_hash));
    let mut senders: Vec<String> = store_1
        .provisional()
        .unwrap()
        .into_iter()
        .map(|p| p.provisional.sender)
        .collect();
    senders.sort();
    let mut expected = vec![
        net.node(3).agent.agent().to_string(),
        net.node(2).agent.agent().to_string(),
    ];
    expected.sort();
    assert_eq!(senders, expected, "what is held for now, and for whom");
    net.until(
        90,
        "node 1 lets go of shards whose assignments never came",
        || async { (!store_1.has(&m1.shard_hash) && !store_1.has(&e2.shard_hash)).then_some(()) },
    )
    .await;
    assert!(store_1.provisional().unwrap().is_empty());
    // With the allowance free again, an invented assignment is taken early
    // once more (and would go the same way).
    let (status, why) = put_early(signed_by(0, &e0, &e0_hash).await, &e0, e0_body).await;
    assert_eq!(status, 202, "the allowance is given back: {why}");
    store_1.remove(&e0.shard_hash).unwrap();
    // Node 1's sidecar restarts below: its store must be free to reopen.
    drop(store_1);

    // A body larger than the assignment's shard (issue 21, item 7) is
    // refused before a byte is written when its length is declared, and
    // cut off as soon as it passes the shard's size when it is not (the
    // sender's stream still open); nothing of it is kept.
    let tmp = net.dirs[1].path().join("shards/partial");
    let mut oversized = my_shard.clone();
    oversized.extend(std::iter::repeat_n(7u8, 1 << 20));
    let declared = sender.sign("PUT", &h1, &a1, &node_1).await.unwrap();
    assert_eq!(
        put(declared, h1.clone(), oversized.clone()).await,
        413,
        "a declared body larger than the shard"
    );
    let streamed = sender.sign("PUT", &h1, &a1, &node_1).await.unwrap();
    let (more, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    more.send(Ok(oversized.clone())).await.unwrap();
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }));
    let mut req = reqwest::Client::new().put(url(&h1)).body(body);
    for (k, v) in streamed.headers() {
        req = req.header(k, v);
    }
    let upload = tokio::spawn(req.send());
    let kept = net
        .until(60, "the undeclared oversized upload answered", || async {
            let biggest = std::fs::read_dir(&tmp)
                .ok()?
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0);
            if biggest > my_shard.len() as u64 {
                return Some(Err(biggest));
            }
            upload.is_finished().then_some(Ok(()))
        })
        .await;
    assert_eq!(
        kept,
        Ok(()),
        "a part file outgrew the {}-byte shard",
        my_shard.len()
    );
    let status = upload.await.unwrap().map(|r| r.status().as_u16());
    assert_eq!(status.as_ref().ok(), Some(&413), "{status:?}");
    drop(more);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "nothing of an oversized body is kept"
    );
    assert!(!net.node(1).custody.store.has(&h1));

    // One signed GET replayed 1,000 times (issue 21, item 8): served once,
    // every replay refused, the served bytes counted once in the
    // custodian's rewards ledger, and no record written per request.
    let x = (2..4)
        .find(|i| net.node_id(*i) == other.assignment.custodian_node_id)
        .unwrap();
    let rewards_records = |i: usize| {
        let agent = net.node(i).agent.clone();
        async move {
            let r = agent.chain_records().await.unwrap();
            r.by_kind.get("rewards").copied().unwrap_or(0)
        }
    };
    let served_before = net.node(x).custody.rewards.unsummarised_bytes();
    let records_before = rewards_records(x).await;
    let once = net
        .node(0)
        .custody
        .sign(
            "GET",
            &other.assignment.shard_hash,
            &other.entry_hash.to_string(),
            &other.assignment.custodian_node_id,
        )
        .await
        .unwrap();
    let shard_url = format!(
        "http://{}/shards/{}",
        net.node(x).http_addr,
        other.assignment.shard_hash
    );
    let client = reqwest::Client::new();
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..1000 {
        let mut req = client.get(&shard_url);
        for (k, v) in once.headers() {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        if i == 0 {
            assert_eq!(status, 200, "the request itself is served");
            assert!(
                resp.bytes().await.unwrap().as_ref() == shard.as_slice(),
                "the whole shard"
            );
        }
        *answers.entry(status).or_default() += 1;
    }
    assert_eq!(
        answers,
        std::collections::BTreeMap::from([(200, 1), (409, 999)]),
        "served once, every replay refused"
    );
    assert_eq!(
        net.node(x).custody.rewards.unsummarised_bytes() - served_before,
        shard.len() as u64,
        "the served bytes are counted once"
    );
    assert_eq!(
        rewards_records(x).await,
        records_before,
        "no record per request"
    );

    // Forged signals (issue 21, item 4): an armed node tells node 2 to
    // obtain a shard it was never assigned (an assignment the DHT never
    // saw, and node 1's real one), from "holders" at a URL the attacker
    // owns, and reports a repair failure it never had. Node 2 acts only on
    // what its view of the DHT says: it asks the attacker's URL nothing,
    // stores nothing, and never hears the forged failure.
    let victim = 2;
    let victim_id = net.node_id(victim);
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}", trap.local_addr().unwrap());
    let (asked_tx, mut asked) = tokio::sync::mpsc::unbounded_channel::<String>();
    // What the trap answers is a real shard of the content: enough to
    // rebuild node 1's shard from, if node 2 asked.
    let bait = shard.clone();
    let trap_task = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = trap.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = asked_tx.send(String::from_utf8_lossy(&head).into_owned());
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                bait.len()
            );
            let _ = sock.write_all(answer.as_bytes()).await;
            let _ = sock.write_all(&bait).await;
        }
    });
    let mut planted = mine.assignment.clone();
    planted.assignment_id.push_str("-planted");
    planted.custodian_node_id = victim_id.clone();
    let planted = AssignmentRecord {
        entry_hash: elohim_sidecar::custody::assignment_entry_hash(&planted).unwrap(),
        assignment: planted,
        assigned_at: None,
    };
    let trap_holder = ShardHolder {
        node_id: "trap-0303030303030303".into(),
        agent: net.node(3).agent.agent().clone(),
        endpoint: Some(trap_url),
        shard_index: other.assignment.shard_index,
        shard_hash: other.assignment.shard_hash.clone(),
        assignment: other.entry_hash.clone(),
    };
    let to_victim = vec![net.node(victim).agent.agent().clone()];
    let refused_before = net.node(victim).agent.metrics.signals_refused.get();
    let forged_failure = RegistrySignal::DisasterRecoveryFailed {
        content_id: r.content_id.clone(),
        shard_index: 0,
        failed_node_id: "forged-0303030303030303".into(),
        reason: "forged".into(),
    };
    let _: () = net
        .mallory(3, "send_signal", (forged_failure, to_victim.clone()))
        .await
        .unwrap();
    for assignment in [planted, mine.clone()] {
        let hint = RegistrySignal::ReplicateContent {
            content_id: r.content_id.clone(),
            assignment,
            from_shard_holders: vec![trap_holder.clone()],
            to_custodian: victim_id.clone(),
            strategy: "full_replica".into(),
        };
        let _: () = net
            .mallory(3, "send_signal", (hint, to_victim.clone()))
            .await
            .unwrap();
    }
    tokio::select! {
        head = asked.recv() => panic!(
            "a forged signal made node {victim} send a request to the attacker's URL:\n{}",
            head.unwrap_or_default()
        ),
        _ = net.until(120, "both forged hints refused", || async {
            let refused = net.node(victim).agent.metrics.signals_refused.get();
            (refused >= refused_before + 2).then_some(())
        }) => {}
    }
    trap_task.abort();
    assert!(
        !net.node(victim).custody.store.has(&h1),
        "node {victim} stored a shard it was never assigned"
    );
    assert!(
        !net.node(victim)
            .custody
            .repair_failures
            .lock()
            .unwrap()
            .iter()
            .any(|s| matches!(s, RegistrySignal::DisasterRecoveryFailed { reason, .. } if reason == "forged")),
        "another node's forged repair failure reached node {victim}"
    );

    // An upload that stalls halfway, then the receiving sidecar stops: the
    // half that arrived is kept, and the shard's next upload to node 1 goes
    // on from there, once both agree those are the shard's first bytes.
    let auth = sender.sign("PUT", &h1, &a1, &node_1).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let half = my_shard[..my_shard.len() / 2].to_vec();
    tx.send(Ok(half.clone())).await.unwrap();
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }));
    let mut req = reqwest::Client::new().put(url(&h1)).body(body);
    for (k, v) in auth.headers() {
        req = req.header(k, v);
    }
    let upload = tokio::spawn(req.send());
    let partial = net.dirs[1].path().join("shards/partial").join(&h1);
    net.until(60, "the half upload reached node 1's disk", || async {
        let len = std::fs::metadata(&partial).ok()?.len();
        (len == half.len() as u64).then_some(())
    })
    .await;
    net.stop_sidecar(1).await;
    drop(tx);
    let _ = upload.await;
    assert_eq!(
        std::fs::read(&partial).unwrap(),
        half,
        "the cut upload's bytes are kept to resume from"
    );
    // And what a hard crash would leave besides: stray work files.
    std::fs::write(tmp.join("stray.part"), b"half a shard").unwrap();
    let scratch = net.dirs[1].path().join("shards/tmp");
    std::fs::write(scratch.join("stray.part"), b"half a shard").unwrap();

    net.join(1).await;
    assert_eq!(
        (files_in("tmp"), files_in("partial")),
        (0, 1),
        "restart clears stray files and keeps the resumable half"
    );
    // A resumption that does not match what node 1 has (a wrong hash of
    // the skipped bytes, or a skip past them) is refused before a byte is
    // written: 416, ask again.
    let node_1 = net.node_id(1);
    for (offset, prefix) in [
        (half.len(), "00".repeat(32)),
        (half.len() + 1, blake3::hash(&half).to_hex().to_string()),
    ] {
        let auth = net
            .node(0)
            .custody
            .sign("PUT", &h1, &a1, &node_1)
            .await
            .unwrap();
        let mut req = reqwest::Client::new()
            .put(format!("http://{}/shards/{h1}", net.node(1).http_addr))
            .header(elohim_sidecar::transfer::H_OFFSET, offset)
            .header(elohim_sidecar::transfer::H_HAVE_BLAKE3, prefix)
            .body(my_shard[offset..].to_vec());
        for (k, v) in auth.headers() {
            req = req.header(k, v);
        }
        assert_eq!(req.send().await.unwrap().status().as_u16(), 416);
        assert_eq!(std::fs::read(&partial).unwrap(), half, "left as it was");
    }

    // The publisher delivers the shard again: node 1 says what it has, and
    // only the rest is sent.
    let scratch_copy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(scratch_copy.path(), &my_shard).unwrap();
    let endpoint = format!("http://{}", net.node(1).http_addr);
    net.node(0)
        .custody
        .deliver(&node_1, &endpoint, &h1, &a1, scratch_copy.path())
        .await
        .expect("the shard is delivered again");
    assert_eq!(
        net.node(1).custody.store.read_verified(&h1).unwrap(),
        my_shard,
        "node 1 holds its shard again"
    );
    let metrics = &net.node(1).agent.metrics;
    assert_eq!(
        (
            metrics.transfer_resumed_bytes.get(),
            metrics
                .transfer_bytes
                .get_or_create(&vec![("direction".into(), "in".into())])
                .get()
        ),
        (half.len() as u64, (my_shard.len() - half.len()) as u64),
        "the second delivery sent only what the cut upload had not brought"
    );
    assert_eq!(files_in("partial"), 0, "nothing is left once it is whole");
    assert_eq!(retrieve(&net, 0, &r.content_id).await, bytes);

    // A repair of a custodian that is alive (issue 21, item 2). Anyone may
    // write one (silence cannot be proven to validation), naming itself
    // the new custodian; it still gets no data: a holder serves a
    // rebuilding custodian only when the one it replaces is judged failed.
    let small = publish(
        &net,
        0,
        "small.bin",
        &content(60_000, 6),
        "full_replica",
        1,
        2,
    )
    .await;
    let recs = net
        .until(60, "both assignments of small.bin visible", || async {
            let recs = live(&net, 0, &small.content_id).await;
            (recs.len() == 2).then_some(recs)
        })
        .await;
    let spare = (1..4)
        .find(|i| !small.custodians.contains(&net.node_id(*i)))
        .unwrap();
    let (alive_rec, holder_rec) = (&recs[0], &recs[1]);
    let holder = (1..4)
        .find(|i| net.node_id(*i) == holder_rec.assignment.custodian_node_id)
        .unwrap();
    let spare_reg: Option<RegisteredNode> = net
        .node(spare)
        .agent
        .call_fn::<GetMyNode>(())
        .await
        .unwrap();
    let old = &alive_rec.assignment;
    let mut round = old.round_custodians.clone();
    round[old.shard_index as usize] = net.node_id(spare);
    let takeover = CustodianAssignment {
        assignment_id: registry_core::assignment::assignment_id(
            &old.content_id,
            old.shard_index,
            1,
        ),
        custodian_node_id: net.node_id(spare),
        custodian_registration: spare_reg.expect("the spare is registered").action_hash,
        round_custodians: round,
        decided_by: "disaster_recovery".into(),
        decision_round: 1,
        replaces: Some(alive_rec.entry_hash.clone()),
        relationship: None,
        quorum_proposal: None,
        quorum_votes: vec![],
        ..old.clone()
    };
    let _: ActionHash = net
        .node(spare)
        .agent
        .write_fn::<AssignCustodian>(takeover.clone())
        .await
        .expect("validation cannot tell a live custodian from a dead one");
    let takeover_hash = elohim_sidecar::custody::assignment_entry_hash(&takeover).unwrap();
    net.until(120, "the holder sees the takeover live", || async {
        let found: Option<(CustodianAssignment, AssignmentStanding)> = net
            .node(holder)
            .agent
            .call_fn::<GetAssignment>(takeover_hash.clone())
            .await
            .ok()?;
        matches!(found, Some((_, AssignmentStanding::Live))).then_some(())
    })
    .await;
    let auth = net
        .node(spare)
        .custody
        .sign(
            "GET",
            &holder_rec.assignment.shard_hash,
            &takeover_hash.to_string(),
            &holder_rec.assignment.custodian_node_id,
        )
        .await
        .unwrap();
    let mut req = reqwest::Client::new().get(format!(
        "http://{}/shards/{}",
        net.node(holder).http_addr,
        holder_rec.assignment.shard_hash
    ));
    for (k, v) in auth.headers() {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(
        status,
        403,
        "a holder served the repairer of a live custodian: {}",
        text.chars().take(200).collect::<String>()
    );
    assert!(text.contains("does not judge failed"), "{text}");
}
