//! Child processes: the real `minikv` binary (one node, a whole `minikv cluster`, the client),
//! `redis-server` for the differential tests, and external programs (redis-cli, tmux, node,
//! python) run with a time limit. Every child is killed when its handle drops, and every wait
//! is bounded.

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::WAIT;

/// Path of the `minikv` binary cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_minikv")
}

/// A port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// The first of `n` consecutive ports that were all free a moment ago.
pub fn free_ports(n: u16) -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base.checked_add(n).is_none() {
            continue;
        }
        let held: Vec<_> = (0..n)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == n as usize {
            return base;
        }
    }
    panic!("no {n} consecutive free ports found");
}

/// The first of `n` consecutive ports that were all free a moment ago, low enough that their
/// default cluster bus ports (`PORT + 10000`) exist, and those free too: for `minikv cluster
/// --replicas`, which puts each node's bus there. Drawn at random from 10000-29999, below the
/// kernel's ephemeral range (so a port given to another test's `free_port` rarely collides).
pub fn free_ports_with_bus(n: u16) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..200 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u16(n);
        let base = 10_000 + (hasher.finish() % 20_000) as u16;
        let held: Vec<_> = (0..n)
            .flat_map(|i| [base + i, base + i + 10_000])
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == 2 * n as usize {
            return base;
        }
    }
    panic!("no {n} consecutive free ports with free bus ports found");
}

/// The `--servers` value for nodes on loopback at `ports`: `127.0.0.1:p1,127.0.0.1:p2,...`.
pub fn servers_arg(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until `port` on loopback accepts a connection, within [`WAIT`].
pub fn wait_accepting(port: u16) {
    super::wait_until_blocking(&format!("port {port} to accept"), WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

// ---------------------------------------------------------------------------------------------
// The minikv binary
// ---------------------------------------------------------------------------------------------

/// A `minikv` child process, killed (SIGKILL) when dropped. Its stderr goes to a file so a
/// chatty node can never block on a full pipe.
pub struct BinProcess {
    child: Child,
    stderr_path: PathBuf,
    _log_dir: TempDir,
}

impl BinProcess {
    /// Starts `minikv args...` and, if `ports` is not empty, waits until every port accepts
    /// connections (failing early with the process's stderr if it exits instead).
    pub fn start(args: &[&str], ports: &[u16]) -> BinProcess {
        BinProcess::start_with(args, ports, |_| {})
    }

    /// [`BinProcess::start`], with `setup` adjusting the command before it runs: to set
    /// environment variables, or to send standard output or error elsewhere (a pipe; then
    /// [`BinProcess::stderr`] has nothing to show).
    pub fn start_with(
        args: &[&str],
        ports: &[u16],
        setup: impl FnOnce(&mut Command),
    ) -> BinProcess {
        let log_dir = tempfile::tempdir().expect("create a log directory");
        let stderr_path = log_dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("create the stderr log");
        let mut command = Command::new(binary());
        command
            .args(args)
            .env("RUST_LOG", "info")
            // A password in the developer's environment must not protect every test node.
            .env_remove("MINIKV_REQUIREPASS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        setup(&mut command);
        // The command (and its copies of any pipe ends handed to the child) closes here.
        let child = command.spawn().expect("spawn the minikv binary");
        let mut process = BinProcess {
            child,
            stderr_path,
            _log_dir: log_dir,
        };
        for &port in ports {
            process.wait_accepting(port);
        }
        process
    }

    /// Starts `minikv server <id> <port> --data-dir <dir> extra...` and waits for the port.
    pub fn server(id: u64, port: u16, dir: &Path, extra: &[&str]) -> BinProcess {
        let (id, port_text) = (id.to_string(), port.to_string());
        let dir = dir.to_str().expect("UTF-8 temp path");
        let mut args = vec!["server", &id, &port_text, "--data-dir", dir];
        args.extend_from_slice(extra);
        BinProcess::start(&args, &[port])
    }

    /// Waits until `port` accepts a connection.
    pub fn wait_accepting(&mut self, port: u16) {
        let deadline = Instant::now() + WAIT;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                panic!(
                    "minikv exited with {status} before accepting on port {port}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "minikv did not accept on port {port} within {WAIT:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        // Already exited is fine: there is nothing left to kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (a graceful stop) through the system `kill` command.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGINT, as Ctrl+C in a terminal does (a graceful stop).
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends the signal `name` (`TERM`, `INT`, ...) to this process only.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("run kill -{name}: {e}"));
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits for the process to exit on its own, within [`WAIT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "minikv did not exit within {WAIT:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for BinProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `minikv server` child process on an ephemeral port with its own data directory; killed
/// when dropped.
pub struct NodeProcess {
    /// The process (dropped before `dir`).
    pub process: BinProcess,
    /// The port it serves RESP and JSON on.
    pub port: u16,
    /// Its data directory.
    pub dir: TempDir,
}

impl NodeProcess {
    /// Starts a node and waits (bounded) until it accepts connections.
    pub fn start() -> NodeProcess {
        let dir = tempfile::tempdir().expect("create a data directory");
        let port = free_port();
        let process = BinProcess::server(1, port, dir.path(), &[]);
        NodeProcess { process, port, dir }
    }

    /// The port as a command-line argument.
    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }

    /// A redis-rs URL for this node.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// `minikv cluster` with its default three nodes on fresh consecutive ports; killed when
/// dropped.
pub struct ClusterProcess {
    /// The process (dropped before the data directory).
    pub process: BinProcess,
    /// The nodes' ports, server 1 first.
    pub ports: [u16; 3],
    _dir: Option<TempDir>,
}

impl ClusterProcess {
    /// Starts `minikv cluster --base-port <free> extra... --data-dir <a new temporary
    /// directory>` and waits until every node accepts connections.
    pub fn start(extra: &[&str]) -> ClusterProcess {
        let dir = tempfile::tempdir().expect("create a data directory");
        let mut cluster = ClusterProcess::start_in(dir.path(), extra);
        cluster._dir = Some(dir);
        cluster
    }

    /// [`ClusterProcess::start`] with the data directory `data_dir`, which need not exist yet
    /// and is left in place.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> ClusterProcess {
        ClusterProcess::start_in_with(data_dir, extra, true, |_| {})
    }

    /// [`ClusterProcess::start_in`], with `setup` adjusting the command as in
    /// [`BinProcess::start_with`]; waits for the ports only if `wait` is set.
    pub fn start_in_with(
        data_dir: &Path,
        extra: &[&str],
        wait: bool,
        setup: impl FnOnce(&mut Command),
    ) -> ClusterProcess {
        ClusterProcess::start_at(free_ports(3), data_dir, extra, wait, setup)
    }

    /// [`ClusterProcess::start_in_with`] on the ports from `base` (see [`free_ports`] and
    /// [`free_ports_with_bus`]).
    pub fn start_at(
        base: u16,
        data_dir: &Path,
        extra: &[&str],
        wait: bool,
        setup: impl FnOnce(&mut Command),
    ) -> ClusterProcess {
        let ports = [base, base + 1, base + 2];
        let base_text = base.to_string();
        let dir_text = data_dir.to_str().expect("UTF-8 temp path");
        let mut args = vec!["cluster", "--base-port", &base_text];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--data-dir", dir_text]);
        let process = BinProcess::start_with(&args, if wait { &ports } else { &[] }, setup);
        ClusterProcess {
            process,
            ports,
            _dir: None,
        }
    }

    /// The `--servers` value naming the three nodes in order.
    pub fn servers(&self) -> String {
        servers_arg(&self.ports)
    }
}

/// The output of a finished `minikv client` run.
pub struct ClientRun {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `minikv client args...` with `input` piped to its standard input (not a terminal)
/// and waits, within [`WAIT`], for it to finish. `RUST_LOG` is removed from its environment,
/// so that the caller's cannot add log lines to its standard error.
pub fn run_client(args: &[&str], input: &str) -> ClientRun {
    run_client_env(args, input, &[])
}

/// [`run_client`] with `env` (name, value) set in the client's environment.
pub fn run_client_env(args: &[&str], input: &str, env: &[(&str, &str)]) -> ClientRun {
    let what = "minikv client";
    let child = Command::new(binary())
        .arg("client")
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn minikv client");
    let output = finish(what, child, Some(input.as_bytes().to_vec()), WAIT);
    ClientRun {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("client output is UTF-8"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// redis-server
// ---------------------------------------------------------------------------------------------

/// A `redis-server` child process on a free port with persistence off; killed when dropped.
pub struct RedisServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl RedisServer {
    /// Starts `redis-server` (with DEBUG enabled) keeping its files in `dir`, and waits until
    /// it accepts connections.
    pub fn start(dir: &Path) -> RedisServer {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args([
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
                "--dir",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed: run ./scripts/test.sh");
        let server = RedisServer { child, port };
        wait_accepting(port);
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Already exited is fine: there is nothing left to kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// External programs
// ---------------------------------------------------------------------------------------------

/// Where the client scripts and their `node_modules` live.
pub fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Panics with the way to install `what` unless `program args...` runs and exits 0.
pub fn require(what: &str, program: &str, args: &[&str]) {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{what} is missing (`{program} {}` failed): run ./scripts/test.sh, which installs the \
         client tools these tests need",
        args.join(" ")
    );
}

/// A finished external program.
pub struct Run {
    /// What was run, for messages.
    pub what: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// Panics, showing both outputs, unless the program exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "{} failed: {}",
            self.what,
            self.report()
        );
        self
    }

    /// Status and both outputs, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// Runs `command` with `input` on its standard input (empty if `None`) and waits for it at
/// most `limit`; a program still running then is killed and the test fails.
pub fn run(command: &mut Command, input: Option<Vec<u8>>, limit: Duration) -> Run {
    let what = format!("{command:?}");
    let child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {what}: {e}; run ./scripts/test.sh to install the client tools")
        });
    let output = finish(&what, child, input, limit);
    Run {
        what,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Reads `reader` (a child's standard output or error) until `done` holds for everything read
/// so far, then closes it and returns the text; fails the test, showing the text, if the
/// stream ends first or `limit` passes. Closing matters: a test can then check what the child
/// does when its output pipe has no reader.
pub fn read_pipe_until(
    what: &str,
    reader: impl Read + Send + 'static,
    limit: Duration,
    done: impl Fn(&str) -> bool + Send + 'static,
) -> String {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let shared = seen.clone();
    std::thread::spawn(move || {
        let mut reader = reader;
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        let found = loop {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let found = done(&text);
            *shared.lock().unwrap_or_else(|e| e.into_inner()) = text;
            if found {
                break true;
            }
            match reader.read(&mut chunk) {
                Ok(n) if n > 0 => bytes.extend_from_slice(&chunk[..n]),
                _ => break false,
            }
        };
        // Closed before the caller hears of it, so that it acts on a pipe without a reader.
        drop(reader);
        let _ = tx.send(found);
    });
    // The reader thread ends by itself once the child dies and the pipe's other end closes.
    let outcome = rx.recv_timeout(limit);
    let text = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match outcome {
        Ok(true) => text,
        Ok(false) => panic!("{what}: the stream ended before the expected text; got:\n{text}"),
        Err(_) => panic!("{what}: expected text not seen within {limit:?}; got:\n{text}"),
    }
}

/// Starts `program args...`, collects its standard output until `done` holds for everything
/// read so far (or `limit` passes, which fails the test), then kills it. For programs that
/// run until stopped, like `redis-cli --stat`.
pub fn run_until(
    program: &str,
    args: &[&str],
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}; run ./scripts/test.sh"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 || tx.send(chunk[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let outcome = loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if done(&text) {
            break Ok(text);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend_from_slice(&chunk),
            Err(_) => break Err(text),
        }
    };
    kill(child.id());
    let _ = child.wait();
    reader.join().expect("output reader thread");
    outcome.unwrap_or_else(|text| {
        panic!("{program} {args:?}: expected output not seen within {limit:?}; got:\n{text}")
    })
}

/// SIGKILL to one process we started, by its id.
pub fn kill(pid: u32) {
    // Already gone is fine.
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// Feeds `input` to `child` (spawned with piped stdout and stderr, and piped stdin when
/// `input` is given) and collects its output, within `limit`; a child still running then is
/// killed and the test fails, naming `what`.
fn finish(what: &str, mut child: Child, input: Option<Vec<u8>>, limit: Duration) -> Output {
    // Feed stdin from another thread so a program writing a lot cannot deadlock against us.
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.unwrap_or_default();
        std::thread::spawn(move || {
            // A program that exits early (`exit`) closes the pipe: that shows in its status
            // and output instead.
            let _ = stdin.write_all(&input);
        })
    });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap_or_else(|e| panic!("waiting for {what}: {e}")),
        Err(_) => {
            // Do not leave a hung program behind.
            kill(pid);
            panic!("{what} did not finish within {limit:?}");
        }
    };
    if let Some(writer) = writer {
        writer.join().expect("stdin writer thread");
    }
    output
}

/// The last 8 KB of `text`, so a failure message stays readable.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(8 * 1024);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
