//! HTTP sent to a node (cross-protocol scripting): a web page can make a browser POST to
//! `http://127.0.0.1:7001` with Redis commands hidden in the body. As Redis does, a `POST` or
//! `Host:` command (inline or multibulk, any case), and beyond Redis any inline HTTP request
//! line, closes the connection without a reply, runs nothing after it, and logs Redis's
//! "Possible SECURITY ATTACK detected" warning. Ordinary keys named like HTTP words still work.

mod common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use common::process::{free_port, BinProcess};
use common::raw::{connect, expect_bytes, read_to_eof, send, JsonConn};
use common::spawn_node;
use serde_json::json;
use tokio::net::TcpStream;

/// Sends `bytes` on a fresh connection and asserts the node closes it without sending
/// anything back.
async fn expect_closed_silently(node: &common::TestNode, bytes: &[u8]) {
    let mut s = connect(node.addr).await;
    send(&mut s, bytes).await;
    let got = read_to_eof(&mut s).await;
    assert!(
        got.is_empty(),
        "{:?} was answered {:?}",
        String::from_utf8_lossy(bytes),
        String::from_utf8_lossy(&got)
    );
}

/// Asserts from a fresh connection that `key` does not exist.
async fn expect_missing(node: &common::TestNode, key: &str) {
    let mut s = connect(node.addr).await;
    send(&mut s, format!("EXISTS {key}\r\n").as_bytes()).await;
    expect_bytes(&mut s, b":0\r\n").await;
}

#[tokio::test]
async fn commands_smuggled_after_post_or_host_are_not_run_and_the_connection_closes() {
    let node = spawn_node(|_| {}).await;
    expect_closed_silently(
        &node,
        b"POST / HTTP/1.1\r\nHost: x\r\n\r\nset httpkey b\r\n",
    )
    .await;
    expect_missing(&node, "httpkey").await;
    // `Host:` alone, in any case, as Redis checks it.
    expect_closed_silently(&node, b"host: x\r\nset httpkey b\r\n").await;
    expect_closed_silently(&node, b"HOST: x\r\nset httpkey b\r\n").await;
    expect_missing(&node, "httpkey").await;
}

#[tokio::test]
async fn a_browser_post_carrying_flushall_leaves_existing_keys_intact() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    send(&mut s, b"SET keep1 a\r\nSET keep2 b\r\n").await;
    expect_bytes(&mut s, b"+OK\r\n+OK\r\n").await;

    // What `fetch("http://127.0.0.1:port", {method: "POST", body})` sends from a page.
    let body = "FLUSHALL\r\n{\"command\":\"FLUSHALL\"}\r\nSET pwned 1\r\n";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n\
         Content-Length: {len}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nAccept: */*\r\n\
         Origin: http://attacker.example\r\nReferer: http://attacker.example/\r\n\
         Accept-Encoding: gzip, deflate\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n{body}",
        port = node.port(),
        len = body.len(),
    );
    expect_closed_silently(&node, request.as_bytes()).await;

    send(
        &mut s,
        b"GET keep1\r\nGET keep2\r\nDBSIZE\r\nEXISTS pwned\r\n",
    )
    .await;
    expect_bytes(&mut s, b"$1\r\na\r\n$1\r\nb\r\n:2\r\n:0\r\n").await;
}

#[tokio::test]
async fn an_http_request_line_closes_the_connection_at_once() {
    let node = spawn_node(|_| {}).await;
    // The request line alone closes: no wrong-arity error for GET, no waiting for Host:.
    for line in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /index.html HTTP/1.0\r\n",
        b"PUT /k HTTP/1.1\r\n",
        b"DELETE /k HTTP/1.1\r\n",
        b"OPTIONS * HTTP/1.1\r\n",
        b"PATCH /k HTTP/1.1\r\n",
        b"TRACE / HTTP/1.1\r\n",
        b"CONNECT 127.0.0.1:7001 HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        expect_closed_silently(&node, line).await;
    }
    // A page's custom method is a command name: it must not run either.
    expect_closed_silently(&node, b"SET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    expect_missing(&node, "/").await;
}

#[tokio::test]
async fn a_multibulk_post_or_host_command_closes_the_connection() {
    let node = spawn_node(|_| {}).await;
    expect_closed_silently(
        &node,
        b"*1\r\n$4\r\nPOST\r\n*3\r\n$3\r\nSET\r\n$7\r\nhttpkey\r\n$1\r\nb\r\n",
    )
    .await;
    expect_closed_silently(&node, b"*2\r\n$4\r\npost\r\n$1\r\n/\r\n").await;
    expect_closed_silently(&node, b"*2\r\n$5\r\nHost:\r\n$1\r\nx\r\nPING\r\n").await;
    expect_missing(&node, "httpkey").await;
}

#[tokio::test]
async fn requests_before_the_http_line_are_answered() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    send(
        &mut s,
        b"SET before 1\r\nPING\r\nPOST / HTTP/1.1\r\nSET after 1\r\nPING\r\n",
    )
    .await;
    let got = read_to_eof(&mut s).await;
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n+PONG\r\n");
    let mut s = connect(node.addr).await;
    send(&mut s, b"EXISTS before\r\nEXISTS after\r\n").await;
    expect_bytes(&mut s, b":1\r\n:0\r\n").await;
}

#[tokio::test]
async fn keys_and_values_named_like_http_words_still_work() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    send(
        &mut s,
        b"SET post 1\r\nGET post\r\nSET Host: x\r\nGET Host:\r\n\
          SET key HTTP/1.1\r\nGET key\r\nGET / HTTP/1.1 extra\r\n\
          *3\r\n$3\r\nSET\r\n$1\r\n/\r\n$8\r\nHTTP/1.1\r\n*2\r\n$3\r\nGET\r\n$1\r\n/\r\n",
    )
    .await;
    expect_bytes(
        &mut s,
        b"+OK\r\n$1\r\n1\r\n+OK\r\n$1\r\nx\r\n+OK\r\n$8\r\nHTTP/1.1\r\n\
          -ERR wrong number of arguments for 'get' command\r\n+OK\r\n$8\r\nHTTP/1.1\r\n",
    )
    .await;
    // The JSON protocol is not HTTP either: its objects start with `{`.
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c
        .request(json!({"command": "SET", "key": "POST", "value": "Host: x"}))
        .await;
    assert_eq!(reply["status"], "success", "{reply}");
    let reply = c.request(json!({"command": "GET", "key": "POST"})).await;
    assert_eq!(reply["value"], "Host: x", "{reply}");
    // The node still serves new connections.
    let mut s = TcpStream::connect(node.addr).await.expect("connect");
    send(&mut s, b"PING\r\n").await;
    expect_bytes(&mut s, b"+PONG\r\n").await;
}

#[test]
fn the_real_binary_logs_a_security_warning_with_the_peer_address() {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let port = free_port();
    let node = BinProcess::server(1, port, dir.path(), &[]);

    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(common::WAIT))
        .expect("read timeout");
    let peer = s.local_addr().expect("local address").to_string();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n\r\nset httpkey b\r\n")
        .expect("send");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read until the node closes");
    assert!(
        got.is_empty(),
        "answered {:?}",
        String::from_utf8_lossy(&got)
    );

    let mentions = || {
        node.stderr()
            .lines()
            .filter(|l| l.contains("SECURITY ATTACK") && l.contains(&peer))
            .count()
    };
    common::wait_until_blocking("the security warning", common::WAIT, || mentions() > 0);
    let log = node.stderr();
    assert!(
        log.contains("Cross Protocol Scripting"),
        "Redis's wording expected:\n{log}"
    );
    assert!(log.contains("WARN"), "logged as a warning:\n{log}");
    // Once for that connection, though it sent both POST and Host:.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(mentions(), 1, "{log}");
}
