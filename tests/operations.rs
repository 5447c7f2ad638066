//! What `docs/operations.md` relies on from `contrib/minikv.service`: the unit's command line
//! starts a node, and SIGTERM (the unit's `KillSignal`) stops it with a final snapshot well
//! within the unit's `TimeoutStopSec`. (`scripts/test.sh` checks the file itself with
//! `systemd-analyze verify`.)

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::process::{free_port, BinProcess};
use common::redis_rs::{sync::q, sync_connection};
use common::snapshot::{read_snapshot, snapshot_entries};

#[test]
fn the_units_command_line_serves_and_stops_on_sigterm_with_a_final_snapshot() {
    let unit = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/minikv.service"),
    )
    .expect("read contrib/minikv.service");
    assert_eq!(setting(&unit, "KillSignal"), "SIGTERM");
    let stop_limit = Duration::from_secs(
        setting(&unit, "TimeoutStopSec")
            .parse()
            .expect("TimeoutStopSec in plain seconds"),
    );

    // ExecStart as written, on a free port and a temporary data directory instead of the
    // unit's 7001 and /var/lib/minikv.
    let exec = setting(&unit, "ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/minikv"), "{exec}");
    let dir = tempfile::tempdir().expect("create a data directory");
    let port = free_port();
    let (port_text, dir_text) = (port.to_string(), dir.path().display().to_string());
    let args: Vec<&str> = words
        .map(|w| match w {
            "7001" => port_text.as_str(),
            "/var/lib/minikv" => dir_text.as_str(),
            other => other,
        })
        .collect();
    assert!(
        args.contains(&dir_text.as_str()),
        "the unit sets --data-dir: {exec}"
    );
    let mut node = BinProcess::start(&args, &[port]);

    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let _: () = q(&mut con, &["SET", "user:alice", "Alice"]);
    drop(con);

    let asked = Instant::now();
    node.terminate();
    let status = node.wait_exit();
    assert!(
        status.success(),
        "exit 0 after SIGTERM: {status}; {}",
        node.stderr()
    );
    assert!(
        asked.elapsed() < stop_limit,
        "stopped within TimeoutStopSec"
    );
    let stderr = node.stderr();
    assert!(
        stderr.contains("final snapshot written; node stopped"),
        "the INFO line docs/operations.md quotes: {stderr}"
    );
    let snapshot = read_snapshot(&dir.path().join("kv_store_server1.json"));
    let entries = snapshot_entries(&snapshot);
    assert!(
        entries
            .iter()
            .any(|(_, k, v)| k == "user:alice" && v == "Alice"),
        "the final snapshot holds the key: {entries:?}"
    );
}

/// The value of the first `name=` line of the unit.
fn setting<'a>(unit: &'a str, name: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{name}= in contrib/minikv.service"))
}
