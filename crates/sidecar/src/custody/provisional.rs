//! Provisional custody: shards a publisher sends while their assignments
//! still travel the DHT.
//!
//! A custodian takes bytes only for an assignment it has seen, and that
//! trip (committed, published, validated, indexed) costs a publish 1 to 5 s
//! whatever its size. So a publisher sends the assignment itself with the
//! upload ([`H_ASSIGNMENT_ENTRY`](crate::transfer::H_ASSIGNMENT_ENTRY)); the
//! custodian checks it hashes to the assignment the signed request names,
//! names this node and this shard, and is the sender's own first placement,
//! and then holds the shard *for now*: verified and fsynced like any other,
//! but let go unless the assignment turns up on its view of the DHT within
//! `custody.provisional_keep_secs`.
//!
//! Anyone can sign an assignment nobody will ever see, so what is held that
//! way is bounded: per sender (`custody.provisional_per_sender_mb`) and in
//! all (`custody.provisional_total_mb`), counting uploads under way, and
//! only senders this node sees registered may send (503 otherwise: the
//! registration may still be on its way). Past a bound the upload is answered 503
//! and the publisher waits for the assignment to arrive, as before: an
//! attacker filling the allowance slows publishing down to the DHT's pace,
//! and its bytes go after the keep time.
//!
//! Separate from `policy` because it is a second way in, with its own
//! bookkeeping, and from `resync` because it runs on its own short period.

use super::store::{Provisional, ShardMeta};
use super::{Custody, CustodyError};
use crate::transfer::{TransferAuth, TransferError};
use holochain_types::prelude::AgentPubKey;
use node_registry_integrity::zome_fns::{GetAssignmentRecordsForNode, GetNodeOfAgent};
use node_registry_integrity::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How often held-for-now shards are checked against the DHT (only while
/// there are any).
pub const CONFIRM_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

const MB: u64 = 1_000_000;

/// Bytes of uploads under way that will be held for now, by sender: counted
/// against the allowances before they are written.
pub type Reserved = Arc<Mutex<HashMap<String, u64>>>;

/// An upload's share of its sender's allowance while it is under way;
/// given back when dropped (the shard is then in the store, or not).
pub struct Reservation {
    reserved: Reserved,
    /// Why the shard is held for now, as the store records it.
    pub provisional: Provisional,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut r = self.reserved.lock().unwrap();
        if let Some(n) = r.get_mut(&self.provisional.sender) {
            *n = n.saturating_sub(self.bytes);
            if *n == 0 {
                r.remove(&self.provisional.sender);
            }
        }
    }
}

/// What one confirmation pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfirmReport {
    /// Shards whose assignments are now seen: held for good.
    pub confirmed: u32,
    /// Shards whose assignments never came: let go.
    pub dropped: u32,
    /// Shards still waiting.
    pub waiting: u32,
}

impl Custody {
    /// Authorizes an upload of `shard_hash` under `early`, an assignment
    /// this node does not see yet, sent by `sender` (already authenticated
    /// by `auth`'s signature): see the module's documentation.
    pub(super) async fn authorize_early(
        &self,
        sender: &AgentPubKey,
        auth: &TransferAuth,
        shard_hash: &str,
        early: &CustodianAssignment,
    ) -> Result<(ShardMeta, u64, Reservation), TransferError> {
        let named = super::publish::assignment_entry_hash(early)
            .map_err(|e| TransferError::BadRequest(e.to_string()))?;
        if named.to_string() != auth.assignment {
            return Err(TransferError::BadRequest(format!(
                "{} does not hash to the assignment the request names",
                crate::transfer::H_ASSIGNMENT_ENTRY
            )));
        }
        if early.custodian_node_id != self.agent.node_id || early.shard_hash != shard_hash {
            return Err(TransferError::Forbidden(
                "that assignment is not for this shard on this node".into(),
            ));
        }
        if early.owner_agent != *sender || early.decision_round != 0 {
            return Err(TransferError::Forbidden(
                "only a content's owner sends a shard ahead of its assignment, for its first placement".into(),
            ));
        }
        let registered: Option<RegisteredNode> = self
            .agent
            .call_fn::<GetNodeOfAgent>(sender.clone())
            .await
            .map_err(|e| TransferError::Upstream(e.to_string()))?;
        if registered.is_none() {
            // Its registration may still be on its way here (a young
            // network): the sender waits for the assignment instead.
            return Err(TransferError::NotYet(
                "this node does not see the sender registered; only a registered node sends a shard ahead of its assignment".into(),
            ));
        }
        let size = early.shard_size_bytes;
        let reservation = self.reserve_provisional(&sender.to_string(), size)?;
        self.check_room(size)?;
        Ok((
            ShardMeta {
                content_id: early.content_id.clone(),
                shard_index: early.shard_index,
                assignment: auth.assignment.clone(),
            },
            size,
            reservation,
        ))
    }

    /// Counts `bytes` from `sender` against the allowances, or says why
    /// not (503: the sender may still wait for the assignment instead).
    fn reserve_provisional(&self, sender: &str, bytes: u64) -> Result<Reservation, TransferError> {
        let cfg = &self.agent.config().custody;
        let per_sender = cfg.provisional_per_sender_mb.saturating_mul(MB);
        let total = cfg.provisional_total_mb.saturating_mul(MB);
        let held = self
            .store
            .provisional()
            .map_err(|e| TransferError::Upstream(e.to_string()))?;
        let mut reserved = self.provisional_reserved.lock().unwrap();
        let of_sender = held
            .iter()
            .filter(|p| p.provisional.sender == sender)
            .map(|p| p.size)
            .sum::<u64>()
            + reserved.get(sender).copied().unwrap_or(0);
        let all = held.iter().map(|p| p.size).sum::<u64>() + reserved.values().sum::<u64>();
        let full = |whose: &str, has: u64, limit: u64| {
            TransferError::NotYet(format!(
                "{whose} {has} bytes here ahead of assignments this node has not seen (at most {limit}); send this shard once its assignment is seen"
            ))
        };
        if of_sender.saturating_add(bytes) > per_sender {
            return Err(full("this sender has", of_sender, per_sender));
        }
        if all.saturating_add(bytes) > total {
            return Err(full("senders have", all, total));
        }
        *reserved.entry(sender.to_string()).or_default() += bytes;
        Ok(Reservation {
            reserved: self.provisional_reserved.clone(),
            provisional: Provisional {
                sender: sender.to_string(),
                since: crate::clock::unix_secs(),
            },
            bytes,
        })
    }

    /// Holds for good every held-for-now shard whose assignment this node
    /// now sees live (under that assignment), and lets go of those that
    /// waited longer than `custody.provisional_keep_secs`. Reads the DHT
    /// only when there are such shards.
    pub async fn confirm_provisional(&self) -> Result<ConfirmReport, CustodyError> {
        let waiting = tokio::task::block_in_place(|| self.store.provisional())?;
        let mut report = ConfirmReport::default();
        if waiting.is_empty() {
            return Ok(report);
        }
        let mine: Vec<AssignmentRecord> = self
            .agent
            .call_fn::<GetAssignmentRecordsForNode>(self.agent.node_id.clone())
            .await?;
        let keep = self.agent.config().custody.provisional_keep_secs as i64;
        let now = crate::clock::unix_secs();
        for p in waiting {
            if let Some(r) = mine
                .iter()
                .find(|r| r.assignment.shard_hash == p.shard_hash)
            {
                self.store
                    .confirm(&p.shard_hash, &r.entry_hash.to_string())?;
                report.confirmed += 1;
            } else if now - p.provisional.since >= keep {
                self.store.remove(&p.shard_hash)?;
                report.dropped += 1;
                tracing::info!(
                    "let go of shard {} from {}: its assignment did not arrive within {keep} s",
                    p.shard_hash,
                    p.provisional.sender
                );
            } else {
                report.waiting += 1;
            }
        }
        Ok(report)
    }
}
