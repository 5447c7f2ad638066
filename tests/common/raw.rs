//! Raw sockets: exact bytes out and in, for what a client library would hide (framing, error
//! texts, closes), RESP request builders and a RESP frame scanner, and the JSON protocol's
//! line-per-reply connection. Every read is bounded by [`WAIT`](super::WAIT).

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::within;

/// Opens a raw TCP connection to `addr`.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    within("connecting", TcpStream::connect(addr))
        .await
        .expect("connect to the node")
}

/// Writes `bytes` and flushes.
pub async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.expect("write to the node");
    stream.flush().await.expect("flush to the node");
}

/// Reads exactly as many bytes as `expected` has and asserts they are equal.
pub async fn expect_bytes(stream: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0u8; expected.len()];
    within("reading the expected reply", stream.read_exact(&mut got))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "reading {:?}: {e}",
                String::from_utf8_lossy(expected).into_owned()
            )
        });
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "raw reply"
    );
}

/// Reads until the peer closes the connection.
pub async fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    within(
        "the node closing the connection",
        stream.read_to_end(&mut out),
    )
    .await
    .expect("read until the node closes");
    out
}

/// Reads until what arrived contains `needle` (each read bounded by [`WAIT`](super::WAIT));
/// returns all of it, lossily decoded.
pub async fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut out = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if text.contains(needle) {
            return text;
        }
        let mut buf = [0u8; 4096];
        let n = within(needle, s.read(&mut buf)).await.expect("read");
        assert!(n > 0, "closed before {needle:?} arrived; got {text:?}");
        out.extend_from_slice(&buf[..n]);
    }
}

/// A RESP multibulk request: `resp(&[b"SET", b"k", b"v"])`.
pub fn resp(args: &[&[u8]]) -> Vec<u8> {
    resp_from(args)
}

/// [`resp`] for arguments of any byte-like type (`&str`, `Vec<u8>`...).
pub fn resp_from<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The length of the complete RESP2/RESP3 frame at `pos` of `buf`, or `None` if it has not
/// all arrived. Panics on a type byte RESP does not have.
pub fn frame_len(buf: &[u8], pos: usize) -> Option<usize> {
    let end = pos + buf.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[pos + 1..end]).expect("ASCII header");
    let after = end + 2;
    let count = |n: &str| n.parse::<i64>().expect("numeric header");
    match buf[pos] {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(after - pos),
        b'$' | b'=' | b'!' => {
            let n = count(line);
            if n < 0 {
                return Some(after - pos);
            }
            let total = after + n as usize + 2;
            (buf.len() >= total).then_some(total - pos)
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = count(line);
            let items = if buf[pos] == b'%' { n * 2 } else { n.max(0) };
            let mut at = after;
            for _ in 0..items {
                at += frame_len(buf, at)?;
            }
            Some(at - pos)
        }
        other => panic!("unexpected reply type byte {other:?}"),
    }
}

/// A JSON-protocol connection: requests out, one reply line in per request.
pub struct JsonConn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl JsonConn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> JsonConn {
        let (read, writer) = connect(addr).await.into_split();
        JsonConn {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Sends raw bytes as they are (no newline added).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write request");
        self.writer.flush().await.expect("flush request");
    }

    /// Sends one request object (no trailing newline, like the spec's Python client) and
    /// returns the reply object.
    pub async fn request(&mut self, request: serde_json::Value) -> serde_json::Value {
        let text = serde_json::to_vec(&request).expect("serialise request");
        self.send_raw(&text).await;
        self.reply().await
    }

    /// Reads one reply line and parses it; the line must end with `\n`.
    pub async fn reply(&mut self) -> serde_json::Value {
        let line = self.line().await;
        assert!(
            line.ends_with('\n'),
            "reply not newline-terminated: {line:?}"
        );
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?} is not JSON: {e}"))
    }

    /// Reads one raw line (empty at end of stream).
    pub async fn line(&mut self) -> String {
        let mut line = String::new();
        within("a JSON reply line", self.reader.read_line(&mut line))
            .await
            .expect("read reply line");
        line
    }

    /// Half-closes the connection (no more requests).
    pub async fn shutdown_write(&mut self) {
        self.writer.shutdown().await.expect("shutdown write half");
    }

    /// Asserts the node closed the connection: the next read is end of stream.
    pub async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        within(
            "the node closing the connection",
            self.reader.read_to_end(&mut rest),
        )
        .await
        .expect("read until close");
        assert!(
            rest.is_empty(),
            "expected the connection to close, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}
