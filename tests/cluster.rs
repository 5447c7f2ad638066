//! The cluster client against real nodes: MD5 routing (checked against each node's keyspace
//! and against vectors computed independently with Python's hashlib), MGET/MSET across nodes,
//! many concurrent clients without lost writes, a node stopped and restarted under the
//! client (three retries, about 1.5 s, then an error; works again after the restart), and the
//! typed calls for hashes, lists, sets, sorted sets and PUBLISH against real nodes.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{client_config, cluster_client, raw, spawn_cluster, spawn_node_in, within};
use minikv::client::{ClientError, RetryEvent};
use minikv::protocol::Reply;
use minikv::{node_for, ClusterClient};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn dbsize(client: &ClusterClient, index: usize) -> i64 {
    match client.call(index, vec![b("DBSIZE")]).await {
        Ok(Reply::Int(n)) => n,
        other => panic!("DBSIZE on server {}: {other:?}", index + 1),
    }
}

/// Independent vectors: `int(hashlib.md5(k.encode()).hexdigest(), 16) % n` in Python.
#[test]
fn routing_matches_python_hashlib() {
    let vectors: &[(&str, usize, usize)] = &[
        ("user:alice", 3, 0),
        ("user:bob", 3, 0),
        ("user:charlie", 3, 2),
        ("session:xyz", 3, 2),
        ("user:1", 3, 1),
        ("", 3, 0),
        ("key:000000001", 3, 2),
        ("user:alice", 5, 3),
        ("ключ", 3, 1),
        ("anything", 1, 0),
        ("user:2", 3, 2),
        ("user:3", 3, 2),
        ("user:4", 3, 0),
        ("user:5", 3, 2),
        ("test:1", 3, 2),
        ("persist:1", 3, 1),
        ("temp:key", 3, 0),
        ("user:alice", 7, 1),
        ("x", 2, 0),
        ("session:abc", 10, 3),
    ];
    for &(key, n, want) in vectors {
        assert_eq!(
            node_for(key.as_bytes(), n),
            want,
            "{key:?} over {n} servers"
        );
    }
    // A long key (1000 x 'a'): the digest, not the key length, decides.
    assert_eq!(node_for("a".repeat(1000).as_bytes(), 3), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_on_the_node_md5_picks() {
    let nodes = spawn_cluster(3).await;
    let client = cluster_client(&nodes);
    let keys: Vec<String> = (0..300).map(|i| format!("user:{i}")).collect();
    for key in &keys {
        within("SET", client.set(key.as_bytes(), b"v", None))
            .await
            .expect("SET through the cluster client");
    }
    let mut total = 0;
    for index in 0..3 {
        let want: BTreeSet<String> = keys
            .iter()
            .filter(|k| node_for(k.as_bytes(), 3) == index)
            .cloned()
            .collect();
        assert!(!want.is_empty(), "300 keys cover every node");
        let got: BTreeSet<String> = client
            .keys(index, b"*")
            .await
            .expect("KEYS")
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(got, want, "keys on server {}", index + 1);
        assert_eq!(dbsize(&client, index).await, want.len() as i64);
        // Each node's own view, not through the client: the node with id index+1.
        let stats = client.stats(index).await.expect("STATS");
        assert_eq!(stats.total_keys, want.len() as i64);
        assert_eq!(stats.set, want.len() as i64);
        total += want.len();
    }
    assert_eq!(total, 300);
    assert_eq!(client.index_for(b"user:alice"), node_for(b"user:alice", 3));

    // Reads route the same way.
    for key in keys.iter().step_by(7) {
        let got = client.get(key.as_bytes()).await.expect("GET");
        assert_eq!(got.as_deref(), Some(&b"v"[..]), "{key}");
    }
    let with_ttl = client.get_with_ttl(b"user:0").await.expect("GET with TTL");
    assert_eq!(with_ttl, Some((b("v"), None)));
    assert!(client.expire(b"user:0", 100).await.expect("EXPIRE"));
    let (_, ttl) = client
        .get_with_ttl(b"user:0")
        .await
        .expect("GET with TTL")
        .expect("present");
    assert_eq!(ttl, Some(100));
    assert!(client.del(b"user:0").await.expect("DEL"));
    assert!(!client.del(b"user:0").await.expect("DEL again"));
    assert!(!client.expire(b"user:0", 5).await.expect("EXPIRE missing"));
    assert_eq!(client.get(b"user:0").await.expect("GET"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_for_each_type_land_on_the_keys_node_and_read_back() {
    let nodes = spawn_cluster(3).await;
    let client = cluster_client(&nodes);
    let names: Vec<String> = (0..12).map(|i| format!("typed:{i}")).collect();
    for name in &names {
        let (h, l, s, z) = (
            format!("{name}:h"),
            format!("{name}:l"),
            format!("{name}:s"),
            format!("{name}:z"),
        );
        let (h, l, s, z) = (h.as_bytes(), l.as_bytes(), s.as_bytes(), z.as_bytes());
        within("typed calls", async {
            // Hashes.
            assert_eq!(
                client
                    .hset(h, &[(b"f1", b"v1"), (b"f2", b"v2")])
                    .await
                    .expect("HSET"),
                2
            );
            assert_eq!(
                client
                    .hset(h, &[(b"f1", b"v1b")])
                    .await
                    .expect("HSET update"),
                0
            );
            assert_eq!(client.hget(h, b"f1").await.expect("HGET"), Some(b("v1b")));
            assert_eq!(client.hget(h, b"nope").await.expect("HGET"), None);
            let mut all = client.hgetall(h).await.expect("HGETALL");
            all.sort();
            assert_eq!(all, vec![(b("f1"), b("v1b")), (b("f2"), b("v2"))]);
            assert_eq!(client.hlen(h).await.expect("HLEN"), 2);
            assert_eq!(client.hdel(h, &[b"f2", b"nope"]).await.expect("HDEL"), 1);
            // Lists.
            assert_eq!(client.lpush(l, &[b"a", b"b"]).await.expect("LPUSH"), 2);
            assert_eq!(client.rpush(l, &[b"c"]).await.expect("RPUSH"), 3);
            let all = client.lrange(l, 0, -1).await.expect("LRANGE");
            assert_eq!(all, vec![b("b"), b("a"), b("c")]);
            assert_eq!(
                client.lrange(l, -2, -1).await.expect("LRANGE"),
                vec![b("a"), b("c")]
            );
            assert_eq!(client.llen(l).await.expect("LLEN"), 3);
            assert_eq!(client.lpop(l).await.expect("LPOP"), Some(b("b")));
            assert_eq!(client.rpop(l).await.expect("RPOP"), Some(b("c")));
            // Sets.
            assert_eq!(client.sadd(s, &[b"x", b"y", b"x"]).await.expect("SADD"), 2);
            let mut members = client.smembers(s).await.expect("SMEMBERS");
            members.sort();
            assert_eq!(members, vec![b("x"), b("y")]);
            assert!(client.sismember(s, b"x").await.expect("SISMEMBER"));
            assert!(!client.sismember(s, b"w").await.expect("SISMEMBER"));
            assert_eq!(client.srem(s, &[b"y", b"w"]).await.expect("SREM"), 1);
            assert_eq!(client.scard(s).await.expect("SCARD"), 1);
            // Sorted sets: Redis's %.17g text of 1.1 reads back as 1.1.
            let scored: [(f64, &[u8]); 3] = [(1.1, b"a"), (-2.5, b"b"), (f64::INFINITY, b"c")];
            assert_eq!(client.zadd(z, &scored).await.expect("ZADD"), 3);
            assert_eq!(
                client.zadd(z, &[(3.0, b"a")]).await.expect("ZADD update"),
                0
            );
            assert_eq!(client.zscore(z, b"a").await.expect("ZSCORE"), Some(3.0));
            assert_eq!(client.zadd(z, &[(1.1, b"a")]).await.expect("ZADD back"), 0);
            assert_eq!(client.zscore(z, b"a").await.expect("ZSCORE"), Some(1.1));
            assert_eq!(client.zscore(z, b"nope").await.expect("ZSCORE"), None);
            let order = client.zrange(z, 0, -1).await.expect("ZRANGE");
            assert_eq!(order, vec![b("b"), b("a"), b("c")]);
            assert_eq!(
                client
                    .zrange_withscores(z, 0, 1)
                    .await
                    .expect("ZRANGE WITHSCORES"),
                vec![(b("b"), -2.5), (b("a"), 1.1)]
            );
            assert_eq!(client.zrem(z, &[b"c", b"nope"]).await.expect("ZREM"), 1);
            assert_eq!(client.zcard(z).await.expect("ZCARD"), 2);
        })
        .await;
        // Each key is on the server MD5 picks, with its type; the others have none of it.
        for (key, kind) in [(h, "hash"), (l, "list"), (s, "set"), (z, "zset")] {
            let home = node_for(key, 3);
            assert_eq!(client.index_for(key), home);
            for index in 0..3 {
                let want = if index == home { kind } else { "none" };
                let reply = client
                    .call(index, vec![b("TYPE"), Bytes::copy_from_slice(key)])
                    .await;
                assert_eq!(
                    reply.expect("TYPE"),
                    Reply::Simple(want.into()),
                    "{} on server {}",
                    String::from_utf8_lossy(key),
                    index + 1
                );
            }
        }
        // A command of the wrong type is the node's WRONGTYPE error; emptied keys are gone.
        let err = client.lpush(h, &[b"x"]).await.expect_err("LPUSH on a hash");
        assert!(
            matches!(&err, ClientError::Server(text) if text.starts_with("WRONGTYPE ")),
            "{err:?}"
        );
        assert_eq!(client.lpop(l).await.expect("LPOP"), Some(b("a")));
        assert_eq!(client.lpop(l).await.expect("LPOP empty"), None);
        assert_eq!(client.llen(l).await.expect("LLEN"), 0);
        assert_eq!(client.srem(s, &[b"x"]).await.expect("SREM"), 1);
        assert!(client.smembers(s).await.expect("SMEMBERS").is_empty());
        assert!(!client.del(l).await.expect("DEL emptied list"));
        assert!(!client.del(s).await.expect("DEL emptied set"));
    }

    // PUBLISH goes to the server a key named like the channel would: a subscriber there
    // receives the message.
    let channel = "typed:news";
    let home = client.index_for(channel.as_bytes());
    let mut sub = raw::connect(nodes[home].addr).await;
    raw::send(&mut sub, &raw::resp(&[b"SUBSCRIBE", channel.as_bytes()])).await;
    raw::expect_bytes(
        &mut sub,
        format!(
            "*3\r\n$9\r\nsubscribe\r\n${}\r\n{channel}\r\n:1\r\n",
            channel.len()
        )
        .as_bytes(),
    )
    .await;
    let receivers = within("PUBLISH", client.publish(channel.as_bytes(), b"hello"))
        .await
        .expect("PUBLISH");
    assert_eq!(receivers, 1);
    raw::expect_bytes(
        &mut sub,
        format!(
            "*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n$5\r\nhello\r\n",
            channel.len()
        )
        .as_bytes(),
    )
    .await;
    let nobody = client
        .publish(b"typed:nobody", b"x")
        .await
        .expect("PUBLISH");
    assert_eq!(nobody, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mset_and_mget_span_nodes_and_keep_order() {
    let nodes = spawn_cluster(3).await;
    let client = cluster_client(&nodes);
    let pairs: Vec<(String, String)> = (0..60)
        .map(|i| (format!("m:{i}"), format!("value-{i}")))
        .collect();
    let refs: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    client.mset(&refs).await.expect("MSET");
    for index in 0..3 {
        let want = pairs
            .iter()
            .filter(|(k, _)| node_for(k.as_bytes(), 3) == index)
            .count();
        assert!(want > 0);
        assert_eq!(
            dbsize(&client, index).await,
            want as i64,
            "server {}",
            index + 1
        );
    }
    // Interleave missing keys and reverse the order.
    let mut query: Vec<String> = Vec::new();
    for (k, _) in pairs.iter().rev() {
        query.push(k.clone());
        query.push(format!("{k}:missing"));
    }
    let query_refs: Vec<&[u8]> = query.iter().map(|k| k.as_bytes()).collect();
    let values = client.mget(&query_refs).await.expect("MGET");
    assert_eq!(values.len(), query.len());
    for (i, (k, v)) in pairs.iter().rev().enumerate() {
        assert_eq!(values[2 * i].as_deref(), Some(v.as_bytes()), "{k}");
        assert_eq!(values[2 * i + 1], None, "{k}:missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_tasks_lose_no_writes() {
    let nodes = spawn_cluster(3).await;
    let client = Arc::new(cluster_client(&nodes));
    const TASKS: usize = 50;
    const WRITES: usize = 200;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..WRITES {
                let key = format!("t{t}:k{i}");
                let value = format!("{t}-{i}");
                client
                    .set(key.as_bytes(), value.as_bytes(), None)
                    .await
                    .expect("concurrent SET");
                if i % 10 == 0 {
                    // A shared counter on one node: every increment must count.
                    let index = client.index_for(b"counter");
                    let reply = client
                        .call(index, vec![b("INCR"), b("counter")])
                        .await
                        .expect("INCR");
                    assert!(matches!(reply, Reply::Int(n) if n > 0), "{reply:?}");
                }
            }
        }));
    }
    for h in handles {
        within("a writer task", h)
            .await
            .expect("writer task did not panic");
    }
    let mut total = 0;
    for index in 0..3 {
        total += dbsize(&client, index).await;
    }
    assert_eq!(
        total,
        (TASKS * WRITES + 1) as i64,
        "every key arrived (plus the counter)"
    );
    let counter = client.get(b"counter").await.expect("GET counter");
    assert_eq!(counter, Some(b(&(TASKS * WRITES / 10).to_string())));
    // Every value is the last one written.
    for t in 0..TASKS {
        let keys: Vec<String> = (0..WRITES).map(|i| format!("t{t}:k{i}")).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let values = client.mget(&refs).await.expect("MGET");
        for (i, v) in values.iter().enumerate() {
            assert_eq!(
                v.as_deref(),
                Some(format!("{t}-{i}").as_bytes()),
                "t{t}:k{i}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_fails_after_three_retries_and_works_again_after_restart() {
    let mut nodes = spawn_cluster(3).await;
    let events: Arc<Mutex<Vec<RetryEvent>>> = Arc::default();
    let recorded = events.clone();
    let client = ClusterClient::new(client_config(&nodes))
        .on_retry(move |e| recorded.lock().expect("events lock").push(e));
    assert_eq!(client.policy().retries, 3);
    assert_eq!(client.policy().delay, Duration::from_millis(500));

    // A key on server 2 and one elsewhere; write both while everything is up.
    let victim = 1;
    let on_victim = (0..)
        .map(|i| format!("user:{i}"))
        .find(|k| node_for(k.as_bytes(), 3) == victim)
        .expect("some key maps to server 2");
    let elsewhere = (0..)
        .map(|i| format!("user:{i}"))
        .find(|k| node_for(k.as_bytes(), 3) != victim)
        .expect("some key maps elsewhere");
    client
        .set(on_victim.as_bytes(), b"Alice", None)
        .await
        .expect("SET before the stop");
    client
        .set(elsewhere.as_bytes(), b"Bob", None)
        .await
        .expect("SET elsewhere");

    // Stop server 2 gracefully (its final snapshot keeps the data).
    let stopped = nodes.remove(victim);
    let (port, id) = (stopped.port(), stopped.node.config.id);
    let dir = stopped.stop().await;

    let started = Instant::now();
    let err = within("the retries", client.get(on_victim.as_bytes()))
        .await
        .expect_err("the node is down");
    let elapsed = started.elapsed();
    match &err {
        ClientError::RetriesExhausted {
            server, retries, ..
        } => {
            assert_eq!((*server, *retries), (2, 3), "{err}");
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("Server 2 unavailable after 3 retries: connection refused by 127.0.0.1:{port}")
    );
    let seen = events.lock().expect("events lock").clone();
    assert_eq!(
        seen,
        (1..=3)
            .map(|attempt| RetryEvent {
                server: 2,
                attempt,
                of: 3
            })
            .collect::<Vec<_>>()
    );
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(10),
        "three retries 0.5 s apart took {elapsed:?}"
    );

    // The other servers are unaffected, with no retries.
    let got = client.get(elsewhere.as_bytes()).await.expect("other node");
    assert_eq!(got.as_deref(), Some(&b"Bob"[..]));
    assert_eq!(events.lock().expect("events lock").len(), 3);

    // Restart server 2 on the same port with the same data directory.
    let restarted = spawn_node_in(dir, |c| {
        c.id = id;
        c.port = port;
    })
    .await;
    assert_eq!(restarted.port(), port);
    assert_eq!(restarted.restored, 1);
    let got = within("GET after restart", client.get(on_victim.as_bytes()))
        .await
        .expect("works again after the restart");
    assert_eq!(got.as_deref(), Some(&b"Alice"[..]));
    assert_eq!(
        events.lock().expect("events lock").len(),
        3,
        "a restarted node answers at once: no retry"
    );
    client
        .set(on_victim.as_bytes(), b"Alice2", None)
        .await
        .expect("SET after restart");
    nodes.insert(victim, restarted);
}

#[tokio::test]
async fn a_node_that_never_answers_times_out_and_is_retried() {
    // A listener that never accepts: connections complete in the kernel backlog, requests
    // are never read, so every attempt can only end by the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let events = Arc::new(Mutex::new(Vec::new()));
    let recorded = events.clone();
    let mut config = minikv::ClientConfig {
        servers: vec![addr.clone()],
        ..minikv::ClientConfig::default()
    };
    config.retry.timeout = Duration::from_millis(100);
    config.retry.delay = Duration::from_millis(10);
    config.retry.retries = 2;
    let client = ClusterClient::new(config).on_retry(move |e| {
        recorded.lock().expect("events lock").push(e.attempt);
    });
    let err = within("timeouts", client.get(b"k"))
        .await
        .expect_err("nobody answers");
    match err {
        ClientError::RetriesExhausted {
            server: 1,
            retries: 2,
            last,
        } => assert!(
            matches!(
                *last,
                ClientError::Timeout { addr: ref a, after } if *a == addr
                    && after == Duration::from_millis(100)
            ),
            "{last:?}"
        ),
        other => panic!("expected RetriesExhausted after timeouts, got {other:?}"),
    }
    assert_eq!(*events.lock().expect("events lock"), vec![1, 2]);
    drop(silent);
}

#[tokio::test]
async fn error_replies_are_not_retried() {
    let nodes = spawn_cluster(1).await;
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let client = ClusterClient::new(client_config(&nodes))
        .on_retry(move |_| *counter.lock().expect("lock") += 1);
    let reply = client
        .call(0, vec![b("NOSUCHCOMMAND")])
        .await
        .expect("an error reply is a reply");
    assert!(
        matches!(&reply, Reply::Error(e) if e.starts_with("ERR unknown command 'NOSUCHCOMMAND'")),
        "{reply:?}"
    );
    let err = client
        .expire(b"k", i64::MAX)
        .await
        .expect_err("an error reply becomes an error");
    assert!(matches!(err, ClientError::Server(_)), "{err:?}");
    assert_eq!(*calls.lock().expect("lock"), 0);
    assert!(matches!(
        client.call(5, vec![b("PING")]).await,
        Err(ClientError::NoSuchServer(6))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_cluster_is_routed_as_the_spec_says_after_one_topology_query() {
    // Today's nodes (no `--cluster`) refuse CLUSTER SHARDS: the client asks once, then routes
    // key by key with MD5 to server i for shard i, and STATS counts only its user's requests.
    let nodes = spawn_cluster(3).await;
    let client = cluster_client(&nodes);
    let keys: Vec<String> = (0..30).map(|i| format!("plain:{i}")).collect();
    for key in &keys {
        client
            .set(key.as_bytes(), b"v", None)
            .await
            .expect("SET through the cluster client");
    }
    assert!(!client.replicated().await);
    assert_eq!(
        client.topology().await,
        None,
        "a plain cluster is not asked again"
    );
    for shard in 0..3 {
        assert_eq!(client.leader_of(shard), shard);
        let want = keys
            .iter()
            .filter(|k| node_for(k.as_bytes(), 3) == shard)
            .count() as i64;
        let stats = client.stats(shard).await.expect("STATS");
        assert_eq!(
            (stats.total_requests, stats.set, stats.total_keys),
            (want, want, want),
            "server {}: the one CLUSTER SHARDS query is left out",
            shard + 1
        );
        let (server, listed) = client.shard_keys(shard, b"*").await.expect("KEYS");
        assert_eq!((server, listed.len() as i64), (shard, want));
    }
}
