//! Failure detection and disaster recovery.

use crate::assignments::{live_records_of_content, live_records_of_node, standing_of};
use crate::directory::{newest_per_node, registration_of_node};
use crate::discovery::{get_available_custodians, present_nodes};
use crate::health::{suspicion_queries, verdicts_by_subject, vetting};
use crate::{links_on, links_on_many};
use hdk::prelude::*;
use node_registry_integrity::*;
use registry_core::assignment::{assignment_id, DecisionSource};
use registry_core::heartbeat::LivenessPolicy;
use registry_core::region::KNOWN_REGIONS;
use registry_core::verdict::judge;

/// Registered nodes that are suspected or failed now, judged from what the
/// DHT holds (see `registry_core::verdict`): two vetted monitors suspecting
/// a node, once its silence passes the failure window and the grace
/// period, make it failed; one suspicion only suspected; a node without a
/// lease in the last two lease periods is failed (the slow path for nodes
/// nobody watches). A fixed number of batched reads: the region
/// directories, the presence buckets and the suspicion index.
pub fn detect_failed_nodes(input: Option<DetectionInput>) -> ExternResult<Vec<NodeLiveness>> {
    let input = input.unwrap_or_default();
    let defaults = LivenessPolicy::default();
    let policy = LivenessPolicy {
        failure_window_secs: input
            .failure_window_secs
            .unwrap_or(defaults.failure_window_secs),
        grace_secs: input.grace_secs.unwrap_or(defaults.grace_secs),
    };
    let now = sys_time()?;
    let properties = registry_properties()?;
    let mut links = Vec::new();
    for r in KNOWN_REGIONS {
        links.extend(links_on(region_base(r)?, LinkTypes::RegionIndex)?);
    }
    let present: std::collections::BTreeMap<String, crate::discovery::Present> =
        present_nodes(now, &properties, None)?
            .into_iter()
            .map(|p| (p.summary.node.node_id.clone(), p))
            .collect();
    let suspicions = links_on_many(suspicion_queries(&[], now, &properties)?)?;
    let mut verdicts = verdicts_by_subject(suspicions.into_iter().flatten(), now, &vetting()?);
    // A penalised monitor (reputation under the floor) is not vetted either.
    let mut unvetted = std::collections::BTreeSet::new();
    for views in verdicts.values() {
        for v in views.iter().filter(|v| v.vetted) {
            if unvetted.contains(&v.attester) {
                continue;
            }
            let rep = crate::byzantine::get_reputation(v.attester.clone())?.reputation;
            if rep <= registry_core::reputation::REPUTATION_FLOOR {
                unvetted.insert(v.attester.clone());
            }
        }
    }
    for views in verdicts.values_mut() {
        for v in views.iter_mut() {
            if unvetted.contains(&v.attester) {
                v.vetted = false;
            }
        }
    }
    let mut out = Vec::new();
    for entry in newest_per_node(links) {
        let node_id = entry.summary.node_id.clone();
        let lease = present.get(&node_id);
        let views = verdicts.remove(&node_id).unwrap_or_default();
        let judgement = judge(
            &views,
            lease.map(|l| l.written.as_micros()),
            now.as_micros(),
            policy,
        );
        if judgement.liveness.is_alive() {
            continue;
        }
        out.push(NodeLiveness {
            node_id,
            agent: entry.summary.agent.clone(),
            liveness: judgement.liveness,
            last_heartbeat: lease.map(|l| l.summary.heartbeat.clone()),
            reporters: judgement.reporters,
        });
    }
    Ok(out)
}

/// The holders of a content's live shards, with where to reach them.
pub(crate) fn holders(live: &[AssignmentRecord]) -> ExternResult<Vec<ShardHolder>> {
    let mut out = Vec::new();
    for r in live {
        let Some(reg) = registration_of_node(&r.assignment.custodian_node_id)? else {
            continue;
        };
        out.push(ShardHolder {
            node_id: r.assignment.custodian_node_id.clone(),
            agent: reg.registration.agent_pub_key,
            endpoint: reg.registration.endpoint,
            shard_index: r.assignment.shard_index,
            shard_hash: r.assignment.shard_hash.clone(),
            assignment: r.entry_hash.clone(),
        });
    }
    Ok(out)
}

/// Re-homes every live shard of a failed node. Each replacement is the next
/// round of the lost shard, on a node chosen by weighted rendezvous among
/// eligible custodians (region, tier and free custody as the content asks,
/// never a node already holding the content). Assignment ids and entries are
/// deterministic, so a repeated or concurrent run creates nothing new; a run
/// finds no work once the failed node's assignments are superseded.
///
/// The chosen custodian is told by remote signal (`ReplicateContent`), and
/// finds the assignment anyway when its sidecar reconciles. Shards no node
/// can take are reported and signalled locally (`DisasterRecoveryFailed`);
/// the next run retries them.
pub fn trigger_disaster_recovery(failed_node_id: String) -> ExternResult<RepairReport> {
    let mut report = RepairReport {
        failed_node_id: failed_node_id.clone(),
        ..Default::default()
    };
    for lost in live_records_of_node(&failed_node_id)? {
        let old = &lost.assignment;
        let live = live_records_of_content(&old.content_id)?;
        let mut round_custodians = old.round_custodians.clone();
        for r in &live {
            if let Some(slot) = round_custodians.get_mut(r.assignment.shard_index as usize) {
                *slot = r.assignment.custodian_node_id.clone();
            }
        }
        let mut exclude: Vec<String> = round_custodians.clone();
        exclude.push(failed_node_id.clone());
        // The owner's own node never custodies its content.
        if let Some(owner_node) = crate::directory::node_of_agent(&old.owner_agent)? {
            exclude.push(owner_node);
        }
        let next_round = old.decision_round + 1;
        let candidates = get_available_custodians(CustodianFilters {
            region: old.preferred_region.clone(),
            min_tier: old.required_tier.clone(),
            exclude_nodes: exclude,
            min_storage_bytes: Some(old.shard_size_bytes),
            content_id: Some(assignment_id(&old.content_id, old.shard_index, next_round)),
            limit: Some(1),
            ..Default::default()
        })?;
        let Some(chosen) = candidates.into_iter().next() else {
            let reason = "no eligible custodian with room".to_string();
            emit_signal(RegistrySignal::DisasterRecoveryFailed {
                content_id: old.content_id.clone(),
                shard_index: old.shard_index,
                failed_node_id: failed_node_id.clone(),
                reason: reason.clone(),
            })?;
            report.unplaced.push(UnplacedShard {
                content_id: old.content_id.clone(),
                shard_index: old.shard_index,
                reason,
            });
            continue;
        };
        round_custodians[old.shard_index as usize] = chosen.registration.node_id.clone();
        let replacement = CustodianAssignment {
            assignment_id: assignment_id(&old.content_id, old.shard_index, next_round),
            custodian_node_id: chosen.registration.node_id.clone(),
            custodian_registration: chosen.registration_hash.clone(),
            round_custodians,
            decided_by: DecisionSource::DisasterRecovery.as_str().to_string(),
            decision_round: next_round,
            replaces: Some(lost.entry_hash.clone()),
            // The replacement is this run's decision: it carries neither the
            // owner's family proof nor the old round's votes.
            relationship: None,
            quorum_proposal: None,
            quorum_votes: Vec::new(),
            ..old.clone()
        };
        crate::assignments::assign_custodian(replacement.clone())?;
        let record = AssignmentRecord {
            entry_hash: hash_entry(&replacement)?,
            assignment: replacement,
            assigned_at: None,
        };
        let others: Vec<AssignmentRecord> = live
            .into_iter()
            .filter(|r| r.assignment.custodian_node_id != failed_node_id)
            .collect();
        let signal = RegistrySignal::ReplicateContent {
            content_id: old.content_id.clone(),
            assignment: record.clone(),
            from_shard_holders: holders(&others)?,
            to_custodian: chosen.registration.node_id.clone(),
            strategy: old.strategy.clone(),
        };
        send_remote_signal(&signal, vec![chosen.registration.agent_pub_key.clone()])?;
        emit_signal(&signal)?;
        report.replacements.push(record);
    }
    Ok(report)
}

/// Live holders of a content's shards.
pub fn get_shard_holders(content_id: String) -> ExternResult<Vec<ShardHolder>> {
    holders(&live_records_of_content(&content_id)?)
}

/// Delivers a remote signal from another node to this node's sidecar,
/// for the kinds another node may send, and only as the sidecar may take
/// them: a liveness beat is passed on only if its sender owns the node it
/// beats for, and with the sender named; a repair's `ReplicateContent` is
/// passed on as a hint without the holders it lists (the sidecar reads the
/// assignment and its holders from the DHT, never from a signal). A
/// `DisasterRecoveryFailed` is this node's own zome's to raise, never
/// another node's: it is dropped.
#[hdk_extern]
pub fn recv_remote_signal(signal: RegistrySignal) -> ExternResult<()> {
    match signal {
        RegistrySignal::Beat { beat, .. } => {
            let from = call_info()?.provenance;
            if registry_core::node_id::check_node_id_owner(&beat.node_id, from.get_raw_32())
                .is_err()
            {
                return Ok(());
            }
            emit_signal(RegistrySignal::Beat { beat, from })
        }
        RegistrySignal::ReplicateContent {
            content_id,
            assignment,
            to_custodian,
            strategy,
            ..
        } => emit_signal(RegistrySignal::ReplicateContent {
            content_id,
            assignment,
            from_shard_holders: Vec::new(),
            to_custodian,
            strategy,
        }),
        RegistrySignal::DisasterRecoveryFailed { .. } => Ok(()),
    }
}

/// Signs a sidecar transfer request with this node's agent key. The domain
/// prefix keeps the key from signing anything but transfer requests.
pub fn sign_transfer(input: TransferToSign) -> ExternResult<Signature> {
    let me = agent_info()?.agent_initial_pubkey;
    let mut bytes = TRANSFER_SIGNATURE_DOMAIN.as_bytes().to_vec();
    bytes.extend_from_slice(input.message.as_bytes());
    sign_raw(me, bytes)
}

/// One assignment by entry hash, with where it stands in its content's index.
pub fn get_assignment(
    entry_hash: EntryHash,
) -> ExternResult<Option<(CustodianAssignment, AssignmentStanding)>> {
    let Some(record) = get(entry_hash.clone(), GetOptions::default())? else {
        return Ok(None);
    };
    let Some(a): Option<CustodianAssignment> = record.entry().to_app_option().ok().flatten() else {
        return Ok(None);
    };
    Ok(Some((a.clone(), standing_of(&a.content_id, &entry_hash)?)))
}

/// Lets other nodes deliver remote signals to this one, probe it, and send
/// its sidecar direct signals (liveness beats, which run no wasm here).
#[hdk_extern]
pub fn init(_: ()) -> ExternResult<InitCallbackResult> {
    let zome_name = zome_info()?.name;
    let mut functions = std::collections::HashSet::new();
    functions.insert((zome_name.clone(), FunctionName::from("recv_remote_signal")));
    functions.insert((zome_name, FunctionName::from("ping")));
    create_cap_grant(CapGrantEntry::new_zome_call_grant(
        "remote signals and health pings".into(),
        GrantConstraint::Unrestricted,
        GrantedFunctions::Listed(functions),
    ))?;
    create_cap_grant(CapGrantEntry::new_direct_signal_grant(
        "liveness beats".into(),
        GrantConstraint::Unrestricted,
    ))?;
    Ok(InitCallbackResult::Pass)
}
