//! Parameters, strategy strings, manifests, keys, rebuild and verification.

mod common;

use common::*;
use proptest::prelude::*;
use shard_codec::{
    codec_for, rebuild_shard, verify_shard, verify_shard_reader, CodecError, CodecId, CodecParams,
    ContentKey, Decoder, Encoder, ErasureCodec, ReedSolomonSimd, Shard, Strategy, MAX_STRIPE_SIZE,
    MIN_STRIPE_SIZE,
};

fn bad(p: CodecParams) -> String {
    match p.validate() {
        Err(CodecError::BadParameters(m)) => m,
        other => panic!("{p:?} accepted: {other:?}"),
    }
}

#[test]
fn strategy_strings_round_trip() {
    for s in Strategy::ALL {
        assert_eq!(s.to_string().parse::<Strategy>().unwrap(), s);
        assert_eq!(s.as_str(), s.to_string());
    }
    assert_eq!(
        "full_replica".parse::<Strategy>().unwrap(),
        Strategy::FullReplica
    );
    assert_eq!(
        "erasure_coded".parse::<Strategy>().unwrap(),
        Strategy::ErasureCoded
    );
    assert_eq!(
        "threshold_split".parse::<Strategy>().unwrap(),
        Strategy::ThresholdSplit
    );
    for s in [
        "",
        "FullReplica",
        "full-replica",
        "erasure",
        " threshold_split",
    ] {
        assert!(
            matches!(s.parse::<Strategy>(), Err(CodecError::BadParameters(_))),
            "{s:?}"
        );
    }
}

#[test]
fn bad_parameters_are_rejected() {
    assert!(bad(CodecParams::erasure_coded(0, 4)).contains("k must be at least 1"));
    assert!(bad(CodecParams::erasure_coded(5, 4)).contains("must not exceed"));
    assert!(bad(CodecParams::threshold_split(0, 0)).contains("k must be"));
    assert!(bad(CodecParams::full_replica(0)).contains("n must be"));
    assert!(bad(CodecParams::threshold_split(3, 256)).contains("maximum of 255"));
    assert!(bad(CodecParams::erasure_coded(3, 65_536)).contains("maximum of 65535"));
    assert!(bad(CodecParams::full_replica(70_000)).contains("maximum"));
    assert!(bad(CodecParams::erasure_coded(60_000, 65_535)).contains("cannot produce"));
    let mut fr = CodecParams::full_replica(3);
    fr.k = 2;
    assert!(bad(fr).contains("k must be 1"));
    assert!(
        bad(CodecParams::erasure_coded(2, 3).with_stripe_size(MIN_STRIPE_SIZE - 1))
            .contains("stripe size")
    );
    assert!(
        bad(CodecParams::erasure_coded(2, 3).with_stripe_size(MAX_STRIPE_SIZE + 1))
            .contains("stripe size")
    );
    assert!(CodecParams::new(Strategy::FullReplica, 2, 3).is_err());
    assert!(Encoder::new(CodecParams::erasure_coded(4, 3)).is_err());

    // Limits themselves are fine.
    CodecParams::threshold_split(255, 255).validate().unwrap();
    CodecParams::threshold_split(1, 1).validate().unwrap();
    CodecParams::erasure_coded(1, 1).validate().unwrap();
    CodecParams::erasure_coded(7, 7).validate().unwrap();
    CodecParams::full_replica(65_535).validate().unwrap();
    CodecParams::erasure_coded(2, 3)
        .with_stripe_size(MIN_STRIPE_SIZE)
        .validate()
        .unwrap();

    // Wrong number of writers.
    let mut w: Vec<Vec<u8>> = vec![Vec::new(); 3];
    let err = Encoder::new(CodecParams::erasure_coded(2, 4))
        .unwrap()
        .encode_stream(&b"x"[..], &mut w)
        .unwrap_err();
    assert!(matches!(err, CodecError::BadParameters(_)));
}

#[test]
fn encryption_flag_semantics() {
    assert!(
        CodecParams::erasure_coded(2, 3).encrypt,
        "encrypt at rest is the default"
    );
    assert!(CodecParams::threshold_split(2, 3)
        .with_encryption(false)
        .is_encrypted());
    assert!(!CodecParams::threshold_split(2, 3).needs_owner_key());
    assert!(!CodecParams::erasure_coded(2, 3)
        .with_encryption(false)
        .is_encrypted());
    let out = shard_codec::encode(
        b"abc",
        &CodecParams::threshold_split(2, 3).with_encryption(false),
    )
    .unwrap();
    assert!(out.key.is_none());
    assert!(out.manifest.params.encrypt && out.shards[0].header().encrypted);
    assert_eq!(shard_codec::decode(&out.shards).unwrap(), b"abc");

    // An owner key is generated when none is given, and returned.
    let out = shard_codec::encode(b"abc", &CodecParams::full_replica(2)).unwrap();
    let key = out.key.clone().expect("generated owner key");
    assert_eq!(
        shard_codec::decode_with_key(&out.shards, &key).unwrap(),
        b"abc"
    );
    assert!(matches!(
        shard_codec::decode(&out.shards),
        Err(CodecError::MissingKey)
    ));
    assert_eq!(format!("{key:?}"), "ContentKey(<redacted>)");
    assert_ne!(
        ContentKey::generate().unwrap(),
        ContentKey::generate().unwrap()
    );
}

#[test]
fn seeds_make_output_reproducible() {
    let data = content(10_000, 3);
    let p = CodecParams::threshold_split(3, 5).with_stripe_size(1000);
    let enc = |seed| {
        Encoder::new(p)
            .unwrap()
            .with_seed(seed)
            .encode(&data)
            .unwrap()
    };
    let (a, b, c) = (enc([1; 32]), enc([1; 32]), enc([2; 32]));
    assert_eq!(a.shards, b.shards);
    assert_ne!(a.shards[0].as_bytes(), c.shards[0].as_bytes());
    assert_ne!(a.manifest.encode_id, c.manifest.encode_id);
    // One encoder, two encodes: fresh encoding ids (no nonce reuse).
    let mut e = Encoder::new(p).unwrap().with_seed([1; 32]);
    let (x, y) = (e.encode(&data).unwrap(), e.encode(&data).unwrap());
    assert_ne!(x.manifest.encode_id, y.manifest.encode_id);
    // A caller-supplied RNG works too.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_seed([9; 32]);
    let z = Encoder::new(p)
        .unwrap()
        .with_rng(&mut rng)
        .encode(&data)
        .unwrap();
    assert_eq!(shard_codec::decode(&z.shards).unwrap(), data);
}

#[test]
fn empty_content() {
    for s in Strategy::ALL {
        for enc in [false, true] {
            let p = params(s, 2, 3, enc, 64);
            let out = encode(&[], p, 1);
            assert_eq!(out.manifest.stripe_count, 0);
            assert_eq!(out.shards[0].as_bytes().len() as u64, p.shard_len(0));
            assert!(decoder().decode(&out.shards[1..]).unwrap().is_empty());
            if p.needs_owner_key() {
                let wrong = Decoder::new().with_key(ContentKey::from_bytes([3; 32]));
                assert!(
                    wrong.decode(&out.shards).is_err(),
                    "wrong key accepted for empty content"
                );
            }
            for i in 0..3 {
                let others: Vec<_> = out
                    .shards
                    .iter()
                    .filter(|s| s.index() != i)
                    .cloned()
                    .collect();
                assert_eq!(rebuild_shard(&others, i).unwrap(), out.shards[i]);
            }
        }
    }
}

#[test]
fn manifest_and_verification() {
    let data = content(70_000, 5);
    let p = CodecParams::erasure_coded(4, 7).with_stripe_size(8192);
    let out = encode(&data, p, 1);
    let other = encode(&data, p, 2);
    assert_eq!(out.manifest.shard_hashes.len(), 7);
    assert_eq!(out.manifest.stripe_count, 9);
    assert_eq!(out.manifest.codec, CodecId::ReedSolomonSimd);
    for s in &out.shards {
        let h = verify_shard(s.as_bytes()).unwrap();
        assert_eq!(&h, s.header());
        assert_eq!(verify_shard_reader(s.as_bytes()).unwrap(), h);
        assert_eq!(h.shard_hash, out.manifest.shard_hashes[h.index]);
        assert_eq!(Some(h.clone()), out.manifest.header_for(h.index));
        out.manifest.check_shard(&h).unwrap();
        assert!(other.manifest.check_shard(&h).is_err());
        assert_eq!(h.params(), p);
        assert_eq!(s.as_bytes().len() as u64, p.shard_len(70_000));
        assert_eq!(Shard::from_bytes(s.to_bytes()).unwrap(), *s);
    }
    // A shard at another index does not pass for this one.
    let mut h = out.shards[2].header().clone();
    h.index = 3;
    assert!(out.manifest.check_shard(&h).is_err());
    h.index = 99;
    assert!(out.manifest.check_shard(&h).is_err());

    // Decoding against the manifest skips other encodings.
    let mut mixed: Vec<_> = other.shards.clone();
    mixed.extend(out.shards[3..].iter().cloned());
    let mut back = Vec::new();
    let r = decoder()
        .expect(out.manifest.clone())
        .decode_stream(mixed.iter().map(Shard::as_bytes), &mut back)
        .unwrap();
    assert!(back == data);
    assert_eq!(r.used, vec![3, 4, 5, 6]);
    assert_eq!(r.rejected.len(), 7);
    assert_eq!(r.content_hash, out.manifest.content_hash);
    assert_eq!(r.params, p);
}

#[test]
fn codec_trait_round_trip() {
    let mut c: Box<dyn ErasureCodec> = codec_for(CodecId::ReedSolomonSimd).unwrap();
    assert!(codec_for(CodecId::Replica).is_none());
    assert_eq!(c.id(), CodecId::ReedSolomonSimd);
    assert_eq!(c.piece_alignment(), 2);
    assert!(c.supports(10, 14) && !c.supports(0, 1) && !c.supports(5, 4));
    assert!(ReedSolomonSimd::new().supports(3, 3));
    let originals: Vec<Vec<u8>> = (0..3).map(|i| content(64, i)).collect();
    let refs: Vec<&[u8]> = originals.iter().map(|v| v.as_slice()).collect();
    let mut rec = vec![Vec::new(); 2];
    c.encode(&refs, 2, &mut |r, b| rec[r] = b.to_vec()).unwrap();
    let present = [
        (1usize, refs[1]),
        (3, rec[0].as_slice()),
        (4, rec[1].as_slice()),
    ];
    let mut restored = [None, None, None];
    c.reconstruct(3, 2, 64, &present, &mut |i, b| {
        restored[i] = Some(b.to_vec())
    })
    .unwrap();
    assert_eq!(restored[0].as_deref(), Some(refs[0]));
    assert_eq!(restored[2].as_deref(), Some(refs[2]));
    assert_eq!(CodecId::from_u16(7), None);
    assert_eq!(
        CodecId::from_u16(CodecId::Replica.as_u16()),
        Some(CodecId::Replica)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A rebuilt shard is byte-identical to the lost one, from all other
    /// shards or from any k of them, and combines with the others.
    #[test]
    fn rebuilt_shard_is_identical(
        s in prop_oneof![Just(Strategy::FullReplica), Just(Strategy::ErasureCoded), Just(Strategy::ThresholdSplit)],
        k in 1usize..=6, extra in 1usize..=4, enc in any::<bool>(), len in 0usize..40_000,
        lost in any::<proptest::sample::Index>(), rot in any::<proptest::sample::Index>(),
        threads in 1usize..=2,
    ) {
        let (k, n) = if s == Strategy::FullReplica { (1, 1 + extra) } else { (k, k + extra) };
        let p = params(s, k, n, enc, 1024);
        let data = content(len, len as u64);
        let out = encode(&data, p, 4);
        let lost = lost.index(n);
        let others: Vec<_> = out.shards.iter().filter(|s| s.index() != lost).cloned().collect();
        let dec = Decoder::new().with_threads(threads);
        let rebuilt = dec.rebuild_shard(&others, lost).unwrap();
        prop_assert!(rebuilt.as_bytes() == out.shards[lost].as_bytes());
        prop_assert_eq!(rebuilt.header(), out.shards[lost].header());

        // From exactly k others (rotated choice), and checked against the manifest.
        let r = rot.index(others.len());
        let some: Vec<_> = (0..k).map(|j| others[(r + j) % others.len()].clone()).collect();
        let rebuilt2 = dec.clone().expect(out.manifest.clone()).rebuild_shard(&some, lost).unwrap();
        prop_assert!(rebuilt2.as_bytes() == out.shards[lost].as_bytes());

        // The rebuilt shard plus k - 1 others decode.
        let mut set: Vec<_> = some[..k - 1].to_vec();
        set.push(rebuilt);
        prop_assert!(decoder().decode(&set).unwrap() == data);

        // Too few shards to rebuild.
        if k > 1 {
            let err = dec.rebuild_shard(&some[..k - 1], lost).unwrap_err();
            let is_too_few = matches!(err, CodecError::TooFewShards { .. });
            prop_assert!(is_too_few);
        }
    }
}

#[test]
fn rebuild_edge_cases() {
    let data = content(9000, 1);
    let p = CodecParams::erasure_coded(2, 4).with_stripe_size(1000);
    let out = encode(&data, p, 1);
    assert!(matches!(
        rebuild_shard(&out.shards, 4),
        Err(CodecError::BadParameters(_))
    ));
    // Present but corrupt: rebuild replaces it without using it.
    let mut bytes: Vec<Vec<u8>> = out.shards.iter().map(|s| s.to_bytes()).collect();
    bytes[1][500] ^= 1;
    let mut rebuilt = Vec::new();
    let h = Decoder::new()
        .rebuild_shard_stream(bytes.iter().map(|b| b.as_slice()), 1, &mut rebuilt)
        .unwrap();
    assert_eq!(rebuilt, out.shards[1].as_bytes());
    assert_eq!(h, *out.shards[1].header());
    // Corrupt helpers are skipped.
    bytes[0][700] ^= 1;
    let mut rebuilt = Vec::new();
    Decoder::new()
        .rebuild_shard_stream(bytes.iter().map(|b| b.as_slice()), 1, &mut rebuilt)
        .unwrap();
    assert_eq!(rebuilt, out.shards[1].as_bytes());
    // Against another encoding's manifest: refused.
    let other = encode(&data, p, 2);
    assert!(Decoder::new()
        .expect(other.manifest)
        .rebuild_shard(&out.shards[..3], 3)
        .is_err());
}

#[test]
fn params_display_and_shard_len() {
    let p = CodecParams::erasure_coded(10, 14);
    assert_eq!(
        p.to_string(),
        "erasure_coded 10-of-14, encrypted (stripes of 1048576 B)"
    );
    // 1 GiB in 1 MiB stripes, 10-of-14 encrypted: each shard ~1/10 of it.
    let len = p.shard_len(1 << 30);
    assert!(
        len > (1 << 30) / 10 && len < (1 << 30) / 10 + 1024 * 200,
        "{len}"
    );
    assert_eq!(
        CodecParams::full_replica(3)
            .with_encryption(false)
            .shard_len(0),
        112 + 84
    );
}
