//! The replicated cluster (issue 10) as users run it: three `minikv server --cluster`
//! processes on loopback, reached with redis-rs, the JSON protocol, the `minikv client` REPL
//! and the [`minikv::ClusterClient`] library. Any node answers for any key (forwarding),
//! writes survive the death of a leader (SIGKILL) and of a node's whole data directory,
//! introspection speaks Redis's formats, commands that cannot span shards say so, and the
//! clients follow a failover.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::pki::Pki;
use common::process::{
    free_port, free_ports_with_bus, read_pipe_until, run_client, servers_arg, BinProcess,
    ClusterProcess,
};
use common::{wait_until_blocking, WAIT};
use minikv::protocol::Reply;
use minikv::{ClientConfig, ClusterClient};
use redis::{Connection, RedisResult, Value};
use tempfile::TempDir;

/// Three nodes started as separate processes, with their data directories.
struct Trio {
    ports: Vec<u16>,
    list: String,
    dirs: Vec<TempDir>,
    procs: Vec<Option<BinProcess>>,
}

impl Trio {
    fn start(extra: &[&str]) -> Trio {
        let trio = Trio::launch(extra);
        trio.wait_ok();
        trio
    }

    /// [`Trio::start`] without waiting for `cluster_state:ok` (which it checks over plain
    /// TCP without a password).
    fn launch(extra: &[&str]) -> Trio {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let buses: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let list = ports
            .iter()
            .zip(&buses)
            .map(|(p, b)| format!("127.0.0.1:{p}@{b}"))
            .collect::<Vec<_>>()
            .join(",");
        let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
        let mut trio = Trio {
            ports,
            list,
            dirs,
            procs: vec![None, None, None],
        };
        for i in 0..3 {
            trio.start_node(i, extra);
        }
        trio
    }

    fn start_node(&mut self, i: usize, extra: &[&str]) {
        let mut args = vec!["--cluster", &self.list];
        args.extend_from_slice(extra);
        let dir = self.dirs[i].path().to_path_buf();
        self.procs[i] = Some(BinProcess::server(i as u64 + 1, self.ports[i], &dir, &args));
    }

    /// Fails if any running node's log shows a panic (a peer must never panic a node).
    fn assert_no_panics(&self) {
        for (i, p) in self.procs.iter().enumerate() {
            if let Some(p) = p {
                let log = p.stderr();
                assert!(!log.contains("panicked"), "node {} panicked:\n{log}", i + 1);
            }
        }
    }

    /// The `--servers` list of the REPL: the three client ports in id order.
    fn servers(&self) -> String {
        servers_arg(&self.ports)
    }

    fn dir(&self, i: usize) -> PathBuf {
        self.dirs[i].path().to_path_buf()
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            p.kill();
        }
    }

    fn conn(&self, i: usize) -> Connection {
        conn_to(self.ports[i])
    }

    /// Waits until node `i` reports `cluster_state:ok`.
    fn wait_ok_on(&self, i: usize) {
        wait_cluster_ok(self.ports[i]);
    }

    fn wait_ok(&self) {
        for i in 0..3 {
            if self.procs[i].is_some() {
                self.wait_ok_on(i);
            }
        }
    }

    /// The node leading the shard of `key`, from CLUSTER SHARDS on node `via`.
    fn leader_of(&self, via: usize, key: &str) -> usize {
        let shard = minikv::node_for(key.as_bytes(), 3);
        let mut c = self.conn(via);
        let shards: Value = redis::cmd("CLUSTER")
            .arg("SHARDS")
            .query(&mut c)
            .expect("shards");
        let entry = field(&nth(&shards, shard), "nodes");
        let Value::Array(nodes) = entry else {
            panic!("no nodes for shard {shard}: {shards:?}");
        };
        for node in &nodes {
            if field(node, "role") == Value::BulkString(b"master".to_vec()) {
                let Value::Int(port) = field(node, "port") else {
                    panic!("no port in {node:?}");
                };
                return self
                    .ports
                    .iter()
                    .position(|p| i64::from(*p) == port)
                    .expect("a known port");
            }
        }
        panic!("no master for shard {shard} in {shards:?}");
    }
}

/// Waits until the node on `port` reports `cluster_state:ok`.
fn wait_cluster_ok(port: u16) {
    wait_until_blocking(&format!("port {port} cluster_state:ok"), WAIT * 3, || {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
            return false;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return false;
        };
        let info: RedisResult<String> = redis::cmd("CLUSTER").arg("INFO").query(&mut c);
        info.is_ok_and(|t| t.contains("cluster_state:ok"))
    });
}

/// A redis-rs connection to the node on `port`.
fn conn_to(port: u16) -> Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    conn
}

/// Element `i` of an array reply.
fn nth(v: &Value, i: usize) -> Value {
    match v {
        Value::Array(items) => items.get(i).cloned().expect("element"),
        other => panic!("not an array: {other:?}"),
    }
}

/// The value after `name` in a flat name/value array (RESP2's form of a map).
fn field(v: &Value, name: &str) -> Value {
    let Value::Array(items) = v else {
        panic!("not an array: {v:?}");
    };
    items
        .chunks(2)
        .find(|pair| pair[0] == Value::BulkString(name.as_bytes().to_vec()))
        .map(|pair| pair[1].clone())
        .unwrap_or_else(|| panic!("no {name} in {v:?}"))
}

fn get(c: &mut Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(c).expect("GET")
}

#[test]
fn any_node_serves_any_key_and_reports_the_cluster() {
    let trio = Trio::start(&[]);
    let mut conns: Vec<Connection> = (0..3).map(|i| trio.conn(i)).collect();
    for n in 0..60 {
        let key = format!("user:{n}");
        let via = n % 3;
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(n)
            .query(&mut conns[via])
            .expect("SET through any node");
    }
    for c in &mut conns {
        for n in 0..60 {
            assert_eq!(get(c, &format!("user:{n}")), Some(n.to_string()));
        }
    }
    // Split and recombined across shards, in the keys' order.
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg("user:1")
        .arg("missing")
        .arg("user:2")
        .arg("user:3")
        .query(&mut conns[0])
        .expect("MGET");
    assert_eq!(
        values,
        vec![Some("1".into()), None, Some("2".into()), Some("3".into())]
    );
    let deleted: i64 = redis::cmd("DEL")
        .arg("user:1")
        .arg("user:2")
        .arg("user:3")
        .arg("nope")
        .query(&mut conns[1])
        .expect("DEL");
    assert_eq!(deleted, 3);
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .arg("c")
        .arg("3")
        .query(&mut conns[2])
        .expect("MSET");
    let exists: i64 = redis::cmd("EXISTS")
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut conns[0])
        .expect("EXISTS");
    assert_eq!(exists, 3);
    // INCR through every node counts once per call.
    for c in &mut conns {
        let _: i64 = redis::cmd("INCR").arg("counter").query(c).expect("INCR");
    }
    assert_eq!(get(&mut conns[0], "counter"), Some("3".into()));

    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut conns[1])
        .expect("info");
    for line in [
        "cluster_state:ok",
        "cluster_known_nodes:3",
        "cluster_size:3",
    ] {
        assert!(
            info.contains(line),
            "{line} missing from CLUSTER INFO:\n{info}"
        );
    }
    let myid: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut conns[0])
        .expect("myid");
    assert_eq!(myid.len(), 40);
    let repl: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conns[0])
        .expect("INFO");
    assert!(repl.contains("cluster_enabled:1"), "{repl}");
    assert!(
        repl.contains("shard1:role=leader"),
        "node 1 leads shard 1:\n{repl}"
    );
    assert_eq!(
        trio.leader_of(2, "user:alice"),
        minikv::node_for(b"user:alice", 3)
    );
}

#[test]
fn what_cannot_span_shards_says_so() {
    let trio = Trio::start(&[]);
    let mut c = trio.conn(0);
    // Keys on two different shards.
    let (a, b) = ("user:alice", "user:1");
    assert_ne!(
        minikv::node_for(a.as_bytes(), 3),
        minikv::node_for(b.as_bytes(), 3)
    );
    let err = redis::cmd("RENAME")
        .arg(a)
        .arg(b)
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    let _: () = redis::cmd("MULTI").query(&mut c).expect("MULTI");
    let _: () = redis::cmd("SET")
        .arg(a)
        .arg("1")
        .query(&mut c)
        .expect("queued");
    let err = redis::cmd("SET")
        .arg(b)
        .arg("1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    let err = redis::cmd("EXEC").query::<()>(&mut c).unwrap_err();
    assert_eq!(err.code(), Some("EXECABORT"), "{err}");
    // A transaction on one shard led by another node runs there, as a unit.
    let far = (0..100)
        .map(|n| format!("t:{n}"))
        .find(|k| minikv::node_for(k.as_bytes(), 3) == 2)
        .expect("a key of shard 3");
    let _: () = redis::cmd("MULTI").query(&mut c).expect("MULTI");
    let _: () = redis::cmd("SET")
        .arg(&far)
        .arg("5")
        .query(&mut c)
        .expect("queued");
    let _: () = redis::cmd("INCR").arg(&far).query(&mut c).expect("queued");
    let replies: Vec<Value> = redis::cmd("EXEC").query(&mut c).expect("EXEC");
    assert_eq!(replies.len(), 2);
    assert_eq!(get(&mut trio.conn(2), &far), Some("6".into()));
    let err = redis::cmd("SELECT").arg(1).query::<()>(&mut c).unwrap_err();
    assert!(
        err.to_string().contains("not allowed in cluster mode"),
        "{err}"
    );
    let _: () = redis::cmd("FLUSHALL").query(&mut c).expect("FLUSHALL");
    // FLUSHALL answers once a majority of each shard has it; a follower applies it soon after.
    for i in 0..3 {
        wait_until_blocking(&format!("node {} to apply FLUSHALL", i + 1), WAIT, || {
            redis::cmd("DBSIZE")
                .query::<i64>(&mut trio.conn(i))
                .is_ok_and(|n| n == 0)
        });
    }
}

#[test]
fn a_killed_leader_loses_no_acknowledged_write_and_comes_back() {
    let mut trio = Trio::start(&[]);
    let key = "user:alice";
    let leader = trio.leader_of(0, key);
    let other = (leader + 1) % 3;
    let mut c = trio.conn(other);
    for n in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{n}"))
            .arg(n)
            .query(&mut c)
            .expect("SET");
    }
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("before")
        .query(&mut c)
        .expect("SET");
    trio.kill(leader);
    // A surviving node takes the shard over and keeps accepting writes for it.
    wait_until_blocking("a write on the dead leader's shard", WAIT * 3, || {
        let mut c = trio.conn(other);
        redis::cmd("SET")
            .arg(key)
            .arg("after")
            .query::<()>(&mut c)
            .is_ok()
    });
    assert_ne!(trio.leader_of(other, key), leader);
    let mut c = trio.conn(other);
    for n in 0..200 {
        assert_eq!(get(&mut c, &format!("k{n}")), Some(n.to_string()), "k{n}");
    }
    // The old leader restarts from its own disk and catches up.
    trio.start_node(leader, &[]);
    trio.wait_ok_on(leader);
    wait_until_blocking("the restarted node to catch up", WAIT * 3, || {
        let mut c = trio.conn(leader);
        get(&mut c, key).as_deref() == Some("after")
    });
    let mut c = trio.conn(leader);
    for n in 0..200 {
        assert_eq!(get(&mut c, &format!("k{n}")), Some(n.to_string()));
    }
    trio.assert_no_panics();
}

#[test]
fn a_node_whose_disk_was_wiped_gets_a_full_copy() {
    let mut trio = Trio::start(&[]);
    let mut c = trio.conn(0);
    // One entry per SET: enough entries that, after SAVE (a snapshot of every shard, then the
    // log is cut to its last 500 entries), the wiped node can only catch up from a snapshot.
    let keys = 1_800;
    for n in 0..keys {
        let _: () = redis::cmd("SET")
            .arg(format!("w{n}"))
            .arg(n)
            .query(&mut c)
            .expect("SET");
    }
    for i in 0..2 {
        let _: () = redis::cmd("SAVE").query(&mut trio.conn(i)).expect("SAVE");
    }
    wait_until_blocking("the snapshots to be taken", WAIT, || {
        (0..2).all(|i| {
            std::fs::read_dir(trio.dir(i).join(format!("raft-node{}", i + 1)))
                .map(|shards| {
                    shards
                        .flatten()
                        .filter(|s| s.file_name().to_string_lossy().starts_with("shard-"))
                        .all(|s| s.path().join("snapshot/snapshot.bin").exists())
                })
                .unwrap_or(false)
        })
    });
    trio.kill(2);
    std::fs::remove_dir_all(trio.dir(2)).expect("wipe");
    std::fs::create_dir_all(trio.dir(2)).expect("recreate");
    trio.start_node(2, &[]);
    trio.wait_ok_on(2);
    // Its replicas of every shard come back from the others: DBSIZE counts what it holds.
    wait_until_blocking("the wiped node to hold every key again", WAIT * 3, || {
        let mut c = trio.conn(2);
        redis::cmd("DBSIZE")
            .query::<i64>(&mut c)
            .is_ok_and(|n| n == keys)
    });
    // It got there through snapshots sent by the leaders (it took none itself), which it
    // keeps on its disk.
    let installed = std::fs::read_dir(trio.dir(2).join("raft-node3"))
        .expect("node 3's raft directory")
        .flatten()
        .filter(|s| s.path().join("snapshot/snapshot.bin").exists())
        .count();
    assert!(installed > 0, "no snapshot was installed on the wiped node");
    let mut c = trio.conn(2);
    for n in (0..keys).step_by(7) {
        assert_eq!(get(&mut c, &format!("w{n}")), Some(n.to_string()));
    }
    trio.assert_no_panics();
}

/// The first `prefix{i}` key of shard `shard` (0-based) of 3.
fn key_of(prefix: &str, shard: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| minikv::node_for(k.as_bytes(), 3) == shard)
        .expect("some key is in the shard")
}

/// `minikv client --servers <trio> args...` with `input` piped; fails unless it exits 0.
fn repl(trio: &Trio, args: &[&str], input: &str) -> String {
    let servers = trio.servers();
    let mut all = vec!["--servers", servers.as_str()];
    all.extend_from_slice(args);
    let run = run_client(&all, input);
    assert_eq!(
        run.code,
        Some(0),
        "minikv client {all:?} failed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run.stdout
}

/// Runs the REPL's `servers` until its output satisfies `done` (within [`WAIT`]); returns
/// that output, or fails showing the last one.
fn servers_until(trio: &Trio, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = repl(trio, &["servers"], "");
        if done(&out) {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`servers` did not show {what} within {WAIT:?}; last output:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `Shard N: ...` line of the REPL's `servers` output, less its slots (`Shard N (4096
/// slots: ...): ...` from a server with slots reads `Shard N: ...`).
fn shard_line(servers: &str, shard: usize) -> String {
    let prefix = format!("Shard {shard}: ");
    let slotted = format!("Shard {shard} (");
    servers
        .lines()
        .find_map(|l| {
            if l.starts_with(&prefix) {
                return Some(l.to_string());
            }
            let (_, rest) = l.strip_prefix(&slotted)?.split_once("): ")?;
            Some(format!("{prefix}{rest}"))
        })
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{servers}"))
}

/// How many lines of `text` are exactly `line`.
fn count_lines(text: &str, line: &str) -> usize {
    text.lines().filter(|l| *l == line).count()
}

#[test]
fn the_repl_and_the_cluster_client_follow_a_failover() {
    let mut trio = Trio::start(&[]);
    let keys: Vec<String> = (0..3).map(|s| key_of("fo:", s)).collect();
    let ports = trio.ports.clone();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);

    // One-shot commands and piped input, through the spec's server numbers.
    let out = repl(&trio, &["set", &keys[0], "v1"], "");
    assert_eq!(out, "✓ SUCCESS (Server 1)\n  Key set successfully\n\n");
    let input = format!(
        "set {k2} v2\nset {k3} v3\nget {k2}\nget {k1}\nexit\n",
        k1 = keys[0],
        k2 = keys[1],
        k3 = keys[2]
    );
    let out = repl(&trio, &[], &input);
    assert_eq!(
        out,
        format!(
            "✓ SUCCESS (Server 2)\n  Key set successfully\n\n\
             ✓ SUCCESS (Server 3)\n  Key set successfully\n\n\
             ✓ SUCCESS (Server 2)\n  Key: {k2}\n  Value: v2\n  TTL: No expiration\n\n\
             ✓ SUCCESS (Server 1)\n  Key: {k1}\n  Value: v1\n  TTL: No expiration\n\n\
             Goodbye!\n",
            k1 = keys[0],
            k2 = keys[1]
        )
    );

    // Every shard with its leader and followers, all healthy (acknowledgements may take a
    // moment after the start).
    let want = [
        format!(
            "Shard 1: leader Server 1 ({}), followers Server 2 (online), Server 3 (online)",
            addr(0)
        ),
        format!(
            "Shard 2: leader Server 2 ({}), followers Server 3 (online), Server 1 (online)",
            addr(1)
        ),
        format!(
            "Shard 3: leader Server 3 ({}), followers Server 1 (online), Server 2 (online)",
            addr(2)
        ),
    ];
    let last = servers_until(&trio, "every shard healthy", |out| {
        (1..=3).all(|s| shard_line(out, s) == want[s - 1])
    });
    assert!(
        last.contains("Replication: Raft"),
        "no replication line:\n{last}"
    );

    // The library client learns the leaders now, before the failover.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = ClusterClient::new(ClientConfig {
        servers: trio.servers().split(',').map(String::from).collect(),
        ..ClientConfig::default()
    });
    runtime.block_on(async {
        client
            .set(b"lib:before", b"1", None)
            .await
            .expect("library SET");
        assert_eq!(
            client.get(keys[1].as_bytes()).await.expect("library GET"),
            Some("v2".into())
        );
    });
    assert_eq!(client.leader_of(1), 1, "node 2 leads shard 2 at first");

    let leader = trio.leader_of(0, &keys[1]);
    assert_eq!(leader, 1);
    trio.kill(leader);

    // The REPL reaches shard 2's new leader; retry notices may come first. More retries than
    // the spec's 3 (0.5 s apart): on a loaded machine the election can take longer than that.
    let out = repl(&trio, &["--retries", "10", "get", &keys[1]], "");
    let result = out
        .lines()
        .filter(|l| !l.starts_with("[RETRY] Server 2 failed, retrying..."))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        result,
        format!(
            "✓ SUCCESS (Server 2)\n  Key: {}\n  Value: v2\n  TTL: No expiration\n",
            keys[1]
        ),
        "full output:\n{out}"
    );
    let out = repl(&trio, &["set", &keys[1], "v2b"], "");
    assert!(
        out.ends_with("✓ SUCCESS (Server 2)\n  Key set successfully\n\n"),
        "{out}"
    );

    // The library client routes shard 2 to its new leader.
    runtime.block_on(async {
        assert_eq!(
            client.get(keys[1].as_bytes()).await.expect("library GET"),
            Some("v2b".into())
        );
        client
            .set(keys[1].as_bytes(), b"v2c", None)
            .await
            .expect("library SET after the failover");
    });
    let new_leader = client.leader_of(1);
    assert_ne!(
        new_leader, 1,
        "the client still sends shard 2 to the dead node"
    );

    // `servers` names the new leader and the dead node as failed, in every shard.
    servers_until(&trio, "the new leader and node 2 failed", |out| {
        shard_line(out, 2).starts_with(&format!(
            "Shard 2: leader Server {} ({})",
            new_leader + 1,
            addr(new_leader)
        )) && (1..=3).all(|s| shard_line(out, s).contains("Server 2 (failed)"))
    });

    // `keys` and `stats`: every shard once, from its leader.
    let out = repl(&trio, &["keys"], "");
    for s in 1..=3 {
        assert_eq!(count_lines(&out, &format!("Shard {s}")), 1, "{out}");
    }
    assert!(!out.contains("✗ ERROR"), "{out}");
    let mut listed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("  Keys ("))
        .filter_map(|l| l.split_once("): ").map(|(_, keys)| keys))
        .flat_map(|keys| keys.split(", "))
        .collect();
    listed.sort_unstable();
    let mut want: Vec<&str> = keys.iter().map(String::as_str).collect();
    want.push("lib:before");
    want.sort_unstable();
    assert_eq!(listed, want, "every key once:\n{out}");
    assert!(
        !out.contains("(Server 2)\n"),
        "the dead node answered:\n{out}"
    );
    let out = repl(&trio, &["stats"], "");
    for s in 1..=3 {
        assert_eq!(count_lines(&out, &format!("Shard {s}")), 1, "{out}");
    }
    assert_eq!(out.matches("✓ SUCCESS").count(), 3, "{out}");
    assert_eq!(out.matches("Total Requests:").count(), 3, "{out}");
}

/// One JSON request over a fresh connection to node `i`, and its reply.
fn json_request(trio: &Trio, i: usize, request: &serde_json::Value) -> serde_json::Value {
    use std::io::{BufRead as _, Write as _};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", trio.ports[i])).expect("connect for JSON");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    stream
        .write_all(request.to_string().as_bytes())
        .expect("send JSON");
    let mut line = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut line)
        .expect("read JSON reply");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
}

#[test]
fn json_requests_to_a_node_that_does_not_lead_are_forwarded() {
    // Two replicas per shard: shard 3 is on nodes 3 and 1, so node 1 follows it and node 2
    // does not replicate it at all; both forward.
    let trio = Trio::start(&["--replicas", "2"]);
    let leader = trio.leader_of(0, &key_of("json:", 2));
    for via in (0..3).filter(|i| *i != leader) {
        json_through(&trio, via, &key_of(&format!("json{via}:"), 2), leader);
    }
    let out = repl(&trio, &["servers"], "");
    assert!(
        out.contains("Replication: Raft, each shard on 2 of the 3 nodes\n"),
        "{out}"
    );
}

/// The spec's JSON requests for `key` sent to node `via`, which does not lead its shard
/// (`leader` does): answered in the JSON shape, naming node `via`.
fn json_through(trio: &Trio, via: usize, key: &str, leader: usize) {
    use serde_json::json;
    let id = via as u64 + 1;
    let ask = |request: serde_json::Value| json_request(trio, via, &request);

    assert_eq!(
        ask(json!({"command": "SET", "key": key, "value": "far away"})),
        json!({"status": "success", "message": "Key set successfully", "key": key,
               "server_id": id})
    );
    assert_eq!(
        ask(json!({"command": "GET", "key": key})),
        json!({"status": "success", "key": key, "value": "far away", "ttl": -1,
               "server_id": id})
    );
    assert_eq!(
        ask(json!({"command": "EXPIRE", "key": key, "ttl": 300})),
        json!({"status": "success", "message": "Expiration set successfully", "key": key,
               "ttl": 300, "server_id": id})
    );
    let reply = ask(json!({"command": "GET", "key": key}));
    let ttl = reply["ttl"].as_i64().expect("a ttl");
    assert!((299..=300).contains(&ttl), "{reply}");
    assert_eq!(
        ask(json!({"command": "INCRBY", "args": [format!("{key}:n"), "5"]})),
        json!({"status": "success", "result": 5, "server_id": id})
    );
    assert_eq!(
        ask(json!({"command": "DELETE", "key": key})),
        json!({"status": "success", "message": "Key deleted successfully", "key": key,
               "server_id": id})
    );
    assert_eq!(
        ask(json!({"command": "GET", "key": key})),
        json!({"status": "error", "message": "Key not found", "value": null, "key": key,
               "server_id": id})
    );
    // The write went through the leader: it is there too.
    let mut c = trio.conn(leader);
    assert_eq!(get(&mut c, &format!("{key}:n")), Some("5".into()));

    let reply = ask(json!({"command": "CLUSTER", "args": ["INFO"]}));
    assert_eq!(reply["status"], "success", "{reply}");
    assert_eq!(reply["server_id"], id, "{reply}");
    let info = reply["result"].as_str().expect("CLUSTER INFO text");
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_size:3"), "{info}");
    let reply = ask(json!({"command": "CLUSTER", "args": ["MYID"]}));
    assert_eq!(reply["result"].as_str().map(str::len), Some(40), "{reply}");
}

#[test]
fn minikv_cluster_with_replicas_runs_a_replicated_cluster_in_one_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_ports_with_bus(3);
    let (reader, writer) = std::io::pipe().expect("pipe");
    // Without the HTTP port, whose `dashboard:` line would follow (if 8080 is free).
    let args = ["--replicas", "3", "--no-http"];
    let cluster = ClusterProcess::start_at(base, dir.path(), &args, false, |c| {
        c.stdout(writer);
    });
    let ready = read_pipe_until("the ready line", reader, WAIT, |out| out.contains('\n'));
    assert_eq!(
        ready,
        format!(
            "ready: replicated cluster (Raft), 3 replicas per shard, cluster bus on node 1 \
             127.0.0.1:{}, node 2 127.0.0.1:{}, node 3 127.0.0.1:{}; try 'minikv client \
             --servers {}' or 'redis-cli -p {base}'; Ctrl+C stops and saves\n",
            base + 10_000,
            base + 10_001,
            base + 10_002,
            cluster.servers(),
        )
    );
    for port in cluster.ports {
        wait_cluster_ok(port);
    }
    let keys: Vec<String> = (0..3).map(|s| key_of("one:", s)).collect();
    let mut first = conn_to(cluster.ports[0]);
    for key in &keys {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(format!("v-{key}"))
            .query(&mut first)
            .expect("SET through node 1");
    }
    let mut third = conn_to(cluster.ports[2]);
    for key in &keys {
        assert_eq!(get(&mut third, key), Some(format!("v-{key}")));
    }
    let shards: Value = redis::cmd("CLUSTER")
        .arg("SHARDS")
        .query(&mut third)
        .expect("shards");
    let Value::Array(shards) = shards else {
        panic!("CLUSTER SHARDS: {shards:?}");
    };
    assert_eq!(shards.len(), 3);
    for shard in &shards {
        let Value::Array(nodes) = field(shard, "nodes") else {
            panic!("no nodes in {shard:?}");
        };
        assert_eq!(nodes.len(), 3, "3 replicas per shard: {shard:?}");
    }
}

#[test]
fn plain_minikv_cluster_is_still_the_specs_cluster() {
    let cluster = ClusterProcess::start(&[]);
    for sub in ["INFO", "SHARDS"] {
        use std::io::{BufRead as _, Write as _};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", cluster.ports[0])).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let request = format!("*2\r\n$7\r\nCLUSTER\r\n${}\r\n{sub}\r\n", sub.len());
        stream.write_all(request.as_bytes()).expect("send");
        let mut line = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut line)
            .expect("reply");
        assert_eq!(
            line, "-ERR This instance has cluster support disabled\r\n",
            "CLUSTER {sub}"
        );
    }
    // The client keeps the spec's routing: the key's own server holds it, the others do not.
    let key = key_of("plain:", 1);
    let servers = cluster.servers();
    let run = run_client(&["--servers", &servers, "set", &key, "v"], "");
    assert_eq!(
        run.stdout,
        "✓ SUCCESS (Server 2)\n  Key set successfully\n\n"
    );
    assert_eq!(get(&mut conn_to(cluster.ports[1]), &key), Some("v".into()));
    assert_eq!(get(&mut conn_to(cluster.ports[0]), &key), None);
    let run = run_client(&["--servers", &servers, "servers"], "");
    assert!(!run.stdout.contains("Replication"), "{}", run.stdout);
    assert!(!run.stdout.contains("Shard 1:"), "{}", run.stdout);
}

/// The text of a bulk, verbatim or status reply (empty for any other).
fn reply_text(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(b) | Reply::Verbatim(b) => String::from_utf8_lossy(b).into_owned(),
        Reply::Simple(s) | Reply::Error(s) => s.to_string(),
        _ => String::new(),
    }
}

/// A client of the trio over TLS with `password`, without retries; the nodes' certificate
/// doubles as the client's (their client ports want one: `--tls-ca`).
fn secured_client(trio: &Trio, pki: &Pki, password: &str) -> ClusterClient {
    let tls = minikv::tls::client_config(&minikv::tls::ClientTls {
        ca: pki.ca.clone(),
        cert: Some(pki.cert.clone()),
        key: Some(pki.key.clone()),
    })
    .expect("client TLS");
    let mut config = ClientConfig {
        servers: trio.servers().split(',').map(String::from).collect(),
        password: Some(password.into()),
        tls: Some(tls),
        ..ClientConfig::default()
    };
    config.retry.retries = 0;
    config.retry.timeout = Duration::from_secs(2);
    ClusterClient::new(config)
}

/// Waits until node `i`, asked through `client`, reports `cluster_state:ok`.
fn wait_ok_through(runtime: &tokio::runtime::Runtime, client: &ClusterClient, i: usize) {
    wait_until_blocking(
        &format!("node {} cluster_state:ok", i + 1),
        WAIT * 3,
        || {
            ask_node(runtime, client, i, &["CLUSTER", "INFO"])
                .is_some_and(|t| t.contains("cluster_state:ok"))
        },
    );
}

/// Runs one command through `client` on server `i` (no retries) and returns its text.
fn ask_node(
    runtime: &tokio::runtime::Runtime,
    client: &ClusterClient,
    i: usize,
    args: &[&str],
) -> Option<String> {
    let args = args
        .iter()
        .map(|a| bytes::Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    runtime
        .block_on(client.call(i, args))
        .ok()
        .map(|r| reply_text(&r))
}

#[test]
fn tls_and_a_password_protect_the_bus_and_a_wrong_password_cannot_join() {
    let pki = Pki::new("minikv bus CA");
    let (cert, key, ca) = (
        pki.cert.to_str().expect("UTF-8"),
        pki.key.to_str().expect("UTF-8"),
        pki.ca.to_str().expect("UTF-8"),
    );
    let secured = |password: &'static str| {
        vec![
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-ca",
            ca,
            "--requirepass",
            password,
        ]
    };
    let mut trio = Trio::launch(&secured("s3cret"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = secured_client(&trio, &pki, "s3cret");
    for i in 0..3 {
        wait_ok_through(&runtime, &client, i);
    }
    // redis-cli over TLS with a client certificate and the password sees it too.
    let port = trio.ports[1].to_string();
    let cli = common::process::run(
        std::process::Command::new("redis-cli")
            .args(["--tls", "--cacert", ca, "--cert", cert, "--key", key])
            .args(["-h", "127.0.0.1", "-p", &port, "--no-auth-warning"])
            .args(["-a", "s3cret", "CLUSTER", "INFO"]),
        None,
        WAIT,
    );
    cli.assert_success();
    assert!(cli.stdout.contains("cluster_state:ok"), "{}", cli.report());

    // Writes replicate to every node over the encrypted, password-protected bus.
    let keys: Vec<String> = (0..3).map(|s| key_of("sec:", s)).collect();
    runtime.block_on(async {
        for key in &keys {
            client
                .set(key.as_bytes(), b"safe", None)
                .await
                .expect("SET over TLS");
        }
    });
    for i in 0..3 {
        wait_until_blocking(&format!("node {} to hold every key", i + 1), WAIT, || {
            runtime
                .block_on(client.call(i, vec!["DBSIZE".into()]))
                .is_ok_and(|r| r == Reply::Int(3))
        });
    }

    // Node 3 comes back with the wrong password: its peers refuse it, and it them.
    trio.kill(2);
    trio.start_node(2, &secured("wrong"));
    let log = || trio.procs[2].as_ref().expect("node 3 runs").stderr();
    wait_until_blocking("node 3 to log refused authentication", WAIT, || {
        log().contains("authentication failed")
    });
    // The others carry on: shard 3 fails over to one of them, and they see node 3 failed.
    for i in 0..2 {
        wait_ok_through(&runtime, &client, i);
    }
    wait_until_blocking(
        "a SET on shard 3 through node 1, without node 3",
        WAIT * 3,
        || ask_node(&runtime, &client, 0, &["SET", &keys[2], "after"]).as_deref() == Some("OK"),
    );
    for i in 0..2 {
        let info = ask_node(&runtime, &client, i, &["CLUSTER", "INFO"]).expect("CLUSTER INFO");
        assert!(info.contains("cluster_state:ok"), "node {}:\n{info}", i + 1);
    }
    let shards = runtime
        .block_on(client.call(0, vec!["CLUSTER".into(), "SHARDS".into()]))
        .expect("CLUSTER SHARDS");
    let topology = minikv::client::topology::parse_shards(
        &shards,
        &trio
            .servers()
            .split(',')
            .map(String::from)
            .collect::<Vec<_>>(),
    )
    .expect("a topology");
    for shard in &topology.shards {
        let third = shard
            .nodes
            .iter()
            .find(|n| n.server == Some(2))
            .expect("node 3 is a member");
        assert!(!third.leader, "node 3 leads shard {}", shard.index + 1);
        assert_eq!(
            third.health,
            "failed",
            "shard {}: {shards:?}",
            shard.index + 1
        );
    }
    // Node 3 itself finds no peer (asked with its own password, as its clients must): once its
    // election timeout passes without a word from the leaders its log remembers, it knows of
    // none.
    let third = secured_client(&trio, &pki, "wrong");
    wait_until_blocking("node 3 to report the cluster down", WAIT, || {
        ask_node(&runtime, &third, 2, &["CLUSTER", "INFO"])
            .is_some_and(|info| info.contains("cluster_state:fail"))
    });
}

#[test]
fn a_cluster_node_with_a_certificate_but_no_ca_refuses_to_start() {
    let pki = Pki::new("minikv bus CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, other) = (free_port(), free_port());
    let list = format!("127.0.0.1:{port},127.0.0.1:{other}");
    let run = common::process::run(
        std::process::Command::new(common::process::binary())
            .args([
                "server",
                "1",
                &port.to_string(),
                "--cluster",
                &list,
                "--data-dir",
            ])
            .arg(dir.path())
            .arg("--tls-cert")
            .arg(&pki.cert)
            .arg("--tls-key")
            .arg(&pki.key)
            .env_remove("RUST_LOG"),
        None,
        WAIT,
    );
    assert_ne!(run.status.code(), Some(0), "{}", run.report());
    assert_eq!(
        run.stderr,
        "minikv: starting node 1: with --cluster and --tls-cert, --tls-ca is needed too: cluster \
         bus peers verify each other's certificates against it\n",
        "{}",
        run.report()
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "it does not serve"
    );
}

/// Issue 12 through a replicated cluster: collections written and read through any node, a
/// blocked pop on one node served by a push through another (whatever node leads the key's
/// shard: a node that does not lead it asks the leader again until the element comes), and
/// multi-key collection commands across shards refused in Redis Cluster's words.
#[test]
fn collections_and_blocking_pops_work_through_any_node() {
    let trio = Trio::start(&[]);
    for shard in 0..3 {
        let (h, q) = (key_of("h:", shard), key_of("q:", shard));
        for via in 0..3 {
            let mut writer = trio.conn(via);
            let _: i64 = redis::cmd("HSET")
                .arg(&h)
                .arg(format!("f{via}"))
                .arg(via)
                .query(&mut writer)
                .expect("HSET through any node");
            // A client blocks on `via`; the element is pushed through the next node.
            let port = trio.ports[via];
            let key = q.clone();
            let waiter = std::thread::spawn(move || {
                let mut c = conn_to(port);
                let got: Option<(String, String)> = redis::cmd("BLPOP")
                    .arg(&key)
                    .arg(10)
                    .query(&mut c)
                    .expect("BLPOP");
                got
            });
            let mut pusher = trio.conn((via + 1) % 3);
            // A waiter on the leader's own node shows as blocked there, one polling a remote
            // leader does not: either way the push may come before or after it started
            // waiting, and it must get the element.
            std::thread::sleep(Duration::from_millis(100));
            let _: i64 = redis::cmd("RPUSH")
                .arg(&q)
                .arg(format!("job{via}"))
                .query(&mut pusher)
                .expect("RPUSH");
            let got = waiter.join().expect("waiter thread");
            assert_eq!(
                got,
                Some((q.clone(), format!("job{via}"))),
                "shard {shard} via {via}"
            );
        }
        let mut reader = trio.conn(2);
        let all: Vec<String> = redis::cmd("HGETALL")
            .arg(&h)
            .query(&mut reader)
            .expect("HGETALL");
        assert_eq!(all.len(), 6, "{all:?}");
        let len: i64 = redis::cmd("LLEN").arg(&q).query(&mut reader).expect("LLEN");
        assert_eq!(len, 0, "every pushed element was taken exactly once");
    }
    let (a, b) = (key_of("s:", 0), key_of("s:", 1));
    let err = redis::cmd("SINTERSTORE")
        .arg(&a)
        .arg(&a)
        .arg(&b)
        .query::<i64>(&mut trio.conn(0))
        .expect_err("keys in two shards");
    assert!(err.to_string().contains("hash to the same slot"), "{err}");
    trio.assert_no_panics();
}

/// `INFO` field `name` of the node `c` talks to, as a number.
fn info_number(c: &mut Connection, name: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg("everything").query(c).expect("INFO");
    common::redis_rs::parse_info(&text)
        .into_iter()
        .find_map(|(_, fields)| fields.get(name).cloned())
        .unwrap_or_else(|| panic!("INFO has no {name}"))
        .parse()
        .unwrap_or_else(|e| panic!("INFO {name}: {e}"))
}

/// `SET k:0 .. k:{count-1}` to `value` through `c`, pipelined 500 at a time; every reply, in
/// order (refusals included).
fn set_in_batches(c: &mut Connection, count: usize, value: &str) -> Vec<RedisResult<Value>> {
    let mut replies = Vec::with_capacity(count);
    for start in (0..count).step_by(500) {
        let mut pipe = redis::pipe();
        for i in start..(start + 500).min(count) {
            pipe.cmd("SET").arg(format!("k:{i}")).arg(value);
        }
        let batch: Vec<RedisResult<Value>> = pipe
            .ignore_errors()
            .query(c)
            .unwrap_or_else(|e| panic!("batch at {start}: {e}"));
        replies.extend(batch);
    }
    replies
}

/// Issue 15 inside a replicated cluster: three nodes with a 16 MB budget written four times
/// over through one node. Leaders evict their groups' keys and followers delete them from the
/// log, so no write is refused, every node ends up with the same keys, and the keys kept fit
/// the budget. (A node's other memory is not the same on every node: the one clients write
/// through holds their buffers too, and it can only evict its own groups' keys, so its
/// `used_memory` may pass the budget by that difference, as a Redis replica's may.)
#[test]
fn eviction_in_a_cluster_happens_on_leaders_and_replicas_follow() {
    const LIMIT: u64 = 16 << 20;
    const VALUE: usize = 4000;
    let limit = LIMIT.to_string();
    let trio = Trio::start(&["--maxmemory", &limit, "--maxmemory-policy", "allkeys-lru"]);
    let mut c = trio.conn(0);
    let value = "v".repeat(VALUE);
    let written = 4 * LIMIT as usize / VALUE;
    let refused: Vec<_> = set_in_batches(&mut c, written, &value)
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {written} writes refused, first: {}",
        refused.len(),
        refused[0]
    );
    // Replicas never diverge: once the logs are applied every node holds the same keys.
    let keys_of = |i: usize| {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query(&mut trio.conn(i))
            .expect("KEYS");
        keys.sort();
        keys
    };
    wait_until_blocking("every node to hold the same keys", WAIT * 3, || {
        let first = keys_of(0);
        (1..3).all(|i| keys_of(i) == first)
    });
    let kept = keys_of(0).len();
    assert!(kept > 0 && kept < written, "{kept} of {written} keys kept");
    assert!(
        (kept * VALUE) as u64 <= LIMIT,
        "{kept} values of {VALUE} bytes kept: more than the {LIMIT} byte budget"
    );
    let mut evicted = 0;
    let mut counted = Vec::new();
    for i in 0..3 {
        let mut c = trio.conn(i);
        evicted += info_number(&mut c, "evicted_keys");
        let used = info_number(&mut c, "used_memory");
        counted.push(used.saturating_sub(info_number(&mut c, "mem_not_counted_for_evict")));
    }
    // Each shard's leader keeps its own node within the budget as long as it has keys of its
    // own to evict: the nodes clients do not write through end within it.
    assert!(
        counted[1..].iter().all(|&m| m <= LIMIT + LIMIT / 10),
        "used_memory less what is not counted, per node: {counted:?}, over {LIMIT} + 10%"
    );
    // Every key gone was evicted (none lost otherwise); a leader that lost its term before
    // its eviction committed gets the key back, and the next leader evicts it again.
    assert!(
        evicted as usize >= written - kept,
        "{evicted} evictions for {} keys gone",
        written - kept
    );
    trio.assert_no_panics();
}

/// Issue 15 with a `volatile-*` policy in a replicated cluster: keys without a TTL are never
/// evicted, so once full every node refuses writes with Redis's OOM error instead of growing
/// (a leader cannot count on the other leaders having keys with a TTL to evict), and every
/// acknowledged write is kept on every node.
#[test]
fn a_full_cluster_with_a_volatile_policy_refuses_writes_and_keeps_every_key() {
    const LIMIT: u64 = 16 << 20;
    const VALUE: usize = 4000;
    let limit = LIMIT.to_string();
    let trio = Trio::start(&["--maxmemory", &limit, "--maxmemory-policy", "volatile-lru"]);
    let mut c = trio.conn(0);
    let value = "v".repeat(VALUE);
    let written = 2 * LIMIT as usize / VALUE;
    let (mut acknowledged, mut refused) = (0usize, 0usize);
    for reply in set_in_batches(&mut c, written, &value) {
        match reply {
            Ok(_) => acknowledged += 1,
            Err(e) => {
                assert!(e.to_string().contains("OOM"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "twice the budget written and nothing refused");
    let dbsize = |i: usize| -> usize {
        redis::cmd("DBSIZE")
            .query(&mut trio.conn(i))
            .expect("DBSIZE")
    };
    wait_until_blocking(
        "every node to hold every acknowledged key",
        WAIT * 3,
        || (0..3).all(|i| dbsize(i) == acknowledged),
    );
    for i in 0..3 {
        assert_eq!(info_number(&mut trio.conn(i), "evicted_keys"), 0);
    }
    trio.assert_no_panics();
}
