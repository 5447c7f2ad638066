//! Keyspace commands: DEL, EXISTS, TYPE, the EXPIRE and TTL families, PERSIST, KEYS, DBSIZE,
//! FLUSHDB and FLUSHALL.
//!
//! ```text
//! DEL key [key ...] / UNLINK key [key ...] / EXISTS key [key ...] / TYPE key
//! EXPIRE key seconds [NX|XX|GT|LT]      PEXPIRE key ms [NX|XX|GT|LT]
//! EXPIREAT key unix-s [NX|XX|GT|LT]     PEXPIREAT key unix-ms [NX|XX|GT|LT]
//! TTL key / PTTL key / EXPIRETIME key / PEXPIRETIME key / PERSIST key
//! KEYS pattern / DBSIZE / FLUSHDB [ASYNC|SYNC] / FLUSHALL [ASYNC|SYNC]
//! ```
//! Semantics and replies are Redis 7's; ASYNC flushes run synchronously (they are fast here).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::args::{int, is, text};
use super::{CommandError, Ctx};
use crate::persist::unix_ms;
use crate::protocol::Reply;

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
        .filter(|k| db.shard(k).get(k, ctx.now).is_some())
        .count();
    Ok(Reply::Int(found as i64))
}

pub(super) fn key_type(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let exists = ctx.db().shard(&args[1]).get(&args[1], ctx.now).is_some();
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
            unix_ms()
                .checked_add(ms)
                .ok_or(CommandError::InvalidExpire(name))?;
            deadline_after_ms(ctx.now, ms)
        }
        Base::Unix => deadline_at_unix_ms(ctx.now, ms),
    }
    .ok_or(CommandError::InvalidExpire(name))?;

    let mut shard = ctx.db().shard(&args[1]);
    let Some(current) = shard.get(&args[1], ctx.now).map(|e| e.deadline) else {
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
    ttl_generic(ctx, &args[1], |left| {
        ((left.as_millis() + 500) / 1000) as i64
    })
}

pub(super) fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    ttl_generic(ctx, &args[1], |left| left.as_millis() as i64)
}

pub(super) fn expiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    ttl_generic(ctx, &args[1], |left| {
        (unix_ms() + left.as_millis() as i64 + 500) / 1000
    })
}

pub(super) fn pexpiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    ttl_generic(ctx, &args[1], |left| unix_ms() + left.as_millis() as i64)
}

/// -2 for a missing key, -1 for a key without TTL, else `f(time left)`.
fn ttl_generic(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl Fn(Duration) -> i64,
) -> Result<Reply, CommandError> {
    let found = ctx.db().shard(key).get(key, ctx.now).map(|e| e.deadline);
    Ok(Reply::Int(match found {
        None => -2,
        Some(None) => -1,
        Some(Some(d)) => f(d.saturating_duration_since(ctx.now)),
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
pub(super) fn deadline_at_unix_ms(now: Instant, at_ms: i64) -> Option<Instant> {
    deadline_after_ms(now, at_ms.checked_sub(unix_ms())?)
}

/// Seconds left as the spec's GET reports them (Redis TTL rounding), -1 without a deadline.
pub(super) fn ttl_seconds(deadline: Option<Instant>, now: Instant) -> i64 {
    deadline.map_or(-1, |d| {
        ((d.saturating_duration_since(now).as_millis() + 500) / 1000) as i64
    })
}
