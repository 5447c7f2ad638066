//! The cluster bus (issue 10): a TCP transport for openraft's three RPCs (append_entries,
//! vote, install_snapshot) between nodes. [`run`] serves the local groups' `Raft` handles on
//! a listener the caller bound; [`BusNetwork`] is the `RaftNetworkFactory` a group's members
//! use to reach their peers at the `BasicNode { addr }` of the membership.
//!
//! Wire format, both directions: frames of `tokio_util`'s [`LengthDelimitedCodec`] (a 4-byte
//! big-endian length, then that many bytes, at most [`MAX_FRAME_BYTES`]), each holding one
//! JSON-encoded [`Request`] (client to bus) or [`Response`] (bus to client). Every RPC names its
//! group, so one bus serves many groups. With a password, a connection's first frame must be
//! [`Request::Auth`]; the bus answers [`Response::AuthOk`], or closes the connection when the
//! password is wrong or the first frame is anything else. Bytes that are not a frame, a frame
//! over the limit or a frame that is not a request close that connection only.
//!
//! Not yet: TLS (`--tls-*`), compression of frames (snapshots are plain JSON), and the command
//! line (`--bus-port`, `PORT + 10000`); nothing in `server` or `main` reaches this module.
//! It knows sockets and `Raft` handles, never the store or commands.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::types::{NodeId, Raft, TypeConfig};

/// A group's id on the bus (one Raft group per shard, later).
pub type GroupId = u64;

/// What a client sends: the password, or one RPC for one group.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The shared secret; the first frame of a connection when the bus has a password.
    Auth {
        /// The password as given to the client.
        password: String,
    },
    /// openraft's append_entries (heartbeats included).
    AppendEntries {
        /// The target group.
        group: GroupId,
        /// The request.
        rpc: AppendEntriesRequest<TypeConfig>,
    },
    /// openraft's vote.
    Vote {
        /// The target group.
        group: GroupId,
        /// The request.
        rpc: VoteRequest<NodeId>,
    },
    /// openraft's install_snapshot (one chunk).
    InstallSnapshot {
        /// The target group.
        group: GroupId,
        /// The request.
        rpc: InstallSnapshotRequest<TypeConfig>,
    },
}

/// What the bus answers: the password accepted, an RPC's outcome (openraft's error
/// included), or that it serves no such group.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The password matched; RPCs may follow.
    AuthOk,
    /// The outcome of append_entries.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// The outcome of vote.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// The outcome of install_snapshot.
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// This bus has no member of the named group (not started yet, or already stopped).
    UnknownGroup(GroupId),
}

/// The local members a bus serves, by group; clones share the table.
#[derive(Clone, Default)]
pub struct Groups {
    members: Arc<Mutex<BTreeMap<GroupId, Raft>>>,
}

impl std::fmt::Debug for Groups {
    // `Raft` is not `Debug`: show the group ids.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<GroupId> = self.lock().keys().copied().collect();
        f.debug_struct("Groups").field("groups", &ids).finish()
    }
}

impl Groups {
    /// Serves `raft` as the local member of `group` (replacing an earlier handle).
    pub fn add(&self, group: GroupId, raft: Raft) {
        self.lock().insert(group, raft);
    }

    /// Stops serving `group`; returns its handle if it was served.
    pub fn remove(&self, group: GroupId) -> Option<Raft> {
        self.lock().remove(&group)
    }

    /// The local member of `group`, if served.
    pub fn member(&self, group: GroupId) -> Option<Raft> {
        self.lock().get(&group).cloned()
    }

    /// A std mutex held only to clone a handle out: never across an RPC's `.await`.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<GroupId, Raft>> {
        self.members.lock().expect("bus groups lock poisoned")
    }
}

/// Serves the RPCs of `groups` on `listener` until `shutdown` is cancelled; then closes the
/// listener and every connection it accepted, and returns once their tasks have ended. With
/// `password`, each connection must authenticate first (see the module doc).
///
/// Accept errors (out of file descriptors) are logged and retried after a short pause; a
/// connection's errors are logged in its task and end that connection only.
pub async fn run(
    listener: TcpListener,
    groups: Groups,
    password: Option<Arc<str>>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        // `biased`: a cancelled token wins over a pending connection, so a stopped bus
        // accepts nothing more.
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let (groups, password, shutdown) =
                    (groups.clone(), password.clone(), shutdown.clone());
                tracker.spawn(async move {
                    if let Err(e) = serve(socket, groups, password, shutdown).await {
                        tracing::debug!(%peer, error = %e, "cluster bus connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster bus accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// Why the bus closed one connection.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The socket failed, or the peer sent a length over [`MAX_FRAME_BYTES`].
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame was not a JSON request or response (not a minikv peer, or another version).
    #[error("not a cluster bus message: {0}")]
    Decode(#[from] serde_json::Error),
    /// The first frame was not the right password, or did not come within [`AUTH_TIMEOUT`].
    #[error("authentication failed")]
    Auth,
    /// The peer answered something other than what was asked (a bug or another version).
    #[error("unexpected answer on the cluster bus")]
    Unexpected,
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
}

/// One accepted connection: authenticate, then answer requests one at a time until the peer
/// closes, breaks the protocol, or the bus stops.
async fn serve(
    socket: TcpStream,
    groups: Groups,
    password: Option<Arc<str>>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    socket.set_nodelay(true)?;
    let mut framed = Framed::new(socket, codec());
    if let Some(password) = password {
        // A bounded wait: a peer that connects and never authenticates does not hold a task.
        let first =
            tokio::time::timeout(AUTH_TIMEOUT, next_frame::<Request>(&mut framed, &shutdown))
                .await
                .map_err(|_| BusError::Auth)?;
        match first? {
            Some(Request::Auth { password: given }) if password_matches(&password, &given) => {
                send(&mut framed, &Response::AuthOk).await?;
            }
            Some(_) => return Err(BusError::Auth),
            None => return Ok(()),
        }
    }
    while let Some(request) = next_frame::<Request>(&mut framed, &shutdown).await? {
        let response = answer(&groups, request).await;
        send(&mut framed, &response).await?;
    }
    Ok(())
}

/// Runs one request on the local member of its group.
async fn answer(groups: &Groups, request: Request) -> Response {
    match request {
        // Already authenticated (or no password): a repeated Auth is harmless.
        Request::Auth { .. } => Response::AuthOk,
        Request::AppendEntries { group, rpc } => match groups.member(group) {
            Some(raft) => Response::AppendEntries(raft.append_entries(rpc).await),
            None => Response::UnknownGroup(group),
        },
        Request::Vote { group, rpc } => match groups.member(group) {
            Some(raft) => Response::Vote(raft.vote(rpc).await),
            None => Response::UnknownGroup(group),
        },
        Request::InstallSnapshot { group, rpc } => match groups.member(group) {
            Some(raft) => Response::InstallSnapshot(raft.install_snapshot(rpc).await),
            None => Response::UnknownGroup(group),
        },
    }
}

/// The next decoded frame, or `None` when the peer closed or the bus stops.
async fn next_frame<T: for<'de> Deserialize<'de>>(
    framed: &mut Framed<TcpStream, LengthDelimitedCodec>,
    shutdown: &CancellationToken,
) -> Result<Option<T>, BusError> {
    // `biased`: stopping the bus closes idle connections before reading more.
    let frame = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return Ok(None),
        frame = framed.next() => frame,
    };
    match frame {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes?)?)),
        None => Ok(None),
    }
}

/// Encodes `message` as one frame and sends it.
async fn send<T: Serialize>(
    framed: &mut Framed<TcpStream, LengthDelimitedCodec>,
    message: &T,
) -> Result<(), BusError> {
    let bytes = serde_json::to_vec(message)?;
    framed.send(bytes::Bytes::from(bytes)).await?;
    Ok(())
}

/// The bus's framing: 4-byte big-endian length prefix, at most [`MAX_FRAME_BYTES`].
fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// Compares a password with the configured one in constant time, over SHA-256 digests so the
/// time says nothing about the length either (as `cmd::connection` does for AUTH).
fn password_matches(configured: &str, given: &str) -> bool {
    let want = Sha256::digest(configured.as_bytes());
    let got = Sha256::digest(given.as_bytes());
    want.ct_eq(&got).into()
}

/// The `RaftNetworkFactory` of one group's member: it reaches a peer at the address of its
/// `BasicNode`, over one connection per peer address shared by every client it creates, opened
/// on first use and again after any failure. Clones share the connections.
#[derive(Clone)]
pub struct BusNetwork {
    group: GroupId,
    password: Option<Arc<str>>,
    connections: Arc<Mutex<HashMap<String, Link>>>,
}

/// One peer's connection slot: `None` until connected, and again after a failure. A tokio
/// mutex because it is held across the exchange: requests to one peer take turns on its one
/// connection (the bus answers them in order).
type Link = Arc<tokio::sync::Mutex<Option<Framed<TcpStream, LengthDelimitedCodec>>>>;

impl std::fmt::Debug for BusNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusNetwork")
            .field("group", &self.group)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl BusNetwork {
    /// A network for members of `group`, sending `password` first on every connection when
    /// given (it must be the peers' bus password).
    pub fn new(group: GroupId, password: Option<Arc<str>>) -> BusNetwork {
        BusNetwork {
            group,
            password,
            connections: Arc::default(),
        }
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
            link: self.link(&node.addr),
        }
    }
}

/// A member's client to one peer over the bus.
pub struct BusClient {
    target: NodeId,
    group: GroupId,
    addr: String,
    password: Option<Arc<str>>,
    link: Link,
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
                None => self.connect().await.map_err(Failure::Unreachable)?,
            };
            send(&mut framed, request).await.map_err(Failure::Network)?;
            let response = match framed.next().await {
                Some(Ok(bytes)) => serde_json::from_slice::<Response>(&bytes)
                    .map_err(|e| Failure::Network(e.into()))?,
                Some(Err(e)) => return Err(Failure::Network(e.into())),
                None => return Err(Failure::Network(BusError::Closed)),
            };
            *slot = Some(framed);
            Ok(response)
        })
        .await;
        outcome.unwrap_or_else(|_| {
            Err(Failure::Unreachable(BusError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer from {} within {ttl:?}", self.addr),
            ))))
        })
    }

    /// Opens a connection to the peer and authenticates when there is a password.
    async fn connect(&self) -> Result<Framed<TcpStream, LengthDelimitedCodec>, BusError> {
        let socket = TcpStream::connect(&self.addr).await?;
        socket.set_nodelay(true)?;
        let mut framed = Framed::new(socket, codec());
        if let Some(password) = &self.password {
            let auth = Request::Auth {
                password: password.to_string(),
            };
            send(&mut framed, &auth).await?;
            match framed.next().await {
                Some(bytes) => match serde_json::from_slice(&bytes?)? {
                    Response::AuthOk => {}
                    _ => return Err(BusError::Unexpected),
                },
                // The bus closes the connection on a wrong password.
                None => return Err(BusError::Auth),
            }
        }
        Ok(framed)
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
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let request = Request::AppendEntries {
            group: self.group,
            rpc,
        };
        match self.exchange(&request, option.hard_ttl()).await {
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

/// The largest frame either side accepts (16 MiB); a longer length prefix closes the
/// connection before its bytes are read. openraft's snapshot chunks (3 MiB by default,
/// `Config::snapshot_max_chunk_size`) are about 12 MiB once JSON writes their bytes as
/// numbers; appends (`Config::max_payload_entries`) must stay below it too, or the peer refuses
/// them on every retry.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// How long an accepted connection may take to send its password before it is closed.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use super::*;

    #[test]
    fn a_length_over_the_limit_is_an_error_before_the_body_arrives() {
        let length = u32::try_from(MAX_FRAME_BYTES + 1).expect("limit fits a u32");
        let mut buf = BytesMut::from(&length.to_be_bytes()[..]);
        assert!(codec().decode(&mut buf).is_err());
    }

    #[test]
    fn a_frame_that_is_not_a_request_is_a_decode_error_not_a_panic() {
        for bytes in [
            &b"hello"[..],
            b"{}",
            b"{\"Vote\":{\"group\":1}}",
            b"\xff\xfe",
        ] {
            assert!(serde_json::from_slice::<Request>(bytes).is_err());
        }
    }

    #[test]
    fn passwords_match_only_when_equal() {
        assert!(password_matches("secret", "secret"));
        assert!(!password_matches("secret", "secreT"));
        assert!(!password_matches("secret", "secret "));
        assert!(!password_matches("secret", ""));
    }
}
