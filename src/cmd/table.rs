//! The command table: every command the node knows with its arity, flags, key positions and
//! handler, as Redis's `commands.def` lists them (COMMAND serves this table).

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;

use super::{
    bitmap, blocking, config, connection, hash, keyspace, latency, list, pubsub, server, set,
    shutdown, string, transaction, zset, CommandError, Ctx,
};
use crate::protocol::Reply;
use crate::stats::StatKind;

pub(super) type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> Result<Reply, CommandError>;

/// The positions of the keys in a command's arguments, for commands whose keys the
/// (first, last, step) triple cannot describe (Redis's `movablekeys`: LMPOP's `numkeys`,
/// ZUNIONSTORE's destination plus `numkeys` sources...). Positions past the arguments are
/// ignored; a malformed command yields what it can and its handler reports the error.
pub(super) type KeysFn = fn(&[Bytes]) -> Vec<usize>;

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
    /// Whether it has subcommands (see [`is_container`]; checked on every command).
    pub container: bool,
    pub(super) handler: Handler,
    /// Where its keys are when `first_key..=last_key` by `step` does not say it all.
    pub(super) keys_fn: Option<KeysFn>,
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

/// Builds a table row; keeps the tables readable (each family's `commands()` uses it too).
pub(super) const fn cmd(
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
        container: false,
        handler,
        keys_fn: None,
    }
}

impl CommandSpec {
    /// Marks a command that runs at once even inside MULTI (MULTI, EXEC, WATCH, QUIT...).
    const fn immediate(mut self) -> Self {
        self.queued_in_multi = false;
        self
    }

    /// Sets how the command passes the gate.
    pub(super) const fn gate(mut self, gate: GateMode) -> Self {
        self.gate = gate;
        self
    }

    /// Gives a command whose keys move with its arguments their positions (see [`KeysFn`]).
    /// (Used by the data-type families as their commands land.)
    /// `flags` should then include `movablekeys`, as Redis's COMMAND reports it.
    #[allow(dead_code)]
    pub(super) const fn keys_with(mut self, keys: KeysFn) -> Self {
        self.keys_fn = Some(keys);
        self
    }

    /// Whether the command names exactly one key, its first argument (the fast path for
    /// locking and routing).
    pub fn single_key(&self) -> bool {
        self.first_key == 1 && self.last_key == 1 && self.keys_fn.is_none()
    }
}

/// Key positions: no keys.
pub(super) const NO_KEYS: (i32, i32, i32) = (0, 0, 0);
/// Key positions: the first argument.
pub(super) const KEY1: (i32, i32, i32) = (1, 1, 1);
/// Key positions: every argument.
pub(super) const ALL_KEYS: (i32, i32, i32) = (1, -1, 1);
/// Flags: a write that may grow memory.
pub(super) const W: &[&str] = &["write", "denyoom"];
/// Flags: a fast write that may grow memory.
pub(super) const WF: &[&str] = &["write", "denyoom", "fast"];
/// Flags: a fast write that does not grow memory.
pub(super) const WD: &[&str] = &["write", "fast"];
/// Flags: a read.
pub(super) const R: &[&str] = &["readonly"];
/// Flags: a fast read.
pub(super) const RF: &[&str] = &["readonly", "fast"];
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
        cmd("memory", -2, R, NO_KEYS, O, super::memory::memory),
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
        cmd(
            "cluster",
            -2,
            &["loading", "stale"],
            NO_KEYS,
            O,
            server::cluster,
        ),
        cmd("config", -2, ADMIN, NO_KEYS, O, config::config),
        cmd(
            "shutdown",
            -1,
            &[
                "admin",
                "noscript",
                "loading",
                "stale",
                "no_multi",
                "allow_busy",
            ],
            NO_KEYS,
            O,
            shutdown::shutdown,
        ),
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
        cmd("latency", -2, ADMIN, NO_KEYS, O, latency::latency),
        cmd("monitor", 1, ADMIN, NO_KEYS, O, server::monitor),
    ];
    // Each data-type family lists its own commands (one line per family here).
    table.extend(list::commands());
    table.extend(hash::commands());
    table.extend(set::commands());
    table.extend(zset::commands());
    table.extend(blocking::commands());
    table.extend(bitmap::commands());
    table.extend(pubsub::commands());
    for (i, c) in table.iter_mut().enumerate() {
        c.id = i;
        c.write = c.flags.contains(&"write");
        c.container = matches!(
            c.name,
            "client"
                | "config"
                | "command"
                | "object"
                | "memory"
                | "slowlog"
                | "debug"
                | "pubsub"
                | "latency"
        );
    }
    table
});

static BY_NAME: LazyLock<HashMap<&'static str, &'static CommandSpec, ahash::RandomState>> =
    LazyLock::new(|| TABLE.iter().map(|c| (c.name, c)).collect());

/// Commands with subcommands (their CLIENT LIST name is `container|sub`).
pub fn is_container(spec: &CommandSpec) -> bool {
    spec.container
}
