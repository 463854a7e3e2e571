//! Start stage: the validated settings every other module reads, and the URL origins that
//! the gate compares and rewrites.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Settings of `wasmgate serve`, checked before any port is bound.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub upstream: Origin,
    /// Origin that clients use to reach the gate. When unset, each request's `Host` header
    /// and scheme are used.
    pub public_url: Option<Origin>,
    /// Largest manifest body the gate buffers and validates, in bytes.
    pub max_manifest_bytes: u64,
    /// Layers up to this size are read whole and validated; larger ones only by header.
    pub inspect_max_bytes: u64,
    /// Reject, instead of warn about, a config `os` that disagrees with the layer.
    pub strict_os: bool,
    /// Turn legacy WebAssembly artifacts into the CNCF layout before forwarding them; used
    /// by the built-in default policy only.
    pub rewrite_legacy: bool,
    /// The `--policy` file and the policy read from it; `None` uses the built-in default.
    pub policy: Option<(std::path::PathBuf, crate::policy::Policy)>,
    /// Address of the admin listener (metrics, health, readiness); `None` turns it off.
    pub admin_listen: Option<SocketAddr>,
    /// Networks whose forwarding headers (`X-Forwarded-*`, `Forwarded`) are trusted.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// TLS of the client listener; `None` serves plain HTTP.
    pub tls: Option<crate::tls::ListenerTls>,
    pub upstream_tls: crate::tls::UpstreamTls,
    /// Speak HTTP/2 to the upstream: by ALPN for https, with prior knowledge for http.
    pub upstream_http2: bool,
    /// `WWW-Authenticate` realm rewrites: a realm starting with the first URL is rewritten
    /// to start with the second. A realm on the upstream's own origin is always rewritten
    /// to the public origin.
    pub realm_rewrites: Vec<(String, String)>,
    pub limits: Limits,
}

/// Timeouts and concurrency limits. Blob transfers have idle timeouts only, never a total
/// one, because a multi-gigabyte layer on a slow link may take hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a request's headers; it also bounds how long an idle
    /// HTTP/1.1 keep-alive connection waits for its next request.
    pub header_read_timeout: Duration,
    /// Longest pause within a body, either way, before the transfer is cut.
    pub body_idle_timeout: Duration,
    /// Time a client has to send a whole manifest body.
    pub manifest_read_timeout: Duration,
    /// Time allowed for reading a blob back from the upstream during validation, redirects
    /// included.
    pub blob_read_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    /// Time the upstream has to send response headers after the whole request was sent.
    pub upstream_response_timeout: Duration,
    /// Time an idle pooled connection to the upstream is kept open.
    pub upstream_idle_timeout: Duration,
    /// Client connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Manifest pushes buffered and validated at once, which bounds the memory they use to
    /// this number times `--max-manifest-bytes` plus the inspected layers.
    pub max_manifest_validations: usize,
    /// Time in-flight requests get to finish after SIGTERM or SIGINT.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(120),
            manifest_read_timeout: Duration::from_secs(30),
            blob_read_timeout: Duration::from_secs(60),
            upstream_connect_timeout: Duration::from_secs(10),
            upstream_response_timeout: Duration::from_secs(300),
            upstream_idle_timeout: Duration::from_secs(90),
            max_connections: 4096,
            max_manifest_validations: 64,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Default for `--max-manifest-bytes`: 4 MiB, the limit of Distribution, zot and Harbor.
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Upper bound for `--max-manifest-bytes`, because every manifest push holds this much memory.
pub const MAX_MANIFEST_BYTES_LIMIT: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    /// The scheme an absolute URL starts with, if it is http or https.
    pub fn of_url(url: &str) -> Option<Self> {
        Self::parse(url.split_once("://")?.0)
    }

    fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("http") {
            Some(Self::Http)
        } else if text.eq_ignore_ascii_case("https") {
            Some(Self::Https)
        } else {
            None
        }
    }
}

/// Scheme, host and port of a URL. Hosts are stored lowercase, IPv6 addresses with brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses a base URL such as `https://registry.example.com:5000`. A path other than `/`,
    /// a query, a fragment or user information is an error.
    pub fn parse_base_url(text: &str) -> Result<Self, String> {
        let (origin, rest) = Self::split_url(text).ok_or_else(|| {
            format!("{text:?} is not a valid http or https URL such as http://127.0.0.1:5000 (a port, if given, is 1 to 65535)")
        })?;
        if !rest.is_empty() && rest != "/" {
            return Err(format!(
                "{text:?} has a path or query ({rest:?}); give only scheme, host and port, because the registry API lives at /v2/"
            ));
        }
        Ok(origin)
    }

    /// Builds the origin of a request from its scheme and `Host` header value.
    pub fn from_authority(scheme: Scheme, authority: &str) -> Option<Self> {
        let (host, port) = split_host_port(authority)?;
        Some(Self {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
        })
    }

    /// The origin of a listening socket address.
    pub fn of_socket(scheme: Scheme, address: SocketAddr) -> Self {
        let host = match address {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        Self {
            scheme,
            host,
            port: address.port(),
        }
    }

    /// Splits an absolute URL into its origin and the rest (path, query and fragment, raw).
    pub fn split_url(url: &str) -> Option<(Self, &str)> {
        let (scheme, after_scheme) = url.split_once("://")?;
        let scheme = Scheme::parse(scheme)?;
        let end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let (authority, rest) = after_scheme.split_at(end);
        if authority.contains('@') {
            return None;
        }
        Some((Self::from_authority(scheme, authority)?, rest))
    }

    /// Returns the rest of `url` (path and query, byte for byte) when `url` is absolute and
    /// has this origin.
    pub fn strip_from<'a>(&self, url: &'a str) -> Option<&'a str> {
        match Self::split_url(url) {
            Some((origin, rest)) if origin == *self => Some(rest),
            _ => None,
        }
    }

    /// `host[:port]`, omitting the scheme's default port.
    pub fn authority(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())
    }
}

/// Splits `host[:port]` or `[v6]:port`; the host is lowercased.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, after) = bracketed.split_once(']')?;
        let port = match after {
            "" => None,
            other => Some(other.strip_prefix(':')?),
        };
        (format!("[{address}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-_[]:%".contains(&byte));
    if !valid_host {
        return None;
    }
    let port = match port {
        None => None,
        Some(text) => Some(text.parse::<u16>().ok().filter(|port| *port != 0)?),
    };
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_parsing() {
        let origin = Origin::parse_base_url("HTTP://Registry.Example:5000/").expect("valid");

        assert_eq!(origin.to_string(), "http://registry.example:5000");
        assert_eq!(
            Origin::parse_base_url("https://r.example")
                .expect("valid")
                .port,
            443
        );
        assert!(Origin::parse_base_url("ftp://r.example").is_err());
        assert!(Origin::parse_base_url("http://r.example/v2").is_err());
        assert!(Origin::parse_base_url("http://user:pw@r.example").is_err());
        assert!(Origin::parse_base_url("http://r.example:99999").is_err());
        assert!(Origin::parse_base_url("127.0.0.1:5000").is_err());
    }

    #[test]
    fn strip_keeps_the_raw_rest() {
        let upstream = Origin::parse_base_url("http://127.0.0.1:5000").expect("valid");

        assert_eq!(
            upstream.strip_from("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=a%2Bb&z=1"),
            Some("/v2/a/blobs/uploads/x?_state=a%2Bb&z=1")
        );
        assert_eq!(upstream.strip_from("HTTP://127.0.0.1:5000"), Some(""));
        assert_eq!(upstream.strip_from("http://127.0.0.1:5001/v2/"), None);
        assert_eq!(upstream.strip_from("https://127.0.0.1:5000/v2/"), None);
        assert_eq!(upstream.strip_from("/v2/relative"), None);
    }

    #[test]
    fn ipv6_and_default_ports() {
        let origin = Origin::from_authority(Scheme::Http, "[::1]:5050").expect("valid");

        assert_eq!(origin.to_string(), "http://[::1]:5050");
        let default = Origin::from_authority(Scheme::Https, "gate.example:443").expect("valid");
        assert_eq!(default.to_string(), "https://gate.example");
    }
}
