//! Throughput and memory benchmark for shard_codec (`cargo bench -p shard_codec`).
//!
//! Prints Markdown tables:
//! 1. peak heap for a 1 GiB streamed encode and decode (shards on disk);
//! 2. raw parts alone (reed-solomon-simd, blake3, XChaCha20-Poly1305);
//! 3. codec throughput for 1 MiB and 256 MiB at 4+2, 10+4 and 16+16 for every
//!    strategy, encode and decode (decode with the maximum number of shards
//!    missing, originals first so Reed-Solomon has to reconstruct), on one
//!    thread and on two, with the ratio codec / sum of its parts (one thread).
//!
//! Content comes from a generator reader and shards go to counting sinks, so
//! the 256 MiB and 1 GiB runs never hold the content in memory. Times are the
//! best of several runs (the machine is shared; the best run is the one least
//! disturbed by other work).
//!
//! Environment: `SHARD_CODEC_BENCH_QUICK=1` runs only the 1 MiB rows and skips
//! the 1 GiB memory run; `SHARD_CODEC_BENCH_BIG_MIB` changes 256;
//! `SHARD_CODEC_BENCH_MEM_MIB` changes 1024 (0 skips it);
//! `SHARD_CODEC_BENCH_SIZES_MIB=1,64` picks the content sizes;
//! `SHARD_CODEC_BENCH_ONLY=erasure_coded+enc` runs one strategy row group;
//! `SHARD_CODEC_BENCH_CONFIG=10+4` runs one configuration.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::hint::black_box;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use shard_codec::{CodecParams, ContentKey, Decoder, Encoder, Strategy};

// ---------------------------------------------------------------- allocator

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the heap high-water mark above the
/// heap in use when it started.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------- I/O helpers

const MIB: usize = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
const STRIPE: usize = MIB;

/// Pseudo-random content of a given length, produced on the fly from a pool
/// whose odd length keeps stripes from repeating at stripe boundaries.
struct Gen {
    pool: &'static [u8],
    pos: usize,
    remaining: u64,
}

fn pool() -> &'static [u8] {
    static POOL: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let mut v = vec![0u8; 4 * MIB + 4099];
        blake3::Hasher::new()
            .update(b"shard_codec bench")
            .finalize_xof()
            .fill(&mut v);
        v
    })
}

impl Gen {
    fn new(len: u64) -> Self {
        Gen {
            pool: pool(),
            pos: 0,
            remaining: len,
        }
    }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let mut done = 0;
        while done < want {
            let n = (want - done).min(self.pool.len() - self.pos);
            buf[done..done + n].copy_from_slice(&self.pool[self.pos..self.pos + n]);
            done += n;
            self.pos = (self.pos + n) % self.pool.len();
        }
        self.remaining -= want as u64;
        Ok(want)
    }
}

/// Discards what is written, counting bytes.
#[derive(Default)]
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A shard writer that either keeps the shard (for decoding later) or drops it.
enum Out {
    Drop(Sink),
    Keep(Vec<u8>),
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Out::Drop(s) => s.write(buf),
            Out::Keep(v) => v.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn gibps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / GIB / d.as_secs_f64()
}

/// Best time of `runs` runs.
fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

// ---------------------------------------------------------------- configs

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    strategy: Strategy,
    encrypt: bool,
}

const VARIANTS: [Variant; 5] = [
    Variant {
        name: "full_replica",
        strategy: Strategy::FullReplica,
        encrypt: false,
    },
    Variant {
        name: "full_replica+enc",
        strategy: Strategy::FullReplica,
        encrypt: true,
    },
    Variant {
        name: "erasure_coded",
        strategy: Strategy::ErasureCoded,
        encrypt: false,
    },
    Variant {
        name: "erasure_coded+enc",
        strategy: Strategy::ErasureCoded,
        encrypt: true,
    },
    Variant {
        name: "threshold_split",
        strategy: Strategy::ThresholdSplit,
        encrypt: true,
    },
];

const CONFIGS: [(usize, usize); 3] = [(4, 2), (10, 4), (16, 16)];

/// Parameters for a `data + parity` configuration. For full_replica the
/// configuration means `data + parity` copies (k = 1).
fn params(v: Variant, data: usize, parity: usize) -> CodecParams {
    let p = match v.strategy {
        Strategy::FullReplica => CodecParams::full_replica(data + parity),
        Strategy::ErasureCoded => CodecParams::erasure_coded(data, data + parity),
        Strategy::ThresholdSplit => CodecParams::threshold_split(data, data + parity),
    };
    p.with_encryption(v.encrypt).with_stripe_size(STRIPE)
}

/// Shards kept for decoding with the most shards missing: the first
/// `n - k` indices are dropped, so Reed-Solomon must reconstruct originals.
fn kept(p: &CodecParams) -> Vec<usize> {
    (p.n - p.k..p.n).collect()
}

fn key() -> ContentKey {
    ContentKey::from_bytes([42; 32])
}

fn encoder(p: CodecParams, threads: usize) -> Encoder {
    Encoder::new(p)
        .unwrap()
        .with_key(key())
        .with_seed([1; 32])
        .with_threads(threads)
}

fn run_encode(p: CodecParams, size: u64, threads: usize) {
    let mut sinks: Vec<Sink> = (0..p.n).map(|_| Sink::default()).collect();
    let r = encoder(p, threads)
        .encode_stream(Gen::new(size), &mut sinks)
        .unwrap();
    assert_eq!(r.manifest.content_len, size);
    black_box(sinks);
}

fn prepare_decode(p: CodecParams, size: u64) -> Vec<Vec<u8>> {
    let keep = kept(&p);
    let cap = p.shard_len(size) as usize;
    let mut outs: Vec<Out> = (0..p.n)
        .map(|i| {
            if keep.contains(&i) {
                Out::Keep(Vec::with_capacity(cap))
            } else {
                Out::Drop(Sink::default())
            }
        })
        .collect();
    let _ = encoder(p, 2)
        .encode_stream(Gen::new(size), &mut outs)
        .unwrap();
    outs.into_iter()
        .filter_map(|o| match o {
            Out::Keep(v) => Some(v),
            Out::Drop(_) => None,
        })
        .collect()
}

fn run_decode(shards: &[Vec<u8>], size: u64, threads: usize) {
    let mut sink = Sink::default();
    let report = Decoder::new()
        .with_key(key())
        .with_threads(threads)
        .decode_stream(shards.iter().map(|s| s.as_slice()), &mut sink)
        .unwrap();
    assert_eq!(report.content_len, size);
    assert_eq!(sink.0, size);
}

// ---------------------------------------------------------------- raw parts

/// Seconds per GiB of content for each raw part, measured over `size` bytes
/// of content in 1 MiB stripes on one thread.
#[derive(Clone, Copy, Default)]
struct Parts {
    content_hash: f64,
    piece_hash_enc: f64,
    piece_hash_dec: f64,
    rs_enc: f64,
    rs_dec: f64,
    seal: f64,
    open: f64,
}

fn stripe_buf() -> Vec<u8> {
    pool()[..STRIPE].to_vec()
}

fn per_gib(d: Duration, content: u64) -> f64 {
    d.as_secs_f64() * GIB / content as f64
}

fn measure_parts(p: &CodecParams, size: u64, runs: usize) -> Parts {
    let stripes = size.div_ceil(STRIPE as u64) as usize;
    let data = stripe_buf();
    let enc_len = STRIPE + if p.is_encrypted() { 16 } else { 0 };
    let (k, n) = (p.k, p.n);
    let piece = if p.strategy == Strategy::FullReplica {
        enc_len
    } else {
        enc_len.div_ceil(k).div_ceil(2) * 2
    };
    let hashed_enc = if p.strategy == Strategy::FullReplica {
        1
    } else {
        n
    };
    let hashed_dec = k;
    let mut out = Parts {
        content_hash: per_gib(
            best(runs, || {
                for _ in 0..stripes {
                    let mut h = blake3::Hasher::new();
                    h.update(&data);
                    black_box(h.finalize());
                }
            }),
            size,
        ),
        ..Parts::default()
    };
    let pieces: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut v = vec![0u8; piece];
            let src = &pool()[(i * 7919) % MIB..];
            v.copy_from_slice(&src[..piece]);
            v
        })
        .collect();
    let piece_hash = |count: usize| {
        best(runs, || {
            for _ in 0..stripes {
                for pc in pieces.iter().take(count) {
                    let mut h = blake3::Hasher::new_keyed(&[9; 32]);
                    h.update(&[0u8; 20]);
                    h.update(pc);
                    black_box(h.finalize());
                }
            }
        })
    };
    out.piece_hash_enc = per_gib(piece_hash(hashed_enc), size);
    out.piece_hash_dec = per_gib(piece_hash(hashed_dec), size);
    if p.strategy != Strategy::FullReplica && n > k {
        let mut enc = ReedSolomonEncoder::new(k, n - k, piece).unwrap();
        out.rs_enc = per_gib(
            best(runs, || {
                for _ in 0..stripes {
                    enc.reset(k, n - k, piece).unwrap();
                    for pc in &pieces[..k] {
                        enc.add_original_shard(pc).unwrap();
                    }
                    let r = enc.encode().unwrap();
                    for rec in r.recovery_iter() {
                        black_box(rec[0]);
                    }
                }
            }),
            size,
        );
        let keep = kept(p);
        let mut dec = ReedSolomonDecoder::new(k, n - k, piece).unwrap();
        out.rs_dec = per_gib(
            best(runs, || {
                for _ in 0..stripes {
                    dec.reset(k, n - k, piece).unwrap();
                    for &i in &keep {
                        if i < k {
                            dec.add_original_shard(i, &pieces[i]).unwrap();
                        } else {
                            dec.add_recovery_shard(i - k, &pieces[i]).unwrap();
                        }
                    }
                    let r = dec.decode().unwrap();
                    for (_, rest) in r.restored_original_iter() {
                        black_box(rest[0]);
                    }
                }
            }),
            size,
        );
    }
    if p.is_encrypted() {
        let aead = XChaCha20Poly1305::new(&Key::from([3u8; 32]));
        let mut buf = data.clone();
        let nonce = XNonce::from([5u8; 24]);
        out.seal = per_gib(
            best(runs, || {
                for _ in 0..stripes {
                    let tag = aead
                        .encrypt_inout_detached(&nonce, &[0u8; 40], buf.as_mut_slice().into())
                        .unwrap();
                    black_box(tag);
                }
            }),
            size,
        );
        let mut ct = data.clone();
        let tag = aead
            .encrypt_inout_detached(&nonce, &[0u8; 40], ct.as_mut_slice().into())
            .unwrap();
        out.open = per_gib(
            best(runs, || {
                for _ in 0..stripes {
                    // Decrypt a fresh copy each time, as the codec decrypts fresh data.
                    buf.copy_from_slice(&ct);
                    aead.decrypt_inout_detached(
                        &nonce,
                        &[0u8; 40],
                        buf.as_mut_slice().into(),
                        &Tag::from(tag),
                    )
                    .unwrap();
                }
            }),
            size,
        );
        // The copy is not part of decryption: take it back out.
        let copy = per_gib(
            best(runs, || {
                for _ in 0..stripes {
                    buf.copy_from_slice(&ct);
                    black_box(&buf);
                }
            }),
            size,
        );
        out.open = (out.open - copy).max(1e-9);
    }
    out
}

// ---------------------------------------------------------------- main

fn main() {
    let quick = std::env::var_os("SHARD_CODEC_BENCH_QUICK").is_some();
    let big_mib: u64 = std::env::var("SHARD_CODEC_BENCH_BIG_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let mem_mib: u64 = std::env::var("SHARD_CODEC_BENCH_MEM_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    println!(
        "# shard_codec benchmark ({} logical CPUs available, stripes of {} KiB)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        STRIPE / 1024
    );

    if !quick && mem_mib > 0 {
        memory_section(mem_mib);
    }

    raw_section(big_mib.min(64));

    let sizes: Vec<u64> = match std::env::var("SHARD_CODEC_BENCH_SIZES_MIB") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse::<u64>().ok())
            .map(|m| m * MIB as u64)
            .collect(),
        Err(_) if quick => vec![MIB as u64],
        Err(_) => vec![MIB as u64, big_mib * MIB as u64],
    };
    for &size in &sizes {
        codec_section(size);
    }
}

fn memory_section(mem_mib: u64) {
    let size = mem_mib * MIB as u64;
    println!("## Peak memory, {mem_mib} MiB streamed through files\n");
    println!(
        "| params | threads | encode GiB/s | encode peak heap | decode GiB/s | decode peak heap |"
    );
    println!("|---|---|---|---|---|---|");
    // reed-solomon-simd builds global lookup tables on first use; they are
    // allocated once per process and never freed, so measure them apart.
    let ((), tables) = peak_heap(|| {
        for p in [
            CodecParams::erasure_coded(10, 14),
            CodecParams::threshold_split(16, 32),
        ] {
            let out = encoder(p, 1).encode(&pool()[..100_000]).unwrap();
            let back = Decoder::new()
                .with_key(key())
                .decode(&out.shards[p.n - p.k..])
                .unwrap();
            assert_eq!(back.len(), 100_000);
        }
    });
    println!(
        "One-time global tables and first-call setup (before the runs below): {:.1} MiB\n",
        tables as f64 / MIB as f64
    );
    let dir = std::env::temp_dir().join(format!("shard_codec_bench_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for p in [
        CodecParams::erasure_coded(10, 14),
        CodecParams::threshold_split(16, 32),
    ] {
        for threads in [1, 2] {
            let paths: Vec<PathBuf> = (0..p.n).map(|i| dir.join(format!("shard{i}"))).collect();
            let t = Instant::now();
            let ((), enc_peak) = peak_heap(|| {
                let mut files: Vec<File> = paths.iter().map(|p| File::create(p).unwrap()).collect();
                let r = encoder(p, threads)
                    .encode_stream(Gen::new(size), &mut files)
                    .unwrap();
                assert_eq!(r.manifest.content_len, size);
            });
            let enc_t = t.elapsed();
            let t = Instant::now();
            let ((), dec_peak) = peak_heap(|| {
                let files: Vec<File> = kept(&p)
                    .iter()
                    .map(|&i| File::open(&paths[i]).unwrap())
                    .collect();
                let mut sink = Sink::default();
                let r = Decoder::new()
                    .with_key(key())
                    .with_threads(threads)
                    .decode_stream(files, &mut sink)
                    .unwrap();
                assert_eq!(r.content_len, size);
            });
            let dec_t = t.elapsed();
            println!(
                "| {p} | {threads} | {:.2} | {:.1} MiB | {:.2} | {:.1} MiB |",
                gibps(size, enc_t),
                enc_peak as f64 / MIB as f64,
                gibps(size, dec_t),
                dec_peak as f64 / MIB as f64
            );
            for path in &paths {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    let _ = std::fs::remove_dir(&dir);
    if let Some(hwm) = vm_hwm_kib() {
        println!(
            "\nProcess peak RSS after these runs (binary, 4 MiB content pool, all of the above): {:.1} MiB\n",
            hwm as f64 / 1024.0
        );
    }
}

fn raw_section(mib: u64) {
    let size = mib * MIB as u64;
    println!("## Raw parts alone, one thread ({mib} MiB in 1 MiB stripes)\n");
    println!("| part | GiB/s of content |");
    println!("|---|---|");
    let p = CodecParams::erasure_coded(10, 14).with_encryption(true);
    let parts = measure_parts(&p, size, 3);
    let row = |name: &str, s_per_gib: f64| println!("| {name} | {:.2} |", 1.0 / s_per_gib);
    row("blake3 (content hash)", parts.content_hash);
    row("reed-solomon-simd 10+4 encode", parts.rs_enc);
    row(
        "reed-solomon-simd 10+4 decode (4 originals missing)",
        parts.rs_dec,
    );
    row("XChaCha20-Poly1305 seal", parts.seal);
    row("XChaCha20-Poly1305 open", parts.open);
    println!();
}

fn codec_section(size: u64) {
    let label = if size >= MIB as u64 * 1024 {
        format!("{} GiB", size / (1 << 30))
    } else {
        format!("{} MiB", size / MIB as u64)
    };
    let runs = if size <= 4 * MIB as u64 { 30 } else { 3 };
    println!("## Codec throughput, {label} (GiB/s of content, best of {runs})\n");
    println!("ratio = codec time on 1 thread / sum of the raw parts it uses (target <= 1.25)\n");
    println!("| strategy | k+m | enc 1T | enc 2T | dec 1T | dec 2T | parts enc | parts dec | ratio enc | ratio dec |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let only = std::env::var("SHARD_CODEC_BENCH_ONLY").unwrap_or_default();
    let config_only = std::env::var("SHARD_CODEC_BENCH_CONFIG").unwrap_or_default();
    for v in VARIANTS
        .into_iter()
        .filter(|v| only.is_empty() || v.name == only)
    {
        for (data, parity) in CONFIGS {
            if !config_only.is_empty() && config_only != format!("{data}+{parity}") {
                continue;
            }
            let p = params(v, data, parity);
            let e1 = best(runs, || run_encode(p, size, 1));
            let e2 = best(runs, || run_encode(p, size, 2));
            let shards = prepare_decode(p, size);
            let d1 = best(runs, || run_decode(&shards, size, 1));
            let d2 = best(runs, || run_decode(&shards, size, 2));
            drop(shards);
            let parts = measure_parts(&p, size, runs.min(3));
            let sum_enc = parts.content_hash + parts.piece_hash_enc + parts.rs_enc + parts.seal;
            let sum_dec = parts.content_hash + parts.piece_hash_dec + parts.rs_dec + parts.open;
            let e1s = per_gib(e1, size);
            let d1s = per_gib(d1, size);
            println!(
                "| {} | {data}+{parity} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                v.name,
                gibps(size, e1),
                gibps(size, e2),
                gibps(size, d1),
                gibps(size, d2),
                1.0 / sum_enc,
                1.0 / sum_dec,
                e1s / sum_enc,
                d1s / sum_dec,
            );
        }
    }
    println!();
}
