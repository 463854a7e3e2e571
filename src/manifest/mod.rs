//! Validate stage, first half: a pushed manifest body checked against the OCI image
//! specification (v1.1) and Docker schema 2, before anything reaches the registry.
//!
//! This module reads only the body and its `Content-Type`; blobs it refers to are checked by
//! the `wasm` module, which may fetch them.

pub mod digest;
mod rules;
pub mod strict_json;

use http::{HeaderValue, StatusCode};
use serde_json::Value;

use crate::error::{ErrorCode, Rejection, Rule};
use crate::route::Reference;
pub use digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

const SCHEMA_ONE: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The four manifest formats that registries accept for push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OciManifest,
    OciIndex,
    DockerManifest,
    DockerList,
}

impl Kind {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::OciManifest => OCI_MANIFEST,
            Self::OciIndex => OCI_INDEX,
            Self::DockerManifest => DOCKER_MANIFEST,
            Self::DockerList => DOCKER_LIST,
        }
    }

    fn is_index(self) -> bool {
        matches!(self, Self::OciIndex | Self::DockerList)
    }
}

/// A content descriptor that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// What the later stages need from a valid manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub kind: Kind,
    /// Config descriptor; `None` for indexes.
    pub config: Option<Descriptor>,
    /// Layers of a manifest, or the entries of an index.
    pub layers: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    /// The whole document, as read by the strict reader.
    pub document: Value,
}

/// Validates a manifest body pushed under `reference` with the given `Content-Type`.
pub fn validate(
    body: &[u8],
    content_type: Option<&HeaderValue>,
    reference: &Reference,
) -> Result<Manifest, Rejection> {
    let kind = kind_of(content_type)?;

    let document = strict_json::parse(body, "manifest", "$")?;
    let Value::Object(object) = &document else {
        return Err(Rejection::manifest_invalid(
            Rule::NotAnObject,
            "the manifest must be a JSON object",
        )
        .found(json_type(&document)));
    };
    check_media_type_field(object, kind)?;
    check_ambiguity(object, kind)?;

    let (config, layers, subject) = rules::check_structure(object, kind)?;

    if let Reference::Digest(digest) = reference {
        check_reference_digest(digest, body)?;
    }
    Ok(Manifest {
        kind,
        config,
        layers,
        subject,
        document,
    })
}

/// Maps the `Content-Type` (parameters ignored) to the manifest kind it announces.
pub fn kind_of(content_type: Option<&HeaderValue>) -> Result<Kind, Rejection> {
    let supported = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];
    let Some(value) = content_type else {
        return Err(Rejection::manifest_invalid(
            Rule::ContentTypeMissing,
            "the manifest push has no Content-Type; set it to the manifest's media type, such as application/vnd.oci.image.manifest.v1+json",
        )
        .expected(supported.to_vec()));
    };
    // Media types are case-insensitive (RFC 9110 section 8.3.1), and Go registries lowercase
    // the header before dispatching on it.
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();

    match essence.as_str() {
        "" => Err(Rejection::manifest_invalid(
            Rule::ContentTypeMissing,
            "the manifest push has an empty Content-Type; set it to the manifest's media type, such as application/vnd.oci.image.manifest.v1+json",
        )
        .expected(supported.to_vec())),
        OCI_MANIFEST => Ok(Kind::OciManifest),
        OCI_INDEX => Ok(Kind::OciIndex),
        DOCKER_MANIFEST => Ok(Kind::DockerManifest),
        DOCKER_LIST => Ok(Kind::DockerList),
        schema_one if SCHEMA_ONE.contains(&schema_one) => Err(Rejection::manifest_invalid(
            Rule::SchemaOne,
            format!(
                "Docker schema 1 manifests ({schema_one}) are deprecated and not accepted; convert the image to schema 2 or OCI, for example with `skopeo copy --format oci`"
            ),
        )
        .found(schema_one)),
        other => Err(Rejection::manifest_invalid(
            Rule::ContentTypeUnsupported,
            format!(
                "Content-Type {other:?} is not a manifest media type; push with the OCI image manifest, OCI index, Docker schema 2 manifest or Docker manifest list type"
            ),
        )
        .expected(supported.to_vec())
        .found(other)),
    }
}

fn check_media_type_field(
    object: &serde_json::Map<String, Value>,
    kind: Kind,
) -> Result<(), Rejection> {
    let docker = matches!(kind, Kind::DockerManifest | Kind::DockerList);
    match object.get("mediaType") {
        None | Some(Value::Null) if !docker => Ok(()),
        Some(Value::String(media_type)) if media_type == kind.media_type() => Ok(()),
        None | Some(Value::Null) => Err(Rejection::manifest_invalid(
            Rule::MissingField,
            format!("$.mediaType is required in a Docker manifest; set it to {:?}", kind.media_type()),
        )
        .at("$.mediaType")
        .expected(kind.media_type())),
        Some(found) => Err(Rejection::manifest_invalid(
            Rule::MediaTypeMismatch,
            format!(
                "$.mediaType is {found} but the request's Content-Type is {:?}; send the same media type in both",
                kind.media_type()
            ),
        )
        .at("$.mediaType")
        .expected(kind.media_type())
        .found(found.clone())),
    }
}

/// Rejects documents that could be read both as a manifest and as an index
/// (CVE-2021-41190): one digest must not have two meanings.
fn check_ambiguity(object: &serde_json::Map<String, Value>, kind: Kind) -> Result<(), Rejection> {
    if kind.is_index() {
        if let Some(field) = ["config", "layers"]
            .into_iter()
            .find(|f| object.contains_key(*f))
        {
            return Err(Rejection::manifest_invalid(
                Rule::AmbiguousIndex,
                format!("an index must not contain \"{field}\"; remove it, or push the document as an image manifest"),
            )
            .at(format!("$.{field}")));
        }
    } else if object.contains_key("manifests") {
        return Err(Rejection::manifest_invalid(
            Rule::AmbiguousManifest,
            "an image manifest must not contain \"manifests\"; remove it, or push the document as an index",
        )
        .at("$.manifests"));
    }
    Ok(())
}

fn check_reference_digest(digest: &Digest, body: &[u8]) -> Result<(), Rejection> {
    let actual = Digest::of(digest.algorithm, body);
    if actual == *digest {
        return Ok(());
    }
    Err(Rejection::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::DigestInvalid,
        Rule::ReferenceDigestMismatch,
        format!(
            "the manifest was pushed as {digest} but its body hashes to {actual}; push it under the body's digest or by tag"
        ),
    )
    .expected(digest.to_string())
    .found(actual.to_string()))
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
