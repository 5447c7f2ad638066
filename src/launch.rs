//! Serving a set of nodes in this process until a stop signal: what `minikv server` (one node)
//! and `minikv cluster` (N nodes) run once their arguments are parsed.
//!
//! It owns the process-level lifecycle only: the tokio runtime, the stop signals (Ctrl+C,
//! SIGTERM), binding every node, cancelling them all on a signal and collecting their
//! outcomes. How one node serves and shuts down is [`crate::server`]'s business; nothing here
//! touches a connection, the store or the snapshot files.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::NodeConfig;
use crate::error::{describe_io, Error, Result};
use crate::http::{HttpConfig, HttpServer};
use crate::server::workers::Workers;
use crate::server::Server;
use tokio_util::sync::CancellationToken;

/// The HTTP port to serve beside the nodes (metrics, health, dashboard).
#[derive(Debug, Clone)]
pub struct HttpLaunch {
    /// Where and what.
    pub config: HttpConfig,
    /// Whether failing to bind it stops the start (a port the user asked for) or only logs a
    /// warning (`minikv cluster`'s default port, which may be taken).
    pub required: bool,
}

/// Why the nodes could not be started or stopped cleanly (besides a node's own error).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The tokio runtime could not be built (usually: no threads or file descriptors left).
    #[error("cannot start the threads serving the nodes: {}", describe_io(.0))]
    Runtime(std::io::Error),
    /// A stop-signal handler could not be installed.
    #[error("cannot install the {signal} handler: {}", describe_io(cause))]
    Signal {
        /// The signal's name: `SIGINT` or `SIGTERM`.
        signal: &'static str,
        /// What the OS said (in the message, not chained, so it prints once).
        cause: std::io::Error,
    },
    /// A node could not start: its snapshot or log is unreadable, its TLS files are unusable,
    /// or its port cannot be bound.
    #[error("starting node {id}")]
    Start {
        /// The node's id.
        id: u64,
        /// Why (chained, as its own message already names the file or address).
        #[source]
        cause: Box<Error>,
    },
    /// The HTTP port the user asked for could not be bound.
    #[error("starting the HTTP port")]
    Http(#[source] Box<Error>),
    /// A node's task panicked or was cancelled before it could report.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// Serves `configs` on a new runtime with `threads` workers (see [`runtime`]) until Ctrl+C or
/// SIGTERM, then stops every node gracefully. Blocks the calling thread. `ready` is called
/// as in [`serve`].
///
/// # Errors
/// As [`serve`], plus [`LaunchError::Runtime`].
pub fn run(
    configs: Vec<NodeConfig>,
    http: Option<HttpLaunch>,
    threads: Option<usize>,
    ready: impl FnOnce(&[SocketAddr], Option<SocketAddr>),
) -> Result<()> {
    let threads = threads.unwrap_or_else(default_threads);
    let runtime = runtime(Some(threads))?;
    // One thread: the connections share the runtime's one event loop, like Redis's.
    let workers = match threads {
        0 | 1 => None,
        n => Some(Arc::new(Workers::start(n).map_err(LaunchError::Runtime)?)),
    };
    let served = runtime.block_on(serve_on(configs, http, workers.clone(), ready));
    if let Some(workers) = workers {
        workers.stop();
    }
    served
}

/// The default thread count: one per core the process may run on, less one core left to the
/// clients, the kernel's network work and the node's own background threads (snapshot saver,
/// log writer); so one on a machine of one or two cores. Measured on two cores with the
/// benchmark client beside the node, a second event loop raised CPU per request by 12–29% at
/// no gain in throughput (docs/performance.md, "Connection workers and the default thread
/// count").
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cores.saturating_sub(1).max(1)
}

/// Starts every node, serves until Ctrl+C or SIGTERM (or until SHUTDOWN has stopped every
/// node), then stops them all gracefully.
///
/// The nodes start in order; if one cannot start, those before it are dropped without
/// serving and its error is returned. Then the HTTP port `http` is bound, if any. Once every
/// node listens, `ready` gets their addresses (in `configs` order) and the HTTP port's, and then the stop signal is awaited: it runs on the runtime, so it
/// must not block, and a stop signal arriving meanwhile waits for it.
///
/// # Errors
/// [`LaunchError::Signal`], [`LaunchError::Start`] or [`LaunchError::Http`] before anything is
/// served; after the
/// signal, the error of a node that did not stop cleanly (the last one, if several failed).
pub async fn serve(
    configs: Vec<NodeConfig>,
    http: Option<HttpLaunch>,
    ready: impl FnOnce(&[SocketAddr], Option<SocketAddr>),
) -> Result<()> {
    serve_on(configs, http, None, ready).await
}

/// As [`serve`], with every node's connections served by `workers` (see
/// [`crate::server::workers`]) instead of the current runtime.
///
/// # Errors
/// As [`serve`].
pub async fn serve_on(
    configs: Vec<NodeConfig>,
    http: Option<HttpLaunch>,
    workers: Option<Arc<Workers>>,
    ready: impl FnOnce(&[SocketAddr], Option<SocketAddr>),
) -> Result<()> {
    // Handlers first: a SIGTERM arriving as soon as a port accepts must stop the node
    // gracefully, not kill it with the default action before the handler exists.
    let signals = Signals::install()?;
    let mut servers = Vec::new();
    for config in configs {
        let id = config.id;
        let file = config.snapshot_path();
        let server = Server::bind(config)
            .await
            .map_err(|cause| LaunchError::Start {
                id,
                cause: Box::new(cause),
            })?;
        let addr = server.local_addr()?;
        // The binary's log target, as when this lived in main.rs: filters keep working.
        tracing::info!(
            target: "minikv",
            "node {id} listening on {addr}, data file {}, {} keys restored",
            file.display(),
            server.restored()
        );
        servers.push((server, addr));
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|(_, addr)| *addr).collect();
    let nodes: Vec<_> = servers.iter().map(|(s, _)| s.node()).collect();
    let http = match http {
        Some(launch) => bind_http(launch, nodes.clone(), &addrs).await?,
        None => None,
    };
    let stop_http = CancellationToken::new();
    let http_addr = http.as_ref().and_then(|h| h.local_addr().ok());
    let http_task = http.map(|h| tokio::spawn(h.run(stop_http.clone())));
    let tasks: Vec<_> = servers
        .into_iter()
        .map(|(s, _)| tokio::spawn(s.run_on(workers.clone())))
        .collect();
    ready(&addrs, http_addr);
    // SHUTDOWN stops its own node; the process ends once every node has stopped.
    let all_stopped = async {
        for node in &nodes {
            node.shutdown.cancelled().await;
        }
    };
    tokio::select! {
        () = signals.wait() => tracing::info!(target: "minikv", "shutting down"),
        () = all_stopped => {}
    }
    for node in &nodes {
        node.shutdown.cancel();
    }
    stop_http.cancel();
    if let Some(task) = http_task {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(target: "minikv", "HTTP port: {e:#}"),
            Err(e) => tracing::warn!(target: "minikv", "HTTP port: {e}"),
        }
    }
    let mut failed = None;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(e) => failed = Some(Error::from(LaunchError::from(e))),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Binds the HTTP port of `launch` for `nodes`: an error when it was asked for, a warning
/// (and no HTTP port) when it was only the default.
/// The dashboard shows `addrs` (the nodes' client addresses) unless told which servers to show.
async fn bind_http(
    mut launch: HttpLaunch,
    nodes: Vec<std::sync::Arc<crate::node::Node>>,
    addrs: &[SocketAddr],
) -> Result<Option<HttpServer>> {
    if launch.config.servers.is_empty() {
        launch.config.servers = addrs.iter().map(|a| reachable(*a).to_string()).collect();
    }
    match HttpServer::bind(launch.config, nodes).await {
        Ok(server) => {
            if let Ok(addr) = server.local_addr() {
                tracing::info!(target: "minikv", "HTTP (metrics, dashboard) on http://{addr}/");
            }
            Ok(Some(server))
        }
        Err(e) if launch.required => Err(LaunchError::Http(Box::new(e)).into()),
        Err(e) => {
            tracing::warn!(target: "minikv", "no dashboard: {e:#} (choose one with --http-port)");
            Ok(None)
        }
    }
}

/// What a client on this machine dials to reach `addr`: a wildcard address listens on
/// loopback too.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}

/// The runtime of everything but the connections (accept loops, expiry, snapshots, the HTTP
/// port, Raft and the cluster bus): `threads` workers (default [`default_threads`]). One thread gets a
/// single-threaded runtime (no work-stealing, no cross-thread wake-ups), like Redis's event
/// loop, which then serves the connections too; with more, [`run`] serves the connections on
/// as many [`Workers`], each its own event loop.
///
/// # Errors
/// [`LaunchError::Runtime`] when the runtime cannot be built.
pub fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, LaunchError> {
    let mut builder = match threads.unwrap_or_else(default_threads) {
        0 | 1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    builder.enable_all().build().map_err(LaunchError::Runtime)
}

/// The stop signals (Ctrl+C and SIGTERM), listened for from installation on.
#[derive(Debug)]
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Installs the handlers; from now on either signal is caught instead of killing the
    /// process. Needs a tokio runtime.
    ///
    /// # Errors
    /// [`LaunchError::Signal`] when a handler cannot be installed.
    pub fn install() -> Result<Signals, LaunchError> {
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|cause| LaunchError::Signal {
                signal: name,
                cause,
            })
        };
        Ok(Signals {
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    /// Waits for either signal.
    pub async fn wait(mut self) {
        // Either one stops the nodes; which came first does not matter.
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
