//! The spec's interactive client: one input line in, the spec's text blocks out.
//!
//! [`Repl::execute`] turns a line into cluster-client calls and writes the result blocks
//! (`✓ SUCCESS (Server 2)` plus two-space indented details) to the REPL's sink, so the whole
//! REPL is testable without a terminal. Retry notices from the client go to the same sink, in
//! order. A node that stayed unreachable gets the spec's `Server 2 unavailable after 3 retries`
//! followed by a `Cause:` line with the last attempt's failure in plain words (`connection
//! refused by localhost:7002`). Standard input and output, the prompt and history live in
//! [`terminal`].

pub mod terminal;

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::client::topology::{Shard, ShardNode};
use crate::client::{unavailable, ClientConfig, ClientError, ClusterClient, NodeStats};
use crate::protocol::resp::split_args;

/// Where the REPL writes its output.
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// What a line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran and succeeded (or there was nothing to do).
    Ok,
    /// The command ran and reported an error, or was malformed.
    Failed,
    /// `exit` or `quit`.
    Exit,
}

/// The REPL state: a cluster client and the output sink.
pub struct Repl {
    client: ClusterClient,
    sink: Sink,
}

const WIDE: usize = 70;
const NARROW: usize = 61;

impl Repl {
    /// A REPL for the given cluster writing to `sink`; retries are reported there too.
    pub fn new(config: ClientConfig, sink: Sink) -> Self {
        let retry_sink = sink.clone();
        let client = ClusterClient::new(config).on_retry(move |e| {
            let mut out = retry_sink.lock().expect("repl sink lock poisoned");
            // Output errors (a closed pipe) cannot be reported anywhere better; ignore them.
            let _ = writeln!(
                out,
                "[RETRY] Server {} failed, retrying... ({}/{})",
                e.server, e.attempt, e.of
            );
            let _ = out.flush();
        });
        Repl { client, sink }
    }

    /// The banner shown when the REPL starts on a terminal.
    pub fn banner(&self) -> String {
        let line = "=".repeat(WIDE);
        format!(
            "{line}\n{:^WIDE$}\n{line}\nServers: {} nodes\nSharding: Enabled (MD5 Consistent \
             Hashing)\nFault Tolerance: {} retries\n{line}\n",
            "DISTRIBUTED KEY-VALUE STORE CLIENT",
            self.client.servers().len(),
            self.client.policy().retries
        )
    }

    /// Runs one input line and writes its output followed by a blank line.
    pub async fn execute(&self, line: &str) -> Outcome {
        let Some(tokens) = split_args(line.as_bytes()) else {
            self.print("Error: unbalanced quotes\n\n");
            return Outcome::Failed;
        };
        let tokens: Vec<String> = tokens
            .into_iter()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .collect();
        let Some(command) = tokens.first() else {
            return Outcome::Ok;
        };
        let args = &tokens[1..];
        let (text, outcome) = match command.to_ascii_lowercase().as_str() {
            "exit" | "quit" => ("Goodbye!\n".to_string(), Outcome::Exit),
            "help" => (help(), Outcome::Ok),
            "servers" => (self.servers().await, Outcome::Ok),
            "set" if args.len() >= 2 => {
                let value = args[1..].join(" ");
                self.keyed(&args[0], |c, k| async move {
                    c.set(k.as_bytes(), value.as_bytes(), None).await?;
                    Ok(Ok("  Key set successfully\n".to_string()))
                })
                .await
            }
            "get" if args.len() == 1 => {
                self.keyed(&args[0], |c, k| async move {
                    Ok(match c.get_with_ttl(k.as_bytes()).await? {
                        Some((value, ttl)) => Ok(format!(
                            "  Key: {k}\n  Value: {}\n  TTL: {}\n",
                            String::from_utf8_lossy(&value),
                            ttl_text(ttl)
                        )),
                        None => Err("Key not found".to_string()),
                    })
                })
                .await
            }
            "del" | "delete" if args.len() == 1 => {
                self.keyed(&args[0], |c, k| async move {
                    Ok(if c.del(k.as_bytes()).await? {
                        Ok("  Key deleted successfully\n".to_string())
                    } else {
                        Err("Key not found".to_string())
                    })
                })
                .await
            }
            "expire" if args.len() == 2 => match args[1].parse::<i64>() {
                Ok(secs) => {
                    self.keyed(&args[0], |c, k| async move {
                        Ok(if c.expire(k.as_bytes(), secs).await? {
                            Ok(format!(
                                "  Expiration set successfully\n  TTL: {secs} seconds\n"
                            ))
                        } else {
                            Err("Key not found".to_string())
                        })
                    })
                    .await
                }
                Err(_) => (
                    "Error: TTL must be an integer number of seconds\n".to_string(),
                    Outcome::Failed,
                ),
            },
            "stats" | "keys" if args.len() <= 1 => {
                let stats = command.eq_ignore_ascii_case("stats");
                self.per_server(stats, args.first()).await
            }
            other => match usage(other) {
                Some(usage) => (format!("Usage: {usage}\n"), Outcome::Failed),
                None => (
                    format!("Unknown command: {other}. Type 'help' for the list of commands.\n"),
                    Outcome::Failed,
                ),
            },
        };
        self.print(&text);
        if outcome != Outcome::Exit {
            self.print("\n");
        }
        outcome
    }

    /// Runs a keyed command and renders its block with the owning server's number.
    async fn keyed<'a, F, Fut>(&'a self, key: &'a str, f: F) -> (String, Outcome)
    where
        F: FnOnce(&'a ClusterClient, &'a str) -> Fut,
        Fut: std::future::Future<Output = Result<Result<String, String>, ClientError>>,
    {
        // The key's shard depends on the cluster's table: learn it first (a plain cluster is
        // asked once, as the request itself would).
        self.client.replicated().await;
        let server = self.client.index_for(key.as_bytes()) + 1;
        block(server, f(&self.client, key).await)
    }

    async fn per_server(&self, stats: bool, which: Option<&String>) -> (String, Outcome) {
        let count = self.client.servers().len();
        let one = |index: usize| async move {
            let result = if stats {
                self.client.stats(index).await.map(|s| Ok(stats_text(&s)))
            } else {
                self.client
                    .keys(index, b"*")
                    .await
                    .map(|keys| Ok(keys_text(&keys)))
            };
            block(index + 1, result)
        };
        if let Some(which) = which {
            return match which.parse::<usize>() {
                Ok(n) if (1..=count).contains(&n) => one(n - 1).await,
                _ => (
                    format!("Error: invalid server number '{which}' (1-{count})\n"),
                    Outcome::Failed,
                ),
            };
        }
        if self.client.replicated().await {
            return self.per_shard(stats).await;
        }
        let mut text = String::new();
        let mut outcome = Outcome::Ok;
        let line = "=".repeat(NARROW);
        for index in 0..count {
            let port = self.client.servers()[index]
                .rsplit(':')
                .next()
                .unwrap_or("?")
                .to_string();
            if index > 0 {
                text.push('\n');
            }
            // Print the header before the request so retry notices appear under it.
            self.print(&format!(
                "{text}{line}\nServer {} (Port {port})\n{line}\n",
                index + 1
            ));
            text.clear();
            let (block, result) = one(index).await;
            if result == Outcome::Failed {
                outcome = Outcome::Failed;
            }
            text.push_str(&block);
        }
        (text, outcome)
    }

    /// `keys` or `stats` of a replicated cluster: each shard once, from its leader, under a
    /// `Shard N` header; the block names the server that answered, and `keys` lists only the
    /// shard's own keys (each node also holds copies of the other shards).
    async fn per_shard(&self, stats: bool) -> (String, Outcome) {
        let mut text = String::new();
        let mut outcome = Outcome::Ok;
        let line = "=".repeat(NARROW);
        // By shard id: ids may have gaps (a removed node) or exceed the server count (a node
        // joined).
        for (n, shard) in self.client.shard_indices().into_iter().enumerate() {
            if n > 0 {
                text.push('\n');
            }
            // The header goes out before the request so retry notices appear under it.
            self.print(&format!("{text}{line}\nShard {}\n{line}\n", shard + 1));
            text.clear();
            let result = if stats {
                self.client
                    .shard_stats(shard)
                    .await
                    .map(|(server, s)| (server, stats_text(&s)))
            } else {
                self.client
                    .shard_keys(shard, b"*")
                    .await
                    .map(|(server, keys)| (server, keys_text(&keys)))
            };
            let (block, result) = match result {
                Ok((server, details)) => block(server + 1, Ok(Ok(details))),
                Err(e) => block(shard + 1, Err(e)),
            };
            if result == Outcome::Failed {
                outcome = Outcome::Failed;
            }
            text.push_str(&block);
        }
        (text, outcome)
    }

    /// The spec's SERVER CONFIGURATION block; for a replicated cluster, one more line per
    /// shard before its closing line: its slots (see [`slots_text`]), the leader, the
    /// followers and their health.
    async fn servers(&self) -> String {
        let line = "=".repeat(WIDE);
        let mut out = format!("{line}\nSERVER CONFIGURATION\n{line}\n");
        let servers = self.client.servers();
        for (i, addr) in servers.iter().enumerate() {
            out.push_str(&format!("Server {}: {addr}\n", i + 1));
        }
        out.push_str(&format!(
            "Total Servers: {}\nSharding: Enabled (Consistent Hashing)\nRetry Policy: {}\n",
            servers.len(),
            self.client.policy().describe()
        ));
        if let Some(topology) = self.client.topology().await {
            out.push_str(&replication_line(&topology, servers.len()));
            for shard in &topology.shards {
                out.push_str(&shard_line(shard, &servers, topology.has_slots()));
            }
        }
        out.push_str(&format!("{line}\n"));
        out
    }

    fn print(&self, text: &str) {
        let mut out = self.sink.lock().expect("repl sink lock poisoned");
        // A closed stdout has nowhere to report to; the REPL just carries on.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// Renders a result as the spec's block for `server`.
fn block(server: usize, result: Result<Result<String, String>, ClientError>) -> (String, Outcome) {
    match result {
        Ok(Ok(details)) => (
            format!("✓ SUCCESS (Server {server})\n{details}"),
            Outcome::Ok,
        ),
        Ok(Err(message)) => (
            format!("✗ ERROR (Server {server})\n  {message}\n"),
            Outcome::Failed,
        ),
        // The spec's line stays as the spec prints it; the cause of the last failure follows
        // on a line of its own.
        Err(ClientError::RetriesExhausted {
            server: failed,
            retries,
            last,
        }) => (
            format!(
                "✗ ERROR (Server {server})\n  {}\n  Cause: {last}\n",
                unavailable(failed, retries)
            ),
            Outcome::Failed,
        ),
        Err(e) => (
            format!(
                "✗ ERROR (Server {server})\n  {}\n",
                capitalized(&e.to_string())
            ),
            Outcome::Failed,
        ),
    }
}

/// `text` with its first letter in upper case, as the block's other lines start.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `Replication: Raft, every shard on every node`, or, when the shards have fewer members
/// than there are servers (`--replicas R`), `Replication: Raft, each shard on 2 of the 3
/// nodes`.
fn replication_line(topology: &crate::client::Topology, servers: usize) -> String {
    let replicas = topology
        .shards
        .iter()
        .map(|s| s.nodes.len())
        .max()
        .unwrap_or(0);
    // The cluster's nodes, not only the listed ones (a node may have joined since).
    let mut nodes: Vec<&str> = topology
        .shards
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.id.as_str()))
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    let servers = servers.max(nodes.len());
    if replicas >= servers {
        "Replication: Raft, every shard on every node\n".to_string()
    } else {
        format!("Replication: Raft, each shard on {replicas} of the {servers} nodes\n")
    }
}

/// `Shard 1 (4096 slots: 0-4095): leader Server 1 (localhost:7001), followers Server 2
/// (online), Server 3 (failed)`; a node missing from the server list shows as the address it
/// reports. The slots part is left out when no shard reports slots (a server from before
/// slots): `Shard 1: leader ...`.
fn shard_line(shard: &Shard, servers: &[&str], slotted: bool) -> String {
    let name = |node: &ShardNode| match node.server {
        Some(i) => format!("Server {}", i + 1),
        None => node.addr.clone(),
    };
    let leader = match shard.leader() {
        Some(node) => match node.server.and_then(|i| servers.get(i)) {
            Some(addr) => format!("leader {} ({addr})", name(node)),
            None => format!("leader {}", node.addr),
        },
        None => "no leader (election under way)".to_string(),
    };
    let followers: Vec<String> = shard
        .followers()
        .map(|node| format!("{} ({})", name(node), node.health))
        .collect();
    let followers = if followers.is_empty() {
        "no followers".to_string()
    } else {
        format!("followers {}", followers.join(", "))
    };
    let slots = if slotted {
        format!(" ({})", slots_text(&shard.slots))
    } else {
        String::new()
    };
    format!("Shard {}{slots}: {leader}, {followers}\n", shard.index + 1)
}

/// A shard's slots in a line's width: the count, then the ranges (`first-last`, or one slot
/// alone) when there are at most [`RANGES_SHOWN`], else the first [`RANGES_SHOWN`] and the
/// number of ranges:
///
/// ```text
/// 0 slots
/// 1 slot: 77
/// 4096 slots: 0-4095
/// 4097 slots: 0-4095, 8000
/// 4096 slots in 4096 ranges: 1, 4, 7, ...
/// ```
///
/// (The initial table gives slot `s` to shard `s mod N + 1`, one range per slot: listing them
/// all would fill the screen.)
fn slots_text(ranges: &[(u16, u16)]) -> String {
    let count: usize = ranges
        .iter()
        .map(|&(first, last)| usize::from(last.saturating_sub(first)) + 1)
        .sum();
    let range = |&(first, last): &(u16, u16)| {
        if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        }
    };
    let shown: Vec<String> = ranges.iter().take(RANGES_SHOWN).map(range).collect();
    let noun = if count == 1 { "slot" } else { "slots" };
    match ranges.len() {
        0 => format!("{count} {noun}"),
        n if n <= RANGES_SHOWN => format!("{count} {noun}: {}", shown.join(", ")),
        n => format!("{count} {noun} in {n} ranges: {}, ...", shown.join(", ")),
    }
}

/// How many slot ranges a `servers` shard line shows.
const RANGES_SHOWN: usize = 3;

/// `  Keys (2): a, b`, or `  Keys (0): (none)`.
fn keys_text(keys: &[bytes::Bytes]) -> String {
    let names: Vec<String> = keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    let listed = if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    };
    format!("  Keys ({}): {listed}\n", names.len())
}

fn ttl_text(ttl: Option<i64>) -> String {
    match ttl {
        None => "No expiration".to_string(),
        Some(secs) => format!("{secs} seconds"),
    }
}

fn stats_text(s: &NodeStats) -> String {
    format!(
        "  Total Requests: {}\n  GET: {}\n  SET: {}\n  DELETE: {}\n  EXPIRE: {}\n  Total Keys: {}\n  \
         Keys with TTL: {}\n",
        s.total_requests, s.get, s.set, s.delete, s.expire, s.total_keys, s.keys_with_ttl
    )
}

fn usage(command: &str) -> Option<&'static str> {
    Some(match command {
        "set" => "set <key> <value>",
        "get" => "get <key>",
        "del" | "delete" => "del <key>",
        "expire" => "expire <key> <seconds>",
        "stats" => "stats [server]",
        "keys" => "keys [server]",
        _ => return None,
    })
}

fn help() -> String {
    "Commands:\n  set <key> <value>        Set a key to a value\n  get <key>                \
     Get a key's value and TTL\n  del <key>                Delete a key (also: delete)\n  \
     expire <key> <seconds>   Set a key's time to live\n  stats [server]           Statistics \
     of all servers or one\n  keys [server]            Keys of all servers or one\n  \
     servers                  Show the server configuration\n  help                     Show \
     this help\n  exit                     Leave (also: quit)\n"
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::client::fake::{shards_reply, Answer, FakeNode};
    use crate::node_for;

    /// The first `k{i}` key of shard `shard` of 3.
    fn key_of(shard: usize) -> String {
        (0..)
            .map(|i| format!("k{i}"))
            .find(|k| node_for(k.as_bytes(), 3) == shard)
            .expect("some key")
    }

    #[tokio::test]
    async fn a_replicated_cluster_shows_its_shards_and_each_shard_once() {
        // Server 1 failed; server 2 took over shard 1. Every node holds every shard's keys.
        let ports: Arc<Mutex<Vec<u16>>> = Arc::default();
        let keys = [key_of(0), key_of(1), key_of(2)];
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let (ports, keys) = (ports.clone(), keys.clone());
            nodes.push(
                FakeNode::start(move |words| {
                    let reply = match words[0].to_ascii_uppercase().as_str() {
                        "CLUSTER" => {
                            let ports = ports.lock().expect("ports lock").clone();
                            return Answer::Raw(shards_reply(
                                &ports,
                                &[Some(1), Some(1), Some(2)],
                                &[0],
                            ));
                        }
                        "KEYS" => keys.iter().fold(format!("*{}\r\n", keys.len()), |out, k| {
                            out + &format!("${}\r\n{k}\r\n", k.len())
                        }),
                        _ => "-ERR unexpected\r\n".to_string(),
                    };
                    Answer::Raw(reply.into_bytes())
                })
                .await,
            );
        }
        *ports.lock().expect("ports lock") = nodes.iter().map(|n| n.port).collect();
        let servers: Vec<String> = nodes
            .iter()
            .map(|n| format!("localhost:{}", n.port))
            .collect();
        let mut config = ClientConfig {
            servers: servers.clone(),
            ..ClientConfig::default()
        };
        config.retry.delay = Duration::from_millis(10);
        let out: Arc<Mutex<Vec<u8>>> = Arc::default();
        let repl = Repl::new(config, out.clone());

        for line in ["servers", "keys"] {
            assert_eq!(repl.execute(line).await, Outcome::Ok, "{line}");
        }
        let text = String::from_utf8(out.lock().expect("sink lock").clone()).expect("UTF-8");
        let (wide, narrow) = ("=".repeat(WIDE), "=".repeat(NARROW));
        let [s1, s2, s3] = [&servers[0], &servers[1], &servers[2]];
        let want = format!(
            "{wide}\nSERVER CONFIGURATION\n{wide}\nServer 1: {s1}\nServer 2: {s2}\n\
             Server 3: {s3}\nTotal Servers: 3\nSharding: Enabled (Consistent Hashing)\n\
             Retry Policy: 3 retries with 0.01s delay\n\
             Replication: Raft, every shard on every node\n\
             Shard 1: leader Server 2 ({s2}), followers Server 1 (failed), Server 3 (online)\n\
             Shard 2: leader Server 2 ({s2}), followers Server 1 (failed), Server 3 (online)\n\
             Shard 3: leader Server 3 ({s3}), followers Server 1 (failed), Server 2 (online)\n\
             {wide}\n\n\
             {narrow}\nShard 1\n{narrow}\n✓ SUCCESS (Server 2)\n  Keys (1): {}\n\n\
             {narrow}\nShard 2\n{narrow}\n✓ SUCCESS (Server 2)\n  Keys (1): {}\n\n\
             {narrow}\nShard 3\n{narrow}\n✓ SUCCESS (Server 3)\n  Keys (1): {}\n\n",
            keys[0], keys[1], keys[2]
        );
        assert_eq!(text, want);
        assert_eq!(nodes[0].count("KEYS"), 0, "the failed server is not asked");
        assert_eq!((nodes[1].count("KEYS"), nodes[2].count("KEYS")), (2, 1));
    }

    #[test]
    fn the_replication_line_counts_each_shards_members() {
        use crate::client::topology::{Shard, ShardNode, Topology};
        let node = |server: usize| ShardNode {
            id: server.to_string().repeat(40),
            addr: format!("localhost:{}", 7001 + server),
            server: Some(server),
            leader: false,
            health: "online".into(),
        };
        let topology = |replicas: usize| {
            Topology::new(
                (0..3)
                    .map(|index| Shard {
                        index,
                        slots: Vec::new(),
                        nodes: (0..replicas).map(|k| node((index + k) % 3)).collect(),
                    })
                    .collect(),
            )
            .expect("a valid topology")
        };
        assert_eq!(
            replication_line(&topology(3), 3),
            "Replication: Raft, every shard on every node\n"
        );
        assert_eq!(
            replication_line(&topology(2), 3),
            "Replication: Raft, each shard on 2 of the 3 nodes\n"
        );
        // A fourth node joined (not in the REPL's list): its shard on nodes 4, 1 and 2.
        let mut shards = topology(3).shards;
        shards.push(Shard {
            index: 3,
            slots: Vec::new(),
            nodes: vec![
                ShardNode {
                    server: None,
                    ..node(3)
                },
                node(0),
                node(1),
            ],
        });
        let grown = Topology::new(shards).expect("a valid topology");
        assert_eq!(
            replication_line(&grown, 3),
            "Replication: Raft, each shard on 3 of the 4 nodes\n"
        );
    }

    #[tokio::test]
    async fn shards_show_their_slots_and_sparse_ids() {
        use crate::client::fake::{slotted_shards_reply, FakeShard};
        use crate::slot_of;
        // Shard 2 was removed; shard 4 owns one range. Each node answers KEYS with its number.
        let ports: Arc<Mutex<Vec<u16>>> = Arc::default();
        let mut nodes = Vec::new();
        for index in 0..3 {
            let ports = ports.clone();
            nodes.push(
                FakeNode::start(move |words| {
                    let reply = match words[0].to_ascii_uppercase().as_str() {
                        "CLUSTER" => {
                            let ports = ports.lock().expect("ports lock").clone();
                            let interleaved = (0..1333).map(|i| (3 * i, 3 * i)).collect();
                            return Answer::Raw(slotted_shards_reply(
                                &ports,
                                &[
                                    FakeShard {
                                        id: 1,
                                        slots: interleaved,
                                        leader: Some(0),
                                    },
                                    FakeShard {
                                        id: 3,
                                        slots: vec![(1, 1), (4000, 4099)],
                                        leader: Some(2),
                                    },
                                    FakeShard {
                                        id: 4,
                                        slots: vec![(12000, 12287)],
                                        leader: None,
                                    },
                                ],
                                &[],
                            ));
                        }
                        "SET" => "+OK\r\n".to_string(),
                        "KEYS" => format!("*1\r\n$1\r\n{}\r\n", index + 1),
                        _ => "-ERR unexpected\r\n".to_string(),
                    };
                    Answer::Raw(reply.into_bytes())
                })
                .await,
            );
        }
        *ports.lock().expect("ports lock") = nodes.iter().map(|n| n.port).collect();
        let servers: Vec<String> = nodes
            .iter()
            .map(|n| format!("localhost:{}", n.port))
            .collect();
        let config = ClientConfig {
            servers: servers.clone(),
            ..ClientConfig::default()
        };
        let out: Arc<Mutex<Vec<u8>>> = Arc::default();
        let repl = Repl::new(config, out.clone());
        let key = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| (12000..=12287).contains(&slot_of(k.as_bytes())))
            .expect("a key of shard 4");
        for line in ["servers".to_string(), format!("set {key} v"), "keys".into()] {
            assert_eq!(repl.execute(&line).await, Outcome::Ok, "{line}");
        }
        let text = String::from_utf8(out.lock().expect("sink lock").clone()).expect("UTF-8");
        let [s1, s3] = [&servers[0], &servers[2]];
        let followers =
            |a: &str, b: &str| format!("followers Server {a} (online), Server {b} (online)");
        for line in [
            format!(
                "Shard 1 (1333 slots in 1333 ranges: 0, 3, 6, ...): leader Server 1 ({s1}), {}",
                followers("2", "3")
            ),
            format!(
                "Shard 3 (101 slots: 1, 4000-4099): leader Server 3 ({s3}), \
                 followers Server 1 (online), Server 2 (online)"
            ),
            "Shard 4 (288 slots: 12000-12287): no leader (election under way), followers \
             Server 1 (online), Server 2 (online), Server 3 (online)"
                .to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        // The key's block names its shard (4); shard 4 has no leader: its home server is
        // past the list, so a member takes the request and forwards it.
        assert!(
            text.contains("✓ SUCCESS (Server 4)\n  Key set successfully\n"),
            "{text}"
        );
        let narrow = "=".repeat(NARROW);
        let headers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("Shard ") && !l.contains(':'))
            .collect();
        assert_eq!(headers, ["Shard 1", "Shard 3", "Shard 4"]);
        assert!(text.contains(&format!(
            "{narrow}\nShard 3\n{narrow}\n✓ SUCCESS (Server 3)\n"
        )));
    }

    #[test]
    fn slots_show_as_a_count_and_a_few_ranges() {
        assert_eq!(slots_text(&[]), "0 slots");
        assert_eq!(slots_text(&[(77, 77)]), "1 slot: 77");
        assert_eq!(slots_text(&[(0, 4095)]), "4096 slots: 0-4095");
        assert_eq!(
            slots_text(&[(0, 4095), (8000, 8000), (9000, 9001)]),
            "4099 slots: 0-4095, 8000, 9000-9001"
        );
        let interleaved: Vec<(u16, u16)> = (0..4096).map(|i| (3 * i + 1, 3 * i + 1)).collect();
        assert_eq!(
            slots_text(&interleaved),
            "4096 slots in 4096 ranges: 1, 4, 7, ..."
        );
    }
}
