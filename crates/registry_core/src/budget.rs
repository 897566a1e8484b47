//! The write budget: what a node writes to its chains, by kind, and how
//! much that may be.
//!
//! Every record a node writes is a cost forever: Holochain 0.7.1 reads the
//! author's whole chain before each of its calls, and the DHT never deletes.
//! In steady state (nothing published, nobody failing) a node at the
//! shipped defaults writes at most [`DAILY_BUDGET`] records a day, whatever
//! the network's size. [`steady_state_per_day`] is the model of what it
//! writes, kind by kind; [`run_allowance`] turns it into the most a test run
//! of a given length may see, which the budget test checks against records
//! counted on real conductors, and the simulator multiplies by the network.

use crate::MICROS_PER_SEC;
use serde::{Deserialize, Serialize};

/// Records a node may write in a day of steady state.
pub const DAILY_BUDGET: f64 = 200.0;

/// Seconds in a day.
pub const DAY_SECS: f64 = 86_400.0;

/// What a record is, for budgets and figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// An agent's genesis records and its init (cap grants, init complete):
    /// once per agent, so once per epoch for the working agent.
    AgentSetup,
    /// A registration version and its directory links.
    Registration,
    /// A working-key delegation and its link.
    Delegation,
    /// A presence lease (one link per lease period, or on a status change).
    PresenceLease,
    /// A monitor's verdict (an attestation entry and its link), recorded on
    /// change, as counter-evidence, or re-stated once per verdict period.
    Verdict,
    /// A suspicion's entry in its region's suspicion index (and the entry
    /// that retracts it).
    SuspicionIndex,
    /// Custody assignments, retirements and their links (publishing and
    /// repairs).
    Custody,
    /// Proposals, votes and penalties.
    Governance,
    /// Service summaries and their acknowledgements.
    Rewards,
    /// Relationships, consents and recovery records.
    Family,
    /// Anything else (deletes, unknown links).
    Other,
}

impl RecordKind {
    /// Every kind, in a stable order.
    pub const ALL: [RecordKind; 11] = [
        RecordKind::AgentSetup,
        RecordKind::Registration,
        RecordKind::Delegation,
        RecordKind::PresenceLease,
        RecordKind::Verdict,
        RecordKind::SuspicionIndex,
        RecordKind::Custody,
        RecordKind::Governance,
        RecordKind::Rewards,
        RecordKind::Family,
        RecordKind::Other,
    ];

    /// The name used in tables and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::AgentSetup => "agent_setup",
            RecordKind::Registration => "registration",
            RecordKind::Delegation => "delegation",
            RecordKind::PresenceLease => "presence_lease",
            RecordKind::Verdict => "verdict",
            RecordKind::SuspicionIndex => "suspicion_index",
            RecordKind::Custody => "custody",
            RecordKind::Governance => "governance",
            RecordKind::Rewards => "rewards",
            RecordKind::Family => "family",
            RecordKind::Other => "other",
        }
    }
}

/// Records one agent's setup writes: its three genesis records, the two
/// capability grants its init commits (remote calls and direct signals),
/// the init-complete marker, and the grant of the sidecar's signing key.
pub const AGENT_SETUP_RECORDS: f64 = 7.0;
/// Records a registration writes: the entry and its four directory links.
pub const REGISTRATION_RECORDS: f64 = 5.0;
/// Records a delegation writes: the entry and the link from the working key.
pub const DELEGATION_RECORDS: f64 = 2.0;
/// Records a verdict writes: the attestation entry and its link.
pub const VERDICT_RECORDS: f64 = 2.0;
/// Records one assignment writes: the entry and its content, custody,
/// recent-custody and owner links.
pub const ASSIGNMENT_RECORDS: f64 = 5.0;
/// Agents a sidecar node runs: identity, working (one at a time) and the
/// reader through which it selects.
pub const AGENTS_PER_NODE: f64 = 3.0;

/// The timings the model needs (the DNA's and the sidecar's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Presence lease period, seconds.
    pub presence_lease_secs: f64,
    /// Verdict period, seconds (a standing verdict is re-stated once per).
    pub verdict_period_secs: f64,
    /// Working-agent epoch, seconds.
    pub epoch_secs: f64,
    /// Nodes each node watches (about as many as watch it).
    pub monitors: f64,
}

impl Default for Timings {
    /// The shipped defaults.
    fn default() -> Self {
        Timings {
            presence_lease_secs: crate::presence::DEFAULT_PRESENCE_LEASE_SECS as f64,
            verdict_period_secs: crate::presence::DEFAULT_VERDICT_PERIOD_SECS as f64,
            epoch_secs: crate::delegation::DEFAULT_EPOCH_SECS as f64,
            monitors: crate::monitor::DEFAULT_MONITORS as f64,
        }
    }
}

/// Records a node writes once when it first starts: every agent's setup,
/// its registration, its first delegation, its first lease and a first
/// verdict about each node it watches.
pub fn startup_records(t: &Timings) -> Vec<(RecordKind, f64)> {
    vec![
        (
            RecordKind::AgentSetup,
            AGENTS_PER_NODE * AGENT_SETUP_RECORDS,
        ),
        (RecordKind::Registration, REGISTRATION_RECORDS),
        (RecordKind::Delegation, DELEGATION_RECORDS),
        (RecordKind::PresenceLease, 1.0),
        (RecordKind::Verdict, t.monitors * VERDICT_RECORDS),
    ]
}

/// Records a node writes per day in steady state, by kind: a lease per
/// lease period, each watched node's standing verdict re-stated once per
/// verdict period, and per epoch a new working agent and its delegation.
pub fn steady_state_per_day(t: &Timings) -> Vec<(RecordKind, f64)> {
    let per = |secs: f64| DAY_SECS / secs.max(1.0);
    vec![
        (RecordKind::PresenceLease, per(t.presence_lease_secs)),
        (
            RecordKind::Verdict,
            t.monitors * VERDICT_RECORDS * per(t.verdict_period_secs),
        ),
        (
            RecordKind::AgentSetup,
            AGENT_SETUP_RECORDS * per(t.epoch_secs),
        ),
        (
            RecordKind::Delegation,
            DELEGATION_RECORDS * per(t.epoch_secs),
        ),
    ]
}

/// The model's total records a node a day in steady state.
pub fn steady_state_total(t: &Timings) -> f64 {
    steady_state_per_day(t).iter().map(|(_, n)| n).sum()
}

/// The most records of each kind a node may write in a run of `run_secs`
/// from its first start: its startup writes, plus the steady state over
/// the run rounded up, plus one period's worth for a period that turns
/// during the run (a lease or verdict bucket that begins just after start).
pub fn run_allowance(t: &Timings, run_secs: f64) -> Vec<(RecordKind, u64)> {
    let startup = startup_records(t);
    let steady = steady_state_per_day(t);
    RecordKind::ALL
        .iter()
        .filter_map(|&kind| {
            let once: f64 = startup
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, n)| n)
                .sum();
            let daily: f64 = steady
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, n)| n)
                .sum();
            if once == 0.0 && daily == 0.0 {
                return None;
            }
            let edge = match kind {
                RecordKind::PresenceLease => 1.0,
                RecordKind::Verdict => t.monitors * VERDICT_RECORDS,
                RecordKind::AgentSetup => AGENT_SETUP_RECORDS,
                RecordKind::Delegation => DELEGATION_RECORDS,
                _ => 0.0,
            };
            let n = once + (daily * run_secs / DAY_SECS).ceil() + edge;
            Some((kind, n.ceil() as u64))
        })
        .collect()
}

/// [`DAILY_BUDGET`] scaled to a run of `run_secs` whose timings are the
/// defaults divided by `speedup` (a test that runs leases every 10 s
/// instead of every hour has a speedup of 360), plus the startup writes:
/// what the budget test holds a node to, whatever the model says.
pub fn scaled_budget(t: &Timings, run_secs: f64, speedup: f64) -> f64 {
    let once: f64 = startup_records(t).iter().map(|(_, n)| n).sum();
    once + DAILY_BUDGET * run_secs * speedup / DAY_SECS
}

/// Bytes of one record of a kind as its author's chain holds it (the signed
/// action, and the entry if it has one), on average: what each adds to the
/// DHT before replication. Measured by `tests/tests/budget.rs` on
/// 2026-12-04 for the kinds a node writes in steady state and for custody;
/// the others are estimated from the size of what they carry.
pub fn record_bytes(kind: RecordKind) -> f64 {
    match kind {
        RecordKind::AgentSetup => 450.0,
        RecordKind::Registration => 709.0,
        RecordKind::Delegation => 543.0,
        RecordKind::PresenceLease => 893.0,
        RecordKind::Verdict => 642.0,
        RecordKind::Custody => 743.0,
        // Estimated: a link whose tag holds an attestation, two action
        // hashes and a region.
        RecordKind::SuspicionIndex => 1_000.0,
        RecordKind::Governance => 900.0,
        RecordKind::Rewards => 700.0,
        RecordKind::Family => 600.0,
        RecordKind::Other => 400.0,
    }
}

/// Seconds, as the micros the rest of the crate counts in.
pub fn secs_to_micros(secs: f64) -> i64 {
    (secs * MICROS_PER_SEC as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_fit_the_budget_with_room() {
        let t = Timings::default();
        let total = steady_state_total(&t);
        assert!(total < DAILY_BUDGET / 4.0, "{total} records a day");
        let per: std::collections::BTreeMap<RecordKind, f64> =
            steady_state_per_day(&t).into_iter().collect();
        assert_eq!(per[&RecordKind::PresenceLease], 24.0, "one lease an hour");
        assert_eq!(per[&RecordKind::Verdict], 8.0, "4 standing verdicts a day");
    }

    #[test]
    fn a_scaled_run_is_held_to_the_scaled_budget() {
        // Leases every 10 s instead of every hour: 360 times the defaults.
        let speedup = 360.0;
        let d = Timings::default();
        let t = Timings {
            presence_lease_secs: d.presence_lease_secs / speedup,
            verdict_period_secs: d.verdict_period_secs / speedup,
            epoch_secs: d.epoch_secs / speedup,
            monitors: d.monitors,
        };
        let run = 120.0;
        let allowed: u64 = run_allowance(&t, run).iter().map(|(_, n)| n).sum();
        assert!(
            (allowed as f64) <= scaled_budget(&t, run, speedup),
            "{allowed} allowed vs {}",
            scaled_budget(&t, run, speedup)
        );
        let leases = run_allowance(&t, run)
            .into_iter()
            .find(|(k, _)| *k == RecordKind::PresenceLease)
            .unwrap()
            .1;
        assert_eq!(leases, 1 + 12 + 1, "first, one per 10 s, one edge");
    }
}
