//! Issue 3 behaviours that need several connections or are specific to a node, so the
//! differential test against redis-server cannot cover them: MULTI/EXEC atomicity and WATCH
//! across clients, CLIENT LIST/KILL/REPLY, RESET, MONITOR, DEBUG, SLOWLOG, databases and the
//! snapshot, the SCAN guarantee under concurrent writes, the JSON protocol's generic form,
//! HELLO/AUTH, INFO, SAVE/BGSAVE/LASTSAVE, TIME and WAIT.
//!
//! Expected raw bytes were checked against a real redis-server 7.0 wherever they are exact.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw::{connect, read_to_eof, resp_from, send, JsonConn};
use common::redis_rs::aio::{q, qerr};
use common::redis_rs::{info_field, multiplexed, parse_info};
use common::snapshot::{read_snapshot_if_written, snapshot_entries};
use common::{spawn_node, spawn_node_in, wait_until, within, Deadline, TestNode, WAIT};
use redis::aio::MultiplexedConnection;
use redis::Value;
use redis_protocol::resp3::types::OwnedFrame;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn unix_secs() -> i64 {
    minikv::store::clock::unix_ms() / 1000
}

/// One `CLIENT LIST`/`CLIENT INFO` line as a field map.
fn client_fields(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every line of a `CLIENT LIST` reply, keyed by client id.
fn client_list(text: &str) -> HashMap<u64, HashMap<String, String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let fields = client_fields(l);
            let id = fields["id"].parse().expect("numeric client id");
            (id, fields)
        })
        .collect()
}

/// The `addr=` of the connection `con`, as the node sees it.
async fn addr_of(con: &mut MultiplexedConnection) -> String {
    let info: String = q(con, &["CLIENT", "INFO"]).await;
    client_fields(&info)["addr"].clone()
}

/// A raw RESP connection with a read buffer, for exact bytes, MONITOR lines and RESP3 frames.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn open(node: &TestNode) -> Raw {
        Raw {
            stream: connect(node.addr).await,
            buf: Vec::new(),
        }
    }

    /// This connection's address as the node sees it (`addr=` in CLIENT LIST).
    fn addr(&self) -> String {
        self.stream.local_addr().expect("local address").to_string()
    }

    /// Sends the commands as RESP arrays in one write.
    async fn send(&mut self, commands: &[&[&str]]) {
        let out: Vec<u8> = commands.iter().flat_map(|args| resp_from(args)).collect();
        send(&mut self.stream, &out).await;
    }

    /// Reads more bytes into the buffer; fails if the node closed the connection.
    async fn fill(&mut self, what: &str) {
        let mut chunk = [0u8; 4096];
        let n = within(what, self.stream.read(&mut chunk))
            .await
            .expect("read from the node");
        assert!(
            n > 0,
            "the node closed the connection while waiting for {what}; buffered {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next bytes must be exactly `expected`.
    async fn expect(&mut self, expected: &str) {
        while self.buf.len() < expected.len() {
            self.fill(expected).await;
        }
        let got: Vec<u8> = self.buf.drain(..expected.len()).collect();
        assert_eq!(String::from_utf8_lossy(&got), expected, "raw reply");
    }

    /// The next `\r\n`-terminated line, without the terminator.
    async fn line(&mut self) -> String {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return String::from_utf8(line[..pos].to_vec()).expect("UTF-8 reply line");
            }
            self.fill("a reply line").await;
        }
    }

    /// Sends one command and returns its one-line reply (`:5`, `+OK`, `-ERR ...`).
    async fn call_line(&mut self, args: &[&str]) -> String {
        self.send(&[args]).await;
        self.line().await
    }

    /// The next complete RESP3 frame.
    async fn frame(&mut self) -> OwnedFrame {
        loop {
            match redis_protocol::resp3::decode::complete::decode(&self.buf) {
                Ok(Some((frame, used))) => {
                    self.buf.drain(..used);
                    return frame;
                }
                Ok(None) => {}
                Err(e) => panic!("invalid RESP3 from the node: {e:?} in {:?}", self.buf),
            }
            self.fill("a RESP3 frame").await;
        }
    }

    /// The node closes the connection with nothing more sent.
    async fn expect_closed(&mut self) {
        assert!(self.buf.is_empty(), "unread bytes {:?}", self.buf);
        let rest = read_to_eof(&mut self.stream).await;
        assert!(
            rest.is_empty(),
            "expected EOF, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_is_atomic_with_respect_to_other_clients() {
    const ROUNDS: i64 = 400;
    const PAD: usize = 10;
    let node = spawn_node(|_| {}).await;
    let mut writer = multiplexed(&node.redis_url()).await;
    let mut reader = multiplexed(&node.redis_url()).await;
    let done = Arc::new(AtomicBool::new(false));
    let reads = tokio::spawn({
        let done = done.clone();
        async move {
            let mut reads = 0u64;
            loop {
                // Read once more after the writer finished, so the final state is checked too.
                let finished = done.load(Ordering::Acquire);
                let (a, b): (Option<i64>, Option<i64>) = q(&mut reader, &["MGET", "a", "b"]).await;
                assert_eq!(a, b, "MGET saw half a transaction after {reads} reads");
                reads += 1;
                if finished {
                    assert_eq!(a, Some(ROUNDS));
                    return reads;
                }
            }
        }
    });
    for i in 1..=ROUNDS {
        // INCR a, then PAD appends (widening the window a non-atomic EXEC would leave), INCR b.
        let replies: Vec<i64> = if i % 2 == 0 {
            // One round trip per command: the transaction is queued over several reads.
            let () = q(&mut writer, &["MULTI"]).await;
            let mut queue = vec![&["INCR", "a"][..]];
            queue.extend(std::iter::repeat_n(&["APPEND", "pad", "x"][..], PAD));
            queue.push(&["INCR", "b"]);
            for args in queue {
                let queued: String = q(&mut writer, args).await;
                assert_eq!(queued, "QUEUED");
            }
            q(&mut writer, &["EXEC"]).await
        } else {
            // MULTI ... EXEC pipelined in one write.
            let mut pipe = redis::pipe();
            pipe.atomic().incr("a", 1);
            for _ in 0..PAD {
                pipe.append("pad", "x");
            }
            pipe.incr("b", 1)
                .query_async(&mut writer)
                .await
                .expect("atomic pipeline")
        };
        let pad_len = (i - 1) * PAD as i64;
        let mut want = vec![i];
        want.extend((1..=PAD as i64).map(|n| pad_len + n));
        want.push(i);
        assert_eq!(replies, want, "round {i}");
    }
    done.store(true, Ordering::Release);
    let reads = within("the reader task", reads).await.expect("reader task");
    assert!(reads >= 1);
}

/// `MULTI; SET marker <v>; EXEC` on `con`: EXEC's reply (nil when aborted).
async fn try_exec(con: &mut MultiplexedConnection) -> Value {
    let () = q(con, &["MULTI"]).await;
    let queued: String = q(con, &["SET", "marker", "ran"]).await;
    assert_eq!(queued, "QUEUED");
    q(con, &["EXEC"]).await
}

fn ran(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Array(items) if items == &[Value::Okay] => true,
        other => panic!("unexpected EXEC reply {other:?}"),
    }
}

#[tokio::test]
async fn watch_aborts_exec_when_another_client_touches_the_key() {
    let node = spawn_node(|_| {}).await;
    let mut me = multiplexed(&node.redis_url()).await;
    let mut other = multiplexed(&node.redis_url()).await;

    // Another client writes the key: aborted, and its write stands.
    let () = q(&mut me, &["SET", "k", "v1"]).await;
    let () = q(&mut me, &["WATCH", "k"]).await;
    let () = q(&mut other, &["SET", "k", "v2"]).await;
    assert!(!ran(&try_exec(&mut me).await), "write by another client");
    let v: String = q(&mut me, &["GET", "k"]).await;
    assert_eq!(v, "v2");
    let marker: Option<String> = q(&mut me, &["GET", "marker"]).await;
    assert_eq!(marker, None, "an aborted EXEC runs nothing");

    // Rewriting the same value still counts.
    let () = q(&mut me, &["WATCH", "k"]).await;
    let () = q(&mut other, &["SET", "k", "v2"]).await;
    assert!(!ran(&try_exec(&mut me).await), "same value rewritten");

    // So do DEL, EXPIRE and creating a key that was missing when watched.
    let () = q(&mut me, &["WATCH", "k"]).await;
    let n: i64 = q(&mut other, &["EXPIRE", "k", "100"]).await;
    assert_eq!(n, 1);
    assert!(!ran(&try_exec(&mut me).await), "EXPIRE by another client");
    let () = q(&mut me, &["WATCH", "k"]).await;
    let n: i64 = q(&mut other, &["DEL", "k"]).await;
    assert_eq!(n, 1);
    assert!(!ran(&try_exec(&mut me).await), "DEL by another client");
    let () = q(&mut me, &["WATCH", "k"]).await;
    let () = q(&mut other, &["SET", "k", "new"]).await;
    assert!(!ran(&try_exec(&mut me).await), "missing key created");

    // Writes to other keys (and a DEL of a missing watched key) do not abort.
    let () = q(&mut me, &["WATCH", "k", "gone"]).await;
    let () = q(&mut other, &["SET", "k2", "x"]).await;
    let n: i64 = q(&mut other, &["DEL", "gone"]).await;
    assert_eq!(n, 0);
    assert!(ran(&try_exec(&mut me).await), "only other keys written");
    let marker: String = q(&mut me, &["GET", "marker"]).await;
    assert_eq!(marker, "ran");

    // EXEC ends the watch: a later write does not abort the next transaction.
    let () = q(&mut other, &["SET", "k", "later"]).await;
    assert!(ran(&try_exec(&mut me).await), "watch released by EXEC");

    // A watch on the same key name in another database is a different key.
    let () = q(&mut me, &["WATCH", "k"]).await;
    let () = q(&mut other, &["SELECT", "1"]).await;
    let () = q(&mut other, &["SET", "k", "db1"]).await;
    assert!(ran(&try_exec(&mut me).await), "same name in db 1");

    // UNWATCH and DISCARD release the watch too.
    let () = q(&mut me, &["WATCH", "k"]).await;
    let () = q(&mut me, &["UNWATCH"]).await;
    let () = q(&mut other, &["SELECT", "0"]).await;
    let () = q(&mut other, &["SET", "k", "after-unwatch"]).await;
    assert!(ran(&try_exec(&mut me).await), "after UNWATCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_aborts_exec_when_the_key_expires_or_is_flushed() {
    let node = spawn_node(|_| {}).await;
    let mut w1 = multiplexed(&node.redis_url()).await;
    let mut w2 = multiplexed(&node.redis_url()).await;
    let mut other = multiplexed(&node.redis_url()).await;

    // e2 expires no later than e1. Nobody reads e2 before EXEC; e1 is polled by another
    // client (which may delete it lazily). Both transactions abort.
    let () = q(&mut other, &["SET", "e2", "v", "PX", "200"]).await;
    let () = q(&mut other, &["SET", "e1", "v", "PX", "200"]).await;
    let () = q(&mut w1, &["WATCH", "e1"]).await;
    let () = q(&mut w2, &["WATCH", "e2"]).await;
    let d = Deadline::new("e1 to expire");
    loop {
        let n: i64 = q(&mut other, &["EXISTS", "e1"]).await;
        if n == 0 {
            break;
        }
        d.tick().await;
    }
    assert!(
        !ran(&try_exec(&mut w1).await),
        "expired and read by another client"
    );
    assert!(!ran(&try_exec(&mut w2).await), "expired, never read");

    // FLUSHDB and FLUSHALL of the key's database abort; a FLUSHDB of another one does not.
    for flush in [&["FLUSHDB"][..], &["FLUSHDB", "ASYNC"], &["FLUSHALL"]] {
        let () = q(&mut w1, &["SET", "f", "v"]).await;
        let () = q(&mut w1, &["WATCH", "f"]).await;
        let () = q(&mut other, flush).await;
        assert!(!ran(&try_exec(&mut w1).await), "{flush:?}");
    }
    let () = q(&mut w1, &["SET", "f", "v"]).await;
    let () = q(&mut w1, &["WATCH", "f"]).await;
    let () = q(&mut other, &["SELECT", "2"]).await;
    let () = q(&mut other, &["SET", "x", "1"]).await;
    let () = q(&mut other, &["FLUSHDB"]).await;
    assert!(ran(&try_exec(&mut w1).await), "FLUSHDB of db 2");

    // SWAPDB replaces the key's contents: aborts.
    let () = q(&mut w1, &["WATCH", "f"]).await;
    let () = q(&mut other, &["SWAPDB", "0", "2"]).await;
    assert!(!ran(&try_exec(&mut w1).await), "SWAPDB");
}

#[tokio::test]
async fn execabort_and_watch_inside_multi() {
    let node = spawn_node(|_| {}).await;
    let mut con = multiplexed(&node.redis_url()).await;

    // A queued unknown command discards the whole transaction at EXEC.
    let () = q(&mut con, &["MULTI"]).await;
    let queued: String = q(&mut con, &["SET", "a", "1"]).await;
    assert_eq!(queued, "QUEUED");
    assert_eq!(
        qerr(&mut con, &["NOSUCHCOMMAND", "x"]).await,
        "ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'x' "
    );
    assert_eq!(
        qerr(&mut con, &["EXEC"]).await,
        "EXECABORT Transaction discarded because of previous errors."
    );
    let a: Option<String> = q(&mut con, &["GET", "a"]).await;
    assert_eq!(a, None, "nothing of an aborted transaction runs");
    assert_eq!(qerr(&mut con, &["EXEC"]).await, "ERR EXEC without MULTI");

    // WATCH inside MULTI is refused but does not discard the transaction (as in Redis).
    let () = q(&mut con, &["MULTI"]).await;
    assert_eq!(
        qerr(&mut con, &["WATCH", "a"]).await,
        "ERR WATCH inside MULTI is not allowed"
    );
    let queued: String = q(&mut con, &["SET", "a", "2"]).await;
    assert_eq!(queued, "QUEUED");
    let replies: Vec<Value> = q(&mut con, &["EXEC"]).await;
    assert_eq!(replies, vec![Value::Okay]);
    let a: String = q(&mut con, &["GET", "a"]).await;
    assert_eq!(a, "2");
}

// ---------------------------------------------------------------------------------------------
// CLIENT, RESET, MONITOR
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_list_shows_every_connection() {
    let node = spawn_node(|_| {}).await;
    let mut alpha = multiplexed(&node.redis_url()).await;
    let mut beta = multiplexed(&node.redis_url()).await;
    let mut resp3 = Raw::open(&node).await;
    let mut lister = multiplexed(&node.redis_url()).await;

    let alpha_id: u64 = q(&mut alpha, &["CLIENT", "ID"]).await;
    let () = q(&mut alpha, &["CLIENT", "SETNAME", "alpha"]).await;
    let () = q(&mut alpha, &["SELECT", "5"]).await;
    let beta_id: u64 = q(&mut beta, &["CLIENT", "ID"]).await;
    let () = q(&mut beta, &["CLIENT", "SETNAME", "beta"]).await;
    let _: Option<String> = q(&mut beta, &["GET", "x"]).await;
    resp3.send(&[&["HELLO", "3"]]).await;
    let hello = resp3.frame().await;
    assert!(matches!(hello, OwnedFrame::Map { .. }), "{hello:?}");
    let resp3_id = resp3.call_line(&["CLIENT", "ID"]).await;
    let resp3_id: u64 = resp3_id[1..].parse().expect("CLIENT ID integer");
    let lister_id: u64 = q(&mut lister, &["CLIENT", "ID"]).await;

    let text: String = q(&mut lister, &["CLIENT", "LIST"]).await;
    let list = client_list(&text);
    assert_eq!(
        list.keys().copied().collect::<HashSet<_>>(),
        HashSet::from([alpha_id, beta_id, resp3_id, lister_id]),
        "{text}"
    );
    let alpha_line = &list[&alpha_id];
    assert_eq!(alpha_line["name"], "alpha");
    assert_eq!(alpha_line["db"], "5");
    assert_eq!(alpha_line["cmd"], "select");
    assert_eq!(alpha_line["addr"], addr_of(&mut alpha).await);
    assert_eq!(alpha_line["laddr"], node.addr.to_string());
    let beta_line = &list[&beta_id];
    assert_eq!(beta_line["name"], "beta");
    assert_eq!(beta_line["db"], "0");
    assert_eq!(beta_line["cmd"], "get");
    assert_eq!(beta_line["resp"], "2");
    let resp3_line = &list[&resp3_id];
    assert_eq!(resp3_line["name"], "");
    assert_eq!(resp3_line["resp"], "3");
    assert_eq!(resp3_line["addr"], resp3.addr());
    // Container commands show with their subcommand, as in Redis 7.
    assert_eq!(list[&lister_id]["cmd"], "client|list");
    for line in list.values() {
        assert_eq!(line["user"], "default");
        assert_eq!(line["multi"], "-1");
    }

    // CLIENT LIST ID filters; a closed connection leaves the list.
    let text: String = q(
        &mut lister,
        &["CLIENT", "LIST", "ID", &alpha_id.to_string()],
    )
    .await;
    assert_eq!(
        client_list(&text).keys().copied().collect::<Vec<_>>(),
        vec![alpha_id]
    );
    drop(beta);
    let d = Deadline::new("a closed connection to leave CLIENT LIST");
    loop {
        let text: String = q(&mut lister, &["CLIENT", "LIST"]).await;
        if !client_list(&text).contains_key(&beta_id) {
            break;
        }
        d.tick().await;
    }
}

#[tokio::test]
async fn client_kill_closes_the_other_connection() {
    let node = spawn_node(|_| {}).await;
    let mut killer = multiplexed(&node.redis_url()).await;
    let killer_id: i64 = q(&mut killer, &["CLIENT", "ID"]).await;

    // New form, by id: the victim's next read is end of stream.
    let mut victim = Raw::open(&node).await;
    let id = victim.call_line(&["CLIENT", "ID"]).await;
    let id = &id[1..];
    let killed: i64 = q(&mut killer, &["CLIENT", "KILL", "ID", id]).await;
    assert_eq!(killed, 1);
    victim.expect_closed().await;
    let killed: i64 = q(&mut killer, &["CLIENT", "KILL", "ID", id]).await;
    assert_eq!(killed, 0, "already gone");

    // New form, by address.
    let mut victim = Raw::open(&node).await;
    assert_eq!(victim.call_line(&["PING"]).await, "+PONG");
    let killed: i64 = q(&mut killer, &["CLIENT", "KILL", "ADDR", &victim.addr()]).await;
    assert_eq!(killed, 1);
    victim.expect_closed().await;

    // Old form: `CLIENT KILL ip:port` answers +OK.
    let mut victim = Raw::open(&node).await;
    assert_eq!(victim.call_line(&["PING"]).await, "+PONG");
    let ok: String = q(&mut killer, &["CLIENT", "KILL", &victim.addr()]).await;
    assert_eq!(ok, "OK");
    victim.expect_closed().await;
    assert_eq!(
        qerr(&mut killer, &["CLIENT", "KILL", "10.9.8.7:6543"]).await,
        "ERR No such client"
    );
    let killed: i64 = q(&mut killer, &["CLIENT", "KILL", "ADDR", "10.9.8.7:6543"]).await;
    assert_eq!(killed, 0);

    // SKIPME (default yes) spares the caller; the killer is the only one left.
    let killed: i64 = q(
        &mut killer,
        &["CLIENT", "KILL", "ID", &killer_id.to_string()],
    )
    .await;
    assert_eq!(killed, 0);
    let pong: String = q(&mut killer, &["PING"]).await;
    assert_eq!(pong, "PONG");
    let d = Deadline::new("killed connections to leave CLIENT LIST");
    loop {
        let text: String = q(&mut killer, &["CLIENT", "LIST"]).await;
        if client_list(&text).keys().copied().collect::<Vec<_>>() == vec![killer_id as u64] {
            break;
        }
        d.tick().await;
    }
}

#[tokio::test]
async fn client_reply_off_skip_on_suppress_exactly_like_redis() {
    let node = spawn_node(|_| {}).await;
    let mut s = Raw::open(&node).await;

    // OFF: no reply to itself or anything after it, errors included, until ON's +OK.
    s.send(&[
        &["CLIENT", "REPLY", "OFF"],
        &["SET", "a", "1"],
        &["GET", "a"],
        &["NOSUCHCOMMAND"],
        &["CLIENT", "REPLY", "ON"],
        &["GET", "a"],
    ])
    .await;
    s.expect("+OK\r\n$1\r\n1\r\n").await;

    // SKIP: no reply to itself nor to the next command.
    s.send(&[
        &["CLIENT", "REPLY", "SKIP"],
        &["SET", "b", "2"],
        &["GET", "b"],
    ])
    .await;
    s.expect("$1\r\n2\r\n").await;

    // SKIP twice: the second is the skipped command and skips the one after it.
    s.send(&[
        &["CLIENT", "REPLY", "SKIP"],
        &["CLIENT", "REPLY", "SKIP"],
        &["GET", "a"],
        &["GET", "b"],
    ])
    .await;
    s.expect("$1\r\n2\r\n").await;

    // SKIP while OFF changes nothing: still off until ON.
    s.send(&[
        &["CLIENT", "REPLY", "OFF"],
        &["CLIENT", "REPLY", "SKIP"],
        &["GET", "a"],
        &["GET", "a"],
        &["CLIENT", "REPLY", "ON"],
        &["PING"],
    ])
    .await;
    s.expect("+OK\r\n+PONG\r\n").await;

    // ON right after SKIP clears the skip and its +OK is sent.
    s.send(&[
        &["CLIENT", "REPLY", "SKIP"],
        &["CLIENT", "REPLY", "ON"],
        &["GET", "a"],
    ])
    .await;
    s.expect("+OK\r\n$1\r\n1\r\n").await;

    // OFF then RESET: RESET turns replies back on and answers.
    s.send(&[&["CLIENT", "REPLY", "OFF"], &["RESET"], &["PING"]])
        .await;
    s.expect("+RESET\r\n+PONG\r\n").await;

    // RESET right after SKIP is the skipped command: no +RESET, but replies are back after it.
    s.send(&[&["CLIENT", "REPLY", "SKIP"], &["RESET"], &["PING"]])
        .await;
    s.expect("+PONG\r\n").await;

    // A command suppressed by OFF still ran.
    s.send(&[
        &["CLIENT", "REPLY", "OFF"],
        &["SET", "c", "3"],
        &["CLIENT", "REPLY", "ON"],
        &["GET", "c"],
    ])
    .await;
    s.expect("+OK\r\n$1\r\n3\r\n").await;
}

#[tokio::test]
async fn reset_restores_the_connection_defaults() {
    let node = spawn_node(|_| {}).await;
    let mut s = Raw::open(&node).await;
    let mut other = multiplexed(&node.redis_url()).await;

    s.send(&[&["SELECT", "3"], &["SET", "r", "in-db3"]]).await;
    s.expect("+OK\r\n+OK\r\n").await;
    s.send(&[&["HELLO", "3"]]).await;
    let hello = s.frame().await;
    assert!(matches!(hello, OwnedFrame::Map { .. }), "{hello:?}");
    s.send(&[
        &["CLIENT", "SETNAME", "before-reset"],
        &["WATCH", "w"],
        &["MULTI"],
        &["SET", "queued", "1"],
    ])
    .await;
    s.expect("+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n").await;
    // RESET is not queued, even inside MULTI.
    assert_eq!(s.call_line(&["RESET"]).await, "+RESET");

    // RESP2 again (`$-1`, not `_`), no name, database 0, no transaction, no watch.
    s.send(&[&["CLIENT", "GETNAME"], &["GET", "r"], &["EXEC"]])
        .await;
    s.expect("$-1\r\n$-1\r\n-ERR EXEC without MULTI\r\n").await;
    let () = q(&mut other, &["SET", "w", "changed"]).await;
    s.send(&[&["MULTI"], &["SET", "after", "1"], &["EXEC"]])
        .await;
    s.expect("+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n").await;
    let queued: Option<String> = q(&mut other, &["GET", "queued"]).await;
    assert_eq!(queued, None, "the discarded transaction never ran");
    s.send(&[&["CLIENT", "INFO"]]).await;
    let header = s.line().await;
    let info = s.line().await;
    assert!(header.starts_with('$'), "{header}");
    let fields = client_fields(&info);
    assert_eq!(
        (
            fields["db"].as_str(),
            fields["name"].as_str(),
            fields["resp"].as_str()
        ),
        ("0", "", "2")
    );
}

/// Splits a MONITOR line into its Unix time and the rest after the first space.
fn monitor_line(line: &str) -> (f64, &str) {
    let line = line
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("MONITOR line is a status reply: {line:?}"));
    let (time, rest) = line.split_once(' ').expect("time, then the command");
    let (secs, micros) = time.split_once('.').expect("seconds.micros");
    assert_eq!(micros.len(), 6, "six digits of microseconds in {line:?}");
    let secs: i64 = secs.parse().expect("whole seconds");
    let micros: i64 = micros.parse().expect("microseconds");
    (secs as f64 + micros as f64 / 1e6, rest)
}

#[tokio::test]
async fn monitor_streams_the_commands_of_other_connections() {
    let node = spawn_node(|_| {}).await;
    let mut monitor = Raw::open(&node).await;
    assert_eq!(monitor.call_line(&["MONITOR"]).await, "+OK");

    let mut w = Raw::open(&node).await;
    let addr = w.addr();
    let before = unix_secs();
    w.send(&[
        &["SET", "k", "v"],
        &["SELECT", "2"],
        &["SET", "sp ace", "q\"uote\\"],
        &["GET", "k"],
    ])
    .await;
    w.expect("+OK\r\n+OK\r\n+OK\r\n$-1\r\n").await;

    let expected = [
        format!("[0 {addr}] \"SET\" \"k\" \"v\""),
        format!("[2 {addr}] \"SELECT\" \"2\""),
        format!("[2 {addr}] \"SET\" \"sp ace\" \"q\\\"uote\\\\\""),
        format!("[2 {addr}] \"GET\" \"k\""),
    ];
    let mut last = 0.0;
    for want in expected {
        let line = monitor.line().await;
        let (time, rest) = monitor_line(&line);
        assert_eq!(rest, want);
        assert!(
            time >= (before - 1) as f64 && time <= (unix_secs() + 1) as f64,
            "{line}"
        );
        assert!(time >= last, "times never go backwards: {line}");
        last = time;
    }

    // A second client's commands show its own address; the monitor's own are not echoed.
    let mut w2 = multiplexed(&node.redis_url()).await;
    let addr2 = addr_of(&mut w2).await;
    let () = q(&mut w2, &["SET", "from-w2", "1"]).await;
    loop {
        let line = monitor.line().await;
        let (_, rest) = monitor_line(&line);
        assert!(rest.starts_with(&format!("[0 {addr2}] ")), "{line}");
        if rest.ends_with("\"SET\" \"from-w2\" \"1\"") {
            break;
        }
    }

    // Administrative commands are not shown, as in Redis; CLIENT SETNAME is, CLIENT LIST not.
    let _: Vec<String> = q(&mut w2, &["CONFIG", "GET", "port"]).await;
    let _: String = q(&mut w2, &["CLIENT", "LIST"]).await;
    let () = q(&mut w2, &["CLIENT", "SETNAME", "w2"]).await;
    let () = q(&mut w2, &["SET", "marker", "1"]).await;
    let line = monitor.line().await;
    assert!(line.ends_with("\"CLIENT\" \"SETNAME\" \"w2\""), "{line}");
    let line = monitor.line().await;
    assert!(line.ends_with("\"SET\" \"marker\" \"1\""), "{line}");
}

// ---------------------------------------------------------------------------------------------
// DEBUG, SLOWLOG
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_sleep_and_debug_object() {
    let node = spawn_node(|_| {}).await;
    let mut con = multiplexed(&node.redis_url()).await;

    let started = Instant::now();
    let ok: String = q(&mut con, &["DEBUG", "SLEEP", "0.1"]).await;
    assert_eq!(ok, "OK");
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "DEBUG SLEEP 0.1 returned after {:?}",
        started.elapsed()
    );
    let ok: String = q(&mut con, &["DEBUG", "SLEEP", "0"]).await;
    assert_eq!(ok, "OK");

    let long = "x".repeat(100);
    for (value, encoding) in [
        ("12345", "int"),
        ("hello", "embstr"),
        (long.as_str(), "raw"),
    ] {
        let () = q(&mut con, &["SET", "obj", value]).await;
        let text: String = q(&mut con, &["DEBUG", "OBJECT", "obj"]).await;
        assert!(text.starts_with("Value at:"), "{text}");
        assert!(
            text.contains(&format!(" encoding:{encoding} ")),
            "{value}: {text}"
        );
    }
    assert_eq!(
        qerr(&mut con, &["DEBUG", "OBJECT", "missing"]).await,
        "ERR no such key"
    );
}

/// One SLOWLOG GET entry: id, Unix time, microseconds, arguments, client address and name.
struct SlowEntry {
    id: i64,
    time: i64,
    micros: i64,
    args: Vec<String>,
    addr: String,
    name: String,
}

fn slow_entries(reply: Value) -> Vec<SlowEntry> {
    let Value::Array(entries) = reply else {
        panic!("SLOWLOG GET answers an array, got {reply:?}");
    };
    entries
        .into_iter()
        .map(|e| {
            let (id, time, micros, args, addr, name): (i64, i64, i64, Vec<String>, String, String) =
                redis::from_redis_value(e).expect("six-field slowlog entry");
            SlowEntry {
                id,
                time,
                micros,
                args,
                addr,
                name,
            }
        })
        .collect()
}

#[tokio::test]
async fn slowlog_records_commands_over_the_threshold() {
    let node = spawn_node(|_| {}).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let addr = addr_of(&mut con).await;

    let max: HashMap<String, String> = q(&mut con, &["CONFIG", "GET", "slowlog-max-len"]).await;
    assert_eq!(
        max,
        HashMap::from([("slowlog-max-len".to_string(), "128".to_string())])
    );
    let () = q(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]).await;
    let () = q(&mut con, &["SLOWLOG", "RESET"]).await;
    let () = q(&mut con, &["CLIENT", "SETNAME", "slowpoke"]).await;
    let () = q(&mut con, &["SET", "a", "1"]).await;
    let a: String = q(&mut con, &["GET", "a"]).await;
    assert_eq!(a, "1");
    // Every command is logged once it has run: SLOWLOG RESET itself, CLIENT SETNAME, SET, GET.
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]).await;
    assert_eq!(len, 4);

    let now = unix_secs();
    let entries = slow_entries(q(&mut con, &["SLOWLOG", "GET", "2"]).await);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].args, ["SLOWLOG", "LEN"]);
    assert_eq!(entries[1].args, ["GET", "a"]);
    assert_eq!(
        entries[0].id,
        entries[1].id + 1,
        "newest first, ids increasing"
    );
    for e in &entries {
        assert!(
            (now - 60..=now + 1).contains(&e.time),
            "timestamp {}",
            e.time
        );
        assert!((0..10_000_000).contains(&e.micros), "duration {}", e.micros);
        assert_eq!(e.addr, addr);
        assert_eq!(e.name, "slowpoke");
    }
    let all = slow_entries(q(&mut con, &["SLOWLOG", "GET", "-1"]).await);
    let commands: Vec<Vec<String>> = all.into_iter().map(|e| e.args).collect();
    assert_eq!(
        commands,
        [
            vec!["SLOWLOG", "GET", "2"],
            vec!["SLOWLOG", "LEN"],
            vec!["GET", "a"],
            vec!["SET", "a", "1"],
            vec!["CLIENT", "SETNAME", "slowpoke"],
            vec!["SLOWLOG", "RESET"],
        ]
    );

    // Long arguments are cut to 128 bytes, as Redis keeps them.
    let () = q(&mut con, &["SET", "long", &"y".repeat(200)]).await;
    let entries = slow_entries(q(&mut con, &["SLOWLOG", "GET", "1"]).await);
    assert_eq!(
        entries[0].args[2],
        format!("{}... (72 more bytes)", "y".repeat(128))
    );

    // RESET empties the log (and is then logged itself); the length is bounded.
    let () = q(&mut con, &["SLOWLOG", "RESET"]).await;
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]).await;
    assert_eq!(len, 1);
    let () = q(&mut con, &["CONFIG", "SET", "slowlog-max-len", "3"]).await;
    for _ in 0..5 {
        let _: String = q(&mut con, &["PING"]).await;
    }
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]).await;
    assert_eq!(len, 3);
    let max: HashMap<String, String> = q(&mut con, &["CONFIG", "GET", "slowlog-*"]).await;
    assert_eq!(max["slowlog-max-len"], "3");
    assert_eq!(max["slowlog-log-slower-than"], "0");

    // A negative threshold logs nothing.
    let () = q(
        &mut con,
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
    )
    .await;
    let () = q(&mut con, &["SLOWLOG", "RESET"]).await;
    let _: String = q(&mut con, &["PING"]).await;
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]).await;
    assert_eq!(len, 0);
}

// ---------------------------------------------------------------------------------------------
// Databases, SCAN
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sixteen_databases_by_default_and_a_configured_count() {
    let node = spawn_node(|_| {}).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let () = q(&mut con, &["SELECT", "15"]).await;
    let () = q(&mut con, &["SET", "in15", "x"]).await;
    assert_eq!(
        qerr(&mut con, &["SELECT", "16"]).await,
        "ERR DB index is out of range"
    );
    let size: i64 = q(&mut con, &["DBSIZE"]).await;
    assert_eq!(size, 1, "a refused SELECT keeps the selection");
    let databases: HashMap<String, String> = q(&mut con, &["CONFIG", "GET", "databases"]).await;
    assert_eq!(databases["databases"], "16");

    let node = spawn_node(|c| c.databases = 4).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let databases: HashMap<String, String> = q(&mut con, &["CONFIG", "GET", "databases"]).await;
    assert_eq!(databases["databases"], "4");
    assert_eq!(
        qerr(&mut con, &["SELECT", "4"]).await,
        "ERR DB index is out of range"
    );
    assert_eq!(
        qerr(&mut con, &["MOVE", "k", "4"]).await,
        "ERR DB index is out of range"
    );
    let () = q(&mut con, &["MSET", "a", "1", "b", "2"]).await;
    let () = q(&mut con, &["SELECT", "3"]).await;
    let () = q(&mut con, &["SET", "c", "3", "EX", "1000"]).await;
    let () = q(&mut con, &["SET", "d", "4"]).await;

    let info: String = q(&mut con, &["INFO", "keyspace"]).await;
    let sections = parse_info(&info);
    assert_eq!(sections.len(), 1, "{info}");
    let (title, fields) = &sections[0];
    assert_eq!(title, "Keyspace");
    assert_eq!(
        fields.keys().map(String::as_str).collect::<HashSet<_>>(),
        HashSet::from(["db0", "db3"]),
        "only databases with keys are listed: {info}"
    );
    assert!(
        fields["db0"].starts_with("keys=2,expires=0,avg_ttl="),
        "{info}"
    );
    assert!(
        fields["db3"].starts_with("keys=2,expires=1,avg_ttl="),
        "{info}"
    );

    // The snapshot keeps every database: stop gracefully, restart on the same directory.
    drop(con);
    let dir = node.stop().await;
    let node = spawn_node_in(dir, |c| c.databases = 4).await;
    assert_eq!(node.restored, 4);
    let mut con = multiplexed(&node.redis_url()).await;
    let values: Vec<Option<String>> = q(&mut con, &["MGET", "a", "b", "c", "d"]).await;
    assert_eq!(
        values,
        [Some("1".to_string()), Some("2".to_string()), None, None]
    );
    let () = q(&mut con, &["SELECT", "3"]).await;
    let values: Vec<Option<String>> = q(&mut con, &["MGET", "a", "c", "d"]).await;
    assert_eq!(values, [None, Some("3".to_string()), Some("4".to_string())]);
    let ttl: i64 = q(&mut con, &["TTL", "c"]).await;
    assert!((900..=1000).contains(&ttl), "TTL after restart: {ttl}");
    for db in ["1", "2"] {
        let () = q(&mut con, &["SELECT", db]).await;
        let size: i64 = q(&mut con, &["DBSIZE"]).await;
        assert_eq!(size, 0, "db {db}");
    }
}

/// A full SCAN with these extra arguments: every key returned, and the number of calls.
async fn full_scan(con: &mut MultiplexedConnection, extra: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut calls = 0;
    let d = Deadline::new(format!("SCAN {extra:?} to finish"));
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(extra);
        let (next, batch): (String, Vec<String>) = q(con, &args).await;
        keys.extend(batch);
        calls += 1;
        if next == "0" {
            return (keys, calls);
        }
        assert_ne!(next, cursor, "the cursor must move");
        cursor = next;
        // Panics past the wait bound; never sleeps here since no wait is needed.
        assert!(calls < 100_000, "SCAN does not terminate");
        if calls % 1000 == 0 {
            d.tick().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_returns_every_key_present_for_the_whole_scan() {
    const KEYS: usize = 5000;
    let node = spawn_node(|_| {}).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let originals: Vec<String> = (0..KEYS).map(|i| format!("orig:{i}")).collect();
    for chunk in originals.chunks(500) {
        let mut mset = redis::cmd("MSET");
        for k in chunk {
            mset.arg(k).arg("v");
        }
        let () = mset.query_async(&mut con).await.expect("MSET");
    }

    // Another client adds and deletes other keys for the whole scan.
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicU64::new(0));
    let churn = tokio::spawn({
        let (stop, churned) = (stop.clone(), churned.clone());
        let mut con = multiplexed(&node.redis_url()).await;
        async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let () = q(&mut con, &["SET", &format!("churn:{i}"), "x"]).await;
                if i >= 20 {
                    let _: i64 = q(&mut con, &["DEL", &format!("churn:{}", i - 20)]).await;
                }
                i += 1;
                churned.store(i, Ordering::Release);
            }
        }
    });
    let (seen, calls) = full_scan(&mut con, &["COUNT", "10"]).await;
    stop.store(true, Ordering::Release);
    within("the churn task", churn).await.expect("churn task");
    assert!(
        churned.load(Ordering::Acquire) > 0,
        "the churn ran during the scan"
    );
    assert!(
        calls > 10,
        "COUNT 10 over 5000 keys takes many calls: {calls}"
    );
    let seen: HashSet<String> = seen.into_iter().collect();
    let missing: Vec<&String> = originals.iter().filter(|k| !seen.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} keys never returned, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        seen.iter()
            .all(|k| k.starts_with("orig:") || k.starts_with("churn:")),
        "only keys that existed are returned"
    );

    // MATCH filters by pattern.
    let (matched, _) = full_scan(&mut con, &["MATCH", "orig:1??", "COUNT", "10"]).await;
    let matched: HashSet<String> = matched.into_iter().collect();
    let want: HashSet<String> = (100..200).map(|i| format!("orig:{i}")).collect();
    assert_eq!(matched, want);

    // TYPE string returns everything (every value is a string); TYPE list nothing.
    let (strings, _) = full_scan(&mut con, &["TYPE", "string", "COUNT", "100"]).await;
    let strings: HashSet<String> = strings.into_iter().collect();
    assert!(originals.iter().all(|k| strings.contains(k)));
    let (lists, calls) = full_scan(&mut con, &["TYPE", "list", "COUNT", "100"]).await;
    assert!(lists.is_empty(), "{lists:?}");
    assert!(calls >= 1);
}

// ---------------------------------------------------------------------------------------------
// JSON protocol, HELLO/AUTH
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn json_generic_form_runs_any_command() {
    let node = spawn_node(|c| c.id = 5).await;
    let mut c = JsonConn::connect(node.addr).await;

    let reply = c
        .request(json!({"command": "INCRBY", "args": ["k", "5"]}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "result": 5, "server_id": 5})
    );
    let reply = c
        .request(json!({"command": "incrby", "args": ["k", 7]}))
        .await;
    assert_eq!(reply["result"], 12, "numbers are sent as their text");
    let reply = c
        .request(json!({"command": "SET", "args": ["a", "1"]}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "result": "OK", "server_id": 5})
    );
    let reply = c
        .request(json!({"command": "MGET", "args": ["a", "b"]}))
        .await;
    assert_eq!(reply["result"], json!(["1", null]));
    let reply = c
        .request(json!({"command": "CONFIG", "args": ["GET", "databases"]}))
        .await;
    assert_eq!(reply["result"], json!({"databases": "16"}));
    let reply = c
        .request(json!({"command": "TTL", "args": ["missing"]}))
        .await;
    assert_eq!(reply["result"], -2);
    let reply = c
        .request(json!({"command": "INCRBY", "args": ["a", "x"]}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "error", "message": "value is not an integer or out of range",
               "server_id": 5})
    );

    // `"db": n` runs one request in database n; the connection's selection is unchanged.
    let reply = c
        .request(json!({"command": "SET", "args": ["dbk", "three"], "db": 3}))
        .await;
    assert_eq!(reply["result"], "OK");
    let reply = c.request(json!({"command": "GET", "args": ["dbk"]})).await;
    assert_eq!(reply["result"], json!(null), "still in database 0");
    let reply = c
        .request(json!({"command": "GET", "args": ["dbk"], "db": 3}))
        .await;
    assert_eq!(reply["result"], "three");
    let reply = c
        .request(json!({"command": "GET", "key": "dbk", "db": 3}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "key": "dbk", "value": "three", "ttl": -1,
               "server_id": 5})
    );
    c.request(json!({"command": "MSET", "args": ["x", "1", "y", "2"], "db": 2}))
        .await;
    let reply = c.request(json!({"command": "SELECT", "args": ["2"]})).await;
    assert_eq!(reply["result"], "OK");
    let size = |n: i64| json!({"status": "success", "result": n, "server_id": 5});
    let reply = c.request(json!({"command": "DBSIZE", "args": []})).await;
    assert_eq!(reply, size(2));
    let reply = c
        .request(json!({"command": "DBSIZE", "args": [], "db": 3}))
        .await;
    assert_eq!(reply, size(1));
    let reply = c
        .request(json!({"command": "DBSIZE", "args": [], "db": 0}))
        .await;
    assert_eq!(reply, size(2), "k and a in database 0");
    let reply = c.request(json!({"command": "DBSIZE", "args": []})).await;
    assert_eq!(reply, size(2), "SELECT 2 still in force");

    // An invalid database is an error object; the connection goes on.
    for db in [16, -1] {
        let reply = c
            .request(json!({"command": "GET", "args": ["k"], "db": db}))
            .await;
        assert_eq!(
            reply,
            json!({"status": "error", "message": "DB index is out of range", "server_id": 5}),
            "db {db}"
        );
    }
    let reply = c.request(json!({"command": "PING"})).await;
    assert_eq!(reply["message"], "PONG");
}

#[tokio::test]
async fn hello_auth_and_setname() {
    let node = spawn_node(|_| {}).await;
    let mut s = Raw::open(&node).await;
    s.send(&[&["HELLO", "3", "AUTH", "default", "anypass", "SETNAME", "n"]])
        .await;
    let frame = s.frame().await;
    let OwnedFrame::Map { data, .. } = frame else {
        panic!("HELLO 3 answers a RESP3 map, got {frame:?}");
    };
    let field = |name: &str| {
        data.iter()
            .find(|(k, _)| matches!(k, OwnedFrame::BlobString { data, .. } if data == name.as_bytes()))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("HELLO reply lacks {name}"))
    };
    let text = |f: OwnedFrame| match f {
        OwnedFrame::BlobString { data, .. } => String::from_utf8(data).expect("UTF-8"),
        other => panic!("expected a blob string, got {other:?}"),
    };
    assert!(matches!(field("proto"), OwnedFrame::Number { data: 3, .. }));
    assert_eq!(text(field("server")), "redis");
    assert!(text(field("version")).starts_with("7."));
    assert_eq!(text(field("mode")), "standalone");
    assert_eq!(text(field("role")), "master");
    assert!(matches!(field("modules"), OwnedFrame::Array { ref data, .. } if data.is_empty()));
    let OwnedFrame::Number { data: id, .. } = field("id") else {
        panic!("HELLO id is an integer");
    };
    assert_eq!(s.call_line(&["CLIENT", "ID"]).await, format!(":{id}"));
    s.send(&[&["CLIENT", "GETNAME"], &["GET", "missing"]]).await;
    s.expect("$1\r\nn\r\n_\r\n").await;

    // Wrong user: WRONGPASS, and the connection stays RESP2 without a name.
    let mut s = Raw::open(&node).await;
    s.send(&[
        &["HELLO", "3", "AUTH", "other", "x", "SETNAME", "never"],
        &["GET", "missing"],
        &["CLIENT", "GETNAME"],
    ])
    .await;
    s.expect("-WRONGPASS invalid username-password pair or user is disabled.\r\n$-1\r\n$-1\r\n")
        .await;
    // AUTH without a configured password: Redis's texts.
    s.send(&[
        &["AUTH", "x"],
        &["AUTH", "default", "x"],
        &["AUTH", "other", "x"],
    ])
    .await;
    s.expect(
        "-ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?\r\n\
         +OK\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// INFO, SAVE/BGSAVE/LASTSAVE, TIME, WAIT
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn info_has_the_redis_sections_and_fields() {
    let node = spawn_node(|_| {}).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let () = q(&mut con, &["SET", "k", "v"]).await;
    let second = multiplexed(&node.redis_url()).await;

    let d = Deadline::new("INFO to count both connections");
    let sections = loop {
        let info: String = q(&mut con, &["INFO"]).await;
        let sections = parse_info(&info);
        if info_field(&sections, "Clients", "connected_clients") == "2" {
            break sections;
        }
        d.tick().await;
    };
    let titles: Vec<&str> = sections.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Server",
            "Clients",
            "Memory",
            "Persistence",
            "Stats",
            "Replication",
            "CPU",
            "Keyspace"
        ]
    );
    assert!(info_field(&sections, "Server", "redis_version").starts_with("7."));
    assert_eq!(info_field(&sections, "Server", "redis_mode"), "standalone");
    assert_eq!(
        info_field(&sections, "Server", "tcp_port"),
        node.port().to_string()
    );
    let used: u64 = info_field(&sections, "Memory", "used_memory")
        .parse()
        .expect("used_memory is a number");
    assert!(used > 0);
    assert_eq!(info_field(&sections, "Persistence", "loading"), "0");
    assert_eq!(
        info_field(&sections, "Persistence", "rdb_last_bgsave_status"),
        "ok"
    );
    assert_eq!(info_field(&sections, "Replication", "role"), "master");
    assert!(info_field(&sections, "CPU", "used_cpu_user")
        .parse::<f64>()
        .is_ok());
    assert!(info_field(&sections, "Keyspace", "db0").starts_with("keys=1,expires=0,"));

    // Each INFO counts the commands before it, itself included once it has run.
    let processed = |s: &[(String, HashMap<String, String>)]| -> u64 {
        info_field(s, "Stats", "total_commands_processed")
            .parse()
            .expect("a count")
    };
    let first: String = q(&mut con, &["INFO", "stats"]).await;
    let second_info: String = q(&mut con, &["INFO", "stats"]).await;
    assert_eq!(
        processed(&parse_info(&second_info)),
        processed(&parse_info(&first)) + 1
    );

    // Sections can be asked for by name.
    let info: String = q(&mut con, &["INFO", "server", "clients"]).await;
    let titles: Vec<String> = parse_info(&info).into_iter().map(|(t, _)| t).collect();
    assert_eq!(titles, ["Server", "Clients"]);

    drop(second);
    let d = Deadline::new("INFO to see the second connection gone");
    loop {
        let info: String = q(&mut con, &["INFO", "clients"]).await;
        if info_field(&parse_info(&info), "Clients", "connected_clients") == "1" {
            break;
        }
        d.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_bgsave_and_lastsave() {
    let node = spawn_node(|_| {}).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let path = node.snapshot_path();
    let () = q(&mut con, &["SET", "a", "1"]).await;
    let () = q(&mut con, &["SELECT", "1"]).await;
    let () = q(&mut con, &["SET", "b", "2"]).await;

    let before = unix_secs();
    let ok: String = q(&mut con, &["SAVE"]).await;
    assert_eq!(ok, "OK");
    let snapshot = read_snapshot_if_written(&path).expect("SAVE wrote the snapshot");
    assert_eq!(snapshot["format"], "minikv-snapshot");
    assert_eq!(
        HashSet::from_iter(snapshot_entries(&snapshot)),
        HashSet::from([
            (0, "a".to_string(), "1".to_string()),
            (1, "b".to_string(), "2".to_string())
        ])
    );
    let lastsave: i64 = q(&mut con, &["LASTSAVE"]).await;
    assert!(
        lastsave >= before && lastsave <= unix_secs(),
        "LASTSAVE {lastsave}, SAVE started at {before}"
    );

    // BGSAVE answers at once; the file appears with the new key.
    std::fs::remove_file(&path).expect("remove the snapshot");
    let () = q(&mut con, &["SET", "c", "3"]).await;
    let started: String = q(&mut con, &["BGSAVE"]).await;
    assert_eq!(started, "Background saving started");
    wait_until("BGSAVE to write the snapshot", WAIT, || {
        let path = path.clone();
        async move {
            read_snapshot_if_written(&path)
                .is_some_and(|s| snapshot_entries(&s).contains(&(1, "c".into(), "3".into())))
        }
    })
    .await;
    let d = Deadline::new("LASTSAVE and INFO to reflect the BGSAVE");
    loop {
        let now: i64 = q(&mut con, &["LASTSAVE"]).await;
        let info: String = q(&mut con, &["INFO", "persistence"]).await;
        let sections = parse_info(&info);
        let in_progress = info_field(&sections, "Persistence", "rdb_bgsave_in_progress");
        if now >= lastsave && in_progress == "0" {
            assert_eq!(
                info_field(&sections, "Persistence", "rdb_last_bgsave_status"),
                "ok"
            );
            break;
        }
        d.tick().await;
    }
}

#[tokio::test]
async fn time_and_wait() {
    let node = spawn_node(|_| {}).await;
    let mut con = multiplexed(&node.redis_url()).await;
    let (secs, micros): (String, String) = q(&mut con, &["TIME"]).await;
    let secs: i64 = secs.parse().expect("seconds");
    let micros: i64 = micros.parse().expect("microseconds");
    assert!((secs - unix_secs()).abs() <= 5, "TIME {secs} vs the clock");
    assert!((0..1_000_000).contains(&micros), "{micros}");
    let n: i64 = q(&mut con, &["WAIT", "0", "0"]).await;
    assert_eq!(n, 0);
    let n: i64 = q(&mut con, &["WAIT", "1", "10"]).await;
    assert_eq!(n, 0, "no replicas to acknowledge");
}
