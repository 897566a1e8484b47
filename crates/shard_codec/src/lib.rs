//! Shard codecs (in progress).
