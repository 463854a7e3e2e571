use http::HeaderValue;
use serde_json::{Value, json};

use super::*;

const CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

fn image() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": CONFIG_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": CONFIG_DIGEST, "size": 2}]
    })
}

fn check(document: &Value, content_type: &str) -> Result<Manifest, Rejection> {
    let body = serde_json::to_vec(document).expect("serializes");
    validate(
        &body,
        Some(&HeaderValue::from_str(content_type).expect("header")),
        &Reference::Tag("v1".into()),
    )
}

#[test]
fn valid_image_manifest_is_summarized() {
    let manifest = check(
        &image(),
        "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
    )
    .expect("valid");

    assert_eq!(manifest.kind, Kind::OciManifest);
    assert_eq!(manifest.config.expect("config").size, 2);
    assert_eq!(manifest.layers.len(), 1);
    assert!(manifest.subject.is_none());
}

#[test]
fn explicit_nulls_count_as_absent() {
    let mut document = image();
    document["annotations"] = Value::Null;
    document["subject"] = Value::Null;
    document["layers"][0]["urls"] = Value::Null;

    assert!(check(&document, OCI_MANIFEST).is_ok());
}

#[test]
fn mediatype_may_be_omitted_in_oci_but_not_docker() {
    let mut document = image();
    document
        .as_object_mut()
        .expect("object")
        .remove("mediaType");

    assert!(check(&document, OCI_MANIFEST).is_ok());
    assert_eq!(
        check(&document, DOCKER_MANIFEST).expect_err("docker").rule,
        Rule::MissingField
    );
}

#[test]
fn empty_config_with_artifact_type_is_valid() {
    let mut document = image();
    document["config"]["mediaType"] = json!(EMPTY_CONFIG);
    document["config"]["data"] = json!("e30=");
    document["artifactType"] = json!("application/vnd.example+type");

    assert!(check(&document, OCI_MANIFEST).is_ok());
}

#[test]
fn index_entries_are_returned_as_layers() {
    let document = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": CONFIG_DIGEST, "size": 2,
                       "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}]
    });

    let manifest = check(&document, OCI_INDEX).expect("valid index");

    assert_eq!(manifest.kind, Kind::OciIndex);
    assert!(manifest.config.is_none());
    assert_eq!(manifest.layers[0].media_type, OCI_MANIFEST);
}

#[test]
fn content_types_map_to_kinds() {
    let kind = |value: &str| kind_of(Some(&HeaderValue::from_str(value).expect("header")));

    assert_eq!(kind(DOCKER_LIST).expect("list"), Kind::DockerList);
    assert_eq!(
        kind("APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON").expect("any case"),
        Kind::OciManifest
    );
    assert_eq!(
        kind(" application/vnd.oci.image.index.v1+json ;x=y").expect("index"),
        Kind::OciIndex
    );
    assert_eq!(
        kind("application/vnd.docker.distribution.manifest.v1+json")
            .expect_err("schema 1")
            .rule,
        Rule::SchemaOne
    );
    assert_eq!(
        kind("text/plain").expect_err("unknown").rule,
        Rule::ContentTypeUnsupported
    );
    assert_eq!(
        kind_of(None).expect_err("missing").rule,
        Rule::ContentTypeMissing
    );
}

#[test]
fn digest_reference_must_match_the_body() {
    let body = serde_json::to_vec(&image()).expect("serializes");
    let content_type = HeaderValue::from_static(OCI_MANIFEST);
    let right = Reference::Digest(Digest::of(digest::Algorithm::Sha512, &body));
    let wrong = Reference::Digest(Digest::of(digest::Algorithm::Sha256, b"other"));

    assert!(validate(&body, Some(&content_type), &right).is_ok());
    let rejection = validate(&body, Some(&content_type), &wrong).expect_err("mismatch");
    assert_eq!(rejection.rule, Rule::ReferenceDigestMismatch);
    assert_eq!(rejection.code, ErrorCode::DigestInvalid);
}
