//! Production serving: metrics, health and readiness, request ids, timeouts that cut slow
//! clients without cutting slow transfers, and the graceful drain.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::Frame;
use support::{Registry, fixtures, get, push_blob, put_manifest, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmgate::body::{self as gate_body, empty};

/// Value of the sample `name{labels}` in an OpenMetrics text, or 0 when absent.
fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_pushes_and_rejections() {
    let registry = Registry::start();
    let (gate, handle) = support::start_gate_with_handle(support::settings(&registry.url())).await;
    let admin = support::start_admin(handle).await;
    let component = fixtures::component();
    let config = fixtures::to_bytes(&fixtures::component_config(&component));
    push_blob(&gate, "metrics/app", &config).await;
    push_blob(&gate, "metrics/app", &component).await;
    let manifest = fixtures::manifest(
        fixtures::descriptor(fixtures::WASM_CONFIG, &config),
        vec![fixtures::descriptor(fixtures::WASM_LAYER, &component)],
    );
    let mut lying = manifest.clone();
    lying["layers"][0]["digest"] = serde_json::json!(fixtures::sha256(b"other"));

    let accepted = put_manifest(
        &gate,
        "metrics/app",
        "v1",
        fixtures::OCI_MANIFEST,
        fixtures::to_bytes(&manifest),
    )
    .await;
    let rejected = put_manifest(
        &gate,
        "metrics/app",
        "v2",
        fixtures::OCI_MANIFEST,
        fixtures::to_bytes(&lying),
    )
    .await;
    let scraped = get(&format!("{admin}/metrics")).await;

    assert_eq!(accepted.status, StatusCode::CREATED);
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
    assert_eq!(scraped.status, StatusCode::OK);
    assert!(
        scraped
            .header("content-type")
            .is_some_and(|value| value.starts_with("application/openmetrics-text"))
    );
    let text = String::from_utf8(scraped.body.to_vec()).expect("UTF-8");
    assert_eq!(
        sample(
            &text,
            r#"wasmgate_manifest_decisions_total{outcome="accepted",rule=""}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"wasmgate_manifest_decisions_total{outcome="rejected",rule="config-layer-digests"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"wasmgate_requests_total{route="manifest",method="PUT",status="201"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"wasmgate_requests_total{route="manifest",method="PUT",status="400"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(
        sample(&text, "wasmgate_received_bytes_total") >= component.len() as f64,
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"wasmgate_blob_read_duration_seconds_count{role="config"}"#
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"wasmgate_upstream_request_duration_seconds_count{purpose="forward"}"#
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                "wasmgate_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0,
        "{text}"
    );
    assert_eq!(sample(&text, "wasmgate_in_flight_requests"), 0.0, "{text}");
}

#[tokio::test]
async fn readiness_follows_the_upstream() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let (gate, handle) =
        support::start_gate_with_handle(support::settings(&format!("http://{closed}"))).await;
    let admin = support::start_admin(handle).await;

    let health = get(&format!("{admin}/healthz")).await;
    let ready = get(&format!("{admin}/readyz")).await;
    let forwarded = get(&format!("{gate}/v2/")).await;

    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&ready.body).contains("upstream"));
    assert_eq!(forwarded.status, StatusCode::BAD_GATEWAY);
    assert_eq!(forwarded.error()["code"], "UNAVAILABLE");

    let registry = Registry::start();
    let (_, handle) = support::start_gate_with_handle(support::settings(&registry.url())).await;
    let admin = support::start_admin(handle).await;
    assert_eq!(get(&format!("{admin}/readyz")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn request_ids_are_kept_or_generated() {
    let (registry, gate) = support::registry_and_gate().await;

    let kept = send(
        Method::GET,
        &format!("{gate}/v2/"),
        &[("x-request-id", "trace-123")],
        empty(),
    )
    .await;
    let generated = get(&format!("{gate}/v2/")).await;
    let rejected = put_manifest(&gate, "Bad", "v1", fixtures::OCI_MANIFEST, b"{}".to_vec()).await;

    assert_eq!(kept.header("x-request-id"), Some("trace-123"));
    assert!(
        generated
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty() && id != "trace-123")
    );
    assert!(rejected.header("x-request-id").is_some());
    drop(registry);
}

/// A body of `chunks` frames of `size` bytes, one every `pause`.
fn paced_body(chunks: usize, size: usize, pause: Duration) -> gate_body::Body {
    let stream = futures_util::stream::unfold(0, move |sent| async move {
        if sent == chunks {
            return None;
        }
        if sent > 0 {
            tokio::time::sleep(pause).await;
        }
        let frame = Frame::data(Bytes::from(vec![b'x'; size]));
        Some((Ok::<_, Infallible>(frame), sent + 1))
    });
    gate_body::stream(http_body_util::StreamBody::new(stream))
}

#[tokio::test]
async fn slow_headers_are_cut_but_slow_bodies_are_not() {
    let registry = Registry::start();
    let mut settings = support::settings(&registry.url());
    settings.limits.header_read_timeout = Duration::from_millis(500);
    settings.limits.body_idle_timeout = Duration::from_millis(800);
    let gate = support::start_gate(settings).await;

    // Headers one byte every 100 ms never finish within 500 ms.
    let mut stream = tokio::net::TcpStream::connect(gate.trim_start_matches("http://"))
        .await
        .expect("connect");
    let mut cut = false;
    for byte in b"GET /v2/ HTTP/1.1\r\nHost: gate\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer).await;
    assert!(
        cut || read.is_err() || !answer.starts_with(b"HTTP/1.1 200"),
        "slow headers were served"
    );

    // A connection that never sends a byte is closed after the header read timeout too.
    let mut silent = tokio::net::TcpStream::connect(gate.trim_start_matches("http://"))
        .await
        .expect("connect");
    let mut nothing = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut nothing)).await;
    assert!(closed.is_ok(), "a silent connection stayed open");

    // An upload whose frames arrive every 300 ms, for about 3 s in all, is never idle for
    // 800 ms, so it completes although it outlasts both timeouts.
    let started = send(
        Method::POST,
        &format!("{gate}/v2/slow/blobs/uploads/"),
        &[],
        empty(),
    )
    .await;
    let location = support::absolute(&gate, started.header("location").expect("location"));
    let digest = fixtures::sha256(&vec![b'x'; 10 * 4096]);
    let finished = send(
        Method::PUT,
        &format!("{location}&digest={digest}"),
        &[],
        paced_body(10, 4096, Duration::from_millis(300)),
    )
    .await;
    assert_eq!(finished.status, StatusCode::CREATED, "{:?}", finished.body);
}

#[tokio::test]
async fn stalled_upload_is_cut_with_408() {
    let registry = Registry::start();
    let mut settings = support::settings(&registry.url());
    settings.limits.body_idle_timeout = Duration::from_millis(300);
    let gate = support::start_gate(settings).await;
    let started = send(
        Method::POST,
        &format!("{gate}/v2/stall/blobs/uploads/"),
        &[],
        empty(),
    )
    .await;
    let location = support::absolute(&gate, started.header("location").expect("location"));

    let stalled = send(
        Method::PATCH,
        &location,
        &[],
        paced_body(2, 1024, Duration::from_secs(5)),
    )
    .await;

    assert_eq!(
        stalled.status,
        StatusCode::REQUEST_TIMEOUT,
        "{:?}",
        stalled.body
    );
    assert_eq!(stalled.error()["code"], "UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_uploads_and_refuses_new_connections() {
    let registry = Registry::start();
    let stoppable = support::start_stoppable_gate(support::settings(&registry.url())).await;
    let admin = support::start_admin(stoppable.gate.clone()).await;
    let gate = stoppable.url.clone();
    let started = send(
        Method::POST,
        &format!("{gate}/v2/drain/blobs/uploads/"),
        &[],
        empty(),
    )
    .await;
    let location = support::absolute(&gate, started.header("location").expect("location"));
    // 200 MiB in 1 MiB frames, paced so the upload is still running when the drain starts.
    let chunks = 200;
    let digest = {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        let frame = vec![b'x'; 1024 * 1024];
        for _ in 0..chunks {
            hasher.update(&frame);
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("sha256:{hex}")
    };
    let (first_frame_sent, first_frame) = tokio::sync::oneshot::channel::<()>();
    let mut first_frame_sent = Some(first_frame_sent);
    let stream = futures_util::stream::unfold(0, move |sent| {
        if sent == 1
            && let Some(signal) = first_frame_sent.take()
        {
            let _ = signal.send(());
        }
        async move {
            if sent == chunks {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 1024 * 1024]))),
                sent + 1,
            ))
        }
    });
    let upload_url = format!("{location}&digest={digest}");
    let upload = tokio::spawn(async move {
        send(
            Method::PUT,
            &upload_url,
            &[],
            gate_body::stream(http_body_util::StreamBody::new(stream)),
        )
        .await
    });

    first_frame.await.expect("the upload started");
    stoppable.stop.send(()).expect("gate is running");
    let during = get(&format!("{admin}/readyz")).await;
    // The listener closes right after readiness turns false; yield until it has.
    let mut refused = false;
    for _ in 0..1000 {
        if tokio::net::TcpStream::connect(gate.trim_start_matches("http://"))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    let finished = upload.await.expect("upload task");
    stoppable.served.await.expect("serve returned");

    assert_eq!(during.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&during.body).contains("draining"));
    assert!(
        refused,
        "new connections were still accepted during the drain"
    );
    assert_eq!(finished.status, StatusCode::CREATED, "{:?}", finished.body);
    assert!(
        registry
            .stored_blob(&digest)
            .is_some_and(|blob| blob.len() == chunks * 1024 * 1024)
    );
}

#[tokio::test]
async fn unknown_methods_share_one_metric_label() {
    let (registry, handle) = {
        let registry = Registry::start();
        let (gate, handle) =
            support::start_gate_with_handle(support::settings(&registry.url())).await;
        for method in ["BREW", "WHEN", "PROPFIND"] {
            send(
                Method::from_bytes(method.as_bytes()).expect("method"),
                &format!("{gate}/v2/"),
                &[],
                empty(),
            )
            .await;
        }
        (registry, handle)
    };
    let admin = support::start_admin(handle).await;

    let text =
        String::from_utf8(get(&format!("{admin}/metrics")).await.body.to_vec()).expect("UTF-8");

    assert!(
        !text.contains("BREW") && !text.contains("PROPFIND"),
        "{text}"
    );
    assert!(text.contains(r#"method="other""#), "{text}");
    drop(registry);
}

#[tokio::test]
async fn response_timeout_starts_after_the_request_is_sent() {
    // Scripted upstream stub: it accepts connections and never answers, which no registry
    // here does on purpose.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stub");
    let stub = format!("http://{}", silent.local_addr().expect("address"));
    let (held_sender, _held) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = silent.accept().await {
            let _ = held_sender.send(stream);
        }
    });
    let mut settings = support::settings(&stub);
    settings.limits.upstream_response_timeout = Duration::from_millis(300);
    let hung = support::start_gate(settings).await;
    let registry = Registry::start();
    let mut settings = support::settings(&registry.url());
    settings.limits.upstream_response_timeout = Duration::from_millis(300);
    let gate = support::start_gate(settings).await;

    let timed_out = get(&format!("{hung}/v2/")).await;
    let started = send(
        Method::POST,
        &format!("{gate}/v2/long/blobs/uploads/"),
        &[],
        empty(),
    )
    .await;
    let location = support::absolute(&gate, started.header("location").expect("location"));
    let digest = fixtures::sha256(&vec![b'x'; 8 * 1024]);
    // The upload lasts about 1.4 s, far longer than the response timeout.
    let uploaded = send(
        Method::PUT,
        &format!("{location}&digest={digest}"),
        &[],
        paced_body(8, 1024, Duration::from_millis(200)),
    )
    .await;

    assert_eq!(timed_out.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(timed_out.error()["code"], "UNAVAILABLE");
    assert_eq!(uploaded.status, StatusCode::CREATED, "{:?}", uploaded.body);
}
