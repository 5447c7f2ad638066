//! The replicated cluster (issue 10), switched on by `--cluster`: every shard is a Raft group
//! (openraft, see [`crate::replication`]) replicated on `--replicas` nodes, any node takes any
//! command and runs it on the leader of its keys' shard, and a write is acknowledged only once
//! a majority of the shard's members have it.
//!
//! Slots (issue 11): keys map to [`SLOTS`](crate::client::router::SLOTS) slots by MD5, and
//! slots to shards through the cluster's [`Table`], kept by the *meta group*, a Raft group of
//! every node; slots move between shards online ([`migrate`]), nodes join and leave
//! ([`membership`]).
//!
//! Rooms: [`spec`] reads the command line (addresses, placement), [`table`] is the cluster's
//! table, [`group`] is this node's member of one group (proposer, leadership, lease,
//! rebuild), [`route`] decides where each request runs and forwards it, [`migrate`] moves
//! slots, [`membership`] starts and stops local members and changes groups' members, and
//! [`admin`] answers what concerns the cluster as a whole (CLUSTER INFO/SHARDS/SLOTS/MYID,
//! INFO replication, FLUSHALL, SAVE), [`publish`] carries PUBLISH to the other nodes. The bus ([`crate::replication::bus`]) carries Raft's
//! RPCs, the forwarded requests and the calls between nodes.

pub mod admin;
pub mod group;
pub mod membership;
pub mod meta;
pub mod migrate;
pub mod operate;
pub mod publish;
pub mod route;
pub mod spec;
pub mod table;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use group::{Group, Role};
pub use spec::{ClusterSpec, Peer, SpecError};
pub use table::{Move, Table};

use crate::effect::{Effect, SlotControl};
use crate::node::Node;
use crate::replication::bus::{self, BusCaller, BusError, BusTls, CallHandler, Contacts};
use crate::replication::slots::Slots;
use crate::replication::{Batch, BusNetwork, Groups, Scope};
use crate::store::Store;
use route::{Forward, Forwarded};

/// How long one bus call may take before the caller treats the peer as gone.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a slot move (one `CLUSTER MOVESLOTS` batch) may take.
pub const MOVE_TIMEOUT: Duration = Duration::from_secs(120);

/// How recent the last exchange with a peer must be to say whether it is up: leaders send
/// heartbeats every fraction of the node timeout, and retry unreachable peers about every
/// half second, so anything older means no traffic with it (nothing to go by).
const CONTACT_WINDOW: Duration = Duration::from_secs(5);

/// The meta group's bus id (shard ids are below it).
pub const META: usize = 1 << 16;

/// What nodes ask each other over the bus besides Raft's own RPCs.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    /// Run commands on the leader of a shard.
    Forward(Forward),
    /// Which member leads each shard (and the meta group, as [`META`]), as this node knows
    /// it (member id, 0: none).
    Leaders,
    /// Remove every key of a shard (FLUSHALL/FLUSHDB on the cluster), on its leader.
    Flush(usize),
    /// The table as this node has it.
    Table,
    /// Change the table, on the meta group's leader.
    ChangeTable(table::Change),
    /// Append a slot change to a shard's log, on its leader.
    Control(usize, SlotControl),
    /// Append copied keys (a zstd-compressed postcard list of effects) of move `id` to a
    /// shard's log, on its leader.
    Import(usize, u64, Vec<u8>),
    /// Whether a shard still imports these slots, on its leader (before a move commits).
    Importing(usize, Vec<u16>),
    /// Move slots from one shard to another, on the source's leader.
    Move(Move),
    /// Make a shard's Raft members match the table, on its leader.
    Reconfigure(usize),
    /// Messages published on another node, `(channel, message)` in order, for this node's
    /// subscribers (best effort: see [`publish`]).
    Publish(Vec<(bytes::Bytes, bytes::Bytes)>),
}

/// The answer to a [`Call`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    /// For [`Call::Forward`].
    Forwarded(Forwarded),
    /// For [`Call::Leaders`]: per shard.
    Leaders(Vec<(usize, u64)>),
    /// For [`Call::Flush`]: keys removed, or the leader to ask instead (`Err`).
    Flushed(Result<u64, u64>),
    /// For [`Call::Table`] and [`Call::ChangeTable`]: the table's encoding.
    Table(Vec<u8>),
    /// For [`Call::Move`]: what moved.
    Moved(migrate::MoveStats),
    /// Done ([`Call::Control`], [`Call::Import`], [`Call::Reconfigure`]).
    Done,
    /// This node does not lead the group; the leader it knows of (0: none). Nothing ran.
    NotLeader(u64),
    /// The call was understood but failed; the text says why (a `-ERR` or `-TRYAGAIN`).
    Failed(String),
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
    /// The cluster's shape as the command line gave it (this node, timeouts).
    pub spec: ClusterSpec,
    /// This node's member id.
    pub me: u64,
    groups: RwLock<BTreeMap<usize, Arc<Group>>>,
    meta: Arc<Group>,
    meta_store: Arc<Store>,
    table: RwLock<Arc<Table>>,
    /// Woken whenever the table changes.
    pub table_changed: Notify,
    /// Which group's copy of each slot the node's store holds.
    pub slots: Arc<Slots>,
    caller: BusCaller,
    /// For shards this node does not replicate: the leader as last learned.
    remote_leaders: Mutex<HashMap<usize, u64>>,
    /// Requests forwarded to other nodes (INFO).
    pub forwarded: AtomicU64,
    /// The bus address actually bound.
    pub bus_addr: std::net::SocketAddr,
    /// How the last exchange with each peer went, over any shard's traffic or a call.
    contacts: Contacts,
    /// What starting another local member needs.
    kit: Kit,
    /// Serialises table changes on the meta group's leader (compare-and-set).
    table_lock: tokio::sync::Mutex<()>,
    /// Moves this node drives, by id, and the moves in the table first seen when.
    pub(crate) moves: Mutex<(HashSet<u64>, HashMap<u64, tokio::time::Instant>)>,
    /// Forwarders of published messages to the other nodes.
    fanout: publish::Fanout,
}

/// What starting a local member needs.
struct Kit {
    store: Arc<Store>,
    dir: PathBuf,
    password: Option<Arc<str>>,
    tls: Option<BusTls>,
    groups: Groups,
    /// `memory::Budget::logs` of the node.
    logs: Arc<crate::memory::Logs>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("me", &self.me)
            .field("groups", &self.groups)
            .finish()
    }
}

impl Cluster {
    /// Binds the cluster bus, serves it, starts the meta group and this node's member of
    /// every shard it replicates (bootstrapping the groups it is home of, on a fresh data
    /// directory). `joined` is the table a node that just joined got back (`--join`).
    ///
    /// # Errors
    /// A message naming the bus address or the group that could not start.
    pub async fn start(
        node: &Arc<Node>,
        spec: ClusterSpec,
        joined: Option<Table>,
    ) -> Result<Arc<Cluster>, String> {
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
        let me = ClusterSpec::member_id(spec.me);
        let dir = node.config.data_dir.join(format!("raft-node{me}"));
        let contacts = Contacts::default();
        let meta_store = Arc::new(Store::new(1, 1));
        let meta = Group::start(
            group::Setup {
                shard: META,
                me,
                node_timeout: spec.node_timeout,
                scope: Scope::all(),
                store: meta_store.clone(),
                dir: dir.join("meta"),
                logs: node.memory.logs(),
            },
            BusNetwork::new(META as u64, password.clone(), tls.clone()).contacts(contacts.clone()),
            groups.clone(),
        )
        .await?;
        let mut table = Table::genesis(&spec);
        for candidate in [joined, table::load(&dir), meta::stored_table(&meta_store)]
            .into_iter()
            .flatten()
        {
            if candidate.epoch >= table.epoch {
                table = candidate;
            }
        }
        let cluster = Arc::new(Cluster {
            me,
            caller: BusCaller::new(password.clone(), tls.clone()),
            spec,
            groups: RwLock::default(),
            meta,
            meta_store,
            table: RwLock::new(Arc::new(table)),
            table_changed: Notify::new(),
            slots: Slots::new(node.store.clone()),
            remote_leaders: Mutex::default(),
            forwarded: AtomicU64::new(0),
            bus_addr: bound,
            contacts,
            kit: Kit {
                store: node.store.clone(),
                dir,
                password,
                tls,
                groups,
                logs: node.memory.logs(),
            },
            table_lock: tokio::sync::Mutex::new(()),
            moves: Mutex::default(),
            fanout: publish::Fanout::default(),
        });
        cluster.bootstrap_meta().await;
        membership::start_members(&cluster).await?;
        tokio::spawn(meta::watch_table(
            Arc::downgrade(&cluster),
            node.shutdown.clone(),
        ));
        tokio::spawn(membership::run(
            Arc::downgrade(&cluster),
            node.shutdown.clone(),
        ));
        tokio::spawn(follow_remote_leaders(
            Arc::downgrade(&cluster),
            node.shutdown.clone(),
        ));
        Ok(cluster)
    }

    /// Bootstraps the meta group on a fresh cluster: its voters are the nodes the cluster
    /// started with, and the first of them initialises it when no peer knows a leader.
    async fn bootstrap_meta(&self) {
        if !self.meta.pristine().await {
            return;
        }
        let table = self.table();
        if table.epoch > 0
            || !table.nodes.contains_key(&self.me)
            || self.spec.nodes.len() <= self.spec.me
        {
            return;
        }
        let mut known = false;
        for member in table.nodes.keys().filter(|m| **m != self.me) {
            if let Ok(Answer::Leaders(leaders)) = self.call(*member, &Call::Leaders).await {
                known |= leaders.iter().any(|(s, l)| *s == META && *l != 0);
            }
        }
        if known {
            self.meta.abstain_until_caught_up();
        } else if table.nodes.keys().next() == Some(&self.me) {
            let voters: BTreeMap<u64, BasicNode> = table
                .nodes
                .iter()
                .map(|(id, p)| (*id, BasicNode::new(p.bus.clone())))
                .collect();
            self.meta.bootstrap(voters).await;
        }
    }

    /// The table as this node knows it.
    pub fn table(&self) -> Arc<Table> {
        self.table
            .read()
            .expect("cluster table lock poisoned")
            .clone()
    }

    /// Takes `table` if it is newer than the one held (persisting it); true when it was.
    pub fn offer_table(&self, table: Table) -> bool {
        {
            let mut held = self.table.write().expect("cluster table lock poisoned");
            if !table.supersedes(&held) {
                return false;
            }
            *held = Arc::new(table.clone());
        }
        if let Err(e) = table::save(&self.kit.dir, &table) {
            tracing::warn!("keeping the cluster table on disk: {e}");
        }
        self.table_changed.notify_waiters();
        true
    }

    /// The meta group's local member.
    pub fn meta(&self) -> &Arc<Group> {
        &self.meta
    }

    /// This node's member of `shard`, if it replicates it.
    pub fn group(&self, shard: usize) -> Option<Arc<Group>> {
        self.groups
            .read()
            .expect("cluster groups lock poisoned")
            .get(&shard)
            .cloned()
    }

    /// Every local member of a shard.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .expect("cluster groups lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// The leader of `shard` (or [`META`]) as this node knows it (member id, 0: none).
    pub fn leader_of(&self, shard: usize) -> u64 {
        let local = if shard == META {
            Some(self.meta.clone())
        } else {
            self.group(shard)
        };
        match local {
            Some(g) => match g.role() {
                Role::Leader | Role::Starting => g.me,
                Role::Follower(l) => l,
                Role::Unknown => 0,
            },
            None => self
                .remote_leaders
                .lock()
                .expect("remote leaders lock poisoned")
                .get(&shard)
                .copied()
                .unwrap_or(0),
        }
    }

    /// The client address of `shard`'s leader, if one is known.
    pub fn leader_addr(&self, shard: usize) -> Option<String> {
        let leader = self.leader_of(shard);
        self.table().peer(leader).map(|p| p.client.clone())
    }

    /// For a shard this node does not replicate: asks its members who leads it.
    pub async fn remote_leader(&self, shard: usize, limit: Duration) -> Role {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let known = self.leader_of(shard);
            if known != 0 {
                return Role::Follower(known);
            }
            self.refresh_remote_leader(shard).await;
            if self.leader_of(shard) != 0 {
                continue;
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
        if member == self.me {
            return Some(true);
        }
        let table = self.table();
        let peer = table.peer(member)?;
        self.contacts.reachable(&peer.bus, CONTACT_WINDOW)
    }

    /// Asks the members of `shard` (one this node does not replicate, or [`META`]) who leads
    /// it, and remembers the first leader named; none is remembered as unknown.
    async fn refresh_remote_leader(&self, shard: usize) {
        let table = self.table();
        let members: Vec<u64> = if shard == META {
            table.nodes.keys().copied().collect()
        } else {
            table.members(shard).to_vec()
        };
        let mut leader = 0;
        for member in members.into_iter().filter(|m| *m != self.me) {
            if let Ok(Answer::Leaders(leaders)) = self.call(member, &Call::Leaders).await {
                if let Some((_, l)) = leaders.iter().find(|(s, l)| *s == shard && *l != 0) {
                    leader = *l;
                    break;
                }
            }
        }
        self.remote_leaders
            .lock()
            .expect("remote leaders lock poisoned")
            .insert(shard, leader);
    }

    /// Drops a leader that did not answer as one.
    pub fn forget_leader(&self, shard: usize, leader: u64) {
        let mut known = self
            .remote_leaders
            .lock()
            .expect("remote leaders lock poisoned");
        if known.get(&shard) == Some(&leader) {
            known.insert(shard, 0);
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
        self.call_within(member, call, CALL_TIMEOUT).await
    }

    /// [`Cluster::call`] with its own time limit.
    ///
    /// # Errors
    /// As [`Cluster::call`].
    pub async fn call_within(
        &self,
        member: u64,
        call: &Call,
        limit: Duration,
    ) -> Result<Answer, CallError> {
        let table = self.table();
        let peer = table
            .peer(member)
            .ok_or_else(|| CallError::NotSent(format!("no node {member}")))?;
        let payload = postcard::to_allocvec(call).map_err(|e| CallError::NotSent(e.to_string()))?;
        let answer = self
            .caller
            .call(&peer.bus, payload, limit)
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

    /// Calls the leader of `shard` (or [`META`]), following one change of leader: the answer
    /// it gave, or the error text.
    ///
    /// # Errors
    /// A `TRYAGAIN` text when no leader answered.
    pub async fn call_leader(
        &self,
        shard: usize,
        call: &Call,
        limit: Duration,
    ) -> Result<Answer, String> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = String::from("no leader known");
        while tokio::time::Instant::now() < deadline {
            let mut leader = self.leader_of(shard);
            if leader == 0 {
                self.refresh_remote_leader(shard).await;
                leader = self.leader_of(shard);
            }
            if leader == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            match self.call_within(leader, call, limit).await {
                Ok(Answer::NotLeader(other)) => {
                    self.forget_leader(shard, leader);
                    last = format!("node {leader} no longer leads (leader: {other})");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(answer) => return Ok(answer),
                Err(CallError::NotSent(e)) => {
                    self.forget_leader(shard, leader);
                    last = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(CallError::Unknown(e)) => return Err(format!("TRYAGAIN {e}")),
            }
        }
        Err(format!("TRYAGAIN group {}: {last}", shard + 1))
    }

    /// Appends `effects` to `shard`'s log on its local leader (not speculatively: every
    /// member, this one included, applies them when they commit).
    ///
    /// # Errors
    /// `None` when this node does not lead the shard; the failure's text otherwise.
    pub(crate) async fn append_here(
        &self,
        shard: usize,
        effects: Vec<Effect>,
    ) -> Result<(), Option<String>> {
        let group = self.group(shard).ok_or(None)?;
        if group.role() != Role::Leader {
            return Err(None);
        }
        group
            .raft()
            .client_write(Batch::of(effects))
            .await
            .map(|_| ())
            .map_err(|e| Some(format!("TRYAGAIN shard {}: {e}", shard + 1)))
    }

    /// Adds a started member to the node's groups.
    fn add_group(&self, group: Arc<Group>) {
        self.groups
            .write()
            .expect("cluster groups lock poisoned")
            .insert(group.shard, group);
    }

    /// Removes a local member from the node's groups.
    fn remove_group(&self, shard: usize) -> Option<Arc<Group>> {
        self.groups
            .write()
            .expect("cluster groups lock poisoned")
            .remove(&shard)
    }
}

/// Keeps the leaders of the shards this node does not replicate (and of the meta group, when
/// it does not lead it) up to date, asking their members every node timeout: CLUSTER INFO and
/// SHARDS answer from what is known, and forwarding starts from a live leader. Ends with the
/// node, or when the cluster is dropped.
async fn follow_remote_leaders(cluster: Weak<Cluster>, shutdown: CancellationToken) {
    loop {
        let Some(c) = cluster.upgrade() else {
            return;
        };
        let period = c.spec.node_timeout;
        let table = c.table();
        for shard in table.shards.keys().filter(|s| c.group(**s).is_none()) {
            c.refresh_remote_leader(*shard).await;
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
