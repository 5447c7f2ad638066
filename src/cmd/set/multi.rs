//! The set commands that read several keys: SMOVE, SINTER, SINTERCARD, SUNION, SDIFF and
//! the STORE forms.
//!
//! The algorithms read one source set at a time (a candidate list filtered set by set), so
//! that they never need two borrowed sets at once: the same code then serves the read
//! commands, which lock their keys' shards together here ([`ReadLocks`]), and the STORE
//! forms, whose keys the command table has locked already ([`Ctx::write`]). Like Redis, every
//! key's type is checked before any work, and a missing key is an empty set.

use std::sync::MutexGuard;

use bytes::Bytes;
use tokio::time::Instant;

use super::super::args::{int, is};
use super::super::capture::Delta;
use super::super::{CommandError, Ctx};
use crate::effect::Edit;
use crate::protocol::Reply;
use crate::stats::Stats;
use crate::store::{Db, Entry, Kind, Set, Shard, Value};

/// Where the multi-key commands find their sets.
trait Sources {
    /// Looks `key` up and counts a keyspace hit or miss (Redis's `lookupKeyRead`): the
    /// set's size, or `None` for a missing key.
    fn probe(&mut self, key: &[u8]) -> Result<Option<usize>, CommandError>;

    /// Calls `f` with the set under `key` (`None` when missing).
    fn with<T>(&mut self, key: &[u8], f: impl FnOnce(Option<&Set>) -> T)
        -> Result<T, CommandError>;
}

/// A read command's keys' shards, locked together in ascending index order (the order
/// write commands lock theirs in, so the two never wait on each other): the command sees
/// every key at the same instant, as in Redis. Held only while the reply is built.
struct ReadLocks<'a> {
    db: &'a Db,
    guards: Vec<(usize, MutexGuard<'a, Shard>)>,
    now: Instant,
    stats: &'a Stats,
}

impl<'a> ReadLocks<'a> {
    fn new(ctx: &Ctx<'a>, keys: &[Bytes]) -> Self {
        let db = ctx.db();
        let mut indexes: Vec<usize> = keys.iter().map(|k| db.shard_index(k)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        ReadLocks {
            db,
            guards: indexes.into_iter().map(|i| (i, db.lock(i))).collect(),
            now: ctx.now,
            stats: &ctx.node.stats,
        }
    }

    fn shard(&mut self, key: &[u8]) -> Result<&mut Shard, CommandError> {
        let index = self.db.shard_index(key);
        match self.guards.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => Ok(&mut self.guards[at].1),
            // Every key was locked in `new`; a key from elsewhere would be a bug here.
            Err(_) => Err(CommandError::Other("ERR key not locked".into())),
        }
    }
}

impl Sources for ReadLocks<'_> {
    fn probe(&mut self, key: &[u8]) -> Result<Option<usize>, CommandError> {
        let (stats, now) = (self.stats, self.now);
        let value = self.shard(key)?.peek(key, now);
        stats.record_lookup(value.is_some());
        Ok(value.map(|v| v.as_set().map(Set::len)).transpose()?)
    }

    fn with<T>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(Option<&Set>) -> T,
    ) -> Result<T, CommandError> {
        let now = self.now;
        match self.shard(key)?.peek(key, now) {
            None => Ok(f(None)),
            Some(v) => Ok(f(Some(v.as_set()?))),
        }
    }
}

/// A write command's sources, read through the shards it holds.
struct Held<'c, 'a>(&'c mut Ctx<'a>);

impl Sources for Held<'_, '_> {
    fn probe(&mut self, key: &[u8]) -> Result<Option<usize>, CommandError> {
        let ctx = &mut *self.0;
        let stats = &ctx.node.stats;
        let mut w = ctx.write(key)?;
        let value = w.peek(key);
        stats.record_lookup(value.is_some());
        Ok(value.map(|v| v.as_set().map(Set::len)).transpose()?)
    }

    fn with<T>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(Option<&Set>) -> T,
    ) -> Result<T, CommandError> {
        let mut w = self.0.write(key)?;
        match w.peek(key) {
            None => Ok(f(None)),
            Some(v) => Ok(f(Some(v.as_set()?))),
        }
    }
}

pub(super) fn sinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let keys = &args[1..];
    let members = inter(&mut ReadLocks::new(ctx, keys), keys, 0)?;
    Ok(Reply::Set(members.into_iter().map(Reply::Bulk).collect()))
}

pub(super) fn sunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let keys = &args[1..];
    let set = union(&mut ReadLocks::new(ctx, keys), keys)?;
    Ok(Reply::Set(super::bulks(&set)))
}

pub(super) fn sdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let keys = &args[1..];
    let set = diff(&mut ReadLocks::new(ctx, keys), keys)?;
    Ok(Reply::Set(super::bulks(&set)))
}

pub(super) fn sinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let members = inter(&mut Held(ctx), &args[2..], 0)?;
    let mut set = Set::new();
    for m in &members {
        set.insert(m);
    }
    store(ctx, &args[1], set)
}

pub(super) fn sunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let set = union(&mut Held(ctx), &args[2..])?;
    store(ctx, &args[1], set)
}

pub(super) fn sdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let set = diff(&mut Held(ctx), &args[2..])?;
    store(ctx, &args[1], set)
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`: every argument is checked before any
/// key is read, as in Redis.
pub(super) fn sintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let numkeys = int(&args[1])
        .ok()
        .filter(|&n| n >= 1)
        .ok_or(CommandError::Other(
            "ERR numkeys should be greater than 0".into(),
        ))?;
    let Some(end) = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(2))
        .filter(|&end| end <= args.len())
    else {
        return Err(CommandError::Other(
            "ERR Number of keys can't be greater than number of args".into(),
        ));
    };
    let mut limit = 0;
    let mut i = end;
    while i < args.len() {
        match args.get(i + 1) {
            Some(value) if is(&args[i], "LIMIT") => {
                limit = int(value)
                    .ok()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(CommandError::Other("ERR LIMIT can't be negative".into()))?;
                i += 2;
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    let keys = &args[2..end];
    let members = inter(&mut ReadLocks::new(ctx, keys), keys, limit)?;
    Ok(Reply::Int(members.len() as i64))
}

/// SINTERCARD's key positions: `numkeys` keys after the count (for locks and routing; a
/// malformed count names none and the handler reports it).
pub(super) fn sintercard_keys(args: &[Bytes]) -> Vec<usize> {
    let n = args
        .get(1)
        .and_then(|a| int(a).ok())
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    (2..args.len()).take(n).collect()
}

/// `SMOVE source destination member`, in Redis's order of checks: a missing source answers
/// 0 whatever the destination holds; then both types; then a source equal to the
/// destination only answers whether the member is there.
pub(super) fn smove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    match ctx.write(src)?.kind(src) {
        None => return Ok(Reply::Int(0)),
        Some(Kind::Set) => {}
        Some(_) => return Err(crate::store::WrongType.into()),
    }
    if ctx.write(dst)?.kind(dst).is_some_and(|k| k != Kind::Set) {
        return Err(crate::store::WrongType.into());
    }
    if src == dst {
        let there = Held(ctx).with(src, |s| s.is_some_and(|s| s.contains(member)))?;
        return Ok(Reply::Int(i64::from(there)));
    }
    let edit = |recording: bool, edit: fn(Vec<Bytes>) -> Edit, done: bool| {
        Delta::of(done, recording, || edit(vec![member.clone()]))
    };
    let removed = ctx
        .write(src)?
        .update_set_edit(src, false, |s, recording| {
            let removed = s.remove(member);
            (removed, edit(recording, Edit::SetRem, removed))
        })?;
    if removed != Some(true) {
        return Ok(Reply::Int(0));
    }
    ctx.write(dst)?.update_set_edit(dst, true, |s, recording| {
        let added = s.insert(member);
        ((), edit(recording, Edit::SetAdd, added))
    })?;
    Ok(Reply::Int(1))
}

/// Replaces `dst` with `set` (any old type, its TTL dropped), or deletes it for an empty
/// result; answers the size stored.
fn store(ctx: &mut Ctx<'_>, dst: &Bytes, set: Set) -> Result<Reply, CommandError> {
    let len = set.len();
    let mut w = ctx.write(dst)?;
    if len == 0 {
        w.remove(dst);
    } else {
        w.insert(
            dst,
            Entry {
                value: Value::Set(set),
                deadline: None,
            },
        );
    }
    Ok(Reply::Int(len as i64))
}

/// The sizes of `keys`' sets (`None` for missing ones), every type checked first.
fn probe_all(src: &mut impl Sources, keys: &[Bytes]) -> Result<Vec<Option<usize>>, CommandError> {
    keys.iter().map(|k| src.probe(k)).collect()
}

/// The intersection of `keys`' sets, in the smallest set's order (Redis iterates the
/// smallest and checks the others), stopping at `limit` members when it is not 0.
fn inter(src: &mut impl Sources, keys: &[Bytes], limit: usize) -> Result<Vec<Bytes>, CommandError> {
    let sizes = probe_all(src, keys)?;
    let Some(sizes) = sizes.into_iter().collect::<Option<Vec<usize>>>() else {
        return Ok(Vec::new());
    };
    let smallest = (0..keys.len()).min_by_key(|&i| sizes[i]).unwrap_or(0);
    let first = &keys[smallest];
    let mut members = src.with(first, |s| {
        s.map(|s| s.iter().map(|m| m.to_bytes()).collect::<Vec<_>>())
            .unwrap_or_default()
    })?;
    for key in keys.iter().filter(|k| *k != first) {
        if members.is_empty() {
            break;
        }
        src.with(key, |s| match s {
            Some(s) => members.retain(|m| s.contains(m)),
            None => members.clear(),
        })?;
    }
    if limit > 0 {
        members.truncate(limit);
    }
    Ok(members)
}

/// The union of `keys`' sets, built as Redis builds it (an intset first).
fn union(src: &mut impl Sources, keys: &[Bytes]) -> Result<Set, CommandError> {
    let sizes = probe_all(src, keys)?;
    let mut out = Set::new();
    for (key, _) in keys.iter().zip(sizes).filter(|(_, n)| n.is_some()) {
        src.with(key, |s| {
            for m in s.iter().flat_map(|s| s.iter()) {
                out.insert_member(m);
            }
        })?;
    }
    Ok(out)
}

/// The first key's set less every other one's. A key repeated as the first makes it empty
/// (Redis's `sameset`).
fn diff(src: &mut impl Sources, keys: &[Bytes]) -> Result<Set, CommandError> {
    let sizes = probe_all(src, keys)?;
    let mut out = Set::new();
    let Some(first) = keys.first().filter(|_| sizes[0].is_some()) else {
        return Ok(out);
    };
    if keys[1..].contains(first) {
        return Ok(out);
    }
    src.with(first, |s| {
        for m in s.iter().flat_map(|s| s.iter()) {
            out.insert_member(m);
        }
    })?;
    for (key, _) in keys[1..]
        .iter()
        .zip(&sizes[1..])
        .filter(|(_, n)| n.is_some())
    {
        if out.is_empty() {
            break;
        }
        src.with(key, |s| {
            let Some(s) = s else { return };
            // Walk the smaller of the two.
            if s.len() < out.len() {
                for m in s.iter() {
                    out.remove_member(m);
                }
            } else {
                out.retain(|m| !s.contains_member(m));
            }
        })?;
    }
    Ok(out)
}
