//! Liveness by monitors, SWIM and memberlist style: beats travel by a
//! channel that writes nothing, and the DHT records only verdicts.
//!
//! Each node sends a small beat every interval to its **monitors**: the
//! `k` present nodes of its region that rank highest in rendezvous on
//! (node, monitor) ([`monitors_of`]), so a node's liveness traffic is O(k)
//! whatever the network's size, and every node with the same view of who is
//! present picks the same monitors. A monitor keeps, in memory, when it last
//! heard from each node that beats to it ([`MonitorBook`]). When a node falls
//! silent for a failure window the monitor probes it once (a remote call
//! that writes nothing); only if that fails does it record a verdict,
//! `suspected`, on the DHT. When the node is heard again the monitor records
//! `alive`. Nothing else is written, except that a monitor re-states a
//! standing `alive` verdict once per verdict period (so readers of a bounded
//! window of buckets still find it) and records a fresh one when it sees
//! another node's suspicion of a node it hears fine (counter-evidence for
//! the Byzantine scan).
//!
//! Whether a node *failed* is not recorded at all: readers judge it from the
//! suspicions, two distinct vetted reporters at least, against their own
//! clock (see [`crate::verdict`]), so a blip shorter than the grace period
//! never moves data.
//!
//! The book is a state machine driven by the daemon: [`MonitorBook::beat`],
//! [`MonitorBook::probe_result`] and [`MonitorBook::recorded`] update it;
//! [`MonitorBook::tick`] says what to do now (probe, record). Because `tick`
//! compares what the monitor believes with what it last recorded, a failed
//! write or a restart is simply tried again at the next tick.

use crate::hash::{stable_hash, unit_interval};
use crate::MICROS_PER_SEC;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Monitors per node by default: enough for two distinct reporters even
/// when two monitors are themselves down, few enough that a node's traffic
/// stays a handful of small messages per interval.
pub const DEFAULT_MONITORS: usize = 4;

/// How long a monitor keeps watching a node that only answers probes and
/// no longer beats to it (its monitor set changed and the release was
/// lost): this many probes in a row, then it lets go.
pub const MAX_UNBEATEN_PROBES: u32 = 3;

/// The monitors of `subject` among `candidates` (node ids; the subject
/// itself and duplicates are skipped): the `k` with the highest rendezvous
/// score on (subject, candidate), best first. Deterministic, so the subject
/// and every would-be monitor agree given the same candidates, and a change
/// of membership moves only the monitors it must.
pub fn monitors_of<'a>(
    subject: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    k: usize,
) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .filter(|c| *c != subject)
        .map(|c| {
            let h = stable_hash(&[b"monitor", subject.as_bytes(), c.as_bytes()]);
            (unit_interval(h), c)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.truncate(k);
    scored.into_iter().map(|(_, c)| c.to_string()).collect()
}

/// What a monitor says about a node it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Heard within the failure window (beat or answered probe).
    Alive,
    /// Silent past the failure window and did not answer a probe.
    Suspected,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Alive => "alive",
            Verdict::Suspected => "suspected",
        }
    }

    /// The plan's `success` flag of an attestation with this verdict.
    pub fn success(self) -> bool {
        self == Verdict::Alive
    }
}

/// A monitor's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorPolicy {
    /// Silence after which a watched node is probed, and suspected if the
    /// probe fails.
    pub failure_window_secs: i64,
    /// A standing `alive` verdict is re-stated once per period of this
    /// length (the DNA's verdict period), so readers that look at the
    /// current and previous period always find it.
    pub verdict_period_secs: i64,
    /// A suspected node is probed again this often, so that one which came
    /// back beating to other monitors is cleared here too.
    pub reprobe_secs: i64,
    /// A suspected node silent this long is no longer watched (its
    /// suspicion stays on the DHT; its lease expires on its own).
    pub forget_after_secs: i64,
    /// Counter-evidence (a fresh `alive` in answer to another node's
    /// suspicion) is recorded at most once per this many seconds per node.
    pub counter_evidence_secs: i64,
}

impl MonitorPolicy {
    /// The policy for a failure window and a verdict period, with the
    /// other timings derived from them.
    pub fn new(failure_window_secs: i64, verdict_period_secs: i64) -> Self {
        MonitorPolicy {
            failure_window_secs: failure_window_secs.max(1),
            verdict_period_secs: verdict_period_secs.max(1),
            reprobe_secs: failure_window_secs.max(1),
            forget_after_secs: verdict_period_secs.max(1),
            counter_evidence_secs: crate::consensus::CONSENSUS_WINDOW_SECS,
        }
    }

    fn window(&self) -> i64 {
        self.failure_window_secs * MICROS_PER_SEC
    }

    fn period_of(&self, micros: i64) -> i64 {
        micros.div_euclid(self.verdict_period_secs * MICROS_PER_SEC)
    }
}

/// Something the daemon should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorAction {
    /// Probe the node (a remote call that writes nothing), then report the
    /// outcome with [`MonitorBook::probe_result`].
    Probe {
        /// The node.
        subject: String,
    },
    /// Record this verdict on the DHT, then confirm with
    /// [`MonitorBook::recorded`] (or [`MonitorBook::record_failed`]).
    Record {
        /// The node.
        subject: String,
        /// The verdict.
        verdict: Verdict,
        /// When the node was last heard (beat or answered probe).
        last_seen_micros: i64,
    },
}

/// One watched node.
#[derive(Debug, Clone, PartialEq)]
struct Watch {
    /// Last beat or answered probe.
    last_heard: i64,
    /// Current belief.
    verdict: Verdict,
    /// A probe is out.
    probing: bool,
    /// When the last probe was sent (for re-probing a suspected node).
    probed_at: Option<i64>,
    /// Probes answered in a row without a beat in between.
    unbeaten_probes: u32,
    /// Another node's suspicion seen that this monitor should answer.
    counter_due: bool,
}

/// A verdict this monitor has on the DHT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recorded {
    verdict: Verdict,
    at: i64,
}

/// What one monitor knows about the nodes that beat to it, and what it has
/// recorded about them.
#[derive(Debug, Clone)]
pub struct MonitorBook {
    me: String,
    policy: MonitorPolicy,
    watches: BTreeMap<String, Watch>,
    recorded: BTreeMap<String, Recorded>,
    recording: BTreeMap<String, Verdict>,
}

impl MonitorBook {
    /// An empty book for the monitor `me`.
    pub fn new(me: impl Into<String>, policy: MonitorPolicy) -> Self {
        MonitorBook {
            me: me.into(),
            policy,
            watches: BTreeMap::new(),
            recorded: BTreeMap::new(),
            recording: BTreeMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> MonitorPolicy {
        self.policy
    }

    /// The nodes watched now, with the current verdict of each.
    pub fn watched(&self) -> Vec<(String, Verdict)> {
        self.watches
            .iter()
            .map(|(s, w)| (s.clone(), w.verdict))
            .collect()
    }

    /// The current verdict about `subject`, if watched.
    pub fn verdict(&self, subject: &str) -> Option<Verdict> {
        self.watches.get(subject).map(|w| w.verdict)
    }

    /// Every verdict this monitor has on the DHT, as the book knows it
    /// (subject, verdict, when recorded): what a daemon saves so a restart
    /// does not record them again.
    pub fn recorded_verdicts(&self) -> Vec<(String, Verdict, i64)> {
        self.recorded
            .iter()
            .map(|(s, r)| (s.clone(), r.verdict, r.at))
            .collect()
    }

    /// Tells the book what this monitor already has on the DHT (its newest
    /// verdict about `subject`, recorded at `at_micros`), after a restart.
    pub fn load_recorded(&mut self, subject: &str, verdict: Verdict, at_micros: i64) {
        let newer = self.recorded.get(subject).is_none_or(|r| r.at <= at_micros);
        if newer {
            self.recorded.insert(
                subject.to_string(),
                Recorded {
                    verdict,
                    at: at_micros,
                },
            );
        }
    }

    /// A beat from `subject`, which names `monitors` as its monitors now.
    /// A beat that no longer names this monitor releases the node.
    pub fn beat(&mut self, subject: &str, monitors: &[String], now_micros: i64) {
        if subject == self.me {
            return;
        }
        if !monitors.contains(&self.me) {
            self.watches.remove(subject);
            return;
        }
        let w = self.watches.entry(subject.to_string()).or_insert(Watch {
            last_heard: now_micros,
            verdict: Verdict::Alive,
            probing: false,
            probed_at: None,
            unbeaten_probes: 0,
            counter_due: false,
        });
        w.last_heard = w.last_heard.max(now_micros);
        w.verdict = Verdict::Alive;
        w.unbeaten_probes = 0;
    }

    /// The outcome of a probe [`MonitorBook::tick`] asked for.
    pub fn probe_result(&mut self, subject: &str, answered: bool, now_micros: i64) {
        let Some(w) = self.watches.get_mut(subject) else {
            return;
        };
        w.probing = false;
        if answered {
            w.last_heard = w.last_heard.max(now_micros);
            w.verdict = Verdict::Alive;
            w.unbeaten_probes += 1;
            if w.unbeaten_probes > MAX_UNBEATEN_PROBES {
                // Alive, but it beats to other monitors now.
                self.watches.remove(subject);
            }
        } else if now_micros - w.last_heard > self.policy.window() {
            w.verdict = Verdict::Suspected;
        }
    }

    /// Another node recorded at `at_micros` that it suspects `subject`.
    /// If this monitor hears `subject` fine, it records a fresh `alive`.
    pub fn foreign_suspicion(&mut self, subject: &str, at_micros: i64) {
        let recorded_before = self.recorded.get(subject).is_none_or(|r| r.at < at_micros);
        if let Some(w) = self.watches.get_mut(subject) {
            if w.verdict == Verdict::Alive && recorded_before {
                w.counter_due = true;
            }
        }
    }

    /// A verdict asked for by [`MonitorAction::Record`] is on the DHT.
    pub fn recorded(&mut self, subject: &str, verdict: Verdict, at_micros: i64) {
        self.recording.remove(subject);
        self.load_recorded(subject, verdict, at_micros);
        if let Some(w) = self.watches.get_mut(subject) {
            w.counter_due = false;
        }
    }

    /// A verdict asked for could not be recorded; the next tick asks again.
    pub fn record_failed(&mut self, subject: &str) {
        self.recording.remove(subject);
    }

    /// What to do at `now_micros`: probe the nodes silent for a window (and
    /// suspected ones again now and then), record every verdict that differs
    /// from what is on the DHT, re-state standing `alive` verdicts once per
    /// period, and forget nodes suspected for long.
    pub fn tick(&mut self, now_micros: i64) -> Vec<MonitorAction> {
        let p = self.policy;
        let mut out = Vec::new();
        let mut forget = Vec::new();
        for (subject, w) in self.watches.iter_mut() {
            let silent = now_micros - w.last_heard;
            match w.verdict {
                Verdict::Alive if silent > p.window() && !w.probing => {
                    w.probing = true;
                    w.probed_at = Some(now_micros);
                    out.push(MonitorAction::Probe {
                        subject: subject.clone(),
                    });
                }
                Verdict::Suspected if silent > p.forget_after_secs * MICROS_PER_SEC => {
                    forget.push(subject.clone());
                    continue;
                }
                Verdict::Suspected
                    if !w.probing
                        && w.probed_at
                            .is_none_or(|t| now_micros - t > p.reprobe_secs * MICROS_PER_SEC) =>
                {
                    w.probing = true;
                    w.probed_at = Some(now_micros);
                    out.push(MonitorAction::Probe {
                        subject: subject.clone(),
                    });
                }
                _ => {}
            }
            if self.recording.contains_key(subject) {
                continue;
            }
            let recorded = self.recorded.get(subject);
            let heard_lately = silent <= p.window();
            let due = match (w.verdict, recorded) {
                (v, None) => v == Verdict::Alive && heard_lately || v == Verdict::Suspected,
                (v, Some(r)) if r.verdict != v => v == Verdict::Suspected || heard_lately,
                (Verdict::Alive, Some(r)) => {
                    heard_lately
                        && (p.period_of(r.at) != p.period_of(now_micros)
                            || (w.counter_due
                                && now_micros - r.at > p.counter_evidence_secs * MICROS_PER_SEC))
                }
                (Verdict::Suspected, Some(_)) => false,
            };
            if due {
                self.recording.insert(subject.clone(), w.verdict);
                out.push(MonitorAction::Record {
                    subject: subject.clone(),
                    verdict: w.verdict,
                    last_seen_micros: w.last_heard,
                });
            }
        }
        for s in forget {
            self.watches.remove(&s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = MICROS_PER_SEC;
    const T0: i64 = 1_800_000_000 * S;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i:03}")).collect()
    }

    #[test]
    fn monitors_are_deterministic_distinct_and_never_the_subject() {
        let nodes = ids(50);
        let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let m = monitors_of("node-007", refs.iter().copied(), 4);
        assert_eq!(m.len(), 4);
        assert!(!m.contains(&"node-007".to_string()));
        let mut sorted = m.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 4, "distinct");
        let mut shuffled = refs.clone();
        shuffled.reverse();
        assert_eq!(m, monitors_of("node-007", shuffled, 4), "order-free");
        assert_eq!(monitors_of("a", ["a", "b"], 4), vec!["b".to_string()]);
        assert!(monitors_of("a", ["a"], 4).is_empty());
    }

    #[test]
    fn a_membership_change_moves_few_monitors_and_load_is_even() {
        let nodes = ids(200);
        let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let mut watched_by: BTreeMap<String, usize> = BTreeMap::new();
        let mut moved = 0;
        for s in &refs {
            let before = monitors_of(s, refs.iter().copied(), 4);
            for m in &before {
                *watched_by.entry(m.clone()).or_default() += 1;
            }
            // One other node leaves.
            let gone = if *s == "node-000" {
                "node-001"
            } else {
                "node-000"
            };
            let after = monitors_of(s, refs.iter().copied().filter(|c| *c != gone), 4);
            moved += after.iter().filter(|m| !before.contains(m)).count();
        }
        // Only subjects that the departed node monitored get a new monitor.
        assert!(moved <= 5, "{moved} monitors moved");
        // Each node watches about k others (rendezvous spreads the load).
        let max = watched_by.values().copied().max().unwrap();
        assert!(max <= 12, "a monitor watches {max} nodes");
    }

    fn book() -> MonitorBook {
        MonitorBook::new("me", MonitorPolicy::new(10, 3600))
    }

    fn me() -> Vec<String> {
        vec!["me".to_string(), "other".to_string()]
    }

    #[test]
    fn a_new_subject_is_recorded_alive_once_per_period() {
        let mut b = book();
        b.beat("s", &me(), T0);
        let acts = b.tick(T0);
        assert_eq!(
            acts,
            vec![MonitorAction::Record {
                subject: "s".into(),
                verdict: Verdict::Alive,
                last_seen_micros: T0
            }]
        );
        assert!(b.tick(T0 + S).is_empty(), "in flight: not asked twice");
        b.recorded("s", Verdict::Alive, T0 + S);
        for i in 2..60 {
            b.beat("s", &me(), T0 + i * 5 * S);
            assert!(b.tick(T0 + i * 5 * S).is_empty(), "beats write nothing");
        }
        // The next verdict period: re-stated once.
        let next = (T0 / (3600 * S) + 1) * 3600 * S + S;
        b.beat("s", &me(), next);
        assert!(matches!(
            b.tick(next).as_slice(),
            [MonitorAction::Record {
                verdict: Verdict::Alive,
                ..
            }]
        ));
    }

    #[test]
    fn silence_is_probed_before_it_is_suspected_and_a_return_is_recorded() {
        let mut b = book();
        b.beat("s", &me(), T0);
        b.tick(T0);
        b.recorded("s", Verdict::Alive, T0);
        assert!(b.tick(T0 + 10 * S).is_empty(), "within the window");
        let acts = b.tick(T0 + 11 * S);
        assert_eq!(
            acts,
            vec![MonitorAction::Probe {
                subject: "s".into()
            }]
        );
        assert!(b.tick(T0 + 12 * S).is_empty(), "one probe at a time");
        b.probe_result("s", false, T0 + 13 * S);
        assert_eq!(b.verdict("s"), Some(Verdict::Suspected));
        assert_eq!(
            b.tick(T0 + 13 * S),
            vec![MonitorAction::Record {
                subject: "s".into(),
                verdict: Verdict::Suspected,
                last_seen_micros: T0
            }]
        );
        b.recorded("s", Verdict::Suspected, T0 + 13 * S);
        assert!(b.tick(T0 + 14 * S).is_empty(), "suspicion recorded once");
        // It comes back: alive is recorded.
        b.beat("s", &me(), T0 + 20 * S);
        assert!(matches!(
            b.tick(T0 + 20 * S).as_slice(),
            [MonitorAction::Record {
                verdict: Verdict::Alive,
                ..
            }]
        ));
    }

    #[test]
    fn a_node_that_answers_the_probe_is_not_suspected() {
        let mut b = book();
        b.beat("s", &me(), T0);
        b.tick(T0);
        b.recorded("s", Verdict::Alive, T0);
        assert_eq!(b.tick(T0 + 11 * S).len(), 1);
        b.probe_result("s", true, T0 + 12 * S);
        assert_eq!(b.verdict("s"), Some(Verdict::Alive));
        assert!(b.tick(T0 + 13 * S).is_empty(), "nothing to record");
        // Still answering probes but never beating to us: let go.
        for i in 0..MAX_UNBEATEN_PROBES {
            let t = T0 + (25 + 12 * i as i64) * S;
            assert_eq!(b.tick(t).len(), 1, "probe {i}");
            b.probe_result("s", true, t + S);
        }
        assert_eq!(
            b.verdict("s"),
            None,
            "released after repeated probe-only liveness"
        );
    }

    #[test]
    fn a_failed_record_is_asked_again_and_a_restart_does_not_repeat_one() {
        let mut b = book();
        b.beat("s", &me(), T0);
        assert_eq!(b.tick(T0).len(), 1);
        b.record_failed("s");
        assert_eq!(b.tick(T0 + S).len(), 1, "asked again");
        // After a restart the book learns what is already on the DHT.
        let mut fresh = book();
        fresh.load_recorded("s", Verdict::Alive, T0 + S);
        fresh.beat("s", &me(), T0 + 2 * S);
        assert!(fresh.tick(T0 + 2 * S).is_empty());
    }

    #[test]
    fn a_release_or_a_beat_to_others_stops_the_watch() {
        let mut b = book();
        b.beat("s", &me(), T0);
        b.beat("s", &["other".to_string()], T0 + S);
        assert!(b.watched().is_empty());
        assert!(
            b.tick(T0 + 100 * S).is_empty(),
            "a released node is not suspected"
        );
        b.beat("me", &me(), T0);
        assert!(b.watched().is_empty(), "never watches itself");
    }

    #[test]
    fn a_suspected_node_is_reprobed_then_forgotten() {
        let mut b = book();
        b.beat("s", &me(), T0);
        b.tick(T0);
        b.recorded("s", Verdict::Alive, T0);
        b.tick(T0 + 11 * S);
        b.probe_result("s", false, T0 + 12 * S);
        b.tick(T0 + 12 * S);
        b.recorded("s", Verdict::Suspected, T0 + 12 * S);
        assert!(b.tick(T0 + 15 * S).is_empty());
        assert_eq!(
            b.tick(T0 + 23 * S),
            vec![MonitorAction::Probe {
                subject: "s".into()
            }],
            "re-probed a window later"
        );
        b.probe_result("s", true, T0 + 24 * S);
        assert!(matches!(
            b.tick(T0 + 24 * S).as_slice(),
            [MonitorAction::Record {
                verdict: Verdict::Alive,
                ..
            }]
        ));
        // Dead for good: forgotten after the forget period.
        let mut b = book();
        b.beat("d", &me(), T0);
        b.tick(T0);
        b.recorded("d", Verdict::Alive, T0);
        b.tick(T0 + 11 * S);
        b.probe_result("d", false, T0 + 12 * S);
        b.tick(T0 + 12 * S);
        b.recorded("d", Verdict::Suspected, T0 + 12 * S);
        b.tick(T0 + 3601 * S);
        assert_eq!(b.verdict("d"), None);
    }

    #[test]
    fn another_nodes_suspicion_of_a_live_node_draws_fresh_evidence() {
        let mut b = book();
        b.beat("s", &me(), T0);
        b.tick(T0);
        b.recorded("s", Verdict::Alive, T0);
        b.beat("s", &me(), T0 + 400 * S);
        b.foreign_suspicion("s", T0 + 399 * S);
        assert!(matches!(
            b.tick(T0 + 400 * S).as_slice(),
            [MonitorAction::Record {
                verdict: Verdict::Alive,
                ..
            }]
        ));
        b.recorded("s", Verdict::Alive, T0 + 401 * S);
        // The same suspicion again (or an older one) draws nothing more.
        b.foreign_suspicion("s", T0 + 399 * S);
        b.beat("s", &me(), T0 + 402 * S);
        assert!(b.tick(T0 + 402 * S).is_empty());
    }
}
