//! Files written by earlier releases still load: version 1 snapshot and append-only log,
//! written by the release before values had types (the binary of commit 3d617ad), and version
//! 2 ones, written by the release before collections (commit bf56b78), see
//! tests/fixtures/README.md; with TTLs, binary data and several databases. Each is restored
//! through a real node and checked key by key.

mod common;

use std::sync::Arc;

use common::redis_rs::aio::run;
use common::redis_rs::multiplexed;
use common::spawn_node_in;
use minikv::aof::FsyncPolicy;
use redis::Value;

/// A far-future Unix time in ms (2100-01-01) the fixtures use for TTLs that never run out.
const YEAR_2100_MS: i64 = 4_102_444_800_000;

fn bulk(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::Nil => None,
        other => panic!("not a bulk reply: {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("not an integer reply: {other:?}"),
    }
}

fn data_dir_with(files: &[(&str, &str)]) -> Arc<tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (from, to) in files {
        std::fs::copy(fixtures.join(from), dir.path().join(to)).expect("copy fixture");
    }
    Arc::new(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_snapshot_loads_with_its_ttls_and_is_saved_back_as_version_3() {
    let dir = data_dir_with(&[("v1_snapshot.json", "kv_store_server1.json")]);
    let node = spawn_node_in(dir, |c| c.id = 1).await;
    assert_eq!(node.restored, 9);
    let mut con = multiplexed(&node.redis_url()).await;
    let get = |key: &'static [u8]| [&b"GET"[..], key];
    for (key, want) in [
        (&b"plain"[..], &b"Alice"[..]),
        (b"unicode", "héllo ✓".as_bytes()),
        (b"bin:\xff\x00", b"\x01\x02\xfe"),
        (b"quote\"and\\back", b"line\nnext"),
        (b"empty", b""),
        (b"ttl:far", b"v"),
    ] {
        let got = bulk(&run::<Value>(&mut con, &get(key)).await);
        assert_eq!(
            got.as_deref(),
            Some(want),
            "{}",
            String::from_utf8_lossy(key)
        );
        let kind = run::<Value>(&mut con, &[b"TYPE", key]).await;
        assert_eq!(kind, Value::SimpleString("string".into()));
    }
    assert_eq!(
        int(&run::<Value>(&mut con, &[b"PEXPIRETIME", b"ttl:far"]).await),
        YEAR_2100_MS
    );
    assert_eq!(
        int(&run::<Value>(&mut con, &[b"PEXPIRETIME", b"ttl:pfar"]).await),
        YEAR_2100_MS + 123
    );
    assert_eq!(int(&run::<Value>(&mut con, &[b"PTTL", b"plain"]).await), -1);
    let _: Value = run::<Value>(&mut con, &[b"SELECT", b"3"]).await;
    assert_eq!(
        bulk(&run::<Value>(&mut con, &get(b"db3key")).await).as_deref(),
        Some(&b"three"[..])
    );
    assert_eq!(
        int(&run::<Value>(&mut con, &[b"PEXPIRETIME", b"db3ttl"]).await),
        YEAR_2100_MS
    );
    assert_eq!(int(&run::<Value>(&mut con, &[b"DBSIZE"]).await), 2);

    // Saved again, the file is version 3 and loads into the same keys.
    let path = node.snapshot_path();
    let _: Value = run::<Value>(&mut con, &[b"SAVE"]).await;
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    assert_eq!(saved["version"], 3);
    let dir = node.stop().await;
    let again = spawn_node_in(dir, |c| c.id = 1).await;
    assert_eq!(again.restored, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_log_replays_and_keeps_working_as_version_3() {
    let dir = data_dir_with(&[("v1_log.aof", "kv_store_server1.aof")]);
    let node = spawn_node_in(dir, |c| {
        c.id = 1;
        c.appendonly = true;
        c.appendfsync = FsyncPolicy::Always;
    })
    .await;
    let mut con = multiplexed(&node.redis_url()).await;
    // The fixture's commands: SET a 1; SET b 2 EXAT 2100; INCR a; APPEND b x; DEL nothing;
    // SET c 3; DEL c; SELECT 2 SET d dee; SWAPDB 2 5; SELECT 7 SET e e; FLUSHDB (7);
    // EXPIRE a 1000000000; SET p q; PERSIST p; MSET m1 x m2 y; MULTI SET t1 1 SET t2 2 EXEC.
    let get = |key: &'static [u8]| [&b"GET"[..], key];
    for (key, want) in [
        (&b"a"[..], Some(&b"2"[..])),
        (b"b", Some(b"2x")),
        (b"c", None),
        (b"p", Some(b"q")),
        (b"m1", Some(b"x")),
        (b"m2", Some(b"y")),
        (b"t1", Some(b"1")),
        (b"t2", Some(b"2")),
    ] {
        let got = bulk(&run::<Value>(&mut con, &get(key)).await);
        assert_eq!(got.as_deref(), want, "{}", String::from_utf8_lossy(key));
    }
    assert_eq!(
        int(&run::<Value>(&mut con, &[b"PEXPIRETIME", b"b"]).await),
        YEAR_2100_MS
    );
    assert!(int(&run::<Value>(&mut con, &[b"TTL", b"a"]).await) > 900_000_000);
    assert_eq!(int(&run::<Value>(&mut con, &[b"TTL", b"p"]).await), -1);
    let _: Value = run::<Value>(&mut con, &[b"SELECT", b"5"]).await;
    assert_eq!(
        bulk(&run::<Value>(&mut con, &get(b"d")).await).as_deref(),
        Some(&b"dee"[..])
    );
    let _: Value = run::<Value>(&mut con, &[b"SELECT", b"7"]).await;
    assert_eq!(int(&run::<Value>(&mut con, &[b"DBSIZE"]).await), 0);

    // New writes append version 2 records (PEXPIREAT, PERSIST) after the converted ones
    // (`always`: on disk before the reply); the whole log replays into the same state.
    let _: Value = run::<Value>(&mut con, &[b"SELECT", b"0"]).await;
    let _: Value = run::<Value>(&mut con, &[b"EXPIRE", b"p", b"100000"]).await;
    let _: Value = run::<Value>(&mut con, &[b"PERSIST", b"a"]).await;
    let _: Value = run::<Value>(&mut con, &[b"SET", b"new", b"v"]).await;
    let log = std::fs::read(node.node.config.aof_path()).expect("log");
    assert_eq!(&log[..13], minikv::aof::MAGIC);
    let copy = node.dir.path().join("copy.aof");
    std::fs::write(&copy, &log).expect("copy");
    let store = minikv::store::Store::new(16, 4);
    assert_eq!(
        minikv::aof::Aof::replay(&copy, &store, 0).expect("replays"),
        19,
        "16 records of version 1 and 3 new ones"
    );
    let now = tokio::time::Instant::now();
    let db0 = store.db(0).expect("db 0");
    let deadline = |key: &[u8]| db0.shard(key).deadline(key, now);
    assert!(deadline(b"p").flatten().is_some(), "PEXPIREAT replayed");
    assert_eq!(deadline(b"a"), Some(None), "PERSIST replayed");
    assert_eq!(deadline(b"new"), Some(None));
    assert_eq!(deadline(b"c"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_snapshot_loads_and_is_saved_back_as_version_3() {
    let dir = data_dir_with(&[("v2_snapshot.json", "kv_store_server1.json")]);
    let node = spawn_node_in(dir, |c| c.id = 1).await;
    assert_eq!(node.restored, 8);
    let mut con = multiplexed(&node.redis_url()).await;
    for (key, want) in [
        (&b"plain"[..], &b"Alice"[..]),
        (b"uni", "h\u{e9}llo \u{2713}".as_bytes()),
        (b"bin:key", b"\x01\x02\xfe"),
        (b"counter", b"15"),
        (b"a", b"1"),
    ] {
        let got = bulk(&run::<Value>(&mut con, &[&b"GET"[..], key]).await);
        assert_eq!(
            got.as_deref(),
            Some(want),
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(
        int(&run::<Value>(&mut con, &[b"PEXPIRETIME", b"b"]).await),
        YEAR_2100_MS + 123
    );
    assert_eq!(int(&run::<Value>(&mut con, &[b"TTL", b"a"]).await), -1);
    // The new build adds a collection next to the old strings; both survive a save.
    let _: Value = run::<Value>(&mut con, &[b"SADD", b"set", b"x"]).await;
    let _: Value = run::<Value>(&mut con, &[b"SAVE"]).await;
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.snapshot_path()).expect("read")).expect("json");
    assert_eq!(saved["version"], 3);
    let dir = node.stop().await;
    let again = spawn_node_in(dir, |c| c.id = 1).await;
    assert_eq!(again.restored, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_log_replays_and_takes_collection_records_after_it() {
    let dir = data_dir_with(&[("v2_log.aof", "kv_store_server1.aof")]);
    let node = spawn_node_in(dir, |c| {
        c.id = 1;
        c.appendonly = true;
        c.appendfsync = FsyncPolicy::Always;
    })
    .await;
    let mut con = multiplexed(&node.redis_url()).await;
    // The fixture's commands (tests/fixtures/README.md): SET plain; SET bin:key; SET ttl:far
    // EXAT 2100; INCRBY counter 5; MSET a 1 b 2; EXPIRE a; PERSIST a; PEXPIREAT b 2100+123ms;
    // SELECT 3 SET db3 three, EXPIREAT db3 2100; INCRBYFLOAT fl 1.5; DEL plain; SWAPDB 3 4.
    for (key, want) in [
        (&b"plain"[..], None),
        (b"bin:key", Some(&b"\x01\x02\xfe"[..])),
        (b"counter", Some(b"5")),
        (b"a", Some(b"1")),
        (b"b", Some(b"2")),
        (b"fl", Some(b"1.5")),
    ] {
        let got = bulk(&run::<Value>(&mut con, &[&b"GET"[..], key]).await);
        assert_eq!(got.as_deref(), want, "{}", String::from_utf8_lossy(key));
    }
    assert_eq!(int(&run::<Value>(&mut con, &[b"TTL", b"a"]).await), -1);
    assert_eq!(
        int(&run::<Value>(&mut con, &[b"PEXPIRETIME", b"b"]).await),
        YEAR_2100_MS + 123
    );
    let _: Value = run::<Value>(&mut con, &[b"SELECT", b"4"]).await;
    assert_eq!(
        int(&run::<Value>(&mut con, &[b"PEXPIRETIME", b"db3"]).await),
        YEAR_2100_MS
    );
    // Collections are logged after the converted records; the whole log replays.
    let _: Value = run::<Value>(&mut con, &[b"SELECT", b"0"]).await;
    let _: Value = run::<Value>(&mut con, &[b"SADD", b"set", b"x", b"y"]).await;
    let log = std::fs::read(node.node.config.aof_path()).expect("log");
    assert_eq!(&log[..13], minikv::aof::MAGIC);
    let copy = node.dir.path().join("copy.aof");
    std::fs::write(&copy, &log).expect("copy");
    let store = minikv::store::Store::new(16, 4);
    minikv::aof::Aof::replay(&copy, &store, 0).expect("replays");
    let now = tokio::time::Instant::now();
    let db0 = store.db(0).expect("db 0");
    assert_eq!(
        db0.shard(b"set").peek(b"set", now).map(|v| v.kind()),
        Some(minikv::store::Kind::Set)
    );
    assert_eq!(
        db0.shard(b"plain").peek(b"plain", now).map(|v| v.kind()),
        None
    );
}
