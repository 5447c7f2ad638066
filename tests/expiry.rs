//! TTL expiry, both ways the issue asks for: lazily (an expired key is never returned or
//! counted, even before any sweep) and by the background sweep (expired keys are removed from
//! memory every cleanup interval without anyone reading them).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::{connect, expect_bytes, frame_len, send, JsonConn};
use common::{spawn_node, wait_until, Deadline, WAIT};
use minikv::node::Node;
use minikv::store::{Entry, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Entries physically held by the store, expired or not: unlike DBSIZE, KEYS or STATS this
/// looks at the maps without purging anything, so it shows what the sweep has removed.
fn stored_entries(store: &Store) -> usize {
    store
        .dbs()
        .iter()
        .map(|db| {
            (0..db.shard_count())
                .map(|i| db.lock(i).len())
                .sum::<usize>()
        })
        .sum()
}

fn node_entries(node: &Node) -> usize {
    stored_entries(&node.store)
}

/// Sends `request` as an inline command and returns its whole raw reply.
async fn resp_line(stream: &mut tokio::net::TcpStream, request: &str) -> String {
    use tokio::io::AsyncReadExt;
    send(stream, format!("{request}\r\n").as_bytes()).await;
    // One byte at a time: nothing after the reply is taken from the stream.
    let mut out = Vec::new();
    while frame_len(&out, 0) != Some(out.len()) {
        let mut byte = [0u8; 1];
        let n = common::within("a RESP reply", stream.read(&mut byte))
            .await
            .expect("read reply");
        assert!(n > 0, "connection closed inside a reply");
        out.push(byte[0]);
    }
    String::from_utf8(out).expect("UTF-8 reply")
}

#[tokio::test]
async fn get_returns_nil_once_the_deadline_passes_without_any_sweep() {
    // No sweep during the test: only lazy expiry can hide the key.
    let node = spawn_node(|c| c.cleanup_interval = Duration::from_secs(3600)).await;
    let mut s = connect(node.addr).await;
    assert_eq!(resp_line(&mut s, "SET long v PX 60000").await, "+OK\r\n");
    let set_at = Instant::now();
    assert_eq!(resp_line(&mut s, "SET short v PX 100").await, "+OK\r\n");

    let deadline = Deadline::new("the PX 100 key to expire");
    let gone_after = loop {
        let reply = resp_line(&mut s, "GET short").await;
        if reply == "$-1\r\n" {
            break set_at.elapsed();
        }
        // Until then the key reads back whole.
        assert_eq!(reply, "$1\r\nv\r\n", "GET before the deadline");
        deadline.tick().await;
    };
    assert!(
        gone_after >= Duration::from_millis(100),
        "the key vanished {gone_after:?} after SET PX 100: before its deadline"
    );

    // Expired means gone for every command, not just GET.
    assert_eq!(resp_line(&mut s, "EXISTS short").await, ":0\r\n");
    assert_eq!(resp_line(&mut s, "TTL short").await, ":-2\r\n");
    assert_eq!(resp_line(&mut s, "PTTL short").await, ":-2\r\n");
    assert_eq!(resp_line(&mut s, "PERSIST short").await, ":0\r\n");
    assert_eq!(resp_line(&mut s, "EXPIRE short 100").await, ":0\r\n");
    assert_eq!(resp_line(&mut s, "DBSIZE").await, ":1\r\n");
    assert_eq!(resp_line(&mut s, "KEYS *").await, "*1\r\n$4\r\nlong\r\n");
    assert_eq!(resp_line(&mut s, "SET short again NX").await, "+OK\r\n");
    assert_eq!(
        resp_line(&mut s, "TTL short").await,
        ":-1\r\n",
        "a fresh key, no old TTL"
    );
}

#[tokio::test]
async fn json_get_reports_key_not_found_after_expiry() {
    let node = spawn_node(|c| c.cleanup_interval = Duration::from_secs(3600)).await;
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c
        .request(json!({"command": "SET", "key": "session", "value": "abc"}))
        .await;
    assert_eq!(reply["status"], "success");
    // Millisecond TTL through RESP, then watch it through JSON.
    let mut r = connect(node.addr).await;
    assert_eq!(resp_line(&mut r, "PEXPIRE session 100").await, ":1\r\n");
    let deadline = Deadline::new("the key to expire");
    while c.request(json!({"command": "GET", "key": "session"})).await["status"] == "success" {
        deadline.tick().await;
    }
    let reply = c.request(json!({"command": "GET", "key": "session"})).await;
    assert_eq!(
        reply,
        json!({"status": "error", "message": "Key not found", "value": null, "key": "session",
               "server_id": 1})
    );
    let reply = c.request(json!({"command": "STATS"})).await;
    assert_eq!(reply["stats"]["total_keys"], 0);
    assert_eq!(reply["stats"]["keys_with_ttl"], 0);
}

#[tokio::test]
async fn background_sweep_removes_expired_keys_nobody_reads() {
    let node = spawn_node(|c| c.cleanup_interval = Duration::from_millis(50)).await;
    let mut s = connect(node.addr).await;
    let mut batch = String::new();
    for i in 0..100 {
        batch.push_str(&format!("SET ttl:{i} v PX 100\r\n"));
    }
    for i in 0..10 {
        batch.push_str(&format!("SET keep:{i} v\r\n"));
    }
    // A key whose TTL was cleared by a later SET must survive the sweep.
    batch.push_str("SET keep:cleared v PX 100\r\nSET keep:cleared v2\r\n");
    send(&mut s, batch.as_bytes()).await;
    expect_bytes(&mut s, "+OK\r\n".repeat(112).as_bytes()).await;

    // No command touches the keys from here on: only the sweep can remove them.
    wait_until("the sweep to remove 100 expired keys", WAIT, || async {
        node_entries(&node.node) == 11
    })
    .await;

    let mut c = JsonConn::connect(node.addr).await;
    let reply = c.request(json!({"command": "STATS"})).await;
    assert_eq!(reply["stats"]["total_keys"], 11);
    assert_eq!(reply["stats"]["keys_with_ttl"], 0);
    let reply = c
        .request(json!({"command": "GET", "key": "keep:cleared"}))
        .await;
    assert_eq!(reply["value"], "v2");
    assert_eq!(reply["ttl"], -1);
}

#[tokio::test]
async fn without_a_sweep_expired_keys_stay_in_memory_but_are_never_counted() {
    // The control for the test above: with the sweep effectively off, expired entries remain
    // in the maps until something looks at them, and counting them purges rather than counts.
    let node = spawn_node(|c| c.cleanup_interval = Duration::from_secs(3600)).await;
    let mut s = connect(node.addr).await;
    let mut batch = String::new();
    for i in 0..20 {
        batch.push_str(&format!("SET ttl:{i} v PX 50\r\n"));
    }
    batch.push_str("SET keep v\r\n");
    let sent = Instant::now();
    send(&mut s, batch.as_bytes()).await;
    expect_bytes(&mut s, "+OK\r\n".repeat(21).as_bytes()).await;
    wait_until("the PX 50 deadlines to pass", WAIT, || async {
        sent.elapsed() > Duration::from_millis(200)
    })
    .await;
    assert_eq!(
        node_entries(&node.node),
        21,
        "nothing swept the expired keys"
    );
    assert_eq!(resp_line(&mut s, "DBSIZE").await, ":1\r\n");
    assert_eq!(node_entries(&node.node), 1, "counting purged them");
}

#[tokio::test(start_paused = true)]
async fn sweep_task_purges_exactly_on_its_interval() {
    // Paused clock: the store's deadlines and the sweep's ticker both use tokio's time.
    let store = Arc::new(Store::new(1, 8));
    let db = store.db(0).expect("db 0");
    let start = tokio::time::Instant::now();
    for i in 0..100 {
        let key = format!("ttl:{i}");
        let entry = Entry {
            value: minikv::store::Value::String(Bytes::from_static(b"v")),
            deadline: Some(start + Duration::from_millis(100)),
        };
        db.shard(key.as_bytes())
            .insert(key.as_bytes(), entry, start);
    }
    for i in 0..5 {
        let key = format!("keep:{i}");
        let entry = Entry {
            value: minikv::store::Value::String(Bytes::from_static(b"v")),
            deadline: None,
        };
        db.shard(key.as_bytes())
            .insert(key.as_bytes(), entry, start);
    }
    let shutdown = CancellationToken::new();
    let sweep = tokio::spawn(minikv::store::expiry::run(
        store.clone(),
        Duration::from_millis(50),
        shutdown.clone(),
        std::sync::Arc::default(),
    ));

    // Sweeps at 0 and 50 ms find nothing due.
    tokio::time::sleep(Duration::from_millis(99)).await;
    assert_eq!(stored_entries(&store), 105);
    // The sweep at 100 ms removes every key due at 100 ms.
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(stored_entries(&store), 5);

    shutdown.cancel();
    sweep.await.expect("sweep task stops on shutdown");
}

#[tokio::test(start_paused = true)]
async fn lazy_expiry_hides_a_key_exactly_at_its_deadline() {
    let store = Store::new(1, 4);
    let db = store.db(0).expect("db 0");
    let start = tokio::time::Instant::now();
    let entry = Entry {
        value: minikv::store::Value::String(Bytes::from_static(b"v")),
        deadline: Some(start + Duration::from_millis(100)),
    };
    db.shard(b"k").insert(b"k", entry, start);
    tokio::time::advance(Duration::from_millis(99)).await;
    let now = tokio::time::Instant::now();
    assert!(db.shard(b"k").get(b"k", now).is_some(), "1 ms before");
    assert_eq!(db.counts(now), (1, 1));
    tokio::time::advance(Duration::from_millis(1)).await;
    let now = tokio::time::Instant::now();
    assert!(db.shard(b"k").get(b"k", now).is_none(), "at the deadline");
    assert_eq!(db.counts(now), (0, 0));
    assert!(db.keys(b"*", now).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_keyspace_reports_the_average_remaining_ttl() {
    use common::redis_rs::aio::q;
    use common::redis_rs::{fetch_info, info_field, multiplexed};

    let node = spawn_node(|_| {}).await;
    let mut con = multiplexed(&node.redis_url()).await;
    // INFO keyspace's line for database 0.
    let reader = con.clone();
    let db0 = || {
        let mut con = reader.clone();
        async move { info_field(&fetch_info(&mut con, "keyspace").await, "Keyspace", "db0") }
    };
    let avg_ttl = |db0: &str| -> u64 {
        db0.split(',')
            .find_map(|f| f.strip_prefix("avg_ttl="))
            .unwrap_or_else(|| panic!("no avg_ttl in {db0:?}"))
            .parse()
            .expect("avg_ttl is a number of milliseconds")
    };

    let () = q(&mut con, &["SET", "plain", "v"]).await;
    assert_eq!(
        db0().await,
        "keys=1,expires=0,avg_ttl=0",
        "no TTL, no average"
    );

    let started = Instant::now();
    let () = q(&mut con, &["SET", "a", "v", "EX", "100"]).await;
    let () = q(&mut con, &["SET", "b", "v", "PX", "200000"]).await;
    let info = db0().await;
    let elapsed = started.elapsed().as_millis() as u64;
    assert!(info.starts_with("keys=3,expires=2,avg_ttl="), "{info}");
    // The mean of 100 s and 200 s, less the time since they were set (the clock's
    // milliseconds may straddle one more).
    let avg = avg_ttl(&info);
    assert!(
        (150_000 - elapsed - 1..=150_000).contains(&avg),
        "avg_ttl {avg} after {elapsed} ms: {info}"
    );

    let _: i64 = q(&mut con, &["PERSIST", "b"]).await;
    let avg = avg_ttl(&db0().await);
    let elapsed = started.elapsed().as_millis() as u64;
    assert!(
        (100_000 - elapsed - 1..=100_000).contains(&avg),
        "only a's 100 s is left: {avg}"
    );
    let _: i64 = q(&mut con, &["DEL", "a"]).await;
    assert_eq!(db0().await, "keys=2,expires=0,avg_ttl=0");
}
