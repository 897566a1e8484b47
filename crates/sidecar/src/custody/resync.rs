//! Resync: one reconciliation pass bringing this node's store in line with
//! the DHT. Every live assignment of this node gets its shard (obtained if
//! missing), what other decisions outranked is marked retired, and shards
//! kept under a revoked family relationship are let go.
//!
//! Separate because it is the periodic, signal-independent sweep: a lost
//! signal or a failed rebuild only waits for the next pass.

use super::{Custody, CustodyError, ReconcileReport};
use node_registry_integrity::zome_fns::{
    GetAssignmentRecordsForNode, GetRelationships, RetireOutranked,
};
use node_registry_integrity::*;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a custodian leaves a freshly published shard to its publisher
/// before rebuilding it from the other custodians itself: the push usually
/// follows the assignment within seconds, and rebuilding meanwhile fetches
/// and decodes k shards for nothing.
pub const PUBLISH_GRACE: Duration = Duration::from_secs(60);

/// Marks a shard as being uploaded to this node while it lives.
pub struct Receiving {
    set: Arc<Mutex<HashSet<String>>>,
    hash: String,
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.set.lock().unwrap().remove(&self.hash);
    }
}

impl Custody {
    /// Notes that `shard_hash` is being uploaded to this node until the
    /// returned guard is dropped: reconciliation does not rebuild it
    /// meanwhile.
    pub fn receiving(&self, shard_hash: &str) -> Receiving {
        self.receiving
            .lock()
            .unwrap()
            .insert(shard_hash.to_string());
        Receiving {
            set: self.receiving.clone(),
            hash: shard_hash.to_string(),
        }
    }

    /// Whether the publisher may still be pushing this published shard:
    /// an upload of it is under way, or its assignment was written less
    /// than [`PUBLISH_GRACE`] ago (by the author's clock; a record read
    /// without its time counts as old).
    fn publisher_may_still_push(&self, r: &AssignmentRecord) -> bool {
        if r.assignment.decision_round != 0 {
            return false;
        }
        if self
            .receiving
            .lock()
            .unwrap()
            .contains(&r.assignment.shard_hash)
        {
            return true;
        }
        r.assigned_at.is_some_and(|at| {
            let age_micros = crate::clock::unix_micros() - at.as_micros();
            age_micros < PUBLISH_GRACE.as_micros() as i64
        })
    }

    /// Brings the store in line with the DHT: every live assignment of this
    /// node whose shard is missing is obtained. A lost signal only delays a
    /// repair until the next pass.
    pub async fn reconcile(&self) -> Result<ReconcileReport, CustodyError> {
        let mine: Vec<AssignmentRecord> = self
            .agent
            .call_fn::<GetAssignmentRecordsForNode>(self.agent.node_id.clone())
            .await?;
        let mut report = ReconcileReport {
            assigned: mine.len() as u32,
            ..Default::default()
        };
        // What a repair or another node's same-round decision took from
        // this node is marked retired, so its committed custody (what
        // custodian selection reads) stops counting it.
        match self
            .agent
            .write_fn::<RetireOutranked>(self.agent.node_id.clone())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!("marked {n} outranked assignments of this node retired"),
            Err(e) => tracing::warn!("could not mark outranked assignments retired: {e}"),
        }
        // Family custody lasts as long as both people consent: once either
        // revokes, this node takes no more and lets go of what it kept.
        let family_ok: HashSet<holochain_types::prelude::ActionHash> =
            if mine.iter().any(|r| r.assignment.relationship.is_some()) {
                let rels: Vec<RelationshipState> = self
                    .agent
                    .call_fn::<GetRelationships>(self.agent.agent().clone())
                    .await?;
                rels.into_iter()
                    .filter(|r| r.active && r.relationship.auto_custody_enabled)
                    .map(|r| r.relationship_hash)
                    .collect()
            } else {
                HashSet::new()
            };
        for r in &mine {
            if let Some(proof) = &r.assignment.relationship {
                if !family_ok.contains(&proof.relationship) {
                    if self.store.has(&r.assignment.shard_hash) {
                        self.store.remove(&r.assignment.shard_hash)?;
                        report.dropped += 1;
                        tracing::info!(
                            "dropped shard {} of {}: the family relationship was revoked",
                            r.assignment.shard_index,
                            r.assignment.content_id
                        );
                    }
                    continue;
                }
            }
            if self.store.has(&r.assignment.shard_hash) {
                continue;
            }
            if self.publisher_may_still_push(r) {
                continue;
            }
            match self.obtain(r).await {
                Ok(true) => report.obtained += 1,
                Ok(false) => {}
                Err(e) => report.failed.push(format!(
                    "{}#{}: {e}",
                    r.assignment.content_id, r.assignment.shard_index
                )),
            }
        }
        if let Ok(held) = self.store.list() {
            self.agent
                .metrics
                .set_held(held.len() as u64, self.store.used_bytes());
        }
        // What cut transfers left and nobody resumed goes after a day.
        if let Err(e) = tokio::task::block_in_place(|| {
            self.store
                .sweep_partials(crate::custody::store::PARTIAL_KEEP)
        }) {
            tracing::warn!("sweeping partial shards: {e}");
        }
        Ok(report)
    }
}
