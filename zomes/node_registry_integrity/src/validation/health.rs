//! Health and governance: monitors' verdicts (attestations), the suspicion
//! index, penalties backed by evidence, quorum proposals and votes.

use super::*;
use registry_core::consensus::{
    penalty_justified, AttestationView, Offence, CONSENSUS_WINDOW_SECS,
};
use registry_core::heartbeat::{check_claimed_time, MAX_CLAIMED_TIME_SKEW_SECS};
use registry_core::region::parse_region;
use registry_core::reputation::{PenaltyReason, VettingPolicy};
use registry_core::MICROS_PER_SEC;

/// Longest response time an attestation may report (2 minutes).
pub const MAX_RESPONSE_TIME_MS: u32 = 120_000;
/// Most eligible voters a proposal may list.
pub const MAX_ELIGIBLE_VOTERS: usize = 500;

pub(super) fn check_attestation(a: &HealthAttestation, header: &ActionHeader) -> Check {
    if a.attester_node_id == a.subject_node_id {
        return fail("a node cannot attest its own health");
    }
    if let Err(e) = check_acts_for_node(&a.attester_node_id, a.delegation.as_ref(), header)? {
        return fail(format!("the attester must be the author's own node: {e}"));
    }
    if a.subject_node_id.is_empty() || a.subject_node_id.len() > 80 {
        return fail("subject_node_id must be 1..=80 characters");
    }
    if a.response_time_ms > MAX_RESPONSE_TIME_MS {
        return fail(format!(
            "response_time_ms {} above the {MAX_RESPONSE_TIME_MS} ms limit",
            a.response_time_ms
        ));
    }
    rule!(check_claimed_time(
        "timestamp",
        a.timestamp.as_micros(),
        header.timestamp.as_micros()
    ));
    if let Some(seen) = a.last_seen {
        if seen > a.timestamp {
            return fail("last_seen cannot be after the attestation's own time");
        }
    }
    ok()
}

/// Attestations of one author within any 60 s, from the DNA properties.
pub(super) fn check_attestation_rate(action: &TypedAction<CreateData>) -> Check {
    let limit = registry_properties()?.max_attestations_per_minute;
    check_rate(
        &action.header,
        limit,
        "attestations",
        |a| matches!(a, ActionData::Create(c) if c.entry_type == *action.entry_type()),
    )
}

/// The attestation an attestation-bearing link points to must be the one
/// its tag carries, and the link's author must write for its attester.
fn check_carries_attestation(
    att: &HealthAttestation,
    action: &TypedAction<CreateLinkData>,
) -> Check {
    if let Err(e) = check_acts_for_node(
        &att.attester_node_id,
        att.delegation.as_ref(),
        &action.header,
    )? {
        return fail(format!("only the attester links its attestation: {e}"));
    }
    let Some(target) = action.target_address.clone().into_entry_hash() else {
        return fail("attestation links point to an attestation entry");
    };
    match HealthAttestation::try_from(must_get_entry(target)?.content) {
        Ok(stored) if stored == *att => ok(),
        _ => fail("attestation link tag does not match its attestation"),
    }
}

/// A verdict's link: on its subject's bucket of the verdict period of its
/// time.
pub(super) fn check_attestation_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Ok(att) = attestation_from_tag(&action.tag) else {
        return fail("attestation link tag must be the attestation");
    };
    rule!(check_carries_attestation(&att, action)?);
    let period = registry_properties()?.verdict_period_of(att.timestamp.as_micros());
    let expected: AnyLinkableHash = attestation_base(&att.subject_node_id, period)?.into();
    if action.base_address != expected {
        return fail("attestation link is not on its subject's bucket");
    }
    ok()
}

/// A suspicion's link: the verdict it carries, the subject's region as its
/// registration shows it, the attester's registration time as its own
/// shows it, on that region's (or the all-regions) suspicion bucket of the
/// verdict's time.
pub(super) fn check_suspicion_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Ok(s) = SuspicionSummary::from_tag(&action.tag) else {
        return fail("suspicion link tag must be a suspicion summary");
    };
    rule!(check_carries_attestation(&s.attestation, action)?);
    match registration_at(&s.subject_registration)? {
        Some(r) if r.node_id == s.attestation.subject_node_id && r.region == s.subject_region => {}
        _ => return fail("a suspicion must cite a registration of its subject in its region"),
    }
    match registration_at(&s.attester_registration)? {
        Some(r)
            if r.node_id == s.attestation.attester_node_id
                && r.registered_at == s.attester_registered_at => {}
        _ => return fail("a suspicion must cite its attester's registration and its age"),
    }
    let bucket = registry_properties()?.lease_bucket_of(s.attestation.timestamp.as_micros());
    let expected: [AnyLinkableHash; 2] = [
        suspicion_base(&s.subject_region, bucket)?.into(),
        suspicion_all_base(bucket)?.into(),
    ];
    if !expected.contains(&action.base_address) {
        return fail("suspicion link is not on its subject's region bucket for its time");
    }
    ok()
}

fn vetting() -> ExternResult<VettingPolicy> {
    Ok(VettingPolicy {
        min_age_secs: registry_properties()?.min_voter_age_secs as i64,
        ..Default::default()
    })
}

pub(super) fn check_penalty(p: &ReputationPenalty, header: &ActionHeader) -> Check {
    if let Err(e) = check_acts_for_node(&p.detected_by_node_id, p.delegation.as_ref(), header)? {
        return fail(format!("the detector must be the author's own node: {e}"));
    }
    if p.detected_by_node_id == p.offender_node_id {
        return fail("a node cannot penalise itself");
    }
    let reason: PenaltyReason = match p.reason.parse() {
        Ok(r) => r,
        Err(e) => return fail(format!("{e}")),
    };
    let Some((off, _)) = entry_at(&p.offence, variant!(HealthAttestation))? else {
        return fail("the offence must be an attestation");
    };
    let vetting = vetting()?;
    if p.evidence.len() < 3 || p.evidence.len() > 100 {
        return fail("a penalty needs 3 to 100 witnesses");
    }
    let mut views = Vec::new();
    let mut witnesses = std::collections::BTreeSet::new();
    let mut agents = std::collections::BTreeSet::new();
    for w in &p.evidence {
        let Some((att, _)) = entry_at(&w.attestation, variant!(HealthAttestation))? else {
            return fail("evidence must be attestations");
        };
        if att.subject_node_id != off.subject_node_id {
            return fail("evidence must be about the offence's subject");
        }
        if att.attester_node_id == p.offender_node_id && reason != PenaltyReason::RepeatedFailure {
            return fail("the offender cannot witness against itself");
        }
        if !witnesses.insert(att.attester_node_id.clone()) {
            return fail("each witness counts once");
        }
        let skew = (att.timestamp.as_micros() - off.timestamp.as_micros()).abs();
        if skew > CONSENSUS_WINDOW_SECS * MICROS_PER_SEC {
            return fail("evidence must be within 5 minutes of the offence");
        }
        let Some(reg) = registration_at(&w.registration)? else {
            return fail("a witness registration is not a registration");
        };
        if reg.node_id != att.attester_node_id {
            return fail("a witness registration is for another node");
        }
        // One agent may name several nodes; it is still one witness.
        if !agents.insert(reg.agent_pub_key.clone()) {
            return fail("witnesses must be distinct agents: two of these nodes are one agent's");
        }
        if !vetting.old_enough(reg.registered_at.as_micros(), att.timestamp.as_micros()) {
            return fail(format!(
                "witness {} was not vetted when it attested",
                att.attester_node_id
            ));
        }
        views.push(AttestationView {
            attester: att.attester_node_id,
            success: att.success,
            response_time_ms: att.response_time_ms,
            timestamp_micros: att.timestamp.as_micros(),
            weight: 1.0,
        });
    }
    let offence = Offence {
        attester: off.attester_node_id.clone(),
        subject: off.subject_node_id.clone(),
        success: off.success,
        timestamp_micros: off.timestamp.as_micros(),
    };
    if let Err(consensus) = penalty_justified(reason, &p.offender_node_id, &offence, &views) {
        return fail(format!(
            "the evidence does not justify {} (consensus {} from {} witnesses)",
            p.reason,
            consensus.status.as_str(),
            consensus.attesters
        ));
    }
    ok()
}

pub(super) fn check_penalty_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("penalty links point to a penalty action");
    };
    let Some((penalty, _)) = entry_at(&target, variant!(ReputationPenalty))? else {
        return fail("penalty links point to a penalty");
    };
    let expected: AnyLinkableHash = penalties_base(&penalty.offender_node_id)?.into();
    if action.base_address != expected {
        return fail("penalty link is not on its offender");
    }
    ok()
}

pub(super) fn check_proposal(p: &AssignmentProposal, header: &ActionHeader) -> Check {
    if let Err(e) = check_acts_for_node(&p.proposer_node_id, p.delegation.as_ref(), header)? {
        return fail(format!("the proposer must be the author's own node: {e}"));
    }
    rule!(parse_region(&p.region));
    if p.assignment.decided_by != registry_core::assignment::DecisionSource::Quorum.as_str()
        || p.assignment.quorum_proposal.is_some()
        || !p.assignment.quorum_votes.is_empty()
    {
        return fail("a proposal's assignment is decided_by quorum and carries no votes yet");
    }
    let props = registry_properties()?;
    let min_voters = props.min_quorum_voters.max(1) as usize;
    if p.eligible_voters.len() < min_voters || p.eligible_voters.len() > MAX_ELIGIBLE_VOTERS {
        return fail(format!(
            "a proposal needs at least {min_voters} eligible voters (and at most \
             {MAX_ELIGIBLE_VOTERS}), not {}",
            p.eligible_voters.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if !p
        .eligible_voters
        .iter()
        .all(|v| seen.insert(v.node_id.as_str()))
    {
        return fail("a voter is listed twice");
    }
    let expected = header.timestamp.as_micros() + props.vote_window_secs as i64 * MICROS_PER_SEC;
    if (p.deadline.as_micros() - expected).abs() > 5 * MICROS_PER_SEC {
        return fail(format!(
            "the deadline must be the proposal time plus the {} s vote window",
            props.vote_window_secs
        ));
    }
    let vetting = vetting()?;
    let mut agents = std::collections::BTreeSet::new();
    for v in &p.eligible_voters {
        let Some(reg) = registration_at(&v.registration)? else {
            return fail(format!(
                "voter {}'s registration is not a registration",
                v.node_id
            ));
        };
        if reg.node_id != v.node_id {
            return fail(format!(
                "voter {} cites another node's registration",
                v.node_id
            ));
        }
        if reg.region != p.region {
            return fail(format!("voter {} is not in region {}", v.node_id, p.region));
        }
        if !agents.insert(reg.agent_pub_key.clone()) {
            return fail(format!(
                "eligible voters must be distinct agents: {} is a second node of one agent",
                v.node_id
            ));
        }
        if !vetting.old_enough(reg.registered_at.as_micros(), header.timestamp.as_micros()) {
            return fail(format!(
                "voter {} is not vetted: registered less than {} s before the proposal",
                v.node_id, props.min_voter_age_secs
            ));
        }
    }
    // What a quorum may decide is what the same rules let anyone decide: a
    // first placement is its owner's own decision, and a repair follows the
    // repair rules (checked again on the assignment).
    if p.assignment.replaces.is_none() {
        if let Err(e) =
            check_acts_for_agent(&p.assignment.owner_agent, p.delegation.as_ref(), header)?
        {
            return fail(format!(
                "a round-0 assignment is its owner's decision, and only the owner proposes it: {e}"
            ));
        }
        rule!(super::assignment::check_first_placement(&p.assignment)?);
    } else {
        rule!(super::assignment::check_repair(&p.assignment)?);
    }
    ok()
}

/// The proposal at `hash` and when it was made.
pub(super) fn proposal_at(
    hash: &ActionHash,
) -> ExternResult<Option<(AssignmentProposal, Timestamp)>> {
    Ok(entry_at(hash, variant!(AssignmentProposal))?
        .map(|(p, record)| (p, record.action().header.timestamp)))
}

pub(super) fn check_proposal_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("proposal links point to a proposal action");
    };
    let Some((proposal, _)) = proposal_at(&target)? else {
        return fail("proposal links point to a proposal");
    };
    let expected: AnyLinkableHash = proposals_base(&proposal.region)?.into();
    if action.base_address != expected {
        return fail("proposal link is not on its region");
    }
    ok()
}

pub(super) fn check_vote(v: &CustodianVote, header: &ActionHeader) -> Check {
    if let Err(e) = check_acts_for_node(&v.voter_node_id, v.delegation.as_ref(), header)? {
        return fail(format!("a vote must come from the voter's own agent: {e}"));
    }
    let Some((proposal, proposed_at)) = proposal_at(&v.proposal)? else {
        return fail("a vote must be on a proposal");
    };
    if !proposal
        .eligible_voters
        .iter()
        .any(|e| e.node_id == v.voter_node_id)
    {
        return fail(format!(
            "node {} is not among the proposal's eligible voters",
            v.voter_node_id
        ));
    }
    if header.timestamp > proposal.deadline {
        return fail("the voting deadline has passed");
    }
    // One vote per voter and author: nothing of the same kind on this
    // proposal earlier in the author's chain since the proposal was made.
    // (A node's other working key may vote too; the tally counts a node
    // once.)
    let Some(prev) = &header.prev_action else {
        return ok();
    };
    let since = Timestamp::from_micros(
        proposed_at.as_micros() - MAX_CLAIMED_TIME_SKEW_SECS * MICROS_PER_SEC,
    );
    if must_get_action(prev.clone())?.action().header.timestamp < since {
        return ok();
    }
    for a in must_get_agent_activity(
        header.author.clone(),
        ChainFilter::until_timestamp(prev.clone(), since),
    )? {
        if !matches!(a.action.action().data, ActionData::Create(_)) {
            continue;
        }
        let record = must_get_valid_record(a.action.as_hash().clone())?;
        if let Some(EntryTypes::CustodianVote(earlier)) = app_entry(&record)? {
            if earlier.proposal == v.proposal {
                return fail("this voter has already voted on the proposal");
            }
        }
    }
    ok()
}

pub(super) fn check_vote_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("vote links point to a vote action");
    };
    let Some((vote, record)) = entry_at(&target, variant!(CustodianVote))? else {
        return fail("vote links point to a vote");
    };
    if record.action().header.author != *action.author() {
        return fail("only the voter links its vote");
    }
    if action.base_address != AnyLinkableHash::from(vote.proposal) {
        return fail("vote link is not on its proposal");
    }
    ok()
}

/// Checks that a quorum assignment is backed by approving votes of at least
/// 2/3 of its proposal's eligible voters, cast before the deadline.
pub(super) fn check_quorum_backing(a: &CustodianAssignment) -> Check {
    let Some(ph) = &a.quorum_proposal else {
        return fail("a quorum assignment must name its proposal");
    };
    let Some((proposal, _)) = proposal_at(ph)? else {
        return fail("quorum_proposal is not a proposal");
    };
    let mut template = a.clone();
    template.quorum_proposal = None;
    template.quorum_votes = vec![];
    if template != proposal.assignment {
        return fail("the assignment differs from what was proposed");
    }
    let eligible: std::collections::BTreeSet<String> = proposal
        .eligible_voters
        .iter()
        .map(|v| v.node_id.clone())
        .collect();
    let distinct: std::collections::BTreeSet<&ActionHash> = a.quorum_votes.iter().collect();
    if distinct.len() != a.quorum_votes.len() || a.quorum_votes.len() > eligible.len() {
        return fail("quorum_votes must be distinct votes, at most one per eligible voter");
    }
    let mut ballots = Vec::new();
    for vh in &a.quorum_votes {
        let Some((vote, record)) = entry_at(vh, variant!(CustodianVote))? else {
            return fail("quorum_votes must be votes");
        };
        if vote.proposal != *ph {
            return fail("a backing vote is on another proposal");
        }
        ballots.push(registry_core::quorum::Ballot {
            voter: vote.voter_node_id,
            approve: vote.approve,
            cast_at_micros: record.action().header.timestamp.as_micros(),
        });
    }
    let tally = registry_core::quorum::tally(&eligible, &ballots, proposal.deadline.as_micros());
    if !tally.passed {
        return fail(format!(
            "quorum not reached: {} of {} eligible voters approved, {} needed",
            tally.approvals, tally.eligible, tally.required
        ));
    }
    ok()
}
