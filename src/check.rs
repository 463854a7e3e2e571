//! `wasmgate check`: the policy engine offline, for CI pipelines. It judges a manifest with
//! its blobs from files, an OCI image layout on disk, or a `.wasm` file wrapped the way
//! `wkg oci push` wraps it. It exits 0 when the gate would accept the push, 1 when it would
//! reject it, and 2 on a usage or input error.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use clap::Args;
use http::HeaderValue;
use serde_json::{Value, json};

use crate::error::{GateError, Rejection, Rule};
use crate::manifest::{self, Descriptor, Digest, OCI_MANIFEST};
use crate::policy::{self, Decision, Evaluation, Policy};
use crate::route::Reference;
use crate::wasm::{self, BlobRole, BlobSource, InspectionCache, MemoryBlobs, WasmOptions};

/// Exit code: the gate would accept the push.
pub const EXIT_ALLOWED: i32 = 0;
/// Exit code: the gate would reject the push.
pub const EXIT_DENIED: i32 = 1;
/// Exit code: the arguments or the input files are unusable.
pub const EXIT_INPUT: i32 = 2;

/// Tag a push is judged under when neither --tag nor the OCI layout names one.
const DEFAULT_TAG: &str = "latest";

/// Largest manifest or config file read.
const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the gate would accept the push, 1 it would reject it, 2 usage or input error."
)]
pub struct CheckArgs {
    /// A .wasm file: check the manifest and config that `wkg oci push` would build for it.
    #[arg(value_name = "FILE.wasm", conflicts_with_all = ["manifest", "oci_layout"])]
    pub wasm: Option<PathBuf>,

    /// Manifest JSON file to check.
    #[arg(long, value_name = "FILE", conflicts_with = "oci_layout")]
    pub manifest: Option<PathBuf>,

    /// Config blob of --manifest.
    #[arg(long, value_name = "FILE", requires = "manifest")]
    pub config: Option<PathBuf>,

    /// Layer blob of --manifest; repeatable. Blobs are matched to descriptors by digest.
    #[arg(long = "layer", value_name = "FILE", requires = "manifest")]
    pub layers: Vec<PathBuf>,

    /// OCI image layout directory, with the manifest to check after a colon (a tag) or an
    /// at sign (a digest, for untagged manifests such as referrers) when the layout has more
    /// than one manifest.
    #[arg(long, value_name = "DIR[:TAG|@DIGEST]")]
    pub oci_layout: Option<String>,

    /// Repository the push would go to, which selects the policy rule [default: judged by
    /// the policy's default rule].
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,

    /// Tag the push would use; tags such as sha256-<hex> mark referrers [default: the
    /// layout's tag for --oci-layout, else latest].
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Policy file [default: the built-in policy].
    #[arg(long, value_name = "FILE", env = "WASMGATE_POLICY")]
    pub policy: Option<PathBuf>,

    /// Largest WebAssembly layer validated whole, in bytes, as the gate's
    /// --inspect-max-bytes.
    #[arg(long, value_name = "BYTES", default_value_t = wasm::DEFAULT_INSPECT_MAX_BYTES)]
    pub inspect_max_bytes: u64,

    /// Reject a config `os` that disagrees with the layer, as the gate's --strict-os.
    #[arg(long)]
    pub strict_os: bool,

    /// Output format: text for people, json for programs.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// An artifact loaded from disk, ready to be judged.
struct Artifact {
    body: Bytes,
    content_type: String,
    blobs: Blobs,
    /// Where the artifact came from, for the report.
    origin: String,
    tag: String,
    /// The digest it is pushed by, for the manifests an index lists, which clients push by
    /// digest before the index.
    pushed_by: Option<Digest>,
}

enum Blobs {
    Memory(MemoryBlobs),
    Layout(LayoutBlobs),
}

impl BlobSource for Blobs {
    async fn fetch(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        max_bytes: u64,
    ) -> Result<Bytes, GateError> {
        match self {
            Self::Memory(blobs) => blobs.fetch(descriptor, role, max_bytes).await,
            Self::Layout(blobs) => blobs.fetch(descriptor, role, max_bytes).await,
        }
    }

    async fn fetch_prefix(
        &self,
        descriptor: &Descriptor,
        role: BlobRole,
        length: usize,
    ) -> Result<Bytes, GateError> {
        match self {
            Self::Memory(blobs) => blobs.fetch_prefix(descriptor, role, length).await,
            Self::Layout(blobs) => blobs.fetch_prefix(descriptor, role, length).await,
        }
    }
}

/// Blobs of an OCI image layout, read from `blobs/<algorithm>/<hex>` when needed.
struct LayoutBlobs {
    root: PathBuf,
}

impl LayoutBlobs {
    fn path_of(&self, digest: &Digest) -> PathBuf {
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

/// Reads at most `max_bytes + 1` bytes, so a file larger than the cap is detected without
/// reading all of it. Only regular files are read (symbolic links to them included), so a
/// device such as /dev/zero or a FIFO fails at once rather than filling memory or blocking.
fn read_capped(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    require_regular_file(path)?;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a whole regular file, for layers and `.wasm` files.
fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
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

fn read_document(path: &Path, what: &str) -> Result<Vec<u8>, String> {
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

/// Runs `wasmgate check` and returns the exit code.
pub fn run(args: &CheckArgs) -> i32 {
    let policy = match &args.policy {
        Some(path) => match Policy::load(path) {
            Ok(policy) => policy,
            Err(error) => {
                eprintln!("wasmgate check: invalid policy: {error}");
                return EXIT_INPUT;
            }
        },
        None => Policy::builtin(false),
    };
    if let Some(repository) = &args.repository
        && !crate::route::is_valid_name(repository)
    {
        eprintln!(
            "wasmgate check: --repository {repository:?} is not a valid repository name; use lowercase path components such as \"team/app\""
        );
        return EXIT_INPUT;
    }
    if let Some(tag) = &args.tag
        && !crate::route::is_valid_tag(tag)
    {
        eprintln!(
            "wasmgate check: --tag {:?} is not a valid tag; a tag has up to 128 letters, digits, '_', '.' and '-', and does not start with '.' or '-'",
            tag
        );
        return EXIT_INPUT;
    }
    let artifact = match load(args) {
        Ok(artifact) => artifact,
        Err(message) => {
            eprintln!("wasmgate check: {message}");
            return EXIT_INPUT;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wasmgate check: cannot start the async runtime: {error}");
            return EXIT_INPUT;
        }
    };
    let repository = args.repository.clone().unwrap_or_default();
    // An index in a layout comes with the manifests it lists, which a client pushes first:
    // each is judged too, so that the exit code is the verdict on the whole push.
    let children = match layout_children(&artifact) {
        Ok(children) => children,
        Err(message) => {
            eprintln!("wasmgate check: {message}");
            return EXIT_INPUT;
        }
    };
    let mut exit = EXIT_ALLOWED;
    let mut child_reports = Vec::new();
    for child in &children {
        let outcome = runtime.block_on(judge(&policy, &repository, child, args));
        exit = exit.max(exit_code(&outcome));
        if let Err(message) = &outcome {
            eprintln!("wasmgate check: {}: {message}", child.origin);
        }
        child_reports.push(report(&policy, &repository, child, &outcome));
    }
    let outcome = runtime.block_on(judge(&policy, &repository, &artifact, args));
    exit = exit.max(exit_code(&outcome));
    let mut report = report(&policy, &repository, &artifact, &outcome);
    if let Err(message) = &outcome {
        eprintln!("wasmgate check: {message}");
    }
    if args.format == "json" {
        if !child_reports.is_empty() {
            report["manifests"] = Value::Array(child_reports);
        }
        println!("{report:#}");
    } else {
        for child in child_reports
            .iter()
            .filter(|child| child["decision"] != "error")
        {
            print!("{}", text_report(child));
        }
        if outcome.is_ok() {
            print!("{}", text_report(&report));
        }
    }
    exit
}

/// Returns the exit code of one verdict. The codes are ordered, so the worst of several
/// verdicts is their maximum.
fn exit_code(outcome: &Result<Judgement, String>) -> i32 {
    match outcome {
        Ok(Judgement::Evaluated(evaluation)) if evaluation.decision != Decision::Deny => {
            EXIT_ALLOWED
        }
        Ok(_) => EXIT_DENIED,
        Err(_) => EXIT_INPUT,
    }
}

/// Maximum number of manifests of one index judged from a layout.
const MAX_INDEX_CHILDREN: usize = 256;

/// Loads the manifests that an index from an OCI layout lists, from the layout's blobs. A
/// manifest missing from the layout, as a single-platform copy leaves them, is noted on
/// stderr and not judged.
fn layout_children(artifact: &Artifact) -> Result<Vec<Artifact>, String> {
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

/// The verdict: evaluated by the policy, or rejected by the format checks before it.
enum Judgement {
    Evaluated(Evaluation),
    Malformed(Rejection),
}

async fn judge(
    policy: &Policy,
    repository: &str,
    artifact: &Artifact,
    args: &CheckArgs,
) -> Result<Judgement, String> {
    let reference = match &artifact.pushed_by {
        Some(digest) => Reference::Digest(digest.clone()),
        None => Reference::Tag(artifact.tag.clone()),
    };
    let content_type = HeaderValue::from_str(&artifact.content_type)
        .map_err(|_| format!("invalid media type {:?}", artifact.content_type))?;
    let manifest = match manifest::validate(&artifact.body, Some(&content_type), &reference) {
        Ok(manifest) => manifest,
        Err(rejection) => return Ok(Judgement::Malformed(rejection)),
    };
    let cache = InspectionCache::default();
    let options = WasmOptions {
        inspect_max_bytes: args.inspect_max_bytes,
        strict_os: args.strict_os,
        cache: &cache,
    };
    match policy::evaluate(
        policy,
        repository,
        &reference,
        &manifest,
        &artifact.body,
        &artifact.blobs,
        &options,
    )
    .await
    {
        Ok(evaluation) => match evaluation
            .violations
            .iter()
            .find(|violation| is_missing_blob(violation))
        {
            // A blob that was not given is an input problem, not a verdict on the artifact.
            Some(missing) => Err(missing_blob_message(missing)),
            None => Ok(Judgement::Evaluated(evaluation)),
        },
        Err(GateError::Rejected(rejection)) if is_missing_blob(&rejection) => {
            Err(missing_blob_message(&rejection))
        }
        // Offline blob sources produce only rejections; anything else is an input problem.
        Err(GateError::Rejected(rejection)) => Ok(Judgement::Malformed(*rejection)),
        Err(error) => Err(error.to_string()),
    }
}

fn is_missing_blob(rejection: &Rejection) -> bool {
    matches!(
        rejection.rule,
        Rule::ConfigBlobUnknown | Rule::LayerBlobUnknown
    )
}

fn missing_blob_message(rejection: &Rejection) -> String {
    let digest = rejection
        .found
        .as_deref()
        .and_then(Value::as_str)
        .unwrap_or("a blob");
    let role = match rejection.rule {
        Rule::ConfigBlobUnknown => "config",
        _ => "layer",
    };
    format!(
        "the manifest lists the {role} {digest}, and no file given has that digest; give it with --config or --layer, or check an OCI layout that contains it"
    )
}

fn load(args: &CheckArgs) -> Result<Artifact, String> {
    if let Some(path) = &args.wasm {
        return wrap_wasm(path, args.tag.as_deref().unwrap_or(DEFAULT_TAG));
    }
    if let Some(path) = &args.manifest {
        return load_files(
            path,
            args.config.as_deref(),
            &args.layers,
            args.tag.as_deref().unwrap_or(DEFAULT_TAG),
        );
    }
    if let Some(spec) = &args.oci_layout {
        return load_layout(spec, args.tag.as_deref());
    }
    Err("nothing to check; pass a .wasm file, --manifest FILE or --oci-layout DIR[:TAG|@DIGEST] (see --help)".to_owned())
}

/// The media type a manifest file announces: its `mediaType` field, else an OCI index when
/// it has `manifests`, else an OCI image manifest.
fn content_type_of(body: &[u8]) -> String {
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

fn load_files(
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

fn load_layout(spec: &str, tag_override: Option<&str>) -> Result<Artifact, String> {
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

/// Builds the config and manifest that `wkg oci push` (0.16) writes for a file: os wasip2
/// with the decoded world for a component, and, as wkg does, also wasip2 with an empty
/// world for a core module; one `application/wasm` layer titled with the file name.
fn wrap_wasm(path: &Path, tag: &str) -> Result<Artifact, String> {
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

fn violation_json(rejection: &Rejection) -> Value {
    json!({
        "code": rejection.code.as_str(),
        "rule": rejection.rule.as_str(),
        "message": rejection.message,
        "path": rejection.path,
        "expected": rejection.expected,
        "found": rejection.found,
    })
}

/// Builds the JSON report; the text report is rendered from it.
fn report(
    policy: &Policy,
    repository: &str,
    artifact: &Artifact,
    outcome: &Result<Judgement, String>,
) -> Value {
    let digest = Digest::of(manifest::digest::Algorithm::Sha256, &artifact.body).to_string();
    let mut report = json!({
        "artifact": artifact.origin,
        "digest": digest,
        "repository": repository,
        "tag": artifact.tag,
        "policy": policy.source,
    });
    match outcome {
        Ok(Judgement::Evaluated(evaluation)) => {
            report["decision"] = json!(evaluation.decision.as_str());
            report["rule"] = json!(evaluation.rule);
            report["mode"] = json!(evaluation.mode.as_str());
            report["catalogs"] = json!(evaluation.catalogs);
            report["referrer"] = json!(evaluation.referrer);
            report["violations"] =
                Value::Array(evaluation.violations.iter().map(violation_json).collect());
            report["warnings"] = json!(evaluation.warnings);
        }
        Ok(Judgement::Malformed(rejection)) => {
            report["decision"] = json!("deny");
            report["rule"] = Value::Null;
            report["mode"] = Value::Null;
            report["catalogs"] = json!([]);
            report["referrer"] = json!(false);
            report["violations"] = json!([violation_json(rejection)]);
            report["warnings"] = json!([]);
        }
        Err(message) => {
            report["decision"] = json!("error");
            report["error"] = json!(message);
        }
    }
    report
}

fn text_report(report: &Value) -> String {
    let mut text = String::new();
    let decision = report["decision"].as_str().unwrap_or("error");
    let verdict = match decision {
        "allow" => "ALLOWED",
        "rewrite" => "ALLOWED (rewritten to the CNCF layout)",
        "would_deny" => "ALLOWED (audit mode; enforce mode would reject it)",
        "deny" => "DENIED",
        _ => "ERROR",
    };
    text.push_str(&format!(
        "{verdict}: {}\n",
        report["artifact"].as_str().unwrap_or("")
    ));
    let repository = report["repository"].as_str().unwrap_or("");
    match report["rule"].as_str() {
        Some(rule) => text.push_str(&format!(
            "  policy rule {rule:?} ({} mode) of {} for repository {}\n",
            report["mode"].as_str().unwrap_or(""),
            report["policy"].as_str().unwrap_or(""),
            if repository.is_empty() {
                "(none given)"
            } else {
                repository
            },
        )),
        None if decision == "deny" => {
            text.push_str("  rejected by the manifest format checks, before any policy rule\n")
        }
        None => {}
    }
    if let Some(catalogs) = report["catalogs"].as_array() {
        let names: Vec<&str> = catalogs.iter().filter_map(Value::as_str).collect();
        let names = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        text.push_str(&format!("  catalogs: {names}\n"));
    }
    for violation in report["violations"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "  violation [{}]: {}\n",
            violation["rule"].as_str().unwrap_or(""),
            violation["message"].as_str().unwrap_or("")
        ));
    }
    for warning in report["warnings"].as_array().into_iter().flatten() {
        text.push_str(&format!("  warning: {}\n", warning.as_str().unwrap_or("")));
    }
    if let Some(error) = report["error"].as_str() {
        text.push_str(&format!("  error: {error}\n"));
    }
    text
}
