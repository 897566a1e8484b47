//! The validation rules, one file per entry family as the scaffolding tool
//! lays them out. Each `check_*` returns `Ok(Err(reason))` for an invalid
//! value; `validate_op` turns that into `ValidateCallbackResult::Invalid`.
//! Host errors (a dependency not yet fetched) propagate as `Err` so the
//! conductor retries, as it must.
//!
//! Two habits hold everywhere. Every record read by action hash is read as
//! the type its own action declares ([`entry_at`]), never by trying to
//! deserialize whatever bytes come back. And every rule about who may write
//! for a node goes through [`check_acts_for_node`]: the node's identity
//! agent, or a working key it delegated to for the time of the write.

mod assignment;
mod family;
mod health;
mod registration;
mod rewards;

use crate::*;
use registry_core::delegation::Window;
use registry_core::node_id::check_node_id_owner;

/// Outcome of one rule: `Ok(Err(reason))` is an invalid value.
pub(crate) type Check = ExternResult<Result<(), String>>;

pub(crate) fn fail(reason: impl Into<String>) -> Check {
    Ok(Err(reason.into()))
}

pub(crate) fn ok() -> Check {
    Ok(Ok(()))
}

/// Turns a registry_core rule into a check.
macro_rules! rule {
    ($e:expr) => {
        if let Err(e) = $e {
            return $crate::validation::fail(e.to_string());
        }
    };
}
pub(crate) use rule;

pub(crate) fn validate_op(op: Op) -> ExternResult<ValidateCallbackResult> {
    let outcome = match op.flattened::<EntryTypes, LinkTypes>()? {
        FlatOp::CreateEntry(OpEntry::CreateEntry { app_entry, action })
        | FlatOp::CreateRecord(OpRecord::CreateEntry { app_entry, action }) => {
            check_create(&app_entry, &action.header)?
        }
        FlatOp::CreateEntry(OpEntry::UpdateEntry { app_entry, action })
        | FlatOp::CreateRecord(OpRecord::UpdateEntry { app_entry, action })
        | FlatOp::Update(OpUpdate::Entry { app_entry, action }) => {
            registration::check_update(&app_entry, &action)?
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
        }) => health::check_attestation_rate(&action)?,
        FlatOp::AgentActivity(OpActivity::CreateEntry {
            app_entry_type: Some(UnitEntryTypes::WorkingKeyDelegation),
            action,
        }) => registration::check_delegation_overlap(&action)?,
        FlatOp::AgentActivity(OpActivity::CreateLink {
            link_type: Some(LinkTypes::PresenceIndex),
            action,
        }) => registration::check_lease_rate(&action)?,
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
        EntryTypes::NodeRegistration(r) => registration::check_registration(r, header),
        EntryTypes::WorkingKeyDelegation(d) => registration::check_delegation(d, header),
        EntryTypes::HealthAttestation(a) => health::check_attestation(a, header),
        EntryTypes::AssignmentProposal(p) => health::check_proposal(p, header),
        EntryTypes::CustodianVote(v) => health::check_vote(v, header),
        EntryTypes::ReputationPenalty(p) => health::check_penalty(p, header),
        EntryTypes::CustodianAssignment(a) => assignment::check_assignment(a, header),
        EntryTypes::Relationship(r) => family::check_relationship(r, header),
        EntryTypes::RelationshipConsent(c) => family::check_consent(c, header),
        EntryTypes::RecoveryRequest(r) => family::check_recovery_request(r, header),
        EntryTypes::RecoveryApproval(a) => family::check_recovery_approval(a, header),
        EntryTypes::ServiceEvent(e) => rewards::check_service_event(e, header),
        EntryTypes::ServiceAcknowledgement(a) => rewards::check_service_ack(a, header),
    }
}

fn check_create_link(link_type: LinkTypes, action: &TypedAction<CreateLinkData>) -> Check {
    match link_type {
        LinkTypes::RegionIndex
        | LinkTypes::TierIndex
        | LinkTypes::NodeIdIndex
        | LinkTypes::AgentToNode => registration::check_directory_link(link_type, action),
        LinkTypes::PresenceIndex => registration::check_presence_link(action),
        LinkTypes::AgentToDelegation => registration::check_delegation_link(action),
        LinkTypes::NodeToAttestation => health::check_attestation_link(action),
        LinkTypes::RegionToSuspicion => health::check_suspicion_link(action),
        LinkTypes::RegionToProposal => health::check_proposal_link(action),
        LinkTypes::ProposalToVote => health::check_vote_link(action),
        LinkTypes::NodeToPenalty => health::check_penalty_link(action),
        LinkTypes::ContentToAssignment
        | LinkTypes::NodeToAssignment
        | LinkTypes::NodeToRecentAssignment => assignment::check_assignment_link(link_type, action),
        LinkTypes::NodeToRetiredAssignment => assignment::check_retirement_link(action),
        LinkTypes::OwnerToAssignment => assignment::check_owner_link(action),
        LinkTypes::AgentToRelationship => family::check_relationship_link(action),
        LinkTypes::RelationshipToConsent => family::check_consent_link(action),
        LinkTypes::LostAgentToRecovery => family::check_recovery_link(action),
        LinkTypes::RecoveryToApproval => family::check_approval_link(action),
        LinkTypes::ProviderToServiceEvent | LinkTypes::ReceiverToServiceEvent => {
            rewards::check_service_event_link(link_type, action)
        }
        LinkTypes::ServiceEventToAck => rewards::check_ack_link(action),
    }
}

/// The app entry a record holds, read as the type its action declares: an
/// entry committed as one type is never taken for another whose fields it
/// happens to carry. `None` for records without an app entry.
pub(crate) fn app_entry(record: &Record) -> ExternResult<Option<EntryTypes>> {
    let Some(EntryType::App(def)) = record.action().entry_type() else {
        return Ok(None);
    };
    let Some(entry) = record.entry().as_option() else {
        return Ok(None);
    };
    // A type this zome does not know, or bytes that are not its type, make
    // the record "not a T" to the caller.
    Ok(EntryTypes::deserialize_from_type(def.zome_index, def.entry_index, entry).unwrap_or(None))
}

/// The valid record at `hash` and its entry, if the entry is of the variant
/// `pick` selects.
pub(crate) fn entry_at<T>(
    hash: &ActionHash,
    pick: impl FnOnce(EntryTypes) -> Option<T>,
) -> ExternResult<Option<(T, Record)>> {
    let record = must_get_valid_record(hash.clone())?;
    Ok(app_entry(&record)?.and_then(pick).map(|t| (t, record)))
}

/// Picks one variant of [`EntryTypes`], for [`entry_at`].
macro_rules! variant {
    ($v:ident) => {
        |e: $crate::EntryTypes| match e {
            $crate::EntryTypes::$v(x) => Some(x),
            _ => None,
        }
    };
}
pub(crate) use variant;

/// The registration at `hash`, if it is one.
pub(crate) fn registration_at(hash: &ActionHash) -> ExternResult<Option<NodeRegistration>> {
    Ok(entry_at(hash, variant!(NodeRegistration))?.map(|(r, _)| r))
}

/// The delegation at `hash` and its author (the identity), if it is one
/// naming `author` as its delegate and covering the time `at`.
fn delegation_for(
    hash: &ActionHash,
    author: &AgentPubKey,
    at: Timestamp,
) -> ExternResult<Result<(WorkingKeyDelegation, AgentPubKey), String>> {
    let Some((d, record)) = entry_at(hash, variant!(WorkingKeyDelegation))? else {
        return Ok(Err(
            "the cited delegation is not a working-key delegation".into()
        ));
    };
    if d.delegate != *author {
        return Ok(Err("the cited delegation names another working key".into()));
    }
    let window = Window {
        from_micros: d.valid_from.as_micros(),
        until_micros: d.valid_until.as_micros(),
    };
    if !window.covers(at.as_micros()) {
        return Ok(Err(
            "written outside the cited delegation's validity window".into(),
        ));
    }
    let identity = record.action().author().clone();
    Ok(Ok((d, identity)))
}

/// Whether the author of `header` writes for node `node_id`: as its
/// identity agent (the key the id is derived from), or, citing
/// `delegation`, as a working key the identity delegated to for the
/// moment of the write.
pub(crate) fn check_acts_for_node(
    node_id: &str,
    delegation: Option<&ActionHash>,
    header: &ActionHeader,
) -> Check {
    match delegation {
        None => {
            rule!(check_node_id_owner(node_id, header.author.get_raw_32()));
            ok()
        }
        Some(hash) => match delegation_for(hash, &header.author, header.timestamp)? {
            Err(e) => fail(e),
            Ok((d, _)) if d.node_id != node_id => fail("the cited delegation is for another node"),
            Ok(_) => ok(),
        },
    }
}

/// Whether the author of `header` writes for the agent `identity`: as that
/// agent, or as a working key it delegated to (citing `delegation`).
pub(crate) fn check_acts_for_agent(
    identity: &AgentPubKey,
    delegation: Option<&ActionHash>,
    header: &ActionHeader,
) -> Check {
    match delegation {
        None if header.author == *identity => ok(),
        None => fail("not written by that agent"),
        Some(hash) => match delegation_for(hash, &header.author, header.timestamp)? {
            Err(e) => fail(e),
            Ok((_, by)) if by != *identity => fail("the cited delegation is another agent's"),
            Ok(_) => ok(),
        },
    }
}

/// Fails when the author wrote `limit` or more actions that `same_kind`
/// picks in the 60 s before `header`'s, read deterministically from the
/// author's chain.
pub(crate) fn check_rate(
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
            "rate limit: more than {limit} {what} within 60 s from one author"
        ));
    }
    ok()
}

/// Whether a text is 64 hex digits (a blake3 hash).
pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
