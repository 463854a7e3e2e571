//! Everything that is not a manifest push passes through the gate unchanged: blobs stream
//! both ways, statuses and headers are relayed, and upstream URLs are rewritten to the gate.

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use support::{Registry, absolute, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmgate::body::{self as gate_body, empty, full};

const MIB: u64 = 1024 * 1024;
const BIG_BLOB: u64 = 256 * MIB;

/// A deterministic body of `remaining` bytes, sent in 1 MiB frames, each frame stamped with
/// its index so reordered or repeated frames change the digest.
struct PatternBody {
    index: u64,
    remaining: u64,
    exact: bool,
}

impl PatternBody {
    fn new(length: u64, exact: bool) -> Self {
        Self {
            index: 0,
            remaining: length,
            exact,
        }
    }

    fn frame(index: u64, length: usize) -> Bytes {
        let mut frame = vec![0u8; length];
        let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for chunk in frame.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        Bytes::from(frame)
    }

    /// The digest of the first `length` bytes of the pattern.
    fn digest(length: u64) -> String {
        let mut hasher = Sha256::new();
        let mut body = Self::new(length, true);
        while let Some(frame) = body.next_frame() {
            hasher.update(&frame);
        }
        format!("sha256:{}", hex(&hasher.finalize()))
    }

    fn next_frame(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let length = self.remaining.min(MIB);
        self.remaining -= length;
        self.index += 1;
        Some(Self::frame(self.index, length as usize))
    }
}

impl HttpBody for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.next_frame().map(|bytes| Ok(Frame::data(bytes))))
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Streams a GET through the gate and returns the length and digest of the body.
async fn pull_digest(url: &str) -> (StatusCode, u64, String) {
    let request = Request::get(url).body(empty()).expect("request");
    let response = support::client().request(request).await.expect("pull");
    let status = response.status();
    let mut body = response.into_body();
    let mut hasher = Sha256::new();
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            length += data.len() as u64;
            hasher.update(&data);
        }
    }
    (
        status,
        length,
        format!("sha256:{}", hex(&hasher.finalize())),
    )
}

fn assert_points_at_gate(location: Option<&str>, gate: &str) -> String {
    let location = location.expect("Location header");
    assert!(
        location.starts_with(&format!("{gate}/")),
        "Location {location} does not point at the gate {gate}"
    );
    location.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_blob_round_trips_monolithic_and_chunked() {
    let registry = Registry::start_with_own_host();
    let gate = support::start_gate(support::settings(&registry.url())).await;
    let digest = PatternBody::digest(BIG_BLOB);
    let direct = send(
        Method::POST,
        &format!("{}/v2/big/direct/blobs/uploads/", registry.url()),
        &[],
        empty(),
    )
    .await;
    let direct_location = direct.header("location").expect("Location");
    assert!(
        direct_location.starts_with(&registry.url()),
        "the registry must send upstream-origin URLs: {direct_location}"
    );

    // Monolithic: one PUT whose body has no length, so it travels with chunked framing.
    let started = send(
        Method::POST,
        &format!("{gate}/v2/big/mono/blobs/uploads/"),
        &[],
        empty(),
    )
    .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    let location = assert_points_at_gate(started.header("location"), &gate);
    let finished = send(
        Method::PUT,
        &format!("{location}&digest={digest}"),
        &[("content-type", "application/octet-stream")],
        gate_body::stream(PatternBody::new(BIG_BLOB, false)),
    )
    .await;
    assert_eq!(finished.status, StatusCode::CREATED, "{:?}", finished.body);
    assert_points_at_gate(finished.header("location"), &gate);
    assert_eq!(
        finished.header("docker-content-digest"),
        Some(digest.as_str())
    );

    // Chunked: four PATCH requests of 64 MiB with Content-Range, then an empty PUT.
    let started = send(
        Method::POST,
        &format!("{gate}/v2/big/chunked/blobs/uploads/"),
        &[],
        empty(),
    )
    .await;
    let mut location = assert_points_at_gate(started.header("location"), &gate);
    let chunk = BIG_BLOB / 4;
    let mut pattern = PatternBody::new(BIG_BLOB, true);
    for index in 0..4 {
        let frames: Vec<Bytes> = (0..chunk / MIB)
            .filter_map(|_| pattern.next_frame())
            .collect();
        let range = format!("{}-{}", index * chunk, (index + 1) * chunk - 1);
        let length = chunk.to_string();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(
            frames
                .into_iter()
                .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))),
        ));
        let patched = send(
            Method::PATCH,
            &location,
            &[
                ("content-range", &range),
                ("content-length", &length),
                ("content-type", "application/octet-stream"),
            ],
            gate_body::stream(body),
        )
        .await;
        assert_eq!(patched.status, StatusCode::ACCEPTED, "{:?}", patched.body);
        location = assert_points_at_gate(patched.header("location"), &gate);
    }
    let finished = send(
        Method::PUT,
        &format!("{location}&digest={digest}"),
        &[],
        empty(),
    )
    .await;
    assert_eq!(finished.status, StatusCode::CREATED, "{:?}", finished.body);

    for repository in ["big/mono", "big/chunked"] {
        let (status, length, pulled) =
            pull_digest(&format!("{gate}/v2/{repository}/blobs/{digest}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(length, BIG_BLOB);
        assert_eq!(pulled, digest);
    }
}

#[tokio::test]
async fn head_range_and_errors_are_relayed() {
    let (registry, gate) = support::registry_and_gate().await;
    let digest = support::push_blob(&gate, "small", b"0123456789").await;
    let url = format!("{gate}/v2/small/blobs/{digest}");

    let head = send(Method::HEAD, &url, &[], empty()).await;
    let range = send(Method::GET, &url, &[("range", "bytes=2-5")], empty()).await;
    let unknown = send(
        Method::GET,
        &format!("{gate}/v2/small/blobs/{}", support::fixtures::sha256(b"x")),
        &[],
        empty(),
    )
    .await;

    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("10"));
    assert_eq!(head.header("docker-content-digest"), Some(digest.as_str()));
    assert!(head.body.is_empty());
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(range.body.as_ref(), b"2345");
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error()["code"], "BLOB_UNKNOWN");
    drop(registry);
}

#[tokio::test]
async fn raw_query_reaches_the_registry_byte_for_byte() {
    let (registry, gate) = support::registry_and_gate().await;
    let path = "/v2/demo/tags/list?n=2&last=a%2Fb&z=%7e&flag";

    send(Method::GET, &format!("{gate}{path}"), &[], empty()).await;

    assert!(
        registry.requests().contains(&format!("GET {path}")),
        "{:?}",
        registry.requests()
    );
}

#[tokio::test]
async fn forwarding_headers_from_clients_are_overwritten() {
    let (registry, gate) = support::registry_and_gate().await;

    let started = send(
        Method::POST,
        &format!("{gate}/v2/demo/blobs/uploads/"),
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "host=evil.example;proto=https"),
        ],
        empty(),
    )
    .await;

    assert_eq!(started.status, StatusCode::ACCEPTED);
    assert_points_at_gate(started.header("location"), &gate);
    drop(registry);
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_served() {
    let (registry, gate) = support::registry_and_gate().await;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<gate_body::Body>();

    let request = Request::post(format!("{gate}/v2/h2/blobs/uploads/"))
        .body(empty())
        .expect("request");
    let started = client.request(request).await.expect("h2 POST");
    assert_eq!(started.version(), http::Version::HTTP_2);
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = absolute(
        &gate,
        started.headers()["location"].to_str().expect("ASCII"),
    );
    let digest = support::fixtures::sha256(b"over h2");
    let request = Request::put(format!("{location}&digest={digest}"))
        .body(full(&b"over h2"[..]))
        .expect("request");
    let finished = client.request(request).await.expect("h2 PUT");

    assert_eq!(finished.status(), StatusCode::CREATED);
    let (_, _, pulled) = pull_digest(&format!("{gate}/v2/h2/blobs/{digest}")).await;
    assert_eq!(pulled, digest);
    drop(registry);
}

#[tokio::test]
async fn expect_continue_is_answered_by_the_gate() {
    let (registry, gate) = support::registry_and_gate().await;
    let started = send(
        Method::POST,
        &format!("{gate}/v2/expect/blobs/uploads/"),
        &[],
        empty(),
    )
    .await;
    let location = absolute(&gate, started.header("location").expect("location"));
    let target = location.trim_start_matches(&gate);
    let body = b"expect body";
    let digest = support::fixtures::sha256(body);
    let address = gate.trim_start_matches("http://");

    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = format!(
        "PUT {target}&digest={digest} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let mut interim = [0u8; 25];
    stream
        .read_exact(&mut interim)
        .await
        .expect("read interim answer");
    stream.write_all(body).await.expect("send body");
    let mut rest = vec![0u8; 12];
    stream
        .read_exact(&mut rest)
        .await
        .expect("read final status line");

    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(&rest, b"HTTP/1.1 201");
    drop(registry);
}

#[tokio::test]
async fn unreachable_upstream_gives_502_json() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let gate = support::start_gate(support::settings(&format!("http://{closed}"))).await;

    let reply = support::get(&format!("{gate}/v2/")).await;

    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error()["code"], "UNAVAILABLE");
    assert_eq!(
        reply.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
}

/// Scripted upstream stub: no registry here answers with a redirect to object storage, so a
/// stub stands in for one. It answers every request with `status` and `location`, and
/// records the requests it receives.
async fn start_stub(
    status: StatusCode,
    location: String,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<Request<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stub");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sender = sender.clone();
            let location = location.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let _ = sender.send(request.map(|_| ()));
                let response = Response::builder()
                    .status(status)
                    .header("location", location.as_str())
                    .header("content-length", "0")
                    .body(empty())
                    .expect("response");
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (url, receiver)
}

#[tokio::test]
async fn redirects_to_object_storage_are_relayed_not_followed() {
    let foreign = "http://127.0.0.2:9/bucket/blob?X-Amz-Signature=a%2Bb&X-Amz-Expires=60";
    let (stub, mut received) = start_stub(StatusCode::TEMPORARY_REDIRECT, foreign.to_owned()).await;
    let gate = support::start_gate(support::settings(&stub)).await;

    let reply = send(
        Method::GET,
        &format!("{gate}/v2/a/blobs/sha256:00"),
        &[("authorization", "Bearer secret")],
        empty(),
    )
    .await;

    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(reply.header("location"), Some(foreign));
    let request = received.recv().await.expect("stub saw the request");
    assert_eq!(request.headers()["authorization"], "Bearer secret");
    assert!(
        received.try_recv().is_err(),
        "the gate sent a second request"
    );
}

#[tokio::test]
async fn config_read_follows_redirect_without_credentials() {
    let (storage, mut storage_requests) = start_stub(StatusCode::NOT_FOUND, String::new()).await;
    let (registry_stub, mut registry_requests) = start_stub(
        StatusCode::TEMPORARY_REDIRECT,
        format!("{storage}/bucket/config?sig=1"),
    )
    .await;
    let gate = support::start_gate(support::settings(&registry_stub)).await;
    let layer = support::fixtures::component();
    let config = support::fixtures::to_bytes(&support::fixtures::component_config(&layer));
    let manifest = support::fixtures::manifest(
        support::fixtures::descriptor(support::fixtures::WASM_CONFIG, &config),
        vec![support::fixtures::descriptor(
            support::fixtures::WASM_LAYER,
            &layer,
        )],
    );

    let reply = send(
        Method::PUT,
        &format!("{gate}/v2/demo/manifests/v1"),
        &[
            ("content-type", support::fixtures::OCI_MANIFEST),
            ("authorization", "Bearer secret"),
        ],
        full(support::fixtures::to_bytes(&manifest)),
    )
    .await;

    let to_registry = registry_requests
        .recv()
        .await
        .expect("config read reached the registry");
    assert_eq!(to_registry.method(), Method::GET);
    assert_eq!(to_registry.headers()["authorization"], "Bearer secret");
    let to_storage = storage_requests
        .recv()
        .await
        .expect("redirect was followed");
    assert_eq!(to_storage.uri(), "/bucket/config?sig=1");
    assert!(
        to_storage.headers().get("authorization").is_none(),
        "credentials leaked to object storage"
    );
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    // The config and the layer are read side by side; neither read, nor anything else, may
    // be a forwarded manifest.
    while let Ok(request) = registry_requests.try_recv() {
        assert_eq!(request.method(), Method::GET, "the manifest was forwarded");
    }
    while let Ok(request) = storage_requests.try_recv() {
        assert!(
            request.headers().get("authorization").is_none(),
            "credentials leaked to object storage"
        );
    }
}

#[tokio::test]
async fn config_read_timeout_gives_504_json() {
    // Scripted upstream stub: it accepts connections and never answers, which no registry
    // here does on purpose.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stub");
    let stub = format!("http://{}", silent.local_addr().expect("address"));
    let (held_sender, mut held) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = silent.accept().await {
            let _ = held_sender.send(stream);
        }
    });
    let mut settings = support::settings(&stub);
    settings.limits.blob_read_timeout = std::time::Duration::from_millis(200);
    let gate = support::start_gate(settings).await;
    let layer = support::fixtures::component();
    let config = support::fixtures::to_bytes(&support::fixtures::component_config(&layer));
    let manifest = support::fixtures::manifest(
        support::fixtures::descriptor(support::fixtures::WASM_CONFIG, &config),
        vec![support::fixtures::descriptor(
            support::fixtures::WASM_LAYER,
            &layer,
        )],
    );

    let reply = support::put_manifest(
        &gate,
        "demo",
        "v1",
        support::fixtures::OCI_MANIFEST,
        support::fixtures::to_bytes(&manifest),
    )
    .await;

    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.error()["code"], "UNAVAILABLE");
    assert!(
        held.try_recv().is_ok(),
        "the gate never connected to the upstream"
    );
}

/// Sends raw request bytes and returns the status code and body of the answer.
async fn raw_exchange(gate: &str, request: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(gate.trim_start_matches("http://"))
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn asterisk_targets_and_connect_are_rejected() {
    let (registry, gate) = support::registry_and_gate().await;

    let (options_status, options_body) = raw_exchange(
        &gate,
        "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (put_status, _) = raw_exchange(
        &gate,
        "PUT * HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
    )
    .await;
    let (connect_status, connect_body) = raw_exchange(
        &gate,
        "CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\nConnection: close\r\n\r\n",
    )
    .await;

    assert_eq!(options_status, 400);
    assert!(options_body.contains("\"UNSUPPORTED\""), "{options_body}");
    assert_eq!(put_status, 400);
    assert_eq!(connect_status, 405);
    assert!(connect_body.contains("\"UNSUPPORTED\""), "{connect_body}");
    assert!(registry.requests().is_empty(), "{:?}", registry.requests());
}

/// Scripted upstream stub that answers every request with the request's headers as JSON, so
/// a test can see what the gate forwarded; no registry here echoes headers.
async fn start_echo_stub() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stub");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|request: Request<Incoming>| async move {
                let headers: serde_json::Map<String, serde_json::Value> = request
                    .headers()
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.to_string(),
                            serde_json::json!(value.to_str().unwrap_or_default()),
                        )
                    })
                    .collect();
                let body = serde_json::to_vec(&headers).expect("JSON");
                Ok::<_, Infallible>(Response::new(full(body)))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    url
}

#[tokio::test]
async fn forwarding_headers_depend_on_trust() {
    let stub = start_echo_stub().await;
    let untrusting = support::start_gate(support::settings(&stub)).await;
    let mut trusting_settings = support::settings(&stub);
    trusting_settings.trusted_proxies = vec!["127.0.0.0/8".parse().expect("network")];
    let trusting = support::start_gate(trusting_settings).await;
    let incoming = [
        ("x-real-ip", "203.0.113.9"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "registry.example.com"),
        (
            "forwarded",
            "for=203.0.113.7;proto=https;host=registry.example.com",
        ),
    ];

    let untrusted = send(
        Method::GET,
        &format!("{untrusting}/v2/"),
        &incoming,
        empty(),
    )
    .await
    .json();
    let trusted = send(Method::GET, &format!("{trusting}/v2/"), &incoming, empty())
        .await
        .json();

    let gate_host = untrusting.trim_start_matches("http://");
    assert_eq!(untrusted["x-forwarded-for"], "127.0.0.1");
    assert_eq!(untrusted["x-forwarded-proto"], "http");
    assert_eq!(untrusted["x-forwarded-host"], gate_host);
    assert!(
        untrusted.get("forwarded").is_none(),
        "an untrusted Forwarded header was kept"
    );
    assert_eq!(trusted["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(trusted["x-forwarded-proto"], "https");
    assert_eq!(trusted["x-forwarded-host"], "registry.example.com");
    let forwarded = trusted["forwarded"].as_str().expect("Forwarded kept");
    assert!(
        forwarded
            .starts_with("for=203.0.113.7;proto=https;host=registry.example.com, for=127.0.0.1;"),
        "{forwarded}"
    );
    assert!(untrusted.get("x-request-id").is_some());
}

#[tokio::test]
async fn trusted_proxy_host_is_the_public_origin() {
    let registry = Registry::start_with_own_host();
    let mut settings = support::settings(&registry.url());
    settings.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    let gate = support::start_gate(settings).await;

    let started = send(
        Method::POST,
        &format!("{gate}/v2/proxied/blobs/uploads/"),
        &[
            ("x-forwarded-host", "registry.example.com"),
            ("x-forwarded-proto", "https"),
        ],
        empty(),
    )
    .await;

    let location = started.header("location").expect("Location");
    assert!(
        location.starts_with("https://registry.example.com/v2/proxied/blobs/uploads/"),
        "{location}"
    );
}
