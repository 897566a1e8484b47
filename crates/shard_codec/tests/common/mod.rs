//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{self, Read};

use shard_codec::{CodecParams, ContentKey, Decoder, Encoded, Encoder, Strategy};

/// Deterministic pseudo-random content (blake3 XOF), fast even in debug builds.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}

/// Parameters for a strategy with the given k and n (k forced to 1 for replicas).
pub fn params(strategy: Strategy, k: usize, n: usize, encrypt: bool, stripe: usize) -> CodecParams {
    let k = if strategy == Strategy::FullReplica {
        1
    } else {
        k
    };
    CodecParams::new(strategy, k, n)
        .unwrap()
        .with_encryption(encrypt)
        .with_stripe_size(stripe)
}

pub fn key() -> ContentKey {
    ContentKey::from_bytes([0x5a; 32])
}

/// Encodes with a fixed owner key and seed.
pub fn encode(data: &[u8], p: CodecParams, seed: u8) -> Encoded {
    Encoder::new(p)
        .unwrap()
        .with_key(key())
        .with_seed([seed; 32])
        .encode(data)
        .unwrap()
}

pub fn decoder() -> Decoder {
    Decoder::new().with_key(key())
}

/// A reader that fails (or ends early) after `limit` bytes.
pub struct Faulty<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub limit: usize,
    pub error: bool,
}

impl Read for Faulty<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.limit {
            return if self.error {
                Err(io::Error::other("custodian went away"))
            } else {
                Ok(0)
            };
        }
        let end = self.limit.min(self.data.len());
        // Short reads on purpose: decoders must not assume full buffers.
        let n = buf.len().min(end - self.pos).min(7777);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Offsets of the documented layout, for tests that poke at shard bytes.
pub const PREFIX_LEN: usize = 112;
pub const TRAILER_LEN: usize = 84;
pub const KEY_SHARE: std::ops::Range<usize> = 41..74;
pub const ENCODE_ID: std::ops::Range<usize> = 24..40;
pub const INDEX: std::ops::Range<usize> = 16..18;

/// Re-seals shard bytes after the prefix was edited: recomputes the header
/// hash, every stripe hash and the whole-shard hash exactly as README.md
/// documents, i.e. what a forger who knows the format would do.
pub fn reseal(bytes: &mut [u8]) {
    let mut h = blake3::Hasher::new_derive_key("elohim shard_codec v1 header hash");
    h.update(&bytes[..80]);
    let hh = *h.finalize().as_bytes();
    bytes[80..112].copy_from_slice(&hh);
    let strategy = bytes[10];
    let mut key_input = [0u8; 80];
    key_input.copy_from_slice(&bytes[..80]);
    if strategy == 1 {
        key_input[16] = 0;
        key_input[17] = 0;
        // The key is derived from the prefix bytes with the index zeroed, whose
        // header hash is not part of the key input.
    }
    let stripe_key = blake3::derive_key("elohim shard_codec v1 stripe key", &key_input);
    let mut chain = blake3::Hasher::new_derive_key("elohim shard_codec v1 shard hash");
    chain.update(&bytes[..PREFIX_LEN]);
    let mut pos = PREFIX_LEN;
    while bytes[pos] == b'S' {
        let piece_len = u32::from_le_bytes(bytes[pos + 16..pos + 20].try_into().unwrap()) as usize;
        let end = pos + 20 + piece_len;
        let mut h = blake3::Hasher::new_keyed(&stripe_key);
        h.update(&bytes[pos..end]);
        let sh = *h.finalize().as_bytes();
        bytes[end..end + 32].copy_from_slice(&sh);
        chain.update(&sh);
        pos = end + 32;
    }
    assert_eq!(bytes[pos], b'T');
    chain.update(&bytes[pos..pos + 52]);
    let shard_hash = *chain.finalize().as_bytes();
    bytes[pos + 52..pos + 84].copy_from_slice(&shard_hash);
}
