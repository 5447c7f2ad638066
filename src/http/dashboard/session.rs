//! Dashboard sessions: after a sign-in with the nodes' password, a random token in an
//! `HttpOnly; SameSite=Strict` cookie stands for it until it expires or the user signs out.
//!
//! Tokens are 128 bits from the OS's random source (`/dev/urandom`), kept only in this
//! process's memory: a restart signs everyone out.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::COOKIE;
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "minikv_session";

/// How long a session lasts after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Most sessions kept at once: signing in more often drops the oldest.
const MAX_SESSIONS: usize = 1024;

/// The live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    /// Token (hex) -> when it expires. A std mutex, held only to look up or change the map.
    live: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// Starts a session and returns its token.
    ///
    /// # Errors
    /// When the OS's random source cannot be read.
    pub fn start(&self) -> std::io::Result<String> {
        let token = random_token()?;
        let now = Instant::now();
        let mut live = self.lock();
        live.retain(|_, expires| *expires > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(t, _)| t.clone())
            {
                live.remove(&oldest);
            }
        }
        live.insert(token.clone(), now + LIFETIME);
        Ok(token)
    }

    /// Whether `headers` carry the cookie of a live session.
    pub fn valid(&self, headers: &HeaderMap) -> bool {
        let Some(token) = cookie(headers, COOKIE_NAME) else {
            return false;
        };
        let now = Instant::now();
        let live = self.lock();
        // Compared in constant time against each live token, so the time taken tells nothing
        // about how much of a guess was right.
        let mut found = false;
        for (known, expires) in live.iter() {
            if bool::from(known.as_bytes().ct_eq(token.as_bytes())) && *expires > now {
                found = true;
            }
        }
        found
    }

    /// Ends the session of `headers`, if any.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, COOKIE_NAME) {
            self.lock().remove(token);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic while holding it leaves the map consistent (inserts and removes only).
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `Set-Cookie` value starting a session with `token`.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value ending the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// 128 random bits from the OS, as 32 hex digits.
fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(value).expect("ascii"));
        h
    }

    #[test]
    fn a_session_is_valid_until_it_ends() {
        let sessions = Sessions::default();
        let token = sessions.start().expect("urandom");
        assert_eq!(token.len(), 32);
        let headers = with_cookie(&format!("other=1; {COOKIE_NAME}={token}"));
        assert!(sessions.valid(&headers));
        assert!(!sessions.valid(&with_cookie(&format!("{COOKIE_NAME}=00{token}"))));
        assert!(!sessions.valid(&with_cookie(&format!("{COOKIE_NAME}="))));
        assert!(!sessions.valid(&HeaderMap::new()));
        sessions.end(&headers);
        assert!(!sessions.valid(&headers));
    }

    #[test]
    fn tokens_differ() {
        let sessions = Sessions::default();
        let a = sessions.start().expect("urandom");
        let b = sessions.start().expect("urandom");
        assert_ne!(a, b);
        assert!(set_cookie(&a).contains("HttpOnly; SameSite=Strict; Path=/"));
    }
}
