//! This node's part in regional decisions: voting on custody proposals.
//! (Peer health is the monitor's, in `liveness.rs`.)

use crate::node::agent::NodeAgent;
use crate::registry::conductor::ConductorError;
use holochain_types::prelude::ActionHash;
use node_registry_integrity::zome_fns::{
    CastVote, GetAvailableCustodians, GetOpenProposals, GetVoteRecord,
};
use node_registry_integrity::*;

/// Whether this node approves a proposal: the proposed custodian must be a
/// custodian it would itself choose among (alive, opted in, with room).
pub fn approves(proposal: &AssignmentProposal, available: &[RankedCustodian]) -> bool {
    available
        .iter()
        .any(|c| c.registration.node_id == proposal.assignment.custodian_node_id)
}

/// Votes on every open proposal of this node's region it is eligible for
/// and has not voted on; returns the votes cast.
pub async fn vote_round(agent: &NodeAgent) -> Result<usize, ConductorError> {
    let region = agent.config().node.region.clone();
    let open: Vec<(ActionHash, AssignmentProposal)> =
        agent.read_fn::<GetOpenProposals>(region).await?;
    let mut cast = 0;
    for (hash, proposal) in open {
        if !proposal
            .eligible_voters
            .iter()
            .any(|v| v.node_id == agent.node_id)
        {
            continue;
        }
        let record: VoteRecord = agent.read_fn::<GetVoteRecord>(hash.clone()).await?;
        if record.ballots.iter().any(|b| b.voter == agent.node_id) {
            continue;
        }
        let available: Vec<RankedCustodian> = agent
            .read_fn::<GetAvailableCustodians>(CustodianFilters {
                min_storage_bytes: Some(proposal.assignment.shard_size_bytes),
                ..Default::default()
            })
            .await?;
        let approve = approves(&proposal, &available);
        let _: VoteOutcome = agent
            .write_fn::<CastVote>(CastVoteInput {
                proposal: hash,
                approve,
            })
            .await?;
        cast += 1;
    }
    Ok(cast)
}
