//! The rule matrix: policies parsed from TOML, judged against manifests with their blobs in
//! memory.

use bytes::Bytes;
use http::HeaderValue;
use serde_json::{Value, json};

use super::*;
use crate::error::Rule;
use crate::manifest::{self, Digest, digest::Algorithm};
use crate::route::Reference;
use crate::wasm::{InspectionCache, MemoryBlobs, WasmOptions};

const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn component_importing(import: &str) -> Vec<u8> {
    let text = format!(
        r#"(component
  (type $t (instance (export "f" (func (result u32)))))
  (import "{import}" (instance (type $t)))
  (core module $m (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $e (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $e))
)"#
    );
    wat::parse_str(text).expect("component WAT compiles")
}

fn core_module() -> Vec<u8> {
    wat::parse_str("(module)").expect("module WAT compiles")
}

fn sha256(bytes: &[u8]) -> String {
    Digest::of(Algorithm::Sha256, bytes).to_string()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

/// A manifest with its blobs.
struct Push {
    body: Vec<u8>,
    content_type: &'static str,
    blobs: MemoryBlobs,
    tag: String,
}

impl Push {
    fn image(config_type: &str, layer_types: &[&str]) -> Self {
        let config = b"{}".to_vec();
        let mut blobs = MemoryBlobs::default();
        blobs.insert(Bytes::from(config.clone()));
        let layers: Vec<Value> = layer_types
            .iter()
            .enumerate()
            .map(|(index, media_type)| {
                let bytes = format!("layer {index}").into_bytes();
                blobs.insert(Bytes::from(bytes.clone()));
                descriptor(media_type, &bytes)
            })
            .collect();
        let document = json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": descriptor(config_type, &config),
            "layers": layers,
        });
        Self::from_document(document, blobs)
    }

    fn wasm(layer: &[u8], imports: &[&str]) -> Self {
        let os = if layer.get(4) == Some(&1) {
            "wasip1"
        } else {
            "wasip2"
        };
        let component = (os == "wasip2").then(
            || json!({"exports": ["wasi:cli/run@0.2.0"], "imports": imports, "target": null}),
        );
        let config = json!({
            "created": "2026-12-04T12:00:00Z",
            "architecture": "wasm",
            "os": os,
            "layerDigests": [sha256(layer)],
            "component": component,
        });
        let config = serde_json::to_vec(&config).expect("serializes");
        let mut blobs = MemoryBlobs::default();
        blobs.insert(Bytes::from(config.clone()));
        blobs.insert(Bytes::copy_from_slice(layer));
        let document = json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": descriptor(crate::wasm::WASM_CONFIG, &config),
            "layers": [descriptor(crate::wasm::WASM_LAYER, layer)],
        });
        Self::from_document(document, blobs)
    }

    fn legacy(layer: &[u8]) -> Self {
        let config = b"{}".to_vec();
        let mut blobs = MemoryBlobs::default();
        blobs.insert(Bytes::from(config.clone()));
        blobs.insert(Bytes::copy_from_slice(layer));
        let document = json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": descriptor("application/vnd.module.wasm.config.v1+json", &config),
            "layers": [descriptor("application/vnd.wasm.content.layer.v1+wasm", layer)],
        });
        Self::from_document(document, blobs)
    }

    /// Builds an OCI 1.1 artifact attached to `subject`, as `oras attach` pushes it.
    fn referrer(artifact_type: &str) -> Self {
        let empty = b"{}".to_vec();
        let payload = b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec();
        let mut blobs = MemoryBlobs::default();
        blobs.insert(Bytes::from(empty.clone()));
        blobs.insert(Bytes::from(payload.clone()));
        let document = json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(manifest::EMPTY_CONFIG, &empty),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &payload)],
            "subject": descriptor(manifest::OCI_MANIFEST, b"subject"),
        });
        Self::from_document(document, blobs)
    }

    fn from_document(document: Value, blobs: MemoryBlobs) -> Self {
        Self {
            body: serde_json::to_vec(&document).expect("serializes"),
            content_type: manifest::OCI_MANIFEST,
            blobs,
            tag: "v1".to_owned(),
        }
    }
}

fn policy(text: &str) -> Policy {
    Policy::parse(text, "test.toml").unwrap_or_else(|error| panic!("{error}"))
}

async fn judge_with(
    policy: &Policy,
    repository: &str,
    push: &Push,
    inspect_max: u64,
) -> Evaluation {
    let content_type = HeaderValue::from_static(push.content_type);
    let reference = Reference::Tag(push.tag.clone());
    let manifest = manifest::validate(&push.body, Some(&content_type), &reference)
        .expect("the manifest passes format validation");
    let cache = InspectionCache::default();
    let options = WasmOptions {
        inspect_max_bytes: inspect_max,
        strict_os: false,
        cache: &cache,
    };
    evaluate(
        policy,
        repository,
        &reference,
        &manifest,
        &push.body,
        &push.blobs,
        &options,
    )
    .await
    .expect("no upstream errors with blobs in memory")
}

async fn judge(policy: &Policy, repository: &str, push: &Push) -> Evaluation {
    judge_with(
        policy,
        repository,
        push,
        crate::wasm::DEFAULT_INSPECT_MAX_BYTES,
    )
    .await
}

fn rules_of(evaluation: &Evaluation) -> Vec<Rule> {
    evaluation
        .violations
        .iter()
        .map(|violation| violation.rule)
        .collect()
}

const WASM_ONLY: &str = r#"
version = 1

[[rules]]
name = "wasm-only"
repositories = ["wasm/**"]
admit = ["wasm"]

[[rules]]
name = "trial"
repositories = ["trial/*"]
mode = "audit"
admit = ["wasm"]

[[rules]]
name = "mirror"
repositories = ["mirror/**"]
mode = "off"
"#;

#[tokio::test]
async fn builtin_default_admits_everything_and_checks_wasm() {
    let policy = Policy::builtin(false);
    let helm = Push::image(
        "application/vnd.cncf.helm.config.v1+json",
        &["application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
    );
    let component = Push::wasm(
        &component_importing("wasi:cli/environment@0.2.0"),
        &["wasi:cli/environment@0.2.0"],
    );
    let lying = Push::wasm(&component_importing("wasi:cli/environment@0.2.0"), &[]);

    assert_eq!(
        judge(&policy, "any/repo", &helm).await.decision,
        Decision::Allow
    );
    assert_eq!(
        judge(&policy, "any/repo", &component).await.decision,
        Decision::Allow
    );
    let evaluation = judge(&policy, "any/repo", &lying).await;
    assert_eq!(evaluation.decision, Decision::Deny);
    assert_eq!(rules_of(&evaluation), [Rule::ConfigComponentMismatch]);
    assert_eq!(evaluation.rule, "default");
}

#[tokio::test]
async fn modes_enforce_audit_and_off() {
    let policy = policy(WASM_ONLY);
    let helm = Push::image(
        "application/vnd.cncf.helm.config.v1+json",
        &["application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
    );
    let lying = Push::wasm(&component_importing("wasi:cli/environment@0.2.0"), &[]);

    let enforced = judge(&policy, "wasm/team/app", &helm).await;
    assert_eq!(enforced.decision, Decision::Deny);
    assert_eq!(rules_of(&enforced), [Rule::ArtifactNotAdmitted]);
    assert_eq!(enforced.catalogs, ["helm"]);
    assert_eq!(
        enforced.violations[0]
            .policy
            .as_ref()
            .map(|policy| policy.rule.as_str()),
        Some("wasm-only")
    );

    let audited = judge(&policy, "trial/app", &helm).await;
    assert_eq!(audited.decision, Decision::WouldDeny);
    assert_eq!(rules_of(&audited), [Rule::ArtifactNotAdmitted]);

    let off = judge(&policy, "mirror/anything", &lying).await;
    assert_eq!(off.decision, Decision::Allow);
    assert!(off.violations.is_empty());
}

#[tokio::test]
async fn first_matching_rule_wins() {
    let policy = policy(
        r#"
version = 1
[[rules]]
name = "special"
repositories = ["team/special"]
admit = ["*"]
[[rules]]
name = "team"
repositories = ["team/*", "other/**"]
admit = ["wasm"]
[[rules]]
name = "never-reached"
repositories = ["team/special"]
admit = ["helm"]
[default]
admit = ["oci-image"]
"#,
    );
    let helm = Push::image(
        "application/vnd.cncf.helm.config.v1+json",
        &["application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
    );
    let cases = [
        ("team/special", "special", Decision::Allow),
        ("team/other", "team", Decision::Deny),
        ("other/a/b", "team", Decision::Deny),
        ("team/special/nested", "default", Decision::Deny),
        ("elsewhere", "default", Decision::Deny),
    ];
    for (repository, rule, decision) in cases {
        let evaluation = judge(&policy, repository, &helm).await;
        assert_eq!(evaluation.rule, rule, "{repository}");
        assert_eq!(evaluation.decision, decision, "{repository}");
    }
}

#[tokio::test]
async fn catalogs_recognise_artifact_kinds() {
    let policy = Policy::builtin(false);
    let cases: [(&str, &[&str], &str); 7] = [
        (
            IMAGE_CONFIG,
            &["application/vnd.oci.image.layer.v1.tar+gzip"],
            "oci-image",
        ),
        (
            "application/vnd.docker.container.image.v1+json",
            &["application/vnd.docker.image.rootfs.diff.tar.gzip"],
            "docker-image",
        ),
        (
            "application/vnd.cncf.flux.config.v1+json",
            &["application/vnd.cncf.flux.content.v1.tar+gzip"],
            "flux",
        ),
        (
            "application/vnd.cncf.falco.rulesfile.config.v1+json",
            &["application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz"],
            "falco",
        ),
        (
            IMAGE_CONFIG,
            &[
                "application/vnd.wasm.content.layer.v1+wasm",
                "application/vnd.fermyon.spin.application.v1+config",
            ],
            "spin",
        ),
        (
            IMAGE_CONFIG,
            &["application/vnd.bytecodealliance.wasm.component.layer.v0+wasm"],
            "runwasi",
        ),
        (
            IMAGE_CONFIG,
            &["application/vnd.dev.cosign.simplesigning.v1+json"],
            "cosign",
        ),
    ];
    for (config, layers, catalog) in cases {
        let evaluation = judge(&policy, "repo", &Push::image(config, layers)).await;
        assert!(
            evaluation.catalogs.iter().any(|name| name == catalog),
            "{catalog}: {:?}",
            evaluation.catalogs
        );
    }
    let unknown = judge(
        &policy,
        "repo",
        &Push::image("application/vnd.acme.config", &[]),
    )
    .await;
    assert!(unknown.catalogs.is_empty());
}

#[tokio::test]
async fn user_catalog_admits_its_media_types() {
    let policy = policy(
        r#"
version = 1
[catalogs.acme-bundle]
config = ["application/vnd.acme.bundle.config.v1+json"]
layers = ["application/vnd.acme.bundle.layer.v1.*"]
[default]
admit = ["acme-bundle"]
"#,
    );
    let good = Push::image(
        "application/vnd.acme.bundle.config.v1+json",
        &["application/vnd.acme.bundle.layer.v1.tar"],
    );
    let bad_layer = Push::image(
        "application/vnd.acme.bundle.config.v1+json",
        &["application/octet-stream"],
    );

    assert_eq!(judge(&policy, "r", &good).await.decision, Decision::Allow);
    assert_eq!(
        judge(&policy, "r", &bad_layer).await.decision,
        Decision::Deny
    );
}

#[tokio::test]
async fn referrers_judged_by_their_own_allowlist() {
    let policy = policy(WASM_ONLY);
    let sbom = Push::referrer("application/spdx+json");
    let unknown = Push::referrer("application/vnd.acme.report");

    let evaluation = judge(&policy, "wasm/app", &sbom).await;
    assert!(evaluation.referrer);
    assert_eq!(evaluation.decision, Decision::Allow);

    let evaluation = judge(&policy, "wasm/app", &unknown).await;
    assert_eq!(rules_of(&evaluation), [Rule::ReferrerNotAdmitted]);

    // The fallback index that clients push when the registry has no referrers API.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": [{
            "mediaType": manifest::OCI_MANIFEST,
            "digest": sha256(b"sbom"),
            "size": 4,
            "artifactType": "application/spdx+json"
        }]
    });
    let mut fallback = Push::from_document(index, MemoryBlobs::default());
    fallback.content_type = manifest::OCI_INDEX;
    fallback.tag = format!("sha256-{}", "a".repeat(64));
    let evaluation = judge(&policy, "wasm/app", &fallback).await;
    assert!(evaluation.referrer);
    assert_eq!(evaluation.decision, Decision::Allow);

    // Under an ordinary tag the same index is an index like any other: the wasm catalog
    // admits indexes, and each child manifest was judged when it was pushed.
    fallback.tag = "v1".to_owned();
    let evaluation = judge(&policy, "wasm/app", &fallback).await;
    assert!(!evaluation.referrer);
    assert_eq!(evaluation.decision, Decision::Allow);
}

#[tokio::test]
async fn legacy_handling_per_rule() {
    let text = |legacy: &str| format!("version = 1\n[default]\nlegacy = \"{legacy}\"\n");
    let push = Push::legacy(&core_module());

    let rejected = judge(&policy(&text("reject")), "r", &push).await;
    assert_eq!(rules_of(&rejected), [Rule::LegacyRejected]);

    let allowed = judge(&policy(&text("allow")), "r", &push).await;
    assert_eq!(allowed.decision, Decision::Allow);
    assert!(allowed.rewrite.is_none());

    let rewritten = judge(&policy(&text("rewrite")), "r", &push).await;
    assert_eq!(rewritten.decision, Decision::Rewrite);
    assert!(rewritten.rewrite.is_some());
}

#[tokio::test]
async fn legacy_rewrite_is_admitted_as_what_it_becomes() {
    let text = |legacy: &str| {
        format!("version = 1\n[default]\nadmit = [\"wasm\"]\nlegacy = \"{legacy}\"\n")
    };
    let push = Push::legacy(&core_module());

    let rewritten = judge(&policy(&text("rewrite")), "r", &push).await;
    assert_eq!(
        rewritten.decision,
        Decision::Rewrite,
        "{:?}",
        rewritten.violations
    );

    // Rejected legacy artifacts get one violation, not a second one for admission.
    let rejected = judge(&policy(&text("reject")), "r", &push).await;
    assert_eq!(rules_of(&rejected), [Rule::LegacyRejected]);

    // Forwarded unchanged, the artifact is still a legacy one, which `wasm` does not cover.
    let allowed = judge(&policy(&text("allow")), "r", &push).await;
    assert_eq!(rules_of(&allowed), [Rule::ArtifactNotAdmitted]);
}

#[tokio::test]
async fn legacy_config_on_archive_not_admitted() {
    let policy = policy("version = 1\n[default]\nadmit = [\"wasm\"]\nlegacy = \"rewrite\"\n");
    let config = b"{}".to_vec();
    let archive = b"a tar archive".to_vec();
    let mut blobs = MemoryBlobs::default();
    blobs.insert(Bytes::from(config.clone()));
    blobs.insert(Bytes::from(archive.clone()));
    let document = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": descriptor("application/vnd.module.wasm.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &archive)],
    });
    let push = Push::from_document(document, blobs);

    let evaluation = judge(&policy, "r", &push).await;

    assert_eq!(rules_of(&evaluation), [Rule::ArtifactNotAdmitted]);
    assert!(evaluation.rewrite.is_none());
}

/// Builds a legacy manifest with the given config type and one layer per binary.
fn legacy_shape(config_type: &str, layers: &[(&str, &[u8])]) -> Push {
    let config = b"{}".to_vec();
    let mut blobs = MemoryBlobs::default();
    blobs.insert(Bytes::from(config.clone()));
    let mut descriptors = Vec::new();
    for (media_type, bytes) in layers {
        blobs.insert(Bytes::copy_from_slice(bytes));
        descriptors.push(descriptor(media_type, bytes));
    }
    let document = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": descriptor(config_type, &config),
        "layers": descriptors,
    });
    Push::from_document(document, blobs)
}

#[tokio::test]
async fn legacy_shapes_cannot_skip_capability_rules() {
    let sockets = component_importing("wasi:sockets/tcp@0.2.0");
    let clean = component_importing("wasi:cli/environment@0.2.0");
    let solo = "application/vnd.module.wasm.config.v1+json";
    let layer = "application/vnd.wasm.content.layer.v1+wasm";
    let shapes = [
        // Two binaries: the rewrite does not handle the shape.
        legacy_shape(solo, &[(layer, &clean), (layer, &sockets)]),
        // Layer type in another letter case.
        legacy_shape(
            solo,
            &[("Application/VND.Wasm.Content.Layer.V1+Wasm", &sockets)],
        ),
    ];
    for legacy in ["allow", "rewrite"] {
        let policy = policy(&format!(
            "version = 1\n[default]\nlegacy = \"{legacy}\"\n[default.wasm.imports]\ndeny = [\"wasi:sockets/*\"]\n"
        ));
        for (index, push) in shapes.iter().enumerate() {
            let evaluation = judge(&policy, "r", push).await;
            assert_eq!(
                rules_of(&evaluation),
                [Rule::ImportDenied],
                "{legacy}, shape {index}"
            );
        }
    }

    // A legacy config type in another letter case is still legacy, rejected or rewritten.
    let push = legacy_shape(
        "Application/Vnd.Module.Wasm.Config.V1+Json",
        &[(layer, &clean)],
    );
    let rejecting = policy("version = 1\n[default]\nlegacy = \"reject\"\n");
    assert_eq!(
        rules_of(&judge(&rejecting, "r", &push).await),
        [Rule::LegacyRejected]
    );
    let rewriting = policy("version = 1\n[default]\nlegacy = \"rewrite\"\n");
    let rewritten = judge(&rewriting, "r", &push).await;
    assert_eq!(
        rewritten.decision,
        Decision::Rewrite,
        "{:?}",
        rewritten.violations
    );
}

#[tokio::test]
async fn too_many_wasm_layers_are_rejected_unread() {
    let policy = policy("version = 1\n[default]\n[default.wasm]\nrequire-component = true\n");
    let clean = component_importing("wasi:cli/environment@0.2.0");
    let layers: Vec<(&str, &[u8])> = (0..=evaluate::MAX_INSPECTED_LAYERS)
        .map(|_| ("application/vnd.wasm.content.layer.v1+wasm", &clean[..]))
        .collect();
    let push = legacy_shape(
        "application/vnd.fermyon.spin.application.v1+config",
        &layers,
    );

    let evaluation = judge(&policy, "r", &push).await;

    assert_eq!(rules_of(&evaluation), [Rule::InspectionRequired]);
}

#[tokio::test]
async fn empty_referrers_admit_no_referrer() {
    let policy = policy("version = 1\n[default]\nadmit = [\"wasm\"]\nreferrers = []\n");

    let evaluation = judge(&policy, "r", &Push::referrer("application/spdx+json")).await;

    assert_eq!(rules_of(&evaluation), [Rule::ReferrerNotAdmitted]);
    assert!(
        evaluation.violations[0]
            .message
            .contains("admits no referrers"),
        "{}",
        evaluation.violations[0].message
    );
}

#[test]
fn policy_file_must_be_a_regular_file() {
    let error = Policy::load(std::path::Path::new("/dev/null")).expect_err("not a regular file");

    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[tokio::test]
async fn audited_rewrite_with_violations_would_deny() {
    let policy = policy(
        "version = 1\n[default]\nmode = \"audit\"\nlegacy = \"rewrite\"\n[default.wasm]\nrequire-component = true\n",
    );

    let evaluation = judge(&policy, "r", &Push::legacy(&core_module())).await;

    assert_eq!(evaluation.decision, Decision::WouldDeny);
    assert!(evaluation.rewrite.is_some(), "the push is still rewritten");
    assert_eq!(rules_of(&evaluation), [Rule::ComponentRequired]);
}

#[tokio::test]
async fn runwasi_and_spin_layers_meet_capability_rules() {
    let policy = policy(
        "version = 1\n[default]\nadmit = [\"runwasi\", \"spin\"]\n[default.wasm.imports]\ndeny = [\"wasi:sockets/*\"]\n",
    );
    let with_sockets = component_importing("wasi:sockets/tcp@0.2.0");
    let clean = component_importing("wasi:cli/environment@0.2.0");
    let image_config = b"{\"architecture\":\"wasm\",\"os\":\"wasip2\"}".to_vec();
    let push_with = |layer_type: &str, layer: &[u8]| {
        let mut blobs = MemoryBlobs::default();
        blobs.insert(Bytes::from(image_config.clone()));
        blobs.insert(Bytes::copy_from_slice(layer));
        let document = json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &image_config),
            "layers": [descriptor(layer_type, layer)],
        });
        Push::from_document(document, blobs)
    };

    for layer_type in [
        "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
        "application/vnd.wasm.content.layer.v1+wasm",
    ] {
        let denied = judge(&policy, "r", &push_with(layer_type, &with_sockets)).await;
        assert_eq!(rules_of(&denied), [Rule::ImportDenied], "{layer_type}");

        let allowed = judge(&policy, "r", &push_with(layer_type, &clean)).await;
        assert_eq!(
            allowed.decision,
            Decision::Allow,
            "{layer_type}: {:?}",
            allowed.violations
        );

        let not_wasm = judge(&policy, "r", &push_with(layer_type, b"not wasm")).await;
        assert_eq!(rules_of(&not_wasm), [Rule::LayerNotWasm], "{layer_type}");
    }
}

#[tokio::test]
async fn os_rule_reads_the_binary() {
    let policy = policy("version = 1\n[default.wasm]\nos = [\"wasip2\"]\n");
    // A core module whose config claims wasip2, as wkg writes it.
    let module = core_module();
    let config = serde_json::to_vec(&json!({
        "created": "2026-12-04T12:00:00Z",
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [sha256(&module)],
        "component": { "imports": [], "exports": [], "target": null }
    }))
    .expect("serializes");
    let mut blobs = MemoryBlobs::default();
    blobs.insert(Bytes::from(config.clone()));
    blobs.insert(Bytes::from(module.clone()));
    let document = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": descriptor(crate::wasm::WASM_CONFIG, &config),
        "layers": [descriptor(crate::wasm::WASM_LAYER, &module)],
    });
    let push = Push::from_document(document, blobs);

    let evaluation = judge(&policy, "r", &push).await;

    assert_eq!(rules_of(&evaluation), [Rule::WasmOsNotAllowed]);
    assert!(
        evaluation.violations[0]
            .message
            .contains("core module, which targets wasip1"),
        "{}",
        evaluation.violations[0].message
    );
}

#[tokio::test]
async fn wasm_constraints_use_the_binary() {
    let sockets = component_importing("wasi:sockets/tcp@0.2.0");
    let environment = component_importing("wasi:cli/environment@0.2.0");
    let module = core_module();
    let cases: Vec<(&str, Push, Vec<Rule>)> = vec![
        (
            "[rules.wasm.imports]\ndeny = [\"wasi:sockets/*\"]",
            Push::wasm(&sockets, &["wasi:sockets/tcp@0.2.0"]),
            vec![Rule::ImportDenied],
        ),
        (
            "[rules.wasm.imports]\ndeny = [\"wasi:sockets/*\"]",
            Push::wasm(&environment, &["wasi:cli/environment@0.2.0"]),
            vec![],
        ),
        (
            "[rules.wasm.imports]\nallow = [\"wasi:cli/*\"]",
            Push::wasm(&sockets, &["wasi:sockets/tcp@0.2.0"]),
            vec![Rule::ImportNotAllowed],
        ),
        (
            "[rules.wasm.exports]\nrequire = [\"wasi:http/incoming-handler@0.2.*\"]",
            Push::wasm(&environment, &["wasi:cli/environment@0.2.0"]),
            vec![Rule::ExportRequired],
        ),
        (
            "[rules.wasm.exports]\nrequire = [\"wasi:cli/run@0.2.*\"]",
            Push::wasm(&environment, &["wasi:cli/environment@0.2.0"]),
            vec![],
        ),
        (
            "[rules.wasm.exports]\ndeny = [\"wasi:cli/*\"]",
            Push::wasm(&environment, &["wasi:cli/environment@0.2.0"]),
            vec![Rule::ExportDenied],
        ),
        (
            "[rules.wasm.imports]\ndeny = [\"wasi:sockets/*\"]",
            Push::wasm(&module, &[]),
            vec![Rule::CapabilitiesNeedComponent],
        ),
        (
            "[rules.wasm]\nrequire-component = true",
            Push::wasm(&module, &[]),
            vec![Rule::ComponentRequired],
        ),
        (
            "[rules.wasm]\nos = [\"wasip1\"]",
            Push::wasm(&environment, &["wasi:cli/environment@0.2.0"]),
            vec![Rule::WasmOsNotAllowed],
        ),
        (
            "[rules.wasm]\nmax-layer-bytes = 16",
            Push::wasm(&environment, &["wasi:cli/environment@0.2.0"]),
            vec![Rule::WasmLayerTooLarge],
        ),
    ];
    for (constraints, push, expected) in cases {
        let text = format!(
            "version = 1\n[[rules]]\nname = \"prod\"\nrepositories = [\"prod/**\"]\n{constraints}\n"
        );
        let evaluation = judge(&policy(&text), "prod/app", &push).await;
        assert_eq!(rules_of(&evaluation), expected, "{constraints}");
    }
}

#[tokio::test]
async fn capability_rules_need_a_decoded_component() {
    let layer = component_importing("wasi:sockets/tcp@0.2.0");
    let push = Push::wasm(&layer, &["wasi:sockets/tcp@0.2.0"]);
    let capability = policy("version = 1\n[default.wasm.imports]\ndeny = [\"wasi:sockets/*\"]\n");
    let inspection = policy("version = 1\n[default.wasm]\nrequire-full-inspection = true\n");

    // A limit of 0 reads only the header, which names no interfaces.
    let evaluation = judge_with(&capability, "r", &push, 0).await;
    assert_eq!(rules_of(&evaluation), [Rule::InspectionRequired]);
    let evaluation = judge_with(&inspection, "r", &push, 0).await;
    assert_eq!(rules_of(&evaluation), [Rule::InspectionRequired]);
    let evaluation = judge_with(&inspection, "r", &push, 1 << 20).await;
    assert!(evaluation.violations.is_empty());
}

#[tokio::test]
async fn violations_are_all_reported() {
    let layer = component_importing("wasi:sockets/tcp@0.2.0");
    let push = Push::wasm(&layer, &["wasi:sockets/tcp@0.2.0"]);
    let policy = policy(
        "version = 1\n[default.wasm]\nos = [\"wasip1\"]\n[default.wasm.imports]\ndeny = [\"wasi:sockets/*\"]\n",
    );
    let evaluation = judge(&policy, "r", &push).await;
    assert_eq!(
        rules_of(&evaluation),
        [Rule::WasmOsNotAllowed, Rule::ImportDenied]
    );
    let rejection = evaluation.rejection().expect("a rejection");
    assert_eq!(
        rejection
            .policy
            .as_ref()
            .map_or(0, |policy| policy.additional.len()),
        1
    );
}

#[test]
fn invalid_policies_name_line_and_key() {
    let cases = [
        ("version = 2\n", "line 1", "version = 2 is not supported"),
        (
            "version = 1\nextra = true\n",
            "line 2",
            "unknown field `extra`",
        ),
        (
            "version = 1\n[default]\nmode = \"strict\"\n",
            "line 3",
            "unknown variant `strict`",
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\n",
            "line 2",
            "rules[0].repositories is missing",
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nrepositories = [\"a//b\"]\n",
            "line 4",
            "empty path component",
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nrepositories = [\"a\"]\nadmit = [\"wasmm\"]\n",
            "line 5",
            "unknown catalog \"wasmm\"",
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nrepositories = [\"a\"]\n[[rules]]\nname = \"a\"\nrepositories = [\"b\"]\n",
            "line 6",
            "two rules are named \"a\"",
        ),
        (
            "version = 1\n[[rules]]\nname = \"default\"\nrepositories = [\"a\"]\n",
            "line 3",
            "\"default\" is the name of the [default] rule",
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nrepositories = [\"Prod/**\"]\n",
            "line 4",
            "has uppercase letters",
        ),
        (
            "version = 1\n[[rules]]\nname = \"all\"\nrepositories = [\"**\"]\n[[rules]]\nname = \"late\"\nrepositories = [\"prod/**\"]\n",
            "line 6",
            "rule \"late\" can never apply",
        ),
        (
            "version = 1\n[[rules]]\nname = \"all\"\nrepositories = [\"*/**\"]\n[[rules]]\nname = \"late\"\nrepositories = [\"prod/**\"]\n",
            "line 6",
            "rule \"late\" can never apply",
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nrepositories = [\"prod/a b\"]\n",
            "line 4",
            "no repository name can contain",
        ),
        (
            "version = 1\n[default]\nadmit = []\n",
            "line 3",
            "default.admit is empty",
        ),
        (
            "version = 1\n[default.wasm]\nos = []\n",
            "line 3",
            "default.wasm.os is empty",
        ),
        (
            "version = 1\n[default]\nrepositories = [\"x\"]\n",
            "line 3",
            "default.repositories is not allowed",
        ),
        (
            "version = 1\n[catalogs.helm]\nconfig = [\"a/b\"]\n",
            "line 2",
            "built-in catalog name",
        ),
        (
            "version = 1\n[catalogs.x]\nconfig = [\"nonsense\"]\n",
            "line 3",
            "is not a media type",
        ),
        (
            "version = 1\n[default]\nadmit = [\"*\", \"wasm\"]\n",
            "line 3",
            "list it alone",
        ),
        (
            "version = 1\n[default.wasm.imports]\nblock = [\"x\"]\n",
            "line 3",
            "unknown field `block`",
        ),
    ];
    for (text, line, message) in cases {
        let error = Policy::parse(text, "p.toml").expect_err(message).0;
        assert!(error.starts_with(&format!("p.toml: {line},")), "{error}");
        assert!(error.contains(message), "{error}");
    }
}

#[test]
fn default_policy_text_is_the_builtin() {
    let policy = Policy::builtin(false);
    assert_eq!(policy.default.mode, Mode::Enforce);
    assert_eq!(policy.default.admit, Admit::Any);
    assert_eq!(policy.default.referrers, Admit::Any);
    assert_eq!(policy.default.legacy, Legacy::Allow);
    assert!(policy.rules.is_empty());
    assert_eq!(Policy::builtin(true).default.legacy, Legacy::Rewrite);
}
