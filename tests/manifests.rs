//! Manifest pushes through the gate to a real registry: valid ones are stored byte for byte,
//! invalid ones are rejected with an OCI error and never reach the registry.

mod support;

use http::StatusCode;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_wasm::{WasmClient, WasmConfig};
use serde_json::{Value, json};
use support::fixtures::{self, *};
use support::{Registry, Reply, fetch_manifest, push_blob, put_manifest, registry_and_gate};

/// Asserts that `reply` is the OCI error for `rule` and that `repository` received no
/// manifest push.
fn assert_rejected(
    reply: &Reply,
    registry: &Registry,
    repository: &str,
    status: StatusCode,
    code: &str,
    rule: &str,
) {
    let error = reply.error();
    assert_eq!(reply.status, status, "status of {error}");
    assert_eq!(error["code"], code, "code of {error}");
    assert_eq!(error["detail"]["rule"], rule, "rule of {error}");
    assert!(
        error["message"].as_str().is_some_and(|m| m.len() > 20),
        "message of {error}"
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert!(
        registry.manifest_puts(repository).is_empty(),
        "registry received {:?}",
        registry.manifest_puts(repository)
    );
}

/// Asserts that the registry stores `body` under `reference`, byte for byte.
async fn assert_stored(registry: &Registry, repository: &str, reference: &str, body: &[u8]) {
    let stored = fetch_manifest(registry, repository, reference).await;
    assert_eq!(stored.status, StatusCode::OK, "{:?}", stored.body);
    assert_eq!(stored.body.as_ref(), body, "stored bytes differ");
    assert_eq!(
        stored.header("docker-content-digest"),
        Some(fixtures::sha256(body).as_str())
    );
}

fn wasm_client() -> WasmClient {
    WasmClient::new(oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    }))
}

fn reference(gate: &str, repository_and_tag: &str) -> oci_client::Reference {
    let host = gate.trim_start_matches("http://");
    format!("{host}/{repository_and_tag}")
        .parse()
        .expect("valid reference")
}

#[tokio::test]
async fn component_pushed_with_oci_client_is_stored() {
    let (registry, gate) = registry_and_gate().await;
    let component = fixtures::component();
    let (config, layer) =
        WasmConfig::from_raw_component(component.clone(), None).expect("component decodes");
    let image = reference(&gate, "demo/hello:0.1.0");

    let client = wasm_client();
    client
        .push(&image, &RegistryAuth::Anonymous, layer, config, None)
        .await
        .expect("push through the gate");

    let pushed = registry.manifest_puts("demo/hello");
    assert_eq!(pushed, ["PUT /v2/demo/hello/manifests/0.1.0"]);
    let direct = fetch_manifest(&registry, "demo/hello", "0.1.0").await;
    let (manifest, pulled_config, digest) = client
        .pull_manifest_and_config(&image, &RegistryAuth::Anonymous)
        .await
        .expect("pull through the gate");
    assert_eq!(
        direct.header("docker-content-digest"),
        Some(digest.as_str())
    );
    assert_eq!(fixtures::sha256(&direct.body), digest);
    assert_eq!(manifest.layers[0].digest, fixtures::sha256(&component));
    assert_eq!(pulled_config.os, "wasip2");
    let pulled = client
        .pull(&image, &RegistryAuth::Anonymous)
        .await
        .expect("pull layers");
    assert_eq!(pulled.layers[0].data.as_ref(), component.as_slice());
}

#[tokio::test]
async fn core_module_with_wasip1_is_stored() {
    let (registry, gate) = registry_and_gate().await;
    let module = fixtures::core_module();
    let (config, layer) = WasmConfig::from_raw_module(module.clone(), None).expect("module config");
    let image = reference(&gate, "demo/module:1");

    wasm_client()
        .push(&image, &RegistryAuth::Anonymous, layer, config, None)
        .await
        .expect("push");

    let direct = fetch_manifest(&registry, "demo/module", "1").await;
    assert_eq!(direct.status, StatusCode::OK);
    let manifest = direct.json();
    assert_eq!(manifest["layers"][0]["digest"], fixtures::sha256(&module));
}

#[tokio::test]
async fn oci_image_index_docker_and_subject_manifests_are_stored() {
    let (registry, gate) = registry_and_gate().await;
    let repository = "team/app";
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"not really a tarball, but registries store any bytes";
    push_blob(&gate, repository, config).await;
    push_blob(&gate, repository, layer).await;

    let image = fixtures::to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(IMAGE_CONFIG, config),
        "layers": [descriptor(IMAGE_LAYER, layer)],
        "annotations": {"org.opencontainers.image.source": "https://example.com/app"}
    }));
    let image_digest = fixtures::sha256(&image);
    let reply = put_manifest(
        &gate,
        repository,
        &image_digest,
        OCI_MANIFEST,
        image.clone(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(
        reply.header("docker-content-digest"),
        Some(image_digest.as_str())
    );
    assert_stored(&registry, repository, &image_digest, &image).await;

    let index = fixtures::to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": image_digest, "size": image.len(),
            "platform": {"architecture": "amd64", "os": "linux"}
        }]
    }));
    let reply = put_manifest(&gate, repository, "multi", OCI_INDEX, index.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_stored(&registry, repository, "multi", &index).await;

    let docker_config = br#"{"architecture":"amd64","os":"linux","config":{}}"#;
    push_blob(&gate, repository, docker_config).await;
    let docker = fixtures::to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", docker_config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", layer)]
    }));
    let reply = put_manifest(&gate, repository, "docker", DOCKER_MANIFEST, docker.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_stored(&registry, repository, "docker", &docker).await;

    let empty = b"{}";
    push_blob(&gate, repository, empty).await;
    let signature = b"signature bytes";
    push_blob(&gate, repository, signature).await;
    let referrer = fixtures::to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": fixtures::sha256(empty), "size": 2, "data": "e30="},
        "layers": [descriptor("application/vnd.example.signature.v1", signature)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image_digest, "size": image.len()}
    }));
    let referrer_digest = fixtures::sha256(&referrer);
    let reply = put_manifest(
        &gate,
        repository,
        &referrer_digest,
        OCI_MANIFEST,
        referrer.clone(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_stored(&registry, repository, &referrer_digest, &referrer).await;
}

/// Pushes `body` as an OCI manifest under tag `v1` of `repo` and checks the rejection.
async fn assert_manifest_rejected(
    body: &[u8],
    media_type: &str,
    status: StatusCode,
    code: &str,
    rule: &str,
) {
    let (registry, gate) = registry_and_gate().await;

    let reply = put_manifest(&gate, "repo", "v1", media_type, body.to_vec()).await;

    assert_rejected(&reply, &registry, "repo", status, code, rule);
}

fn valid_image() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(IMAGE_CONFIG, b"{}"),
        "layers": [descriptor(IMAGE_LAYER, b"layer")]
    })
}

fn with(mut value: Value, pointer: &str, replacement: Value) -> Vec<u8> {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a slash");
    let parent = value
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent} exists"));
    match key.parse::<usize>() {
        Ok(index) => parent[index] = replacement,
        Err(_) => parent[key] = replacement,
    }
    fixtures::to_bytes(&value)
}

fn adding(mut value: Value, key: &str, extra: Value) -> Vec<u8> {
    value[key] = extra;
    fixtures::to_bytes(&value)
}

#[tokio::test]
async fn structure_rules_reject_with_their_rule() {
    let bad = StatusCode::BAD_REQUEST;
    let digest = fixtures::sha256(b"{}");
    let cases: Vec<(&str, Vec<u8>, &str, &str, &str)> = vec![
        ("schema 1", b"{}".to_vec(), "application/vnd.docker.distribution.manifest.v1+prettyjws", "MANIFEST_INVALID", "schema-1"),
        ("unknown type", b"{}".to_vec(), "application/json", "MANIFEST_INVALID", "content-type-unsupported"),
        ("not UTF-8", b"{\"a\":\"\xff\xfe\"}".to_vec(), OCI_MANIFEST, "MANIFEST_INVALID", "utf-8"),
        ("not JSON", b"{\"schemaVersion\":".to_vec(), OCI_MANIFEST, "MANIFEST_INVALID", "json-syntax"),
        ("not an object", b"[1,2]".to_vec(), OCI_MANIFEST, "MANIFEST_INVALID", "not-an-object"),
        (
            "duplicate config",
            format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"{IMAGE_CONFIG}","digest":"{digest}","size":2}},"layers":[],"config":{{}}}}"#).into_bytes(),
            OCI_MANIFEST, "MANIFEST_INVALID", "duplicate-key",
        ),
        (
            "case variant",
            format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"{IMAGE_CONFIG}","digest":"{digest}","size":2}},"layers":[],"Config":{{}}}}"#).into_bytes(),
            OCI_MANIFEST, "MANIFEST_INVALID", "case-variant-key",
        ),
        ("media type mismatch", fixtures::to_bytes(&valid_image()), OCI_INDEX, "MANIFEST_INVALID", "media-type-mismatch"),
        ("manifest with manifests", adding(valid_image(), "manifests", json!([])), OCI_MANIFEST, "MANIFEST_INVALID", "manifest-with-manifests"),
        (
            "index with layers",
            fixtures::to_bytes(&json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[],"layers":[]})),
            OCI_INDEX, "MANIFEST_INVALID", "index-with-config-or-layers",
        ),
        ("schema version", with(valid_image(), "/schemaVersion", json!(1)), OCI_MANIFEST, "MANIFEST_INVALID", "schema-version"),
        ("missing config", with(valid_image(), "/config", Value::Null), OCI_MANIFEST, "MANIFEST_INVALID", "missing-field"),
        ("negative size", with(valid_image(), "/layers/0/size", json!(-1)), OCI_MANIFEST, "MANIFEST_INVALID", "size-negative"),
        ("fractional size", with(valid_image(), "/layers/0/size", json!(1.5)), OCI_MANIFEST, "MANIFEST_INVALID", "field-type"),
        ("size as string", with(valid_image(), "/config/size", json!("2")), OCI_MANIFEST, "MANIFEST_INVALID", "field-type"),
        ("bad media type", with(valid_image(), "/layers/0/mediaType", json!("tarball")), OCI_MANIFEST, "MANIFEST_INVALID", "media-type-grammar"),
        ("uppercase digest", with(valid_image(), "/config/digest", json!(digest.to_uppercase())), OCI_MANIFEST, "MANIFEST_INVALID", "digest-grammar"),
        ("short sha512", with(valid_image(), "/config/digest", json!(format!("sha512:{}", &digest[7..]))), OCI_MANIFEST, "MANIFEST_INVALID", "digest-grammar"),
        ("unknown algorithm", with(valid_image(), "/config/digest", json!("md5:d41d8cd98f00b204e9800998ecf8427e")), OCI_MANIFEST, "MANIFEST_INVALID", "digest-algorithm"),
        ("annotation value", with(valid_image(), "/layers/0/annotations", json!({"n": 1})), OCI_MANIFEST, "MANIFEST_INVALID", "annotation-value"),
        ("urls not strings", with(valid_image(), "/layers/0/urls", json!([1])), OCI_MANIFEST, "MANIFEST_INVALID", "field-type"),
        ("data mismatch", with(valid_image(), "/config/data", json!("e319")), OCI_MANIFEST, "MANIFEST_INVALID", "data-mismatch"),
        ("data wrong digest", with(valid_image(), "/config/data", json!("W10=")), OCI_MANIFEST, "MANIFEST_INVALID", "data-mismatch"),
        ("empty config needs artifactType", with(valid_image(), "/config/mediaType", json!("application/vnd.oci.empty.v1+json")), OCI_MANIFEST, "MANIFEST_INVALID", "artifact-type-required"),
        (
            "platform without os",
            fixtures::to_bytes(&json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[{"mediaType":OCI_MANIFEST,"digest":digest,"size":2,"platform":{"architecture":"amd64"}}]})),
            OCI_INDEX, "MANIFEST_INVALID", "missing-field",
        ),
    ];

    for (name, body, media_type, code, rule) in cases {
        eprintln!("case: {name}");
        assert_manifest_rejected(&body, media_type, bad, code, rule).await;
    }
}

#[tokio::test]
async fn missing_content_type_is_rejected() {
    let (registry, gate) = registry_and_gate().await;

    let reply = support::send(
        http::Method::PUT,
        &format!("{gate}/v2/repo/manifests/v1"),
        &[],
        wasmgate::body::full(fixtures::to_bytes(&valid_image())),
    )
    .await;

    assert_rejected(
        &reply,
        &registry,
        "repo",
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
        "content-type-missing",
    );
}

#[tokio::test]
async fn oversized_manifest_gets_413() {
    let registry = Registry::start();
    let mut settings = support::settings(&registry.url());
    settings.max_manifest_bytes = 1024;
    let gate = support::start_gate(settings).await;
    let mut image = valid_image();
    image["annotations"] = json!({ "padding": "x".repeat(2000) });

    let announced = put_manifest(
        &gate,
        "repo",
        "v1",
        OCI_MANIFEST,
        fixtures::to_bytes(&image),
    )
    .await;
    let streamed = support::send(
        http::Method::PUT,
        &format!("{gate}/v2/repo/manifests/v2"),
        &[("content-type", OCI_MANIFEST)],
        wasmgate::body::stream(http_body_util::StreamBody::new(futures_util::stream::iter(
            (0..4).map(|_| {
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from(
                    vec![b' '; 600],
                )))
            }),
        ))),
    )
    .await;

    assert_rejected(
        &announced,
        &registry,
        "repo",
        StatusCode::PAYLOAD_TOO_LARGE,
        "MANIFEST_INVALID",
        "manifest-too-large",
    );
    assert_rejected(
        &streamed,
        &registry,
        "repo",
        StatusCode::PAYLOAD_TOO_LARGE,
        "MANIFEST_INVALID",
        "manifest-too-large",
    );
}

#[tokio::test]
async fn invalid_names_and_references_are_rejected() {
    let (registry, gate) = registry_and_gate().await;
    let body = fixtures::to_bytes(&valid_image());
    let other = fixtures::sha256(b"other");

    let cases = [
        ("Repo", "v1", "NAME_INVALID", "name-grammar"),
        ("repo", "-v1", "TAG_INVALID", "tag-grammar"),
        ("repo", "sha256:1234", "DIGEST_INVALID", "digest-grammar"),
        (
            "repo",
            other.as_str(),
            "DIGEST_INVALID",
            "reference-digest-mismatch",
        ),
    ];
    for (repository, reference, code, rule) in cases {
        let reply = put_manifest(&gate, repository, reference, OCI_MANIFEST, body.clone()).await;
        assert_rejected(
            &reply,
            &registry,
            repository,
            StatusCode::BAD_REQUEST,
            code,
            rule,
        );
    }
}

/// Uploads `config` and `layer` to `repository` and returns the manifest that names them.
async fn stage_wasm(gate: &str, repository: &str, config: &[u8], layer: &[u8]) -> Value {
    push_blob(gate, repository, config).await;
    push_blob(gate, repository, layer).await;
    fixtures::manifest(
        descriptor(WASM_CONFIG, config),
        vec![descriptor(WASM_LAYER, layer)],
    )
}

#[tokio::test]
async fn layer_digest_mismatch_is_rejected_with_both_digests() {
    let (registry, gate) = registry_and_gate().await;
    let component = fixtures::component();
    let mut config = fixtures::component_config(&component);
    let wrong = fixtures::sha256(b"some other layer");
    config["layerDigests"] = json!([wrong]);
    let manifest = stage_wasm(
        &gate,
        "demo/hello",
        &fixtures::to_bytes(&config),
        &component,
    )
    .await;

    let reply = put_manifest(
        &gate,
        "demo/hello",
        "0.1.0",
        OCI_MANIFEST,
        fixtures::to_bytes(&manifest),
    )
    .await;

    assert_rejected(
        &reply,
        &registry,
        "demo/hello",
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
        "config-layer-digests",
    );
    let message = reply.error()["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains(&fixtures::sha256(&component)), "{message}");
    assert_eq!(reply.error()["detail"]["path"], "config.layerDigests[0]");
}

#[tokio::test]
async fn wasm_config_rules_reject_with_their_rule() {
    let (registry, gate) = registry_and_gate().await;
    let component = fixtures::component();
    let good = fixtures::component_config(&component);
    let layer_digest = fixtures::sha256(&component);

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    let mut edit = |name, pointer: &str, value: Value, rule| {
        let mut config = good.clone();
        *config.pointer_mut(pointer).expect("field exists") = value;
        cases.push((name, fixtures::to_bytes(&config), rule));
    };
    edit(
        "created not RFC 3339",
        "/created",
        json!("yesterday"),
        "config-created",
    );
    edit(
        "architecture",
        "/architecture",
        json!("amd64"),
        "config-architecture",
    );
    edit("os uppercase", "/os", json!("WASIp2"), "config-os");
    edit(
        "component null for wasip2",
        "/component",
        Value::Null,
        "config-component",
    );
    edit(
        "imports not strings",
        "/component/imports",
        json!([1]),
        "config-component",
    );
    edit(
        "too many layer digests",
        "/layerDigests",
        json!([layer_digest, layer_digest]),
        "config-layer-digests",
    );
    edit("author number", "/author", json!(7), "field-type");
    let snake = fixtures::to_bytes(&json!({
        "created": "2024-05-01T00:00:00Z", "architecture": "wasm", "os": "wasip1", "layer_digests": [layer_digest]
    }));
    cases.push(("snake case layer digests", snake, "config-layer-digests"));
    let duplicate = format!(
        r#"{{"created":"2024-05-01T00:00:00Z","architecture":"wasm","os":"wasip1","os":"wasip2","layerDigests":["{layer_digest}"]}}"#
    );
    cases.push(("duplicate key", duplicate.into_bytes(), "duplicate-key"));
    let variant = format!(
        r#"{{"created":"2024-05-01T00:00:00Z","architecture":"wasm","os":"wasip1","OS":"wasip2","layerDigests":["{layer_digest}"]}}"#
    );
    cases.push(("case variant", variant.into_bytes(), "case-variant-key"));
    cases.push(("config not JSON", b"wasm".to_vec(), "json-syntax"));

    for (index, (name, config, rule)) in cases.into_iter().enumerate() {
        eprintln!("case: {name}");
        let repository = format!("wasm/case{index}");
        let manifest = stage_wasm(&gate, &repository, &config, &component).await;
        let reply = put_manifest(
            &gate,
            &repository,
            "v1",
            OCI_MANIFEST,
            fixtures::to_bytes(&manifest),
        )
        .await;
        assert_rejected(
            &reply,
            &registry,
            &repository,
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            rule,
        );
    }
}

#[tokio::test]
async fn wasm_layout_rules_reject_with_their_rule() {
    let (registry, gate) = registry_and_gate().await;
    let component = fixtures::component();
    let config = fixtures::to_bytes(&fixtures::component_config(&component));
    let manifest = stage_wasm(&gate, "wasm/layout", &config, &component).await;

    let mut foreign_config = manifest.clone();
    foreign_config["config"]["mediaType"] = json!(IMAGE_CONFIG);
    let mut two_layers = manifest.clone();
    two_layers["layers"] = json!([
        descriptor(WASM_LAYER, &component),
        descriptor(WASM_LAYER, &component)
    ]);
    let mut docker = manifest.clone();
    docker["mediaType"] = json!(DOCKER_MANIFEST);
    let mut unknown_config = manifest.clone();
    unknown_config["config"] = descriptor(WASM_CONFIG, b"{\"never\":\"uploaded\"}");
    let mut wrong_size = manifest.clone();
    wrong_size["config"]["size"] = json!(config.len() - 1);
    let mut config_case = manifest.clone();
    config_case["config"]["mediaType"] = json!("Application/vnd.wasm.config.v0+json");
    let mut layer_case = manifest.clone();
    layer_case["layers"][0]["mediaType"] = json!("Application/Wasm");
    let mut oversized = manifest.clone();
    oversized["config"]["size"] = json!(2 * 1024 * 1024);

    let cases = [
        (
            "config type",
            foreign_config,
            OCI_MANIFEST,
            "MANIFEST_INVALID",
            "wasm-config-type",
        ),
        (
            "config type in other case",
            config_case,
            OCI_MANIFEST,
            "MANIFEST_INVALID",
            "wasm-config-type",
        ),
        (
            "layer type in other case",
            layer_case,
            OCI_MANIFEST,
            "MANIFEST_INVALID",
            "wasm-layer-type",
        ),
        (
            "two layers",
            two_layers,
            OCI_MANIFEST,
            "MANIFEST_INVALID",
            "wasm-layer-count",
        ),
        (
            "docker manifest",
            docker,
            DOCKER_MANIFEST,
            "MANIFEST_INVALID",
            "wasm-manifest-type",
        ),
        (
            "config not uploaded",
            unknown_config,
            OCI_MANIFEST,
            "MANIFEST_BLOB_UNKNOWN",
            "config-blob-unknown",
        ),
        (
            "config size",
            wrong_size,
            OCI_MANIFEST,
            "MANIFEST_INVALID",
            "config-size-mismatch",
        ),
        (
            "config over 1 MiB",
            oversized,
            OCI_MANIFEST,
            "MANIFEST_INVALID",
            "config-too-large",
        ),
    ];
    for (name, manifest, media_type, code, rule) in cases {
        eprintln!("case: {name}");
        let reply = put_manifest(
            &gate,
            "wasm/layout",
            "v1",
            media_type,
            fixtures::to_bytes(&manifest),
        )
        .await;
        assert_rejected(
            &reply,
            &registry,
            "wasm/layout",
            StatusCode::BAD_REQUEST,
            code,
            rule,
        );
    }
}

#[tokio::test]
async fn upstream_401_on_config_read_is_relayed() {
    let registry = Registry::start_with_silly_auth();
    let gate = support::start_gate(support::settings(&registry.url())).await;
    let component = fixtures::component();
    let config = fixtures::to_bytes(&fixtures::component_config(&component));
    let authorization = [("authorization", "Bearer test-token")];
    for blob in [&config, &component] {
        let digest = fixtures::sha256(blob);
        let started = support::send(
            http::Method::POST,
            &format!("{gate}/v2/auth/app/blobs/uploads/"),
            &authorization,
            wasmgate::body::empty(),
        )
        .await;
        let location = support::absolute(&gate, started.header("location").expect("location"));
        let finished = support::send(
            http::Method::PUT,
            &format!("{location}&digest={digest}"),
            &authorization,
            wasmgate::body::full(blob.clone()),
        )
        .await;
        assert_eq!(finished.status, StatusCode::CREATED);
    }
    let manifest = fixtures::to_bytes(&fixtures::manifest(
        descriptor(WASM_CONFIG, &config),
        vec![descriptor(WASM_LAYER, &component)],
    ));
    let url = format!("{gate}/v2/auth/app/manifests/v1");

    let anonymous = support::send(
        http::Method::PUT,
        &url,
        &[("content-type", OCI_MANIFEST)],
        wasmgate::body::full(manifest.clone()),
    )
    .await;
    let authorized = support::send(
        http::Method::PUT,
        &url,
        &[("content-type", OCI_MANIFEST), authorization[0]],
        wasmgate::body::full(manifest),
    )
    .await;

    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(
        anonymous
            .header("www-authenticate")
            .is_some_and(|challenge| challenge.contains("realm=\"http://127.0.0.1:9/token\""))
    );
    assert_eq!(anonymous.error()["code"], "UNAUTHORIZED");
    assert_eq!(
        authorized.status,
        StatusCode::CREATED,
        "{:?}",
        authorized.body
    );
    assert_eq!(
        registry.manifest_puts("auth/app"),
        ["PUT /v2/auth/app/manifests/v1"]
    );
}
