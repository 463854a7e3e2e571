//! WebAssembly truth checks and the legacy rewrite, through the gate against a real registry:
//! the config is checked against the layer bytes, and legacy artifacts become CNCF ones.

mod support;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::fixtures::{self, *};
use support::{Registry, Reply, find_tool, push_blob, put_manifest, send};
use wasmgate::config::Settings;

/// Uploads `config` and `layer` and pushes the CNCF manifest that names them under tag `v1`.
async fn push_wasm(gate: &str, repository: &str, config: &Value, layer: &[u8]) -> Reply {
    let config = fixtures::to_bytes(config);
    push_blob(gate, repository, &config).await;
    push_blob(gate, repository, layer).await;
    let manifest = fixtures::manifest(
        descriptor(WASM_CONFIG, &config),
        vec![descriptor(WASM_LAYER, layer)],
    );
    put_manifest(
        gate,
        repository,
        "v1",
        OCI_MANIFEST,
        fixtures::to_bytes(&manifest),
    )
    .await
}

async fn gate_with(registry: &Registry, adjust: impl FnOnce(&mut Settings)) -> String {
    let mut settings = support::settings(&registry.url());
    adjust(&mut settings);
    support::start_gate(settings).await
}

fn assert_rejected(reply: &Reply, registry: &Registry, repository: &str, rule: &str) -> String {
    let error = reply.error();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["detail"]["rule"], rule, "{error}");
    assert!(
        registry.manifest_puts(repository).is_empty(),
        "the registry received the manifest"
    );
    error["message"].as_str().expect("message").to_owned()
}

fn warnings(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all("warning")
        .iter()
        .map(|value| value.to_str().expect("ASCII").to_owned())
        .collect()
}

#[tokio::test]
async fn config_claiming_a_missing_import_is_rejected() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |_| {}).await;
    let component = fixtures::component();
    let mut config = fixtures::component_config(&component);
    config["component"]["imports"] =
        json!(["wasi:cli/environment@0.2.0", "wasi:sockets/tcp@0.2.0"]);

    let reply = push_wasm(&gate, "truth/import", &config, &component).await;

    let message = assert_rejected(
        &reply,
        &registry,
        "truth/import",
        "config-component-mismatch",
    );
    assert!(
        message.contains(
            "the config lists imports [\"wasi:sockets/tcp@0.2.0\"] that the component does not have"
        ),
        "{message}"
    );
    assert_eq!(
        reply.error()["detail"]["expected"]["imports"],
        json!(["wasi:cli/environment@0.2.0"])
    );
}

#[tokio::test]
async fn config_missing_an_export_is_rejected() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |_| {}).await;
    let component = fixtures::component();
    let mut config = fixtures::component_config(&component);
    config["component"]["exports"] = json!([]);

    let reply = push_wasm(&gate, "truth/export", &config, &component).await;

    let message = assert_rejected(
        &reply,
        &registry,
        "truth/export",
        "config-component-mismatch",
    );
    assert!(
        message.contains(
            "the component exports [\"wasi:cli/run@0.2.0\"] but the config does not list them"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn layers_that_are_not_valid_wasm_are_rejected() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |_| {}).await;
    let zip = b"PK\x03\x04 this is a zip archive, not WebAssembly".to_vec();
    let component = fixtures::component();
    let truncated = component[..component.len() - 7].to_vec();

    let not_wasm = push_wasm(&gate, "truth/zip", &fixtures::component_config(&zip), &zip).await;
    let invalid = push_wasm(
        &gate,
        "truth/truncated",
        &fixtures::component_config(&truncated),
        &truncated,
    )
    .await;

    let message = assert_rejected(&not_wasm, &registry, "truth/zip", "layer-not-wasm");
    assert!(message.contains("50 4b 03 04"), "{message}");
    let message = assert_rejected(&invalid, &registry, "truth/truncated", "layer-invalid");
    assert!(message.contains("not valid WebAssembly"), "{message}");
}

/// The config wkg 0.16.1 writes for a core module: `os` wasip2 with an empty component.
fn mislabelled_module_config(module: &[u8]) -> Value {
    json!({
        "created": "2026-12-04T12:00:00Z", "author": null, "architecture": "wasm", "os": "wasip2",
        "layerDigests": [fixtures::sha256(module)],
        "component": {"exports": [], "imports": [], "target": null}
    })
}

#[tokio::test]
async fn module_labelled_wasip2_gets_a_warning() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |_| {}).await;
    let module = fixtures::core_module();

    let reply = push_wasm(
        &gate,
        "truth/module",
        &mislabelled_module_config(&module),
        &module,
    )
    .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let warnings = warnings(&reply);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("299 - \"config.os is wasip2 but layer 0"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains("is a core module, so config.os should be wasip1"),
        "{warnings:?}"
    );
    assert!(registry.stored_tag("truth/module", "v1").is_some());
}

#[tokio::test]
async fn module_labelled_wasip2_is_rejected_when_strict() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |settings| settings.strict_os = true).await;
    let module = fixtures::core_module();

    let reply = push_wasm(
        &gate,
        "truth/strict",
        &mislabelled_module_config(&module),
        &module,
    )
    .await;

    let message = assert_rejected(&reply, &registry, "truth/strict", "config-os-mismatch");
    assert!(message.contains("--strict-os"), "{message}");
}

#[tokio::test]
async fn layer_over_inspection_cap_gets_header_check() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |settings| settings.inspect_max_bytes = 16).await;
    let component = fixtures::component();
    let mut wrong_claims = fixtures::component_config(&component);
    wrong_claims["component"]["imports"] = json!(["wasi:sockets/tcp@0.2.0"]);
    let zip = b"PK\x03\x04 a zip archive longer than sixteen bytes".to_vec();

    let accepted = push_wasm(&gate, "truth/big", &wrong_claims, &component).await;
    let not_wasm = push_wasm(
        &gate,
        "truth/bigzip",
        &fixtures::component_config(&zip),
        &zip,
    )
    .await;

    assert_eq!(accepted.status, StatusCode::CREATED, "{:?}", accepted.body);
    let warnings = warnings(&accepted);
    assert!(
        warnings
            .iter()
            .any(|warning| warning.contains("only its header was checked")),
        "{warnings:?}"
    );
    assert_rejected(&not_wasm, &registry, "truth/bigzip", "layer-not-wasm");
}

#[tokio::test]
async fn second_push_of_a_layer_reads_it_once() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |_| {}).await;
    let component = fixtures::component();
    let layer_read = format!("GET /v2/truth/cache/blobs/{}", fixtures::sha256(&component));

    let first = push_wasm(
        &gate,
        "truth/cache",
        &fixtures::component_config(&component),
        &component,
    )
    .await;
    let mut config = fixtures::component_config(&component);
    config["created"] = json!("2026-12-05T00:00:00Z");
    let second = push_wasm(&gate, "truth/cache", &config, &component).await;

    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    let reads = registry
        .requests()
        .iter()
        .filter(|request| **request == layer_read)
        .count();
    assert_eq!(reads, 1, "{:?}", registry.requests());
}

/// A legacy manifest as users push it with oras today: the Solo.io config type with an
/// empty config and one wasm-to-oci layer.
async fn stage_legacy(gate: &str, repository: &str, layer: &[u8], annotations: Value) -> Vec<u8> {
    push_blob(gate, repository, b"{}").await;
    push_blob(gate, repository, layer).await;
    fixtures::to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.module.wasm.config.v1+json", b"{}"),
        "layers": [{
            "mediaType": "application/vnd.wasm.content.layer.v1+wasm",
            "digest": fixtures::sha256(layer), "size": layer.len(),
            "annotations": {"org.opencontainers.image.title": "hello.wasm"}
        }],
        "annotations": annotations,
    }))
}

#[tokio::test]
async fn legacy_push_is_rewritten_to_cncf() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |settings| settings.rewrite_legacy = true).await;
    let component = fixtures::component();
    let annotations =
        json!({"org.opencontainers.image.created": "2024-02-03T04:05:06Z", "team": "edge"});
    let legacy = stage_legacy(&gate, "legacy/app", &component, annotations).await;

    let first = put_manifest(&gate, "legacy/app", "1.0", OCI_MANIFEST, legacy.clone()).await;
    let stored_first = registry
        .stored_tag("legacy/app", "1.0")
        .expect("tag stored");
    let second = put_manifest(&gate, "legacy/app", "1.0", OCI_MANIFEST, legacy.clone()).await;
    let stored_second = registry
        .stored_tag("legacy/app", "1.0")
        .expect("tag stored");

    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(
        stored_first, stored_second,
        "the rewrite is not deterministic"
    );
    assert!(first.header("docker-content-digest").is_none());
    assert_eq!(
        first.header("wasmgate-stored-digest"),
        Some(stored_first.as_str())
    );
    assert!(
        first
            .header("location")
            .is_some_and(|location| location.starts_with(&gate))
    );
    let warning = first.header("warning").expect("Warning header");
    assert!(
        warning.contains(&fixtures::sha256(&legacy)) && warning.contains(&stored_first),
        "{warning}"
    );

    let manifest: Value =
        serde_json::from_slice(&registry.stored_blob(&stored_first).expect("manifest"))
            .expect("JSON");
    assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG);
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));
    assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER);
    assert_eq!(
        manifest["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "hello.wasm"
    );
    assert_eq!(manifest["annotations"]["team"], "edge");
    assert_eq!(
        manifest["annotations"]["dev.wasmgate.original-config-media-type"],
        "application/vnd.module.wasm.config.v1+json"
    );
    assert_eq!(
        manifest["annotations"]["dev.wasmgate.original-manifest-digest"],
        fixtures::sha256(&legacy)
    );
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let config: Value =
        serde_json::from_slice(&registry.stored_blob(config_digest).expect("config"))
            .expect("JSON");
    assert_eq!(
        config,
        json!({
            "architecture": "wasm", "author": null, "created": "2024-02-03T04:05:06Z", "os": "wasip2",
            "layerDigests": [fixtures::sha256(&component)],
            "component": {"exports": ["wasi:cli/run@0.2.0"], "imports": ["wasi:cli/environment@0.2.0"], "target": null}
        })
    );
}

#[tokio::test]
async fn legacy_push_by_digest_is_refused() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |settings| settings.rewrite_legacy = true).await;
    let legacy = stage_legacy(&gate, "legacy/digest", &fixtures::component(), json!({})).await;

    let reply = put_manifest(
        &gate,
        "legacy/digest",
        &fixtures::sha256(&legacy),
        OCI_MANIFEST,
        legacy,
    )
    .await;

    let message = assert_rejected(
        &reply,
        &registry,
        "legacy/digest",
        "legacy-rewrite-by-digest",
    );
    assert!(message.contains("must be pushed by tag"), "{message}");
}

#[tokio::test]
async fn legacy_push_without_rewrite_is_stored_unchanged() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |_| {}).await;
    let legacy = stage_legacy(&gate, "legacy/plain", &fixtures::component(), json!({})).await;

    let reply = put_manifest(&gate, "legacy/plain", "1.0", OCI_MANIFEST, legacy.clone()).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.header("docker-content-digest"),
        Some(fixtures::sha256(&legacy).as_str())
    );
    let stored = registry
        .stored_tag("legacy/plain", "1.0")
        .expect("tag stored");
    assert_eq!(registry.stored_blob(&stored).expect("manifest"), legacy);
}

/// The case users hit today, with the real clients: `oras push` with the Solo.io types through
/// a gate that rewrites, then `wkg oci pull` of the same tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_legacy_push_then_wkg_pull() {
    let (Some(oras), Some(wkg)) = (find_tool("oras"), find_tool("wkg")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "oras or wkg is missing; run scripts/install-test-tools.sh"
        );
        eprintln!("SKIPPED: oras or wkg is missing; run scripts/install-test-tools.sh");
        return;
    };
    let registry = Registry::start();
    let gate = gate_with(&registry, |settings| settings.rewrite_legacy = true).await;
    let host = gate.trim_start_matches("http://");
    let work = tempfile::tempdir().expect("temporary directory");
    let component = fixtures::component();
    std::fs::write(work.path().join("hello.wasm"), &component).expect("component");
    std::fs::write(work.path().join("config.json"), b"{}").expect("config");
    let run = |program: &std::path::Path, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .current_dir(work.path())
            .env("HOME", work.path())
            .env("XDG_CONFIG_HOME", work.path().join("config"))
            .env("XDG_CACHE_HOME", work.path().join("cache"))
            .output()
            .expect("run client")
    };
    let image = format!("{host}/legacy/oras:1.0");

    let push_args = [
        "push",
        "--plain-http",
        image.as_str(),
        "--config",
        "config.json:application/vnd.module.wasm.config.v1+json",
        "hello.wasm:application/vnd.wasm.content.layer.v1+wasm",
    ];
    let pushed = tokio::task::block_in_place(|| run(&oras, &push_args));
    let pull_args = [
        "oci",
        "pull",
        "--insecure",
        host,
        image.as_str(),
        "-o",
        "pulled.wasm",
    ];
    let pulled = tokio::task::block_in_place(|| run(&wkg, &pull_args));

    assert!(
        pushed.status.success(),
        "oras push failed: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert!(
        pulled.status.success(),
        "wkg pull failed: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(
        std::fs::read(work.path().join("pulled.wasm")).expect("pulled file"),
        component
    );
    let stored = registry
        .stored_tag("legacy/oras", "1.0")
        .expect("tag stored");
    let manifest: Value =
        serde_json::from_slice(&registry.stored_blob(&stored).expect("manifest")).expect("JSON");
    assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG);
}

#[tokio::test]
async fn rewrite_is_not_applied_to_spin_like_manifests() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |settings| settings.rewrite_legacy = true).await;
    let component = fixtures::component();
    let module = fixtures::core_module();
    push_blob(&gate, "legacy/multi", b"{}").await;
    push_blob(&gate, "legacy/multi", &component).await;
    push_blob(&gate, "legacy/multi", &module).await;
    let manifest = fixtures::to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.wasm.config.v1+json", b"{}"),
        "layers": [
            descriptor("application/vnd.wasm.content.layer.v1+wasm", &component),
            descriptor("application/vnd.wasm.content.layer.v1+wasm", &module),
        ],
    }));

    let reply = send(
        Method::PUT,
        &format!("{gate}/v2/legacy/multi/manifests/1"),
        &[("content-type", OCI_MANIFEST)],
        wasmgate::body::full(manifest.clone()),
    )
    .await;

    assert_eq!(reply.status, StatusCode::CREATED);
    let stored = registry
        .stored_tag("legacy/multi", "1")
        .expect("tag stored");
    assert_eq!(registry.stored_blob(&stored).expect("manifest"), manifest);
}

#[tokio::test]
async fn size_claims_are_checked_even_above_the_cap() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |settings| settings.inspect_max_bytes = 300).await;
    let component = fixtures::component();
    let mut lying = fixtures::component_config(&component);
    lying["component"]["imports"] = json!([]);
    let config = fixtures::to_bytes(&lying);
    push_blob(&gate, "truth/size", &config).await;
    push_blob(&gate, "truth/size", &component).await;
    let mut manifest = fixtures::manifest(
        descriptor(WASM_CONFIG, &config),
        vec![descriptor(WASM_LAYER, &component)],
    );
    manifest["layers"][0]["size"] = json!(10_000_000);

    let oversized = put_manifest(
        &gate,
        "truth/size",
        "big",
        OCI_MANIFEST,
        fixtures::to_bytes(&manifest),
    )
    .await;
    manifest["layers"][0]["size"] = json!(component.len());
    let honest = put_manifest(
        &gate,
        "truth/size",
        "honest",
        OCI_MANIFEST,
        fixtures::to_bytes(&manifest),
    )
    .await;

    assert_rejected(&oversized, &registry, "truth/size", "layer-size-mismatch");
    assert_rejected(
        &honest,
        &registry,
        "truth/size",
        "config-component-mismatch",
    );
}

#[tokio::test]
async fn legacy_config_with_wasm_layer_is_forwarded_unchanged() {
    let registry = Registry::start();
    let gate = gate_with(&registry, |_| {}).await;
    let component = fixtures::component();
    push_blob(&gate, "legacy/wasmlayer", b"{}").await;
    push_blob(&gate, "legacy/wasmlayer", &component).await;
    let manifest = fixtures::to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.wasm.config.v1+json", b"{}"),
        "layers": [descriptor(WASM_LAYER, &component)],
    }));

    let reply = put_manifest(
        &gate,
        "legacy/wasmlayer",
        "1",
        OCI_MANIFEST,
        manifest.clone(),
    )
    .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let stored = registry
        .stored_tag("legacy/wasmlayer", "1")
        .expect("tag stored");
    assert_eq!(registry.stored_blob(&stored).expect("manifest"), manifest);
}
