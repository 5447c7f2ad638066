//! Differential tests: the same command sequences sent to a real `redis-server` (Debian's
//! 7.0) and to a minikv node, under RESP2 and RESP3; every reply must be identical, error
//! texts included.
//!
//! Every `tests/differential/*.redis` file is one script, run on both servers after a
//! FLUSHALL (each family of commands has its own file). A line is one command, with markers:
//! - `# ...`: a comment;
//! - `~CMD`: only the reply *type* must match (values that depend on timing or randomness);
//! - `^CMD`: the same elements in any order (SMEMBERS, HGETALL, ... of a hash table; maps
//!   compare as sets of pairs);
//! - `@name CMD`: sent on a second connection `name` (opened on first use, in the same
//!   protocol), reply read and compared; `@name& CMD` only sends, `@name<` reads one frame
//!   (a reply or a push) and compares it. Markers combine: `@c ^SMEMBERS s`.
//!
//! `redis-server` is installed by `scripts/test.sh`; this test fails (never skips) without it.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::process::{free_port, BinProcess, RedisServer};
use common::raw::{frame_len, resp_from};

/// One connection that sends commands and reads whole frames, returned as their raw bytes
/// (the comparison is byte for byte).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, args: &[Vec<u8>]) {
        self.stream.write_all(&resp_from(args)).expect("send");
    }

    fn read(&mut self, what: &str) -> String {
        loop {
            if let Some(used) = frame_len(&self.buf, 0) {
                let frame: Vec<u8> = self.buf.drain(..used).collect();
                return String::from_utf8_lossy(&frame).into_owned();
            }
            let mut chunk = [0u8; 65536];
            let n = self
                .stream
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("reading the reply to {what}: {e}"));
            assert!(
                n > 0,
                "connection closed while waiting for a reply to {what}"
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn call(&mut self, args: &[Vec<u8>]) -> String {
        self.send(args);
        self.read(&format!("{args:?}"))
    }
}

/// The connections of one server: the main one and the named ones of `@name` lines.
struct Side {
    port: u16,
    resp3: bool,
    main: Conn,
    named: HashMap<String, Conn>,
}

impl Side {
    fn open(port: u16, resp3: bool) -> Side {
        let mut main = Conn::open(port);
        main.call(&[b"FLUSHALL".to_vec()]);
        if resp3 {
            main.call(&[b"HELLO".to_vec(), b"3".to_vec()]);
        }
        Side {
            port,
            resp3,
            main,
            named: HashMap::new(),
        }
    }

    fn conn(&mut self, name: Option<&str>) -> &mut Conn {
        let Some(name) = name else {
            return &mut self.main;
        };
        let (port, resp3) = (self.port, self.resp3);
        self.named.entry(name.to_owned()).or_insert_with(|| {
            let mut c = Conn::open(port);
            if resp3 {
                c.call(&[b"HELLO".to_vec(), b"3".to_vec()]);
            }
            c
        })
    }
}

/// How a reply is compared.
#[derive(Clone, Copy, PartialEq)]
enum Match {
    Exact,
    Type,
    Unordered,
}

/// The kind of a reply: its type byte.
fn kind(frame: &str) -> &str {
    frame.get(..1).unwrap_or("")
}

/// An aggregate frame's header line and its elements (pairs for a map), each normalised the
/// same way and sorted, at every depth (SCAN's keys are an array inside an array); any other
/// frame as it is.
fn unordered(frame: &str) -> (String, Vec<String>) {
    let bytes = frame.as_bytes();
    let Some(header_end) = frame.find("\r\n") else {
        return (frame.to_owned(), Vec::new());
    };
    let header = frame[..header_end + 2].to_owned();
    if !matches!(kind(frame), "*" | "~" | "%" | ">") || header.starts_with("*-") {
        return (frame.to_owned(), Vec::new());
    }
    let flat = |f: &str| {
        let (h, items) = unordered(f);
        h + &items.concat()
    };
    let mut items = Vec::new();
    let mut at = header_end + 2;
    while at < bytes.len() {
        let len = frame_len(bytes, at).expect("a complete element");
        let mut item = flat(&frame[at..at + len]);
        at += len;
        if kind(frame) == "%" {
            let len = frame_len(bytes, at).expect("a complete map value");
            item += &flat(&frame[at..at + len]);
            at += len;
        }
        items.push(item);
    }
    items.sort();
    (header, items)
}

/// One script line, parsed.
struct Line<'a> {
    conn: Option<&'a str>,
    send: bool,
    read: bool,
    how: Match,
    command: &'a str,
}

fn parse(line: &str) -> Line<'_> {
    let (mut conn, mut send, mut read, mut rest) = (None, true, true, line);
    if let Some(tail) = line.strip_prefix('@') {
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '<' || c == '&')
            .unwrap_or(tail.len());
        conn = Some(&tail[..end]);
        rest = tail[end..].trim_start();
        if let Some(r) = rest.strip_prefix('&') {
            read = false;
            rest = r.trim_start();
        } else if let Some(r) = rest.strip_prefix('<') {
            send = false;
            rest = r.trim_start();
        }
    }
    let (how, command) = match rest.chars().next() {
        Some('~') => (Match::Type, rest[1..].trim_start()),
        Some('^') => (Match::Unordered, rest[1..].trim_start()),
        _ => (Match::Exact, rest),
    };
    Line {
        conn,
        send,
        read,
        how,
        command,
    }
}

/// Runs `script` on both servers in a fresh database and compares every reply.
fn compare(name: &str, redis: u16, minikv: u16, resp3: bool, script: &str) {
    let mut a = Side::open(redis, resp3);
    let mut b = Side::open(minikv, resp3);
    for (n, raw) in script.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let line = parse(raw);
        let at = format!("{name}:{} `{raw}` (resp3={resp3})", n + 1);
        if line.send {
            let args = minikv::protocol::resp::split_args(line.command.as_bytes())
                .unwrap_or_else(|| panic!("{at}: not a valid command line"));
            a.conn(line.conn).send(&args);
            b.conn(line.conn).send(&args);
        }
        if !line.read {
            continue;
        }
        let want = a.conn(line.conn).read(&at);
        let got = b.conn(line.conn).read(&at);
        match line.how {
            Match::Exact => assert_eq!(want, got, "reply to {at}"),
            Match::Type => assert_eq!(
                kind(&want),
                kind(&got),
                "reply type to {at}: redis {want} minikv {got}"
            ),
            Match::Unordered => {
                assert_eq!(unordered(&want), unordered(&got), "unordered reply to {at}")
            }
        }
    }
}

#[test]
fn replies_match_redis_under_resp2_and_resp3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis_dir = dir.path().join("redis");
    let minikv_dir = dir.path().join("minikv");
    std::fs::create_dir_all(&redis_dir).expect("mkdir");
    std::fs::create_dir_all(&minikv_dir).expect("mkdir");
    let redis_server = RedisServer::start(&redis_dir);
    let minikv_port = free_port();
    let _minikv = BinProcess::server(1, minikv_port, &minikv_dir, &[]);
    let scripts_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential");
    let mut scripts: Vec<_> = std::fs::read_dir(&scripts_dir)
        .expect("tests/differential exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "redis"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 4, "the scripts are missing: {scripts:?}");
    for path in &scripts {
        let script = std::fs::read_to_string(path).expect("read script");
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        for resp3 in [false, true] {
            compare(&name, redis_server.port, minikv_port, resp3, &script);
        }
    }
}

#[test]
fn unordered_compares_elements_as_sets() {
    let (h1, a) = unordered("*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    let (h2, b) = unordered("*2\r\n$1\r\nb\r\n$1\r\na\r\n");
    assert_eq!((h1, a), (h2, b));
    let (_, pairs) = unordered("%2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\na\r\n$1\r\nz\r\n");
    assert_eq!(pairs, ["$1\r\na\r\n$1\r\nz\r\n", "$1\r\nf\r\n$1\r\nv\r\n"]);
    let line = parse("@c& BLPOP l 0");
    assert_eq!((line.conn, line.send, line.read), (Some("c"), true, false));
    let line = parse("@c<");
    assert_eq!((line.conn, line.send, line.read), (Some("c"), false, true));
    let line = parse("@c ^SMEMBERS s");
    assert!(line.how == Match::Unordered && line.command == "SMEMBERS s");
}
