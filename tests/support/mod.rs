//! Shared test harness: a real `docker-registry` (CNCF Distribution 2.8 from Debian) on an
//! ephemeral loopback port, the gate in front of it in the same process, and a small HTTP
//! client that reads whole answers.
#![allow(dead_code)]

pub mod fixtures;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tempfile::TempDir;
use wasmgate::body::{Body, empty, full};
use wasmgate::config::{DEFAULT_MAX_MANIFEST_BYTES, Limits, Origin, Settings};

/// Time allowed for the registry to print its listening address.
const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Directory where `scripts/install-test-tools.sh` puts the Go tools.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("WASMGATE_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/wasmgate-test-tools"),
    }
}

/// Finds a tool in the test tools directory, then on `PATH`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(tools_dir().join("bin"))
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Finds a tool, or fails the test with the command that installs it.
pub fn require_tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!("{name} is not installed; run scripts/install-test-tools.sh first")
    })
}

/// Registry programs the tests run as upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// CNCF Distribution 2.8, Debian's `docker-registry` package.
    Distribution2,
    /// CNCF Distribution v3, `registry` built from the Go module proxy.
    Distribution3,
}

impl Flavor {
    fn binary(self) -> &'static str {
        match self {
            Self::Distribution2 => "docker-registry",
            Self::Distribution3 => "registry",
        }
    }
}

/// How a registry builds the upload and redirect URLs it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urls {
    /// From the request's `Host` and `X-Forwarded-*` headers, the default.
    FromRequest,
    /// Absolute on the registry's own origin (`http.host`), so the gate must rewrite them.
    OwnOrigin,
    /// Relative (`http.relativeurls: true`).
    Relative,
}

/// A running registry with its storage and logs in a temporary directory.
pub struct Registry {
    pub address: SocketAddr,
    child: Child,
    directory: TempDir,
}

impl Registry {
    /// Starts a registry that builds `Location` URLs from request headers, as most do.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0", "", "")
    }

    /// Starts Distribution 2.8 serving HTTPS with the given PEM files.
    pub fn start_with_tls(cert: &Path, key: &Path) -> Self {
        let tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
        Self::start_on("127.0.0.1:0", &tls, "")
    }

    /// Starts Distribution 2.8 with token authentication: `realm` is announced in
    /// challenges, and tokens must be signed by a certificate chaining to `root_bundle`.
    pub fn start_with_token_auth(
        realm: &str,
        service: &str,
        issuer: &str,
        root_bundle: &Path,
    ) -> Self {
        let auth = format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
            root_bundle.display()
        );
        Self::start_on("127.0.0.1:0", "", &auth)
    }

    /// Starts `flavor` on `ip` (any loopback address) with the given URL style.
    pub fn start_flavor(flavor: Flavor, ip: &str, urls: Urls) -> Self {
        match urls {
            Urls::FromRequest => Self::launch(flavor, &format!("{ip}:0"), "", ""),
            Urls::Relative => {
                Self::launch(flavor, &format!("{ip}:0"), "  relativeurls: true\n", "")
            }
            Urls::OwnOrigin => {
                let port = std::net::TcpListener::bind(format!("{ip}:0"))
                    .and_then(|listener| listener.local_addr())
                    .expect("free loopback port")
                    .port();
                Self::launch(
                    flavor,
                    &format!("{ip}:{port}"),
                    &format!("  host: http://{ip}:{port}\n"),
                    "",
                )
            }
        }
    }

    /// Starts a registry with Distribution's `silly` authentication: any request without an
    /// `Authorization` header gets a 401 with a Bearer challenge, any request with one passes.
    pub fn start_with_silly_auth() -> Self {
        Self::start_on(
            "127.0.0.1:0",
            "",
            "auth:\n  silly:\n    realm: http://127.0.0.1:9/token\n    service: wasmgate-tests\n",
        )
    }

    /// Starts a registry whose `http.host` is its own address, so every `Location` it sends
    /// is absolute on the upstream's origin and the gate must rewrite it. The port is picked
    /// by binding port 0 and releasing it just before the registry binds it.
    pub fn start_with_own_host() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free loopback port")
            .port();
        Self::start_on(
            &format!("127.0.0.1:{port}"),
            &format!("  host: http://127.0.0.1:{port}\n"),
            "",
        )
    }

    fn start_on(listen: &str, extra_http: &str, extra_sections: &str) -> Self {
        Self::launch(Flavor::Distribution2, listen, extra_http, extra_sections)
    }

    fn launch(flavor: Flavor, listen: &str, extra_http: &str, extra_sections: &str) -> Self {
        let binary = require_tool(flavor.binary());
        let directory = tempfile::tempdir().expect("temporary directory");
        let config = directory.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {listen}\n  secret: wasmgate-tests\n{extra_http}{extra_sections}",
                directory.path().join("data").display()
            ),
        )
        .expect("write registry config");

        let access_log = File::create(directory.path().join("access.log")).expect("access log");
        let mut child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::from(access_log))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", flavor.binary()));

        let stderr = child.stderr.take().expect("piped stderr");
        let log_path = directory.path().join("registry.log");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || copy_log_until_address(stderr, &log_path, sender));
        let address = receiver
            .recv_timeout(REGISTRY_START_TIMEOUT)
            .unwrap_or_else(|_| panic!("{} printed no listening address", flavor.binary()));
        Self {
            address,
            child,
            directory,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request the registry served, as `METHOD URI`, from its access log.
    pub fn requests(&self) -> Vec<String> {
        let log =
            std::fs::read_to_string(self.directory.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| line.split('"').nth(1))
            .filter_map(|request| {
                request
                    .rsplit_once(' ')
                    .map(|(method_uri, _)| method_uri.to_owned())
            })
            .collect()
    }

    /// Requests to push a manifest of `repository` that reached the registry.
    pub fn manifest_puts(&self, repository: &str) -> Vec<String> {
        let prefix = format!("PUT /v2/{repository}/manifests/");
        self.requests()
            .into_iter()
            .filter(|request| request.starts_with(&prefix))
            .collect()
    }

    pub fn data_dir(&self) -> &Path {
        self.directory.path()
    }

    fn storage(&self) -> PathBuf {
        self.directory.path().join("data/docker/registry/v2")
    }

    /// The digest that `repository:tag` points at, read from the registry's storage on disk
    /// so that checking it sends no request.
    pub fn stored_tag(&self, repository: &str, tag: &str) -> Option<String> {
        let link = self.storage().join(format!(
            "repositories/{repository}/_manifests/tags/{tag}/current/link"
        ));
        std::fs::read_to_string(link).ok()
    }

    /// The tags of `repository`, sorted, read from the registry's storage on disk.
    pub fn stored_tags(&self, repository: &str) -> Vec<String> {
        let directory = self
            .storage()
            .join(format!("repositories/{repository}/_manifests/tags"));
        let mut tags: Vec<String> = std::fs::read_dir(directory)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// The bytes of a blob or manifest, read from the registry's storage on disk.
    pub fn stored_blob(&self, digest: &str) -> Option<Vec<u8>> {
        let (algorithm, hex) = digest.split_once(':')?;
        let path = self
            .storage()
            .join(format!("blobs/{algorithm}/{}/{hex}/data", hex.get(..2)?));
        std::fs::read(path).ok()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_log_until_address(
    stderr: impl std::io::Read,
    log_path: &Path,
    sender: mpsc::Sender<SocketAddr>,
) {
    let mut log = File::create(log_path).expect("registry log");
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let _ = writeln!(log, "{line}");
        if let Some(rest) = line.split("listening on ").nth(1) {
            let address = rest.split(['"', ' ', ',']).next().unwrap_or_default();
            if let Ok(address) = address.parse() {
                let _ = sender.send(address);
            }
        }
    }
}

/// Settings for a gate in front of `upstream`, listening on an ephemeral loopback port.
pub fn settings(upstream: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        upstream: Origin::parse_base_url(upstream).expect("valid upstream"),
        public_url: None,
        max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
        inspect_max_bytes: wasmgate::wasm::DEFAULT_INSPECT_MAX_BYTES,
        strict_os: false,
        rewrite_legacy: false,
        policy: None,
        admin_listen: None,
        trusted_proxies: Vec::new(),
        tls: None,
        upstream_tls: Default::default(),
        upstream_http2: false,
        realm_rewrites: Vec::new(),
        limits: Limits::default(),
    }
}

/// Starts the gate on the current Tokio runtime and returns its base URL.
pub async fn start_gate(settings: Settings) -> String {
    start_gate_with_handle(settings).await.0
}

/// Starts the gate and returns its base URL and its shared state, for counting the requests
/// it sent upstream.
pub async fn start_gate_with_handle(
    settings: Settings,
) -> (String, std::sync::Arc<wasmgate::gate::Gate>) {
    start_gate_with_tls(settings, None).await
}

/// Starts the gate, serving HTTPS when `tls` is given, and returns its base URL and state.
pub async fn start_gate_with_tls(
    mut settings: Settings,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (String, std::sync::Arc<wasmgate::gate::Gate>) {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .expect("bind gate");
    settings.listen = listener.local_addr().expect("gate address");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", settings.listen);
    let gate = wasmgate::gate::Gate::new(settings).expect("gate settings are valid");
    tokio::spawn(wasmgate::server::serve(
        listener,
        gate.clone(),
        tls,
        std::future::pending(),
    ));
    (url, gate)
}

/// A gate that stops when `stop` is sent: it drains and the returned task finishes.
pub struct StoppableGate {
    pub url: String,
    pub gate: std::sync::Arc<wasmgate::gate::Gate>,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub served: tokio::task::JoinHandle<()>,
}

/// Starts the gate with a shutdown trigger, marking it draining when triggered, as the
/// binary does on SIGTERM.
pub async fn start_stoppable_gate(mut settings: Settings) -> StoppableGate {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .expect("bind gate");
    settings.listen = listener.local_addr().expect("gate address");
    let url = format!("http://{}", settings.listen);
    let gate = wasmgate::gate::Gate::new(settings).expect("gate settings are valid");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let draining = gate.clone();
    let shutdown = async move {
        let _ = stopped.await;
        draining.start_draining();
    };
    let served = tokio::spawn(wasmgate::server::serve(
        listener,
        gate.clone(),
        None,
        shutdown,
    ));
    StoppableGate {
        url,
        gate,
        stop,
        served,
    }
}

/// Starts the admin listener for `gate` and returns its base URL.
pub async fn start_admin(gate: std::sync::Arc<wasmgate::gate::Gate>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let url = format!("http://{}", listener.local_addr().expect("admin address"));
    tokio::spawn(wasmgate::admin::serve(listener, gate));
    url
}

/// A registry and a gate in front of it.
pub async fn registry_and_gate() -> (Registry, String) {
    let registry = Registry::start();
    let gate = start_gate(settings(&registry.url())).await;
    (registry, gate)
}

/// A whole HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The first OCI error of the body.
    pub fn error(&self) -> Value {
        self.json()["errors"][0].clone()
    }
}

pub fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends a request and reads the whole answer.
pub async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: Body) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client()
        .request(request.body(body).expect("valid request"))
        .await
        .unwrap_or_else(|error| panic!("request to {url} failed: {error}"));
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("read body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str) -> Reply {
    send(Method::GET, url, &[], empty()).await
}

/// Pushes a manifest with its media type as `Content-Type`.
pub async fn put_manifest(
    base: &str,
    repository: &str,
    reference: &str,
    media_type: &str,
    body: impl Into<Bytes>,
) -> Reply {
    send(
        Method::PUT,
        &format!("{base}/v2/{repository}/manifests/{reference}"),
        &[("content-type", media_type)],
        full(body.into()),
    )
    .await
}

/// Uploads a blob with a POST and a monolithic PUT, and returns its digest.
pub async fn push_blob(base: &str, repository: &str, bytes: &[u8]) -> String {
    let digest = fixtures::sha256(bytes);
    let started = send(
        Method::POST,
        &format!("{base}/v2/{repository}/blobs/uploads/"),
        &[],
        empty(),
    )
    .await;
    assert_eq!(
        started.status,
        StatusCode::ACCEPTED,
        "start upload: {:?}",
        started.body
    );
    let location = absolute(base, started.header("location").expect("upload location"));
    let separator = if location.contains('?') { '&' } else { '?' };
    let finished = send(
        Method::PUT,
        &format!("{location}{separator}digest={digest}"),
        &[("content-type", "application/octet-stream")],
        full(Bytes::copy_from_slice(bytes)),
    )
    .await;
    assert_eq!(
        finished.status,
        StatusCode::CREATED,
        "finish upload: {:?}",
        finished.body
    );
    digest
}

/// Resolves a possibly relative `Location` against `base`.
pub fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

/// Fetches a manifest directly from the registry, accepting every manifest type.
pub async fn fetch_manifest(registry: &Registry, repository: &str, reference: &str) -> Reply {
    send(
        Method::GET,
        &format!("{}/v2/{repository}/manifests/{reference}", registry.url()),
        &[(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
        )],
        empty(),
    )
    .await
}
