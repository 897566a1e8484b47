//! The registry stage: nodes register and beat wave by wave, in worker
//! processes, while the observer samples selection at each size; then what a
//! heartbeat costs a node's chain.

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{GetAvailableCustodians, Heartbeat, Ping};
use node_registry_integrity::*;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::measure::{
    await_integrated, background_cores, chain_records, placing_in_region, register_and_beat,
    rss_mib, sample_calls, sample_selection,
};
use crate::report::{latency, write_report, GrowthPoint, HeartbeatCost, Report};
use crate::stages::custody_load::bench_custody_load;
use crate::worker::{reachable_in, Worker, BOOTSTRAP_POLL_MS};

/// Waits (at most 15 minutes) until the observer sees `n` nodes present,
/// returning how many it sees.
async fn await_present(net: &Network, n: usize) -> usize {
    // A worker is let go only after this: give its records time to arrive
    // on a loaded machine, and do not crowd the observer with full listings
    // (one costs about 0.5 s at 300 nodes).
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let found: Vec<RankedCustodian> = net
            .call_fn::<GetAvailableCustodians>(0, CustodianFilters::default())
            .await;
        if found.len() >= n || Instant::now() > deadline {
            if found.len() < n {
                eprintln!(
                    "  only {} of {n} nodes present after 15 minutes",
                    found.len()
                );
            }
            return found.len();
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

pub async fn bench_registry(a: &Args, report: &mut Report) {
    report.agents = a.agents;
    report.holder_gossip_ms = a.gossip_ms;
    report.conductors = a.conductors;
    eprintln!(
        "registry: {} nodes: {} conductors hold the DHT, the nodes come {} at a time in worker \
         processes that exit once their nodes are registered, beating and seen (failure window \
         of this network: {} s; the holders gossip every {} ms)",
        a.agents, a.conductors, a.wave, a.window_secs, a.gossip_ms
    );
    // A long failure window: a node that beat once stays present while the
    // registry grows, so the registry can hold more nodes than this machine
    // can keep running at once.
    let net = Network::start_with_config(
        a.conductors,
        RegistryProperties {
            presence_lease_secs: a.window_secs,
            ..Default::default()
        },
        // Sweettest's conductors start a gossip round every second, the
        // shipped one every two minutes and with the same peer at most every
        // five: on a large store each round costs the holders CPU that
        // competes with the selections sampled here.
        polling_bootstrap(BOOTSTRAP_POLL_MS).tune_network_config(|n| {
            *n = std::mem::take(n)
                .with_gossip_initiate_interval_ms(a.gossip_ms)
                .with_gossip_min_initiate_interval_ms(a.gossip_ms);
        }),
    )
    .await;
    let steps: Vec<usize> = [5, 10, 20, 40, 80, 160, 320, 640, 1000, 2000]
        .into_iter()
        .filter(|s| *s < a.agents)
        .chain([a.agents])
        .collect();
    let mut reg = Vec::new();
    let mut beats = Vec::new();
    let mut registered = 0;
    // Peer 0, on conductor 0, is the observer: registered first, never
    // retired. Every later wave runs in a worker process that exits once the
    // observer sees its nodes.
    let (bootstrap, relay) = net.rendezvous_addrs();
    let observer = net.peers[0].agent();
    let dna_hash = net.peers[0].cell.cell_id().dna_hash().clone();
    let started = Instant::now();
    let mut visible = 0;
    for step in steps {
        if registered == 0 {
            let (dr, db) = register_and_beat(&net.conductors[0], &net.peers[0], "n0").await;
            reg.push(dr);
            beats.push(db);
            registered = 1;
        }
        while registered < step {
            let count = a.wave.min(step - registered);
            let mut worker = Worker::start(
                &net,
                &bootstrap,
                &relay,
                &observer,
                registered,
                count,
                a.window_secs,
            )
            .await
            .unwrap_or_else(|e| panic!("worker for nodes from n{registered}: {e}"));
            for (dr, db) in std::mem::take(&mut worker.timings) {
                reg.push(dr);
                beats.push(db);
            }
            registered += count;
            // Let the worker go only once the observer sees its nodes: a
            // stopped conductor publishes nothing more.
            let t = Instant::now();
            visible = await_present(&net, registered).await;
            eprintln!(
                "    registered and beating; present for the observer after {:.1} s",
                t.elapsed().as_secs_f64()
            );
            worker.stop().await;
            eprintln!(
                "    worker gone; the observer's peer store still reaches {} agents",
                reachable_in(&net.conductors[0], &dna_hash).await.len()
            );
        }
        let (pending, waited) =
            await_integrated(&net, a.conductors, Duration::from_secs(300)).await;
        let background_cores = background_cores().await;
        let call_floor = sample_calls::<Ping>(&net, a.samples, |_| ()).await;
        // What publishing asks (one region, six custodians, placement by
        // content), the same across every region, and the full listing.
        let publish = sample_selection(&net, a.samples, placing_in_region).await;
        let any_region = sample_selection(&net, a.samples, |i| CustodianFilters {
            limit: Some(6),
            content_id: Some(format!("bench-content-{i}")),
            ..Default::default()
        })
        .await;
        let listing =
            sample_selection(&net, a.samples.div_ceil(4), |_| CustodianFilters::default()).await;
        let point = GrowthPoint {
            registered,
            visible,
            get_available_custodians: listing,
            get_available_custodians_region_limit6: publish,
            get_available_custodians_any_region_limit6: any_region,
            call_floor,
            rss_mib: rss_mib(),
            elapsed_secs: started.elapsed().as_secs_f64().round(),
            pending_ops: pending,
            integrate_wait_secs: waited.as_secs_f64().round(),
            background_cores,
        };
        eprintln!(
            "  {registered:>5} registered, {visible:>5} visible ({} MiB, {} s): \
             one region limit 6 p50 {} ms p99 {} ms; any region limit 6 p50 {} ms p99 {} ms; \
             full listing p50 {} ms p99 {} ms; empty call p50 {} ms p99 {} ms; \
             {} cores busy before sampling",
            point.rss_mib,
            point.elapsed_secs,
            point.get_available_custodians_region_limit6.p50_ms,
            point.get_available_custodians_region_limit6.p99_ms,
            point.get_available_custodians_any_region_limit6.p50_ms,
            point.get_available_custodians_any_region_limit6.p99_ms,
            point.get_available_custodians.p50_ms,
            point.get_available_custodians.p99_ms,
            point.call_floor.p50_ms,
            point.call_floor.p99_ms,
            point.background_cores,
        );
        report.registry_growth.push(point);
        // Each size is written as soon as it is measured: a long run that
        // is stopped keeps what it found.
        write_report(report, &a.out);
    }
    report.registration = Some(latency(reg));

    // Heartbeat cost: the calls above, and the observer's chain growth over
    // three more beats (in one lease bucket: a beat writes nothing), plus
    // the size of the lease links it wrote (one per lease period). One beat
    // first: the observer's lease may have expired while the registry grew.
    let id0 = net.peers[0].node_id("n0");
    let _: ActionHash = net.call_fn::<Heartbeat>(0, heartbeat(&id0, "online")).await;
    let before = chain_records(&net, 0).await;
    let extra_beats = 3;
    for _ in 0..extra_beats {
        let _: ActionHash = net.call_fn::<Heartbeat>(0, heartbeat(&id0, "online")).await;
    }
    let after = chain_records(&net, 0).await;
    let added: Vec<&(bool, usize, usize)> = after[before.len()..].iter().filter(|r| !r.0).collect();
    let per = |f: &dyn Fn(&(bool, usize, usize)) -> usize| {
        added.iter().map(|r| f(r)).sum::<usize>() as f64 / extra_beats as f64
    };
    let presence: Vec<&(bool, usize, usize)> = after.iter().filter(|r| r.0).collect();
    let presence_bytes =
        presence.iter().map(|r| r.1).sum::<usize>() as f64 / presence.len().max(1) as f64;
    let day = 86_400 / 30;
    // One lease link per default lease period.
    let presence_per_day = 86_400.0 / registry_core::presence::DEFAULT_PRESENCE_LEASE_SECS as f64;
    let records = per(&|_| 1);
    let bytes = per(&|r| r.1);
    let ops = per(&|r| r.2);
    report.heartbeat = Some(HeartbeatCost {
        call: latency(beats),
        records_per_beat: records,
        bytes_per_beat: bytes,
        ops_per_beat: ops,
        presence_link_bytes: presence_bytes,
        beats_per_day_at_30s: day,
        records_per_node_per_day: records * day as f64 + presence_per_day,
        bytes_per_node_per_day: bytes * day as f64 + presence_bytes * presence_per_day,
        ops_per_node_per_day: ops * day as f64 + 3.0 * presence_per_day,
    });
    write_report(report, &a.out);

    if !a.custody_load.is_empty() {
        bench_custody_load(a, &net, report).await;
    }
}
