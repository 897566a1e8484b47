//! Family: relationships, each party's consent, and recovery requests and
//! approvals. All of these are a person's own acts, written by their
//! identity agent only.

use super::*;
use registry_core::heartbeat::check_claimed_time;

/// Relationship kinds.
pub const RELATIONSHIP_KINDS: [&str; 2] = ["intimate", "family"];
/// Most family custodians a recovery request may name.
pub const MAX_RECOVERY_FAMILY: usize = 64;

pub(super) fn check_relationship(r: &Relationship, header: &ActionHeader) -> Check {
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

fn relationship_at(hash: &ActionHash) -> ExternResult<Option<Relationship>> {
    Ok(entry_at(hash, variant!(Relationship))?.map(|(r, _)| r))
}

pub(super) fn check_consent(c: &RelationshipConsent, header: &ActionHeader) -> Check {
    if c.party != header.author {
        return fail("each party consents only for themselves");
    }
    let Some(r) = relationship_at(&c.relationship)? else {
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
/// consented to. Consents are proven given: a withdrawal later in a party's
/// own chain is checked where that party writes ([`check_own_consent_stands`]);
/// the other party's is checked when the proof is used (custodians read the
/// newest consents before serving).
pub(super) fn check_family_proof(proof: &FamilyProof, x: &AgentPubKey, y: &AgentPubKey) -> Check {
    // Each cited consent is fetched: exactly the two parties' own.
    if proof.consents.len() != 2 || proof.consents[0] == proof.consents[1] {
        return fail("a family proof holds each party's consent once: exactly two consents");
    }
    let Some(r) = relationship_at(&proof.relationship)? else {
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
        let Some((c, _)) = entry_at(ch, variant!(RelationshipConsent))? else {
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

/// Whether the author of `header`, a party to `proof`'s relationship, still
/// consents to it: its own newest consent to that relationship, read from
/// its own chain before this action (deterministic: the chain up to
/// `prev_action` is fixed), must be a consent, not a withdrawal. An
/// ex-partner cannot approve a recovery, or a person place content, under a
/// relationship they withdrew from.
pub(super) fn check_own_consent_stands(proof: &FamilyProof, header: &ActionHeader) -> Check {
    let mut cited = None;
    for ch in &proof.consents {
        let Some((c, record)) = entry_at(ch, variant!(RelationshipConsent))? else {
            return fail("a family proof consent is not a consent");
        };
        if c.party == header.author {
            cited = Some((ch.clone(), record));
        }
    }
    let Some((cited, record)) = cited else {
        return fail("cites no consent of its own in the family proof");
    };
    let Some(prev) = &header.prev_action else {
        return fail("has no chain before this action to hold its consent");
    };
    let consent_type = record.action().entry_type().cloned();
    // The author's chain from its cited consent up to this action: any
    // later consent of its own to the same relationship supersedes it.
    let mut newest: Option<(u32, bool)> = None;
    for a in must_get_agent_activity(
        header.author.clone(),
        ChainFilter::until_hash(prev.clone(), cited.clone()),
    )? {
        let ActionData::Create(c) = &a.action.action().data else {
            continue;
        };
        if Some(&c.entry_type) != consent_type.as_ref() || *a.action.as_hash() == cited {
            continue;
        }
        let seq = a.action.action().header.action_seq;
        let later = must_get_valid_record(a.action.as_hash().clone())?;
        if let Some(EntryTypes::RelationshipConsent(later)) = app_entry(&later)? {
            if later.relationship == proof.relationship && newest.is_none_or(|(s, _)| seq > s) {
                newest = Some((seq, later.consent));
            }
        }
    }
    if let Some((_, false)) = newest {
        return fail("has withdrawn its consent to this relationship since");
    }
    ok()
}

pub(super) fn check_recovery_request(r: &RecoveryRequest, header: &ActionHeader) -> Check {
    if r.new_agent != header.author {
        return fail("a recovery is requested by the new node's own agent");
    }
    if let Err(e) = check_node_id_owner(&r.new_node_id, header.author.get_raw_32()) {
        return fail(format!("the new node must be the author's own: {e}"));
    }
    if r.lost_agent == r.new_agent {
        return fail("the lost agent and the new agent must differ");
    }
    if r.family.is_empty() || r.family.len() > MAX_RECOVERY_FAMILY {
        return fail(format!(
            "a recovery needs 1 to {MAX_RECOVERY_FAMILY} family custodians"
        ));
    }
    let distinct: std::collections::BTreeSet<&AgentPubKey> = r.family.iter().collect();
    if distinct.len() != r.family.len()
        || r.family.contains(&r.lost_agent)
        || r.family.contains(&r.new_agent)
    {
        return fail("the family must be distinct people other than the lost and new agents");
    }
    // Each named member is proven family: a requester cannot name
    // strangers, or keys of its own, to approve itself.
    if r.family_proofs.len() != r.family.len() {
        return fail("a recovery request proves each family member: one family proof each");
    }
    for (member, proof) in r.family.iter().zip(&r.family_proofs) {
        if let Err(e) = check_family_proof(proof, member, &r.lost_agent)? {
            return fail(format!(
                "family member {member} is not proven family of the lost agent: {e}"
            ));
        }
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

pub(super) fn check_recovery_approval(a: &RecoveryApproval, header: &ActionHeader) -> Check {
    if a.approver != header.author {
        return fail("an approval is signed by the approving family member's own agent");
    }
    let Some((request, _)) = entry_at(&a.request, variant!(RecoveryRequest))? else {
        return fail("an approval must be of a recovery request");
    };
    if !request.family.contains(&a.approver) {
        return fail("the approver is not in the recovery's family");
    }
    if let Err(e) = check_family_proof(&a.proof, &a.approver, &request.lost_agent)? {
        return fail(format!("the approver is not the lost person's family: {e}"));
    }
    if let Err(e) = check_own_consent_stands(&a.proof, header)? {
        return fail(format!("the approver {e}"));
    }
    ok()
}

pub(super) fn check_relationship_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("relationship links point to a relationship action");
    };
    let Some(r) = relationship_at(&target)? else {
        return fail("relationship links point to a relationship");
    };
    match action.base_address.clone().into_agent_pub_key() {
        Some(agent) if agent == r.party_a || agent == r.party_b => {}
        _ => return fail("relationship links are on a party's key"),
    }
    if *action.author() != r.party_a && *action.author() != r.party_b {
        return fail("only a party links a relationship");
    }
    ok()
}

pub(super) fn check_consent_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("consent links point to a consent action");
    };
    let Some((c, _)) = entry_at(&target, variant!(RelationshipConsent))? else {
        return fail("consent links point to a consent");
    };
    if action.base_address != AnyLinkableHash::from(c.relationship) || *action.author() != c.party {
        return fail("a consent is linked by its party, from its relationship");
    }
    ok()
}

pub(super) fn check_recovery_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("recovery links point to a request action");
    };
    let Some((r, _)) = entry_at(&target, variant!(RecoveryRequest))? else {
        return fail("recovery links point to a recovery request");
    };
    if action.base_address != AnyLinkableHash::from(r.lost_agent) || *action.author() != r.new_agent
    {
        return fail("a recovery is linked by its requester, from the lost agent");
    }
    ok()
}

pub(super) fn check_approval_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("approval links point to an approval action");
    };
    let Some((a, _)) = entry_at(&target, variant!(RecoveryApproval))? else {
        return fail("approval links point to an approval");
    };
    if action.base_address != AnyLinkableHash::from(a.request) || *action.author() != a.approver {
        return fail("an approval is linked by its approver, from its request");
    }
    ok()
}
