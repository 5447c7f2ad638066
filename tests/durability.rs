//! Durability under SIGKILL: a client writes and records every acknowledged write, the node
//! is killed with SIGKILL mid-stream, restarted on the same data directory, and what came back
//! is compared with what was acknowledged, for each persistence mode:
//!
//! - `--appendonly yes --appendfsync always`: every acknowledged write is there;
//! - `--appendonly yes --appendfsync everysec`: only writes acknowledged in the last ~second
//!   may be missing;
//! - snapshots only: only writes acknowledged within the last save interval may be missing.
//!
//! Plus the log's own failure modes: a torn last record is truncated and reported, damage
//! earlier in the log refuses to start (naming the file and offset) and leaves it untouched,
//! and a snapshot compacts the log.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::{free_port, BinProcess};
use common::raw::resp;
use common::redis_rs::sync_connection;

/// One acknowledged write: the key's number and when its reply arrived.
struct Ack {
    n: u64,
    at: Instant,
}

/// The SIGKILL tests run one at a time: they measure what a node loses, and several nodes
/// fighting for two cores would stretch every save and fsync.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `SET k:<n> v:<n>` one at a time until `stop` (or an error: the node died), and
/// returns every write whose `+OK` arrived; `count` follows the number acknowledged.
fn write_until_killed(port: u16, stop: Arc<AtomicBool>, count: Arc<AtomicUsize>) -> Vec<Ack> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut acks = Vec::new();
    let mut line = String::new();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (key, value) = (format!("k:{n}"), format!("v:{n}"));
        let request = resp(&[b"SET", key.as_bytes(), value.as_bytes()]);
        if writer.write_all(&request).is_err() {
            break;
        }
        line.clear();
        match reader.read_line(&mut line) {
            Ok(n_read) if n_read > 0 && line == "+OK\r\n" => {
                acks.push(Ack {
                    n,
                    at: Instant::now(),
                });
                count.store(acks.len(), Ordering::Relaxed);
            }
            _ => break,
        }
    }
    acks
}

/// Runs a node with `extra` options, lets a client write for at least `duration` and at least
/// `min_acks` acknowledged writes (so a slow machine still kills mid-stream, not before),
/// SIGKILLs the node while the client is writing, restarts it, and returns (acks, kill time,
/// keys present after restart).
fn kill_while_writing(
    extra: &[&str],
    duration: Duration,
    min_acks: usize,
) -> (Vec<Ack>, Instant, Vec<bool>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut node = BinProcess::server(1, port, dir.path(), extra);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, count) = (stop.clone(), count.clone());
        std::thread::spawn(move || write_until_killed(port, stop, count))
    };
    std::thread::sleep(duration);
    common::wait_until_blocking(
        "enough acknowledged writes",
        Duration::from_secs(60),
        || count.load(Ordering::Relaxed) >= min_acks,
    );
    let killed_at = Instant::now();
    node.kill();
    stop.store(true, Ordering::Relaxed);
    let acks = writer.join().expect("writer thread");
    let node = BinProcess::server(1, port, dir.path(), extra);
    let present = present_keys(port, acks.last().map_or(0, |a| a.n) + 10);
    drop(node);
    (acks, killed_at, present)
}

/// For k:0..k:upto, whether each key has its value after restart (via one MGET).
fn present_keys(port: u16, upto: u64) -> Vec<bool> {
    let mut client = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let keys: Vec<String> = (0..=upto).map(|n| format!("k:{n}")).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&keys)
        .query(&mut client)
        .expect("MGET");
    values
        .iter()
        .enumerate()
        .map(|(n, v)| v.as_deref() == Some(&format!("v:{n}")))
        .collect()
}

/// The acknowledged writes missing after the restart.
fn missing<'a>(acks: &'a [Ack], present: &[bool]) -> Vec<&'a Ack> {
    acks.iter()
        .filter(|a| !present.get(a.n as usize).copied().unwrap_or(false))
        .collect()
}

#[test]
fn appendfsync_always_loses_no_acknowledged_write() {
    let _serial = serial();
    for round in 0..3 {
        let (acks, _, present) = kill_while_writing(
            &["--appendonly", "yes", "--appendfsync", "always"],
            Duration::from_millis(300 + 150 * round),
            200,
        );
        let lost = missing(&acks, &present);
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} acknowledged writes lost, first k:{}",
            lost.len(),
            acks.len(),
            lost[0].n
        );
    }
}

#[test]
fn appendfsync_everysec_loses_at_most_the_last_second() {
    let _serial = serial();
    let (acks, killed_at, present) = kill_while_writing(
        &["--appendonly", "yes", "--appendfsync", "everysec"],
        Duration::from_millis(2500),
        200,
    );
    for ack in missing(&acks, &present) {
        let age = killed_at.duration_since(ack.at);
        assert!(
            age <= Duration::from_millis(1500),
            "k:{} was acknowledged {age:?} before the kill and lost",
            ack.n
        );
    }
}

#[test]
fn snapshots_alone_lose_at_most_the_last_save_interval() {
    let _serial = serial();
    let (acks, killed_at, present) = kill_while_writing(
        &["--save-interval", "0.5"],
        Duration::from_millis(3000),
        200,
    );
    let lost = missing(&acks, &present);
    for ack in &lost {
        let age = killed_at.duration_since(ack.at);
        // One interval, plus up to a second a save may wait for idle CPU before it is raised
        // to normal priority (docs/persistence.md), plus the save itself and a margin for a
        // loaded CI machine.
        assert!(
            age <= Duration::from_millis(3000),
            "k:{} was acknowledged {age:?} before the kill and lost",
            ack.n
        );
    }
    assert!(
        present.iter().filter(|p| **p).count() > 0,
        "the snapshot restored nothing"
    );
}

fn aof_path(dir: &Path) -> std::path::PathBuf {
    dir.join("kv_store_server1.aof")
}

/// Starts a node with the log, writes k:0..k:n, and SIGKILLs it.
fn write_then_kill(dir: &Path, port: u16, n: u64) {
    let mut node = BinProcess::server(
        1,
        port,
        dir,
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    for i in 0..n {
        let () = redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(format!("v:{i}"))
            .query(&mut con)
            .expect("SET");
    }
    node.kill();
}

#[test]
fn a_torn_last_record_is_truncated_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    write_then_kill(dir.path(), port, 50);
    let path = aof_path(dir.path());
    let intact = std::fs::metadata(&path).expect("log").len();
    // A crash in the middle of writing a record: a header promising more than follows.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open log");
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'*', b'3'])
        .expect("append a torn record");
    drop(file);
    let node = BinProcess::server(1, port, dir.path(), &["--appendonly", "yes"]);
    let present = present_keys(port, 49);
    assert!(
        present.iter().all(|p| *p),
        "every whole record was replayed"
    );
    assert!(
        node.stderr().contains("truncating 10 bytes"),
        "the torn tail is reported: {}",
        node.stderr()
    );
    assert_eq!(std::fs::metadata(&path).expect("log").len(), intact);
}

#[test]
fn damage_before_the_last_record_refuses_to_start_and_keeps_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    write_then_kill(dir.path(), port, 20);
    let path = aof_path(dir.path());
    let mut bytes = std::fs::read(&path).expect("read log");
    // Flip a byte inside the first record's payload (after the 21-byte header and the
    // 8-byte record header).
    bytes[21 + 8 + 3] ^= 0x55;
    std::fs::write(&path, &bytes).expect("write damaged log");
    let mut node = BinProcess::start(
        &[
            "server",
            "1",
            &port.to_string(),
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
            "--appendonly",
            "yes",
        ],
        &[],
    );
    let status = node.wait_exit();
    assert!(!status.success(), "a damaged log must stop the node");
    let stderr = node.stderr();
    assert!(
        stderr.contains("kv_store_server1.aof") && stderr.contains("offset 21"),
        "the message names the file and the offset: {stderr}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read log"),
        bytes,
        "left untouched"
    );
}

#[test]
fn a_snapshot_compacts_the_log_and_both_restore_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let extra = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save-interval",
        "3600",
    ];
    let node = BinProcess::server(1, port, dir.path(), &extra);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    for i in 0..200 {
        let () = redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(format!("v:{i}"))
            .query(&mut con)
            .expect("SET");
    }
    let () = redis::cmd("SWAPDB")
        .arg(0)
        .arg(1)
        .query(&mut con)
        .expect("SWAPDB");
    let path = aof_path(dir.path());
    let before = std::fs::metadata(&path).expect("log").len();
    let () = redis::cmd("SAVE").query(&mut con).expect("SAVE");
    common::wait_until_blocking("the log to be compacted", common::WAIT, || {
        std::fs::metadata(&path)
            .map(|m| m.len())
            .unwrap_or(u64::MAX)
            < before / 10
    });
    // Writes after the snapshot live only in the log.
    let () = redis::cmd("SELECT").arg(1).query(&mut con).expect("SELECT");
    let () = redis::cmd("SET")
        .arg("after")
        .arg("snap")
        .query(&mut con)
        .expect("SET");
    drop(node);
    let _node = BinProcess::server(1, port, dir.path(), &extra);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/1"));
    let (first, last, after): (String, String, String) = redis::cmd("MGET")
        .arg("k:0")
        .arg("k:199")
        .arg("after")
        .query(&mut con)
        .expect("MGET");
    assert_eq!(
        (first.as_str(), last.as_str(), after.as_str()),
        ("v:0", "v:199", "snap")
    );
    // The SWAPDB before the snapshot is not applied a second time.
    let mut db0 = sync_connection(&format!("redis://127.0.0.1:{port}/0"));
    let size: i64 = redis::cmd("DBSIZE").query(&mut db0).expect("DBSIZE");
    assert_eq!(size, 0, "database 0 is empty after the swap");
}

#[test]
fn config_and_info_report_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _node = BinProcess::server(
        1,
        port,
        dir.path(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("append*")
        .query(&mut con)
        .expect("CONFIG GET");
    assert_eq!(config, ["appendonly", "yes", "appendfsync", "always"]);
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut con)
        .expect("INFO");
    assert!(info.contains("aof_enabled:1\r\n"), "{info}");
    assert!(info.contains("aof_last_write_status:ok\r\n"), "{info}");
}

/// Issue 12: every type survives a SIGKILL through the log (whole values and element edits,
/// TTLs included), then a graceful stop and restart through the snapshot.
#[test]
fn collections_survive_a_kill_through_the_log_and_a_restart_through_the_snapshot() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let flags = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut node = BinProcess::server(1, port, dir.path(), &flags);
    let mut c = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let run = |c: &mut redis::Connection, args: &[&str]| -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        args[1..].iter().for_each(|a| {
            cmd.arg(*a);
        });
        cmd.query(c).expect("command")
    };
    for args in [
        &["RPUSH", "l", "a", "b", "c"][..],
        &["LPOP", "l"],
        &["HSET", "h", "f", "1", "g", "2"],
        &["HINCRBY", "h", "f", "41"],
        &["HDEL", "h", "g"],
        &["SADD", "s", "1", "2", "x"],
        &["SREM", "s", "2"],
        &["ZADD", "z", "1.5", "m", "-inf", "n"],
        &["ZINCRBY", "z", "1", "m"],
        &["EXPIRE", "z", "100000"],
        &["SETBIT", "bits", "9", "1"],
        &["SADD", "gone", "x"],
        &["DEL", "gone"],
    ] {
        run(&mut c, args);
    }
    let state = |c: &mut redis::Connection| {
        [
            run(c, &["LRANGE", "l", "0", "-1"]),
            run(c, &["HGETALL", "h"]),
            run(c, &["SMEMBERS", "s"]),
            run(c, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
            run(c, &["GETBIT", "bits", "9"]),
            run(c, &["EXISTS", "gone"]),
            run(c, &["TYPE", "z"]),
        ]
    };
    let mut before = state(&mut c);
    node.kill();
    let mut node = BinProcess::server(1, port, dir.path(), &flags);
    let mut c = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let mut after = state(&mut c);
    // SMEMBERS of a hash table may come back in another order.
    for s in [&mut before[2], &mut after[2]] {
        if let redis::Value::Array(items) | redis::Value::Set(items) = s {
            items.sort_by_key(|v| format!("{v:?}"));
        }
    }
    assert_eq!(before, after, "the log replays every type");
    let ttl: i64 = redis::cmd("TTL").arg("z").query(&mut c).expect("TTL");
    assert!(ttl > 99_000, "the sorted set kept its TTL: {ttl}");
    // A graceful stop writes a snapshot; a restart without the log reads it back.
    node.terminate();
    assert!(node.wait_exit().success(), "a graceful stop");
    let _node = BinProcess::server(1, port, dir.path(), &[]);
    let mut c = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let mut again = state(&mut c);
    if let redis::Value::Array(items) | redis::Value::Set(items) = &mut again[2] {
        items.sort_by_key(|v| format!("{v:?}"));
    }
    assert_eq!(before, again, "the snapshot holds every type");
}
