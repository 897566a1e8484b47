//! Round trips: random content, parameters and erasure patterns.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::strategy::Strategy as Gen;
use shard_codec::{CodecError, Decoder, Encoder, Strategy};

fn strategy() -> impl Gen<Value = Strategy> {
    prop_oneof![
        Just(Strategy::FullReplica),
        Just(Strategy::ErasureCoded),
        Just(Strategy::ThresholdSplit),
    ]
}

/// (strategy, k, n, encrypt, content length, stripe size, content seed)
fn case() -> impl Gen<Value = (Strategy, usize, usize, bool, usize, usize, u64)> {
    (
        strategy(),
        1usize..=12,
        0usize..=8,
        any::<bool>(),
        // Mostly small, sometimes several MiB; always some edge sizes.
        prop_oneof![
            3 => 0usize..20_000,
            1 => prop_oneof![Just(0usize), Just(1), Just(63), Just(64), Just(65)],
            1 => 20_000usize..5_000_000,
        ],
        1usize..=40,
        any::<u64>(),
    )
        .prop_map(|(s, k, extra, enc, len, stripes, seed)| {
            let (k, n) = if s == Strategy::FullReplica {
                (1, 1 + extra)
            } else {
                (k, k + extra)
            };
            // Aim for up to ~40 stripes; the stripe size limits still apply.
            let stripe = (len / stripes).clamp(64, 4 << 20);
            (s, k, n, enc, len, stripe, seed)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Any k shards (in any order) restore the exact bytes; k - 1 fail cleanly.
    #[test]
    fn any_k_shards_restore_the_content(
        (s, k, n, enc, len, stripe, seed) in case(),
        pick in any::<proptest::sample::Index>(),
        order in any::<u64>(),
    ) {
        let data = content(len, seed);
        let p = params(s, k, n, enc, stripe);
        let out = encode(&data, p, seed as u8);
        prop_assert_eq!(out.shards.len(), n);
        prop_assert_eq!(out.manifest.content_len, len as u64);

        // A random subset of size k..=n, in a shuffled order.
        let size = k + pick.index(n - k + 1);
        let mut chosen: Vec<usize> = (0..n).collect();
        let mut x = order | 1;
        for i in (1..chosen.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            chosen.swap(i, (x % (i as u64 + 1)) as usize);
        }
        chosen.truncate(size);
        let subset: Vec<_> = chosen.iter().map(|&i| out.shards[i].clone()).collect();
        let back = decoder().decode(&subset).unwrap();
        prop_assert!(back == data, "content differs for {}", p);

        // k - 1 shards: a clean TooFewShards, never bytes.
        let short: Vec<_> = chosen[..k - 1].iter().map(|&i| out.shards[i].clone()).collect();
        match decoder().decode(&short) {
            Err(CodecError::TooFewShards { needed, good, .. }) => {
                prop_assert_eq!(needed, k);
                prop_assert_eq!(good, k - 1);
            }
            other => prop_assert!(false, "expected TooFewShards, got {:?}", other.map(|v| v.len())),
        }
    }

    /// The worst erasure pattern for Reed-Solomon (originals missing first)
    /// works, with one and two threads, streaming from readers.
    #[test]
    fn originals_missing_streaming_threads(
        (s, k, n, enc, len, stripe, seed) in case(),
        threads in 1usize..=3,
    ) {
        let data = content(len, seed);
        let p = params(s, k, n, enc, stripe);
        let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); n];
        let report = Encoder::new(p).unwrap().with_key(key()).with_seed([3; 32])
            .with_threads(threads)
            .encode_stream(&data[..], &mut bufs).unwrap();
        prop_assert_eq!(report.manifest.content_len, len as u64);
        let mut out = Vec::new();
        let r = Decoder::new().with_key(key()).with_threads(threads)
            .decode_stream(bufs[n - k..].iter().map(|b| b.as_slice()), &mut out).unwrap();
        prop_assert!(out == data);
        prop_assert_eq!(r.used, (n - k..n).collect::<Vec<_>>());
        prop_assert!(r.rejected.is_empty());
    }
}

/// One big deterministic case per strategy: 16+16 over several MiB.
#[test]
fn several_mib_sixteen_plus_sixteen() {
    let data = content(6 * 1024 * 1024 + 12345, 99);
    for s in Strategy::ALL {
        let p = params(s, 16, 32, true, 1 << 20);
        let out = encode(&data, p, 7);
        let k = p.k;
        let subset: Vec<_> = out.shards[32 - k..].to_vec();
        assert!(
            decoder().with_threads(2).decode(&subset).unwrap() == data,
            "{p}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Streaming encode equals in-memory encode, whatever the thread count
    /// and however the reader chunks its output.
    #[test]
    fn stream_encode_is_deterministic(
        s in strategy(), len in 0usize..300_000, threads in 1usize..=3, enc in any::<bool>(),
    ) {
        let data = content(len, len as u64);
        let p = params(s, 3, 5, enc, 4096);
        let mem = encode(&data, p, 11);
        let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); 5];
        let reader = Faulty { data: &data, pos: 0, limit: usize::MAX, error: false };
        let report = Encoder::new(p).unwrap().with_key(key()).with_seed([11; 32])
            .with_threads(threads).encode_stream(reader, &mut bufs).unwrap();
        prop_assert_eq!(&report.manifest, &mem.manifest);
        for (a, b) in bufs.iter().zip(&mem.shards) {
            prop_assert!(a.as_slice() == b.as_bytes());
            prop_assert_eq!(a.len() as u64, p.shard_len(len as u64));
        }
    }

    /// Random subsets via `subsequence` including duplicates of the same shard.
    #[test]
    fn duplicates_do_not_count_twice(
        s in strategy(), picks in subsequence((0usize..6).collect::<Vec<_>>(), 1..=6),
    ) {
        let data = content(5000, 5);
        let p = params(s, 3, 6, true, 1000);
        let out = encode(&data, p, 1);
        let mut list: Vec<_> = picks.iter().map(|&i| out.shards[i].clone()).collect();
        list.extend(list.clone());
        let res = decoder().decode(&list);
        if picks.len() >= p.k {
            prop_assert!(res.unwrap() == data);
        } else {
            let is_too_few = matches!(res, Err(CodecError::TooFewShards { good, .. }) if good == picks.len());
            prop_assert!(is_too_few);
        }
    }
}
