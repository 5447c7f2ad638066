//! SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: stop this node, as Redis 7.0 does.
//!
//! The snapshot is written first, inside the command, so that a failure can still be answered
//! (`-ERR Errors trying to SHUTDOWN. Check logs.`, and the node keeps serving) unless FORCE
//! says to stop anyway. Then the node's shutdown token is cancelled: it stops accepting,
//! drains its connections, writes a last snapshot if anything changed since (writes that
//! raced the command) and flushes the append-only log. The client gets no reply: its
//! connection closes, as with Redis. NOSAVE writes no snapshot at all; the log, when on, is
//! still flushed. NOW changes nothing: a node never waits for replicas here (a replicated
//! shard elects a new leader within `--cluster-node-timeout`). ABORT answers that no shutdown
//! is in progress, since none ever waits. Refused inside MULTI (the table's `no_multi` flag).
//!
//! In a `minikv cluster` process SHUTDOWN stops the node it was sent to; the process exits
//! once every node in it has stopped.

use bytes::Bytes;

use super::args::is;
use super::{CommandError, Ctx};
use crate::node::FinalSave;
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
    let mode = if options.save == Some(false) {
        FinalSave::Nothing
    } else if node.cluster().is_some() {
        // A replicated node's data lives in its Raft groups, which stop with it.
        FinalSave::Nothing
    } else {
        match node.persister.save(&node.store) {
            Ok(keys) => {
                tracing::info!(id = node.config.id, keys, "SHUTDOWN: snapshot written");
                FinalSave::IfChanged
            }
            Err(e) if options.force => {
                tracing::warn!(id = node.config.id, "SHUTDOWN FORCE: snapshot failed: {e}");
                FinalSave::Nothing
            }
            Err(e) => {
                tracing::warn!(
                    id = node.config.id,
                    "SHUTDOWN refused: the snapshot could not be written: {e}"
                );
                return Err(CommandError::Other(
                    "ERR Errors trying to SHUTDOWN. Check logs.".into(),
                ));
            }
        }
    };
    tracing::info!(id = node.config.id, "user requested shutdown");
    *node
        .final_save
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = mode;
    node.shutdown.cancel();
    ctx.session.suppress_current = true;
    ctx.session.closing = true;
    Ok(Reply::ok())
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
