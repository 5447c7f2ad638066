//! Helpers for the client-matrix tests (`clients.rs`, `redis_cli.rs`): a node as a real child
//! process, external programs run with a time limit, and a clear failure when a tool is
//! missing. Used next to `tests/common/mod.rs` (declared as `mod common;` by the same crate).

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::common::{free_port, BinProcess};

/// A `minikv server` child process on an ephemeral port with its own data directory; killed
/// when dropped.
pub struct Node {
    /// The process (dropped before `dir`).
    pub process: BinProcess,
    /// The port it serves RESP and JSON on.
    pub port: u16,
    /// Its data directory.
    pub dir: TempDir,
}

impl Node {
    /// Starts a node and waits (bounded) until it accepts connections.
    pub fn start() -> Node {
        let dir = tempfile::tempdir().expect("create a data directory");
        let port = free_port();
        let process = BinProcess::server(1, port, dir.path(), &[]);
        Node { process, port, dir }
    }

    /// The port as a command-line argument.
    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }
}

/// Where the client scripts and their `node_modules` live.
pub fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Panics with the way to install `what` unless `program args...` runs and exits 0.
pub fn require(what: &str, program: &str, args: &[&str]) {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{what} is missing (`{program} {}` failed): run ./scripts/test.sh, which installs the \
         client tools these tests need",
        args.join(" ")
    );
}

/// A finished external program.
pub struct Run {
    /// What was run, for messages.
    pub what: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// Panics, showing both outputs, unless the program exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "{} failed: {}",
            self.what,
            self.report()
        );
        self
    }

    /// Status and both outputs, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// The last 8 KB of `text`, so a failure message stays readable.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(8 * 1024);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `command` with `input` on its standard input (empty if `None`) and waits for it at
/// most `limit`; a program still running then is killed and the test fails.
pub fn run(command: &mut Command, input: Option<Vec<u8>>, limit: Duration) -> Run {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {what}: {e}; run ./scripts/test.sh to install the client tools")
        });
    // Feed stdin from another thread so a program writing a lot cannot deadlock against us.
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.unwrap_or_default();
        std::thread::spawn(move || {
            // A program that exits early closes the pipe: that shows in its status instead.
            let _ = stdin.write_all(&input);
        })
    });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap_or_else(|e| panic!("waiting for {what}: {e}")),
        Err(_) => {
            kill(pid);
            panic!("{what} did not finish within {limit:?}");
        }
    };
    if let Some(writer) = writer {
        writer.join().expect("stdin writer thread");
    }
    Run {
        what,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// SIGKILL to one process we started, by its id.
pub fn kill(pid: u32) {
    // Already gone is fine.
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}
