//! Reading and maintaining the directory links that point at a node's
//! latest registration.

use crate::{guest, links_on, write_link};
use hdk::prelude::*;
use node_registry_integrity::*;

/// A directory link with its decoded summary.
pub(crate) struct DirectoryEntry {
    pub summary: NodeSummary,
    pub target: ActionHash,
}

/// Decodes directory links, keeping one per node: the newest version.
pub(crate) fn newest_per_node(links: Vec<Link>) -> Vec<DirectoryEntry> {
    let mut best: std::collections::BTreeMap<String, DirectoryEntry> = Default::default();
    for link in links {
        let (Ok(summary), Some(target)) = (
            NodeSummary::from_tag(&link.tag),
            link.target.into_action_hash(),
        ) else {
            continue;
        };
        let newer = best
            .get(&summary.node_id)
            .is_none_or(|b| summary.updated_at > b.summary.updated_at);
        if newer {
            best.insert(summary.node_id.clone(), DirectoryEntry { summary, target });
        }
    }
    best.into_values().collect()
}

/// Fetches a registration version.
pub(crate) fn fetch_registration(hash: &ActionHash) -> ExternResult<Option<RegisteredNode>> {
    let Some(record) = get(hash.clone(), GetOptions::default())? else {
        return Ok(None);
    };
    let registration: Option<NodeRegistration> =
        record.entry().to_app_option().map_err(|e| wasm_error!(e))?;
    Ok(registration.map(|registration| RegisteredNode {
        registration,
        action_hash: hash.clone(),
    }))
}

/// The latest registration of a node, if it is registered.
pub(crate) fn registration_of_node(node_id: &str) -> ExternResult<Option<RegisteredNode>> {
    let links = links_on(node_base(node_id)?, LinkTypes::NodeIdIndex)?;
    match newest_per_node(links).into_iter().next() {
        Some(e) => fetch_registration(&e.target),
        None => Ok(None),
    }
}

/// The node id an agent runs, if registered.
pub(crate) fn node_of_agent(agent: &AgentPubKey) -> ExternResult<Option<String>> {
    let links = links_on(agent.clone(), LinkTypes::AgentToNode)?;
    Ok(newest_per_node(links)
        .into_iter()
        .next()
        .map(|e| e.summary.node_id))
}

/// The calling agent's own latest registration.
pub(crate) fn my_registration() -> ExternResult<Option<RegisteredNode>> {
    let me = agent_info()?.agent_initial_pubkey;
    let links = links_on(me, LinkTypes::AgentToNode)?;
    match newest_per_node(links).into_iter().next() {
        Some(e) => fetch_registration(&e.target),
        None => Ok(None),
    }
}

/// The calling agent's registration, which must be for `node_id`.
pub(crate) fn my_registration_for(node_id: &str) -> ExternResult<RegisteredNode> {
    match my_registration()? {
        Some(r) if r.registration.node_id == node_id => Ok(r),
        Some(r) => Err(guest(format!(
            "node {node_id} is not run by this agent (this agent runs {})",
            r.registration.node_id
        ))),
        None => Err(guest(format!(
            "node {node_id} is not registered by this agent"
        ))),
    }
}

/// The bases a registration's directory links live on (status aside).
fn directory_bases(r: &NodeRegistration) -> ExternResult<Vec<(AnyLinkableHash, LinkTypes)>> {
    Ok(vec![
        (region_base(&r.region)?.into(), LinkTypes::RegionIndex),
        (tier_base(&r.steward_tier)?.into(), LinkTypes::TierIndex),
        (node_base(&r.node_id)?.into(), LinkTypes::NodeIdIndex),
        (r.agent_pub_key.clone().into(), LinkTypes::AgentToNode),
    ])
}

/// Deletes the caller's links of `link_type` on `base` (all, or only those
/// pointing at `target`), returning the delete actions.
pub(crate) fn delete_my_links(
    base: AnyLinkableHash,
    link_type: LinkTypes,
    target: Option<&ActionHash>,
) -> ExternResult<Vec<ActionHash>> {
    let mut deleted = Vec::new();
    let me = agent_info()?.agent_initial_pubkey;
    let query = LinkQuery::try_new(base, link_type)?.author(me);
    for link in get_links(query, GetStrategy::Network)? {
        let matches = match target {
            Some(t) => link.target.clone().into_action_hash().as_ref() == Some(t),
            None => true,
        };
        if matches {
            deleted.push(delete_link(link.create_link_hash, GetOptions::default())?);
        }
    }
    Ok(deleted)
}

/// Points every directory link at a new registration version, removing the
/// links of the previous one.
pub(crate) fn reindex(
    previous: Option<&RegisteredNode>,
    registration: &NodeRegistration,
    hash: &ActionHash,
) -> ExternResult<()> {
    if let Some(prev) = previous {
        for (base, lt) in directory_bases(&prev.registration)? {
            delete_my_links(base, lt, Some(&prev.action_hash))?;
        }
    }
    let tag = NodeSummary::of(registration).to_tag()?;
    for (base, lt) in directory_bases(registration)? {
        write_link(base, hash.clone(), lt, tag.clone())?;
    }
    Ok(())
}

/// Whom the calling agent writes for: its own node (it is the node's
/// identity), or the node whose identity delegated to it for now.
pub(crate) struct Acting {
    /// The node's latest registration.
    pub node: RegisteredNode,
    /// The delegation the caller writes under, if it is a working key.
    pub delegation: Option<ActionHash>,
    /// Until when that delegation lets it write.
    pub valid_until: Option<Timestamp>,
}

impl Acting {
    /// The node's id.
    pub fn node_id(&self) -> &str {
        &self.node.registration.node_id
    }
}

/// The node the calling agent writes for now, if any (see [`Acting`]). A
/// working key's delegations are linked from its key; the newest one that
/// covers now counts.
pub(crate) fn acting_as() -> ExternResult<Option<Acting>> {
    if let Some(node) = my_registration()? {
        return Ok(Some(Acting {
            node,
            delegation: None,
            valid_until: None,
        }));
    }
    let me = agent_info()?.agent_initial_pubkey;
    let now = sys_time()?;
    let mut best: Option<(DelegationSummary, ActionHash)> = None;
    for link in links_on(me, LinkTypes::AgentToDelegation)? {
        let (Ok(s), Some(hash)) = (
            DelegationSummary::from_tag(&link.tag),
            link.target.into_action_hash(),
        ) else {
            continue;
        };
        if !(s.valid_from <= now && now <= s.valid_until) {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(b, _)| s.valid_from > b.valid_from)
        {
            best = Some((s, hash));
        }
    }
    let Some((s, hash)) = best else {
        return Ok(None);
    };
    Ok(registration_of_node(&s.node_id)?.map(|node| Acting {
        node,
        delegation: Some(hash),
        valid_until: Some(s.valid_until),
    }))
}

/// [`acting_as`], or an error saying this agent writes for no node.
pub(crate) fn acting() -> ExternResult<Acting> {
    acting_as()?.ok_or_else(|| {
        guest("this agent runs no registered node (and holds no delegation from one)")
    })
}
