use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::error::ErrorCode;
use crate::manifest::{self, digest::Algorithm};
use crate::route::Reference;

fn options(cache: &InspectionCache) -> WasmOptions<'_> {
    WasmOptions {
        inspect_max_bytes: DEFAULT_INSPECT_MAX_BYTES,
        strict_os: false,
        cache,
    }
}

fn digest(bytes: &[u8]) -> String {
    Digest::of(Algorithm::Sha256, bytes).to_string()
}

fn module_config(layer: &[u8]) -> Value {
    json!({
        "created": "2024-05-01T12:00:00.123456789+02:00",
        "author": null,
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [digest(layer)],
        "component": null,
        "futureField": {"tolerated": true}
    })
}

fn manifest_for(config: &[u8], layer: &[u8]) -> Manifest {
    let document = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": WASM_CONFIG, "digest": digest(config), "size": config.len()},
        "layers": [{"mediaType": WASM_LAYER, "digest": digest(layer), "size": layer.len()}]
    });
    let body = serde_json::to_vec(&document).expect("serializes");
    let content_type = HeaderValue::from_static(manifest::OCI_MANIFEST);
    manifest::validate(&body, Some(&content_type), &Reference::Tag("v1".into()))
        .expect("valid manifest")
}

async fn run(config: &[u8], stored: &[u8], layer: &[u8]) -> Result<Findings, GateError> {
    let key = |bytes: &[u8]| Digest::of(Algorithm::Sha256, bytes);
    let blobs = MemoryBlobs(HashMap::from([
        (key(config), Bytes::copy_from_slice(stored)),
        (key(layer), Bytes::copy_from_slice(layer)),
    ]));
    check(
        &manifest_for(config, layer),
        &blobs,
        &options(&InspectionCache::default()),
    )
    .await
}

fn rule<T: std::fmt::Debug>(result: Result<T, GateError>) -> Rule {
    result
        .expect_err("rejected")
        .rejection()
        .expect("a rejection")
        .rule
}

#[tokio::test]
async fn module_config_with_nulls_and_unknown_fields_passes() {
    let layer = b"\0asm\x01\0\0\0";
    let config = serde_json::to_vec(&module_config(layer)).expect("serializes");

    assert!(is_wasm(&manifest_for(&config, layer)));
    assert!(run(&config, &config, layer).await.is_ok());
}

#[tokio::test]
async fn config_blob_must_exist_and_match() {
    let layer = b"\0asm\x01\0\0\0";
    let config = serde_json::to_vec(&module_config(layer)).expect("serializes");
    let mut tampered = config.clone();
    tampered[0] = b' ';
    let blobs = MemoryBlobs(HashMap::new());

    let missing = check(
        &manifest_for(&config, layer),
        &blobs,
        &options(&InspectionCache::default()),
    )
    .await
    .expect_err("missing");
    let rejection = missing.rejection().expect("a rejection");
    assert_eq!(rejection.code, ErrorCode::ManifestBlobUnknown);
    assert_eq!(rejection.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        rule(run(&config, &tampered, layer).await),
        Rule::ConfigDigestMismatch
    );
    assert_eq!(
        rule(run(&config, &config[1..], layer).await),
        Rule::ConfigSizeMismatch
    );
}

#[test]
fn config_rules_accept_and_reject() {
    let layer = b"layer";
    let layers = [&Digest::of(Algorithm::Sha256, layer)];
    let component = json!({
        "created": "2024-05-01T12:00:00Z", "architecture": "wasm", "os": "wasip2",
        "layerDigests": [digest(layer)],
        "component": {"exports": [], "imports": ["wasi:io/streams@0.2.0"], "target": null}
    });
    let check =
        |value: &Value| check_config(&serde_json::to_vec(value).expect("serializes"), &layers);

    assert!(check(&component).is_ok());
    let cases = [
        (
            "/created",
            json!("2024-05-01 12:00:00"),
            Rule::ConfigCreated,
        ),
        ("/created", json!(17), Rule::ConfigCreated),
        ("/architecture", Value::Null, Rule::ConfigArchitecture),
        ("/os", json!("wasip3"), Rule::ConfigOs),
        ("/layerDigests", json!([]), Rule::ConfigLayerDigests),
        (
            "/layerDigests",
            json!("sha256:00"),
            Rule::ConfigLayerDigests,
        ),
        ("/component/exports", Value::Null, Rule::ConfigComponent),
        ("/component/target", json!(["x"]), Rule::ConfigComponent),
        ("/component", json!([]), Rule::ConfigComponent),
    ];
    for (pointer, value, expected) in cases {
        let mut config = component.clone();
        *config.pointer_mut(pointer).expect("field exists") = value;
        assert_eq!(
            check(&config).expect_err(pointer).rule,
            expected,
            "{pointer}"
        );
    }
}

#[test]
fn wasm_media_types_are_detected_in_any_case() {
    let layer = b"\0asm\x01\0\0\0";
    let config = serde_json::to_vec(&module_config(layer)).expect("serializes");
    let mut manifest = manifest_for(&config, layer);
    manifest.config.as_mut().expect("config").media_type =
        "Application/Vnd.Wasm.Config.V0+Json".into();
    manifest.layers[0].media_type = "APPLICATION/WASM".into();

    assert!(is_wasm(&manifest));
    assert_eq!(
        check_layout(&manifest)
            .expect_err("exact spelling required")
            .rule,
        Rule::WasmConfigType
    );
}
