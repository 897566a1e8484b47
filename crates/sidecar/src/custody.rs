//! Custody in motion: publishing content as shards to custodians, getting it
//! back, obtaining (rebuilding) a shard this node was assigned, reconciling
//! the store with the DHT, and repairing after a node fails.

use crate::agent::NodeAgent;
use crate::catalog::{Catalog, PublishedContent};
use crate::conductor::ConductorError;
use crate::secret::RecoverySecret;
use crate::store::{ShardMeta, ShardRecord, ShardStore, StoreError};
use crate::transfer::{canonical_request, TransferAuth, TransferError};
use holochain_types::prelude::{EntryHash, Signature, Timestamp};
use node_registry_integrity::zome_fns::{
    AssignCustodian, DetectFailedNodes, GetAssignment, GetAssignmentRecordsForContent,
    GetAssignmentRecordsForNode, GetAvailableCustodians, GetFamilyCustodians, GetNodeOfAgent,
    GetRecoveryStatus, GetRelationships, GetShardHolders, ProbeNode, RetireOutranked, SignTransfer,
};
use node_registry_integrity::*;
use registry_core::assignment::{assignment_id, DecisionSource};
use serde::{Deserialize, Serialize};
use shard_codec::{CodecParams, ContentKey, Decoder, Encoder, Strategy};
use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// What can go wrong moving custody around.
#[derive(Debug, Error)]
pub enum CustodyError {
    /// The conductor failed or refused.
    #[error(transparent)]
    Conductor(#[from] ConductorError),
    /// The shard store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding or decoding failed.
    #[error("codec: {0}")]
    Codec(#[from] shard_codec::CodecError),
    /// Local file trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not enough custodians for the shards.
    #[error("need {needed} custodians, found {found} eligible (opted in, alive, with room, matching region/tier)")]
    NotEnoughCustodians {
        /// Custodians needed (n).
        needed: u32,
        /// Eligible custodians found.
        found: u32,
    },
    /// A peer transfer failed.
    #[error("transfer with {peer}: {detail}")]
    Transfer {
        /// The peer.
        peer: String,
        /// What happened.
        detail: String,
        /// Whether the same request may succeed later (the peer is
        /// unreachable, or asked to be tried again).
        retry_later: bool,
    },
    /// Too few shards could be fetched.
    #[error("content {content_id}: only {got} of the {needed} shards needed could be fetched ({detail})")]
    TooFewShards {
        /// The content.
        content_id: String,
        /// Good shards obtained.
        got: usize,
        /// Shards needed.
        needed: usize,
        /// Why the others failed.
        detail: String,
    },
    /// No live assignment names this content.
    #[error("content {0} has no live custodians")]
    UnknownContent(String),
    /// The content is encrypted with a key this node does not hold.
    #[error("content {0} is encrypted with its owner's key, which this node does not hold")]
    MissingKey(String),
    /// A request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A content id from the DHT or a request is not the canonical form.
    #[error(transparent)]
    InvalidContentId(#[from] crate::ids::InvalidContentId),
    /// A signal asked for work the DHT does not back.
    #[error("signal not acted on: {0}")]
    Hint(String),
}

/// Progress of a long operation, for progress bars.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// hashing, encoding, assigning, pushing, fetching, decoding.
    pub phase: String,
    /// Units done.
    pub done: u64,
    /// Units in total.
    pub total: u64,
}

/// A progress callback.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// What to publish and how.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct PublishRequest {
    /// The file on this machine.
    pub path: PathBuf,
    /// full_replica (default), erasure_coded or threshold_split.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Shards needed to restore.
    #[serde(default)]
    pub k: Option<u32>,
    /// Shards made (custodians).
    #[serde(default)]
    pub n: Option<u32>,
    /// Preferred region of the custodians.
    #[serde(default)]
    pub region: Option<String>,
    /// Lowest acceptable custodian tier.
    #[serde(default)]
    pub min_tier: Option<String>,
    /// intimate, private (default) or public.
    #[serde(default)]
    pub reach: Option<String>,
}

impl PublishRequest {
    /// Refuses what can be refused before any work starts: an unknown
    /// strategy or reach, shard counts the codec does not take, a path that
    /// is not a readable file. The API answers these with a 400 instead of a
    /// progress stream that ends in an error line. Returns the strategy and
    /// the reach, defaults applied.
    pub fn check(&self) -> Result<(Strategy, String), CustodyError> {
        let strategy: Strategy = self
            .strategy
            .as_deref()
            .unwrap_or("full_replica")
            .parse()
            .map_err(|e: shard_codec::CodecError| {
                CustodyError::BadRequest(format!("strategy: {e}"))
            })?;
        let reach = self.reach.clone().unwrap_or_else(|| "private".into());
        if !["intimate", "private", "public"].contains(&reach.as_str()) {
            return Err(CustodyError::BadRequest(format!(
                "reach: unknown reach {reach:?} (intimate, private or public)"
            )));
        }
        // n may still come from the family (one replica each); with n
        // given, k and n must make a codec now.
        if let Some(n) = self.n {
            let (dk, _) = strategy_defaults(strategy);
            let k = if strategy == Strategy::FullReplica {
                1
            } else {
                self.k.unwrap_or(dk)
            };
            CodecParams::new(strategy, k as usize, n as usize)
                .map_err(|e| CustodyError::BadRequest(format!("k, n: {e}")))?;
        }
        if !self.path.is_file() {
            return Err(CustodyError::BadRequest(format!(
                "path: {} is not a readable file",
                self.path.display()
            )));
        }
        Ok((strategy, reach))
    }
}

/// The result of publishing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishReport {
    /// The content id (owner- and content-derived, so republishing is idempotent).
    pub content_id: String,
    /// blake3 of the plaintext, hex.
    pub content_hash: String,
    /// Bytes.
    pub size: u64,
    /// The strategy.
    pub strategy: String,
    /// Shards needed.
    pub k: u32,
    /// Shards made.
    pub n: u32,
    /// The custodian of each shard.
    pub custodians: Vec<String>,
    /// Shards delivered.
    pub pushed: u32,
    /// Shards whose delivery failed (their custodians will rebuild them).
    pub push_failures: Vec<String>,
}

/// The result of fetching content back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetrieveReport {
    /// The content.
    pub content_id: String,
    /// Bytes written.
    pub size: u64,
    /// blake3 of what was written, hex (checked against the assignment).
    pub content_hash: String,
    /// Custodians whose shards were used.
    pub from: Vec<String>,
}

/// The result of one reconciliation pass.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReconcileReport {
    /// Live assignments of this node.
    pub assigned: u32,
    /// Shards obtained in this pass.
    pub obtained: u32,
    /// Shards that could not be obtained (retried next pass).
    pub failed: Vec<String>,
    /// Shards let go because the family relationship they were kept under
    /// was revoked.
    #[serde(default)]
    pub dropped: u32,
}

fn strategy_defaults(s: Strategy) -> (u32, u32) {
    match s {
        Strategy::FullReplica => (1, 3),
        Strategy::ErasureCoded => (4, 6),
        Strategy::ThresholdSplit => (3, 5),
    }
}

/// A custodian chosen for one shard.
struct Slot {
    node_id: String,
    registration: holochain_types::prelude::ActionHash,
    endpoint: Option<String>,
    family: Option<FamilyProof>,
}

/// A `Write` that also hashes and counts.
struct HashingFile {
    file: std::fs::File,
    hasher: blake3::Hasher,
    len: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A temp file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_micros() -> i64 {
    Timestamp::now().as_micros()
}

/// Hashes a file with blake3, reporting progress.
fn hash_file(path: &Path, progress: ProgressFn<'_>) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let total = f.metadata()?.len();
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        done += n as u64;
        progress(Progress {
            phase: "hashing".into(),
            done,
            total,
        });
    }
    Ok((h.finalize().to_hex().to_string(), done))
}

/// The content id of `content_hash` published by `owner`: unique per owner,
/// stable across republishing, and recomputed by validation
/// (`registry_core::assignment::content_id`).
pub fn content_id_for(owner: &holochain_types::prelude::AgentPubKey, content_hash: &str) -> String {
    registry_core::assignment::content_id(owner.get_raw_32(), content_hash)
}

/// How long a push keeps trying a custodian it cannot reach at all.
pub const UNREACHABLE_GIVE_UP: std::time::Duration = std::time::Duration::from_secs(20);
/// How long a publisher waits for a candidate custodian's `/ping`.
const REACHABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);
/// Candidates a publish asks for beyond the custodians it needs, to put a
/// shard elsewhere when one does not answer.
const SPARE_CANDIDATES: usize = 2;
/// Longest a peer may leave a download without sending a byte.
const FETCH_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Replications a signal may start at once; a hint beyond them is left to
/// reconciliation.
const SIGNALLED_REPLICATIONS: usize = 2;
/// `DisasterRecoveryFailed` signals kept for the status and tests.
const RECOVERY_FAILURES_KEPT: usize = 32;
/// How long one judgement of which nodes are failed is reused when
/// authorizing transfers (a rebuild asks several holders at once).
const FAILED_VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a lost node's sidecar has to answer `/ping` before it counts
/// as silent.
const LOST_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The custody engine of one node.
pub struct Custody {
    /// The node agent (conductor access).
    pub agent: Arc<NodeAgent>,
    /// Shards this node holds for others.
    pub store: Arc<ShardStore>,
    /// What this node published.
    pub catalog: Arc<Catalog>,
    http: reqwest::Client,
    /// For downloads: gives up on a peer that stops sending.
    fetch_http: reqwest::Client,
    work_dir: PathBuf,
    /// Shards being rebuilt now, by hash, with how far each got.
    in_flight: Mutex<std::collections::HashMap<String, crate::network_view::Rebuild>>,
    /// Nodes that looked failed here but answered a probe, and when: not
    /// probed again (nor repaired) for one failure window.
    answered: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Nonces of the transfer requests accepted in their window.
    seen: crate::replay::SeenNonces,
    /// The last `DisasterRecoveryFailed` signals this node's own repairs
    /// raised, newest last (at most [`RECOVERY_FAILURES_KEPT`]).
    pub recovery_failures: Mutex<VecDeque<RegistrySignal>>,
    /// Replications started by signals now running.
    replicating: Arc<tokio::sync::Semaphore>,
    /// The nodes judged failed, and when that was read.
    failed_view: tokio::sync::Mutex<Option<(std::time::Instant, HashSet<String>)>>,
    /// The person's recovery secret, from which content keys derive.
    pub secret: RecoverySecret,
    /// What this node served and received, summarised once per period.
    pub rewards: crate::rewards::Rewards,
}

impl Custody {
    /// Opens the store and catalog under the agent's data directory.
    pub fn open(agent: Arc<NodeAgent>) -> Result<Custody, CustodyError> {
        let data = agent.config().conductor.data_dir.clone();
        let store = ShardStore::open(&data.join("shards"))?;
        let catalog = Catalog::open(&data.join("catalog.redb"))?;
        let secret = crate::secret::load_or_create(&data)?;
        let work_dir = data.join("work");
        std::fs::create_dir_all(&work_dir)?;
        for e in std::fs::read_dir(&work_dir)? {
            let _ = std::fs::remove_file(e?.path());
        }
        Ok(Custody {
            agent,
            store: Arc::new(store),
            catalog: Arc::new(catalog),
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("a default HTTP client builds"),
            fetch_http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .read_timeout(FETCH_READ_TIMEOUT)
                .build()
                .expect("a default HTTP client builds"),
            work_dir,
            in_flight: Mutex::new(std::collections::HashMap::new()),
            answered: Mutex::new(std::collections::HashMap::new()),
            seen: crate::replay::SeenNonces::default(),
            recovery_failures: Mutex::new(VecDeque::new()),
            replicating: Arc::new(tokio::sync::Semaphore::new(SIGNALLED_REPLICATIONS)),
            failed_view: tokio::sync::Mutex::new(None),
            secret,
            rewards: crate::rewards::Rewards::open(&data),
        })
    }

    fn temp_path(&self, what: &str) -> PathBuf {
        let mut nonce = [0u8; 8];
        let _ = getrandom::fill(&mut nonce);
        self.work_dir.join(format!("{what}.{}", hex(&nonce)))
    }

    /// Signs a transfer request to node `target` with this node's agent
    /// key: good once, at that node only, for a minute.
    pub async fn sign(
        &self,
        method: &str,
        shard_hash: &str,
        assignment: &str,
        target: &str,
    ) -> Result<TransferAuth, CustodyError> {
        let mut auth = TransferAuth {
            assignment: assignment.to_string(),
            node_id: self.agent.node_id.clone(),
            agent: self.agent.agent().to_string(),
            time_micros: now_micros(),
            nonce: TransferAuth::new_nonce(),
            target: target.to_string(),
            signature: vec![],
        };
        let sig: Signature = self
            .agent
            .call_fn::<SignTransfer>(TransferToSign {
                message: canonical_request(method, shard_hash, &auth),
            })
            .await?;
        auth.signature = sig.0.to_vec();
        Ok(auth)
    }

    /// Sends a shard file to a custodian, retrying (with backoff) while the
    /// custodian does not see the assignment yet, for up to three minutes:
    /// assignments travel the DHT, shards travel HTTP, and the shard may
    /// arrive first (a node that holds a DHT address reads it only from its
    /// own store, so on a busy network that can take more than a minute). A
    /// custodian that cannot be reached at all is given up on after
    /// [`UNREACHABLE_GIVE_UP`]: it is most likely dead, and its monitors will
    /// have it repaired.
    pub async fn deliver(
        &self,
        peer: &str,
        endpoint: &str,
        shard_hash: &str,
        assignment: &str,
        path: &Path,
    ) -> Result<(), CustodyError> {
        let started = std::time::Instant::now();
        let deadline = started + std::time::Duration::from_secs(180);
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            match self
                .push(peer, endpoint, shard_hash, assignment, path)
                .await
            {
                Err(CustodyError::Transfer {
                    retry_later: true,
                    detail,
                    ..
                }) if std::time::Instant::now() + wait < deadline
                    && !(detail.starts_with("unreachable")
                        && started.elapsed() >= UNREACHABLE_GIVE_UP) =>
                {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// Whether a custodian's sidecar answers at all, within a few seconds:
    /// asked of every candidate before a publish places a shard on it.
    async fn reachable(&self, endpoint: Option<&str>) -> bool {
        let Some(ep) = endpoint else {
            return false;
        };
        let url = format!("{}/ping", ep.trim_end_matches('/'));
        matches!(
            tokio::time::timeout(REACHABLE_WITHIN, self.http.get(url).send()).await,
            Ok(Ok(r)) if r.status().is_success()
        )
    }

    /// Sends a shard file to a custodian's sidecar, once.
    pub async fn push(
        &self,
        peer: &str,
        endpoint: &str,
        shard_hash: &str,
        assignment: &str,
        path: &Path,
    ) -> Result<(), CustodyError> {
        let auth = self.sign("PUT", shard_hash, assignment, peer).await?;
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        let mut req = self
            .http
            .put(format!(
                "{}/shards/{shard_hash}",
                endpoint.trim_end_matches('/')
            ))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::new(file),
            ));
        for (k, v) in auth.headers() {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| CustodyError::Transfer {
            peer: peer.to_string(),
            detail: format!("unreachable: {e}"),
            retry_later: true,
        })?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(CustodyError::Transfer {
                peer: peer.to_string(),
                detail: format!("{status}: {body}"),
                retry_later: status == reqwest::StatusCode::SERVICE_UNAVAILABLE,
            });
        }
        self.agent.metrics.moved("out", len);
        Ok(())
    }

    /// Fetches a shard from a holder into a temp file, checking its hash;
    /// a body longer than `max_bytes` (the content's shard size) is cut off.
    async fn fetch_to_temp(
        &self,
        holder: &ShardHolder,
        serving: &str,
        recovery: Option<&str>,
        max_bytes: u64,
    ) -> Result<TempFile, CustodyError> {
        use futures_util::StreamExt;
        let endpoint = holder
            .endpoint
            .as_deref()
            .ok_or_else(|| CustodyError::Transfer {
                peer: holder.node_id.clone(),
                detail: "no endpoint registered".into(),
                retry_later: false,
            })?;
        let auth = self
            .sign("GET", &holder.shard_hash, serving, &holder.node_id)
            .await?;
        let mut req = self.fetch_http.get(format!(
            "{}/shards/{}",
            endpoint.trim_end_matches('/'),
            holder.shard_hash
        ));
        for (k, v) in auth.headers() {
            req = req.header(k, v);
        }
        if let Some(r) = recovery {
            req = req.header(crate::transfer::H_RECOVERY, r);
        }
        let peer_err = |detail: String| CustodyError::Transfer {
            peer: holder.node_id.clone(),
            detail,
            retry_later: false,
        };
        let resp = req.send().await.map_err(|e| peer_err(e.to_string()))?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(peer_err(format!(
                "{status}: {}",
                resp.text().await.unwrap_or_default()
            )));
        }
        let tmp = TempFile(self.temp_path("fetch"));
        let mut out = HashingFile {
            file: std::fs::File::create(&tmp.0)?,
            hasher: blake3::Hasher::new(),
            len: 0,
        };
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(peer_err(format!(
                "offers more than the {max_bytes} bytes a shard of this content has"
            )));
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| peer_err(e.to_string()))?;
            if out.len + chunk.len() as u64 > max_bytes {
                return Err(peer_err(format!(
                    "sent more than the {max_bytes} bytes a shard of this content has"
                )));
            }
            out.write_all(&chunk)?;
        }
        let got = out.hasher.finalize().to_hex().to_string();
        if got != holder.shard_hash {
            return Err(peer_err(format!(
                "sent bytes hashing to {got}, not {}",
                holder.shard_hash
            )));
        }
        // What arrived whole and hashed right is what this node will
        // acknowledge when the holder's summary names it.
        self.rewards
            .received(&holder.node_id, &holder.shard_hash, out.len);
        self.agent.metrics.moved("in", out.len);
        Ok(tmp)
    }

    /// Notes a shard about to be served to `receiver` (base64 agent key)
    /// in the rewards ledger; the `rewards` worker records one summary per
    /// receiver per period, so serving writes no record per request.
    pub fn note_served(&self, receiver: &str, held: &ShardRecord) {
        let Ok(receiver) = holochain_types::prelude::AgentPubKey::try_from(receiver) else {
            return;
        };
        if receiver == *self.agent.agent() || held.size == 0 {
            return;
        }
        self.rewards.served(&receiver, &held.shard_hash, held.size);
    }

    /// Publishes a file: hashes it, encodes it into `n` shards, chooses `n`
    /// distinct custodians, records the assignments on the DHT and sends
    /// each custodian its shard.
    pub async fn publish(
        &self,
        req: PublishRequest,
        progress: ProgressFn<'_>,
    ) -> Result<PublishReport, CustodyError> {
        let (strategy, reach) = req.check()?;
        let (dk, dn) = strategy_defaults(strategy);
        let k = if strategy == Strategy::FullReplica {
            1
        } else {
            req.k.unwrap_or(dk)
        };
        // Private and intimate content goes to family first (integration
        // point 3 of the plan): by default, one full copy per family node.
        let family: Vec<FamilyCustodian> = if reach != "public" {
            self.agent
                .call_fn::<GetFamilyCustodians>(self.agent.agent().clone())
                .await?
        } else {
            vec![]
        };
        let default_n = if !family.is_empty() && strategy == Strategy::FullReplica {
            family.len() as u32
        } else {
            dn
        };
        let n = req.n.unwrap_or(default_n);
        let params = CodecParams::new(strategy, k as usize, n as usize)?;

        let path = req.path.clone();
        let (content_hash, size) = tokio::task::block_in_place(|| hash_file(&path, progress))?;
        let content_id = content_id_for(self.agent.agent(), &content_hash);

        // Encode into n shard files.
        progress(Progress {
            phase: "encoding".into(),
            done: 0,
            total: size,
        });
        let tmps: Vec<TempFile> = (0..n)
            .map(|i| TempFile(self.temp_path(&format!("shard{i}"))))
            .collect();
        let key = self.secret.content_key(&content_id);
        let (report, shard_files) = tokio::task::block_in_place(|| -> Result<_, CustodyError> {
            let mut writers = tmps
                .iter()
                .map(|t| {
                    Ok(HashingFile {
                        file: std::fs::File::create(&t.0)?,
                        hasher: blake3::Hasher::new(),
                        len: 0,
                    })
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            let mut encoder = Encoder::new(params)?;
            if params.needs_owner_key() {
                encoder = encoder.with_key(key.clone());
            }
            let report = encoder.encode_stream(std::fs::File::open(&path)?, &mut writers)?;
            let files: Vec<(String, u64)> = writers
                .into_iter()
                .map(|w| {
                    w.file.sync_all()?;
                    Ok((w.hasher.finalize().to_hex().to_string(), w.len))
                })
                .collect::<std::io::Result<_>>()?;
            Ok((report, files))
        })?;
        progress(Progress {
            phase: "encoding".into(),
            done: size,
            total: size,
        });

        // Choose custodians: family first, then the community; distinct
        // nodes, never this one.
        let shard_size = shard_files.iter().map(|(_, l)| *l).max().unwrap_or(0);
        let mut chosen: Vec<Slot> = family
            .iter()
            .take(n as usize)
            .map(|f| Slot {
                node_id: f.node_id.clone(),
                registration: f.registration_hash.clone(),
                endpoint: f.endpoint.clone(),
                family: Some(f.proof.clone()),
            })
            .collect();
        let missing = n as usize - chosen.len();
        if missing > 0 {
            let mut exclude: Vec<String> = chosen.iter().map(|s| s.node_id.clone()).collect();
            exclude.push(self.agent.node_id.clone());
            let community: Vec<RankedCustodian> = self
                .agent
                .read_fn::<GetAvailableCustodians>(CustodianFilters {
                    region: req.region.clone(),
                    min_tier: req.min_tier.clone(),
                    exclude_nodes: exclude,
                    min_storage_bytes: Some(shard_size),
                    content_id: Some(content_id.clone()),
                    limit: Some((missing + SPARE_CANDIDATES) as u32),
                    ..Default::default()
                })
                .await?;
            // A candidate whose sidecar does not answer (dead since its
            // lease, before its monitors' verdicts arrived) gives way to the
            // next one; only if too few answer are silent ones used.
            let answers = futures_util::future::join_all(
                community
                    .iter()
                    .map(|c| self.reachable(c.registration.endpoint.as_deref())),
            )
            .await;
            let (up, silent): (Vec<_>, Vec<_>) = community
                .into_iter()
                .zip(answers)
                .partition(|(_, answered)| *answered);
            for (c, _) in &silent {
                tracing::info!(
                    "candidate custodian {} does not answer; placing elsewhere",
                    c.registration.node_id
                );
            }
            let community: Vec<RankedCustodian> = up
                .into_iter()
                .chain(silent)
                .map(|(c, _)| c)
                .take(missing)
                .collect();
            chosen.extend(community.into_iter().map(|c| Slot {
                node_id: c.registration.node_id,
                registration: c.registration_hash,
                endpoint: c.registration.endpoint,
                family: None,
            }));
        }
        if chosen.len() < n as usize {
            return Err(CustodyError::NotEnoughCustodians {
                needed: n,
                found: chosen.len() as u32,
            });
        }
        let round: Vec<String> = chosen.iter().map(|c| c.node_id.clone()).collect();

        // Record the assignments.
        let mut records = Vec::new();
        for (i, c) in chosen.iter().enumerate() {
            let (shard_hash, shard_len) = &shard_files[i];
            let a = CustodianAssignment {
                assignment_id: assignment_id(&content_id, i as u32, 0),
                content_id: content_id.clone(),
                content_hash: content_hash.clone(),
                content_size_bytes: size,
                shard_size_bytes: *shard_len,
                shard_hash: shard_hash.clone(),
                owner_agent: self.agent.agent().clone(),
                reach: reach.clone(),
                custodian_node_id: c.node_id.clone(),
                custodian_registration: c.registration.clone(),
                strategy: strategy.as_str().to_string(),
                threshold: k,
                shard_count: n,
                shard_index: i as u32,
                round_custodians: round.clone(),
                decided_by: if c.family.is_some() {
                    DecisionSource::RelationshipPolicy
                } else {
                    DecisionSource::Publisher
                }
                .as_str()
                .to_string(),
                decision_round: 0,
                replaces: None,
                preferred_region: req.region.clone(),
                required_tier: req.min_tier.clone(),
                quorum_proposal: None,
                quorum_votes: vec![],
                relationship: c.family.clone(),
            };
            let _: holochain_types::prelude::ActionHash = self
                .agent
                .retrying(|| self.agent.call_fn::<AssignCustodian>(a.clone()))
                .await?;
            records.push(AssignmentRecord {
                entry_hash: assignment_entry_hash(&a)?,
                assignment: a,
            });
            progress(Progress {
                phase: "assigning".into(),
                done: i as u64 + 1,
                total: n as u64,
            });
        }

        // Deliver to every custodian at once: each waits on its own link
        // (and on the assignment reaching it through the DHT), so the slowest
        // sets the pace instead of the sum of them all.
        let delivered = std::sync::atomic::AtomicU64::new(0);
        let results = futures_util::future::join_all(chosen.iter().zip(&records).enumerate().map(
            |(i, (c, r))| {
                let delivered = &delivered;
                let tmp = &tmps[i].0;
                async move {
                    let result = match &c.endpoint {
                        Some(ep) => {
                            self.deliver(
                                &c.node_id,
                                ep,
                                &r.assignment.shard_hash,
                                &r.entry_hash.to_string(),
                                tmp,
                            )
                            .await
                        }
                        None => Err(CustodyError::Transfer {
                            peer: c.node_id.clone(),
                            detail: "no endpoint registered".into(),
                            retry_later: false,
                        }),
                    };
                    let done = delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress(Progress {
                        phase: "pushing".into(),
                        done,
                        total: n as u64,
                    });
                    result
                }
            },
        ))
        .await;
        let mut pushed = 0;
        let mut failures = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(()) => pushed += 1,
                Err(e) => {
                    tracing::warn!("shard {i} of {content_id}: {e}");
                    failures.push(e.to_string());
                }
            }
        }

        self.catalog.put(&PublishedContent {
            content_id: content_id.clone(),
            name: req
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size,
            content_hash: content_hash.clone(),
            strategy: strategy.as_str().to_string(),
            k,
            n,
            reach,
            key_hex: report.key.as_ref().map(|key| hex(key.as_bytes())),
            published_at: now_micros() / 1_000_000,
        })?;
        Ok(PublishReport {
            content_id,
            content_hash,
            size,
            strategy: strategy.as_str().to_string(),
            k,
            n,
            custodians: round,
            pushed,
            push_failures: failures,
        })
    }

    /// Fetches enough shards of a content from its custodians, decodes them
    /// and writes the content to `out` (via a temp file renamed at the end),
    /// checking it hashes to what the assignments record.
    pub async fn retrieve(
        &self,
        content_id: &str,
        out: &Path,
        progress: ProgressFn<'_>,
    ) -> Result<RetrieveReport, CustodyError> {
        self.retrieve_as(content_id, out, None, None, progress)
            .await
    }

    /// As `retrieve`, with a content key (a recovered person's) and the
    /// recovery request that authorizes this node to fetch another
    /// person's shards.
    pub async fn retrieve_as(
        &self,
        content_id: &str,
        out: &Path,
        key: Option<ContentKey>,
        recovery: Option<&str>,
        progress: ProgressFn<'_>,
    ) -> Result<RetrieveReport, CustodyError> {
        crate::ids::check_content_id(content_id)?;
        let live: Vec<AssignmentRecord> = self
            .agent
            .call_fn::<GetAssignmentRecordsForContent>(content_id.to_string())
            .await?;
        let first = live
            .first()
            .ok_or_else(|| CustodyError::UnknownContent(content_id.to_string()))?;
        let strategy: Strategy = first.assignment.strategy.parse()?;
        // The owner's catalog, or else the key derived from this node's
        // recovery secret (a recovered node adopts the lost one's secret).
        let key = match self.catalog.get(content_id)?.and_then(|c| c.key_hex) {
            Some(h) => Some(parse_key(&h)?),
            None if first.assignment.owner_agent == *self.agent.agent() => {
                Some(self.secret.content_key(content_id))
            }
            None => key,
        };
        let holders: Vec<ShardHolder> = self
            .agent
            .call_fn::<GetShardHolders>(content_id.to_string())
            .await?;
        let needed = if strategy == Strategy::FullReplica {
            1
        } else {
            first.assignment.threshold as usize
        };
        let (files, from) = self
            .fetch_some(&holders, needed, first, recovery, progress)
            .await?;
        progress(Progress {
            phase: "decoding".into(),
            done: 0,
            total: first.assignment.content_size_bytes,
        });
        let tmp = TempFile(self.temp_path("decode"));
        let expected_hash = first.assignment.content_hash.clone();
        let (size, hash) =
            tokio::task::block_in_place(|| -> Result<(u64, String), CustodyError> {
                let readers = files
                    .iter()
                    .map(|f| std::fs::File::open(&f.0).map(std::io::BufReader::new))
                    .collect::<std::io::Result<Vec<_>>>()?;
                let mut writer = HashingFile {
                    file: std::fs::File::create(&tmp.0)?,
                    hasher: blake3::Hasher::new(),
                    len: 0,
                };
                let mut decoder = Decoder::new();
                if let Some(k) = key.clone() {
                    decoder = decoder.with_key(k);
                }
                match decoder.decode_stream(readers, &mut writer) {
                    Err(shard_codec::CodecError::MissingKey) => {
                        return Err(CustodyError::MissingKey(content_id.to_string()))
                    }
                    other => other?,
                };
                writer.file.sync_all()?;
                Ok((writer.len, writer.hasher.finalize().to_hex().to_string()))
            })?;
        if hash != expected_hash {
            return Err(CustodyError::Codec(
                shard_codec::CodecError::MismatchedContent(format!(
                    "decoded content hashes to {hash}, the assignments record {expected_hash}"
                )),
            ));
        }
        std::fs::rename(&tmp.0, out).or_else(|_| std::fs::copy(&tmp.0, out).map(|_| ()))?;
        progress(Progress {
            phase: "decoding".into(),
            done: size,
            total: size,
        });
        Ok(RetrieveReport {
            content_id: content_id.to_string(),
            size,
            content_hash: hash,
            from,
        })
    }

    /// Fetches `needed` verified shards from `holders` (trying each in turn).
    /// Every request names `serving` (this node's assignment, or the
    /// content's first live one), whose shard size caps each download.
    async fn fetch_some(
        &self,
        holders: &[ShardHolder],
        needed: usize,
        serving: &AssignmentRecord,
        recovery: Option<&str>,
        progress: ProgressFn<'_>,
    ) -> Result<(Vec<TempFile>, Vec<String>), CustodyError> {
        let content_id = serving.assignment.content_id.as_str();
        let max_bytes = serving.assignment.shard_size_bytes;
        let serving = serving.entry_hash.to_string();
        let mut files = Vec::new();
        let mut from = Vec::new();
        let mut errors = Vec::new();
        for h in holders {
            if files.len() >= needed {
                break;
            }
            if h.node_id == self.agent.node_id {
                // Our own copy, if we hold one, is read straight from the store.
                if let Ok(bytes) = self.store.read_verified(&h.shard_hash) {
                    let tmp = TempFile(self.temp_path("own"));
                    std::fs::write(&tmp.0, bytes)?;
                    files.push(tmp);
                    from.push(h.node_id.clone());
                }
                continue;
            }
            // A recovering node is nobody's custodian: it names the
            // holder's own assignment and shows its recovery instead.
            let serving = match recovery {
                Some(_) => h.assignment.to_string(),
                None => serving.to_string(),
            };
            match self.fetch_to_temp(h, &serving, recovery, max_bytes).await {
                Ok(f) => {
                    files.push(f);
                    from.push(h.node_id.clone());
                    progress(Progress {
                        phase: "fetching".into(),
                        done: files.len() as u64,
                        total: needed as u64,
                    });
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if files.len() < needed {
            return Err(CustodyError::TooFewShards {
                content_id: content_id.to_string(),
                got: files.len(),
                needed,
                detail: if errors.is_empty() {
                    "no other holders".into()
                } else {
                    errors.join("; ")
                },
            });
        }
        Ok((files, from))
    }

    /// Obtains the shard of one of this node's assignments, if not held:
    /// fetches enough other shards from the live holders the DHT names and
    /// rebuilds exactly this shard (one copy for `full_replica`, `k` shards
    /// otherwise), then stores it if it hashes to what the assignment
    /// records.
    pub async fn obtain(&self, record: &AssignmentRecord) -> Result<bool, CustodyError> {
        let a = &record.assignment;
        if self.store.has(&a.shard_hash) {
            return Ok(false);
        }
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            if in_flight.contains_key(&a.shard_hash) {
                return Ok(false);
            }
            in_flight.insert(a.shard_hash.clone(), crate::network_view::Rebuild::of(a));
        }
        let metrics = &self.agent.metrics;
        metrics.repair("started", 1);
        let result = self.obtain_inner(record).await;
        self.in_flight.lock().unwrap().remove(&a.shard_hash);
        metrics.repair(if result.is_ok() { "done" } else { "failed" }, 1);
        result.map(|()| true)
    }

    /// The shards this node is rebuilding now, with how many of the shards
    /// each needs it has fetched (for the dashboard's progress bars).
    pub fn rebuilds(&self) -> Vec<crate::network_view::Rebuild> {
        self.in_flight.lock().unwrap().values().cloned().collect()
    }

    async fn obtain_inner(&self, record: &AssignmentRecord) -> Result<(), CustodyError> {
        let a = &record.assignment;
        let holders: Vec<ShardHolder> = self
            .agent
            .call_fn::<GetShardHolders>(a.content_id.clone())
            .await?;
        let others: Vec<ShardHolder> = holders
            .into_iter()
            .filter(|h| h.node_id != self.agent.node_id && h.shard_hash != a.shard_hash)
            .collect();
        let needed = if a.strategy == "full_replica" {
            1
        } else {
            a.threshold as usize
        };
        let fetched = |p: Progress| {
            if let Some(r) = self.in_flight.lock().unwrap().get_mut(&a.shard_hash) {
                r.fetched = p.done as u32;
            }
        };
        let (files, from) = self
            .fetch_some(&others, needed, record, None, &fetched)
            .await?;
        let meta = ShardMeta {
            content_id: a.content_id.clone(),
            shard_index: a.shard_index,
            assignment: record.entry_hash.to_string(),
        };
        tokio::task::block_in_place(|| -> Result<(), CustodyError> {
            let readers = files
                .iter()
                .map(|f| std::fs::File::open(&f.0).map(std::io::BufReader::new))
                .collect::<std::io::Result<Vec<_>>>()?;
            let mut writer = self.store.writer(&a.shard_hash, meta)?;
            Decoder::new().rebuild_shard_stream(readers, a.shard_index as usize, &mut writer)?;
            writer.finish()?;
            Ok(())
        })?;
        tracing::info!(
            "obtained shard {} of {} (rebuilt from {})",
            a.shard_index,
            a.content_id,
            from.join(", ")
        );
        Ok(())
    }

    /// Brings the store in line with the DHT: every live assignment of this
    /// node whose shard is missing is obtained. A lost signal only delays a
    /// repair until the next pass.
    pub async fn reconcile(&self) -> Result<ReconcileReport, CustodyError> {
        let mine: Vec<AssignmentRecord> = self
            .agent
            .call_fn::<GetAssignmentRecordsForNode>(self.agent.node_id.clone())
            .await?;
        let mut report = ReconcileReport {
            assigned: mine.len() as u32,
            ..Default::default()
        };
        // What a repair or another node's same-round decision took from
        // this node is marked retired, so its committed custody (what
        // custodian selection reads) stops counting it.
        match self
            .agent
            .write_fn::<RetireOutranked>(self.agent.node_id.clone())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!("marked {n} outranked assignments of this node retired"),
            Err(e) => tracing::warn!("could not mark outranked assignments retired: {e}"),
        }
        // Family custody lasts as long as both people consent: once either
        // revokes, this node takes no more and lets go of what it kept.
        let family_ok: HashSet<holochain_types::prelude::ActionHash> =
            if mine.iter().any(|r| r.assignment.relationship.is_some()) {
                let rels: Vec<RelationshipState> = self
                    .agent
                    .call_fn::<GetRelationships>(self.agent.agent().clone())
                    .await?;
                rels.into_iter()
                    .filter(|r| r.active && r.relationship.auto_custody_enabled)
                    .map(|r| r.relationship_hash)
                    .collect()
            } else {
                HashSet::new()
            };
        for r in &mine {
            if let Some(proof) = &r.assignment.relationship {
                if !family_ok.contains(&proof.relationship) {
                    if self.store.has(&r.assignment.shard_hash) {
                        self.store.remove(&r.assignment.shard_hash)?;
                        report.dropped += 1;
                        tracing::info!(
                            "dropped shard {} of {}: the family relationship was revoked",
                            r.assignment.shard_index,
                            r.assignment.content_id
                        );
                    }
                    continue;
                }
            }
            match self.obtain(r).await {
                Ok(true) => report.obtained += 1,
                Ok(false) => {}
                Err(e) => report.failed.push(format!(
                    "{}#{}: {e}",
                    r.assignment.content_id, r.assignment.shard_index
                )),
            }
        }
        if let Ok(held) = self.store.list() {
            self.agent
                .metrics
                .set_held(held.len() as u64, self.store.used_bytes());
        }
        Ok(report)
    }

    /// Detects failed nodes (silent past window + grace) and re-homes their
    /// shards. Repeated runs are harmless.
    pub async fn detect_and_repair(
        &self,
        policy: DetectionInput,
    ) -> Result<Vec<RecoveryReport>, CustodyError> {
        let down: Vec<NodeLiveness> = self
            .agent
            .read_fn::<DetectFailedNodes>(Some(policy))
            .await?;
        let mut out = Vec::new();
        for node in down {
            if !matches!(
                node.liveness,
                registry_core::heartbeat::Liveness::Failed { .. }
            ) {
                continue;
            }
            if node.node_id == self.agent.node_id {
                continue;
            }
            // A node already repaired away (or that never held anything)
            // needs neither a probe nor a repair: a dead node stays "failed"
            // in every later detection round.
            let held: Vec<AssignmentRecord> = self
                .agent
                .read_fn::<GetAssignmentRecordsForNode>(node.node_id.clone())
                .await?;
            if held.is_empty() {
                continue;
            }
            // Silence in this node's view of the DHT may only be lag (it
            // just joined, or gossip is behind): ask the node itself first.
            // If it cannot even be probed, this view is too incomplete to
            // act on; other detectors, or a later round, will.
            let window = std::time::Duration::from_secs(
                policy
                    .failure_window_secs
                    .unwrap_or(registry_core::heartbeat::DEFAULT_FAILURE_WINDOW_SECS)
                    .max(0) as u64,
            );
            let recently_answered = self
                .answered
                .lock()
                .unwrap()
                .get(&node.node_id)
                .is_some_and(|t| t.elapsed() < window);
            if recently_answered {
                continue;
            }
            match self.agent.read_fn::<ProbeNode>(node.node_id.clone()).await {
                Ok(p) if p.answered => {
                    tracing::info!(
                        "{} looks silent here but answered a probe in {} ms: not repairing",
                        node.node_id,
                        p.response_time_ms
                    );
                    self.answered
                        .lock()
                        .unwrap()
                        .insert(node.node_id.clone(), std::time::Instant::now());
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        "not repairing {} yet: could not probe it: {e}",
                        node.node_id
                    );
                    continue;
                }
            }
            self.agent.metrics.failures_detected.inc();
            let report = self.agent.recover(&node.node_id).await?;
            let metrics = &self.agent.metrics;
            metrics.repair("queued", report.replacements.len() as u64);
            metrics.repair("failed", report.unplaced.len() as u64);
            if !report.replacements.is_empty() || !report.unplaced.is_empty() {
                tracing::info!(
                    "recovery for {}: {} shards re-homed, {} unplaced",
                    node.node_id,
                    report.replacements.len(),
                    report.unplaced.len()
                );
            }
            out.push(report);
        }
        Ok(out)
    }

    /// Takes in a signal from the DNA, without waiting on any work it
    /// starts (the signal loop also carries liveness beats).
    ///
    /// A `ReplicateContent` is a hint only: anyone can send one. Only its
    /// assignment's entry hash is used, and only if this node's view of the
    /// DHT holds that assignment, live, for this node; the holders to fetch
    /// from are read from the DHT too, never taken from the signal. At most
    /// [`SIGNALLED_REPLICATIONS`] run at once; a hint beyond them is left to
    /// reconciliation, which obtains every live assignment of this node.
    pub fn on_signal(self: &Arc<Self>, signal: RegistrySignal) {
        match signal {
            RegistrySignal::ReplicateContent {
                assignment,
                to_custodian,
                ..
            } => {
                if to_custodian != self.agent.node_id {
                    // A repair this node ran, for another custodian.
                    return;
                }
                let Ok(permit) = self.replicating.clone().try_acquire_owned() else {
                    tracing::debug!(
                        "replication hint for {} left to reconciliation: busy",
                        assignment.entry_hash
                    );
                    return;
                };
                let me = self.clone();
                let entry_hash = assignment.entry_hash;
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = me.replicate(&entry_hash).await {
                        tracing::warn!("replicating {entry_hash}: {e}");
                    }
                });
            }
            RegistrySignal::DisasterRecoveryFailed {
                ref content_id,
                shard_index,
                ref reason,
                ..
            } => {
                tracing::warn!(
                    "disaster recovery could not re-home {content_id}#{shard_index}: {reason}"
                );
                let mut kept = self.recovery_failures.lock().unwrap();
                if kept.len() >= RECOVERY_FAILURES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(signal);
            }
            RegistrySignal::Beat { .. } => {}
        }
    }

    /// Obtains the shard of assignment `entry_hash` if, and only if, this
    /// node's view of the DHT has it live for this node (what a
    /// `ReplicateContent` hint names). A hint the DHT does not back is
    /// counted (`elohim_signals_refused`) and refused.
    pub async fn replicate(&self, entry_hash: &EntryHash) -> Result<bool, CustodyError> {
        let found: Option<(CustodianAssignment, AssignmentStanding)> = self
            .agent
            .call_fn::<GetAssignment>(entry_hash.clone())
            .await?;
        let refused = |why: String| {
            self.agent.metrics.signals_refused.inc();
            Err(CustodyError::Hint(why))
        };
        match found {
            Some((a, AssignmentStanding::Live)) if a.custodian_node_id == self.agent.node_id => {
                self.obtain(&AssignmentRecord {
                    assignment: a,
                    entry_hash: entry_hash.clone(),
                })
                .await
            }
            Some((a, AssignmentStanding::Live)) => refused(format!(
                "the assignment is {}'s, not this node's",
                a.custodian_node_id
            )),
            Some((_, AssignmentStanding::Retired)) => {
                refused("the assignment was superseded".into())
            }
            Some((_, AssignmentStanding::NotYetIndexed)) => refused(
                "the assignment is not in its content's index here yet (reconciliation will \
                 obtain it once it is)"
                    .into(),
            ),
            None => refused("no such assignment on this node's view of the DHT".into()),
        }
    }

    /// Whether a shard of `shard_size` bytes still fits: under this node's
    /// custody cap (what it declared) with what it holds, and on its disk.
    pub fn check_room(&self, shard_size: u64) -> Result<(), TransferError> {
        let cap = (self.agent.registration().max_custody_gb * 1e9) as u64;
        let free = crate::capacity::disk_space(self.store.root()).map(|(free, _)| free);
        room_for(shard_size, self.store.used_bytes(), cap, free)
    }

    /// Authorizes an incoming shard: a fresh signed request, for a live
    /// assignment of this node to this very shard, from the content's owner
    /// or one of its custodians, that fits (see [`Custody::check_room`]).
    /// Returns the shard's metadata and its size as the assignment records
    /// it.
    pub async fn authorize_put(
        &self,
        auth: &TransferAuth,
        shard_hash: &str,
    ) -> Result<(ShardMeta, u64), TransferError> {
        let agent = self.authenticate(auth, "PUT", shard_hash)?;
        let (a, standing) = self.assignment(&auth.assignment).await?;
        match standing {
            AssignmentStanding::Live => {}
            AssignmentStanding::Retired => {
                return Err(TransferError::Forbidden(
                    "that assignment is retired".into(),
                ))
            }
            AssignmentStanding::NotYetIndexed => {
                return Err(TransferError::NotYet(NOT_YET_INDEXED.into()))
            }
        }
        if a.custodian_node_id != self.agent.node_id {
            return Err(TransferError::Forbidden(format!(
                "assignment is for {}, not this node",
                a.custodian_node_id
            )));
        }
        if a.shard_hash != shard_hash {
            return Err(TransferError::Forbidden(
                "assignment is for another shard".into(),
            ));
        }
        if agent != a.owner_agent {
            let holders: Vec<ShardHolder> = self
                .agent
                .call_fn::<GetShardHolders>(a.content_id.clone())
                .await
                .map_err(|e| TransferError::Upstream(e.to_string()))?;
            if !holders.iter().any(|h| h.agent == agent) {
                return Err(TransferError::Forbidden(
                    "sender is neither the content's owner nor one of its custodians".into(),
                ));
            }
        }
        self.check_room(a.shard_size_bytes)?;
        Ok((
            ShardMeta {
                content_id: a.content_id,
                shard_index: a.shard_index,
                assignment: auth.assignment.clone(),
            },
            a.shard_size_bytes,
        ))
    }

    /// Checks a request's signature, address and freshness, and that it is
    /// the first use of its nonce (a replay is refused, 409).
    fn authenticate(
        &self,
        auth: &TransferAuth,
        method: &str,
        shard_hash: &str,
    ) -> Result<holochain_types::prelude::AgentPubKey, TransferError> {
        let now = now_micros();
        let agent = auth.verify(method, shard_hash, &self.agent.node_id, now)?;
        self.seen
            .first_use(&auth.agent, &auth.nonce, auth.time_micros, now)?;
        Ok(agent)
    }

    /// The nodes this node's view of the DHT judges failed now (under its
    /// failure window and grace), read at most once per
    /// [`FAILED_VIEW_TTL`].
    async fn failed_nodes(&self) -> Result<HashSet<String>, ConductorError> {
        let mut view = self.failed_view.lock().await;
        if let Some((at, failed)) = &*view {
            if at.elapsed() < FAILED_VIEW_TTL {
                return Ok(failed.clone());
            }
        }
        let cfg = &self.agent.config().custody;
        let down: Vec<NodeLiveness> = self
            .agent
            .read_fn::<DetectFailedNodes>(Some(DetectionInput {
                failure_window_secs: Some(cfg.failure_window_secs),
                grace_secs: Some(cfg.grace_secs),
            }))
            .await?;
        let failed: HashSet<String> = down
            .into_iter()
            .filter(|n| {
                matches!(
                    n.liveness,
                    registry_core::heartbeat::Liveness::Failed { .. }
                )
            })
            .map(|n| n.node_id)
            .collect();
        *view = Some((std::time::Instant::now(), failed.clone()));
        Ok(failed)
    }

    /// Whether the node of `lost_agent` is gone now: judged failed by this
    /// node's view of the DHT, and its sidecar does not answer `/ping`. A
    /// person's content is served to a recovering node, and approved for
    /// it, only then. `Err` says why the node counts as alive.
    pub async fn judge_lost_agent(
        &self,
        lost_agent: &holochain_types::prelude::AgentPubKey,
    ) -> Result<(), LostNodeAlive> {
        let upstream = |e: ConductorError| LostNodeAlive::Unknown(e.to_string());
        let node: Option<RegisteredNode> = self
            .agent
            .call_fn::<GetNodeOfAgent>(lost_agent.clone())
            .await
            .map_err(upstream)?;
        let Some(node) = node else {
            // No node was ever registered for that agent: none can be alive.
            return Ok(());
        };
        let id = &node.registration.node_id;
        if !self.failed_nodes().await.map_err(upstream)?.contains(id) {
            return Err(LostNodeAlive::NotFailed(id.clone()));
        }
        if let Some(ep) = &node.registration.endpoint {
            let url = format!("{}/ping", ep.trim_end_matches('/'));
            let answered = matches!(
                tokio::time::timeout(LOST_PING_TIMEOUT, self.http.get(url).send()).await,
                Ok(Ok(r)) if r.status().is_success()
            );
            if answered {
                return Err(LostNodeAlive::Answers(id.clone()));
            }
        }
        Ok(())
    }

    /// Authorizes a shard download. This node serves the shard it holds
    /// under its assignment `held`:
    ///
    /// - to the owner of `held`, while `held` is live;
    /// - to the custodian of the live assignment the request names, of the
    ///   same content (id, hash and owner as `held`), if that assignment is
    ///   round 0 (the owner placed it), or replaces one whose custodian this
    ///   node judges failed now (a repair; a repair of a live node moves no
    ///   data to the repairer);
    /// - to a person's new node, once their family verified the recovery,
    ///   it names every consenting family custodian the lost person has now,
    ///   and the lost node is gone (see [`Custody::judge_lost_agent`]).
    pub async fn authorize_get(
        &self,
        auth: &TransferAuth,
        shard_hash: &str,
        recovery: Option<&str>,
    ) -> Result<ShardRecord, TransferError> {
        let agent = self.authenticate(auth, "GET", shard_hash)?;
        let held = self
            .store
            .record(shard_hash)
            .map_err(|e| TransferError::Upstream(e.to_string()))?
            .ok_or_else(|| TransferError::NotFound(format!("shard {shard_hash}")))?;
        let (h, held_standing) = self.assignment(&held.assignment).await?;
        if agent == h.owner_agent {
            return match held_standing {
                AssignmentStanding::Live => Ok(held),
                AssignmentStanding::NotYetIndexed => {
                    Err(TransferError::NotYet(NOT_YET_INDEXED.into()))
                }
                AssignmentStanding::Retired => Err(TransferError::Forbidden(
                    "this node no longer keeps that shard for its owner (its assignment was \
                     superseded)"
                        .into(),
                )),
            };
        }
        // A person's new node, once their family approved the recovery.
        if let Some(request) = recovery {
            return self
                .authorize_recovery(request, &agent, &h)
                .await
                .map(|()| held);
        }
        let (a, standing) = self.assignment(&auth.assignment).await?;
        if a.content_id != h.content_id
            || a.content_hash != h.content_hash
            || a.owner_agent != h.owner_agent
        {
            return Err(TransferError::Forbidden(
                "assignment is for another content".into(),
            ));
        }
        if a.custodian_node_id != auth.node_id {
            return Err(TransferError::Forbidden(
                "requester is neither the owner nor the custodian of the assignment it names"
                    .into(),
            ));
        }
        match standing {
            AssignmentStanding::Live => {}
            AssignmentStanding::NotYetIndexed => {
                return Err(TransferError::NotYet(NOT_YET_INDEXED.into()))
            }
            AssignmentStanding::Retired => {
                return Err(TransferError::Forbidden(
                    "the assignment the requester names was superseded".into(),
                ))
            }
        }
        let Some(replaced) = &a.replaces else {
            if a.decision_round == 0 {
                return Ok(held);
            }
            return Err(TransferError::Forbidden(
                "a later-round assignment must name what it replaces".into(),
            ));
        };
        let (old, _) = self.assignment(&replaced.to_string()).await?;
        let failed = self
            .failed_nodes()
            .await
            .map_err(|e| TransferError::Upstream(e.to_string()))?;
        if failed.contains(&old.custodian_node_id) {
            Ok(held)
        } else {
            Err(TransferError::Forbidden(format!(
                "the requester's assignment replaces {}, which this node does not judge failed: \
                 a repair of a live custodian gets no data",
                old.custodian_node_id
            )))
        }
    }

    /// Checks a recovery request before serving `held`'s owner's shard to
    /// `agent`: verified by the family, for this requester and owner,
    /// naming every consenting family custodian the owner has now, and the
    /// owner's node gone (409 naming the reason otherwise).
    async fn authorize_recovery(
        &self,
        request: &str,
        agent: &holochain_types::prelude::AgentPubKey,
        held: &CustodianAssignment,
    ) -> Result<(), TransferError> {
        let hash = holochain_types::prelude::ActionHash::try_from(request)
            .map_err(|_| TransferError::BadRequest("recovery is not an action hash".into()))?;
        let status: RecoveryStatus = self
            .agent
            .call_fn::<GetRecoveryStatus>(hash)
            .await
            .map_err(|e| TransferError::Forbidden(format!("recovery: {e}")))?;
        if !(status.verified
            && status.request.new_agent == *agent
            && status.request.lost_agent == held.owner_agent)
        {
            return Err(TransferError::Forbidden(
                "that recovery is not verified for this requester and owner".into(),
            ));
        }
        let family: Vec<FamilyCustodian> = self
            .agent
            .call_fn::<GetFamilyCustodians>(held.owner_agent.clone())
            .await
            .map_err(|e| TransferError::Upstream(e.to_string()))?;
        names_whole_family(&status.request.family, &family).map_err(TransferError::Conflict)?;
        self.judge_lost_agent(&held.owner_agent)
            .await
            .map_err(|e| TransferError::Conflict(e.to_string()))
    }

    /// An assignment named by a request, and where it stands. One not on
    /// this node's view of the DHT yet may still arrive: the sender is asked
    /// to try again rather than refused.
    async fn assignment(
        &self,
        entry_hash: &str,
    ) -> Result<(CustodianAssignment, AssignmentStanding), TransferError> {
        let eh = EntryHash::try_from(entry_hash)
            .map_err(|_| TransferError::BadRequest("assignment is not an entry hash".into()))?;
        let found: Option<(CustodianAssignment, AssignmentStanding)> = self
            .agent
            .call_fn::<GetAssignment>(eh)
            .await
            .map_err(|e| TransferError::Upstream(e.to_string()))?;
        found.ok_or_else(|| TransferError::NotYet("no such assignment on the DHT yet".into()))
    }
}

/// Why a transfer naming an assignment not yet in its content's index is
/// answered "try again".
const NOT_YET_INDEXED: &str = "this node does not see that assignment in its content's index yet";

fn parse_key(h: &str) -> Result<ContentKey, CustodyError> {
    let bytes: Vec<u8> = (0..h.len())
        .step_by(2)
        .filter_map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect();
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| CustodyError::BadRequest("stored content key is malformed".into()))?;
    Ok(ContentKey::from_bytes(arr))
}

/// The DHT entry hash of an assignment, computed locally (identical
/// decisions hash alike; this is how the network deduplicates them).
pub fn assignment_entry_hash(a: &CustodianAssignment) -> Result<EntryHash, CustodyError> {
    use holochain_types::prelude::{Entry, SerializedBytes};
    let bytes = SerializedBytes::try_from(a.clone())
        .map_err(|e| CustodyError::BadRequest(e.to_string()))?;
    let entry = Entry::app(bytes).map_err(|e| CustodyError::BadRequest(e.to_string()))?;
    Ok(EntryHash::with_data_sync(&entry))
}

/// Why a lost node counts as alive (or cannot be judged), so its recovery
/// is refused.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum LostNodeAlive {
    /// This node's view of the DHT does not judge it failed.
    #[error(
        "the lost node {0} is not judged failed: its monitors still hear it, or its lease is recent"
    )]
    NotFailed(String),
    /// Its sidecar still answers.
    #[error("the lost node {0} is judged failed, but its sidecar still answers")]
    Answers(String),
    /// It could not be judged.
    #[error("the lost node could not be judged: {0}")]
    Unknown(String),
}

/// Whether a recovery request's family snapshot names every consenting
/// family custodian the lost person has now; `Err` names who is missing.
/// A request naming only some of them would need fewer approvals than the
/// family as it is.
pub fn names_whole_family(
    named: &[holochain_types::prelude::AgentPubKey],
    now: &[FamilyCustodian],
) -> Result<(), String> {
    let missing: Vec<String> = now
        .iter()
        .filter(|f| !named.contains(&f.agent))
        .map(|f| f.node_id.clone())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the recovery does not name every consenting family custodian of the lost person \
             (missing: {})",
            missing.join(", ")
        ))
    }
}

/// Whether a shard of `shard` bytes fits under a custody cap of `cap` bytes
/// with `used` bytes held, and on a disk with `free` bytes free (when
/// known).
pub fn room_for(shard: u64, used: u64, cap: u64, free: Option<u64>) -> Result<(), TransferError> {
    if used.checked_add(shard).is_none_or(|total| total > cap) {
        return Err(TransferError::InsufficientStorage(format!(
            "a {shard}-byte shard would take this node's custody to {} bytes, over the {cap} \
             bytes it offers",
            used.saturating_add(shard)
        )));
    }
    if let Some(free) = free {
        if shard > free {
            return Err(TransferError::InsufficientStorage(format!(
                "a {shard}-byte shard does not fit in the {free} bytes free on this node's disk"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_request_is_refused_up_front_naming_its_field() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let ok = PublishRequest {
            path: file.path().to_path_buf(),
            ..Default::default()
        };
        assert_eq!(
            ok.check().unwrap(),
            (Strategy::FullReplica, "private".to_string())
        );
        let refused = |r: PublishRequest| match r.check() {
            Err(CustodyError::BadRequest(m)) => m,
            other => panic!("{r:?} was not refused: {other:?}"),
        };
        for (req, field) in [
            (
                PublishRequest {
                    strategy: Some("mirrored".into()),
                    ..ok.clone()
                },
                "strategy:",
            ),
            (
                PublishRequest {
                    reach: Some("everyone".into()),
                    ..ok.clone()
                },
                "reach:",
            ),
            (
                PublishRequest {
                    strategy: Some("erasure_coded".into()),
                    k: Some(5),
                    n: Some(3),
                    ..ok.clone()
                },
                "k, n:",
            ),
            (
                PublishRequest {
                    path: file.path().with_extension("missing"),
                    ..ok.clone()
                },
                "path:",
            ),
        ] {
            let m = refused(req);
            assert!(m.starts_with(field), "{m:?} names {field}");
        }
        // n left to the family: k alone is checked when the family is known.
        assert!(PublishRequest {
            strategy: Some("erasure_coded".into()),
            k: Some(2),
            ..ok.clone()
        }
        .check()
        .is_ok());
    }

    #[test]
    fn room_is_checked_against_the_cap_and_the_disk() {
        assert_eq!(room_for(10, 80, 100, Some(1_000)), Ok(()));
        assert_eq!(room_for(20, 80, 100, None), Ok(()), "exactly full");
        assert!(matches!(
            room_for(21, 80, 100, Some(1_000)),
            Err(TransferError::InsufficientStorage(m)) if m.contains("offers")
        ));
        assert!(matches!(
            room_for(10, 0, 100, Some(9)),
            Err(TransferError::InsufficientStorage(m)) if m.contains("disk")
        ));
        assert!(
            room_for(u64::MAX, 1, u64::MAX, None).is_err(),
            "an overflowing total"
        );
    }

    #[test]
    fn a_recovery_must_name_the_whole_family_of_now() {
        use holochain_types::prelude::{ActionHash, AgentPubKey};
        let member = |n: u8| FamilyCustodian {
            agent: AgentPubKey::from_raw_32(vec![n; 32]),
            node_id: format!("node-{n}"),
            registration_hash: ActionHash::from_raw_36(vec![n; 36]),
            endpoint: None,
            proof: FamilyProof {
                relationship: ActionHash::from_raw_36(vec![n; 36]),
                consents: vec![],
            },
        };
        let (bob, carol) = (member(1), member(2));
        let family = vec![bob.clone(), carol.clone()];
        assert_eq!(
            names_whole_family(&[bob.agent.clone(), carol.agent.clone()], &family),
            Ok(())
        );
        let subset = names_whole_family(std::slice::from_ref(&bob.agent), &family).unwrap_err();
        assert!(subset.contains("node-2"), "{subset}");
        assert!(names_whole_family(&[], &family).is_err());
        // Someone who left the family since is no reason to refuse.
        assert_eq!(
            names_whole_family(&[bob.agent.clone(), carol.agent.clone()], &[bob]),
            Ok(())
        );
    }
}
