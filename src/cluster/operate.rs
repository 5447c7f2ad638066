//! The operator's commands on a running cluster (issue 11), any node taking them:
//!
//! ```text
//! CLUSTER MOVESLOTS <from-shard> <to-shard> <start>-<end> [<start>-<end> ...]
//! CLUSTER REMOVENODE <node-id>
//! CLUSTER JOIN <node-id> <host:port> <host:busport>
//! ```
//!
//! MOVESLOTS runs the move on the source shard's leader ([`super::migrate`]) and answers a
//! map `slots keys bytes wire-bytes ms`; REMOVENODE takes a node whose shard owns no slot out
//! of the table and waits until every group has let it go; JOIN is what `minikv server ID
//! PORT --join HOST:PORT` sends: it adds the node with an empty shard of its own and answers
//! the table (postcard bytes). `minikv rebalance` and `minikv remove-node` drive the first
//! two.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::table::{Change, Move};
use super::{membership, Answer, Call, Cluster, Peer, MOVE_TIMEOUT};
use crate::client::router::SLOTS;
use crate::protocol::Reply;

/// How long REMOVENODE waits for the groups to let the node go.
const REMOVE_WAIT: Duration = Duration::from_secs(60);

/// `CLUSTER MOVESLOTS`.
pub async fn move_slots(cluster: &Arc<Cluster>, args: &[Bytes]) -> Reply {
    let m = match parse_move(args) {
        Ok(m) => m,
        Err(e) => return Reply::Error(e.into()),
    };
    match cluster
        .call_leader(m.from, &Call::Move(m.clone()), MOVE_TIMEOUT)
        .await
    {
        Ok(Answer::Moved(stats)) => Reply::Map(vec![
            (Reply::text("slots"), Reply::Int(stats.slots as i64)),
            (Reply::text("keys"), Reply::Int(stats.keys as i64)),
            (Reply::text("bytes"), Reply::Int(stats.bytes as i64)),
            (
                Reply::text("wire-bytes"),
                Reply::Int(stats.wire_bytes as i64),
            ),
            (Reply::text("ms"), Reply::Int(stats.ms as i64)),
        ]),
        Ok(Answer::Failed(e)) | Err(e) => Reply::Error(e.into()),
        Ok(other) => Reply::Error(format!("TRYAGAIN unexpected answer {other:?}").into()),
    }
}

/// `CLUSTER REMOVENODE`.
pub async fn remove_node(cluster: &Arc<Cluster>, args: &[Bytes]) -> Reply {
    let [_, _, id] = args else {
        return Reply::Error(
            "ERR wrong number of arguments for 'cluster|removenode' command".into(),
        );
    };
    let Some(id) = std::str::from_utf8(id)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::Error("ERR node id must be a positive integer".into());
    };
    if !cluster.table().nodes.contains_key(&id) && !cluster.table().retired.contains(&id) {
        return Reply::Error(format!("ERR no node {id} in this cluster").into());
    }
    if let Err(e) = cluster.change_table(Change::Remove(id)).await {
        return Reply::Error(e.into());
    }
    match membership::wait_removed(cluster, id, REMOVE_WAIT).await {
        Ok(()) => Reply::ok(),
        Err(e) => Reply::Error(e.into()),
    }
}

/// `CLUSTER JOIN`.
pub async fn join(cluster: &Arc<Cluster>, args: &[Bytes]) -> Reply {
    let text = |i: usize| {
        args.get(i)
            .and_then(|a| std::str::from_utf8(a).ok())
            .map(str::to_string)
    };
    let (Some(id), Some(client), Some(bus)) = (
        text(2).and_then(|s| s.parse::<u64>().ok()),
        text(3),
        text(4),
    ) else {
        return Reply::Error("ERR usage: CLUSTER JOIN <node-id> <host:port> <host:busport>".into());
    };
    match cluster
        .change_table(Change::Join(id, Peer { client, bus }))
        .await
    {
        Ok(table) => match table.encode() {
            Ok(bytes) => Reply::Bulk(Bytes::from(bytes)),
            Err(e) => Reply::Error(format!("ERR {e}").into()),
        },
        Err(e) => Reply::Error(e.into()),
    }
}

/// What `--join` says: the node to ask, and this node's bus port and timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinSpec {
    /// A node of the cluster (`host:port`, its client port).
    pub target: String,
    /// This node's bus port (default: its port + 10000).
    pub bus_port: Option<u16>,
    /// `--cluster-node-timeout`.
    pub node_timeout: Duration,
}

/// How long a joining node keeps asking before it gives up.
const JOIN_WAIT: Duration = Duration::from_secs(30);

/// Asks `join.target` to add node `id` listening on `port` (the node's side of `--join`):
/// returns the cluster's shape as seen from this node and the table it joined. Asking again
/// with the same addresses (a restart) answers the table as it is.
///
/// # Errors
/// A message naming the node asked and why it refused (or could not be reached).
pub async fn request_join(
    config: &crate::config::NodeConfig,
    port: u16,
    join: &JoinSpec,
) -> Result<(super::ClusterSpec, super::Table), String> {
    let host = advertised_host(&config.host, &join.target).await;
    let bus_port = match join.bus_port {
        Some(p) => p,
        None => port
            .checked_add(super::spec::BUS_PORT_OFFSET)
            .ok_or("the bus port PORT + 10000 is past 65535: give --bus-port")?,
    };
    let client = format!("{host}:{port}");
    let bus = format!("{host}:{bus_port}");
    let pool = crate::client::node::NodePool::new(join.target.clone(), 1)
        .password(config.requirepass.clone());
    let args: Vec<Bytes> = ["CLUSTER", "JOIN", &config.id.to_string(), &client, &bus]
        .iter()
        .map(|w| Bytes::from(w.to_string()))
        .collect();
    let deadline = tokio::time::Instant::now() + JOIN_WAIT;
    let table = loop {
        let outcome = pool.call(&args, Duration::from_secs(10)).await;
        let retry = match outcome {
            Ok(Reply::Bulk(bytes)) => break super::Table::decode(&bytes)?,
            Ok(Reply::Error(e)) if e.starts_with("ERR") => {
                return Err(format!("{} refused the join: {e}", join.target))
            }
            Ok(other) => format!("{other:?}"),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("joining through {}: {retry}", join.target));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The node's view: every node up to this one by id (ids of removed nodes are left as
    // placeholders: the table, not this list, names the cluster's nodes from now on).
    let me = usize::try_from(config.id)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .ok_or("node ids start at 1")?;
    let nodes = (0..=me)
        .map(|i| {
            table
                .peer(super::ClusterSpec::member_id(i))
                .cloned()
                .unwrap_or(Peer {
                    client: format!("removed-{}:0", i + 1),
                    bus: format!("removed-{}:0", i + 1),
                })
        })
        .collect();
    let spec = super::ClusterSpec {
        nodes,
        me,
        replicas: table.replicas,
        node_timeout: join.node_timeout,
    };
    Ok((spec, table))
}

/// The host other nodes reach this one at: the bind address, or, when that is a wildcard,
/// the local address of a connection to the node asked.
async fn advertised_host(bind: &str, target: &str) -> String {
    if bind != "0.0.0.0" && bind != "::" {
        return bind.to_string();
    }
    match tokio::net::TcpStream::connect(target).await {
        Ok(s) => s
            .local_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| bind.to_string()),
        Err(_) => bind.to_string(),
    }
}

/// Reads `CLUSTER MOVESLOTS FROM TO RANGE...` (shards 1-based on the wire).
fn parse_move(args: &[Bytes]) -> Result<Move, String> {
    let usage = || {
        "ERR usage: CLUSTER MOVESLOTS <from-shard> <to-shard> <start>-<end> [<start>-<end> ...]"
            .to_string()
    };
    let word = |i: usize| args.get(i).and_then(|a| std::str::from_utf8(a).ok());
    let shard = |i: usize| {
        word(i)
            .and_then(|w| w.parse::<usize>().ok())
            .and_then(|s| s.checked_sub(1))
            .ok_or_else(usage)
    };
    let (from, to) = (shard(2)?, shard(3)?);
    let mut slots = Vec::new();
    for i in 4..args.len() {
        let w = word(i).ok_or_else(usage)?;
        let (a, b) = w.split_once('-').unwrap_or((w, w));
        let (a, b) = (
            a.parse::<u16>().map_err(|_| usage())?,
            b.parse::<u16>().map_err(|_| usage())?,
        );
        if a > b || b >= SLOTS {
            return Err(format!("ERR slot range {w} is not within 0-{}", SLOTS - 1));
        }
        slots.extend(a..=b);
    }
    slots.sort_unstable();
    slots.dedup();
    if slots.is_empty() {
        return Err(usage());
    }
    Ok(Move { slots, from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::from(w.to_string()))
            .collect()
    }

    #[test]
    fn moveslots_arguments() {
        let m = parse_move(&args("CLUSTER MOVESLOTS 1 4 0-2 7 1")).expect("parses");
        assert_eq!((m.from, m.to, m.slots), (0, 3, vec![0, 1, 2, 7]));
        assert!(parse_move(&args("CLUSTER MOVESLOTS 1 4")).is_err());
        assert!(parse_move(&args("CLUSTER MOVESLOTS 0 4 1")).is_err());
        assert!(parse_move(&args("CLUSTER MOVESLOTS 1 4 5-2")).is_err());
        assert!(parse_move(&args("CLUSTER MOVESLOTS 1 4 12288")).is_err());
    }
}
