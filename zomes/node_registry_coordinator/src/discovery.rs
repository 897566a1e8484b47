//! Discovery: nodes by region and tier, and ranked custodians.

use crate::assignments::committed_bytes;
use crate::directory::{fetch_registration, newest_per_node, DirectoryEntry};
use crate::health::latest_heartbeat;
use crate::{guest, links_on};
use hdk::prelude::*;
use node_registry_integrity::*;
use registry_core::heartbeat::{judge_liveness, LivenessPolicy};
use registry_core::region::{parse_region, KNOWN_REGIONS};
use registry_core::selection::{check_eligible, rank, Candidate, Criteria};
use registry_core::{NodeStatus, StewardTier};

fn registrations(entries: Vec<DirectoryEntry>) -> ExternResult<Vec<NodeRegistration>> {
    let mut out = Vec::new();
    for e in entries {
        if let Some(r) = fetch_registration(&e.target)? {
            out.push(r.registration);
        }
    }
    Ok(out)
}

fn reg_err(e: registry_core::RegistryError) -> WasmError {
    guest(e.to_string())
}

/// The registered nodes of a region.
#[hdk_extern]
pub fn get_nodes_by_region(region: String) -> ExternResult<Vec<NodeRegistration>> {
    let region = parse_region(&region).map_err(reg_err)?;
    registrations(newest_per_node(links_on(
        region_base(region)?,
        LinkTypes::RegionIndex,
    )?))
}

/// The registered nodes of a tier.
#[hdk_extern]
pub fn get_nodes_by_tier(tier: String) -> ExternResult<Vec<NodeRegistration>> {
    let tier: StewardTier = tier.parse().map_err(reg_err)?;
    registrations(newest_per_node(links_on(
        tier_base(tier.as_str())?,
        LinkTypes::TierIndex,
    )?))
}

/// Parses the wire filters into selection criteria, with clear errors.
fn criteria(f: &CustodianFilters) -> ExternResult<Criteria> {
    let mut regions: Vec<String> = f.regions.clone();
    if let Some(r) = &f.region {
        regions.push(r.clone());
    }
    for r in &regions {
        parse_region(r).map_err(reg_err)?;
    }
    let statuses = match &f.status {
        Some(s) => vec![s.parse::<NodeStatus>().map_err(reg_err)?],
        None => vec![],
    };
    let min_tier = match &f.min_tier {
        Some(t) => Some(t.parse::<StewardTier>().map_err(reg_err)?),
        None => None,
    };
    let gb = f.min_storage_gb.unwrap_or(0.0);
    if !(gb.is_finite() && gb >= 0.0) {
        return Err(guest(format!("min_storage_gb out of range: {gb}")));
    }
    Ok(Criteria {
        statuses,
        regions,
        min_tier,
        exclude: f.exclude_nodes.iter().cloned().collect(),
        needed_bytes: registry_core::capacity::gb_to_bytes(gb)
            .max(f.min_storage_bytes.unwrap_or(0)),
        placement_key: f.content_id.clone(),
    })
}

/// Candidate custodians, best first: opted in, alive, in an allowed status,
/// region and tier, not excluded, with enough free custody (declared cap
/// minus what is already assigned). With `content_id` the order is weighted
/// rendezvous on (content, node), so independent callers choose alike and
/// contents spread across nodes.
///
/// Directory tags give a first, optimistic order; liveness and committed
/// custody are then read per node (a bounded number of reads each). With a
/// `limit`, reading stops once three times the limit are confirmed eligible.
#[hdk_extern]
pub fn get_available_custodians(filters: CustodianFilters) -> ExternResult<Vec<RankedCustodian>> {
    let q = criteria(&filters)?;
    let now = sys_time()?;
    let regions: Vec<&str> = if q.regions.is_empty() {
        KNOWN_REGIONS.to_vec()
    } else {
        q.regions.iter().map(String::as_str).collect()
    };
    let mut links = Vec::new();
    for r in regions {
        links.extend(links_on(region_base(r)?, LinkTypes::RegionIndex)?);
    }
    let entries = newest_per_node(links);

    // Optimistic candidates from the tags alone.
    let optimistic: Vec<Candidate> = entries
        .iter()
        .map(|e| Candidate {
            node_id: e.summary.node_id.clone(),
            region: e.summary.region.clone(),
            tier: e
                .summary
                .steward_tier
                .parse()
                .unwrap_or(StewardTier::Caretaker),
            opted_in: e.summary.custodian_opt_in,
            status: Some(NodeStatus::Online),
            alive: true,
            max_custody_bytes: e.summary.max_custody_bytes,
            assigned_bytes: 0,
            current_load: 0.0,
            uptime_percent: e.summary.uptime_percent,
            reputation: 100.0,
        })
        .collect();
    let enough = filters.limit.map(|l| (l as usize).saturating_mul(3).max(1));

    // Confirm in optimistic order.
    let mut confirmed: Vec<(Candidate, usize, Option<HeartbeatSummary>)> = Vec::new();
    let mut eligible = 0usize;
    for ranked in rank(&optimistic, &q) {
        if enough.is_some_and(|n| eligible >= n) {
            break;
        }
        let mut c = optimistic[ranked.index].clone();
        let hb = latest_heartbeat(&c.node_id, now)?;
        c.alive = judge_liveness(
            hb.as_ref().map(|h| h.timestamp.as_micros()),
            now.as_micros(),
            LivenessPolicy {
                grace_secs: 0,
                ..Default::default()
            },
        )
        .is_alive();
        c.status = hb.as_ref().and_then(|h| h.status.parse().ok());
        c.current_load = hb.as_ref().map(|h| h.current_load).unwrap_or(1.0);
        c.assigned_bytes = committed_bytes(&c.node_id)?;
        if check_eligible(&c, &q).is_ok() {
            eligible += 1;
        }
        confirmed.push((c, ranked.index, hb));
    }

    let candidates: Vec<Candidate> = confirmed.iter().map(|c| c.0.clone()).collect();
    let mut out = Vec::new();
    for ranked in rank(&candidates, &q) {
        if filters.limit.is_some_and(|l| out.len() >= l as usize) {
            break;
        }
        let (c, entry_index, hb) = &confirmed[ranked.index];
        let entry = &entries[*entry_index];
        if let Some(reg) = fetch_registration(&entry.target)? {
            out.push(RankedCustodian {
                registration: reg.registration,
                registration_hash: reg.action_hash,
                free_custody_bytes: c.free_bytes(),
                score: ranked.weight,
                last_heartbeat: hb.clone(),
            });
        }
    }
    Ok(out)
}
