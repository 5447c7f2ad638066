//! What `--cluster`, `--replicas` and `--bus-port` describe: every node's client and bus
//! address in id order, which node this is, and which nodes replicate which shard.
//!
//! Shards and placement: with N nodes there are N shards; key `k` is in shard
//! `md5(k) mod N` (0-based here; "shard i+1" in the spec's words), exactly the spec's
//! client-side routing. Shard `s` is replicated on the R nodes `s, s+1, ..., s+R-1`
//! (modulo N), and node `s` is the member that bootstraps it, so with no failures node `s`
//! leads shard `s` and "Server i" in the REPL still means node i.

use std::time::Duration;

use crate::client::router::node_for;

/// One node of the cluster as the list names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Peer {
    /// Where clients reach it: `host:port`.
    pub client: String,
    /// Where its cluster bus listens: `host:busport`.
    pub bus: String,
}

/// The cluster's shape, the same on every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Every node in id order (node id `i + 1` is entry `i`).
    pub nodes: Vec<Peer>,
    /// This node's index in `nodes`.
    pub me: usize,
    /// Replicas per shard (members of each Raft group), at most `nodes.len()`.
    pub replicas: usize,
    /// Redis's `cluster-node-timeout`: how long without a leader's heartbeat before a
    /// follower starts an election (the minimum; the maximum is twice that).
    pub node_timeout: Duration,
}

/// The default `--cluster-node-timeout`: elections start 250-500 ms after the last heartbeat.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_millis(250);

/// The bus port of a node whose list entry does not say: Redis Cluster's `PORT + 10000`.
pub const BUS_PORT_OFFSET: u16 = 10000;

/// Why a `--cluster` list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// An entry is not `HOST:PORT` or `HOST:PORT@BUSPORT`.
    #[error("--cluster entry {index} ({entry:?}) is not HOST:PORT or HOST:PORT@BUSPORT")]
    Entry {
        /// 1-based position in the list.
        index: usize,
        /// The entry as given.
        entry: String,
    },
    /// The node's id is past the list's end.
    #[error("node id {id} is not in the --cluster list of {count} nodes")]
    NoSuchId {
        /// The id given.
        id: u64,
        /// The list's length.
        count: usize,
    },
    /// The node's own entry names another port than it listens on.
    #[error("--cluster entry {id} is {entry} but this node listens on port {port}")]
    PortMismatch {
        /// The node's id.
        id: u64,
        /// Its entry.
        entry: String,
        /// The port it was started with.
        port: u16,
    },
    /// `--replicas` is 0 or more than the nodes.
    #[error("--replicas {replicas} must be between 1 and the number of nodes ({count})")]
    Replicas {
        /// As given.
        replicas: usize,
        /// Nodes in the list.
        count: usize,
    },
    /// Two entries name the same client or bus address.
    #[error("--cluster names {addr} twice")]
    Duplicate {
        /// The repeated address.
        addr: String,
    },
    /// The bus port would be past 65535.
    #[error("--cluster entry {entry}: PORT + 10000 is past 65535; give its bus port as HOST:PORT@BUSPORT")]
    BusPort {
        /// The entry.
        entry: String,
    },
}

impl ClusterSpec {
    /// Reads `--cluster LIST` for node `id` listening on `port`: entries `HOST:PORT`, or
    /// `HOST:PORT@BUSPORT` as Redis writes a node's address in `CLUSTER NODES`. `bus_port`
    /// (`--bus-port`) overrides this node's own bus port. `replicas` defaults to 3, or the
    /// number of nodes if fewer.
    ///
    /// # Errors
    /// A [`SpecError`] naming what is wrong with the list.
    pub fn parse(
        list: &str,
        id: u64,
        port: u16,
        replicas: Option<usize>,
        bus_port: Option<u16>,
    ) -> Result<ClusterSpec, SpecError> {
        let mut nodes = Vec::new();
        for (i, raw) in list.split(',').map(str::trim).enumerate() {
            let bad = || SpecError::Entry {
                index: i + 1,
                entry: raw.to_string(),
            };
            let (client, bus) = match raw.split_once('@') {
                Some((client, bus)) => (client, Some(bus)),
                None => (raw, None),
            };
            let (host, client_port) = client.rsplit_once(':').ok_or_else(bad)?;
            if host.is_empty() {
                return Err(bad());
            }
            let client_port: u16 = client_port.parse().map_err(|_| bad())?;
            if client_port == 0 {
                return Err(bad());
            }
            let bus_port =
                match bus {
                    Some(b) => b.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
                    None => client_port.checked_add(BUS_PORT_OFFSET).ok_or_else(|| {
                        SpecError::BusPort {
                            entry: raw.to_string(),
                        }
                    })?,
                };
            nodes.push(Peer {
                client: format!("{host}:{client_port}"),
                bus: format!("{host}:{bus_port}"),
            });
        }
        let count = nodes.len();
        let me = usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_sub(1))
            .filter(|me| *me < count)
            .ok_or(SpecError::NoSuchId { id, count })?;
        if let Some(p) = bus_port {
            let host = nodes[me]
                .bus
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or_default();
            nodes[me].bus = format!("{host}:{p}");
        }
        let own_port = nodes[me]
            .client
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if own_port != Some(port) {
            return Err(SpecError::PortMismatch {
                id,
                entry: nodes[me].client.clone(),
                port,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for n in &nodes {
            for addr in [&n.client, &n.bus] {
                if !seen.insert(addr.clone()) {
                    return Err(SpecError::Duplicate { addr: addr.clone() });
                }
            }
        }
        let replicas = replicas.unwrap_or(count.min(3));
        if replicas == 0 || replicas > count {
            return Err(SpecError::Replicas { replicas, count });
        }
        Ok(ClusterSpec {
            nodes,
            me,
            replicas,
            node_timeout: DEFAULT_NODE_TIMEOUT,
        })
    }

    /// The number of shards (the number of nodes at bootstrap).
    pub fn shards(&self) -> usize {
        self.nodes.len()
    }

    /// The shard of `key` (0-based): the spec's `md5(key) mod N`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        node_for(key, self.shards())
    }

    /// The nodes (indices) replicating `shard`, its bootstrapping node first.
    pub fn members(&self, shard: usize) -> Vec<usize> {
        let n = self.shards();
        (0..self.replicas).map(|k| (shard + k) % n).collect()
    }

    /// The shards this node replicates, in order.
    pub fn my_shards(&self) -> Vec<usize> {
        (0..self.shards())
            .filter(|s| self.members(*s).contains(&self.me))
            .collect()
    }

    /// A node's Raft member id: its 1-based node id.
    pub fn member_id(index: usize) -> u64 {
        index as u64 + 1
    }

    /// A node's 40-hex-digit id as CLUSTER MYID and CLUSTER SHARDS show it: derived from its
    /// position and client address, so it is the same on every node and across restarts.
    pub fn node_name(&self, index: usize) -> String {
        let addr = self.nodes.get(index).map_or("", |p| p.client.as_str());
        node_name(ClusterSpec::member_id(index), addr)
    }
}

/// Node `member`'s 40-hex-digit id, from its id and client address (see
/// [`ClusterSpec::node_name`]).
pub fn node_name(member: u64, client: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("minikv-node/{member}/{client}").as_bytes());
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

    #[test]
    fn parses_the_list_with_default_bus_ports_and_replicas() {
        let spec = ClusterSpec::parse(LIST, 2, 7002, None, None).expect("parses");
        assert_eq!(spec.me, 1);
        assert_eq!(spec.replicas, 3);
        assert_eq!(spec.nodes[2].bus, "127.0.0.1:17003");
        assert_eq!(spec.members(2), vec![2, 0, 1]);
        assert_eq!(spec.my_shards(), vec![0, 1, 2]);
    }

    #[test]
    fn explicit_bus_ports_and_fewer_replicas() {
        let list = "a:1@5001,b:2@5002,c:3@5003,d:4@5004";
        let spec = ClusterSpec::parse(list, 1, 1, Some(2), Some(6001)).expect("parses");
        assert_eq!(spec.nodes[0].bus, "a:6001");
        assert_eq!(spec.nodes[3].bus, "d:5004");
        assert_eq!(spec.members(3), vec![3, 0]);
        assert_eq!(spec.my_shards(), vec![0, 3]);
        assert_eq!(spec.node_name(0).len(), 40);
        assert_ne!(spec.node_name(0), spec.node_name(1));
    }

    #[test]
    fn refuses_what_cannot_work() {
        assert!(matches!(
            ClusterSpec::parse(LIST, 4, 7004, None, None),
            Err(SpecError::NoSuchId { .. })
        ));
        assert!(matches!(
            ClusterSpec::parse(LIST, 1, 7005, None, None),
            Err(SpecError::PortMismatch { .. })
        ));
        assert!(matches!(
            ClusterSpec::parse("x:1,:2", 1, 1, None, None),
            Err(SpecError::Entry { index: 2, .. })
        ));
        assert!(matches!(
            ClusterSpec::parse(LIST, 1, 7001, Some(4), None),
            Err(SpecError::Replicas { .. })
        ));
        assert!(matches!(
            ClusterSpec::parse("h:1,h:1", 1, 1, None, None),
            Err(SpecError::Duplicate { .. })
        ));
        assert!(matches!(
            ClusterSpec::parse("h:60000", 1, 60000, None, None),
            Err(SpecError::BusPort { .. })
        ));
    }

    #[test]
    fn shard_of_is_the_spec_formula() {
        let spec = ClusterSpec::parse(LIST, 1, 7001, None, None).expect("parses");
        for key in ["user:alice", "user:charlie", "user:1", ""] {
            assert_eq!(spec.shard_of(key.as_bytes()), node_for(key.as_bytes(), 3));
        }
    }
}
