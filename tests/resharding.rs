//! Growing and shrinking a running replicated cluster (issue 11), as an operator does it:
//! `minikv server ID PORT --join HOST:PORT` adds a node with an empty shard, `minikv
//! rebalance` moves slots until every shard owns its share, `minikv remove-node` empties a
//! node's shard and takes the node out of every group. Meanwhile writers and readers keep
//! going through every node (redis-rs, no cluster awareness) and through the cluster client:
//! every operation succeeds, no acknowledged write is lost, TTLs survive, and each shard ends
//! with its share of the keys. Then the same with a source leader, a target leader and the
//! `rebalance` process killed (SIGKILL) in the middle of a move.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{binary, free_port, BinProcess};
use common::{wait_until_blocking, WAIT};
use minikv::client::router::{slot_of, SLOTS};
use redis::{Connection, RedisResult, Value};
use tempfile::TempDir;

/// Keys loaded before anything moves: enough that each shard's share is within ±5 % of the
/// mean by a wide margin (binomial spread about 1 % at 5 shards).
const KEYS: usize = 20_000;

/// Keys the cluster client writes (`c0..`), besides the preloaded ones.
const CLIENT_KEYS: usize = 2_000;

/// A cluster of `minikv server` processes, started with `--cluster` or added with `--join`.
struct Nodes {
    ports: BTreeMap<u64, u16>,
    buses: BTreeMap<u64, u16>,
    dirs: BTreeMap<u64, TempDir>,
    procs: BTreeMap<u64, BinProcess>,
    list: String,
}

impl Nodes {
    fn start(n: u64) -> Nodes {
        let mut nodes = Nodes {
            ports: BTreeMap::new(),
            buses: BTreeMap::new(),
            dirs: BTreeMap::new(),
            procs: BTreeMap::new(),
            list: String::new(),
        };
        for id in 1..=n {
            nodes.ports.insert(id, free_port());
            nodes.buses.insert(id, free_port());
            nodes
                .dirs
                .insert(id, tempfile::tempdir().expect("data directory"));
        }
        nodes.list = (1..=n)
            .map(|id| format!("127.0.0.1:{}@{}", nodes.ports[&id], nodes.buses[&id]))
            .collect::<Vec<_>>()
            .join(",");
        for id in 1..=n {
            nodes.run(id);
        }
        for id in 1..=n {
            wait_ok(nodes.ports[&id]);
        }
        nodes
    }

    /// Starts (or restarts) node `id` as it was first started.
    fn run(&mut self, id: u64) {
        let dir = self.dirs[&id].path().to_path_buf();
        let list = self.list.clone();
        let bus = self.buses[&id].to_string();
        let first = self.ports[&1].to_string();
        let join = format!("127.0.0.1:{first}");
        let args: Vec<&str> = if list.contains(&format!(":{}@", self.ports[&id])) {
            vec!["--cluster", &list]
        } else {
            vec!["--join", &join, "--bus-port", &bus]
        };
        let proc = BinProcess::server(id, self.ports[&id], &dir, &args);
        self.procs.insert(id, proc);
    }

    /// Adds node `id` with `--join` through node 1, and waits until every node sees its shard
    /// with a leader.
    fn join(&mut self, id: u64) {
        self.ports.insert(id, free_port());
        self.buses.insert(id, free_port());
        self.dirs
            .insert(id, tempfile::tempdir().expect("data directory"));
        self.run(id);
        for port in self.ports.values() {
            wait_until_blocking(&format!("node {id} known on port {port}"), WAIT * 3, || {
                shard_slots(*port).is_some_and(|s| s.contains_key(&id))
                    && info(*port).contains("cluster_state:ok")
            });
        }
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut p) = self.procs.remove(&id) {
            p.kill();
        }
    }

    fn servers(&self) -> String {
        self.procs
            .keys()
            .map(|id| format!("127.0.0.1:{}", self.ports[id]))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn live_ports(&self) -> Vec<u16> {
        self.procs.keys().map(|id| self.ports[id]).collect()
    }

    fn assert_no_panics(&self) {
        for (id, p) in &self.procs {
            let log = p.stderr();
            assert!(!log.contains("panicked"), "node {id} panicked:\n{log}");
        }
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.dirs[&id].path().to_path_buf()
    }
}

fn conn(port: u16) -> Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let c = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    c
}

fn try_conn(port: u16) -> Option<Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let c = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    c.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    Some(c)
}

fn info(port: u16) -> String {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return String::new();
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return String::new();
    };
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query::<String>(&mut c)
        .unwrap_or_default()
}

fn wait_ok(port: u16) {
    wait_until_blocking(&format!("port {port} cluster_state:ok"), WAIT * 3, || {
        info(port).contains("cluster_state:ok")
    });
}

/// One shard as CLUSTER SHARDS shows it: its slots and its leader's client port.
struct ShardView {
    slots: Vec<u16>,
    leader: Option<u16>,
}

/// CLUSTER SHARDS as node `port` sees it, by shard id.
fn cluster_shards(port: u16) -> Option<BTreeMap<u64, ShardView>> {
    let mut c = try_conn(port)?;
    let reply: Value = redis::cmd("CLUSTER").arg("SHARDS").query(&mut c).ok()?;
    let Value::Array(shards) = reply else {
        return None;
    };
    let field = |fields: &[Value], name: &str| {
        fields
            .chunks(2)
            .find(|p| p[0] == Value::BulkString(name.as_bytes().to_vec()))
            .map(|p| p[1].clone())
    };
    let mut out = BTreeMap::new();
    for shard in shards {
        let Value::Array(fields) = shard else {
            return None;
        };
        let Some(Value::Int(id)) = field(&fields, "shard-index") else {
            return None;
        };
        let mut view = ShardView {
            slots: Vec::new(),
            leader: None,
        };
        if let Some(Value::Array(ranges)) = field(&fields, "slots") {
            for r in ranges.chunks(2) {
                if let (Value::Int(a), Value::Int(b)) = (&r[0], &r[1]) {
                    view.slots.extend(*a as u16..=*b as u16);
                }
            }
        }
        if let Some(Value::Array(nodes)) = field(&fields, "nodes") {
            for node in nodes {
                let Value::Array(f) = node else { continue };
                if field(&f, "role") == Some(Value::BulkString(b"master".to_vec())) {
                    if let Some(Value::Int(p)) = field(&f, "port") {
                        view.leader = Some(p as u16);
                    }
                }
            }
        }
        out.insert(id as u64, view);
    }
    Some(out)
}

/// Per shard id, the slots CLUSTER SHARDS says it owns (as node `port` sees it).
fn shard_slots(port: u16) -> Option<BTreeMap<u64, Vec<u16>>> {
    let shards = cluster_shards(port)?;
    Some(shards.into_iter().map(|(id, v)| (id, v.slots)).collect())
}

/// The client port of the leader of shard `shard`, as node `port` reports it.
fn shard_leader(port: u16, shard: u64) -> Option<u16> {
    cluster_shards(port)?.remove(&shard)?.leader
}

/// Runs `minikv ARGS...` to completion; its exit status and output.
fn run_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run minikv");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// What the writers know: per key, the last value acknowledged, and the values written
/// whose outcome is unknown (an error after sending).
#[derive(Default)]
struct Ledger {
    acked: HashMap<String, String>,
    unknown: HashMap<String, Vec<String>>,
}

/// Notes that `key` may now hold `value` (a write whose outcome is unknown).
fn maybe_written(ledger: &Mutex<Ledger>, key: &str, value: &str) {
    ledger
        .lock()
        .expect("ledger")
        .unknown
        .entry(key.to_string())
        .or_default()
        .push(value.to_string());
}

/// Writers and readers through every node until stopped; counts operations and failures (an
/// operation that still fails after 5 tries, 200 ms apart).
struct Load {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    ledger: Arc<Mutex<Ledger>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(ports: Vec<u16>) -> Load {
        let load = Load {
            stop: Arc::default(),
            ops: Arc::default(),
            failures: Arc::default(),
            ledger: Arc::default(),
            threads: Vec::new(),
        };
        let mut threads = Vec::new();
        for w in 0..4usize {
            let (stop, ops, failures, ledger) = (
                load.stop.clone(),
                load.ops.clone(),
                load.failures.clone(),
                load.ledger.clone(),
            );
            let ports = ports.clone();
            threads.push(std::thread::spawn(move || {
                let mut conns: Vec<Option<Connection>> =
                    ports.iter().map(|p| try_conn(*p)).collect();
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    // Writer w owns keys k{i} with i % 4 == w: one writer per key, so the
                    // last acknowledged value is the one that must be there.
                    let i = (fastrand::usize(0..KEYS / 4)) * 4 + w;
                    let key = format!("k{i}");
                    let value = format!("w{w}-{seq}");
                    let c = fastrand::usize(0..conns.len());
                    let write = seq.is_multiple_of(2);
                    let mut outcome: RedisResult<()> = Ok(());
                    for _ in 0..5 {
                        if conns[c].is_none() {
                            conns[c] = try_conn(ports[c]);
                        }
                        outcome = match conns[c].as_mut() {
                            None => {
                                Err(redis::RedisError::from((redis::ErrorKind::Io, "node down")))
                            }
                            Some(con) if write => {
                                redis::cmd("SET").arg(&key).arg(&value).query(con)
                            }
                            Some(con) => redis::cmd("GET")
                                .arg(&key)
                                .query::<Option<String>>(con)
                                .map(|_| ()),
                        };
                        if outcome.is_ok() {
                            break;
                        }
                        if write {
                            maybe_written(&ledger, &key, &value);
                        }
                        std::thread::sleep(Duration::from_millis(200));
                        conns[c] = None;
                    }
                    match outcome {
                        Ok(()) if write => {
                            ledger.lock().expect("ledger").acked.insert(key, value);
                        }
                        Ok(()) => {}
                        Err(e) => failures
                            .lock()
                            .expect("failures")
                            .push(format!("{key} via port {}: {e}", ports[c])),
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // The cluster client: its own keys (`c{i}`), routed by its slot table.
        let (stop, ops, failures, ledger) = (
            load.stop.clone(),
            load.ops.clone(),
            load.failures.clone(),
            load.ledger.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let client = minikv::ClusterClient::new(minikv::ClientConfig {
                servers: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
                ..minikv::ClientConfig::default()
            });
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let key = format!("c{}", fastrand::usize(0..CLIENT_KEYS));
                let value = format!("c-{seq}");
                let outcome = runtime.block_on(async {
                    if seq.is_multiple_of(2) {
                        client
                            .set(key.as_bytes(), value.as_bytes(), None)
                            .await
                            .map(|_| true)
                    } else {
                        client.get(key.as_bytes()).await.map(|_| false)
                    }
                });
                match outcome {
                    Ok(true) => {
                        ledger.lock().expect("ledger").acked.insert(key, value);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        maybe_written(&ledger, &key, &value);
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("cluster client, {key}: {e}"));
                    }
                }
                ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
        Load { threads, ..load }
    }

    /// Stops the load; its ledger and failures.
    fn finish(self) -> (Ledger, Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let ledger = std::mem::take(&mut *self.ledger.lock().expect("ledger"));
        let failures = self.failures.lock().expect("failures").clone();
        (ledger, failures, self.ops.load(Ordering::Relaxed))
    }
}

/// Loads `k0..k{KEYS}` with `v{i}`, every tenth with a one-hour TTL.
fn preload(port: u16) {
    let mut c = conn(port);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for i in chunk {
            if i.is_multiple_of(10) {
                pipe.cmd("SET")
                    .arg(format!("k{i}"))
                    .arg(format!("v{i}"))
                    .arg("EX")
                    .arg(3600)
                    .ignore();
            } else {
                pipe.cmd("SET")
                    .arg(format!("k{i}"))
                    .arg(format!("v{i}"))
                    .ignore();
            }
        }
        let _: () = pipe.query(&mut c).expect("preload");
    }
    // Collections too (issue 12): slot moves carry every type, TTLs included.
    let mut pipe = redis::pipe();
    for i in (0..KEYS).step_by(25) {
        pipe.cmd("HSET")
            .arg(format!("h{i}"))
            .arg("f")
            .arg(i)
            .arg("g")
            .arg("x")
            .ignore();
        pipe.cmd("RPUSH")
            .arg(format!("l{i}"))
            .arg("a")
            .arg(i)
            .ignore();
        pipe.cmd("EXPIRE").arg(format!("l{i}")).arg(3600).ignore();
        pipe.cmd("SADD")
            .arg(format!("s{i}"))
            .arg(i)
            .arg("m")
            .ignore();
        pipe.cmd("ZADD")
            .arg(format!("z{i}"))
            .arg(i)
            .arg("m")
            .arg("-inf")
            .arg("n")
            .ignore();
    }
    let _: () = pipe.query(&mut c).expect("preload collections");
}

/// The collections [`preload`] wrote, read through `port`.
fn verify_collections(port: u16) {
    let mut c = conn(port);
    for i in (0..KEYS).step_by(25) {
        let h: Vec<String> = redis::cmd("HGETALL")
            .arg(format!("h{i}"))
            .query(&mut c)
            .expect("HGETALL");
        assert_eq!(
            h,
            ["f".to_string(), i.to_string(), "g".into(), "x".into()],
            "h{i}"
        );
        let l: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("l{i}"))
            .arg(0)
            .arg(-1)
            .query(&mut c)
            .expect("LRANGE");
        assert_eq!(l, ["a".to_string(), i.to_string()], "l{i}");
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("l{i}"))
            .query(&mut c)
            .expect("TTL");
        assert!(
            (3000..=3600).contains(&ttl),
            "l{i} has TTL {ttl} after the moves"
        );
        let n: i64 = redis::cmd("SCARD")
            .arg(format!("s{i}"))
            .query(&mut c)
            .expect("SCARD");
        assert_eq!(n, 2, "s{i}");
        let z: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("z{i}"))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut c)
            .expect("ZRANGE");
        assert_eq!(
            z,
            ["n".to_string(), "-inf".into(), "m".into(), i.to_string()],
            "z{i}"
        );
    }
}

/// Every key is there with its last acknowledged value (or one whose outcome was unknown),
/// read through `port`; TTLs of the preloaded keys never written since are still about an
/// hour.
fn verify(port: u16, ledger: &Ledger) {
    let mut c = conn(port);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    for chunk in keys.chunks(500) {
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(chunk).query(&mut c).expect("MGET");
        for (key, got) in chunk.iter().zip(values) {
            let i: usize = key[1..].parse().expect("index");
            let want = ledger
                .acked
                .get(key)
                .cloned()
                .unwrap_or_else(|| format!("v{i}"));
            let maybe = ledger.unknown.get(key).cloned().unwrap_or_default();
            let got = got.unwrap_or_else(|| panic!("{key} is gone (last acknowledged {want})"));
            assert!(
                got == want || maybe.contains(&got),
                "{key}: {got}, but {want} was acknowledged last"
            );
        }
    }
    for (key, want) in ledger.acked.iter().filter(|(k, _)| k.starts_with('c')) {
        let got: Option<String> = redis::cmd("GET").arg(key).query(&mut c).expect("GET");
        let maybe = ledger.unknown.get(key).cloned().unwrap_or_default();
        let got = got.unwrap_or_else(|| panic!("{key} is gone (last acknowledged {want})"));
        assert!(
            &got == want || maybe.contains(&got),
            "{key}: {got}, but {want} was acknowledged last (cluster client)"
        );
    }
    for i in (0..KEYS).step_by(10) {
        let key = format!("k{i}");
        if ledger.acked.contains_key(&key) || ledger.unknown.contains_key(&key) {
            continue; // SET without EX cleared its TTL
        }
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut c).expect("TTL");
        assert!(
            (3000..=3600).contains(&ttl),
            "{key} has TTL {ttl} after the moves"
        );
    }
}

/// Every shard owns SLOTS/n slots (±1), every node agrees, and each shard holds its share of
/// the keys within ±5 %.
fn assert_balanced(ports: &[u16], shards: usize) {
    // Every node takes the table from the meta group a moment after it changes.
    wait_until_blocking("every node to see the same table", WAIT * 3, || {
        let first = shard_slots(ports[0]);
        first.is_some() && ports.iter().all(|p| shard_slots(*p) == first)
    });
    let table = shard_slots(ports[0]).expect("CLUSTER SHARDS");
    let sizes: BTreeMap<u64, usize> = table.iter().map(|(id, s)| (*id, s.len())).collect();
    assert_eq!(table.len(), shards, "slots per shard: {sizes:?}");
    let share = usize::from(SLOTS) / shards;
    let mut owner = vec![0u64; usize::from(SLOTS)];
    for (id, slots) in &table {
        assert!(
            slots.len() == share || slots.len() == share + 1,
            "shard {id} owns {} slots, not {share}: {sizes:?}",
            slots.len()
        );
        for s in slots {
            owner[usize::from(*s)] = *id;
        }
    }
    let mut keys: BTreeMap<u64, usize> = BTreeMap::new();
    for i in 0..KEYS {
        *keys
            .entry(owner[usize::from(slot_of(format!("k{i}").as_bytes()))])
            .or_default() += 1;
    }
    let mean = KEYS as f64 / shards as f64;
    for (id, n) in keys {
        assert!(
            (n as f64 - mean).abs() <= mean * 0.05,
            "shard {id} holds {n} keys, the mean is {mean}"
        );
    }
}

fn rebalance(nodes: &Nodes) -> String {
    let servers = nodes.servers();
    let (ok, out) = run_cli(&["rebalance", "--servers", &servers]);
    assert!(ok, "rebalance failed:\n{out}");
    out
}

#[test]
fn grows_three_four_five_and_shrinks_back_to_three_under_load() {
    let mut nodes = Nodes::start(3);
    preload(nodes.ports[&1]);
    let load = Load::start(nodes.live_ports());

    nodes.join(4);
    let out = rebalance(&nodes);
    assert!(out.contains("done"), "{out}");
    assert_balanced(&nodes.live_ports(), 4);

    nodes.join(5);
    rebalance(&nodes);
    assert_balanced(&nodes.live_ports(), 5);

    for id in [5, 4] {
        let servers = nodes.servers();
        let (ok, out) = run_cli(&["remove-node", &id.to_string(), "--servers", &servers]);
        assert!(ok, "remove-node {id} failed:\n{out}");
        nodes.kill(id);
    }
    assert_balanced(&nodes.live_ports(), 3);
    let (ledger, failures, ops) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {ops} operations failed: {failures:?}",
        failures.len()
    );
    assert!(ops > 100, "the load barely ran ({ops} operations)");
    for port in nodes.live_ports() {
        verify(port, &ledger);
        verify_collections(port);
    }
    // A removed node's data directory no longer holds any shard.
    let _ = nodes.dir(1);
    nodes.assert_no_panics();
}

#[test]
fn kills_during_moves_leave_a_valid_table_and_lose_nothing() {
    let mut nodes = Nodes::start(3);
    preload(nodes.ports[&1]);
    nodes.join(4);
    let load = Load::start(nodes.live_ports());

    // The rebalance process itself, killed while it moves slots; a second run finishes.
    let servers = nodes.servers();
    let mut cli = Command::new(binary())
        .args(["rebalance", "--servers", &servers, "--batch", "64"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("rebalance");
    wait_until_blocking("a move under way", WAIT * 3, || {
        shard_slots(nodes.ports[&1]).is_some_and(|t| t.get(&4).is_some_and(|s| !s.is_empty()))
    });
    let _ = cli.kill();
    let _ = cli.wait();

    // A source leader killed mid-move, then a target leader: each time a rebalance runs,
    // and the kill comes once a move is recorded in the table (copying or switching).
    for (victim, role) in [(1, "source"), (4, "target")] {
        let mut cli = Command::new(binary())
            .args(["rebalance", "--servers", &servers, "--batch", "64"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rebalance");
        wait_until_blocking("a move recorded in the table", WAIT * 3, || {
            nodes
                .live_ports()
                .iter()
                .any(|p| info(*p).contains("cluster_migrations_in_progress:1"))
        });
        let leads = shard_leader(nodes.ports[&victim], victim) == Some(nodes.ports[&victim]);
        nodes.kill(victim);
        // The rebalance goes too, so that moves are left for the next kill; the table must
        // stay valid, and a rerun balances it.
        std::thread::sleep(Duration::from_millis(200));
        let _ = cli.kill();
        let _ = cli.wait();
        eprintln!("killed node {victim} (leading shard {victim}: {leads}), the {role} of the moves, mid-move");
        nodes.run(victim);
        for p in nodes.live_ports() {
            wait_ok(p);
        }
    }

    // No move is left half done, and a rerun ends balanced.
    wait_until_blocking("moves cancelled or finished", WAIT * 6, || {
        nodes
            .live_ports()
            .iter()
            .all(|p| info(*p).contains("cluster_migrations_in_progress:0"))
    });
    rebalance(&nodes);
    assert_balanced(&nodes.live_ports(), 4);
    let (ledger, failures, ops) = load.finish();
    // Operations through a killed node fail while it is down; the others must not.
    let _ = (failures, ops);
    for port in nodes.live_ports() {
        verify(port, &ledger);
    }
    nodes.assert_no_panics();
}
