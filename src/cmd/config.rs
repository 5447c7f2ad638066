//! CONFIG and the parameter table.
//!
//! ```text
//! CONFIG GET pattern [pattern ...]        -> map of the matching parameters
//! CONFIG SET parameter value [parameter value ...]
//! CONFIG RESETSTAT | CONFIG REWRITE
//! ```
//! [`PARAMS`] has one row per parameter: its name and old alias, how to read it, how to set it
//! at run time (or not: immutable), its default and how a config file gives it. CONFIG SET
//! is atomic as in Redis 7: every name is looked up first (unknown, immutable and duplicate
//! parameters are refused), then every value is parsed, and only when all are valid are they
//! applied. CONFIG REWRITE writes the run-time settable parameters into the config file the
//! node was started with (see [`crate::config::file::rewrite`]).

use bytes::Bytes;

use super::args::{is, text};
use super::{CommandError, Ctx};
use crate::aof::FsyncPolicy;
use crate::config::file;
use crate::config::live::SaveRule;
use crate::node::Node;
use crate::protocol::Reply;
use crate::store::pattern;
use crate::store::value::limits::{self, Limit};

/// What a run-time parameter's parsed value does to a node.
pub type Apply = Box<dyn FnOnce(&Node) + Send>;

/// Parses a value for CONFIG SET: the change to apply, or Redis's reason for refusing it
/// (the text after `- ` in `ERR CONFIG SET failed (possibly related to argument '...') - `).
pub type Setter = fn(&[u8]) -> Result<Apply, String>;

/// How a config file (`--config`) gives a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFile {
    /// As this long flag of `minikv server` / `minikv cluster` (`bind` is `--host`): the
    /// command line can override it. `port` is the server's PORT (the cluster's base port).
    Flag(&'static str),
    /// Through the parameter's [`Param::set`] once the node exists, as CONFIG SET would.
    Setter,
    /// Not at all (fixed in minikv, or given another way such as `--cluster`).
    No,
}

/// One row of the parameter table.
pub struct Param {
    /// Redis's name (CONFIG GET shows it).
    pub name: &'static str,
    /// Redis's old name, accepted everywhere the name is (`hash-max-ziplist-entries`).
    pub alias: Option<&'static str>,
    /// The current value, as CONFIG GET shows it.
    pub get: fn(&Node) -> String,
    /// How CONFIG SET parses a value; `None`: immutable (`can't set immutable config`).
    pub set: Option<Setter>,
    /// The value a node has without flags or file: CONFIG REWRITE adds a line for the
    /// parameter only when its value differs (or the file already has one).
    pub default: &'static str,
    /// How a config file gives it.
    pub file: InFile,
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Param").field("name", &self.name).finish()
    }
}

impl Param {
    /// The config lines CONFIG REWRITE writes for `value`: `name value` (quoted when needed);
    /// `save` writes one line per pair, `client-output-buffer-limit` one per class that is not
    /// the default, as Redis does; an empty `requirepass` writes none (the file's lines go).
    fn lines(&self, value: &str) -> Vec<String> {
        match self.name {
            "save" if value.is_empty() => vec!["save \"\"".to_string()],
            "save" => {
                let words: Vec<&str> = value.split_whitespace().collect();
                words
                    .chunks(2)
                    .map(|pair| format!("save {}", pair.join(" ")))
                    .collect()
            }
            "client-output-buffer-limit" => {
                // Only the classes that differ from the default: a line per class.
                let words: Vec<&str> = value.split_whitespace().collect();
                let default: Vec<&str> = self.default.split_whitespace().collect();
                words
                    .chunks(4)
                    .zip(default.chunks(4))
                    .filter(|(class, default)| class != default)
                    .map(|(class, _)| format!("{} {}", self.name, class.join(" ")))
                    .collect()
            }
            "requirepass" if value.is_empty() => Vec::new(),
            _ => vec![format!("{} {}", self.name, file::quote(value))],
        }
    }
}

fn yes_no(on: bool) -> String {
    if on { "yes" } else { "no" }.to_string()
}

/// Redis's `yes`/`no` (any case).
fn parse_bool(value: &[u8]) -> Result<bool, String> {
    if is(value, "yes") {
        Ok(true)
    } else if is(value, "no") {
        Ok(false)
    } else {
        Err("argument must be 'yes' or 'no'".into())
    }
}

/// A strict decimal integer from `min` to `max`, as Redis's numeric parameters.
fn parse_number(value: &[u8], min: i64, max: i64) -> Result<i64, String> {
    let n = crate::protocol::resp::parse_int(value)
        .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
    if !(min..=max).contains(&n) {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(n)
}

/// A setter for a `limits` row.
fn limit_setter(limit: &'static Limit) -> impl Fn(&[u8]) -> Result<Apply, String> {
    move |value| {
        let n = parse_number(value, limit.min, limit.max)?;
        Ok(Box::new(move |_: &Node| {
            // In range, checked above.
            let _ = limit.set(n);
        }))
    }
}

/// A row for one of the collection-encoding limits (node-wide statics: in `minikv cluster`,
/// every node of the process shares them).
macro_rules! limit_row {
    ($limit:expr, $default:literal) => {
        Param {
            name: $limit.name,
            alias: $limit.alias,
            get: |_| $limit.get().to_string(),
            set: Some(|v| limit_setter(&$limit)(v)),
            default: $default,
            file: InFile::Setter,
        }
    };
}

/// Every parameter, in CONFIG GET's order.
pub static PARAMS: &[Param] = &[
    Param {
        name: "save",
        alias: None,
        get: |n| n.settings.save().render(),
        set: Some(|v| {
            let words: Vec<&[u8]> = v.split(u8::is_ascii_whitespace).collect();
            let rule = SaveRule::parse(&words)?;
            Ok(Box::new(move |n: &Node| n.settings.set_save(rule)))
        }),
        default: "10 1",
        file: InFile::Flag("save"),
    },
    Param {
        name: "appendonly",
        alias: None,
        get: |n| yes_no(n.config.appendonly),
        set: None,
        default: "no",
        file: InFile::Flag("appendonly"),
    },
    Param {
        name: "appendfsync",
        alias: None,
        get: |n| n.settings.appendfsync().name().to_string(),
        set: Some(|v| {
            let policy = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<FsyncPolicy>().ok())
                .ok_or("argument(s) must be one of the following: everysec, always, no")?;
            Ok(Box::new(move |n: &Node| {
                n.settings.set_appendfsync(policy);
                if let Some(aof) = n.aof.get() {
                    aof.set_policy(policy);
                }
            }))
        }),
        default: "everysec",
        file: InFile::Flag("appendfsync"),
    },
    Param {
        name: "stop-writes-on-bgsave-error",
        alias: None,
        get: |n| yes_no(n.settings.stop_writes_on_bgsave_error()),
        set: Some(|v| {
            let on = parse_bool(v)?;
            Ok(Box::new(move |n: &Node| {
                n.settings.set_stop_writes_on_bgsave_error(on)
            }))
        }),
        default: "no",
        file: InFile::Flag("stop-writes-on-bgsave-error"),
    },
    Param {
        name: "databases",
        alias: None,
        get: |n| n.config.databases.to_string(),
        set: None,
        default: "16",
        file: InFile::Flag("databases"),
    },
    Param {
        name: "maxclients",
        alias: None,
        get: |n| n.settings.maxclients().to_string(),
        set: Some(|v| {
            let max = parse_number(v, 1, i64::from(u32::MAX))?;
            Ok(Box::new(move |n: &Node| {
                n.settings.set_maxclients(max as usize)
            }))
        }),
        default: "10000",
        file: InFile::Flag("maxclients"),
    },
    Param {
        name: "port",
        alias: None,
        get: |n| n.port().to_string(),
        set: None,
        default: "7001",
        file: InFile::Flag("port"),
    },
    Param {
        name: "bind",
        alias: None,
        get: |n| n.config.host.clone(),
        set: None,
        default: "127.0.0.1",
        file: InFile::Flag("host"),
    },
    Param {
        name: "dir",
        alias: None,
        get: |n| n.config.data_dir.display().to_string(),
        set: None,
        default: ".",
        file: InFile::Flag("data-dir"),
    },
    Param {
        name: "dbfilename",
        alias: None,
        get: |n| format!("kv_store_server{}.json", n.config.id),
        set: None,
        default: "kv_store_server1.json",
        file: InFile::No,
    },
    Param {
        name: "requirepass",
        alias: None,
        get: |n| n.settings.password().as_deref().unwrap_or("").to_string(),
        set: Some(|v| {
            let password = String::from_utf8(v.to_vec())
                .map_err(|_| "argument must be valid UTF-8".to_string())?;
            Ok(Box::new(move |n: &Node| {
                n.settings.set_password(Some(password))
            }))
        }),
        default: "",
        file: InFile::Flag("requirepass"),
    },
    Param {
        name: "maxmemory",
        alias: None,
        get: |n| n.memory.limit().to_string(),
        set: Some(|v| {
            let bytes = crate::memory::parse_bytes(v)?;
            Ok(Box::new(move |n: &Node| n.memory.set_limit(bytes)))
        }),
        default: "0",
        file: InFile::Setter,
    },
    Param {
        name: "maxmemory-policy",
        alias: None,
        get: |n| n.memory.policy().name().into(),
        set: Some(|v| {
            let policy = crate::memory::Policy::parse(v).ok_or_else(|| {
                let names: Vec<&str> = crate::memory::POLICIES.iter().map(|p| p.name()).collect();
                format!(
                    "argument(s) must be one of the following: {}",
                    names.join(", ")
                )
            })?;
            Ok(Box::new(move |n: &Node| {
                n.memory.set_policy(&n.store, policy)
            }))
        }),
        default: "noeviction",
        file: InFile::Setter,
    },
    Param {
        name: "maxmemory-samples",
        alias: None,
        get: |n| n.memory.samples().to_string(),
        set: Some(|v| {
            let n = parse_number(v, 1, i64::from(i32::MAX))? as u32;
            Ok(Box::new(move |node: &Node| node.memory.set_samples(n)))
        }),
        default: "5",
        file: InFile::Setter,
    },
    Param {
        name: "lfu-log-factor",
        alias: None,
        get: |_| LFU_LOG_FACTOR.load(Relaxed).to_string(),
        set: Some(|v| {
            let n = parse_number(v, 0, i64::from(i32::MAX))? as u32;
            Ok(Box::new(move |_: &Node| LFU_LOG_FACTOR.store(n, Relaxed)))
        }),
        default: "10",
        file: InFile::Setter,
    },
    Param {
        name: "lfu-decay-time",
        alias: None,
        get: |_| LFU_DECAY_TIME.load(Relaxed).to_string(),
        set: Some(|v| {
            let n = parse_number(v, 0, i64::from(i32::MAX))? as u32;
            Ok(Box::new(move |_: &Node| LFU_DECAY_TIME.store(n, Relaxed)))
        }),
        default: "1",
        file: InFile::Setter,
    },
    Param {
        name: "timeout",
        alias: None,
        // Whole seconds, as Redis counts them (rounded up: a test may set less).
        get: |n| {
            let secs = n.settings.idle_timeout().map_or(0.0, |t| t.as_secs_f64());
            (secs.ceil() as u64).to_string()
        },
        set: Some(|v| {
            let secs = parse_number(v, 0, i64::from(i32::MAX))? as u64;
            Ok(Box::new(move |n: &Node| {
                n.settings
                    .set_idle_timeout(Some(std::time::Duration::from_secs(secs)))
            }))
        }),
        default: "0",
        file: InFile::Flag("timeout"),
    },
    Param {
        name: "hz",
        alias: None,
        get: |_| "10".into(),
        set: None,
        default: "10",
        file: InFile::No,
    },
    Param {
        name: "client-output-buffer-limit",
        alias: None,
        get: |n| n.pubsub.limits.render(),
        set: Some(|v| {
            // Checked on a scratch copy: nothing changes unless all of it is valid.
            crate::pubsub::limits::OutputLimits::default().set(v)?;
            let v = v.to_vec();
            Ok(Box::new(move |n: &Node| {
                let _ = n.pubsub.limits.set(&v);
            }))
        }),
        default: "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        file: InFile::Setter,
    },
    Param {
        name: "proto-max-bulk-len",
        alias: None,
        get: |n| n.config.resp_limits.max_bulk_len.to_string(),
        set: None,
        default: "536870912",
        file: InFile::No,
    },
    Param {
        name: "protected-mode",
        alias: None,
        get: |n| yes_no(n.settings.protected_mode()),
        set: Some(|v| {
            let on = parse_bool(v)?;
            Ok(Box::new(move |n: &Node| n.settings.set_protected_mode(on)))
        }),
        default: "yes",
        file: InFile::Flag("protected-mode"),
    },
    Param {
        name: "cluster-enabled",
        alias: None,
        get: |n| yes_no(n.config.clustered()),
        set: None,
        default: "no",
        file: InFile::No,
    },
    Param {
        name: "tls-cert-file",
        alias: None,
        get: |n| tls_file(n, |t| Some(&t.cert)),
        set: None,
        default: "",
        file: InFile::Flag("tls-cert"),
    },
    Param {
        name: "tls-key-file",
        alias: None,
        get: |n| tls_file(n, |t| Some(&t.key)),
        set: None,
        default: "",
        file: InFile::Flag("tls-key"),
    },
    Param {
        name: "tls-ca-cert-file",
        alias: None,
        get: |n| tls_file(n, |t| t.client_ca.as_ref()),
        set: None,
        default: "",
        file: InFile::Flag("tls-ca"),
    },
    Param {
        name: "slowlog-log-slower-than",
        alias: None,
        get: |n| n.slowlog.slower_than_us.load(Relaxed).to_string(),
        set: Some(|v| {
            let us = parse_number(v, -1, i64::MAX)?;
            Ok(Box::new(move |n: &Node| {
                n.slowlog.slower_than_us.store(us, Relaxed)
            }))
        }),
        default: "10000",
        file: InFile::Setter,
    },
    Param {
        name: "slowlog-max-len",
        alias: None,
        get: |n| n.slowlog.max_len.load(Relaxed).to_string(),
        set: Some(|v| {
            let len = parse_number(v, 0, i64::MAX)? as usize;
            Ok(Box::new(move |n: &Node| {
                n.slowlog.max_len.store(len, Relaxed)
            }))
        }),
        default: "128",
        file: InFile::Setter,
    },
    Param {
        name: "latency-monitor-threshold",
        alias: None,
        get: |n| n.latency.threshold_ms().to_string(),
        set: Some(|v| {
            let ms = parse_number(v, 0, i64::MAX)? as u64;
            Ok(Box::new(move |n: &Node| n.latency.set_threshold_ms(ms)))
        }),
        default: "0",
        file: InFile::Setter,
    },
    limit_row!(limits::HASH_MAX_LISTPACK_ENTRIES, "512"),
    limit_row!(limits::HASH_MAX_LISTPACK_VALUE, "64"),
    limit_row!(limits::SET_MAX_INTSET_ENTRIES, "512"),
    limit_row!(limits::ZSET_MAX_LISTPACK_ENTRIES, "128"),
    limit_row!(limits::ZSET_MAX_LISTPACK_VALUE, "64"),
    limit_row!(limits::LIST_MAX_LISTPACK_SIZE, "-2"),
    limit_row!(limits::LIST_COMPRESS_DEPTH, "0"),
];

use std::sync::atomic::Ordering::Relaxed;

use crate::store::shard::sketch::{LFU_DECAY_TIME, LFU_LOG_FACTOR};

/// A TLS file's path for CONFIG GET (empty without TLS).
fn tls_file(
    node: &Node,
    pick: fn(&crate::tls::TlsConfig) -> Option<&std::path::PathBuf>,
) -> String {
    node.config
        .tls
        .as_ref()
        .and_then(pick)
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The row named `name` (or its alias, any case), and whether the alias was used.
pub fn lookup(name: &[u8]) -> Option<(&'static Param, bool)> {
    PARAMS.iter().find_map(|p| {
        if p.name.as_bytes().eq_ignore_ascii_case(name) {
            Some((p, false))
        } else if p
            .alias
            .is_some_and(|a| a.as_bytes().eq_ignore_ascii_case(name))
        {
            Some((p, true))
        } else {
            None
        }
    })
}

/// Checks a run-time parameter given at start (the config file's `slowlog-max-len 256`)
/// without a node: the reason it would be refused, if any.
///
/// # Errors
/// An unknown or immutable parameter, or CONFIG SET's reason for refusing the value.
pub fn check(name: &str, value: &str) -> Result<(), String> {
    setter(name)?(value.as_bytes()).map(drop)
}

/// Sets a run-time parameter given at start, as CONFIG SET would.
///
/// # Errors
/// As [`check`].
pub fn set_at_start(node: &Node, name: &str, value: &str) -> Result<(), String> {
    setter(name)?(value.as_bytes()).map(|apply| apply(node))
}

fn setter(name: &str) -> Result<Setter, String> {
    let (param, _) = lookup(name.as_bytes()).ok_or_else(|| "unknown parameter".to_string())?;
    param
        .set
        .ok_or_else(|| "can't be set at run time".to_string())
}

pub(super) fn config(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Result<Reply, CommandError> {
    let sub = &args[1];
    if is(sub, "GET") {
        if args.len() < 3 {
            return Err(CommandError::WrongArity("config|get".into()));
        }
        Ok(get(ctx.node, &args[2..]))
    } else if is(sub, "SET") {
        if args.len() < 4 {
            return Err(CommandError::WrongArity("config|set".into()));
        }
        if !args.len().is_multiple_of(2) {
            return Err(CommandError::Syntax);
        }
        set(ctx.node, &args[2..])
    } else if is(sub, "RESETSTAT") {
        if args.len() != 2 {
            return Err(CommandError::WrongArity("config|resetstat".into()));
        }
        ctx.node.stats.reset();
        ctx.node.store.reset_expired();
        ctx.node.memory.reset_stats();
        Ok(Reply::ok())
    } else if is(sub, "REWRITE") {
        if args.len() != 2 {
            return Err(CommandError::WrongArity("config|rewrite".into()));
        }
        rewrite(ctx.node)
    } else if is(sub, "HELP") && args.len() == 2 {
        Ok(Reply::status_lines(&[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Prints this help.",
        ]))
    } else {
        Err(CommandError::UnknownSubcommand {
            command: "CONFIG",
            sub: text(sub),
        })
    }
}

/// CONFIG GET: a pattern without glob characters names one parameter (shown under the name
/// as given); a glob matches every name and alias, case-insensitively.
fn get(node: &Node, patterns: &[Bytes]) -> Reply {
    let mut out: Vec<(String, String)> = Vec::new();
    let seen = |out: &[(String, String)], name: &str| {
        out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    for pat in patterns {
        if !pat.iter().any(|b| matches!(b, b'[' | b'*' | b'?')) {
            let name = text(pat);
            if let Some((param, _)) = lookup(pat).filter(|_| !seen(&out, &name)) {
                out.push((name, (param.get)(node)));
            }
            continue;
        }
        let pat = pat.to_ascii_lowercase();
        for param in PARAMS {
            for name in std::iter::once(param.name).chain(param.alias) {
                if !seen(&out, name) && pattern::matches(&pat, name.as_bytes()) {
                    out.push((name.to_string(), (param.get)(node)));
                }
            }
        }
    }
    Reply::Map(
        out.into_iter()
            .map(|(k, v)| (Reply::Bulk(Bytes::from(k)), Reply::Bulk(Bytes::from(v))))
            .collect(),
    )
}

fn failed(name: &str, reason: &str) -> CommandError {
    CommandError::Other(
        format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}").into(),
    )
}

/// CONFIG SET, all or nothing (see the module doc). The first problem found is reported,
/// as Redis does: names first (in order), then values.
fn set(node: &Node, pairs: &[Bytes]) -> Result<Reply, CommandError> {
    let mut chosen: Vec<(&'static Param, bool, &Bytes)> = Vec::new();
    for pair in pairs.chunks(2) {
        let (name, value) = (&pair[0], &pair[1]);
        let Some((param, alias)) = lookup(name) else {
            return Err(CommandError::Other(
                format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                    text(name)
                )
                .into(),
            ));
        };
        if param.set.is_none() {
            return Err(failed(&text(name), "can't set immutable config"));
        }
        // As in Redis 7.0, a name and its alias are different entries.
        if chosen
            .iter()
            .any(|(p, a, _)| std::ptr::eq(*p, param) && *a == alias)
        {
            return Err(failed(&text(name), "duplicate parameter"));
        }
        chosen.push((param, alias, value));
    }
    let mut changes = Vec::with_capacity(chosen.len());
    for (param, alias, value) in chosen {
        let name = if alias { param.alias } else { None }.unwrap_or(param.name);
        let set = param
            .set
            .ok_or_else(|| failed(name, "can't set immutable config"))?;
        changes.push(set(value).map_err(|reason| failed(name, &reason))?);
    }
    for apply in changes {
        apply(node);
    }
    Ok(Reply::ok())
}

/// CONFIG REWRITE: the run-time settable parameters' current values into the config file.
fn rewrite(node: &Node) -> Result<Reply, CommandError> {
    let Some(path) = &node.config.config_file else {
        return Err(CommandError::Other(
            "ERR The server is running without a config file".into(),
        ));
    };
    let params: Vec<file::Rewrite> = PARAMS
        .iter()
        .filter(|p| p.set.is_some())
        .map(|p| {
            let value = (p.get)(node);
            file::Rewrite {
                name: p.name,
                alias: p.alias,
                lines: p.lines(&value),
                force: value != p.default,
            }
        })
        .collect();
    match file::rewrite(path, &params) {
        Ok(()) => {
            tracing::info!("CONFIG REWRITE: {} rewritten", path.display());
            Ok(Reply::ok())
        }
        Err(e) => {
            tracing::warn!("CONFIG REWRITE of {} failed: {e}", path.display());
            let text = e.to_string();
            let text = text.split(" (os error ").next().unwrap_or(&text);
            Err(CommandError::Other(
                format!("ERR Rewriting config file: {text}").into(),
            ))
        }
    }
}

/// CONFIG SET's arguments as SLOWLOG and MONITOR show them: `requirepass`'s value
/// `(redacted)`, as Redis does with its sensitive parameters.
pub(super) fn redact(args: &[Bytes]) -> Vec<Bytes> {
    let mut shown = args.to_vec();
    if args.len() > 2 && is(&args[1], "SET") {
        for i in (2..args.len().saturating_sub(1)).step_by(2) {
            if is(&args[i], "requirepass") {
                shown[i + 1] = Bytes::from_static(b"(redacted)");
            }
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_unique_name_and_a_valid_default() {
        for (i, p) in PARAMS.iter().enumerate() {
            for other in &PARAMS[i + 1..] {
                assert_ne!(p.name, other.name);
            }
            assert_eq!(
                lookup(p.name.to_uppercase().as_bytes()).map(|r| r.0.name),
                Some(p.name)
            );
            if let Some(set) = p.set {
                assert!(set(p.default.as_bytes()).is_ok(), "{}'s default", p.name);
            }
        }
        assert_eq!(
            lookup(b"hash-max-ziplist-entries").map(|(p, alias)| (p.name, alias)),
            Some(("hash-max-listpack-entries", true))
        );
    }

    #[test]
    fn values_are_checked_with_redis_reasons() {
        assert_eq!(
            check("timeout", "x"),
            Err("argument couldn't be parsed into an integer".into())
        );
        assert_eq!(
            check("timeout", "-1"),
            Err("argument must be between 0 and 2147483647 inclusive".into())
        );
        assert_eq!(
            check("protected-mode", "maybe"),
            Err("argument must be 'yes' or 'no'".into())
        );
        assert_eq!(
            check("save", "1 2 3"),
            Err("Invalid save parameters".into())
        );
        assert!(check("save", "").is_ok() && check("save", "900 1 300 10").is_ok());
        assert!(check("port", "1").is_err() && check("nope", "1").is_err());
    }

    #[test]
    fn rewrite_lines_are_redis_lines() {
        let (save, _) = lookup(b"save").expect("row");
        assert_eq!(save.lines("900 1 300 10"), ["save 900 1", "save 300 10"]);
        assert_eq!(save.lines(""), ["save \"\""]);
        let (pass, _) = lookup(b"requirepass").expect("row");
        assert_eq!(pass.lines("a b"), ["requirepass \"a b\""]);
        assert!(pass.lines("").is_empty());
        let (limits, _) = lookup(b"client-output-buffer-limit").expect("row");
        assert_eq!(
            limits.lines("normal 0 0 0 slave 268435456 67108864 60 pubsub 1 2 3"),
            ["client-output-buffer-limit pubsub 1 2 3"]
        );
        assert!(limits.lines(limits.default).is_empty());
    }

    #[test]
    fn only_the_password_of_config_set_is_redacted() {
        let args: Vec<Bytes> = ["CONFIG", "SET", "timeout", "5", "REQUIREPASS", "pw"]
            .iter()
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        let shown = redact(&args);
        assert_eq!(shown[3], "5");
        assert_eq!(shown[5], "(redacted)");
    }
}
