//! Legacy rewrite: a Solo.io, wasm-to-oci or wasmCloud actor artifact turned into the CNCF
//! layout. The new config is built only from the layer bytes and the manifest, so the same
//! push always gives the same config and manifest digests.

use bytes::Bytes;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::inspect::{self, BinaryKind};
use super::{BlobRole, BlobSource, WASM_CONFIG, WASM_LAYER, WasmOptions, truth};
use crate::error::{GateError, Rejection, Rule};
use crate::manifest::digest::Algorithm;
use crate::manifest::{Descriptor, Digest, Kind, Manifest, OCI_MANIFEST};

/// Config media types of the legacy layouts that can be rewritten.
pub const LEGACY_CONFIGS: &[&str] = &[
    // Solo.io (wasme, WebAssemblyHub, Istio WasmPlugin), and the oras workaround for GitLab.
    "application/vnd.module.wasm.config.v1+json",
    // wasm-to-oci and Krustlet.
    "application/vnd.wasm.config.v1+json",
    // wasmCloud actors from before components.
    "application/vnd.wasmcloud.actor.archive.config",
];

/// Returns whether `media_type` is a legacy config type, compared without regard to letter
/// case as the catalogs and the CNCF detection compare media types.
pub fn is_legacy_config(media_type: &str) -> bool {
    LEGACY_CONFIGS
        .iter()
        .any(|legacy| legacy.eq_ignore_ascii_case(media_type))
}

/// Returns whether `media_type` is a layer type that holds a legacy WebAssembly binary.
pub fn is_legacy_wasm_layer(media_type: &str) -> bool {
    LEGACY_WASM_LAYERS
        .iter()
        .any(|layer| layer.eq_ignore_ascii_case(media_type))
}

/// Layer media types that hold a WebAssembly binary in the legacy layouts.
pub const LEGACY_WASM_LAYERS: &[&str] = &[
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
    WASM_LAYER,
];

/// Annotation recording the config media type a rewritten artifact was pushed with.
pub const ORIGINAL_CONFIG_ANNOTATION: &str = "dev.wasmgate.original-config-media-type";
/// Annotation recording the digest of the manifest the client pushed.
pub const ORIGINAL_DIGEST_ANNOTATION: &str = "dev.wasmgate.original-manifest-digest";
/// Annotation recording an `artifactType` the client's manifest had, which the CNCF layout
/// does not use.
pub const ORIGINAL_ARTIFACT_TYPE_ANNOTATION: &str = "dev.wasmgate.original-artifact-type";
/// `created` when the manifest has no `org.opencontainers.image.created` annotation.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// A legacy artifact that can be rewritten: its config type, and which layer is the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyArtifact {
    pub config_media_type: String,
    pub layer_index: usize,
}

/// Recognizes a legacy artifact by its config media type. Solo.io's copy of the config as a
/// layer is ignored; any other layer besides the one WebAssembly binary (a Spin app's data,
/// a second module) means the manifest is not rewritten.
pub fn legacy_artifact(manifest: &Manifest) -> Option<LegacyArtifact> {
    let config = manifest.config.as_ref()?;
    if manifest.kind != Kind::OciManifest || !is_legacy_config(&config.media_type) {
        return None;
    }
    let mut binaries = manifest
        .layers
        .iter()
        .enumerate()
        .filter(|(_, layer)| !layer.media_type.eq_ignore_ascii_case(&config.media_type));
    let (layer_index, layer) = binaries.next()?;
    if binaries.next().is_some() || !is_legacy_wasm_layer(&layer.media_type) {
        return None;
    }
    Some(LegacyArtifact {
        config_media_type: config.media_type.clone(),
        layer_index,
    })
}

/// The CNCF artifact built from a legacy push.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub config: Bytes,
    pub config_descriptor: Descriptor,
    pub manifest: Bytes,
    pub original_digest: Digest,
    pub stored_digest: Digest,
    /// Full inspection of the legacy layer.
    pub inspection: inspect::Inspection,
    /// `os` of the new config.
    pub os: super::Os,
}

/// Builds the CNCF config and manifest for a legacy push whose body is `body`.
pub async fn build(
    manifest: &Manifest,
    body: &[u8],
    artifact: &LegacyArtifact,
    blobs: &impl BlobSource,
    options: &WasmOptions<'_>,
) -> Result<Rewrite, GateError> {
    let layer = &manifest.layers[artifact.layer_index];
    if layer.size > options.inspect_max_bytes {
        return Err(Rejection::manifest_invalid(
            Rule::LegacyRewriteTooLarge,
            format!(
                "the legacy artifact's layer {} is {} bytes, above this gate's inspection limit of {} bytes, so it cannot be decoded to build a CNCF config; push it in the CNCF layout, or ask the operator to raise --inspect-max-bytes",
                layer.digest, layer.size, options.inspect_max_bytes
            ),
        )
        .at(format!("$.layers[{}].size", artifact.layer_index))
        .into());
    }
    let bytes = blobs
        .fetch(
            layer,
            BlobRole::Layer(artifact.layer_index),
            options.inspect_max_bytes,
        )
        .await?;
    let inspection = inspect::inspect_full(&bytes)
        .map_err(|error| truth::inspection_rejection(&error, layer, artifact.layer_index))?;
    options
        .cache
        .insert(layer.digest.clone(), Ok(inspection.clone()));

    let config = cncf_config(&inspection, &layer.digest, created(&manifest.document));
    let os = match inspection.kind {
        BinaryKind::Component => super::Os::Wasip2,
        BinaryKind::CoreModule => super::Os::Wasip1,
    };
    let config_descriptor = Descriptor {
        media_type: WASM_CONFIG.to_owned(),
        digest: Digest::of(Algorithm::Sha256, &config),
        size: config.len() as u64,
    };
    let original_digest = Digest::of(Algorithm::Sha256, body);
    let document = cncf_manifest(
        &manifest.document,
        artifact,
        &config_descriptor,
        &original_digest,
    );
    let manifest = Bytes::from(serde_json::to_vec(&document).expect("a JSON value serializes"));
    Ok(Rewrite {
        stored_digest: Digest::of(Algorithm::Sha256, &manifest),
        config: Bytes::from(config),
        config_descriptor,
        manifest,
        original_digest,
        inspection,
        os,
    })
}

/// `created` from the manifest's `org.opencontainers.image.created` annotation when it is an
/// RFC 3339 timestamp, else the Unix epoch, so a rebuild never depends on the clock.
fn created(document: &Value) -> String {
    document["annotations"]["org.opencontainers.image.created"]
        .as_str()
        .filter(|text| OffsetDateTime::parse(text, &Rfc3339).is_ok())
        .unwrap_or(EPOCH)
        .to_owned()
}

/// Serializes the CNCF config. serde_json writes object keys in sorted order, so equal
/// inputs give equal bytes.
fn cncf_config(inspection: &inspect::Inspection, layer: &Digest, created: String) -> Vec<u8> {
    let (os, component) = match (inspection.kind, &inspection.interfaces) {
        (BinaryKind::Component, Some(interfaces)) => (
            "wasip2",
            json!({ "exports": interfaces.exports, "imports": interfaces.imports, "target": null }),
        ),
        _ => ("wasip1", Value::Null),
    };
    let config = json!({
        "created": created,
        "author": null,
        "architecture": "wasm",
        "os": os,
        "layerDigests": [layer.to_string()],
        "component": component,
    });
    serde_json::to_vec(&config).expect("a JSON value serializes")
}

/// Builds the CNCF manifest: the new config, the one binary layer as `application/wasm`,
/// the original annotations plus three that record where the artifact came from.
fn cncf_manifest(
    original: &Value,
    artifact: &LegacyArtifact,
    config: &Descriptor,
    original_digest: &Digest,
) -> Value {
    let mut document = original.clone();
    let mut layer = original["layers"][artifact.layer_index].clone();
    layer["mediaType"] = json!(WASM_LAYER);

    document["mediaType"] = json!(OCI_MANIFEST);
    document["config"] = json!({
        "mediaType": config.media_type,
        "digest": config.digest.to_string(),
        "size": config.size,
    });
    document["layers"] = json!([layer]);

    let artifact_type = document
        .as_object_mut()
        .and_then(|object| object.remove("artifactType"));
    let mut annotations = match document.get("annotations") {
        Some(Value::Object(annotations)) => annotations.clone(),
        _ => Map::new(),
    };
    annotations.insert(
        ORIGINAL_CONFIG_ANNOTATION.into(),
        json!(artifact.config_media_type),
    );
    annotations.insert(
        ORIGINAL_DIGEST_ANNOTATION.into(),
        json!(original_digest.to_string()),
    );
    if let Some(artifact_type) = artifact_type.filter(Value::is_string) {
        annotations.insert(ORIGINAL_ARTIFACT_TYPE_ANNOTATION.into(), artifact_type);
    }
    document["annotations"] = Value::Object(annotations);
    document
}
