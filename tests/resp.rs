//! The RESP side of a node, as real Redis clients see it: the redis-rs crate (sync and tokio
//! multiplexed connections, RESP2 and RESP3) for every command of the issue, exact Redis error
//! texts, pipelines, binary safety, and raw-socket tests for inline commands, RESP3 framing and
//! malformed input.

mod common;

use std::collections::{HashMap, HashSet};

use common::raw::{connect, expect_bytes, read_to_eof, send};
use common::redis_rs::sync::{q, qerr};
use common::redis_rs::{error_text, sync_connection};
use common::{blocking, spawn_node, within};
use redis::{Connection, Value};
use redis_protocol::resp3::types::OwnedFrame;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn unix_ms() -> i64 {
    minikv::store::clock::unix_ms()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// redis-rs, sync connection
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_set_get_and_every_set_option() {
    let node = spawn_node(|_| {}).await;
    let url = node.redis_url();
    blocking(move || {
        let con = &mut sync_connection(&url);
        assert_eq!(q::<String>(con, &["SET", "k", "v1"]), "OK");
        assert_eq!(
            q::<Option<String>>(con, &["GET", "k"]).as_deref(),
            Some("v1")
        );
        assert_eq!(q::<Option<String>>(con, &["GET", "missing"]), None);

        // NX / XX
        assert_eq!(q::<Option<String>>(con, &["SET", "k", "v2", "NX"]), None);
        assert_eq!(
            q::<String>(con, &["GET", "k"]),
            "v1",
            "NX must not overwrite"
        );
        assert_eq!(
            q::<Option<String>>(con, &["SET", "n", "1", "NX"]).as_deref(),
            Some("OK")
        );
        assert_eq!(
            q::<Option<String>>(con, &["SET", "k", "v3", "XX"]).as_deref(),
            Some("OK")
        );
        assert_eq!(q::<String>(con, &["GET", "k"]), "v3");
        assert_eq!(
            q::<Option<String>>(con, &["SET", "absent", "v", "XX"]),
            None
        );
        assert_eq!(
            q::<i64>(con, &["EXISTS", "absent"]),
            0,
            "XX must not create"
        );

        // GET option: the old value, or nil when there was none (the key is still set).
        assert_eq!(
            q::<Option<String>>(con, &["SET", "k", "v4", "GET"]).as_deref(),
            Some("v3")
        );
        assert_eq!(
            q::<Option<String>>(con, &["SET", "fresh", "x", "GET"]),
            None
        );
        assert_eq!(q::<String>(con, &["GET", "fresh"]), "x");
        assert_eq!(
            q::<Option<String>>(con, &["SET", "k", "no", "NX", "GET"]).as_deref(),
            Some("v4")
        );
        assert_eq!(
            q::<String>(con, &["GET", "k"]),
            "v4",
            "NX GET on an existing key sets nothing"
        );

        // EX / PX / EXAT / PXAT
        assert_eq!(q::<String>(con, &["SET", "ex", "v", "EX", "100"]), "OK");
        assert_eq!(q::<i64>(con, &["TTL", "ex"]), 100);
        assert_eq!(q::<String>(con, &["SET", "px", "v", "PX", "50000"]), "OK");
        let pttl: i64 = q(con, &["PTTL", "px"]);
        assert!(
            (40_000..=50_000).contains(&pttl),
            "PTTL after PX 50000: {pttl}"
        );
        let at = (unix_ms() / 1000 + 200).to_string();
        assert_eq!(q::<String>(con, &["SET", "exat", "v", "EXAT", &at]), "OK");
        let ttl: i64 = q(con, &["TTL", "exat"]);
        assert!((190..=200).contains(&ttl), "TTL after EXAT now+200: {ttl}");
        let pat = (unix_ms() + 300_000).to_string();
        assert_eq!(q::<String>(con, &["SET", "pxat", "v", "PXAT", &pat]), "OK");
        let pttl: i64 = q(con, &["PTTL", "pxat"]);
        assert!(
            (290_000..=300_000).contains(&pttl),
            "PTTL after PXAT now+300s: {pttl}"
        );
        // An absolute time in the past stores nothing that can be read.
        let past = (unix_ms() - 10_000).to_string();
        assert_eq!(q::<String>(con, &["SET", "old", "v", "PXAT", &past]), "OK");
        assert_eq!(q::<Option<String>>(con, &["GET", "old"]), None);

        // KEEPTTL keeps the deadline; a plain SET clears it.
        assert_eq!(q::<String>(con, &["SET", "ex", "v2", "KEEPTTL"]), "OK");
        let ttl: i64 = q(con, &["TTL", "ex"]);
        assert!((95..=100).contains(&ttl), "TTL after KEEPTTL: {ttl}");
        assert_eq!(q::<String>(con, &["GET", "ex"]), "v2");
        assert_eq!(q::<String>(con, &["SET", "ex", "v3"]), "OK");
        assert_eq!(q::<i64>(con, &["TTL", "ex"]), -1);

        // Options are case-insensitive, commands too.
        assert_eq!(
            q::<String>(con, &["set", "lower", "v", "ex", "10", "nx"]),
            "OK"
        );
        assert_eq!(q::<i64>(con, &["ttl", "lower"]), 10);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_errors_use_the_exact_redis_texts() {
    let node = spawn_node(|_| {}).await;
    let url = node.redis_url();
    blocking(move || {
        let con = &mut sync_connection(&url);
        let syntax = "ERR syntax error";
        let not_int = "ERR value is not an integer or out of range";
        assert_eq!(qerr(con, &["SET", "k", "v", "EX"]), syntax);
        assert_eq!(qerr(con, &["SET", "k", "v", "NX", "XX"]), syntax);
        assert_eq!(
            qerr(con, &["SET", "k", "v", "EX", "10", "PX", "100"]),
            syntax
        );
        assert_eq!(qerr(con, &["SET", "k", "v", "KEEPTTL", "EX", "10"]), syntax);
        assert_eq!(qerr(con, &["SET", "k", "v", "BOGUS"]), syntax);
        assert_eq!(qerr(con, &["SET", "k", "v", "EX", "abc"]), not_int);
        assert_eq!(qerr(con, &["SET", "k", "v", "EX", "1.5"]), not_int);
        assert_eq!(
            qerr(con, &["SET", "k", "v", "EX", "0"]),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            qerr(con, &["SET", "k", "v", "PX", "-5"]),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            q::<i64>(con, &["EXISTS", "k"]),
            0,
            "a rejected SET stores nothing"
        );

        for (args, name) in [
            (&["GET"][..], "get"),
            (&["GET", "a", "b"][..], "get"),
            (&["SET", "k"][..], "set"),
            (&["DEL"][..], "del"),
            (&["EXISTS"][..], "exists"),
            (&["EXPIRE", "k"][..], "expire"),
            (&["PEXPIRE", "k"][..], "pexpire"),
            (&["TTL"][..], "ttl"),
            (&["PTTL", "a", "b"][..], "pttl"),
            (&["PERSIST"][..], "persist"),
            (&["KEYS"][..], "keys"),
            (&["DBSIZE", "x"][..], "dbsize"),
            (&["ECHO"][..], "echo"),
            (&["PING", "a", "b"][..], "ping"),
            (&["SELECT"][..], "select"),
            (&["STATS", "x"][..], "stats"),
        ] {
            assert_eq!(
                qerr(con, args),
                format!("ERR wrong number of arguments for '{name}' command"),
                "{args:?}"
            );
        }

        assert_eq!(
            qerr(con, &["FOO", "a", "b"]),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            qerr(con, &["foo"]),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(qerr(con, &["EXPIRE", "k", "ten"]), not_int);
        assert_eq!(qerr(con, &["SELECT", "abc"]), not_int);
        assert_eq!(qerr(con, &["SELECT", "16"]), "ERR DB index is out of range");
        assert_eq!(qerr(con, &["SELECT", "-1"]), "ERR DB index is out of range");
        assert_eq!(qerr(con, &["FLUSHDB", "NOW"]), syntax);
        assert_eq!(
            qerr(con, &["CLIENT", "FOO"]),
            "ERR unknown subcommand 'FOO'. Try CLIENT HELP."
        );
        assert_eq!(
            qerr(con, &["CLIENT", "SETNAME", "has space"]),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
        assert_eq!(
            qerr(con, &["HELLO", "4"]),
            "NOPROTO unsupported protocol version"
        );
        // The connection is still fine after all those errors.
        assert_eq!(q::<String>(con, &["PING"]), "PONG");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_del_exists_expire_ttl_persist() {
    let node = spawn_node(|_| {}).await;
    let url = node.redis_url();
    blocking(move || {
        let con = &mut sync_connection(&url);
        for k in ["a", "b", "c"] {
            let () = q(con, &["SET", k, "v"]);
        }
        assert_eq!(
            q::<i64>(con, &["EXISTS", "a", "a", "b", "zz"]),
            3,
            "repeats count"
        );
        assert_eq!(q::<i64>(con, &["DEL", "a", "b", "zz"]), 2);
        assert_eq!(q::<i64>(con, &["DEL", "a"]), 0);
        assert_eq!(q::<i64>(con, &["EXISTS", "a", "b", "c"]), 1);

        // TTL / PTTL of missing and persistent keys.
        assert_eq!(q::<i64>(con, &["TTL", "missing"]), -2);
        assert_eq!(q::<i64>(con, &["PTTL", "missing"]), -2);
        assert_eq!(q::<i64>(con, &["TTL", "c"]), -1);
        assert_eq!(q::<i64>(con, &["PTTL", "c"]), -1);

        // EXPIRE / PEXPIRE
        assert_eq!(q::<i64>(con, &["EXPIRE", "c", "100"]), 1);
        assert_eq!(q::<i64>(con, &["TTL", "c"]), 100);
        assert_eq!(q::<i64>(con, &["EXPIRE", "missing", "100"]), 0);
        assert_eq!(q::<i64>(con, &["PEXPIRE", "c", "20000"]), 1);
        let pttl: i64 = q(con, &["PTTL", "c"]);
        assert!(
            (10_000..=20_000).contains(&pttl),
            "PTTL after PEXPIRE 20000: {pttl}"
        );
        assert_eq!(q::<i64>(con, &["PEXPIRE", "missing", "100"]), 0);

        // PERSIST
        assert_eq!(q::<i64>(con, &["PERSIST", "c"]), 1);
        assert_eq!(q::<i64>(con, &["TTL", "c"]), -1);
        assert_eq!(q::<i64>(con, &["PERSIST", "c"]), 0, "no TTL to remove");
        assert_eq!(q::<i64>(con, &["PERSIST", "missing"]), 0);

        // A non-positive EXPIRE deletes the key (Redis 7).
        assert_eq!(q::<i64>(con, &["EXPIRE", "c", "-1"]), 1);
        assert_eq!(q::<i64>(con, &["EXISTS", "c"]), 0);
        assert_eq!(q::<i64>(con, &["TTL", "c"]), -2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_keys_glob_dbsize_select_and_flush() {
    let node = spawn_node(|_| {}).await;
    let url = node.redis_url();
    blocking(move || {
        let con = &mut sync_connection(&url);
        for k in [
            "user:1", "user:2", "user:10", "admin", "a*b", "axb", "hello", "hallo",
        ] {
            let () = q(con, &["SET", k, "v"]);
        }
        let keys = |con: &mut Connection, p: &str| sorted(q::<Vec<String>>(con, &["KEYS", p]));
        assert_eq!(keys(con, "*").len(), 8);
        assert_eq!(keys(con, "user:?"), s(&["user:1", "user:2"]));
        assert_eq!(keys(con, "user:*"), s(&["user:1", "user:10", "user:2"]));
        assert_eq!(keys(con, "user:1*"), s(&["user:1", "user:10"]));
        assert_eq!(keys(con, "h[ae]llo"), s(&["hallo", "hello"]));
        assert_eq!(keys(con, "h[^e]llo"), s(&["hallo"]));
        assert_eq!(
            keys(con, "a\\*b"),
            s(&["a*b"]),
            "escaped star matches itself only"
        );
        assert_eq!(keys(con, "a?b"), s(&["a*b", "axb"]));
        assert_eq!(keys(con, "nothing*"), Vec::<String>::new());
        assert_eq!(q::<i64>(con, &["DBSIZE"]), 8);

        // SELECT: databases are separate keyspaces.
        assert_eq!(q::<String>(con, &["SELECT", "1"]), "OK");
        assert_eq!(q::<i64>(con, &["DBSIZE"]), 0);
        assert_eq!(q::<Option<String>>(con, &["GET", "admin"]), None);
        let () = q(con, &["SET", "db1key", "v"]);
        assert_eq!(q::<i64>(con, &["DBSIZE"]), 1);
        assert_eq!(q::<String>(con, &["SELECT", "0"]), "OK");
        assert_eq!(q::<i64>(con, &["EXISTS", "db1key"]), 0);

        // FLUSHDB clears only the selected database, FLUSHALL every one.
        assert_eq!(q::<String>(con, &["FLUSHDB"]), "OK");
        assert_eq!(q::<i64>(con, &["DBSIZE"]), 0);
        let () = q(con, &["SELECT", "1"]);
        assert_eq!(q::<i64>(con, &["DBSIZE"]), 1, "FLUSHDB left db 1 alone");
        let () = q(con, &["SELECT", "0"]);
        let () = q(con, &["SET", "again", "v"]);
        assert_eq!(q::<String>(con, &["FLUSHALL"]), "OK");
        assert_eq!(q::<i64>(con, &["DBSIZE"]), 0);
        let () = q(con, &["SELECT", "1"]);
        assert_eq!(q::<i64>(con, &["DBSIZE"]), 0, "FLUSHALL cleared db 1 too");
        assert_eq!(q::<String>(con, &["FLUSHDB", "ASYNC"]), "OK");
        assert_eq!(q::<String>(con, &["FLUSHALL", "SYNC"]), "OK");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_connection_and_server_commands() {
    let node = spawn_node(|c| c.id = 4).await;
    let url = node.redis_url();
    let port = node.port();
    blocking(move || {
        let con = &mut sync_connection(&url);
        assert_eq!(q::<String>(con, &["PING"]), "PONG");
        assert_eq!(q::<String>(con, &["PING", "hi there"]), "hi there");
        assert_eq!(q::<String>(con, &["ECHO", "echo me"]), "echo me");
        assert_eq!(q::<String>(con, &["SELECT", "0"]), "OK");

        // CLIENT
        let id: i64 = q(con, &["CLIENT", "ID"]);
        assert!(id > 0);
        assert_eq!(q::<Option<String>>(con, &["CLIENT", "GETNAME"]), None);
        assert_eq!(q::<String>(con, &["CLIENT", "SETNAME", "worker-1"]), "OK");
        assert_eq!(q::<String>(con, &["CLIENT", "GETNAME"]), "worker-1");
        assert_eq!(
            q::<String>(con, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"]),
            "OK"
        );
        assert_eq!(
            q::<String>(con, &["CLIENT", "SETINFO", "LIB-VER", "1.2.3"]),
            "OK"
        );
        let info: String = q(con, &["CLIENT", "INFO"]);
        assert!(info.contains(&format!("id={id} ")), "{info}");
        assert!(
            info.contains("name=worker-1 ") && info.contains("lib-name=mylib"),
            "{info}"
        );

        // HELLO 2 keeps RESP2 and describes the server.
        let hello: HashMap<String, Value> = q(con, &["HELLO", "2"]);
        assert_eq!(
            hello.get("server"),
            Some(&Value::BulkString(b"redis".to_vec()))
        );
        assert_eq!(hello.get("proto"), Some(&Value::Int(2)));
        assert_eq!(hello.get("id"), Some(&Value::Int(id)));
        assert_eq!(
            hello.get("role"),
            Some(&Value::BulkString(b"master".to_vec()))
        );

        // INFO: Redis's text format, the required sections, selectable.
        let () = q(con, &["SET", "k", "v"]);
        let () = q(con, &["SET", "t", "v", "EX", "100"]);
        let info: String = q(con, &["INFO"]);
        for section in [
            "# Server",
            "# Clients",
            "# Stats",
            "# Persistence",
            "# Keyspace",
        ] {
            assert!(
                info.contains(&format!("{section}\r\n")),
                "INFO lacks {section}:\n{info}"
            );
        }
        assert!(info.contains("redis_version:"), "{info}");
        assert!(info.contains(&format!("tcp_port:{port}\r\n")), "{info}");
        assert!(info.contains("db0:keys=2,expires=1,"), "{info}");
        assert!(info.contains("connected_clients:"), "{info}");
        for line in info.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(
                line.starts_with("# ") || line.contains(':'),
                "INFO line {line:?} is neither a header nor field:value"
            );
        }
        let server_only: String = q(con, &["INFO", "server"]);
        assert!(server_only.starts_with("# Server\r\n"), "{server_only}");
        assert!(!server_only.contains("# Keyspace"), "{server_only}");
        let two: String = q(con, &["INFO", "keyspace", "persistence"]);
        assert!(
            two.contains("# Keyspace") && two.contains("# Persistence"),
            "{two}"
        );
        assert!(!two.contains("# Server"), "{two}");

        // STATS: this node's spec counters.
        let stats: HashMap<String, i64> = q(con, &["STATS"]);
        let names: HashSet<&str> = stats.keys().map(String::as_str).collect();
        let want: HashSet<&str> = [
            "total_requests",
            "get",
            "set",
            "delete",
            "expire",
            "total_keys",
            "keys_with_ttl",
        ]
        .into();
        assert_eq!(names, want);
        assert_eq!(stats["total_keys"], 2);
        assert_eq!(stats["keys_with_ttl"], 1);
        assert_eq!(stats["set"], 2);

        // COMMAND family, as redis-cli and redis-benchmark use it on connect.
        let count: i64 = q(con, &["COMMAND", "COUNT"]);
        let all: Vec<Value> = q(con, &["COMMAND"]);
        assert_eq!(all.len() as i64, count);
        assert!(count >= 20, "COMMAND lists the table: {count}");
        let names: Vec<String> = all
            .iter()
            .filter_map(|c| match c {
                Value::Array(items) => match items.first() {
                    Some(Value::BulkString(n)) => Some(String::from_utf8_lossy(n).into_owned()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        for name in [
            "get", "set", "del", "expire", "keys", "ping", "info", "stats",
        ] {
            assert!(names.iter().any(|n| n == name), "COMMAND lacks {name}");
        }
        let docs: HashMap<String, Value> = q(con, &["COMMAND", "DOCS", "get", "set"]);
        assert_eq!(
            sorted(docs.keys().cloned().collect()),
            s(&["get", "set"]),
            "COMMAND DOCS for the named commands"
        );
        let all_docs: HashMap<String, Value> = q(con, &["COMMAND", "DOCS"]);
        assert_eq!(all_docs.len() as i64, count);

        // CONFIG GET, as redis-benchmark asks for it.
        let save: HashMap<String, String> = q(con, &["CONFIG", "GET", "save"]);
        assert_eq!(save.len(), 1);
        assert!(save.contains_key("save"));
        let aof: HashMap<String, String> = q(con, &["CONFIG", "GET", "appendonly"]);
        assert_eq!(aof.get("appendonly").map(String::as_str), Some("no"));
        let both: HashMap<String, String> = q(con, &["CONFIG", "GET", "save", "appendonly"]);
        assert_eq!(both.len(), 2);
        assert_eq!(
            q::<HashMap<String, String>>(con, &["CONFIG", "GET", "no-such-param"]).len(),
            0
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_pipeline_is_answered_in_order() {
    let node = spawn_node(|_| {}).await;
    let url = node.redis_url();
    blocking(move || {
        let con = &mut sync_connection(&url);
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.cmd("SET").arg(format!("k{i}")).arg(format!("v{i}"));
            pipe.cmd("GET").arg(format!("k{i}"));
            pipe.cmd("INCR").arg("counter");
        }
        let replies: Vec<Value> = pipe.query(con).expect("pipeline");
        assert_eq!(replies.len(), 1500);
        for i in 0..500 {
            assert_eq!(replies[3 * i], Value::Okay, "SET #{i}");
            assert_eq!(
                replies[3 * i + 1],
                Value::BulkString(format!("v{i}").into_bytes()),
                "GET #{i}"
            );
            assert_eq!(replies[3 * i + 2], Value::Int(i as i64 + 1), "INCR #{i}");
        }
        // An error inside a pipeline is answered in its place; the rest still runs.
        let replies: Vec<redis::RedisResult<Value>> = redis::pipe()
            .cmd("SET")
            .arg("p")
            .arg("1")
            .cmd("SET")
            .arg("p")
            .arg("2")
            .arg("BOGUS")
            .cmd("GET")
            .arg("p")
            .ignore_errors()
            .query(con)
            .expect("pipeline with an error");
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0].as_ref().ok(), Some(&Value::Okay));
        match &replies[1] {
            Err(e) => assert_eq!(error_text(e), "ERR syntax error"),
            Ok(other) => panic!("expected a syntax error, got {other:?}"),
        }
        assert_eq!(
            replies[2].as_ref().ok(),
            Some(&Value::BulkString(b"1".to_vec()))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_values_are_binary_safe() {
    let node = spawn_node(|_| {}).await;
    let url = node.redis_url();
    blocking(move || {
        let con = &mut sync_connection(&url);
        let key: &[u8] = b"bin\x00key\r\n\xff\xfe *";
        let value: Vec<u8> = (0..=255u8)
            .chain(b"\r\n$3\r\n*1\r\n".iter().copied())
            .collect();
        let () = redis::cmd("SET")
            .arg(key)
            .arg(&value[..])
            .query(con)
            .expect("SET binary");
        let got: Vec<u8> = redis::cmd("GET").arg(key).query(con).expect("GET binary");
        assert_eq!(got, value);
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("bin*").query(con).expect("KEYS");
        assert_eq!(keys, vec![key.to_vec()]);
        let empty: Vec<u8> = {
            let () = redis::cmd("SET")
                .arg("empty")
                .arg(b"")
                .query(con)
                .expect("SET empty");
            redis::cmd("GET")
                .arg("empty")
                .query(con)
                .expect("GET empty")
        };
        assert!(empty.is_empty());
        assert_eq!(
            q::<i64>(con, &["EXISTS", "empty"]),
            1,
            "an empty value is a value"
        );
        let big = vec![b'x'; 3 * 1024 * 1024];
        let () = redis::cmd("SET")
            .arg("big")
            .arg(&big[..])
            .query(con)
            .expect("SET 3 MB");
        let got: Vec<u8> = redis::cmd("GET").arg("big").query(con).expect("GET 3 MB");
        assert_eq!(got.len(), big.len());
        assert!(got == big);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_counts_the_spec_commands_before_itself() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    // Raw requests: redis-rs would add its own CLIENT SETINFO calls to the count.
    send(
        &mut s,
        b"SET a 1\r\nSET t 2 EX 100\r\nGET a\r\nGET nope\r\nDEL a\r\nEXPIRE t 50\r\nPING\r\n",
    )
    .await;
    expect_bytes(
        &mut s,
        b"+OK\r\n+OK\r\n$1\r\n1\r\n$-1\r\n:1\r\n:1\r\n+PONG\r\n",
    )
    .await;
    send(&mut s, b"STATS\r\n").await;
    let fields = [
        ("total_requests", 7),
        ("get", 2),
        ("set", 2),
        ("delete", 1),
        ("expire", 1),
        ("total_keys", 1),
        ("keys_with_ttl", 1),
    ];
    let mut want = b"*14\r\n".to_vec();
    for (name, n) in fields {
        want.extend(format!("${}\r\n{name}\r\n:{n}\r\n", name.len()).as_bytes());
    }
    expect_bytes(&mut s, &want).await;
    // The STATS request itself is counted afterwards.
    send(&mut s, b"STATS\r\n").await;
    expect_bytes(&mut s, b"*14\r\n$14\r\ntotal_requests\r\n:8\r\n").await;
}

// ---------------------------------------------------------------------------------------------
// redis-rs, tokio multiplexed connection and RESP3
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_multiplexed_connection_serves_concurrent_tasks() {
    let node = spawn_node(|_| {}).await;
    let client = redis::Client::open(node.redis_url()).expect("url");
    let con = within(
        "multiplexed connect",
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("multiplexed connection");

    let mut tasks = Vec::new();
    for t in 0..20 {
        let mut con = con.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let key = format!("t{t}:k{i}");
                let () = redis::cmd("SET")
                    .arg(&key)
                    .arg(i)
                    .arg("EX")
                    .arg(1000)
                    .query_async(&mut con)
                    .await
                    .expect("async SET");
                let got: i64 = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut con)
                    .await
                    .expect("async GET");
                assert_eq!(got, i);
                let n: i64 = redis::cmd("INCR")
                    .arg("shared")
                    .query_async(&mut con)
                    .await
                    .expect("async INCR");
                assert!(n >= 1);
            }
        }));
    }
    for task in tasks {
        within("async task", task)
            .await
            .expect("task did not panic");
    }
    let mut con = con;
    let dbsize: i64 = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .expect("DBSIZE");
    assert_eq!(dbsize, 20 * 50 + 1);
    let shared: i64 = redis::cmd("GET")
        .arg("shared")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(shared, 1000, "no INCR lost");

    // Async pipeline, errors and the other commands over the multiplexed connection.
    let (a, b, c): (String, Option<String>, i64) = redis::pipe()
        .cmd("SET")
        .arg("x")
        .arg("1")
        .cmd("GET")
        .arg("nope")
        .cmd("DEL")
        .arg("x")
        .query_async(&mut con)
        .await
        .expect("async pipeline");
    assert_eq!((a.as_str(), b, c), ("OK", None, 1));
    let err = redis::cmd("GET")
        .query_async::<Value>(&mut con)
        .await
        .expect_err("arity error");
    assert_eq!(
        error_text(&err),
        "ERR wrong number of arguments for 'get' command"
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("t1:k1?")
        .query_async(&mut con)
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 10);
    let ttl: i64 = redis::cmd("TTL")
        .arg("t0:k0")
        .query_async(&mut con)
        .await
        .expect("TTL");
    assert!((990..=1000).contains(&ttl), "{ttl}");
    let pong: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
    let flushed: String = redis::cmd("FLUSHALL")
        .query_async(&mut con)
        .await
        .expect("FLUSHALL");
    assert_eq!(flushed, "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_manager_reconnects_transparently() {
    let node = spawn_node(|_| {}).await;
    let client = redis::Client::open(node.redis_url()).expect("url");
    let mut manager = within(
        "connection manager",
        redis::aio::ConnectionManager::new(client),
    )
    .await
    .expect("connection manager connects");
    let () = redis::cmd("SET")
        .arg("m")
        .arg("1")
        .query_async(&mut manager)
        .await
        .expect("SET via manager");
    let v: String = redis::cmd("GET")
        .arg("m")
        .query_async(&mut manager)
        .await
        .expect("GET");
    assert_eq!(v, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_connections_work_sync_and_async() {
    let node = spawn_node(|_| {}).await;
    let url = format!("{}?protocol=resp3", node.redis_url());

    let sync_url = url.clone();
    blocking(move || {
        let con = &mut sync_connection(&sync_url);
        let () = q(con, &["SET", "k", "v", "EX", "100"]);
        assert_eq!(q::<Value>(con, &["GET", "missing"]), Value::Nil);
        assert_eq!(
            q::<Value>(con, &["GET", "k"]),
            Value::BulkString(b"v".to_vec())
        );
        match q::<Value>(con, &["STATS"]) {
            Value::Map(pairs) => assert_eq!(pairs.len(), 7, "STATS is a RESP3 map"),
            other => panic!("STATS over RESP3: {other:?}"),
        }
        match q::<Value>(con, &["INFO", "server"]) {
            Value::VerbatimString { text, .. } => assert!(text.starts_with("# Server\r\n")),
            other => panic!("INFO over RESP3: {other:?}"),
        }
        let hello: HashMap<String, Value> = q(con, &["HELLO"]);
        assert_eq!(hello.get("proto"), Some(&Value::Int(3)));
        assert_eq!(q::<i64>(con, &["TTL", "k"]), 100);
    })
    .await;

    let client = redis::Client::open(url).expect("url");
    let mut con = within(
        "RESP3 multiplexed connect",
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("RESP3 multiplexed connection");
    let v: Value = redis::cmd("GET")
        .arg("k")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(v, Value::BulkString(b"v".to_vec()));
    let v: Value = redis::cmd("GET")
        .arg("nope")
        .query_async(&mut con)
        .await
        .expect("GET");
    assert_eq!(v, Value::Nil);
    let docs: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg("get")
        .query_async(&mut con)
        .await
        .expect("COMMAND DOCS");
    assert!(
        matches!(docs, Value::Map(ref m) if m.len() == 1),
        "{docs:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Raw sockets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn inline_commands_are_answered() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    send(&mut s, b"PING\r\n").await;
    expect_bytes(&mut s, b"+PONG\r\n").await;
    // A bare \n ends a line too (telnet, nc), quotes group words, blank lines are ignored.
    send(
        &mut s,
        b"set greeting \"hello world\"\n\r\nGET greeting\r\n",
    )
    .await;
    expect_bytes(&mut s, b"+OK\r\n$11\r\nhello world\r\n").await;
    send(&mut s, b"SET esc \"a\\x41\\n\" \r\nget esc\r\n").await;
    expect_bytes(&mut s, b"+OK\r\n$3\r\naA\n\r\n").await;
    send(&mut s, b"ECHO 'single quoted'\r\n").await;
    expect_bytes(&mut s, b"$13\r\nsingle quoted\r\n").await;
    send(&mut s, b"NOPE x\r\n").await;
    expect_bytes(
        &mut s,
        b"-ERR unknown command 'NOPE', with args beginning with: 'x' \r\n",
    )
    .await;
    // Multibulk and inline mix on one connection.
    send(&mut s, b"*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\nDBSIZE\r\n").await;
    expect_bytes(&mut s, b"$11\r\nhello world\r\n:2\r\n").await;
}

#[tokio::test]
async fn raw_pipeline_in_one_write_is_answered_in_order() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    let mut batch = Vec::new();
    let mut want = Vec::new();
    for i in 0..1000 {
        let (k, v) = (format!("key{i}"), format!("value{i}"));
        batch.extend(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n*2\r\n$3\r\nGET\r\n${}\r\n{k}\r\n",
                k.len(),
                v.len(),
                k.len()
            )
            .as_bytes(),
        );
        want.extend(b"+OK\r\n");
        want.extend(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
    }
    send(&mut s, &batch).await;
    expect_bytes(&mut s, &want).await;
}

#[tokio::test]
async fn a_request_split_across_writes_is_reassembled() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    let request = b"*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$10\r\n0123456789\r\n";
    for chunk in request.chunks(3) {
        send(&mut s, chunk).await;
        tokio::task::yield_now().await;
    }
    expect_bytes(&mut s, b"+OK\r\n").await;
    send(&mut s, b"GET split\r\n").await;
    expect_bytes(&mut s, b"$10\r\n0123456789\r\n").await;
}

#[tokio::test]
async fn hello_3_switches_the_connection_to_resp3() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    send(&mut s, b"HELLO 3\r\n").await;
    let frame = read_resp3_frame(&mut s).await;
    let OwnedFrame::Map { data, .. } = frame else {
        panic!("HELLO 3 must answer a RESP3 map, got {frame:?}");
    };
    let field = |name: &str| {
        data.iter()
            .find(|(k, _)| matches!(k, OwnedFrame::BlobString { data, .. } if data == name.as_bytes()))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("HELLO reply lacks {name}"))
    };
    assert!(matches!(field("proto"), OwnedFrame::Number { data: 3, .. }));
    assert!(matches!(field("server"), OwnedFrame::BlobString { ref data, .. } if data == b"redis"));
    assert!(matches!(field("modules"), OwnedFrame::Array { ref data, .. } if data.is_empty()));
    // RESP3 types from now on: `_` for nil, `%` maps, `=` verbatim text.
    send(&mut s, b"GET missing\r\n").await;
    expect_bytes(&mut s, b"_\r\n").await;
    send(&mut s, b"STATS\r\n").await;
    let stats = read_resp3_frame(&mut s).await;
    assert!(
        matches!(stats, OwnedFrame::Map { ref data, .. } if data.len() == 7),
        "{stats:?}"
    );
    send(&mut s, b"INFO server\r\n").await;
    let info = read_resp3_frame(&mut s).await;
    assert!(
        matches!(info, OwnedFrame::VerbatimString { ref data, .. } if data.starts_with(b"# Server"))
    );
    // Back to RESP2.
    send(&mut s, b"HELLO 2\r\n").await;
    let _ = read_resp3_frame(&mut s).await;
    send(&mut s, b"GET missing\r\n").await;
    expect_bytes(&mut s, b"$-1\r\n").await;
    send(&mut s, b"HELLO 4\r\n").await;
    expect_bytes(&mut s, b"-NOPROTO unsupported protocol version\r\n").await;
}

#[tokio::test]
async fn quit_replies_ok_then_closes() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    // Requests pipelined after QUIT are not executed.
    send(&mut s, b"SET before 1\r\nQUIT\r\nSET after 1\r\n").await;
    let rest = read_to_eof(&mut s).await;
    assert_eq!(String::from_utf8_lossy(&rest), "+OK\r\n+OK\r\n");
    let mut s = connect(node.addr).await;
    send(&mut s, b"EXISTS before after\r\n").await;
    expect_bytes(&mut s, b":1\r\n").await;
}

#[tokio::test]
async fn malformed_requests_get_a_protocol_error_then_the_connection_closes() {
    let node = spawn_node(|_| {}).await;
    let cases: [(&[u8], &str); 6] = [
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2000000\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"SET \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (input, want) in cases {
        let mut s = connect(node.addr).await;
        // A valid request first: it is answered before the bad one closes the connection.
        let mut bytes = b"PING\r\n".to_vec();
        bytes.extend_from_slice(input);
        bytes.extend_from_slice(b"PING\r\n");
        send(&mut s, &bytes).await;
        let got = read_to_eof(&mut s).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("+PONG\r\n{want}"),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
    // An inline line longer than 64 KB without a newline.
    let mut s = connect(node.addr).await;
    // Exactly one byte over the limit: the node reads it all, so it closes cleanly (no RST).
    let long = vec![b'a'; 64 * 1024 + 1];
    // The node may close before reading everything; a write error is part of that.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut s, &long).await;
    let got = read_to_eof(&mut s).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR Protocol error: too big inline request\r\n"
    );
    // The node is still serving.
    let mut s = connect(node.addr).await;
    send(&mut s, b"PING\r\n").await;
    expect_bytes(&mut s, b"+PONG\r\n").await;
    assert!(!node.node.shutdown.is_cancelled());
}

async fn read_resp3_frame(stream: &mut tokio::net::TcpStream) -> OwnedFrame {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    loop {
        match redis_protocol::resp3::decode::complete::decode(&buf) {
            Ok(Some((frame, used))) => {
                assert_eq!(used, buf.len(), "exactly one frame was expected");
                return frame;
            }
            Ok(None) => {}
            Err(e) => panic!("invalid RESP3 from the node: {e:?} in {buf:?}"),
        }
        let mut chunk = [0u8; 4096];
        let n = within("a RESP3 frame", stream.read(&mut chunk))
            .await
            .expect("read RESP3 frame");
        assert!(n > 0, "connection closed inside a frame");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn connections_past_maxclients_are_refused_with_an_error() {
    let node = spawn_node(|c| c.max_clients = 2).await;
    let mut first = connect(node.addr).await;
    let mut second = connect(node.addr).await;
    send(&mut first, b"PING\r\n").await;
    expect_bytes(&mut first, b"+PONG\r\n").await;
    send(&mut second, b"PING\r\n").await;
    expect_bytes(&mut second, b"+PONG\r\n").await;

    let mut third = connect(node.addr).await;
    let got = read_to_eof(&mut third).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR max number of clients reached\r\n"
    );

    // A slot frees up when a client leaves.
    drop(first);
    let deadline = common::Deadline::new("a client slot to free up");
    loop {
        let mut s = connect(node.addr).await;
        // A refused connection may be reset under our PING: that is "not yet", too.
        let _ = tokio::io::AsyncWriteExt::write_all(&mut s, b"PING\r\n").await;
        let mut reply = [0u8; 7];
        let read = within(
            "a reply",
            tokio::io::AsyncReadExt::read_exact(&mut s, &mut reply),
        )
        .await;
        if read.is_ok() && &reply == b"+PONG\r\n" {
            break;
        }
        deadline.tick().await;
    }
    send(&mut second, b"PING\r\n").await;
    expect_bytes(&mut second, b"+PONG\r\n").await;
}

#[tokio::test]
async fn stopping_a_node_closes_idle_connections_and_the_port() {
    let node = spawn_node(|_| {}).await;
    let addr = node.addr;
    let mut s = connect(addr).await;
    send(&mut s, b"SET k v\r\n").await;
    expect_bytes(&mut s, b"+OK\r\n").await;
    let _dir = node.stop().await;
    assert!(
        read_to_eof(&mut s).await.is_empty(),
        "closed without a word"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
