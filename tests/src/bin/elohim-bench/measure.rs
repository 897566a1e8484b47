//! How figures are taken, for every stage: timing and sampling zome calls
//! (retrying passing faults), reading a node's source chain, this process's
//! memory and CPU, and waiting for the DHT holders and the machine to settle
//! before sampling.

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{
    GetAvailableCustodians, Heartbeat, Ping, RegisterNode, ZomeFn,
};
use node_registry_integrity::*;
use std::time::{Duration, Instant};

use crate::report::{latency, Latency};

pub async fn timed<F: std::future::Future>(f: F) -> (F::Output, Duration) {
    let t = Instant::now();
    let out = f.await;
    (out, t.elapsed())
}

/// Each record of an agent's source chain: whether it is a presence link,
/// its serialized size, and the DHT ops it becomes (holochain's op
/// production: every action is stored and registered as agent activity,
/// plus what it creates or changes).
pub async fn chain_records(net: &Network, peer: usize) -> Vec<(bool, usize, usize)> {
    let p = &net.peers[peer];
    source_chain(&net.conductors[p.conductor], p.cell.cell_id())
        .await
        .iter()
        .map(|r| {
            let presence = matches!(
                &r.action.data,
                ActionData::CreateLink(l) if l.link_type.0 == LinkTypes::PresenceIndex as u8
            );
            let bytes = holochain_serialized_bytes::encode(r)
                .map(|b| b.len())
                .unwrap_or(0);
            let ops = match r.action.action_type() {
                ActionType::Create => 3,
                ActionType::Update => 5,
                ActionType::Delete => 4,
                ActionType::CreateLink | ActionType::DeleteLink => 3,
                _ => 2,
            };
            (presence, bytes, ops)
        })
        .collect()
}

/// Resident memory of this process, MiB (Linux; 0 elsewhere).
pub fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

/// CPU time this process has used so far (Linux; zero elsewhere).
fn cpu_time() -> Duration {
    let ticks = || -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name (which may hold spaces) start
        // at the third: utime and stime are the 14th and 15th, in clock
        // ticks of 1/100 s (USER_HZ, fixed for /proc).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    Duration::from_millis(ticks().unwrap_or(0) * 10)
}

/// Ops that the DHT-holding conductors (one cell each, peers `0..n`) hold
/// in validation or integration limbo, counted over the whole store a page
/// at a time.
async fn pending_ops(net: &Network, holders: usize) -> usize {
    let mut pending = 0;
    for p in net.peers.iter().take(holders) {
        let mut cursor = None;
        loop {
            let dump = net.conductors[p.conductor]
                .dump_full_cell_state(p.cell.cell_id(), cursor, Some(5_000))
                .await
                .expect("cell state dumps");
            let d = dump.integration_dump;
            pending += d.validation_limbo.len() + d.integration_limbo.len();
            match d.dht_ops_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    pending
}

/// Waits until the DHT-holding conductors have validated and integrated
/// what the last wave published, so that selection is sampled on a settled
/// registry rather than against that work for this machine's two cores.
/// Gives up after `max`, or once the backlog has not shrunk for a minute
/// (ops waiting on a dependency that no longer answers). Returns what is
/// still pending, and how long it waited.
pub async fn await_integrated(net: &Network, holders: usize, max: Duration) -> (usize, Duration) {
    let began = Instant::now();
    let mut least = usize::MAX;
    let mut least_at = Instant::now();
    loop {
        let pending = pending_ops(net, holders).await;
        if pending < least {
            least = pending;
            least_at = Instant::now();
        }
        if pending == 0 || began.elapsed() > max || least_at.elapsed() > Duration::from_secs(60) {
            eprintln!(
                "    {pending} ops pending on the DHT holders after {:.0} s",
                began.elapsed().as_secs_f64()
            );
            return (pending, began.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Background above the one measured before the load was written (the
/// holders' steady gossip, about a core from 320 nodes on) under which the
/// machine counts as settled again.
pub const SETTLED_MARGIN: f64 = 0.25;

/// The longest wait for the background to settle.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Waits until this process's background work (gossip of what was just
/// written, above all) falls back under `baseline` plus [`SETTLED_MARGIN`],
/// or [`SETTLE_LIMIT`] passes. Returns the last reading and how long it
/// waited.
pub async fn await_settled(baseline: f64) -> (f64, Duration) {
    let began = Instant::now();
    let mut said = Instant::now();
    let settled = baseline + SETTLED_MARGIN;
    loop {
        let cores = background_cores().await;
        if cores < settled || began.elapsed() >= SETTLE_LIMIT {
            return (cores, began.elapsed());
        }
        if said.elapsed() >= Duration::from_secs(60) {
            eprintln!(
                "    {cores} cores busy with no call running after {:.0} s; waiting for under {settled:.2}",
                began.elapsed().as_secs_f64()
            );
            said = Instant::now();
        }
    }
}

/// Cores this process uses over five seconds with no call running.
pub async fn background_cores() -> f64 {
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    (cpu_time().saturating_sub(cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64() * 100.0).round()
        / 100.0
}

/// Times one zome function `F` of the observer `samples` times, the `i`th
/// with `payload(i)`.
pub async fn sample_calls<F: ZomeFn>(
    net: &Network,
    samples: usize,
    payload: impl Fn(usize) -> F::Input,
) -> Latency
where
    F::Input: Clone,
{
    sample_calls_by::<F>(net, 0, samples, payload).await
}

/// As [`sample_calls`], the calls made by `peer`.
pub async fn sample_calls_by<F: ZomeFn>(
    net: &Network,
    peer: usize,
    samples: usize,
    payload: impl Fn(usize) -> F::Input,
) -> Latency
where
    F::Input: Clone,
{
    let mut d = Vec::new();
    for i in 0..samples {
        let (_, t) = timed(net.call_fn::<F>(peer, payload(i))).await;
        d.push(t);
    }
    latency(d)
}

/// What publishing asks when it places its `i`th content in one region:
/// six custodians, placed by content.
pub fn placing_in_region(i: usize) -> CustodianFilters {
    CustodianFilters {
        region: Some("eu-west".into()),
        limit: Some(6),
        content_id: Some(format!("bench-content-{i}")),
        ..Default::default()
    }
}

/// Samples one kind of selection query `samples` times from the observer.
pub async fn sample_selection(
    net: &Network,
    samples: usize,
    filters: impl Fn(usize) -> CustodianFilters,
) -> Latency {
    sample_calls::<GetAvailableCustodians>(net, samples, filters).await
}

/// Registers `peer` (on `conductor`) as node `label` and beats once, timing
/// both calls (retries included).
pub async fn register_and_beat(
    conductor: &holochain::sweettest::SweetConductor,
    peer: &Peer,
    label: &str,
) -> (Duration, Duration) {
    let r = registration(peer, label, "eu-west");
    let id = r.node_id.clone();
    let zome = peer.cell.zome(COORDINATOR);
    let (res, dr) = timed(retrying(label, || {
        conductor_try_call_fn::<RegisterNode>(conductor, &zome, r.clone())
    }))
    .await;
    res.unwrap_or_else(|e| panic!("registering node {label}: {e}"));
    let (res, db) = timed(retrying(label, || {
        conductor_try_call_fn::<Heartbeat>(conductor, &zome, heartbeat(&id, "online"))
    }))
    .await;
    res.unwrap_or_else(|e| panic!("heartbeat of node {label}: {e}"));
    (dr, db)
}

/// Runs a zome call up to five times while it fails in a way that may pass
/// later (a dependency not yet on this conductor, a network read that timed
/// out on the loaded machine); any other failure ends the run at once. The
/// time reported includes the retries.
pub async fn retrying<T, E: std::fmt::Debug, F: std::future::Future<Output = Result<T, E>>>(
    label: &str,
    call: impl Fn() -> F,
) -> Result<T, String> {
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let e = format!("{e:?}");
                // The last: a call so slow (a loaded machine) that the
                // entry's own time is a minute behind its action's; a new
                // call stamps it anew.
                let transient = [
                    "timeout",
                    "DepMissingFromDht",
                    "may be retried",
                    "away from its action's timestamp",
                ]
                .iter()
                .any(|t| e.contains(t));
                if !transient || attempt == 5 {
                    return Err(e);
                }
                eprintln!("    {label}: attempt {attempt} failed, retrying: {e}");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
        }
    }
}

/// Publishing's selection in one region, then an empty call: the
/// selection and the conductor's floor under the same load.
pub async fn sample_placing_and_floor(net: &Network, samples: usize) -> (Latency, Latency) {
    let selection = sample_selection(net, samples, placing_in_region).await;
    let floor = sample_calls::<Ping>(net, samples, |_| ()).await;
    (selection, floor)
}
