//! Index bases and link tags, shared by the coordinator (which writes and
//! reads them) and validation (which recomputes them to check a link).

use crate::{CustodianAssignment, HealthAttestation, NodeHeartbeat, NodeRegistration};
use hdi::prelude::*;
use registry_core::capacity::gb_to_bytes;

fn path(parts: &[&str]) -> Path {
    Path::from(
        parts
            .iter()
            .map(|p| Component::from(p.to_string()))
            .collect::<Vec<_>>(),
    )
}

/// Base listing the nodes of a region.
pub fn region_base(region: &str) -> ExternResult<EntryHash> {
    path(&["region", region]).path_entry_hash()
}

/// Base listing the nodes of a tier.
pub fn tier_base(tier: &str) -> ExternResult<EntryHash> {
    path(&["tier", tier]).path_entry_hash()
}

/// Base holding the presence leases of the nodes of one shard (see
/// `registry_core::presence::presence_shard`) in one lease bucket: a node's
/// lease is this one link, whatever its region.
pub fn presence_shard_base(bucket: i64, shard: u32) -> ExternResult<EntryHash> {
    path(&["presence", &bucket.to_string(), &shard.to_string()]).path_entry_hash()
}

/// Base of the suspicions (and their retractions) about the nodes of a
/// region, in one lease bucket by the time the verdict was recorded.
pub fn suspicion_base(region: &str, bucket: i64) -> ExternResult<EntryHash> {
    path(&["suspicions", region, &bucket.to_string()]).path_entry_hash()
}

/// Base of the suspicions about every node, whatever its region, in one
/// lease bucket: what a selection or a detection open to any region reads.
pub fn suspicion_all_base(bucket: i64) -> ExternResult<EntryHash> {
    path(&["suspicions-all", &bucket.to_string()]).path_entry_hash()
}

/// Base pointing at one node's registration.
pub fn node_base(node_id: &str) -> ExternResult<EntryHash> {
    path(&["node", node_id]).path_entry_hash()
}

/// Base of the verdicts about one node in one verdict period.
pub fn attestation_base(subject_node_id: &str, period: i64) -> ExternResult<EntryHash> {
    path(&["attestations", subject_node_id, &period.to_string()]).path_entry_hash()
}

/// Base of the open proposals of a region.
pub fn proposals_base(region: &str) -> ExternResult<EntryHash> {
    path(&["proposals", region]).path_entry_hash()
}

/// Base of the penalties of one node.
pub fn penalties_base(node_id: &str) -> ExternResult<EntryHash> {
    path(&["penalties", node_id]).path_entry_hash()
}

/// Base of the service events (Shefa earnings) of one node.
pub fn earnings_base(node_id: &str) -> ExternResult<EntryHash> {
    path(&["earnings", node_id]).path_entry_hash()
}

/// Base of the assignments of one content.
pub fn content_base(content_id: &str) -> ExternResult<EntryHash> {
    path(&["content", content_id]).path_entry_hash()
}

/// Base of the assignments held by one node.
pub fn custody_base(node_id: &str) -> ExternResult<EntryHash> {
    path(&["custody", node_id]).path_entry_hash()
}

/// Base of the assignments linked to one node in one recent-custody bucket
/// (see `registry_core::committed`): what a selection reads to add the
/// newest assignments to the total the node published.
pub fn recent_custody_base(node_id: &str, bucket: i64) -> ExternResult<EntryHash> {
    path(&["custody-recent", node_id, &bucket.to_string()]).path_entry_hash()
}

fn encode_tag<T: serde::Serialize + std::fmt::Debug>(t: &T) -> ExternResult<LinkTag> {
    let bytes = holochain_serialized_bytes::encode(t)
        .map_err(|e| wasm_error!(WasmErrorInner::Serialize(e)))?;
    Ok(LinkTag::new(bytes))
}

fn decode_tag<T: serde::de::DeserializeOwned + std::fmt::Debug>(tag: &LinkTag) -> ExternResult<T> {
    holochain_serialized_bytes::decode(&tag.0)
        .map_err(|e| wasm_error!(WasmErrorInner::Serialize(e)))
}

/// What a directory link (region, tier, status, node id, agent) says about
/// the registration it points to: enough to rank custodians from links alone.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct NodeSummary {
    /// The node.
    pub node_id: String,
    /// Its identity agent (where its monitors send beats and probes).
    pub agent: AgentPubKey,
    /// Its region.
    pub region: String,
    /// Its tier.
    pub steward_tier: String,
    /// Whether it takes custody.
    pub custodian_opt_in: bool,
    /// Custody cap in bytes.
    pub max_custody_bytes: u64,
    /// Declared uptime.
    pub uptime_percent: f64,
    /// When the registration version was written (newest wins).
    pub updated_at: Timestamp,
}

impl NodeSummary {
    /// The summary of a registration.
    pub fn of(r: &NodeRegistration) -> Self {
        NodeSummary {
            node_id: r.node_id.clone(),
            agent: r.agent_pub_key.clone(),
            region: r.region.clone(),
            steward_tier: r.steward_tier.clone(),
            custodian_opt_in: r.custodian_opt_in,
            max_custody_bytes: gb_to_bytes(r.max_custody_gb),
            uptime_percent: r.uptime_percent,
            updated_at: r.updated_at,
        }
    }

    /// As a link tag.
    pub fn to_tag(&self) -> ExternResult<LinkTag> {
        encode_tag(self)
    }

    /// From a link tag.
    pub fn from_tag(tag: &LinkTag) -> ExternResult<Self> {
        decode_tag(tag)
    }
}

/// A heartbeat as a lease link carries it: the whole `NodeHeartbeat`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct HeartbeatSummary {
    /// The node.
    pub node_id: String,
    /// Claimed time of the heartbeat.
    pub timestamp: Timestamp,
    /// Reported status.
    pub status: String,
    /// Reported load per core.
    pub current_load: f64,
    /// Reported custody held, bytes.
    pub custody_used_bytes: u64,
    /// Reported open peer connections.
    #[serde(default)]
    pub active_connections: u32,
    /// Whether the node watches others (may be chosen as a monitor).
    #[serde(default)]
    pub watcher: bool,
}

impl HeartbeatSummary {
    /// The summary of a heartbeat.
    pub fn of(h: &NodeHeartbeat) -> Self {
        HeartbeatSummary {
            node_id: h.node_id.clone(),
            timestamp: h.timestamp,
            status: h.status.clone(),
            current_load: h.current_load,
            custody_used_bytes: h.custody_used_bytes,
            active_connections: h.active_connections,
            watcher: h.watcher,
        }
    }

    /// As a link tag.
    pub fn to_tag(&self) -> ExternResult<LinkTag> {
        encode_tag(self)
    }

    /// From a link tag.
    pub fn from_tag(tag: &LinkTag) -> ExternResult<Self> {
        decode_tag(tag)
    }
}

/// What a presence lease says: the node as registered and as it last
/// reported itself, enough to rank it as a custodian without further reads.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct PresenceSummary {
    /// The registration version the link points to.
    pub node: NodeSummary,
    /// The heartbeat that wrote the link (status, load, custody held).
    pub heartbeat: HeartbeatSummary,
    /// The node's committed custody as it totalled it, when it could.
    #[serde(default)]
    pub committed: Option<CommittedCustody>,
    /// The working-key delegation the link's author writes under, when it
    /// is not the node's identity agent.
    #[serde(default)]
    pub delegation: Option<ActionHash>,
}

/// A custodian's total of its committed custody (see
/// `registry_core::committed`): the bytes of the assignments linked to it
/// before `cutoff`, less those retired.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct CommittedCustody {
    /// Bytes committed by assignments linked before the cutoff.
    pub bytes: u64,
    /// Links at or after this time are not in `bytes`.
    pub cutoff: Timestamp,
}

impl PresenceSummary {
    /// As a link tag.
    pub fn to_tag(&self) -> ExternResult<LinkTag> {
        encode_tag(self)
    }

    /// From a link tag.
    pub fn from_tag(tag: &LinkTag) -> ExternResult<Self> {
        decode_tag(tag)
    }
}

/// What a retirement link says: the assignment that took the retired one's
/// shard, which validation checks outranks it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct RetirementSummary {
    /// The outranking assignment's entry.
    pub superseded_by: EntryHash,
    /// Bytes of the retired shard, so a reader of the recent-custody
    /// bases can take them off a node's published total.
    pub retired_bytes: u64,
    /// Who marks it, one of two: the author of the outranking decision,
    /// citing the action that created it ...
    #[serde(default)]
    pub decided_in: Option<ActionHash>,
    /// ... or the retired custodian itself (its identity, or a working key
    /// citing this delegation), when `decided_in` is absent.
    #[serde(default)]
    pub delegation: Option<ActionHash>,
}

impl RetirementSummary {
    /// As a link tag.
    pub fn to_tag(&self) -> ExternResult<LinkTag> {
        encode_tag(self)
    }

    /// From a link tag.
    pub fn from_tag(tag: &LinkTag) -> ExternResult<Self> {
        decode_tag(tag)
    }
}

/// Whether the assignment at `winner` (its entry hash) takes the shard of
/// the one at `loser`: the same content and shard, and it outranks it as
/// the content's index decides which assignment is live.
pub fn outranks(
    winner: (&CustodianAssignment, &EntryHash),
    loser: (&CustodianAssignment, &EntryHash),
) -> bool {
    let claim = |(a, h): (&CustodianAssignment, &EntryHash)| registry_core::assignment::SlotClaim {
        shard_index: a.shard_index,
        round: a.decision_round,
        tiebreak: h.get_raw_39().to_vec(),
    };
    winner.0.content_id == loser.0.content_id && claim(winner).outranks(&claim(loser))
}

/// What an assignment link says about its assignment: enough to compute a
/// node's committed custody and a content's live shards from links alone.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct AssignmentSummary {
    /// The content.
    pub content_id: String,
    /// The shard.
    pub shard_index: u32,
    /// Its round.
    pub decision_round: u32,
    /// The custodian.
    pub custodian_node_id: String,
    /// Bytes it holds.
    pub shard_size_bytes: u64,
}

impl AssignmentSummary {
    /// The summary of an assignment.
    pub fn of(a: &CustodianAssignment) -> Self {
        AssignmentSummary {
            content_id: a.content_id.clone(),
            shard_index: a.shard_index,
            decision_round: a.decision_round,
            custodian_node_id: a.custodian_node_id.clone(),
            shard_size_bytes: a.shard_size_bytes,
        }
    }

    /// As a link tag.
    pub fn to_tag(&self) -> ExternResult<LinkTag> {
        encode_tag(self)
    }

    /// From a link tag.
    pub fn from_tag(tag: &LinkTag) -> ExternResult<Self> {
        decode_tag(tag)
    }
}

/// What a delegation link says: the node and the window, so a working
/// agent learns whom it writes for from one link read.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct DelegationSummary {
    /// The node.
    pub node_id: String,
    /// First instant the key may write for it.
    pub valid_from: Timestamp,
    /// Last instant it may.
    pub valid_until: Timestamp,
}

impl DelegationSummary {
    /// The summary of a delegation.
    pub fn of(d: &crate::WorkingKeyDelegation) -> Self {
        DelegationSummary {
            node_id: d.node_id.clone(),
            valid_from: d.valid_from,
            valid_until: d.valid_until,
        }
    }

    /// As a link tag.
    pub fn to_tag(&self) -> ExternResult<LinkTag> {
        encode_tag(self)
    }

    /// From a link tag.
    pub fn from_tag(tag: &LinkTag) -> ExternResult<Self> {
        decode_tag(tag)
    }
}

/// What a suspicion link says: the monitor's verdict, the subject's region
/// (checked against its registration) and the monitor's registration time
/// (checked too), so readers judge it from the tag alone, vetting included.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct SuspicionSummary {
    /// The verdict (suspected, or alive when it retracts a suspicion).
    pub attestation: HealthAttestation,
    /// The subject's region.
    pub subject_region: String,
    /// A registration of the subject showing that region.
    pub subject_registration: ActionHash,
    /// A registration of the attester.
    pub attester_registration: ActionHash,
    /// When the attester first registered (its age decides its vetting).
    pub attester_registered_at: Timestamp,
}

impl SuspicionSummary {
    /// As a link tag.
    pub fn to_tag(&self) -> ExternResult<LinkTag> {
        encode_tag(self)
    }

    /// From a link tag.
    pub fn from_tag(tag: &LinkTag) -> ExternResult<Self> {
        decode_tag(tag)
    }
}

/// An attestation as its link carries it.
pub fn attestation_tag(a: &HealthAttestation) -> ExternResult<LinkTag> {
    encode_tag(a)
}

/// An attestation from its link's tag.
pub fn attestation_from_tag(tag: &LinkTag) -> ExternResult<HealthAttestation> {
    decode_tag(tag)
}
