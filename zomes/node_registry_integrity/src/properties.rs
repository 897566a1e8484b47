//! Network-wide parameters, fixed in the DNA's properties so that every
//! node validates with the same numbers (changing one makes a new network).

use hdi::prelude::*;

/// The DNA's properties; absent fields take the defaults.
#[derive(Serialize, Deserialize, SerializedBytes, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(default)]
pub struct RegistryProperties {
    /// Most presence leases one author may write in any 60 s. A lease is
    /// written once per lease period and on a status or registration
    /// change; the limit leaves room for a burst of those, not for a lease
    /// per heartbeat.
    pub max_leases_per_minute: u32,
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
    /// Length of a presence lease and of a presence bucket (see
    /// `registry_core::presence`): a node renews its lease at most once per
    /// period unless its status changes, and one silent for two periods is
    /// no longer present. Validation reads it to check a lease's bucket.
    pub presence_lease_secs: u32,
    /// Length of a verdict period (see `registry_core::monitor`): verdicts
    /// are linked from their subject's bucket of this length. Validation
    /// reads it to check an attestation link's bucket.
    pub verdict_period_secs: u32,
    /// Longest validity window a working-key delegation may claim (see
    /// `registry_core::delegation`).
    pub max_delegation_secs: u32,
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
    /// Fewest eligible voters (distinct agents, each vetted) a proposal may
    /// list: a proposer cannot hand a decision to an electorate of itself.
    pub min_quorum_voters: u32,
}

impl Default for RegistryProperties {
    fn default() -> Self {
        RegistryProperties {
            max_leases_per_minute: 15,
            max_attestations_per_minute: 30,
            vote_window_secs: 120,
            min_voter_age_secs: 24 * 3600,
            penalty_half_life_secs: registry_core::reputation::DEFAULT_PENALTY_HALF_LIFE_SECS
                as u32,
            presence_lease_secs: registry_core::presence::DEFAULT_PRESENCE_LEASE_SECS as u32,
            verdict_period_secs: registry_core::presence::DEFAULT_VERDICT_PERIOD_SECS as u32,
            max_delegation_secs: registry_core::delegation::DEFAULT_MAX_DELEGATION_SECS as u32,
            presence_shards: registry_core::presence::DEFAULT_PRESENCE_SHARDS,
            placement_set_min: registry_core::presence::DEFAULT_PLACEMENT_SET_MIN as u32,
            custody_total_lag_secs: registry_core::committed::DEFAULT_TOTAL_LAG_SECS as u32,
            min_quorum_voters: 3,
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

    /// The lease period in seconds, at least one.
    pub fn lease_secs(&self) -> i64 {
        self.presence_lease_secs.max(1) as i64
    }

    /// The verdict period in seconds, at least one.
    pub fn verdict_period(&self) -> i64 {
        self.verdict_period_secs.max(1) as i64
    }

    /// The verdict period a time falls in.
    pub fn verdict_period_of(&self, ts_micros: i64) -> i64 {
        ts_micros.div_euclid(self.verdict_period() * registry_core::MICROS_PER_SEC)
    }

    /// The lease bucket a time falls in.
    pub fn lease_bucket_of(&self, ts_micros: i64) -> i64 {
        registry_core::presence::presence_bucket(ts_micros, self.lease_secs())
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
