//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! ```text
//! MULTI / EXEC / DISCARD / WATCH key [key ...] / UNWATCH
//! ```
//! Queued commands are validated when queued (unknown command or wrong arity makes EXEC
//! answer EXECABORT); EXEC runs them with the store's gate held exclusively, so no other
//! client's command runs in between, and aborts with a nil reply if a watched key was
//! written (or expired) since WATCH. As in Redis, a command failing at run time inside EXEC
//! does not stop the others.

use bytes::Bytes;

use super::{run, CommandError, Ctx, Multi, Watched};
use crate::protocol::Reply;

pub(super) fn multi(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    if ctx.session.multi.is_some() {
        return Err(CommandError::Other(
            "ERR MULTI calls can not be nested".into(),
        ));
    }
    ctx.session.multi = Some(Multi::default());
    ctx.session.client.update_meta(|m| m.flags = "x");
    Ok(Reply::ok())
}

pub(super) fn exec(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    let Some(multi) = ctx.session.multi.take() else {
        return Err(CommandError::Other("ERR EXEC without MULTI".into()));
    };
    ctx.session.client.update_meta(|m| m.flags = "N");
    let watched = std::mem::take(&mut ctx.session.watched);
    if multi.failed {
        return Err(CommandError::Other(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    // The gate is held exclusively (EXEC's table entry), so nothing changes from here on.
    if watched.iter().any(|w| changed(ctx, w)) {
        return Ok(Reply::NilArray);
    }
    let replies = multi
        .queued
        .iter()
        .map(|(spec, request)| run(ctx.node, ctx.session, spec, &request.args, true))
        .collect();
    Ok(Reply::Array(replies))
}

pub(super) fn discard(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    if ctx.session.multi.take().is_none() {
        return Err(CommandError::Other("ERR DISCARD without MULTI".into()));
    }
    ctx.session.client.update_meta(|m| m.flags = "N");
    ctx.session.watched.clear();
    Ok(Reply::ok())
}

pub(super) fn watch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    if ctx.session.multi.is_some() {
        return Err(CommandError::Other(
            "ERR WATCH inside MULTI is not allowed".into(),
        ));
    }
    for key in &args[1..] {
        let db = ctx.session.db;
        if ctx
            .session
            .watched
            .iter()
            .any(|w| w.db == db && w.key == key)
        {
            continue;
        }
        let seen = current(ctx, db, key);
        ctx.session.watched.push(Watched {
            db,
            key: key.clone(),
            seen,
        });
    }
    Ok(Reply::ok())
}

pub(super) fn unwatch(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    ctx.session.watched.clear();
    Ok(Reply::ok())
}

/// The key's current value and deadline, if it exists.
fn current(ctx: &Ctx<'_>, db: usize, key: &[u8]) -> Option<(Bytes, Option<tokio::time::Instant>)> {
    let db = ctx.node.store.db(db)?;
    let mut shard = db.shard(key);
    shard
        .get(key, ctx.now)
        .map(|e| (e.value.clone(), e.deadline))
}

/// True when the watched key was written since WATCH: every write stores a new value
/// allocation or a new deadline, and the watch keeps the old allocation alive, so comparing
/// identity cannot be fooled by a freed address being reused.
fn changed(ctx: &Ctx<'_>, w: &Watched) -> bool {
    match (&w.seen, current(ctx, w.db, &w.key)) {
        (None, None) => false,
        (Some((old, old_deadline)), Some((new, new_deadline))) => {
            old.as_ptr() != new.as_ptr() || old.len() != new.len() || *old_deadline != new_deadline
        }
        _ => true,
    }
}
