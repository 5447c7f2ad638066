//! Input limits that protect a node from one client: the query buffer limit closes a client
//! whose unparsed input grows past it, other clients keep being served, and the memory is
//! released; the read buffer, grown for a burst of large values, loses none of them; and a
//! large value written from its own buffer arrives in its place among the other replies.

mod common;

use common::raw::{connect, resp, send, JsonConn};
use common::{spawn_node, wait_until, within, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_the_query_buffer_limit_is_closed_and_others_are_served() {
    let node = spawn_node(|c| c.resp_limits.max_query_buffer = 1 << 20).await;
    let mut abuser = TcpStream::connect(node.addr).await.expect("connect");
    // One bulk of 4 MB announced (within the 512 MB bulk limit), sent in 64 KB pieces: the
    // request can never complete within a 1 MB query buffer.
    abuser
        .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4194304\r\n")
        .await
        .expect("header");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    let mut closed = false;
    for _ in 0..64 {
        if abuser.write_all(&chunk).await.is_err() {
            closed = true;
            break;
        }
        sent += chunk.len();
    }
    if !closed {
        // The node closes without a reply: reading sees EOF (or a reset) within the bound.
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(WAIT, abuser.read(&mut buf))
            .await
            .expect("the node closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "got {read:?}");
    }
    assert!(
        sent >= 1 << 20,
        "closed only after the limit: {sent} bytes sent"
    );

    let mut con = redis::Client::open(node.redis_url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("others still connect");
    let pong: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
    wait_until("the closed client to leave CLIENT LIST", WAIT, || {
        let mut con = con.clone();
        async move {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut con)
                .await
                .unwrap_or_default();
            list.lines().count() == 1
        }
    })
    .await;
}

/// A pipeline of large values, sent in one burst, fills every read the node makes, so its
/// read buffer grows read after read (up to 128 KiB per read) and most requests arrive split
/// across two reads: every value must still be stored and read back byte for byte, and the
/// node keeps serving once the buffer has gone back to its small size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_large_values_is_read_whole_however_the_reads_split_it() {
    let node = spawn_node(|_| {}).await;
    let mut con = redis::Client::open(node.redis_url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    // Sizes that straddle every read boundary, and one bulk larger than the largest read.
    let sizes: Vec<usize> = (0..96)
        .map(|i| 16_384 + i * 1_237)
        .chain([300_000])
        .collect();
    let value =
        |i: usize, len: usize| -> Vec<u8> { (0..len).map(|j| (i * 31 + j * 7) as u8).collect() };
    let mut set = redis::pipe();
    for (i, len) in sizes.iter().enumerate() {
        set.cmd("SET").arg(format!("big:{i}")).arg(value(i, *len));
    }
    let () = set.query_async(&mut con).await.expect("pipelined SETs");
    let mut get = redis::pipe();
    for i in 0..sizes.len() {
        get.cmd("GET").arg(format!("big:{i}"));
    }
    let got: Vec<Vec<u8>> = get.query_async(&mut con).await.expect("pipelined GETs");
    assert_eq!(got.len(), sizes.len());
    for (i, (bytes, len)) in got.iter().zip(&sizes).enumerate() {
        assert!(
            *bytes == value(i, *len),
            "value {i} ({len} bytes) came back different"
        );
    }
    let pong: String = redis::cmd("PING")
        .query_async(&mut con)
        .await
        .expect("PING after the burst");
    assert_eq!(pong, "PONG");
}

/// A value of 64 KiB or more is written from where it lies (one `writev` with the replies
/// before it), not copied into the write buffer: in a pipeline mixing it with small replies,
/// every byte still arrives in order, in RESP2 and in RESP3, and over JSON (which copies it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_value_arrives_in_its_place_among_the_other_replies() {
    let node = spawn_node(|_| {}).await;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let edge = vec![b'e'; 64 * 1024];
    let mut stream = connect(node.addr).await;
    for hello in [&b"2"[..], b"3"] {
        let mut request = resp(&[b"HELLO", hello]);
        request.extend(resp(&[b"SET", b"big", &big]));
        request.extend(resp(&[b"SET", b"edge", &edge]));
        for args in [
            &[&b"GET"[..], b"big"][..],
            &[b"PING"],
            &[b"GET", b"edge"],
            &[b"GET", b"big"],
            &[b"GET", b"missing"],
            &[b"ECHO", b"after"],
        ] {
            request.extend(resp(args));
        }
        send(&mut stream, &request).await;
        let bulk = |v: &[u8]| [format!("${}\r\n", v.len()).as_bytes(), v, b"\r\n"].concat();
        let nil: &[u8] = if hello == b"3" { b"_\r\n" } else { b"$-1\r\n" };
        let expected = [
            &b"+OK\r\n+OK\r\n"[..],
            &bulk(&big),
            b"+PONG\r\n",
            &bulk(&edge),
            &bulk(&big),
            nil,
            &bulk(b"after"),
        ]
        .concat();
        // HELLO's own reply (a map) first: skip it, then the rest must match byte for byte.
        let mut got = Vec::new();
        within("the pipeline's replies", async {
            loop {
                let mut chunk = vec![0u8; 64 * 1024];
                let n = stream.read(&mut chunk).await.expect("read replies");
                assert!(n > 0, "closed after {} bytes", got.len());
                got.extend_from_slice(&chunk[..n]);
                if got.ends_with(&bulk(b"after")) {
                    break;
                }
            }
        })
        .await;
        let start = got
            .windows(10)
            .position(|w| w == b"+OK\r\n+OK\r\n")
            .expect("the SET replies after HELLO's");
        let got = &got[start..];
        assert_eq!(
            got.len(),
            expected.len(),
            "RESP{}: reply length",
            hello[0] - b'0'
        );
        let first = got.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(first, None, "RESP{}: first differing byte", hello[0] - b'0');
    }
    let mut json = JsonConn::connect(node.addr).await;
    let reply = json
        .request(serde_json::json!({"command": "GET", "key": "edge"}))
        .await;
    assert_eq!(reply["status"], "success", "{reply}");
    assert_eq!(reply["value"].as_str().map(str::len), Some(edge.len()));
}
