//! Discovery: nodes by region and tier, and ranked custodians.

use crate::assignments::{committed_bytes_of, committed_bytes_of_present};
use crate::directory::{fetch_registration, newest_per_node, registration_of_node, DirectoryEntry};
use crate::health::{suspicion_queries, verdicts_by_subject, vetting};
use crate::{get_many, guest, links_on, links_on_many, of_types};
use hdk::prelude::*;
use node_registry_integrity::*;
use registry_core::heartbeat::LivenessPolicy;
use registry_core::presence::{
    next_read, placement_prefix, presence_buckets_to_read, presence_shard, shard_order, NextRead,
    PlacementPrefix, FIRST_READ_SHARDS,
};
use registry_core::region::parse_region;
use registry_core::selection::{check_eligible, rank, Candidate, Criteria};
use registry_core::verdict::judge;
use registry_core::{NodeStatus, StewardTier};
use std::collections::{BTreeMap, BTreeSet};

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
pub fn get_nodes_by_region(region: String) -> ExternResult<Vec<NodeRegistration>> {
    let region = parse_region(&region).map_err(reg_err)?;
    registrations(newest_per_node(links_on(
        region_base(region)?,
        LinkTypes::RegionIndex,
    )?))
}

/// The registered nodes of a tier.
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

/// A node found in the presence index: its newest lease.
#[derive(Clone)]
pub(crate) struct Present {
    /// What its lease says.
    pub summary: PresenceSummary,
    /// The registration version the lease points at.
    pub registration: ActionHash,
    /// When the lease was written.
    pub written: Timestamp,
}

/// The presence queries for the current and previous lease bucket: of every
/// shard, or of the given ones.
fn presence_queries(
    now: Timestamp,
    properties: &RegistryProperties,
    shards: Option<&[u32]>,
) -> ExternResult<Vec<(AnyLinkableHash, LinkTypeFilter)>> {
    let all: Vec<u32> = (0..properties.shards()).collect();
    let shards = shards.unwrap_or(&all);
    let mut out = Vec::new();
    for b in presence_buckets_to_read(now.as_micros(), properties.lease_secs()) {
        for &s in shards {
            out.push((
                presence_shard_base(b, s)?.into(),
                of_types([LinkTypes::PresenceIndex])?,
            ));
        }
    }
    Ok(out)
}

/// The newest lease per node among presence links.
fn newest_leases(links: impl IntoIterator<Item = Link>) -> Vec<Present> {
    let mut newest: BTreeMap<String, Present> = BTreeMap::new();
    for link in links {
        let (Ok(summary), Some(registration)) = (
            PresenceSummary::from_tag(&link.tag),
            link.target.into_action_hash(),
        ) else {
            continue;
        };
        let node_id = summary.node.node_id.clone();
        if newest
            .get(&node_id)
            .is_none_or(|p| link.timestamp > p.written)
        {
            newest.insert(
                node_id,
                Present {
                    summary,
                    registration,
                    written: link.timestamp,
                },
            );
        }
    }
    newest.into_values().collect()
}

/// The nodes with a lease in the current or previous bucket (of every
/// shard, or of some), newest lease per node, in one batched read.
pub(crate) fn present_nodes(
    now: Timestamp,
    properties: &RegistryProperties,
    shards: Option<&[u32]>,
) -> ExternResult<Vec<Present>> {
    Ok(newest_leases(
        links_on_many(presence_queries(now, properties, shards)?)?
            .into_iter()
            .flatten(),
    ))
}

/// The present nodes (of some shards, or all) that selection may offer:
/// those two vetted monitors do not suspect. The suspicions of the regions
/// asked about (all, when none) are read in the same batch as presence.
fn selectable_nodes(
    regions: &[String],
    now: Timestamp,
    properties: &RegistryProperties,
    shards: Option<&[u32]>,
) -> ExternResult<Vec<Present>> {
    let presence = presence_queries(now, properties, shards)?;
    let split = presence.len();
    let mut queries = presence;
    queries.extend(suspicion_queries(regions, now, properties)?);
    let mut results = links_on_many(queries)?;
    let suspicions = results.split_off(split);
    let present = newest_leases(results.into_iter().flatten());
    let verdicts = verdicts_by_subject(suspicions.into_iter().flatten(), now, &vetting()?);
    Ok(present
        .into_iter()
        .filter(|p| {
            verdicts.get(&p.summary.node.node_id).is_none_or(|views| {
                !judge(
                    views,
                    Some(p.written.as_micros()),
                    now.as_micros(),
                    LivenessPolicy::default(),
                )
                .excluded_from_selection()
            })
        })
        .collect())
}

/// A present node as a selection candidate, before its committed custody
/// is known.
fn candidate(p: &PresenceSummary) -> Candidate {
    Candidate {
        node_id: p.node.node_id.clone(),
        region: p.node.region.clone(),
        tier: p
            .node
            .steward_tier
            .parse()
            .unwrap_or(StewardTier::Caretaker),
        opted_in: p.node.custodian_opt_in,
        status: p.heartbeat.status.parse().ok(),
        // Holds a lease, and two monitors do not suspect it (see
        // `selectable_nodes`).
        alive: true,
        max_custody_bytes: p.node.max_custody_bytes,
        assigned_bytes: 0,
        current_load: p.heartbeat.current_load,
        uptime_percent: p.node.uptime_percent,
        reputation: 100.0,
    }
}

/// The placement set of a content (see `registry_core::presence`): the
/// present nodes of the first shards of its order that hold enough eligible
/// nodes (going by what their presence says), read a few shards at a time,
/// or all at once when the network turns out small. Also says whether the
/// set is only part of the present nodes.
fn placement_set(
    q: &Criteria,
    key: &str,
    now: Timestamp,
    properties: &RegistryProperties,
) -> ExternResult<(Vec<Present>, bool)> {
    let shards = properties.shards();
    let order = shard_order(key, shards);
    let min = properties.placement_set_min.max(1) as usize;
    let shard_of = |p: &Present| presence_shard(&p.summary.node.node_id, shards);
    let mut found: Vec<Present> = Vec::new();
    let mut read = 0usize;
    let mut next = FIRST_READ_SHARDS.min(order.len());
    loop {
        if next == order.len() - read {
            // What is left is everything: one read of the whole buckets.
            found = selectable_nodes(&q.regions, now, properties, None)?;
            read = order.len();
        } else {
            found.extend(selectable_nodes(
                &q.regions,
                now,
                properties,
                Some(&order[read..read + next]),
            )?);
            read += next;
        }
        let mut eligible_in: BTreeMap<u32, usize> = BTreeMap::new();
        for p in &found {
            if check_eligible(&candidate(&p.summary), q).is_ok() {
                *eligible_in.entry(shard_of(p)).or_default() += 1;
            }
        }
        let count = |s: u32| eligible_in.get(&s).copied().unwrap_or(0);
        match placement_prefix(&order, count, read, min) {
            PlacementPrefix::Shards(k) => {
                let set: BTreeSet<u32> = order[..k].iter().copied().collect();
                found.retain(|p| set.contains(&shard_of(p)));
                return Ok((found, k < order.len()));
            }
            PlacementPrefix::Incomplete { eligible } => {
                next = match next_read(eligible, read, shards, min) {
                    NextRead::Shards(n) => n.min(order.len() - read),
                    NextRead::Everything => order.len() - read,
                };
            }
        }
    }
}

/// Candidate custodians, best first: opted in, present (a lease in the
/// current or previous lease bucket) and not suspected by two vetted
/// monitors, in an allowed status, region and tier, not excluded, with
/// enough free custody (declared cap minus what is already assigned). With `content_id` the order is weighted rendezvous
/// on (content, node), so independent callers choose alike and contents
/// spread across nodes.
///
/// Reads are batched and, when placing a content with a `limit`, do not grow
/// with the network: the content's placement set (a few presence shards,
/// see `registry_core::presence`), the committed custody of its best
/// candidates (one call: for each of the limit and two more, the total it
/// published with its presence plus its recent-custody links, however much
/// it holds; further rounds only if some of those are full), and the
/// chosen registrations (from the local store, the network only for those
/// it lacks). If the set holds too few nodes with room, every present node
/// is considered, as without a content.
pub fn get_available_custodians(filters: CustodianFilters) -> ExternResult<Vec<RankedCustodian>> {
    let q = criteria(&filters)?;
    let now = sys_time()?;
    let properties = registry_properties()?;
    if let (Some(key), Some(limit)) = (&q.placement_key, filters.limit) {
        let (set, partial) = placement_set(&q, key, now, &properties)?;
        let chosen = choose(&set, &q, filters.limit, now)?;
        if chosen.len() >= limit as usize || !partial {
            return Ok(chosen);
        }
    }
    let present = selectable_nodes(&q.regions, now, &properties, None)?;
    choose(&present, &q, filters.limit, now)
}

/// A node's committed custody as its newest presence link publishes it,
/// as a selection counts it, and as its custody index says (see
/// [`CommittedCustodyView`]); an error if the node is not registered.
pub fn get_committed_custody(node_id: String) -> ExternResult<CommittedCustodyView> {
    let Some(registered) = registration_of_node(&node_id)? else {
        return Err(guest(format!("node {node_id} is not registered")));
    };
    let now = sys_time()?;
    let properties = registry_properties()?;
    let published =
        crate::health::latest_lease(&node_id, now, &properties)?.and_then(|l| l.summary.committed);
    let _ = registered;
    let indexed_bytes = committed_bytes_of(std::slice::from_ref(&node_id))?
        .pop()
        .unwrap_or_default();
    // Without a published total, selection reads the index: the same read.
    let counted_bytes = match &published {
        Some(_) => committed_bytes_of_present(&[(node_id.clone(), published.clone())], now)?
            .pop()
            .unwrap_or_default(),
        None => indexed_bytes,
    };
    Ok(CommittedCustodyView {
        node_id,
        published,
        counted_bytes,
        indexed_bytes,
    })
}

/// Candidates confirmed beyond the `limit` in a selection's first batch, so
/// that one or two turning out full does not cost another round. Each one
/// confirmed adds its one or two recent-custody queries to the batched
/// read, the largest fixed cost of a selection.
const CONFIRM_MARGIN: usize = 2;

/// The best `limit` (or all) eligible nodes among `present`, confirming
/// committed custody in optimistic order a batch at a time.
fn choose(
    present: &[Present],
    q: &Criteria,
    limit: Option<u32>,
    now: Timestamp,
) -> ExternResult<Vec<RankedCustodian>> {
    let mut candidates: Vec<Candidate> = present.iter().map(|p| candidate(&p.summary)).collect();
    let enough = limit
        .map(|l| (l as usize).saturating_add(CONFIRM_MARGIN).max(1))
        .unwrap_or(usize::MAX);

    let order: Vec<usize> = rank(&candidates, q).into_iter().map(|r| r.index).collect();
    let mut confirmed: Vec<usize> = Vec::new();
    let mut eligible = 0usize;
    let mut next = 0usize;
    while eligible < enough && next < order.len() {
        let batch: Vec<usize> = order[next..]
            .iter()
            .take(enough - eligible)
            .copied()
            .collect();
        next += batch.len();
        let nodes: Vec<(String, Option<CommittedCustody>)> = batch
            .iter()
            .map(|&i| {
                (
                    candidates[i].node_id.clone(),
                    present[i].summary.committed.clone(),
                )
            })
            .collect();
        for (&i, assigned) in batch.iter().zip(committed_bytes_of_present(&nodes, now)?) {
            candidates[i].assigned_bytes = assigned;
            if check_eligible(&candidates[i], q).is_ok() {
                eligible += 1;
            }
            confirmed.push(i);
        }
    }

    let pool: Vec<Candidate> = confirmed.iter().map(|&i| candidates[i].clone()).collect();
    let mut chosen = rank(&pool, q);
    if let Some(l) = limit {
        chosen.truncate(l as usize);
    }
    let hashes: Vec<ActionHash> = chosen
        .iter()
        .map(|r| present[confirmed[r.index]].registration.clone())
        .collect();
    let mut out = Vec::new();
    for (ranked, record) in chosen.iter().zip(get_many(&hashes)?) {
        let Some(record) = record else { continue };
        let Some(registration) = record
            .entry()
            .to_app_option::<NodeRegistration>()
            .map_err(|e| wasm_error!(e))?
        else {
            continue;
        };
        let i = confirmed[ranked.index];
        out.push(RankedCustodian {
            registration,
            registration_hash: record.action_address().clone(),
            free_custody_bytes: candidates[i].free_bytes(),
            score: ranked.weight,
            last_heartbeat: Some(present[i].summary.heartbeat.clone()),
        });
    }
    Ok(out)
}

/// The present nodes (a lease in the current or previous lease bucket),
/// of `region` or of every region, with the key their monitors' beats go
/// to and whether they watch others: what a node picks its monitors from.
pub fn get_present_nodes(region: Option<String>) -> ExternResult<Vec<PresentNode>> {
    if let Some(r) = &region {
        parse_region(r).map_err(reg_err)?;
    }
    let now = sys_time()?;
    let properties = registry_properties()?;
    Ok(present_nodes(now, &properties, None)?
        .into_iter()
        .filter(|p| region.as_ref().is_none_or(|r| p.summary.node.region == *r))
        .map(|p| PresentNode {
            node_id: p.summary.node.node_id,
            agent: p.summary.node.agent,
            region: p.summary.node.region,
            watcher: p.summary.heartbeat.watcher,
        })
        .collect())
}
