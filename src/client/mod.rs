//! The cluster client: routes each key to its shard with the spec's MD5 rule, keeps a pool of
//! connections per node, times requests out and retries unreachable nodes.
//!
//! Shard `i` is served by server `i` of the list, as the spec has it, until a replicated
//! cluster (nodes started with `--cluster`) says otherwise: on first use the client asks one
//! reachable node for `CLUSTER SHARDS` ([`topology`]); from then on a key goes to the shard
//! owning its slot ([`router::slot_of`]; by `md5(key) mod shards` for a server from before
//! slots), and each shard's requests to the leader the reply names. A node answering with an
//! error is part of a plain cluster; the client then never asks again and routes exactly as
//! the spec does.
//!
//! The table is read again (each time by one task, whichever requests wait on it):
//! - when a request fails in a way that suggests a failover ([`retry::suggests_failover`]);
//! - on a `-MOVED <slot> <host:port>` or `-ASK <slot> <host:port>` reply, after which the
//!   request is sent again to that address (after `ASKING` on the same connection for `ASK`,
//!   as Redis Cluster clients do), at most [`MAX_REDIRECTS`] times;
//! - when a node's `cluster_current_epoch` (`CLUSTER INFO`) changes: at most once per
//!   [`ClientConfig::topology_check`], a request also carries `CLUSTER INFO` in its round trip.
//!
//! Nodes forward a request for a shard they do not lead, so a stale table costs a hop, never
//! a wrong answer.
//!
//! Besides strings, typed calls cover hashes, lists, sets, sorted sets and PUBLISH
//! (`hset`, `lpush`, `sadd`, `zadd`, `zrange_withscores`, `publish`...; see the `typed`
//! submodule's methods below); anything else goes through [`ClusterClient::call_shard`].
//!
//! It speaks RESP to the nodes and depends on `protocol` only, never on `server` or `store`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), minikv::client::ClientError> {
//! use minikv::{ClientConfig, ClusterClient};
//! let client = ClusterClient::new(ClientConfig::default());
//! client.set(b"user:1", b"Alice", None).await?;
//! assert_eq!(client.get(b"user:1").await?.as_deref(), Some(&b"Alice"[..]));
//! # Ok(()) }
//! ```

mod error;
pub mod node;
pub mod rebalance;
pub mod retry;
pub mod router;
mod routing;
pub mod topology;
mod typed;

pub use error::{unavailable, ClientError};

#[cfg(test)]
pub(crate) mod fake;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::protocol::Reply;
use node::NodePool;
pub use retry::{Backoff, RetryPolicy};
use routing::{leader_in, shard_for, PoolTemplate, Route, Routing, ViewKind};
pub use topology::Topology;

/// A retry about to happen, reported to the observer (the REPL prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryEvent {
    /// The 1-based server number; for a keyed request, the key's shard number.
    pub server: usize,
    /// This retry's number, from 1.
    pub attempt: u32,
    /// Retries the policy allows.
    pub of: u32,
}

/// Cluster client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of each server; index 0 is server 1.
    pub servers: Vec<String>,
    /// Timeouts and retries.
    pub retry: RetryPolicy,
    /// Idle connections kept per node.
    pub pool_size: usize,
    /// Password of password-protected nodes: every new connection sends `AUTH password`
    /// before its first request.
    pub password: Option<String>,
    /// Connect to the nodes with TLS (build it with [`crate::tls::client_config`]); `None`
    /// connects with plain TCP.
    pub tls: Option<Arc<crate::tls::TlsClientConfig>>,
    /// In a replicated cluster, how often at most a request also asks its node for
    /// `CLUSTER INFO`, in the same round trip, to compare `cluster_current_epoch` with the one
    /// that node reported before: a change (a failover, slots moved) makes the client read
    /// `CLUSTER SHARDS` again. `None`: never. Plain clusters are never asked.
    pub topology_check: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            servers: ["localhost:7001", "localhost:7002", "localhost:7003"]
                .map(String::from)
                .to_vec(),
            retry: RetryPolicy::default(),
            pool_size: 16,
            password: None,
            tls: None,
            topology_check: Some(DEFAULT_TOPOLOGY_CHECK),
        }
    }
}

/// The default [`ClientConfig::topology_check`]: once a second.
pub const DEFAULT_TOPOLOGY_CHECK: Duration = Duration::from_secs(1);

/// How many `MOVED`/`ASK` redirects one request follows before its last reply is returned as
/// it came (a loop between nodes that disagree).
pub const MAX_REDIRECTS: u32 = 5;

type Observer = Arc<dyn Fn(RetryEvent) + Send + Sync>;

/// The spec's STATS figures of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeStats {
    /// Requests the node handled before this one, less the `CLUSTER SHARDS` queries this
    /// client sent it (the client's own bookkeeping, not its user's requests).
    pub total_requests: i64,
    /// GET requests.
    pub get: i64,
    /// SET requests.
    pub set: i64,
    /// DELETE requests.
    pub delete: i64,
    /// EXPIRE requests.
    pub expire: i64,
    /// Keys stored.
    pub total_keys: i64,
    /// Keys with a TTL.
    pub keys_with_ttl: i64,
}

/// A client for a whole cluster. Cheap to share: wrap it in an `Arc` or clone the pools'
/// owner; every method takes `&self` and may be called concurrently.
#[derive(Clone)]
pub struct ClusterClient {
    /// The configured servers' pools, index 0 being server 1.
    nodes: Arc<Vec<Arc<NodePool>>>,
    policy: RetryPolicy,
    observer: Option<Observer>,
    routing: Arc<Routing>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("servers", &self.servers())
            .field("policy", &self.policy)
            .finish()
    }
}

impl ClusterClient {
    /// A client for `config.servers`. Connects lazily, on first use of each node.
    pub fn new(config: ClientConfig) -> Self {
        let template = PoolTemplate {
            pool_size: config.pool_size,
            password: config.password,
            tls: config.tls,
        };
        let nodes = config
            .servers
            .iter()
            .map(|addr| Arc::new(template.pool(addr.clone())))
            .collect();
        let routing = Routing::new(config.servers.len(), template, config.topology_check);
        ClusterClient {
            nodes: Arc::new(nodes),
            policy: config.retry,
            observer: None,
            routing: Arc::new(routing),
        }
    }

    /// Calls `observer` before every retry.
    pub fn on_retry(mut self, observer: impl Fn(RetryEvent) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The configured `host:port` list.
    pub fn servers(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.addr()).collect()
    }

    /// The retry policy in force.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The 0-based index of the shard owning `key` as the client sees the cluster now, which
    /// is also the spec's server for it: `node_for(key, servers)` in a plain cluster (or before
    /// the first request), and in a replicated one the shard owning the key's slot (or
    /// `md5(key) mod shards` for a server from before slots).
    pub fn index_for(&self, key: &[u8]) -> usize {
        shard_for(&self.routing.view(), key, self.nodes.len())
    }

    /// The 0-based indices of the shards as the client sees the cluster now: a replicated
    /// cluster's shard ids less one, in order (gaps possible: a removed node's shard is gone;
    /// ids past the server count: a node joined), else `0..servers`, one per server.
    pub fn shard_indices(&self) -> Vec<usize> {
        match &self.routing.view().kind {
            ViewKind::Replicated(topology) => topology.shards.iter().map(|s| s.index).collect(),
            ViewKind::Unknown | ViewKind::Plain => (0..self.nodes.len()).collect(),
        }
    }

    /// Sends any command to server `index` (0-based) with the retry policy. Error replies
    /// come back as `Ok(Reply::Error)`.
    ///
    /// # Errors
    /// [`ClientError::RetriesExhausted`] when the node stayed unreachable.
    pub async fn call(&self, index: usize, args: Vec<Bytes>) -> Result<Reply, ClientError> {
        let mut replies = self.pipeline(index, vec![args]).await?;
        replies
            .pop()
            .ok_or_else(|| ClientError::Protocol("the node sent no reply".into()))
    }

    /// Sends several commands to server `index` in one round trip, with the retry policy.
    ///
    /// # Errors
    /// As [`ClusterClient::call`].
    pub async fn pipeline(
        &self,
        index: usize,
        commands: Vec<Vec<Bytes>>,
    ) -> Result<Vec<Reply>, ClientError> {
        let node = self
            .nodes
            .get(index)
            .ok_or(ClientError::NoSuchServer(index + 1))?;
        let mut retries: u32 = 0;
        loop {
            let result = node.pipeline(commands.clone(), self.policy.timeout).await;
            if let Err(e) = &result {
                // The REPL's `[RETRY]` lines name no cause (the spec's text); this is where
                // each attempt's cause shows, with RUST_LOG=debug.
                tracing::debug!(
                    server = index + 1,
                    attempt = retries.saturating_add(1),
                    of = self.policy.retries.saturating_add(1),
                    "attempt failed: {e}"
                );
            }
            match result {
                Ok(replies) => return Ok(replies),
                Err(e) if retry::is_retryable(&e) && retries < self.policy.retries => {
                    retries += 1;
                    if let Some(observer) = &self.observer {
                        observer(RetryEvent {
                            server: index + 1,
                            attempt: retries,
                            of: self.policy.retries,
                        });
                    }
                    tokio::time::sleep(self.policy.delay_before(retries)).await;
                }
                Err(e) if retry::is_retryable(&e) => {
                    return Err(ClientError::RetriesExhausted {
                        server: index + 1,
                        retries,
                        last: Box::new(e),
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends any command to the current leader of shard `shard` (0-based: shard id `shard + 1`;
    /// the node the spec names, server `shard + 1`, unless a replicated cluster says another
    /// node leads it), with the retry policy: before each retry that follows a failure
    /// suggesting a failover ([`retry::suggests_failover`]), the client asks the cluster who
    /// leads the shard now. `CLUSTERDOWN` and `TRYAGAIN` replies are retried like unreachable
    /// nodes; `MOVED` and `ASK` replies are followed (see the module doc); other error replies
    /// come back as `Ok(Reply::Error)`. Returns the 0-based index of the server that answered,
    /// with its reply (an index past the configured list names a node only a redirect named).
    ///
    /// # Errors
    /// [`ClientError::RetriesExhausted`] (naming the shard's number, the spec's `Server i`)
    /// when no leader answered; [`ClientError::OutcomeUnknown`] when a command that is not
    /// idempotent lost its reply; [`ClientError::NoSuchServer`] (plain cluster) or
    /// [`ClientError::NoSuchShard`] (replicated) for a shard the cluster does not have.
    pub async fn call_shard(
        &self,
        shard: usize,
        args: Vec<Bytes>,
    ) -> Result<(usize, Reply), ClientError> {
        self.route(Route::Shard(shard), args).await
    }

    /// The 0-based index of the server this client sends shard `shard`'s requests to now,
    /// without asking the cluster: the shard's leader when it is a configured server; else
    /// (no leader, or one outside the list) the shard's home server `shard`, or a configured
    /// member of the shard, or server 0, which forward the request.
    pub fn leader_of(&self, shard: usize) -> usize {
        leader_in(&self.routing.view(), shard, self.nodes.len())
    }

    /// True when the nodes are a replicated cluster (asks them on first use).
    pub async fn replicated(&self) -> bool {
        self.discover().await;
        matches!(self.routing.view().kind, ViewKind::Replicated(_))
    }

    /// Asks the nodes for the cluster's shards and leaders now, and routes by the answer from
    /// then on. `None` for a plain cluster (asked once only), or when no node answered.
    pub async fn topology(&self) -> Option<Arc<Topology>> {
        let view = self.routing.view();
        if !matches!(view.kind, ViewKind::Plain) {
            self.refresh(view.generation, None).await;
        }
        match self.routing.view().kind {
            ViewKind::Replicated(topology) => Some(topology),
            ViewKind::Unknown | ViewKind::Plain => None,
        }
    }

    fn servers_owned(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr().to_string()).collect()
    }

    /// Sends a keyed command to the key's shard leader; error replies become
    /// [`ClientError::Server`].
    async fn keyed(&self, key: &[u8], args: Vec<Bytes>) -> Result<Reply, ClientError> {
        match self.route(Route::Key(key), args).await?.1 {
            Reply::Error(e) => Err(ClientError::Server(e.into_owned())),
            reply => Ok(reply),
        }
    }

    /// SET, with an optional TTL in seconds.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn set(&self, key: &[u8], value: &[u8], ttl: Option<u64>) -> Result<(), ClientError> {
        let mut args = vec![b("SET"), copy(key), copy(value)];
        if let Some(ttl) = ttl {
            args.extend([b("EX"), Bytes::from(ttl.to_string())]);
        }
        self.keyed(key, args).await.map(drop)
    }

    /// GET: the value, or `None` for a missing key.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, ClientError> {
        match self.keyed(key, vec![b("GET"), copy(key)]).await? {
            Reply::Bulk(v) => Ok(Some(v)),
            Reply::Nil => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// The spec's GET: the value and its remaining TTL in seconds (`None` without expiry),
    /// in one request.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn get_with_ttl(
        &self,
        key: &[u8],
    ) -> Result<Option<(Bytes, Option<i64>)>, ClientError> {
        match self.keyed(key, vec![b("GETWITHTTL"), copy(key)]).await? {
            Reply::Nil => Ok(None),
            Reply::Array(parts) => match parts.as_slice() {
                [Reply::Bulk(v), Reply::Int(ttl)] => {
                    Ok(Some((v.clone(), (*ttl >= 0).then_some(*ttl))))
                }
                _ => Err(ClientError::UnexpectedReply(format!(
                    "an array of {} items that is not [value, ttl]",
                    parts.len()
                ))),
            },
            other => Err(unexpected(&other)),
        }
    }

    /// DEL: true when the key existed.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn del(&self, key: &[u8]) -> Result<bool, ClientError> {
        int_reply(self.keyed(key, vec![b("DEL"), copy(key)]).await?).map(|n| n > 0)
    }

    /// EXPIRE in seconds: true when the key existed.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn expire(&self, key: &[u8], seconds: i64) -> Result<bool, ClientError> {
        let args = vec![b("EXPIRE"), copy(key), Bytes::from(seconds.to_string())];
        int_reply(self.keyed(key, args).await?).map(|n| n > 0)
    }

    /// STATS of server `index` (0-based).
    ///
    /// # Errors
    /// Node unreachable, or an unexpected reply.
    pub async fn stats(&self, index: usize) -> Result<NodeStats, ClientError> {
        let reply = self.call(index, vec![b("STATS")]).await?;
        self.node_stats(index, reply)
    }

    /// STATS of shard `shard`'s leader (0-based), with the index of the server that answered.
    ///
    /// # Errors
    /// As [`ClusterClient::call_shard`], or an unexpected reply.
    pub async fn shard_stats(&self, shard: usize) -> Result<(usize, NodeStats), ClientError> {
        let (server, reply) = self.call_shard(shard, vec![b("STATS")]).await?;
        Ok((server, self.node_stats(server, reply)?))
    }

    /// KEYS `pattern` of shard `shard` (0-based) from its leader, with the index of the
    /// server that answered. In a replicated cluster a node holds copies of other shards: only
    /// the keys of `shard` (by [`ClusterClient::index_for`]) are kept.
    ///
    /// # Errors
    /// As [`ClusterClient::call_shard`], or an unexpected reply.
    pub async fn shard_keys(
        &self,
        shard: usize,
        pattern: &[u8],
    ) -> Result<(usize, Vec<Bytes>), ClientError> {
        let (server, reply) = self
            .call_shard(shard, vec![b("KEYS"), copy(pattern)])
            .await?;
        let mut keys = key_list(reply)?;
        if matches!(self.routing.view().kind, ViewKind::Replicated(_)) {
            keys.retain(|k| self.index_for(k) == shard);
        }
        Ok((server, keys))
    }

    /// A STATS reply from server `index` as figures, its total less this client's topology
    /// queries to that server.
    fn node_stats(&self, index: usize, reply: Reply) -> Result<NodeStats, ClientError> {
        let Reply::Array(items) = reply else {
            return Err(unexpected(&reply));
        };
        let mut stats = NodeStats::default();
        for pair in items.chunks(2) {
            let [Reply::Bulk(name), Reply::Int(n)] = pair else {
                return Err(ClientError::UnexpectedReply(
                    "a STATS reply that is not pairs of name and count".into(),
                ));
            };
            let slot = match name.as_ref() {
                b"total_requests" => &mut stats.total_requests,
                b"get" => &mut stats.get,
                b"set" => &mut stats.set,
                b"delete" => &mut stats.delete,
                b"expire" => &mut stats.expire,
                b"total_keys" => &mut stats.total_keys,
                b"keys_with_ttl" => &mut stats.keys_with_ttl,
                _ => continue,
            };
            *slot = *n;
        }
        let queries = self.routing.queries_to(index);
        stats.total_requests = stats
            .total_requests
            .saturating_sub(i64::try_from(queries).unwrap_or(i64::MAX));
        Ok(stats)
    }

    /// KEYS `pattern` on server `index` (0-based).
    ///
    /// # Errors
    /// Node unreachable, or an unexpected reply.
    pub async fn keys(&self, index: usize, pattern: &[u8]) -> Result<Vec<Bytes>, ClientError> {
        key_list(self.call(index, vec![b("KEYS"), copy(pattern)]).await?)
    }

    /// MGET across the cluster: keys are grouped per shard, each group sent as one MGET to the
    /// shard's leader, the groups concurrently; values come back in the order of `keys`.
    ///
    /// # Errors
    /// Any node unreachable, or an error reply.
    pub async fn mget(&self, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>, ClientError> {
        // The grouping needs the table.
        self.discover().await;
        let groups = self.group(keys.iter().copied());
        let calls = groups.iter().map(|(index, positions)| {
            let mut args = vec![b("MGET")];
            args.extend(positions.iter().map(|&i| copy(keys[i])));
            self.call_shard(*index, args)
        });
        let replies = futures::future::try_join_all(calls).await?;
        let mut out = vec![None; keys.len()];
        for ((_, positions), (_, reply)) in groups.iter().zip(replies) {
            let Reply::Array(values) = reply else {
                return Err(unexpected(&reply));
            };
            for (&pos, value) in positions.iter().zip(values) {
                out[pos] = match value {
                    Reply::Bulk(v) => Some(v),
                    _ => None,
                };
            }
        }
        Ok(out)
    }

    /// MSET across the cluster: one MSET per shard leader, sent concurrently. Atomic per shard
    /// only.
    ///
    /// # Errors
    /// Any node unreachable, or an error reply.
    pub async fn mset(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), ClientError> {
        // The grouping needs the table.
        self.discover().await;
        let groups = self.group(pairs.iter().map(|(k, _)| *k));
        let calls = groups.iter().map(|(index, positions)| {
            let mut args = vec![b("MSET")];
            for &i in positions {
                args.extend([copy(pairs[i].0), copy(pairs[i].1)]);
            }
            self.call_shard(*index, args)
        });
        for (_, reply) in futures::future::try_join_all(calls).await? {
            if let Reply::Error(e) = reply {
                return Err(ClientError::Server(e.into_owned()));
            }
        }
        Ok(())
    }

    /// Groups key positions by shard, in order of first appearance.
    fn group<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) -> Vec<(usize, Vec<usize>)> {
        let view = self.routing.view();
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (pos, key) in keys.enumerate() {
            let index = shard_for(&view, key, self.nodes.len());
            match groups.iter_mut().find(|(i, _)| *i == index) {
                Some((_, positions)) => positions.push(pos),
                None => groups.push((index, vec![pos])),
            }
        }
        groups
    }
}

fn key_list(reply: Reply) -> Result<Vec<Bytes>, ClientError> {
    match reply {
        Reply::Array(items) => items
            .into_iter()
            .map(|k| match k {
                Reply::Bulk(k) => Ok(k),
                other => Err(unexpected(&other)),
            })
            .collect(),
        other => Err(unexpected(&other)),
    }
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn copy(data: &[u8]) -> Bytes {
    Bytes::copy_from_slice(data)
}

fn int_reply(reply: Reply) -> Result<i64, ClientError> {
    match reply {
        Reply::Int(n) => Ok(n),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(reply: &Reply) -> ClientError {
    ClientError::UnexpectedReply(describe(reply))
}

/// A reply in words, for [`ClientError::UnexpectedReply`]: `the integer 5`, `nil`.
fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Simple(s) => format!("the status {s}"),
        Reply::Error(e) => format!("the error {e}"),
        Reply::Int(n) => format!("the integer {n}"),
        Reply::Bulk(b) => format!("a string of {} bytes", b.len()),
        Reply::Nil | Reply::NilArray => "nil".to_string(),
        Reply::Array(items) => format!("an array of {} items", items.len()),
        Reply::Map(pairs) => format!("a map of {} pairs", pairs.len()),
        Reply::Set(items) => format!("a set of {} items", items.len()),
        Reply::Double(x) => format!("the number {x}"),
        Reply::Bool(b) => format!("the boolean {b}"),
        Reply::Verbatim(t) => format!("a text of {} bytes", t.len()),
        Reply::Push(items) => format!("a push of {} items", items.len()),
        Reply::Strings(items) => format!("an array of {} items", items.len()),
    }
}

#[cfg(test)]
mod tests;
