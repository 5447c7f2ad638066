//! The redis-rs crate as a test client: connections with bounded waits, commands written as
//! word lists (`q(con, &["SET", "k", "v"])`) for the sync ([`sync`]) and tokio ([`aio`])
//! connections, the server's error line rebuilt from redis-rs's error, and INFO text parsing.

use std::collections::HashMap;

use redis::aio::MultiplexedConnection;
use redis::Connection;

use super::WAIT;

/// A sync redis-rs connection to `url` whose connect, reads and writes each wait at most
/// [`WAIT`].
pub fn sync_connection(url: &str) -> Connection {
    let client = redis::Client::open(url).expect("valid redis URL");
    let con = client
        .get_connection_with_timeout(WAIT)
        .expect("redis-rs connects to the node");
    con.set_read_timeout(Some(WAIT)).expect("set read timeout");
    con.set_write_timeout(Some(WAIT))
        .expect("set write timeout");
    con
}

/// A tokio multiplexed redis-rs connection of its own (one TCP connection, one session) to
/// `url`, whose connect and every response wait at most [`WAIT`].
pub async fn multiplexed(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("valid redis URL");
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(WAIT))
        .set_response_timeout(Some(WAIT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("redis-rs connects to the node")
}

/// The command `args[0]` with arguments `args[1..]`.
pub fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// The error line the server sent (`ERR syntax error`), rebuilt from redis-rs's code + detail.
/// Panics if `e` is not a server error reply.
pub fn error_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => panic!("not a server error reply: {e}"),
    }
}

/// Word-list commands on a sync [`Connection`].
pub mod sync {
    use redis::{Connection, FromRedisValue, Value};

    use super::{cmd, error_text};

    /// Runs a command that must succeed and converts its reply.
    pub fn q<T: FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
        cmd(args)
            .query(con)
            .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
    }

    /// Runs a command that must fail and returns the full error text as Redis sends it.
    pub fn qerr(con: &mut Connection, args: &[&str]) -> String {
        match cmd(args).query::<Value>(con) {
            Ok(v) => panic!("{args:?} should fail, got {v:?}"),
            Err(e) => error_text(&e),
        }
    }
}

/// Word-list commands on a tokio [`MultiplexedConnection`].
pub mod aio {
    use redis::aio::MultiplexedConnection;
    use redis::{FromRedisValue, Value};

    use super::{cmd, error_text};

    /// Runs a command that must succeed and converts its reply.
    pub async fn q<T: FromRedisValue>(con: &mut MultiplexedConnection, args: &[&str]) -> T {
        cmd(args)
            .query_async(con)
            .await
            .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
    }

    /// Runs a command with binary arguments that must succeed and converts its reply.
    pub async fn run<T: FromRedisValue>(con: &mut MultiplexedConnection, args: &[&[u8]]) -> T {
        let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("ASCII command name"));
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(con).await.unwrap_or_else(|e| {
            panic!(
                "{:?} failed: {e}",
                args.iter()
                    .map(|a| String::from_utf8_lossy(a))
                    .collect::<Vec<_>>()
            )
        })
    }

    /// Runs a command that must fail and returns the error line as the server sent it.
    pub async fn qerr(con: &mut MultiplexedConnection, args: &[&str]) -> String {
        match cmd(args).query_async::<Value>(con).await {
            Ok(v) => panic!("{args:?} should fail, got {v:?}"),
            Err(e) if e.code().is_none() => panic!("{args:?}: not a server error reply: {e}"),
            Err(e) => error_text(&e),
        }
    }
}

/// INFO text split into sections, in order: `(title, field -> value)`.
pub type InfoSections = Vec<(String, HashMap<String, String>)>;

/// INFO text split into `section -> field -> value`, sections in order. Panics on a line
/// that is neither a `# Title`, a `field:value` nor empty.
pub fn parse_info(text: &str) -> InfoSections {
    let mut sections: InfoSections = Vec::new();
    for line in text.split("\r\n") {
        if let Some(title) = line.strip_prefix("# ") {
            sections.push((title.to_string(), HashMap::new()));
        } else if let Some((k, v)) = line.split_once(':') {
            let (_, fields) = sections.last_mut().expect("a field before any section");
            fields.insert(k.to_string(), v.to_string());
        } else {
            assert!(line.is_empty(), "unexpected INFO line {line:?}");
        }
    }
    sections
}

/// The value of `field` in the section titled `section` (`"Persistence"`); panics if either
/// is missing.
pub fn info_field(
    sections: &[(String, HashMap<String, String>)],
    section: &str,
    field: &str,
) -> String {
    let (_, fields) = sections
        .iter()
        .find(|(s, _)| s == section)
        .unwrap_or_else(|| panic!("INFO has no {section} section"));
    fields
        .get(field)
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
        .clone()
}

/// Runs `INFO <section>` (`"persistence"`) on `con` and parses the reply.
pub async fn fetch_info(con: &mut MultiplexedConnection, section: &str) -> InfoSections {
    let text: String = aio::q(con, &["INFO", section]).await;
    parse_info(&text)
}
