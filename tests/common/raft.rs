//! Raft groups in tests: waiting for the members to agree on a leader.

use minikv::replication::{NodeId, Raft};

use super::WAIT;

/// The leader every member in `among` agrees on, waited for (each wait bounded by [`WAIT`]).
/// `raft` gives a member's handle by id.
pub async fn agreed_leader<'a>(among: &[NodeId], raft: impl Fn(NodeId) -> &'a Raft) -> NodeId {
    let m = raft(among[0])
        .wait(Some(WAIT))
        .metrics(
            |m| m.current_leader.is_some_and(|l| among.contains(&l)),
            "a leader",
        )
        .await
        .expect("a leader is elected");
    let leader = m.current_leader.expect("checked above");
    for id in among {
        raft(*id)
            .wait(Some(WAIT))
            .current_leader(leader, "all agree")
            .await
            .expect("every member follows the leader");
    }
    leader
}
