//! Hash commands, over [`crate::store::Hash`] (Redis's `t_hash.c`).
//!
//! ```text
//! HSET key field value [field value ...]     -> fields created
//! HMSET key field value [field value ...]    -> OK
//! HSETNX key field value                     -> 1 | 0
//! HGET key field                             -> bulk | nil
//! HMGET key field [field ...]                -> [bulk | nil, ...]
//! HGETALL key                                -> map (flat array in RESP2)
//! HKEYS key / HVALS key                      -> [bulk, ...]
//! HDEL key field [field ...]                 -> fields removed
//! HLEN key / HSTRLEN key field / HEXISTS key field -> integer
//! HINCRBY key field n                        -> the new integer
//! HINCRBYFLOAT key field f                   -> the new value, as text
//! HRANDFIELD key [count [WITHVALUES]]        -> bulk | nil, or [field (value) ...]
//! HSCAN key cursor [MATCH pattern] [COUNT n] -> [next cursor, [field, value, ...]]
//! ```
//! Replies, errors and the order of checks are Redis 7.0's. A `listpack` hash answers in
//! insertion order, as Redis's does; a `hashtable` in its own (hash) order. Two documented
//! differences: HSCAN's cursor on a big hash is a hash value, not a table position (every
//! field present for the whole scan is returned exactly once), and HRANDFIELD refuses a
//! negative count above `RANDOM_REPLY_MAX` elements, which Redis would try to serve.

use bytes::Bytes;

use super::args::{int, is, scan_cursor};
use super::capture::Delta;
use super::long_double;
use super::table::{cmd, CommandSpec, KEY1, R, RF, WD, WF};
use super::{CommandError, Ctx};
use crate::effect::Edit;
use crate::protocol::Reply;
use crate::stats::StatKind::Other as O;
use crate::store::{pattern, Hash};

/// The hash family's rows of the command table (arity, flags and keys as Redis 7.0's
/// COMMAND INFO reports them).
pub(super) fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("hset", -4, WF, KEY1, O, hset),
        cmd("hsetnx", 4, WF, KEY1, O, hsetnx),
        cmd("hget", 3, RF, KEY1, O, hget),
        cmd("hmget", -3, RF, KEY1, O, hmget),
        cmd("hmset", -4, WF, KEY1, O, hmset),
        cmd("hgetall", 2, R, KEY1, O, hgetall),
        cmd("hdel", -3, WD, KEY1, O, hdel),
        cmd("hlen", 2, RF, KEY1, O, hlen),
        cmd("hexists", 3, RF, KEY1, O, hexists),
        cmd("hkeys", 2, R, KEY1, O, hkeys),
        cmd("hvals", 2, R, KEY1, O, hvals),
        cmd("hincrby", 4, WF, KEY1, O, hincrby),
        cmd("hincrbyfloat", 4, WF, KEY1, O, hincrbyfloat),
        cmd("hstrlen", 3, RF, KEY1, O, hstrlen),
        cmd("hrandfield", -2, R, KEY1, O, hrandfield),
        cmd("hscan", -3, R, KEY1, O, hscan),
    ]
}

fn hset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let created = set_pairs(ctx, args, "hset")?;
    Ok(Reply::Int(created as i64))
}

fn hmset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    set_pairs(ctx, args, "hmset")?;
    Ok(Reply::ok())
}

/// HSET's core: sets every pair, returns how many fields are new.
fn set_pairs(ctx: &mut Ctx<'_>, args: &[Bytes], name: &str) -> Result<usize, CommandError> {
    if args.len() % 2 == 1 {
        return Err(CommandError::WrongArity(name.into()));
    }
    let key = &args[1];
    let created = ctx
        .write(key)?
        .update_hash_edit(key, true, |h, recording| {
            h.prepare_write(args[2..].iter().map(Bytes::len));
            let created = h.insert_pairs(
                args[2..]
                    .chunks_exact(2)
                    .map(|pair| (&pair[0][..], &pair[1][..])),
            );
            let delta = Delta::of(true, recording, || {
                let pairs = args[2..].chunks_exact(2);
                Edit::HashSet(pairs.map(|p| (p[0].clone(), p[1].clone())).collect())
            });
            (created, delta)
        })?;
    Ok(created.unwrap_or(0))
}

fn hsetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (key, field, value) = (&args[1], &args[2], &args[3]);
    let set = ctx
        .write(key)?
        .update_hash_edit(key, true, |h, recording| {
            if h.contains(field) {
                return (false, Delta::Unchanged);
            }
            h.prepare_write([field.len(), value.len()]);
            h.insert(field, value);
            (true, set_field(recording, field, value))
        })?;
    Ok(Reply::Int(i64::from(set.unwrap_or(false))))
}

fn hdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let key = &args[1];
    let removed = ctx
        .write(key)?
        .update_hash_edit(key, false, |h, recording| {
            // The fields removed are kept only when they will be recorded.
            let (mut n, mut removed) = (0, Vec::new());
            for field in &args[2..] {
                if h.remove(field) {
                    n += 1;
                    if recording {
                        removed.push(field.clone());
                    }
                    if h.is_empty() {
                        break;
                    }
                }
            }
            (n, Delta::of(n > 0, recording, || Edit::HashDel(removed)))
        })?;
    Ok(Reply::Int(removed.unwrap_or(0)))
}

fn hincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let by = int(&args[3])?;
    let (key, field) = (&args[1], &args[2]);
    let result = ctx
        .write(key)?
        .update_hash_edit(key, true, |h, recording| {
            let current = match h.get(field) {
                Some(v) => match crate::protocol::resp::parse_int(v) {
                    Some(n) => n,
                    None => {
                        let e = Err(other("ERR hash value is not an integer"));
                        return (e, Delta::Unchanged);
                    }
                },
                None => 0,
            };
            let Some(next) = current.checked_add(by) else {
                let e = Err(other("ERR increment or decrement would overflow"));
                return (e, Delta::Unchanged);
            };
            let mut text = itoa::Buffer::new();
            let text = text.format(next).as_bytes();
            h.insert(field, text);
            (Ok(next), set_field(recording, field, text))
        })?;
    result.unwrap_or(Ok(0)).map(Reply::Int)
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let by = long_double::parse(&args[3]).ok_or(CommandError::NotFloat)?;
    if by == long_double::Parsed::Infinite {
        return Err(other("ERR value is NaN or Infinity"));
    }
    let (key, field) = (&args[1], &args[2]);
    let result = ctx
        .write(key)?
        .update_hash_edit(key, true, |h, recording| {
            let current = match h.get(field) {
                Some(v) => match long_double::parse(v) {
                    Some(n) => n,
                    None => {
                        return (
                            Err(other("ERR hash value is not a float")),
                            Delta::Unchanged,
                        )
                    }
                },
                None => long_double::ZERO,
            };
            // INCRBYFLOAT's arithmetic and text (x87 `long double`, as Redis).
            let Some(next) = long_double::sum(current, by) else {
                return (
                    Err(other("ERR increment would produce NaN or Infinity")),
                    Delta::Unchanged,
                );
            };
            let text = long_double::text(next);
            h.insert(field, &text);
            let delta = set_field(recording, field, &text);
            (Ok(text), delta)
        })?;
    result.unwrap_or_else(|| Ok(Bytes::new())).map(Reply::Bulk)
}

/// The effect of a write that set one field: its edit when effects are recorded.
fn set_field(recording: bool, field: &Bytes, value: &[u8]) -> Delta {
    Delta::of(true, recording, || {
        Edit::HashSet(vec![(field.clone(), Bytes::copy_from_slice(value))])
    })
}

fn hget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], Reply::Nil, |h| {
        h.get(&args[2]).map_or(Reply::Nil, Reply::bulk)
    })
}

fn hmget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let fields = &args[2..];
    // A missing key reads as an empty hash: nils, not an error.
    let missing = Reply::Array(vec![Reply::Nil; fields.len()]);
    read(ctx, &args[1], missing, |h| {
        Reply::Array(
            fields
                .iter()
                .map(|f| h.get(f).map_or(Reply::Nil, Reply::bulk))
                .collect(),
        )
    })
}

fn hgetall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], Reply::Map(Vec::new()), |h| {
        Reply::Map(
            h.iter()
                .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
                .collect(),
        )
    })
}

fn hkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], Reply::Array(Vec::new()), |h| {
        Reply::Array(h.iter().map(|(k, _)| Reply::bulk(k)).collect())
    })
}

fn hvals(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], Reply::Array(Vec::new()), |h| {
        Reply::Array(h.iter().map(|(_, v)| Reply::bulk(v)).collect())
    })
}

fn hlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], Reply::Int(0), |h| Reply::Int(h.len() as i64))
}

fn hexists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], Reply::Int(0), |h| {
        Reply::Int(i64::from(h.contains(&args[2])))
    })
}

fn hstrlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], Reply::Int(0), |h| {
        Reply::Int(h.get(&args[2]).map_or(0, |v| v.len() as i64))
    })
}

fn hrandfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut rng = fastrand::Rng::new();
    let Some(count) = args.get(2) else {
        return read(ctx, &args[1], Reply::Nil, |h| {
            h.random(&mut rng)
                .map_or(Reply::Nil, |(k, _)| Reply::bulk(k))
        });
    };
    // The checks come before the key is looked up, in Redis's order.
    let count = int(count)?;
    if count == i64::MIN {
        return Err(other(format!(
            "ERR value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        )));
    }
    let with_values = match args.get(3) {
        None => false,
        Some(arg) if args.len() == 4 && is(arg, "WITHVALUES") => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    if with_values && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return Err(other("ERR value is out of range"));
    }
    let n = count.unsigned_abs();
    let too_many = count < 0 && n.saturating_mul(1 + u64::from(with_values)) > RANDOM_REPLY_MAX;
    let resp3 = ctx.session.protocol >= 3;
    read(ctx, &args[1], Reply::Array(Vec::new()), |h| {
        if too_many {
            // Checked once the hash is found: a missing key still answers an empty array.
            return Reply::error("ERR value is out of range");
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        // RESP3 pairs a field with its value in a two-element array; RESP2 flattens them.
        let mut push = |k: &[u8], v: &[u8]| match (with_values, resp3) {
            (false, _) => out.push(Reply::bulk(k)),
            (true, true) => out.push(Reply::Array(vec![Reply::bulk(k), Reply::bulk(v)])),
            (true, false) => out.extend([Reply::bulk(k), Reply::bulk(v)]),
        };
        if count < 0 {
            h.random_with_repeats(n, &mut rng, &mut push);
        } else {
            for (k, v) in h.random_distinct(n, &mut rng) {
                push(k, v);
            }
        }
        Reply::Array(out)
    })
}

fn hscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let cursor = scan_cursor(&args[2])?;
    let key = &args[1];
    let empty = Reply::Array(vec![Reply::bulk("0"), Reply::Array(Vec::new())]);
    // Redis parses the options only once it found the hash: a missing key answers an empty
    // scan even with bad options.
    let mut shard = ctx.db().shard(key);
    let value = shard.peek(key, ctx.now);
    ctx.node.stats.record_lookup(value.is_some());
    let Some(value) = value else {
        return Ok(empty);
    };
    let hash = value.as_hash()?;
    let mut pattern: Option<&[u8]> = None;
    let mut count = 10usize;
    let mut i = 3;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Err(CommandError::Syntax);
        };
        if is(&args[i], "COUNT") {
            let n = int(value)?;
            if n < 1 {
                return Err(CommandError::Syntax);
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if is(&args[i], "MATCH") {
            pattern = (value.as_ref() != b"*").then_some(value.as_ref());
        } else {
            return Err(CommandError::Syntax);
        }
        i += 2;
    }
    let mut items = Vec::new();
    let next = hash.scan(cursor, count, |k, v| {
        if pattern.is_none_or(|p| pattern::matches(p, k)) {
            items.extend([Reply::bulk(k), Reply::bulk(v)]);
        }
    });
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(items),
    ]))
}

/// A read command's frame: looks `key` up (counting the hit or miss, as Redis's
/// `lookupKeyRead` does), answers `missing` without it, WRONGTYPE for another type, else
/// `f`'s reply, built while the shard is held.
fn read(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    missing: Reply,
    f: impl FnOnce(&Hash) -> Reply,
) -> Result<Reply, CommandError> {
    let mut shard = ctx.db().shard(key);
    let value = shard.peek(key, ctx.now);
    ctx.node.stats.record_lookup(value.is_some());
    match value {
        None => Ok(missing),
        Some(v) => Ok(f(v.as_hash()?)),
    }
}

fn other(text: impl Into<std::borrow::Cow<'static, str>>) -> CommandError {
    CommandError::Other(text.into())
}

/// The most elements (fields, plus values with WITHVALUES) HRANDFIELD with a negative count
/// returns. Redis streams such a reply as it goes and has no limit; a node builds its reply
/// first, so a count such as -9223372036854775807 must be refused (with Redis's
/// `ERR value is out of range`) rather than exhaust memory.
pub const RANDOM_REPLY_MAX: u64 = 10_000_000;
