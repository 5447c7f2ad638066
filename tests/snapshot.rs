//! Persistence: snapshot + restart restores data and TTLs, a graceful stop writes a final
//! snapshot, periodic saves happen only after changes, a corrupt file is refused (and left
//! alone) by the library and the binary, and SIGKILL at random moments never leaves a file
//! that does not parse.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::{free_port, BinProcess, ClusterProcess};
use common::redis_rs::aio::run;
use common::redis_rs::{multiplexed, sync_connection};
use common::snapshot::{read_snapshot, snapshot_entries};
use common::{blocking, spawn_node, spawn_node_in, test_config, wait_until, Rng, WAIT};
use minikv::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_data_and_ttls_and_drops_keys_that_expired_while_down() {
    let node = spawn_node(|c| c.id = 2).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let () = run(&mut con, &[b"SET", b"plain", b"Alice"]).await;
    let () = run(&mut con, &[b"SET", b"bin\xff\x00key", b"\x00\x01\xfe\xff"]).await;
    let () = run(&mut con, &[b"SET", b"long", b"v", b"EX", b"100"]).await;
    let short_set = Instant::now();
    let () = run(&mut con, &[b"SET", b"short", b"v", b"PX", b"300"]).await;
    let pttl_before: i64 = run(&mut con, &[b"PTTL", b"long"]).await;
    let () = run(&mut con, &[b"SELECT", b"3"]).await;
    let () = run(&mut con, &[b"SET", b"in-db-3", b"three"]).await;
    drop(con);

    let path = node.snapshot_path();
    assert!(
        path.ends_with("kv_store_server2.json"),
        "{}",
        path.display()
    );
    let dir = node.stop().await;
    let snapshot = read_snapshot(&path);
    assert_eq!(snapshot["server_id"], 2);
    let entries = snapshot_entries(&snapshot);
    assert!(
        entries.contains(&(0, "plain".into(), "Alice".into())),
        "{snapshot}"
    );
    assert!(
        entries.contains(&(3, "in-db-3".into(), "three".into())),
        "{snapshot}"
    );
    let long = snapshot["databases"][0]["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["key"] == "long"))
        .expect("long is saved");
    let expires_at = long["expires_at_ms"]
        .as_i64()
        .expect("absolute deadline saved");
    let left = expires_at - minikv::store::clock::unix_ms();
    assert!(
        (90_000..=100_000).contains(&left),
        "deadline {left} ms away"
    );

    // Stay down until `short` is past its deadline.
    wait_until("the PX 300 deadline to pass", WAIT, || async {
        short_set.elapsed() > Duration::from_millis(400)
    })
    .await;

    let node = spawn_node_in(dir, |c| c.id = 2).await;
    assert_eq!(
        node.restored, 4,
        "plain, binary, long and in-db-3; not short"
    );
    let mut con = multiplexed(&node.redis_url()).await;
    let plain: String = run(&mut con, &[b"GET", b"plain"]).await;
    assert_eq!(plain, "Alice");
    let bin: Vec<u8> = run(&mut con, &[b"GET", b"bin\xff\x00key"]).await;
    assert_eq!(bin, b"\x00\x01\xfe\xff");
    let short: Option<String> = run(&mut con, &[b"GET", b"short"]).await;
    assert_eq!(short, None, "expired while the node was down");
    let pttl_after: i64 = run(&mut con, &[b"PTTL", b"long"]).await;
    assert!(
        pttl_after > 0 && pttl_after < pttl_before,
        "TTL keeps counting down across the restart: {pttl_before} then {pttl_after}"
    );
    let ttl: i64 = run(&mut con, &[b"TTL", b"long"]).await;
    assert!((90..=100).contains(&ttl), "{ttl}");
    let dbsize: i64 = run(&mut con, &[b"DBSIZE"]).await;
    assert_eq!(dbsize, 3);
    let () = run(&mut con, &[b"SELECT", b"3"]).await;
    let three: String = run(&mut con, &[b"GET", b"in-db-3"]).await;
    assert_eq!(three, "three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_writes_a_final_snapshot() {
    // The periodic save is an hour away: only the shutdown can write the file.
    let node = spawn_node(|c| c.save_interval = Duration::from_secs(3600)).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let () = run(&mut con, &[b"SET", b"last", b"words"]).await;
    let path = node.snapshot_path();
    assert!(!path.exists(), "nothing saved before the stop");
    let dir = node.stop().await;
    let entries = snapshot_entries(&read_snapshot(&path));
    assert_eq!(entries, vec![(0, "last".to_string(), "words".to_string())]);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list data dir")
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec!["kv_store_server1.json"],
        "no temporary file left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_snapshots_are_written_only_after_changes() {
    let node = spawn_node(|c| c.save_interval = Duration::from_millis(50)).await;
    let path = node.snapshot_path();
    let mut con = multiplexed(&node.redis_url()).await;
    let () = run(&mut con, &[b"SET", b"one", b"1"]).await;
    // The file appears (rename) a moment before the save is counted: wait for both.
    wait_until("the first periodic snapshot", WAIT, || async {
        let status = node.node.persister.status();
        path.exists()
            && snapshot_entries(&read_snapshot(&path)).len() == 1
            && status.saves > 0
            && !status.in_progress
    })
    .await;
    let saves = node.node.persister.status().saves;
    let saved_at = read_snapshot(&path)["saved_at_ms"].clone();

    // Several intervals without a change: no new save.
    let quiet = Instant::now();
    wait_until("four save intervals to pass", WAIT, || async {
        quiet.elapsed() > Duration::from_millis(200)
    })
    .await;
    assert_eq!(
        node.node.persister.status().saves,
        saves,
        "saved without a change"
    );
    assert_eq!(read_snapshot(&path)["saved_at_ms"], saved_at);

    let () = run(&mut con, &[b"SET", b"two", b"2"]).await;
    wait_until("the snapshot after the change", WAIT, || async {
        snapshot_entries(&read_snapshot(&path)).len() == 2
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_snapshot_makes_bind_fail_and_is_left_untouched() {
    let cases: [&[u8]; 6] = [
        b"{\"format\": \"minikv-snapshot\", \"version\": 1, \"datab",
        b"this is not json",
        b"",
        br#"{"format": "something-else", "version": 1, "databases": []}"#,
        br#"{"format": "minikv-snapshot", "version": 1, "databases": [{"db": 0, "entries": [{"key_base64": "***", "value": "v"}]}]}"#,
        br#"{"format": "minikv-snapshot", "version": 1, "databases": [{"db": 99, "entries": []}]}"#,
    ];
    for contents in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = test_config(dir.path());
        let path = config.snapshot_path();
        std::fs::write(&path, contents).expect("write corrupt snapshot");
        let err = Server::bind(config)
            .await
            .expect_err("a corrupt snapshot must stop the node from starting");
        let message = err.to_string();
        assert!(
            message.contains(&path.display().to_string()),
            "the error names the file: {message}"
        );
        assert_eq!(
            std::fs::read(&path).expect("file still there"),
            contents,
            "the corrupt file is untouched"
        );
        let files = std::fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(files, 1, "nothing else was written next to it");
    }
}

#[tokio::test]
async fn the_binary_refuses_to_start_on_a_corrupt_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv_store_server1.json");
    let contents = b"{\"format\": \"minikv-snapshot\", \"version\": 1, \"databases\": [";
    std::fs::write(&path, contents).expect("write corrupt snapshot");
    let port = free_port();
    let port_text = port.to_string();
    let dir_text = dir.path().to_str().expect("UTF-8 temp path");
    // Not `BinProcess::server`: that waits for the port, and this node must never open it.
    let mut process = BinProcess::start(&["server", "1", &port_text, "--data-dir", dir_text], &[]);
    let status = blocking(move || {
        let status = process.wait_exit();
        (status, process.stderr())
    })
    .await;
    let (status, stderr) = status;
    assert!(!status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "stderr names the file:\n{stderr}"
    );
    assert_eq!(std::fs::read(&path).expect("still there"), contents);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_gracefully_and_the_restart_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv_store_server3.json");
    let data_dir = dir.path().to_path_buf();
    blocking(move || {
        let port = free_port();
        let mut process = BinProcess::server(3, port, &data_dir, &["--save-interval", "3600"]);
        let url = format!("redis://127.0.0.1:{port}/");
        let mut con = sync_connection(&url);
        let () = redis::cmd("SET")
            .arg("persist:1")
            .arg("value1")
            .query(&mut con)
            .expect("SET");
        let () = redis::cmd("SET")
            .arg("persist:2")
            .arg("value2")
            .query(&mut con)
            .expect("SET");
        assert!(!path.exists(), "no periodic save yet");
        process.terminate();
        let status = process.wait_exit();
        assert!(
            status.success(),
            "graceful exit: {status}\n{}",
            process.stderr()
        );
        let entries = snapshot_entries(&read_snapshot(&path));
        assert_eq!(entries.len(), 2, "{entries:?}");

        let port = free_port();
        let process = BinProcess::server(3, port, &data_dir, &[]);
        let log = process.stderr();
        let start_line = log
            .lines()
            .find(|l| l.contains("listening"))
            .unwrap_or_else(|| panic!("no start line in:\n{log}"));
        assert!(
            start_line.contains(&port.to_string())
                && start_line.contains(&path.display().to_string())
                && start_line.contains("2 keys restored"),
            "the start line names the address, data file and keys restored: {start_line}"
        );
        let url = format!("redis://127.0.0.1:{port}/");
        let mut con = sync_connection(&url);
        let v: String = redis::cmd("GET")
            .arg("persist:2")
            .query(&mut con)
            .expect("GET");
        assert_eq!(v, "value2");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_always_leaves_a_valid_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_path_buf();
    blocking(move || {
        let path = data_dir.join("kv_store_server1.json");
        let (mut rng, seed) = Rng::from_time();
        eprintln!("crash test seed {seed}");
        let extra = ["--save-interval", "0.05", "--cleanup-interval", "0.05"];
        let mut expected_keys: Option<usize> = None;
        for round in 0..5 {
            let port = free_port();
            let mut process = BinProcess::server(1, port, &data_dir, &extra);
            let url = format!("redis://127.0.0.1:{port}/");
            if let Some(keys) = expected_keys {
                // The restart restored exactly what the file held.
                let mut con = sync_connection(&url);
                let dbsize: usize = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
                assert_eq!(dbsize, keys, "round {round}: restored key count");
            }

            // A client writing continuously until the process dies.
            let stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let stop = stop.clone();
                let url = url.clone();
                std::thread::spawn(move || {
                    let Ok(mut con) = redis::Client::open(url.as_str())
                        .and_then(|c| c.get_connection_with_timeout(WAIT))
                    else {
                        return 0;
                    };
                    let mut batches = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let mut pipe = redis::pipe();
                        for i in 0..200 {
                            let key = format!("key:{}", (batches * 200 + i) % 3000);
                            let value = format!("round{round}-batch{batches}-{}", "x".repeat(64));
                            pipe.cmd("SET").arg(key).arg(value).ignore();
                        }
                        if pipe.query::<()>(&mut con).is_err() {
                            break;
                        }
                        batches += 1;
                    }
                    batches
                })
            };
            if round == 0 {
                common::wait_until_blocking("the first snapshot", WAIT, || path.exists());
            }
            std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
            process.kill();
            stop.store(true, Ordering::Relaxed);
            let batches = writer.join().expect("writer thread");
            eprintln!("round {round}: killed after {batches} batches of 200 writes");

            let snapshot = read_snapshot(&path);
            let entries = snapshot_entries(&snapshot);
            assert!(
                !entries.is_empty(),
                "round {round}: the snapshot holds the writes"
            );
            assert!(entries.len() <= 3000);
            for (_, key, value) in &entries {
                assert!(
                    key.starts_with("key:") && value.starts_with("round"),
                    "{key}={value}"
                );
            }
            expected_keys = Some(entries.len());
        }
        // The last file restarts too.
        let port = free_port();
        let _process = BinProcess::server(1, port, &data_dir, &[]);
        let url = format!("redis://127.0.0.1:{port}/");
        let mut con = sync_connection(&url);
        let dbsize: usize = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
        assert_eq!(Some(dbsize), expected_keys);
        // Spot-check values against the file.
        let entries = snapshot_entries(&read_snapshot(&path));
        for (_, key, value) in entries.iter().step_by(97) {
            let got: String = redis::cmd("GET").arg(key).query(&mut con).expect("GET");
            assert_eq!(&got, value, "{key}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_whole_cluster_with_one_snapshot_per_node() {
    let root = tempfile::tempdir().expect("tempdir");
    // A data directory that does not exist yet: `minikv cluster` creates it.
    let data_dir = root.path().join("data");
    blocking(move || {
        let mut cluster = ClusterProcess::start_in(&data_dir, &[]);
        for (i, port) in cluster.ports.into_iter().enumerate() {
            let url = format!("redis://127.0.0.1:{port}/");
            let mut con = sync_connection(&url);
            let () = redis::cmd("SET")
                .arg(format!("on-node-{}", i + 1))
                .arg("v")
                .query(&mut con)
                .expect("SET");
        }
        cluster.process.terminate();
        let status = cluster.process.wait_exit();
        assert!(
            status.success(),
            "graceful exit: {status}\n{}",
            cluster.process.stderr()
        );
        for id in 1..=3 {
            let path = data_dir.join(format!("kv_store_server{id}.json"));
            let snapshot = read_snapshot(&path);
            assert_eq!(snapshot["server_id"], id);
            assert_eq!(
                snapshot_entries(&snapshot),
                vec![(0, format!("on-node-{id}"), "v".to_string())]
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_the_port_opens_still_stops_gracefully() {
    // The signal handlers must exist before the port accepts: a stop request at any moment
    // after that is graceful (exit 0), never the default action of SIGTERM.
    blocking(|| {
        for round in 0..20 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let port_text = port.to_string();
            let dir_text = dir.path().to_str().expect("UTF-8 temp path");
            let args = ["server", "1", &port_text, "--data-dir", dir_text];
            let mut process = BinProcess::start(&args, &[]);
            // Poll tightly (not BinProcess's 10 ms) to signal as early as possible.
            let deadline = Instant::now() + WAIT;
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "{}", process.stderr());
                std::thread::sleep(Duration::from_micros(200));
            }
            process.terminate();
            let status = process.wait_exit();
            assert!(
                status.success(),
                "round {round}: {status}\n{}",
                process.stderr()
            );
        }
    })
    .await;
}
