//! The `wasmgate` binary: version output and configuration errors.

use std::process::Command;

fn wasmgate(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .args(args)
        .output()
        .expect("run wasmgate");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn version_is_printed() {
    let (code, stdout, _) = wasmgate(&["--version"]);

    assert_eq!(code, Some(0));
    assert_eq!(
        stdout.trim(),
        format!("wasmgate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn invalid_configuration_exits_64_before_binding() {
    // Holding the port proves the gate never tried to bind it: a bind failure exits 1.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = held.local_addr().expect("address").to_string();
    let cases = [
        (vec!["--upstream", "ftp://registry"], "--upstream"),
        (vec!["--upstream", "http://registry:5000/v2"], "--upstream"),
        (vec!["--public-url", "gate.example"], "--public-url"),
        (vec!["--max-manifest-bytes", "0"], "--max-manifest-bytes"),
        (vec!["--max-manifest-bytes", "many"], "--max-manifest-bytes"),
        (vec!["--no-such-flag"], "--no-such-flag"),
    ];

    for (args, flag) in cases {
        let mut all = vec!["serve", "--listen", listen.as_str()];
        all.extend(args);
        let (code, _, stderr) = wasmgate(&all);
        assert_eq!(code, Some(64), "{all:?}: {stderr}");
        assert!(stderr.contains(flag), "{all:?}: {stderr}");
    }
}

#[test]
fn environment_variables_configure_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .args(["serve"])
        .env("WASMGATE_UPSTREAM", "gopher://registry")
        .output()
        .expect("run wasmgate");

    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("gopher://registry"));
}
