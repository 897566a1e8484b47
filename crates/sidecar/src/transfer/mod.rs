//! Signed shard transfers between sidecars over HTTP.
//!
//! Every request names the assignment it serves and the node it is meant
//! for, carries a fresh random nonce and its time, and is signed with the
//! sending node's agent key (through the zome's `sign_transfer`, so the key
//! never leaves the keystore). The receiver checks that the request is
//! addressed to it, fresh (at most [`MAX_REQUEST_AGE_SECS`] old and
//! [`MAX_REQUEST_FUTURE_SECS`] ahead of its clock), signed by the key the
//! node id is bound to and never seen before (see `replay.rs`), then the
//! assignment on the DHT, then the bytes' hash before it keeps anything. A
//! captured request is good for nothing: not at another node, not twice,
//! not a minute later.

pub mod bandwidth;
pub mod replay;

use base64::Engine;
use holochain_types::prelude::AgentPubKey;
use node_registry_integrity::TRANSFER_SIGNATURE_DOMAIN;
use thiserror::Error;

/// Header: the assignment (entry hash) the request serves.
pub const H_ASSIGNMENT: &str = "x-elohim-assignment";
/// Header: the requesting node's id.
pub const H_NODE: &str = "x-elohim-node";
/// Header: the requesting node's agent key.
pub const H_AGENT: &str = "x-elohim-agent";
/// Header: request time, microseconds since the Unix epoch.
pub const H_TIME: &str = "x-elohim-time";
/// Header: a random value, fresh for every request (hex).
pub const H_NONCE: &str = "x-elohim-nonce";
/// Header: the node the request is addressed to.
pub const H_TARGET: &str = "x-elohim-target";
/// Header: base64 ed25519 signature of the canonical request.
pub const H_SIGNATURE: &str = "x-elohim-signature";
/// Header: a verified recovery request that lets a person's new node fetch
/// the lost node's shards.
pub const H_RECOVERY: &str = "x-elohim-recovery";
/// Header: how many bytes of the shard the sender of an upload skips,
/// because the receiver already has them (see [`H_HAVE_BLAKE3`]).
pub const H_OFFSET: &str = "x-elohim-offset";
/// Header: how many bytes of a shard a node already has (answered by
/// `GET /shards/{hash}/ready`, the shard's size when it is held whole).
pub const H_HAVE: &str = "x-elohim-have";
/// Header: the blake3 (hex) of the bytes a resumed transfer skips. A
/// receiver tells it with [`H_HAVE`]; an upload resumed at [`H_OFFSET`] and
/// a download asked with a `Range` carry it back, and the other end goes on
/// only if its own first bytes hash the same.
pub const H_HAVE_BLAKE3: &str = "x-elohim-have-blake3";
/// Header: the assignment itself (base64 of its JSON), sent with an upload
/// by a publisher that does not wait for the custodian to see it on the
/// DHT. It must hash to the assignment the request names; the custodian
/// then holds the shard only for now (see `custody::provisional`).
pub const H_ASSIGNMENT_ENTRY: &str = "x-elohim-assignment-entry";
/// Longest [`H_ASSIGNMENT_ENTRY`] accepted, in bytes.
pub const MAX_ASSIGNMENT_ENTRY_BYTES: usize = 16 * 1024;

/// [`H_ASSIGNMENT_ENTRY`]'s value for an assignment.
pub fn encode_assignment_entry(
    a: &node_registry_integrity::CustodianAssignment,
) -> Result<String, TransferError> {
    let json = serde_json::to_vec(a).map_err(|e| TransferError::BadRequest(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(json))
}

/// Reads [`H_ASSIGNMENT_ENTRY`] back; the error names the header.
pub fn decode_assignment_entry(
    value: &str,
) -> Result<node_registry_integrity::CustodianAssignment, TransferError> {
    if value.len() > MAX_ASSIGNMENT_ENTRY_BYTES {
        return Err(TransferError::BadRequest(format!(
            "{H_ASSIGNMENT_ENTRY} is longer than {MAX_ASSIGNMENT_ENTRY_BYTES} bytes"
        )));
    }
    let json = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| TransferError::BadRequest(format!("{H_ASSIGNMENT_ENTRY} is not base64")))?;
    serde_json::from_slice(&json).map_err(|e| {
        TransferError::BadRequest(format!("{H_ASSIGNMENT_ENTRY} is not an assignment: {e}"))
    })
}

/// Oldest a request may be, by the receiver's clock.
pub const MAX_REQUEST_AGE_SECS: i64 = 60;
/// Furthest ahead of the receiver's clock a request's time may be (clock
/// drift between nodes).
pub const MAX_REQUEST_FUTURE_SECS: i64 = 30;
/// Longest a nonce may be.
const MAX_NONCE_LEN: usize = 64;

/// Why a transfer request was refused.
#[derive(Debug, Error, PartialEq)]
pub enum TransferError {
    /// A header is missing or malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The signature does not verify, or the request is stale.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The bytes do not hash to the shard's name.
    #[error("hash mismatch: {0}")]
    HashMismatch(String),
    /// The request's preconditions do not hold now (e.g. a recovery while
    /// the lost node is alive).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The same signed request was presented before.
    #[error("replayed: {0}")]
    Replayed(String),
    /// Too many requests to remember; the sender should try again shortly.
    #[error("busy: {0}")]
    Busy(String),
    /// The body is larger than the assignment's shard.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The shard would exceed this node's custody cap or its free disk.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// This node cannot judge the request yet (the assignment it names has
    /// not reached its view of the DHT); the sender should try again.
    #[error("not yet: {0}")]
    NotYet(String),
    /// A resumed upload's offset or prefix is not what this node has (it
    /// changed since the sender asked); the sender should ask again.
    #[error("resume mismatch: {0}")]
    ResumeMismatch(String),
    /// The shard is not held here.
    #[error("not found: {0}")]
    NotFound(String),
    /// The peer or the conductor failed.
    #[error("upstream: {0}")]
    Upstream(String),
}

/// The authentication part of a transfer request.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferAuth {
    /// The assignment served (entry hash, base64).
    pub assignment: String,
    /// The requesting node.
    pub node_id: String,
    /// Its agent key (base64).
    pub agent: String,
    /// Request time, microseconds.
    pub time_micros: i64,
    /// A random value, fresh for every request.
    pub nonce: String,
    /// The node the request is addressed to.
    pub target: String,
    /// Signature of [`canonical_request`].
    pub signature: Vec<u8>,
}

/// The text a request's signature covers (after the domain prefix).
pub fn canonical_request(method: &str, shard_hash: &str, auth: &TransferAuth) -> String {
    format!(
        "{method}\n{shard_hash}\n{}\n{}\n{}\n{}\n{}\n{}",
        auth.assignment, auth.node_id, auth.agent, auth.time_micros, auth.nonce, auth.target
    )
}

impl TransferAuth {
    /// The request headers.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (H_ASSIGNMENT, self.assignment.clone()),
            (H_NODE, self.node_id.clone()),
            (H_AGENT, self.agent.clone()),
            (H_TIME, self.time_micros.to_string()),
            (H_NONCE, self.nonce.clone()),
            (H_TARGET, self.target.clone()),
            (
                H_SIGNATURE,
                base64::engine::general_purpose::STANDARD.encode(&self.signature),
            ),
        ]
    }

    /// Reads the headers of a request.
    pub fn from_headers(h: &axum::http::HeaderMap) -> Result<TransferAuth, TransferError> {
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| TransferError::BadRequest(format!("missing header {name}")))
        };
        let time_micros = get(H_TIME)?
            .parse()
            .map_err(|_| TransferError::BadRequest(format!("{H_TIME} is not an integer")))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(get(H_SIGNATURE)?)
            .map_err(|_| TransferError::BadRequest(format!("{H_SIGNATURE} is not base64")))?;
        Ok(TransferAuth {
            assignment: get(H_ASSIGNMENT)?,
            node_id: get(H_NODE)?,
            agent: get(H_AGENT)?,
            time_micros,
            nonce: get(H_NONCE)?,
            target: get(H_TARGET)?,
            signature,
        })
    }

    /// A fresh nonce for a new request.
    pub fn new_nonce() -> String {
        let mut bytes = [0u8; 16];
        // A failed draw leaves zeros, which the receiver then refuses as a
        // replay after their first use: never silently accepted twice.
        let _ = getrandom::fill(&mut bytes);
        crate::encoding::hex(&bytes)
    }

    /// Verifies the request: addressed to `me`, fresh, signed by `agent`,
    /// and `node_id` owned by `agent`. Returns the authenticated agent key.
    /// Whether the request was seen before is the receiver's
    /// [`crate::transfer::replay::SeenNonces`] to say, after this.
    pub fn verify(
        &self,
        method: &str,
        shard_hash: &str,
        me: &str,
        now_micros: i64,
    ) -> Result<AgentPubKey, TransferError> {
        if self.target != me {
            return Err(TransferError::Unauthenticated(format!(
                "the request is addressed to {}, not to this node",
                self.target
            )));
        }
        let age = now_micros.saturating_sub(self.time_micros);
        if age > MAX_REQUEST_AGE_SECS * 1_000_000 {
            return Err(TransferError::Unauthenticated(format!(
                "the request is {} s old (at most {MAX_REQUEST_AGE_SECS} s)",
                age / 1_000_000
            )));
        }
        if -age > MAX_REQUEST_FUTURE_SECS * 1_000_000 {
            return Err(TransferError::Unauthenticated(format!(
                "the request time is {} s ahead of this node's clock (at most {MAX_REQUEST_FUTURE_SECS} s)",
                -age / 1_000_000
            )));
        }
        if self.nonce.is_empty()
            || self.nonce.len() > MAX_NONCE_LEN
            || !self.nonce.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(TransferError::BadRequest(format!(
                "{H_NONCE} must be 1 to {MAX_NONCE_LEN} hex digits"
            )));
        }
        let agent = AgentPubKey::try_from(self.agent.as_str())
            .map_err(|_| TransferError::BadRequest(format!("{H_AGENT} is not an agent key")))?;
        registry_core::node_id::check_node_id_owner(&self.node_id, agent.get_raw_32())
            .map_err(|e| TransferError::Unauthenticated(e.to_string()))?;
        let key_bytes: [u8; 32] = agent
            .get_raw_32()
            .try_into()
            .map_err(|_| TransferError::BadRequest("agent key is not 32 bytes".into()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).map_err(|_| {
            TransferError::Unauthenticated("agent key is not an ed25519 point".into())
        })?;
        let sig_bytes: [u8; 64] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| TransferError::Unauthenticated("signature is not 64 bytes".into()))?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig_bytes);
        let mut msg = TRANSFER_SIGNATURE_DOMAIN.as_bytes().to_vec();
        msg.extend_from_slice(canonical_request(method, shard_hash, self).as_bytes());
        key.verify_strict(&msg, &sig)
            .map_err(|_| TransferError::Unauthenticated("bad signature".into()))?;
        Ok(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const TARGET: &str = "custodian-0101010101010101";

    fn signed(key: &SigningKey, method: &str, shard: &str, time: i64) -> TransferAuth {
        let agent = AgentPubKey::from_raw_32(key.verifying_key().to_bytes().to_vec());
        let mut auth = TransferAuth {
            assignment: "uhCEkAssignment".into(),
            node_id: registry_core::node_id::derive_node_id("rack", agent.get_raw_32()),
            agent: agent.to_string(),
            time_micros: time,
            nonce: TransferAuth::new_nonce(),
            target: TARGET.into(),
            signature: vec![],
        };
        let mut msg = TRANSFER_SIGNATURE_DOMAIN.as_bytes().to_vec();
        msg.extend_from_slice(canonical_request(method, shard, &auth).as_bytes());
        auth.signature = key.sign(&msg).to_bytes().to_vec();
        auth
    }

    const NOW: i64 = 1_800_000_000_000_000;

    #[test]
    fn a_signed_request_verifies() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let auth = signed(&key, "PUT", "ab", NOW);
        let agent = auth.verify("PUT", "ab", TARGET, NOW + 1_000_000).unwrap();
        assert_eq!(agent.get_raw_32(), key.verifying_key().as_bytes());
    }

    #[test]
    fn tampering_is_refused() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let auth = signed(&key, "PUT", "ab", NOW);
        assert!(
            matches!(
                auth.verify("GET", "ab", TARGET, NOW),
                Err(TransferError::Unauthenticated(_))
            ),
            "other method"
        );
        assert!(
            matches!(
                auth.verify("PUT", "cd", TARGET, NOW),
                Err(TransferError::Unauthenticated(_))
            ),
            "other shard"
        );
        let mut other = auth.clone();
        other.assignment = "uhCEkOther".into();
        assert!(matches!(
            other.verify("PUT", "ab", TARGET, NOW),
            Err(TransferError::Unauthenticated(_))
        ));
        let mut flipped = auth.clone();
        flipped.signature[0] ^= 1;
        assert!(matches!(
            flipped.verify("PUT", "ab", TARGET, NOW),
            Err(TransferError::Unauthenticated(_))
        ));
        let mut other_nonce = auth.clone();
        other_nonce.nonce = TransferAuth::new_nonce();
        assert!(matches!(
            other_nonce.verify("PUT", "ab", TARGET, NOW),
            Err(TransferError::Unauthenticated(_))
        ));
    }

    #[test]
    fn a_request_is_good_only_at_its_target_and_only_while_fresh() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let auth = signed(&key, "GET", "ab", NOW);
        assert!(matches!(
            auth.verify("GET", "ab", "elsewhere-0202020202020202", NOW),
            Err(TransferError::Unauthenticated(m)) if m.contains("addressed to")
        ));
        let s = 1_000_000;
        assert!(auth
            .verify("GET", "ab", TARGET, NOW + MAX_REQUEST_AGE_SECS * s)
            .is_ok());
        assert!(matches!(
            auth.verify("GET", "ab", TARGET, NOW + (MAX_REQUEST_AGE_SECS + 1) * s),
            Err(TransferError::Unauthenticated(m)) if m.contains("old")
        ));
        assert!(auth
            .verify("GET", "ab", TARGET, NOW - MAX_REQUEST_FUTURE_SECS * s)
            .is_ok());
        assert!(matches!(
            auth.verify("GET", "ab", TARGET, NOW - (MAX_REQUEST_FUTURE_SECS + 1) * s),
            Err(TransferError::Unauthenticated(m)) if m.contains("ahead")
        ));
        let mut no_nonce = auth.clone();
        no_nonce.nonce = String::new();
        assert!(matches!(
            no_nonce.verify("GET", "ab", TARGET, NOW),
            Err(TransferError::BadRequest(_))
        ));
    }

    #[test]
    fn a_key_cannot_speak_for_another_node() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let other = SigningKey::from_bytes(&[3u8; 32]);
        let mut auth = signed(&key, "PUT", "ab", NOW);
        let other_agent = AgentPubKey::from_raw_32(other.verifying_key().to_bytes().to_vec());
        auth.node_id = registry_core::node_id::derive_node_id("rack", other_agent.get_raw_32());
        assert!(
            matches!(auth.verify("PUT", "ab", TARGET, NOW), Err(TransferError::Unauthenticated(m)) if m.contains("not owned"))
        );
    }

    #[test]
    fn headers_round_trip() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let auth = signed(&key, "GET", "ab", NOW);
        let mut map = axum::http::HeaderMap::new();
        for (k, v) in auth.headers() {
            map.insert(k, v.parse().unwrap());
        }
        assert_eq!(TransferAuth::from_headers(&map).unwrap(), auth);
        map.remove(H_SIGNATURE);
        assert!(matches!(
            TransferAuth::from_headers(&map),
            Err(TransferError::BadRequest(_))
        ));
    }
}
