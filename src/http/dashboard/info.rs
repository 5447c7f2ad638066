//! What the dashboard reads out of a node's `INFO` text: pure functions over strings, so a
//! node that answers garbage yields empty figures, never a panic.
//!
//! Works for minikv and for a real redis-server alike: every figure is optional, and the
//! fields are Redis's names (`connected_clients`, `used_memory`, `db0:keys=...`,
//! `latency_percentiles_usec_<cmd>:p50=...`), with minikv's own additions (`shardN:role=...`,
//! `cluster_migrations_in_progress`) read when present.

use std::collections::HashMap;

use serde::Serialize;

/// `INFO` as `name -> value`, whatever section each line came from.
pub type Fields = HashMap<String, String>;

/// Parses `INFO` text: `name:value` lines; `# Section` headers and blank lines are skipped.
pub fn parse(text: &str) -> Fields {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// A comma-separated `a=1,b=2` value as pairs (the keyspace, shard and latency lines).
pub fn pairs(value: &str) -> Vec<(&str, &str)> {
    value
        .split(',')
        .filter_map(|part| part.split_once('='))
        .collect()
}

/// An unsigned figure, if the field is there and a number.
pub fn number(fields: &Fields, name: &str) -> Option<u64> {
    fields.get(name).and_then(|v| v.parse().ok())
}

/// The node's role in one shard of a replicated minikv cluster (an `INFO replication`
/// `shardN:role=leader,leader=1,term=2,...` line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardRole {
    /// The shard's id (the N of `shardN`).
    pub shard: u64,
    /// `leader`, `follower`, `candidate`, ... as the node says.
    pub role: String,
    /// The node id the node believes leads the shard.
    pub leader: Option<u64>,
    /// The Raft term.
    pub term: Option<u64>,
    /// The last log index applied.
    pub applied: Option<u64>,
    /// The last log index written.
    pub last_log: Option<u64>,
}

/// Every `shardN:` line, by shard id.
pub fn shard_roles(fields: &Fields) -> Vec<ShardRole> {
    let mut roles: Vec<ShardRole> = fields
        .iter()
        .filter_map(|(name, value)| {
            let shard = name.strip_prefix("shard")?.parse::<u64>().ok()?;
            let pairs = pairs(value);
            let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
            Some(ShardRole {
                shard,
                role: get("role")?.to_string(),
                leader: get("leader").and_then(|v| v.parse().ok()),
                term: get("term").and_then(|v| v.parse().ok()),
                applied: get("applied").and_then(|v| v.parse().ok()),
                last_log: get("last_log").and_then(|v| v.parse().ok()),
            })
        })
        .collect();
    roles.sort_by_key(|r| r.shard);
    roles
}

/// Keys and keys with a TTL over every database (`dbN:keys=..,expires=..`).
pub fn keyspace(fields: &Fields) -> (u64, u64) {
    let mut keys = 0u64;
    let mut expires = 0u64;
    for (name, value) in fields {
        let is_db = name
            .strip_prefix("db")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_db {
            continue;
        }
        for (k, v) in pairs(value) {
            let n: u64 = v.parse().unwrap_or(0);
            match k {
                "keys" => keys = keys.saturating_add(n),
                "expires" => expires = expires.saturating_add(n),
                _ => {}
            }
        }
    }
    (keys, expires)
}

/// One command's latency (`INFO latencystats`) and calls (`INFO commandstats`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// The command, lower case (`get`, `client|list`).
    pub cmd: String,
    /// Calls so far, when `INFO commandstats` says.
    pub calls: Option<u64>,
    /// Median latency in microseconds.
    pub p50: Option<f64>,
    /// 99th percentile in microseconds.
    pub p99: Option<f64>,
}

/// Per-command latency percentiles (`latency_percentiles_usec_<cmd>:p50=..,p99=..`) with the
/// calls of `cmdstat_<cmd>:calls=..`, busiest first (by name when calls are unknown), at most
/// `limit` commands.
pub fn latencies(fields: &Fields, limit: usize) -> Vec<Latency> {
    let mut out: Vec<Latency> = fields
        .iter()
        .filter_map(|(name, value)| {
            let cmd = name.strip_prefix("latency_percentiles_usec_")?;
            let figures = pairs(value);
            let get = |key: &str| {
                figures
                    .iter()
                    .find(|(k, _)| *k == key)
                    .and_then(|(_, v)| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite())
            };
            let calls = fields.get(&format!("cmdstat_{cmd}")).and_then(|stat| {
                pairs(stat)
                    .into_iter()
                    .find(|(k, _)| *k == "calls")
                    .and_then(|(_, v)| v.parse().ok())
            });
            Some(Latency {
                cmd: cmd.to_string(),
                calls,
                p50: get("p50"),
                p99: get("p99"),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.calls
            .unwrap_or(0)
            .cmp(&a.calls.unwrap_or(0))
            .then_with(|| a.cmd.cmp(&b.cmd))
    });
    out.truncate(limit);
    out
}

/// Snapshot and log state (`INFO persistence`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Persistence {
    /// Loading a snapshot or log right now.
    pub loading: bool,
    /// A snapshot being written right now.
    pub saving: bool,
    /// Writes since the last snapshot.
    pub changes: Option<u64>,
    /// Unix time of the last successful snapshot.
    pub last_save: Option<u64>,
    /// `ok` or `err`: how the last snapshot went.
    pub last_status: Option<String>,
    /// Whether the append-only log is on.
    pub aof: bool,
    /// `ok` or `err`: how the last log write went.
    pub aof_status: Option<String>,
}

/// The persistence figures of `fields`.
pub fn persistence(fields: &Fields) -> Persistence {
    let flag = |name: &str| number(fields, name) == Some(1);
    Persistence {
        loading: flag("loading"),
        saving: flag("rdb_bgsave_in_progress"),
        changes: number(fields, "rdb_changes_since_last_save"),
        last_save: number(fields, "rdb_last_save_time"),
        last_status: fields.get("rdb_last_bgsave_status").cloned(),
        aof: flag("aof_enabled"),
        aof_status: fields.get("aof_last_write_status").cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIKV: &str = "# Server\r\nredis_version:7.2.4\r\nminikv_version:0.1.0\r\n\
        uptime_in_seconds:4\r\n\r\n# Clients\r\nconnected_clients:3\r\n\r\n# Persistence\r\n\
        loading:0\r\nrdb_changes_since_last_save:9\r\nrdb_bgsave_in_progress:0\r\n\
        rdb_last_save_time:1796104111\r\nrdb_last_bgsave_status:ok\r\naof_enabled:1\r\n\
        aof_last_write_status:ok\r\n\r\n# Replication\r\nrole:master\r\ncluster_enabled:1\r\n\
        shard1:role=leader,leader=1,term=2,applied=1,last_log=1,acked=1:1|2:1|3:1,rebuilds=0\r\n\
        shard2:role=follower,leader=2,term=1,applied=1,last_log=1,acked=,rebuilds=0\r\n\r\n\
        # Keyspace\r\ndb0:keys=21,expires=1,avg_ttl=0\r\ndb3:keys=4,expires=0,avg_ttl=0\r\n";

    #[test]
    fn minikv_info_reads_into_figures() {
        let fields = parse(MINIKV);
        assert_eq!(number(&fields, "connected_clients"), Some(3));
        assert_eq!(keyspace(&fields), (25, 1));
        let roles = shard_roles(&fields);
        assert_eq!(roles.len(), 2);
        assert_eq!(roles[0].role, "leader");
        assert_eq!(roles[0].term, Some(2));
        assert_eq!(roles[1].leader, Some(2));
        let p = persistence(&fields);
        assert!(p.aof && !p.loading);
        assert_eq!(p.changes, Some(9));
        assert_eq!(p.last_status.as_deref(), Some("ok"));
    }

    #[test]
    fn latency_lines_are_ranked_by_calls() {
        let text = "latency_percentiles_usec_get:p50=1.003,p99=3.007,p99.9=5.0\r\n\
            latency_percentiles_usec_set:p50=2.0,p99=8.0\r\n\
            latency_percentiles_usec_info:p50=x\r\n\
            cmdstat_get:calls=10,usec=30\r\ncmdstat_set:calls=99,usec=300\r\n";
        let l = latencies(&parse(text), 2);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].cmd, "set");
        assert_eq!(l[0].calls, Some(99));
        assert_eq!(l[1].p99, Some(3.007));
    }

    #[test]
    fn garbage_yields_nothing() {
        for text in [
            "",
            "\u{0}\u{1}",
            "::::",
            "db:keys=x",
            "shardX:role",
            "dbx0:keys=5",
        ] {
            let fields = parse(text);
            assert_eq!(keyspace(&fields), (0, 0));
            assert!(shard_roles(&fields).is_empty());
            assert!(latencies(&fields, 5).is_empty());
            let _ = persistence(&fields);
        }
    }
}
