//! A connection whose command blocked (BLPOP and friends, see [`crate::block`]): it waits
//! here for elements, its deadline, CLIENT UNBLOCK, a disconnect or a kill, reading (and
//! keeping for later) whatever the client pipelines meanwhile.
//!
//! In a replicated cluster, a blocking command for a shard led by another node runs there
//! without blocking; this node then asks again every [`REMOTE_POLL`] until it gets elements
//! or its deadline passes (the leader's waiters, served in arrival order, are this node's
//! clients only when the leader is here).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use super::Transport;
use crate::block::{self, Outcome};
use crate::cmd::Session;
use crate::node::Node;
use crate::protocol::{ProtocolError, Reply, Request};

/// How often a node asks a remote shard leader again for a blocked client.
const REMOTE_POLL: Duration = Duration::from_millis(20);

/// Whether `request` is a blocking command that ran on another node without blocking and
/// must be asked again (see the module docs).
pub(super) fn blocks_remotely(node: &Node, session: &Session, request: &Request) -> bool {
    node.cluster().is_some()
        && session.multi.is_none()
        && request
            .args
            .first()
            .and_then(|n| crate::cmd::lookup(n))
            .is_some_and(|spec| spec.flags.contains(&"blocking"))
}

/// Waits until the blocked command in `session` (or, in a cluster, the remote one) has its
/// final reply; `reply` is what its first run answered (`None`: CLIENT REPLY suppresses it).
/// `Ok(None)`: the connection must close (disconnect, kill, shutdown, or too much input).
pub(super) async fn wait_blocked<S: Transport, F: Future<Output = ()>>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    mut stopped: Pin<&mut F>,
    node: &Node,
    session: &mut Session,
    request: &Request,
    mut reply: Option<Reply>,
) -> Result<Option<Option<Reply>>, ProtocolError> {
    let started = Instant::now();
    // The first wait's deadline holds for the whole command: running it again (woken,
    // moved) does not restart its timeout.
    let mut first_deadline = None;
    loop {
        let Some(blocked) = session.blocked.take() else {
            // Not blocked here: done, unless a remote leader answered "nothing yet".
            let remote_deadline = block::timeout_of(request)
                .map(|t| t.map(|t| started + t))
                .unwrap_or(Some(started));
            let empty = matches!(reply, Some(Reply::Nil | Reply::NilArray));
            if !empty
                || !blocks_remotely(node, session, request)
                || remote_deadline.is_some_and(|d| Instant::now() >= d)
            {
                return Ok(Some(reply));
            }
            let pause = tokio::time::sleep(REMOTE_POLL);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    r = stream.read_some(rbuf) => if !kept_reading(node, session, rbuf, r)? {
                        return Ok(None);
                    },
                    () = &mut stopped => return Ok(None),
                }
            }
            reply = rerun(node, session, request).await;
            continue;
        };
        let deadline = *first_deadline.get_or_insert(blocked.deadline);
        let mut closed = false;
        let mut moved = false;
        loop {
            let until = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            // In a cluster, a new slot table may have moved the keys' slots elsewhere: the
            // command runs again (and goes where the keys are now).
            let table_changed = async {
                match node.cluster() {
                    Some(cluster) => cluster.table_changed.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = blocked.waiter.changed() => break,
                () = until => break,
                () = table_changed => {
                    moved = true;
                    break;
                }
                r = stream.read_some(rbuf) => if !kept_reading(node, session, rbuf, r)? {
                    closed = true;
                    break;
                },
                () = &mut stopped => {
                    closed = true;
                    break;
                }
            }
        }
        let outcome = blocked.waiter.finish();
        node.blocking.deregister(&blocked.waiter);
        session.client.update_meta(|m| {
            if m.flags == "b" {
                m.flags = "N";
            }
        });
        let last = match outcome {
            Outcome::Served(r) => r,
            Outcome::Retry if !closed => {
                reply = rerun(node, session, request).await;
                continue;
            }
            Outcome::Gone if moved => {
                reply = rerun(node, session, request).await;
                continue;
            }
            _ if closed => return Ok(None),
            Outcome::Unblocked => {
                Reply::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into())
            }
            Outcome::Waiting | Outcome::Retry | Outcome::TimedOut | Outcome::Gone => {
                blocked.timeout_reply
            }
        };
        return Ok(Some(reply.map(|_| last)));
    }
}

/// Waits for the snapshot SHUTDOWN is writing off the worker thread (see
/// [`Session::saving`]) and returns the command's final reply: `None` once the node is
/// stopping (the connection closes, see `session.closing`), else Redis's refusal. `reply` is
/// what the command answered first (`None`: CLIENT REPLY suppresses the refusal too).
pub(super) async fn wait_saved(
    node: &Node,
    session: &mut Session,
    reply: Option<Reply>,
) -> Option<Reply> {
    let Some(saving) = session.saving.take() else {
        return reply;
    };
    // Not raced against the client's input, a disconnect, CLIENT KILL or a signal: the save
    // is under way and SHUTDOWN runs to its end whatever happens to this connection, as the
    // command does in Redis. A signal's own shutdown waits for this connection meanwhile.
    let outcome = match saving.outcome.await {
        Ok(Ok(keys)) => Ok(keys.unwrap_or(0)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the snapshot thread stopped before answering".to_string()),
    };
    let last = crate::cmd::shutdown_saved(node, session, saving.force, outcome);
    reply.and(last)
}

/// Runs `request` again (woken, or polling a remote leader), the way the connection ran it.
async fn rerun(node: &Node, session: &mut Session, request: &Request) -> Option<Reply> {
    match node.cluster() {
        None => session.execute(node, request),
        Some(cluster) => {
            let route = crate::cluster::route::route(node, cluster, session, request);
            crate::cluster::route::run(node, cluster, session, request, route).await
        }
    }
}

/// Handles input that arrived while blocked: kept for later (true), or the client is gone or
/// sent too much (false).
fn kept_reading(
    node: &Node,
    session: &Session,
    rbuf: &BytesMut,
    read: std::io::Result<usize>,
) -> Result<bool, ProtocolError> {
    if let Ok(n) = read {
        node.stats.net_input(n);
    }
    match read {
        Ok(0) => Ok(false),
        Ok(_) if rbuf.len() > node.config.resp_limits.max_query_buffer => {
            tracing::warn!(
                client = session.client.id,
                "closing a blocked client whose query buffer passed {} bytes",
                node.config.resp_limits.max_query_buffer
            );
            Ok(false)
        }
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
        Err(e) => Err(e.into()),
    }
}
