//! The shared state of one running node: configuration, store, counters, snapshot file and
//! the registry of connected clients.
//!
//! One `Arc<Node>` is shared by the accept loop, every connection task and the background
//! tasks. Its locks are short and never held across `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;
use crate::persist::Persister;
use crate::stats::latency::LatencyMonitor;
use crate::stats::Stats;
use crate::store::Store;

/// What a stopping node writes (see [`Node::final_save`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FinalSave {
    /// A final snapshot (Ctrl+C, SIGTERM, SHUTDOWN, SHUTDOWN SAVE).
    Snapshot,
    /// A final snapshot only if something changed since SHUTDOWN's own save.
    IfChanged,
    /// None (SHUTDOWN NOSAVE); the append-only log is still flushed.
    Nothing,
}

/// A [`FinalSave`] in one atomic byte: set by SHUTDOWN, read once by the stopping node.
#[derive(Debug)]
pub struct FinalSaveCell(AtomicU8);

impl FinalSaveCell {
    fn new(mode: FinalSave) -> Self {
        FinalSaveCell(AtomicU8::new(mode as u8))
    }

    /// What the node will write when it stops.
    pub fn get(&self) -> FinalSave {
        match self.0.load(Ordering::Acquire) {
            0 => FinalSave::Snapshot,
            1 => FinalSave::IfChanged,
            _ => FinalSave::Nothing,
        }
    }

    /// Sets it; call before cancelling [`Node::shutdown`] (the release store pairs with the
    /// stopping node's acquire load, which happens after the cancellation).
    pub fn set(&self, mode: FinalSave) {
        self.0.store(mode as u8, Ordering::Release);
    }
}

/// Everything a command may need besides its own connection's session.
#[derive(Debug)]
pub struct Node {
    /// The configuration the node was started with.
    pub config: NodeConfig,
    /// The settings CONFIG SET changes at run time (started from `config`; read these, not
    /// `config`, for `timeout`, `maxclients`, `requirepass`, `save`, ...).
    pub settings: crate::config::live::Settings,
    /// The keyspace.
    pub store: Arc<Store>,
    /// Request and connection counters.
    pub stats: Stats,
    /// The snapshot file and the outcome of its last save.
    pub persister: Arc<Persister>,
    /// When the node started (INFO uptime).
    pub started: std::time::Instant,
    /// Cancelled to stop the node (Ctrl+C, SIGTERM, SHUTDOWN, tests).
    pub shutdown: CancellationToken,
    /// What the node does with its data once it stops: set by SHUTDOWN before it cancels
    /// [`Node::shutdown`]; a signal leaves the default, a final snapshot.
    pub final_save: FinalSaveCell,
    /// The port actually bound (differs from the configured one when that was 0).
    pub port: AtomicU64,
    /// Connected clients (CLIENT LIST, CLIENT KILL).
    pub clients: Clients,
    /// Slow commands (SLOWLOG).
    pub slowlog: SlowLog,
    /// Latency spikes by event (LATENCY); shared with the persister, the append-only log and
    /// the expiry sweep, which record their own events.
    pub latency: Arc<LatencyMonitor>,
    /// MONITOR feed: every executed command, formatted as Redis prints it.
    pub monitor: broadcast::Sender<Bytes>,
    /// The append-only log, when `appendonly` is on (set once the log was replayed).
    pub aof: std::sync::OnceLock<Arc<crate::aof::Aof>>,
    /// Where write commands send their effects (the append-only log when it is on; see
    /// [`crate::effect`]). Set once before the node serves.
    pub effect_sink: std::sync::OnceLock<Arc<dyn crate::effect::EffectSink>>,
    /// Connections in MONITOR mode. Checked on every command instead of the channel's own
    /// receiver count, which takes a lock.
    pub monitors: AtomicUsize,
    /// This node's part of a replicated cluster (`--cluster`), set once before it serves.
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// Channel and pattern subscriptions (SUBSCRIBE, PUBLISH); an `Arc` so that each
    /// connection's subscriptions can remove themselves when it ends.
    pub pubsub: Arc<crate::pubsub::PubSub>,
    /// Clients blocked on keys (BLPOP and friends).
    pub blocking: crate::block::Blocking,
    /// `maxmemory`, its policy, the memory in use and the evictions (see [`crate::memory`]).
    pub memory: crate::memory::Budget,
    next_client_id: AtomicU64,
}

impl Node {
    /// A node with an empty store for `config`.
    pub fn new(config: NodeConfig) -> Self {
        let latency = Arc::new(LatencyMonitor::default());
        let persister =
            Persister::new(config.snapshot_path(), config.id).with_latency(latency.clone());
        Node {
            store: Arc::new(Store::new(config.databases, config.shards)),
            stats: Stats::default(),
            persister: Arc::new(persister),
            started: std::time::Instant::now(),
            shutdown: CancellationToken::new(),
            final_save: FinalSaveCell::new(FinalSave::Snapshot),
            port: AtomicU64::new(u64::from(config.port)),
            clients: Clients::default(),
            slowlog: SlowLog::default(),
            latency,
            monitor: broadcast::channel(4096).0,
            monitors: AtomicUsize::new(0),
            aof: std::sync::OnceLock::new(),
            effect_sink: std::sync::OnceLock::new(),
            blocking: crate::block::Blocking::default(),
            memory: crate::memory::Budget::default(),
            cluster: std::sync::OnceLock::new(),
            pubsub: Arc::default(),
            next_client_id: AtomicU64::new(1),
            settings: crate::config::live::Settings::new(&config),
            config,
        }
    }

    /// A fresh, never reused connection id (CLIENT ID).
    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The effect sink, if one is attached.
    pub fn sink(&self) -> Option<&Arc<dyn crate::effect::EffectSink>> {
        self.effect_sink.get()
    }

    /// Attaches the sink write commands send their effects to; false if one already was
    /// (the first stays).
    pub fn attach_sink(&self, sink: Arc<dyn crate::effect::EffectSink>) -> bool {
        self.effect_sink.set(sink).is_ok()
    }

    /// The replicated cluster this node is part of, if any.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// The port the node listens on.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed) as u16
    }
}

/// What the node knows about one connection, shared between its task and CLIENT commands.
#[derive(Debug)]
pub struct ClientHandle {
    /// CLIENT ID.
    pub id: u64,
    /// Peer address.
    pub addr: String,
    /// Local address.
    pub laddr: String,
    /// When the connection was accepted.
    pub opened: tokio::time::Instant,
    /// Cancelled by CLIENT KILL, or with the node's shutdown token (it is a child of it):
    /// the connection closes.
    pub kill: CancellationToken,
    /// Selected database (mirrors the session, for CLIENT LIST).
    pub db: AtomicUsize,
    /// RESP version in use.
    pub protocol: AtomicU8,
    /// Index in the command table of the last command run (`usize::MAX` for none).
    pub last_command: AtomicUsize,
    /// Milliseconds since `opened` of the last command (CLIENT LIST `idle=`).
    pub last_active_ms: AtomicU64,
    /// Name and library information (CLIENT SETNAME / SETINFO).
    pub meta: Mutex<ClientMeta>,
    /// Channels subscribed to (CLIENT LIST `sub=`).
    pub subscriptions: AtomicUsize,
    /// Patterns subscribed to (CLIENT LIST `psub=`).
    pub pattern_subscriptions: AtomicUsize,
}

/// The rarely changed, textual part of a client's state.
#[derive(Debug, Default, Clone)]
pub struct ClientMeta {
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Option<Bytes>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Option<Bytes>,
    /// Redis's flags letters: `N` normal, `M` master... here `N`, `x` in MULTI, `O` monitor,
    /// `P` subscribed (pub/sub).
    pub flags: &'static str,
    /// The subcommand of the last container command run (CLIENT LIST `cmd=client|list`).
    pub last_sub: Option<Bytes>,
}

impl ClientHandle {
    /// A handle for a new connection; `kill` is usually a child of the node's shutdown token.
    pub fn new(id: u64, addr: String, laddr: String, kill: CancellationToken) -> Self {
        ClientHandle {
            id,
            addr,
            laddr,
            opened: tokio::time::Instant::now(),
            kill,
            db: AtomicUsize::new(0),
            protocol: AtomicU8::new(2),
            last_command: AtomicUsize::new(usize::MAX),
            last_active_ms: AtomicU64::new(0),
            subscriptions: AtomicUsize::new(0),
            pattern_subscriptions: AtomicUsize::new(0),
            meta: Mutex::new(ClientMeta {
                flags: "N",
                ..ClientMeta::default()
            }),
        }
    }

    /// A copy of the textual state.
    pub fn meta(&self) -> ClientMeta {
        self.meta.lock().expect("client meta lock poisoned").clone()
    }

    /// Changes the textual state.
    pub fn update_meta(&self, f: impl FnOnce(&mut ClientMeta)) {
        f(&mut self.meta.lock().expect("client meta lock poisoned"));
    }
}

/// The registry of connected clients.
#[derive(Debug, Default)]
pub struct Clients {
    map: Mutex<HashMap<u64, Arc<ClientHandle>>>,
}

impl Clients {
    /// Registers a connection; it is removed when the returned guard drops.
    pub fn register(&self, handle: Arc<ClientHandle>) -> Registration<'_> {
        let id = handle.id;
        self.map
            .lock()
            .expect("client registry lock poisoned")
            .insert(id, handle);
        Registration { clients: self, id }
    }

    /// Every connected client, ordered by id.
    pub fn list(&self) -> Vec<Arc<ClientHandle>> {
        let mut all: Vec<_> = self
            .map
            .lock()
            .expect("client registry lock poisoned")
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|c| c.id);
        all
    }
}

/// Removes a client from the registry on drop.
#[derive(Debug)]
pub struct Registration<'a> {
    clients: &'a Clients,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.clients
            .map
            .lock()
            .expect("client registry lock poisoned")
            .remove(&self.id);
    }
}

/// One SLOWLOG entry.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    /// Unique, increasing id.
    pub id: u64,
    /// Unix seconds when the command ran.
    pub unix_secs: i64,
    /// How long it ran, in microseconds.
    pub micros: u64,
    /// The command and up to 31 arguments, each cut to 128 bytes, as Redis keeps them.
    pub args: Vec<Bytes>,
    /// Client address.
    pub addr: String,
    /// Client name.
    pub name: Bytes,
}

/// The slow log: commands slower than the threshold, newest first, bounded length.
#[derive(Debug)]
pub struct SlowLog {
    /// Threshold in microseconds (`slowlog-log-slower-than`; negative disables).
    pub slower_than_us: std::sync::atomic::AtomicI64,
    /// Entries kept (`slowlog-max-len`).
    pub max_len: AtomicUsize,
    entries: Mutex<VecDeque<SlowEntry>>,
    next_id: AtomicU64,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            slower_than_us: std::sync::atomic::AtomicI64::new(10_000),
            max_len: AtomicUsize::new(128),
            entries: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

impl SlowLog {
    /// Records the command if it ran longer than the threshold.
    #[inline]
    pub fn record(&self, micros: u64, args: &[Bytes], client: &ClientHandle) {
        // Checked inline on every command; only a slow one pays for the call below.
        let threshold = self.slower_than_us.load(Ordering::Relaxed);
        if threshold < 0 || micros < threshold as u64 {
            return;
        }
        self.keep(micros, args, client);
    }

    #[cold]
    fn keep(&self, micros: u64, args: &[Bytes], client: &ClientHandle) {
        let mut kept: Vec<Bytes> = args
            .iter()
            .take(32)
            .map(|a| {
                if a.len() > 128 {
                    let more = format!("... ({} more bytes)", a.len() - 128);
                    Bytes::from([&a[..128], more.as_bytes()].concat())
                } else {
                    a.clone()
                }
            })
            .collect();
        if args.len() > 32 {
            kept[31] = Bytes::from(format!("... ({} more arguments)", args.len() - 31));
        }
        let entry = SlowEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_secs: crate::store::clock::unix_ms() / 1000,
            micros,
            args: kept,
            addr: client.addr.clone(),
            name: client.meta().name.unwrap_or_default(),
        };
        let mut entries = self.entries.lock().expect("slowlog lock poisoned");
        entries.push_front(entry);
        entries.truncate(self.max_len.load(Ordering::Relaxed));
    }

    /// The newest `count` entries.
    pub fn latest(&self, count: usize) -> Vec<SlowEntry> {
        let entries = self.entries.lock().expect("slowlog lock poisoned");
        entries.iter().take(count).cloned().collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("slowlog lock poisoned").len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry.
    pub fn reset(&self) {
        self.entries.lock().expect("slowlog lock poisoned").clear();
    }
}
