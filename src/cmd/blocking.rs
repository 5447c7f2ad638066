//! What blocking commands share: registering the running command as blocked (see
//! [`crate::block`] for the design) and the null reply it gives when it times out.

use std::time::Duration;

use bytes::Bytes;

use super::Ctx;
use crate::block::Serve;
use crate::cmd::session::Blocked;
use crate::protocol::Reply;

/// Blocks the running command on `keys` of the selected database for up to `timeout`
/// (`None`: forever), to be served by `serve`, answering `timeout_reply` if nothing comes.
/// Call while the command holds its keys' locks (from its handler). Where a command may not
/// block (inside MULTI/EXEC, or forwarded from another node of a cluster) it answers
/// `timeout_reply` at once, as Redis does inside MULTI.
#[allow(dead_code)] // BLPOP & co. arrive with the list and sorted-set families.
pub(super) fn block(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    timeout: Option<Duration>,
    serve: Serve,
    timeout_reply: Reply,
) -> Reply {
    if ctx.in_exec || !ctx.session.may_block {
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
