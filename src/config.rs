//! Node configuration: a plain struct with defaults. Command-line parsing lives in `main.rs`.

use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::json::JsonLimits;
use crate::protocol::resp::RespLimits;

/// Everything a node needs to know to run.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's id, as in the spec's `python kv_server.py 1 7001` (1-based).
    pub id: u64,
    /// Address to bind; `127.0.0.1` serves this machine only, `0.0.0.0` every interface.
    pub host: String,
    /// TCP port for both protocols; 0 picks a free one (tests).
    pub port: u16,
    /// Directory of the snapshot file.
    pub data_dir: PathBuf,
    /// How often the snapshot is written when something changed.
    pub save_interval: Duration,
    /// How often expired keys are swept.
    pub cleanup_interval: Duration,
    /// Number of databases (`SELECT 0..n-1`).
    pub databases: usize,
    /// Shards per database.
    pub shards: usize,
    /// Connections served at once; more are answered with an error and closed.
    pub max_clients: usize,
    /// RESP decoding limits.
    pub resp_limits: RespLimits,
    /// JSON decoding limits.
    pub json_limits: JsonLimits,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: 1,
            host: "127.0.0.1".to_string(),
            port: 7001,
            data_dir: PathBuf::from("."),
            save_interval: Duration::from_secs(10),
            cleanup_interval: Duration::from_secs(5),
            databases: 16,
            shards: 256,
            max_clients: 10_000,
            resp_limits: RespLimits::default(),
            json_limits: JsonLimits::default(),
        }
    }
}

impl NodeConfig {
    /// The snapshot file: `kv_store_server{ID}.json` in the data directory, as the spec names it.
    pub fn snapshot_path(&self) -> PathBuf {
        self.data_dir
            .join(format!("kv_store_server{}.json", self.id))
    }
}
