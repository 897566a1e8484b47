//! Index bases and link tags, shared by the coordinator (which writes and
//! reads them) and validation (which recomputes them to check a link).

use crate::{CustodianAssignment, NodeHeartbeat, NodeRegistration};
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

/// Base listing the nodes whose latest heartbeat has a status.
pub fn status_base(status: &str) -> ExternResult<EntryHash> {
    path(&["status", status]).path_entry_hash()
}

/// Base listing the nodes of a region that beat in one presence bucket.
pub fn presence_base(region: &str, bucket: i64) -> ExternResult<EntryHash> {
    path(&["presence", region, &bucket.to_string()]).path_entry_hash()
}

/// Base listing every node, whatever its region, that beat in one presence
/// bucket: what a selection open to any region reads (two bases instead of
/// two per region).
pub fn presence_all_base(bucket: i64) -> ExternResult<EntryHash> {
    path(&["presence-all", &bucket.to_string()]).path_entry_hash()
}

/// Base listing the nodes of a region, in one shard (see
/// `registry_core::presence::presence_shard`), that beat in one presence
/// bucket: what placing a content in a region reads.
pub fn presence_shard_base(region: &str, bucket: i64, shard: u32) -> ExternResult<EntryHash> {
    path(&["presence", region, &bucket.to_string(), &shard.to_string()]).path_entry_hash()
}

/// Base listing every node in one shard that beat in one presence bucket:
/// what placing a content in any region reads.
pub fn presence_all_shard_base(bucket: i64, shard: u32) -> ExternResult<EntryHash> {
    path(&["presence-all", &bucket.to_string(), &shard.to_string()]).path_entry_hash()
}

/// Every base a node's presence link for `bucket` goes on: its region's and
/// the all-regions index, each whole and in the node's shard (out of
/// `shards`). Writers link from all four; validation accepts no other.
pub fn presence_bases(
    region: &str,
    node_id: &str,
    bucket: i64,
    shards: u32,
) -> ExternResult<[EntryHash; 4]> {
    let shard = registry_core::presence::presence_shard(node_id, shards);
    Ok([
        presence_base(region, bucket)?,
        presence_all_base(bucket)?,
        presence_shard_base(region, bucket, shard)?,
        presence_all_shard_base(bucket, shard)?,
    ])
}

/// Base pointing at one node's registration.
pub fn node_base(node_id: &str) -> ExternResult<EntryHash> {
    path(&["node", node_id]).path_entry_hash()
}

/// Base of one node's heartbeats in one time bucket.
pub fn heartbeat_base(node_id: &str, bucket: i64) -> ExternResult<EntryHash> {
    path(&["heartbeats", node_id, &bucket.to_string()]).path_entry_hash()
}

/// Base of the attestations about one node in one time bucket.
pub fn attestation_base(subject_node_id: &str, bucket: i64) -> ExternResult<EntryHash> {
    path(&["attestations", subject_node_id, &bucket.to_string()]).path_entry_hash()
}

/// Base of the attestations one node made in one time bucket.
pub fn attested_by_base(attester_node_id: &str, bucket: i64) -> ExternResult<EntryHash> {
    path(&["attested-by", attester_node_id, &bucket.to_string()]).path_entry_hash()
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

/// A heartbeat as its link carries it: the whole `NodeHeartbeat`.
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

/// What a presence link says: the node as registered and as it last
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
