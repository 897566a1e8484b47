//! The typed boundary to the node registry DNA: the conductor (embedded or
//! reached over its websockets), its app connections, and what a failed
//! request means (`FailureKind`), decided once where the error is made.
//! Calls go through the DNA's `ZomeFn` markers
//! (`node_registry_integrity::zome_fns`), so a renamed or retyped zome
//! function fails the build here instead of a test run later.

pub mod conductor;
pub mod retry;
