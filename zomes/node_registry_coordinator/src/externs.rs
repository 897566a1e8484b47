//! Every function this zome exports, in one place: its marker in
//! `node_registry_integrity::zome_fns` (checked at compile time to carry the
//! same name and output), its name, the shapes of payload it accepts, and
//! what it returns. Each decodes its payload through
//! [`crate::input::Checked`], so a bad payload is refused with the field at
//! fault, then calls the Rust function of the same name.

use crate::input::externs;
use crate::*;
use hdk::prelude::*;
use node_registry_integrity::*;

externs! {
    // assignments.rs
    AssignCustodian: assign_custodian(CustodianAssignment) -> ActionHash;
    AssignCustodians: assign_custodians(Vec<CustodianAssignment>) -> Vec<ActionHash>;
    GetAssignmentsForContent: get_assignments_for_content(String) -> Vec<CustodianAssignment>;
    GetAssignmentRecordsForContent: get_assignment_records_for_content(String) -> Vec<AssignmentRecord>;
    GetAssignmentHistory: get_assignment_history(String) -> Vec<AssignmentRecord>;
    GetAssignmentsForNode: get_assignments_for_node(String) -> Vec<CustodianAssignment>;
    GetAssignmentRecordsForNode: get_assignment_records_for_node(String) -> Vec<AssignmentRecord>;
    RetireOutranked: retire_outranked(String) -> u32;
    // byzantine.rs
    Ping: ping(()) -> ();
    AttestPeerHealth: attest_peer_health(String) -> ActionHash;
    ProbeNode: probe_node(String) -> NodeProbe;
    GetReputation: get_reputation(String) -> ReputationReport;
    GetNodeHealthConsensus: get_node_health_consensus(String) -> NodeHealthConsensus;
    DetectByzantineAttackers: detect_byzantine_attackers(()) -> Vec<SuspiciousNode>;
    ProposeCustodianAssignment: propose_custodian_assignment(ProposeInput) -> ActionHash;
    GetVoteRecord: get_vote_record(ActionHash) -> VoteRecord;
    CastVote: cast_vote(CastVoteInput) -> VoteOutcome;
    GetOpenProposals: get_open_proposals(String) -> Vec<(ActionHash, AssignmentProposal)>;
    // delegation.rs
    DelegateWorkingKey: delegate_working_key(DelegateInput) -> ActionHash;
    Whoami: whoami(()) -> Option<ActingAs>;
    GetRegistryProperties: get_registry_properties(()) -> RegistryProperties;
    // discovery.rs
    GetNodesByRegion: get_nodes_by_region(String) -> Vec<NodeRegistration>;
    GetNodesByTier: get_nodes_by_tier(String) -> Vec<NodeRegistration>;
    GetAvailableCustodians: get_available_custodians(CustodianQuery) -> Vec<RankedCustodian>;
    GetCommittedCustody: get_committed_custody(String) -> CommittedCustodyView;
    GetPresentNodes: get_present_nodes(Option<String>) -> Vec<PresentNode>;
    // family.rs
    CreateRelationship: create_relationship(CreateRelationshipInput) -> ActionHash;
    ConsentToRelationship: consent_to_relationship(ConsentInput) -> ActionHash;
    GetRelationships: get_relationships(AgentPubKey) -> Vec<RelationshipState>;
    GetFamilyCustodians: get_family_custodians(AgentPubKey) -> Vec<FamilyCustodian>;
    GetAssignmentsForOwner: get_assignments_for_owner(AgentPubKey) -> Vec<AssignmentRecord>;
    GetNodeOfAgent: get_node_of_agent(AgentPubKey) -> Option<RegisteredNode>;
    RequestRecovery: request_recovery(AgentPubKey) -> ActionHash;
    ApproveRecovery: approve_recovery(ApproveRecoveryInput) -> ActionHash;
    GetRecoveryStatus: get_recovery_status(ActionHash) -> RecoveryStatus;
    GetRecoveriesFor: get_recoveries_for(AgentPubKey) -> Vec<RecoveryStatus>;
    // health.rs
    Heartbeat: heartbeat(HeartbeatInput) -> ActionHash;
    AttestHealth: attest_health(HealthAttestation) -> ActionHash;
    GetNodeHealth: get_node_health(String) -> NodeHealthSummary;
    GetSuspicions: get_suspicions(Option<String>) -> Vec<SuspicionView>;
    // lib.rs
    DeriveNodeId: derive_node_id(String) -> String;
    DeriveContentId: derive_content_id(ContentIdInput) -> String;
    // recovery.rs
    DetectFailedNodes: detect_failed_nodes(Option<DetectionInput>) -> Vec<NodeLiveness>;
    TriggerDisasterRecovery: trigger_disaster_recovery(String) -> RepairReport;
    GetShardHolders: get_shard_holders(String) -> Vec<ShardHolder>;
    SignTransfer: sign_transfer(TransferToSign) -> Signature;
    GetAssignment: get_assignment(EntryHash) -> Option<(CustodianAssignment, AssignmentStanding)>;
    // registration.rs
    RegisterNode: register_node(RegistrationInput) -> ActionHash;
    UpdateNodeCapacity: update_node_capacity(UpdateCapacityInput) -> ActionHash;
    DeregisterNode: deregister_node(DeregisterInput) -> Vec<ActionHash>;
    GetPublicationStatus: get_publication_status(Vec<ActionHash>) -> PublicationStatus;
    GetMyNode: get_my_node(()) -> Option<RegisteredNode>;
    GetNode: get_node(String) -> Option<RegisteredNode>;
    // rewards.rs
    RecordServiceEvent: record_service_event(RecordServiceInput) -> ActionHash;
    AcknowledgeService: acknowledge_service(AcknowledgeServiceInput) -> ActionHash;
    GetNodeEarnings: get_node_earnings(String) -> NodeEarnings;
    GetPendingServiceEvents: get_pending_service_events(AgentPubKey) -> Vec<ServiceEventView>;
}
