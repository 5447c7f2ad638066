//! Commands: one table of every command the node knows, and `execute`, which runs a
//! [`Request`] against the node and returns a [`Reply`].
//!
//! The table follows Redis's own command table (`commands.def`): each entry names the command,
//! its arity, flags and key positions (served by COMMAND) and the handler that parses its
//! arguments and runs it. Handlers are grouped by family (`string`, `keyspace`, `server`,
//! `connection`) like Redis's `t_string.c` and Dragonfly's `string_family.cc`. Commands never
//! know which codec carried the request and never write to a socket.

pub mod args;
mod connection;
mod docs;
mod keyspace;
mod server;
mod string;
mod transaction;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use tokio::time::Instant;

use crate::aof::Batch;
use crate::node::{ClientHandle, Node};
use crate::protocol::{Reply, Request};
use crate::stats::StatKind;

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
    /// Any other error, full text with its code.
    #[error("{0}")]
    Other(Cow<'static, str>),
}

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
    /// Log records of the transaction being executed (appended as one record at its end).
    pub aof_batch: Option<Batch>,
    /// The log offset just past this connection's last write: under `appendfsync always` its
    /// replies wait until the log is fsynced that far.
    pub aof_mark: u64,
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
            aof_batch: None,
            aof_mark: 0,
        }
    }

    /// True while the node has a password and this connection has not authenticated: only
    /// AUTH, HELLO, QUIT and RESET may run, and the codec accepts only small requests.
    pub fn auth_required(&self, node: &Node) -> bool {
        !self.authenticated && node.config.requirepass.is_some()
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
        node.stats.record(StatKind::Other, self.client.id);
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

    fn flag_transaction(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.failed = true;
        }
    }
}

/// What a handler gets: the node, the caller's session and the time of the request.
pub struct Ctx<'a> {
    /// The node.
    pub node: &'a Node,
    /// The calling connection's state.
    pub session: &'a mut Session,
    /// The request's time: every deadline check in one command uses the same instant.
    pub now: Instant,
    /// True inside EXEC: the gate is already held exclusively.
    pub in_exec: bool,
}

impl Ctx<'_> {
    /// The session's selected database.
    pub fn db(&self) -> &crate::store::Db {
        // SELECT only stores indices it checked against the store.
        self.node
            .store
            .db(self.session.db)
            .expect("selected database exists")
    }
}

type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> Result<Reply, CommandError>;

/// One row of the command table.
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments including the name, `-n` at least n.
    pub arity: i32,
    /// Redis command flags, as COMMAND reports them.
    pub flags: &'static [&'static str],
    /// First key argument (0 for none).
    pub first_key: i32,
    /// Last key argument (-1 for the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// Which STATS counter it adds to.
    pub stat: StatKind,
    /// How it passes the store's gate.
    pub gate: GateMode,
    /// Whether MULTI queues it or runs it at once.
    pub queued_in_multi: bool,
    /// Position in [`table`].
    pub id: usize,
    /// Whether `flags` has `write` (checked on every command, so kept as a field).
    pub write: bool,
    handler: Handler,
}

/// How a command passes the store's [`crate::store::Gate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMode {
    /// Runs alongside other commands (nearly all).
    Shared,
    /// Runs alone (EXEC, SWAPDB).
    Exclusive,
    /// Takes no slot: it waits or sleeps (SAVE, DEBUG SLEEP) and must not hold up EXEC.
    Ungated,
}

impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSpec")
            .field("name", &self.name)
            .finish()
    }
}

/// Every command, in the order COMMAND lists them.
pub fn table() -> &'static [CommandSpec] {
    &TABLE
}

/// Looks a command up by name, ignoring case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    let upper = buf.get_mut(..name.len())?;
    upper.copy_from_slice(name);
    upper.make_ascii_lowercase();
    BY_NAME.get(std::str::from_utf8(upper).ok()?).copied()
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
        node.stats.record(StatKind::Other, session.client.id);
        session.flag_transaction();
        return Reply::Error(unknown_command(name, &args[1..]).to_string().into());
    };
    if !arity_ok(spec.arity, args.len()) {
        node.stats.record(StatKind::Other, session.client.id);
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
        node.stats.record(StatKind::Other, session.client.id);
        session.flag_transaction();
        return Reply::Error(CommandError::NoAuth.to_string().into());
    }
    if let Some(refusal) = disk_error(node, spec) {
        node.stats.record(StatKind::Other, session.client.id);
        session.flag_transaction();
        return Reply::Error(refusal.into());
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
        let mut ctx = Ctx {
            node,
            session,
            now,
            in_exec,
        };
        (spec.handler)(&mut ctx, args)
    };
    if result.is_ok() && spec.write {
        log_effects(node, session, spec, args, in_exec, now);
    }
    node.stats.record(spec.stat, session.client.id);
    let done = Instant::now();
    session.clock = Some(done);
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
        _ => args,
    };
    node.slowlog
        .record((done - now).as_micros() as u64, shown, client);
    if node.monitors.load(Ordering::Relaxed) > 0 && !session.monitor && !admin(spec, args) {
        // No receiver left (a race with a monitor leaving) is fine: nobody to tell.
        let _ = node.monitor.send(server::monitor_line(session, shown));
    }
    result.unwrap_or_else(|e| Reply::Error(e.to_string().into()))
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
    if node.config.stop_writes_on_bgsave_error && !node.persister.status().last_save_ok {
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

/// Appends the effect of a successful write to the append-only log, if there is one: the state
/// of every key the command names, read back under the keys' shard locks (held, in `(db,
/// shard)` order, until the record is appended, so records of one key are in write order),
/// or the command itself for FLUSHDB, FLUSHALL and SWAPDB (which run alone). Inside EXEC the
/// records are kept for one record at the end of the transaction.
fn log_effects(
    node: &Node,
    session: &mut Session,
    spec: &CommandSpec,
    args: &[Bytes],
    in_exec: bool,
    now: Instant,
) {
    let Some(aof) = node.aof.get() else {
        return;
    };
    let mut batch = Batch::default();
    let store = &node.store;
    let mut guards = Vec::new();
    if matches!(spec.name, "flushdb" | "flushall" | "swapdb") {
        batch.verbatim(session.db, args);
    } else {
        let keys = effect_keys(spec, args, session.db);
        let mut slots: Vec<(usize, usize)> = keys
            .iter()
            .filter_map(|(db, key)| Some((*db, store.db(*db)?.shard_index(key))))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        for (db, index) in slots {
            if let Some(d) = store.db(db) {
                guards.push(((db, index), d.lock(index)));
            }
        }
        for (db, key) in &keys {
            let Some(d) = store.db(*db) else { continue };
            let slot = (*db, d.shard_index(key));
            if let Some((_, shard)) = guards.iter_mut().find(|(s, _)| *s == slot) {
                let entry = shard.get(key, now);
                batch.state(*db, key, entry.as_ref().map(|e| (&e.value[..], e.deadline)));
            }
        }
    }
    if in_exec {
        session
            .aof_batch
            .get_or_insert_with(Batch::default)
            .extend(batch);
    } else {
        session.aof_mark = aof.append(batch);
    }
    drop(guards);
}

/// The `(db, key)` pairs a write command changes, from its key positions; MOVE and COPY also
/// name their destination database.
fn effect_keys<'a>(spec: &CommandSpec, args: &'a [Bytes], db: usize) -> Vec<(usize, &'a Bytes)> {
    let argc = args.len() as i32;
    let last = if spec.last_key < 0 {
        argc + spec.last_key
    } else {
        spec.last_key
    };
    let mut keys = Vec::new();
    if spec.first_key > 0 && spec.step > 0 {
        let mut i = spec.first_key;
        while i <= last && i < argc {
            keys.push((db, &args[i as usize]));
            i += spec.step;
        }
    }
    let other_db =
        |arg: Option<&Bytes>| arg.and_then(|a| std::str::from_utf8(a).ok()?.parse::<usize>().ok());
    match spec.name {
        "move" => {
            if let (Some(target), Some(key)) = (other_db(args.get(2)), args.get(1)) {
                keys.push((target, key));
            }
        }
        "copy" => {
            let target = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"DB"))
                .and_then(|i| other_db(args.get(i + 1)));
            if let (Some(target), Some(dst)) = (target, args.get(2)) {
                keys.retain(|(_, k)| *k != dst);
                keys.push((target, dst));
            }
        }
        _ => {}
    }
    keys
}

/// Commands with subcommands (their CLIENT LIST name is `container|sub`).
pub fn is_container(spec: &CommandSpec) -> bool {
    matches!(
        spec.name,
        "client" | "config" | "command" | "object" | "memory" | "slowlog" | "debug"
    )
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

/// Builds a table row; keeps the table below readable.
const fn cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
    stat: StatKind,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        stat,
        gate: GateMode::Shared,
        queued_in_multi: true,
        id: 0,
        write: false,
        handler,
    }
}

impl CommandSpec {
    /// Marks a command that runs at once even inside MULTI (MULTI, EXEC, WATCH, QUIT...).
    const fn immediate(mut self) -> Self {
        self.queued_in_multi = false;
        self
    }

    /// Sets how the command passes the gate.
    const fn gate(mut self, gate: GateMode) -> Self {
        self.gate = gate;
        self
    }
}

const NO_KEYS: (i32, i32, i32) = (0, 0, 0);
const KEY1: (i32, i32, i32) = (1, 1, 1);
const ALL_KEYS: (i32, i32, i32) = (1, -1, 1);
const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const WD: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];
const CONN: &[&str] = &["noscript", "loading", "stale", "fast"];
const TX: &[&str] = &["noscript", "loading", "stale", "fast", "allow-busy"];
/// Connection commands an unauthenticated client may run (Redis's `no_auth` flag).
const NO_AUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

use StatKind::{Delete as D, Expire as E, Get as G, Other as O, Set as S};

static TABLE: LazyLock<Vec<CommandSpec>> = LazyLock::new(|| {
    use GateMode::{Exclusive, Ungated};
    let mut table = vec![
        cmd("get", 2, RF, KEY1, G, string::get),
        cmd("getwithttl", 2, RF, KEY1, G, string::get_with_ttl),
        cmd("set", -3, W, KEY1, S, string::set),
        cmd("setnx", 3, WF, KEY1, S, string::setnx),
        cmd("setex", 4, W, KEY1, S, string::setex),
        cmd("psetex", 4, W, KEY1, S, string::psetex),
        cmd("getset", 3, WF, KEY1, S, string::getset),
        cmd("getdel", 2, WD, KEY1, G, string::getdel),
        cmd("getex", -2, WD, KEY1, G, string::getex),
        cmd("mget", -2, RF, ALL_KEYS, G, string::mget),
        cmd("mset", -3, W, (1, -1, 2), S, string::mset),
        cmd("msetnx", -3, W, (1, -1, 2), S, string::msetnx),
        cmd("append", 3, WF, KEY1, S, string::append),
        cmd("strlen", 2, RF, KEY1, O, string::strlen),
        cmd("getrange", 4, R, KEY1, O, string::getrange),
        cmd("substr", 4, R, KEY1, O, string::getrange),
        cmd("setrange", 4, W, KEY1, S, string::setrange),
        cmd("incr", 2, WF, KEY1, O, string::incr),
        cmd("decr", 2, WF, KEY1, O, string::decr),
        cmd("incrby", 3, WF, KEY1, O, string::incrby),
        cmd("decrby", 3, WF, KEY1, O, string::decrby),
        cmd("incrbyfloat", 3, WF, KEY1, O, string::incrbyfloat),
        cmd("del", -2, &["write"], ALL_KEYS, D, keyspace::del),
        cmd("unlink", -2, WD, ALL_KEYS, D, keyspace::del),
        cmd("exists", -2, RF, ALL_KEYS, O, keyspace::exists),
        cmd("type", 2, RF, KEY1, O, keyspace::key_type),
        cmd("rename", 3, &["write"], (1, 2, 1), O, keyspace::rename),
        cmd("renamenx", 3, WD, (1, 2, 1), O, keyspace::renamenx),
        cmd(
            "copy",
            -3,
            &["write", "denyoom"],
            (1, 2, 1),
            O,
            keyspace::copy,
        ),
        cmd("touch", -2, RF, ALL_KEYS, O, keyspace::exists),
        cmd("randomkey", 1, R, NO_KEYS, O, keyspace::randomkey),
        cmd("keys", 2, R, NO_KEYS, O, keyspace::keys),
        cmd("scan", -2, R, NO_KEYS, O, keyspace::scan),
        cmd("expire", -3, WD, KEY1, E, keyspace::expire),
        cmd("pexpire", -3, WD, KEY1, E, keyspace::pexpire),
        cmd("expireat", -3, WD, KEY1, E, keyspace::expireat),
        cmd("pexpireat", -3, WD, KEY1, E, keyspace::pexpireat),
        cmd("ttl", 2, RF, KEY1, O, keyspace::ttl),
        cmd("pttl", 2, RF, KEY1, O, keyspace::pttl),
        cmd("expiretime", 2, RF, KEY1, O, keyspace::expiretime),
        cmd("pexpiretime", 2, RF, KEY1, O, keyspace::pexpiretime),
        cmd("persist", 2, WD, KEY1, O, keyspace::persist),
        cmd("object", -2, R, (2, 2, 1), O, keyspace::object),
        cmd("memory", -2, R, NO_KEYS, O, keyspace::memory),
        cmd("move", 3, WD, KEY1, O, keyspace::move_key),
        cmd("swapdb", 3, WF, NO_KEYS, O, keyspace::swapdb).gate(Exclusive),
        cmd("dbsize", 1, RF, NO_KEYS, O, keyspace::dbsize),
        // Flushes run alone so that the log orders them exactly against other writes.
        cmd("flushdb", -1, &["write"], NO_KEYS, O, keyspace::flushdb).gate(Exclusive),
        cmd("flushall", -1, &["write"], NO_KEYS, O, keyspace::flushall).gate(Exclusive),
        cmd("multi", 1, TX, NO_KEYS, O, transaction::multi).immediate(),
        cmd("exec", 1, TX, NO_KEYS, O, transaction::exec)
            .immediate()
            .gate(Exclusive),
        cmd("discard", 1, TX, NO_KEYS, O, transaction::discard).immediate(),
        cmd("watch", -2, TX, ALL_KEYS, O, transaction::watch).immediate(),
        cmd("unwatch", 1, TX, NO_KEYS, O, transaction::unwatch).immediate(),
        cmd("ping", -1, &["fast", "stale"], NO_KEYS, O, connection::ping),
        cmd("echo", 2, &["fast"], NO_KEYS, O, connection::echo),
        cmd("select", 2, CONN, NO_KEYS, O, connection::select),
        cmd("quit", -1, NO_AUTH, NO_KEYS, O, connection::quit).immediate(),
        cmd("reset", 1, NO_AUTH, NO_KEYS, O, connection::reset).immediate(),
        cmd("hello", -1, NO_AUTH, NO_KEYS, O, connection::hello),
        cmd("auth", -2, NO_AUTH, NO_KEYS, O, connection::auth),
        cmd("client", -2, ADMIN, NO_KEYS, O, connection::client),
        cmd("stats", 1, RF, NO_KEYS, O, server::stats),
        cmd("info", -1, &["loading", "stale"], NO_KEYS, O, server::info),
        cmd("config", -2, ADMIN, NO_KEYS, O, server::config),
        cmd(
            "command",
            -1,
            &["loading", "stale"],
            NO_KEYS,
            O,
            server::command,
        ),
        cmd(
            "time",
            1,
            &["loading", "stale", "fast"],
            NO_KEYS,
            O,
            server::time,
        ),
        cmd(
            "lastsave",
            1,
            &["loading", "stale", "fast"],
            NO_KEYS,
            O,
            server::lastsave,
        ),
        cmd("save", 1, ADMIN, NO_KEYS, O, server::save).gate(Ungated),
        cmd("bgsave", -1, ADMIN, NO_KEYS, O, server::bgsave),
        cmd("wait", 3, &["noscript"], NO_KEYS, O, server::wait),
        cmd("debug", -2, ADMIN, NO_KEYS, O, server::debug).gate(Ungated),
        cmd("slowlog", -2, ADMIN, NO_KEYS, O, server::slowlog),
        cmd("monitor", 1, ADMIN, NO_KEYS, O, server::monitor),
    ];
    for (i, c) in table.iter_mut().enumerate() {
        c.id = i;
        c.write = c.flags.contains(&"write");
    }
    table
});

static BY_NAME: LazyLock<HashMap<&'static str, &'static CommandSpec, ahash::RandomState>> =
    LazyLock::new(|| TABLE.iter().map(|c| (c.name, c)).collect());

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
