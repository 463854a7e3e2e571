//! OCI image layouts on disk: blobs read on demand, a manifest selected by tag or digest, and
//! the manifests an index lists.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{Value, json};

use super::load::{content_type_of, read_capped, read_document};
use super::{Artifact, Blobs, DEFAULT_TAG};
use crate::error::GateError;
use crate::manifest::{Descriptor, Digest};
use crate::wasm::{self, BlobRole, BlobSource};

/// Blobs of an OCI image layout, read from `blobs/<algorithm>/<hex>` when needed.
pub(super) struct LayoutBlobs {
    pub(super) root: PathBuf,
}

impl LayoutBlobs {
    pub(super) fn path_of(&self, digest: &Digest) -> PathBuf {
        let text = digest.to_string();
        let (algorithm, hex) = text.split_once(':').unwrap_or(("sha256", &text));
        self.root.join("blobs").join(algorithm).join(hex)
    }

    /// Reads at most `max_bytes + 1` bytes of a blob, as the gate reads at most that much
    /// from the registry, so a header-only inspection of a large layer stays small.
    fn read(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        max_bytes: u64,
    ) -> Result<Bytes, GateError> {
        let path = self.path_of(&descriptor.digest);
        let bytes =
            read_capped(&path, max_bytes).map_err(|_| wasm::blob_unknown(descriptor, role))?;
        Ok(Bytes::from(bytes))
    }
}

impl BlobSource for LayoutBlobs {
    async fn fetch(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        max_bytes: u64,
    ) -> Result<Bytes, GateError> {
        let bytes = self.read(descriptor, role, max_bytes)?;
        wasm::verify_blob(descriptor, role, &bytes)?;
        Ok(bytes)
    }

    async fn fetch_prefix(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        length: usize,
    ) -> Result<Bytes, GateError> {
        let bytes = self.read(descriptor, role, length as u64)?;
        Ok(bytes.slice(..length.min(bytes.len())))
    }
}

/// The manifest of an OCI layout to check.
enum Selector {
    Tag(String),
    Digest(String),
}

/// Splits `DIR[:TAG|@DIGEST]`. The tag or digest counts only when the part before it is a
/// directory, so paths that contain colons or at signs still work.
fn split_layout(spec: &str) -> (PathBuf, Option<Selector>) {
    if let Some((dir, digest)) = spec.rsplit_once('@')
        && Digest::parse(digest, "digest").is_ok()
        && Path::new(dir).is_dir()
    {
        return (
            PathBuf::from(dir),
            Some(Selector::Digest(digest.to_owned())),
        );
    }
    if let Some((dir, tag)) = spec.rsplit_once(':')
        && !tag.is_empty()
        && !tag.contains('/')
        && Path::new(dir).is_dir()
    {
        return (PathBuf::from(dir), Some(Selector::Tag(tag.to_owned())));
    }
    (PathBuf::from(spec), None)
}

pub(super) fn load_layout(spec: &str, tag_override: Option<&str>) -> Result<Artifact, String> {
    let (root, selector) = split_layout(spec);
    let index_path = root.join("index.json");
    let index: Value = serde_json::from_slice(&read_document(&index_path, "OCI layout index")?)
        .map_err(|error| format!("{} is not valid JSON: {error}", index_path.display()))?;
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let by_digest;
    let name_of = |entry: &Value| {
        entry["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .map(str::to_owned)
    };
    let entry = match &selector {
        Some(Selector::Tag(tag)) => entries
            .iter()
            .find(|entry| name_of(entry).as_deref() == Some(tag.as_str()))
            .ok_or_else(|| {
                let names: Vec<String> = entries.iter().filter_map(name_of).collect();
                format!(
                    "the OCI layout {} has no manifest tagged {tag:?}; its tags are {names:?}",
                    root.display()
                )
            })?,
        Some(Selector::Digest(digest)) => {
            match entries
                .iter()
                .find(|entry| entry["digest"].as_str() == Some(digest.as_str()))
            {
                Some(entry) => entry,
                // A manifest that an index in the layout lists is in the blobs only.
                None => {
                    by_digest = json!({ "digest": digest });
                    &by_digest
                }
            }
        }
        None => match entries.as_slice() {
            [only] => only,
            [] => {
                return Err(format!(
                    "the OCI layout {} has no manifests",
                    root.display()
                ));
            }
            _ => {
                let names: Vec<String> = entries.iter().filter_map(name_of).collect();
                return Err(format!(
                    "the OCI layout {} has {} manifests; name one as {}:TAG or DIR@DIGEST (tags: {names:?})",
                    root.display(),
                    entries.len(),
                    root.display()
                ));
            }
        },
    };
    let digest: Digest = entry["digest"]
        .as_str()
        .and_then(|text| Digest::parse(text, "digest").ok())
        .ok_or_else(|| {
            format!(
                "{}: a manifest entry has no valid digest",
                index_path.display()
            )
        })?;
    let blobs = LayoutBlobs { root: root.clone() };
    let body = read_document(&blobs.path_of(&digest), "manifest blob")?;
    if !digest.matches(&body) {
        return Err(format!(
            "the manifest blob {} does not hash to {digest}, the digest that {} lists for it; the layout is damaged, so write it again",
            blobs.path_of(&digest).display(),
            index_path.display()
        ));
    }
    let content_type = entry["mediaType"]
        .as_str()
        .map_or_else(|| content_type_of(&body), str::to_owned);
    Ok(Artifact {
        body: Bytes::from(body),
        content_type,
        blobs: Blobs::Layout(blobs),
        origin: format!("{} ({digest})", root.display()),
        tag: tag_override
            .map(str::to_owned)
            .or_else(|| match selector {
                Some(Selector::Tag(tag)) => Some(tag),
                _ => name_of(entry),
            })
            .unwrap_or_else(|| DEFAULT_TAG.to_owned()),
        pushed_by: None,
    })
}

/// Maximum number of manifests of one index judged from a layout.
const MAX_INDEX_CHILDREN: usize = 256;

/// Loads the manifests that an index from an OCI layout lists, from the layout's blobs. A
/// manifest missing from the layout, as a single-platform copy leaves them, is noted on
/// stderr and not judged.
pub(super) fn layout_children(artifact: &Artifact) -> Result<Vec<Artifact>, String> {
    let Blobs::Layout(layout) = &artifact.blobs else {
        return Ok(Vec::new());
    };
    let document: Value = serde_json::from_slice(&artifact.body).unwrap_or(Value::Null);
    let Some(entries) = document["manifests"].as_array() else {
        return Ok(Vec::new());
    };
    if entries.len() > MAX_INDEX_CHILDREN {
        return Err(format!(
            "{} lists {} manifests, more than the {MAX_INDEX_CHILDREN} that check judges",
            artifact.origin,
            entries.len()
        ));
    }
    let mut children = Vec::new();
    for entry in entries {
        // A malformed entry is the index's own problem, which judging the index reports.
        let Some(digest) = entry["digest"]
            .as_str()
            .and_then(|text| Digest::parse(text, "digest").ok())
        else {
            continue;
        };
        let path = layout.path_of(&digest);
        if !path.is_file() {
            eprintln!(
                "wasmgate check: note: {digest}, listed by {}, is not in the layout, so it is not judged",
                artifact.origin
            );
            continue;
        }
        let body = read_document(&path, "manifest blob")?;
        if !digest.matches(&body) {
            return Err(format!(
                "the manifest blob {} does not hash to {digest}; the layout is damaged, so write it again",
                path.display()
            ));
        }
        children.push(Artifact {
            content_type: entry["mediaType"]
                .as_str()
                .map_or_else(|| content_type_of(&body), str::to_owned),
            body: Bytes::from(body),
            blobs: Blobs::Layout(LayoutBlobs {
                root: layout.root.clone(),
            }),
            origin: format!("{digest} (listed by {})", artifact.origin),
            tag: artifact.tag.clone(),
            pushed_by: Some(digest),
        });
    }
    Ok(children)
}
