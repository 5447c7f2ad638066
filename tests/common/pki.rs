//! A throwaway PKI made with rcgen in a temporary directory: a CA, and a node certificate it
//! signed for `127.0.0.1` (an IP SAN) and `localhost`, usable for server and client
//! authentication alike (no extended key usage), as the cluster bus needs.

use std::path::{Path, PathBuf};

use minikv::replication::bus::BusTls;
use minikv::tls::TlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// The files of one CA and one node certificate; removed on drop.
pub struct Pki {
    _dir: TempDir,
    /// PEM of the CA's certificate.
    pub ca: PathBuf,
    /// PEM of the node's certificate, signed by the CA.
    pub cert: PathBuf,
    /// PEM of the node's private key.
    pub key: PathBuf,
}

impl Pki {
    /// A CA named `ca_name` and a node certificate it signed.
    pub fn new(ca_name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");
        let key_pair = KeyPair::generate().expect("node key");
        let params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("node params");
        let signed = params.signed_by(&key_pair, &ca).expect("sign node");
        write(dir.path(), "node.pem", &signed.pem());
        write(dir.path(), "node.key", &key_pair.serialize_pem());
        write(dir.path(), "ca.pem", &ca.pem());
        Pki {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("node.pem"),
            key: dir.path().join("node.key"),
            _dir: dir,
        }
    }

    /// The node's TLS settings (no client CA).
    pub fn node(&self) -> TlsConfig {
        TlsConfig {
            cert: self.cert.clone(),
            key: self.key.clone(),
            client_ca: None,
        }
    }

    /// The cluster bus TLS of a node of this PKI.
    pub fn bus(&self) -> BusTls {
        BusTls::new(&self.node(), &self.ca).expect("bus TLS")
    }
}

fn write(dir: &Path, name: &str, contents: &str) {
    std::fs::write(dir.join(name), contents).expect("write PEM file");
}
