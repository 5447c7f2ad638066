//! Node configuration: a plain struct with defaults (command-line parsing lives in `main.rs`),
//! the redis.conf-style file reader and CONFIG REWRITE's writer ([`mod@file`]), and the settings
//! CONFIG SET changes at run time ([`live`]).

pub mod file;
pub mod live;

use std::path::PathBuf;
use std::time::Duration;

use crate::aof::FsyncPolicy;
use crate::protocol::json::JsonLimits;
use crate::protocol::resp::RespLimits;
use crate::tls::TlsConfig;

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
    /// Redis's `requirepass`: when set, a connection must AUTH with it before any other
    /// command, and sends only small requests until then.
    pub requirepass: Option<String>,
    /// Redis's `protected-mode`: with no password, refuse clients that are not on loopback.
    pub protected_mode: bool,
    /// Redis's `timeout`: close a connection idle this long (`None`, i.e. 0, never does).
    pub idle_timeout: Option<Duration>,
    /// RESP decoding limits.
    pub resp_limits: RespLimits,
    /// JSON decoding limits.
    pub json_limits: JsonLimits,
    /// Keep the append-only log `kv_store_server{ID}.aof` (`--appendonly yes`).
    pub appendonly: bool,
    /// When the append-only log is fsynced.
    pub appendfsync: FsyncPolicy,
    /// Refuse writes (MISCONF) while the last snapshot failed, as Redis's option of that name.
    pub stop_writes_on_bgsave_error: bool,
    /// Serve TLS only on the port (`--tls-cert`, `--tls-key`, `--tls-ca`), as Redis's
    /// `tls-port`; `None` serves plain TCP.
    pub tls: Option<TlsConfig>,
    /// Part of a replicated cluster (`--cluster`): the shards' Raft groups hold the data, in
    /// `raft-node{ID}/` under the data directory, instead of the snapshot file.
    pub cluster: Option<crate::cluster::ClusterSpec>,
    /// Join a running replicated cluster through one of its nodes (`--join`).
    pub join: Option<crate::cluster::operate::JoinSpec>,
    /// The config file the node was started with (`--config`): CONFIG REWRITE writes it.
    pub config_file: Option<PathBuf>,
    /// Run-time parameters to set at start, in order, through CONFIG SET's setter (the config
    /// file's `slowlog-max-len 256`, ...): a bad one stops the start, naming its origin.
    pub params: Vec<StartParam>,
}

/// One run-time parameter given at start (see [`NodeConfig::params`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartParam {
    /// The parameter's name, as CONFIG SET takes it.
    pub name: String,
    /// Its value, as CONFIG SET takes it (the words of a config line joined by spaces).
    pub value: String,
    /// Where it came from, for the error that stops the start: `FILE:LINE`.
    pub origin: String,
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
            requirepass: None,
            protected_mode: true,
            idle_timeout: None,
            resp_limits: RespLimits::default(),
            json_limits: JsonLimits::default(),
            appendonly: false,
            appendfsync: FsyncPolicy::EverySec,
            stop_writes_on_bgsave_error: false,
            tls: None,
            cluster: None,
            join: None,
            config_file: None,
            params: Vec::new(),
        }
    }
}

impl NodeConfig {
    /// Whether the node is part of a replicated cluster (`--cluster` or `--join`).
    pub fn clustered(&self) -> bool {
        self.cluster.is_some() || self.join.is_some()
    }

    /// The append-only log: `kv_store_server{ID}.aof` in the data directory.
    pub fn aof_path(&self) -> PathBuf {
        self.data_dir
            .join(format!("kv_store_server{}.aof", self.id))
    }

    /// The snapshot file: `kv_store_server{ID}.json` in the data directory, as the spec names it.
    pub fn snapshot_path(&self) -> PathBuf {
        self.data_dir
            .join(format!("kv_store_server{}.json", self.id))
    }
}
