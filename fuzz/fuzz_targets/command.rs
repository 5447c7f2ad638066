//! Fuzzes command parsing and execution: arbitrary bytes become requests that run against a
//! fresh node through `Session::execute`, exactly as a connection runs them.
//!
//! The input is split into lines; each line is split into arguments with the RESP inline
//! rules (`minikv::protocol::resp::split_args`: spaces separate, `"..\xHH.."` quotes any
//! byte), so the fuzzer can reach every command, option and binary argument. Checked on
//! every input:
//! - no command panics, whatever its arguments, inside or outside MULTI;
//! - every reply encodes as RESP2, RESP3 and JSON;
//! - afterwards every database's key count equals the number of keys KEYS-style listing
//!   finds, and DBSIZE agrees;
//! - no key holds an empty list, hash, set or sorted set (Redis deletes them);
//! - a blocking command that blocked (BLPOP on an empty list...) is given up at once, as its
//!   deadline would, leaving no waiter registered.
//!
//! Skipped: `DEBUG SLEEP`, which blocks by design (as in Redis), and `BGSAVE`, whose saver
//! thread outlives the input: with a fresh node per input those threads pile up, and the ones
//! still saving when libFuzzer exits hold memory LeakSanitizer then reports as leaked (the
//! first `command` campaign ended that way). SAVE runs, writing to a private temporary
//! directory.

#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use minikv::cmd::Session;
use minikv::node::{ClientHandle, Node};
use minikv::protocol::json::{JsonCodec, JsonLimits};
use minikv::protocol::resp::{encode_reply, split_args};
use minikv::protocol::{Codec, Reply, ReplyShape, Request};
use minikv::NodeConfig;

static DATA_DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("minikv-fuzz-command-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the fuzz data directory");
    dir
});

fuzz_target!(|data: &[u8]| {
    let config = NodeConfig {
        data_dir: DATA_DIR.clone(),
        databases: 4,
        shards: 4,
        ..NodeConfig::default()
    };
    let node = Node::new(config);
    let client = Arc::new(ClientHandle::new(
        node.next_client_id(),
        "127.0.0.1:50000".into(),
        "127.0.0.1:7001".into(),
        node.shutdown.child_token(),
    ));
    let _registered = node.clients.register(client.clone());
    let mut session = Session::new(client);
    let mut json = JsonCodec::new(1, JsonLimits::default());

    for line in data.split(|&b| b == b'\n') {
        let Some(args) = split_args(line) else {
            continue;
        };
        if args.is_empty() || is_skipped(&args) {
            continue;
        }
        let request = Request::new(args.into_iter().map(Bytes::from));
        if let Some(reply) = session.execute(&node, &request) {
            check_encodes(&reply, &mut json);
        }
        if let Some(blocked) = session.blocked.take() {
            blocked.waiter.finish();
            node.blocking.deregister(&blocked.waiter);
        }
        if session.closing {
            break;
        }
    }
    session.unwatch_all(&node.store);

    let now = tokio::time::Instant::now();
    for (i, db) in node.store.dbs().iter().enumerate() {
        let (keys, with_ttl) = db.counts(now);
        assert!(
            with_ttl <= keys,
            "db {i}: {with_ttl} keys with a TTL out of {keys}"
        );
        let all = db.keys(b"*", now);
        assert_eq!(all.len(), keys, "db {i}: KEYS * vs the key count");
        for key in all {
            let empty = db
                .shard(&key)
                .peek(&key, now)
                .is_some_and(|v| v.to_value().is_empty_collection());
            assert!(!empty, "db {i}: key {key:?} holds an empty collection");
        }
    }
    assert_eq!(node.blocking.blocked_clients(), 0, "a waiter was left behind");
});

/// `DEBUG SLEEP` and `BGSAVE` (see the module docs); also inside MULTI, where EXEC would run
/// them.
fn is_skipped(args: &[Vec<u8>]) -> bool {
    let debug_sleep = args.len() >= 2
        && args[0].eq_ignore_ascii_case(b"debug")
        && args[1].eq_ignore_ascii_case(b"sleep");
    debug_sleep || args[0].eq_ignore_ascii_case(b"bgsave")
}

fn check_encodes(reply: &Reply, json: &mut JsonCodec) {
    let mut out = BytesMut::new();
    encode_reply(reply, false, &mut out);
    encode_reply(reply, true, &mut out);
    assert!(!out.is_empty());
    out.clear();
    json.encode(reply, &ReplyShape::generic(), &mut out)
        .expect("every reply encodes as JSON");
    let line = out.strip_suffix(b"\n").expect("a JSON reply ends its line");
    serde_json::from_slice::<serde_json::Value>(line).expect("a JSON reply is valid JSON");
}
