//! Server commands: STATS, INFO, COMMAND, TIME, LASTSAVE, SAVE, BGSAVE, WAIT (SHUTDOWN is in
//! [`super::shutdown`], CONFIG in [`super::config`]).
//!
//! ```text
//! STATS                                   -> map of the spec's counters (minikv extension)
//! INFO [section ...]                      -> Redis INFO text
//! COMMAND | COMMAND COUNT | COMMAND INFO name... | COMMAND DOCS [name...] | COMMAND LIST
//! TIME / LASTSAVE / SAVE / BGSAVE [SCHEDULE] / WAIT numreplicas timeout
//! DEBUG SLEEP seconds | DEBUG OBJECT key / SLOWLOG GET [n] | LEN | RESET / MONITOR
//! ```

use std::fmt::Write as _;

use bytes::Bytes;

use super::args::{int, is, text};
use super::{docs, table, CommandError, CommandSpec, Ctx};
use crate::protocol::Reply;
use crate::report::Report;

pub(super) fn stats(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    let report = Report::gather(ctx.node, ctx.now);
    let (s, keyspace) = (&report.stats, &report.keyspace);
    let field = |name: &'static str, n: u64| (Reply::text(name), Reply::Int(n as i64));
    Ok(Reply::Map(vec![
        field("total_requests", s.total_requests),
        field("get", s.get),
        field("set", s.set),
        field("delete", s.delete),
        field("expire", s.expire),
        field("total_keys", keyspace.total_keys()),
        field("keys_with_ttl", keyspace.total_expires()),
    ]))
}

/// CLUSTER INFO / SHARDS / MYID (see [`crate::cluster::admin`]).
pub(super) fn cluster(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    Ok(crate::cluster::admin::cluster_command(ctx.node, args))
}

pub(super) fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let report = Report::gather(ctx.node, ctx.now);
    Ok(Reply::Verbatim(Bytes::from(info_text(&report, &args[1..]))))
}

/// Every INFO section, in Redis 7's order; `true` for those of the default set.
const SECTIONS: [(&str, bool); 10] = [
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("commandstats", false),
    ("latencystats", false),
    ("keyspace", true),
];

/// INFO's text for the sections `wanted` names (case-insensitive), as Redis 7 picks them:
/// none or `default` gives the default set, `all` and `everything` give every section
/// (`commandstats` and `latencystats` included), other words name sections.
pub fn info_text(report: &Report, wanted: &[Bytes]) -> String {
    let wanted: Vec<String> = wanted
        .iter()
        .map(|a| text(a).to_ascii_lowercase())
        .collect();
    let every = wanted.iter().any(|w| w == "all" || w == "everything");
    let defaults = wanted.is_empty() || wanted.iter().any(|w| w == "default");
    let mut out = String::new();
    for (section, default) in SECTIONS {
        if every || (defaults && default) || wanted.iter().any(|w| w == section) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            info_section(report, section, &mut out);
        }
    }
    out
}

/// Writes one INFO section of `report` in Redis's `# Title` + `name:value` lines.
fn info_section(report: &Report, section: &str, out: &mut String) {
    let (title, fields): (&str, Vec<(String, String)>) = match section {
        "server" => {
            let s = &report.server;
            let uptime = s.uptime.as_secs();
            (
                "Server",
                vec![
                    f("redis_version", s.redis_version),
                    f("redis_mode", s.mode),
                    f("minikv_version", s.version),
                    f("minikv_server_id", s.server_id),
                    f("os", s.os),
                    f("arch_bits", s.arch_bits),
                    f("process_id", s.process_id),
                    f("tcp_port", s.tcp_port),
                    f("uptime_in_seconds", uptime),
                    f("uptime_in_days", uptime / 86400),
                ],
            )
        }
        "clients" => {
            let c = &report.clients;
            (
                "Clients",
                vec![
                    f("connected_clients", c.connected),
                    f("maxclients", c.max),
                    f("blocked_clients", c.blocked),
                ],
            )
        }
        "memory" => {
            let m = &report.memory;
            (
                "Memory",
                vec![
                    f("used_memory", m.used_bytes),
                    f("used_memory_human", human_bytes(m.used_bytes)),
                    f("used_memory_rss", m.rss_bytes),
                    f("used_memory_rss_human", human_bytes(m.rss_bytes)),
                    f("used_memory_peak", m.peak_bytes),
                    f("used_memory_peak_human", human_bytes(m.peak_bytes)),
                    f("maxmemory", m.max_bytes),
                    f("maxmemory_human", human_bytes(m.max_bytes)),
                    f("maxmemory_policy", m.eviction_policy),
                    f("mem_not_counted_for_evict", m.not_counted_bytes),
                    f(
                        "mem_fragmentation_ratio",
                        format!("{:.2}", m.rss_bytes as f64 / m.used_bytes.max(1) as f64),
                    ),
                    f("mem_allocator", "libc"),
                ],
            )
        }
        "persistence" => {
            let p = &report.persistence;
            let aof_failing = p.aof.as_ref().is_some_and(|a| a.last_error.is_some());
            (
                "Persistence",
                vec![
                    f("loading", u8::from(p.loading)),
                    f("rdb_changes_since_last_save", p.changes_since_save),
                    f("rdb_bgsave_in_progress", u8::from(p.save_in_progress)),
                    f("rdb_last_save_time", p.last_save_unix),
                    f("rdb_last_bgsave_status", ok_or_err(p.last_save_ok)),
                    f("rdb_last_bgsave_time_sec", p.last_save_duration.as_secs()),
                    f("rdb_saves", p.saves),
                    f("minikv_snapshot_file", p.snapshot_file.display()),
                    f("aof_enabled", u8::from(p.aof.is_some())),
                    f("aof_last_write_status", ok_or_err(!aof_failing)),
                ],
            )
        }
        "stats" => {
            let s = &report.stats;
            (
                "Stats",
                vec![
                    f("total_connections_received", s.connections_received),
                    f("total_commands_processed", s.total_requests),
                    f("total_net_input_bytes", s.net_input_bytes),
                    f("total_net_output_bytes", s.net_output_bytes),
                    f("rejected_connections", s.rejected_connections),
                    f("expired_keys", report.keyspace.expired),
                    f("evicted_keys", report.keyspace.evicted),
                    f("keyspace_hits", s.keyspace_hits),
                    f("keyspace_misses", s.keyspace_misses),
                    f("pubsub_channels", report.pubsub.channels),
                    f("pubsub_patterns", report.pubsub.patterns),
                    f("pubsubshard_channels", 0),
                    f("minikv_get_commands", s.get),
                    f("minikv_set_commands", s.set),
                    f("minikv_delete_commands", s.delete),
                    f("minikv_expire_commands", s.expire),
                ],
            )
        }
        "replication" => {
            let r = &report.replication;
            let mut lines = vec![
                f("role", &r.role),
                f("connected_slaves", r.connected_replicas),
            ];
            lines.extend(r.cluster.iter().map(|(k, v)| f(k, v)));
            ("Replication", lines)
        }
        "cpu" => {
            let c = &report.cpu;
            (
                "CPU",
                vec![
                    f("used_cpu_sys", format!("{:.6}", c.sys_secs)),
                    f("used_cpu_user", format!("{:.6}", c.user_secs)),
                ],
            )
        }
        "commandstats" => ("Commandstats", commandstats(report)),
        "latencystats" => ("Latencystats", latencystats(report)),
        _ => {
            let fields = report
                .keyspace
                .dbs
                .iter()
                .filter(|db| db.keys > 0)
                .map(|db| {
                    // avg_ttl: the exact average remaining TTL in ms (Redis estimates it by
                    // sampling).
                    let v = format!(
                        "keys={},expires={},avg_ttl={}",
                        db.keys, db.expires, db.avg_ttl_ms
                    );
                    f(&format!("db{}", db.index), v)
                })
                .collect();
            ("Keyspace", fields)
        }
    };
    // `write!` into a String cannot fail.
    let _ = write!(out, "# {title}\r\n");
    for (k, v) in fields {
        let _ = write!(out, "{k}:{v}\r\n");
    }
}

/// INFO commandstats: `cmdstat_get:calls=2,usec=15,usec_per_call=7.50,rejected_calls=0,
/// failed_calls=0`, one line per command called or refused since start (or CONFIG
/// RESETSTAT). Subcommands count under their container (`cmdstat_config`).
fn commandstats(report: &Report) -> Vec<(String, String)> {
    report
        .commands
        .iter()
        .map(|c| {
            let per_call = if c.calls == 0 {
                0.0
            } else {
                c.usec as f64 / c.calls as f64
            };
            let v = format!(
                "calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}",
                c.calls, c.usec, c.rejected, c.failed
            );
            f(&format!("cmdstat_{}", c.name), v)
        })
        .collect()
}

/// The percentiles INFO latencystats reports (Redis's `latency-tracking-info-percentiles`
/// default), with their labels.
const LATENCY_PERCENTILES: [(&str, f64); 3] = [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9)];

/// INFO latencystats: `latency_percentiles_usec_get:p50=1.003,p99=3.007,p99.9=4.015`, one
/// line per command that ran, percentiles in microseconds from its histogram.
fn latencystats(report: &Report) -> Vec<(String, String)> {
    report
        .commands
        .iter()
        .filter(|c| c.histogram_count() > 0)
        .map(|c| {
            let v: Vec<String> = LATENCY_PERCENTILES
                .iter()
                .map(|(label, p)| format!("{label}={:.3}", c.percentile_us(*p).unwrap_or(0.0)))
                .collect();
            f(&format!("latency_percentiles_usec_{}", c.name), v.join(","))
        })
        .collect()
}

fn f(name: &str, value: impl std::fmt::Display) -> (String, String) {
    (name.to_string(), value.to_string())
}

fn ok_or_err(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "err"
    }
}

pub(super) fn command(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let Some(sub) = args.get(1) else {
        return Ok(Reply::Array(table().iter().map(docs::info).collect()));
    };
    if is(sub, "COUNT") {
        Ok(Reply::Int(table().len() as i64))
    } else if is(sub, "LIST") {
        Ok(Reply::Array(
            table().iter().map(|c| Reply::text(c.name)).collect(),
        ))
    } else if is(sub, "INFO") {
        let infos = if args.len() == 2 {
            table().iter().map(docs::info).collect()
        } else {
            args[2..]
                .iter()
                .map(|n| super::lookup(n).map_or(Reply::Nil, docs::info))
                .collect()
        };
        Ok(Reply::Array(infos))
    } else if is(sub, "DOCS") {
        let specs: Vec<&CommandSpec> = if args.len() == 2 {
            table().iter().collect()
        } else {
            args[2..].iter().filter_map(|n| super::lookup(n)).collect()
        };
        Ok(Reply::Map(
            specs
                .into_iter()
                .map(|c| (Reply::text(c.name), docs::docs(c)))
                .collect(),
        ))
    } else {
        Err(CommandError::UnknownSubcommand {
            command: "COMMAND",
            sub: text(sub),
        })
    }
}

pub(super) fn time(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::from(now.as_secs().to_string())),
        Reply::Bulk(Bytes::from(now.subsec_micros().to_string())),
    ]))
}

pub(super) fn lastsave(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    Ok(Reply::Int(ctx.node.persister.status().last_save_unix))
}

pub(super) fn save(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    // Like Redis's SAVE this runs in the caller's thread; other connections keep being served
    // by the other worker threads, and no shard lock is held while writing. Inside EXEC the
    // gate is already held exclusively, so the save must not take it again.
    ctx.node
        .persister
        .save_with(&ctx.node.store, ctx.in_exec)
        .map(|_| Reply::ok())
        .map_err(|e| {
            tracing::error!("SAVE failed: {e}");
            CommandError::Other("ERR Background save failed, check the server log".into())
        })
}

pub(super) fn bgsave(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    if args.len() > 2 || (args.len() == 2 && !is(&args[1], "SCHEDULE")) {
        return Err(CommandError::Syntax);
    }
    // Runs on the node's low-priority saver thread; the outcome shows in INFO persistence.
    drop(ctx.node.persister.background(ctx.node.store.clone(), true));
    Ok(Reply::Simple("Background saving started".into()))
}

pub(super) fn debug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let sub = &args[1];
    if is(sub, "SLEEP") && args.len() == 3 {
        let secs = super::args::float(&args[2])?;
        // Blocks this worker thread, as DEBUG SLEEP blocks Redis; the command takes no gate
        // slot, so only this connection (and its thread's other tasks) wait.
        std::thread::sleep(std::time::Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
        Ok(Reply::ok())
    } else if is(sub, "OBJECT") && args.len() == 3 {
        let db = ctx.db();
        let mut shard = db.shard(&args[2]);
        let value = shard
            .peek(&args[2], ctx.now)
            .ok_or(CommandError::Other("ERR no such key".into()))?;
        let line = format!(
            "Value at:{:p} refcount:1 encoding:{} serializedlength:{} lru:0 lru_seconds_idle:0",
            &value,
            value.encoding(),
            value.memory_usage()
        );
        Ok(Reply::Simple(line.into()))
    } else if is(sub, "HELP") {
        Ok(Reply::Array(vec![
            Reply::Simple("DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".into()),
            Reply::Simple("OBJECT <key>".into()),
            Reply::Simple("    Show low-level info about the key.".into()),
            Reply::Simple("SLEEP <seconds>".into()),
            Reply::Simple("    Stop the server for <seconds>. Decimals allowed.".into()),
        ]))
    } else {
        // DEBUG has no subcommand table in Redis, so it words this error differently.
        Err(CommandError::Other(
            format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
                text(sub)
            )
            .into(),
        ))
    }
}

pub(super) fn slowlog(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let sub = &args[1];
    let log = &ctx.node.slowlog;
    if is(sub, "GET") && args.len() <= 3 {
        let count = match args.get(2) {
            None => 10,
            Some(n) => match int(n) {
                Ok(-1) => usize::MAX,
                Ok(n) if n >= 0 => n as usize,
                _ => {
                    return Err(CommandError::Other(
                        "ERR count should be greater than or equal to -1".into(),
                    ))
                }
            },
        };
        let entries = log
            .latest(count)
            .into_iter()
            .map(|e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.unix_secs),
                    Reply::Int(e.micros as i64),
                    Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                    Reply::Bulk(Bytes::from(e.addr)),
                    Reply::Bulk(e.name),
                ])
            })
            .collect();
        Ok(Reply::Array(entries))
    } else if is(sub, "LEN") && args.len() == 2 {
        Ok(Reply::Int(log.len() as i64))
    } else if is(sub, "RESET") && args.len() == 2 {
        log.reset();
        Ok(Reply::ok())
    } else if is(sub, "HELP") {
        Ok(Reply::status_lines(&[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ]))
    } else {
        Err(CommandError::UnknownSubcommand {
            command: "SLOWLOG",
            sub: text(sub),
        })
    }
}

pub(super) fn monitor(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Result<Reply, CommandError> {
    ctx.session.monitor = true;
    ctx.session.client.update_meta(|m| m.flags = "O");
    Ok(Reply::ok())
}

/// One MONITOR line: `<unix time> [<db> <addr>] "arg" "arg"...`, arguments quoted like
/// Redis's `sdscatrepr`.
pub(super) fn monitor_line(session: &super::Session, args: &[Bytes]) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = format!(
        "{}.{:06} [{} {}]",
        now.as_secs(),
        now.subsec_micros(),
        session.db,
        session.client.addr
    );
    for arg in args {
        line.push_str(" \"");
        for &b in arg.iter() {
            match b {
                b'\\' => line.push_str("\\\\"),
                b'"' => line.push_str("\\\""),
                b'\n' => line.push_str("\\n"),
                b'\r' => line.push_str("\\r"),
                b'\t' => line.push_str("\\t"),
                0x07 => line.push_str("\\a"),
                0x08 => line.push_str("\\b"),
                0x20..=0x7e => line.push(b as char),
                _ => line.push_str(&format!("\\x{b:02x}")),
            }
        }
        line.push('"');
    }
    Bytes::from(line)
}

pub(super) fn wait(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    int(&args[1])?;
    int(&args[2])?;
    Ok(Reply::Int(0))
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.2}G", n as f64 / (1u64 << 30) as f64)
    } else if n >= 1 << 20 {
        format!("{:.2}M", n as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.2}K", n as f64 / 1024.0)
    }
}
