//! SHUTDOWN through the real binary, as `redis-cli shutdown` sends it: the node saves, closes
//! the connection without a reply and the process exits 0; NOSAVE leaves the disk alone; a
//! snapshot that cannot be written refuses the shutdown (the node keeps serving) unless FORCE;
//! in `minikv cluster` the process exits once every node was shut down. (The error texts and
//! the refusal inside MULTI are also compared with redis-server in
//! `tests/differential/transactions.redis`.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use common::process::{free_port, BinProcess, ClusterProcess};
use common::redis_rs::{sync::q, sync_connection};
use common::snapshot::{read_snapshot, read_snapshot_if_written, snapshot_entries};

/// Sends `command` (RESP) and returns everything the node wrote until it closed the
/// connection.
fn send_until_closed(port: u16, command: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(common::WAIT))
        .expect("read timeout");
    let words: Vec<&str> = command.split(' ').collect();
    let mut request = format!("*{}\r\n", words.len());
    for w in &words {
        request.push_str(&format!("${}\r\n{w}\r\n", w.len()));
    }
    stream.write_all(request.as_bytes()).expect("send");
    let mut out = Vec::new();
    // A reset instead of a clean close still ends the read: what came before is in `out`.
    let _ = stream.read_to_end(&mut out);
    out
}

fn snapshot(dir: &Path) -> std::path::PathBuf {
    dir.join("kv_store_server1.json")
}

#[test]
fn shutdown_saves_closes_without_a_reply_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut node = BinProcess::server(1, port, dir.path(), &["--save-interval", "3600"]);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let () = q(&mut con, &["SET", "kept", "v"]);
    let reply = send_until_closed(port, "SHUTDOWN");
    assert!(
        reply.is_empty(),
        "no reply: {:?}",
        String::from_utf8_lossy(&reply)
    );
    let status = node.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
    assert_eq!(
        snapshot_entries(&read_snapshot(&snapshot(dir.path()))),
        [(0, "kept".to_string(), "v".to_string())]
    );
    // It comes back with the key.
    let mut node = BinProcess::server(1, port, dir.path(), &[]);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let value: Option<String> = q(&mut con, &["GET", "kept"]);
    assert_eq!(value.as_deref(), Some("v"));
    node.kill();
}

#[test]
fn replies_before_a_pipelined_shutdown_go_out_and_nothing_after_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut node = BinProcess::server(1, port, dir.path(), &["--save-interval", "3600"]);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(common::WAIT))
        .expect("read timeout");
    // One write: SET's reply is sent before the connection waits for SHUTDOWN's snapshot;
    // the SET after SHUTDOWN never runs.
    let batch = "*3\r\n$3\r\nSET\r\n$4\r\nkept\r\n$1\r\nv\r\n*1\r\n$8\r\nSHUTDOWN\r\n\
                 *3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\nv\r\n";
    stream.write_all(batch.as_bytes()).expect("send");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    assert_eq!(String::from_utf8_lossy(&out), "+OK\r\n");
    assert_eq!(node.wait_exit().code(), Some(0), "{}", node.stderr());
    assert_eq!(
        snapshot_entries(&read_snapshot(&snapshot(dir.path()))),
        [(0, "kept".to_string(), "v".to_string())]
    );
}

#[test]
fn shutdown_nosave_writes_no_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut node = BinProcess::server(1, port, dir.path(), &["--save-interval", "3600"]);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let () = q(&mut con, &["SET", "lost", "v"]);
    assert!(send_until_closed(port, "SHUTDOWN NOSAVE NOW").is_empty());
    assert_eq!(node.wait_exit().code(), Some(0), "{}", node.stderr());
    assert!(read_snapshot_if_written(&snapshot(dir.path())).is_none());
}

#[test]
fn a_snapshot_that_cannot_be_written_refuses_shutdown_unless_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut node = BinProcess::server(1, port, dir.path(), &["--save-interval", "3600"]);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let () = q(&mut con, &["SET", "k", "v"]);
    // A directory where the snapshot file goes: the rename over it fails (even for root).
    std::fs::create_dir(snapshot(dir.path())).expect("block the snapshot path");
    let refused: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut con);
    let error = refused.expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("Errors trying to SHUTDOWN. Check logs."),
        "{error}"
    );
    let pong: String = q(&mut con, &["PING"]);
    assert_eq!(pong, "PONG", "still serving");
    assert!(send_until_closed(port, "SHUTDOWN FORCE").is_empty());
    assert_eq!(node.wait_exit().code(), Some(0), "{}", node.stderr());
}

#[test]
fn abort_and_syntax_errors_are_answered_as_redis_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut node = BinProcess::server(1, port, dir.path(), &[]);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    for (command, error) in [
        (vec!["SHUTDOWN", "ABORT"], "No shutdown in progress."),
        (vec!["SHUTDOWN", "ABORT", "NOW"], "syntax error"),
        (vec!["SHUTDOWN", "SAVE", "NOSAVE"], "syntax error"),
        (vec!["SHUTDOWN", "LATER"], "syntax error"),
    ] {
        let result: redis::RedisResult<()> =
            redis::cmd(command[0]).arg(&command[1..]).query(&mut con);
        let e = result.expect_err("an error");
        assert!(e.to_string().contains(error), "{command:?}: {e}");
    }
    let pong: String = q(&mut con, &["PING"]);
    assert_eq!(pong, "PONG");
    node.kill();
}

#[test]
fn a_cluster_process_exits_once_every_node_is_shut_down() {
    let mut cluster = ClusterProcess::start(&["--no-http"]);
    let [a, b, c] = cluster.ports;
    assert!(send_until_closed(a, "SHUTDOWN").is_empty());
    // The others still serve.
    let mut con = sync_connection(&format!("redis://127.0.0.1:{b}/"));
    let pong: String = q(&mut con, &["PING"]);
    assert_eq!(pong, "PONG");
    assert!(
        TcpStream::connect(("127.0.0.1", a)).is_err(),
        "node 1 stopped"
    );
    assert!(send_until_closed(b, "SHUTDOWN").is_empty());
    assert!(send_until_closed(c, "SHUTDOWN NOSAVE").is_empty());
    assert_eq!(cluster.process.wait_exit().code(), Some(0));
}
