//! Load and abuse: while one client writes and verifies a key set, other connections to the
//! same node (the real binary, so its memory can be measured alone) misbehave at once:
//!
//! - garbage: random bytes, invalid RESP and invalid JSON on fresh connections;
//! - slowloris: half a request, then nothing (or a byte now and then) for the whole run;
//! - churn: connections opened and dropped in a tight loop, some with a request half sent;
//! - pipelining without reading: 50,000 SETs of 1 KB values per connection, and GETs of a
//!   1 MB value whose replies nobody reads.
//!
//! Afterwards every verified key is intact, the node answers PING, CLIENT LIST shows the
//! abusive connections gone, and the node's resident memory is back near where it started.
//! During the run the verifying client never sees an error, and the node's memory stays
//! bounded: a client that does not read its replies holds the node to what the socket
//! buffers take, not to whatever it asked for.
//!
//! Such a client, stuck with a reply half written, is still closed by CLIENT KILL, by a
//! graceful stop (without waiting out the drain timeout) and by the idle `--timeout`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::process::{free_port, BinProcess};
use common::{blocking, within, WAIT};
use minikv::client::{Backoff, RetryPolicy};
use minikv::protocol::Reply;
use minikv::{ClientConfig, ClusterClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long the abuse lasts.
const ABUSE: Duration = Duration::from_secs(5);
/// Concurrent write-and-verify sequences of the verifying client.
const WRITER_STREAMS: usize = 4;
/// Slowloris connections held open for the whole run.
const SLOWLORIS: usize = 64;
/// SETs per pipelining connection.
const PIPELINED_SETS: usize = 50_000;
/// Value size of the pipelined SETs.
const PIPELINED_VALUE: usize = 1024;
/// Size of the value whose GET replies nobody reads.
const BIG_VALUE: usize = 1024 * 1024;
/// Churned connections at most (each is an RST or a FIN; the cap keeps the loop bounded).
const MAX_CHURN: u64 = 50_000;
/// How far above its starting point the node's resident memory may be afterwards.
const RSS_MARGIN_KB: u64 = 64 * 1024;
/// How far above its starting point the node's resident memory may go during the abuse.
/// Buffering the unread 1 MB replies would blow through it within a second.
const RSS_PEAK_MARGIN_KB: u64 = 512 * 1024;

/// Half requests the slowloris connections send before stalling.
const HALF_REQUESTS: [&[u8]; 5] = [
    b"*3\r\n$3\r\nSET\r\n$1",
    // Claims a bulk of ~512 MB, then trickles it a byte at a time: nothing that size may be
    // allocated up front.
    b"*2\r\n$3\r\nGET\r\n$536870000\r\n",
    // Claims the largest allowed element count.
    b"*1048576\r\n$3\r\nSET\r\n",
    b"{\"command\": \"SET\", \"key\": \"k\", \"value\": \"",
    b"GET no-newline-yet",
];

/// Complete requests that break the protocol, each with the start of the node's last words
/// before it closes the connection.
const INVALID_REQUESTS: [(&[u8], &str); 8] = [
    (
        b"*abc\r\n",
        "-ERR Protocol error: invalid multibulk length\r\n",
    ),
    (
        b"*99999999\r\n",
        "-ERR Protocol error: invalid multibulk length\r\n",
    ),
    (
        b"*2\r\n:1\r\n",
        "-ERR Protocol error: expected '$', got ':'\r\n",
    ),
    (
        b"*1\r\n$-2\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    ),
    (
        b"*1\r\n$99999999999\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    ),
    (
        b"SET \"unbalanced\r\n",
        "-ERR Protocol error: unbalanced quotes in request\r\n",
    ),
    (b"{\"command\": }", "{\"message\":\"invalid JSON: "),
    (
        b"{\"command\": \"GET\", \"key\": [[[[\"x\"]]]]]]]}",
        "{\"message\":\"invalid JSON: ",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_under_abuse_keeps_verified_keys_and_returns_to_its_memory() {
    let dir = tempfile::tempdir().expect("create a data directory");
    let port = free_port();
    let path = dir.path().to_path_buf();
    let node = blocking(move || BinProcess::server(1, port, &path, &[])).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let pid = node.pid();
    let start_rss = rss_kb(pid);
    let admin = client(addr);
    // The unread GETs' value, set before the abuse starts.
    let big = Bytes::from(vec![b'b'; BIG_VALUE]);
    within("SET abuse:big", admin.set(b"abuse:big", &big, None))
        .await
        .expect("SET the big value");

    let stop = CancellationToken::new();
    let peak_rss = Arc::new(AtomicU64::new(start_rss));
    let (slow_ready, slow_opened) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn(write_and_verify(addr, stop.clone()));
    let garbage = tokio::spawn(send_garbage(addr, stop.clone()));
    let slowloris = tokio::spawn(slowloris(addr, stop.clone(), slow_ready));
    let churn = tokio::spawn(churn(addr, stop.clone()));
    let sets = tokio::spawn(pipeline_sets(addr, stop.clone()));
    let unread = tokio::spawn(pipeline_unread_gets(addr, stop.clone()));
    let sampler = tokio::spawn(sample_rss(pid, peak_rss.clone(), stop.clone()));

    // The slowloris connections are all registered and held by the node.
    within("the slowloris connections to open", slow_opened)
        .await
        .expect("slowloris task reports");
    let mut held = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while held < SLOWLORIS && tokio::time::Instant::now() < deadline {
        held = client_count(&admin).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(held >= SLOWLORIS, "only {held} clients listed");

    tokio::time::sleep(ABUSE).await;
    stop.cancel();
    let verified = join("writer", writer).await;
    let garbage = join("garbage", garbage).await;
    let slow = join("slowloris", slowloris).await;
    let churned = join("churn", churn).await;
    let sets = join("pipelined SETs", sets).await;
    let unread = join("unread GETs", unread).await;
    join("RSS sampler", sampler).await;
    let peak = peak_rss.load(Ordering::Relaxed);
    eprintln!(
        "verified {} keys; {garbage} garbage connections closed by the node; {slow} slowloris \
         connections; {churned} churned; {sets} pipelined SETs sent; {unread} unread GETs sent; \
         RSS {start_rss} kB at start, {peak} kB at peak",
        verified.len()
    );
    assert!(
        verified.len() >= 1000,
        "only {} keys verified",
        verified.len()
    );
    assert!(garbage > 0 && churned > 0 && sets > 0 && unread > 0);
    assert!(
        peak <= start_rss + RSS_PEAK_MARGIN_KB,
        "the node's RSS reached {peak} kB from {start_rss} kB during the abuse"
    );

    // The node is up and answers.
    let pong = within("PING", admin.call(0, vec![Bytes::from_static(b"PING")]))
        .await
        .expect("PING after the abuse");
    assert_eq!(pong, Reply::Simple("PONG".into()));
    // Every verified key is intact.
    for chunk in verified.chunks(1000) {
        let keys: Vec<&[u8]> = chunk.iter().map(|(k, _)| k.as_slice()).collect();
        let values = within("MGET of verified keys", admin.mget(&keys))
            .await
            .expect("MGET after the abuse");
        for ((key, value), got) in chunk.iter().zip(values) {
            assert_eq!(
                got.as_deref(),
                Some(value.as_slice()),
                "verified key {} changed",
                String::from_utf8_lossy(key)
            );
        }
    }
    // Only the admin connection is left.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut clients = client_count(&admin).await;
    while clients > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        clients = client_count(&admin).await;
    }
    assert_eq!(
        clients, 1,
        "abusive connections still listed after {WAIT:?}"
    );
    // Memory is back near where it started.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut rss = rss_kb(pid);
    while rss > start_rss + RSS_MARGIN_KB && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rss = rss_kb(pid);
    }
    eprintln!("RSS {rss} kB after the abuse");
    assert!(
        rss <= start_rss + RSS_MARGIN_KB,
        "the node's RSS is {rss} kB, up from {start_rss} kB before the abuse"
    );
    let stderr = node.stderr();
    assert!(!stderr.contains("panicked"), "the node panicked:\n{stderr}");
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_and_shutdown_close_a_client_that_never_reads() {
    let dir = tempfile::tempdir().expect("create a data directory");
    let (node, addr, admin) = start_with_big_value(dir.path(), &[]).await;
    let (_stuck, id) = stuck_client(addr).await;
    assert!(listed(&admin, &id).await, "the stuck client is listed");
    let args = ["CLIENT", "KILL", "ID", &id]
        .map(|a| Bytes::from(a.to_owned()))
        .to_vec();
    let killed = within("CLIENT KILL", admin.call(0, args))
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, Reply::Int(1));
    let deadline = tokio::time::Instant::now() + WAIT;
    while listed(&admin, &id).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "CLIENT KILL left a client that does not read connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A graceful stop does not wait for a client that does not read either: it would wait
    // out the 5 s drain timeout, and say so in its log.
    let (_stuck, _) = stuck_client(addr).await;
    node.terminate();
    let mut node = node;
    let (status, log) = blocking(move || (node.wait_exit(), node.stderr())).await;
    assert!(status.success(), "{status}");
    assert!(
        !log.contains("connections still open after"),
        "shutdown waited for the client that does not read:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_closes_a_client_that_never_reads() {
    let dir = tempfile::tempdir().expect("create a data directory");
    let (_node, addr, admin) = start_with_big_value(dir.path(), &["--timeout", "1"]).await;
    let (_stuck, id) = stuck_client(addr).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while listed(&admin, &id).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a client that reads no reply for longer than the timeout is still connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SETs then GETs unique keys until `stop` from [`WRITER_STREAMS`] concurrent sequences on
/// one client, failing on any error or wrong value, and notes the slowest request; returns
/// the verified pairs.
async fn write_and_verify(addr: SocketAddr, stop: CancellationToken) -> Vec<(Vec<u8>, Vec<u8>)> {
    let client = client(addr);
    let sequences = (0..WRITER_STREAMS).map(|s| {
        let (client, stop) = (&client, &stop);
        async move {
            let mut verified = Vec::new();
            let mut slowest = Duration::ZERO;
            for n in 0u64.. {
                if stop.is_cancelled() {
                    break;
                }
                let key = format!("verify:{s}:{n}").into_bytes();
                let value = format!("value:{n}:{}", fastrand::u64(..)).into_bytes();
                let started = Instant::now();
                client
                    .set(&key, &value, None)
                    .await
                    .unwrap_or_else(|e| panic!("SET verify:{s}:{n} failed under abuse: {e}"));
                let got = client
                    .get(&key)
                    .await
                    .unwrap_or_else(|e| panic!("GET verify:{s}:{n} failed under abuse: {e}"));
                slowest = slowest.max(started.elapsed());
                assert_eq!(got.as_deref(), Some(value.as_slice()), "verify:{s}:{n}");
                verified.push((key, value));
            }
            (verified, slowest)
        }
    });
    let mut verified = Vec::new();
    let mut slowest = Duration::ZERO;
    for (pairs, slow) in futures::future::join_all(sequences).await {
        verified.extend(pairs);
        slowest = slowest.max(slow);
    }
    eprintln!("slowest SET+GET under abuse: {slowest:?}");
    verified
}

/// Sends garbage on fresh connections until `stop`: known protocol violations (the node must
/// answer with its protocol error and close), and random bytes followed by end of input
/// (the node must close, whatever it made of them). Returns the connections the node closed.
async fn send_garbage(addr: SocketAddr, stop: CancellationToken) -> u64 {
    let mut closed = 0;
    for round in 0u64.. {
        if stop.is_cancelled() {
            break;
        }
        let mut stream = TcpStream::connect(addr).await.expect("connect for garbage");
        if round % 2 == 0 {
            let (request, last_words) = INVALID_REQUESTS[fastrand::usize(..INVALID_REQUESTS.len())];
            stream
                .write_all(request)
                .await
                .expect("send invalid request");
            let reply = read_until_closed(&mut stream).await;
            let text = String::from_utf8_lossy(&reply);
            assert!(
                text.starts_with(last_words),
                "{:?} got {text:?}",
                String::from_utf8_lossy(request)
            );
        } else {
            let mut garbage = vec![0u8; fastrand::usize(1..4096)];
            fastrand::fill(&mut garbage);
            // The node may close before reading everything: a failed write is fine.
            let _ = stream.write_all(&garbage).await;
            let _ = stream.shutdown().await;
            read_until_closed(&mut stream).await;
        }
        closed += 1;
    }
    closed
}

/// Opens [`SLOWLORIS`] connections, each sending half a request, reports when they are all
/// open, then holds them until `stop`, trickling a byte a second into the huge-bulk ones.
async fn slowloris(
    addr: SocketAddr,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
) -> usize {
    let mut conns = Vec::with_capacity(SLOWLORIS);
    for i in 0..SLOWLORIS {
        let mut stream = TcpStream::connect(addr).await.expect("connect slowloris");
        let half = HALF_REQUESTS[i % HALF_REQUESTS.len()];
        stream.write_all(half).await.expect("send half a request");
        conns.push((stream, half));
    }
    let _ = ready.send(());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                for (stream, half) in &mut conns {
                    if *half == HALF_REQUESTS[1] {
                        stream.write_all(b"a").await.expect("trickle a byte");
                    }
                }
            }
        }
    }
    conns.len()
}

/// Opens and drops connections in a tight loop until `stop`: some closed at once, some after
/// a whole request whose reply is never read, some in the middle of a request. Most are
/// reset (linger 0) rather than closed, which also keeps TIME_WAIT from using up the ports.
async fn churn(addr: SocketAddr, stop: CancellationToken) -> u64 {
    let mut count = 0;
    while !stop.is_cancelled() && count < MAX_CHURN {
        let mut stream = TcpStream::connect(addr).await.expect("connect for churn");
        match count % 4 {
            0 => {}
            1 => {
                let _ = stream.write_all(b"PING\r\n").await;
            }
            2 => {
                let _ = stream.write_all(b"*2\r\n$3\r\nGET\r\n").await;
            }
            _ => {
                let _ = stream.write_all(b"{\"command\": \"GET\"").await;
            }
        }
        if count % 8 != 0 {
            stream.set_zero_linger().expect("linger 0");
        }
        drop(stream);
        count += 1;
        // Let the other tasks run between connections (a connect to loopback rarely waits).
        tokio::task::yield_now().await;
    }
    count
}

/// Pipelines [`PIPELINED_SETS`] SETs of large values on one connection after another without
/// reading a reply, dropping each connection once everything is sent, until `stop`.
async fn pipeline_sets(addr: SocketAddr, stop: CancellationToken) -> u64 {
    let value = vec![b'v'; PIPELINED_VALUE];
    let mut sent = 0;
    'connections: while !stop.is_cancelled() {
        let mut stream = TcpStream::connect(addr).await.expect("connect to pipeline");
        for batch in 0..PIPELINED_SETS / 1000 {
            let mut buf = Vec::with_capacity(1000 * (PIPELINED_VALUE + 64));
            for i in 0..1000 {
                // Few distinct keys: the data set stays small, the traffic does not.
                let key = format!("pipe:{}", (batch * 1000 + i) % 64);
                buf.extend_from_slice(
                    format!(
                        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
                        key.len(),
                        value.len()
                    )
                    .as_bytes(),
                );
                buf.extend_from_slice(&value);
                buf.extend_from_slice(b"\r\n");
            }
            tokio::select! {
                r = stream.write_all(&buf) => r.expect("pipeline SETs"),
                _ = stop.cancelled() => break 'connections,
            }
            sent += 1000;
        }
    }
    sent
}

/// Pipelines GETs of the 1 MB value on one connection and never reads a reply, until
/// `stop`: unless the node stops reading when the socket is full, it would buffer a
/// megabyte per request.
async fn pipeline_unread_gets(addr: SocketAddr, stop: CancellationToken) -> u64 {
    let mut stream = TcpStream::connect(addr).await.expect("connect to pipeline");
    let batch = b"*2\r\n$3\r\nGET\r\n$9\r\nabuse:big\r\n".repeat(100);
    let mut sent = 0;
    while !stop.is_cancelled() {
        tokio::select! {
            r = stream.write_all(&batch) => r.expect("pipeline GETs"),
            _ = stop.cancelled() => break,
        }
        sent += 100;
    }
    sent
}

/// Records the node's highest resident memory until `stop`.
async fn sample_rss(pid: u32, peak: Arc<AtomicU64>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        peak.fetch_max(rss_kb(pid), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads until the node closes the connection (end of stream or reset), within [`WAIT`];
/// returns what arrived.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    within("the node to close a garbage connection", read_all).await;
    out
}

/// The node's resident set size in kB, from `/proc/<pid>/status`.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}: has the node exited?\n{status}"))
}

/// Number of clients CLIENT LIST shows.
async fn client_count(admin: &ClusterClient) -> usize {
    let args = vec![Bytes::from_static(b"CLIENT"), Bytes::from_static(b"LIST")];
    match within("CLIENT LIST", admin.call(0, args))
        .await
        .expect("CLIENT LIST")
    {
        Reply::Bulk(list) => list
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        other => panic!("CLIENT LIST answered {other:?}"),
    }
}

/// A single-node client that never retries and gives each request 2 s: under abuse a
/// request must still succeed the first time.
fn client(addr: SocketAddr) -> ClusterClient {
    ClusterClient::new(ClientConfig {
        servers: vec![addr.to_string()],
        retry: RetryPolicy {
            retries: 0,
            timeout: Duration::from_secs(2),
            backoff: Backoff::Fixed,
            ..RetryPolicy::default()
        },
        pool_size: WRITER_STREAMS,
        ..ClientConfig::default()
    })
}

/// Awaits a task, bounded, re-raising its panic.
async fn join<T>(what: &str, task: tokio::task::JoinHandle<T>) -> T {
    match within(what, task).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Starts a node (the binary) with `extra` options and the 1 MB value stored; returns it,
/// its address and a client for it.
async fn start_with_big_value(
    dir: &std::path::Path,
    extra: &[&'static str],
) -> (BinProcess, SocketAddr, ClusterClient) {
    let port = free_port();
    let (path, extra) = (dir.to_path_buf(), extra.to_vec());
    let node = blocking(move || BinProcess::server(1, port, &path, &extra)).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let admin = client(addr);
    let big = Bytes::from(vec![b'b'; BIG_VALUE]);
    within("SET abuse:big", admin.set(b"abuse:big", &big, None))
        .await
        .expect("SET the big value");
    (node, addr, admin)
}

/// A connection that asks for more 1 MB replies than the socket buffers hold and reads none
/// of them; returns it, once the node has stopped taking its requests, with its client id.
async fn stuck_client(addr: SocketAddr) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"CLIENT ID\r\n").await.expect("CLIENT ID");
    let mut reply = Vec::new();
    while !reply.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        within("CLIENT ID reply", stream.read_exact(&mut byte))
            .await
            .expect("read CLIENT ID reply");
        reply.push(byte[0]);
    }
    let id = String::from_utf8_lossy(&reply[1..reply.len() - 2]).into_owned();
    let batch = b"*2\r\n$3\r\nGET\r\n$9\r\nabuse:big\r\n".repeat(100);
    let deadline = tokio::time::Instant::now() + WAIT;
    // Stuck once a write makes no progress for a while: the node has stopped reading.
    while let Ok(written) =
        tokio::time::timeout(Duration::from_millis(300), stream.write_all(&batch)).await
    {
        written.expect("pipeline GETs");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node kept reading requests whose replies nobody reads"
        );
    }
    (stream, id)
}

/// True when CLIENT LIST shows the client `id`.
async fn listed(admin: &ClusterClient, id: &str) -> bool {
    let args = vec![Bytes::from_static(b"CLIENT"), Bytes::from_static(b"LIST")];
    match within("CLIENT LIST", admin.call(0, args))
        .await
        .expect("CLIENT LIST")
    {
        Reply::Bulk(list) => String::from_utf8_lossy(&list).contains(&format!("id={id} ")),
        other => panic!("CLIENT LIST answered {other:?}"),
    }
}
