use std::io::{Error, ErrorKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
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
        let shards = move |q: usize, ports: &[u16]| fake::shards_reply(ports, &leaders(q), &[]);
        Self::start_with(shards, answer).await
    }

    /// As [`FakeCluster::start`], `shards(q, ports)` writing the `q`-th `CLUSTER SHARDS`
    /// reply itself; other commands, `CLUSTER INFO` included, go to `answer`.
    async fn start_with(
        shards: impl Fn(usize, &[u16]) -> Vec<u8> + Send + Sync + Clone + 'static,
        answer: impl Fn(usize, &[String]) -> fake::Answer + Send + Sync + Clone + 'static,
    ) -> Self {
        let ports: Arc<Mutex<Vec<u16>>> = Arc::default();
        let queries = Arc::new(AtomicU64::new(0));
        let mut nodes = Vec::new();
        for index in 0..3 {
            let (ports, answer, shards) = (ports.clone(), answer.clone(), shards.clone());
            let queries = queries.clone();
            nodes.push(
                fake::FakeNode::start(move |words| {
                    let sub = words.get(1).map(|w| w.to_ascii_uppercase());
                    if words[0].eq_ignore_ascii_case("CLUSTER") && sub.as_deref() != Some("INFO") {
                        let q = queries.fetch_add(1, Ordering::SeqCst) as usize;
                        let ports = ports.lock().expect("ports lock").clone();
                        return fake::Answer::Raw(shards(q, &ports));
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
    /// where the nodes report `127.0.0.1`, without epoch checks.
    fn client(&self, events: &Arc<Mutex<Vec<RetryEvent>>>) -> ClusterClient {
        self.client_with(events, None)
    }

    /// As [`FakeCluster::client`], checking the epoch every `check`.
    fn client_with(
        &self,
        events: &Arc<Mutex<Vec<RetryEvent>>>,
        check: Option<Duration>,
    ) -> ClusterClient {
        let ports = self.ports.lock().expect("ports lock").clone();
        let mut config = ClientConfig {
            servers: ports.iter().map(|p| format!("localhost:{p}")).collect(),
            topology_check: check,
            ..ClientConfig::default()
        };
        config.retry.delay = Duration::from_millis(10);
        config.retry.timeout = Duration::from_secs(2);
        let events = events.clone();
        ClusterClient::new(config).on_retry(move |e| events.lock().expect("events lock").push(e))
    }

    /// How many `CLUSTER SHARDS` queries the nodes answered.
    fn shard_queries(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| {
                let seen = n.seen.lock().expect("log lock");
                seen.iter()
                    .filter(|w| w.len() > 1 && w[0] == "CLUSTER" && w[1] == "SHARDS")
                    .count()
            })
            .sum()
    }
}

fn raw(text: &str) -> fake::Answer {
    fake::Answer::Raw(text.as_bytes().to_vec())
}

/// A bulk string reply.
fn bulk(text: &str) -> fake::Answer {
    raw(&format!("${}\r\n{text}\r\n", text.len()))
}

/// An array of `words` as bulk strings.
fn echo(words: &[String]) -> fake::Answer {
    let items: String = words
        .iter()
        .map(|w| format!("${}\r\n{w}\r\n", w.len()))
        .collect();
    raw(&format!("*{}\r\n{items}", words.len()))
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

/// The first `k{i}` key whose slot is in `first..=last`.
fn key_in(first: u16, last: u16) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .find(|k| (first..=last).contains(&router::slot_of(k.as_bytes())))
        .expect("some key")
}

/// The shards of a cluster where node 2 was removed (shard 2 is gone) and a node outside the
/// client's list joined as shard 5: shard 1 (slots 0-5999) led by server 1, shard 3
/// (6000-11999) by server 3, shard 5 (12000-12287) by `joined`.
fn shards_with_gaps(ports: &[u16], joined: u16) -> Vec<u8> {
    let shard = |id, slots, leader| fake::FakeShard { id, slots, leader };
    let mut with_joined = ports.to_vec();
    with_joined.push(joined);
    fake::slotted_shards_reply(
        &with_joined,
        &[
            shard(1, vec![(0, 5999)], Some(0)),
            shard(3, vec![(6000, 11999)], Some(2)),
            shard(5, vec![(12000, 12287)], Some(3)),
        ],
        &[],
    )
}

#[tokio::test]
async fn keys_go_by_the_slot_table_to_sparse_shards() {
    let joined = fake::FakeNode::start(|_| raw("-ERR not asked\r\n")).await;
    let port = joined.port;
    let cluster = FakeCluster::start_with(
        move |_, ports| shards_with_gaps(ports, port),
        |index, words| match words[0].as_str() {
            "MGET" => echo(&words[1..]),
            "STATS" => raw("*2\r\n$14\r\ntotal_requests\r\n:5\r\n"),
            _ => bulk(&(index + 1).to_string()),
        },
    )
    .await;
    let client = cluster.client(&Arc::default());
    let (one, three, five) = (key_in(0, 5999), key_in(6000, 11999), key_in(12000, 12287));
    let got = |key: &str| {
        let client = client.clone();
        let key = key.to_string();
        async move { client.get(key.as_bytes()).await.expect("GET") }
    };
    assert_eq!(got(&one).await.as_deref(), Some(&b"1"[..]));
    assert_eq!(got(&three).await.as_deref(), Some(&b"3"[..]));
    // Shard 5's leader is not in the list: its keys go through a listed member, which
    // forwards.
    assert_eq!(got(&five).await.as_deref(), Some(&b"1"[..]));
    assert_eq!(joined.count("GET"), 0);
    assert_eq!(cluster.nodes[1].count("GET"), 0, "server 2 leads nothing");
    assert_eq!(client.shard_indices(), [0, 2, 4]);
    assert_eq!(
        [one.as_str(), three.as_str(), five.as_str()].map(|k| client.index_for(k.as_bytes())),
        [0, 2, 4]
    );
    assert_eq!((client.leader_of(0), client.leader_of(2)), (0, 2));
    assert_eq!(client.leader_of(4), 0, "a listed member of shard 5");
    assert!(matches!(
        client.call_shard(1, vec![b("STATS")]).await,
        Err(ClientError::NoSuchShard(2))
    ));
    let (server, stats) = client.shard_stats(2).await.expect("STATS");
    assert_eq!((server, stats.total_requests), (2, 5));

    // MGET and MSET: one request per shard leader.
    let keys = [one.as_bytes(), three.as_bytes(), one.as_bytes()];
    let values = client.mget(&keys).await.expect("MGET");
    let want: Vec<Option<Bytes>> = keys.iter().map(|k| Some(copy(k))).collect();
    assert_eq!(values, want, "in the order asked");
    assert_eq!(cluster.nodes[0].count("MGET"), 1);
    assert_eq!(cluster.nodes[2].count("MGET"), 1);
    let pairs = [(one.as_bytes(), &b"a"[..]), (five.as_bytes(), &b"b"[..])];
    client.mset(&pairs).await.expect("MSET");
    // Shard 1's and shard 5's groups both go to server 1 (shard 5 through it).
    assert_eq!(cluster.nodes[0].count("MSET"), 2);
    assert_eq!(cluster.shard_queries(), 1, "asked once");
}

/// Shard 1 owns every slot, led by server 1, in the `q`-th reply when `moved(q)` is false;
/// else shard 2 owns every slot, led by server 2.
fn all_slots(ports: &[u16], moved: bool) -> Vec<u8> {
    let shard = |id, slots, leader| fake::FakeShard { id, slots, leader };
    let (first, second) = if moved {
        (vec![], vec![(0, 12287)])
    } else {
        (vec![(0, 12287)], vec![])
    };
    fake::slotted_shards_reply(
        ports,
        &[shard(1, first, Some(0)), shard(2, second, Some(1))],
        &[],
    )
}

#[tokio::test]
async fn a_moved_reply_refreshes_the_table_and_is_followed() {
    let target = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let to = target.clone();
    let cluster = FakeCluster::start_with(
        |q, ports| all_slots(ports, q > 0),
        move |index, words| match index {
            0 => {
                let slot = router::slot_of(words[1].as_bytes());
                raw(&format!(
                    "-MOVED {slot} 127.0.0.1:{}\r\n",
                    to.load(Ordering::SeqCst)
                ))
            }
            _ => bulk(&format!("{} from {}", words[1], index + 1)),
        },
    )
    .await;
    target.store(cluster.nodes[1].port, Ordering::SeqCst);
    let events = Arc::default();
    let client = cluster.client(&events);
    let key = key_in(0, 12287);
    let got = client.get(key.as_bytes()).await.expect("GET");
    assert_eq!(got, Some(Bytes::from(format!("{key} from 2"))));
    assert_eq!(cluster.shard_queries(), 2, "read again on MOVED");
    assert_eq!(client.index_for(key.as_bytes()), 1, "shard 2 owns it now");
    // The next request goes straight to the new owner.
    client.get(key.as_bytes()).await.expect("GET");
    assert_eq!(cluster.nodes[0].count("GET"), 1);
    assert_eq!(cluster.nodes[1].count("GET"), 2);
    assert!(
        events.lock().expect("events lock").is_empty(),
        "not a retry"
    );
}

#[tokio::test]
async fn a_redirect_to_a_node_outside_the_list_is_followed_and_loops_are_cut() {
    let outsider = fake::FakeNode::start(|words| bulk(&format!("{} outside", words[1]))).await;
    let target = Arc::new(std::sync::atomic::AtomicU16::new(outsider.port));
    let to = target.clone();
    let cluster = FakeCluster::start_with(
        |_, ports| all_slots(ports, false),
        move |_, words| {
            let slot = router::slot_of(words[1].as_bytes());
            raw(&format!(
                "-MOVED {slot} localhost:{}\r\n",
                to.load(Ordering::SeqCst)
            ))
        },
    )
    .await;
    let client = cluster.client(&Arc::default());
    let key = key_in(0, 12287);
    let (server, reply) = client
        .call_shard(0, vec![b("GET"), copy(key.as_bytes())])
        .await
        .expect("GET");
    assert_eq!(reply, Reply::Bulk(Bytes::from(format!("{key} outside"))));
    assert_eq!(server, 3, "the first index past the list");
    assert_eq!(outsider.count("GET"), 1);

    // Server 1 sends everything back to itself: the redirects stop at MAX_REDIRECTS.
    target.store(cluster.nodes[0].port, Ordering::SeqCst);
    let err = client.get(key.as_bytes()).await.expect_err("a loop");
    assert!(
        matches!(&err, ClientError::Server(e) if e.starts_with("MOVED ")),
        "{err:?}"
    );
    let redirects = usize::try_from(MAX_REDIRECTS).expect("small");
    assert_eq!(cluster.nodes[0].count("GET"), 1 + 1 + redirects);
    assert_eq!(outsider.count("GET"), 1);
}

#[tokio::test]
async fn an_ask_reply_is_followed_after_asking_on_the_same_connection() {
    let target = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let to = target.clone();
    let cluster = FakeCluster::start_with(
        |_, ports| all_slots(ports, false),
        move |index, words| match (index, words[0].as_str()) {
            (_, "ASKING") => raw("+OK\r\n"),
            (0, _) => {
                let slot = router::slot_of(words[1].as_bytes());
                raw(&format!(
                    "-ASK {slot} 127.0.0.1:{}\r\n",
                    to.load(Ordering::SeqCst)
                ))
            }
            _ => bulk(&format!("{} from {}", words[1], index + 1)),
        },
    )
    .await;
    target.store(cluster.nodes[1].port, Ordering::SeqCst);
    let client = cluster.client(&Arc::default());
    let key = key_in(0, 12287);
    let got = client.get(key.as_bytes()).await.expect("GET");
    assert_eq!(got, Some(Bytes::from(format!("{key} from 2"))));
    let seen = cluster.nodes[1].seen.lock().expect("log lock").clone();
    assert_eq!(
        seen,
        [
            vec!["ASKING".to_string()],
            vec!["GET".to_string(), key.clone()]
        ],
        "ASKING, then the command"
    );
    assert_eq!(cluster.shard_queries(), 2, "read again on ASK");
    assert_eq!(client.index_for(key.as_bytes()), 0, "ASK moves no slot");
}

#[tokio::test]
async fn a_stale_table_still_answers_and_an_epoch_change_refreshes_it() {
    // The cluster moves every slot to shard 2 once the epoch is 2; server 1 still answers
    // for them (it forwards), so the stale client is never wrong.
    let epoch = Arc::new(AtomicU64::new(1));
    let current = epoch.clone();
    let cluster = FakeCluster::start_with(
        move |q, ports| all_slots(ports, q > 0),
        move |index, words| match words[0].as_str() {
            "CLUSTER" => bulk(&format!(
                "cluster_state:ok\r\ncluster_current_epoch:{}\r\n",
                current.load(Ordering::SeqCst)
            )),
            "STATS" => raw("*2\r\n$14\r\ntotal_requests\r\n:20\r\n"),
            _ => bulk(&format!("{} from {}", words[1], index + 1)),
        },
    )
    .await;
    // Every request carries CLUSTER INFO.
    let client = cluster.client_with(&Arc::default(), Some(Duration::ZERO));
    let key = key_in(0, 12287);
    let got = client.get(key.as_bytes()).await.expect("GET");
    assert_eq!(got, Some(Bytes::from(format!("{key} from 1"))));
    epoch.store(2, Ordering::SeqCst);
    // Still answered by server 1, whose epoch then says the table changed.
    let got = client.get(key.as_bytes()).await.expect("GET");
    assert_eq!(got, Some(Bytes::from(format!("{key} from 1"))));
    assert_eq!(cluster.shard_queries(), 2, "read again on the new epoch");
    let got = client.get(key.as_bytes()).await.expect("GET");
    assert_eq!(got, Some(Bytes::from(format!("{key} from 2"))));
    assert_eq!(cluster.nodes[1].count("GET"), 1);
    // STATS leaves out every CLUSTER query the client sent.
    let stats = client.stats(0).await.expect("STATS");
    let asked = cluster.nodes[0].count("CLUSTER");
    assert_eq!(asked, 4, "SHARDS twice, INFO with each GET");
    assert_eq!(stats.total_requests, 20 - 4);
}
