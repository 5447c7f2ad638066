//! The bus's client side for openraft: [`BusNetwork`], the `RaftNetworkFactory` of a group's
//! member, and [`BusClient`], its `RaftNetwork` to one peer; and [`connect`], how any client of
//! the bus (this one and `BusCaller`) opens an authenticated connection, plain or TLS. It never
//! serves requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Entry};
use tokio::net::TcpStream;

use super::wire::{self, Connection, Io};
use super::{BusError, BusTls, Contacts, GroupId, Request, Response};
use crate::replication::log::entry_bytes;
use crate::replication::types::{NodeId, TypeConfig};

/// The `RaftNetworkFactory` of one group's member: it reaches a peer at the address of its
/// `BasicNode`, over one connection per peer address shared by every client it creates, opened
/// on first use and again after any failure. Clones share the connections.
#[derive(Clone)]
pub struct BusNetwork {
    group: GroupId,
    password: Option<Arc<str>>,
    tls: Option<BusTls>,
    connections: Arc<Mutex<HashMap<String, Link>>>,
    contacts: Contacts,
}

/// One peer's connection slot: `None` until connected, and again after a failure. A tokio
/// mutex because it is held across the exchange: requests to one peer take turns on its one
/// connection (the bus answers them in order).
type Link = Arc<tokio::sync::Mutex<Option<Connection>>>;

impl std::fmt::Debug for BusNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusNetwork")
            .field("group", &self.group)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl BusNetwork {
    /// A network for members of `group`, sending `password` first on every connection when
    /// given (it must be the peers' bus password), over TLS when `tls` is given (the peers'
    /// buses must serve TLS then, and plain TCP otherwise).
    pub fn new(group: GroupId, password: Option<Arc<str>>, tls: Option<BusTls>) -> BusNetwork {
        BusNetwork {
            group,
            password,
            tls,
            connections: Arc::default(),
            contacts: Contacts::default(),
        }
    }

    /// Records the outcome of every exchange in `contacts` (shared with the node's other
    /// networks) instead of a table of its own.
    pub fn contacts(mut self, contacts: Contacts) -> BusNetwork {
        self.contacts = contacts;
        self
    }

    /// The shared slot for `addr`.
    fn link(&self, addr: &str) -> Link {
        // A std mutex held only to look up or insert a slot, never across an `.await`.
        let mut connections = self.connections.lock().expect("bus links lock poisoned");
        connections.entry(addr.to_string()).or_default().clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for BusNetwork {
    type Network = BusClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> BusClient {
        BusClient {
            target,
            group: self.group,
            addr: node.addr.clone(),
            password: self.password.clone(),
            tls: self.tls.clone(),
            link: self.link(&node.addr),
            contacts: self.contacts.clone(),
        }
    }
}

/// A member's client to one peer over the bus.
pub struct BusClient {
    target: NodeId,
    group: GroupId,
    addr: String,
    password: Option<Arc<str>>,
    tls: Option<BusTls>,
    link: Link,
    contacts: Contacts,
}

impl std::fmt::Debug for BusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusClient")
            .field("target", &self.target)
            .field("group", &self.group)
            .field("addr", &self.addr)
            .finish()
    }
}

/// How an exchange failed, before it becomes openraft's error.
enum Failure {
    /// No connection could be made (refused, no route, refused password, timed out).
    Unreachable(BusError),
    /// The connection broke during the exchange, or the answer made no sense.
    Network(BusError),
}

impl BusClient {
    /// Sends `request` and returns the answer, within `ttl` (waiting for the peer's connection
    /// while another request uses it included). Connects (and authenticates) first if there is
    /// no connection. The connection is taken out of its slot for the exchange and put back
    /// only after a complete answer: when the exchange fails, times out, or this future is
    /// dropped midway (openraft cancels RPCs), the connection is dropped with it, so a late
    /// answer can never be taken for the next request's.
    async fn exchange(&self, request: &Request, ttl: Duration) -> Result<Response, Failure> {
        let outcome = tokio::time::timeout(ttl, async {
            let mut slot = self.link.lock().await;
            let mut framed = match slot.take() {
                Some(framed) => framed,
                None => connect(&self.addr, self.password.as_deref(), self.tls.as_ref())
                    .await
                    .map_err(Failure::Unreachable)?,
            };
            wire::send(&mut framed, request)
                .await
                .map_err(Failure::Network)?;
            let response = match wire::receive::<Response>(&mut framed).await {
                Ok(Some(response)) => response,
                Ok(None) => return Err(Failure::Network(BusError::Closed)),
                Err(e) => return Err(Failure::Network(e)),
            };
            *slot = Some(framed);
            Ok(response)
        })
        .await;
        let outcome = outcome.unwrap_or_else(|_| {
            Err(Failure::Unreachable(BusError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer from {} within {ttl:?}", self.addr),
            ))))
        });
        match &outcome {
            Ok(_) => self.contacts.reached(&self.addr),
            Err(Failure::Unreachable(e) | Failure::Network(e)) => {
                self.contacts.failed(&self.addr, e);
            }
        }
        outcome
    }

    /// The RPC error for a failed exchange or an answer of the wrong kind.
    fn failed<E: std::error::Error>(
        &self,
        failure: Failure,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        match failure {
            Failure::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            Failure::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }

    /// The RPC error for an answer that is not the one asked for (unknown group included:
    /// the peer's member is not up yet, so openraft backs off and retries).
    fn unexpected<E: std::error::Error>(
        &self,
        response: Response,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        match response {
            Response::UnknownGroup(_) => {
                let cause = std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} serves no member of group {}", self.addr, self.group),
                );
                RPCError::Unreachable(Unreachable::new(&cause))
            }
            _ => RPCError::Network(NetworkError::new(&BusError::Unexpected)),
        }
    }

    /// Wraps the target's own error as a remote one.
    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for BusClient {
    /// Sends at most `APPEND_BYTES` of entries (and at least one): openraft allows an
    /// append its heartbeat interval, and the follower must receive and log the entries
    /// within it, so a batch of large values would time out on every retry and the follower
    /// would never catch up. The rest follows in the next call (`PartialSuccess`).
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let cut = append_prefix(&rpc.entries, APPEND_BYTES);
        let partial = (cut < rpc.entries.len()).then(|| {
            rpc.entries.truncate(cut);
            rpc.entries.last().map(|e| e.log_id)
        });
        let request = Request::AppendEntries {
            group: self.group,
            rpc,
        };
        match self.exchange(&request, option.hard_ttl()).await {
            Ok(Response::AppendEntries(Ok(AppendEntriesResponse::Success))) => Ok(match partial {
                Some(matching) => AppendEntriesResponse::PartialSuccess(matching),
                None => AppendEntriesResponse::Success,
            }),
            Ok(Response::AppendEntries(answer)) => answer.map_err(|e| self.remote(e)),
            Ok(other) => Err(self.unexpected(other)),
            Err(failure) => Err(self.failed(failure)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let request = Request::InstallSnapshot {
            group: self.group,
            rpc,
        };
        match self.exchange(&request, option.hard_ttl()).await {
            Ok(Response::InstallSnapshot(answer)) => answer.map_err(|e| self.remote(e)),
            Ok(other) => Err(self.unexpected(other)),
            Err(failure) => Err(self.failed(failure)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let request = Request::Vote {
            group: self.group,
            rpc,
        };
        match self.exchange(&request, option.hard_ttl()).await {
            Ok(Response::Vote(answer)) => answer.map_err(|e| self.remote(e)),
            Ok(other) => Err(self.unexpected(other)),
            Err(failure) => Err(self.failed(failure)),
        }
    }
}

/// The most entry bytes (as `entry_bytes` weighs them) one append sends, unless its first
/// entry alone is larger.
pub const APPEND_BYTES: u64 = 256 * 1024;

/// How many of `entries`, from the first, fit in `budget` bytes (at least one).
fn append_prefix(entries: &[Entry<TypeConfig>], budget: u64) -> usize {
    let mut total = 0u64;
    for (i, entry) in entries.iter().enumerate() {
        total += entry_bytes(entry);
        if total > budget && i > 0 {
            return i;
        }
    }
    entries.len()
}

/// Opens a connection to the bus at `addr`: TCP, the TLS handshake when `tls` is given, and
/// the password when one is given (answered by [`Response::AuthOk`]).
///
/// # Errors
/// The connection or handshake failed ([`BusError::Io`], [`BusError::Tls`] for an address that
/// cannot name a certificate), the bus refused the password ([`BusError::Auth`]: it closes the
/// connection) or answered something else.
pub(super) async fn connect(
    addr: &str,
    password: Option<&str>,
    tls: Option<&BusTls>,
) -> Result<Connection, BusError> {
    let socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let stream: Box<dyn Io> = match tls {
        Some(tls) => tls.connect(addr, socket).await?,
        None => Box::new(socket),
    };
    let mut framed = wire::framed(stream);
    if let Some(password) = password {
        let auth = Request::Auth {
            password: password.to_string(),
        };
        wire::send(&mut framed, &auth).await?;
        match wire::receive(&mut framed).await {
            Ok(Some(Response::AuthOk)) => {}
            Ok(Some(_)) => return Err(BusError::Unexpected),
            // The bus closes the connection on a wrong password.
            Ok(None) => return Err(BusError::Auth),
            Err(e) => return Err(e),
        }
    }
    Ok(framed)
}
