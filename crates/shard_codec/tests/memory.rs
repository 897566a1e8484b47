//! Streaming keeps memory bounded by a few stripes, not by the content size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use shard_codec::{CodecParams, ContentKey, Decoder, Encoder};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn add(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            add(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, n) };
        if !q.is_null() {
            if n > l.size() {
                add(n - l.size());
            } else {
                CURRENT.fetch_sub(l.size() - n, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

/// Pseudo-random content produced on the fly from a small pool (memcpy only,
/// so it is fast in debug builds); the pool's odd length keeps stripes distinct.
struct Gen {
    pos: u64,
    len: u64,
    pool: Vec<u8>,
}

fn gen(len: u64) -> Gen {
    let mut pool = vec![0u8; (1 << 20) + 4099];
    blake3::Hasher::new()
        .update(b"memory")
        .finalize_xof()
        .fill(&mut pool);
    Gen { pos: 0, len, pool }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = (self.pos % self.pool.len() as u64) as usize;
        let n = (buf.len() as u64).min(self.len - self.pos) as usize;
        let n = n.min(self.pool.len() - at);
        buf[..n].copy_from_slice(&self.pool[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Hashes what it receives (no buffering).
struct HashSink(blake3::Hasher, u64);

impl Write for HashSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        self.1 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Encodes `len` bytes streamed from a generator into hashing sinks, then
/// decodes from the last k shards (originals missing), returning the peak heap
/// above the baseline for each. A small warm-up run first pays for
/// reed-solomon-simd's one-time global lookup tables.
fn peaks(p: CodecParams, len: u64, threads: usize) -> (usize, usize) {
    let key = ContentKey::from_bytes([1; 32]);
    let warm = Encoder::new(p)
        .unwrap()
        .with_key(key.clone())
        .encode(&[1; 5000])
        .unwrap();
    Decoder::new()
        .with_key(key.clone())
        .decode(&warm.shards[p.n - p.k..])
        .unwrap();

    let mut enc = Encoder::new(p)
        .unwrap()
        .with_key(key.clone())
        .with_threads(threads);
    let mut sinks: Vec<HashSink> = (0..p.n)
        .map(|_| HashSink(blake3::Hasher::new(), 0))
        .collect();
    let mut input = gen(len);
    let enc_peak = peak_during(|| {
        let _ = enc.encode_stream(&mut input, &mut sinks).unwrap();
    });
    assert!(sinks.iter().all(|s| s.1 > len / p.k as u64));

    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); p.n];
    let _ = enc.encode_stream(gen(len), &mut bufs).unwrap();
    let kept: Vec<&[u8]> = bufs[p.n - p.k..].iter().map(|b| b.as_slice()).collect();
    let mut out = HashSink(blake3::Hasher::new(), 0);
    let dec = Decoder::new().with_key(key).with_threads(threads);
    let dec_peak = peak_during(|| {
        dec.decode_stream(kept.iter().copied(), &mut out).unwrap();
    });
    let mut expected = HashSink(blake3::Hasher::new(), 0);
    io::copy(&mut gen(len), &mut expected).unwrap();
    assert_eq!(out.1, len);
    assert_eq!(out.0.finalize(), expected.0.finalize());
    eprintln!(
        "{p}, {} MiB, {threads} threads: encode peak {:.2} MiB, decode peak {:.2} MiB",
        len >> 20,
        enc_peak as f64 / (1 << 20) as f64,
        dec_peak as f64 / (1 << 20) as f64
    );
    (enc_peak, dec_peak)
}

/// Content many times larger than the limit streams through in a few stripes'
/// worth of memory (the limit is far below the content size, so buffering the
/// content anywhere fails this test).
#[test]
fn streamed_memory_is_bounded() {
    // 48 MiB in 1 MiB stripes: at most 12 stripes' worth.
    let p = CodecParams::erasure_coded(10, 14).with_encryption(false);
    for threads in [1, 2] {
        let (e, d) = peaks(p, 48 << 20, threads);
        assert!(e < 12 << 20 && d < 12 << 20, "{e} {d}");
    }
    // Encrypted (slow in debug builds, hence smaller): 6 MiB in 64 KiB
    // stripes, below 1.5 MiB (a quarter of the content).
    let p = CodecParams::threshold_split(10, 14).with_stripe_size(64 << 10);
    for threads in [1, 2] {
        let (e, d) = peaks(p, 6 << 20, threads);
        assert!(e < 3 << 19 && d < 3 << 19, "{e} {d}");
    }
}
