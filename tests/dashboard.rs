//! The dashboard (issue 13), end to end with real components: `minikv cluster`, `minikv
//! server` and `minikv dashboard` processes, a real redis-server, redis-cli and
//! redis-benchmark, and headless Chromium driven over WebDriver by `tests/dashboard/check.py`
//! (selenium). Screenshots go to `target/dashboard-screenshots/` (under `CARGO_TARGET_DIR`
//! when set).
//!
//! The API and guard tests speak plain HTTP/1.0 over a socket: every request is what a browser
//! (or an attacker's page) could send.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::process::{
    binary, free_port, free_ports, free_ports_with_bus, read_pipe_until, require, run, BinProcess,
    ClusterProcess, RedisServer,
};
use common::WAIT;
use serde_json::{json, Value};

/// One browser at a time: Chromium is heavy on a small machine.
static BROWSER: Mutex<()> = Mutex::new(());

/// Where screenshots go: `<target dir>/dashboard-screenshots`.
fn shots_dir() -> PathBuf {
    // The binary is `<target>/<profile>/minikv`.
    let target = Path::new(binary())
        .parent()
        .and_then(Path::parent)
        .expect("the binary lies in <target>/<profile>/");
    target.join("dashboard-screenshots")
}

/// Fails (never skips) unless the browser test tools are installed.
fn require_browser_tools() {
    require("Chromium", "chromium", &["--version"]);
    require("chromedriver", "chromedriver", &["--version"]);
    require("selenium (pip)", "python3", &["-c", "import selenium"]);
    require("redis-cli", "redis-cli", &["--version"]);
    require("redis-benchmark", "redis-benchmark", &["--version"]);
}

/// Runs `tests/dashboard/check.py scenario args` and fails with its output unless it passes.
fn check(scenario: &str, args: Value) {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    require_browser_tools();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/check.py");
    let mut args = args;
    args["shots"] = json!(shots_dir());
    let outcome = run(
        Command::new("python3")
            .arg(script)
            .arg(scenario)
            .arg(args.to_string()),
        None,
        Duration::from_secs(120),
    );
    outcome.assert_success();
    print!("{}", outcome.stdout);
}

/// The URL in a `dashboard: http://HOST:PORT/ ...` line of `out`.
fn dashboard_url(out: &str) -> String {
    let start = out.find("dashboard: http://").expect("a dashboard line") + "dashboard: ".len();
    out[start..]
        .split_whitespace()
        .next()
        .expect("a URL")
        .to_string()
}

/// Starts `minikv args...` with standard output piped and returns it with the URL of the
/// dashboard line it prints.
fn start_printing_url(args: &[&str]) -> (BinProcess, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    let process = BinProcess::start_with(args, &[], |c| {
        c.stdout(writer);
    });
    let out = read_pipe_until("the dashboard line", reader, WAIT, |out| {
        out.lines().any(|l| l.starts_with("dashboard: http://"))
    });
    (process, dashboard_url(&out))
}

/// `HOST:PORT` of a dashboard URL.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// An HTTP/1.0 response: status, header block, body.
struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Sends one HTTP/1.0 request to `addr` (`HOST:PORT`) and reads the whole response.
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP port");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(request.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// Reads the live feed at `addr` until `done` holds for the latest `state` (or `hello`)
/// event's state, within [`WAIT`]; returns that state.
fn watch_feed(addr: &str, cookie: Option<&str>, done: impl Fn(&Value) -> bool) -> Value {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP port");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(
        s,
        "GET /api/events HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{cookie}\r\n"
    )
    .expect("send the request");
    let deadline = Instant::now() + WAIT;
    let mut text = String::new();
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let mut chunk = [0u8; 16384];
        match s.read(&mut chunk) {
            Ok(0) => panic!("the feed ended: {text}"),
            Ok(n) => text.push_str(&String::from_utf8_lossy(&chunk[..n])),
            Err(_) => continue,
        }
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            let Ok(value) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let state = if event.contains("event: hello") {
                value["state"].clone()
            } else if event.contains("event: state") {
                value
            } else {
                continue;
            };
            if done(&state) {
                return state;
            }
            last = state;
        }
    }
    panic!("the feed never showed what was expected; last state: {last:#}");
}

fn status_of(state: &Value, i: usize) -> &str {
    state["nodes"][i]["status"].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// In a real browser

#[test]
fn a_cluster_shows_every_node_its_traffic_and_its_keys_in_the_browser() {
    let base = free_ports_with_bus(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let (reader, writer) = std::io::pipe().expect("pipe");
    let cluster = ClusterProcess::start_at(
        base,
        dir.path(),
        &["--replicas", "3", "--http-port", "0"],
        true,
        |c| {
            c.stdout(writer);
        },
    );
    let out = read_pipe_until("the dashboard line", reader, WAIT, |out| {
        out.contains("dashboard: http://")
    });
    let url = dashboard_url(&out);
    let servers: Vec<String> = cluster
        .ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    check(
        "cluster",
        json!({ "url": url, "servers": servers, "ports": cluster.ports, "replicated": true }),
    );
}

#[test]
fn a_killed_node_is_shown_down_within_5_seconds() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let base = free_ports(3);
    let nodes: Vec<BinProcess> = (0..3u16)
        .map(|i| BinProcess::server(u64::from(i) + 1, base + i, dirs[usize::from(i)].path(), &[]))
        .collect();
    let servers: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    let (_dashboard, url) = start_printing_url(&[
        "dashboard",
        "--servers",
        &servers.join(","),
        "--http-port",
        "0",
    ]);
    check(
        "kill",
        json!({ "url": url, "servers": servers, "victim": servers[1], "pid": nodes[1].pid() }),
    );
}

#[test]
fn with_a_password_the_page_asks_for_it_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reader, writer) = std::io::pipe().expect("pipe");
    let cluster = ClusterProcess::start_at(
        free_ports(3),
        dir.path(),
        &["--requirepass", "s3cr3t pass", "--http-port", "0"],
        true,
        |c| {
            c.stdout(writer);
        },
    );
    let out = read_pipe_until("the dashboard line", reader, WAIT, |out| {
        out.contains("dashboard: http://")
    });
    let servers: Vec<String> = cluster
        .ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    check(
        "password",
        json!({ "url": dashboard_url(&out), "servers": servers, "password": "s3cr3t pass" }),
    );
}

#[test]
fn minikv_dashboard_shows_a_real_redis_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RedisServer::start(dir.path());
    let server = format!("127.0.0.1:{}", redis.port);
    let (_dashboard, url) =
        start_printing_url(&["dashboard", "--servers", &server, "--http-port", "0"]);

    // The feed alone, then the page.
    let state = watch_feed(&authority(&url), None, |s| status_of(s, 0) == "up");
    let version = state["nodes"][0]["version"].as_str().unwrap_or("");
    assert!(version.starts_with("redis "), "version {version:?}");
    assert_eq!(state["nodes"][0]["cluster"], json!(false));

    check(
        "redis",
        json!({ "url": url, "servers": [server], "ports": [redis.port] }),
    );
}

// ---------------------------------------------------------------------------------------
// The API and its guard, over plain HTTP

/// A `minikv server` with the dashboard on its own HTTP port, and `extra` flags.
fn node_with_dashboard(dir: &Path, extra: &[&str]) -> (BinProcess, u16, String) {
    let port = free_port();
    let http_port = free_port();
    let http_text = http_port.to_string();
    let mut args = vec!["--http-port", http_text.as_str()];
    args.extend_from_slice(extra);
    let mut node = BinProcess::server(1, port, dir, &args);
    node.wait_accepting(http_port);
    (node, port, format!("127.0.0.1:{http_port}"))
}

fn redis_cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut command = Command::new("redis-cli");
    command.args(["-p", &port.to_string()]);
    if let Some(p) = password {
        command.args(["--no-auth-warning", "-a", p]);
    }
    let outcome = run(command.args(args).stdin(Stdio::null()), None, WAIT);
    outcome.assert_success();
    outcome.stdout.trim().to_string()
}

#[test]
fn writes_need_a_post_from_the_page_itself_and_get_changes_nothing() {
    require("redis-cli", "redis-cli", &["--version"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, port, addr) = node_with_dashboard(dir.path(), &[]);
    redis_cli(port, None, &["SET", "victim", "v", "EX", "1000"]);
    let id = "dmljdGlt"; // base64url("victim")
    let body = json!({ "node": 0, "key": id }).to_string();
    let json_type = ("Content-Type", "application/json");
    let origin = format!("http://{addr}");

    // No Origin, another origin, a cross-site fetch: refused before any handler.
    let refused = [
        vec![json_type],
        vec![json_type, ("Origin", "http://evil.example")],
        vec![
            json_type,
            ("Origin", &origin),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    ];
    for headers in refused {
        for path in ["/api/key/delete", "/api/key/expire", "/login"] {
            let r = http(&addr, "POST", path, &headers, &body);
            assert_eq!(r.status, 403, "POST {path} with {headers:?}: {}", r.body);
        }
    }
    // GET never changes anything: not the write endpoints, not the reads.
    for path in [
        format!("/api/key/delete?node=0&key={id}"),
        format!("/api/key/expire?node=0&key={id}&seconds=1"),
        format!("/api/key?node=0&key={id}"),
        "/api/keys?node=0&match=*".to_string(),
    ] {
        let r = http(&addr, "GET", &path, &[], "");
        assert!(
            r.status == 405 || r.status == 200,
            "GET {path}: {}",
            r.status
        );
    }
    // A form post from the page itself is not JSON: refused too.
    let form = http(
        &addr,
        "POST",
        "/api/key/delete",
        &[
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "node=0&key=dmljdGlt",
    );
    assert_eq!(form.status, 415, "{}", form.body);
    assert_eq!(redis_cli(port, None, &["EXISTS", "victim"]), "1");
    let ttl: i64 = redis_cli(port, None, &["TTL", "victim"])
        .parse()
        .expect("a TTL");
    assert!(ttl > 900, "the TTL was changed: {ttl}");

    // The page's own JSON POSTs work: a TTL, then the delete.
    let expire = json!({ "node": 0, "key": id, "seconds": 50 }).to_string();
    let r = http(
        &addr,
        "POST",
        "/api/key/expire",
        &[json_type, ("Origin", &origin)],
        &expire,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ttl: i64 = redis_cli(port, None, &["TTL", "victim"])
        .parse()
        .expect("a TTL");
    assert!((1..=50).contains(&ttl), "TTL {ttl}");
    let r = http(
        &addr,
        "POST",
        "/api/key/delete",
        &[json_type, ("Origin", &origin)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["deleted"], json!(1));
    assert_eq!(redis_cli(port, None, &["EXISTS", "victim"]), "0");

    // Another Host (DNS rebinding) is refused even for GET.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.write_all(b"GET / HTTP/1.0\r\nHost: evil.example:80\r\n\r\n")
        .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert!(raw.starts_with("HTTP/1.0 403"), "{raw}");
}

#[test]
fn the_api_needs_a_session_and_a_wrong_password_gets_none() {
    require("redis-cli", "redis-cli", &["--version"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, port, addr) = node_with_dashboard(dir.path(), &["--requirepass", "pw0rd"]);
    redis_cli(port, Some("pw0rd"), &["SET", "secret", "42"]);
    let origin = format!("http://{addr}");
    let post = |path: &str, body: &str, cookie: Option<&str>| {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Origin", origin.as_str()),
        ];
        if let Some(c) = cookie {
            headers.push(("Cookie", c));
        }
        http(&addr, "POST", path, &headers, body)
    };

    // The page and what it needs before signing in are served; nothing else.
    assert_eq!(http(&addr, "GET", "/", &[], "").status, 200);
    assert_eq!(http(&addr, "GET", "/assets/app.js", &[], "").status, 200);
    let session = http(&addr, "GET", "/api/session", &[], "").json();
    assert_eq!(session["password"], json!(true));
    assert_eq!(session["signed_in"], json!(false));
    for path in [
        "/api/keys?node=0",
        "/api/key?node=0&key=c2VjcmV0",
        "/api/slowlog?node=0",
        "/api/events",
    ] {
        let r = http(&addr, "GET", path, &[], "");
        assert_eq!(r.status, 401, "GET {path}: {}", r.body);
        assert!(!r.body.contains("42"), "{}", r.body);
    }
    let body = json!({ "node": 0, "key": "c2VjcmV0" }).to_string();
    assert_eq!(post("/api/key/delete", &body, None).status, 401);

    // A wrong password: 401 and no cookie; a forged cookie opens nothing.
    let wrong = post("/login", r#"{"password":"guess"}"#, None);
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.header("set-cookie").is_none(), "{}", wrong.head);
    let forged = "minikv_session=00000000000000000000000000000000";
    let r = http(&addr, "GET", "/api/keys?node=0", &[("Cookie", forged)], "");
    assert_eq!(r.status, 401);

    // The right one: an HttpOnly, SameSite=Strict session cookie that opens the API.
    let right = post("/login", r#"{"password":"pw0rd"}"#, None);
    assert_eq!(right.status, 200, "{}", right.body);
    let set_cookie = right.header("set-cookie").expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let token = cookie.split_once('=').map_or("", |(_, t)| t);
    assert!(token.len() >= 32, "a 128-bit token: {token}");
    let keys = http(&addr, "GET", "/api/keys?node=0", &[("Cookie", &cookie)], "");
    assert_eq!(keys.status, 200, "{}", keys.body);
    assert_eq!(
        keys.json()["keys"][0]["key"]["shown"]["text"],
        json!("secret")
    );
    let state = watch_feed(&addr, Some(&cookie), |s| status_of(s, 0) == "up");
    assert_eq!(state["nodes"][0]["keys"], json!(1));

    // Signing out ends the session.
    assert_eq!(post("/logout", "{}", Some(&cookie)).status, 200);
    let r = http(&addr, "GET", "/api/keys?node=0", &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 401);
}

#[test]
fn a_node_answering_garbage_is_shown_in_error_and_the_others_still_up() {
    // Answers anything with bytes that are not RESP, then with a RESP error.
    let garbage = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let garbage_addr = garbage.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for (n, stream) in garbage.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let reply: &[u8] = if n % 2 == 0 {
                b"HTTP/1.1 200 OK\r\n\r\n\x00\xff garbage"
            } else {
                b"-ERR not today\r\n"
            };
            let _ = stream.write_all(reply);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _node = BinProcess::server(1, port, dir.path(), &[]);
    let real = format!("127.0.0.1:{port}");
    let (mut dashboard, url) = start_printing_url(&[
        "dashboard",
        "--servers",
        &format!("{garbage_addr},{real}"),
        "--http-port",
        "0",
    ]);
    let state = watch_feed(&authority(&url), None, |s| {
        status_of(s, 0) == "error" && status_of(s, 1) == "up"
    });
    assert!(state["nodes"][0]["error"].as_str().is_some(), "{state:#}");
    // The key browser on the garbage node fails with a message, not a crash.
    let r = http(&authority(&url), "GET", "/api/keys?node=0", &[], "");
    assert_eq!(r.status, 502, "{}", r.body);
    let r = http(&authority(&url), "GET", "/api/keys?node=7", &[], "");
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http(
        &authority(&url),
        "GET",
        "/api/key?node=1&key=%2A%2A",
        &[],
        "",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    watch_feed(&authority(&url), None, |s| status_of(s, 1) == "up");
    assert!(
        !dashboard.stderr().contains("panicked"),
        "{}",
        dashboard.stderr()
    );
    dashboard.kill();
}
