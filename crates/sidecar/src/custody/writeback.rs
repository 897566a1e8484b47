//! Writing a file's bytes to disk while more of them arrive.
//!
//! A shard is made durable by one fsync once it is whole. On a machine with
//! memory to spare the kernel writes nothing back before that (dirty pages
//! wait 30 s, or for a tenth of the RAM), so the final fsync wrote the whole
//! shard while the transfer waited on it: a 512 MiB shard, about half a
//! second of a disk doing nothing until then. [`Writeback`] starts an fsync
//! in the background every [`WRITEBACK_EVERY`] bytes (one at a time, on a
//! thread of its own), so the disk writes while the bytes arrive and the
//! final fsync has only the last few MiB left. Its errors are kept and
//! reported by [`Writeback::finish`]: a failed fsync is reported once, and
//! a file whose earlier fsync failed must not pass for durable.

use std::fs::File;
use std::thread::JoinHandle;

/// Bytes written between two background fsyncs.
pub(super) const WRITEBACK_EVERY: u64 = 16 << 20;

/// The background fsyncs of one file being written (see the module doc).
pub(super) struct Writeback {
    /// Bytes between two fsyncs.
    every: u64,
    /// Bytes written since the last fsync began.
    pending: u64,
    /// The fsync under way, if any.
    running: Option<JoinHandle<std::io::Result<()>>>,
    /// The first error an fsync met, kept for [`Writeback::finish`].
    failed: Option<std::io::Error>,
}

impl Writeback {
    /// Background fsyncs every `every` bytes.
    pub(super) fn every(every: u64) -> Writeback {
        Writeback {
            every: every.max(1),
            pending: 0,
            running: None,
            failed: None,
        }
    }

    /// Counts `n` more bytes written to `file`, starting an fsync of it when
    /// enough have gathered and none is under way.
    pub(super) fn wrote(&mut self, file: &File, n: u64) {
        self.pending += n;
        if self.pending < self.every || self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.reap();
        // Without a second handle (out of descriptors) the bytes simply wait
        // for the final fsync, as they did before.
        if let Ok(f) = file.try_clone() {
            self.running = Some(std::thread::spawn(move || f.sync_data()));
            self.pending = 0;
        }
    }

    /// Waits for the fsync under way, keeping its error.
    fn reap(&mut self) {
        let Some(h) = self.running.take() else {
            return;
        };
        let result = h
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("a background fsync panicked")));
        if let Err(e) = result {
            self.failed.get_or_insert(e);
        }
    }

    /// Waits for the fsync under way; the error of any that failed. The
    /// caller's own fsync comes after it.
    pub(super) fn finish(mut self) -> std::io::Result<()> {
        self.reap();
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bytes_are_written_back_while_they_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("shard")).unwrap();
        let mut wb = Writeback::every(1000);
        wb.wrote(&f, 999);
        assert!(wb.running.is_none(), "not yet a batch's worth");
        f.write_all(&[7u8; 1001]).unwrap();
        wb.wrote(&f, 2);
        assert!(wb.running.is_some(), "a batch's worth starts an fsync");
        assert_eq!(wb.pending, 0);
        wb.finish().unwrap();
    }

    #[test]
    fn a_failed_background_fsync_is_reported_at_the_end() {
        let mut wb = Writeback::every(1);
        wb.running = Some(std::thread::spawn(|| {
            Err(std::io::Error::other("disk gone"))
        }));
        // A later batch reaps it; the error waits for finish.
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("shard")).unwrap();
        while !wb.running.as_ref().unwrap().is_finished() {
            std::thread::yield_now();
        }
        wb.wrote(&f, 10);
        assert!(wb.failed.is_some(), "the failed fsync was reaped");
        let err = wb.finish().unwrap_err();
        assert_eq!(err.to_string(), "disk gone");
    }
}
