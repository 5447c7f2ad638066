//! The shared state of one running node: configuration, store, counters and snapshot file.
//!
//! One `Arc<Node>` is shared by the accept loop, every connection task and the background
//! tasks. It holds no locks of its own: the store shards and atomics do the synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;
use crate::persist::Persister;
use crate::stats::Stats;
use crate::store::Store;

/// Everything a command may need besides its own connection's session.
#[derive(Debug)]
pub struct Node {
    /// The configuration the node was started with.
    pub config: NodeConfig,
    /// The keyspace.
    pub store: Arc<Store>,
    /// Request and connection counters.
    pub stats: Stats,
    /// The snapshot file and the outcome of its last save.
    pub persister: Arc<Persister>,
    /// When the node started (INFO uptime).
    pub started: std::time::Instant,
    /// Cancelled to stop the node (SHUTDOWN, Ctrl+C, tests).
    pub shutdown: CancellationToken,
    /// The port actually bound (differs from the configured one when that was 0).
    pub port: AtomicU64,
    next_client_id: AtomicU64,
}

impl Node {
    /// A node with an empty store for `config`.
    pub fn new(config: NodeConfig) -> Self {
        let persister = Persister::new(config.snapshot_path(), config.id);
        Node {
            store: Arc::new(Store::new(config.databases, config.shards)),
            stats: Stats::default(),
            persister: Arc::new(persister),
            started: std::time::Instant::now(),
            shutdown: CancellationToken::new(),
            port: AtomicU64::new(u64::from(config.port)),
            next_client_id: AtomicU64::new(1),
            config,
        }
    }

    /// A fresh, never reused connection id (CLIENT ID).
    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The port the node listens on.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed) as u16
    }
}
