//! Three real nodes of a replicated cluster (issue 10) under faults (SIGKILL/restart,
//! SIGSTOP/SIGCONT, and, in network namespaces, partitions) serve random GET/SET/INCR from
//! several workers; the recorded history, plus a final read of every key from every node, must
//! be linearizable: no acknowledged write lost, no read of a value the cluster later forgot.

mod common;

use std::time::Duration;

use common::linearizability::{check, Outcome};
use common::nemesis::{
    final_reads, keys, schedule, Clock, Cluster, ClusterConfig, WorkerConfig, Workers,
};
use common::Rng;

/// Faults per run (each followed by its repair), unless `NEMESIS_ROUNDS` says otherwise
/// (`scripts/nemesis.sh` runs many more; CI keeps the default, about 15 s per test).
const ROUNDS: usize = 4;
/// How long a fault stays in force, and the quiet time after each repair.
const FAULT: Duration = Duration::from_millis(1500);
const QUIET: Duration = Duration::from_millis(1000);
/// Concurrent clients.
const WORKERS: usize = 4;

fn run(netns: bool) {
    let (mut rng, seed) = Rng::from_time();
    eprintln!("nemesis seed {seed} (netns: {netns})");
    let mut cluster = Cluster::start(ClusterConfig {
        netns,
        ..ClusterConfig::default()
    });
    let addrs = cluster.addrs();
    // Many keys keep each key's history short enough to check exhaustively; a timeout longer
    // than a failover keeps indeterminate operations rare. A node answers an error only for a
    // command that did not run (a write whose fate is unknown closes the connection instead),
    // so errors count as definite failures: a write that reported one and still happened
    // would be caught.
    let config = WorkerConfig {
        keys: 40,
        timeout: Duration::from_secs(3),
        errors_are_definite: true,
        ..WorkerConfig::default()
    };
    let clock = Clock::start();
    // Let a leader be elected before the faults begin (writes before then are refused,
    // which the history tolerates anyway).
    std::thread::sleep(QUIET);
    let workers = Workers::start(WORKERS, &addrs, &config, clock, seed);
    let rounds = rounds();
    for fault in schedule(&mut rng, rounds, addrs.len(), netns) {
        eprintln!("nemesis: {fault:?}");
        cluster.apply(&fault);
        std::thread::sleep(FAULT);
    }
    cluster.recover();
    std::thread::sleep(QUIET);
    let mut history = workers.stop();
    let acked = history
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Done { .. }))
        .count();
    let unknown = history
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .count();
    assert!(
        acked > 100,
        "only {acked} operations acknowledged: the test tested nothing"
    );
    history.extend(final_reads(&addrs, &keys(&config), WORKERS, clock));
    eprintln!(
        "{} operations, {acked} acknowledged, {unknown} indeterminate",
        history.len()
    );
    for i in 0..addrs.len() {
        let log = cluster.log(i);
        assert!(
            !log.contains("panicked"),
            "seed {seed}: node {} panicked:\n{log}",
            i + 1
        );
    }
    let verdict = check(&history);
    // One line per run in a fixed format, which scripts/nemesis.sh adds up.
    eprintln!(
        "nemesis result: netns={netns} rounds={rounds} operations={} acknowledged={acked} \
         indeterminate={unknown} violations={}",
        history.len(),
        usize::from(verdict.is_err())
    );
    if let Err(v) = verdict {
        panic!(
            "seed {seed}: {v}\nnode logs:\n{}",
            (0..addrs.len())
                .map(|i| cluster.log(i))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
    }
}

/// Fault rounds per run: `NEMESIS_ROUNDS` when set to a positive number, else [`ROUNDS`].
fn rounds() -> usize {
    match std::env::var("NEMESIS_ROUNDS") {
        Ok(text) => match text.parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("NEMESIS_ROUNDS must be a positive number, not {text:?}"),
        },
        Err(_) => ROUNDS,
    }
}

#[test]
fn history_under_kills_and_pauses_is_linearizable() {
    run(false);
}

#[test]
fn history_under_partitions_kills_and_pauses_is_linearizable() {
    run(true);
}
