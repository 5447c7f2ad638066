//! The dashboard: one live page of every node this process knows.

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::{HttpConfig, HttpState};

/// The dashboard's state: sessions and connections to the nodes.
#[derive(Debug, Default)]
pub struct Dashboard {}

impl Dashboard {
    /// A dashboard for `config`'s servers.
    pub fn new(_config: &HttpConfig) -> Dashboard {
        Dashboard {}
    }
}

/// The page and its endpoints; live feeds end when `shutdown` is cancelled.
pub fn routes(_shutdown: CancellationToken) -> Router<Arc<HttpState>> {
    Router::new().route(
        "/",
        get(|| async { Html("<!doctype html><title>minikv</title>") }),
    )
}
