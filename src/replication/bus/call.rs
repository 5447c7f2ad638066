//! Calls over the bus for the node layer: [`CallHandler`], what a bus answers a
//! [`Request::Call`] with, and [`BusCaller`], the client that makes calls. The bytes of a call
//! and its answer are the node layer's; this module never looks inside them.
//!
//! A connection carries one request at a time, so the caller keeps a pool per peer: a call
//! takes an idle connection (or opens one), and puts it back after a complete answer. Calls in
//! flight to one peer each have their own connection and never wait behind a slow one; at most
//! [`MAX_IDLE_PER_PEER`] idle connections are kept per peer, the rest are closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::client::connect;
use super::wire::{self, Connection};
use super::{BusError, BusTls, Request, Response};

/// What a bus answers calls with: the call's bytes in, the answer's bytes out. It runs in the
/// task of the connection the call came on, one call at a time per connection; calls on
/// different connections run concurrently.
pub type CallHandler = Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, Vec<u8>> + Send + Sync>;

/// Makes calls to other nodes' buses. Clones are cheap and share the pool of connections.
#[derive(Clone)]
pub struct BusCaller {
    inner: Arc<Inner>,
}

struct Inner {
    password: Option<Arc<str>>,
    tls: Option<BusTls>,
    /// Idle connections by peer address. A std mutex held only to push or pop, never across
    /// an `.await`.
    idle: Mutex<HashMap<String, Vec<Connection>>>,
}

impl std::fmt::Debug for BusCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusCaller")
            .field("password", &self.inner.password.as_ref().map(|_| "<set>"))
            .field("tls", &self.inner.tls.is_some())
            .finish()
    }
}

impl BusCaller {
    /// A caller sending `password` first on every connection when given (the peers' bus
    /// password), over TLS when `tls` is given (the peers' buses must serve TLS then, and
    /// plain TCP otherwise).
    pub fn new(password: Option<Arc<str>>, tls: Option<BusTls>) -> BusCaller {
        BusCaller {
            inner: Arc::new(Inner {
                password,
                tls,
                idle: Mutex::default(),
            }),
        }
    }

    /// Sends `payload` to the [`CallHandler`] of the bus at `addr` and returns its answer,
    /// within `timeout` (connecting included). Reuses an idle connection to `addr` when there
    /// is one, else opens one; a connection that failed is never reused, so the next call
    /// reconnects.
    ///
    /// Dropping the future midway drops its connection too, so a late answer is never taken
    /// for another call's.
    ///
    /// # Errors
    /// - [`BusError::Unreachable`]: no connection could be opened and authenticated in time
    ///   (nothing listening, a refused password or certificate); the call was not sent.
    /// - [`BusError::Timeout`]: sent, but no answer within `timeout`.
    /// - [`BusError::Lost`]: sent, but the connection broke or the answer made no sense.
    /// - [`BusError::NoCallHandler`]: the bus at `addr` serves no calls.
    pub async fn call(
        &self,
        addr: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, BusError> {
        let deadline = Instant::now() + timeout;
        let mut connection = match self.idle(addr) {
            Some(connection) => connection,
            None => {
                let inner = &self.inner;
                let connect = connect(addr, inner.password.as_deref(), inner.tls.as_ref());
                let unreachable = |source| BusError::Unreachable {
                    addr: addr.to_string(),
                    source: Box::new(source),
                };
                match tokio::time::timeout_at(deadline, connect).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(e)) => return Err(unreachable(e)),
                    Err(_) => {
                        let waited = std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("not connected within {timeout:?}"),
                        );
                        return Err(unreachable(BusError::Io(waited)));
                    }
                }
            }
        };
        let lost = |source| BusError::Lost {
            addr: addr.to_string(),
            source: Box::new(source),
        };
        let exchange = async {
            wire::send(&mut connection, &Request::Call { payload }).await?;
            wire::receive::<Response>(&mut connection).await
        };
        let response = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(Some(response))) => response,
            Ok(Ok(None)) => return Err(lost(BusError::Closed)),
            Ok(Err(e)) => return Err(lost(e)),
            Err(_) => {
                return Err(BusError::Timeout {
                    addr: addr.to_string(),
                    after: timeout,
                })
            }
        };
        match response {
            Response::Call(answer) => {
                self.put_back(addr, connection);
                Ok(answer)
            }
            Response::NoCallHandler => {
                self.put_back(addr, connection);
                Err(BusError::NoCallHandler {
                    addr: addr.to_string(),
                })
            }
            _ => Err(lost(BusError::Unexpected)),
        }
    }

    /// An idle connection to `addr` that still looks open, if any. One the peer has closed
    /// meanwhile (its bus restarted) has its end of stream waiting and is dropped here rather
    /// than failing the call it would be used for; a close still in flight is not seen, and
    /// that call fails with [`BusError::Lost`].
    fn idle(&self, addr: &str) -> Option<Connection> {
        loop {
            let mut connection = self.lock().get_mut(addr)?.pop()?;
            // Polled once without waiting: pending means nothing arrived, the connection is
            // as it was left. Anything else (end of stream, an error, a frame nobody asked for)
            // means it cannot carry a call.
            if connection.next().now_or_never().is_none() {
                return Some(connection);
            }
        }
    }

    /// Keeps `connection` for the next call to `addr`, unless enough are kept already.
    fn put_back(&self, addr: &str, connection: Connection) {
        let mut idle = self.lock();
        let pool = idle.entry(addr.to_string()).or_default();
        if pool.len() < MAX_IDLE_PER_PEER {
            pool.push(connection);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Connection>>> {
        self.inner
            .idle
            .lock()
            .expect("bus caller pool lock poisoned")
    }
}

/// The most idle connections a [`BusCaller`] keeps per peer; calls in flight beyond it open
/// connections of their own, closed after their answer.
pub const MAX_IDLE_PER_PEER: usize = 64;
