//! In-memory shards, the public manifest, and verification without decoding.

use std::fmt;
use std::io::Read;

use crate::codec::CodecId;
use crate::decode::{Record, Slot};
use crate::error::CodecError;
use crate::format::{Hash, Prefix, ShardHeader, FORMAT_VERSION, PREFIX_LEN};
use crate::{CodecParams, Result};

/// One shard: its parsed header plus its complete serialized bytes (the same
/// bytes a streamed encode writes to a custodian's file).
#[derive(Clone, PartialEq, Eq)]
pub struct Shard {
    header: ShardHeader,
    bytes: Vec<u8>,
}

impl Shard {
    pub(crate) fn from_parts(header: ShardHeader, bytes: Vec<u8>) -> Self {
        Shard { header, bytes }
    }

    /// Parses shard bytes, checking every hash; corrupt input yields
    /// [`CodecError::CorruptShard`] (never a panic).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Shard> {
        let bytes = bytes.into();
        let header = verify_shard(&bytes)?;
        Ok(Shard { header, bytes })
    }

    /// Header and trailer fields.
    pub fn header(&self) -> &ShardHeader {
        &self.header
    }

    /// This shard's index, `0..n`.
    pub fn index(&self) -> usize {
        self.header.index
    }

    /// The serialized shard.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A copy of the serialized shard (see [`Shard::into_bytes`] to avoid it).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The serialized shard, without copying.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("header", &self.header)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Public facts about one encoding, returned by every encode: what the daemon
/// records in DHT assignments so any shard can later be checked (with
/// [`verify_shard`] and [`ContentManifest::check_shard`]) without decoding,
/// and handed to [`crate::Decoder::expect`] so decoding only accepts these
/// shards. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentManifest {
    /// Parameters used (`encrypt` reflects whether stripes are encrypted).
    pub params: CodecParams,
    /// Codec that produced the pieces.
    pub codec: CodecId,
    /// Random id of this encoding, shared by all its shards.
    pub encode_id: [u8; 16],
    /// Content hash as recorded in the trailers (see [`ShardHeader::content_hash`]).
    pub content_hash: [u8; 32],
    /// Content length in bytes.
    pub content_len: u64,
    /// Stripe records per shard.
    pub stripe_count: u64,
    /// `shard_hashes[i]` is shard `i`'s [`ShardHeader::shard_hash`].
    pub shard_hashes: Vec<[u8; 32]>,
}

impl ContentManifest {
    /// The full header shard `index` carries, or `None` if out of range.
    pub fn header_for(&self, index: usize) -> Option<ShardHeader> {
        Some(ShardHeader {
            format_version: FORMAT_VERSION,
            codec: self.codec,
            strategy: self.params.strategy,
            encrypted: self.params.is_encrypted(),
            k: self.params.k,
            n: self.params.n,
            index,
            stripe_size: self.params.stripe_size,
            encode_id: self.encode_id,
            content_hash: self.content_hash,
            content_len: self.content_len,
            stripe_count: self.stripe_count,
            shard_hash: *self.shard_hashes.get(index)?,
        })
    }

    /// Checks that a verified shard header is exactly the shard this manifest
    /// recorded at that index (same encoding, same bytes).
    pub fn check_shard(&self, header: &ShardHeader) -> Result<()> {
        match self.header_for(header.index) {
            Some(expected) if expected == *header => Ok(()),
            Some(_) => Err(CodecError::MismatchedContent(format!(
                "shard {} is not the one recorded in the manifest",
                header.index
            ))),
            None => Err(CodecError::MismatchedContent(format!(
                "shard index {} outside the manifest's {} shards",
                header.index,
                self.shard_hashes.len()
            ))),
        }
    }

    pub(crate) fn matches_prefix(&self, p: &Prefix) -> bool {
        p.params() == self.params && p.codec == self.codec && p.encode_id == self.encode_id
    }

    pub(crate) fn shard_hash(&self, index: usize) -> Option<&Hash> {
        self.shard_hashes.get(index)
    }
}

/// Checks a complete shard held in memory: header checksum, every stripe hash,
/// record framing, trailer and whole-shard hash, and that nothing follows the
/// trailer. Cost: one blake3 pass over the shard.
pub fn verify_shard(bytes: &[u8]) -> Result<ShardHeader> {
    verify_shard_reader(bytes)
}

/// Streaming form of [`verify_shard`] (a shard file, an HTTP body), reading it
/// once with one stripe in memory.
pub fn verify_shard_reader<R: Read>(mut reader: R) -> Result<ShardHeader> {
    let mut b = [0u8; PREFIX_LEN];
    if let Err(e) = reader.read_exact(&mut b) {
        return Err(CodecError::CorruptShard {
            index: None,
            reason: format!("cannot read header: {}", crate::decode::io_reason(&e)),
        });
    }
    let prefix = Prefix::parse(&b).map_err(|e| e.into_error(None))?;
    let index = usize::from(prefix.index);
    let corrupt = |reason: String| CodecError::CorruptShard {
        index: Some(index),
        reason,
    };
    let mut slot = Slot::new(0, reader, prefix, &b);
    let mut payload = Vec::new();
    let mut stored = [0u8; 32];
    let mut plain_total = 0u64;
    let mut short_seen = false;
    let max_data = slot.prefix.max_data_len();
    loop {
        match slot.read_head().map_err(corrupt)? {
            Record::Stripe(head, raw) => {
                slot.read_payload(&head, &mut payload, &mut stored)
                    .map_err(corrupt)?;
                if crate::format::stripe_hash(&slot.stripe_key, &raw, &payload) != stored {
                    return Err(corrupt(format!("stripe {} hash mismatch", head.stripe)));
                }
                slot.prefix.check_head(&head).map_err(corrupt)?;
                if short_seen {
                    return Err(corrupt(format!(
                        "stripe {} follows a short stripe",
                        head.stripe
                    )));
                }
                short_seen = head.data_len as usize != max_data;
                plain_total += slot.prefix.plain_len(head.data_len as usize) as u64;
            }
            Record::Trailer(bytes) => {
                let trailer = slot.open_trailer(&bytes).map_err(corrupt)?;
                if trailer.content_len != plain_total {
                    return Err(corrupt(format!(
                        "trailer records {} content bytes, stripes hold {plain_total}",
                        trailer.content_len
                    )));
                }
                let mut probe = [0u8; 1];
                loop {
                    match slot.reader.read(&mut probe) {
                        Ok(0) => break,
                        Ok(_) => return Err(corrupt("bytes after the trailer".into())),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(CodecError::Io(e)),
                    }
                }
                return Ok(ShardHeader::from_parts(&slot.prefix, &trailer));
            }
        }
    }
}
