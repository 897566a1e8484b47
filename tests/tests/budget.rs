//! The write budget: at the shipped defaults a node writes at most 200
//! records a day in steady state, whatever the network's size
//! (`registry_core::budget`).
//!
//! Four sidecars run with every period of the record model scaled down
//! 360-fold (a lease every 10 s instead of every hour, a verdict period of
//! 240 s instead of a day, an epoch of 28 minutes instead of a week), so
//! three minutes here stand for eighteen hours there. Every record on every
//! chain of each node's conductor (identity, working and reader agents) is
//! counted by kind. Each node must stay within the 200-a-day budget scaled
//! to its run, and each kind within what the model allows for that run.
//! Counting is exact; the only clock is the run's length.

use elohim_tests::sidecars::SidecarNet;
use elohim_tests::*;
use node_registry_integrity::*;
use registry_core::budget::{run_allowance, scaled_budget, RecordKind, Timings};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How much faster than the defaults the test network's periods run.
const SPEEDUP: f64 = 360.0;
/// How long the network runs after every node has started.
const RUN: Duration = Duration::from_secs(150);

#[tokio::test(flavor = "multi_thread")]
async fn every_node_writes_within_its_budget() {
    let defaults = Timings::default();
    let lease = (defaults.presence_lease_secs / SPEEDUP) as u32;
    let period = (defaults.verdict_period_secs / SPEEDUP) as u32;
    let epoch = (defaults.epoch_secs / SPEEDUP) as u64;
    let properties = RegistryProperties {
        presence_lease_secs: lease,
        verdict_period_secs: period,
        max_delegation_secs: (registry_core::delegation::DEFAULT_MAX_DELEGATION_SECS as f64
            / SPEEDUP) as u32,
        ..test_properties()
    };
    let nodes = 4;
    let started = Instant::now();
    let net = SidecarNet::start_with(nodes, &[0, 1, 2, 3], properties, |_, c| {
        c.heartbeat.interval_secs = 1;
        c.keys.epoch_secs = epoch;
        // A status change is one record, bounded by the dwell (see the
        // debouncer's tests); this run counts the rest, so the machine's
        // load (four conductors on two cores) must not flip it.
        c.heartbeat.status_dwell_secs = 3600;
    })
    .await;
    for i in 0..nodes {
        net.await_custodians(i, nodes).await;
    }
    // Each node watches the other three.
    net.until(60, "every node watches the other three", || async {
        (0..nodes)
            .all(|i| net.node(i).liveness.watched().len() == nodes - 1)
            .then_some(())
    })
    .await;
    tokio::time::sleep(RUN).await;
    let run_secs = started.elapsed().as_secs_f64();

    let t = Timings {
        presence_lease_secs: lease as f64,
        verdict_period_secs: period as f64,
        epoch_secs: epoch as f64,
        monitors: (nodes - 1) as f64,
    };
    let allowed: BTreeMap<RecordKind, u64> = run_allowance(&t, run_secs).into_iter().collect();
    let budget = scaled_budget(&t, run_secs, SPEEDUP);
    println!(
        "budget: {run_secs:.0} s here are {:.1} h at the defaults; each node may write \
         {budget:.0} records (200 a day scaled, plus its start); the model allows {allowed:?}",
        run_secs * SPEEDUP / 3600.0
    );
    let mut sizes: BTreeMap<RecordKind, (u64, usize)> = BTreeMap::new();
    for i in 0..nodes {
        let mut counted: BTreeMap<RecordKind, u64> = BTreeMap::new();
        for cell in net.all_cell_ids(i).await {
            for r in source_chain(&net.conductors[i], &cell).await {
                let kind = record_kind(&r.action);
                *counted.entry(kind).or_default() += 1;
                let bytes = holochain_serialized_bytes::encode(&r)
                    .map(|b| b.len())
                    .unwrap_or(0);
                let e = sizes.entry(kind).or_default();
                e.0 += 1;
                e.1 += bytes;
            }
        }
        let total: u64 = counted.values().sum();
        println!("node {i}: {total} records: {counted:?}");
        assert!(
            total as f64 <= budget,
            "node {i} wrote {total} records, over its budget of {budget:.0}: {counted:?}"
        );
        for (kind, n) in &counted {
            let most = allowed.get(kind).copied().unwrap_or(0);
            assert!(
                *n <= most,
                "node {i} wrote {n} {} records, the model allows {most}: {counted:?}",
                kind.as_str()
            );
        }
        assert!(
            counted
                .get(&RecordKind::PresenceLease)
                .copied()
                .unwrap_or(0)
                >= 2,
            "node {i} renewed its lease as buckets turned: {counted:?}"
        );
    }
    // What publishing costs, after the count: one content in three full
    // copies, on the owner's identity.
    let cell = net.cell_id(0).await;
    let before = source_chain(&net.conductors[0], &cell).await.len();
    let path = net.dirs[0].path().join("measure.bin");
    std::fs::write(&path, vec![7u8; 10_000]).unwrap();
    net.node(0)
        .custody
        .publish(
            elohim_sidecar::custody::PublishRequest {
                path,
                strategy: Some("full_replica".into()),
                n: Some(3),
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .expect("publishes");
    let written = source_chain(&net.conductors[0], &cell)
        .await
        .split_off(before);
    println!(
        "a publish of three copies wrote {} records on the owner's identity",
        written.len()
    );
    for r in written {
        let bytes = holochain_serialized_bytes::encode(&r)
            .map(|b| b.len())
            .unwrap_or(0);
        let e = sizes.entry(record_kind(&r.action)).or_default();
        e.0 += 1;
        e.1 += bytes;
    }
    for (kind, (n, bytes)) in &sizes {
        println!(
            "record size: {} {:.0} bytes on average ({n} records)",
            kind.as_str(),
            *bytes as f64 / *n as f64
        );
    }
}
