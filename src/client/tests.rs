use std::io::{Error, ErrorKind};

use std::time::Duration;

use super::*;

#[test]
fn the_spec_line_counts_attempts_when_retries_are_off() {
    assert_eq!(unavailable(2, 3), "Server 2 unavailable after 3 retries");
    assert_eq!(unavailable(1, 1), "Server 1 unavailable after 1 retry");
    assert_eq!(unavailable(3, 0), "Server 3 unavailable after 1 attempt");
}

#[test]
fn failures_read_as_plain_words() {
    let addr = || "localhost:7002".to_string();
    let io = |kind: ErrorKind| ClientError::Io {
        addr: addr(),
        cause: Error::new(kind, "os text"),
    };
    let cases = [
        (
            io(ErrorKind::ConnectionRefused),
            "connection refused by localhost:7002",
        ),
        (
            io(ErrorKind::UnexpectedEof),
            "localhost:7002 closed the connection",
        ),
        (
            io(ErrorKind::ConnectionReset),
            "localhost:7002 closed the connection",
        ),
        (
            io(ErrorKind::PermissionDenied),
            "cannot reach localhost:7002: os text",
        ),
        (
            ClientError::Resolve {
                addr: "nowhere.invalid:7002".into(),
                cause: Error::other("failed to lookup address information"),
            },
            "host not found: nowhere.invalid",
        ),
        (
            ClientError::Resolve {
                addr: "localhost".into(),
                cause: Error::new(ErrorKind::InvalidInput, "invalid socket address"),
            },
            "localhost is not a host:port address",
        ),
        (
            ClientError::Timeout {
                addr: addr(),
                after: Duration::from_secs(5),
            },
            "timed out after 5 s waiting for localhost:7002",
        ),
        (
            ClientError::Timeout {
                addr: addr(),
                after: Duration::from_millis(250),
            },
            "timed out after 0.25 s waiting for localhost:7002",
        ),
        (
            ClientError::Auth {
                addr: addr(),
                reply: "WRONGPASS invalid username-password pair or user is disabled.".into(),
            },
            "authentication failed at localhost:7002: WRONGPASS invalid \
             username-password pair or user is disabled.",
        ),
        (
            ClientError::RetriesExhausted {
                server: 2,
                retries: 3,
                last: Box::new(io(ErrorKind::ConnectionRefused)),
            },
            "Server 2 unavailable after 3 retries: connection refused by localhost:7002",
        ),
        (
            unexpected(&Reply::Int(5)),
            "unexpected reply: the integer 5",
        ),
        (
            unexpected(&Reply::Array(vec![Reply::Nil, Reply::Nil])),
            "unexpected reply: an array of 2 items",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text, "{error:?}");
    }
}

/// Three fake nodes of a replicated cluster. `leaders(q)` names each shard's leader in the
/// answer to the cluster's `q`-th `CLUSTER SHARDS` query (from 0), so a test can fail a
/// shard over; `answer` handles other commands, given the node's index.
struct FakeCluster {
    nodes: Vec<fake::FakeNode>,
    /// The ports the topology names and the client's list uses.
    ports: Arc<Mutex<Vec<u16>>>,
}

type Leaders = Vec<Option<usize>>;

impl FakeCluster {
    async fn start(
        leaders: impl Fn(usize) -> Leaders + Send + Sync + Clone + 'static,
        answer: impl Fn(usize, &[String]) -> fake::Answer + Send + Sync + Clone + 'static,
    ) -> Self {
        let ports: Arc<Mutex<Vec<u16>>> = Arc::default();
        let queries = Arc::new(AtomicU64::new(0));
        let mut nodes = Vec::new();
        for index in 0..3 {
            let (ports, answer, leaders) = (ports.clone(), answer.clone(), leaders.clone());
            let queries = queries.clone();
            nodes.push(
                fake::FakeNode::start(move |words| {
                    if words[0].eq_ignore_ascii_case("CLUSTER") {
                        let q = queries.fetch_add(1, Ordering::SeqCst) as usize;
                        let ports = ports.lock().expect("ports lock").clone();
                        return fake::Answer::Raw(fake::shards_reply(&ports, &leaders(q), &[]));
                    }
                    answer(index, words)
                })
                .await,
            );
        }
        *ports.lock().expect("ports lock") = nodes.iter().map(|n| n.port).collect();
        FakeCluster { nodes, ports }
    }

    /// A client with the spec's policy but short pauses, its list naming `localhost`
    /// where the nodes report `127.0.0.1`.
    fn client(&self, events: &Arc<Mutex<Vec<RetryEvent>>>) -> ClusterClient {
        let ports = self.ports.lock().expect("ports lock").clone();
        let mut config = ClientConfig {
            servers: ports.iter().map(|p| format!("localhost:{p}")).collect(),
            ..ClientConfig::default()
        };
        config.retry.delay = Duration::from_millis(10);
        config.retry.timeout = Duration::from_secs(2);
        let events = events.clone();
        ClusterClient::new(config).on_retry(move |e| events.lock().expect("events lock").push(e))
    }
}

fn raw(text: &str) -> fake::Answer {
    fake::Answer::Raw(text.as_bytes().to_vec())
}

/// A bulk string reply.
fn bulk(text: &str) -> fake::Answer {
    raw(&format!("${}\r\n{text}\r\n", text.len()))
}

/// The first `k{i}` key of shard `shard` of 3.
fn key_of(shard: usize) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .find(|k| router::node_for(k.as_bytes(), 3) == shard)
        .expect("some key")
}

#[tokio::test]
async fn keyed_requests_go_to_the_leader_the_cluster_names() {
    // Shard 1 is led by server 2 (a failover happened before the client started).
    let cluster = FakeCluster::start(
        |_| vec![Some(1), Some(1), Some(2)],
        |index, _| bulk(&(index + 1).to_string()),
    )
    .await;
    let events = Arc::default();
    let client = cluster.client(&events);
    let got = client.get(key_of(0).as_bytes()).await.expect("GET");
    assert_eq!(got.as_deref(), Some(&b"2"[..]), "answered by server 2");
    let got = client.get(key_of(2).as_bytes()).await.expect("GET");
    assert_eq!(
        got.as_deref(),
        Some(&b"3"[..]),
        "server 3 still leads shard 3"
    );
    assert_eq!(client.leader_of(0), 1);
    assert!(client.replicated().await);
    assert_eq!(
        cluster.nodes[0].count("GET"),
        0,
        "the old leader is not asked"
    );
    assert_eq!(
        cluster
            .nodes
            .iter()
            .map(|n| n.count("CLUSTER"))
            .sum::<usize>(),
        1,
        "the topology is asked once, lazily"
    );
    assert!(events.lock().expect("events lock").is_empty());
}

#[tokio::test]
async fn a_shards_keys_come_from_its_leader_without_other_shards_copies() {
    let (mine, other) = (key_of(1), key_of(0));
    let listed = format!(
        "*2\r\n${}\r\n{mine}\r\n${}\r\n{other}\r\n",
        mine.len(),
        other.len()
    );
    let cluster = FakeCluster::start(
        |_| vec![Some(0), Some(2), Some(2)],
        move |_, _| raw(&listed),
    )
    .await;
    let client = cluster.client(&Arc::default());
    let (server, keys) = client.shard_keys(1, b"*").await.expect("KEYS");
    assert_eq!((server, keys), (2, vec![Bytes::from(mine)]));
    assert_eq!(cluster.nodes[2].count("KEYS"), 1);
}

#[tokio::test]
async fn a_failover_during_a_request_is_followed_within_the_retry_policy() {
    // Server 1 leads shard 1 when the client first asks, then loses it to server 3.
    let cluster = FakeCluster::start(
        |q| match q {
            0 => vec![Some(0), Some(1), Some(2)],
            _ => vec![Some(2), Some(1), Some(2)],
        },
        |index, words| match index {
            0 => raw("-TRYAGAIN leader changing\r\n"),
            _ => bulk(&words[1]),
        },
    )
    .await;
    let events = Arc::default();
    let client = cluster.client(&events);
    let key = key_of(0);
    let got = client
        .get(key.as_bytes())
        .await
        .expect("GET after the failover");
    assert_eq!(got.as_deref(), Some(key.as_bytes()), "server 3 answered");
    assert_eq!(
        *events.lock().expect("events lock"),
        [RetryEvent {
            server: 1,
            attempt: 1,
            of: 3
        }],
        "one retry, named after the shard (the spec's Server 1)"
    );
    assert_eq!(cluster.nodes[2].count("GET"), 1);
    assert_eq!(client.leader_of(0), 2);
}

#[tokio::test]
async fn a_dead_leader_is_replaced_by_the_one_the_survivors_name() {
    // Server 1 is down. The survivors still name it at first (no election yet), then
    // name server 2.
    let cluster = FakeCluster::start(
        |q| match q {
            0 => vec![Some(0), Some(1), Some(2)],
            _ => vec![Some(1), Some(1), Some(2)],
        },
        |_, _| raw("+OK\r\n"),
    )
    .await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    cluster.ports.lock().expect("ports lock")[0] = dead.local_addr().expect("address").port();
    drop(dead);
    let events = Arc::default();
    let client = cluster.client(&events);
    client
        .set(key_of(0).as_bytes(), b"v", None)
        .await
        .expect("SET");
    assert_eq!(cluster.nodes[1].count("SET"), 1, "server 2 took the write");
    assert_eq!(
        *events.lock().expect("events lock"),
        [RetryEvent {
            server: 1,
            attempt: 1,
            of: 3
        }]
    );
    // Shard 1 with no leader at all: CLUSTERDOWN until the retries run out, named
    // after the shard.
    let cluster = FakeCluster::start(
        |_| vec![None, Some(1), Some(2)],
        |_, _| raw("-CLUSTERDOWN The cluster is down: shard 1 has no leader\r\n"),
    )
    .await;
    let client = cluster.client(&Arc::default());
    let err = client
        .get(key_of(0).as_bytes())
        .await
        .expect_err("no leader");
    assert!(
        matches!(
            &err,
            ClientError::RetriesExhausted {
                server: 1,
                retries: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .starts_with("Server 1 unavailable after 3 retries: CLUSTERDOWN"));
}

#[tokio::test]
async fn a_write_that_lost_its_reply_is_sent_again_only_if_idempotent() {
    // A plain node that drops the connection on the first SET and on every INCR.
    let sets = Arc::new(Mutex::new(0));
    let counted = sets.clone();
    let node = fake::FakeNode::start(move |words| match words[0].to_ascii_uppercase().as_str() {
        "CLUSTER" => raw("-ERR This instance has cluster support disabled\r\n"),
        "SET" => {
            let mut n = counted.lock().expect("count lock");
            *n += 1;
            if *n == 1 {
                fake::Answer::Close
            } else {
                raw("+OK\r\n")
            }
        }
        "INCR" => fake::Answer::Close,
        "STATS" => raw("*2\r\n$14\r\ntotal_requests\r\n:9\r\n"),
        _ => raw("-ERR unexpected\r\n"),
    })
    .await;
    let mut config = ClientConfig {
        servers: vec![format!("127.0.0.1:{}", node.port)],
        ..ClientConfig::default()
    };
    config.retry.delay = Duration::from_millis(10);
    let events: Arc<Mutex<Vec<RetryEvent>>> = Arc::default();
    let recorded = events.clone();
    let client =
        ClusterClient::new(config).on_retry(move |e| recorded.lock().expect("events lock").push(e));

    client
        .set(b"k", b"v", None)
        .await
        .expect("SET is sent again");
    assert_eq!(node.count("SET"), 2);
    // On the connection the topology query left in the pool, so the pool repeated it on
    // a fresh connection itself, as after a node restart: no visible retry.
    assert!(events.lock().expect("events lock").is_empty());

    let err = client
        .call_shard(0, vec![b("INCR"), b("k")])
        .await
        .expect_err("no reply");
    assert!(matches!(err, ClientError::OutcomeUnknown { .. }), "{err:?}");
    assert!(err
        .to_string()
        .ends_with("may or may not have run, so it was not sent again"));
    assert_eq!(node.count("INCR"), 1, "never sent twice");
    assert!(events.lock().expect("events lock").is_empty(), "no retry");
    // Not even on a fresh connection by the retry policy.
    let err = client
        .call(0, vec![b("INCR"), b("k")])
        .await
        .expect_err("no reply");
    assert!(matches!(err, ClientError::OutcomeUnknown { .. }), "{err:?}");
    assert_eq!(node.count("INCR"), 2, "once per call");

    // A plain node is asked for its topology once; STATS leaves that query out.
    assert!(!client.replicated().await);
    assert_eq!(client.topology().await, None);
    assert_eq!(node.count("CLUSTER"), 1);
    assert_eq!(client.stats(0).await.expect("STATS").total_requests, 8);
}
