//! Checks the suites share: what a rejection must say, and readings of
//! results (custodian ids in rank order, the budget kind of a chain record)
//! in the terms the assertions use.

use holochain::prelude::*;
use node_registry_integrity::*;

/// Panics unless `result` is an error whose text contains `reason`.
pub fn rejected<T: std::fmt::Debug>(what: &str, result: Result<T, String>, reason: &str) {
    match result {
        Ok(v) => panic!("{what}: expected rejection containing {reason:?}, got Ok({v:?})"),
        Err(e) => assert!(e.contains(reason), "{what}: expected {reason:?} in:\n{e}"),
    }
}

/// The node ids of ranked custodians, in rank order.
pub fn custodian_ids(v: &[RankedCustodian]) -> Vec<String> {
    v.iter().map(|c| c.registration.node_id.clone()).collect()
}

/// The budget kind of one action of a node's chain.
pub fn record_kind(action: &Action) -> registry_core::budget::RecordKind {
    record_kind_of_action(action)
}
