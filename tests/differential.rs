//! Differential tests: the same command sequences sent to a real `redis-server` (Debian's
//! 7.0) and to a minikv node, under RESP2 and RESP3; every reply must be identical, error
//! texts included. A line starting with `~` only needs the same reply *type* (values that
//! depend on timing or randomness).
//!
//! `redis-server` is installed by `scripts/test.sh`; this test fails (never skips) without it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::process::{free_port, BinProcess, RedisServer};
use common::raw::{frame_len, resp_from};

/// One connection that sends a command and reads exactly one reply, returned as its raw
/// bytes (the comparison is byte for byte).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn call(&mut self, args: &[Vec<u8>]) -> String {
        self.stream.write_all(&resp_from(args)).expect("send");
        loop {
            if let Some(used) = frame_len(&self.buf, 0) {
                let frame: Vec<u8> = self.buf.drain(..used).collect();
                return String::from_utf8_lossy(&frame).into_owned();
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("read reply");
            assert!(
                n > 0,
                "connection closed while waiting for a reply to {args:?}"
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The kind of a reply: its type byte.
fn kind(frame: &str) -> &str {
    frame.get(..1).unwrap_or("")
}

/// Runs `script` (one command a line) on both servers in a fresh database and compares.
fn compare(redis: u16, minikv: u16, resp3: bool, script: &str) {
    let mut a = Conn::open(redis);
    let mut b = Conn::open(minikv);
    for conn in [&mut a, &mut b] {
        conn.call(&[b"FLUSHALL".to_vec()]);
        if resp3 {
            conn.call(&[b"HELLO".to_vec(), b"3".to_vec()]);
        }
    }
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (loose, line) = match line.strip_prefix('~') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let args = minikv::protocol::resp::split_args(line.as_bytes()).expect("valid test line");
        let (want, got) = (a.call(&args), b.call(&args));
        if loose {
            assert_eq!(
                kind(&want),
                kind(&got),
                "reply type to `{line}` (resp3={resp3}): redis {want} minikv {got}"
            );
        } else {
            assert_eq!(want, got, "reply to `{line}` (resp3={resp3})");
        }
    }
}

const STRINGS: &str = r#"
    SET k v
    GET k
    GET missing
    SET k v2 GET
    SET k v3 NX
    SET k v3 XX GET
    SET n 10 XX
    SET k v EX 100
    TTL k
    SET k v KEEPTTL
    TTL k
    SET k v PX 100000
    TTL k
    SET k v EX 0
    SET k v EX -1
    SET k v EX abc
    SET k v EX
    SET k v NX XX
    SET k v EX 10 PX 100
    SET k v KEEPTTL EX 10
    SET k v FOO
    SET k v NX NX
    SET k v GET GET
    SET k v EX 10 EX 20
    TTL k
    SET k v KEEPTTL KEEPTTL
    SET k v EX abc NX XX
    SET k v XX NX
    SET k v EXAT 99999999999
    SET k
    SETNX k x
    SETNX fresh x
    SETEX k 0 v
    SETEX k 100 v
    PSETEX k 100000 v
    GETSET k new
    GETDEL k
    GETDEL k
    GETEX missing
    SET g 1
    GETEX g EX 100
    TTL g
    GETEX g PERSIST
    TTL g
    GETEX g EX 0
    GETEX g FOO
    MSET a 1 b 2 c 3
    MGET a b missing c
    MSET a
    MSETNX a 1 z 2
    MSETNX y 1 z 2
    APPEND s hello
    APPEND s " world"
    STRLEN s
    STRLEN missing
    GETRANGE s 0 4
    GETRANGE s -5 -1
    GETRANGE s 5 2
    GETRANGE s 0 -100
    GETRANGE missing 0 10
    SETRANGE s 6 WORLD
    GET s
    SETRANGE pad 3 x
    GET pad
    SETRANGE s -1 x
    SETRANGE missing2 0 ""
    INCR i
    INCRBY i 10
    DECR i
    DECRBY i 5
    INCRBY i abc
    SET big 9223372036854775807
    INCR big
    SET notnum abc
    INCR notnum
    INCRBYFLOAT f 10.5
    INCRBYFLOAT f 0.1
    INCRBYFLOAT f -5
    INCRBYFLOAT f abc
    INCRBYFLOAT notnum 1
    SET e 5.0e3
    INCRBYFLOAT e 2.0e2
"#;

const KEYS: &str = r#"
    MSET a 1 b 2 c 3
    DEL a b missing
    EXISTS c c missing
    UNLINK c
    TYPE c
    SET c 1
    TYPE c
    RENAME c d
    RENAME missing x
    RENAMENX d d
    SET e 1
    RENAMENX d e
    RENAMENX d f
    COPY f g
    COPY f g
    COPY f g REPLACE
    COPY f f
    COPY missing h
    TOUCH f g missing
    EXPIRE f 100
    TTL f
    EXPIRE f 100 NX
    EXPIRE f 200 XX
    EXPIRE f 50 GT
    EXPIRE f 300 GT
    EXPIRE f 400 LT
    EXPIRE f 100 LT
    TTL f
    EXPIRE f 100 NX XX
    EXPIRE f 100 GT LT
    EXPIRE f 100 FOO
    EXPIRE missing 100
    EXPIRE f abc
    EXPIRE g 100 GT
    EXPIRE g 100 LT
    PERSIST f
    PERSIST f
    TTL f
    TTL missing
    PTTL f
    EXPIRETIME f
    EXPIRETIME missing
    PEXPIRE f 100000
    ~PTTL f
    EXPIREAT f 99999999999
    EXPIRETIME f
    PEXPIREAT f 99999999999000
    PEXPIRETIME f
    EXPIRE f -1
    EXISTS f
    EXPIRE f 9223372036854775807
    SET mk 1
    MOVE mk 1
    MOVE mk 1
    MOVE mk 0
    MOVE mk 99
    SELECT 1
    GET mk
    SELECT 99
    SELECT abc
    SELECT 0
    SWAPDB 0 1
    GET mk
    SWAPDB 0 99
    SWAPDB x 1
    DBSIZE
    OBJECT ENCODING mk
    SET num 12345
    OBJECT ENCODING num
    SET long aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    OBJECT ENCODING long
    OBJECT ENCODING missing
    OBJECT FOO x
    FLUSHDB
    DBSIZE
    FLUSHDB FOO
    FLUSHALL ASYNC
    KEYS *
    MSET user:1 a user:2 b other c
    SCAN abc
    SCAN 0 COUNT 0
    SCAN 0 FOO bar
    ~RANDOMKEY
    FLUSHALL
    RANDOMKEY
"#;

const TRANSACTIONS: &str = r#"
    EXEC
    DISCARD
    MULTI
    MULTI
    SET a 1
    INCR a
    GET a
    EXEC
    MULTI
    SET a
    FOO
    EXEC
    MULTI
    INCR a
    DISCARD
    GET a
    WATCH a
    MULTI
    INCR a
    EXEC
    WATCH missing
    UNWATCH
    WATCH missing
    FLUSHDB
    MULTI
    PING
    EXEC
    SET w 1
    WATCH w
    FLUSHDB
    MULTI
    PING
    EXEC
    SET w 1
    WATCH w
    SWAPDB 0 1
    MULTI
    PING
    EXEC
    FLUSHALL
    MULTI
    SET s notanumber
    INCR s
    GET s
    EXEC
"#;

const CONNECTION: &str = r#"
    PING
    PING hello
    PING a b
    ECHO hi
    ECHO
    FOO bar baz
    foo
    GET
    CLIENT SETNAME my-conn
    CLIENT GETNAME
    CLIENT SETNAME "bad name"
    CLIENT FOO
    ~CLIENT ID
    AUTH pass
    HELLO 4
    HELLO abc
    CONFIG GET appendonly
    CONFIG GET databases
    CONFIG SET foo bar
    CONFIG FOO
    DEBUG FOO
    WAIT 0 0
    COMMAND FOO
    COMMAND INFO get getex mset expire nosuchcommand
    COMMAND DOCS incrby getex set
    ~TIME
    ~COMMAND COUNT
    ~LASTSAVE
    SLOWLOG RESET
    SLOWLOG LEN
    SLOWLOG FOO
    MEMORY FOO
"#;

/// Bitmap commands and LCS (kept as a script file: the harness is moving to one file per
/// family under `tests/differential/`).
const BITMAP: &str = include_str!("differential/bitmap.redis");

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
    for resp3 in [false, true] {
        for script in [STRINGS, KEYS, TRANSACTIONS, CONNECTION, BITMAP] {
            compare(redis_server.port, minikv_port, resp3, script);
        }
    }
}
