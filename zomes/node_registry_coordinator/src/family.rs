//! Family custody and "Google Account"-style recovery.

use crate::directory::{my_registration, node_of_agent, registration_of_node};
use crate::{guest, links_on, write_link};
use hdk::prelude::*;
use node_registry_integrity::*;
use std::collections::BTreeSet;

fn fetch<T: TryFrom<SerializedBytes, Error = SerializedBytesError>>(
    hash: ActionHash,
) -> ExternResult<Option<(T, Record)>> {
    let Some(record) = get(hash, GetOptions::default())? else {
        return Ok(None);
    };
    let Some(value) = record.entry().to_app_option::<T>().ok().flatten() else {
        return Ok(None);
    };
    Ok(Some((value, record)))
}

/// Proposes a relationship with another person and consents to it; the
/// other person's consent makes it active.
pub fn create_relationship(input: CreateRelationshipInput) -> ExternResult<ActionHash> {
    let me = agent_info()?.agent_initial_pubkey;
    let r = Relationship {
        party_a: me.clone(),
        party_b: input.other.clone(),
        kind: input.kind,
        auto_custody_enabled: input.auto_custody_enabled,
        created_at: sys_time()?,
    };
    let hash = create_entry(EntryTypes::Relationship(r))?;
    write_link(me, hash.clone(), LinkTypes::AgentToRelationship, ())?;
    write_link(
        input.other,
        hash.clone(),
        LinkTypes::AgentToRelationship,
        (),
    )?;
    consent_to_relationship(ConsentInput {
        relationship: hash.clone(),
        consent: true,
    })?;
    Ok(hash)
}

/// Gives or withdraws this agent's consent to a relationship. Withdrawing
/// stops new family assignments at once and lets the other's node drop
/// what it keeps under the relationship.
pub fn consent_to_relationship(input: ConsentInput) -> ExternResult<ActionHash> {
    let c = RelationshipConsent {
        relationship: input.relationship.clone(),
        party: agent_info()?.agent_initial_pubkey,
        consent: input.consent,
        timestamp: sys_time()?,
    };
    let hash = create_entry(EntryTypes::RelationshipConsent(c))?;
    write_link(
        input.relationship,
        hash.clone(),
        LinkTypes::RelationshipToConsent,
        (),
    )?;
    Ok(hash)
}

fn state_of(hash: ActionHash) -> ExternResult<Option<RelationshipState>> {
    let Some((relationship, _)) = fetch::<Relationship>(hash.clone())? else {
        return Ok(None);
    };
    let mut newest: [Option<(Timestamp, ActionHash, bool)>; 2] = [None, None];
    for link in links_on(hash.clone(), LinkTypes::RelationshipToConsent)? {
        let Some(ch) = link.target.into_action_hash() else {
            continue;
        };
        let Some((c, _)) = fetch::<RelationshipConsent>(ch.clone())? else {
            continue;
        };
        if c.relationship != hash {
            continue;
        }
        let slot = if c.party == relationship.party_a {
            0
        } else if c.party == relationship.party_b {
            1
        } else {
            continue;
        };
        let newer = match &newest[slot] {
            None => true,
            Some((t, h, _)) => (c.timestamp, &ch) > (*t, h),
        };
        if newer {
            newest[slot] = Some((c.timestamp, ch, c.consent));
        }
    }
    let [a, b] = newest;
    let consent_a = a.map(|(_, h, v)| (v, h));
    let consent_b = b.map(|(_, h, v)| (v, h));
    let active = matches!((&consent_a, &consent_b), (Some((true, _)), Some((true, _))));
    Ok(Some(RelationshipState {
        relationship_hash: hash,
        relationship,
        consent_a,
        consent_b,
        active,
    }))
}

/// Every relationship of an agent, with where consent stands.
pub fn get_relationships(agent: AgentPubKey) -> ExternResult<Vec<RelationshipState>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for link in links_on(agent, LinkTypes::AgentToRelationship)? {
        let Some(h) = link.target.into_action_hash() else {
            continue;
        };
        if seen.insert(h.clone()) {
            if let Some(s) = state_of(h)? {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// The people whose nodes keep `owner`'s private and intimate content: the
/// other party of every active auto-custody relationship who runs a
/// registered, opted-in node.
pub fn get_family_custodians(owner: AgentPubKey) -> ExternResult<Vec<FamilyCustodian>> {
    let mut out = Vec::new();
    for s in get_relationships(owner.clone())? {
        if !s.active || !s.relationship.auto_custody_enabled {
            continue;
        }
        let other = if s.relationship.party_a == owner {
            s.relationship.party_b.clone()
        } else {
            s.relationship.party_a.clone()
        };
        let Some(node_id) = node_of_agent(&other)? else {
            continue;
        };
        let Some(reg) = registration_of_node(&node_id)? else {
            continue;
        };
        if !reg.registration.custodian_opt_in
            || out.iter().any(|f: &FamilyCustodian| f.agent == other)
        {
            continue;
        }
        let consents = [s.consent_a.clone(), s.consent_b.clone()]
            .into_iter()
            .flatten()
            .map(|(_, h)| h)
            .collect();
        out.push(FamilyCustodian {
            agent: other,
            node_id,
            registration_hash: reg.action_hash,
            endpoint: reg.registration.endpoint,
            proof: FamilyProof {
                relationship: s.relationship_hash,
                consents,
            },
        });
    }
    Ok(out)
}

/// The live assignments of everything `owner` has placed in custody.
pub fn get_assignments_for_owner(owner: AgentPubKey) -> ExternResult<Vec<AssignmentRecord>> {
    let mut contents = BTreeSet::new();
    for link in links_on(owner.clone(), LinkTypes::OwnerToAssignment)? {
        if let Ok(s) = AssignmentSummary::from_tag(&link.tag) {
            contents.insert(s.content_id);
        }
    }
    let mut out = Vec::new();
    for c in contents {
        out.extend(
            crate::assignments::live_records_of_content(&c)?
                .into_iter()
                .filter(|r| r.assignment.owner_agent == owner),
        );
    }
    Ok(out)
}

/// The registered node of an agent, if any.
pub fn get_node_of_agent(agent: AgentPubKey) -> ExternResult<Option<RegisteredNode>> {
    match node_of_agent(&agent)? {
        Some(id) => registration_of_node(&id),
        None => Ok(None),
    }
}

/// Files a request, from this (new) node, to recover the person whose node
/// ran as `lost_agent`; their family then approves or refuses it.
pub fn request_recovery(lost_agent: AgentPubKey) -> ExternResult<ActionHash> {
    let me = my_registration()?
        .ok_or_else(|| guest("register this new node before requesting a recovery"))?;
    let (family, family_proofs): (Vec<AgentPubKey>, Vec<FamilyProof>) =
        get_family_custodians(lost_agent.clone())?
            .into_iter()
            .map(|f| (f.agent, f.proof))
            .unzip();
    if family.is_empty() {
        return Err(guest(
            "no family custodians: the lost agent has no active auto-custody relationship",
        ));
    }
    let required = registry_core::quorum::required_approvals(family.len()).unwrap_or(1) as u32;
    let request = RecoveryRequest {
        lost_agent: lost_agent.clone(),
        new_agent: me.registration.agent_pub_key,
        new_node_id: me.registration.node_id,
        family,
        family_proofs,
        required_approvals: required,
        created_at: sys_time()?,
    };
    let hash = create_entry(EntryTypes::RecoveryRequest(request))?;
    write_link(lost_agent, hash.clone(), LinkTypes::LostAgentToRecovery, ())?;
    Ok(hash)
}

/// Approves (or refuses) a recovery as the lost person's family member.
pub fn approve_recovery(input: ApproveRecoveryInput) -> ExternResult<ActionHash> {
    let me = agent_info()?.agent_initial_pubkey;
    let (request, _) = fetch::<RecoveryRequest>(input.request.clone())?
        .ok_or_else(|| guest("recovery request not found"))?;
    let proof = get_family_custodians(request.lost_agent.clone())?
        .into_iter()
        .find(|f| f.agent == me)
        .map(|f| f.proof)
        .ok_or_else(|| {
            guest("this agent is not a consenting family custodian of the lost person")
        })?;
    let approval = RecoveryApproval {
        request: input.request.clone(),
        approver: me,
        approve: input.approve,
        proof,
    };
    let hash = create_entry(EntryTypes::RecoveryApproval(approval))?;
    write_link(
        input.request,
        hash.clone(),
        LinkTypes::RecoveryToApproval,
        (),
    )?;
    Ok(hash)
}

/// Where a recovery stands: verified once approvals reach 2/3 of the
/// family snapshotted in the request.
pub fn get_recovery_status(request_hash: ActionHash) -> ExternResult<RecoveryStatus> {
    let (request, _) = fetch::<RecoveryRequest>(request_hash.clone())?
        .ok_or_else(|| guest("recovery request not found"))?;
    let mut approved = Vec::new();
    let mut refused = Vec::new();
    for link in links_on(request_hash.clone(), LinkTypes::RecoveryToApproval)? {
        let Some(h) = link.target.into_action_hash() else {
            continue;
        };
        let Some((a, record)) = fetch::<RecoveryApproval>(h)? else {
            continue;
        };
        // Only approvals by their own approver, from the request's family.
        if a.request != request_hash
            || record.action().header.author != a.approver
            || !request.family.contains(&a.approver)
        {
            continue;
        }
        let list = if a.approve {
            &mut approved
        } else {
            &mut refused
        };
        if !list.contains(&a.approver) {
            list.push(a.approver);
        }
    }
    let verified = approved.len() as u32 >= request.required_approvals;
    Ok(RecoveryStatus {
        request_hash,
        request,
        approved_by: approved,
        refused_by: refused,
        verified,
    })
}

/// Recovery requests filed for a lost agent.
pub fn get_recoveries_for(lost_agent: AgentPubKey) -> ExternResult<Vec<RecoveryStatus>> {
    let mut out = Vec::new();
    for link in links_on(lost_agent, LinkTypes::LostAgentToRecovery)? {
        if let Some(h) = link.target.into_action_hash() {
            if let Ok(s) = get_recovery_status(h) {
                out.push(s);
            }
        }
    }
    Ok(out)
}
