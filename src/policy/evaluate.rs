//! The policy engine: judges one manifest push against the rule for its repository. The
//! gate and `wasmgate check` both call [`evaluate`], so a developer gets the same verdict
//! before pushing that the gate gives on push.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::json;

use super::catalog::{self, any_matches};
use super::pattern::NamePattern;
use super::{Admit, Capabilities, Legacy, Mode, Policy, PolicyRule, WasmConstraints};
use crate::error::{GateError, PolicyContext, Rejection, Rule};
use crate::manifest::{Descriptor, Kind, Manifest};
use crate::route::Reference;
use crate::wasm::inspect::BinaryKind;
use crate::wasm::rewrite::{self, Rewrite};
use crate::wasm::{self, BlobSource, Inspection, Os, WasmOptions};

/// Tags under which registries without the referrers API keep referrers: the OCI fallback
/// index (`sha256-<hex>`) and cosign's tags (`sha256-<hex>.sig`, `.att`, `.sbom`).
static REFERRER_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$").expect("referrer tag pattern compiles")
});

/// The policy's decision on a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward the push.
    Allow,
    /// Reject the push (enforce mode, one or more violations).
    Deny,
    /// Forward the push with a warning per violation (audit mode).
    WouldDeny,
    /// Forward the CNCF artifact built from a legacy one.
    Rewrite,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::WouldDeny => "would_deny",
            Self::Rewrite => "rewrite",
        }
    }
}

/// The verdict on one push.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Name of the rule that judged the push.
    pub rule: String,
    pub mode: Mode,
    pub decision: Decision,
    /// Rules the push breaks; empty when it breaks none.
    pub violations: Vec<Rejection>,
    /// Problems that never reject a push, such as a header-only inspection.
    pub warnings: Vec<String>,
    /// The CNCF artifact to forward in place of a legacy one.
    pub rewrite: Option<Box<Rewrite>>,
    /// Catalogs the artifact belongs to.
    pub catalogs: Vec<String>,
    /// Whether the push was judged as a referrer (signature, SBOM, attestation).
    pub referrer: bool,
}

impl Evaluation {
    /// Returns the violations as one rejection, the first carrying the others.
    pub fn rejection(&self) -> Option<Rejection> {
        let mut violations = self.violations.iter().cloned();
        let mut first = violations.next()?;
        let rest: Vec<Rejection> = violations.collect();
        if !rest.is_empty() {
            first.policy.get_or_insert_with(Box::default).additional = rest;
        }
        Some(first)
    }
}

/// Judges a manifest that passed format validation, pushed to `repository` under
/// `reference`, against the policy. Blobs are read through `blobs`. Rejections of the
/// WebAssembly checks become violations; upstream failures are returned as errors.
pub async fn evaluate(
    policy: &Policy,
    repository: &str,
    reference: &Reference,
    manifest: &Manifest,
    body: &[u8],
    blobs: &impl BlobSource,
    options: &WasmOptions<'_>,
) -> Result<Evaluation, GateError> {
    let rule = policy.rule_for(repository);
    let mut evaluation = Evaluation {
        rule: rule.name.clone(),
        mode: rule.mode,
        decision: Decision::Allow,
        violations: Vec::new(),
        warnings: Vec::new(),
        rewrite: None,
        catalogs: policy
            .catalogs_of(manifest)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        referrer: false,
    };
    if rule.mode == Mode::Off {
        return Ok(evaluation);
    }

    let referrer_tag = matches!(reference, Reference::Tag(tag) if REFERRER_TAG.is_match(tag));
    evaluation.referrer = manifest.subject.is_some() || referrer_tag;
    let legacy = manifest
        .config
        .as_ref()
        .is_some_and(|config| rewrite::is_legacy_config(&config.media_type));
    // A legacy artifact that the rule rewrites is admitted as what it becomes; one that the
    // rule rejects gets that rejection alone. Only the shapes that the rewrite handles become
    // `wasm`, so a legacy config type on other layers is judged by its own catalogs.
    let mut judged_as = evaluation.catalogs.clone();
    if legacy && rule.legacy == Legacy::Rewrite && rewrite::legacy_artifact(manifest).is_some() {
        judged_as.push(catalog::WASM.to_owned());
    }
    let mut violations = Vec::new();
    if !(legacy && rule.legacy == Legacy::Reject)
        && let Some(violation) =
            check_admission(policy, rule, manifest, evaluation.referrer, &judged_as)
    {
        violations.push(violation);
    }

    if legacy {
        check_legacy(
            rule,
            reference,
            manifest,
            body,
            blobs,
            options,
            &mut evaluation,
            &mut violations,
        )
        .await?;
    } else if wasm::is_wasm(manifest) {
        match wasm::check(manifest, blobs, options).await {
            Ok(findings) => {
                evaluation.warnings.extend(findings.warnings);
                violations.extend(check_constraints(
                    &rule.wasm,
                    &manifest.layers[0],
                    &findings.inspection,
                    Some(findings.claims.os),
                ));
            }
            Err(GateError::Rejected(rejection)) => violations.push(*rejection),
            Err(error) => return Err(error),
        }
    } else if !rule.wasm.is_empty() {
        check_wasm_layers(&rule.wasm, manifest, blobs, options, &mut violations).await?;
    }

    for violation in &mut violations {
        violation.policy = Some(Box::new(PolicyContext {
            rule: rule.name.clone(),
            additional: Vec::new(),
        }));
    }
    evaluation.decision = match (violations.is_empty(), rule.mode) {
        (true, _) if evaluation.rewrite.is_some() => Decision::Rewrite,
        (true, _) => Decision::Allow,
        // Audit mode still forwards a rewrite with violations. Audit pipelines look for
        // would_deny, so that decision wins, and `rewrite` stays set for the push path.
        (false, Mode::Audit) => Decision::WouldDeny,
        (false, _) => Decision::Deny,
    };
    evaluation.violations = violations;
    Ok(evaluation)
}

/// Checks that the rule admits the artifact: by `admit`, or by `referrers` for referrers.
fn check_admission(
    policy: &Policy,
    rule: &PolicyRule,
    manifest: &Manifest,
    referrer: bool,
    catalogs: &[String],
) -> Option<Rejection> {
    let (admitted, list, what) = if referrer {
        (&rule.referrers, "referrers", "referrer")
    } else {
        (&rule.admit, "admit", "artifact")
    };
    if *admitted == Admit::Any {
        return None;
    }
    if referrer && matches!(admitted, Admit::Catalogs(names) if names.is_empty()) {
        return Some(
            Rejection::manifest_invalid(
                Rule::ReferrerNotAdmitted,
                format!(
                    "policy rule {:?} admits no referrers (signatures, SBOMs, attestations) here; push them to a repository whose rule admits them",
                    rule.name
                ),
            )
            .expected(json!({ "referrers": [] })),
        );
    }
    if referrer
        && matches!(manifest.kind, Kind::OciIndex | Kind::DockerList)
        && manifest.subject.is_none()
    {
        return check_fallback_index(policy, rule, manifest);
    }
    if catalogs.iter().any(|name| admitted.includes(name)) {
        return None;
    }

    let identity = describe_artifact(manifest);
    let (belongs, remedy) = if catalogs.is_empty() {
        (
            "no catalog".to_owned(),
            format!("to define a catalog for it in the policy and add that catalog to {list}"),
        )
    } else {
        (
            format!("the catalogs {}", catalogs.join(", ")),
            format!("to add one of these catalogs to {list}"),
        )
    };
    let rule_kind = if referrer {
        Rule::ReferrerNotAdmitted
    } else {
        Rule::ArtifactNotAdmitted
    };
    Some(
        Rejection::manifest_invalid(
            rule_kind,
            format!(
                "policy rule {:?} admits only {} as {what}s here, and this {what} ({identity}) belongs to {belongs}; push it to a repository whose rule admits it, or ask the operator {remedy}",
                rule.name,
                admitted.describe(),
            ),
        )
        .expected(json!({ list: admitted.describe() }))
        .found(json!({ "catalogs": catalogs, "artifact": identity })),
    )
}

/// Judges a fallback referrers index (an index under a `sha256-<hex>` tag) by the artifact
/// types of its entries: each entry that has one must belong to a referrer catalog.
fn check_fallback_index(
    policy: &Policy,
    rule: &PolicyRule,
    manifest: &Manifest,
) -> Option<Rejection> {
    let entries = manifest.document["manifests"].as_array()?;
    let mut rejected = Vec::new();
    for entry in entries {
        let Some(artifact_type) = entry["artifactType"].as_str() else {
            continue;
        };
        let admitted = policy.catalogs.iter().any(|catalog| {
            rule.referrers.includes(&catalog.name)
                && catalog.entries.iter().any(|catalog_entry| {
                    any_matches(&catalog_entry.artifact_types, artifact_type)
                        || any_matches(&catalog_entry.configs, artifact_type)
                })
        });
        if !admitted {
            rejected.push(artifact_type.to_owned());
        }
    }
    if rejected.is_empty() {
        return None;
    }
    Some(
        Rejection::manifest_invalid(
            Rule::ReferrerNotAdmitted,
            format!(
                "policy rule {:?} judges referrers by {}, and this referrers index lists artifact types {rejected:?} outside them; ask the operator to add their catalogs to referrers",
                rule.name,
                rule.referrers.describe()
            ),
        )
        .at("$.manifests")
        .expected(rule.referrers.describe())
        .found(rejected),
    )
}

/// Describes an artifact by its media types, for messages.
fn describe_artifact(manifest: &Manifest) -> String {
    let mut parts = vec![format!("manifest {}", manifest.kind.media_type())];
    if let Some(artifact_type) = manifest.document["artifactType"].as_str() {
        parts.push(format!("artifactType {artifact_type}"));
    }
    if let Some(config) = &manifest.config {
        parts.push(format!("config {}", config.media_type));
        let layers: BTreeSet<&str> = manifest
            .layers
            .iter()
            .map(|layer| layer.media_type.as_str())
            .collect();
        if !layers.is_empty() {
            parts.push(format!(
                "layers {}",
                layers.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    parts.join(", ")
}

/// Applies the rule's legacy handling. A rewrite that succeeds is stored in the evaluation;
/// constraints are checked against the legacy binary whenever the rule sets any.
#[allow(clippy::too_many_arguments)]
async fn check_legacy(
    rule: &PolicyRule,
    reference: &Reference,
    manifest: &Manifest,
    body: &[u8],
    blobs: &impl BlobSource,
    options: &WasmOptions<'_>,
    evaluation: &mut Evaluation,
    violations: &mut Vec<Rejection>,
) -> Result<(), GateError> {
    let config_type = manifest
        .config
        .as_ref()
        .map(|config| config.media_type.clone())
        .unwrap_or_default();
    if rule.legacy == Legacy::Reject {
        violations.push(
            Rejection::manifest_invalid(
                Rule::LegacyRejected,
                format!(
                    "policy rule {:?} rejects legacy WebAssembly artifacts ({config_type}); push the component in the CNCF layout with `wkg oci push`",
                    rule.name
                ),
            )
            .at("$.config.mediaType")
            .expected(wasm::WASM_CONFIG)
            .found(config_type),
        );
        return Ok(());
    }

    // Only the shapes the rewrite understands: one binary layer besides copies of the config.
    // Any other shape is forwarded unchanged, with every WebAssembly layer held to the rule.
    let Some(artifact) = rewrite::legacy_artifact(manifest) else {
        if !rule.wasm.is_empty() {
            check_wasm_layers(&rule.wasm, manifest, blobs, options, violations).await?;
        }
        return Ok(());
    };
    let layer = &manifest.layers[artifact.layer_index];

    if rule.legacy == Legacy::Rewrite {
        if let Reference::Digest(digest) = reference {
            violations.push(
                Rejection::manifest_invalid(
                    Rule::LegacyRewriteByDigest,
                    format!(
                        "this gate rewrites legacy WebAssembly artifacts ({}) into the CNCF layout, which changes the manifest digest, so they must be pushed by tag; push to a tag instead of {digest}",
                        artifact.config_media_type
                    ),
                )
                .found(digest.to_string()),
            );
            return Ok(());
        }
        match rewrite::build(manifest, body, &artifact, blobs, options).await {
            Ok(built) => {
                violations.extend(check_constraints(
                    &rule.wasm,
                    layer,
                    &built.inspection,
                    Some(built.os),
                ));
                evaluation.rewrite = Some(Box::new(built));
            }
            Err(GateError::Rejected(rejection)) => violations.push(*rejection),
            Err(error) => return Err(error),
        }
        return Ok(());
    }

    // Allowed unchanged: the binaries are inspected only when a constraint needs them.
    if rule.wasm.is_empty() {
        return Ok(());
    }
    check_wasm_layers(&rule.wasm, manifest, blobs, options, violations).await
}

/// WebAssembly layer types of Spin applications and containerd runwasi images; the legacy
/// layouts' types are in [`rewrite::LEGACY_WASM_LAYERS`].
const OTHER_WASM_LAYERS: &[&str] = &[
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    "application/vnd.bytecodealliance.wasm.module.layer.v0+wasm",
];

/// Maximum number of WebAssembly layers inspected in one manifest. Spin applications have a
/// few; a manifest with more is rejected rather than cost the registry one read per layer.
pub const MAX_INSPECTED_LAYERS: usize = 64;

/// Applies the rule's WebAssembly constraints to every WebAssembly layer of an artifact that
/// is not in the CNCF layout: Spin, runwasi, and legacy shapes the rewrite does not handle.
/// Each binary is inspected, so these layouts cannot carry a component past a capability
/// rule. There is no CNCF config, so there is no `os` claim to check. Inspection stops at
/// the first layer that breaks the rule.
async fn check_wasm_layers(
    constraints: &WasmConstraints,
    manifest: &Manifest,
    blobs: &impl BlobSource,
    options: &WasmOptions<'_>,
    violations: &mut Vec<Rejection>,
) -> Result<(), GateError> {
    let is_wasm_layer = |media_type: &str| {
        rewrite::is_legacy_wasm_layer(media_type)
            || OTHER_WASM_LAYERS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(media_type))
    };
    let layers: Vec<(usize, &Descriptor)> = manifest
        .layers
        .iter()
        .enumerate()
        .filter(|(_, layer)| is_wasm_layer(&layer.media_type))
        .collect();
    if layers.len() > MAX_INSPECTED_LAYERS {
        violations.push(
            Rejection::manifest_invalid(
                Rule::InspectionRequired,
                format!(
                    "the manifest has {} WebAssembly layers, and this gate inspects at most {MAX_INSPECTED_LAYERS} per manifest for the rule's WebAssembly constraints; split the artifact",
                    layers.len()
                ),
            )
            .at("$.layers")
            .expected(MAX_INSPECTED_LAYERS)
            .found(layers.len()),
        );
        return Ok(());
    }
    for (index, layer) in layers {
        let found = match wasm::inspect_layer(layer, index, blobs, options).await {
            Ok(inspection) => check_constraints(constraints, layer, &inspection, None),
            Err(GateError::Rejected(rejection)) => vec![*rejection],
            Err(error) => return Err(error),
        };
        if !found.is_empty() {
            violations.extend(found);
            break;
        }
    }
    Ok(())
}

/// Checks the rule's WebAssembly constraints against the inspected layer. `claimed_os` is
/// the config's `os`, when the artifact has a CNCF config.
fn check_constraints(
    constraints: &WasmConstraints,
    layer: &Descriptor,
    inspection: &Inspection,
    claimed_os: Option<Os>,
) -> Vec<Rejection> {
    let mut violations = Vec::new();

    if let Some(allowed) = &constraints.os {
        let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        // The binary decides the target too: a core module is a wasip1 artifact and a
        // component a wasip2 one, whatever its config claims.
        let binary_os = match inspection.kind {
            BinaryKind::CoreModule => Os::Wasip1,
            BinaryKind::Component => Os::Wasip2,
        };
        if let Some(os) = claimed_os
            && !allowed.contains(&os)
        {
            violations.push(
                Rejection::manifest_invalid(
                    Rule::WasmOsNotAllowed,
                    format!(
                        "config.os is {os}, and this repository admits only {}; build for an allowed target",
                        names.join(", ")
                    ),
                )
                .at("config.os")
                .expected(names.clone())
                .found(os.to_string()),
            );
        } else if !allowed.contains(&binary_os) {
            violations.push(
                Rejection::manifest_invalid(
                    Rule::WasmOsNotAllowed,
                    format!(
                        "layer {} is {}, which targets {binary_os}, and this repository admits only {}; build for an allowed target",
                        layer.digest,
                        inspection.kind.describe(),
                        names.join(", ")
                    ),
                )
                .expected(names)
                .found(binary_os.to_string()),
            );
        }
    }

    if constraints.require_component && inspection.kind != BinaryKind::Component {
        violations.push(
            Rejection::manifest_invalid(
                Rule::ComponentRequired,
                format!(
                    "layer {} is a core module, and this repository admits only components; build a component (for example with `cargo component build` or `wasm-tools component new`)",
                    layer.digest
                ),
            )
            .expected("component")
            .found("core module"),
        );
    }

    if let Some(max) = constraints.max_layer_bytes
        && layer.size > max
    {
        violations.push(
            Rejection::manifest_invalid(
                Rule::WasmLayerTooLarge,
                format!(
                    "layer {} is {} bytes, and this repository admits WebAssembly layers up to {max} bytes; shrink the binary (for example with `wasm-opt` or by stripping debug sections)",
                    layer.digest, layer.size
                ),
            )
            .expected(max)
            .found(layer.size),
        );
    }

    if constraints.require_full_inspection && !inspection.full {
        violations.push(inspection_required(
            layer,
            "this repository requires every WebAssembly layer to be validated whole",
        ));
    }

    if constraints.has_capability_rules() {
        match (&inspection.interfaces, inspection.kind) {
            (Some(interfaces), _) => {
                check_capabilities(&constraints.imports, &interfaces.imports, "import", &mut violations);
                check_capabilities(&constraints.exports, &interfaces.exports, "export", &mut violations);
            }
            (None, BinaryKind::CoreModule) => violations.push(
                Rejection::manifest_invalid(
                    Rule::CapabilitiesNeedComponent,
                    format!(
                        "layer {} is a core module, whose imports are not WIT interfaces, and this repository restricts the interfaces a component imports and exports; push a component",
                        layer.digest
                    ),
                )
                .expected("component")
                .found("core module"),
            ),
            (None, BinaryKind::Component) => violations.push(inspection_required(
                layer,
                "this repository restricts the interfaces a component imports and exports, which needs the decoded component",
            )),
        }
    }
    violations
}

fn inspection_required(layer: &Descriptor, reason: &str) -> Rejection {
    Rejection::manifest_invalid(
        Rule::InspectionRequired,
        format!(
            "layer {} is {} bytes, above this gate's inspection limit, so only its header was read, but {reason}; shrink the layer, or ask the operator to raise --inspect-max-bytes",
            layer.digest, layer.size
        ),
    )
    .found(layer.size)
}

/// Checks allow, deny and require patterns over the interface names of one direction.
fn check_capabilities(
    capabilities: &Capabilities,
    names: &BTreeSet<String>,
    direction: &str,
    violations: &mut Vec<Rejection>,
) {
    let (denied_rule, not_allowed_rule, required_rule) = if direction == "import" {
        (
            Rule::ImportDenied,
            Rule::ImportNotAllowed,
            Rule::ImportRequired,
        )
    } else {
        (
            Rule::ExportDenied,
            Rule::ExportNotAllowed,
            Rule::ExportRequired,
        )
    };
    let sources = |patterns: &[NamePattern]| -> Vec<String> {
        patterns
            .iter()
            .map(|pattern| pattern.as_str().to_owned())
            .collect()
    };

    for pattern in &capabilities.deny {
        let matched: Vec<&String> = names.iter().filter(|name| pattern.matches(name)).collect();
        if !matched.is_empty() {
            violations.push(
                Rejection::manifest_invalid(
                    denied_rule,
                    format!(
                        "the component {direction}s {matched:?}, which this repository denies ({direction}s matching {:?}); remove the dependency from the component's world and rebuild",
                        pattern.as_str()
                    ),
                )
                .at(format!("component.{direction}s"))
                .expected(json!({ "deny": pattern.as_str() }))
                .found(json!(matched)),
            );
        }
    }

    if let Some(allow) = &capabilities.allow {
        let outside: Vec<&String> = names
            .iter()
            .filter(|name| !allow.iter().any(|pattern| pattern.matches(name)))
            .collect();
        if !outside.is_empty() {
            violations.push(
                Rejection::manifest_invalid(
                    not_allowed_rule,
                    format!(
                        "the component {direction}s {outside:?}, outside the {direction}s this repository allows ({:?}); remove them from the component's world and rebuild",
                        sources(allow)
                    ),
                )
                .at(format!("component.{direction}s"))
                .expected(json!({ "allow": sources(allow) }))
                .found(json!(outside)),
            );
        }
    }

    for pattern in &capabilities.require {
        if !names.iter().any(|name| pattern.matches(name)) {
            violations.push(
                Rejection::manifest_invalid(
                    required_rule,
                    format!(
                        "the component does not {direction} an interface matching {:?}, which this repository requires; its {direction}s are {names:?}",
                        pattern.as_str()
                    ),
                )
                .at(format!("component.{direction}s"))
                .expected(json!({ "require": pattern.as_str() }))
                .found(json!(names)),
            );
        }
    }
}
