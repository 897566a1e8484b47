//! Every function this zome exports, in one place: its name, the shapes
//! of payload it accepts, and what it returns. Each decodes its payload
//! through [`crate::input::Checked`], so a bad payload is refused with the
//! field at fault, then calls the Rust function of the same name.

use crate::input::externs;
use crate::*;
use hdk::prelude::*;
use node_registry_integrity::*;

externs! {
    // assignments.rs
    assign_custodian(CustodianAssignment) -> ActionHash;
    get_assignments_for_content(String) -> Vec<CustodianAssignment>;
    get_assignment_records_for_content(String) -> Vec<AssignmentRecord>;
    get_assignment_history(String) -> Vec<AssignmentRecord>;
    get_assignments_for_node(String) -> Vec<CustodianAssignment>;
    get_assignment_records_for_node(String) -> Vec<AssignmentRecord>;
    retire_outranked(String) -> u32;
    // byzantine.rs
    ping(()) -> ();
    attest_peer_health(String) -> ActionHash;
    probe_node(String) -> NodeProbe;
    get_reputation(String) -> ReputationReport;
    get_node_health_consensus(String) -> NodeHealthConsensus;
    detect_byzantine_attackers(()) -> Vec<SuspiciousNode>;
    propose_custodian_assignment(ProposeInput) -> ActionHash;
    get_vote_record(ActionHash) -> VoteRecord;
    cast_vote(CastVoteInput) -> VoteOutcome;
    get_open_proposals(String) -> Vec<(ActionHash, AssignmentProposal)>;
    // delegation.rs
    delegate_working_key(DelegateInput) -> ActionHash;
    whoami(()) -> Option<ActingAs>;
    get_registry_properties(()) -> RegistryProperties;
    // discovery.rs
    get_nodes_by_region(String) -> Vec<NodeRegistration>;
    get_nodes_by_tier(String) -> Vec<NodeRegistration>;
    get_available_custodians(CustodianQuery) -> Vec<RankedCustodian>;
    get_committed_custody(String) -> CommittedCustodyView;
    get_present_nodes(Option<String>) -> Vec<PresentNode>;
    // family.rs
    create_relationship(CreateRelationshipInput) -> ActionHash;
    consent_to_relationship(ConsentInput) -> ActionHash;
    get_relationships(AgentPubKey) -> Vec<RelationshipState>;
    get_family_custodians(AgentPubKey) -> Vec<FamilyCustodian>;
    get_assignments_for_owner(AgentPubKey) -> Vec<AssignmentRecord>;
    get_node_of_agent(AgentPubKey) -> Option<RegisteredNode>;
    request_recovery(AgentPubKey) -> ActionHash;
    approve_recovery(ApproveRecoveryInput) -> ActionHash;
    get_recovery_status(ActionHash) -> RecoveryStatus;
    get_recoveries_for(AgentPubKey) -> Vec<RecoveryStatus>;
    // health.rs
    heartbeat(HeartbeatInput) -> ActionHash;
    attest_health(HealthAttestation) -> ActionHash;
    get_node_health(String) -> NodeHealthSummary;
    get_suspicions(Option<String>) -> Vec<SuspicionView>;
    // lib.rs
    derive_node_id(String) -> String;
    derive_content_id(ContentIdInput) -> String;
    // recovery.rs
    detect_failed_nodes(Option<DetectionInput>) -> Vec<NodeLiveness>;
    trigger_disaster_recovery(String) -> RecoveryReport;
    get_shard_holders(String) -> Vec<ShardHolder>;
    sign_transfer(TransferToSign) -> Signature;
    get_assignment(EntryHash) -> Option<(CustodianAssignment, AssignmentStanding)>;
    // registration.rs
    register_node(RegistrationInput) -> ActionHash;
    update_node_capacity(UpdateCapacityInput) -> ActionHash;
    deregister_node(DeregisterInput) -> Vec<ActionHash>;
    get_publication_status(Vec<ActionHash>) -> PublicationStatus;
    get_my_node(()) -> Option<RegisteredNode>;
    get_node(String) -> Option<RegisteredNode>;
    // rewards.rs
    record_service_event(RecordServiceInput) -> ActionHash;
    acknowledge_service(AcknowledgeServiceInput) -> ActionHash;
    get_node_earnings(String) -> NodeEarnings;
    get_pending_service_events(AgentPubKey) -> Vec<ServiceEventView>;
}
