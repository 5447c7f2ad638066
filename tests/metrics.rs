//! `/metrics` and the per-command statistics, with real components (issue 13):
//!
//! - a real Prometheus (Debian's `prometheus`, installed by scripts/test.sh) started here on
//!   loopback with a generated configuration scrapes a running `minikv cluster` with basic
//!   auth, and a PromQL query through its HTTP API sees the traffic of a redis-benchmark burst;
//! - `/metrics` of a plain and of a replicated (`--replicas`) cluster passes the strict
//!   OpenMetrics parser of the Python `prometheus-client` package (every family with HELP and
//!   TYPE, every sample labelled with its node);
//! - basic auth, the Host/Origin guard and `/healthz`;
//! - INFO commandstats and latencystats have the fields and shape of redis-server's.
//!
//! Every wait is bounded; nothing sleeps in place of a condition.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::process::{
    free_port, free_ports, free_ports_with_bus, run, BinProcess, ClusterProcess, RedisServer,
};
use common::{wait_until_blocking, WAIT};
use serde_json::Value;

const PASSWORD: &str = "metrics-secret";

/// An HTTP response: status code and body.
struct Response {
    status: u16,
    body: String,
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`, read to the end).
/// `headers` are extra lines (`Name: value`); `Host` is `127.0.0.1:PORT` unless given.
fn http(port: u16, method: &str, path: &str, headers: &[&str]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(WAIT))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if method != "GET" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "a chunked answer was not expected: {head}"
    );
    Ok(Response {
        status,
        body: body.to_string(),
    })
}

fn basic_auth(password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("default:{password}"));
    format!("Authorization: Basic {token}")
}

/// `/metrics` of the HTTP port `port`, with the password if given; panics unless 200.
fn scrape(port: u16, password: Option<&str>) -> String {
    let auth = password.map(basic_auth);
    let headers: Vec<&str> = auth.iter().map(String::as_str).collect();
    let r = http(port, "GET", "/metrics", &headers).expect("GET /metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Runs the strict OpenMetrics parser of the Python `prometheus-client` package over `text`
/// and returns its families as JSON: `{name: {"type", "help", "samples": [[name, labels,
/// value], ...]}}`. Fails on any parse error, or a family without HELP or TYPE.
fn parse_strictly(text: &str) -> serde_json::Map<String, Value> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    if not f.documentation:
        sys.exit("no HELP for " + f.name)
    if f.type == "unknown":
        sys.exit("no TYPE for " + f.name)
    out[f.name] = {"type": f.type, "help": f.documentation,
                   "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;
    let result = run(
        Command::new("python3").args(["-c", SCRIPT]),
        Some(text.as_bytes().to_vec()),
        WAIT,
    );
    result.assert_success();
    let parsed: Value = serde_json::from_str(&result.stdout).expect("the parser's JSON");
    match parsed {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The families every node exports, by their OpenMetrics names (counters without `_total`).
const FAMILIES: &[(&str, &str)] = &[
    ("minikv_up", "gauge"),
    ("minikv_uptime_in_seconds", "gauge"),
    ("minikv_connected_clients", "gauge"),
    ("minikv_blocked_clients", "gauge"),
    ("minikv_memory_used_bytes", "gauge"),
    ("minikv_commands_processed", "counter"),
    ("minikv_commands", "counter"),
    ("minikv_commands_duration_seconds", "counter"),
    ("minikv_command_duration_seconds", "histogram"),
    ("minikv_keyspace_hits", "counter"),
    ("minikv_keyspace_misses", "counter"),
    ("minikv_db_keys", "gauge"),
    ("minikv_db_keys_expiring", "gauge"),
    ("minikv_expired_keys", "counter"),
    ("minikv_evicted_keys", "counter"),
    ("minikv_net_input_bytes", "counter"),
    ("minikv_net_output_bytes", "counter"),
    ("minikv_rdb_last_save_timestamp_seconds", "gauge"),
    ("minikv_rdb_changes_since_last_save", "gauge"),
    ("minikv_rdb_last_bgsave_status", "gauge"),
    ("minikv_aof_enabled", "gauge"),
    ("minikv_aof_last_write_status", "gauge"),
    ("minikv_aof_rewrite_in_progress", "gauge"),
    ("minikv_shard_leader", "gauge"),
    ("minikv_raft_term", "gauge"),
    ("minikv_raft_commit_lag_entries", "gauge"),
    ("minikv_cluster_migrations_in_progress", "gauge"),
];

/// Checks the families of a parsed scrape: the expected ones with their types, and a `node`
/// label on every sample, naming one of `nodes`.
fn check_families(families: &serde_json::Map<String, Value>, nodes: &[&str]) {
    for (name, kind) in FAMILIES {
        let family = families
            .get(*name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(family["type"], *kind, "{name}");
    }
    for (name, family) in families {
        for sample in family["samples"].as_array().into_iter().flatten() {
            let node = sample[1]["node"].as_str().unwrap_or_default();
            assert!(
                nodes.contains(&node),
                "{name}: sample without a node: {sample}"
            );
        }
    }
}

/// The value of the sample `sample` whose labels include every one of `labels`.
fn value(
    families: &serde_json::Map<String, Value>,
    family: &str,
    sample: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    families.get(family)?["samples"]
        .as_array()?
        .iter()
        .find(|s| s[0] == sample && labels.iter().all(|(k, v)| s[1][*k] == *v))
        .and_then(|s| s[2].as_f64())
}

/// redis-benchmark against `port`: `requests` SETs and GETs.
fn benchmark(port: u16, password: Option<&str>, requests: u32) {
    let port = port.to_string();
    let requests = requests.to_string();
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-n",
        &requests,
        "-t",
        "set,get",
        "-q",
    ];
    if let Some(p) = password {
        args.extend(["-a", p]);
    }
    let result = run(
        Command::new("redis-benchmark").args(&args),
        None,
        Duration::from_secs(60),
    );
    result.assert_success();
}

#[test]
fn metrics_of_a_cluster_parse_strictly_and_are_guarded() {
    let http_port = free_port();
    let http_text = http_port.to_string();
    let cluster = ClusterProcess::start(&["--http-port", &http_text, "--requirepass", PASSWORD]);
    common::process::wait_accepting(http_port);

    // /healthz: open, 200 while serving.
    let health = http(http_port, "GET", "/healthz", &[]).expect("GET /healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    // Basic auth: 401 without, or with a wrong password; 200 with default:PASSWORD.
    let none = http(http_port, "GET", "/metrics", &[]).expect("GET /metrics");
    assert_eq!(none.status, 401, "{}", none.body);
    let wrong = basic_auth("nope");
    let wrong = http(http_port, "GET", "/metrics", &[&wrong]).expect("GET /metrics");
    assert_eq!(wrong.status, 401);

    // The Host and Origin guard: a rebinding name, a request from another page, a POST
    // without Origin.
    let auth = basic_auth(PASSWORD);
    let evil = http(
        http_port,
        "GET",
        "/metrics",
        &[&auth, "Host: evil.example.com"],
    )
    .expect("GET with another Host");
    assert_eq!(evil.status, 403, "{}", evil.body);
    let other_page = http(
        http_port,
        "GET",
        "/metrics",
        &[&auth, "Origin: http://evil.example.com"],
    )
    .expect("GET with another Origin");
    assert_eq!(other_page.status, 403);
    let post = http(http_port, "POST", "/metrics", &[&auth]).expect("POST /metrics");
    assert_eq!(post.status, 403, "{}", post.body);

    // Traffic on every node, then a strict parse with every node in it.
    for port in cluster.ports {
        benchmark(port, Some(PASSWORD), 200);
    }
    let families = parse_strictly(&scrape(http_port, Some(PASSWORD)));
    check_families(&families, &["1", "2", "3"]);
    for node in ["1", "2", "3"] {
        assert_eq!(
            value(&families, "minikv_up", "minikv_up", &[("node", node)]),
            Some(1.0)
        );
        let gets = value(
            &families,
            "minikv_commands",
            "minikv_commands_total",
            &[("node", node), ("cmd", "get")],
        );
        assert!(gets.is_some_and(|g| g >= 200.0), "node {node}: {gets:?}");
        let inf = value(
            &families,
            "minikv_command_duration_seconds",
            "minikv_command_duration_seconds_bucket",
            &[("node", node), ("cmd", "get"), ("le", "+Inf")],
        );
        assert_eq!(inf, gets, "the histogram counts every call");
        let net = value(
            &families,
            "minikv_net_input_bytes",
            "minikv_net_input_bytes_total",
            &[("node", node)],
        );
        assert!(net.is_some_and(|n| n > 0.0), "{net:?}");
    }
    // Outside a replicated cluster: no shard samples.
    assert_eq!(
        families["minikv_shard_leader"]["samples"],
        Value::Array(Vec::new())
    );
}

#[test]
fn metrics_of_a_replicated_cluster_show_one_leader_per_shard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_ports_with_bus(3);
    let http_port = free_port();
    let http_text = http_port.to_string();
    let cluster = ClusterProcess::start_at(
        base,
        dir.path(),
        &["--replicas", "3", "--http-port", &http_text],
        true,
        |_| {},
    );
    common::process::wait_accepting(http_port);
    // Every shard elects a leader and every member knows it.
    let mut families = serde_json::Map::new();
    // Every shard elects a leader and every member knows it and its term.
    wait_until_blocking("a leader for every shard, known to all", WAIT * 3, || {
        families = parse_strictly(&scrape(http_port, None));
        let get = |family: &str, node: &str, shard: &str| {
            value(
                &families,
                family,
                family,
                &[("node", node), ("shard", shard)],
            )
        };
        ["1", "2", "3"].iter().all(|shard| {
            let leaders: f64 = ["1", "2", "3"]
                .iter()
                .filter_map(|node| get("minikv_shard_leader", node, shard))
                .sum();
            leaders == 1.0
                && ["1", "2", "3"].iter().all(|node| {
                    get("minikv_raft_term", node, shard).is_some_and(|t| t >= 1.0)
                        && get("minikv_shard_leader_id", node, shard).is_some_and(|l| l >= 1.0)
                })
        })
    });
    check_families(&families, &["1", "2", "3"]);
    for node in ["1", "2", "3"] {
        assert_eq!(
            value(
                &families,
                "minikv_cluster_enabled",
                "minikv_cluster_enabled",
                &[("node", node)]
            ),
            Some(1.0)
        );
        for shard in ["1", "2", "3"] {
            let term = value(
                &families,
                "minikv_raft_term",
                "minikv_raft_term",
                &[("node", node), ("shard", shard)],
            );
            assert!(
                term.is_some_and(|t| t >= 1.0),
                "node {node} shard {shard}: {term:?}"
            );
            let roles: f64 = ["leader", "starting", "follower", "candidate"]
                .iter()
                .filter_map(|role| {
                    value(
                        &families,
                        "minikv_shard_role",
                        "minikv_shard_role",
                        &[("node", node), ("shard", shard), ("role", role)],
                    )
                })
                .sum();
            assert_eq!(roles, 1.0, "one role per shard and node");
        }
    }
    drop(cluster);
}

/// A Prometheus server on loopback with a generated configuration, stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `prometheus` scraping `target` (HOST:PORT) every second, with basic auth
    /// `default:password` when given, and waits until its API answers.
    fn start(target: &str, password: Option<&str>) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let auth = password.map_or(String::new(), |p| {
            format!("    basic_auth:\n      username: default\n      password: {p}\n")
        });
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: minikv\n    scrape_interval: 1s\n    \
             scrape_timeout: 1s\n{auth}    static_configs:\n      - targets: ['{target}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus must be installed: run ./scripts/test.sh");
        let prometheus = Prometheus {
            child,
            port,
            _dir: dir,
        };
        wait_until_blocking("Prometheus to be ready", WAIT * 3, || {
            http(port, "GET", "/-/ready", &[]).is_ok_and(|r| r.status == 200)
        });
        prometheus
    }

    /// The result vector of the instant query `promql`.
    fn query(&self, promql: &str) -> Vec<Value> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let r = http(
            self.port,
            "GET",
            &format!("/api/v1/query?query={encoded}"),
            &[],
        )
        .expect("query Prometheus");
        assert_eq!(r.status, 200, "{}", r.body);
        let answer: Value = serde_json::from_str(&r.body).expect("Prometheus's JSON");
        assert_eq!(answer["status"], "success", "{answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The single value of a scalar-like instant vector, if it has one sample.
    fn single(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql);
        let sample = result.first()?;
        sample["value"][1].as_str()?.parse().ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Already exited is fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_the_cluster_and_sees_the_traffic() {
    let http_port = free_port();
    let http_text = http_port.to_string();
    let cluster = ClusterProcess::start(&["--http-port", &http_text, "--requirepass", PASSWORD]);
    common::process::wait_accepting(http_port);
    let prometheus = Prometheus::start(&format!("127.0.0.1:{http_port}"), Some(PASSWORD));

    // A command's series appear with its first call (as redis_exporter's do, from INFO
    // commandstats), and `rate` counts only increases Prometheus saw: one GET first, so
    // that the burst below is an increase of a series already scraped.
    let mut con = redis_conn(cluster.ports[0]);
    let () = redis::cmd("AUTH")
        .arg(PASSWORD)
        .query(&mut con)
        .expect("AUTH");
    let _: Option<String> = redis::cmd("GET").arg("warm").query(&mut con).expect("GET");
    // The target is up (basic auth accepted), every node is in it, and so is the GET.
    wait_until_blocking("Prometheus to scrape the cluster", WAIT * 3, || {
        prometheus.single("up{job=\"minikv\"}") == Some(1.0)
            && prometheus.single("count(minikv_up == 1)") == Some(3.0)
            && prometheus.single("sum(minikv_commands_total{cmd=\"get\"})") == Some(1.0)
    });

    // A burst, then the rate of processed commands over the scrapes that saw it.
    benchmark(cluster.ports[0], Some(PASSWORD), 20_000);
    let mut rate = None;
    let query = "sum(rate(minikv_commands_processed_total[1m]))";
    wait_until_blocking("a positive command rate in Prometheus", WAIT * 3, || {
        rate = prometheus.single(query);
        rate.is_some_and(|r| r > 0.0)
    });
    // Per-command figures and the histogram are usable in PromQL as they are.
    wait_until_blocking("the GET latency quantile in Prometheus", WAIT * 3, || {
        prometheus
            .single("histogram_quantile(0.99, sum by (le) (rate(minikv_command_duration_seconds_bucket{cmd=\"get\"}[1m])))")
            .is_some_and(|q| q > 0.0 && q.is_finite())
    });
    assert!(
        prometheus
            .single("sum(minikv_commands_total{cmd=\"set\"})")
            .is_some_and(|n| n >= 20_000.0),
        "{}",
        prometheus.log()
    );
    drop(cluster);
}

/// The field names of each `name:value` line of an INFO section, with the value's own
/// `key=` names for the `cmdstat_` and `latency_percentiles_usec_` lines.
fn shape(info: &str, line_prefix: &str) -> Vec<(String, Vec<String>)> {
    info.lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| {
            let keys = value
                .split(',')
                .map(|kv| kv.split_once('=').map_or(kv, |(k, _)| k).to_string())
                .collect();
            (name.to_string(), keys)
        })
        .collect()
}

fn redis_conn(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection_with_timeout(WAIT))
        .expect("connect")
}

/// GET, SET, one failing INCR and one refused (arity) GET, then INFO of both servers.
fn exercise(port: u16) -> (String, String, String) {
    let mut c = redis_conn(port);
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut c)
        .expect("RESETSTAT");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut c)
        .expect("SET");
    let _: Option<String> = redis::cmd("GET").arg("k").query(&mut c).expect("GET");
    let _: Option<String> = redis::cmd("GET").arg("k").query(&mut c).expect("GET");
    assert!(redis::cmd("INCR").arg("k").query::<i64>(&mut c).is_err());
    assert!(redis::cmd("GET").query::<Option<String>>(&mut c).is_err());
    let mut info = |args: &[&str]| -> String {
        let mut cmd = redis::cmd("INFO");
        for a in args {
            cmd.arg(*a);
        }
        cmd.query(&mut c).expect("INFO")
    };
    (
        info(&["commandstats", "latencystats"]),
        info(&[]),
        info(&["everything"]),
    )
}

#[test]
fn info_commandstats_and_latencystats_have_redis_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RedisServer::start(dir.path());
    let minikv_dir = tempfile::tempdir().expect("tempdir");
    let port = free_ports(1);
    let _node = BinProcess::server(1, port, minikv_dir.path(), &[]);

    let (ours, our_default, our_all) = exercise(port);
    let (theirs, their_default, their_all) = exercise(redis.port);
    for prefix in [
        "cmdstat_get",
        "cmdstat_set",
        "cmdstat_incr",
        "latency_percentiles_usec_get",
    ] {
        let (a, b) = (shape(&ours, prefix), shape(&theirs, prefix));
        assert!(!a.is_empty(), "{prefix} missing in\n{ours}");
        assert_eq!(a, b, "{prefix}:\nminikv:\n{ours}\nredis:\n{theirs}");
    }
    for info in [&ours, &theirs] {
        assert!(info.contains("# Commandstats\r\n") && info.contains("# Latencystats\r\n"));
        // Same counts as Redis: 2 GETs ran, 1 refused; INCR ran and failed.
        assert!(info.contains("cmdstat_get:calls=2,"), "{info}");
        assert!(
            info.contains(",rejected_calls=1,failed_calls=0\r\n"),
            "{info}"
        );
        assert!(
            info.lines().any(|l| l.starts_with("cmdstat_incr:calls=1,")
                && l.ends_with("rejected_calls=0,failed_calls=1")),
            "{info}"
        );
    }
    // The default set leaves both sections out; `everything` has them.
    for default in [&our_default, &their_default] {
        assert!(!default.contains("# Commandstats") && !default.contains("# Latencystats"));
        assert!(default.contains("# Keyspace"));
    }
    for all in [&our_all, &their_all] {
        assert!(all.contains("# Commandstats") && all.contains("# Latencystats"));
    }
    // The latency percentiles are numbers with three decimals, in order.
    let line = ours
        .lines()
        .find(|l| l.starts_with("latency_percentiles_usec_get:"))
        .unwrap_or_default();
    let values: Vec<f64> = line
        .split_once(':')
        .map(|(_, v)| v)
        .unwrap_or_default()
        .split(',')
        .map(|kv| {
            let v = kv.split_once('=').map_or("", |(_, v)| v);
            assert_eq!(v.split_once('.').map(|(_, d)| d.len()), Some(3), "{line}");
            v.parse().unwrap_or(f64::NAN)
        })
        .collect();
    assert_eq!(values.len(), 3, "{line}");
    assert!(
        values[0] > 0.0 && values[0] <= values[1] && values[1] <= values[2],
        "{line}"
    );
}
