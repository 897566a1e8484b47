//! One retry policy for calls to the conductor. Two layers, each for one
//! kind of failure (`FailureKind`, decided once where the error is made):
//!
//! - a call that lost a commit race to another call of the same agent
//!   (`HeadMoved`) wrote nothing and is run again at once, a few times, by
//!   the call itself (`NodeAgent::call_via`, [`HEAD_MOVED_RETRIES`],
//!   [`head_moved_delay`]);
//! - a write that fails for a passing reason (a dependency not arrived, a
//!   timeout, a lost connection, or races beyond those retries) is run
//!   again with [`retry_delay`] for up to a budget by [`retry_transient`]
//!   (`NodeAgent::retrying`), while a refusal (`Final`) is returned at once;
//! - loops that run for the node's life (heartbeats) back off with
//!   [`backoff`].

use super::conductor::ConductorError;
use std::time::{Duration, Instant};

/// Delay before retry number `attempt` (0-based): 1 s doubling up to `max`.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    doubling(Duration::from_secs(1), attempt, max)
}

/// `first` doubled `attempt` times, at most `max`.
fn doubling(first: Duration, attempt: u32, max: Duration) -> Duration {
    first.saturating_mul(2u32.saturating_pow(attempt)).min(max)
}

/// Delay before re-running a call that lost a commit race for the
/// `attempt`-th time (1-based): 40 ms doubling.
pub(crate) fn head_moved_delay(attempt: u32) -> Duration {
    doubling(Duration::from_millis(20), attempt, Duration::from_secs(1))
}

/// How often a call that lost a commit race to another call of the same
/// agent is run again.
pub(crate) const HEAD_MOVED_RETRIES: u32 = 5;

/// Runs `call` again, after [`head_moved_delay`], each time it lost a
/// commit race to another call of the same agent (the conductor rolled it
/// back whole, so nothing of it was written), up to
/// [`HEAD_MOVED_RETRIES`] times; any other outcome is returned.
pub(crate) async fn retry_head_moved<T, F, Fut>(mut call: F) -> Result<T, ConductorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConductorError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.is_head_moved() && attempt < HEAD_MOVED_RETRIES => {
                attempt += 1;
                tokio::time::sleep(head_moved_delay(attempt)).await;
            }
            out => return out,
        }
    }
}

/// How long [`crate::node::agent::NodeAgent::retrying`] keeps trying a write that fails for a
/// passing reason; long enough for a record written on another node to
/// reach this one through a loaded DHT.
pub const TRANSIENT_RETRY_FOR: Duration = Duration::from_secs(60);

/// Delay before the retry after failure number `attempt` (0-based) of a
/// write: 250 ms doubling up to 4 s, so a race is re-run at once and a
/// missing dependency is polled without hammering the conductor.
pub fn retry_delay(attempt: u32) -> Duration {
    doubling(Duration::from_millis(250), attempt, Duration::from_secs(4))
}

/// Runs `write` until it succeeds, fails with an error that is not
/// [transient](ConductorError::is_transient), or has kept failing for
/// `budget`; the last error is returned.
pub async fn retry_transient<T, F, Fut>(budget: Duration, mut write: F) -> Result<T, ConductorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConductorError>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        match write().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && started.elapsed() < budget => {
                let wait = retry_delay(attempt);
                if attempt == 0 {
                    tracing::debug!("write failed ({e}); trying again in {wait:?}");
                } else {
                    tracing::info!("write failed again ({e}); trying again in {wait:?}");
                }
                attempt += 1;
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::conductor::FailureKind;
    use holochain_client::ConductorApiError;
    use holochain_conductor_api::ExternalApiWireError;

    /// A zome call's failure as holochain_client hands it over: the
    /// conductor's message inside the wire error's variant.
    fn zome_error(message: &str) -> ConductorError {
        ConductorError::zome_call(
            "assign_custodian",
            &ConductorApiError::ExternalApiWireError(ExternalApiWireError::InternalError(
                message.into(),
            )),
        )
    }

    #[test]
    fn only_a_lost_commit_race_is_retried() {
        assert!(zome_error(
            "Source chain error: Attempted to commit a bundle to the source chain, \
             but the source chain head has moved since the bundle began."
        )
        .is_head_moved());
        assert!(!zome_error("Validation failed while committing: rate limit").is_head_moved());
    }

    #[test]
    fn failures_are_classified_by_the_clients_variant() {
        let lost = ConductorError::zome_call(
            "heartbeat",
            &ConductorApiError::IoError(std::io::Error::other("broken pipe")),
        );
        assert_eq!(lost.kind(), FailureKind::ConnectionLost);
        assert!(lost.is_connection_lost() && lost.is_transient());
        // A refused signature is final, whatever its text says.
        let refused = ConductorError::zome_call(
            "heartbeat",
            &ConductorApiError::ExternalApiWireError(ExternalApiWireError::ZomeCallUnauthorized(
                "may be retried".into(),
            )),
        );
        assert_eq!(refused.kind(), FailureKind::Final);
        assert_eq!(zome_error(DEP_MISSING).kind(), FailureKind::NotYet);
        assert!(!ConductorError::api("app info", "no provisioned cell").is_transient());
    }

    const DEP_MISSING: &str = "Source chain error: \
        The commit could not be completed but may be retried: DepMissingFromDht([])";

    #[tokio::test]
    async fn a_missing_dependency_is_waited_for() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let out = retry_transient(Duration::from_secs(30), || async {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 | 1 => Err(zome_error(DEP_MISSING)),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(out.unwrap(), 2, "succeeds on the third try");
    }

    #[tokio::test]
    async fn a_refusal_is_not_repeated() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let out: Result<(), _> = retry_transient(Duration::from_secs(30), || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(zome_error("Validation failed while committing: rate limit"))
        })
        .await;
        assert!(out.unwrap_err().to_string().contains("rate limit"));
        assert_eq!(calls.into_inner(), 1);
    }

    #[tokio::test]
    async fn a_dependency_that_never_arrives_gives_up_after_the_budget() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let started = Instant::now();
        let out: Result<(), _> = retry_transient(Duration::from_millis(600), || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(zome_error(DEP_MISSING))
        })
        .await;
        assert!(out.unwrap_err().to_string().contains("DepMissingFromDht"));
        // 250 ms, then 500 ms: the budget is spent after the third try
        // (the second, if the machine stalled the first sleep).
        assert!((2..=3).contains(&calls.into_inner()));
        assert!(started.elapsed() >= Duration::from_millis(600));
    }

    #[test]
    fn only_passing_failures_are_transient() {
        assert!(zome_error(DEP_MISSING).is_transient());
        assert!(zome_error("source chain head has moved since the bundle began").is_transient());
        assert!(!zome_error("Validation failed while committing: rate limit").is_transient());
        assert!(!ConductorError::Start("no keystore".into()).is_transient());
    }

    #[test]
    fn retry_delays_double_to_a_cap() {
        let d: Vec<u64> = (0..7).map(|a| retry_delay(a).as_millis() as u64).collect();
        assert_eq!(d, [250, 500, 1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        let max = Duration::from_secs(60);
        let waits: Vec<u64> = (0..8).map(|a| backoff(a, max).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(u32::MAX, max), max);
    }

    #[test]
    fn races_are_rerun_at_once() {
        let d: Vec<u64> = (1..=5)
            .map(|a| head_moved_delay(a).as_millis() as u64)
            .collect();
        assert_eq!(d, [40, 80, 160, 320, 640]);
    }
}
