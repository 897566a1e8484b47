//! `elohim-bench` (run by `cargo xtask bench`): measures the real system on a
//! local network of conductors, and prints a table and a JSON report.
//!
//! Five parts:
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
//!   shards is rebuilt on a new custodian is measured;
//! - throughput (`--throughput-mib`): four sidecars publish and retrieve
//!   content of each strategy, idle and with the conductors busy, as MB/s
//!   and as ratios to the disk's fsync'd write speed in the same run.
//!
//! Figures come from a shared 2-core machine: read them as orders of
//! magnitude, compare runs on one machine, never assert on them.
//!
//! Laid out as `args` (the flags), `worker` (the registry stage's worker
//! processes), `measure` (timing, sampling, settling), `stages/` (one file
//! per stage) and `report` (the figures, the table and the JSON).

mod args;
mod measure;
mod report;
mod stages;
mod worker;

use std::time::Instant;

use crate::args::parse_args;
use crate::report::{print_table, write_report, Report};
use crate::stages::age::bench_age;
use crate::stages::chain_age::bench_chain_age;
use crate::stages::custody::bench_custody;
use crate::stages::custody_held::bench_custody_held;
use crate::stages::registry::bench_registry;
use crate::stages::throughput::bench_throughput;
use crate::worker::run_worker;

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
    if !a.throughput_mib.is_empty() {
        bench_throughput(&a, &mut report).await;
    }
    if !a.skip_custody {
        bench_custody(&a, &mut report).await;
    }
    report.total_secs = started.elapsed().as_secs_f64();
    print_table(&report);
    write_report(&report, &a.out);
    eprintln!("wrote {}", a.out.display());
}
