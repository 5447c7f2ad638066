//! One task per connection: read, decode every complete request in the buffer, execute each,
//! encode the replies, and write them in one go.
//!
//! Writing once per batch of requests read (not once per reply), with TCP_NODELAY set on the
//! socket, is what keeps pipelined clients fast: mini-redis flushes per reply without NODELAY
//! and stalls on Nagle/delayed-ACK. Errors here end this connection only; they are logged
//! once and never reach the accept loop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use crate::cmd::Session;
use crate::node::{ClientHandle, Node};
use crate::protocol::{Codec, Incoming, JsonCodec, ProtocolError, Reply, RespCodec};
use crate::server::sniff::{self, Protocol};
use crate::stats::StatKind;

/// Flush replies early once this many bytes are pending, so a client pipelining thousands of
/// requests without reading cannot make the node buffer their replies without bound.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;
/// Initial and minimum free space of the read buffer.
const READ_CHUNK: usize = 16 * 1024;

/// Serves one accepted socket until the peer closes, QUIT, a protocol error, or shutdown.
pub async fn run(mut stream: TcpStream, node: Arc<Node>) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, "set_nodelay failed: {e}");
    }
    let _counted = node.stats.connection_opened();
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let protocol = loop {
        if let Some(p) = sniff::detect(&rbuf) {
            break p;
        }
        // Nothing but whitespace so far: wait for a byte that decides, or for shutdown.
        tokio::select! {
            r = stream.read_buf(&mut rbuf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = node.shutdown.cancelled() => return,
        }
    };
    let laddr = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let client = Arc::new(ClientHandle::new(
        node.next_client_id(),
        peer.clone(),
        laddr,
        node.shutdown.child_token(),
    ));
    let _registered = node.clients.register(client.clone());
    let mut session = Session::new(client);
    let result = match protocol {
        Protocol::Resp => {
            let codec = RespCodec::new(node.config.resp_limits);
            serve(stream, rbuf, codec, &node, &mut session).await
        }
        Protocol::Json => {
            let codec = JsonCodec::new(node.config.id, node.config.json_limits);
            serve(stream, rbuf, codec, &node, &mut session).await
        }
    };
    // WATCHes end with the connection.
    session.unwatch_all(&node.store);
    match result {
        Ok(()) => {}
        Err(ProtocolError::Io(e)) => tracing::debug!(%peer, "connection closed: {e}"),
        Err(e) => tracing::debug!(%peer, "closing connection after protocol error: {e}"),
    }
}

async fn serve<C: Codec>(
    mut stream: TcpStream,
    mut rbuf: BytesMut,
    mut codec: C,
    node: &Node,
    session: &mut Session,
) -> Result<(), ProtocolError> {
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut eof = false;
    // CLIENT KILL or node shutdown (the kill token is a child of the shutdown token). Created
    // once and polled by reference: a fresh `cancelled()` per loop would register and
    // deregister a waiter under the token's lock on every request.
    let stopped = session.client.kill.clone().cancelled_owned();
    tokio::pin!(stopped);
    let mut monitor: Option<Monitoring<'_>> = None;
    loop {
        // A new batch: the previous one's clock reading is stale (see `Session::clock`).
        session.clock = None;
        // Execute everything already received before writing anything.
        loop {
            let decoded = if eof {
                codec.decode_eof(&mut rbuf)
            } else {
                codec.decode(&mut rbuf)
            };
            let reply = match decoded {
                Ok(Some(Incoming::Request(request))) => {
                    let reply = session.execute(node, &request);
                    codec.set_resp_version(session.protocol);
                    reply
                }
                Ok(Some(Incoming::Invalid(message))) => {
                    // A request that could not be mapped to a command still counts as handled.
                    node.stats.record(StatKind::Other, session.client.id);
                    Some(Reply::Error(message.into()))
                }
                Ok(None) => break,
                Err(e) => {
                    codec.encode_protocol_error(&e, &mut wbuf);
                    // Best effort: the peer broke the protocol and may not be reading.
                    let _ = stream.write_all(&wbuf).await;
                    return Err(e);
                }
            };
            if let Some(reply) = &reply {
                codec.encode(reply, &mut wbuf)?;
            }
            if session.closing {
                break;
            }
            if wbuf.len() >= MAX_PENDING_OUTPUT {
                stream.write_all(&wbuf).await?;
                wbuf.clear();
            }
        }
        // Subscribe before MONITOR's +OK goes out, as Redis does: a client that has read it
        // must see every command run after that.
        if session.monitor && monitor.is_none() {
            monitor = Some(Monitoring::start(node));
        } else if !session.monitor {
            monitor = None;
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        if session.closing || eof {
            return Ok(());
        }
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK);
        }
        // Shutdown and CLIENT KILL are checked only between batches: every request already
        // read has been answered above, so stopping here loses nothing acknowledged.
        tokio::select! {
            r = stream.readable() => {
                r?;
                match read_available(&stream, &mut rbuf) {
                    Ok(0) => eof = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
            line = next_monitor_line(&mut monitor) => {
                codec.encode(&Reply::Simple(String::from_utf8_lossy(&line).into_owned().into()), &mut wbuf)?;
            }
            _ = &mut stopped => return Ok(()),
        }
    }
}

/// Reads what the socket has into `buf`. A short read means the kernel's receive queue is
/// now empty, so the socket's cached readiness is cleared right away (by answering
/// `WouldBlock` from inside `try_io`): the next wait goes straight to epoll instead of first
/// spending a `read` syscall that would only return EAGAIN. That saves one syscall per
/// request for unpipelined clients. tokio clears readiness only if no new readiness event
/// arrived meanwhile, so data that lands during the read is never missed.
fn read_available(stream: &TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    let spare = buf.capacity() - buf.len();
    let mut read = None;
    let result = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        read = Some(n);
        if n > 0 && n < spare {
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match (result, read) {
        (Err(e), Some(n)) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(n),
        (result, _) => result,
    }
}

/// A connection in MONITOR mode: its feed, and its place in the node's monitor count (which
/// commands check before formatting a line), released on drop.
struct Monitoring<'a> {
    rx: broadcast::Receiver<Bytes>,
    count: &'a AtomicUsize,
}

impl<'a> Monitoring<'a> {
    fn start(node: &'a Node) -> Self {
        node.monitors.fetch_add(1, Ordering::Relaxed);
        Monitoring {
            rx: node.monitor.subscribe(),
            count: &node.monitors,
        }
    }
}

impl Drop for Monitoring<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The next MONITOR line, or never when the connection is not monitoring. A monitor that
/// falls too far behind skips the lines it missed rather than making the node buffer them.
async fn next_monitor_line(monitor: &mut Option<Monitoring<'_>>) -> Bytes {
    let Some(monitor) = monitor else {
        return std::future::pending().await;
    };
    loop {
        match monitor.rx.recv().await {
            Ok(line) => return line,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}
