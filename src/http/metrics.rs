//! `/metrics`: every node of this process in the OpenMetrics text format Prometheus scrapes.
//!
//! Each scrape reads one [`Report`] per node (off the async runtime: a report takes shard
//! locks briefly), then encodes them with `prometheus-client` through a [`Collector`] built
//! for that scrape: every family has its HELP and TYPE lines, and every sample a
//! `node="ID"` label. Names follow redis_exporter's with a `minikv_` prefix, so dashboards
//! built for it port over; docs/observability.md lists them all.

mod families;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use super::guard;
use super::HttpState;
use crate::report::Report;

/// The content type of the OpenMetrics text format `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `/metrics` route.
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new().route("/metrics", get(metrics))
}

/// One node's figures at scrape time.
#[derive(Debug, Clone)]
pub struct NodeFigures {
    /// The node id (the `node` label).
    pub id: u64,
    /// Whether it serves (not shutting down).
    pub up: bool,
    /// Everything else.
    pub report: Report,
}

impl NodeFigures {
    /// Reads `node` now.
    pub fn read(node: &crate::node::Node) -> NodeFigures {
        NodeFigures {
            id: node.config.id,
            up: !node.shutdown.is_cancelled(),
            report: Report::gather(node, Instant::now()),
        }
    }
}

async fn metrics(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    if !guard::basic_auth_ok(state.config.password.as_deref(), &headers) {
        return guard::ask_basic_auth();
    }
    let nodes = state.local.clone();
    let read = tokio::task::spawn_blocking(move || {
        nodes
            .iter()
            .map(|n| NodeFigures::read(n))
            .collect::<Vec<_>>()
    })
    .await;
    let figures = match read {
        Ok(figures) => figures,
        Err(e) => {
            tracing::warn!("reading the nodes' reports for /metrics failed: {e}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the nodes' figures failed\n",
            )
                .into_response();
        }
    };
    match render(figures) {
        Ok(text) => ([("content-type", CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!("encoding /metrics failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding the metrics failed\n",
            )
                .into_response()
        }
    }
}

/// The exposition text for `nodes`, ending with `# EOF`.
///
/// # Errors
/// When the encoder refuses a family (a bug: every family here is well formed).
pub fn render(nodes: Vec<NodeFigures>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("minikv");
    registry.register_collector(Box::new(Scrape { nodes }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The figures of one scrape, encoded family by family (see [`families`]).
#[derive(Debug)]
struct Scrape {
    nodes: Vec<NodeFigures>,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        families::encode(&self.nodes, &mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::NodeConfig;
    use crate::node::Node;
    use crate::stats::Outcome;

    #[test]
    fn every_family_has_help_and_type_and_every_sample_a_node() {
        let node = Node::new(NodeConfig {
            id: 3,
            data_dir: PathBuf::from("/nonexistent/minikv-metrics-test"),
            ..NodeConfig::default()
        });
        let get = crate::cmd::lookup(b"get").map(|c| c.id).unwrap_or_default();
        node.stats
            .commands
            .record(get, Duration::from_micros(3), Outcome::Ok);
        node.stats
            .commands
            .record(get, Duration::from_micros(30), Outcome::Failed);
        let text = render(vec![NodeFigures::read(&node)]).expect("encodes");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let mut helped = std::collections::HashSet::new();
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap_or_default().to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap_or_default().to_string());
            } else if line != "# EOF" {
                assert!(line.contains("node=\"3\""), "no node label: {line}");
                assert!(
                    helped.iter().any(|f| line.starts_with(f.as_str())),
                    "no HELP before {line}"
                );
            }
        }
        assert_eq!(helped, typed);
        for needed in [
            "minikv_up",
            "minikv_commands_processed",
            "minikv_commands",
            "minikv_command_duration_seconds",
            "minikv_db_keys",
            "minikv_net_input_bytes",
        ] {
            assert!(helped.contains(needed), "{needed} missing:\n{text}");
        }
        assert!(text.contains("minikv_commands_total{node=\"3\",cmd=\"get\"} 2\n"));
        assert!(text.contains("minikv_commands_failed_calls_total{node=\"3\",cmd=\"get\"} 1\n"));
        let bucket =
            "minikv_command_duration_seconds_bucket{le=\"0.000004\",node=\"3\",cmd=\"get\"} 1\n";
        assert!(text.contains(bucket), "{text}");
        assert!(text.contains("minikv_command_duration_seconds_count{node=\"3\",cmd=\"get\"} 2\n"));
    }
}
