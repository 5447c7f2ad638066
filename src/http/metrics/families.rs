//! Every metric family `/metrics` exports, in one place: name, type, help and where its
//! samples come from in each node's [`Report`](crate::report::Report).
//!
//! Counters are named without `_total` here: the encoder appends it (OpenMetrics). Every
//! family is written even when it has no samples yet (no command called, no cluster), so the
//! set of families does not depend on the traffic.

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::NodeFigures;
use crate::stats::commands::{bucket_bound_us, BUCKETS};

/// A sample's labels besides `node`.
type Labels = Vec<(&'static str, String)>;

/// A sample's value.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(u64::from(v))
    }
}

/// Writes the family `name` of `kind` (gauge or counter) with one sample per node, or
/// several when `samples` gives a node more than one (each with its extra labels).
fn family<V: Into<Value>>(
    encoder: &mut DescriptorEncoder,
    nodes: &[NodeFigures],
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl Fn(&NodeFigures) -> Vec<(Labels, V)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for node in nodes {
        for (extra, value) in samples(node) {
            let mut labels: Labels = vec![("node", node.id.to_string())];
            labels.extend(extra);
            let mut sample = metric.encode_family(&labels)?;
            match (kind, value.into()) {
                (MetricType::Counter, Value::Int(v)) => {
                    sample.encode_counter::<NoLabelSet, u64, u64>(&v, None)?
                }
                (MetricType::Counter, Value::Float(v)) => {
                    sample.encode_counter::<NoLabelSet, f64, f64>(&v, None)?
                }
                (_, Value::Int(v)) => sample.encode_gauge(&v)?,
                (_, Value::Float(v)) => sample.encode_gauge(&v)?,
            }
        }
    }
    Ok(())
}

/// A gauge with one unlabelled sample per node.
fn gauge<V: Into<Value>>(
    encoder: &mut DescriptorEncoder,
    nodes: &[NodeFigures],
    name: &str,
    help: &str,
    value: impl Fn(&NodeFigures) -> V,
) -> Result<(), std::fmt::Error> {
    family(encoder, nodes, name, help, MetricType::Gauge, |n| {
        vec![(Vec::new(), value(n))]
    })
}

/// A counter with one unlabelled sample per node.
fn counter<V: Into<Value>>(
    encoder: &mut DescriptorEncoder,
    nodes: &[NodeFigures],
    name: &str,
    help: &str,
    value: impl Fn(&NodeFigures) -> V,
) -> Result<(), std::fmt::Error> {
    family(encoder, nodes, name, help, MetricType::Counter, |n| {
        vec![(Vec::new(), value(n))]
    })
}

/// Every family, for `nodes`.
pub(super) fn encode(
    nodes: &[NodeFigures],
    e: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    server(nodes, e)?;
    commands(nodes, e)?;
    keyspace(nodes, e)?;
    persistence(nodes, e)?;
    cluster(nodes, e)
}

/// The node itself: up, uptime, clients, memory, CPU, connections, traffic.
fn server(nodes: &[NodeFigures], e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    gauge(
        e,
        nodes,
        "up",
        "Whether the node is serving (1) or shutting down (0).",
        |n| n.up,
    )?;
    gauge(
        e,
        nodes,
        "uptime_in_seconds",
        "Seconds since the node started.",
        |n| n.report.server.uptime.as_secs(),
    )?;
    gauge(
        e,
        nodes,
        "connected_clients",
        "Client connections open now.",
        |n| n.report.clients.connected,
    )?;
    gauge(
        e,
        nodes,
        "max_clients",
        "The configured connection limit (maxclients).",
        |n| n.report.clients.max as u64,
    )?;
    gauge(
        e,
        nodes,
        "blocked_clients",
        "Clients waiting in a blocking command (BLPOP and friends).",
        |n| n.report.clients.blocked,
    )?;
    gauge(
        e,
        nodes,
        "memory_used_bytes",
        "Resident set size of the process serving the node (minikv has no allocator \
         statistics; nodes of one process share it).",
        |n| n.report.memory.rss_bytes,
    )?;
    gauge(
        e,
        nodes,
        "memory_max_bytes",
        "The memory limit (0: none).",
        |n| n.report.memory.max_bytes,
    )?;
    counter(
        e,
        nodes,
        "cpu_user_seconds",
        "User CPU time of the process serving the node.",
        |n| n.report.cpu.user_secs,
    )?;
    counter(
        e,
        nodes,
        "cpu_sys_seconds",
        "System CPU time of the process serving the node.",
        |n| n.report.cpu.sys_secs,
    )?;
    counter(
        e,
        nodes,
        "connections_received",
        "Client connections accepted.",
        |n| n.report.stats.connections_received,
    )?;
    counter(
        e,
        nodes,
        "rejected_connections",
        "Client connections refused (maxclients, protected mode).",
        |n| n.report.stats.rejected_connections,
    )?;
    counter(
        e,
        nodes,
        "net_input_bytes",
        "Bytes read from client connections.",
        |n| n.report.stats.net_input_bytes,
    )?;
    counter(
        e,
        nodes,
        "net_output_bytes",
        "Bytes written to client connections.",
        |n| n.report.stats.net_output_bytes,
    )?;
    gauge(
        e,
        nodes,
        "pubsub_channels",
        "Pub/sub channels with at least one subscriber.",
        |n| n.report.pubsub.channels as u64,
    )?;
    gauge(
        e,
        nodes,
        "pubsub_patterns",
        "Pub/sub patterns with at least one subscriber.",
        |n| n.report.pubsub.patterns as u64,
    )
}

/// Requests: totals, per command, and the latency histogram.
fn commands(nodes: &[NodeFigures], e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    counter(
        e,
        nodes,
        "commands_processed",
        "Requests handled, refused ones included (INFO total_commands_processed).",
        |n| n.report.stats.total_requests,
    )?;
    let per_command = |value: fn(&crate::stats::CommandFigures) -> Value| {
        move |n: &NodeFigures| -> Vec<(Labels, Value)> {
            n.report
                .commands
                .iter()
                .map(|c| (vec![("cmd", c.name.to_string())], value(c)))
                .collect()
        }
    };
    family(
        e,
        nodes,
        "commands",
        "Calls of each command that ran, failed ones included (INFO commandstats calls).",
        MetricType::Counter,
        per_command(|c| c.calls.into()),
    )?;
    family(
        e,
        nodes,
        "commands_duration_seconds",
        "Time spent running each command (INFO commandstats usec).",
        MetricType::Counter,
        per_command(|c| (c.usec as f64 / 1e6).into()),
    )?;
    family(
        e,
        nodes,
        "commands_failed_calls",
        "Calls of each command that ran and answered an error.",
        MetricType::Counter,
        per_command(|c| c.failed.into()),
    )?;
    family(
        e,
        nodes,
        "commands_rejected_calls",
        "Calls of each command refused before running (arity, NOAUTH, MISCONF).",
        MetricType::Counter,
        per_command(|c| c.rejected.into()),
    )?;
    let mut metric = e.encode_descriptor(
        "command_duration_seconds",
        "Latency of each command, from its parsed request to its reply being ready.",
        None,
        MetricType::Histogram,
    )?;
    let bounds: Vec<f64> = (0..BUCKETS)
        .map(|k| bucket_bound_us(k).map_or(f64::INFINITY, |us| us as f64 / 1e6))
        .collect();
    for node in nodes {
        for c in &node.report.commands {
            if c.histogram_count() == 0 {
                continue;
            }
            let labels: Labels = vec![("node", node.id.to_string()), ("cmd", c.name.to_string())];
            let buckets: Vec<(f64, u64)> = bounds
                .iter()
                .copied()
                .zip(c.histogram.iter().copied())
                .collect();
            metric
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    c.usec as f64 / 1e6,
                    c.histogram_count(),
                    &buckets,
                    None,
                )?;
        }
    }
    Ok(())
}

/// Keys: lookups, per-database counts, expiry and eviction.
fn keyspace(nodes: &[NodeFigures], e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    counter(
        e,
        nodes,
        "keyspace_hits",
        "Key lookups that found their key.",
        |n| n.report.stats.keyspace_hits,
    )?;
    counter(
        e,
        nodes,
        "keyspace_misses",
        "Key lookups that did not find their key.",
        |n| n.report.stats.keyspace_misses,
    )?;
    let per_db = |value: fn(&crate::report::DbKeys) -> Value| {
        move |n: &NodeFigures| -> Vec<(Labels, Value)> {
            n.report
                .keyspace
                .dbs
                .iter()
                .map(|db| (vec![("db", format!("db{}", db.index))], value(db)))
                .collect()
        }
    };
    family(
        e,
        nodes,
        "db_keys",
        "Live keys in each database.",
        MetricType::Gauge,
        per_db(|db| db.keys.into()),
    )?;
    family(
        e,
        nodes,
        "db_keys_expiring",
        "Live keys with a TTL in each database.",
        MetricType::Gauge,
        per_db(|db| db.expires.into()),
    )?;
    family(
        e,
        nodes,
        "db_avg_ttl_seconds",
        "Average remaining TTL of the keys that have one, in each database (0: none).",
        MetricType::Gauge,
        per_db(|db| (db.avg_ttl_ms as f64 / 1e3).into()),
    )?;
    counter(
        e,
        nodes,
        "expired_keys",
        "Keys removed because their TTL passed (on access or by the sweep).",
        |n| n.report.keyspace.expired,
    )?;
    counter(
        e,
        nodes,
        "evicted_keys",
        "Keys evicted to stay under maxmemory.",
        |n| n.report.keyspace.evicted,
    )
}

/// Snapshots and the append-only log.
fn persistence(nodes: &[NodeFigures], e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    gauge(
        e,
        nodes,
        "loading_dump_file",
        "Whether the node is loading its snapshot (always 0 while serving).",
        |n| n.report.persistence.loading,
    )?;
    gauge(
        e,
        nodes,
        "rdb_changes_since_last_save",
        "Changes to the keyspace since the last successful snapshot.",
        |n| n.report.persistence.changes_since_save,
    )?;
    gauge(
        e,
        nodes,
        "rdb_bgsave_in_progress",
        "Whether a snapshot is being written now.",
        |n| n.report.persistence.save_in_progress,
    )?;
    gauge(
        e,
        nodes,
        "rdb_last_save_timestamp_seconds",
        "Unix time of the last successful snapshot (or of the start).",
        |n| n.report.persistence.last_save_unix.max(0) as u64,
    )?;
    gauge(
        e,
        nodes,
        "rdb_last_bgsave_status",
        "Whether the last snapshot attempt succeeded (1) or failed (0).",
        |n| n.report.persistence.last_save_ok,
    )?;
    gauge(
        e,
        nodes,
        "rdb_last_bgsave_duration_sec",
        "How long the last snapshot took, in seconds.",
        |n| n.report.persistence.last_save_duration.as_secs_f64(),
    )?;
    counter(
        e,
        nodes,
        "rdb_saves",
        "Successful snapshots since start.",
        |n| n.report.persistence.saves,
    )?;
    gauge(
        e,
        nodes,
        "aof_enabled",
        "Whether the append-only log is on.",
        |n| n.report.persistence.aof.is_some(),
    )?;
    gauge(
        e,
        nodes,
        "aof_last_write_status",
        "Whether the append-only log's writes succeed (1), or fail (0); 1 when it is off.",
        |n| {
            n.report
                .persistence
                .aof
                .as_ref()
                .is_none_or(|a| a.last_error.is_none())
        },
    )?;
    gauge(
        e,
        nodes,
        "aof_rewrite_in_progress",
        "Whether the append-only log is being rewritten: always 0 (minikv compacts the log \
         after each snapshot instead of rewriting it).",
        |_| 0u64,
    )
}

/// A replicated cluster (`--cluster`): shards, leadership, Raft positions, migrations. Only
/// nodes of such a cluster have samples.
fn cluster(nodes: &[NodeFigures], e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let clustered = |n: &NodeFigures| !n.report.replication.cluster.is_empty();
    gauge(
        e,
        nodes,
        "cluster_enabled",
        "Whether the node is part of a replicated cluster (--cluster).",
        clustered,
    )?;
    family(
        e,
        nodes,
        "cluster_migrations_in_progress",
        "Slot moves in progress in the cluster, as this node's copy of the slot table says.",
        MetricType::Gauge,
        |n| {
            if clustered(n) {
                vec![(Vec::new(), n.report.replication.migrations)]
            } else {
                Vec::new()
            }
        },
    )?;
    let per_shard = |value: fn(&crate::report::ShardStatus) -> Value| {
        move |n: &NodeFigures| -> Vec<(Labels, Value)> {
            n.report
                .replication
                .shards
                .iter()
                .map(|s| (vec![("shard", (s.shard + 1).to_string())], value(s)))
                .collect()
        }
    };
    family(
        e,
        nodes,
        "shard_leader",
        "Whether this node leads the shard (1) and serves its writes.",
        MetricType::Gauge,
        per_shard(|s| (s.role == "leader").into()),
    )?;
    family(
        e,
        nodes,
        "shard_role",
        "This node's role in each shard it replicates: 1 for the role it has (leader, \
         starting, follower, candidate), 0 for the others.",
        MetricType::Gauge,
        |n| {
            let mut out: Vec<(Labels, Value)> = Vec::new();
            for s in &n.report.replication.shards {
                for role in ["leader", "starting", "follower", "candidate"] {
                    let labels = vec![("shard", (s.shard + 1).to_string()), ("role", role.into())];
                    out.push((labels, (s.role == role).into()));
                }
            }
            out
        },
    )?;
    family(
        e,
        nodes,
        "shard_leader_id",
        "The node id of each shard's leader as this node knows it (0: none known).",
        MetricType::Gauge,
        per_shard(|s| s.leader.into()),
    )?;
    family(
        e,
        nodes,
        "raft_term",
        "The Raft term of each shard's group, as this member sees it.",
        MetricType::Gauge,
        per_shard(|s| s.term.into()),
    )?;
    family(
        e,
        nodes,
        "raft_last_log_index",
        "The last index in this member's Raft log of each shard.",
        MetricType::Gauge,
        per_shard(|s| s.last_log.into()),
    )?;
    family(
        e,
        nodes,
        "raft_applied_index",
        "The last Raft log index of each shard applied to this node's store.",
        MetricType::Gauge,
        per_shard(|s| s.applied.into()),
    )?;
    family(
        e,
        nodes,
        "raft_commit_lag_entries",
        "Log entries of each shard this member holds but has not applied yet.",
        MetricType::Gauge,
        per_shard(|s| s.apply_lag().into()),
    )?;
    family(
        e,
        nodes,
        "raft_replica_lag_entries",
        "On a shard's leader: entries each member's log is behind the leader's (the whole log \
         for a member not heard from this term).",
        MetricType::Gauge,
        |n| {
            let mut out: Vec<(Labels, Value)> = Vec::new();
            for s in &n.report.replication.shards {
                for (member, acked) in &s.acked {
                    let labels = vec![
                        ("shard", (s.shard + 1).to_string()),
                        ("member", member.to_string()),
                    ];
                    let lag = s.last_log.saturating_sub(acked.unwrap_or(0));
                    out.push((labels, lag.into()));
                }
            }
            out
        },
    )?;
    family(
        e,
        nodes,
        "shard_rebuilds",
        "Times this member rebuilt a shard from its group after losing leadership with \
         writes unconfirmed.",
        MetricType::Counter,
        per_shard(|s| s.rebuilds.into()),
    )
}
