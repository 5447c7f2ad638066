//! `/metrics`: every node of this process in Prometheus text format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::guard;
use super::HttpState;

/// The `/metrics` route.
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if !guard::basic_auth_ok(state.config.password.as_deref(), &headers) {
        return guard::ask_basic_auth();
    }
    let mut out =
        String::from("# HELP minikv_up Whether the node is serving.\n# TYPE minikv_up gauge\n");
    for node in &state.local {
        out.push_str(&format!(
            "minikv_up{{node=\"{}\"}} {}\n",
            node.config.id,
            u8::from(!node.shutdown.is_cancelled())
        ));
    }
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}
