//! Set commands, as Redis 7.0's `t_set.c`: thin handlers over [`crate::store::Set`].
//!
//! ```text
//! SADD key member [member ...]                 -> members added
//! SREM key member [member ...]                 -> members removed
//! SMEMBERS key                                 -> set of members
//! SISMEMBER key member                         -> 1 | 0
//! SMISMEMBER key member [member ...]           -> [1 | 0, ...]
//! SCARD key                                    -> size
//! SPOP key [count]                             -> member | nil; set of members with count
//! SRANDMEMBER key [count]                      -> member | nil; array with count (negative:
//!                                                 may repeat, |count| long)
//! SMOVE source destination member              -> 1 | 0
//! SINTER key [key ...] / SUNION ... / SDIFF ...  -> set of members
//! SINTERCARD numkeys key [key ...] [LIMIT n]   -> size of the intersection (at most n)
//! SINTERSTORE dst key [key ...] / SUNIONSTORE ... / SDIFFSTORE ...  -> size stored
//! SSCAN key cursor [MATCH pattern] [COUNT n]   -> [next cursor, [member, ...]]
//! ```
//!
//! Replies, argument checks and their order, and error texts follow Redis 7.0.15. Sets are
//! replied as RESP3 sets (`~`, arrays in RESP2) where Redis does (SMEMBERS, SPOP with a
//! count, SINTER, SUNION, SDIFF); SRANDMEMBER with a count and SSCAN answer arrays. The one
//! difference: SRANDMEMBER with a negative count below [`MAX_REPEATS`] is refused (Redis
//! would try to build a reply of any length).
//!
//! Random choices are uniform: a random index into the set's dense storage. SPOP records its
//! effect as the resulting set (or its deletion), through `Writer::update_set`.
//!
//! Multi-key commands see all their keys at one instant: write commands (SMOVE, the STORE
//! forms) hold their keys' shards from the command table's key positions, and the read ones
//! (SINTER, SUNION, SDIFF, SINTERCARD) lock their keys' shards together in `multi`.

mod multi;

use bytes::Bytes;

use super::args::{int, is, scan_cursor};
use super::capture::Delta;
use super::table::{cmd, CommandSpec, KEY1, NO_KEYS, R, RF, W, WD, WF};
use super::{CommandError, Ctx};
use crate::effect::Edit;
use crate::protocol::Reply;
use crate::stats::StatKind::Other as O;
use crate::store::{pattern, Set};

/// The most members SRANDMEMBER returns for a negative count (see the module docs).
pub const MAX_REPEATS: u64 = 1_000_000;

/// The set family's rows of the command table (Redis 7.0's arity, flags and key positions).
pub(super) fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("sadd", -3, WF, KEY1, O, sadd),
        cmd("srem", -3, WD, KEY1, O, srem),
        cmd("smembers", 2, R, KEY1, O, smembers),
        cmd("sismember", 3, RF, KEY1, O, sismember),
        cmd("smismember", -3, RF, KEY1, O, smismember),
        cmd("scard", 2, RF, KEY1, O, scard),
        cmd("spop", -2, WD, KEY1, O, spop),
        cmd("srandmember", -2, R, KEY1, O, srandmember),
        cmd("smove", 4, WD, (1, 2, 1), O, multi::smove),
        cmd("sinter", -2, R, ALL, O, multi::sinter),
        cmd(
            "sintercard",
            -3,
            &["readonly", "movablekeys"],
            NO_KEYS,
            O,
            multi::sintercard,
        )
        .keys_with(multi::sintercard_keys),
        cmd("sunion", -2, R, ALL, O, multi::sunion),
        cmd("sdiff", -2, R, ALL, O, multi::sdiff),
        cmd("sinterstore", -3, W, ALL, O, multi::sinterstore),
        cmd("sunionstore", -3, W, ALL, O, multi::sunionstore),
        cmd("sdiffstore", -3, W, ALL, O, multi::sdiffstore),
        cmd("sscan", -3, R, KEY1, O, sscan),
    ]
}

/// Key positions: every argument from the first.
const ALL: (i32, i32, i32) = (1, -1, 1);

/// Runs `f` on the set under `key` (`None` when missing) with its shard locked, counting a
/// keyspace hit or miss as Redis's `lookupKeyRead` does.
fn read<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(Option<&Set>) -> Result<T, CommandError>,
) -> Result<T, CommandError> {
    let mut shard = ctx.db().shard(key);
    let value = shard.peek(key, ctx.now);
    ctx.node.stats.record_lookup(value.is_some());
    match value {
        None => f(None),
        Some(v) => f(Some(v.as_set()?)),
    }
}

/// The members of `set` as bulk replies.
fn bulks(set: &Set) -> Vec<Reply> {
    set.iter().map(|m| Reply::Bulk(m.to_bytes())).collect()
}

fn sadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    change_members(ctx, args, true)
}

fn srem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    change_members(ctx, args, false)
}

/// SADD (`add`) or SREM: how many members changed; the effect names only those (kept only
/// when effects are recorded).
fn change_members(ctx: &mut Ctx<'_>, args: &[Bytes], add: bool) -> Result<Reply, CommandError> {
    let changed = ctx
        .write(&args[1])?
        .update_set_edit(&args[1], add, |s, recording| {
            let (mut n, mut members) = (0, Vec::new());
            for m in &args[2..] {
                if if add { s.insert(m) } else { s.remove(m) } {
                    n += 1;
                    if recording {
                        members.push(m.clone());
                    }
                }
            }
            let edit = || {
                if add {
                    Edit::SetAdd(members)
                } else {
                    Edit::SetRem(members)
                }
            };
            (n, Delta::of(n > 0, recording, edit))
        })?;
    Ok(Reply::Int(changed.unwrap_or(0)))
}

fn smembers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], |s| {
        Ok(Reply::Set(s.map(bulks).unwrap_or_default()))
    })
}

fn sismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], |s| {
        Ok(Reply::Int(i64::from(
            s.is_some_and(|s| s.contains(&args[2])),
        )))
    })
}

fn smismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], |s| {
        Ok(Reply::Array(
            args[2..]
                .iter()
                .map(|m| Reply::Int(i64::from(s.is_some_and(|s| s.contains(m)))))
                .collect(),
        ))
    })
}

fn scard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    read(ctx, &args[1], |s| {
        Ok(Reply::Int(s.map_or(0, |s| s.len()) as i64))
    })
}

fn spop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let key = &args[1];
    let Some(count) = args.get(2) else {
        let popped = ctx
            .write(key)?
            .update_set_edit(key, false, |s, recording| {
                let Some(i) = (!s.is_empty()).then(|| fastrand::usize(..s.len())) else {
                    return (None, Delta::Unchanged);
                };
                let member = s.get(i).map(|m| m.to_bytes());
                s.remove_at(i);
                // The member chosen, not the choice: replicas and the log remove that one.
                let delta = Delta::of(true, recording, || {
                    Edit::SetRem(member.iter().cloned().collect())
                });
                (member, delta)
            })?;
        return Ok(popped.flatten().map_or(Reply::Nil, Reply::Bulk));
    };
    let count = int(count)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(CommandError::Other(
            "ERR value is out of range, must be positive".into(),
        ))?;
    let popped = ctx
        .write(key)?
        .update_set(key, false, |s| pop_many(s, count))?;
    Ok(Reply::Set(
        popped
            .unwrap_or_default()
            .into_iter()
            .map(Reply::Bulk)
            .collect(),
    ))
}

/// SPOP's count form on `set`: the popped members, and whether the set changed. As Redis:
/// the whole set when `count` reaches its size; few members removed one by one; and when
/// few remain, a new set built from those (which, like Redis's, may be an intset again).
fn pop_many(set: &mut Set, count: usize) -> (Vec<Bytes>, bool) {
    if count == 0 {
        return (Vec::new(), false);
    }
    let size = set.len();
    if count >= size {
        let all = set.iter().map(|m| m.to_bytes()).collect();
        *set = Set::new();
        return (all, true);
    }
    let remaining = size - count;
    // Redis's SPOP_MOVE_STRATEGY_MUL.
    if remaining * 5 > count {
        let mut chosen = set.random_indexes(count);
        let popped = chosen
            .iter()
            .filter_map(|&i| set.get(i).map(|m| m.to_bytes()))
            .collect();
        // Highest index first: removing one moves only members after it.
        chosen.sort_unstable_by(|a, b| b.cmp(a));
        for i in chosen {
            set.remove_at(i);
        }
        return (popped, true);
    }
    let mut kept = vec![false; size];
    for i in set.random_indexes(remaining) {
        kept[i] = true;
    }
    let mut rest = Set::new();
    let mut popped = Vec::with_capacity(count);
    for (i, member) in set.iter().enumerate() {
        if kept[i] {
            rest.insert_member(member);
        } else {
            popped.push(member.to_bytes());
        }
    }
    *set = rest;
    (popped, true)
}

fn srandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    if args.len() > 3 {
        return Err(CommandError::Syntax);
    }
    let Some(count) = args.get(2) else {
        return read(ctx, &args[1], |s| {
            Ok(s.and_then(Set::random)
                .map_or(Reply::Nil, |m| Reply::Bulk(m.to_bytes())))
        });
    };
    let count = int(count)?;
    if count == i64::MIN || count < -(MAX_REPEATS as i64) {
        let low = if count == i64::MIN {
            -i64::MAX
        } else {
            -(MAX_REPEATS as i64)
        };
        return Err(CommandError::Other(
            format!(
                "ERR value is out of range, value must between {low} and {}",
                i64::MAX
            )
            .into(),
        ));
    }
    read(ctx, &args[1], |s| {
        let Some(s) = s.filter(|_| count != 0) else {
            return Ok(Reply::Array(Vec::new()));
        };
        let pick = |i: usize| s.get(i).map(|m| Reply::Bulk(m.to_bytes()));
        if count < 0 || count == 1 {
            // Independent draws, repeats allowed.
            let picks = (0..count.unsigned_abs())
                .filter_map(|_| s.random().map(|m| Reply::Bulk(m.to_bytes())))
                .collect();
            return Ok(Reply::Array(picks));
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count >= s.len() {
            return Ok(Reply::Array(bulks(s)));
        }
        Ok(Reply::Array(
            s.random_indexes(count)
                .into_iter()
                .filter_map(pick)
                .collect(),
        ))
    })
}

fn sscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let cursor = scan_cursor(&args[2])?;
    read(ctx, &args[1], |s| {
        let Some(s) = s else {
            return Ok(scan_reply(0, Vec::new()));
        };
        // Options are parsed only for an existing key, as Redis does.
        let mut pattern: Option<&[u8]> = None;
        let mut count = 10usize;
        let mut i = 3;
        while i < args.len() {
            let value = args.get(i + 1).ok_or(CommandError::Syntax)?;
            if is(&args[i], "COUNT") {
                let n = int(value)?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
            } else if is(&args[i], "MATCH") {
                pattern = Some(value).filter(|p| &p[..] != b"*").map(|p| &p[..]);
            } else {
                return Err(CommandError::Syntax);
            }
            i += 2;
        }
        let (next, members) = s.scan(cursor, count);
        let members = members
            .into_iter()
            .filter(|m| pattern.is_none_or(|p| m.with_bytes(|b| pattern::matches(p, b))))
            .map(|m| Reply::Bulk(m.to_bytes()))
            .collect();
        Ok(scan_reply(next, members))
    })
}

fn scan_reply(cursor: u64, members: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::copy_from_slice(
            itoa::Buffer::new().format(cursor).as_bytes(),
        )),
        Reply::Array(members),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_many_takes_distinct_members_and_keeps_the_rest() {
        for (size, count) in [(10, 3), (10, 9), (600, 590), (600, 10), (5, 5), (5, 50)] {
            let mut set = Set::new();
            for i in 0..size {
                set.insert(i.to_string().as_bytes());
            }
            let before = set.clone();
            let (popped, changed) = pop_many(&mut set, count);
            assert!(changed);
            assert_eq!(popped.len(), count.min(size));
            assert_eq!(set.len(), size - count.min(size));
            let distinct: std::collections::BTreeSet<_> = popped.iter().collect();
            assert_eq!(distinct.len(), popped.len());
            for m in &popped {
                assert!(before.contains(m) && !set.contains(m));
            }
        }
    }
}
