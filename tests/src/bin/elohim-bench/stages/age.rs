//! `--age-days`: a node's own writes at an age, its chains fast-forwarded to
//! what the shipped defaults write in that many days.

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{AssignCustodian, DelegateWorkingKey, Heartbeat, Ping};
use node_registry_integrity::*;
use std::time::Duration;

use crate::args::Args;
use crate::measure::{chain_records, register_and_beat, retrying, sample_calls_by, timed};
use crate::report::{latency, write_report, AgePoint, Report};
use crate::stages::chain_age::CHAIN_AGE_PEERS;
use crate::worker::BOOTSTRAP_POLL_MS;

/// Records the identity and the working agent of a node hold after `days`
/// at the shipped defaults (`registry_core::budget`): the identity its
/// setup, registration and one delegation an epoch; the working agent its
/// setup and, at worst (the end of its epoch), an epoch of steady writes.
fn records_at_age(days: u32) -> (usize, usize) {
    use registry_core::budget::*;
    let t = Timings::default();
    let epoch_days = t.epoch_secs / DAY_SECS;
    let steady_working: f64 = steady_state_per_day(&t)
        .iter()
        .filter(|(k, _)| matches!(k, RecordKind::PresenceLease | RecordKind::Verdict))
        .map(|(_, n)| n)
        .sum();
    let identity = AGENT_SETUP_RECORDS
        + REGISTRATION_RECORDS
        + DELEGATION_RECORDS * (days as f64 / epoch_days).ceil().max(1.0);
    let working = AGENT_SETUP_RECORDS + steady_working * (days as f64).min(epoch_days);
    (identity.round() as usize, working.round() as usize)
}

/// Writes assignments as `peer` (as their owner, to the custodians in
/// `regs`) until its chain holds `target` records; returns its length.
async fn grow_chain(
    net: &Network,
    peer: usize,
    regs: &[(NodeRegistration, ActionHash)],
    tag: &str,
    target: usize,
) -> usize {
    let owner = net.peers[peer].agent();
    let mut records = chain_records(net, peer).await.len();
    let mut written = 0usize;
    while records < target {
        let (reg, hash) = &regs[written % regs.len()];
        let a = assignment(
            owner.clone(),
            &format!("{tag}-{records}"),
            reg,
            hash.clone(),
        );
        retrying("assigning", || {
            net.try_call_fn::<AssignCustodian>(peer, a.clone())
        })
        .await
        .unwrap_or_else(|e| panic!("assigning for the age stage: {e}"));
        written += 1;
        // An assignment is an entry and four links.
        records += 5;
    }
    chain_records(net, peer).await.len()
}

/// `--age-days`: on a conductor of its own, with custodians to assign to,
/// a node (an identity and its working agent, both fresh) per age, whose
/// two chains are fast-forwarded to what the defaults write by then; its
/// own writes are sampled: a lease renewal through the working agent, an
/// assignment through the identity. Each age gets a new node so that what
/// the samples themselves write (a hundred leases on the node's presence
/// shard, five hundred records on its identity) weighs alike at every age.
/// The first age is measured again at the end: the conductor's store grew
/// meanwhile, which slows every call whatever its caller's age, and the
/// control shows how much.
pub async fn bench_age(a: &Args, report: &mut Report) {
    eprintln!("age: a node's own writes at {:?} days", a.age_days);
    let mut net = Network::start_with_config(
        1,
        RegistryProperties {
            // Every sample changes the status, so every sample writes.
            max_leases_per_minute: 100_000,
            ..Default::default()
        },
        polling_bootstrap(BOOTSTRAP_POLL_MS),
    )
    .await;
    let others = net.add_agents(0, CHAIN_AGE_PEERS, "age").await;
    let mut regs = Vec::new();
    for (i, &peer) in others.iter().enumerate() {
        let r = registration(&net.peers[peer], &format!("age{}", i + 1), "eu-west");
        let hash = net.register_online(peer, &r).await;
        regs.push((r, hash));
    }
    let max = RegistryProperties::default().max_delegation_secs as i64;
    let mut levels = a.age_days.clone();
    levels.push(a.age_days[0]);
    let mut first_p99: Option<(f64, f64)> = None;
    for (level, &days) in levels.iter().enumerate() {
        let control = level + 1 == levels.len();
        let pair = net.add_agents(0, 2, &format!("aged{level}-")).await;
        let (identity, work) = (pair[0], pair[1]);
        let label = format!("aged{level}");
        register_and_beat(&net.conductors[0], &net.peers[identity], &label).await;
        let node_id = net.peers[identity].node_id(&label);
        let now = Timestamp::now();
        let _: ActionHash = net
            .call_fn::<DelegateWorkingKey>(
                identity,
                DelegateInput {
                    delegate: net.peers[work].agent(),
                    valid_from: now,
                    valid_until: Timestamp::from_micros(now.as_micros() + max * 1_000_000),
                },
            )
            .await;
        let (identity_target, working_target) = records_at_age(days);
        let identity_records = grow_chain(
            &net,
            identity,
            &regs,
            &format!("{label}-id"),
            identity_target,
        )
        .await;
        let working_records =
            grow_chain(&net, work, &regs, &format!("{label}-work"), working_target).await;
        // Validation's rate check reads the author's last minute of chain:
        // after a fast-forward that minute holds far more than any real one
        // (a working key writes about one record an hour), so let it pass.
        tokio::time::sleep(Duration::from_secs(61)).await;
        let mut beats = Vec::new();
        for i in 0..a.samples {
            let status = if i % 2 == 0 { "degraded" } else { "online" };
            let (_, t) = timed(net.call_fn::<Heartbeat>(work, heartbeat(&node_id, status))).await;
            beats.push(t);
        }
        let mut assigns = Vec::new();
        for i in 0..a.samples {
            let (reg, hash) = &regs[i % regs.len()];
            let asg = assignment(
                net.peers[identity].agent(),
                &format!("{label}-sample-{i}"),
                reg,
                hash.clone(),
            );
            let (res, t) = timed(net.try_call_fn::<AssignCustodian>(identity, asg)).await;
            res.unwrap_or_else(|e| panic!("sampling an assignment: {e}"));
            assigns.push(t);
        }
        let ping = sample_calls_by::<Ping>(&net, work, a.samples, |_| ()).await;
        let point = AgePoint {
            days,
            control,
            identity_records,
            working_records,
            heartbeat: latency(beats),
            assign_custodian: latency(assigns),
            ping,
        };
        let (hb, asg) = (point.heartbeat.p99_ms, point.assign_custodian.p99_ms);
        let (hb0, asg0) = *first_p99.get_or_insert((hb, asg));
        eprintln!(
            "  {days:>5} days{}: identity {identity_records} records, working \
             {working_records}; heartbeat p50 {} ms p99 {hb} ms ({:.2}x the first); \
             assign_custodian p50 {} ms p99 {asg} ms ({:.2}x); ping p50 {} ms",
            if control { " again (control)" } else { "" },
            point.heartbeat.p50_ms,
            hb / hb0,
            point.assign_custodian.p50_ms,
            asg / asg0,
            point.ping.p50_ms
        );
        report.age.push(point);
        write_report(report, &a.out);
    }
}
