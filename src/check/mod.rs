//! `wasmgate check`: the policy engine offline, for CI pipelines. It judges a manifest with
//! its blobs from files, an OCI image layout on disk, or a `.wasm` file wrapped the way
//! `wkg oci push` wraps it. It exits 0 when the gate would accept the push, 1 when it would
//! reject it, and 2 on a usage or input error.

mod layout;
mod load;
mod report;

use std::path::PathBuf;

use bytes::Bytes;
use clap::Args;
use http::HeaderValue;
use serde_json::Value;

use crate::error::{GateError, Rejection, Rule};
use crate::manifest::{self, Descriptor, Digest};
use crate::policy::{self, Decision, Evaluation, Policy};
use crate::route::Reference;
use crate::wasm::{self, BlobRole, BlobSource, InspectionCache, MemoryBlobs, WasmOptions};
use layout::{LayoutBlobs, layout_children, load_layout};
use load::{load_files, wrap_wasm};
use report::{report, text_report};

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
    /// Origin of the artifact (a path, or a layout and digest), for the report.
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
