//! Shared helpers for the integration tests. Here: in-process nodes on ephemeral ports, bounded
//! waits and a seedable random generator. In the submodules:
//!
//! - [`process`]: child processes: the `minikv` binary (a node, a cluster, the client),
//!   `redis-server`, and external programs run with a time limit;
//! - [`raw`]: raw sockets, RESP request builders and frame scanning, the JSON connection;
//! - [`redis_rs`]: redis-rs connections, word-list commands (`q`, `qerr`), INFO parsing;
//! - [`snapshot`]: reading snapshot files; [`store`]: comparing stores entry by entry;
//! - [`raft`]: Raft groups (waiting for an agreed leader); [`pki`]: a CA and a node certificate;
//! - [`linearizability`]: the linearizability checker for register-per-key histories;
//! - [`netns`]: network namespaces on a bridge, partitions and heals;
//! - [`nemesis`]: a cluster of real processes under faults, with workers recording histories;
//! - [`tmux`]: a terminal (tmux) for interactive programs: typing, pasting, reading the screen.
//!
//! Every node binds `127.0.0.1:0` (or a port just found free) and keeps its snapshot in its own
//! temporary directory, so tests never share a port, a file or a global server.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

pub mod linearizability;
pub mod nemesis;
pub mod netns;
pub mod pki;
pub mod process;
pub mod raft;
pub mod raw;
pub mod redis_rs;
pub mod snapshot;
pub mod store;
pub mod tmux;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minikv::node::Node;
use minikv::{ClientConfig, ClusterClient, NodeConfig, Server};
use tempfile::TempDir;
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

/// A session for a connection registered with `node`, as `server::conn` builds one: for
/// tests that run commands through `Session::execute` without a socket.
pub fn session(node: &Node) -> minikv::cmd::Session {
    minikv::cmd::Session::new(Arc::new(minikv::node::ClientHandle::new(
        node.next_client_id(),
        "127.0.0.1:40000".into(),
        "127.0.0.1:7001".into(),
        node.shutdown.child_token(),
    )))
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

    /// A generator with a given seed (0 is replaced: xorshift would stay at 0).
    pub fn seeded(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next value in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}
