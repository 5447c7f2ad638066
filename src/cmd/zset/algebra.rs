//! ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD (Redis's
//! `zunionInterDiffGenericCommand`). Sources may be sorted sets or plain sets (members
//! scoring 1). Each source is copied out of its shard first, so no two shard locks are
//! needed at once by the read forms; the STORE forms hold all their keys already.

use std::collections::HashMap;

use bytes::Bytes;

use super::{members_reply, range::store, resp3, strict_double};
use crate::cmd::args::{int, is};
use crate::cmd::{CommandError, Ctx};
use crate::protocol::Reply;
use crate::store::{ValueRef, WrongType};

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// One input: its members with scores, and its weight.
struct Source {
    items: Vec<(Bytes, f64)>,
    weight: f64,
}

pub(super) fn zunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    generic(ctx, args, None, Op::Union, false)
}

pub(super) fn zinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    generic(ctx, args, None, Op::Inter, false)
}

pub(super) fn zdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    generic(ctx, args, None, Op::Diff, false)
}

pub(super) fn zintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    generic(ctx, args, None, Op::Inter, true)
}

pub(super) fn zunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    generic(ctx, args, Some(&args[1]), Op::Union, false)
}

pub(super) fn zinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    generic(ctx, args, Some(&args[1]), Op::Inter, false)
}

pub(super) fn zdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    generic(ctx, args, Some(&args[1]), Op::Diff, false)
}

fn generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    dst: Option<&Bytes>,
    op: Op,
    card_only: bool,
) -> Result<Reply, CommandError> {
    let at = if dst.is_some() { 2 } else { 1 };
    let setnum = int(&args[at])?;
    if setnum < 1 {
        return Err(CommandError::Other(
            format!(
                "ERR at least 1 input key is needed for '{}' command",
                String::from_utf8_lossy(&args[0]).to_lowercase()
            )
            .into(),
        ));
    }
    let setnum = usize::try_from(setnum).unwrap_or(usize::MAX);
    if setnum > args.len() - (at + 1) {
        return Err(CommandError::Syntax);
    }
    let keys = &args[at + 1..at + 1 + setnum];
    let mut sources = Vec::with_capacity(setnum);
    for key in keys {
        sources.push(Source {
            items: load(ctx, key, dst.is_some())?,
            weight: 1.0,
        });
    }
    let mut aggregate = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = at + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != Op::Diff && !card_only && remaining > setnum && is(a, "WEIGHTS") {
            for (i, source) in sources.iter_mut().enumerate() {
                source.weight = strict_double(&args[j + 1 + i])
                    .ok_or_else(|| CommandError::Other("ERR weight value is not a float".into()))?;
            }
            j += 1 + setnum;
        } else if op != Op::Diff && !card_only && remaining >= 2 && is(a, "AGGREGATE") {
            let v = &args[j + 1];
            aggregate = if is(v, "SUM") {
                Aggregate::Sum
            } else if is(v, "MIN") {
                Aggregate::Min
            } else if is(v, "MAX") {
                Aggregate::Max
            } else {
                return Err(CommandError::Syntax);
            };
            j += 2;
        } else if dst.is_none() && !card_only && is(a, "WITHSCORES") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && is(a, "LIMIT") {
            limit = super::at_least(&args[j + 1], 0, "LIMIT can't be negative")?;
            j += 2;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if op != Op::Diff {
        // Smallest first, as Redis orders them (a stable sort: equal sizes keep their order).
        sources.sort_by_key(|s| s.items.len());
    }
    let mut result = match op {
        Op::Union => union(&sources, aggregate),
        Op::Inter => inter(&sources, aggregate, card_only.then_some(limit)),
        Op::Diff => diff(&sources),
    };
    if card_only {
        return Ok(Reply::Int(result.len() as i64));
    }
    if let Some(dst) = dst {
        return store(ctx, dst, result);
    }
    result.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(members_reply(result, withscores, resp3(ctx)))
}

/// A source's members (a sorted set's scores, 1 for a set's members); empty when missing.
fn load(ctx: &mut Ctx<'_>, key: &Bytes, held: bool) -> Result<Vec<(Bytes, f64)>, CommandError> {
    let collect = |v: Option<ValueRef<'_>>| -> Result<(bool, Vec<(Bytes, f64)>), WrongType> {
        let mut items = Vec::new();
        match v {
            None => return Ok((false, items)),
            Some(ValueRef::ZSet(z)) => {
                items.reserve(z.len());
                z.for_each(|m, s| items.push((Bytes::copy_from_slice(m), s)));
            }
            Some(ValueRef::Set(s)) => {
                items.reserve(s.len());
                s.for_each(|m| items.push((Bytes::copy_from_slice(m), 1.0)));
            }
            Some(_) => return Err(WrongType),
        }
        Ok((true, items))
    };
    let (found, items) = if held {
        // A write command holds this shard already: read through its writer.
        collect(ctx.write(key)?.peek(key))?
    } else {
        collect(ctx.db().shard(key).peek(key, ctx.now))?
    };
    ctx.node.stats.record_lookup(found);
    Ok(items)
}

/// `zunionInterAggregate`.
fn aggregate(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += value;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if value < *target {
                *target = value;
            }
        }
        Aggregate::Max => {
            if value > *target {
                *target = value;
            }
        }
    }
}

/// A weighted score (`inf * 0` is 0, as in Redis).
fn weighted(score: f64, weight: f64) -> f64 {
    let v = score * weight;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

fn union(sources: &[Source], how: Aggregate) -> Vec<(Bytes, f64)> {
    let mut acc: HashMap<Bytes, f64, ahash::RandomState> = HashMap::default();
    let mut order = Vec::new();
    for src in sources {
        for (m, s) in &src.items {
            let score = weighted(*s, src.weight);
            match acc.get_mut(m) {
                Some(t) => aggregate(t, score, how),
                None => {
                    acc.insert(m.clone(), score);
                    order.push(m.clone());
                }
            }
        }
    }
    order
        .into_iter()
        .map(|m| {
            let s = acc.get(&m).copied().unwrap_or_default();
            (m, s)
        })
        .collect()
}

fn inter(sources: &[Source], how: Aggregate, limit: Option<usize>) -> Vec<(Bytes, f64)> {
    let Some((first, rest)) = sources.split_first() else {
        return Vec::new();
    };
    let maps: Vec<HashMap<&Bytes, f64, ahash::RandomState>> = rest
        .iter()
        .map(|src| src.items.iter().map(|(m, s)| (m, *s)).collect())
        .collect();
    let mut out = Vec::new();
    'members: for (m, s) in &first.items {
        let mut score = weighted(*s, first.weight);
        for (map, src) in maps.iter().zip(rest) {
            match map.get(m) {
                Some(v) => aggregate(&mut score, weighted(*v, src.weight), how),
                None => continue 'members,
            }
        }
        out.push((m.clone(), score));
        if limit.is_some_and(|l| l > 0 && out.len() >= l) {
            break;
        }
    }
    out
}

fn diff(sources: &[Source]) -> Vec<(Bytes, f64)> {
    let Some((first, rest)) = sources.split_first() else {
        return Vec::new();
    };
    let others: Vec<std::collections::HashSet<&Bytes, ahash::RandomState>> = rest
        .iter()
        .map(|src| src.items.iter().map(|(m, _)| m).collect())
        .collect();
    first
        .items
        .iter()
        .filter(|(m, _)| !others.iter().any(|o| o.contains(m)))
        .cloned()
        .collect()
}
