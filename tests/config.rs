//! CONFIG and `--config FILE` through the real binary: a config file starts a node with its
//! settings and command-line flags override it; a bad line stops the start naming the file
//! and line; CONFIG SET timeout / maxclients / requirepass / appendfsync / save change what
//! the node does at once; CONFIG REWRITE writes the file so that a restarted node keeps the
//! settings. (The error texts are compared with redis-server in
//! `tests/differential/config.redis`.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::process::{binary, free_port, BinProcess};
use common::raw::{frame_len, resp_from};
use common::WAIT;

/// A plain RESP connection reading whole frames, each read bounded by [`WAIT`].
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next frame, or `None` once the node closed the connection.
    fn frame(&mut self) -> Option<String> {
        loop {
            if let Some(used) = frame_len(&self.buf, 0) {
                let frame: Vec<u8> = self.buf.drain(..used).collect();
                return Some(String::from_utf8_lossy(&frame).into_owned());
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading a reply: {e}"),
            }
        }
    }

    fn call(&mut self, args: &[&str]) -> String {
        self.stream.write_all(&resp_from(args)).expect("send");
        self.frame()
            .unwrap_or_else(|| panic!("connection closed before the reply to {args:?}"))
    }

    /// CONFIG GET of one parameter: its value.
    fn get(&mut self, name: &str) -> String {
        let reply = self.call(&["CONFIG", "GET", name]);
        let lines: Vec<&str> = reply.split("\r\n").collect();
        assert!(lines.len() >= 5, "CONFIG GET {name}: {reply:?}");
        lines[4].to_string()
    }
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("node.conf");
    std::fs::write(&path, text).expect("write the config file");
    path
}

/// Starts `minikv server 1 [args...]` and waits for `port`.
fn start(port: u16, args: &[&str]) -> BinProcess {
    let mut argv = vec!["server", "1"];
    argv.extend_from_slice(args);
    BinProcess::start(&argv, &[port])
}

/// Polls `check` every 20 ms until it holds, failing after [`WAIT`].
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_config_file_starts_a_node_and_flags_override_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        &format!(
            "# a node\nport {port}\ndir \"{}\"\ntimeout 7\nmaxclients 50\n\
             slowlog-max-len 33\nhash-max-listpack-entries 100\nsave 900 1 300 10\n\
             client-output-buffer-limit pubsub 1mb 512kb 30\n",
            data.display()
        ),
    );
    let config = config.to_str().expect("UTF-8 path");
    // No PORT after the id: the file gives it. --maxclients overrides the file's.
    let _node = start(port, &["--config", config, "--maxclients", "60"]);
    let mut c = Conn::open(port);
    assert_eq!(c.get("timeout"), "7");
    assert_eq!(c.get("maxclients"), "60", "the flag wins over the file");
    assert_eq!(c.get("slowlog-max-len"), "33");
    assert_eq!(c.get("hash-max-listpack-entries"), "100");
    assert_eq!(c.get("save"), "900 1 300 10");
    assert!(c
        .get("client-output-buffer-limit")
        .ends_with("pubsub 1048576 524288 30"));
    assert_eq!(c.get("port"), port.to_string());
    assert!(data.is_dir(), "the file's dir is the data directory");
}

#[test]
fn a_bad_config_line_stops_the_start_naming_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, want) in [
        (
            "port 7001\n\ndaemonize yes\n",
            "node.conf:3: unknown directive 'daemonize'",
        ),
        (
            "timeout 1\nslowlog-max-len lots\n",
            "node.conf:2: slowlog-max-len: argument couldn't",
        ),
        (
            "maxclients 0\n",
            "node.conf:1: maxclients: invalid value '0'",
        ),
    ] {
        let config = write_config(dir.path(), text);
        let mut node = BinProcess::start(
            &[
                "server",
                "1",
                "0",
                "--config",
                config.to_str().expect("UTF-8"),
            ],
            &[],
        );
        let status = node.wait_exit();
        assert!(!status.success(), "{text:?} started");
        assert!(node.stderr().contains(want), "{text:?}: {}", node.stderr());
    }
    // Neither PORT nor a `port` line.
    let config = write_config(dir.path(), "timeout 5\n");
    let mut node = BinProcess::start(
        &["server", "1", "--config", config.to_str().expect("UTF-8")],
        &[],
    );
    assert!(!node.wait_exit().success());
    assert!(node.stderr().contains("no port"), "{}", node.stderr());
}

#[test]
fn config_set_timeout_closes_idle_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _node = BinProcess::server(1, port, dir.path(), &[]);
    let mut admin = Conn::open(port);
    assert_eq!(admin.call(&["CONFIG", "SET", "timeout", "1"]), "+OK\r\n");
    let mut idle = Conn::open(port);
    assert_eq!(idle.call(&["PING"]), "+PONG\r\n");
    let started = Instant::now();
    // The read waits at most WAIT: the node must close the idle client well before.
    assert_eq!(idle.frame(), None, "the idle client was closed");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The admin connection was idle as long, so it is gone too: a new one turns it off.
    drop(admin);
    let mut admin = Conn::open(port);
    assert_eq!(admin.call(&["CONFIG", "SET", "timeout", "0"]), "+OK\r\n");
}

#[test]
fn config_set_maxclients_refuses_the_next_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _node = BinProcess::server(1, port, dir.path(), &[]);
    let mut admin = Conn::open(port);
    assert_eq!(admin.call(&["CONFIG", "SET", "maxclients", "2"]), "+OK\r\n");
    let mut second = Conn::open(port);
    assert_eq!(second.call(&["PING"]), "+PONG\r\n");
    let mut third = Conn::open(port);
    assert_eq!(
        third.frame().as_deref(),
        Some("-ERR max number of clients reached\r\n")
    );
    drop(second);
    // Once a client leaves, there is room again.
    eventually("a client is accepted after one left", || {
        let mut c = Conn::open(port);
        c.stream.write_all(&resp_from(&["PING"])).expect("send");
        c.frame().as_deref() == Some("+PONG\r\n")
    });
    assert_eq!(
        admin.call(&["CONFIG", "SET", "maxclients", "10000"]),
        "+OK\r\n"
    );
}

#[test]
fn config_set_requirepass_asks_new_connections_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _node = BinProcess::server(1, port, dir.path(), &[]);
    let mut admin = Conn::open(port);
    assert_eq!(
        admin.call(&["CONFIG", "SET", "requirepass", "s3cret"]),
        "+OK\r\n"
    );
    // As in Redis: a connection opened without a password stays usable.
    assert_eq!(admin.call(&["SET", "k", "v"]), "+OK\r\n");
    let mut late = Conn::open(port);
    assert!(late.call(&["GET", "k"]).starts_with("-NOAUTH"));
    assert!(late.call(&["AUTH", "wrong"]).starts_with("-WRONGPASS"));
    assert_eq!(late.call(&["AUTH", "s3cret"]), "+OK\r\n");
    assert_eq!(late.call(&["GET", "k"]), "$1\r\nv\r\n");
    // SLOWLOG never shows the password.
    assert_eq!(
        late.call(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]),
        "+OK\r\n"
    );
    assert_eq!(late.call(&["CONFIG", "SET", "requirepass", ""]), "+OK\r\n");
    let log = late.call(&["SLOWLOG", "GET", "10"]);
    assert!(
        !log.contains("s3cret") && log.contains("(redacted)"),
        "{log}"
    );
    let mut open = Conn::open(port);
    assert_eq!(
        open.call(&["GET", "k"]),
        "$1\r\nv\r\n",
        "no password any more"
    );
}

#[test]
fn config_set_appendfsync_and_save_take_effect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _node = BinProcess::server(
        1,
        port,
        dir.path(),
        &["--appendonly", "yes", "--save-interval", "3600"],
    );
    let mut c = Conn::open(port);
    assert_eq!(
        c.call(&["CONFIG", "SET", "appendfsync", "always"]),
        "+OK\r\n"
    );
    assert_eq!(c.get("appendfsync"), "always");
    // Under `always` a write is on disk before its reply.
    let aof = dir.path().join("kv_store_server1.aof");
    for i in 0..20 {
        let before = std::fs::metadata(&aof).expect("the log exists").len();
        assert_eq!(c.call(&["SET", &format!("k{i}"), "v"]), "+OK\r\n");
        let after = std::fs::metadata(&aof).expect("the log exists").len();
        assert!(
            after > before,
            "write {i} was in the file when acknowledged"
        );
    }
    // A shorter save rule re-arms the saver: the snapshot appears within about a second.
    let snapshot = dir.path().join("kv_store_server1.json");
    assert!(!snapshot.exists());
    assert_eq!(c.call(&["CONFIG", "SET", "save", "1 1"]), "+OK\r\n");
    eventually("a snapshot under save 1 1", || snapshot.exists());
    assert_eq!(c.call(&["CONFIG", "SET", "save", ""]), "+OK\r\n");
    assert_eq!(c.get("save"), "");
}

#[test]
fn config_rewrite_keeps_settings_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let original = format!(
        "# my node\nport {port}\ntimeout 3\n\n# logging\nslowlog-max-len 10\ncleanup-interval 2\n"
    );
    let config = write_config(dir.path(), &original);
    let config_arg = config.to_str().expect("UTF-8");
    let data = dir.path().to_str().expect("UTF-8");
    let args = ["--config", config_arg, "--data-dir", data];
    let mut node = start(port, &args);
    let mut c = Conn::open(port);
    let set = c.call(&[
        "CONFIG",
        "SET",
        "timeout",
        "9",
        "slowlog-max-len",
        "77",
        "maxclients",
        "500",
        "requirepass",
        "pass word",
    ]);
    assert_eq!(set, "+OK\r\n");
    assert_eq!(c.call(&["CONFIG", "REWRITE"]), "+OK\r\n");
    let text = std::fs::read_to_string(&config).expect("read the file");
    assert!(
        text.starts_with(&format!(
            "# my node\nport {port}\ntimeout 9\n\n# logging\nslowlog-max-len 77\n\
             cleanup-interval 2\n# Generated by CONFIG REWRITE\n"
        )),
        "{text}"
    );
    assert!(text.contains("\nmaxclients 500\n") && text.contains("\nrequirepass \"pass word\"\n"));
    node.terminate();
    assert!(node.wait_exit().success());
    let _node = start(port, &args);
    let mut c = Conn::open(port);
    assert!(c.call(&["PING"]).starts_with("-NOAUTH"));
    assert_eq!(c.call(&["AUTH", "pass word"]), "+OK\r\n");
    assert_eq!(c.get("timeout"), "9");
    assert_eq!(c.get("slowlog-max-len"), "77");
    assert_eq!(c.get("maxclients"), "500");
}

#[test]
fn cluster_takes_a_config_file_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = common::process::free_ports(2);
    let config = write_config(
        dir.path(),
        &format!("port {base}\nno-http yes\nslowlog-max-len 5\ntimeout 4\n"),
    );
    let data = dir.path().join("data");
    let _cluster = BinProcess::start(
        &[
            "cluster",
            "--nodes",
            "2",
            "--config",
            config.to_str().expect("UTF-8"),
            "--data-dir",
            data.to_str().expect("UTF-8"),
        ],
        &[base, base + 1],
    );
    for port in [base, base + 1] {
        let mut c = Conn::open(port);
        assert_eq!(c.get("slowlog-max-len"), "5");
        assert_eq!(c.get("timeout"), "4");
    }
    // The binary's own help names the flag.
    let help = std::process::Command::new(binary())
        .args(["server", "--help"])
        .output()
        .expect("run --help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config <FILE>"));
}
