//! Retrieving: fetching enough verified shards of a content from its
//! holders, decoding them (with the owner's key, or a recovered person's)
//! and checking the result against the assignments.
//!
//! Separate because it is the reading side of custody: publish writes
//! shards out, this brings them back, and repair reuses its
//! [`Custody::fetch_some`] to gather what a rebuild needs.

use super::arrival::{Arrival, ArrivingReader, EndOnDrop};
use super::files::{HashingWriter, TempFile};
use super::{Custody, CustodyError, Progress, ProgressFn, RetrieveReport};
use node_registry_integrity::zome_fns::{GetAssignmentRecordsForContent, GetShardHolders};
use node_registry_integrity::*;
use shard_codec::{ContentKey, Decoder, Strategy};
use std::path::Path;

/// Longest a retrieve waits to see enough holders of a placed content (see
/// [`Custody::await_holders`]).
const HOLDERS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest a peer may leave a download without sending a byte.
pub(super) const FETCH_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Custody {
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
        progress(Progress {
            phase: "locating".into(),
            done: 0,
            total: 1,
        });
        // Where the content is placed and who holds it, read at once.
        let (live, holders) = tokio::join!(
            self.agent
                .call_fn::<GetAssignmentRecordsForContent>(content_id.to_string()),
            self.agent
                .call_fn::<GetShardHolders>(content_id.to_string())
        );
        let live: Vec<AssignmentRecord> = live?;
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
        let needed = if strategy == Strategy::FullReplica {
            1
        } else {
            first.assignment.threshold as usize
        };
        let mut holders = self
            .await_holders(content_id, holders?, needed.min(live.len()))
            .await?;
        // The lowest shard indices first: a systematic code's first k
        // shards are the content's own pieces, decoded without
        // reconstructing anything.
        holders.sort_by_key(|h| h.shard_index);
        // Decoding while the shards arrive, when they all come from other
        // nodes; should that not work out, fetching them first (going on
        // from what arrived), then decoding.
        let own = holders.iter().any(|h| h.node_id == self.agent.node_id);
        let mut failed = Vec::new();
        let overlapped = if !own && holders.len() >= needed {
            match self
                .fetch_decoding(
                    &holders[..needed],
                    first,
                    recovery,
                    key.clone(),
                    &mut failed,
                    progress,
                )
                .await
            {
                Ok(done) => Some(done),
                Err(e @ (CustodyError::MissingKey(_) | CustodyError::Codec(_))) => return Err(e),
                Err(e) => {
                    tracing::info!(
                        "content {content_id}: decoding while fetching did not work out ({e}); fetching, then decoding"
                    );
                    None
                }
            }
        } else {
            None
        };
        let (tmp, size, hash, from) = match overlapped {
            Some(Overlap::Decoded(tmp, size, hash, from)) => (tmp, size, hash, from),
            Some(Overlap::Fetched(files, from)) => {
                // Every shard arrived whole, but not as the decoder read
                // it (a download started again): decoded from the files.
                tracing::info!(
                    "content {content_id}: a download started again while decoding; decoding the shards fetched"
                );
                self.decode_files(content_id, &files, key, from, first, progress)?
            }
            None => {
                // Holders that just failed are asked last.
                holders.sort_by_key(|h| failed.contains(&h.node_id));
                let (files, from) = self
                    .fetch_some(&holders, needed, first, recovery, false, progress)
                    .await?;
                self.decode_files(content_id, &files, key, from, first, progress)?
            }
        };
        let expected_hash = first.assignment.content_hash.clone();
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

    /// Fetches the shards of `wave` (one holder each) and decodes them at
    /// the same time, the decoder reading each shard as it arrives (see
    /// `arrival`). Returns the decoded content, or, if a download started
    /// again under the decoder, the shards fetched whole, to decode from
    /// their files. Fails if any fetch does (naming its holder in
    /// `failed`), or the decoder on shards it read whole (a codec error or
    /// a missing key: the content's own).
    async fn fetch_decoding(
        &self,
        wave: &[ShardHolder],
        serving: &AssignmentRecord,
        recovery: Option<&str>,
        key: Option<ContentKey>,
        failed: &mut Vec<String>,
        progress: ProgressFn<'_>,
    ) -> Result<Overlap, CustodyError> {
        let content_id = serving.assignment.content_id.clone();
        let max_bytes = serving.assignment.shard_size_bytes;
        let ours = serving.entry_hash.to_string();
        progress(Progress {
            phase: "fetching".into(),
            done: 0,
            total: wave.len() as u64,
        });
        let arrivals: Vec<std::sync::Arc<Arrival>> =
            wave.iter().map(|_| Default::default()).collect();
        let readers: Vec<ArrivingReader> = arrivals
            .iter()
            .map(|a| ArrivingReader::new(a.clone()))
            .collect();
        let tmp = TempFile(self.temp_path("decode")?);
        let out = tmp.0.clone();
        let id = content_id.clone();
        let decode = tokio::task::spawn_blocking(move || decode_into(&id, readers, key, &out));
        let fetched = futures_util::future::join_all(wave.iter().zip(&arrivals).map(|(h, a)| {
            // A recovering node names the holder's own assignment.
            let serving = match recovery {
                Some(_) => h.assignment.to_string(),
                None => ours.clone(),
            };
            async move {
                self.fetch_to_temp(h, &serving, recovery, max_bytes, false, Some(a))
                    .await
            }
        }))
        .await;
        let mut files = Vec::new();
        let mut from = Vec::new();
        let mut errors = Vec::new();
        for (h, f) in wave.iter().zip(fetched) {
            match f {
                Ok(file) => {
                    files.push(file);
                    from.push(h.node_id.clone())
                }
                Err(e) => {
                    failed.push(h.node_id.clone());
                    errors.push(e.to_string())
                }
            }
        }
        progress(Progress {
            phase: "decoding".into(),
            done: 0,
            total: serving.assignment.content_size_bytes,
        });
        let decoded = decode.await.map_err(std::io::Error::other)?;
        if !errors.is_empty() {
            return Err(CustodyError::TooFewShards {
                content_id,
                got: from.len(),
                needed: wave.len(),
                detail: errors.join("; "),
            });
        }
        match decoded {
            Ok((size, hash)) => Ok(Overlap::Decoded(tmp, size, hash, from)),
            // Every shard arrived whole and was read without an error:
            // the decoder's verdict is on the content's own bytes.
            Err(e) if arrivals.iter().all(|a| a.whole()) => Err(e),
            Err(_) => Ok(Overlap::Fetched(files, from)),
        }
    }

    /// Decodes whole shards fetched into `files` (sent by `from`) into a
    /// temp file of this node's; returns it with the content's size and
    /// blake3, and `from`.
    fn decode_files(
        &self,
        content_id: &str,
        files: &[TempFile],
        key: Option<ContentKey>,
        from: Vec<String>,
        first: &AssignmentRecord,
        progress: ProgressFn<'_>,
    ) -> Result<(TempFile, u64, String, Vec<String>), CustodyError> {
        progress(Progress {
            phase: "decoding".into(),
            done: 0,
            total: first.assignment.content_size_bytes,
        });
        let tmp = TempFile(self.temp_path("decode")?);
        let (size, hash) = tokio::task::block_in_place(|| {
            let readers = files
                .iter()
                .map(|f| std::fs::File::open(&f.0).map(std::io::BufReader::new))
                .collect::<std::io::Result<Vec<_>>>()?;
            decode_into(content_id, readers, key, &tmp.0)
        })?;
        Ok((tmp, size, hash, from))
    }

    /// The holders of a content once at least `want` are visible, or those
    /// visible after [`HOLDERS_WAIT`]. A holder is a live assignment whose
    /// custodian's registration this node can read: right after a custodian
    /// updated its registration (a restart that declares new capacity), the
    /// newest version may not have reached this node yet, and the content
    /// would look unheld while its custodian is there to serve it.
    async fn await_holders(
        &self,
        content_id: &str,
        mut holders: Vec<ShardHolder>,
        want: usize,
    ) -> Result<Vec<ShardHolder>, CustodyError> {
        let deadline = tokio::time::Instant::now() + HOLDERS_WAIT;
        while holders.len() < want && tokio::time::Instant::now() < deadline {
            tracing::info!(
                "content {content_id}: {} of its {want} holders visible here yet; looking again",
                holders.len()
            );
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            holders = self
                .agent
                .call_fn::<GetShardHolders>(content_id.to_string())
                .await?;
        }
        Ok(holders)
    }

    /// Fetches `needed` verified shards from `holders` (trying each in turn).
    /// Every request names `serving` (this node's assignment, or the
    /// content's first live one), whose shard size caps each download.
    pub(super) async fn fetch_some(
        &self,
        holders: &[ShardHolder],
        needed: usize,
        serving: &AssignmentRecord,
        recovery: Option<&str>,
        paced: bool,
        progress: ProgressFn<'_>,
    ) -> Result<(Vec<TempFile>, Vec<String>), CustodyError> {
        let content_id = serving.assignment.content_id.as_str();
        let max_bytes = serving.assignment.shard_size_bytes;
        let serving = serving.entry_hash.to_string();
        let mut files = Vec::new();
        let mut from = Vec::new();
        let mut errors = Vec::new();
        let mut remote = Vec::new();
        for h in holders {
            if h.node_id == self.agent.node_id {
                // Our own copy, if we hold one, is read straight from the store.
                if files.len() < needed {
                    if let Ok(bytes) = self.store.read_verified(&h.shard_hash) {
                        let tmp = TempFile(self.temp_path("own")?);
                        std::fs::write(&tmp.0, bytes)?;
                        files.push(tmp);
                        from.push(h.node_id.clone());
                    }
                }
            } else {
                remote.push(h);
            }
        }
        progress(Progress {
            phase: "fetching".into(),
            done: files.len() as u64,
            total: needed as u64,
        });
        // The shards still needed are fetched from that many holders at
        // once; the next holders stand in for any that fail.
        let mut candidates = remote.into_iter();
        while files.len() < needed {
            let wave: Vec<&ShardHolder> = candidates.by_ref().take(needed - files.len()).collect();
            if wave.is_empty() {
                break;
            }
            let fetched = futures_util::future::join_all(wave.iter().map(|h| {
                // A recovering node is nobody's custodian: it names the
                // holder's own assignment and shows its recovery instead.
                let serving = match recovery {
                    Some(_) => h.assignment.to_string(),
                    None => serving.to_string(),
                };
                async move {
                    self.fetch_to_temp(h, &serving, recovery, max_bytes, paced, None)
                        .await
                }
            }))
            .await;
            for (h, result) in wave.into_iter().zip(fetched) {
                match result {
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

    /// Fetches a shard from a holder into a temp file, checking its hash;
    /// a body longer than `max_bytes` (the content's shard size) is cut off.
    /// The bytes go first to the store's resumable copy of the shard: a
    /// download cut off (a dropped connection, either side stopped) goes on
    /// from what arrived, in this call ([`FETCH_ATTEMPTS`] times) or the
    /// next one, once the holder agrees those bytes are its shard's first.
    /// `arrival`, if given, is told how far the bytes have come (a decoder
    /// reading them as they arrive).
    async fn fetch_to_temp(
        &self,
        holder: &ShardHolder,
        serving: &str,
        recovery: Option<&str>,
        max_bytes: u64,
        paced: bool,
        arrival: Option<&Arrival>,
    ) -> Result<TempFile, CustodyError> {
        let _ends = EndOnDrop(arrival);
        let peer_err = |detail: String| CustodyError::Transfer {
            peer: holder.node_id.clone(),
            detail,
            retry_later: false,
        };
        let endpoint = holder
            .endpoint
            .as_deref()
            .ok_or_else(|| peer_err("no endpoint registered".into()))?;
        let store = self.store.clone();
        let mut part = tokio::task::block_in_place(|| store.resume(&holder.shard_hash, None))?;
        if let Some(a) = arrival {
            a.opened(part.reader()?, part.written());
        }
        let mut received = 0u64;
        let mut attempt = 0;
        let mut waits = FETCH_WAITS.iter();
        loop {
            attempt += 1;
            let before = received;
            match self
                .fetch_rest(
                    holder,
                    endpoint,
                    serving,
                    recovery,
                    max_bytes,
                    paced,
                    &mut part,
                    &mut received,
                    arrival,
                )
                .await
            {
                Ok(()) => break,
                Err(FetchCut::Refused(e)) => {
                    if part.written() == 0 {
                        part.discard();
                    }
                    return Err(e);
                }
                Err(FetchCut::Later(detail)) => {
                    // The holder is there but cannot serve this moment
                    // (its conductor just restarted, say).
                    let Some(wait) = waits.next() else {
                        if part.written() == 0 {
                            part.discard();
                        }
                        return Err(peer_err(detail));
                    };
                    tracing::info!(
                        "shard {} from {}: {detail}; asking again in {} s",
                        holder.shard_hash,
                        holder.node_id,
                        wait.as_secs()
                    );
                    tokio::time::sleep(*wait).await;
                }
                Err(FetchCut::Cut(detail)) => {
                    // What arrived stays in the resumable copy.
                    if attempt >= FETCH_ATTEMPTS || received == before {
                        return Err(peer_err(format!(
                            "{detail} ({} of the shard's bytes kept to resume from)",
                            part.written()
                        )));
                    }
                    tracing::info!(
                        "download of shard {} from {} cut at byte {}: going on from there",
                        holder.shard_hash,
                        holder.node_id,
                        part.written()
                    );
                }
            }
        }
        let tmp = TempFile(self.temp_path("fetch")?);
        let len = match tokio::task::block_in_place(|| part.finish_into(&tmp.0)) {
            Ok(len) => len,
            Err(crate::custody::store::StoreError::HashMismatch { actual, .. }) => {
                return Err(peer_err(format!(
                    "sent bytes hashing to {actual}, not {}",
                    holder.shard_hash
                )))
            }
            Err(e) => return Err(e.into()),
        };
        // What arrived whole and hashed right is what this node will
        // acknowledge when the holder's summary names it.
        self.rewards
            .received(&holder.node_id, &holder.shard_hash, received.min(len));
        self.agent.metrics.moved("in", received);
        if let Some(a) = arrival {
            a.ended(Ok(()));
        }
        Ok(tmp)
    }

    /// One request for the rest of a shard, appended to `part`, counting
    /// the bytes that arrive in `received`.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_rest(
        &self,
        holder: &ShardHolder,
        endpoint: &str,
        serving: &str,
        recovery: Option<&str>,
        max_bytes: u64,
        paced: bool,
        part: &mut crate::custody::store::ShardWriter<'_>,
        received: &mut u64,
        arrival: Option<&Arrival>,
    ) -> Result<(), FetchCut> {
        let restart = |part: &mut crate::custody::store::ShardWriter<'_>| {
            if let Some(a) = arrival {
                a.restarted();
            }
            part.restart().map_err(|e| FetchCut::Refused(e.into()))
        };
        use futures_util::StreamExt;
        let refused = |detail: String| {
            FetchCut::Refused(CustodyError::Transfer {
                peer: holder.node_id.clone(),
                detail,
                retry_later: false,
            })
        };
        let auth = self
            .sign("GET", &holder.shard_hash, serving, &holder.node_id)
            .await
            .map_err(FetchCut::Refused)?;
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
        let have = part.written();
        if have > 0 {
            req = req
                .header(reqwest::header::RANGE, format!("bytes={have}-"))
                .header(crate::transfer::H_HAVE_BLAKE3, part.prefix_hash());
        }
        let resp = req.send().await.map_err(|e| FetchCut::Cut(causes(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let detail = format!("{status}: {}", resp.text().await.unwrap_or_default());
            if status == reqwest::StatusCode::BAD_GATEWAY
                || status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            {
                return Err(FetchCut::Later(detail));
            }
            return Err(refused(detail));
        }
        if status == reqwest::StatusCode::PARTIAL_CONTENT {
            let from = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if from != Some(have) {
                return Err(refused(format!(
                    "answered a range starting at {from:?}, asked for {have}"
                )));
            }
            self.agent.metrics.transfer_resumed_bytes.inc_by(have);
        } else if have > 0 {
            // Its first bytes are not ours: start again.
            restart(part)?;
        }
        if resp
            .content_length()
            .is_some_and(|n| part.written() + n > max_bytes)
        {
            return Err(refused(format!(
                "offers more than the {max_bytes} bytes a shard of this content has"
            )));
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| FetchCut::Cut(causes(&e)))?;
            if paced {
                self.bandwidth.spend(chunk.len() as u64).await;
            }
            if part.written() + chunk.len() as u64 > max_bytes {
                restart(part)?;
                return Err(refused(format!(
                    "sent more than the {max_bytes} bytes a shard of this content has"
                )));
            }
            part.write_chunk(&chunk)
                .map_err(|e| FetchCut::Refused(e.into()))?;
            if let Some(a) = arrival {
                a.grew(part.written());
            }
            *received += chunk.len() as u64;
        }
        Ok(())
    }
}

/// How many requests one fetch of a shard makes while each gets further.
const FETCH_ATTEMPTS: u32 = 3;
/// How long a fetch waits before asking again a holder that answered it
/// cannot serve now (502, 503), each time.
const FETCH_WAITS: [std::time::Duration; 3] = [
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(2),
    std::time::Duration::from_secs(4),
];

/// An error and its causes, one after the other ("error sending request"
/// alone does not say the connection was refused).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// How a request for a shard's bytes ended short.
enum FetchCut {
    /// The body broke off; what arrived is kept.
    Cut(String),
    /// The holder answered that it cannot serve now; ask again shortly.
    Later(String),
    /// The holder refused, or broke the rules; asking again will not help.
    Refused(CustodyError),
}

/// Decodes the shards of `content_id` read from `readers` into a durable
/// file at `out`, with `key` if the content is encrypted with its owner's;
/// returns the content's size and blake3 (hex). Blocking.
fn decode_into<R: std::io::Read + Send>(
    content_id: &str,
    readers: Vec<R>,
    key: Option<ContentKey>,
    out: &Path,
) -> Result<(u64, String), CustodyError> {
    let mut writer = HashingWriter::create_durable(out)?;
    let mut decoder = Decoder::new().with_threads(super::files::codec_threads());
    if let Some(k) = key {
        decoder = decoder.with_key(k);
    }
    match decoder.decode_stream(readers, &mut writer) {
        Err(shard_codec::CodecError::MissingKey) => {
            return Err(CustodyError::MissingKey(content_id.to_string()))
        }
        other => other?,
    };
    writer.sync_all()?;
    let hash = writer
        .hash_hex()
        .ok_or_else(|| shard_codec::CodecError::Internal("an unhashed output".into()))?;
    Ok((writer.len, hash))
}

/// What decoding while fetching came to.
enum Overlap {
    /// The content: its temp file, size and blake3, and who sent the shards.
    Decoded(TempFile, u64, String, Vec<String>),
    /// Every shard fetched whole, but a download started again under the
    /// decoder: the shards' files, and who sent them.
    Fetched(Vec<TempFile>, Vec<String>),
}

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
