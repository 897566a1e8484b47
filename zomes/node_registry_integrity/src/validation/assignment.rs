//! Custody assignments and the links that index them.

use super::*;
use registry_core::assignment::{check_layout, CustodyStrategy, DecisionSource, ShardLayout};
use registry_core::committed::{recent_bucket, recent_bucket_fits};
use registry_core::region::parse_region;
use registry_core::tier::StewardTier;

/// Longest a reach label may be.
pub const MAX_REACH_LEN: usize = 32;

/// The assignment stored at an entry hash, if it is one. Assignments are
/// referenced by entry hash (identical decisions share one entry), so no
/// action declares the type; entries refuse unknown fields, so another
/// type's entry cannot pass for one.
fn assignment_at(hash: &EntryHash) -> ExternResult<Option<CustodianAssignment>> {
    Ok(CustodianAssignment::try_from(must_get_entry(hash.clone())?.content).ok())
}

pub(super) fn check_assignment(a: &CustodianAssignment, header: &ActionHeader) -> Check {
    if !is_hex64(&a.content_hash) {
        return fail("content_hash must be 64 hex digits (blake3)");
    }
    // The id binds the content to its owner: nobody can place, repair or
    // claim to own another person's content under its (public) id, and the
    // id is always a safe file name.
    if a.content_id
        != registry_core::assignment::content_id(a.owner_agent.get_raw_32(), &a.content_hash)
    {
        return fail("content_id must be blake3(owner key, content_hash) of its owner_agent");
    }
    if a.reach.is_empty()
        || a.reach.len() > MAX_REACH_LEN
        || !a.reach.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return fail(format!("reach must be 1..={MAX_REACH_LEN} of a-z and '_'"));
    }
    if !is_hex64(&a.shard_hash) {
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
    let Some(custodian) = registration_at(&a.custodian_registration)? else {
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
            rule!(check_first_placement(a)?);
        }
        DecisionSource::DisasterRecovery => rule!(check_repair(a)?),
        DecisionSource::Quorum => {
            rule!(health::check_quorum_backing(a)?);
            // A vote decides only what the same rules let anyone decide: a
            // first placement (whose proposal its owner made, see
            // `check_proposal`) or a repair.
            if a.replaces.is_some() {
                rule!(check_repair(a)?);
            } else {
                rule!(check_first_placement(a)?);
            }
        }
        DecisionSource::RelationshipPolicy => {
            if a.owner_agent != header.author {
                return fail("only the content's owner places it with family");
            }
            rule!(check_first_placement(a)?);
            let Some(proof) = &a.relationship else {
                return fail("a relationship_policy assignment must prove the relationship");
            };
            if let Err(e) =
                family::check_family_proof(proof, &a.owner_agent, &custodian.agent_pub_key)?
            {
                return fail(e);
            }
            if let Err(e) = family::check_own_consent_stands(proof, header)? {
                return fail(format!("the owner {e}"));
            }
        }
    }
    ok()
}

/// A content's first placement: round 0, replacing nothing.
pub(super) fn check_first_placement(a: &CustodianAssignment) -> Check {
    if a.decision_round != 0 || a.replaces.is_some() {
        return fail(format!(
            "a {} assignment that replaces nothing is round 0",
            a.decided_by
        ));
    }
    ok()
}

/// A repair: it names the assignment it replaces, keeps that shard's
/// content, index, hash, layout and owner, is the next round, and moves the
/// shard off the replaced custodian.
pub(super) fn check_repair(a: &CustodianAssignment) -> Check {
    let Some(replaced) = &a.replaces else {
        return fail("a repair must name the assignment it replaces");
    };
    let Some(old) = assignment_at(replaced)? else {
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
        return fail("a repair must keep the replaced shard's content, index, hash and layout");
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

pub(super) fn check_assignment_link(
    link_type: LinkTypes,
    action: &TypedAction<CreateLinkData>,
) -> Check {
    let Ok(summary) = AssignmentSummary::from_tag(&action.tag) else {
        return fail("assignment link tag must be an assignment summary");
    };
    let Some(target) = action.target_address.clone().into_entry_hash() else {
        return fail("assignment links point to an assignment entry");
    };
    match assignment_at(&target)? {
        Some(a) if AssignmentSummary::of(&a) == summary => {}
        _ => return fail("assignment link tag does not match its assignment"),
    }
    let written = action.timestamp().as_micros();
    let expected: Vec<AnyLinkableHash> = match link_type {
        LinkTypes::ContentToAssignment => vec![content_base(&summary.content_id)?.into()],
        LinkTypes::NodeToAssignment => vec![custody_base(&summary.custodian_node_id)?.into()],
        _ => recent_custody_bases(&summary.custodian_node_id, written)?,
    };
    if !expected.contains(&action.base_address) {
        return fail("assignment link is on the wrong base");
    }
    ok()
}

pub(super) fn check_retirement_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Ok(summary) = RetirementSummary::from_tag(&action.tag) else {
        return fail("retirement link tag must name the outranking assignment");
    };
    let Some(retired_hash) = action.target_address.clone().into_entry_hash() else {
        return fail("retirement links point to an assignment entry");
    };
    let (Some(retired), Some(winner)) = (
        assignment_at(&retired_hash)?,
        assignment_at(&summary.superseded_by)?,
    ) else {
        return fail("retirement links join two assignments");
    };
    if !outranks((&winner, &summary.superseded_by), (&retired, &retired_hash)) {
        return fail("a retirement must name an assignment of the same shard that outranks it");
    }
    if summary.retired_bytes != retired.shard_size_bytes {
        return fail("a retirement link must give the retired shard's size");
    }
    // Only the two parties with a stake mark it: whoever decided the
    // outranking assignment, or the custodian whose shard it took.
    match &summary.decided_in {
        Some(decision) => match entry_at(decision, variant!(CustodianAssignment))? {
            Some((_, record))
                if record.action().entry_hash() == Some(&summary.superseded_by)
                    && record.action().author() == action.author() => {}
            _ => return fail(
                "decided_in must be the link author's own creation of the outranking assignment",
            ),
        },
        None => {
            if let Err(e) = check_acts_for_node(
                &retired.custodian_node_id,
                summary.delegation.as_ref(),
                &action.header,
            )? {
                return fail(format!(
                    "a retirement is marked by the retired custodian or by the outranking \
                     decision's author: {e}"
                ));
            }
        }
    }
    let custodian = &retired.custodian_node_id;
    let mut expected = recent_custody_bases(custodian, action.timestamp().as_micros())?;
    expected.push(custody_base(custodian)?.into());
    if !expected.contains(&action.base_address) {
        return fail("retirement link is not on the retired custodian's index");
    }
    ok()
}

pub(super) fn check_owner_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Some(target) = action.target_address.clone().into_entry_hash() else {
        return fail("owner links point to an assignment entry");
    };
    let Some(a) = assignment_at(&target)? else {
        return fail("owner links point to an assignment");
    };
    if action.base_address != AnyLinkableHash::from(a.owner_agent) {
        return fail("owner links are on the content owner's key");
    }
    ok()
}
