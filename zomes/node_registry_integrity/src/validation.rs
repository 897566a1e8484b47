//! The validation rules. Each `check_*` returns `Err(reason)` for an invalid
//! value; `validate_op` turns that into `ValidateCallbackResult::Invalid`.
//! Host errors (a dependency not yet fetched) propagate as `Err` so the
//! conductor retries, as it must.

use crate::*;
use registry_core::assignment::{check_layout, CustodyStrategy, DecisionSource, ShardLayout};
use registry_core::capacity::{check_capacity, check_location, check_text, DeclaredCapacity};
use registry_core::committed::{cutoff_fits, recent_bucket, recent_bucket_fits};
use registry_core::heartbeat::{bucket_of, check_claimed_time, MAX_CLAIMED_TIME_SKEW_SECS};
use registry_core::node_id::check_node_id_owner;
use registry_core::presence::presence_bucket;
use registry_core::region::parse_region;
use registry_core::tier::StewardTier;
use registry_core::NodeStatus;
use registry_core::MICROS_PER_SEC;

/// Longest a content id may be.
pub const MAX_CONTENT_ID_LEN: usize = 128;
/// Longest response time an attestation may report (2 minutes).
pub const MAX_RESPONSE_TIME_MS: u32 = 120_000;
/// Highest load per core a heartbeat may report.
pub const MAX_LOAD_PER_CORE: f64 = 1024.0;

/// Outcome of one rule: `Ok(Err(reason))` is an invalid value.
type Check = ExternResult<Result<(), String>>;

fn fail(reason: impl Into<String>) -> Check {
    Ok(Err(reason.into()))
}

fn ok() -> Check {
    Ok(Ok(()))
}

/// Turns a registry_core rule into a check.
macro_rules! rule {
    ($e:expr) => {
        if let Err(e) = $e {
            return fail(e.to_string());
        }
    };
}

pub(crate) fn validate_op(op: Op) -> ExternResult<ValidateCallbackResult> {
    let outcome = match op.flattened::<EntryTypes, LinkTypes>()? {
        FlatOp::CreateEntry(OpEntry::CreateEntry { app_entry, action })
        | FlatOp::CreateRecord(OpRecord::CreateEntry { app_entry, action }) => {
            check_create(&app_entry, &action.header)?
        }
        FlatOp::CreateEntry(OpEntry::UpdateEntry { app_entry, action })
        | FlatOp::CreateRecord(OpRecord::UpdateEntry { app_entry, action })
        | FlatOp::Update(OpUpdate::Entry { app_entry, action }) => {
            check_update(&app_entry, &action)?
        }
        FlatOp::Update(OpUpdate::PrivateEntry { .. })
        | FlatOp::CreateRecord(OpRecord::UpdatePrivateEntry { .. }) => {
            Err("this DNA has no private entries".to_string())
        }
        FlatOp::Delete(OpDelete { action })
        | FlatOp::CreateRecord(OpRecord::DeleteEntry { action }) => {
            check_same_author(&action.deletes_address, action.author(), "delete")?
        }
        FlatOp::Link(OpLink::CreateLink { link_type, action })
        | FlatOp::CreateRecord(OpRecord::CreateLink { link_type, action }) => {
            check_create_link(link_type, &action)?
        }
        FlatOp::Link(OpLink::DeleteLink {
            original_action,
            action,
            ..
        }) => {
            if original_action.author() == action.author() {
                Ok(())
            } else {
                Err("only the author of a link may delete it".to_string())
            }
        }
        FlatOp::CreateRecord(OpRecord::DeleteLink { action }) => {
            check_same_author(&action.link_add_address, action.author(), "delete a link")?
        }
        FlatOp::AgentActivity(OpActivity::CreateEntry {
            app_entry_type: Some(UnitEntryTypes::HealthAttestation),
            action,
        }) => check_attestation_rate(&action)?,
        FlatOp::AgentActivity(OpActivity::CreateLink {
            link_type: Some(LinkTypes::NodeToHeartbeat),
            action,
        }) => check_heartbeat_rate(&action)?,
        _ => Ok(()),
    };
    Ok(match outcome {
        Ok(()) => ValidateCallbackResult::Valid,
        Err(reason) => ValidateCallbackResult::Invalid(reason),
    })
}

fn check_same_author(original: &ActionHash, author: &AgentPubKey, what: &str) -> Check {
    let original = must_get_action(original.clone())?;
    if original.action().author() != author {
        return fail(format!("only the author may {what}"));
    }
    ok()
}

fn check_create(entry: &EntryTypes, header: &ActionHeader) -> Check {
    match entry {
        EntryTypes::NodeRegistration(r) => check_registration(r, header),
        EntryTypes::HealthAttestation(a) => check_attestation(a, header),
        EntryTypes::CustodianAssignment(a) => check_assignment(a, header),
        EntryTypes::AssignmentProposal(p) => check_proposal(p, header),
        EntryTypes::CustodianVote(v) => check_vote(v, header),
        EntryTypes::ReputationPenalty(p) => check_penalty(p, header),
        EntryTypes::Relationship(r) => check_relationship(r, header),
        EntryTypes::RelationshipConsent(c) => check_consent(c, header),
        EntryTypes::RecoveryRequest(r) => check_recovery_request(r, header),
        EntryTypes::RecoveryApproval(a) => check_recovery_approval(a, header),
        EntryTypes::ServiceEvent(e) => check_service_event(e, header),
        EntryTypes::ServiceAcknowledgement(a) => check_service_ack(a, header),
    }
}

/// Largest delivery one service event may claim (1 TB): bounds the points
/// any single event carries.
pub const MAX_SERVICE_BYTES: u64 = 1_000_000_000_000;

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A service event is the provider's own, at the tier of the provider's
/// registration it cites, with exactly the points the reward rule gives.
fn check_service_event(e: &ServiceEvent, header: &ActionHeader) -> Check {
    if let Err(err) = check_node_id_owner(&e.provider_node_id, header.author.get_raw_32()) {
        return fail(format!(
            "a service event is recorded by its provider: {err}"
        ));
    }
    if e.receiver == header.author {
        return fail("a node cannot serve itself");
    }
    if !is_hex64(&e.shard_hash) {
        return fail("shard_hash must be 64 hex digits (blake3)");
    }
    if e.bytes == 0 || e.bytes > MAX_SERVICE_BYTES {
        return fail(format!("bytes must be 1..={MAX_SERVICE_BYTES}"));
    }
    let Some(reg) = registration_of(&e.provider_registration)? else {
        return fail("provider_registration is not a node registration");
    };
    if reg.node_id != e.provider_node_id || reg.agent_pub_key != header.author {
        return fail("provider_registration is another node's");
    }
    if reg.steward_tier != e.steward_tier {
        return fail(format!(
            "steward_tier {} is not the registration's tier {}",
            e.steward_tier, reg.steward_tier
        ));
    }
    let tier: StewardTier = match e.steward_tier.parse() {
        Ok(t) => t,
        Err(err) => return fail(format!("{err}")),
    };
    let expected = registry_core::reward::reward_millipoints(e.bytes, tier);
    if e.points_milli != expected {
        return fail(format!(
            "points_milli must be {expected} for {} bytes at {tier}",
            e.bytes
        ));
    }
    rule!(check_claimed_time(
        "timestamp",
        e.timestamp.as_micros(),
        header.timestamp.as_micros()
    ));
    ok()
}

fn service_event_of(hash: &ActionHash) -> ExternResult<Option<(ServiceEvent, AgentPubKey)>> {
    let record = must_get_valid_record(hash.clone())?;
    let author = record.action().author().clone();
    Ok(record
        .entry()
        .to_app_option::<ServiceEvent>()
        .ok()
        .flatten()
        .map(|e| (e, author)))
}

/// Only the receiver named in the event acknowledges it, for exactly what
/// the event claims.
fn check_service_ack(a: &ServiceAcknowledgement, header: &ActionHeader) -> Check {
    if a.receiver != header.author {
        return fail("an acknowledgement is signed by the receiver itself");
    }
    let Some((event, _)) = service_event_of(&a.event)? else {
        return fail("an acknowledgement must be of a service event");
    };
    if event.receiver != a.receiver {
        return fail("only the event's receiver may acknowledge it");
    }
    if event.shard_hash != a.shard_hash || event.bytes != a.bytes {
        return fail("the acknowledgement does not match the event's shard and bytes");
    }
    ok()
}

/// Relationship kinds.
pub const RELATIONSHIP_KINDS: [&str; 2] = ["intimate", "family"];

fn check_relationship(r: &Relationship, header: &ActionHeader) -> Check {
    if r.party_a == r.party_b {
        return fail("a relationship needs two different people");
    }
    if header.author != r.party_a && header.author != r.party_b {
        return fail("only one of its parties may propose a relationship");
    }
    if !RELATIONSHIP_KINDS.contains(&r.kind.as_str()) {
        return fail(format!("unknown relationship kind: {}", r.kind));
    }
    rule!(check_claimed_time(
        "created_at",
        r.created_at.as_micros(),
        header.timestamp.as_micros()
    ));
    ok()
}

fn relationship_of(hash: &ActionHash) -> ExternResult<Option<Relationship>> {
    let record = must_get_valid_record(hash.clone())?;
    Ok(record.entry().to_app_option().ok().flatten())
}

fn check_consent(c: &RelationshipConsent, header: &ActionHeader) -> Check {
    if c.party != header.author {
        return fail("each party consents only for themselves");
    }
    let Some(r) = relationship_of(&c.relationship)? else {
        return fail("a consent must be to a relationship");
    };
    if c.party != r.party_a && c.party != r.party_b {
        return fail("only a party to the relationship can consent to it");
    }
    rule!(check_claimed_time(
        "timestamp",
        c.timestamp.as_micros(),
        header.timestamp.as_micros()
    ));
    ok()
}

/// Checks that `proof` shows `x` and `y` in an auto-custody relationship both
/// consented to. Consents are proven given; a later withdrawal stops new
/// decisions, which the coordinator checks when it makes them.
fn check_family_proof(proof: &FamilyProof, x: &AgentPubKey, y: &AgentPubKey) -> Check {
    let Some(r) = relationship_of(&proof.relationship)? else {
        return fail("the family proof's relationship is not a relationship");
    };
    let parties = [&r.party_a, &r.party_b];
    if !parties.contains(&x) || !parties.contains(&y) || x == y {
        return fail("the relationship is not between these two people");
    }
    if !r.auto_custody_enabled {
        return fail("the relationship does not enable auto-custody");
    }
    let mut consented = std::collections::BTreeSet::new();
    for ch in &proof.consents {
        let record = must_get_valid_record(ch.clone())?;
        let Some(c) = record
            .entry()
            .to_app_option::<RelationshipConsent>()
            .ok()
            .flatten()
        else {
            return fail("a family proof consent is not a consent");
        };
        if c.relationship == proof.relationship && c.consent {
            consented.insert(c.party);
        }
    }
    if !consented.contains(x) || !consented.contains(y) {
        return fail("both parties must have consented to the relationship");
    }
    ok()
}

fn check_recovery_request(r: &RecoveryRequest, header: &ActionHeader) -> Check {
    if r.new_agent != header.author {
        return fail("a recovery is requested by the new node's own agent");
    }
    if let Err(e) = check_node_id_owner(&r.new_node_id, header.author.get_raw_32()) {
        return fail(format!("the new node must be the author's own: {e}"));
    }
    if r.lost_agent == r.new_agent {
        return fail("the lost agent and the new agent must differ");
    }
    if r.family.is_empty() || r.family.len() > 64 {
        return fail("a recovery needs 1 to 64 family custodians");
    }
    let distinct: std::collections::BTreeSet<&AgentPubKey> = r.family.iter().collect();
    if distinct.len() != r.family.len()
        || r.family.contains(&r.lost_agent)
        || r.family.contains(&r.new_agent)
    {
        return fail("the family must be distinct people other than the lost and new agents");
    }
    let needed =
        registry_core::quorum::required_approvals(r.family.len()).unwrap_or(usize::MAX) as u32;
    if r.required_approvals != needed {
        return fail(format!(
            "required_approvals must be {needed} (2/3 of the family)"
        ));
    }
    rule!(check_claimed_time(
        "created_at",
        r.created_at.as_micros(),
        header.timestamp.as_micros()
    ));
    ok()
}

fn check_recovery_approval(a: &RecoveryApproval, header: &ActionHeader) -> Check {
    if a.approver != header.author {
        return fail("an approval is signed by the approving family member's own agent");
    }
    let record = must_get_valid_record(a.request.clone())?;
    let Some(request) = record
        .entry()
        .to_app_option::<RecoveryRequest>()
        .ok()
        .flatten()
    else {
        return fail("an approval must be of a recovery request");
    };
    if !request.family.contains(&a.approver) {
        return fail("the approver is not in the recovery's family");
    }
    if let Err(e) = check_family_proof(&a.proof, &a.approver, &request.lost_agent)? {
        return fail(format!("the approver is not the lost person's family: {e}"));
    }
    ok()
}

/// Fails when the author wrote `limit` or more actions that `same_kind`
/// picks in the 60 s before `header`'s, read deterministically from the
/// author's chain.
fn check_rate(
    header: &ActionHeader,
    limit: u32,
    what: &str,
    same_kind: impl Fn(&ActionData) -> bool,
) -> Check {
    let Some(prev) = &header.prev_action else {
        return ok();
    };
    let since =
        Timestamp::from_micros(header.timestamp.as_micros() - 60 * registry_core::MICROS_PER_SEC);
    if must_get_action(prev.clone())?.action().header.timestamp < since {
        return ok();
    }
    let activity = must_get_agent_activity(
        header.author.clone(),
        ChainFilter::until_timestamp(prev.clone(), since),
    )?;
    let earlier = activity
        .into_iter()
        .map(|a| a.action.action().clone())
        .filter(|a| a.header.timestamp >= since && same_kind(&a.data))
        .count() as u32;
    if earlier + 1 > limit {
        return fail(format!(
            "rate limit: more than {limit} {what} within 60 s from one node"
        ));
    }
    ok()
}

/// Attestations of one node within any 60 s, from the DNA properties.
fn check_attestation_rate(action: &TypedAction<CreateData>) -> Check {
    let limit = registry_properties()?.max_attestations_per_minute;
    check_rate(
        &action.header,
        limit,
        "attestations",
        |a| matches!(a, ActionData::Create(c) if c.entry_type == *action.entry_type()),
    )
}

/// Heartbeats (their links) of one node within any 60 s, from the DNA
/// properties.
fn check_heartbeat_rate(action: &TypedAction<CreateLinkData>) -> Check {
    let limit = registry_properties()?.max_heartbeats_per_minute;
    check_rate(&action.header, limit, "heartbeats", |a| {
        matches!(a, ActionData::CreateLink(l)
            if l.zome_index == action.zome_index && l.link_type == action.link_type)
    })
}

fn registration_of(hash: &ActionHash) -> ExternResult<Option<NodeRegistration>> {
    let record = must_get_valid_record(hash.clone())?;
    Ok(record.entry().to_app_option().ok().flatten())
}

fn check_proposal(p: &AssignmentProposal, header: &ActionHeader) -> Check {
    if let Err(e) = check_node_id_owner(&p.proposer_node_id, header.author.get_raw_32()) {
        return fail(format!("the proposer must be the author's own node: {e}"));
    }
    rule!(parse_region(&p.region));
    if p.assignment.decided_by != DecisionSource::Quorum.as_str()
        || p.assignment.quorum_proposal.is_some()
        || !p.assignment.quorum_votes.is_empty()
    {
        return fail("a proposal's assignment is decided_by quorum and carries no votes yet");
    }
    if p.eligible_voters.is_empty() || p.eligible_voters.len() > 500 {
        return fail("a proposal needs 1 to 500 eligible voters");
    }
    let mut seen = std::collections::BTreeSet::new();
    if !p
        .eligible_voters
        .iter()
        .all(|v| seen.insert(v.node_id.as_str()))
    {
        return fail("a voter is listed twice");
    }
    let props = registry_properties()?;
    let expected = header.timestamp.as_micros()
        + props.vote_window_secs as i64 * registry_core::MICROS_PER_SEC;
    if (p.deadline.as_micros() - expected).abs() > 5 * registry_core::MICROS_PER_SEC {
        return fail(format!(
            "the deadline must be the proposal time plus the {} s vote window",
            props.vote_window_secs
        ));
    }
    let vetting = registry_core::reputation::VettingPolicy {
        min_age_secs: props.min_voter_age_secs as i64,
        ..Default::default()
    };
    for v in &p.eligible_voters {
        let Some(reg) = registration_of(&v.registration)? else {
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
        if !vetting.old_enough(reg.registered_at.as_micros(), header.timestamp.as_micros()) {
            return fail(format!(
                "voter {} is not vetted: registered less than {} s before the proposal",
                v.node_id, props.min_voter_age_secs
            ));
        }
    }
    ok()
}

fn proposal_of(hash: &ActionHash) -> ExternResult<Option<(AssignmentProposal, Timestamp)>> {
    let record = must_get_valid_record(hash.clone())?;
    let ts = record.action().header.timestamp;
    Ok(record
        .entry()
        .to_app_option::<AssignmentProposal>()
        .ok()
        .flatten()
        .map(|p| (p, ts)))
}

fn check_vote(v: &CustodianVote, header: &ActionHeader) -> Check {
    if let Err(e) = check_node_id_owner(&v.voter_node_id, header.author.get_raw_32()) {
        return fail(format!("a vote must come from the voter's own agent: {e}"));
    }
    let Some((proposal, proposed_at)) = proposal_of(&v.proposal)? else {
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
    // One vote per voter: nothing of the same kind on this proposal earlier
    // in the author's chain since the proposal was made.
    let Some(prev) = &header.prev_action else {
        return ok();
    };
    let prev_action = must_get_action(prev.clone())?;
    if prev_action.action().header.timestamp < proposed_at {
        return ok();
    }
    for a in must_get_agent_activity(
        header.author.clone(),
        ChainFilter::until_timestamp(prev.clone(), proposed_at),
    )? {
        let action = a.action.action();
        if let ActionData::Create(c) = &action.data {
            if action.header.timestamp < proposed_at {
                continue;
            }
            if let Ok(earlier) =
                CustodianVote::try_from(must_get_entry(c.entry_hash.clone())?.content)
            {
                if earlier.proposal == v.proposal {
                    return fail("this voter has already voted on the proposal");
                }
            }
        }
    }
    ok()
}

/// Checks that a quorum assignment is backed by approving votes of at least
/// 2/3 of its proposal's eligible voters, cast before the deadline.
fn check_quorum_backing(a: &CustodianAssignment) -> Check {
    let Some(ph) = &a.quorum_proposal else {
        return fail("a quorum assignment must name its proposal");
    };
    let Some((proposal, _)) = proposal_of(ph)? else {
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
    let mut ballots = Vec::new();
    for vh in &a.quorum_votes {
        let record = must_get_valid_record(vh.clone())?;
        let Some(vote) = record
            .entry()
            .to_app_option::<CustodianVote>()
            .ok()
            .flatten()
        else {
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

fn check_penalty(p: &ReputationPenalty, header: &ActionHeader) -> Check {
    use registry_core::consensus::{
        contradicts, health_consensus, AttestationView, HealthVerdict, CONSENSUS_WINDOW_SECS,
    };
    use registry_core::reputation::PenaltyReason;
    if let Err(e) = check_node_id_owner(&p.detected_by_node_id, header.author.get_raw_32()) {
        return fail(format!("the detector must be the author's own node: {e}"));
    }
    if p.detected_by_node_id == p.offender_node_id {
        return fail("a node cannot penalise itself");
    }
    let reason: PenaltyReason = match p.reason.parse() {
        Ok(r) => r,
        Err(e) => return fail(format!("{e}")),
    };
    let offence = must_get_valid_record(p.offence.clone())?;
    let Some(off) = offence
        .entry()
        .to_app_option::<HealthAttestation>()
        .ok()
        .flatten()
    else {
        return fail("the offence must be an attestation");
    };
    let props = registry_properties()?;
    let vetting = registry_core::reputation::VettingPolicy {
        min_age_secs: props.min_voter_age_secs as i64,
        ..Default::default()
    };
    if p.evidence.len() < 3 || p.evidence.len() > 100 {
        return fail("a penalty needs 3 to 100 witnesses");
    }
    let mut views = Vec::new();
    let mut witnesses = std::collections::BTreeSet::new();
    for w in &p.evidence {
        let record = must_get_valid_record(w.attestation.clone())?;
        let Some(att) = record
            .entry()
            .to_app_option::<HealthAttestation>()
            .ok()
            .flatten()
        else {
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
        if skew > CONSENSUS_WINDOW_SECS * registry_core::MICROS_PER_SEC {
            return fail("evidence must be within 5 minutes of the offence");
        }
        let Some(reg) = registration_of(&w.registration)? else {
            return fail("a witness registration is not a registration");
        };
        if reg.node_id != att.attester_node_id {
            return fail("a witness registration is for another node");
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
    let at = views
        .iter()
        .map(|v| v.timestamp_micros)
        .max()
        .unwrap_or_default();
    let consensus = health_consensus(&views, at);
    let justified = match reason {
        PenaltyReason::FalseAccusation => {
            off.attester_node_id == p.offender_node_id
                && !off.success
                && consensus.status == HealthVerdict::Healthy
        }
        PenaltyReason::ContradictedConsensus => {
            off.attester_node_id == p.offender_node_id && contradicts(off.success, &consensus, 0.9)
        }
        PenaltyReason::RepeatedFailure => {
            off.subject_node_id == p.offender_node_id
                && !off.success
                && consensus.status == HealthVerdict::Unhealthy
        }
    };
    if !justified {
        return fail(format!(
            "the evidence does not justify {} (consensus {} from {} witnesses)",
            p.reason,
            consensus.status.as_str(),
            consensus.attesters
        ));
    }
    ok()
}

fn check_update(entry: &EntryTypes, action: &TypedAction<UpdateData>) -> Check {
    let EntryTypes::NodeRegistration(new) = entry else {
        return fail("only node registrations can be updated; this entry is immutable");
    };
    let original_action = must_get_action(action.original_action_address.clone())?;
    if original_action.action().author() != action.author() {
        return fail("only the author of a registration may update it");
    }
    let original_entry = must_get_entry(action.original_entry_address.clone())?;
    let Ok(original) = NodeRegistration::try_from(original_entry.content) else {
        return fail("an update must replace a node registration");
    };
    if new.node_id != original.node_id {
        return fail("node_id cannot change on update");
    }
    if new.agent_pub_key != original.agent_pub_key {
        return fail("agent_pub_key cannot change on update");
    }
    if new.registered_at != original.registered_at {
        return fail("registered_at cannot change on update");
    }
    check_registration_fields(new, &action.header)
}

fn check_registration(r: &NodeRegistration, header: &ActionHeader) -> Check {
    if let Err(e) = check_claimed_time(
        "registered_at",
        r.registered_at.as_micros(),
        header.timestamp.as_micros(),
    ) {
        return fail(e.to_string());
    }
    check_registration_fields(r, header)
}

fn check_registration_fields(r: &NodeRegistration, header: &ActionHeader) -> Check {
    if r.agent_pub_key != header.author {
        return fail("agent_pub_key must be the author of the registration");
    }
    rule!(check_node_id_owner(
        &r.node_id,
        r.agent_pub_key.get_raw_32()
    ));
    rule!(check_text(
        "display_name",
        &r.display_name,
        registry_core::capacity::MAX_DISPLAY_NAME
    ));
    rule!(parse_region(&r.region));
    let tier: StewardTier = match r.steward_tier.parse() {
        Ok(t) => t,
        Err(e) => return fail(format!("{e}")),
    };
    let declared = DeclaredCapacity {
        cpu_cores: r.cpu_cores,
        memory_gb: r.memory_gb,
        storage_tb: r.storage_tb,
        bandwidth_mbps: r.bandwidth_mbps,
        max_custody_gb: r.max_custody_gb,
        max_bandwidth_mbps: r.max_bandwidth_mbps,
        max_cpu_percent: r.max_cpu_percent,
        uptime_percent: r.uptime_percent,
    };
    rule!(check_capacity(&declared));
    rule!(check_location(r.latitude, r.longitude));
    if r.off_peak_hours.start_hour > 23 || r.off_peak_hours.end_hour > 23 {
        return fail("off_peak_hours must be hours 0..=23");
    }
    if let Some(endpoint) = &r.endpoint {
        rule!(registry_core::capacity::check_endpoint(endpoint));
    }
    if r.zomes_hosted.len() > 64 || r.zomes_hosted.iter().any(|z| z.is_empty() || z.len() > 64) {
        return fail("zomes_hosted: at most 64 names of 1..=64 characters");
    }
    let earned = registry_core::tier::earned_tier(
        r.max_custody_gb,
        r.storage_tb,
        r.max_bandwidth_mbps,
        r.bandwidth_mbps,
        r.max_cpu_percent,
    );
    if tier > earned {
        return fail(format!(
            "steward_tier {tier} is above what the contribution reaches ({earned})"
        ));
    }
    rule!(check_claimed_time(
        "updated_at",
        r.updated_at.as_micros(),
        header.timestamp.as_micros()
    ));
    ok()
}

fn check_owner(node_id: &str, author: &AgentPubKey) -> Check {
    rule!(check_node_id_owner(node_id, author.get_raw_32()));
    ok()
}

/// A link carrying a node summary must be written by the node's own agent
/// and point at the registration version the summary describes.
fn check_points_at_registration(
    summary: &NodeSummary,
    author: &AgentPubKey,
    target: &AnyLinkableHash,
) -> Check {
    if let Err(e) = check_owner(&summary.node_id, author)? {
        return fail(format!("only a node's own agent indexes it: {e}"));
    }
    let Some(target) = target.clone().into_action_hash() else {
        return fail("directory links point to a registration action");
    };
    let record = must_get_valid_record(target)?;
    let reg: Option<NodeRegistration> = record.entry().to_app_option().ok().flatten();
    match reg {
        Some(reg) if NodeSummary::of(&reg) == *summary => ok(),
        _ => fail("directory link tag does not match its registration"),
    }
}

/// A heartbeat's own rules, given the time of the link that carries it.
fn check_heartbeat(h: &HeartbeatSummary, author: &AgentPubKey, written: Timestamp) -> Check {
    if let Err(e) = check_node_id_owner(&h.node_id, author.get_raw_32()) {
        return fail(format!(
            "a heartbeat must come from the node's own agent: {e}"
        ));
    }
    rule!(h.status.parse::<NodeStatus>());
    rule!(check_claimed_time(
        "timestamp",
        h.timestamp.as_micros(),
        written.as_micros()
    ));
    if !(h.current_load.is_finite() && (0.0..=MAX_LOAD_PER_CORE).contains(&h.current_load)) {
        return fail(format!("current_load out of range: {}", h.current_load));
    }
    ok()
}

fn check_attestation(a: &HealthAttestation, header: &ActionHeader) -> Check {
    if a.attester_node_id == a.subject_node_id {
        return fail("a node cannot attest its own health");
    }
    if let Err(e) = check_node_id_owner(&a.attester_node_id, header.author.get_raw_32()) {
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
    ok()
}

fn check_assignment(a: &CustodianAssignment, header: &ActionHeader) -> Check {
    if a.content_id.is_empty() || a.content_id.len() > MAX_CONTENT_ID_LEN {
        return fail(format!(
            "content_id must be 1..={MAX_CONTENT_ID_LEN} characters"
        ));
    }
    if a.content_hash.len() != 64 || !a.content_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return fail("content_hash must be 64 hex digits (blake3)");
    }
    if a.shard_hash.len() != 64 || !a.shard_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return fail("shard_hash must be 64 hex digits (blake3)");
    }
    let strategy: CustodyStrategy = match a.strategy.parse() {
        Ok(s) => s,
        Err(e) => return fail(format!("{e}")),
    };
    let decided_by: DecisionSource = match a.decided_by.parse() {
        Ok(d) => d,
        Err(e) => return fail(format!("{e}")),
    };
    rule!(check_layout(&ShardLayout {
        strategy,
        threshold: a.threshold,
        shard_count: a.shard_count,
        shard_index: a.shard_index,
        custodian_node_id: &a.custodian_node_id,
        round_custodians: &a.round_custodians,
    }));
    if decided_by != DecisionSource::Quorum
        && (a.quorum_proposal.is_some() || !a.quorum_votes.is_empty())
    {
        return fail("only a quorum assignment carries a proposal and votes");
    }
    if decided_by != DecisionSource::RelationshipPolicy && a.relationship.is_some() {
        return fail("only a relationship_policy assignment carries a family proof");
    }
    let expected_id =
        registry_core::assignment::assignment_id(&a.content_id, a.shard_index, a.decision_round);
    if a.assignment_id != expected_id {
        return fail(format!("assignment_id must be {expected_id}"));
    }
    if let Some(region) = &a.preferred_region {
        rule!(parse_region(region));
    }
    if let Some(tier) = &a.required_tier {
        rule!(tier.parse::<StewardTier>());
    }

    // The custodian exists and takes custody.
    let record = must_get_valid_record(a.custodian_registration.clone())?;
    // Another entry type fails to deserialize: that is "not a registration".
    let custodian: Option<NodeRegistration> = record.entry().to_app_option().ok().flatten();
    let Some(custodian) = custodian else {
        return fail("custodian_registration is not a node registration");
    };
    if custodian.node_id != a.custodian_node_id {
        return fail(format!(
            "custodian_registration is node {}, not {}",
            custodian.node_id, a.custodian_node_id
        ));
    }
    if !custodian.custodian_opt_in {
        return fail(format!(
            "node {} has opted out of custody",
            a.custodian_node_id
        ));
    }
    if custodian.agent_pub_key == a.owner_agent {
        // Custody protects the owner against losing their own node.
        return fail("a content's owner cannot be its custodian");
    }

    match decided_by {
        DecisionSource::Publisher => {
            if a.owner_agent != header.author {
                return fail("only the content's owner places it as publisher");
            }
            if a.decision_round != 0 || a.replaces.is_some() {
                return fail("a publisher assignment is round 0 and replaces nothing");
            }
        }
        DecisionSource::DisasterRecovery => {
            let Some(replaced) = &a.replaces else {
                return fail("a disaster_recovery assignment must name the assignment it replaces");
            };
            let old = must_get_entry(replaced.clone())?;
            let Ok(old) = CustodianAssignment::try_from(old.content) else {
                return fail("replaces must point to a custodian assignment");
            };
            if old.content_id != a.content_id
                || old.content_hash != a.content_hash
                || old.shard_index != a.shard_index
                || old.shard_hash != a.shard_hash
                || old.strategy != a.strategy
                || old.threshold != a.threshold
                || old.shard_count != a.shard_count
                || old.owner_agent != a.owner_agent
            {
                return fail(
                    "a repair must keep the replaced shard's content, index, hash and layout",
                );
            }
            if a.decision_round != old.decision_round + 1 {
                return fail(format!(
                    "a repair of round {} must be round {}",
                    old.decision_round,
                    old.decision_round + 1
                ));
            }
            if a.round_custodians.contains(&old.custodian_node_id) {
                return fail("a repair cannot keep the replaced custodian in the round");
            }
        }
        DecisionSource::Quorum => return check_quorum_backing(a),
        DecisionSource::RelationshipPolicy => {
            if a.owner_agent != header.author {
                return fail("only the content's owner places it with family");
            }
            if a.decision_round != 0 || a.replaces.is_some() {
                return fail("a relationship_policy assignment is round 0 and replaces nothing");
            }
            let Some(proof) = &a.relationship else {
                return fail("a relationship_policy assignment must prove the relationship");
            };
            if let Err(e) = check_family_proof(proof, &a.owner_agent, &custodian.agent_pub_key)? {
                return fail(e);
            }
        }
    }
    ok()
}

/// The recent-custody bases a link of `node_id`'s custody written at
/// `written_micros` may sit on (see `registry_core::committed`).
fn recent_custody_bases(node_id: &str, written_micros: i64) -> ExternResult<Vec<AnyLinkableHash>> {
    [
        recent_bucket(written_micros) - 1,
        recent_bucket(written_micros),
    ]
    .into_iter()
    .filter(|&b| recent_bucket_fits(b, written_micros))
    .map(|b| recent_custody_base(node_id, b).map(Into::into))
    .collect()
}

fn check_create_link(link_type: LinkTypes, action: &TypedAction<CreateLinkData>) -> Check {
    let author = action.author();
    let base = &action.base_address;
    let target = &action.target_address;
    match link_type {
        LinkTypes::RegionIndex
        | LinkTypes::TierIndex
        | LinkTypes::StatusIndex
        | LinkTypes::NodeIdIndex
        | LinkTypes::AgentToNode => {
            let Ok(summary) = NodeSummary::from_tag(&action.tag) else {
                return fail("directory link tag must be a node summary");
            };
            rule!(check_points_at_registration(&summary, author, target)?);
            let expected: Vec<AnyLinkableHash> = match link_type {
                LinkTypes::RegionIndex => vec![region_base(&summary.region)?.into()],
                LinkTypes::TierIndex => vec![tier_base(&summary.steward_tier)?.into()],
                LinkTypes::NodeIdIndex => vec![node_base(&summary.node_id)?.into()],
                LinkTypes::AgentToNode => vec![author.clone().into()],
                _ => NodeStatus::ALL
                    .iter()
                    .map(|s| status_base(s.as_str()).map(Into::into))
                    .collect::<ExternResult<_>>()?,
            };
            if !expected.contains(base) {
                return fail("directory link is on the wrong base");
            }
            ok()
        }
        LinkTypes::PresenceIndex => {
            let Ok(presence) = PresenceSummary::from_tag(&action.tag) else {
                return fail("presence link tag must be a presence summary");
            };
            rule!(check_points_at_registration(
                &presence.node,
                author,
                target
            )?);
            let hb = &presence.heartbeat;
            if hb.node_id != presence.node.node_id {
                return fail("a presence link's heartbeat is of another node");
            }
            rule!(hb.status.parse::<NodeStatus>());
            if !(hb.current_load.is_finite()
                && (0.0..=MAX_LOAD_PER_CORE).contains(&hb.current_load))
            {
                return fail(format!("load per core out of range: {}", hb.current_load));
            }
            // The heartbeat it reports is from the two buckets a reader
            // reads when the link is written, and the link sits in that
            // heartbeat's bucket.
            let written = action.timestamp().as_micros();
            let beat = hb.timestamp.as_micros();
            let properties = registry_properties()?;
            let window = properties.failure_window_secs.max(1) as i64;
            let skew = MAX_CLAIMED_TIME_SKEW_SECS * MICROS_PER_SEC;
            if beat > written + skew {
                return fail("a presence link cannot report a heartbeat from its future");
            }
            if beat < written - 2 * window * MICROS_PER_SEC - skew {
                return fail(
                    "a presence link must report a heartbeat of the last two failure windows",
                );
            }
            if let Some(committed) = &presence.committed {
                let lag = properties.custody_total_lag_secs as i64;
                if !cutoff_fits(committed.cutoff.as_micros(), written, lag) {
                    return fail(
                        "a presence link's custody total cannot count links younger than its lag",
                    );
                }
            }
            let expected = presence_bases(
                &presence.node.region,
                &presence.node.node_id,
                presence_bucket(beat, window),
                properties.shards(),
            )?;
            if !expected
                .into_iter()
                .any(|b| AnyLinkableHash::from(b) == *base)
            {
                return fail(
                    "presence link is not on its region's bucket (or its node's shard of it) \
                     for its heartbeat",
                );
            }
            ok()
        }
        LinkTypes::NodeToHeartbeat => {
            let Ok(summary) = HeartbeatSummary::from_tag(&action.tag) else {
                return fail("heartbeat link tag must be a heartbeat");
            };
            rule!(check_heartbeat(&summary, author, action.timestamp())?);
            if *target != AnyLinkableHash::from(author.clone()) {
                return fail("a heartbeat link points to the beating node's agent");
            }
            let expected: AnyLinkableHash =
                heartbeat_base(&summary.node_id, bucket_of(summary.timestamp.as_micros()))?.into();
            if *base != expected {
                return fail("heartbeat link is not on its node's bucket");
            }
            ok()
        }
        LinkTypes::NodeToAttestation => {
            let Ok(att) = holochain_serialized_bytes::decode::<_, HealthAttestation>(&action.tag.0)
            else {
                return fail("attestation link tag must be the attestation");
            };
            if let Err(e) = check_owner(&att.attester_node_id, author)? {
                return fail(format!("only the attester links its attestation: {e}"));
            }
            let Some(target) = target.clone().into_entry_hash() else {
                return fail("attestation links point to an attestation entry");
            };
            let entry = must_get_entry(target)?;
            match HealthAttestation::try_from(entry.content) {
                Ok(stored) if stored == att => {}
                _ => return fail("attestation link tag does not match its attestation"),
            }
            let expected: AnyLinkableHash =
                attestation_base(&att.subject_node_id, bucket_of(att.timestamp.as_micros()))?
                    .into();
            if *base != expected {
                return fail("attestation link is not on its subject's bucket");
            }
            ok()
        }
        LinkTypes::ContentToAssignment
        | LinkTypes::NodeToAssignment
        | LinkTypes::NodeToRecentAssignment => {
            let Ok(summary) = AssignmentSummary::from_tag(&action.tag) else {
                return fail("assignment link tag must be an assignment summary");
            };
            let Some(target) = target.clone().into_entry_hash() else {
                return fail("assignment links point to an assignment entry");
            };
            let entry = must_get_entry(target)?;
            match CustodianAssignment::try_from(entry.content) {
                Ok(a) if AssignmentSummary::of(&a) == summary => {}
                _ => return fail("assignment link tag does not match its assignment"),
            }
            let written = action.timestamp().as_micros();
            let expected: Vec<AnyLinkableHash> = match link_type {
                LinkTypes::ContentToAssignment => vec![content_base(&summary.content_id)?.into()],
                LinkTypes::NodeToAssignment => {
                    vec![custody_base(&summary.custodian_node_id)?.into()]
                }
                _ => recent_custody_bases(&summary.custodian_node_id, written)?,
            };
            if !expected.contains(base) {
                return fail("assignment link is on the wrong base");
            }
            ok()
        }
        LinkTypes::NodeToRetiredAssignment => {
            let Ok(summary) = RetirementSummary::from_tag(&action.tag) else {
                return fail("retirement link tag must name the outranking assignment");
            };
            let Some(retired_hash) = target.clone().into_entry_hash() else {
                return fail("retirement links point to an assignment entry");
            };
            let assignment_at = |h: &EntryHash| -> ExternResult<Option<CustodianAssignment>> {
                Ok(CustodianAssignment::try_from(must_get_entry(h.clone())?.content).ok())
            };
            let (Some(retired), Some(winner)) = (
                assignment_at(&retired_hash)?,
                assignment_at(&summary.superseded_by)?,
            ) else {
                return fail("retirement links join two assignments");
            };
            if !outranks((&winner, &summary.superseded_by), (&retired, &retired_hash)) {
                return fail(
                    "a retirement must name an assignment of the same shard that outranks it",
                );
            }
            if summary.retired_bytes != retired.shard_size_bytes {
                return fail("a retirement link must give the retired shard's size");
            }
            let custodian = &retired.custodian_node_id;
            let mut expected = recent_custody_bases(custodian, action.timestamp().as_micros())?;
            expected.push(custody_base(custodian)?.into());
            if !expected.contains(base) {
                return fail("retirement link is not on the retired custodian's index");
            }
            ok()
        }
        LinkTypes::AttesterToAttestation => {
            let Ok(att) = holochain_serialized_bytes::decode::<_, HealthAttestation>(&action.tag.0)
            else {
                return fail("attester link tag must be the attestation");
            };
            if let Err(e) = check_owner(&att.attester_node_id, author)? {
                return fail(format!("only the attester links its attestation: {e}"));
            }
            let Some(target) = target.clone().into_entry_hash() else {
                return fail("attester links point to an attestation entry");
            };
            match HealthAttestation::try_from(must_get_entry(target)?.content) {
                Ok(stored) if stored == att => {}
                _ => return fail("attester link tag does not match its attestation"),
            }
            let expected: AnyLinkableHash =
                attested_by_base(&att.attester_node_id, bucket_of(att.timestamp.as_micros()))?
                    .into();
            if *base != expected {
                return fail("attester link is not on its attester's bucket");
            }
            ok()
        }
        LinkTypes::RegionToProposal => {
            let Some(target) = target.clone().into_action_hash() else {
                return fail("proposal links point to a proposal action");
            };
            let Some((proposal, _)) = proposal_of(&target)? else {
                return fail("proposal links point to a proposal");
            };
            let expected: AnyLinkableHash = proposals_base(&proposal.region)?.into();
            if *base != expected {
                return fail("proposal link is not on its region");
            }
            ok()
        }
        LinkTypes::ProposalToVote => {
            let Some(target) = target.clone().into_action_hash() else {
                return fail("vote links point to a vote action");
            };
            let record = must_get_valid_record(target)?;
            let Some(vote) = record
                .entry()
                .to_app_option::<CustodianVote>()
                .ok()
                .flatten()
            else {
                return fail("vote links point to a vote");
            };
            if record.action().header.author != *author {
                return fail("only the voter links its vote");
            }
            if *base != AnyLinkableHash::from(vote.proposal) {
                return fail("vote link is not on its proposal");
            }
            ok()
        }
        LinkTypes::AgentToRelationship => {
            let Some(target) = target.clone().into_action_hash() else {
                return fail("relationship links point to a relationship action");
            };
            let Some(r) = relationship_of(&target)? else {
                return fail("relationship links point to a relationship");
            };
            match base.clone().into_agent_pub_key() {
                Some(agent) if agent == r.party_a || agent == r.party_b => {}
                _ => return fail("relationship links are on a party's key"),
            }
            if *author != r.party_a && *author != r.party_b {
                return fail("only a party links a relationship");
            }
            ok()
        }
        LinkTypes::RelationshipToConsent => {
            let Some(target) = target.clone().into_action_hash() else {
                return fail("consent links point to a consent action");
            };
            let record = must_get_valid_record(target)?;
            let Some(c) = record
                .entry()
                .to_app_option::<RelationshipConsent>()
                .ok()
                .flatten()
            else {
                return fail("consent links point to a consent");
            };
            if *base != AnyLinkableHash::from(c.relationship) || *author != c.party {
                return fail("a consent is linked by its party, from its relationship");
            }
            ok()
        }
        LinkTypes::OwnerToAssignment => {
            let Some(target) = target.clone().into_entry_hash() else {
                return fail("owner links point to an assignment entry");
            };
            let Ok(a) = CustodianAssignment::try_from(must_get_entry(target)?.content) else {
                return fail("owner links point to an assignment");
            };
            if *base != AnyLinkableHash::from(a.owner_agent) {
                return fail("owner links are on the content owner's key");
            }
            ok()
        }
        LinkTypes::LostAgentToRecovery => {
            let Some(target) = target.clone().into_action_hash() else {
                return fail("recovery links point to a request action");
            };
            let record = must_get_valid_record(target)?;
            let Some(r) = record
                .entry()
                .to_app_option::<RecoveryRequest>()
                .ok()
                .flatten()
            else {
                return fail("recovery links point to a recovery request");
            };
            if *base != AnyLinkableHash::from(r.lost_agent) || *author != r.new_agent {
                return fail("a recovery is linked by its requester, from the lost agent");
            }
            ok()
        }
        LinkTypes::RecoveryToApproval => {
            let Some(target) = target.clone().into_action_hash() else {
                return fail("approval links point to an approval action");
            };
            let record = must_get_valid_record(target)?;
            let Some(a) = record
                .entry()
                .to_app_option::<RecoveryApproval>()
                .ok()
                .flatten()
            else {
                return fail("approval links point to an approval");
            };
            if *base != AnyLinkableHash::from(a.request) || *author != a.approver {
                return fail("an approval is linked by its approver, from its request");
            }
            ok()
        }
        LinkTypes::ProviderToServiceEvent | LinkTypes::ReceiverToServiceEvent => {
            let Some(target) = target.clone().into_action_hash() else {
                return fail("service event links point to an event action");
            };
            let Some((event, event_author)) = service_event_of(&target)? else {
                return fail("service event links point to a service event");
            };
            if *author != event_author {
                return fail("only the provider links its service event");
            }
            let expected: AnyLinkableHash = if link_type == LinkTypes::ProviderToServiceEvent {
                earnings_base(&event.provider_node_id)?.into()
            } else {
                event.receiver.into()
            };
            if *base != expected {
                return fail("service event link is on the wrong base");
            }
            ok()
        }
        LinkTypes::ServiceEventToAck => {
            let Some(target) = target.clone().into_action_hash() else {
                return fail("acknowledgement links point to an acknowledgement action");
            };
            let record = must_get_valid_record(target)?;
            let Some(ack) = record
                .entry()
                .to_app_option::<ServiceAcknowledgement>()
                .ok()
                .flatten()
            else {
                return fail("acknowledgement links point to an acknowledgement");
            };
            if *base != AnyLinkableHash::from(ack.event) || *author != ack.receiver {
                return fail("an acknowledgement is linked by its receiver, from its event");
            }
            ok()
        }
        LinkTypes::NodeToPenalty => {
            let Some(target) = target.clone().into_action_hash() else {
                return fail("penalty links point to a penalty action");
            };
            let record = must_get_valid_record(target)?;
            let Some(penalty) = record
                .entry()
                .to_app_option::<ReputationPenalty>()
                .ok()
                .flatten()
            else {
                return fail("penalty links point to a penalty");
            };
            let expected: AnyLinkableHash = penalties_base(&penalty.offender_node_id)?.into();
            if *base != expected {
                return fail("penalty link is not on its offender");
            }
            ok()
        }
    }
}
