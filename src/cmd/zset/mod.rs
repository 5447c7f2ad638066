//! Sorted-set commands (Redis's `t_zset.c`): thin handlers over [`crate::store::ZSet`].
//!
//! ```text
//! ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
//! ZINCRBY key increment member / ZREM key member [member ...] / ZCARD key
//! ZSCORE key member / ZMSCORE key member [member ...] / ZRANK key member / ZREVRANK key member
//! ZPOPMIN key [count] / ZPOPMAX key [count] / ZMPOP numkeys key [key ...] MIN|MAX [COUNT n]
//! ZRANDMEMBER key [count [WITHSCORES]] / ZSCAN key cursor [MATCH pattern] [COUNT n]
//! ZRANGE key min max [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]   (range.rs)
//! ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
//! ZREVRANGE, Z[REV]RANGEBYSCORE, Z[REV]RANGEBYLEX, ZCOUNT, ZLEXCOUNT, ZREMRANGEBY{RANK,SCORE,LEX}
//! ZUNION|ZINTER|ZDIFF numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
//!   [WITHSCORES]; Z{UNION,INTER,DIFF}STORE dst numkeys key ...; ZINTERCARD numkeys key ...
//!   [LIMIT n]                                                                  (algebra.rs)
//! ```
//! Replies follow Redis 7.0 exactly: scores are doubles (`%.17g`, a bulk string in RESP2, `,`
//! in RESP3); WITHSCORES replies are flat `[member, score, ...]` arrays in RESP2 and arrays of
//! `[member, score]` pairs in RESP3 (the JSON protocol gets the RESP2 shape). Pops live in
//! one place, [`pop_reply`] over [`crate::store::ZSet::pop`], for the blocking pops to reuse.

mod algebra;
mod range;

use bytes::Bytes;

use super::args::{int, is, scan_cursor};
use super::capture::Delta;
use super::table::{cmd, CommandSpec, KEY1, R, RF, W, WD, WF};
use super::{CommandError, Ctx};
use crate::effect::{Edit, Score};
use crate::protocol::Reply;
use crate::stats::StatKind::Other as O;
use crate::store::ZSet;

/// The zset family's rows of the command table (Redis 7.0.15's arity, flags and keys).
pub(super) fn commands() -> Vec<CommandSpec> {
    const WRITE: &[&str] = &["write"];
    const WRITE_MOVABLE: &[&str] = &["write", "movablekeys"];
    const STORE_MOVABLE: &[&str] = &["write", "denyoom", "movablekeys"];
    const READ_MOVABLE: &[&str] = &["readonly", "movablekeys"];
    const NONE: (i32, i32, i32) = (0, 0, 0);
    vec![
        cmd("zadd", -4, WF, KEY1, O, zadd),
        cmd("zincrby", 4, WF, KEY1, O, zincrby),
        cmd("zrem", -3, WD, KEY1, O, zrem),
        cmd("zcard", 2, RF, KEY1, O, zcard),
        cmd("zscore", 3, RF, KEY1, O, zscore),
        cmd("zmscore", -3, RF, KEY1, O, zmscore),
        cmd("zrank", 3, RF, KEY1, O, zrank),
        cmd("zrevrank", 3, RF, KEY1, O, zrevrank),
        cmd("zcount", 4, RF, KEY1, O, range::zcount),
        cmd("zlexcount", 4, RF, KEY1, O, range::zlexcount),
        cmd("zrange", -4, R, KEY1, O, range::zrange),
        cmd("zrangestore", -5, W, (1, 2, 1), O, range::zrangestore),
        cmd("zrevrange", -4, R, KEY1, O, range::zrevrange),
        cmd("zrangebyscore", -4, R, KEY1, O, range::zrangebyscore),
        cmd("zrevrangebyscore", -4, R, KEY1, O, range::zrevrangebyscore),
        cmd("zrangebylex", -4, R, KEY1, O, range::zrangebylex),
        cmd("zrevrangebylex", -4, R, KEY1, O, range::zrevrangebylex),
        cmd("zremrangebyrank", 4, WRITE, KEY1, O, range::zremrangebyrank),
        cmd(
            "zremrangebyscore",
            4,
            WRITE,
            KEY1,
            O,
            range::zremrangebyscore,
        ),
        cmd("zremrangebylex", 4, WRITE, KEY1, O, range::zremrangebylex),
        cmd("zpopmin", -2, WD, KEY1, O, zpopmin),
        cmd("zpopmax", -2, WD, KEY1, O, zpopmax),
        cmd("zmpop", -4, WRITE_MOVABLE, NONE, O, zmpop).keys_with(numkeys_at_1),
        cmd("zrandmember", -2, R, KEY1, O, zrandmember),
        cmd("zunion", -3, READ_MOVABLE, NONE, O, algebra::zunion).keys_with(numkeys_at_1),
        cmd("zinter", -3, READ_MOVABLE, NONE, O, algebra::zinter).keys_with(numkeys_at_1),
        cmd("zdiff", -3, READ_MOVABLE, NONE, O, algebra::zdiff).keys_with(numkeys_at_1),
        cmd(
            "zunionstore",
            -4,
            STORE_MOVABLE,
            KEY1,
            O,
            algebra::zunionstore,
        )
        .keys_with(dst_and_numkeys_at_2),
        cmd(
            "zinterstore",
            -4,
            STORE_MOVABLE,
            KEY1,
            O,
            algebra::zinterstore,
        )
        .keys_with(dst_and_numkeys_at_2),
        cmd(
            "zdiffstore",
            -4,
            STORE_MOVABLE,
            KEY1,
            O,
            algebra::zdiffstore,
        )
        .keys_with(dst_and_numkeys_at_2),
        cmd("zintercard", -3, READ_MOVABLE, NONE, O, algebra::zintercard).keys_with(numkeys_at_1),
        cmd("zscan", -3, R, KEY1, O, zscan),
    ]
}

/// Keys of `CMD numkeys key ...` (ZMPOP, ZUNION, ZINTERCARD...).
fn numkeys_at_1(args: &[Bytes]) -> Vec<usize> {
    numkeys_keys(args, 1)
}

/// Keys of `CMD dst numkeys key ...` (ZUNIONSTORE...): the destination, then the sources.
fn dst_and_numkeys_at_2(args: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    keys.extend(numkeys_keys(args, 2));
    keys
}

/// The `numkeys` keys after position `at` (none when `numkeys` is not a positive integer).
pub(super) fn numkeys_keys(args: &[Bytes], at: usize) -> Vec<usize> {
    let n = args
        .get(at)
        .and_then(|a| int(a).ok())
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    (at + 1..args.len().min(at.saturating_add(1).saturating_add(n))).collect()
}

/// Runs `f` on the sorted set under `key` (`None` when missing), counting a keyspace hit or
/// miss as Redis's `lookupKeyRead` does. The shard stays locked while `f` builds its reply.
pub(super) fn read<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(Option<&ZSet>) -> T,
) -> Result<T, CommandError> {
    let mut shard = ctx.db().shard(key);
    let value = shard.peek(key, ctx.now);
    ctx.node.stats.record_lookup(value.is_some());
    match value {
        None => Ok(f(None)),
        Some(v) => Ok(f(Some(v.as_zset()?))),
    }
}

/// Whether replies go out in RESP3 (nested WITHSCORES pairs).
pub(super) fn resp3(ctx: &Ctx<'_>) -> bool {
    ctx.session.protocol >= 3
}

/// A range reply: members only, or with scores (flat in RESP2, pairs in RESP3).
pub(super) fn members_reply(items: Vec<(Bytes, f64)>, withscores: bool, resp3: bool) -> Reply {
    if !withscores {
        return Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect());
    }
    if resp3 {
        return Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                .collect(),
        );
    }
    let mut flat = Vec::with_capacity(items.len() * 2);
    for (m, s) in items {
        flat.push(Reply::Bulk(m));
        flat.push(Reply::Double(s));
    }
    Reply::Array(flat)
}

/// Parses a score or increment as Redis's `getDoubleFromObject` does: the whole argument
/// must be a number (`inf`, `-inf` and exponents allowed), without leading space, not NaN,
/// and not out of a double's range.
///
/// # Errors
/// `ERR value is not a valid float`.
pub(super) fn score_arg(arg: &[u8]) -> Result<f64, CommandError> {
    strict_double(arg).ok_or(CommandError::NotFloat)
}

/// [`score_arg`] without the error.
pub(super) fn strict_double(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty() || s.starts_with(is_c_space) {
        return None;
    }
    let v = s.parse::<f64>().ok()?;
    if v.is_nan() {
        return None;
    }
    // strtod's ERANGE: an overflow to infinity, or an underflow to zero.
    let lower = s.to_ascii_lowercase();
    if v.is_infinite() && !lower.contains("inf") {
        return None;
    }
    let mantissa = lower.split('e').next().unwrap_or("");
    if v == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return None;
    }
    Some(v)
}

/// C's `isspace`.
pub(super) fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

// ---- ZADD / ZINCRBY ----

/// ZADD's and ZINCRBY's flags.
#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
    ch: bool,
}

/// What one `zsetAdd` did.
enum Outcome {
    Added(f64),
    Updated(f64),
    /// Nothing to do (NX on an existing member, XX on a missing one, GT/LT refused, same
    /// score).
    Unchanged(Option<f64>),
    Nan,
}

fn zadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut flags = AddFlags::default();
    let mut at = 2;
    while let Some(opt) = args.get(at) {
        match () {
            _ if is(opt, "NX") => flags.nx = true,
            _ if is(opt, "XX") => flags.xx = true,
            _ if is(opt, "CH") => flags.ch = true,
            _ if is(opt, "INCR") => flags.incr = true,
            _ if is(opt, "GT") => flags.gt = true,
            _ if is(opt, "LT") => flags.lt = true,
            _ => break,
        }
        at += 1;
    }
    add_generic(ctx, &args[1], &args[at..], flags)
}

fn zincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let flags = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    add_generic(ctx, &args[1], &args[2..], flags)
}

/// Redis's `zaddGenericCommand`: `pairs` are the score-member arguments.
fn add_generic(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    pairs: &[Bytes],
    f: AddFlags,
) -> Result<Reply, CommandError> {
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return Err(CommandError::Syntax);
    }
    if f.nx && f.xx {
        return Err(CommandError::Other(
            "ERR XX and NX options at the same time are not compatible".into(),
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(CommandError::Other(
            "ERR GT, LT, and/or NX options at the same time are not compatible".into(),
        ));
    }
    if f.incr && pairs.len() > 2 {
        return Err(CommandError::Other(
            "ERR INCR option supports a single increment-element pair".into(),
        ));
    }
    let scores = pairs
        .chunks_exact(2)
        .map(|p| score_arg(&p[0]))
        .collect::<Result<Vec<f64>, _>>()?;
    let result = ctx
        .write(key)?
        .update_zset_edit(key, !f.xx, |z, recording| {
            let (mut added, mut updated, mut last) = (0i64, 0i64, None);
            // The members written with their final scores (ZINCRBY's result, not its increment),
            // kept only when effects are recorded.
            let mut written = Vec::new();
            let mut nan = false;
            for (pair, &score) in pairs.chunks_exact(2).zip(&scores) {
                match add_one(z, &pair[1], score, f) {
                    Outcome::Added(s) => {
                        added += 1;
                        last = Some(s);
                        if recording {
                            written.push((pair[1].clone(), Score::new(s)));
                        }
                    }
                    Outcome::Updated(s) => {
                        updated += 1;
                        last = Some(s);
                        if recording {
                            written.push((pair[1].clone(), Score::new(s)));
                        }
                    }
                    Outcome::Unchanged(s) => last = s,
                    Outcome::Nan => {
                        nan = true;
                        break;
                    }
                }
            }
            let delta = Delta::of(added + updated > 0, recording, || Edit::ZSetPut(written));
            if nan {
                return (Err(()), delta);
            }
            (Ok((added, updated, last)), delta)
        })?;
    let Some(result) = result else {
        // XX on a missing key.
        return Ok(if f.incr { Reply::Nil } else { Reply::Int(0) });
    };
    let (added, updated, last) = result
        .map_err(|()| CommandError::Other("ERR resulting score is not a number (NaN)".into()))?;
    Ok(if f.incr {
        last.map_or(Reply::Nil, Reply::Double)
    } else if f.ch {
        Reply::Int(added + updated)
    } else {
        Reply::Int(added)
    })
}

/// Redis's `zsetAdd` for one member.
fn add_one(z: &mut ZSet, member: &[u8], score: f64, f: AddFlags) -> Outcome {
    match z.score(member) {
        Some(_) if f.nx => Outcome::Unchanged(None),
        Some(cur) => {
            let score = if f.incr { score + cur } else { score };
            if score.is_nan() {
                return Outcome::Nan;
            }
            if (f.lt && score >= cur) || (f.gt && score <= cur) {
                return Outcome::Unchanged(None);
            }
            if score == cur {
                return Outcome::Unchanged(Some(score));
            }
            z.insert(member, score);
            Outcome::Updated(score)
        }
        None if f.xx => Outcome::Unchanged(None),
        None => {
            z.insert(member, score);
            Outcome::Added(score)
        }
    }
}

// ---- Single-member reads and removal ----

fn zrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let key = &args[1];
    let removed = ctx
        .write(key)?
        .update_zset_edit(key, false, |z, recording| {
            let (mut n, mut gone) = (0, Vec::new());
            for m in &args[2..] {
                if z.remove(m) {
                    n += 1;
                    if recording {
                        gone.push(m.clone());
                    }
                }
                if z.is_empty() {
                    break;
                }
            }
            (n, Delta::of(n > 0, recording, || Edit::ZSetRem(gone)))
        })?;
    Ok(Reply::Int(removed.unwrap_or(0)))
}

fn zcard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], |z| {
        Reply::Int(z.map_or(0, |z| z.len() as i64))
    })
}

fn zscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], |z| {
        z.and_then(|z| z.score(&args[2]))
            .map_or(Reply::Nil, Reply::Double)
    })
}

fn zmscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], |z| {
        Reply::Array(
            args[2..]
                .iter()
                .map(|m| z.and_then(|z| z.score(m)).map_or(Reply::Nil, Reply::Double))
                .collect(),
        )
    })
}

fn zrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    rank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    rank_generic(ctx, args, true)
}

fn rank_generic(ctx: &mut Ctx<'_>, args: &[Bytes], rev: bool) -> Result<Reply, CommandError> {
    read(ctx, &args[1], |z| {
        let Some(z) = z else {
            return Reply::Nil;
        };
        match z.rank(&args[2]) {
            Some((r, _)) if rev => Reply::Int((z.len() - 1 - r) as i64),
            Some((r, _)) => Reply::Int(r as i64),
            None => Reply::Nil,
        }
    })
}

// ---- Pops ----

fn zpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    pop_command(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    pop_command(ctx, args, true)
}

/// ZPOPMIN/ZPOPMAX key [count].
fn pop_command(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) -> Result<Reply, CommandError> {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let count = match args.get(2) {
        None => None,
        Some(a) => Some(at_least(a, 0, "value is out of range, must be positive")?),
    };
    let resp3 = resp3(ctx);
    let popped = pop(ctx, &args[1], max, count.unwrap_or(1))?;
    Ok(match popped {
        None => Reply::Array(Vec::new()),
        Some(items) => members_reply(items, true, resp3 && count.is_some()),
    })
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count].
fn zmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (keys, max, count) = parse_mpop(args, 1)?;
    for key in keys {
        if let Some(reply) = pop_reply(ctx, key, max, count)? {
            return Ok(reply);
        }
    }
    Ok(Reply::NilArray)
}

/// Parses `numkeys key [key ...] MIN|MAX [COUNT count]` starting at `args[at]` (ZMPOP,
/// BZMPOP): the keys, whether MAX, and the count.
///
/// # Errors
/// Redis's texts for a bad numkeys, direction, option or count.
pub(super) fn parse_mpop(
    args: &[Bytes],
    at: usize,
) -> Result<(&[Bytes], bool, usize), CommandError> {
    let numkeys = at_least(&args[at], 1, "numkeys should be greater than 0")?;
    let where_at = numkeys
        .checked_add(at + 1)
        .filter(|&w| w < args.len())
        .ok_or(CommandError::Syntax)?;
    let max = if is(&args[where_at], "MIN") {
        false
    } else if is(&args[where_at], "MAX") {
        true
    } else {
        return Err(CommandError::Syntax);
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && is(&args[j], "COUNT") && j + 1 < args.len() {
            j += 1;
            count = Some(at_least(&args[j], 1, "count should be greater than 0")?);
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    Ok((&args[at + 1..where_at], max, count.unwrap_or(1)))
}

/// The ZMPOP/BZMPOP reply for popping up to `count` from `key`: `[key, [[member, score],
/// ...]]`, or `None` when the key is missing (then the caller tries the next key or waits).
///
/// # Errors
/// WRONGTYPE when the key holds another type.
pub(super) fn pop_reply(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    max: bool,
    count: usize,
) -> Result<Option<Reply>, CommandError> {
    Ok(pop(ctx, key, max, count)?.map(|items| {
        Reply::Array(vec![
            Reply::Bulk(key.clone()),
            members_reply(items, true, true),
        ])
    }))
}

/// Pops up to `count` members from the low (or, with `max`, high) end of `key`; `None`
/// when the key is missing. The one place every pop goes through.
///
/// # Errors
/// WRONGTYPE when the key holds another type.
pub(super) fn pop(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    max: bool,
    count: usize,
) -> Result<Option<Vec<(Bytes, f64)>>, CommandError> {
    let popped = ctx
        .write(key)?
        .update_zset_edit(key, false, |z, recording| {
            let items = z.pop(max, count);
            let delta = Delta::of(!items.is_empty(), recording, || {
                Edit::ZSetRem(
                    items
                        .iter()
                        .map(|(m, _)| Bytes::copy_from_slice(m))
                        .collect(),
                )
            });
            (items, delta)
        })?;
    Ok(popped.map(|items| {
        items
            .into_iter()
            .map(|(m, s)| (Bytes::from(m), s))
            .collect()
    }))
}

/// A count of at least `min` (Redis's `getRangeLongFromObjectOrReply(min, LONG_MAX, msg)`):
/// a non-integer and a number out of range are both `ERR <msg>`.
pub(super) fn at_least(arg: &[u8], min: i64, msg: &'static str) -> Result<usize, CommandError> {
    match int(arg) {
        Ok(n) if n >= min => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => Err(CommandError::Other(format!("ERR {msg}").into())),
    }
}

// ---- ZRANDMEMBER, ZSCAN ----

fn zrandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let resp3 = resp3(ctx);
    let Some(count_arg) = args.get(2) else {
        return read(ctx, &args[1], |z| {
            z.and_then(ZSet::random)
                .map_or(Reply::Nil, |(m, _)| Reply::bulk(m))
        });
    };
    let n = int(count_arg)?;
    if n == i64::MIN {
        return Err(CommandError::Other(
            "ERR value is out of range, value must between -9223372036854775807 and \
             9223372036854775807"
                .into(),
        ));
    }
    let withscores = match args.len() {
        3 => false,
        4 if is(&args[3], "WITHSCORES") => true,
        _ => return Err(CommandError::Syntax),
    };
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
        return Err(CommandError::Other("ERR value is out of range".into()));
    }
    read(ctx, &args[1], |z| {
        let Some(z) = z else {
            return Reply::Array(Vec::new());
        };
        members_reply(random_members(z, n), withscores, resp3)
    })
}

/// ZRANDMEMBER's choice: `n` members with repeats for a negative `n`, else up to `n`
/// distinct ones (the whole set, highest first, when `n` covers it, as Redis does).
fn random_members(z: &ZSet, n: i64) -> Vec<(Bytes, f64)> {
    let size = z.len();
    let pick = |(m, s): (&[u8], f64)| (Bytes::copy_from_slice(m), s);
    if n < 0 {
        let count = n.unsigned_abs() as usize;
        return (0..count).filter_map(|_| z.random().map(pick)).collect();
    }
    let count = n as usize;
    if count >= size {
        // Redis's set iterator walks from the highest member down.
        let mut all = Vec::with_capacity(size);
        z.range(0, size, true, |m, s| {
            all.push((Bytes::copy_from_slice(m), s))
        });
        return all;
    }
    // Distinct ranks: a partial Fisher-Yates shuffle over the ranks.
    let mut ranks: Vec<usize> = (0..size).collect();
    for i in 0..count {
        let j = fastrand::usize(i..size);
        ranks.swap(i, j);
    }
    ranks[..count]
        .iter()
        .filter_map(|&r| z.get(r).map(pick))
        .collect()
}

fn zscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let cursor = scan_cursor(&args[2])?;
    read(ctx, &args[1], |z| {
        let Some(z) = z else {
            return Ok(Reply::Array(vec![
                Reply::text("0"),
                Reply::Array(Vec::new()),
            ]));
        };
        let mut pattern: Option<&[u8]> = None;
        let mut count = 10usize;
        let mut i = 3;
        while i < args.len() {
            let more = args.len() - i >= 2;
            if is(&args[i], "COUNT") && more {
                let n = int(&args[i + 1])?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
            } else if is(&args[i], "MATCH") && more {
                pattern = Some(&args[i + 1]).map(|p| &p[..]).filter(|p| *p != b"*");
            } else {
                return Err(CommandError::Syntax);
            }
            i += 2;
        }
        let mut items = Vec::new();
        let next = z.scan(cursor, count, |m, s| {
            if pattern.is_none_or(|p| crate::store::pattern::matches(p, m)) {
                items.push(Reply::bulk(m));
                items.push(Reply::Bulk(Bytes::from(
                    crate::protocol::resp::format_double(s),
                )));
            }
        });
        Ok(Reply::Array(vec![
            Reply::Bulk(Bytes::from(next.to_string())),
            Reply::Array(items),
        ]))
    })?
}
