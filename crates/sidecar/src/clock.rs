//! This machine's wall clock as Unix time, in the units the sidecar's
//! records use. (Validation never reads a clock; only the sidecar does.)

use holochain_types::prelude::Timestamp;

/// Now, Unix microseconds (Holochain's timestamp unit).
pub fn unix_micros() -> i64 {
    Timestamp::now().as_micros()
}

/// Now, Unix milliseconds (the dashboard's unit).
pub fn unix_ms() -> i64 {
    unix_micros() / 1_000
}

/// Now, Unix seconds.
pub fn unix_secs() -> i64 {
    unix_micros() / 1_000_000
}
