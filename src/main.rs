//! The `minikv` command: `server`, `client` (the REPL) and `cluster`. Parses arguments, sets up
//! logging, and calls the library: [`minikv::launch`] serves nodes, [`minikv::repl::terminal`]
//! runs the client.

use std::io::IsTerminal;
use std::path::PathBuf;
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
        /// Node id (1-based; names the snapshot file kv_store_server{ID}.json).
        id: u64,
        /// TCP port serving both RESP and JSON.
        port: u16,
        #[command(flatten)]
        node: NodeArgs,
        /// Directory of the snapshot file.
        #[arg(long, default_value = ".")]
        data_dir: PathBuf,
    },
    /// The interactive client; with a command after the options, run just that command.
    Client {
        /// Comma-separated host:port list; the first is server 1.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "localhost:7001,localhost:7002,localhost:7003"
        )]
        servers: Vec<String>,
        /// Retries after a failed attempt.
        #[arg(long, default_value_t = 3)]
        retries: u32,
        /// Seconds between retries (the base of the exponential backoff).
        #[arg(long, default_value_t = 0.5)]
        retry_delay: f64,
        /// fixed: the spec's constant delay; exponential: doubling from --retry-delay up to
        /// 5 s, each pause drawn at random below that (full jitter).
        #[arg(long, value_enum, default_value = "fixed")]
        retry_backoff: RetryBackoff,
        /// Seconds before one attempt times out.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
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
        /// A command to run instead of the interactive loop, e.g. `get user:1`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run N nodes in this process on consecutive ports: the spec's 3-node cluster.
    Cluster {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// Port of node 1; node i listens on base-port + i - 1.
        #[arg(long, default_value_t = 7001)]
        base_port: u16,
        #[command(flatten)]
        node: NodeArgs,
        /// Directory of the snapshot files.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Address to bind: 127.0.0.1 for this machine only, 0.0.0.0 to serve others.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Seconds between snapshots (written only when something changed).
    #[arg(long, default_value_t = 10.0)]
    save_interval: f64,
    /// Seconds between sweeps of expired keys.
    #[arg(long, default_value_t = 5.0)]
    cleanup_interval: f64,
    /// Number of databases (SELECT 0..N-1).
    #[arg(long, default_value_t = 16)]
    databases: usize,
    /// Maximum simultaneous client connections.
    #[arg(long, default_value_t = 10_000)]
    maxclients: usize,
    /// Password clients must send with AUTH before anything else (Redis's requirepass).
    #[arg(long, value_name = "PASSWORD")]
    requirepass: Option<String>,
    /// yes: without a password, refuse clients that are not on this machine's loopback.
    #[arg(long, default_value = "yes", value_parser = yes_no, action = clap::ArgAction::Set)]
    protected_mode: bool,
    /// Close a client connection idle this many seconds (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    timeout: u64,
    /// Worker threads serving connections (default: one per CPU core).
    #[arg(long)]
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

/// Parses Redis-style `yes`/`no` option values.
fn yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(format!("expected yes or no, got {other:?}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("minikv: {e:#}");
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
        } => {
            init_logging();
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating data directory {}", data_dir.display()))?;
            let config = node_config(&node, id, port, data_dir)?;
            launch::run(vec![config], node.threads)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster {
            nodes,
            base_port,
            node,
            data_dir,
        } => {
            init_logging();
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating data directory {}", data_dir.display()))?;
            let configs = (1..=nodes)
                .map(|i| {
                    let port = base_port
                        .checked_add(i - 1)
                        .context("ports past 65535: lower --base-port or --nodes")?;
                    node_config(&node, u64::from(i), port, data_dir.clone())
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            launch::run(configs, node.threads)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client {
            servers,
            retries,
            retry_delay,
            retry_backoff,
            timeout,
            password,
            tls,
            tls_ca,
            tls_cert,
            tls_key,
            command,
        } => {
            init_client_logging();
            let tls = match (tls, tls_ca) {
                (true, Some(ca)) => Some(
                    minikv::tls::client_config(&minikv::tls::ClientTls {
                        ca,
                        cert: tls_cert,
                        key: tls_key,
                    })
                    .context("setting up TLS")?,
                ),
                _ => None,
            };
            let mut config = ClientConfig {
                servers,
                password: password.filter(|p| !p.is_empty()),
                tls,
                ..ClientConfig::default()
            };
            config.retry.retries = retries;
            config.retry.delay = seconds(retry_delay, "--retry-delay")?;
            config.retry.timeout = seconds(timeout, "--timeout")?;
            config.retry.backoff = match retry_backoff {
                RetryBackoff::Fixed => minikv::client::Backoff::Fixed,
                RetryBackoff::Exponential => minikv::client::Backoff::exponential(),
            };
            client(config, command)
        }
    }
}

fn node_config(
    args: &NodeArgs,
    id: u64,
    port: u16,
    data_dir: PathBuf,
) -> anyhow::Result<NodeConfig> {
    Ok(NodeConfig {
        id,
        host: args.host.clone(),
        port,
        data_dir,
        save_interval: seconds(args.save_interval, "--save-interval")?,
        cleanup_interval: seconds(args.cleanup_interval, "--cleanup-interval")?,
        databases: args.databases.max(1),
        max_clients: args.maxclients.max(1),
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
    })
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds, got {value}"))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
        .with_writer(std::io::stderr)
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
