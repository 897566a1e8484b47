//! Turns content into verifiable custody shards and back.
//!
//! Home nodes keep custody of each other's content as *shards*. This crate is
//! the only place where content bytes become shard bytes and back, so it is
//! written to fail loudly rather than return a wrong byte:
//!
//! * every shard carries a versioned header (codec id, strategy, k, n, index,
//!   a header checksum) and a trailer (content hash, content length, whole-shard
//!   hash);
//! * every stripe record inside a shard carries its own keyed blake3 hash, so a
//!   decoder notices corruption stripe by stripe and switches to another shard;
//! * decoding checks the content hash before it reports success.
//!
//! Three strategies are offered (see [`Strategy`]): `full_replica` (n identical
//! copies), `erasure_coded` (Reed-Solomon, any k of n) and `threshold_split`
//! (Krawczyk's "secret sharing made short": XChaCha20-Poly1305 with a random key,
//! ciphertext Reed-Solomon coded k-of-n, key Shamir-split k-of-n).
//!
//! Content of any size is processed in stripes, from a [`std::io::Read`] into
//! one [`std::io::Write`] per shard ([`encode_stream`]) and back
//! ([`decode_stream`]), so memory stays bounded by a few stripes. The in-memory
//! helpers [`encode`] and [`decode`] use the very same code path. The calling
//! thread keeps the buffers of its last call (at most 8 MiB of stripe buffers
//! plus a codec work space of at most 8 MiB, plaintext wiped) so that small
//! one-shot calls do not pay for fresh memory every time.
//!
//! The binary layout is documented in the crate's `README.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod codec;
mod crypto;
mod decode;
mod encode;
mod error;
mod format;
mod pipeline;
mod shard;

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

pub use codec::{codec_for, CodecId, ErasureCodec, ReedSolomonSimd};
pub use crypto::ContentKey;
pub use decode::{DecodeReport, Decoder};
pub use encode::{EncodeReport, Encoded, Encoder};
pub use error::{CodecError, Rejected};
pub use format::{ShardHeader, FORMAT_VERSION};
pub use shard::{verify_shard, verify_shard_reader, ContentManifest, Shard};

/// Convenience alias used throughout the crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;

/// Smallest accepted stripe size. Tiny stripes work but waste space on the
/// 52 bytes of framing every stripe record carries; the limit only keeps
/// pathological parameters out.
pub const MIN_STRIPE_SIZE: usize = 64;
/// Largest accepted stripe size. Working memory is a few stripes times
/// `1 + n/k`, so this bounds what a (possibly hostile) shard header can make a
/// decoder allocate.
pub const MAX_STRIPE_SIZE: usize = 16 * 1024 * 1024;
/// Default stripe size: large enough that framing and per-call overheads
/// vanish, small enough that a few stripes in flight stay far below the
/// 64 MiB memory budget.
pub const DEFAULT_STRIPE_SIZE: usize = 1024 * 1024;
/// Most shards any strategy can address: the shard index is a `u16` in the
/// header.
pub const MAX_SHARDS: usize = u16::MAX as usize;
/// Most shards `threshold_split` supports: Shamir shares live in GF(256), whose
/// 255 non-zero points are the share coordinates.
pub const MAX_THRESHOLD_SHARDS: usize = 255;

/// How content is turned into shards.
///
/// Other crates pass strategies around as strings, so the snake_case forms
/// (`"full_replica"`, `"erasure_coded"`, `"threshold_split"`) are part of the
/// contract: see [`Strategy::as_str`], [`fmt::Display`] and [`FromStr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// `n` identical copies; any one copy restores the content (k = 1).
    /// Cheapest to decode, costs `n` times the content in storage.
    FullReplica,
    /// Reed-Solomon coding: any `k` of the `n` shards restore the content;
    /// storage is `n/k` times the content.
    ErasureCoded,
    /// Secret sharing made short: the content is encrypted with a fresh key,
    /// the ciphertext is Reed-Solomon coded k-of-n and the key Shamir-split
    /// k-of-n, so fewer than `k` custodians learn nothing; storage is `n/k`.
    ThresholdSplit,
}

impl Strategy {
    /// All strategies, in wire order; handy for exhaustive tests and CLIs.
    pub const ALL: [Strategy; 3] = [
        Strategy::FullReplica,
        Strategy::ErasureCoded,
        Strategy::ThresholdSplit,
    ];

    /// The canonical snake_case name other crates exchange.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::FullReplica => "full_replica",
            Strategy::ErasureCoded => "erasure_coded",
            Strategy::ThresholdSplit => "threshold_split",
        }
    }

    /// Byte stored in the shard header; stable across format versions.
    pub(crate) const fn to_byte(self) -> u8 {
        match self {
            Strategy::FullReplica => 1,
            Strategy::ErasureCoded => 2,
            Strategy::ThresholdSplit => 3,
        }
    }

    pub(crate) const fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Strategy::FullReplica),
            2 => Some(Strategy::ErasureCoded),
            3 => Some(Strategy::ThresholdSplit),
            _ => None,
        }
    }

    /// The largest `n` this strategy can produce, so callers can check
    /// configuration before encoding anything.
    pub const fn max_shards(self) -> usize {
        match self {
            Strategy::ThresholdSplit => MAX_THRESHOLD_SHARDS,
            Strategy::FullReplica | Strategy::ErasureCoded => MAX_SHARDS,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = CodecError;

    fn from_str(s: &str) -> Result<Self> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                CodecError::BadParameters(format!(
                    "unknown strategy {s:?} (expected full_replica, erasure_coded or threshold_split)"
                ))
            })
    }
}

/// Everything needed to encode content; validated by [`CodecParams::validate`]
/// so that a bad configuration fails before any byte is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodecParams {
    /// How the content is split.
    pub strategy: Strategy,
    /// Shards needed to restore the content. Always 1 for `full_replica`.
    pub k: usize,
    /// Shards produced (one per custodian).
    pub n: usize,
    /// Encrypt at rest with an owner-held [`ContentKey`]. Matches the plan's
    /// default privacy setting ("encrypt all custodied content"), so the
    /// constructors set it to `true`. `threshold_split` always encrypts (the
    /// key travels in the shards as Shamir shares), whatever this flag says.
    pub encrypt: bool,
    /// Plaintext bytes per stripe: the unit of streaming, hashing and memory.
    pub stripe_size: usize,
}

impl CodecParams {
    /// `copies` identical replicas, encrypted at rest by default.
    pub const fn full_replica(copies: usize) -> Self {
        CodecParams {
            strategy: Strategy::FullReplica,
            k: 1,
            n: copies,
            encrypt: true,
            stripe_size: DEFAULT_STRIPE_SIZE,
        }
    }

    /// Reed-Solomon `k`-of-`n`, encrypted at rest by default.
    pub const fn erasure_coded(k: usize, n: usize) -> Self {
        CodecParams {
            strategy: Strategy::ErasureCoded,
            k,
            n,
            encrypt: true,
            stripe_size: DEFAULT_STRIPE_SIZE,
        }
    }

    /// Secret sharing made short, `k`-of-`n`.
    pub const fn threshold_split(k: usize, n: usize) -> Self {
        CodecParams {
            strategy: Strategy::ThresholdSplit,
            k,
            n,
            encrypt: true,
            stripe_size: DEFAULT_STRIPE_SIZE,
        }
    }

    /// Builds parameters from the strategy string other crates pass around.
    /// For `full_replica`, `k` must be 1.
    pub fn new(strategy: Strategy, k: usize, n: usize) -> Result<Self> {
        let p = CodecParams {
            strategy,
            k,
            n,
            encrypt: true,
            stripe_size: DEFAULT_STRIPE_SIZE,
        };
        p.validate()?;
        Ok(p)
    }

    /// Same parameters with encryption at rest switched on or off (public
    /// content does not need it; `threshold_split` ignores it).
    #[must_use]
    pub const fn with_encryption(mut self, encrypt: bool) -> Self {
        self.encrypt = encrypt;
        self
    }

    /// Same parameters with another stripe size.
    #[must_use]
    pub const fn with_stripe_size(mut self, stripe_size: usize) -> Self {
        self.stripe_size = stripe_size;
        self
    }

    /// Whether stripes are actually encrypted: `threshold_split` always is.
    pub const fn is_encrypted(&self) -> bool {
        self.encrypt || matches!(self.strategy, Strategy::ThresholdSplit)
    }

    /// Whether a decoder needs an owner-held key (as opposed to one recovered
    /// from the shards' Shamir shares).
    pub const fn needs_owner_key(&self) -> bool {
        self.encrypt && !matches!(self.strategy, Strategy::ThresholdSplit)
    }

    /// The codec that produces these shards; recorded in every header.
    pub const fn codec(&self) -> CodecId {
        match self.strategy {
            Strategy::FullReplica => CodecId::Replica,
            Strategy::ErasureCoded | Strategy::ThresholdSplit => CodecId::ReedSolomonSimd,
        }
    }

    /// Rejects k = 0, k > n, n beyond the strategy's or codec's maximum,
    /// `full_replica` with k != 1, and stripe sizes outside
    /// [`MIN_STRIPE_SIZE`]..=[`MAX_STRIPE_SIZE`].
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CodecError::BadParameters(m));
        let (k, n) = (self.k, self.n);
        if k == 0 {
            return bad("k must be at least 1".into());
        }
        if n == 0 {
            return bad("n must be at least 1".into());
        }
        if k > n {
            return bad(format!("k ({k}) must not exceed n ({n})"));
        }
        let max = self.strategy.max_shards();
        if n > max {
            return bad(format!(
                "n ({n}) exceeds the maximum of {max} shards for {}",
                self.strategy
            ));
        }
        if self.strategy == Strategy::FullReplica && k != 1 {
            return bad(format!(
                "full_replica needs exactly one copy to restore, so k must be 1 (got {k})"
            ));
        }
        if self.strategy != Strategy::FullReplica {
            let codec = ReedSolomonSimd::new();
            if !codec.supports(k, n) {
                return bad(format!(
                    "{} cannot produce {n} shards with k = {k}",
                    self.codec()
                ));
            }
        }
        if !(MIN_STRIPE_SIZE..=MAX_STRIPE_SIZE).contains(&self.stripe_size) {
            return bad(format!(
                "stripe size {} outside {MIN_STRIPE_SIZE}..={MAX_STRIPE_SIZE}",
                self.stripe_size
            ));
        }
        Ok(())
    }

    /// Exact size in bytes of every shard produced for `content_len` bytes of
    /// content, so a daemon can pre-allocate, check free space or quote
    /// storage before encoding.
    pub fn shard_len(&self, content_len: u64) -> u64 {
        let s = self.stripe_size as u64;
        let full = content_len / s;
        let rem = content_len % s;
        let per = |plain: u64| -> u64 {
            let data = plain + if self.is_encrypted() { 16 } else { 0 };
            let piece = format::piece_len(self.strategy, self.k, data as usize) as u64;
            (format::RECORD_HEAD_LEN + format::HASH_LEN) as u64 + piece
        };
        let mut total = (format::PREFIX_LEN + format::TRAILER_LEN) as u64 + full * per(s);
        if rem > 0 {
            total += per(rem);
        }
        total
    }
}

impl fmt::Display for CodecParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}-of-{}{} (stripes of {} B)",
            self.strategy,
            self.k,
            self.n,
            if self.is_encrypted() {
                ", encrypted"
            } else {
                ""
            },
            self.stripe_size
        )
    }
}

/// Encodes `content` in memory with fresh OS randomness.
///
/// Returns the shards, the [`ContentManifest`] to publish and, when the content
/// is encrypted at rest with an owner key, that key: keep it, or the content is
/// lost. Use [`Encoder`] to supply a key, a deterministic seed or threads.
pub fn encode(content: &[u8], params: &CodecParams) -> Result<Encoded> {
    Encoder::new(*params)?.encode(content)
}

/// Encodes everything `reader` yields into one writer per shard
/// (`writers.len()` must equal `params.n`), holding only a few stripes in
/// memory. See [`Encoder::encode_stream`].
pub fn encode_stream<R: Read, W: Write>(
    reader: R,
    params: &CodecParams,
    writers: &mut [W],
) -> Result<EncodeReport> {
    Encoder::new(*params)?.encode_stream(reader, writers)
}

/// Restores content from any `k` good shards (more is fine; corrupt or foreign
/// shards are skipped). Content encrypted with an owner key needs
/// [`decode_with_key`].
pub fn decode(shards: &[Shard]) -> Result<Vec<u8>> {
    Decoder::new().decode(shards)
}

/// Like [`decode`], for content encrypted at rest with an owner key.
pub fn decode_with_key(shards: &[Shard], key: &ContentKey) -> Result<Vec<u8>> {
    Decoder::new().with_key(key.clone()).decode(shards)
}

/// Streams content from shard readers into `writer`. The bytes written are only
/// trustworthy once this returns `Ok` (write to a temporary file and rename on
/// success). See [`Decoder::decode_stream`].
pub fn decode_stream<R: Read, W: Write>(
    readers: impl IntoIterator<Item = R>,
    writer: W,
) -> Result<DecodeReport> {
    Decoder::new().decode_stream(readers, writer)
}

/// Rebuilds the lost shard `index` from the available ones, byte-identical to
/// the original, without decrypting anything. See [`Decoder::rebuild_shard`].
pub fn rebuild_shard(available: &[Shard], index: usize) -> Result<Shard> {
    Decoder::new().rebuild_shard(available, index)
}

/// Streaming form of [`rebuild_shard`]: writes the rebuilt shard to `writer`.
pub fn rebuild_shard_stream<R: Read, W: Write>(
    readers: impl IntoIterator<Item = R>,
    index: usize,
    writer: W,
) -> Result<ShardHeader> {
    Decoder::new().rebuild_shard_stream(readers, index, writer)
}
