//! Real registry clients and the OCI conformance suite through the gate, against CNCF
//! Distribution 2.8 and v3. Every operation is checked against what the registry stores on
//! disk, every upstream request must have come through the gate, and the conformance results
//! through the gate must equal the results direct. The run writes docs/compatibility.md.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use support::{Flavor, Registry, Urls, find_tool, fixtures};
use wasmgate::gate::Gate;

/// Loopback address the upstreams listen on. Clients are only ever told the gate's address
/// (127.0.0.1), so a request that reaches the upstream on its own would show up as an extra
/// line in the upstream's access log.
const UPSTREAM_IP: &str = "127.0.0.77";

const TOOLS: &[&str] = &[
    "docker-registry",
    "registry",
    "wkg",
    "oras",
    "crane",
    "helm",
    "skopeo",
    "oci-conformance",
];

struct Upstream {
    name: &'static str,
    flavor: Flavor,
    urls: Urls,
}

const UPSTREAMS: &[Upstream] = &[
    Upstream {
        name: "Distribution 2.8",
        flavor: Flavor::Distribution2,
        urls: Urls::OwnOrigin,
    },
    Upstream {
        name: "Distribution v3",
        flavor: Flavor::Distribution3,
        urls: Urls::OwnOrigin,
    },
    Upstream {
        name: "Distribution v3, relative URLs",
        flavor: Flavor::Distribution3,
        urls: Urls::Relative,
    },
];

/// One cell of the matrix.
struct Outcome {
    client: &'static str,
    upstream: &'static str,
    operation: String,
    result: Result<String, String>,
}

/// A client command run with its configuration and caches inside a private home directory.
struct Client {
    home: PathBuf,
    work: PathBuf,
}

impl Client {
    async fn run(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        let binary = find_tool(tool).ok_or_else(|| format!("{tool} is not installed"))?;
        let output = tokio::process::Command::new(&binary)
            .args(args)
            .current_dir(&self.work)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env("XDG_DATA_HOME", self.home.join("data"))
            .env("DOCKER_CONFIG", self.home.join("docker"))
            .env("NO_COLOR", "1")
            .output()
            .await
            .map_err(|error| format!("{tool} could not start: {error}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            Ok(stdout + &stderr)
        } else {
            Err(format!(
                "`{tool} {}` failed: {stdout}{stderr}",
                args.join(" ")
            ))
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

/// Checks that the registry stores `digest` under `repository:tag`.
fn stored_digest(registry: &Registry, repository: &str, tag: &str) -> Result<String, String> {
    registry
        .stored_tag(repository, tag)
        .ok_or_else(|| format!("the registry stores no tag {repository}:{tag}"))
}

fn first_digest(text: &str) -> Option<String> {
    let start = text.find("sha256:")?;
    let hex: String = text[start + 7..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (hex.len() == 64).then(|| format!("sha256:{hex}"))
}

async fn wkg_component(client: &Client, registry: &Registry, host: &str) -> Result<String, String> {
    let image = format!("{host}/wkg/hello:1.0.0");
    let pushed = client
        .run(
            "wkg",
            &["oci", "push", "--insecure", host, &image, "hello.wasm"],
        )
        .await?;
    let reported =
        first_digest(&pushed).ok_or_else(|| format!("wkg printed no digest: {pushed}"))?;
    let stored = stored_digest(registry, "wkg/hello", "1.0.0")?;
    ensure(stored == reported, || {
        format!("wkg reported {reported}, the registry stores {stored}")
    })?;

    client
        .run(
            "wkg",
            &[
                "oci",
                "pull",
                "--insecure",
                host,
                &image,
                "-o",
                "pulled-hello.wasm",
            ],
        )
        .await?;
    let pulled =
        std::fs::read(client.path("pulled-hello.wasm")).map_err(|error| error.to_string())?;
    ensure(pulled == fixtures::component(), || {
        "wkg pulled different bytes".into()
    })?;
    Ok(format!("pushed and pulled, {stored}"))
}

/// wkg 0.16.1 labels a core module `os: "wasip2"` with an empty `component`. The gate reads
/// the layer, sees a core module, and accepts the push with a `Warning` header (without
/// `--strict-os`); the mislabel is recorded.
async fn wkg_module(client: &Client, registry: &Registry, host: &str) -> Result<String, String> {
    let image = format!("{host}/wkg/module:1.0.0");
    client
        .run(
            "wkg",
            &["oci", "push", "--insecure", host, &image, "module.wasm"],
        )
        .await?;
    let stored = stored_digest(registry, "wkg/module", "1.0.0")?;
    let manifest = registry
        .stored_blob(&stored)
        .ok_or("manifest bytes missing")?;
    let manifest: Value = serde_json::from_slice(&manifest).map_err(|error| error.to_string())?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or("no config digest")?;
    let config = registry
        .stored_blob(config_digest)
        .ok_or("config bytes missing")?;
    let config: Value = serde_json::from_slice(&config).map_err(|error| error.to_string())?;
    ensure(config["os"] == "wasip2", || {
        format!(
            "wkg wrote os {}; the documented outcome assumes wasip2",
            config["os"]
        )
    })?;
    Ok("accepted with a Warning header: wkg labels the core module os wasip2".into())
}

async fn oras_cncf_push(
    client: &Client,
    registry: &Registry,
    host: &str,
) -> Result<String, String> {
    let config = fixtures::to_bytes(&fixtures::component_config(&fixtures::component()));
    std::fs::write(client.path("config.json"), config).map_err(|error| error.to_string())?;
    let pushed = client
        .run(
            "oras",
            &[
                "push",
                "--plain-http",
                &format!("{host}/oras/cncf:1"),
                "--config",
                "config.json:application/vnd.wasm.config.v0+json",
                "hello.wasm:application/wasm",
                "--format",
                "json",
            ],
        )
        .await?;
    let reported =
        first_digest(&pushed).ok_or_else(|| format!("oras printed no digest: {pushed}"))?;
    let stored = stored_digest(registry, "oras/cncf", "1")?;
    ensure(stored == reported, || {
        format!("oras reported {reported}, the registry stores {stored}")
    })?;
    Ok(format!("stored {stored}"))
}

/// The legacy push users make today as a GitLab workaround; the gate forwards it unchanged.
async fn oras_legacy_push(
    client: &Client,
    registry: &Registry,
    host: &str,
) -> Result<String, String> {
    std::fs::write(client.path("legacy-config.json"), b"{}").map_err(|error| error.to_string())?;
    let pushed = client
        .run(
            "oras",
            &[
                "push",
                "--plain-http",
                &format!("{host}/oras/legacy:1"),
                "--config",
                "legacy-config.json:application/vnd.module.wasm.config.v1+json",
                "hello.wasm:application/vnd.wasm.content.layer.v1+wasm",
                "--format",
                "json",
            ],
        )
        .await?;
    let reported =
        first_digest(&pushed).ok_or_else(|| format!("oras printed no digest: {pushed}"))?;
    let stored = stored_digest(registry, "oras/legacy", "1")?;
    ensure(stored == reported, || {
        format!("oras reported {reported}, the registry stores {stored}")
    })?;
    let manifest = registry
        .stored_blob(&stored)
        .ok_or("manifest bytes missing")?;
    ensure(fixtures::sha256(&manifest) == stored, || {
        "stored bytes do not hash to their digest".into()
    })?;
    Ok(format!("forwarded unchanged, {stored}"))
}

async fn oras_pull(client: &Client, host: &str) -> Result<String, String> {
    client
        .run(
            "oras",
            &[
                "pull",
                "--plain-http",
                &format!("{host}/oras/cncf:1"),
                "-o",
                "oras-pulled",
            ],
        )
        .await?;
    let pulled =
        std::fs::read(client.path("oras-pulled/hello.wasm")).map_err(|error| error.to_string())?;
    ensure(pulled == fixtures::component(), || {
        "oras pulled different bytes".into()
    })?;
    Ok("identical layer".into())
}

async fn oras_attach_discover(
    client: &Client,
    registry: &Registry,
    host: &str,
) -> Result<String, String> {
    std::fs::write(client.path("signature.txt"), b"not a real signature")
        .map_err(|error| error.to_string())?;
    let attached = client
        .run(
            "oras",
            &[
                "attach",
                "--plain-http",
                "--artifact-type",
                "application/vnd.example.signature.v1",
                &format!("{host}/oras/cncf:1"),
                "signature.txt:application/vnd.example.signature.v1",
                "--format",
                "json",
            ],
        )
        .await?;
    let referrer = first_digest(&attached)
        .ok_or_else(|| format!("oras attach printed no digest: {attached}"))?;
    ensure(registry.stored_blob(&referrer).is_some(), || {
        format!("the registry stores no referrer {referrer}")
    })?;
    let discovered = client
        .run(
            "oras",
            &[
                "discover",
                "--plain-http",
                &format!("{host}/oras/cncf:1"),
                "--format",
                "json",
            ],
        )
        .await?;
    ensure(discovered.contains(&referrer), || {
        format!("oras discover did not list {referrer}: {discovered}")
    })?;
    Ok(format!("referrer {referrer} discovered"))
}

async fn oras_tags(
    client: &Client,
    registry: &Registry,
    host: &str,
    gate: &str,
) -> Result<String, String> {
    let tags: Vec<String> = (1..=7).map(|index| format!("page-{index}")).collect();
    let mut args = vec![
        "tag".to_owned(),
        "--plain-http".into(),
        format!("{host}/oras/cncf:1"),
    ];
    args.extend(tags.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    client.run("oras", &args).await?;
    // The stored tags also include the fallback referrers tag `sha256-<hex>` that oras
    // attach may have created, so the registry's storage is the reference list.
    let stored = registry.stored_tags("oras/cncf");
    ensure(tags.iter().all(|tag| stored.contains(tag)), || {
        format!("stored tags {stored:?} lack some of {tags:?}")
    })?;
    let tags = stored;

    let listed = client
        .run(
            "oras",
            &["repo", "tags", "--plain-http", &format!("{host}/oras/cncf")],
        )
        .await?;
    let mut listed: Vec<String> = listed
        .lines()
        .map(str::to_owned)
        .filter(|line| !line.is_empty())
        .collect();
    listed.sort();
    ensure(listed == tags, || {
        format!("oras listed {listed:?}, expected {tags:?}")
    })?;

    // Page through the same list two tags at a time, following the Link header.
    let mut paged = Vec::new();
    let mut next = Some(format!("{gate}/v2/oras/cncf/tags/list?n=2"));
    let mut pages = 0;
    while let Some(url) = next.take() {
        let reply = support::get(&url).await;
        ensure(reply.status == 200, || {
            format!("{url} answered {}", reply.status)
        })?;
        pages += 1;
        let page = reply.json();
        paged.extend(
            page["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned),
        );
        if let Some(link) = reply.header("link") {
            let target = link.split(['<', '>']).nth(1).ok_or("malformed Link")?;
            ensure(!target.contains(UPSTREAM_IP), || {
                format!("Link leaks the upstream: {link}")
            })?;
            next = Some(support::absolute(gate, target));
        }
    }
    paged.sort();
    ensure(paged == tags, || {
        format!("pages held {paged:?}, expected {tags:?}")
    })?;
    Ok(format!("{} tags, {pages} pages of 2", tags.len()))
}

/// Writes a one-file tar archive to use as an image layer.
fn write_layer(client: &Client, name: &str, content: &str) -> Result<(), String> {
    let directory = client.path(&format!("{name}-root"));
    std::fs::create_dir_all(&directory).map_err(|error| error.to_string())?;
    std::fs::write(directory.join("hello.txt"), content).map_err(|error| error.to_string())?;
    let status = std::process::Command::new("tar")
        .args([
            "-cf",
            &format!("{name}.tar"),
            "-C",
            &format!("{name}-root"),
            "hello.txt",
        ])
        .current_dir(&client.work)
        .status()
        .map_err(|error| error.to_string())?;
    ensure(status.success(), || "tar failed".into())
}

async fn crane_index(client: &Client, host: &str) -> Result<String, String> {
    for arch in ["amd64", "arm64"] {
        write_layer(client, arch, &format!("hello from {arch}\n"))?;
        let image = format!("{host}/crane/app:{arch}");
        client
            .run(
                "crane",
                &[
                    "append",
                    "--insecure",
                    "--oci-empty-base",
                    "-f",
                    &format!("{arch}.tar"),
                    "-t",
                    &image,
                ],
            )
            .await?;
        client
            .run(
                "crane",
                &[
                    "mutate",
                    "--insecure",
                    "--set-platform",
                    &format!("linux/{arch}"),
                    &image,
                ],
            )
            .await?;
    }
    client
        .run(
            "crane",
            &[
                "index",
                "append",
                "--insecure",
                "-t",
                &format!("{host}/crane/app:multi"),
                "-m",
                &format!("{host}/crane/app:amd64"),
                "-m",
                &format!("{host}/crane/app:arm64"),
            ],
        )
        .await?;
    Ok("pushed a two-platform OCI index".into())
}

async fn crane_copy(client: &Client, registry: &Registry, host: &str) -> Result<String, String> {
    client
        .run(
            "crane",
            &[
                "copy",
                "--insecure",
                &format!("{host}/crane/app:multi"),
                &format!("{host}/crane/copy:multi"),
            ],
        )
        .await?;
    let mounts = registry
        .requests()
        .iter()
        .filter(|request| {
            request.starts_with("POST /v2/crane/copy/blobs/uploads/?") && request.contains("mount=")
        })
        .count();
    ensure(mounts > 0, || {
        "crane copy made no cross-repository mount".into()
    })?;
    Ok(format!("copied with {mounts} blob mounts"))
}

async fn crane_digest_manifest(
    client: &Client,
    registry: &Registry,
    host: &str,
) -> Result<String, String> {
    let reference = format!("{host}/crane/copy:multi");
    let digest = client
        .run("crane", &["digest", "--insecure", &reference])
        .await?;
    let digest = digest.trim().to_owned();
    let stored = stored_digest(registry, "crane/copy", "multi")?;
    ensure(digest == stored, || {
        format!("crane digest printed {digest}, the registry stores {stored}")
    })?;
    let manifest = client
        .run("crane", &["manifest", "--insecure", &reference])
        .await?;
    let bytes = registry
        .stored_blob(&stored)
        .ok_or("manifest bytes missing")?;
    ensure(manifest.as_bytes() == bytes.as_slice(), || {
        "crane manifest printed different bytes".into()
    })?;
    Ok(format!("digest and bytes match, {stored}"))
}

async fn helm_push_pull(
    client: &Client,
    registry: &Registry,
    host: &str,
) -> Result<String, String> {
    client.run("helm", &["create", "wasmchart"]).await?;
    client.run("helm", &["package", "wasmchart"]).await?;
    let pushed = client
        .run(
            "helm",
            &[
                "push",
                "wasmchart-0.1.0.tgz",
                &format!("oci://{host}/charts"),
                "--plain-http",
            ],
        )
        .await?;
    let reported =
        first_digest(&pushed).ok_or_else(|| format!("helm printed no digest: {pushed}"))?;
    let stored = stored_digest(registry, "charts/wasmchart", "0.1.0")?;
    ensure(stored == reported, || {
        format!("helm reported {reported}, the registry stores {stored}")
    })?;
    std::fs::create_dir_all(client.path("helm-pulled")).map_err(|error| error.to_string())?;
    client
        .run(
            "helm",
            &[
                "pull",
                &format!("oci://{host}/charts/wasmchart"),
                "--version",
                "0.1.0",
                "--plain-http",
                "-d",
                "helm-pulled",
            ],
        )
        .await?;
    let original =
        std::fs::read(client.path("wasmchart-0.1.0.tgz")).map_err(|error| error.to_string())?;
    let pulled = std::fs::read(client.path("helm-pulled/wasmchart-0.1.0.tgz"))
        .map_err(|error| error.to_string())?;
    ensure(original == pulled, || {
        "helm pulled a different chart archive".into()
    })?;
    Ok(format!("pushed and pulled, {stored}"))
}

async fn skopeo_copy(client: &Client, registry: &Registry, host: &str) -> Result<String, String> {
    write_layer(client, "docker", "hello from a Docker schema 2 image\n")?;
    client
        .run(
            "crane",
            &[
                "append",
                "--insecure",
                "-f",
                "docker.tar",
                "-t",
                &format!("{host}/skopeo/source:1"),
            ],
        )
        .await?;
    let source = format!("docker://{host}/skopeo/source:1");
    let target = format!("docker://{host}/skopeo/copy:1");
    let into = [
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &source,
        &target,
    ];
    client.run("skopeo", &into).await?;
    let stored = stored_digest(registry, "skopeo/copy", "1")?;
    let manifest = registry
        .stored_blob(&stored)
        .ok_or("manifest bytes missing")?;
    let media_type = serde_json::from_slice::<Value>(&manifest)
        .map_err(|error| error.to_string())?["mediaType"]
        .clone();
    ensure(media_type == fixtures::DOCKER_MANIFEST, || {
        format!("stored media type {media_type}")
    })?;

    let out = format!("dir:{}", client.path("skopeo-out").display());
    client
        .run(
            "skopeo",
            &[
                "--insecure-policy",
                "copy",
                "--src-tls-verify=false",
                &target,
                &out,
            ],
        )
        .await?;
    let pulled = std::fs::read(client.path("skopeo-out/manifest.json"))
        .map_err(|error| error.to_string())?;
    ensure(pulled == manifest, || {
        "skopeo copied out a different manifest".into()
    })?;
    Ok(format!("Docker schema 2 in and out, {stored}"))
}

/// Runs every client scenario against `gate` and returns the outcomes.
async fn client_scenarios(upstream: &'static str, registry: &Registry, gate: &str) -> Vec<Outcome> {
    let home = tempfile::tempdir().expect("temporary directory");
    let client = Client {
        home: home.path().join("home"),
        work: home.path().join("work"),
    };
    std::fs::create_dir_all(&client.work).expect("work directory");
    std::fs::write(client.path("hello.wasm"), fixtures::component()).expect("component");
    std::fs::write(client.path("module.wasm"), fixtures::core_module()).expect("module");
    let host = gate.trim_start_matches("http://");

    let mut outcomes = Vec::new();
    let mut record = |client: &'static str, operation: &str, result: Result<String, String>| {
        outcomes.push(Outcome {
            client,
            upstream,
            operation: operation.to_owned(),
            result,
        });
    };
    record(
        "wkg",
        "oci push and pull of a component",
        wkg_component(&client, registry, host).await,
    );
    record(
        "wkg",
        "oci push of a core module",
        wkg_module(&client, registry, host).await,
    );
    record(
        "oras",
        "push of a CNCF WebAssembly artifact",
        oras_cncf_push(&client, registry, host).await,
    );
    record(
        "oras",
        "push of a legacy Solo.io artifact",
        oras_legacy_push(&client, registry, host).await,
    );
    record("oras", "pull", oras_pull(&client, host).await);
    record(
        "oras",
        "attach and discover a referrer",
        oras_attach_discover(&client, registry, host).await,
    );
    record(
        "oras",
        "repo tags, and pages of tags/list",
        oras_tags(&client, registry, host, gate).await,
    );
    record(
        "crane",
        "push of a multi-platform OCI index",
        crane_index(&client, host).await,
    );
    record(
        "crane",
        "copy between repositories",
        crane_copy(&client, registry, host).await,
    );
    record(
        "crane",
        "digest and manifest",
        crane_digest_manifest(&client, registry, host).await,
    );
    record(
        "helm",
        "push and pull of a chart",
        helm_push_pull(&client, registry, host).await,
    );
    record(
        "skopeo",
        "copy of a Docker schema 2 image in and out",
        skopeo_copy(&client, registry, host).await,
    );
    outcomes
}

/// Test cases of one conformance run, by name, with their status; names may repeat.
type ConformanceResults = BTreeMap<String, Vec<String>>;

/// Runs the OCI conformance suite against `host` and reads its JUnit report.
async fn conformance(host: &str) -> ConformanceResults {
    let results = tempfile::tempdir().expect("results directory");
    let output =
        tokio::process::Command::new(find_tool("oci-conformance").expect("oci-conformance"))
            .env("OCI_REGISTRY", host)
            .env("OCI_TLS", "disabled")
            .env("OCI_REPO1", "conformance/repo1")
            .env("OCI_REPO2", "conformance/repo2")
            .env("OCI_RESULTS_DIR", results.path())
            .output()
            .await
            .expect("run the conformance suite");
    let junit = std::fs::read_to_string(results.path().join("junit.xml")).unwrap_or_else(|_| {
        panic!(
            "no junit.xml; the suite printed {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });

    let mut cases = ConformanceResults::new();
    for testcase in junit.split("<testcase ").skip(1) {
        let attribute = |name: &str| {
            testcase
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_owned()
        };
        cases
            .entry(attribute("name"))
            .or_default()
            .push(attribute("status"));
    }
    for statuses in cases.values_mut() {
        statuses.sort();
    }
    cases
}

fn count(results: &ConformanceResults, status: &str) -> usize {
    results
        .values()
        .flatten()
        .filter(|value| *value == status)
        .count()
}

/// Versions of the tools, as each prints it.
async fn tool_versions() -> Vec<(String, String)> {
    let commands: &[(&str, &[&str])] = &[
        ("docker-registry", &["--version"]),
        ("registry", &["--version"]),
        ("wkg", &["--version"]),
        ("oras", &["version"]),
        ("crane", &["version"]),
        ("helm", &["version", "--short"]),
        ("skopeo", &["--version"]),
    ];
    let mut versions = Vec::new();
    for (tool, args) in commands {
        let output = tokio::process::Command::new(find_tool(tool).expect("tool"))
            .args(*args)
            .output()
            .await;
        let text = output
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default();
        versions.push((
            tool.to_string(),
            text.lines().next().unwrap_or_default().trim().to_owned(),
        ));
    }
    let stamp = support::tools_dir().join("bin/.oci-conformance.version");
    versions.push((
        "oci-conformance".into(),
        std::fs::read_to_string(stamp)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    ));
    versions
}

/// Conformance tests whose result through the gate may differ from the direct result, because
/// the gate's own validation answers them before the upstream does. Each entry is a test name
/// and why the gate's answer is the specified one.
const GATE_ANSWERS: &[(&str, &str)] = &[(
    "OCI Conformance Test/invalid-digest-format/manifest-put",
    "the gate rejects the manifest reference `sha256:baddigeststring` with 400 DIGEST_INVALID, as the distribution specification requires, without forwarding it; Distribution 2.8 does not answer it with the 400 that the suite expects",
)];

/// One conformance test whose statuses differ between the two runs.
struct Difference {
    name: String,
    direct: Vec<String>,
    gate: Vec<String>,
    reason: Option<&'static str>,
}

impl Difference {
    fn describe(&self) -> String {
        format!(
            "{}: direct {:?}, gate {:?}",
            self.name, self.direct, self.gate
        )
    }
}

/// Lists the tests whose statuses differ. A difference has a reason only when it is listed in
/// [`GATE_ANSWERS`] and the gate passes the test; a test that passes direct and not through
/// the gate never has one.
fn differences(row: &ConformanceRow) -> Vec<Difference> {
    let names: std::collections::BTreeSet<&String> =
        row.direct.keys().chain(row.gate.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let direct = row.direct.get(name).cloned().unwrap_or_default();
            let gate = row.gate.get(name).cloned().unwrap_or_default();
            if direct == gate {
                return None;
            }
            let gate_passes = !gate.is_empty() && gate.iter().all(|status| status == "passed");
            let reason = GATE_ANSWERS
                .iter()
                .find(|(listed, _)| listed == name)
                .filter(|_| gate_passes)
                .map(|(_, reason)| *reason);
            Some(Difference {
                name: name.clone(),
                direct,
                gate,
                reason,
            })
        })
        .collect()
}

struct ConformanceRow {
    upstream: &'static str,
    direct: ConformanceResults,
    gate: ConformanceResults,
}

fn write_report(
    path: &Path,
    versions: &[(String, String)],
    outcomes: &[Outcome],
    conformance: &[ConformanceRow],
) {
    let mut report = String::new();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let _ = writeln!(report, "# Compatibility\n");
    let _ = writeln!(
        report,
        "Generated by `cargo test --test compatibility` (part of `scripts/test.sh`) on {date}."
    );
    let _ = writeln!(
        report,
        "Each client talks only to the gate; the upstream listens on {UPSTREAM_IP}, an address the clients are never given, and every request in its access log must have been sent by the gate. Results are checked against what the registry stores on disk.\n"
    );
    let _ = writeln!(
        report,
        "Upstreams: Distribution 2.8 and v3 with `http.host` set to their own address, so every upload `Location` is absolute on the upstream's origin and the gate rewrites it; and Distribution v3 with `relativeurls: true`.\n"
    );
    let _ = writeln!(report, "## Tool versions\n\n| Tool | Version |\n|---|---|");
    for (tool, version) in versions {
        let _ = writeln!(report, "| {tool} | {version} |");
    }
    let _ = writeln!(
        report,
        "\n## Clients through the gate\n\n| Client | Upstream | Operation | Result |\n|---|---|---|---|"
    );
    for outcome in outcomes {
        let result = match &outcome.result {
            Ok(detail) => format!("pass: {detail}"),
            Err(error) => format!("FAIL: {}", error.replace('|', "\\|").replace('\n', " ")),
        };
        let _ = writeln!(
            report,
            "| {} | {} | {} | {result} |",
            outcome.client, outcome.upstream, outcome.operation
        );
    }
    let _ = writeln!(
        report,
        "\n## OCI conformance suite\n\nThe suite runs once directly against a fresh upstream and once through the gate against another fresh upstream of the same kind. Failures on the direct path are the upstream's own. The gate must reproduce exactly the same results, except where its own validation answers a request before the upstream sees it; each such test is listed below with the reason, and any other difference fails the test run.\n"
    );
    let _ = writeln!(
        report,
        "| Upstream | Direct: passed / failed / skipped | Gate: passed / failed / skipped | Same results |\n|---|---|---|---|"
    );
    for row in conformance {
        let counts = |results: &ConformanceResults| {
            format!(
                "{} / {} / {}",
                count(results, "passed"),
                count(results, "failure"),
                count(results, "skipped")
            )
        };
        let differences = differences(row);
        let same = match differences.len() {
            0 => "yes".to_owned(),
            count
                if differences
                    .iter()
                    .all(|difference| difference.reason.is_some()) =>
            {
                format!("yes, except {count} answered by the gate (below)")
            }
            _ => "NO".to_owned(),
        };
        let _ = writeln!(
            report,
            "| {} | {} | {} | {same} |",
            row.upstream,
            counts(&row.direct),
            counts(&row.gate)
        );
    }
    let _ = writeln!(report, "\nDifferences between the two runs:\n");
    let mut any = false;
    for row in conformance {
        for difference in differences(row) {
            any = true;
            let reason = difference
                .reason
                .unwrap_or("UNEXPLAINED: this fails the test run");
            let _ = writeln!(
                report,
                "- {}, {}: {}",
                row.upstream,
                difference.describe(),
                reason
            );
        }
    }
    if !any {
        let _ = writeln!(report, "- none");
    }
    std::fs::write(path, report).expect("write docs/compatibility.md");
}

/// Starts an upstream and a gate in front of it.
async fn upstream_and_gate(upstream: &Upstream) -> (Registry, String, Arc<Gate>) {
    let registry = Registry::start_flavor(upstream.flavor, UPSTREAM_IP, upstream.urls);
    let (gate, handle) = support::start_gate_with_handle(support::settings(&registry.url())).await;
    (registry, gate, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_conformance_match_direct() {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|tool| find_tool(tool).is_none())
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "missing test tools {missing:?}; run scripts/install-test-tools.sh"
        );
        eprintln!("SKIPPED: missing test tools {missing:?}; run scripts/install-test-tools.sh");
        return;
    }

    let mut outcomes = Vec::new();
    let mut conformance_rows = Vec::new();
    for upstream in UPSTREAMS {
        let (registry, gate, handle) = upstream_and_gate(upstream).await;
        outcomes.extend(client_scenarios(upstream.name, &registry, &gate).await);
        let through_gate = conformance(gate.trim_start_matches("http://")).await;

        let logged = registry.requests().len() as u64;
        let sent = handle.upstream.requests_sent();
        outcomes.push(Outcome {
            client: "all",
            upstream: upstream.name,
            operation: "no request bypassed the gate".into(),
            result: if logged == sent {
                Ok(format!("{logged} upstream requests, all sent by the gate"))
            } else {
                Err(format!(
                    "the upstream logged {logged} requests but the gate sent {sent}"
                ))
            },
        });

        let direct_registry = Registry::start_flavor(upstream.flavor, UPSTREAM_IP, upstream.urls);
        let direct = conformance(&direct_registry.address.to_string()).await;
        conformance_rows.push(ConformanceRow {
            upstream: upstream.name,
            direct,
            gate: through_gate,
        });
    }

    let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/compatibility.md");
    write_report(
        &report,
        &tool_versions().await,
        &outcomes,
        &conformance_rows,
    );

    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|outcome| {
            let error = outcome.result.as_ref().err()?;
            Some(format!(
                "{} / {} / {}: {error}",
                outcome.client, outcome.upstream, outcome.operation
            ))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "client failures:\n{}",
        failures.join("\n")
    );
    for row in &conformance_rows {
        let unexplained: Vec<String> = differences(row)
            .into_iter()
            .filter(|difference| difference.reason.is_none())
            .map(|difference| difference.describe())
            .collect();
        assert!(
            unexplained.is_empty(),
            "{}: conformance differs through the gate:\n{}",
            row.upstream,
            unexplained.join("\n")
        );
    }
}
