//! The cluster bus (issue 10): the transport between nodes. It carries openraft's three RPCs
//! (append_entries, vote, install_snapshot) for any number of groups, and calls of the node
//! layer (forwarding a command to a shard's leader, asking a peer for its status).
//!
//! - [`run`] serves, on a listener the caller bound, the local groups' `Raft` handles and an
//!   optional [`CallHandler`] for [`Request::Call`].
//! - [`BusNetwork`] is the `RaftNetworkFactory` a group's members use to reach their peers at
//!   the `BasicNode { addr }` of the membership (one connection per peer, requests take turns).
//! - [`BusCaller`] makes calls: a small pool of connections per peer, so calls in flight to
//!   one peer never wait behind each other.
//! - [`BusTls`] puts all of it over mutual TLS (Redis's `tls-cluster yes`): with it the bus
//!   accepts only TLS and verifies every peer's certificate against the cluster's CA, and its
//!   clients verify the bus's. Without it, plain TCP.
//!
//! Wire format, both directions ([`wire`]): frames of `tokio_util`'s [`LengthDelimitedCodec`]
//! (a 4-byte big-endian length, then that many bytes, at most [`MAX_FRAME_BYTES`]), each
//! holding a tag byte and one `postcard`-encoded [`Request`] (client to bus) or [`Response`]
//! (bus to client). Every RPC names its group, so one bus serves many groups. A connection
//! carries one request at a time: the bus answers each before reading the next. With a
//! password, a connection's first frame must be [`Request::Auth`]; the bus answers
//! [`Response::AuthOk`], or closes the connection when the password is wrong or the first frame
//! is anything else. A failed TLS handshake, bytes that are not a frame, a frame over the limit
//! or a frame that is not a request close that connection only; nothing a peer sends panics the
//! node.
//!
//! Not yet: compression of frames, a connection limit, and the command line (`--bus-port`,
//! `PORT + 10000`); nothing in `server` or `main` reaches this module. It knows sockets,
//! `Raft` handles and bytes, never the store or commands.
//!
//! [`LengthDelimitedCodec`]: tokio_util::codec::LengthDelimitedCodec

mod call;
mod client;
mod contacts;
mod tls;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use call::{BusCaller, CallHandler, MAX_IDLE_PER_PEER};
pub use client::{BusClient, BusNetwork};
pub use contacts::Contacts;
pub use tls::BusTls;

use super::types::{NodeId, Raft, TypeConfig};
use wire::{Connection, Io};

/// A group's id on the bus (one Raft group per shard, later).
pub type GroupId = u64;

/// What a client sends: the password, one RPC for one group, or a call.
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
    /// A call for the node layer, answered by the bus's [`CallHandler`]: bytes in, bytes out;
    /// what they mean is the caller's and the handler's business.
    Call {
        /// The call's bytes, given to the handler as they are.
        payload: Vec<u8>,
    },
}

/// What the bus answers: the password accepted, an RPC's outcome (openraft's error
/// included), that it serves no such group, or a call's answer.
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
    /// What the bus's [`CallHandler`] answered to a [`Request::Call`].
    Call(Vec<u8>),
    /// This bus has no [`CallHandler`]: it serves openraft's RPCs only.
    NoCallHandler,
}

/// The local members a bus serves, by group; clones share the table.
#[derive(Clone, Default)]
pub struct Groups {
    members: Arc<Mutex<BTreeMap<GroupId, Raft>>>,
    /// Groups whose local member must not vote yet (see [`Groups::abstain`]).
    abstaining: Arc<Mutex<std::collections::BTreeSet<GroupId>>>,
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

    /// Makes the local member of `group` ignore vote requests (`true`) or answer them again
    /// (`false`). A member that lost its disk has forgotten the entries it acknowledged and
    /// the vote it gave: voting before it has caught up could elect a leader that lacks an
    /// acknowledged write, so until then it answers votes as if it were down.
    pub fn abstain(&self, group: GroupId, abstain: bool) {
        let mut set = self.abstaining.lock().expect("bus abstain lock poisoned");
        if abstain {
            set.insert(group);
        } else {
            set.remove(&group);
        }
    }

    /// Whether the local member of `group` ignores vote requests.
    pub fn abstains(&self, group: GroupId) -> bool {
        self.abstaining
            .lock()
            .expect("bus abstain lock poisoned")
            .contains(&group)
    }

    /// A std mutex held only to clone a handle out: never across an RPC's `.await`.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<GroupId, Raft>> {
        self.members.lock().expect("bus groups lock poisoned")
    }
}

/// Serves the RPCs of `groups`, and calls with `handler`, on `listener` until `shutdown` is
/// cancelled; then closes the listener and every connection it accepted, and returns once their
/// tasks have ended (a request being answered is dropped, its connection closed unanswered).
/// With `password`, each connection must authenticate first; with `tls`, each connection must
/// complete a TLS handshake first, presenting a certificate the CA of `tls` signed (see the
/// module doc). Without `handler`, calls are answered [`Response::NoCallHandler`].
///
/// Accept errors (out of file descriptors) are logged and retried after a short pause; a
/// connection's errors are logged in its task and end that connection only.
pub async fn run(
    listener: TcpListener,
    groups: Groups,
    password: Option<Arc<str>>,
    tls: Option<BusTls>,
    handler: Option<CallHandler>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let served = Served {
        groups,
        password,
        tls,
        handler,
        shutdown,
    };
    loop {
        // `biased`: a cancelled token wins over a pending connection, so a stopped bus
        // accepts nothing more.
        let accepted = tokio::select! {
            biased;
            _ = served.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let served = served.clone();
                tracker.spawn(async move {
                    if let Err(e) = serve(socket, &served).await {
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

/// An error on the cluster bus: why a connection was closed (either side), or why a call
/// failed ([`BusCaller::call`]: the variants with an `addr`).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The socket failed, the TLS handshake failed (an untrusted certificate, a plain TCP peer
    /// of a TLS bus or the reverse), or the peer sent a length over [`MAX_FRAME_BYTES`].
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame's body was not one whole message of the kind its tag says (not a minikv peer,
    /// or another version).
    #[error("not a cluster bus message: {0}")]
    Decode(#[from] postcard::Error),
    /// A frame's first byte was not the tag of the message expected there: a response where a
    /// request belongs or the reverse, another format (JSON frames start with `{`), or another
    /// protocol; `found` is `None` for an empty frame.
    #[error("not a cluster bus {expected}: first byte {found:?}")]
    Tag {
        /// What the reader expected: "request" or "response".
        expected: &'static str,
        /// The first byte of the frame.
        found: Option<u8>,
    },
    /// A message could not be encoded (a value serde refuses; never one of the bus's types).
    #[error("cannot encode a cluster bus message: {0}")]
    Encode(postcard::Error),
    /// A peer address cannot name a TLS certificate.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The first frame was not the right password, or did not come within [`AUTH_TIMEOUT`].
    #[error("authentication failed")]
    Auth,
    /// The peer answered something other than what was asked (a bug or another version).
    #[error("unexpected answer on the cluster bus")]
    Unexpected,
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// No connection to `addr` could be opened and authenticated within the call's time: the
    /// call was not sent, so the peer did not run it.
    #[error("cluster bus at {addr} unreachable: {source}")]
    Unreachable {
        /// The peer's bus address.
        addr: String,
        /// What failed: connect, TLS, password, or a timeout.
        source: Box<BusError>,
    },
    /// The call was sent to `addr` but the connection broke before the answer came: the peer
    /// may or may not have run it.
    #[error("call to the cluster bus at {addr} lost: {source}")]
    Lost {
        /// The peer's bus address.
        addr: String,
        /// What failed.
        source: Box<BusError>,
    },
    /// The call was sent to `addr` and no answer came within `after`: the peer may or may not
    /// have run it (or may still be running it).
    #[error("no answer from the cluster bus at {addr} within {after:?}")]
    Timeout {
        /// The peer's bus address.
        addr: String,
        /// The call's timeout.
        after: Duration,
    },
    /// The bus at `addr` serves openraft only: it was started without a [`CallHandler`].
    #[error("the cluster bus at {addr} has no call handler")]
    NoCallHandler {
        /// The peer's bus address.
        addr: String,
    },
}

/// What each connection of one [`run`] shares.
#[derive(Clone)]
struct Served {
    groups: Groups,
    password: Option<Arc<str>>,
    tls: Option<BusTls>,
    handler: Option<CallHandler>,
    shutdown: CancellationToken,
}

/// One accepted connection: the TLS handshake and the password, then requests answered one at
/// a time until the peer closes, breaks the protocol, or the bus stops.
async fn serve(socket: TcpStream, served: &Served) -> Result<(), BusError> {
    socket.set_nodelay(true)?;
    // One bounded wait for the handshake and the password together: a peer that connects and
    // goes quiet does not hold a task.
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    let stream: Box<dyn Io> = match &served.tls {
        Some(tls) => {
            let handshake = tokio::time::timeout_at(deadline, tls.accept(socket));
            // `biased`: a stopping bus abandons handshakes in progress.
            tokio::select! {
                biased;
                _ = served.shutdown.cancelled() => return Ok(()),
                stream = handshake => stream.map_err(|_| timed_out("the TLS handshake"))??,
            }
        }
        None => Box::new(socket),
    };
    let mut framed = wire::framed(stream);
    if let Some(password) = &served.password {
        let first = tokio::time::timeout_at(deadline, next_request(&mut framed, &served.shutdown))
            .await
            .map_err(|_| BusError::Auth)?;
        match first? {
            Some(Request::Auth { password: given }) if password_matches(password, &given) => {
                wire::send(&mut framed, &Response::AuthOk).await?;
            }
            Some(_) => {
                // Closed cleanly (a TLS close_notify), so the client reads a refusal rather
                // than a broken stream; whether that works does not matter.
                let _ = framed.get_mut().shutdown().await;
                return Err(BusError::Auth);
            }
            None => return Ok(()),
        }
    }
    while let Some(request) = next_request(&mut framed, &served.shutdown).await? {
        // `biased`: a stopping bus does not wait for a slow answer (a call handler's); the
        // request is dropped unanswered and its client sees the connection close.
        let response = tokio::select! {
            biased;
            _ = served.shutdown.cancelled() => return Ok(()),
            response = answer(served, request) => response,
        };
        wire::send(&mut framed, &response).await?;
    }
    Ok(())
}

/// Runs one request on the local member of its group, or the call handler.
async fn answer(served: &Served, request: Request) -> Response {
    let groups = &served.groups;
    match request {
        // Already authenticated (or no password): a repeated Auth is harmless.
        Request::Auth { .. } => Response::AuthOk,
        Request::AppendEntries { group, rpc } => match groups.member(group) {
            Some(raft) => Response::AppendEntries(raft.append_entries(rpc).await),
            None => Response::UnknownGroup(group),
        },
        Request::Vote { group, rpc } => match groups.member(group) {
            // A member that has not caught up since losing its disk does not vote.
            Some(_) if groups.abstains(group) => Response::UnknownGroup(group),
            Some(raft) => Response::Vote(raft.vote(rpc).await),
            None => Response::UnknownGroup(group),
        },
        Request::InstallSnapshot { group, rpc } => match groups.member(group) {
            Some(raft) => Response::InstallSnapshot(raft.install_snapshot(rpc).await),
            None => Response::UnknownGroup(group),
        },
        Request::Call { payload } => match &served.handler {
            Some(handler) => Response::Call(handler(payload).await),
            None => Response::NoCallHandler,
        },
    }
}

/// The next request, or `None` when the peer closed or the bus stops.
async fn next_request(
    framed: &mut Connection,
    shutdown: &CancellationToken,
) -> Result<Option<Request>, BusError> {
    // `biased`: stopping the bus closes idle connections before reading more.
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => Ok(None),
        request = wire::receive(framed) => request,
    }
}

/// An i/o timeout naming what did not finish within [`AUTH_TIMEOUT`].
fn timed_out(what: &str) -> BusError {
    BusError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} did not finish within {AUTH_TIMEOUT:?}"),
    ))
}

/// Compares a password with the configured one in constant time, over SHA-256 digests so the
/// time says nothing about the length either (as `cmd::connection` does for AUTH).
fn password_matches(configured: &str, given: &str) -> bool {
    let want = Sha256::digest(configured.as_bytes());
    let got = Sha256::digest(given.as_bytes());
    want.ct_eq(&got).into()
}

/// The largest frame either side accepts (16 MiB); a longer length prefix closes the
/// connection before its bytes are read. openraft's snapshot chunks (3 MiB by default,
/// `Config::snapshot_max_chunk_size`) take a few bytes more than their data in a frame; appends
/// (`Config::max_payload_entries`) and call payloads must stay below it too, or the peer
/// refuses them on every retry.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// How long an accepted connection may take to finish its TLS handshake and send its password
/// before it is closed.
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
        assert!(wire::codec().decode(&mut buf).is_err());
    }

    #[test]
    fn passwords_match_only_when_equal() {
        assert!(password_matches("secret", "secret"));
        assert!(!password_matches("secret", "secreT"));
        assert!(!password_matches("secret", "secret "));
        assert!(!password_matches("secret", ""));
    }
}
