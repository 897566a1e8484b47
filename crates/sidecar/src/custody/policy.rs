//! Policy: what this node, as a custodian, accepts and serves. Incoming
//! shards must be signed, fresh, for a live assignment of this node and fit
//! its cap and disk; downloads go to the owner, to a custodian placed by the
//! owner or repairing a node judged failed, or to a person's new node once
//! their family verified the recovery and the lost node is gone.
//!
//! Separate because it answers other nodes' requests rather than making
//! this node's own: every check the HTTP transfer endpoints make before
//! moving a byte is here, and none of it moves data itself.

use super::Custody;
use crate::clock::unix_micros;
use crate::custody::store::{ShardMeta, ShardRecord};
use crate::registry::conductor::ConductorError;
use crate::transfer::{TransferAuth, TransferError};
use holochain_types::prelude::EntryHash;
use node_registry_integrity::zome_fns::{
    DetectFailedNodes, GetAssignment, GetFamilyCustodians, GetNodeOfAgent, GetRecoveryStatus,
    GetShardHolders,
};
use node_registry_integrity::*;
use std::collections::HashSet;
use thiserror::Error;

/// How long one judgement of which nodes are failed is reused when
/// authorizing transfers (a rebuild asks several holders at once).
const FAILED_VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a lost node's sidecar has to answer `/ping` before it counts
/// as silent.
const LOST_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a custodian keeps an upload waiting for its assignment to
/// reach it through the DHT before answering "try again": the shard is
/// usually pushed a second or two after the assignment is written, and a
/// sender told to retry would back off past the moment it arrives.
pub const ASSIGNMENT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
/// How often a waiting upload looks for its assignment again.
const ASSIGNMENT_POLL: std::time::Duration = std::time::Duration::from_millis(150);
/// Uploads that may wait for their assignments at once; beyond that they
/// are answered "try again" at once (a stranger's signed requests for
/// assignments that never come hold no more than these).
pub const ASSIGNMENT_WAITERS: usize = 16;

/// What an authorized upload may write.
pub struct PutGrant {
    /// What the shard is held for.
    pub meta: ShardMeta,
    /// Its size as the assignment records it: no more is taken.
    pub shard_size: u64,
    /// Set when the shard is held only for now (its assignment not seen).
    pub provisional: Option<super::provisional::Reservation>,
}

/// Refuses a transfer under an assignment that is not live: a retired one
/// for good (403), one not yet in its content's index for now (503).
fn live(standing: AssignmentStanding) -> Result<(), TransferError> {
    match standing {
        AssignmentStanding::Live => Ok(()),
        AssignmentStanding::Retired => Err(TransferError::Forbidden(
            "that assignment is retired".into(),
        )),
        AssignmentStanding::NotYetIndexed => Err(TransferError::NotYet(NOT_YET_INDEXED.into())),
    }
}

/// Why a transfer naming an assignment not yet in its content's index is
/// answered "try again".
const NOT_YET_INDEXED: &str = "this node does not see that assignment in its content's index yet";

impl Custody {
    /// Whether a shard of `shard_size` bytes still fits: under this node's
    /// custody cap (what it declared) with what it holds, and on its disk.
    pub fn check_room(&self, shard_size: u64) -> Result<(), TransferError> {
        let cap = (self.agent.registration().max_custody_gb * 1e9) as u64;
        let free = crate::node::capacity::disk_space(self.store.root()).map(|(free, _)| free);
        room_for(shard_size, self.store.used_bytes(), cap, free)
    }

    /// Authorizes an incoming shard: a fresh signed request, for a live
    /// assignment of this node to this very shard, from the content's owner
    /// or one of its custodians, that fits (see [`Custody::check_room`]).
    /// An assignment this node does not see yet is taken on the sender's
    /// word when the request carries it (`early`), and the shard is then
    /// held only for now (see `custody::provisional`). Returns the shard's
    /// metadata, its size as the assignment records it, and for a shard
    /// held for now, its share of the allowance.
    pub async fn authorize_put(
        &self,
        auth: &TransferAuth,
        shard_hash: &str,
        early: Option<&CustodianAssignment>,
    ) -> Result<PutGrant, TransferError> {
        let agent = self.authenticate(auth, "PUT", shard_hash)?;
        let (a, standing) = match (self.assignment(&auth.assignment).await, early) {
            (
                Err(TransferError::NotYet(_)) | Ok((_, AssignmentStanding::NotYetIndexed)),
                Some(early),
            ) => {
                let (meta, shard_size, reservation) = self
                    .authorize_early(&agent, auth, shard_hash, early)
                    .await?;
                return Ok(PutGrant {
                    meta,
                    shard_size,
                    provisional: Some(reservation),
                });
            }
            (found, _) => found?,
        };
        live(standing)?;
        if a.custodian_node_id != self.agent.node_id {
            return Err(TransferError::Forbidden(format!(
                "assignment is for {}, not this node",
                a.custodian_node_id
            )));
        }
        if a.shard_hash != shard_hash {
            return Err(TransferError::Forbidden(
                "assignment is for another shard".into(),
            ));
        }
        if agent != a.owner_agent {
            let holders: Vec<ShardHolder> = self
                .agent
                .call_fn::<GetShardHolders>(a.content_id.clone())
                .await
                .map_err(|e| TransferError::Upstream(e.to_string()))?;
            if !holders.iter().any(|h| h.agent == agent) {
                return Err(TransferError::Forbidden(
                    "sender is neither the content's owner nor one of its custodians".into(),
                ));
            }
        }
        self.check_room(a.shard_size_bytes)?;
        Ok(PutGrant {
            meta: ShardMeta {
                content_id: a.content_id,
                shard_index: a.shard_index,
                assignment: auth.assignment.clone(),
            },
            shard_size: a.shard_size_bytes,
            provisional: None,
        })
    }

    /// Whether this node would take `shard_hash` under `assignment` now:
    /// the assignment is live, names this node and this shard, and the shard
    /// fits. Asked by a publisher before it sends any bytes, and answered
    /// the moment the assignment arrives (waiting up to
    /// [`ASSIGNMENT_WAIT`]), so no body is sent to be refused and no retry
    /// backs off past the arrival. Reveals only what the DHT already says;
    /// who may send is still checked on the upload itself. A shard already
    /// held under that very assignment (held for now, before it arrives:
    /// asked by a publish run again) is answered at once.
    pub async fn ready_for(&self, shard_hash: &str, assignment: &str) -> Result<(), TransferError> {
        crate::custody::store::check_hash(shard_hash)
            .map_err(|e| TransferError::BadRequest(e.to_string()))?;
        // An index that cannot be read answers as if nothing were held:
        // the assignment is then checked as usual.
        let held_under = self.store.record(shard_hash).ok().flatten();
        if held_under.is_some_and(|r| r.assignment == assignment) && self.store.has(shard_hash) {
            return Ok(());
        }
        let (a, standing) = self.assignment_when_seen(assignment).await?;
        live(standing)?;
        if a.custodian_node_id != self.agent.node_id || a.shard_hash != shard_hash {
            return Err(TransferError::Forbidden(
                "that assignment is not for this shard on this node".into(),
            ));
        }
        if self.store.has(shard_hash) {
            return Ok(());
        }
        self.check_room(a.shard_size_bytes)
    }

    /// Checks a request's signature, address and freshness, and that it is
    /// the first use of its nonce (a replay is refused, 409).
    fn authenticate(
        &self,
        auth: &TransferAuth,
        method: &str,
        shard_hash: &str,
    ) -> Result<holochain_types::prelude::AgentPubKey, TransferError> {
        let now = unix_micros();
        let agent = auth.verify(method, shard_hash, &self.agent.node_id, now)?;
        self.seen
            .first_use(&auth.agent, &auth.nonce, auth.time_micros, now)?;
        Ok(agent)
    }

    /// The nodes this node's view of the DHT judges failed now (under its
    /// failure window and grace), read at most once per
    /// [`FAILED_VIEW_TTL`].
    async fn failed_nodes(&self) -> Result<HashSet<String>, ConductorError> {
        let mut view = self.failed_view.lock().await;
        if let Some((at, failed)) = &*view {
            if at.elapsed() < FAILED_VIEW_TTL {
                return Ok(failed.clone());
            }
        }
        let cfg = &self.agent.config().custody;
        let down: Vec<NodeLiveness> = self
            .agent
            .read_fn::<DetectFailedNodes>(Some(DetectionInput {
                failure_window_secs: Some(cfg.failure_window_secs),
                grace_secs: Some(cfg.grace_secs),
            }))
            .await?;
        let failed: HashSet<String> = down
            .into_iter()
            .filter(|n| {
                matches!(
                    n.liveness,
                    registry_core::heartbeat::Liveness::Failed { .. }
                )
            })
            .map(|n| n.node_id)
            .collect();
        *view = Some((std::time::Instant::now(), failed.clone()));
        Ok(failed)
    }

    /// Whether the node of `lost_agent` is gone now: judged failed by this
    /// node's view of the DHT, and its sidecar does not answer `/ping`. A
    /// person's content is served to a recovering node, and approved for
    /// it, only then. `Err` says why the node counts as alive.
    pub async fn judge_lost_agent(
        &self,
        lost_agent: &holochain_types::prelude::AgentPubKey,
    ) -> Result<(), LostNodeAlive> {
        let upstream = |e: ConductorError| LostNodeAlive::Unknown(e.to_string());
        let node: Option<RegisteredNode> = self
            .agent
            .call_fn::<GetNodeOfAgent>(lost_agent.clone())
            .await
            .map_err(upstream)?;
        let Some(node) = node else {
            // No node was ever registered for that agent: none can be alive.
            return Ok(());
        };
        let id = &node.registration.node_id;
        if !self.failed_nodes().await.map_err(upstream)?.contains(id) {
            return Err(LostNodeAlive::NotFailed(id.clone()));
        }
        if let Some(ep) = &node.registration.endpoint {
            let url = format!("{}/ping", ep.trim_end_matches('/'));
            let answered = matches!(
                tokio::time::timeout(LOST_PING_TIMEOUT, self.http.get(url).send()).await,
                Ok(Ok(r)) if r.status().is_success()
            );
            if answered {
                return Err(LostNodeAlive::Answers(id.clone()));
            }
        }
        Ok(())
    }

    /// Authorizes a shard download. This node serves the shard it holds
    /// under its assignment `held`:
    ///
    /// - to the owner of `held`, while `held` is live;
    /// - to the custodian of the live assignment the request names, of the
    ///   same content (id, hash and owner as `held`), if that assignment is
    ///   round 0 (the owner placed it), or replaces one whose custodian this
    ///   node judges failed now (a repair; a repair of a live node moves no
    ///   data to the repairer);
    /// - to a person's new node, once their family verified the recovery,
    ///   it names every consenting family custodian the lost person has now,
    ///   and the lost node is gone (see [`Custody::judge_lost_agent`]).
    pub async fn authorize_get(
        &self,
        auth: &TransferAuth,
        shard_hash: &str,
        recovery: Option<&str>,
    ) -> Result<ShardRecord, TransferError> {
        let agent = self.authenticate(auth, "GET", shard_hash)?;
        let held = self
            .store
            .record(shard_hash)
            .map_err(|e| TransferError::Upstream(e.to_string()))?
            .ok_or_else(|| TransferError::NotFound(format!("shard {shard_hash}")))?;
        // A shard held for now (its assignment not seen yet) goes back only
        // to the one who sent it: it tells them nothing they lacked.
        let early = self
            .store
            .provisional_of(shard_hash)
            .map_err(|e| TransferError::Upstream(e.to_string()))?;
        if let Some(p) = early {
            if p.sender == agent.to_string() && recovery.is_none() {
                return Ok(held);
            }
        }
        let (h, held_standing) = self.assignment(&held.assignment).await?;
        if agent == h.owner_agent {
            return match held_standing {
                AssignmentStanding::Live => Ok(held),
                AssignmentStanding::NotYetIndexed => {
                    Err(TransferError::NotYet(NOT_YET_INDEXED.into()))
                }
                AssignmentStanding::Retired => Err(TransferError::Forbidden(
                    "this node no longer keeps that shard for its owner (its assignment was \
                     superseded)"
                        .into(),
                )),
            };
        }
        // A person's new node, once their family approved the recovery.
        if let Some(request) = recovery {
            return self
                .authorize_recovery(request, &agent, &h)
                .await
                .map(|()| held);
        }
        let (a, standing) = self.assignment(&auth.assignment).await?;
        if a.content_id != h.content_id
            || a.content_hash != h.content_hash
            || a.owner_agent != h.owner_agent
        {
            return Err(TransferError::Forbidden(
                "assignment is for another content".into(),
            ));
        }
        if a.custodian_node_id != auth.node_id {
            return Err(TransferError::Forbidden(
                "requester is neither the owner nor the custodian of the assignment it names"
                    .into(),
            ));
        }
        match standing {
            AssignmentStanding::Live => {}
            AssignmentStanding::NotYetIndexed => {
                return Err(TransferError::NotYet(NOT_YET_INDEXED.into()))
            }
            AssignmentStanding::Retired => {
                return Err(TransferError::Forbidden(
                    "the assignment the requester names was superseded".into(),
                ))
            }
        }
        let Some(replaced) = &a.replaces else {
            if a.decision_round == 0 {
                return Ok(held);
            }
            return Err(TransferError::Forbidden(
                "a later-round assignment must name what it replaces".into(),
            ));
        };
        let (old, _) = self.assignment(&replaced.to_string()).await?;
        let failed = self
            .failed_nodes()
            .await
            .map_err(|e| TransferError::Upstream(e.to_string()))?;
        if failed.contains(&old.custodian_node_id) {
            Ok(held)
        } else {
            Err(TransferError::Forbidden(format!(
                "the requester's assignment replaces {}, which this node does not judge failed: \
                 a repair of a live custodian gets no data",
                old.custodian_node_id
            )))
        }
    }

    /// Checks a recovery request before serving `held`'s owner's shard to
    /// `agent`: verified by the family, for this requester and owner,
    /// naming every consenting family custodian the owner has now, and the
    /// owner's node gone (409 naming the reason otherwise).
    async fn authorize_recovery(
        &self,
        request: &str,
        agent: &holochain_types::prelude::AgentPubKey,
        held: &CustodianAssignment,
    ) -> Result<(), TransferError> {
        let hash = holochain_types::prelude::ActionHash::try_from(request)
            .map_err(|_| TransferError::BadRequest("recovery is not an action hash".into()))?;
        let status: RecoveryStatus = self
            .agent
            .call_fn::<GetRecoveryStatus>(hash)
            .await
            .map_err(|e| TransferError::Forbidden(format!("recovery: {e}")))?;
        if !(status.verified
            && status.request.new_agent == *agent
            && status.request.lost_agent == held.owner_agent)
        {
            return Err(TransferError::Forbidden(
                "that recovery is not verified for this requester and owner".into(),
            ));
        }
        let family: Vec<FamilyCustodian> = self
            .agent
            .call_fn::<GetFamilyCustodians>(held.owner_agent.clone())
            .await
            .map_err(|e| TransferError::Upstream(e.to_string()))?;
        names_whole_family(&status.request.family, &family).map_err(TransferError::Conflict)?;
        self.judge_lost_agent(&held.owner_agent)
            .await
            .map_err(|e| TransferError::Conflict(e.to_string()))
    }

    /// Notes a shard about to be served to `receiver` (base64 agent key)
    /// in the rewards ledger; the `rewards` worker records one summary per
    /// receiver per period, so serving writes no record per request.
    pub fn note_served(&self, receiver: &str, shard_hash: &str, bytes: u64) {
        let Ok(receiver) = holochain_types::prelude::AgentPubKey::try_from(receiver) else {
            return;
        };
        if receiver == *self.agent.agent() || bytes == 0 {
            return;
        }
        self.rewards.served(&receiver, shard_hash, bytes);
    }

    /// [`Custody::assignment`], waiting up to [`ASSIGNMENT_WAIT`] (polling)
    /// while this node does not see it, or its index, yet: the answer comes
    /// the moment it arrives instead of after the sender's next backoff.
    /// Only [`ASSIGNMENT_WAITERS`] requests wait at once.
    async fn assignment_when_seen(
        &self,
        entry_hash: &str,
    ) -> Result<(CustodianAssignment, AssignmentStanding), TransferError> {
        let first = self.assignment(entry_hash).await;
        let not_yet = |r: &Result<(CustodianAssignment, AssignmentStanding), TransferError>| {
            matches!(
                r,
                Err(TransferError::NotYet(_)) | Ok((_, AssignmentStanding::NotYetIndexed))
            )
        };
        if !not_yet(&first) {
            return first;
        }
        let Ok(_waiting) = self.awaiting_assignments.try_acquire() else {
            return first;
        };
        let deadline = tokio::time::Instant::now() + ASSIGNMENT_WAIT;
        loop {
            tokio::time::sleep(ASSIGNMENT_POLL).await;
            let now = self.assignment(entry_hash).await;
            if !not_yet(&now) || tokio::time::Instant::now() >= deadline {
                return now;
            }
        }
    }

    /// An assignment named by a request, and where it stands. One not on
    /// this node's view of the DHT yet may still arrive: the sender is asked
    /// to try again rather than refused.
    async fn assignment(
        &self,
        entry_hash: &str,
    ) -> Result<(CustodianAssignment, AssignmentStanding), TransferError> {
        let eh = EntryHash::try_from(entry_hash)
            .map_err(|_| TransferError::BadRequest("assignment is not an entry hash".into()))?;
        let found: Option<(CustodianAssignment, AssignmentStanding)> = self
            .agent
            .call_fn::<GetAssignment>(eh)
            .await
            .map_err(|e| TransferError::Upstream(e.to_string()))?;
        found.ok_or_else(|| TransferError::NotYet("no such assignment on the DHT yet".into()))
    }
}

/// Why a lost node counts as alive (or cannot be judged), so its recovery
/// is refused.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum LostNodeAlive {
    /// This node's view of the DHT does not judge it failed.
    #[error(
        "the lost node {0} is not judged failed: its monitors still hear it, or its lease is recent"
    )]
    NotFailed(String),
    /// Its sidecar still answers.
    #[error("the lost node {0} is judged failed, but its sidecar still answers")]
    Answers(String),
    /// It could not be judged.
    #[error("the lost node could not be judged: {0}")]
    Unknown(String),
}

/// Whether a recovery request's family snapshot names every consenting
/// family custodian the lost person has now; `Err` names who is missing.
/// A request naming only some of them would need fewer approvals than the
/// family as it is.
pub fn names_whole_family(
    named: &[holochain_types::prelude::AgentPubKey],
    now: &[FamilyCustodian],
) -> Result<(), String> {
    let missing: Vec<String> = now
        .iter()
        .filter(|f| !named.contains(&f.agent))
        .map(|f| f.node_id.clone())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the recovery does not name every consenting family custodian of the lost person \
             (missing: {})",
            missing.join(", ")
        ))
    }
}

/// Whether a shard of `shard` bytes fits under a custody cap of `cap` bytes
/// with `used` bytes held, and on a disk with `free` bytes free (when
/// known).
pub fn room_for(shard: u64, used: u64, cap: u64, free: Option<u64>) -> Result<(), TransferError> {
    if used.checked_add(shard).is_none_or(|total| total > cap) {
        return Err(TransferError::InsufficientStorage(format!(
            "a {shard}-byte shard would take this node's custody to {} bytes, over the {cap} \
             bytes it offers",
            used.saturating_add(shard)
        )));
    }
    if let Some(free) = free {
        if shard > free {
            return Err(TransferError::InsufficientStorage(format!(
                "a {shard}-byte shard does not fit in the {free} bytes free on this node's disk"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_checked_against_the_cap_and_the_disk() {
        assert_eq!(room_for(10, 80, 100, Some(1_000)), Ok(()));
        assert_eq!(room_for(20, 80, 100, None), Ok(()), "exactly full");
        assert!(matches!(
            room_for(21, 80, 100, Some(1_000)),
            Err(TransferError::InsufficientStorage(m)) if m.contains("offers")
        ));
        assert!(matches!(
            room_for(10, 0, 100, Some(9)),
            Err(TransferError::InsufficientStorage(m)) if m.contains("disk")
        ));
        assert!(
            room_for(u64::MAX, 1, u64::MAX, None).is_err(),
            "an overflowing total"
        );
    }

    #[test]
    fn a_recovery_must_name_the_whole_family_of_now() {
        use holochain_types::prelude::{ActionHash, AgentPubKey};
        let member = |n: u8| FamilyCustodian {
            agent: AgentPubKey::from_raw_32(vec![n; 32]),
            node_id: format!("node-{n}"),
            registration_hash: ActionHash::from_raw_36(vec![n; 36]),
            endpoint: None,
            proof: FamilyProof {
                relationship: ActionHash::from_raw_36(vec![n; 36]),
                consents: vec![],
            },
        };
        let (bob, carol) = (member(1), member(2));
        let family = vec![bob.clone(), carol.clone()];
        assert_eq!(
            names_whole_family(&[bob.agent.clone(), carol.agent.clone()], &family),
            Ok(())
        );
        let subset = names_whole_family(std::slice::from_ref(&bob.agent), &family).unwrap_err();
        assert!(subset.contains("node-2"), "{subset}");
        assert!(names_whole_family(&[], &family).is_err());
        // Someone who left the family since is no reason to refuse.
        assert_eq!(
            names_whole_family(&[bob.agent.clone(), carol.agent.clone()], &[bob]),
            Ok(())
        );
    }
}
