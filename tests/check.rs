//! `wasmgate check` and `wasmgate policy` as a CI pipeline runs them: files on disk in, a
//! report and an exit code out (0 allowed, 1 denied, 2 usage or input error).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::fixtures::{self, *};
use tempfile::TempDir;

const SOCKETS: &str = "wasi:sockets/tcp@0.2.0";
const HANDLER: &str = "wasi:http/incoming-handler@0.2.0";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", self.stdout))
    }
}

fn wasmgate(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .args(args)
        .env_remove("WASMGATE_POLICY")
        .output()
        .expect("run wasmgate");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/policies")
        .join(name)
        .display()
        .to_string()
}

fn write(directory: &TempDir, name: &str, bytes: &[u8]) -> String {
    let path = directory.path().join(name);
    std::fs::write(&path, bytes).expect("write file");
    path.display().to_string()
}

#[test]
fn check_allows_component_file() {
    let directory = TempDir::new().expect("temporary directory");
    let wasm = write(&directory, "app.wasm", &fixtures::component());

    let run = wasmgate(&["check", &wasm]);

    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("ALLOWED: "), "{}", run.stdout);
    assert!(run.stdout.contains("wasm"), "{}", run.stdout);

    // wkg 0.16 pushes a core module with os wasip2 and an empty world, as the preview does.
    // The gate accepts that with an os warning, and a rule that requires components rejects it.
    let module = write(&directory, "module.wasm", &fixtures::core_module());
    let run = wasmgate(&["check", &module, "--format", "json"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert!(
        report["warnings"][0]
            .as_str()
            .is_some_and(|warning| warning.contains("wasip2")),
        "{report:#}"
    );
    let run = wasmgate(&["check", &module, "--policy", &example("wasm-only.toml")]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("[component-required]"),
        "{}",
        run.stdout
    );
}

#[test]
fn check_denies_sockets_in_production() {
    let directory = TempDir::new().expect("temporary directory");
    let wasm = write(&directory, "api.wasm", &component_with(&[SOCKETS], HANDLER));
    let policy = example("production-capabilities.toml");

    let run = wasmgate(&[
        "check",
        &wasm,
        "--policy",
        &policy,
        "--repository",
        "prod/api",
    ]);

    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("DENIED: "), "{}", run.stdout);
    let violation = run
        .stdout
        .lines()
        .find(|line| line.contains("[import-denied]"))
        .unwrap_or_else(|| panic!("no import-denied violation: {}", run.stdout));
    assert!(
        violation.contains(SOCKETS) && violation.contains("wasi:sockets/*"),
        "{violation}"
    );

    // The same verdict as JSON, for programs.
    let run = wasmgate(&[
        "check",
        &wasm,
        "--policy",
        &policy,
        "--repository",
        "prod/api",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["decision"], "deny", "{report:#}");
    assert_eq!(report["rule"], "production");
    assert_eq!(report["mode"], "enforce");
    assert_eq!(report["repository"], "prod/api");
    assert_eq!(report["catalogs"], json!(["wasm"]));
    let violations = report["violations"].as_array().expect("violations");
    assert_eq!(violations.len(), 1, "{report:#}");
    assert_eq!(violations[0]["rule"], "import-denied");
    assert_eq!(violations[0]["code"], "MANIFEST_INVALID");
    assert!(
        violations[0]["message"]
            .as_str()
            .is_some_and(|message| message.contains(SOCKETS)),
        "{report:#}"
    );

    // In staging the rule audits: the push would go through, so the exit code is 0.
    let run = wasmgate(&[
        "check",
        &wasm,
        "--policy",
        &policy,
        "--repository",
        "staging/api",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["decision"], "would_deny");
}

#[test]
fn check_compares_config_with_layer() {
    let directory = TempDir::new().expect("temporary directory");
    let component = fixtures::component();
    let honest = fixtures::to_bytes(&fixtures::component_config(&component));
    let mut claims = fixtures::component_config(&component);
    claims["component"]["imports"] = json!(["wasi:cli/environment@0.2.0", SOCKETS]);
    let lying = fixtures::to_bytes(&claims);
    let layer = write(&directory, "layer.wasm", &component);

    for (config, expected) in [(&honest, 0), (&lying, 1)] {
        let manifest = fixtures::manifest(
            descriptor(WASM_CONFIG, config),
            vec![descriptor(WASM_LAYER, &component)],
        );
        let manifest = write(&directory, "manifest.json", &fixtures::to_bytes(&manifest));
        let config = write(&directory, "config.json", config);

        let run = wasmgate(&[
            "check",
            "--manifest",
            &manifest,
            "--config",
            &config,
            "--layer",
            &layer,
            "--format",
            "json",
        ]);

        assert_eq!(run.code, Some(expected), "{}{}", run.stdout, run.stderr);
        let report = run.json();
        if expected == 1 {
            assert_eq!(
                report["violations"][0]["rule"], "config-component-mismatch",
                "{report:#}"
            );
        } else {
            assert_eq!(report["decision"], "allow", "{report:#}");
        }
    }
}

/// Writes an OCI image layout holding one CNCF WebAssembly artifact tagged `tag`, as
/// `oras push --oci-layout` and `crane` write them.
fn write_layout(directory: &Path, tag: &str, layer: &[u8]) {
    let blobs = directory.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("create blobs");
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(blobs.join(hex), bytes).expect("write blob");
    };
    let config = fixtures::to_bytes(&fixtures::component_config(layer));
    put(&config);
    put(layer);
    let manifest = fixtures::to_bytes(&fixtures::manifest(
        descriptor(WASM_CONFIG, &config),
        vec![descriptor(WASM_LAYER, layer)],
    ));
    put(&manifest);
    let mut entry = descriptor(OCI_MANIFEST, &manifest);
    entry["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry] });
    std::fs::write(directory.join("index.json"), fixtures::to_bytes(&index)).expect("index");
    std::fs::write(
        directory.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
}

#[test]
fn check_reads_oci_layout() {
    let directory = TempDir::new().expect("temporary directory");
    write_layout(directory.path(), "v1", &fixtures::component());
    let layout = directory.path().display().to_string();
    let policy = example("wasm-only.toml");

    let run = wasmgate(&[
        "check",
        "--oci-layout",
        &format!("{layout}:v1"),
        "--policy",
        &policy,
    ]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);

    // One manifest in the layout: the tag may be left out.
    let run = wasmgate(&["check", "--oci-layout", &layout, "--format", "json"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["tag"], "v1");

    let run = wasmgate(&["check", "--oci-layout", &format!("{layout}:v2")]);
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("v2"), "{}", run.stderr);

    // A manifest blob edited after the layout was written no longer matches its digest.
    let index: Value =
        serde_json::from_slice(&std::fs::read(directory.path().join("index.json")).expect("index"))
            .expect("JSON index");
    let digest = index["manifests"][0]["digest"].as_str().expect("digest");

    // Selected by digest, as untagged referrers must be; --tag sets the tag it is judged under.
    let run = wasmgate(&[
        "check",
        "--oci-layout",
        &format!("{layout}@{digest}"),
        "--tag",
        "v9",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["tag"], "v9");
    let blob = directory
        .path()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut edited = std::fs::read(&blob).expect("manifest blob");
    edited.push(b' ');
    std::fs::write(&blob, edited).expect("edit manifest blob");
    let run = wasmgate(&["check", "--oci-layout", &layout]);
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("does not hash to"), "{}", run.stderr);
}

#[test]
fn check_denies_kind_outside_rule() {
    let directory = TempDir::new().expect("temporary directory");
    let config = br#"{"name":"demo","version":"0.1.0"}"#;
    let chart = b"chart bytes";
    let manifest = fixtures::manifest(
        descriptor("application/vnd.cncf.helm.config.v1+json", config),
        vec![descriptor(
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            chart,
        )],
    );
    let manifest = write(&directory, "manifest.json", &fixtures::to_bytes(&manifest));

    let run = wasmgate(&[
        "check",
        "--manifest",
        &manifest,
        "--policy",
        &example("wasm-only.toml"),
    ]);

    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("[artifact-not-admitted]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("helm"), "{}", run.stdout);
}

#[test]
fn unusable_input_exits_2() {
    let directory = TempDir::new().expect("temporary directory");
    let missing = directory.path().join("missing.wasm").display().to_string();
    let not_wasm = write(&directory, "text.wasm", b"hello");
    let bad_policy = write(
        &directory,
        "policy.toml",
        b"version = 1\n[default]\nmod = \"audit\"\n",
    );
    let component_bytes = fixtures::component();
    let component = write(&directory, "app.wasm", &component_bytes);
    let config = fixtures::to_bytes(&fixtures::component_config(&component_bytes));
    let manifest = fixtures::manifest(
        descriptor(WASM_CONFIG, &config),
        vec![descriptor(WASM_LAYER, &component_bytes)],
    );
    let manifest = write(&directory, "manifest.json", &fixtures::to_bytes(&manifest));
    let config = write(&directory, "config.json", &config);

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["check"], "nothing to check"),
        (vec!["check", "/dev/zero"], "not a regular file"),
        (
            vec!["check", "--manifest", &manifest, "--layer", "/dev/zero"],
            "not a regular file",
        ),
        (
            vec!["check", "--manifest", &manifest, "--config", &config],
            "give it with --config or --layer",
        ),
        (
            vec!["check", &component, "--repository", "../etc"],
            "not a valid repository name",
        ),
        (
            vec!["check", &component, "--tag", "bad tag"],
            "not a valid tag",
        ),
        (vec!["check", &missing], "missing.wasm"),
        (vec!["check", &not_wasm], "is not a WebAssembly binary"),
        (vec!["check", &component, "--policy", &bad_policy], "line 3"),
        (vec!["check", &component, "--format", "yaml"], "--format"),
        (
            vec!["check", &component, "--manifest", &component],
            "--manifest",
        ),
    ];
    for (args, expected) in cases {
        let run = wasmgate(&args);
        assert_eq!(run.code, Some(2), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn policy_default_prints_a_policy_that_checks_clean() {
    let directory = TempDir::new().expect("temporary directory");
    let run = wasmgate(&["policy", "default"]);
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.contains("version = 1"), "{}", run.stdout);
    let path = write(&directory, "default.toml", run.stdout.as_bytes());

    let run = wasmgate(&["policy", "check", &path]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("valid policy with 0 rules"),
        "{}",
        run.stdout
    );
}

#[test]
fn policy_check_names_the_file_line_and_key() {
    let directory = TempDir::new().expect("temporary directory");
    let cases = [
        (
            "version = 1\n[default]\nmode = \"enforce\"\nadmitted = [\"*\"]\n",
            "line 4",
            "admitted",
        ),
        ("version = 2\n", "line 1", "version = 2"),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nrepositories = [\"x/*\"]\nadmit = [\"wasmm\"]\n",
            "line 5",
            "wasmm",
        ),
        (
            "version = 1\n[default]\nmode = \"strict\"\n",
            "line 3",
            "strict",
        ),
    ];
    for (text, line, key) in cases {
        let path = write(&directory, "policy.toml", text.as_bytes());
        let run = wasmgate(&["policy", "check", &path]);
        assert_eq!(run.code, Some(64), "{text}: {}", run.stderr);
        assert!(
            run.stderr.contains(&path) && run.stderr.contains(line) && run.stderr.contains(key),
            "{text}: {}",
            run.stderr
        );
    }
}

#[test]
fn every_example_policy_is_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies");
    let mut checked: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("examples/policies")
        .map(|entry| entry.expect("entry").path())
        .collect();
    checked.sort();
    assert_eq!(checked.len(), 3, "{checked:?}");
    for path in checked {
        let run = wasmgate(&["policy", "check", &path.display().to_string()]);
        assert_eq!(run.code, Some(0), "{}: {}", path.display(), run.stderr);
    }
}

#[test]
fn serve_check_config_validates_the_policy_without_binding() {
    // Holding the port proves the gate never tried to bind it.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = held.local_addr().expect("address").to_string();
    let directory = TempDir::new().expect("temporary directory");
    let bad_policy = write(&directory, "policy.toml", b"version = 1\nrules = 3\n");
    let serve = |policy: &str| {
        wasmgate(&[
            "serve",
            "--check-config",
            "--listen",
            &listen,
            "--admin-listen",
            &listen,
            "--upstream",
            "http://127.0.0.1:5000",
            "--policy",
            policy,
        ])
    };

    let run = serve(&example("production-capabilities.toml"));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("configuration is valid: "),
        "{}",
        run.stdout
    );

    let run = serve(&bad_policy);
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
}

#[test]
fn docs_show_each_example_policy_whole() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/policy.md")).expect("docs/policy.md");
    for name in [
        "wasm-only.toml",
        "gitlab-like.toml",
        "production-capabilities.toml",
    ] {
        let text = std::fs::read_to_string(root.join("examples/policies").join(name))
            .expect("example policy");
        assert!(
            docs.contains(&format!("```toml\n{text}```")),
            "docs/policy.md does not show examples/policies/{name} as it is"
        );
    }
}

#[test]
fn check_judges_manifests_of_layout_index() {
    let directory = TempDir::new().expect("temporary directory");
    let root = directory.path();
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("create blobs");
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes)
            .expect("write blob");
    };

    // A component manifest and a Linux image manifest, listed by one index.
    let component = fixtures::component();
    let wasm_config = fixtures::to_bytes(&fixtures::component_config(&component));
    let wasm_manifest = fixtures::to_bytes(&fixtures::manifest(
        descriptor(WASM_CONFIG, &wasm_config),
        vec![descriptor(WASM_LAYER, &component)],
    ));
    let image_config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let image_layer = b"a gzipped tar";
    let image_manifest = fixtures::to_bytes(&fixtures::manifest(
        descriptor(IMAGE_CONFIG, image_config),
        vec![descriptor(IMAGE_LAYER, image_layer)],
    ));
    for bytes in [
        &component[..],
        &wasm_config,
        &wasm_manifest,
        image_config,
        image_layer,
        &image_manifest,
    ] {
        put(bytes);
    }
    let index = fixtures::to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, &wasm_manifest), descriptor(OCI_MANIFEST, &image_manifest)],
    }));
    put(&index);
    let mut entry = descriptor(OCI_INDEX, &index);
    entry["annotations"] = json!({ "org.opencontainers.image.ref.name": "v1" });
    std::fs::write(
        root.join("index.json"),
        fixtures::to_bytes(&json!({ "schemaVersion": 2, "manifests": [entry] })),
    )
    .expect("index.json");
    std::fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let layout = root.display().to_string();
    let policy = example("wasm-only.toml");

    let run = wasmgate(&[
        "check",
        "--oci-layout",
        &format!("{layout}:v1"),
        "--policy",
        &policy,
        "--format",
        "json",
    ]);

    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let manifests = report["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2, "{report:#}");
    assert_eq!(manifests[0]["decision"], "allow", "{report:#}");
    assert_eq!(manifests[1]["decision"], "deny", "{report:#}");
    assert_eq!(
        manifests[1]["violations"][0]["rule"],
        "artifact-not-admitted"
    );

    // A manifest that only the index lists is selected by digest from the blobs.
    let image_digest = sha256(&image_manifest);
    let run = wasmgate(&[
        "check",
        "--oci-layout",
        &format!("{layout}@{image_digest}"),
        "--policy",
        &policy,
    ]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("[artifact-not-admitted]"),
        "{}",
        run.stdout
    );
}
