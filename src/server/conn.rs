//! One task per connection: read, decode every complete request in the buffer, execute each,
//! encode the replies, and write them in one go.
//!
//! Writing once per batch of requests read (not once per reply), with TCP_NODELAY set on the
//! socket, is what keeps pipelined clients fast: mini-redis flushes per reply without NODELAY
//! and stalls on Nagle/delayed-ACK. Errors here end this connection only; they are logged
//! once and never reach the accept loop.
//!
//! Access rules applied here, as Redis applies them: protected mode refuses non-loopback
//! clients of a node without a password before reading anything; until a client has
//! authenticated on a node with a password its codec accepts only small requests; with an
//! idle `timeout` a connection that sends nothing for that long is closed; and a connection
//! that sends HTTP (the codec says [`Incoming::CrossProtocol`]) is closed at that request,
//! with a warning in the log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_rustls::server::TlsStream;

use crate::aof::FsyncPolicy;
use crate::cmd::Session;
use crate::config::live::Settings;
use crate::node::{ClientHandle, Node};
use crate::protocol::{Codec, Incoming, JsonCodec, ProtocolError, Reply, ReplyShape, RespCodec};
use crate::server::sniff::{self, Protocol};
use crate::tls::TlsAcceptor;
use feed::{next_delivery, Feed};
use output::{sleep_or_never, write_out};
use wait::{blocks_remotely, wait_blocked, wait_saved};

mod feed;
mod output;
mod wait;

/// Flush replies early once this many bytes are pending, so a client pipelining thousands of
/// requests without reading cannot make the node buffer their replies without bound.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// A pipelined batch whose replies fit in this many bytes waits for the other ready
/// connections before its write (see the write at the end of a batch in `serve`).
const YIELD_MAX_OUTPUT: usize = 4 * 1024;
/// Initial and minimum free space of the read buffer.
const READ_CHUNK: usize = 16 * 1024;
/// The most one read asks for: a client whose reads keep filling the buffer (a pipeline of
/// large values) gets a larger one, doubled up to this, as Redis grows its query buffer to read
/// more per call. Fewer reads, and fewer requests split across two of them (the first part is
/// copied when the buffer grows for the rest).
const READ_MAX: usize = 128 * 1024;
/// An empty buffer larger than this is given back after the batch that grew it.
const SHRINK_ABOVE: usize = 256 * 1024;
/// How long a client refused by protected mode may take to read the explanation.
const DENY_LINGER: Duration = Duration::from_secs(1);
/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client that broke the protocol may take to read the error before it is closed.
const LAST_WORDS_LINGER: Duration = Duration::from_secs(1);
/// Redis 7's reply to a client refused by protected mode, word for word (the options it names
/// exist here too: `--protected-mode no`, `--requirepass`, CONFIG SET and CONFIG REWRITE).
const DENIED: &str = concat!(
    "-DENIED Redis is running in protected mode because protected mode is enabled and no ",
    "password is set for the default user. In this mode connections are only accepted from ",
    "the loopback interface. If you want to connect from external computers to Redis you may ",
    "adopt one of the following solutions: 1) Just disable protected mode sending the command ",
    "'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from ",
    "the same host the server is running, however MAKE SURE Redis is not publicly accessible ",
    "from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) ",
    "Alternatively you can just disable the protected mode by editing the Redis configuration ",
    "file, and setting the protected mode option to 'no', and then restarting the server. 3) ",
    "If you started the server manually just for testing, restart it with the ",
    "'--protected-mode no' option. 4) Setup a an authentication password for the default ",
    "user. NOTE: You only need to do one of the above things in order for the server to start ",
    "accepting connections from the outside.\r\n",
);

/// Serves one accepted socket until the peer closes, QUIT, a protocol error, or shutdown.
/// With `tls`, the TLS handshake comes first (bounded by `TLS_HANDSHAKE_TIMEOUT`, 10 s) and the
/// decrypted stream is served exactly as a plain one.
pub async fn run(stream: TcpStream, node: Arc<Node>, tls: Option<TlsAcceptor>) {
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr.map_or_else(|| "?".into(), |a| a.to_string());
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, "set_nodelay failed: {e}");
    }
    let laddr = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let _counted = node.stats.connection_opened();
    let Some(acceptor) = tls else {
        return run_on(stream, &node, peer_addr, peer, laddr).await;
    };
    // Shutdown first: a half-open handshake must not hold the node's drain.
    let handshake = tokio::select! {
        biased;
        _ = node.shutdown.cancelled() => return,
        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
    };
    match handshake {
        Ok(Ok(stream)) => run_on(stream, &node, peer_addr, peer, laddr).await,
        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// The connection after accept (and the TLS handshake): protected mode, protocol sniffing,
/// then the codec loop.
async fn run_on<S: Transport>(
    mut stream: S,
    node: &Arc<Node>,
    peer_addr: Option<SocketAddr>,
    peer: String,
    laddr: String,
) {
    if protected_mode_refuses(&node.settings, peer_addr) {
        node.stats.connection_rejected();
        tracing::debug!(%peer, "refused by protected mode");
        deny(stream).await;
        return;
    }
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let protocol = loop {
        if let Some(p) = sniff::detect(&rbuf) {
            break p;
        }
        // Nothing but whitespace so far: wait for a byte that decides, for shutdown, or for
        // the idle timeout (a client that connects and says nothing is idle too).
        tokio::select! {
            r = stream.read_buf(&mut rbuf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => node.stats.net_input(n),
            },
            _ = node.shutdown.cancelled() => return,
            _ = sleep_or_never(node.settings.idle_timeout()) => {
                tracing::debug!(%peer, "closing idle connection");
                return;
            }
        }
    };
    let client = Arc::new(ClientHandle::new(
        node.next_client_id(),
        peer.clone(),
        laddr,
        node.shutdown.child_token(),
    ));
    let _registered = node.clients.register(client.clone());
    let mut session = Session::new(client);
    // As in Redis, a connection opened while the node has no password is authenticated: it
    // stays usable after CONFIG SET requirepass (new connections must AUTH).
    session.authenticated = !node.settings.has_password();
    // JSON renders pushes as objects of their own: no RESP2 subscribed mode for it.
    session.pushes_apart = protocol == Protocol::Json;
    // Subscribers of what this connection publishes are woken once per batch (see `serve`).
    session.defer_wakes = true;
    let result = match protocol {
        Protocol::Resp => {
            let codec = RespCodec::new(node.config.resp_limits);
            serve(stream, rbuf, codec, node, &mut session).await
        }
        Protocol::Json => {
            let codec = JsonCodec::new(node.config.id, node.config.json_limits);
            serve(stream, rbuf, codec, node, &mut session).await
        }
    };
    // WATCHes end with the connection; subscriptions too (dropping them unsubscribes).
    session.unwatch_all(&node.store);
    session.subscriptions = None;
    match result {
        Ok(()) => {}
        Err(ProtocolError::Io(e)) => tracing::debug!(%peer, "connection closed: {e}"),
        Err(e) => tracing::debug!(%peer, "closing connection after protocol error: {e}"),
    }
}

async fn serve<S: Transport, C: Codec>(
    mut stream: S,
    mut rbuf: BytesMut,
    mut codec: C,
    node: &Node,
    session: &mut Session,
) -> Result<(), ProtocolError> {
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut eof = false;
    // How much free space the next read gets (see `READ_MAX`).
    let mut read_size = READ_CHUNK;
    // CLIENT KILL or node shutdown (the kill token is a child of the shutdown token). Created
    // once and polled by reference: a fresh `cancelled()` per loop would register and
    // deregister a waiter under the token's lock on every request.
    let stopped = session.client.kill.clone().cancelled_owned();
    tokio::pin!(stopped);
    let mut monitor: Option<Monitoring<'_>> = None;
    // Pub/sub deliveries, once the connection has subscribed.
    let mut feed: Option<Feed> = None;
    codec.set_authenticated(!session.auth_required(node));
    // The idle timeout: one timer for the connection's life, moved only when it fires early
    // (resetting it on every request would cost a timer-wheel update each time).
    // CONFIG SET timeout applies to open connections too: the limit is read again before
    // every wait (a shorter one takes effect once the timer set with the old one fires).
    let mut idle_limit = node.settings.idle_timeout();
    let idle = tokio::time::sleep(idle_limit.unwrap_or_default());
    tokio::pin!(idle);
    let mut waiting_since = tokio::time::Instant::now();
    // Set when the client sent HTTP: answer what came before it, then close.
    let mut attacked = false;
    // Requests waiting to be forwarded together (replicated cluster only).
    let mut forwards = Forwards::default();
    loop {
        // A new batch: the previous one's clock reading is stale (see `Session::clock`).
        session.clock = None;
        // Requests in this batch (see the write at its end).
        let mut batched = 0usize;
        // Execute everything already received before writing anything.
        loop {
            let decoded = if eof {
                codec.decode_eof(&mut rbuf)
            } else {
                codec.decode(&mut rbuf)
            };
            // In a cluster, consecutive requests for one remote shard wait here and go to its
            // leader together; anything else sends them first, keeping the replies in order.
            if forwards.shard.is_some() && !matches!(decoded, Ok(Some(Incoming::Request(..)))) {
                forwards.flush(node, session, &mut codec, &mut wbuf).await?;
            }
            let (reply, shape) = match decoded {
                Ok(Some(Incoming::Request(request, shape))) => {
                    batched += 1;
                    let reply = match node.cluster() {
                        None => session.execute(node, &request),
                        Some(cluster) => {
                            let route =
                                crate::cluster::route::route(node, cluster, session, &request);
                            match route.batch_shard() {
                                Some(shard) => {
                                    if forwards.shard.is_some_and(|s| s != shard) {
                                        forwards
                                            .flush(node, session, &mut codec, &mut wbuf)
                                            .await?;
                                    }
                                    forwards.push(shard, request.args, shape);
                                    if forwards.full() {
                                        forwards
                                            .flush(node, session, &mut codec, &mut wbuf)
                                            .await?;
                                    }
                                    continue;
                                }
                                None => {
                                    forwards.flush(node, session, &mut codec, &mut wbuf).await?;
                                    crate::cluster::route::run(
                                        node, cluster, session, &request, route,
                                    )
                                    .await
                                }
                            }
                        }
                    };
                    let reply = if session.blocked.is_some()
                        || session.saving.is_some()
                        || blocks_remotely(node, session, &request)
                    {
                        // Replies so far go out first: the client sees them while it waits.
                        session.wakes.wake();
                        if !wbuf.is_empty() {
                            if !durable(node, session).await {
                                return Err(unconfirmed());
                            }
                            write_out(&mut stream, &[&wbuf], stopped.as_mut(), None).await?;
                            node.stats.net_output(wbuf.len());
                            wbuf.clear();
                        }
                        let waited = if session.saving.is_some() {
                            Some(wait_saved(node, session, reply).await)
                        } else {
                            wait_blocked(
                                &mut stream,
                                &mut rbuf,
                                stopped.as_mut(),
                                node,
                                session,
                                &request,
                                reply,
                            )
                            .await?
                        };
                        match waited {
                            Some(reply) => reply,
                            None => return Ok(()),
                        }
                    } else {
                        reply
                    };
                    codec.set_resp_version(session.protocol);
                    // A first SUBSCRIBE (or one after RESET) brings a new feed of deliveries;
                    // what the old one still holds goes out first.
                    if let Some(rx) = session
                        .subscriptions
                        .as_mut()
                        .and_then(|s| s.take_receiver())
                    {
                        if let Some(old) = &mut feed {
                            old.drain(&mut codec, &mut wbuf, usize::MAX)?;
                        }
                        feed = Some(Feed::new(rx));
                    }
                    // AUTH lifts the pre-auth size limits for the next request; RESET
                    // restores them.
                    codec.set_authenticated(!session.auth_required(node));
                    (reply, shape)
                }
                Ok(Some(Incoming::Invalid(message))) => {
                    // A request that could not be mapped to a command is still a request:
                    // counted, and answered unless CLIENT REPLY says otherwise.
                    let reply = session.reject(node, Reply::Error(message.into()));
                    (reply, ReplyShape::generic())
                }
                Ok(Some(Incoming::CrossProtocol)) => {
                    // Redis's securityWarningCommand, word for word, so that operators
                    // grepping for it find it here too. Once per connection: it closes now.
                    tracing::warn!(
                        client = session.client.id,
                        "Possible SECURITY ATTACK detected. It looks like somebody is sending \
                         POST or Host: commands to Redis. This is likely due to an attacker \
                         attempting to use Cross Protocol Scripting to compromise your Redis \
                         instance. Connection from {} aborted.",
                        session.client.addr
                    );
                    attacked = true;
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    codec.encode_protocol_error(&e, &mut wbuf);
                    // Best effort: the peer broke the protocol and may not be reading.
                    if durable(node, session).await {
                        let linger = Some(LAST_WORDS_LINGER);
                        let _ = write_out(&mut stream, &[&wbuf], stopped.as_mut(), linger).await;
                    }
                    return Err(e);
                }
            };
            // This request's one encode step: its reply in its own shape, or nothing when
            // CLIENT REPLY OFF/SKIP suppressed the reply (the shape is dropped with it).
            // Frames a command made before its reply (SUBSCRIBE a b), and messages it
            // delivered to this very connection (PUBLISH to a channel it listens to), go
            // before its reply, as in Redis.
            if !session.pushes.is_empty() {
                for push in std::mem::take(&mut session.pushes) {
                    if reply.is_some() {
                        codec.encode(&push, &ReplyShape::generic(), &mut wbuf)?;
                    }
                }
            }
            if let Some(feed) = &mut feed {
                feed.drain(&mut codec, &mut wbuf, usize::MAX)?;
            }
            // A value of MAX_PENDING_OUTPUT or more would be flushed at once anyway: it goes
            // out from its own buffer after what is pending, not copied into the write buffer.
            let large = match &reply {
                Some(reply) => codec.encode_large(reply, MAX_PENDING_OUTPUT, &mut wbuf),
                None => None,
            };
            if let (Some(reply), None) = (&reply, &large) {
                codec.encode(reply, &shape, &mut wbuf)?;
            }
            if session.closing {
                break;
            }
            if wbuf.len() >= MAX_PENDING_OUTPUT || large.is_some() {
                session.wakes.wake();
                if !durable(node, session).await {
                    return Err(unconfirmed());
                }
                let stall_limit = idle_limit.filter(|_| !listening(&monitor, session));
                let (value, end) = match &large {
                    Some(value) => (&value[..], &b"\r\n"[..]),
                    None => (&[][..], &[][..]),
                };
                let parts = [&wbuf[..], value, end];
                write_out(&mut stream, &parts, stopped.as_mut(), stall_limit).await?;
                node.stats.net_output(wbuf.len() + value.len() + end.len());
                wbuf.clear();
                Feed::written(&mut feed);
            }
        }
        // The batch is answered: subscribers of what it published may write now. Once per
        // batch, not per PUBLISH: a pipeline of messages reaches each subscriber's task as one
        // wake-up and one write (Redis too writes their output once per event-loop turn).
        session.wakes.wake();
        // Subscribe before MONITOR's +OK goes out, as Redis does: a client that has read it
        // must see every command run after that.
        if session.monitor && monitor.is_none() {
            monitor = Some(Monitoring::start(node));
        } else if !session.monitor {
            monitor = None;
        }
        if !wbuf.is_empty() {
            // A pipelined batch is answered after the other connections ready now have read
            // and run theirs, so the replies leave back to back, as Redis's beforeSleep writes
            // them: a client process woken by the first finds the rest waiting, instead of
            // going back to sleep between two (each wake-up of a sleeping process costs the
            // sender more than the send). `-P 16` MSET: 1.32x Redis's CPU per request without
            // this, 0.93x with it (docs/performance.md). A lone request (`-P 1`) is answered
            // at once: there the yield cost more than it saved; so is a batch with a large
            // output (LRANGE): holding it while others run only made it go cold.
            if batched > 1 && wbuf.len() <= YIELD_MAX_OUTPUT {
                tokio::task::yield_now().await;
            }
            if !durable(node, session).await {
                return Err(unconfirmed());
            }
            let stall_limit = idle_limit.filter(|_| !listening(&monitor, session));
            write_out(&mut stream, &[&wbuf], stopped.as_mut(), stall_limit).await?;
            node.stats.net_output(wbuf.len());
            wbuf.clear();
            if wbuf.capacity() > SHRINK_ABOVE {
                wbuf = BytesMut::with_capacity(READ_CHUNK);
            }
            Feed::written(&mut feed);
        }
        if session.closing || eof || attacked {
            return Ok(());
        }
        if rbuf.is_empty() && rbuf.capacity() > SHRINK_ABOVE {
            // A big pipeline is over: its buffer goes back (Redis shrinks an idle query
            // buffer too), or every connection that once sent one would keep it.
            rbuf = BytesMut::with_capacity(READ_CHUNK);
            read_size = READ_CHUNK;
        } else if rbuf.capacity() - rbuf.len() < read_size / 4 {
            rbuf.reserve(read_size);
        }
        let spare = rbuf.capacity() - rbuf.len();
        // Idle time counts from here: the last request is answered. Redis exempts MONITOR
        // and subscribed connections, which only listen.
        idle_limit = node.settings.idle_timeout();
        let idle_armed = idle_limit.is_some() && !listening(&monitor, session);
        if idle_armed {
            waiting_since = tokio::time::Instant::now();
        }
        // Shutdown and CLIENT KILL are checked only between batches: every request already
        // read has been answered above, so stopping here loses nothing acknowledged.
        tokio::select! {
            r = stream.read_some(&mut rbuf) => {
                // Killed while the request was arriving (select! picked this ready arm over
                // the kill's): a killed client gets no further replies, as in Redis.
                if session.client.kill.is_cancelled() {
                    return Ok(());
                }
                if let Ok(n) = r {
                    node.stats.net_input(n);
                    // The kernel had more than the buffer took: read more at once next time.
                    if n == spare && read_size < READ_MAX {
                        read_size *= 2;
                    }
                }
                match r {
                    Ok(0) => eof = true,
                    Ok(_) if rbuf.len() > node.config.resp_limits.max_query_buffer => {
                        // Redis's client-query-buffer-limit: a client whose unparsed input
                        // passes the limit (1 GB) is closed rather than grown without bound.
                        tracing::warn!(
                            client = session.client.id,
                            "closing a client whose query buffer passed {} bytes",
                            node.config.resp_limits.max_query_buffer
                        );
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
            () = next_delivery(&mut feed) => {
                // Messages answer no request of this connection: generic shape. Everything
                // waiting goes out together, up to one write's worth.
                if let Some(feed) = &mut feed {
                    feed.drain(&mut codec, &mut wbuf, MAX_PENDING_OUTPUT)?;
                }
            }
            line = next_monitor_line(&mut monitor) => {
                // A MONITOR line answers no request of this connection: generic shape.
                let line = Reply::Simple(String::from_utf8_lossy(&line).into_owned().into());
                codec.encode(&line, &ReplyShape::generic(), &mut wbuf)?;
            }
            _ = &mut stopped => return Ok(()),
            () = &mut idle, if idle_armed => {
                let due = waiting_since + idle_limit.unwrap_or_default();
                if tokio::time::Instant::now() >= due {
                    tracing::debug!(client = session.client.id, "closing idle connection");
                    return Ok(());
                }
                // There was activity since the timer was set: wait for the rest.
                idle.as_mut().reset(due);
            }
        }
    }
}

/// Redis's protected mode: a node without a password, with protected mode on, serves only
/// clients on the loopback interface. A node bound to loopback never sees any other, so in
/// effect this refuses remote clients of a node bound to another address (`0.0.0.0`). As in
/// Redis, a peer whose address cannot be read is not known to be local and is refused.
fn protected_mode_refuses(settings: &Settings, peer: Option<SocketAddr>) -> bool {
    settings.protected_mode()
        && !settings.has_password()
        && !peer.is_some_and(|p| p.ip().to_canonical().is_loopback())
}

/// Sends a refused client Redis's explanation and closes the connection. The write half is
/// shut down first and what the client already sent is drained for a moment: closing a
/// socket with unread input resets it, and the client could lose the explanation.
async fn deny<S: Transport>(mut stream: S) {
    // Best effort throughout: the client may be gone already.
    let _ = stream.write_all(DENIED.as_bytes()).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DENY_LINGER, drain).await;
}

/// A byte stream a connection is served on: a plain socket, or TLS over one.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    /// Reads what is available into `buf` (waiting for something first); 0 is end of file.
    /// May answer `WouldBlock` spuriously, which the caller treats as "nothing yet".
    async fn read_some(&mut self, buf: &mut BytesMut) -> std::io::Result<usize>;
}

impl Transport for TcpStream {
    async fn read_some(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        // Readiness then a non-blocking read: see `read_available`. Both halves are
        // cancel-safe, as the `select!` in `serve` needs.
        self.readable().await?;
        read_available(self, buf)
    }
}

impl Transport for TlsStream<TcpStream> {
    async fn read_some(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        // `read_buf` is cancel-safe: nothing is consumed unless it completes.
        self.read_buf(buf).await
    }
}

/// Under `appendfsync always`, waits until the log is fsynced past this connection's writes:
/// no reply acknowledges a write before it is on disk. One fsync covers every connection
/// waiting at that moment (group commit), and a whole batch of requests waits once.
///
/// In a replicated cluster, waits until the shards have committed everything the batch ran
/// here (writes, and the writes reads may have seen). False when that cannot be known (this
/// node stopped leading a shard first): the replies must not be sent.
async fn durable(node: &Node, session: &mut Session) -> bool {
    if let Some(aof) = node.aof.get() {
        if aof.policy() == FsyncPolicy::Always && session.aof_mark > 0 {
            aof.synced(session.aof_mark).await;
        }
    }
    if !session.cluster_marks.is_empty() || session.cluster_broken {
        return crate::cluster::admin::settle(node, session).await;
    }
    true
}

/// Consecutive requests of a pipeline for one shard another node leads, forwarded in one bus
/// call when something else comes (or the pipeline ends).
#[derive(Default)]
struct Forwards {
    shard: Option<usize>,
    commands: Vec<Vec<bytes::Bytes>>,
    shapes: Vec<ReplyShape>,
    bytes: usize,
}

impl Forwards {
    fn push(&mut self, shard: usize, args: Vec<bytes::Bytes>, shape: ReplyShape) {
        self.shard = Some(shard);
        self.bytes += args.iter().map(|a| a.len() + 8).sum::<usize>();
        self.commands.push(args);
        self.shapes.push(shape);
    }

    /// Whether the batch is as big as one bus call should carry.
    fn full(&self) -> bool {
        self.commands.len() >= 512 || self.bytes >= 4 << 20
    }

    /// Forwards what waits and encodes the replies, in order.
    async fn flush<C: Codec>(
        &mut self,
        node: &Node,
        session: &mut Session,
        codec: &mut C,
        wbuf: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        let (Some(shard), Some(cluster)) = (self.shard.take(), node.cluster()) else {
            return Ok(());
        };
        let commands = std::mem::take(&mut self.commands);
        let shapes = std::mem::take(&mut self.shapes);
        self.bytes = 0;
        let replies =
            crate::cluster::route::forward_batch(node, cluster, session, shard, commands).await;
        for (reply, shape) in replies.into_iter().zip(shapes) {
            if let Some(reply) = reply {
                codec.encode(&reply, &shape, wbuf)?;
            }
        }
        Ok(())
    }
}

/// Why a connection closes without answering: its writes' fate is unknown.
fn unconfirmed() -> ProtocolError {
    ProtocolError::Io(std::io::Error::other(
        "the shard's leader changed before this connection's writes were confirmed; \
         closing without replying",
    ))
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

/// Whether the connection only listens (MONITOR, or pub/sub subscriptions): Redis exempts
/// those from the idle timeout, and their replies from its stall limit.
fn listening(monitor: &Option<Monitoring<'_>>, session: &Session) -> bool {
    monitor.is_some()
        || session
            .subscriptions
            .as_ref()
            .is_some_and(|s| s.count() > 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_refuses_only_remote_clients_of_a_node_without_password() {
        let peer = |a: &str| Some(a.parse::<SocketAddr>().expect("address"));
        let open = Settings::new(&crate::config::NodeConfig::default());
        assert!(protected_mode_refuses(&open, peer("198.51.100.2:5000")));
        assert!(protected_mode_refuses(&open, peer("[2001:db8::2]:5000")));
        assert!(protected_mode_refuses(&open, None));
        for local in [
            "127.0.0.1:5000",
            "127.0.0.2:5000",
            "[::1]:5000",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(!protected_mode_refuses(&open, peer(local)), "{local}");
        }
        // CONFIG SET requirepass and CONFIG SET protected-mode take effect at once.
        open.set_password(Some("pw".into()));
        assert!(!protected_mode_refuses(&open, peer("198.51.100.2:5000")));
        open.set_password(None);
        assert!(protected_mode_refuses(&open, peer("198.51.100.2:5000")));
        open.set_protected_mode(false);
        assert!(!protected_mode_refuses(&open, peer("198.51.100.2:5000")));
    }
}
