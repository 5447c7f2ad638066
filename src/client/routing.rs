//! How a request finds its node: the client's view of the cluster (plain, or a replicated
//! cluster's [`Topology`]), the request loop (retries, `MOVED`/`ASK` redirects, the epoch
//! check riding along) and the table's refresh.
//!
//! Pure bookkeeping over the node pools: it never parses a reply's payload beyond what routing
//! needs (a redirect, `CLUSTERDOWN`/`TRYAGAIN`, the epoch), and never holds a std lock across
//! `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::node::NodePool;
use super::MAX_REDIRECTS;
use super::{b, retry, router, topology, ClientError, ClusterClient, RetryEvent, Topology};
use crate::protocol::Reply;

/// What the client knows of the cluster's leaders, shared by the client's clones.
pub(super) struct Routing {
    /// The current view. A std mutex: read or replaced in passing, never held across `.await`.
    view: Mutex<View>,
    /// Held while one task asks the nodes, so that concurrent failures cause one query; a
    /// tokio mutex because the query awaits.
    refresh: tokio::sync::Mutex<()>,
    /// `CLUSTER` queries (SHARDS, INFO) each server answered, subtracted from its STATS total.
    queries: Vec<AtomicU64>,
    /// Pools for nodes outside the configured list that a `MOVED` or `ASK` reply named, by
    /// address; the server index of entry `i` is `nodes.len() + i`. A std mutex: looked up or
    /// pushed to in passing.
    others: Mutex<Vec<Arc<NodePool>>>,
    /// How the pools in `others` connect: as the configured ones.
    template: PoolTemplate,
    /// The epoch check's period ([`super::ClientConfig::topology_check`]).
    check_every: Option<Duration>,
    /// When the next epoch check is due, and the epoch each server reported last. A std mutex:
    /// read and updated in passing.
    epochs: Mutex<Epochs>,
}

/// The settings of a new node pool.
pub(super) struct PoolTemplate {
    /// Idle connections kept.
    pub(super) pool_size: usize,
    /// Sent with AUTH on each new connection.
    pub(super) password: Option<String>,
    /// Connect with TLS when set.
    pub(super) tls: Option<Arc<crate::tls::TlsClientConfig>>,
}

impl PoolTemplate {
    /// A pool for `addr` with these settings.
    pub(super) fn pool(&self, addr: String) -> NodePool {
        NodePool::new(addr, self.pool_size)
            .password(self.password.clone())
            .tls(self.tls.clone())
    }
}

/// The state of the epoch check.
struct Epochs {
    /// When a request may carry the next `CLUSTER INFO`.
    next_check: tokio::time::Instant,
    /// `cluster_current_epoch` as each configured server (by index) last reported it.
    seen: HashMap<usize, u64>,
}

/// The client's view of the cluster, with a generation that each query bumps.
#[derive(Clone)]
pub(super) struct View {
    pub(super) kind: ViewKind,
    pub(super) generation: u64,
}

/// What the nodes said they are.
#[derive(Clone)]
pub(super) enum ViewKind {
    /// Not asked yet, or no node answered: shard `i` goes to server `i`.
    Unknown,
    /// A node answered that cluster support is off: shard `i` is server `i`, for good.
    Plain,
    /// A replicated cluster's leaders as last reported.
    Replicated(Arc<Topology>),
}

impl ClusterClient {
    /// One command to the shard `route` names, with the retry policy and redirects (see
    /// [`ClusterClient::call_shard`]).
    pub(super) async fn route(
        &self,
        route: Route<'_>,
        args: Vec<Bytes>,
    ) -> Result<(usize, Reply), ClientError> {
        self.discover().await;
        let mut retries: u32 = 0;
        let mut redirects: u32 = 0;
        // Where the last reply said to go next, and whether to send ASKING first.
        let mut redirect: Option<(usize, bool)> = None;
        loop {
            let view = self.routing.view();
            let generation = view.generation;
            // Looked up on every attempt: a refresh since the last one takes effect at once.
            let shard = match route {
                Route::Shard(shard) => check_shard(&view, shard, self.nodes.len())?,
                Route::Key(key) => shard_for(&view, key, self.nodes.len()),
            };
            let (server, asking) = redirect
                .take()
                .unwrap_or((leader_in(&view, shard, self.nodes.len()), false));
            let check = matches!(view.kind, ViewKind::Replicated(_)) && self.check_due(server);
            let result = self.attempt(server, &args, asking, check).await;
            if let Err(e) = &result {
                // As in `pipeline`: each attempt's cause shows with RUST_LOG=debug.
                tracing::debug!(
                    server = shard + 1,
                    leader = server + 1,
                    attempt = retries.saturating_add(1),
                    of = self.policy.retries.saturating_add(1),
                    "attempt failed: {e}"
                );
            }
            let e = match result {
                Ok((reply, epoch)) => {
                    if let Some((addr, asking)) = redirection(&reply) {
                        if redirects < MAX_REDIRECTS {
                            redirects += 1;
                            tracing::debug!(server = server + 1, "redirected to {addr}");
                            self.refresh(generation, None).await;
                            redirect = Some((self.server_at(addr), asking));
                            continue;
                        }
                    }
                    if let Some(epoch) = epoch {
                        self.note_epoch(server, epoch, generation).await;
                    }
                    return Ok((server, reply));
                }
                Err(e) => e,
            };
            let retryable = retry::is_retryable(&e) || transient_error(&e);
            if !retryable {
                if retry::suggests_failover(&e) {
                    // Not retried (its outcome is unknown), but the next request should go to
                    // whoever leads now.
                    self.refresh(generation, Some(server)).await;
                }
                return Err(e);
            }
            if retries >= self.policy.retries {
                return Err(ClientError::RetriesExhausted {
                    server: shard + 1,
                    retries,
                    last: Box::new(e),
                });
            }
            retries += 1;
            if let Some(observer) = &self.observer {
                observer(RetryEvent {
                    server: shard + 1,
                    attempt: retries,
                    of: self.policy.retries,
                });
            }
            tokio::time::sleep(self.policy.delay_before(retries)).await;
            // After the pause, so that an election under way has had time to finish.
            if retry::suggests_failover(&e) {
                self.refresh(generation, Some(server)).await;
            }
        }
    }

    /// Sends `args` to server `server` once (its pool may repeat an idempotent command on a
    /// fresh connection): after `ASKING` when `asking`, and after `CLUSTER INFO` when `check`.
    /// Returns the command's reply and the epoch the node reported, if asked; a `CLUSTERDOWN`
    /// or `TRYAGAIN` reply becomes [`ClientError::Server`].
    async fn attempt(
        &self,
        server: usize,
        args: &[Bytes],
        asking: bool,
        check: bool,
    ) -> Result<(Reply, Option<u64>), ClientError> {
        let pool = self
            .pool(server)
            .ok_or(ClientError::NoSuchServer(server + 1))?;
        let mut commands = Vec::with_capacity(3);
        if check {
            commands.push(vec![b("CLUSTER"), b("INFO")]);
        }
        if asking {
            commands.push(vec![b("ASKING")]);
        }
        commands.push(args.to_vec());
        let mut replies = pool.pipeline(commands, self.policy.timeout).await?;
        if check {
            if let Some(queries) = self.routing.queries.get(server) {
                queries.fetch_add(1, Ordering::Relaxed);
            }
        }
        let reply = replies
            .pop()
            .ok_or_else(|| ClientError::Protocol("the node sent no reply".into()))?;
        if let Some(text) = transient(&reply) {
            return Err(ClientError::Server(text));
        }
        let epoch = if check {
            replies.first().and_then(current_epoch)
        } else {
            None
        };
        Ok((reply, epoch))
    }

    /// The pool of server `server`: a configured one, or one a redirect named.
    fn pool(&self, server: usize) -> Option<Arc<NodePool>> {
        match self.nodes.get(server) {
            Some(pool) => Some(pool.clone()),
            None => {
                let others = self
                    .routing
                    .others
                    .lock()
                    .expect("redirect pools lock poisoned");
                others.get(server - self.nodes.len()).cloned()
            }
        }
    }

    /// The server index of `addr` (`host:port`): the configured server of that address, else a
    /// pool made for it on first use.
    fn server_at(&self, addr: &str) -> usize {
        let listed = addr
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse().ok()?)))
            .and_then(|(host, port)| topology::match_server(&self.servers_owned(), host, port));
        if let Some(index) = listed {
            return index;
        }
        let mut others = self
            .routing
            .others
            .lock()
            .expect("redirect pools lock poisoned");
        let at = match others.iter().position(|p| p.addr() == addr) {
            Some(at) => at,
            None => {
                others.push(Arc::new(self.routing.template.pool(addr.to_string())));
                others.len() - 1
            }
        };
        self.nodes.len() + at
    }

    /// True when a request to `server` should carry `CLUSTER INFO` now (and then not again for
    /// a period): only to configured servers, whose epochs the client keeps.
    fn check_due(&self, server: usize) -> bool {
        let Some(every) = self.routing.check_every else {
            return false;
        };
        if server >= self.nodes.len() {
            return false;
        }
        let mut epochs = self.routing.epochs.lock().expect("epochs lock poisoned");
        let now = tokio::time::Instant::now();
        if now < epochs.next_check {
            return false;
        }
        epochs.next_check = now + every;
        true
    }

    /// Records the epoch `server` reported; a change since its last report means the cluster
    /// changed (a failover, slots moved): the table is read again.
    async fn note_epoch(&self, server: usize, epoch: u64, generation: u64) {
        let changed = {
            let mut epochs = self.routing.epochs.lock().expect("epochs lock poisoned");
            epochs
                .seen
                .insert(server, epoch)
                .is_some_and(|seen| seen != epoch)
        };
        if changed {
            tracing::debug!(server = server + 1, epoch, "the cluster's epoch changed");
            self.refresh(generation, None).await;
        }
    }

    /// Asks the nodes on first use.
    pub(super) async fn discover(&self) {
        let view = self.routing.view();
        if matches!(view.kind, ViewKind::Unknown) && view.generation == 0 {
            self.refresh(0, None).await;
        }
    }

    /// Asks the nodes for `CLUSTER SHARDS` unless the cluster is plain or another task already
    /// asked since `seen` (the view's generation when the caller's request failed). Servers
    /// are asked in list order, `avoid` (the one that just failed) last; the first usable
    /// answer wins. No answer leaves the routing as it was.
    pub(super) async fn refresh(&self, seen: u64, avoid: Option<usize>) {
        let _one_at_a_time = self.routing.refresh.lock().await;
        let view = self.routing.view();
        if view.generation != seen || matches!(view.kind, ViewKind::Plain) {
            return;
        }
        let order = (0..self.nodes.len())
            .filter(|&i| Some(i) != avoid)
            .chain(avoid.filter(|&i| i < self.nodes.len()));
        let mut kind = None;
        for index in order {
            let query = vec![b("CLUSTER"), b("SHARDS")];
            let reply = match self.nodes[index].call(&query, self.policy.timeout).await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::debug!(server = index + 1, "topology query failed: {e}");
                    continue;
                }
            };
            self.routing.queries[index].fetch_add(1, Ordering::Relaxed);
            match reply {
                // `ERR This instance has cluster support disabled`, or `ERR unknown command`
                // from a node that predates replication: a plain cluster.
                Reply::Error(e) if e.starts_with("ERR") => {
                    kind = Some(ViewKind::Plain);
                    break;
                }
                Reply::Error(e) => {
                    tracing::debug!(server = index + 1, "topology query refused: {e}");
                }
                reply => match topology::parse_shards(&reply, &self.servers_owned()) {
                    // Any number of shards: nodes join and leave, and the list may name only
                    // some of them (the others are reached through the ones it names).
                    Ok(t) if !t.shards.is_empty() => {
                        kind = Some(ViewKind::Replicated(Arc::new(t)));
                        break;
                    }
                    Ok(_) => tracing::warn!(server = index + 1, "CLUSTER SHARDS lists no shard"),
                    Err(e) => tracing::warn!(server = index + 1, "bad CLUSTER SHARDS reply: {e}"),
                },
            }
        }
        if matches!(kind, Some(ViewKind::Replicated(_))) {
            if let Some(every) = self.routing.check_every {
                // The table is fresh: the next epoch check can wait a period.
                let mut epochs = self.routing.epochs.lock().expect("epochs lock poisoned");
                epochs.next_check = tokio::time::Instant::now() + every;
            }
        }
        let mut view = self.routing.view.lock().expect("routing lock poisoned");
        view.generation += 1;
        if let Some(kind) = kind {
            view.kind = kind;
        }
    }
}

impl Routing {
    /// A view of nothing yet for `servers` configured servers.
    pub(super) fn new(
        servers: usize,
        template: PoolTemplate,
        check_every: Option<Duration>,
    ) -> Routing {
        Routing {
            view: Mutex::new(View {
                kind: ViewKind::Unknown,
                generation: 0,
            }),
            refresh: tokio::sync::Mutex::new(()),
            queries: (0..servers).map(|_| AtomicU64::new(0)).collect(),
            others: Mutex::new(Vec::new()),
            template,
            check_every,
            epochs: Mutex::new(Epochs {
                next_check: tokio::time::Instant::now(),
                seen: HashMap::new(),
            }),
        }
    }

    /// The `CLUSTER` queries server `server` answered (0 for a node only a redirect named:
    /// it is never asked).
    pub(super) fn queries_to(&self, server: usize) -> u64 {
        self.queries
            .get(server)
            .map_or(0, |q| q.load(Ordering::Relaxed))
    }

    /// The current view (a copy: the lock is not held).
    pub(super) fn view(&self) -> View {
        self.view.lock().expect("routing lock poisoned").clone()
    }
}

/// Where a request goes.
#[derive(Clone, Copy)]
pub(super) enum Route<'a> {
    /// The shard of this 0-based index, chosen by the caller.
    Shard(usize),
    /// The shard owning this key, looked up again before every attempt.
    Key(&'a [u8]),
}

/// The 0-based shard owning `key` in `view`: by the replicated cluster's table, else (plain
/// cluster, not asked yet, or a slot no shard reports) the spec's `node_for(key, servers)`.
pub(super) fn shard_for(view: &View, key: &[u8], servers: usize) -> usize {
    match &view.kind {
        ViewKind::Replicated(topology) => topology.shard_of_key(key),
        ViewKind::Unknown | ViewKind::Plain => None,
    }
    .unwrap_or_else(|| router::node_for(key, servers))
}

/// `shard` if the cluster in `view` has it.
fn check_shard(view: &View, shard: usize, servers: usize) -> Result<usize, ClientError> {
    match &view.kind {
        ViewKind::Replicated(topology) if topology.shard(shard).is_none() => {
            Err(ClientError::NoSuchShard(shard + 1))
        }
        ViewKind::Replicated(_) => Ok(shard),
        ViewKind::Unknown | ViewKind::Plain if shard < servers => Ok(shard),
        ViewKind::Unknown | ViewKind::Plain => Err(ClientError::NoSuchServer(shard + 1)),
    }
}

/// The configured server (0-based) that takes shard `shard`'s requests in `view` (see
/// [`ClusterClient::leader_of`]).
pub(super) fn leader_in(view: &View, shard: usize, servers: usize) -> usize {
    let ViewKind::Replicated(topology) = &view.kind else {
        return shard;
    };
    if let Some(leader) = topology.leader(shard) {
        return leader;
    }
    if shard < servers {
        // No leader (an election is under way: the node answers CLUSTERDOWN until it ends),
        // or one outside the list: the shard's home node, which forwards.
        return shard;
    }
    topology
        .shard(shard)
        .and_then(|s| {
            // A configured member that looks healthy first, else any configured member.
            let listed = |n: &&topology::ShardNode| n.server.is_some();
            s.nodes
                .iter()
                .filter(listed)
                .find(|n| n.health != "failed")
                .or_else(|| s.nodes.iter().find(listed))
                .and_then(|n| n.server)
        })
        .unwrap_or(0)
}

/// The address a `MOVED <slot> <host:port>` or `ASK <slot> <host:port>` reply names, and
/// whether it was `ASK` (the next attempt then sends `ASKING` first).
fn redirection(reply: &Reply) -> Option<(&str, bool)> {
    let Reply::Error(text) = reply else {
        return None;
    };
    let mut words = text.split_whitespace();
    let asking = match words.next()? {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let _slot = words.next()?;
    let addr = words.next()?;
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        .then_some((addr, asking))
}

/// `cluster_current_epoch` from a `CLUSTER INFO` reply, if it has one.
fn current_epoch(reply: &Reply) -> Option<u64> {
    let text = match reply {
        Reply::Bulk(b) | Reply::Verbatim(b) => String::from_utf8_lossy(b),
        Reply::Simple(s) => std::borrow::Cow::Borrowed(s.as_ref()),
        _ => return None,
    };
    text.lines()
        .find_map(|l| l.trim().strip_prefix("cluster_current_epoch:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The text of a `CLUSTERDOWN` or `TRYAGAIN` reply in a batch.
fn transient(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Error(e) if retry::is_transient_reply(e) => Some(e.to_string()),
        _ => None,
    }
}

/// True for a `CLUSTERDOWN` or `TRYAGAIN` reply turned into an error.
fn transient_error(error: &ClientError) -> bool {
    matches!(error, ClientError::Server(text) if retry::is_transient_reply(text))
}
