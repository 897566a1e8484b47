//! Scratch files: the hashing writer shards and decoded content are written
//! through, the temp files that clean up after themselves, and where they
//! live (the node's `work` directory, emptied at start).
//!
//! Separate because publishing, retrieving and rebuilding all stage bytes on
//! disk the same way; none of it knows about custodians or the DHT.

use super::{Custody, Progress, ProgressFn};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A `Write` that hashes and counts, and keeps the bytes in a file when it
/// has one (without, it only learns what the bytes hash to: a shard made
/// again that need not be sent).
pub(super) struct HashingFile {
    pub(super) file: Option<std::fs::File>,
    pub(super) hasher: blake3::Hasher,
    pub(super) len: u64,
}

impl HashingFile {
    /// Hashes what is written and keeps it in the file at `path` (created).
    pub(super) fn create(path: &Path) -> std::io::Result<HashingFile> {
        Ok(HashingFile {
            file: Some(std::fs::File::create(path)?),
            hasher: blake3::Hasher::new(),
            len: 0,
        })
    }

    /// Makes what was kept durable (nothing to do when nothing is kept).
    pub(super) fn sync_all(&self) -> std::io::Result<()> {
        match &self.file {
            Some(f) => f.sync_all(),
            None => Ok(()),
        }
    }

    /// Hashes what is written and keeps none of it.
    pub(super) fn hash_only() -> HashingFile {
        HashingFile {
            file: None,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.file {
            Some(f) => f.write(buf)?,
            None => buf.len(),
        };
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// A temp file removed on drop.
pub(super) struct TempFile(pub(super) PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Hashes a file with blake3, reporting progress.
pub(super) fn hash_file(path: &Path, progress: ProgressFn<'_>) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let total = f.metadata()?.len();
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        done += n as u64;
        progress(Progress {
            phase: "hashing".into(),
            done,
            total,
        });
    }
    Ok((h.finalize().to_hex().to_string(), done))
}

impl Custody {
    /// A fresh path in the work directory for a `what` file.
    pub(super) fn temp_path(&self, what: &str) -> std::io::Result<PathBuf> {
        let suffix = crate::encoding::random_hex(8)?;
        Ok(self.work_dir.join(format!("{what}.{suffix}")))
    }
}

/// Threads a publish or a retrieve gives the codec: every core, up to
/// four (a person waits on these; background repair keeps to one).
/// Output is the same bytes whatever the count.
pub(super) fn codec_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
}
