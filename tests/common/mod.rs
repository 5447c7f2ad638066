//! Shared helpers for the integration tests: in-process nodes on ephemeral ports, the real
//! `minikv` binary as a child process, raw-socket helpers and bounded waits.
//!
//! Every node binds `127.0.0.1:0` (or a port just found free) and keeps its snapshot in its own
//! temporary directory, so tests never share a port, a file or a global server.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minikv::node::Node;
use minikv::{ClientConfig, ClusterClient, NodeConfig, Server};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Upper bound for any single wait in the tests: generous, since CI machines are slow, but
/// finite so that a broken node fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);

/// A node running in this process, shut down when dropped.
pub struct TestNode {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its data directory; clone it to restart a node on the same snapshot.
    pub dir: Arc<TempDir>,
    /// Its shared state (store, stats, shutdown token).
    pub node: Arc<Node>,
    /// Keys restored from the snapshot at start.
    pub restored: usize,
    task: Option<JoinHandle<minikv::Result<()>>>,
}

impl TestNode {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:port`, as the cluster client and the REPL take it.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// A redis-rs URL for this node.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Its snapshot file.
    pub fn snapshot_path(&self) -> PathBuf {
        self.node.config.snapshot_path()
    }

    /// Stops the node gracefully (drain, final snapshot) and waits for it; returns its data
    /// directory so a new node can be started on the same snapshot.
    pub async fn stop(mut self) -> Arc<TempDir> {
        self.node.shutdown.cancel();
        let task = self.task.take().expect("node task present until stop");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("node stops within the wait bound")
            .expect("node task did not panic")
            .expect("node stopped cleanly and wrote its final snapshot");
        self.dir.clone()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if self.task.take().is_some() {
            // The task drains and exits on its own; the test runtime reaps it.
            self.node.shutdown.cancel();
        }
    }
}

/// The configuration every test node starts from: id 1, an ephemeral port on loopback, the
/// given data directory, and no periodic snapshot within a test's lifetime (tests that need
/// one set `save_interval` themselves).
pub fn test_config(dir: &Path) -> NodeConfig {
    NodeConfig {
        id: 1,
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: dir.to_path_buf(),
        save_interval: Duration::from_secs(3600),
        ..NodeConfig::default()
    }
}

/// Starts a node in a fresh temporary directory; `tweak` adjusts the configuration.
pub async fn spawn_node(tweak: impl FnOnce(&mut NodeConfig)) -> TestNode {
    let dir = Arc::new(tempfile::tempdir().expect("create a temporary data directory"));
    spawn_node_in(dir, tweak).await
}

/// Starts a node whose data directory is `dir` (restores any snapshot in it).
pub async fn spawn_node_in(dir: Arc<TempDir>, tweak: impl FnOnce(&mut NodeConfig)) -> TestNode {
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let server = Server::bind(config).await.expect("test node binds");
    let addr = server.local_addr().expect("bound address");
    let node = server.node();
    let restored = server.restored();
    let task = tokio::spawn(server.run());
    TestNode {
        addr,
        dir,
        node,
        restored,
        task: Some(task),
    }
}

/// Starts `n` nodes with ids 1..=n, each with its own data directory.
pub async fn spawn_cluster(n: usize) -> Vec<TestNode> {
    let mut nodes = Vec::with_capacity(n);
    for id in 1..=n {
        nodes.push(spawn_node(|c| c.id = id as u64).await);
    }
    nodes
}

/// A cluster-client configuration for `nodes`, in order (index 0 is server 1).
pub fn client_config(nodes: &[TestNode]) -> ClientConfig {
    ClientConfig {
        servers: nodes.iter().map(TestNode::host_port).collect(),
        ..ClientConfig::default()
    }
}

/// A cluster client for `nodes` with the default (spec) retry policy.
pub fn cluster_client(nodes: &[TestNode]) -> ClusterClient {
    ClusterClient::new(client_config(nodes))
}

/// Runs blocking code (the sync redis client, std sockets) off the async runtime, and
/// re-raises its panic with the original message.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Polls `check` every 10 ms until it returns true; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A bounded polling loop for waits whose check needs `&mut` state (a connection):
/// `let d = Deadline::new("what"); loop { if done { break } d.tick().await }`.
pub struct Deadline {
    at: tokio::time::Instant,
    what: String,
}

impl Deadline {
    /// A deadline [`WAIT`] from now for the condition described by `what`.
    pub fn new(what: impl Into<String>) -> Deadline {
        Deadline {
            at: tokio::time::Instant::now() + WAIT,
            what: what.into(),
        }
    }

    /// Panics if the deadline passed, else sleeps 10 ms before the next check.
    pub async fn tick(&self) {
        assert!(
            tokio::time::Instant::now() < self.at,
            "timed out after {WAIT:?} waiting for {}",
            self.what
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The blocking twin of [`wait_until`].
pub fn wait_until_blocking(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Awaits `fut`, failing the test (naming `what`) if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

// ---------------------------------------------------------------------------------------------
// Raw sockets
// ---------------------------------------------------------------------------------------------

/// Opens a raw TCP connection to `addr`.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    within("connecting", TcpStream::connect(addr))
        .await
        .expect("connect to the node")
}

/// Writes `bytes` and flushes.
pub async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.expect("write to the node");
    stream.flush().await.expect("flush to the node");
}

/// Reads exactly as many bytes as `expected` has and asserts they are equal.
pub async fn expect_bytes(stream: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0u8; expected.len()];
    within("reading the expected reply", stream.read_exact(&mut got))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "reading {:?}: {e}",
                String::from_utf8_lossy(expected).into_owned()
            )
        });
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "raw reply"
    );
}

/// Reads until the peer closes the connection.
pub async fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    within(
        "the node closing the connection",
        stream.read_to_end(&mut out),
    )
    .await
    .expect("read until the node closes");
    out
}

/// A JSON-protocol connection: requests out, one reply line in per request.
pub struct JsonConn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl JsonConn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> JsonConn {
        let (read, writer) = connect(addr).await.into_split();
        JsonConn {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Sends raw bytes as they are (no newline added).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write request");
        self.writer.flush().await.expect("flush request");
    }

    /// Sends one request object (no trailing newline, like the spec's Python client) and
    /// returns the reply object.
    pub async fn request(&mut self, request: serde_json::Value) -> serde_json::Value {
        let text = serde_json::to_vec(&request).expect("serialise request");
        self.send_raw(&text).await;
        self.reply().await
    }

    /// Reads one reply line and parses it; the line must end with `\n`.
    pub async fn reply(&mut self) -> serde_json::Value {
        let line = self.line().await;
        assert!(
            line.ends_with('\n'),
            "reply not newline-terminated: {line:?}"
        );
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?} is not JSON: {e}"))
    }

    /// Reads one raw line (empty at end of stream).
    pub async fn line(&mut self) -> String {
        let mut line = String::new();
        within("a JSON reply line", self.reader.read_line(&mut line))
            .await
            .expect("read reply line");
        line
    }

    /// Half-closes the connection (no more requests).
    pub async fn shutdown_write(&mut self) {
        self.writer.shutdown().await.expect("shutdown write half");
    }

    /// Asserts the node closed the connection: the next read is end of stream.
    pub async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        within(
            "the node closing the connection",
            self.reader.read_to_end(&mut rest),
        )
        .await
        .expect("read until close");
        assert!(
            rest.is_empty(),
            "expected the connection to close, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------------

/// Path of the `minikv` binary cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_minikv")
}

/// A port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// The first of `n` consecutive ports that were all free a moment ago.
pub fn free_ports(n: u16) -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base.checked_add(n).is_none() {
            continue;
        }
        let held: Vec<_> = (0..n)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == n as usize {
            return base;
        }
    }
    panic!("no {n} consecutive free ports found");
}

/// A `minikv` child process, killed (SIGKILL) when dropped. Its stderr goes to a file so a
/// chatty node can never block on a full pipe.
pub struct BinProcess {
    child: Child,
    stderr_path: PathBuf,
    _log_dir: TempDir,
}

impl BinProcess {
    /// Starts `minikv args...` and, if `ports` is not empty, waits until every port accepts
    /// connections (failing early with the process's stderr if it exits instead).
    pub fn start(args: &[&str], ports: &[u16]) -> BinProcess {
        let log_dir = tempfile::tempdir().expect("create a log directory");
        let stderr_path = log_dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("create the stderr log");
        let child = Command::new(binary())
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn the minikv binary");
        let mut process = BinProcess {
            child,
            stderr_path,
            _log_dir: log_dir,
        };
        for &port in ports {
            process.wait_accepting(port);
        }
        process
    }

    /// Starts `minikv server <id> <port> --data-dir <dir> extra...` and waits for the port.
    pub fn server(id: u64, port: u16, dir: &Path, extra: &[&str]) -> BinProcess {
        let (id, port_text) = (id.to_string(), port.to_string());
        let dir = dir.to_str().expect("UTF-8 temp path");
        let mut args = vec!["server", &id, &port_text, "--data-dir", dir];
        args.extend_from_slice(extra);
        BinProcess::start(&args, &[port])
    }

    /// Waits until `port` accepts a connection.
    pub fn wait_accepting(&mut self, port: u16) {
        let deadline = Instant::now() + WAIT;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                panic!(
                    "minikv exited with {status} before accepting on port {port}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "minikv did not accept on port {port} within {WAIT:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        // Already exited is fine: there is nothing left to kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (a graceful stop) through the system `kill` command.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit on its own, within [`WAIT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "minikv did not exit within {WAIT:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for BinProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The output of a finished `minikv client` run.
pub struct ClientRun {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `minikv client args...` with `input` piped to its standard input (not a terminal)
/// and waits, within [`WAIT`], for it to finish.
pub fn run_client(args: &[&str], input: &str) -> ClientRun {
    use std::io::Write as _;
    let mut child = Command::new(binary())
        .arg("client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn minikv client");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_owned();
    // Write from another thread: a large output must not deadlock against our input.
    let writer = std::thread::spawn(move || {
        // The client may exit (`exit`) before reading everything: a broken pipe is fine.
        let _ = stdin.write_all(input.as_bytes());
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| {
            // Do not leave a hung client behind.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("minikv client did not finish within {WAIT:?}")
        })
        .expect("collect the client's output");
    writer.join().expect("stdin writer thread");
    ClientRun {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("client output is UTF-8"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A small, seedable pseudo-random generator (xorshift64*) so tests can pick "random"
/// moments without a dependency, and print the seed to reproduce a failure.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock.
    pub fn from_time() -> (Rng, u64) {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
        (Rng(seed), seed)
    }

    /// The next value in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}
