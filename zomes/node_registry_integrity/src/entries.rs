//! Entry types. Field names are the plan's, snake_case on the wire; times are
//! Holochain `Timestamp`s.

use hdi::prelude::*;

/// Hours of the day when a node's bandwidth is offered.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(deny_unknown_fields)]
pub struct OffPeakHours {
    /// First hour, 0..=23, local time.
    pub start_hour: u8,
    /// Hour the window ends, 0..=23 (may wrap past midnight).
    pub end_hour: u8,
}

impl Default for OffPeakHours {
    /// The plan's default, 22:00-06:00.
    fn default() -> Self {
        OffPeakHours {
            start_hour: 22,
            end_hour: 6,
        }
    }
}

/// A node's declaration of what it is and what it offers.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeRegistration {
    /// `<label>-<16 hex of the agent key>`; see `registry_core::node_id`.
    pub node_id: String,
    /// The agent that runs the node; must be the author.
    pub agent_pub_key: AgentPubKey,
    /// Name shown to people.
    pub display_name: String,
    /// CPU cores of the machine.
    pub cpu_cores: u32,
    /// Memory of the machine, GB.
    pub memory_gb: f64,
    /// Storage of the machine, TB.
    pub storage_tb: f64,
    /// Bandwidth of the link, Mbps.
    pub bandwidth_mbps: u32,
    /// One of the 20 known regions.
    pub region: String,
    /// Optional latitude.
    pub latitude: Option<f64>,
    /// Optional longitude.
    pub longitude: Option<f64>,
    /// DNAs/zomes the node hosts.
    pub zomes_hosted: Vec<String>,
    /// caretaker, guardian, steward or pioneer; no higher than the
    /// contribution reaches.
    pub steward_tier: String,
    /// Whether the node takes custody ("organ donation": true by default).
    pub custodian_opt_in: bool,
    /// Storage offered for custody, GB.
    pub max_custody_gb: f64,
    /// Bandwidth offered, Mbps.
    pub max_bandwidth_mbps: u32,
    /// CPU offered, percent.
    pub max_cpu_percent: f64,
    /// When the bandwidth is offered.
    pub off_peak_hours: OffPeakHours,
    /// Self-reported uptime, percent.
    pub uptime_percent: f64,
    /// Where the node's sidecar accepts shard transfers (`http://host:port`).
    pub endpoint: Option<String>,
    /// When the node first registered.
    pub registered_at: Timestamp,
    /// When this version was written.
    pub updated_at: Timestamp,
}

impl NodeRegistration {
    /// The capacity it declares, as `registry_core` checks it.
    pub fn declared(&self) -> registry_core::capacity::DeclaredCapacity {
        registry_core::capacity::DeclaredCapacity {
            cpu_cores: self.cpu_cores,
            memory_gb: self.memory_gb,
            storage_tb: self.storage_tb,
            bandwidth_mbps: self.bandwidth_mbps,
            max_custody_gb: self.max_custody_gb,
            max_bandwidth_mbps: self.max_bandwidth_mbps,
            max_cpu_percent: self.max_cpu_percent,
            uptime_percent: self.uptime_percent,
        }
    }

    /// The highest tier its declared contribution earns.
    pub fn earned_tier(&self) -> registry_core::StewardTier {
        registry_core::tier::earned_tier(
            self.max_custody_gb,
            self.storage_tb,
            self.max_bandwidth_mbps,
            self.bandwidth_mbps,
            self.max_cpu_percent,
        )
    }
}

/// What a node says about itself when it renews its presence lease (the
/// plan's heartbeat). Not an entry: `heartbeat` writes it into the tag of
/// the node's lease link, and only when the lease is due (once per lease
/// period) or its status changed; otherwise a heartbeat writes nothing and
/// only tells the node's monitors it is alive (see `registry_core::monitor`).
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct NodeHeartbeat {
    /// The beating node; the author's own, or delegated to it.
    pub node_id: String,
    /// When it was sent (within 60 s of the action).
    pub timestamp: Timestamp,
    /// online, degraded, maintenance or offline.
    pub status: String,
    /// One-minute load average per core.
    pub current_load: f64,
    /// Open peer connections.
    pub active_connections: u32,
    /// Bytes of custody the node holds on disk.
    pub custody_used_bytes: u64,
    /// Whether the node watches others (runs the sidecar's monitor): only
    /// such nodes are chosen as monitors.
    #[serde(default)]
    pub watcher: bool,
}

/// The identity's grant of its node's routine writes to a working key for
/// one epoch (see `registry_core::delegation`). Authored by the identity
/// agent (the owner of `node_id`); records the working key writes cite it.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkingKeyDelegation {
    /// The node; owned by the author.
    pub node_id: String,
    /// The working agent; never the author.
    pub delegate: AgentPubKey,
    /// First instant the delegate may write for the node (within 60 s of
    /// the action: no backdating).
    pub valid_from: Timestamp,
    /// Last instant it may (at most the DNA's `max_delegation_secs` later).
    pub valid_until: Timestamp,
}

/// One node's observation of another's health: a monitor's verdict (the
/// plan's attestation), recorded when it changes, as counter-evidence, or
/// re-stated once per verdict period.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthAttestation {
    /// The observing node; the author's own, or delegated to it.
    pub attester_node_id: String,
    /// The observed node; never the attester.
    pub subject_node_id: String,
    /// Whether the subject answered (alive) or not (suspected).
    pub success: bool,
    /// Round trip in ms (the timeout when it did not answer).
    pub response_time_ms: u32,
    /// When observed (within 60 s of the action).
    pub timestamp: Timestamp,
    /// When the attester last heard the subject (a beat or an answered
    /// probe); no later than `timestamp`. Absent in the plan's shape.
    #[serde(default)]
    pub last_seen: Option<Timestamp>,
    /// The working-key delegation the author writes under, when it is not
    /// the attester's identity agent.
    #[serde(default)]
    pub delegation: Option<ActionHash>,
}

/// A custodian's duty to keep one shard of a content in one round.
///
/// Deliberately holds no creation time: two repairers that independently
/// make the same decision write byte-identical entries, which the DHT stores
/// once.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustodianAssignment {
    /// `registry_core::assignment::assignment_id(content, shard, round)`.
    pub assignment_id: String,
    /// The content's id.
    pub content_id: String,
    /// blake3 of the whole content, hex.
    pub content_hash: String,
    /// Length of the whole content, bytes.
    pub content_size_bytes: u64,
    /// Length of this shard, bytes (what counts against the custody cap).
    pub shard_size_bytes: u64,
    /// blake3 of this shard, hex, checked before the shard is kept or used.
    pub shard_hash: String,
    /// The agent whose content this is.
    pub owner_agent: AgentPubKey,
    /// intimate, private, public, ... (drives family auto-custody).
    pub reach: String,
    /// The node that keeps the shard.
    pub custodian_node_id: String,
    /// The custodian's registration (opted in) at decision time.
    pub custodian_registration: ActionHash,
    /// full_replica, erasure_coded or threshold_split.
    pub strategy: String,
    /// Shards needed to restore (1 for full_replica).
    pub threshold: u32,
    /// Shards in total.
    pub shard_count: u32,
    /// Which shard this is.
    pub shard_index: u32,
    /// The custodian of every shard in this round, by index: no node twice.
    pub round_custodians: Vec<String>,
    /// publisher, disaster_recovery, quorum or relationship_policy.
    pub decided_by: String,
    /// 0 at publication, +1 at every repair of this shard.
    pub decision_round: u32,
    /// Entry hash of the assignment a repair replaces.
    pub replaces: Option<EntryHash>,
    /// Region the content prefers.
    pub preferred_region: Option<String>,
    /// Lowest tier the content accepts.
    pub required_tier: Option<String>,
    /// For `decided_by: quorum`: the proposal that was voted on.
    pub quorum_proposal: Option<ActionHash>,
    /// For `decided_by: quorum`: the approving votes that reached 2/3 of
    /// the proposal's eligible voters.
    pub quorum_votes: Vec<ActionHash>,
    /// For `decided_by: relationship_policy`: the relationship between the
    /// owner and the custodian's agent, and both parties' consents to it.
    pub relationship: Option<FamilyProof>,
}

impl CustodianAssignment {
    /// The strategy as its type (the entry keeps the wire name, which
    /// validation checks is one of them).
    pub fn custody_strategy(
        &self,
    ) -> Result<registry_core::assignment::CustodyStrategy, registry_core::RegistryError> {
        self.strategy.parse()
    }

    /// How many shards of this content restore it: one whole copy for a
    /// full replica, else the threshold (at least one).
    pub fn shards_needed(&self) -> u32 {
        match self.custody_strategy() {
            Ok(registry_core::assignment::CustodyStrategy::FullReplica) => 1,
            _ => self.threshold.max(1),
        }
    }
}

/// Proof that two agents are in an auto-custody relationship both accepted:
/// the relationship and each party's consent, by hash.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FamilyProof {
    /// The relationship.
    pub relationship: ActionHash,
    /// Each party's consent (`consent: true`), once each: exactly two.
    pub consents: Vec<ActionHash>,
}

/// A relationship between two people (the plan's HumanRelationship), which
/// can make each the other's data custodian.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Relationship {
    /// One party (the author is one of the two).
    pub party_a: AgentPubKey,
    /// The other party.
    pub party_b: AgentPubKey,
    /// intimate or family.
    pub kind: String,
    /// Whether each party's private and intimate content is automatically
    /// kept by the other's node.
    pub auto_custody_enabled: bool,
    /// When proposed (within 60 s of its action).
    pub created_at: Timestamp,
}

/// One party's consent to a relationship, or its revocation (the newest of
/// a party's consents is in force). Each party speaks only for itself.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelationshipConsent {
    /// The relationship.
    pub relationship: ActionHash,
    /// The consenting party; must be the author.
    pub party: AgentPubKey,
    /// Consent given (true) or withdrawn (false).
    pub consent: bool,
    /// When (within 60 s of its action).
    pub timestamp: Timestamp,
}

/// A request by a new node to recover a person whose node was lost.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRequest {
    /// The lost node's agent (the person's old key).
    pub lost_agent: AgentPubKey,
    /// The new node's agent; must be the author.
    pub new_agent: AgentPubKey,
    /// The new node; owned by the author.
    pub new_node_id: String,
    /// The lost agent's family custodians when the request was made.
    pub family: Vec<AgentPubKey>,
    /// For each of `family`, in order, the proof that they and the lost
    /// agent are in an auto-custody relationship both consented to: the
    /// requester cannot name strangers (or its own other keys) as family.
    pub family_proofs: Vec<FamilyProof>,
    /// Approvals needed: 2/3 of the family, rounded up.
    pub required_approvals: u32,
    /// When (within 60 s of its action).
    pub created_at: Timestamp,
}

/// A family member's approval (or refusal) of a recovery, signed by that
/// member's agent like every action.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecoveryApproval {
    /// The request.
    pub request: ActionHash,
    /// The approving family member; must be the author.
    pub approver: AgentPubKey,
    /// Approve or refuse.
    pub approve: bool,
    /// Proof that the approver is the lost agent's consenting family.
    pub proof: FamilyProof,
}

/// A voter named in a proposal's snapshot of eligible voters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VoterRef {
    /// The voting node.
    pub node_id: String,
    /// Its registration (proves region and age at proposal time).
    pub registration: ActionHash,
}

/// A proposal to assign custody, decided by 2/3 of the region's vetted
/// nodes as snapshotted here when it is made.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AssignmentProposal {
    /// The node proposing; owned by the author.
    pub proposer_node_id: String,
    /// The region whose nodes decide.
    pub region: String,
    /// The assignment to make if approved (`decided_by: quorum`, no votes).
    pub assignment: CustodianAssignment,
    /// The eligible voters, fixed now: later registrations never vote.
    pub eligible_voters: Vec<VoterRef>,
    /// Votes after this time do not count (action time + vote window).
    pub deadline: Timestamp,
    /// The working-key delegation the author writes under, if any.
    #[serde(default)]
    pub delegation: Option<ActionHash>,
}

/// One node's vote on a proposal.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustodianVote {
    /// The proposal.
    pub proposal: ActionHash,
    /// The voting node; owned by the author.
    pub voter_node_id: String,
    /// For or against.
    pub approve: bool,
    /// The working-key delegation the author writes under, if any.
    #[serde(default)]
    pub delegation: Option<ActionHash>,
}

/// An attestation with the registration of the node that made it, so a
/// witness's age can be checked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    /// The attestation.
    pub attestation: ActionHash,
    /// The attester's registration.
    pub registration: ActionHash,
}

/// A reputation penalty, valid only with the evidence that justifies it.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReputationPenalty {
    /// The node penalised.
    pub offender_node_id: String,
    /// contradicted_consensus, false_accusation or repeated_failure.
    pub reason: String,
    /// The offending attestation (for repeated_failure: one of the failure
    /// reports about the offender). Counted once per offence.
    pub offence: ActionHash,
    /// Vetted witnesses whose attestations form the consensus the offence
    /// is judged against.
    pub evidence: Vec<Witness>,
    /// The node that recorded the penalty; the author's own or delegated.
    pub detected_by_node_id: String,
    /// The working-key delegation the author writes under, if any.
    #[serde(default)]
    pub delegation: Option<ActionHash>,
}

/// A Shefa economic event: the serving custodian's claim that it delivered
/// `bytes` of the listed shards to `receiver` over one summary period, with
/// the points the reward rule gives for that at its tier. Serving writes
/// nothing per request: the custodian sums what it served each receiver and
/// records one event per receiver per period. It earns nothing until the
/// receiver acknowledges it (see [`ServiceAcknowledgement`]), so points
/// cannot be minted alone.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceEvent {
    /// The serving node; the author's own or delegated.
    pub provider_node_id: String,
    /// A version of the provider's registration: its tier sets the points.
    pub provider_registration: ActionHash,
    /// The agent that received the bytes; never the provider.
    pub receiver: AgentPubKey,
    /// blake3 of each shard delivered, hex, distinct, sorted (1 to
    /// `MAX_SHARDS_PER_EVENT`).
    pub shard_hashes: Vec<String>,
    /// Bytes delivered in all.
    pub bytes: u64,
    /// The provider's tier, as in `provider_registration`.
    pub steward_tier: String,
    /// `registry_core::reward::reward_millipoints(bytes, tier)`.
    pub points_milli: u64,
    /// When recorded (within 60 s of the action).
    pub timestamp: Timestamp,
    /// The working-key delegation the author writes under, if any.
    #[serde(default)]
    pub delegation: Option<ActionHash>,
}

/// The receiver's acknowledgement that it received and verified what a
/// [`ServiceEvent`] claims; only acknowledged events count as earnings.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceAcknowledgement {
    /// The event acknowledged.
    pub event: ActionHash,
    /// The acknowledging agent: the event's receiver (its identity), the
    /// author itself or the identity that delegated to the author.
    pub receiver: AgentPubKey,
    /// The shards received (must match the event).
    pub shard_hashes: Vec<String>,
    /// Bytes received (must match the event).
    pub bytes: u64,
    /// The working-key delegation the author writes under, if any.
    #[serde(default)]
    pub delegation: Option<ActionHash>,
}
