//! Signed transfer requests are good once: every request carries a random
//! nonce under its signature, and a receiver remembers each nonce it
//! accepted for as long as the request's time keeps it acceptable (see
//! [`crate::transfer::MAX_REQUEST_AGE_SECS`]). The memory is bounded: when
//! it is full of nonces still in their window, new requests are asked to
//! come back later rather than any remembered nonce being forgotten early
//! (forgetting one would let its request be replayed).

use crate::transfer::{TransferError, MAX_REQUEST_AGE_SECS, MAX_REQUEST_FUTURE_SECS};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Nonces remembered at most (each costs about 150 bytes).
pub const DEFAULT_CAPACITY: usize = 65_536;

#[derive(Default)]
struct Book {
    /// (agent, nonce) -> the time after which its request is stale anyway.
    until: HashMap<(String, String), i64>,
    /// The same, ordered by expiry, to forget the stale ones cheaply.
    by_expiry: BTreeSet<(i64, String, String)>,
}

/// The nonces of accepted requests still inside their window.
pub struct SeenNonces {
    book: Mutex<Book>,
    capacity: usize,
}

impl Default for SeenNonces {
    fn default() -> Self {
        SeenNonces::new(DEFAULT_CAPACITY)
    }
}

impl SeenNonces {
    /// A memory of at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        SeenNonces {
            book: Mutex::new(Book::default()),
            capacity,
        }
    }

    /// Nonces remembered now.
    pub fn len(&self) -> usize {
        self.book.lock().unwrap().until.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Accepts the first use of `nonce` by `agent` for a request made at
    /// `time_micros` (already checked fresh and signed); refuses any later
    /// use while that request could still be presented.
    pub fn first_use(
        &self,
        agent: &str,
        nonce: &str,
        time_micros: i64,
        now_micros: i64,
    ) -> Result<(), TransferError> {
        let mut b = self.book.lock().unwrap();
        // Forget what no longer passes the freshness check anyway.
        while let Some(first) = b.by_expiry.first().cloned() {
            if first.0 >= now_micros {
                break;
            }
            b.by_expiry.remove(&first);
            b.until.remove(&(first.1, first.2));
        }
        let key = (agent.to_string(), nonce.to_string());
        if b.until.contains_key(&key) {
            return Err(TransferError::Replayed(
                "this signed request was already used (each request carries a fresh nonce)".into(),
            ));
        }
        if b.until.len() >= self.capacity {
            return Err(TransferError::Busy(
                "too many transfer requests in the last minute; try again shortly".into(),
            ));
        }
        // A request stays acceptable until it is MAX_REQUEST_AGE_SECS old;
        // one stamped ahead of this clock is counted from now at the
        // latest stamp accepted.
        let stamped = time_micros.min(now_micros + MAX_REQUEST_FUTURE_SECS * 1_000_000);
        let until = stamped + MAX_REQUEST_AGE_SECS * 1_000_000 + 1_000_000;
        b.by_expiry.insert((until, key.0.clone(), key.1.clone()));
        b.until.insert(key, until);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;
    const S: i64 = 1_000_000;

    #[test]
    fn a_nonce_is_good_once_within_its_window() {
        let seen = SeenNonces::default();
        assert_eq!(seen.first_use("a", "n1", NOW, NOW), Ok(()));
        assert!(matches!(
            seen.first_use("a", "n1", NOW, NOW + S),
            Err(TransferError::Replayed(_))
        ));
        assert_eq!(
            seen.first_use("b", "n1", NOW, NOW + S),
            Ok(()),
            "another signer's nonce"
        );
        assert_eq!(seen.first_use("a", "n2", NOW, NOW + S), Ok(()));
        // Still remembered at the end of the window, forgotten after it
        // (when the freshness check refuses the request anyway).
        assert!(seen
            .first_use("a", "n1", NOW, NOW + MAX_REQUEST_AGE_SECS * S)
            .is_err());
        assert_eq!(
            seen.first_use("x", "y", NOW, NOW + (MAX_REQUEST_AGE_SECS + 2) * S),
            Ok(())
        );
        assert_eq!(seen.len(), 1, "stale nonces are forgotten");
    }

    #[test]
    fn a_request_from_the_future_is_remembered_long_enough() {
        let seen = SeenNonces::default();
        let ahead = NOW + MAX_REQUEST_FUTURE_SECS * S;
        seen.first_use("a", "n", ahead, NOW).unwrap();
        // It stays fresh until it is MAX_REQUEST_AGE_SECS older than its
        // stamp; so long is it remembered.
        assert!(seen
            .first_use("a", "n", ahead, ahead + MAX_REQUEST_AGE_SECS * S)
            .is_err());
    }

    #[test]
    fn the_memory_is_bounded_and_never_forgets_early() {
        let seen = SeenNonces::new(3);
        for n in ["1", "2", "3"] {
            seen.first_use("a", n, NOW, NOW).unwrap();
        }
        assert!(matches!(
            seen.first_use("a", "4", NOW, NOW),
            Err(TransferError::Busy(_))
        ));
        assert!(
            matches!(
                seen.first_use("a", "1", NOW, NOW),
                Err(TransferError::Replayed(_))
            ),
            "a full memory still refuses replays"
        );
        let later = NOW + (MAX_REQUEST_AGE_SECS + 2) * S;
        assert_eq!(seen.first_use("a", "4", later, later), Ok(()));
        assert_eq!(seen.len(), 1);
    }
}
