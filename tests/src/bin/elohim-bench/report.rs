//! The figures: what each stage measures, as the JSON report (`--out`)
//! records it (and `elohim-sim compare --bench` reads it), and the table
//! printed at the end.

use serde::Serialize;
use std::time::Duration;

use crate::stages::custody_held::CUSTODY_HELD_NODES;

/// Milliseconds at the given percentiles of some samples.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn latency(mut d: Vec<Duration>) -> Latency {
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
pub struct GrowthPoint {
    pub registered: usize,
    pub visible: usize,
    /// No filter, no limit: the full listing of every present node.
    pub get_available_custodians: Latency,
    /// What publishing asks: one region, six custodians, placed by content.
    pub get_available_custodians_region_limit6: Latency,
    /// Six custodians from any region.
    pub get_available_custodians_any_region_limit6: Latency,
    /// A zome call that does nothing (`ping`): the conductor's floor under
    /// every call above, at the same moment.
    pub call_floor: Latency,
    /// Resident memory of the benchmark (all conductors) at this point.
    pub rss_mib: u64,
    /// Time since the first registration.
    pub elapsed_secs: f64,
    /// Ops the DHT-holding conductors had not yet validated and integrated
    /// when sampling began (after waiting for them to drain, see
    /// [`await_integrated`](crate::measure::await_integrated)).
    pub pending_ops: usize,
    /// How long that wait took.
    pub integrate_wait_secs: f64,
    /// Cores this process used in the five seconds before sampling, with
    /// no call running: the conductors' background work (gossip,
    /// validation) that competes with the selections for this machine's
    /// two cores.
    pub background_cores: f64,
}

/// Selection when the candidates already hold content: what a custodian
/// holds is read to know its room, so this shows whether that read grows
/// with what the network stores.
#[derive(Debug, Clone, Serialize)]
pub struct CustodyLoadPoint {
    /// Contents (one shard each) every registered node holds (published by
    /// an agent of another conductor).
    pub contents_per_node: usize,
    /// Assignments in the registry.
    pub assignments: usize,
    /// As `GrowthPoint::get_available_custodians_region_limit6`.
    pub get_available_custodians_region_limit6: Latency,
    /// An empty call sampled just after: the conductor's floor at this
    /// load, so a slower selection can be told from a slower conductor.
    pub ping: Latency,
    /// How long writing this level's assignments took, per assignment.
    pub assign_ms: f64,
    /// As `GrowthPoint::background_cores`.
    pub background_cores: f64,
    /// The background before any load was written: what "settled" means.
    pub background_cores_before_load: f64,
    /// The same selection sampled again once the background had settled,
    /// when it had not before the first sampling: tells a busy machine
    /// from a selection that costs more.
    pub settled: Option<SettledSample>,
}

/// A selection sampled after waiting for the conductors' background work
/// to fall back to what it was before the load (see
/// [`await_settled`](crate::measure::await_settled)).
#[derive(Debug, Clone, Serialize)]
pub struct SettledSample {
    /// How long the wait took (at most
    /// [`SETTLE_LIMIT`](crate::measure::SETTLE_LIMIT)).
    pub waited_secs: f64,
    /// The background when sampling began.
    pub background_cores: f64,
    /// As `CustodyLoadPoint::get_available_custodians_region_limit6`.
    pub get_available_custodians_region_limit6: Latency,
    /// As `CustodyLoadPoint::ping`.
    pub ping: Latency,
}

/// A node's own calls as its source chain grows: a node writes every
/// heartbeat, assignment and attestation to its own chain, so this is the
/// cost of the same calls on an older node.
#[derive(Debug, Clone, Serialize)]
pub struct ChainAgePoint {
    /// Records on the node's source chain when sampled.
    pub chain_records: usize,
    /// An empty call (`ping`).
    pub ping: Latency,
    /// Publishing's selection (one region, limit 6), over the other nodes.
    pub get_available_custodians_region_limit6: Latency,
    /// The same selection asked by another agent of the same conductor,
    /// whose chain stays short: whether a node could keep its reads fast by
    /// making them through a young agent.
    pub young_neighbour_selection: Latency,
    /// A write: the assignments that grew the chain to this length (five
    /// records each), as timed while writing them.
    pub assign_custodian: Option<Latency>,
}

/// Selection over custodians that hold more and more content and keep
/// beating, so they publish totals of their custody (see
/// `registry_core::committed`).
#[derive(Debug, Clone, Serialize)]
pub struct CustodyHeldPoint {
    /// Contents (one shard each) every custodian holds.
    pub contents_per_node: usize,
    /// Publishing's selection (one region, limit 6) just after the load was
    /// written: the load is still in the custodians' recent-custody links.
    pub get_available_custodians_region_limit6: Latency,
    /// An empty call sampled just after.
    pub ping: Latency,
    /// The same once every custodian's published total has the load and
    /// readers no longer read the buckets it was linked in.
    pub totalled: Option<SettledSample>,
}

/// A node's own writes at an age: its chains hold what the record model
/// (`registry_core::budget`) says the shipped defaults write in `days`.
#[derive(Debug, Clone, Serialize)]
pub struct AgePoint {
    /// Days of steady state at the defaults.
    pub days: u32,
    /// The first age measured again after the others (a control for what
    /// the conductor's growing store costs every call).
    pub control: bool,
    /// Records on the identity's chain when sampling began.
    pub identity_records: usize,
    /// Records on the working agent's chain when sampling began (the
    /// fullest its epoch gets: working keys are replaced every epoch).
    pub working_records: usize,
    /// A lease renewal through the working agent (a status change each
    /// time, so each writes its record).
    pub heartbeat: Latency,
    /// An assignment through the identity (what publishing writes).
    pub assign_custodian: Latency,
    /// An empty call through the working agent.
    pub ping: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatCost {
    pub call: Latency,
    pub records_per_beat: f64,
    pub bytes_per_beat: f64,
    pub ops_per_beat: f64,
    pub presence_link_bytes: f64,
    pub beats_per_day_at_30s: u32,
    pub records_per_node_per_day: f64,
    pub bytes_per_node_per_day: f64,
    pub ops_per_node_per_day: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairRow {
    pub content_mib: u64,
    pub strategy: String,
    pub k: u32,
    pub n: u32,
    pub detection_secs: f64,
    pub repair_secs: f64,
}

/// One publish and retrieve of the throughput stage.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    pub content_mib: u64,
    pub strategy: String,
    pub k: u32,
    pub n: u32,
    /// Whether every conductor was kept busy with selections meanwhile.
    pub busy: bool,
    /// Content bytes published per second (until every shard was delivered
    /// and made durable by its custodian), MB/s.
    pub publish_content_mb_s: f64,
    /// Shard bytes custodians wrote per second during the publish, MB/s.
    pub publish_shard_mb_s: f64,
    /// `publish_shard_mb_s` over the disk's fsync'd write speed.
    pub publish_vs_disk: f64,
    /// Content bytes retrieved (fetched, decoded, verified, written) per
    /// second, MB/s.
    pub retrieve_content_mb_s: f64,
    /// `retrieve_content_mb_s` over the disk's fsync'd write speed.
    pub retrieve_vs_disk: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    // The fields `elohim-sim compare --bench` reads (erasure 4-of-6 rows).
    pub nodes: u32,
    pub heartbeat_secs: f64,
    pub failure_window_secs: f64,
    pub grace_secs: f64,
    pub detect_interval_secs: f64,
    pub detection_secs: Vec<f64>,
    pub repair_secs: Vec<f64>,
    pub content_bytes: u64,
    pub strategy: String,
    pub k: u32,
    pub n: u32,
    // Everything measured.
    pub machine_cores: usize,
    pub agents: usize,
    pub conductors: usize,
    /// Gossip interval of the DHT-holding conductors, ms.
    pub holder_gossip_ms: u32,
    pub registration: Option<Latency>,
    pub registry_growth: Vec<GrowthPoint>,
    pub heartbeat: Option<HeartbeatCost>,
    pub custody_load: Vec<CustodyLoadPoint>,
    pub chain_age: Vec<ChainAgePoint>,
    pub custody_held: Vec<CustodyHeldPoint>,
    pub age: Vec<AgePoint>,
    pub repairs: Vec<RepairRow>,
    /// The disk's write speed with an fsync at the end, MB/s, measured in
    /// the throughput stage's run.
    pub disk_fsync_mb_s: Option<f64>,
    /// The bandwidth the throughput stage's nodes declared, Mbit/s (None:
    /// the most a registration may, serving unpaced).
    pub throughput_bandwidth_mbps: Option<u32>,
    pub throughput: Vec<ThroughputRow>,
    pub build: String,
    pub total_secs: f64,
}

pub fn print_table(r: &Report) {
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
    if let Some(disk) = r.disk_fsync_mb_s {
        println!(
            "\n| throughput ({} build; disk, fsync'd: {disk:.0} MB/s{}) | publish content MB/s | publish shard MB/s / disk | retrieve MB/s | retrieve / disk |\n| --- | --- | --- | --- | --- |",
            r.build,
            r.throughput_bandwidth_mbps
                .map(|m| format!("; nodes serve at {m} Mbit/s"))
                .unwrap_or_default()
        );
        for t in &r.throughput {
            println!(
                "| {} MiB {} {}-of-{}{} | {:.1} | {:.2} | {:.1} | {:.2} |",
                t.content_mib,
                t.strategy,
                t.k,
                t.n,
                if t.busy { ", conductors busy" } else { "" },
                t.publish_content_mb_s,
                t.publish_vs_disk,
                t.retrieve_content_mb_s,
                t.retrieve_vs_disk
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
pub fn write_report(report: &Report, out: &std::path::Path) {
    let json = serde_json::to_string_pretty(report).expect("the report serializes");
    if let Err(e) = std::fs::write(out, json) {
        eprintln!("elohim-bench: writing {}: {e}", out.display());
        std::process::exit(1);
    }
}
