//! Classify stage: decides from the method and path whether a request is a manifest push,
//! which the gate validates, or anything else, which it forwards untouched.
//!
//! Paths are matched whole against the distribution grammar, because a repository name may
//! itself contain `manifests` (`a/manifests/b` is a legal name).

use std::sync::LazyLock;

use http::{Method, StatusCode, Uri};
use regex::Regex;

use crate::error::{ErrorCode, Rejection, Rule};
use crate::manifest::digest::Digest;

/// Repository name grammar of the distribution specification.
static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
        .expect("name grammar compiles")
});

/// Tag grammar of the distribution specification.
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").expect("tag grammar compiles")
});

/// Any path whose last two segments are `manifests/<reference>`; the name and reference are
/// checked against their grammars afterwards so that a bad one gets a precise error.
static MANIFEST_PATH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^/v2/(.+)/manifests/([^/]*)$").expect("manifest path compiles"));

/// The reference a manifest is pushed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tag(tag) => f.write_str(tag),
            Self::Digest(digest) => write!(f, "{digest}"),
        }
    }
}

/// A `PUT /v2/<name>/manifests/<reference>` whose name and reference are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPush {
    pub repository: String,
    pub reference: Reference,
}

/// What the gate does with a request.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// Validate, then forward.
    ManifestPush(ManifestPush),
    /// A request the gate must not forward, such as a manifest push with an invalid name or
    /// reference: answer with this rejection.
    Invalid(Box<Rejection>),
    /// Forward unchanged.
    Forward,
}

/// Classifies a request by method and path. Only `PUT` can be a manifest push.
/// Returns whether `name` is a valid repository name in the distribution grammar.
pub fn is_valid_name(name: &str) -> bool {
    NAME.is_match(name)
}

/// Returns whether `tag` is a valid tag in the distribution grammar.
pub fn is_valid_tag(tag: &str) -> bool {
    TAG.is_match(tag)
}

pub fn classify(method: &Method, uri: &Uri) -> Route {
    if let Some(rejection) = check_target(method, uri) {
        return Route::Invalid(Box::new(rejection));
    }
    if method != Method::PUT {
        return Route::Forward;
    }
    let raw_path = uri.path();
    if let Some(route) = classify_manifest_path(raw_path, uri.query()) {
        return route;
    }

    // A registry may decode percent-escapes or clean `//` and `.` segments before routing, so
    // a path that only looks like a manifest push after such cleaning must not slip through
    // unvalidated. No valid name or reference needs escapes or empty segments.
    let cleaned = clean_path(&percent_decode(raw_path));
    if cleaned != raw_path && MANIFEST_PATH.is_match(&cleaned) {
        let rejection = Rejection::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NameInvalid,
            Rule::ManifestPathEncoded,
            "manifest push paths must be written without percent-escapes, empty segments or dot segments; push to /v2/<name>/manifests/<reference> literally",
        )
        .found(raw_path);
        return Route::Invalid(Box::new(rejection));
    }
    Route::Forward
}

/// Rejects what a registry never receives: `CONNECT`, and request targets that are not a
/// path (`*`, or `host:port`). Forwarding them would send the request to a URL that the
/// operator never configured.
fn check_target(method: &Method, uri: &Uri) -> Option<Rejection> {
    if method == Method::CONNECT {
        return Some(
            Rejection::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                Rule::MethodUnsupported,
                "CONNECT is not part of the registry API; this gate is a reverse proxy, not a forward proxy",
            )
            .found("CONNECT"),
        );
    }
    if uri.path().starts_with('/') {
        return None;
    }
    Some(
        Rejection::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Unsupported,
            Rule::RequestTarget,
            "the request target must be a path starting with '/', such as /v2/",
        )
        .found(uri.to_string()),
    )
}

/// The route class of a path, for metrics: which part of the registry API it addresses.
pub fn route_class(path: &str) -> &'static str {
    if path == "/v2/" || path == "/v2" {
        return "base";
    }
    if path == "/v2/_catalog" {
        return "catalog";
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return "other";
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let tail = |back: usize| {
        segments
            .len()
            .checked_sub(back)
            .and_then(|index| segments.get(index))
            .copied()
    };
    if tail(2) == Some("manifests") {
        "manifest"
    } else if tail(2) == Some("tags") && tail(1) == Some("list") {
        "tags"
    } else if tail(2) == Some("referrers") {
        "referrers"
    } else if segments.contains(&"uploads") && segments.contains(&"blobs") {
        "blob_upload"
    } else if tail(2) == Some("blobs") {
        "blob"
    } else {
        "other"
    }
}

fn classify_manifest_path(path: &str, query: Option<&str>) -> Option<Route> {
    let captures = MANIFEST_PATH.captures(path)?;
    let name = &captures[1];
    let reference = &captures[2];

    if !NAME.is_match(name) {
        return Some(invalid(
            ErrorCode::NameInvalid,
            Rule::NameGrammar,
            format!(
                "repository name {name:?} is invalid: use lowercase letters and digits, separated by '.', '_', '__', '-' or '/'"
            ),
            name,
        ));
    }
    let reference = match parse_reference(reference) {
        Ok(reference) => reference,
        Err(rejection) => return Some(Route::Invalid(Box::new(rejection))),
    };
    for tag in query_tags(query) {
        if !TAG.is_match(&tag) {
            return Some(invalid(
                ErrorCode::TagInvalid,
                Rule::TagGrammar,
                format!("tag {tag:?} in the query is invalid: {TAG_HINT}"),
                &tag,
            ));
        }
    }
    Some(Route::ManifestPush(ManifestPush {
        repository: name.to_owned(),
        reference,
    }))
}

const TAG_HINT: &str = "a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', and does not start with '.' or '-'";

fn parse_reference(reference: &str) -> Result<Reference, Rejection> {
    if reference.contains(':') {
        return Digest::parse(reference, "reference").map(Reference::Digest);
    }
    if TAG.is_match(reference) {
        return Ok(Reference::Tag(reference.to_owned()));
    }
    Err(Rejection::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::TagInvalid,
        Rule::TagGrammar,
        format!("tag {reference:?} is invalid: {TAG_HINT}"),
    )
    .found(reference))
}

fn invalid(code: ErrorCode, rule: Rule, message: String, found: &str) -> Route {
    let rejection = Rejection::new(StatusCode::BAD_REQUEST, code, rule, message).found(found);
    Route::Invalid(Box::new(rejection))
}

/// Values of `tag` query parameters (`?tag=a&tag=b`, a newer draft of the specification).
fn query_tags(query: Option<&str>) -> Vec<String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == "tag").then(|| percent_decode(value))
        })
        .collect()
}

fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes empty and `.` segments and resolves `..` segments.
fn clean_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, path: &str) -> Route {
        classify(&method, &path.parse().expect("test path is a valid URI"))
    }

    fn rejection_rule(route: Route) -> Rule {
        match route {
            Route::Invalid(rejection) => rejection.rule,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn manifest_put_with_tag_is_a_push() {
        let route = route(Method::PUT, "/v2/demo/hello/manifests/0.1.0");

        assert_eq!(
            route,
            Route::ManifestPush(ManifestPush {
                repository: "demo/hello".into(),
                reference: Reference::Tag("0.1.0".into()),
            })
        );
    }

    #[test]
    fn repository_named_manifests_is_matched_whole() {
        let route = route(Method::PUT, "/v2/a/manifests/b/manifests/latest");

        assert_eq!(
            route,
            Route::ManifestPush(ManifestPush {
                repository: "a/manifests/b".into(),
                reference: Reference::Tag("latest".into()),
            })
        );
    }

    #[test]
    fn other_methods_and_paths_are_forwarded() {
        assert_eq!(
            route(Method::GET, "/v2/demo/manifests/latest"),
            Route::Forward
        );
        assert_eq!(
            route(Method::PUT, "/v2/demo/blobs/uploads/abc?digest=sha256%3A00"),
            Route::Forward
        );
        assert_eq!(route(Method::PUT, "/token"), Route::Forward);
    }

    #[test]
    fn invalid_names_and_references_are_rejected() {
        assert_eq!(
            rejection_rule(route(Method::PUT, "/v2/Demo/manifests/latest")),
            Rule::NameGrammar
        );
        assert_eq!(
            rejection_rule(route(Method::PUT, "/v2/demo/manifests/.hidden")),
            Rule::TagGrammar
        );
        assert_eq!(
            rejection_rule(route(Method::PUT, "/v2/demo/manifests/")),
            Rule::TagGrammar
        );
        assert_eq!(
            rejection_rule(route(Method::PUT, "/v2/demo/manifests/sha256:abc")),
            Rule::DigestGrammar
        );
        assert_eq!(
            rejection_rule(route(Method::PUT, "/v2/demo/manifests/md5:abc")),
            Rule::DigestAlgorithm
        );
        assert_eq!(
            rejection_rule(route(Method::PUT, "/v2/demo/manifests/a?tag=-x")),
            Rule::TagGrammar
        );
        assert_eq!(
            rejection_rule(route(Method::PUT, "/v2/demo/manifests/a?%74ag=-x")),
            Rule::TagGrammar
        );
    }

    #[test]
    fn route_classes_for_metrics() {
        assert_eq!(route_class("/v2/"), "base");
        assert_eq!(route_class("/v2/a/b/manifests/latest"), "manifest");
        assert_eq!(route_class("/v2/a/blobs/sha256:00"), "blob");
        assert_eq!(route_class("/v2/a/blobs/uploads/"), "blob_upload");
        assert_eq!(route_class("/v2/a/blobs/uploads/uuid"), "blob_upload");
        assert_eq!(route_class("/v2/a/tags/list"), "tags");
        assert_eq!(route_class("/v2/a/referrers/sha256:00"), "referrers");
        assert_eq!(route_class("/v2/_catalog"), "catalog");
        assert_eq!(route_class("/token"), "other");
    }

    #[test]
    fn non_path_targets_and_connect_are_rejected() {
        assert_eq!(
            rejection_rule(route(Method::OPTIONS, "*")),
            Rule::RequestTarget
        );
        assert_eq!(rejection_rule(route(Method::PUT, "*")), Rule::RequestTarget);
        assert_eq!(
            rejection_rule(route(Method::CONNECT, "127.0.0.1:80")),
            Rule::MethodUnsupported
        );
        assert_eq!(
            route(Method::GET, "http://gate.example/v2/"),
            Route::Forward
        );
    }

    #[test]
    fn encoded_manifest_paths_are_rejected() {
        assert_eq!(
            rejection_rule(route(Method::PUT, "/v2/demo/manifest%73/latest")),
            Rule::ManifestPathEncoded
        );
        assert_eq!(
            rejection_rule(route(Method::PUT, "/v2/demo//manifests/./latest")),
            Rule::ManifestPathEncoded
        );
    }
}
