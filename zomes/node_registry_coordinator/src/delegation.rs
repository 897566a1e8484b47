//! Working keys (see `registry_core::delegation`): a node's identity
//! delegates its routine writes to a working agent for an epoch, and a
//! working agent learns whom it writes for.

use crate::directory::{acting_as, my_registration};
use crate::{guest, write_link};
use hdk::prelude::*;
use node_registry_integrity::*;

/// Delegates the caller's node's routine writes to `input.delegate` for
/// the window given (validation caps its length and refuses a third key
/// valid at once). Only the node's identity agent may call it.
pub fn delegate_working_key(input: DelegateInput) -> ExternResult<ActionHash> {
    let me = my_registration()?
        .ok_or_else(|| guest("only a registered node's identity agent can delegate"))?;
    let d = WorkingKeyDelegation {
        node_id: me.registration.node_id,
        delegate: input.delegate,
        valid_from: input.valid_from,
        valid_until: input.valid_until,
    };
    let hash = create_entry(EntryTypes::WorkingKeyDelegation(d.clone()))?;
    write_link(
        d.delegate.clone(),
        hash.clone(),
        LinkTypes::AgentToDelegation,
        DelegationSummary::of(&d).to_tag()?,
    )?;
    Ok(hash)
}

/// Which node the calling agent writes for now, and under which
/// delegation (none when it is the node's identity); `None` if it writes
/// for no node.
pub fn whoami(_: ()) -> ExternResult<Option<ActingAs>> {
    let chain_len = agent_info()?.chain_head.1 + 1;
    Ok(acting_as()?.map(|a| ActingAs {
        node_id: a.node.registration.node_id.clone(),
        identity: a.node.registration.agent_pub_key.clone(),
        registration: a.node.action_hash.clone(),
        delegation: a.delegation,
        valid_until: a.valid_until,
        chain_len,
    }))
}

/// The network's parameters (the DNA's properties), for clients that time
/// their writes by them (lease and verdict periods).
pub fn get_registry_properties(_: ()) -> ExternResult<RegistryProperties> {
    registry_properties()
}
