//! The person's recovery secret: content keys derive from it, so a new node
//! given the recovery code can read everything the lost node published.
//!
//! It is generated on first start and kept owner-readable in the data
//! directory; `elohim-sidecar recovery-code` shows it once for safekeeping
//! (like an account's recovery codes). Losing both the node and the code
//! loses encrypted content for good: that is the price of custodians who
//! cannot read what they keep.

use shard_codec::ContentKey;
use std::path::Path;
use thiserror::Error;

/// A recovery-code problem.
#[derive(Debug, Error, PartialEq)]
pub enum SecretError {
    /// The code is not 68 hex digits (with optional dashes and spaces).
    #[error("a recovery code is 68 hex digits, grouped by dashes; got {0} digits")]
    Length(usize),
    /// The code has a non-hex character.
    #[error("a recovery code has only 0-9 and a-f (and dashes)")]
    NotHex,
    /// The checksum does not match: a typo.
    #[error("the recovery code's checksum does not match (a typo?)")]
    Checksum,
}

/// The 32-byte secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoverySecret([u8; 32]);

impl std::fmt::Debug for RecoverySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoverySecret(..)")
    }
}

fn checksum(secret: &[u8; 32]) -> [u8; 2] {
    let h = blake3::hash(secret);
    [h.as_bytes()[0], h.as_bytes()[1]]
}

impl RecoverySecret {
    /// The key of one content.
    pub fn content_key(&self, content_id: &str) -> ContentKey {
        let mut material = self.0.to_vec();
        material.extend_from_slice(content_id.as_bytes());
        ContentKey::from_bytes(blake3::derive_key("elohim content key v1", &material))
    }

    /// The seed of one content's encoding under one placement (`label`
    /// names its strategy and shape): encoding the same bytes again for
    /// the same placement makes the same shards (encoding id, generated
    /// keys, key shares), so a publish run again can send a custodian the
    /// shard it lacks. Never shared by two contents or two placements, so
    /// no nonce is used with the same key for different bytes.
    pub fn encoding_seed(&self, content_id: &str, label: &str) -> [u8; 32] {
        let mut material = self.0.to_vec();
        material.extend_from_slice(content_id.as_bytes());
        material.push(0);
        material.extend_from_slice(label.as_bytes());
        blake3::derive_key("elohim encoding seed v1", &material)
    }

    /// The code a person writes down: 64 hex digits of secret and 4 of
    /// checksum, in groups of four.
    pub fn code(&self) -> String {
        let mut hex = crate::encoding::hex(&self.0);
        hex.push_str(&crate::encoding::hex(&checksum(&self.0)));
        hex.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("hex is ascii"))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Reads a code back (dashes, spaces and case ignored), checking it.
    pub fn from_code(code: &str) -> Result<RecoverySecret, SecretError> {
        let digits: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if digits.len() != 68 {
            return Err(SecretError::Length(digits.len()));
        }
        let bytes: Vec<u8> = (0..34)
            .map(|i| u8::from_str_radix(&digits[i * 2..i * 2 + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| SecretError::NotHex)?;
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&bytes[..32]);
        if checksum(&secret) != [bytes[32], bytes[33]] {
            return Err(SecretError::Checksum);
        }
        Ok(RecoverySecret(secret))
    }
}

/// Where the secret lives in a data directory.
pub fn secret_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("recovery-secret")
}

/// Loads the node's secret, creating one on first start.
pub fn load_or_create(data_dir: &Path) -> std::io::Result<RecoverySecret> {
    let path = secret_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return RecoverySecret::from_code(text.trim())
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let secret = RecoverySecret(bytes);
    store(data_dir, &secret)?;
    Ok(secret)
}

/// Replaces the node's secret (a recovered person's new node adopts theirs).
pub fn store(data_dir: &Path, secret: &RecoverySecret) -> std::io::Result<()> {
    crate::datadir::private_dir(data_dir)?;
    crate::datadir::write_private(&secret_path(data_dir), secret.code().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoding_seed_makes_the_same_shards_for_one_content_and_placement_only() {
        let s = RecoverySecret([7u8; 32]);
        let seed = s.encoding_seed("c1", "threshold_split 2-of-3");
        assert_eq!(seed, s.encoding_seed("c1", "threshold_split 2-of-3"));
        assert_ne!(seed, s.encoding_seed("c2", "threshold_split 2-of-3"));
        assert_ne!(seed, s.encoding_seed("c1", "threshold_split 2-of-4"));
        assert_ne!(
            seed,
            RecoverySecret([8u8; 32]).encoding_seed("c1", "threshold_split 2-of-3")
        );
        // The content id and the label are not run together ("c1" + "0x"
        // is not "c10" + "x").
        assert_ne!(s.encoding_seed("c1", "0x"), s.encoding_seed("c10", "x"));
        let encode = |seed: [u8; 32]| {
            shard_codec::Encoder::new(shard_codec::CodecParams::threshold_split(2, 3))
                .unwrap()
                .with_seed(seed)
                .encode(b"the family photos")
                .unwrap()
                .shards
                .into_iter()
                .map(|s| s.to_bytes())
                .collect::<Vec<_>>()
        };
        assert_eq!(encode(seed), encode(seed), "the same shards again");
        assert_ne!(
            encode(seed),
            encode(s.encoding_seed("c2", "threshold_split 2-of-3"))
        );
    }

    #[test]
    fn codes_round_trip_and_catch_typos() {
        let s = RecoverySecret([7u8; 32]);
        let code = s.code();
        assert_eq!(code.len(), 68 + 16, "17 groups of 4 with dashes");
        assert_eq!(RecoverySecret::from_code(&code), Ok(s.clone()));
        assert_eq!(
            RecoverySecret::from_code(&code.to_uppercase().replace('-', " ")),
            Ok(s.clone())
        );
        let mut typo = code.clone().into_bytes();
        typo[5] = if typo[5] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            RecoverySecret::from_code(std::str::from_utf8(&typo).unwrap()),
            Err(SecretError::Checksum)
        );
        assert_eq!(
            RecoverySecret::from_code("abc"),
            Err(SecretError::Length(3))
        );
        assert_eq!(
            RecoverySecret::from_code(&"z".repeat(68)),
            Err(SecretError::NotHex)
        );
    }

    #[test]
    fn keys_differ_per_content_and_per_person() {
        let a = RecoverySecret([1u8; 32]);
        let b = RecoverySecret([2u8; 32]);
        assert_eq!(a.content_key("x"), a.content_key("x"));
        assert_ne!(a.content_key("x"), a.content_key("y"));
        assert_ne!(a.content_key("x"), b.content_key("x"));
    }

    /// A handle opened on a file at the secret's place before it was
    /// written (a leftover temp file, or one caught between its creation
    /// and a chmod) must not read the secret.
    #[cfg(unix)]
    #[test]
    fn the_secret_is_owner_only_from_its_creation() {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let leftover = secret_path(dir.path()).with_extension("tmp");
        std::fs::write(&leftover, b"").unwrap();
        std::fs::set_permissions(&leftover, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut spy = std::fs::File::open(&leftover).unwrap();
        let secret = load_or_create(dir.path()).unwrap();
        let mut seen = String::new();
        spy.read_to_string(&mut seen).unwrap();
        assert!(
            !seen.contains(&secret.code()),
            "a handle opened before the secret was written reads it"
        );
        let mode = std::fs::metadata(secret_path(dir.path()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(secret_path(dir.path()))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
