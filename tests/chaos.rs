//! Fault tolerance in the cluster: three real `minikv` processes, each logging every write
//! with `--appendonly yes --appendfsync always`, serve cluster-client traffic from several
//! tasks while one of them is SIGKILLed and restarted again and again. The test records every
//! request (its key's node, when it started and ended, how it ended) and when the victim was
//! down, then asserts:
//!
//! - requests to the live nodes never fail, not even while the victim is down;
//! - requests to the victim fail only if they overlap one of its outages, and then only with
//!   `RetriesExhausted` after the whole retry policy (fixed delay or jittered backoff);
//! - every write the cluster acknowledged, before or after any of the kills, is readable with
//!   its value at the end (`always` fsyncs before acknowledging, so SIGKILL loses nothing).
//!
//! Plus the retry policy's backoff option, end to end: the client CLI flag and the jittered
//! delays against a port nobody listens on.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{free_port, run_client, BinProcess};
use common::{blocking, within};
use minikv::client::{Backoff, ClientError, RetryPolicy};
use minikv::{node_for, ClientConfig, ClusterClient};

/// Nodes in the cluster.
const NODES: usize = 3;
/// The node killed and restarted (0-based: server 2).
const VICTIM: usize = 1;
/// Kill/restart cycles.
const CYCLES: usize = 3;
/// How long the victim serves before each kill, and after the last restart.
const UP: Duration = Duration::from_millis(1000);
/// How long the victim stays dead each time.
const DOWN: Duration = Duration::from_millis(500);
/// Concurrent client tasks; the first half use the fixed delay, the rest jittered backoff.
const WORKERS: usize = 6;
/// Retries after a failed attempt.
const RETRIES: u32 = 3;
/// The fixed retry delay, and the base of the exponential backoff.
const RETRY_DELAY: Duration = Duration::from_millis(50);
/// Every node logs and fsyncs each write before acknowledging it.
const ALWAYS: [&str; 4] = ["--appendonly", "yes", "--appendfsync", "always"];

/// A stretch of time during which the victim was (or may have been) unreachable: from just
/// before the SIGKILL until its restarted process accepted a connection.
#[derive(Debug, Clone, Copy)]
struct Outage {
    from: Instant,
    to: Option<Instant>,
}

impl Outage {
    /// True when `[start, end]` overlaps the outage.
    fn overlaps(&self, start: Instant, end: Instant) -> bool {
        self.to.is_none_or(|to| start < to) && end > self.from
    }

    /// True when `[start, end]` lies entirely inside the outage.
    fn contains(&self, start: Instant, end: Instant) -> bool {
        self.to.is_some_and(|to| start >= self.from && end <= to)
    }
}

/// One request made by a worker.
#[derive(Debug)]
struct Call {
    /// `SET key` or `GET key`.
    what: String,
    /// The key's node (0-based).
    node: usize,
    /// Which retry policy the worker used.
    backoff: Backoff,
    start: Instant,
    end: Instant,
    /// `None` when the request succeeded.
    error: Option<ClientError>,
}

/// What one worker did.
#[derive(Debug, Default)]
struct Work {
    calls: Vec<Call>,
    /// Writes acknowledged with `+OK`: key and value.
    acked: Vec<(String, String)>,
    /// Reads that succeeded but returned something other than the acknowledged value.
    wrong_reads: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_live_nodes_never_fail_and_acknowledged_writes_survive_sigkill() {
    let dirs: Vec<_> = (0..NODES)
        .map(|_| tempfile::tempdir().expect("create a data directory"))
        .collect();
    let ports = distinct_free_ports(NODES);
    let mut nodes = Vec::new();
    for (i, (dir, &port)) in dirs.iter().zip(&ports).enumerate() {
        let path = dir.path().to_path_buf();
        let id = i as u64 + 1;
        nodes.push(blocking(move || BinProcess::server(id, port, &path, &ALWAYS)).await);
    }
    let servers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let fixed = ClusterClient::new(client_config(&servers, Backoff::Fixed));
    let jittered = ClusterClient::new(client_config(
        &servers,
        Backoff::Exponential {
            max: Duration::from_millis(200),
        },
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let outages = Arc::new(Mutex::new(Vec::<Outage>::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let client = if id < WORKERS / 2 {
                fixed.clone()
            } else {
                jittered.clone()
            };
            tokio::spawn(work(id, client, stop.clone()))
        })
        .collect();

    // The chaos schedule, on its own thread: BinProcess waits for the port by blocking.
    let victim = nodes.remove(VICTIM);
    let chaos = {
        let (outages, stop) = (outages.clone(), stop.clone());
        let (port, dir) = (ports[VICTIM], dirs[VICTIM].path().to_path_buf());
        std::thread::spawn(move || chaos(victim, port, dir, &outages, &stop))
    };
    let mut work = Work::default();
    for worker in workers {
        // Workers stop with the chaos schedule, so the bound is the schedule's length plus
        // the usual wait.
        let bound = UP * (CYCLES as u32 + 1) + DOWN * CYCLES as u32 + common::WAIT;
        let done = tokio::time::timeout(bound, worker)
            .await
            .expect("workers finish soon after the chaos schedule")
            .expect("worker task did not panic");
        work.calls.extend(done.calls);
        work.acked.extend(done.acked);
        work.wrong_reads.extend(done.wrong_reads);
    }
    let victim = blocking(move || chaos.join().expect("chaos thread did not panic")).await;
    let outages = outages.lock().expect("outages lock").clone();
    assert_eq!(outages.len(), CYCLES, "every kill was recorded");

    assert!(
        work.wrong_reads.is_empty(),
        "reads returned something other than the acknowledged value: {:?}",
        &work.wrong_reads[..work.wrong_reads.len().min(5)]
    );
    let mut failures_on_victim = 0;
    for call in &work.calls {
        let Some(error) = &call.error else { continue };
        assert_eq!(
            call.node,
            VICTIM,
            "{} to live server {} failed: {error}",
            call.what,
            call.node + 1
        );
        assert!(
            outages.iter().any(|o| o.overlaps(call.start, call.end)),
            "{} to server {} failed outside every outage: {error}",
            call.what,
            VICTIM + 1
        );
        match error {
            ClientError::RetriesExhausted {
                server, retries, ..
            } => {
                assert_eq!((*server, *retries), (VICTIM + 1, RETRIES), "{error}");
            }
            other => panic!("{} failed with {other:?}, not RetriesExhausted", call.what),
        }
        if call.backoff == Backoff::Fixed {
            // The whole policy ran: three pauses of the fixed delay.
            let took = call.end - call.start;
            assert!(
                took >= RETRY_DELAY * RETRIES,
                "{} gave up after {took:?}",
                call.what
            );
        }
        failures_on_victim += 1;
    }
    assert!(
        failures_on_victim > 0,
        "no request ever hit the dead node: the test did not test anything"
    );
    let live_during_outages = work
        .calls
        .iter()
        .filter(|c| c.node != VICTIM && outages.iter().any(|o| o.contains(c.start, c.end)))
        .count();
    assert!(
        live_during_outages > 0,
        "no request to a live node completed while the victim was down"
    );
    let first_restart = outages[0].to.expect("restarted");
    let victim_after_restart = work
        .calls
        .iter()
        .filter(|c| c.node == VICTIM && c.error.is_none() && c.start > first_restart)
        .count();
    assert!(
        victim_after_restart > 0,
        "the restarted node served nothing"
    );
    let on_victim = work
        .acked
        .iter()
        .filter(|(k, _)| node_for(k.as_bytes(), NODES) == VICTIM)
        .count();
    assert!(on_victim > 0, "no write to the victim was acknowledged");

    // Every acknowledged write, including those the victim acknowledged before each SIGKILL.
    let reader = ClusterClient::new(client_config(&servers, Backoff::Fixed));
    for chunk in work.acked.chunks(500) {
        let keys: Vec<&[u8]> = chunk.iter().map(|(k, _)| k.as_bytes()).collect();
        let values = within("reading back the acknowledged writes", reader.mget(&keys))
            .await
            .expect("MGET after the chaos");
        for ((key, value), got) in chunk.iter().zip(values) {
            assert_eq!(
                got.as_deref(),
                Some(value.as_bytes()),
                "acknowledged write {key} (server {}) lost",
                node_for(key.as_bytes(), NODES) + 1
            );
        }
    }
    eprintln!(
        "{} requests, {} acknowledged writes ({on_victim} on the victim), {failures_on_victim} \
         failed on the dead node, {live_during_outages} served by live nodes during outages",
        work.calls.len(),
        work.acked.len()
    );
    drop((victim, nodes));
}

#[test]
fn retry_backoff_flag_selects_jittered_exponential_backoff() {
    let dead = format!("127.0.0.1:{}", free_port());
    let fixed = run_client(&["--servers", &dead, "servers"], "");
    assert!(
        fixed
            .stdout
            .contains("Retry Policy: 3 retries with 0.5s delay\n"),
        "{}",
        fixed.stdout
    );
    let exponential = run_client(
        &[
            "--servers",
            &dead,
            "--retry-backoff",
            "exponential",
            "servers",
        ],
        "",
    );
    assert!(
        exponential.stdout.contains(
            "Retry Policy: 3 retries with exponential backoff (0.5s base, 5s cap, full jitter)\n"
        ),
        "{}",
        exponential.stdout
    );
    let wrong = run_client(
        &["--servers", &dead, "--retry-backoff", "linear", "servers"],
        "",
    );
    assert_ne!(wrong.code, Some(0), "an unknown backoff is refused");
    assert!(wrong.stderr.contains("--retry-backoff"), "{}", wrong.stderr);
}

#[tokio::test]
async fn jittered_backoff_retries_a_dead_node_within_its_windows() {
    // Nothing listens on the port: every attempt is refused at once, so the time taken is
    // the pauses alone. Windows 100 + 200 + 400 ms bound them; the draws are random.
    let dead = format!("127.0.0.1:{}", free_port());
    let events = Arc::new(Mutex::new(Vec::new()));
    let recorded = events.clone();
    let mut config = client_config(
        std::slice::from_ref(&dead),
        Backoff::Exponential {
            max: Duration::from_millis(400),
        },
    );
    config.retry.delay = Duration::from_millis(100);
    let client = ClusterClient::new(config)
        .on_retry(move |e| recorded.lock().expect("events lock").push(e.attempt));
    let started = Instant::now();
    let err = within("retries against a dead node", client.get(b"k"))
        .await
        .expect_err("nobody listens");
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            ClientError::RetriesExhausted {
                server: 1,
                retries: RETRIES,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(*events.lock().expect("events lock"), vec![1, 2, 3]);
    // 700 ms of windows, plus generous slack for three refused connects on a busy machine.
    assert!(took < Duration::from_millis(700 + 1000), "took {took:?}");
}

/// Writes and reads back unique keys until `stop`, recording every request.
async fn work(id: usize, client: ClusterClient, stop: Arc<AtomicBool>) -> Work {
    let backoff = client.policy().backoff;
    let mut work = Work::default();
    // Bounded twice: by the chaos schedule's stop flag, and by a hard ceiling in case the
    // chaos thread dies early.
    let ceiling = Instant::now() + UP * (CYCLES as u32 + 1) + DOWN * CYCLES as u32 * 4;
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) || Instant::now() > ceiling {
            break;
        }
        let key = format!("chaos:{id}:{n}");
        let value = format!("value:{id}:{n}:{}", fastrand::u64(..));
        let node = node_for(key.as_bytes(), NODES);
        let start = Instant::now();
        let set = client.set(key.as_bytes(), value.as_bytes(), None).await;
        work.calls.push(Call {
            what: format!("SET {key}"),
            node,
            backoff,
            start,
            end: Instant::now(),
            error: set.err(),
        });
        if work.calls.last().is_some_and(|c| c.error.is_some()) {
            continue;
        }
        work.acked.push((key.clone(), value.clone()));
        let start = Instant::now();
        let get = client.get(key.as_bytes()).await;
        let end = Instant::now();
        let error = match get {
            Ok(got) if got.as_deref() == Some(value.as_bytes()) => None,
            Ok(got) => {
                work.wrong_reads
                    .push(format!("GET {key}: {got:?}, wanted {value}"));
                None
            }
            Err(e) => Some(e),
        };
        work.calls.push(Call {
            what: format!("GET {key}"),
            node,
            backoff,
            start,
            end,
            error,
        });
    }
    work
}

/// Kills `victim` and restarts it on the same port and data directory [`CYCLES`] times,
/// recording each outage; then lets traffic run for [`UP`] and raises `stop`. Returns the
/// last incarnation.
fn chaos(
    mut victim: BinProcess,
    port: u16,
    dir: PathBuf,
    outages: &Mutex<Vec<Outage>>,
    stop: &AtomicBool,
) -> BinProcess {
    for _ in 0..CYCLES {
        std::thread::sleep(UP);
        // Recorded before the kill and after the restart accepts: the recorded outage covers
        // the real one.
        outages.lock().expect("outages lock").push(Outage {
            from: Instant::now(),
            to: None,
        });
        victim.kill();
        std::thread::sleep(DOWN);
        victim = BinProcess::server(VICTIM as u64 + 1, port, &dir, &ALWAYS);
        if let Some(last) = outages.lock().expect("outages lock").last_mut() {
            last.to = Some(Instant::now());
        }
    }
    std::thread::sleep(UP);
    stop.store(true, Ordering::Relaxed);
    victim
}

/// The chaos clients' policy: short delays so outages are felt, a 1 s attempt timeout.
fn client_config(servers: &[String], backoff: Backoff) -> ClientConfig {
    ClientConfig {
        servers: servers.to_vec(),
        retry: RetryPolicy {
            retries: RETRIES,
            delay: RETRY_DELAY,
            timeout: Duration::from_secs(1),
            backoff,
        },
        ..ClientConfig::default()
    }
}

/// `n` different ports that were free a moment ago.
fn distinct_free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(n);
    for _ in 0..100 {
        if ports.len() == n {
            break;
        }
        let port = free_port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "found {n} distinct free ports");
    ports
}
