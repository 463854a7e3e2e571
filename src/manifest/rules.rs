//! Structure rules of the OCI image specification v1.1 (manifest, index, descriptor) and of
//! Docker schema 2, applied to a document the strict reader accepted.

use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;
use serde_json::{Map, Value};

use super::{Descriptor, Digest, EMPTY_CONFIG, Kind, json_type};
use crate::error::{ErrorCode, Rejection, Rule};

/// Media type grammar of the image specification's JSON schema.
static MEDIA_TYPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
        .expect("media type grammar compiles")
});

type Structure = (Option<Descriptor>, Vec<Descriptor>, Option<Descriptor>);

/// Checks the fields of a manifest or index and returns its config, its layers (or index
/// entries) and its subject.
pub(super) fn check_structure(
    object: &Map<String, Value>,
    kind: Kind,
) -> Result<Structure, Rejection> {
    let root = Object {
        map: object,
        path: "$".to_owned(),
    };

    let version = root.get("schemaVersion");
    if version.and_then(Value::as_u64) != Some(2) {
        return Err(Rejection::manifest_invalid(
            Rule::SchemaVersion,
            "$.schemaVersion must be the integer 2",
        )
        .at("$.schemaVersion")
        .expected(2)
        .found(version.cloned().unwrap_or(Value::Null)));
    }
    let artifact_type = root.optional_media_type("artifactType")?;
    root.optional_annotations()?;
    let subject = root.optional_descriptor("subject", false)?;

    if kind.is_index() {
        let manifests = root.descriptor_array("manifests", true)?;
        return Ok((None, manifests, subject));
    }

    let config = root.required_descriptor("config")?;
    let layers = root.descriptor_array("layers", false)?;
    if kind == Kind::OciManifest && config.media_type == EMPTY_CONFIG && artifact_type.is_none() {
        return Err(Rejection::manifest_invalid(
            Rule::ArtifactTypeRequired,
            format!("$.artifactType is required when the config is the empty type {EMPTY_CONFIG}; set it to the artifact's media type"),
        )
        .at("$.artifactType"));
    }
    Ok((Some(config), layers, subject))
}

/// A JSON object together with its path, for error messages.
struct Object<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Object<'a> {
    fn path_of(&self, key: &str) -> String {
        format!("{}.{}", self.path, key)
    }

    /// The value of `key`; an explicit `null` counts as absent, as Go decoders read it.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    fn require(&self, key: &str) -> Result<&'a Value, Rejection> {
        self.get(key).ok_or_else(|| {
            let path = self.path_of(key);
            Rejection::manifest_invalid(
                Rule::MissingField,
                format!("{path} is required but missing"),
            )
            .at(path)
        })
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> Rejection {
        let path = self.path_of(key);
        Rejection::manifest_invalid(
            Rule::FieldType,
            format!("{path} must be {expected}, not {}", json_type(found)),
        )
        .at(path)
        .expected(expected)
        .found(found.clone())
    }

    fn required_str(&self, key: &str) -> Result<&'a str, Rejection> {
        let value = self.require(key)?;
        value
            .as_str()
            .ok_or_else(|| self.wrong_type(key, "a string", value))
    }

    fn optional_str(&self, key: &str) -> Result<Option<&'a str>, Rejection> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    fn object(&self, key: &str, value: &'a Value) -> Result<Object<'a>, Rejection> {
        match value {
            Value::Object(map) => Ok(Object {
                map,
                path: self.path_of(key),
            }),
            other => Err(self.wrong_type(key, "an object", other)),
        }
    }

    fn array(&self, key: &str, value: &'a Value) -> Result<&'a Vec<Value>, Rejection> {
        value
            .as_array()
            .ok_or_else(|| self.wrong_type(key, "an array", value))
    }

    fn optional_string_array(&self, key: &str) -> Result<(), Rejection> {
        let Some(value) = self.get(key) else {
            return Ok(());
        };
        for (index, item) in self.array(key, value)?.iter().enumerate() {
            if !item.is_string() {
                return Err(self.wrong_type(&format!("{key}[{index}]"), "a string", item));
            }
        }
        Ok(())
    }

    fn media_type(&self, key: &str, value: &str) -> Result<(), Rejection> {
        if MEDIA_TYPE.is_match(value) {
            return Ok(());
        }
        let path = self.path_of(key);
        Err(Rejection::manifest_invalid(
            Rule::MediaTypeGrammar,
            format!("{path} is not a valid media type: {value:?}; use the form type/subtype, such as application/wasm"),
        )
        .at(path)
        .found(value))
    }

    fn optional_media_type(&self, key: &str) -> Result<Option<&'a str>, Rejection> {
        let value = self.optional_str(key)?;
        if let Some(value) = value {
            self.media_type(key, value)?;
        }
        Ok(value)
    }

    fn optional_annotations(&self) -> Result<(), Rejection> {
        let Some(value) = self.get("annotations") else {
            return Ok(());
        };
        let annotations = self.object("annotations", value)?;
        for (name, value) in annotations.map {
            if !value.is_string() {
                let path = annotations.path_of(name);
                return Err(Rejection::manifest_invalid(
                    Rule::AnnotationValue,
                    format!("annotation {path} must be a string, not {}; annotations map strings to strings", json_type(value)),
                )
                .at(path)
                .found(value.clone()));
            }
        }
        Ok(())
    }

    fn required_descriptor(&self, key: &str) -> Result<Descriptor, Rejection> {
        let value = self.require(key)?;
        self.object(key, value)?.descriptor(false)
    }

    fn optional_descriptor(
        &self,
        key: &str,
        with_platform: bool,
    ) -> Result<Option<Descriptor>, Rejection> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => self.object(key, value)?.descriptor(with_platform).map(Some),
        }
    }

    fn descriptor_array(
        &self,
        key: &str,
        with_platform: bool,
    ) -> Result<Vec<Descriptor>, Rejection> {
        let value = self.require(key)?;
        let items = self.array(key, value)?;
        let mut descriptors = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            descriptors.push(self.object(&item_key, item)?.descriptor(with_platform)?);
        }
        Ok(descriptors)
    }

    /// Checks this object as a content descriptor.
    fn descriptor(&self, with_platform: bool) -> Result<Descriptor, Rejection> {
        let media_type = self.required_str("mediaType")?;
        self.media_type("mediaType", media_type)?;

        let digest_text = self.required_str("digest")?;
        let digest =
            Digest::parse(digest_text, &self.path_of("digest")).map_err(|mut rejection| {
                rejection.code = ErrorCode::ManifestInvalid;
                rejection
            })?;

        let size = self.size()?;
        self.optional_string_array("urls")?;
        self.optional_annotations()?;
        self.optional_media_type("artifactType")?;
        self.check_data(&digest, size)?;
        if with_platform {
            self.optional_platform()?;
        }
        Ok(Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
        })
    }

    fn size(&self) -> Result<u64, Rejection> {
        let value = self.require("size")?;
        if let Some(size) = value.as_u64() {
            return Ok(size);
        }
        if value.as_i64().is_some() {
            let path = self.path_of("size");
            return Err(Rejection::manifest_invalid(
                Rule::SizeNegative,
                format!("{path} is negative; set it to the blob's length in bytes"),
            )
            .at(path)
            .found(value.clone()));
        }
        Err(self.wrong_type("size", "a non-negative integer", value))
    }

    /// Checks embedded `data` against the descriptor's size and digest.
    fn check_data(&self, digest: &Digest, size: u64) -> Result<(), Rejection> {
        let Some(encoded) = self.optional_str("data")? else {
            return Ok(());
        };
        let path = self.path_of("data");
        let mismatch =
            |message: String| Rejection::manifest_invalid(Rule::DataMismatch, message).at(&path);

        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| {
                mismatch(format!(
                    "{path} is not valid base64 ({error}); encode the blob with standard base64"
                ))
            })?;
        if decoded.len() as u64 != size {
            return Err(mismatch(format!(
                "{path} decodes to {} bytes but the descriptor's size is {size}; embed the exact blob or fix the size",
                decoded.len()
            ))
            .expected(size)
            .found(decoded.len()));
        }
        if !digest.matches(&decoded) {
            let actual = Digest::of(digest.algorithm, &decoded);
            return Err(mismatch(format!(
                "{path} hashes to {actual} but the descriptor's digest is {digest}; embed the exact blob or fix the digest"
            ))
            .expected(digest.to_string())
            .found(actual.to_string()));
        }
        Ok(())
    }

    fn optional_platform(&self) -> Result<(), Rejection> {
        let Some(value) = self.get("platform") else {
            return Ok(());
        };
        let platform = self.object("platform", value)?;
        platform.required_str("architecture")?;
        platform.required_str("os")?;
        platform.optional_str("os.version")?;
        platform.optional_str("variant")?;
        platform.optional_string_array("os.features")?;
        platform.optional_string_array("features")?;
        Ok(())
    }
}
