//! Keyspace commands: DEL, EXISTS, TYPE, the EXPIRE and TTL families, PERSIST, KEYS, DBSIZE,
//! FLUSHDB and FLUSHALL.
//!
//! ```text
//! DEL key [key ...] / UNLINK key [key ...] / EXISTS key [key ...] / TYPE key
//! EXPIRE key seconds [NX|XX|GT|LT]      PEXPIRE key ms [NX|XX|GT|LT]
//! EXPIREAT key unix-s [NX|XX|GT|LT]     PEXPIREAT key unix-ms [NX|XX|GT|LT]
//! TTL key / PTTL key / EXPIRETIME key / PEXPIRETIME key / PERSIST key
//! RENAME key newkey / RENAMENX key newkey / COPY src dst [DB n] [REPLACE] / TOUCH key [key ...]
//! RANDOMKEY / SCAN cursor [MATCH pattern] [COUNT n] [TYPE type] / MOVE key db / SWAPDB a b
//! OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key / MEMORY USAGE key
//! KEYS pattern / DBSIZE / FLUSHDB [ASYNC|SYNC] / FLUSHALL [ASYNC|SYNC]
//! ```
//! Semantics and replies are Redis 7's; ASYNC flushes run synchronously (they are fast here).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::args::{int, is, text};
use super::{CommandError, Ctx};
use crate::effect::Effect;
use crate::protocol::Reply;
use crate::store::shard::Mode;
use crate::store::{clock, Kind};

pub(super) fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    // Every key's shard is held for the whole command: the deletion is atomic, as in Redis.
    let mut removed = 0;
    for key in &args[1..] {
        if ctx.write(key)?.remove(key).is_some() {
            removed += 1;
        }
    }
    Ok(Reply::Int(removed))
}

pub(super) fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let db = ctx.db();
    let found = args[1..]
        .iter()
        .filter(|k| db.shard(k).contains(k, ctx.now))
        .count();
    Ok(Reply::Int(found as i64))
}

pub(super) fn key_type(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let kind = ctx.db().shard(&args[1]).kind(&args[1], ctx.now);
    Ok(Reply::Simple(kind.map_or("none", Kind::name).into()))
}

pub(super) fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    expire_generic(ctx, args, Base::Relative, 1000, "expire")
}

pub(super) fn pexpire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    expire_generic(ctx, args, Base::Relative, 1, "pexpire")
}

pub(super) fn expireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    expire_generic(ctx, args, Base::Unix, 1000, "expireat")
}

pub(super) fn pexpireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    expire_generic(ctx, args, Base::Unix, 1, "pexpireat")
}

enum Base {
    Relative,
    Unix,
}

/// Redis's `expireGenericCommand`: parse, check the NX/XX/GT/LT condition against the current
/// TTL, then set the deadline, or delete the key when the deadline is already past.
fn expire_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    base: Base,
    unit_ms: i64,
    name: &'static str,
) -> Result<Reply, CommandError> {
    let n = int(&args[2])?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        if is(opt, "NX") {
            nx = true;
        } else if is(opt, "XX") {
            xx = true;
        } else if is(opt, "GT") {
            gt = true;
        } else if is(opt, "LT") {
            lt = true;
        } else {
            return Err(CommandError::Other(
                format!("ERR Unsupported option {}", text(opt)).into(),
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CommandError::Other(
            "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
        ));
    }
    if gt && lt {
        return Err(CommandError::Other(
            "ERR GT and LT options at the same time are not compatible".into(),
        ));
    }
    let ms = n
        .checked_mul(unit_ms)
        .ok_or(CommandError::InvalidExpire(name))?;
    let deadline = match base {
        Base::Relative => {
            clock::unix_ms_at(ctx.now)
                .checked_add(ms)
                .ok_or(CommandError::InvalidExpire(name))?;
            deadline_after_ms(ctx.now, ms)
        }
        Base::Unix => deadline_at_unix_ms(ctx.now, ms),
    }
    .ok_or(CommandError::InvalidExpire(name))?;

    let mut shard = ctx.write(&args[1])?;
    let Some(current) = shard.deadline(&args[1]) else {
        return Ok(Reply::Int(0));
    };
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| deadline <= c))
        || (lt && current.is_some_and(|c| deadline >= c));
    if refused {
        return Ok(Reply::Int(0));
    }
    // A deadline at or before now deletes the key (Writer::set_deadline), as in Redis.
    shard.set_deadline(&args[1], Some(deadline));
    Ok(Reply::Int(1))
}

pub(super) fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let now = ctx.now;
    ttl_generic(ctx, &args[1], |d| (left_ms(d, now) + 500) / 1000)
}

pub(super) fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let now = ctx.now;
    ttl_generic(ctx, &args[1], |d| left_ms(d, now))
}

pub(super) fn expiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    ttl_generic(ctx, &args[1], |d| (clock::unix_ms_at(d) + 500) / 1000)
}

pub(super) fn pexpiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    ttl_generic(ctx, &args[1], clock::unix_ms_at)
}

fn left_ms(deadline: Instant, now: Instant) -> i64 {
    deadline.saturating_duration_since(now).as_millis() as i64
}

/// -2 for a missing key, -1 for a key without TTL, else `f(deadline)`.
fn ttl_generic(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl Fn(Instant) -> i64,
) -> Result<Reply, CommandError> {
    let found = ctx.db().shard(key).deadline(key, ctx.now);
    Ok(Reply::Int(match found {
        None => -2,
        Some(None) => -1,
        Some(Some(d)) => f(d),
    }))
}

pub(super) fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut shard = ctx.write(&args[1])?;
    let had_ttl = shard.deadline(&args[1]).flatten().is_some();
    if had_ttl {
        shard.set_deadline(&args[1], None);
    }
    Ok(Reply::Int(i64::from(had_ttl)))
}

pub(super) fn keys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let keys = ctx.db().keys(&args[1], ctx.now);
    Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()))
}

pub(super) fn dbsize(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    Ok(Reply::Int(ctx.db().counts(ctx.now).0 as i64))
}

pub(super) fn flushdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    flush_mode(args)?;
    // FLUSHDB runs alone (its table entry takes the gate exclusively): no key lock needed.
    let removed = ctx.db().clear();
    let db = ctx.session.db;
    ctx.record(Effect::FlushDb { db }, removed as u64 + 1);
    Ok(Reply::ok())
}

pub(super) fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    flush_mode(args)?;
    let removed: usize = ctx.node.store.dbs().iter().map(|db| db.clear()).sum();
    ctx.record(Effect::FlushAll, removed as u64 + 1);
    Ok(Reply::ok())
}

fn flush_mode(args: &[Bytes]) -> Result<(), CommandError> {
    match args.get(1..) {
        Some([]) | None => Ok(()),
        Some([mode]) if is(mode, "ASYNC") || is(mode, "SYNC") => Ok(()),
        _ => Err(CommandError::Syntax),
    }
}

/// The deadline `ms` milliseconds after `now`; `now` itself for zero or negative values (the
/// key is then already expired); `None` on overflow.
pub(super) fn deadline_after_ms(now: Instant, ms: i64) -> Option<Instant> {
    if ms <= 0 {
        Some(now)
    } else {
        now.checked_add(Duration::from_millis(ms as u64))
    }
}

/// The deadline at Unix time `at_ms`, mapped onto the monotonic clock.
pub(super) fn deadline_at_unix_ms(_now: Instant, at_ms: i64) -> Option<Instant> {
    clock::instant_at_unix_ms(at_ms)
}

/// Seconds left as the spec's GET reports them (Redis TTL rounding), -1 without a deadline.
pub(super) fn ttl_seconds(deadline: Option<Instant>, now: Instant) -> i64 {
    deadline.map_or(-1, |d| {
        ((d.saturating_duration_since(now).as_millis() + 500) / 1000) as i64
    })
}

pub(super) fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    rename_generic(ctx, args, false)
}

pub(super) fn renamenx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    rename_generic(ctx, args, true)
}

fn rename_generic(ctx: &mut Ctx<'_>, args: &[Bytes], nx: bool) -> Result<Reply, CommandError> {
    let (src, dst) = (&args[1], &args[2]);
    // Both shards are held for the whole command: the rename is one atomic step.
    let Some(entry) = ctx.write(src)?.get(src) else {
        return Err(CommandError::Other("ERR no such key".into()));
    };
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::ok() });
    }
    if nx && ctx.write(dst)?.contains(dst) {
        return Ok(Reply::Int(0));
    }
    ctx.write(src)?.remove(src);
    ctx.write(dst)?.insert(dst, entry);
    Ok(if nx { Reply::Int(1) } else { Reply::ok() })
}

pub(super) fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (src, dst) = (&args[1], &args[2]);
    let mut target_db = ctx.session.db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "REPLACE") {
            replace = true;
        } else if is(&args[i], "DB") && i + 1 < args.len() {
            let n = int(&args[i + 1])?;
            target_db = usize::try_from(n).map_err(|_| CommandError::DbIndexOutOfRange)?;
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    if ctx.node.store.db(target_db).is_none() {
        return Err(CommandError::DbIndexOutOfRange);
    }
    if src == dst && target_db == ctx.session.db {
        return Err(CommandError::Other(
            "ERR source and destination objects are the same".into(),
        ));
    }
    let Some(entry) = ctx.write(src)?.get(src) else {
        return Ok(Reply::Int(0));
    };
    let mut shard = ctx.write_in(target_db, dst)?;
    if !replace && shard.contains(dst) {
        return Ok(Reply::Int(0));
    }
    shard.insert(dst, entry);
    Ok(Reply::Int(1))
}

pub(super) fn randomkey(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    Ok(ctx.db().random_key(ctx.now).map_or(Reply::Nil, Reply::Bulk))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`. The cursor is the index of the next
/// shard to read; each call reads whole shards (at least one, until COUNT keys are found), so
/// every key present for the whole scan is returned exactly once per shard visit.
pub(super) fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CommandError::Other("ERR invalid cursor".into()))?;
    let mut pattern: &[u8] = b"*";
    let mut count = 10usize;
    // None: every type; Some(None): a type no key here has.
    let mut kind: Option<Option<Kind>> = None;
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(CommandError::Syntax);
        }
        let value = &args[i + 1];
        if is(&args[i], "MATCH") {
            pattern = value;
        } else if is(&args[i], "COUNT") {
            let n = int(value)?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            count = n as usize;
        } else if is(&args[i], "TYPE") {
            kind = Some(Kind::from_name(value));
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    let db = ctx.db();
    let shards = db.shard_count() as u64;
    let mut next = cursor;
    let mut keys = Vec::new();
    while next < shards && keys.len() < count {
        if kind != Some(None) {
            keys.extend(db.shard_keys(next as usize, pattern, kind.flatten(), ctx.now));
        }
        next += 1;
    }
    let next = if next >= shards { 0 } else { next };
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
    ]))
}

pub(super) fn object(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let sub = &args[1];
    if is(sub, "HELP") {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key> (needs an LFU policy).",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ];
        return Ok(Reply::status_lines(&lines));
    }
    if args.len() != 3 {
        return Err(CommandError::WrongArity(format!(
            "object|{}",
            text(sub).to_lowercase()
        )));
    }
    // OBJECT is not an access (Redis looks the key up with LOOKUP_NOTOUCH).
    let encoding = ctx
        .db()
        .shard(&args[2])
        .untouched(|s| s.peek(&args[2], ctx.now).map(|v| v.encoding()));
    let known = ["ENCODING", "FREQ", "IDLETIME", "REFCOUNT"];
    if !known.iter().any(|w| is(sub, w)) {
        return Err(CommandError::UnknownSubcommand {
            command: "OBJECT",
            sub: text(sub),
        });
    }
    let Some(encoding) = encoding else {
        return Ok(Reply::Nil);
    };
    if is(sub, "ENCODING") {
        Ok(Reply::text(encoding))
    } else if is(sub, "FREQ") {
        let policy = ctx.node.memory.policy();
        if policy.tracking() != Some(Mode::Lfu) {
            return Err(CommandError::Other(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
                 Please note that when switching between policies at runtime LRU and LFU data \
                 will take some time to adjust."
                    .into(),
            ));
        }
        let freq = ctx.db().shard(&args[2]).freq(&args[2], ctx.now);
        Ok(Reply::Int(freq.map_or(0, i64::from)))
    } else if is(sub, "IDLETIME") {
        let policy = ctx.node.memory.policy();
        if policy.tracking() == Some(Mode::Lfu) {
            return Err(CommandError::Other(
                "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note \
                 that when switching between policies at runtime LRU and LFU data will take \
                 some time to adjust."
                    .into(),
            ));
        }
        // Idle time is tracked under an LRU policy only (docs/compatibility.md): otherwise
        // every key reads as just used.
        let idle = ctx.db().shard(&args[2]).idle_ms(&args[2], ctx.now);
        Ok(Reply::Int(idle.map_or(0, |ms| (ms / 1000) as i64)))
    } else {
        Ok(Reply::Int(1))
    }
}

pub(super) fn move_key(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let target_index = int(&args[2]).map_err(|_| CommandError::DbIndexOutOfRange)?;
    let target_index =
        usize::try_from(target_index).map_err(|_| CommandError::DbIndexOutOfRange)?;
    if ctx.node.store.db(target_index).is_none() {
        return Err(CommandError::DbIndexOutOfRange);
    }
    if target_index == ctx.session.db {
        return Err(CommandError::Other(
            "ERR source and destination objects are the same".into(),
        ));
    }
    let key = &args[1];
    // Both databases' shards of the key are held for the whole command (locked in database
    // order, see `capture`): the move is one atomic step.
    let Some(entry) = ctx.write(key)?.get(key) else {
        return Ok(Reply::Int(0));
    };
    if ctx.write_in(target_index, key)?.contains(key) {
        return Ok(Reply::Int(0));
    }
    ctx.write(key)?.remove(key);
    ctx.write_in(target_index, key)?.insert(key, entry);
    Ok(Reply::Int(1))
}

pub(super) fn swapdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let a = int(&args[1]).map_err(|_| CommandError::Other("ERR invalid first DB index".into()))?;
    let b = int(&args[2]).map_err(|_| CommandError::Other("ERR invalid second DB index".into()))?;
    let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b)) else {
        return Err(CommandError::DbIndexOutOfRange);
    };
    // The gate is held exclusively (SWAPDB's table entry): nobody sees a half swap.
    if !ctx.node.store.swap_dbs(a, b) {
        return Err(CommandError::DbIndexOutOfRange);
    }
    // Lists and sorted sets may have appeared under keys clients block on.
    ctx.node.blocking.wake_all();
    ctx.record(Effect::SwapDb { a, b }, 1);
    Ok(Reply::ok())
}
