//! Keys, per-stripe AEAD, keyed content hashes and Shamir key shares.

use std::fmt;

use blahaj::{Share, Sharks};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use rand::rngs::StdRng;
use rand::{SeedableRng, TryRng};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::CodecError;
use crate::format::{KeyShare, AEAD_TAG_LEN, IDENTITY_LEN, KEY_SHARE_LEN};

const CTX_AEAD_KEY: &str = "elohim shard_codec v1 stripe aead key";
const CTX_CONTENT_HASH_KEY: &str = "elohim shard_codec v1 content hash key";

/// A 256-bit content key.
///
/// For `full_replica` and `erasure_coded` with encryption at rest this is the
/// owner's key: it never appears in any shard, so keep it (the daemon stores it
/// with the owner's private data) or the content is lost. For
/// `threshold_split` it is generated per content and travels only as Shamir
/// shares. Zeroized on drop; `Debug` does not print it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ContentKey([u8; 32]);

/// Constant-time comparison, so comparing keys leaks nothing through timing.
impl PartialEq for ContentKey {
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for ContentKey {}

impl ContentKey {
    /// Wraps existing key bytes (e.g. loaded from the owner's key store).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        ContentKey(bytes)
    }

    /// The raw key bytes, for storing the key.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Self, CodecError> {
        let mut b = [0u8; 32];
        os_random(&mut b)?;
        Ok(ContentKey(b))
    }

    /// A fresh key from a caller-supplied cryptographic RNG.
    pub fn generate_with<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        ContentKey(b)
    }

    /// Concatenates the key with an encoding id as KDF input.
    fn with_encode_id(&self, encode_id: &[u8; 16]) -> [u8; 48] {
        let mut m = [0u8; 48];
        m[..32].copy_from_slice(&self.0);
        m[32..].copy_from_slice(encode_id);
        m
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKey(<redacted>)")
    }
}

pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), CodecError> {
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .map_err(|e| CodecError::Crypto(format!("operating system randomness unavailable: {e}")))
}

/// A CSPRNG seeded from the OS, for one encode call.
pub(crate) fn os_rng() -> Result<StdRng, CodecError> {
    let mut seed = [0u8; 32];
    os_random(&mut seed)?;
    let rng = StdRng::from_seed(seed);
    seed.zeroize();
    Ok(rng)
}

/// XChaCha20-Poly1305 over stripes. Each content gets its own subkey
/// (KDF of the content key and the random encoding id), and each stripe the
/// nonce `encode_id || stripe_index`, so nonces never repeat under a key even
/// when an owner key is reused for many contents.
pub(crate) struct StripeCipher {
    aead: XChaCha20Poly1305,
    encode_id: [u8; 16],
    aad: [u8; IDENTITY_LEN],
}

impl StripeCipher {
    pub fn new(key: &ContentKey, encode_id: &[u8; 16], aad: [u8; IDENTITY_LEN]) -> Self {
        let mut material = key.with_encode_id(encode_id);
        let mut sub = blake3::derive_key(CTX_AEAD_KEY, &material);
        material.zeroize();
        let aead = XChaCha20Poly1305::new(&Key::from(sub));
        sub.zeroize();
        StripeCipher {
            aead,
            encode_id: *encode_id,
            aad,
        }
    }

    fn nonce(&self, stripe: u64) -> XNonce {
        let mut n = [0u8; 24];
        n[..16].copy_from_slice(&self.encode_id);
        n[16..].copy_from_slice(&stripe.to_le_bytes());
        XNonce::from(n)
    }

    /// Encrypts `buf` in place and appends the 16-byte tag.
    pub fn seal(&self, stripe: u64, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        let tag = self
            .aead
            .encrypt_inout_detached(&self.nonce(stripe), &self.aad, buf.as_mut_slice().into())
            .map_err(|_| CodecError::Crypto(format!("encrypting stripe {stripe} failed")))?;
        buf.extend_from_slice(tag.as_slice());
        Ok(())
    }

    /// Checks the tag at the end of `buf`, decrypts in place and drops the tag.
    pub fn open(&self, stripe: u64, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        let fail = || {
            CodecError::Crypto(format!(
                "stripe {stripe} does not decrypt: wrong key, or a forged shard"
            ))
        };
        let msg_len = buf.len().checked_sub(AEAD_TAG_LEN).ok_or_else(fail)?;
        let (msg, tag) = buf.split_at_mut(msg_len);
        let tag = Tag::try_from(&*tag).map_err(|_| fail())?;
        self.aead
            .decrypt_inout_detached(&self.nonce(stripe), &self.aad, msg.into(), &tag)
            .map_err(|_| fail())?;
        buf.truncate(msg_len);
        Ok(())
    }
}

/// The content hash recorded in trailers: plain blake3 for public content (a
/// standard content id), keyed blake3 for encrypted content so custodians
/// cannot confirm a guessed plaintext.
pub(crate) fn content_hasher(key: Option<&ContentKey>, encode_id: &[u8; 16]) -> blake3::Hasher {
    match key {
        None => blake3::Hasher::new(),
        Some(key) => {
            let mut material = key.with_encode_id(encode_id);
            let mut k = blake3::derive_key(CTX_CONTENT_HASH_KEY, &material);
            material.zeroize();
            let h = blake3::Hasher::new_keyed(&k);
            k.zeroize();
            h
        }
    }
}

fn shamir_err(e: &str) -> CodecError {
    CodecError::Crypto(format!("shamir: {e}"))
}

/// Splits `key` into `n` Shamir shares with threshold `k` (blahaj, GF(256)).
/// Share `i` has x-coordinate `i + 1` and is serialized as `x || y[32]`.
pub(crate) fn split_key<R: rand::CryptoRng>(
    key: &ContentKey,
    k: usize,
    n: usize,
    rng: &mut R,
) -> Result<Vec<KeyShare>, CodecError> {
    let k8 = u8::try_from(k).map_err(|_| shamir_err("threshold above 255"))?;
    let mut out = Vec::with_capacity(n);
    for (i, share) in Sharks(k8)
        .dealer_rng(key.as_bytes(), rng)
        .take(n)
        .enumerate()
    {
        let mut bytes = Vec::from(&share);
        if bytes.len() != KEY_SHARE_LEN || usize::from(bytes[0]) != i + 1 {
            bytes.zeroize();
            return Err(shamir_err("unexpected share layout"));
        }
        let mut s = [0u8; KEY_SHARE_LEN];
        s.copy_from_slice(&bytes);
        bytes.zeroize();
        out.push(s);
    }
    if out.len() != n {
        return Err(shamir_err("dealer produced too few shares"));
    }
    Ok(out)
}

fn interpolate_at_zero(points: &[KeyShare], k: usize) -> Result<[u8; 32], CodecError> {
    let k8 = u8::try_from(k).map_err(|_| shamir_err("threshold above 255"))?;
    let shares = points
        .iter()
        .map(|p| Share::try_from(&p[..]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(shamir_err)?;
    let mut secret = Sharks(k8).recover(&shares).map_err(shamir_err)?;
    if secret.len() != 32 {
        secret.zeroize();
        return Err(shamir_err("recovered secret has the wrong length"));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&secret);
    secret.zeroize();
    Ok(out)
}

/// Recovers the key from exactly `k` shares with distinct coordinates.
pub(crate) fn recover_key(shares: &[KeyShare], k: usize) -> Result<ContentKey, CodecError> {
    if shares.len() != k {
        return Err(shamir_err("wrong number of shares"));
    }
    Ok(ContentKey(interpolate_at_zero(shares, k)?))
}

/// Recomputes the share with x-coordinate `x` from `k` other shares.
///
/// `k` points fix the degree-(k-1) polynomial f, so the lost share f(x) is
/// determined without knowing how the coefficients were drawn. blahaj only
/// interpolates at 0, so we shift: g(z) = f(z + x) is a polynomial of the same
/// degree through the points (x_i + x, y_i) (addition in GF(256) is XOR), and
/// g(0) = f(x).
pub(crate) fn share_at(shares: &[KeyShare], k: usize, x: u8) -> Result<KeyShare, CodecError> {
    if x == 0 {
        return Err(shamir_err("x = 0 is the secret, not a share"));
    }
    if let Some(s) = shares.iter().find(|s| s[0] == x) {
        return Ok(*s);
    }
    let mut shifted: Vec<KeyShare> = shares.to_vec();
    for s in &mut shifted {
        s[0] ^= x;
    }
    let y = interpolate_at_zero(&shifted, k);
    shifted.zeroize();
    let y = y?;
    let mut out = [0u8; KEY_SHARE_LEN];
    out[0] = x;
    out[1..].copy_from_slice(&y);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_k_shares_recompute_every_other_share() {
        let mut rng = StdRng::from_seed([7; 32]);
        for k in 1..=6 {
            let n = 9;
            let key = ContentKey::generate_with(&mut rng);
            let shares = split_key(&key, k, n, &mut rng).unwrap();
            for lost in 0..n {
                let others: Vec<KeyShare> =
                    (0..n).filter(|&i| i != lost).map(|i| shares[i]).collect();
                for start in 0..others.len() {
                    let pick: Vec<KeyShare> =
                        (0..k).map(|j| others[(start + j) % others.len()]).collect();
                    assert_eq!(share_at(&pick, k, lost as u8 + 1).unwrap(), shares[lost]);
                    assert!(recover_key(&pick, k).unwrap() == key);
                }
            }
            if k > 1 {
                // k - 1 shares interpolate to something else.
                let few = &shares[..k - 1];
                assert!(interpolate_at_zero(few, k - 1).unwrap() != *key.as_bytes());
                assert!(recover_key(few, k).is_err());
            }
        }
        assert!(share_at(&[], 1, 0).is_err());
    }

    #[test]
    fn stripe_cipher_round_trip_and_binding() {
        let key = ContentKey::from_bytes([1; 32]);
        let c = StripeCipher::new(&key, &[2; 16], [3; IDENTITY_LEN]);
        let mut buf = b"stripe data".to_vec();
        c.seal(5, &mut buf).unwrap();
        assert_eq!(buf.len(), 11 + AEAD_TAG_LEN);
        let sealed = buf.clone();
        c.open(5, &mut buf).unwrap();
        assert_eq!(buf, b"stripe data");
        // Another stripe index, encoding id, identity or key: refused.
        let mut b = sealed.clone();
        assert!(c.open(6, &mut b).is_err());
        let others = [
            StripeCipher::new(&key, &[9; 16], [3; IDENTITY_LEN]),
            StripeCipher::new(&key, &[2; 16], [4; IDENTITY_LEN]),
            StripeCipher::new(
                &ContentKey::from_bytes([8; 32]),
                &[2; 16],
                [3; IDENTITY_LEN],
            ),
        ];
        for o in &others {
            let mut b = sealed.clone();
            assert!(o.open(5, &mut b).is_err());
        }
        assert!(c.open(5, &mut vec![0u8; 3]).is_err());
    }
}
