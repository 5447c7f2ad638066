//! Pub/sub fan-out: one publisher, `S` subscribers of one channel; prints messages delivered
//! per second (subscribers × messages ÷ the time from the first PUBLISH until every
//! subscriber has read every message). Used for the pub/sub figure in docs/performance.md,
//! through `scripts/bench/pubsub.sh`, which runs it against a minikv node and a redis-server in
//! the same run.
//!
//! ```text
//! cargo run --release --example pubsub_fanout -- HOST:PORT [SUBSCRIBERS] [MESSAGES] [PAYLOAD] [WINDOW]
//! cargo run --release --example pubsub_fanout -- 127.0.0.1:7001 100 20000 64 64
//! ```
//! The publisher keeps `WINDOW` PUBLISHes in flight (pipelined). Every message has the same
//! size, so a subscriber knows it is done when it has read `MESSAGES` frames' worth of bytes:
//! no parsing on the reading side. The last line is
//! `pubsub_fanout: <deliveries/s> deliveries/s, <publishes/s> publishes/s, <ms> ms`.
//! Point it at 127.0.0.1 only; the channel is `fanout:bench`.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHANNEL: &str = "fanout:bench";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    let subscribers: usize = args.get(1).map_or(Ok(100), |a| a.parse())?;
    let messages: usize = args.get(2).map_or(Ok(20_000), |a| a.parse())?;
    let payload_len: usize = args.get(3).map_or(Ok(64), |a| a.parse())?;
    let window: usize = args.get(4).map_or(Ok(64), |a| a.parse())?.max(1);
    let payload = "x".repeat(payload_len);
    let frame_len = encode(&["message", CHANNEL, &payload]).len();
    let want = frame_len * messages;

    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let mut s = TcpStream::connect(&addr).await?;
        s.set_nodelay(true)?;
        let confirm = encode(&["subscribe", CHANNEL]).len() + ":1\r\n".len();
        s.write_all(&request(&["SUBSCRIBE", CHANNEL])).await?;
        let mut buf = vec![0u8; confirm];
        s.read_exact(&mut buf).await?;
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0;
            while got < want {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::Error::other("subscriber closed early"));
                }
                got += n;
            }
            Ok::<_, std::io::Error>(Instant::now())
        }));
    }

    let mut publisher = TcpStream::connect(&addr).await?;
    publisher.set_nodelay(true)?;
    let one = request(&["PUBLISH", CHANNEL, &payload]);
    let start = Instant::now();
    let mut sent = 0;
    let mut answered = 0;
    let mut replies = vec![0u8; 64 * 1024];
    while answered < messages {
        let batch = window.min(messages - sent).min(window - (sent - answered));
        if batch > 0 {
            let mut out = Vec::with_capacity(one.len() * batch);
            for _ in 0..batch {
                out.extend_from_slice(&one);
            }
            publisher.write_all(&out).await?;
            sent += batch;
        }
        // Replies are `:<receivers>\r\n`: count their line ends.
        let n = publisher.read(&mut replies).await?;
        if n == 0 {
            return Err("the server closed the publisher".into());
        }
        answered += replies[..n].iter().filter(|&&b| b == b'\n').count();
    }
    let published = start.elapsed();
    let mut last = start;
    for reader in readers {
        last = last.max(reader.await??);
    }
    let elapsed = last - start;
    let deliveries = (subscribers * messages) as f64 / elapsed.as_secs_f64();
    let publishes = messages as f64 / published.as_secs_f64();
    println!(
        "pubsub_fanout: {deliveries:.0} deliveries/s, {publishes:.0} publishes/s, {} ms",
        elapsed.as_millis()
    );
    Ok(())
}

/// A RESP multibulk request.
fn request(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// A RESP2 array of bulk strings, as a subscriber receives it.
fn encode(items: &[&str]) -> Vec<u8> {
    request(items)
}
