//! Worker processes: the registry stage's nodes come in waves, each on a
//! conductor in a process of its own (this binary run with `--worker`), so
//! the registry can grow past what one process can hold. Both sides are
//! here: [`Worker`] starts one and talks to it, [`run_worker`] is what it
//! runs; and how a conductor learns of the other's agents.

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::*;
use std::time::{Duration, Instant};

use crate::measure::register_and_beat;

/// How often the conductors of the registry benchmark ask the bootstrap
/// server for peers at most: workers in other processes are found only
/// through it.
pub const BOOTSTRAP_POLL_MS: u32 = 1000;

/// A worker process hosting one wave of nodes (see the crate doc).
pub struct Worker {
    child: tokio::process::Child,
    /// Registration and first-heartbeat latency of each of its nodes.
    pub timings: Vec<(Duration, Duration)>,
}

impl Worker {
    /// Starts a worker whose `count` agents register as nodes `n{first}`
    /// onwards and beat once, and waits until they have.
    pub async fn start(
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
    pub async fn stop(mut self) {
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
pub async fn reachable_in(
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
pub async fn run_worker(args: &[String]) {
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
