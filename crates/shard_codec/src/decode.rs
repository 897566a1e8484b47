//! Decoding and single-shard rebuild from shard byte streams.
//!
//! The decoder reads every shard's prefix, keeps the shards of one encoding,
//! and then works stripe by stripe from `k` of them ("active" shards). Every
//! piece is checked against its stripe hash before it is used; a shard whose
//! piece fails (or whose framing breaks, or whose reader errors) is dropped for
//! the rest of the content and another shard takes its place at that stripe.
//! Spare shards are only read when needed, skipping forward over the stripes
//! they were not needed for. At the end the trailers are checked and the
//! decoded content is compared with the recorded content hash.

use std::io::{self, Read, Write};

use crate::cache::{return_codec, take_codec, JobCache};
use crate::codec::ErasureCodec;
use crate::crypto::{content_hasher, recover_key, share_at, ContentKey, StripeCipher};
use crate::error::{CodecError, Rejected};
use crate::format::{
    stripe_hash, Hash, KeyShare, Prefix, RecordHead, ShardHeader, Trailer, HASH_LEN, PREFIX_LEN,
    RECORD_HEAD_LEN, TAG_STRIPE, TAG_TRAILER, TRAILER_LEN,
};
use crate::pipeline::{run_pipeline, Lanes, Work};
use crate::shard::{ContentManifest, Shard};
use crate::{CodecParams, Result, Strategy};
use zeroize::Zeroize;

/// Configurable decoder (also rebuilds lost shards): optional owner key,
/// optional expected manifest, worker threads.
#[derive(Clone, Debug)]
pub struct Decoder {
    key: Option<ContentKey>,
    expected: Option<ContentManifest>,
    threads: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// What a successful decode learned about the shards, so a repair daemon can
/// schedule rebuilds for the rejected ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeReport {
    /// Parameters of the decoded encoding.
    pub params: CodecParams,
    /// Encoding id shared by the shards used.
    pub encode_id: [u8; 16],
    /// Bytes written to the output.
    pub content_len: u64,
    /// Content hash recorded in the shards, which the output matched.
    pub content_hash: [u8; 32],
    /// Indices of the shards whose pieces or trailer were used, ascending.
    pub used: Vec<usize>,
    /// Shards skipped as corrupt, unreadable or belonging to other content.
    /// Spares that were never needed are not read and so not listed.
    pub rejected: Vec<Rejected>,
}

impl Decoder {
    /// A decoder with no key, no expected manifest, one thread.
    pub fn new() -> Self {
        Decoder {
            key: None,
            expected: None,
            threads: 1,
        }
    }

    /// The owner key, for content encrypted at rest (`full_replica` and
    /// `erasure_coded` with `encrypt`). Not needed for `threshold_split`.
    #[must_use]
    pub fn with_key(mut self, key: ContentKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Only accept shards of this encoding, and require every shard used to
    /// have the hash the manifest records: shards from other content are
    /// skipped, and a forged shard that is internally consistent is caught.
    #[must_use]
    pub fn expect(mut self, manifest: ContentManifest) -> Self {
        self.expected = Some(manifest);
        self
    }

    /// Worker threads for hash checking, reconstruction and decryption
    /// (default 1: all on the calling thread, which also reads, hashes the
    /// content and writes).
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Restores content from in-memory shards (any order, any subset of at
    /// least `k` good ones; corrupt and foreign shards are skipped).
    pub fn decode(&self, shards: &[Shard]) -> Result<Vec<u8>> {
        let total: u64 = shards.iter().map(|s| s.as_bytes().len() as u64).sum();
        let hint = shards
            .iter()
            .map(|s| s.header().content_len)
            .max()
            .unwrap_or(0)
            .min(total);
        let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        self.decode_stream(shards.iter().map(Shard::as_bytes), &mut out)?;
        Ok(out)
    }

    /// Like [`Decoder::decode`] for raw shard bytes that were never parsed
    /// (straight from disk or the network); corrupt ones are skipped.
    pub fn decode_bytes<B: AsRef<[u8]>>(&self, shards: &[B]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decode_stream(shards.iter().map(AsRef::as_ref), &mut out)?;
        Ok(out)
    }

    /// Streams content from shard readers into `writer`.
    ///
    /// All readers' headers are read first; after that only `k` readers are
    /// read stripe by stripe, others only if one of those fails. Output is
    /// written as stripes are decoded, so it must be treated as provisional
    /// until this returns `Ok` (the final content-hash check happens at the
    /// end): write to a temporary file and rename it on success.
    pub fn decode_stream<R: Read, W: Write>(
        &self,
        readers: impl IntoIterator<Item = R>,
        writer: W,
    ) -> Result<DecodeReport> {
        let mut eng = Engine::open(readers, self.expected.as_ref(), None)?;
        let prefix = eng.template.clone();
        let key = if !prefix.encrypted {
            None
        } else if prefix.strategy == Strategy::ThresholdSplit {
            Some(recover_key(&eng.initial_shares()?, eng.k)?)
        } else {
            Some(self.key.clone().ok_or(CodecError::MissingKey)?)
        };
        let work = DecodeWork {
            cipher: key
                .as_ref()
                .map(|k| StripeCipher::new(k, &prefix.encode_id, prefix.identity())),
            target: None,
            k: eng.k,
            n: usize::from(prefix.n),
            prefix,
        };
        let mut sink = ContentSink {
            writer,
            hasher: content_hasher(key.as_ref(), &work.prefix.encode_id),
            written: 0,
        };
        let (end, _) = run_pipeline(&work, self.threads, |lanes| {
            eng.run(&work, lanes, &mut |job| sink.emit(job))
        })?;
        let trailer = eng.finish(end, self.expected.as_ref())?;
        if sink.written != trailer.content_len
            || *sink.hasher.finalize().as_bytes() != trailer.content_hash
        {
            return Err(CodecError::MismatchedContent(format!(
                "decoded {} bytes whose hash differs from the recorded content hash{}",
                sink.written,
                if work.prefix.encrypted {
                    " (wrong key?)"
                } else {
                    ""
                }
            )));
        }
        sink.writer.flush()?;
        Ok(DecodeReport {
            params: work.prefix.params(),
            encode_id: work.prefix.encode_id,
            content_len: trailer.content_len,
            content_hash: trailer.content_hash,
            used: eng.used_indices(),
            rejected: eng.rejected,
        })
    }

    /// Rebuilds shard `index` from the available shards (which need not
    /// include it; if they do, it is not used). The result is byte-identical to
    /// the lost shard: pieces are recomputed from any `k` good shards, and for
    /// `threshold_split` the key share is re-derived by Lagrange interpolation
    /// of `k` other shares at the lost coordinate. Nothing is decrypted and no
    /// owner key is needed.
    pub fn rebuild_shard(&self, available: &[Shard], index: usize) -> Result<Shard> {
        let mut out = Vec::new();
        let header =
            self.rebuild_shard_stream(available.iter().map(Shard::as_bytes), index, &mut out)?;
        Ok(Shard::from_parts(header, out))
    }

    /// Streaming form of [`Decoder::rebuild_shard`]: writes the rebuilt shard
    /// to `writer` (provisional until `Ok`, as for decoding). With an expected
    /// manifest the rebuilt shard's hash is also checked against it.
    pub fn rebuild_shard_stream<R: Read, W: Write>(
        &self,
        readers: impl IntoIterator<Item = R>,
        index: usize,
        mut writer: W,
    ) -> Result<ShardHeader> {
        let mut eng = Engine::open(readers, self.expected.as_ref(), Some(index))?;
        let n = usize::from(eng.template.n);
        if index >= n {
            return Err(CodecError::BadParameters(format!(
                "shard index {index} out of range for n = {n}"
            )));
        }
        let mut target = eng.template.clone();
        target.index = index as u16;
        if target.strategy == Strategy::ThresholdSplit {
            let x = u8::try_from(index + 1)
                .map_err(|_| CodecError::Internal("threshold index above 254".into()))?;
            target.key_share = Some(share_at(&eng.initial_shares()?, eng.k, x)?);
        }
        let prefix_bytes = target.to_bytes();
        let write_err = |source| CodecError::ShardWrite { index, source };
        writer.write_all(&prefix_bytes).map_err(write_err)?;
        let work = DecodeWork {
            cipher: None,
            target: Some((index, target.stripe_key())),
            k: eng.k,
            n,
            prefix: eng.template.clone(),
        };
        let mut sink = ShardSink {
            writer: &mut writer,
            chain: Prefix::chain(&prefix_bytes),
            index,
        };
        let (end, plain_total) = run_pipeline(&work, self.threads, |lanes| {
            eng.run(&work, lanes, &mut |job| sink.emit(job))
        })?;
        let chain = sink.chain;
        let agreed = eng.finish(end, self.expected.as_ref())?;
        if plain_total != agreed.content_len {
            return Err(CodecError::MismatchedContent(format!(
                "stripes hold {plain_total} content bytes, trailers record {}",
                agreed.content_len
            )));
        }
        let (trailer, bytes) = Trailer::seal(&chain, end, agreed.content_len, agreed.content_hash);
        writer
            .write_all(&bytes)
            .and_then(|()| writer.flush())
            .map_err(write_err)?;
        if let Some(m) = &self.expected {
            if m.shard_hash(index) != Some(&trailer.shard_hash) {
                return Err(CodecError::MismatchedContent(format!(
                    "rebuilt shard {index} differs from the manifest"
                )));
            }
        }
        Ok(ShardHeader::from_parts(&target, &trailer))
    }
}

/// Describes an I/O error on a shard reader for a rejection reason.
pub(crate) fn io_reason(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "truncated".into()
    } else {
        format!("read failed: {e}")
    }
}

/// One record read from a shard stream.
pub(crate) enum Record {
    Stripe(RecordHead, [u8; RECORD_HEAD_LEN]),
    Trailer([u8; TRAILER_LEN]),
}

/// One shard being read: its reader, parsed prefix, position and hash chain.
pub(crate) struct Slot<R> {
    pub input: usize,
    pub reader: R,
    pub prefix: Prefix,
    pub stripe_key: Hash,
    /// Stripe records consumed so far (= index of the next record).
    pub position: u64,
    /// Whole-shard hash over the prefix and every stripe hash read so far.
    pub chain: blake3::Hasher,
    pub dead: bool,
    /// Trailer read at `position` (the shard has no more stripes).
    pub trailer: Option<[u8; TRAILER_LEN]>,
    /// Whether any of its pieces went into the output or its trailer was relied on.
    pub used: bool,
    max_piece: usize,
}

impl<R: Read> Slot<R> {
    pub fn new(input: usize, reader: R, prefix: Prefix, bytes: &[u8; PREFIX_LEN]) -> Self {
        Slot {
            input,
            reader,
            stripe_key: prefix.stripe_key(),
            max_piece: prefix.max_piece_len(),
            prefix,
            position: 0,
            chain: Prefix::chain(bytes),
            dead: false,
            trailer: None,
            used: false,
        }
    }

    pub fn index(&self) -> usize {
        usize::from(self.prefix.index)
    }

    fn read(&mut self, buf: &mut [u8]) -> std::result::Result<(), String> {
        self.reader.read_exact(buf).map_err(|e| io_reason(&e))
    }

    /// Reads the next record's head (or the whole trailer). Checks framing and
    /// bounds before anything is allocated.
    pub fn read_head(&mut self) -> std::result::Result<Record, String> {
        let mut head = [0u8; RECORD_HEAD_LEN];
        self.read(&mut head)?;
        match head[0] {
            TAG_STRIPE => {
                let h = RecordHead::parse(&head)?;
                if h.stripe != self.position {
                    return Err(format!(
                        "record says stripe {} where stripe {} belongs",
                        h.stripe, self.position
                    ));
                }
                if h.piece_len as usize > self.max_piece {
                    return Err(format!(
                        "stripe {} piece length {} exceeds the maximum {}",
                        h.stripe, h.piece_len, self.max_piece
                    ));
                }
                Ok(Record::Stripe(h, head))
            }
            TAG_TRAILER => {
                let mut t = [0u8; TRAILER_LEN];
                t[..RECORD_HEAD_LEN].copy_from_slice(&head);
                self.read(&mut t[RECORD_HEAD_LEN..])?;
                Ok(Record::Trailer(t))
            }
            other => Err(format!(
                "unknown record tag {other:#04x} at stripe {}",
                self.position
            )),
        }
    }

    /// Reads a stripe's payload and stored hash (unverified) after its head.
    pub fn read_payload(
        &mut self,
        head: &RecordHead,
        buf: &mut Vec<u8>,
        stored: &mut Hash,
    ) -> std::result::Result<(), String> {
        // Read straight into spare capacity: no zero-fill of a buffer that is
        // about to be overwritten (it matters for one-stripe contents, where
        // every buffer is fresh memory).
        let want = head.piece_len as usize;
        buf.clear();
        buf.reserve_exact(want);
        let got = (&mut self.reader)
            .take(want as u64)
            .read_to_end(buf)
            .map_err(|e| io_reason(&e))?;
        if got != want {
            return Err("truncated".into());
        }
        self.read(stored)?;
        self.chain.update(stored);
        self.position += 1;
        Ok(())
    }

    fn skip_record(&mut self) -> std::result::Result<(), String> {
        match self.read_head()? {
            Record::Stripe(head, _) => {
                let want = u64::from(head.piece_len);
                let copied = io::copy(&mut (&mut self.reader).take(want), &mut io::sink())
                    .map_err(|e| io_reason(&e))?;
                if copied != want {
                    return Err("truncated".into());
                }
                let mut stored = [0u8; HASH_LEN];
                self.read(&mut stored)?;
                self.chain.update(&stored);
                self.position += 1;
                Ok(())
            }
            Record::Trailer(_) => Err(format!(
                "shard ends after {} stripes while others continue",
                self.position
            )),
        }
    }

    /// Skips records up to stripe `t`, keeping the hash chain.
    pub fn advance_to(&mut self, t: u64) -> std::result::Result<(), String> {
        if self.position > t {
            return Err(format!(
                "internal: shard already past stripe {t} (at {})",
                self.position
            ));
        }
        while self.position < t {
            self.skip_record()?;
        }
        Ok(())
    }

    pub fn open_trailer(&self, bytes: &[u8; TRAILER_LEN]) -> std::result::Result<Trailer, String> {
        Trailer::open(bytes, &self.chain, self.position)
    }
}

/// A piece of one stripe from one shard.
struct Piece {
    slot: usize,
    index: usize,
    head: RecordHead,
    raw: [u8; RECORD_HEAD_LEN],
    key: Hash,
    payload: Vec<u8>,
    stored: Hash,
}

#[derive(Default)]
enum Outcome {
    #[default]
    Pending,
    Done,
    /// Pieces (by position in `pieces`) that failed their checks.
    Bad(Vec<(usize, String)>),
    Fatal(CodecError),
}

/// Where a run of output bytes lives inside a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seg {
    None,
    Piece(usize),
    Restored(usize),
    Out,
}

std::thread_local! {
    static DECODE_JOBS: std::cell::RefCell<Vec<DecodeJob>> = const { std::cell::RefCell::new(Vec::new()) };
}
static JOBS: JobCache<DecodeJob> = JobCache::new(&DECODE_JOBS);

#[derive(Default)]
struct DecodeJob {
    stripe: u64,
    pieces: Vec<Piece>,
    /// Recycled payload buffers.
    spare: Vec<Vec<u8>>,
    /// Slots that presented a trailer at this stripe.
    trailer_slots: Vec<usize>,
    /// `have[i]`: a piece of shard index `i` is in `pieces`.
    have: Vec<bool>,
    restored: Vec<Vec<u8>>,
    restored_index: Vec<usize>,
    sources: Vec<Seg>,
    out: Vec<u8>,
    /// Output, in order; the first `out_len` bytes of their concatenation.
    segments: Vec<Seg>,
    out_len: usize,
    target_hash: Hash,
    outcome: Outcome,
}

fn seg_bytes<'a>(
    seg: Seg,
    pieces: &'a [Piece],
    restored: &'a [Vec<u8>],
    out: &'a [u8],
) -> &'a [u8] {
    match seg {
        Seg::Piece(i) => &pieces[i].payload,
        Seg::Restored(i) => &restored[i],
        Seg::Out => out,
        Seg::None => &[],
    }
}

impl DecodeJob {
    /// Buffer bytes this job holds (for the reuse cache's limit).
    fn buffer_bytes(&self) -> usize {
        self.spare.iter().map(Vec::capacity).sum::<usize>()
            + self
                .pieces
                .iter()
                .map(|p| p.payload.capacity())
                .sum::<usize>()
            + self.restored.iter().map(Vec::capacity).sum::<usize>()
            + self.out.capacity()
    }

    /// Wipes buffers that may hold decrypted plaintext before the job is kept
    /// for reuse: `out` (assembled stripes) and, for replicas, the pieces,
    /// which are decrypted in place.
    fn wipe_plaintext(&mut self, replica: bool) {
        self.out.zeroize();
        if replica {
            for b in &mut self.spare {
                b.zeroize();
            }
        }
    }

    fn bytes(&self, seg: Seg) -> &[u8] {
        seg_bytes(seg, &self.pieces, &self.restored, &self.out)
    }

    fn recycle(&mut self) {
        for p in self.pieces.drain(..) {
            self.spare.push(p.payload);
        }
        self.trailer_slots.clear();
        self.segments.clear();
        self.restored_index.clear();
        self.out_len = 0;
        self.outcome = Outcome::Pending;
    }

    fn remove_piece(&mut self, pos: usize) -> Piece {
        self.pieces.remove(pos)
    }
}

/// Per-stripe work: verify pieces, reconstruct, decrypt (or rebuild a piece).
struct DecodeWork {
    prefix: Prefix,
    k: usize,
    n: usize,
    cipher: Option<StripeCipher>,
    /// Rebuild mode: the shard index to produce and its stripe key.
    target: Option<(usize, Hash)>,
}

enum StripeFail {
    Bad(Vec<(usize, String)>),
    Fatal(CodecError),
}

impl From<CodecError> for StripeFail {
    fn from(e: CodecError) -> Self {
        StripeFail::Fatal(e)
    }
}

impl Work for DecodeWork {
    type Job = DecodeJob;
    type State = Option<Box<dyn ErasureCodec>>;

    fn state(&self) -> Self::State {
        take_codec(self.prefix.codec)
    }

    fn retire(&self, state: Self::State) {
        return_codec(state);
    }

    fn run(&self, codec: &mut Self::State, job: &mut DecodeJob) {
        job.outcome = match self.decode_stripe(codec, job) {
            Ok(()) => Outcome::Done,
            Err(StripeFail::Bad(v)) => Outcome::Bad(v),
            Err(StripeFail::Fatal(e)) => Outcome::Fatal(e),
        };
    }
}

impl DecodeWork {
    fn decode_stripe(
        &self,
        codec: &mut Option<Box<dyn ErasureCodec>>,
        job: &mut DecodeJob,
    ) -> std::result::Result<(), StripeFail> {
        let t = job.stripe;
        let mut bad = Vec::new();
        for (i, p) in job.pieces.iter().enumerate() {
            if stripe_hash(&p.key, &p.raw, &p.payload) != p.stored {
                bad.push((i, format!("stripe {t} hash mismatch")));
            } else if let Err(r) = self.prefix.check_head(&p.head) {
                bad.push((i, r));
            }
        }
        if !bad.is_empty() {
            return Err(StripeFail::Bad(bad));
        }
        if job.pieces.len() != self.k {
            return Err(CodecError::Internal(format!(
                "stripe {t} has {} pieces, {} needed",
                job.pieces.len(),
                self.k
            ))
            .into());
        }
        let raw = job.pieces[0].raw;
        if job.pieces.iter().any(|p| p.raw != raw) {
            return Err(CodecError::MismatchedContent(format!(
                "shards disagree about the size of stripe {t}"
            ))
            .into());
        }
        let head = job.pieces[0].head;
        let data_len = head.data_len as usize;
        let piece_len = head.piece_len as usize;
        job.segments.clear();
        job.restored_index.clear();

        if self.prefix.strategy == Strategy::FullReplica {
            job.segments.push(Seg::Piece(0));
            match self.target {
                Some((_, key)) => {
                    job.target_hash = stripe_hash(&key, &raw, &job.pieces[0].payload);
                    job.out_len = piece_len;
                }
                None => {
                    if let Some(c) = &self.cipher {
                        c.open(t, &mut job.pieces[0].payload)?;
                    }
                    job.out_len = job.pieces[0].payload.len();
                }
            }
            return Ok(());
        }

        let k = self.k;
        let m = self.n - k;
        let DecodeJob {
            pieces,
            restored,
            restored_index,
            sources,
            out,
            segments,
            ..
        } = job;
        let codec = codec
            .as_mut()
            .ok_or_else(|| CodecError::Internal("no erasure codec".into()))?;
        let present: Vec<(usize, &[u8])> = pieces
            .iter()
            .map(|p| (p.index, p.payload.as_slice()))
            .collect();
        if let (None, Some(cipher)) = (self.target, &self.cipher) {
            // Decrypting needs the stripe contiguous: assemble it directly,
            // taking restored pieces straight from the codec (which hands them
            // over in ascending index order) instead of copying them twice.
            sources.clear();
            sources.resize(k, Seg::None);
            for (pos, p) in pieces.iter().enumerate() {
                if p.index < k {
                    sources[p.index] = Seg::Piece(pos);
                }
            }
            out.clear();
            out.reserve_exact(k * piece_len);
            let mut next = 0usize;
            let mut in_order = true;
            let append_present = |upto: usize, out: &mut Vec<u8>, next: &mut usize| {
                while *next < upto {
                    match sources[*next] {
                        Seg::Piece(pos) => out.extend_from_slice(&pieces[pos].payload),
                        _ => return false,
                    }
                    *next += 1;
                }
                true
            };
            codec.reconstruct(k, m, piece_len, &present, &mut |i, bytes| {
                if i < next || i >= k || !append_present(i, out, &mut next) {
                    in_order = false;
                    return;
                }
                out.extend_from_slice(bytes);
                next = i + 1;
            })?;
            if !in_order || !append_present(k, out, &mut next) || out.len() != k * piece_len {
                return Err(CodecError::Internal(format!(
                    "stripe {t}: codec did not restore the missing pieces in order"
                ))
                .into());
            }
            out.truncate(data_len);
            cipher.open(t, out)?;
            segments.push(Seg::Out);
            job.out_len = out.len();
            return Ok(());
        }
        let mut count = 0usize;
        codec.reconstruct(k, m, piece_len, &present, &mut |i, bytes| {
            if count == restored.len() {
                restored.push(Vec::new());
            }
            restored[count].clear();
            restored[count].extend_from_slice(bytes);
            restored_index.push(i);
            count += 1;
        })?;
        sources.clear();
        sources.resize(k, Seg::None);
        for (pos, p) in pieces.iter().enumerate() {
            if p.index < k {
                sources[p.index] = Seg::Piece(pos);
            }
        }
        for (j, &i) in restored_index.iter().enumerate() {
            if i < k && sources[i] == Seg::None {
                sources[i] = Seg::Restored(j);
            }
        }
        if let Some(i) = sources.iter().position(|s| *s == Seg::None) {
            return Err(CodecError::Internal(format!(
                "original piece {i} of stripe {t} missing after reconstruction"
            ))
            .into());
        }

        match self.target {
            None => {
                segments.extend_from_slice(sources);
                job.out_len = data_len;
            }
            Some((target, key)) => {
                let seg = if target < k {
                    sources[target]
                } else {
                    let originals: Vec<&[u8]> = sources
                        .iter()
                        .map(|&s| seg_bytes(s, pieces, restored, &[]))
                        .collect();
                    let mut found = false;
                    codec.encode(&originals, m, &mut |r, bytes| {
                        if r == target - k {
                            out.clear();
                            out.extend_from_slice(bytes);
                            found = true;
                        }
                    })?;
                    if !found {
                        return Err(CodecError::Internal(format!(
                            "codec did not produce recovery piece {target}"
                        ))
                        .into());
                    }
                    Seg::Out
                };
                job.target_hash = stripe_hash(&key, &raw, seg_bytes(seg, pieces, restored, out));
                segments.push(seg);
                job.out_len = piece_len;
            }
        }
        Ok(())
    }
}

enum Gather {
    Ready,
    End,
    NeedDrain,
}

/// The calling thread's view of all shards of the chosen encoding.
struct Engine<R> {
    slots: Vec<Slot<R>>,
    /// Slot ids in order of preference (originals first, then by index).
    order: Vec<usize>,
    /// Slots that supplied the last stripe; asked first for the next one.
    active: Vec<usize>,
    rejected: Vec<Rejected>,
    template: Prefix,
    k: usize,
}

impl<R: Read> Engine<R> {
    /// Reads every prefix, groups shards by encoding and picks the one group
    /// that can be decoded. `exclude` is a shard index never to use (the one
    /// being rebuilt).
    fn open(
        readers: impl IntoIterator<Item = R>,
        expected: Option<&ContentManifest>,
        exclude: Option<usize>,
    ) -> Result<Self> {
        let mut rejected = Vec::new();
        let mut cands: Vec<(usize, R, Prefix, [u8; PREFIX_LEN])> = Vec::new();
        for (input, mut r) in readers.into_iter().enumerate() {
            let mut b = [0u8; PREFIX_LEN];
            if let Err(e) = r.read_exact(&mut b) {
                rejected.push(Rejected {
                    input,
                    index: None,
                    reason: format!("cannot read header: {}", io_reason(&e)),
                });
                continue;
            }
            match Prefix::parse(&b) {
                Ok(p) => cands.push((input, r, p, b)),
                Err(e) => rejected.push(Rejected {
                    input,
                    index: None,
                    reason: e.reason().to_string(),
                }),
            }
        }
        if let Some(m) = expected {
            cands.retain(|(input, _, p, _)| {
                let ok = m.matches_prefix(p);
                if !ok {
                    rejected.push(Rejected {
                        input: *input,
                        index: Some(p.index.into()),
                        reason: "not a shard of the expected content".into(),
                    });
                }
                ok
            });
        }
        // Group by encoding; count distinct usable indices per group.
        let mut groups: Vec<(crate::format::GroupKey, Vec<usize>)> = Vec::new();
        for (ci, c) in cands.iter().enumerate() {
            let g = c.2.group();
            match groups.iter_mut().find(|(key, _)| *key == g) {
                Some((_, members)) => members.push(ci),
                None => groups.push((g, vec![ci])),
            }
        }
        let distinct = |members: &[usize]| -> usize {
            let mut idx: Vec<usize> = members
                .iter()
                .map(|&ci| usize::from(cands[ci].2.index))
                .filter(|&i| Some(i) != exclude)
                .collect();
            idx.sort_unstable();
            idx.dedup();
            idx.len()
        };
        let k_of = |members: &[usize]| usize::from(cands[members[0]].2.k);
        let decodable: Vec<usize> = (0..groups.len())
            .filter(|&g| distinct(&groups[g].1) >= k_of(&groups[g].1))
            .collect();
        let chosen = match decodable.as_slice() {
            [g] => *g,
            [] => {
                // Report against the most complete group; everything else is foreign.
                let best = (0..groups.len()).max_by_key(|&g| distinct(&groups[g].1));
                let (needed, good) = match best {
                    Some(g) => (k_of(&groups[g].1), distinct(&groups[g].1)),
                    None => (expected.map_or(1, |m| m.params.k), 0),
                };
                for (g, (_, members)) in groups.iter().enumerate() {
                    if Some(g) != best {
                        for &ci in members {
                            rejected.push(Rejected {
                                input: cands[ci].0,
                                index: Some(cands[ci].2.index.into()),
                                reason: "belongs to another content (different encoding id)"
                                    .into(),
                            });
                        }
                    }
                }
                rejected.sort_by_key(|r| r.input);
                return Err(CodecError::TooFewShards {
                    needed,
                    good,
                    rejected,
                });
            }
            many => {
                return Err(CodecError::MismatchedContent(format!(
                    "shards of {} different contents could each be decoded; pass the expected manifest to choose",
                    many.len()
                )))
            }
        };
        let mut member = vec![false; cands.len()];
        for &ci in &groups[chosen].1 {
            member[ci] = true;
        }
        let template = {
            let mut p = cands[groups[chosen].1[0]].2.clone();
            p.index = 0;
            p.key_share = None;
            p
        };
        let mut slots = Vec::new();
        for (ci, (input, r, p, b)) in cands.into_iter().enumerate() {
            if !member[ci] {
                rejected.push(Rejected {
                    input,
                    index: Some(p.index.into()),
                    reason: "belongs to another content (different encoding id)".into(),
                });
            } else if Some(usize::from(p.index)) != exclude {
                slots.push(Slot::new(input, r, p, &b));
            }
        }
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&s| (slots[s].index(), slots[s].input));
        let k = usize::from(template.k);
        let mut eng = Engine {
            slots,
            order,
            active: Vec::new(),
            rejected,
            template,
            k,
        };
        eng.active = eng.first_distinct(k);
        Ok(eng)
    }

    /// The first `k` live slots with distinct indices, in preference order.
    fn first_distinct(&self, k: usize) -> Vec<usize> {
        let mut seen = vec![false; usize::from(self.template.n)];
        let mut out = Vec::with_capacity(k);
        for &s in &self.order {
            let i = self.slots[s].index();
            if !self.slots[s].dead && !seen[i] {
                seen[i] = true;
                out.push(s);
                if out.len() == k {
                    break;
                }
            }
        }
        out
    }

    /// Key shares of `k` shards with distinct indices (threshold_split).
    fn initial_shares(&self) -> Result<Vec<KeyShare>> {
        let shares: Vec<KeyShare> = self
            .first_distinct(self.k)
            .iter()
            .filter_map(|&s| self.slots[s].prefix.key_share)
            .collect();
        if shares.len() != self.k {
            return Err(self.too_few());
        }
        Ok(shares)
    }

    fn good_count(&self) -> usize {
        let mut idx: Vec<usize> = self
            .slots
            .iter()
            .filter(|s| !s.dead)
            .map(Slot::index)
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx.len()
    }

    fn too_few(&self) -> CodecError {
        CodecError::TooFewShards {
            needed: self.k,
            good: self.good_count(),
            rejected: self.rejected.clone(),
        }
    }

    fn kill(&mut self, s: usize, reason: String) {
        let slot = &mut self.slots[s];
        if slot.dead {
            return;
        }
        slot.dead = true;
        self.rejected.push(Rejected {
            input: slot.input,
            index: Some(slot.index()),
            reason,
        });
        self.active.retain(|&a| a != s);
    }

    fn used_indices(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .slots
            .iter()
            .filter(|s| s.used)
            .map(Slot::index)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn candidate(&self, t: u64, job: &DecodeJob, at_t_only: bool) -> Option<usize> {
        let usable = |s: usize| {
            let sl = &self.slots[s];
            !sl.dead
                && sl.trailer.is_none()
                && if at_t_only {
                    sl.position == t
                } else {
                    sl.position <= t
                }
                && !job.have[sl.index()]
        };
        self.active
            .iter()
            .chain(self.order.iter())
            .copied()
            .find(|&s| usable(s))
    }

    /// Collects `k` pieces of stripe `t` into `job`, replacing shards that
    /// fail to deliver. Without `allow_spares`, only shards already at `t` are
    /// asked (advancing a spare would skip stripes still in flight).
    fn gather(&mut self, t: u64, job: &mut DecodeJob, allow_spares: bool) -> Result<Gather> {
        job.stripe = t;
        // After a drain some contributors may have been found bad.
        let mut i = 0;
        while i < job.pieces.len() {
            if self.slots[job.pieces[i].slot].dead {
                let p = job.remove_piece(i);
                job.spare.push(p.payload);
            } else {
                i += 1;
            }
        }
        job.trailer_slots.retain(|&s| !self.slots[s].dead);
        job.have.clear();
        job.have.resize(usize::from(self.template.n), false);
        for p in &job.pieces {
            job.have[p.index] = true;
        }
        loop {
            if job.pieces.len() == self.k {
                for s in std::mem::take(&mut job.trailer_slots) {
                    self.kill(s, format!("shard ends at stripe {t} while others continue"));
                }
                self.active = job.pieces.iter().map(|p| p.slot).collect();
                return Ok(Gather::Ready);
            }
            if job.pieces.is_empty() && job.trailer_slots.len() >= self.k {
                return Ok(Gather::End);
            }
            let Some(s) = self.candidate(t, job, !allow_spares) else {
                if !allow_spares && self.candidate(t, job, false).is_some() {
                    return Ok(Gather::NeedDrain);
                }
                if job.pieces.is_empty() && !job.trailer_slots.is_empty() {
                    return Ok(Gather::End);
                }
                return Err(self.too_few());
            };
            if let Err(r) = self.slots[s].advance_to(t) {
                self.kill(s, r);
                continue;
            }
            match self.slots[s].read_head() {
                Err(r) => self.kill(s, r),
                Ok(Record::Trailer(bytes)) => {
                    self.slots[s].trailer = Some(bytes);
                    job.trailer_slots.push(s);
                }
                Ok(Record::Stripe(head, raw)) => {
                    let mut payload = job.spare.pop().unwrap_or_default();
                    let mut stored = [0u8; HASH_LEN];
                    let slot = &mut self.slots[s];
                    match slot.read_payload(&head, &mut payload, &mut stored) {
                        Ok(()) => {
                            job.have[slot.index()] = true;
                            job.pieces.push(Piece {
                                slot: s,
                                index: slot.index(),
                                head,
                                raw,
                                key: slot.stripe_key,
                                payload,
                                stored,
                            });
                        }
                        Err(r) => {
                            job.spare.push(payload);
                            self.kill(s, r);
                        }
                    }
                }
            }
        }
    }

    /// Drops the shards whose pieces failed, fetches replacements for this
    /// stripe and redoes it on the calling thread, until it succeeds or too
    /// few shards remain.
    fn repair(
        &mut self,
        job: &mut DecodeJob,
        mut bad: Vec<(usize, String)>,
        lanes: &mut Lanes<'_, '_, DecodeWork>,
    ) -> Result<()> {
        loop {
            bad.sort_by_key(|&(pos, _)| std::cmp::Reverse(pos));
            for (pos, reason) in bad {
                let p = job.remove_piece(pos);
                self.kill(p.slot, reason);
                job.spare.push(p.payload);
            }
            match self.gather(job.stripe, job, true)? {
                Gather::Ready => {}
                Gather::End | Gather::NeedDrain => {
                    return Err(CodecError::MismatchedContent(format!(
                        "shards disagree about whether stripe {} exists",
                        job.stripe
                    )))
                }
            }
            lanes.run_local(job);
            match std::mem::take(&mut job.outcome) {
                Outcome::Done => return Ok(()),
                Outcome::Bad(b) => bad = b,
                Outcome::Fatal(e) => return Err(e),
                Outcome::Pending => {
                    return Err(CodecError::Internal("stripe was not processed".into()))
                }
            }
        }
    }

    /// Decodes all stripes in order, handing each finished job to `emit`.
    /// Returns the stripe count and the plaintext bytes the stripes declared.
    fn run(
        &mut self,
        work: &DecodeWork,
        lanes: &mut Lanes<'_, '_, DecodeWork>,
        emit: &mut dyn FnMut(&DecodeJob) -> Result<()>,
    ) -> Result<(u64, u64)> {
        let mut free = JOBS.take();
        let result = self.run_jobs(work, lanes, emit, &mut free);
        let replica = work.prefix.strategy == Strategy::FullReplica;
        for job in &mut free {
            job.recycle();
            if work.prefix.encrypted {
                job.wipe_plaintext(replica);
            }
        }
        JOBS.put(free, DecodeJob::buffer_bytes);
        result
    }

    fn run_jobs(
        &mut self,
        work: &DecodeWork,
        lanes: &mut Lanes<'_, '_, DecodeWork>,
        emit: &mut dyn FnMut(&DecodeJob) -> Result<()>,
        free: &mut Vec<DecodeJob>,
    ) -> Result<(u64, u64)> {
        let mut pending: Option<DecodeJob> = None;
        let (mut dispatched, mut emitted) = (0u64, 0u64);
        let mut end = false;
        let mut draining = false;
        let mut short_seen = false;
        let mut plain_total = 0u64;
        let max_data = work.prefix.max_data_len();
        loop {
            if lanes.in_flight() == 0 {
                draining = false;
            }
            while !end && !draining && lanes.can_submit() {
                let mut job = pending
                    .take()
                    .unwrap_or_else(|| free.pop().unwrap_or_default());
                match self.gather(dispatched, &mut job, lanes.in_flight() == 0)? {
                    Gather::Ready => {
                        lanes.submit(dispatched, job)?;
                        dispatched += 1;
                    }
                    Gather::End => {
                        end = true;
                        job.recycle();
                        free.push(job);
                    }
                    Gather::NeedDrain => {
                        pending = Some(job);
                        draining = true;
                    }
                }
            }
            if emitted == dispatched {
                if end {
                    return Ok((dispatched, plain_total));
                }
                continue; // nothing in flight: the next pass gathers with spares
            }
            let mut job = lanes.take(emitted)?;
            match std::mem::take(&mut job.outcome) {
                Outcome::Done => {}
                Outcome::Bad(bad) => {
                    draining = true;
                    self.repair(&mut job, bad, lanes)?;
                }
                Outcome::Fatal(e) => return Err(e),
                Outcome::Pending => {
                    return Err(CodecError::Internal("stripe was not processed".into()))
                }
            }
            let data_len = job.pieces[0].head.data_len as usize;
            if short_seen {
                return Err(CodecError::MismatchedContent(format!(
                    "stripe {emitted} follows a short stripe"
                )));
            }
            short_seen = data_len != max_data;
            plain_total += work.prefix.plain_len(data_len) as u64;
            for p in &job.pieces {
                self.slots[p.slot].used = true;
            }
            emit(&job)?;
            job.recycle();
            free.push(job);
            emitted += 1;
        }
    }

    /// Reads and checks trailers at stripe `end`; trailers that verify must
    /// agree. Shards with a broken trailer are reported (their stripes were
    /// checked one by one, so data already used from them is fine).
    fn finish(&mut self, end: u64, expected: Option<&ContentManifest>) -> Result<Trailer> {
        let mut agreed: Option<Trailer> = None;
        let presented: Vec<usize> = (0..self.slots.len())
            .filter(|&s| !self.slots[s].dead && self.slots[s].trailer.is_some())
            .collect();
        for s in presented {
            if let Some(bytes) = self.slots[s].trailer.take() {
                self.check_trailer(s, &bytes, &mut agreed, expected)?;
            }
        }
        if agreed.is_none() {
            let fallback: Vec<usize> = self
                .order
                .iter()
                .copied()
                .filter(|&s| !self.slots[s].dead && self.slots[s].position <= end)
                .collect();
            for s in fallback {
                if let Err(r) = self.slots[s].advance_to(end) {
                    self.kill(s, r);
                    continue;
                }
                match self.slots[s].read_head() {
                    Ok(Record::Trailer(bytes)) => {
                        self.check_trailer(s, &bytes, &mut agreed, expected)?;
                    }
                    Ok(Record::Stripe(..)) => {
                        self.kill(s, format!("shard continues past stripe {end}"));
                    }
                    Err(r) => self.kill(s, r),
                }
                if agreed.is_some() {
                    break;
                }
            }
        }
        agreed.ok_or_else(|| CodecError::CorruptShard {
            index: None,
            reason: "no shard has an intact trailer".into(),
        })
    }

    fn check_trailer(
        &mut self,
        s: usize,
        bytes: &[u8; TRAILER_LEN],
        agreed: &mut Option<Trailer>,
        expected: Option<&ContentManifest>,
    ) -> Result<()> {
        let tr = match self.slots[s].open_trailer(bytes) {
            Ok(tr) => tr,
            Err(r) => {
                self.kill(s, r);
                return Ok(());
            }
        };
        let index = self.slots[s].index();
        if let Some(m) = expected {
            if m.shard_hash(index) != Some(&tr.shard_hash) {
                if self.slots[s].used {
                    return Err(CodecError::MismatchedContent(format!(
                        "shard {index} was used but is not the shard the manifest records"
                    )));
                }
                self.kill(s, "not the shard the manifest records".into());
                return Ok(());
            }
        }
        // Its trailer vouches for the content hash: it counts as used.
        self.slots[s].used = true;
        match agreed {
            None => *agreed = Some(tr),
            Some(a) => {
                if (a.content_len, a.content_hash, a.stripe_count)
                    != (tr.content_len, tr.content_hash, tr.stripe_count)
                {
                    return Err(CodecError::MismatchedContent(
                        "shards disagree about the content hash or length".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Receives decoded plaintext in order, hashing as it goes.
struct ContentSink<W> {
    writer: W,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write> ContentSink<W> {
    fn emit(&mut self, job: &DecodeJob) -> Result<()> {
        let mut remaining = job.out_len;
        for &seg in &job.segments {
            let b = job.bytes(seg);
            let take = b.len().min(remaining);
            self.hasher.update(&b[..take]);
            self.writer.write_all(&b[..take])?;
            remaining -= take;
        }
        self.written += job.out_len as u64;
        Ok(())
    }
}

/// Receives rebuilt pieces in order and writes them as stripe records.
struct ShardSink<'w, W> {
    writer: &'w mut W,
    chain: blake3::Hasher,
    index: usize,
}

impl<W: Write> ShardSink<'_, W> {
    fn emit(&mut self, job: &DecodeJob) -> Result<()> {
        let seg = job.segments.first().copied().unwrap_or(Seg::None);
        let bytes = job.bytes(seg);
        if bytes.len() != job.out_len {
            return Err(CodecError::Internal(
                "rebuilt piece has the wrong length".into(),
            ));
        }
        let index = self.index;
        self.writer
            .write_all(&job.pieces[0].raw)
            .and_then(|()| self.writer.write_all(bytes))
            .and_then(|()| self.writer.write_all(&job.target_hash))
            .map_err(|source| CodecError::ShardWrite { index, source })?;
        self.chain.update(&job.target_hash);
        Ok(())
    }
}
