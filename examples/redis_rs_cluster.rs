//! The stock redis-rs client used against a minikv cluster, with minikv's routing function.
//!
//! A minikv node speaks RESP, so any Redis client can talk to it. The nodes do not know about
//! each other (there is no `CLUSTER` command and no redirection): the client picks the node
//! that owns a key, exactly as the spec does, with [`minikv::node_for`]
//! (`md5(key) mod N`, index 0 is server 1).
//!
//! By default the example starts three throw-away nodes of its own, in this process, on free
//! ports of 127.0.0.1 with temporary data directories, and stops them at the end: running it
//! never touches a cluster you have running. To use a real cluster instead, name it (the
//! example then writes five demo keys into it, with a 300 s TTL, and says so first):
//!
//! ```text
//! cargo run --example redis_rs_cluster                 # its own throw-away nodes
//! cargo run --example redis_rs_cluster -- --servers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
//! ```
//!
//! The server list must be the same, in the same order, as every other client of the cluster
//! uses (the REPL's `--servers`), or keys are looked for on the wrong node.

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use minikv::node::Node;
use minikv::{NodeConfig, Server};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use tokio::task::JoinHandle;

/// The keys written, with their values.
const USERS: [(&str, &str); 5] = [
    ("user:alice", "Alice"),
    ("user:bob", "Bob"),
    ("user:charlie", "Charlie"),
    ("session:xyz", "token-123"),
    ("user:1", "Dave"),
];

/// Nodes started by the example.
const LOCAL_NODES: u64 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_rs_cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (servers, local) = match servers_arg()? {
        Some(servers) => {
            let keys: Vec<&str> = USERS.iter().map(|(k, _)| *k).collect();
            eprintln!(
                "*** Writing {} into the cluster at {} (overwriting them, with a 300 s TTL) ***",
                keys.join(", "),
                servers.join(", ")
            );
            (servers, Vec::new())
        }
        None => {
            let local = LocalNode::start_all(LOCAL_NODES).await?;
            let servers: Vec<String> = local.iter().map(|n| n.addr.clone()).collect();
            println!(
                "Started {} throw-away nodes: {} (pass --servers to use a running cluster)",
                local.len(),
                servers.join(", ")
            );
            (servers, local)
        }
    };

    demo(&servers).await?;

    for node in local {
        node.stop().await?;
    }
    Ok(())
}

/// SET, GET and TTL of each demo key on the node `node_for` picks, then each node's keys.
async fn demo(servers: &[String]) -> redis::RedisResult<()> {
    // One multiplexed connection per server, in list order: connections[i] is server i + 1.
    let mut connections: Vec<MultiplexedConnection> = Vec::with_capacity(servers.len());
    for addr in servers {
        let client = redis::Client::open(format!("redis://{addr}/"))?;
        connections.push(client.get_multiplexed_async_connection().await?);
    }

    for (key, value) in USERS {
        let index = minikv::node_for(key.as_bytes(), connections.len());
        let conn = &mut connections[index];
        // A multiplexed connection is a cheap handle; the calls need `&mut`.
        let () = conn.set_ex(key, value, 300).await?;
        let stored: Option<String> = conn.get(key).await?;
        let ttl: i64 = conn.ttl(key).await?;
        println!(
            "{key:<14} -> Server {} ({}): {}, ttl {ttl}s",
            index + 1,
            servers[index],
            stored.as_deref().unwrap_or("(nil)")
        );
    }

    // The node-side view: each server holds the keys routed to it (and, on a real cluster,
    // whatever else was stored there before).
    for (index, conn) in connections.iter_mut().enumerate() {
        let mut keys: Vec<String> = conn.keys("*").await?;
        keys.sort();
        println!(
            "Server {} ({}): {}",
            index + 1,
            servers[index],
            keys.join(", ")
        );
    }
    Ok(())
}

/// The servers named with `--servers a,b,c` (or `--servers=a,b,c`); `None` without it.
fn servers_arg() -> Result<Option<Vec<String>>, String> {
    let usage = || "usage: redis_rs_cluster [--servers HOST:PORT,HOST:PORT,...]".to_string();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = match args.as_slice() {
        [] => return Ok(None),
        [flag, list] if flag == "--servers" => list.clone(),
        [flag] => match flag.strip_prefix("--servers=") {
            Some(list) => list.to_string(),
            None => return Err(usage()),
        },
        _ => return Err(usage()),
    };
    let servers: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if servers.is_empty() {
        return Err(usage());
    }
    Ok(Some(servers))
}

/// A node running in this process on a free port, with a temporary data directory.
struct LocalNode {
    addr: String,
    node: Arc<Node>,
    task: JoinHandle<minikv::Result<()>>,
    /// Removed when the node is dropped, after it stopped.
    _dir: tempfile::TempDir,
}

impl LocalNode {
    /// Starts nodes 1..=n.
    async fn start_all(n: u64) -> Result<Vec<LocalNode>, Box<dyn Error>> {
        let mut nodes = Vec::new();
        for id in 1..=n {
            nodes.push(LocalNode::start(id).await?);
        }
        Ok(nodes)
    }

    async fn start(id: u64) -> Result<LocalNode, Box<dyn Error>> {
        let dir = tempfile::tempdir()?;
        let config = NodeConfig {
            id,
            host: "127.0.0.1".into(),
            port: 0,
            data_dir: dir.path().to_path_buf(),
            // Nothing here needs a snapshot before the final one.
            save_interval: Duration::from_secs(3600),
            ..NodeConfig::default()
        };
        let server = Server::bind(config).await?;
        let addr = server.local_addr()?.to_string();
        let node = server.node();
        let task = tokio::spawn(server.run());
        Ok(LocalNode {
            addr,
            node,
            task,
            _dir: dir,
        })
    }

    /// Stops the node (it drains its connections and writes its final snapshot into the
    /// temporary directory) and waits for it.
    async fn stop(self) -> Result<(), Box<dyn Error>> {
        self.node.shutdown.cancel();
        self.task.await??;
        Ok(())
    }
}
