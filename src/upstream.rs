//! Relay stage: the pooled HTTP/1.1 client to the upstream registry, and blob reads for
//! validation (capped, following redirects to object storage without credentials).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::{Body, BodyIdleTimeout, empty, full};
use crate::config::{Limits, Origin, Scheme};
use crate::error::{GateError, Rejection, Rule, UpstreamAnswer};
use crate::forward::strip_hop_by_hop;
use crate::manifest::digest::Hasher;
use crate::manifest::{Descriptor, Digest};
use crate::metrics::{BlobLabels, Metrics, UpstreamLabels};
use crate::wasm::{self, BlobRole, BlobSource};

/// Time `/readyz` waits for the upstream's response to its probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Redirects followed when reading a blob for validation.
const MAX_REDIRECTS: usize = 5;
/// Largest error body kept when relaying a 401 or 403 from a validation read.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

const USER_AGENT: &str = concat!("wasmgate/", env!("CARGO_PKG_VERSION"));

/// The upstream registry and a connection pool to it.
#[derive(Clone)]
pub struct Upstream {
    pub origin: Origin,
    /// `--rewrite-realm` pairs, applied to `WWW-Authenticate` response headers.
    pub realm_rewrites: Vec<(String, String)>,
    /// Time the upstream has to send response headers once a request has been sent.
    pub response_timeout: Duration,
    blob_read_timeout: Duration,
    /// Requests sent upstream so far, forwarded and validation reads alike.
    sent: Arc<AtomicU64>,
    /// Milliseconds since `clock` of the upstream's last response, plus one. 0 means none yet.
    last_answer_ms: Arc<AtomicU64>,
    clock: Instant,
    metrics: Arc<Metrics>,
    client: Client<HttpsConnector<HttpConnector>, Body>,
}

impl Upstream {
    /// Builds the client. `tls` verifies https upstreams and the object storage they redirect
    /// to; with `http2`, https connections offer HTTP/2 by ALPN and plain http ones speak
    /// HTTP/2 with prior knowledge.
    pub fn new(
        origin: Origin,
        limits: &Limits,
        metrics: Arc<Metrics>,
        tls: rustls::ClientConfig,
        http2: bool,
    ) -> Self {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = if http2 {
            builder
                .enable_all_versions()
                .wrap_connector(http_connector(limits.upstream_connect_timeout))
        } else {
            builder
                .enable_http1()
                .wrap_connector(http_connector(limits.upstream_connect_timeout))
        };
        let mut client = Client::builder(TokioExecutor::new());
        client.pool_idle_timeout(limits.upstream_idle_timeout);
        if http2 && origin.scheme == Scheme::Http {
            client.http2_only(true);
        }
        let client = client.build(connector);
        Self {
            origin,
            realm_rewrites: Vec::new(),
            response_timeout: limits.upstream_response_timeout,
            blob_read_timeout: limits.blob_read_timeout,
            sent: Arc::default(),
            last_answer_ms: Arc::default(),
            clock: Instant::now(),
            metrics,
            client,
        }
    }

    /// The upstream URI for a raw path and query, byte for byte. It is built from parts, so
    /// nothing in `path_and_query` can change the configured scheme, host or port.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, GateError> {
        Uri::builder()
            .scheme(self.origin.scheme.as_str())
            .authority(format!("{}:{}", self.origin.host, self.origin.port))
            .path_and_query(path_and_query)
            .build()
            .map_err(|error| {
                GateError::UpstreamInvalid(format!("cannot build upstream URI: {error}"))
            })
    }

    /// Number of requests sent upstream since the gate started.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends a relayed client request; see [`Upstream::send_for`].
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, GateError> {
        self.send_for(request, "forward").await
    }

    /// Sends a request and classifies failures: a client body that stalled is the client's
    /// fault (408), a connect timeout is a 504, any other failure a 502. `purpose` labels
    /// the duration metric.
    async fn send_for(
        &self,
        request: Request<Body>,
        purpose: &'static str,
    ) -> Result<Response<Incoming>, GateError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let target = format!(
            "{} {}",
            request.method(),
            without_query(&request.uri().to_string())
        );
        let started = Instant::now();
        let result = self.client.request(request).await;
        self.metrics
            .upstream_duration
            .get_or_create(&UpstreamLabels { purpose })
            .observe(started.elapsed().as_secs_f64());

        let error = match result {
            Ok(response) => {
                self.last_answer_ms.store(
                    self.clock.elapsed().as_millis() as u64 + 1,
                    Ordering::Relaxed,
                );
                return Ok(response);
            }
            Err(error) => error,
        };
        if let Some(stall) =
            source_chain(&error).find_map(|cause| cause.downcast_ref::<BodyIdleTimeout>())
        {
            return Err(GateError::ClientStalled(stall.0));
        }
        let timed_out = source_chain(&error).any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        });
        let chain: Vec<String> = source_chain(&error).map(ToString::to_string).collect();
        let detail = format!("{target}: {}", chain.join(": "));
        tracing::warn!(upstream.error = %detail, "upstream request failed");
        if timed_out {
            Err(GateError::UpstreamTimeout(detail))
        } else {
            Err(GateError::UpstreamUnreachable(detail))
        }
    }

    /// Returns whether the upstream responded to any request within `age`.
    pub fn answered_within(&self, age: Duration) -> bool {
        let last = self.last_answer_ms.load(Ordering::Relaxed);
        let now = self.clock.elapsed().as_millis() as u64 + 1;
        last != 0 && now.saturating_sub(last) <= age.as_millis() as u64
    }

    /// Sends `GET /v2/` and reports whether any HTTP answer came within the probe timeout.
    pub async fn probe(&self) -> bool {
        let Ok(uri) = self.uri("/v2/") else {
            return false;
        };
        let Ok(request) = Request::get(uri)
            .header(header::USER_AGENT, USER_AGENT)
            .body(empty())
        else {
            return false;
        };
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.send_for(request, "probe")).await,
            Ok(Ok(_))
        )
    }

    /// Reads a blob of `repository` for validation, with the client's `Authorization` sent
    /// only to the upstream's own origin.
    pub async fn read_blob(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        role: BlobRole,
        authorization: Option<&HeaderValue>,
        limit: ReadLimit,
    ) -> Result<Bytes, GateError> {
        let path = format!("/v2/{repository}/blobs/{}", descriptor.digest);
        let read =
            self.read_blob_following_redirects(&path, descriptor, role, authorization, limit);
        let started = Instant::now();
        let result = tokio::time::timeout(self.blob_read_timeout, read).await;
        let role_label = match role {
            BlobRole::Config => "config",
            BlobRole::Layer(_) => "layer",
        };
        self.metrics
            .blob_read_duration
            .get_or_create(&BlobLabels { role: role_label })
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(upstream.path = %path, "validation read timed out");
                Err(GateError::UpstreamTimeout(format!("GET {path}")))
            }
        }
    }

    async fn read_blob_following_redirects(
        &self,
        path: &str,
        descriptor: &Descriptor,
        role: BlobRole,
        authorization: Option<&HeaderValue>,
        limit: ReadLimit,
    ) -> Result<Bytes, GateError> {
        let mut url = format!("{}{path}", self.origin);
        for _ in 0..=MAX_REDIRECTS {
            let own_origin = self.origin.strip_from(&url).is_some();
            let mut request = Request::builder()
                .method(Method::GET)
                .uri(url.as_str())
                .header(header::USER_AGENT, USER_AGENT)
                .header(header::ACCEPT, "*/*");
            if let (true, Some(value)) = (own_origin, authorization) {
                request = request.header(header::AUTHORIZATION, value);
            }
            if let ReadLimit::Prefix { length } = limit {
                request = request.header(
                    header::RANGE,
                    format!("bytes=0-{}", length.saturating_sub(1)),
                );
            }
            let request = request.body(empty()).map_err(|error| {
                GateError::UpstreamInvalid(format!("invalid blob URL {url:?}: {error}"))
            })?;

            let response = self.send_for(request, "validation").await?;
            match response.status() {
                StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                    return read_body(response, descriptor, role, limit).await;
                }
                // An empty blob has no byte 0, so a range read of it is unsatisfiable. For any
                // other blob a 416 is a registry fault, reported as a 502 below.
                StatusCode::RANGE_NOT_SATISFIABLE
                    if matches!(limit, ReadLimit::Prefix { .. }) && descriptor.size == 0 =>
                {
                    return Ok(Bytes::new());
                }
                status if status.is_redirection() => {
                    url = redirect_target(&url, response.headers())?;
                }
                StatusCode::NOT_FOUND if own_origin => {
                    return Err(wasm::blob_unknown(descriptor, role).into());
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if own_origin => {
                    return Err(relay_answer(response).await);
                }
                other => {
                    tracing::warn!(upstream.url = %without_query(&url), http.status = %other, "validation read failed");
                    return Err(GateError::UpstreamInvalid(format!(
                        "GET {} returned {other}",
                        without_query(&url)
                    )));
                }
            }
        }
        Err(GateError::UpstreamInvalid(format!(
            "more than {MAX_REDIRECTS} redirects reading {path}"
        )))
    }

    /// Uploads a blob the gate built (a rewritten config) to `repository` with the client's
    /// credentials: a POST to start the upload, then one PUT with the bytes.
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &Digest,
        bytes: Bytes,
        authorization: Option<&HeaderValue>,
    ) -> Result<(), GateError> {
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.origin);
        let response = self
            .send(self.blob_request(Method::POST, &start, authorization, empty())?)
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.upload_failure(response, &start).await);
        }
        // Upload locations are opaque, but the gate always sends the PUT to the upstream's
        // own origin, so credentials never leave it.
        let location = redirect_target(&start, response.headers())?;
        let path = match Origin::split_url(&location) {
            Some((_, rest)) => rest.to_owned(),
            None => location.clone(),
        };
        let separator = if path.contains('?') { '&' } else { '?' };
        let finish = format!("{}{path}{separator}digest={digest}", self.origin);
        let mut request =
            self.blob_request(Method::PUT, &finish, authorization, full(bytes.clone()))?;
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        request
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        let response = self.send_for(request, "validation").await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.upload_failure(response, &finish).await);
        }
        Ok(())
    }

    fn blob_request(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&HeaderValue>,
        body: Body,
    ) -> Result<Request<Body>, GateError> {
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .header(header::USER_AGENT, USER_AGENT);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.body(body).map_err(|error| {
            GateError::UpstreamInvalid(format!("invalid upload URL {url:?}: {error}"))
        })
    }

    /// Relays a 4xx, because it tells the client what to fix (credentials, quota, a bad
    /// upload). Any other status becomes a 502.
    async fn upload_failure(&self, response: Response<Incoming>, url: &str) -> GateError {
        match response.status() {
            status if status.is_client_error() => relay_answer(response).await,
            status => {
                tracing::warn!(upstream.url = %without_query(url), http.status = %status, "uploading a rewritten config failed");
                GateError::UpstreamInvalid(format!("upload to {url} returned {status}"))
            }
        }
    }
}

/// How much of a blob a validation read takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// The whole blob, verified against the descriptor; more than `max_bytes` is rejected.
    Whole { max_bytes: u64 },
    /// The first `length` bytes, not verified (the rest is never read).
    Prefix { length: usize },
}

/// Reads a 200 or 206 body up to `limit`. A whole blob is hashed frame by frame as it
/// arrives and checked against the descriptor's size and digest.
async fn read_body(
    response: Response<Incoming>,
    descriptor: &Descriptor,
    role: BlobRole,
    limit: ReadLimit,
) -> Result<Bytes, GateError> {
    if let ReadLimit::Prefix { .. } = limit
        && let Some(total) = announced_length(&response)
    {
        wasm::verify_size(descriptor, role, total)?;
    }
    let mut body = response.into_body();
    let mut bytes = BytesMut::new();
    let mut hasher = Hasher::new(descriptor.digest.algorithm);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            GateError::UpstreamInvalid(format!(
                "reading blob {} failed: {error}",
                descriptor.digest
            ))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match limit {
            ReadLimit::Prefix { length } => {
                bytes.extend_from_slice(&data[..data.len().min(length - bytes.len())]);
                if bytes.len() >= length {
                    // Dropping the body here closes this upstream connection; the rest of
                    // the blob is never transferred.
                    break;
                }
            }
            ReadLimit::Whole { max_bytes } => {
                if (bytes.len() + data.len()) as u64 > max_bytes {
                    return Err(too_large(descriptor, role, max_bytes).into());
                }
                hasher.update(&data);
                bytes.extend_from_slice(&data);
            }
        }
    }
    if let ReadLimit::Whole { .. } = limit {
        wasm::verify_size(descriptor, role, bytes.len() as u64)?;
        wasm::verify_digest(descriptor, role, &hasher.finish())?;
    }
    Ok(bytes.freeze())
}

/// Returns the blob's whole length as the response states it: the total of a 206's `Content-Range`
/// (`bytes 0-7/241`), or a 200's `Content-Length`.
fn announced_length(response: &Response<Incoming>) -> Option<u64> {
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    match response.status() {
        StatusCode::PARTIAL_CONTENT => header(header::CONTENT_RANGE)?
            .rsplit_once('/')?
            .1
            .parse()
            .ok(),
        StatusCode::OK => header(header::CONTENT_LENGTH)?.parse().ok(),
        _ => None,
    }
}

fn too_large(descriptor: &Descriptor, role: BlobRole, max_bytes: u64) -> Rejection {
    match role {
        BlobRole::Config => Rejection::manifest_invalid(
            Rule::ConfigTooLarge,
            format!(
                "the config blob {} is larger than {max_bytes} bytes, the most the gate reads; a WebAssembly config is a small JSON document",
                descriptor.digest
            ),
        )
        .at("$.config"),
        // Layers are read whole only when their descriptor's size is within the limit, so a
        // longer body means the size in the manifest is wrong.
        BlobRole::Layer(_) => Rejection::manifest_invalid(
            Rule::LayerSizeMismatch,
            format!(
                "{} {} is longer than the {} bytes the manifest says; set its size to the blob's length",
                role.describe(),
                descriptor.digest,
                descriptor.size
            ),
        )
        .at(format!("{}.size", role.path())),
    }
}

/// Collects a 401 or 403 so it can be relayed to the client as the upstream sent it.
async fn relay_answer(response: Response<Incoming>) -> GateError {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = match Limited::new(body, MAX_ERROR_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    GateError::UpstreamAnswer(Box::new(UpstreamAnswer {
        status: parts.status,
        headers: parts.headers,
        body,
    }))
}

/// Resolves a redirect's `Location` against the URL that answered it.
fn redirect_target(current: &str, headers: &HeaderMap) -> Result<String, GateError> {
    let location = headers
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            GateError::UpstreamInvalid(format!("redirect from {current} has no usable Location"))
        })?;
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    let scheme_end = current.find("://").map_or(0, |index| index + 3);
    let origin_end = current[scheme_end..]
        .find('/')
        .map_or(current.len(), |index| scheme_end + index);
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = &current[..scheme_end];
        return Ok(format!("{scheme}{rest}"));
    }
    if location.starts_with('/') {
        return Ok(format!("{}{location}", &current[..origin_end]));
    }
    let path = current.split(['?', '#']).next().unwrap_or(current);
    let directory = path
        .rfind('/')
        .filter(|index| *index >= origin_end)
        .map_or(path, |index| &path[..=index]);
    Ok(format!("{directory}{location}"))
}

/// Returns `url` without its query, for logs and errors, because upload states, presigned
/// object storage URLs and tokens in queries work as credentials.
fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(base, _)| base)
}

fn source_chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(
        Some(error),
        |cause: &&'a (dyn std::error::Error + 'static)| (*cause).source(),
    )
}

fn http_connector(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http
}

/// Blob reads from the upstream with one client's credentials.
pub struct UpstreamBlobs<'a> {
    pub upstream: &'a Upstream,
    pub repository: &'a str,
    pub authorization: Option<&'a HeaderValue>,
}

impl BlobSource for UpstreamBlobs<'_> {
    async fn fetch(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        max_bytes: u64,
    ) -> Result<Bytes, GateError> {
        let limit = ReadLimit::Whole { max_bytes };
        self.upstream
            .read_blob(self.repository, descriptor, role, self.authorization, limit)
            .await
    }

    async fn fetch_prefix(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        length: usize,
    ) -> Result<Bytes, GateError> {
        let limit = ReadLimit::Prefix { length };
        self.upstream
            .read_blob(self.repository, descriptor, role, self.authorization, limit)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LOCATION,
            HeaderValue::from_str(value).expect("valid header"),
        );
        headers
    }

    #[test]
    fn redirect_targets_resolve() {
        let current = "http://127.0.0.1:5000/v2/a/blobs/sha256:00?x=1";

        assert_eq!(
            redirect_target(current, &location("https://bucket.s3.example/obj?sig=a%2B"))
                .expect("absolute"),
            "https://bucket.s3.example/obj?sig=a%2B"
        );
        assert_eq!(
            redirect_target(current, &location("/other/path")).expect("absolute path"),
            "http://127.0.0.1:5000/other/path"
        );
        assert_eq!(
            redirect_target(current, &location("//cdn.example/obj")).expect("scheme relative"),
            "http://cdn.example/obj"
        );
        assert_eq!(
            redirect_target(current, &location("sibling")).expect("relative"),
            "http://127.0.0.1:5000/v2/a/blobs/sibling"
        );
        assert!(redirect_target(current, &HeaderMap::new()).is_err());
    }
}
