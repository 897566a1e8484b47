//! `--custody-held`: selection over custodians that keep beating while they
//! hold more and more content, before and after their published totals of
//! custody take it in.

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{GetCommittedCustody, Heartbeat};
use node_registry_integrity::*;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::measure::{background_cores, retrying, sample_placing_and_floor};
use crate::report::{write_report, CustodyHeldPoint, Report, SettledSample};
use crate::stages::place_mib;
use crate::worker::BOOTSTRAP_POLL_MS;

/// Custodians of the custody-held stage: more than a selection confirms
/// (its limit of 6 and two more), all in one placement set.
pub const CUSTODY_HELD_NODES: usize = 10;

/// Longest the custody-held stage waits for the custodians' totals to take
/// in a level's load.
const TOTALLED_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Beats every custodian once (keeping them present at the default
/// window, and refreshing their presence, so their totals, as buckets turn).
async fn beat_all(net: &Network, custodians: &[(usize, NodeRegistration)]) {
    for (peer, r) in custodians {
        retrying("beating", || {
            net.try_call_fn::<Heartbeat>(*peer, heartbeat(&r.node_id, "online"))
        })
        .await
        .unwrap_or_else(|e| panic!("heartbeat of {}: {e}", r.node_id));
    }
}

/// Whether every custodian's published total has what was linked up to
/// `load_end`, and a reader of its recent links no longer reads the bucket
/// `load_end` fell in.
async fn load_totalled(
    net: &Network,
    custodians: &[(usize, NodeRegistration)],
    load_end: Timestamp,
) -> bool {
    use registry_core::committed::{recent_bucket, RECENT_LINK_LATENESS_SECS};
    for (_, r) in custodians {
        let view: CommittedCustodyView = net
            .call_fn::<GetCommittedCustody>(0, r.node_id.clone())
            .await;
        let Some(total) = view.published else {
            return false;
        };
        let first_read =
            recent_bucket(total.cutoff.as_micros() - RECENT_LINK_LATENESS_SECS * 1_000_000);
        if total.cutoff <= load_end || first_read <= recent_bucket(load_end.as_micros()) {
            return false;
        }
    }
    true
}

/// Selection as custodians hold more content, with the custodians alive:
/// one conductor holds a young observer (which samples), a publisher and
/// [`CUSTODY_HELD_NODES`] custodians that beat at the default window. The
/// publisher places one-shard contents on every custodian up to each level
/// of `--custody-held`; selection is sampled at once (the load still in the
/// custodians' recent links) and again once their published totals have it.
pub async fn bench_custody_held(a: &Args, report: &mut Report) {
    eprintln!(
        "custody held: {CUSTODY_HELD_NODES} beating custodians take contents up to {:?} each",
        a.custody_held
    );
    let mut net = Network::start_with_config(
        1,
        RegistryProperties::default(),
        polling_bootstrap(BOOTSTRAP_POLL_MS),
    )
    .await;
    let publisher = net.add_agents(0, 1, "publisher").await[0];
    let peers = net.add_agents(0, CUSTODY_HELD_NODES, "held").await;
    let mut custodians = Vec::new();
    let mut hashes = Vec::new();
    for (i, &peer) in peers.iter().enumerate() {
        let r = registration(&net.peers[peer], &format!("held{i}"), "eu-west");
        hashes.push(net.register_online(peer, &r).await);
        custodians.push((peer, r));
    }
    let beat_every = Duration::from_secs(20);
    let mut held = 0;
    for &level in &a.custody_held {
        let started = Instant::now();
        let mut beaten = Instant::now();
        for c in held..level {
            for ((_, r), hash) in custodians.iter().zip(&hashes) {
                place_mib(&net, publisher, &format!("held-{c}-{}", r.node_id), r, hash).await;
                if beaten.elapsed() >= beat_every {
                    beat_all(&net, &custodians).await;
                    beaten = Instant::now();
                }
            }
            if (c + 1) % 16 == 0 {
                eprintln!(
                    "    {} of {level} contents a custodian ({} s)",
                    c + 1,
                    started.elapsed().as_secs()
                );
            }
        }
        held = level;
        let load_end = Timestamp::now();
        beat_all(&net, &custodians).await;
        let (select, ping) = sample_placing_and_floor(&net, a.samples).await;
        eprintln!(
            "  {level:>5} contents a custodian, just written: one region limit 6 p50 {} ms p99 {} ms; \
             empty call p50 {} ms p99 {} ms",
            select.p50_ms, select.p99_ms, ping.p50_ms, ping.p99_ms
        );
        let mut totalled = None;
        if level > 0 {
            let began = Instant::now();
            loop {
                beat_all(&net, &custodians).await;
                if load_totalled(&net, &custodians, load_end).await {
                    break;
                }
                if began.elapsed() >= TOTALLED_LIMIT {
                    eprintln!("    the totals did not take in the load within {TOTALLED_LIMIT:?}");
                    break;
                }
                tokio::time::sleep(beat_every).await;
            }
            if began.elapsed() < TOTALLED_LIMIT {
                let background = background_cores().await;
                beat_all(&net, &custodians).await;
                let (again, ping) = sample_placing_and_floor(&net, a.samples).await;
                eprintln!(
                    "        in their totals after {:.0} s: one region limit 6 p50 {} ms p99 {} ms; \
                     empty call p50 {} ms p99 {} ms",
                    began.elapsed().as_secs_f64(),
                    again.p50_ms,
                    again.p99_ms,
                    ping.p50_ms,
                    ping.p99_ms
                );
                totalled = Some(SettledSample {
                    waited_secs: began.elapsed().as_secs_f64().round(),
                    background_cores: background,
                    get_available_custodians_region_limit6: again,
                    ping,
                });
            }
        }
        report.custody_held.push(CustodyHeldPoint {
            contents_per_node: level,
            get_available_custodians_region_limit6: select,
            ping,
            totalled,
        });
        write_report(report, &a.out);
    }
}
