//! What can go wrong in a request through the cluster client, in words a REPL user reads.

use std::time::Duration;

/// A request through the cluster client failed. Each message is a plain sentence naming the
/// node's address: what a user reads in the REPL's `✗ ERROR` block.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node's host name could not be resolved (a typo in the server list, or no DNS), or
    /// the address is not `host:port`.
    #[error("{}", resolve_text(addr, cause))]
    Resolve {
        /// The node.
        addr: String,
        /// The resolver's error.
        cause: std::io::Error,
    },
    /// The node could not be reached or the connection broke (node down, wrong port).
    #[error("{}", io_text(addr, cause))]
    Io {
        /// The node.
        addr: String,
        /// The cause (in the message, not chained, so it prints once).
        cause: std::io::Error,
    },
    /// The node did not answer within the policy's timeout (connect, send and receive).
    #[error("timed out after {} s waiting for {addr}", after.as_secs_f64())]
    Timeout {
        /// The node.
        addr: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The TLS handshake failed: the node's certificate is not trusted or does not name the
    /// host, the node does not speak TLS, or it refused this client's certificate.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// The node.
        addr: String,
        /// Why, in plain words.
        reason: String,
    },
    /// The node refused the password sent with AUTH on a new connection. Not retried: a wrong
    /// password stays wrong.
    #[error("authentication failed at {addr}: {reply}")]
    Auth {
        /// The node.
        addr: String,
        /// The node's error reply, e.g. `WRONGPASS invalid username-password pair or user is
        /// disabled.`
        reply: String,
    },
    /// The node's reply could not be parsed (not a minikv or Redis node?).
    #[error("{0}")]
    Protocol(String),
    /// The node answered with an error reply; the text is the node's.
    #[error("{0}")]
    Server(String),
    /// A reply of an unexpected shape for the command.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// Every attempt failed; the last failure is kept. The message is the spec's line followed
    /// by the last failure: `Server 2 unavailable after 3 retries: connection refused by
    /// localhost:7002` (see [`unavailable`] for the spec's part alone).
    #[error("{}: {last}", unavailable(*server, *retries))]
    RetriesExhausted {
        /// The 1-based server number; for a keyed request, the key's shard number (the spec's
        /// `Server i`), whichever node led the shard.
        server: usize,
        /// Retries made after the first attempt.
        retries: u32,
        /// The last failure.
        last: Box<ClientError>,
    },
    /// A server number outside the configured list.
    #[error("no server {0}: servers are numbered from 1")]
    NoSuchServer(usize),
    /// A shard id the replicated cluster does not have (as last reported): it was removed,
    /// or joined since the client read the cluster's shards ([`super::ClusterClient::topology`]
    /// reads them again).
    #[error("no shard {0} in the cluster")]
    NoSuchShard(usize),
    /// The connection broke, or the time ran out, after a command that is not idempotent
    /// (INCR, APPEND...; see [`super::retry::is_idempotent`]) was sent: the node (or a leader that
    /// just failed) may or may not have run it, so it is not sent again.
    #[error("{cause}: the command may or may not have run, so it was not sent again")]
    OutcomeUnknown {
        /// The node.
        addr: String,
        /// What broke.
        cause: Box<ClientError>,
    },
}

/// The spec's line for a node that stayed unreachable: `Server 2 unavailable after 3 retries`,
/// `after 1 retry`, and `after 1 attempt` when retries are off.
pub fn unavailable(server: usize, retries: u32) -> String {
    match retries {
        0 => format!("Server {server} unavailable after 1 attempt"),
        1 => format!("Server {server} unavailable after 1 retry"),
        n => format!("Server {server} unavailable after {n} retries"),
    }
}

/// [`ClientError::Resolve`]'s message.
fn resolve_text(addr: &str, cause: &std::io::Error) -> String {
    if cause.kind() == std::io::ErrorKind::InvalidInput {
        return format!("{addr} is not a host:port address");
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    format!("host not found: {host}")
}

/// [`ClientError::Io`]'s message: the common causes in plain words, anything else with the
/// operating system's wording.
fn io_text(addr: &str, cause: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match cause.kind() {
        K::ConnectionRefused => format!("connection refused by {addr}"),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            format!("{addr} closed the connection")
        }
        K::TimedOut => format!("connecting to {addr} timed out"),
        K::HostUnreachable | K::NetworkUnreachable => format!("{addr} is unreachable"),
        _ => format!("cannot reach {addr}: {cause}"),
    }
}
