//! The client matrix, part 2: redis-cli 7 and redis-benchmark against a real node.
//!
//! Every test starts the `minikv` binary on an ephemeral port and drives the real programs
//! (apt `redis-tools`; the interactive test also needs `tmux`, installed by
//! `./scripts/test.sh`): one-shot commands, RESP3 (`-3`), `--scan`, `--bigkeys`, `--memkeys`,
//! `--pipe` with a million SETs, `--stat`, `--latency`, the interactive prompt (which sends
//! COMMAND DOCS at startup) and redis-benchmark. Programs that run until stopped are read
//! until their output shows what is expected, within a bound, then killed.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{require, run, run_until, NodeProcess, Run};
use common::tmux::Tmux;
use common::WAIT;

/// Bound for one ordinary redis-cli run.
const CLI_LIMIT: Duration = Duration::from_secs(30);

fn require_cli() {
    require("redis-cli (apt redis-tools)", "redis-cli", &["--version"]);
}

/// Runs `redis-cli -p PORT args...`, asserts it exited 0 and returns its output.
fn cli(node: &NodeProcess, args: &[&str]) -> String {
    cli_run(node, args, None).assert_success().stdout.clone()
}

fn cli_run(node: &NodeProcess, args: &[&str], input: Option<Vec<u8>>) -> Run {
    run(
        Command::new("redis-cli")
            .args(["-p", &node.port_arg()])
            .args(args),
        input,
        CLI_LIMIT,
    )
}

#[test]
fn one_shot_commands() {
    require_cli();
    let node = NodeProcess::start();
    assert_eq!(cli(&node, &["PING"]), "PONG\n");
    assert_eq!(cli(&node, &["SET", "greeting", "hello world"]), "OK\n");
    assert_eq!(cli(&node, &["GET", "greeting"]), "hello world\n");
    assert_eq!(
        cli(&node, &["--no-raw", "GET", "greeting"]),
        "\"hello world\"\n"
    );
    assert_eq!(cli(&node, &["--no-raw", "GET", "missing"]), "(nil)\n");
    assert_eq!(cli(&node, &["INCR", "n"]), "1\n");
    assert_eq!(
        cli(&node, &["--no-raw", "INCRBY", "n", "41"]),
        "(integer) 42\n"
    );
    assert_eq!(cli(&node, &["MSET", "a", "1", "b", "2"]), "OK\n");
    assert_eq!(
        cli(&node, &["--no-raw", "MGET", "a", "missing", "b"]),
        "1) \"1\"\n2) (nil)\n3) \"2\"\n"
    );
    assert_eq!(cli(&node, &["EXPIRE", "a", "100"]), "1\n");
    let ttl: i64 = cli(&node, &["TTL", "a"])
        .trim()
        .parse()
        .expect("TTL is a number");
    assert!((98..=100).contains(&ttl), "TTL after EXPIRE 100: {ttl}");
    assert_eq!(
        cli(&node, &["--no-raw", "INCR", "greeting"]),
        "(error) ERR value is not an integer or out of range\n"
    );
    assert_eq!(cli(&node, &["DBSIZE"]), "4\n");
    // Commands on standard input, one per line, answered in order.
    let piped = cli_run(
        &node,
        &[],
        Some(b"SET s1 v1\nGET s1\nDEL s1\nEXISTS s1\n".to_vec()),
    );
    assert_eq!(piped.assert_success().stdout, "OK\nv1\n1\n0\n");
    // -x: the last argument from standard input.
    let x = cli_run(
        &node,
        &["-x", "SET", "from-stdin"],
        Some(b"line1\nline2".to_vec()),
    );
    assert_eq!(x.assert_success().stdout, "OK\n");
    assert_eq!(cli(&node, &["STRLEN", "from-stdin"]), "11\n");
}

#[test]
fn resp3_with_dash_3() {
    require_cli();
    let node = NodeProcess::start();
    let hello = cli(&node, &["-3", "--no-raw", "HELLO", "3"]);
    for line in [
        "1# \"server\" => \"redis\"",
        "3# \"proto\" => (integer) 3",
        "5# \"mode\" => \"standalone\"",
        "6# \"role\" => \"master\"",
        "7# \"modules\" => (empty array)",
    ] {
        assert!(
            hello.lines().any(|l| l == line),
            "HELLO 3 output lacks {line:?}:\n{hello}"
        );
    }
    assert!(
        hello.contains("2# \"version\" => \"7."),
        "HELLO version:\n{hello}"
    );
    assert_eq!(cli(&node, &["-3", "SET", "k", "v"]), "OK\n");
    assert_eq!(cli(&node, &["-3", "--no-raw", "GET", "k"]), "\"v\"\n");
    assert_eq!(cli(&node, &["-3", "--no-raw", "GET", "missing"]), "(nil)\n");
    // A map reply under RESP3, and a double.
    assert_eq!(
        cli(&node, &["-3", "--no-raw", "CONFIG", "GET", "maxclients"]),
        "1# \"maxclients\" => \"10000\"\n"
    );
    assert_eq!(
        cli(&node, &["-3", "--no-raw", "INCRBYFLOAT", "f", "1.5"]),
        "\"1.5\"\n"
    );
}

#[test]
fn scan_with_pattern_returns_every_key() {
    require_cli();
    let node = NodeProcess::start();
    let mut args = vec!["MSET".to_string()];
    for i in 0..300 {
        args.extend([format!("k:{i}"), i.to_string()]);
    }
    for i in 0..100 {
        args.extend([format!("other:{i}"), i.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(cli(&node, &args), "OK\n");
    let out = cli(&node, &["--scan", "--pattern", "k:*"]);
    let mut got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 300, "--scan printed {} lines", got.len());
    got.sort_unstable();
    let mut want: Vec<String> = (0..300).map(|i| format!("k:{i}")).collect();
    want.sort_unstable();
    assert_eq!(got, want, "--scan --pattern k:* keys");
    let all = cli(&node, &["--scan"]);
    assert_eq!(all.lines().count(), 400, "--scan without a pattern");
}

#[test]
fn bigkeys_and_memkeys_find_the_biggest_key() {
    require_cli();
    let node = NodeProcess::start();
    for i in 0..50 {
        assert_eq!(cli(&node, &["SET", &format!("small:{i}"), "v"]), "OK\n");
    }
    let big = "x".repeat(5000);
    assert_eq!(cli(&node, &["SET", "big:key", &big]), "OK\n");
    assert_eq!(cli(&node, &["SET", "mid:key", &"y".repeat(300)]), "OK\n");

    let out = cli(&node, &["--bigkeys"]);
    assert!(
        out.contains("Sampled 52 keys in the keyspace!"),
        "--bigkeys sampled count:\n{out}"
    );
    assert!(
        out.contains("Biggest string found '\"big:key\"' has 5000 bytes"),
        "--bigkeys biggest key:\n{out}"
    );
    assert!(
        out.contains("52 strings with 5350 bytes"),
        "--bigkeys string total:\n{out}"
    );

    let out = cli(&node, &["--memkeys"]);
    assert!(
        out.contains("Sampled 52 keys in the keyspace!"),
        "--memkeys sampled count:\n{out}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("Biggest string found"))
        .unwrap_or_else(|| panic!("--memkeys names no biggest string:\n{out}"));
    assert!(
        line.starts_with("Biggest string found '\"big:key\"' has "),
        "--memkeys biggest key: {line}"
    );
    let bytes: u64 = line
        .trim_start_matches("Biggest string found '\"big:key\"' has ")
        .trim_end_matches(" bytes")
        .parse()
        .unwrap_or_else(|e| panic!("--memkeys size in {line:?}: {e}"));
    assert!(
        (5000..10_000).contains(&bytes),
        "MEMORY USAGE of a 5000-byte string: {bytes}"
    );
}

#[test]
fn pipe_a_million_sets() {
    const N: usize = 1_000_000;
    require_cli();
    let node = NodeProcess::start();
    // Raw RESP, as `--pipe` expects it: *3 $3 SET $len key $len value.
    let mut input = Vec::with_capacity(N * 48);
    for i in 0..N {
        let key = format!("pipe:{i}");
        let value = i.to_string();
        write!(
            input,
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        )
        .expect("write to a Vec");
    }
    let started = Instant::now();
    let out = run(
        Command::new("redis-cli").args(["-p", &node.port_arg(), "--pipe"]),
        Some(input),
        Duration::from_secs(300),
    );
    out.assert_success();
    assert!(
        out.stdout.contains("errors: 0, replies: 1000000"),
        "--pipe summary: {}",
        out.report()
    );
    println!("--pipe of {N} SETs took {:?}", started.elapsed());
    assert_eq!(cli(&node, &["DBSIZE"]), "1000000\n");
    assert_eq!(cli(&node, &["GET", "pipe:0"]), "0\n");
    assert_eq!(cli(&node, &["GET", "pipe:999999"]), "999999\n");
    assert_eq!(cli(&node, &["GET", "pipe:500000"]), "500000\n");
}

#[test]
fn stat_prints_its_header_and_live_values() {
    require_cli();
    require("stdbuf (coreutils)", "stdbuf", &["--version"]);
    let node = NodeProcess::start();
    assert_eq!(cli(&node, &["MSET", "a", "1", "b", "2", "c", "3"]), "OK\n");
    // Through a pipe redis-cli's stdout is block-buffered: stdbuf makes it line-buffered so
    // each sample shows up as it is printed.
    let port = node.port_arg();
    let out = run_until(
        "stdbuf",
        &["-oL", "redis-cli", "-p", &port, "--stat", "-i", "0.2"],
        WAIT,
        |text| text.lines().filter(|l| l.starts_with("3 ")).count() >= 3,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("------- data ------ --------------------- load"),
        "--stat header:\n{out}"
    );
    let columns: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "keys",
            "mem",
            "clients",
            "blocked",
            "requests",
            "connections"
        ],
        "--stat column names:\n{out}"
    );
    for line in &lines[2..] {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields.len() >= 6, "--stat values line {line:?}");
        assert_eq!(fields[0], "3", "--stat keys column in {line:?}");
        assert!(
            fields[1].ends_with(['B', 'K', 'M', 'G']),
            "--stat mem column in {line:?}"
        );
        assert!(
            fields[4].parse::<u64>().is_ok(),
            "--stat requests in {line:?}"
        );
    }
}

#[test]
fn latency_reports_samples() {
    require_cli();
    let node = NodeProcess::start();
    // Not on a terminal, --latency samples for one interval, prints `min max avg count`
    // and exits by itself.
    let out = cli(&node, &["--latency", "-i", "0.5"]);
    let fields: Vec<f64> = out
        .split_whitespace()
        .map(|f| {
            f.parse()
                .unwrap_or_else(|e| panic!("--latency field {f:?}: {e}"))
        })
        .collect();
    assert_eq!(fields.len(), 4, "--latency output {out:?}");
    let (min, max, avg, count) = (fields[0], fields[1], fields[2], fields[3]);
    assert!(count >= 1.0, "--latency sampled nothing: {out:?}");
    assert!(
        min <= avg && avg <= max,
        "--latency min/avg/max out of order: {out:?}"
    );
    // The interactive format, read until it has printed a few samples.
    let port = node.port_arg();
    let out = run_until(
        "redis-cli",
        &["-p", &port, "--no-raw", "--latency"],
        WAIT,
        |text| text.contains("min: ") && text.contains("(5 samples)"),
    );
    assert!(out.contains("max: "), "--latency output:\n{out}");
}

/// A MONITOR connection: sees every command the node runs from now on.
fn monitor(node: &NodeProcess) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", node.port)).expect("connect for MONITOR");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.write_all(b"MONITOR\r\n").expect("send MONITOR");
    let mut ok = [0u8; 5];
    stream.read_exact(&mut ok).expect("MONITOR reply");
    assert_eq!(&ok, b"+OK\r\n", "MONITOR reply");
    stream
}

/// Reads the MONITOR feed until it shows `needle` (case-insensitive), within [`WAIT`].
fn monitor_until(stream: &mut TcpStream, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let needle = needle.to_ascii_lowercase();
    loop {
        let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
        if text.contains(&needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "MONITOR never showed {needle:?}; it showed:\n{text}"
        );
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("read the MONITOR feed");
        assert!(n > 0, "MONITOR connection closed; it showed:\n{text}");
        seen.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn interactive_session_through_tmux() {
    require_cli();
    let node = NodeProcess::start();
    let mut feed = monitor(&node);
    let tmux = Tmux::start(160, &format!("redis-cli -p {}", node.port));
    let prompt = format!("127.0.0.1:{}>", node.port);
    tmux.wait_for("the redis-cli prompt", |s| s.contains(&prompt));
    // At startup redis-cli 7 asks for the command docs to build its hints.
    monitor_until(&mut feed, "\"COMMAND\" \"DOCS\"");

    tmux.send(&["set a 1", "Enter"]);
    tmux.wait_for("OK after `set a 1`", |s| {
        s.lines().any(|l| l.trim_end() == "OK")
    });
    tmux.send(&["get a", "Enter"]);
    tmux.wait_for("\"1\" after `get a`", |s| {
        s.lines().any(|l| l.trim_end() == "\"1\"")
    });
    tmux.send(&["get nothing-here", "Enter"]);
    tmux.wait_for("(nil) after `get nothing-here`", |s| {
        s.lines().any(|l| l.trim_end() == "(nil)")
    });
    tmux.send(&["incr a", "Enter"]);
    tmux.wait_for("(integer) 2 after `incr a`", |s| {
        s.lines().any(|l| l.trim_end() == "(integer) 2")
    });
    tmux.send(&["hello 3", "Enter"]);
    tmux.wait_for("the HELLO 3 map", |s| {
        s.contains("3# \"proto\" => (integer) 3")
    });
    tmux.send(&["get a", "Enter"]);
    let screen = tmux.wait_for("`\"2\"` after `get a` under RESP3", |s| {
        s.lines().filter(|l| l.trim_end() == "\"2\"").count() == 1
    });
    assert!(screen.contains(&prompt), "prompt still there:\n{screen}");
    // The values really are in the node.
    assert_eq!(cli(&node, &["GET", "a"]), "2\n");
}

#[test]
fn interactive_hints_come_from_command_docs() {
    require_cli();
    let node = NodeProcess::start();
    let tmux = Tmux::start(200, &format!("redis-cli -p {}", node.port));
    let prompt = format!("127.0.0.1:{}>", node.port);
    tmux.wait_for("the redis-cli prompt", |s| s.contains(&prompt));
    // redis-cli 7 shows each command's arguments as a hint while typing, built from the
    // `arguments` of COMMAND DOCS (as Redis 7 replies it).
    // Without `arguments` in the docs redis-cli shows no hint at all.
    tmux.send(&["incrby "]);
    tmux.wait_for(
        "the INCRBY hint `key increment` (from COMMAND DOCS `arguments`)",
        |s| s.contains("incrby key increment"),
    );
    tmux.send(&["C-u", "getex "]);
    tmux.wait_for("the GETEX hint", |s| {
        s.contains("getex key [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|PERSIST]")
    });
}

#[test]
fn redis_benchmark_runs_without_errors() {
    require(
        "redis-benchmark (apt redis-tools)",
        "redis-benchmark",
        &["--version"],
    );
    require_cli();
    let node = NodeProcess::start();
    let out = run(
        Command::new("redis-benchmark").args([
            "-p",
            &node.port_arg(),
            "-t",
            "ping,set,get,incr,mset",
            "-n",
            "20000",
            "--csv",
        ]),
        None,
        Duration::from_secs(240),
    );
    out.assert_success();
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !all.to_ascii_lowercase().contains("error") && !all.contains("ERR"),
        "redis-benchmark reported errors: {}",
        out.report()
    );
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(
            "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
             \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\""
        ),
        "CSV header: {}",
        out.report()
    );
    let tests: Vec<(String, f64)> = lines
        .map(|l| {
            let fields: Vec<&str> = l.split(',').map(|f| f.trim_matches('"')).collect();
            let rps = fields
                .get(1)
                .and_then(|f| f.parse().ok())
                .unwrap_or_else(|| panic!("no rps in {l:?}"));
            (fields[0].to_string(), rps)
        })
        .collect();
    let names: Vec<&str> = tests.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "PING_INLINE",
            "PING_MBULK",
            "SET",
            "GET",
            "INCR",
            "MSET (10 keys)"
        ],
        "tests reported: {}",
        out.report()
    );
    for (name, rps) in &tests {
        assert!(*rps > 0.0, "{name}: {rps} requests per second");
    }
    // Without -r every INCR hits the same key: exactly -n increments.
    assert_eq!(cli(&node, &["GET", "counter:__rand_int__"]), "20000\n");
    assert_eq!(cli(&node, &["STRLEN", "key:__rand_int__"]), "3\n");
}
