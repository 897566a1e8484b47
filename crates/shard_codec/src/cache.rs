//! Per-thread reuse of working memory between calls.
//!
//! A one-stripe encode or decode (1 MiB of content) allocates a few MiB of
//! stripe buffers and Reed-Solomon work space. With glibc, buffers that large
//! are handed back to the kernel on free, and the next call pays page faults
//! to get them again: measured at up to twice the cost of the actual coding.
//! So the calling thread keeps the buffers of its last call, capped at
//! [`CACHE_LIMIT`] bytes, and the next call on that thread reuses them.
//! Buffers that held decrypted plaintext are zeroized before they are kept.

use std::cell::RefCell;

use crate::codec::{codec_for, CodecId, ErasureCodec};

/// Most bytes of buffers one thread keeps between calls.
pub(crate) const CACHE_LIMIT: usize = 8 << 20;

thread_local! {
    static CODEC: RefCell<Option<Box<dyn ErasureCodec>>> = const { RefCell::new(None) };
}

/// A codec for `id`, reusing this thread's cached one when it matches.
pub(crate) fn take_codec(id: CodecId) -> Option<Box<dyn ErasureCodec>> {
    let cached = CODEC.with(|c| c.borrow_mut().take());
    match cached {
        Some(c) if c.id() == id => Some(c),
        _ => codec_for(id),
    }
}

/// Keeps `codec` for the next call on this thread if its work space is small.
pub(crate) fn return_codec(codec: Option<Box<dyn ErasureCodec>>) {
    if let Some(c) = codec {
        if c.retained_bytes() <= CACHE_LIMIT {
            CODEC.with(|slot| *slot.borrow_mut() = Some(c));
        }
    }
}

/// A typed stash of recycled jobs for one kind of work.
pub(crate) struct JobCache<J: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Vec<J>>>,
}

impl<J: 'static> JobCache<J> {
    pub const fn new(key: &'static std::thread::LocalKey<RefCell<Vec<J>>>) -> Self {
        JobCache { key }
    }

    pub fn take(&self) -> Vec<J> {
        self.key.with(|c| std::mem::take(&mut *c.borrow_mut()))
    }

    /// Keeps jobs while their buffers fit in [`CACHE_LIMIT`]; `size` reports a
    /// job's buffer bytes.
    pub fn put(&self, jobs: Vec<J>, size: impl Fn(&J) -> usize) {
        let mut kept = Vec::new();
        let mut total = 0usize;
        for job in jobs {
            let s = size(&job);
            if total + s <= CACHE_LIMIT {
                total += s;
                kept.push(job);
            }
        }
        self.key.with(|c| *c.borrow_mut() = kept);
    }
}
