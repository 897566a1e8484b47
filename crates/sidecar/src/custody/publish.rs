//! Publishing: hashing and encoding a file into shards, choosing custodians
//! (family first, then the community, skipping those that do not answer),
//! recording the assignments and delivering each shard, plus the signed
//! transfer requests every outgoing shard transfer carries.
//!
//! Separate because it is the owner's side of custody, run once per publish
//! on the publisher's node; the other roles are a custodian's.

use super::files::{
    codec_threads, hash_file, CountingReader, HashingWriter, TempFile, UPLOAD_CHUNK,
};
use super::{Custody, CustodyError, Progress, ProgressFn, PublishReport, PublishRequest};
use crate::clock::unix_micros;
use crate::custody::catalog::PublishedContent;
use crate::encoding::hex;
use crate::transfer::{canonical_request, TransferAuth};
use holochain_types::prelude::{EntryHash, Signature};
use node_registry_integrity::zome_fns::{
    AssignCustodians, GetAssignmentRecordsForContent, GetAvailableCustodians, GetFamilyCustodians,
    GetShardHolders, SignTransfer,
};
use node_registry_integrity::*;
use registry_core::assignment::{assignment_id, DecisionSource};
use shard_codec::{CodecParams, Encoder, Strategy};
use std::path::Path;

/// How long a push keeps trying a custodian it cannot reach at all.
pub const UNREACHABLE_GIVE_UP: std::time::Duration = std::time::Duration::from_secs(20);
/// How long a push waits for a custodian that went silent while it was
/// taking the shard's bytes: most likely restarting, and it keeps what
/// arrived, so waiting saves sending them again.
pub const RESTART_GRACE: std::time::Duration = std::time::Duration::from_secs(90);
/// How long a publisher waits for a candidate custodian's `/ping`.
const REACHABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);
/// Whether a custodian's answer may change if the publisher asks again:
/// not yet (503), what it has changed since it said (416), or its conductor
/// failed the call (502: one just restarted is not on the network yet).
fn worth_asking_again(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        || status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE
        || status == reqwest::StatusCode::BAD_GATEWAY
}

/// Chunks a shard sent as it is encoded may have waiting for its
/// custodian: a publish holds at most n x this x 256 KiB in memory.
const STREAM_DEPTH: usize = 4;
/// How often a publish shows how far encoding got.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Candidates a publish asks for beyond the custodians it needs, to put a
/// shard elsewhere when one does not answer.
const SPARE_CANDIDATES: usize = 2;

/// The default `(k, n)` of a strategy.
pub(super) fn strategy_defaults(s: Strategy) -> (u32, u32) {
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

/// The content id of `content_hash` published by `owner`: unique per owner,
/// stable across republishing, and recomputed by validation
/// (`registry_core::assignment::content_id`).
pub fn content_id_for(owner: &holochain_types::prelude::AgentPubKey, content_hash: &str) -> String {
    registry_core::assignment::content_id(owner.get_raw_32(), content_hash)
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

impl Custody {
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
            time_micros: unix_micros(),
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
    /// have it repaired. One that goes silent once it has said it would take
    /// the shard gets [`RESTART_GRACE`], and the push then goes on from what
    /// it kept.
    pub async fn deliver(
        &self,
        peer: &str,
        endpoint: &str,
        shard_hash: &str,
        assignment: &str,
        path: &Path,
    ) -> Result<(), CustodyError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        // Given up on after this long without any answer (a custodian that
        // restarts mid-upload answers again within it).
        let mut heard_from = std::time::Instant::now();
        let mut give_up = UNREACHABLE_GIVE_UP;
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            let attempt = match self.ready(peer, endpoint, shard_hash, assignment).await {
                Ok(have) => {
                    heard_from = std::time::Instant::now();
                    give_up = RESTART_GRACE;
                    self.push(peer, endpoint, shard_hash, assignment, path, have, None)
                        .await
                }
                Err(e) => Err(e),
            };
            match attempt {
                Err(CustodyError::Transfer {
                    retry_later: true,
                    detail,
                    ..
                }) if std::time::Instant::now() + wait < deadline
                    && !(detail.starts_with("unreachable") && heard_from.elapsed() >= give_up) =>
                {
                    if !detail.starts_with("unreachable") {
                        heard_from = std::time::Instant::now();
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// Delivers a freshly placed shard: sent at once with its assignment
    /// (the custodian holds it for now, until it sees the assignment on
    /// the DHT: see `custody::provisional`); if the custodian will not take
    /// it that way (its allowance for such shards is used up, say), as
    /// [`Custody::deliver`] does, once it sees the assignment.
    pub async fn deliver_placed(
        &self,
        peer: &str,
        endpoint: &str,
        record: &AssignmentRecord,
        path: &Path,
    ) -> Result<(), CustodyError> {
        let shard_hash = &record.assignment.shard_hash;
        let assignment = record.entry_hash.to_string();
        let early = crate::transfer::encode_assignment_entry(&record.assignment)
            .map_err(|e| CustodyError::BadRequest(e.to_string()))?;
        match self
            .push(
                peer,
                endpoint,
                shard_hash,
                &assignment,
                path,
                None,
                Some(&early),
            )
            .await
        {
            Err(CustodyError::Transfer {
                retry_later: true,
                detail,
                ..
            }) => tracing::debug!("{peer} did not take shard {shard_hash} early: {detail}"),
            done => return done,
        }
        self.deliver(peer, endpoint, shard_hash, &assignment, path)
            .await
    }

    /// Asks a custodian whether it would take the shard now (it answers as
    /// soon as it sees the assignment, or after a short wait): no bytes
    /// are sent before it would. The answer says what it already has of
    /// the shard (a cut upload's bytes, or all of it).
    async fn ready(
        &self,
        peer: &str,
        endpoint: &str,
        shard_hash: &str,
        assignment: &str,
    ) -> Result<Option<(u64, String)>, CustodyError> {
        let url = format!(
            "{}/shards/{shard_hash}/ready",
            endpoint.trim_end_matches('/')
        );
        let resp = self
            .http
            .get(url)
            .query(&[("assignment", assignment)])
            .timeout(super::policy::ASSIGNMENT_WAIT + REACHABLE_WITHIN)
            .send()
            .await
            .map_err(|e| CustodyError::Transfer {
                peer: peer.to_string(),
                detail: format!("unreachable: {e}"),
                retry_later: true,
            })?;
        let status = resp.status();
        if status.is_success() {
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let have = header(crate::transfer::H_HAVE).and_then(|v| v.parse::<u64>().ok());
            let prefix = header(crate::transfer::H_HAVE_BLAKE3);
            return Ok(have.zip(prefix));
        }
        let body = resp.text().await.unwrap_or_default();
        Err(CustodyError::Transfer {
            peer: peer.to_string(),
            detail: format!("{status}: {body}"),
            retry_later: worth_asking_again(status),
        })
    }

    /// Sends a freshly placed shard as it is encoded (the second of a
    /// publish's two encodings: the first only learned the shards' hashes
    /// for their assignments), with its assignment, as
    /// [`Custody::deliver_placed`] sends a file: the assignment's shard
    /// size in bytes, read from `chunks` as the encoder makes them. Dropping
    /// `chunks` early (on a refusal, or a connection lost) lets the encoder
    /// go on without this shard.
    async fn stream_placed(
        &self,
        peer: &str,
        endpoint: &str,
        record: &AssignmentRecord,
        chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<(), CustodyError> {
        let a = &record.assignment;
        let early = crate::transfer::encode_assignment_entry(a)
            .map_err(|e| CustodyError::BadRequest(e.to_string()))?;
        let body = futures_util::stream::unfold(chunks, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        self.put_shard(
            peer,
            endpoint,
            &a.shard_hash,
            &record.entry_hash.to_string(),
            reqwest::Body::wrap_stream(body),
            a.shard_size_bytes,
            Some(&early),
            None,
        )
        .await
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

    /// Sends a shard file to a custodian's sidecar, once: only what comes
    /// after `have` (what the custodian said it has, with its hash) when
    /// this file's first bytes hash the same, nothing when it has it all.
    /// `early` carries the assignment itself (see
    /// [`H_ASSIGNMENT_ENTRY`](crate::transfer::H_ASSIGNMENT_ENTRY)).
    #[allow(clippy::too_many_arguments)]
    pub async fn push(
        &self,
        peer: &str,
        endpoint: &str,
        shard_hash: &str,
        assignment: &str,
        path: &Path,
        have: Option<(u64, String)>,
        early: Option<&str>,
    ) -> Result<(), CustodyError> {
        use tokio::io::AsyncSeekExt;
        let len = tokio::fs::metadata(path).await?.len();
        let (offset, prefix) = match have {
            Some((n, ref theirs)) if n == len && theirs == shard_hash => return Ok(()),
            Some((n, theirs)) if n > 0 && n < len => {
                let path = path.to_path_buf();
                let ours = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                    let mut hasher = blake3::Hasher::new();
                    let file = std::fs::File::open(path)?;
                    std::io::copy(&mut std::io::Read::take(file, n), &mut hasher)?;
                    Ok(hasher.finalize().to_hex().to_string())
                })
                .await
                .map_err(std::io::Error::other)??;
                if ours == theirs {
                    (n, theirs)
                } else {
                    (0, String::new())
                }
            }
            _ => (0, String::new()),
        };
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            UPLOAD_CHUNK,
        ));
        let resume = (offset > 0).then_some((offset, prefix));
        self.put_shard(
            peer,
            endpoint,
            shard_hash,
            assignment,
            body,
            len - offset,
            early,
            resume,
        )
        .await
    }

    /// Sends `len` bytes of a shard (`body`) to a custodian in one signed
    /// `PUT`: all of it, or what comes after `resume`'s offset (with the
    /// blake3 of the bytes before it), with the assignment itself when
    /// `early` carries it. What [`Custody::push`] and a publish's upload of
    /// a shard being encoded both send.
    #[allow(clippy::too_many_arguments)]
    async fn put_shard(
        &self,
        peer: &str,
        endpoint: &str,
        shard_hash: &str,
        assignment: &str,
        body: reqwest::Body,
        len: u64,
        early: Option<&str>,
        resume: Option<(u64, String)>,
    ) -> Result<(), CustodyError> {
        let auth = self.sign("PUT", shard_hash, assignment, peer).await?;
        let mut req = self
            .http
            .put(format!(
                "{}/shards/{shard_hash}",
                endpoint.trim_end_matches('/')
            ))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        for (k, v) in auth.headers() {
            req = req.header(k, v);
        }
        if let Some(a) = early {
            req = req.header(crate::transfer::H_ASSIGNMENT_ENTRY, a);
        }
        if let Some((offset, prefix)) = resume {
            req = req
                .header(crate::transfer::H_OFFSET, offset)
                .header(crate::transfer::H_HAVE_BLAKE3, prefix);
            self.agent.metrics.transfer_resumed_bytes.inc_by(offset);
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
                retry_later: worth_asking_again(status),
            });
        }
        self.agent.metrics.moved("out", len);
        Ok(())
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
        let asked = Placement {
            strategy: strategy.as_str().to_string(),
            k,
            n,
            reach: reach.clone(),
        };
        let seed = self
            .secret
            .encoding_seed(&content_id, &encoding_label(&params));
        // What this node's catalog lists the content as (the owner key is
        // the one the encoder is given, derived from the content id).
        let listing = PublishedContent {
            content_id: content_id.clone(),
            name: file_name(&path),
            size,
            content_hash: content_hash.clone(),
            strategy: asked.strategy.clone(),
            k,
            n,
            reach: reach.clone(),
            key_hex: params
                .needs_owner_key()
                .then(|| hex(self.secret.content_key(&content_id).as_bytes())),
            published_at: unix_micros() / 1_000_000,
        };
        if let Some((placed, live)) = self.placement_of(&content_id).await? {
            if placed != asked {
                return Err(CustodyError::AlreadyPublished {
                    content_id,
                    placed: placed.to_string(),
                    asked: asked.to_string(),
                });
            }
            let (pushed, push_failures) = self
                .complete_placement(&path, params, seed, &live, progress)
                .await?;
            if self.catalog.get(&content_id)?.is_none() {
                // A publish cut off before its end never listed the content.
                self.catalog.put(&listing)?;
            }
            return Ok(PublishReport {
                content_id,
                content_hash,
                size,
                strategy: asked.strategy,
                k,
                n,
                custodians: live
                    .into_iter()
                    .map(|r| r.assignment.custodian_node_id)
                    .collect(),
                pushed,
                push_failures,
                already_published: true,
            });
        }

        // Encode once only to learn the shards' hashes (nothing is written:
        // the assignments name them) while the custodians are chosen (the
        // choice needs only the shards' size); then once more, the same
        // bytes (`seed`), straight into the uploads, so that encoding and
        // sending overlap and no scratch copy is written.
        progress(Progress {
            phase: "encoding".into(),
            done: 0,
            total: size,
        });
        let key = || self.secret.content_key(&content_id);
        let hashing = (0..n).map(|_| HashingWriter::hash_only()).collect();
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let encode = encode_into(&path, params, key(), seed, hashing, read.clone());
        let choose = self.choose_custodians(&req, &family, n, size.div_ceil(k as u64), &content_id);
        let (encoded, chosen) = show_progress(
            async { tokio::join!(encode, choose) },
            "encoding",
            &read,
            size,
            progress,
        )
        .await;
        let (first, shard_files) = encoded?;
        let shard_files = hashed(shard_files)?;
        let chosen = chosen?;
        progress(Progress {
            phase: "encoding".into(),
            done: size,
            total: size,
        });
        progress(Progress {
            phase: "assigning".into(),
            done: 0,
            total: n as u64,
        });
        let round: Vec<String> = chosen.iter().map(|c| c.node_id.clone()).collect();

        // Record the assignments, in one call.
        let mut assignments = Vec::new();
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
            assignments.push(a);
        }
        let _: Vec<holochain_types::prelude::ActionHash> = self
            .agent
            .retrying(|| self.agent.call_fn::<AssignCustodians>(assignments.clone()))
            .await?;
        progress(Progress {
            phase: "assigning".into(),
            done: n as u64,
            total: n as u64,
        });
        let records = assignments
            .into_iter()
            .map(|a| {
                Ok(AssignmentRecord {
                    entry_hash: assignment_entry_hash(&a)?,
                    assignment: a,
                    assigned_at: None,
                })
            })
            .collect::<Result<Vec<_>, CustodyError>>()?;

        // From here: each custodian takes its bytes as they are encoded,
        // holding them until its assignment arrives through the DHT. One
        // that will not take them that way (or is cut off) is sent its
        // shard once it sees the assignment, from what it kept, below.
        let runtime = tokio::runtime::Handle::current();
        let mut writers = Vec::with_capacity(n as usize);
        let mut uploads = Vec::with_capacity(n as usize);
        for (c, r) in chosen.iter().zip(&records) {
            match &c.endpoint {
                Some(ep) => {
                    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_DEPTH);
                    writers.push(HashingWriter::upload(tx, runtime.clone()).unhashed());
                    uploads.push(Some(self.stream_placed(&c.node_id, ep, r, rx)));
                }
                None => {
                    writers.push(HashingWriter::hash_only().unhashed());
                    uploads.push(None);
                }
            }
        }
        progress(Progress {
            phase: "pushing".into(),
            done: 0,
            total: size,
        });
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let encode = encode_into(&path, params, key(), seed, writers, read.clone());
        let sending = futures_util::future::join_all(uploads.into_iter().map(|u| async move {
            match u {
                Some(u) => Some(u.await),
                None => None,
            }
        }));
        let (encoded, sent) = show_progress(
            async { tokio::join!(encode, sending) },
            "pushing",
            &read,
            size,
            progress,
        )
        .await;
        let (again, lens) = encoded?;
        // The manifests commit to every byte of every shard (each shard's
        // hash covers its stripes' hashes), so comparing them checks the
        // bytes just sent without hashing them a second time here.
        if again.manifest != first.manifest
            || lens
                .iter()
                .map(|(_, l)| *l)
                .ne(shard_files.iter().map(|(_, l)| *l))
        {
            // Not the shards placed: the codec is not deterministic under
            // its seed (a bug); what was sent fails its hash check.
            return Err(CustodyError::BadRequest(format!(
                "encoding {content_id} again made other shards than the first time"
            )));
        }
        let mut pushed = 0;
        let mut failures = Vec::new();
        let mut lacking = Vec::new();
        for ((c, r), result) in chosen.iter().zip(&records).zip(sent) {
            let i = r.assignment.shard_index;
            match (result, &c.endpoint) {
                (Some(Ok(())), _) => pushed += 1,
                (
                    Some(Err(CustodyError::Transfer {
                        retry_later: true,
                        detail,
                        ..
                    })),
                    Some(ep),
                ) => {
                    tracing::debug!(
                        "{} did not take shard {i} as it was encoded: {detail}",
                        c.node_id
                    );
                    lacking.push((r, ep.clone(), true));
                }
                (Some(Err(e)), _) => {
                    tracing::warn!("shard {i} of {content_id}: {e}");
                    failures.push(e.to_string());
                }
                (None, _) => {
                    let e = CustodyError::Transfer {
                        peer: c.node_id.clone(),
                        detail: "no endpoint registered".into(),
                        retry_later: false,
                    };
                    tracing::warn!("shard {i} of {content_id}: {e}");
                    failures.push(e.to_string());
                }
            }
        }
        if !lacking.is_empty() {
            let (sent, more) = self
                .send_lacking(&path, params, seed, &lacking, progress)
                .await?;
            pushed += sent;
            failures.extend(more);
        }

        self.catalog.put(&listing)?;
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
            already_published: false,
        })
    }

    /// Chooses `n` distinct custodians for shards of about `shard_size`
    /// bytes: family first, then the community (never this node), a
    /// candidate whose sidecar does not answer giving way to the next.
    async fn choose_custodians(
        &self,
        req: &PublishRequest,
        family: &[FamilyCustodian],
        n: u32,
        shard_size: u64,
        content_id: &str,
    ) -> Result<Vec<Slot>, CustodyError> {
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
            let filters = CustodianFilters {
                region: req.region.clone(),
                min_tier: req.min_tier.clone(),
                exclude_nodes: exclude,
                min_storage_bytes: Some(shard_size),
                content_id: Some(content_id.to_string()),
                limit: Some((missing + SPARE_CANDIDATES) as u32),
                ..Default::default()
            };
            // The heaviest read of a publish: on a conductor just restarted
            // and busy it can outlast the websocket's request timeout (the
            // link is then reopened), so it is asked again, as writes are.
            let community: Vec<RankedCustodian> = self
                .agent
                .retrying(|| {
                    self.agent
                        .read_fn::<GetAvailableCustodians>(filters.clone())
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
        Ok(chosen)
    }

    /// The placement `content_id` already has, and its live assignments in
    /// shard order, if this owner published it before (this node's own
    /// writes are read back at once, another node of the same owner's once
    /// they arrive). `None` when nothing is placed.
    async fn placement_of(
        &self,
        content_id: &str,
    ) -> Result<Option<(Placement, Vec<AssignmentRecord>)>, CustodyError> {
        let mut live: Vec<AssignmentRecord> = self
            .agent
            .call_fn::<GetAssignmentRecordsForContent>(content_id.to_string())
            .await?;
        let Some(first) = live.first() else {
            return Ok(None);
        };
        let a = &first.assignment;
        let placed = Placement {
            strategy: a.strategy.clone(),
            k: a.threshold,
            n: a.shard_count,
            reach: a.reach.clone(),
        };
        live.sort_by_key(|r| r.assignment.shard_index);
        Ok(Some((placed, live)))
    }

    /// Sends the custodians of an existing placement the shards they lack
    /// (a publish cut off mid-push, a custodian that lost its copy before
    /// rebuilding it): each is asked what it holds, and only if one lacks
    /// its shard is the file encoded again, into the same shards as the
    /// first time (`seed`), and that shard sent. Returns how many were
    /// sent and why others could not be.
    async fn complete_placement(
        &self,
        path: &Path,
        params: CodecParams,
        seed: [u8; 32],
        live: &[AssignmentRecord],
        progress: ProgressFn<'_>,
    ) -> Result<(u32, Vec<String>), CustodyError> {
        let Some(first) = live.first() else {
            return Ok((0, vec![]));
        };
        let content_id = &first.assignment.content_id;
        let holders: Vec<ShardHolder> = self
            .agent
            .call_fn::<GetShardHolders>(content_id.clone())
            .await?;
        let endpoint_of = |r: &AssignmentRecord| {
            holders
                .iter()
                .find(|h| h.assignment == r.entry_hash)
                .and_then(|h| h.endpoint.clone())
        };
        progress(Progress {
            phase: "checking".into(),
            done: 0,
            total: live.len() as u64,
        });
        let answers = futures_util::future::join_all(live.iter().map(|r| async {
            let a = &r.assignment;
            let Some(endpoint) = endpoint_of(r) else {
                return Err(format!(
                    "shard {} on {}: no endpoint registered",
                    a.shard_index, a.custodian_node_id
                ));
            };
            let have = self
                .ready(
                    &a.custodian_node_id,
                    &endpoint,
                    &a.shard_hash,
                    &r.entry_hash.to_string(),
                )
                .await;
            match have {
                Ok(Some((len, hash))) if len == a.shard_size_bytes && hash == a.shard_hash => {
                    Ok(None)
                }
                // Lacking it (what a cut upload left is sent on from), or
                // not seeing the assignment yet (it is sent with the
                // shard, as at first).
                Ok(_) => Ok(Some((endpoint, true))),
                Err(CustodyError::Transfer {
                    retry_later: true, ..
                }) => Ok(Some((endpoint, false))),
                Err(e) => Err(format!("shard {}: {e}", a.shard_index)),
            }
        }))
        .await;
        progress(Progress {
            phase: "checking".into(),
            done: live.len() as u64,
            total: live.len() as u64,
        });
        let mut failures = Vec::new();
        let mut lacking = Vec::new();
        for (r, answer) in live.iter().zip(answers) {
            match answer {
                Ok(Some((endpoint, seen))) => lacking.push((r, endpoint, seen)),
                Ok(None) => {}
                Err(e) => failures.push(e),
            }
        }
        let (pushed, more) = self
            .send_lacking(path, params, seed, &lacking, progress)
            .await?;
        failures.extend(more);
        Ok((pushed, failures))
    }

    /// Encodes the file again, into the same shards as placed (`seed`),
    /// and sends each custodian in `lacking` its shard: `(assignment,
    /// endpoint, seen)`, where `seen` says the custodian sees the
    /// assignment already (else the shard goes with it, as at first).
    /// Returns how many were sent and why others could not be.
    async fn send_lacking(
        &self,
        path: &Path,
        params: CodecParams,
        seed: [u8; 32],
        lacking: &[(&AssignmentRecord, String, bool)],
        progress: ProgressFn<'_>,
    ) -> Result<(u32, Vec<String>), CustodyError> {
        let Some((first, ..)) = lacking.first() else {
            return Ok((0, vec![]));
        };
        let content_id = &first.assignment.content_id;
        let mut failures = Vec::new();
        progress(Progress {
            phase: "encoding".into(),
            done: 0,
            total: first.assignment.content_size_bytes,
        });
        // Every shard is made again (the codec makes them together), but
        // only those a custodian lacks are kept to be sent.
        let tmps: Vec<Option<TempFile>> = (0..params.n)
            .map(|i| {
                if lacking
                    .iter()
                    .any(|(r, ..)| r.assignment.shard_index == i as u32)
                {
                    self.temp_path(&format!("shard{i}"))
                        .map(|p| Some(TempFile(p)))
                } else {
                    Ok(None)
                }
            })
            .collect::<std::io::Result<_>>()?;
        let key = self.secret.content_key(content_id);
        let kept: Vec<Option<&TempFile>> = tmps.iter().map(Option::as_ref).collect();
        let (_, shard_files) = encode_to_files(path, params, key, seed, &kept).await?;
        progress(Progress {
            phase: "pushing".into(),
            done: 0,
            total: lacking.len() as u64,
        });
        let delivered = std::sync::atomic::AtomicU64::new(0);
        let total = lacking.len() as u64;
        let results = futures_util::future::join_all(lacking.iter().map(|(r, endpoint, seen)| {
            let delivered = &delivered;
            let tmps = &tmps;
            let shard_files = &shard_files;
            async move {
                let a = &r.assignment;
                let i = a.shard_index as usize;
                let peer = &a.custodian_node_id;
                let result = match (shard_files.get(i), tmps.get(i).and_then(Option::as_ref)) {
                    (Some((hash, _)), Some(tmp)) if *hash == a.shard_hash => if *seen {
                        let assignment = r.entry_hash.to_string();
                        self.deliver(peer, endpoint, hash, &assignment, &tmp.0)
                            .await
                    } else {
                        self.deliver_placed(peer, endpoint, r, &tmp.0).await
                    }
                    .map_err(|e| format!("shard {i}: {e}")),
                    _ => Err(format!(
                        "shard {i}: encoded again it is not the shard placed (published \
                         before encodings were reproducible); {} rebuilds it from the others",
                        a.custodian_node_id
                    )),
                };
                progress(Progress {
                    phase: "pushing".into(),
                    done: delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    total,
                });
                result
            }
        }))
        .await;
        let mut pushed = 0;
        for result in results {
            match result {
                Ok(()) => pushed += 1,
                Err(e) => {
                    tracing::warn!("re-publishing {content_id}: {e}");
                    failures.push(e);
                }
            }
        }
        Ok((pushed, failures))
    }
}

/// Awaits `work`, showing `phase` progress every [`PROGRESS_EVERY`] as
/// the content bytes counted in `read` (out of `total`).
async fn show_progress<T>(
    work: impl std::future::Future<Output = T>,
    phase: &str,
    read: &std::sync::atomic::AtomicU64,
    total: u64,
    progress: ProgressFn<'_>,
) -> T {
    let shown = async {
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            progress(Progress {
                phase: phase.into(),
                done: read.load(std::sync::atomic::Ordering::Relaxed).min(total),
                total,
            });
        }
    };
    tokio::select! {
        done = work => done,
        _ = shown => unreachable!("progress is shown until the work ends"),
    }
}

/// Encodes the file at `path` into its shards, on a blocking thread,
/// keeping shard `i` in the scratch file `kept[i]` when there is one (and
/// writing nothing for it otherwise); returns the codec's report and each
/// shard's blake3 (hex) and length. `seed` fixes the encoding's
/// randomness: the same file, seed and key make the same shards.
async fn encode_to_files(
    path: &Path,
    params: CodecParams,
    key: shard_codec::ContentKey,
    seed: [u8; 32],
    kept: &[Option<&TempFile>],
) -> Result<(shard_codec::EncodeReport, Vec<(String, u64)>), CustodyError> {
    let writers = kept
        .iter()
        .map(|t| match t {
            Some(t) => HashingWriter::create(&t.0),
            None => Ok(HashingWriter::hash_only()),
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let (report, shards) =
        encode_into(path, params, key, seed, writers, Default::default()).await?;
    Ok((report, hashed(shards)?))
}

/// The hashes of shards encoded through hashing writers.
fn hashed(shards: Vec<(Option<String>, u64)>) -> Result<Vec<(String, u64)>, CustodyError> {
    shards
        .into_iter()
        .map(|(hash, len)| match hash {
            Some(h) => Ok((h, len)),
            None => Err(shard_codec::CodecError::Internal(
                "a shard written through a writer that does not hash".into(),
            )
            .into()),
        })
        .collect()
}

/// Encodes the file at `path` into `writers` (shard `i` into `writers[i]`),
/// on a blocking thread, counting the content bytes read in `read`;
/// returns the codec's report and each shard's blake3 (hex, if its writer
/// hashes) and length.
async fn encode_into(
    path: &Path,
    params: CodecParams,
    key: shard_codec::ContentKey,
    seed: [u8; 32],
    mut writers: Vec<HashingWriter>,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<(shard_codec::EncodeReport, Vec<(Option<String>, u64)>), CustodyError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<_, CustodyError> {
        let mut encoder = Encoder::new(params)?
            .with_seed(seed)
            .with_threads(codec_threads());
        if params.needs_owner_key() {
            encoder = encoder.with_key(key);
        }
        let content = CountingReader {
            inner: std::fs::File::open(&path)?,
            read,
        };
        let report = encoder.encode_stream(content, &mut writers)?;
        // Not fsynced: scratch copies are the publisher's, removed once
        // pushed (a crash loses the publish, not data, and a publish run
        // again makes them again); the custodian makes its shard durable
        // before it answers.
        let files = writers
            .into_iter()
            .map(|mut w| {
                w.finish();
                (w.hash_hex(), w.len)
            })
            .collect();
        Ok((report, files))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Every codec parameter the shards depend on: the label of an encoding's
/// seed, so that no two encodings that lay out the bytes differently (a
/// stripe size, a shape) share a seed, and with it a nonce under one key.
fn encoding_label(params: &CodecParams) -> String {
    format!(
        "{} {}-of-{} stripe {} encrypt {}",
        params.strategy.as_str(),
        params.k,
        params.n,
        params.stripe_size,
        params.encrypt
    )
}

/// The name a published file is listed under: its file name.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How a content is placed: what a second publish of the same bytes is
/// compared against.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    strategy: String,
    k: u32,
    n: u32,
    reach: String,
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}-of-{} (reach {})",
            self.strategy, self.k, self.n, self.reach
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A content file of `len` bytes in a fresh directory.
    fn content_file(len: u32) -> (tempfile::TempDir, std::path::PathBuf, u64) {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&content, &bytes).unwrap();
        (dir, content, len as u64)
    }

    /// A shard made again only to learn its hash is not written anywhere,
    /// and hashes as it does when kept.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_shard_not_kept_hashes_the_same_and_is_not_written() {
        let (dir, content, _) = content_file(300_000);
        let params = CodecParams::erasure_coded(2, 3);
        let key = || shard_codec::ContentKey::from_bytes([9; 32]);
        let seed = [4; 32];
        let files = |tag: &str| -> Vec<TempFile> {
            (0..3)
                .map(|i| TempFile(dir.path().join(format!("{tag}{i}"))))
                .collect()
        };

        let all = files("all");
        let kept: Vec<Option<&TempFile>> = all.iter().map(Some).collect();
        let (_, every) = encode_to_files(&content, params, key(), seed, &kept)
            .await
            .unwrap();
        let some = files("some");
        let kept = vec![None, Some(&some[1]), None];
        let (_, again) = encode_to_files(&content, params, key(), seed, &kept)
            .await
            .unwrap();

        assert_eq!(again, every, "the same shards, kept or not");
        assert!(!some[0].0.exists() && !some[2].0.exists());
        let written = std::fs::read(&some[1].0).unwrap();
        assert_eq!(written, std::fs::read(&all[1].0).unwrap());
        assert_eq!(blake3::hash(&written).to_hex().as_str(), every[1].0);
    }

    /// The second encoding of a publish is checked by its manifest, not by
    /// hashing what it sent: the same file, key and seed give the same
    /// manifest, and any other byte of any shard (another seed, another
    /// key, one byte of the content changed) gives another.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_encoding_made_again_is_checked_by_its_manifest() {
        let (dir, content, _) = content_file(300_000);
        // Encrypted with the owner's key (a key split draws its own).
        let params = CodecParams::erasure_coded(2, 3);
        let key = |b: u8| shard_codec::ContentKey::from_bytes([b; 32]);
        let unhashed = || {
            (0..3)
                .map(|_| HashingWriter::hash_only().unhashed())
                .collect()
        };
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let manifest = |path: std::path::PathBuf, k: u8, seed: u8| {
            let read = read.clone();
            async move {
                let (report, shards) =
                    encode_into(&path, params, key(k), [seed; 32], unhashed(), read)
                        .await
                        .unwrap();
                assert!(shards.iter().all(|(h, _)| h.is_none()), "nothing hashed");
                report.manifest
            }
        };
        let placed = manifest(content.clone(), 1, 1).await;
        assert_eq!(manifest(content.clone(), 1, 1).await, placed);
        assert_ne!(
            manifest(content.clone(), 1, 2).await,
            placed,
            "another seed"
        );
        assert_ne!(manifest(content.clone(), 2, 1).await, placed, "another key");
        let mut bytes = std::fs::read(&content).unwrap();
        bytes[150_000] ^= 1;
        let changed = dir.path().join("changed");
        std::fs::write(&changed, bytes).unwrap();
        assert_ne!(manifest(changed, 1, 1).await, placed, "one content byte");
    }

    /// A shard fed to an upload while encoded is the shard a file would
    /// keep, byte for byte; an upload that stops taking bytes midway does
    /// not stop the encoding or change any shard's hash.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_shard_fed_to_an_upload_is_the_shard_kept_in_a_file() {
        // Several upload chunks per shard.
        let (dir, content, len) = content_file(3_000_000);
        let params = CodecParams::erasure_coded(2, 3);
        let key = || shard_codec::ContentKey::from_bytes([5; 32]);
        let seed = [8; 32];
        let all: Vec<TempFile> = (0..3)
            .map(|i| TempFile(dir.path().join(format!("file{i}"))))
            .collect();
        let kept: Vec<Option<&TempFile>> = all.iter().map(Some).collect();
        let (_, in_files) = encode_to_files(&content, params, key(), seed, &kept)
            .await
            .unwrap();

        let runtime = tokio::runtime::Handle::current();
        let (tx0, mut rx0) = tokio::sync::mpsc::channel(STREAM_DEPTH);
        let (tx1, mut rx1) = tokio::sync::mpsc::channel(STREAM_DEPTH);
        let writers = vec![
            HashingWriter::upload(tx0, runtime.clone()),
            HashingWriter::upload(tx1, runtime.clone()),
            HashingWriter::hash_only(),
        ];
        let whole = async {
            let mut got = Vec::new();
            while let Some(chunk) = rx0.recv().await {
                got.extend_from_slice(&chunk);
            }
            got
        };
        let cut = async {
            let first = rx1.recv().await.unwrap();
            drop(rx1);
            first.len()
        };
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (encoded, got, cut_after) = tokio::join!(
            encode_into(&content, params, key(), seed, writers, read.clone()),
            whole,
            cut
        );
        let (_, streamed) = encoded.unwrap();
        let streamed = hashed(streamed).unwrap();
        assert_eq!(streamed, in_files, "the same shards, streamed or kept");
        assert_eq!(got, std::fs::read(&all[0].0).unwrap());
        assert!(
            (cut_after as u64) < streamed[1].1,
            "the cut upload took part of its shard"
        );
        assert_eq!(read.load(std::sync::atomic::Ordering::Relaxed), len);
    }
}
