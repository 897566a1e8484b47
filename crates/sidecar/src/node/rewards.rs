//! Shefa service summaries: what this node served each receiver, recorded
//! once per period instead of once per request, and the acknowledgements it
//! owes for what it received.
//!
//! A custodian adds every shard it serves to the ledger of its receiver;
//! the `rewards` worker turns each receiver's ledger into one service event
//! (at most [`SHARDS_PER_EVENT`] shards each) and empties it. A receiver
//! adds every shard it fetched and verified to the ledger of its provider,
//! and acknowledges an event naming it only when every shard the event
//! lists is in that ledger and the bytes claimed are no more than it got.
//! Both ledgers live in the data directory, so a restart loses nothing.
//! They are written (owner-only, synced) by the ledger's own saver thread,
//! the newest state each time, so serving a shard never waits on a disk
//! sync and a burst of shards costs one write, not one each.

use crate::node::agent::NodeAgent;
use holochain_types::prelude::AgentPubKey;
use node_registry_integrity::zome_fns::{
    AcknowledgeService, GetPendingServiceEvents, RecordServiceEvent,
};
use node_registry_integrity::{AcknowledgeServiceInput, RecordServiceInput, ServiceEventView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// Most shards one service event lists (the DNA's limit).
pub const SHARDS_PER_EVENT: usize = 64;

/// What was served to (or received from) one peer since the last summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Tally {
    shards: BTreeMap<String, u64>,
}

impl Tally {
    fn bytes(&self) -> u64 {
        self.shards.values().copied().fold(0, u64::saturating_add)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledgers {
    /// By receiver (base64 agent key).
    served: BTreeMap<String, Tally>,
    /// By provider node id.
    received: BTreeMap<String, Tally>,
}

/// The two ledgers, and the thread that keeps them on disk.
pub struct Rewards {
    ledgers: Mutex<Ledgers>,
    saver: Arc<Saver>,
    saving: Option<std::thread::JoinHandle<()>>,
}

/// The newest ledger state not yet written, and the saver's wake-up.
struct Saver {
    path: PathBuf,
    pending: Mutex<SaverState>,
    wake: Condvar,
}

#[derive(Default)]
struct SaverState {
    newest: Option<Vec<u8>>,
    stopping: bool,
}

impl Saver {
    /// Writes the newest pending state until told to stop, then what is
    /// left.
    fn run(&self) {
        loop {
            let (bytes, stopping) = {
                let mut st = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                while st.newest.is_none() && !st.stopping {
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                (st.newest.take(), st.stopping)
            };
            if let Some(b) = bytes {
                if let Err(e) = crate::datadir::write_private(&self.path, &b) {
                    tracing::warn!("could not save the rewards ledger: {e}");
                }
            }
            if stopping {
                let mut st = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(b) = st.newest.take() {
                    if let Err(e) = crate::datadir::write_private(&self.path, &b) {
                        tracing::warn!("could not save the rewards ledger: {e}");
                    }
                }
                return;
            }
        }
    }
}

impl Drop for Rewards {
    fn drop(&mut self) {
        if let Ok(mut st) = self.saver.pending.lock() {
            st.stopping = true;
        }
        self.saver.wake.notify_all();
        if let Some(t) = self.saving.take() {
            let _ = t.join();
        }
    }
}

impl Rewards {
    /// Opens the ledgers kept in `data_dir` (empty on first start).
    pub fn open(data_dir: &Path) -> Self {
        let path = data_dir.join("rewards-ledger.json");
        let ledgers = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let saver = Arc::new(Saver {
            path,
            pending: Mutex::new(SaverState::default()),
            wake: Condvar::new(),
        });
        let thread_saver = saver.clone();
        let saving = std::thread::Builder::new()
            .name("rewards-ledger".into())
            .spawn(move || thread_saver.run())
            .map_err(|e| tracing::warn!("no saver thread for the rewards ledger: {e}"))
            .ok();
        Rewards {
            ledgers: Mutex::new(ledgers),
            saver,
            saving,
        }
    }

    /// Hands the ledgers' new state to the saver (written at once when no
    /// thread could be started).
    fn save(&self, l: &Ledgers) {
        let bytes = match serde_json::to_vec(l) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("could not save the rewards ledger: {e}");
                return;
            }
        };
        if self.saving.is_none() {
            if let Err(e) = crate::datadir::write_private(&self.saver.path, &bytes) {
                tracing::warn!("could not save the rewards ledger: {e}");
            }
            return;
        }
        self.saver
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .newest = Some(bytes);
        self.saver.wake.notify_one();
    }

    /// This node is serving `bytes` of `shard` to `receiver`.
    pub fn served(&self, receiver: &AgentPubKey, shard: &str, bytes: u64) {
        let mut l = self.ledgers.lock().unwrap();
        let entry = l
            .served
            .entry(receiver.to_string())
            .or_default()
            .shards
            .entry(shard.to_string())
            .or_default();
        *entry = entry.saturating_add(bytes);
        self.save(&l);
    }

    /// This node fetched and verified `bytes` of `shard` from `provider`.
    pub fn received(&self, provider: &str, shard: &str, bytes: u64) {
        let mut l = self.ledgers.lock().unwrap();
        let entry = l
            .received
            .entry(provider.to_string())
            .or_default()
            .shards
            .entry(shard.to_string())
            .or_default();
        *entry = entry.saturating_add(bytes);
        self.save(&l);
    }

    /// Bytes served and not yet summarised, for the metrics and tests.
    pub fn unsummarised_bytes(&self) -> u64 {
        self.ledgers
            .lock()
            .unwrap()
            .served
            .values()
            .map(Tally::bytes)
            .sum()
    }

    /// Records one service event per receiver (per [`SHARDS_PER_EVENT`]
    /// shards) for what was served since the last summary. A receiver whose
    /// event could not be written keeps its ledger for the next round.
    pub async fn flush(&self, agent: &NodeAgent) {
        let pending: Vec<(String, Tally)> = self
            .ledgers
            .lock()
            .unwrap()
            .served
            .iter()
            .map(|(r, t)| (r.clone(), t.clone()))
            .collect();
        for (receiver, tally) in pending {
            let Ok(key) = AgentPubKey::try_from(receiver.as_str()) else {
                self.ledgers.lock().unwrap().served.remove(&receiver);
                continue;
            };
            let shards: Vec<(String, u64)> = tally.shards.into_iter().collect();
            for chunk in shards.chunks(SHARDS_PER_EVENT) {
                let bytes = chunk.iter().map(|(_, b)| *b).fold(0, u64::saturating_add);
                if bytes == 0 {
                    continue;
                }
                let input = RecordServiceInput {
                    receiver: key.clone(),
                    shard_hashes: chunk.iter().map(|(s, _)| s.clone()).collect(),
                    bytes,
                };
                match agent.write_fn::<RecordServiceEvent>(input).await {
                    Ok(_) => {
                        let mut l = self.ledgers.lock().unwrap();
                        if let Some(t) = l.served.get_mut(&receiver) {
                            for (s, _) in chunk {
                                t.shards.remove(s);
                            }
                            if t.shards.is_empty() {
                                l.served.remove(&receiver);
                            }
                        }
                        self.save(&l);
                    }
                    Err(e) => {
                        tracing::warn!("could not record the service summary for {receiver}: {e}");
                        break;
                    }
                }
            }
        }
    }

    /// Acknowledges the events naming this node that its ledger covers:
    /// every listed shard received from that provider, and no more bytes
    /// claimed than received. What an acknowledgement covers leaves the
    /// ledger.
    pub async fn acknowledge(&self, agent: &NodeAgent) {
        let events: Vec<ServiceEventView> = match agent
            .read_fn::<GetPendingServiceEvents>(agent.agent().clone())
            .await
        {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!("reading service events to acknowledge: {e}");
                return;
            }
        };
        for v in events {
            let e = &v.event;
            let covered = {
                let l = self.ledgers.lock().unwrap();
                l.received.get(&e.provider_node_id).is_some_and(|t| {
                    let got: u64 = e
                        .shard_hashes
                        .iter()
                        .map(|s| t.shards.get(s).copied())
                        .try_fold(0u64, |acc, b| b.map(|b| acc.saturating_add(b)))
                        .unwrap_or(0);
                    e.shard_hashes.iter().all(|s| t.shards.contains_key(s)) && e.bytes <= got
                })
            };
            if !covered {
                continue;
            }
            let input = AcknowledgeServiceInput {
                event: v.event_hash.clone(),
                shard_hashes: e.shard_hashes.clone(),
                bytes: e.bytes,
            };
            match agent.write_fn::<AcknowledgeService>(input).await {
                Ok(_) => {
                    agent.metrics.service_acks.inc();
                    let listed: BTreeSet<&String> = e.shard_hashes.iter().collect();
                    let mut l = self.ledgers.lock().unwrap();
                    if let Some(t) = l.received.get_mut(&e.provider_node_id) {
                        t.shards.retain(|s, _| !listed.contains(s));
                    }
                    self.save(&l);
                }
                Err(err) => tracing::debug!("acknowledging {}: {err}", v.event_hash),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledgers_sum_per_peer_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let r = Rewards::open(dir.path());
        let bob = AgentPubKey::from_raw_32(vec![2; 32]);
        r.served(&bob, &"aa".repeat(32), 100);
        r.served(&bob, &"aa".repeat(32), 50);
        r.served(&bob, &"bb".repeat(32), 7);
        r.received("alice-0101010101010101", &"cc".repeat(32), 9);
        assert_eq!(r.unsummarised_bytes(), 157);
        // A restart: the saver writes what is pending before it stops.
        drop(r);
        let again = Rewards::open(dir.path());
        assert_eq!(again.unsummarised_bytes(), 157, "kept on disk");
        let l = again.ledgers.lock().unwrap();
        assert_eq!(l.served[&bob.to_string()].shards.len(), 2);
        assert_eq!(l.received["alice-0101010101010101"].bytes(), 9);
    }
}
