//! Peer health attestation, consensus, reputation and quorum decisions.

use crate::directory::{
    fetch_registration, my_registration, newest_per_node, registration_of_node,
};
use crate::{guest, links_on, write_link};
use hdk::prelude::*;
use node_registry_integrity::*;
use registry_core::consensus::{
    contradicts, health_consensus, AttestationView, HealthVerdict, CONSENSUS_WINDOW_SECS,
};
use registry_core::heartbeat::buckets_covering;
use registry_core::quorum::{required_approvals, tally, Ballot};
use registry_core::region::{parse_region, KNOWN_REGIONS};
use registry_core::reputation::{reputation, PenaltyReason, VettingPolicy};
use registry_core::MICROS_PER_SEC;
use std::collections::{BTreeMap, BTreeSet};

/// Confidence a consensus needs before anyone is penalised against it.
pub const PENALTY_MIN_CONFIDENCE: f64 = 0.9;

fn vetting() -> ExternResult<VettingPolicy> {
    Ok(VettingPolicy {
        min_age_secs: registry_properties()?.min_voter_age_secs as i64,
        ..Default::default()
    })
}

/// Answers a peer's health probe.
#[hdk_extern]
pub fn ping(_: ()) -> ExternResult<()> {
    Ok(())
}

/// Probes a peer with a remote call, measures the round trip and records
/// the outcome as this node's attestation.
#[hdk_extern]
pub fn attest_peer_health(subject_node_id: String) -> ExternResult<ActionHash> {
    Ok(probe_node(subject_node_id)?.attestation)
}

/// Probes a peer as [`attest_peer_health`] does and says whether it
/// answered. A node's DHT view can lag (it just joined, or gossip is slow),
/// so heartbeats missing from it are not proof of death: a node that
/// answers is not repaired away.
#[hdk_extern]
pub fn probe_node(subject_node_id: String) -> ExternResult<NodeProbe> {
    let me = my_registration()?.ok_or_else(|| guest("this agent runs no registered node"))?;
    let subject = registration_of_node(&subject_node_id)?
        .ok_or_else(|| guest(format!("node {subject_node_id} is not registered")))?;
    let zome = zome_info()?.name;
    let start = sys_time()?;
    let response = call_remote(
        subject.registration.agent_pub_key,
        zome,
        "ping".into(),
        None,
        (),
    )?;
    let end = sys_time()?;
    let elapsed_ms = ((end.as_micros() - start.as_micros()) / 1000).clamp(0, 120_000) as u32;
    let answered = matches!(response, ZomeCallResponse::Ok(_));
    let attestation = crate::health::attest_health(HealthAttestation {
        attester_node_id: me.registration.node_id,
        subject_node_id: subject_node_id.clone(),
        success: answered,
        response_time_ms: elapsed_ms,
        timestamp: end,
    })?;
    Ok(NodeProbe {
        node_id: subject_node_id,
        answered,
        response_time_ms: elapsed_ms,
        attestation,
    })
}

/// The node's reputation and penalties.
#[hdk_extern]
pub fn get_reputation(node_id: String) -> ExternResult<ReputationReport> {
    let mut penalties = Vec::new();
    for link in links_on(penalties_base(&node_id)?, LinkTypes::NodeToPenalty)? {
        let Some(hash) = link.target.into_action_hash() else {
            continue;
        };
        let Some(record) = get(hash, GetOptions::default())? else {
            continue;
        };
        let Some(p): Option<ReputationPenalty> = record.entry().to_app_option().ok().flatten()
        else {
            continue;
        };
        if p.offender_node_id == node_id {
            penalties.push(PenaltySummary {
                reason: p.reason,
                offence: p.offence,
                detected_by: p.detected_by_node_id,
                recorded_at: record.action().timestamp(),
            });
        }
    }
    let offences: Vec<(String, PenaltyReason, i64)> = penalties
        .iter()
        .filter_map(|p| {
            Some((
                p.offence.to_string(),
                p.reason.parse().ok()?,
                p.recorded_at.as_micros(),
            ))
        })
        .collect();
    let half_life = registry_properties()?.penalty_half_life_secs as i64;
    Ok(ReputationReport {
        reputation: reputation(
            offences.iter().map(|(o, r, t)| (o.as_str(), *r, *t)),
            sys_time()?.as_micros(),
            half_life,
        ),
        node_id,
        penalties,
    })
}

/// An attestation found on the DHT, with what weighing it needs.
struct Observed {
    action: ActionHash,
    att: HealthAttestation,
}

/// Attestations about a node within the consensus window, with their
/// action hashes.
fn observed_about(node_id: &str, now: Timestamp) -> ExternResult<Vec<Observed>> {
    let since = now.as_micros() - CONSENSUS_WINDOW_SECS * MICROS_PER_SEC;
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for bucket in buckets_covering(now.as_micros(), CONSENSUS_WINDOW_SECS) {
        for link in links_on(
            attestation_base(node_id, bucket)?,
            LinkTypes::NodeToAttestation,
        )? {
            let Some(eh) = link.target.into_entry_hash() else {
                continue;
            };
            if !seen.insert(eh.clone()) {
                continue;
            }
            let Some(record) = get(eh, GetOptions::default())? else {
                continue;
            };
            let Some(att): Option<HealthAttestation> =
                record.entry().to_app_option().ok().flatten()
            else {
                continue;
            };
            if att.subject_node_id == node_id && att.timestamp.as_micros() >= since {
                out.push(Observed {
                    action: record.action_address().clone(),
                    att,
                });
            }
        }
    }
    Ok(out)
}

/// Weighs attesters: 0 unless vetted, else reputation / 100. Remembers each
/// attester's registration hash for evidence.
struct Weigher {
    policy: VettingPolicy,
    now: Timestamp,
    cache: BTreeMap<String, (f64, Option<ActionHash>)>,
}

impl Weigher {
    fn weigh(&mut self, node_id: &str) -> ExternResult<(f64, Option<ActionHash>)> {
        if let Some(w) = self.cache.get(node_id) {
            return Ok(w.clone());
        }
        let w = match registration_of_node(node_id)? {
            Some(reg) => {
                let rep = get_reputation(node_id.to_string())?.reputation;
                let weight = self.policy.attestation_weight(
                    reg.registration.registered_at.as_micros(),
                    self.now.as_micros(),
                    rep,
                );
                (weight, Some(reg.action_hash))
            }
            None => (0.0, None),
        };
        self.cache.insert(node_id.to_string(), w.clone());
        Ok(w)
    }
}

fn consensus_over(
    observed: &[Observed],
    weigher: &mut Weigher,
) -> ExternResult<registry_core::consensus::HealthConsensus> {
    let mut views = Vec::new();
    for o in observed {
        views.push(AttestationView {
            attester: o.att.attester_node_id.clone(),
            success: o.att.success,
            response_time_ms: o.att.response_time_ms,
            timestamp_micros: o.att.timestamp.as_micros(),
            weight: weigher.weigh(&o.att.attester_node_id)?.0,
        });
    }
    Ok(health_consensus(&views, weigher.now.as_micros()))
}

/// The consensus about a node over the last five minutes of attestations,
/// weighted by the attesters' reputation (unvetted attesters weigh
/// nothing); a failure verdict needs two distinct reporters.
#[hdk_extern]
pub fn get_node_health_consensus(node_id: String) -> ExternResult<NodeHealthConsensus> {
    let now = sys_time()?;
    let mut weigher = Weigher {
        policy: vetting()?,
        now,
        cache: BTreeMap::new(),
    };
    let consensus = consensus_over(&observed_about(&node_id, now)?, &mut weigher)?;
    Ok(NodeHealthConsensus {
        node_id,
        status: consensus.status.as_str().to_string(),
        consensus,
    })
}

fn already_penalised(offender: &str, offence: &ActionHash) -> ExternResult<bool> {
    Ok(get_reputation(offender.to_string())?
        .penalties
        .iter()
        .any(|p| p.offence == *offence))
}

/// Finds attesters that contradict a confident consensus and nodes a
/// confident consensus finds unhealthy, and records a penalty for each,
/// with the witnesses as evidence (validation re-checks it). Each offence
/// is penalised once however many nodes run this.
#[hdk_extern]
pub fn detect_byzantine_attackers(_: ()) -> ExternResult<Vec<SuspiciousNode>> {
    let me = my_registration()?.ok_or_else(|| guest("this agent runs no registered node"))?;
    let my_id = me.registration.node_id;
    let now = sys_time()?;
    let mut weigher = Weigher {
        policy: vetting()?,
        now,
        cache: BTreeMap::new(),
    };
    let mut links = Vec::new();
    for r in KNOWN_REGIONS {
        links.extend(links_on(region_base(r)?, LinkTypes::RegionIndex)?);
    }
    let mut found = Vec::new();
    for subject in newest_per_node(links) {
        let observed = observed_about(&subject.summary.node_id, now)?;
        let consensus = consensus_over(&observed, &mut weigher)?;
        if consensus.confidence < PENALTY_MIN_CONFIDENCE
            || !matches!(
                consensus.status,
                HealthVerdict::Healthy | HealthVerdict::Unhealthy
            )
        {
            continue;
        }
        // Witnesses: vetted attesters agreeing with the verdict, in a
        // stable order so a detector's repeated runs write the same entry.
        let agrees = |o: &&Observed| !contradicts(o.att.success, &consensus, 0.0);
        let mut witnesses: Vec<(Witness, &Observed)> = Vec::new();
        for o in observed.iter().filter(agrees) {
            if let (w, Some(reg)) = weigher.weigh(&o.att.attester_node_id)? {
                if w > 0.0
                    && !witnesses
                        .iter()
                        .any(|(_, x)| x.att.attester_node_id == o.att.attester_node_id)
                {
                    witnesses.push((
                        Witness {
                            attestation: o.action.clone(),
                            registration: reg,
                        },
                        o,
                    ));
                }
            }
        }
        witnesses.sort_by(|a, b| a.0.attestation.cmp(&b.0.attestation));
        witnesses.truncate(20);

        let mut offences: Vec<(String, PenaltyReason, &Observed)> = Vec::new();
        for o in observed.iter().filter(|o| !agrees(o)) {
            let reason = if !o.att.success && consensus.status == HealthVerdict::Healthy {
                PenaltyReason::FalseAccusation
            } else {
                PenaltyReason::ContradictedConsensus
            };
            offences.push((o.att.attester_node_id.clone(), reason, o));
        }
        if consensus.status == HealthVerdict::Unhealthy {
            if let Some(first) = witnesses.first() {
                offences.push((
                    subject.summary.node_id.clone(),
                    PenaltyReason::RepeatedFailure,
                    first.1,
                ));
            }
        }
        for (offender, reason, offence) in offences {
            if offender == my_id || already_penalised(&offender, &offence.action)? {
                continue;
            }
            let evidence: Vec<Witness> = witnesses
                .iter()
                .filter(|(_, o)| {
                    reason == PenaltyReason::RepeatedFailure || o.att.attester_node_id != offender
                })
                .map(|(w, _)| w.clone())
                .collect();
            if evidence.len() < 3 {
                continue;
            }
            let penalty = ReputationPenalty {
                offender_node_id: offender.clone(),
                reason: reason.as_str().to_string(),
                offence: offence.action.clone(),
                evidence,
                detected_by_node_id: my_id.clone(),
            };
            let hash = create_entry(EntryTypes::ReputationPenalty(penalty))?;
            write_link(
                penalties_base(&offender)?,
                hash.clone(),
                LinkTypes::NodeToPenalty,
                (),
            )?;
            found.push(SuspiciousNode {
                node_id: offender,
                reason: reason.as_str().to_string(),
                penalty: hash,
            });
        }
    }
    Ok(found)
}

/// Puts an assignment to the vote of the region's vetted nodes, snapshotted
/// now (registered for the minimum age, reputation above the floor).
#[hdk_extern]
pub fn propose_custodian_assignment(input: ProposeInput) -> ExternResult<ActionHash> {
    let me = my_registration()?.ok_or_else(|| guest("this agent runs no registered node"))?;
    let region = parse_region(&input.region).map_err(|e| guest(e.to_string()))?;
    let props = registry_properties()?;
    let policy = vetting()?;
    let now = sys_time()?;
    // A little margin so validation, at the action's own time, agrees.
    let judged_at = now.as_micros() - 5 * MICROS_PER_SEC;
    let mut eligible = Vec::new();
    for e in newest_per_node(links_on(region_base(region)?, LinkTypes::RegionIndex)?) {
        let Some(reg) = fetch_registration(&e.target)? else {
            continue;
        };
        let rep = get_reputation(reg.registration.node_id.clone())?.reputation;
        if policy.vetted(reg.registration.registered_at.as_micros(), judged_at, rep) {
            eligible.push(VoterRef {
                node_id: reg.registration.node_id,
                registration: reg.action_hash,
            });
        }
    }
    if eligible.is_empty() {
        return Err(guest(format!("no vetted voters in region {region}")));
    }
    let mut assignment = input.assignment;
    assignment.decided_by = registry_core::assignment::DecisionSource::Quorum
        .as_str()
        .to_string();
    assignment.quorum_proposal = None;
    assignment.quorum_votes = vec![];
    let proposal = AssignmentProposal {
        proposer_node_id: me.registration.node_id,
        region: region.to_string(),
        assignment,
        eligible_voters: eligible,
        deadline: Timestamp::from_micros(
            now.as_micros() + props.vote_window_secs as i64 * MICROS_PER_SEC,
        ),
    };
    let hash = create_entry(EntryTypes::AssignmentProposal(proposal))?;
    write_link(
        proposals_base(region)?,
        hash.clone(),
        LinkTypes::RegionToProposal,
        (),
    )?;
    Ok(hash)
}

fn proposal(hash: &ActionHash) -> ExternResult<AssignmentProposal> {
    let record =
        get(hash.clone(), GetOptions::default())?.ok_or_else(|| guest("proposal not found"))?;
    record
        .entry()
        .to_app_option()
        .ok()
        .flatten()
        .ok_or_else(|| guest("not a proposal"))
}

/// The votes on a proposal and their count; and the assignment, once made.
#[hdk_extern]
pub fn get_vote_record(proposal_hash: ActionHash) -> ExternResult<VoteRecord> {
    let p = proposal(&proposal_hash)?;
    let mut ballots = Vec::new();
    let mut hashes = Vec::new();
    for link in links_on(proposal_hash.clone(), LinkTypes::ProposalToVote)? {
        let Some(vh) = link.target.into_action_hash() else {
            continue;
        };
        let Some(record) = get(vh.clone(), GetOptions::default())? else {
            continue;
        };
        let Some(v): Option<CustodianVote> = record.entry().to_app_option().ok().flatten() else {
            continue;
        };
        if v.proposal == proposal_hash {
            ballots.push(Ballot {
                voter: v.voter_node_id,
                approve: v.approve,
                cast_at_micros: record.action().header.timestamp.as_micros(),
            });
            hashes.push(vh);
        }
    }
    let eligible: BTreeSet<String> = p
        .eligible_voters
        .iter()
        .map(|v| v.node_id.clone())
        .collect();
    let t = tally(&eligible, &ballots, p.deadline.as_micros());
    let executed = crate::assignments::live_records_of_content(&p.assignment.content_id)?
        .into_iter()
        .find(|r| r.assignment.quorum_proposal.as_ref() == Some(&proposal_hash))
        .map(|r| r.entry_hash);
    Ok(VoteRecord {
        proposal: proposal_hash,
        eligible: eligible.into_iter().collect(),
        ballots,
        tally: t,
        executed,
    })
}

/// Votes on a proposal as this node; once approvals reach 2/3 of the
/// eligible voters, makes the assignment, backed by the earliest approving
/// votes that reach the quorum (so every executor writes the same entry).
#[hdk_extern]
pub fn cast_vote(input: CastVoteInput) -> ExternResult<VoteOutcome> {
    let me = my_registration()?.ok_or_else(|| guest("this agent runs no registered node"))?;
    let vote = CustodianVote {
        proposal: input.proposal.clone(),
        voter_node_id: me.registration.node_id,
        approve: input.approve,
    };
    let hash = create_entry(EntryTypes::CustodianVote(vote))?;
    write_link(
        input.proposal.clone(),
        hash.clone(),
        LinkTypes::ProposalToVote,
        (),
    )?;
    let mut record = get_vote_record(input.proposal.clone())?;
    if record.tally.passed && record.executed.is_none() {
        let p = proposal(&input.proposal)?;
        let need = required_approvals(p.eligible_voters.len()).unwrap_or(usize::MAX);
        // Approving, counted votes in casting order (ties by hash).
        let mut approving: Vec<(i64, ActionHash, String)> = Vec::new();
        for link in links_on(input.proposal.clone(), LinkTypes::ProposalToVote)? {
            let Some(vh) = link.target.into_action_hash() else {
                continue;
            };
            let Some(r) = get(vh.clone(), GetOptions::default())? else {
                continue;
            };
            let Some(v): Option<CustodianVote> = r.entry().to_app_option().ok().flatten() else {
                continue;
            };
            let at = r.action().header.timestamp.as_micros();
            if v.approve
                && at <= p.deadline.as_micros()
                && !approving.iter().any(|(_, _, who)| *who == v.voter_node_id)
            {
                approving.push((at, vh, v.voter_node_id));
            }
            approving.sort();
        }
        approving.truncate(need);
        let mut assignment = p.assignment.clone();
        assignment.quorum_proposal = Some(input.proposal.clone());
        assignment.quorum_votes = approving.into_iter().map(|(_, h, _)| h).collect();
        crate::assignments::assign_custodian(assignment.clone())?;
        record.executed = Some(hash_entry(&assignment)?);
    }
    Ok(VoteOutcome { vote: hash, record })
}

/// Open proposals of a region (deadline not passed).
#[hdk_extern]
pub fn get_open_proposals(region: String) -> ExternResult<Vec<(ActionHash, AssignmentProposal)>> {
    let now = sys_time()?;
    let mut out = Vec::new();
    for link in links_on(proposals_base(&region)?, LinkTypes::RegionToProposal)? {
        let Some(h) = link.target.into_action_hash() else {
            continue;
        };
        if let Ok(p) = proposal(&h) {
            if p.deadline > now {
                out.push((h, p));
            }
        }
    }
    Ok(out)
}

/// Attestations this node made, for audits.
#[hdk_extern]
pub fn get_attestations_by(node_id: String) -> ExternResult<Vec<HealthAttestation>> {
    let now = sys_time()?;
    let mut out = Vec::new();
    for bucket in buckets_covering(now.as_micros(), CONSENSUS_WINDOW_SECS) {
        for link in links_on(
            attested_by_base(&node_id, bucket)?,
            LinkTypes::AttesterToAttestation,
        )? {
            if let Ok(a) = holochain_serialized_bytes::decode::<_, HealthAttestation>(&link.tag.0) {
                out.push(a);
            }
        }
    }
    Ok(out)
}
