//! Heartbeats, attestations and the health of a node as seen now.

use crate::assignments::committed_total_of;
use crate::directory::{leave_status_index, my_registration, registration_of_node};
use crate::{links_on, write_link};
use hdk::prelude::*;
use node_registry_integrity::*;
use registry_core::heartbeat::{
    bucket_of, buckets_covering, judge_liveness, LivenessPolicy, HEARTBEAT_BUCKET_SECS,
};
use registry_core::presence::{needs_presence_refresh, presence_bucket};
use registry_core::MICROS_PER_SEC;

/// How far back `get_node_health` looks for a last heartbeat.
pub const HEALTH_HORIZON_SECS: i64 = 6 * HEARTBEAT_BUCKET_SECS;
/// Age of the attestations that count (the plan's 5 minutes).
pub const ATTESTATION_WINDOW_SECS: i64 = 300;

/// The newest heartbeat of a node in the buckets of the horizon, reading
/// newest bucket first and stopping at the first that has one: a bounded
/// number of small reads whatever the node's history.
pub fn latest_heartbeat_within(
    node_id: &str,
    now: Timestamp,
    horizon_secs: i64,
) -> ExternResult<Option<HeartbeatSummary>> {
    for bucket in buckets_covering(now.as_micros(), horizon_secs) {
        let newest = links_on(heartbeat_base(node_id, bucket)?, LinkTypes::NodeToHeartbeat)?
            .into_iter()
            .filter_map(|l| HeartbeatSummary::from_tag(&l.tag).ok())
            .filter(|h| h.node_id == node_id)
            .max_by_key(|h| h.timestamp);
        if newest.is_some() {
            return Ok(newest);
        }
    }
    Ok(None)
}

/// The newest heartbeat within one bucket length (the current and previous
/// bucket): enough to judge liveness against any failure window shorter
/// than a bucket.
pub fn latest_heartbeat(node_id: &str, now: Timestamp) -> ExternResult<Option<HeartbeatSummary>> {
    latest_heartbeat_within(node_id, now, HEARTBEAT_BUCKET_SECS)
}

/// Links a node from the presence index of its region and from the
/// all-regions one, each whole and in the node's shard, in the bucket of the
/// heartbeat it reports (see `registry_core::presence`).
pub(crate) fn announce_presence(
    me: &RegisteredNode,
    beat: &HeartbeatSummary,
    properties: &RegistryProperties,
) -> ExternResult<()> {
    let bucket = presence_bucket(
        beat.timestamp.as_micros(),
        properties.failure_window_secs as i64,
    );
    // A node that takes custody totals what it holds, so selections need
    // not read its whole custody index; if the read fails they still can.
    let committed = if me.registration.custodian_opt_in {
        committed_total_of(
            &me.registration.node_id,
            sys_time()?,
            properties.custody_total_lag_secs,
        )
        .ok()
    } else {
        None
    };
    let tag = PresenceSummary {
        node: NodeSummary::of(&me.registration),
        heartbeat: beat.clone(),
        committed,
    }
    .to_tag()?;
    for base in presence_bases(
        &me.registration.region,
        &me.registration.node_id,
        bucket,
        properties.shards(),
    )? {
        write_link(
            base,
            me.action_hash.clone(),
            LinkTypes::PresenceIndex,
            tag.clone(),
        )?;
    }
    Ok(())
}

/// Records a heartbeat of the caller's node, as one link whose tag is the
/// heartbeat, and keeps its status index and its presence current (the
/// latter at most once per failure window, or when its status changes).
/// Returns the heartbeat link's action.
#[hdk_extern]
pub fn heartbeat(hb: NodeHeartbeat) -> ExternResult<ActionHash> {
    let previous = latest_heartbeat(&hb.node_id, sys_time()?)?;
    let summary = HeartbeatSummary::of(&hb);
    let hash = write_link(
        heartbeat_base(&hb.node_id, bucket_of(hb.timestamp.as_micros()))?,
        agent_info()?.agent_initial_pubkey,
        LinkTypes::NodeToHeartbeat,
        summary.to_tag()?,
    )?;
    let properties = registry_properties()?;
    let window = properties.failure_window_secs as i64;
    let status_changed = previous.as_ref().map(|p| p.status.as_str()) != Some(hb.status.as_str());
    // True on every status change as well, so it gates both indexes.
    let refresh = needs_presence_refresh(
        previous
            .as_ref()
            .map(|p| (p.timestamp.as_micros(), p.status.as_str())),
        hb.timestamp.as_micros(),
        &hb.status,
        window,
    );
    if refresh {
        if let Some(me) = my_registration()? {
            if me.registration.node_id == hb.node_id {
                if status_changed {
                    leave_status_index()?;
                    write_link(
                        status_base(&hb.status)?,
                        me.action_hash.clone(),
                        LinkTypes::StatusIndex,
                        NodeSummary::of(&me.registration).to_tag()?,
                    )?;
                }
                announce_presence(&me, &summary, &properties)?;
            }
        }
    }
    Ok(hash)
}

/// Records an observation of another node's health.
#[hdk_extern]
pub fn attest_health(attestation: HealthAttestation) -> ExternResult<ActionHash> {
    let hash = create_entry(EntryTypes::HealthAttestation(attestation.clone()))?;
    let tag = holochain_serialized_bytes::encode(&attestation)
        .map_err(|e| wasm_error!(WasmErrorInner::Serialize(e)))?;
    write_link(
        attestation_base(
            &attestation.subject_node_id,
            bucket_of(attestation.timestamp.as_micros()),
        )?,
        hash_entry(&attestation)?,
        LinkTypes::NodeToAttestation,
        LinkTag::new(tag.clone()),
    )?;
    write_link(
        attested_by_base(
            &attestation.attester_node_id,
            bucket_of(attestation.timestamp.as_micros()),
        )?,
        hash_entry(&attestation)?,
        LinkTypes::AttesterToAttestation,
        LinkTag::new(tag),
    )?;
    Ok(hash)
}

/// Attestations about a node younger than `window_secs`.
pub fn recent_attestations(
    node_id: &str,
    now: Timestamp,
    window_secs: i64,
) -> ExternResult<Vec<HealthAttestation>> {
    let since = now.as_micros() - window_secs * MICROS_PER_SEC;
    let mut out = Vec::new();
    for bucket in buckets_covering(now.as_micros(), window_secs) {
        for link in links_on(
            attestation_base(node_id, bucket)?,
            LinkTypes::NodeToAttestation,
        )? {
            if let Ok(a) = holochain_serialized_bytes::decode::<_, HealthAttestation>(&link.tag.0) {
                if a.subject_node_id == node_id && a.timestamp.as_micros() >= since {
                    out.push(a);
                }
            }
        }
    }
    Ok(out)
}

fn tally(atts: &[HealthAttestation]) -> AttestationTally {
    let successes: Vec<&HealthAttestation> = atts.iter().filter(|a| a.success).collect();
    let distinct: std::collections::BTreeSet<&str> =
        atts.iter().map(|a| a.attester_node_id.as_str()).collect();
    AttestationTally {
        total: atts.len() as u32,
        successes: successes.len() as u32,
        distinct_attesters: distinct.len() as u32,
        avg_response_time_ms: (!successes.is_empty()).then(|| {
            (successes
                .iter()
                .map(|a| a.response_time_ms as u64)
                .sum::<u64>()
                / successes.len() as u64) as u32
        }),
    }
}

/// A node's health now: latest heartbeat, liveness judged at the time of the
/// call, and the last five minutes of attestations.
#[hdk_extern]
pub fn get_node_health(node_id: String) -> ExternResult<NodeHealthSummary> {
    let now = sys_time()?;
    let latest = latest_heartbeat_within(&node_id, now, HEALTH_HORIZON_SECS)?;
    let liveness = judge_liveness(
        latest.as_ref().map(|h| h.timestamp.as_micros()),
        now.as_micros(),
        LivenessPolicy {
            failure_window_secs: registry_properties()?.failure_window_secs as i64,
            ..LivenessPolicy::default()
        },
    );
    Ok(NodeHealthSummary {
        registered: registration_of_node(&node_id)?.is_some(),
        latest_heartbeat: latest,
        liveness,
        judged_at: now,
        attestations: tally(&recent_attestations(
            &node_id,
            now,
            ATTESTATION_WINDOW_SECS,
        )?),
        node_id,
    })
}
