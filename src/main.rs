//! The `minikv` command: `server`, `client` (the REPL), `cluster`, and the operator commands
//! `rebalance` and `remove-node`. Parses arguments, sets up logging, and calls the library:
//! [`minikv::launch`] serves nodes, [`minikv::repl::terminal`] runs the client,
//! [`minikv::client::rebalance`] moves slots.
//!
//! Every flag is checked by its value parser, so a bad value is refused by clap, before
//! anything starts, with one message naming the flag, the value and what was expected.
//! Nothing here may panic on a closed standard output or error: `minikv cluster 2>&1 | tee
//! log` loses its `tee` to the same Ctrl+C that asks the nodes to save (see [`LossyStderr`]).

use std::io::{IsTerminal, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use minikv::repl::{terminal, Outcome};
use minikv::{launch, ClientConfig, NodeConfig};

#[derive(Parser)]
#[command(
    name = "minikv",
    version,
    about = "A small distributed key-value store (RESP + JSON)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node: `minikv server 1 7001`.
    Server {
        /// Node id, 1 or more (names the snapshot file kv_store_server{ID}.json).
        #[arg(value_parser = whole::<u64>(1, u64::MAX), allow_negative_numbers = true)]
        id: u64,
        /// TCP port serving both RESP and JSON (0: any free port, logged at start).
        #[arg(value_parser = whole::<u16>(0, 65535), allow_negative_numbers = true)]
        port: u16,
        #[command(flatten)]
        node: NodeArgs,
        /// Directory of the snapshot file.
        #[arg(long, default_value = ".")]
        data_dir: PathBuf,
        /// Join a replicated cluster: every node's client address in id order (entry ID is
        /// this node), each HOST:PORT or HOST:PORT@BUSPORT. Off by default.
        #[arg(long, value_name = "HOST:PORT,...")]
        cluster: Option<String>,
        /// Join a running replicated cluster through one of its nodes: the node gets a new,
        /// empty shard of its own (`minikv rebalance` gives it slots). Off by default.
        #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["cluster", "replicas"])]
        join: Option<String>,
        /// Nodes replicating each shard (default 3, or the number of nodes if fewer).
        #[arg(
            long,
            requires = "cluster",
            value_parser = whole::<usize>(1, MAX_NODES),
            allow_negative_numbers = true
        )]
        replicas: Option<usize>,
        /// This node's cluster bus port (default PORT + 10000).
        #[arg(
            long,
            required = false,
            value_parser = whole::<u16>(1, 65535),
            allow_negative_numbers = true
        )]
        bus_port: Option<u16>,
        #[command(flatten)]
        timing: ClusterTiming,
    },
    /// The interactive client; with a command after the options, run just that command.
    Client {
        /// Comma-separated host:port list; the first is server 1.
        #[arg(
            long,
            value_name = "HOST:PORT,...",
            value_parser = parse_servers,
            default_value = "localhost:7001,localhost:7002,localhost:7003"
        )]
        servers: Servers,
        /// Retries after a failed attempt.
        #[arg(
            long,
            default_value = "3",
            value_parser = whole::<u32>(0, u64::from(u32::MAX)),
            allow_negative_numbers = true
        )]
        retries: u32,
        /// Seconds between retries (the base of the exponential backoff).
        #[arg(long, default_value = "0.5", value_parser = seconds, allow_negative_numbers = true)]
        retry_delay: Duration,
        /// fixed: the spec's constant delay; exponential: doubling from --retry-delay up to
        /// 5 s, each pause drawn at random below that (full jitter).
        #[arg(long, value_enum, default_value = "fixed")]
        retry_backoff: RetryBackoff,
        /// Seconds before one attempt times out.
        #[arg(long, default_value = "5", value_parser = seconds, allow_negative_numbers = true)]
        timeout: Duration,
        #[command(flatten)]
        connect: ConnectArgs,
        /// A command to run instead of the interactive loop, e.g. `get user:1`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run N nodes in this process on consecutive ports: the spec's 3-node cluster.
    Cluster {
        /// Number of nodes, 1 to 1024.
        #[arg(
            long,
            default_value = "3",
            value_parser = whole::<u16>(1, MAX_NODES),
            allow_negative_numbers = true
        )]
        nodes: u16,
        /// Port of node 1; node i listens on base-port + i - 1.
        #[arg(
            long,
            default_value = "7001",
            value_parser = whole::<u16>(1, 65535),
            allow_negative_numbers = true
        )]
        base_port: u16,
        #[command(flatten)]
        node: NodeArgs,
        /// Directory of the snapshot files.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Replicate every shard on R of the nodes (Raft; automatic failover). Without it,
        /// the spec's unreplicated cluster.
        #[arg(
            long,
            value_parser = whole::<usize>(1, MAX_NODES),
            allow_negative_numbers = true
        )]
        replicas: Option<usize>,
        #[command(flatten)]
        timing: ClusterTiming,
    },
    /// Move slots of a replicated cluster until every shard owns as many (12288 / shards, give
    /// or take one); run it again after an interruption to continue.
    Rebalance {
        #[command(flatten)]
        slots: SlotArgs,
    },
    /// Move every slot of shard ID to the other shards, then take node ID out of the cluster.
    RemoveNode {
        /// The node to remove (its shard has the same id).
        #[arg(value_parser = whole::<u64>(1, u64::MAX), allow_negative_numbers = true)]
        id: u64,
        #[command(flatten)]
        slots: SlotArgs,
    },
}

/// The flags of `rebalance` and `remove-node`.
#[derive(clap::Args)]
struct SlotArgs {
    /// Comma-separated host:port list of the cluster's nodes: any of them will do, the next
    /// one is tried when one fails.
    #[arg(long, value_name = "HOST:PORT,...", value_parser = parse_servers)]
    servers: Servers,
    /// Most slots per CLUSTER MOVESLOTS call.
    #[arg(
        long,
        value_name = "SLOTS",
        default_value_t = minikv::client::rebalance::DEFAULT_BATCH,
        value_parser = whole::<usize>(1, u64::from(minikv::client::router::SLOTS)),
        allow_negative_numbers = true
    )]
    batch: usize,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// How the client commands reach password-protected or TLS nodes.
#[derive(clap::Args)]
struct ConnectArgs {
    /// Password of password-protected nodes (sent with AUTH on every new connection).
    #[arg(long, env = "MINIKV_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Connect to the nodes with TLS (needs --tls-ca).
    #[arg(long, requires = "tls_ca")]
    tls: bool,
    /// PEM CA certificates that sign the nodes' certificates.
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_ca: Option<PathBuf>,
    /// PEM client certificate, for nodes that require one (needs --tls-key).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    tls_key: Option<PathBuf>,
}

impl ConnectArgs {
    /// The password (an empty one means none, as in Redis) and the TLS settings.
    fn settings(
        self,
    ) -> anyhow::Result<(
        Option<String>,
        Option<std::sync::Arc<minikv::tls::TlsClientConfig>>,
    )> {
        let tls = match (self.tls, self.tls_ca) {
            (true, Some(ca)) => Some(
                minikv::tls::client_config(&minikv::tls::ClientTls {
                    ca,
                    cert: self.tls_cert,
                    key: self.tls_key,
                })
                .context("setting up TLS")?,
            ),
            _ => None,
        };
        Ok((self.password.filter(|p| !p.is_empty()), tls))
    }
}

#[derive(clap::Args)]
struct ClusterTiming {
    /// Milliseconds without the leader's heartbeat before a follower calls an election
    /// (Redis's cluster-node-timeout; elections start between this and twice this).
    #[arg(
        long,
        value_name = "MS",
        default_value = "250",
        value_parser = whole::<u64>(20, 60_000),
        allow_negative_numbers = true
    )]
    cluster_node_timeout: u64,
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Address to bind: 127.0.0.1 for this machine only, 0.0.0.0 to serve others.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Seconds between snapshots (written only when something changed).
    #[arg(long, default_value = "10", value_parser = seconds, allow_negative_numbers = true)]
    save_interval: Duration,
    /// Seconds between sweeps of expired keys.
    #[arg(long, default_value = "5", value_parser = seconds, allow_negative_numbers = true)]
    cleanup_interval: Duration,
    /// Number of databases, 1 to 1024 (SELECT 0..N-1).
    #[arg(
        long,
        default_value = "16",
        value_parser = whole::<usize>(1, MAX_DATABASES),
        allow_negative_numbers = true
    )]
    databases: usize,
    /// Maximum simultaneous client connections.
    #[arg(
        long,
        default_value = "10000",
        value_parser = whole::<usize>(1, u64::from(u32::MAX)),
        allow_negative_numbers = true
    )]
    maxclients: usize,
    /// Password clients must send with AUTH before anything else (Redis's requirepass).
    /// Prefer the environment variable: a flag is visible to every user in `ps`.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "MINIKV_REQUIREPASS",
        hide_env_values = true
    )]
    requirepass: Option<String>,
    /// yes: without a password, refuse clients that are not on this machine's loopback.
    #[arg(long, default_value = "yes", value_parser = yes_no, action = clap::ArgAction::Set)]
    protected_mode: bool,
    /// Close a client connection idle this many seconds (0: never).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "0",
        value_parser = whole::<u64>(0, MAX_SECONDS),
        allow_negative_numbers = true
    )]
    timeout: u64,
    /// Worker threads serving connections, 1 to 1024 (default: one per CPU core).
    #[arg(
        long,
        value_parser = whole::<usize>(1, MAX_THREADS),
        allow_negative_numbers = true
    )]
    threads: Option<usize>,
    /// Keep an append-only log of every write (kv_store_server{ID}.aof), replayed on start.
    #[arg(long, default_value = "no", value_parser = yes_no, action = clap::ArgAction::Set)]
    appendonly: bool,
    /// When the log is fsynced: always (before each reply), everysec, or no (the OS decides).
    #[arg(long, default_value = "everysec")]
    appendfsync: minikv::aof::FsyncPolicy,
    /// Refuse writes (MISCONF) while the last snapshot failed, until a save succeeds again.
    #[arg(long, default_value = "no", value_parser = yes_no, action = clap::ArgAction::Set)]
    stop_writes_on_bgsave_error: bool,
    /// PEM certificate chain: serve TLS only on the port (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate signed by one of them.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
}

/// `--retry-backoff`: the CLI's names for [`minikv::client::Backoff`].
#[derive(Clone, Copy, clap::ValueEnum)]
enum RetryBackoff {
    Fixed,
    Exponential,
}

/// `--servers`: the cluster's nodes in order, each `host:port`; never empty.
#[derive(Clone, Debug)]
struct Servers(Vec<String>);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Not eprintln!, which panics when standard error is a closed pipe.
            let _ = writeln!(std::io::stderr(), "minikv: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Server {
            id,
            port,
            node,
            data_dir,
            cluster,
            join,
            replicas,
            bus_port,
            timing,
        } => {
            init_logging();
            if bus_port.is_some() && cluster.is_none() && join.is_none() {
                anyhow::bail!("--bus-port needs --cluster or --join");
            }
            create_data_dir(&data_dir)?;
            let mut config = node_config(&node, id, port, data_dir);
            if let Some(target) = join {
                config.join = Some(minikv::cluster::operate::JoinSpec {
                    target,
                    bus_port,
                    node_timeout: Duration::from_millis(timing.cluster_node_timeout),
                });
            }
            if let Some(list) = cluster {
                let mut spec =
                    minikv::cluster::ClusterSpec::parse(&list, id, port, replicas, bus_port)?;
                spec.node_timeout = Duration::from_millis(timing.cluster_node_timeout);
                config.cluster = Some(spec);
            }
            launch::run(vec![config], node.threads, |_| {})?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster {
            nodes,
            base_port,
            node,
            data_dir,
            replicas,
            timing,
        } => {
            init_logging();
            // Node i listens on base_port + i - 1 (i from 1, so no underflow).
            let configs = (1..=nodes)
                .map(|i| {
                    let port = base_port.checked_add(i - 1)?;
                    Some(node_config(&node, u64::from(i), port, data_dir.clone()))
                })
                .collect::<Option<Vec<_>>>()
                .with_context(|| {
                    format!(
                        "{nodes} nodes from --base-port {base_port} would need ports past \
                         65535: lower --base-port or --nodes"
                    )
                })?;
            let mut configs = configs;
            if replicas.is_some() {
                let list = configs
                    .iter()
                    .map(|c| format!("{}:{}", c.host, c.port))
                    .collect::<Vec<_>>()
                    .join(",");
                for config in &mut configs {
                    let mut spec = minikv::cluster::ClusterSpec::parse(
                        &list,
                        config.id,
                        config.port,
                        replicas,
                        None,
                    )?;
                    spec.node_timeout = Duration::from_millis(timing.cluster_node_timeout);
                    config.cluster = Some(spec);
                }
            }
            // What the ready line says of a replicated cluster: replicas and bus addresses.
            let replication = configs
                .first()
                .and_then(|c| c.cluster.as_ref())
                .map(|spec| Replication {
                    replicas: spec.replicas,
                    buses: spec.nodes.iter().map(|p| p.bus.clone()).collect(),
                });
            create_data_dir(&data_dir)?;
            launch::run(configs, node.threads, |addrs| {
                print_ready(addrs, replication.as_ref());
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client {
            servers,
            retries,
            retry_delay,
            retry_backoff,
            timeout,
            connect,
            command,
        } => {
            init_client_logging();
            let (password, tls) = connect.settings()?;
            let mut config = ClientConfig {
                servers: servers.0,
                password,
                tls,
                ..ClientConfig::default()
            };
            config.retry.retries = retries;
            config.retry.delay = retry_delay;
            config.retry.timeout = timeout;
            config.retry.backoff = match retry_backoff {
                RetryBackoff::Fixed => minikv::client::Backoff::Fixed,
                RetryBackoff::Exponential => minikv::client::Backoff::exponential(),
            };
            client(config, command)
        }
        Command::Rebalance { slots } => move_slots(slots, None),
        Command::RemoveNode { id, slots } => move_slots(slots, Some(id)),
    }
}

/// Runs a rebalance, or the removal of node `remove`, printing its progress (a bar when
/// standard error is a terminal, else one line per call on standard output).
fn move_slots(args: SlotArgs, remove: Option<u64>) -> anyhow::Result<ExitCode> {
    use minikv::client::rebalance::{self, Options, Printer};
    init_client_logging();
    let (password, tls) = args.connect.settings()?;
    let options = Options {
        batch: args.batch,
        password,
        tls,
        ..Options::new(args.servers.0)
    };
    let bar = std::io::stderr().is_terminal();
    let mut printer = Printer::new(std::io::stdout(), std::io::stderr(), bar);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match remove {
            Some(id) => rebalance::remove_node(&options, id, &mut printer)
                .await
                .with_context(|| format!("removing node {id}")),
            None => rebalance::rebalance(&options, &mut printer)
                .await
                .context("rebalancing"),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn node_config(args: &NodeArgs, id: u64, port: u16, data_dir: PathBuf) -> NodeConfig {
    NodeConfig {
        id,
        host: args.host.clone(),
        port,
        data_dir,
        save_interval: args.save_interval,
        cleanup_interval: args.cleanup_interval,
        databases: args.databases,
        max_clients: args.maxclients,
        // As in Redis, an empty password means none.
        requirepass: args.requirepass.clone().filter(|p| !p.is_empty()),
        protected_mode: args.protected_mode,
        idle_timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
        appendonly: args.appendonly,
        appendfsync: args.appendfsync,
        stop_writes_on_bgsave_error: args.stop_writes_on_bgsave_error,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(minikv::tls::TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_ca.clone(),
            }),
            _ => None,
        },
        ..NodeConfig::default()
    }
}

/// Creates the data directory (and its parents) unless it exists.
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AlreadyExists => "a file with that name exists".to_string(),
            std::io::ErrorKind::NotADirectory => {
                "a part of that path is a file, not a directory".to_string()
            }
            _ => minikv::error::describe_io(&e),
        };
        anyhow::anyhow!("cannot create data directory '{}': {why}", dir.display())
    })
}

/// What `minikv cluster --replicas R` tells about its replication in the ready line.
struct Replication {
    /// Nodes replicating each shard.
    replicas: usize,
    /// Each node's cluster bus address, in id order.
    buses: Vec<String>,
}

/// Tells the person who typed `minikv cluster` that every node listens and how to reach them:
/// one line on standard output (not the log, which they may have filtered), e.g.
/// `ready: try 'minikv client' or 'redis-cli -p 7001'; Ctrl+C stops and saves`; with
/// `--replicas`, the line says so first, with the replicas per shard and each node's bus.
fn print_ready(addrs: &[SocketAddr], replication: Option<&Replication>) {
    let mut out = std::io::stdout().lock();
    // A closed standard output costs the hint, not the nodes.
    let _ = writeln!(out, "{}", ready_line(addrs, replication));
    let _ = out.flush();
}

/// The line [`print_ready`] prints: for a replicated cluster, that it is one, its replicas
/// per shard and where each node's cluster bus listens; then the client and redis-cli
/// commands that reach these nodes (`minikv client` alone when they are its default servers).
fn ready_line(addrs: &[SocketAddr], replication: Option<&Replication>) -> String {
    // What a client on this machine dials: a wildcard address listens on loopback too.
    let reachable: Vec<SocketAddr> = addrs
        .iter()
        .map(|a| match a.ip() {
            ip if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port()),
            _ => *a,
        })
        .collect();
    let on_loopback = |a: &SocketAddr| a.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST);
    let default_ports: Vec<u16> = ClientConfig::default()
        .servers
        .iter()
        .filter_map(|s| s.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        .collect();
    let ports: Vec<u16> = reachable.iter().map(SocketAddr::port).collect();
    let client = if ports == default_ports && reachable.iter().all(on_loopback) {
        "minikv client".to_string()
    } else {
        let list: Vec<String> = reachable.iter().map(SocketAddr::to_string).collect();
        format!("minikv client --servers {}", list.join(","))
    };
    let redis_cli = match reachable.first() {
        Some(first) if on_loopback(first) => format!("redis-cli -p {}", first.port()),
        Some(first) => format!("redis-cli -h {} -p {}", first.ip(), first.port()),
        None => "redis-cli".to_string(),
    };
    let replicated = match replication {
        Some(r) => {
            let buses: Vec<String> = r
                .buses
                .iter()
                .enumerate()
                .map(|(i, bus)| format!("node {} {bus}", i + 1))
                .collect();
            format!(
                "replicated cluster (Raft), {} {} per shard, cluster bus on {}; ",
                r.replicas,
                if r.replicas == 1 {
                    "replica"
                } else {
                    "replicas"
                },
                buses.join(", ")
            )
        }
        None => String::new(),
    };
    format!("ready: {replicated}try '{client}' or '{redis_cli}'; Ctrl+C stops and saves")
}

/// Logs to standard error, never failing: see [`LossyStderr`].
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Standard error for the logger, dropping what cannot be written. With `minikv cluster 2>&1
/// | tee log`, Ctrl+C stops `tee` too, so the shutdown lines meet a closed pipe; an error
/// from the writer would make tracing-subscriber report it with `eprintln!`, which panics,
/// and the panic would come between the signal and the nodes' final snapshots. A lost log
/// line is the lesser harm.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Ignored on purpose: see the type's doc.
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// The client logs only when `RUST_LOG` asks (its standard output is the spec's text):
/// `RUST_LOG=debug` shows the cause of every failed attempt. rustyline's own debug lines (a few
/// per key pressed) stay off unless `RUST_LOG` names it.
fn init_client_logging() {
    let Some(spec) = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
    else {
        return;
    };
    let spec = if spec.contains("rustyline") {
        spec
    } else {
        format!("{spec},rustyline=warn")
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(spec))
        .with_writer(|| LossyStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Runs the one command given on the command line, or else the REPL over standard input.
fn client(config: ClientConfig, command: Vec<String>) -> anyhow::Result<ExitCode> {
    if command.is_empty() {
        terminal::run(config)?;
        return Ok(ExitCode::SUCCESS);
    }
    Ok(match terminal::run_command(config, &command)? {
        Outcome::Failed => ExitCode::FAILURE,
        Outcome::Ok | Outcome::Exit => ExitCode::SUCCESS,
    })
}

// Value parsers: each flag's check and message in one place. The numeric flags also allow
// negative numbers, so that `-1` reaches these (and their range message) instead of making
// clap read it as a flag.

/// A parser for a whole number from `min` to `max`.
fn whole<T>(min: u64, max: u64) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: TryFrom<u64>,
{
    move |text| {
        text.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                if max == u64::MAX {
                    format!("expected a whole number, {min} or more")
                } else {
                    format!("expected a whole number from {min} to {max}")
                }
            })
    }
}

/// Parses a number of seconds, fractions allowed: more than 0 and at most [`MAX_SECONDS`].
fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        // NaN fails both comparisons.
        .filter(|s| *s > 0.0 && *s <= MAX_SECONDS as f64)
        .map(Duration::from_secs_f64)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a number of seconds above 0, at most {MAX_SECONDS}"))
}

/// Parses `--servers`: a comma-separated, non-empty list of `host:port`.
fn parse_servers(list: &str) -> Result<Servers, String> {
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    if entries.iter().all(|e| e.is_empty()) {
        return Err("expected a comma-separated list of host:port, e.g. localhost:7001".into());
    }
    for (n, entry) in entries.iter().enumerate() {
        if entry.is_empty() {
            return Err(format!("entry {} is empty; expected host:port", n + 1));
        }
        if !is_host_port(entry) {
            return Err(format!(
                "'{entry}' is not host:port (a name or address, a colon, a port from 1 to 65535)"
            ));
        }
    }
    Ok(Servers(entries.into_iter().map(String::from).collect()))
}

/// Whether `entry` is `host:port`: a host without spaces (an IPv6 address in brackets) and a
/// port from 1 to 65535.
fn is_host_port(entry: &str) -> bool {
    let Some((host, port)) = entry.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty() && !host.contains([':', '[', ']']) && !host.contains(char::is_whitespace)
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// Parses Redis-style `yes`/`no` option values.
fn yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(format!("expected yes or no, got {other:?}")),
    }
}

/// Most nodes `minikv cluster` runs: each allocates its databases up front and holds a port.
const MAX_NODES: u64 = 1024;

/// Most databases a node has: each is 256 shards allocated up front (tens of KB), so a typo
/// like `--databases 10000000` would exhaust memory instead of starting.
const MAX_DATABASES: u64 = 1024;

/// Most worker threads: far beyond any core count, below where spawning them fails.
const MAX_THREADS: u64 = 1024;

/// Longest interval or timeout a flag accepts (about 31 years): past it, deadlines computed
/// from the monotonic clock could overflow.
const MAX_SECONDS: u64 = 1_000_000_000;

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
