//! The on-disk / on-wire shard layout (little-endian, documented in README.md).
//!
//! ```text
//! shard   = prefix (112 B) · stripe record* · trailer (84 B)
//! prefix  = magic "ELSH" · version u16 · prefix_len u16 · codec u16 · strategy u8
//!           · flags u8 · k u16 · n u16 · index u16 · reserved u16 · stripe_size u32
//!           · encode_id [16] · key_share_len u8 · key_share [33] · reserved [6]
//!           · header_hash [32]                      (blake3 derive-key over bytes 0..80)
//! record  = 'S' · reserved [3] · stripe u64 · data_len u32 · piece_len u32
//!           · payload [piece_len] · stripe_hash [32] (keyed blake3 over head+payload)
//! trailer = 'T' · reserved [3] · stripe_count u64 · content_len u64
//!           · content_hash [32] · shard_hash [32]
//! ```
//!
//! Everything known before the content has been read sits in the prefix;
//! what is only known at the end (content hash and length, whole-shard hash)
//! sits in the trailer. That is what lets [`crate::encode_stream`] write every
//! shard front to back without seeking.

use crate::codec::CodecId;
use crate::{CodecParams, Strategy};

pub(crate) const MAGIC: [u8; 4] = *b"ELSH";
/// Version of the shard layout this crate writes (and the only one it reads).
pub const FORMAT_VERSION: u16 = 1;
pub(crate) const PREFIX_LEN: usize = 112;
/// Bytes of the prefix covered by the header hash.
pub(crate) const PREFIX_HASHED_LEN: usize = 80;
/// Bytes of the prefix that identify the content (same in every shard once the
/// index is zeroed): used as AEAD associated data.
pub(crate) const IDENTITY_LEN: usize = 40;
pub(crate) const RECORD_HEAD_LEN: usize = 20;
pub(crate) const HASH_LEN: usize = 32;
pub(crate) const TRAILER_LEN: usize = 84;
pub(crate) const TRAILER_HASHED_LEN: usize = 52;
pub(crate) const KEY_SHARE_LEN: usize = 33;
pub(crate) const AEAD_TAG_LEN: usize = 16;
pub(crate) const TAG_STRIPE: u8 = b'S';
pub(crate) const TAG_TRAILER: u8 = b'T';
/// Reed-Solomon pieces must be a multiple of this many bytes.
pub(crate) const PIECE_ALIGN: usize = 2;

const CTX_HEADER: &str = "elohim shard_codec v1 header hash";
const CTX_STRIPE_KEY: &str = "elohim shard_codec v1 stripe key";
const CTX_SHARD: &str = "elohim shard_codec v1 shard hash";

pub(crate) type Hash = [u8; HASH_LEN];
pub(crate) type KeyShare = [u8; KEY_SHARE_LEN];

/// Why a byte sequence is not a usable shard: corrupt, or written by a format
/// this version does not understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormatError {
    Corrupt(String),
    Unsupported(String),
}

impl FormatError {
    pub(crate) fn reason(&self) -> &str {
        match self {
            FormatError::Corrupt(r) | FormatError::Unsupported(r) => r,
        }
    }

    pub(crate) fn into_error(self, index: Option<usize>) -> crate::CodecError {
        match self {
            FormatError::Corrupt(reason) => crate::CodecError::CorruptShard { index, reason },
            FormatError::Unsupported(r) => crate::CodecError::Unsupported(r),
        }
    }
}

fn corrupt<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError::Corrupt(msg.into()))
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Bytes of coded data per piece for a stripe of `data_len` bytes: the whole
/// stripe for replicas, `ceil(data_len / k)` rounded up to the Reed-Solomon
/// alignment otherwise.
pub(crate) fn piece_len(strategy: Strategy, k: usize, data_len: usize) -> usize {
    match strategy {
        Strategy::FullReplica => data_len,
        Strategy::ErasureCoded | Strategy::ThresholdSplit => {
            data_len.div_ceil(k).div_ceil(PIECE_ALIGN) * PIECE_ALIGN
        }
    }
}

/// The fields of a shard known before any content is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prefix {
    pub codec: CodecId,
    pub strategy: Strategy,
    pub encrypted: bool,
    pub k: u16,
    pub n: u16,
    pub index: u16,
    pub stripe_size: u32,
    pub encode_id: [u8; 16],
    pub key_share: Option<KeyShare>,
}

/// Fields that must agree between shards of one encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupKey {
    codec: CodecId,
    strategy: Strategy,
    encrypted: bool,
    k: u16,
    n: u16,
    stripe_size: u32,
    encode_id: [u8; 16],
}

impl Prefix {
    pub fn from_params(params: &CodecParams, index: usize, encode_id: [u8; 16]) -> Self {
        // Parameters are validated before this is called, so the casts hold.
        Prefix {
            codec: params.codec(),
            strategy: params.strategy,
            encrypted: params.is_encrypted(),
            k: params.k as u16,
            n: params.n as u16,
            index: index as u16,
            stripe_size: params.stripe_size as u32,
            encode_id,
            key_share: None,
        }
    }

    pub fn params(&self) -> CodecParams {
        CodecParams {
            strategy: self.strategy,
            k: self.k as usize,
            n: self.n as usize,
            encrypt: self.encrypted,
            stripe_size: self.stripe_size as usize,
        }
    }

    pub fn group(&self) -> GroupKey {
        GroupKey {
            codec: self.codec,
            strategy: self.strategy,
            encrypted: self.encrypted,
            k: self.k,
            n: self.n,
            stripe_size: self.stripe_size,
            encode_id: self.encode_id,
        }
    }

    pub fn to_bytes(&self) -> [u8; PREFIX_LEN] {
        let mut b = [0u8; PREFIX_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[6..8].copy_from_slice(&(PREFIX_LEN as u16).to_le_bytes());
        b[8..10].copy_from_slice(&self.codec.as_u16().to_le_bytes());
        b[10] = self.strategy.to_byte();
        b[11] = u8::from(self.encrypted);
        b[12..14].copy_from_slice(&self.k.to_le_bytes());
        b[14..16].copy_from_slice(&self.n.to_le_bytes());
        b[16..18].copy_from_slice(&self.index.to_le_bytes());
        b[20..24].copy_from_slice(&self.stripe_size.to_le_bytes());
        b[24..40].copy_from_slice(&self.encode_id);
        if let Some(share) = &self.key_share {
            b[40] = KEY_SHARE_LEN as u8;
            b[41..74].copy_from_slice(share);
        }
        let h = header_hash(&b[..PREFIX_HASHED_LEN]);
        b[PREFIX_HASHED_LEN..].copy_from_slice(&h);
        b
    }

    /// Parses and fully validates a prefix. Never panics, whatever the bytes.
    pub fn parse(b: &[u8; PREFIX_LEN]) -> Result<Self, FormatError> {
        if b[0..4] != MAGIC {
            return corrupt("not a shard (bad magic)");
        }
        let version = le16(b, 4);
        if version != FORMAT_VERSION {
            // Checked before the header hash: a future version may hash
            // differently, and "unsupported" is the useful answer then.
            return Err(FormatError::Unsupported(format!(
                "format version {version} (this build reads version {FORMAT_VERSION})"
            )));
        }
        if header_hash(&b[..PREFIX_HASHED_LEN])[..] != b[PREFIX_HASHED_LEN..] {
            return corrupt("header checksum mismatch");
        }
        if usize::from(le16(b, 6)) != PREFIX_LEN {
            return corrupt(format!("prefix length {} != {PREFIX_LEN}", le16(b, 6)));
        }
        let Some(codec) = CodecId::from_u16(le16(b, 8)) else {
            return Err(FormatError::Unsupported(format!(
                "unknown codec id {}",
                le16(b, 8)
            )));
        };
        let Some(strategy) = Strategy::from_byte(b[10]) else {
            return corrupt(format!("unknown strategy byte {}", b[10]));
        };
        if b[11] & !1 != 0 {
            return corrupt(format!("unknown flags {:#04x}", b[11]));
        }
        let encrypted = b[11] & 1 == 1;
        let (k, n, index) = (le16(b, 12), le16(b, 14), le16(b, 16));
        if le16(b, 18) != 0 || b[74..80].iter().any(|&x| x != 0) {
            return corrupt("reserved header bytes are not zero");
        }
        let stripe_size = le32(b, 20);
        let mut encode_id = [0u8; 16];
        encode_id.copy_from_slice(&b[24..40]);
        let params = CodecParams {
            strategy,
            k: k.into(),
            n: n.into(),
            encrypt: encrypted,
            stripe_size: stripe_size as usize,
        };
        if let Err(e) = params.validate() {
            return corrupt(format!("header parameters invalid: {e}"));
        }
        if codec != params.codec() {
            return corrupt(format!("codec {codec} does not match strategy {strategy}"));
        }
        if index >= n {
            return corrupt(format!("shard index {index} not below n = {n}"));
        }
        let is_threshold = strategy == Strategy::ThresholdSplit;
        if is_threshold && !encrypted {
            return corrupt("threshold_split shard without the encrypted flag");
        }
        let key_share = match (b[40], is_threshold) {
            (0, false) => {
                if b[41..74].iter().any(|&x| x != 0) {
                    return corrupt("key share bytes present without a key share");
                }
                None
            }
            (len, true) if usize::from(len) == KEY_SHARE_LEN => {
                let mut s = [0u8; KEY_SHARE_LEN];
                s.copy_from_slice(&b[41..74]);
                if usize::from(s[0]) != usize::from(index) + 1 {
                    return corrupt("key share coordinate does not match the shard index");
                }
                Some(s)
            }
            (len, _) => {
                return corrupt(format!("key share length {len} invalid for {strategy}"));
            }
        };
        Ok(Prefix {
            codec,
            strategy,
            encrypted,
            k,
            n,
            index,
            stripe_size,
            encode_id,
            key_share,
        })
    }

    /// Content identity (bytes 0..40 with the index zeroed): the same for every
    /// shard of one encoding; authenticated as AEAD associated data.
    pub fn identity(&self) -> [u8; IDENTITY_LEN] {
        let mut p = self.clone();
        p.index = 0;
        p.key_share = None;
        let b = p.to_bytes();
        let mut out = [0u8; IDENTITY_LEN];
        out.copy_from_slice(&b[..IDENTITY_LEN]);
        out
    }

    /// Key for this shard's stripe hashes. Derived from the whole prefix, so a
    /// stripe cannot be spliced into another shard, position or content. All
    /// replicas share one key (their records are identical anyway), which lets
    /// the encoder hash each stripe once instead of n times.
    pub fn stripe_key(&self) -> Hash {
        let mut p = self.clone();
        if p.strategy == Strategy::FullReplica {
            p.index = 0;
        }
        let b = p.to_bytes();
        blake3::derive_key(CTX_STRIPE_KEY, &b[..PREFIX_HASHED_LEN])
    }

    /// Largest `data_len` a stripe record may declare.
    pub fn max_data_len(&self) -> usize {
        self.stripe_size as usize + if self.encrypted { AEAD_TAG_LEN } else { 0 }
    }

    /// Smallest `data_len` a stripe record may declare (stripes are never empty).
    pub fn min_data_len(&self) -> usize {
        1 + if self.encrypted { AEAD_TAG_LEN } else { 0 }
    }

    pub fn piece_len(&self, data_len: usize) -> usize {
        piece_len(self.strategy, self.k.into(), data_len)
    }

    pub fn max_piece_len(&self) -> usize {
        self.piece_len(self.max_data_len())
    }

    /// Plaintext bytes carried by a stripe with `data_len` coded bytes.
    pub fn plain_len(&self, data_len: usize) -> usize {
        data_len - if self.encrypted { AEAD_TAG_LEN } else { 0 }
    }

    /// Checks the authenticated fields of a stripe record against this prefix.
    pub fn check_head(&self, head: &RecordHead) -> Result<(), String> {
        let data_len = head.data_len as usize;
        if data_len < self.min_data_len() || data_len > self.max_data_len() {
            return Err(format!(
                "stripe {} declares {data_len} data bytes, outside {}..={}",
                head.stripe,
                self.min_data_len(),
                self.max_data_len()
            ));
        }
        if head.piece_len as usize != self.piece_len(data_len) {
            return Err(format!(
                "stripe {} declares piece length {} for {data_len} data bytes",
                head.stripe, head.piece_len
            ));
        }
        Ok(())
    }

    /// Starts the whole-shard hash chain for a shard with these prefix bytes.
    pub fn chain(bytes: &[u8; PREFIX_LEN]) -> blake3::Hasher {
        let mut h = blake3::Hasher::new_derive_key(CTX_SHARD);
        h.update(bytes);
        h
    }
}

fn header_hash(bytes: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new_derive_key(CTX_HEADER);
    h.update(bytes);
    *h.finalize().as_bytes()
}

/// Header of one stripe record. It does not name the shard index, so all shards
/// of a stripe carry byte-identical heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct RecordHead {
    pub stripe: u64,
    pub data_len: u32,
    pub piece_len: u32,
}

impl RecordHead {
    pub fn to_bytes(self) -> [u8; RECORD_HEAD_LEN] {
        let mut b = [0u8; RECORD_HEAD_LEN];
        b[0] = TAG_STRIPE;
        b[4..12].copy_from_slice(&self.stripe.to_le_bytes());
        b[12..16].copy_from_slice(&self.data_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.piece_len.to_le_bytes());
        b
    }

    pub fn parse(b: &[u8; RECORD_HEAD_LEN]) -> Result<Self, String> {
        if b[0] != TAG_STRIPE {
            return Err(format!("unknown record tag {:#04x}", b[0]));
        }
        if b[1..4] != [0, 0, 0] {
            return Err("reserved record bytes are not zero".into());
        }
        Ok(RecordHead {
            stripe: le64(b, 4),
            data_len: le32(b, 12),
            piece_len: le32(b, 16),
        })
    }
}

/// Keyed hash of one stripe record (head and payload).
pub(crate) fn stripe_hash(key: &Hash, head: &[u8; RECORD_HEAD_LEN], payload: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(head);
    h.update(payload);
    *h.finalize().as_bytes()
}

/// The trailer: what is only known once all content has been read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub stripe_count: u64,
    pub content_len: u64,
    pub content_hash: Hash,
    pub shard_hash: Hash,
}

impl Trailer {
    /// Builds the trailer bytes, finishing the shard hash chain.
    pub fn seal(
        chain: &blake3::Hasher,
        stripe_count: u64,
        content_len: u64,
        content_hash: Hash,
    ) -> (Trailer, [u8; TRAILER_LEN]) {
        let mut b = [0u8; TRAILER_LEN];
        b[0] = TAG_TRAILER;
        b[4..12].copy_from_slice(&stripe_count.to_le_bytes());
        b[12..20].copy_from_slice(&content_len.to_le_bytes());
        b[20..52].copy_from_slice(&content_hash);
        let mut h = chain.clone();
        h.update(&b[..TRAILER_HASHED_LEN]);
        let shard_hash = *h.finalize().as_bytes();
        b[TRAILER_HASHED_LEN..].copy_from_slice(&shard_hash);
        (
            Trailer {
                stripe_count,
                content_len,
                content_hash,
                shard_hash,
            },
            b,
        )
    }

    /// Parses trailer bytes and checks them against the hash chain of
    /// everything read before, and the number of stripe records seen.
    pub fn open(
        b: &[u8; TRAILER_LEN],
        chain: &blake3::Hasher,
        stripes_seen: u64,
    ) -> Result<Trailer, String> {
        if b[0] != TAG_TRAILER {
            return Err(format!("unknown record tag {:#04x}", b[0]));
        }
        if b[1..4] != [0, 0, 0] {
            return Err("reserved trailer bytes are not zero".into());
        }
        let mut h = chain.clone();
        h.update(&b[..TRAILER_HASHED_LEN]);
        if h.finalize().as_bytes()[..] != b[TRAILER_HASHED_LEN..] {
            return Err("shard hash mismatch (trailer or stripe hashes corrupt)".into());
        }
        let stripe_count = le64(b, 4);
        if stripe_count != stripes_seen {
            return Err(format!(
                "trailer records {stripe_count} stripes, shard holds {stripes_seen}"
            ));
        }
        let mut content_hash = [0u8; HASH_LEN];
        content_hash.copy_from_slice(&b[20..52]);
        let mut shard_hash = [0u8; HASH_LEN];
        shard_hash.copy_from_slice(&b[TRAILER_HASHED_LEN..]);
        Ok(Trailer {
            stripe_count,
            content_len: le64(b, 12),
            content_hash,
            shard_hash,
        })
    }
}

/// Everything a shard says about itself: the prefix and trailer fields in one
/// struct, returned by [`crate::verify_shard`] so a daemon can check a shard
/// (and compare its hash with the one recorded in the DHT) without decoding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardHeader {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u16,
    /// Erasure codec that produced the pieces.
    pub codec: CodecId,
    /// Strategy the content was encoded with.
    pub strategy: Strategy,
    /// Whether stripes are encrypted (always true for `threshold_split`).
    pub encrypted: bool,
    /// Shards needed to restore the content.
    pub k: usize,
    /// Shards produced.
    pub n: usize,
    /// This shard's index, `0..n`.
    pub index: usize,
    /// Plaintext bytes per stripe.
    pub stripe_size: usize,
    /// Random id of this encoding; shards of different encodings never combine.
    pub encode_id: [u8; 16],
    /// blake3 of the content; for encrypted content a keyed blake3 whose key is
    /// derived from the content key, so custodians cannot confirm guesses.
    pub content_hash: [u8; 32],
    /// Content length in bytes.
    pub content_len: u64,
    /// Number of stripe records in every shard.
    pub stripe_count: u64,
    /// Hash committing to every byte of this shard (see README): compare it
    /// with [`crate::ContentManifest::shard_hashes`].
    pub shard_hash: [u8; 32],
}

impl ShardHeader {
    pub(crate) fn from_parts(prefix: &Prefix, trailer: &Trailer) -> Self {
        ShardHeader {
            format_version: FORMAT_VERSION,
            codec: prefix.codec,
            strategy: prefix.strategy,
            encrypted: prefix.encrypted,
            k: prefix.k.into(),
            n: prefix.n.into(),
            index: prefix.index.into(),
            stripe_size: prefix.stripe_size as usize,
            encode_id: prefix.encode_id,
            content_hash: trailer.content_hash,
            content_len: trailer.content_len,
            stripe_count: trailer.stripe_count,
            shard_hash: trailer.shard_hash,
        }
    }

    /// The parameters this shard was encoded with.
    pub fn params(&self) -> CodecParams {
        CodecParams {
            strategy: self.strategy,
            k: self.k,
            n: self.n,
            encrypt: self.encrypted,
            stripe_size: self.stripe_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(strategy: Strategy) -> Prefix {
        let params = match strategy {
            Strategy::FullReplica => CodecParams::full_replica(5),
            Strategy::ErasureCoded => CodecParams::erasure_coded(3, 5),
            Strategy::ThresholdSplit => CodecParams::threshold_split(3, 5),
        };
        let mut p = Prefix::from_params(&params.with_stripe_size(4096), 2, [0xab; 16]);
        if strategy == Strategy::ThresholdSplit {
            let mut share = [0x11; KEY_SHARE_LEN];
            share[0] = 3;
            p.key_share = Some(share);
        }
        p
    }

    #[test]
    fn prefix_round_trip_and_every_byte_matters() {
        for s in Strategy::ALL {
            let p = sample(s);
            let b = p.to_bytes();
            assert_eq!(Prefix::parse(&b).unwrap(), p);
            for i in 0..PREFIX_LEN {
                let mut c = b;
                c[i] ^= 0x01;
                assert!(Prefix::parse(&c).is_err(), "{s}: byte {i} not covered");
            }
        }
    }

    #[test]
    fn structural_checks_behind_a_valid_checksum() {
        let reseal = |mut b: [u8; PREFIX_LEN]| {
            let h = header_hash(&b[..PREFIX_HASHED_LEN]);
            b[PREFIX_HASHED_LEN..].copy_from_slice(&h);
            b
        };
        let base = sample(Strategy::ThresholdSplit).to_bytes();
        let cases: [(usize, u8); 8] = [
            (4, 2),  // version 2: unsupported
            (8, 9),  // unknown codec
            (10, 9), // unknown strategy
            (11, 0), // threshold without the encrypted flag
            (16, 7), // index >= n
            (18, 1), // reserved
            (41, 9), // share x != index + 1
            (40, 0), // threshold without a share
        ];
        for (at, v) in cases {
            let mut b = base;
            b[at] = v;
            let err = Prefix::parse(&reseal(b)).unwrap_err();
            if at == 4 || at == 8 {
                assert!(matches!(err, FormatError::Unsupported(_)), "{at}: {err:?}");
            } else {
                assert!(matches!(err, FormatError::Corrupt(_)), "{at}: {err:?}");
            }
        }
        let mut b = base;
        b[12] = 9; // k > n
        assert!(Prefix::parse(&reseal(b)).is_err());
    }

    #[test]
    fn piece_lengths() {
        assert_eq!(piece_len(Strategy::FullReplica, 1, 1001), 1001);
        assert_eq!(piece_len(Strategy::ErasureCoded, 4, 1), 2);
        assert_eq!(piece_len(Strategy::ErasureCoded, 4, 1000), 250);
        assert_eq!(piece_len(Strategy::ErasureCoded, 4, 1001), 252);
        assert_eq!(piece_len(Strategy::ThresholdSplit, 3, 17), 6);
    }

    #[test]
    fn record_head_round_trip() {
        let h = RecordHead {
            stripe: 77,
            data_len: 1000,
            piece_len: 250,
        };
        assert_eq!(RecordHead::parse(&h.to_bytes()).unwrap(), h);
        let mut b = h.to_bytes();
        b[2] = 1;
        assert!(RecordHead::parse(&b).is_err());
        b = h.to_bytes();
        b[0] = TAG_TRAILER;
        assert!(RecordHead::parse(&b).is_err());
    }
}
