//! Inputs and outputs of the coordinator's zome functions. They live here,
//! beside the entries, so that clients (the sidecar, the tests, a Doorway
//! written in Rust) depend on this small crate and never on the coordinator.

use crate::{
    CommittedCustody, CustodianAssignment, FamilyProof, HeartbeatSummary, NodeRegistration,
    OffPeakHours, RecoveryRequest, Relationship,
};
use hdi::prelude::*;
use registry_core::heartbeat::Liveness;

/// Input of `update_node_capacity`: the plan's `(node_id, updates)`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct UpdateCapacityInput {
    /// The node to update (must be the caller's).
    pub node_id: String,
    /// What changes.
    pub updates: CapacityUpdates,
}

/// The fields `update_node_capacity` may change; absent fields stay.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct CapacityUpdates {
    /// New display name.
    pub display_name: Option<String>,
    /// New core count.
    pub cpu_cores: Option<u32>,
    /// New memory, GB.
    pub memory_gb: Option<f64>,
    /// New storage, TB.
    pub storage_tb: Option<f64>,
    /// New bandwidth, Mbps.
    pub bandwidth_mbps: Option<u32>,
    /// New region.
    pub region: Option<String>,
    /// New tier.
    pub steward_tier: Option<String>,
    /// Opt in or out of custody.
    pub custodian_opt_in: Option<bool>,
    /// New custody cap, GB.
    pub max_custody_gb: Option<f64>,
    /// New bandwidth cap, Mbps.
    pub max_bandwidth_mbps: Option<u32>,
    /// New CPU cap, percent.
    pub max_cpu_percent: Option<f64>,
    /// New off-peak window.
    pub off_peak_hours: Option<OffPeakHours>,
    /// New uptime figure.
    pub uptime_percent: Option<f64>,
}

/// Input of `deregister_node`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DeregisterInput {
    /// The node leaving (must be the caller's).
    pub node_id: String,
    /// Why, for the logs.
    pub reason: String,
}

/// A registration with the hash of the version it came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RegisteredNode {
    /// The latest version.
    pub registration: NodeRegistration,
    /// Its action hash (what assignments cite as `custodian_registration`).
    pub action_hash: ActionHash,
}

/// The plan's custodian query; every field optional.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct CustodianFilters {
    /// Required latest heartbeat status (default: any that takes custody).
    pub status: Option<String>,
    /// One region.
    pub region: Option<String>,
    /// Several regions (union with `region`).
    pub regions: Vec<String>,
    /// Lowest acceptable tier.
    pub min_tier: Option<String>,
    /// Nodes never to return.
    pub exclude_nodes: Vec<String>,
    /// Free custody needed, GB.
    pub min_storage_gb: Option<f64>,
    /// Free custody needed, bytes (exact; used with or instead of GB).
    pub min_storage_bytes: Option<u64>,
    /// The content being placed: makes the ranking deterministic per content
    /// and spreads contents across nodes.
    pub content_id: Option<String>,
    /// Most candidates to return.
    pub limit: Option<u32>,
}

/// One candidate custodian, ranked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RankedCustodian {
    /// The node's latest registration.
    pub registration: NodeRegistration,
    /// Its action hash.
    pub registration_hash: ActionHash,
    /// Custody bytes still free.
    pub free_custody_bytes: u64,
    /// Quality weight used in ranking, 0..=1.
    pub score: f64,
    /// The heartbeat that last renewed its presence lease (up to two lease
    /// periods old; liveness itself is its monitors' business).
    pub last_heartbeat: Option<HeartbeatSummary>,
}

/// A node's committed custody three ways, to show why selection offers it
/// (or not) and that what it published agrees with its index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CommittedCustodyView {
    /// The node.
    pub node_id: String,
    /// The total its newest presence link carries, if any.
    pub published: Option<CommittedCustody>,
    /// What a selection counts now: the published total with the
    /// recent-custody links since its cutoff (or the index, without one).
    pub counted_bytes: u64,
    /// What its whole custody index says.
    pub indexed_bytes: u64,
}

/// What monitors' verdicts say about a node: each monitor's newest verdict
/// of the current and previous verdict period.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct AttestationTally {
    /// Verdicts counted (one per attester).
    pub total: u32,
    /// Of which the subject answered.
    pub successes: u32,
    /// Distinct attesting nodes.
    pub distinct_attesters: u32,
    /// Mean response time of the successes, ms.
    pub avg_response_time_ms: Option<u32>,
}

/// Answer of `get_node_health`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeHealthSummary {
    /// The node.
    pub node_id: String,
    /// Whether a registration exists (not deregistered).
    pub registered: bool,
    /// The heartbeat of its newest presence lease, if it holds one.
    pub latest_heartbeat: Option<HeartbeatSummary>,
    /// Liveness judged against the time of the call, from its lease and its
    /// monitors' suspicions (see `registry_core::verdict`).
    pub liveness: Liveness,
    /// Distinct vetted monitors suspecting it now.
    #[serde(default)]
    pub suspected_by: u32,
    /// When the judgement was made.
    pub judged_at: Timestamp,
    /// Its monitors' standing verdicts.
    pub attestations: AttestationTally,
}

/// An assignment with its identity on the DHT.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AssignmentRecord {
    /// The assignment.
    pub assignment: CustodianAssignment,
    /// Its entry hash (identical decisions share it).
    pub entry_hash: EntryHash,
    /// When it was written, by its author's clock, if the reader fetched
    /// its record (a custodian leaves a freshly published shard to the
    /// publisher's push for a while before rebuilding it).
    #[serde(default)]
    pub assigned_at: Option<Timestamp>,
}

/// Where an assignment stands in its content's index, as this node sees it.
/// A custodian refuses a retired assignment but asks the sender to wait for
/// one it has not seen indexed yet: the entry and its links travel the DHT
/// separately, so the entry can arrive first.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignmentStanding {
    /// The latest round for its shard.
    Live,
    /// A later round for its shard supersedes it.
    Retired,
    /// Its content index does not list it (yet).
    NotYetIndexed,
}

/// Answer of `get_publication_status`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicationStatus {
    /// Actions at least one peer has validated.
    pub confirmed: u32,
    /// Actions asked about.
    pub total: u32,
}

impl PublicationStatus {
    /// Whether every action reached a peer.
    pub fn complete(&self) -> bool {
        self.confirmed >= self.total
    }
}

/// Input of `detect_failed_nodes`; absent fields take the defaults (60 s
/// failure window, 120 s grace).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
#[serde(default)]
pub struct DetectionInput {
    /// Silence after which a node is suspected, seconds.
    pub failure_window_secs: Option<i64>,
    /// Further silence before it is declared failed, seconds.
    pub grace_secs: Option<i64>,
}

/// A registered node that is not alive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeLiveness {
    /// The node.
    pub node_id: String,
    /// Its agent.
    pub agent: AgentPubKey,
    /// Suspected or failed.
    pub liveness: Liveness,
    /// The heartbeat of its newest presence lease, if it holds one.
    pub last_heartbeat: Option<HeartbeatSummary>,
    /// Distinct vetted monitors suspecting it.
    #[serde(default)]
    pub reporters: u32,
}

/// A holder of a shard of some content: where to fetch it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ShardHolder {
    /// The custodian.
    pub node_id: String,
    /// Its agent (to verify its answers).
    pub agent: AgentPubKey,
    /// Its sidecar's endpoint, if it published one.
    pub endpoint: Option<String>,
    /// The shard it holds.
    pub shard_index: u32,
    /// That shard's hash.
    pub shard_hash: String,
    /// The assignment it holds it under.
    pub assignment: EntryHash,
}

/// Signals of the DNA, to the local sidecar (and, for `ReplicateContent`,
/// to the chosen custodian by remote signal).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type")]
// Signals are rare and serialized at once; boxing would only complicate the
// wire type's construction.
#[allow(clippy::large_enum_variant)]
pub enum RegistrySignal {
    /// A custodian must obtain a shard it was just assigned.
    ReplicateContent {
        /// The content.
        content_id: String,
        /// The new assignment (the shard to obtain).
        assignment: AssignmentRecord,
        /// Live holders of the content's other shards.
        from_shard_holders: Vec<ShardHolder>,
        /// The custodian that must obtain it.
        to_custodian: String,
        /// The content's strategy.
        strategy: String,
    },
    /// A liveness beat from a node that heartbeats through the zome (a
    /// Doorway): relayed by the receiving monitor's `recv_remote_signal` to
    /// its sidecar, with the sender checked against the beat.
    Beat {
        /// The beat.
        beat: LivenessBeat,
        /// The agent that sent it (the caller of the remote signal).
        from: AgentPubKey,
    },
    /// No custodian could take a shard of a failed node.
    DisasterRecoveryFailed {
        /// The content.
        content_id: String,
        /// The shard left unplaced.
        shard_index: u32,
        /// The node that failed.
        failed_node_id: String,
        /// Why.
        reason: String,
    },
}

/// A shard that could not be re-homed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UnplacedShard {
    /// The content.
    pub content_id: String,
    /// The shard.
    pub shard_index: u32,
    /// Why.
    pub reason: String,
}

/// Answer of `trigger_disaster_recovery`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RepairReport {
    /// The failed node.
    pub failed_node_id: String,
    /// New assignments (existing identical ones included: the run is
    /// idempotent).
    pub replacements: Vec<AssignmentRecord>,
    /// Shards no custodian could take (retried on the next run).
    pub unplaced: Vec<UnplacedShard>,
}

/// Input of `sign_transfer`: bytes the sidecar needs signed with this
/// node's agent key, prefixed so the key can never be made to sign a
/// Holochain action or anything else.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TransferToSign {
    /// The canonical request text.
    pub message: String,
}

/// The prefix every transfer signature covers.
pub const TRANSFER_SIGNATURE_DOMAIN: &str = "elohim-shard-transfer-v1\n";

/// Answer of `get_node_health_consensus`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeHealthConsensus {
    /// The node.
    pub node_id: String,
    /// healthy, degraded, unhealthy or unknown.
    pub status: String,
    /// The full consensus (ratio, confidence, response time, reporters).
    pub consensus: registry_core::consensus::HealthConsensus,
}

/// One penalty of a node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PenaltySummary {
    /// Why.
    pub reason: String,
    /// The offending attestation.
    pub offence: ActionHash,
    /// Who recorded it.
    pub detected_by: String,
    /// When it was recorded: its cost fades from then on.
    pub recorded_at: Timestamp,
}

/// Answer of `probe_node`: whether the node answered a remote call just now.
/// A probe writes nothing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeProbe {
    /// The probed node.
    pub node_id: String,
    /// Whether it answered.
    pub answered: bool,
    /// The round trip, in milliseconds.
    pub response_time_ms: u32,
}

/// Answer of `get_reputation`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ReputationReport {
    /// The node.
    pub node_id: String,
    /// 100 minus its penalties (each offence once), at least 0.
    pub reputation: f64,
    /// Its penalties.
    pub penalties: Vec<PenaltySummary>,
}

/// A node `detect_byzantine_attackers` penalised.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SuspiciousNode {
    /// The node.
    pub node_id: String,
    /// Why.
    pub reason: String,
    /// The penalty entry written.
    pub penalty: ActionHash,
}

/// Input of `propose_custodian_assignment`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProposeInput {
    /// The region whose vetted nodes vote.
    pub region: String,
    /// The assignment to make if approved (`decided_by` must be `quorum`).
    pub assignment: CustodianAssignment,
}

/// Input of `cast_vote`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CastVoteInput {
    /// The proposal.
    pub proposal: ActionHash,
    /// For or against.
    pub approve: bool,
}

/// Votes on a proposal and their count.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VoteRecord {
    /// The proposal.
    pub proposal: ActionHash,
    /// Its eligible voters.
    pub eligible: Vec<String>,
    /// Valid votes found on the DHT.
    pub ballots: Vec<registry_core::quorum::Ballot>,
    /// Their count.
    pub tally: registry_core::quorum::Tally,
    /// The assignment made once the quorum was reached.
    pub executed: Option<EntryHash>,
}

/// Answer of `cast_vote`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VoteOutcome {
    /// The vote written.
    pub vote: ActionHash,
    /// The record after it.
    pub record: VoteRecord,
}

/// Input of `create_relationship`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CreateRelationshipInput {
    /// The other person's agent key.
    pub other: AgentPubKey,
    /// intimate or family.
    pub kind: String,
    /// Keep each other's private and intimate content.
    pub auto_custody_enabled: bool,
}

/// Input of `consent_to_relationship`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ConsentInput {
    /// The relationship.
    pub relationship: ActionHash,
    /// Give (true) or withdraw (false) consent.
    pub consent: bool,
}

/// A relationship and where each party's consent stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RelationshipState {
    /// The relationship's action hash.
    pub relationship_hash: ActionHash,
    /// The relationship.
    pub relationship: Relationship,
    /// Party a's newest consent (value and hash).
    pub consent_a: Option<(bool, ActionHash)>,
    /// Party b's newest consent.
    pub consent_b: Option<(bool, ActionHash)>,
    /// Both consent now.
    pub active: bool,
}

/// A family member whose node keeps a person's private content.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FamilyCustodian {
    /// The family member.
    pub agent: AgentPubKey,
    /// Their node.
    pub node_id: String,
    /// Its registration.
    pub registration_hash: ActionHash,
    /// Its sidecar.
    pub endpoint: Option<String>,
    /// The relationship and both consents.
    pub proof: FamilyProof,
}

/// Input of `approve_recovery`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ApproveRecoveryInput {
    /// The request.
    pub request: ActionHash,
    /// Approve or refuse.
    pub approve: bool,
}

/// Where a recovery request stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RecoveryStatus {
    /// The request's action hash.
    pub request_hash: ActionHash,
    /// The request.
    pub request: RecoveryRequest,
    /// Family members who approved (valid approvals only).
    pub approved_by: Vec<AgentPubKey>,
    /// Family members who refused.
    pub refused_by: Vec<AgentPubKey>,
    /// Approvals reached 2/3 of the family.
    pub verified: bool,
}

/// Input of `record_service_event`: what this node served one receiver over
/// a summary period.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RecordServiceInput {
    /// The agent that requested (and will acknowledge) the bytes.
    pub receiver: AgentPubKey,
    /// The shards served (sorted and made distinct by the zome).
    pub shard_hashes: Vec<String>,
    /// Bytes served in all.
    pub bytes: u64,
}

/// Input of `acknowledge_service`: what the receiver verified it got.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AcknowledgeServiceInput {
    /// The provider's event.
    pub event: ActionHash,
    /// The shards received and verified (as the event lists them).
    pub shard_hashes: Vec<String>,
    /// Bytes received.
    pub bytes: u64,
}

/// One service event as the earnings page shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ServiceEventView {
    /// The event's action hash.
    pub event_hash: ActionHash,
    /// The event.
    pub event: crate::ServiceEvent,
    /// Whether its receiver acknowledged it (only then it counts).
    pub acknowledged: bool,
}

/// Answer of `get_node_earnings`: a node's Shefa points from served content.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NodeEarnings {
    /// The node.
    pub node_id: String,
    /// Points of acknowledged events, in millipoints (what counts).
    pub acknowledged_millipoints: u64,
    /// Bytes of acknowledged events.
    pub acknowledged_bytes: u64,
    /// Acknowledged events.
    pub acknowledged_events: u32,
    /// Points claimed but not (yet) acknowledged, in millipoints: never
    /// counted.
    pub pending_millipoints: u64,
    /// Events not (yet) acknowledged.
    pub pending_events: u32,
    /// The newest events, newest first (at most 20).
    pub recent: Vec<ServiceEventView>,
}

/// Input of `delegate_working_key`: the working key and its window (see
/// `registry_core::delegation`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DelegateInput {
    /// The working agent.
    pub delegate: AgentPubKey,
    /// First instant it may write for the node (now).
    pub valid_from: Timestamp,
    /// Last instant it may.
    pub valid_until: Timestamp,
}

/// Answer of `whoami`: which node the calling agent writes for, and how.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ActingAs {
    /// The node.
    pub node_id: String,
    /// Its identity agent.
    pub identity: AgentPubKey,
    /// Its latest registration.
    pub registration: ActionHash,
    /// The delegation the caller writes under (`None`: it is the identity).
    pub delegation: Option<ActionHash>,
    /// Until when that delegation lets it write.
    pub valid_until: Option<Timestamp>,
    /// Records on the caller's own source chain (what each of its calls
    /// reads first).
    pub chain_len: u32,
}

/// A liveness beat: what a node sends its monitors every interval, by a
/// channel that writes nothing (direct signals from the sidecar, or remote
/// signals from `heartbeat`). The sender's key must own `node_id`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LivenessBeat {
    /// The beating node.
    pub node_id: String,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// The node's monitors now: a monitor left out is released.
    pub monitors: Vec<String>,
}

/// A node a monitor may be chosen among: present, watching others, with
/// the key its beats go to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PresentNode {
    /// The node.
    pub node_id: String,
    /// Its identity agent.
    pub agent: AgentPubKey,
    /// Its region.
    pub region: String,
    /// Whether it watches others.
    pub watcher: bool,
}

/// A suspicion or retraction as read from the suspicion index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SuspicionView {
    /// The suspected node.
    pub subject: String,
    /// The monitor.
    pub attester: String,
    /// Whether it suspects (false: it took a suspicion back).
    pub suspected: bool,
    /// When the verdict was recorded.
    pub recorded_at: Timestamp,
}

/// Input of `derive_content_id`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContentIdInput {
    /// The content's owner.
    pub owner: AgentPubKey,
    /// blake3 of the content, 64 hex digits.
    pub content_hash: String,
}

// --- Inputs in the plan's shapes ---------------------------------------------
//
// A Doorway calls the plan's functions with the plan's payloads (JavaScript
// objects from `@holochain/client`): ISO-8601 times, a `signature` field
// (Holochain already signs every action), a `tier` filter, a region or a
// list of regions. These input types accept those shapes and ours; every
// one of them refuses a field it does not know, so a misspelt field is named
// in the error instead of silently ignored.

/// A time as a caller writes it: a Holochain timestamp (microseconds since
/// the Unix epoch) or an ISO-8601 / RFC 3339 string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlexTime(pub Timestamp);

impl Serialize for FlexTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for FlexTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FlexTime;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("a Holochain timestamp (microseconds) or an ISO-8601 time string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FlexTime, E> {
                Ok(FlexTime(Timestamp::from_micros(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FlexTime, E> {
                i64::try_from(v)
                    .map(|v| FlexTime(Timestamp::from_micros(v)))
                    .map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FlexTime, E> {
                registry_core::time::parse_rfc3339_micros(v)
                    .map(|m| FlexTime(Timestamp::from_micros(m)))
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Input of `register_node`: the plan's registration (with `last_heartbeat`
/// and `signature`, which are accepted and not stored) or ours. Absent:
/// `latitude`/`longitude` (none), `zomes_hosted` (none), `custodian_opt_in`
/// (true: organ donation is the default), `off_peak_hours` (22:00-06:00),
/// `endpoint` (none), the times (stamped by the call).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistrationInput {
    /// `<label>-<16 hex of the agent key>`.
    pub node_id: String,
    /// The calling agent.
    pub agent_pub_key: AgentPubKey,
    /// Name shown to people.
    pub display_name: String,
    /// CPU cores.
    pub cpu_cores: u32,
    /// Memory, GB.
    pub memory_gb: f64,
    /// Storage, TB.
    pub storage_tb: f64,
    /// Bandwidth, Mbps.
    pub bandwidth_mbps: u32,
    /// One of the 20 known regions.
    pub region: String,
    /// Optional latitude.
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Optional longitude.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// DNAs/zomes hosted.
    #[serde(default)]
    pub zomes_hosted: Vec<String>,
    /// caretaker, guardian, steward or pioneer.
    pub steward_tier: String,
    /// Takes custody (default true).
    #[serde(default = "default_true")]
    pub custodian_opt_in: bool,
    /// Storage offered for custody, GB.
    pub max_custody_gb: f64,
    /// Bandwidth offered, Mbps.
    pub max_bandwidth_mbps: u32,
    /// CPU offered, percent.
    pub max_cpu_percent: f64,
    /// When bandwidth is offered (default 22:00-06:00).
    #[serde(default)]
    pub off_peak_hours: OffPeakHours,
    /// Self-reported uptime, percent.
    pub uptime_percent: f64,
    /// Where its sidecar takes transfers.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Ignored: the call stamps first registration.
    #[serde(default)]
    pub registered_at: Option<FlexTime>,
    /// Ignored: the call stamps it.
    #[serde(default)]
    pub updated_at: Option<FlexTime>,
    /// The plan's; ignored (liveness is the monitors' business).
    #[serde(default)]
    pub last_heartbeat: Option<FlexTime>,
    /// The plan's; ignored (Holochain signs every action with the agent key).
    #[serde(default, skip_serializing)]
    pub signature: Option<serde::de::IgnoredAny>,
}

fn default_true() -> bool {
    true
}

impl From<RegistrationInput> for NodeRegistration {
    fn from(r: RegistrationInput) -> Self {
        let stamp = |t: Option<FlexTime>| t.map_or(Timestamp::from_micros(0), |t| t.0);
        NodeRegistration {
            node_id: r.node_id,
            agent_pub_key: r.agent_pub_key,
            display_name: r.display_name,
            cpu_cores: r.cpu_cores,
            memory_gb: r.memory_gb,
            storage_tb: r.storage_tb,
            bandwidth_mbps: r.bandwidth_mbps,
            region: r.region,
            latitude: r.latitude,
            longitude: r.longitude,
            zomes_hosted: r.zomes_hosted,
            steward_tier: r.steward_tier,
            custodian_opt_in: r.custodian_opt_in,
            max_custody_gb: r.max_custody_gb,
            max_bandwidth_mbps: r.max_bandwidth_mbps,
            max_cpu_percent: r.max_cpu_percent,
            off_peak_hours: r.off_peak_hours,
            uptime_percent: r.uptime_percent,
            endpoint: r.endpoint,
            registered_at: stamp(r.registered_at),
            updated_at: stamp(r.updated_at),
        }
    }
}

/// Input of `heartbeat`: the plan's heartbeat (ISO time, `signature`
/// accepted and not stored) or ours. Absent: `active_connections` (0),
/// `custody_used_bytes` (0), `watcher` (false: a Doorway watches no one).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatInput {
    /// The beating node (the caller's).
    pub node_id: String,
    /// When it was sent (within 60 s of the call).
    pub timestamp: FlexTime,
    /// online, degraded, maintenance or offline.
    pub status: String,
    /// One-minute load average per core.
    pub current_load: f64,
    /// Open peer connections.
    #[serde(default)]
    pub active_connections: u32,
    /// Bytes of custody held.
    #[serde(default)]
    pub custody_used_bytes: u64,
    /// Whether the node watches others.
    #[serde(default)]
    pub watcher: bool,
    /// The plan's; ignored (Holochain signs every action).
    #[serde(default, skip_serializing)]
    pub signature: Option<serde::de::IgnoredAny>,
}

impl From<HeartbeatInput> for crate::NodeHeartbeat {
    fn from(h: HeartbeatInput) -> Self {
        crate::NodeHeartbeat {
            node_id: h.node_id,
            timestamp: h.timestamp.0,
            status: h.status,
            current_load: h.current_load,
            active_connections: h.active_connections,
            custody_used_bytes: h.custody_used_bytes,
            watcher: h.watcher,
        }
    }
}

/// One region or several: the plan's `getPreferredRegions()` gives a list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One region.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// Input of `get_available_custodians`: the plan's filters (`tier` is the
/// lowest acceptable tier, `region` one region or a list) or ours.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CustodianQuery {
    /// Required status (default: any that takes custody).
    pub status: Option<String>,
    /// One region or a list.
    pub region: Option<OneOrMany>,
    /// Several regions (union with `region`).
    pub regions: Vec<String>,
    /// The plan's name for the lowest acceptable tier.
    pub tier: Option<String>,
    /// Lowest acceptable tier (the higher of this and `tier` applies).
    pub min_tier: Option<String>,
    /// Nodes never to return.
    pub exclude_nodes: Vec<String>,
    /// Free custody needed, GB.
    pub min_storage_gb: Option<f64>,
    /// Free custody needed, bytes.
    pub min_storage_bytes: Option<u64>,
    /// The content being placed.
    pub content_id: Option<String>,
    /// Most candidates to return.
    pub limit: Option<u32>,
}

impl From<CustodianQuery> for CustodianFilters {
    fn from(q: CustodianQuery) -> Self {
        let mut regions = q.regions;
        let region = match q.region {
            Some(OneOrMany::One(r)) => Some(r),
            Some(OneOrMany::Many(list)) => {
                regions.extend(list);
                None
            }
            None => None,
        };
        // Both tier names mean "at least": the stricter one applies; an
        // unknown tier is left for selection to refuse by name.
        let rank = |t: &Option<String>| {
            t.as_deref()
                .map(|t| t.parse::<registry_core::StewardTier>().ok())
        };
        let min_tier = match (rank(&q.tier), rank(&q.min_tier)) {
            (Some(Some(a)), Some(Some(b))) => Some(a.max(b).as_str().to_string()),
            (Some(None), _) => q.tier,
            (_, Some(None)) => q.min_tier,
            _ => q.min_tier.or(q.tier),
        };
        CustodianFilters {
            status: q.status,
            region,
            regions,
            min_tier,
            exclude_nodes: q.exclude_nodes,
            min_storage_gb: q.min_storage_gb,
            min_storage_bytes: q.min_storage_bytes,
            content_id: q.content_id,
            limit: q.limit,
        }
    }
}
