//! String commands: GET, SET and their variants, MGET/MSET, APPEND, STRLEN, INCR family.
//!
//! ```text
//! GET key                      -> bulk | nil
//! GETWITHTTL key               -> [value, ttl seconds (-1 none)] | nil   (minikv extension)
//! SET key value [NX|XX] [GET] [EX s|PX ms|EXAT unix-s|PXAT unix-ms|KEEPTTL]
//! SETNX key value / SETEX key s value / PSETEX key ms value / GETSET key value / GETDEL key
//! MGET key [key ...] / MSET key value [key value ...]
//! GETEX key [EX s|PX ms|EXAT unix-s|PXAT unix-ms|PERSIST] / MSETNX key value [key value ...]
//! APPEND key value / STRLEN key / GETRANGE key start end / SETRANGE key offset value
//! INCR key / DECR key / INCRBY key n / DECRBY key n / INCRBYFLOAT key f
//! ```
//! GETWITHTTL is what the spec's GET needs (value and TTL in one request, counted once);
//! everything else follows Redis 7.

use bytes::{Bytes, BytesMut};

use super::args::{int, is};
use super::keyspace::{deadline_after_ms, deadline_at_unix_ms, ttl_seconds};
use super::{CommandError, Ctx};
use crate::protocol::Reply;
use crate::store::Entry;

pub(super) fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let value = ctx
        .db()
        .shard(&args[1])
        .get(&args[1], ctx.now)
        .map(|e| e.value.clone());
    ctx.node
        .stats
        .record_lookup(value.is_some(), ctx.session.client.id);
    Ok(value.map_or(Reply::Nil, Reply::Bulk))
}

pub(super) fn get_with_ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let found = ctx
        .db()
        .shard(&args[1])
        .get(&args[1], ctx.now)
        .map(|e| (e.value.clone(), e.deadline));
    ctx.node
        .stats
        .record_lookup(found.is_some(), ctx.session.client.id);
    Ok(match found {
        Some((value, deadline)) => Reply::Array(vec![
            Reply::Bulk(value),
            Reply::Int(ttl_seconds(deadline, ctx.now)),
        ]),
        None => Reply::Nil,
    })
}

/// When the key's new TTL comes from.
enum Expiry {
    /// No TTL option: the key loses any TTL it had.
    Clear,
    /// KEEPTTL.
    Keep,
    /// EX/PX/EXAT/PXAT.
    At(tokio::time::Instant),
}

#[derive(PartialEq)]
enum Condition {
    Always,
    IfMissing,
    IfExists,
}

pub(super) fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    // Options are parsed as Redis's `parseExtendedStringArgumentsOrReply` does: repeating an
    // option is allowed, conflicting ones are a syntax error, and the expire value is checked
    // only after every option parsed.
    let mut condition = Condition::Always;
    let mut return_old = false;
    let mut keep_ttl = false;
    let mut expire: Option<(&'static str, &Bytes)> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        let next = args.get(i + 1);
        let kind = ["EX", "PX", "EXAT", "PXAT"]
            .into_iter()
            .find(|w| is(opt, w));
        if is(opt, "NX") && condition != Condition::IfExists {
            condition = Condition::IfMissing;
        } else if is(opt, "XX") && condition != Condition::IfMissing {
            condition = Condition::IfExists;
        } else if is(opt, "GET") {
            return_old = true;
        } else if is(opt, "KEEPTTL") && expire.is_none() {
            keep_ttl = true;
        } else if let (Some(kind), Some(value)) = (kind, next) {
            if keep_ttl || expire.is_some_and(|(k, _)| k != kind) {
                return Err(CommandError::Syntax);
            }
            expire = Some((kind, value));
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    let expiry = match expire {
        None if keep_ttl => Expiry::Keep,
        None => Expiry::Clear,
        Some((kind, value)) => Expiry::At(expire_option(kind, value, ctx.now, "set")?),
    };
    let (key, value) = (&args[1], &args[2]);
    let mut shard = ctx.db().shard(key);
    if condition == Condition::Always && !return_old && !matches!(expiry, Expiry::Keep) {
        // The common case needs nothing from the old entry.
        let deadline = match expiry {
            Expiry::At(d) => Some(d),
            _ => None,
        };
        shard.put(key, value, deadline, ctx.now);
        drop(shard);
        ctx.node.store.mark_dirty(1);
        return Ok(Reply::ok());
    }
    let old = shard.get(key, ctx.now);
    let proceed = match condition {
        Condition::Always => true,
        Condition::IfMissing => old.is_none(),
        Condition::IfExists => old.is_some(),
    };
    if proceed {
        let deadline = match expiry {
            Expiry::Clear => None,
            Expiry::Keep => old.as_ref().and_then(|e| e.deadline),
            Expiry::At(d) => Some(d),
        };
        shard.put(key, value, deadline, ctx.now);
        drop(shard);
        ctx.node.store.mark_dirty(1);
    }
    Ok(match (return_old, proceed) {
        (true, _) => old.map_or(Reply::Nil, |e| Reply::Bulk(e.value)),
        (false, true) => Reply::ok(),
        (false, false) => Reply::Nil,
    })
}

pub(super) fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut shard = ctx.db().shard(&args[1]);
    if shard.contains(&args[1], ctx.now) {
        return Ok(Reply::Int(0));
    }
    shard.put(&args[1], &args[2], None, ctx.now);
    drop(shard);
    ctx.node.store.mark_dirty(1);
    Ok(Reply::Int(1))
}

pub(super) fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    set_with_ttl(ctx, args, 1000, "setex")
}

pub(super) fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    set_with_ttl(ctx, args, 1, "psetex")
}

fn set_with_ttl(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    unit_ms: i64,
    name: &'static str,
) -> Result<Reply, CommandError> {
    let n = int(&args[2])?;
    if n <= 0 {
        return Err(CommandError::InvalidExpire(name));
    }
    let deadline = n
        .checked_mul(unit_ms)
        .and_then(|ms| deadline_after_ms(ctx.now, ms))
        .ok_or(CommandError::InvalidExpire(name))?;
    let entry = Entry {
        value: Bytes::copy_from_slice(&args[3]),
        deadline: Some(deadline),
    };
    ctx.db().shard(&args[1]).insert(&args[1], entry, ctx.now);
    ctx.node.store.mark_dirty(1);
    Ok(Reply::ok())
}

pub(super) fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let old = ctx
        .db()
        .shard(&args[1])
        .insert(&args[1], plain(&args[2]), ctx.now);
    ctx.node.store.mark_dirty(1);
    Ok(old.map_or(Reply::Nil, |e| Reply::Bulk(e.value)))
}

pub(super) fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let old = ctx.db().shard(&args[1]).remove(&args[1], ctx.now);
    ctx.node
        .stats
        .record_lookup(old.is_some(), ctx.session.client.id);
    if old.is_some() {
        ctx.node.store.mark_dirty(1);
    }
    Ok(old.map_or(Reply::Nil, |e| Reply::Bulk(e.value)))
}

pub(super) fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let db = ctx.db();
    let values = args[1..]
        .iter()
        .map(|k| {
            db.shard(k)
                .value(k, ctx.now)
                .map_or(Reply::Nil, Reply::Bulk)
        })
        .collect();
    Ok(Reply::Array(values))
}

pub(super) fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("mset".into()));
    }
    let db = ctx.db();
    let pairs: Vec<(&Bytes, &Bytes)> = args[1..].chunks(2).map(|p| (&p[0], &p[1])).collect();
    // Lock every involved shard (in index order, so concurrent MSETs cannot deadlock) so that
    // no reader sees half of the keys set.
    let mut guards = db.lock_indices(pairs.iter().map(|(k, _)| db.shard_index(k)).collect());
    for (key, value) in &pairs {
        let index = db.shard_index(key);
        if let Some((_, shard)) = guards.iter_mut().find(|(i, _)| *i == index) {
            shard.put(key, value, None, ctx.now);
        }
    }
    drop(guards);
    ctx.node.store.mark_dirty(pairs.len() as u64);
    Ok(Reply::ok())
}

pub(super) fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut shard = ctx.db().shard(&args[1]);
    let len = match shard.get(&args[1], ctx.now) {
        Some(entry) => {
            let mut joined = BytesMut::with_capacity(entry.value.len() + args[2].len());
            joined.extend_from_slice(&entry.value);
            joined.extend_from_slice(&args[2]);
            shard.put(&args[1], &joined, entry.deadline, ctx.now);
            joined.len()
        }
        None => {
            shard.put(&args[1], &args[2], None, ctx.now);
            args[2].len()
        }
    };
    drop(shard);
    ctx.node.store.mark_dirty(1);
    Ok(Reply::Int(len as i64))
}

pub(super) fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let len = ctx
        .db()
        .shard(&args[1])
        .get(&args[1], ctx.now)
        .map_or(0, |e| e.value.len());
    Ok(Reply::Int(len as i64))
}

pub(super) fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    add(ctx, &args[1], 1)
}

pub(super) fn decr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    add(ctx, &args[1], -1)
}

pub(super) fn incrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    add(ctx, &args[1], int(&args[2])?)
}

pub(super) fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let by = int(&args[2])?;
    let by = by
        .checked_neg()
        .ok_or(CommandError::Other("ERR decrement would overflow".into()))?;
    add(ctx, &args[1], by)
}

/// INCRBY's core: the stored value must be a 64-bit decimal integer; the TTL is kept.
fn add(ctx: &mut Ctx<'_>, key: &Bytes, by: i64) -> Result<Reply, CommandError> {
    let mut shard = ctx.db().shard(key);
    let (current, deadline) = match shard.get(key, ctx.now) {
        Some(e) => (int(&e.value)?, e.deadline),
        None => (0, None),
    };
    let next = current.checked_add(by).ok_or(CommandError::Other(
        "ERR increment or decrement would overflow".into(),
    ))?;
    let entry = Entry {
        value: Bytes::from(itoa::Buffer::new().format(next).to_owned()),
        deadline,
    };
    shard.insert(key, entry, ctx.now);
    drop(shard);
    ctx.node.store.mark_dirty(1);
    Ok(Reply::Int(next))
}

/// The deadline an `EX`/`PX`/`EXAT`/`PXAT` option asks for (SET, GETEX): the value must be
/// a positive integer and the deadline representable, else Redis's invalid-expire error.
fn expire_option(
    kind: &str,
    value: &[u8],
    now: tokio::time::Instant,
    command: &'static str,
) -> Result<tokio::time::Instant, CommandError> {
    let n = int(value)?;
    if n <= 0 {
        return Err(CommandError::InvalidExpire(command));
    }
    let deadline = match kind {
        "EX" => n
            .checked_mul(1000)
            .and_then(|ms| deadline_after_ms(now, ms)),
        "PX" => deadline_after_ms(now, n),
        "EXAT" => n
            .checked_mul(1000)
            .and_then(|ms| deadline_at_unix_ms(now, ms)),
        _ => deadline_at_unix_ms(now, n),
    };
    deadline.ok_or(CommandError::InvalidExpire(command))
}

/// An entry without TTL holding a copy of `value` (never a slice of the request buffer).
fn plain(value: &[u8]) -> Entry {
    Entry {
        value: Bytes::copy_from_slice(value),
        deadline: None,
    }
}

pub(super) fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    // None: leave the TTL; Some(None): PERSIST; Some(Some(d)): new deadline.
    let mut change: Option<Option<tokio::time::Instant>> = None;
    let mut i = 2;
    while i < args.len() {
        let opt = &args[i];
        if is(opt, "PERSIST") && change.is_none() {
            change = Some(None);
        } else if change.is_none()
            && i + 1 < args.len()
            && ["EX", "PX", "EXAT", "PXAT"].iter().any(|w| is(opt, w))
        {
            let kind = if is(opt, "EX") {
                "EX"
            } else if is(opt, "PX") {
                "PX"
            } else if is(opt, "EXAT") {
                "EXAT"
            } else {
                "PXAT"
            };
            change = Some(Some(expire_option(kind, &args[i + 1], ctx.now, "getex")?));
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    let key = &args[1];
    let mut shard = ctx.db().shard(key);
    let Some(value) = shard.get(key, ctx.now).map(|e| e.value.clone()) else {
        ctx.node.stats.record_lookup(false, ctx.session.client.id);
        return Ok(Reply::Nil);
    };
    ctx.node.stats.record_lookup(true, ctx.session.client.id);
    match change {
        None => {}
        Some(Some(d)) if d <= ctx.now => {
            shard.remove(key, ctx.now);
        }
        Some(deadline) => {
            shard.set_deadline(key, deadline, ctx.now);
        }
    }
    drop(shard);
    if change.is_some() {
        ctx.node.store.mark_dirty(1);
    }
    Ok(Reply::Bulk(value))
}

pub(super) fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("msetnx".into()));
    }
    let db = ctx.db();
    let pairs: Vec<(&Bytes, &Bytes)> = args[1..].chunks(2).map(|p| (&p[0], &p[1])).collect();
    // All shards locked together: the existence check and the writes are one atomic step.
    let mut guards = db.lock_indices(pairs.iter().map(|(k, _)| db.shard_index(k)).collect());
    let mut shard_of = |key: &Bytes| {
        let index = db.shard_index(key);
        guards
            .iter_mut()
            .position(|(i, _)| *i == index)
            .expect("every key's shard was locked above")
    };
    let positions: Vec<usize> = pairs.iter().map(|(k, _)| shard_of(k)).collect();
    let any_exists = pairs
        .iter()
        .zip(&positions)
        .any(|((k, _), &p)| guards[p].1.contains(k, ctx.now));
    if any_exists {
        return Ok(Reply::Int(0));
    }
    for ((key, value), &p) in pairs.iter().zip(&positions) {
        guards[p].1.put(key, value, None, ctx.now);
    }
    drop(guards);
    ctx.node.store.mark_dirty(pairs.len() as u64);
    Ok(Reply::Int(1))
}

pub(super) fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    let value = ctx
        .db()
        .shard(&args[1])
        .get(&args[1], ctx.now)
        .map(|e| e.value.clone())
        .unwrap_or_default();
    let len = value.len() as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 {
        (len + end).max(0)
    } else {
        end.min(len - 1)
    };
    if start > end {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    Ok(Reply::Bulk(value.slice(start as usize..=end as usize)))
}

pub(super) fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let offset = int(&args[2])?;
    if offset < 0 {
        return Err(CommandError::Other("ERR offset is out of range".into()));
    }
    let patch = &args[3];
    let offset = offset as usize;
    if offset + patch.len() > ctx.node.config.resp_limits.max_bulk_len {
        return Err(CommandError::Other(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into(),
        ));
    }
    let mut shard = ctx.db().shard(&args[1]);
    let existing = shard.get(&args[1], ctx.now);
    let Some(entry) = existing else {
        if patch.is_empty() {
            return Ok(Reply::Int(0));
        }
        let mut value = vec![0u8; offset];
        value.extend_from_slice(patch);
        let len = value.len();
        shard.insert(
            &args[1],
            Entry {
                value: Bytes::from(value),
                deadline: None,
            },
            ctx.now,
        );
        drop(shard);
        ctx.node.store.mark_dirty(1);
        return Ok(Reply::Int(len as i64));
    };
    if patch.is_empty() {
        return Ok(Reply::Int(entry.value.len() as i64));
    }
    let mut value = entry.value.to_vec();
    if value.len() < offset + patch.len() {
        value.resize(offset + patch.len(), 0);
    }
    value[offset..offset + patch.len()].copy_from_slice(patch);
    let len = value.len();
    shard.insert(
        &args[1],
        Entry {
            value: Bytes::from(value),
            deadline: entry.deadline,
        },
        ctx.now,
    );
    drop(shard);
    ctx.node.store.mark_dirty(1);
    Ok(Reply::Int(len as i64))
}

pub(super) fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let by = super::args::float(&args[2])?;
    let key = &args[1];
    let mut shard = ctx.db().shard(key);
    let (current, deadline) = match shard.get(key, ctx.now) {
        Some(e) => (super::args::float(&e.value)?, e.deadline),
        None => (0.0, None),
    };
    let next = current + by;
    if !next.is_finite() {
        return Err(CommandError::Other(
            "ERR increment would produce NaN or Infinity".into(),
        ));
    }
    // Shortest text that reads back as the same number, without exponent, as Redis prints.
    let text = Bytes::from(format!("{next}"));
    shard.insert(
        key,
        Entry {
            value: text.clone(),
            deadline,
        },
        ctx.now,
    );
    drop(shard);
    ctx.node.store.mark_dirty(1);
    Ok(Reply::Bulk(text))
}
