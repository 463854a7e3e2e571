//! Benchmark driver for `scripts/bench.sh`: measures a registry directly and through the
//! gate in the same run, and prints one Markdown table row per measurement.
//!
//! Usage: `bench DIRECT_URL GATE_URL BLOB_MIB MANIFEST_PUSHES`

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use sha2::{Digest, Sha256};
use wasmgate::body::{self, Body, empty, full};

const MIB: u64 = 1024 * 1024;
const WARMUP_PUSHES: usize = 50;
/// Size of the component whose inspection is timed, in MiB.
const INSPECTED_MIB: usize = 10;
/// Distinct components pushed to time inspection; each one is read cold once.
const INSPECTION_SAMPLES: usize = 7;

type HttpClient = Client<HttpConnector, Body>;

/// `length` bytes of one repeated 1 MiB frame, with an exact size so the upload carries
/// `Content-Length`.
struct RepeatBody {
    frame: Bytes,
    remaining: u64,
}

impl HttpBody for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let length = self.remaining.min(self.frame.len() as u64);
        self.remaining -= length;
        Poll::Ready(Some(Ok(Frame::data(self.frame.slice(..length as usize)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn frame() -> Bytes {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..MIB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    content_type: Option<&str>,
    body: Body,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = client
        .request(request.body(body).expect("request"))
        .await
        .expect("send");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

/// Uploads a blob with POST and one PUT; returns the digest.
async fn upload(client: &HttpClient, base: &str, repository: &str, digest: &str, body: Body) {
    let (status, headers, _) = send(
        client,
        Method::POST,
        &format!("{base}/v2/{repository}/blobs/uploads/"),
        None,
        empty(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = headers["location"].to_str().expect("ASCII").to_owned();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let (status, _, body) = send(
        client,
        Method::PUT,
        &format!("{location}&digest={digest}"),
        Some("application/octet-stream"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body:?}");
}

fn blob_digest(frame: &Bytes, mib: u64) -> String {
    let mut hasher = Sha256::new();
    for _ in 0..mib {
        hasher.update(frame);
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

async fn blob_throughput(
    client: &HttpClient,
    base: &str,
    repository: &str,
    frame: &Bytes,
    mib: u64,
    digest: &str,
) -> (f64, f64) {
    let started = Instant::now();
    upload(
        client,
        base,
        repository,
        digest,
        body::stream(RepeatBody {
            frame: frame.clone(),
            remaining: mib * MIB,
        }),
    )
    .await;
    let push = mib as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let request = Request::get(format!("{base}/v2/{repository}/blobs/{digest}"))
        .body(empty())
        .expect("request");
    let mut response = client.request(request).await.expect("pull").into_body();
    let mut received = 0u64;
    while let Some(frame) = response.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, mib * MIB);
    let pull = mib as f64 / started.elapsed().as_secs_f64();
    (push, pull)
}

/// Pushes a WebAssembly manifest `count` times under new tags; returns sorted latencies.
async fn manifest_latencies(
    client: &HttpClient,
    base: &str,
    repository: &str,
    count: usize,
) -> Vec<Duration> {
    let layer =
        wat::parse_str(r#"(module (func (export "f") (result i32) i32.const 7))"#).expect("module");
    let config = serde_json::to_vec(&json!({
        "created": "2026-01-01T00:00:00Z", "author": null, "architecture": "wasm", "os": "wasip1",
        "layerDigests": [sha256(&layer)], "component": null
    }))
    .expect("config");
    upload(
        client,
        base,
        repository,
        &sha256(&layer),
        full(layer.clone()),
    )
    .await;
    upload(
        client,
        base,
        repository,
        &sha256(&config),
        full(config.clone()),
    )
    .await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/wasm", "digest": sha256(&layer), "size": layer.len()}]
    }))
    .expect("manifest");
    let manifest = Bytes::from(manifest);

    let mut latencies = Vec::with_capacity(count);
    for index in 0..WARMUP_PUSHES + count {
        let url = format!("{base}/v2/{repository}/manifests/t{index}");
        let started = Instant::now();
        let (status, _, body) = send(
            client,
            Method::PUT,
            &url,
            Some("application/vnd.oci.image.manifest.v1+json"),
            full(manifest.clone()),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::CREATED, "{body:?}");
        if index >= WARMUP_PUSHES {
            latencies.push(elapsed);
        }
    }
    latencies.sort();
    latencies
}

/// A component of about `mib` MiB: a core module whose data segment fills that much memory.
/// `seed` changes the data, so every sample has its own layer digest.
fn big_component(mib: usize, seed: usize) -> Vec<u8> {
    let length = mib * 1024 * 1024;
    let pages = length / 65536 + 1;
    let data: String = (0..length)
        .map(|index| char::from(b'a' + ((index + seed) % 26) as u8))
        .collect();
    let text =
        format!("(component (core module (memory {pages}) (data (i32.const 0) \"{data}\")))");
    wat::parse_str(text).expect("component WAT compiles")
}

/// Pushes `samples` distinct components of `mib` MiB: each manifest once direct, once through
/// the gate (cold: the layer is read and inspected), and again through the gate under a new
/// tag (cached). Returns the sorted latencies of the three.
async fn inspection_latencies(
    client: &HttpClient,
    direct: &str,
    gate: &str,
    mib: usize,
    samples: usize,
) -> [Vec<Duration>; 3] {
    let mut results: [Vec<Duration>; 3] = Default::default();
    for sample in 0..samples {
        let layer = big_component(mib, sample);
        let config = serde_json::to_vec(&json!({
            "created": "2026-01-01T00:00:00Z", "author": null, "architecture": "wasm", "os": "wasip2",
            "layerDigests": [sha256(&layer)], "component": {"exports": [], "imports": [], "target": null}
        }))
        .expect("config");
        let manifest = Bytes::from(
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": sha256(&config), "size": config.len()},
                "layers": [{"mediaType": "application/wasm", "digest": sha256(&layer), "size": layer.len()}]
            }))
            .expect("manifest"),
        );
        for (base, repository) in [
            (direct, "bench/inspect-direct"),
            (gate, "bench/inspect-gate"),
        ] {
            upload(
                client,
                base,
                repository,
                &sha256(&layer),
                full(layer.clone()),
            )
            .await;
            upload(
                client,
                base,
                repository,
                &sha256(&config),
                full(config.clone()),
            )
            .await;
        }
        let pushes = [
            (direct, "bench/inspect-direct", format!("cold-{sample}")),
            (gate, "bench/inspect-gate", format!("cold-{sample}")),
            (gate, "bench/inspect-gate", format!("cached-{sample}")),
        ];
        for (slot, (base, repository, tag)) in pushes.iter().enumerate() {
            let url = format!("{base}/v2/{repository}/manifests/{tag}");
            let started = Instant::now();
            let (status, _, body) = send(
                client,
                Method::PUT,
                &url,
                Some("application/vnd.oci.image.manifest.v1+json"),
                full(manifest.clone()),
            )
            .await;
            let elapsed = started.elapsed();
            assert_eq!(status, StatusCode::CREATED, "{body:?}");
            results[slot].push(elapsed);
        }
    }
    for latencies in &mut results {
        latencies.sort();
    }
    results
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, phase, direct, gate, mib, pushes] = args.as_slice() else {
        eprintln!("usage: bench blobs|manifests DIRECT_URL GATE_URL BLOB_MIB MANIFEST_PUSHES");
        std::process::exit(2);
    };
    let mib: u64 = mib.parse().expect("BLOB_MIB is a number");
    let pushes: usize = pushes.parse().expect("MANIFEST_PUSHES is a number");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    if phase == "blobs" {
        blobs(&client, direct, gate, mib).await;
    } else {
        manifests(&client, direct, gate, pushes).await;
    }
}

/// Prints the blob throughput rows.
async fn blobs(client: &HttpClient, direct: &str, gate: &str, mib: u64) {
    let frame = frame();
    let digest = blob_digest(&frame, mib);

    let (direct_push, direct_pull) =
        blob_throughput(client, direct, "bench/direct", &frame, mib, &digest).await;
    let (gate_push, gate_pull) =
        blob_throughput(client, gate, "bench/gate", &frame, mib, &digest).await;
    println!(
        "| {mib} MiB blob push | {direct_push:.0} MiB/s | {gate_push:.0} MiB/s | {:.2} |",
        gate_push / direct_push
    );
    println!(
        "| {mib} MiB blob pull | {direct_pull:.0} MiB/s | {gate_pull:.0} MiB/s | {:.2} |",
        gate_pull / direct_pull
    );
}

/// Prints the manifest latency rows.
async fn manifests(client: &HttpClient, direct: &str, gate: &str, pushes: usize) {
    let direct_latencies =
        manifest_latencies(client, direct, "bench/manifests-direct", pushes).await;
    let gate_latencies = manifest_latencies(client, gate, "bench/manifests-gate", pushes).await;
    for (name, fraction) in [("p50", 0.50), ("p99", 0.99)] {
        let direct = percentile(&direct_latencies, fraction);
        let gate = percentile(&gate_latencies, fraction);
        println!(
            "| WebAssembly manifest push {name} ({pushes} pushes) | {direct:.2} ms | {gate:.2} ms | +{:.2} ms |",
            gate - direct
        );
    }

    let [inspect_direct, cold, cached] =
        inspection_latencies(client, direct, gate, INSPECTED_MIB, INSPECTION_SAMPLES).await;
    let direct_p50 = percentile(&inspect_direct, 0.5);
    for (name, latencies) in [("cold", &cold), ("cached", &cached)] {
        let gate_p50 = percentile(latencies, 0.5);
        println!(
            "| {INSPECTED_MIB} MiB component manifest push, {name} inspection (median of {INSPECTION_SAMPLES}) | {direct_p50:.2} ms | {gate_p50:.2} ms | +{:.2} ms |",
            gate_p50 - direct_p50
        );
    }
}
