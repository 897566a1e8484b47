//! Presence leases, monitors' verdicts, and the health of a node as seen
//! now.
//!
//! A heartbeat writes a lease only when one is due (once per lease period,
//! or on a change of status or registration); otherwise it writes nothing
//! and, for a node that does not run its own monitor loop (a Doorway),
//! tells its monitors it is alive by remote signal. Verdicts are written by
//! monitors when they change (see `registry_core::monitor`); suspicions and
//! their retractions are also linked from their subject's region, which is
//! what selection and failure detection read.

use crate::assignments::committed_total_of;
use crate::directory::{acting, registration_of_node, Acting};
use crate::discovery::{present_nodes, Present};
use crate::{links_on, links_on_many, of_types, write_link};
use hdk::prelude::*;
use node_registry_integrity::*;
use registry_core::heartbeat::{check_claimed_time, LivenessPolicy};
use registry_core::monitor::{monitors_of, Verdict, DEFAULT_MONITORS};
use registry_core::presence::{needs_presence_refresh, presence_buckets_to_read, presence_shard};
use registry_core::reputation::VettingPolicy;
use registry_core::verdict::{judge, Judgement, VerdictView};
use std::collections::BTreeMap;

/// A node's newest presence lease: what it says, when it was written, and
/// the link's hash.
pub(crate) struct Lease {
    pub summary: PresenceSummary,
    pub written: Timestamp,
    pub hash: ActionHash,
}

/// The newest lease of `node_id` in the buckets a reader reads now: its own
/// shard of the current and previous bucket, two small reads whatever the
/// node's history.
pub(crate) fn latest_lease(
    node_id: &str,
    now: Timestamp,
    properties: &RegistryProperties,
) -> ExternResult<Option<Lease>> {
    let shard = presence_shard(node_id, properties.shards());
    let queries = presence_buckets_to_read(now.as_micros(), properties.lease_secs())
        .into_iter()
        .map(|b| {
            Ok((
                presence_shard_base(b, shard)?.into(),
                of_types([LinkTypes::PresenceIndex])?,
            ))
        })
        .collect::<ExternResult<_>>()?;
    Ok(links_on_many(queries)?
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let summary = PresenceSummary::from_tag(&l.tag).ok()?;
            (summary.node.node_id == node_id).then_some(Lease {
                summary,
                written: l.timestamp,
                hash: l.create_link_hash,
            })
        })
        .max_by_key(|l| l.written))
}

/// Writes a lease for the acting node: one link on its shard of the bucket
/// of the heartbeat it reports, its tag the node's summary, that heartbeat
/// and (for a custodian) the total of its committed custody.
pub(crate) fn announce_presence(
    me: &Acting,
    beat: &HeartbeatSummary,
    properties: &RegistryProperties,
) -> ExternResult<ActionHash> {
    let r = &me.node.registration;
    // A node that takes custody totals what it holds, so selections need
    // not read its whole custody index; if the read fails they still can.
    let committed = if r.custodian_opt_in {
        committed_total_of(&r.node_id, sys_time()?, properties.custody_total_lag_secs).ok()
    } else {
        None
    };
    let tag = PresenceSummary {
        node: NodeSummary::of(r),
        heartbeat: beat.clone(),
        committed,
        delegation: me.delegation.clone(),
    }
    .to_tag()?;
    write_link(
        presence_shard_base(
            properties.lease_bucket_of(beat.timestamp.as_micros()),
            presence_shard(&r.node_id, properties.shards()),
        )?,
        me.node.action_hash.clone(),
        LinkTypes::PresenceIndex,
        tag,
    )
}

/// The checks a lease would get from validation, made on every heartbeat
/// (most write nothing), so bad input is refused whether or not a lease is
/// due.
fn check_heartbeat_input(hb: &NodeHeartbeat, now: Timestamp) -> ExternResult<()> {
    hb.status
        .parse::<registry_core::NodeStatus>()
        .map_err(|e| crate::guest(e.to_string()))?;
    check_claimed_time("timestamp", hb.timestamp.as_micros(), now.as_micros())
        .map_err(|e| crate::guest(e.to_string()))?;
    if !(hb.current_load.is_finite() && (0.0..=1024.0).contains(&hb.current_load)) {
        return Err(crate::guest(format!(
            "current_load out of range: {}",
            hb.current_load
        )));
    }
    Ok(())
}

/// The plan's heartbeat: renews the caller's presence lease when one is
/// due (no lease in the current bucket, a new status, a new registration
/// version or watcher flag) and otherwise writes nothing. A node that does
/// not watch others itself (`watcher: false`, a Doorway) also beats to its
/// monitors by remote signal. Returns the lease in force.
pub fn heartbeat(hb: NodeHeartbeat) -> ExternResult<ActionHash> {
    let now = sys_time()?;
    let me = acting()?;
    if me.node_id() != hb.node_id {
        return Err(crate::guest(format!(
            "a heartbeat must come from the node's own agent: node {} is not run by this agent \
             (it runs {})",
            hb.node_id,
            me.node_id()
        )));
    }
    check_heartbeat_input(&hb, now)?;
    let properties = registry_properties()?;
    let summary = HeartbeatSummary::of(&hb);
    let previous = latest_lease(&hb.node_id, now, &properties)?;
    let due = match &previous {
        None => true,
        Some(p) => {
            needs_presence_refresh(
                Some((
                    p.summary.heartbeat.timestamp.as_micros(),
                    p.summary.heartbeat.status.as_str(),
                )),
                hb.timestamp.as_micros(),
                &hb.status,
                properties.lease_secs(),
            ) || p.summary.node != NodeSummary::of(&me.node.registration)
                || p.summary.heartbeat.watcher != hb.watcher
        }
    };
    let lease = match previous {
        Some(p) if !due => p.hash,
        _ => announce_presence(&me, &summary, &properties)?,
    };
    if !hb.watcher {
        beat_monitors(&me, &hb, now, &properties)?;
    }
    Ok(lease)
}

/// The present nodes that watch others, in `region` (all regions when it
/// has fewer than a node's monitors), as monitor candidates.
pub(crate) fn monitor_candidates(
    region: &str,
    now: Timestamp,
    properties: &RegistryProperties,
) -> ExternResult<Vec<Present>> {
    let all: Vec<Present> = present_nodes(now, properties, None)?
        .into_iter()
        .filter(|p| p.summary.heartbeat.watcher)
        .collect();
    let local: Vec<Present> = all
        .iter()
        .filter(|p| p.summary.node.region == region)
        .cloned()
        .collect();
    Ok(if local.len() > DEFAULT_MONITORS {
        local
    } else {
        all
    })
}

/// Tells the caller's monitors it is alive, by remote signal: no record.
fn beat_monitors(
    me: &Acting,
    hb: &NodeHeartbeat,
    now: Timestamp,
    properties: &RegistryProperties,
) -> ExternResult<()> {
    let candidates = monitor_candidates(&me.node.registration.region, now, properties)?;
    let monitors = monitors_of(
        &hb.node_id,
        candidates.iter().map(|c| c.summary.node.node_id.as_str()),
        DEFAULT_MONITORS,
    );
    let agents: Vec<AgentPubKey> = candidates
        .iter()
        .filter(|c| monitors.contains(&c.summary.node.node_id))
        .map(|c| c.summary.node.agent.clone())
        .collect();
    if agents.is_empty() {
        return Ok(());
    }
    let signal = RegistrySignal::Beat {
        beat: LivenessBeat {
            node_id: hb.node_id.clone(),
            sent_at: now,
            monitors,
        },
        from: agent_info()?.agent_initial_pubkey,
    };
    send_remote_signal(&signal, agents)
}

/// A verdict found on the DHT, with its record.
pub(crate) struct Observed {
    pub action: ActionHash,
    pub att: HealthAttestation,
}

/// The verdicts about a node of the current and previous verdict period,
/// each with its action hash, in one batched read and one fetch a verdict.
pub(crate) fn recent_verdicts(
    node_id: &str,
    now: Timestamp,
    properties: &RegistryProperties,
) -> ExternResult<Vec<Observed>> {
    let current = properties.verdict_period_of(now.as_micros());
    let queries = [current, current - 1]
        .into_iter()
        .map(|p| {
            Ok((
                attestation_base(node_id, p)?.into(),
                of_types([LinkTypes::NodeToAttestation])?,
            ))
        })
        .collect::<ExternResult<_>>()?;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for link in links_on_many(queries)?.into_iter().flatten() {
        let Some(eh) = link.target.into_entry_hash() else {
            continue;
        };
        if !seen.insert(eh.clone()) {
            continue;
        }
        let Some(record) = get(eh, GetOptions::default())? else {
            continue;
        };
        let Some(att): Option<HealthAttestation> = record.entry().to_app_option().ok().flatten()
        else {
            continue;
        };
        if att.subject_node_id == node_id {
            out.push(Observed {
                action: record.action_address().clone(),
                att,
            });
        }
    }
    Ok(out)
}

/// The newest verdict `attester` recorded about `subject` in the current
/// and previous verdict period, read from the subject's verdict buckets'
/// tags (no fetch).
pub(crate) fn latest_verdict_by(
    subject: &str,
    attester: &str,
    now: Timestamp,
    properties: &RegistryProperties,
) -> ExternResult<Option<(HealthAttestation, EntryHash)>> {
    let current = properties.verdict_period_of(now.as_micros());
    let mut newest: Option<(HealthAttestation, EntryHash)> = None;
    for p in [current, current - 1] {
        for link in links_on(attestation_base(subject, p)?, LinkTypes::NodeToAttestation)? {
            let (Ok(att), Some(eh)) = (
                attestation_from_tag(&link.tag),
                link.target.into_entry_hash(),
            ) else {
                continue;
            };
            if att.attester_node_id == attester
                && att.subject_node_id == subject
                && newest
                    .as_ref()
                    .is_none_or(|(n, _)| att.timestamp > n.timestamp)
            {
                newest = Some((att, eh));
            }
        }
    }
    Ok(newest)
}

/// Records a monitor's verdict about another node: the attestation and its
/// link on the subject's verdict bucket; a suspicion, or the alive verdict
/// that takes one back, is also linked from the subject's region (and the
/// all-regions index), where selection and detection see it.
pub fn attest_health(attestation: HealthAttestation) -> ExternResult<ActionHash> {
    let mut a = attestation;
    let me = crate::directory::acting_as()?;
    if let Some(me) = &me {
        if me.node_id() == a.attester_node_id && a.delegation.is_none() {
            a.delegation = me.delegation.clone();
        }
    }
    let properties = registry_properties()?;
    let now = sys_time()?;
    let previous = latest_verdict_by(&a.subject_node_id, &a.attester_node_id, now, &properties)?;
    let hash = create_entry(EntryTypes::HealthAttestation(a.clone()))?;
    let entry_hash = hash_entry(&a)?;
    write_link(
        attestation_base(
            &a.subject_node_id,
            properties.verdict_period_of(a.timestamp.as_micros()),
        )?,
        entry_hash.clone(),
        LinkTypes::NodeToAttestation,
        attestation_tag(&a)?,
    )?;
    let retracts = previous.is_some_and(|(p, _)| !p.success);
    if !a.success || retracts {
        index_suspicion(&a, &entry_hash, me.as_ref(), &properties)?;
    }
    Ok(hash)
}

/// Links a suspicion (or its retraction) from its subject's region and from
/// the all-regions index. Skipped when the subject is not registered (there
/// is nothing to select or repair) or the attester is not the caller's node.
fn index_suspicion(
    a: &HealthAttestation,
    entry_hash: &EntryHash,
    me: Option<&Acting>,
    properties: &RegistryProperties,
) -> ExternResult<()> {
    let Some(me) = me.filter(|m| m.node_id() == a.attester_node_id) else {
        return Ok(());
    };
    let Some(subject) = registration_of_node(&a.subject_node_id)? else {
        return Ok(());
    };
    let region = subject.registration.region.clone();
    let tag = SuspicionSummary {
        attestation: a.clone(),
        subject_region: region.clone(),
        subject_registration: subject.action_hash,
        attester_registration: me.node.action_hash.clone(),
        attester_registered_at: me.node.registration.registered_at,
    }
    .to_tag()?;
    let bucket = properties.lease_bucket_of(a.timestamp.as_micros());
    for base in [
        suspicion_base(&region, bucket)?,
        suspicion_all_base(bucket)?,
    ] {
        write_link(
            base,
            entry_hash.clone(),
            LinkTypes::RegionToSuspicion,
            tag.clone(),
        )?;
    }
    Ok(())
}

/// The suspicions (and retractions) of the current and previous lease
/// bucket about the nodes of `regions` (every region when empty), by
/// subject, read in one batch with whatever else the caller reads.
pub(crate) fn suspicion_queries(
    regions: &[String],
    now: Timestamp,
    properties: &RegistryProperties,
) -> ExternResult<Vec<(AnyLinkableHash, LinkTypeFilter)>> {
    let mut out = Vec::new();
    for b in presence_buckets_to_read(now.as_micros(), properties.lease_secs()) {
        if regions.is_empty() {
            out.push((
                suspicion_all_base(b)?.into(),
                of_types([LinkTypes::RegionToSuspicion])?,
            ));
        } else {
            for r in regions {
                out.push((
                    suspicion_base(r, b)?.into(),
                    of_types([LinkTypes::RegionToSuspicion])?,
                ));
            }
        }
    }
    Ok(out)
}

/// Suspicion links decoded, by subject, as the verdict judge reads them
/// (vetting by the attester's registration age only).
pub(crate) fn verdicts_by_subject(
    links: impl IntoIterator<Item = Link>,
    now: Timestamp,
    vetting: &VettingPolicy,
) -> BTreeMap<String, Vec<VerdictView>> {
    let mut out: BTreeMap<String, Vec<VerdictView>> = BTreeMap::new();
    for link in links {
        let Ok(s) = SuspicionSummary::from_tag(&link.tag) else {
            continue;
        };
        let a = &s.attestation;
        out.entry(a.subject_node_id.clone())
            .or_default()
            .push(VerdictView {
                attester: a.attester_node_id.clone(),
                verdict: if a.success {
                    Verdict::Alive
                } else {
                    Verdict::Suspected
                },
                last_seen_micros: a.last_seen.unwrap_or(a.timestamp).as_micros(),
                recorded_micros: link.timestamp.as_micros(),
                vetted: vetting.old_enough(s.attester_registered_at.as_micros(), now.as_micros()),
            });
    }
    out
}

/// The vetting policy of this DNA.
pub(crate) fn vetting() -> ExternResult<VettingPolicy> {
    Ok(VettingPolicy {
        min_age_secs: registry_properties()?.min_voter_age_secs as i64,
        ..Default::default()
    })
}

/// How `node_id` stands now: its newest lease and its monitors' suspicions
/// in its region, judged with `policy`.
pub(crate) fn judge_node(
    node_id: &str,
    region: &str,
    now: Timestamp,
    policy: LivenessPolicy,
    properties: &RegistryProperties,
) -> ExternResult<(Judgement, Option<Lease>)> {
    let lease = latest_lease(node_id, now, properties)?;
    let links = links_on_many(suspicion_queries(&[region.to_string()], now, properties)?)?;
    let views = verdicts_by_subject(links.into_iter().flatten(), now, &vetting()?)
        .remove(node_id)
        .unwrap_or_default();
    let judgement = judge(
        &views,
        lease.as_ref().map(|l| l.written.as_micros()),
        now.as_micros(),
        policy,
    );
    Ok((judgement, lease))
}

fn tally(observed: &[Observed]) -> AttestationTally {
    let mut newest: BTreeMap<&str, &HealthAttestation> = BTreeMap::new();
    for o in observed {
        let a = &o.att;
        if newest
            .get(a.attester_node_id.as_str())
            .is_none_or(|n| a.timestamp > n.timestamp)
        {
            newest.insert(&a.attester_node_id, a);
        }
    }
    let successes: Vec<&&HealthAttestation> = newest.values().filter(|a| a.success).collect();
    AttestationTally {
        total: newest.len() as u32,
        successes: successes.len() as u32,
        distinct_attesters: newest.len() as u32,
        avg_response_time_ms: (!successes.is_empty()).then(|| {
            (successes
                .iter()
                .map(|a| a.response_time_ms as u64)
                .sum::<u64>()
                / successes.len() as u64) as u32
        }),
    }
}

/// A node's health now: its newest lease, its liveness judged at the time
/// of the call from that lease and its monitors' suspicions, and its
/// monitors' standing verdicts.
pub fn get_node_health(node_id: String) -> ExternResult<NodeHealthSummary> {
    let now = sys_time()?;
    let properties = registry_properties()?;
    let registered = registration_of_node(&node_id)?;
    let region = registered
        .as_ref()
        .map(|r| r.registration.region.clone())
        .unwrap_or_default();
    let (judgement, lease) = judge_node(
        &node_id,
        &region,
        now,
        LivenessPolicy::default(),
        &properties,
    )?;
    Ok(NodeHealthSummary {
        registered: registered.is_some(),
        latest_heartbeat: lease.map(|l| l.summary.heartbeat),
        liveness: judgement.liveness,
        suspected_by: judgement.reporters,
        judged_at: now,
        attestations: tally(&recent_verdicts(&node_id, now, &properties)?),
        node_id,
    })
}

/// The suspicions and retractions of the current and previous lease bucket
/// about the nodes of `region` (every region when `None`): what a monitor
/// reads to answer a suspicion of a node it hears fine.
pub fn get_suspicions(region: Option<String>) -> ExternResult<Vec<SuspicionView>> {
    let regions: Vec<String> = region.into_iter().collect();
    for r in &regions {
        registry_core::region::parse_region(r).map_err(|e| crate::guest(e.to_string()))?;
    }
    let now = sys_time()?;
    let properties = registry_properties()?;
    let mut out = Vec::new();
    for link in links_on_many(suspicion_queries(&regions, now, &properties)?)?
        .into_iter()
        .flatten()
    {
        let Ok(s) = SuspicionSummary::from_tag(&link.tag) else {
            continue;
        };
        out.push(SuspicionView {
            subject: s.attestation.subject_node_id,
            attester: s.attestation.attester_node_id,
            suspected: !s.attestation.success,
            recorded_at: link.timestamp,
        });
    }
    Ok(out)
}
