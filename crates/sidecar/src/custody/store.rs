//! The shard store: shards as content-addressed files (named by the blake3
//! hash of their bytes) plus a redb index of what is held for which content
//! and assignment.
//!
//! A shard is written to `tmp/`, fsynced, checked against its expected hash,
//! renamed into `objects/`, and only then indexed. On open, leftovers in
//! `tmp/`, files the index does not know and index entries whose file is gone
//! are cleared, so a crash at any point leaves no half shard behind. Every
//! read re-hashes the bytes; a corrupt file is quarantined (removed and
//! unindexed) so reconciliation fetches it again.
//!
//! A shard that arrives over the network is written to `partial/<hash>`
//! instead, under a claim only one transfer holds at a time, and what is
//! there survives a cut connection and a crash of either side: the next
//! transfer of that shard re-hashes the bytes already there, and once both
//! ends agree on that prefix's hash it sends only the rest. The shard is
//! still checked whole before it is kept; a partial copy nobody resumes is
//! cleared after [`PARTIAL_KEEP`].

use super::writeback::{Writeback, WRITEBACK_EVERY};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use thiserror::Error;

/// How long the bytes of an unfinished transfer are kept for it to resume.
pub const PARTIAL_KEEP: Duration = Duration::from_secs(24 * 3600);

const HELD: TableDefinition<&str, &[u8]> = TableDefinition::new("held");
/// Held shards whose assignments this node had not seen when they arrived
/// (see [`Provisional`]): hash -> JSON.
const PROVISIONAL: TableDefinition<&str, &[u8]> = TableDefinition::new("provisional");

/// What can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Filesystem trouble.
    #[error("shard store {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The index database failed.
    #[error("shard index: {0}")]
    Index(String),
    /// Bytes did not hash to what was promised; nothing was kept.
    #[error("shard hash mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// Promised hash.
        expected: String,
        /// Hash of the bytes received.
        actual: String,
    },
    /// A stored shard no longer matches its name; it was quarantined.
    #[error("shard {0} is corrupt on disk and was removed")]
    Corrupt(String),
    /// The shard is not held.
    #[error("shard {0} is not held here")]
    NotFound(String),
    /// A hash that is not 64 lowercase hex digits.
    #[error("not a shard hash: {0:?}")]
    BadHash(String),
    /// Another transfer of the same shard is writing it now.
    #[error("shard {0} is being received by another transfer")]
    Busy(String),
    /// A write that can only end in the index was given no metadata.
    #[error("shard {0} was received without what it is held for")]
    NoMeta(String),
}

fn index_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Index(e.to_string())
}

/// What the index says about a held shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// blake3 of the shard's bytes, hex; also its file name.
    pub shard_hash: String,
    /// The content it belongs to.
    pub content_id: String,
    /// Its index among the content's shards.
    pub shard_index: u32,
    /// The assignment (entry hash) it is held under.
    pub assignment: String,
    /// Its length in bytes.
    pub size: u64,
    /// Unix seconds when stored.
    pub stored_at: i64,
}

/// The metadata a new shard is stored with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMeta {
    /// The content.
    pub content_id: String,
    /// The shard index.
    pub shard_index: u32,
    /// The assignment entry hash.
    pub assignment: String,
}

/// Why a held shard is kept only for now: it arrived ahead of its
/// assignment (a publisher sends the bytes while the assignment still
/// travels the DHT) and is let go unless the assignment is seen within a
/// while. Written in the same transaction as the shard's index entry, so a
/// crash cannot turn an unconfirmed shard into a confirmed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisional {
    /// The agent that sent it (the assignment's owner), whose allowance of
    /// unconfirmed bytes it uses.
    pub sender: String,
    /// Unix seconds when it arrived.
    pub since: i64,
}

/// A shard held for now, with its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionalShard {
    /// The shard's hash.
    pub shard_hash: String,
    /// Its length in bytes.
    pub size: u64,
    /// Who sent it and when.
    pub provisional: Provisional,
}

/// Checks a shard hash's form (it becomes a file name).
pub fn check_hash(hash: &str) -> Result<(), StoreError> {
    if hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(StoreError::BadHash(hash.to_string()))
    }
}

/// The shard store of one node.
pub struct ShardStore {
    root: PathBuf,
    db: Database,
    /// Shards a resumable transfer is writing now.
    claimed: Mutex<HashSet<String>>,
    /// What each partial copy holds (length, blake3), as its last writer
    /// left it or as first read: `/ready` answers from here instead of
    /// reading the copy again on every ask (anyone may ask).
    partial_states: Mutex<std::collections::HashMap<String, (u64, String)>>,
}

/// One transfer's hold on a shard's partial copy; released on drop.
struct Claim<'a> {
    store: &'a ShardStore,
    hash: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.store.claimed.lock() {
            c.remove(&self.hash);
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl ShardStore {
    /// Opens (creating) the store under `root`, clearing what a crash left.
    pub fn open(root: &Path) -> Result<ShardStore, StoreError> {
        for d in ["objects", "tmp", "partial"] {
            std::fs::create_dir_all(root.join(d)).map_err(io(root))?;
        }
        let db = Database::create(root.join("index.redb")).map_err(index_err)?;
        {
            let tx = db.begin_write().map_err(index_err)?;
            tx.open_table(HELD).map_err(index_err)?;
            tx.open_table(PROVISIONAL).map_err(index_err)?;
            tx.commit().map_err(index_err)?;
        }
        let store = ShardStore {
            root: root.to_path_buf(),
            db,
            claimed: Mutex::new(HashSet::new()),
            partial_states: Mutex::new(std::collections::HashMap::new()),
        };
        store.recover()?;
        Ok(store)
    }

    /// Removes temp leftovers, unindexed files and entries without files.
    fn recover(&self) -> Result<(), StoreError> {
        let tmp = self.root.join("tmp");
        for e in std::fs::read_dir(&tmp).map_err(io(&tmp))? {
            let p = e.map_err(io(&tmp))?.path();
            let _ = std::fs::remove_file(&p);
        }
        let indexed: std::collections::BTreeSet<String> =
            self.list()?.into_iter().map(|r| r.shard_hash).collect();
        let objects = self.root.join("objects");
        for fan in std::fs::read_dir(&objects).map_err(io(&objects))? {
            let fan = fan.map_err(io(&objects))?.path();
            if !fan.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&fan).map_err(io(&fan))? {
                let p = f.map_err(io(&fan))?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if !indexed.contains(name) {
                    tracing::info!("removing unindexed shard file {}", p.display());
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        for hash in indexed {
            if !self.path_of(&hash).exists() {
                tracing::info!("forgetting shard {hash}: its file is gone");
                self.unindex(&hash)?;
            }
        }
        self.sweep_partials(PARTIAL_KEEP)?;
        Ok(())
    }

    /// Removes partial copies untouched for `keep`, of shards now held, or
    /// not named as shards; returns how many went. Claimed ones stay.
    pub fn sweep_partials(&self, keep: Duration) -> Result<usize, StoreError> {
        let dir = self.root.join("partial");
        let mut removed = 0;
        for e in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let p = e.map_err(io(&dir))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let claimed = self.claimed.lock().is_ok_and(|c| c.contains(name));
            if claimed {
                continue;
            }
            let stale = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() >= keep)
                .unwrap_or(true);
            if check_hash(name).is_err() || stale || self.has(name) {
                tracing::info!("removing partial shard {}", p.display());
                self.forget_partial(name);
                if std::fs::remove_file(&p).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// How much of a shard an unfinished transfer left here: its length
    /// and the blake3 of those bytes (the shard's own hash and size when
    /// it is held whole). `None` when there is nothing.
    pub fn have(&self, hash: &str) -> Result<Option<(u64, String)>, StoreError> {
        check_hash(hash)?;
        if let Some(rec) = self.record(hash)? {
            if self.path_of(hash).exists() {
                return Ok(Some((rec.size, hash.to_string())));
            }
        }
        let path = self.partial_path(hash);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        if let Some(known) = self
            .partial_states
            .lock()
            .map_err(index_err)?
            .get(hash)
            .filter(|(n, _)| *n == len)
        {
            return Ok((len > 0).then(|| known.clone()));
        }
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let mut hasher = blake3::Hasher::new();
        let len = std::io::copy(&mut file, &mut hasher).map_err(io(&path))?;
        let state = (len, hasher.finalize().to_hex().to_string());
        self.note_partial(hash, state.clone());
        Ok((len > 0).then_some(state))
    }

    fn note_partial(&self, hash: &str, state: (u64, String)) {
        if let Ok(mut m) = self.partial_states.lock() {
            m.insert(hash.to_string(), state);
        }
    }

    fn forget_partial(&self, hash: &str) {
        if let Ok(mut m) = self.partial_states.lock() {
            m.remove(hash);
        }
    }

    fn partial_path(&self, hash: &str) -> PathBuf {
        self.root.join("partial").join(hash)
    }

    /// Opens the resumable copy of a shard a transfer is receiving: what an
    /// earlier transfer left is re-hashed and kept, and the writer goes on
    /// after it ([`ShardWriter::written`], [`ShardWriter::prefix_hash`]).
    /// Dropped unfinished, the bytes stay for the next transfer. `meta` is
    /// what the shard is held for, or `None` for a shard fetched only to
    /// be read (see [`ShardWriter::finish_into`]).
    pub fn resume(
        &self,
        expected_hash: &str,
        meta: Option<ShardMeta>,
    ) -> Result<ShardWriter<'_>, StoreError> {
        self.open_partial(expected_hash, meta, true)
    }

    /// As [`ShardStore::resume`], for a transfer that starts from the
    /// shard's first byte: what an earlier one left is dropped unread.
    pub fn receive_anew(
        &self,
        expected_hash: &str,
        meta: Option<ShardMeta>,
    ) -> Result<ShardWriter<'_>, StoreError> {
        self.open_partial(expected_hash, meta, false)
    }

    fn open_partial(
        &self,
        expected_hash: &str,
        meta: Option<ShardMeta>,
        keep: bool,
    ) -> Result<ShardWriter<'_>, StoreError> {
        check_hash(expected_hash)?;
        {
            let mut claimed = self.claimed.lock().map_err(index_err)?;
            if !claimed.insert(expected_hash.to_string()) {
                return Err(StoreError::Busy(expected_hash.to_string()));
            }
        }
        let claim = Claim {
            store: self,
            hash: expected_hash.to_string(),
        };
        self.forget_partial(expected_hash);
        let path = self.partial_path(expected_hash);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut hasher = blake3::Hasher::new();
        let size = if keep {
            std::io::copy(&mut file, &mut hasher).map_err(io(&path))?
        } else {
            file.set_len(0).map_err(io(&path))?;
            0
        };
        Ok(ShardWriter {
            store: self,
            tmp: path,
            file: Some(file),
            hasher,
            size,
            resumed_from: size,
            expected: expected_hash.to_string(),
            writeback: meta.as_ref().map(|_| Writeback::every(WRITEBACK_EVERY)),
            meta,
            claim: Some(claim),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, hash: &str) -> PathBuf {
        self.root.join("objects").join(&hash[..2]).join(hash)
    }

    fn unindex(&self, hash: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(index_err)?;
        tx.open_table(HELD)
            .map_err(index_err)?
            .remove(hash)
            .map_err(index_err)?;
        tx.open_table(PROVISIONAL)
            .map_err(index_err)?
            .remove(hash)
            .map_err(index_err)?;
        tx.commit().map_err(index_err)
    }

    /// Every shard held for now (arrived ahead of its assignment).
    pub fn provisional(&self) -> Result<Vec<ProvisionalShard>, StoreError> {
        let tx = self.db.begin_read().map_err(index_err)?;
        let held = tx.open_table(HELD).map_err(index_err)?;
        let t = tx.open_table(PROVISIONAL).map_err(index_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(index_err)? {
            let (k, v) = row.map_err(index_err)?;
            let size = match held.get(k.value()).map_err(index_err)? {
                Some(r) => {
                    serde_json::from_slice::<ShardRecord>(r.value())
                        .map_err(index_err)?
                        .size
                }
                None => 0,
            };
            out.push(ProvisionalShard {
                shard_hash: k.value().to_string(),
                size,
                provisional: serde_json::from_slice(v.value()).map_err(index_err)?,
            });
        }
        Ok(out)
    }

    /// Why a shard is held only for now, if it is.
    pub fn provisional_of(&self, hash: &str) -> Result<Option<Provisional>, StoreError> {
        self.row(PROVISIONAL, hash)
    }

    /// One JSON row of an index table.
    fn row<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        hash: &str,
    ) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(index_err)?;
        let t = tx.open_table(table).map_err(index_err)?;
        let Some(v) = t.get(hash).map_err(index_err)? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(index_err)
    }

    /// Keeps a provisionally held shard for good, under `assignment` (the
    /// live one its custodian now sees for it).
    pub fn confirm(&self, hash: &str, assignment: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(index_err)?;
        {
            let mut held = tx.open_table(HELD).map_err(index_err)?;
            let record = match held.get(hash).map_err(index_err)? {
                Some(v) => {
                    Some(serde_json::from_slice::<ShardRecord>(v.value()).map_err(index_err)?)
                }
                None => None,
            };
            if let Some(mut r) = record {
                if r.assignment != assignment {
                    r.assignment = assignment.to_string();
                    let value = serde_json::to_vec(&r).map_err(index_err)?;
                    held.insert(hash, value.as_slice()).map_err(index_err)?;
                }
            }
            tx.open_table(PROVISIONAL)
                .map_err(index_err)?
                .remove(hash)
                .map_err(index_err)?;
        }
        tx.commit().map_err(index_err)
    }

    /// Starts writing a shard that must hash to `expected_hash`.
    pub fn writer(
        &self,
        expected_hash: &str,
        meta: ShardMeta,
    ) -> Result<ShardWriter<'_>, StoreError> {
        check_hash(expected_hash)?;
        let suffix = crate::encoding::random_hex(8).map_err(|e| index_err(e.to_string()))?;
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{expected_hash}.{suffix}.part",));
        let file = File::create(&tmp).map_err(io(&tmp))?;
        Ok(ShardWriter {
            store: self,
            tmp,
            file: Some(file),
            hasher: blake3::Hasher::new(),
            size: 0,
            resumed_from: 0,
            expected: expected_hash.to_string(),
            meta: Some(meta),
            claim: None,
            writeback: Some(Writeback::every(WRITEBACK_EVERY)),
        })
    }

    /// Stores a whole shard held in memory.
    pub fn put(
        &self,
        expected_hash: &str,
        meta: ShardMeta,
        bytes: &[u8],
    ) -> Result<ShardRecord, StoreError> {
        let mut w = self.writer(expected_hash, meta)?;
        w.write_chunk(bytes)?;
        w.finish()
    }

    /// Whether a shard is held (indexed and present).
    pub fn has(&self, hash: &str) -> bool {
        check_hash(hash).is_ok()
            && self.record(hash).ok().flatten().is_some()
            && self.path_of(hash).exists()
    }

    /// The index record of a shard.
    pub fn record(&self, hash: &str) -> Result<Option<ShardRecord>, StoreError> {
        self.row(HELD, hash)
    }

    /// Every held shard.
    pub fn list(&self) -> Result<Vec<ShardRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(index_err)?;
        let t = tx.open_table(HELD).map_err(index_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(index_err)? {
            let (_, v) = row.map_err(index_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(index_err)?);
        }
        Ok(out)
    }

    /// Bytes held.
    pub fn used_bytes(&self) -> u64 {
        self.list()
            .map(|l| l.iter().map(|r| r.size).sum())
            .unwrap_or(0)
    }

    /// Opens a shard for reading; the reader fails at the end if the bytes
    /// do not hash to the shard's name (and the shard is then quarantined).
    pub fn open_verified(&self, hash: &str) -> Result<VerifiedReader<'_>, StoreError> {
        check_hash(hash)?;
        if self.record(hash)?.is_none() {
            return Err(StoreError::NotFound(hash.to_string()));
        }
        let path = self.path_of(hash);
        let file = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                let _ = self.unindex(hash);
                StoreError::NotFound(hash.to_string())
            } else {
                io(&path)(e)
            }
        })?;
        Ok(VerifiedReader {
            store: self,
            file,
            hasher: blake3::Hasher::new(),
            expected: hash.to_string(),
            done: false,
        })
    }

    /// Reads a whole shard, verified.
    pub fn read_verified(&self, hash: &str) -> Result<Vec<u8>, StoreError> {
        let mut r = self.open_verified(hash)?;
        let mut out = Vec::new();
        match r.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                Err(StoreError::Corrupt(hash.to_string()))
            }
            Err(e) => Err(io(&self.path_of(hash))(e)),
        }
    }

    /// Removes a shard (file first, then its index entry).
    pub fn remove(&self, hash: &str) -> Result<(), StoreError> {
        check_hash(hash)?;
        let path = self.path_of(hash);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        self.unindex(hash)
    }
}

/// A shard being written. A scratch write ([`ShardStore::writer`]) leaves
/// nothing when dropped unfinished; a resumable one ([`ShardStore::resume`])
/// leaves its bytes for the next transfer of the shard.
pub struct ShardWriter<'a> {
    store: &'a ShardStore,
    tmp: PathBuf,
    file: Option<File>,
    hasher: blake3::Hasher,
    size: u64,
    resumed_from: u64,
    expected: String,
    meta: Option<ShardMeta>,
    claim: Option<Claim<'a>>,
    /// Background fsyncs while the bytes arrive, for a shard to be held
    /// (made durable at the end); none for one fetched only to be read.
    writeback: Option<Writeback>,
}

impl ShardWriter<'_> {
    /// Appends bytes.
    pub fn write_chunk(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let f = self.file.as_mut().expect("writer not finished");
        f.write_all(bytes).map_err(io(&self.tmp))?;
        if let Some(wb) = &mut self.writeback {
            wb.wrote(f, bytes.len() as u64);
        }
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written so far, an earlier transfer's included (the upload
    /// route stops a body at the assignment's shard size with it).
    pub fn written(&self) -> u64 {
        self.size
    }

    /// A read handle on the file the bytes go to (a reader following a
    /// download as it arrives; it keeps reading it once renamed).
    pub fn reader(&self) -> Result<File, StoreError> {
        File::open(&self.tmp).map_err(io(&self.tmp))
    }

    /// How many bytes an earlier transfer had left when this one began.
    pub fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    /// The blake3 of the bytes written so far: what both ends of a transfer
    /// compare before it goes on from there.
    pub fn prefix_hash(&self) -> String {
        self.hasher.clone().finalize().to_hex().to_string()
    }

    /// Throws away what was written, to receive the shard from its start.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        let f = self.file.as_mut().expect("writer not finished");
        f.set_len(0).map_err(io(&self.tmp))?;
        self.hasher = blake3::Hasher::new();
        self.size = 0;
        self.resumed_from = 0;
        Ok(())
    }

    /// Ends the write keeping nothing, resumable or not (a body that broke
    /// the rules).
    pub fn discard(mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }

    /// Checks the whole shard's hash; on a mismatch nothing is kept.
    fn verified(&mut self) -> Result<File, StoreError> {
        let actual = self.hasher.finalize().to_hex().to_string();
        if actual != self.expected {
            // A resumable copy that ends wrong is no prefix of the shard.
            if let Some(f) = self.file.take() {
                drop(f);
                let _ = std::fs::remove_file(&self.tmp);
            }
            return Err(StoreError::HashMismatch {
                expected: self.expected.clone(),
                actual,
            });
        }
        Ok(self.file.take().expect("writer not finished"))
    }

    /// Checks the hash and moves the shard, unindexed, to `dest` (a work
    /// file of its reader's, on the same filesystem): a shard fetched to be
    /// read, not held.
    pub fn finish_into(mut self, dest: &Path) -> Result<u64, StoreError> {
        let file = self.verified()?;
        drop(file);
        std::fs::rename(&self.tmp, dest).map_err(io(dest))?;
        Ok(self.size)
    }

    /// Checks the hash, makes the shard durable and indexes it. On a hash
    /// mismatch nothing is kept.
    pub fn finish(self) -> Result<ShardRecord, StoreError> {
        self.finish_as(None)
    }

    /// As [`ShardWriter::finish`], holding the shard only for now when
    /// `provisional` says so (one transaction indexes both).
    pub fn finish_as(
        mut self,
        provisional: Option<&Provisional>,
    ) -> Result<ShardRecord, StoreError> {
        let Some(meta) = self.meta.clone() else {
            return Err(StoreError::NoMeta(self.expected.clone()));
        };
        let file = self.verified()?;
        if let Some(wb) = self.writeback.take() {
            wb.finish().map_err(io(&self.tmp))?;
        }
        file.sync_all().map_err(io(&self.tmp))?;
        drop(file);
        let dest = self.store.path_of(&self.expected);
        let fan = dest.parent().expect("objects/<fan>/<hash>");
        std::fs::create_dir_all(fan).map_err(io(fan))?;
        std::fs::rename(&self.tmp, &dest).map_err(io(&dest))?;
        fsync_dir(fan)?;
        let record = ShardRecord {
            shard_hash: self.expected.clone(),
            content_id: meta.content_id,
            shard_index: meta.shard_index,
            assignment: meta.assignment,
            size: self.size,
            stored_at: crate::clock::unix_secs(),
        };
        let value = serde_json::to_vec(&record).map_err(index_err)?;
        let tx = self.store.db.begin_write().map_err(index_err)?;
        tx.open_table(HELD)
            .map_err(index_err)?
            .insert(record.shard_hash.as_str(), value.as_slice())
            .map_err(index_err)?;
        {
            let mut t = tx.open_table(PROVISIONAL).map_err(index_err)?;
            match provisional {
                Some(p) => {
                    let v = serde_json::to_vec(p).map_err(index_err)?;
                    t.insert(record.shard_hash.as_str(), v.as_slice())
                        .map_err(index_err)?;
                }
                None => {
                    // Sent again once its assignment was seen: held for good.
                    t.remove(record.shard_hash.as_str()).map_err(index_err)?;
                }
            }
        }
        tx.commit().map_err(index_err)?;
        Ok(record)
    }
}

impl Drop for ShardWriter<'_> {
    fn drop(&mut self) {
        // A scratch write left unfinished goes; a resumable one stays for
        // the next transfer, which is told what it holds (and its claim is
        // released).
        if self.file.take().is_some() {
            if self.claim.is_none() {
                let _ = std::fs::remove_file(&self.tmp);
            } else {
                self.store
                    .note_partial(&self.expected, (self.size, self.prefix_hash()));
            }
        }
    }
}

impl Write for ShardWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_chunk(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A shard reader that checks the shard's hash when it reaches the end.
pub struct VerifiedReader<'a> {
    store: &'a ShardStore,
    file: File,
    hasher: blake3::Hasher,
    expected: String,
    done: bool,
}

impl VerifiedReader<'_> {
    /// Reads past the first `n` bytes (hashing them, as every byte is).
    pub fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let copied = std::io::copy(&mut self.by_ref().take(n), &mut std::io::sink())?;
        if copied < n {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("shard {} has fewer than {n} bytes", self.expected),
            ));
        }
        Ok(())
    }

    /// The blake3 of the bytes read so far.
    pub fn prefix_hash(&self) -> String {
        self.hasher.clone().finalize().to_hex().to_string()
    }
}

impl Read for VerifiedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            return Ok(n);
        }
        if !self.done {
            self.done = true;
            if self.hasher.finalize().to_hex().as_str() != self.expected {
                tracing::warn!(
                    "shard {} is corrupt on disk; quarantining it",
                    self.expected
                );
                let _ = self.store.remove(&self.expected);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("shard {} is corrupt on disk", self.expected),
                ));
            }
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(i: u32) -> ShardMeta {
        ShardMeta {
            content_id: "c1".into(),
            shard_index: i,
            assignment: "uhCEk-assignment".into(),
        }
    }

    fn hash(b: &[u8]) -> String {
        blake3::hash(b).to_hex().to_string()
    }

    #[test]
    fn stores_reads_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path()).unwrap();
        let bytes = b"shard bytes".repeat(1000);
        let rec = store.put(&hash(&bytes), meta(2), &bytes).unwrap();
        assert_eq!(rec.size, bytes.len() as u64);
        assert!(store.has(&rec.shard_hash));
        assert_eq!(store.read_verified(&rec.shard_hash).unwrap(), bytes);
        assert_eq!(store.list().unwrap(), vec![rec.clone()]);
        assert_eq!(store.used_bytes(), bytes.len() as u64);
        drop(store);
        let store = ShardStore::open(dir.path()).unwrap();
        assert_eq!(
            store.record(&rec.shard_hash).unwrap(),
            Some(rec),
            "index survives reopen"
        );
    }

    #[test]
    fn a_shard_held_for_now_is_confirmed_or_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path()).unwrap();
        let early = b"sent ahead of its assignment".repeat(100);
        let later = b"another one".repeat(100);
        let p = Provisional {
            sender: "uhCAk-sender".into(),
            since: 1_700_000_000,
        };
        for b in [&early, &later] {
            let mut w = store.writer(&hash(b), meta(0)).unwrap();
            w.write_chunk(b).unwrap();
            w.finish_as(Some(&p)).unwrap();
        }
        let waiting = |s: &ShardStore| -> Vec<(String, u64)> {
            let mut v: Vec<_> = s
                .provisional()
                .unwrap()
                .into_iter()
                .map(|x| (x.shard_hash, x.size))
                .collect();
            v.sort();
            v
        };
        let mut both = vec![
            (hash(&early), early.len() as u64),
            (hash(&later), later.len() as u64),
        ];
        both.sort();
        assert!(store.has(&hash(&early)), "held, and counted as held");
        assert_eq!(store.used_bytes(), (early.len() + later.len()) as u64);
        drop(store);
        let store = ShardStore::open(dir.path()).unwrap();
        assert_eq!(waiting(&store), both, "held for now across a restart");
        assert_eq!(
            store.provisional_of(&hash(&later)).unwrap(),
            Some(p),
            "who sent it, and when"
        );
        store.confirm(&hash(&early), "uhCEk-live").unwrap();
        assert_eq!(waiting(&store), vec![(hash(&later), later.len() as u64)]);
        assert_eq!(
            store.record(&hash(&early)).unwrap().unwrap().assignment,
            "uhCEk-live",
            "held under the assignment seen"
        );
        assert_eq!(store.provisional_of(&hash(&early)).unwrap(), None);
        store.remove(&hash(&later)).unwrap();
        assert!(waiting(&store).is_empty(), "a shard let go is forgotten");
        assert!(!store.has(&hash(&later)));
        assert!(store.has(&hash(&early)));
    }

    #[test]
    fn wrong_hash_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path()).unwrap();
        let err = store
            .put(&hash(b"other"), meta(0), b"these bytes")
            .unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
        assert!(store.list().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert!(!store.has(&hash(b"other")));
    }

    #[test]
    fn a_crash_mid_write_leaves_no_half_shard() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![7u8; 100_000];
        let h = hash(&bytes);
        {
            let store = ShardStore::open(dir.path()).unwrap();
            let mut w = store.writer(&h, meta(0)).unwrap();
            w.write_chunk(&bytes[..50_000]).unwrap();
            // Simulate a crash: the process dies with the temp file on disk.
            std::mem::forget(w);
            // And a crash between rename and indexing: a file the index
            // does not know.
            let orphan = dir.path().join("objects").join(&h[..2]);
            std::fs::create_dir_all(&orphan).unwrap();
            std::fs::write(orphan.join(&h), &bytes).unwrap();
        }
        let store = ShardStore::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert!(!store.has(&h));
        assert!(!dir.path().join("objects").join(&h[..2]).join(&h).exists());
        // The shard can then be stored whole.
        store.put(&h, meta(0), &bytes).unwrap();
        assert_eq!(store.read_verified(&h).unwrap(), bytes);
    }

    #[test]
    fn corruption_on_disk_is_detected_and_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path()).unwrap();
        let bytes = vec![1u8; 4096];
        let h = hash(&bytes);
        store.put(&h, meta(0), &bytes).unwrap();
        let path = dir.path().join("objects").join(&h[..2]).join(&h);
        let mut on_disk = std::fs::read(&path).unwrap();
        on_disk[100] ^= 0x01;
        std::fs::write(&path, on_disk).unwrap();
        let err = store.read_verified(&h).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(!store.has(&h), "quarantined");
        assert!(!path.exists());
    }

    fn partials(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("partial")).unwrap().count()
    }

    #[test]
    fn a_cut_transfer_resumes_from_its_verified_prefix_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let h = hash(&bytes);
        {
            let store = ShardStore::open(dir.path()).unwrap();
            let mut w = store.resume(&h, Some(meta(1))).unwrap();
            assert_eq!(w.written(), 0);
            w.write_chunk(&bytes[..120_000]).unwrap();
            // The connection is cut, then the process dies.
            drop(w);
        }
        let store = ShardStore::open(dir.path()).unwrap();
        assert_eq!(
            store.have(&h).unwrap(),
            Some((120_000, hash(&bytes[..120_000]))),
            "what is there is told with its hash"
        );
        let mut w = store.resume(&h, Some(meta(1))).unwrap();
        assert_eq!((w.written(), w.resumed_from()), (120_000, 120_000));
        assert_eq!(w.prefix_hash(), hash(&bytes[..120_000]));
        w.write_chunk(&bytes[120_000..]).unwrap();
        let rec = w.finish().unwrap();
        assert_eq!(rec.size, bytes.len() as u64);
        assert_eq!(store.read_verified(&h).unwrap(), bytes);
        assert_eq!(partials(dir.path()), 0, "nothing is left behind");
        assert_eq!(store.have(&h).unwrap(), Some((rec.size, h.clone())));
    }

    #[test]
    fn asking_what_is_held_does_not_read_the_copy_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path()).unwrap();
        let h = hash(b"whatever");
        let mut w = store.resume(&h, None).unwrap();
        w.write_chunk(b"first bytes").unwrap();
        drop(w);
        // Changed behind the store's back, same length: the answer is the
        // one the writer left (no read per ask)...
        let path = dir.path().join("partial").join(&h);
        std::fs::write(&path, b"other bytes").unwrap();
        assert_eq!(store.have(&h).unwrap(), Some((11, hash(b"first bytes"))));
        // ...and the next transfer re-reads it, so what it compares is what
        // is on disk, and what is told from then on.
        let w = store.resume(&h, None).unwrap();
        assert_eq!(w.prefix_hash(), hash(b"other bytes"));
        drop(w);
        assert_eq!(store.have(&h).unwrap(), Some((11, hash(b"other bytes"))));
        // A restart reads each copy once.
        drop(store);
        let store = ShardStore::open(dir.path()).unwrap();
        assert_eq!(store.have(&h).unwrap(), Some((11, hash(b"other bytes"))));
    }

    #[test]
    fn one_transfer_at_a_time_writes_a_shard() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path()).unwrap();
        let h = hash(b"x");
        let first = store.resume(&h, None).unwrap();
        assert!(matches!(store.resume(&h, None), Err(StoreError::Busy(_))));
        drop(first);
        assert!(store.resume(&h, None).is_ok(), "released on drop");
    }

    #[test]
    fn a_partial_that_ends_wrong_or_breaks_the_rules_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path()).unwrap();
        let bytes = vec![5u8; 50_000];
        let h = hash(&bytes);
        let mut w = store.resume(&h, Some(meta(0))).unwrap();
        w.write_chunk(&[6u8; 50_000]).unwrap();
        assert!(matches!(w.finish(), Err(StoreError::HashMismatch { .. })));
        assert_eq!(partials(dir.path()), 0);
        // A wrong prefix is thrown away before the shard is sent whole.
        let mut w = store.resume(&h, Some(meta(0))).unwrap();
        w.write_chunk(&[6u8; 100]).unwrap();
        w.restart().unwrap();
        assert_eq!((w.written(), w.prefix_hash()), (0, hash(b"")));
        w.write_chunk(&bytes).unwrap();
        w.finish().unwrap();
        // A body cut off for its size leaves nothing.
        let other = vec![8u8; 10];
        let mut w = store.resume(&hash(&other), None).unwrap();
        w.write_chunk(&other[..5]).unwrap();
        w.discard();
        assert_eq!(partials(dir.path()), 0);
        // A shard fetched only to be read leaves the store.
        let mut w = store.resume(&hash(&other), None).unwrap();
        w.write_chunk(&other).unwrap();
        let out = dir.path().join("read-me");
        assert_eq!(w.finish_into(&out).unwrap(), 10);
        assert_eq!(std::fs::read(&out).unwrap(), other);
        assert!(!store.has(&hash(&other)));
        let mut w = store.resume(&hash(&other), None).unwrap();
        w.write_chunk(&other).unwrap();
        assert!(matches!(w.finish(), Err(StoreError::NoMeta(_))));
    }

    #[test]
    fn stale_and_stray_partials_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path()).unwrap();
        let h = hash(b"abandoned");
        let mut w = store.resume(&h, None).unwrap();
        w.write_chunk(b"aban").unwrap();
        assert_eq!(store.sweep_partials(Duration::ZERO).unwrap(), 0, "claimed");
        drop(w);
        std::fs::write(dir.path().join("partial").join("stray"), b"?").unwrap();
        assert_eq!(
            store.sweep_partials(PARTIAL_KEEP).unwrap(),
            1,
            "not a shard"
        );
        assert_eq!(store.sweep_partials(Duration::ZERO).unwrap(), 1, "stale");
        assert_eq!(partials(dir.path()), 0);
    }

    #[test]
    fn hashes_are_checked_before_use_as_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path()).unwrap();
        for bad in ["../../etc/passwd", "ABCDEF", &"g".repeat(64)] {
            assert!(matches!(
                store.writer(bad, meta(0)),
                Err(StoreError::BadHash(_))
            ));
            assert!(!store.has(bad));
        }
    }
}
