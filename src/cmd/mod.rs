//! Commands: one table of every command the node knows, and `execute`, which runs a
//! [`Request`] against the node and returns a [`Reply`].
//!
//! Rooms: `table` is the command table (as Redis's `commands.def`: name, arity, flags, key
//! positions, handler), `session` the per-connection state (selected database, transaction,
//! WATCH, CLIENT REPLY), `capture` how write commands lock their keys and record their
//! effects, and this file the path every request takes (lookup, checks, gate, handler,
//! effects, stats, slow log, latency monitor, MONITOR). Handlers are grouped by family
//! (`string`, `bitmap`, `lcs`, `keyspace`, `server`, `connection`, `transaction`, `pubsub`,
//! `latency`) like Redis's `t_string.c` and Dragonfly's `string_family.cc`. Commands never
//! know which codec carried the request and never write to a socket.

pub mod args;
mod bitmap;
mod blocking;
pub mod capture;
pub mod config;
mod connection;
mod docs;
mod hash;
mod keyspace;
mod latency;
mod lcs;
mod list;
mod long_double;
mod memory;
mod pubsub;
mod server;
mod session;
mod set;
mod shutdown;
mod string;
mod table;
mod transaction;
mod zset;

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::time::Instant;

use crate::effect::Effect;
use crate::node::Node;
use crate::protocol::{Reply, Request};
use crate::stats::latency::event;
use crate::stats::{Outcome, StatKind};
use crate::store::WrongType;
use capture::{Locks, Writer};

pub use session::{Multi, ReplyMode, Saving, Session, Watched};
pub use shutdown::saved as shutdown_saved;
pub use table::{is_container, lookup, table, CommandSpec, GateMode};

/// A command that cannot run as given. Not fatal: it becomes an error reply and the
/// connection goes on. Texts are Redis 7's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command name is not in the table.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The name as the client sent it.
        name: String,
        /// The first arguments, each quoted and followed by a space, as Redis lists them.
        args: String,
    },
    /// A known container command with an unknown subcommand.
    #[error("ERR unknown subcommand '{sub}'. Try {command} HELP.")]
    UnknownSubcommand {
        /// The container command, upper case.
        command: &'static str,
        /// The subcommand as sent.
        sub: String,
    },
    /// Too few or too many arguments for the command's arity.
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// Options that do not fit together, or an unknown option.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that must be a 64-bit integer is not one.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An argument that must be a float is not one.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// An expire time that is not positive or overflows.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    /// SELECT or MOVE past the configured databases.
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    /// HELLO with a protocol version other than 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// A command other than AUTH, HELLO, QUIT or RESET before AUTH on a node with a password.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// AUTH (or HELLO's AUTH option) with a wrong user name or password.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// The key holds a value of another type than the command operates on.
    #[error("{0}")]
    WrongType(#[from] WrongType),
    /// Any other error, full text with its code.
    #[error("{0}")]
    Other(Cow<'static, str>),
}

/// What a handler gets: the node, the caller's session, the time of the request and, for a
/// write command, the shards of its keys.
pub struct Ctx<'a> {
    /// The node.
    pub node: &'a Node,
    /// The calling connection's state.
    pub session: &'a mut Session,
    /// The request's time: every deadline check in one command uses the same instant.
    pub now: Instant,
    /// True inside EXEC: the gate is already held exclusively.
    pub in_exec: bool,
    /// The shards a write command holds (see [`capture`]).
    locks: Locks<'a>,
}

impl<'a> Ctx<'a> {
    /// The session's selected database, for reading. A write command must not lock its own
    /// keys through it (they are held already): use [`Ctx::write`].
    pub fn db(&self) -> &'a crate::store::Db {
        // SELECT only stores indices it checked against the store.
        self.node
            .store
            .db(self.session.db)
            .expect("selected database exists")
    }

    /// The shard of `key` in the selected database, held for this write command: reads and
    /// changes through it are recorded as effects.
    ///
    /// # Errors
    /// None in practice (the selected database exists); see [`Ctx::write_in`].
    #[inline]
    pub fn write(&mut self, key: &[u8]) -> Result<Writer<'_>, CommandError> {
        self.write_in(self.session.db, key)
    }

    /// The shard of `key` in database `db`, held for this write command.
    ///
    /// # Errors
    /// [`CommandError::DbIndexOutOfRange`] when `db` does not exist.
    #[inline]
    pub fn write_in(&mut self, db: usize, key: &[u8]) -> Result<Writer<'_>, CommandError> {
        let (db, shard) = self
            .locks
            .shard(self.node, db, key)
            .ok_or(CommandError::DbIndexOutOfRange)?;
        Ok(Writer {
            shard,
            capture: &mut self.session.capture,
            blocking: &self.node.blocking,
            db,
            now: self.now,
        })
    }

    /// Records an effect that is not one key's (FLUSHDB, FLUSHALL, SWAPDB), counting
    /// `changes` keys for the snapshot's change counter.
    pub fn record(&mut self, effect: Effect, changes: u64) {
        let capture = &mut self.session.capture;
        capture.changes += changes;
        if capture.recording {
            capture.effects.push(effect);
        }
    }
}

/// Runs one request and returns its reply, counting it in the node's stats afterwards (so a
/// STATS request reports the requests before itself). Inside MULTI, commands are validated
/// and queued instead.
pub fn execute(node: &Node, session: &mut Session, request: &Request) -> Reply {
    let args = &request.args;
    let Some(name) = args.first() else {
        return Reply::error("ERR empty request");
    };
    // Clients mostly repeat one command (benchmarks, pipelines of GETs): check the last one
    // before the table.
    let cached = session
        .last_spec
        .filter(|s| s.name.len() == name.len() && s.name.as_bytes().eq_ignore_ascii_case(name));
    let Some(spec) = cached.or_else(|| lookup(name)) else {
        node.stats.record(StatKind::Other);
        session.flag_transaction();
        return Reply::Error(unknown_command(name, &args[1..]).to_string().into());
    };
    if !arity_ok(spec.arity, args.len()) {
        rejected(node, spec);
        session.flag_transaction();
        return Reply::Error(
            CommandError::WrongArity(spec.name.to_string())
                .to_string()
                .into(),
        );
    }
    // After the name and arity checks, as in Redis: an unknown command is reported as such
    // even before AUTH.
    if session.auth_required(node) && !spec.flags.contains(&"no_auth") {
        rejected(node, spec);
        session.flag_transaction();
        return Reply::Error(CommandError::NoAuth.to_string().into());
    }
    // The whole cost of eviction on a node without a limit: one relaxed load.
    if node.memory.limit() != 0 {
        if let Some(refusal) = memory::refusal(node, session, spec) {
            rejected(node, spec);
            return refusal;
        }
    }
    if let Some(refusal) = disk_error(node, spec) {
        rejected(node, spec);
        session.flag_transaction();
        return Reply::Error(refusal.into());
    }
    if session.subscribed_mode() && !pubsub::allowed_while_subscribed(spec.name) {
        rejected(node, spec);
        session.flag_transaction();
        return Reply::Error(pubsub::refusal(&full_name(spec, args)).to_string().into());
    }
    if session.multi.is_some() && spec.flags.contains(&"no_multi") {
        node.stats.record(StatKind::Other);
        session.flag_transaction();
        return Reply::Error("ERR Command not allowed inside a transaction".into());
    }
    if let Some(multi) = &mut session.multi {
        if spec.queued_in_multi {
            multi.queued.push((spec, request.clone()));
            return Reply::Simple("QUEUED".into());
        }
    }
    session.last_spec = Some(spec);
    run(node, session, spec, args, false)
}

/// Runs a validated command: passes the gate, calls the handler, then records stats, the
/// slow log and the MONITOR feed.
fn run(
    node: &Node,
    session: &mut Session,
    spec: &'static CommandSpec,
    args: &[Bytes],
    in_exec: bool,
) -> Reply {
    // One clock read per command: the end of the previous command in the same batch is this
    // one's start (the connection clears it when it waits for the socket).
    let now = session.clock.take().unwrap_or_else(Instant::now);
    // Inside EXEC, CLIENT LIST keeps showing `exec`, as in Redis.
    if !in_exec {
        session
            .client
            .last_command
            .store(spec.id, Ordering::Relaxed);
        if is_container(spec) {
            // Container commands show as `client|list`; the subcommand is kept only for them.
            let sub = args
                .get(1)
                .map(|a| a.to_ascii_lowercase())
                .unwrap_or_default();
            session
                .client
                .update_meta(|m| m.last_sub = Some(Bytes::from(sub)));
        }
    }
    let result = {
        let store = &node.store;
        // Held for the handler only; never across an await (handlers are synchronous).
        let _shared;
        let _exclusive;
        match (in_exec, spec.gate) {
            (true, _) | (_, GateMode::Ungated) => {}
            (false, GateMode::Shared) => _shared = store.gate().shared(session.client.id),
            (false, GateMode::Exclusive) => _exclusive = store.gate().exclusive(),
        }
        // A write command's keys are locked before it runs, and stay locked until its
        // effects are with the sink (see `capture`).
        let locks = if spec.write {
            capture::lock_keys(node, session.db, spec, args)
        } else {
            Locks::None
        };
        session.capture.recording = node.sink().is_some() || node.cluster().is_some();
        let mut ctx = Ctx {
            node,
            session,
            now,
            in_exec,
            locks,
        };
        let result = (spec.handler)(&mut ctx, args);
        // Effects go out before the locks are released (when `ctx` drops).
        publish(ctx.node, ctx.session, in_exec);
        drop(ctx);
        result
    };
    node.stats.record(spec.stat);
    let done = Instant::now();
    session.clock = Some(done);
    let outcome = match &result {
        Ok(Reply::Error(_)) | Err(_) => Outcome::Failed,
        Ok(_) => Outcome::Ok,
    };
    node.stats.commands.record(spec.id, done - now, outcome);
    let client = &session.client;
    client
        .last_active_ms
        .store((done - client.opened).as_millis() as u64, Ordering::Relaxed);
    // Credentials never reach SLOWLOG or MONITOR: Redis shows them as "(redacted)".
    let redacted;
    let shown = match spec.name {
        "auth" | "hello" => {
            redacted = connection::redact(args);
            &redacted[..]
        }
        "config" => {
            redacted = config::redact(args);
            &redacted[..]
        }
        _ => args,
    };
    node.slowlog
        .record((done - now).as_micros() as u64, shown, client);
    // Off (threshold 0), one relaxed load; the flag scan runs only for a sample.
    node.latency.record_with(done - now, || {
        if spec.flags.contains(&"fast") {
            event::FAST_COMMAND
        } else {
            event::COMMAND
        }
    });
    if node.monitors.load(Ordering::Relaxed) > 0 && !session.monitor && !admin(spec, args) {
        // No receiver left (a race with a monitor leaving) is fine: nobody to tell.
        let _ = node.monitor.send(server::monitor_line(session, shown));
    }
    result.unwrap_or_else(|e| Reply::Error(e.to_string().into()))
}

/// Counts a request for `spec` refused before it ran: in the totals, and as the command's
/// `rejected_calls`.
fn rejected(node: &Node, spec: &CommandSpec) {
    node.stats.record(StatKind::Other);
    node.stats.commands.reject(spec.id);
}

/// Redis's MISCONF refusals: writes (and PING, as Redis does) are refused while the
/// append-only log cannot be written (always: acknowledging a write that cannot be logged
/// would break the log's promise), or while the last snapshot failed and
/// `stop-writes-on-bgsave-error` is on.
fn disk_error(node: &Node, spec: &CommandSpec) -> Option<String> {
    if !spec.write && spec.name != "ping" {
        return None;
    }
    if let Some(e) = node.aof.get().and_then(|aof| aof.last_error()) {
        return Some(format!("MISCONF Errors writing to the AOF file: {e}"));
    }
    if node.settings.stop_writes_on_bgsave_error() && !node.persister.status().last_save_ok {
        return Some(
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to \
             persist to disk. Commands that may modify the data set are disabled, because this \
             instance is configured to report errors during writes if RDB snapshotting fails \
             (stop-writes-on-bgsave-error option). Please check the Redis logs for details \
             about the RDB error."
                .to_string(),
        );
    }
    None
}

/// Hands the effects of the command that just ran to the node's sink, and counts its changes
/// for the snapshot. Called while the command still holds its keys' locks. Inside EXEC the
/// effects wait for the end of the transaction, which EXEC publishes as one batch (nothing
/// else runs meanwhile: EXEC holds the gate exclusively).
#[inline]
fn publish(node: &Node, session: &mut Session, in_exec: bool) {
    let capture = &mut session.capture;
    if capture.changes > 0 {
        node.store.mark_dirty(std::mem::take(&mut capture.changes));
    }
    if in_exec || capture.effects.is_empty() {
        return;
    }
    if let Some(cluster) = node.cluster() {
        // Every key of one command (or transaction) is in one shard: the router refused
        // the rest with CROSSSLOT.
        let shard = capture.effects.iter().find_map(|e| {
            let key = e.key()?;
            cluster
                .slots
                .serving(crate::client::router::slot_of(key))
                .group
        });
        if let Some(group) = shard.and_then(|s| cluster.group(s)) {
            group.submit(&capture.effects);
        }
    } else if let Some(sink) = node.sink() {
        session.aof_mark = sink.append(&capture.effects);
    }
    capture.effects.clear();
}

/// Whether Redis treats the command as administrative: MONITOR does not show those. For
/// CLIENT it depends on the subcommand (CLIENT SETNAME is shown, CLIENT KILL is not).
fn admin(spec: &CommandSpec, args: &[Bytes]) -> bool {
    if spec.name == "client" {
        let sub = args
            .get(1)
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_default();
        return matches!(
            sub.as_slice(),
            b"kill" | b"list" | b"no-evict" | b"pause" | b"unpause"
        );
    }
    spec.flags.contains(&"admin")
}

/// Whether a request must be refused for a RESP2 connection in subscribed mode (see
/// [`Session::subscribed_mode`]); the cluster's router keeps such requests here, where
/// [`execute`] refuses them.
pub fn refused_while_subscribed(session: &Session, request: &Request) -> bool {
    session.subscribed_mode()
        && request
            .args
            .first()
            .and_then(|n| lookup(n))
            .is_some_and(|spec| !pubsub::allowed_while_subscribed(spec.name))
}

/// The command's full name as Redis reports it: `get`, or `client|list` for a subcommand.
fn full_name(spec: &CommandSpec, args: &[Bytes]) -> String {
    match args.get(1) {
        Some(sub) if spec.container => {
            format!(
                "{}|{}",
                spec.name,
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            )
        }
        _ => spec.name.to_string(),
    }
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = argc as i32;
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// Redis's unknown-command error: the name as sent, then up to 128 bytes of quoted arguments.
fn unknown_command(name: &Bytes, rest: &[Bytes]) -> CommandError {
    let mut listed = String::new();
    for arg in rest {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        let text = String::from_utf8_lossy(&arg[..arg.len().min(room)]).into_owned();
        listed.push_str(&format!("'{text}' "));
    }
    let name = String::from_utf8_lossy(&name[..name.len().min(128)]).into_owned();
    CommandError::UnknownCommand { name, args: listed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_text_matches_redis() {
        let err = unknown_command(&Bytes::from_static(b"FOO"), &[Bytes::from_static(b"a")]);
        assert_eq!(
            err.to_string(),
            "ERR unknown command 'FOO', with args beginning with: 'a' "
        );
        let err = unknown_command(&Bytes::from_static(b"foo"), &[]);
        assert_eq!(
            err.to_string(),
            "ERR unknown command 'foo', with args beginning with: "
        );
    }

    #[test]
    fn lookup_ignores_case_and_rejects_long_names() {
        assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
        assert!(lookup(&[b'a'; 40]).is_none());
        assert!(arity_ok(-2, 3) && !arity_ok(2, 3) && arity_ok(2, 2));
    }
}
