//! Network-wide parameters, fixed in the DNA's properties so that every
//! node validates with the same numbers (changing one makes a new network).

use hdi::prelude::*;

/// The DNA's properties; absent fields take the defaults.
#[derive(Serialize, Deserialize, SerializedBytes, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(default)]
pub struct RegistryProperties {
    /// Most heartbeats one node may write in any 60 s (30 s beats = 2; the
    /// sidecar's fastest allowed interval, 5 s, = 12, plus slack for timer
    /// jitter and a beat right after a reconnect).
    pub max_heartbeats_per_minute: u32,
    /// Most attestations one node may write in any 60 s.
    pub max_attestations_per_minute: u32,
    /// How long a proposal stays open for votes (the plan's 120 s).
    pub vote_window_secs: u32,
    /// How long a node must have been registered to vote or to witness in
    /// a penalty (Sybil resistance by vetting, as Storj vets new nodes).
    pub min_voter_age_secs: u32,
    /// How fast penalties are forgiven: each one's cost halves every this
    /// many seconds (0: never). Only read when reputations are computed,
    /// never in validation.
    pub penalty_half_life_secs: u32,
    /// Silence after which a node is no longer offered as a custodian, and
    /// the length of a presence bucket (see `registry_core::presence`).
    /// Validation reads it to check a presence link's bucket.
    pub failure_window_secs: u32,
    /// Shards per presence bucket (see `registry_core::presence`): placing
    /// a content reads a few of them instead of every present node.
    /// Validation reads it to check a sharded presence link's base.
    pub presence_shards: u32,
    /// Eligible nodes a content's placement set holds at least (see
    /// `registry_core::presence`). Only read when selecting, never in
    /// validation.
    pub placement_set_min: u32,
    /// How long before its read a custodian's published custody total
    /// stops counting (see `registry_core::committed`): links younger than
    /// this are left to readers. Validation reads it to reject a total that
    /// claims links the custodian could not have seen yet.
    pub custody_total_lag_secs: u32,
}

impl Default for RegistryProperties {
    fn default() -> Self {
        RegistryProperties {
            max_heartbeats_per_minute: 15,
            max_attestations_per_minute: 30,
            vote_window_secs: 120,
            min_voter_age_secs: 24 * 3600,
            penalty_half_life_secs: registry_core::reputation::DEFAULT_PENALTY_HALF_LIFE_SECS
                as u32,
            failure_window_secs: registry_core::heartbeat::DEFAULT_FAILURE_WINDOW_SECS as u32,
            presence_shards: registry_core::presence::DEFAULT_PRESENCE_SHARDS,
            placement_set_min: registry_core::presence::DEFAULT_PLACEMENT_SET_MIN as u32,
            custody_total_lag_secs: registry_core::committed::DEFAULT_TOTAL_LAG_SECS as u32,
        }
    }
}

impl RegistryProperties {
    /// The presence shard count as used: at least one, at most
    /// `registry_core::presence::MAX_PRESENCE_SHARDS`.
    pub fn shards(&self) -> u32 {
        self.presence_shards
            .clamp(1, registry_core::presence::MAX_PRESENCE_SHARDS)
    }
}

/// The properties of this DNA (defaults when none were given).
pub fn registry_properties() -> ExternResult<RegistryProperties> {
    let bytes = dna_info()?.modifiers.properties;
    let raw = bytes.bytes();
    // YAML `null` arrives as msgpack nil.
    if raw.is_empty() || raw.as_slice() == [0xc0] {
        return Ok(RegistryProperties::default());
    }
    holochain_serialized_bytes::decode(raw).map_err(|e| wasm_error!(WasmErrorInner::Serialize(e)))
}
