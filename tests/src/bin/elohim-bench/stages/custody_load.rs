//! `--custody-load`: after the registry stage, on its network, publishing's
//! selection again while every node holds more and more content.

use elohim_tests::*;
use node_registry_integrity::zome_fns::GetAvailableCustodians;
use node_registry_integrity::*;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::measure::{
    await_integrated, await_settled, background_cores, sample_placing_and_floor, SETTLED_MARGIN,
};
use crate::report::{write_report, CustodyLoadPoint, Report, SettledSample};
use crate::stages::place_mib;

/// Samples publishing's selection again while every node holds more and
/// more content: the observer, as owner, assigns each present node one-shard
/// contents up to each level of `--custody-load`.
pub async fn bench_custody_load(a: &Args, net: &Network, report: &mut Report) {
    let nodes: Vec<RankedCustodian> = net
        .call_fn::<GetAvailableCustodians>(0, CustodianFilters::default())
        .await;
    // The contents are published by an agent of another conductor, as they
    // are by their owners in a real network: written by the observer, they
    // would lengthen its own source chain, and every call of a node costs
    // more as its chain grows (see `bench_chain_age`), which would be
    // measured here in place of the custodians' load.
    let publisher = if net.peers.len() > 1 { 1 } else { 0 };
    let owner = net.peers[publisher].agent();
    let nodes: Vec<RankedCustodian> = nodes
        .into_iter()
        .filter(|n| n.registration.agent_pub_key != owner)
        .collect();
    eprintln!(
        "custody load: {} nodes take contents up to {:?} each, published by peer {publisher}{}",
        nodes.len(),
        a.custody_load,
        if publisher == 0 {
            " (the observer: one conductor only, so its own chain grows too)"
        } else {
            ""
        }
    );
    let baseline = background_cores().await;
    eprintln!("    {baseline} cores busy before any load is written");
    let mut held = 0;
    let mut assignments = 0;
    for &level in &a.custody_load {
        let started = Instant::now();
        let mut written = 0usize;
        for c in held..level {
            for (i, node) in nodes.iter().enumerate() {
                place_mib(
                    net,
                    publisher,
                    &format!("load-{c}-{i}"),
                    &node.registration,
                    &node.registration_hash,
                )
                .await;
                written += 1;
            }
            eprintln!(
                "    {} of {} contents a node ({} s)",
                c + 1,
                level,
                started.elapsed().as_secs()
            );
        }
        let assign_ms = started.elapsed().as_secs_f64() * 1e3 / written.max(1) as f64;
        assignments += written;
        held = level;
        let (pending, _) = await_integrated(net, a.conductors, Duration::from_secs(300)).await;
        let background_cores = background_cores().await;
        let (publish, ping) = sample_placing_and_floor(net, a.samples).await;
        eprintln!(
            "  {level:>5} contents a node ({assignments} assignments, {pending} ops pending): \
             one region limit 6 p50 {} ms p99 {} ms; empty call p50 {} ms p99 {} ms; \
             {background_cores} cores busy before sampling",
            publish.p50_ms, publish.p99_ms, ping.p50_ms, ping.p99_ms
        );
        let settled = if background_cores >= baseline + SETTLED_MARGIN {
            let (cores, waited) = await_settled(baseline).await;
            let (again, ping) = sample_placing_and_floor(net, a.samples).await;
            eprintln!(
                "        settled after {:.0} s ({cores} cores busy): one region limit 6 p50 {} ms \
                 p99 {} ms; empty call p50 {} ms p99 {} ms",
                waited.as_secs_f64(),
                again.p50_ms,
                again.p99_ms,
                ping.p50_ms,
                ping.p99_ms
            );
            Some(SettledSample {
                waited_secs: waited.as_secs_f64().round(),
                background_cores: cores,
                get_available_custodians_region_limit6: again,
                ping,
            })
        } else {
            None
        };
        report.custody_load.push(CustodyLoadPoint {
            contents_per_node: level,
            assignments,
            get_available_custodians_region_limit6: publish,
            ping,
            assign_ms: (assign_ms * 10.0).round() / 10.0,
            background_cores,
            background_cores_before_load: baseline,
            settled,
        });
        write_report(report, &a.out);
    }
}
