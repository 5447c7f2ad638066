//! The client matrix, part 1: real client libraries in other languages against a real node.
//!
//! Each test starts the `minikv` binary on an ephemeral port and runs one script from
//! `tests/clients/` against it: redis-py 8 (HELLO 3 by default, and protocol 2), ioredis 6
//! and node-redis 6 (HELLO 3 by default, and RESP2), each over strings, hashes, lists, sets,
//! sorted sets and a publish/subscribe round trip; and rq 1.11.1, a Python job queue, end to
//! end (jobs enqueued, a real `rq worker --burst` process, results, the failed job registry,
//! dependencies, and a long-running worker woken from BLPOP by an enqueue). The scripts assert every value they read back and exit non-zero on the
//! first mismatch; their output is shown when they fail. `./scripts/test.sh` installs the
//! libraries (pip `redis==8.*` and `rq==1.11.1`, npm packages into `tests/clients/node_modules`).
//! The rq scenario also runs against a real redis-server, so that a failure against the node
//! is known to be the node's and not the script's.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::{clients_dir, require, run, NodeProcess, RedisServer};

/// Bound for one script: it runs a few hundred commands per protocol variant.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

fn run_script(interpreter: &str, script: &str) {
    let node = NodeProcess::start();
    let result = run_script_on(interpreter, script, node.port);
    assert!(
        result.status.success(),
        "{script} failed against the node: {}\n--- node stderr ---\n{}",
        result.report(),
        node.process.stderr()
    );
    print!("{}", result.stdout);
}

fn run_script_on(interpreter: &str, script: &str, port: u16) -> common::process::Run {
    run(
        Command::new(interpreter)
            .arg(clients_dir().join(script))
            .arg(port.to_string())
            .current_dir(clients_dir()),
        None,
        SCRIPT_LIMIT,
    )
}

fn require_rq() {
    require(
        "rq 1.11.1 (pip package rq) with redis-py 8",
        "python3",
        &[
            "-c",
            "import redis, rq, sys; \
             sys.exit(rq.__version__ != '1.11.1' or redis.__version__.split('.')[0] != '8')",
        ],
    );
}

fn require_node_package(package: &str) {
    require("node", "node", &["--version"]);
    let installed = clients_dir()
        .join("node_modules")
        .join(package)
        .join("package.json");
    assert!(
        installed.exists(),
        "npm package {package} is not installed in tests/clients/node_modules: run \
         ./scripts/test.sh (it runs `npm install --prefix tests/clients`)"
    );
}

#[test]
fn redis_py_8_resp3_and_resp2() {
    require(
        "redis-py 8 (pip package redis)",
        "python3",
        &[
            "-c",
            "import redis, sys; sys.exit(redis.__version__.split('.')[0] != '8')",
        ],
    );
    run_script("python3", "redis_py_check.py");
}

#[test]
fn ioredis_6_resp3_and_resp2() {
    require_node_package("ioredis");
    run_script("node", "ioredis_check.js");
}

#[test]
fn node_redis_6_resp3_and_resp2() {
    require_node_package("redis");
    run_script("node", "node_redis_check.js");
}

#[test]
fn rq_job_queue_end_to_end() {
    require_rq();
    run_script("python3", "rq_check.py");
}

/// The same scenario against redis-server 7.0: the script itself is right, so a failure of
/// [`rq_job_queue_end_to_end`] is the node's.
#[test]
fn rq_job_queue_end_to_end_against_redis_server() {
    require_rq();
    let dir = tempfile::tempdir().expect("create a directory for redis-server");
    let server = RedisServer::start(dir.path());
    let result = run_script_on("python3", "rq_check.py", server.port);
    assert!(
        result.status.success(),
        "rq_check.py failed against redis-server: {}",
        result.report()
    );
    print!("{}", result.stdout);
}
