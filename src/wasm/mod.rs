//! Validate stage, second half: the CNCF WebAssembly artifact layout (TAG Runtime WASM
//! working group, "Wasm OCI Artifact layout"), checked whenever a manifest uses the
//! WebAssembly config or layer type: the manifest's shape, the config blob's fields, and the
//! config's claims against what the layer bytes really are.
//!
//! Blobs are read through [`BlobSource`]: from the upstream registry in the gate, from memory
//! in tests.

mod blob;
mod config;
pub mod inspect;
pub mod rewrite;
pub mod truth;

use std::future::Future;

use bytes::Bytes;

use crate::error::{GateError, Rejection, Rule};
use crate::manifest::{Descriptor, Digest, Kind, Manifest, OCI_MANIFEST};

pub use blob::{BlobRole, blob_unknown, verify_blob, verify_digest, verify_size};
pub use config::{ConfigClaims, Os, check_config};
pub use inspect::{Inspection, InspectionCache};
pub use truth::inspect_layer;

/// Config media type of the CNCF layout.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// Layer media type of the CNCF layout, for core modules and components alike.
pub const WASM_LAYER: &str = "application/wasm";
/// Largest config blob the gate reads. Real configs are a few hundred bytes to a few KiB;
/// the cap bounds the memory a hostile descriptor can make the gate use.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Default for `--inspect-max-bytes`: layers up to 64 MiB are read whole and validated.
pub const DEFAULT_INSPECT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Reads blobs that a manifest refers to.
pub trait BlobSource {
    /// Returns a whole blob, at most `max_bytes`, verified against the descriptor's size and
    /// digest. An absent blob is a `MANIFEST_BLOB_UNKNOWN` rejection.
    fn fetch(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Bytes, GateError>> + Send;

    /// Returns the first `length` bytes of a blob, or all of it when it is shorter.
    fn fetch_prefix(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        length: usize,
    ) -> impl Future<Output = Result<Bytes, GateError>> + Send;
}

/// Settings of the WebAssembly checks.
pub struct WasmOptions<'a> {
    /// Layers up to this size are validated whole; larger ones only by their header.
    pub inspect_max_bytes: u64,
    /// Reject, instead of warn about, a config `os` that disagrees with the binary kind.
    pub strict_os: bool,
    pub cache: &'a InspectionCache,
}

/// Whether the manifest claims to be a WebAssembly artifact in the CNCF layout. Media types
/// are compared without regard to case, as RFC 6838 defines them, so a differently cased
/// spelling cannot skip the checks; [`check`] then requires the exact spelling.
pub fn is_wasm(manifest: &Manifest) -> bool {
    let config_type = manifest
        .config
        .as_ref()
        .map(|config| config.media_type.as_str());
    // A legacy config type marks a legacy artifact even when its layer is `application/wasm`;
    // those are rewritten or forwarded unchanged, never checked against the CNCF rules.
    if config_type.is_some_and(rewrite::is_legacy_config) {
        return false;
    }
    config_type.is_some_and(|media_type| media_type.eq_ignore_ascii_case(WASM_CONFIG))
        || manifest
            .layers
            .iter()
            .any(|layer| layer.media_type.eq_ignore_ascii_case(WASM_LAYER))
}

/// Findings of the checks of a valid WebAssembly artifact.
#[derive(Debug, Clone)]
pub struct Findings {
    /// Problems that do not reject the push.
    pub warnings: Vec<String>,
    /// The config's claims, checked against the layer.
    pub claims: ConfigClaims,
    /// Inspection of the layer: its kind and decoded world.
    pub inspection: Inspection,
}

/// Checks a WebAssembly manifest: its layout, its config blob, and the config's claims
/// against the layer.
pub async fn check(
    manifest: &Manifest,
    blobs: &impl BlobSource,
    options: &WasmOptions<'_>,
) -> Result<Findings, GateError> {
    let config = check_layout(manifest)?;
    let layer = &manifest.layers[0];

    // The config read and the layer inspection are independent, so they run side by side.
    let (config_bytes, inspection) = tokio::join!(
        blobs.fetch(config, BlobRole::Config, MAX_CONFIG_BYTES),
        truth::inspect_layer(layer, 0, blobs, options)
    );
    let layer_digests: Vec<&Digest> = manifest.layers.iter().map(|layer| &layer.digest).collect();
    let claims = check_config(&config_bytes?, &layer_digests)?;
    let inspection = inspection?;
    let warnings = truth::compare(&claims, layer, &inspection, options)?;
    Ok(Findings {
        warnings,
        claims,
        inspection,
    })
}

/// Blobs held in memory, keyed by digest: the blob source of `wasmgate check` and of tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryBlobs(pub std::collections::HashMap<Digest, Bytes>);

impl MemoryBlobs {
    /// Adds a blob under its SHA-256 digest and returns that digest.
    pub fn insert(&mut self, bytes: Bytes) -> Digest {
        let digest = Digest::of(crate::manifest::digest::Algorithm::Sha256, &bytes);
        self.0.insert(digest.clone(), bytes);
        digest
    }
}

impl BlobSource for MemoryBlobs {
    async fn fetch(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        _max_bytes: u64,
    ) -> Result<Bytes, GateError> {
        let bytes = self
            .0
            .get(&descriptor.digest)
            .ok_or_else(|| blob_unknown(descriptor, role))?;
        verify_blob(descriptor, role, bytes)?;
        Ok(bytes.clone())
    }

    async fn fetch_prefix(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        length: usize,
    ) -> Result<Bytes, GateError> {
        let bytes = self
            .0
            .get(&descriptor.digest)
            .ok_or_else(|| blob_unknown(descriptor, role))?;
        Ok(bytes.slice(..length.min(bytes.len())))
    }
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
                "the config type of this WebAssembly artifact is {:?}; WebAssembly consumers such as wkg require exactly {WASM_CONFIG}, with a config in that format (created, architecture, os, layerDigests, component), as `wkg oci push` writes it",
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

#[cfg(test)]
mod tests;
