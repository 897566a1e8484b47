//! The throughput stage (issue 24's figures): four sidecars; the owner
//! publishes content of each strategy and retrieves it again, timed, beside
//! the disk's own fsync'd write speed measured in the same run on the same
//! file system, once idle and once with every conductor kept busy with
//! selections. Ratios to the disk, not absolute speeds, are what compare
//! across machines.

use elohim_tests::sidecars::SidecarNet;
use node_registry_integrity::zome_fns::{GetAssignmentRecordsForContent, GetAvailableCustodians};
use node_registry_integrity::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::args::Args;
use crate::report::{Report, ThroughputRow};
use crate::stages::{content, publish_public};

const MB: f64 = 1_000_000.0;

/// Writes `len` bytes to a new file in `dir` in 1 MiB writes and fsyncs
/// it: the speed a custodian's disk gives a shard, MB/s.
fn disk_fsync_mb_s(dir: &std::path::Path, len: usize) -> f64 {
    let path = dir.join("disk-speed.bin");
    let chunk = content(1 << 20, 99);
    let t = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    f.sync_all().unwrap();
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).ok();
    len as f64 / MB / secs
}

/// Lets the disk write back what earlier steps left in the page cache:
/// here the four sidecars share one disk, so without it a step would pay
/// for the write-back of the one before (a retrieve for its publish's
/// shards), which separate machines would not.
fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// How long each phase lasted, from when each began (progress reports)
/// to the next phase or the end at `total` seconds.
fn breakdown(phases: &[(String, f64)], total: f64) -> String {
    phases
        .iter()
        .enumerate()
        .map(|(i, (name, at))| {
            let end = phases.get(i + 1).map(|x| x.1).unwrap_or(total);
            format!("{name} {:.2} s", end - at)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn bench_throughput(a: &Args, report: &mut Report) {
    eprintln!("throughput: 4 conductors with sidecars");
    // The data path, not the declared pace: by default every node offers
    // the most bandwidth a registration may declare, so serving is not
    // paced; `--throughput-mbps` paces it as a link between machines would.
    let mbps = a
        .throughput_mbps
        .unwrap_or(registry_core::capacity::MAX_BANDWIDTH_MBPS);
    if a.throughput_mbps.is_some() {
        eprintln!("  every node declares {mbps} Mbit/s: holders serve at that pace");
    }
    report.throughput_bandwidth_mbps = a.throughput_mbps;
    let net = SidecarNet::start(4, &[0, 1, 2, 3], |_, c| {
        c.capacity.bandwidth_mbps = Some(mbps);
    })
    .await;
    // All four, the owner included: a 2-of-3 placement needs the three
    // others (a young network has shown only some of them for a while).
    net.await_custodians(0, 4).await;
    report.build = if cfg!(debug_assertions) {
        "debug".into()
    } else {
        "release".into()
    };
    let owner = 0;
    let dir = net.dirs[owner].path().to_path_buf();
    let biggest = a.throughput_mib.iter().copied().max().unwrap_or(1) as usize;
    let disk = disk_fsync_mb_s(&dir, biggest << 20);
    eprintln!("  disk, fsync'd: {disk:.0} MB/s");
    report.disk_fsync_mb_s = Some(disk);
    let strategies = [
        ("full_replica", 1u32, 2u32),
        ("erasure_coded", 2, 3),
        ("threshold_split", 2, 3),
    ];
    let mut seed = 0u64;
    for busy in [false, true] {
        // Busy: every node's reader agent selects custodians back to back.
        let stop = Arc::new(AtomicBool::new(false));
        let load: Vec<_> = if busy {
            (0..4)
                .map(|i| {
                    let agent = net.node(i).agent.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            let _ = agent
                                .read_fn::<GetAvailableCustodians>(CustodianFilters::default())
                                .await;
                        }
                    })
                })
                .collect()
        } else {
            vec![]
        };
        for &mib in &a.throughput_mib {
            for (strategy, k, n) in strategies {
                if !a.strategies.iter().any(|x| x == strategy) {
                    continue;
                }
                seed += 1;
                let size = (mib as usize) << 20;
                let path = dir.join(format!("throughput-{seed}"));
                std::fs::write(&path, content(size, seed)).unwrap();
                let taken_early = || -> u64 {
                    (0..4)
                        .map(|i| net.node(i).custody.agent.metrics.shards_taken_early.get())
                        .sum()
                };
                let early_before = taken_early();
                // Busy nodes may drop out of view for a while (a late lease
                // under load); a row measures a publish, not that wait.
                net.await_custodians(owner, 4).await;
                settle_disk();
                let t = Instant::now();
                // When each phase of the publish began, for the breakdown.
                let phases = std::sync::Mutex::new(Vec::<(String, f64)>::new());
                let what = format!("{mib} MiB {strategy}");
                let record_phase = |p: elohim_sidecar::custody::Progress| {
                    let mut ph = phases.lock().unwrap();
                    if ph.last().map(|(name, _)| name != &p.phase).unwrap_or(true) {
                        ph.push((p.phase.clone(), t.elapsed().as_secs_f64()));
                    }
                };
                let r = publish_public(&net, owner, &path, (strategy, k, n), &what, &record_phase)
                    .await;
                let publish_secs = t.elapsed().as_secs_f64();
                eprintln!(
                    "  {mib} MiB {strategy} publish: {} ({}/{n} shards taken ahead of their assignments)",
                    breakdown(&phases.into_inner().unwrap(), publish_secs),
                    taken_early() - early_before
                );
                std::fs::remove_file(&path).ok();
                if r.pushed != n {
                    eprintln!(
                        "  {mib} MiB {strategy}: only {}/{n} shards delivered ({:?}); the row counts what was",
                        r.pushed, r.push_failures
                    );
                }
                let recs: Vec<AssignmentRecord> = net
                    .node(owner)
                    .agent
                    .call_fn::<GetAssignmentRecordsForContent>(r.content_id.clone())
                    .await
                    .unwrap_or_default();
                let shard_bytes: u64 = recs
                    .iter()
                    .map(|x| x.assignment.shard_size_bytes)
                    .take(r.pushed as usize)
                    .sum();
                let out = dir.join(format!("throughput-{seed}.out"));
                settle_disk();
                let t = Instant::now();
                let phases = std::sync::Mutex::new(Vec::<(String, f64)>::new());
                let record_phase = |p: elohim_sidecar::custody::Progress| {
                    let mut ph = phases.lock().unwrap();
                    if ph.last().map(|(name, _)| name != &p.phase).unwrap_or(true) {
                        ph.push((p.phase.clone(), t.elapsed().as_secs_f64()));
                    }
                };
                net.node(owner)
                    .custody
                    .retrieve(&r.content_id, &out, &record_phase)
                    .await
                    .unwrap_or_else(|e| panic!("retrieving {mib} MiB {strategy}: {e}"));
                let retrieve_secs = t.elapsed().as_secs_f64();
                eprintln!(
                    "  {mib} MiB {strategy} retrieve: {}",
                    breakdown(&phases.into_inner().unwrap(), retrieve_secs)
                );
                std::fs::remove_file(&out).ok();
                let row = ThroughputRow {
                    content_mib: mib,
                    strategy: strategy.into(),
                    k,
                    n,
                    busy,
                    publish_content_mb_s: size as f64 / MB / publish_secs,
                    publish_shard_mb_s: shard_bytes as f64 / MB / publish_secs,
                    publish_vs_disk: shard_bytes as f64 / MB / publish_secs / disk,
                    retrieve_content_mb_s: size as f64 / MB / retrieve_secs,
                    retrieve_vs_disk: size as f64 / MB / retrieve_secs / disk,
                };
                eprintln!(
                    "  {mib} MiB {strategy} {k}-of-{n}{}: publish {publish_secs:.1} s ({:.2} of the disk), retrieve {retrieve_secs:.1} s ({:.2} of the disk)",
                    if busy { ", busy" } else { "" },
                    row.publish_vs_disk,
                    row.retrieve_vs_disk
                );
                report.throughput.push(row);
            }
        }
        stop.store(true, Ordering::Relaxed);
        for l in load {
            let _ = l.await;
        }
    }
}
