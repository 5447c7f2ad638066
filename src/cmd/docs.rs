//! COMMAND INFO and COMMAND DOCS replies.
//!
//! For every command minikv shares with Redis the replies are Redis 7.0's own metadata
//! (flags, ACL categories, key specs, summaries, argument trees), generated from a real server
//! by `scripts/gen_command_docs.py` into `redis_commands.json`. redis-cli builds its
//! interactive hints from those argument trees, so they must be Redis's, not approximations.
//! Subcommand lists are cut down to the subcommands minikv implements, and minikv's own
//! commands (GETWITHTTL, STATS) are described by hand from the table.

use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::Value;

use super::CommandSpec;
use crate::protocol::Reply;

/// The embedded metadata; `None` only if the file shipped with the crate were broken, which
/// the unit tests below rule out.
static DATA: LazyLock<Option<Value>> =
    LazyLock::new(|| serde_json::from_str(include_str!("redis_commands.json")).ok());

/// Subcommands minikv implements, per container command (Redis lists more).
const SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "client",
        &[
            "id", "getname", "setname", "info", "list", "kill", "reply", "no-evict", "getredir",
            "unblock", "help",
        ],
    ),
    ("config", &["get", "set", "resetstat"]),
    ("command", &["count", "docs", "info", "list"]),
    (
        "object",
        &["encoding", "freq", "idletime", "refcount", "help"],
    ),
    ("memory", &["usage", "stats", "doctor", "help"]),
    ("slowlog", &["get", "len", "reset", "help"]),
    (
        "latency",
        &[
            "doctor",
            "graph",
            "help",
            "histogram",
            "history",
            "latest",
            "reset",
        ],
    ),
    (
        "pubsub",
        &[
            "channels",
            "numsub",
            "numpat",
            "shardchannels",
            "shardnumsub",
            "help",
        ],
    ),
];

/// The COMMAND INFO entry of `spec`, in Redis 7's ten-element layout.
pub fn info(spec: &CommandSpec) -> Reply {
    match redis_entry("info", spec.name) {
        Some(Value::Array(items)) => {
            let mut items: Vec<Reply> = items.iter().map(to_reply).collect();
            if let Some(Reply::Array(subs)) = items.get_mut(9) {
                subs.retain(|s| match s {
                    Reply::Array(fields) => {
                        matches!(fields.first(), Some(Reply::Bulk(n)) if implemented(spec.name, n))
                    }
                    _ => false,
                });
            }
            Reply::Array(items)
        }
        _ => own_info(spec),
    }
}

/// The COMMAND DOCS entry of `spec` (a map: summary, since, group, complexity, arguments...).
pub fn docs(spec: &CommandSpec) -> Reply {
    match redis_entry("docs", spec.name) {
        Some(value) => {
            let mut docs = to_reply(value);
            if let Reply::Map(fields) = &mut docs {
                for (key, value) in fields.iter_mut() {
                    if matches!(key, Reply::Bulk(k) if k.as_ref() == b"subcommands") {
                        if let Reply::Map(subs) = value {
                            subs.retain(|(name, _)| {
                                matches!(name, Reply::Bulk(n) if implemented(spec.name, n))
                            });
                        }
                    }
                }
            }
            docs
        }
        None => own_docs(spec),
    }
}

fn redis_entry(section: &str, name: &str) -> Option<&'static Value> {
    DATA.as_ref()?.get(section)?.get(name)
}

/// Whether `full` (`container|sub`) is a subcommand minikv implements.
fn implemented(container: &str, full: &[u8]) -> bool {
    let sub = full.rsplit(|b| *b == b'|').next().unwrap_or(full);
    SUBCOMMANDS
        .iter()
        .find(|(c, _)| *c == container)
        .is_some_and(|(_, subs)| subs.iter().any(|s| s.as_bytes() == sub))
}

/// Maps the tagged JSON of `redis_commands.json` back to replies.
fn to_reply(value: &Value) -> Reply {
    match value {
        Value::Null => Reply::Nil,
        Value::Bool(b) => Reply::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Reply::Int)
            .unwrap_or_else(|| Reply::Double(n.as_f64().unwrap_or_default())),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(s.as_bytes())),
        Value::Array(items) => Reply::Array(items.iter().map(to_reply).collect()),
        Value::Object(obj) => {
            if let Some(Value::String(s)) = obj.get("s") {
                Reply::Simple(s.clone().into())
            } else if let Some(Value::Array(items)) = obj.get("set") {
                Reply::Set(items.iter().map(to_reply).collect())
            } else if let Some(Value::Array(pairs)) = obj.get("map") {
                Reply::Map(
                    pairs
                        .iter()
                        .filter_map(|p| match p.as_array()?.as_slice() {
                            [k, v] => Some((to_reply(k), to_reply(v))),
                            _ => None,
                        })
                        .collect(),
                )
            } else {
                Reply::Nil
            }
        }
    }
}

/// COMMAND INFO for a minikv-only command, from its table row.
fn own_info(c: &CommandSpec) -> Reply {
    Reply::Array(vec![
        Reply::text(c.name),
        Reply::Int(i64::from(c.arity)),
        Reply::Set(c.flags.iter().map(|f| Reply::Simple((*f).into())).collect()),
        Reply::Int(i64::from(c.first_key)),
        Reply::Int(i64::from(c.last_key)),
        Reply::Int(i64::from(c.step)),
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
    ])
}

/// COMMAND DOCS for a minikv-only command.
fn own_docs(c: &CommandSpec) -> Reply {
    let (summary, group, arguments) = match c.name {
        "getwithttl" => (
            "Get the value of a key and its remaining time to live in seconds (minikv)",
            "string",
            vec![Reply::Map(vec![
                (Reply::text("name"), Reply::text("key")),
                (Reply::text("type"), Reply::text("key")),
                (Reply::text("key_spec_index"), Reply::Int(0)),
            ])],
        ),
        "stats" => (
            "Return the node's request and key counters (minikv)",
            "server",
            vec![],
        ),
        _ => (c.name, "server", vec![]),
    };
    let mut fields = vec![
        (Reply::text("summary"), Reply::text(summary)),
        (Reply::text("since"), Reply::text("0.1.0")),
        (Reply::text("group"), Reply::text(group)),
        (Reply::text("complexity"), Reply::text("O(1)")),
    ];
    if !arguments.is_empty() {
        fields.push((Reply::text("arguments"), Reply::Array(arguments)));
    }
    Reply::Map(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::table;

    #[test]
    fn embedded_metadata_parses_and_matches_the_table() {
        let data = DATA.as_ref().expect("redis_commands.json is valid JSON");
        let info = data["info"].as_object().expect("info section");
        for spec in table() {
            let Some(entry) = info.get(spec.name) else {
                continue;
            };
            assert_eq!(
                entry[1].as_i64(),
                Some(i64::from(spec.arity)),
                "arity of {} differs from Redis",
                spec.name
            );
        }
        assert!(info.len() >= 70, "only {} commands documented", info.len());
    }

    #[test]
    fn docs_carry_argument_trees_and_only_implemented_subcommands() {
        let getex = table().iter().find(|c| c.name == "getex").expect("getex");
        let Reply::Map(fields) = docs(getex) else {
            panic!("docs are a map");
        };
        assert!(fields
            .iter()
            .any(|(k, _)| matches!(k, Reply::Bulk(b) if b.as_ref() == b"arguments")));
        let client = table().iter().find(|c| c.name == "client").expect("client");
        let Reply::Array(items) = info(client) else {
            panic!("info is an array");
        };
        let Reply::Array(subs) = &items[9] else {
            panic!("subcommands");
        };
        assert!(!subs.is_empty());
        assert!(subs.len() < 20, "unimplemented subcommands filtered out");
    }
}
