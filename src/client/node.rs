//! Connections to one node: a small pool of RESP connections, reused across requests.
//!
//! Each connection is a `Framed<_, redis_protocol::codec::Resp2>` over TCP or TLS over TCP:
//! the client side
//! uses the well-kept `redis_protocol` codec (the server side has its own decoder, see
//! `protocol::resp`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

use super::ClientError;
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
            .ok_or_else(|| ClientError::Protocol("no reply".into()))
    }

    /// Sends several commands on one connection in one write and reads their replies in order.
    ///
    /// # Errors
    /// As [`NodePool::call`].
    pub async fn pipeline(
        &self,
        commands: Vec<Vec<Bytes>>,
        timeout: Duration,
    ) -> Result<Vec<Reply>, ClientError> {
        // A pooled connection may have died since its last use (the node restarted): on any
        // failure with one, the pool is cleared and the exchange repeated once on a fresh
        // connection, so a restart costs no visible retry. Both share one deadline: an
        // attempt never takes longer than `timeout`.
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(conn) = self.take_idle() {
            match tokio::time::timeout_at(deadline, self.exchange(conn, &commands)).await {
                Ok(Ok(replies)) => return Ok(replies),
                Ok(Err(ClientError::Server(e))) => return Err(ClientError::Server(e)),
                _ => self.clear(),
            }
        }
        let fresh = async {
            let conn = self.connect().await?;
            self.exchange(conn, &commands).await
        };
        tokio::time::timeout_at(deadline, fresh)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: self.addr.clone(),
            })?
    }

    async fn exchange(
        &self,
        mut conn: Conn,
        commands: &[Vec<Bytes>],
    ) -> Result<Vec<Reply>, ClientError> {
        let replies = self.send(&mut conn, commands).await?;
        self.put_idle(conn);
        Ok(replies)
    }

    /// Writes `commands` in one go and reads one reply for each.
    async fn send(
        &self,
        conn: &mut Conn,
        commands: &[Vec<Bytes>],
    ) -> Result<Vec<Reply>, ClientError> {
        let count = commands.len();
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
    /// Connection failures; a refused AUTH is [`ClientError::Server`], which is not retried:
    /// a wrong password stays wrong.
    async fn connect(&self) -> Result<Conn, ClientError> {
        let io = |cause| ClientError::Io {
            addr: self.addr.clone(),
            cause,
        };
        let stream = TcpStream::connect(&self.addr).await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let stream: Box<dyn Io> = match &self.tls {
            Some(tls) => {
                let name = crate::tls::server_name(&self.addr)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                let connector = TlsConnector::from(tls.clone());
                Box::new(connector.connect(name, stream).await.map_err(io)?)
            }
            None => Box::new(stream),
        };
        let mut conn = Framed::new(stream, Resp2::default());
        if let Some(password) = &self.password {
            let auth = vec![Bytes::from_static(b"AUTH"), password.clone()];
            match self.send(&mut conn, &[auth]).await?.pop() {
                Some(Reply::Error(e)) => return Err(ClientError::Server(e.into_owned())),
                Some(_) => {}
                None => return Err(ClientError::Protocol("no reply to AUTH".into())),
            }
        }
        Ok(conn)
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().expect("pool lock poisoned").pop()
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
        match e.kind() {
            redis_protocol::error::RedisProtocolErrorKind::IO(_) => ClientError::Io {
                addr: self.addr.clone(),
                cause: std::io::Error::other(e.to_string()),
            },
            _ => ClientError::Protocol(format!("{}: {e}", self.addr)),
        }
    }
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
