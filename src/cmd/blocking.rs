//! Blocking commands: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.
//!
//! ```text
//! BLPOP key [key ...] timeout / BRPOP ...        -> [key, element] | null array
//! BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout / BRPOPLPUSH source destination timeout
//!                                                 -> element | null array
//! BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT n]   -> [key, [element ...]] | null array
//! BZPOPMIN key [key ...] timeout / BZPOPMAX ...   -> [key, member, score] | null array
//! BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT n]      -> [key, [[member, score] ...]]
//! ```
//! Each first tries what its non-blocking form does (the list and sorted-set families' own
//! pops, so the rules are theirs); finding every key empty it blocks (see [`crate::block`]):
//! the waiter registered here, under the keys' locks, pops from the value a later push grew,
//! under that push's lock. BLMOVE and BRPOPLPUSH also write their destination, which the
//! pusher does not hold: they are woken to run again instead. Timeouts are parsed (and
//! checked) first, as Redis does.

use std::time::Duration;

use bytes::Bytes;

use super::list::{self, End, Popped};
use super::table::{cmd, CommandSpec};
use super::{zset, CommandError, Ctx};
use crate::block::{self, Serve};
use crate::cmd::session::Blocked;
use crate::protocol::resp::parse_int;
use crate::protocol::Reply;
use crate::stats::StatKind::Other as O;
use crate::store::Collection;

/// The blocking commands' rows of the command table (flags and key positions as Redis 7.0's
/// COMMAND INFO reports them).
pub(super) fn commands() -> Vec<CommandSpec> {
    const POP: &[&str] = &["write", "noscript", "blocking"];
    const MOVE: &[&str] = &["write", "denyoom", "noscript", "blocking"];
    const MPOP: &[&str] = &["write", "blocking", "movablekeys"];
    const ZPOP: &[&str] = &["write", "noscript", "blocking", "fast"];
    vec![
        cmd("blpop", -3, POP, (1, -2, 1), O, blpop),
        cmd("brpop", -3, POP, (1, -2, 1), O, brpop),
        cmd("brpoplpush", 4, MOVE, (1, 2, 1), O, brpoplpush),
        cmd("blmove", 6, MOVE, (1, 2, 1), O, blmove),
        cmd("blmpop", -5, MPOP, (0, 0, 0), O, blmpop).keys_with(mpop_keys),
        cmd("bzpopmin", -3, ZPOP, (1, -2, 1), O, bzpopmin),
        cmd("bzpopmax", -3, ZPOP, (1, -2, 1), O, bzpopmax),
        cmd("bzmpop", -5, MPOP, (0, 0, 0), O, bzmpop).keys_with(mpop_keys),
    ]
}

/// Blocks the running command on `keys` of the selected database for up to `timeout`
/// (`None`: forever), to be served by `serve`, answering `timeout_reply` if nothing comes.
/// Call while the command holds its keys' locks (from its handler). Where a command may not
/// block (inside MULTI/EXEC, or forwarded from another node of a cluster) it answers
/// `timeout_reply` at once, as Redis does inside MULTI (BLMOVE and BRPOPLPUSH answer a null
/// bulk there: see [`bmove`]).
fn block(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    timeout: Option<Duration>,
    serve: Serve,
    timeout_reply: Reply,
) -> Reply {
    if !may_block(ctx) {
        return timeout_reply;
    }
    let db = ctx.session.db;
    let keys = keys.iter().map(|k| (db, k.clone())).collect();
    let waiter = ctx
        .node
        .blocking
        .register(ctx.session.client.id, keys, serve);
    ctx.session.client.update_meta(|m| m.flags = "b");
    ctx.session.blocked = Some(Blocked {
        waiter,
        deadline: timeout.map(|t| ctx.now + t),
        timeout_reply: timeout_reply.clone(),
    });
    // Not sent: the connection waits and sends the command's final reply instead.
    timeout_reply
}

fn may_block(ctx: &Ctx<'_>) -> bool {
    !ctx.in_exec && ctx.session.may_block
}

fn timeout(arg: &[u8]) -> Result<Option<Duration>, CommandError> {
    block::parse_timeout(arg).map_err(|e| CommandError::Other(e.into()))
}

fn blpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    bpop(ctx, args, End::Head)
}

fn brpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    bpop(ctx, args, End::Tail)
}

fn bpop(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> Result<Reply, CommandError> {
    let (keys, last) = args[1..].split_at(args.len() - 2);
    let timeout = timeout(&last[0])?;
    for key in keys {
        if let Some(Popped::One(item)) = list::pop(ctx, key, end, None)? {
            return Ok(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Bulk(item),
            ]));
        }
    }
    let serve = Serve::Pop(Box::new(move |key, value| {
        let Collection::List(l) = value else {
            return None;
        };
        let item = match end {
            End::Head => l.pop_front(),
            End::Tail => l.pop_back(),
        }?;
        Some(Reply::Array(vec![
            Reply::Bulk(Bytes::copy_from_slice(key)),
            Reply::Bulk(item),
        ]))
    }));
    Ok(block(ctx, keys, timeout, serve, Reply::NilArray))
}

fn blmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let from = End::parse(&args[3])?;
    let to = End::parse(&args[4])?;
    bmove(ctx, args, from, to, &args[5])
}

fn brpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    bmove(ctx, args, End::Tail, End::Head, &args[3])
}

fn bmove(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    from: End,
    to: End,
    timeout_arg: &[u8],
) -> Result<Reply, CommandError> {
    let timeout = timeout(timeout_arg)?;
    let (source, destination) = (&args[1], &args[2]);
    if ctx.write(source)?.kind(source).is_some() {
        // A list moves an element now; another type is WRONGTYPE.
        return list::lmove_generic(ctx, source, destination, from, to);
    }
    if !may_block(ctx) {
        // Redis's blmoveGenericCommand answers a null bulk where it may not block, but a
        // null array when a wait times out.
        return Ok(Reply::Nil);
    }
    let keys = std::slice::from_ref(source);
    Ok(block(ctx, keys, timeout, Serve::Retry, Reply::NilArray))
}

fn blmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let timeout = timeout(&args[1])?;
    let (keys, end, count) = list::mpop_args(args, 2)?;
    for key in keys {
        if let Some(Popped::Many(items)) = list::pop(ctx, key, end, Some(count))? {
            return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), bulks(items)]));
        }
    }
    let serve = Serve::Pop(Box::new(move |key, value| {
        let Collection::List(l) = value else {
            return None;
        };
        let items: Vec<Bytes> = (0..count)
            .map_while(|_| match end {
                End::Head => l.pop_front(),
                End::Tail => l.pop_back(),
            })
            .collect();
        (!items.is_empty())
            .then(|| Reply::Array(vec![Reply::Bulk(Bytes::copy_from_slice(key)), bulks(items)]))
    }));
    Ok(block(ctx, keys, timeout, serve, Reply::NilArray))
}

fn bzpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    bzpop(ctx, args, false)
}

fn bzpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    bzpop(ctx, args, true)
}

fn bzpop(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) -> Result<Reply, CommandError> {
    let (keys, last) = args[1..].split_at(args.len() - 2);
    let timeout = timeout(&last[0])?;
    let reply = |key: Bytes, (member, score): (Bytes, f64)| {
        Reply::Array(vec![
            Reply::Bulk(key),
            Reply::Bulk(member),
            Reply::Double(score),
        ])
    };
    for key in keys {
        if let Some(first) = zset::pop(ctx, key, max, 1)?.and_then(|p| p.into_iter().next()) {
            return Ok(reply(key.clone(), first));
        }
    }
    let serve = Serve::Pop(Box::new(move |key, value| {
        let Collection::ZSet(z) = value else {
            return None;
        };
        let (member, score) = z.pop(max, 1).into_iter().next()?;
        Some(reply(
            Bytes::copy_from_slice(key),
            (Bytes::from(member), score),
        ))
    }));
    Ok(block(ctx, keys, timeout, serve, Reply::NilArray))
}

fn bzmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let timeout = timeout(&args[1])?;
    let (keys, max, count) = zset::parse_mpop(args, 2)?;
    for key in keys {
        if let Some(reply) = zset::pop_reply(ctx, key, max, count)? {
            return Ok(reply);
        }
    }
    let serve = Serve::Pop(Box::new(move |key, value| {
        let Collection::ZSet(z) = value else {
            return None;
        };
        let items: Vec<(Bytes, f64)> = z
            .pop(max, count)
            .into_iter()
            .map(|(m, s)| (Bytes::from(m), s))
            .collect();
        (!items.is_empty()).then(|| {
            Reply::Array(vec![
                Reply::Bulk(Bytes::copy_from_slice(key)),
                zset::members_reply(items, true, true),
            ])
        })
    }));
    Ok(block(ctx, keys, timeout, serve, Reply::NilArray))
}

/// BLMPOP's and BZMPOP's key positions: the `numkeys` arguments after `timeout numkeys`.
fn mpop_keys(args: &[Bytes]) -> Vec<usize> {
    let n = args
        .get(2)
        .and_then(|a| parse_int(a))
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    (3..args.len()).take(n).collect()
}

fn bulks(items: Vec<Bytes>) -> Reply {
    Reply::Array(items.into_iter().map(Reply::Bulk).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpop_keys_follow_numkeys_after_the_timeout() {
        let args: Vec<Bytes> = ["blmpop", "0", "2", "a", "b", "left"]
            .into_iter()
            .map(Bytes::from)
            .collect();
        assert_eq!(mpop_keys(&args), [3, 4]);
        let args: Vec<Bytes> = ["bzmpop", "0", "9", "a"]
            .into_iter()
            .map(Bytes::from)
            .collect();
        assert_eq!(mpop_keys(&args), [3]);
        let args: Vec<Bytes> = ["bzmpop", "0", "x", "a"]
            .into_iter()
            .map(Bytes::from)
            .collect();
        assert!(mpop_keys(&args).is_empty());
    }
}
