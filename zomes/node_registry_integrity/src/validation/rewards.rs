//! Shefa rewards: a custodian's service summaries and the receivers'
//! acknowledgements, without which they earn nothing.

use super::*;
use registry_core::heartbeat::check_claimed_time;
use registry_core::tier::StewardTier;

/// Largest delivery one service event may claim (1 TB): bounds the points
/// any single event carries.
pub const MAX_SERVICE_BYTES: u64 = 1_000_000_000_000;
/// Most shards one service summary may list.
pub const MAX_SHARDS_PER_EVENT: usize = 64;

fn check_shard_list(shards: &[String]) -> Check {
    if shards.is_empty() || shards.len() > MAX_SHARDS_PER_EVENT {
        return fail(format!(
            "shard_hashes must list 1 to {MAX_SHARDS_PER_EVENT} shards"
        ));
    }
    if !shards.iter().all(|s| is_hex64(s)) {
        return fail("shard_hashes must be 64 hex digits (blake3) each");
    }
    if !shards.windows(2).all(|w| w[0] < w[1]) {
        return fail("shard_hashes must be sorted and distinct");
    }
    ok()
}

/// A service event is the provider's own, at the tier of the provider's
/// registration it cites, with exactly the points the reward rule gives.
pub(super) fn check_service_event(e: &ServiceEvent, header: &ActionHeader) -> Check {
    if let Err(err) = check_acts_for_node(&e.provider_node_id, e.delegation.as_ref(), header)? {
        return fail(format!(
            "a service event is recorded by its provider: {err}"
        ));
    }
    rule!(check_shard_list(&e.shard_hashes)?);
    if e.bytes == 0 || e.bytes > MAX_SERVICE_BYTES {
        return fail(format!("bytes must be 1..={MAX_SERVICE_BYTES}"));
    }
    let Some(reg) = registration_at(&e.provider_registration)? else {
        return fail("provider_registration is not a node registration");
    };
    if reg.node_id != e.provider_node_id {
        return fail("provider_registration is another node's");
    }
    if e.receiver == header.author || e.receiver == reg.agent_pub_key {
        return fail("a node cannot serve itself");
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

/// The service event at `hash` and its author, if it is one.
fn service_event_at(hash: &ActionHash) -> ExternResult<Option<(ServiceEvent, AgentPubKey)>> {
    Ok(entry_at(hash, variant!(ServiceEvent))?
        .map(|(e, record)| (e, record.action().author().clone())))
}

/// Only the receiver named in the event acknowledges it (its identity, or a
/// working key of it), for exactly what the event claims.
pub(super) fn check_service_ack(a: &ServiceAcknowledgement, header: &ActionHeader) -> Check {
    if let Err(e) = check_acts_for_agent(&a.receiver, a.delegation.as_ref(), header)? {
        return fail(format!(
            "an acknowledgement is signed by the receiver itself: {e}"
        ));
    }
    let Some((event, _)) = service_event_at(&a.event)? else {
        return fail("an acknowledgement must be of a service event");
    };
    if event.receiver != a.receiver {
        return fail("only the event's receiver may acknowledge it");
    }
    if event.shard_hashes != a.shard_hashes || event.bytes != a.bytes {
        return fail("the acknowledgement does not match the event's shards and bytes");
    }
    ok()
}

pub(super) fn check_service_event_link(
    link_type: LinkTypes,
    action: &TypedAction<CreateLinkData>,
) -> Check {
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("service event links point to an event action");
    };
    let Some((event, event_author)) = service_event_at(&target)? else {
        return fail("service event links point to a service event");
    };
    if *action.author() != event_author {
        return fail("only the provider links its service event");
    }
    let expected: AnyLinkableHash = if link_type == LinkTypes::ProviderToServiceEvent {
        earnings_base(&event.provider_node_id)?.into()
    } else {
        event.receiver.into()
    };
    if action.base_address != expected {
        return fail("service event link is on the wrong base");
    }
    ok()
}

pub(super) fn check_ack_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("acknowledgement links point to an acknowledgement action");
    };
    let Some((ack, record)) = entry_at(&target, variant!(ServiceAcknowledgement))? else {
        return fail("acknowledgement links point to an acknowledgement");
    };
    if action.base_address != AnyLinkableHash::from(ack.event)
        || record.action().author() != action.author()
    {
        return fail("an acknowledgement is linked by its receiver, from its event");
    }
    ok()
}
