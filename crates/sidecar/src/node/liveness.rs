//! Liveness without records: this node beats to its monitors, and watches
//! the nodes that beat to it (see `registry_core::monitor`).
//!
//! Beats are direct signals from the identity agent (`SendDirectSignal`):
//! no wasm and no source chain on either side, nothing written. Beats from
//! a node that heartbeats through the zome instead (a Doorway) arrive as
//! the DNA's `Beat` signal. Either way the sender's key must own the node id
//! it beats for. The monitor probes a node silent for a failure window (its
//! sidecar's `/ping`, or for a node without one a remote call through the
//! reader agent; neither writes anything), and records a verdict through the
//! working agent only when what it believes differs from what it last
//! recorded. A node whose sidecar stopped but whose conductor still answers
//! is suspected here; whoever repairs it probes its conductor first.

use crate::node::agent::NodeAgent;
use crate::registry::conductor::ConductorError;
use holochain_types::prelude::{DnaHash, Timestamp};
use holochain_types::signal::Signal;
use node_registry_integrity::zome_fns::{
    AttestHealth, GetNode, GetPresentNodes, GetSuspicions, ProbeNode,
};
use node_registry_integrity::*;
use registry_core::monitor::{monitors_of, MonitorAction, MonitorBook, MonitorPolicy, Verdict};
use registry_core::node_id::check_node_id_owner;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Who this node beats to now, and who it just stopped beating to (they
/// get one more beat, which releases them).
#[derive(Default)]
struct Monitors {
    current: Vec<PresentNode>,
    released: Vec<PresentNode>,
}

/// One verdict as `monitor-verdicts.json` keeps it.
#[derive(Serialize, Deserialize)]
struct SavedVerdict {
    subject: String,
    verdict: Verdict,
    at_micros: i64,
}

/// This node's side of liveness: its monitors and its monitor book.
pub struct Liveness {
    agent: Arc<NodeAgent>,
    book: Mutex<MonitorBook>,
    monitors: Mutex<Monitors>,
    saved: PathBuf,
    probe_timeout: Duration,
    /// Where each watched node's sidecar answers, as its registration says.
    endpoints: Mutex<std::collections::HashMap<String, Option<String>>>,
    http: reqwest::Client,
}

impl Liveness {
    /// The liveness of `agent`'s node, with the verdicts it recorded before
    /// a restart (so it does not record them again).
    pub fn new(agent: Arc<NodeAgent>) -> Self {
        let window = agent.config().custody.failure_window_secs;
        let policy = MonitorPolicy::new(window, agent.properties.verdict_period());
        let mut book = MonitorBook::new(agent.node_id.clone(), policy);
        let saved = agent
            .config()
            .conductor
            .data_dir
            .join("monitor-verdicts.json");
        if let Ok(text) = std::fs::read_to_string(&saved) {
            if let Ok(list) = serde_json::from_str::<Vec<SavedVerdict>>(&text) {
                for v in list {
                    book.load_recorded(&v.subject, v.verdict, v.at_micros);
                }
            }
        }
        let probe_timeout = Duration::from_secs((window as u64 / 2).clamp(2, 20));
        Liveness {
            probe_timeout,
            agent,
            book: Mutex::new(book),
            monitors: Mutex::new(Monitors::default()),
            saved,
            endpoints: Mutex::new(std::collections::HashMap::new()),
            http: reqwest::Client::builder()
                .timeout(probe_timeout)
                .build()
                .expect("a default HTTP client builds"),
        }
    }

    /// The nodes watched now, with the verdict about each.
    pub fn watched(&self) -> Vec<(String, Verdict)> {
        self.book.lock().unwrap().watched()
    }

    /// The node ids this node beats to now.
    pub fn monitors(&self) -> Vec<String> {
        self.monitors
            .lock()
            .unwrap()
            .current
            .iter()
            .map(|m| m.node_id.clone())
            .collect()
    }

    /// Re-reads who is present (through the reader) and picks this node's
    /// monitors among the watchers of its region (all regions when it has
    /// too few), as `registry_core::monitor::monitors_of` ranks them.
    pub async fn refresh_monitors(&self) -> Result<(), ConductorError> {
        let present: Vec<PresentNode> = self.agent.read_fn::<GetPresentNodes>(None).await?;
        let watchers: Vec<PresentNode> = present.into_iter().filter(|p| p.watcher).collect();
        let region = &self.agent.config().node.region;
        let k = self.agent.config().peers.monitors as usize;
        let local: Vec<PresentNode> = watchers
            .iter()
            .filter(|p| p.region == *region)
            .cloned()
            .collect();
        let pool = if local.len() > k { local } else { watchers };
        let chosen = monitors_of(
            &self.agent.node_id,
            pool.iter().map(|p| p.node_id.as_str()),
            k,
        );
        let next: Vec<PresentNode> = pool
            .into_iter()
            .filter(|p| chosen.contains(&p.node_id))
            .collect();
        let mut m = self.monitors.lock().unwrap();
        let dropped: Vec<PresentNode> = m
            .current
            .iter()
            .filter(|old| !next.iter().any(|n| n.node_id == old.node_id))
            .cloned()
            .collect();
        m.released.extend(dropped);
        m.current = next;
        Ok(())
    }

    /// Sends one beat to this node's monitors (and a last one to those it
    /// just let go, which names them no more).
    pub async fn beat(&self) -> Result<(), ConductorError> {
        let (agents, monitors) = {
            let mut m = self.monitors.lock().unwrap();
            let mut agents: Vec<_> = m.current.iter().map(|p| p.agent.clone()).collect();
            agents.extend(m.released.drain(..).map(|p| p.agent));
            let ids: Vec<String> = m.current.iter().map(|p| p.node_id.clone()).collect();
            (agents, ids)
        };
        if agents.is_empty() {
            return Ok(());
        }
        let beat = LivenessBeat {
            node_id: self.agent.node_id.clone(),
            sent_at: Timestamp::now(),
            monitors,
        };
        let payload = holochain_serialized_bytes::encode(&beat)
            .map_err(|e| ConductorError::api("encode a beat", e.to_string()))?;
        let conn = self.agent.connection().await?;
        let dna: DnaHash = conn.cell_id.dna_hash().clone();
        let sent = conn
            .app
            .send_direct_signal(dna, agents, payload, None)
            .await
            .map_err(crate::registry::conductor::api("send direct signal"));
        if let Err(e) = &sent {
            // A dead websocket also stops this node hearing beats: reopen
            // it (and its signal handler) before the next call.
            if e.is_connection_lost() {
                self.agent.reconnect_identity();
            }
        }
        sent
    }

    /// Takes in a signal the identity's websocket received: a beat, by
    /// direct signal or relayed by the DNA, from a key that owns the node
    /// it beats for. Anything else is ignored here.
    pub fn on_signal(&self, signal: &Signal) {
        let (beat, from) = match signal {
            Signal::AppDirect {
                from_agent, signal, ..
            } => match holochain_serialized_bytes::decode::<_, LivenessBeat>(signal) {
                Ok(b) => (b, from_agent.clone()),
                Err(_) => return,
            },
            Signal::App { signal, .. } => {
                match signal.clone().into_inner().decode::<RegistrySignal>() {
                    Ok(RegistrySignal::Beat { beat, from }) => (beat, from),
                    _ => return,
                }
            }
            _ => return,
        };
        if check_node_id_owner(&beat.node_id, from.get_raw_32()).is_err() {
            tracing::debug!(
                "dropped a beat for {} from a key that does not own it",
                beat.node_id
            );
            return;
        }
        self.book
            .lock()
            .unwrap()
            .beat(&beat.node_id, &beat.monitors, crate::clock::unix_micros());
    }

    /// Reads the region's suspicions and answers those of nodes this node
    /// hears fine with a fresh `alive` verdict (at the next tick).
    pub async fn scan_suspicions(&self) -> Result<(), ConductorError> {
        let region = self.agent.config().node.region.clone();
        let seen: Vec<SuspicionView> = self.agent.read_fn::<GetSuspicions>(Some(region)).await?;
        let mut book = self.book.lock().unwrap();
        for s in seen
            .iter()
            .filter(|s| s.suspected && s.attester != self.agent.node_id)
        {
            book.foreign_suspicion(&s.subject, s.recorded_at.as_micros());
        }
        Ok(())
    }

    /// One tick of the monitor: probes and verdict writes the book asks
    /// for, each in its own task.
    pub fn tick(self: &Arc<Self>) {
        let actions = self.book.lock().unwrap().tick(crate::clock::unix_micros());
        for action in actions {
            let me = self.clone();
            tokio::spawn(async move { me.act(action).await });
        }
    }

    /// Where `subject`'s sidecar answers, read from its registration once.
    async fn endpoint_of(&self, subject: &str) -> Option<String> {
        if let Some(known) = self.endpoints.lock().unwrap().get(subject) {
            return known.clone();
        }
        let reg: Option<RegisteredNode> = self
            .agent
            .read_fn::<GetNode>(subject.to_string())
            .await
            .ok()?;
        let endpoint = reg.and_then(|r| r.registration.endpoint);
        self.endpoints
            .lock()
            .unwrap()
            .insert(subject.to_string(), endpoint.clone());
        endpoint
    }

    /// Whether `subject` answers now: its sidecar's `/ping`, or, for a node
    /// that runs none, a remote call to its conductor.
    async fn probe(&self, subject: &str) -> bool {
        if let Some(ep) = self.endpoint_of(subject).await {
            let url = format!("{}/ping", ep.trim_end_matches('/'));
            let answered = matches!(
                self.http.get(url).send().await,
                Ok(r) if r.status().is_success()
            );
            if !answered {
                // It may have moved: read its registration again next time.
                self.endpoints.lock().unwrap().remove(subject);
            }
            return answered;
        }
        match tokio::time::timeout(
            self.probe_timeout,
            self.agent.read_fn::<ProbeNode>(subject.to_string()),
        )
        .await
        {
            Ok(Ok(p)) => p.answered,
            Ok(Err(e)) => {
                tracing::debug!("probing {subject}: {e}");
                false
            }
            Err(_) => false,
        }
    }

    async fn act(&self, action: MonitorAction) {
        match action {
            MonitorAction::Probe { subject } => {
                let answered = self.probe(&subject).await;
                self.book.lock().unwrap().probe_result(
                    &subject,
                    answered,
                    crate::clock::unix_micros(),
                );
            }
            MonitorAction::Record {
                subject,
                verdict,
                last_seen_micros,
            } => {
                let now = Timestamp::now();
                let att = HealthAttestation {
                    attester_node_id: self.agent.node_id.clone(),
                    subject_node_id: subject.clone(),
                    success: verdict.success(),
                    response_time_ms: 0,
                    timestamp: now,
                    last_seen: Some(Timestamp::from_micros(
                        last_seen_micros.min(now.as_micros()),
                    )),
                    delegation: None,
                };
                match self.agent.write_fn::<AttestHealth>(att).await {
                    Ok(_) => {
                        if verdict == Verdict::Suspected {
                            tracing::info!(
                                "{subject} is silent and did not answer a probe: suspected"
                            );
                        } else {
                            tracing::debug!("recorded {subject} alive");
                        }
                        let saved = {
                            let mut book = self.book.lock().unwrap();
                            book.recorded(&subject, verdict, now.as_micros());
                            book.recorded_verdicts()
                        };
                        self.save(saved);
                    }
                    Err(e) => {
                        tracing::warn!("recording a verdict about {subject}: {e}");
                        self.book.lock().unwrap().record_failed(&subject);
                    }
                }
            }
        }
    }

    fn save(&self, verdicts: Vec<(String, Verdict, i64)>) {
        let list: Vec<SavedVerdict> = verdicts
            .into_iter()
            .map(|(subject, verdict, at_micros)| SavedVerdict {
                subject,
                verdict,
                at_micros,
            })
            .collect();
        let written = serde_json::to_vec(&list)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::datadir::write_private(&self.saved, &bytes));
        if let Err(e) = written {
            tracing::warn!("could not save the monitor's verdicts: {e}");
        }
    }
}
