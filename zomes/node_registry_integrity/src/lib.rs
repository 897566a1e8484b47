//! Integrity zome of the node registry DNA: the entries and links every node
//! agrees on, and the deterministic rules that make them valid.
//!
//! Validation never reads a clock or random numbers: every time rule compares
//! a claimed time with the timestamp of the action that carries it, and every
//! ownership rule compares a node id with the action's author (node ids are
//! derived from agent keys, see `registry_core::node_id`). The rules
//! themselves live in `registry_core`, so they are unit-tested natively.

mod api;
mod entries;
mod indexes;
mod properties;
mod validation;
pub mod zome_fns;

pub use api::*;
pub use entries::*;
pub use indexes::*;
pub use properties::*;

use hdi::prelude::*;

/// Every entry type of the DNA.
#[hdk_entry_types]
#[unit_enum(UnitEntryTypes)]
pub enum EntryTypes {
    /// A node's declaration of itself.
    NodeRegistration(NodeRegistration),
    /// One node's observation of another's health.
    HealthAttestation(HealthAttestation),
    /// A custodian's duty to keep one shard of a content.
    CustodianAssignment(CustodianAssignment),
    /// A custody decision put to a regional vote.
    AssignmentProposal(AssignmentProposal),
    /// A vote on a proposal.
    CustodianVote(CustodianVote),
    /// A penalty backed by evidence.
    ReputationPenalty(ReputationPenalty),
    /// A relationship between two people.
    Relationship(Relationship),
    /// A party's consent to a relationship (or its withdrawal).
    RelationshipConsent(RelationshipConsent),
    /// A request to recover a lost node's person.
    RecoveryRequest(RecoveryRequest),
    /// A family member's approval of a recovery.
    RecoveryApproval(RecoveryApproval),
    /// A custodian's claim to have served bytes (a Shefa economic event).
    ServiceEvent(ServiceEvent),
    /// The receiver's acknowledgement of a service event.
    ServiceAcknowledgement(ServiceAcknowledgement),
    /// An identity's grant of its node's routine writes to a working key.
    WorkingKeyDelegation(WorkingKeyDelegation),
}

/// Every link type of the DNA. Tags carry compact summaries (validated
/// against their targets) so that discovery and liveness read links only.
#[hdk_link_types]
pub enum LinkTypes {
    /// `region/<r>` to a node's latest registration.
    RegionIndex,
    /// `tier/<t>` to a node's latest registration.
    TierIndex,
    /// `node/<id>` to a node's latest registration.
    NodeIdIndex,
    /// An agent key to its node's latest registration.
    AgentToNode,
    /// `attestations/<subject>/<verdict period>` to an attestation (a
    /// monitor's verdict), the tag carrying the whole attestation.
    NodeToAttestation,
    /// `content/<id>` to an assignment.
    ContentToAssignment,
    /// `custody/<node>` to an assignment.
    NodeToAssignment,
    /// `proposals/<region>` to a proposal.
    RegionToProposal,
    /// A proposal to its votes.
    ProposalToVote,
    /// `penalties/<node>` to a penalty.
    NodeToPenalty,
    /// Each party's agent key to a relationship.
    AgentToRelationship,
    /// A relationship to its consents.
    RelationshipToConsent,
    /// An owner's agent key to the assignments of its content.
    OwnerToAssignment,
    /// A lost agent's key to recovery requests for it.
    LostAgentToRecovery,
    /// A recovery request to its approvals.
    RecoveryToApproval,
    /// `earnings/<node>` to the service events a node provided.
    ProviderToServiceEvent,
    /// A receiver's agent key to the service events naming it.
    ReceiverToServiceEvent,
    /// A service event to its acknowledgement.
    ServiceEventToAck,
    /// A node's presence lease: `presence/<bucket>/<shard>` (bucket one lease
    /// period long, shard a hash of the node id) to its registration, the
    /// tag carrying its summary and status; one record per node per lease
    /// period (see `registry_core::presence`).
    PresenceIndex,
    /// `custody/<node>` (and the node's recent-custody bucket of the time of
    /// the link) to an assignment of that node that a later one has taken
    /// the shard from (the tag names it and gives its size): a node's
    /// committed custody is then its `NodeToAssignment` links less these.
    NodeToRetiredAssignment,
    /// `custody-recent/<node>/<bucket>` to an assignment of that node,
    /// bucketed by link time: what a selection adds to the total the node
    /// publishes with its presence, so it never reads the whole index.
    NodeToRecentAssignment,
    /// A working key to the delegation that names it (see
    /// `registry_core::delegation`), written by the identity.
    AgentToDelegation,
    /// `suspicions/<region>/<bucket>` and `suspicions-all/<bucket>` (one
    /// lease period long) to a monitor's suspicion of a node of that region,
    /// or to its retraction: what selection and failure detection read to
    /// see deaths without reading every node (see `registry_core::verdict`).
    RegionToSuspicion,
}

/// What kind of record, for the write budget (see `registry_core::budget`),
/// an entry of this type is.
pub fn record_kind_of_entry(t: UnitEntryTypes) -> registry_core::budget::RecordKind {
    use registry_core::budget::RecordKind as K;
    match t {
        UnitEntryTypes::NodeRegistration => K::Registration,
        UnitEntryTypes::WorkingKeyDelegation => K::Delegation,
        UnitEntryTypes::HealthAttestation => K::Verdict,
        UnitEntryTypes::CustodianAssignment => K::Custody,
        UnitEntryTypes::AssignmentProposal
        | UnitEntryTypes::CustodianVote
        | UnitEntryTypes::ReputationPenalty => K::Governance,
        UnitEntryTypes::ServiceEvent | UnitEntryTypes::ServiceAcknowledgement => K::Rewards,
        UnitEntryTypes::Relationship
        | UnitEntryTypes::RelationshipConsent
        | UnitEntryTypes::RecoveryRequest
        | UnitEntryTypes::RecoveryApproval => K::Family,
    }
}

/// What kind of record, for the write budget, a link of this type is.
pub fn record_kind_of_link(t: LinkTypes) -> registry_core::budget::RecordKind {
    use registry_core::budget::RecordKind as K;
    match t {
        LinkTypes::RegionIndex
        | LinkTypes::TierIndex
        | LinkTypes::NodeIdIndex
        | LinkTypes::AgentToNode => K::Registration,
        LinkTypes::AgentToDelegation => K::Delegation,
        LinkTypes::PresenceIndex => K::PresenceLease,
        LinkTypes::NodeToAttestation => K::Verdict,
        LinkTypes::RegionToSuspicion => K::SuspicionIndex,
        LinkTypes::ContentToAssignment
        | LinkTypes::NodeToAssignment
        | LinkTypes::OwnerToAssignment
        | LinkTypes::NodeToRetiredAssignment
        | LinkTypes::NodeToRecentAssignment => K::Custody,
        LinkTypes::RegionToProposal | LinkTypes::ProposalToVote | LinkTypes::NodeToPenalty => {
            K::Governance
        }
        LinkTypes::ProviderToServiceEvent
        | LinkTypes::ReceiverToServiceEvent
        | LinkTypes::ServiceEventToAck => K::Rewards,
        LinkTypes::AgentToRelationship
        | LinkTypes::RelationshipToConsent
        | LinkTypes::LostAgentToRecovery
        | LinkTypes::RecoveryToApproval => K::Family,
    }
}

/// What kind of record, for the write budget, an action of a node's chain
/// is: setup (genesis, grants, init), or the kind of its entry or link.
pub fn record_kind_of_action(action: &Action) -> registry_core::budget::RecordKind {
    use registry_core::budget::RecordKind as K;
    let entry_kind = |t: &EntryType| match t {
        EntryType::App(def) => UnitEntryTypes::iter()
            .nth(def.entry_index.0 as usize)
            .map(record_kind_of_entry)
            .unwrap_or(K::Other),
        _ => K::AgentSetup,
    };
    match &action.data {
        ActionData::Dna(_)
        | ActionData::AgentValidationPkg(_)
        | ActionData::InitZomesComplete(_)
        | ActionData::OpenChain(_)
        | ActionData::CloseChain(_) => K::AgentSetup,
        ActionData::Create(c) => entry_kind(&c.entry_type),
        ActionData::Update(u) => entry_kind(&u.entry_type),
        ActionData::CreateLink(l) => LinkTypes::iter()
            .nth(l.link_type.0 as usize)
            .map(record_kind_of_link)
            .unwrap_or(K::Other),
        ActionData::DeleteLink(_) | ActionData::Delete(_) => K::Other,
    }
}

/// The single validation callback; see `validation/`.
#[hdk_extern]
pub fn validate(op: Op) -> ExternResult<ValidateCallbackResult> {
    validation::validate_op(op)
}
