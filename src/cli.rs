//! Start stage: the command line. Every flag has a help line, a value name and a
//! `WASMGATE_…` environment variable.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    DEFAULT_BLOB_READ_TIMEOUT, DEFAULT_MAX_MANIFEST_BYTES, MAX_MANIFEST_BYTES_LIMIT, Origin,
    Settings,
};
use crate::wasm::DEFAULT_INSPECT_MAX_BYTES;

/// Exit code for invalid configuration or usage (`EX_USAGE` of sysexits.h).
pub const EXIT_USAGE: i32 = 64;

/// A validating reverse proxy for OCI registries.
///
/// wasmgate streams the distribution API to an upstream registry and validates every
/// manifest push, including the CNCF WebAssembly artifact layout, before forwarding it.
#[derive(Debug, Parser)]
#[command(name = "wasmgate", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gate in front of an upstream registry.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to accept clients on (HTTP/1.1, or HTTP/2 with prior knowledge).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "WASMGATE_LISTEN",
        default_value = "127.0.0.1:5050"
    )]
    pub listen: String,

    /// Base URL of the registry to forward to (http or https, no path).
    #[arg(
        long,
        value_name = "URL",
        env = "WASMGATE_UPSTREAM",
        default_value = "http://127.0.0.1:5000"
    )]
    pub upstream: String,

    /// URL that clients use to reach the gate, used when rewriting the upstream's Location
    /// and Link headers [default: each request's Host header and scheme].
    #[arg(long, value_name = "URL", env = "WASMGATE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Largest manifest body accepted for validation, in bytes; larger pushes get 413.
    #[arg(
        long,
        value_name = "BYTES",
        env = "WASMGATE_MAX_MANIFEST_BYTES",
        default_value_t = DEFAULT_MAX_MANIFEST_BYTES
    )]
    pub max_manifest_bytes: u64,

    /// Largest WebAssembly layer read whole, validated and decoded, in bytes; larger layers
    /// get a header check and a warning. 0 checks headers only.
    #[arg(
        long,
        value_name = "BYTES",
        env = "WASMGATE_INSPECT_MAX_BYTES",
        default_value_t = DEFAULT_INSPECT_MAX_BYTES
    )]
    pub inspect_max_bytes: u64,

    /// Reject a WebAssembly push whose config `os` disagrees with the layer (wasip1 for a
    /// core module, wasip2 for a component) instead of accepting it with a warning.
    #[arg(long, env = "WASMGATE_STRICT_OS")]
    pub strict_os: bool,

    /// Turn legacy WebAssembly artifacts (Solo.io, wasm-to-oci, wasmCloud actor) pushed by
    /// tag into the CNCF layout before forwarding them.
    #[arg(long, env = "WASMGATE_REWRITE_LEGACY")]
    pub rewrite_legacy: bool,
}

impl ServeArgs {
    /// Validates the flags into [`Settings`]; the error says which flag is wrong and why.
    pub fn settings(&self) -> Result<Settings, String> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            format!(
                "--listen {:?} is not an address and port such as 127.0.0.1:5050 or [::1]:5050",
                self.listen
            )
        })?;
        let upstream = Origin::parse_base_url(&self.upstream)
            .map_err(|error| format!("--upstream {error}"))?;
        let public_url = self
            .public_url
            .as_deref()
            .map(Origin::parse_base_url)
            .transpose()
            .map_err(|error| format!("--public-url {error}"))?;
        if !(1..=MAX_MANIFEST_BYTES_LIMIT).contains(&self.max_manifest_bytes) {
            return Err(format!(
                "--max-manifest-bytes {} is out of range; use 1 to {MAX_MANIFEST_BYTES_LIMIT} bytes",
                self.max_manifest_bytes
            ));
        }
        Ok(Settings {
            listen,
            upstream,
            public_url,
            max_manifest_bytes: self.max_manifest_bytes,
            blob_read_timeout: DEFAULT_BLOB_READ_TIMEOUT,
            inspect_max_bytes: self.inspect_max_bytes,
            strict_os: self.strict_os,
            rewrite_legacy: self.rewrite_legacy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(args: &[&str]) -> ServeArgs {
        let cli =
            Cli::try_parse_from(["wasmgate", "serve"].iter().chain(args)).expect("flags parse");
        let Command::Serve(serve) = cli.command;
        serve
    }

    #[test]
    fn defaults_are_valid() {
        let settings = serve_args(&[]).settings().expect("defaults are valid");

        assert_eq!(settings.listen.to_string(), "127.0.0.1:5050");
        assert_eq!(settings.upstream.to_string(), "http://127.0.0.1:5000");
        assert_eq!(settings.max_manifest_bytes, 4_194_304);
        assert_eq!(settings.inspect_max_bytes, 64 * 1024 * 1024);
        assert!(!settings.strict_os);
        assert!(!settings.rewrite_legacy);
    }

    #[test]
    fn webassembly_flags_are_read() {
        let settings = serve_args(&[
            "--inspect-max-bytes",
            "0",
            "--strict-os",
            "--rewrite-legacy",
        ])
        .settings()
        .expect("valid flags");

        assert_eq!(settings.inspect_max_bytes, 0);
        assert!(settings.strict_os);
        assert!(settings.rewrite_legacy);
    }

    #[test]
    fn invalid_values_name_the_flag() {
        let cases = [
            (vec!["--listen", "localhost"], "--listen"),
            (vec!["--upstream", "registry:5000"], "--upstream"),
            (
                vec!["--public-url", "https://gate.example/v2"],
                "--public-url",
            ),
            (vec!["--max-manifest-bytes", "0"], "--max-manifest-bytes"),
        ];
        for (args, flag) in cases {
            let error = serve_args(&args).settings().expect_err(flag);
            assert!(error.starts_with(flag), "{error}");
        }
    }

    #[test]
    fn command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
