//! The crate's error type: one variant per boundary, joined here.

use crate::aof::AofError;
use crate::client::rebalance::RebalanceError;
use crate::client::ClientError;
use crate::launch::LaunchError;
use crate::persist::PersistError;
use crate::protocol::ProtocolError;
use crate::repl::terminal::TerminalError;

/// Any error the library returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A peer broke the wire protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Saving or loading a snapshot failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// Replaying or opening the append-only log failed.
    #[error(transparent)]
    Aof(#[from] AofError),
    /// A client request failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A rebalance or a node removal stopped.
    #[error(transparent)]
    Rebalance(#[from] RebalanceError),
    /// Serving a set of nodes could not start or stop cleanly.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The REPL could not read its input.
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    /// The listening address could not be bound (in use, or not a local address).
    #[error("cannot listen on {addr}: {}", describe_bind(cause))]
    Bind {
        /// The address.
        addr: String,
        /// The cause (in the message, not chained, so it prints once).
        cause: std::io::Error,
    },
    /// Another I/O failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A node could not start or stop cleanly.
    #[error("{0}")]
    Startup(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error in words for a message: the operating system's text without Rust's
/// ` (os error N)` suffix and with a lowercase first letter, e.g. `permission denied`.
pub fn describe_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Why an address could not be bound, with the likely cause of the common failures.
fn describe_bind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "the port is already in use (is another minikv or Redis running?)".to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "that address is not one of this machine's (try 127.0.0.1 or 0.0.0.0)".to_string()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)".to_string()
        }
        _ => describe_io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_io_drops_the_os_error_number() {
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(describe_io(&e), "permission denied");
        let custom = std::io::Error::other("Something odd (really)");
        assert_eq!(describe_io(&custom), "something odd (really)");
    }

    #[test]
    fn a_port_in_use_is_explained() {
        let e = Error::Bind {
            addr: "127.0.0.1:7001".into(),
            cause: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(
            e.to_string(),
            "cannot listen on 127.0.0.1:7001: the port is already in use (is another minikv or \
             Redis running?)"
        );
    }
}
