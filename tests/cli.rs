//! The `minikv` command as a newcomer meets it in the first hour, through the real binary:
//! start-up errors said in words, and a stop signal saving every acknowledged write even when
//! standard error is a pipe nobody reads any more (`minikv server 1 7001 2>&1 | tee log`,
//! whose `tee` the same Ctrl+C stops).

mod common;

use std::path::Path;
use std::process::Command;

use common::process::{binary, free_port, read_pipe_until, run, BinProcess};
use common::redis_rs::sync::q;
use common::redis_rs::sync_connection;
use common::snapshot::{read_snapshot, read_snapshot_if_written, snapshot_entries};
use common::WAIT;

#[test]
fn sigint_saves_the_last_write_when_stderr_is_a_closed_pipe() {
    node_with_closed_stderr_saves_on(Stop::Interrupt);
}

#[test]
fn sigterm_saves_the_last_write_when_stderr_is_a_closed_pipe() {
    node_with_closed_stderr_saves_on(Stop::Terminate);
}

#[test]
fn a_data_directory_that_is_a_file_is_refused_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("afile");
    std::fs::write(&file, "not a directory").expect("write");
    let file_text = file.to_str().expect("UTF-8");
    let run = minikv(&[
        "server",
        "1",
        &free_port().to_string(),
        "--data-dir",
        file_text,
    ]);
    assert_ne!(run.status.code(), Some(0), "{}", run.report());
    assert!(
        run.stderr.contains(&format!(
            "cannot create data directory '{file_text}': a file with that name exists"
        )),
        "{}",
        run.report()
    );
}

/// How a test asks a process to stop.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGINT, as Ctrl+C.
    Interrupt,
    /// SIGTERM, as `kill` or systemd.
    Terminate,
}

/// Starts a node whose standard error is a pipe, reads its start-up line and closes the pipe,
/// writes a key (long before the next periodic save), and stops it with `stop`: it must exit
/// 0 with the key in its snapshot.
fn node_with_closed_stderr_saves_on(stop: Stop) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (port_text, dir_text) = (port.to_string(), dir.path().to_str().expect("UTF-8"));
    let (reader, writer) = std::io::pipe().expect("pipe");
    let args = [
        "server",
        "1",
        &port_text,
        "--data-dir",
        dir_text,
        "--save-interval",
        "3600",
    ];
    let mut node = BinProcess::start_with(&args, &[], |c| {
        c.stderr(writer);
    });
    read_pipe_until("the node's start-up line", reader, WAIT, |log| {
        log.contains("listening on")
    });
    // The pipe has no reader now: every log line from here on meets EPIPE.
    let mut con = sync_connection(&format!("redis://127.0.0.1:{port}/"));
    let () = q(&mut con, &["SET", "last", "acknowledged"]);
    drop(con);
    let path = snapshot_path(dir.path(), 1);
    assert!(
        read_snapshot_if_written(&path).is_none(),
        "no periodic save yet"
    );
    match stop {
        Stop::Interrupt => node.interrupt(),
        Stop::Terminate => node.terminate(),
    }
    let status = node.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{stop:?} with stderr closed: {status}"
    );
    assert_eq!(
        snapshot_entries(&read_snapshot(&path)),
        [(0, "last".to_string(), "acknowledged".to_string())]
    );
}

/// Node `id`'s snapshot file in `dir`.
fn snapshot_path(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join(format!("kv_store_server{id}.json"))
}

/// Runs `minikv args...` to completion (within [`WAIT`]).
fn minikv(args: &[&str]) -> common::process::Run {
    run(Command::new(binary()).args(args), None, WAIT)
}
