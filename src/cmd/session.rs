//! Per-connection state: the selected database, the RESP version, CLIENT REPLY, MONITOR,
//! authentication, the transaction being queued, the keys under WATCH and pub/sub
//! subscriptions.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use super::capture::Capture;
use super::table::CommandSpec;
use super::{connection, execute, CommandError};
use crate::node::{ClientHandle, Node};
use crate::persist::PersistError;
use crate::protocol::{Reply, Request};
use crate::pubsub::{Subscriptions, Wakes};
use crate::stats::StatKind;

/// Per-connection state that commands read and change.
#[derive(Debug)]
pub struct Session {
    /// The connection's entry in the node's client registry.
    pub client: Arc<ClientHandle>,
    /// The selected database.
    pub db: usize,
    /// RESP version for replies (2 or 3).
    pub protocol: u8,
    /// Set by QUIT: close after sending the reply.
    pub closing: bool,
    /// Commands queued since MULTI, or `None` outside a transaction.
    pub multi: Option<Multi>,
    /// Keys under WATCH, with what they held when watched.
    pub watched: Vec<Watched>,
    /// CLIENT REPLY mode.
    pub reply_mode: ReplyMode,
    /// Set by CLIENT REPLY OFF/SKIP: do not send the reply of the command that set it.
    pub suppress_current: bool,
    /// Set by MONITOR: the connection now streams every command the node runs.
    pub monitor: bool,
    /// The last command run, checked before the table lookup.
    pub last_spec: Option<&'static CommandSpec>,
    /// The time the previous command of this batch finished; cleared between batches.
    pub clock: Option<Instant>,
    /// AUTH succeeded on this connection (RESET clears it). Only matters when the node has a
    /// password: see [`Session::auth_required`].
    pub authenticated: bool,
    /// The running command's effects (see [`super::capture`]).
    pub capture: Capture,
    /// The effect sink's position just past this connection's last write: under
    /// `appendfsync always` its replies wait until the log is fsynced that far.
    pub aof_mark: u64,
    /// In a replicated cluster: `(shard, origin, seq)` of what this connection ran on shards
    /// this node leads since its last reply; replies wait until these are committed.
    pub cluster_marks: Vec<(usize, u64, u64)>,
    /// A forwarded write's outcome is unknown (its leader stepped down or stopped answering):
    /// the connection closes instead of answering.
    pub cluster_broken: bool,
    /// Pub/sub channels and patterns subscribed to, from the first SUBSCRIBE or PSUBSCRIBE
    /// on; dropping it (RESET, the connection's end) unsubscribes from everything.
    pub subscriptions: Option<Subscriptions>,
    /// Subscribers' connections that this connection's PUBLISHes queued messages for, to
    /// wake once the batch of requests is answered when `defer_wakes` is set (as Redis
    /// writes subscribers' output once per event-loop turn), else at once.
    pub wakes: Wakes,
    /// See `wakes`: set by connections that wake them between batches.
    pub defer_wakes: bool,
    /// Frames the last command produced before its reply (SUBSCRIBE of several channels
    /// answers one frame per channel): the connection sends them first, in order.
    pub pushes: Vec<Reply>,
    /// The connection's protocol tells pushes from replies without RESP3 (JSON): subscribed
    /// mode's restrictions do not apply to it.
    pub pushes_apart: bool,
    /// Set by a blocking command that found nothing: the connection waits on it (see
    /// [`crate::block`]) before running anything else.
    pub blocked: Option<Blocked>,
    /// Whether a blocking command may block here: false for requests forwarded from another
    /// node of a cluster (their origin waits instead) and in scripts.
    pub may_block: bool,
    /// Set by SHUTDOWN while its snapshot is written on the saver thread: the connection
    /// waits for it, as for [`Session::blocked`], then finishes the command with
    /// [`crate::cmd::shutdown_saved`].
    pub saving: Option<Saving>,
}

/// SHUTDOWN's snapshot under way off the worker thread (see [`Session::saving`]).
#[derive(Debug)]
pub struct Saving {
    /// The save's outcome (the number of keys written), from the saver thread.
    pub outcome: tokio::sync::oneshot::Receiver<Result<Option<usize>, PersistError>>,
    /// SHUTDOWN FORCE: stop even if the save failed.
    pub force: bool,
}

/// A blocked command: what it waits on and how it ends without elements.
#[derive(Debug)]
pub struct Blocked {
    /// The registration, served by pushers.
    pub waiter: std::sync::Arc<crate::block::Waiter>,
    /// When the command gives up (`None`: never).
    pub deadline: Option<Instant>,
    /// Its reply when it gives up (a null of the command's shape).
    pub timeout_reply: crate::protocol::Reply,
}

/// A transaction being queued.
#[derive(Debug, Default)]
pub struct Multi {
    /// Validated commands waiting for EXEC.
    pub queued: Vec<(&'static CommandSpec, Request)>,
    /// A queued command was rejected: EXEC answers EXECABORT.
    pub failed: bool,
}

/// A watched key and its shard version when WATCH ran; EXEC compares versions.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The database.
    pub db: usize,
    /// The key.
    pub key: Bytes,
    /// The key's version in its shard when watched.
    pub version: u64,
}

/// CLIENT REPLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    /// Replies are sent.
    On,
    /// Replies are dropped.
    Off,
    /// The next command's reply is dropped.
    Skip,
}

impl Session {
    /// A session for a registered connection.
    pub fn new(client: Arc<ClientHandle>) -> Self {
        Session {
            client,
            db: 0,
            protocol: 2,
            closing: false,
            multi: None,
            watched: Vec::new(),
            reply_mode: ReplyMode::On,
            suppress_current: false,
            monitor: false,
            last_spec: None,
            clock: None,
            authenticated: false,
            capture: Capture::default(),
            aof_mark: 0,
            cluster_marks: Vec::new(),
            cluster_broken: false,
            subscriptions: None,
            wakes: Wakes::default(),
            defer_wakes: false,
            pushes: Vec::new(),
            pushes_apart: false,
            blocked: None,
            may_block: true,
            saving: None,
        }
    }

    /// Redis's subscribed mode: a RESP2 connection with at least one subscription, which may
    /// only run (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING, QUIT and RESET, because its replies could
    /// not be told from the messages it receives.
    pub fn subscribed_mode(&self) -> bool {
        self.protocol < 3
            && !self.pushes_apart
            && self.subscriptions.as_ref().is_some_and(|s| s.count() > 0)
    }

    /// True while the node has a password and this connection has not authenticated: only
    /// AUTH, HELLO, QUIT and RESET may run, and the codec accepts only small requests.
    pub fn auth_required(&self, node: &Node) -> bool {
        !self.authenticated && node.settings.has_password()
    }

    /// Runs `request` and returns its reply, or `None` when CLIENT REPLY says not to send it.
    /// A request carrying a password (JSON's `"password"` field) authenticates first, as AUTH
    /// would, and fails with AUTH's error if that fails.
    pub fn execute(&mut self, node: &Node, request: &Request) -> Option<Reply> {
        let skip_this = self.reply_mode == ReplyMode::Skip;
        let authenticated = match &request.password {
            Some(password) => connection::authenticate(node, self, None, password),
            None => Ok(()),
        };
        let reply = match (authenticated, request.db) {
            (Err(e), _) => Reply::Error(e.to_string().into()),
            (Ok(()), None) => execute(node, self, request),
            (Ok(()), Some(db)) => match usize::try_from(db)
                .ok()
                .filter(|d| node.store.db(*d).is_some())
            {
                None => Reply::Error(CommandError::DbIndexOutOfRange.to_string().into()),
                Some(db) => {
                    let selected = std::mem::replace(&mut self.db, db);
                    let reply = execute(node, self, request);
                    // A SELECT inside the request wins; otherwise restore the selection.
                    if self.db == db {
                        self.db = selected;
                    }
                    reply
                }
            },
        };
        self.sendable(skip_this, reply)
    }

    /// Answers a request that never became a command (the JSON protocol rejects an object
    /// with a missing field before any command sees it): counted as a rejected request and,
    /// like every reply, subject to CLIENT REPLY, so `SKIP` skips it and `OFF` silences it.
    pub fn reject(&mut self, node: &Node, error: Reply) -> Option<Reply> {
        node.stats.record(StatKind::Other);
        let skip_this = self.reply_mode == ReplyMode::Skip;
        self.sendable(skip_this, error)
    }

    /// Applies CLIENT REPLY to the reply of the request just handled; `skip_this` is whether
    /// SKIP was in force when that request arrived.
    fn sendable(&mut self, skip_this: bool, reply: Reply) -> Option<Reply> {
        if std::mem::take(&mut self.suppress_current) {
            return None;
        }
        // The command after CLIENT REPLY SKIP is not answered, unless it is CLIENT REPLY ON,
        // which (as in Redis) clears the skip before replying.
        if skip_this && self.reply_mode == ReplyMode::Skip {
            self.reply_mode = ReplyMode::On;
            return None;
        }
        (self.reply_mode == ReplyMode::On).then_some(reply)
    }

    /// Releases every WATCH of this session (EXEC, DISCARD, UNWATCH, RESET, disconnect).
    pub fn unwatch_all(&mut self, store: &crate::store::Store) {
        for w in self.watched.drain(..) {
            if let Some(db) = store.db(w.db) {
                db.shard(&w.key).unwatch(&w.key);
            }
        }
    }

    /// Answers a request with a reply made elsewhere (forwarded to another node, or refused
    /// by the cluster before running): counted, and subject to CLIENT REPLY.
    pub fn answer(&mut self, node: &Node, reply: Reply) -> Option<Reply> {
        node.stats.record(StatKind::Other);
        let skip_this = self.reply_mode == ReplyMode::Skip;
        self.sendable(skip_this, reply)
    }

    /// Before a request runs elsewhere: authenticates with its own password (JSON's field),
    /// and refuses it with NOAUTH while the connection still needs AUTH.
    ///
    /// # Errors
    /// The error reply to send instead of running the request.
    pub fn authenticate_request(&mut self, node: &Node, request: &Request) -> Result<(), Reply> {
        if let Some(password) = &request.password {
            connection::authenticate(node, self, None, password)
                .map_err(|e| Reply::Error(e.to_string().into()))?;
        }
        if self.auth_required(node) {
            return Err(Reply::Error(CommandError::NoAuth.to_string().into()));
        }
        Ok(())
    }

    /// Marks the transaction being queued as failed (EXEC answers EXECABORT).
    pub fn flag_transaction(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.failed = true;
        }
    }
}
