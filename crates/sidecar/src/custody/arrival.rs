//! A shard's bytes read while they arrive: a retrieve decodes the shards it
//! fetches as they come in, instead of after the last byte of the last one.
//!
//! The fetch writes into the store's resumable copy of the shard (what a
//! cut download goes on from); an [`Arrival`] tells how much of that file
//! is there and whether the fetch ended, and an [`ArrivingReader`] reads
//! the file behind it, waiting at its end for more. Nothing read this way
//! is trusted: the decoder checks every stripe it uses, and a retrieve
//! keeps its output only once every fetch checked its whole shard too.
//!
//! Separate because it is the one place where a blocking reader (the
//! decoder's thread) waits on an async writer (the download).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a reader waits at the end of what arrived for more, or for the
/// fetch to end: longer than a download may go without a byte
/// ([`super::retrieve::FETCH_READ_TIMEOUT`]), so the fetch ends first.
const WAIT_FOR_BYTES: Duration = Duration::from_secs(90);

/// How far one shard's download has come.
#[derive(Default)]
pub(super) struct Arrival {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// A read handle on the file the bytes go to, once it is open.
    file: Option<Arc<File>>,
    /// How many of its bytes are there.
    arrived: u64,
    /// How the download ended: whole, or why not.
    end: Option<Result<(), String>>,
    /// Whether a read failed (the reader saw the download fail, or waited
    /// too long): what it decoded says nothing of the content then.
    read_failed: bool,
}

impl Arrival {
    /// The download writes into `file` (read through this handle), which
    /// holds `arrived` bytes already (an earlier download's).
    pub(super) fn opened(&self, file: File, arrived: u64) {
        let mut s = self.state.lock().unwrap();
        s.file = Some(Arc::new(file));
        s.arrived = arrived;
        self.changed.notify_all();
    }

    /// The file now holds `arrived` bytes.
    pub(super) fn grew(&self, arrived: u64) {
        let mut s = self.state.lock().unwrap();
        s.arrived = arrived;
        self.changed.notify_all();
    }

    /// The bytes read so far are no longer the file's (the holder sent the
    /// shard again from its start): readers fail from now on.
    pub(super) fn restarted(&self) {
        self.ended(Err(
            "the download started again from the shard's first byte".into(),
        ));
    }

    /// The download ended; the first end said counts.
    pub(super) fn ended(&self, how: Result<(), String>) {
        let mut s = self.state.lock().unwrap();
        if s.end.is_none() {
            s.end = Some(how);
        }
        self.changed.notify_all();
    }

    /// Whether the download ended whole and its reader read it without
    /// an error: a decoder that still failed failed on the shard's bytes.
    pub(super) fn whole(&self) -> bool {
        let s = self.state.lock().unwrap();
        matches!(s.end, Some(Ok(()))) && !s.read_failed
    }
}

/// Reads a shard's bytes as they arrive (see the module's documentation).
pub(super) struct ArrivingReader {
    arrival: Arc<Arrival>,
    pos: u64,
}

impl ArrivingReader {
    /// A reader from the shard's first byte.
    pub(super) fn new(arrival: Arc<Arrival>) -> ArrivingReader {
        ArrivingReader { arrival, pos: 0 }
    }
}

impl Read for ArrivingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut s = self.arrival.state.lock().unwrap();
        loop {
            if let Some(Err(why)) = &s.end {
                let e = std::io::Error::other(why.clone());
                s.read_failed = true;
                return Err(e);
            }
            if let Some(file) = &s.file {
                if s.arrived > self.pos {
                    let file = file.clone();
                    let n = (s.arrived - self.pos).min(buf.len() as u64) as usize;
                    drop(s);
                    let got = file.read_at(&mut buf[..n], self.pos)?;
                    self.pos += got as u64;
                    return Ok(got);
                }
                if s.end.is_some() {
                    return Ok(0);
                }
            }
            let (next, timeout) = self
                .arrival
                .changed
                .wait_timeout(s, WAIT_FOR_BYTES)
                .unwrap();
            s = next;
            if timeout.timed_out() {
                s.read_failed = true;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no byte of the shard arrived for {} s",
                        WAIT_FOR_BYTES.as_secs()
                    ),
                ));
            }
        }
    }
}

/// Ends an [`Arrival`] when dropped, if its download did not say how it
/// ended (a download given up halfway): its reader must not wait for it.
pub(super) struct EndOnDrop<'a>(pub(super) Option<&'a Arrival>);

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(a) = self.0 {
            a.ended(Err("the download stopped".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Reads `arrival` to its end on a thread of its own, as a decoder does.
    fn read_on_a_thread(
        arrival: &Arc<Arrival>,
    ) -> std::thread::JoinHandle<std::io::Result<Vec<u8>>> {
        let arrival = arrival.clone();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            ArrivingReader::new(arrival)
                .read_to_end(&mut out)
                .map(|_| out)
        })
    }

    /// A reader gets every byte written while it reads, in order, and the
    /// end once the download ends whole.
    #[test]
    fn a_reader_follows_the_bytes_as_they_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial");
        let mut w = File::create(&path).unwrap();
        w.write_all(b"kept ").unwrap();
        let arrival = Arc::new(Arrival::default());
        arrival.opened(File::open(&path).unwrap(), 5);
        let reader = read_on_a_thread(&arrival);
        let mut arrived = 5;
        for chunk in [&b"one "[..], b"two ", b"three"] {
            std::thread::sleep(Duration::from_millis(20));
            w.write_all(chunk).unwrap();
            arrived += chunk.len() as u64;
            arrival.grew(arrived);
        }
        arrival.ended(Ok(()));
        assert_eq!(reader.join().unwrap().unwrap(), b"kept one two three");
        assert!(arrival.whole());
    }

    /// A download that fails, starts again, or is dropped unfinished makes
    /// its reader fail instead of wait.
    #[test]
    fn a_reader_fails_when_its_download_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial");
        std::fs::write(&path, b"abc").unwrap();
        for end in ["failed", "restarted", "dropped"] {
            let arrival = Arc::new(Arrival::default());
            arrival.opened(File::open(&path).unwrap(), 3);
            let reader = read_on_a_thread(&arrival);
            std::thread::sleep(Duration::from_millis(20));
            match end {
                "failed" => arrival.ended(Err("cut".into())),
                "restarted" => arrival.restarted(),
                _ => drop(EndOnDrop(Some(&arrival))),
            }
            assert!(reader.join().unwrap().is_err(), "{end}");
            assert!(!arrival.whole(), "{end}");
        }
    }
}
