//! Mallory: a coordinator zome for tests only, never packed into the hApp.
//!
//! Anyone can run any coordinator code against our DNA; only the integrity
//! zome's validation stands between them and the DHT. Mallory is the honest
//! coordinator plus functions that commit, update, delete and link exactly
//! what an attacker would. Tests hot-swap it in place of the coordinator on
//! one cell (same DNA, same network).

use hdk::prelude::*;
/// Every honest function stays available.
pub use node_registry_coordinator::*;
use node_registry_integrity::*;

/// Input of `update_registration`.
#[derive(Serialize, Deserialize, Debug)]
pub struct UpdateRegistration {
    /// Version being replaced.
    pub original: ActionHash,
    /// New content.
    pub registration: NodeRegistration,
}

/// Input of `create_link_raw`.
#[derive(Serialize, Deserialize, Debug)]
pub struct RawLink {
    /// Base.
    pub base: AnyLinkableHash,
    /// Target.
    pub target: AnyLinkableHash,
    /// The `LinkTypes` variant, by name (`"PresenceIndex"`).
    pub link_type: String,
    /// Tag bytes.
    pub tag: Vec<u8>,
}

/// Commits a registration as given.
#[hdk_extern]
pub fn create_registration(r: NodeRegistration) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::NodeRegistration(r))
}

/// Updates any registration with any content.
#[hdk_extern]
pub fn update_registration(u: UpdateRegistration) -> ExternResult<ActionHash> {
    update_entry(u.original, EntryTypes::NodeRegistration(u.registration))
}

/// Deletes any action.
#[hdk_extern]
pub fn delete_any(hash: ActionHash) -> ExternResult<ActionHash> {
    delete_entry(hash)
}

/// Commits an attestation as given.
#[hdk_extern]
pub fn create_attestation(a: HealthAttestation) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::HealthAttestation(a))
}

/// Commits an assignment as given.
#[hdk_extern]
pub fn create_assignment(a: CustodianAssignment) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::CustodianAssignment(a))
}

/// Updates any entry as an attestation (to try updating immutable entries).
#[hdk_extern]
pub fn update_as_attestation(input: (ActionHash, HealthAttestation)) -> ExternResult<ActionHash> {
    update_entry(input.0, EntryTypes::HealthAttestation(input.1))
}

/// Commits a penalty as given (e.g. without cause).
#[hdk_extern]
pub fn create_penalty(p: ReputationPenalty) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::ReputationPenalty(p))
}

/// Commits a vote as given.
#[hdk_extern]
pub fn create_vote(v: CustodianVote) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::CustodianVote(v))
}

/// Commits a recovery approval as given (e.g. by someone outside the family).
#[hdk_extern]
pub fn create_recovery_approval(a: RecoveryApproval) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::RecoveryApproval(a))
}

/// Commits a service event as given (e.g. with inflated points).
#[hdk_extern]
pub fn create_service_event(e: ServiceEvent) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::ServiceEvent(e))
}

/// Commits a service acknowledgement as given (e.g. by the provider itself).
#[hdk_extern]
pub fn create_service_ack(a: ServiceAcknowledgement) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::ServiceAcknowledgement(a))
}

/// Creates any link, of the link type named.
#[hdk_extern]
pub fn create_link_raw(l: RawLink) -> ExternResult<ActionHash> {
    let link_type = match l.link_type.as_str() {
        "RegionIndex" => LinkTypes::RegionIndex,
        "TierIndex" => LinkTypes::TierIndex,
        "NodeIdIndex" => LinkTypes::NodeIdIndex,
        "AgentToNode" => LinkTypes::AgentToNode,
        "NodeToAttestation" => LinkTypes::NodeToAttestation,
        "ContentToAssignment" => LinkTypes::ContentToAssignment,
        "NodeToAssignment" => LinkTypes::NodeToAssignment,
        "PresenceIndex" => LinkTypes::PresenceIndex,
        "NodeToRetiredAssignment" => LinkTypes::NodeToRetiredAssignment,
        "NodeToRecentAssignment" => LinkTypes::NodeToRecentAssignment,
        "AgentToDelegation" => LinkTypes::AgentToDelegation,
        "RegionToSuspicion" => LinkTypes::RegionToSuspicion,
        "NodeToPenalty" => LinkTypes::NodeToPenalty,
        "OwnerToAssignment" => LinkTypes::OwnerToAssignment,
        "RegionToProposal" => LinkTypes::RegionToProposal,
        "ProposalToVote" => LinkTypes::ProposalToVote,
        "LostAgentToRecovery" => LinkTypes::LostAgentToRecovery,
        "RecoveryToApproval" => LinkTypes::RecoveryToApproval,
        other => {
            return Err(wasm_error!(WasmErrorInner::Guest(format!(
                "mallory: no link type {other}"
            ))))
        }
    };
    create_link(l.base, l.target, link_type, LinkTag::new(l.tag))
}

/// Commits a delegation as given (e.g. for another node, or too long).
#[hdk_extern]
pub fn create_delegation(d: WorkingKeyDelegation) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::WorkingKeyDelegation(d))
}

/// Deletes any link.
#[hdk_extern]
pub fn delete_link_raw(hash: ActionHash) -> ExternResult<ActionHash> {
    delete_link(hash, GetOptions::default())
}

/// Path hash of the region index, for building bases.
#[hdk_extern]
pub fn region_base_hash(region: String) -> ExternResult<EntryHash> {
    region_base(&region)
}

/// Path hash of a node's verdict bucket, for building bases.
#[hdk_extern]
pub fn attestation_base_hash(input: (String, i64)) -> ExternResult<EntryHash> {
    attestation_base(&input.0, input.1)
}

/// Path hash of a region's suspicion bucket (or, without a region, the
/// all-regions one), for building bases.
#[hdk_extern]
pub fn suspicion_base_hash(input: (Option<String>, i64)) -> ExternResult<EntryHash> {
    match input.0 {
        Some(region) => suspicion_base(&region, input.1),
        None => suspicion_all_base(input.1),
    }
}

/// Path hash of a node's custody index, for building bases.
#[hdk_extern]
pub fn custody_base_hash(node_id: String) -> ExternResult<EntryHash> {
    custody_base(&node_id)
}

/// Path hash of a node's recent-custody bucket, for building bases.
#[hdk_extern]
pub fn recent_custody_base_hash(input: (String, i64)) -> ExternResult<EntryHash> {
    recent_custody_base(&input.0, input.1)
}

/// Path hash of one shard of a presence bucket, for building bases.
#[hdk_extern]
pub fn presence_base_hash(input: (i64, u32)) -> ExternResult<EntryHash> {
    presence_shard_base(input.0, input.1)
}

// --- Attacks on the DNA's own rules (issue 21) -----------------------------

/// Input of `create_raw_entry`: an app entry of the integrity zome's
/// `entry_index`-th type whose bytes are whatever the attacker encoded.
#[derive(Serialize, Deserialize, Debug)]
pub struct RawEntry {
    /// Position of the type in `EntryTypes`.
    pub entry_index: u8,
    /// The entry's msgpack bytes.
    pub bytes: Vec<u8>,
}

/// Commits an entry of any type with any bytes (e.g. a relationship that
/// also carries a penalty's fields).
#[hdk_extern]
pub fn create_raw_entry(e: RawEntry) -> ExternResult<ActionHash> {
    let bytes = SerializedBytes::from(UnsafeBytes::from(e.bytes));
    create(CreateInput::new(
        EntryDefLocation::app(0, e.entry_index),
        EntryVisibility::Public,
        Entry::App(AppEntryBytes(bytes)),
        ChainTopOrdering::default(),
    ))
}

/// Commits a proposal as given (e.g. with an electorate of its own choosing).
#[hdk_extern]
pub fn create_proposal(p: AssignmentProposal) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::AssignmentProposal(p))
}

/// Commits a recovery request as given (e.g. naming a family of its own
/// choosing).
#[hdk_extern]
pub fn create_recovery_request(r: RecoveryRequest) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::RecoveryRequest(r))
}

// Signals (issue 21, item 4): what any agent can send any other.

/// Sends any signal to any agents by remote signal, as an attacker's own
/// coordinator can (e.g. a forged `ReplicateContent` or
/// `DisasterRecoveryFailed`).
#[hdk_extern]
pub fn send_signal(input: (RegistrySignal, Vec<AgentPubKey>)) -> ExternResult<()> {
    send_remote_signal(&input.0, input.1)
}
