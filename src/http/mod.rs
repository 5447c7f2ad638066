//! The node's HTTP port (issue 13): Prometheus metrics, a health check and the live dashboard.
//!
//! A port of its own, never sniffed on the data port: the data port closes a connection that
//! speaks HTTP, as Redis does, so a web page can never drive a node through it. This port is
//! served by axum on the node's runtime and binds 127.0.0.1 unless told otherwise.
//!
//! Rooms:
//! - [`guard`]: what every request passes first: the Host and Origin checks (DNS rebinding,
//!   cross-site requests) and the password (HTTP basic auth or the dashboard's session).
//! - [`metrics`]: `/metrics` in Prometheus text format, read from each node's [`Report`] and
//!   counters.
//! - [`dashboard`]: the page at `/`, its live feed and the key browser, which reach the nodes
//!   over RESP like any client.
//!
//! Nothing here touches a shard: figures come from reports, keys from commands.
//!
//! [`Report`]: crate::report::Report

pub mod dashboard;
pub mod guard;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{describe_io, Error, Result};
use crate::node::Node;

/// Where the HTTP port listens and what it shows.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address to bind (127.0.0.1 unless told otherwise).
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// The nodes' password (`--requirepass`): the dashboard asks for it and `/metrics` takes
    /// it as HTTP basic auth. `None`: open, as the data port is.
    pub password: Option<String>,
    /// Host names besides IP literals and `localhost` that requests may name in their Host
    /// header (`--http-allow-host`).
    pub allowed_hosts: Vec<String>,
    /// Client addresses (`HOST:PORT`) of every node the dashboard shows, in id order.
    pub servers: Vec<String>,
}

/// What every handler can read.
#[derive(Debug)]
pub struct HttpState {
    /// The nodes served by this process (for `/metrics` and `/healthz`); empty for
    /// `minikv dashboard`, which reaches its nodes over RESP only.
    pub local: Vec<Arc<Node>>,
    /// The configuration it was started with.
    pub config: HttpConfig,
    /// The dashboard's sessions and node connections.
    pub dashboard: dashboard::Dashboard,
}

/// A bound HTTP port, not yet serving.
pub struct HttpServer {
    listener: TcpListener,
    state: Arc<HttpState>,
}

impl HttpServer {
    /// Binds `config.host:config.port` for the nodes `local`.
    ///
    /// # Errors
    /// [`Error::Bind`]-like I/O errors naming the address when the port cannot be bound.
    pub async fn bind(config: HttpConfig, local: Vec<Arc<Node>>) -> Result<HttpServer> {
        let dashboard = dashboard::Dashboard::new(&config);
        HttpServer::bind_with(config, local, dashboard).await
    }

    /// Binds `config.host:config.port` for a dashboard of remote nodes only (`minikv
    /// dashboard`), reaching them with TLS under `tls` when given.
    ///
    /// # Errors
    /// As [`HttpServer::bind`].
    pub async fn bind_dashboard(
        config: HttpConfig,
        tls: Option<Arc<crate::tls::TlsClientConfig>>,
    ) -> Result<HttpServer> {
        let dashboard = dashboard::Dashboard::with_tls(&config, tls);
        HttpServer::bind_with(config, Vec::new(), dashboard).await
    }

    async fn bind_with(
        config: HttpConfig,
        local: Vec<Arc<Node>>,
        dashboard: dashboard::Dashboard,
    ) -> Result<HttpServer> {
        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr).await.map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot bind the HTTP port {addr}: {}", describe_io(&e)),
            ))
        })?;
        Ok(HttpServer {
            listener,
            state: Arc::new(HttpState {
                local,
                config,
                dashboard,
            }),
        })
    }

    /// The address actually bound (the port, when 0 was asked for).
    ///
    /// # Errors
    /// When the OS cannot tell (practically never).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` is cancelled, then lets requests in flight finish (the live
    /// feeds end with the token too).
    ///
    /// # Errors
    /// When accepting fails for good.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let app = router(Arc::clone(&self.state), shutdown.clone());
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await?;
        Ok(())
    }
}

/// Every route, behind the guard.
pub fn router(state: Arc<HttpState>, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(metrics::routes())
        .merge(dashboard::routes(shutdown))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::check,
        ))
        .with_state(state)
}

/// `/healthz`: 200 `ok` while every node of this process serves, 503 otherwise (shutting
/// down). No password: it says nothing but up or down.
async fn healthz(State(state): State<Arc<HttpState>>) -> (StatusCode, &'static str) {
    if state.local.iter().all(|n| !n.shutdown.is_cancelled()) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

/// `minikv dashboard`: serves the dashboard of `config.servers` (reached over RESP, with TLS
/// under `tls` when given) until Ctrl+C or SIGTERM. `ready` gets the bound address once the
/// port listens.
///
/// # Errors
/// When the signal handlers cannot be installed or the port cannot be bound.
pub async fn serve_dashboard(
    config: HttpConfig,
    tls: Option<Arc<crate::tls::TlsClientConfig>>,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let signals = crate::launch::Signals::install()?;
    let server = HttpServer::bind_dashboard(config, tls).await?;
    ready(server.local_addr()?);
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    signals.wait().await;
    stop.cancel();
    task.await.map_err(crate::launch::LaunchError::from)?
}
