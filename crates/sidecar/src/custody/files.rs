//! Where shard and content bytes go on their way: the hashing writer they
//! are written through (into a scratch file, an upload's body, or only the
//! hash), the temp files that clean up after themselves, and where those
//! live (the node's `work` directory, emptied at start).
//!
//! Separate because publishing, retrieving and rebuilding all pass bytes on
//! the same way; none of it knows about custodians or the DHT.

use super::writeback::{Writeback, WRITEBACK_EVERY};
use super::{Custody, Progress, ProgressFn};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A `Write` that hashes and counts, and sends the bytes on: to a file, to
/// an upload under way, or nowhere (it then only learns what the bytes hash
/// to: a shard made again that need not be sent). One that need not learn
/// the hash ([`HashingWriter::unhashed`]) only counts.
pub(super) struct HashingWriter {
    out: Out,
    hasher: Option<blake3::Hasher>,
    pub(super) len: u64,
}

/// Where a [`HashingWriter`]'s bytes go.
enum Out {
    Nowhere,
    /// A file, with background fsyncs when it is to be made durable.
    File(std::fs::File, Option<Writeback>),
    Upload(UploadFeed),
}

/// The sending end of an upload's body, fed from a blocking thread in
/// chunks of [`UPLOAD_CHUNK`].
struct UploadFeed {
    tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
    buf: Vec<u8>,
    runtime: tokio::runtime::Handle,
}

/// Bytes an upload is sent in at a time, from a file or from the encoder
/// (the default 4 KiB would make 32 thousand chunks of a 128 MiB shard,
/// each hashed and written separately at the custodian).
pub(super) const UPLOAD_CHUNK: usize = 256 * 1024;
/// How long an upload fed while encoding may take no chunk before it is
/// given up (the encoder goes on with the other shards; the caller sends
/// this one again another way).
pub(super) const UPLOAD_STALL: std::time::Duration = std::time::Duration::from_secs(30);

impl HashingWriter {
    /// Hashes what is written and keeps it in the file at `path` (created).
    pub(super) fn create(path: &Path) -> std::io::Result<HashingWriter> {
        Ok(HashingWriter {
            out: Out::File(std::fs::File::create(path)?, None),
            hasher: Some(blake3::Hasher::new()),
            len: 0,
        })
    }

    /// As [`HashingWriter::create`], for a file [`HashingWriter::sync_all`]
    /// will make durable: written to disk while it grows (see `writeback`).
    pub(super) fn create_durable(path: &Path) -> std::io::Result<HashingWriter> {
        Ok(HashingWriter {
            out: Out::File(
                std::fs::File::create(path)?,
                Some(Writeback::every(WRITEBACK_EVERY)),
            ),
            hasher: Some(blake3::Hasher::new()),
            len: 0,
        })
    }

    /// Hashes what is written and keeps none of it.
    pub(super) fn hash_only() -> HashingWriter {
        HashingWriter {
            out: Out::Nowhere,
            hasher: Some(blake3::Hasher::new()),
            len: 0,
        }
    }

    /// Hashes what is written and sends it, in chunks, to the body of an
    /// upload reading `tx`'s other end: at most the channel's capacity of
    /// chunks waits in memory. Once the upload stops taking them (it ended,
    /// or took none for [`UPLOAD_STALL`]) the rest is only hashed. Written
    /// to from a blocking thread of `runtime`, never from a task.
    pub(super) fn upload(
        tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
        runtime: tokio::runtime::Handle,
    ) -> HashingWriter {
        HashingWriter {
            out: Out::Upload(UploadFeed {
                tx,
                buf: Vec::with_capacity(UPLOAD_CHUNK),
                runtime,
            }),
            hasher: Some(blake3::Hasher::new()),
            len: 0,
        }
    }

    /// The same writer, not hashing: for bytes whose hash is known already
    /// (a shard made a second time, checked through its codec manifest),
    /// where hashing them again would only spend the CPU the transfer needs.
    pub(super) fn unhashed(mut self) -> HashingWriter {
        self.hasher = None;
        self
    }

    /// The blake3 (hex) of everything written, unless made
    /// [`HashingWriter::unhashed`].
    pub(super) fn hash_hex(&self) -> Option<String> {
        self.hasher
            .as_ref()
            .map(|h| h.finalize().to_hex().to_string())
    }

    /// Makes what was kept durable (nothing to do when nothing is kept).
    pub(super) fn sync_all(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Out::File(f, writeback) => {
                if let Some(wb) = writeback.take() {
                    wb.finish()?;
                }
                f.sync_all()
            }
            _ => Ok(()),
        }
    }

    /// Sends what is left and ends the upload's body, if it feeds one.
    pub(super) fn finish(&mut self) {
        if let Out::Upload(feed) = &mut self.out {
            if !feed.buf.is_empty() && !feed.send() {
                self.out = Out::Nowhere;
                return;
            }
        }
        if matches!(self.out, Out::Upload(_)) {
            // Dropping the sender ends the body.
            self.out = Out::Nowhere;
        }
    }
}

impl UploadFeed {
    /// Sends the buffered chunk; false once the upload takes no more.
    fn send(&mut self) -> bool {
        let chunk = bytes::Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(UPLOAD_CHUNK),
        ));
        let sent = self
            .runtime
            .block_on(tokio::time::timeout(UPLOAD_STALL, self.tx.send(chunk)));
        matches!(sent, Ok(Ok(())))
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.out {
            Out::Nowhere => buf.len(),
            Out::File(f, writeback) => {
                let n = f.write(buf)?;
                if let Some(wb) = writeback {
                    wb.wrote(f, n as u64);
                }
                n
            }
            Out::Upload(feed) => {
                feed.buf.extend_from_slice(buf);
                if feed.buf.len() >= UPLOAD_CHUNK && !feed.send() {
                    self.out = Out::Nowhere;
                }
                buf.len()
            }
        };
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Out::File(f, _) => f.flush(),
            _ => Ok(()),
        }
    }
}

/// A reader that counts what was read, for progress shown from elsewhere.
pub(super) struct CountingReader<R> {
    pub(super) inner: R,
    pub(super) read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
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
