//! Connections to one node: a small pool of RESP connections, reused across requests.
//!
//! Each connection is a `Framed<_, redis_protocol::codec::Resp2>` over TCP or TLS over TCP:
//! the client side
//! uses the well-kept `redis_protocol` codec (the server side has its own decoder, see
//! `protocol::resp`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

use super::{retry, ClientError};
use crate::protocol::Reply;
use crate::tls::TlsClientConfig;

type Conn = Framed<Box<dyn Io>, Resp2>;

/// A connection's byte stream: a TCP socket, or TLS over one.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

/// The pool of idle connections to one node.
#[derive(Debug)]
pub struct NodePool {
    addr: String,
    /// Idle connections. A std mutex: it is held only to push or pop, never across `.await`.
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    /// Sent with AUTH on each new connection.
    password: Option<Bytes>,
    /// Connect with TLS when set.
    tls: Option<Arc<TlsClientConfig>>,
}

impl NodePool {
    /// A pool for `addr` (`host:port`) keeping at most `max_idle` idle connections.
    pub fn new(addr: String, max_idle: usize) -> Self {
        NodePool {
            addr,
            idle: Mutex::new(Vec::new()),
            max_idle,
            password: None,
            tls: None,
        }
    }

    /// Authenticates every new connection with `password` (`AUTH password`) before use.
    pub fn password(mut self, password: Option<String>) -> Self {
        self.password = password.map(Bytes::from);
        self
    }

    /// Connects with TLS under `tls`, checking the node's certificate against the host part
    /// of the address.
    pub fn tls(mut self, tls: Option<Arc<TlsClientConfig>>) -> Self {
        self.tls = tls;
        self
    }

    /// The node's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command and waits for its reply, within `timeout` for the whole exchange.
    /// Error replies come back as `Ok(Reply::Error)`.
    ///
    /// # Errors
    /// Connection failures, timeouts and malformed replies.
    pub async fn call(&self, args: &[Bytes], timeout: Duration) -> Result<Reply, ClientError> {
        let frames = vec![args.to_vec()];
        let mut replies = self.pipeline(frames, timeout).await?;
        replies
            .pop()
            .ok_or_else(|| ClientError::Protocol("the node sent no reply".into()))
    }

    /// Sends several commands on one connection in one write and reads their replies in order.
    ///
    /// A batch of commands that are not all idempotent (see [`retry::is_idempotent`]) is
    /// written at most once: when the connection then breaks or the time runs out before the
    /// replies arrive, the error is [`ClientError::OutcomeUnknown`].
    ///
    /// # Errors
    /// As [`NodePool::call`].
    pub async fn pipeline(
        &self,
        commands: Vec<Vec<Bytes>>,
        timeout: Duration,
    ) -> Result<Vec<Reply>, ClientError> {
        let idempotent = commands.iter().all(|c| retry::is_idempotent(c));
        // A pooled connection may have died since its last use (the node restarted). One
        // whose close has already arrived is dropped before anything is written to it; on any
        // later failure with one, the pool is cleared and an idempotent exchange repeated once
        // on a fresh connection, so a restart costs no visible retry. Both share one
        // deadline: an attempt never takes longer than `timeout`.
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(conn) = self.take_live_idle() {
            let mut written = false;
            let outcome =
                tokio::time::timeout_at(deadline, self.exchange(conn, &commands, &mut written))
                    .await;
            match outcome {
                Ok(Ok(replies)) => return Ok(replies),
                Ok(Err(ClientError::Server(e))) => return Err(ClientError::Server(e)),
                Ok(Err(e)) => {
                    self.clear();
                    if written && !idempotent && is_ambiguous(&e) {
                        return Err(self.outcome_unknown(e));
                    }
                }
                Err(_) => {
                    self.clear();
                    if written && !idempotent {
                        return Err(self.outcome_unknown(self.timeout_error(timeout)));
                    }
                }
            }
        }
        let mut written = false;
        let fresh = async {
            let conn = self.connect().await?;
            self.exchange(conn, &commands, &mut written).await
        };
        let result = match tokio::time::timeout_at(deadline, fresh).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error(timeout)),
        };
        match result {
            Err(e) if written && !idempotent && is_ambiguous(&e) => Err(self.outcome_unknown(e)),
            other => other,
        }
    }

    async fn exchange(
        &self,
        mut conn: Conn,
        commands: &[Vec<Bytes>],
        written: &mut bool,
    ) -> Result<Vec<Reply>, ClientError> {
        let replies = self.send(&mut conn, commands, written).await?;
        self.put_idle(conn);
        Ok(replies)
    }

    /// Writes `commands` in one go and reads one reply for each.
    /// Sets `written` once the bytes are handed to the socket: from then on the node may
    /// have run the commands even if no reply comes.
    async fn send(
        &self,
        conn: &mut Conn,
        commands: &[Vec<Bytes>],
        written: &mut bool,
    ) -> Result<Vec<Reply>, ClientError> {
        let count = commands.len();
        // Feeding may already write part of a long batch.
        *written = true;
        for args in commands {
            let frame =
                BytesFrame::Array(args.iter().cloned().map(BytesFrame::BulkString).collect());
            conn.feed(frame).await.map_err(|e| self.protocol_error(e))?;
        }
        SinkExt::<BytesFrame>::flush(conn)
            .await
            .map_err(|e| self.protocol_error(e))?;
        let mut replies = Vec::with_capacity(count);
        for _ in 0..count {
            match conn.next().await {
                Some(Ok(frame)) => replies.push(to_reply(frame)),
                Some(Err(e)) => return Err(self.protocol_error(e)),
                None => {
                    return Err(ClientError::Io {
                        addr: self.addr.clone(),
                        cause: std::io::ErrorKind::UnexpectedEof.into(),
                    })
                }
            }
        }
        Ok(replies)
    }

    /// Opens a connection, authenticated when the pool has a password.
    ///
    /// # Errors
    /// [`ClientError::Resolve`] when the host name does not resolve, [`ClientError::Io`] when
    /// the connection fails, [`ClientError::Tls`] when the handshake does; a refused AUTH is
    /// [`ClientError::Auth`], which is not retried: a wrong password stays wrong.
    async fn connect(&self) -> Result<Conn, ClientError> {
        let io = |cause| ClientError::Io {
            addr: self.addr.clone(),
            cause,
        };
        // Resolved apart from connecting, so that "host not found" can be told from "connection
        // refused": both are plain io errors of `TcpStream::connect`.
        let resolve = |cause| ClientError::Resolve {
            addr: self.addr.clone(),
            cause,
        };
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(&self.addr)
            .await
            .map_err(resolve)?
            .collect();
        if addrs.is_empty() {
            return Err(resolve(std::io::ErrorKind::NotFound.into()));
        }
        let stream = TcpStream::connect(&addrs[..]).await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let stream: Box<dyn Io> = match &self.tls {
            Some(tls) => {
                let tls_error = |reason| ClientError::Tls {
                    addr: self.addr.clone(),
                    reason,
                };
                let name = crate::tls::server_name(&self.addr).map_err(|_| {
                    tls_error("the host is not a valid name for a certificate".into())
                })?;
                let connector = TlsConnector::from(tls.clone());
                let stream = connector.connect(name, stream).await.map_err(|e| {
                    match tls_reason(&e) {
                        Some(reason) => tls_error(reason),
                        // Not a TLS error: the connection broke during the handshake.
                        None => io(e),
                    }
                })?;
                Box::new(stream)
            }
            None => Box::new(stream),
        };
        let mut conn = Framed::new(stream, Resp2::default());
        if let Some(password) = &self.password {
            let auth = vec![Bytes::from_static(b"AUTH"), password.clone()];
            let mut written = false;
            match self.send(&mut conn, &[auth], &mut written).await?.pop() {
                Some(Reply::Error(e)) => {
                    return Err(ClientError::Auth {
                        addr: self.addr.clone(),
                        reply: e.into_owned(),
                    })
                }
                Some(_) => {}
                None => {
                    return Err(ClientError::Protocol(format!(
                        "{} sent no reply to AUTH",
                        self.addr
                    )))
                }
            }
        }
        Ok(conn)
    }

    /// An idle connection that the node has not closed meanwhile. A closed one has its end of
    /// stream (or reset) waiting to be read, so one poll that does not wait tells them apart;
    /// a connection with anything to read is out of step with its replies and dropped too.
    fn take_live_idle(&self) -> Option<Conn> {
        loop {
            let mut conn = self.idle.lock().expect("pool lock poisoned").pop()?;
            if conn.next().now_or_never().is_none() {
                return Some(conn);
            }
        }
    }

    fn timeout_error(&self, after: Duration) -> ClientError {
        ClientError::Timeout {
            addr: self.addr.clone(),
            after,
        }
    }

    fn outcome_unknown(&self, cause: ClientError) -> ClientError {
        ClientError::OutcomeUnknown {
            addr: self.addr.clone(),
            cause: Box::new(cause),
        }
    }

    fn put_idle(&self, conn: Conn) {
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// Forgets every idle connection (after a node restart they are all dead).
    pub fn clear(&self) {
        self.idle.lock().expect("pool lock poisoned").clear();
    }

    fn protocol_error(&self, e: redis_protocol::error::RedisProtocolError) -> ClientError {
        let addr = self.addr.clone();
        match e.kind() {
            redis_protocol::error::RedisProtocolErrorKind::IO(cause) => match tls_reason(cause) {
                // A TLS alert after the handshake: with TLS 1.3 a node that refuses this
                // client's certificate says so on the first read.
                Some(reason) => ClientError::Tls { addr, reason },
                // Rebuilt with the same kind, which decides the message (see `io_text`).
                None => ClientError::Io {
                    addr,
                    cause: std::io::Error::new(cause.kind(), cause.to_string()),
                },
            },
            _ => ClientError::Protocol(format!(
                "{addr} sent something that is not a RESP reply ({}): is it a minikv or Redis \
                 node?",
                e.details()
            )),
        }
    }
}

/// True for the failures after which a written command may or may not have run: the
/// connection broke or the time ran out before the reply.
fn is_ambiguous(error: &ClientError) -> bool {
    matches!(error, ClientError::Io { .. } | ClientError::Timeout { .. })
}

/// The TLS failure inside `e`, in plain words; `None` when `e` is not a TLS error.
fn tls_reason(e: &std::io::Error) -> Option<String> {
    use tokio_rustls::rustls::{CertificateError, Error};
    let tls = e.get_ref()?.downcast_ref::<Error>()?;
    Some(match tls {
        // A bad signature: signed by another CA of the same name as a trusted one.
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => "the node's certificate is not signed by a CA this client trusts".to_string(),
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the node's certificate has expired".to_string(),
        Error::InvalidCertificate(CertificateError::NotValidForName) => {
            "the node's certificate is not valid for this host name".to_string()
        }
        // rustls words this one well: "certificate not valid for name ...".
        Error::InvalidCertificate(c @ CertificateError::NotValidForNameContext { .. }) => {
            c.to_string()
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the node does not speak TLS (it was started without a certificate?)".to_string()
        }
        Error::AlertReceived(alert) => format!(
            "the node refused the connection (TLS alert: {})",
            words(&format!("{alert:?}"))
        ),
        Error::NoCertificatesPresented => "the node presented no certificate".to_string(),
        other => other.to_string(),
    })
}

/// `CertificateRequired` -> `certificate required`: a rustls enum name as words.
fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Maps a RESP2 frame from a node to the crate's reply type.
fn to_reply(frame: BytesFrame) -> Reply {
    match frame {
        BytesFrame::SimpleString(s) => {
            Reply::Simple(String::from_utf8_lossy(&s).into_owned().into())
        }
        BytesFrame::Error(e) => Reply::Error(e.to_string().into()),
        BytesFrame::Integer(n) => Reply::Int(n),
        BytesFrame::BulkString(b) => Reply::Bulk(b),
        BytesFrame::Array(items) => Reply::Array(items.into_iter().map(to_reply).collect()),
        BytesFrame::Null => Reply::Nil,
    }
}

#[cfg(test)]
mod tests {
    use tokio_rustls::rustls::{AlertDescription, CertificateError, Error as TlsError};

    use super::*;

    fn wrapped(e: TlsError) -> std::io::Error {
        // As tokio-rustls reports a handshake failure.
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn tls_failures_read_as_plain_words() {
        let unknown = wrapped(TlsError::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            tls_reason(&unknown).as_deref(),
            Some("the node's certificate is not signed by a CA this client trusts")
        );
        let alert = wrapped(TlsError::AlertReceived(
            AlertDescription::CertificateRequired,
        ));
        assert_eq!(
            tls_reason(&alert).as_deref(),
            Some("the node refused the connection (TLS alert: certificate required)")
        );
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(tls_reason(&plain), None, "not a TLS error");
    }
}
