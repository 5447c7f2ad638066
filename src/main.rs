//! The `minikv` command: `server`, `client` (the REPL), `cluster`, the operator commands
//! `rebalance` and `remove-node`, and `dashboard`. Parses arguments, sets up logging, and calls
//! the library: [`minikv::launch`] serves nodes, [`minikv::repl::terminal`] runs the client,
//! [`minikv::client::rebalance`] moves slots, [`minikv::http::serve_dashboard`] serves the
//! dashboard of remote nodes.
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

/// Counts every allocation for the memory budget (`minikv::memory::alloc`), glibc underneath.
#[global_allocator]
static ALLOCATOR: minikv::memory::alloc::Counting = minikv::memory::alloc::Counting;

#[path = "main_args.rs"]
mod args;
use args::*;
#[path = "main_config.rs"]
mod config_file;

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
    #[command(args_override_self = true)]
    Server {
        /// Node id, 1 or more (names the snapshot file kv_store_server{ID}.json).
        #[arg(value_parser = whole::<u64>(1, u64::MAX), allow_negative_numbers = true)]
        id: u64,
        /// TCP port serving both RESP and JSON (0: any free port, logged at start); may come
        /// from the --config file's `port` instead.
        #[arg(value_parser = whole::<u16>(0, 65535), allow_negative_numbers = true)]
        port: Option<u16>,
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
        /// Serve Prometheus metrics, /healthz and the dashboard on this HTTP port (0: any free
        /// port, logged at start). Off by default.
        #[arg(long, value_name = "PORT", value_parser = whole::<u16>(0, 65535), allow_negative_numbers = true)]
        http_port: Option<u16>,
        #[command(flatten)]
        http: HttpArgs,
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
    #[command(args_override_self = true)]
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
        /// HTTP port of the metrics and the dashboard of every node (0: any free port).
        /// [default: 8080; if it is taken, the cluster starts without it]
        #[arg(long, value_name = "PORT", value_parser = whole::<u16>(0, 65535), allow_negative_numbers = true)]
        http_port: Option<u16>,
        /// Serve no HTTP port.
        #[arg(long, conflicts_with = "http_port")]
        no_http: bool,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Serve the live dashboard of any set of nodes (minikv or Redis) reached over RESP:
    /// `minikv dashboard --servers localhost:7001,localhost:7002`.
    Dashboard {
        /// Comma-separated host:port list of the nodes to show.
        #[arg(long, value_name = "HOST:PORT,...", value_parser = parse_servers)]
        servers: Servers,
        /// HTTP port of the dashboard (0: any free port).
        #[arg(
            long,
            value_name = "PORT",
            default_value_t = DEFAULT_HTTP_PORT,
            value_parser = whole::<u16>(0, 65535),
            allow_negative_numbers = true
        )]
        http_port: u16,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        connect: ConnectArgs,
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

fn main() -> ExitCode {
    let expanded = config_file::expand(std::env::args_os().collect());
    let result = expanded.and_then(|(argv, file)| run(Cli::parse_from(argv), file));
    match result {
        Ok(code) => code,
        Err(e) => {
            // Not eprintln!, which panics when standard error is a closed pipe.
            let _ = writeln!(std::io::stderr(), "minikv: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, file: config_file::FromFile) -> anyhow::Result<ExitCode> {
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
            http_port,
            http,
        } => {
            init_logging();
            if bus_port.is_some() && cluster.is_none() && join.is_none() {
                anyhow::bail!("--bus-port needs --cluster or --join");
            }
            let port = match (port, &file.port) {
                (Some(port), _) => port,
                (None, Some((port, _))) => *port,
                (None, None) => anyhow::bail!(
                    "no port: give it after the id (minikv server ID PORT) or as a `port` line \
                     of the --config file"
                ),
            };
            create_data_dir(&data_dir)?;
            let mut config = node_config(&node, &file, id, port, data_dir);
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
            let servers = config
                .cluster
                .as_ref()
                .map(|spec| spec.nodes.iter().map(|p| p.client.clone()).collect())
                .unwrap_or_default();
            let http = http_port.map(|p| http.launch(p, true, config.requirepass.clone(), servers));
            launch::run(vec![config], http, node.threads, |_, _| {})?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster {
            nodes,
            base_port,
            node,
            data_dir,
            replicas,
            timing,
            http_port,
            no_http,
            http,
        } => {
            init_logging();
            // Node i listens on base_port + i - 1 (i from 1, so no underflow).
            let configs = (1..=nodes)
                .map(|i| {
                    let port = base_port.checked_add(i - 1)?;
                    Some(node_config(
                        &node,
                        &file,
                        u64::from(i),
                        port,
                        data_dir.clone(),
                    ))
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
            let password = configs.first().and_then(|c| c.requirepass.clone());
            let http = (!no_http).then(|| {
                let port = http_port.unwrap_or(DEFAULT_HTTP_PORT);
                http.launch(port, http_port.is_some(), password, Vec::new())
            });
            launch::run(configs, http, node.threads, |addrs, http| {
                print_ready(addrs, replication.as_ref(), http);
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
        Command::Dashboard {
            servers,
            http_port,
            http,
            connect,
        } => dashboard(servers, http_port, http, connect),
        Command::Rebalance { slots } => move_slots(slots, None),
        Command::RemoveNode { id, slots } => move_slots(slots, Some(id)),
    }
}

/// Serves the dashboard of `servers` until Ctrl+C, printing its URL once it listens.
fn dashboard(
    servers: Servers,
    port: u16,
    http: HttpArgs,
    connect: ConnectArgs,
) -> anyhow::Result<ExitCode> {
    init_logging();
    let (password, tls) = connect.settings()?;
    let count = servers.0.len();
    let config = http.launch(port, true, password, servers.0).config;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(minikv::http::serve_dashboard(config, tls, |addr| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "dashboard: http://{}/ ({count} {}); Ctrl+C stops",
                launch::reachable(addr),
                if count == 1 { "node" } else { "nodes" }
            );
            let _ = out.flush();
        }))
        .context("serving the dashboard")?;
    Ok(ExitCode::SUCCESS)
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

fn node_config(
    args: &NodeArgs,
    file: &config_file::FromFile,
    id: u64,
    port: u16,
    data_dir: PathBuf,
) -> NodeConfig {
    // `--save` (Redis's rule) is a run-time parameter: set at start, before the file's others.
    let save = args.save.iter().map(|rule| minikv::config::StartParam {
        name: "save".into(),
        value: rule.clone(),
        origin: "--save".into(),
    });
    let latency = args
        .latency_monitor_threshold
        .map(|ms| minikv::config::StartParam {
            name: "latency-monitor-threshold".into(),
            value: ms.to_string(),
            origin: "--latency-monitor-threshold".into(),
        });
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
        config_file: file.path.clone(),
        // After the file's parameters: the flag wins over the file's line.
        params: save
            .chain(file.params.iter().cloned())
            .chain(latency)
            .chain(memory_params(args))
            .collect(),
        ..NodeConfig::default()
    }
}

/// `--maxmemory` and its siblings, as run-time parameters set at start.
fn memory_params(args: &NodeArgs) -> Vec<minikv::config::StartParam> {
    [
        ("maxmemory", &args.maxmemory),
        ("maxmemory-policy", &args.maxmemory_policy),
        ("maxmemory-samples", &args.maxmemory_samples),
        ("lfu-log-factor", &args.lfu_log_factor),
        ("lfu-decay-time", &args.lfu_decay_time),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        Some(minikv::config::StartParam {
            name: name.into(),
            value: value.clone()?,
            origin: format!("--{name}"),
        })
    })
    .collect()
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
fn print_ready(addrs: &[SocketAddr], replication: Option<&Replication>, http: Option<SocketAddr>) {
    let mut out = std::io::stdout().lock();
    // A closed standard output costs the hint, not the nodes.
    let _ = writeln!(out, "{}", ready_line(addrs, replication));
    if let Some(http) = http {
        let _ = writeln!(
            out,
            "dashboard: http://{}/ (metrics at /metrics)",
            launch::reachable(http)
        );
    }
    let _ = out.flush();
}

/// The line [`print_ready`] prints: for a replicated cluster, that it is one, its replicas
/// per shard and where each node's cluster bus listens; then the client and redis-cli
/// commands that reach these nodes (`minikv client` alone when they are its default servers).
fn ready_line(addrs: &[SocketAddr], replication: Option<&Replication>) -> String {
    // What a client on this machine dials: a wildcard address listens on loopback too.
    let reachable: Vec<SocketAddr> = addrs.iter().map(|a| launch::reachable(*a)).collect();
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

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
