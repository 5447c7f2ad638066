//! The binary's flag groups shared by several subcommands, and the parsers of their values.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use minikv::launch;

/// The flags of `rebalance` and `remove-node`.
#[derive(clap::Args)]
pub(crate) struct SlotArgs {
    /// Comma-separated host:port list of the cluster's nodes: any of them will do, the next
    /// one is tried when one fails.
    #[arg(long, value_name = "HOST:PORT,...", value_parser = parse_servers)]
    pub(crate) servers: Servers,
    /// Most slots per CLUSTER MOVESLOTS call.
    #[arg(
        long,
        value_name = "SLOTS",
        default_value_t = minikv::client::rebalance::DEFAULT_BATCH,
        value_parser = whole::<usize>(1, u64::from(minikv::client::router::SLOTS)),
        allow_negative_numbers = true
    )]
    pub(crate) batch: usize,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// How the client commands reach password-protected or TLS nodes.
#[derive(clap::Args)]
pub(crate) struct ConnectArgs {
    /// Password of password-protected nodes (sent with AUTH on every new connection).
    #[arg(long, env = "MINIKV_PASSWORD", hide_env_values = true)]
    pub(crate) password: Option<String>,
    /// Connect to the nodes with TLS (needs --tls-ca).
    #[arg(long, requires = "tls_ca")]
    pub(crate) tls: bool,
    /// PEM CA certificates that sign the nodes' certificates.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// PEM client certificate, for nodes that require one (needs --tls-key).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    pub(crate) tls_key: Option<PathBuf>,
}

impl ConnectArgs {
    /// The password (an empty one means none, as in Redis) and the TLS settings.
    pub(crate) fn settings(
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

/// `minikv cluster`'s HTTP port when none is given.
pub(crate) const DEFAULT_HTTP_PORT: u16 = 8080;

/// Where the HTTP port listens and which names it answers to.
#[derive(clap::Args)]
pub(crate) struct HttpArgs {
    /// Address the HTTP port binds: 127.0.0.1 for this machine only.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub(crate) http_host: String,
    /// Host names (besides IP addresses and localhost) the HTTP port answers to, comma
    /// separated: any other name in a request's Host header is refused (DNS rebinding).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub(crate) http_allow_host: Vec<String>,
}

impl HttpArgs {
    /// The launch settings for `port`, showing `servers` on the dashboard (empty: the nodes
    /// of this process).
    pub(crate) fn launch(
        self,
        port: u16,
        required: bool,
        password: Option<String>,
        servers: Vec<String>,
    ) -> launch::HttpLaunch {
        launch::HttpLaunch {
            config: minikv::http::HttpConfig {
                host: self.http_host,
                port,
                password,
                allowed_hosts: self.http_allow_host,
                servers,
            },
            required,
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct ClusterTiming {
    /// Milliseconds without the leader's heartbeat before a follower calls an election
    /// (Redis's cluster-node-timeout; elections start between this and twice this).
    #[arg(
        long,
        value_name = "MS",
        default_value = "250",
        value_parser = whole::<u64>(20, 60_000),
        allow_negative_numbers = true
    )]
    pub(crate) cluster_node_timeout: u64,
}

#[derive(clap::Args)]
pub(crate) struct NodeArgs {
    /// A redis.conf-style file of directives (`port 7001`, `timeout 300`, `slowlog-max-len
    /// 256`, ...); flags given here override it. CONFIG REWRITE updates it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Address to bind: 127.0.0.1 for this machine only, 0.0.0.0 to serve others.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Seconds between snapshots (written only when something changed).
    #[arg(
        long,
        default_value = "10",
        value_parser = seconds,
        allow_negative_numbers = true,
        overrides_with = "save"
    )]
    pub(crate) save_interval: Duration,
    /// Redis's `save`: "<seconds> <changes> ..." snapshots every smallest <seconds> when
    /// something changed; "" never (only SAVE, BGSAVE and shutdown write). Overrides
    /// --save-interval (the later of the two wins).
    #[arg(
        long,
        value_name = "RULE",
        value_parser = save_rule,
        allow_hyphen_values = true,
        overrides_with = "save_interval"
    )]
    pub(crate) save: Option<String>,
    /// Seconds between sweeps of expired keys.
    #[arg(long, default_value = "5", value_parser = seconds, allow_negative_numbers = true)]
    pub(crate) cleanup_interval: Duration,
    /// Number of databases, 1 to 1024 (SELECT 0..N-1).
    #[arg(
        long,
        default_value = "16",
        value_parser = whole::<usize>(1, MAX_DATABASES),
        allow_negative_numbers = true
    )]
    pub(crate) databases: usize,
    /// Maximum simultaneous client connections.
    #[arg(
        long,
        default_value = "10000",
        value_parser = whole::<usize>(1, u64::from(u32::MAX)),
        allow_negative_numbers = true
    )]
    pub(crate) maxclients: usize,
    /// Password clients must send with AUTH before anything else (Redis's requirepass).
    /// Prefer the environment variable: a flag is visible to every user in `ps`.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "MINIKV_REQUIREPASS",
        hide_env_values = true
    )]
    pub(crate) requirepass: Option<String>,
    /// yes: without a password, refuse clients that are not on this machine's loopback.
    #[arg(long, default_value = "yes", value_parser = yes_no, action = clap::ArgAction::Set)]
    pub(crate) protected_mode: bool,
    /// Close a client connection idle this many seconds (0: never).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "0",
        value_parser = whole::<u64>(0, MAX_SECONDS),
        allow_negative_numbers = true
    )]
    pub(crate) timeout: u64,
    /// Event loops serving connections, 1 to 1024 (default: one per CPU core less one, at least 1).
    #[arg(
        long,
        value_parser = whole::<usize>(1, MAX_THREADS),
        allow_negative_numbers = true
    )]
    pub(crate) threads: Option<usize>,
    /// Keep an append-only log of every write (kv_store_server{ID}.aof), replayed on start.
    #[arg(long, default_value = "no", value_parser = yes_no, action = clap::ArgAction::Set)]
    pub(crate) appendonly: bool,
    /// When the log is fsynced: always (before each reply), everysec, or no (the OS decides).
    #[arg(long, default_value = "everysec")]
    pub(crate) appendfsync: minikv::aof::FsyncPolicy,
    /// Refuse writes (MISCONF) while the last snapshot failed, until a save succeeds again.
    #[arg(long, default_value = "no", value_parser = yes_no, action = clap::ArgAction::Set)]
    pub(crate) stop_writes_on_bgsave_error: bool,
    /// Record events (slow commands, expiry sweeps, snapshot copies, log writes) that take at
    /// least this many milliseconds, for LATENCY; 0 is off (CONFIG SET changes it).
    #[arg(
        long,
        value_name = "MS",
        value_parser = whole::<u64>(0, i64::MAX as u64),
        allow_negative_numbers = true
    )]
    pub(crate) latency_monitor_threshold: Option<u64>,
    /// Memory limit, as Redis's maxmemory: bytes, or with a unit (k=1000, kb=1024, m, mb, g,
    /// gb); 0: none. Past it, writes evict keys by --maxmemory-policy first.
    #[arg(long, value_name = "BYTES", value_parser = param("maxmemory"))]
    pub(crate) maxmemory: Option<String>,
    /// What goes at the memory limit: noeviction (writes are refused), allkeys-lru,
    /// allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu, volatile-random, volatile-ttl.
    #[arg(long, value_name = "POLICY", value_parser = param("maxmemory-policy"))]
    pub(crate) maxmemory_policy: Option<String>,
    /// Keys sampled per eviction round (Redis's maxmemory-samples, default 5).
    #[arg(long, value_name = "N", value_parser = param("maxmemory-samples"))]
    pub(crate) maxmemory_samples: Option<String>,
    /// LFU counter growth (Redis's lfu-log-factor, default 10).
    #[arg(long, value_name = "N", value_parser = param("lfu-log-factor"))]
    pub(crate) lfu_log_factor: Option<String>,
    /// Minutes per LFU counter decrement (Redis's lfu-decay-time, default 1).
    #[arg(long, value_name = "MINUTES", value_parser = param("lfu-decay-time"))]
    pub(crate) lfu_decay_time: Option<String>,
    /// PEM certificate chain: serve TLS only on the port (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate signed by one of them.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_ca: Option<PathBuf>,
}

/// `--retry-backoff`: the CLI's names for [`minikv::client::Backoff`].
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum RetryBackoff {
    Fixed,
    Exponential,
}

/// `--servers`: the cluster's nodes in order, each `host:port`; never empty.
#[derive(Clone, Debug)]
pub(crate) struct Servers(pub(crate) Vec<String>);

/// A parser for a whole number from `min` to `max`.
pub(crate) fn whole<T>(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
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
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        // NaN fails both comparisons.
        .filter(|s| *s > 0.0 && *s <= MAX_SECONDS as f64)
        .map(Duration::from_secs_f64)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a number of seconds above 0, at most {MAX_SECONDS}"))
}

/// Checks `--save`: Redis's `save` syntax.
pub(crate) fn save_rule(text: &str) -> Result<String, String> {
    minikv::cmd::config::check("save", text).map(|()| text.to_string())
}

/// A parser for a flag that is a run-time parameter: checked as CONFIG SET would.
pub(crate) fn param(
    name: &'static str,
) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync {
    move |text| minikv::cmd::config::check(name, text).map(|()| text.to_string())
}

/// Parses `--servers`: a comma-separated, non-empty list of `host:port`.
pub(crate) fn parse_servers(list: &str) -> Result<Servers, String> {
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
pub(crate) fn is_host_port(entry: &str) -> bool {
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
pub(crate) fn yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(format!("expected yes or no, got {other:?}")),
    }
}

/// Most nodes `minikv cluster` runs: each allocates its databases up front and holds a port.
pub(crate) const MAX_NODES: u64 = 1024;

/// Most databases a node has: each is 256 shards allocated up front (tens of KB), so a typo
/// like `--databases 10000000` would exhaust memory instead of starting.
pub(crate) const MAX_DATABASES: u64 = 1024;

/// Most worker threads: far beyond any core count, below where spawning them fails.
pub(crate) const MAX_THREADS: u64 = 1024;

/// Longest interval or timeout a flag accepts (about 31 years): past it, deadlines computed
/// from the monotonic clock could overflow.
pub(crate) const MAX_SECONDS: u64 = 1_000_000_000;
