//! Start stage: the command line. Every flag has a help line, a value name and a
//! `WASMGATE_…` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    DEFAULT_MAX_MANIFEST_BYTES, Limits, MAX_MANIFEST_BYTES_LIMIT, Origin, Settings,
};
use crate::tls::{ListenerTls, UpstreamTls};
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
    Serve(Box<ServeArgs>),
    /// Print the built-in policy, or validate a policy file.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Judge an artifact against a policy offline, as the gate would judge its push.
    Check(Box<crate::check::CheckArgs>),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the built-in default policy as commented TOML.
    Default,
    /// Validate a policy file; exits 0 when it is valid and 64 when it is not.
    Check {
        /// The policy file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
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
    /// tag into the CNCF layout before forwarding them. Applies to the built-in policy; with
    /// --policy, set `legacy = "rewrite"` in the policy's rules instead.
    #[arg(long, env = "WASMGATE_REWRITE_LEGACY")]
    pub rewrite_legacy: bool,

    /// TOML policy file with per-repository rules [default: the built-in policy, printed by
    /// `wasmgate policy default`]. Reloaded on SIGHUP and when the file changes.
    #[arg(long, value_name = "FILE", env = "WASMGATE_POLICY")]
    pub policy: Option<PathBuf>,

    /// Validate the flags, the policy, the certificates and the upstream URL, print a summary
    /// and exit (0 when valid, 64 when not) without binding a port or contacting the upstream.
    #[arg(long)]
    pub check_config: bool,

    /// Address and port of the admin listener (/metrics, /healthz, /readyz); "off" turns
    /// it off.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "WASMGATE_ADMIN_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub admin_listen: String,

    /// Network (CIDR, such as 10.0.0.0/8, or one address) of a proxy in front of the gate
    /// whose X-Forwarded-* and Forwarded headers are kept and appended to; repeatable, or
    /// comma-separated in the environment variable. From other peers they are replaced.
    #[arg(
        long = "trusted-proxy",
        value_name = "CIDR",
        env = "WASMGATE_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,

    /// PEM certificate chain for serving HTTPS; reloaded when the file changes.
    #[arg(
        long,
        value_name = "FILE",
        env = "WASMGATE_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert; reloaded when the file changes.
    #[arg(
        long,
        value_name = "FILE",
        env = "WASMGATE_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle; when set, clients must present a certificate that chains to it (mTLS).
    #[arg(
        long,
        value_name = "FILE",
        env = "WASMGATE_TLS_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// PEM CA bundle trusted for an https upstream, besides the system roots.
    #[arg(long, value_name = "FILE", env = "WASMGATE_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// PEM client certificate presented to an https upstream.
    #[arg(
        long,
        value_name = "FILE",
        env = "WASMGATE_UPSTREAM_CLIENT_CERT",
        requires = "upstream_client_key"
    )]
    pub upstream_client_cert: Option<PathBuf>,

    /// PEM private key of --upstream-client-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "WASMGATE_UPSTREAM_CLIENT_KEY",
        requires = "upstream_client_cert"
    )]
    pub upstream_client_key: Option<PathBuf>,

    /// Accept any upstream certificate. Only for testing; a warning is logged at every start.
    #[arg(long, env = "WASMGATE_UPSTREAM_INSECURE_SKIP_VERIFY")]
    pub upstream_insecure_skip_verify: bool,

    /// Speak HTTP/2 to the upstream (ALPN for https, prior knowledge for http) instead of
    /// pooled HTTP/1.1.
    #[arg(long, env = "WASMGATE_UPSTREAM_HTTP2")]
    pub upstream_http2: bool,

    /// Rewrite a WWW-Authenticate realm that starts with FROM to start with TO; repeatable,
    /// or comma-separated in the environment variable. A realm on the upstream's own origin
    /// is always rewritten to the public origin.
    #[arg(
        long = "rewrite-realm",
        value_name = "FROM=TO",
        env = "WASMGATE_REWRITE_REALM",
        value_delimiter = ','
    )]
    pub rewrite_realms: Vec<String>,

    /// Log format: text for people, json for log collectors.
    #[arg(long, value_name = "FORMAT", env = "WASMGATE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Seconds a client has to send request headers; also how long an idle HTTP/1.1
    /// keep-alive connection waits for its next request.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "WASMGATE_HEADER_READ_TIMEOUT",
        default_value_t = 30
    )]
    pub header_read_timeout: u64,

    /// Longest pause, in seconds, within a request or response body before the transfer is
    /// cut. There is no limit on the total duration of a transfer.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "WASMGATE_BODY_IDLE_TIMEOUT",
        default_value_t = 120
    )]
    pub body_idle_timeout: u64,

    /// Seconds a client has to send a whole manifest body.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "WASMGATE_MANIFEST_READ_TIMEOUT",
        default_value_t = 30
    )]
    pub manifest_read_timeout: u64,

    /// Seconds allowed for reading a config or layer back from the upstream during
    /// validation, redirects included.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "WASMGATE_BLOB_READ_TIMEOUT",
        default_value_t = 60
    )]
    pub blob_read_timeout: u64,

    /// Seconds allowed for opening a connection to the upstream; past it the client gets 504.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "WASMGATE_UPSTREAM_CONNECT_TIMEOUT",
        default_value_t = 10
    )]
    pub upstream_connect_timeout: u64,

    /// Seconds the upstream has to send response headers once the whole request was sent;
    /// past it the client gets 504. The upload itself is never timed.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "WASMGATE_UPSTREAM_RESPONSE_TIMEOUT",
        default_value_t = 300
    )]
    pub upstream_response_timeout: u64,

    /// Seconds an idle pooled keep-alive connection to the upstream is kept open.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "WASMGATE_UPSTREAM_IDLE_TIMEOUT",
        default_value_t = 90
    )]
    pub upstream_idle_timeout: u64,

    /// Client connections served at once; further ones wait until one closes.
    #[arg(
        long,
        value_name = "COUNT",
        env = "WASMGATE_MAX_CONNECTIONS",
        default_value_t = 4096
    )]
    pub max_connections: usize,

    /// Manifest pushes buffered and validated at once; memory for them is at most this
    /// number times (--max-manifest-bytes + --inspect-max-bytes + 1 MiB).
    #[arg(
        long,
        value_name = "COUNT",
        env = "WASMGATE_MAX_MANIFEST_VALIDATIONS",
        default_value_t = 64
    )]
    pub max_manifest_validations: usize,

    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "WASMGATE_SHUTDOWN_GRACE",
        default_value_t = 30
    )]
    pub shutdown_grace: u64,
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
        let admin_listen = match self.admin_listen.as_str() {
            "off" => None,
            address => Some(address.parse().map_err(|_| {
                format!("--admin-listen {address:?} is not an address and port such as 127.0.0.1:9090, or \"off\"")
            })?),
        };
        if self.rewrite_legacy && self.policy.is_some() {
            return Err("--rewrite-legacy applies to the built-in policy only; with --policy, set legacy = \"rewrite\" in the rules that should rewrite".to_owned());
        }
        let policy = match &self.policy {
            Some(path) => Some((
                path.clone(),
                crate::policy::Policy::load(path).map_err(|error| format!("--policy {error}"))?,
            )),
            None => None,
        };
        Ok(Settings {
            listen,
            upstream,
            public_url,
            max_manifest_bytes: self.max_manifest_bytes,
            inspect_max_bytes: self.inspect_max_bytes,
            strict_os: self.strict_os,
            rewrite_legacy: self.rewrite_legacy,
            policy,
            admin_listen,
            trusted_proxies: self.trusted_proxies()?,
            tls: self.listener_tls()?,
            upstream_tls: self.upstream_tls()?,
            upstream_http2: self.upstream_http2,
            realm_rewrites: self.realm_rewrites()?,
            limits: self.limits()?,
        })
    }

    /// Checks the listener's TLS files by loading them, so a bad file stops the start.
    fn listener_tls(&self) -> Result<Option<ListenerTls>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let tls = ListenerTls {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: self.tls_client_ca.clone(),
            reload_interval: crate::tls::DEFAULT_RELOAD_INTERVAL,
        };
        crate::tls::server_config(&tls)
            .map_err(|error| format!("--tls-cert, --tls-key or --tls-client-ca: {error}"))?;
        Ok(Some(tls))
    }

    fn upstream_tls(&self) -> Result<UpstreamTls, String> {
        let tls = UpstreamTls {
            ca: self.upstream_ca.clone(),
            client_identity: self
                .upstream_client_cert
                .clone()
                .zip(self.upstream_client_key.clone()),
            insecure_skip_verify: self.upstream_insecure_skip_verify,
        };
        crate::tls::client_config(&tls)
            .map_err(|error| format!("--upstream-ca or --upstream-client-cert: {error}"))?;
        Ok(tls)
    }

    fn realm_rewrites(&self) -> Result<Vec<(String, String)>, String> {
        self.rewrite_realms
            .iter()
            .map(|pair| {
                let (from, to) = pair.split_once('=').ok_or_else(|| {
                    format!("--rewrite-realm {pair:?} is not FROM=TO, such as https://auth.internal/token=https://registry.example.com/token")
                })?;
                for url in [from, to] {
                    if crate::config::Scheme::of_url(url).is_none() {
                        return Err(format!("--rewrite-realm {pair:?}: {url:?} is not an http or https URL"));
                    }
                }
                let scheme = crate::config::Scheme::of_url;
                if scheme(from) == Some(crate::config::Scheme::Https) && scheme(to) == Some(crate::config::Scheme::Http) {
                    return Err(format!("--rewrite-realm {pair:?} would downgrade an https realm to http"));
                }
                Ok((from.to_owned(), to.to_owned()))
            })
            .collect()
    }

    fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("--trusted-proxy {text:?} is not a network such as 10.0.0.0/8 or an address such as 10.0.0.1"))
            })
            .collect()
    }

    fn limits(&self) -> Result<Limits, String> {
        let seconds = |flag: &str, value: u64| {
            if value == 0 {
                Err(format!("--{flag} must be at least 1 second"))
            } else {
                Ok(Duration::from_secs(value))
            }
        };
        let count = |flag: &str, value: usize| {
            if value == 0 {
                Err(format!("--{flag} must be at least 1"))
            } else {
                Ok(value)
            }
        };
        Ok(Limits {
            header_read_timeout: seconds("header-read-timeout", self.header_read_timeout)?,
            body_idle_timeout: seconds("body-idle-timeout", self.body_idle_timeout)?,
            manifest_read_timeout: seconds("manifest-read-timeout", self.manifest_read_timeout)?,
            blob_read_timeout: seconds("blob-read-timeout", self.blob_read_timeout)?,
            upstream_connect_timeout: seconds(
                "upstream-connect-timeout",
                self.upstream_connect_timeout,
            )?,
            upstream_response_timeout: seconds(
                "upstream-response-timeout",
                self.upstream_response_timeout,
            )?,
            upstream_idle_timeout: seconds("upstream-idle-timeout", self.upstream_idle_timeout)?,
            max_connections: count("max-connections", self.max_connections)?,
            max_manifest_validations: count(
                "max-manifest-validations",
                self.max_manifest_validations,
            )?,
            // Zero is allowed: it cuts in-flight requests at once.
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(args: &[&str]) -> ServeArgs {
        let cli =
            Cli::try_parse_from(["wasmgate", "serve"].iter().chain(args)).expect("flags parse");
        let Command::Serve(serve) = cli.command else {
            panic!("not serve");
        };
        *serve
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
            (vec!["--admin-listen", "9090"], "--admin-listen"),
            (vec!["--trusted-proxy", "10.0.0.0/33"], "--trusted-proxy"),
            (vec!["--body-idle-timeout", "0"], "--body-idle-timeout"),
            (
                vec!["--max-manifest-validations", "0"],
                "--max-manifest-validations",
            ),
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
