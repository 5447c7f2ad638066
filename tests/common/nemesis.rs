//! A nemesis harness for the replicated cluster (issue 10): real `minikv server` processes,
//! each with its own data directory and optionally its own network namespace; faults (SIGKILL
//! and restart, SIGSTOP and SIGCONT, partitions); workers issuing random GET/SET/INCR over
//! plain RESP connections that record a history for [`super::linearizability::check`]; and
//! final reads of every key from every node, appended to the history so the checker judges
//! them too. It judges nothing itself.
//!
//! Nodes are started as `minikv server <ID> <PORT> --cluster A1,A2,A3 [--replicas R]
//! --data-dir DIR`, the bus on PORT+10000. On loopback the ports are chosen so that PORT+10000
//! is free too; in namespaces every node has the same port on its own address.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::linearizability::{Call, Operation, Outcome, Ret};
use super::netns::NetNs;
use super::process;
use super::raw::resp_from;
use super::{Rng, WAIT};

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// `--replicas R`, when set.
    pub replicas: Option<usize>,
    /// One network namespace per node (needed for [`Cluster::partition`]).
    pub netns: bool,
    /// More arguments for every node.
    pub extra: Vec<String>,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            nodes: 3,
            replicas: None,
            netns: false,
            extra: Vec::new(),
        }
    }
}

/// A fault, or the repair of one. Nodes are 0-based (node `i` has id `i + 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL.
    Kill(usize),
    /// Start again on the same port and data directory.
    Restart(usize),
    /// SIGSTOP.
    Pause(usize),
    /// SIGCONT.
    Resume(usize),
    /// Cut the two groups apart.
    Partition(Vec<usize>, Vec<usize>),
    /// Remove every partition.
    Heal,
}

/// A cluster of `minikv` processes; every process is killed and every namespace removed on
/// drop.
pub struct Cluster {
    members: Vec<Member>,
    config: ClusterConfig,
    /// Declared last: dropped after the processes that keep its namespaces alive.
    net: Option<NetNs>,
}

/// One node: its address, data directory and current process.
struct Member {
    addr: SocketAddr,
    dir: TempDir,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Cluster {
    /// Starts `config.nodes` nodes and waits until each accepts connections.
    ///
    /// # Panics
    /// If a node exits or does not accept within [`WAIT`] (its log is shown).
    pub fn start(config: ClusterConfig) -> Cluster {
        let n = config.nodes;
        let net = config.netns.then(|| NetNs::create(n));
        let addrs: Vec<SocketAddr> = match &net {
            // Nothing else lives in these namespaces: one fixed port for all.
            Some(net) => (0..n)
                .map(|i| SocketAddr::new(IpAddr::V4(net.addr(i)), NETNS_PORT))
                .collect(),
            None => bus_free_ports(n)
                .into_iter()
                .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
                .collect(),
        };
        let members = addrs
            .iter()
            .map(|&addr| {
                let dir = tempfile::tempdir().expect("create a data directory");
                let log = dir.path().join("node.log");
                Member {
                    addr,
                    dir,
                    log,
                    child: None,
                    paused: false,
                }
            })
            .collect();
        let mut cluster = Cluster {
            members,
            config,
            net,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_accepting(i);
        }
        cluster
    }

    /// The client addresses, in id order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.addr).collect()
    }

    /// The namespaces, when started with `netns`.
    pub fn net(&self) -> Option<&NetNs> {
        self.net.as_ref()
    }

    /// Node `i`'s log so far (stderr).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].log).unwrap_or_default()
    }

    /// Applies one fault.
    pub fn apply(&mut self, fault: &Fault) {
        match fault {
            Fault::Kill(i) => self.kill(*i),
            Fault::Restart(i) => self.restart(*i),
            Fault::Pause(i) => self.pause(*i),
            Fault::Resume(i) => self.resume(*i),
            Fault::Partition(a, b) => self.partition(a, b),
            Fault::Heal => self.heal(),
        }
    }

    /// SIGKILLs node `i` (a paused node too) and reaps it.
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut child) = m.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        m.paused = false;
    }

    /// Starts node `i` again, on the same port and data directory, and waits until it
    /// accepts; a node still running is killed first.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_accepting(i);
    }

    /// SIGSTOPs node `i`.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
        self.members[i].paused = true;
    }

    /// SIGCONTs node `i`.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
        self.members[i].paused = false;
    }

    /// Cuts the nodes in `a` off from those in `b` (client traffic still reaches all).
    ///
    /// # Panics
    /// Unless the cluster was started with `netns`.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        self.net
            .as_ref()
            .expect("partitions need a cluster started with netns")
            .partition(a, b);
    }

    /// Removes every partition (nothing to do without namespaces).
    pub fn heal(&self) {
        if let Some(net) = &self.net {
            net.heal();
        }
    }

    /// Undoes every fault in place: heals, resumes paused nodes, restarts dead ones.
    pub fn recover(&mut self) {
        self.heal();
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i);
            }
            if self.members[i].child.is_none() {
                self.restart(i);
            }
        }
    }

    fn spawn(&mut self, i: usize) {
        let addrs = self.addrs();
        let m = &self.members[i];
        let mut args = node_args(
            i,
            &addrs,
            &self.config,
            m.dir.path().to_str().expect("UTF-8"),
        );
        if self.net.is_some() {
            // Clients come from the bridge's address, which is not loopback.
            args.extend(["--protected-mode".into(), "no".into()]);
        }
        let mut command = match &self.net {
            Some(net) => net.command(i, process::binary()),
            None => Command::new(process::binary()),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("open the node log");
        let child = command
            .args(&args)
            .env("RUST_LOG", "info")
            .env_remove("MINIKV_REQUIREPASS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a minikv node");
        self.members[i].child = Some(child);
    }

    fn wait_accepting(&mut self, i: usize) {
        let deadline = Instant::now() + WAIT;
        let addr = self.members[i].addr;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            let exited = self.members[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("node {} exited with {status}; log:\n{}", i + 1, self.log(i));
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not accept on {addr} within {WAIT:?}; log:\n{}",
                i + 1,
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, i: usize, signal: &str) {
        let Some(child) = &self.members[i].child else {
            panic!("node {} is not running", i + 1);
        };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} node {}", i + 1);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            // SIGKILL works on a stopped process too.
            self.kill(i);
        }
    }
}

/// The arguments that start node `i` (0-based) of a cluster at `addrs`.
pub fn node_args(i: usize, addrs: &[SocketAddr], config: &ClusterConfig, dir: &str) -> Vec<String> {
    let list: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    let mut args = vec![
        "server".to_string(),
        (i + 1).to_string(),
        addrs[i].port().to_string(),
        "--host".to_string(),
        addrs[i].ip().to_string(),
        "--cluster".to_string(),
        list.join(","),
        "--data-dir".to_string(),
        dir.to_string(),
    ];
    if let Some(r) = config.replicas {
        args.extend(["--replicas".to_string(), r.to_string()]);
    }
    args.extend(config.extra.iter().cloned());
    args
}

/// A random schedule of `rounds` faults, each followed by its repair, so that at most one
/// fault is in force at a time (a majority of 3 stays up) and everything is repaired at the
/// end. Partitions are only drawn when `partitions` is set.
pub fn schedule(rng: &mut Rng, rounds: usize, nodes: usize, partitions: bool) -> Vec<Fault> {
    let mut faults = Vec::with_capacity(2 * rounds);
    for _ in 0..rounds {
        let i = rng.below(nodes as u64) as usize;
        let kinds = if partitions { 3 } else { 2 };
        match rng.below(kinds) {
            0 => faults.extend([Fault::Kill(i), Fault::Restart(i)]),
            1 => faults.extend([Fault::Pause(i), Fault::Resume(i)]),
            _ => {
                let others = (0..nodes).filter(|&j| j != i).collect();
                faults.extend([Fault::Partition(vec![i], others), Fault::Heal]);
            }
        }
    }
    faults
}

/// One clock for a whole history: nanoseconds since it started.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// What the workers do.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Keys `nemesis:0..keys`: few, so that operations collide.
    pub keys: usize,
    /// Connect, read and write timeout per request.
    pub timeout: Duration,
    /// When true an error reply to a write means it was not applied (dropped from the
    /// history); when false (the default, always sound) it is indeterminate, since a
    /// forwarded proposal can still commit after the node gave up waiting for it.
    pub errors_are_definite: bool,
    /// Pause between a worker's requests.
    pub pace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            keys: 5,
            timeout: Duration::from_millis(500),
            errors_are_definite: false,
            pace: Duration::from_millis(5),
        }
    }
}

/// Worker threads issuing random operations against random nodes until stopped.
pub struct Workers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Operation>>>,
}

impl Workers {
    /// Starts `count` workers (clients `0..count`) against `addrs`, seeded from `seed`.
    pub fn start(
        count: usize,
        addrs: &[SocketAddr],
        config: &WorkerConfig,
        clock: Clock,
        seed: u64,
    ) -> Workers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|client| {
                let (stop, addrs, config) = (stop.clone(), addrs.to_vec(), config.clone());
                let mut rng = Rng::seeded(seed ^ (client as u64 + 1).wrapping_mul(0x9e37_79b9));
                std::thread::spawn(move || {
                    let mut conns: Vec<Option<Conn>> = addrs.iter().map(|_| None).collect();
                    let mut history = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let node = rng.below(addrs.len() as u64) as usize;
                        let (key, call) = random_op(&mut rng, config.keys);
                        let conn = &mut conns[node];
                        let op = perform(conn, addrs[node], client, key, call, &config, clock);
                        history.push(op);
                        std::thread::sleep(config.pace);
                    }
                    history
                })
            })
            .collect();
        Workers { stop, threads }
    }

    /// Stops the workers and returns everything they did.
    ///
    /// # Panics
    /// If a worker panicked.
    pub fn stop(self) -> Vec<Operation> {
        self.stop.store(true, Ordering::Relaxed);
        let mut history = Vec::new();
        for t in self.threads {
            history.extend(t.join().expect("worker thread did not panic"));
        }
        history
    }
}

/// Reads every key of `keys` from every node at `addrs`, retrying errors until each read
/// succeeds, and returns the reads as operations of client `client` (for the checker).
///
/// # Panics
/// If a node gives no answer for a key within three [`WAIT`]s.
pub fn final_reads(
    addrs: &[SocketAddr],
    keys: &[String],
    client: usize,
    clock: Clock,
) -> Vec<Operation> {
    let config = WorkerConfig {
        timeout: Duration::from_secs(2),
        ..WorkerConfig::default()
    };
    let mut reads = Vec::new();
    for (node, &addr) in addrs.iter().enumerate() {
        let mut conn = None;
        for key in keys {
            let deadline = Instant::now() + 3 * WAIT;
            loop {
                let op = perform(
                    &mut conn,
                    addr,
                    client,
                    key.clone(),
                    Call::Get,
                    &config,
                    clock,
                );
                if matches!(op.outcome, Outcome::Done { .. }) {
                    reads.push(op);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} never answered GET {key}: {op}",
                    node + 1
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    reads
}

/// The keys workers with `config` use.
pub fn keys(config: &WorkerConfig) -> Vec<String> {
    (0..config.keys).map(key).collect()
}

/// A random operation: GET half the time, else SET of a small integer (so INCR always
/// applies) or INCR.
pub fn random_op(rng: &mut Rng, keys: usize) -> (String, Call) {
    let k = key(rng.below(keys as u64) as usize);
    let call = match rng.below(4) {
        0 | 1 => Call::Get,
        2 => Call::Set(rng.below(1000).to_string()),
        _ => Call::Incr,
    };
    (k, call)
}

/// The request for `call` on `key`, as RESP.
pub fn request(key: &str, call: &Call) -> Vec<u8> {
    match call {
        Call::Get => resp_from(&["GET", key]),
        Call::Set(v) => resp_from(&["SET", key, v]),
        Call::Incr => resp_from(&["INCR", key]),
        Call::Del => resp_from(&["DEL", key]),
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`.
    Simple(String),
    /// `-text`.
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$n` (`None` for `$-1`).
    Bulk(Option<Vec<u8>>),
}

/// Parses one reply at the start of `buf`: `Ok(None)` if more bytes are needed, else the
/// reply and its length.
///
/// # Errors
/// A reply that is not RESP2 simple, error, integer or bulk (arrays are never expected).
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[1..eol]).map_err(|e| e.to_string())?;
    let after = eol + 2;
    match buf.first() {
        Some(b'+') => Ok(Some((Reply::Simple(line.to_string()), after))),
        Some(b'-') => Ok(Some((Reply::Error(line.to_string()), after))),
        Some(b':') => {
            let n = line.parse().map_err(|_| format!("bad integer {line:?}"))?;
            Ok(Some((Reply::Int(n), after)))
        }
        Some(b'$') => {
            let len: i64 = line.parse().map_err(|_| format!("bad length {line:?}"))?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), after)));
            }
            let end = after + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("bulk string not terminated by CRLF".into());
            }
            Ok(Some((Reply::Bulk(Some(buf[after..end].to_vec())), end + 2)))
        }
        _ => Err(format!(
            "unexpected reply {:?}",
            String::from_utf8_lossy(buf)
        )),
    }
}

/// What `reply` to `call` means for the history (`errors_are_definite`: see
/// [`WorkerConfig`]). `at` is the completion time.
pub fn outcome(call: &Call, reply: Reply, at: u64, errors_are_definite: bool) -> Outcome {
    let ret = match (call, reply) {
        (_, Reply::Error(_)) => {
            // A failed read changed nothing; a failed write may still commit later.
            return if *call == Call::Get || errors_are_definite {
                Outcome::Failed
            } else {
                Outcome::Unknown
            };
        }
        (Call::Get, Reply::Bulk(v)) => {
            Ret::Value(v.map(|b| String::from_utf8_lossy(&b).into_owned()))
        }
        (Call::Set(_), Reply::Simple(s)) if s == "OK" => Ret::Ok,
        (Call::Incr, Reply::Int(n)) => Ret::Int(n),
        (Call::Del, Reply::Int(n)) if n >= 0 => Ret::Count(n as u64),
        (call, reply) => panic!("unexpected reply to {call:?}: {reply:?}"),
    };
    Outcome::Done { at, ret }
}

/// One connection to a node.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Sends `call` on `key` to `addr` (connecting if `conn` is empty) and records it. A failed
/// connect is `Failed` (nothing was sent); a timeout or lost connection after sending is
/// `Unknown` and drops the connection.
fn perform(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    client: usize,
    key: String,
    call: Call,
    config: &WorkerConfig,
    clock: Clock,
) -> Operation {
    let invoke = clock.now();
    let mut op = Operation {
        client,
        key,
        call,
        invoke,
        outcome: Outcome::Failed,
    };
    if conn.is_none() {
        let Ok(stream) = TcpStream::connect_timeout(&addr, config.timeout) else {
            return op;
        };
        let timeouts = stream
            .set_read_timeout(Some(config.timeout))
            .and(stream.set_write_timeout(Some(config.timeout)));
        if timeouts.is_err() {
            return op;
        }
        *conn = Some(Conn {
            stream,
            buf: Vec::new(),
        });
    }
    let c = conn.as_mut().expect("connected above");
    match exchange(c, &request(&op.key, &op.call)) {
        Ok(reply) => op.outcome = outcome(&op.call, reply, clock.now(), config.errors_are_definite),
        Err(()) => {
            *conn = None;
            op.outcome = Outcome::Unknown;
        }
    }
    op
}

/// Writes `request` and reads one reply; `Err` on any io error, timeout or bad frame.
fn exchange(conn: &mut Conn, request: &[u8]) -> Result<Reply, ()> {
    conn.stream.write_all(request).map_err(drop)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((reply, used)) = parse_reply(&conn.buf).map_err(drop)? {
            conn.buf.drain(..used);
            return Ok(reply);
        }
        let mut chunk = [0u8; 4096];
        match conn.stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(()),
            Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
        }
        if Instant::now() > deadline {
            return Err(());
        }
    }
}

/// Worker key `i`.
fn key(i: usize) -> String {
    format!("nemesis:{i}")
}

/// `n` distinct ports that were free a moment ago, each with PORT+10000 (its bus) free too.
fn bus_free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(n);
    for _ in 0..1000 {
        if ports.len() == n {
            return ports;
        }
        let port = process::free_port();
        let Some(bus) = port.checked_add(BUS_OFFSET) else {
            continue;
        };
        if ports.contains(&port)
            || ports.contains(&bus)
            || ports.iter().any(|p| p + BUS_OFFSET == port)
        {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            ports.push(port);
        }
    }
    panic!("no {n} free ports with free bus ports found");
}

/// The client port of every node in namespaces (each has its own address).
const NETNS_PORT: u16 = 7000;
/// The bus listens on the client port plus this.
const BUS_OFFSET: u16 = 10000;
