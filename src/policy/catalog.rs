//! Artifact catalogs: named sets of media types that identify a kind of artifact, such as
//! Helm charts or cosign signatures. A rule admits artifacts by catalog name.

use crate::manifest::{EMPTY_CONFIG, Kind, Manifest};
use crate::wasm::{WASM_CONFIG, WASM_LAYER, rewrite::LEGACY_CONFIGS};

use super::pattern::NamePattern;

const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// A named set of entries; an artifact belongs to the catalog when it matches any entry.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub name: String,
    pub entries: Vec<Entry>,
    /// Whether the catalog is one of wasmgate's own, as opposed to the policy file's.
    pub builtin: bool,
}

/// One way an artifact of a catalog can look.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Config media types of image manifests. Empty means the entry matches no image manifest.
    pub configs: Vec<NamePattern>,
    /// Layer media types allowed; every layer must match one.
    pub layers: Vec<NamePattern>,
    /// When not empty, the manifest's `artifactType` must match one.
    pub artifact_types: Vec<NamePattern>,
    /// Whether an image manifest needs at least one layer to match. Set where the config
    /// type is shared with plain images, so that only the layers identify the artifact.
    pub needs_layer: bool,
    /// Whether an index (OCI index or Docker manifest list) matches this entry.
    pub index: bool,
}

impl Entry {
    fn new(configs: &[&str], layers: &[&str]) -> Self {
        Self {
            configs: patterns(configs),
            layers: patterns(layers),
            artifact_types: Vec::new(),
            needs_layer: false,
            index: false,
        }
    }

    fn artifact_types(mut self, types: &[&str]) -> Self {
        self.artifact_types = patterns(types);
        self
    }

    fn needs_layer(mut self) -> Self {
        self.needs_layer = true;
        self
    }

    fn with_index(mut self) -> Self {
        self.index = true;
        self
    }

    /// Returns whether the manifest matches this entry.
    pub fn matches(&self, manifest: &Manifest) -> bool {
        let artifact_type = manifest.document["artifactType"].as_str();
        if !self.artifact_types.is_empty() {
            let Some(artifact_type) = artifact_type else {
                return false;
            };
            if !any_matches(&self.artifact_types, artifact_type) {
                return false;
            }
        }
        if matches!(manifest.kind, Kind::OciIndex | Kind::DockerList) {
            return self.index;
        }
        let Some(config) = &manifest.config else {
            return false;
        };
        if !any_matches(&self.configs, &config.media_type) {
            return false;
        }
        if self.needs_layer && manifest.layers.is_empty() {
            return false;
        }
        manifest
            .layers
            .iter()
            .all(|layer| any_matches(&self.layers, &layer.media_type))
    }
}

fn patterns(texts: &[&str]) -> Vec<NamePattern> {
    texts
        .iter()
        .map(|text| NamePattern::media_type(text))
        .collect()
}

pub(super) fn any_matches(patterns: &[NamePattern], name: &str) -> bool {
    patterns.iter().any(|pattern| pattern.matches(name))
}

/// Names of the built-in catalogs, in the order the docs list them.
pub const BUILTIN_NAMES: &[&str] = &[
    "oci-image",
    "docker-image",
    "helm",
    "cosign",
    "notation",
    "sbom",
    "in-toto",
    "flux",
    "falco",
    "wasm",
    "wasm-legacy",
    "spin",
    "runwasi",
];

/// Catalogs that referrers (signatures, SBOMs, attestations) are judged by when a rule does
/// not list its own.
pub const DEFAULT_REFERRERS: &[&str] = &["cosign", "notation", "sbom", "in-toto"];

/// Name of the built-in catalog of CNCF WebAssembly artifacts.
pub const WASM: &str = "wasm";

const SBOM_TYPES: &[&str] = &[
    "application/spdx+json",
    "application/spdx",
    "text/spdx",
    "text/spdx+json",
    "application/vnd.cyclonedx",
    "application/vnd.cyclonedx+json",
    "application/vnd.cyclonedx+xml",
    "application/vnd.syft+json",
];

const IN_TOTO_TYPES: &[&str] = &[
    "application/vnd.in-toto+json",
    "application/vnd.in-toto.*",
    "application/vnd.dsse.envelope.v1+json",
];

/// Returns the built-in catalogs. The media types come from each tool's own constants: the
/// OCI image and distribution specifications, Docker schema 2, Helm 3, cosign and sigstore
/// bundles, Notary Project, SPDX and CycloneDX, in-toto and DSSE, Flux, Falco, the CNCF
/// WebAssembly layout, the legacy WebAssembly layouts, Spin and containerd runwasi.
pub fn builtin() -> Vec<Catalog> {
    let catalog = |name: &str, entries: Vec<Entry>| Catalog {
        name: name.to_owned(),
        entries,
        builtin: true,
    };
    let mut legacy_layers = vec![
        "application/vnd.wasm.content.layer.v1+wasm",
        "application/vnd.module.wasm.content.layer.v1+wasm",
        WASM_LAYER,
    ];
    // Solo.io artifacts repeat the config as a layer.
    legacy_layers.extend(LEGACY_CONFIGS);

    vec![
        catalog(
            "oci-image",
            vec![
                Entry::new(
                    &[OCI_IMAGE_CONFIG],
                    &[
                        "application/vnd.oci.image.layer.*",
                        "application/vnd.docker.image.rootfs.*",
                    ],
                )
                .with_index(),
            ],
        ),
        catalog(
            "docker-image",
            vec![
                Entry::new(
                    &[DOCKER_IMAGE_CONFIG],
                    &[
                        "application/vnd.docker.image.rootfs.*",
                        "application/vnd.oci.image.layer.*",
                    ],
                )
                .with_index(),
            ],
        ),
        catalog(
            "helm",
            vec![Entry::new(
                &["application/vnd.cncf.helm.config.v1+json"],
                &[
                    "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "application/vnd.cncf.helm.chart.provenance.v1.prov",
                ],
            )],
        ),
        catalog(
            "cosign",
            vec![
                // `.sig` tags: simple signing payloads on an image config.
                Entry::new(
                    &[OCI_IMAGE_CONFIG],
                    &["application/vnd.dev.cosign.simplesigning.v1+json"],
                )
                .needs_layer(),
                // `.att` tags: DSSE envelopes.
                Entry::new(
                    &[OCI_IMAGE_CONFIG],
                    &["application/vnd.dsse.envelope.v1+json"],
                )
                .needs_layer(),
                // OCI 1.1 referrers: sigstore bundles and cosign artifact types.
                Entry::new(&[EMPTY_CONFIG, "application/vnd.dev.sigstore.*"], &["*"])
                    .artifact_types(&[
                        "application/vnd.dev.sigstore.bundle*",
                        "application/vnd.dev.cosign.*",
                    ]),
            ],
        ),
        catalog(
            "notation",
            vec![
                Entry::new(
                    &[EMPTY_CONFIG, "application/vnd.cncf.notary.signature"],
                    &["application/jose+json", "application/cose"],
                )
                .artifact_types(&["application/vnd.cncf.notary.signature"]),
            ],
        ),
        catalog(
            "sbom",
            vec![
                Entry::new(&[EMPTY_CONFIG], &["*"]).artifact_types(SBOM_TYPES),
                Entry::new(SBOM_TYPES, &["*"]),
                Entry::new(&[OCI_IMAGE_CONFIG], SBOM_TYPES).needs_layer(),
            ],
        ),
        catalog(
            "in-toto",
            vec![
                Entry::new(&[EMPTY_CONFIG], &["*"]).artifact_types(IN_TOTO_TYPES),
                Entry::new(IN_TOTO_TYPES, &["*"]),
                // BuildKit attestation manifests: in-toto statements on an image config.
                Entry::new(&[OCI_IMAGE_CONFIG], IN_TOTO_TYPES).needs_layer(),
            ],
        ),
        catalog(
            "flux",
            vec![Entry::new(
                &["application/vnd.cncf.flux.config.v1+json"],
                &["application/vnd.cncf.flux.content.v1.*"],
            )],
        ),
        catalog(
            "falco",
            vec![Entry::new(
                &[
                    "application/vnd.cncf.falco.rulesfile.config.v1+json",
                    "application/vnd.cncf.falco.plugin.config.v1+json",
                    "application/vnd.cncf.falco.asset.config.v1+json",
                ],
                &[
                    "application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz",
                    "application/vnd.cncf.falco.plugin.layer.v1+tar.gz",
                    "application/vnd.cncf.falco.asset.layer.v1+tar.gz",
                ],
            )],
        ),
        catalog(
            "wasm",
            vec![Entry::new(&[WASM_CONFIG], &[WASM_LAYER]).with_index()],
        ),
        catalog(
            "wasm-legacy",
            vec![Entry::new(LEGACY_CONFIGS, &legacy_layers)],
        ),
        catalog(
            "spin",
            vec![
                Entry::new(
                    &[
                        OCI_IMAGE_CONFIG,
                        "application/vnd.fermyon.spin.application.v1+config",
                    ],
                    &[
                        "application/vnd.wasm.content.layer.v1+wasm",
                        "application/vnd.wasm.content.layer.v1+data",
                        "application/vnd.wasm.content.bundle.v1.tar+gzip",
                        "application/vnd.fermyon.spin.application.v1+config",
                    ],
                )
                .needs_layer(),
            ],
        ),
        catalog(
            "runwasi",
            vec![
                Entry::new(
                    &[OCI_IMAGE_CONFIG, DOCKER_IMAGE_CONFIG],
                    &[
                        "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
                        "application/vnd.bytecodealliance.wasm.module.layer.v0+wasm",
                    ],
                )
                .needs_layer()
                .with_index(),
            ],
        ),
    ]
}

/// Builds a catalog from a policy file's `[catalogs.NAME]` table.
pub fn user_defined(
    name: &str,
    configs: &[String],
    layers: &[String],
    artifact_type: Option<&str>,
    index: bool,
) -> Catalog {
    let to_patterns = |texts: &[String]| {
        texts
            .iter()
            .map(|text| NamePattern::media_type(text))
            .collect()
    };
    Catalog {
        name: name.to_owned(),
        entries: vec![Entry {
            configs: to_patterns(configs),
            layers: to_patterns(layers),
            artifact_types: artifact_type
                .map(|text| vec![NamePattern::media_type(text)])
                .unwrap_or_default(),
            needs_layer: false,
            index,
        }],
        builtin: false,
    }
}
