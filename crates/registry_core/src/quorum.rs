//! Quorum arithmetic: 2/3 of the *eligible* voters, not of the votes cast.
//!
//! The plan's sketch divided approvals by votes cast, so one approval out of
//! one vote passed. Here the eligible voters are fixed when the proposal is
//! made; only their first vote before the deadline counts.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Quorum numerator (2/3).
pub const QUORUM_NUMERATOR: usize = 2;
/// Quorum denominator.
pub const QUORUM_DENOMINATOR: usize = 3;
/// Default voting window (the plan's 2 minutes).
pub const DEFAULT_VOTE_WINDOW_SECS: i64 = 120;

/// Approvals needed among `eligible` voters: ceil(2/3 of them). None for an
/// empty electorate, which can never decide.
pub fn required_approvals(eligible: usize) -> Option<usize> {
    (eligible > 0).then(|| (eligible * QUORUM_NUMERATOR).div_ceil(QUORUM_DENOMINATOR))
}

/// A cast vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    /// The voting node.
    pub voter: String,
    /// For or against.
    pub approve: bool,
    /// When cast (its action's time), micros.
    pub cast_at_micros: i64,
}

/// Why a ballot did not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Uncounted {
    /// The voter was not in the proposal's snapshot.
    NotEligible,
    /// Cast after the deadline.
    Late,
    /// The voter had already voted.
    Duplicate,
}

/// The result of counting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Eligible voters.
    pub eligible: usize,
    /// Approvals needed.
    pub required: usize,
    /// Counted approvals.
    pub approvals: usize,
    /// Counted rejections.
    pub rejections: usize,
    /// Ballots that did not count, with why.
    pub uncounted: Vec<(String, Uncounted)>,
    /// Whether approvals reached the quorum.
    pub passed: bool,
    /// Whether the quorum can no longer be reached.
    pub failed: bool,
}

/// Counts ballots: eligible voters only, before the deadline, each voter's
/// earliest ballot only.
pub fn tally(eligible: &BTreeSet<String>, ballots: &[Ballot], deadline_micros: i64) -> Tally {
    let mut sorted: Vec<&Ballot> = ballots.iter().collect();
    sorted.sort_by(|a, b| {
        a.cast_at_micros
            .cmp(&b.cast_at_micros)
            .then(a.voter.cmp(&b.voter))
    });
    let mut counted: BTreeMap<&str, bool> = BTreeMap::new();
    let mut uncounted = Vec::new();
    for b in sorted {
        if !eligible.contains(&b.voter) {
            uncounted.push((b.voter.clone(), Uncounted::NotEligible));
        } else if b.cast_at_micros > deadline_micros {
            uncounted.push((b.voter.clone(), Uncounted::Late));
        } else if counted.contains_key(b.voter.as_str()) {
            uncounted.push((b.voter.clone(), Uncounted::Duplicate));
        } else {
            counted.insert(&b.voter, b.approve);
        }
    }
    let approvals = counted.values().filter(|a| **a).count();
    let rejections = counted.len() - approvals;
    let required = required_approvals(eligible.len()).unwrap_or(usize::MAX);
    Tally {
        eligible: eligible.len(),
        required,
        approvals,
        rejections,
        uncounted,
        passed: approvals >= required,
        failed: eligible.len().saturating_sub(rejections) < required,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(n: usize) -> BTreeSet<String> {
        (0..n).map(|i| format!("v{i}")).collect()
    }

    fn yes(i: usize, t: i64) -> Ballot {
        Ballot {
            voter: format!("v{i}"),
            approve: true,
            cast_at_micros: t,
        }
    }

    #[test]
    fn two_thirds_of_the_eligible() {
        assert_eq!(required_approvals(3), Some(2));
        assert_eq!(required_approvals(4), Some(3));
        assert_eq!(required_approvals(6), Some(4));
        assert_eq!(required_approvals(10), Some(7));
        assert_eq!(required_approvals(1), Some(1));
        assert_eq!(required_approvals(0), None);
    }

    #[test]
    fn one_vote_out_of_many_does_not_pass() {
        // The plan's flaw: 1 approval / 1 vote cast would pass.
        let t = tally(&voters(9), &[yes(0, 1)], 100);
        assert!(!t.passed);
        assert_eq!((t.approvals, t.required), (1, 6));
        let all: Vec<_> = (0..6).map(|i| yes(i, i as i64)).collect();
        assert!(tally(&voters(9), &all, 100).passed);
    }

    #[test]
    fn late_duplicate_and_outsider_votes_do_not_count() {
        let mut ballots = vec![yes(0, 1), yes(1, 2)];
        ballots.push(yes(2, 101)); // late
        ballots.push(Ballot {
            voter: "v0".into(),
            approve: false,
            cast_at_micros: 3,
        }); // second vote
        ballots.push(Ballot {
            voter: "sybil".into(),
            approve: true,
            cast_at_micros: 1,
        });
        let t = tally(&voters(4), &ballots, 100);
        assert_eq!(t.approvals, 2, "v0's first (approving) vote counts once");
        assert_eq!(t.rejections, 0);
        assert!(!t.passed, "2 of 4 eligible is below 2/3");
        let reasons: Vec<_> = t.uncounted.iter().map(|u| u.1.clone()).collect();
        assert!(reasons.contains(&Uncounted::Late));
        assert!(reasons.contains(&Uncounted::Duplicate));
        assert!(reasons.contains(&Uncounted::NotEligible));
    }

    #[test]
    fn a_blocking_minority_fails_the_proposal() {
        let no = |i: usize| Ballot {
            voter: format!("v{i}"),
            approve: false,
            cast_at_micros: 1,
        };
        let t = tally(&voters(6), &[no(0), no(1), no(2)], 100);
        assert!(t.failed && !t.passed);
        let t = tally(&voters(6), &[no(0), no(1)], 100);
        assert!(!t.failed, "4 may still approve");
    }

    #[test]
    fn empty_electorate_never_passes() {
        let t = tally(&BTreeSet::new(), &[], 100);
        assert!(!t.passed && t.failed);
    }
}
