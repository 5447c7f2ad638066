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

use tokio::time::Instant;

use super::args::{int, is};
use super::keyspace::{deadline_after_ms, deadline_at_unix_ms, ttl_seconds};
use super::long_double;
use super::{CommandError, Ctx};
use crate::protocol::Reply;
use crate::store::{Entry, Value};

pub(super) fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let value = ctx.db().shard(&args[1]).value(&args[1], ctx.now);
    ctx.node.stats.record_lookup(value.is_some());
    Ok(match value {
        Some(v) => Reply::Bulk(v.into_string()?),
        None => Reply::Nil,
    })
}

pub(super) fn get_with_ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let entry = ctx.db().shard(&args[1]).get(&args[1], ctx.now);
    ctx.node.stats.record_lookup(entry.is_some());
    Ok(match string(entry)? {
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
    let mut shard = ctx.write(key)?;
    if condition == Condition::Always && !return_old && !matches!(expiry, Expiry::Keep) {
        // The common case needs nothing from the old entry.
        let deadline = match expiry {
            Expiry::At(d) => Some(d),
            _ => None,
        };
        shard.put(key, value, deadline);
        return Ok(Reply::ok());
    }
    let old = shard.get(key);
    // SET replaces a value of any type, but SET ... GET must return the old string.
    let old_string = if return_old {
        string(old.clone())?
    } else {
        None
    };
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
        shard.put(key, value, deadline);
    }
    Ok(match (return_old, proceed) {
        (true, _) => old_string.map_or(Reply::Nil, |(v, _)| Reply::Bulk(v)),
        (false, true) => Reply::ok(),
        (false, false) => Reply::Nil,
    })
}

pub(super) fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut shard = ctx.write(&args[1])?;
    if shard.contains(&args[1]) {
        return Ok(Reply::Int(0));
    }
    shard.put(&args[1], &args[2], None);
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
        value: Value::String(args[3].clone()),
        deadline: Some(deadline),
    };
    ctx.write(&args[1])?.insert(&args[1], entry);
    Ok(Reply::ok())
}

pub(super) fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut shard = ctx.write(&args[1])?;
    let old = string(shard.get(&args[1]))?;
    shard.put(&args[1], &args[2], None);
    Ok(old.map_or(Reply::Nil, |(v, _)| Reply::Bulk(v)))
}

pub(super) fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut shard = ctx.write(&args[1])?;
    let old = string(shard.get(&args[1]))?;
    if old.is_some() {
        shard.remove(&args[1]);
    }
    ctx.node.stats.record_lookup(old.is_some());
    Ok(old.map_or(Reply::Nil, |(v, _)| Reply::Bulk(v)))
}

pub(super) fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let db = ctx.db();
    // As in Redis, a key holding another type reads as nil here, not as an error.
    let values = args[1..]
        .iter()
        .map(|k| match db.shard(k).value(k, ctx.now) {
            Some(Value::String(v)) => Reply::Bulk(v),
            _ => Reply::Nil,
        })
        .collect();
    Ok(Reply::Array(values))
}

pub(super) fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("mset".into()));
    }
    // Every key's shard is held for the whole command (see `capture`): no reader sees half
    // of the keys set.
    for pair in args[1..].chunks(2) {
        ctx.write(&pair[0])?.put(&pair[0], &pair[1], None);
    }
    Ok(Reply::ok())
}

pub(super) fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut shard = ctx.write(&args[1])?;
    let len = match string(shard.get(&args[1]))? {
        Some((value, deadline)) => {
            let mut joined = BytesMut::with_capacity(value.len() + args[2].len());
            joined.extend_from_slice(&value);
            joined.extend_from_slice(&args[2]);
            let joined = joined.freeze();
            shard.put(&args[1], &joined, deadline);
            joined.len()
        }
        None => {
            shard.put(&args[1], &args[2], None);
            args[2].len()
        }
    };
    Ok(Reply::Int(len as i64))
}

pub(super) fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let entry = ctx.db().shard(&args[1]).get(&args[1], ctx.now);
    let len = string(entry)?.map_or(0, |(v, _)| v.len());
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
    let mut shard = ctx.write(key)?;
    // The counter is parsed where it lies and, while its length holds, rewritten in place.
    let counter = shard.modify_string(key, |current| {
        let current = current.map_or(Ok(0), int)?;
        let next = current.checked_add(by).ok_or(CommandError::Other(
            "ERR increment or decrement would overflow".into(),
        ))?;
        Ok::<_, CommandError>(Counter::new(next))
    })?;
    Ok(Reply::Int(counter.value))
}

/// An integer and its decimal text, on the stack.
struct Counter {
    value: i64,
    text: [u8; 20],
    len: u8,
}

impl Counter {
    fn new(value: i64) -> Counter {
        let mut buffer = itoa::Buffer::new();
        let digits = buffer.format(value).as_bytes();
        let mut text = [0u8; 20];
        text[..digits.len()].copy_from_slice(digits);
        Counter {
            value,
            text,
            len: digits.len() as u8,
        }
    }
}

impl AsRef<[u8]> for Counter {
    fn as_ref(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }
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

/// The string and deadline of `entry`, if there is one.
///
/// # Errors
/// WRONGTYPE when the key holds another type.
fn string(entry: Option<Entry>) -> Result<Option<(Bytes, Option<Instant>)>, CommandError> {
    match entry {
        Some(e) => Ok(Some((e.value.into_string()?, e.deadline))),
        None => Ok(None),
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
    let mut shard = ctx.write(key)?;
    let Some((value, _)) = string(shard.get(key))? else {
        ctx.node.stats.record_lookup(false);
        return Ok(Reply::Nil);
    };
    if let Some(deadline) = change {
        // A past deadline removes the key (Writer::set_deadline).
        shard.set_deadline(key, deadline);
    }
    ctx.node.stats.record_lookup(true);
    Ok(Reply::Bulk(value))
}

pub(super) fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity("msetnx".into()));
    }
    // Every key's shard is held for the whole command: the existence checks and the writes
    // are one atomic step.
    for pair in args[1..].chunks(2) {
        if ctx.write(&pair[0])?.contains(&pair[0]) {
            return Ok(Reply::Int(0));
        }
    }
    for pair in args[1..].chunks(2) {
        ctx.write(&pair[0])?.put(&pair[0], &pair[1], None);
    }
    Ok(Reply::Int(1))
}

pub(super) fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    let entry = ctx.db().shard(&args[1]).get(&args[1], ctx.now);
    let value = string(entry)?.map(|(v, _)| v).unwrap_or_default();
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
    let mut shard = ctx.write(&args[1])?;
    let Some((old, deadline)) = string(shard.get(&args[1]))? else {
        if patch.is_empty() {
            return Ok(Reply::Int(0));
        }
        let mut value = vec![0u8; offset];
        value.extend_from_slice(patch);
        let len = value.len();
        shard.put(&args[1], &Bytes::from(value), None);
        return Ok(Reply::Int(len as i64));
    };
    if patch.is_empty() {
        return Ok(Reply::Int(old.len() as i64));
    }
    let mut value = old.to_vec();
    if value.len() < offset + patch.len() {
        value.resize(offset + patch.len(), 0);
    }
    value[offset..offset + patch.len()].copy_from_slice(patch);
    let len = value.len();
    shard.put(&args[1], &Bytes::from(value), deadline);
    Ok(Reply::Int(len as i64))
}

pub(super) fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let key = &args[1];
    let mut shard = ctx.write(key)?;
    // Redis's order: the type, then the stored value, then the increment.
    let (current, deadline) = match string(shard.get(key))? {
        Some((value, deadline)) => (long_double::parse(&value), deadline),
        None => (Some(long_double::ZERO), None),
    };
    let (Some(current), Some(by)) = (current, long_double::parse(&args[2])) else {
        return Err(CommandError::NotFloat);
    };
    // In x87 `long double`, as Redis computes and prints it (see `long_double`).
    let next = long_double::sum(current, by).ok_or(CommandError::Other(
        "ERR increment would produce NaN or Infinity".into(),
    ))?;
    let text = long_double::text(next);
    shard.put(key, &text, deadline);
    Ok(Reply::Bulk(text))
}
