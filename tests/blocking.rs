//! Blocking commands under concurrency, through real connections to a node: clients blocked
//! on one list served in arrival order, every pushed element delivered exactly once under
//! concurrent producers and consumers, disconnects and CLIENT UNBLOCK while blocked, BLMOVE
//! chains, sorted sets, pipelined input after a blocked command, MULTI (never blocks).
//! Replies are compared as raw RESP (their texts checked against redis-server 7.0).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::raw::{connect, frame_len, resp_from, send};
use common::{spawn_node, wait_until, within, TestNode, WAIT};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A raw RESP connection: commands out, whole reply frames in.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn open(node: &TestNode) -> Client {
        Client {
            stream: connect(node.addr).await,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, args: &[&str]) {
        send(&mut self.stream, &resp_from(args)).await;
    }

    /// The next reply frame, as text.
    async fn reply(&mut self) -> String {
        within("a reply", async {
            loop {
                if let Some(n) = frame_len(&self.buf, 0) {
                    let frame: Vec<u8> = self.buf.drain(..n).collect();
                    return String::from_utf8_lossy(&frame).into_owned();
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "the node closed the connection");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
    }

    async fn call(&mut self, args: &[&str]) -> String {
        self.send(args).await;
        self.reply().await
    }

    /// Whether a reply is waiting (without waiting for one beyond `for_ms`).
    async fn has_reply(&mut self, for_ms: u64) -> bool {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(for_ms), self.stream.read(&mut chunk))
            .await
        {
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n > 0
            }
            _ => !self.buf.is_empty(),
        }
    }
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

fn pair(key: &str, item: &str) -> String {
    format!("*2\r\n{}{}", bulk(key), bulk(item))
}

/// `blocked_clients` from INFO clients.
async fn blocked(admin: &mut Client) -> usize {
    let info = admin.call(&["INFO", "clients"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("blocked_clients in INFO")
}

async fn wait_blocked(admin: &mut Client, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if blocked(admin).await == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {n} blocked clients"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_clients_are_served_in_arrival_order_by_one_push() {
    let node = spawn_node(|_| {}).await;
    let mut admin = Client::open(&node).await;
    let mut waiters = Vec::new();
    for i in 0..20 {
        let mut c = Client::open(&node).await;
        c.send(&["BLPOP", "other", "q", "0"]).await;
        wait_blocked(&mut admin, i + 1).await;
        waiters.push(c);
    }
    let list = admin.call(&["CLIENT", "LIST"]).await;
    assert_eq!(list.matches("flags=b").count(), 20, "{list}");
    let items: Vec<String> = (0..25).map(|i| format!("item{i}")).collect();
    let mut push = vec!["RPUSH", "q"];
    push.extend(items.iter().map(String::as_str));
    // Redis answers the list's length after the push, before the waiters take their items.
    assert_eq!(admin.call(&push).await, ":25\r\n");
    for (i, c) in waiters.iter_mut().enumerate() {
        assert_eq!(c.reply().await, pair("q", &items[i]), "waiter {i}");
    }
    assert_eq!(blocked(&mut admin).await, 0);
    // The pops happened inside the push: nothing else ran in between.
    assert_eq!(admin.call(&["LLEN", "q"]).await, ":5\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_and_consumers_deliver_every_element_exactly_once() {
    let node = spawn_node(|_| {}).await;
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 300;
    const CONSUMERS: usize = 8;
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let mut c = Client::open(&node).await;
        consumers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let reply = c.call(&["BRPOP", "jobs", "1"]).await;
                if reply == "*-1\r\n" {
                    return got;
                }
                got.push(reply);
            }
        }));
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let mut c = Client::open(&node).await;
        producers.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                let item = format!("{p}:{i}");
                let reply = c.call(&["LPUSH", "jobs", &item]).await;
                assert!(reply.starts_with(':'), "{reply}");
            }
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in consumers {
        for reply in c.await.expect("consumer") {
            *seen.entry(reply).or_default() += 1;
        }
    }
    assert_eq!(
        seen.len(),
        PRODUCERS * PER_PRODUCER,
        "every element arrived"
    );
    assert!(seen.values().all(|n| *n == 1), "each exactly once");
    for p in 0..PRODUCERS {
        for i in 0..PER_PRODUCER {
            assert!(seen.contains_key(&pair("jobs", &format!("{p}:{i}"))));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_while_blocked_takes_nothing_and_unblock_ends_a_wait() {
    let node = spawn_node(|_| {}).await;
    let mut admin = Client::open(&node).await;
    let mut gone = Client::open(&node).await;
    gone.send(&["BLPOP", "k", "0"]).await;
    wait_blocked(&mut admin, 1).await;
    drop(gone);
    wait_blocked(&mut admin, 0).await;
    assert_eq!(admin.call(&["RPUSH", "k", "kept"]).await, ":1\r\n");
    assert_eq!(admin.call(&["LLEN", "k"]).await, ":1\r\n");

    let mut a = Client::open(&node).await;
    let id = a.call(&["CLIENT", "ID"]).await;
    let id = id.trim_start_matches(':').trim().to_string();
    a.send(&["BLPOP", "empty", "0"]).await;
    wait_blocked(&mut admin, 1).await;
    assert_eq!(admin.call(&["CLIENT", "UNBLOCK", &id]).await, ":1\r\n");
    assert_eq!(a.reply().await, "*-1\r\n");
    assert_eq!(admin.call(&["CLIENT", "UNBLOCK", &id]).await, ":0\r\n");
    a.send(&["BZPOPMIN", "emptyz", "0"]).await;
    wait_blocked(&mut admin, 1).await;
    assert_eq!(
        admin.call(&["CLIENT", "UNBLOCK", &id, "ERROR"]).await,
        ":1\r\n"
    );
    assert_eq!(
        a.reply().await,
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    assert_eq!(
        a.call(&["PING"]).await,
        "+PONG\r\n",
        "the connection goes on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_multi_and_pipelined_input_behave_as_in_redis() {
    let node = spawn_node(|_| {}).await;
    let mut admin = Client::open(&node).await;
    let mut a = Client::open(&node).await;
    assert_eq!(a.call(&["BLPOP", "k", "0.05"]).await, "*-1\r\n");
    // Redis 7.0 answers a null *array* for BLMOVE too.
    assert_eq!(
        a.call(&["BLMOVE", "k", "d", "LEFT", "LEFT", "0.05"]).await,
        "*-1\r\n"
    );
    assert_eq!(a.call(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(a.call(&["BLPOP", "k", "0"]).await, "+QUEUED\r\n");
    assert_eq!(
        a.call(&["EXEC"]).await,
        "*1\r\n*-1\r\n",
        "MULTI never blocks"
    );
    // A command pipelined after a blocked one waits for it.
    let mut input = resp_from(&["BLPOP", "k", "0"]);
    input.extend(resp_from(&["PING"]));
    send(&mut a.stream, &input).await;
    wait_blocked(&mut admin, 1).await;
    assert!(!a.has_reply(100).await, "nothing answered while blocked");
    assert_eq!(admin.call(&["LPUSH", "k", "v"]).await, ":1\r\n");
    assert_eq!(a.reply().await, pair("k", "v"));
    assert_eq!(a.reply().await, "+PONG\r\n");
    // Errors come before blocking, in Redis's words.
    assert_eq!(
        a.call(&["BLPOP", "k", "-1"]).await,
        "-ERR timeout is negative\r\n"
    );
    assert_eq!(
        a.call(&["BLPOP", "k", "x"]).await,
        "-ERR timeout is not a float or out of range\r\n"
    );
    assert_eq!(
        a.call(&["CLIENT", "UNBLOCK", "1", "2", "3"]).await,
        "-ERR unknown subcommand or wrong number of arguments for 'UNBLOCK'. Try CLIENT \
         HELP.\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blmove_chains_and_sorted_set_waiters_are_served() {
    let node = spawn_node(|_| {}).await;
    let mut admin = Client::open(&node).await;
    let mut first = Client::open(&node).await;
    let mut second = Client::open(&node).await;
    first
        .send(&["BLMOVE", "a", "b", "RIGHT", "LEFT", "0"])
        .await;
    wait_blocked(&mut admin, 1).await;
    second.send(&["BRPOPLPUSH", "b", "c", "0"]).await;
    wait_blocked(&mut admin, 2).await;
    assert_eq!(admin.call(&["RPUSH", "a", "x"]).await, ":1\r\n");
    assert_eq!(first.reply().await, bulk("x"));
    assert_eq!(second.reply().await, bulk("x"));
    wait_until("x reaches c", WAIT, || async {
        Client::open(&node)
            .await
            .call(&["LRANGE", "c", "0", "-1"])
            .await
            == format!("*1\r\n{}", bulk("x"))
    })
    .await;
    assert_eq!(admin.call(&["EXISTS", "a", "b"]).await, ":0\r\n");

    let mut z = Client::open(&node).await;
    z.send(&["BZPOPMIN", "z", "0"]).await;
    wait_blocked(&mut admin, 1).await;
    assert_eq!(
        admin.call(&["ZADD", "z", "2", "two", "1", "one"]).await,
        ":2\r\n"
    );
    assert_eq!(
        z.reply().await,
        format!("*3\r\n{}{}{}", bulk("z"), bulk("one"), bulk("1"))
    );
    let mut m = Client::open(&node).await;
    m.send(&["BLMPOP", "0", "2", "l1", "l2", "RIGHT", "COUNT", "2"])
        .await;
    wait_blocked(&mut admin, 1).await;
    assert_eq!(admin.call(&["RPUSH", "l2", "p", "q", "r"]).await, ":3\r\n");
    assert_eq!(
        m.reply().await,
        format!("*2\r\n{}*2\r\n{}{}", bulk("l2"), bulk("r"), bulk("q"))
    );
}
