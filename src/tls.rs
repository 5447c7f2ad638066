//! Optional TLS (rustls, ring provider): loading PEM certificates and keys into a server-side
//! configuration for nodes and a client-side one for the cluster client and
//! the REPL. It owns only configuration; sockets are wrapped by `server::conn` and
//! `client::node`.
//!
//! As with Redis's `tls-port`, a node with TLS on speaks only TLS on its port. A client CA
//! (`--tls-ca` on a node) makes client certificates mandatory, like Redis's
//! `tls-auth-clients yes`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
pub use tokio_rustls::rustls::ClientConfig as TlsClientConfig;
pub use tokio_rustls::rustls::ServerConfig as TlsServerConfig;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A node's TLS settings (`--tls-cert`, `--tls-key`, `--tls-ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file with the node's certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the node's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM file of CAs trusted to sign client certificates; when set, clients must present
    /// one (Redis's `tls-auth-clients yes`).
    pub client_ca: Option<PathBuf>,
}

/// A client's TLS settings (`minikv client --tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM file of CAs trusted to sign node certificates.
    pub ca: PathBuf,
    /// PEM certificate chain presented to nodes that require client certificates.
    pub cert: Option<PathBuf>,
    /// Private key for `cert`.
    pub key: Option<PathBuf>,
}

/// A TLS setting could not be used: the message names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// Builds the server configuration a node wraps every accepted connection with
/// (`TlsAcceptor::from` it).
///
/// # Errors
/// A file that cannot be read or holds no usable certificate or key, or a key that does not
/// match the certificate; the message names the file.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certs(&config.cert)?;
    let key = key(&config.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS setup: {e}")))?;
    let builder = match &config.client_ca {
        Some(ca) => {
            let roots = Arc::new(roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError(format!(
            "{} / {}: {e}",
            config.cert.display(),
            config.key.display()
        ))
    })?;
    Ok(Arc::new(server))
}

/// Builds the client configuration the cluster client opens node connections with (put it in
/// `ClientConfig::tls`).
///
/// # Errors
/// As [`server_config`]; also a certificate given without its key or the reverse.
pub fn client_config(config: &ClientTls) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS setup: {e}")))?
        .with_root_certificates(roots(&config.ca)?);
    let client = match (&config.cert, &config.key) {
        (Some(cert), Some(key_path)) => builder
            .with_client_auth_cert(certs(cert)?, key(key_path)?)
            .map_err(|e| TlsError(format!("{} / {}: {e}", cert.display(), key_path.display())))?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsError(
                "a TLS client certificate needs its key and the key its certificate".into(),
            ))
        }
    };
    Ok(Arc::new(client))
}

/// The name a client checks the node's certificate against: the host part of `addr`
/// (`host:port` or `[v6]:port`); an IP address is checked against the certificate's IP SANs.
///
/// # Errors
/// A host that is neither a DNS name nor an IP address.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, TlsError> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| TlsError(format!("{addr}: not a TLS server name: {e}")))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            TlsError(format!(
                "{}: cannot read certificates: {}",
                path.display(),
                pem_words(&e)
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TlsError(format!(
            "{}: cannot read a private key: {}",
            path.display(),
            pem_words(&e)
        ))
    })
}

/// A PEM file's problem in words: an I/O error without Rust's `(os error N)` suffix.
fn pem_words(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => crate::error::describe_io(io),
        other => other.to_string(),
    }
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("{}: bad CA certificate: {e}", path.display())))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_the_host_part_of_the_address() {
        let ip = |s: &str| matches!(server_name(s), Ok(ServerName::IpAddress(_)));
        assert!(ip("127.0.0.1:7001"));
        assert!(ip("[::1]:7001"));
        assert_eq!(
            server_name("localhost:7001").ok(),
            ServerName::try_from("localhost").ok()
        );
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn missing_files_are_named_in_the_error() {
        let config = TlsConfig {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            client_ca: None,
        };
        let err = server_config(&config)
            .expect_err("missing file")
            .to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
