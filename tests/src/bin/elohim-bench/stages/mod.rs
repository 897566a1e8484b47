//! The measured stages, one file each, run by `main` in this order: the
//! registry (custody load runs on its network, after it), chain age, custody
//! held, age, and custody. Each adds its figures to the
//! [`Report`](crate::report::Report) and writes it as it goes, so a long run
//! that is stopped keeps what it found.

pub mod age;
pub mod chain_age;
pub mod custody;
pub mod custody_held;
pub mod custody_load;
pub mod registry;
pub mod throughput;

use elohim_tests::*;
use holochain::prelude::*;
use node_registry_integrity::zome_fns::AssignCustodian;
use node_registry_integrity::*;

use crate::measure::retrying;

/// `len` incompressible bytes, the same for the same seed.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Has sidecar `owner` publish the file at `path` as public content with
/// `strategy` k-of-n, reporting progress to `progress`; panics naming `what`.
pub async fn publish_public(
    net: &elohim_tests::sidecars::SidecarNet,
    owner: usize,
    path: &std::path::Path,
    (strategy, k, n): (&str, u32, u32),
    what: &str,
    progress: elohim_sidecar::custody::ProgressFn<'_>,
) -> elohim_sidecar::custody::PublishReport {
    net.node(owner)
        .custody
        .publish(
            elohim_sidecar::custody::PublishRequest {
                path: path.to_path_buf(),
                strategy: Some(strategy.to_string()),
                k: Some(k),
                n: Some(n),
                reach: Some("public".into()),
                ..Default::default()
            },
            progress,
        )
        .await
        .unwrap_or_else(|e| panic!("publishing {what}: {e}"))
}

/// Has `publisher` place a 1 MiB one-shard content of its own on
/// `custodian`, retrying passing faults.
pub async fn place_mib(
    net: &Network,
    publisher: usize,
    content_id: &str,
    custodian: &NodeRegistration,
    custodian_hash: &ActionHash,
) {
    let mut x = assignment(
        net.peers[publisher].agent(),
        content_id,
        custodian,
        custodian_hash.clone(),
    );
    x.content_size_bytes = 1 << 20;
    x.shard_size_bytes = 1 << 20;
    retrying("assigning", || {
        net.try_call_fn::<AssignCustodian>(publisher, x.clone())
    })
    .await
    .unwrap_or_else(|e| panic!("assigning {content_id}: {e}"));
}
