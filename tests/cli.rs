//! The `minikv` command as a newcomer meets it in the first hour, through the real binary: bad
//! flags and start-up failures refused with a message in words (the operator commands
//! `rebalance` and `remove-node` too, against a stand-in cluster), the cluster's ready line, the
//! node password taken from the environment, and a stop signal saving every acknowledged write
//! even when standard output and error are pipes nobody reads any more (`minikv cluster 2>&1 |
//! tee log`, whose `tee` the same Ctrl+C stops).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use common::process::{binary, free_port, read_pipe_until, run, BinProcess, ClusterProcess};
use common::raw::resp;
use common::redis_rs::sync::q;
use common::redis_rs::sync_connection;
use common::snapshot::{read_snapshot, read_snapshot_if_written, snapshot_entries};
use common::WAIT;

#[test]
fn sigint_saves_the_last_write_when_stderr_is_a_closed_pipe() {
    node_with_closed_stderr_saves_on(Stop::Interrupt);
}

#[test]
fn sigterm_saves_the_last_write_when_stderr_is_a_closed_pipe() {
    node_with_closed_stderr_saves_on(Stop::Terminate);
}

#[test]
fn ctrl_c_on_a_cluster_piped_into_tee_saves_every_node() {
    let root = tempfile::tempdir().expect("tempdir");
    let data_dir = root.path().join("data");
    // `2>&1 | tee`: standard output and error share one pipe.
    let (reader, writer) = std::io::pipe().expect("pipe");
    let writer_too = writer.try_clone().expect("clone the pipe's write end");
    let mut cluster =
        ClusterProcess::start_in_with(&data_dir, &["--save-interval", "3600"], false, |c| {
            c.stdout(writer_too).stderr(writer);
        });
    read_pipe_until("the cluster's start-up output", reader, WAIT, |out| {
        out.contains("ready: ")
    });
    // `tee` is gone: every line from here on meets a pipe without a reader.
    for (i, port) in cluster.ports.into_iter().enumerate() {
        let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
        let () = q(&mut con, &["SET", &format!("on-node-{}", i + 1), "v"]);
    }
    for id in 1..=3 {
        let path = snapshot_path(&data_dir, id);
        assert!(
            read_snapshot_if_written(&path).is_none(),
            "no periodic save yet"
        );
    }
    cluster.process.interrupt();
    let status = cluster.process.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "Ctrl+C with the pipe closed: {status}"
    );
    for id in 1..=3 {
        assert_eq!(
            snapshot_entries(&read_snapshot(&snapshot_path(&data_dir, id))),
            [(0, format!("on-node-{id}"), "v".to_string())],
            "node {id}"
        );
    }
}

#[test]
fn cluster_prints_a_ready_line_once_every_node_listens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reader, writer) = std::io::pipe().expect("pipe");
    // Without the HTTP port, whose `dashboard:` line would follow (if 8080 is free).
    let cluster = ClusterProcess::start_in_with(dir.path(), &["--no-http"], false, |c| {
        c.stdout(writer);
    });
    let out = read_pipe_until("the ready line", reader, WAIT, |out| out.contains('\n'));
    // Not waited for: every node must already listen when the line appears.
    for port in cluster.ports {
        TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("ready printed, but port {port} refuses: {e}"));
    }
    assert_eq!(
        out,
        format!(
            "ready: try 'minikv client --servers {}' or 'redis-cli -p {}'; Ctrl+C stops and \
             saves\n",
            cluster.servers(),
            cluster.ports[0]
        )
    );
}

#[test]
fn a_closed_stdout_does_not_stop_the_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Closed before the cluster starts: the ready line meets a pipe without a reader.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cluster = ClusterProcess::start_in_with(dir.path(), &[], true, |c| {
        c.stdout(writer);
    });
    // The ready line was written (or failed to be) before the signal is handled.
    cluster.process.terminate();
    let status = cluster.process.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr:\n{}",
        cluster.process.stderr()
    );
}

#[test]
fn cluster_with_no_nodes_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = minikv(&[
        "cluster",
        "--nodes",
        "0",
        "--base-port",
        &free_port().to_string(),
        "--data-dir",
        dir.path().to_str().expect("UTF-8"),
    ]);
    assert_ne!(run.status.code(), Some(0), "{}", run.report());
    assert!(
        run.stderr
            .contains("invalid value '0' for '--nodes <NODES>'")
            && run.stderr.contains("from 1 to 1024"),
        "{}",
        run.report()
    );
}

#[test]
fn bad_flags_exit_non_zero_with_a_message_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_text = dir.path().to_str().expect("UTF-8");
    let port = free_port().to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &["server", "0", &port, "--data-dir", dir_text],
            "invalid value '0' for '<ID>': expected a whole number, 1 or more",
        ),
        (
            &[
                "server",
                "1",
                &port,
                "--data-dir",
                dir_text,
                "--save-interval",
                "-1",
            ],
            "invalid value '-1' for '--save-interval <SAVE_INTERVAL>'",
        ),
        (
            &[
                "server",
                "1",
                &port,
                "--data-dir",
                dir_text,
                "--threads",
                "0",
            ],
            "invalid value '0' for '--threads <THREADS>'",
        ),
        (
            &["client", "--servers", "localhost:7001,nonsense", "get", "k"],
            "'nonsense' is not host:port",
        ),
    ];
    for (args, message) in cases {
        let run = minikv(args);
        assert_ne!(run.status.code(), Some(0), "{args:?}: {}", run.report());
        assert!(run.stderr.contains(message), "{args:?}: {}", run.report());
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        0,
        "nothing was started"
    );
}

#[test]
fn cluster_flags_that_cannot_work_exit_non_zero_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_text = dir.path().to_str().expect("UTF-8");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let list = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let (p1, p4) = (ports[0].to_string(), free_port().to_string());
    let server = |id: &'static str, port: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["server", id, port, "--data-dir", dir_text];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    };
    // Our own checks print one line, `minikv: <message>`; clap's start with `error: <message>`
    // and add its usage lines.
    let cases: Vec<(Vec<String>, String, bool)> = vec![
        (
            server("1", &p1, &["--cluster", &list, "--replicas", "0"]),
            "invalid value '0' for '--replicas <REPLICAS>': expected a whole number from 1 to \
             1024"
                .into(),
            false,
        ),
        (
            server("1", &p1, &["--cluster", &list, "--replicas", "4"]),
            "minikv: --replicas 4 must be between 1 and the number of nodes (3)".into(),
            true,
        ),
        (
            vec![
                "cluster".into(),
                "--replicas".into(),
                "4".into(),
                "--base-port".into(),
                p1.clone(),
                "--data-dir".into(),
                dir_text.into(),
            ],
            "minikv: --replicas 4 must be between 1 and the number of nodes (3)".into(),
            true,
        ),
        (
            server("4", &p4, &["--cluster", &list]),
            "minikv: node id 4 is not in the --cluster list of 3 nodes".into(),
            true,
        ),
        (
            server("1", &p4, &["--cluster", &list]),
            format!(
                "minikv: --cluster entry 1 is 127.0.0.1:{p1} but this node listens on port {p4}"
            ),
            true,
        ),
        (
            server("1", &p1, &["--replicas", "2"]),
            "the following required arguments were not provided:\n  --cluster <HOST:PORT,...>"
                .into(),
            false,
        ),
        (
            server("1", &p1, &["--cluster", "127.0.0.1:1,nonsense"]),
            "minikv: --cluster entry 2 (\"nonsense\") is not HOST:PORT or HOST:PORT@BUSPORT".into(),
            true,
        ),
    ];
    for (args, message, one_line) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = minikv(&args);
        assert_ne!(run.status.code(), Some(0), "{args:?}: {}", run.report());
        assert!(run.stderr.contains(&message), "{args:?}: {}", run.report());
        if one_line {
            assert_eq!(
                run.stderr,
                format!("{message}\n"),
                "{args:?}: one line, nothing else"
            );
        }
    }
    for port in ports.iter().chain([&p4.parse().expect("port")]) {
        assert!(
            TcpStream::connect(("127.0.0.1", *port)).is_err(),
            "nothing listens on {port}"
        );
    }
}

#[test]
fn rebalance_and_remove_node_refuse_bad_flags_naming_them() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["rebalance"],
            "the following required arguments were not provided:\n  --servers <HOST:PORT,...>",
        ),
        (
            &["rebalance", "--servers", "localhost:7001", "--batch", "0"],
            "invalid value '0' for '--batch <SLOTS>': expected a whole number from 1 to 12288",
        ),
        (
            &["rebalance", "--servers", "localhost:7001", "--batch", "-3"],
            "invalid value '-3' for '--batch <SLOTS>'",
        ),
        (
            &["rebalance", "--servers", "localhost:7001,nonsense"],
            "'nonsense' is not host:port",
        ),
        (
            &["remove-node", "--servers", "localhost:7001"],
            "the following required arguments were not provided:\n  <ID>",
        ),
        (
            &["remove-node", "0", "--servers", "localhost:7001"],
            "invalid value '0' for '<ID>': expected a whole number, 1 or more",
        ),
        (
            &["remove-node", "two", "--servers", "localhost:7001"],
            "invalid value 'two' for '<ID>'",
        ),
    ];
    for (args, message) in cases {
        let run = minikv(args);
        assert_ne!(run.status.code(), Some(0), "{args:?}: {}", run.report());
        assert!(run.stderr.contains(message), "{args:?}: {}", run.report());
        assert_eq!(run.stdout, "", "{args:?}: nothing started");
    }
}

#[test]
fn remove_node_of_an_unknown_shard_exits_1_naming_the_shards() {
    let port = fake_slot_cluster();
    let servers = format!("127.0.0.1:{port}");
    let run = minikv(&["remove-node", "9", "--servers", &servers]);
    assert_eq!(run.status.code(), Some(1), "{}", run.report());
    assert_eq!(
        run.stderr,
        "minikv: removing node 9: no shard 9 in the cluster (its shards: 1, 2, 3)\n"
    );
}

#[test]
fn rebalance_of_a_balanced_cluster_says_so_and_exits_0() {
    let port = fake_slot_cluster();
    // The first server refuses connections: the next one is used.
    let servers = format!("127.0.0.1:{},127.0.0.1:{port}", free_port());
    let run = minikv(&["rebalance", "--servers", &servers]);
    run.assert_success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.report());
    assert_eq!(lines[0], "already balanced: 3 shards with 4096 slots each");
    assert!(
        lines[1].starts_with("done: slots=0 keys=0 bytes=0 wire=0 seconds="),
        "{}",
        run.report()
    );
}

#[test]
fn rebalance_with_no_reachable_server_exits_1_at_once() {
    let servers = format!("127.0.0.1:{},127.0.0.1:{}", free_port(), free_port());
    let run = minikv(&["rebalance", "--servers", &servers]);
    assert_eq!(run.status.code(), Some(1), "{}", run.report());
    assert!(
        run.stderr.starts_with(
            "minikv: rebalancing: no server of the list answered CLUSTER SHARDS; the last \
             failure: connection refused by 127.0.0.1:"
        ),
        "{}",
        run.report()
    );
}

/// A stand-in for a replicated cluster of three shards owning 4096 slots each: it answers
/// every command with that `CLUSTER SHARDS` reply (the commands above send nothing else).
/// Returns its port; the thread ends with the test process.
fn fake_slot_cluster() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    let mut reply = "*3\r\n".to_string();
    for shard in 0..3u16 {
        reply += "*6\r\n";
        reply += &bulk("slots");
        reply += &format!("*2\r\n:{}\r\n:{}\r\n", shard * 4096, shard * 4096 + 4095);
        reply += &bulk("shard-index");
        reply += &format!(":{}\r\n", shard + 1);
        reply += &bulk("nodes");
        reply += "*1\r\n*4\r\n";
        reply += &bulk("port");
        reply += &format!(":{port}\r\n");
        reply += &bulk("role");
        reply += &bulk("master");
    }
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let reply = reply.clone();
            std::thread::spawn(move || {
                let mut read = BufReader::new(stream.try_clone().expect("clone the socket"));
                let mut write = stream;
                // One command: `*N`, then N pairs of `$len` and the word.
                let mut line = String::new();
                while read.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let words: usize = line.trim_end().trim_start_matches('*').parse().unwrap_or(0);
                    for _ in 0..words * 2 {
                        line.clear();
                        if read.read_line(&mut line).is_err() {
                            return;
                        }
                    }
                    if write.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

#[test]
fn a_data_directory_that_is_a_file_is_refused_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("afile");
    std::fs::write(&file, "not a directory").expect("write");
    let file_text = file.to_str().expect("UTF-8");
    let run = minikv(&[
        "server",
        "1",
        &free_port().to_string(),
        "--data-dir",
        file_text,
    ]);
    assert_ne!(run.status.code(), Some(0), "{}", run.report());
    assert!(
        run.stderr.contains(&format!(
            "cannot create data directory '{file_text}': a file with that name exists"
        )),
        "{}",
        run.report()
    );
}

#[test]
fn requirepass_from_the_environment_refuses_commands_before_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (port_text, dir_text) = (port.to_string(), dir.path().to_str().expect("UTF-8"));
    let node = BinProcess::start_with(
        &["server", "1", &port_text, "--data-dir", dir_text],
        &[port],
        |c| {
            c.env("MINIKV_REQUIREPASS", "s3cret");
        },
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", node.pid())).expect("cmdline");
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("s3cret"),
        "the password is not on the command line"
    );
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut ask = |args: &[&[u8]]| {
        (&stream).write_all(&resp(args)).expect("send");
        let mut line = String::new();
        reader.read_line(&mut line).expect("reply");
        line
    };
    assert_eq!(ask(&[b"GET", b"k"]), "-NOAUTH Authentication required.\r\n");
    assert!(ask(&[b"AUTH", b"wrong"]).starts_with("-WRONGPASS"));
    assert_eq!(ask(&[b"AUTH", b"s3cret"]), "+OK\r\n");
    assert_eq!(ask(&[b"GET", b"k"]), "$-1\r\n");
}

/// How a test asks a process to stop.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGINT, as Ctrl+C.
    Interrupt,
    /// SIGTERM, as `kill` or systemd.
    Terminate,
}

/// Starts a node whose standard error is a pipe, reads its start-up line and closes the pipe,
/// writes a key (long before the next periodic save), and stops it with `stop`: it must exit
/// 0 with the key in its snapshot.
fn node_with_closed_stderr_saves_on(stop: Stop) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (port_text, dir_text) = (port.to_string(), dir.path().to_str().expect("UTF-8"));
    let (reader, writer) = std::io::pipe().expect("pipe");
    let args = [
        "server",
        "1",
        &port_text,
        "--data-dir",
        dir_text,
        "--save-interval",
        "3600",
    ];
    let mut node = BinProcess::start_with(&args, &[], |c| {
        c.stderr(writer);
    });
    read_pipe_until("the node's start-up line", reader, WAIT, |log| {
        log.contains("listening on")
    });
    // The pipe has no reader now: every log line from here on meets EPIPE.
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let () = q(&mut con, &["SET", "last", "acknowledged"]);
    drop(con);
    let path = snapshot_path(dir.path(), 1);
    assert!(
        read_snapshot_if_written(&path).is_none(),
        "no periodic save yet"
    );
    match stop {
        Stop::Interrupt => node.interrupt(),
        Stop::Terminate => node.terminate(),
    }
    let status = node.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{stop:?} with stderr closed: {status}"
    );
    assert_eq!(
        snapshot_entries(&read_snapshot(&path)),
        [(0, "last".to_string(), "acknowledged".to_string())]
    );
}

/// Node `id`'s snapshot file in `dir`.
fn snapshot_path(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join(format!("kv_store_server{id}.json"))
}

/// Runs `minikv args...` to completion (within [`WAIT`]).
fn minikv(args: &[&str]) -> common::process::Run {
    run(Command::new(binary()).args(args), None, WAIT)
}
