//! Publish/subscribe beyond one connection's replies (those are in
//! `tests/differential/pubsub.redis`): fan-out to many subscribers, slow subscribers closed at
//! the output limit while the others keep receiving, subscriptions removed on disconnect,
//! a RESP3 subscriber's own messages compared byte for byte with redis-server, JSON
//! subscribers, PUBLISH across a replicated cluster, and redis-py's pubsub.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use common::process::{clients_dir, free_port, require, run, BinProcess, NodeProcess, RedisServer};
use common::raw::{frame_len, resp_from, JsonConn};
use common::{spawn_node, wait_until, within, WAIT};

/// A raw RESP connection that reads whole frames.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn::from(common::raw::connect(addr).await)
    }

    fn from(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, args: &[&str]) {
        self.send_bytes(&resp_from(args)).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next frame's raw bytes, within [`WAIT`].
    async fn frame(&mut self) -> Vec<u8> {
        loop {
            if let Some(n) = frame_len(&self.buf, 0) {
                return self.buf.drain(..n).collect();
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = within("a frame", self.stream.read(&mut chunk))
                .await
                .expect("read");
            assert!(
                n > 0,
                "closed; had {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next frame as its bulk strings and integers, as text (a flat array or push).
    async fn items(&mut self) -> Vec<String> {
        flat(&self.frame().await)
    }

    async fn call(&mut self, args: &[&str]) -> Vec<u8> {
        self.send(args).await;
        self.frame().await
    }

    /// PUBSUB NUMSUB of one channel.
    async fn numsub(&mut self, channel: &str) -> i64 {
        let items = flat(&self.call(&["PUBSUB", "NUMSUB", channel]).await);
        items[1].parse().expect("a count")
    }

    async fn int(&mut self, args: &[&str]) -> i64 {
        let frame = self.call(args).await;
        let text = String::from_utf8_lossy(&frame).into_owned();
        text.strip_prefix(':')
            .and_then(|t| t.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("{args:?} answered {text:?}"))
    }

    /// Reads until the peer closes; true if it did within [`WAIT`].
    async fn closed(&mut self) -> bool {
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

/// The elements of a flat aggregate frame (`*`, `>`) of bulks and integers, as text.
fn flat(frame: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(frame).into_owned();
    let mut lines = text.split("\r\n");
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with('*') || header.starts_with('>'),
        "not an array or push: {text:?}"
    );
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if let Some(n) = line.strip_prefix(':') {
            out.push(n.to_string());
        } else if line == "$-1" || line == "_" {
            out.push("(nil)".to_string());
        } else if line.starts_with('$') {
            out.push(lines.next().unwrap_or_default().to_string());
        }
    }
    out
}

async fn subscriber(addr: SocketAddr, command: &str, name: &str) -> Conn {
    let mut c = Conn::open(addr).await;
    let reply = c.call(&[command, name]).await;
    assert_eq!(
        flat(&reply)[..2],
        [command.to_lowercase(), name.to_string()]
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_subscribers_each_receive_every_message_once_in_order() {
    let node = spawn_node(|_| {}).await;
    let mut subs = Vec::new();
    for i in 0..100 {
        // A tenth listen through a pattern: a pmessage per message instead.
        let (command, name) = if i % 10 == 0 {
            ("PSUBSCRIBE", "fan*")
        } else {
            ("SUBSCRIBE", "fanout")
        };
        subs.push(subscriber(node.addr, command, name).await);
    }
    const MESSAGES: usize = 500;
    let readers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                for n in 0..MESSAGES {
                    let items = c.items().await;
                    let want: Vec<String> = if i % 10 == 0 {
                        vec![
                            "pmessage".into(),
                            "fan*".into(),
                            "fanout".into(),
                            format!("m{n}"),
                        ]
                    } else {
                        vec!["message".into(), "fanout".into(), format!("m{n}")]
                    };
                    assert_eq!(items, want, "subscriber {i}, message {n}");
                }
                // Nothing more: the next frame is the answer to this PING.
                let pong = c.call(&["PING", "end"]).await;
                assert_eq!(flat(&pong), ["pong", "end"], "subscriber {i} got more");
            })
        })
        .collect();
    let mut publisher = Conn::open(node.addr).await;
    for n in 0..MESSAGES {
        let receivers = publisher
            .int(&["PUBLISH", "fanout", &format!("m{n}")])
            .await;
        assert_eq!(receivers, 100);
    }
    for reader in readers {
        within("a subscriber reading every message", reader)
            .await
            .expect("subscriber task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_closed_and_the_others_keep_receiving() {
    let node = spawn_node(|_| {}).await;
    let mut admin = Conn::open(node.addr).await;
    let ok = admin
        .call(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 0 0",
        ])
        .await;
    assert_eq!(ok, b"+OK\r\n");
    // The slow one: a small receive buffer, and it never reads after subscribing.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("rcvbuf");
    let stream = socket.connect(node.addr).await.expect("connect");
    let mut slow = Conn::from(stream);
    slow.call(&["SUBSCRIBE", "firehose"]).await;
    let fast = subscriber(node.addr, "SUBSCRIBE", "firehose").await;
    assert_eq!(admin.numsub("firehose").await, 2);
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(None::<usize>);
    let reader = tokio::spawn(async move {
        let mut fast = fast;
        let mut n = 0usize;
        loop {
            if let Some(total) = *done_rx.borrow_and_update() {
                if n == total {
                    return n;
                }
            }
            let items = tokio::select! {
                items = fast.items() => items,
                _ = done_rx.changed() => continue,
            };
            assert_eq!(items[2].len(), PAYLOAD, "message {n}");
            assert_eq!(&items[2][..12], &format!("{n:012}"), "in order");
            n += 1;
        }
    });
    const PAYLOAD: usize = 4096;
    const MAX_MESSAGES: usize = 50_000;
    let mut published = 0;
    let pad = "x".repeat(PAYLOAD - 12);
    while published < MAX_MESSAGES {
        // 32 at a time, pipelined.
        let mut batch = Vec::new();
        for n in published..published + 32 {
            batch.extend(resp_from(&[
                "PUBLISH",
                "firehose",
                &format!("{n:012}{pad}"),
            ]));
        }
        admin.send_bytes(&batch).await;
        for _ in 0..32 {
            admin.frame().await;
        }
        published += 32;
        if admin.numsub("firehose").await == 1 {
            break;
        }
    }
    // Closed long before the publisher was done: what the node held for it stayed near the
    // 1 MB limit (plus the kernel's socket buffers), instead of all 200 MB published.
    let published_bytes = published * PAYLOAD;
    assert!(
        published_bytes < 48 << 20,
        "the slow subscriber was still connected after {published_bytes} bytes"
    );
    assert!(
        slow.closed().await,
        "the slow subscriber's connection was not closed"
    );
    // The fast one got every message, in order, before and after.
    done_tx.send(Some(published)).expect("reader alive");
    let got = within("the fast subscriber", reader).await.expect("reader");
    assert_eq!(got, published);
}

#[tokio::test]
async fn disconnects_quit_and_reset_remove_subscriptions() {
    let node = spawn_node(|_| {}).await;
    let mut a = Conn::open(node.addr).await;
    a.send(&["SUBSCRIBE", "x", "y"]).await;
    a.frame().await;
    a.frame().await;
    a.call(&["PSUBSCRIBE", "z*"]).await;
    let mut b = subscriber(node.addr, "SUBSCRIBE", "x").await;
    let mut c = subscriber(node.addr, "PSUBSCRIBE", "q*").await;
    let mut admin = Conn::open(node.addr).await;
    let numsub = admin.call(&["PUBSUB", "NUMSUB", "x", "y"]).await;
    assert_eq!(flat(&numsub), ["x", "2", "y", "1"]);
    let list = String::from_utf8_lossy(&admin.call(&["CLIENT", "LIST", "TYPE", "pubsub"]).await)
        .into_owned();
    assert_eq!(list.matches("id=").count(), 3, "{list}");
    assert!(list.contains("flags=P db=0 sub=2 psub=1"), "{list}");
    let info = String::from_utf8_lossy(&admin.call(&["INFO", "stats"]).await).into_owned();
    assert!(
        info.contains("pubsub_channels:2\r\npubsub_patterns:2\r\n"),
        "{info}"
    );
    // A connection that goes away takes its subscriptions with it.
    drop(a);
    wait_until("a's subscriptions to go", WAIT, || async {
        node.node.pubsub.numsub(b"x") == 1 && node.node.pubsub.pattern_count() == 1
    })
    .await;
    assert_eq!(node.node.pubsub.numsub(b"y"), 0);
    // QUIT too.
    assert_eq!(b.call(&["QUIT"]).await, b"+OK\r\n");
    wait_until("b's subscription to go", WAIT, || async {
        node.node.pubsub.numsub(b"x") == 0
    })
    .await;
    // RESET at once, and the connection goes on outside subscribed mode.
    assert_eq!(c.call(&["RESET"]).await, b"+RESET\r\n");
    assert_eq!(node.node.pubsub.pattern_count(), 0);
    assert_eq!(c.call(&["PING"]).await, b"+PONG\r\n");
    let info = String::from_utf8_lossy(&admin.call(&["INFO", "stats"]).await).into_owned();
    assert!(
        info.contains("pubsub_channels:0\r\npubsub_patterns:0\r\n"),
        "{info}"
    );
}

#[tokio::test]
async fn unsubscribe_without_arguments_leaves_every_channel() {
    let node = spawn_node(|_| {}).await;
    let mut s = Conn::open(node.addr).await;
    s.send(&["SUBSCRIBE", "a", "b", "c"]).await;
    for count in 1..=3 {
        assert_eq!(s.items().await[2], count.to_string());
    }
    s.call(&["PSUBSCRIBE", "p*"]).await;
    s.send(&["UNSUBSCRIBE"]).await;
    let mut left = HashSet::new();
    // Any order (Redis's is its hash table's); the counts go down one by one.
    for count in [3, 2, 1] {
        let items = s.items().await;
        assert_eq!(items[0], "unsubscribe");
        assert_eq!(items[2], count.to_string());
        left.insert(items[1].clone());
    }
    assert_eq!(left, HashSet::from(["a".into(), "b".into(), "c".into()]));
    let last = flat(&s.call(&["PUNSUBSCRIBE"]).await);
    assert_eq!(last, ["punsubscribe", "p*", "0"].map(String::from).to_vec());
    // Nothing left: the nil-channel frame.
    let none = flat(&s.call(&["UNSUBSCRIBE"]).await);
    assert_eq!(
        none,
        ["unsubscribe", "(nil)", "0"].map(String::from).to_vec()
    );
}

/// A RESP3 subscriber may run any command, and a message it publishes to itself comes before
/// PUBLISH's reply: the same bytes as redis-server.
#[tokio::test]
async fn resp3_subscriber_sees_its_own_message_before_the_reply_as_redis_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RedisServer::start(dir.path());
    let node = spawn_node(|_| {}).await;
    let mut outputs = Vec::new();
    for addr in [SocketAddr::from(([127, 0, 0, 1], redis.port)), node.addr] {
        let mut c = Conn::open(addr).await;
        c.call(&["HELLO", "3"]).await;
        let mut out = Vec::new();
        c.send(&["SUBSCRIBE", "self"]).await;
        out.push(c.frame().await);
        c.send(&["PUBLISH", "self", "me"]).await;
        out.push(c.frame().await);
        out.push(c.frame().await);
        out.push(c.call(&["SET", "k", "v"]).await);
        out.push(c.call(&["GET", "k"]).await);
        out.push(c.call(&["PING"]).await);
        c.send(&["UNSUBSCRIBE"]).await;
        out.push(c.frame().await);
        outputs.push(out);
    }
    let text = |o: &Vec<Vec<u8>>| -> Vec<String> {
        o.iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    };
    assert_eq!(text(&outputs[1]), text(&outputs[0]));
    assert_eq!(
        String::from_utf8_lossy(&outputs[1][1]),
        ">3\r\n$7\r\nmessage\r\n$4\r\nself\r\n$2\r\nme\r\n"
    );
}

#[tokio::test]
async fn json_subscriber_receives_messages_published_over_resp() {
    let node = spawn_node(|_| {}).await;
    let mut sub = JsonConn::connect(node.addr).await;
    let reply = sub
        .request(json!({"command": "SUBSCRIBE", "args": ["news", "sport"]}))
        .await;
    assert_eq!(
        reply,
        json!({"push": "subscribe", "channel": "news", "count": 1})
    );
    assert_eq!(
        sub.reply().await,
        json!({"push": "subscribe", "channel": "sport", "count": 2})
    );
    let reply = sub
        .request(json!({"command": "PSUBSCRIBE", "args": ["n*"]}))
        .await;
    assert_eq!(
        reply,
        json!({"push": "psubscribe", "pattern": "n*", "count": 3})
    );
    let mut publisher = Conn::open(node.addr).await;
    assert_eq!(publisher.int(&["PUBLISH", "news", "hi"]).await, 2);
    assert_eq!(
        sub.reply().await,
        json!({"push": "message", "channel": "news", "message": "hi"})
    );
    assert_eq!(
        sub.reply().await,
        json!({"push": "pmessage", "pattern": "n*", "channel": "news", "message": "hi"})
    );
    // A payload that is not UTF-8 comes base64-encoded.
    publisher
        .send_bytes(&resp_from(&[&b"PUBLISH"[..], b"sport", b"\xff\x00\x01"]))
        .await;
    assert_eq!(publisher.frame().await, b":1\r\n");
    assert_eq!(
        sub.reply().await,
        json!({"push": "message", "channel": "sport", "message_base64": "/wAB"})
    );
    // A JSON subscriber may run any command: pushes and replies look different.
    let pong = sub.request(json!({"command": "PING"})).await;
    assert_eq!(pong["message"], "PONG");
    let reply = sub
        .request(json!({"command": "UNSUBSCRIBE", "args": ["news"]}))
        .await;
    assert_eq!(
        reply,
        json!({"push": "unsubscribe", "channel": "news", "count": 2})
    );
    assert_eq!(node.node.pubsub.numsub(b"news"), 0);
}

/// One message reaches subscribers of every protocol, each in its own encoding (a published
/// message's frames are encoded once per encoding and shared): RESP2 arrays, RESP3 pushes and
/// JSON objects, through the channel and through a pattern, in publish order.
#[tokio::test]
async fn subscribers_of_each_protocol_get_their_own_encoding_of_one_message() {
    let node = spawn_node(|_| {}).await;
    let mut resp2 = Vec::new();
    let mut resp3 = Vec::new();
    for _ in 0..2 {
        resp2.push(subscriber(node.addr, "SUBSCRIBE", "mixed").await);
        let mut c = Conn::open(node.addr).await;
        c.call(&["HELLO", "3"]).await;
        c.send(&["SUBSCRIBE", "mixed"]).await;
        c.frame().await;
        resp3.push(c);
    }
    let mut pattern = subscriber(node.addr, "PSUBSCRIBE", "mix*").await;
    let mut json_sub = JsonConn::connect(node.addr).await;
    json_sub
        .request(json!({"command": "SUBSCRIBE", "args": ["mixed"]}))
        .await;
    let mut publisher = Conn::open(node.addr).await;
    for payload in ["one", "two"] {
        assert_eq!(publisher.int(&["PUBLISH", "mixed", payload]).await, 6);
    }
    for payload in ["one", "two"] {
        let array = format!("*3\r\n$7\r\nmessage\r\n$5\r\nmixed\r\n$3\r\n{payload}\r\n");
        let push = format!(">3\r\n$7\r\nmessage\r\n$5\r\nmixed\r\n$3\r\n{payload}\r\n");
        for c in &mut resp2 {
            assert_eq!(String::from_utf8_lossy(&c.frame().await), array);
        }
        for c in &mut resp3 {
            assert_eq!(String::from_utf8_lossy(&c.frame().await), push);
        }
        assert_eq!(
            json_sub.reply().await,
            json!({"push": "message", "channel": "mixed", "message": payload})
        );
    }
    for payload in ["one", "two"] {
        assert_eq!(
            String::from_utf8_lossy(&pattern.frame().await),
            format!("*4\r\n$8\r\npmessage\r\n$4\r\nmix*\r\n$5\r\nmixed\r\n$3\r\n{payload}\r\n")
        );
    }
}

/// Three `minikv server --cluster` processes: a message published on one node reaches the
/// subscribers of the others; PUBLISH counts only its own node's receivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_one_cluster_node_reaches_subscribers_on_the_others() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let buses: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let list = ports
        .iter()
        .zip(&buses)
        .map(|(p, b)| format!("127.0.0.1:{p}@{b}"))
        .collect::<Vec<_>>()
        .join(",");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let _procs: Vec<BinProcess> = (0..3)
        .map(|i| {
            BinProcess::server(
                i as u64 + 1,
                ports[i],
                dirs[i].path(),
                &["--cluster", &list],
            )
        })
        .collect();
    let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
    let mut a = subscriber(addr(0), "SUBSCRIBE", "news").await;
    let mut c = subscriber(addr(2), "PSUBSCRIBE", "ne*").await;
    let mut b = Conn::open(addr(1)).await;
    // The nodes may still be finding each other: publish until the first message arrives.
    let mut first = None;
    for attempt in 0..300 {
        assert_eq!(
            b.int(&["PUBLISH", "news", &format!("hello {attempt}")])
                .await,
            0
        );
        if let Ok(items) = tokio::time::timeout(Duration::from_millis(100), a.items()).await {
            first = Some(items);
            break;
        }
    }
    let first = first.expect("no message reached node 1 within 30 s");
    assert_eq!(first[..2], ["message".to_string(), "news".to_string()]);
    // From then on, every message arrives, in order, on both other nodes.
    for n in 0..50 {
        b.int(&["PUBLISH", "news", &format!("after {n}")]).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 50 {
        let items = a.items().await;
        if items[2].starts_with("hello ") {
            continue;
        }
        seen.push(items[2].clone());
    }
    assert_eq!(
        seen,
        (0..50).map(|n| format!("after {n}")).collect::<Vec<_>>()
    );
    let mut seen = Vec::new();
    while seen.len() < 50 {
        let items = c.items().await;
        assert_eq!(items[..3], ["pmessage", "ne*", "news"].map(String::from));
        if !items[3].starts_with("hello ") {
            seen.push(items[3].clone());
        }
    }
    assert_eq!(
        seen,
        (0..50).map(|n| format!("after {n}")).collect::<Vec<_>>()
    );
    // A subscriber on the publishing node counts there.
    let mut local = subscriber(addr(1), "SUBSCRIBE", "news").await;
    assert_eq!(b.int(&["PUBLISH", "news", "local"]).await, 1);
    assert_eq!(local.items().await[2], "local");
}

#[test]
fn redis_py_pubsub_against_a_node() {
    require(
        "redis-py 8 (pip package redis)",
        "python3",
        &[
            "-c",
            "import redis, sys; sys.exit(redis.__version__.split('.')[0] != '8')",
        ],
    );
    let node = NodeProcess::start();
    let script = clients_dir().join("redis_py_pubsub.py");
    let result = run(
        Command::new("python3").arg(&script).arg(node.port_arg()),
        None,
        Duration::from_secs(60),
    );
    assert!(
        result.status.success(),
        "redis_py_pubsub.py failed: {}\n--- node stderr ---\n{}",
        result.report(),
        node.process.stderr()
    );
}
