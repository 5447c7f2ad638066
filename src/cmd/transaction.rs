//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! ```text
//! MULTI / EXEC / DISCARD / WATCH key [key ...] / UNWATCH
//! ```
//! Queued commands are validated when queued (unknown command or wrong arity makes EXEC
//! answer EXECABORT); EXEC runs them with the store's gate held exclusively, so no other
//! client's command runs in between, and aborts with a nil reply if a watched key was
//! written, deleted, expired or flushed since WATCH (each shard keeps a version per watched
//! key, bumped by every change to it). As in Redis, a command failing at run time inside EXEC
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
    let conflict = ctx.session.watched.iter().any(|w| changed(ctx, w));
    ctx.session.unwatch_all(&ctx.node.store);
    if multi.failed {
        return Err(CommandError::Other(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    // The gate is held exclusively (EXEC's table entry), so nothing changes from here on.
    if conflict {
        return Ok(Reply::NilArray);
    }
    let replies = multi
        .queued
        .iter()
        .map(|(spec, request)| run(ctx.node, ctx.session, spec, &request.args, true))
        .collect();
    // The transaction's effects stay in the session's capture until EXEC itself returns:
    // `cmd::run` then publishes them as one batch (one log record: replay applies all or
    // none).
    Ok(Reply::Array(replies))
}

pub(super) fn discard(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    if ctx.session.multi.take().is_none() {
        return Err(CommandError::Other("ERR DISCARD without MULTI".into()));
    }
    ctx.session.client.update_meta(|m| m.flags = "N");
    ctx.session.unwatch_all(&ctx.node.store);
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
        let version = ctx.db().shard(key).watch(key);
        ctx.session.watched.push(Watched {
            db,
            key: key.clone(),
            version,
        });
    }
    Ok(Reply::ok())
}

pub(super) fn unwatch(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    ctx.session.unwatch_all(&ctx.node.store);
    Ok(Reply::ok())
}

/// True when the watched key changed (written, deleted, expired, flushed) since WATCH.
fn changed(ctx: &Ctx<'_>, w: &Watched) -> bool {
    ctx.node
        .store
        .db(w.db)
        .is_none_or(|db| db.shard(&w.key).version(&w.key, ctx.now) != w.version)
}
