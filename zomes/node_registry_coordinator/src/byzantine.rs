//! Peer health attestation, consensus, reputation and quorum decisions.

use crate::directory::{acting, fetch_registration, newest_per_node, registration_of_node};
use crate::health::{latest_verdict_by, recent_verdicts, vetting, Observed};
use crate::{guest, links_on, write_link};
use hdk::prelude::*;
use node_registry_integrity::*;
use registry_core::consensus::{
    contradicts, health_consensus_within, penalty_justified, AttestationView, HealthVerdict,
    Offence, CONSENSUS_WINDOW_SECS,
};
use registry_core::quorum::{required_approvals, tally, Ballot};
use registry_core::region::{parse_region, KNOWN_REGIONS};
use registry_core::reputation::{reputation, PenaltyReason, VettingPolicy};
use registry_core::MICROS_PER_SEC;
use std::collections::{BTreeMap, BTreeSet};

/// Confidence a consensus needs before anyone is penalised against it.
pub const PENALTY_MIN_CONFIDENCE: f64 = 0.9;

/// Answers a peer's health probe.
pub fn ping(_: ()) -> ExternResult<()> {
    Ok(())
}

/// Probes a peer with a remote call and records the outcome as this node's
/// attestation when it differs from this node's standing verdict about the
/// peer (or that verdict is older than a verdict period); otherwise writes
/// nothing and returns the standing verdict's action.
pub fn attest_peer_health(subject_node_id: String) -> ExternResult<ActionHash> {
    let me = acting()?;
    let probe = probe_node(subject_node_id.clone())?;
    let now = sys_time()?;
    let properties = registry_properties()?;
    let standing = latest_verdict_by(&subject_node_id, me.node_id(), now, &properties)?;
    if let Some((att, entry_hash)) = standing {
        let current = properties.verdict_period_of(now.as_micros());
        let fresh = properties.verdict_period_of(att.timestamp.as_micros()) == current;
        if att.success == probe.answered && fresh {
            if let Some(record) = get(entry_hash, GetOptions::default())? {
                return Ok(record.action_address().clone());
            }
        }
    }
    crate::health::attest_health(HealthAttestation {
        attester_node_id: me.node_id().to_string(),
        subject_node_id,
        success: probe.answered,
        response_time_ms: probe.response_time_ms,
        timestamp: now,
        last_seen: probe.answered.then_some(now),
        delegation: me.delegation.clone(),
    })
}

/// Probes a peer with a remote call (`ping` on its identity agent) and says
/// whether it answered, and how fast. Writes nothing: a node's DHT view can
/// lag, so a node that answers is not repaired away, and a monitor probes
/// before it suspects.
pub fn probe_node(subject_node_id: String) -> ExternResult<NodeProbe> {
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
    Ok(NodeProbe {
        node_id: subject_node_id,
        answered: matches!(response, ZomeCallResponse::Ok(_)),
        response_time_ms: elapsed_ms,
    })
}

/// The node's reputation and penalties.
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

/// How far back a node's standing consensus looks: two verdict periods,
/// since monitors re-state their verdicts once per period.
fn standing_window_secs() -> ExternResult<i64> {
    Ok(2 * registry_properties()?.verdict_period())
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
    Ok(health_consensus_within(
        &views,
        weigher.now.as_micros(),
        standing_window_secs()?,
    ))
}

/// The consensus about a node over its monitors' standing verdicts (each
/// attester's newest of the last two verdict periods), weighted by the
/// attesters' reputation (unvetted attesters weigh nothing); a failure
/// verdict needs two distinct reporters.
pub fn get_node_health_consensus(node_id: String) -> ExternResult<NodeHealthConsensus> {
    let now = sys_time()?;
    let mut weigher = Weigher {
        policy: vetting()?,
        now,
        cache: BTreeMap::new(),
    };
    let observed = recent_verdicts(&node_id, now, &registry_properties()?)?;
    let consensus = consensus_over(&observed, &mut weigher)?;
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
pub fn detect_byzantine_attackers(_: ()) -> ExternResult<Vec<SuspiciousNode>> {
    let me = acting()?;
    let my_id = me.node_id().to_string();
    let now = sys_time()?;
    let properties = registry_properties()?;
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
        let observed = recent_verdicts(&subject.summary.node_id, now, &properties)?;
        if observed.is_empty() {
            continue;
        }
        let consensus = consensus_over(&observed, &mut weigher)?;
        if consensus.confidence < PENALTY_MIN_CONFIDENCE
            || !matches!(
                consensus.status,
                HealthVerdict::Healthy | HealthVerdict::Unhealthy
            )
        {
            continue;
        }
        // Witnesses: vetted attesters agreeing with the verdict, each
        // attestation with its attester's registration.
        let agrees = |o: &&Observed| !contradicts(o.att.success, &consensus, 0.0);
        let mut witnesses: Vec<(Witness, &Observed)> = Vec::new();
        // One witness per agent: validation counts agents, not node ids.
        let mut witness_agents = BTreeSet::new();
        for o in observed.iter().filter(agrees) {
            if let (w, Some(reg)) = weigher.weigh(&o.att.attester_node_id)? {
                let agent = registry_core::node_id::owner_tag(&o.att.attester_node_id).to_string();
                if w > 0.0 && witness_agents.insert(agent) {
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
            let mut failures: Vec<&(Witness, &Observed)> =
                witnesses.iter().filter(|(_, o)| !o.att.success).collect();
            failures.sort_by(|a, b| a.0.attestation.cmp(&b.0.attestation));
            if let Some(first) = failures.first() {
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
            let Some(evidence) = evidence_for(&witnesses, &offender, reason, offence) else {
                continue;
            };
            let penalty = ReputationPenalty {
                offender_node_id: offender.clone(),
                reason: reason.as_str().to_string(),
                offence: offence.action.clone(),
                evidence,
                detected_by_node_id: my_id.clone(),
                delegation: me.delegation.clone(),
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

/// The evidence a penalty for `offence` can carry: the witnesses' newest
/// attestations within five minutes of it (one each, never the offender's
/// own unless it is judged for failing), in a stable order and at most 20,
/// if at least three remain and they justify the penalty as validation
/// will judge it.
fn evidence_for(
    witnesses: &[(Witness, &Observed)],
    offender: &str,
    reason: PenaltyReason,
    offence: &Observed,
) -> Option<Vec<Witness>> {
    let window = CONSENSUS_WINDOW_SECS * MICROS_PER_SEC;
    let mut newest: BTreeMap<&str, &(Witness, &Observed)> = BTreeMap::new();
    for w in witnesses {
        let a = &w.1.att;
        let close = (a.timestamp.as_micros() - offence.att.timestamp.as_micros()).abs() <= window;
        let allowed = reason == PenaltyReason::RepeatedFailure || a.attester_node_id != offender;
        if !(close && allowed) {
            continue;
        }
        if newest
            .get(a.attester_node_id.as_str())
            .is_none_or(|n| a.timestamp > n.1.att.timestamp)
        {
            newest.insert(&a.attester_node_id, w);
        }
    }
    let mut chosen: Vec<&(Witness, &Observed)> = newest.into_values().collect();
    chosen.sort_by(|a, b| a.0.attestation.cmp(&b.0.attestation));
    chosen.truncate(20);
    if chosen.len() < 3 {
        return None;
    }
    let views: Vec<AttestationView> = chosen
        .iter()
        .map(|(_, o)| AttestationView {
            attester: o.att.attester_node_id.clone(),
            success: o.att.success,
            response_time_ms: o.att.response_time_ms,
            timestamp_micros: o.att.timestamp.as_micros(),
            weight: 1.0,
        })
        .collect();
    let judged = Offence {
        attester: offence.att.attester_node_id.clone(),
        subject: offence.att.subject_node_id.clone(),
        success: offence.att.success,
        timestamp_micros: offence.att.timestamp.as_micros(),
    };
    penalty_justified(reason, offender, &judged, &views).ok()?;
    Some(chosen.into_iter().map(|(w, _)| w.clone()).collect())
}

/// Puts an assignment to the vote of the region's vetted nodes, snapshotted
/// now (registered for the minimum age, reputation above the floor).
pub fn propose_custodian_assignment(input: ProposeInput) -> ExternResult<ActionHash> {
    let me = acting()?;
    let region = parse_region(&input.region).map_err(|e| guest(e.to_string()))?;
    let props = registry_properties()?;
    let policy = vetting()?;
    let now = sys_time()?;
    // A little margin so validation, at the action's own time, agrees.
    let judged_at = now.as_micros() - 5 * MICROS_PER_SEC;
    let mut eligible = Vec::new();
    // One agent is one voter, however many nodes it registered.
    let mut agents = BTreeSet::new();
    for e in newest_per_node(links_on(region_base(region)?, LinkTypes::RegionIndex)?) {
        let Some(reg) = fetch_registration(&e.target)? else {
            continue;
        };
        let rep = get_reputation(reg.registration.node_id.clone())?.reputation;
        if policy.vetted(reg.registration.registered_at.as_micros(), judged_at, rep)
            && agents.insert(reg.registration.agent_pub_key.clone())
        {
            eligible.push(VoterRef {
                node_id: reg.registration.node_id,
                registration: reg.action_hash,
            });
        }
    }
    let min_voters = props.min_quorum_voters.max(1) as usize;
    if eligible.len() < min_voters {
        return Err(guest(format!(
            "region {region} has {} vetted voters; a proposal needs at least {min_voters}",
            eligible.len()
        )));
    }
    let mut assignment = input.assignment;
    assignment.decided_by = registry_core::assignment::DecisionSource::Quorum
        .as_str()
        .to_string();
    assignment.quorum_proposal = None;
    assignment.quorum_votes = vec![];
    let proposal = AssignmentProposal {
        proposer_node_id: me.node_id().to_string(),
        delegation: me.delegation.clone(),
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
pub fn cast_vote(input: CastVoteInput) -> ExternResult<VoteOutcome> {
    let me = acting()?;
    let vote = CustodianVote {
        proposal: input.proposal.clone(),
        voter_node_id: me.node_id().to_string(),
        approve: input.approve,
        delegation: me.delegation.clone(),
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
