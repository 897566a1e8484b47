//! Repair: obtaining (rebuilding) a shard this node was assigned, detecting
//! failed nodes and re-homing their shards, and acting on the DNA's signals
//! (a `ReplicateContent` hint is checked against the DHT before any work).
//!
//! Separate because it is the custodian's reaction to loss: each entry point
//! rebuilds or re-homes shards, and the rebuilds in flight are what the
//! dashboard shows.

use super::{Custody, CustodyError, Progress};
use crate::custody::store::ShardMeta;
use holochain_types::prelude::EntryHash;
use node_registry_integrity::zome_fns::{
    DetectFailedNodes, GetAssignment, GetAssignmentRecordsForNode, GetShardHolders, ProbeNode,
};
use node_registry_integrity::*;
use shard_codec::Decoder;
use std::sync::Arc;

/// Replications a signal may start at once; a hint beyond them is left to
/// reconciliation.
pub(super) const SIGNALLED_REPLICATIONS: usize = 2;
/// `DisasterRecoveryFailed` signals kept for the status and tests.
pub(super) const REPAIR_FAILURES_KEPT: usize = 32;

impl Custody {
    /// Obtains the shard of one of this node's assignments, if not held:
    /// fetches enough other shards from the live holders the DHT names and
    /// rebuilds exactly this shard (one copy for `full_replica`, `k` shards
    /// otherwise), then stores it if it hashes to what the assignment
    /// records.
    pub async fn obtain(&self, record: &AssignmentRecord) -> Result<bool, CustodyError> {
        let a = &record.assignment;
        if self.store.has(&a.shard_hash) {
            return Ok(false);
        }
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            if in_flight.contains_key(&a.shard_hash) {
                return Ok(false);
            }
            in_flight.insert(
                a.shard_hash.clone(),
                crate::http::network_view::Rebuild::of(a),
            );
        }
        let metrics = &self.agent.metrics;
        let holders = match self.holders_for_rebuild(a).await {
            Ok(h) => h,
            Err(e) => {
                self.in_flight.lock().unwrap().remove(&a.shard_hash);
                return match e {
                    CustodyError::Deferred(why) => {
                        tracing::debug!("shard {} of {}: {why}", a.shard_index, a.content_id);
                        Ok(false)
                    }
                    e => Err(e),
                };
            }
        };
        metrics.repair("started", 1);
        let result = self.obtain_inner(record, holders).await;
        self.in_flight.lock().unwrap().remove(&a.shard_hash);
        metrics.repair(if result.is_ok() { "done" } else { "failed" }, 1);
        result.map(|()| true)
    }

    /// The shards this node is rebuilding now, with how many of the shards
    /// each needs it has fetched (for the dashboard's progress bars).
    pub fn rebuilds(&self) -> Vec<crate::http::network_view::Rebuild> {
        self.in_flight.lock().unwrap().values().cloned().collect()
    }

    /// The other holders a rebuild of `a` would fetch from, unless it can
    /// wait: outside the node's off-peak hours only a content down to its
    /// last k shards (no spare holder left) is rebuilt at once.
    async fn holders_for_rebuild(
        &self,
        a: &CustodianAssignment,
    ) -> Result<Vec<ShardHolder>, CustodyError> {
        let holders: Vec<ShardHolder> = self
            .agent
            .call_fn::<GetShardHolders>(a.content_id.clone())
            .await?;
        let others: Vec<ShardHolder> = holders
            .into_iter()
            .filter(|h| h.node_id != self.agent.node_id && h.shard_hash != a.shard_hash)
            .collect();
        let needed = a.shards_needed() as usize;
        let p = self.agent.participation();
        let off_peak =
            crate::transfer::bandwidth::off_peak_now(p.off_peak_start_hour, p.off_peak_end_hour);
        if !registry_core::bandwidth::rebuild_now(others.len(), needed, off_peak) {
            return Err(CustodyError::Deferred(format!(
                "{} other holders, {needed} needed; off-peak hours are {}:00-{}:00",
                others.len(),
                p.off_peak_start_hour,
                p.off_peak_end_hour
            )));
        }
        Ok(others)
    }

    async fn obtain_inner(
        &self,
        record: &AssignmentRecord,
        others: Vec<ShardHolder>,
    ) -> Result<(), CustodyError> {
        let a = &record.assignment;
        let needed = a.shards_needed() as usize;
        let fetched = |p: Progress| {
            if let Some(r) = self.in_flight.lock().unwrap().get_mut(&a.shard_hash) {
                r.fetched = p.done as u32;
            }
        };
        let (files, from) = self
            .fetch_some(&others, needed, record, None, true, &fetched)
            .await?;
        let meta = ShardMeta {
            content_id: a.content_id.clone(),
            shard_index: a.shard_index,
            assignment: record.entry_hash.to_string(),
        };
        tokio::task::block_in_place(|| -> Result<(), CustodyError> {
            let readers = files
                .iter()
                .map(|f| std::fs::File::open(&f.0).map(std::io::BufReader::new))
                .collect::<std::io::Result<Vec<_>>>()?;
            let mut writer = self.store.writer(&a.shard_hash, meta)?;
            Decoder::new().rebuild_shard_stream(readers, a.shard_index as usize, &mut writer)?;
            writer.finish()?;
            Ok(())
        })?;
        tracing::info!(
            "obtained shard {} of {} (rebuilt from {})",
            a.shard_index,
            a.content_id,
            from.join(", ")
        );
        Ok(())
    }

    /// Detects failed nodes (silent past window + grace) and re-homes their
    /// shards. Repeated runs are harmless.
    pub async fn detect_and_repair(
        &self,
        policy: DetectionInput,
    ) -> Result<Vec<RepairReport>, CustodyError> {
        let down: Vec<NodeLiveness> = self
            .agent
            .read_fn::<DetectFailedNodes>(Some(policy))
            .await?;
        let mut out = Vec::new();
        for node in down {
            if !matches!(
                node.liveness,
                registry_core::heartbeat::Liveness::Failed { .. }
            ) {
                continue;
            }
            if node.node_id == self.agent.node_id {
                continue;
            }
            // A node already repaired away (or that never held anything)
            // needs neither a probe nor a repair: a dead node stays "failed"
            // in every later detection round.
            let held: Vec<AssignmentRecord> = self
                .agent
                .read_fn::<GetAssignmentRecordsForNode>(node.node_id.clone())
                .await?;
            if held.is_empty() {
                continue;
            }
            // Silence in this node's view of the DHT may only be lag (it
            // just joined, or gossip is behind): ask the node itself first.
            // If it cannot even be probed, this view is too incomplete to
            // act on; other detectors, or a later round, will.
            let window = std::time::Duration::from_secs(
                policy
                    .failure_window_secs
                    .unwrap_or(registry_core::heartbeat::DEFAULT_FAILURE_WINDOW_SECS)
                    .max(0) as u64,
            );
            let recently_answered = self
                .answered
                .lock()
                .unwrap()
                .get(&node.node_id)
                .is_some_and(|t| t.elapsed() < window);
            if recently_answered {
                continue;
            }
            match self.agent.read_fn::<ProbeNode>(node.node_id.clone()).await {
                Ok(p) if p.answered => {
                    tracing::info!(
                        "{} looks silent here but answered a probe in {} ms: not repairing",
                        node.node_id,
                        p.response_time_ms
                    );
                    self.answered
                        .lock()
                        .unwrap()
                        .insert(node.node_id.clone(), std::time::Instant::now());
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        "not repairing {} yet: could not probe it: {e}",
                        node.node_id
                    );
                    continue;
                }
            }
            self.agent.metrics.failures_detected.inc();
            let report = self.agent.recover(&node.node_id).await?;
            let metrics = &self.agent.metrics;
            metrics.repair("queued", report.replacements.len() as u64);
            metrics.repair("failed", report.unplaced.len() as u64);
            if !report.replacements.is_empty() || !report.unplaced.is_empty() {
                tracing::info!(
                    "recovery for {}: {} shards re-homed, {} unplaced",
                    node.node_id,
                    report.replacements.len(),
                    report.unplaced.len()
                );
            }
            out.push(report);
        }
        Ok(out)
    }

    /// Takes in a signal from the DNA, without waiting on any work it
    /// starts (the signal loop also carries liveness beats).
    ///
    /// A `ReplicateContent` is a hint only: anyone can send one. Only its
    /// assignment's entry hash is used, and only if this node's view of the
    /// DHT holds that assignment, live, for this node; the holders to fetch
    /// from are read from the DHT too, never taken from the signal. At most
    /// [`SIGNALLED_REPLICATIONS`] run at once; a hint beyond them is left to
    /// reconciliation, which obtains every live assignment of this node.
    pub fn on_signal(self: &Arc<Self>, signal: RegistrySignal) {
        match signal {
            RegistrySignal::ReplicateContent {
                assignment,
                to_custodian,
                ..
            } => {
                if to_custodian != self.agent.node_id {
                    // A repair this node ran, for another custodian.
                    return;
                }
                let Ok(permit) = self.replicating.clone().try_acquire_owned() else {
                    tracing::debug!(
                        "replication hint for {} left to reconciliation: busy",
                        assignment.entry_hash
                    );
                    return;
                };
                let me = self.clone();
                let entry_hash = assignment.entry_hash;
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = me.replicate(&entry_hash).await {
                        tracing::warn!("replicating {entry_hash}: {e}");
                    }
                });
            }
            RegistrySignal::DisasterRecoveryFailed {
                ref content_id,
                shard_index,
                ref reason,
                ..
            } => {
                tracing::warn!(
                    "disaster recovery could not re-home {content_id}#{shard_index}: {reason}"
                );
                let mut kept = self.repair_failures.lock().unwrap();
                if kept.len() >= REPAIR_FAILURES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(signal);
            }
            RegistrySignal::Beat { .. } => {}
        }
    }

    /// Obtains the shard of assignment `entry_hash` if, and only if, this
    /// node's view of the DHT has it live for this node (what a
    /// `ReplicateContent` hint names). A hint the DHT does not back is
    /// counted (`elohim_signals_refused`) and refused.
    pub async fn replicate(&self, entry_hash: &EntryHash) -> Result<bool, CustodyError> {
        let found: Option<(CustodianAssignment, AssignmentStanding)> = self
            .agent
            .call_fn::<GetAssignment>(entry_hash.clone())
            .await?;
        let refused = |why: String| {
            self.agent.metrics.signals_refused.inc();
            Err(CustodyError::Hint(why))
        };
        match found {
            Some((a, AssignmentStanding::Live)) if a.custodian_node_id == self.agent.node_id => {
                self.obtain(&AssignmentRecord {
                    assignment: a,
                    entry_hash: entry_hash.clone(),
                    assigned_at: None,
                })
                .await
            }
            Some((a, AssignmentStanding::Live)) => refused(format!(
                "the assignment is {}'s, not this node's",
                a.custodian_node_id
            )),
            Some((_, AssignmentStanding::Retired)) => {
                refused("the assignment was superseded".into())
            }
            Some((_, AssignmentStanding::NotYetIndexed)) => refused(
                "the assignment is not in its content's index here yet (reconciliation will \
                 obtain it once it is)"
                    .into(),
            ),
            None => refused("no such assignment on this node's view of the DHT".into()),
        }
    }
}
