//! Erasure codecs behind a trait, so the Reed-Solomon implementation can be
//! replaced without a format break: every shard header names its codec id.

use std::fmt;

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::error::CodecError;

/// Identifies the codec that produced a shard's pieces; stored in every header
/// so a future build can keep reading today's shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecId {
    /// No coding: every shard holds the whole (possibly encrypted) stripe.
    /// Used by `full_replica`.
    Replica,
    /// Systematic Reed-Solomon over GF(2^16) (Leopard-style, O(n log n)) from
    /// the `reed-solomon-simd` crate, version 3 layout: pieces are `k` equal
    /// slices of the stripe, zero-padded to an even length, followed by `n - k`
    /// recovery pieces.
    ReedSolomonSimd,
}

impl CodecId {
    /// Wire value in the shard header.
    pub const fn as_u16(self) -> u16 {
        match self {
            CodecId::Replica => 0,
            CodecId::ReedSolomonSimd => 1,
        }
    }

    /// Parses the wire value; `None` for codecs this build does not know.
    pub const fn from_u16(v: u16) -> Option<Self> {
        match v {
            0 => Some(CodecId::Replica),
            1 => Some(CodecId::ReedSolomonSimd),
            _ => None,
        }
    }
}

impl fmt::Display for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CodecId::Replica => "replica",
            CodecId::ReedSolomonSimd => "reed-solomon-simd",
        })
    }
}

/// A systematic k-of-n erasure code over equal-length pieces.
///
/// Shard indices `0..k` are the original pieces (slices of the stripe),
/// `k..n` the recovery pieces. Implementations keep their working memory
/// between calls, which is why the methods take `&mut self`. The codec never
/// sees corrupt pieces: callers check every piece's hash first, because no
/// Reed-Solomon decoder can tell a corrupt piece from a good one.
pub trait ErasureCodec: Send {
    /// The id written into shard headers.
    fn id(&self) -> CodecId;

    /// Whether `n` shards with any `k` sufficient can be produced.
    fn supports(&self, k: usize, n: usize) -> bool;

    /// Pieces must be a multiple of this many bytes.
    fn piece_alignment(&self) -> usize;

    /// Computes the `recovery_count` recovery pieces for `originals` (all the
    /// same length) and hands each to `sink(recovery_number, bytes)`, where
    /// recovery number `r` is shard index `k + r`.
    fn encode(
        &mut self,
        originals: &[&[u8]],
        recovery_count: usize,
        sink: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), CodecError>;

    /// Restores the original pieces missing from `present` (pairs of shard
    /// index and bytes, at least `k` of them, all `piece_len` long) and hands
    /// each to `sink(original_index, bytes)`, in ascending index order (the
    /// decoder assembles stripes on the fly and reports an error otherwise).
    fn reconstruct(
        &mut self,
        k: usize,
        recovery_count: usize,
        piece_len: usize,
        present: &[(usize, &[u8])],
        sink: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), CodecError>;

    /// Upper bound of the work space this instance keeps allocated, so the
    /// per-thread reuse cache can refuse large ones. The default, "unknown",
    /// means the instance is never kept between calls.
    fn retained_bytes(&self) -> usize {
        usize::MAX
    }
}

/// Returns a fresh instance of the codec with this id, or `None` for
/// [`CodecId::Replica`], which needs no coding.
pub fn codec_for(id: CodecId) -> Option<Box<dyn ErasureCodec>> {
    match id {
        CodecId::Replica => None,
        CodecId::ReedSolomonSimd => Some(Box::new(ReedSolomonSimd::new())),
    }
}

/// [`ErasureCodec`] backed by `reed-solomon-simd` (SIMD-accelerated,
/// O(n log n)); reuses its encoder and decoder work buffers across stripes.
#[derive(Default)]
pub struct ReedSolomonSimd {
    encoder: Option<ReedSolomonEncoder>,
    decoder: Option<ReedSolomonDecoder>,
    /// Largest work space requested so far (buffers only grow).
    retained: usize,
}

/// Conservative size of reed-solomon-simd's work buffers: the encoder keeps
/// at most `(k + m).next_power_of_two()` pieces, the decoder twice that, each
/// rounded up to 64 bytes.
fn work_estimate(k: usize, m: usize, piece_len: usize) -> usize {
    (k + m)
        .next_power_of_two()
        .saturating_mul(3)
        .saturating_mul(piece_len.div_ceil(64) * 64)
}

impl ReedSolomonSimd {
    /// A codec with no working memory allocated yet.
    pub fn new() -> Self {
        Self::default()
    }
}

fn rs_err(e: reed_solomon_simd::Error) -> CodecError {
    CodecError::Internal(format!("reed-solomon-simd: {e}"))
}

impl ErasureCodec for ReedSolomonSimd {
    fn id(&self) -> CodecId {
        CodecId::ReedSolomonSimd
    }

    fn retained_bytes(&self) -> usize {
        self.retained
    }

    fn supports(&self, k: usize, n: usize) -> bool {
        k >= 1
            && n >= k
            && n <= crate::MAX_SHARDS
            && (n == k || ReedSolomonEncoder::supports(k, n - k))
    }

    fn piece_alignment(&self) -> usize {
        crate::format::PIECE_ALIGN
    }

    fn encode(
        &mut self,
        originals: &[&[u8]],
        recovery_count: usize,
        sink: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), CodecError> {
        if recovery_count == 0 {
            return Ok(());
        }
        let k = originals.len();
        let piece_len = originals.first().map_or(0, |p| p.len());
        self.retained = self
            .retained
            .max(work_estimate(k, recovery_count, piece_len));
        let enc = match &mut self.encoder {
            Some(e) => {
                e.reset(k, recovery_count, piece_len).map_err(rs_err)?;
                e
            }
            slot => {
                slot.insert(ReedSolomonEncoder::new(k, recovery_count, piece_len).map_err(rs_err)?)
            }
        };
        for o in originals {
            enc.add_original_shard(o).map_err(rs_err)?;
        }
        let result = enc.encode().map_err(rs_err)?;
        for (r, piece) in result.recovery_iter().enumerate() {
            sink(r, piece);
        }
        Ok(())
    }

    fn reconstruct(
        &mut self,
        k: usize,
        recovery_count: usize,
        piece_len: usize,
        present: &[(usize, &[u8])],
        sink: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), CodecError> {
        if present.iter().filter(|(i, _)| *i < k).count() == k {
            return Ok(()); // nothing is missing
        }
        if recovery_count == 0 {
            return Err(CodecError::Internal(
                "original pieces missing and no recovery pieces exist".into(),
            ));
        }
        self.retained = self
            .retained
            .max(work_estimate(k, recovery_count, piece_len));
        let dec = match &mut self.decoder {
            Some(d) => {
                d.reset(k, recovery_count, piece_len).map_err(rs_err)?;
                d
            }
            slot => {
                slot.insert(ReedSolomonDecoder::new(k, recovery_count, piece_len).map_err(rs_err)?)
            }
        };
        for (index, bytes) in present {
            if *index < k {
                dec.add_original_shard(*index, bytes).map_err(rs_err)?;
            } else {
                dec.add_recovery_shard(*index - k, bytes).map_err(rs_err)?;
            }
        }
        let result = dec.decode().map_err(rs_err)?;
        for (i, piece) in result.restored_original_iter() {
            sink(i, piece);
        }
        Ok(())
    }
}
