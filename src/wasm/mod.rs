//! Validate stage, second half: the CNCF WebAssembly artifact layout (TAG Runtime WASM
//! working group, "Wasm OCI Artifact layout"), checked whenever a manifest uses the
//! WebAssembly config or layer type.
//!
//! The config blob is read back from wherever [`BlobSource`] finds it: the upstream registry
//! in the gate, files in an offline check, memory in tests.

mod config;

use std::future::Future;

use bytes::Bytes;
use http::StatusCode;

use crate::error::{ErrorCode, GateError, Rejection, Rule};
use crate::manifest::{Descriptor, Digest, Kind, Manifest, OCI_MANIFEST};

pub use config::check_config;

/// Config media type of the CNCF layout.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// Layer media type of the CNCF layout, for core modules and components alike.
pub const WASM_LAYER: &str = "application/wasm";
/// Largest config blob the gate reads. Real configs are a few hundred bytes to a few KiB;
/// the cap bounds the memory a hostile descriptor can make the gate use.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads a blob that a manifest refers to.
pub trait BlobSource {
    /// Returns the blob's bytes, reading at most `max_bytes`. An absent blob is a
    /// [`Rule::ConfigBlobUnknown`] rejection.
    fn fetch(
        &self,
        descriptor: &Descriptor,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Bytes, GateError>> + Send;
}

/// Whether the manifest claims to be a WebAssembly artifact in the CNCF layout. Media types
/// are compared without regard to case, as RFC 6838 defines them, so a differently cased
/// spelling cannot skip the checks; [`check`] then requires the exact spelling.
pub fn is_wasm(manifest: &Manifest) -> bool {
    let wasm_config = manifest
        .config
        .as_ref()
        .is_some_and(|config| config.media_type.eq_ignore_ascii_case(WASM_CONFIG));
    wasm_config
        || manifest
            .layers
            .iter()
            .any(|layer| layer.media_type.eq_ignore_ascii_case(WASM_LAYER))
}

/// Checks a WebAssembly manifest: its layout, then its config blob.
pub async fn check(manifest: &Manifest, blobs: &impl BlobSource) -> Result<(), GateError> {
    let config = check_layout(manifest)?;

    let bytes = blobs.fetch(config, MAX_CONFIG_BYTES).await?;
    check_blob(config, &bytes)?;

    let layer_digests: Vec<&Digest> = manifest.layers.iter().map(|layer| &layer.digest).collect();
    check_config(&bytes, &layer_digests)?;
    Ok(())
}

/// Checks the manifest type, config type and layer count, and returns the config descriptor.
fn check_layout(manifest: &Manifest) -> Result<&Descriptor, Rejection> {
    let (Kind::OciManifest, Some(config)) = (manifest.kind, manifest.config.as_ref()) else {
        return Err(Rejection::manifest_invalid(
            Rule::WasmManifestType,
            format!(
                "a WebAssembly artifact must be pushed as an OCI image manifest ({OCI_MANIFEST})"
            ),
        )
        .expected(OCI_MANIFEST)
        .found(manifest.kind.media_type()));
    };

    if config.media_type != WASM_CONFIG {
        return Err(Rejection::manifest_invalid(
            Rule::WasmConfigType,
            format!(
                "the config type of this WebAssembly artifact is {:?}; WebAssembly consumers such as wkg require exactly {WASM_CONFIG}, so set config.mediaType to it",
                config.media_type
            ),
        )
        .at("$.config.mediaType")
        .expected(WASM_CONFIG)
        .found(config.media_type.as_str()));
    }

    if manifest.layers.len() != 1 {
        return Err(Rejection::manifest_invalid(
            Rule::WasmLayerCount,
            format!(
                "a WebAssembly artifact must have exactly one layer, the {WASM_LAYER} binary, but this one has {}",
                manifest.layers.len()
            ),
        )
        .at("$.layers")
        .expected(1)
        .found(manifest.layers.len()));
    }
    let layer = &manifest.layers[0];
    if layer.media_type != WASM_LAYER {
        return Err(Rejection::manifest_invalid(
            Rule::WasmLayerType,
            format!(
                "the layer of a WebAssembly artifact must have the type {WASM_LAYER}, not {:?}",
                layer.media_type
            ),
        )
        .at("$.layers[0].mediaType")
        .expected(WASM_LAYER)
        .found(layer.media_type.as_str()));
    }

    if config.size > MAX_CONFIG_BYTES {
        return Err(Rejection::manifest_invalid(
            Rule::ConfigTooLarge,
            format!(
                "the config descriptor announces {} bytes; a WebAssembly config may be at most {MAX_CONFIG_BYTES} bytes",
                config.size
            ),
        )
        .at("$.config.size")
        .found(config.size));
    }
    Ok(config)
}

/// Checks that the fetched config is the blob the descriptor names.
fn check_blob(config: &Descriptor, bytes: &[u8]) -> Result<(), Rejection> {
    if bytes.len() as u64 != config.size {
        return Err(Rejection::manifest_invalid(
            Rule::ConfigSizeMismatch,
            format!(
                "the config blob {} is {} bytes but the manifest says {}; set config.size to the blob's length",
                config.digest,
                bytes.len(),
                config.size
            ),
        )
        .at("$.config.size")
        .expected(bytes.len())
        .found(config.size));
    }
    if !config.digest.matches(bytes) {
        let actual = Digest::of(config.digest.algorithm, bytes);
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::DigestInvalid,
            Rule::ConfigDigestMismatch,
            format!(
                "the registry returned config bytes that hash to {actual}, not {}",
                config.digest
            ),
        )
        .at("$.config.digest")
        .expected(config.digest.to_string())
        .found(actual.to_string()));
    }
    Ok(())
}

/// The rejection for a config blob the registry does not have.
pub fn config_blob_unknown(config: &Descriptor) -> Rejection {
    Rejection::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::ManifestBlobUnknown,
        Rule::ConfigBlobUnknown,
        format!(
            "the config blob {} is not in the repository; upload the config blob before the manifest",
            config.digest
        ),
    )
    .at("$.config.digest")
    .found(config.digest.to_string())
}

#[cfg(test)]
mod tests;
