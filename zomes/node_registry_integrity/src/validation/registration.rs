//! A node's own records: its registration and directory links, its
//! working-key delegations, and its presence leases.

use super::*;
use registry_core::capacity::{check_capacity, check_location, check_text};
use registry_core::committed::cutoff_fits;
use registry_core::delegation::{check_overlap, check_window};
use registry_core::heartbeat::{check_claimed_time, MAX_CLAIMED_TIME_SKEW_SECS};
use registry_core::presence::presence_shard;
use registry_core::region::parse_region;
use registry_core::tier::StewardTier;
use registry_core::NodeStatus;
use registry_core::MICROS_PER_SEC;

/// Highest load per core a heartbeat may report.
pub const MAX_LOAD_PER_CORE: f64 = 1024.0;

pub(super) fn check_update(entry: &EntryTypes, action: &TypedAction<UpdateData>) -> Check {
    let EntryTypes::NodeRegistration(new) = entry else {
        return fail("only node registrations can be updated; this entry is immutable");
    };
    let original_action = must_get_action(action.original_action_address.clone())?;
    if original_action.action().author() != action.author() {
        return fail("only the author of a registration may update it");
    }
    let Some(original) = registration_at(&action.original_action_address)? else {
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

pub(super) fn check_registration(r: &NodeRegistration, header: &ActionHeader) -> Check {
    rule!(check_claimed_time(
        "registered_at",
        r.registered_at.as_micros(),
        header.timestamp.as_micros(),
    ));
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
    rule!(check_capacity(&r.declared()));
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
    let earned = r.earned_tier();
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

/// A delegation is the node's identity's own, to another key, starting now
/// and no longer than the DNA allows.
pub(super) fn check_delegation(d: &WorkingKeyDelegation, header: &ActionHeader) -> Check {
    if let Err(e) = check_node_id_owner(&d.node_id, header.author.get_raw_32()) {
        return fail(format!("only a node's identity delegates for it: {e}"));
    }
    if d.delegate == header.author {
        return fail("a node cannot delegate to its own identity");
    }
    let max = registry_properties()?.max_delegation_secs as i64;
    rule!(check_window(
        Window {
            from_micros: d.valid_from.as_micros(),
            until_micros: d.valid_until.as_micros(),
        },
        header.timestamp.as_micros(),
        max,
    ));
    ok()
}

/// At most two working keys of one identity are valid at any instant: read
/// from the identity's own chain, the delegations written within the
/// longest window before this one.
pub(super) fn check_delegation_overlap(action: &TypedAction<CreateData>) -> Check {
    let header = &action.header;
    let Some(prev) = &header.prev_action else {
        return ok();
    };
    let max = registry_properties()?.max_delegation_secs as i64;
    let since = Timestamp::from_micros(
        header.timestamp.as_micros() - (max + 2 * MAX_CLAIMED_TIME_SKEW_SECS) * MICROS_PER_SEC,
    );
    if must_get_action(prev.clone())?.action().header.timestamp < since {
        return ok();
    }
    let mut earlier = Vec::new();
    for a in must_get_agent_activity(
        header.author.clone(),
        ChainFilter::until_timestamp(prev.clone(), since),
    )? {
        let earlier_action = a.action.action();
        let ActionData::Create(c) = &earlier_action.data else {
            continue;
        };
        if c.entry_type != *action.entry_type() {
            continue;
        }
        let record = must_get_valid_record(a.action.as_hash().clone())?;
        if let Some(EntryTypes::WorkingKeyDelegation(d)) = app_entry(&record)? {
            earlier.push(Window {
                from_micros: d.valid_from.as_micros(),
                until_micros: d.valid_until.as_micros(),
            });
        }
    }
    // The new one's start is in its entry, which this op does not carry:
    // the action's own time stands for it (they agree within the skew).
    rule!(check_overlap(&earlier, header.timestamp.as_micros()));
    ok()
}

/// A delegation link is the identity's, from the working key it names, to
/// the delegation, and its tag matches it.
pub(super) fn check_delegation_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Ok(summary) = DelegationSummary::from_tag(&action.tag) else {
        return fail("delegation link tag must be a delegation summary");
    };
    let Some(target) = action.target_address.clone().into_action_hash() else {
        return fail("delegation links point to a delegation action");
    };
    let Some((d, record)) = entry_at(&target, variant!(WorkingKeyDelegation))? else {
        return fail("delegation links point to a delegation");
    };
    if record.action().author() != action.author() {
        return fail("only the delegating identity links its delegation");
    }
    if action.base_address != AnyLinkableHash::from(d.delegate.clone()) {
        return fail("a delegation is linked from the working key it names");
    }
    if DelegationSummary::of(&d) != summary {
        return fail("delegation link tag does not match its delegation");
    }
    ok()
}

/// A link carrying a node summary must point at the registration version
/// the summary describes.
fn check_points_at_registration(summary: &NodeSummary, target: &AnyLinkableHash) -> Check {
    let Some(target) = target.clone().into_action_hash() else {
        return fail("directory links point to a registration action");
    };
    match registration_at(&target)? {
        Some(reg) if NodeSummary::of(&reg) == *summary => ok(),
        _ => fail("directory link tag does not match its registration"),
    }
}

/// Directory links are the node's identity's, on the base its summary
/// names, to the registration the summary describes.
pub(super) fn check_directory_link(
    link_type: LinkTypes,
    action: &TypedAction<CreateLinkData>,
) -> Check {
    let author = action.author();
    let Ok(summary) = NodeSummary::from_tag(&action.tag) else {
        return fail("directory link tag must be a node summary");
    };
    if let Err(e) = check_node_id_owner(&summary.node_id, author.get_raw_32()) {
        return fail(format!("only a node's own agent indexes it: {e}"));
    }
    rule!(check_points_at_registration(
        &summary,
        &action.target_address
    )?);
    let expected: AnyLinkableHash = match link_type {
        LinkTypes::RegionIndex => region_base(&summary.region)?.into(),
        LinkTypes::TierIndex => tier_base(&summary.steward_tier)?.into(),
        LinkTypes::NodeIdIndex => node_base(&summary.node_id)?.into(),
        _ => author.clone().into(),
    };
    if action.base_address != expected {
        return fail("directory link is on the wrong base");
    }
    ok()
}

/// A heartbeat's own rules, given the time of the link that carries it.
fn check_heartbeat(h: &HeartbeatSummary, written: Timestamp) -> Check {
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

/// A presence lease: written for the node by its identity or a working key,
/// pointing at the registration its summary describes, reporting a sane
/// heartbeat of its own time, on the node's shard of that heartbeat's
/// bucket, and never claiming a custody total younger than the lag.
pub(super) fn check_presence_link(action: &TypedAction<CreateLinkData>) -> Check {
    let Ok(presence) = PresenceSummary::from_tag(&action.tag) else {
        return fail("presence link tag must be a presence summary");
    };
    if let Err(e) = check_acts_for_node(
        &presence.node.node_id,
        presence.delegation.as_ref(),
        &action.header,
    )? {
        return fail(format!(
            "a heartbeat must come from the node's own agent: {e}"
        ));
    }
    rule!(check_points_at_registration(
        &presence.node,
        &action.target_address
    )?);
    let hb = &presence.heartbeat;
    if hb.node_id != presence.node.node_id {
        return fail("a presence link's heartbeat is of another node");
    }
    rule!(check_heartbeat(hb, action.timestamp())?);
    let properties = registry_properties()?;
    if let Some(committed) = &presence.committed {
        let lag = properties.custody_total_lag_secs as i64;
        if !cutoff_fits(
            committed.cutoff.as_micros(),
            action.timestamp().as_micros(),
            lag,
        ) {
            return fail("a presence link's custody total cannot count links younger than its lag");
        }
    }
    let expected: AnyLinkableHash = presence_shard_base(
        properties.lease_bucket_of(hb.timestamp.as_micros()),
        presence_shard(&presence.node.node_id, properties.shards()),
    )?
    .into();
    if action.base_address != expected {
        return fail("presence link is not on its node's shard of its heartbeat's bucket");
    }
    ok()
}

/// Leases of one author within any 60 s, from the DNA properties.
pub(super) fn check_lease_rate(action: &TypedAction<CreateLinkData>) -> Check {
    let limit = registry_properties()?.max_leases_per_minute;
    check_rate(&action.header, limit, "presence leases", |a| {
        matches!(a, ActionData::CreateLink(l)
            if l.zome_index == action.zome_index && l.link_type == action.link_type)
    })
}
