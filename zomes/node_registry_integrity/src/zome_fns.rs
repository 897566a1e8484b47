//! The coordinator's zome functions as types: one marker per function,
//! naming it and fixing its input and output. Clients (the sidecar, the
//! tests, the benchmark) call `F::NAME` with an `F::Input` and read an
//! `F::Output`, so a renamed function or a changed shape is a compile error
//! in every client, not a failure twenty minutes into a test run. The
//! coordinator ties each extern to its marker (`externs.rs`), and a
//! foundation test checks every name is an export of the packed wasm.
//!
//! Three functions also accept wider shapes than their Rust input, for
//! callers that write the plan's payloads (a Doorway in JavaScript):
//! `register_node` takes [`RegistrationInput`], `heartbeat`
//! [`HeartbeatInput`], `get_available_custodians` [`CustodianQuery`]; what
//! a Rust client sends decodes as those (tested below).

use crate::*;
use hdi::prelude::*;

/// A zome function of the node registry's coordinator.
pub trait ZomeFn {
    /// Its name, as exported by the coordinator zome.
    const NAME: &'static str;
    /// What a Rust client sends.
    type Input: Serialize + serde::de::DeserializeOwned + std::fmt::Debug + Send;
    /// What it answers.
    type Output: Serialize + serde::de::DeserializeOwned + std::fmt::Debug + Send;
}

macro_rules! zome_fns {
    ($($(#[$doc:meta])* $marker:ident = $name:ident($input:ty) -> $output:ty;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $marker;
            impl ZomeFn for $marker {
                const NAME: &'static str = stringify!($name);
                type Input = $input;
                type Output = $output;
            }
        )*
        /// The name of every zome function above.
        pub const ALL: &[&str] = &[$(stringify!($name)),*];
    };
}

zome_fns! {
    /// `assign_custodian`: Records a custodian's duty to keep a shard, and indexes it by content and by custodian.
    AssignCustodian = assign_custodian(CustodianAssignment) -> ActionHash;
    /// `assign_custodians`: Records a whole placement's assignments in one call (one commit, one read of the chain), all or none.
    AssignCustodians = assign_custodians(Vec<CustodianAssignment>) -> Vec<ActionHash>;
    /// `get_assignments_for_content`: The live assignments of a content, one per shard, by shard index.
    GetAssignmentsForContent = get_assignments_for_content(String) -> Vec<CustodianAssignment>;
    /// `get_assignment_records_for_content`: As `get_assignments_for_content`, with each assignment's entry hash.
    GetAssignmentRecordsForContent = get_assignment_records_for_content(String) -> Vec<AssignmentRecord>;
    /// `get_assignment_history`: Every assignment ever made for a content (live and superseded), for audits and for checking that repairs did not duplicate work.
    GetAssignmentHistory = get_assignment_history(String) -> Vec<AssignmentRecord>;
    /// `get_assignments_for_node`: The live assignments a node holds.
    GetAssignmentsForNode = get_assignments_for_node(String) -> Vec<CustodianAssignment>;
    /// `get_assignment_records_for_node`: As `get_assignments_for_node`, with each assignment's entry hash.
    GetAssignmentRecordsForNode = get_assignment_records_for_node(String) -> Vec<AssignmentRecord>;
    /// `retire_outranked`: Marks retired every assignment of `node_id` that its content's index no longer has live (a repair, or a same-round decision by another node, took its shard) and that is not marked yet, so it stops counting in the node's committed custody.
    RetireOutranked = retire_outranked(String) -> u32;
    /// `ping`: Answers a peer's health probe.
    Ping = ping(()) -> ();
    /// `attest_peer_health`: Probes a peer with a remote call and records the outcome as this node's attestation when it differs from this node's standing verdict about the peer (or that verdict is older than a verdict period); otherwise writes nothing and returns the standing verdict's action.
    AttestPeerHealth = attest_peer_health(String) -> ActionHash;
    /// `probe_node`: Probes a peer with a remote call (`ping` on its identity agent) and says whether it answered, and how fast.
    ProbeNode = probe_node(String) -> NodeProbe;
    /// `get_reputation`: The node's reputation and penalties.
    GetReputation = get_reputation(String) -> ReputationReport;
    /// `get_node_health_consensus`: The consensus about a node over its monitors' standing verdicts (each attester's newest of the last two verdict periods), weighted by the attesters' reputation (unvetted attesters weigh nothing); a failure verdict needs two distinct reporters.
    GetNodeHealthConsensus = get_node_health_consensus(String) -> NodeHealthConsensus;
    /// `detect_byzantine_attackers`: Finds attesters that contradict a confident consensus and nodes a confident consensus finds unhealthy, and records a penalty for each, with the witnesses as evidence (validation re-checks it).
    DetectByzantineAttackers = detect_byzantine_attackers(()) -> Vec<SuspiciousNode>;
    /// `propose_custodian_assignment`: Puts an assignment to the vote of the region's vetted nodes, snapshotted now (registered for the minimum age, reputation above the floor).
    ProposeCustodianAssignment = propose_custodian_assignment(ProposeInput) -> ActionHash;
    /// `get_vote_record`: The votes on a proposal and their count; and the assignment, once made.
    GetVoteRecord = get_vote_record(ActionHash) -> VoteRecord;
    /// `cast_vote`: Votes on a proposal as this node; once approvals reach 2/3 of the eligible voters, makes the assignment, backed by the earliest approving votes that reach the quorum (so every executor writes the same entry).
    CastVote = cast_vote(CastVoteInput) -> VoteOutcome;
    /// `get_open_proposals`: Open proposals of a region (deadline not passed).
    GetOpenProposals = get_open_proposals(String) -> Vec<(ActionHash, AssignmentProposal)>;
    /// `delegate_working_key`: Delegates the caller's node's routine writes to `input.delegate` for the window given (validation caps its length and refuses a third key valid at once).
    DelegateWorkingKey = delegate_working_key(DelegateInput) -> ActionHash;
    /// `whoami`: Which node the calling agent writes for now, and under which delegation (none when it is the node's identity); `None` if it writes for no node.
    Whoami = whoami(()) -> Option<ActingAs>;
    /// `get_registry_properties`: The network's parameters (the DNA's properties), for clients that time their writes by them (lease and verdict periods).
    GetRegistryProperties = get_registry_properties(()) -> RegistryProperties;
    /// `get_nodes_by_region`: The registered nodes of a region.
    GetNodesByRegion = get_nodes_by_region(String) -> Vec<NodeRegistration>;
    /// `get_nodes_by_tier`: The registered nodes of a tier.
    GetNodesByTier = get_nodes_by_tier(String) -> Vec<NodeRegistration>;
    /// `get_available_custodians`: Candidate custodians, best first: opted in, present (a lease in the current or previous lease bucket) and not suspected by two vetted monitors, in an allowed status, region and tier, not excluded, with enough free custody (declared cap minus what is already assigned).
    GetAvailableCustodians = get_available_custodians(CustodianFilters) -> Vec<RankedCustodian>;
    /// `get_committed_custody`: A node's committed custody as its newest presence link publishes it, as a selection counts it, and as its custody index says (see [`CommittedCustodyView`]); an error if the node is not registered.
    GetCommittedCustody = get_committed_custody(String) -> CommittedCustodyView;
    /// `get_present_nodes`: The present nodes (a lease in the current or previous lease bucket), of `region` or of every region, with the key their monitors' beats go to and whether they watch others: what a node picks its monitors from.
    GetPresentNodes = get_present_nodes(Option<String>) -> Vec<PresentNode>;
    /// `create_relationship`: Proposes a relationship with another person and consents to it; the other person's consent makes it active.
    CreateRelationship = create_relationship(CreateRelationshipInput) -> ActionHash;
    /// `consent_to_relationship`: Gives or withdraws this agent's consent to a relationship.
    ConsentToRelationship = consent_to_relationship(ConsentInput) -> ActionHash;
    /// `get_relationships`: Every relationship of an agent, with where consent stands.
    GetRelationships = get_relationships(AgentPubKey) -> Vec<RelationshipState>;
    /// `get_family_custodians`: The people whose nodes keep `owner`'s private and intimate content: the other party of every active auto-custody relationship who runs a registered, opted-in node.
    GetFamilyCustodians = get_family_custodians(AgentPubKey) -> Vec<FamilyCustodian>;
    /// `get_assignments_for_owner`: The live assignments of everything `owner` has placed in custody.
    GetAssignmentsForOwner = get_assignments_for_owner(AgentPubKey) -> Vec<AssignmentRecord>;
    /// `get_node_of_agent`: The registered node of an agent, if any.
    GetNodeOfAgent = get_node_of_agent(AgentPubKey) -> Option<RegisteredNode>;
    /// `request_recovery`: Files a request, from this (new) node, to recover the person whose node ran as `lost_agent`; their family then approves or refuses it.
    RequestRecovery = request_recovery(AgentPubKey) -> ActionHash;
    /// `approve_recovery`: Approves (or refuses) a recovery as the lost person's family member.
    ApproveRecovery = approve_recovery(ApproveRecoveryInput) -> ActionHash;
    /// `get_recovery_status`: Where a recovery stands: verified once approvals reach 2/3 of the family snapshotted in the request.
    GetRecoveryStatus = get_recovery_status(ActionHash) -> RecoveryStatus;
    /// `get_recoveries_for`: Recovery requests filed for a lost agent.
    GetRecoveriesFor = get_recoveries_for(AgentPubKey) -> Vec<RecoveryStatus>;
    /// `heartbeat`: The plan's heartbeat: renews the caller's presence lease when one is due (no lease in the current bucket, a new status, a new registration version or watcher flag) and otherwise writes nothing.
    Heartbeat = heartbeat(NodeHeartbeat) -> ActionHash;
    /// `attest_health`: Records a monitor's verdict about another node: the attestation and its link on the subject's verdict bucket; a suspicion, or the alive verdict that takes one back, is also linked from the subject's region (and the all-regions index), where selection and detection see it.
    AttestHealth = attest_health(HealthAttestation) -> ActionHash;
    /// `get_node_health`: A node's health now: its newest lease, its liveness judged at the time of the call from that lease and its monitors' suspicions, and its monitors' standing verdicts.
    GetNodeHealth = get_node_health(String) -> NodeHealthSummary;
    /// `get_suspicions`: The suspicions and retractions of the current and previous lease bucket about the nodes of `region` (every region when `None`): what a monitor reads to answer a suspicion of a node it hears fine.
    GetSuspicions = get_suspicions(Option<String>) -> Vec<SuspicionView>;
    /// `derive_node_id`: The id a node run by the calling agent would have for `label`.
    DeriveNodeId = derive_node_id(String) -> String;
    /// `derive_content_id`: The id of a content: what an owner's assignments must carry as `content_id` (`blake3(owner key || content hash)`), for clients with no blake3 of their own (a Doorway in JavaScript).
    DeriveContentId = derive_content_id(ContentIdInput) -> String;
    /// `detect_failed_nodes`: Registered nodes that are suspected or failed now, judged from what the DHT holds (see `registry_core::verdict`): two vetted monitors suspecting a node, once its silence passes the failure window and the grace period, make it failed; one suspicion only suspected; a node without a lease in the last two lease periods is failed (the slow path for nodes nobody watches).
    DetectFailedNodes = detect_failed_nodes(Option<DetectionInput>) -> Vec<NodeLiveness>;
    /// `trigger_disaster_recovery`: Re-homes every live shard of a failed node.
    TriggerDisasterRecovery = trigger_disaster_recovery(String) -> RepairReport;
    /// `get_shard_holders`: Live holders of a content's shards.
    GetShardHolders = get_shard_holders(String) -> Vec<ShardHolder>;
    /// `sign_transfer`: Signs a sidecar transfer request with this node's agent key.
    SignTransfer = sign_transfer(TransferToSign) -> Signature;
    /// `get_assignment`: One assignment by entry hash, with where it stands in its content's index.
    GetAssignment = get_assignment(EntryHash) -> Option<(CustodianAssignment, AssignmentStanding)>;
    /// `register_node`: Registers the calling agent's node, or updates it if this agent already runs one (a restarted node re-registers without duplicating itself).
    RegisterNode = register_node(NodeRegistration) -> ActionHash;
    /// `update_node_capacity`: Changes a node's declared capacity, caps, tier or opt-in.
    UpdateNodeCapacity = update_node_capacity(UpdateCapacityInput) -> ActionHash;
    /// `deregister_node`: Removes the caller's node from the registry: its registration is deleted, it leaves every directory, and a last `offline` lease says it left on purpose rather than failed.
    DeregisterNode = deregister_node(DeregisterInput) -> Vec<ActionHash>;
    /// `get_publication_status`: How many of the given actions a peer has validated and acknowledged (validation receipts), so a node can wait before going offline.
    GetPublicationStatus = get_publication_status(Vec<ActionHash>) -> PublicationStatus;
    /// `get_my_node`: The node the calling agent writes for (its own, or the one whose identity delegated to it), if any.
    GetMyNode = get_my_node(()) -> Option<RegisteredNode>;
    /// `get_node`: A node's latest registration, if registered.
    GetNode = get_node(String) -> Option<RegisteredNode>;
    /// `record_service_event`: Records that this node served `bytes` of the listed shards to `receiver` over a summary period, at the tier of its current registration.
    RecordServiceEvent = record_service_event(RecordServiceInput) -> ActionHash;
    /// `acknowledge_service`: Acknowledges, as the receiver, an event for a shard this node received and verified.
    AcknowledgeService = acknowledge_service(AcknowledgeServiceInput) -> ActionHash;
    /// `get_node_earnings`: A node's Shefa earnings from served content: acknowledged events count, unacknowledged ones are shown as pending and never counted.
    GetNodeEarnings = get_node_earnings(String) -> NodeEarnings;
    /// `get_pending_service_events`: The service events naming `receiver` that no acknowledgement answers yet: what a receiver's sidecar checks against what it received.
    GetPendingServiceEvents = get_pending_service_events(AgentPubKey) -> Vec<ServiceEventView>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a Rust client sends for the functions that accept wider shapes
    /// decodes as those shapes, to the same values.
    #[test]
    fn rust_inputs_decode_as_the_wider_wire_shapes() {
        let agent = AgentPubKey::from_raw_32(vec![3; 32]);
        let now = Timestamp::from_micros(1_796_573_194_123_000);
        let r = NodeRegistration {
            node_id: "rack-0303030303030303".into(),
            agent_pub_key: agent,
            display_name: "rack".into(),
            cpu_cores: 8,
            memory_gb: 32.0,
            storage_tb: 2.0,
            bandwidth_mbps: 100,
            region: "eu-west".into(),
            latitude: Some(1.5),
            longitude: None,
            zomes_hosted: vec!["node_registry".into()],
            steward_tier: "guardian".into(),
            custodian_opt_in: false,
            max_custody_gb: 200.0,
            max_bandwidth_mbps: 20,
            max_cpu_percent: 15.0,
            off_peak_hours: OffPeakHours {
                start_hour: 1,
                end_hour: 5,
            },
            uptime_percent: 99.0,
            endpoint: Some("http://10.0.0.2:8787".into()),
            registered_at: now,
            updated_at: now,
        };
        let wire: RegistrationInput = round_trip(&r);
        assert_eq!(NodeRegistration::from(wire), r);
        let hb = NodeHeartbeat {
            node_id: r.node_id.clone(),
            timestamp: now,
            status: "online".into(),
            current_load: 0.5,
            active_connections: 2,
            custody_used_bytes: 7,
            watcher: true,
        };
        let wire: HeartbeatInput = round_trip(&hb);
        assert_eq!(NodeHeartbeat::from(wire), hb);
        let f = CustodianFilters {
            region: Some("eu-west".into()),
            regions: vec!["us-east".into()],
            min_tier: Some("steward".into()),
            limit: Some(3),
            ..Default::default()
        };
        let wire: CustodianQuery = round_trip(&f);
        assert_eq!(CustodianFilters::from(wire), f);
    }

    fn round_trip<
        T: Serialize + std::fmt::Debug,
        W: serde::de::DeserializeOwned + std::fmt::Debug,
    >(
        t: &T,
    ) -> W {
        let bytes = holochain_serialized_bytes::encode(t).unwrap();
        holochain_serialized_bytes::decode(&bytes).unwrap()
    }

    #[test]
    fn names_are_distinct() {
        let mut names = ALL.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
