//! Typed errors: callers (the custody daemon) react differently to "fetch more
//! shards", "this shard is corrupt, rebuild it" and "your parameters are wrong".

use std::io;

/// A shard the decoder looked at and did not use, with the reason, so a repair
/// daemon knows which custodian's copy to rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Position of the shard in the list or reader sequence given to the decoder.
    pub input: usize,
    /// Shard index from its header, when the header was intact.
    pub index: Option<usize>,
    /// What was wrong (corrupt stripe, truncated, belongs to other content...).
    pub reason: String,
}

/// Everything that can go wrong while encoding, decoding, rebuilding or
/// verifying shards.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Fewer than `needed` good shards of one content were available.
    #[error(
        "too few good shards: {needed} needed, {good} good{}",
        describe_rejections(.rejected)
    )]
    TooFewShards {
        /// Shards needed to restore the content (k).
        needed: usize,
        /// Distinct good shards that were available.
        good: usize,
        /// Shards that were skipped and why.
        rejected: Vec<Rejected>,
    },
    /// A single shard failed its integrity checks (from [`crate::verify_shard`]
    /// and [`crate::Shard::from_bytes`]; the decoder skips such shards instead).
    #[error("corrupt shard{}: {reason}", describe_index(.index))]
    CorruptShard {
        /// Shard index, when the header was intact enough to tell.
        index: Option<usize>,
        /// What check failed.
        reason: String,
    },
    /// Shards or the decoded content do not belong together: shards of several
    /// contents that could each be decoded, a decoded hash that differs from
    /// the one recorded, or shards that contradict an expected manifest.
    #[error("mismatched content: {0}")]
    MismatchedContent(String),
    /// Unusable parameters: k = 0, k > n, n above the codec's maximum, a stripe
    /// size out of range, or the wrong number of writers.
    #[error("bad parameters: {0}")]
    BadParameters(String),
    /// A shard written by a newer format version or with an unknown codec id.
    #[error("unsupported shard format: {0}")]
    Unsupported(String),
    /// The content is encrypted at rest with an owner key and none was given.
    #[error("content is encrypted with an owner key; pass the ContentKey to the decoder")]
    MissingKey,
    /// Encryption or decryption failed: a wrong owner key, or a shard that
    /// passed its own hashes but was forged.
    #[error("cryptographic failure: {0}")]
    Crypto(String),
    /// Writing shard `index` failed (its disk is full, its upload broke...).
    #[error("writing shard {index}: {source}")]
    ShardWrite {
        /// Index of the shard whose writer failed.
        index: usize,
        /// The writer's error.
        #[source]
        source: io::Error,
    },
    /// Reading the content or writing the decoded output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A bug in this crate (a worker thread panicked...). Never expected.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe_index(index: &Option<usize>) -> String {
    index.map(|i| format!(" {i}")).unwrap_or_default()
}

fn describe_rejections(rejected: &[Rejected]) -> String {
    if rejected.is_empty() {
        return String::new();
    }
    let list: Vec<String> = rejected
        .iter()
        .take(8)
        .map(|r| match r.index {
            Some(i) => format!("input {} (shard {i}): {}", r.input, r.reason),
            None => format!("input {}: {}", r.input, r.reason),
        })
        .collect();
    let more = if rejected.len() > 8 {
        format!("; and {} more", rejected.len() - 8)
    } else {
        String::new()
    };
    format!(" (rejected {}{more})", list.join("; "))
}
