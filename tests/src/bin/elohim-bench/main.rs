//! `elohim-bench` (run by `cargo xtask bench`): measures the real system on a
//! local network of conductors, and prints a table and a JSON report.
//!
//! Four parts:
//! - the registry: agents register and beat one by one (registration and
//!   heartbeat latency). They come in waves, each on a conductor in a worker
//!   process of its own (this binary, `--worker`) that exits once the
//!   observer sees its nodes: what they published stays on the DHT, held by
//!   the conductors of this process, and their memory goes back to the
//!   machine (a holochain process keeps most of an agent's memory even
//!   after its conductor shuts down), so the registry can grow past what
//!   this machine runs at once. At each size the observer samples
//!   `get_available_custodians`; its source chain is dumped around
//!   heartbeats to count the records, bytes and DHT ops a heartbeat adds;
//!   with `--custody-load`, the nodes then take contents and selection is
//!   sampled again;
//! - chain age (`--chain-age`): one node's own calls as its source chain
//!   grows, since Holochain 0.7.1 reads the caller's whole chain before
//!   every zome call;
//! - custody held (`--custody-held`): selection over custodians that keep
//!   beating while they take more and more content, before and after their
//!   published totals of custody take it in;
//! - custody: conductors with their sidecars (the custody suites' fast
//!   timings) publish content of each strategy, a custodian is killed, and
//!   the time until the network declares it failed and until each of its
//!   shards is rebuilt on a new custodian is measured.
//!
//! Figures come from a shared 2-core machine: read them as orders of
//! magnitude, compare runs on one machine, never assert on them.

use elohim_sidecar::custody::PublishRequest;
use elohim_tests::sidecars::SidecarNet;
use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::{
    AssignCustodian, DelegateWorkingKey, GetAssignmentRecordsForContent, GetAvailableCustodians,
    GetCommittedCustody, Heartbeat, Ping, RegisterNode, ZomeFn,
};
use node_registry_integrity::*;
use serde::Serialize;
use std::time::{Duration, Instant};

struct Args {
    agents: usize,
    conductors: usize,
    samples: usize,
    sidecars: usize,
    sizes_mib: Vec<u64>,
    strategies: Vec<String>,
    out: std::path::PathBuf,
    skip_registry: bool,
    skip_custody: bool,
    wave: usize,
    window_secs: u32,
    /// How often the DHT-holding conductors start a gossip round, ms.
    gossip_ms: u32,
    /// Contents each node holds when selection is sampled under custody
    /// load, one level after another (empty: not sampled).
    custody_load: Vec<usize>,
    /// Source-chain lengths (records the observer authored) at which its
    /// own calls are sampled, one after another (empty: not sampled).
    chain_age: Vec<usize>,
    custody_held: Vec<usize>,
    /// Ages (days at the shipped defaults) at which a node's own writes are
    /// sampled, its chains fast-forwarded to what the record model says it
    /// holds then (empty: not sampled).
    age_days: Vec<u32>,
}

fn usage() -> ! {
    eprintln!(
        "usage: elohim-bench [--agents N (40)] [--conductors N (4)] [--samples N (40)] \
         [--sidecars N (9)] [--sizes-mib 10,100] \
         [--strategies full_replica,erasure_coded,threshold_split] [--out bench.json] [--skip-registry] [--skip-custody] \
         [--wave N (200), nodes per worker process] [--window-secs S (3600)] \
         [--gossip-ms N (1000), gossip interval of the DHT holders; the shipped conductor's is 120000] \
         [--custody-load 0,2,8: after the registry, sample selection again with each node holding that many contents] \
         [--chain-age 0,2000,8000: on a conductor of its own, sample a node's calls as its own source chain reaches that many records] \
         [--custody-held 0,128: on a conductor of its own, sample selection over beating custodians holding that many contents, before and after their totals take them in] \
         [--age-days 1,30,365: on a conductor of its own, sample a node's own writes with its identity and working chains holding what the shipped defaults write in that many days]"
    );
    std::process::exit(2)
}

/// A flag's whole-number value, or the usage after a clear error (also
/// when it does not fit the flag's type).
fn number<T: std::str::FromStr>(name: &str, v: String) -> T {
    v.parse().unwrap_or_else(|_| {
        eprintln!(
            "elohim-bench: {name} must be a whole number of at most {} bits, got {v:?}",
            std::mem::size_of::<T>() * 8
        );
        usage()
    })
}

/// A flag's comma-separated whole numbers, each checked as [`number`].
fn numbers<T: std::str::FromStr>(name: &str, v: String) -> Vec<T> {
    v.split(',')
        .map(|s| number(name, s.trim().to_string()))
        .collect()
}

fn parse_args() -> Args {
    let mut a = Args {
        agents: 40,
        conductors: 4,
        samples: 40,
        sidecars: 9,
        sizes_mib: vec![10, 100],
        strategies: vec![
            "full_replica".into(),
            "erasure_coded".into(),
            "threshold_split".into(),
        ],
        out: "bench.json".into(),
        skip_registry: false,
        skip_custody: false,
        wave: 200,
        gossip_ms: 1000,
        window_secs: 3600,
        custody_load: Vec::new(),
        chain_age: Vec::new(),
        custody_held: Vec::new(),
        age_days: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next().unwrap_or_else(|| {
                eprintln!("elohim-bench: {name} needs a value");
                usage()
            })
        };
        match flag.as_str() {
            "--agents" => a.agents = number("--agents", value("--agents")),
            "--conductors" => a.conductors = number("--conductors", value("--conductors")),
            "--samples" => a.samples = number("--samples", value("--samples")),
            "--sidecars" => a.sidecars = number("--sidecars", value("--sidecars")),
            "--sizes-mib" => a.sizes_mib = numbers("--sizes-mib", value("--sizes-mib")),
            "--strategies" => {
                a.strategies = value("--strategies")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect();
                for st in &a.strategies {
                    if !["full_replica", "erasure_coded", "threshold_split"].contains(&st.as_str())
                    {
                        eprintln!("elohim-bench: unknown strategy {st:?}");
                        usage()
                    }
                }
            }
            "--out" => a.out = value("--out").into(),
            "--wave" => a.wave = number("--wave", value("--wave")),
            "--window-secs" => a.window_secs = number("--window-secs", value("--window-secs")),
            "--gossip-ms" => a.gossip_ms = number("--gossip-ms", value("--gossip-ms")),
            "--custody-load" => {
                a.custody_load = numbers("--custody-load", value("--custody-load"));
                if !a.custody_load.is_sorted() {
                    eprintln!("elohim-bench: --custody-load levels must grow");
                    usage()
                }
            }
            "--chain-age" => {
                a.chain_age = numbers("--chain-age", value("--chain-age"));
                if !a.chain_age.is_sorted() {
                    eprintln!("elohim-bench: --chain-age lengths must grow");
                    usage()
                }
            }
            "--custody-held" => {
                a.custody_held = numbers("--custody-held", value("--custody-held"));
                if !a.custody_held.is_sorted() {
                    eprintln!("elohim-bench: --custody-held levels must grow");
                    usage()
                }
            }
            "--age-days" => {
                a.age_days = numbers("--age-days", value("--age-days"));
                if !a.age_days.is_sorted() || a.age_days.first() == Some(&0) {
                    eprintln!("elohim-bench: --age-days must grow from 1");
                    usage()
                }
            }
            "--skip-registry" => a.skip_registry = true,
            "--skip-custody" => a.skip_custody = true,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("elohim-bench: unknown flag {other}");
                usage()
            }
        }
    }
    if a.conductors == 0
        || a.agents < a.conductors
        || a.sidecars < 5
        || a.samples == 0
        || a.wave == 0
        || a.window_secs < 60
        || a.gossip_ms < 100
    {
        eprintln!(
            "elohim-bench: need --agents >= --conductors >= 1, --samples >= 1, --wave >= 1, \
             --window-secs >= 60, --gossip-ms >= 100 and --sidecars >= 5 \
             (an owner, the custodians and a spare; with fewer than 8, contents get fewer shards)"
        );
        usage()
    }
    a
}

/// Milliseconds at the given percentiles of some samples.
#[derive(Debug, Clone, Serialize)]
struct Latency {
    samples: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn latency(mut d: Vec<Duration>) -> Latency {
    d.sort();
    let ms = |x: Duration| (x.as_secs_f64() * 1e5).round() / 100.0;
    let at = |q: f64| ms(d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1]);
    Latency {
        samples: d.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: ms(*d.last().unwrap()),
    }
}

#[derive(Debug, Clone, Serialize)]
struct GrowthPoint {
    registered: usize,
    visible: usize,
    /// No filter, no limit: the full listing of every present node.
    get_available_custodians: Latency,
    /// What publishing asks: one region, six custodians, placed by content.
    get_available_custodians_region_limit6: Latency,
    /// Six custodians from any region.
    get_available_custodians_any_region_limit6: Latency,
    /// A zome call that does nothing (`ping`): the conductor's floor under
    /// every call above, at the same moment.
    call_floor: Latency,
    /// Resident memory of the benchmark (all conductors) at this point.
    rss_mib: u64,
    /// Time since the first registration.
    elapsed_secs: f64,
    /// Ops the DHT-holding conductors had not yet validated and integrated
    /// when sampling began (after waiting for them to drain, see
    /// [`await_integrated`]).
    pending_ops: usize,
    /// How long that wait took.
    integrate_wait_secs: f64,
    /// Cores this process used in the five seconds before sampling, with
    /// no call running: the conductors' background work (gossip,
    /// validation) that competes with the selections for this machine's
    /// two cores.
    background_cores: f64,
}

/// Selection when the candidates already hold content: what a custodian
/// holds is read to know its room, so this shows whether that read grows
/// with what the network stores.
#[derive(Debug, Clone, Serialize)]
struct CustodyLoadPoint {
    /// Contents (one shard each) every registered node holds (published by
    /// an agent of another conductor).
    contents_per_node: usize,
    /// Assignments in the registry.
    assignments: usize,
    /// As `GrowthPoint::get_available_custodians_region_limit6`.
    get_available_custodians_region_limit6: Latency,
    /// An empty call sampled just after: the conductor's floor at this
    /// load, so a slower selection can be told from a slower conductor.
    ping: Latency,
    /// How long writing this level's assignments took, per assignment.
    assign_ms: f64,
    /// As `GrowthPoint::background_cores`.
    background_cores: f64,
    /// The background before any load was written: what "settled" means.
    background_cores_before_load: f64,
    /// The same selection sampled again once the background had settled,
    /// when it had not before the first sampling: tells a busy machine
    /// from a selection that costs more.
    settled: Option<SettledSample>,
}

/// A selection sampled after waiting for the conductors' background work
/// to fall back to what it was before the load (see [`await_settled`]).
#[derive(Debug, Clone, Serialize)]
struct SettledSample {
    /// How long the wait took (at most [`SETTLE_LIMIT`]).
    waited_secs: f64,
    /// The background when sampling began.
    background_cores: f64,
    /// As `CustodyLoadPoint::get_available_custodians_region_limit6`.
    get_available_custodians_region_limit6: Latency,
    /// As `CustodyLoadPoint::ping`.
    ping: Latency,
}

/// A node's own calls as its source chain grows: a node writes every
/// heartbeat, assignment and attestation to its own chain, so this is the
/// cost of the same calls on an older node.
#[derive(Debug, Clone, Serialize)]
struct ChainAgePoint {
    /// Records on the node's source chain when sampled.
    chain_records: usize,
    /// An empty call (`ping`).
    ping: Latency,
    /// Publishing's selection (one region, limit 6), over the other nodes.
    get_available_custodians_region_limit6: Latency,
    /// The same selection asked by another agent of the same conductor,
    /// whose chain stays short: whether a node could keep its reads fast by
    /// making them through a young agent.
    young_neighbour_selection: Latency,
    /// A write: the assignments that grew the chain to this length (five
    /// records each), as timed while writing them.
    assign_custodian: Option<Latency>,
}

/// Selection over custodians that hold more and more content and keep
/// beating, so they publish totals of their custody (see
/// `registry_core::committed`).
#[derive(Debug, Clone, Serialize)]
struct CustodyHeldPoint {
    /// Contents (one shard each) every custodian holds.
    contents_per_node: usize,
    /// Publishing's selection (one region, limit 6) just after the load was
    /// written: the load is still in the custodians' recent-custody links.
    get_available_custodians_region_limit6: Latency,
    /// An empty call sampled just after.
    ping: Latency,
    /// The same once every custodian's published total has the load and
    /// readers no longer read the buckets it was linked in.
    totalled: Option<SettledSample>,
}

/// A node's own writes at an age: its chains hold what the record model
/// (`registry_core::budget`) says the shipped defaults write in `days`.
#[derive(Debug, Clone, Serialize)]
struct AgePoint {
    /// Days of steady state at the defaults.
    days: u32,
    /// The first age measured again after the others (a control for what
    /// the conductor's growing store costs every call).
    control: bool,
    /// Records on the identity's chain when sampling began.
    identity_records: usize,
    /// Records on the working agent's chain when sampling began (the
    /// fullest its epoch gets: working keys are replaced every epoch).
    working_records: usize,
    /// A lease renewal through the working agent (a status change each
    /// time, so each writes its record).
    heartbeat: Latency,
    /// An assignment through the identity (what publishing writes).
    assign_custodian: Latency,
    /// An empty call through the working agent.
    ping: Latency,
}

#[derive(Debug, Clone, Serialize)]
struct HeartbeatCost {
    call: Latency,
    records_per_beat: f64,
    bytes_per_beat: f64,
    ops_per_beat: f64,
    presence_link_bytes: f64,
    beats_per_day_at_30s: u32,
    records_per_node_per_day: f64,
    bytes_per_node_per_day: f64,
    ops_per_node_per_day: f64,
}

#[derive(Debug, Clone, Serialize)]
struct RepairRow {
    content_mib: u64,
    strategy: String,
    k: u32,
    n: u32,
    detection_secs: f64,
    repair_secs: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
struct Report {
    // The fields `elohim-sim compare --bench` reads (erasure 4-of-6 rows).
    nodes: u32,
    heartbeat_secs: f64,
    failure_window_secs: f64,
    grace_secs: f64,
    detect_interval_secs: f64,
    detection_secs: Vec<f64>,
    repair_secs: Vec<f64>,
    content_bytes: u64,
    strategy: String,
    k: u32,
    n: u32,
    // Everything measured.
    machine_cores: usize,
    agents: usize,
    conductors: usize,
    /// Gossip interval of the DHT-holding conductors, ms.
    holder_gossip_ms: u32,
    registration: Option<Latency>,
    registry_growth: Vec<GrowthPoint>,
    heartbeat: Option<HeartbeatCost>,
    custody_load: Vec<CustodyLoadPoint>,
    chain_age: Vec<ChainAgePoint>,
    custody_held: Vec<CustodyHeldPoint>,
    age: Vec<AgePoint>,
    repairs: Vec<RepairRow>,
    total_secs: f64,
}

async fn timed<F: std::future::Future>(f: F) -> (F::Output, Duration) {
    let t = Instant::now();
    let out = f.await;
    (out, t.elapsed())
}

/// Each record of an agent's source chain: whether it is a presence link,
/// its serialized size, and the DHT ops it becomes (holochain's op
/// production: every action is stored and registered as agent activity,
/// plus what it creates or changes).
async fn chain_records(net: &Network, peer: usize) -> Vec<(bool, usize, usize)> {
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
fn rss_mib() -> u64 {
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
async fn await_integrated(net: &Network, holders: usize, max: Duration) -> (usize, Duration) {
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
const SETTLED_MARGIN: f64 = 0.25;

/// The longest wait for the background to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Waits until this process's background work (gossip of what was just
/// written, above all) falls back under `baseline` plus [`SETTLED_MARGIN`],
/// or [`SETTLE_LIMIT`] passes. Returns the last reading and how long it
/// waited.
async fn await_settled(baseline: f64) -> (f64, Duration) {
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
async fn background_cores() -> f64 {
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    (cpu_time().saturating_sub(cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64() * 100.0).round()
        / 100.0
}

/// Times one zome function `F` of the observer `samples` times, the `i`th
/// with `payload(i)`.
async fn sample_calls<F: ZomeFn>(
    net: &Network,
    samples: usize,
    payload: impl Fn(usize) -> F::Input,
) -> Latency {
    sample_calls_by::<F>(net, 0, samples, payload).await
}

/// As [`sample_calls`], the calls made by `peer`.
async fn sample_calls_by<F: ZomeFn>(
    net: &Network,
    peer: usize,
    samples: usize,
    payload: impl Fn(usize) -> F::Input,
) -> Latency {
    let mut d = Vec::new();
    for i in 0..samples {
        let (_, t) = timed(net.call_fn::<F>(peer, payload(i))).await;
        d.push(t);
    }
    latency(d)
}

/// What publishing asks when it places its `i`th content in one region:
/// six custodians, placed by content.
fn placing_in_region(i: usize) -> CustodianFilters {
    CustodianFilters {
        region: Some("eu-west".into()),
        limit: Some(6),
        content_id: Some(format!("bench-content-{i}")),
        ..Default::default()
    }
}

/// Samples one kind of selection query `samples` times from the observer.
async fn sample_selection(
    net: &Network,
    samples: usize,
    filters: impl Fn(usize) -> CustodianFilters,
) -> Latency {
    sample_calls::<GetAvailableCustodians>(net, samples, filters).await
}

/// Registers `peer` (on `conductor`) as node `label` and beats once, timing
/// both calls (retries included).
async fn register_and_beat(
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

/// How often the conductors of the registry benchmark ask the bootstrap
/// server for peers at most: workers in other processes are found only
/// through it.
const BOOTSTRAP_POLL_MS: u32 = 1000;

/// A worker process hosting one wave of nodes (see the module doc).
struct Worker {
    child: tokio::process::Child,
    /// Registration and first-heartbeat latency of each of its nodes.
    timings: Vec<(Duration, Duration)>,
}

impl Worker {
    /// Starts a worker whose `count` agents register as nodes `n{first}`
    /// onwards and beat once, and waits until they have.
    async fn start(
        net: &Network,
        bootstrap: &str,
        relay: &str,
        observer: &AgentPubKey,
        first: usize,
        count: usize,
        window_secs: u32,
    ) -> Result<Worker, String> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let began = Instant::now();
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(exe)
            .args([
                "--worker",
                bootstrap,
                relay,
                &observer.to_string(),
                &first.to_string(),
                &count.to_string(),
                &window_secs.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut timings = Vec::new();
        while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["joined", keys @ ..] => {
                    let keys: Vec<AgentPubKey> = keys
                        .iter()
                        .map(|k| AgentPubKey::try_from(*k).map_err(|e| format!("{k}: {e:?}")))
                        .collect::<Result<_, _>>()?;
                    let t = Instant::now();
                    await_known(net, &keys).await;
                    eprintln!(
                        "    nodes n{first}..n{}: their conductor joined after {:.1} s, known here after {:.1} s more",
                        first + count - 1,
                        began.elapsed().as_secs_f64() - t.elapsed().as_secs_f64(),
                        t.elapsed().as_secs_f64()
                    );
                    let stdin = child.stdin.as_mut().ok_or("no stdin")?;
                    stdin
                        .write_all(b"go\n")
                        .await
                        .map_err(|e| format!("telling the worker to go: {e}"))?;
                }
                ["ready"] => return Ok(Worker { child, timings }),
                ["timing", r, b] => {
                    let us = |v: &str| {
                        v.parse()
                            .map(Duration::from_micros)
                            .map_err(|_| line.clone())
                    };
                    timings.push((us(r)?, us(b)?));
                    // Progress on a long wave (a few seconds a node).
                    if timings.len() % 50 == 0 && timings.len() < count {
                        eprintln!(
                            "    {} of {count} registered and beating ({:.0} s)",
                            timings.len(),
                            began.elapsed().as_secs_f64()
                        );
                    }
                }
                _ => return Err(format!("unexpected line {line:?}")),
            }
        }
        Err(format!("exited early: {:?}", child.wait().await))
    }

    /// Asks the worker to leave the network and exit, and waits for it.
    async fn stop(mut self) {
        use tokio::io::AsyncWriteExt;
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"stop\n").await;
        }
        match tokio::time::timeout(Duration::from_secs(120), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            other => eprintln!("  a worker did not exit cleanly: {other:?}"),
        }
    }
}

/// Waits (at most two minutes) until every conductor of `net` holds an
/// agent info with an address for each of `agents` (learnt from the
/// bootstrap server).
async fn await_known(net: &Network, agents: &[AgentPubKey]) {
    let dna_hash = net.peers[0].cell.cell_id().dna_hash().clone();
    for conductor in net.conductors.iter() {
        if !await_reachable(conductor, &dna_hash, agents).await {
            eprintln!("  a worker's agents were still unknown here after 2 minutes");
            return;
        }
    }
}

/// The agents a peer store can reach: a live agent info with an address.
async fn reachable_in(
    conductor: &holochain::sweettest::SweetConductor,
    dna_hash: &DnaHash,
) -> std::collections::HashSet<Vec<u8>> {
    conductor
        .holochain_p2p()
        .peer_store(dna_hash.clone())
        .await
        .expect("the peer store opens")
        .get_all()
        .await
        .expect("the peer store reads")
        .iter()
        .filter(|i| !i.is_tombstone && i.url.is_some())
        .map(|i| i.agent.to_vec())
        .collect()
}

/// Waits (at most two minutes) until `conductor`'s peer store holds a live
/// agent info with an address for each of `agents`; whether it did.
async fn await_reachable(
    conductor: &holochain::sweettest::SweetConductor,
    dna_hash: &DnaHash,
    agents: &[AgentPubKey],
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reachable = reachable_in(conductor, dna_hash).await;
        if agents.iter().all(|a| reachable.contains(a.get_raw_32())) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a zome call up to five times while it fails in a way that may pass
/// later (a dependency not yet on this conductor, a network read that timed
/// out on the loaded machine); any other failure ends the run at once. The
/// time reported includes the retries.
async fn retrying<T, E: std::fmt::Debug, F: std::future::Future<Output = Result<T, E>>>(
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

/// Waits for `word` on a line of standard input (or its end).
async fn wait_for_line(word: &'static str) {
    let _ = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
            && line.trim() != word
        {
            line.clear();
        }
    })
    .await;
}

/// The worker side: `--worker BOOTSTRAP RELAY OBSERVER FIRST COUNT WINDOW_SECS`.
/// Joins the network at that rendezvous, registers and beats `COUNT` nodes,
/// prints their timings then `ready`, and on `stop` (or end of input)
/// disables their apps (they leave the network) and exits.
async fn run_worker(args: &[String]) {
    let [bootstrap, relay, observer, first, count, window] = args else {
        eprintln!("elohim-bench --worker needs BOOTSTRAP RELAY OBSERVER FIRST COUNT WINDOW_SECS");
        std::process::exit(2)
    };
    let observer = AgentPubKey::try_from(observer.as_str()).unwrap_or_else(|e| {
        eprintln!("elohim-bench --worker: observer {observer:?} is not an agent key: {e:?}");
        std::process::exit(2)
    });
    let number = |v: &String| -> usize {
        v.parse().unwrap_or_else(|_| {
            eprintln!("elohim-bench --worker: {v:?} is not a whole number");
            std::process::exit(2)
        })
    };
    let (first, count) = (number(first), number(count));
    // The conductor's log goes to stderr (the bench's own) when RUST_LOG
    // asks for it, to see why a worker's nodes do not show up.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let dna = packed_dna_with(RegistryProperties {
        presence_lease_secs: number(window) as u32,
        ..Default::default()
    })
    .await;
    let rendezvous: holochain::sweettest::DynSweetRendezvous =
        std::sync::Arc::new(FixedRendezvous {
            bootstrap: bootstrap.clone(),
            relay: relay.clone(),
        });
    // What a cell publishes before its new conductor has its relay address
    // is dropped; republishing every few seconds (not every five minutes)
    // gets it out as soon as the address is there.
    //
    // Its agents hold none of the DHT (a target arc factor of 0): the
    // observer's conductors hold it all. A worker that held it too would
    // sync and validate the whole registry every wave, the more the larger
    // it grows; in a real network of that size a node holds only its
    // neighbourhood's share.
    let config = polling_bootstrap(BOOTSTRAP_POLL_MS)
        .tune_conductor(|t| {
            t.min_publish_interval = Some(Duration::from_secs(3));
            t.publish_trigger_interval = Some(Duration::from_secs(1));
        })
        .tune_network_config(|n| n.target_arc_factor = 0);
    let mut conductor =
        holochain::sweettest::SweetConductor::from_config_rendezvous(config, rendezvous).await;
    let apps = conductor
        .setup_apps(&format!("n{first}-"), count, &[(ROLE.to_string(), dna)])
        .await
        .expect("the worker's agents install");
    let apps = apps.into_inner();
    let mine: Vec<AgentPubKey> = apps.iter().map(|a| a.agent().clone()).collect();
    let dna_hash = apps[0].cells()[0].cell_id().dna_hash().clone();
    // What a cell publishes before its conductor has its relay address is
    // dropped, not retried (the DHT gets it later by gossip, which can take
    // minutes): wait until our agents have addresses and the observer's is
    // known.
    let both: Vec<AgentPubKey> = mine.iter().cloned().chain([observer]).collect();
    if !await_reachable(&conductor, &dna_hash, &both).await {
        eprintln!("  a worker went on without its relay address or the observer's after 2 minutes");
    }
    // The observer drops messages from a peer it has no agent info for:
    // say who we are and wait until it knows us.
    let keys: Vec<String> = mine.iter().map(|k| k.to_string()).collect();
    println!("joined {}", keys.join(" "));
    wait_for_line("go").await;
    let mut app_ids = Vec::new();
    for (k, app) in apps.into_iter().enumerate() {
        app_ids.push(app.installed_app_id().clone());
        let peer = Peer {
            conductor: 0,
            cell: app.cells()[0].clone(),
            app_id: app.installed_app_id().clone(),
        };
        let (dr, db) = register_and_beat(&conductor, &peer, &format!("n{}", first + k)).await;
        println!("timing {} {}", dr.as_micros(), db.as_micros());
    }
    println!("ready");
    wait_for_line("stop").await;
    for id in app_ids {
        let _ = conductor.disable_app(id, DisabledAppReason::User).await;
    }
    conductor.shutdown().await;
}

async fn bench_registry(a: &Args, report: &mut Report) {
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

/// Samples publishing's selection again while every node holds more and
/// more content: the observer, as owner, assigns each present node one-shard
/// contents up to each level of `--custody-load`.
async fn bench_custody_load(a: &Args, net: &Network, report: &mut Report) {
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

/// Has `publisher` place a 1 MiB one-shard content of its own on
/// `custodian`, retrying passing faults.
async fn place_mib(
    net: &Network,
    publisher: usize,
    content_id: &str,
    custodian: &NodeRegistration,
    custodian_hash: &ActionHash,
) {
    let mut x = assignment(
        net.peers[publisher].agent(),
        content_id,
        custodian,
        custodian_hash.clone(),
    );
    x.content_size_bytes = 1 << 20;
    x.shard_size_bytes = 1 << 20;
    retrying("assigning", || {
        net.try_call_fn::<AssignCustodian>(publisher, x.clone())
    })
    .await
    .unwrap_or_else(|e| panic!("assigning {content_id}: {e}"));
}

/// Publishing's selection in one region, then an empty call: the
/// selection and the conductor's floor under the same load.
async fn sample_placing_and_floor(net: &Network, samples: usize) -> (Latency, Latency) {
    let selection = sample_selection(net, samples, placing_in_region).await;
    let floor = sample_calls::<Ping>(net, samples, |_| ()).await;
    (selection, floor)
}

/// Nodes besides the aging one in the chain-age stage: what it selects
/// among and assigns to.
const CHAIN_AGE_PEERS: usize = 8;

/// A node's own calls as its source chain grows. One conductor holds the
/// aging node and [`CHAIN_AGE_PEERS`] others; the node places one-shard
/// contents of its own on the others (five records each, the writes a
/// publishing node makes) until its chain reaches each length of
/// `--chain-age`, and its calls are sampled there.
async fn bench_chain_age(a: &Args, report: &mut Report) {
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
async fn bench_age(a: &Args, report: &mut Report) {
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

/// Custodians of the custody-held stage: more than a selection confirms
/// (its limit of 6 and two more), all in one placement set.
const CUSTODY_HELD_NODES: usize = 10;

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
async fn bench_custody_held(a: &Args, report: &mut Report) {
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

fn content(len: usize, seed: u8) -> Vec<u8> {
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed as u64).fill_bytes(&mut bytes);
    bytes
}

async fn bench_custody(a: &Args, report: &mut Report) {
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
            let bytes = content((mib as usize) << 20, (round * 3 + s) as u8);
            let path = net.dirs[owner]
                .path()
                .join(format!("bench-{mib}-{strategy}"));
            std::fs::write(&path, &bytes).unwrap();
            drop(bytes);
            let t = Instant::now();
            let r = net
                .node(owner)
                .custody
                .publish(
                    PublishRequest {
                        path: path.clone(),
                        strategy: Some(strategy.to_string()),
                        k: Some(*k),
                        n: Some(*nn),
                        reach: Some("public".into()),
                        ..Default::default()
                    },
                    &|_| {},
                )
                .await
                .unwrap_or_else(|e| panic!("publishing {mib} MiB {strategy}: {e}"));
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

fn print_table(r: &Report) {
    println!("\n## Elohim benchmark ({} cores)\n", r.machine_cores);
    if let Some(l) = &r.registration {
        println!("| measure | p50 | p99 | max | samples |\n| --- | --- | --- | --- | --- |");
        println!(
            "| register_node ({} agents, {} conductors) | {} ms | {} ms | {} ms | {} |",
            r.agents, r.conductors, l.p50_ms, l.p99_ms, l.max_ms, l.samples
        );
        if let Some(h) = &r.heartbeat {
            println!(
                "| heartbeat zome call | {} ms | {} ms | {} ms | {} |",
                h.call.p50_ms, h.call.p99_ms, h.call.max_ms, h.call.samples
            );
        }
        for g in &r.registry_growth {
            for (what, l) in [
                (
                    "one region, limit 6 (publishing)",
                    &g.get_available_custodians_region_limit6,
                ),
                (
                    "any region, limit 6",
                    &g.get_available_custodians_any_region_limit6,
                ),
                ("full listing, no limit", &g.get_available_custodians),
            ] {
                println!(
                    "| get_available_custodians, {what}, {} registered ({} present) | {} ms | {} ms | {} ms | {} |",
                    g.registered, g.visible, l.p50_ms, l.p99_ms, l.max_ms, l.samples
                );
            }
            let f = &g.call_floor;
            println!(
                "| empty zome call (ping), {} registered | {} ms | {} ms | {} ms | {} |",
                g.registered, f.p50_ms, f.p99_ms, f.max_ms, f.samples
            );
        }
    }
    if let Some(h) = &r.heartbeat {
        println!(
            "\nPer heartbeat: {:.1} source-chain records, {:.0} bytes, {:.1} DHT ops published; \
             plus four presence links ({:.0} bytes each) per failure window.\n\
             Per node per day at one beat every 30 s ({} beats) and the default 60 s window: \
             {:.0} records, {:.2} MiB, {:.0} ops (before DHT replication).",
            h.records_per_beat,
            h.bytes_per_beat,
            h.ops_per_beat,
            h.presence_link_bytes,
            h.beats_per_day_at_30s,
            h.records_per_node_per_day,
            h.bytes_per_node_per_day / 1048576.0,
            h.ops_per_node_per_day
        );
    }
    if !r.chain_age.is_empty() {
        println!(
            "\nA node's own calls as its source chain grows (p50 / p99):\n\n\
             | records on its chain | empty call | selection, one region, limit 6 | \
             the same from a young neighbour | assign_custodian |\n\
             | --- | --- | --- | --- | --- |"
        );
        for c in &r.chain_age {
            let ms = |l: &Latency| format!("{} / {} ms", l.p50_ms, l.p99_ms);
            println!(
                "| {} | {} | {} | {} | {} |",
                c.chain_records,
                ms(&c.ping),
                ms(&c.get_available_custodians_region_limit6),
                ms(&c.young_neighbour_selection),
                c.assign_custodian.as_ref().map(ms).unwrap_or_default()
            );
        }
    }
    if !r.custody_held.is_empty() {
        println!(
            "\nSelection over {CUSTODY_HELD_NODES} beating custodians as they hold more (p50 / p99):\n\n\
             | contents a custodian | just written (recent links) | empty call | \
             once in their totals | empty call | waited |\n\
             | --- | --- | --- | --- | --- | --- |"
        );
        for c in &r.custody_held {
            let ms = |l: &Latency| format!("{} / {} ms", l.p50_ms, l.p99_ms);
            let t = c.totalled.as_ref();
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                c.contents_per_node,
                ms(&c.get_available_custodians_region_limit6),
                ms(&c.ping),
                t.map(|t| ms(&t.get_available_custodians_region_limit6))
                    .unwrap_or_default(),
                t.map(|t| ms(&t.ping)).unwrap_or_default(),
                t.map(|t| format!("{:.0} s", t.waited_secs))
                    .unwrap_or_default()
            );
        }
    }
    if !r.repairs.is_empty() {
        println!(
            "\nCustody: {} nodes, heartbeat {} s, failure window {} s, grace {} s, detection every {} s\n",
            r.nodes, r.heartbeat_secs, r.failure_window_secs, r.grace_secs, r.detect_interval_secs
        );
        println!("| content | strategy | failure detected | shard rebuilt on a new custodian |\n| --- | --- | --- | --- |");
        for x in &r.repairs {
            println!(
                "| {} MiB | {} {}-of-{} | {:.1} s | {:.1} s |",
                x.content_mib, x.strategy, x.k, x.n, x.detection_secs, x.repair_secs
            );
        }
    }
    println!("\nTotal {:.0} s.", r.total_secs);
}

/// Writes the report as JSON, or exits saying why not.
fn write_report(report: &Report, out: &std::path::Path) {
    let json = serde_json::to_string_pretty(report).expect("the report serializes");
    if let Err(e) = std::fs::write(out, json) {
        eprintln!("elohim-bench: writing {}: {e}", out.display());
        std::process::exit(1);
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--worker") {
        run_worker(&argv[2..]).await;
        return;
    }
    let a = parse_args();
    let started = Instant::now();
    let mut report = Report {
        machine_cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        ..Default::default()
    };
    if !a.skip_registry {
        bench_registry(&a, &mut report).await;
    }
    if !a.chain_age.is_empty() {
        bench_chain_age(&a, &mut report).await;
    }
    if !a.custody_held.is_empty() {
        bench_custody_held(&a, &mut report).await;
    }
    if !a.age_days.is_empty() {
        bench_age(&a, &mut report).await;
    }
    if !a.skip_custody {
        bench_custody(&a, &mut report).await;
    }
    report.total_secs = started.elapsed().as_secs_f64();
    print_table(&report);
    write_report(&report, &a.out);
    eprintln!("wrote {}", a.out.display());
}
