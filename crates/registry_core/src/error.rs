//! The one error type of the registry rules.

use thiserror::Error;

/// Why a registry rule refused a value. The message is what a user sees in a
/// rejected commit, so each variant names the offending field and value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RegistryError {
    /// A region outside the 20 known regions.
    #[error("unknown region: {0}")]
    UnknownRegion(String),
    /// A steward tier outside caretaker, guardian, steward, pioneer.
    #[error("unknown steward tier: {0}")]
    UnknownTier(String),
    /// A node status outside online, degraded, maintenance, offline.
    #[error("unknown node status: {0}")]
    UnknownStatus(String),
    /// A custody strategy outside full_replica, erasure_coded, threshold_split.
    #[error("unknown custody strategy: {0}")]
    UnknownStrategy(String),
    /// A numeric field outside its allowed range (also NaN and infinities).
    #[error("{field} out of range: {value} (allowed {allowed})")]
    OutOfRange {
        /// Field name as on the wire.
        field: &'static str,
        /// The offending value, printed.
        value: String,
        /// The allowed range, printed.
        allowed: String,
    },
    /// A node id that is malformed or not derived from the author's key.
    #[error("invalid node id {node_id}: {reason}")]
    InvalidNodeId {
        /// The node id as given.
        node_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A text field that is empty or too long.
    #[error("{field} must be 1 to {max} characters (got {len})")]
    BadLength {
        /// Field name as on the wire.
        field: &'static str,
        /// Maximum length.
        max: usize,
        /// Length given.
        len: usize,
    },
    /// A claimed timestamp too far from the action that carries it.
    #[error(
        "{field} is {skew_secs} s away from its action's timestamp (at most {max_secs} s allowed)"
    )]
    TimestampSkew {
        /// Field name as on the wire.
        field: &'static str,
        /// Distance in whole seconds.
        skew_secs: i64,
        /// Allowed distance in seconds.
        max_secs: i64,
    },
    /// An assignment whose shard layout is inconsistent.
    #[error("invalid assignment: {0}")]
    InvalidAssignment(String),
    /// A working-key delegation that breaks the epoch rules.
    #[error("invalid delegation: {0}")]
    InvalidDelegation(String),
}
