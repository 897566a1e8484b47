//! Custody assignments: create them, and read which are live.

use crate::{guest, links_on, links_on_many, of_types, scoped, write_link};
use hdk::prelude::*;
use node_registry_integrity::*;
use registry_core::assignment::{live_claims, SlotClaim};
use registry_core::committed::{
    committed_with_recent, recent_bucket, recent_buckets_to_read, total_before, total_cutoff,
    HeldShard,
};
use std::collections::{BTreeMap, BTreeSet};

/// An assignment link, decoded.
struct AssignmentLink {
    summary: AssignmentSummary,
    entry_hash: EntryHash,
    linked: Timestamp,
}

impl AssignmentLink {
    fn held(&self) -> HeldShard<EntryHash> {
        HeldShard {
            key: self.entry_hash.clone(),
            bytes: self.summary.shard_size_bytes,
            linked_micros: self.linked.as_micros(),
        }
    }
}

fn decode(links: Vec<Link>) -> Vec<AssignmentLink> {
    let mut seen = BTreeSet::new();
    links
        .into_iter()
        .filter_map(|l| {
            let entry_hash = l.target.into_entry_hash()?;
            let summary = AssignmentSummary::from_tag(&l.tag).ok()?;
            // Identical decisions by several writers share one entry.
            seen.insert(entry_hash.clone()).then_some(AssignmentLink {
                summary,
                entry_hash,
                linked: l.timestamp,
            })
        })
        .collect()
}

/// The live links among a content's assignment links: per shard, the
/// highest round, ties broken by the lowest entry hash.
fn live_among(all: Vec<AssignmentLink>) -> Vec<AssignmentLink> {
    let claims: Vec<SlotClaim<Vec<u8>>> = all
        .iter()
        .map(|a| SlotClaim {
            shard_index: a.summary.shard_index,
            round: a.summary.decision_round,
            tiebreak: a.entry_hash.get_raw_39().to_vec(),
        })
        .collect();
    let live: BTreeSet<usize> = live_claims(&claims).into_values().collect();
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| live.contains(i))
        .map(|(_, a)| a)
        .collect()
}

/// The live assignment links of a content.
fn live_links_of_content(content_id: &str) -> ExternResult<Vec<AssignmentLink>> {
    Ok(live_among(decode(links_on(
        content_base(content_id)?,
        LinkTypes::ContentToAssignment,
    )?)))
}

/// Where one assignment stands in its content's index.
pub(crate) fn standing_of(
    content_id: &str,
    entry_hash: &EntryHash,
) -> ExternResult<AssignmentStanding> {
    let all = decode(links_on(
        content_base(content_id)?,
        LinkTypes::ContentToAssignment,
    )?);
    if !all.iter().any(|l| l.entry_hash == *entry_hash) {
        return Ok(AssignmentStanding::NotYetIndexed);
    }
    Ok(
        if live_among(all).iter().any(|l| l.entry_hash == *entry_hash) {
            AssignmentStanding::Live
        } else {
            AssignmentStanding::Retired
        },
    )
}

fn fetch(links: Vec<AssignmentLink>) -> ExternResult<Vec<AssignmentRecord>> {
    let mut out = Vec::new();
    for l in links {
        let Some(record) = get(l.entry_hash.clone(), GetOptions::default())? else {
            continue;
        };
        let a: Option<CustodianAssignment> =
            record.entry().to_app_option().map_err(|e| wasm_error!(e))?;
        if let Some(assignment) = a {
            out.push(AssignmentRecord {
                assignment,
                entry_hash: l.entry_hash,
                assigned_at: Some(record.action().timestamp()),
            });
        }
    }
    out.sort_by_key(|r| r.assignment.shard_index);
    Ok(out)
}

/// Records a custodian's duty to keep a shard, and indexes it by content and
/// by custodian. Writing the same decision twice is harmless: the entry is
/// identical and its links are not repeated.
pub fn assign_custodian(assignment: CustodianAssignment) -> ExternResult<ActionHash> {
    if get(
        assignment.custodian_registration.clone(),
        GetOptions::default(),
    )?
    .is_none()
    {
        return Err(guest(format!(
            "custodian registration {} of node {} not found",
            assignment.custodian_registration, assignment.custodian_node_id
        )));
    }
    let entry_hash = hash_entry(&assignment)?;
    let action = create_entry(EntryTypes::CustodianAssignment(assignment.clone()))?;
    let already_linked = links_on(
        content_base(&assignment.content_id)?,
        LinkTypes::ContentToAssignment,
    )?
    .iter()
    .any(|l| l.target.clone().into_entry_hash().as_ref() == Some(&entry_hash));
    if !already_linked {
        let tag = AssignmentSummary::of(&assignment).to_tag()?;
        write_link(
            content_base(&assignment.content_id)?,
            entry_hash.clone(),
            LinkTypes::ContentToAssignment,
            tag.clone(),
        )?;
        write_link(
            custody_base(&assignment.custodian_node_id)?,
            entry_hash.clone(),
            LinkTypes::NodeToAssignment,
            tag.clone(),
        )?;
        write_link(
            recent_custody_base(
                &assignment.custodian_node_id,
                recent_bucket(sys_time()?.as_micros()),
            )?,
            entry_hash.clone(),
            LinkTypes::NodeToRecentAssignment,
            tag.clone(),
        )?;
        write_link(
            assignment.owner_agent.clone(),
            entry_hash.clone(),
            LinkTypes::OwnerToAssignment,
            tag,
        )?;
        if let Some(replaced) = &assignment.replaces {
            retire_replaced(&assignment, &entry_hash, replaced, &action)?;
        }
    }
    Ok(action)
}

/// Records a whole placement's assignments in one call: one commit and one
/// read of the author's chain instead of one per shard (every call re-reads
/// the chain), and all or none of them. At most
/// [`registry_core::assignment::MAX_SHARDS`], a content's most shards.
pub fn assign_custodians(assignments: Vec<CustodianAssignment>) -> ExternResult<Vec<ActionHash>> {
    let most = registry_core::assignment::MAX_SHARDS as usize;
    if assignments.is_empty() || assignments.len() > most {
        return Err(guest(format!(
            "assignments must list 1 to {most} assignments, not {}",
            assignments.len()
        )));
    }
    assignments.into_iter().map(assign_custodian).collect()
}

/// Marks the assignment a repair replaces as retired on its custodian's
/// index, in the same commit as the repair, so the old custodian's
/// committed custody drops at once.
fn retire_replaced(
    winner: &CustodianAssignment,
    winner_hash: &EntryHash,
    replaced: &EntryHash,
    decided_in: &ActionHash,
) -> ExternResult<()> {
    // Validation has the replaced entry; if this node cannot read it yet,
    // the repair still stands and the mark is left to the old custodian's
    // sidecar (`retire_outranked`): until then it only looks fuller.
    let old = get(replaced.clone(), GetOptions::default())?.and_then(|r| {
        r.entry()
            .to_app_option::<CustodianAssignment>()
            .ok()
            .flatten()
    });
    if let Some(old) = old.filter(|old| outranks((winner, winner_hash), (old, replaced))) {
        retire(
            &old.custodian_node_id,
            replaced,
            old.shard_size_bytes,
            winner_hash,
            RetiredBy::Decider(decided_in.clone()),
        )?;
    }
    Ok(())
}

/// Marks `retired` (of `bytes`) taken by `by`, on the custodian's index and
/// on its recent-custody bucket, so selections see it before the
/// custodian next totals its custody.
/// Who writes a retirement mark, as validation accepts it.
enum RetiredBy {
    /// The author of the outranking decision, by its create action.
    Decider(ActionHash),
    /// The retired custodian, through this delegation when a working key.
    Custodian(Option<ActionHash>),
}

fn retire(
    custodian: &str,
    retired: &EntryHash,
    bytes: u64,
    by: &EntryHash,
    who: RetiredBy,
) -> ExternResult<()> {
    let (decided_in, delegation) = match who {
        RetiredBy::Decider(action) => (Some(action), None),
        RetiredBy::Custodian(delegation) => (None, delegation),
    };
    let tag = RetirementSummary {
        superseded_by: by.clone(),
        retired_bytes: bytes,
        decided_in,
        delegation,
    }
    .to_tag()?;
    let recent = recent_custody_base(custodian, recent_bucket(sys_time()?.as_micros()))?;
    for base in [custody_base(custodian)?, recent] {
        write_link(
            base,
            retired.clone(),
            LinkTypes::NodeToRetiredAssignment,
            tag.clone(),
        )?;
    }
    Ok(())
}

/// A retirement link as a mark on a custody index: what it retired, its
/// bytes and when it was linked.
fn retirement_mark(l: Link) -> Option<HeldShard<EntryHash>> {
    let bytes = RetirementSummary::from_tag(&l.tag).ok()?.retired_bytes;
    Some(HeldShard {
        key: l.target.into_entry_hash()?,
        bytes,
        linked_micros: l.timestamp.as_micros(),
    })
}

/// The live assignment records of a content.
pub(crate) fn live_records_of_content(content_id: &str) -> ExternResult<Vec<AssignmentRecord>> {
    fetch(live_links_of_content(content_id)?)
}

/// The live assignment records held by a node.
pub(crate) fn live_records_of_node(node_id: &str) -> ExternResult<Vec<AssignmentRecord>> {
    fetch(live_links_of_node(node_id)?)
}

/// The live assignments of a content, one per shard, by shard index.
pub fn get_assignments_for_content(content_id: String) -> ExternResult<Vec<CustodianAssignment>> {
    Ok(get_assignment_records_for_content(content_id)?
        .into_iter()
        .map(|r| r.assignment)
        .collect())
}

/// As `get_assignments_for_content`, with each assignment's entry hash.
pub fn get_assignment_records_for_content(
    content_id: String,
) -> ExternResult<Vec<AssignmentRecord>> {
    fetch(live_links_of_content(&content_id)?)
}

/// Every assignment ever made for a content (live and superseded), for
/// audits and for checking that repairs did not duplicate work.
pub fn get_assignment_history(content_id: String) -> ExternResult<Vec<AssignmentRecord>> {
    fetch(decode(links_on(
        content_base(&content_id)?,
        LinkTypes::ContentToAssignment,
    )?))
}

/// The assignment links of several contents, in one batched read.
fn content_indexes(contents: &[String]) -> ExternResult<Vec<Vec<Link>>> {
    let assignments = of_types([LinkTypes::ContentToAssignment])?;
    links_on_many(
        contents
            .iter()
            .map(|c| Ok((content_base(c)?.into(), assignments.clone())))
            .collect::<ExternResult<_>>()?,
    )
}

/// The live assignment links held by each of several nodes, in two batched
/// reads whatever their number: their custody indexes, then the indexes of
/// every content they hold (an assignment is live only if its content still
/// says so).
fn live_links_of_nodes(node_ids: &[String]) -> ExternResult<Vec<Vec<AssignmentLink>>> {
    let held: Vec<Vec<AssignmentLink>> = links_on_many(
        node_ids
            .iter()
            .map(|n| {
                Ok((
                    custody_base(n)?.into(),
                    of_types([LinkTypes::NodeToAssignment])?,
                ))
            })
            .collect::<ExternResult<_>>()?,
    )?
    .into_iter()
    .map(decode)
    .collect();
    let contents: Vec<String> = held
        .iter()
        .flatten()
        .map(|a| a.summary.content_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let content_links = content_indexes(&contents)?;
    let live: BTreeSet<EntryHash> = content_links
        .into_iter()
        .flat_map(|links| live_among(decode(links)))
        .map(|l| l.entry_hash)
        .collect();
    Ok(held
        .into_iter()
        .zip(node_ids)
        .map(|(mine, node_id)| {
            mine.into_iter()
                .filter(|a| live.contains(&a.entry_hash) && a.summary.custodian_node_id == *node_id)
                .collect()
        })
        .collect())
}

/// The live assignment links held by a node.
fn live_links_of_node(node_id: &str) -> ExternResult<Vec<AssignmentLink>> {
    Ok(live_links_of_nodes(&[node_id.to_string()])?
        .pop()
        .unwrap_or_default())
}

/// The live assignments a node holds.
pub fn get_assignments_for_node(node_id: String) -> ExternResult<Vec<CustodianAssignment>> {
    Ok(get_assignment_records_for_node(node_id)?
        .into_iter()
        .map(|r| r.assignment)
        .collect())
}

/// As `get_assignments_for_node`, with each assignment's entry hash.
pub fn get_assignment_records_for_node(node_id: String) -> ExternResult<Vec<AssignmentRecord>> {
    fetch(live_links_of_node(&node_id)?)
}

/// What a node's custody index says: the assignments it was given, and
/// the marks of those retired.
struct CustodyIndex {
    held: Vec<AssignmentLink>,
    marks: Vec<HeldShard<EntryHash>>,
}

impl CustodyIndex {
    fn held_shards(&self) -> Vec<HeldShard<EntryHash>> {
        self.held.iter().map(AssignmentLink::held).collect()
    }
}

/// The custody indexes of several nodes, in one batched read (one query a
/// node, whatever it holds).
fn custody_indexes(node_ids: &[String]) -> ExternResult<Vec<CustodyIndex>> {
    let retired_type = scoped(LinkTypes::NodeToRetiredAssignment)?.zome_type;
    let queries = node_ids
        .iter()
        .map(|n| {
            Ok((
                custody_base(n)?.into(),
                of_types([
                    LinkTypes::NodeToAssignment,
                    LinkTypes::NodeToRetiredAssignment,
                ])?,
            ))
        })
        .collect::<ExternResult<_>>()?;
    Ok(links_on_many(queries)?
        .into_iter()
        .zip(node_ids)
        .map(|(links, node_id)| {
            let (retirements, held): (Vec<Link>, Vec<Link>) =
                links.into_iter().partition(|l| l.link_type == retired_type);
            CustodyIndex {
                held: decode(held)
                    .into_iter()
                    .filter(|a| a.summary.custodian_node_id == *node_id)
                    .collect(),
                marks: retirements
                    .into_iter()
                    .filter_map(retirement_mark)
                    .collect(),
            }
        })
        .collect())
}

/// Bytes of custody each node is committed to: its assignments less those
/// marked retired. One query a node, but the conductor's work grows with
/// what the node ever held (about 20 µs an assignment), so selection uses
/// it only for nodes that published no usable total (see
/// [`committed_bytes_of_present`]). An outranked assignment not yet marked (a
/// same-round decision lost, until the custodian's sidecar marks it with
/// [`retire_outranked`]) still counts: a node can look fuller than it is,
/// never emptier.
pub(crate) fn committed_bytes_of(node_ids: &[String]) -> ExternResult<Vec<u64>> {
    // Everything ever linked, less every mark: a total with no cutoff.
    Ok(custody_indexes(node_ids)?
        .iter()
        .map(|index| total_before(&index.held_shards(), &index.marks, i64::MAX))
        .collect())
}

/// A node's total of its own committed custody, for its presence link: the
/// assignments linked before the cutoff of a read at `read_at`, `lag_secs`
/// before it, less those marked retired before it (see
/// `registry_core::committed`).
pub(crate) fn committed_total_of(
    node_id: &str,
    read_at: Timestamp,
    lag_secs: u32,
) -> ExternResult<CommittedCustody> {
    let cutoff = total_cutoff(read_at.as_micros(), lag_secs as i64);
    let index = custody_indexes(&[node_id.to_string()])?
        .pop()
        .ok_or_else(|| guest("custody index read returned nothing"))?;
    Ok(CommittedCustody {
        bytes: total_before(&index.held_shards(), &index.marks, cutoff),
        cutoff: Timestamp::from_micros(cutoff),
    })
}

/// Committed custody of present nodes, each given with the total it
/// published (if any): that total plus its recent-custody links since the
/// total's cutoff, a read of one or two small bases a node however much it
/// holds; nodes without a usable total are read in full
/// ([`committed_bytes_of`]). Two batched reads at most.
pub(crate) fn committed_bytes_of_present(
    nodes: &[(String, Option<CommittedCustody>)],
    now: Timestamp,
) -> ExternResult<Vec<u64>> {
    let recent_types = of_types([
        LinkTypes::NodeToRecentAssignment,
        LinkTypes::NodeToRetiredAssignment,
    ])?;
    let retired_type = scoped(LinkTypes::NodeToRetiredAssignment)?.zome_type;
    let mut queries = Vec::new();
    let mut query_owner = Vec::new();
    let mut in_full = Vec::new();
    for (i, (node_id, committed)) in nodes.iter().enumerate() {
        let buckets = committed
            .as_ref()
            .and_then(|c| recent_buckets_to_read(c.cutoff.as_micros(), now.as_micros()));
        match buckets {
            Some(buckets) => {
                for b in buckets {
                    queries.push((
                        recent_custody_base(node_id, b)?.into(),
                        recent_types.clone(),
                    ));
                    query_owner.push(i);
                }
            }
            None => in_full.push(i),
        }
    }
    let mut recent: Vec<Vec<HeldShard<EntryHash>>> = vec![Vec::new(); nodes.len()];
    let mut retired: Vec<Vec<HeldShard<EntryHash>>> = vec![Vec::new(); nodes.len()];
    for (links, &i) in links_on_many(queries)?.into_iter().zip(&query_owner) {
        let (marks, held): (Vec<Link>, Vec<Link>) =
            links.into_iter().partition(|l| l.link_type == retired_type);
        recent[i].extend(
            decode(held)
                .iter()
                .filter(|a| a.summary.custodian_node_id == nodes[i].0)
                .map(AssignmentLink::held),
        );
        retired[i].extend(marks.into_iter().filter_map(retirement_mark));
    }
    let mut out: Vec<u64> = nodes
        .iter()
        .enumerate()
        .map(|(i, (_, committed))| match committed {
            Some(c) => {
                committed_with_recent(c.bytes, c.cutoff.as_micros(), &recent[i], &retired[i])
            }
            None => 0,
        })
        .collect();
    if !in_full.is_empty() {
        let ids: Vec<String> = in_full.iter().map(|&i| nodes[i].0.clone()).collect();
        for (&i, bytes) in in_full.iter().zip(committed_bytes_of(&ids)?) {
            out[i] = bytes;
        }
    }
    Ok(out)
}

/// Marks retired every assignment of `node_id` that its content's index no
/// longer has live (a repair, or a same-round decision by another node,
/// took its shard) and that is not marked yet, so it stops counting in the
/// node's committed custody. Returns how many it marked. The node itself
/// (its identity or working key) marks any; anyone else only those taken by
/// a decision it wrote itself (validation accepts no other mark). A sidecar
/// runs it for its own node when it reconciles.
pub fn retire_outranked(node_id: String) -> ExternResult<u32> {
    let custodian = crate::directory::acting_as()?
        .filter(|me| me.node_id() == node_id)
        .map(|me| me.delegation);
    let Some(index) = custody_indexes(std::slice::from_ref(&node_id))?.pop() else {
        return Ok(0);
    };
    let marked: BTreeSet<&EntryHash> = index.marks.iter().map(|m| &m.key).collect();
    let unmarked: Vec<&AssignmentLink> = index
        .held
        .iter()
        .filter(|a| !marked.contains(&a.entry_hash))
        .collect();
    let contents: Vec<String> = unmarked
        .iter()
        .map(|a| a.summary.content_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let content_links = content_indexes(&contents)?;
    let mut live: BTreeMap<(String, u32), EntryHash> = BTreeMap::new();
    for links in content_links {
        for l in live_among(decode(links)) {
            live.insert(
                (l.summary.content_id.clone(), l.summary.shard_index),
                l.entry_hash,
            );
        }
    }
    let mut marked = 0;
    for a in unmarked {
        let key = (a.summary.content_id.clone(), a.summary.shard_index);
        match live.get(&key) {
            Some(winner) if *winner != a.entry_hash => {
                let who = match &custodian {
                    Some(delegation) => RetiredBy::Custodian(delegation.clone()),
                    None => match my_creation_of(winner)? {
                        Some(action) => RetiredBy::Decider(action),
                        None => continue,
                    },
                };
                retire(
                    &node_id,
                    &a.entry_hash,
                    a.summary.shard_size_bytes,
                    winner,
                    who,
                )?;
                marked += 1;
            }
            _ => {}
        }
    }
    Ok(marked)
}

/// The action by which this agent created the entry at `entry`, if it did.
fn my_creation_of(entry: &EntryHash) -> ExternResult<Option<ActionHash>> {
    let mut hashes = std::collections::HashSet::new();
    hashes.insert(entry.clone());
    Ok(query(
        ChainQueryFilter::new()
            .entry_hashes(hashes)
            .action_type(ActionType::Create),
    )?
    .into_iter()
    .next()
    .map(|r| r.action_address().clone()))
}
