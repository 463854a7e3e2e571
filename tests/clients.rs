//! Real WebAssembly clients through the gate: the `wkg` command line and the `oci-client`
//! crate that wkg is built on.

mod support;

use std::path::Path;

use http::StatusCode;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_wasm::{WasmClient, WasmConfig};
use support::{Registry, fetch_manifest, fixtures};

/// Finds `wkg`. Without it the test fails when `CI` is set and is skipped, loudly, otherwise.
fn wkg() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("wkg"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_default();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "wkg is not on PATH; run scripts/install-test-tools.sh"
        );
        eprintln!("SKIPPED: wkg is not on PATH; run scripts/install-test-tools.sh");
    }
    found
}

/// Runs wkg with its configuration and cache inside `home`, and returns (success, stdout, stderr).
async fn run_wkg(wkg: &Path, home: &Path, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(wkg)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .output()
        .await
        .expect("run wkg");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wkg_pushes_and_pulls_through_the_gate() {
    let Some(wkg) = wkg() else { return };
    let (registry, gate) = support::registry_and_gate().await;
    let home = tempfile::tempdir().expect("temporary directory");
    let component = fixtures::component();
    let input = home.path().join("hello.wasm");
    std::fs::write(&input, &component).expect("write component");
    let host = gate.trim_start_matches("http://");
    let image = format!("{host}/demo/hello:0.1.0");
    let output = home.path().join("pulled.wasm");

    let (pushed, push_out, push_err) = run_wkg(
        &wkg,
        home.path(),
        &[
            "oci",
            "push",
            "--insecure",
            host,
            &image,
            input.to_str().expect("UTF-8 path"),
        ],
    )
    .await;
    let (pulled, pull_out, pull_err) = run_wkg(
        &wkg,
        home.path(),
        &[
            "oci",
            "pull",
            "--insecure",
            host,
            &image,
            "-o",
            output.to_str().expect("UTF-8 path"),
        ],
    )
    .await;

    assert!(pushed, "wkg push failed: {push_out}{push_err}");
    assert!(pulled, "wkg pull failed: {pull_out}{pull_err}");
    assert_eq!(std::fs::read(&output).expect("pulled file"), component);
    let stored = fetch_manifest(&registry, "demo/hello", "0.1.0").await;
    assert_eq!(stored.status, StatusCode::OK);
    let digest = fixtures::sha256(&stored.body);
    assert!(
        push_out.contains(&digest),
        "wkg printed {push_out}, registry stores {digest}"
    );
    assert_eq!(stored.json()["config"]["mediaType"], fixtures::WASM_CONFIG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wkg_prints_the_gate_rejection() {
    let Some(wkg) = wkg() else { return };
    let registry = Registry::start();
    let mut settings = support::settings(&registry.url());
    settings.max_manifest_bytes = 64;
    let gate = support::start_gate(settings).await;
    let home = tempfile::tempdir().expect("temporary directory");
    let input = home.path().join("hello.wasm");
    std::fs::write(&input, fixtures::component()).expect("write component");
    let host = gate.trim_start_matches("http://");

    let (pushed, stdout, stderr) = run_wkg(
        &wkg,
        home.path(),
        &[
            "oci",
            "push",
            "--insecure",
            host,
            &format!("{host}/demo/hello:0.1.0"),
            input.to_str().expect("UTF-8 path"),
        ],
    )
    .await;

    assert!(!pushed, "wkg push succeeded: {stdout}");
    assert!(
        stderr.contains("larger than 64 bytes"),
        "wkg printed: {stderr}"
    );
    assert!(registry.manifest_puts("demo/hello").is_empty());
}

#[tokio::test]
async fn oci_client_reports_layer_digest_mismatch() {
    let (registry, gate) = support::registry_and_gate().await;
    let component = fixtures::component();
    let (mut config, layer) =
        WasmConfig::from_raw_component(component, None).expect("component decodes");
    let wrong = fixtures::sha256(b"a different build");
    config.layer_digests = vec![wrong.clone()];
    let client = WasmClient::new(oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    }));
    let image = format!("{}/demo/hello:0.1.0", gate.trim_start_matches("http://"))
        .parse()
        .expect("reference");

    let result = client
        .push(&image, &RegistryAuth::Anonymous, layer, config, None)
        .await;

    let Err(error) = result else {
        panic!("the gate accepted a config with a wrong layer digest")
    };

    let printed = format!("{error:#}");
    assert!(
        printed.contains(&format!("config.layerDigests[0] is {wrong}")),
        "oci-client printed: {printed}"
    );
    assert!(
        printed.contains("rebuild the config from the layers"),
        "oci-client printed: {printed}"
    );
    assert!(registry.manifest_puts("demo/hello").is_empty());
    let stored = fetch_manifest(&registry, "demo/hello", "0.1.0").await;
    assert_eq!(stored.status, StatusCode::NOT_FOUND);
}
