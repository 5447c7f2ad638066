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
use crate::protocol::Reply;
use crate::store::clock;

pub(super) fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let db = ctx.db();
    let removed = args[1..]
        .iter()
        .filter(|k| db.shard(k).remove(k, ctx.now).is_some())
        .count();
    ctx.node.store.mark_dirty(removed as u64);
    Ok(Reply::Int(removed as i64))
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
    let exists = ctx.db().shard(&args[1]).contains(&args[1], ctx.now);
    Ok(Reply::Simple(if exists { "string" } else { "none" }.into()))
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

    let mut shard = ctx.db().shard(&args[1]);
    let Some(current) = shard.deadline(&args[1], ctx.now) else {
        return Ok(Reply::Int(0));
    };
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| deadline <= c))
        || (lt && current.is_some_and(|c| deadline >= c));
    if refused {
        return Ok(Reply::Int(0));
    }
    if deadline <= ctx.now {
        shard.remove(&args[1], ctx.now);
    } else {
        shard.set_deadline(&args[1], Some(deadline), ctx.now);
    }
    drop(shard);
    ctx.node.store.mark_dirty(1);
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
    let mut shard = ctx.db().shard(&args[1]);
    let had_ttl = shard
        .get(&args[1], ctx.now)
        .is_some_and(|e| e.deadline.is_some());
    if had_ttl {
        shard.set_deadline(&args[1], None, ctx.now);
        drop(shard);
        ctx.node.store.mark_dirty(1);
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
    let removed = ctx.db().clear();
    ctx.node.store.mark_dirty(removed as u64 + 1);
    Ok(Reply::ok())
}

pub(super) fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    flush_mode(args)?;
    let removed: usize = ctx.node.store.dbs().iter().map(|db| db.clear()).sum();
    ctx.node.store.mark_dirty(removed as u64 + 1);
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
    let db = ctx.db();
    let (si, di) = (db.shard_index(src), db.shard_index(dst));
    // Both shards locked (in index order) so the move is one atomic step.
    let mut guards = db.lock_indices(vec![si, di]);
    let pos = |i: usize| usize::from(guards.len() == 2 && guards[1].0 == i);
    let (sp, dp) = (pos(si), pos(di));
    let Some(entry) = guards[sp].1.get(src, ctx.now) else {
        return Err(CommandError::Other("ERR no such key".into()));
    };
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::ok() });
    }
    if nx && guards[dp].1.contains(dst, ctx.now) {
        return Ok(Reply::Int(0));
    }
    guards[sp].1.remove(src, ctx.now);
    guards[dp].1.insert(dst, entry, ctx.now);
    drop(guards);
    ctx.node.store.mark_dirty(1);
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
    let target = ctx
        .node
        .store
        .db(target_db)
        .ok_or(CommandError::DbIndexOutOfRange)?;
    if src == dst && target_db == ctx.session.db {
        return Err(CommandError::Other(
            "ERR source and destination objects are the same".into(),
        ));
    }
    let Some(entry) = ctx.db().shard(src).get(src, ctx.now) else {
        return Ok(Reply::Int(0));
    };
    let mut shard = target.shard(dst);
    if !replace && shard.contains(dst, ctx.now) {
        return Ok(Reply::Int(0));
    }
    shard.insert(dst, entry, ctx.now);
    drop(shard);
    ctx.node.store.mark_dirty(1);
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
    let mut strings_only = true;
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
            strings_only = is(value, "string");
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
        keys.extend(db.shard_keys(next as usize, pattern, ctx.now));
        next += 1;
    }
    if !strings_only {
        keys.clear();
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
        return Ok(Reply::Array(
            lines.iter().map(|l| Reply::Simple((*l).into())).collect(),
        ));
    }
    if args.len() != 3 {
        return Err(CommandError::WrongArity(format!(
            "object|{}",
            text(sub).to_lowercase()
        )));
    }
    let value = ctx
        .db()
        .shard(&args[2])
        .get(&args[2], ctx.now)
        .map(|e| e.value.clone());
    let known = ["ENCODING", "FREQ", "IDLETIME", "REFCOUNT"];
    if !known.iter().any(|w| is(sub, w)) {
        return Err(CommandError::UnknownSubcommand {
            command: "OBJECT",
            sub: text(sub),
        });
    }
    let Some(value) = value else {
        return Ok(Reply::Nil);
    };
    if is(sub, "ENCODING") {
        Ok(Reply::Bulk(Bytes::from_static(encoding(&value).as_bytes())))
    } else if is(sub, "FREQ") {
        Err(CommandError::Other(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please \
             note that when switching between policies at runtime LRU and LFU data will take \
             some time to adjust."
                .into(),
        ))
    } else if is(sub, "IDLETIME") {
        // Access times are not tracked (there is no eviction); every key reads as just used.
        Ok(Reply::Int(0))
    } else {
        Ok(Reply::Int(1))
    }
}

/// The encoding Redis would report for a string value.
pub(super) fn encoding(value: &[u8]) -> &'static str {
    if value.len() <= 20 && super::args::int(value).is_ok() {
        "int"
    } else if value.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

pub(super) fn memory(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let sub = &args[1];
    if is(sub, "USAGE") {
        if args.len() != 3 && args.len() != 5 {
            return Err(CommandError::Syntax);
        }
        let key = &args[2];
        let size = ctx
            .db()
            .shard(key)
            .get(key, ctx.now)
            .map(|e| ENTRY_OVERHEAD + key.len() + e.value.len());
        Ok(size.map_or(Reply::Nil, |n| Reply::Int(n as i64)))
    } else if is(sub, "HELP") {
        Ok(Reply::Array(vec![
            Reply::Simple("MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".into()),
            Reply::Simple("USAGE <key> [SAMPLES <count>]".into()),
            Reply::Simple("    Return memory in bytes used by <key> and its value.".into()),
        ]))
    } else {
        Err(CommandError::UnknownSubcommand {
            command: "MEMORY",
            sub: text(sub),
        })
    }
}

/// Approximate per-key bookkeeping bytes for MEMORY USAGE: the map slot with its key and
/// value handles and their allocation headers.
const ENTRY_OVERHEAD: usize = 96;

pub(super) fn move_key(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let target_index = int(&args[2]).map_err(|_| CommandError::DbIndexOutOfRange)?;
    let target_index =
        usize::try_from(target_index).map_err(|_| CommandError::DbIndexOutOfRange)?;
    let target = ctx
        .node
        .store
        .db(target_index)
        .ok_or(CommandError::DbIndexOutOfRange)?;
    if target_index == ctx.session.db {
        return Err(CommandError::Other(
            "ERR source and destination objects are the same".into(),
        ));
    }
    let key = &args[1];
    // Lock the lower-numbered database's shard first: a MOVE the other way cannot deadlock.
    let source = ctx.db();
    let (mut src, mut dst);
    if ctx.session.db < target_index {
        src = source.shard(key);
        dst = target.shard(key);
    } else {
        dst = target.shard(key);
        src = source.shard(key);
    }
    let Some(entry) = src.get(key, ctx.now) else {
        return Ok(Reply::Int(0));
    };
    if dst.contains(key, ctx.now) {
        return Ok(Reply::Int(0));
    }
    src.remove(key, ctx.now);
    dst.insert(key, entry, ctx.now);
    drop((src, dst));
    ctx.node.store.mark_dirty(1);
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
    ctx.node.store.mark_dirty(1);
    Ok(Reply::ok())
}
