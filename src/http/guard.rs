//! What every HTTP request passes before a handler sees it, and the password checks.
//!
//! - **Host**: a browser tricked by DNS rebinding sends the attacker's host name, so only IP
//!   literals, `localhost` and the names given with `--http-allow-host` are served.
//! - **Origin**: a request a browser sends from another page carries that page's origin; any
//!   origin but this port's own is refused, and a request that may change state (anything but
//!   GET and HEAD) must carry one. Together with JSON request bodies (which another origin
//!   cannot send without a preflight this port never answers) that stops cross-site requests.
//! - **Password**: [`basic_auth_ok`] for `/metrics` (user `default`, the nodes' password, so
//!   Prometheus can scrape), [`password_ok`] for the dashboard's sign-in.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::HttpState;

/// The middleware: Host and Origin checks (see the module doc).
pub async fn check(State(state): State<Arc<HttpState>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return refuse("a Host header is required");
    };
    if !host_allowed(host, &state.config.allowed_hosts) {
        return refuse(
            "this Host is not served (DNS rebinding guard): use an IP address or localhost, \
             or start the node with --http-allow-host NAME",
        );
    }
    match headers.get(ORIGIN) {
        Some(origin) if !same_origin(origin, host) => {
            return refuse("requests from other web pages are refused");
        }
        None if !request.method().is_safe() => {
            return refuse("a request that changes state needs an Origin header");
        }
        _ => {}
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"cross-site")
    {
        return refuse("requests from other web pages are refused");
    }
    next.run(request).await
}

/// 403 with a one-line reason.
fn refuse(why: &'static str) -> Response {
    (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
}

/// Whether the Host header `host` (`name[:port]`, `[v6]:port`) names something a rebinding
/// attack cannot: an IP literal, `localhost`, or one of `allowed` (case-insensitive).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = host_name(host);
    if name.is_empty() {
        return false;
    }
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// The name part of a Host header: without the port and an IPv6 literal's brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or("", |(v6, _)| v6);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Whether `origin` is `http://HOST` or `https://HOST` for this request's Host.
fn same_origin(origin: &HeaderValue, host: &str) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

/// Whether `given` is the password, compared in constant time. With no password set,
/// everything passes.
pub fn password_ok(password: Option<&str>, given: &str) -> bool {
    match password {
        None => true,
        Some(p) => bool::from(p.as_bytes().ct_eq(given.as_bytes())),
    }
}

/// Whether `headers` carry HTTP basic auth with user `default` (or none) and the password.
/// With no password set, everything passes.
pub fn basic_auth_ok(password: Option<&str>, headers: &HeaderMap) -> bool {
    if password.is_none() {
        return true;
    }
    let Some(encoded) = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = std::str::from_utf8(&decoded) else {
        return false;
    };
    let Some((user, given)) = decoded.split_once(':') else {
        return false;
    };
    (user.is_empty() || user == "default") && password_ok(password, given)
}

/// 401 asking for basic auth.
pub fn ask_basic_auth() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            "www-authenticate",
            r#"Basic realm="minikv", charset="UTF-8""#,
        )],
        "this node needs its password (user default)\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_rebinding_cannot_forge_are_served() {
        let allowed = vec!["kv.example.com".to_string()];
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "10.0.0.5",
            "kv.example.com:8080",
        ] {
            assert!(host_allowed(host, &allowed), "{host}");
        }
        for host in [
            "evil.example.com:8080",
            "",
            ":8080",
            "[::1",
            "127.0.0.1.nip.io:8080",
        ] {
            assert!(!host_allowed(host, &allowed), "{host}");
        }
    }

    #[test]
    fn origin_must_be_this_port() {
        let same = HeaderValue::from_static("http://127.0.0.1:8080");
        assert!(same_origin(&same, "127.0.0.1:8080"));
        assert!(!same_origin(&same, "127.0.0.1:8081"));
        let other = HeaderValue::from_static("http://evil.example.com");
        assert!(!same_origin(&other, "127.0.0.1:8080"));
        let null = HeaderValue::from_static("null");
        assert!(!same_origin(&null, "127.0.0.1:8080"));
    }

    #[test]
    fn basic_auth_takes_user_default_and_the_password() {
        let header = |user_pass: &str| {
            let mut h = HeaderMap::new();
            let value = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_pass)
            );
            h.insert(AUTHORIZATION, HeaderValue::from_str(&value).expect("ascii"));
            h
        };
        assert!(basic_auth_ok(None, &HeaderMap::new()));
        assert!(!basic_auth_ok(Some("s3cret"), &HeaderMap::new()));
        assert!(basic_auth_ok(Some("s3cret"), &header("default:s3cret")));
        assert!(basic_auth_ok(Some("s3cret"), &header(":s3cret")));
        assert!(!basic_auth_ok(Some("s3cret"), &header("admin:s3cret")));
        assert!(!basic_auth_ok(Some("s3cret"), &header("default:wrong")));
        assert!(basic_auth_ok(Some("a:b"), &header("default:a:b")));
    }
}
