//! Node lifecycle: register (or re-register), update capacity, deregister.

use crate::directory::*;
use crate::guest;
use crate::health::{announce_presence, latest_lease};
use hdk::prelude::*;
use node_registry_integrity::*;

/// Registers the calling agent's node, or updates it if this agent already
/// runs one (a restarted node re-registers without duplicating itself).
/// `registered_at` and `updated_at` are stamped here from the call's time.
pub fn register_node(registration: NodeRegistration) -> ExternResult<ActionHash> {
    let now = sys_time()?;
    let mut r = registration;
    r.updated_at = now;
    match my_registration()? {
        Some(existing) => {
            if existing.registration.node_id != r.node_id {
                return Err(guest(format!(
                    "this agent already runs node {}; deregister it before registering {}",
                    existing.registration.node_id, r.node_id
                )));
            }
            r.registered_at = existing.registration.registered_at;
            write_version(Some(&existing), r)
        }
        None => {
            r.registered_at = now;
            write_version(None, r)
        }
    }
}

/// Writes a registration version and points the directory at it.
fn write_version(
    previous: Option<&RegisteredNode>,
    r: NodeRegistration,
) -> ExternResult<ActionHash> {
    let hash = match previous {
        Some(prev) => update_entry(
            prev.action_hash.clone(),
            EntryTypes::NodeRegistration(r.clone()),
        )?,
        None => create_entry(EntryTypes::NodeRegistration(r.clone()))?,
    };
    reindex(previous, &r, &hash)?;
    // A present node's lease must show the new version at once (an opt-out
    // takes effect now, not at the next lease).
    let now = sys_time()?;
    let properties = registry_properties()?;
    if let Some(lease) = latest_lease(&r.node_id, now, &properties)? {
        let mut beat = lease.summary.heartbeat;
        beat.timestamp = now;
        let me = Acting {
            node: RegisteredNode {
                registration: r,
                action_hash: hash.clone(),
            },
            delegation: None,
            valid_until: None,
        };
        announce_presence(&me, &beat, &properties)?;
    }
    Ok(hash)
}

/// Changes a node's declared capacity, caps, tier or opt-in. When the caps
/// shrink below the current tier and no tier is given, the tier drops to
/// what the contribution earns.
pub fn update_node_capacity(input: UpdateCapacityInput) -> ExternResult<ActionHash> {
    let existing = my_registration_for(&input.node_id)?;
    let mut r = existing.registration.clone();
    let u = input.updates;
    let tier_given = u.steward_tier.is_some();
    macro_rules! apply {
        ($($f:ident),*) => { $( if let Some(v) = u.$f { r.$f = v; } )* };
    }
    apply!(
        display_name,
        cpu_cores,
        memory_gb,
        storage_tb,
        bandwidth_mbps,
        region,
        steward_tier,
        custodian_opt_in,
        max_custody_gb,
        max_bandwidth_mbps,
        max_cpu_percent,
        off_peak_hours,
        uptime_percent
    );
    if !tier_given {
        // A smaller contribution lowers the tier rather than failing
        // validation; a larger one never raises it unasked.
        let earned = r.earned_tier();
        if r.steward_tier
            .parse::<registry_core::StewardTier>()
            .is_ok_and(|t| t > earned)
        {
            r.steward_tier = earned.as_str().to_string();
        }
    }
    r.updated_at = sys_time()?;
    write_version(Some(&existing), r)
}

/// Removes the caller's node from the registry: its registration is deleted,
/// it leaves every directory, and a last `offline` lease says it left on
/// purpose rather than failed. Returns the actions written, so the caller can
/// wait for peers to have them (`get_publication_status`) before going dark.
pub fn deregister_node(input: DeregisterInput) -> ExternResult<Vec<ActionHash>> {
    let existing = my_registration_for(&input.node_id)?;
    debug!("deregistering {}: {}", input.node_id, input.reason);
    let mut written = Vec::new();
    written.push(crate::health::heartbeat(NodeHeartbeat {
        node_id: input.node_id.clone(),
        timestamp: sys_time()?,
        status: registry_core::NodeStatus::Offline.as_str().to_string(),
        current_load: 0.0,
        active_connections: 0,
        custody_used_bytes: 0,
        watcher: true,
    })?);
    let r = &existing.registration;
    for (base, lt) in [
        (
            AnyLinkableHash::from(region_base(&r.region)?),
            LinkTypes::RegionIndex,
        ),
        (tier_base(&r.steward_tier)?.into(), LinkTypes::TierIndex),
        (node_base(&r.node_id)?.into(), LinkTypes::NodeIdIndex),
        (r.agent_pub_key.clone().into(), LinkTypes::AgentToNode),
    ] {
        written.extend(delete_my_links(base, lt, None)?);
    }
    written.push(delete_entry(existing.action_hash)?);
    Ok(written)
}

/// How many of the given actions a peer has validated and acknowledged
/// (validation receipts), so a node can wait before going offline.
pub fn get_publication_status(actions: Vec<ActionHash>) -> ExternResult<PublicationStatus> {
    let me = agent_info()?.agent_initial_pubkey;
    let mut confirmed = 0;
    for action in &actions {
        let sets = get_validation_receipts(GetValidationReceiptsInput::new(action.clone()))?;
        let by_peer = sets
            .iter()
            .flat_map(|s| s.receipts.iter())
            .any(|r| r.validators.iter().any(|v| *v != me));
        if by_peer {
            confirmed += 1;
        }
    }
    Ok(PublicationStatus {
        confirmed,
        total: actions.len() as u32,
    })
}

/// The node the calling agent writes for (its own, or the one whose
/// identity delegated to it), if any.
pub fn get_my_node(_: ()) -> ExternResult<Option<RegisteredNode>> {
    Ok(acting_as()?.map(|a| a.node))
}

/// A node's latest registration, if registered.
pub fn get_node(node_id: String) -> ExternResult<Option<RegisteredNode>> {
    registration_of_node(&node_id)
}
