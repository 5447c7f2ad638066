//! The client matrix, part 3: redis-rs 1.x against a real node (the `minikv` binary on an
//! ephemeral port): the sync connection, the tokio multiplexed connection, RESP3 through
//! `?protocol=resp3`, pipelines, MULTI/EXEC pipelines, WATCH with the transaction helper, and
//! a ConnectionManager that carries on after the node is killed and restarted.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Commands, Value};

use common::process::{BinProcess, NodeProcess};
use common::redis_rs::{multiplexed, sync_connection};
use common::WAIT;

fn resp3_url(node: &NodeProcess) -> String {
    format!("redis://127.0.0.1:{}/?protocol=resp3", node.port)
}

/// The field `name` of a HELLO map.
fn field<'a>(map: &'a [(Value, Value)], name: &str) -> &'a Value {
    map.iter()
        .find(|(k, _)| {
            matches!(k, Value::BulkString(b) if b == name.as_bytes())
                || matches!(k, Value::SimpleString(s) if s == name)
        })
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name:?} in {map:?}"))
}

#[test]
fn sync_connection_reads_back_what_it_wrote() {
    let node = NodeProcess::start();
    let mut con = sync_connection(&node.redis_url());
    let () = con.set("k", "v1").unwrap();
    let v: Option<String> = con.get("k").unwrap();
    assert_eq!(v.as_deref(), Some("v1"));
    let missing: Option<String> = con.get("missing").unwrap();
    assert_eq!(missing, None);
    let n: i64 = con.incr("n", 1).unwrap();
    assert_eq!(n, 1);
    let n: i64 = con.incr("n", 41).unwrap();
    assert_eq!(n, 42);
    let f: f64 = con.incr("f", 1.5f64).unwrap();
    assert_eq!(f, 1.5);
    let set: bool = con.expire("k", 100).unwrap();
    assert!(set);
    let ttl: i64 = con.ttl("k").unwrap();
    assert!((98..=100).contains(&ttl), "TTL after EXPIRE 100: {ttl}");
    let ttl: i64 = con.ttl("n").unwrap();
    assert_eq!(ttl, -1);
    let ttl: i64 = con.ttl("missing").unwrap();
    assert_eq!(ttl, -2);
    let () = con.mset(&[("a", "1"), ("b", "2")]).unwrap();
    let values: Vec<Option<String>> = con.mget(&["a", "missing", "b"]).unwrap();
    assert_eq!(values, [Some("1".into()), None, Some("2".into())]);
    let deleted: i64 = con.del(&["a", "missing"]).unwrap();
    assert_eq!(deleted, 1);
    let err = con.incr::<_, _, i64>("k", 1).unwrap_err();
    assert_eq!(
        err.detail(),
        Some("value is not an integer or out of range"),
        "{err}"
    );
    // The connection is still in step after the error.
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    // SCAN through the iterator: every key exactly once.
    let names: HashSet<String> = (0..250).map(|i| format!("scan:{i}")).collect();
    let mut fill = redis::pipe();
    for name in &names {
        fill.set(name, "x").ignore();
    }
    let () = fill.query(&mut con).unwrap();
    let seen: Vec<String> = con
        .scan_match("scan:*")
        .unwrap()
        .map(|k: redis::RedisResult<String>| k.unwrap())
        .collect();
    assert_eq!(seen.len(), 250, "SCAN duplicates or misses");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), names);
}

#[test]
fn sync_pipelines_and_transactions() {
    let node = NodeProcess::start();
    let mut con = sync_connection(&node.redis_url());
    let mut other = sync_connection(&node.redis_url());

    let (ok, got, n1, n2, missing): (String, String, i64, i64, Option<String>) = redis::pipe()
        .set("p", "x")
        .get("p")
        .incr("pn", 1)
        .incr("pn", 1)
        .get("missing")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        (ok.as_str(), got.as_str(), n1, n2, missing),
        ("OK", "x", 1, 2, None)
    );

    // MULTI ... EXEC.
    let (len, value, both): (i64, String, Vec<Option<String>>) = redis::pipe()
        .atomic()
        .set("t", "a")
        .ignore()
        .append("t", "bc")
        .get("t")
        .mget(&["t", "missing"])
        .query(&mut con)
        .unwrap();
    assert_eq!((len, value.as_str()), (3, "abc"));
    assert_eq!(both, [Some("abc".into()), None]);

    // WATCH, another client's write, EXEC: nothing applied, EXEC answers nil.
    let () = con.set("w", "0").unwrap();
    let () = redis::cmd("WATCH").arg("w").query(&mut con).unwrap();
    let () = other.set("w", "changed").unwrap();
    let aborted: Option<(String,)> = redis::pipe()
        .atomic()
        .set("w", "mine")
        .query(&mut con)
        .unwrap();
    assert_eq!(aborted, None, "EXEC after a WATCH conflict");
    let w: String = con.get("w").unwrap();
    assert_eq!(w, "changed");

    // The transaction helper retries until its WATCH holds.
    let () = con.set("counter", 10).unwrap();
    let mut attempts = 0;
    let (value,): (i64,) = redis::transaction(&mut con, &["counter"], |con, pipe| {
        attempts += 1;
        let current: i64 = con.get("counter")?;
        if attempts == 1 {
            let () = other.set("counter", 100)?;
        }
        pipe.set("counter", current + 1)
            .ignore()
            .get("counter")
            .query(con)
    })
    .unwrap();
    assert_eq!(
        attempts, 2,
        "the first attempt must lose to the other client"
    );
    assert_eq!(value, 101);
    let stored: i64 = other.get("counter").unwrap();
    assert_eq!(stored, 101);

    // A queued command that fails when run does not stop the others (Redis semantics).
    let () = con.set("text", "abc").unwrap();
    let result: redis::RedisResult<Value> = redis::pipe()
        .atomic()
        .incr("text", 1)
        .set("after", "ok")
        .query(&mut con);
    assert!(result.is_err(), "INCR on text inside EXEC: {result:?}");
    let after: String = con.get("after").unwrap();
    assert_eq!(after, "ok");
    // EXECABORT when a command is rejected while queueing.
    let mut raw = sync_connection(&node.redis_url());
    let () = redis::cmd("MULTI").query(&mut raw).unwrap();
    let err = redis::cmd("GET")
        .query::<Value>(&mut raw)
        .expect_err("GET without a key is rejected");
    assert!(
        err.to_string().contains("wrong number of arguments"),
        "{err}"
    );
    let err = redis::cmd("EXEC").query::<Value>(&mut raw).unwrap_err();
    assert_eq!(err.code(), Some("EXECABORT"), "{err}");
}

#[test]
fn resp3_through_the_url() {
    let node = NodeProcess::start();
    let mut con = sync_connection(&resp3_url(&node));
    let hello: Value = redis::cmd("HELLO").query(&mut con).unwrap();
    let Value::Map(map) = &hello else {
        panic!("HELLO under RESP3 is not a map: {hello:?}");
    };
    assert_eq!(field(map, "proto"), &Value::Int(3));
    assert_eq!(field(map, "server"), &Value::BulkString(b"redis".to_vec()));
    let missing: Value = redis::cmd("GET").arg("missing").query(&mut con).unwrap();
    assert_eq!(missing, Value::Nil);
    let () = con.set("k", "v").unwrap();
    let v: String = con.get("k").unwrap();
    assert_eq!(v, "v");
    let config: Value = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        config,
        Value::Map(vec![(
            Value::BulkString(b"maxclients".to_vec()),
            Value::BulkString(b"10000".to_vec())
        )])
    );
    // COMMAND INFO: flags are a set under RESP3.
    let info: Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("get")
        .query(&mut con)
        .unwrap();
    let Value::Array(entries) = &info else {
        panic!("COMMAND INFO: {info:?}");
    };
    let Value::Array(get) = &entries[0] else {
        panic!("COMMAND INFO get: {info:?}");
    };
    assert_eq!(get[0], Value::BulkString(b"get".to_vec()));
    assert_eq!(get[1], Value::Int(2));
    let Value::Set(flags) = &get[2] else {
        panic!(
            "COMMAND INFO get flags are not a set under RESP3: {:?}",
            get[2]
        );
    };
    assert!(
        flags.contains(&Value::SimpleString("readonly".into())),
        "{flags:?}"
    );

    // The same under RESP2: flat arrays and `$-1`.
    let mut con2 = sync_connection(&node.redis_url());
    let config: Value = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut con2)
        .unwrap();
    assert_eq!(
        config,
        Value::Array(vec![
            Value::BulkString(b"maxclients".to_vec()),
            Value::BulkString(b"10000".to_vec())
        ])
    );
    let missing: Value = redis::cmd("GET").arg("missing").query(&mut con2).unwrap();
    assert_eq!(missing, Value::Nil);
}

#[tokio::test]
async fn tokio_multiplexed_connection_resp2_and_resp3() {
    let node = NodeProcess::start();
    for (label, url) in [("resp2", node.redis_url()), ("resp3", resp3_url(&node))] {
        let mut con = multiplexed(&url).await;
        let p = format!("{label}:");
        let () = con.set(format!("{p}k"), "v").await.unwrap();
        let v: Option<String> = con.get(format!("{p}k")).await.unwrap();
        assert_eq!(v.as_deref(), Some("v"), "{label}");
        let missing: Option<String> = con.get(format!("{p}missing")).await.unwrap();
        assert_eq!(missing, None, "{label}");
        let n: i64 = con.incr(format!("{p}n"), 5).await.unwrap();
        assert_eq!(n, 5, "{label}");
        let set: bool = con.expire(format!("{p}k"), 50).await.unwrap();
        assert!(set, "{label}");
        let ttl: i64 = con.ttl(format!("{p}k")).await.unwrap();
        assert!((48..=50).contains(&ttl), "{label}: TTL {ttl}");

        // Many requests in flight on one connection, answered in order.
        let futures = (0..200).map(|i| {
            let mut con = con.clone();
            let key = format!("{p}many:{i}");
            async move {
                let () = con.set(&key, i).await.unwrap();
                let back: i64 = con.get(&key).await.unwrap();
                assert_eq!(back, i);
            }
        });
        futures::future::join_all(futures).await;
        let size: i64 = redis::cmd("DBSIZE").query_async(&mut con).await.unwrap();
        assert!(size >= 202, "{label}: DBSIZE {size}");

        let (a, b, missing): (String, i64, Option<String>) = redis::pipe()
            .set(format!("{p}pa"), "x")
            .ignore()
            .get(format!("{p}pa"))
            .incr(format!("{p}pn"), 7)
            .get(format!("{p}missing"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!((a.as_str(), b, missing), ("x", 7, None), "{label}");
        let (len, value): (i64, String) = redis::pipe()
            .atomic()
            .set(format!("{p}t"), "a")
            .ignore()
            .append(format!("{p}t"), "bc")
            .get(format!("{p}t"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!((len, value.as_str()), (3, "abc"), "{label}");
    }
}

#[tokio::test]
async fn connection_manager_survives_a_node_restart() {
    let mut node = NodeProcess::start();
    let client = redis::Client::open(node.redis_url()).expect("valid URL");
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(200));
    let mut manager = ConnectionManager::new_with_config(client, config)
        .await
        .expect("connect the manager");
    let () = manager.set("kept", "before restart").await.unwrap();
    let () = redis::cmd("SAVE").query_async(&mut manager).await.unwrap();

    // SIGKILL: no goodbye to the connection, no final snapshot beyond the SAVE above.
    node.process.kill();
    let failed: redis::RedisResult<Option<String>> = manager.get("kept").await;
    assert!(failed.is_err(), "GET with the node down: {failed:?}");

    node.process = BinProcess::server(1, node.port, node.dir.path(), &[]);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut attempts = 0;
    let value = loop {
        attempts += 1;
        match manager.get::<_, Option<String>>("kept").await {
            Ok(value) => break value,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "ConnectionManager did not reconnect within {WAIT:?} ({attempts} attempts): \
                     {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(
        value.as_deref(),
        Some("before restart"),
        "restored from SAVE"
    );
    let () = manager.set("after", "restart").await.unwrap();
    let after: String = manager.get("after").await.unwrap();
    assert_eq!(after, "restart");
    println!("ConnectionManager reconnected after {attempts} attempt(s)");
}
