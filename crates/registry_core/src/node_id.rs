//! Node ids bound to the agent key that owns them.
//!
//! A node id is `<label>-<16 hex digits>`, the digits being the first 8 bytes
//! of the owning agent's ed25519 key. Validation can then check ownership
//! from the action's author alone, deterministically and without a lookup,
//! and no other agent can ever claim the id. Restarting a node keeps its key,
//! so it keeps its id.

use crate::RegistryError;

/// Longest label part of a node id.
pub const MAX_LABEL_LEN: usize = 40;
/// Hex digits of the key-derived suffix.
pub const SUFFIX_HEX_LEN: usize = 16;

/// Turns any human text ("Alice's Rack!") into a valid label ("alice-s-rack").
pub fn slugify(text: &str) -> String {
    let mut out = String::new();
    for ch in text.chars().flat_map(|c| c.to_lowercase()) {
        if ch.is_ascii_alphanumeric() {
            out.push(ch);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= MAX_LABEL_LEN {
            break;
        }
    }
    let trimmed = out.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "node".to_string()
    } else {
        trimmed
    }
}

fn key_suffix(agent_key_core: &[u8]) -> String {
    agent_key_core
        .iter()
        .take(SUFFIX_HEX_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The node id for `label` owned by the agent whose 32 core key bytes are
/// given.
pub fn derive_node_id(label: &str, agent_key_core: &[u8]) -> String {
    format!("{}-{}", slugify(label), key_suffix(agent_key_core))
}

/// The part of a node id that names its agent (the 16 hex digits after the
/// last `-`), or the whole id when it has none. One agent may register
/// several node ids (labels are free), so whatever counts distinct
/// reporters, witnesses or voters counts distinct owner tags: one agent is
/// one voice, however many nodes it names.
pub fn owner_tag(node_id: &str) -> &str {
    node_id
        .rsplit_once('-')
        .map_or(node_id, |(_, suffix)| suffix)
}

/// Checks that `node_id` is well formed and belongs to the given agent key.
pub fn check_node_id_owner(node_id: &str, agent_key_core: &[u8]) -> Result<(), RegistryError> {
    let bad = |reason: &str| RegistryError::InvalidNodeId {
        node_id: node_id.to_string(),
        reason: reason.to_string(),
    };
    let (label, suffix) = node_id
        .rsplit_once('-')
        .ok_or_else(|| bad("expected <label>-<16 hex digits>"))?;
    if label.is_empty()
        || label.len() > MAX_LABEL_LEN
        || label.starts_with('-')
        || label.ends_with('-')
        || !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("label must be 1-40 of a-z, 0-9 and inner '-'"));
    }
    if agent_key_core.len() < SUFFIX_HEX_LEN / 2 {
        return Err(bad("agent key too short"));
    }
    if suffix != key_suffix(agent_key_core) {
        return Err(bad(
            "not owned by this agent (suffix must match the agent key)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agents_nodes_share_an_owner_tag() {
        let key = [7u8; 32];
        let (a, b) = (
            derive_node_id("rack-a", &key),
            derive_node_id("rack-b", &key),
        );
        assert_ne!(a, b);
        assert_eq!(owner_tag(&a), owner_tag(&b));
        assert_ne!(
            owner_tag(&a),
            owner_tag(&derive_node_id("rack-a", &[8u8; 32]))
        );
        assert_eq!(owner_tag("plain"), "plain");
    }

    const KEY_A: [u8; 32] = [0xab; 32];
    const KEY_B: [u8; 32] = [0x01; 32];

    #[test]
    fn derived_ids_belong_to_their_key_only() {
        let id = derive_node_id("Alice's Rack", &KEY_A);
        assert_eq!(id, "alice-s-rack-abababababababab");
        assert_eq!(check_node_id_owner(&id, &KEY_A), Ok(()));
        let err = check_node_id_owner(&id, &KEY_B).unwrap_err();
        assert!(err.to_string().contains("not owned by this agent"), "{err}");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for id in [
            "noseparator",
            "-abababababababab",
            "UPPER-abababababababab",
            "a--b--abababababababab",
            "x-abab",
        ] {
            assert!(check_node_id_owner(id, &KEY_A).is_err(), "{id}");
        }
    }

    #[test]
    fn slugify_is_total() {
        assert_eq!(slugify("   "), "node");
        assert_eq!(slugify("Ünïcode Ракета 7"), "n-code-7");
        assert!(slugify(&"x".repeat(200)).len() <= MAX_LABEL_LEN);
    }
}
