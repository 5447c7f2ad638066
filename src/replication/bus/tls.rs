//! TLS on the cluster bus, like Redis's `tls-cluster yes`: [`BusTls`] holds the server side
//! (what `run` wraps each accepted connection with) and the client side (what `BusNetwork` and
//! `BusCaller` wrap each connection they open with). Both sides use the node's certificate and
//! key, and both verify the other's certificate against one CA, so only nodes holding a
//! certificate of the cluster's CA can join the bus (mutual TLS). It owns configuration and the
//! handshake; framing is `wire`'s.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::wire::Io;
use super::BusError;
use crate::tls::{self, ClientTls, TlsClientConfig, TlsConfig, TlsError, TlsServerConfig};

/// The cluster bus's TLS: cheap to clone (two `Arc`s), shared by the bus's listener and every
/// client of the node.
#[derive(Clone)]
pub struct BusTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for BusTls {
    // Configurations hold keys: show nothing of them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusTls")
    }
}

impl BusTls {
    /// The bus TLS of a node with `node`'s certificate and key, trusting peers whose
    /// certificates `ca` signed, both ways: the bus requires a client certificate of every
    /// connection, and the node's own certificate is the one it presents when it connects
    /// (as Redis uses `tls-cert-file` for cluster bus connections both ways). The node's
    /// certificate must therefore be valid for client authentication too (no extended key
    /// usage, or both `serverAuth` and `clientAuth`), and name the address peers dial: an IP
    /// address as an IP SAN, a host name as a DNS SAN. `node.client_ca` is not used; a node
    /// would pass it as `ca`.
    ///
    /// # Errors
    /// A file that cannot be read or holds no usable certificate or key, or a key that does not
    /// match its certificate; the message names the file.
    pub fn new(node: &TlsConfig, ca: &Path) -> Result<BusTls, TlsError> {
        let server = tls::server_config(&TlsConfig {
            cert: node.cert.clone(),
            key: node.key.clone(),
            client_ca: Some(ca.to_path_buf()),
        })?;
        let client = tls::client_config(&ClientTls {
            ca: ca.to_path_buf(),
            cert: Some(node.cert.clone()),
            key: Some(node.key.clone()),
        })?;
        Ok(BusTls::from_configs(server, client))
    }

    /// The bus TLS of ready configurations: `server` for accepted connections, `client` for
    /// the connections the node opens.
    pub fn from_configs(server: Arc<TlsServerConfig>, client: Arc<TlsClientConfig>) -> BusTls {
        BusTls {
            acceptor: TlsAcceptor::from(server),
            connector: TlsConnector::from(client),
        }
    }

    /// The server side of the handshake on an accepted connection.
    pub(super) async fn accept(&self, socket: TcpStream) -> Result<Box<dyn Io>, BusError> {
        let stream = self.acceptor.accept(socket).await?;
        Ok(Box::new(stream))
    }

    /// The client side of the handshake on a connection to `addr` (`ip:port` or `host:port`):
    /// the peer's certificate must name that IP address or host.
    pub(super) async fn connect(
        &self,
        addr: &str,
        socket: TcpStream,
    ) -> Result<Box<dyn Io>, BusError> {
        let name = tls::server_name(addr)?;
        let stream = self.connector.connect(name, socket).await?;
        Ok(Box::new(stream))
    }
}
