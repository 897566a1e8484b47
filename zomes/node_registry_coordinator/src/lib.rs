//! Coordinator zome of the node registry DNA: the plan's functions for node
//! lifecycle, heartbeats, health, discovery and custody assignments.
//!
//! Kept thin: policy (liveness, ranking, live-assignment resolution) comes
//! from `registry_core`; entry shapes, index bases and tags from the
//! integrity zome. What is here is reading and writing the DHT.

mod assignments;
mod byzantine;
mod delegation;
mod directory;
mod discovery;
mod externs;
mod family;
mod health;
mod input;
mod recovery;
mod registration;
mod rewards;

pub use assignments::*;
pub use byzantine::*;
pub use delegation::*;
pub use discovery::*;
pub use family::*;
pub use health::*;
pub use recovery::*;
pub use registration::*;
pub use rewards::*;

use hdk::prelude::*;

/// A guest error with a message for the caller.
pub(crate) fn guest(msg: impl Into<String>) -> WasmError {
    wasm_error!(WasmErrorInner::Guest(msg.into()))
}

/// All links of one type on a base.
pub(crate) fn links_on(
    base: impl Into<AnyLinkableHash>,
    link_type: node_registry_integrity::LinkTypes,
) -> ExternResult<Vec<Link>> {
    get_links(
        LinkQuery::new(base, of_types([link_type])?),
        GetStrategy::Network,
    )
}

/// `create_link` with the link type numbered by `scoped`: the hdk's own
/// numbering asks the host for the whole `zome_info` on every link written.
pub(crate) fn write_link(
    base: impl Into<AnyLinkableHash>,
    target: impl Into<AnyLinkableHash>,
    link_type: node_registry_integrity::LinkTypes,
    tag: impl Into<LinkTag>,
) -> ExternResult<ActionHash> {
    create_link(base, target, scoped(link_type)?, tag)
}

/// The links of several (base, types) queries in one host call, which the
/// conductor answers concurrently, so a selection reads its candidates in
/// batches, not one by one.
pub(crate) fn links_on_many(
    queries: Vec<(AnyLinkableHash, LinkTypeFilter)>,
) -> ExternResult<Vec<Vec<Link>>> {
    if queries.is_empty() {
        return Ok(Vec::new());
    }
    let inputs = queries
        .into_iter()
        .map(|(base, link_type)| {
            GetLinksInput::from_query(LinkQuery::new(base, link_type), GetStrategy::Network)
        })
        .collect();
    HDK.with(|h| h.borrow().get_links(inputs))
}

thread_local! {
    /// The DNA's numbering of link types, read once per wasm instance (an
    /// instance serves one DNA). Turning a `LinkTypes` into a filter or a
    /// scoped type the usual way asks the host for the whole `zome_info`
    /// each time, which cost about as much as the link query itself
    /// (~1.5 ms here) and made up most of a selection's time.
    static LINK_TYPES: std::cell::OnceCell<ScopedZomeTypes<LinkType>> =
        const { std::cell::OnceCell::new() };
}

/// A link type as the DNA numbers it, without a `zome_info` call after the
/// first.
pub(crate) fn scoped(t: node_registry_integrity::LinkTypes) -> ExternResult<ScopedLinkType> {
    let known = LINK_TYPES.with(|cell| cell.get().and_then(|links| links.get(t)));
    if let Some(scoped) = known {
        return Ok(scoped);
    }
    let links = zome_info()?.zome_types.links;
    let scoped = links
        .get(t)
        .ok_or_else(|| guest(format!("link type {t:?} is not in this DNA")))?;
    LINK_TYPES.with(|cell| {
        let _ = cell.set(links);
    });
    Ok(scoped)
}

/// The filter of a link query for one or more link types.
pub(crate) fn of_types(
    types: impl IntoIterator<Item = node_registry_integrity::LinkTypes>,
) -> ExternResult<LinkTypeFilter> {
    let mut by_zome: Vec<(ZomeIndex, Vec<LinkType>)> = Vec::new();
    for t in types {
        let s = scoped(t)?;
        match by_zome.iter_mut().find(|(z, _)| *z == s.zome_index) {
            Some((_, types)) => types.push(s.zome_type),
            None => by_zome.push((s.zome_index, vec![s.zome_type])),
        }
    }
    Ok(LinkTypeFilter::Types(by_zome))
}

/// The records at several action hashes (`None` where a record cannot be
/// found): one host call for the local store, one more over the network for
/// what it lacks. A record at an action hash never changes, so a local copy
/// is as good as the network's, and much cheaper to read.
pub(crate) fn get_many(hashes: &[ActionHash]) -> ExternResult<Vec<Option<Record>>> {
    let get = |hashes: &[&ActionHash], options: GetOptions| -> ExternResult<Vec<Option<Record>>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let inputs = hashes
            .iter()
            .map(|h| GetInput::new((*h).clone().into(), options.clone()))
            .collect();
        HDK.with(|h| h.borrow().get(inputs))
    };
    let all: Vec<&ActionHash> = hashes.iter().collect();
    let mut found = get(&all, GetOptions::local())?;
    let missing: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_none()).collect();
    let again: Vec<&ActionHash> = missing.iter().map(|&i| &hashes[i]).collect();
    for (i, record) in missing.into_iter().zip(get(&again, GetOptions::network())?) {
        found[i] = record;
    }
    Ok(found)
}

/// The id a node run by the calling agent would have for `label`.
pub fn derive_node_id(label: String) -> ExternResult<String> {
    let me = agent_info()?.agent_initial_pubkey;
    Ok(registry_core::node_id::derive_node_id(
        &label,
        me.get_raw_32(),
    ))
}

/// The id of a content: what an owner's assignments must carry as
/// `content_id` (`blake3(owner key || content hash)`), for clients with no
/// blake3 of their own (a Doorway in JavaScript).
pub fn derive_content_id(input: node_registry_integrity::ContentIdInput) -> ExternResult<String> {
    if input.content_hash.len() != 64 || !input.content_hash.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(guest("content_hash must be 64 hex digits (blake3)"));
    }
    Ok(registry_core::assignment::content_id(
        input.owner.get_raw_32(),
        &input.content_hash,
    ))
}
