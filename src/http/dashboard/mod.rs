//! The dashboard: one live page of every node this process knows.
//!
//! The page (`/`, with its script, style sheet and the vendored uPlot charting library, all
//! compiled into the binary) opens one Server-Sent Events feed (`/api/events`) that carries
//! every node's figures once a second, and calls the key browser's and the slowlog's JSON
//! endpoints ([`api`]). Every node is reached over RESP as a client would, through the
//! client's [`NodePool`] with the nodes' password: the dashboard never touches a shard, so
//! `minikv dashboard --servers` serves the same page for nodes in other processes, or for a
//! real redis-server.
//!
//! Rooms:
//! - [`feed`]: one poller per node shared by every viewer, the history and the live events.
//! - [`info`]: the figures read out of `INFO` text.
//! - [`api`]: the key browser (SCAN, value views, delete, TTL) and the slowlog.
//! - [`session`]: sign-in with the nodes' password, and the session cookie.
//! - [`value`]: user data made safe to show (escaped, cut, with its size).
//!
//! With a password set, everything but the page's static files and `/api/session` needs a
//! session; writes are POST with JSON bodies (the guard refuses other origins).

pub mod api;
pub mod feed;
pub mod info;
pub mod session;
pub mod value;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{guard, HttpConfig, HttpState};
use crate::client::node::NodePool;
use crate::tls::TlsClientConfig;
use feed::Feed;
use session::Sessions;

/// Idle connections kept per node (the poller's and the key browser's).
const POOL_IDLE: usize = 4;

/// The dashboard's state: sessions and the live feed of the nodes.
#[derive(Debug)]
pub struct Dashboard {
    feed: Arc<Feed>,
    sessions: Sessions,
}

impl Dashboard {
    /// A dashboard for `config`'s servers, reached over plain TCP.
    pub fn new(config: &HttpConfig) -> Dashboard {
        Dashboard::with_tls(config, None)
    }

    /// A dashboard for `config`'s servers, reached with TLS under `tls` when given.
    pub fn with_tls(config: &HttpConfig, tls: Option<Arc<TlsClientConfig>>) -> Dashboard {
        let pools = config
            .servers
            .iter()
            .map(|addr| {
                Arc::new(
                    NodePool::new(addr.clone(), POOL_IDLE)
                        .password(config.password.clone())
                        .tls(tls.clone()),
                )
            })
            .collect();
        Dashboard {
            feed: Arc::new(Feed::new(config.servers.clone(), pools)),
            sessions: Sessions::default(),
        }
    }
}

/// The page and its endpoints; live feeds end when `shutdown` is cancelled.
pub fn routes(shutdown: CancellationToken) -> Router<Arc<HttpState>> {
    Router::new()
        .route("/", get(page))
        .route("/assets/{name}", get(asset))
        .route("/favicon.ico", get(favicon))
        .route("/api/session", get(session_info))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/api/events", get(events))
        .route("/api/keys", get(api::keys))
        .route("/api/key", get(api::key))
        .route("/api/key/delete", post(api::delete))
        .route("/api/key/expire", post(api::expire))
        .route("/api/slowlog", get(api::slowlog))
        .layer(Extension(shutdown))
}

/// Whether the request may see the nodes' data: no password, or a live session.
pub fn authorized(state: &HttpState, headers: &HeaderMap) -> bool {
    state.config.password.is_none() || state.dashboard.sessions.valid(headers)
}

/// A JSON error: `{"error": "..."}` with `status`.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(CACHE_CONTROL, "no-store")],
        Json(json!({ "error": message })),
    )
        .into_response()
}

/// What a 401 says.
pub const SIGN_IN_FIRST: &str = "sign in with the nodes' password";

/// 401: the page must sign in first.
pub fn sign_in_first() -> Response {
    error_response(StatusCode::UNAUTHORIZED, SIGN_IN_FIRST)
}

/// What every page and asset response carries: no framing by other sites, no guessing of
/// types, scripts and styles only from this port, nothing sent to other sites.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (
        HeaderName::from_static("content-security-policy"),
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'",
    ),
    (HeaderName::from_static("x-frame-options"), "DENY"),
    (HeaderName::from_static("x-content-type-options"), "nosniff"),
    (HeaderName::from_static("referrer-policy"), "no-referrer"),
];

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");
const UPLOT_JS: &str = include_str!("assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/uplot/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/uplot/LICENSE");

async fn page() -> Response {
    (
        SECURITY_HEADERS,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// The page's static files, by name.
async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "favicon.svg" => (FAVICON_SVG, "image/svg+xml"),
        "uPlot.iife.min.js" => (UPLOT_JS, "text/javascript; charset=utf-8"),
        "uPlot.min.css" => (UPLOT_CSS, "text/css; charset=utf-8"),
        "uPlot-LICENSE.txt" => (UPLOT_LICENSE, "text/plain; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    };
    (
        SECURITY_HEADERS,
        [(CONTENT_TYPE, kind), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

async fn favicon() -> Response {
    asset(axum::extract::Path("favicon.svg".to_string())).await
}

/// `GET /api/session`: whether a password is needed and whether this browser is signed in.
async fn session_info(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    (
        [(CACHE_CONTROL, "no-store")],
        Json(json!({
            "password": state.config.password.is_some(),
            "signed_in": authorized(&state, &headers),
            "servers": state.dashboard.feed.servers(),
        })),
    )
        .into_response()
}

/// `POST /login` body.
#[derive(Debug, Deserialize)]
struct Login {
    password: String,
}

/// `POST /login`: checks the password; on success starts a session (its cookie).
async fn login(State(state): State<Arc<HttpState>>, Json(body): Json<Login>) -> Response {
    if state.config.password.is_none() {
        return Json(json!({ "signed_in": true })).into_response();
    }
    if !guard::password_ok(state.config.password.as_deref(), &body.password) {
        // Slows guessing down a little; the comparison itself takes constant time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        return error_response(StatusCode::UNAUTHORIZED, "wrong password");
    }
    match state.dashboard.sessions.start() {
        Ok(token) => (
            [
                (SET_COOKIE, session::set_cookie(&token)),
                (CACHE_CONTROL, "no-store".to_string()),
            ],
            Json(json!({ "signed_in": true })),
        )
            .into_response(),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot make a session token: {e}"),
        ),
    }
}

/// `POST /logout`: ends the session.
async fn logout(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    state.dashboard.sessions.end(&headers);
    (
        [(SET_COOKIE, session::clear_cookie())],
        Json(json!({ "signed_in": false })),
    )
        .into_response()
}

/// `GET /api/events`: the live feed. First a `hello` event (servers, history, topology and
/// the latest state), then a `state` event a second and a `topology` event when the shards
/// change. Ends when the HTTP port shuts down or the session ends.
async fn events(
    State(state): State<Arc<HttpState>>,
    Extension(shutdown): Extension<CancellationToken>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return sign_in_first();
    }
    let feed = Arc::clone(&state.dashboard.feed);
    feed.start(&shutdown);
    let receiver = feed.subscribe();
    let hello = Event::default().event("hello").data(feed.hello());
    let live = futures::stream::unfold(
        (receiver, shutdown, state, headers),
        |(mut receiver, shutdown, state, headers)| async move {
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    message = receiver.recv() => message,
                };
                match message {
                    Ok(message) => {
                        if !authorized(&state, &headers) {
                            return None;
                        }
                        let event = Event::default().event(message.event).data(&*message.data);
                        return Some((
                            Ok::<_, Infallible>(event),
                            (receiver, shutdown, state, headers),
                        ));
                    }
                    // A slow page missed some seconds: it gets the next one.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, Infallible>(hello) }),
        live,
    );
    (
        [(CACHE_CONTROL, "no-store")],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response()
}
