//! The key browser and the slowlog: JSON endpoints that reach one node over RESP as a client
//! would (SCAN, TYPE, PTTL, the type's range or scan command, DEL, EXPIRE, SLOWLOG GET).
//!
//! Reads are GET with query parameters; the two writes (delete, set a TTL) are POST with JSON
//! bodies, which the guard only lets through from this page's own origin. Keys travel as
//! URL-safe base64 (`id`), so binary keys survive the round trip.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::value::{bytes_of, int_of, items_of, key_of, text_of, KeyRef, Shown};
use super::{authorized, error_response};
use crate::http::HttpState;
use crate::protocol::Reply;

/// Most time one API exchange with a node may take.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes of a string value shown.
pub const STRING_LIMIT: usize = 32 * 1024;

/// Most bytes of one element (list item, field, member) shown.
pub const ELEMENT_LIMIT: usize = 1024;

/// Most keys or elements per page.
const MAX_COUNT: u64 = 1000;

/// The longest TTL that may be set from the page: about 31 years, as the flags allow.
const MAX_TTL_SECONDS: i64 = 1_000_000_000;

/// Why an API call failed: its status and a sentence for the page.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError(status, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0, &self.1)
    }
}

/// What every handler returns.
type ApiResult = Result<Response, ApiError>;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Sends `commands` to server `node` and returns the replies, or the response saying why not
/// (unknown node: 404; unreachable or refusing: 502).
async fn exchange(
    state: &HttpState,
    node: usize,
    commands: Vec<Vec<Bytes>>,
) -> Result<Vec<Reply>, ApiError> {
    let feed = &state.dashboard.feed;
    feed.touch();
    let Some(pool) = feed.pool(node) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such node"));
    };
    let expected = commands.len();
    let replies = pool
        .pipeline(commands, API_TIMEOUT)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    if replies.len() != expected {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "the node sent too few replies",
        ));
    }
    if let Some(Reply::Error(e)) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
        return Err(ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()));
    }
    Ok(replies)
}

fn garbled(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        format!("the node's reply to {what} has an unexpected shape"),
    )
}

fn bad_request(what: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, what)
}

/// 401 unless the request may see the nodes' data.
fn check_session(state: &HttpState, headers: &HeaderMap) -> Result<(), ApiError> {
    if authorized(state, headers) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            super::SIGN_IN_FIRST,
        ))
    }
}

/// The key a signed-in page names by its id (base64url), or 401/400.
fn session_key(state: &HttpState, headers: &HeaderMap, id: &str) -> Result<Bytes, ApiError> {
    check_session(state, headers)?;
    key_of(id).ok_or_else(|| bad_request("bad key id"))
}

/// A SCAN-family cursor from the page: digits only.
fn cursor_arg(cursor: Option<&str>) -> Result<Bytes, ApiError> {
    let cursor = cursor.unwrap_or("0").trim();
    let cursor = if cursor.is_empty() { "0" } else { cursor };
    if cursor.len() > 20 || !cursor.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad_request("bad cursor"));
    }
    Ok(Bytes::copy_from_slice(cursor.as_bytes()))
}

fn count_arg(count: Option<u64>, default: u64) -> u64 {
    count.unwrap_or(default).clamp(1, MAX_COUNT)
}

/// A SCAN-family reply: `[cursor, [items...]]`.
fn scan_reply(reply: &Reply) -> Option<(String, &[Reply])> {
    let parts = items_of(reply)?;
    let cursor = text_of(parts.first()?)?;
    let items = items_of(parts.get(1)?)?;
    Some((cursor, items))
}

/// `GET /api/keys?node=0&cursor=0&match=user:*&type=hash&count=100`.
#[derive(Debug, Deserialize)]
pub struct KeysQuery {
    node: usize,
    cursor: Option<String>,
    #[serde(rename = "match")]
    pattern: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    count: Option<u64>,
}

/// One page of SCAN with each key's type and TTL.
pub async fn keys(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<KeysQuery>,
) -> ApiResult {
    check_session(&state, &headers)?;
    let cursor = cursor_arg(q.cursor.as_deref())?;
    let pattern = q.pattern.filter(|p| !p.is_empty()).unwrap_or("*".into());
    let mut scan = vec![
        b("SCAN"),
        cursor,
        b("MATCH"),
        Bytes::from(pattern),
        b("COUNT"),
        Bytes::from(count_arg(q.count, 100).to_string()),
    ];
    if let Some(kind) = q.kind.filter(|k| !k.is_empty()) {
        if kind.len() > 16 || !kind.bytes().all(|c| c.is_ascii_alphabetic()) {
            return Err(bad_request("bad type"));
        }
        scan.extend([b("TYPE"), Bytes::from(kind)]);
    }
    let replies = exchange(&state, q.node, vec![scan]).await?;
    let Some((next, found)) = replies.first().and_then(scan_reply) else {
        return Err(garbled("SCAN"));
    };
    let keys: Vec<Bytes> = found
        .iter()
        .filter_map(|k| bytes_of(k).map(Bytes::copy_from_slice))
        .collect();
    let mut details = Vec::with_capacity(keys.len() * 2);
    for key in &keys {
        details.push(vec![b("TYPE"), key.clone()]);
        details.push(vec![b("PTTL"), key.clone()]);
    }
    let details = if details.is_empty() {
        Vec::new()
    } else {
        match state
            .dashboard
            .feed
            .pool(q.node)
            .map(|pool| pool.pipeline(details, API_TIMEOUT))
        {
            Some(call) => call.await.unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let list: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            json!({
                "key": KeyRef::new(key),
                "type": details.get(2 * i).and_then(text_of),
                "ttl": details.get(2 * i + 1).and_then(int_of),
            })
        })
        .collect();
    Ok(Json(json!({ "cursor": next, "keys": list })).into_response())
}

/// `GET /api/key?node=0&key=ID&offset=0&cursor=0&count=100`.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    node: usize,
    key: String,
    offset: Option<u64>,
    cursor: Option<String>,
    count: Option<u64>,
}

/// A key's type, TTL, size and one page of its value.
pub async fn key(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<KeyQuery>,
) -> ApiResult {
    let key = session_key(&state, &headers, &q.key)?;
    let head = vec![vec![b("TYPE"), key.clone()], vec![b("PTTL"), key.clone()]];
    let replies = exchange(&state, q.node, head).await?;
    let kind = text_of(&replies[0]).unwrap_or_default();
    let ttl = int_of(&replies[1]);
    if kind == "none" {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such key (deleted or expired)",
        ));
    }
    let count = count_arg(q.count, 100);
    let offset = q.offset.unwrap_or(0);
    let stop = Bytes::from((offset + count - 1).to_string());
    let start = Bytes::from(offset.to_string());
    let cursor = cursor_arg(q.cursor.as_deref())?;
    let count_bytes = Bytes::from(count.to_string());
    let k = || key.clone();
    let commands = match kind.as_str() {
        "string" => vec![
            vec![b("STRLEN"), k()],
            vec![
                b("GETRANGE"),
                k(),
                b("0"),
                Bytes::from((STRING_LIMIT - 1).to_string()),
            ],
        ],
        "list" => vec![vec![b("LLEN"), k()], vec![b("LRANGE"), k(), start, stop]],
        "hash" => vec![
            vec![b("HLEN"), k()],
            vec![b("HSCAN"), k(), cursor, b("COUNT"), count_bytes],
        ],
        "set" => vec![
            vec![b("SCARD"), k()],
            vec![b("SSCAN"), k(), cursor, b("COUNT"), count_bytes],
        ],
        "zset" => vec![
            vec![b("ZCARD"), k()],
            vec![b("ZRANGE"), k(), start, stop, b("WITHSCORES")],
        ],
        _ => {
            return Ok(Json(json!({
                "key": KeyRef::new(&key), "type": kind, "ttl": ttl, "size": null,
            }))
            .into_response())
        }
    };
    let replies = exchange(&state, q.node, commands).await?;
    let size = int_of(&replies[0]).and_then(|n| u64::try_from(n).ok());
    let mut out = json!({ "key": KeyRef::new(&key), "type": kind, "ttl": ttl, "size": size });
    let element = |r: &Reply| bytes_of(r).map(|b| Shown::of(b, ELEMENT_LIMIT));
    match kind.as_str() {
        "string" => {
            let Some(bytes) = bytes_of(&replies[1]) else {
                return Err(garbled("GETRANGE"));
            };
            out["value"] = json!(Shown::new(bytes, size.unwrap_or(0), STRING_LIMIT));
        }
        "list" | "zset" => {
            let Some(items) = items_of(&replies[1]) else {
                return Err(garbled("the range"));
            };
            let rows: Vec<Value> = if kind == "list" {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| json!({ "index": offset + i as u64, "value": element(item) }))
                    .collect()
            } else {
                pairs(items)
                    .into_iter()
                    .map(|(m, s)| json!({ "member": element(m), "score": score_text(s) }))
                    .collect()
            };
            let shown = rows.len() as u64;
            out["items"] = json!(rows);
            if shown == count && size.is_none_or(|n| offset + shown < n) {
                out["next"] = json!({ "offset": offset + shown });
            }
        }
        _ => {
            let Some((next, items)) = scan_reply(&replies[1]) else {
                return Err(garbled("the scan"));
            };
            let rows: Vec<Value> = if kind == "hash" {
                pairs(items)
                    .into_iter()
                    .map(|(f, v)| json!({ "field": element(f), "value": element(v) }))
                    .collect()
            } else {
                items
                    .iter()
                    .map(|m| json!({ "member": element(m) }))
                    .collect()
            };
            out["items"] = json!(rows);
            if next != "0" {
                out["next"] = json!({ "cursor": next });
            }
        }
    }
    Ok(Json(out).into_response())
}

/// Name/value pairs of a flat RESP2 array or of RESP3 two-element arrays.
fn pairs(items: &[Reply]) -> Vec<(&Reply, &Reply)> {
    if items
        .iter()
        .all(|i| items_of(i).is_some_and(|p| p.len() == 2))
        && !items.is_empty()
    {
        return items
            .iter()
            .filter_map(items_of)
            .map(|p| (&p[0], &p[1]))
            .collect();
    }
    items.chunks_exact(2).map(|p| (&p[0], &p[1])).collect()
}

fn score_text(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Double(d) => Some(d.to_string()),
        Reply::Int(n) => Some(n.to_string()),
        other => text_of(other),
    }
}

/// `POST /api/key/delete` and `/api/key/expire` bodies.
#[derive(Debug, Deserialize)]
pub struct KeyChange {
    node: usize,
    key: String,
    /// For expire: the new TTL in seconds; `null` removes the TTL (PERSIST).
    #[serde(default)]
    seconds: Option<i64>,
}

/// Deletes a key (DEL).
pub async fn delete(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Json(body): Json<KeyChange>,
) -> ApiResult {
    let key = session_key(&state, &headers, &body.key)?;
    let replies = exchange(&state, body.node, vec![vec![b("DEL"), key]]).await?;
    Ok(Json(json!({ "deleted": int_of(&replies[0]) })).into_response())
}

/// Sets a key's TTL (EXPIRE), or removes it (PERSIST) when `seconds` is null.
pub async fn expire(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Json(body): Json<KeyChange>,
) -> ApiResult {
    let key = session_key(&state, &headers, &body.key)?;
    let command = match body.seconds {
        None => vec![b("PERSIST"), key],
        Some(s) if (1..=MAX_TTL_SECONDS).contains(&s) => {
            vec![b("EXPIRE"), key, Bytes::from(s.to_string())]
        }
        Some(_) => return Err(bad_request("seconds must be from 1 to 1000000000")),
    };
    let replies = exchange(&state, body.node, vec![command]).await?;
    Ok(Json(json!({ "changed": int_of(&replies[0]) })).into_response())
}

/// `GET /api/slowlog?node=0&count=50`.
#[derive(Debug, Deserialize)]
pub struct SlowlogQuery {
    node: usize,
    count: Option<u64>,
}

/// SLOWLOG GET: each entry's id, time, duration and command.
pub async fn slowlog(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<SlowlogQuery>,
) -> ApiResult {
    check_session(&state, &headers)?;
    let count = Bytes::from(q.count.unwrap_or(50).clamp(1, 128).to_string());
    let command = vec![b("SLOWLOG"), b("GET"), count];
    let replies = exchange(&state, q.node, vec![command]).await?;
    let Some(entries) = items_of(&replies[0]) else {
        return Err(garbled("SLOWLOG GET"));
    };
    let list: Vec<Value> = entries
        .iter()
        .filter_map(items_of)
        .map(|e| {
            let args: Vec<Shown> = e
                .get(3)
                .and_then(items_of)
                .unwrap_or_default()
                .iter()
                .filter_map(|a| bytes_of(a).map(|b| Shown::of(b, 128)))
                .collect();
            json!({
                "id": e.first().and_then(int_of),
                "time": e.get(1).and_then(int_of),
                "usec": e.get(2).and_then(int_of),
                "args": args,
                "client": e.get(4).and_then(text_of),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": list })).into_response())
}
