//! The client matrix, part 1: real client libraries in other languages against a real node.
//!
//! Each test starts the `minikv` binary on an ephemeral port and runs one script from
//! `tests/clients/` against it: redis-py 8 (HELLO 3 by default, and protocol 2), ioredis 6
//! and node-redis 6 (HELLO 3 by default, and RESP2). The scripts assert every value they read
//! back and exit non-zero on the first mismatch; their output is shown when they fail.
//! `./scripts/test.sh` installs the libraries (pip `redis==8.*`, npm packages into
//! `tests/clients/node_modules`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::{clients_dir, require, run, NodeProcess};

/// Bound for one script: it runs a few hundred commands per protocol variant.
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

fn run_script(interpreter: &str, script: &str) {
    let node = NodeProcess::start();
    let path = clients_dir().join(script);
    let result = run(
        Command::new(interpreter)
            .arg(&path)
            .arg(node.port_arg())
            .current_dir(clients_dir()),
        None,
        SCRIPT_LIMIT,
    );
    assert!(
        result.status.success(),
        "{script} failed against the node: {}\n--- node stderr ---\n{}",
        result.report(),
        node.process.stderr()
    );
    print!("{}", result.stdout);
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
