//! Encoding: content (from memory or any `Read`) into one byte stream per shard.

use std::io::{self, Read, Write};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cache::{return_codec, take_codec, JobCache};
use crate::codec::ErasureCodec;
use crate::crypto::{content_hasher, os_rng, split_key, ContentKey, StripeCipher};
use crate::error::CodecError;
use crate::format::{stripe_hash, Hash, Prefix, RecordHead, Trailer};
use crate::pipeline::{run_pipeline, Lanes, Work};
use crate::shard::{ContentManifest, Shard};
use crate::{CodecParams, Result, Strategy};

/// Configurable encoder: parameters plus optional owner key, deterministic
/// randomness and worker threads.
///
/// ```
/// use shard_codec::{CodecParams, Encoder, ContentKey, decode_with_key};
/// let key = ContentKey::from_bytes([7; 32]);
/// let mut enc = Encoder::new(CodecParams::erasure_coded(4, 6))?.with_key(key.clone());
/// let out = enc.encode(b"hello custodians")?;
/// assert_eq!(decode_with_key(&out.shards[2..], &key)?, b"hello custodians");
/// # Ok::<(), shard_codec::CodecError>(())
/// ```
pub struct Encoder {
    params: CodecParams,
    key: Option<ContentKey>,
    rng: Option<StdRng>,
    threads: usize,
}

/// What a streamed encode produces besides the shard bytes.
#[derive(Debug, Clone)]
#[must_use = "for content encrypted at rest the key is the only way back"]
pub struct EncodeReport {
    /// Public facts about the encoding (publish these, e.g. in DHT assignments).
    pub manifest: ContentManifest,
    /// The owner key when the content is encrypted at rest (`full_replica` or
    /// `erasure_coded` with `encrypt`): the one passed to
    /// [`Encoder::with_key`] or a freshly generated one. Never stored in any
    /// shard; losing it loses the content. `None` otherwise.
    pub key: Option<ContentKey>,
}

/// Result of an in-memory encode.
#[derive(Debug, Clone)]
#[must_use = "for content encrypted at rest the key is the only way back"]
pub struct Encoded {
    /// The shards, `shards[i].header().index == i`.
    pub shards: Vec<Shard>,
    /// Public facts about the encoding.
    pub manifest: ContentManifest,
    /// Owner key, as in [`EncodeReport::key`].
    pub key: Option<ContentKey>,
}

impl Encoder {
    /// An encoder for validated `params`, using OS randomness and one thread.
    pub fn new(params: CodecParams) -> Result<Self> {
        params.validate()?;
        Ok(Encoder {
            params,
            key: None,
            rng: None,
            threads: 1,
        })
    }

    /// Uses `key` instead of a random one: the owner key for encryption at
    /// rest, or the content key that `threshold_split` shares out. Ignored for
    /// unencrypted content.
    #[must_use]
    pub fn with_key(mut self, key: ContentKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Draws the encoding id, generated keys and Shamir coefficients from a
    /// ChaCha RNG seeded with `seed`, making output reproducible (tests,
    /// golden files). Successive encodes with one encoder still differ. Never
    /// use one seed with one key for different content in production: equal
    /// seeds mean equal nonces.
    #[must_use]
    pub fn with_seed(mut self, seed: [u8; 32]) -> Self {
        self.rng = Some(StdRng::from_seed(seed));
        self
    }

    /// Like [`Encoder::with_seed`], seeding from a caller-supplied RNG.
    #[must_use]
    pub fn with_rng<R: rand::CryptoRng + ?Sized>(self, rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        self.with_seed(seed)
    }

    /// Number of worker threads for coding and hashing (default 1: everything
    /// on the calling thread). The calling thread additionally reads, hashes the
    /// content and writes, so `threads = cores` keeps every core busy. Output
    /// is byte-identical whatever the thread count.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The parameters this encoder uses.
    pub fn params(&self) -> &CodecParams {
        &self.params
    }

    /// Encodes `content` in memory.
    pub fn encode(&mut self, content: &[u8]) -> Result<Encoded> {
        let len = self.params.shard_len(content.len() as u64);
        let cap = usize::try_from(len).unwrap_or(0);
        let mut bufs: Vec<Vec<u8>> = (0..self.params.n)
            .map(|_| Vec::with_capacity(cap))
            .collect();
        let report = self.encode_stream(content, &mut bufs)?;
        let shards = bufs
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let header = report
                    .manifest
                    .header_for(i)
                    .ok_or_else(|| CodecError::Internal("manifest lacks a shard".into()))?;
                Ok(Shard::from_parts(header, bytes))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoded {
            shards,
            manifest: report.manifest,
            key: report.key,
        })
    }

    /// Encodes everything `reader` yields, writing shard `i` to `writers[i]`
    /// front to back (no seeking), with at most a few stripes in memory.
    ///
    /// The content hash is only known at the end, so it lives in each shard's
    /// trailer together with the whole-shard hash; every stripe record carries
    /// its own hash so decoders can check stripes as they arrive.
    ///
    /// On error the writers hold partial shards: discard them.
    pub fn encode_stream<R: Read, W: Write>(
        &mut self,
        mut reader: R,
        writers: &mut [W],
    ) -> Result<EncodeReport> {
        let params = self.params;
        if writers.len() != params.n {
            return Err(CodecError::BadParameters(format!(
                "{} writers given for n = {}",
                writers.len(),
                params.n
            )));
        }
        let mut rng = match self.rng.take() {
            Some(r) => r,
            None => os_rng()?,
        };
        let setup = Setup::new(&params, self.key.as_ref(), &mut rng);
        self.rng = Some(rng);
        let setup = setup?;

        let mut chains = Vec::with_capacity(params.n);
        for (i, (w, prefix)) in writers.iter_mut().zip(&setup.prefixes).enumerate() {
            let bytes = prefix.to_bytes();
            w.write_all(&bytes)
                .map_err(|source| CodecError::ShardWrite { index: i, source })?;
            chains.push(Prefix::chain(&bytes));
        }

        let work = EncodeWork {
            strategy: params.strategy,
            k: params.k,
            n: params.n,
            cipher: setup.cipher,
            stripe_keys: setup.stripe_keys,
        };
        let mut hasher = content_hasher(setup.key.as_ref(), &setup.encode_id);
        let mut state = StreamState {
            reader: &mut reader,
            writers,
            chains: &mut chains,
            hasher: &mut hasher,
            stripe_size: params.stripe_size,
            content_len: 0,
        };
        let stripes = run_pipeline(&work, self.threads, |lanes| state.run(&work, lanes))?;
        let content_len = state.content_len;

        let content_hash = *hasher.finalize().as_bytes();
        let mut shard_hashes = Vec::with_capacity(params.n);
        for (i, (w, chain)) in writers.iter_mut().zip(&chains).enumerate() {
            let (trailer, bytes) = Trailer::seal(chain, stripes, content_len, content_hash);
            w.write_all(&bytes)
                .and_then(|()| w.flush())
                .map_err(|source| CodecError::ShardWrite { index: i, source })?;
            shard_hashes.push(trailer.shard_hash);
        }
        let owner_key = if params.needs_owner_key() {
            setup.key
        } else {
            None
        };
        Ok(EncodeReport {
            manifest: ContentManifest {
                params: CodecParams {
                    encrypt: params.is_encrypted(),
                    ..params
                },
                codec: params.codec(),
                encode_id: setup.encode_id,
                content_hash,
                content_len,
                stripe_count: stripes,
                shard_hashes,
            },
            key: owner_key,
        })
    }
}

/// Per-encode secrets and derived values.
struct Setup {
    encode_id: [u8; 16],
    key: Option<ContentKey>,
    prefixes: Vec<Prefix>,
    cipher: Option<StripeCipher>,
    stripe_keys: Vec<Hash>,
}

impl Setup {
    fn new(params: &CodecParams, key: Option<&ContentKey>, rng: &mut StdRng) -> Result<Setup> {
        let mut encode_id = [0u8; 16];
        rng.fill_bytes(&mut encode_id);
        let key = if params.is_encrypted() {
            Some(match key {
                Some(k) => k.clone(),
                None => ContentKey::generate_with(rng),
            })
        } else {
            None
        };
        let shares = match (&key, params.strategy) {
            (Some(key), Strategy::ThresholdSplit) => Some(split_key(key, params.k, params.n, rng)?),
            _ => None,
        };
        let prefixes: Vec<Prefix> = (0..params.n)
            .map(|i| Prefix {
                key_share: shares.as_ref().map(|s| s[i]),
                ..Prefix::from_params(params, i, encode_id)
            })
            .collect();
        let cipher = key
            .as_ref()
            .map(|k| StripeCipher::new(k, &encode_id, prefixes[0].identity()));
        let stripe_keys = if params.strategy == Strategy::FullReplica {
            vec![prefixes[0].stripe_key()]
        } else {
            prefixes.iter().map(Prefix::stripe_key).collect()
        };
        Ok(Setup {
            encode_id,
            key,
            prefixes,
            cipher,
            stripe_keys,
        })
    }
}

/// The per-stripe work done by workers: encrypt, code, hash pieces.
struct EncodeWork {
    strategy: Strategy,
    k: usize,
    n: usize,
    cipher: Option<StripeCipher>,
    stripe_keys: Vec<Hash>,
}

std::thread_local! {
    static ENCODE_JOBS: std::cell::RefCell<Vec<EncodeJob>> = const { std::cell::RefCell::new(Vec::new()) };
}
static JOBS: JobCache<EncodeJob> = JobCache::new(&ENCODE_JOBS);

#[derive(Default)]
struct EncodeJob {
    stripe: u64,
    /// Plaintext in, coded data (ciphertext with tag, if encrypted) out.
    data: Vec<u8>,
    head: [u8; crate::format::RECORD_HEAD_LEN],
    piece_len: usize,
    /// Original pieces `0..full` are plain slices of `data`.
    full: usize,
    /// Original pieces `full..k`, zero-padded copies.
    padded: Vec<Vec<u8>>,
    recovery: Vec<Vec<u8>>,
    hashes: Vec<Hash>,
    error: Option<CodecError>,
}

impl EncodeJob {
    /// Buffer bytes this job holds (for the reuse cache's limit).
    fn bytes(&self) -> usize {
        self.data.capacity()
            + self.padded.iter().map(Vec::capacity).sum::<usize>()
            + self.recovery.iter().map(Vec::capacity).sum::<usize>()
    }

    fn piece(&self, i: usize, k: usize, strategy: Strategy) -> &[u8] {
        if strategy == Strategy::FullReplica {
            &self.data
        } else if i < self.full {
            &self.data[i * self.piece_len..(i + 1) * self.piece_len]
        } else if i < k {
            &self.padded[i - self.full]
        } else {
            &self.recovery[i - k]
        }
    }

    fn hash(&self, i: usize) -> &Hash {
        // Replicas share one stripe hash.
        &self.hashes[i.min(self.hashes.len() - 1)]
    }
}

impl Work for EncodeWork {
    type Job = EncodeJob;
    type State = Option<Box<dyn ErasureCodec>>;

    fn state(&self) -> Self::State {
        match self.strategy {
            Strategy::FullReplica => None,
            _ => take_codec(crate::CodecId::ReedSolomonSimd),
        }
    }

    fn retire(&self, state: Self::State) {
        return_codec(state);
    }

    fn run(&self, codec: &mut Self::State, job: &mut EncodeJob) {
        job.error = self.encode_stripe(codec, job).err();
    }
}

impl EncodeWork {
    fn encode_stripe(
        &self,
        codec: &mut Option<Box<dyn ErasureCodec>>,
        job: &mut EncodeJob,
    ) -> Result<()> {
        if let Some(c) = &self.cipher {
            c.seal(job.stripe, &mut job.data)?;
        }
        let data_len = job.data.len();
        let p = crate::format::piece_len(self.strategy, self.k, data_len);
        job.piece_len = p;
        job.head = RecordHead {
            stripe: job.stripe,
            data_len: data_len as u32,
            piece_len: p as u32,
        }
        .to_bytes();
        job.hashes.clear();
        if self.strategy == Strategy::FullReplica {
            let h = stripe_hash(&self.stripe_keys[0], &job.head, &job.data);
            job.hashes.push(h);
            return Ok(());
        }
        let k = self.k;
        let full = (data_len / p).min(k);
        job.full = full;
        let EncodeJob {
            data,
            padded,
            recovery,
            ..
        } = job;
        let pads = k - full;
        if padded.len() < pads {
            padded.resize_with(pads, Vec::new);
        }
        for (j, buf) in padded.iter_mut().take(pads).enumerate() {
            let start = (full + j) * p;
            buf.clear();
            if start < data_len {
                buf.extend_from_slice(&data[start..data_len.min(start + p)]);
            }
            buf.resize(p, 0);
        }
        let m = self.n - k;
        if m > 0 {
            let codec = codec
                .as_mut()
                .ok_or_else(|| CodecError::Internal("no erasure codec".into()))?;
            recovery.resize_with(m, Vec::new);
            let originals: Vec<&[u8]> = (0..k)
                .map(|i| {
                    if i < full {
                        &data[i * p..(i + 1) * p]
                    } else {
                        padded[i - full].as_slice()
                    }
                })
                .collect();
            let mut produced = 0;
            codec.encode(&originals, m, &mut |r, bytes| {
                if let Some(buf) = recovery.get_mut(r) {
                    buf.clear();
                    buf.extend_from_slice(bytes);
                    produced += 1;
                }
            })?;
            if produced != m {
                return Err(CodecError::Internal(format!(
                    "codec produced {produced} of {m} recovery pieces"
                )));
            }
        }
        for i in 0..self.n {
            let h = stripe_hash(
                &self.stripe_keys[i],
                &job.head,
                job.piece(i, k, self.strategy),
            );
            job.hashes.push(h);
        }
        Ok(())
    }
}

/// The calling thread's side of a streamed encode.
struct StreamState<'a, R, W> {
    reader: &'a mut R,
    writers: &'a mut [W],
    chains: &'a mut [blake3::Hasher],
    hasher: &'a mut blake3::Hasher,
    stripe_size: usize,
    content_len: u64,
}

impl<R: Read, W: Write> StreamState<'_, R, W> {
    /// Reads, dispatches and writes stripes in order; returns the stripe count.
    fn run(&mut self, work: &EncodeWork, lanes: &mut Lanes<'_, '_, EncodeWork>) -> Result<u64> {
        let mut free = JOBS.take();
        let result = self.run_jobs(work, lanes, &mut free);
        JOBS.put(free, EncodeJob::bytes);
        result
    }

    fn run_jobs(
        &mut self,
        work: &EncodeWork,
        lanes: &mut Lanes<'_, '_, EncodeWork>,
        free: &mut Vec<EncodeJob>,
    ) -> Result<u64> {
        let (mut submitted, mut written) = (0u64, 0u64);
        let mut eof = false;
        loop {
            while !eof && lanes.can_submit() {
                let mut job = free.pop().unwrap_or_else(|| EncodeJob {
                    data: Vec::with_capacity(self.stripe_size + crate::format::AEAD_TAG_LEN),
                    ..EncodeJob::default()
                });
                job.data.clear();
                job.data
                    .reserve_exact(self.stripe_size + crate::format::AEAD_TAG_LEN);
                // Read into spare capacity: no zero-fill of fresh memory.
                let got = read_full_into(self.reader, &mut job.data, self.stripe_size)?;
                if got < self.stripe_size {
                    eof = true;
                }
                if got == 0 {
                    free.push(job);
                    break;
                }
                self.hasher.update(&job.data);
                self.content_len += got as u64;
                job.stripe = submitted;
                lanes.submit(submitted, job)?;
                submitted += 1;
            }
            if written == submitted {
                return Ok(submitted);
            }
            let mut job = lanes.take(written)?;
            if let Some(e) = job.error.take() {
                return Err(e);
            }
            self.write_job(work, &job)?;
            free.push(job);
            written += 1;
        }
    }

    fn write_job(&mut self, work: &EncodeWork, job: &EncodeJob) -> Result<()> {
        for (i, (w, chain)) in self
            .writers
            .iter_mut()
            .zip(self.chains.iter_mut())
            .enumerate()
        {
            let hash = job.hash(i);
            let piece = job.piece(i, work.k, work.strategy);
            w.write_all(&job.head)
                .and_then(|()| w.write_all(piece))
                .and_then(|()| w.write_all(hash))
                .map_err(|source| CodecError::ShardWrite { index: i, source })?;
            chain.update(hash);
        }
        Ok(())
    }
}

/// Appends up to `limit` bytes from `r` to `buf`; fewer only at end of input.
fn read_full_into<R: Read>(r: &mut R, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    // `read_to_end` on `Take` retries `Interrupted` and stops at the limit.
    r.take(limit as u64).read_to_end(buf)
}
