//! SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: stop this node, as Redis 7.0 does.
//!
//! The snapshot is written first, so that a failure can still be answered (`-ERR Errors trying
//! to SHUTDOWN. Check logs.`, and the node keeps serving) unless FORCE says to stop anyway. It
//! is written on the node's saver thread at normal priority while the connection waits (the
//! handler leaves a [`Saving`] on the session, the way a blocking command leaves its waiter),
//! so the tokio worker thread keeps serving its other connections. Then the node's shutdown
//! token is cancelled: it stops accepting, drains its connections, writes a last snapshot if
//! anything changed since (writes that raced the command) and flushes the append-only log. The
//! client gets no reply: its connection closes, as with Redis. NOSAVE writes no snapshot at
//! all; the log, when on, is still flushed. NOW changes nothing: a node never waits for replicas here (a replicated
//! shard elects a new leader within `--cluster-node-timeout`). ABORT answers that no shutdown
//! is in progress, since none ever waits. Refused inside MULTI (the table's `no_multi` flag).
//!
//! In a `minikv cluster` process SHUTDOWN stops the node it was sent to; the process exits
//! once every node in it has stopped.

use bytes::Bytes;

use super::args::is;
use super::{CommandError, Ctx, Saving, Session};
use crate::node::{FinalSave, Node};
use crate::protocol::Reply;

/// SHUTDOWN's options.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Options {
    save: Option<bool>,
    force: bool,
    abort: bool,
}

fn parse(args: &[Bytes]) -> Result<Options, CommandError> {
    let mut options = Options::default();
    let mut others = false;
    for arg in args {
        if is(arg, "NOSAVE") {
            others = true;
            options.save = match options.save {
                Some(true) => return Err(CommandError::Syntax),
                _ => Some(false),
            };
        } else if is(arg, "SAVE") {
            others = true;
            options.save = match options.save {
                Some(false) => return Err(CommandError::Syntax),
                _ => Some(true),
            };
        } else if is(arg, "NOW") {
            others = true;
        } else if is(arg, "FORCE") {
            others = true;
            options.force = true;
        } else if is(arg, "ABORT") {
            options.abort = true;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    if options.abort && others {
        return Err(CommandError::Syntax);
    }
    Ok(options)
}

pub(super) fn shutdown(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let options = parse(&args[1..])?;
    if options.abort {
        return Err(CommandError::Other("ERR No shutdown in progress.".into()));
    }
    let node = ctx.node;
    // A replicated node's data lives in its Raft groups, which stop with it.
    if options.save == Some(false) || node.cluster().is_some() {
        stop(node, ctx.session, FinalSave::Nothing);
        ctx.session.suppress_current = true;
        return Ok(Reply::ok());
    }
    // The snapshot is written on the node's saver thread, not on this worker thread, whose
    // other connections go on meanwhile; this connection waits for it as a blocked command
    // waits (see `server::conn::wait`) and ends the command with `saved`.
    let outcome = node.persister.save_urgently(node.store.clone());
    ctx.session.saving = Some(Saving {
        outcome,
        force: options.force,
    });
    // Not sent: the connection sends what `saved` answers instead.
    Ok(Reply::ok())
}

/// Ends a SHUTDOWN whose snapshot was written (`Ok`, the number of keys) or failed (`Err`,
/// why): stops the node and answers nothing (`None`: the connection closes), or refuses
/// with Redis's error and the node keeps serving (a failure without FORCE).
pub fn saved(
    node: &Node,
    session: &mut Session,
    force: bool,
    outcome: Result<usize, String>,
) -> Option<Reply> {
    let mode = match outcome {
        Ok(keys) => {
            tracing::info!(id = node.config.id, keys, "SHUTDOWN: snapshot written");
            FinalSave::IfChanged
        }
        Err(e) if force => {
            tracing::warn!(id = node.config.id, "SHUTDOWN FORCE: snapshot failed: {e}");
            FinalSave::Nothing
        }
        Err(e) => {
            tracing::warn!(
                id = node.config.id,
                "SHUTDOWN refused: the snapshot could not be written: {e}"
            );
            return Some(Reply::Error(
                "ERR Errors trying to SHUTDOWN. Check logs.".into(),
            ));
        }
    };
    stop(node, session, mode);
    None
}

/// Stops the node: the final save mode first, then the token the stopping node waits on.
fn stop(node: &Node, session: &mut Session, mode: FinalSave) {
    tracing::info!(id = node.config.id, "user requested shutdown");
    node.final_save.set(mode);
    node.shutdown.cancel();
    session.closing = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &[&str]) -> Result<Options, CommandError> {
        let args: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        parse(&args)
    }

    #[test]
    fn options_follow_redis() {
        assert_eq!(opts(&[]).ok(), Some(Options::default()));
        let nosave = opts(&["nosave", "NOSAVE", "now", "NOW"]).ok();
        assert_eq!(nosave.map(|o| o.save), Some(Some(false)));
        assert!(opts(&["save", "nosave"]).is_err());
        assert!(opts(&["abort", "now"]).is_err());
        assert!(opts(&["foo"]).is_err());
        assert_eq!(opts(&["force"]).ok().map(|o| o.force), Some(true));
        assert_eq!(opts(&["abort"]).ok().map(|o| o.abort), Some(true));
    }
}
