//! Coordinator zome of the node registry DNA: the plan's functions for node
//! lifecycle, heartbeats, health, discovery and custody assignments.
//!
//! Kept thin: policy (liveness, ranking, live-assignment resolution) comes
//! from `registry_core`; entry shapes, index bases and tags from the
//! integrity zome. What is here is reading and writing the DHT.

mod assignments;
mod byzantine;
mod directory;
mod discovery;
mod family;
mod health;
mod recovery;
mod registration;
mod rewards;

pub use assignments::*;
pub use byzantine::*;
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
    get_links(LinkQuery::try_new(base, link_type)?, GetStrategy::Network)
}

/// The id a node run by the calling agent would have for `label`.
#[hdk_extern]
pub fn derive_node_id(label: String) -> ExternResult<String> {
    let me = agent_info()?.agent_initial_pubkey;
    Ok(registry_core::node_id::derive_node_id(
        &label,
        me.get_raw_32(),
    ))
}
