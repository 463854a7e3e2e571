//! TLS: the HTTPS listener with HTTP/1.1 and HTTP/2, certificate rotation under an open
//! connection, client certificates, and https upstreams, with certificates made at test
//! time by rcgen.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::Registry;
use tempfile::TempDir;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use wasmgate::body::{Body, empty};
use wasmgate::tls::{self, ListenerTls, UpstreamTls};

/// A test certificate authority and the files it signs, in a temporary directory.
struct Pki {
    directory: TempDir,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).expect("CA certificate");
        let pki = Self {
            directory: tempfile::tempdir().expect("temporary directory"),
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        };
        std::fs::write(pki.path("ca.pem"), &pki.ca_pem).expect("write CA");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// Issues a certificate for localhost and 127.0.0.1 into `<name>.pem` and `<name>.key`.
    fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("leaf key");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let (cert_path, key_path) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("CA PEM"))
            .expect("add CA");
        roots
    }

    fn client_config(
        &self,
        alpn: &[&[u8]],
        identity: Option<(&Path, &Path)>,
    ) -> rustls::ClientConfig {
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(self.roots());
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(cert)
                        .expect("cert")
                        .map(|c| c.expect("cert"))
                        .collect(),
                    PrivateKeyDer::from_pem_file(key).expect("key"),
                )
                .expect("client identity"),
        };
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        config
    }
}

fn listener_tls(cert: PathBuf, key: PathBuf, client_ca: Option<PathBuf>) -> ListenerTls {
    ListenerTls {
        cert,
        key,
        client_ca,
        reload_interval: Duration::from_millis(50),
    }
}

/// Opens a TLS connection and returns it with the certificate the server presented.
async fn tls_connect(
    address: &str,
    config: rustls::ClientConfig,
) -> std::io::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    CertificateDer<'static>,
)> {
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await?;
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .clone();
    Ok((stream, certificate))
}

fn get_v2(address: &str) -> Request<Body> {
    Request::get("/v2/")
        .header("host", address)
        .body(empty())
        .expect("request")
}

async fn http1_sender(
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> http1::SendRequest<Body> {
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender
}

async fn tls_gate(registry: &Registry, tls: &ListenerTls) -> (String, Arc<tls::ReloadingCert>) {
    let (config, resolver) = tls::server_config(tls).expect("TLS config");
    tokio::spawn(tls::watch_files(tls.clone(), resolver.clone()));
    let (url, _) = support::start_gate_with_tls(
        support::settings(&registry.url()),
        Some(TlsAcceptor::from(config)),
    )
    .await;
    (url.trim_start_matches("https://").to_owned(), resolver)
}

#[tokio::test]
async fn https_listener_serves_http1_and_http2() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server");
    let registry = Registry::start();
    let (address, _) = tls_gate(&registry, &listener_tls(cert, key, None)).await;

    let (stream, _) = tls_connect(&address, pki.client_config(&[b"http/1.1"], None))
        .await
        .expect("TLS");
    let mut sender = http1_sender(stream).await;
    let upload = Request::post("/v2/tls/blobs/uploads/")
        .header("host", &address)
        .body(empty())
        .expect("request");
    let started = sender.send_request(upload).await.expect("HTTP/1.1 request");
    let (stream, _) = tls_connect(&address, pki.client_config(&[b"h2"], None))
        .await
        .expect("TLS");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(connection);
    let request = Request::get(format!("https://{address}/v2/"))
        .body(empty())
        .expect("request");
    let over_h2 = h2.send_request(request).await.expect("HTTP/2 request");

    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().expect("ASCII");
    assert!(
        location.starts_with(&format!("https://{address}/")),
        "{location}"
    );
    assert_eq!(over_h2.version(), http::Version::HTTP_2);
    assert_eq!(over_h2.status(), StatusCode::OK);
}

#[tokio::test]
async fn rotated_certificate_serves_new_connections_only() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server");
    let registry = Registry::start();
    let tls = listener_tls(cert.clone(), key.clone(), None);
    let (address, resolver) = tls_gate(&registry, &tls).await;
    let (stream, before) = tls_connect(&address, pki.client_config(&[b"http/1.1"], None))
        .await
        .expect("TLS");
    let mut open = http1_sender(stream).await;
    assert_eq!(
        open.send_request(get_v2(&address))
            .await
            .expect("first request")
            .status(),
        StatusCode::OK
    );

    let mut reloads = resolver.reloads();
    let (new_cert, new_key) = pki.issue("rotated");
    std::fs::copy(&new_key, &key).expect("replace key");
    std::fs::copy(&new_cert, &cert).expect("replace certificate");
    tokio::time::timeout(Duration::from_secs(10), reloads.changed())
        .await
        .expect("the certificate was reloaded")
        .expect("the watcher is running");

    let (_, after) = tls_connect(&address, pki.client_config(&[b"http/1.1"], None))
        .await
        .expect("TLS");
    let still_open = open
        .send_request(get_v2(&address))
        .await
        .expect("request on the open connection");
    assert_ne!(
        before, after,
        "new connections still get the old certificate"
    );
    assert_eq!(
        after,
        CertificateDer::from_pem_file(&new_cert).expect("new certificate")
    );
    assert_eq!(still_open.status(), StatusCode::OK);
}

#[tokio::test]
async fn client_certificates_are_required_with_a_client_ca() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server");
    let (client_cert, client_key) = pki.issue("client");
    let registry = Registry::start();
    let (address, _) = tls_gate(
        &registry,
        &listener_tls(cert, key, Some(pki.path("ca.pem"))),
    )
    .await;

    let anonymous = match tls_connect(&address, pki.client_config(&[b"http/1.1"], None)).await {
        Err(_) => None,
        // TLS 1.3 clients learn of the rejection only when they first read.
        Ok((stream, _)) => {
            let (mut sender, connection) = http1::handshake::<_, Body>(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(connection);
            sender.send_request(get_v2(&address)).await.ok()
        }
    };
    let identified = tls_connect(
        &address,
        pki.client_config(&[b"http/1.1"], Some((&client_cert, &client_key))),
    )
    .await
    .expect("TLS with a client certificate");
    let mut sender = http1_sender(identified.0).await;

    assert!(
        anonymous.is_none(),
        "a client without a certificate was served"
    );
    assert_eq!(
        sender
            .send_request(get_v2(&address))
            .await
            .expect("request")
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn https_upstream_is_verified_with_upstream_ca() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("registry");
    let registry = Registry::start_with_tls(&cert, &key);
    let upstream = format!("https://{}", registry.address);

    let mut trusting = support::settings(&upstream);
    trusting.upstream_tls = UpstreamTls {
        ca: Some(pki.path("ca.pem")),
        ..UpstreamTls::default()
    };
    let trusted_gate = support::start_gate(trusting).await;
    let untrusted_gate = support::start_gate(support::settings(&upstream)).await;

    let trusted = support::get(&format!("{trusted_gate}/v2/")).await;
    let untrusted = support::get(&format!("{untrusted_gate}/v2/")).await;

    assert_eq!(trusted.status, StatusCode::OK);
    assert_eq!(untrusted.status, StatusCode::BAD_GATEWAY);
    assert_eq!(untrusted.error()["code"], "UNAVAILABLE");
}

#[test]
fn mismatched_key_is_a_configuration_error() {
    let pki = Pki::new();
    let (cert, _) = pki.issue("one");
    let (_, other_key) = pki.issue("two");

    let error =
        tls::server_config(&listener_tls(cert, other_key, None)).expect_err("mismatched pair");

    assert!(error.contains("does not fit"), "{error}");
}
