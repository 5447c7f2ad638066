//! The cluster client: routes each key to its node with the spec's MD5 rule, keeps a pool of
//! connections per node, times requests out and retries unreachable nodes.
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

pub mod node;
pub mod retry;
pub mod router;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::protocol::Reply;
use node::NodePool;
pub use retry::{Backoff, RetryPolicy};

/// A request through the cluster client failed. Each message is a plain sentence naming the
/// node's address: what a user reads in the REPL's `✗ ERROR` block.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node's host name could not be resolved (a typo in the server list, or no DNS), or
    /// the address is not `host:port`.
    #[error("{}", resolve_text(addr, cause))]
    Resolve {
        /// The node.
        addr: String,
        /// The resolver's error.
        cause: std::io::Error,
    },
    /// The node could not be reached or the connection broke (node down, wrong port).
    #[error("{}", io_text(addr, cause))]
    Io {
        /// The node.
        addr: String,
        /// The cause (in the message, not chained, so it prints once).
        cause: std::io::Error,
    },
    /// The node did not answer within the policy's timeout (connect, send and receive).
    #[error("timed out after {} s waiting for {addr}", after.as_secs_f64())]
    Timeout {
        /// The node.
        addr: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The TLS handshake failed: the node's certificate is not trusted or does not name the
    /// host, the node does not speak TLS, or it refused this client's certificate.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// The node.
        addr: String,
        /// Why, in plain words.
        reason: String,
    },
    /// The node refused the password sent with AUTH on a new connection. Not retried: a wrong
    /// password stays wrong.
    #[error("authentication failed at {addr}: {reply}")]
    Auth {
        /// The node.
        addr: String,
        /// The node's error reply, e.g. `WRONGPASS invalid username-password pair or user is
        /// disabled.`
        reply: String,
    },
    /// The node's reply could not be parsed (not a minikv or Redis node?).
    #[error("{0}")]
    Protocol(String),
    /// The node answered with an error reply; the text is the node's.
    #[error("{0}")]
    Server(String),
    /// A reply of an unexpected shape for the command.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// Every attempt failed; the last failure is kept. The message is the spec's line followed
    /// by the last failure: `Server 2 unavailable after 3 retries: connection refused by
    /// localhost:7002` (see [`unavailable`] for the spec's part alone).
    #[error("{}: {last}", unavailable(*server, *retries))]
    RetriesExhausted {
        /// The 1-based server number.
        server: usize,
        /// Retries made after the first attempt.
        retries: u32,
        /// The last failure.
        last: Box<ClientError>,
    },
    /// A server number outside the configured list.
    #[error("no server {0}: servers are numbered from 1")]
    NoSuchServer(usize),
}

/// The spec's line for a node that stayed unreachable: `Server 2 unavailable after 3 retries`,
/// `after 1 retry`, and `after 1 attempt` when retries are off.
pub fn unavailable(server: usize, retries: u32) -> String {
    match retries {
        0 => format!("Server {server} unavailable after 1 attempt"),
        1 => format!("Server {server} unavailable after 1 retry"),
        n => format!("Server {server} unavailable after {n} retries"),
    }
}

/// A retry about to happen, reported to the observer (the REPL prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryEvent {
    /// The 1-based server number.
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
        }
    }
}

type Observer = Arc<dyn Fn(RetryEvent) + Send + Sync>;

/// The spec's STATS figures of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeStats {
    /// Requests the node handled before this one.
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
    nodes: Arc<Vec<NodePool>>,
    policy: RetryPolicy,
    observer: Option<Observer>,
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
        let nodes = config
            .servers
            .into_iter()
            .map(|addr| {
                NodePool::new(addr, config.pool_size)
                    .password(config.password.clone())
                    .tls(config.tls.clone())
            })
            .collect();
        ClusterClient {
            nodes: Arc::new(nodes),
            policy: config.retry,
            observer: None,
        }
    }

    /// Calls `observer` before every retry.
    pub fn on_retry(mut self, observer: impl Fn(RetryEvent) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The configured `host:port` list.
    pub fn servers(&self) -> Vec<&str> {
        self.nodes.iter().map(NodePool::addr).collect()
    }

    /// The retry policy in force.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The 0-based index of the node owning `key`.
    pub fn index_for(&self, key: &[u8]) -> usize {
        router::node_for(key, self.nodes.len())
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

    /// Sends a keyed command to the key's node; error replies become [`ClientError::Server`].
    async fn keyed(&self, key: &[u8], args: Vec<Bytes>) -> Result<Reply, ClientError> {
        match self.call(self.index_for(key), args).await? {
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
        Ok(stats)
    }

    /// KEYS `pattern` on server `index` (0-based).
    ///
    /// # Errors
    /// Node unreachable, or an unexpected reply.
    pub async fn keys(&self, index: usize, pattern: &[u8]) -> Result<Vec<Bytes>, ClientError> {
        match self.call(index, vec![b("KEYS"), copy(pattern)]).await? {
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

    /// MGET across the cluster: keys are grouped per node, each group sent as one MGET, the
    /// groups concurrently; values come back in the order of `keys`.
    ///
    /// # Errors
    /// Any node unreachable, or an error reply.
    pub async fn mget(&self, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>, ClientError> {
        let groups = self.group(keys.iter().copied());
        let calls = groups.iter().map(|(index, positions)| {
            let mut args = vec![b("MGET")];
            args.extend(positions.iter().map(|&i| copy(keys[i])));
            self.call(*index, args)
        });
        let replies = futures::future::try_join_all(calls).await?;
        let mut out = vec![None; keys.len()];
        for ((_, positions), reply) in groups.iter().zip(replies) {
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

    /// MSET across the cluster: one MSET per node, sent concurrently. Atomic per node only.
    ///
    /// # Errors
    /// Any node unreachable, or an error reply.
    pub async fn mset(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), ClientError> {
        let groups = self.group(pairs.iter().map(|(k, _)| *k));
        let calls = groups.iter().map(|(index, positions)| {
            let mut args = vec![b("MSET")];
            for &i in positions {
                args.extend([copy(pairs[i].0), copy(pairs[i].1)]);
            }
            self.call(*index, args)
        });
        for reply in futures::future::try_join_all(calls).await? {
            if let Reply::Error(e) = reply {
                return Err(ClientError::Server(e.into_owned()));
            }
        }
        Ok(())
    }

    /// Groups key positions by owning node, in node order.
    fn group<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) -> Vec<(usize, Vec<usize>)> {
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (pos, key) in keys.enumerate() {
            let index = self.index_for(key);
            match groups.iter_mut().find(|(i, _)| *i == index) {
                Some((_, positions)) => positions.push(pos),
                None => groups.push((index, vec![pos])),
            }
        }
        groups
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
    }
}

/// [`ClientError::Resolve`]'s message.
fn resolve_text(addr: &str, cause: &std::io::Error) -> String {
    if cause.kind() == std::io::ErrorKind::InvalidInput {
        return format!("{addr} is not a host:port address");
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    format!("host not found: {host}")
}

/// [`ClientError::Io`]'s message: the common causes in plain words, anything else with the
/// operating system's wording.
fn io_text(addr: &str, cause: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match cause.kind() {
        K::ConnectionRefused => format!("connection refused by {addr}"),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            format!("{addr} closed the connection")
        }
        K::TimedOut => format!("connecting to {addr} timed out"),
        K::HostUnreachable | K::NetworkUnreachable => format!("{addr} is unreachable"),
        _ => format!("cannot reach {addr}: {cause}"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::*;

    #[test]
    fn the_spec_line_counts_attempts_when_retries_are_off() {
        assert_eq!(unavailable(2, 3), "Server 2 unavailable after 3 retries");
        assert_eq!(unavailable(1, 1), "Server 1 unavailable after 1 retry");
        assert_eq!(unavailable(3, 0), "Server 3 unavailable after 1 attempt");
    }

    #[test]
    fn failures_read_as_plain_words() {
        let addr = || "localhost:7002".to_string();
        let io = |kind: ErrorKind| ClientError::Io {
            addr: addr(),
            cause: Error::new(kind, "os text"),
        };
        let cases = [
            (
                io(ErrorKind::ConnectionRefused),
                "connection refused by localhost:7002",
            ),
            (
                io(ErrorKind::UnexpectedEof),
                "localhost:7002 closed the connection",
            ),
            (
                io(ErrorKind::ConnectionReset),
                "localhost:7002 closed the connection",
            ),
            (
                io(ErrorKind::PermissionDenied),
                "cannot reach localhost:7002: os text",
            ),
            (
                ClientError::Resolve {
                    addr: "nowhere.invalid:7002".into(),
                    cause: Error::other("failed to lookup address information"),
                },
                "host not found: nowhere.invalid",
            ),
            (
                ClientError::Resolve {
                    addr: "localhost".into(),
                    cause: Error::new(ErrorKind::InvalidInput, "invalid socket address"),
                },
                "localhost is not a host:port address",
            ),
            (
                ClientError::Timeout {
                    addr: addr(),
                    after: Duration::from_secs(5),
                },
                "timed out after 5 s waiting for localhost:7002",
            ),
            (
                ClientError::Timeout {
                    addr: addr(),
                    after: Duration::from_millis(250),
                },
                "timed out after 0.25 s waiting for localhost:7002",
            ),
            (
                ClientError::Auth {
                    addr: addr(),
                    reply: "WRONGPASS invalid username-password pair or user is disabled.".into(),
                },
                "authentication failed at localhost:7002: WRONGPASS invalid \
                 username-password pair or user is disabled.",
            ),
            (
                ClientError::RetriesExhausted {
                    server: 2,
                    retries: 3,
                    last: Box::new(io(ErrorKind::ConnectionRefused)),
                },
                "Server 2 unavailable after 3 retries: connection refused by localhost:7002",
            ),
            (
                unexpected(&Reply::Int(5)),
                "unexpected reply: the integer 5",
            ),
            (
                unexpected(&Reply::Array(vec![Reply::Nil, Reply::Nil])),
                "unexpected reply: an array of 2 items",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text, "{error:?}");
        }
    }
}
