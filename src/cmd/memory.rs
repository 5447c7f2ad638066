//! The memory budget on the command path (the OOM check before a command) and MEMORY.
//!
//! ```text
//! MEMORY USAGE key [SAMPLES count]   -> bytes of the key, its value and its bookkeeping
//! MEMORY STATS                       -> map of Redis 7.0's fields (those minikv can know)
//! MEMORY DOCTOR                      -> a verbatim report
//! ```
//! Differences from Redis: MEMORY STATS omits the fields of things minikv does not have
//! (replication backlog, Lua, functions, cluster links) or cannot know per allocator (jemalloc's
//! `allocator.*` breakdown); `overhead.hashtable.main` is the shards' table slots and access
//! sketches. See docs/compatibility.md.

use bytes::Bytes;

use super::args::{is, text};
use super::table::CommandSpec;
use super::{CommandError, Ctx, Session};
use crate::memory::evict::{make_room, Room};
use crate::memory::{alloc, OOM};
use crate::node::Node;
use crate::protocol::Reply;
use crate::store::shard::evict::ENTRY_OVERHEAD;

/// Redis's OOM check, for a node with `maxmemory` set: evicts what the policy allows when
/// over the limit, and returns the refusal when still over and the command may not run then:
/// a `denyoom` command, EXEC of a transaction holding one, or anything queued inside MULTI
/// (but EXEC, DISCARD, QUIT, RESET), as redis-server 7.0 does.
pub(super) fn refusal(node: &Node, session: &mut Session, spec: &CommandSpec) -> Option<Reply> {
    let denyoom = |s: &CommandSpec| s.flags.contains(&"denyoom");
    let queued_denyoom = spec.name == "exec"
        && session
            .multi
            .as_ref()
            .is_some_and(|m| m.queued.iter().any(|(s, _)| denyoom(s)));
    let in_multi =
        session.multi.is_some() && !matches!(spec.name, "exec" | "discard" | "quit" | "reset");
    let reject = denyoom(spec) || queued_denyoom || in_multi;
    if make_room(node) == Room::Enough || !reject {
        return None;
    }
    if queued_denyoom {
        // Redis's execCommandAbort: the transaction is discarded.
        session.multi = None;
        session.unwatch_all(&node.store);
        session.client.update_meta(|m| m.flags = "N");
        return Some(Reply::Error(
            format!("EXECABORT Transaction discarded because of: {OOM}").into(),
        ));
    }
    session.flag_transaction();
    Some(Reply::Error(OOM.into()))
}

pub(super) fn memory(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let sub = &args[1];
    if is(sub, "USAGE") {
        if args.len() != 3 && args.len() != 5 {
            return Err(CommandError::Syntax);
        }
        let key = &args[2];
        let size = ctx.db().shard(key).untouched(|s| {
            s.peek(key, ctx.now)
                .map(|v| ENTRY_OVERHEAD + key.len() + v.memory_usage())
        });
        Ok(size.map_or(Reply::Nil, |n| Reply::Int(n as i64)))
    } else if is(sub, "STATS") {
        if args.len() != 2 {
            return Err(CommandError::WrongArity("memory|stats".into()));
        }
        Ok(stats(ctx))
    } else if is(sub, "DOCTOR") {
        if args.len() != 2 {
            return Err(CommandError::WrongArity("memory|doctor".into()));
        }
        Ok(Reply::Verbatim(Bytes::from(doctor(ctx.node))))
    } else if is(sub, "HELP") {
        Ok(Reply::status_lines(&[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Prints this help.",
        ]))
    } else {
        Err(CommandError::UnknownSubcommand {
            command: "MEMORY",
            sub: text(sub),
        })
    }
}

/// The figures MEMORY STATS and MEMORY DOCTOR share.
struct Figures {
    used: u64,
    peak: u64,
    startup: u64,
    rss: u64,
    keys: u64,
    overhead: u64,
    dbs: Vec<(usize, u64, u64)>,
}

fn figures(node: &Node) -> Figures {
    let used = node.memory.used_now();
    let mut dbs = Vec::new();
    let (mut keys, mut overhead) = (0u64, 0u64);
    for (index, db) in node.store.dbs().iter().enumerate() {
        let (mut n, mut bytes) = (0u64, 0u64);
        for i in 0..db.shard_count() {
            let shard = db.lock(i);
            n += shard.len() as u64;
            bytes += (shard.table_bytes() + shard.sketch_bytes()) as u64;
        }
        keys += n;
        overhead += bytes;
        if n > 0 {
            dbs.push((index, bytes, n));
        }
    }
    Figures {
        used,
        peak: node.memory.peak().max(used),
        startup: node.memory.startup(),
        rss: alloc::rss_bytes(),
        keys,
        overhead,
        dbs,
    }
}

fn stats(ctx: &Ctx<'_>) -> Reply {
    let f = figures(ctx.node);
    let int = |n: u64| Reply::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let ratio = |a: u64, b: u64| Reply::Double(if b == 0 { 0.0 } else { a as f64 / b as f64 });
    let clients = ctx.node.stats.snapshot().connected_clients;
    let overhead_total = f.startup + f.overhead;
    let dataset = f.used.saturating_sub(overhead_total);
    let mut fields: Vec<(String, Reply)> = vec![
        ("peak.allocated".into(), int(f.peak)),
        ("total.allocated".into(), int(f.used)),
        ("startup.allocated".into(), int(f.startup)),
        ("clients.normal".into(), int(clients)),
        ("aof.buffer".into(), int(0)),
    ];
    for (index, bytes, _) in &f.dbs {
        fields.push((
            format!("db.{index}"),
            Reply::Map(vec![
                (Reply::text("overhead.hashtable.main"), int(*bytes)),
                (Reply::text("overhead.hashtable.expires"), int(0)),
            ]),
        ));
    }
    fields.extend([
        ("overhead.total".into(), int(overhead_total)),
        ("keys.count".into(), int(f.keys)),
        (
            "keys.bytes-per-key".into(),
            int(f.used.saturating_sub(f.startup) / f.keys.max(1)),
        ),
        ("dataset.bytes".into(), int(dataset)),
        (
            "dataset.percentage".into(),
            ratio(dataset * 100, f.used.saturating_sub(f.startup)),
        ),
        ("peak.percentage".into(), ratio(f.used * 100, f.peak)),
        ("fragmentation".into(), ratio(f.rss, f.used)),
        (
            "fragmentation.bytes".into(),
            Reply::Int(f.rss as i64 - f.used as i64),
        ),
    ]);
    Reply::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Reply::Bulk(Bytes::from(k)), v))
            .collect(),
    )
}

/// Redis's MEMORY DOCTOR: its "empty instance" text under 5 MB of data, else a list of the
/// problems it checks that minikv can see (peak far above use, high fragmentation), or its
/// all-clear.
fn doctor(node: &Node) -> String {
    let f = figures(node);
    if f.used < 5 * 1024 * 1024 {
        return "Hi Sam, this instance is empty or is using very little memory, my issues \
                detector can't be used in these conditions. Please, leave for your mission on \
                Earth and fill it with some data. The new Sam and I will be back to our \
                programming as soon as I finished rebooting."
            .into();
    }
    let mut report = String::new();
    if f.peak as f64 / f.used as f64 > 1.5 {
        report.push_str(
            " * Peak memory: In the past this instance used more than 150% the memory that is \
             currently using. The allocator is normally not able to release memory after a \
             peak, so you can expect to see a big fragmentation ratio, however this is \
             actually harmless and is only due to the memory peak, and if the Redis instance \
             Resident Set Size (RSS) is currently bigger than expected, the memory will be \
             used as soon as you fill the Redis instance with more data. If the memory peak \
             was only occasional and you want to try to reclaim memory, please try the MEMORY \
             PURGE command, otherwise the only other option is to shutdown and restart the \
             instance.\n\n",
        );
    }
    if f.rss as f64 / f.used as f64 > 1.4 {
        report.push_str(&format!(
            " * High total RSS: This instance has a memory fragmentation and RSS overhead \
             greater than 1.4 (this means that the Resident Set Size of the Redis process is \
             much larger than the sum of the logical allocations Redis performed). This \
             problem is usually due either to a large peak memory (check if there is a peak \
             memory entry above in the report) or may result from a workload that causes the \
             allocator to fragment memory a lot. If the problem is a large peak memory, then \
             there is no issue. Otherwise, make sure you are using the Jemalloc allocator and \
             not the default libc malloc. Note: The currently used allocator is \"libc\" \
             (RSS {} for {} allocated).\n\n",
            crate::memory::human(f.rss),
            crate::memory::human(f.used)
        ));
    }
    if report.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account \
                for what occurs on this base."
            .into();
    }
    format!("Sam, I detected a few issues in this Redis instance memory implants:\n\n{report}I'm here to keep you safe, Sam. I want to help you.\n")
}
