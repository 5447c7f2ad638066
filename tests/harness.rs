//! Tests of the test harness itself: the linearizability checker on known histories and on
//! histories of a sequential register with random timing, the network namespaces (partition
//! and heal between real processes), and the nemesis harness's pure parts.

mod common;

use std::process::Command;
use std::time::Duration;

use common::linearizability::{check, step, Call, Operation, Outcome, Ret};
use common::nemesis::{
    node_args, outcome, parse_reply, random_op, request, schedule, ClusterConfig, Fault, Reply,
};
use common::netns::NetNs;
use common::{process, Rng, WAIT};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// The checker on known histories
// ---------------------------------------------------------------------------------------------

/// An acknowledged operation of client `c` on key "k" over `[from, to]`.
fn op(c: usize, call: Call, from: u64, to: u64, ret: Ret) -> Operation {
    Operation {
        client: c,
        key: "k".into(),
        call,
        invoke: from,
        outcome: Outcome::Done { at: to, ret },
    }
}

/// An indeterminate operation of client `c` invoked at `from`.
fn unknown(c: usize, call: Call, from: u64) -> Operation {
    Operation {
        client: c,
        key: "k".into(),
        call,
        invoke: from,
        outcome: Outcome::Unknown,
    }
}

fn set(v: &str) -> Call {
    Call::Set(v.into())
}

fn val(v: &str) -> Ret {
    Ret::Value(Some(v.into()))
}

const NIL: Ret = Ret::Value(None);

fn rejected(history: &[Operation]) -> String {
    match check(history) {
        Ok(()) => panic!("accepted a non-linearizable history: {history:#?}"),
        Err(v) => v.to_string(),
    }
}

#[test]
fn model_steps_follow_redis() {
    assert_eq!(
        step(&None, &Call::Incr, Some(&Ret::Int(1))),
        Some(Some("1".into()))
    );
    assert_eq!(
        step(&Some("41".into()), &Call::Incr, Some(&Ret::Int(42))),
        Some(Some("42".into()))
    );
    assert_eq!(
        step(&Some("41".into()), &Call::Incr, Some(&Ret::Int(41))),
        None
    );
    // INCR of a non-integer fails without effect: only an indeterminate one fits.
    assert_eq!(
        step(&Some("x".into()), &Call::Incr, Some(&Ret::Int(1))),
        None
    );
    assert_eq!(
        step(&Some("x".into()), &Call::Incr, None),
        Some(Some("x".into()))
    );
    assert_eq!(
        step(&Some("a".into()), &Call::Del, Some(&Ret::Count(1))),
        Some(None)
    );
    assert_eq!(step(&None, &Call::Del, Some(&Ret::Count(1))), None);
    assert_eq!(step(&None, &Call::Get, Some(&NIL)), Some(None));
    assert_eq!(step(&None, &set("a"), None), Some(Some("a".into())));
}

#[test]
fn sequential_and_concurrent_histories_are_accepted() {
    check(&[
        op(0, set("1"), 0, 10, Ret::Ok),
        op(1, Call::Get, 20, 30, val("1")),
        op(0, Call::Incr, 40, 50, Ret::Int(2)),
        op(1, Call::Del, 60, 70, Ret::Count(1)),
        op(0, Call::Get, 80, 90, NIL),
        op(1, Call::Incr, 100, 110, Ret::Int(1)),
    ])
    .expect("sequential history");
    // A read overlapping a write may see either value, in both orders of invocation.
    for (w, r) in [(0, 5), (5, 0)] {
        check(&[
            op(0, set("1"), w, 20, Ret::Ok),
            op(1, Call::Get, r, 25, NIL),
            op(2, Call::Get, r + 1, 26, val("1")),
        ])
        .expect("concurrent reads see before and after");
    }
    // Two overlapping writes, then reads that agree on the later one.
    check(&[
        op(0, set("a"), 0, 20, Ret::Ok),
        op(1, set("b"), 5, 15, Ret::Ok),
        op(2, Call::Get, 30, 40, val("a")),
        op(3, Call::Get, 50, 60, val("a")),
    ])
    .expect("b then a");
    // Operations that touch in time count as concurrent.
    check(&[
        op(0, set("a"), 0, 10, Ret::Ok),
        op(1, Call::Get, 10, 20, NIL),
    ])
    .expect("touching operations overlap");
}

#[test]
fn stale_read_after_an_acknowledged_write_is_rejected() {
    let why = rejected(&[
        op(0, set("1"), 0, 10, Ret::Ok),
        op(1, set("2"), 20, 30, Ret::Ok),
        op(2, Call::Get, 40, 50, val("1")),
    ]);
    assert!(why.contains("key \"k\""), "{why}");
    assert!(why.contains("client 2 GET k -> \"1\""), "{why}");
}

#[test]
fn lost_increment_is_rejected() {
    let why = rejected(&[
        op(0, Call::Incr, 0, 10, Ret::Int(1)),
        op(1, Call::Incr, 5, 15, Ret::Int(1)),
    ]);
    assert!(why.contains("INCR"), "{why}");
    // Sequential too.
    rejected(&[
        op(0, Call::Incr, 0, 10, Ret::Int(1)),
        op(1, Call::Incr, 20, 30, Ret::Int(2)),
        op(0, Call::Get, 40, 50, val("1")),
    ]);
}

#[test]
fn read_of_a_value_never_written_is_rejected() {
    let why = rejected(&[
        op(0, set("a"), 0, 10, Ret::Ok),
        op(1, Call::Get, 5, 15, val("zzz")),
    ]);
    assert!(why.contains("\"zzz\""), "{why}");
}

#[test]
fn read_that_flips_back_is_rejected() {
    // A concurrent write may be seen early or late, but not seen and then unseen.
    let why = rejected(&[
        op(0, set("new"), 0, 100, Ret::Ok),
        op(1, Call::Get, 10, 20, val("new")),
        op(2, Call::Get, 30, 40, NIL),
    ]);
    assert!(why.contains("none of these fits next"), "{why}");
}

#[test]
fn indeterminate_writes_may_apply_late_or_never() {
    // Seen later: applied.
    check(&[
        unknown(0, set("x"), 0),
        op(1, Call::Get, 50, 60, NIL),
        op(1, Call::Get, 70, 80, val("x")),
        op(1, Call::Get, 90, 100, val("x")),
    ])
    .expect("an indeterminate write applied between two reads");
    // Never seen: never applied.
    check(&[unknown(0, set("x"), 0), op(1, Call::Get, 50, 60, NIL)]).expect("never applied");
    // But not before it was invoked.
    rejected(&[op(1, Call::Get, 0, 10, val("x")), unknown(0, set("x"), 20)]);
    // And not twice: a flip back to the old value after it applied is still wrong.
    rejected(&[
        op(2, set("old"), 0, 5, Ret::Ok),
        unknown(0, set("x"), 10),
        op(1, Call::Get, 50, 60, val("x")),
        op(1, Call::Get, 70, 80, val("old")),
    ]);
    // An indeterminate INCR counts at most once.
    check(&[
        unknown(0, Call::Incr, 0),
        op(1, Call::Incr, 10, 20, Ret::Int(2)),
    ])
    .expect("the lost INCR applied");
    rejected(&[
        unknown(0, Call::Incr, 0),
        op(1, Call::Incr, 10, 20, Ret::Int(3)),
    ]);
}

#[test]
fn failed_operations_are_ignored_and_keys_are_independent() {
    let mut failed = op(0, set("x"), 0, 10, Ret::Ok);
    failed.outcome = Outcome::Failed;
    let mut other = op(1, Call::Get, 20, 30, val("y"));
    other.key = "other".into();
    let mut other_set = op(1, set("y"), 0, 10, Ret::Ok);
    other_set.key = "other".into();
    check(&[
        failed.clone(),
        other_set,
        other.clone(),
        op(1, Call::Get, 20, 30, NIL),
    ])
    .expect("failed write never happened");
    // The violation names the key that failed, not the others.
    let why = rejected(&[failed, other, op(2, Call::Get, 40, 50, NIL)]);
    assert!(why.starts_with("key \"other\""), "{why}");
}

#[test]
fn many_concurrent_operations_are_checked_quickly() {
    // 12 clients, all overlapping, INCRs in a valid but scrambled order: the memoised
    // search must not explore 12! orders.
    let mut history = Vec::new();
    for c in 0..12u64 {
        let n = (c * 5) % 12 + 1;
        history.push(op(c as usize, Call::Incr, c, 1000 + c, Ret::Int(n as i64)));
        history.push(unknown(c as usize, set("7"), 2000 + c));
    }
    let started = std::time::Instant::now();
    check(&history).expect("valid");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A history of a sequential register: each operation takes effect at a random point between
/// its invocation and completion; some are indeterminate (applied or not).
fn sequential_history(plan: &[(u8, u8, u16, u16, u16, u8)]) -> Vec<Operation> {
    // (key, kind, invoke, effect delay, completion delay, indeterminate?)
    let mut timed: Vec<(u64, usize)> = Vec::new();
    let mut ops = Vec::new();
    for (i, &(key, kind, invoke, delay, done, unknown)) in plan.iter().enumerate() {
        let call = match kind % 4 {
            0 => Call::Get,
            1 => Call::Set(format!("{}", i % 7)),
            2 => Call::Incr,
            _ => Call::Del,
        };
        let invoke = u64::from(invoke);
        let effect = invoke + u64::from(delay);
        ops.push((
            format!("k{}", key % 3),
            call,
            invoke,
            effect,
            effect + u64::from(done),
            unknown,
        ));
        timed.push((effect, i));
    }
    timed.sort();
    let mut state: std::collections::HashMap<String, Option<String>> = Default::default();
    let mut history: Vec<Option<Operation>> = vec![None; ops.len()];
    for (_, i) in timed {
        let (key, call, invoke, _, at, unknown) = &ops[i];
        let current = state.entry(key.clone()).or_default();
        // Indeterminate: 1 = applied but unanswered, 2 = never applied.
        if *unknown % 4 == 2 {
            history[i] = Some(Operation {
                client: i,
                key: key.clone(),
                call: call.clone(),
                invoke: *invoke,
                outcome: Outcome::Unknown,
            });
            continue;
        }
        let ret = match call {
            Call::Get => Ret::Value(current.clone()),
            Call::Set(v) => {
                *current = Some(v.clone());
                Ret::Ok
            }
            Call::Incr => {
                let n = current
                    .as_deref()
                    .map_or(0, |s| s.parse::<i64>().expect("integer"))
                    + 1;
                *current = Some(n.to_string());
                Ret::Int(n)
            }
            Call::Del => Ret::Count(u64::from(current.take().is_some())),
        };
        history[i] = Some(Operation {
            client: i,
            key: key.clone(),
            call: call.clone(),
            invoke: *invoke,
            outcome: if *unknown % 4 == 1 {
                Outcome::Unknown
            } else {
                Outcome::Done { at: *at, ret }
            },
        });
    }
    history
        .into_iter()
        .map(|o| o.expect("every operation recorded"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn histories_of_a_sequential_register_are_accepted(
        plan in prop::collection::vec(
            (0u8..3, 0u8..4, 0u16..500, 0u16..60, 0u16..60, 0u8..16),
            0..40,
        )
    ) {
        let history = sequential_history(&plan);
        if let Err(v) = check(&history) {
            prop_assert!(false, "{v}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Network namespaces
// ---------------------------------------------------------------------------------------------

/// From namespace `from`, connects to `host:port` and sends PING: true on +PONG within 2 s.
fn pings(net: &NetNs, from: usize, host: &str, port: u16) -> bool {
    const CLIENT: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(7) == b"+PONG\r\n" else 1)
except OSError:
    sys.exit(1)
"#;
    let run = process::run(
        net.command(from, "python3")
            .args(["-c", CLIENT, host, &port.to_string()]),
        None,
        WAIT,
    );
    run.status.success()
}

#[test]
fn netns_partition_cuts_both_ways_and_heal_restores() {
    process::require(
        "redis-server (apt redis-server)",
        "redis-server",
        &["--version"],
    );
    let net = NetNs::create(3);
    // Fixed ports are safe: nothing else lives in these namespaces.
    let port = 7380;
    let mut servers: Vec<_> = (0..3)
        .map(|i| {
            let addr = net.addr(i).to_string();
            let dir = std::env::temp_dir();
            net.spawn(
                i,
                "redis-server",
                &[
                    "--port",
                    &port.to_string(),
                    "--bind",
                    &addr,
                    "--protected-mode",
                    "no",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    dir.to_str().expect("UTF-8"),
                ],
            )
        })
        .collect();
    let reach = |from: usize, to: usize| pings(&net, from, &net.addr(to).to_string(), port);
    common::wait_until_blocking("the servers to answer", WAIT, || {
        (0..3).all(|i| reach((i + 1) % 3, i))
    });
    assert!(reach(0, 1) && reach(1, 0) && reach(2, 0));

    net.partition(&[0], &[1, 2]);
    assert!(!reach(0, 1), "0 -> 1 crosses the partition");
    assert!(!reach(1, 0), "1 -> 0 crosses the partition");
    assert!(!reach(0, 2) && !reach(2, 0));
    assert!(reach(1, 2) && reach(2, 1), "the majority side still talks");
    // The test process (root namespace, on the bridge) still reaches everyone.
    for i in 0..3 {
        let mut s = std::net::TcpStream::connect((net.addr(i), port)).expect("reach from root");
        use std::io::{Read, Write};
        s.write_all(b"PING\r\n").expect("write");
        let mut pong = [0u8; 7];
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.read_exact(&mut pong).expect("pong");
        assert_eq!(&pong, b"+PONG\r\n");
    }
    assert_eq!(net.cuts().len(), 4);

    net.heal();
    assert!(net.cuts().is_empty());
    assert!(reach(0, 1) && reach(1, 0) && reach(0, 2) && reach(2, 0));

    for s in &mut servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    let names: Vec<String> = (0..3).map(|i| net.name(i)).collect();
    drop(servers);
    drop(net);
    let left = process::run(Command::new("ip").args(["netns", "list"]), None, WAIT).stdout;
    for name in names {
        assert!(
            !left.contains(&name),
            "namespace {name} left behind: {left}"
        );
    }
}

#[test]
fn netns_is_removed_when_the_test_panics() {
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let net = NetNs::create(2);
        names
            .lock()
            .expect("names")
            .extend([net.name(0), net.name(1)]);
        net.isolate(0);
        panic!("test failure while partitioned");
    });
    assert!(result.is_err());
    let left = process::run(Command::new("ip").args(["netns", "list"]), None, WAIT).stdout;
    let links = process::run(Command::new("ip").args(["-o", "link"]), None, WAIT).stdout;
    for name in names.into_inner().expect("names") {
        assert!(
            !left.contains(&name),
            "namespace {name} left behind: {left}"
        );
        let tag = name
            .trim_end_matches(char::is_numeric)
            .trim_end_matches('n')
            .to_string();
        assert!(
            !links.contains(&format!("{tag}b")),
            "bridge left behind: {links}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The nemesis harness's pure parts
// ---------------------------------------------------------------------------------------------

#[test]
fn node_arguments_follow_the_cluster_command_line() {
    let addrs: Vec<std::net::SocketAddr> = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
        .iter()
        .map(|a| a.parse().expect("address"))
        .collect();
    let config = ClusterConfig {
        replicas: Some(3),
        ..ClusterConfig::default()
    };
    assert_eq!(
        node_args(1, &addrs, &config, "/tmp/d2").join(" "),
        "server 2 7002 --host 127.0.0.1 --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 \
         --data-dir /tmp/d2 --replicas 3"
    );
}

#[test]
fn schedules_repair_every_fault_before_the_next() {
    let mut rng = Rng::seeded(7);
    let faults = schedule(&mut rng, 50, 3, true);
    assert_eq!(faults.len(), 100);
    let mut kinds = std::collections::HashSet::new();
    for pair in faults.chunks(2) {
        let repaired = match (&pair[0], &pair[1]) {
            (Fault::Kill(a), Fault::Restart(b)) | (Fault::Pause(a), Fault::Resume(b)) => a == b,
            (Fault::Partition(a, b), Fault::Heal) => a.len() == 1 && b.len() == 2,
            _ => false,
        };
        assert!(repaired, "{pair:?}");
        kinds.insert(std::mem::discriminant(&pair[0]));
    }
    assert_eq!(kinds.len(), 3, "every kind of fault drawn");
    assert!(schedule(&mut rng, 50, 3, false)
        .iter()
        .all(|f| !matches!(f, Fault::Partition(..) | Fault::Heal)));
}

#[test]
fn replies_are_parsed_and_classified() {
    assert_eq!(
        parse_reply(b"+OK\r\n"),
        Ok(Some((Reply::Simple("OK".into()), 5)))
    );
    assert_eq!(parse_reply(b":12\r\n+OK"), Ok(Some((Reply::Int(12), 5))));
    assert_eq!(parse_reply(b"$-1\r\n"), Ok(Some((Reply::Bulk(None), 5))));
    assert_eq!(
        parse_reply(b"$3\r\nabc\r\n"),
        Ok(Some((Reply::Bulk(Some(b"abc".to_vec())), 9)))
    );
    assert_eq!(parse_reply(b"$3\r\nab"), Ok(None));
    assert_eq!(parse_reply(b"-TRYAGAIN"), Ok(None));
    assert!(parse_reply(b"*1\r\n").is_err());

    let err = || Reply::Error("CLUSTERDOWN no leader".into());
    assert_eq!(outcome(&Call::Get, err(), 5, false), Outcome::Failed);
    assert_eq!(outcome(&Call::Incr, err(), 5, false), Outcome::Unknown);
    assert_eq!(
        outcome(&Call::Set("1".into()), err(), 5, true),
        Outcome::Failed
    );
    assert_eq!(
        outcome(&Call::Get, Reply::Bulk(Some(b"7".to_vec())), 5, false),
        Outcome::Done {
            at: 5,
            ret: Ret::Value(Some("7".into()))
        }
    );
    assert_eq!(
        outcome(&Call::Incr, Reply::Int(8), 5, false),
        Outcome::Done {
            at: 5,
            ret: Ret::Int(8)
        }
    );
    assert_eq!(
        request("k", &Call::Incr),
        b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n".to_vec()
    );

    let mut rng = Rng::seeded(3);
    let ops: Vec<_> = (0..200).map(|_| random_op(&mut rng, 5)).collect();
    assert!(ops.iter().all(|(k, _)| k.starts_with("nemesis:")));
    assert!(ops
        .iter()
        .any(|(_, c)| matches!(c, Call::Set(v) if v.parse::<i64>().is_ok())));
    assert!(ops.iter().any(|(_, c)| *c == Call::Incr));
}
