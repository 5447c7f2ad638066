//! List commands (Redis's `t_list.c`), without the blocking forms.
//!
//! ```text
//! LPUSH key element [element ...]      RPUSH key element [element ...]   -> length
//! LPUSHX key element [element ...]     RPUSHX key element [element ...]  -> length | 0
//! LPOP key [count]                     RPOP key [count]      -> bulk | nil, or array | nil array
//! LLEN key                                                   -> length
//! LRANGE key start stop                                      -> array
//! LINDEX key index                                           -> bulk | nil
//! LSET key index element                                     -> OK
//! LINSERT key BEFORE|AFTER pivot element                     -> length | -1 | 0
//! LREM key count element                                     -> removed
//! LTRIM key start stop                                       -> OK
//! LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len] -> index | nil, or array
//! LMOVE source destination LEFT|RIGHT LEFT|RIGHT             -> bulk | nil
//! RPOPLPUSH source destination                               -> bulk | nil
//! LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]       -> [key, [element ...]] | nil array
//! ```
//! Replies, errors and the order of their checks are Redis 7.0's. Elements enter a list in
//! one place only (`push`: LPUSH, RPUSH, their X forms and LMOVE's destination) and leave
//! it from one end in one place (`pop`), the two places blocked clients will be woken
//! from and served by. Read commands copy what they answer out of the list while the
//! shard is locked (LRANGE: one `memcpy` per node) and build the reply after unlocking.

use std::borrow::Cow;

use bytes::Bytes;

use super::args::{int, is};
use super::table::{cmd, CommandSpec, KEY1, R, RF, W, WD, WF};
use super::{CommandError, Ctx};
use crate::protocol::resp::parse_int;
use crate::protocol::{Reply, Strings};
use crate::stats::StatKind::Other as O;
use crate::store::{Kind, List, WrongType};

/// The list family's rows of the command table (arity, flags and key positions as Redis
/// 7.0's COMMAND INFO reports them).
pub(super) fn commands() -> Vec<CommandSpec> {
    const WRITE: &[&str] = &["write"];
    vec![
        cmd("lpush", -3, WF, KEY1, O, lpush),
        cmd("rpush", -3, WF, KEY1, O, rpush),
        cmd("lpushx", -3, WF, KEY1, O, lpushx),
        cmd("rpushx", -3, WF, KEY1, O, rpushx),
        cmd("lpop", -2, WD, KEY1, O, lpop),
        cmd("rpop", -2, WD, KEY1, O, rpop),
        cmd("llen", 2, RF, KEY1, O, llen),
        cmd("lrange", 4, R, KEY1, O, lrange),
        cmd("lindex", 3, R, KEY1, O, lindex),
        cmd("lset", 4, W, KEY1, O, lset),
        cmd("linsert", 5, W, KEY1, O, linsert),
        cmd("lrem", 4, WRITE, KEY1, O, lrem),
        cmd("ltrim", 4, WRITE, KEY1, O, ltrim),
        cmd("lpos", -3, R, KEY1, O, lpos),
        cmd("lmove", 5, W, (1, 2, 1), O, lmove),
        cmd("rpoplpush", 3, W, (1, 2, 1), O, rpoplpush),
        cmd("lmpop", -4, &["write", "movablekeys"], (0, 0, 0), O, lmpop).keys_with(lmpop_keys),
    ]
}

/// An end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The head (LEFT).
    Head,
    /// The tail (RIGHT).
    Tail,
}

impl End {
    /// `LEFT` or `RIGHT`, any case.
    ///
    /// # Errors
    /// `ERR syntax error` for anything else.
    pub(super) fn parse(arg: &[u8]) -> Result<End, CommandError> {
        if is(arg, "left") {
            Ok(End::Head)
        } else if is(arg, "right") {
            Ok(End::Tail)
        } else {
            Err(CommandError::Syntax)
        }
    }
}

fn lpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    push_command(ctx, args, End::Head, true)
}

fn rpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    push_command(ctx, args, End::Tail, true)
}

fn lpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    push_command(ctx, args, End::Head, false)
}

fn rpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    push_command(ctx, args, End::Tail, false)
}

fn push_command(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    end: End,
    create: bool,
) -> Result<Reply, CommandError> {
    let len = push(ctx, &args[1], &args[2..], end, create)?;
    Ok(Reply::Int(len.map_or(0, |n| n as i64)))
}

/// Pushes `items` one by one at `end` of the list under `key` (created when `create`
/// holds); returns the new length, `None` for a missing key left alone. The one way elements
/// enter a list: the place a push will wake clients blocked on `key` from.
///
/// # Errors
/// WRONGTYPE when `key` holds another type.
pub(super) fn push(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    items: &[Bytes],
    end: End,
    create: bool,
) -> Result<Option<usize>, CommandError> {
    let len = ctx.write(key)?.update_list(key, create, |l| {
        for item in items {
            match end {
                End::Head => l.push_front(item),
                End::Tail => l.push_back(item),
            }
        }
        (l.len(), true)
    })?;
    Ok(len)
}

/// What a pop took.
pub(super) enum Popped {
    /// One element (no count given).
    One(Bytes),
    /// Elements, in the order they were popped.
    Many(Vec<Bytes>),
}

/// Pops one element (`count` `None`) or up to `count` from `end` of the list under `key`;
/// `None` when the key is missing. The one way elements leave a list from an end (LPOP,
/// RPOP, LMOVE's source, LMPOP; the blocking pops will serve their clients through it).
///
/// # Errors
/// WRONGTYPE when `key` holds another type.
pub(super) fn pop(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    end: End,
    count: Option<usize>,
) -> Result<Option<Popped>, CommandError> {
    let popped = ctx.write(key)?.update_list(key, false, |l| match count {
        None => {
            let item = match end {
                End::Head => l.pop_front(),
                End::Tail => l.pop_back(),
            };
            let changed = item.is_some();
            (item.map(Popped::One), changed)
        }
        Some(n) => {
            let n = n.min(l.len());
            let copied = match end {
                End::Head => {
                    let c = l.copy_range(0, n);
                    l.remove_front(n);
                    c
                }
                End::Tail => {
                    let c = l.copy_range(l.len() - n, n);
                    l.remove_back(n);
                    c
                }
            };
            (
                Some(Popped::Many(copied.into_items(end == End::Tail))),
                n > 0,
            )
        }
    })?;
    Ok(popped.flatten())
}

fn lpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    pop_command(ctx, args, End::Head)
}

fn rpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    pop_command(ctx, args, End::Tail)
}

fn pop_command(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> Result<Reply, CommandError> {
    if args.len() > 3 {
        return Err(CommandError::WrongArity(
            String::from_utf8_lossy(&args[0]).to_lowercase(),
        ));
    }
    let count = match args.get(2) {
        Some(arg) => Some(at_least(
            arg,
            0,
            "ERR value is out of range, must be positive",
        )?),
        None => None,
    };
    Ok(match (pop(ctx, &args[1], end, count)?, count) {
        (None, Some(_)) => Reply::NilArray,
        (None, None) => Reply::Nil,
        (Some(Popped::One(item)), _) => Reply::Bulk(item),
        (Some(Popped::Many(items)), _) => bulks(items),
    })
}

fn lmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (keys, end, count) = mpop_args(args, 1)?;
    for key in keys {
        if let Some(Popped::Many(items)) = pop(ctx, key, end, Some(count))? {
            return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), bulks(items)]));
        }
    }
    Ok(Reply::NilArray)
}

/// Parses `numkeys key [key ...] LEFT|RIGHT [COUNT count]` with `numkeys` at `args[at]`
/// (LMPOP; BLMPOP has its timeout first): the keys, the end and the count (1 by default).
///
/// # Errors
/// Redis's texts for a bad `numkeys` or count, `ERR syntax error` for the rest.
pub(super) fn mpop_args(args: &[Bytes], at: usize) -> Result<(&[Bytes], End, usize), CommandError> {
    let numkeys = at_least(&args[at], 1, "ERR numkeys should be greater than 0")?;
    let where_at = numkeys
        .checked_add(at + 1)
        .filter(|&w| w < args.len())
        .ok_or(CommandError::Syntax)?;
    let end = End::parse(&args[where_at])?;
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        match args.get(j + 1) {
            Some(value) if count.is_none() && is(&args[j], "count") => {
                count = Some(at_least(value, 1, "ERR count should be greater than 0")?);
                j += 2;
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok((&args[at + 1..where_at], end, count.unwrap_or(1)))
}

/// LMPOP's key positions: the `numkeys` arguments after `numkeys`.
fn lmpop_keys(args: &[Bytes]) -> Vec<usize> {
    let n = args
        .get(1)
        .and_then(|a| parse_int(a))
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    (2..args.len()).take(n).collect()
}

fn lmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let from = End::parse(&args[3])?;
    let to = End::parse(&args[4])?;
    lmove_generic(ctx, &args[1], &args[2], from, to)
}

fn rpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    lmove_generic(ctx, &args[1], &args[2], End::Tail, End::Head)
}

/// Moves one element from `from` of `source` to `to` of `destination`: the element, or nil
/// when `source` is missing. Both keys' types are checked before anything moves.
///
/// # Errors
/// WRONGTYPE when either key holds another type.
pub(super) fn lmove_generic(
    ctx: &mut Ctx<'_>,
    source: &Bytes,
    destination: &Bytes,
    from: End,
    to: End,
) -> Result<Reply, CommandError> {
    match ctx.write(source)?.kind(source) {
        None => return Ok(Reply::Nil),
        Some(Kind::List) => {}
        Some(_) => return Err(WrongType.into()),
    }
    if ctx
        .write(destination)?
        .kind(destination)
        .is_some_and(|k| k != Kind::List)
    {
        return Err(WrongType.into());
    }
    let Some(Popped::One(item)) = pop(ctx, source, from, None)? else {
        return Ok(Reply::Nil);
    };
    push(ctx, destination, std::slice::from_ref(&item), to, true)?;
    Ok(Reply::Bulk(item))
}

fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let len = read(ctx, &args[1], |l| l.map_or(0, List::len))?;
    Ok(Reply::Int(len as i64))
}

fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let start = int(&args[2])?;
    let stop = int(&args[3])?;
    let copied = read(ctx, &args[1], |l| {
        let l = l?;
        let (from, n) = range(l.len(), start, stop)?;
        Some(l.copy_range(from, n))
    })?;
    // The shard is unlocked: the reply is built from the copy, packed (no allocation per item).
    let Some(copied) = copied else {
        return Ok(Reply::Array(Vec::new()));
    };
    let mut items = Strings::with_capacity(copied.len(), copied.bytes());
    copied.for_each_slice(|s| items.push(s));
    Ok(Reply::Strings(items))
}

fn lindex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let index = &args[2];
    // The key is looked up before the index is parsed, as Redis does.
    read(ctx, &args[1], |l| match l {
        None => Ok(Reply::Nil),
        Some(l) => {
            let i = int(index)?;
            Ok(l.get(i)
                .map_or(Reply::Nil, |item| item.with_bytes(|b| Reply::bulk(b))))
        }
    })?
}

fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let key = &args[1];
    let mut w = ctx.write(key)?;
    match w.peek(key) {
        None => return Err(CommandError::Other(Cow::Borrowed("ERR no such key"))),
        Some(v) => {
            v.as_list()?;
        }
    }
    let index = int(&args[2])?;
    let replaced = w.update_list(key, false, |l| {
        let ok = l.set(index, &args[3]);
        (ok, ok)
    })?;
    if replaced == Some(true) {
        Ok(Reply::ok())
    } else {
        Err(CommandError::Other(Cow::Borrowed("ERR index out of range")))
    }
}

fn linsert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let after = if is(&args[2], "after") {
        true
    } else if is(&args[2], "before") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    let key = &args[1];
    let len = ctx.write(key)?.update_list(key, false, |l| {
        if l.insert(&args[3], &args[4], after) {
            (l.len() as i64, true)
        } else {
            (-1, false)
        }
    })?;
    Ok(Reply::Int(len.unwrap_or(0)))
}

fn lrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let count = int(&args[2])?;
    let key = &args[1];
    let removed = ctx.write(key)?.update_list(key, false, |l| {
        let n = l.remove(&args[3], count);
        (n, n > 0)
    })?;
    Ok(Reply::Int(removed.unwrap_or(0) as i64))
}

fn ltrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let start = int(&args[2])?;
    let stop = int(&args[3])?;
    let key = &args[1];
    ctx.write(key)?.update_list(key, false, |l| {
        let len = l.len();
        let (keep_from, keep) = range(len, start, stop).unwrap_or((len, 0));
        let (front, back) = (keep_from, len - keep_from - keep);
        l.remove_front(front);
        l.remove_back(back);
        ((), front + back > 0)
    })?;
    Ok(Reply::ok())
}

fn lpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let Some(value) = args.get(j + 1) else {
            return Err(CommandError::Syntax);
        };
        if is(&args[j], "rank") {
            rank = int(value)?;
            if rank == 0 {
                return Err(CommandError::Other(Cow::Borrowed(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                     second ... or use negative to start from the end of the list",
                )));
            }
        } else if is(&args[j], "count") {
            count = Some(at_least(value, 0, "ERR COUNT can't be negative")? as i64);
        } else if is(&args[j], "maxlen") {
            maxlen = at_least(value, 0, "ERR MAXLEN can't be negative")? as i64;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 2;
    }
    // Redis negates the rank as a C long: -LONG_MIN stays LONG_MIN (so any match counts).
    let from_tail = rank < 0;
    let rank = if from_tail { rank.wrapping_neg() } else { rank };
    let elem = &args[2];
    read(ctx, &args[1], |l| {
        let Some(l) = l else {
            return if count.is_some() {
                Reply::Array(Vec::new())
            } else {
                Reply::Nil
            };
        };
        let mut found = Vec::new();
        let mut matches: i64 = 0;
        for index in l.positions(elem, from_tail, maxlen as usize) {
            matches += 1;
            if matches < rank {
                continue;
            }
            match count {
                None => return Reply::Int(index as i64),
                Some(c) => {
                    found.push(Reply::Int(index as i64));
                    if c != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= c {
                        break;
                    }
                }
            }
        }
        if count.is_some() {
            Reply::Array(found)
        } else {
            Reply::Nil
        }
    })
}

/// Runs `f` on the list under `key` (`None` when missing) with its shard locked, counting
/// the lookup as Redis's `lookupKeyRead` does. Keep `f` to copying out what the reply needs.
///
/// # Errors
/// WRONGTYPE when `key` holds another type.
fn read<R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(Option<&List>) -> R,
) -> Result<R, CommandError> {
    let mut shard = ctx.db().shard(key);
    let value = shard.peek(key, ctx.now);
    ctx.node.stats.record_lookup(value.is_some());
    let list = value.map(|v| v.as_list()).transpose()?;
    Ok(f(list))
}

/// Redis's range rule (LRANGE, LTRIM, the pops' counts): negative indexes count from the
/// tail, `start` is clamped to 0 and `stop` to the last index. `(first index, count)`, or
/// `None` for an empty range.
fn range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = i64::try_from(len).ok()?;
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return None;
    }
    let stop = stop.min(len - 1);
    Some((start as usize, (stop - start + 1) as usize))
}

/// An integer argument of at least `min`; `msg` (with its code) when it is not one, as
/// Redis's `getRangeLongFromObjectOrReply` answers both cases.
fn at_least(arg: &[u8], min: i64, msg: &'static str) -> Result<usize, CommandError> {
    parse_int(arg)
        .filter(|&n| n >= min)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(CommandError::Other(Cow::Borrowed(msg)))
}

/// An array of bulk strings.
fn bulks(items: Vec<Bytes>) -> Reply {
    Reply::Array(items.into_iter().map(Reply::Bulk).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_redis() {
        assert_eq!(range(10, 0, -1), Some((0, 10)));
        assert_eq!(range(10, -3, 100), Some((7, 3)));
        assert_eq!(range(10, -100, 2), Some((0, 3)));
        assert_eq!(range(10, 5, 4), None);
        assert_eq!(range(10, 10, 20), None);
        assert_eq!(range(10, i64::MIN, i64::MAX), Some((0, 10)));
        assert_eq!(range(0, 0, -1), None);
    }

    #[test]
    fn lmpop_keys_follow_numkeys() {
        let args: Vec<Bytes> = ["lmpop", "2", "a", "b", "left"]
            .into_iter()
            .map(Bytes::from)
            .collect();
        assert_eq!(lmpop_keys(&args), [2, 3]);
        let args: Vec<Bytes> = ["lmpop", "9", "a"].into_iter().map(Bytes::from).collect();
        assert_eq!(lmpop_keys(&args), [2]);
        let args: Vec<Bytes> = ["lmpop", "x", "a"].into_iter().map(Bytes::from).collect();
        assert!(lmpop_keys(&args).is_empty());
    }
}
