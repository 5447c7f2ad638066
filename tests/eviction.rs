//! The memory budget end to end (issue 15): the real `minikv server` started with
//! `--maxmemory` and each `--maxmemory-policy`, written five times its limit through redis-rs.
//! After every batch `used_memory` is at most the limit plus [`SLACK`]; at the end the process's
//! RSS is at most the limit plus 10% plus what it held at start; the keys each policy protects
//! are all there; `noeviction` refuses with Redis's exact error and loses nothing; reads work
//! when full; and with the append-only log on, evicted keys stay gone after a restart (their
//! DEL reached the log).

mod common;

use std::path::Path;

use common::process::{free_port, BinProcess};
use common::redis_rs::{error_text, parse_info, sync::q, sync::qerr, sync_connection};
use redis::Connection;

/// The limit every test runs with.
const LIMIT: u64 = 24 << 20;
/// What `used_memory` may exceed the limit by after a batch: the writes of the last moments
/// before the allocator was asked again (see `memory::Budget::used`).
const SLACK: u64 = LIMIT / 20;
/// Bytes per value.
const VALUE: usize = 1000;
/// Keys per pipelined batch.
const BATCH: usize = 1000;

struct Node {
    process: BinProcess,
    con: Connection,
    port: u16,
}

fn start(dir: &Path, policy: &str, extra: &[&str]) -> Node {
    let port = free_port();
    let limit = LIMIT.to_string();
    let mut args = vec![
        "--maxmemory",
        &limit,
        "--maxmemory-policy",
        policy,
        "--save",
        "",
    ];
    args.extend_from_slice(extra);
    let process = BinProcess::server(1, port, dir, &args);
    let con = sync_connection(&format!("redis://127.0.0.1:{port}"));
    Node { process, con, port }
}

fn info(con: &mut Connection, field: &str) -> u64 {
    let text: String = q(con, &["INFO", "everything"]);
    parse_info(&text)
        .into_iter()
        .find_map(|(_, fields)| fields.get(field).cloned())
        .unwrap_or_else(|| panic!("INFO has no {field}"))
        .parse()
        .unwrap_or_else(|e| panic!("INFO {field}: {e}"))
}

/// Writes `count` keys `prefix:i` of [`VALUE`] bytes (with `EX ttl` when given) in pipelined
/// batches, checking the budget after each; returns how many writes were refused (OOM).
fn fill(con: &mut Connection, prefix: &str, count: usize, ttl: Option<u64>) -> usize {
    let value = "v".repeat(VALUE);
    let mut refused = 0;
    for start in (0..count).step_by(BATCH) {
        let mut pipe = redis::pipe();
        for i in start..(start + BATCH).min(count) {
            let mut cmd = redis::cmd("SET");
            cmd.arg(format!("{prefix}:{i}")).arg(&value);
            if let Some(ttl) = ttl {
                cmd.arg("EX").arg(ttl);
            }
            pipe.add_command(cmd);
        }
        let replies: Vec<redis::RedisResult<redis::Value>> = pipe
            .ignore_errors()
            .query(con)
            .unwrap_or_else(|e| panic!("batch at {start}: {e}"));
        for reply in replies {
            if let Err(e) = reply {
                assert_eq!(
                    error_text(&e),
                    "OOM command not allowed when used memory > 'maxmemory'."
                );
                refused += 1;
            }
        }
        let used = info(con, "used_memory");
        assert!(
            used <= LIMIT + SLACK,
            "used_memory {used} over {LIMIT} + {SLACK} after {} keys",
            start + BATCH
        );
    }
    refused
}

/// Five times the limit in keys.
fn five_times() -> usize {
    (5 * LIMIT as usize) / VALUE
}

fn exists(con: &mut Connection, key: &str) -> bool {
    q::<i64>(con, &["EXISTS", key]) == 1
}

fn check_rss(node: &mut Node, startup_rss: u64) {
    let rss = info(&mut node.con, "used_memory_rss");
    let bound = LIMIT + LIMIT / 10 + startup_rss;
    assert!(
        rss <= bound,
        "RSS {rss} over maxmemory + 10% + startup RSS {startup_rss} = {bound}"
    );
}

fn allkeys(policy: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(dir.path(), policy, &[]);
    let startup_rss = info(&mut node.con, "used_memory_rss");
    // Hot keys, read after every batch: LRU and LFU must keep them.
    for i in 0..100 {
        q::<()>(&mut node.con, &["SET", &format!("hot:{i}"), "h"]);
    }
    let value = "v".repeat(VALUE);
    let total = five_times();
    for start in (0..total).step_by(BATCH * 10) {
        for _ in 0..3 {
            for i in 0..100 {
                let _: Option<String> = q(&mut node.con, &["GET", &format!("hot:{i}")]);
            }
        }
        assert_eq!(
            fill(&mut node.con, &format!("k{start}"), BATCH * 10, None),
            0
        );
    }
    assert!(info(&mut node.con, "evicted_keys") > 0);
    let kept = (0..100)
        .filter(|i| exists(&mut node.con, &format!("hot:{i}")))
        .count();
    if policy != "allkeys-random" {
        assert!(kept >= 95, "{policy} kept only {kept} of 100 hot keys");
    }
    // Reads work when full; the last key written is there.
    let last = format!(
        "k{}:{}",
        (total - 1) / (BATCH * 10) * BATCH * 10,
        BATCH * 10 - 1
    );
    assert_eq!(
        q::<Option<String>>(&mut node.con, &["GET", &last]).as_deref(),
        Some(value.as_str())
    );
    check_rss(&mut node, startup_rss);
    drop(node.process);
}

#[test]
fn allkeys_lru_stays_under_the_limit_and_keeps_hot_keys() {
    allkeys("allkeys-lru");
}

#[test]
fn allkeys_lfu_stays_under_the_limit_and_keeps_hot_keys() {
    allkeys("allkeys-lfu");
}

#[test]
fn allkeys_random_stays_under_the_limit() {
    allkeys("allkeys-random");
}

/// A protected set without TTL first, then five times the limit of keys with one: every
/// protected key survives.
fn volatile(policy: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(dir.path(), policy, &[]);
    let startup_rss = info(&mut node.con, "used_memory_rss");
    assert_eq!(fill(&mut node.con, "keep", 2000, None), 0);
    assert_eq!(fill(&mut node.con, "ttl", five_times(), Some(3600)), 0);
    assert!(info(&mut node.con, "evicted_keys") > 0);
    let lost: Vec<usize> = (0..2000)
        .filter(|i| !exists(&mut node.con, &format!("keep:{i}")))
        .collect();
    assert!(
        lost.is_empty(),
        "{policy} evicted keys without TTL: {lost:?}"
    );
    check_rss(&mut node, startup_rss);
}

#[test]
fn volatile_lru_never_evicts_keys_without_ttl() {
    volatile("volatile-lru");
}

#[test]
fn volatile_lfu_never_evicts_keys_without_ttl() {
    volatile("volatile-lfu");
}

#[test]
fn volatile_random_never_evicts_keys_without_ttl() {
    volatile("volatile-random");
}

#[test]
fn volatile_ttl_evicts_the_nearest_deadlines_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(dir.path(), "volatile-ttl", &[]);
    // A third of the limit expiring in an hour, then keys expiring in a day until half of the
    // first ones went: none of the later (farther) ones may have gone yet.
    let near = (LIMIT as usize / 3) / VALUE;
    assert_eq!(fill(&mut node.con, "near", near, Some(3600)), 0);
    let mut written = 0;
    while info(&mut node.con, "evicted_keys") < (near / 2) as u64 {
        assert_eq!(
            fill(&mut node.con, &format!("far{written}"), BATCH, Some(86_400)),
            0
        );
        written += 1;
        assert!(
            written < 5 * five_times() / BATCH,
            "never evicted half the near keys"
        );
    }
    let far_lost = (0..written)
        .flat_map(|b| (0..BATCH).map(move |i| format!("far{b}:{i}")))
        .filter(|k| !exists(&mut node.con, k))
        .count();
    assert_eq!(far_lost, 0, "farther deadlines evicted before nearer ones");
}

#[test]
fn volatile_policies_without_volatile_keys_refuse_writes_with_redis_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(dir.path(), "volatile-lru", &[]);
    let refused = fill(&mut node.con, "plain", five_times() / 2, None);
    assert!(
        refused > 0,
        "a full node without volatile keys must refuse writes"
    );
    assert_eq!(info(&mut node.con, "evicted_keys"), 0);
}

#[test]
fn noeviction_refuses_writes_with_redis_error_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(dir.path(), "noeviction", &[]);
    let total = five_times() / 2;
    let refused = fill(&mut node.con, "k", total, None);
    assert!(refused > 0);
    let stored: i64 = q(&mut node.con, &["DBSIZE"]);
    assert_eq!(
        stored as usize,
        total - refused,
        "every acknowledged write is kept"
    );
    assert_eq!(info(&mut node.con, "evicted_keys"), 0);
    assert_eq!(
        qerr(&mut node.con, &["SET", "one-more", "v"]),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    // Inside MULTI every command is refused while full, and EXEC then aborts.
    q::<()>(&mut node.con, &["MULTI"]);
    assert_eq!(
        qerr(&mut node.con, &["GET", "k:1"]),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert_eq!(
        qerr(&mut node.con, &["EXEC"]),
        "EXECABORT Transaction discarded because of previous errors."
    );
    // Reads and DEL (not denyoom) still run (the DEL may bring the node under its limit).
    assert_eq!(q::<i64>(&mut node.con, &["EXISTS", "k:0"]), 1);
    assert_eq!(q::<i64>(&mut node.con, &["DEL", "k:0"]), 1);
    // Raising the limit lets writes in again.
    q::<()>(&mut node.con, &["CONFIG", "SET", "maxmemory", "0"]);
    q::<()>(&mut node.con, &["SET", "one-more", "v"]);
}

#[test]
fn evictions_reach_the_append_only_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(dir.path(), "allkeys-random", &["--appendonly", "yes"]);
    assert_eq!(fill(&mut node.con, "k", 2 * five_times() / 5, None), 0);
    let evicted = info(&mut node.con, "evicted_keys");
    assert!(evicted > 0);
    let keys: i64 = q(&mut node.con, &["DBSIZE"]);
    let gone: Vec<String> = (0..2 * five_times() / 5)
        .map(|i| format!("k:{i}"))
        .filter(|k| !exists(&mut node.con, k))
        .take(200)
        .collect();
    assert!(!gone.is_empty());
    let port = node.port;
    node.process.interrupt();
    node.process.wait_exit();
    drop(node);

    // Restarted without a limit: the log replays the evictions as deletes.
    let process = BinProcess::server(1, port, dir.path(), &["--appendonly", "yes", "--save", ""]);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}"));
    assert_eq!(q::<i64>(&mut con, &["DBSIZE"]), keys);
    for key in &gone {
        assert!(!exists(&mut con, key), "{key} came back after a restart");
    }
    drop(process);
}

#[test]
fn object_freq_and_idletime_follow_the_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(dir.path(), "allkeys-lfu", &[]);
    q::<()>(&mut node.con, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut node.con, &["OBJECT", "FREQ", "k"]), 5);
    for _ in 0..200 {
        let _: String = q(&mut node.con, &["GET", "k"]);
    }
    assert!(q::<i64>(&mut node.con, &["OBJECT", "FREQ", "k"]) > 5);
    assert!(qerr(&mut node.con, &["OBJECT", "IDLETIME", "k"]).starts_with("ERR An LFU maxmemory"));
    q::<()>(
        &mut node.con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    assert!(qerr(&mut node.con, &["OBJECT", "FREQ", "k"]).starts_with("ERR An LFU maxmemory"));
    assert_eq!(q::<i64>(&mut node.con, &["OBJECT", "IDLETIME", "k"]), 0);
    let stats: redis::Value = q(&mut node.con, &["MEMORY", "STATS"]);
    assert!(format!("{stats:?}").contains("keys.count"));
    let doctor: String = q(&mut node.con, &["MEMORY", "DOCTOR"]);
    assert!(doctor.contains("Sam"));
}

#[test]
fn the_budget_comes_from_the_config_file_flags_override_it_and_rewrite_keeps_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("node.conf");
    std::fs::write(
        &file,
        "maxmemory 100mb\nmaxmemory-policy allkeys-lfu\nlfu-log-factor 20\n",
    )
    .expect("write the config file");
    let port = free_port();
    let file_text = file.display().to_string();
    let process = BinProcess::server(
        1,
        port,
        dir.path(),
        &["--config", &file_text, "--maxmemory", "1kb", "--save", ""],
    );
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}"));
    let get = |con: &mut Connection, name: &str| -> String {
        let pair: Vec<String> = q(con, &["CONFIG", "GET", name]);
        pair.get(1).cloned().unwrap_or_default()
    };
    assert_eq!(
        get(&mut con, "maxmemory"),
        "1024",
        "the flag wins over the file"
    );
    assert_eq!(get(&mut con, "maxmemory-policy"), "allkeys-lfu");
    assert_eq!(get(&mut con, "lfu-log-factor"), "20");
    assert_eq!(info(&mut con, "maxmemory"), 1024);
    q::<()>(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "maxmemory",
            "64mb",
            "maxmemory-samples",
            "10",
        ],
    );
    q::<()>(&mut con, &["CONFIG", "REWRITE"]);
    let text = std::fs::read_to_string(&file).expect("read the rewritten file");
    assert!(text.contains("maxmemory 67108864"), "{text}");
    assert!(text.contains("maxmemory-samples 10"), "{text}");
    drop(process);
}
