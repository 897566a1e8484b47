//! The custody stage: conductors with their sidecars publish content of each
//! strategy, a custodian is killed, and the time until the network declares
//! it failed and until each of its shards is rebuilt is measured.

use elohim_tests::sidecars::SidecarNet;
use node_registry_integrity::zome_fns::GetAssignmentRecordsForContent;
use node_registry_integrity::*;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::report::{RepairRow, Report};
use crate::stages::{content, publish_public};

pub async fn bench_custody(a: &Args, report: &mut Report) {
    let n = a.sidecars;
    eprintln!("custody: {n} conductors with sidecars");
    let mut net = SidecarNet::start(n, &(0..n).collect::<Vec<_>>(), |_, _| {}).await;
    let cfg = elohim_tests::sidecars::fast_config(
        std::path::Path::new("."),
        "x",
        ([127, 0, 0, 1], 1).into(),
    );
    report.nodes = n as u32;
    report.heartbeat_secs = cfg.heartbeat.interval_secs as f64;
    report.failure_window_secs = cfg.custody.failure_window_secs as f64;
    report.grace_secs = cfg.custody.grace_secs as f64;
    report.detect_interval_secs = cfg.custody.detect_interval_secs as f64;
    // Shards per content: the custody suites' parameters, narrowed to what
    // the network holds (the owner and a spare for the repair aside, and
    // one more node per round lost to the kill).
    let rounds = a.sizes_mib.len();
    let room = n.saturating_sub(2 + rounds.saturating_sub(1)).max(1) as u32;
    let strategies = [
        ("full_replica", 1u32, 3.min(room)),
        ("erasure_coded", 4.min(room * 2 / 3).max(1), 6.min(room)),
        ("threshold_split", 3.min(room * 3 / 5).max(1), 5.min(room)),
    ];
    report.strategy = "erasure_coded".into();
    report.k = strategies[1].1;
    report.n = strategies[1].2;
    net.await_custodians(0, n - 1).await;
    let owner = 0;
    let mut dead: Vec<String> = Vec::new();
    for (round, &mib) in a.sizes_mib.iter().enumerate() {
        let alive = (0..n).filter(|i| net.daemons[*i].is_some()).count();
        let need = strategies.iter().map(|s| s.2 as usize).max().unwrap_or(1) + 2;
        if alive < need {
            eprintln!("  {mib} MiB: skipped, only {alive} nodes left (need {need})");
            continue;
        }
        let mut items = Vec::new();
        for (s, (strategy, k, nn)) in strategies.iter().enumerate() {
            if !a.strategies.iter().any(|x| x == strategy) {
                continue;
            }
            let bytes = content((mib as usize) << 20, (round * 3 + s) as u64);
            let path = net.dirs[owner]
                .path()
                .join(format!("bench-{mib}-{strategy}"));
            std::fs::write(&path, &bytes).unwrap();
            drop(bytes);
            let t = Instant::now();
            let what = format!("{mib} MiB {strategy}");
            let r = publish_public(&net, owner, &path, (strategy, *k, *nn), &what, &|_| {}).await;
            std::fs::remove_file(&path).ok();
            eprintln!(
                "  published {mib} MiB {strategy} {k}-of-{nn} in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            items.push((strategy.to_string(), *k, *nn, r));
        }
        // Wait until every custodian holds its shard.
        for (strategy, _, _, r) in &items {
            net.until(600, &format!("{strategy} shards held"), || async {
                let recs: Vec<AssignmentRecord> = net
                    .node(owner)
                    .agent
                    .call_fn::<GetAssignmentRecordsForContent>(r.content_id.clone())
                    .await
                    .ok()?;
                recs.iter()
                    .all(|rec| {
                        net.daemons.iter().flatten().any(|d| {
                            d.agent.node_id == rec.assignment.custodian_node_id
                                && d.custody.store.has(&rec.assignment.shard_hash)
                        })
                    })
                    .then_some(())
            })
            .await;
        }
        // The victim: the custodian holding shards of the most items.
        let victim = (1..n)
            .filter(|i| net.daemons[*i].is_some())
            .max_by_key(|i| {
                let id = net.node_id(*i);
                items
                    .iter()
                    .filter(|(_, _, _, r)| r.custodians.contains(&id))
                    .count()
            })
            .unwrap();
        let victim_id = net.node_id(victim);
        let observer = (1..n)
            .find(|i| *i != victim && net.daemons[*i].is_some())
            .unwrap();
        let killed = Instant::now();
        net.kill(victim).await;
        dead.push(victim_id.clone());
        let policy = DetectionInput {
            failure_window_secs: Some(cfg.custody.failure_window_secs),
            grace_secs: Some(cfg.custody.grace_secs),
        };
        let detection = net
            .until(300, "failure detected", || async {
                net.finds_failed(observer, &victim_id, policy)
                    .await
                    .then(|| killed.elapsed().as_secs_f64())
            })
            .await;
        eprintln!("  {mib} MiB round: {victim_id} killed, declared failed after {detection:.1} s");
        report.detection_secs.push(detection);
        let mut pending: Vec<&(String, u32, u32, elohim_sidecar::custody::PublishReport)> = items
            .iter()
            .filter(|(_, _, _, r)| r.custodians.contains(&victim_id))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(900);
        while !pending.is_empty() && Instant::now() < deadline {
            let mut still = Vec::new();
            for item in pending {
                let (strategy, k, nn, r) = item;
                let recs: Vec<AssignmentRecord> = net
                    .node(observer)
                    .agent
                    .call_fn::<GetAssignmentRecordsForContent>(r.content_id.clone())
                    .await
                    .unwrap_or_default();
                let repaired = recs.len() == *nn as usize
                    && recs.iter().all(|rec| {
                        !dead.contains(&rec.assignment.custodian_node_id)
                            && net.daemons.iter().flatten().any(|d| {
                                d.agent.node_id == rec.assignment.custodian_node_id
                                    && d.custody.store.has(&rec.assignment.shard_hash)
                            })
                    });
                if repaired {
                    let secs = killed.elapsed().as_secs_f64();
                    eprintln!(
                        "  {mib} MiB {strategy} {k}-of-{nn}: repaired {secs:.1} s after the kill"
                    );
                    if strategy == "erasure_coded" {
                        report.repair_secs.push(secs);
                        report.content_bytes = mib << 20;
                    }
                    report.repairs.push(RepairRow {
                        content_mib: mib,
                        strategy: strategy.clone(),
                        k: *k,
                        n: *nn,
                        detection_secs: detection,
                        repair_secs: secs,
                    });
                } else {
                    still.push(item);
                }
            }
            pending = still;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for (strategy, _, _, _) in pending {
            eprintln!("  {mib} MiB {strategy}: NOT repaired within 900 s");
        }
    }
}
