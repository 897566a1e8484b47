//! threshold_split secrecy, and shards of different contents never combining.

mod common;

use std::collections::HashSet;

use blahaj::{Share, Sharks};
use common::*;
use shard_codec::{CodecError, CodecParams, ContentKey, Decoder, Encoder, Strategy};

fn recognizable(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut i = 0u32;
    while v.len() < len {
        v.extend_from_slice(format!("custody secret line {i:06} -- do not leak me. ").as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

fn windows(bytes: &[u8], w: usize) -> HashSet<&[u8]> {
    bytes.windows(w).collect()
}

fn key_share(shard: &[u8]) -> [u8; 33] {
    shard[KEY_SHARE].try_into().unwrap()
}

/// k - 1 shards: decoding fails, no shard contains the key or any 16-byte
/// run of the plaintext, the headers do not expose the plaintext hash, and
/// the k - 1 key shares interpolate to something other than the key.
#[test]
fn fewer_than_k_shards_reveal_nothing_usable() {
    let data = recognizable(30_000);
    let secret = ContentKey::from_bytes(*b"0123456789abcdef0123456789ABCDEF");
    for k in 2..=5 {
        let n = k + 2;
        let p = CodecParams::threshold_split(k, n).with_stripe_size(4096);
        let out = Encoder::new(p)
            .unwrap()
            .with_key(secret.clone())
            .with_seed([k as u8; 32])
            .encode(&data)
            .unwrap();
        assert!(
            out.key.is_none(),
            "threshold_split must not hand out an owner key"
        );
        let plain_hash = *blake3::hash(&data).as_bytes();
        for s in &out.shards {
            let bytes = s.as_bytes();
            let w16 = windows(bytes, 16);
            for start in (0..data.len() - 16).step_by(5) {
                assert!(
                    !w16.contains(&data[start..start + 16]),
                    "plaintext at {start} in shard"
                );
            }
            let w8 = windows(bytes, 8);
            for start in 0..=24 {
                assert!(
                    !w8.contains(&secret.as_bytes()[start..start + 8]),
                    "key bytes in shard"
                );
            }
            assert_ne!(s.header().content_hash, plain_hash);
            assert!(!windows(bytes, 32).contains(&plain_hash[..]));
        }
        // Every window of k - 1 consecutive shards (cyclic).
        for start in 0..n {
            let few: Vec<_> = (0..k - 1)
                .map(|j| out.shards[(start + j) % n].clone())
                .collect();
            match Decoder::new().decode(&few) {
                Err(CodecError::TooFewShards { needed, good, .. }) => {
                    assert_eq!((needed, good), (k, k - 1));
                }
                other => panic!("k-1 shards decoded: {:?}", other.map(|v| v.len())),
            }
            let shares: Vec<Share> = few
                .iter()
                .map(|s| Share::try_from(&key_share(s.as_bytes())[..]).unwrap())
                .collect();
            // blahaj refuses below the threshold ...
            assert!(Sharks(k as u8).recover(&shares).is_err());
            // ... and interpolating them anyway gives a wrong key.
            let guess = Sharks((k - 1) as u8).recover(&shares).unwrap();
            assert_ne!(&guess[..], &secret.as_bytes()[..]);
            // Perfect hiding: for any candidate key there is a k-th share that
            // makes these k - 1 shares open to it.
            let x = (start + k - 1) % n + 1;
            for fake in [[0u8; 32], [0xff; 32], *blake3::hash(&[k as u8]).as_bytes()] {
                let mut pts: Vec<Vec<u8>> = few
                    .iter()
                    .map(|s| {
                        let mut b = key_share(s.as_bytes()).to_vec();
                        b[0] ^= x as u8;
                        b
                    })
                    .collect();
                let mut at_zero = vec![x as u8];
                at_zero.extend_from_slice(&fake);
                pts.push(at_zero);
                let shifted: Vec<Share> = pts
                    .iter()
                    .map(|b| Share::try_from(&b[..]).unwrap())
                    .collect();
                let y = Sharks(k as u8).recover(&shifted).unwrap();
                let mut forged = vec![x as u8];
                forged.extend_from_slice(&y);
                let mut all = shares.clone();
                all.push(Share::try_from(&forged[..]).unwrap());
                assert_eq!(Sharks(k as u8).recover(&all).unwrap(), fake.to_vec());
            }
        }
        // With k shards it opens.
        assert!(Decoder::new().decode(&out.shards[..k]).unwrap() == data);
    }
}

/// Encrypted-at-rest strategies do not leak plaintext either.
#[test]
fn encrypted_at_rest_shards_hold_no_plaintext() {
    let data = recognizable(20_000);
    for p in [
        CodecParams::full_replica(2),
        CodecParams::erasure_coded(3, 5),
    ] {
        let out = encode(&data, p.with_stripe_size(1000), 1);
        assert!(out.key.is_some());
        for s in &out.shards {
            let w = windows(s.as_bytes(), 16);
            for start in (0..data.len() - 16).step_by(7) {
                assert!(!w.contains(&data[start..start + 16]));
            }
        }
        assert!(matches!(
            Decoder::new().decode(&out.shards),
            Err(CodecError::MissingKey)
        ));
        let wrong = Decoder::new().with_key(ContentKey::from_bytes([1; 32]));
        assert!(matches!(
            wrong.decode(&out.shards),
            Err(CodecError::Crypto(_))
        ));
        assert!(decoder().decode(&out.shards).unwrap() == data);
    }
    // Unencrypted content is stored in the clear (systematic code) and its
    // header carries the plain blake3, a public content id.
    let out = encode(
        &data,
        CodecParams::erasure_coded(3, 5).with_encryption(false),
        1,
    );
    assert_eq!(out.manifest.content_hash, *blake3::hash(&data).as_bytes());
}

/// k - 1 shards of one content plus shards of another content (or of
/// another encoding of the same content) never decode.
#[test]
fn shards_of_different_contents_never_combine() {
    for s in Strategy::ALL {
        let (k, n) = if s == Strategy::FullReplica {
            (1, 3)
        } else {
            (3, 5)
        };
        let p = params(s, k, n, true, 500);
        let a = encode(&content(4000, 1), p, 1);
        let b = encode(&content(4000, 2), p, 2);
        let a2 = encode(&content(4000, 1), p, 3); // same content, new encoding
        for other in [&b, &a2] {
            for j in 0..n {
                let mut mix: Vec<_> = a.shards[..k - 1].to_vec();
                mix.push(other.shards[j].clone());
                match decoder().decode(&mix) {
                    Err(CodecError::TooFewShards { needed, .. }) => assert_eq!(needed, k),
                    Ok(v) if k == 1 => {
                        // A single replica of the other content is a valid
                        // decode of *that* content, never of A.
                        assert!(v == content(4000, if std::ptr::eq(other, &b) { 2 } else { 1 }));
                        let expect_a = decoder().expect(a.manifest.clone());
                        assert!(expect_a.decode(&mix).is_err());
                    }
                    other => panic!("{s}: mixed shards gave {:?}", other.map(|v| v.len())),
                }
            }
        }
        // Both complete: ambiguous without a manifest, fine with one.
        let mut both: Vec<_> = a.shards.clone();
        both.extend(b.shards.iter().cloned());
        assert!(matches!(
            decoder().decode(&both),
            Err(CodecError::MismatchedContent(_))
        ));
        let back = decoder().expect(b.manifest.clone()).decode(&both).unwrap();
        assert!(back == content(4000, 2));
    }
}

/// Even a forger who rewrites another content's shard to carry this
/// content's encoding id and re-seals every hash gets an error, not bytes.
#[test]
fn forged_foreign_shard_is_never_combined() {
    for s in Strategy::ALL {
        for enc in [false, true] {
            if s == Strategy::ThresholdSplit && !enc {
                continue;
            }
            let (k, n) = if s == Strategy::FullReplica {
                (1, 2)
            } else {
                (3, 5)
            };
            let p = params(s, k, n, enc, 700);
            let a = encode(&content(5000, 10), p, 1);
            let b = encode(&content(5000, 20), p, 2);
            // B's shard k - 1 (an index A's first k - 1 shards lack), relabelled as A's.
            let mut forged = b.shards[k - 1].to_bytes();
            forged[ENCODE_ID].copy_from_slice(&a.manifest.encode_id);
            reseal(&mut forged);
            let header = shard_codec::verify_shard(&forged).expect("forgery is self-consistent");
            assert_eq!(header.encode_id, a.manifest.encode_id);

            let mut mix: Vec<Vec<u8>> = a.shards[..k - 1].iter().map(|s| s.to_bytes()).collect();
            mix.push(forged);
            let res = decoder().decode_bytes(&mix);
            if k == 1 && !enc {
                // One unencrypted replica is self-certifying: it decodes to B,
                // which is exactly what it holds. Only the manifest can say
                // it is not A.
                assert!(res.unwrap() == content(5000, 20));
            } else {
                let err = res.expect_err("forged combination decoded");
                assert!(
                    matches!(
                        err,
                        CodecError::Crypto(_) | CodecError::MismatchedContent(_)
                    ),
                    "{s} enc={enc}: {err}"
                );
            }
            let err = decoder()
                .expect(a.manifest.clone())
                .decode_bytes(&mix)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    CodecError::MismatchedContent(_) | CodecError::Crypto(_)
                ),
                "{err}"
            );
        }
    }
}
