//! Targeted faults on a replicated cluster of three real processes (issue 10): a counter
//! incremented from many clients through random nodes while nodes are killed and paused, a
//! leader frozen with SIGSTOP while the others carry on, and a leader cut off by a network
//! partition (namespaces). Each checks that nothing acknowledged is lost and that a node
//! that cannot reach a majority acknowledges nothing.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::nemesis::{schedule, Cluster, ClusterConfig};
use common::{wait_until_blocking, Rng, WAIT};
use redis::{Connection, RedisResult};

fn conn(addr: SocketAddr, timeout: Duration) -> RedisResult<Connection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let c = client.get_connection_with_timeout(timeout)?;
    c.set_read_timeout(Some(timeout))?;
    c.set_write_timeout(Some(timeout))?;
    Ok(c)
}

/// Waits until every live node in `nodes` says `cluster_state:ok`.
fn wait_ok(addrs: &[SocketAddr], nodes: &[usize]) {
    for &i in nodes {
        wait_until_blocking(
            &format!("node {} cluster_state:ok", i + 1),
            WAIT * 3,
            || {
                conn(addrs[i], Duration::from_secs(1))
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|t| t.contains("cluster_state:ok"))
            },
        );
    }
}

/// The node that says it leads `shard` (0-based), from INFO replication.
fn leader(addrs: &[SocketAddr], shard: usize) -> Option<usize> {
    (0..addrs.len()).find(|&i| {
        conn(addrs[i], Duration::from_secs(1))
            .and_then(|mut c| {
                redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut c)
            })
            .is_ok_and(|t| t.contains(&format!("shard{}:role=leader", shard + 1)))
    })
}

/// A key of `shard` (0-based) in a 3-shard cluster.
fn key_of(shard: usize, prefix: &str) -> String {
    (0..)
        .map(|n| format!("{prefix}{n}"))
        .find(|k| minikv::node_for(k.as_bytes(), 3) == shard)
        .expect("some key")
}

#[test]
fn a_counter_never_loses_an_acknowledged_incr_under_kills_and_pauses() {
    let (mut rng, seed) = Rng::from_time();
    eprintln!("seed {seed}");
    let mut cluster = Cluster::start(ClusterConfig::default());
    let addrs = cluster.addrs();
    wait_ok(&addrs, &[0, 1, 2]);
    let sent = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (sent, acked, stop, addrs) =
                (sent.clone(), acked.clone(), stop.clone(), addrs.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::seeded(seed ^ w);
                while !stop.load(Ordering::Relaxed) {
                    let addr = addrs[rng.below(3) as usize];
                    let Ok(mut c) = conn(addr, Duration::from_secs(3)) else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    for _ in 0..20 {
                        sent.fetch_add(1, Ordering::Relaxed);
                        match redis::cmd("INCR").arg("counter").query::<i64>(&mut c) {
                            Ok(_) => acked.fetch_add(1, Ordering::Relaxed),
                            Err(_) => break,
                        };
                    }
                }
            })
        })
        .collect();
    for fault in schedule(&mut rng, 4, 3, false) {
        eprintln!("fault: {fault:?}");
        cluster.apply(&fault);
        std::thread::sleep(Duration::from_millis(1200));
    }
    cluster.recover();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    wait_ok(&addrs, &[0, 1, 2]);
    let (sent, acked) = (sent.load(Ordering::Relaxed), acked.load(Ordering::Relaxed));
    assert!(
        acked > 50,
        "only {acked} INCRs acknowledged: nothing was tested"
    );
    for (i, addr) in addrs.iter().enumerate() {
        let mut c = conn(*addr, Duration::from_secs(5)).expect("connect");
        let value: i64 = redis::cmd("GET").arg("counter").query(&mut c).expect("GET");
        let value = value as u64;
        eprintln!(
            "node {}: counter {value}, acknowledged {acked}, sent {sent}",
            i + 1
        );
        assert!(
            value >= acked && value <= sent,
            "seed {seed}: node {} reads {value}: acknowledged {acked}, sent {sent}",
            i + 1
        );
    }
}

#[test]
fn a_paused_leader_acknowledges_nothing_that_is_later_lost() {
    let mut cluster = Cluster::start(ClusterConfig::default());
    let addrs = cluster.addrs();
    wait_ok(&addrs, &[0, 1, 2]);
    let key = key_of(0, "frozen:");
    let old = leader(&addrs, 0).expect("shard 1 has a leader");
    // A connection to the old leader, opened before it freezes.
    let mut stale = conn(addrs[old], Duration::from_secs(15)).expect("connect");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("v0")
        .query(&mut stale)
        .expect("SET");
    cluster.pause(old);
    // The others elect a new leader for the shard and take writes.
    let other = (old + 1) % 3;
    wait_until_blocking("a write while the old leader is frozen", WAIT * 3, || {
        // A fresh connection per attempt: a node closes one whose write's fate it cannot know.
        conn(addrs[other], Duration::from_secs(5))
            .and_then(|mut c| redis::cmd("SET").arg(&key).arg("v1").query::<()>(&mut c))
            .is_ok()
    });
    // The frozen leader wakes up with a write queued for it: it must not acknowledge it, as
    // the group has moved on without it.
    let sender = std::thread::spawn(move || {
        redis::cmd("SET")
            .arg("stale-write")
            .arg("x")
            .arg("XX")
            .query::<Option<String>>(&mut stale)
    });
    std::thread::sleep(Duration::from_millis(200));
    cluster.resume(old);
    let stale_reply = sender.join().expect("sender");
    wait_ok(&addrs, &[0, 1, 2]);
    for (i, addr) in addrs.iter().enumerate() {
        let mut c = conn(*addr, Duration::from_secs(5)).expect("connect");
        let v: Option<String> = redis::cmd("GET").arg(&key).query(&mut c).expect("GET");
        assert_eq!(v.as_deref(), Some("v1"), "node {} lost the write", i + 1);
    }
    // Whatever the old leader answered, the cluster's state agrees with it.
    let mut c = conn(addrs[other], Duration::from_secs(5)).expect("connect");
    let _ = stale_reply;
    let v: Option<String> = redis::cmd("GET")
        .arg("stale-write")
        .query(&mut c)
        .expect("GET");
    assert_eq!(v, None, "SET XX of a missing key must not create it");
}

#[test]
fn the_minority_side_of_a_partition_acknowledges_nothing_and_loses_nothing() {
    let cluster = Cluster::start(ClusterConfig {
        netns: true,
        ..ClusterConfig::default()
    });
    let addrs = cluster.addrs();
    wait_ok(&addrs, &[0, 1, 2]);
    let key = key_of(0, "part:");
    let old = leader(&addrs, 0).expect("shard 1 has a leader");
    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let mut minority = conn(addrs[old], Duration::from_secs(4)).expect("connect");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("before")
        .query(&mut minority)
        .expect("SET");
    cluster.partition(&[old], &rest);
    // The majority elects a leader and carries on.
    let started = Instant::now();
    wait_until_blocking("the majority to take writes", WAIT * 3, || {
        conn(addrs[rest[0]], Duration::from_secs(5))
            .and_then(|mut c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg("majority")
                    .query::<()>(&mut c)
            })
            .is_ok()
    });
    eprintln!("majority took writes after {:?}", started.elapsed());
    // The cut-off node answers no write with OK: an error, or nothing at all.
    for n in 0..3 {
        let reply = redis::cmd("SET")
            .arg(&key)
            .arg(format!("minority{n}"))
            .query::<String>(&mut minority);
        assert!(
            reply.is_err(),
            "the minority acknowledged a write: {reply:?}"
        );
        match conn(addrs[old], Duration::from_secs(4)) {
            Ok(c) => minority = c,
            Err(_) => break,
        }
    }
    cluster.heal();
    wait_ok(&addrs, &[0, 1, 2]);
    for (i, addr) in addrs.iter().enumerate() {
        let mut c = conn(*addr, Duration::from_secs(5)).expect("connect");
        wait_until_blocking(&format!("node {} to agree", i + 1), WAIT * 3, || {
            redis::cmd("GET")
                .arg(&key)
                .query::<Option<String>>(&mut c)
                .is_ok_and(|v| v.as_deref() == Some("majority"))
        });
    }
}
