//! Inputs read from files: manifests with their blobs, and `.wasm` files wrapped as wkg
//! wraps them. Only regular files are read.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Artifact, Blobs, MAX_DOCUMENT_BYTES};
use crate::manifest::{self, OCI_MANIFEST};
use crate::wasm::{self, MemoryBlobs};

/// Reads at most `max_bytes + 1` bytes, so a file larger than the cap is detected without
/// reading all of it. Only regular files are read (symbolic links to them included), so a
/// device such as /dev/zero or a FIFO fails at once rather than filling memory or blocking.
pub(super) fn read_capped(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    require_regular_file(path)?;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a whole regular file, for layers and `.wasm` files.
pub(super) fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    require_regular_file(path)?;
    std::fs::read(path)
}

fn require_regular_file(path: &Path) -> std::io::Result<()> {
    if std::fs::metadata(path)?.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

pub(super) fn read_document(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let bytes = read_capped(path, MAX_DOCUMENT_BYTES)
        .map_err(|error| format!("cannot read the {what} {}: {error}", path.display()))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the {what} {} is larger than {MAX_DOCUMENT_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Returns the media type a manifest file declares: its `mediaType` field, else an OCI
/// index when it has `manifests`, else an OCI image manifest.
pub(super) fn content_type_of(body: &[u8]) -> String {
    let document: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(media_type) = document["mediaType"].as_str() {
        return media_type.to_owned();
    }
    if document.get("manifests").is_some() {
        manifest::OCI_INDEX.to_owned()
    } else {
        OCI_MANIFEST.to_owned()
    }
}

pub(super) fn load_files(
    manifest: &Path,
    config: Option<&Path>,
    layers: &[PathBuf],
    tag: &str,
) -> Result<Artifact, String> {
    let body = read_document(manifest, "manifest")?;
    let listed = listed_digests(&body);
    let mut blobs = MemoryBlobs::default();
    let mut given = Vec::new();
    if let Some(config) = config {
        let digest = blobs.insert(Bytes::from(read_document(config, "config")?));
        given.push((config.to_path_buf(), digest));
    }
    for layer in layers {
        let bytes = read_file(layer)
            .map_err(|error| format!("cannot read the layer {}: {error}", layer.display()))?;
        let digest = blobs.insert(Bytes::from(bytes));
        given.push((layer.clone(), digest));
    }
    for (path, digest) in given {
        if !listed.contains(&digest.to_string()) {
            eprintln!(
                "wasmgate check: note: {} ({digest}) matches no descriptor of {}, so it is not used",
                path.display(),
                manifest.display()
            );
        }
    }
    Ok(Artifact {
        content_type: content_type_of(&body),
        body: Bytes::from(body),
        blobs: Blobs::Memory(blobs),
        origin: manifest.display().to_string(),
        tag: tag.to_owned(),
        pushed_by: None,
    })
}

/// Returns the digests of the config and layer descriptors of a manifest file, as written.
fn listed_digests(body: &[u8]) -> Vec<String> {
    let document: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let config = document["config"]["digest"].as_str();
    let layers = document["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|layer| layer["digest"].as_str());
    config
        .into_iter()
        .chain(layers)
        .map(str::to_owned)
        .collect()
}

/// Builds the config and manifest that `wkg oci push` (0.16) writes for a file. The config
/// has os wasip2 and the decoded world, which is empty for a core module, as wkg writes it.
/// The manifest has one `application/wasm` layer titled with the file name.
pub(super) fn wrap_wasm(path: &Path, tag: &str) -> Result<Artifact, String> {
    let layer =
        read_file(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    if wasm::inspect::classify_header(&layer).is_err() {
        let header: Vec<String> = layer
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        return Err(format!(
            "{} is not a WebAssembly binary: it starts with the bytes [{}], not 00 61 73 6d 01 00 00 00 (a core module) or 00 61 73 6d 0d 00 01 00 (a component); pass the .wasm file that your build produced",
            path.display(),
            header.join(" ")
        ));
    }
    // A binary that fails validation still gets a config, so that the report shows the
    // gate's rejection of it rather than an input error.
    let interfaces = wasm::inspect::inspect_full(&layer)
        .ok()
        .and_then(|inspection| inspection.interfaces)
        .unwrap_or_default();
    let mut blobs = MemoryBlobs::default();
    let layer_size = layer.len();
    let layer_digest = blobs.insert(Bytes::from(layer));
    let config = json!({
        "created": "1970-01-01T00:00:00Z",
        "author": null,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest.to_string()],
        "component": {
            "exports": interfaces.exports,
            "imports": interfaces.imports,
            "target": null,
        },
    });
    let config = Bytes::from(serde_json::to_vec(&config).expect("a JSON value serializes"));
    let config_size = config.len();
    let config_digest = blobs.insert(config);
    let title = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": wasm::WASM_CONFIG,
            "digest": config_digest.to_string(),
            "size": config_size,
        },
        "layers": [{
            "mediaType": wasm::WASM_LAYER,
            "digest": layer_digest.to_string(),
            "size": layer_size,
            "annotations": { "org.opencontainers.image.title": title },
        }],
    });
    Ok(Artifact {
        body: Bytes::from(serde_json::to_vec(&manifest).expect("a JSON value serializes")),
        content_type: OCI_MANIFEST.to_owned(),
        blobs: Blobs::Memory(blobs),
        origin: format!("{} (as `wkg oci push` would push it)", path.display()),
        tag: tag.to_owned(),
        pushed_by: None,
    })
}
