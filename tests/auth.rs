//! Security: `requirepass` with AUTH and HELLO AUTH (RESP, JSON, redis-rs, redis-cli, the
//! cluster client and the REPL), Redis's pre-auth request limits (CVE-2021-32675), protected
//! mode against a real remote peer (a network namespace joined by a veth pair), and the idle
//! `timeout`. Error texts are Redis 7's, byte for byte.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::json;

use tokio::io::AsyncReadExt;

use common::process::{free_port, BinProcess, ClusterProcess, Run};
use common::raw::{connect, expect_bytes, read_to_eof, read_until, resp, send, JsonConn};
use common::{process, spawn_node, within, TestNode, WAIT};
use minikv::client::ClientError;
use minikv::ClusterClient;

const PASSWORD: &str = "s3cret pass";
const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const HELLO_NOAUTH: &[u8] = b"-NOAUTH HELLO must be called with the client already \
    authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
    authenticate the client and select the RESP protocol version at the same time\r\n";
/// Redis 7's protected-mode refusal, word for word.
const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is \
    enabled and no password is set for the default user. In this mode connections are only \
    accepted from the loopback interface. If you want to connect from external computers to \
    Redis you may adopt one of the following solutions: 1) Just disable protected mode sending \
    the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to \
    Redis from the same host the server is running, however MAKE SURE Redis is not publicly \
    accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. \
    2) Alternatively you can just disable the protected mode by editing the Redis \
    configuration file, and setting the protected mode option to 'no', and then restarting \
    the server. 3) If you started the server manually just for testing, restart it with the \
    '--protected-mode no' option. 4) Setup a an authentication password for the default user. \
    NOTE: You only need to do one of the above things in order for the server to start \
    accepting connections from the outside.\r\n";

/// A node on loopback with [`PASSWORD`] required.
async fn locked_node() -> TestNode {
    spawn_node(|c| c.requirepass = Some(PASSWORD.into())).await
}

// ---------------------------------------------------------------------------------------------
// RESP: AUTH, HELLO, RESET
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn commands_before_auth_get_noauth_until_auth_succeeds() {
    let node = locked_node().await;
    let mut s = connect(node.addr).await;
    for request in [
        &b"PING\r\n"[..],
        b"GET k\r\n",
        b"SET k v\r\n",
        b"CONFIG GET *\r\n",
    ] {
        send(&mut s, request).await;
        expect_bytes(&mut s, NOAUTH).await;
    }
    // MULTI is refused too, so nothing can be queued before AUTH.
    send(&mut s, &resp(&[b"MULTI"])).await;
    expect_bytes(&mut s, NOAUTH).await;
    // Unknown commands and wrong arity are reported as such first, as Redis does.
    send(&mut s, b"NOSUCH a\r\nGET\r\n").await;
    expect_bytes(
        &mut s,
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n\
          -ERR wrong number of arguments for 'get' command\r\n",
    )
    .await;
    send(&mut s, &resp(&[b"AUTH", b"wrong"])).await;
    expect_bytes(&mut s, WRONGPASS).await;
    send(&mut s, &resp(&[b"AUTH", PASSWORD.as_bytes()])).await;
    expect_bytes(&mut s, b"+OK\r\n").await;
    send(&mut s, b"PING\r\nSET k v\r\nGET k\r\nDBSIZE\r\n").await;
    expect_bytes(&mut s, b"+PONG\r\n+OK\r\n$1\r\nv\r\n:1\r\n").await;
}

#[tokio::test]
async fn auth_accepts_the_default_user_and_rejects_others() {
    let node = locked_node().await;
    let pass = PASSWORD.as_bytes();
    let cases: [(Vec<u8>, &[u8]); 6] = [
        (resp(&[b"AUTH", b"default", pass]), b"+OK\r\n"),
        (resp(&[b"AUTH", b"bob", pass]), WRONGPASS),
        // User names are case-sensitive, as in Redis.
        (resp(&[b"AUTH", b"DEFAULT", pass]), WRONGPASS),
        (resp(&[b"AUTH", b"default", b"s3cret"]), WRONGPASS),
        (resp(&[b"AUTH", b"a", b"b", b"c"]), b"-ERR syntax error\r\n"),
        (
            resp(&[b"AUTH"]),
            b"-ERR wrong number of arguments for 'auth' command\r\n",
        ),
    ];
    for (request, want) in cases {
        let mut s = connect(node.addr).await;
        send(&mut s, &request).await;
        expect_bytes(&mut s, want).await;
    }
}

#[tokio::test]
async fn hello_without_auth_is_refused_and_hello_auth_authenticates() {
    let node = locked_node().await;
    let mut s = connect(node.addr).await;
    send(&mut s, b"HELLO 3\r\nHELLO\r\nHELLO 3 SETNAME app\r\n").await;
    let mut want = HELLO_NOAUTH.repeat(3);
    expect_bytes(&mut s, &want).await;
    // Version and option errors come before the credentials are looked at.
    send(&mut s, b"HELLO 4\r\nHELLO 3 FOO\r\n").await;
    expect_bytes(
        &mut s,
        b"-NOPROTO unsupported protocol version\r\n-ERR Syntax error in HELLO option 'FOO'\r\n",
    )
    .await;
    send(
        &mut s,
        &resp(&[
            b"HELLO", b"3", b"AUTH", b"default", b"nope", b"SETNAME", b"app",
        ]),
    )
    .await;
    expect_bytes(&mut s, WRONGPASS).await;
    send(&mut s, b"PING\r\n").await;
    expect_bytes(&mut s, NOAUTH).await;
    send(
        &mut s,
        &resp(&[
            b"HELLO",
            b"3",
            b"AUTH",
            b"default",
            PASSWORD.as_bytes(),
            b"SETNAME",
            b"app",
        ]),
    )
    .await;
    want = b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n".to_vec();
    expect_bytes(&mut s, &want).await;
    send(&mut s, b"CLIENT GETNAME\r\n").await;
    let rest = read_until(&mut s, "$3\r\napp\r\n").await;
    assert!(rest.contains("$5\r\nproto\r\n:3\r\n"), "{rest:?}");
}

#[tokio::test]
async fn reset_logs_out_and_a_failed_auth_does_not() {
    let node = locked_node().await;
    let mut s = connect(node.addr).await;
    send(&mut s, &resp(&[b"AUTH", PASSWORD.as_bytes()])).await;
    expect_bytes(&mut s, b"+OK\r\n").await;
    // A wrong password later leaves the connection authenticated, as in Redis.
    send(&mut s, &resp(&[b"AUTH", b"wrong"])).await;
    expect_bytes(&mut s, WRONGPASS).await;
    send(&mut s, b"PING\r\nRESET\r\nPING\r\n").await;
    expect_bytes(&mut s, b"+PONG\r\n+RESET\r\n").await;
    expect_bytes(&mut s, NOAUTH).await;
    // QUIT works before AUTH and closes the connection.
    send(&mut s, b"QUIT\r\n").await;
    expect_bytes(&mut s, b"+OK\r\n").await;
    assert!(read_to_eof(&mut s).await.is_empty());
}

#[tokio::test]
async fn without_a_password_auth_keeps_redis_nopass_behaviour() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    send(
        &mut s,
        b"PING\r\nAUTH x\r\nAUTH default anything\r\nAUTH bob x\r\n",
    )
    .await;
    expect_bytes(
        &mut s,
        b"+PONG\r\n-ERR AUTH <password> called without any password configured for the \
          default user. Are you sure your configuration is correct?\r\n+OK\r\n",
    )
    .await;
    expect_bytes(&mut s, WRONGPASS).await;
    // And no pre-auth limits: a 20-element request is fine.
    let mut args: Vec<&[u8]> = vec![b"MSET"];
    args.extend(std::iter::repeat_n(&b"k"[..], 20));
    send(&mut s, &resp(&args)).await;
    expect_bytes(&mut s, b"+OK\r\n").await;
}

#[tokio::test]
async fn credentials_never_reach_slowlog_or_monitor() {
    let node = locked_node().await;
    let mut watcher = connect(node.addr).await;
    send(&mut watcher, &resp(&[b"AUTH", PASSWORD.as_bytes()])).await;
    send(
        &mut watcher,
        b"CONFIG SET slowlog-log-slower-than 0\r\nMONITOR\r\n",
    )
    .await;
    expect_bytes(&mut watcher, b"+OK\r\n+OK\r\n+OK\r\n").await;
    let mut s = connect(node.addr).await;
    send(&mut s, &resp(&[b"AUTH", b"default", PASSWORD.as_bytes()])).await;
    expect_bytes(&mut s, b"+OK\r\n").await;
    send(
        &mut s,
        &resp(&[b"HELLO", b"2", b"AUTH", b"default", PASSWORD.as_bytes()]),
    )
    .await;
    send(&mut s, b"SLOWLOG GET 10\r\nECHO done\r\n").await;
    let slowlog = read_until(&mut s, "$4\r\ndone\r\n").await;
    assert!(
        slowlog.contains("$4\r\nAUTH\r\n$10\r\n(redacted)\r\n$10\r\n(redacted)\r\n"),
        "{slowlog:?}"
    );
    let monitor = read_until(&mut watcher, "\"ECHO\" \"done\"").await;
    assert!(
        monitor.contains(r#""AUTH" "(redacted)" "(redacted)""#)
            && monitor.contains(r#""HELLO" "2" "AUTH" "(redacted)" "(redacted)""#),
        "{monitor}"
    );
    for shown in [&slowlog, &monitor] {
        assert!(!shown.contains("s3cret"), "password leaked: {shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// Pre-auth limits (CVE-2021-32675)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unauthenticated_multibulk_over_ten_elements_closes_the_connection() {
    let node = locked_node().await;
    let mut s = connect(node.addr).await;
    send(&mut s, b"*11\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&read_to_eof(&mut s).await),
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    // Ten elements are still a request (answered with NOAUTH, the connection stays).
    let mut s = connect(node.addr).await;
    let mut ten: Vec<&[u8]> = vec![b"MSET"];
    ten.extend(std::iter::repeat_n(&b"x"[..], 9));
    send(&mut s, &resp(&ten)).await;
    expect_bytes(&mut s, NOAUTH).await;
}

#[tokio::test]
async fn unauthenticated_bulk_over_16k_closes_the_connection() {
    let node = locked_node().await;
    let mut s = connect(node.addr).await;
    // The header alone is refused: the node never waits for (or buffers) the bytes.
    send(&mut s, b"*2\r\n$4\r\nAUTH\r\n$16385\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&read_to_eof(&mut s).await),
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    let mut s = connect(node.addr).await;
    let limit = vec![b'a'; 16 * 1024];
    send(&mut s, &resp(&[b"ECHO", &limit])).await;
    expect_bytes(&mut s, NOAUTH).await;
}

#[tokio::test]
async fn after_auth_full_size_requests_pass_and_reset_restores_the_limits() {
    let node = locked_node().await;
    let mut s = connect(node.addr).await;
    // AUTH and a large request in one write: the limit is lifted for the very next request.
    let big = vec![b'v'; 100_000];
    let mut batch = resp(&[b"AUTH", PASSWORD.as_bytes()]);
    batch.extend(resp(&[b"SET", b"big", &big]));
    let mut many: Vec<&[u8]> = vec![b"MSET"];
    many.extend(std::iter::repeat_n(&b"k"[..], 40));
    batch.extend(resp(&many));
    send(&mut s, &batch).await;
    expect_bytes(&mut s, b"+OK\r\n+OK\r\n+OK\r\n").await;
    send(&mut s, b"STRLEN big\r\nRESET\r\n").await;
    expect_bytes(&mut s, b":100000\r\n+RESET\r\n").await;
    send(&mut s, b"*11\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&read_to_eof(&mut s).await),
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn json_requests_need_auth_by_command_or_by_password_field() {
    let node = locked_node().await;
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c
        .request(json!({"command": "SET", "key": "k", "value": "v"}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "error", "message": "NOAUTH Authentication required.", "key": "k",
               "server_id": 1})
    );
    let reply = c
        .request(json!({"command": "AUTH", "password": "nope"}))
        .await;
    assert_eq!(reply["status"], "error");
    assert_eq!(
        reply["message"],
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    let reply = c
        .request(json!({"command": "AUTH", "password": PASSWORD}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "result": "OK", "server_id": 1})
    );
    let reply = c
        .request(json!({"command": "SET", "key": "k", "value": "v"}))
        .await;
    assert_eq!(reply["message"], "Key set successfully");

    // The user name form, on a fresh connection.
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c
        .request(json!({"command": "auth", "username": "default", "password": PASSWORD}))
        .await;
    assert_eq!(reply["status"], "success");

    // A password field authenticates before the request runs, and the connection stays
    // authenticated; a wrong one fails the request without running it.
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c
        .request(json!({"command": "SET", "key": "p", "value": "1", "password": "nope"}))
        .await;
    assert_eq!(
        reply["message"],
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    let reply = c
        .request(json!({"command": "SET", "key": "p", "value": "1", "password": PASSWORD}))
        .await;
    assert_eq!(reply["message"], "Key set successfully");
    let reply = c.request(json!({"command": "GET", "key": "p"})).await;
    assert_eq!(reply["value"], "1");
    let reply = c.request(json!({"command": "AUTH"})).await;
    assert_eq!(reply["message"], "missing field 'password'");
}

#[tokio::test]
async fn unauthenticated_json_objects_are_held_to_a_small_size() {
    let node = locked_node().await;
    let big = "v".repeat(200_000);
    let mut s = connect(node.addr).await;
    let object = json!({"command": "SET", "key": "k", "value": big}).to_string();
    // The node may stop reading before the object is all sent: a failed write is fine.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut s, object.as_bytes()).await;
    let line = read_until(&mut s, "\n").await;
    let reply: serde_json::Value = serde_json::from_str(&line).expect("one JSON reply");
    assert_eq!(reply["status"], "error");
    assert_eq!(
        reply["message"],
        "invalid JSON: unauthenticated request object larger than 163840 bytes"
    );
    // Then the node closes the connection (a reset, since the rest of the object was unread).
    let mut rest = Vec::new();
    match within("close", s.read_to_end(&mut rest)).await {
        Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c
        .request(json!({"command": "AUTH", "password": PASSWORD}))
        .await;
    assert_eq!(reply["status"], "success");
    let reply = c
        .request(json!({"command": "SET", "key": "k", "value": big}))
        .await;
    assert_eq!(reply["message"], "Key set successfully");
}

// ---------------------------------------------------------------------------------------------
// redis-rs, CONFIG GET
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn redis_rs_authenticates_with_the_password_in_the_url() {
    let node = locked_node().await;
    let url = format!("redis://:{}@{}/", "s3cret%20pass", node.addr);
    let client = redis::Client::open(url).expect("valid URL");
    let mut con = within("connect", client.get_multiplexed_async_connection())
        .await
        .expect("authenticated connection");
    let _: () = con.set("k", "v").await.expect("SET");
    let got: String = con.get("k").await.expect("GET");
    assert_eq!(got, "v");
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("requirepass")
        .query_async(&mut con)
        .await
        .expect("CONFIG GET");
    assert_eq!(config, ["requirepass", PASSWORD]);

    let wrong = redis::Client::open(format!("redis://:nope@{}/", node.addr)).expect("URL");
    let err = within("connect", wrong.get_multiplexed_async_connection())
        .await
        .expect_err("wrong password");
    // redis-rs maps WRONGPASS to its own error kind.
    assert!(
        matches!(err.kind(), redis::ErrorKind::AuthenticationFailed),
        "{err}"
    );

    let none = redis::Client::open(format!("redis://{}/", node.addr)).expect("URL");
    let mut con = within("connect", none.get_multiplexed_async_connection())
        .await
        .expect("a connection without AUTH");
    let err = con.get::<_, Option<String>>("k").await.expect_err("NOAUTH");
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");
}

#[tokio::test]
async fn config_get_reports_requirepass_protected_mode_and_timeout() {
    let node = spawn_node(|_| {}).await;
    let mut s = connect(node.addr).await;
    send(
        &mut s,
        b"CONFIG GET requirepass\r\nCONFIG GET protected-mode\r\nCONFIG GET timeout\r\n",
    )
    .await;
    expect_bytes(
        &mut s,
        b"*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n\
          *2\r\n$14\r\nprotected-mode\r\n$3\r\nyes\r\n\
          *2\r\n$7\r\ntimeout\r\n$1\r\n0\r\n",
    )
    .await;
    let node = spawn_node(|c| {
        c.requirepass = Some("pw".into());
        c.protected_mode = false;
        c.idle_timeout = Some(Duration::from_secs(300));
    })
    .await;
    let mut s = connect(node.addr).await;
    send(
        &mut s,
        b"AUTH pw\r\nCONFIG GET requirepass\r\nCONFIG GET protected-mode\r\nCONFIG GET timeout\r\n",
    )
    .await;
    expect_bytes(
        &mut s,
        b"+OK\r\n*2\r\n$11\r\nrequirepass\r\n$2\r\npw\r\n\
          *2\r\n$14\r\nprotected-mode\r\n$2\r\nno\r\n\
          *2\r\n$7\r\ntimeout\r\n$3\r\n300\r\n",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The cluster client, the REPL, redis-cli
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cluster_client_authenticates_every_new_connection() {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(
            spawn_node(|c| {
                c.id = id;
                c.requirepass = Some(PASSWORD.into());
            })
            .await,
        );
    }
    let mut config = common::client_config(&nodes);
    config.password = Some(PASSWORD.into());
    let client = ClusterClient::new(config);
    for i in 0..30 {
        let key = format!("user:{i}");
        within("SET", client.set(key.as_bytes(), b"v", None))
            .await
            .expect("SET through the cluster");
    }
    for i in 0..nodes.len() {
        let stats = within("STATS", client.stats(i)).await.expect("STATS");
        assert!(stats.set > 0, "node {} got no key", i + 1);
    }
    assert_eq!(
        within("GET", client.get(b"user:7"))
            .await
            .expect("GET")
            .as_deref(),
        Some(&b"v"[..])
    );

    let no_password = ClusterClient::new(common::client_config(&nodes));
    match within("GET", no_password.get(b"user:1")).await {
        Err(ClientError::Server(e)) => assert_eq!(e, "NOAUTH Authentication required."),
        other => panic!("expected NOAUTH, got {other:?}"),
    }

    // A wrong password is an answer, not an outage: no retries, no waiting.
    let mut config = common::client_config(&nodes);
    config.password = Some("nope".into());
    let retries = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = retries.clone();
    let wrong = ClusterClient::new(config).on_retry(move |_| {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let started = Instant::now();
    match within("GET", wrong.get(b"user:1")).await {
        Err(ClientError::Auth { addr, reply }) => {
            let owner = &nodes[minikv::node_for(b"user:1", nodes.len())];
            assert_eq!(addr, owner.host_port());
            assert_eq!(
                reply,
                "WRONGPASS invalid username-password pair or user is disabled."
            )
        }
        other => panic!("expected an AUTH failure, got {other:?}"),
    }
    assert_eq!(retries.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "AUTH failure was retried"
    );
}

/// Runs `minikv client args...` with `input` on stdin and `MINIKV_PASSWORD` set as given
/// (removed when `None`, so the caller's environment cannot leak in).
fn repl(args: &[&str], password_env: Option<&str>, input: &str) -> Run {
    let mut command = Command::new(process::binary());
    command.arg("client").args(args);
    match password_env {
        Some(p) => command.env("MINIKV_PASSWORD", p),
        None => command.env_remove("MINIKV_PASSWORD"),
    };
    process::run(&mut command, Some(input.as_bytes().to_vec()), WAIT)
}

#[test]
fn repl_works_against_a_password_protected_cluster_with_password_or_env() {
    let cluster = ClusterProcess::start(&["--requirepass", PASSWORD]);
    let servers = cluster.servers();
    let session = "set user:1 Alice\nget user:1\nstats 1\n";

    let with_flag = repl(
        &["--servers", &servers, "--password", PASSWORD],
        None,
        session,
    );
    with_flag.assert_success();
    assert!(
        with_flag.stdout.contains("Key set successfully"),
        "{}",
        with_flag.report()
    );
    assert!(
        with_flag.stdout.contains("  Value: Alice\n"),
        "{}",
        with_flag.report()
    );
    assert!(
        !with_flag.stdout.contains("ERROR"),
        "{}",
        with_flag.report()
    );

    let with_env = repl(&["--servers", &servers], Some(PASSWORD), "get user:1\n");
    with_env.assert_success();
    assert!(
        with_env.stdout.contains("  Value: Alice\n"),
        "{}",
        with_env.report()
    );

    let without = repl(&["--servers", &servers], None, "get user:1\n");
    assert!(
        without.stdout.contains("✗ ERROR (Server ")
            && without
                .stdout
                .contains("  NOAUTH Authentication required.\n"),
        "{}",
        without.report()
    );

    // One-shot mode: a wrong password fails at once, without retries, and exits non-zero.
    let wrong = repl(
        &["--servers", &servers, "--password", "nope", "get", "user:1"],
        None,
        "",
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", wrong.report());
    let owner = minikv::node_for(b"user:1", 3);
    assert_eq!(
        wrong.stdout,
        format!(
            "✗ ERROR (Server {})\n  Authentication failed at 127.0.0.1:{}: WRONGPASS invalid \
             username-password pair or user is disabled.\n\n",
            owner + 1,
            cluster.ports[owner]
        ),
        "{}",
        wrong.report()
    );
    assert!(!wrong.stdout.contains("RETRY"), "{}", wrong.report());
}

#[test]
fn redis_cli_authenticates_with_a() {
    process::require("redis-cli (apt redis-tools)", "redis-cli", &["--version"]);
    let dir = tempfile::tempdir().expect("data directory");
    let port = free_port();
    let _node = BinProcess::server(1, port, dir.path(), &["--requirepass", PASSWORD]);
    let cli = |args: &[&str]| {
        let run = process::run(
            Command::new("redis-cli")
                .args(["-p", &port.to_string()])
                .args(args),
            None,
            WAIT,
        );
        run.assert_success();
        run.stdout
    };
    assert_eq!(cli(&["PING"]), "NOAUTH Authentication required.\n\n");
    assert_eq!(
        cli(&["-a", PASSWORD, "--no-auth-warning", "PING"]),
        "PONG\n"
    );
    assert_eq!(
        cli(&[
            "-a",
            PASSWORD,
            "--no-auth-warning",
            "CONFIG",
            "GET",
            "requirepass"
        ]),
        format!("requirepass\n{PASSWORD}\n")
    );
    let wrong = process::run(
        Command::new("redis-cli").args(["-p", &port.to_string(), "-a", "nope", "PING"]),
        None,
        WAIT,
    );
    assert!(
        format!("{}{}", wrong.stdout, wrong.stderr).contains("WRONGPASS"),
        "{}",
        wrong.report()
    );
}

// ---------------------------------------------------------------------------------------------
// Idle timeout
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn idle_connections_are_closed_after_the_timeout() {
    let timeout = Duration::from_millis(600);
    let node = spawn_node(|c| c.idle_timeout = Some(timeout)).await;

    // A client that never says anything (the protocol is not even known yet).
    let started = Instant::now();
    let mut silent = connect(node.addr).await;
    assert!(read_to_eof(&mut silent).await.is_empty());
    assert!(
        started.elapsed() >= timeout,
        "closed after {:?}",
        started.elapsed()
    );

    // A RESP client that goes quiet after a command.
    let mut quiet = connect(node.addr).await;
    send(&mut quiet, b"PING\r\n").await;
    expect_bytes(&mut quiet, b"+PONG\r\n").await;
    let started = Instant::now();
    assert!(read_to_eof(&mut quiet).await.is_empty());
    assert!(
        started.elapsed() >= timeout * 9 / 10,
        "closed after {:?}",
        started.elapsed()
    );

    // A JSON client too.
    let mut json_client = JsonConn::connect(node.addr).await;
    let reply = json_client.request(json!({"command": "PING"})).await;
    assert_eq!(reply["message"], "PONG");
    json_client.expect_closed().await;
}

#[tokio::test]
async fn active_connections_and_monitors_outlive_the_timeout() {
    let timeout = Duration::from_millis(500);
    let node = spawn_node(|c| c.idle_timeout = Some(timeout)).await;
    let mut monitor = connect(node.addr).await;
    send(&mut monitor, b"MONITOR\r\n").await;
    expect_bytes(&mut monitor, b"+OK\r\n").await;
    let mut busy = connect(node.addr).await;
    // Three timeouts' worth of activity, a request every fifth of a timeout.
    let started = Instant::now();
    while started.elapsed() < timeout * 3 {
        send(&mut busy, b"PING\r\n").await;
        expect_bytes(&mut busy, b"+PONG\r\n").await;
        tokio::time::sleep(timeout / 5).await;
    }
    // The monitor, silent all along, still gets the feed.
    send(&mut busy, b"ECHO still-here\r\n").await;
    expect_bytes(&mut busy, b"$10\r\nstill-here\r\n").await;
    read_until(&mut monitor, "\"ECHO\" \"still-here\"").await;
}

#[test]
fn timeout_and_security_options_from_the_command_line() {
    let dir = tempfile::tempdir().expect("data directory");
    let port = free_port();
    let _node = BinProcess::server(
        1,
        port,
        dir.path(),
        &[
            "--requirepass",
            "pw",
            "--protected-mode",
            "no",
            "--timeout",
            "1",
        ],
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    use std::io::{Read, Write};
    s.write_all(b"AUTH pw\r\nCONFIG GET timeout\r\nCONFIG GET protected-mode\r\n")
        .expect("write");
    let want =
        b"+OK\r\n*2\r\n$7\r\ntimeout\r\n$1\r\n1\r\n*2\r\n$14\r\nprotected-mode\r\n$2\r\nno\r\n";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).expect("replies");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    // Then idle: closed after about a second.
    let started = Instant::now();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("closed by the node");
    assert!(rest.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(900) && started.elapsed() < WAIT,
        "closed after {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Protected mode
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn protected_mode_serves_loopback_clients_of_a_node_bound_to_every_interface() {
    let node = spawn_node(|c| c.host = "0.0.0.0".into()).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], node.port()));
    let mut s = connect(addr).await;
    send(&mut s, b"PING\r\n").await;
    expect_bytes(&mut s, b"+PONG\r\n").await;
}

/// Two network namespaces joined by a veth pair: a node in `server` on 198.51.100.1 (TEST-NET-2,
/// which exists only inside them) and a client host on 198.51.100.2. Removed on drop.
struct TestNet {
    server: String,
    client: String,
}

const SERVER_IP: &str = "198.51.100.1";

impl TestNet {
    fn create() -> TestNet {
        let tag = std::process::id();
        let net = TestNet {
            server: format!("mkv{tag}s"),
            client: format!("mkv{tag}c"),
        };
        let (s, c) = (net.server.as_str(), net.client.as_str());
        // Left over from a killed run that had the same process id: start clean.
        for ns in [s, c] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let steps: [&[&str]; 10] = [
            &["netns", "add", s],
            &["netns", "add", c],
            &["link", "add", s, "type", "veth", "peer", "name", c],
            &["link", "set", s, "netns", s],
            &["link", "set", c, "netns", c],
            &["-n", s, "addr", "add", "198.51.100.1/24", "dev", s],
            &["-n", c, "addr", "add", "198.51.100.2/24", "dev", c],
            &["-n", s, "link", "set", s, "up"],
            &["-n", c, "link", "set", c, "up"],
            &["-n", s, "link", "set", "lo", "up"],
        ];
        for step in steps {
            let run = process::run(Command::new("ip").args(step), None, WAIT);
            assert!(
                run.status.success(),
                "setting up the test network (`ip {}`) failed; this test needs root and \
                 iproute2, as CI has: {}",
                step.join(" "),
                run.report()
            );
        }
        net
    }

    /// Starts `minikv server 1 <port> --host 0.0.0.0 extra...` inside the server namespace
    /// and waits (bounded) until it logs that it listens.
    fn start_node(&self, dir: &Path, port: u16, extra: &[&str]) -> NsNode {
        let log = dir.join(format!("node-{}.log", extra.join("_")));
        let stderr = std::fs::File::create(&log).expect("log file");
        let port = port.to_string();
        let data = dir.join(format!("data-{}", extra.join("_")));
        std::fs::create_dir_all(&data).expect("data dir");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server, process::binary()])
            .args(["server", "1", &port, "--host", "0.0.0.0", "--data-dir"])
            .arg(&data)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the node in its namespace");
        let mut node = NsNode { child };
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("listening on") {
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("the node exited with {status}: {text}");
            }
            assert!(Instant::now() < deadline, "the node did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connects from namespace `ns` to `host:port`, sends `request` then QUIT, and returns
    /// everything the node sent until it closed the connection.
    fn exchange(&self, ns: &str, host: &str, port: u16, request: &[u8]) -> Vec<u8> {
        const CLIENT: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
try:
    s.sendall(sys.stdin.buffer.read() + b"QUIT\r\n")
except OSError:
    pass
out = b""
while True:
    try:
        d = s.recv(65536)
    except ConnectionResetError:
        break
    if not d:
        break
    out += d
sys.stdout.buffer.write(out)
"#;
        let run = process::run(
            Command::new("ip")
                .args(["netns", "exec", ns, "python3", "-c", CLIENT, host])
                .arg(port.to_string()),
            Some(request.to_vec()),
            WAIT,
        );
        run.assert_success();
        run.stdout.into_bytes()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth pair, and with it the other end.
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A node running inside a namespace; killed on drop.
struct NsNode {
    child: Child,
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn protected_mode_refuses_remote_clients_unless_a_password_is_set_or_it_is_off() {
    let net = TestNet::create();
    let dir = tempfile::tempdir().expect("temp dir");
    // A fixed port is safe here: nothing else lives in a namespace this test just made.
    let port = 7379;

    // Defaults: protected mode on, no password. The remote host is refused with Redis's
    // explanation and the connection closed; a client on the node's own loopback is served.
    let node = net.start_node(dir.path(), port, &[]);
    let remote = net.exchange(&net.client, SERVER_IP, port, b"PING\r\n");
    assert_eq!(String::from_utf8_lossy(&remote), DENIED);
    let local = net.exchange(&net.server, "127.0.0.1", port, b"PING\r\nINFO stats\r\n");
    let local = String::from_utf8_lossy(&local);
    assert!(local.starts_with("+PONG\r\n"), "{local}");
    assert!(local.contains("rejected_connections:1\r\n"), "{local}");
    // The same host reaching the node through its non-loopback address is not on loopback
    // either: Redis refuses it too.
    let own = net.exchange(&net.server, SERVER_IP, port, b"PING\r\n");
    assert_eq!(String::from_utf8_lossy(&own), DENIED);
    drop(node);

    // Protected mode off: the remote host is served.
    let node = net.start_node(dir.path(), port, &["--protected-mode", "no"]);
    let remote = net.exchange(&net.client, SERVER_IP, port, b"PING\r\n");
    assert_eq!(String::from_utf8_lossy(&remote), "+PONG\r\n+OK\r\n");
    drop(node);

    // A password instead: the remote host gets in, and must authenticate.
    let node = net.start_node(dir.path(), port, &["--requirepass", "pw"]);
    let remote = net.exchange(&net.client, SERVER_IP, port, b"PING\r\n");
    assert_eq!(
        String::from_utf8_lossy(&remote),
        "-NOAUTH Authentication required.\r\n+OK\r\n"
    );
    let remote = net.exchange(&net.client, SERVER_IP, port, b"AUTH pw\r\nPING\r\n");
    assert_eq!(String::from_utf8_lossy(&remote), "+OK\r\n+PONG\r\n+OK\r\n");
    drop(node);
}
