//! Connection commands: PING, ECHO, SELECT, QUIT, HELLO, AUTH and CLIENT.
//!
//! ```text
//! PING [message] / ECHO message / SELECT index / QUIT
//! RESET
//! HELLO [protover [AUTH username password] [SETNAME name]]
//! AUTH [username] password
//! CLIENT ID | GETNAME | SETNAME name | SETINFO LIB-NAME|LIB-VER value | INFO
//!        | LIST [TYPE t] [ID id ...] | KILL addr | KILL [ID id] [ADDR a] [LADDR a] [SKIPME y/n]
//!        | REPLY ON|OFF|SKIP | NO-EVICT on|off | NO-TOUCH on|off | GETREDIR | HELP
//! ```
//! With `requirepass` set, a connection starts unauthenticated: [`super::execute`] answers
//! everything but AUTH, HELLO, QUIT and RESET with `NOAUTH`, and AUTH (`AUTH password` or
//! `AUTH default password`) or `HELLO <proto> AUTH default password` unlocks it. Without a
//! password the `default` user accepts any password, as Redis's `nopass` user does.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::args::{int, is, text};
use super::{CommandError, Ctx, ReplyMode, Session};
use crate::node::{ClientHandle, Node};
use crate::protocol::Reply;
use crate::report::REDIS_VERSION;

pub(super) fn ping(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    if ctx.session.subscribed_mode() {
        // In subscribed mode Redis answers like a message, so clients can tell it apart.
        return match args {
            [_] => Ok(Reply::Array(vec![Reply::text("pong"), Reply::text("")])),
            [_, msg] => Ok(Reply::Array(vec![
                Reply::text("pong"),
                Reply::Bulk(msg.clone()),
            ])),
            _ => Err(CommandError::WrongArity("ping".into())),
        };
    }
    match args {
        [_] => Ok(Reply::Simple("PONG".into())),
        [_, msg] => Ok(Reply::Bulk(msg.clone())),
        _ => Err(CommandError::WrongArity("ping".into())),
    }
}

pub(super) fn echo(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    Ok(Reply::Bulk(args[1].clone()))
}

pub(super) fn select(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let index = int(&args[1])?;
    let index = usize::try_from(index).map_err(|_| CommandError::DbIndexOutOfRange)?;
    if ctx.node.store.db(index).is_none() {
        return Err(CommandError::DbIndexOutOfRange);
    }
    ctx.session.db = index;
    ctx.session.client.db.store(index, Ordering::Relaxed);
    Ok(Reply::ok())
}

pub(super) fn quit(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    ctx.session.closing = true;
    Ok(Reply::ok())
}

pub(super) fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let mut protocol = ctx.session.protocol;
    if let Some(v) = args.get(1) {
        let v = int(v).map_err(|_| {
            CommandError::Other("ERR Protocol version is not an integer or out of range".into())
        })?;
        if !(2..=3).contains(&v) {
            return Err(CommandError::NoProto);
        }
        protocol = v as u8;
    }
    let mut i = 2;
    let mut name = None;
    let mut credentials = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "AUTH") && more >= 2 {
            credentials = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if is(&args[i], "SETNAME") && more >= 1 {
            check_name(&args[i + 1])?;
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(CommandError::Other(
                format!("ERR Syntax error in HELLO option '{}'", text(&args[i])).into(),
            ));
        }
    }
    // Redis's order: options are checked, then credentials, then whether the connection may
    // go on; only then does anything change.
    if let Some((user, password)) = credentials {
        authenticate(ctx.node, ctx.session, Some(user.as_ref()), password)?;
    }
    if ctx.session.auth_required(ctx.node) {
        return Err(CommandError::Other(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time"
                .into(),
        ));
    }
    if let Some(name) = name {
        set_name(ctx, name)?;
    }
    ctx.session.protocol = protocol;
    ctx.session
        .client
        .protocol
        .store(protocol, Ordering::Relaxed);
    let s = Reply::text;
    Ok(Reply::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(REDIS_VERSION)),
        (s("proto"), Reply::Int(i64::from(protocol))),
        (s("id"), Reply::Int(ctx.session.client.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s("master")),
        (s("modules"), Reply::Array(vec![])),
    ]))
}

pub(super) fn auth(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    match args {
        [_, password] => authenticate(ctx.node, ctx.session, None, password)?,
        [_, user, password] => authenticate(ctx.node, ctx.session, Some(user.as_ref()), password)?,
        _ => return Err(CommandError::Syntax),
    }
    Ok(Reply::ok())
}

/// Checks credentials as AUTH does (`user` is `None` for the one-argument form) and marks the
/// session authenticated when they are right. A failure leaves an authenticated session
/// authenticated, as in Redis.
///
/// # Errors
/// `WRONGPASS` for a wrong user or password; without a configured password, the one-argument
/// form gets Redis's "called without any password configured" error.
pub(super) fn authenticate(
    node: &Node,
    session: &mut Session,
    user: Option<&[u8]>,
    password: &[u8],
) -> Result<(), CommandError> {
    // Redis has one user, `default`; user names are case-sensitive.
    let user_ok = user.is_none_or(|u| u == b"default");
    let Some(required) = node.settings.password() else {
        return match user {
            None => Err(CommandError::Other(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?"
                    .into(),
            )),
            // Like Redis's `nopass` default user: any password is accepted.
            Some(_) if user_ok => Ok(()),
            Some(_) => Err(CommandError::WrongPass),
        };
    };
    // `&`, not `&&`: the password is compared even when the user name is wrong.
    if user_ok & password_matches(&required, password) {
        session.authenticated = true;
        Ok(())
    } else {
        Err(CommandError::WrongPass)
    }
}

/// Compares a password with the configured one in constant time. Both are hashed with SHA-256
/// first, as Redis's ACL compares password hashes: the digests have a fixed length, so neither
/// the comparison's time nor its early length check says anything about the password's
/// length, and `subtle`'s comparison takes the same time wherever the digests differ (a plain
/// `==` stops at the first different byte, which a client could time byte by byte).
fn password_matches(configured: &str, given: &[u8]) -> bool {
    let want = Sha256::digest(configured.as_bytes());
    let got = Sha256::digest(given);
    want.ct_eq(&got).into()
}

/// The arguments of AUTH or HELLO as SLOWLOG and MONITOR show them: credentials replaced by
/// `(redacted)`, as Redis does.
pub(super) fn redact(args: &[Bytes]) -> Vec<Bytes> {
    const REDACTED: Bytes = Bytes::from_static(b"(redacted)");
    let mut shown = args.to_vec();
    if is(&args[0], "AUTH") {
        shown[1..].fill(REDACTED);
        return shown;
    }
    // HELLO [protover [AUTH username password] [SETNAME name]]
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "AUTH") && more >= 2 {
            shown[i + 1..i + 3].fill(REDACTED);
            i += 3;
        } else if is(&args[i], "SETNAME") && more >= 1 {
            i += 2;
        } else {
            break;
        }
    }
    shown
}

pub(super) fn client(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let sub = &args[1];
    let arity = |n: usize, name: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(CommandError::WrongArity(format!("client|{name}")))
        }
    };
    let client = ctx.session.client.clone();
    if is(sub, "ID") {
        arity(2, "id")?;
        Ok(Reply::Int(client.id as i64))
    } else if is(sub, "GETNAME") {
        arity(2, "getname")?;
        Ok(client.meta().name.map_or(Reply::Nil, Reply::Bulk))
    } else if is(sub, "SETNAME") {
        arity(3, "setname")?;
        set_name(ctx, args[2].clone())?;
        Ok(Reply::ok())
    } else if is(sub, "SETINFO") {
        arity(4, "setinfo")?;
        let value = args[3].clone();
        if value.iter().any(|c| !(b'!'..=b'~').contains(c)) {
            return Err(CommandError::Other(
                format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    text(&args[2])
                )
                .into(),
            ));
        }
        if is(&args[2], "LIB-NAME") {
            client.update_meta(|m| m.lib_name = Some(value));
        } else if is(&args[2], "LIB-VER") {
            client.update_meta(|m| m.lib_ver = Some(value));
        } else {
            return Err(CommandError::Other(
                format!("ERR Unrecognized option '{}'", text(&args[2])).into(),
            ));
        }
        Ok(Reply::ok())
    } else if is(sub, "INFO") {
        arity(2, "info")?;
        Ok(Reply::Verbatim(Bytes::from(client_line(ctx, &client))))
    } else if is(sub, "LIST") {
        let mut ids: Option<Vec<u64>> = None;
        let mut kind: Option<&str> = None;
        let mut i = 2;
        while i < args.len() {
            if is(&args[i], "TYPE") && i + 1 < args.len() {
                let t = &args[i + 1];
                if !["normal", "master", "replica", "pubsub"]
                    .iter()
                    .any(|w| is(t, w))
                {
                    return Err(CommandError::Other(
                        format!("ERR Unknown client type '{}'", text(t)).into(),
                    ));
                }
                kind = Some(if is(t, "pubsub") {
                    "pubsub"
                } else if is(t, "normal") {
                    "normal"
                } else {
                    // No client here is a master or a replica.
                    return Ok(Reply::Verbatim(Bytes::new()));
                });
                i += 2;
            } else if is(&args[i], "ID") && i + 1 < args.len() {
                let mut list = Vec::new();
                for a in &args[i + 1..] {
                    let id = int(a)
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| CommandError::Other("ERR Invalid client ID".into()))?;
                    list.push(id as u64);
                }
                ids = Some(list);
                i = args.len();
            } else {
                return Err(CommandError::Syntax);
            }
        }
        let lines: String = ctx
            .node
            .clients
            .list()
            .iter()
            .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
            .filter(|c| {
                // Redis's client types: a connection with subscriptions is `pubsub`.
                let subscribed = c.subscriptions.load(Ordering::Relaxed) > 0
                    || c.pattern_subscriptions.load(Ordering::Relaxed) > 0;
                kind.is_none_or(|k| (k == "pubsub") == subscribed)
            })
            .map(|c| client_line(ctx, c))
            .collect();
        Ok(Reply::Verbatim(Bytes::from(lines)))
    } else if is(sub, "KILL") {
        kill(ctx, args)
    } else if is(sub, "REPLY") {
        arity(3, "reply")?;
        if is(&args[2], "ON") {
            ctx.session.reply_mode = ReplyMode::On;
            Ok(Reply::ok())
        } else if is(&args[2], "OFF") {
            ctx.session.reply_mode = ReplyMode::Off;
            ctx.session.suppress_current = true;
            Ok(Reply::ok())
        } else if is(&args[2], "SKIP") {
            // Like Redis, SKIP does nothing while replies are OFF.
            if ctx.session.reply_mode != ReplyMode::Off {
                ctx.session.reply_mode = ReplyMode::Skip;
            }
            ctx.session.suppress_current = true;
            Ok(Reply::ok())
        } else {
            Err(CommandError::Syntax)
        }
    } else if is(sub, "NO-EVICT") || is(sub, "NO-TOUCH") {
        arity(3, "no-evict")?;
        if is(&args[2], "ON") || is(&args[2], "OFF") {
            Ok(Reply::ok())
        } else {
            Err(CommandError::Syntax)
        }
    } else if is(sub, "MAINT_NOTIFICATIONS") {
        // Sent by redis-py 8 on connect. There are no maintenance events to announce here,
        // so accepting the subscription is harmless and keeps the client quiet.
        Ok(Reply::ok())
    } else if is(sub, "GETREDIR") {
        Ok(Reply::Int(-1))
    } else if is(sub, "UNBLOCK") && (args.len() == 3 || args.len() == 4) {
        // As Redis 7.0's clientCommand: the reason is checked before the id.
        let error = match args.get(3) {
            None => false,
            Some(a) if is(a, "TIMEOUT") => false,
            Some(a) if is(a, "ERROR") => true,
            Some(_) => {
                return Err(CommandError::Other(
                    "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into(),
                ))
            }
        };
        let id = super::args::int(&args[2])?;
        let done = u64::try_from(id).is_ok_and(|id| ctx.node.blocking.unblock(id, error));
        Ok(Reply::Int(i64::from(done)))
    } else if is(sub, "UNBLOCK") {
        Err(CommandError::Other(
            format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                text(sub)
            )
            .into(),
        ))
    } else if is(sub, "HELP") {
        let lines = [
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ID",
            "    Return the ID of the current connection.",
            "GETNAME",
            "    Return the name of the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr (LIB-NAME or LIB-VER).",
            "INFO",
            "    Return information about the current client connection.",
            "LIST [TYPE <type>] [ID <id> [<id> ...]]",
            "    Return information about client connections.",
            "KILL <ip:port> | KILL <option> <value> [...]",
            "    Kill connections by ID, ADDR, LADDR or SKIPME.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "HELP",
            "    Print this help.",
        ];
        Ok(Reply::status_lines(&lines))
    } else {
        Err(CommandError::UnknownSubcommand {
            command: "CLIENT",
            sub: text(sub),
        })
    }
}

/// CLIENT KILL, old form (`addr`) and new form (`ID`, `ADDR`, `LADDR`, `SKIPME` filters).
fn kill(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let me = ctx.session.client.id;
    let clients = ctx.node.clients.list();
    if args.len() == 3 {
        let addr = text(&args[2]);
        let target = clients
            .iter()
            .find(|c| c.addr == addr)
            .ok_or_else(|| CommandError::Other("ERR No such client".into()))?;
        target.kill.cancel();
        if target.id == me {
            ctx.session.closing = true;
        }
        return Ok(Reply::ok());
    }
    if !args.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    let (mut id, mut addr, mut laddr, mut skipme) = (None, None, None, true);
    for pair in args[2..].chunks(2) {
        let (opt, value) = (&pair[0], &pair[1]);
        if is(opt, "ID") {
            let n = int(value).ok().filter(|n| *n > 0).ok_or_else(|| {
                CommandError::Other("ERR client-id should be greater than 0".into())
            })?;
            id = Some(n as u64);
        } else if is(opt, "ADDR") {
            addr = Some(text(value));
        } else if is(opt, "LADDR") {
            laddr = Some(text(value));
        } else if is(opt, "SKIPME") {
            skipme = if is(value, "YES") {
                true
            } else if is(value, "NO") {
                false
            } else {
                return Err(CommandError::Syntax);
            };
        } else if is(opt, "TYPE") || is(opt, "USER") || is(opt, "MAXAGE") {
            // Every client is a normal client of user `default`; these filters match all.
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let mut killed = 0;
    for c in &clients {
        let matched = id.is_none_or(|id| c.id == id)
            && addr.as_ref().is_none_or(|a| &c.addr == a)
            && laddr.as_ref().is_none_or(|a| &c.laddr == a)
            && !(skipme && c.id == me);
        if matched {
            c.kill.cancel();
            if c.id == me {
                ctx.session.closing = true;
            }
            killed += 1;
        }
    }
    Ok(Reply::Int(killed))
}

pub(super) fn reset(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    ctx.session.unwatch_all(&ctx.node.store);
    let s = &mut *ctx.session;
    s.db = 0;
    s.protocol = 2;
    s.multi = None;
    // Under CLIENT REPLY SKIP, RESET is the skipped command: its own reply is still dropped.
    if s.reply_mode == ReplyMode::Off {
        s.reply_mode = ReplyMode::On;
    }
    s.monitor = false;
    // Every subscription ends (dropping them unsubscribes), with no frames, as in Redis.
    s.subscriptions = None;
    s.client.subscriptions.store(0, Ordering::Relaxed);
    s.client.pattern_subscriptions.store(0, Ordering::Relaxed);
    // RESET logs the connection out, as in Redis: with no password it is authenticated, as a
    // new connection is.
    s.authenticated = !ctx.node.settings.has_password();
    s.client.db.store(0, Ordering::Relaxed);
    s.client.protocol.store(2, Ordering::Relaxed);
    s.client.update_meta(|m| {
        m.name = None;
        m.flags = "N";
    });
    Ok(Reply::Simple("RESET".into()))
}

fn set_name(ctx: &mut Ctx<'_>, name: Bytes) -> Result<(), CommandError> {
    check_name(&name)?;
    ctx.session
        .client
        .update_meta(|m| m.name = (!name.is_empty()).then_some(name));
    Ok(())
}

/// Redis's rule for client names: printable ASCII without spaces.
fn check_name(name: &[u8]) -> Result<(), CommandError> {
    if name.iter().any(|c| !(b'!'..=b'~').contains(c)) {
        return Err(CommandError::Other(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        ));
    }
    Ok(())
}

/// One CLIENT LIST / CLIENT INFO line, in Redis's field order.
fn client_line(ctx: &Ctx<'_>, c: &ClientHandle) -> String {
    let meta = c.meta();
    let lossy = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let cmd = match super::table().get(c.last_command.load(Ordering::Relaxed)) {
        None => "NULL".to_string(),
        Some(spec) => match (&meta.last_sub, super::is_container(spec)) {
            (Some(sub), true) if !sub.is_empty() => {
                format!("{}|{}", spec.name, String::from_utf8_lossy(sub))
            }
            _ => spec.name.to_string(),
        },
    };
    let age = c.opened.elapsed();
    let idle = age.as_millis() as u64
        - c.last_active_ms
            .load(Ordering::Relaxed)
            .min(age.as_millis() as u64);
    let multi = if c.id == ctx.session.client.id {
        ctx.session
            .multi
            .as_ref()
            .map_or(-1, |m| m.queued.len() as i64)
    } else {
        -1
    };
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db={} sub={} psub={} \
         ssub=0 multi={multi} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 \
         oll=0 omem=0 tot-mem=0 events=r cmd={cmd} user=default redir=-1 resp={} \
         lib-name={} lib-ver={}\n",
        c.id,
        c.addr,
        c.laddr,
        lossy(&meta.name),
        age.as_secs(),
        idle / 1000,
        meta.flags,
        c.db.load(Ordering::Relaxed),
        c.subscriptions.load(Ordering::Relaxed),
        c.pattern_subscriptions.load(Ordering::Relaxed),
        c.protocol.load(Ordering::Relaxed),
        lossy(&meta.lib_name),
        lossy(&meta.lib_ver),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_comparison_accepts_only_the_exact_password() {
        assert!(password_matches("s3cret", b"s3cret"));
        for wrong in [&b""[..], b"s3cre", b"s3cret ", b"S3cret", b"s3cret\0"] {
            assert!(!password_matches("s3cret", wrong), "{wrong:?}");
        }
        assert!(password_matches("", b""));
    }

    #[test]
    fn credentials_are_redacted_like_redis() {
        fn args(words: &[&'static str]) -> Vec<Bytes> {
            words
                .iter()
                .map(|w| Bytes::from_static(w.as_bytes()))
                .collect()
        }
        assert_eq!(
            redact(&args(&["auth", "default", "pw"])),
            args(&["auth", "(redacted)", "(redacted)"])
        );
        assert_eq!(
            redact(&args(&[
                "HELLO", "3", "AUTH", "default", "pw", "SETNAME", "n"
            ])),
            args(&[
                "HELLO",
                "3",
                "AUTH",
                "(redacted)",
                "(redacted)",
                "SETNAME",
                "n"
            ])
        );
    }
}
