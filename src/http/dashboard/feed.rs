//! The live feed: one poller per node, shared by every viewer.
//!
//! Each node's poller asks its node for `INFO`, `INFO latencystats` and `INFO commandstats`
//! once a second (one pipelined exchange with a connect-and-reply timeout of
//! [`POLL_TIMEOUT`]), and the first reachable node of a replicated cluster also for
//! `CLUSTER SHARDS` when its shards' leaders or migrations change (at least every
//! [`TOPOLOGY_EVERY`]). A broadcaster turns the latest figures into one
//! `state` event a second for every open page, and keeps the last [`HISTORY`] seconds so a
//! page opened later starts with full charts. Nothing is polled while nobody looks: no page
//! open and no API call for [`IDLE_AFTER`].
//!
//! The pollers hold a weak reference to the feed, so dropping the dashboard stops them; so
//! does the HTTP port's shutdown token.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::info::{self, Latency, Persistence, ShardRole};
use super::value::text_of;
use crate::client::node::NodePool;
use crate::client::topology::parse_shard_list;
use crate::client::ClientError;
use crate::protocol::Reply;

/// Time between two polls of a node, and between two `state` events.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Most time one poll may take, connecting included: a node that does not answer within it
/// is shown down (so within [`POLL_EVERY`] + this of dying).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// Most time between two `CLUSTER SHARDS` when nothing in `INFO` says the shards changed.
pub const TOPOLOGY_EVERY: Duration = Duration::from_secs(30);

/// Seconds of chart history kept.
pub const HISTORY: usize = 300;

/// Polling pauses this long after the last page closed and the last API call.
pub const IDLE_AFTER: Duration = Duration::from_secs(30);

/// Commands per node shown in the latency table.
const LATENCY_ROWS: usize = 6;

/// One event for the pages: its SSE name and its JSON data.
#[derive(Debug, Clone)]
pub struct Message {
    /// `state` or `topology`.
    pub event: &'static str,
    /// The JSON text.
    pub data: Arc<str>,
}

/// What the page shows of one node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeView {
    /// `HOST:PORT` as configured.
    pub addr: String,
    /// `up`, `down` (unreachable or silent) or `error` (reachable, but refusing: a wrong
    /// password, or replies that are not RESP); `unknown` before the first poll.
    pub status: &'static str,
    /// Why it is down or in error.
    pub error: Option<String>,
    /// Unix milliseconds of the last poll's answer.
    pub checked: Option<u64>,
    /// `minikv 0.1.0` or `redis 7.0.15`.
    pub version: Option<String>,
    /// Seconds since the node started.
    pub uptime: Option<u64>,
    /// Connected clients.
    pub clients: Option<u64>,
    /// Clients blocked in BLPOP and the like.
    pub blocked: Option<u64>,
    /// Memory used, bytes.
    pub memory: Option<u64>,
    /// Keys over every database.
    pub keys: Option<u64>,
    /// Keys with a TTL.
    pub expires: Option<u64>,
    /// Commands per second over the last poll interval (the dashboard's own polls left out).
    pub ops: Option<f64>,
    /// Keyspace hits / (hits + misses) over the last poll interval; `None` without lookups.
    pub hit: Option<f64>,
    /// `master`/`slave` (Redis replication's word).
    pub role: Option<String>,
    /// True for a node of a replicated minikv cluster (or a Redis cluster node).
    pub cluster: bool,
    /// Its role in each shard of a replicated minikv cluster.
    pub shards: Vec<ShardRole>,
    /// Slot migrations under way.
    pub migrations: Option<u64>,
    /// Snapshot and log state.
    pub persistence: Persistence,
    /// Latency of the busiest commands (empty when the node has no `INFO latencystats`).
    pub latency: Vec<Latency>,
    /// The counters of the last good poll, for the next rates.
    #[serde(skip)]
    last: Option<Counters>,
}

/// Counters read at one poll.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    commands: Option<u64>,
    hits: Option<u64>,
    misses: Option<u64>,
    /// Commands this poll sent (they count in the next poll's figure).
    sent: u64,
}

/// The last [`HISTORY`] seconds of the charted figures, one column per `state` event.
#[derive(Debug, Default, Serialize)]
struct History {
    /// Unix seconds of each column.
    t: VecDeque<f64>,
    /// Per node, in server order.
    nodes: Vec<Series>,
}

/// One node's charted figures (`null` where it was down or had no figure).
#[derive(Debug, Default, Serialize)]
struct Series {
    ops: VecDeque<Option<f64>>,
    hit: VecDeque<Option<f64>>,
    memory: VecDeque<Option<u64>>,
    keys: VecDeque<Option<u64>>,
    clients: VecDeque<Option<u64>>,
}

fn push<T>(queue: &mut VecDeque<T>, value: T) {
    if queue.len() == HISTORY {
        queue.pop_front();
    }
    queue.push_back(value);
}

/// What the pollers and the broadcaster share.
#[derive(Debug)]
struct Shared {
    nodes: Vec<NodeView>,
    history: History,
    /// The cluster's shards and slot map as the page gets it; `None` when no node is a
    /// cluster node (or none answers `CLUSTER SHARDS` in a shape this reads).
    topology: Option<Value>,
    /// When `CLUSTER SHARDS` was last asked, and the topology's signature in `INFO` then.
    asked_topology: Option<(Instant, String)>,
}

/// The pollers' and viewers' meeting point.
#[derive(Debug)]
pub struct Feed {
    servers: Vec<String>,
    pools: Vec<Arc<NodePool>>,
    shared: Mutex<Shared>,
    events: broadcast::Sender<Message>,
    started: AtomicBool,
    /// Milliseconds since `epoch` of the last sign of interest (a page open, an API call).
    interest: AtomicU64,
    epoch: Instant,
}

impl Feed {
    /// A feed for `servers` reached through `pools` (one per server, same order).
    pub fn new(servers: Vec<String>, pools: Vec<Arc<NodePool>>) -> Feed {
        let nodes = servers
            .iter()
            .map(|addr| NodeView {
                addr: addr.clone(),
                status: "unknown",
                ..NodeView::default()
            })
            .collect();
        let history = History {
            t: VecDeque::new(),
            nodes: servers.iter().map(|_| Series::default()).collect(),
        };
        Feed {
            servers,
            pools,
            shared: Mutex::new(Shared {
                nodes,
                history,
                topology: None,
                asked_topology: None,
            }),
            events: broadcast::channel(16).0,
            started: AtomicBool::new(false),
            interest: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The servers shown, in order.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The connection pool of server `index`.
    pub fn pool(&self, index: usize) -> Option<&Arc<NodePool>> {
        self.pools.get(index)
    }

    /// Starts the pollers on first use; they stop with `shutdown` or when the feed is dropped.
    pub fn start(self: &Arc<Self>, shutdown: &CancellationToken) {
        self.touch();
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        for index in 0..self.servers.len() {
            tokio::spawn(poll_node(Arc::downgrade(self), index, shutdown.clone()));
        }
        tokio::spawn(broadcast_state(Arc::downgrade(self), shutdown.clone()));
    }

    /// Notes that someone looks (keeps the pollers polling for [`IDLE_AFTER`]).
    pub fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.interest.store(now, Ordering::Relaxed);
    }

    fn interested(&self) -> bool {
        if self.events.receiver_count() > 0 {
            return true;
        }
        let last = Duration::from_millis(self.interest.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last) < IDLE_AFTER
    }

    /// A receiver of every later event.
    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.events.subscribe()
    }

    /// The `hello` event's data: the servers, the history, the topology and the latest state.
    pub fn hello(&self) -> String {
        let shared = self.lock();
        json!({
            "servers": self.servers,
            "history": shared.history,
            "topology": shared.topology,
            "state": { "t": unix_secs(), "nodes": shared.nodes },
        })
        .to_string()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Every writer leaves the figures consistent between statements.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether server `index` should ask for `CLUSTER SHARDS` this time: it is the first
    /// cluster node that is up, and the shards' leaders or migrations changed since the last
    /// time (as its `INFO` tells), or [`TOPOLOGY_EVERY`] passed. The reply is large (one range
    /// per run of slots), so it is not asked every second.
    fn asks_topology(&self, index: usize) -> bool {
        let mut shared = self.lock();
        let first = shared
            .nodes
            .iter()
            .position(|n| n.status == "up" && n.cluster);
        if first != Some(index) {
            return false;
        }
        let signature = topology_signature(&shared.nodes[index]);
        let due = match &shared.asked_topology {
            None => true,
            Some((at, before)) => *before != signature || at.elapsed() >= TOPOLOGY_EVERY,
        };
        if due {
            shared.asked_topology = Some((Instant::now(), signature));
        }
        due
    }

    /// Records the outcome of one poll of server `index`, which sent `sent` commands.
    fn record(&self, index: usize, sent: u64, outcome: Result<Vec<Reply>, ClientError>) {
        let now = Instant::now();
        let topology = {
            let mut shared = self.lock();
            let Some(node) = shared.nodes.get_mut(index) else {
                return;
            };
            node.checked = Some(unix_millis());
            match outcome {
                Ok(replies) => read_replies(node, &replies, now, sent, &self.servers),
                Err(e) => {
                    let down = matches!(
                        e,
                        ClientError::Io { .. }
                            | ClientError::Timeout { .. }
                            | ClientError::Resolve { .. }
                    );
                    mark_failed(node, if down { "down" } else { "error" }, e.to_string());
                    None
                }
            }
        };
        if let Some(topology) = topology {
            self.set_topology(topology);
        }
    }

    fn set_topology(&self, topology: Value) {
        let changed = {
            let mut shared = self.lock();
            if shared.topology.as_ref() == Some(&topology) {
                false
            } else {
                shared.topology = Some(topology.clone());
                true
            }
        };
        if changed {
            let _ = self.events.send(Message {
                event: "topology",
                data: Arc::from(topology.to_string()),
            });
        }
    }

    /// Appends a column to the history and makes the `state` event.
    fn tick(&self) -> Message {
        let mut shared = self.lock();
        let t = unix_secs();
        let Shared { nodes, history, .. } = &mut *shared;
        push(&mut history.t, t);
        for (node, series) in nodes.iter().zip(history.nodes.iter_mut()) {
            let up = node.status == "up";
            push(&mut series.ops, node.ops.filter(|_| up));
            push(&mut series.hit, node.hit.filter(|_| up));
            push(&mut series.memory, node.memory.filter(|_| up));
            push(&mut series.keys, node.keys.filter(|_| up));
            push(&mut series.clients, node.clients.filter(|_| up));
        }
        Message {
            event: "state",
            data: Arc::from(json!({ "t": t, "nodes": nodes }).to_string()),
        }
    }
}

/// What in a node's `INFO` changes when the shards' leaders or slots do: each shard's leader
/// and the migrations under way.
fn topology_signature(node: &NodeView) -> String {
    let mut out = format!("{:?};", node.migrations);
    for shard in &node.shards {
        out.push_str(&format!("{}:{:?},", shard.shard, shard.leader));
    }
    out
}

/// Marks a node down or in error: its figures stay as last seen, its rates are gone.
fn mark_failed(node: &mut NodeView, status: &'static str, error: String) {
    node.status = status;
    node.error = Some(error);
    node.ops = None;
    node.hit = None;
    node.last = None;
}

/// Reads one poll's replies into `node`; returns the topology when `CLUSTER SHARDS` was asked
/// and answered in a shape this reads.
fn read_replies(
    node: &mut NodeView,
    replies: &[Reply],
    now: Instant,
    sent: u64,
    servers: &[String],
) -> Option<Value> {
    let mut texts = Vec::new();
    for reply in replies.iter().take(3) {
        match reply {
            Reply::Error(e) if texts.is_empty() => {
                mark_failed(node, "error", e.to_string());
                return None;
            }
            // A section this node lacks (an older Redis) is only missing figures.
            Reply::Error(_) => {}
            other => match text_of(other) {
                Some(text) => texts.push(text),
                None if texts.is_empty() => {
                    mark_failed(node, "error", "INFO did not answer text".into());
                    return None;
                }
                None => {}
            },
        }
    }
    if texts.is_empty() {
        mark_failed(node, "error", "no reply to INFO".into());
        return None;
    }
    let fields = info::parse(&texts.join("\r\n"));
    node.status = "up";
    node.error = None;
    node.version = match (fields.get("minikv_version"), fields.get("redis_version")) {
        (Some(v), _) => Some(format!("minikv {v}")),
        (None, Some(v)) => Some(format!("redis {v}")),
        (None, None) => None,
    };
    node.uptime = info::number(&fields, "uptime_in_seconds");
    node.clients = info::number(&fields, "connected_clients");
    node.blocked = info::number(&fields, "blocked_clients");
    node.memory = info::number(&fields, "used_memory");
    let (keys, expires) = info::keyspace(&fields);
    node.keys = Some(keys);
    node.expires = Some(expires);
    node.role = fields.get("role").cloned();
    node.cluster = info::number(&fields, "cluster_enabled") == Some(1);
    node.shards = info::shard_roles(&fields);
    node.migrations = info::number(&fields, "cluster_migrations_in_progress");
    node.persistence = info::persistence(&fields);
    node.latency = info::latencies(&fields, LATENCY_ROWS);
    let counters = Counters {
        at: now,
        commands: info::number(&fields, "total_commands_processed"),
        hits: info::number(&fields, "keyspace_hits"),
        misses: info::number(&fields, "keyspace_misses"),
        sent,
    };
    (node.ops, node.hit) = rates(node.last.as_ref(), &counters);
    node.last = Some(counters);
    replies
        .get(3)
        .and_then(|reply| parse_shard_list(reply, servers).ok())
        .map(|shards| topology_view(&shards))
}

/// Commands per second and the hit ratio between two polls; `None` across a restart (a
/// counter that went down) or without a previous poll.
fn rates(last: Option<&Counters>, now: &Counters) -> (Option<f64>, Option<f64>) {
    let Some(last) = last else {
        return (None, None);
    };
    let secs = now.at.duration_since(last.at).as_secs_f64();
    if secs < 0.05 {
        return (None, None);
    }
    let delta = |a: Option<u64>, b: Option<u64>| b?.checked_sub(a?);
    let ops = delta(last.commands, now.commands).map(|d| d.saturating_sub(last.sent) as f64 / secs);
    let hit = match (delta(last.hits, now.hits), delta(last.misses, now.misses)) {
        (Some(h), Some(m)) if h + m > 0 => Some(h as f64 / (h + m) as f64),
        _ => None,
    };
    (ops, hit)
}

/// The topology as the page gets it: each shard with its slot count and nodes, and the owner
/// of every slot (the shard id, 0 for none) when shards report slots.
fn topology_view(shards: &[crate::client::topology::Shard]) -> Value {
    use crate::client::router::SLOTS;
    let mut owners = vec![0u64; usize::from(SLOTS)];
    let mut any = false;
    for shard in shards {
        for &(first, last) in &shard.slots {
            for slot in first..=last.min(SLOTS - 1) {
                owners[usize::from(slot)] = shard.index as u64 + 1;
                any = true;
            }
        }
    }
    let list: Vec<Value> = shards
        .iter()
        .map(|s| {
            json!({
                "id": s.index + 1,
                "slots": s.slot_count(),
                "nodes": s.nodes.iter().map(|n| json!({
                    "addr": n.addr,
                    "server": n.server,
                    "leader": n.leader,
                    "health": n.health,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "shards": list,
        "slots": SLOTS,
        "owners": if any { Some(owners) } else { None },
    })
}

/// Polls server `index` every [`POLL_EVERY`] while someone looks.
async fn poll_node(weak: Weak<Feed>, index: usize, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(POLL_EVERY);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let Some(feed) = weak.upgrade() else {
            return;
        };
        if !feed.interested() {
            continue;
        }
        let Some(pool) = feed.pool(index).cloned() else {
            return;
        };
        let mut commands: Vec<Vec<Bytes>> = vec![
            vec![Bytes::from_static(b"INFO")],
            vec![
                Bytes::from_static(b"INFO"),
                Bytes::from_static(b"latencystats"),
            ],
            vec![
                Bytes::from_static(b"INFO"),
                Bytes::from_static(b"commandstats"),
            ],
        ];
        if feed.asks_topology(index) {
            commands.push(vec![
                Bytes::from_static(b"CLUSTER"),
                Bytes::from_static(b"SHARDS"),
            ]);
        }
        let sent = commands.len() as u64;
        // Not holding the feed across the exchange: a dropped dashboard stops at once.
        drop(feed);
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = pool.pipeline(commands, POLL_TIMEOUT) => outcome,
        };
        let Some(feed) = weak.upgrade() else {
            return;
        };
        feed.record(index, sent, outcome);
    }
}

/// Sends a `state` event every [`POLL_EVERY`] while someone looks.
async fn broadcast_state(feed: Weak<Feed>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(POLL_EVERY);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let Some(feed) = feed.upgrade() else {
            return;
        };
        if feed.interested() {
            let message = feed.tick();
            // No receiver is fine: nobody has the page open right now.
            let _ = feed.events.send(message);
        }
    }
}

/// Unix time in seconds, fractional.
fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Unix time in milliseconds.
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::from(s.to_string()))
    }

    fn servers() -> Vec<String> {
        vec!["127.0.0.1:7001".to_string(), "127.0.0.1:7002".to_string()]
    }

    #[test]
    fn garbage_replies_put_the_node_in_error_without_panicking() {
        let now = Instant::now();
        let cases = [
            vec![],
            vec![Reply::Int(5)],
            vec![Reply::Error("NOAUTH Authentication required.".into())],
            vec![Reply::Nil, Reply::Nil, Reply::Nil],
            vec![Reply::Array(vec![Reply::Nil])],
        ];
        for replies in cases {
            let mut node = NodeView::default();
            assert!(read_replies(&mut node, &replies, now, 3, &servers()).is_none());
            assert_eq!(node.status, "error", "{replies:?}");
            assert!(node.error.is_some());
        }
        // Text that is not INFO and a CLUSTER SHARDS of another shape: up, without figures.
        let mut node = NodeView::default();
        let replies = [
            bulk("\u{0}garbage\r\n:::\r\ndb0:keys=x"),
            Reply::Error("ERR unknown section".into()),
            bulk(""),
            Reply::Array(vec![Reply::Int(1), bulk("nodes")]),
        ];
        assert!(read_replies(&mut node, &replies, now, 4, &servers()).is_none());
        assert_eq!(node.status, "up");
        assert_eq!(node.keys, Some(0));
        assert_eq!(node.ops, None);
    }

    #[test]
    fn rates_leave_out_the_own_polls_and_restarts() {
        let t0 = Instant::now();
        let first = Counters {
            at: t0,
            commands: Some(100),
            hits: Some(10),
            misses: Some(0),
            sent: 3,
        };
        let later = Counters {
            at: t0 + Duration::from_secs(2),
            commands: Some(403),
            hits: Some(13),
            misses: Some(1),
            sent: 3,
        };
        assert_eq!(rates(Some(&first), &later), (Some(150.0), Some(0.75)));
        let restarted = Counters {
            commands: Some(5),
            hits: Some(0),
            ..later
        };
        assert_eq!(rates(Some(&first), &restarted), (None, None));
        assert_eq!(rates(None, &later), (None, None));
    }

    #[test]
    fn the_feed_keeps_five_minutes_and_marks_unreachable_nodes_down() {
        let feed = Feed::new(servers(), Vec::new());
        feed.record(
            1,
            3,
            Err(ClientError::Io {
                addr: "127.0.0.1:7002".into(),
                cause: std::io::ErrorKind::ConnectionRefused.into(),
            }),
        );
        feed.record(
            0,
            3,
            Ok(vec![bulk("connected_clients:4\r\ndb0:keys=7,expires=1")]),
        );
        for _ in 0..HISTORY + 20 {
            feed.tick();
        }
        let hello: Value = serde_json::from_str(&feed.hello()).expect("JSON");
        assert_eq!(hello["state"]["nodes"][0]["status"], json!("up"));
        assert_eq!(hello["state"]["nodes"][0]["keys"], json!(7));
        assert_eq!(hello["state"]["nodes"][1]["status"], json!("down"));
        assert_eq!(
            hello["history"]["t"].as_array().map(Vec::len),
            Some(HISTORY)
        );
        assert_eq!(hello["history"]["nodes"][0]["keys"][0], json!(7));
        assert_eq!(hello["history"]["nodes"][1]["keys"][0], json!(null));
    }

    #[test]
    fn cluster_shards_become_the_slot_map() {
        let node = |port: i64, role: &str| {
            Reply::Array(vec![
                bulk("port"),
                Reply::Int(port),
                bulk("ip"),
                bulk("127.0.0.1"),
                bulk("role"),
                bulk(role),
                bulk("health"),
                bulk("online"),
            ])
        };
        let shard = |index: i64, slots: Vec<i64>, nodes: Vec<Reply>| {
            Reply::Array(vec![
                bulk("slots"),
                Reply::Array(slots.into_iter().map(Reply::Int).collect()),
                bulk("shard-index"),
                Reply::Int(index),
                bulk("nodes"),
                Reply::Array(nodes),
            ])
        };
        let reply = Reply::Array(vec![
            shard(
                1,
                vec![0, 9],
                vec![node(7001, "master"), node(7002, "replica")],
            ),
            shard(2, vec![10, 12287], vec![node(7002, "master")]),
        ]);
        let mut node = NodeView::default();
        let replies = [bulk("cluster_enabled:1"), bulk(""), bulk(""), reply];
        let topology =
            read_replies(&mut node, &replies, Instant::now(), 4, &servers()).expect("a topology");
        assert!(node.cluster);
        assert_eq!(topology["shards"][0]["slots"], json!(10));
        assert_eq!(topology["shards"][0]["nodes"][0]["leader"], json!(true));
        assert_eq!(topology["shards"][0]["nodes"][1]["server"], json!(1));
        assert_eq!(topology["owners"][9], json!(1));
        assert_eq!(topology["owners"][10], json!(2));
    }
}
