//! Relay stage: passes a request to the upstream and its response back, streaming both bodies
//! frame by frame. Only hop-by-hop headers are removed (RFC 9110 section 7.6.1), forwarding
//! headers are set, and upstream-origin `Location` and `Link` URLs are rewritten to the
//! public origin. Status codes, other headers and bodies pass unchanged, and redirects are
//! never followed.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Version};

use crate::body::{self, Body, EndSignal};
use crate::config::{Origin, Scheme, Settings};
use crate::error::GateError;
use crate::upstream::Upstream;

/// Hop-by-hop headers that are never forwarded, in addition to those that `Connection`
/// names. `Expect` is answered by the gate's own HTTP server, so it is dropped too.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Forwarding headers. From peers that are not trusted proxies, incoming values are dropped,
/// because a client could otherwise choose the host and scheme the registry writes into
/// upload URLs.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-real-ip",
    "front-end-https",
];

/// Facts about the client side of one request.
#[derive(Debug, Clone)]
pub struct ClientSide {
    pub peer: SocketAddr,
    /// Scheme of the connection the request came on.
    pub scheme: Scheme,
    /// Whether the peer is a trusted proxy (`--trusted-proxy`), whose forwarding headers are
    /// kept and appended to.
    pub trusted: bool,
    /// Origin the client used to reach the gate; upstream URLs are rewritten to it.
    pub public: Origin,
}

impl ClientSide {
    /// Works out the public origin: `--public-url`; else, from a trusted proxy, its
    /// `X-Forwarded-Host` and `X-Forwarded-Proto`; else the request's `Host` (or the HTTP/2
    /// `:authority`) with the connection's scheme; else the listening address.
    pub fn new<B>(
        request: &Request<B>,
        peer: SocketAddr,
        scheme: Scheme,
        settings: &Settings,
    ) -> Self {
        // An IPv4 client of a dual-stack listener arrives as `::ffff:a.b.c.d`; comparing and
        // reporting it in its IPv4 form lets IPv4 networks match.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let trusted = settings
            .trusted_proxies
            .iter()
            .any(|network| network.contains(&peer.ip()));
        let public = settings
            .public_url
            .clone()
            .or_else(|| {
                trusted
                    .then(|| forwarded_origin(request.headers(), scheme))
                    .flatten()
            })
            .unwrap_or_else(|| {
                let host = request
                    .headers()
                    .get(header::HOST)
                    .and_then(|value| value.to_str().ok())
                    .or_else(|| {
                        request
                            .uri()
                            .authority()
                            .map(|authority| authority.as_str())
                    });
                host.and_then(|host| Origin::from_authority(scheme, host))
                    .unwrap_or_else(|| Origin::of_socket(scheme, settings.listen))
            });
        Self {
            peer,
            scheme,
            trusted,
            public,
        }
    }
}

/// Returns the origin a trusted proxy reports: the first `X-Forwarded-Host`, with the first
/// `X-Forwarded-Proto` or else the connection's scheme.
fn forwarded_origin(headers: &HeaderMap, scheme: Scheme) -> Option<Origin> {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.split(',').next())
            .map(str::trim)
    };
    let scheme = match first("x-forwarded-proto") {
        Some(proto) if proto.eq_ignore_ascii_case("https") => Scheme::Https,
        Some(proto) if proto.eq_ignore_ascii_case("http") => Scheme::Http,
        _ => scheme,
    };
    Origin::from_authority(scheme, first("x-forwarded-host")?)
}

/// Forwards `request` to the upstream and relays the response.
pub async fn forward(
    upstream: &Upstream,
    request: Request<Body>,
    client: &ClientSide,
) -> Result<Response<Body>, GateError> {
    let (mut parts, body) = request.into_parts();

    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |value| value.as_str());
    parts.uri = upstream.uri(path_and_query)?;
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
    set_forwarding_headers(&mut parts.headers, client);

    let (sent, request_sent) = tokio::sync::oneshot::channel();
    let body = body::stream(EndSignal::new(body, sent));
    let response = tokio::select! {
        result = upstream.send(Request::from_parts(parts, body)) => result?,
        () = response_deadline(request_sent, upstream.response_timeout) => {
            tracing::warn!(
                timeout_seconds = upstream.response_timeout.as_secs(),
                "upstream sent no response headers in time after the request was sent"
            );
            return Err(GateError::UpstreamTimeout("no response headers".to_owned()));
        }
    };

    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    rewrite_urls(&mut parts.headers, &upstream.origin, &client.public);
    rewrite_realms(
        &mut parts.headers,
        &upstream.origin,
        &client.public,
        &upstream.realm_rewrites,
    );
    Ok(Response::from_parts(parts, body::stream(body)))
}

/// Resolves `timeout` after the request body has been sent. The clock starts only then,
/// because an upload may take as long as it needs, and a registry may take a while after a
/// large blob's last byte to verify it.
async fn response_deadline(
    request_sent: tokio::sync::oneshot::Receiver<()>,
    timeout: std::time::Duration,
) {
    let _ = request_sent.await;
    tokio::time::sleep(timeout).await;
}

/// Removes hop-by-hop headers, including every header that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

fn set_forwarding_headers(headers: &mut HeaderMap, client: &ClientSide) {
    let peer = client.peer.ip().to_string();
    if !client.trusted {
        for name in FORWARDING {
            headers.remove(*name);
        }
    }

    let forwarded_for = match joined(headers, "x-forwarded-for") {
        Some(chain) => format!("{chain}, {peer}"),
        None => peer.clone(),
    };
    insert_text(headers, "x-forwarded-for", &forwarded_for);
    if !headers.contains_key("x-forwarded-proto") {
        insert_text(headers, "x-forwarded-proto", client.public.scheme.as_str());
    }
    if !headers.contains_key("x-forwarded-host") {
        insert_text(headers, "x-forwarded-host", &client.public.authority());
    }
    if let Some(chain) = joined(headers, "forwarded") {
        // Only a trusted proxy's `Forwarded` survives to here; this hop is appended to it
        // (RFC 7239), with an IPv6 address quoted and bracketed.
        let node = if client.peer.is_ipv6() {
            format!("\"[{peer}]\"")
        } else {
            peer
        };
        let element = format!(
            "{chain}, for={node};host=\"{}\";proto={}",
            client.public.authority(),
            client.scheme.as_str()
        );
        insert_text(headers, "forwarded", &element);
    }
}

/// Joins every line of a list header with commas, as RFC 9110 section 5.3 reads them.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

fn insert_text(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Rewrites `Location` and `Link` URLs on the upstream's origin to the public origin. The
/// path and query are kept byte for byte; relative URLs and other origins are untouched.
pub fn rewrite_urls(headers: &mut HeaderMap, upstream: &Origin, public: &Origin) {
    rewrite_header(headers, header::LOCATION, |text| {
        rewrite_url(text, upstream, public)
    });
    rewrite_header(headers, header::LINK, |text| {
        Some(rewrite_link(text, upstream, public))
    });
}

/// Applies `rewrite` to every value of `name`, keeping the order and count of values.
fn rewrite_header(
    headers: &mut HeaderMap,
    name: HeaderName,
    rewrite: impl Fn(&str) -> Option<String>,
) {
    let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
    if values.is_empty() {
        return;
    }
    headers.remove(&name);
    for value in values {
        let rewritten = value
            .to_str()
            .ok()
            .and_then(&rewrite)
            .and_then(|text| HeaderValue::from_str(&text).ok());
        headers.append(&name, rewritten.unwrap_or(value));
    }
}

/// Rewrites an absolute URL, or a scheme-relative one (`//host:port/path`), whose origin is
/// the upstream's.
fn rewrite_url(url: &str, upstream: &Origin, public: &Origin) -> Option<String> {
    let rest = match url.strip_prefix("//") {
        Some(scheme_relative) => {
            let absolute = format!("{}://{scheme_relative}", upstream.scheme.as_str());
            upstream.strip_from(&absolute)?.to_owned()
        }
        None => upstream.strip_from(url)?.to_owned(),
    };
    Some(format!("{public}{rest}"))
}

/// Rewrites the `realm` of `WWW-Authenticate` challenges so that clients fetch tokens
/// through a URL they can reach: a realm on the upstream's own origin moves to the public
/// origin, and one that starts with a configured FROM starts with its TO. `service`, `scope`
/// and everything else stay byte for byte, and an https realm is never moved to http.
pub fn rewrite_realms(
    headers: &mut HeaderMap,
    upstream: &Origin,
    public: &Origin,
    rewrites: &[(String, String)],
) {
    rewrite_header(headers, header::WWW_AUTHENTICATE, |challenges| {
        // One field value may hold several challenges, and auth-param names are
        // case-insensitive (RFC 9110 section 11.2), so every `realm="` is looked at.
        let lowercase = challenges.to_ascii_lowercase();
        let mut out = String::with_capacity(challenges.len());
        let mut copied = 0;
        let mut changed = false;
        let mut search = 0;
        while let Some(found) = lowercase[search..].find("realm=\"") {
            let start = search + found + "realm=\"".len();
            let Some(length) = challenges[start..].find('"') else {
                break;
            };
            let realm = &challenges[start..start + length];
            search = start + length + 1;
            let Some(rewritten) = rewrite_realm(realm, upstream, public, rewrites) else {
                continue;
            };
            out.push_str(&challenges[copied..start]);
            out.push_str(&rewritten);
            copied = start + length;
            changed = true;
        }
        out.push_str(&challenges[copied..]);
        changed.then_some(out)
    });
}

/// Returns the new realm URL, or `None` to keep the realm because it matches no rewrite or
/// the rewrite would move an https realm to http.
fn rewrite_realm(
    realm: &str,
    upstream: &Origin,
    public: &Origin,
    rewrites: &[(String, String)],
) -> Option<String> {
    let rewritten = rewrites
        .iter()
        .find_map(|(from, to)| {
            let matches =
                realm.len() >= from.len() && realm[..from.len()].eq_ignore_ascii_case(from);
            matches.then(|| format!("{to}{}", &realm[from.len()..]))
        })
        .or_else(|| rewrite_url(realm, upstream, public))?;
    let is_https = |url: &str| Scheme::of_url(url) == Some(Scheme::Https);
    if is_https(realm) && !is_https(&rewritten) {
        return None;
    }
    Some(rewritten)
}

/// Rewrites every `<URL>` of a `Link` header value (RFC 8288).
fn rewrite_link(value: &str, upstream: &Origin, public: &Origin) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let Some(length) = rest[start..].find('>') else {
            break;
        };
        let url = &rest[start + 1..start + length];
        out.push_str(&rest[..=start]);
        out.push_str(&rewrite_url(url, upstream, public).unwrap_or_else(|| url.to_owned()));
        out.push('>');
        rest = &rest[start + length + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> (Origin, Origin) {
        (
            Origin::parse_base_url("http://127.0.0.1:5000").expect("valid"),
            Origin::parse_base_url("https://gate.example").expect("valid"),
        )
    }

    fn rewritten(name: HeaderName, values: &[&str]) -> Vec<String> {
        let (upstream, public) = origins();
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                name.clone(),
                HeaderValue::from_str(value).expect("valid header"),
            );
        }
        rewrite_urls(&mut headers, &upstream, &public);
        headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().expect("ASCII").to_owned())
            .collect()
    }

    #[test]
    fn location_on_upstream_origin_is_rewritten_raw() {
        let values = rewritten(
            header::LOCATION,
            &["http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=x%2By%3D&digest=sha256%3Aab"],
        );

        assert_eq!(
            values,
            ["https://gate.example/v2/a/blobs/uploads/u?_state=x%2By%3D&digest=sha256%3Aab"]
        );
    }

    #[test]
    fn relative_and_foreign_locations_are_untouched() {
        assert_eq!(
            rewritten(header::LOCATION, &["/v2/a/blobs/uploads/u"]),
            ["/v2/a/blobs/uploads/u"]
        );
        assert_eq!(
            rewritten(
                header::LOCATION,
                &["https://bucket.s3.example/blob?X-Amz-Signature=1"]
            ),
            ["https://bucket.s3.example/blob?X-Amz-Signature=1"]
        );
    }

    #[test]
    fn every_location_value_is_kept() {
        let values = rewritten(
            header::LOCATION,
            &["/a", "http://127.0.0.1:5000/b", "//127.0.0.1:5000/c?x=%2F"],
        );

        assert_eq!(
            values,
            [
                "/a",
                "https://gate.example/b",
                "https://gate.example/c?x=%2F"
            ]
        );
    }

    #[test]
    fn link_urls_are_rewritten() {
        let values = rewritten(
            header::LINK,
            &[
                "<http://127.0.0.1:5000/v2/a/tags/list?n=2&last=b>; rel=\"next\"",
                "</v2/_catalog?n=1&last=a>; rel=\"next\"",
            ],
        );

        assert_eq!(
            values,
            [
                "<https://gate.example/v2/a/tags/list?n=2&last=b>; rel=\"next\"",
                "</v2/_catalog?n=1&last=a>; rel=\"next\"",
            ]
        );
    }

    #[test]
    fn realms_are_rewritten_without_downgrade() {
        let (upstream, public) = origins();
        let plain = Origin::parse_base_url("http://gate.internal:5050").expect("valid");
        let rewrite = |value: &str, public: &Origin, rewrites: &[(String, String)]| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(value).expect("header"),
            );
            rewrite_realms(&mut headers, &upstream, public, rewrites);
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .expect("ASCII")
                .to_owned()
        };
        let challenge = r#"Bearer realm="http://127.0.0.1:5000/auth/token",service="registry",scope="repository:a/b:pull,push""#;
        let mapped = vec![(
            "https://auth.internal/".to_owned(),
            "https://login.example/".to_owned(),
        )];

        assert_eq!(
            rewrite(challenge, &public, &[]),
            r#"Bearer realm="https://gate.example/auth/token",service="registry",scope="repository:a/b:pull,push""#
        );
        assert_eq!(
            rewrite(
                r#"Bearer realm="https://auth.internal/token",service="r""#,
                &public,
                &mapped
            ),
            r#"Bearer realm="https://login.example/token",service="r""#
        );
        assert_eq!(
            rewrite(r#"Basic realm="Registry Realm""#, &public, &[]),
            r#"Basic realm="Registry Realm""#
        );
        let secure_upstream = Origin::parse_base_url("https://registry.internal").expect("valid");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="https://registry.internal/token""#),
        );
        rewrite_realms(&mut headers, &secure_upstream, &plain, &[]);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            r#"Bearer realm="https://registry.internal/token""#
        );
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        headers.insert(
            "docker-content-digest",
            HeaderValue::from_static("sha256:00"),
        );

        strip_hop_by_hop(&mut headers);

        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("docker-content-digest"));
    }
}
