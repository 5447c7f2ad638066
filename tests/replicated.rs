//! The replicated cluster (issue 10) as users run it: three `minikv server --cluster`
//! processes on loopback, reached with redis-rs. Any node answers for any key (forwarding),
//! writes survive the death of a leader (SIGKILL) and of a node's whole data directory,
//! introspection speaks Redis's formats, and commands that cannot span shards say so.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::process::{free_port, BinProcess};
use common::{wait_until_blocking, WAIT};
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
        trio.wait_ok();
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

    fn dir(&self, i: usize) -> PathBuf {
        self.dirs[i].path().to_path_buf()
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            p.kill();
        }
    }

    fn conn(&self, i: usize) -> Connection {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}/", self.ports[i])).expect("url");
        let conn = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        conn
    }

    /// Waits until node `i` reports `cluster_state:ok`.
    fn wait_ok_on(&self, i: usize) {
        wait_until_blocking(
            &format!("node {} cluster_state:ok", i + 1),
            WAIT * 3,
            || {
                let Ok(client) =
                    redis::Client::open(format!("redis://127.0.0.1:{}/", self.ports[i]))
                else {
                    return false;
                };
                let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
                    return false;
                };
                let info: RedisResult<String> = redis::cmd("CLUSTER").arg("INFO").query(&mut c);
                info.is_ok_and(|t| t.contains("cluster_state:ok"))
            },
        );
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
    // Followers apply the flush once they learn it committed: soon, not at once.
    for i in 0..3 {
        wait_until_blocking(&format!("node {} to be empty", i + 1), WAIT, || {
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
