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

impl Custody {
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
        Ok(report)
    }
}
