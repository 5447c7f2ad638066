//! The latency monitor through the real binary: off by default; with a threshold (flag, config
//! file or CONFIG SET) a slow command (DEBUG SLEEP, as Redis's own test uses) is recorded and
//! LATEST, HISTORY, GRAPH, DOCTOR and RESET report it; HISTOGRAM reports per-command calls.
//! (Replies on a monitor with nothing recorded, and the error texts, are compared with
//! redis-server in `tests/differential/latency.redis`.)

mod common;

use common::process::{free_port, BinProcess};
use common::redis_rs::{sync::q, sync_connection};

#[test]
fn a_slow_command_is_recorded_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut node = BinProcess::server(1, port, dir.path(), &["--latency-monitor-threshold", "1"]);
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let threshold: Vec<String> = q(&mut con, &["CONFIG", "GET", "latency-monitor-threshold"]);
    assert_eq!(threshold, ["latency-monitor-threshold", "1"]);
    let () = q(&mut con, &["DEBUG", "SLEEP", "0.05"]);

    // Other commands may be recorded too on a busy machine: look for the sleep's sample.
    let latest: Vec<(String, i64, i64, i64)> = q(&mut con, &["LATENCY", "LATEST"]);
    let command = latest
        .iter()
        .find(|(event, ..)| event == "command")
        .unwrap_or_else(|| panic!("a `command` event: {latest:?}"));
    let (_, when, last_ms, max_ms) = command;
    assert!(*when > 1_600_000_000, "unix seconds: {when}");
    assert!(*max_ms >= 50 && *max_ms >= *last_ms, "{command:?}");
    let history: Vec<(i64, i64)> = q(&mut con, &["LATENCY", "HISTORY", "command"]);
    assert!(history.iter().any(|&(_, ms)| ms >= 50), "{history:?}");

    let doctor: String = q(&mut con, &["LATENCY", "DOCTOR"]);
    assert!(
        doctor.starts_with("Dave, I have observed latency spikes"),
        "{doctor}"
    );
    assert!(doctor.contains(". command: "), "{doctor}");
    assert!(doctor.contains("Check your Slow Log"), "{doctor}");
    let graph: String = q(&mut con, &["LATENCY", "GRAPH", "command"]);
    assert!(graph.starts_with("command - high "), "{graph}");

    let histogram: redis::Value = q(&mut con, &["LATENCY", "HISTOGRAM", "debug", "nosuch"]);
    let text = format!("{histogram:?}");
    assert!(
        text.contains("debug") && text.contains("histogram_usec"),
        "{text}"
    );

    // Off again, nothing new is recorded; RESET forgets what was.
    let () = q(
        &mut con,
        &["CONFIG", "SET", "latency-monitor-threshold", "0"],
    );
    let reset: i64 = q(&mut con, &["LATENCY", "RESET"]);
    assert!(reset >= 1, "{reset}");
    let () = q(&mut con, &["DEBUG", "SLEEP", "0.01"]);
    let latest: Vec<(String, i64, i64, i64)> = q(&mut con, &["LATENCY", "LATEST"]);
    assert!(latest.is_empty(), "{latest:?}");
    let history: Vec<(i64, i64)> = q(&mut con, &["LATENCY", "HISTORY", "command"]);
    assert!(history.is_empty());
    node.kill();
}

#[test]
fn the_threshold_comes_from_the_config_file_and_the_flag_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("node.conf");
    std::fs::write(&file, "latency-monitor-threshold 25\n").expect("write config");
    let file = file.to_str().expect("UTF-8 temp path");
    let get = |port: u16| -> Vec<String> {
        let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
        q(&mut con, &["CONFIG", "GET", "latency-monitor-threshold"])
    };

    let port = free_port();
    let mut node = BinProcess::server(1, port, dir.path(), &["--config", file]);
    assert_eq!(get(port), ["latency-monitor-threshold", "25"]);
    node.kill();

    let port = free_port();
    let mut node = BinProcess::server(
        1,
        port,
        dir.path(),
        &["--config", file, "--latency-monitor-threshold", "7"],
    );
    assert_eq!(get(port), ["latency-monitor-threshold", "7"]);
    node.kill();
}
