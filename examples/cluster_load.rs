//! Load through the cluster client: `callers` concurrent tasks of one `ClusterClient` running
//! SET or GET on random keys for a while against `--servers`, then the rate. Used for the
//! replicated cluster's figure "through the cluster client" (docs/performance.md), which
//! redis-benchmark cannot measure (it does not route by `md5(key) mod N`).
//!
//! ```sh
//! cargo run --release --example cluster_load -- 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 set 5 50
//! ```
//! Arguments: servers, `set` or `get`, seconds (default 5), callers (default 50), keys
//! (default 100000), value size (default 100).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minikv::{ClientConfig, ClusterClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let servers: Vec<String> = args
        .first()
        .ok_or("usage: cluster_load SERVERS set|get [SECONDS] [CALLERS] [KEYS] [SIZE]")?
        .split(',')
        .map(str::to_string)
        .collect();
    let op = args.get(1).map_or("set", String::as_str).to_string();
    let number = |i: usize, default: u64| -> Result<u64, String> {
        args.get(i).map_or(Ok(default), |a| {
            a.parse().map_err(|e| format!("argument {a:?}: {e}"))
        })
    };
    let seconds = number(2, 5)?;
    let callers = number(3, 50)?;
    let keys = number(4, 100_000)?.max(1);
    let size = number(5, 100)? as usize;
    let client = Arc::new(ClusterClient::new(ClientConfig {
        servers,
        ..ClientConfig::default()
    }));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let value = vec![b'x'; size];
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let (client, done, errors, stop, value, op) = (
                client.clone(),
                done.clone(),
                errors.clone(),
                stop.clone(),
                value.clone(),
                op.clone(),
            );
            tokio::spawn(async move {
                let mut n = c.wrapping_mul(7919);
                while !stop.load(Ordering::Relaxed) {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let key = format!("key:{:012}", (n >> 16) % keys);
                    let ok = if op == "get" {
                        client.get(key.as_bytes()).await.is_ok()
                    } else {
                        client.set(key.as_bytes(), &value, None).await.is_ok()
                    };
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{op}: {:.0} req/s ({n} in {elapsed:.1} s, {} errors, {callers} callers)",
        n as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
