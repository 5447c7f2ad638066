//! The crate's error type: one variant per boundary, joined here.

use crate::aof::AofError;
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
    /// Serving a set of nodes could not start or stop cleanly.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The REPL could not read its input.
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    /// The listening address could not be bound (in use, or not a local address).
    #[error("cannot listen on {addr}: {cause}")]
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
