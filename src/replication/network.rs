//! An in-process network between the members of a group, for tests: RPCs are direct calls on
//! the target's `Raft` handle, looked up by id in a shared table. Removing a member from the
//! table makes it unreachable (a crash or a partition, as its peers see it).
//!
//! The TCP cluster bus of issue 10 replaces it; this file knows no sockets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::types::{NodeId, Raft, TypeConfig};

/// The table of reachable members; clones share it.
#[derive(Clone, Default)]
pub struct Router {
    members: Arc<Mutex<BTreeMap<NodeId, Raft>>>,
}

/// A member's connection to one peer through a [`Router`].
#[derive(Debug)]
pub struct Connection {
    target: NodeId,
    router: Router,
}

impl std::fmt::Debug for Router {
    // `Raft` is not `Debug`: show the reachable ids.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<NodeId> = self.lock().keys().copied().collect();
        f.debug_struct("Router").field("members", &ids).finish()
    }
}

impl Router {
    /// Makes `raft` reachable as `id` (replacing an earlier handle).
    pub fn add(&self, id: NodeId, raft: Raft) {
        self.lock().insert(id, raft);
    }

    /// Makes `id` unreachable; returns its handle if it was reachable.
    pub fn remove(&self, id: NodeId) -> Option<Raft> {
        self.lock().remove(&id)
    }

    /// The handle of `id`, if reachable.
    pub fn member(&self, id: NodeId) -> Option<Raft> {
        self.lock().get(&id).cloned()
    }

    /// A std mutex held only to clone a handle out: never across an RPC's `.await`.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Raft>> {
        self.members.lock().expect("router lock poisoned")
    }
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            target,
            router: self.clone(),
        }
    }
}

impl Connection {
    /// The target's handle, if it is reachable.
    fn target(&self) -> Option<Raft> {
        self.router.member(self.target)
    }

    /// Wraps the target's own error as a remote one.
    fn remote<E: std::error::Error>(
        &self,
    ) -> impl FnOnce(RaftError<NodeId, E>) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>>
    {
        let target = self.target;
        move |e| RPCError::RemoteError(RemoteError::new(target, e))
    }
}

/// The error a member that cannot be reached gives (down, or cut off).
fn unreachable<E: std::error::Error>() -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    let cause = std::io::Error::new(std::io::ErrorKind::NotConnected, "member is down");
    RPCError::Unreachable(Unreachable::new(&cause))
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let raft = self.target().ok_or_else(unreachable)?;
        raft.append_entries(rpc).await.map_err(self.remote())
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let raft = self.target().ok_or_else(unreachable)?;
        raft.install_snapshot(rpc).await.map_err(self.remote())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let raft = self.target().ok_or_else(unreachable)?;
        raft.vote(rpc).await.map_err(self.remote())
    }
}
