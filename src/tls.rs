//! TLS with rustls: the client listener's certificate, reloaded when its files change (as
//! cert-manager rotates them) without touching open connections, optional client
//! certificate verification, and the upstream client's trust settings.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::sync::watch;

/// Default time between checks of the certificate files for changes.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// TLS settings of the client listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to; `None` asks for no client
    /// certificate.
    pub client_ca: Option<PathBuf>,
    pub reload_interval: Duration,
}

/// TLS settings for an https upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Extra CA bundle trusted besides the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate and key presented to the upstream.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Accept any upstream certificate. Dangerous; a warning is logged at every start.
    pub insecure_skip_verify: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("cannot read certificates from {}: {error}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|error| format!("cannot read a private key from {}: {error}", path.display()))
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|error| format!("invalid CA certificate in {}: {error}", path.display()))?;
    }
    Ok(roots)
}

/// Loads a certificate chain and its key into a signing identity.
pub fn load_identity(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = load_certs(cert)?;
    let private_key = load_key(key)?;
    CertifiedKey::from_der(chain, private_key, &provider()).map_err(|error| {
        format!(
            "the key in {} does not fit the certificate in {}: {error}",
            key.display(),
            cert.display()
        )
    })
}

/// Serves the current certificate, and swaps it when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    /// Counts successful reloads, so callers can wait for one.
    generation: watch::Sender<u64>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

impl ReloadingCert {
    /// A receiver that sees the reload count change after each successful reload.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// Builds the listener's TLS configuration: ALPN `h2` and `http/1.1`, and client
/// certificate verification when a client CA is set.
pub fn server_config(tls: &ListenerTls) -> Result<(Arc<ServerConfig>, Arc<ReloadingCert>), String> {
    let identity = load_identity(&tls.cert, &tls.key)?;
    let resolver = Arc::new(ReloadingCert {
        current: RwLock::new(Arc::new(identity)),
        generation: watch::Sender::new(0),
    });
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup failed: {error}"))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(load_roots(path)?),
                provider(),
            )
            .build()
            .map_err(|error| format!("invalid client CA bundle {}: {error}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), resolver))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
}

/// Checks the certificate and key files every `reload_interval` and loads them again when
/// either changed. A pair that fails to load keeps the old certificate and logs an error;
/// connections already open keep theirs either way.
pub async fn watch_files(tls: ListenerTls, resolver: Arc<ReloadingCert>) {
    let stamp = || (modified(&tls.cert), modified(&tls.key));
    let mut last = stamp();
    loop {
        tokio::time::sleep(tls.reload_interval).await;
        let now = stamp();
        if now == last {
            continue;
        }
        last = now;
        match load_identity(&tls.cert, &tls.key) {
            Ok(identity) => {
                *resolver
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(identity);
                resolver
                    .generation
                    .send_modify(|generation| *generation += 1);
                tracing::info!(cert = %tls.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "TLS certificate not reloaded; keeping the previous one")
            }
        }
    }
}

/// Builds the upstream client's TLS configuration: system roots plus `ca`, an optional
/// client identity, ALPN for the protocols in use.
pub fn client_config(tls: &UpstreamTls) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup failed: {error}"))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system certificate that rustls cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        if let Some(path) = &tls.ca {
            for cert in load_certs(path)? {
                roots.add(cert).map_err(|error| {
                    format!("invalid CA certificate in {}: {error}", path.display())
                })?;
            }
        }
        builder.with_root_certificates(roots)
    };
    match &tls.client_identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|error| {
                format!(
                    "invalid upstream client identity {}: {error}",
                    cert.display()
                )
            }),
    }
}

/// Verifier for `--upstream-insecure-skip-verify`: signatures are still checked, but any
/// certificate is accepted for any name.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
