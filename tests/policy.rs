//! Policies through the gate against a real registry: enforce, audit and off, glob
//! precedence, capability rules over component imports, referrers under a WebAssembly-only
//! rule with `oras attach`, and reloading the policy of a running `wasmgate serve`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use support::fixtures::{self, *};
use support::{Registry, Reply, find_tool, push_blob, put_manifest};
use wasmgate::policy::Policy;

const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/policies")
        .join(name)
}

fn policy_from(text: &str) -> Policy {
    Policy::parse(text, "test policy").unwrap_or_else(|error| panic!("{error}"))
}

async fn gate_with_policy(registry: &Registry, policy: Policy) -> String {
    let mut settings = support::settings(&registry.url());
    settings.policy = Some((PathBuf::from("test policy"), policy));
    support::start_gate(settings).await
}

/// Pushes a Helm chart (config and one layer) under `tag`.
async fn push_helm(gate: &str, repository: &str, tag: &str) -> Reply {
    push_helm_with(gate, repository, tag, &[]).await
}

/// Pushes a Helm chart under `tag`, sending `headers` with the manifest.
async fn push_helm_with(
    gate: &str,
    repository: &str,
    tag: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let config = br#"{"name":"demo","version":"0.1.0","apiVersion":"v2"}"#;
    let chart = b"not really a gzipped chart";
    push_blob(gate, repository, config).await;
    push_blob(gate, repository, chart).await;
    let manifest = fixtures::to_bytes(&fixtures::manifest(
        descriptor(HELM_CONFIG, config),
        vec![descriptor(HELM_CHART, chart)],
    ));
    let mut all = vec![("content-type", OCI_MANIFEST)];
    all.extend_from_slice(headers);
    support::send(
        http::Method::PUT,
        &format!("{gate}/v2/{repository}/manifests/{tag}"),
        &all,
        wasmgate::body::full(manifest),
    )
    .await
}

/// Pushes `layer` in the CNCF layout with a config that states its imports and exports.
async fn push_component(
    gate: &str,
    repository: &str,
    tag: &str,
    layer: &[u8],
    imports: &[&str],
    export: &str,
) -> Reply {
    let config = json!({
        "created": "2026-12-04T12:00:00Z",
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [sha256(layer)],
        "component": { "imports": imports, "exports": [export], "target": null }
    });
    let config = fixtures::to_bytes(&config);
    push_blob(gate, repository, &config).await;
    push_blob(gate, repository, layer).await;
    let manifest = fixtures::manifest(
        descriptor(WASM_CONFIG, &config),
        vec![descriptor(WASM_LAYER, layer)],
    );
    put_manifest(
        gate,
        repository,
        tag,
        OCI_MANIFEST,
        fixtures::to_bytes(&manifest),
    )
    .await
}

fn warnings(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all("warning")
        .iter()
        .map(|value| value.to_str().expect("ASCII").to_owned())
        .collect()
}

/// Asserts a policy rejection and that nothing reached the registry's manifest endpoint.
fn assert_denied(reply: &Reply, registry: &Registry, repository: &str, rule: &str) -> Value {
    let body = reply.json();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["code"], "MANIFEST_INVALID", "{body}");
    assert_eq!(body["errors"][0]["detail"]["rule"], rule, "{body}");
    assert!(
        registry.manifest_puts(repository).is_empty(),
        "the registry received a manifest for {repository}"
    );
    body["errors"][0].clone()
}

const MODES: &str = r#"
version = 1

[[rules]]
name = "enforced"
repositories = ["enforced/*"]
mode = "enforce"
admit = ["wasm"]

[[rules]]
name = "audited"
repositories = ["audited/*"]
mode = "audit"
admit = ["wasm"]

[[rules]]
name = "unchecked"
repositories = ["unchecked/*"]
mode = "off"
admit = ["wasm"]
"#;

#[tokio::test]
async fn enforce_rejects_audit_warns_and_off_forwards() {
    let registry = Registry::start();
    let gate = gate_with_policy(&registry, policy_from(MODES)).await;

    let enforced = push_helm(&gate, "enforced/chart", "1").await;
    let error = assert_denied(
        &enforced,
        &registry,
        "enforced/chart",
        "artifact-not-admitted",
    );
    assert_eq!(error["detail"]["policy"], "enforced", "{error}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("helm") && message.contains("wasm"),
        "{message}"
    );

    let audited = push_helm(&gate, "audited/chart", "1").await;
    assert_eq!(audited.status, StatusCode::CREATED, "{:?}", audited.body);
    let warnings = warnings(&audited);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "299 - \"policy rule 'audited' (audit mode) would reject this push [artifact-not-admitted]: "
        ),
        "{warnings:?}"
    );
    assert_eq!(registry.manifest_puts("audited/chart").len(), 1);
    assert!(registry.stored_tag("audited/chart", "1").is_some());

    let unchecked = push_helm(&gate, "unchecked/chart", "1").await;
    assert_eq!(
        unchecked.status,
        StatusCode::CREATED,
        "{:?}",
        unchecked.body
    );
    assert!(unchecked.headers.get("warning").is_none());

    // Off skips the WebAssembly checks too: a config that lies about the layer gets through.
    let component = fixtures::component();
    let mut lying = fixtures::component_config(&component);
    lying["component"]["imports"] = json!(["wasi:sockets/tcp@0.2.0"]);
    let config = fixtures::to_bytes(&lying);
    push_blob(&gate, "unchecked/lying", &config).await;
    push_blob(&gate, "unchecked/lying", &component).await;
    let manifest = fixtures::manifest(
        descriptor(WASM_CONFIG, &config),
        vec![descriptor(WASM_LAYER, &component)],
    );
    let reply = put_manifest(
        &gate,
        "unchecked/lying",
        "1",
        OCI_MANIFEST,
        fixtures::to_bytes(&manifest),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

#[tokio::test]
async fn rules_first_match_wins() {
    let registry = Registry::start();
    let policy = policy_from(
        r#"
version = 1

[[rules]]
name = "special"
repositories = ["team/special"]
admit = ["*"]

[[rules]]
name = "team"
repositories = ["team/*"]
admit = ["wasm"]

[[rules]]
name = "everything-else-in-team"
repositories = ["team/**"]
admit = ["helm"]

[default]
admit = ["oci-image"]
"#,
    );
    let gate = gate_with_policy(&registry, policy).await;

    // An exact name listed before the glob that also matches it.
    let reply = push_helm(&gate, "team/special", "1").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    // `team/*` matches one level below team/ and comes before `team/**`.
    let reply = push_helm(&gate, "team/app", "1").await;
    let error = assert_denied(&reply, &registry, "team/app", "artifact-not-admitted");
    assert_eq!(error["detail"]["policy"], "team");

    // Two levels below: `team/*` does not match, `team/**` does.
    let reply = push_helm(&gate, "team/app/charts", "1").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    // No rule matches: the default judges.
    let reply = push_helm(&gate, "other/app", "1").await;
    let error = assert_denied(&reply, &registry, "other/app", "artifact-not-admitted");
    assert_eq!(error["detail"]["policy"], "default");
}

const SOCKETS: &str = "wasi:sockets/tcp@0.2.0";
const HANDLER: &str = "wasi:http/incoming-handler@0.2.0";

#[tokio::test]
async fn production_denies_a_component_that_imports_sockets() {
    let registry = Registry::start();
    let policy = Policy::load(&example("production-capabilities.toml")).expect("example loads");
    let gate = gate_with_policy(&registry, policy).await;
    let with_sockets = component_with(&[SOCKETS], HANDLER);

    let reply = push_component(&gate, "prod/api", "1", &with_sockets, &[SOCKETS], HANDLER).await;
    let error = assert_denied(&reply, &registry, "prod/api", "import-denied");
    assert_eq!(error["detail"]["policy"], "production", "{error}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains(SOCKETS) && message.contains("wasi:sockets/*"),
        "{message}"
    );

    // The same component in staging, where the rule runs in audit mode.
    let reply = push_component(
        &gate,
        "staging/api",
        "1",
        &with_sockets,
        &[SOCKETS],
        HANDLER,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let warnings = warnings(&reply);
    assert!(
        warnings
            .iter()
            .any(|warning| warning.contains("[import-denied]") && warning.contains(SOCKETS)),
        "{warnings:?}"
    );

    // Without the sockets import the component lands in prod/.
    let clean = component_with(&["wasi:cli/environment@0.2.0"], HANDLER);
    let reply = push_component(
        &gate,
        "prod/api",
        "2",
        &clean,
        &["wasi:cli/environment@0.2.0"],
        HANDLER,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    // A component without the required export is rejected, with the export it lacks.
    let cli = component_with(&[], "wasi:cli/run@0.2.0");
    let reply = push_component(&gate, "prod/cli", "1", &cli, &[], "wasi:cli/run@0.2.0").await;
    let error = assert_denied(&reply, &registry, "prod/cli", "export-required");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("wasi:http/incoming-handler@0.2.*"),
        "{error}"
    );
}

/// Finds a client tool. Without it the test fails when `CI` is set and is skipped, loudly,
/// otherwise.
fn client_tool(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed; run scripts/install-test-tools.sh"
        );
        eprintln!("SKIPPED: {name} is not installed; run scripts/install-test-tools.sh");
    }
    found
}

fn oras(oras: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(oras)
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .output()
        .expect("run oras");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_attach_works_under_a_webassembly_only_rule() {
    let Some(oras_path) = client_tool("oras") else {
        return;
    };
    let registry = Registry::start();
    let policy = Policy::load(&example("wasm-only.toml")).expect("example loads");
    let gate = gate_with_policy(&registry, policy).await;
    let host = gate.trim_start_matches("http://").to_owned();

    let component = fixtures::component();
    let reply = push_component(
        &gate,
        "apps/hello",
        "1",
        &component,
        &["wasi:cli/environment@0.2.0"],
        "wasi:cli/run@0.2.0",
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    let home = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        home.path().join("sbom.spdx.json"),
        br#"{"spdxVersion":"SPDX-2.3"}"#,
    )
    .expect("write SBOM");
    std::fs::write(home.path().join("report.txt"), b"a report").expect("write report");
    let subject = format!("{host}/apps/hello:1");

    let result = tokio::task::spawn_blocking({
        let oras_path = oras_path.clone();
        let home = home.path().to_owned();
        let subject = subject.clone();
        move || {
            let sbom = oras(
                &oras_path,
                &home,
                &[
                    "attach",
                    "--plain-http",
                    "--artifact-type",
                    "application/spdx+json",
                    &subject,
                    "sbom.spdx.json:application/spdx+json",
                ],
            );
            let report = oras(
                &oras_path,
                &home,
                &[
                    "attach",
                    "--plain-http",
                    "--artifact-type",
                    "application/vnd.acme.report.v1",
                    &subject,
                    "report.txt:text/plain",
                ],
            );
            let discovered = oras(
                &oras_path,
                &home,
                &["discover", "--plain-http", &subject, "--format", "json"],
            );
            (sbom, report, discovered)
        }
    })
    .await
    .expect("oras runs");
    let ((sbom_ok, sbom_out), (report_ok, report_out), (discover_ok, discovered)) = result;

    // The SBOM is a referrer admitted by the sbom catalog, though the rule admits only wasm.
    assert!(sbom_ok, "oras attach of an SBOM failed: {sbom_out}");
    assert!(discover_ok, "oras discover failed: {discovered}");
    assert!(discovered.contains("application/spdx+json"), "{discovered}");

    // A referrer of a kind outside the referrer catalogs is rejected, and oras prints why.
    assert!(
        !report_ok,
        "oras attach of an unknown kind succeeded: {report_out}"
    );
    assert!(
        report_out.contains("manifest invalid") && report_out.contains("as referrers here"),
        "{report_out}"
    );
    assert!(
        !discovered.contains("application/vnd.acme.report.v1"),
        "{discovered}"
    );
}

/// How long a test waits for a log line before it fails.
const LOG_TIMEOUT: Duration = Duration::from_secs(60);

/// A `wasmgate serve` process whose JSON log lines are read one by one.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    url: String,
}

impl Served {
    fn start(upstream: &str, policy: &Path) -> Self {
        Self::start_with(upstream, Some(policy))
    }

    fn start_with(upstream: &str, policy: Option<&Path>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmgate"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--upstream", upstream]);
        if let Some(policy) = policy {
            command.arg("--policy").arg(policy);
        }
        let mut child = command
            .args(["--log-format", "json"])
            .env("WASMGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmgate");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Self {
            child,
            lines,
            url: String::new(),
        };
        let started = served.wait_for("wasmgate started", |_| true);
        served.url = format!(
            "http://{}",
            started["fields"]["listen"]
                .as_str()
                .expect("listen address")
        );
        served
    }

    /// Reads log lines until one whose message is `message` and that `matches`, and returns
    /// it. Fails when the process exits or stays silent for [`LOG_TIMEOUT`].
    fn wait_for(&mut self, message: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let mut seen = Vec::new();
        loop {
            let line = match self.lines.recv_timeout(LOG_TIMEOUT) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "wasmgate logged nothing for {LOG_TIMEOUT:?} while the test waited for {message:?}"
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "wasmgate exited before logging {message:?}; it logged:\n{}",
                        seen.join("\n")
                    )
                }
            };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                seen.push(line);
                continue;
            };
            seen.push(line);
            if event["fields"]["message"] == message && matches(&event) {
                return event;
            }
        }
    }

    fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A policy whose default admits `kinds`, with `rules` filler rules so that each version
/// of the file can be recognised by the rule count in the reload log.
fn numbered_policy(kinds: &str, rules: usize) -> String {
    let mut text = format!("version = 1\n[default]\nadmit = [{kinds}]\n");
    for index in 0..rules {
        text.push_str(&format!(
            "[[rules]]\nname = \"filler-{index}\"\nrepositories = [\"filler-{index}/*\"]\n"
        ));
    }
    text
}

/// Replaces `path` with `text` in one rename, as Kubernetes updates a mounted ConfigMap, so
/// the file watcher never reads a half-written file.
fn replace_file(path: &Path, text: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).expect("write policy");
    std::fs::rename(&temporary, path).expect("replace policy");
}

fn rules_are(count: u64) -> impl Fn(&Value) -> bool {
    move |event| event["fields"]["rules"] == count
}

// The file watcher may reload the file too, before or after the signal. Each wait names the
// version it expects by its rule count, so neither order can mislead the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_keeps_policy_on_invalid_file() {
    let registry = Registry::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("policy.toml");
    replace_file(&path, &numbered_policy("\"wasm\"", 0));

    let mut served = Served::start(&registry.url(), &path);
    let reply = push_helm(&served.url, "charts/demo", "1").await;
    assert_denied(&reply, &registry, "charts/demo", "artifact-not-admitted");

    // A valid new file, put in force by SIGHUP.
    replace_file(&path, &numbered_policy("\"wasm\", \"helm\"", 1));
    served.hang_up();
    served.wait_for("policy reloaded", rules_are(1));
    let reply = push_helm(&served.url, "charts/demo", "2").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);

    // Tighten the policy again, then break the file: the tight policy must stay in force,
    // not fall back to the built-in default that admits everything.
    replace_file(&path, &numbered_policy("\"wasm\"", 2));
    served.hang_up();
    served.wait_for("policy reloaded", rules_are(2));
    replace_file(&path, "version = 1\n[default]\nadmitt = [\"*\"]\n");
    served.hang_up();
    let failed = served.wait_for(
        "policy not reloaded; keeping the policy in force",
        |event| {
            event["fields"]["error"]
                .as_str()
                .is_some_and(|error| error.contains("admitt"))
        },
    );
    let error = failed["fields"]["error"].as_str().expect("error field");
    assert!(error.contains("line 3"), "the error names no line: {error}");
    let reply = push_helm(&served.url, "charts/demo", "3").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(reply.error()["detail"]["rule"], "artifact-not-admitted");
    assert_eq!(registry.stored_tags("charts/demo"), ["2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_policy_file_is_harmless() {
    let registry = Registry::start();
    let mut served = Served::start_with(&registry.url(), None);

    served.hang_up();
    served.wait_for(
        "SIGHUP received; the built-in policy is in force, so there is no policy file to reload",
        |_| true,
    );

    let reply = push_helm(&served.url, "charts/hangup", "1").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_file_change_reloads() {
    let registry = Registry::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("policy.toml");
    replace_file(&path, &numbered_policy("\"wasm\"", 0));
    let mut served = Served::start(&registry.url(), &path);

    // A different size, so the change shows even within the file system's time resolution.
    replace_file(&path, &numbered_policy("\"wasm\", \"helm\"", 1));
    let reloaded = served.wait_for("policy reloaded", rules_are(1));
    assert_eq!(reloaded["fields"]["trigger"], "file changed");
    let reply = push_helm(&served.url, "charts/watched", "1").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_name_user_but_not_credentials() {
    use base64::Engine as _;
    let registry = Registry::start();
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("policy.toml");
    replace_file(
        &path,
        "version = 1\n[[rules]]\nname = \"trial\"\nrepositories = [\"trial/*\"]\nmode = \"audit\"\nadmit = [\"wasm\"]\n[default]\nadmit = [\"wasm\"]\n",
    );
    let mut served = Served::start(&registry.url(), &path);
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-password");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"sub":"ci-bot","iss":"https://tokens.example"}"#);
    let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl");
    let is_push_of = |repository: &'static str| {
        move |event: &Value| {
            event["target"] == "wasmgate::audit" && event["fields"]["repository"] == repository
        }
    };

    let reply = push_helm_with(
        &served.url,
        "charts/a",
        "1",
        &[("authorization", &format!("Basic {basic}"))],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    let denied = served.wait_for("manifest push", is_push_of("charts/a"));

    let reply = push_helm_with(
        &served.url,
        "trial/a",
        "1",
        &[("authorization", &format!("Bearer {jwt}"))],
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let audited = served.wait_for("manifest push", is_push_of("trial/a"));

    let fields = &denied["fields"];
    assert_eq!(fields["decision"], "deny", "{denied}");
    assert_eq!(fields["rule"], "default");
    assert_eq!(fields["reference"], "1");
    assert_eq!(fields["user"], "alice");
    assert_eq!(fields["client_address"], "127.0.0.1");
    assert!(
        fields["digest"]
            .as_str()
            .is_some_and(|digest| digest.starts_with("sha256:")),
        "{denied}"
    );
    let reasons: Vec<String> =
        serde_json::from_str(fields["reasons"].as_str().expect("reasons")).expect("JSON reasons");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with("artifact-not-admitted: "),
        "{reasons:?}"
    );

    let fields = &audited["fields"];
    assert_eq!(fields["decision"], "would_deny", "{audited}");
    assert_eq!(fields["rule"], "trial");
    assert_eq!(fields["user"], "ci-bot");

    // Stop the gate so that every line it wrote can be read, then look for the secrets.
    let _ = served.child.kill();
    let _ = served.child.wait();
    let mut log = String::new();
    while let Ok(line) = served.lines.recv_timeout(LOG_TIMEOUT) {
        log.push_str(&line);
        log.push('\n');
    }
    let everything = format!("{denied}\n{audited}\n{log}");
    for secret in [
        "s3cret-password",
        basic.as_str(),
        jwt.as_str(),
        "c2lnbmF0dXJl",
    ] {
        assert!(!everything.contains(secret), "the log contains {secret:?}");
    }
}
