//! The benchmark scripts that `docs/performance.md` and `docs/reliability.md` run,
//! `scripts/bench/compare.sh`, `memory.sh`, `replicated.sh`, `failover.sh`, `rebalance.sh`,
//! `cpu_per_request.sh` and `latency_during.sh`,
//! still run: each
//! once against real nodes at tiny sizes, checking the lines the docs quote (never the figures:
//! these are not timed tests). Needs redis-server, redis-benchmark and python3
//! (`./scripts/test.sh` installs them).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::process::{binary, require, run, NodeProcess};

/// Bound for one script run: compare.sh makes 8 benchmark runs here, against a debug build.
const SCRIPT_LIMIT: Duration = Duration::from_secs(180);

#[test]
fn compare_script_measures_both_servers_at_both_pipeline_depths() {
    require("redis-server", "redis-server", &["--version"]);
    require("redis-benchmark", "redis-benchmark", &["--version"]);
    let node = NodeProcess::start();
    let out = run(
        script("compare.sh")
            .arg(node.port_arg())
            .env("ROUNDS", "1")
            .env("N_P1", "10000")
            .env("N_P16", "100000")
            .env_remove("TARGET_PID")
            .env_remove("TESTS"),
        None,
        SCRIPT_LIMIT,
    );
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    // The script found the node's process by its port: CPU figures are the node's.
    let pid = format!("(pid {})", node.process.pid());
    assert!(
        lines[0].starts_with("target ") && lines[0].contains(&pid),
        "header names the node's pid {pid}: {}",
        out.report()
    );
    for test in ["SET P=1: ", "GET P=1: ", "SET P=16: ", "GET P=16: "] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(test))
            .unwrap_or_else(|| panic!("no `{test}` line: {}", out.report()));
        let target = number_after(line, "target ");
        let redis = number_after(line, "redis ");
        assert!(target > 0.0 && redis > 0.0, "both servers answered: {line}");
        assert!(line.contains("[p50 ms "), "latencies shown: {line}");
    }
    let last = lines.last().expect("some output");
    assert!(
        last.starts_with("compare: worst throughput ratio ") && !last.contains("n/a"),
        "the last line is the summary, with throughput and CPU ratios: {}",
        out.report()
    );
}

#[test]
fn memory_script_loads_the_keys_and_reports_bytes_per_key() {
    require("redis-cli (apt redis-tools)", "redis-cli", &["--version"]);
    let node = NodeProcess::start();
    let out = run(
        script("memory.sh").args([
            node.port_arg(),
            node.process.pid().to_string(),
            "20000".into(),
        ]),
        None,
        SCRIPT_LIMIT,
    );
    out.assert_success();
    let text = &out.stdout;
    for expected in [
        "(rc=0, ",
        "check: GET key:000020000 -> 'vxxxxxxxxx'",
        "keys requested: 20000 (value 10 bytes), DBSIZE before/after: 0/20000",
        "RSS before: ",
        "RSS total per key:  ",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing: {}",
            out.report()
        );
    }
    let growth = text
        .lines()
        .find(|l| l.starts_with("RSS growth per key: "))
        .unwrap_or_else(|| panic!("no growth line: {}", out.report()));
    number_after(growth, "RSS growth per key: ");
}

#[test]
fn replicated_script_measures_node_cluster_and_redis_with_replicas() {
    require("redis-server", "redis-server", &["--version"]);
    require("redis-benchmark", "redis-benchmark", &["--version"]);
    let out = run(
        script("replicated.sh")
            .env("MINIKV", binary())
            .env("ROUNDS", "1")
            .env("N_P1", "2000")
            .env("N_P16", "20000")
            .env_remove("TESTS"),
        None,
        SCRIPT_LIMIT,
    );
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("node ") && lines[0].contains("2 replicas"),
        "header names the three sides: {}",
        out.report()
    );
    for test in ["SET P=1: ", "GET P=1: ", "SET P=16: ", "GET P=16: "] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(test))
            .unwrap_or_else(|| panic!("no `{test}` line: {}", out.report()));
        for side in ["node ", "cluster ", "redis "] {
            assert!(number_after(line, side) > 0.0, "{side}answered: {line}");
        }
        assert!(line.contains("[p50 ms "), "latencies shown: {line}");
    }
    let last = lines.last().expect("some output");
    assert!(
        last.starts_with("replicated: cluster/node SET P=1 ") && last.contains("GET P=16 "),
        "the last line is the summary of ratios: {}",
        out.report()
    );
}

#[test]
fn failover_script_times_each_kill_and_sums_them_up() {
    require("python3", "python3", &["--version"]);
    let out = run(
        script("failover.sh")
            .args(["2", "250"])
            .env("MINIKV", binary())
            .env_remove("KEEP_LOGS"),
        None,
        SCRIPT_LIMIT,
    );
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    for kill in ["kill 1: node ", "kill 2: node "] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(kill))
            .unwrap_or_else(|| panic!("no `{kill}` line: {}", out.report()));
        assert!(line.contains(" led shard 1 "), "names the leader: {line}");
        number_after(line, " after ");
    }
    let last = lines.last().expect("some output");
    assert!(
        last.starts_with("failover: 2 kills, node timeout 250 ms: p50 "),
        "the last line is the summary: {}",
        out.report()
    );
    for label in ["p50 ", "p90 ", "max ", "misses "] {
        number_after(last, label);
    }
}

#[test]
fn rebalance_script_moves_a_quarter_of_the_keys_and_checks_them() {
    require("python3", "python3", &["--version"]);
    let out = run(
        script("rebalance.sh")
            .arg("3000")
            .env("MINIKV", binary())
            .env("BEFORE_S", "1")
            .env("SAMPLE", "3000")
            .env_remove("BATCH")
            .env_remove("PROBE_RATE")
            .env_remove("NODE_TIMEOUT_MS")
            .env_remove("SAMPLES")
            .env_remove("KEEP_LOGS"),
        None,
        SCRIPT_LIMIT,
    );
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    for start in [
        "loaded 3000 keys (300 with a TTL) ",
        "node 4 joined in ",
        "plan: move 3072 slots in 3 calls ",
        "done: slots=3072 ",
        "checked: slots 1=3072 2=3072 3=3072 4=3072; ",
        "probe before: ",
        "probe during: ",
        "cpu during: ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(start)),
            "no `{start}` line: {}",
            out.report()
        );
    }
    let last = lines.last().expect("some output");
    assert!(
        last.starts_with("rebalance: 3000 keys, 3 -> 4 shards: ") && last.ends_with("; check ok"),
        "the last line is the summary, checks passed: {}",
        out.report()
    );
    for label in [
        "shards: ",
        " in ",
        " (",
        "raw ",
        "wire ",
        "p99 before ",
        "during ",
        "(max ",
    ] {
        number_after(last, label);
    }
}

#[test]
fn cpu_per_request_script_reports_a_median_per_binary() {
    require("redis-benchmark", "redis-benchmark", &["--version"]);
    let out = run(
        script("cpu_per_request.sh")
            .args(["get", "16", "20000", binary()])
            .env("ROUNDS", "2"),
        None,
        SCRIPT_LIMIT,
    );
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "two runs and a median: {}", out.stdout);
    for line in &lines[..2] {
        assert!(
            line.starts_with("round ") && line.ends_with(" us/req"),
            "{line}"
        );
    }
    assert!(
        lines[2].starts_with(&format!("median {}: ", binary()))
            && lines[2].ends_with("(get -P 16)"),
        "{}",
        lines[2]
    );
    // A debug build spends measurable CPU on 20000 GETs.
    assert!(number_after(lines[2], ": ") > 0.0, "{}", lines[2]);
}

#[test]
fn latency_during_script_reports_every_mode_of_both_servers() {
    require("redis-server", "redis-server", &["--version"]);
    require("redis-benchmark", "redis-benchmark", &["--version"]);
    let out = run(
        script("latency_during.sh")
            .env("MINIKV", binary())
            .env("KEYS", "2000")
            .env("N", "10000")
            .env_remove("MODES")
            .env_remove("SERVERS"),
        None,
        SCRIPT_LIMIT,
    );
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        12,
        "3 modes x 2 servers x SET, GET: {}",
        out.stdout
    );
    for (i, line) in lines.iter().enumerate() {
        let server = ["minikv", "redis"][(i / 2) % 2];
        let mode = ["quiet", "snapshot", "rewrite"][i / 4];
        let test = ["SET", "GET"][i % 2];
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[..3], [server, mode, test], "{line}");
        // The number in the word after `label` (padding, a trailing comma or parenthesis aside).
        let after = |label: &str| -> f64 {
            let at = words
                .iter()
                .position(|w| *w == label)
                .unwrap_or_else(|| panic!("`{label}` in {line}"));
            let word = words.get(at + 1).copied().unwrap_or_default();
            word.trim_end_matches([',', ')'])
                .parse()
                .unwrap_or_else(|e| panic!("a number after `{label}` in {line}: {e}"))
        };
        assert!(after(test) > 0.0, "req/s in {line}");
        for label in ["p50", "p99", "p99.9", "max"] {
            assert!(after(label) > 0.0, "{label} in {line}");
        }
        let over = after("ms:");
        assert!((0.0..=10000.0).contains(&over), "{line}");
        // The background loop ran: a save (or a rewrite) finished during the run.
        let done = after("(saves") + after("rewrites");
        assert_eq!(done > 0.0, mode != "quiet", "{line}");
    }
}

/// A command running `scripts/bench/<name>`.
fn script(name: &str) -> Command {
    Command::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("scripts/bench")
            .join(name),
    )
}

/// The number right after `label` in `line` (panics if there is none).
fn number_after(line: &str, label: &str) -> f64 {
    let rest = &line[line
        .find(label)
        .unwrap_or_else(|| panic!("`{label}` in {line}"))
        + label.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("a number after `{label}` in {line}: {e}"))
}
