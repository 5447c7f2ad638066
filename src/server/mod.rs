//! The node's TCP server: load the snapshot, bind, accept connections (each served by its own
//! task, see [`conn`]), run the background sweep and snapshot tasks, and shut down gracefully.
//!
//! Shutdown (Ctrl+C, SIGTERM, or cancelling [`Node::shutdown`]): stop accepting, let every
//! connection answer what it has already read, then write a final snapshot.

pub mod conn;
pub mod sniff;
pub mod workers;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::aof::Aof;
use crate::config::NodeConfig;
use crate::error::{Error, Result};
use crate::node::{FinalSave, Node};
use crate::{persist, store};
use workers::Workers;

/// How long shutdown waits for open connections to finish their current batch.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One served connection's place under `maxclients`, given back when dropped.
struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A node that has restored its snapshot and bound its port, ready to [`Server::run`].
#[derive(Debug)]
pub struct Server {
    node: Arc<Node>,
    listener: TcpListener,
    restored: usize,
    /// Wraps every accepted connection when the node serves TLS.
    tls: Option<Arc<crate::tls::TlsServerConfig>>,
}

impl Server {
    /// Restores the snapshot named by `config` and binds `host:port`.
    ///
    /// # Errors
    /// A corrupt or unreadable snapshot (the node refuses to start rather than overwrite it),
    /// an unusable TLS certificate or key, or a port that cannot be bound.
    pub async fn bind(config: NodeConfig) -> Result<Server> {
        // Certificates first: a bad TLS file refuses to start before anything is touched.
        let tls = match &config.tls {
            Some(tls) => {
                Some(crate::tls::server_config(tls).map_err(|e| Error::Startup(e.to_string()))?)
            }
            None => None,
        };
        if config.clustered() && config.appendonly {
            return Err(Error::Startup(
                "--appendonly is not used with --cluster: each shard's Raft log is the node's \
                 log (fsynced before a write is acknowledged)"
                    .to_string(),
            ));
        }
        let node = Arc::new(Node::new(config));
        // The config file's run-time parameters, through CONFIG SET's own setter.
        for param in &node.config.params {
            crate::cmd::config::set_at_start(&node, &param.name, &param.value)
                .map_err(|e| Error::Startup(format!("{}: {}: {e}", param.origin, param.name)))?;
        }
        let persister = node.persister.clone();
        let store = node.store.clone();
        // In a cluster the shards' groups restore the data (their snapshots and logs).
        let restored = if node.config.clustered() {
            0
        } else {
            tokio::task::spawn_blocking(move || persister.load(&store))
                .await
                .map_err(|e| Error::Startup(format!("snapshot loader panicked: {e}")))??
        };
        if node.config.appendonly {
            let (path, policy, id) = (
                node.config.aof_path(),
                node.settings.appendfsync(),
                node.config.id,
            );
            let (store, covered) = (node.store.clone(), node.persister.loaded_aof_offset());
            let aof = tokio::task::spawn_blocking(move || {
                let replayed = Aof::replay(&path, &store, covered)?;
                if replayed > 0 {
                    tracing::info!("{}: replayed {replayed} records", path.display());
                }
                Aof::open(path, policy, id)
            })
            .await
            .map_err(|e| Error::Startup(format!("log replay panicked: {e}")))??;
            let aof = Arc::new(aof);
            aof.attach_latency(node.latency.clone());
            node.persister.attach_aof(aof.clone());
            // Set once here, before any connection exists: the log is the node's effect sink.
            node.attach_sink(aof.clone());
            let _ = node.aof.set(aof);
        }
        let addr = format!("{}:{}", node.config.host, node.config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|cause| Error::Bind { addr, cause })?;
        let port = listener.local_addr().map_err(Error::Io)?.port();
        node.port
            .store(u64::from(port), std::sync::atomic::Ordering::Relaxed);
        if let Some(spec) = node.config.cluster.clone() {
            let cluster = crate::cluster::Cluster::start(&node, spec, None)
                .await
                .map_err(Error::Startup)?;
            let _ = node.cluster.set(cluster);
        } else if let Some(join) = node.config.join.clone() {
            let (spec, table) = crate::cluster::operate::request_join(&node.config, port, &join)
                .await
                .map_err(Error::Startup)?;
            let cluster = crate::cluster::Cluster::start(&node, spec, Some(table))
                .await
                .map_err(Error::Startup)?;
            let _ = node.cluster.set(cluster);
        }
        Ok(Server {
            node,
            listener,
            restored,
            tls,
        })
    }

    /// The bound address.
    ///
    /// # Errors
    /// If the socket cannot report its address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(Error::Io)
    }

    /// The node's shared state (cancel `node().shutdown` to stop it).
    pub fn node(&self) -> Arc<Node> {
        self.node.clone()
    }

    /// How many keys were restored from the snapshot.
    pub fn restored(&self) -> usize {
        self.restored
    }

    /// Serves until the node's shutdown token is cancelled, then drains connections and
    /// writes the final snapshot. Connections run on the current runtime.
    ///
    /// # Errors
    /// The final snapshot could not be written.
    pub async fn run(self) -> Result<()> {
        self.run_on(None).await
    }

    /// As [`Server::run`], with each connection handed to one of `workers` for its whole life
    /// (see [`workers`]) instead of the current runtime.
    ///
    /// # Errors
    /// The final snapshot could not be written.
    pub async fn run_on(self, workers: Option<Arc<Workers>>) -> Result<()> {
        let Server {
            node,
            listener,
            tls,
            ..
        } = self;
        let tracker = TaskTracker::new();
        let config = &node.config;
        tracker.spawn(store::expiry::run(
            node.store.clone(),
            config.cleanup_interval,
            node.shutdown.clone(),
            node.latency.clone(),
        ));
        tracker.spawn(crate::memory::give_back(
            node.clone(),
            node.shutdown.clone(),
        ));
        tracker.spawn(crate::memory::rebase(node.clone(), node.shutdown.clone()));
        if !config.clustered() {
            tracker.spawn(persist::run(
                node.persister.clone(),
                node.store.clone(),
                node.settings.watch_save(),
                node.shutdown.clone(),
            ));
        }
        // Connections being served, against `maxclients` (which CONFIG SET may change).
        let active = Arc::new(AtomicUsize::new(0));
        loop {
            // Shutdown first: once it is requested no new connection is accepted.
            let accepted = tokio::select! {
                biased;
                _ = node.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (mut stream, _) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Only this loop increments, so the check and the increment cannot race past the
            // limit; connections ending meanwhile only make room.
            match active.load(Ordering::Relaxed) < node.settings.maxclients() {
                true => {
                    active.fetch_add(1, Ordering::Relaxed);
                    let permit = Permit(active.clone());
                    let node = node.clone();
                    let tls = tls.clone().map(crate::tls::TlsAcceptor::from);
                    match &workers {
                        None => {
                            tracker.spawn(async move {
                                conn::run(stream, node, tls).await;
                                drop(permit);
                            });
                        }
                        Some(workers) => {
                            // The socket leaves this runtime's reactor and joins the worker's.
                            let stream = match stream.into_std() {
                                Ok(stream) => stream,
                                Err(e) => {
                                    tracing::warn!("cannot hand a connection over: {e}");
                                    continue;
                                }
                            };
                            let assigned = workers.assign();
                            let handle = assigned.handle().clone();
                            tracker.spawn_on(
                                async move {
                                    match tokio::net::TcpStream::from_std(stream) {
                                        Ok(stream) => conn::run(stream, node, tls).await,
                                        Err(e) => {
                                            tracing::warn!("cannot serve a connection: {e}")
                                        }
                                    }
                                    drop((permit, assigned));
                                },
                                &handle,
                            );
                        }
                    }
                }
                false => {
                    node.stats.connection_rejected();
                    tracker.spawn(async move {
                        let _ = stream
                            .write_all(b"-ERR max number of clients reached\r\n")
                            .await;
                    });
                }
            }
        }
        drop(listener);
        tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; saving anyway");
        }
        if let Some(cluster) = node.cluster() {
            for group in cluster.groups() {
                group.stop().await;
            }
            tracing::info!(id = node.config.id, "node stopped");
            return Ok(());
        }
        let persister = node.persister.clone();
        let store = node.store.clone();
        let mode = node.final_save.get();
        let keys = tokio::task::spawn_blocking(move || match mode {
            FinalSave::Snapshot => persister.save(&store).map(Some),
            FinalSave::IfChanged => persister.save_if_dirty(&store),
            FinalSave::Nothing => Ok(None),
        })
        .await
        .map_err(|e| Error::Startup(format!("final snapshot panicked: {e}")))??;
        if let Some(aof) = node.aof.get().cloned() {
            tokio::task::spawn_blocking(move || aof.close())
                .await
                .map_err(|e| Error::Startup(format!("closing the log panicked: {e}")))?;
        }
        match keys {
            Some(keys) => tracing::info!(
                id = node.config.id,
                keys,
                "final snapshot written; node stopped"
            ),
            None => tracing::info!(id = node.config.id, "node stopped"),
        }
        Ok(())
    }
}
