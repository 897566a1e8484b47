//! Shefa rewards: service events recorded by the serving custodian,
//! acknowledged by the receiver, and the earnings that follow (only
//! acknowledged events count).

use crate::directory::acting;
use crate::{guest, links_on, write_link};
use hdk::prelude::*;
use node_registry_integrity::*;

/// Most events `get_node_earnings` returns in `recent`.
pub const RECENT_EVENTS: usize = 20;

/// Records that this node served `bytes` of the listed shards to
/// `receiver` over a summary period, at the tier of its current
/// registration. The event earns nothing until the receiver acknowledges
/// it.
pub fn record_service_event(input: RecordServiceInput) -> ExternResult<ActionHash> {
    let me = acting()?;
    let mine = &me.node;
    let r = &mine.registration;
    let mut shard_hashes = input.shard_hashes;
    shard_hashes.sort();
    shard_hashes.dedup();
    let tier: registry_core::StewardTier = r
        .steward_tier
        .parse()
        .map_err(|e: registry_core::RegistryError| guest(e.to_string()))?;
    let event = ServiceEvent {
        provider_node_id: r.node_id.clone(),
        provider_registration: mine.action_hash.clone(),
        receiver: input.receiver.clone(),
        shard_hashes,
        bytes: input.bytes,
        steward_tier: r.steward_tier.clone(),
        points_milli: registry_core::reward::reward_millipoints(input.bytes, tier),
        timestamp: sys_time()?,
        delegation: me.delegation.clone(),
    };
    let hash = create_entry(EntryTypes::ServiceEvent(event.clone()))?;
    write_link(
        earnings_base(&event.provider_node_id)?,
        hash.clone(),
        LinkTypes::ProviderToServiceEvent,
        (),
    )?;
    write_link(
        input.receiver,
        hash.clone(),
        LinkTypes::ReceiverToServiceEvent,
        (),
    )?;
    Ok(hash)
}

fn event_at(hash: &ActionHash) -> ExternResult<Option<ServiceEvent>> {
    let Some(record) = get(hash.clone(), GetOptions::default())? else {
        return Ok(None);
    };
    Ok(record.entry().to_app_option().ok().flatten())
}

/// The events service-event links point to, each once, in the links'
/// order (events that cannot be fetched are left out).
fn linked_events(links: Vec<Link>) -> ExternResult<Vec<(ActionHash, ServiceEvent)>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for l in links {
        let Some(hash) = l.target.into_action_hash() else {
            continue;
        };
        if !seen.insert(hash.clone()) {
            continue;
        }
        if let Some(event) = event_at(&hash)? {
            out.push((hash, event));
        }
    }
    Ok(out)
}

/// The acknowledgements of an event (validation lets only its receiver,
/// or a working key of it, link one).
fn acks_of(hash: &ActionHash) -> ExternResult<Vec<Link>> {
    links_on(hash.clone(), LinkTypes::ServiceEventToAck)
}

/// Acknowledges, as the receiver, an event for a shard this node received
/// and verified. Fails (so the caller retries) while the event is not yet
/// visible; refuses an event naming someone else or other bytes.
/// Idempotent: a second call returns the first acknowledgement.
pub fn acknowledge_service(input: AcknowledgeServiceInput) -> ExternResult<ActionHash> {
    let me = acting()?;
    let identity = me.node.registration.agent_pub_key.clone();
    let Some(event) = event_at(&input.event)? else {
        return Err(guest("service event not found (yet)"));
    };
    if event.receiver != identity {
        return Err(guest("this event names another receiver"));
    }
    if event.shard_hashes != input.shard_hashes || event.bytes != input.bytes {
        return Err(guest(format!(
            "the event claims {} bytes of {} shards, but {} bytes of {} shards were received",
            event.bytes,
            event.shard_hashes.len(),
            input.bytes,
            input.shard_hashes.len()
        )));
    }
    if let Some(existing) = acks_of(&input.event)?.into_iter().next() {
        if let Some(h) = existing.target.into_action_hash() {
            return Ok(h);
        }
    }
    let ack = ServiceAcknowledgement {
        event: input.event.clone(),
        receiver: identity,
        shard_hashes: input.shard_hashes,
        bytes: input.bytes,
        delegation: me.delegation.clone(),
    };
    let hash = create_entry(EntryTypes::ServiceAcknowledgement(ack))?;
    write_link(input.event, hash.clone(), LinkTypes::ServiceEventToAck, ())?;
    Ok(hash)
}

/// A node's Shefa earnings from served content: acknowledged events count,
/// unacknowledged ones are shown as pending and never counted.
pub fn get_node_earnings(node_id: String) -> ExternResult<NodeEarnings> {
    let mut links = links_on(earnings_base(&node_id)?, LinkTypes::ProviderToServiceEvent)?;
    links.sort_by_key(|l| std::cmp::Reverse(l.timestamp));
    let mut out = NodeEarnings {
        node_id: node_id.clone(),
        ..Default::default()
    };
    for (hash, event) in linked_events(links)? {
        if event.provider_node_id != node_id {
            continue;
        }
        let acknowledged = !acks_of(&hash)?.is_empty();
        if acknowledged {
            out.acknowledged_events += 1;
            out.acknowledged_millipoints = out
                .acknowledged_millipoints
                .saturating_add(event.points_milli);
            out.acknowledged_bytes = out.acknowledged_bytes.saturating_add(event.bytes);
        } else {
            out.pending_events += 1;
            out.pending_millipoints = out.pending_millipoints.saturating_add(event.points_milli);
        }
        if out.recent.len() < RECENT_EVENTS {
            out.recent.push(ServiceEventView {
                event_hash: hash,
                event,
                acknowledged,
            });
        }
    }
    Ok(out)
}

/// The service events naming `receiver` that no acknowledgement answers
/// yet: what a receiver's sidecar checks against what it received.
pub fn get_pending_service_events(receiver: AgentPubKey) -> ExternResult<Vec<ServiceEventView>> {
    let mut out = Vec::new();
    let links = links_on(receiver.clone(), LinkTypes::ReceiverToServiceEvent)?;
    for (hash, event) in linked_events(links)? {
        if event.receiver != receiver || !acks_of(&hash)?.is_empty() {
            continue;
        }
        out.push(ServiceEventView {
            event_hash: hash,
            event,
            acknowledged: false,
        });
    }
    Ok(out)
}
