//! Input limits that protect a node from one client: the query buffer limit closes a client
//! whose unparsed input grows past it, other clients keep being served, and the memory is
//! released.

mod common;

use common::{spawn_node, wait_until, WAIT};
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
