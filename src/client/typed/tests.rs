use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::client::fake::{Answer, FakeNode};
use crate::client::router::node_for;
use crate::client::ClientConfig;

fn raw(text: impl Into<String>) -> Answer {
    Answer::Raw(text.into().into_bytes())
}

/// A plain node (no cluster support), answering each command line from `replies` (the words
/// joined by spaces), `-ERR unexpected` to anything else.
async fn plain_node(replies: &'static [(&'static str, &'static str)]) -> FakeNode {
    FakeNode::start(move |words| {
        if words[0].eq_ignore_ascii_case("CLUSTER") {
            return raw("-ERR This instance has cluster support disabled\r\n");
        }
        let line = words.join(" ");
        match replies.iter().find(|(command, _)| *command == line) {
            Some((_, reply)) => raw(*reply),
            None => raw(format!("-ERR unexpected {line}\r\n")),
        }
    })
    .await
}

/// A client for the fake nodes on `ports`, with short pauses.
fn client_for(ports: &[u16]) -> ClusterClient {
    let mut config = ClientConfig {
        servers: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        ..ClientConfig::default()
    };
    config.retry.delay = Duration::from_millis(10);
    config.retry.timeout = Duration::from_secs(2);
    ClusterClient::new(config)
}

/// The commands `node` received, less the topology query, as lines.
fn lines(node: &FakeNode) -> Vec<String> {
    node.seen
        .lock()
        .expect("log lock")
        .iter()
        .filter(|w| w[0] != "CLUSTER")
        .map(|w| w.join(" "))
        .collect()
}

fn bytes(items: &[&str]) -> Vec<Bytes> {
    items
        .iter()
        .map(|i| Bytes::copy_from_slice(i.as_bytes()))
        .collect()
}

#[tokio::test]
async fn hash_calls_send_redis_commands_and_read_their_replies() {
    static REPLIES: &[(&str, &str)] = &[
        ("HSET h f1 v1 f2 v2", ":2\r\n"),
        ("HGET h f1", "$2\r\nv1\r\n"),
        ("HGET h nope", "$-1\r\n"),
        (
            "HGETALL h",
            "*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n",
        ),
        ("HGETALL missing", "*0\r\n"),
        ("HDEL h f2 nope", ":1\r\n"),
        ("HLEN h", ":1\r\n"),
        (
            "HSET s f v",
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
    ];
    let node = plain_node(REPLIES).await;
    let client = client_for(&[node.port]);
    assert_eq!(
        client
            .hset(b"h", &[(b"f1", b"v1"), (b"f2", b"v2")])
            .await
            .expect("HSET"),
        2
    );
    assert_eq!(
        client.hget(b"h", b"f1").await.expect("HGET"),
        Some(Bytes::from("v1"))
    );
    assert_eq!(client.hget(b"h", b"nope").await.expect("HGET"), None);
    assert_eq!(
        client.hgetall(b"h").await.expect("HGETALL"),
        vec![
            (Bytes::from("f1"), Bytes::from("v1")),
            (Bytes::from("f2"), Bytes::from("v2"))
        ]
    );
    assert_eq!(client.hgetall(b"missing").await.expect("HGETALL"), vec![]);
    assert_eq!(client.hdel(b"h", &[b"f2", b"nope"]).await.expect("HDEL"), 1);
    assert_eq!(client.hlen(b"h").await.expect("HLEN"), 1);
    let err = client
        .hset(b"s", &[(b"f", b"v")])
        .await
        .expect_err("WRONGTYPE");
    assert!(
        matches!(&err, ClientError::Server(text) if text.starts_with("WRONGTYPE ")),
        "{err:?}"
    );
    let sent: Vec<&str> = REPLIES.iter().map(|(command, _)| *command).collect();
    assert_eq!(lines(&node), sent);
}

#[tokio::test]
async fn list_calls_send_redis_commands_and_read_their_replies() {
    static REPLIES: &[(&str, &str)] = &[
        ("LPUSH l a b", ":2\r\n"),
        ("RPUSH l c", ":3\r\n"),
        ("LRANGE l 0 -1", "*3\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nc\r\n"),
        ("LRANGE l -100 -50", "*0\r\n"),
        ("LPOP l", "$1\r\nb\r\n"),
        ("RPOP l", "$1\r\nc\r\n"),
        ("LPOP missing", "$-1\r\n"),
        ("RPOP missing", "$-1\r\n"),
        ("LLEN l", ":1\r\n"),
    ];
    let node = plain_node(REPLIES).await;
    let client = client_for(&[node.port]);
    assert_eq!(client.lpush(b"l", &[b"a", b"b"]).await.expect("LPUSH"), 2);
    assert_eq!(client.rpush(b"l", &[b"c"]).await.expect("RPUSH"), 3);
    assert_eq!(
        client.lrange(b"l", 0, -1).await.expect("LRANGE"),
        bytes(&["b", "a", "c"])
    );
    assert_eq!(
        client.lrange(b"l", -100, -50).await.expect("LRANGE"),
        bytes(&[])
    );
    assert_eq!(
        client.lpop(b"l").await.expect("LPOP"),
        Some(Bytes::from("b"))
    );
    assert_eq!(
        client.rpop(b"l").await.expect("RPOP"),
        Some(Bytes::from("c"))
    );
    assert_eq!(client.lpop(b"missing").await.expect("LPOP"), None);
    assert_eq!(client.rpop(b"missing").await.expect("RPOP"), None);
    assert_eq!(client.llen(b"l").await.expect("LLEN"), 1);
    let sent: Vec<&str> = REPLIES.iter().map(|(command, _)| *command).collect();
    assert_eq!(lines(&node), sent);
}

#[tokio::test]
async fn set_calls_send_redis_commands_and_read_their_replies() {
    static REPLIES: &[(&str, &str)] = &[
        ("SADD s x y x", ":2\r\n"),
        ("SREM s y nope", ":1\r\n"),
        ("SMEMBERS s", "*1\r\n$1\r\nx\r\n"),
        ("SISMEMBER s x", ":1\r\n"),
        ("SISMEMBER s y", ":0\r\n"),
        ("SCARD s", ":1\r\n"),
        ("SCARD bad", ":-1\r\n"),
    ];
    let node = plain_node(REPLIES).await;
    let client = client_for(&[node.port]);
    assert_eq!(
        client.sadd(b"s", &[b"x", b"y", b"x"]).await.expect("SADD"),
        2
    );
    assert_eq!(client.srem(b"s", &[b"y", b"nope"]).await.expect("SREM"), 1);
    assert_eq!(
        client.smembers(b"s").await.expect("SMEMBERS"),
        bytes(&["x"])
    );
    assert!(client.sismember(b"s", b"x").await.expect("SISMEMBER"));
    assert!(!client.sismember(b"s", b"y").await.expect("SISMEMBER"));
    assert_eq!(client.scard(b"s").await.expect("SCARD"), 1);
    // A count can never be negative: a node that says so is not believed.
    let err = client.scard(b"bad").await.expect_err("negative count");
    assert_eq!(err.to_string(), "unexpected reply: the negative count -1");
    let sent: Vec<&str> = REPLIES.iter().map(|(command, _)| *command).collect();
    assert_eq!(lines(&node), sent);
}

#[tokio::test]
async fn sorted_set_calls_send_redis_commands_and_read_their_replies() {
    static REPLIES: &[(&str, &str)] = &[
        ("ZADD z 1.1 a -2.5 b inf c -inf d 1e300 e", ":5\r\n"),
        ("ZSCORE z a", "$18\r\n1.1000000000000001\r\n"),
        ("ZSCORE z c", "$3\r\ninf\r\n"),
        ("ZSCORE z nope", "$-1\r\n"),
        ("ZSCORE z bad", "$3\r\nabc\r\n"),
        ("ZRANGE z 0 1", "*2\r\n$1\r\nd\r\n$1\r\nb\r\n"),
        (
            "ZRANGE z 0 -1 WITHSCORES",
            "*6\r\n$1\r\nd\r\n$4\r\n-inf\r\n$1\r\nb\r\n$4\r\n-2.5\r\n$1\r\na\r\n$18\r\n1.1000000000000001\r\n",
        ),
        ("ZRANGE odd 0 -1 WITHSCORES", "*1\r\n$1\r\nd\r\n"),
        ("ZREM z b nope", ":1\r\n"),
        ("ZCARD z", ":4\r\n"),
    ];
    let node = plain_node(REPLIES).await;
    let client = client_for(&[node.port]);
    let members: [(f64, &[u8]); 5] = [
        (1.1, b"a"),
        (-2.5, b"b"),
        (f64::INFINITY, b"c"),
        (f64::NEG_INFINITY, b"d"),
        (1e300, b"e"),
    ];
    assert_eq!(client.zadd(b"z", &members).await.expect("ZADD"), 5);
    assert_eq!(client.zscore(b"z", b"a").await.expect("ZSCORE"), Some(1.1));
    assert_eq!(
        client.zscore(b"z", b"c").await.expect("ZSCORE"),
        Some(f64::INFINITY)
    );
    assert_eq!(client.zscore(b"z", b"nope").await.expect("ZSCORE"), None);
    let err = client.zscore(b"z", b"bad").await.expect_err("not a number");
    assert_eq!(
        err.to_string(),
        "unexpected reply: the score \"abc\", not a number"
    );
    assert_eq!(
        client.zrange(b"z", 0, 1).await.expect("ZRANGE"),
        bytes(&["d", "b"])
    );
    assert_eq!(
        client
            .zrange_withscores(b"z", 0, -1)
            .await
            .expect("ZRANGE WITHSCORES"),
        vec![
            (Bytes::from("d"), f64::NEG_INFINITY),
            (Bytes::from("b"), -2.5),
            (Bytes::from("a"), 1.1),
        ]
    );
    let err = client
        .zrange_withscores(b"odd", 0, -1)
        .await
        .expect_err("odd array");
    assert_eq!(
        err.to_string(),
        "unexpected reply: an array of 1 items, not pairs"
    );
    assert_eq!(client.zrem(b"z", &[b"b", b"nope"]).await.expect("ZREM"), 1);
    assert_eq!(client.zcard(b"z").await.expect("ZCARD"), 4);
    let sent: Vec<&str> = REPLIES.iter().map(|(command, _)| *command).collect();
    assert_eq!(lines(&node), sent);
}

#[tokio::test]
async fn keys_and_channels_go_to_the_server_md5_picks() {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(
            FakeNode::start(|words| match words[0].as_str() {
                "CLUSTER" => raw("-ERR This instance has cluster support disabled\r\n"),
                "PUBLISH" | "HSET" | "LPUSH" | "SADD" | "ZADD" => raw(":1\r\n"),
                _ => raw("*0\r\n"),
            })
            .await,
        );
    }
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let client = client_for(&ports);
    let names: Vec<String> = (0..12).map(|i| format!("name:{i}")).collect();
    for name in &names {
        let key = name.as_bytes();
        client.hset(key, &[(b"f", b"v")]).await.expect("HSET");
        client.lpush(key, &[b"v"]).await.expect("LPUSH");
        client.sadd(key, &[b"v"]).await.expect("SADD");
        client.zadd(key, &[(1.0, b"v")]).await.expect("ZADD");
        client.smembers(key).await.expect("SMEMBERS");
        client.publish(key, b"hello").await.expect("PUBLISH");
    }
    for (index, node) in nodes.iter().enumerate() {
        let want: Vec<String> = names
            .iter()
            .filter(|n| node_for(n.as_bytes(), 3) == index)
            .flat_map(|n| {
                [
                    format!("HSET {n} f v"),
                    format!("LPUSH {n} v"),
                    format!("SADD {n} v"),
                    format!("ZADD {n} 1.0 v"),
                    format!("SMEMBERS {n}"),
                    format!("PUBLISH {n} hello"),
                ]
            })
            .collect();
        assert_eq!(lines(node), want, "server {}", index + 1);
    }
}

#[tokio::test]
async fn a_lost_reply_resends_set_like_writes_but_never_pushes_pops_or_publish() {
    // The connection closes on the first of each command, and on every later one of those
    // that must not run twice.
    let counts: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = counts.clone();
    let node = FakeNode::start(move |words| {
        let name = words[0].to_ascii_uppercase();
        if name == "CLUSTER" {
            return raw("-ERR This instance has cluster support disabled\r\n");
        }
        let mut seen = seen.lock().expect("count lock");
        let first = !seen.contains(&name);
        seen.push(name.clone());
        match name.as_str() {
            "LPUSH" | "RPUSH" | "LPOP" | "RPOP" | "PUBLISH" => Answer::Close,
            _ if first => Answer::Close,
            "HDEL" | "HSET" | "SADD" | "SREM" | "ZADD" | "ZREM" => raw(":0\r\n"),
            _ => raw("-ERR unexpected\r\n"),
        }
    })
    .await;
    let client = client_for(&[node.port]);

    // Sent again (by the pool, on a fresh connection): the repeat's count is what comes back.
    assert_eq!(client.hset(b"h", &[(b"f", b"v")]).await.expect("HSET"), 0);
    assert_eq!(client.hdel(b"h", &[b"f"]).await.expect("HDEL"), 0);
    assert_eq!(client.sadd(b"s", &[b"m"]).await.expect("SADD"), 0);
    assert_eq!(client.srem(b"s", &[b"m"]).await.expect("SREM"), 0);
    assert_eq!(client.zadd(b"z", &[(1.0, b"m")]).await.expect("ZADD"), 0);
    assert_eq!(client.zrem(b"z", &[b"m"]).await.expect("ZREM"), 0);
    for name in ["HSET", "HDEL", "SADD", "SREM", "ZADD", "ZREM"] {
        assert_eq!(node.count(name), 2, "{name} sent again once");
    }

    let outcome_unknown = |result: Result<(), ClientError>, what: &str| {
        let err = result.expect_err(what);
        assert!(
            matches!(err, ClientError::OutcomeUnknown { .. }),
            "{what}: {err:?}"
        );
    };
    outcome_unknown(client.lpush(b"l", &[b"a"]).await.map(drop), "LPUSH");
    outcome_unknown(client.rpush(b"l", &[b"a"]).await.map(drop), "RPUSH");
    outcome_unknown(client.lpop(b"l").await.map(drop), "LPOP");
    outcome_unknown(client.rpop(b"l").await.map(drop), "RPOP");
    outcome_unknown(client.publish(b"c", b"m").await.map(drop), "PUBLISH");
    for name in ["LPUSH", "RPUSH", "LPOP", "RPOP", "PUBLISH"] {
        assert_eq!(node.count(name), 1, "{name} never sent twice");
    }
}

#[test]
fn scores_travel_as_their_shortest_exact_text() {
    let cases: [(f64, &str); 8] = [
        (1.1, "1.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-2.0, "-2.0"),
        (1e300, "1e300"),
        (5e-324, "5e-324"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (f64::NAN, "NaN"),
    ];
    for (value, text) in cases {
        assert_eq!(score_arg(value), Bytes::from(text), "{value}");
        if value.is_finite() {
            assert_eq!(
                text.parse::<f64>().ok(),
                Some(value),
                "{text} reads back exactly"
            );
        }
    }
}

#[test]
fn resp3_shapes_read_as_resp2_ones() {
    let m = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
    // HGETALL: a map, or a flat array.
    let map = Reply::Map(vec![(m("f"), m("v"))]);
    let flat = Reply::Array(vec![m("f"), m("v")]);
    for reply in [map, flat] {
        assert_eq!(pairs(reply).expect("pairs"), vec![(m("f"), m("v"))]);
    }
    // ZRANGE WITHSCORES: pairs of member and double, or a flat array of texts.
    let nested = Reply::Array(vec![
        Reply::Array(vec![m("a"), Reply::Double(1.5)]),
        Reply::Array(vec![m("b"), Reply::Double(f64::INFINITY)]),
    ]);
    let got: Vec<(Bytes, f64)> = pairs(nested)
        .expect("pairs")
        .into_iter()
        .map(|(member, s)| (bulk(member).expect("member"), score(s).expect("score")))
        .collect();
    assert_eq!(
        got,
        vec![(Bytes::from("a"), 1.5), (Bytes::from("b"), f64::INFINITY)]
    );
    // SMEMBERS: a set; SISMEMBER: a boolean.
    assert_eq!(
        bulks(Reply::Set(vec![m("x")])).expect("set"),
        vec![Bytes::from("x")]
    );
    assert!(flag(Reply::Bool(true)).expect("bool"));
    assert!(!flag(Reply::Int(0)).expect("int"));
    assert!(flag(Reply::Int(2)).is_err());
    assert!(bulks(Reply::Int(2)).is_err());
}
