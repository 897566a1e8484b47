//! This node's part in peer health and regional decisions: probing peers,
//! scanning for liars, and voting on custody proposals.

use crate::agent::NodeAgent;
use crate::conductor::ConductorError;
use holochain_types::prelude::ActionHash;
use node_registry_integrity::*;

/// The peers to probe in round `round`: a window of `count` peers, sliding
/// by `count` each round through the sorted region, starting at an offset
/// derived from this node's id so nodes do not all probe the same peers.
pub fn peers_for_round(me: &str, region_nodes: &[String], round: u64, count: usize) -> Vec<String> {
    let mut others: Vec<&String> = region_nodes.iter().filter(|n| n.as_str() != me).collect();
    others.sort();
    others.dedup();
    if others.is_empty() {
        return vec![];
    }
    let offset = registry_core::hash::stable_hash(&[me.as_bytes()]) as usize;
    let start = offset.wrapping_add((round as usize).wrapping_mul(count)) % others.len();
    (0..count.min(others.len()))
        .map(|i| others[(start + i) % others.len()].clone())
        .collect()
}

/// Whether this node approves a proposal: the proposed custodian must be a
/// custodian it would itself choose among (alive, opted in, with room).
pub fn approves(proposal: &AssignmentProposal, available: &[RankedCustodian]) -> bool {
    available
        .iter()
        .any(|c| c.registration.node_id == proposal.assignment.custodian_node_id)
}

/// Runs one attestation round; returns how many peers were probed.
pub async fn attest_round(
    agent: &NodeAgent,
    round: u64,
    count: usize,
) -> Result<usize, ConductorError> {
    let region = agent.config().node.region.clone();
    let nodes: Vec<NodeRegistration> = agent.call("get_nodes_by_region", region).await?;
    let ids: Vec<String> = nodes.into_iter().map(|n| n.node_id).collect();
    let targets = peers_for_round(&agent.node_id, &ids, round, count);
    let mut done = 0;
    for t in &targets {
        match agent
            .call::<_, ActionHash>("attest_peer_health", t.clone())
            .await
        {
            Ok(_) => done += 1,
            Err(e) => tracing::debug!("attesting {t}: {e}"),
        }
    }
    Ok(done)
}

/// Votes on every open proposal of this node's region it is eligible for
/// and has not voted on; returns the votes cast.
pub async fn vote_round(agent: &NodeAgent) -> Result<usize, ConductorError> {
    let region = agent.config().node.region.clone();
    let open: Vec<(ActionHash, AssignmentProposal)> =
        agent.call("get_open_proposals", region).await?;
    let mut cast = 0;
    for (hash, proposal) in open {
        if !proposal
            .eligible_voters
            .iter()
            .any(|v| v.node_id == agent.node_id)
        {
            continue;
        }
        let record: VoteRecord = agent.call("get_vote_record", hash.clone()).await?;
        if record.ballots.iter().any(|b| b.voter == agent.node_id) {
            continue;
        }
        let available: Vec<RankedCustodian> = agent
            .read(
                "get_available_custodians",
                CustodianFilters {
                    min_storage_bytes: Some(proposal.assignment.shard_size_bytes),
                    ..Default::default()
                },
            )
            .await?;
        let approve = approves(&proposal, &available);
        let _: VoteOutcome = agent
            .call(
                "cast_vote",
                CastVoteInput {
                    proposal: hash,
                    approve,
                },
            )
            .await?;
        cast += 1;
    }
    Ok(cast)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_cover_every_peer_and_skip_self() {
        let nodes: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..3 {
            let picked = peers_for_round("n3", &nodes, round, 3);
            assert_eq!(picked.len(), 3);
            assert!(!picked.contains(&"n3".to_string()));
            seen.extend(picked);
        }
        assert_eq!(seen.len(), 9, "three rounds of three cover all nine peers");
        assert!(peers_for_round("n0", &["n0".to_string()], 0, 4).is_empty());
        assert_eq!(
            peers_for_round("n0", &nodes[..3], 0, 10).len(),
            2,
            "no more than there are"
        );
    }

    #[test]
    fn every_node_is_probed_by_more_than_three_peers_in_five_minutes() {
        // Defaults: 4 peers a minute, so 5 rounds in 5 minutes.
        let nodes: Vec<String> = (0..6).map(|i| format!("node-{i}")).collect();
        let mut probed_by: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for me in &nodes {
            for round in 0..5 {
                for t in peers_for_round(me, &nodes, round, 4) {
                    probed_by.entry(t).or_default().insert(me.clone());
                }
            }
        }
        for n in &nodes {
            assert!(probed_by[n].len() > 3, "{n} probed by {:?}", probed_by[n]);
        }
    }
}
