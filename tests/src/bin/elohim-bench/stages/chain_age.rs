//! `--chain-age`: one node's own calls as its source chain grows, since
//! Holochain 0.7.1 reads the caller's whole chain before every zome call.

use elohim_tests::*;
use node_registry_integrity::zome_fns::{AssignCustodian, GetAvailableCustodians, Ping};
use node_registry_integrity::*;

use crate::args::Args;
use crate::measure::{
    chain_records, placing_in_region, register_and_beat, retrying, sample_calls, sample_calls_by,
    sample_selection, timed,
};
use crate::report::{latency, write_report, ChainAgePoint, Report};
use crate::worker::BOOTSTRAP_POLL_MS;

/// Nodes besides the aging one in the chain-age stage: what it selects
/// among and assigns to.
pub const CHAIN_AGE_PEERS: usize = 8;

/// A node's own calls as its source chain grows. One conductor holds the
/// aging node and [`CHAIN_AGE_PEERS`] others; the node places one-shard
/// contents of its own on the others (five records each, the writes a
/// publishing node makes) until its chain reaches each length of
/// `--chain-age`, and its calls are sampled there.
pub async fn bench_chain_age(a: &Args, report: &mut Report) {
    eprintln!(
        "chain age: one node's calls as its own chain reaches {:?} records",
        a.chain_age
    );
    let mut net = Network::start_with_config(
        1,
        RegistryProperties {
            presence_lease_secs: a.window_secs,
            ..Default::default()
        },
        polling_bootstrap(BOOTSTRAP_POLL_MS),
    )
    .await;
    let others = net.add_agents(0, CHAIN_AGE_PEERS, "age").await;
    register_and_beat(&net.conductors[0], &net.peers[0], "age0").await;
    let mut regs = Vec::new();
    for (i, &peer) in others.iter().enumerate() {
        let r = registration(&net.peers[peer], &format!("age{}", i + 1), "eu-west");
        let hash = net.register_online(peer, &r).await;
        regs.push((r, hash));
    }
    let owner = net.peers[0].agent();
    let mut written = 0usize;
    // Counted by dumping the chain once a level; estimated while writing.
    let mut records = chain_records(&net, 0).await.len();
    for &target in &a.chain_age {
        let mut writes = Vec::new();
        while records < target {
            let (reg, hash) = &regs[written % regs.len()];
            let assignment =
                assignment(owner.clone(), &format!("age-{written}"), reg, hash.clone());
            let (res, t) = timed(retrying("assigning", || {
                net.try_call_fn::<AssignCustodian>(0, assignment.clone())
            }))
            .await;
            res.unwrap_or_else(|e| panic!("assigning for the chain-age stage: {e}"));
            writes.push(t);
            written += 1;
            // An assignment is an entry and four links.
            records += 5;
            if written.is_multiple_of(250) {
                eprintln!("    {records} of {target} records ({written} assignments)");
            }
        }
        records = chain_records(&net, 0).await.len();
        let ping = sample_calls::<Ping>(&net, a.samples, |_| ()).await;
        let select = sample_selection(&net, a.samples, placing_in_region).await;
        let young = sample_calls_by::<GetAvailableCustodians>(
            &net,
            others[0],
            a.samples,
            placing_in_region,
        )
        .await;
        let assign_custodian = (!writes.is_empty()).then(|| latency(writes));
        eprintln!(
            "  {records:>6} records: empty call p50 {} ms p99 {} ms; one region limit 6 p50 {} ms \
             p99 {} ms; the same asked by a young neighbour p50 {} ms p99 {} ms{}",
            ping.p50_ms,
            ping.p99_ms,
            select.p50_ms,
            select.p99_ms,
            young.p50_ms,
            young.p99_ms,
            assign_custodian
                .as_ref()
                .map(|l| format!("; assign_custodian p50 {} ms p99 {} ms", l.p50_ms, l.p99_ms))
                .unwrap_or_default()
        );
        report.chain_age.push(ChainAgePoint {
            chain_records: records,
            ping,
            get_available_custodians_region_limit6: select,
            young_neighbour_selection: young,
            assign_custodian,
        });
        write_report(report, &a.out);
    }
}
