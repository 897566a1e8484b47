//! "Google Account" recovery: a person whose rack was destroyed gets their
//! private content back on a new node, from their family's racks.
//!
//! The flow, served by the new node's sidecar:
//! 1. `initiate` names the lost agent. It is refused while that agent's node
//!    still heartbeats (nothing to recover) and when nobody in the family
//!    keeps their content; otherwise a `RecoveryRequest` goes on the DHT,
//!    listing the family snapshotted at that moment.
//! 2. Family members approve it from their own nodes; each approval is an
//!    entry signed by that member's agent, checked in validation, so nobody
//!    outside the family can make a recovery count.
//! 3. `sync`, once 2/3 of the family approved, pulls every item the lost
//!    agent placed in custody from its custodians (who check the verified
//!    request before serving), decodes it with the key derived from the
//!    person's recovery code, verifies its hash and writes it under
//!    `recovered/` in the data directory.
//!
//! Sessions are JSON files under `recovery/` in the data directory, written
//! atomically after every item, so a crash loses no finished work: posting
//! `sync` again resumes with what is still missing.

pub mod secret;

use crate::custody::{Custody, CustodyError, Progress};
use crate::ids::InvalidContentId;
use crate::recovery::secret::RecoverySecret;
use holochain_types::prelude::{ActionHash, AgentPubKey};
use node_registry_integrity::zome_fns::{
    ApproveRecovery, DetectFailedNodes, GetAssignmentsForOwner, GetFamilyCustodians,
    GetNodeOfAgent, GetRecoveryStatus, RequestRecovery,
};
use node_registry_integrity::{AssignmentRecord, FamilyCustodian, RecoveryStatus, RegisteredNode};
use registry_core::heartbeat::{Liveness, LivenessPolicy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Why a recovery step was refused or failed; each maps to one HTTP status.
#[derive(Debug, Error)]
pub enum RecoveryError {
    /// A field is missing or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The lost node still heartbeats.
    #[error("the node of {agent} is online ({detail}): recovery is not needed")]
    NodeOnline {
        /// The agent.
        agent: String,
        /// How recently it was heard from.
        detail: String,
    },
    /// Nobody in the family keeps the person's content.
    #[error("No family custodians found")]
    NoFamilyCustodians,
    /// The request's preconditions do not hold now: the lost node is alive,
    /// or the request leaves out some of the person's family.
    #[error("{0}")]
    Precondition(String),
    /// The caller may not take this step.
    #[error("{0}")]
    Forbidden(String),
    /// No such session.
    #[error("no recovery session {0} on this node")]
    UnknownSession(String),
    /// Not enough family approvals yet.
    #[error("Recovery not verified yet: {approved} of the {required} family approvals needed")]
    NotVerified {
        /// Valid approvals so far.
        approved: u32,
        /// Approvals needed.
        required: u32,
    },
    /// The conductor refused or failed.
    #[error("conductor: {0}")]
    Conductor(#[from] crate::registry::conductor::ConductorError),
    /// Local file trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl RecoveryError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        RecoveryError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Waiting for the family's approvals.
    PendingVerification,
    /// Pulling content.
    Syncing,
    /// Every item is back and verified.
    Complete,
    /// The last sync left items missing; posting `sync` again retries them.
    Incomplete,
}

/// One family member asked to approve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CustodianInfo {
    /// Their agent.
    pub agent: String,
    /// Their node.
    pub node_id: String,
}

/// Where one item of the person's content stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Not pulled yet.
    Pending,
    /// Back, hash verified.
    Recovered,
    /// The last attempt failed (see `error`).
    Failed,
}

/// One item of the person's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecoveryItem {
    /// The content id.
    pub content_id: String,
    /// blake3 of the plaintext, as the assignments record it.
    pub content_hash: String,
    /// Bytes.
    pub size: u64,
    /// How it is sharded.
    pub strategy: String,
    /// Where it stands.
    pub state: ItemState,
    /// Where it was written, once recovered.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// A recovery session as persisted and reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecoverySession {
    /// The `RecoveryRequest`'s action hash: family members approve this.
    pub session_id: String,
    /// The lost agent.
    pub lost_agent: String,
    /// Its node, if it had one registered.
    pub lost_node_id: Option<String>,
    /// The family asked to approve.
    pub custodians: Vec<CustodianInfo>,
    /// Approvals needed (2/3 of the family).
    pub required_approvals: u32,
    /// Sum of the items' sizes.
    pub estimated_bytes: u64,
    /// The items.
    pub items: Vec<RecoveryItem>,
    /// Where the session stands.
    pub state: SessionState,
    /// Bytes of recovered items.
    pub bytes_recovered: u64,
    /// The item being pulled and its phase.
    #[serde(default)]
    pub current: Option<CurrentItem>,
    /// When initiated (unix seconds).
    pub initiated_at: i64,
    /// Last change (unix seconds).
    pub updated_at: i64,
}

/// Progress within the item being pulled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurrentItem {
    /// The content.
    pub content_id: String,
    /// fetching or decoding, with units done and in total.
    pub progress: Progress,
}

/// Answer of `initiate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitiateResponse {
    /// The session (and request) id.
    pub session_id: String,
    /// pending_verification.
    pub status: SessionState,
    /// Family members whose nodes keep the content.
    pub custodians_found: Vec<CustodianInfo>,
    /// Approvals needed.
    pub required_approvals: u32,
    /// Bytes to pull.
    pub estimated_data_size: u64,
    /// Items to pull.
    pub items: usize,
    /// What the person does next.
    pub next_steps: Vec<String>,
}

/// A session with the family's approvals read from the DHT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionReport {
    /// The local session (absent on a family member's node).
    pub session: Option<RecoverySession>,
    /// Approvals needed.
    pub required_approvals: u32,
    /// Family members who approved.
    pub approved_by: Vec<String>,
    /// Family members who refused.
    pub refused_by: Vec<String>,
    /// Enough approvals.
    pub verified: bool,
}

/// Parses an agent key given in a request.
pub fn parse_agent(field: &str, s: &str) -> Result<AgentPubKey, RecoveryError> {
    AgentPubKey::try_from(s.to_string()).map_err(|_| {
        RecoveryError::BadRequest(format!(
            "{field} must be an agent public key (uhCAk..., as `elohim-sidecar status` prints it)"
        ))
    })
}

/// Parses a session id given in a request.
pub fn parse_session(s: &str) -> Result<ActionHash, RecoveryError> {
    ActionHash::try_from(s.to_string()).map_err(|_| {
        RecoveryError::BadRequest(
            "session_id must be the id initiate returned (uhCkk...)".to_string(),
        )
    })
}

/// Groups live assignments into one item per content.
pub fn items_of(records: &[AssignmentRecord]) -> Vec<RecoveryItem> {
    let mut by_content: BTreeMap<&str, &AssignmentRecord> = BTreeMap::new();
    for r in records {
        by_content.entry(&r.assignment.content_id).or_insert(r);
    }
    by_content
        .into_values()
        .map(|r| RecoveryItem {
            content_id: r.assignment.content_id.clone(),
            content_hash: r.assignment.content_hash.clone(),
            size: r.assignment.content_size_bytes,
            strategy: r.assignment.strategy.clone(),
            state: ItemState::Pending,
            path: None,
            error: None,
        })
        .collect()
}

/// Whether the lost node counts as gone, given how the DHT judges it under
/// the failure window and grace period this node detects failures with
/// (`detect_failed_nodes`): only a failed node may be recovered from.
pub fn judge_lost(liveness: Liveness, policy: LivenessPolicy) -> Result<(), String> {
    match liveness {
        Liveness::Failed { .. } => Ok(()),
        Liveness::Alive { .. } => Err(
            "its monitors still hear it (or it renewed its presence lease since they stopped)"
                .into(),
        ),
        Liveness::Suspected { silent_secs } => Err(format!(
            "silent for {silent_secs} s, still within the {} s grace period",
            policy.grace_secs
        )),
    }
}

/// The recovery engine of one node.
pub struct Recovery {
    custody: Arc<Custody>,
    dir: PathBuf,
    out_dir: PathBuf,
    /// Sessions being synced, shared with their background tasks.
    running: Mutex<HashMap<String, Arc<Mutex<RecoverySession>>>>,
}

impl Recovery {
    /// Prepares the session and output directories under the data directory.
    pub fn open(custody: Arc<Custody>) -> Result<Recovery, RecoveryError> {
        let data = custody.agent.config().conductor.data_dir.clone();
        let dir = data.join("recovery");
        let out_dir = data.join("recovered");
        for d in [&dir, &out_dir] {
            std::fs::create_dir_all(d).map_err(|e| RecoveryError::io(d, e))?;
        }
        Ok(Recovery {
            custody,
            dir,
            out_dir,
            running: Mutex::new(HashMap::new()),
        })
    }

    fn session_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn save(&self, s: &RecoverySession) -> Result<(), RecoveryError> {
        let path = self.session_path(&s.session_id);
        let json = serde_json::to_vec_pretty(s).expect("a session serializes");
        crate::datadir::write_private(&path, &json).map_err(|e| RecoveryError::io(&path, e))
    }

    /// A session from memory (if syncing) or disk.
    pub fn load(&self, id: &str) -> Result<Option<RecoverySession>, RecoveryError> {
        if let Some(s) = self.running.lock().unwrap().get(id) {
            return Ok(Some(s.lock().unwrap().clone()));
        }
        let path = self.session_path(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RecoveryError::io(&path, std::io::Error::other(e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RecoveryError::io(&path, e)),
        }
    }

    fn sessions(&self) -> Vec<RecoverySession> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".json")?;
                self.load(id).ok().flatten()
            })
            .collect()
    }

    /// Starts recovering `lost_agent` onto this node.
    pub async fn initiate(
        &self,
        lost_agent: &str,
    ) -> Result<(InitiateResponse, bool), RecoveryError> {
        let lost = parse_agent("agent_id", lost_agent)?;
        if lost == *self.custody.agent.agent() {
            return Err(RecoveryError::BadRequest(
                "agent_id is this node's own agent: start the new node, then name the lost one"
                    .into(),
            ));
        }
        let agent = &self.custody.agent;
        let node: Option<RegisteredNode> = agent.call_fn::<GetNodeOfAgent>(lost.clone()).await?;
        if let Some(n) = &node {
            let cfg = &agent.config().custody;
            let policy = LivenessPolicy {
                failure_window_secs: cfg.failure_window_secs,
                grace_secs: cfg.grace_secs,
            };
            let down: Vec<node_registry_integrity::NodeLiveness> = agent
                .read_fn::<DetectFailedNodes>(Some(node_registry_integrity::DetectionInput {
                    failure_window_secs: Some(policy.failure_window_secs),
                    grace_secs: Some(policy.grace_secs),
                }))
                .await?;
            let liveness = down
                .into_iter()
                .find(|d| d.node_id == n.registration.node_id)
                .map(|d| d.liveness)
                .unwrap_or(Liveness::Alive { silent_secs: 0 });
            if let Err(detail) = judge_lost(liveness, policy) {
                return Err(RecoveryError::NodeOnline {
                    agent: lost_agent.to_string(),
                    detail,
                });
            }
        }
        // One open session per lost agent: asking again returns it.
        if let Some(existing) = self
            .sessions()
            .into_iter()
            .find(|s| s.lost_agent == lost_agent && s.state != SessionState::Complete)
        {
            return Ok((response_of(&existing), false));
        }
        let family: Vec<FamilyCustodian> =
            agent.call_fn::<GetFamilyCustodians>(lost.clone()).await?;
        if family.is_empty() {
            return Err(RecoveryError::NoFamilyCustodians);
        }
        let records: Vec<AssignmentRecord> = agent
            .call_fn::<GetAssignmentsForOwner>(lost.clone())
            .await?;
        let hash: ActionHash = agent.call_fn::<RequestRecovery>(lost.clone()).await?;
        let status: RecoveryStatus = agent.call_fn::<GetRecoveryStatus>(hash.clone()).await?;
        let items = items_of(&records);
        let now = crate::clock::unix_secs();
        let session = RecoverySession {
            session_id: hash.to_string(),
            lost_agent: lost_agent.to_string(),
            lost_node_id: node.map(|n| n.registration.node_id),
            custodians: family
                .iter()
                .map(|f| CustodianInfo {
                    agent: f.agent.to_string(),
                    node_id: f.node_id.clone(),
                })
                .collect(),
            required_approvals: status.request.required_approvals,
            estimated_bytes: items.iter().map(|i| i.size).sum(),
            items,
            state: SessionState::PendingVerification,
            bytes_recovered: 0,
            current: None,
            initiated_at: now,
            updated_at: now,
        };
        self.save(&session)?;
        tracing::info!(
            "recovery {} of {} initiated: {} items, {} family custodians",
            session.session_id,
            session.lost_agent,
            session.items.len(),
            session.custodians.len()
        );
        Ok((response_of(&session), true))
    }

    /// Approves (or refuses) a recovery as a family member of the lost
    /// agent. An approval is given only while the request's preconditions
    /// hold: it names every consenting family custodian the person has now
    /// (a request naming a few would need fewer approvals), and the lost
    /// node is gone (judged failed here, its sidecar silent). Refusing is
    /// always possible.
    pub async fn approve(&self, session_id: &str, approve: bool) -> Result<String, RecoveryError> {
        let hash = parse_session(session_id)?;
        let status: RecoveryStatus = self
            .custody
            .agent
            .call_fn::<GetRecoveryStatus>(hash.clone())
            .await
            .map_err(|_| RecoveryError::UnknownSession(session_id.to_string()))?;
        if !status.request.family.contains(self.custody.agent.agent()) {
            return Err(RecoveryError::Forbidden(
                "this node's agent is not in the recovery's family: only the lost person's \
                 consenting family custodians approve"
                    .into(),
            ));
        }
        if approve {
            let family: Vec<FamilyCustodian> = self
                .custody
                .agent
                .call_fn::<GetFamilyCustodians>(status.request.lost_agent.clone())
                .await?;
            crate::custody::names_whole_family(&status.request.family, &family)
                .map_err(RecoveryError::Precondition)?;
            self.custody
                .judge_lost_agent(&status.request.lost_agent)
                .await
                .map_err(|e| RecoveryError::Precondition(e.to_string()))?;
        }
        // The request may not have reached this node's store yet (it was
        // read over the network above), which a commit's validation needs:
        // wait that out. A second approval after a lost reply is harmless,
        // the status counts each approver once.
        let agent = &self.custody.agent;
        let input = node_registry_integrity::ApproveRecoveryInput {
            request: hash,
            approve,
        };
        let approval: ActionHash = agent
            .retrying(|| agent.call_fn::<ApproveRecovery>(input.clone()))
            .await?;
        Ok(approval.to_string())
    }

    /// The session with its approvals as the DHT sees them.
    pub async fn report(&self, session_id: &str) -> Result<SessionReport, RecoveryError> {
        let hash = parse_session(session_id)?;
        let session = self.load(session_id)?;
        let status: RecoveryStatus = self
            .custody
            .agent
            .call_fn::<GetRecoveryStatus>(hash)
            .await
            .map_err(|e| match session {
                None => RecoveryError::UnknownSession(session_id.to_string()),
                Some(_) => e.into(),
            })?;
        Ok(SessionReport {
            session,
            required_approvals: status.request.required_approvals,
            approved_by: status.approved_by.iter().map(|a| a.to_string()).collect(),
            refused_by: status.refused_by.iter().map(|a| a.to_string()).collect(),
            verified: status.verified,
        })
    }

    /// Starts (or resumes) pulling the content, once the family approved.
    /// Returns at once; progress is read with `load`.
    pub async fn sync(
        self: &Arc<Self>,
        session_id: &str,
        recovery_code: &str,
    ) -> Result<RecoverySession, RecoveryError> {
        let hash = parse_session(session_id)?;
        let secret = RecoverySecret::from_code(recovery_code)
            .map_err(|e| RecoveryError::BadRequest(format!("recovery_code: {e}")))?;
        let mut session = self
            .load(session_id)?
            .ok_or_else(|| RecoveryError::UnknownSession(session_id.to_string()))?;
        if let Some(running) = self.running.lock().unwrap().get(session_id) {
            return Ok(running.lock().unwrap().clone());
        }
        let status: RecoveryStatus = self
            .custody
            .agent
            .call_fn::<GetRecoveryStatus>(hash)
            .await?;
        if !status.verified {
            return Err(RecoveryError::NotVerified {
                approved: status.approved_by.len() as u32,
                required: status.request.required_approvals,
            });
        }
        // Content placed since the session began is pulled too.
        let lost = parse_agent("lost_agent", &session.lost_agent)?;
        let records: Vec<AssignmentRecord> = self
            .custody
            .agent
            .call_fn::<GetAssignmentsForOwner>(lost)
            .await?;
        for item in items_of(&records) {
            if !session
                .items
                .iter()
                .any(|i| i.content_id == item.content_id)
            {
                session.estimated_bytes += item.size;
                session.items.push(item);
            }
        }
        session.state = SessionState::Syncing;
        session.updated_at = crate::clock::unix_secs();
        self.save(&session)?;
        let shared = Arc::new(Mutex::new(session.clone()));
        {
            let mut running = self.running.lock().unwrap();
            if let Some(other) = running.get(session_id) {
                return Ok(other.lock().unwrap().clone());
            }
            running.insert(session_id.to_string(), shared.clone());
        }
        let me = self.clone();
        let id = session_id.to_string();
        tokio::spawn(async move {
            me.pull_all(&shared, &secret).await;
            me.running.lock().unwrap().remove(&id);
        });
        Ok(session)
    }

    async fn pull_all(&self, shared: &Arc<Mutex<RecoverySession>>, secret: &RecoverySecret) {
        let (id, items) = {
            let s = shared.lock().unwrap();
            (s.session_id.clone(), s.items.clone())
        };
        for (i, item) in items.iter().enumerate() {
            if item.state == ItemState::Recovered {
                continue;
            }
            // The id comes from the DHT: only its canonical form names a
            // file, and always one directly under `recovered/`.
            let out = match recovered_path(&self.out_dir, &item.content_id) {
                Ok(out) => out,
                Err(e) => {
                    tracing::warn!("recovery {id}: {e}: not written");
                    let snapshot = {
                        let mut s = shared.lock().unwrap();
                        let it = &mut s.items[i];
                        it.state = ItemState::Failed;
                        it.error = Some(e.to_string());
                        s.updated_at = crate::clock::unix_secs();
                        s.clone()
                    };
                    if let Err(e) = self.save(&snapshot) {
                        tracing::warn!("recovery {id}: saving progress: {e}");
                    }
                    continue;
                }
            };
            let result = if already_there(&out, &item.content_hash) {
                Ok(())
            } else {
                let progress_target = shared.clone();
                let content_id = item.content_id.clone();
                let progress = move |p: Progress| {
                    progress_target.lock().unwrap().current = Some(CurrentItem {
                        content_id: content_id.clone(),
                        progress: p,
                    });
                };
                self.custody
                    .retrieve_as(
                        &item.content_id,
                        &out,
                        Some(secret.content_key(&item.content_id)),
                        Some(&id),
                        &progress,
                    )
                    .await
                    .map(|_| ())
            };
            let snapshot = {
                let mut s = shared.lock().unwrap();
                let it = &mut s.items[i];
                match &result {
                    Ok(()) => {
                        it.state = ItemState::Recovered;
                        it.path = Some(out.clone());
                        it.error = None;
                    }
                    Err(e) => {
                        it.state = ItemState::Failed;
                        it.error = Some(explain(e));
                    }
                }
                s.bytes_recovered = s
                    .items
                    .iter()
                    .filter(|i| i.state == ItemState::Recovered)
                    .map(|i| i.size)
                    .sum();
                s.current = None;
                s.updated_at = crate::clock::unix_secs();
                s.clone()
            };
            match &result {
                Ok(()) => tracing::info!("recovery {id}: {} recovered", item.content_id),
                Err(e) => tracing::warn!("recovery {id}: {}: {e}", item.content_id),
            }
            if let Err(e) = self.save(&snapshot) {
                tracing::warn!("recovery {id}: saving progress: {e}");
            }
        }
        let done = {
            let mut s = shared.lock().unwrap();
            s.state = if s.items.iter().all(|i| i.state == ItemState::Recovered) {
                SessionState::Complete
            } else {
                SessionState::Incomplete
            };
            s.updated_at = crate::clock::unix_secs();
            s.clone()
        };
        tracing::info!(
            "recovery {id}: {:?}, {} of {} bytes",
            done.state,
            done.bytes_recovered,
            done.estimated_bytes
        );
        if let Err(e) = self.save(&done) {
            tracing::warn!("recovery {id}: saving the outcome: {e}");
        }
    }
}

/// Where a recovered item is written: `recovered/<content id>`, for a
/// canonical content id only (the id comes from the DHT).
pub fn recovered_path(out_dir: &Path, content_id: &str) -> Result<PathBuf, InvalidContentId> {
    crate::ids::content_path(out_dir, content_id)
}

fn explain(e: &CustodyError) -> String {
    match e {
        CustodyError::Codec(shard_codec::CodecError::Crypto(_)) => {
            "the content does not decrypt: is the recovery code the lost node's?".to_string()
        }
        other => other.to_string(),
    }
}

fn already_there(path: &Path, content_hash: &str) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).is_ok() && h.finalize().to_hex().as_str() == content_hash
}

fn response_of(s: &RecoverySession) -> InitiateResponse {
    InitiateResponse {
        session_id: s.session_id.clone(),
        status: s.state,
        custodians_found: s.custodians.clone(),
        required_approvals: s.required_approvals,
        estimated_data_size: s.estimated_bytes,
        items: s.items.len(),
        next_steps: vec![
            format!(
                "Ask {} of your family custodians to approve session {} from their own nodes \
                 (POST /api/recovery/approve on their sidecar)",
                s.required_approvals, s.session_id
            ),
            format!("Watch the approvals: GET /api/recovery/{}", s.session_id),
            "Once verified, POST /api/recovery/sync with the session_id and your recovery code"
                .to_string(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_only_once_failed() {
        let policy = LivenessPolicy {
            failure_window_secs: 60,
            grace_secs: 120,
        };
        assert!(judge_lost(Liveness::Alive { silent_secs: 0 }, policy)
            .unwrap_err()
            .contains("still hear it"));
        assert!(judge_lost(Liveness::Suspected { silent_secs: 100 }, policy)
            .unwrap_err()
            .contains("120 s grace"));
        assert!(judge_lost(
            Liveness::Failed {
                silent_secs: Some(200)
            },
            policy
        )
        .is_ok());
        assert!(judge_lost(Liveness::Failed { silent_secs: None }, policy).is_ok());
    }

    #[test]
    fn bad_ids_are_bad_requests() {
        assert!(matches!(
            parse_agent("agent_id", "bob"),
            Err(RecoveryError::BadRequest(m)) if m.contains("agent_id")
        ));
        assert!(matches!(
            parse_session(""),
            Err(RecoveryError::BadRequest(_))
        ));
    }

    #[test]
    fn a_content_id_from_the_dht_cannot_name_a_file_outside_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("recovered");
        for hostile in [
            "../x",
            "../../.ssh/authorized_keys",
            "/etc/cron.d/x",
            "a/../../b",
            "..",
        ] {
            let r = recovered_path(&out, hostile);
            assert!(
                matches!(r, Err(InvalidContentId(_))),
                "{hostile:?} gave {r:?}"
            );
        }
        let good = "ab".repeat(32);
        assert_eq!(recovered_path(&out, &good).unwrap(), out.join(&good));
    }

    #[test]
    fn a_half_written_file_is_not_taken_for_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        std::fs::write(&p, b"hello").unwrap();
        let good = blake3::hash(b"hello").to_hex().to_string();
        assert!(already_there(&p, &good));
        std::fs::write(&p, b"hel").unwrap();
        assert!(!already_there(&p, &good));
        assert!(!already_there(&dir.path().join("missing"), &good));
    }
}
