//! LATENCY: the latency monitor's reports (Redis 7.0's `latencyCommand`).
//!
//! ```text
//! LATENCY LATEST                 -> [[event, unix_secs, latest_ms, max_ms] ...]
//! LATENCY HISTORY event          -> [[unix_secs, ms] ...] oldest first (empty if unknown)
//! LATENCY RESET [event ...]      -> number of events forgotten (all without arguments)
//! LATENCY DOCTOR                 -> verbatim text: each event's figures, then advice
//! LATENCY GRAPH event            -> verbatim text: an ASCII sparkline of the samples
//! LATENCY HISTOGRAM [command ...] -> {command: {calls, histogram_usec: {usec: cumulative}}}
//! LATENCY HELP
//! ```
//! The samples are in [`crate::stats::latency`]; `latency-monitor-threshold` (CONFIG SET,
//! `--latency-monitor-threshold`, the config file) turns recording on. Differences from
//! Redis: the events are minikv's (`snapshot-copy` where Redis has `fork`; no `aof-fstat`,
//! `aof-rename`, `eviction-*`...), DOCTOR's advice is about minikv's causes and remedies, and
//! HISTOGRAM reports from the per-command statistics (INFO `latencystats`): whole commands
//! (`client`, not `client|list`), buckets at powers of two microseconds (Redis's
//! HdrHistogram reports 1, 2, 4 ... 16, 33, 66 ...), counts since start or CONFIG RESETSTAT.

use bytes::Bytes;

use super::args::{is, text};
use super::{lookup, table, CommandError, Ctx};
use crate::protocol::Reply;
use crate::stats::commands::{bucket_bound_us, CommandFigures, BUCKETS};
use crate::stats::latency::{anon_huge_pages_kb, DoctorContext};

/// LATENCY's subcommands with their Redis arity (checked here, as Redis's table does for
/// subcommands).
const SUBCOMMANDS: &[(&str, i32)] = &[
    ("doctor", 2),
    ("graph", 3),
    ("help", 2),
    ("histogram", -2),
    ("history", 3),
    ("latest", 2),
    ("reset", -2),
];

pub(super) fn latency(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let sub = &args[1];
    let Some(&(name, arity)) = SUBCOMMANDS.iter().find(|(n, _)| is(sub, n)) else {
        return Err(CommandError::UnknownSubcommand {
            command: "LATENCY",
            sub: text(sub),
        });
    };
    let argc = args.len() as i32;
    if (arity >= 0 && argc != arity) || argc < -arity {
        return Err(CommandError::WrongArity(format!("latency|{name}")));
    }
    let node = ctx.node;
    let monitor = &node.latency;
    let now_secs = crate::store::clock::unix_ms() / 1000;
    Ok(match name {
        "latest" => Reply::Array(
            monitor
                .latest()
                .into_iter()
                .map(|l| {
                    Reply::Array(vec![
                        Reply::Bulk(Bytes::from_static(l.event.as_bytes())),
                        Reply::Int(l.sample.unix_secs),
                        int(l.sample.ms),
                        int(l.max_ms),
                    ])
                })
                .collect(),
        ),
        "history" => Reply::Array(
            monitor
                .history(&args[2])
                .into_iter()
                .map(|s| Reply::Array(vec![Reply::Int(s.unix_secs), int(s.ms)]))
                .collect(),
        ),
        "reset" => Reply::Int(monitor.reset(&args[2..]) as i64),
        "doctor" => {
            let context = DoctorContext {
                slowlog_slower_than_us: node
                    .slowlog
                    .slower_than_us
                    .load(std::sync::atomic::Ordering::Relaxed),
                fsync_always: node.settings.appendfsync() == crate::aof::FsyncPolicy::Always,
                huge_pages: anon_huge_pages_kb() > 0,
            };
            Reply::Verbatim(Bytes::from(monitor.doctor(&context, now_secs)))
        }
        "graph" => match monitor.graph(&args[2], now_secs) {
            Some(graph) => Reply::Verbatim(Bytes::from(graph)),
            None => {
                return Err(CommandError::Other(
                    format!("ERR No samples available for event '{}'", text(&args[2])).into(),
                ))
            }
        },
        "histogram" => histogram(ctx, &args[2..]),
        _ => help(),
    })
}

/// LATENCY HISTOGRAM: every command called so far (table order), or the named ones that were
/// called (argument order; unknown names are skipped, as in Redis).
fn histogram(ctx: &Ctx<'_>, names: &[Bytes]) -> Reply {
    let figures = ctx.node.stats.commands.snapshot();
    let called = |id: usize| figures.iter().find(|f| f.id == id && f.calls > 0);
    let chosen: Vec<&CommandFigures> = if names.is_empty() {
        figures.iter().filter(|f| f.calls > 0).collect()
    } else {
        names
            .iter()
            .filter_map(|n| lookup(n))
            .filter_map(|spec| called(spec.id))
            .collect()
    };
    Reply::Map(
        chosen
            .into_iter()
            .map(|f| {
                let name = table().get(f.id).map_or(f.name, |spec| spec.name);
                (Reply::Bulk(Bytes::from_static(name.as_bytes())), cdf(f))
            })
            .collect(),
    )
}

/// One command's `calls` and cumulative `histogram_usec` (buckets that add calls only).
fn cdf(figures: &CommandFigures) -> Reply {
    let mut cumulative = 0;
    let mut buckets = Vec::new();
    for (k, &n) in figures.histogram.iter().enumerate() {
        if n == 0 {
            continue;
        }
        cumulative += n;
        // The last bucket is unbounded: reported at twice the one before, like a bucket.
        let bound = bucket_bound_us(k).unwrap_or(1 << (BUCKETS - 1));
        buckets.push((int(bound), int(cumulative)));
    }
    Reply::Map(vec![
        (
            Reply::Bulk(Bytes::from_static(b"calls")),
            int(figures.histogram_count()),
        ),
        (
            Reply::Bulk(Bytes::from_static(b"histogram_usec")),
            Reply::Map(buckets),
        ),
    ])
}

fn int(n: u64) -> Reply {
    Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn help() -> Reply {
    const LINES: &[&str] = &[
        "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return a human readable latency analysis report.",
        "GRAPH <event>",
        "    Return an ASCII latency graph for the <event> class.",
        "HISTORY <event>",
        "    Return time-latency samples for the <event> class.",
        "LATEST",
        "    Return the latest latency samples for all events.",
        "RESET [<event> ...]",
        "    Reset latency data of one or more <event> classes.",
        "    (default: reset all data for all event classes)",
        "HISTOGRAM [COMMAND ...]",
        "    Return a cumulative distribution of latencies in the format of a histogram for \
         the specified command names.",
        "    If no commands are specified then all histograms are replied.",
        "HELP",
        "    Prints this help.",
    ];
    Reply::status_lines(LINES)
}
