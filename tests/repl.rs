//! The REPL as a user runs it: the real `minikv client` binary with standard input piped (the
//! non-terminal mode) against a real `minikv cluster`, compared as golden text with the spec's
//! blocks, and on a terminal (tmux) for pastes. Server numbers are computed with
//! `minikv::node_for`, never hard-coded.

mod common;

use common::blocking;
use common::process::{free_port, run_client, run_client_env, ClusterProcess};
use common::tmux::Tmux;
use minikv::node_for;

/// 61 `=`: the separator around each `Server N (Port P)` block.
fn narrow() -> String {
    "=".repeat(61)
}

/// 70 `=`: the separator of the `servers` block.
fn wide() -> String {
    "=".repeat(70)
}

/// The first `prefix{i}` key that MD5 routes to server index `index` of 3.
fn key_on(prefix: &str, index: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| node_for(k.as_bytes(), 3) == index)
        .expect("some key routes there")
}

/// 1-based server number of `key` in a 3-server cluster.
fn server_of(key: &str) -> usize {
    node_for(key.as_bytes(), 3) + 1
}

fn ok(server: usize, details: &str) -> String {
    format!("✓ SUCCESS (Server {server})\n{details}\n")
}

fn err(server: usize, message: &str) -> String {
    format!("✗ ERROR (Server {server})\n  {message}\n\n")
}

/// A model of one node's STATS counters, updated as the session runs.
#[derive(Default, Clone, Copy)]
struct Counters {
    total: u64,
    get: u64,
    set: u64,
    delete: u64,
    expire: u64,
}

impl Counters {
    fn block(&self, keys: usize, with_ttl: usize) -> String {
        format!(
            "  Total Requests: {}\n  GET: {}\n  SET: {}\n  DELETE: {}\n  EXPIRE: {}\n  \
             Total Keys: {keys}\n  Keys with TTL: {with_ttl}\n",
            self.total, self.get, self.set, self.delete, self.expire
        )
    }
}

fn header(server: usize, port: u16) -> String {
    let line = narrow();
    format!("{line}\nServer {server} (Port {port})\n{line}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_session_prints_the_specs_blocks() {
    blocking(|| {
        let cluster = ClusterProcess::start(&[]);
        let servers = cluster.servers();
        // user:alice as in the spec, then one key on each of the other two servers.
        let a = server_of("user:alice");
        let bob = key_on("user:bob", a % 3);
        let charlie = key_on("user:charlie", (a + 1) % 3);
        let (b, c) = (server_of(&bob), server_of(&charlie));
        assert_eq!(
            [a, b, c]
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );
        let missing = "missing:key";
        let m = server_of(missing);

        let input = format!(
            "set user:alice Alice\n\
             GET user:alice\n\
             expire user:alice 300\n\
             get user:alice\n\
             set {bob} Bob Builder\n\
             set {charlie} Charlie\n\
             get {missing}\n\
             del {charlie}\n\
             delete {charlie}\n\
             \n\
             keys\n\
             stats\n\
             stats {a}\n\
             keys {b}\n\
             exit\n\
             set after:exit x\n"
        );

        // What the nodes will have counted, as the session goes.
        let mut n = [Counters::default(); 4]; // 1-based
        let mut want = String::new();
        want += &ok(a, "  Key set successfully\n");
        n[a].total += 1;
        n[a].set += 1;
        want += &ok(
            a,
            "  Key: user:alice\n  Value: Alice\n  TTL: No expiration\n",
        );
        n[a].total += 1;
        n[a].get += 1;
        want += &ok(a, "  Expiration set successfully\n  TTL: 300 seconds\n");
        n[a].total += 1;
        n[a].expire += 1;
        want += &ok(a, "  Key: user:alice\n  Value: Alice\n  TTL: 300 seconds\n");
        n[a].total += 1;
        n[a].get += 1;
        want += &ok(b, "  Key set successfully\n");
        n[b].total += 1;
        n[b].set += 1;
        want += &ok(c, "  Key set successfully\n");
        n[c].total += 1;
        n[c].set += 1;
        want += &err(m, "Key not found");
        n[m].total += 1;
        n[m].get += 1;
        want += &ok(c, "  Key deleted successfully\n");
        n[c].total += 1;
        n[c].delete += 1;
        want += &err(c, "Key not found");
        n[c].total += 1;
        n[c].delete += 1;

        // keys: one block per server, in server order.
        // (key, total keys, keys with TTL) per server at that point; 1-based.
        let mut held = vec![(String::new(), 0usize, 0usize); 4];
        held[a] = ("user:alice".to_string(), 1, 1);
        held[b] = (bob.clone(), 1, 0);
        let keys_line = |s: usize| match held[s].1 {
            0 => "  Keys (0): (none)\n".to_string(),
            _ => format!("  Keys (1): {}\n", held[s].0),
        };
        let numbered = || {
            cluster
                .ports
                .iter()
                .enumerate()
                .map(|(i, &port)| (i + 1, port))
        };
        for (s, port) in numbered() {
            want += &header(s, port);
            want += &ok(s, &keys_line(s));
            n[s].total += 1;
        }
        // stats: each node reports the requests before its own STATS.
        for (s, port) in numbered() {
            want += &header(s, port);
            want += &ok(s, &n[s].block(held[s].1, held[s].2));
            n[s].total += 1;
        }
        want += &ok(a, &n[a].block(held[a].1, held[a].2));
        want += &ok(b, &keys_line(b));
        want += "Goodbye!\n";

        let run = run_client(&["--servers", &servers], &input);
        assert_eq!(run.stdout, want, "stderr:\n{}", run.stderr);
        assert_eq!(run.code, Some(0));
        assert_eq!(run.stderr, "", "no warnings on stderr");

        // `exit` stopped the session: the line after it never ran.
        let after = run_client(&["--servers", &servers, "get", "after:exit"], "");
        assert_eq!(after.stdout, err(server_of("after:exit"), "Key not found"));
        // The multi-word value was kept whole.
        let got = run_client(&["--servers", &servers, "get", &bob], "");
        assert_eq!(
            got.stdout,
            ok(
                b,
                &format!("  Key: {bob}\n  Value: Bob Builder\n  TTL: No expiration\n")
            )
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_commands_set_the_exit_status() {
    blocking(|| {
        let cluster = ClusterProcess::start(&[]);
        let servers = cluster.servers();

        let missing = run_client(&["--servers", &servers, "get", "no:such:key"], "");
        assert_eq!(missing.code, Some(1), "an error result exits 1");
        assert_eq!(
            missing.stdout,
            err(server_of("no:such:key"), "Key not found")
        );

        let set = run_client(&["--servers", &servers, "set", "greeting", "two words"], "");
        assert_eq!(set.code, Some(0), "{}", set.stderr);
        assert_eq!(
            set.stdout,
            ok(server_of("greeting"), "  Key set successfully\n")
        );

        let get = run_client(&["--servers", &servers, "GET", "greeting"], "");
        assert_eq!(get.code, Some(0));
        assert_eq!(
            get.stdout,
            ok(
                server_of("greeting"),
                "  Key: greeting\n  Value: two words\n  TTL: No expiration\n"
            )
        );

        let expire = run_client(&["--servers", &servers, "expire", "greeting", "57"], "");
        assert_eq!(expire.code, Some(0));
        let get = run_client(&["--servers", &servers, "get", "greeting"], "");
        assert!(
            get.stdout.contains("  TTL: 57 seconds\n")
                || get.stdout.contains("  TTL: 56 seconds\n"),
            "{}",
            get.stdout
        );

        let del = run_client(&["--servers", &servers, "del", "greeting"], "");
        assert_eq!(del.code, Some(0));
        let del = run_client(&["--servers", &servers, "del", "greeting"], "");
        assert_eq!(
            del.code,
            Some(1),
            "deleting a missing key is an error result"
        );

        let usage = run_client(&["--servers", &servers, "get"], "");
        assert_eq!(usage.code, Some(1));
        assert_eq!(usage.stdout, "Usage: get <key>\n\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_block_reports_the_real_retry_policy() {
    blocking(|| {
        // No node needs to run: `servers` only prints the configuration.
        let servers = "localhost:7001,localhost:7002,localhost:7003";
        let run = run_client(&["--servers", servers], "servers\n");
        let line = wide();
        assert_eq!(
            run.stdout,
            format!(
                "{line}\nSERVER CONFIGURATION\n{line}\nServer 1: localhost:7001\n\
                 Server 2: localhost:7002\nServer 3: localhost:7003\nTotal Servers: 3\n\
                 Sharding: Enabled (Consistent Hashing)\n\
                 Retry Policy: 3 retries with 0.5s delay\n{line}\n\n"
            ),
            "piped input prints no banner or prompt, just the block"
        );
        assert_eq!(run.code, Some(0), "end of input exits 0");

        let run = run_client(
            &[
                "--servers",
                "h1:1,h2:2",
                "--retries",
                "5",
                "--retry-delay",
                "0.25",
            ],
            "servers\n",
        );
        assert!(
            run.stdout.contains("Server 2: h2:2\nTotal Servers: 2\n")
                && run
                    .stdout
                    .contains("Retry Policy: 5 retries with 0.25s delay\n"),
            "{}",
            run.stdout
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_server_prints_the_retry_lines() {
    blocking(|| {
        let cluster = ClusterProcess::start(&[]);
        // Server 2 is a port nothing listens on.
        let dead = free_port();
        let servers = format!(
            "127.0.0.1:{},127.0.0.1:{dead},127.0.0.1:{}",
            cluster.ports[0], cluster.ports[2]
        );
        let key = key_on("user:", 1);
        let retries = "[RETRY] Server 2 failed, retrying... (1/3)\n\
                       [RETRY] Server 2 failed, retrying... (2/3)\n\
                       [RETRY] Server 2 failed, retrying... (3/3)\n";
        let failure = err(
            2,
            &format!(
                "Server 2 unavailable after 3 retries\n  Cause: connection refused by \
                 127.0.0.1:{dead}"
            ),
        );

        let input = format!("get {key}\nstats\nexit\n");
        let run = run_client(&["--servers", &servers, "--retry-delay", "0.05"], &input);
        let zero = Counters::default();
        let mut want = format!("{retries}{failure}");
        want += &header(1, cluster.ports[0]);
        want += &ok(1, &zero.block(0, 0));
        want += &header(2, dead);
        want += retries;
        want += &failure;
        want += &header(3, cluster.ports[2]);
        want += &ok(3, &zero.block(0, 0));
        want += "Goodbye!\n";
        assert_eq!(run.stdout, want, "stderr:\n{}", run.stderr);
        assert_eq!(run.code, Some(0));

        let one_shot = run_client(
            &["--servers", &servers, "--retry-delay", "0.05", "get", &key],
            "",
        );
        assert_eq!(one_shot.stdout, format!("{retries}{failure}"));
        assert_eq!(one_shot.code, Some(1));

        // A key on a live server is unaffected.
        let live = key_on("user:", 0);
        let run = run_client(
            &[
                "--servers",
                &servers,
                "--retry-delay",
                "0.05",
                "set",
                &live,
                "v",
            ],
            "",
        );
        assert_eq!(run.stdout, ok(1, "  Key set successfully\n"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_arguments_print_usage_lines_and_exit_says_goodbye() {
    blocking(|| {
        // Nothing here reaches a server.
        let servers = format!(
            "127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
            free_port(),
            free_port(),
            free_port()
        );
        let input = "get\nset onlykey\nGET a b\ndel\ndelete a b\nexpire k\nexpire k soon\n\
                     stats 9\nkeys 1 2\nkeys zero\nfrobnicate now\nset \"unbalanced\n\n   \n\
                     QUIT\nget never\n";
        let run = run_client(&["--servers", &servers], input);
        let want = "Usage: get <key>\n\n\
                    Usage: set <key> <value>\n\n\
                    Usage: get <key>\n\n\
                    Usage: del <key>\n\n\
                    Usage: del <key>\n\n\
                    Usage: expire <key> <seconds>\n\n\
                    Error: TTL must be an integer number of seconds\n\n\
                    Error: invalid server number '9' (1-3)\n\n\
                    Usage: keys [server]\n\n\
                    Error: invalid server number 'zero' (1-3)\n\n\
                    Unknown command: frobnicate. Type 'help' for the list of commands.\n\n\
                    Error: unbalanced quotes\n\n\
                    Goodbye!\n";
        assert_eq!(run.stdout, want);
        assert_eq!(run.code, Some(0));

        let run = run_client(&["--servers", &servers], "help\nquit\n");
        assert!(run.stdout.starts_with("Commands:\n"), "{}", run.stdout);
        for command in [
            "set <key> <value>",
            "get <key>",
            "del <key>",
            "expire <key> <seconds>",
            "stats [server]",
            "keys [server]",
            "servers",
            "help",
            "exit",
        ] {
            assert!(run.stdout.contains(command), "help lacks {command}");
        }
        assert!(run.stdout.ends_with("\n\nGoodbye!\n"), "{}", run.stdout);

        // End of input without `exit`: no goodbye, status 0.
        let run = run_client(&["--servers", &servers], "exit now please\n");
        assert_eq!(
            run.stdout, "Goodbye!\n",
            "extra words after exit are ignored"
        );
        let run = run_client(&["--servers", &servers], "");
        assert_eq!((run.stdout.as_str(), run.code), ("", Some(0)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_block_names_the_cause_of_the_last_failure() {
    blocking(|| {
        // Refused: a port nothing listens on. One attempt only: the spec's line counts
        // attempts then, not "0 retries".
        let dead = free_port();
        let refused = format!("127.0.0.1:{dead}");
        let run = run_client(&["--servers", &refused, "--retries", "0", "get", "k"], "");
        assert_eq!(
            run.stdout,
            err(
                1,
                &format!(
                    "Server 1 unavailable after 1 attempt\n  Cause: connection refused by \
                     {refused}"
                )
            ),
            "stderr:\n{}",
            run.stderr
        );
        assert_eq!(run.code, Some(1));

        // A host name that cannot resolve (`.invalid` never does, RFC 2606).
        let run = run_client(
            &[
                "--servers",
                "no-such-host.invalid:7001",
                "--retries",
                "1",
                "--retry-delay",
                "0.05",
                "get",
                "k",
            ],
            "",
        );
        assert_eq!(
            run.stdout,
            format!(
                "[RETRY] Server 1 failed, retrying... (1/1)\n{}",
                err(
                    1,
                    "Server 1 unavailable after 1 retry\n  Cause: host not found: \
                     no-such-host.invalid"
                )
            ),
            "stderr:\n{}",
            run.stderr
        );

        // A node that never answers: a listener that never accepts, so every attempt ends
        // by the timeout.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("address").to_string();
        let run = run_client(
            &[
                "--servers",
                &addr,
                "--timeout",
                "0.2",
                "--retries",
                "2",
                "--retry-delay",
                "0.05",
            ],
            "get k\nexit\n",
        );
        assert_eq!(
            run.stdout,
            format!(
                "[RETRY] Server 1 failed, retrying... (1/2)\n\
                 [RETRY] Server 1 failed, retrying... (2/2)\n{}Goodbye!\n",
                err(
                    1,
                    &format!(
                        "Server 1 unavailable after 2 retries\n  Cause: timed out after 0.2 s \
                         waiting for {addr}"
                    )
                )
            ),
            "stderr:\n{}",
            run.stderr
        );
        drop(silent);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_debug_shows_the_cause_of_every_attempt() {
    blocking(|| {
        let dead = free_port();
        let servers = format!("127.0.0.1:{dead}");
        let args = [
            "--servers",
            &servers,
            "--retry-delay",
            "0.05",
            "get",
            "user:1",
        ];
        let quiet = run_client(&args, "");
        assert_eq!(quiet.stderr, "", "no log lines unless RUST_LOG asks");

        let run = run_client_env(&args, "", &[("RUST_LOG", "debug")]);
        let attempts: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("attempt failed"))
            .collect();
        assert_eq!(attempts.len(), 4, "one line per attempt:\n{}", run.stderr);
        for (n, line) in attempts.iter().enumerate() {
            assert!(
                line.contains(&format!("attempt failed: connection refused by {servers}"))
                    && line.contains("server=1")
                    && line.contains(&format!("attempt={}", n + 1))
                    && line.contains("of=4"),
                "{line}"
            );
        }
        // Standard output is unchanged by logging.
        assert_eq!(run.stdout, quiet.stdout);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paste_at_the_prompt_runs_every_line() {
    blocking(|| {
        let cluster = ClusterProcess::start(&[]);
        let home = tempfile::tempdir().expect("a home for the history file");
        let command = format!(
            "env HOME={} {} client --servers {}",
            home.path().display(),
            common::process::binary(),
            cluster.servers()
        );
        let tmux = Tmux::start(120, &command);
        tmux.keep_pane_on_exit();
        // The screen capture drops the prompt's trailing space.
        tmux.wait_for("the kv> prompt", |s| s.contains("\nkv>"));

        // Bracketed paste: the terminal hands the block over whole, and it runs on Enter.
        tmux.paste("set paste:a first\nset paste:b second\nget paste:a\n", true);
        tmux.send(&["Enter"]);
        tmux.wait_for("the three commands' results", |s| {
            s.matches("Key set successfully").count() == 2 && s.contains("  Value: first")
        });

        // A plain paste: each newline is an Enter, and no line typed ahead is lost.
        tmux.paste("get paste:b\nset paste:c third\nget paste:c\n", false);
        tmux.wait_for("the plain paste's results", |s| {
            s.contains("  Value: second") && s.contains("  Value: third")
        });

        // `exit` inside a paste ends the session: the lines after it do not run.
        tmux.paste("del paste:a\nexit\nset paste:after exit\n", true);
        tmux.send(&["Enter"]);
        tmux.wait_for("goodbye", |s| s.contains("Goodbye!"));
        let servers = cluster.servers();
        let after = run_client(&["--servers", &servers, "get", "paste:after"], "");
        assert_eq!(after.stdout, err(server_of("paste:after"), "Key not found"));
        let deleted = run_client(&["--servers", &servers, "get", "paste:a"], "");
        assert_eq!(deleted.stdout, err(server_of("paste:a"), "Key not found"));

        // Each pasted line is its own history entry.
        let path = home.path().join(".minikv_history");
        // Written as the REPL exits, just after its goodbye.
        common::wait_until_blocking("the history file", common::WAIT, || {
            std::fs::read_to_string(&path).is_ok_and(|h| h.contains("exit"))
        });
        let history = std::fs::read_to_string(&path).expect("the history file");
        for line in ["set paste:a first", "get paste:b", "del paste:a", "exit"] {
            assert!(
                history.lines().any(|l| l == line),
                "{line:?} not in the history:\n{history}"
            );
        }
        assert!(!history.contains("paste:after"), "{history}");
    })
    .await;
}
