//! The event queue: a binary heap keyed by simulated time.
//!
//! Ties are broken by insertion order, so a run is a pure function of its
//! configuration and seed: the same events happen in the same order on
//! every machine.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Something that happens at one instant of simulated time. Node and item
/// ids index the simulator's tables; `gen` fields let a handler ignore an
/// event that a later change made stale (the cheap alternative to removing
/// it from the heap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A node goes down for a while (reboot, ISP outage).
    Outage(u32),
    /// A node goes down for a given time (scheduled by a test or a
    /// comparison, outside the random outage process).
    ForcedOutage {
        /// The node.
        node: u32,
        /// How long, seconds.
        secs: u32,
    },
    /// A node is back after an outage.
    Return {
        /// The node.
        node: u32,
        /// Whether the outage came from the node's random outage process,
        /// which then draws its next outage.
        random: bool,
    },
    /// A node dies for good (disk, hardware, owner gone).
    Death(u32),
    /// A run of lost heartbeats starts for a live node.
    FalseSilence(u32),
    /// A heartbeat of a silent node reaches the detectors again.
    Visible {
        /// The node.
        node: u32,
        /// Its silence generation when scheduled.
        gen: u32,
    },
    /// A detector tick at which `judge_liveness` says Failed.
    Detect {
        /// The node.
        node: u32,
        /// Its silence generation when scheduled.
        gen: u32,
    },
    /// Choose a custodian for a shard whose custodian was declared failed.
    Assign {
        /// The content.
        item: u32,
        /// The shard index.
        slot: u16,
        /// The shard's repair generation when scheduled.
        gen: u32,
    },
    /// The new custodian tries to fetch the shards it rebuilds from.
    Fetch {
        /// The content.
        item: u32,
        /// The shard index.
        slot: u16,
        /// The shard's repair generation when scheduled.
        gen: u32,
    },
    /// The rebuilt shard is stored.
    RepairDone {
        /// The content.
        item: u32,
        /// The shard index.
        slot: u16,
        /// The shard's repair generation when scheduled.
        gen: u32,
    },
    /// A new node registers.
    Join,
    /// A round of routine health audits (attestations and consensus).
    Audit,
}

#[derive(Debug)]
struct Entry {
    at: i64,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap, we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

/// Pending events, earliest first, ties in insertion order.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl EventQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `event` at `at` (micros).
    pub fn push(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            event,
        });
    }

    /// The earliest pending event.
    pub fn pop(&mut self) -> Option<(i64, Event)> {
        self.heap.pop().map(|e| (e.at, e.event))
    }

    /// Pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_ties_in_insertion_order() {
        let mut q = EventQueue::new();
        q.push(30, Event::Death(1));
        q.push(10, Event::Death(2));
        q.push(30, Event::Death(3));
        q.push(10, Event::Death(4));
        q.push(20, Event::Join);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                (10, Event::Death(2)),
                (10, Event::Death(4)),
                (20, Event::Join),
                (30, Event::Death(1)),
                (30, Event::Death(3)),
            ]
        );
        assert!(q.is_empty());
    }
}
