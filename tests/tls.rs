//! TLS: a node started with a certificate speaks only TLS on its port; redis-cli `--tls`, the
//! cluster client and the REPL reach it; a plain client does not; mutual TLS with `--tls-ca`
//! refuses clients without a certificate; a certificate the client does not trust is explained
//! in plain words; a bad certificate path refuses to start.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use common::process::run_client;
use common::raw::{connect, send};
use common::{blocking, spawn_node, within};
use minikv::tls::{ClientTls, TlsConfig};
use minikv::{ClientConfig, ClusterClient};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn redis_cli_with_tls_sets_and_gets() {
    let pki = Pki::new();
    let node = spawn_node(|c| c.tls = Some(pki.server())).await;
    let port = node.port().to_string();
    let ca = pki.ca.to_str().expect("UTF-8 path").to_string();
    let out = blocking(move || {
        let cli = |args: &[&str]| {
            let out = Command::new("redis-cli")
                .args(["--tls", "--cacert", &ca, "-h", "127.0.0.1", "-p", &port])
                .args(args)
                .output()
                .expect("run redis-cli (apt redis-tools)");
            assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        [
            cli(&["PING"]),
            cli(&["SET", "greeting", "hello tls"]),
            cli(&["GET", "greeting"]),
        ]
    })
    .await;
    assert_eq!(out, ["PONG", "OK", "hello tls"]);
}

#[tokio::test]
async fn plain_tcp_client_gets_no_reply_from_a_tls_node() {
    let pki = Pki::new();
    let node = spawn_node(|c| c.tls = Some(pki.server())).await;
    let mut stream = connect(node.addr).await;
    send(&mut stream, b"*1\r\n$4\r\nPING\r\n").await;
    let mut received = Vec::new();
    // The node fails the handshake and closes: the read ends (EOF or reset), bounded.
    let _ = within("the node closes a plain connection", async {
        stream.read_to_end(&mut received).await
    })
    .await;
    assert!(
        !String::from_utf8_lossy(&received).contains("PONG"),
        "a plain client was answered: {received:?}"
    );
    // A plain cluster client fails too, without retries.
    let mut config = ClientConfig {
        servers: vec![node.host_port()],
        ..ClientConfig::default()
    };
    config.retry.retries = 0;
    let plain = ClusterClient::new(config);
    assert!(plain.set(b"k", b"v", None).await.is_err());
}

#[tokio::test]
async fn json_protocol_is_sniffed_after_the_handshake() {
    let pki = Pki::new();
    let node = spawn_node(|c| c.tls = Some(pki.server())).await;
    let connector = tokio_rustls::TlsConnector::from(pki.client(false));
    let name = minikv::tls::server_name(&node.host_port()).expect("server name");
    let tcp = connect(node.addr).await;
    let mut tls = within("TLS handshake", connector.connect(name, tcp))
        .await
        .expect("handshake");
    tls.write_all(b"{\"command\": \"SET\", \"key\": \"j\", \"value\": \"son\"}\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    within("a JSON reply", async {
        while !reply.ends_with(b"\n") {
            let mut chunk = [0u8; 512];
            let n = tls.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before a reply: {reply:?}");
            reply.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let reply: serde_json::Value = serde_json::from_slice(&reply).expect("JSON reply");
    assert_eq!(reply["status"], "success", "{reply}");
    assert_eq!(keys(&node), 1);
}

/// A large value is written from its own buffer (vectored) after the replies before it: over
/// TLS too, every byte arrives in order.
#[tokio::test]
async fn a_large_value_comes_back_whole_over_tls() {
    let pki = Pki::new();
    let node = spawn_node(|c| c.tls = Some(pki.server())).await;
    let connector = tokio_rustls::TlsConnector::from(pki.client(false));
    let name = minikv::tls::server_name(&node.host_port()).expect("server name");
    let tcp = connect(node.addr).await;
    let mut tls = within("TLS handshake", connector.connect(name, tcp))
        .await
        .expect("handshake");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut request = common::raw::resp(&[b"SET", b"big", &big]);
    request.extend(common::raw::resp(&[b"PING"]));
    request.extend(common::raw::resp(&[b"GET", b"big"]));
    request.extend(common::raw::resp(&[b"PING"]));
    tls.write_all(&request).await.expect("write");
    let expected = [
        &b"+OK\r\n+PONG\r\n"[..],
        format!("${}\r\n", big.len()).as_bytes(),
        &big,
        b"\r\n+PONG\r\n",
    ]
    .concat();
    let mut got = vec![0u8; expected.len()];
    within("the replies", tls.read_exact(&mut got))
        .await
        .expect("read the replies");
    let first = got.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(first, None, "first differing byte");
}

#[tokio::test]
async fn cluster_client_with_tls_reaches_every_node() {
    let pki = Pki::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(
            spawn_node(|c| {
                c.id = id;
                c.tls = Some(pki.server());
            })
            .await,
        );
    }
    let mut servers: Vec<String> = nodes.iter().map(|n| n.host_port()).collect();
    // Checked by DNS name too, not only by IP address.
    servers[2] = format!("localhost:{}", nodes[2].port());
    let client = ClusterClient::new(ClientConfig {
        servers,
        tls: Some(pki.client(false)),
        ..ClientConfig::default()
    });
    for i in 0..30 {
        let key = format!("key:{i}");
        client
            .set(key.as_bytes(), format!("value {i}").as_bytes(), None)
            .await
            .expect("SET over TLS");
    }
    for i in 0..30 {
        let key = format!("key:{i}");
        let value = client.get(key.as_bytes()).await.expect("GET over TLS");
        assert_eq!(value.as_deref(), Some(format!("value {i}").as_bytes()));
    }
    // A reply far larger than one TLS record (16 KB) and the socket buffers.
    let big = vec![b'x'; 4 << 20];
    client.set(b"big", &big, None).await.expect("SET 4 MB");
    let got = client.get(b"big").await.expect("GET 4 MB");
    assert!(got.as_deref() == Some(&big[..]), "4 MB value round-trips");
    client.del(b"big").await.expect("DEL");
    let stored: usize = nodes.iter().map(keys).sum();
    assert_eq!(stored, 30);
    assert!(
        nodes.iter().all(|n| keys(n) > 0),
        "keys spread over all three nodes"
    );
}

#[tokio::test]
async fn client_certificate_is_required_when_the_node_has_a_client_ca() {
    let pki = Pki::new();
    let node = spawn_node(|c| {
        let mut tls = pki.server();
        tls.client_ca = Some(pki.ca.clone());
        c.tls = Some(tls);
    })
    .await;
    let config = |with_cert| {
        let mut config = ClientConfig {
            servers: vec![node.host_port()],
            tls: Some(pki.client(with_cert)),
            ..ClientConfig::default()
        };
        config.retry.retries = 0;
        config
    };
    let anonymous = ClusterClient::new(config(false));
    assert!(anonymous.call(0, vec![Bytes::from("PING")]).await.is_err());
    let known = ClusterClient::new(config(true));
    known
        .set(b"mutual", b"yes", None)
        .await
        .expect("SET with a client certificate");
    assert_eq!(
        known.get(b"mutual").await.expect("GET").as_deref(),
        Some(&b"yes"[..])
    );
}

#[tokio::test]
async fn repl_binary_connects_with_tls() {
    let pki = Pki::new();
    let node = spawn_node(|c| c.tls = Some(pki.server())).await;
    let servers = node.host_port();
    let ca = pki.ca.to_str().expect("UTF-8 path").to_string();
    let run = blocking(move || {
        run_client(
            &["--servers", &servers, "--tls", "--tls-ca", &ca],
            "set tls:key secret\nget tls:key\nexit\n",
        )
    })
    .await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(
        run.stdout.contains("Value: secret"),
        "stdout:\n{}",
        run.stdout
    );
    assert_eq!(keys(&node), 1);
}

#[tokio::test]
async fn repl_explains_a_certificate_it_does_not_trust() {
    let pki = Pki::new();
    let node = spawn_node(|c| c.tls = Some(pki.server())).await;
    let servers = node.host_port();
    // A CA that did not sign the node's certificate.
    let other = Pki::with_ca("another CA");
    let ca = other.ca.to_str().expect("UTF-8 path").to_string();
    let target = servers.clone();
    let run = blocking(move || {
        let args = [
            "--servers",
            &target,
            "--tls",
            "--tls-ca",
            &ca,
            "--retries",
            "0",
        ];
        run_client(&[&args[..], &["get", "k"]].concat(), "")
    })
    .await;
    assert_eq!(
        run.stdout,
        format!(
            "✗ ERROR (Server 1)\n  Server 1 unavailable after 1 attempt\n  Cause: TLS handshake \
             with {servers} failed: the node's certificate is not signed by a CA this client \
             trusts\n\n"
        ),
        "stderr:\n{}",
        run.stderr
    );
    assert_eq!(run.code, Some(1));
}

#[test]
fn server_with_a_bad_certificate_path_refuses_to_start_naming_the_file() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("temp dir");
    let missing = pki.dir.path().join("no-such-cert.pem");
    let missing_arg = missing.to_str().expect("UTF-8").to_string();
    let key = pki.key.to_str().expect("UTF-8").to_string();
    let output = Command::new(common::process::binary())
        .args(["server", "1", "0", "--data-dir"])
        .arg(data.path())
        .args(["--tls-cert", &missing_arg, "--tls-key", &key])
        .output()
        .expect("run minikv server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&missing_arg), "stderr: {stderr}");
    // A key file that is not a key is named too.
    let not_a_key = pki.dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").expect("write");
    let output = Command::new(common::process::binary())
        .args(["server", "1", "0", "--data-dir"])
        .arg(data.path())
        .arg("--tls-cert")
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&not_a_key)
        .output()
        .expect("run minikv server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(not_a_key.to_str().expect("UTF-8")),
        "stderr: {stderr}"
    );
}

/// A throwaway CA, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, all as PEM files in a temporary directory.
struct Pki {
    dir: TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        Pki::with_ca("minikv test CA")
    }

    /// A PKI whose CA is named `ca_name`.
    fn with_ca(ca_name: &str) -> Pki {
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
        let leaf = |names: Vec<String>, cert: &str, key: &str| {
            let key_pair = KeyPair::generate().expect("leaf key");
            let params = CertificateParams::new(names).expect("leaf params");
            let signed = params.signed_by(&key_pair, &ca).expect("sign leaf");
            write(dir.path(), cert, &signed.pem());
            write(dir.path(), key, &key_pair.serialize_pem());
        };
        leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            "server.pem",
            "server.key",
        );
        leaf(vec!["client".into()], "client.pem", "client.key");
        write(dir.path(), "ca.pem", &ca.pem());
        let path = |name: &str| dir.path().join(name);
        Pki {
            ca: path("ca.pem"),
            cert: path("server.pem"),
            key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
            dir,
        }
    }

    fn server(&self) -> TlsConfig {
        TlsConfig {
            cert: self.cert.clone(),
            key: self.key.clone(),
            client_ca: None,
        }
    }

    fn client(&self, with_cert: bool) -> Arc<minikv::tls::TlsClientConfig> {
        minikv::tls::client_config(&ClientTls {
            ca: self.ca.clone(),
            cert: with_cert.then(|| self.client_cert.clone()),
            key: with_cert.then(|| self.client_key.clone()),
        })
        .expect("client TLS config")
    }
}

/// Live keys in the node's database 0.
fn keys(node: &common::TestNode) -> usize {
    let db = node.node.store.db(0).expect("database 0");
    db.counts(tokio::time::Instant::now()).0
}

fn write(dir: &Path, name: &str, contents: &str) {
    std::fs::write(dir.join(name), contents).expect("write PEM file");
}
