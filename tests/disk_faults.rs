//! Disk faults: a snapshot that cannot be written, and a log on a full filesystem. In each
//! case the failure is logged (a snapshot failure once per attempt, as a sentence naming the
//! file) and shown in INFO, retried, the existing files stay intact, and the node keeps
//! serving reads; writes are refused with Redis's MISCONF errors where Redis refuses them (log
//! failures always, snapshot failures with `stop-writes-on-bgsave-error`).
//!
//! The full-filesystem case mounts a small tmpfs, which needs root (as CI runs); without it the
//! test fails rather than skips.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::process::{free_port, BinProcess};
use common::redis_rs::{fetch_info, info_field, multiplexed, sync_connection};
use common::{spawn_node_in, wait_until, wait_until_blocking, WAIT};
use redis::AsyncCommands;

/// The value of `field` in `INFO persistence`.
async fn persistence(con: &mut redis::aio::MultiplexedConnection, field: &str) -> String {
    info_field(&fetch_info(con, "persistence").await, "Persistence", field)
}

/// Makes every snapshot write fail: a directory where the temporary file must be created.
fn block_snapshots(dir: &std::path::Path) -> std::path::PathBuf {
    let blocker = dir.join("kv_store_server1.json.tmp");
    std::fs::create_dir(&blocker).expect("create the blocking directory");
    blocker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_snapshot_is_reported_retried_and_keeps_the_old_file() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let node = spawn_node_in(dir.clone(), |c| c.save_interval = Duration::from_millis(50)).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let () = con.set("a", "1").await.expect("SET a");
    let path = node.snapshot_path();
    wait_until("the first snapshot", WAIT, || {
        let path = path.clone();
        async move { std::fs::read_to_string(&path).is_ok_and(|s| s.contains("\"a\"")) }
    })
    .await;
    let blocker = block_snapshots(dir.path());
    let () = con
        .set("b", "2")
        .await
        .expect("SET b (writes keep working)");
    wait_until("INFO to report the failed save", WAIT, || {
        let mut con = con.clone();
        async move { persistence(&mut con, "rdb_last_bgsave_status").await == "err" }
    })
    .await;
    let old = std::fs::read_to_string(&path).expect("old snapshot still there");
    let parsed: serde_json::Value = serde_json::from_str(&old).expect("still valid JSON");
    assert!(old.contains("\"a\"") && !old.contains("\"b\""), "{parsed}");
    let got: Option<String> = con.get("b").await.expect("reads keep working");
    assert_eq!(got.as_deref(), Some("2"));

    std::fs::remove_dir(&blocker).expect("remove the blocker");
    wait_until("the retried save", WAIT, || {
        let (mut con, path) = (con.clone(), path.clone());
        async move {
            persistence(&mut con, "rdb_last_bgsave_status").await == "ok"
                && std::fs::read_to_string(&path).is_ok_and(|s| s.contains("\"b\""))
        }
    })
    .await;
}

#[test]
fn a_failing_snapshot_logs_one_sentence_per_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = block_snapshots(dir.path());
    let port = free_port();
    // The real binary, for its log: a save attempt every 0.3 s while something is unsaved.
    let node = BinProcess::server(1, port, dir.path(), &["--save-interval", "0.3"]);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let () = redis::cmd("SET")
        .arg("a")
        .arg("1")
        .query(&mut con)
        .expect("SET");
    let failures = || -> Vec<String> {
        let stderr = node.stderr();
        stderr
            .lines()
            .filter(|l| l.contains("snapshot failed"))
            .map(String::from)
            .collect()
    };
    wait_until_blocking("four failed save attempts", WAIT, || failures().len() >= 4);
    let lines = failures();
    let want = format!(
        "snapshot failed, will retry at the next interval: cannot create the temporary \
         snapshot file {}: ",
        blocker.display()
    );
    for line in &lines {
        assert!(line.contains(&want), "not the expected sentence: {line}");
    }
    // Attempts are an interval apart (0.3 s; a late tick only delays the next one), while a
    // second line about the same attempt would follow within a millisecond or two.
    let times: Vec<f64> = lines.iter().map(|l| seconds_of_day(l)).collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 0.15,
            "two lines for one attempt:\n{}",
            lines.join("\n")
        );
    }
}

/// The time of day, in seconds, of a log line (tracing's `2026-01-31T12:34:56.789012Z` prefix).
fn seconds_of_day(line: &str) -> f64 {
    let stamp = line.split_whitespace().next().unwrap_or_default();
    let time = stamp
        .split_once('T')
        .map(|(_, t)| t.trim_end_matches('Z'))
        .unwrap_or_default();
    let parts: Vec<f64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [h, m, s] => h * 3600.0 + m * 60.0 + s,
        _ => panic!("no timestamp at the start of {line:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_writes_on_bgsave_error_refuses_writes_until_a_save_succeeds() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let node = spawn_node_in(dir.clone(), |c| {
        c.save_interval = Duration::from_millis(50);
        c.stop_writes_on_bgsave_error = true;
    })
    .await;
    let mut con = multiplexed(&node.redis_url()).await;
    let () = con.set("a", "1").await.expect("SET a");
    let blocker = block_snapshots(dir.path());
    let () = con
        .set("b", "2")
        .await
        .expect("SET b before the failure shows");
    wait_until("INFO to report the failed save", WAIT, || {
        let mut con = con.clone();
        async move { persistence(&mut con, "rdb_last_bgsave_status").await == "err" }
    })
    .await;
    let refused: redis::RedisResult<()> = con.set("c", "3").await;
    let err = refused.expect_err("writes are refused");
    assert_eq!(err.code(), Some("MISCONF"), "{err}");
    assert!(
        err.to_string()
            .contains("stop-writes-on-bgsave-error option"),
        "{err}"
    );
    let got: Option<String> = con.get("a").await.expect("reads still work");
    assert_eq!(got.as_deref(), Some("1"));
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("stop-writes-on-bgsave-error")
        .query_async(&mut con)
        .await
        .expect("CONFIG GET");
    assert_eq!(config, ["stop-writes-on-bgsave-error", "yes"]);

    std::fs::remove_dir(&blocker).expect("remove the blocker");
    wait_until("writes to be accepted again", WAIT, || {
        let mut con = con.clone();
        async move {
            let r: redis::RedisResult<()> = con.set("c", "3").await;
            r.is_ok()
        }
    })
    .await;
}

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: Arc<tempfile::TempDir>,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root: {status}");
        Tmpfs { dir }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "remount: {status}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy unmount: files may still be open in a node that is shutting down.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_acknowledged_ones_and_recovers() {
    let fs = Tmpfs::mount("256k");
    let node = spawn_node_in(fs.dir.clone(), |c| {
        c.appendonly = true;
        c.appendfsync = minikv::aof::FsyncPolicy::EverySec;
    })
    .await;
    let mut con = multiplexed(&node.redis_url()).await;
    let value = "x".repeat(1000);
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for i in 0..2000 {
        match con.set::<_, _, ()>(format!("k:{i}"), &value).await {
            Ok(()) => acknowledged.push(i),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("a 256 KB filesystem fills up");
    assert_eq!(refusal.code(), Some("MISCONF"), "{refusal}");
    assert!(
        refusal
            .to_string()
            .contains("Errors writing to the AOF file"),
        "{refusal}"
    );
    let status = persistence(&mut con, "aof_last_write_status").await;
    assert_eq!(status, "err");
    let first: Option<String> = con.get("k:0").await.expect("reads keep working");
    assert_eq!(first.as_deref(), Some(value.as_str()));

    // Room again: the writer's retry succeeds and writes are accepted.
    fs.resize("64m");
    wait_until("writes to be accepted again", WAIT, || {
        let mut con = con.clone();
        async move {
            let r: redis::RedisResult<()> = con.set("after", "room").await;
            r.is_ok()
        }
    })
    .await;
    acknowledged.push(usize::MAX);
    let dir = node.stop().await;

    // Every acknowledged write is in the log.
    let node = spawn_node_in(dir, |c| c.appendonly = true).await;
    let mut con = multiplexed(&node.redis_url()).await;
    for i in acknowledged.iter().filter(|i| **i != usize::MAX) {
        let got: Option<String> = con.get(format!("k:{i}")).await.expect("GET");
        assert_eq!(got.as_deref(), Some(value.as_str()), "k:{i} lost");
    }
    let after: Option<String> = con.get("after").await.expect("GET after");
    assert_eq!(after.as_deref(), Some("room"));
    drop(node);
    drop(fs);
}
