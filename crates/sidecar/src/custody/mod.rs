//! Custody in motion: publishing content as shards to custodians, getting it
//! back, obtaining (rebuilding) a shard this node was assigned, reconciling
//! the store with the DHT, and repairing after a node fails.
//!
//! One [`Custody`] per node; its work is split by role, one file each:
//!
//! - `publish`: encode a file, choose custodians, assign and deliver shards;
//! - `retrieve`: fetch enough shards back and decode them;
//! - `repair`: rebuild an assigned shard, detect failed nodes and re-home
//!   their shards, act on the DNA's signals;
//! - `resync`: the reconciliation pass holding every assigned shard;
//! - `policy`: what this node accepts and serves as a custodian;
//! - `files`: hashing writers, temp files and the work directory;
//! - `writeback`: a shard written to disk while it arrives.
//!
//! This file holds the engine itself, its errors and the request and report
//! types the API speaks.

mod arrival;
pub mod catalog;
mod files;
mod policy;
pub mod provisional;
mod publish;
mod repair;
mod resync;
mod retrieve;
pub mod store;
mod writeback;

pub use policy::{names_whole_family, room_for, LostNodeAlive};
pub use publish::{assignment_entry_hash, content_id_for, UNREACHABLE_GIVE_UP};

use crate::custody::catalog::Catalog;
use crate::custody::store::{ShardStore, StoreError};
use crate::node::agent::NodeAgent;
use crate::recovery::secret::RecoverySecret;
use crate::registry::conductor::ConductorError;
use node_registry_integrity::*;
use serde::{Deserialize, Serialize};
use shard_codec::{CodecParams, Strategy};
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
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
    /// These bytes are already published by this owner with another
    /// placement. The content id depends only on the owner and the bytes, so
    /// a second placement would compete with the first for the same
    /// assignments (and lose): refused, naming both.
    #[error(
        "content {content_id} is already published as {placed}; publishing the same bytes \
         as {asked} is refused (one content has one placement: re-placing published \
         content is not supported yet)"
    )]
    AlreadyPublished {
        /// The content.
        content_id: String,
        /// Its placement: strategy, k-of-n and reach.
        placed: String,
        /// The placement asked for.
        asked: String,
    },
    /// A content id from the DHT or a request is not the canonical form.
    #[error(transparent)]
    InvalidContentId(#[from] crate::ids::InvalidContentId),
    /// A rebuild that can wait for the node's off-peak hours (its content
    /// still has more than the k shards it needs elsewhere).
    #[error("deferred to the off-peak hours: {0}")]
    Deferred(String),
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
            let (dk, _) = publish::strategy_defaults(strategy);
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
    /// The content id (owner- and content-derived: the same bytes published
    /// again are the same content).
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
    /// Shards delivered (for a content already published: shards sent
    /// again to custodians that lacked them).
    pub pushed: u32,
    /// Shards whose delivery failed (their custodians will rebuild them).
    pub push_failures: Vec<String>,
    /// The same bytes were already published with this placement: nothing
    /// was written to the DHT, only shards a custodian lacked were sent
    /// (`pushed`), and `custodians` are the current holders.
    #[serde(default)]
    pub already_published: bool,
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
    in_flight: Mutex<std::collections::HashMap<String, crate::http::network_view::Rebuild>>,
    /// Nodes that looked failed here but answered a probe, and when: not
    /// probed again (nor repaired) for one failure window.
    answered: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Nonces of the transfer requests accepted in their window.
    seen: crate::transfer::replay::SeenNonces,
    /// The last `DisasterRecoveryFailed` signals this node's own repairs
    /// raised, newest last (at most
    /// [`REPAIR_FAILURES_KEPT`](repair::REPAIR_FAILURES_KEPT)).
    pub repair_failures: Mutex<VecDeque<RegistrySignal>>,
    /// Replications started by signals now running.
    replicating: Arc<tokio::sync::Semaphore>,
    /// Uploads waiting for their assignment to arrive (see
    /// `policy::ASSIGNMENT_WAITERS`).
    awaiting_assignments: tokio::sync::Semaphore,
    /// Shards being uploaded to this node now, by hash.
    receiving: Arc<Mutex<HashSet<String>>>,
    /// Bytes of uploads under way to be held for now, by sender.
    provisional_reserved: provisional::Reserved,
    /// The pace of serving and repair traffic (the declared bandwidth).
    pub bandwidth: Arc<crate::transfer::bandwidth::Bandwidth>,
    /// The nodes judged failed, and when that was read.
    failed_view: tokio::sync::Mutex<Option<(std::time::Instant, HashSet<String>)>>,
    /// The person's recovery secret, from which content keys derive.
    pub secret: RecoverySecret,
    /// What this node served and received, summarised once per period.
    pub rewards: crate::node::rewards::Rewards,
}

impl Custody {
    /// Opens the store and catalog under the agent's data directory.
    pub fn open(agent: Arc<NodeAgent>) -> Result<Custody, CustodyError> {
        let data = agent.config().conductor.data_dir.clone();
        let store = ShardStore::open(&data.join("shards"))?;
        let catalog = Catalog::open(&data.join("catalog.redb"))?;
        let secret = crate::recovery::secret::load_or_create(&data)?;
        let work_dir = data.join("work");
        std::fs::create_dir_all(&work_dir)?;
        for e in std::fs::read_dir(&work_dir)? {
            let _ = std::fs::remove_file(e?.path());
        }
        let bandwidth = Arc::new(crate::transfer::bandwidth::Bandwidth::new(
            agent.registration().max_bandwidth_mbps,
        ));
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
                .read_timeout(retrieve::FETCH_READ_TIMEOUT)
                .build()
                .expect("a default HTTP client builds"),
            work_dir,
            in_flight: Mutex::new(std::collections::HashMap::new()),
            answered: Mutex::new(std::collections::HashMap::new()),
            seen: crate::transfer::replay::SeenNonces::default(),
            repair_failures: Mutex::new(VecDeque::new()),
            replicating: Arc::new(tokio::sync::Semaphore::new(repair::SIGNALLED_REPLICATIONS)),
            awaiting_assignments: tokio::sync::Semaphore::new(policy::ASSIGNMENT_WAITERS),
            receiving: Arc::new(Mutex::new(HashSet::new())),
            provisional_reserved: Default::default(),
            bandwidth,
            failed_view: tokio::sync::Mutex::new(None),
            secret,
            rewards: crate::node::rewards::Rewards::open(&data),
        })
    }
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
}
