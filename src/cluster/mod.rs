//! The replicated cluster (issue 10), switched on by `--cluster`: every shard is a Raft group
//! (openraft, see [`crate::replication`]) replicated on `--replicas` nodes, any node takes any
//! command and runs it on the leader of its keys' shard, and a write is acknowledged only once
//! a majority of the shard's members have it.
//!
//! Rooms: [`spec`] reads the command line (addresses, placement), [`group`] is this node's
//! member of one shard's group (proposer, leadership, lease, rebuild), [`route`] decides
//! where each request runs and forwards it, and [`admin`] answers what concerns the cluster
//! as a whole (CLUSTER INFO/SHARDS/MYID, INFO replication, FLUSHALL, SAVE). The bus
//! ([`crate::replication::bus`]) carries Raft's RPCs and the forwarded requests.

pub mod admin;
pub mod group;
pub mod route;
pub mod spec;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use group::{Group, Role};
pub use spec::{ClusterSpec, Peer, SpecError};

use crate::node::Node;
use crate::replication::bus::{self, BusCaller, BusError, BusTls, CallHandler, Contacts};
use crate::replication::{BusNetwork, Groups};
use route::{Forward, Forwarded};

/// How long one bus call may take before the caller treats the peer as gone.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How recent the last exchange with a peer must be to say whether it is up: leaders send
/// heartbeats every fraction of the node timeout, and retry unreachable peers about every
/// half second, so anything older means no traffic with it (nothing to go by).
const CONTACT_WINDOW: Duration = Duration::from_secs(5);

/// What nodes ask each other over the bus besides Raft's own RPCs.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    /// Run commands on the leader of a shard.
    Forward(Forward),
    /// Which member leads each shard, as this node knows it (member id, 0: none).
    Leaders,
    /// Remove every key of a shard (FLUSHALL/FLUSHDB on the cluster), on its leader.
    Flush(usize),
}

/// The answer to a [`Call`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    /// For [`Call::Forward`].
    Forwarded(Forwarded),
    /// For [`Call::Leaders`]: per shard.
    Leaders(Vec<u64>),
    /// For [`Call::Flush`]: keys removed, or the leader to ask instead (`Err`).
    Flushed(Result<u64, u64>),
    /// The request could not be read.
    Refused(String),
}

/// A bus call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The peer never got it.
    #[error("{0}")]
    NotSent(String),
    /// The peer may have run it (the connection broke or the answer did not come in time).
    #[error("{0}")]
    Unknown(String),
}

/// This node's part of the replicated cluster.
pub struct Cluster {
    /// The cluster's shape.
    pub spec: ClusterSpec,
    groups: Vec<Option<Arc<Group>>>,
    caller: BusCaller,
    /// For shards this node does not replicate: the leader as last learned (0: unknown).
    remote_leaders: Vec<AtomicU64>,
    /// Requests forwarded to other nodes (INFO).
    pub forwarded: AtomicU64,
    /// The bus address actually bound.
    pub bus_addr: std::net::SocketAddr,
    /// How the last exchange with each peer went, over any shard's traffic or a call.
    contacts: Contacts,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("me", &self.spec.me)
            .field("groups", &self.groups)
            .finish()
    }
}

impl Cluster {
    /// Binds the cluster bus, serves it, and starts this node's member of every shard it
    /// replicates (bootstrapping the shards it is first of, on a fresh data directory).
    ///
    /// # Errors
    /// A message naming the bus address or the shard that could not start.
    pub async fn start(node: &Arc<Node>, spec: ClusterSpec) -> Result<Arc<Cluster>, String> {
        let bus_addr = spec.nodes[spec.me].bus.clone();
        let bind_addr = match bus_addr.rsplit_once(':') {
            Some((_, port)) => format!("{}:{port}", node.config.host),
            None => bus_addr.clone(),
        };
        let listener = TcpListener::bind(&bind_addr)
            .await
            .map_err(|e| format!("cannot bind the cluster bus on {bind_addr}: {e}"))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("cluster bus address: {e}"))?;
        let password: Option<Arc<str>> = node.config.requirepass.as_deref().map(Arc::from);
        let tls = bus_tls(&node.config)?;
        let groups = Groups::default();
        let handler = handler(Arc::downgrade(node));
        tokio::spawn(bus::run(
            listener,
            groups.clone(),
            password.clone(),
            tls.clone(),
            Some(handler),
            node.shutdown.clone(),
        ));
        let dir = node
            .config
            .data_dir
            .join(format!("raft-node{}", spec.me + 1));
        let contacts = Contacts::default();
        let mut members = Vec::new();
        for shard in 0..spec.shards() {
            if !spec.members(shard).contains(&spec.me) {
                members.push(None);
                continue;
            }
            let network = BusNetwork::new(shard as u64, password.clone(), tls.clone())
                .contacts(contacts.clone());
            let group = Group::start(
                &spec,
                shard,
                node.store.clone(),
                &dir,
                network,
                groups.clone(),
            )
            .await?;
            members.push(Some(group));
        }
        let cluster = Arc::new(Cluster {
            remote_leaders: (0..spec.shards()).map(|_| AtomicU64::new(0)).collect(),
            caller: BusCaller::new(password, tls),
            spec,
            groups: members,
            forwarded: AtomicU64::new(0),
            bus_addr: bound,
            contacts,
        });
        cluster.bootstrap().await;
        if cluster.groups.iter().any(Option::is_none) {
            tokio::spawn(follow_remote_leaders(
                Arc::downgrade(&cluster),
                node.shutdown.clone(),
            ));
        }
        Ok(cluster)
    }

    /// For every local member without any Raft state (a fresh cluster, or a node whose data
    /// directory was wiped): when no peer knows a leader for its shard, the shard's first node
    /// bootstraps the group; when a peer does, the member rejoins the group as it is and does
    /// not vote until it has caught up (it may have acknowledged entries it no longer has).
    async fn bootstrap(&self) {
        for group in self.groups() {
            if !group.pristine().await {
                continue;
            }
            let mut known = false;
            for member in self.spec.members(group.shard) {
                if member == self.spec.me {
                    continue;
                }
                if let Ok(Answer::Leaders(leaders)) = self
                    .call(ClusterSpec::member_id(member), &Call::Leaders)
                    .await
                {
                    known |= leaders.get(group.shard).is_some_and(|l| *l != 0);
                }
            }
            if known {
                tracing::warn!(
                    shard = group.shard + 1,
                    "this node has no data for the shard but its peers do: rejoining the \
                     group, without voting until it has caught up"
                );
                group.abstain_until_caught_up();
            } else if self.spec.members(group.shard).first() == Some(&self.spec.me) {
                group.bootstrap(&self.spec).await;
            }
        }
    }

    /// This node's member of `shard`, if it replicates it.
    pub fn group(&self, shard: usize) -> Option<Arc<Group>> {
        self.groups.get(shard).and_then(Clone::clone)
    }

    /// Every local member.
    pub fn groups(&self) -> impl Iterator<Item = &Arc<Group>> {
        self.groups.iter().flatten()
    }

    /// The leader of `shard` as this node knows it (member id, 0: none).
    pub fn leader_of(&self, shard: usize) -> u64 {
        match self.group(shard) {
            Some(g) => match g.role() {
                Role::Leader | Role::Starting => g.me,
                Role::Follower(l) => l,
                Role::Unknown => 0,
            },
            None => self
                .remote_leaders
                .get(shard)
                .map_or(0, |l| l.load(Ordering::Relaxed)),
        }
    }

    /// The client address of `shard`'s leader, if one is known.
    pub fn leader_addr(&self, shard: usize) -> Option<&str> {
        let leader = self.leader_of(shard);
        let index = usize::try_from(leader).ok()?.checked_sub(1)?;
        self.spec.nodes.get(index).map(|p| p.client.as_str())
    }

    /// For a shard this node does not replicate: asks its members who leads it.
    pub async fn remote_leader(&self, shard: usize, limit: Duration) -> Role {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let known = self.leader_of(shard);
            if known != 0 {
                return Role::Follower(known);
            }
            for member in self.spec.members(shard) {
                let Ok(Answer::Leaders(leaders)) = self
                    .call(ClusterSpec::member_id(member), &Call::Leaders)
                    .await
                else {
                    continue;
                };
                if let (Some(&l), Some(slot)) = (leaders.get(shard), self.remote_leaders.get(shard))
                {
                    if l != 0 {
                        slot.store(l, Ordering::Relaxed);
                        return Role::Follower(l);
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Role::Unknown;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether node `member` (its member id) answered this node's last exchange with it, over
    /// any shard or call, if that was recent (within `CONTACT_WINDOW`): `None` when nothing
    /// recent is known (no traffic with it), and always `Some(true)` for this node itself.
    pub fn reachable(&self, member: u64) -> Option<bool> {
        if member == ClusterSpec::member_id(self.spec.me) {
            return Some(true);
        }
        let index = usize::try_from(member).ok()?.checked_sub(1)?;
        let peer = self.spec.nodes.get(index)?;
        self.contacts.reachable(&peer.bus, CONTACT_WINDOW)
    }

    /// Asks the members of `shard` (one this node does not replicate) who leads it, and
    /// remembers the first leader named; none (no member answered, or none knows a leader)
    /// is remembered as unknown.
    async fn refresh_remote_leader(&self, shard: usize) {
        let mut leader = 0;
        for member in self.spec.members(shard) {
            if let Ok(Answer::Leaders(leaders)) = self
                .call(ClusterSpec::member_id(member), &Call::Leaders)
                .await
            {
                if let Some(&l) = leaders.get(shard).filter(|l| **l != 0) {
                    leader = l;
                    break;
                }
            }
        }
        if let Some(slot) = self.remote_leaders.get(shard) {
            slot.store(leader, Ordering::Relaxed);
        }
    }

    /// Drops a leader that did not answer as one.
    pub fn forget_leader(&self, shard: usize, leader: u64) {
        if let Some(slot) = self.remote_leaders.get(shard) {
            let _ = slot.compare_exchange(leader, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Sends `forward` to member `leader`.
    ///
    /// # Errors
    /// The bus's error, as text.
    pub async fn forward(&self, leader: u64, forward: &Forward) -> Result<Forwarded, CallError> {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let call = Call::Forward(Forward {
            shard: forward.shard,
            commands: forward.commands.clone(),
            protocol: forward.protocol,
            hops: forward.hops + 1,
        });
        match self.call(leader, &call).await? {
            Answer::Forwarded(f) => Ok(f),
            other => Err(CallError::Unknown(format!("unexpected answer {other:?}"))),
        }
    }

    /// One call to member `member`'s bus.
    ///
    /// # Errors
    /// [`CallError::NotSent`] when the call certainly did not reach the peer (it may be
    /// retried elsewhere), [`CallError::Unknown`] when it may have run there.
    pub async fn call(&self, member: u64, call: &Call) -> Result<Answer, CallError> {
        let index = usize::try_from(member)
            .ok()
            .and_then(|m| m.checked_sub(1))
            .ok_or_else(|| CallError::NotSent(format!("no node {member}")))?;
        let peer = self
            .spec
            .nodes
            .get(index)
            .ok_or_else(|| CallError::NotSent(format!("no node {member}")))?;
        let payload = postcard::to_allocvec(call).map_err(|e| CallError::NotSent(e.to_string()))?;
        let answer = self
            .caller
            .call(&peer.bus, payload, CALL_TIMEOUT)
            .await
            .inspect(|_| self.contacts.reached(&peer.bus))
            .map_err(|e| {
                self.contacts.failed(&peer.bus, &e);
                let text = format!("node {member} at {}: {e}", peer.bus);
                match e {
                    BusError::Unreachable { .. } | BusError::Auth | BusError::Tls(_) => {
                        CallError::NotSent(text)
                    }
                    _ => CallError::Unknown(text),
                }
            })?;
        postcard::from_bytes(&answer)
            .map_err(|e| CallError::Unknown(format!("node {member} answered badly: {e}")))
    }
}

/// Keeps the leaders of the shards this node does not replicate (with `--replicas` below the
/// number of nodes) up to date, asking their members every node timeout: CLUSTER INFO and
/// SHARDS answer from what is known (without this, a shard never forwarded to counted as
/// leaderless, so `cluster_state` stayed `fail`), and forwarding starts from a live leader.
/// Ends with the node, or when the cluster is dropped.
async fn follow_remote_leaders(cluster: Weak<Cluster>, shutdown: CancellationToken) {
    loop {
        let Some(c) = cluster.upgrade() else {
            return;
        };
        let period = c.spec.node_timeout;
        for shard in (0..c.spec.shards()).filter(|s| c.group(*s).is_none()) {
            c.refresh_remote_leader(shard).await;
        }
        // Not held while sleeping: the node may drop its cluster meanwhile.
        drop(c);
        // `biased`: a stopping node does not start another round.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}

/// The bus's TLS settings from the node's: the same certificate and key in both directions,
/// peers verified against `--tls-ca` (mutual TLS, as Redis's `tls-cluster`).
fn bus_tls(config: &crate::config::NodeConfig) -> Result<Option<BusTls>, String> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let Some(ca) = &tls.client_ca else {
        return Err(
            "with --cluster and --tls-cert, --tls-ca is needed too: cluster bus peers verify \
             each other's certificates against it"
                .to_string(),
        );
    };
    BusTls::new(tls, ca)
        .map(Some)
        .map_err(|e| format!("cluster bus TLS: {e}"))
}

/// Answers peers' [`Call`]s for `node`.
fn handler(node: Weak<Node>) -> CallHandler {
    Arc::new(move |payload: Vec<u8>| -> BoxFuture<'static, Vec<u8>> {
        let node = node.clone();
        Box::pin(async move {
            let answer = match (postcard::from_bytes::<Call>(&payload), node.upgrade()) {
                (Err(e), _) => Answer::Refused(format!("unreadable call: {e}")),
                (Ok(_), None) => Answer::Refused("node stopping".into()),
                (Ok(call), Some(node)) => admin::answer(&node, call).await,
            };
            // An `Answer` always serialises (plain data).
            postcard::to_allocvec(&answer).unwrap_or_default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Reply;
    use bytes::Bytes;

    #[test]
    fn calls_and_answers_round_trip_through_the_bus_encoding() {
        let call = Call::Forward(Forward {
            shard: 2,
            commands: vec![vec![
                Bytes::from_static(b"SET"),
                Bytes::from(vec![0u8, 255]),
            ]],
            protocol: 3,
            hops: 1,
        });
        let bytes = postcard::to_allocvec(&call).expect("encodes");
        let back: Call = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(format!("{back:?}"), format!("{call:?}"));
        let replies = vec![
            Reply::ok(),
            Reply::Error("ERR x".into()),
            Reply::Int(-3),
            Reply::Bulk(Bytes::from_static(b"\x00\xff")),
            Reply::Nil,
            Reply::NilArray,
            Reply::Array(vec![Reply::Int(1)]),
            Reply::Map(vec![(Reply::text("k"), Reply::Double(1.5))]),
            Reply::Set(vec![Reply::Bool(true)]),
            Reply::Verbatim(Bytes::from_static(b"info")),
        ];
        let answer = Answer::Forwarded(Forwarded::Replies(replies.clone()));
        let bytes = postcard::to_allocvec(&answer).expect("encodes");
        match postcard::from_bytes::<Answer>(&bytes).expect("decodes") {
            Answer::Forwarded(Forwarded::Replies(back)) => assert_eq!(back, replies),
            other => panic!("decoded as {other:?}"),
        }
        assert!(postcard::from_bytes::<Call>(b"\xff\xff\xff").is_err());
    }
}
