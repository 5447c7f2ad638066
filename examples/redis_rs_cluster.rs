//! The stock redis-rs client used against a minikv cluster, with minikv's routing function.
//!
//! A minikv node speaks RESP, so any Redis client can talk to it. The nodes do not know about
//! each other (there is no `CLUSTER` command and no redirection): the client picks the node
//! that owns a key, exactly as the spec does, with [`minikv::node_for`]
//! (`md5(key) mod N`, index 0 is server 1).
//!
//! Start a cluster, then run the example:
//!
//! ```text
//! cargo run --release -- cluster                 # nodes on 127.0.0.1:7001-7003
//! cargo run --example redis_rs_cluster           # default servers
//! cargo run --example redis_rs_cluster -- 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003
//! ```
//!
//! The server list must be the same, in the same order, as every other client of the cluster
//! uses (the REPL's `--servers`), or keys are looked for on the wrong node.

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

/// The servers used when none are given on the command line: the `minikv cluster` defaults.
const DEFAULT_SERVERS: [&str; 3] = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];

#[tokio::main]
async fn main() -> redis::RedisResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let servers: Vec<String> = if args.is_empty() {
        DEFAULT_SERVERS.iter().map(|s| s.to_string()).collect()
    } else {
        args
    };

    // One multiplexed connection per server, in list order: connections[i] is server i + 1.
    let mut connections: Vec<MultiplexedConnection> = Vec::with_capacity(servers.len());
    for addr in &servers {
        let client = redis::Client::open(format!("redis://{addr}/"))?;
        connections.push(client.get_multiplexed_async_connection().await?);
    }

    let users = [
        ("user:alice", "Alice"),
        ("user:bob", "Bob"),
        ("user:charlie", "Charlie"),
        ("session:xyz", "token-123"),
        ("user:1", "Dave"),
    ];
    for (key, value) in users {
        let index = minikv::node_for(key.as_bytes(), connections.len());
        let conn = &mut connections[index];
        // A multiplexed connection is a cheap handle; the calls need `&mut`.
        let () = conn.set_ex(key, value, 300).await?;
        let stored: Option<String> = conn.get(key).await?;
        let ttl: i64 = conn.ttl(key).await?;
        println!(
            "{key:<14} -> Server {} ({}): {stored:?}, ttl {ttl}s",
            index + 1,
            servers[index]
        );
    }

    // The node-side view: each server holds the keys routed to it (and whatever else was
    // stored there before).
    for (index, conn) in connections.iter_mut().enumerate() {
        let mut keys: Vec<String> = conn.keys("*").await?;
        keys.sort();
        println!("Server {} ({}): {keys:?}", index + 1, servers[index]);
    }
    Ok(())
}
