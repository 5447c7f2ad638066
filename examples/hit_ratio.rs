//! Cache hit ratio under a Zipf workload: the eviction benchmark of docs/performance.md, run
//! against a minikv node and a redis-server with the same `maxmemory` by
//! `scripts/bench/hit_ratio.sh`.
//!
//! ```text
//! cargo run --release --example hit_ratio -- HOST:PORT [KEYS] [REQUESTS] [VALUE] [PID]
//! cargo run --release --example hit_ratio -- 127.0.0.1:7001 4000000 8000000 100 12345
//! ```
//! A cache-aside client: GET a key drawn from Zipf(0.99) over `KEYS` keys (rank 1 the most
//! requested); on a miss, SET it to a `VALUE`-byte value. `CONNECTIONS` (4) connections each
//! keep `WINDOW` (16) GETs in flight. The first half of the `REQUESTS` warms the cache; the
//! hit ratio counts the second half only. With `PID`, the server's resident set size is read
//! from /proc every 50 ms and its peak printed. The last line is
//! `hit_ratio: <ratio> hits=<n> misses=<n> oom=<n> ops/s=<n> peak_rss=<bytes>`
//! (`oom`: SETs refused with an -OOM error). Point it at 127.0.0.1 only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 4;
const WINDOW: usize = 16;
const EXPONENT: f64 = 0.99;

#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    oom: AtomicU64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    let keys: usize = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let requests: u64 = args.get(2).map_or(Ok(2_000_000), |a| a.parse())?;
    let value_len: usize = args.get(3).map_or(Ok(100), |a| a.parse())?;
    let pid: Option<u32> = args.get(4).map(|a| a.parse()).transpose()?;
    let cdf = Arc::new(zipf_cdf(keys.max(1), EXPONENT));
    let value = Arc::new(vec![b'v'; value_len]);

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = pid.map(|pid| {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = rss_bytes(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });

    let counts = Arc::new(Counts::default());
    let per_connection = requests / CONNECTIONS as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for seed in 0..CONNECTIONS {
        let (addr, cdf, value, counts) = (
            addr.clone(),
            Arc::clone(&cdf),
            Arc::clone(&value),
            Arc::clone(&counts),
        );
        tasks.push(tokio::spawn(async move {
            client(&addr, seed as u64, per_connection, &cdf, &value, &counts).await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    if let Some(sampler) = sampler {
        sampler.await?;
    }
    let hits = counts.hits.load(Ordering::Relaxed);
    let misses = counts.misses.load(Ordering::Relaxed);
    let oom = counts.oom.load(Ordering::Relaxed);
    let ratio = hits as f64 / (hits + misses).max(1) as f64;
    println!(
        "hit_ratio: {ratio:.4} hits={hits} misses={misses} oom={oom} ops/s={:.0} peak_rss={}",
        (per_connection * CONNECTIONS as u64) as f64 / elapsed,
        peak.load(Ordering::Relaxed)
    );
    Ok(())
}

/// One connection's share: `requests` GETs in windows of [`WINDOW`], each miss followed by
/// its SET; only the second half counts.
async fn client(
    addr: &str,
    seed: u64,
    requests: u64,
    cdf: &[f64],
    value: &[u8],
    counts: &Counts,
) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut rng = fastrand::Rng::with_seed(0x5eed ^ seed);
    let mut reader = Replies::default();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut sent = 0;
    while sent < requests {
        let batch = (requests - sent).min(WINDOW as u64) as usize;
        let ranks: Vec<usize> = (0..batch).map(|_| sample(cdf, rng.f64())).collect();
        out.clear();
        for &rank in &ranks {
            encode(&mut out, &[b"GET", key(rank).as_bytes()]);
        }
        stream.write_all(&out).await?;
        let mut missed = Vec::new();
        for &rank in &ranks {
            match reader.next(&mut stream).await? {
                Reply::Nil => missed.push(rank),
                Reply::Value => {
                    if sent >= requests / 2 {
                        counts.hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Reply::Error(e) => return Err(std::io::Error::other(e)),
            }
        }
        if sent >= requests / 2 {
            counts
                .misses
                .fetch_add(missed.len() as u64, Ordering::Relaxed);
        }
        if !missed.is_empty() {
            out.clear();
            for &rank in &missed {
                encode(&mut out, &[b"SET", key(rank).as_bytes(), value]);
            }
            stream.write_all(&out).await?;
            for _ in &missed {
                match reader.next(&mut stream).await? {
                    Reply::Error(e) if e.starts_with("OOM") => {
                        counts.oom.fetch_add(1, Ordering::Relaxed);
                    }
                    Reply::Error(e) => return Err(std::io::Error::other(e)),
                    _ => {}
                }
            }
        }
        sent += batch as u64;
    }
    Ok(())
}

fn key(rank: usize) -> String {
    format!("key:{rank:010}")
}

/// The cumulative distribution of Zipf(`s`) over ranks 1..=n, normalised to end at 1.
fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n);
    let mut sum = 0.0;
    for rank in 1..=n {
        sum += 1.0 / (rank as f64).powf(s);
        cdf.push(sum);
    }
    for p in &mut cdf {
        *p /= sum;
    }
    cdf
}

/// The rank (0-based) whose cumulative probability first reaches `u`.
fn sample(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|p| *p < u).min(cdf.len() - 1)
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

enum Reply {
    Nil,
    Value,
    Error(String),
}

/// A RESP2 reply reader for the three shapes GET and SET answer with.
#[derive(Default)]
struct Replies {
    buf: Vec<u8>,
    start: usize,
}

impl Replies {
    async fn next(&mut self, stream: &mut TcpStream) -> std::io::Result<Reply> {
        loop {
            if let Some((reply, used)) = parse(&self.buf[self.start..]) {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok(reply);
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("server closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One reply at the start of `buf` and its length, or `None` when incomplete.
fn parse(buf: &[u8]) -> Option<(Reply, usize)> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = &buf[1..line_end];
    match buf.first()? {
        b'+' => Some((Reply::Value, line_end + 2)),
        b'-' => Some((
            Reply::Error(String::from_utf8_lossy(line).into_owned()),
            line_end + 2,
        )),
        b'$' => {
            let len: i64 = std::str::from_utf8(line).ok()?.parse().ok()?;
            if len < 0 {
                return Some((Reply::Nil, line_end + 2));
            }
            let total = line_end + 2 + len as usize + 2;
            (buf.len() >= total).then_some((Reply::Value, total))
        }
        _ => Some((
            Reply::Error(format!(
                "unexpected reply {:?}",
                String::from_utf8_lossy(buf)
            )),
            buf.len(),
        )),
    }
}
