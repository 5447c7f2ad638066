//! A load generator for the spec's JSON protocol: `C` connections each send requests one at a
//! time (send, wait for the reply line, repeat), like the spec's Python client, and the total
//! rate is printed. Used for the JSON figure in docs/performance.md.
//!
//! ```text
//! cargo run --release --example json_load -- [HOST:PORT] [CONNECTIONS] [REQUESTS] [get|set|mixed]
//! cargo run --release --example json_load -- 127.0.0.1:7001 50 1000000 mixed
//! ```
//! Point it at 127.0.0.1 only. Keys are `json:0` .. `json:9999`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    let connections: usize = args.get(1).map_or(Ok(50), |a| a.parse())?;
    let requests: usize = args.get(2).map_or(Ok(1_000_000), |a| a.parse())?;
    let mode = args.get(3).cloned().unwrap_or_else(|| "mixed".into());
    let per_connection = requests.div_ceil(connections.max(1));

    // Preload the keys GETs will read.
    let mut setup = Client::connect(&addr).await?;
    for i in 0..10_000 {
        setup.call(&set_request(i)).await?;
    }

    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let addr = addr.clone();
        let mode = mode.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr).await?;
            let mut latencies = Vec::with_capacity(per_connection);
            for i in 0..per_connection {
                let key = (c * per_connection + i) % 10_000;
                let request = match mode.as_str() {
                    "set" => set_request(key),
                    "get" => get_request(key),
                    _ if i % 2 == 0 => set_request(key),
                    _ => get_request(key),
                };
                let sent = Instant::now();
                let reply = client.call(&request).await?;
                latencies.push(sent.elapsed());
                if !reply.contains("\"status\":\"success\"") {
                    return Err(format!("unexpected reply: {reply}").into());
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(requests);
    for task in tasks {
        latencies.extend(task.await?.map_err(|e| e.to_string())?);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "json {mode}: {} requests over {connections} connections in {:.2} s: {:.0} req/s, \
         p50 {:.3} ms, p99 {:.3} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
    );
    Ok(())
}

fn set_request(i: usize) -> String {
    format!("{{\"command\": \"SET\", \"key\": \"json:{i}\", \"value\": \"value-{i}\"}}")
}

fn get_request(i: usize) -> String {
    format!("{{\"command\": \"GET\", \"key\": \"json:{i}\"}}")
}

/// One connection: write a request object (no newline, as the spec's client sends it), read
/// one reply line.
struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    line: String,
}

impl Client {
    async fn connect(addr: &str) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(read),
            writer: write,
            line: String::new(),
        })
    }

    async fn call(&mut self, request: &str) -> std::io::Result<String> {
        self.writer.write_all(request.as_bytes()).await?;
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(self.line.clone())
    }
}
