//! Connection commands: PING, ECHO, SELECT, QUIT, HELLO, AUTH and CLIENT.
//!
//! ```text
//! PING [message] / ECHO message / SELECT index / QUIT
//! HELLO [protover [AUTH username password] [SETNAME name]]
//! AUTH [username] password
//! CLIENT ID | GETNAME | SETNAME name | SETINFO LIB-NAME|LIB-VER value | INFO | LIST
//!        | NO-EVICT on|off | NO-TOUCH on|off | HELP
//! ```
//! There is no password yet, so AUTH behaves as Redis does without `requirepass`.

use bytes::Bytes;

use super::args::{int, is, text};
use super::{CommandError, Ctx};
use crate::protocol::Reply;

/// The Redis version clients are told they are talking to (HELLO, INFO). minikv implements
/// Redis 7 semantics; clients use this to pick features.
pub const REDIS_VERSION: &str = "7.2.4";

pub(super) fn ping(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
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
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "AUTH") && more >= 2 {
            // No password is configured: like Redis's `nopass` default user, any credentials
            // for user `default` are accepted.
            if !is(&args[i + 1], "default") {
                return Err(wrong_pass());
            }
            i += 3;
        } else if is(&args[i], "SETNAME") && more >= 1 {
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(CommandError::Other(
                format!("ERR Syntax error in HELLO option '{}'", text(&args[i])).into(),
            ));
        }
    }
    if let Some(name) = name {
        set_name(ctx, name)?;
    }
    ctx.session.protocol = protocol;
    let s = |t: &'static str| Reply::Bulk(Bytes::from_static(t.as_bytes()));
    Ok(Reply::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(REDIS_VERSION)),
        (s("proto"), Reply::Int(i64::from(protocol))),
        (s("id"), Reply::Int(ctx.session.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s("master")),
        (s("modules"), Reply::Array(vec![])),
    ]))
}

pub(super) fn auth(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    match args.len() {
        2 => Err(CommandError::Other(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?"
                .into(),
        )),
        3 if is(&args[1], "default") => Ok(Reply::ok()),
        3 => Err(wrong_pass()),
        _ => Err(CommandError::Syntax),
    }
}

fn wrong_pass() -> CommandError {
    CommandError::Other("WRONGPASS invalid username-password pair or user is disabled.".into())
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
    if is(sub, "ID") {
        arity(2, "id")?;
        Ok(Reply::Int(ctx.session.id as i64))
    } else if is(sub, "GETNAME") {
        arity(2, "getname")?;
        Ok(ctx.session.name.clone().map_or(Reply::Nil, Reply::Bulk))
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
            ctx.session.lib_name = Some(value);
        } else if is(&args[2], "LIB-VER") {
            ctx.session.lib_ver = Some(value);
        } else {
            return Err(CommandError::Other(
                format!("ERR Unrecognized option '{}'", text(&args[2])).into(),
            ));
        }
        Ok(Reply::ok())
    } else if is(sub, "INFO") {
        arity(2, "info")?;
        Ok(Reply::Verbatim(Bytes::from(client_line(ctx))))
    } else if is(sub, "LIST") {
        // Only this connection is listed: the node keeps no registry of other sessions yet.
        Ok(Reply::Verbatim(Bytes::from(client_line(ctx))))
    } else if is(sub, "NO-EVICT") || is(sub, "NO-TOUCH") {
        arity(3, "no-evict")?;
        if is(&args[2], "ON") || is(&args[2], "OFF") {
            Ok(Reply::ok())
        } else {
            Err(CommandError::Syntax)
        }
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
            "LIST",
            "    Return information about client connections.",
            "HELP",
            "    Print this help.",
        ];
        Ok(Reply::Array(
            lines.iter().map(|l| Reply::Simple((*l).into())).collect(),
        ))
    } else {
        Err(CommandError::UnknownSubcommand {
            command: "CLIENT",
            sub: text(sub),
        })
    }
}

fn set_name(ctx: &mut Ctx<'_>, name: Bytes) -> Result<(), CommandError> {
    if name.iter().any(|c| !(b'!'..=b'~').contains(c)) {
        return Err(CommandError::Other(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        ));
    }
    ctx.session.name = (!name.is_empty()).then_some(name);
    Ok(())
}

/// One CLIENT LIST / CLIENT INFO line for the calling connection, in Redis's field order.
fn client_line(ctx: &Ctx<'_>) -> String {
    let s = &ctx.session;
    let lossy = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    format!(
        "id={} addr={} laddr={}:{} fd=0 name={} age={} idle=0 flags=N db={} sub=0 psub=0 \
         ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
         omem=0 tot-mem=0 events=r cmd=client|info user=default redir=-1 resp={} lib-name={} \
         lib-ver={}\n",
        s.id,
        s.addr,
        ctx.node.config.host,
        ctx.node.port(),
        lossy(&s.name),
        s.opened.elapsed().as_secs(),
        s.db,
        s.protocol,
        lossy(&s.lib_name),
        lossy(&s.lib_ver),
    )
}
