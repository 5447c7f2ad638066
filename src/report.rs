//! The node's report: every figure INFO and STATS show (and, later, the HTTP `/metrics`
//! endpoint), read in one place into plain data.
//!
//! [`Report::gather`] reads the counters, the store, the persister, the append-only log and
//! the process (`/proc`), and returns values only: no locks, references or handles survive
//! it, so a reader may keep, compare or send a report freely. Formatting belongs to the
//! readers (`cmd::server` writes INFO's text and STATS's map); nothing here builds text.
//!
//! A figure that is fixed for a node without the feature behind it (no replication, no
//! blocking commands, no memory limit) is still a field, with its fixed value, so a reader
//! never has to know which figures minikv measures and which it cannot yet have.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::node::Node;
use crate::stats::{CommandFigures, StatsSnapshot};

/// The Redis version clients are told they are talking to (HELLO, INFO). minikv implements
/// Redis 7 semantics; clients use this to pick features.
pub const REDIS_VERSION: &str = "7.2.4";

/// A point-in-time snapshot of one node, in INFO's sections.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// What runs: versions, ids, process, port, uptime.
    pub server: Server,
    /// Connections.
    pub clients: Clients,
    /// Memory use and limits.
    pub memory: Memory,
    /// Snapshots and the append-only log.
    pub persistence: Persistence,
    /// Request, connection and lookup counters since start (or CONFIG RESETSTAT).
    pub stats: StatsSnapshot,
    /// The node's place in replication.
    pub replication: Replication,
    /// CPU time the process used.
    pub cpu: Cpu,
    /// Live keys per database.
    pub keyspace: Keyspace,
    /// Pub/sub channels and patterns with subscribers (INFO `stats`).
    pub pubsub: PubSubCounts,
    /// Every command called or refused at least once since start (or CONFIG RESETSTAT), in
    /// table order (INFO `commandstats`, `latencystats`).
    pub commands: Vec<CommandFigures>,
}

/// The pub/sub figures of INFO `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PubSubCounts {
    /// Channels with at least one subscriber (`pubsub_channels`).
    pub channels: usize,
    /// Distinct patterns subscribed to (`pubsub_patterns`).
    pub patterns: usize,
}

/// INFO `server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The Redis version minikv claims ([`REDIS_VERSION`]).
    pub redis_version: &'static str,
    /// minikv's own version (the crate's).
    pub version: &'static str,
    /// Always `standalone`: minikv nodes do not form a Redis Cluster.
    pub mode: &'static str,
    /// The node id (`minikv server ID PORT`).
    pub server_id: u64,
    /// The operating system (`std::env::consts::OS`).
    pub os: &'static str,
    /// Width of a pointer, in bits.
    pub arch_bits: u32,
    /// This process's id.
    pub process_id: u32,
    /// The port the node listens on.
    pub tcp_port: u16,
    /// Time since the node started.
    pub uptime: Duration,
}

/// INFO `clients`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clients {
    /// Connections open now.
    pub connected: u64,
    /// The configured connection limit.
    pub max: usize,
    /// Connections waiting in a blocking command: always 0, minikv has none.
    pub blocked: u64,
}

/// INFO `memory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// Bytes the allocator has handed out (glibc's `mallinfo2`; RSS where unavailable): what
    /// `maxmemory` is checked against.
    pub used_bytes: u64,
    /// The most `used_bytes` seen.
    pub peak_bytes: u64,
    /// Resident set size of the process (0 where `/proc` is unavailable).
    pub rss_bytes: u64,
    /// The memory limit (`maxmemory`; 0: none).
    pub max_bytes: u64,
    /// What happens at the limit (`maxmemory-policy`).
    pub eviction_policy: &'static str,
    /// Bytes the eviction check leaves out (a replicated cluster's Raft logs in memory).
    pub not_counted_bytes: u64,
}

/// INFO `persistence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// A snapshot is being loaded: always false, loading finishes before the port opens.
    pub loading: bool,
    /// Changes since the last successful snapshot.
    pub changes_since_save: u64,
    /// A snapshot is being written now.
    pub save_in_progress: bool,
    /// Unix seconds of the last successful snapshot (or of start).
    pub last_save_unix: i64,
    /// Whether the last snapshot attempt succeeded.
    pub last_save_ok: bool,
    /// How long the last snapshot took.
    pub last_save_duration: Duration,
    /// Successful snapshots since start.
    pub saves: u64,
    /// The snapshot file.
    pub snapshot_file: PathBuf,
    /// The append-only log, when enabled.
    pub aof: Option<AofStatus>,
}

/// The append-only log's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofStatus {
    /// The last write or fsync error, while writes are failing.
    pub last_error: Option<String>,
}

/// INFO `replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// `master`, or in a replicated cluster `slave` when this node leads no shard.
    pub role: String,
    /// Replicas attached: 0 outside a cluster (the cluster's lines are in `cluster`).
    pub connected_replicas: u64,
    /// In a replicated cluster: one line per shard this node replicates, and more.
    pub cluster: Vec<(String, String)>,
    /// In a replicated cluster: every shard this node replicates (empty outside one).
    pub shards: Vec<ShardStatus>,
    /// In a replicated cluster: slot moves in progress (0 outside one).
    pub migrations: u64,
}

/// One shard a node of a replicated cluster replicates, as its Raft group member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatus {
    /// The shard (0-based).
    pub shard: usize,
    /// `leader`, `starting` (leads, not caught up yet), `follower` or `candidate` (no leader
    /// known).
    pub role: &'static str,
    /// The leader's node id (0: none known).
    pub leader: u64,
    /// The Raft term.
    pub term: u64,
    /// The last log index applied to the store here.
    pub applied: u64,
    /// The last log index in this member's log.
    pub last_log: u64,
    /// On the leader: each member and the log index it acknowledged (`None`: not heard from
    /// this term). Empty elsewhere.
    pub acked: Vec<(u64, Option<u64>)>,
    /// Times this member rebuilt the shard from its group (after losing leadership with
    /// writes unconfirmed).
    pub rebuilds: u64,
}

impl ShardStatus {
    /// Log entries this member holds but has not applied yet: its commit lag as it can see
    /// it (the leader's own last index counts on the leader; a follower's log follows the
    /// leader's).
    pub fn apply_lag(&self) -> u64 {
        self.last_log.saturating_sub(self.applied)
    }
}

/// INFO `cpu`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpu {
    /// Seconds spent in user mode (0 where `/proc` is unavailable).
    pub user_secs: f64,
    /// Seconds spent in the kernel on the process's behalf.
    pub sys_secs: f64,
}

/// INFO `keyspace`, plus STATS's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    /// Every database, empty ones included, in index order.
    pub dbs: Vec<DbKeys>,
    /// Keys removed because their TTL passed (read or swept), since start or CONFIG
    /// RESETSTAT (INFO `expired_keys`).
    pub expired: u64,
    /// Keys evicted to stay under `maxmemory`, since start or CONFIG RESETSTAT.
    pub evicted: u64,
}

/// The live keys of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbKeys {
    /// The database index (`SELECT`).
    pub index: usize,
    /// Live keys.
    pub keys: u64,
    /// Live keys with a TTL.
    pub expires: u64,
    /// Their average remaining TTL in milliseconds, as Redis's `avg_ttl` (0 without TTLs).
    pub avg_ttl_ms: u64,
}

impl Report {
    /// Reads every figure of `node`; `now` decides which keys count as expired.
    ///
    /// Takes each shard lock, the append-only log's lock and the counters one at a time and
    /// briefly, as INFO always did; the figures are therefore each current but not one atomic
    /// cut of the node (a key written meanwhile may show in one count and not another).
    pub fn gather(node: &Node, now: Instant) -> Report {
        let stats = node.stats.snapshot();
        let save = node.persister.status();
        let (user_secs, sys_secs) = cpu_seconds();
        Report {
            server: Server {
                redis_version: REDIS_VERSION,
                version: env!("CARGO_PKG_VERSION"),
                mode: "standalone",
                server_id: node.config.id,
                os: std::env::consts::OS,
                arch_bits: usize::BITS,
                process_id: std::process::id(),
                tcp_port: node.port(),
                uptime: node.started.elapsed(),
            },
            clients: Clients {
                connected: stats.connected_clients,
                max: node.settings.maxclients(),
                blocked: node.blocking.blocked_clients() as u64,
            },
            memory: {
                let used_bytes = node.memory.used_now();
                Memory {
                    used_bytes,
                    peak_bytes: node.memory.peak().max(used_bytes),
                    rss_bytes: rss_bytes(),
                    max_bytes: node.memory.limit(),
                    eviction_policy: node.memory.policy().name(),
                    not_counted_bytes: node.memory.not_counted(),
                }
            },
            persistence: Persistence {
                loading: false,
                changes_since_save: node.persister.changes_since_save(&node.store),
                save_in_progress: save.in_progress,
                last_save_unix: save.last_save_unix,
                last_save_ok: save.last_save_ok,
                last_save_duration: Duration::from_millis(save.last_duration_ms),
                saves: save.saves,
                snapshot_file: node.persister.path().to_path_buf(),
                aof: node.aof.get().map(|aof| AofStatus {
                    last_error: aof.last_error(),
                }),
            },
            stats,
            commands: node.stats.commands.snapshot(),
            pubsub: PubSubCounts {
                channels: node.pubsub.channel_count(),
                patterns: node.pubsub.pattern_count(),
            },
            replication: match node.cluster() {
                None => Replication {
                    role: "master".to_string(),
                    connected_replicas: 0,
                    cluster: Vec::new(),
                    shards: Vec::new(),
                    migrations: 0,
                },
                Some(cluster) => {
                    let mut lines = crate::cluster::admin::replication_lines(cluster);
                    let role = if lines.is_empty() {
                        "master".to_string()
                    } else {
                        lines.remove(0).1
                    };
                    Replication {
                        role,
                        connected_replicas: 0,
                        cluster: lines,
                        shards: crate::cluster::admin::shard_status(cluster),
                        migrations: cluster.table().moves.len() as u64,
                    }
                }
            },
            cpu: Cpu {
                user_secs,
                sys_secs,
            },
            keyspace: keyspace(node, now),
        }
    }
}

/// Every database's live keys, and the expired total (one pass over the shards).
fn keyspace(node: &Node, now: Instant) -> Keyspace {
    let mut expired = 0;
    let dbs = node
        .store
        .dbs()
        .iter()
        .enumerate()
        .map(|(index, db)| {
            let counts = db.key_counts(now);
            expired += counts.expired;
            DbKeys {
                index,
                keys: counts.keys as u64,
                expires: counts.expires as u64,
                avg_ttl_ms: u64::try_from(counts.avg_ttl.as_millis()).unwrap_or(u64::MAX),
            }
        })
        .collect();
    Keyspace {
        dbs,
        expired,
        evicted: node.memory.evicted(),
    }
}

impl Keyspace {
    /// Live keys in every database (STATS `total_keys`).
    pub fn total_keys(&self) -> u64 {
        self.dbs.iter().map(|db| db.keys).sum()
    }

    /// Live keys with a TTL in every database (STATS `keys_with_ttl`).
    pub fn total_expires(&self) -> u64 {
        self.dbs.iter().map(|db| db.expires).sum()
    }
}

/// Resident set size of this process: `VmRSS` of `/proc/self/status`, which the kernel gives
/// in kB whatever the page size (0 where unavailable).
fn rss_bytes() -> u64 {
    crate::memory::alloc::rss_bytes()
}

/// User and system CPU seconds of this process from `/proc/self/stat` (0 where unavailable).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime, in clock ticks of USER_HZ, which Linux fixes at 100 for /proc.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::NodeConfig;
    use crate::stats::StatKind;

    fn node_with_keys(now: Instant) -> Node {
        let node = Node::new(NodeConfig {
            id: 7,
            port: 7007,
            databases: 4,
            shards: 8,
            max_clients: 42,
            data_dir: PathBuf::from("/nonexistent/minikv-report-test"),
            ..NodeConfig::default()
        });
        let put = |db: usize, key: &str, ttl: Option<Duration>| {
            let db = node.store.db(db).expect("database exists");
            let deadline = ttl.map(|t| now + t);
            db.shard(key.as_bytes())
                .put(key.as_bytes(), b"v", deadline, now);
            node.store.mark_dirty(1);
        };
        put(0, "a", None);
        put(0, "b", Some(Duration::from_secs(100)));
        put(0, "gone", Some(Duration::from_secs(1)));
        put(2, "c", None);
        node
    }

    #[test]
    fn gather_counts_live_keys_per_database() {
        let now = Instant::now();
        let node = node_with_keys(now);
        // Two seconds on: "gone" has expired and must not be counted anywhere.
        let report = Report::gather(&node, now + Duration::from_secs(2));
        let dbs: Vec<(usize, u64, u64)> = report
            .keyspace
            .dbs
            .iter()
            .map(|d| (d.index, d.keys, d.expires))
            .collect();
        assert_eq!(dbs, vec![(0, 2, 1), (1, 0, 0), (2, 1, 0), (3, 0, 0)]);
        // "b" had 100 s at `now`, 98 s two seconds on; "gone" no longer counts.
        assert_eq!(report.keyspace.dbs[0].avg_ttl_ms, 98_000);
        assert_eq!(report.keyspace.dbs[2].avg_ttl_ms, 0);
        assert_eq!(report.keyspace.total_keys(), 3);
        assert_eq!(report.keyspace.total_expires(), 1);
    }

    #[test]
    fn gather_reads_config_counters_and_persistence() {
        let now = Instant::now();
        let node = node_with_keys(now);
        node.stats.record(StatKind::Get);
        node.stats.record(StatKind::Set);
        node.stats.record_lookup(true);
        let _open = node.stats.connection_opened();
        let report = Report::gather(&node, now);

        assert_eq!(report.server.server_id, 7);
        assert_eq!(report.server.tcp_port, 7007);
        assert_eq!(report.server.redis_version, REDIS_VERSION);
        assert_eq!(report.server.process_id, std::process::id());
        assert_eq!(report.clients.connected, 1);
        assert_eq!(report.clients.max, 42);
        assert_eq!(report.stats.total_requests, 2);
        assert_eq!((report.stats.get, report.stats.set), (1, 1));
        assert_eq!(report.stats.keyspace_hits, 1);
        assert_eq!(report.stats.connections_received, 1);

        let p = &report.persistence;
        assert_eq!(p.changes_since_save, 4);
        assert_eq!(
            (p.saves, p.last_save_ok, p.save_in_progress),
            (0, true, false)
        );
        assert_eq!(
            p.snapshot_file,
            PathBuf::from("/nonexistent/minikv-report-test/kv_store_server7.json")
        );
        assert_eq!(p.aof, None, "appendonly is off");
        assert_eq!(report.replication.connected_replicas, 0);
    }

    #[test]
    fn gather_is_a_detached_copy() {
        let now = Instant::now();
        let node = node_with_keys(now);
        let before = Report::gather(&node, now);
        node.stats.record(StatKind::Delete);
        node.store
            .db(3)
            .expect("db 3")
            .shard(b"d")
            .put(b"d", b"v", None, now);
        // The earlier report does not follow the node.
        assert_eq!(before.stats.delete, 0);
        assert_eq!(before.keyspace.total_keys(), 4);
        let after = Report::gather(&node, now);
        assert_eq!(after.stats.delete, 1);
        assert_eq!(after.keyspace.total_keys(), 5);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_figures_come_from_proc() {
        assert!(rss_bytes() > 0);
        let (user, sys) = cpu_seconds();
        assert!(user >= 0.0 && sys >= 0.0);
    }
}
