//! Pub/sub commands over the node's [`crate::pubsub::PubSub`] registry.
//!
//! ```text
//! SUBSCRIBE channel [channel ...]       -> one `subscribe channel count` frame per channel
//! UNSUBSCRIBE [channel ...]             -> one `unsubscribe channel count` frame per channel
//!                                          (no channel: every subscribed one, or one frame
//!                                          with a nil channel when there is none)
//! PSUBSCRIBE pattern [pattern ...] / PUNSUBSCRIBE [pattern ...]   -> the same, for patterns
//! PUBLISH channel message               -> deliveries made on this node
//! PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | SHARDCHANNELS [pattern]
//!        | SHARDNUMSUB [channel ...] | HELP
//! ```
//! A command that answers several frames returns the last as its reply and leaves the others
//! in [`Session::pushes`], which the connection sends first. Frames and messages are
//! [`Reply::Push`]: arrays in RESP2, push frames in RESP3, `{"push": ...}` objects in JSON.
//!
//! Subscribed mode: a RESP2 connection with any subscription may only run the commands in
//! [`allowed_while_subscribed`] (checked in [`super::execute`]); RESP3 and JSON connections
//! tell pushes from replies, so they may run anything. In a replicated cluster, PUBLISH also
//! goes to every other node over the bus (best effort, see [`crate::cluster::publish`]); its
//! reply counts this node's deliveries only, as Redis Cluster's does. There are no shard
//! channels: SSUBSCRIBE and SPUBLISH are not commands, the SHARD subcommands answer empty.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{is, text};
use super::table::{cmd, CommandSpec};
use super::{CommandError, Ctx, Session};
use crate::protocol::Reply;
use crate::pubsub::Kind;
use crate::stats::StatKind::Other as O;

/// The pub/sub rows of the command table (flags as Redis 7.0's).
pub(super) fn commands() -> Vec<CommandSpec> {
    const SUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];
    vec![
        cmd("subscribe", -2, SUB, (0, 0, 0), O, subscribe),
        cmd("unsubscribe", -1, SUB, (0, 0, 0), O, unsubscribe),
        cmd("psubscribe", -2, SUB, (0, 0, 0), O, psubscribe),
        cmd("punsubscribe", -1, SUB, (0, 0, 0), O, punsubscribe),
        cmd(
            "publish",
            3,
            &["pubsub", "loading", "stale", "fast", "may_replicate"],
            (0, 0, 0),
            O,
            publish,
        ),
        cmd("pubsub", -2, &[], (0, 0, 0), O, pubsub),
    ]
}

/// Whether a RESP2 connection in subscribed mode may run `name` (Redis 7.0's list).
pub(super) fn allowed_while_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// Redis's refusal of a command in subscribed mode; `name` is the command's full name
/// (`client|list` for a subcommand).
pub(super) fn refusal(name: &str) -> CommandError {
    CommandError::Other(
        format!(
            "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
             RESET are allowed in this context"
        )
        .into(),
    )
}

fn subscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    join(ctx, Kind::Channel, &args[1..])
}

fn psubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    join(ctx, Kind::Pattern, &args[1..])
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    leave(ctx, Kind::Channel, &args[1..])
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    leave(ctx, Kind::Pattern, &args[1..])
}

fn publish(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let (channel, message) = (args[1].clone(), args[2].clone());
    if let Some(cluster) = ctx.node.cluster() {
        cluster.publish(&channel, &message);
    }
    let session = &mut *ctx.session;
    let receivers = ctx
        .node
        .pubsub
        .publish_deferring(channel, message, &mut session.wakes);
    if !session.defer_wakes {
        session.wakes.wake();
    }
    Ok(Reply::Int(receivers as i64))
}

/// SUBSCRIBE / PSUBSCRIBE: subscribes to each name, one confirmation frame each.
fn join(ctx: &mut Ctx<'_>, kind: Kind, names: &[Bytes]) -> Result<Reply, CommandError> {
    let node = ctx.node;
    let session = &mut *ctx.session;
    let client = session.client.clone();
    let subs = session
        .subscriptions
        .get_or_insert_with(|| node.pubsub.subscriptions(client.id, client.kill.clone()));
    let word = match kind {
        Kind::Channel => "subscribe",
        Kind::Pattern => "psubscribe",
    };
    let mut frames = Vec::with_capacity(names.len());
    for name in names {
        subs.subscribe(kind, name);
        frames.push(confirmation(word, Reply::Bulk(name.clone()), subs.count()));
    }
    Ok(finish(session, frames))
}

/// UNSUBSCRIBE / PUNSUBSCRIBE: leaves each name (every one subscribed when none is given),
/// one confirmation frame each; with nothing to leave, one frame with a nil name.
fn leave(ctx: &mut Ctx<'_>, kind: Kind, names: &[Bytes]) -> Result<Reply, CommandError> {
    let session = &mut *ctx.session;
    let word = match kind {
        Kind::Channel => "unsubscribe",
        Kind::Pattern => "punsubscribe",
    };
    let Some(subs) = session.subscriptions.as_mut() else {
        let frames = if names.is_empty() {
            vec![confirmation(word, Reply::Nil, 0)]
        } else {
            names
                .iter()
                .map(|n| confirmation(word, Reply::Bulk(n.clone()), 0))
                .collect()
        };
        return Ok(finish(session, frames));
    };
    let all;
    let names = if names.is_empty() {
        all = subs.names(kind);
        &all[..]
    } else {
        names
    };
    let mut frames = Vec::with_capacity(names.len().max(1));
    for name in names {
        subs.unsubscribe(kind, name);
        frames.push(confirmation(word, Reply::Bulk(name.clone()), subs.count()));
    }
    if frames.is_empty() {
        frames.push(confirmation(word, Reply::Nil, subs.count()));
    }
    Ok(finish(session, frames))
}

/// One `kind name count` frame.
fn confirmation(kind: &'static str, name: Reply, count: usize) -> Reply {
    Reply::Push(vec![Reply::text(kind), name, Reply::Int(count as i64)])
}

/// Updates what CLIENT LIST shows, leaves every frame but the last for the connection to send
/// first, and returns the last as the reply.
fn finish(session: &mut Session, mut frames: Vec<Reply>) -> Reply {
    let (channels, patterns) = session
        .subscriptions
        .as_ref()
        .map_or((0, 0), |s| (s.channel_count(), s.pattern_count()));
    let client = &session.client;
    client.subscriptions.store(channels, Ordering::Relaxed);
    client
        .pattern_subscriptions
        .store(patterns, Ordering::Relaxed);
    let subscribed = channels + patterns > 0;
    client.update_meta(|m| {
        if subscribed && m.flags == "N" {
            m.flags = "P";
        } else if !subscribed && m.flags == "P" {
            m.flags = "N";
        }
    });
    // Both callers make at least one frame.
    let last = frames.pop().unwrap_or(Reply::Nil);
    session.pushes.extend(frames);
    last
}

fn pubsub(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let sub = &args[1];
    let registry = &ctx.node.pubsub;
    let arity = |name: &str| CommandError::WrongArity(format!("pubsub|{name}"));
    let syntax = || {
        CommandError::Other(
            format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                text(sub)
            )
            .into(),
        )
    };
    if is(sub, "CHANNELS") {
        if args.len() > 3 {
            return Err(syntax());
        }
        let filter = args.get(2).map(|p| p.as_ref());
        let channels = registry.channels(filter);
        Ok(Reply::Array(
            channels.into_iter().map(Reply::Bulk).collect(),
        ))
    } else if is(sub, "NUMSUB") {
        let mut out = Vec::with_capacity((args.len() - 2) * 2);
        for channel in &args[2..] {
            out.push(Reply::Bulk(channel.clone()));
            out.push(Reply::Int(registry.numsub(channel) as i64));
        }
        Ok(Reply::Array(out))
    } else if is(sub, "NUMPAT") {
        if args.len() != 2 {
            return Err(arity("numpat"));
        }
        Ok(Reply::Int(registry.pattern_count() as i64))
    } else if is(sub, "SHARDCHANNELS") {
        if args.len() > 3 {
            return Err(syntax());
        }
        Ok(Reply::Array(Vec::new()))
    } else if is(sub, "SHARDNUMSUB") {
        let mut out = Vec::with_capacity((args.len() - 2) * 2);
        for channel in &args[2..] {
            out.push(Reply::Bulk(channel.clone()));
            out.push(Reply::Int(0));
        }
        Ok(Reply::Array(out))
    } else if is(sub, "HELP") {
        if args.len() != 2 {
            return Err(arity("help"));
        }
        Ok(Reply::status_lines(HELP))
    } else {
        Err(CommandError::UnknownSubcommand {
            command: "PUBSUB",
            sub: text(sub),
        })
    }
}

/// PUBSUB HELP, word for word as Redis 7.0.
const HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];
