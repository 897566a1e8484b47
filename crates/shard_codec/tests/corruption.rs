//! Corrupt, truncated, failing and hostile shard bytes.

mod common;

use common::*;
use proptest::prelude::*;
use shard_codec::{verify_shard, verify_shard_reader, CodecError, Shard, Strategy as Strat};

fn strat() -> impl proptest::strategy::Strategy<Value = Strat> {
    prop_oneof![
        Just(Strat::FullReplica),
        Just(Strat::ErasureCoded),
        Just(Strat::ThresholdSplit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A flipped bit anywhere in any shard is detected; with one spare shard
    /// the content still comes back and the bad shard is reported; with
    /// exactly k shards the decode either fails or (if only the flipped
    /// shard's trailer was hit) returns the exact content. Never wrong bytes.
    #[test]
    fn flipped_bit_is_detected(
        s in strat(), k in 1usize..=5, enc in any::<bool>(), len in 0usize..6000,
        stripe in 64usize..1500, victim in any::<proptest::sample::Index>(),
        bit in any::<proptest::sample::Index>(), threads in 1usize..=2,
    ) {
        let (k, n) = if s == Strat::FullReplica { (1, 3) } else { (k, k + 2) };
        let p = params(s, k, n, enc, stripe);
        let data = content(len, len as u64 ^ 77);
        let out = encode(&data, p, 3);
        // The victim is among the shards the decoder prefers (originals), so it
        // is read for sure.
        let v = victim.index(k);
        let mut bytes: Vec<Vec<u8>> = out.shards.iter().map(|s| s.to_bytes()).collect();
        let b = bit.index(bytes[v].len() * 8);
        bytes[v][b / 8] ^= 1 << (b % 8);

        prop_assert!(verify_shard(&bytes[v]).is_err());
        prop_assert!(Shard::from_bytes(bytes[v].clone()).is_err());

        // k + 1 shards including the victim: content back, victim reported.
        let dec = decoder().with_threads(threads);
        let mut out_buf = Vec::new();
        let report = dec
            .decode_stream(bytes[..k + 1].iter().map(|b| b.as_slice()), &mut out_buf)
            .unwrap();
        prop_assert!(out_buf == data);
        prop_assert!(report.rejected.iter().any(|r| r.input == v), "victim not reported: {:?}", report);

        // Exactly k shards including the victim: never wrong bytes.
        if let Ok(back) = dec.decode_bytes(&bytes[..k]) {
            prop_assert!(back == data);
        }
    }

    /// Shard::from_bytes and verify_shard never panic on random input.
    #[test]
    fn random_bytes_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(Shard::from_bytes(bytes.clone()).is_err());
        prop_assert!(verify_shard_reader(&bytes[..]).is_err());
    }

    /// Random bytes behind a valid-looking magic and version, and random
    /// edits of real shards: errors, never panics, never accepted.
    #[test]
    fn edited_shards_are_rejected(
        s in strat(), enc in any::<bool>(), len in 0usize..3000,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 1u8..=255), 1..6),
        tail in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let p = params(s, 2, 4, enc, 256);
        let data = content(len, 1);
        let out = encode(&data, p, 9);
        let good = out.shards[1].to_bytes();
        let mut bad = good.clone();
        for (at, x) in &edits {
            let i = at.index(bad.len());
            bad[i] ^= x;
        }
        prop_assert!(Shard::from_bytes(bad).is_err());

        let mut fake = good[..8].to_vec();
        fake.extend_from_slice(&tail);
        prop_assert!(Shard::from_bytes(fake).is_err());

        let mut longer = good.clone();
        longer.push(tail.first().copied().unwrap_or(0));
        prop_assert!(Shard::from_bytes(longer).is_err());

        // The decoder skips such garbage rather than failing on it.
        let mut list: Vec<Vec<u8>> = vec![tail.clone(), good[..good.len() / 2].to_vec()];
        list.extend(out.shards.iter().map(|s| s.to_bytes()));
        prop_assert!(decoder().decode_bytes(&list).unwrap() == data);
    }
}

#[test]
fn every_truncation_is_rejected() {
    for s in Strat::ALL {
        let p = params(s, 2, 3, true, 100);
        let out = encode(&content(450, 2), p, 1);
        let bytes = out.shards[0].as_bytes();
        for cut in 0..bytes.len() {
            assert!(
                Shard::from_bytes(&bytes[..cut]).is_err(),
                "{s}: truncation at {cut} accepted"
            );
        }
        assert!(Shard::from_bytes(bytes).is_ok());
    }
}

/// Readers that fail or end mid-stream are skipped; shards are replaced stripe
/// by stripe, including in the multi-threaded pipeline where several stripes
/// are in flight when the failure is noticed.
#[test]
fn failing_readers_are_replaced_mid_stream() {
    let data = content(200_000, 4);
    for s in Strat::ALL {
        for threads in [1, 2, 3] {
            let (k, n) = if s == Strat::FullReplica {
                (1, 4)
            } else {
                (3, 6)
            };
            let p = params(s, k, n, true, 1000);
            let out = encode(&data, p, 5);
            let bytes: Vec<&[u8]> = out.shards.iter().map(|s| s.as_bytes()).collect();
            // Shard 0 errors 15% into its bytes, shard 1 ends early at 60%.
            let readers = (0..n).map(|i| {
                let (limit, error) = match i {
                    0 => (bytes[0].len() * 15 / 100, true),
                    1 => (bytes[1].len() * 60 / 100, false),
                    _ => (usize::MAX, false),
                };
                Faulty {
                    data: bytes[i],
                    pos: 0,
                    limit,
                    error,
                }
            });
            let mut back = Vec::new();
            let report = decoder()
                .with_threads(threads)
                .decode_stream(readers, &mut back)
                .unwrap();
            assert!(back == data, "{s} threads={threads}");
            // For replicas shard 1 takes over from shard 0 and then ends early
            // itself; for the others both are among the k active shards.
            let rejected: Vec<_> = report.rejected.iter().map(|r| r.index).collect();
            assert_eq!(rejected, vec![Some(0), Some(1)], "{s}: {report:?}");
            assert_eq!(report.rejected[1].reason, "truncated");
            assert!(report.rejected[0].reason.contains("custodian went away"));
        }
    }
}

/// Corrupt stripes scattered over several shards, with a pipeline several
/// stripes deep: every stripe comes from good pieces.
#[test]
fn scattered_corruption_with_threads() {
    let data = content(300_000, 8);
    let p = params(Strat::ErasureCoded, 4, 8, false, 1000);
    let out = encode(&data, p, 1);
    let mut bytes: Vec<Vec<u8>> = out.shards.iter().map(|s| s.to_bytes()).collect();
    // Flip one payload byte in stripe (10 + 37 * i) of shard i.
    let record = 20 + p.shard_len(1000) as usize - PREFIX_LEN - TRAILER_LEN;
    for (i, shard) in bytes.iter_mut().take(4).enumerate() {
        let at = PREFIX_LEN + (10 + 37 * i) * record + 25;
        shard[at] ^= 0x40;
        assert!(verify_shard(shard).is_err());
    }
    for threads in [1, 2, 4] {
        let mut back = Vec::new();
        let report = decoder()
            .with_threads(threads)
            .decode_stream(bytes.iter().map(|b| b.as_slice()), &mut back)
            .unwrap();
        assert!(back == data);
        let mut bad: Vec<_> = report.rejected.iter().filter_map(|r| r.index).collect();
        bad.sort_unstable();
        assert_eq!(bad, vec![0, 1, 2, 3]);
        assert_eq!(report.used, (0..8).collect::<Vec<_>>());
    }
    // Five corrupt shards out of 8 with k = 4: too few.
    let at = PREFIX_LEN + 200 * record + 30;
    bytes[4][at] ^= 1;
    let err = decoder().decode_bytes(&bytes).unwrap_err();
    assert!(
        matches!(err, CodecError::TooFewShards { needed: 4, good: 3, ref rejected } if rejected.len() == 5),
        "{err}"
    );
}

/// A corrupt trailer on a used shard does not lose the content.
#[test]
fn corrupt_trailer_on_used_shard() {
    let data = content(5000, 1);
    for s in Strat::ALL {
        let p = params(s, 2, 3, true, 1000);
        let out = encode(&data, p, 1);
        let mut bytes: Vec<Vec<u8>> = out.shards.iter().map(|s| s.to_bytes()).collect();
        let len = bytes[0].len();
        bytes[0][len - 40] ^= 2; // inside the content hash field
        let mut back = Vec::new();
        let r = decoder()
            .decode_stream(bytes.iter().map(|b| b.as_slice()), &mut back)
            .unwrap();
        assert!(back == data);
        assert_eq!(r.rejected.len(), 1, "{s}");
        assert_eq!(r.rejected[0].index, Some(0));
    }
}

#[test]
fn garbage_only_is_too_few() {
    let list = vec![vec![0u8; 500], b"ELSH".to_vec(), Vec::new()];
    match decoder().decode_bytes(&list) {
        Err(CodecError::TooFewShards {
            good: 0, rejected, ..
        }) => assert_eq!(rejected.len(), 3),
        other => panic!("{other:?}"),
    }
}
