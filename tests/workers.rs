//! Connection workers (`--threads N`, N > 1) through the real binary: every connection lives
//! on one of N event-loop threads, and what one connection does reaches connections on the
//! other threads (blocking pops woken by a push, pub/sub, CLIENT KILL, WATCH), and SHUTDOWN
//! stops the process with connections open on every thread. The default on this two-core
//! machine is one event loop, so these paths are only exercised here.

mod common;

use std::collections::BTreeSet;

use common::process::{free_port, BinProcess};
use common::redis_rs::{sync::q, sync_connection};
use common::snapshot::{read_snapshot, snapshot_entries};
use common::wait_until_blocking;

const THREADS: usize = 3;

/// The names of the threads of process `pid`.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the threads");
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

fn start(dir: &std::path::Path) -> (BinProcess, u16, String) {
    let port = free_port();
    let node = BinProcess::server(1, port, dir, &["--threads", &THREADS.to_string()]);
    (node, port, format!("redis://127.0.0.1:{port}/"))
}

#[test]
fn connections_are_spread_over_the_worker_threads_and_see_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, _port, url) = start(dir.path());
    let workers: BTreeSet<String> = thread_names(node.pid())
        .into_iter()
        .filter(|n| n.starts_with("minikv-conn-"))
        .collect();
    assert_eq!(workers.len(), THREADS, "one thread per worker: {workers:?}");

    // Twice as many connections as workers, each writing its own key and reading all of them.
    let mut cons: Vec<_> = (0..2 * THREADS).map(|_| sync_connection(&url)).collect();
    for (i, con) in cons.iter_mut().enumerate() {
        let () = q(con, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    for con in cons.iter_mut() {
        for i in 0..2 * THREADS {
            let v: Option<String> = q(con, &["GET", &format!("k{i}")]);
            assert_eq!(v, Some(i.to_string()));
        }
    }
    let clients: String = q(&mut cons[0], &["CLIENT", "LIST"]);
    assert_eq!(clients.lines().count(), 2 * THREADS, "{clients}");

    // A pop blocked on one connection is woken by a push from every other one in turn
    // (with least-loaded placement, consecutive connections sit on different workers).
    for pusher in 1..cons.len() {
        let blocked_url = url.clone();
        let popper = std::thread::spawn(move || {
            let mut con = sync_connection(&blocked_url);
            let got: Option<(String, String)> = q(&mut con, &["BLPOP", "queue", "0"]);
            got
        });
        wait_until_blocking("the pop blocks", common::WAIT, || {
            let info: String = q(&mut cons[0], &["INFO", "clients"]);
            info.contains("blocked_clients:1")
        });
        let pushed: i64 = q(
            &mut cons[pusher],
            &["RPUSH", "queue", &format!("job{pusher}")],
        );
        assert_eq!(pushed, 1);
        let got = popper.join().expect("popper thread");
        assert_eq!(got, Some(("queue".into(), format!("job{pusher}"))));
    }

    // WATCH on one worker sees a write made on another.
    let () = q(&mut cons[1], &["WATCH", "k0"]);
    let () = q(&mut cons[2], &["SET", "k0", "changed"]);
    let () = q(&mut cons[1], &["MULTI"]);
    let _: String = q(&mut cons[1], &["SET", "k0", "lost"]);
    let exec: Option<Vec<String>> = q(&mut cons[1], &["EXEC"]);
    assert_eq!(exec, None, "EXEC aborted by the other worker's write");

    // CLIENT KILL from one worker closes a connection on another.
    let victim: i64 = q(&mut cons[4], &["CLIENT", "ID"]);
    let killed: i64 = q(&mut cons[0], &["CLIENT", "KILL", "ID", &victim.to_string()]);
    assert_eq!(killed, 1);
    let after: redis::RedisResult<String> = redis::cmd("PING").query(&mut cons[4]);
    assert!(after.is_err(), "the killed connection is closed");
    node.kill();
}

#[test]
fn pubsub_reaches_subscribers_on_every_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, _port, url) = start(dir.path());
    let mut subscribers: Vec<_> = (0..THREADS)
        .map(|_| {
            let client = redis::Client::open(url.as_str()).expect("url");
            let con = client.get_connection().expect("connect");
            con.set_read_timeout(Some(common::WAIT))
                .expect("read timeout");
            con
        })
        .collect();
    let mut pubsubs: Vec<_> = subscribers
        .iter_mut()
        .map(|con| {
            let mut ps = con.as_pubsub();
            ps.subscribe("news").expect("subscribe");
            ps
        })
        .collect();
    let mut publisher = sync_connection(&url);
    let delivered: i64 = q(&mut publisher, &["PUBLISH", "news", "hello"]);
    assert_eq!(delivered, THREADS as i64);
    for ps in pubsubs.iter_mut() {
        let msg = ps.get_message().expect("a message");
        let payload: String = msg.get_payload().expect("text");
        assert_eq!(payload, "hello");
    }
    node.kill();
}

#[test]
fn shutdown_stops_the_process_with_connections_on_every_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut node, _port, url) = start(dir.path());
    let mut cons: Vec<_> = (0..2 * THREADS).map(|_| sync_connection(&url)).collect();
    let () = q(&mut cons[0], &["SET", "kept", "v"]);
    // One connection sits in a blocking pop, so a worker has a task waiting on a timer.
    let blocked_url = url.clone();
    let _blocked = std::thread::spawn(move || {
        let mut con = sync_connection(&blocked_url);
        let _: redis::RedisResult<Option<(String, String)>> =
            redis::cmd("BLPOP").arg("nothing").arg(0).query(&mut con);
    });
    wait_until_blocking("the pop blocks", common::WAIT, || {
        let info: String = q(&mut cons[1], &["INFO", "clients"]);
        info.contains("blocked_clients:1")
    });
    let reply: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut cons[2]);
    if let Err(e) = &reply {
        assert!(e.is_connection_dropped() || e.is_io_error(), "{e}");
    }
    let status = node.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
    assert_eq!(
        snapshot_entries(&read_snapshot(&dir.path().join("kv_store_server1.json"))),
        [(0, "kept".to_string(), "v".to_string())]
    );
}
